#include "http/message.hpp"

#include <gtest/gtest.h>

using gatehouse::http::classify;
using gatehouse::http::FieldKind;
using gatehouse::http::iequals;

TEST(Fields, IequalsFoldsLettersOnly) {
    EXPECT_TRUE(iequals("Content-Length", "content-length"));
    EXPECT_TRUE(iequals("", ""));
    EXPECT_FALSE(iequals("content-length", "content-lengtH2"));
    EXPECT_FALSE(iequals("te", "tf"));
    // '@' and '`' (and '[' and '{') differ only in bit 0x20 but are not letters.
    EXPECT_FALSE(iequals("a@", "a`"));
    EXPECT_FALSE(iequals("x[", "x{"));
    EXPECT_FALSE(iequals("\xc0", "\xe0"));
}

TEST(Fields, ClassifiesEverySpecialName) {
    for (auto [name, kind] : std::initializer_list<std::pair<const char*, FieldKind>>{
             {"Connection", FieldKind::hop_by_hop},
             {"KEEP-ALIVE", FieldKind::hop_by_hop},
             {"proxy-connection", FieldKind::hop_by_hop},
             {"TE", FieldKind::hop_by_hop},
             {"Trailer", FieldKind::hop_by_hop},
             {"Transfer-Encoding", FieldKind::hop_by_hop},
             {"upgrade", FieldKind::hop_by_hop},
             {"Proxy-Authenticate", FieldKind::hop_by_hop},
             {"Proxy-Authorization", FieldKind::hop_by_hop},
             {"Expect", FieldKind::expect},
             {"content-length", FieldKind::content_length},
             {"Forwarded", FieldKind::forwarded},
             {"X-Forwarded-For", FieldKind::x_forwarded_for},
             {"x-forwarded-proto", FieldKind::x_forwarded_proto},
             {"X-Forwarded-Host", FieldKind::x_forwarded_host},
         })
        EXPECT_EQ(classify(name), kind) << name;
}

TEST(Fields, NamesOfTheSameLengthAreOther) {
    for (const char* name : {"", "x", "tx", "accept", "trailers", "upgrades", "forwardex",
                             "connectiox", "content-type", "content-lengthy", "x-forwarded-fox",
                             "proxy-connectiom", "x-forwarded-hosts", "transfer-encodinG2",
                             "proxy-authenticatf", "proxy-authorizatioX"})
        EXPECT_EQ(classify(name), FieldKind::other) << name;
}
