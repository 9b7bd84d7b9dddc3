// cache_disk: the RFC 9111 rules without a kernel or a disk.
#include "policy.hpp"

#include <gatehouse/sdk/http.hpp>
#include <gatehouse/sdk/http/coding.hpp>

#include <gtest/gtest.h>

using namespace cache_disk;

namespace {

const int64_t kDate = 1'700'000'000; // a Date value used as "the response was generated now"

std::string date(int64_t s) { return gh::http::format_http_date(s); }

Timing at(int64_t s) { return Timing{s * 1000, s * 1000}; }

} // namespace

TEST(CacheControl, DirectivesAreCaseInsensitiveAndQuotedArgumentsAccepted) {
    auto cc = parse_cache_control({"Max-Age=\"60\", PUBLIC", "s-maxage=5"});
    EXPECT_EQ(cc.max_age, 60);
    EXPECT_EQ(cc.s_maxage, 5);
    EXPECT_TRUE(cc.public_);
}

TEST(CacheControl, FirstOccurrenceWinsAndInvalidValuesAreFlagged) {
    auto cc = parse_cache_control({"max-age=10, max-age=20"});
    EXPECT_EQ(cc.max_age, 10);
    auto bad = parse_cache_control({"max-age=-1"});
    EXPECT_FALSE(bad.max_age);
    EXPECT_TRUE(bad.invalid_max_age);
    EXPECT_TRUE(parse_cache_control({"max-age=1.5"}).invalid_max_age);
    EXPECT_EQ(parse_cache_control({"max-age=99999999999"}).max_age, 2147483648LL);
}

TEST(CacheControl, CommasInsideQuotedArgumentsDoNotSplit) {
    auto cc = parse_cache_control({"no-cache=\"set-cookie, x-foo\", max-age=5"});
    EXPECT_TRUE(cc.no_cache);
    EXPECT_EQ(cc.max_age, 5);
}

TEST(CacheControl, PragmaNoCacheOnlyWithoutCacheControl) {
    EXPECT_TRUE(request_cache_control({{"Pragma", "no-cache"}}).no_cache);
    EXPECT_FALSE(
        request_cache_control({{"Pragma", "no-cache"}, {"Cache-Control", "max-age=5"}}).no_cache);
}

TEST(Storability, Rules) {
    const Fields req;
    StoreRules rules;
    EXPECT_EQ(storability("GET", 200, req, {{"ETag", "\"1\""}}, rules), Verdict::stored);
    EXPECT_EQ(storability("GET", 200, req, {}, rules), Verdict::no_freshness)
        << "never usable without revalidation, and nothing to revalidate with";
    EXPECT_EQ(storability("POST", 200, req, {{"Cache-Control", "max-age=5"}}, rules),
              Verdict::method);
    EXPECT_EQ(storability("GET", 206, req, {}, rules), Verdict::status);
    EXPECT_EQ(storability("GET", 302, req, {}, rules), Verdict::no_freshness);
    EXPECT_EQ(storability("GET", 302, req, {{"Cache-Control", "max-age=5"}}, rules),
              Verdict::stored);
    EXPECT_EQ(storability("GET", 200, req, {{"Cache-Control", "no-store"}}, rules),
              Verdict::no_store);
    EXPECT_EQ(storability("GET", 200, {{"Cache-Control", "no-store"}}, {}, rules),
              Verdict::no_store);
    EXPECT_EQ(storability("GET", 200, req, {{"Cache-Control", "private, max-age=5"}}, rules),
              Verdict::private_);
    EXPECT_EQ(storability("GET", 200, req, {{"Vary", "accept, *"}}, rules), Verdict::vary_star);
    const Fields auth{{"Authorization", "Basic eDp5"}};
    EXPECT_EQ(storability("GET", 200, auth, {{"Cache-Control", "max-age=5"}}, rules),
              Verdict::authorization);
    EXPECT_EQ(storability("GET", 200, auth, {{"Cache-Control", "s-maxage=5"}}, rules),
              Verdict::stored);
    EXPECT_EQ(storability("GET", 200, auth, {{"Cache-Control", "public, max-age=5"}}, rules),
              Verdict::stored);
    const Fields cookie{{"Set-Cookie", "a=b"}, {"Cache-Control", "max-age=5"}};
    EXPECT_EQ(storability("GET", 200, req, cookie, rules), Verdict::set_cookie);
    rules.store_set_cookie = true;
    EXPECT_EQ(storability("GET", 200, req, cookie, rules), Verdict::stored);
    // must-understand: a defined status overrides no-store, an unknown one is never stored.
    const Fields mu{{"Cache-Control", "max-age=5, no-store, must-understand"}};
    EXPECT_EQ(storability("GET", 200, req, mu, rules), Verdict::stored);
    EXPECT_EQ(storability("GET", 599, req, mu, rules), Verdict::status);
}

