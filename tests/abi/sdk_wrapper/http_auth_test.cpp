// <gatehouse/sdk/http/auth.hpp>: credentials (RFC 9110 §11.4) and challenges (§11.6.1).
#include <gatehouse/sdk/http/auth.hpp>

#include <gtest/gtest.h>

#include <string>

using namespace gh::http;

TEST(Credentials, SchemeAndToken68) {
    auto c = parse_credentials("Bearer mF_9.B5f-4.1JqM");
    ASSERT_TRUE(c);
    EXPECT_TRUE(c->is("bearer"));
    EXPECT_EQ(c->token68, "mF_9.B5f-4.1JqM");
    EXPECT_TRUE(c->params.empty());
    auto basic = parse_credentials("  basic   dXNlcjpwYXNz==  ");
    ASSERT_TRUE(basic);
    EXPECT_EQ(basic->scheme, "basic");
    EXPECT_EQ(basic->token68, "dXNlcjpwYXNz==");
}

TEST(Credentials, SchemeAlone) {
    auto c = parse_credentials("Negotiate");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->scheme, "Negotiate");
    EXPECT_TRUE(c->token68.empty());
}

TEST(Credentials, DigestStyleParameters) {
    auto c = parse_credentials(
        "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", uri=\"/dir/index.html\", "
        "algorithm=SHA-256, nc=00000001 , qop=auth,response=\"a\\\"b\\\\c\"");
    ASSERT_TRUE(c);
    EXPECT_TRUE(c->is("DIGEST"));
    EXPECT_TRUE(c->token68.empty());
    ASSERT_EQ(c->params.size(), 7u);
    EXPECT_EQ(*c->param("USERNAME"), "Mufasa");
    EXPECT_EQ(*c->param("algorithm"), "SHA-256");
    EXPECT_EQ(*c->param("nc"), "00000001");
    EXPECT_EQ(*c->param("response"), "a\"b\\c");
    EXPECT_EQ(c->param("cnonce"), nullptr);
}

TEST(Credentials, Token68WinsWhereTheGrammarIsAmbiguous) {
    // "a=" is a token68 and "a=b" is not (RFC 9110 §11.2): one is a blob, the other a parameter.
    EXPECT_EQ(parse_credentials("Digest a=")->token68, "a=");
    auto c = parse_credentials("Digest a=b");
    ASSERT_TRUE(c);
    EXPECT_TRUE(c->token68.empty());
    EXPECT_EQ(*c->param("a"), "b");
}

TEST(Credentials, WhitespaceAroundEqualsAndEmptyElements) {
    auto c = parse_credentials("Foo a = b ,, c=\"\" ,");
    ASSERT_TRUE(c);
    ASSERT_EQ(c->params.size(), 2u);
    EXPECT_EQ(*c->param("a"), "b");
    EXPECT_EQ(*c->param("c"), "");
}

TEST(Credentials, MalformedValuesAreRefusedWhole) {
    for (std::string_view bad :
         {"", "   ", "Bearer abc def", "Bearer =abc", "Bearer\tabc", "Digest realm=\"x",
          "Digest a=1, A=2", "Digest a=, b=1", "Digest a=1 b=2", "Digest a=\"x\"y", "(bad) x",
          "Digest a=\"\x01\""})
        EXPECT_FALSE(parse_credentials(bad)) << bad;
}

TEST(Credentials, HostileInputIsBounded) {
    std::string many = "X ";
    for (int i = 0; i < 100; ++i)
        many += "p" + std::to_string(i) + "=1, ";
    EXPECT_FALSE(parse_credentials(many)) << "more than 64 parameters";
    EXPECT_FALSE(parse_credentials("X a=\"" + std::string(100000, '\\')));
    EXPECT_TRUE(parse_credentials("Bearer " + std::string(100000, 'A')));
}

TEST(Challenge, QuotesEveryValue) {
    EXPECT_EQ(format_challenge("Bearer", {{"realm", "api"}, {"error", "invalid_token"}}),
              "Bearer realm=\"api\", error=\"invalid_token\"");
    EXPECT_EQ(format_challenge("Basic", {{"realm", "say \"hi\" \\o/"}}),
              "Basic realm=\"say \\\"hi\\\" \\\\o/\"");
    EXPECT_EQ(format_challenge("Negotiate"), "Negotiate");
}

TEST(Challenge, RefusesWhatCannotBeSent) {
    EXPECT_FALSE(format_challenge("Bad Scheme"));
    EXPECT_FALSE(format_challenge(""));
    EXPECT_FALSE(format_challenge("Bearer", {{"re alm", "x"}}));
    EXPECT_FALSE(format_challenge("Bearer", {{"realm", "a\r\nSet-Cookie: x=1"}}));
}
