// <gatehouse/sdk/http/structured.hpp>: RFC 8941 parsing and serialisation, with the RFC's own
// examples and the inputs §4.2 says must fail.
#include <gatehouse/sdk/http/structured.hpp>

#include <gtest/gtest.h>

#include <string>

using namespace gh::http::sf;

namespace {

std::string round_trip_list(std::string_view v) {
    auto l = parse_list(v);
    if (!l)
        return "<parse failed>";
    return serialize(*l).value_or("<serialize failed>");
}

std::string round_trip_dict(std::string_view v) {
    auto d = parse_dictionary(v);
    if (!d)
        return "<parse failed>";
    return serialize(*d).value_or("<serialize failed>");
}

const Item &item(const Member &m) { return std::get<Item>(m); }

} // namespace

TEST(StructuredFields, ListOfTokensParsesInOrder) {
    auto l = parse_list("sugar, tea, rum");
    ASSERT_TRUE(l);
    ASSERT_EQ(l->size(), 3u);
    EXPECT_EQ(std::get<Token>(item((*l)[1]).value).value, "tea");
}

TEST(StructuredFields, InnerListsAndParametersParse) {
    auto l = parse_list("(\"foo\" \"bar\");lvl=5, (\"baz\"), ()");
    ASSERT_TRUE(l);
    ASSERT_EQ(l->size(), 3u);
    const InnerList &first = std::get<InnerList>((*l)[0]);
    ASSERT_EQ(first.items.size(), 2u);
    EXPECT_EQ(std::get<std::string>(first.items[1].value), "bar");
    EXPECT_EQ(std::get<int64_t>(*find(first.params, "lvl")), 5);
    EXPECT_TRUE(std::get<InnerList>((*l)[2]).items.empty());
}

TEST(StructuredFields, DictionaryMembersBooleansAndByteSequences) {
    auto d = parse_dictionary("en=\"Applepie\", da=:w4ZibGV0w6ZydGU=:, a=?0, b, c; foo=bar");
    ASSERT_TRUE(d);
    EXPECT_EQ(std::get<std::string>(item(*find(*d, "en")).value), "Applepie");
    EXPECT_EQ(std::get<ByteSequence>(item(*find(*d, "da")).value).base64, "w4ZibGV0w6ZydGU=");
    EXPECT_EQ(std::get<bool>(item(*find(*d, "a")).value), false);
    EXPECT_EQ(std::get<bool>(item(*find(*d, "b")).value), true);
    const Item &c = item(*find(*d, "c"));
    EXPECT_EQ(std::get<bool>(c.value), true);
    EXPECT_EQ(std::get<Token>(*find(c.params, "foo")).value, "bar");
    EXPECT_EQ(find(*d, "zz"), nullptr);
}

TEST(StructuredFields, DuplicateDictionaryKeyKeepsPlaceTakesLastValue) {
    auto d = parse_dictionary("a=1, b=2, a=3");
    ASSERT_TRUE(d);
    ASSERT_EQ(d->size(), 2u);
    EXPECT_EQ((*d)[0].first, "a");
    EXPECT_EQ(std::get<int64_t>(item((*d)[0].second).value), 3);
}

TEST(StructuredFields, IntegersAndDecimals) {
    EXPECT_EQ(std::get<int64_t>(parse_item("-42")->value), -42);
    EXPECT_EQ(std::get<int64_t>(parse_item("999999999999999")->value), 999999999999999);
    EXPECT_DOUBLE_EQ(std::get<double>(parse_item("4.5")->value), 4.5);
    EXPECT_DOUBLE_EQ(std::get<double>(parse_item("-0.25")->value), -0.25);
    EXPECT_DOUBLE_EQ(std::get<double>(parse_item("123456789012.123")->value), 123456789012.123);
    EXPECT_EQ(std::get<std::string>(parse_item("\"a \\\"q\\\" \\\\\"")->value), "a \"q\" \\");
    EXPECT_EQ(std::get<Token>(parse_item("*foo/bar:baz")->value).value, "*foo/bar:baz");
}

