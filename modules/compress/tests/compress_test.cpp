// compress: negotiation (RFC 9110 §12.5.3), type matching and the header rules.
#include "compress.hpp"

#include <gatehouse/sdk/http/coding.hpp>

#include <gtest/gtest.h>

using namespace compress_filter;

namespace {

const std::vector<Coding> kBoth = {Coding::br, Coding::gzip};
const std::vector<Coding> kGzipFirst = {Coding::gzip, Coding::br};
const std::vector<Coding> kGzipOnly = {Coding::gzip};
const std::vector<Coding> kBrOnly = {Coding::br};
const std::vector<std::string> kTypes = {"text/*", "application/json", "image/svg+xml"};

Coding pick(std::optional<std::string_view> ae, const std::vector<Coding> &enabled = kBoth) {
    return negotiate(ae, enabled).coding;
}

} // namespace

TEST(Negotiate, AbsentOrEmptyIsIdentity) {
    EXPECT_EQ(pick(std::nullopt), Coding::identity);
    EXPECT_TRUE(negotiate(std::nullopt, kBoth).identity_acceptable);
    EXPECT_EQ(pick(""), Coding::identity);
    EXPECT_EQ(pick("identity"), Coding::identity);
}

TEST(Negotiate, TiesGoToServerPreference) {
    EXPECT_EQ(pick("gzip, br"), Coding::br);
    EXPECT_EQ(pick("gzip;q=0.5, br;q=0.5"), Coding::br);
    EXPECT_EQ(pick("gzip, deflate, br, zstd"), Coding::br);
    EXPECT_EQ(pick("gzip, br", kGzipFirst), Coding::gzip);
    EXPECT_EQ(pick("*", kGzipFirst), Coding::gzip);
}

TEST(Negotiate, HighestQWinsOverPreference) {
    EXPECT_EQ(pick("gzip;q=1.0, br;q=0.8"), Coding::gzip);
    EXPECT_EQ(pick("br;q=0.9, gzip;q=0.1"), Coding::br);
    EXPECT_EQ(pick("GZIP ; Q=0.7 , Br ; q=0.2"), Coding::gzip);
    EXPECT_EQ(pick("br;q=0.9, gzip;q=0.1", kGzipFirst), Coding::br);
}

TEST(Negotiate, QZeroExcludes) {
    EXPECT_EQ(pick("br;q=0, gzip"), Coding::gzip);
    EXPECT_EQ(pick("br;q=0, gzip;q=0"), Coding::identity);
    EXPECT_EQ(pick("gzip;q=0.000"), Coding::identity);
}

TEST(Negotiate, StarCoversUnlistedCodingsAndIdentity) {
    EXPECT_EQ(pick("*"), Coding::br);
    EXPECT_EQ(pick("*", kGzipOnly), Coding::gzip);
    EXPECT_EQ(pick("br;q=0, *"), Coding::gzip);
    EXPECT_EQ(pick("gzip;q=0.3, *;q=0.9"), Coding::br);
    const Negotiation none = negotiate("*;q=0", kBoth);
    EXPECT_EQ(none.coding, Coding::identity);
    EXPECT_FALSE(none.identity_acceptable);
    EXPECT_TRUE(negotiate("*;q=0, identity", kBoth).identity_acceptable);
}

TEST(Negotiate, IdentityRefusedStillNegotiatesACoding) {
    const Negotiation n = negotiate("identity;q=0, gzip", kBoth);
    EXPECT_EQ(n.coding, Coding::gzip);
    EXPECT_FALSE(n.identity_acceptable);
    // Nothing acceptable at all: identity is what we send (the caller decides), flagged.
    const Negotiation nothing = negotiate("identity;q=0, deflate", kBoth);
    EXPECT_EQ(nothing.coding, Coding::identity);
    EXPECT_FALSE(nothing.identity_acceptable);
}

TEST(Negotiate, ExplicitIdentityPreferredOverCodings) {
    EXPECT_EQ(pick("gzip;q=0.5, identity"), Coding::identity);
    EXPECT_EQ(pick("gzip, identity"), Coding::gzip);            // tie: the coding
    EXPECT_EQ(pick("gzip;q=0.5"), Coding::gzip);                // unlisted identity: no rank
    EXPECT_EQ(pick("gzip;q=0.5, identity;q=0.4"), Coding::gzip);
}

TEST(Negotiate, DisabledCodecsAreNotChosen) {
    EXPECT_EQ(pick("br", kGzipOnly), Coding::identity);
    EXPECT_EQ(pick("gzip, br", kBrOnly), Coding::br);
    EXPECT_EQ(pick("gzip, br", kGzipOnly), Coding::gzip);
    EXPECT_EQ(pick("x-gzip"), Coding::gzip);
    EXPECT_EQ(pick("gzip, br", {}), Coding::identity);
}

TEST(Negotiate, MalformedQIsRefused) {
    EXPECT_EQ(pick("br;q=abc, gzip"), Coding::gzip);
    EXPECT_EQ(pick("br;q=2"), Coding::identity);
    EXPECT_EQ(pick(",, ;q=1, gzip"), Coding::gzip);
}