TEST(Freshness, OrderOfSources) {
    const Timing t = at(kDate);
    Fields r{{"Date", date(kDate)}, {"Cache-Control", "max-age=10, s-maxage=20"},
             {"Expires", date(kDate + 30)}};
    EXPECT_EQ(freshness_lifetime(200, r, t, {}), 20);
    r = {{"Date", date(kDate)}, {"Cache-Control", "max-age=10"}, {"Expires", date(kDate + 30)}};
    EXPECT_EQ(freshness_lifetime(200, r, t, {}), 10);
    r = {{"Date", date(kDate)}, {"Expires", date(kDate + 30)}};
    EXPECT_EQ(freshness_lifetime(200, r, t, {}), 30);
    r = {{"Date", date(kDate)}, {"Expires", "0"}};
    EXPECT_EQ(freshness_lifetime(200, r, t, {}), 0);
    r = {{"Date", date(kDate)}, {"Cache-Control", "max-age=abc"}, {"Expires", date(kDate + 30)}};
    EXPECT_EQ(freshness_lifetime(200, r, t, {}), 0) << "an invalid max-age means stale";
}

TEST(Freshness, HeuristicIsTenPercentCapped) {
    const Timing t = at(kDate);
    Fields r{{"Date", date(kDate)}, {"Last-Modified", date(kDate - 1000)}};
    EXPECT_EQ(freshness_lifetime(200, r, t, {}), 100);
    EXPECT_EQ(freshness_lifetime(302, r, t, {}), 0) << "302 is not heuristically cacheable";
    r = {{"Date", date(kDate)}, {"Last-Modified", date(kDate - 10'000'000)}};
    EXPECT_EQ(freshness_lifetime(200, r, t, HeuristicRules{10, 3600}), 3600);
}

TEST(Freshness, ExpiresMustBeOneValidHttpDate) {
    const Timing t = at(kDate);
    auto lifetime = [&](std::vector<std::string> expires) {
        Fields r{{"Date", date(kDate)}};
        for (auto &e : expires)
            r.push_back({"Expires", e});
        return freshness_lifetime(200, r, t, {});
    };
    EXPECT_GT(lifetime({"Thu, 18 Aug 2050 02:01:18 GMT"}), 0);
    EXPECT_GT(lifetime({"THU, 18 AUG 2050 02:01:18 gMT"}), 0);
    EXPECT_GT(lifetime({"Thursday, 18-Aug-50 02:01:18 GMT"}), 0);
    EXPECT_GT(lifetime({"Thu Aug  8 02:01:18 2050"}), 0);
    EXPECT_GT(lifetime({"Tue, 19 Jan 2286 14:14:08 GMT"}), 0);
    for (const char *bad : {"Thu, 18 Aug 2050 02:01:18 UTC", "Thu, 18 Aug 2050 02:01:18 AEST",
                            "Thu, 18 Aug 50 02:01:18 GMT", "Thu 18 Aug 2050 02:01:18 GMT",
                            "Thu, 18  Aug  2050 02:01:18 GMT", "Thu, 18-Aug-2050 02:01:18 GMT",
                            "Thu, 18 Aug 2050 02.01.18 GMT", "Thu, 18 Aug 2050 2:01:18 GMT", "0"})
        EXPECT_EQ(lifetime({bad}), 0) << bad;
    EXPECT_EQ(lifetime({"Thu, 18 Aug 2050 02:01:18 GMT", "Thu, 18 Aug 2050 02:01:19 GMT"}), 0)
        << "two Expires lines";
    // Expires - Date, not Expires - now.
    Fields r{{"Date", date(kDate + 400)}, {"Expires", date(kDate + 300)}};
    EXPECT_EQ(freshness_lifetime(200, r, t, {}), 0);
}

