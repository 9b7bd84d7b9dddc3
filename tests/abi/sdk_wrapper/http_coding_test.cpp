// <gatehouse/sdk/http/coding.hpp>: content-coding negotiation (RFC 9110 §12.5.3) and the
// Accept-Encoding variant key caches build on it.
#include <gatehouse/sdk/http/coding.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace gh::http;

namespace {

std::string pick(std::optional<std::string_view> ae,
                 std::initializer_list<std::string_view> offered = {"br", "gzip"}) {
    return std::string(negotiate_coding(ae, offered).coding);
}

// Every order of every subset of {br, gzip}: the server configurations a compressor can have.
const std::vector<std::vector<std::string_view>> kServerConfigs = {
    {}, {"br"}, {"gzip"}, {"br", "gzip"}, {"gzip", "br"}};

// Accept-Encoding values real clients send, and awkward ones.
const std::vector<std::string_view> kAcceptEncodings = {
    "", "gzip", "br", "gzip, deflate, br", "gzip, deflate, br, zstd", "deflate, gzip",
    "br;q=0.5, gzip", "gzip;q=0.5, br", "br;q=0.5, gzip;q=0.5", "*", "*;q=0", "identity",
    "identity;q=0", "identity;q=0, gzip", "identity;q=0, *;q=0", "gzip;q=0.5, identity",
    "gzip;q=0.5, identity;q=0.5", "gzip, identity;q=0.5", "gzip;q=0.2, identity;q=0.3, br",
    "br;q=0, *", "gzip;q=0.3, *;q=0.9", "x-gzip", "GZIP;Q=1, BR;Q=0.9", "deflate",
    "gzip;q=abc", "br;q=1.5, gzip;q=0.001", "gzip;q=0.5, *", "*, identity;q=0",
    ",,, ;q=1, gzip", "br, gzip;q=0", "identity;q=1, br;q=1"};

std::string key(std::string_view ae) { return coding_preference_key(ae, {"br", "gzip"}); }

} // namespace

TEST(NegotiateCoding, AbsentHeaderGivesIdentityAndAcceptsIt) {
    const CodingChoice c = negotiate_coding(std::nullopt, {"br", "gzip"});
    EXPECT_EQ(c.coding, "identity");
    EXPECT_TRUE(c.identity_acceptable);
}

TEST(NegotiateCoding, EmptyHeaderMeansIdentityOnly) {
    EXPECT_EQ(pick(""), "identity");
    EXPECT_EQ(pick("  ,  "), "identity");
}

TEST(NegotiateCoding, TiesGoToServerOrderNotClientOrder) {
    EXPECT_EQ(pick("gzip, br"), "br");
    EXPECT_EQ(pick("gzip, br", {"gzip", "br"}), "gzip");
    EXPECT_EQ(pick("gzip;q=0.5, br;q=0.5"), "br");
    EXPECT_EQ(pick("*", {"gzip", "br"}), "gzip");
}

TEST(NegotiateCoding, HighestWeightWins) {
    EXPECT_EQ(pick("gzip;q=1.0, br;q=0.8"), "gzip");
    EXPECT_EQ(pick("GZIP ; Q=0.7 , Br ; q=0.2"), "gzip");
    EXPECT_EQ(pick("gzip;q=0.1, gzip;q=0.9, br;q=0.5"), "gzip") << "a coding listed twice: max";
}

TEST(NegotiateCoding, QZeroExcludesACoding) {
    EXPECT_EQ(pick("br;q=0, gzip"), "gzip");
    EXPECT_EQ(pick("br;q=0, gzip;q=0.000"), "identity");
    EXPECT_EQ(pick("br, gzip;q=0", {"gzip"}), "identity");
}

TEST(NegotiateCoding, StarCoversUnlistedCodingsAndIdentity) {
    EXPECT_EQ(pick("*"), "br");
    EXPECT_EQ(pick("br;q=0, *"), "gzip");
    EXPECT_EQ(pick("gzip;q=0.3, *;q=0.9"), "br");
    // "*" weighs identity too: gzip is less welcome than anything else, identity included.
    EXPECT_EQ(pick("gzip;q=0.5, *", {"gzip"}), "identity");
    EXPECT_FALSE(negotiate_coding("*;q=0", {"br"}).identity_acceptable);
    EXPECT_TRUE(negotiate_coding("*;q=0, identity", {"br"}).identity_acceptable);
}

TEST(NegotiateCoding, IdentityWinsOnlyWithAStrictlyHigherWeight) {
    EXPECT_EQ(pick("gzip;q=0.5, identity"), "identity");
    EXPECT_EQ(pick("gzip, identity"), "gzip");
    EXPECT_EQ(pick("gzip;q=0.5"), "gzip") << "unlisted identity does not rank";
    EXPECT_EQ(pick("gzip;q=0.5, identity;q=0.4"), "gzip");
}

TEST(NegotiateCoding, IdentityRefusedIsReportedWithWhateverWasChosen) {
    const CodingChoice some = negotiate_coding("identity;q=0, gzip", {"br", "gzip"});
    EXPECT_EQ(some.coding, "gzip");
    EXPECT_FALSE(some.identity_acceptable);
    const CodingChoice none = negotiate_coding("identity;q=0, deflate", {"br", "gzip"});
    EXPECT_EQ(none.coding, "identity");
    EXPECT_FALSE(none.identity_acceptable);
}

