// <gatehouse/sdk/http.hpp>: lists, q-values (RFC 9110 §12.4.2) and entity tags (§8.8.3, §13.1).
#include <gatehouse/sdk/http.hpp>

#include <gtest/gtest.h>

#include <string>

using namespace gh::http;

TEST(QValue, ExactlyTheGrammar) {
    EXPECT_EQ(parse_qvalue("0"), 0.0);
    EXPECT_EQ(parse_qvalue("0."), 0.0);
    EXPECT_EQ(parse_qvalue("0.5"), 0.5);
    EXPECT_EQ(parse_qvalue("0.125"), 0.125);
    EXPECT_EQ(parse_qvalue("1"), 1.0);
    EXPECT_EQ(parse_qvalue("1.000"), 1.0);
    for (std::string_view bad : {"", ".5", "1.001", "2", "0.1234", "-0", "0,5", "1e0", "nan",
                                 "inf", " 0.5", "0.5 ", "0x1"})
        EXPECT_EQ(parse_qvalue(bad), std::nullopt) << bad;
}

TEST(QValue, ParameterListsDefaultToOneAndFailToZero) {
    EXPECT_EQ(parse_q(""), 1.0);
    EXPECT_EQ(parse_q("level=1"), 1.0);
    EXPECT_EQ(parse_q("level=1; Q=0.3"), 0.3);
    EXPECT_EQ(parse_q("q=bogus"), 0.0);
}

TEST(Lists, QuotedCommasAndUnterminatedQuotes) {
    EXPECT_EQ(split_list("a, \"b, c\" , ,d").size(), 3u);
    const auto open = split_list("a, \"b, c");
    ASSERT_EQ(open.size(), 2u);
    EXPECT_EQ(open[1], "\"b, c");
    EXPECT_EQ(split_list("\"\\").size(), 0u) << "a trailing escape ends the value";
}

TEST(Tokens, Rfc9110Tchar) {
    EXPECT_TRUE(is_token("x-Custom_1.2~!"));
    EXPECT_FALSE(is_token(""));
    EXPECT_FALSE(is_token("a b"));
    EXPECT_FALSE(is_token("a\"b"));
}

TEST(EntityTags, StrongAndWeakComparisonAsInTheRfcTable) {
    // RFC 9110 §8.8.3.2's example table.
    const EntityTag w1{true, "\"1\""}, w2{true, "\"2\""}, s1{false, "\"1\""};
    EXPECT_FALSE(strong_match(w1, w1));
    EXPECT_TRUE(weak_match(w1, w1));
    EXPECT_FALSE(strong_match(w1, w2));
    EXPECT_FALSE(weak_match(w1, w2));
    EXPECT_FALSE(strong_match(w1, s1));
    EXPECT_TRUE(weak_match(w1, s1));
    EXPECT_TRUE(strong_match(s1, s1));
    EXPECT_TRUE(weak_match(s1, s1));
}

TEST(EntityTags, IfMatchUsesStrongComparison) {
    EXPECT_TRUE(match_hits("\"a\", \"b\"", "\"b\""));
    EXPECT_FALSE(match_hits("W/\"b\"", "\"b\""));
    EXPECT_FALSE(match_hits("\"b\"", "W/\"b\""));
    EXPECT_TRUE(match_hits("*", "\"x\""));
    EXPECT_FALSE(match_hits("*", "", false)) << "no current representation";
    EXPECT_FALSE(match_hits("", "\"x\""));
}

TEST(EntityTags, IfNoneMatchUsesWeakComparison) {
    EXPECT_TRUE(none_match_hits("W/\"b\"", "\"b\""));
    EXPECT_TRUE(none_match_hits("\"a\", W/\"b\"", "W/\"b\""));
    EXPECT_FALSE(none_match_hits("\"a\"", "\"b\""));
    EXPECT_TRUE(none_match_hits("*", "\"b\""));
}

TEST(EntityTags, MalformedListsStopAtTheFirstBadElement) {
    EXPECT_EQ(entity_tags("\"a\", b, \"c\"").size(), 1u);
    EXPECT_EQ(entity_tags("\"unterminated").size(), 0u);
    EXPECT_EQ(entity_tags("W/").size(), 0u);
    EXPECT_FALSE(entity_tag("\"a\" \"b\""));
    EXPECT_EQ(format_entity_tag({true, "\"x\""}), "W/\"x\"");
    EXPECT_EQ(format_entity_tag(*entity_tag(" \"y\" ")), "\"y\"");
}
