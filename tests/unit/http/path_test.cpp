#include "http/path.hpp"

#include <gtest/gtest.h>

using gatehouse::http::normalise_target;

namespace {
std::string normalised(std::string_view target) {
    std::string path;
    std::string_view query;
    EXPECT_TRUE(normalise_target(target, path, query)) << target;
    return path;
}
bool rejected(std::string_view target) {
    std::string path;
    std::string_view query;
    return !normalise_target(target, path, query);
}
} // namespace

TEST(PathNormalisation, DotSegmentsAreResolved) {
    EXPECT_EQ(normalised("/a/../b"), "/b");
    EXPECT_EQ(normalised("/a/./b/."), "/a/b/");
    EXPECT_EQ(normalised("/a/b/.."), "/a/");
}

TEST(PathNormalisation, RepeatedSlashesAreMerged) { EXPECT_EQ(normalised("//a///b"), "/a/b"); }

TEST(PathNormalisation, UnreservedEscapesAreDecodedOthersUppercased) {
    EXPECT_EQ(normalised("/%41%7e"), "/A~");
    EXPECT_EQ(normalised("/a%2fb"), "/a%2Fb");
    EXPECT_EQ(normalised("/a/%2e%2E/x"), "/x") << "decoded dots are dot-segments";
    EXPECT_TRUE(rejected("/%2e%2e/x"));
}

TEST(PathNormalisation, ClimbingAboveRootIsRejected) {
    EXPECT_TRUE(rejected("/../x"));
    EXPECT_TRUE(rejected("/a/../../x"));
}

TEST(PathNormalisation, MalformedEscapesAndNonOriginFormAreRejected) {
    EXPECT_TRUE(rejected("/a%2"));
    EXPECT_TRUE(rejected("/a%zz"));
    EXPECT_TRUE(rejected("a/b"));
    EXPECT_TRUE(rejected("*"));
}

TEST(PathNormalisation, FragmentsAreRejectedInThePathAndTheQuery) {
    // RFC 9112 §3.2: no '#' anywhere in a request-target (HAProxy and Apache answer 400 too).
    EXPECT_TRUE(rejected("/a#b"));
    EXPECT_TRUE(rejected("/index.html?I=Like&Apples=Today#tag"));
    EXPECT_FALSE(rejected("/a?b=%23"));
}

TEST(PathNormalisation, QueryIsSplitOffAndKept) {
    std::string path;
    std::string_view query;
    ASSERT_TRUE(normalise_target("/a/../b?x=/../y", path, query));
    EXPECT_EQ(path, "/b");
    EXPECT_EQ(query, "x=/../y");
}