TEST(Freshness, TargetedFieldReplacesCacheControl) {
    const Timing t = at(kDate);
    Fields r{{"Date", date(kDate)}, {"Cache-Control", "max-age=3600"},
             {"CDN-Cache-Control", "max-age=1"}};
    EXPECT_EQ(freshness_lifetime(200, r, t, {}), 1);
    r = {{"Cache-Control", "no-store"}, {"CDN-Cache-Control", "max-age=10000"}};
    EXPECT_EQ(storability("GET", 200, {}, r, {}), Verdict::stored);
    r = {{"Cache-Control", "max-age=10000"}, {"CDN-Cache-Control", "no-store"}};
    EXPECT_EQ(storability("GET", 200, {}, r, {}), Verdict::no_store);
    r = {{"Cache-Control", "no-store"}, {"CDN-Cache-Control", "max-age=10000, &&&&&"}};
    EXPECT_EQ(storability("GET", 200, {}, r, {}), Verdict::no_store) << "invalid: ignored";
    r = {{"Cache-Control", "max-age=5"}, {"CDN-Cache-Control", "max-age=\"10000\""}};
    EXPECT_EQ(freshness_lifetime(200, r, t, {}), 0) << "a string max-age is ignored";
    StoreRules off;
    off.targeted.clear();
    r = {{"Cache-Control", "no-store"}, {"CDN-Cache-Control", "max-age=10000"}};
    EXPECT_EQ(storability("GET", 200, {}, r, off), Verdict::no_store);
}

TEST(Age, FirstValueOfFirstLineClampedOrIgnored) {
    auto age = [](std::vector<std::string> lines) {
        Fields r{{"Date", date(kDate)}};
        for (auto &l : lines)
            r.push_back({"Age", l});
        return current_age(r, at(kDate), kDate * 1000);
    };
    EXPECT_EQ(age({"abc"}), 0);
    EXPECT_EQ(age({"-7200"}), 0);
    EXPECT_EQ(age({"7200.0"}), 0);
    EXPECT_EQ(age({"2147483649"}), 2147483648LL);
    EXPECT_EQ(age({"7200, 0"}), 7200);
    EXPECT_EQ(age({"0, 7200"}), 0);
    EXPECT_EQ(age({"7200", "0"}), 7200);
    EXPECT_EQ(age({"0", "7200"}), 0);
    EXPECT_EQ(age({"3600", "3600"}), 3600);
}

TEST(Age, CorrectedFromAgeDateAndDelay) {
    Fields r{{"Date", date(kDate)}, {"Age", "30"}};
    Timing t{(kDate + 2) * 1000, (kDate + 5) * 1000}; // 3 s upstream, Date 5 s old on arrival
    // apparent 5, corrected 30 + 3 = 33, resident 10
    EXPECT_EQ(current_age(r, t, (kDate + 15) * 1000), 43);
    r = {{"Date", date(kDate)}};
    EXPECT_EQ(current_age(r, at(kDate), (kDate + 7) * 1000), 7);
    r = {{"Date", date(kDate)}, {"Age", "junk"}};
    EXPECT_EQ(current_age(r, at(kDate), kDate * 1000), 0);
}

