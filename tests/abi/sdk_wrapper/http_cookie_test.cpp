// <gatehouse/sdk/http/cookie.hpp>: Cookie parsing, Set-Cookie building and reading (RFC 6265).
#include <gatehouse/sdk/http/cookie.hpp>

#include <gtest/gtest.h>

#include <string>

using namespace gh::http;

TEST(CookieHeader, PairsInOrderMalformedOnesSkipped) {
    const auto pairs = parse_cookie_header("a=1; b=2;c=3; bad; =x;  d= ; e=x=y");
    ASSERT_EQ(pairs.size(), 5u);
    EXPECT_EQ(pairs[0].name, "a");
    EXPECT_EQ(pairs[2].value, "3");
    EXPECT_EQ(pairs[3].name, "d");
    EXPECT_EQ(pairs[3].value, "");
    EXPECT_EQ(pairs[4].value, "x=y") << "only the first '=' splits";
}

TEST(CookieHeader, QuotedValueKeepsItsQuotes) {
    EXPECT_EQ(cookie_value("sid=\"abc\"", "sid"), "\"abc\"");
}

TEST(CookieHeader, ValueLookupIsCaseSensitiveAndTakesTheFirst) {
    EXPECT_EQ(cookie_value("SID=1; sid=2; sid=3", "sid"), "2");
    EXPECT_EQ(cookie_value("SID=1", "sid"), std::nullopt);
    EXPECT_EQ(cookie_value("", "sid"), std::nullopt);
}

TEST(SetCookieFormat, AllAttributes) {
    SetCookie c;
    c.name = "sid";
    c.value = "abc123";
    c.path = "/";
    c.domain = "example.com";
    c.max_age = 3600;
    c.expires = 784111777;
    c.secure = true;
    c.http_only = true;
    c.same_site = SameSite::lax;
    EXPECT_EQ(format_set_cookie(c), "sid=abc123; Path=/; Domain=example.com; Max-Age=3600; "
                                    "Expires=Sun, 06 Nov 1994 08:49:37 GMT; Secure; HttpOnly; "
                                    "SameSite=Lax");
    SetCookie bare;
    bare.name = "a";
    EXPECT_EQ(format_set_cookie(bare), "a=");
}

TEST(SetCookieFormat, RefusesWhatUserAgentsWouldDropOrMisread) {
    auto with = [](auto edit) {
        SetCookie c;
        c.name = "n";
        c.value = "v";
        edit(c);
        return format_set_cookie(c);
    };
    EXPECT_FALSE(with([](SetCookie &c) { c.name = "bad name"; }));
    EXPECT_FALSE(with([](SetCookie &c) { c.name = ""; }));
    EXPECT_FALSE(with([](SetCookie &c) { c.value = "a;b"; }));
    EXPECT_FALSE(with([](SetCookie &c) { c.value = "a b"; }));
    EXPECT_FALSE(with([](SetCookie &c) { c.value = "caf\xc3\xa9"; }));
    EXPECT_FALSE(with([](SetCookie &c) { c.path = "relative"; }));
    EXPECT_FALSE(with([](SetCookie &c) { c.path = "/a;Secure"; }));
    EXPECT_FALSE(with([](SetCookie &c) { c.domain = "ex\nample.com"; }));
    EXPECT_FALSE(with([](SetCookie &c) { c.same_site = SameSite::none; }));
    EXPECT_TRUE(with([](SetCookie &c) { c.same_site = SameSite::none, c.secure = true; }));
    EXPECT_TRUE(with([](SetCookie &c) { c.value = "\"quoted\""; }));
}

TEST(SetCookieParse, AttributesAsAUserAgentReadsThem) {
    auto c = parse_set_cookie("id=a3fWa; expires=Wed, 21 Oct 2015 07:28:00 GMT; MAX-AGE=-5; "
                              "Domain=.Example.COM; path=/docs; secure; HTTPONLY; samesite=strict; "
                              "Priority=High");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->name, "id");
    EXPECT_EQ(c->value, "a3fWa");
    EXPECT_EQ(c->expires, 1445412480);
    EXPECT_EQ(c->max_age, -5);
    EXPECT_EQ(c->domain, "example.com");
    EXPECT_EQ(c->path, "/docs");
    EXPECT_TRUE(c->secure);
    EXPECT_TRUE(c->http_only);
    EXPECT_EQ(c->same_site, SameSite::strict);
}

TEST(SetCookieParse, LastAttributeWinsAndUnreadableOnesAreIgnored) {
    auto c = parse_set_cookie("a=b; Path=/x; Path=/y; Max-Age=soon; Expires=tomorrow; "
                              "SameSite=Sideways; Path=relative");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->path, "/y");
    EXPECT_FALSE(c->max_age);
    EXPECT_FALSE(c->expires);
    EXPECT_FALSE(c->same_site);
}

TEST(SetCookieParse, NoPairIsNoCookie) {
    EXPECT_FALSE(parse_set_cookie("novalue; Path=/"));
    EXPECT_FALSE(parse_set_cookie("=x"));
    EXPECT_FALSE(parse_set_cookie(""));
    EXPECT_TRUE(parse_set_cookie("a="));
}

TEST(SetCookieParse, FormattedCookiesReadBack) {
    SetCookie c;
    c.name = "t";
    c.value = "1";
    c.path = "/app";
    c.expires = 1'700'000'000;
    c.same_site = SameSite::none;
    c.secure = true;
    auto back = parse_set_cookie(*format_set_cookie(c));
    ASSERT_TRUE(back);
    EXPECT_EQ(back->path, "/app");
    EXPECT_EQ(back->expires, 1'700'000'000);
    EXPECT_EQ(back->same_site, SameSite::none);
}

TEST(CookieHostileInput, HugeAndBrokenValuesAreHarmless) {
    std::string huge;
    for (int i = 0; i < 30000; ++i)
        huge += "k=v;";
    EXPECT_EQ(parse_cookie_header(huge).size(), 30000u);
    EXPECT_TRUE(parse_set_cookie("a=b" + std::string(100000, ';')));
    EXPECT_EQ(parse_set_cookie("a=b; Max-Age=99999999999999999999999")->max_age, 2147483648LL);
    EXPECT_EQ(parse_set_cookie("a=b; Max-Age=-")->max_age, std::nullopt);
    EXPECT_TRUE(parse_cookie_header(std::string_view("\0=\0", 3)).size() == 1);
}
