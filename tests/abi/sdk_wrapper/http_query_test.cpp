// <gatehouse/sdk/http/query.hpp>: percent-encoding (RFC 3986 §2.1) and form-style query strings.
#include <gatehouse/sdk/http/query.hpp>

#include <gtest/gtest.h>

#include <string>

using namespace gh::http;

TEST(PercentDecode, EscapesBecomeOctets) {
    EXPECT_EQ(percent_decode("a%20b%2fc%2F"), "a b/c/");
    EXPECT_EQ(percent_decode("%41%6a"), "Aj");
    EXPECT_EQ(percent_decode("%00"), std::string(1, '\0'));
    EXPECT_EQ(percent_decode("%C3%A9"), "\xc3\xa9");
    EXPECT_EQ(percent_decode(""), "");
}

TEST(PercentDecode, PlusIsASpaceOnlyInFormEncoding) {
    EXPECT_EQ(percent_decode("a+b"), "a+b");
    EXPECT_EQ(percent_decode("a+b%2B", true), "a b+");
}

TEST(PercentDecode, MalformedEscapesAreRefused) {
    for (std::string_view bad : {"%", "%4", "abc%", "%G1", "%1G", "%%", "a%2", "%-1", "% 1"})
        EXPECT_EQ(percent_decode(bad), std::nullopt) << bad;
}

TEST(PercentEncode, OnlyUnreservedOctetsStayAsTheyAre) {
    EXPECT_EQ(percent_encode("AZaz09-._~"), "AZaz09-._~");
    EXPECT_EQ(percent_encode("a b&c=d/\xc3\xa9+"), "a%20b%26c%3Dd%2F%C3%A9%2B");
    EXPECT_EQ(percent_encode("a b", true), "a+b");
    EXPECT_EQ(percent_encode(std::string_view("\0\xff", 2)), "%00%FF");
}

TEST(ParseQuery, PairsInOrderDecoded) {
    auto q = parse_query("?a=1&b=x+y%21&&c&d=%3D&a=2&=e");
    ASSERT_TRUE(q);
    ASSERT_EQ(q->size(), 6u);
    EXPECT_EQ((*q)[1].value, "x y!");
    EXPECT_EQ((*q)[2].name, "c");
    EXPECT_EQ((*q)[2].value, "");
    EXPECT_EQ((*q)[3].value, "=");
    EXPECT_EQ((*q)[4].value, "2") << "duplicates are kept in order";
    EXPECT_EQ((*q)[5].name, "");
    EXPECT_TRUE(parse_query("")->empty());
}

TEST(ParseQuery, PlusCanBeKeptLiteral) {
    QueryOptions o;
    o.plus_as_space = false;
    EXPECT_EQ((*parse_query("q=a+b", o))[0].value, "a+b");
}

TEST(ParseQuery, MalformedEscapeFailsTheWholeQuery) {
    EXPECT_EQ(parse_query("a=1&b=%zz"), std::nullopt);
    EXPECT_EQ(parse_query("a%=1"), std::nullopt);
}

TEST(ParseQuery, TooManyPairsIsRefused) {
    std::string q;
    for (int i = 0; i < 1001; ++i)
        q += "k=v&";
    EXPECT_EQ(parse_query(q), std::nullopt);
    QueryOptions o;
    o.max_params = 5000;
    EXPECT_EQ(parse_query(q, o)->size(), 1001u);
    EXPECT_TRUE(parse_query(std::string(100000, '&'))->empty()) << "empty pairs do not count";
}

TEST(QueryValue, FirstMatchAfterDecoding) {
    EXPECT_EQ(query_value("x=0&na%6De=v%20w&name=2", "name"), "v w");
    EXPECT_EQ(query_value("x=0", "name"), std::nullopt);
    EXPECT_EQ(query_value("name=%", "name"), std::nullopt);
}

TEST(FormatQuery, EncodesAndReadsBack) {
    const std::vector<QueryParam> params{{"q", "a b&c"}, {"lang", "fr"}, {"empty", ""}};
    const std::string s = format_query(params);
    EXPECT_EQ(s, "q=a+b%26c&lang=fr&empty=");
    auto back = parse_query(s);
    ASSERT_TRUE(back);
    EXPECT_EQ((*back)[0].value, "a b&c");
    EXPECT_EQ(format_query(params, false), "q=a%20b%26c&lang=fr&empty=");
}
