#include "config/units.hpp"

#include <gtest/gtest.h>

using namespace gatehouse::config;

TEST(Units, DurationsTakeAUnit) {
    EXPECT_EQ(parse_duration_ms("250ms"), 250u);
    EXPECT_EQ(parse_duration_ms("5s"), 5000u);
    EXPECT_EQ(parse_duration_ms("2m"), 120000u);
    EXPECT_EQ(parse_duration_ms("1h"), 3600000u);
    EXPECT_EQ(parse_duration_ms("1d"), 86400000u);
    EXPECT_EQ(parse_duration_ms("7d"), 604800000u);
    EXPECT_FALSE(parse_duration_ms("1D"));
    EXPECT_FALSE(parse_duration_ms("1w"));
    EXPECT_FALSE(parse_duration_ms("213503982335d")); // overflows uint64 milliseconds
    EXPECT_FALSE(parse_duration_ms("5"));
    EXPECT_FALSE(parse_duration_ms("5 s"));
    EXPECT_FALSE(parse_duration_ms("-5s"));
    EXPECT_FALSE(parse_duration_ms("1.5s"));
}

TEST(Units, SizesArePowersOf1024) {
    EXPECT_EQ(parse_bytes("512"), 512u);
    EXPECT_EQ(parse_bytes("16k"), 16384u);
    EXPECT_EQ(parse_bytes("10m"), 10u * 1024 * 1024);
    EXPECT_EQ(parse_bytes("1g"), 1024ull * 1024 * 1024);
    EXPECT_FALSE(parse_bytes("1t"));
    EXPECT_FALSE(parse_bytes("99999999999999999999g"));
}