TEST(Usable, RequestDirectives) {
    Freshness fresh{10, 100}, stale{110, 100};
    CacheControl none;
    EXPECT_EQ(usable(fresh, none, none), Use::fresh);
    EXPECT_EQ(usable(stale, none, none), Use::revalidate);
    EXPECT_EQ(usable(fresh, parse_cache_control({"no-cache"}), none), Use::revalidate);
    EXPECT_EQ(usable(fresh, parse_cache_control({"max-age=5"}), none), Use::revalidate);
    EXPECT_EQ(usable(fresh, parse_cache_control({"min-fresh=95"}), none), Use::revalidate);
    EXPECT_EQ(usable(stale, parse_cache_control({"max-stale=20"}), none), Use::stale_ok);
    EXPECT_EQ(usable(stale, parse_cache_control({"max-stale=5"}), none), Use::revalidate);
    EXPECT_EQ(usable(stale, parse_cache_control({"max-stale"}), none), Use::stale_ok);
    EXPECT_EQ(usable(stale, parse_cache_control({"max-stale"}),
                     parse_cache_control({"must-revalidate"})),
              Use::revalidate);
    EXPECT_EQ(usable(fresh, none, parse_cache_control({"no-cache"})), Use::revalidate);
}

TEST(Vary, NamesAndNormalisedValues) {
    EXPECT_EQ(*vary_names({{"Vary", "Accept-Language, accept"}, {"Vary", "ACCEPT"}}),
              (std::vector<std::string>{"accept", "accept-language"}));
    EXPECT_FALSE(vary_names({{"Vary", "*"}}));
    const std::vector<std::string> names{"accept-encoding", "x-a"};
    EXPECT_EQ(vary_values({{"Accept-Encoding", "gzip, deflate, br"}, {"X-A", "1,  2"}}, names),
              (std::vector<std::string>{"br=gzip>identity", "1,2"}));
    EXPECT_EQ(vary_values({{"accept-encoding", "br;q=0.5, gzip"}}, names)[0], "gzip>br>identity");
    EXPECT_EQ(vary_values({}, names)[1], "\x01") << "absent differs from empty";
    EXPECT_TRUE(coding_acceptable({{"Accept-Encoding", "gzip"}}, {{"Content-Encoding", "gzip"}}));
    EXPECT_FALSE(coding_acceptable({{"Accept-Encoding", "gzip"}}, {{"Content-Encoding", "br"}}));
    EXPECT_FALSE(coding_acceptable({}, {{"Content-Encoding", "br"}}));
}

// Accept-Encoding values browsers, tools and careless clients send.
const std::vector<std::string> kAcceptEncodings = {
    "", "gzip", "br", "gzip, deflate, br", "gzip, deflate, br, zstd", "deflate, gzip",
    "br;q=0.5, gzip", "gzip;q=0.5, br", "*", "*;q=0", "identity", "identity;q=0",
    "identity;q=0, gzip", "gzip;q=0.5, identity", "gzip, identity;q=0.5", "br;q=0, *",
    "gzip;q=0.3, *;q=0.9", "x-gzip", "GZIP;Q=1, BR;Q=0.9", "deflate", "gzip;q=abc",
    "gzip;q=0.5, *", "identity;q=1, br;q=1"};

// compress's possible configurations (`prefer`, `gzip`, `brotli`), as gh::http names them.
const std::vector<std::vector<std::string_view>> kCompressConfigs = {
    {"br", "gzip"}, {"gzip", "br"}, {"br"}, {"gzip"}};

TEST(Vary, AcceptEncodingVariantKeyAgreesWithCompress) {
    // Two requests that share a variant get the same coding from compress (which negotiates with
    // gh::http::negotiate_coding, compress_test checks), in every compress configuration.
    for (const std::string &a : kAcceptEncodings)
        for (const std::string &b : kAcceptEncodings) {
            const Fields ra{{"Accept-Encoding", a}}, rb{{"Accept-Encoding", b}};
            if (vary_value(ra, "accept-encoding") != vary_value(rb, "accept-encoding"))
                continue;
            for (const auto &offered : kCompressConfigs) {
                const auto ca = gh::http::negotiate_coding(std::string_view(a), offered);
                const auto cb = gh::http::negotiate_coding(std::string_view(b), offered);
                EXPECT_EQ(ca.coding, cb.coding) << '"' << a << "\" vs \"" << b << '"';
                // ...and the stored variant is one the other request may be served.
                const Fields stored{{"Content-Encoding", std::string(ca.coding)}};
                EXPECT_TRUE(coding_acceptable(rb, stored)) << a << " vs " << b;
            }
        }
}