TEST(NegotiateCoding, XGzipNamesGzip) {
    EXPECT_EQ(pick("x-gzip"), "gzip");
    EXPECT_TRUE(same_coding("X-Gzip", "gzip"));
    EXPECT_TRUE(same_coding("x-compress", "compress"));
    EXPECT_FALSE(same_coding("gzip", "br"));
}

TEST(NegotiateCoding, MalformedWeightsRefuseRatherThanPrefer) {
    EXPECT_EQ(pick("br;q=abc, gzip"), "gzip");
    EXPECT_EQ(pick("br;q=2"), "identity");
    EXPECT_EQ(pick("br;q=0.5000, gzip;q=0.1"), "gzip") << "four decimals is not a qvalue";
    EXPECT_EQ(pick("br;q=nan, gzip;q=0.1"), "gzip");
    EXPECT_EQ(pick("br;q=1e-1"), "identity");
}

TEST(NegotiateCoding, HostileInputIsBoundedAndHarmless) {
    std::string huge;
    for (int i = 0; i < 20000; ++i)
        huge += "x;q=0.5, ";
    huge += "gzip;q=0.1, \"unterminated, br";
    EXPECT_EQ(pick(huge), "gzip");
    EXPECT_EQ(pick(std::string_view("\0gzip", 5)), "identity");
    EXPECT_EQ(pick(";;;;===,,,\"\\"), "identity");
}

TEST(CodingAcceptable, FollowsTheClientsWeights) {
    EXPECT_TRUE(coding_acceptable(std::nullopt, "br")) << "no header: anything goes";
    EXPECT_TRUE(coding_acceptable(std::string_view("gzip"), "gzip"));
    EXPECT_TRUE(coding_acceptable(std::string_view("x-gzip"), "gzip"));
    EXPECT_TRUE(coding_acceptable(std::string_view("gzip"), "X-GZIP"));
    EXPECT_FALSE(coding_acceptable(std::string_view("gzip"), "br"));
    EXPECT_TRUE(coding_acceptable(std::string_view("*"), "br"));
    EXPECT_FALSE(coding_acceptable(std::string_view("*, br;q=0"), "br"));
    EXPECT_TRUE(coding_acceptable(std::string_view(""), "identity"));
    EXPECT_FALSE(coding_acceptable(std::string_view("identity;q=0"), "identity"));
    EXPECT_FALSE(coding_acceptable(std::string_view("*;q=0"), "identity"));
    EXPECT_EQ(accept_encoding_q("br;q=0.25, *;q=0.5", "br"), 0.25);
    EXPECT_EQ(accept_encoding_q("br;q=0.25, *;q=0.5", "gzip"), 0.5);
    EXPECT_EQ(accept_encoding_q("br", "gzip"), std::nullopt);
}

TEST(CodingPreferenceKey, RanksCodingsThenIdentity) {
    const std::initializer_list<std::string_view> both = {"br", "gzip"};
    EXPECT_EQ(coding_preference_key("gzip, deflate, br", both), "br=gzip>identity");
    EXPECT_EQ(coding_preference_key("br;q=0.5, gzip", both), "gzip>br>identity");
    EXPECT_EQ(coding_preference_key("gzip", both), "gzip>identity");
    EXPECT_EQ(coding_preference_key("", both), "identity");
    EXPECT_EQ(coding_preference_key("*", both), "br=gzip>identity");
    EXPECT_EQ(coding_preference_key("gzip;q=0.5, identity", both), "identity>gzip");
    EXPECT_EQ(coding_preference_key("identity;q=0, gzip", both), "gzip");
    EXPECT_EQ(coding_preference_key("identity;q=0", both), "");
    EXPECT_EQ(coding_preference_key("GZIP, X-Gzip;q=0.1", {"gzip"}), "gzip>identity");
}

TEST(CodingPreferenceKey, EqualKeysGetEqualChoicesInEveryServerConfiguration) {
    // The property a cache relies on: one key, one compressor output, whatever the server offers.
    for (std::string_view a : kAcceptEncodings)
        for (std::string_view b : kAcceptEncodings) {
            if (key(a) != key(b))
                continue;
            for (const auto &offered : kServerConfigs) {
                const CodingChoice ca = negotiate_coding(a, offered);
                const CodingChoice cb = negotiate_coding(b, offered);
                EXPECT_EQ(ca.coding, cb.coding) << '"' << a << "\" vs \"" << b << '"';
                EXPECT_EQ(ca.identity_acceptable, cb.identity_acceptable) << a << " vs " << b;
            }
        }
}

TEST(CodingPreferenceKey, WhatIsChosenForAKeyIsAcceptableToEveryRequestWithThatKey) {
    for (std::string_view a : kAcceptEncodings)
        for (std::string_view b : kAcceptEncodings) {
            if (key(a) != key(b))
                continue;
            for (const auto &offered : kServerConfigs) {
                const CodingChoice ca = negotiate_coding(a, offered);
                if (ca.coding != "identity") {
                    EXPECT_TRUE(coding_acceptable(b, ca.coding)) << a << " vs " << b;
                }
            }
        }
}