TEST(StructuredFields, MalformedFieldsFailWhole) {
    for (std::string_view bad :
         {"1.1234", "1234567890123456", "1234567890123.5", "1.", "-", "-a", "\"unterminated",
          "\"bad \\escape\"", "\"tab\there\"", "\"caf\xc3\xa9\"", ":abc", ":ab$c:", "?2", "?",
          "@", "a b", "5;", "5;A=1", ""}) {
        EXPECT_FALSE(parse_item(bad)) << bad;
    }
    for (std::string_view bad : {"a, ", "a,,b", "(a b", "(a b)c", "a;", "(\"x\"\"y\")", ","})
        EXPECT_FALSE(parse_list(bad)) << bad;
    for (std::string_view bad : {"A=1", "a=1,", "a=(1", "a==1", "1a=2", "a=1 b=2"})
        EXPECT_FALSE(parse_dictionary(bad)) << bad;
}

TEST(StructuredFields, WhitespaceRules) {
    EXPECT_TRUE(parse_list("  a ,\tb  "));
    EXPECT_FALSE(parse_item("\t1")) << "only SP may lead";
    ASSERT_TRUE(parse_list(""));
    EXPECT_TRUE(parse_list("")->empty()) << "an empty List is an empty field";
}

TEST(StructuredFields, SerialisesCanonically) {
    EXPECT_EQ(round_trip_list("sugar,   tea,rum"), "sugar, tea, rum");
    EXPECT_EQ(round_trip_list("( 1  2 );a;b=?0"), "(1 2);a;b=?0");
    EXPECT_EQ(round_trip_dict("a=?1, b=?1;x=1, c=(1 \"two\"), d=:AQID:"),
              "a, b;x=1, c=(1 \"two\"), d=:AQID:");
    EXPECT_EQ(round_trip_list("1.500, -0.0, 2.100"), "1.5, 0.0, 2.1") << "-0 is not below zero";
}

TEST(StructuredFields, DecimalsRoundHalfToEvenAtThreePlaces) {
    EXPECT_EQ(serialize(Item{decimal(0.0625), {}}), "0.062");
    EXPECT_EQ(serialize(Item{decimal(0.1875), {}}), "0.188");
    EXPECT_EQ(serialize(Item{decimal(2), {}}), "2.0");
    EXPECT_EQ(serialize(Item{decimal(-1.5), {}}), "-1.5");
}

TEST(StructuredFields, UnrepresentableValuesAreNotSerialised) {
    EXPECT_FALSE(serialize(Item{integer(1'000'000'000'000'000), {}}));
    EXPECT_FALSE(serialize(Item{decimal(1e12), {}}));
    EXPECT_FALSE(serialize(Item{decimal(std::nan("")), {}}));
    EXPECT_FALSE(serialize(Item{string("line\nbreak"), {}}));
    EXPECT_FALSE(serialize(Item{token("1abc"), {}}));
    EXPECT_FALSE(serialize(Item{bytes("no spaces"), {}}));
    EXPECT_FALSE(serialize(Item{integer(1), {{"Upper", boolean(true)}}}));
    EXPECT_FALSE(serialize(Dictionary{{"", Member(Item{integer(1), {}})}}));
}

TEST(StructuredFields, BuiltValuesSerialise) {
    const Dictionary d{{"u", Member(Item{integer(3), {}})},
                       {"i", Member(Item{boolean(true), {}})},
                       {"t", Member(Item{string("say \"hi\""), {{"q", decimal(0.5)}}})}};
    EXPECT_EQ(serialize(d), "u=3, i, t=\"say \\\"hi\\\"\";q=0.5");
    EXPECT_EQ(serialize(List{}), "");
}

TEST(StructuredFields, HostileInputIsBoundedAndHarmless) {
    std::string many;
    for (int i = 0; i < 50000; ++i)
        many += "a, ";
    many += "b";
    auto l = parse_list(many);
    ASSERT_TRUE(l);
    EXPECT_EQ(l->size(), 50001u);
    EXPECT_FALSE(parse_list(std::string(100000, '(')));
    EXPECT_FALSE(parse_dictionary(std::string(100000, '"')));
    // Every byte value, in every position of a short field: no crash, no UB (ASan/UBSan run).
    std::string s = "a=(1 \"x\");k=:AA==:";
    for (std::size_t pos = 0; pos < s.size(); ++pos)
        for (int b = 0; b < 256; ++b) {
            std::string t = s;
            t[pos] = static_cast<char>(b);
            (void)parse_dictionary(t);
            (void)parse_list(t);
            (void)parse_item(t);
        }
}