TEST(Vary, AcceptEncodingLinesAreJoinedBeforeRanking) {
    const Fields two_lines{{"Accept-Encoding", "gzip"}, {"Accept-Encoding", "br"}};
    EXPECT_EQ(vary_value(two_lines, "accept-encoding"),
              vary_value({{"Accept-Encoding", "gzip, br"}}, "accept-encoding"));
}

TEST(Vary, StoredCodingMustBeAcceptable) {
    EXPECT_TRUE(coding_acceptable({{"Accept-Encoding", "x-gzip"}}, {{"Content-Encoding", "gzip"}}));
    EXPECT_TRUE(coding_acceptable({{"Accept-Encoding", "gzip"}}, {{"Content-Encoding", "x-gzip"}}));
    EXPECT_FALSE(
        coding_acceptable({{"Accept-Encoding", "*, br;q=0"}}, {{"Content-Encoding", "br"}}));
    EXPECT_TRUE(coding_acceptable({{"Accept-Encoding", "identity;q=0"}}, {}));
}

TEST(Conditional, ClientCopyCurrent) {
    const Fields stored{{"ETag", "\"v1\""}, {"Last-Modified", date(kDate)}};
    EXPECT_TRUE(client_copy_current({{"If-None-Match", "W/\"v1\""}}, stored));
    EXPECT_FALSE(client_copy_current({{"If-None-Match", "\"v2\""}}, stored));
    EXPECT_TRUE(client_copy_current({{"If-None-Match", "*"}}, stored));
    EXPECT_TRUE(client_copy_current({{"If-Modified-Since", date(kDate)}}, stored));
    EXPECT_FALSE(client_copy_current({{"If-Modified-Since", date(kDate - 1)}}, stored));
    EXPECT_FALSE(client_copy_current({{"If-None-Match", "\"v2\""},
                                      {"If-Modified-Since", date(kDate)}},
                                     stored))
        << "If-None-Match takes precedence";
}

TEST(Update, NotModifiedReplacesFieldsButNotFraming) {
    Fields stored{{"Content-Length", "10"}, {"Content-Encoding", "gzip"}, {"X-A", "old"},
                  {"X-A", "old2"}, {"ETag", "\"v1\""}};
    update_stored(stored, {{"X-A", "new"}, {"Content-Length", "0"}, {"Content-Encoding", "br"},
                           {"Connection", "x-b"}, {"X-B", "hop"}, {"X-C", "c"}});
    EXPECT_EQ(values(stored, "x-a"), (std::vector<std::string_view>{"new"}));
    EXPECT_EQ(first(stored, "content-length"), "10");
    EXPECT_EQ(first(stored, "content-encoding"), "gzip");
    EXPECT_FALSE(first(stored, "x-b")) << "Connection-listed fields are not stored";
    EXPECT_EQ(first(stored, "x-c"), "c");
    EXPECT_TRUE(validates(stored, {{"ETag", "\"v1\""}}));
    EXPECT_FALSE(validates(stored, {{"ETag", "\"v2\""}}));
}

TEST(Invalidation, SameOriginLocationsOnly) {
    Fields r{{"Location", "/a?x=1"}, {"Content-Location", "http://other.example/b"}};
    EXPECT_EQ(invalidation_targets(r, "http", "test.local"), (std::vector<std::string>{"/a?x=1"}));
    r = {{"Content-Location", "HTTP://Test.Local:8080/c"}};
    EXPECT_EQ(invalidation_targets(r, "http", "test.local"), (std::vector<std::string>{"/c"}));
    EXPECT_TRUE(unsafe_method("POST"));
    EXPECT_TRUE(unsafe_method("PURGE"));
    EXPECT_FALSE(unsafe_method("HEAD"));
}

TEST(Fields, HopByHopAndConnectionListedAreNotStored) {
    Fields r{{"Connection", "X-Secret, close"}, {"X-Secret", "1"}, {"Keep-Alive", "5"},
             {"X-Kept", "1"}};
    auto s = storable_fields(r);
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0].name, "X-Kept");
}