TEST(Negotiate, StarWeighsUnlistedIdentityToo) {
    // "gzip is less welcome than anything else" -- identity included (RFC 9110 §12.5.3).
    EXPECT_EQ(pick("gzip;q=0.5, *", kGzipOnly), Coding::identity);
    EXPECT_EQ(pick("gzip;q=0.5, *"), Coding::br);
}

TEST(Negotiate, IsTheSdkRuleCacheDiskKeysOn) {
    // cache_disk's Accept-Encoding variant key is built on gh::http::negotiate_coding's rule;
    // compress must choose exactly what that function chooses.
    const std::vector<std::vector<Coding>> configs = {kBoth, kGzipFirst, kGzipOnly, kBrOnly};
    for (std::string_view ae : {"", "gzip", "gzip, deflate, br", "br;q=0.5, gzip", "*", "*;q=0",
                                "identity;q=0, gzip", "gzip;q=0.5, identity", "x-gzip",
                                "br;q=0, *", "gzip;q=0.5, *", "br;q=abc, gzip"})
        for (const auto &enabled : configs) {
            std::vector<std::string_view> names;
            for (Coding c : enabled)
                names.push_back(coding_name(c));
            const Negotiation n = negotiate(ae, enabled);
            const gh::http::CodingChoice sdk = gh::http::negotiate_coding(ae, names);
            EXPECT_EQ(coding_name(n.coding), sdk.coding) << ae;
            EXPECT_EQ(n.identity_acceptable, sdk.identity_acceptable) << ae;
        }
}

TEST(TypeMatches, ExactWildcardAndParameters) {
    EXPECT_TRUE(type_matches("text/html", kTypes));
    EXPECT_TRUE(type_matches("text/plain; charset=utf-8", kTypes));
    EXPECT_TRUE(type_matches("Application/JSON", kTypes));
    EXPECT_TRUE(type_matches(" image/svg+xml ;q=1", kTypes));
    EXPECT_FALSE(type_matches("application/octet-stream", kTypes));
    EXPECT_FALSE(type_matches("image/png", kTypes));
    EXPECT_FALSE(type_matches("textual/html", kTypes));
    EXPECT_FALSE(type_matches("", kTypes));
    EXPECT_FALSE(type_matches("text", kTypes));
    EXPECT_TRUE(type_matches("image/png", {"*/*"}));
    EXPECT_EQ(media_type("Text/Event-Stream; charset=utf-8"), "text/event-stream");
}

TEST(Headers, NoTransform) {
    EXPECT_TRUE(has_no_transform("public, no-transform"));
    EXPECT_TRUE(has_no_transform("No-Transform"));
    EXPECT_FALSE(has_no_transform("no-store, max-age=0"));
}

TEST(Headers, VaryMergeNeverDuplicates) {
    EXPECT_EQ(merge_vary(""), "Accept-Encoding");
    EXPECT_EQ(merge_vary("Origin"), "Origin, Accept-Encoding");
    EXPECT_EQ(merge_vary("Origin, accept-encoding"), std::nullopt);
    EXPECT_EQ(merge_vary("*"), std::nullopt);
    EXPECT_EQ(merge_vary(" , "), "Accept-Encoding");
}

TEST(Headers, WeakenEtag) {
    EXPECT_EQ(weaken_etag("\"abc\""), "W/\"abc\"");
    EXPECT_EQ(weaken_etag("W/\"abc\""), "W/\"abc\"");
    EXPECT_EQ(weaken_etag("garbage"), "garbage");
}

TEST(Headers, IfNoneMatchGetsTheStrongFormOfWeakTags) {
    EXPECT_EQ(strengthen_if_none_match("W/\"a\""), "W/\"a\", \"a\"");
    EXPECT_EQ(strengthen_if_none_match("W/\"a\", \"b\", W/\"c,d\""),
              "W/\"a\", \"b\", W/\"c,d\", \"a\", \"c,d\"");
    EXPECT_EQ(strengthen_if_none_match("W/\"a\", \"a\""), std::nullopt);
    EXPECT_EQ(strengthen_if_none_match("\"a\""), std::nullopt);
    EXPECT_EQ(strengthen_if_none_match("*"), std::nullopt);
    EXPECT_EQ(strengthen_if_none_match("W/\"a\" ,W/\"a\""), "W/\"a\" ,W/\"a\", \"a\"");
}

TEST(Headers, WeakFormListed) {
    EXPECT_TRUE(lists_weak_form("\"x\", W/\"a\"", "\"a\""));
    EXPECT_FALSE(lists_weak_form("\"a\"", "\"a\""));
    EXPECT_FALSE(lists_weak_form("W/\"a\"", "W/\"a\""));
    EXPECT_FALSE(lists_weak_form("W/\"b\"", "\"a\""));
}

TEST(Headers, ParseLength) {
    EXPECT_EQ(parse_length("0"), 0u);
    EXPECT_EQ(parse_length(" 1234 "), 1234u);
    EXPECT_EQ(parse_length("12a"), std::nullopt);
    EXPECT_EQ(parse_length(""), std::nullopt);
    EXPECT_EQ(parse_length("-1"), std::nullopt);
}
