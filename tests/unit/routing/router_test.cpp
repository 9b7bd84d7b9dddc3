#include "routing/router.hpp"

#include <gtest/gtest.h>

using gatehouse::routing::Router;

struct R {
    const char* name;
};

TEST(Router, ExactHostBeatsWildcardBeatsAny) {
    R exact{"exact"}, wild{"wild"}, any{"any"};
    Router<R> router;
    router.add("", "/", false, &any);
    router.add("*.example.com", "/", false, &wild);
    router.add("www.example.com", "/", false, &exact);
    EXPECT_EQ(router.match("www.example.com", "/x")->name, std::string("exact"));
    EXPECT_EQ(router.match("api.example.com", "/x")->name, std::string("wild"));
    EXPECT_EQ(router.match("example.com", "/x")->name, std::string("any"))
        << "a wildcard needs at least one more label";
    EXPECT_EQ(router.match("other.org", "/x")->name, std::string("any"));
}

TEST(Router, LongestWildcardSuffixWins) {
    R a{"a"}, b{"b"};
    Router<R> router;
    router.add("*.example.com", "/", false, &a);
    router.add("*.api.example.com", "/", false, &b);
    EXPECT_EQ(router.match("v1.api.example.com", "/")->name, std::string("b"));
    EXPECT_EQ(router.match("www.example.com", "/")->name, std::string("a"));
}

TEST(Router, ExactPathThenLongestPrefix) {
    R root{"root"}, api{"api"}, v1{"v1"}, exact{"exact"};
    Router<R> router;
    router.add("", "/", false, &root);
    router.add("", "/api/", false, &api);
    router.add("", "/api/v1/", false, &v1);
    router.add("", "/api/v1/health", true, &exact);
    EXPECT_EQ(router.match("h", "/api/v1/health")->name, std::string("exact"));
    EXPECT_EQ(router.match("h", "/api/v1/healthz")->name, std::string("v1"));
    EXPECT_EQ(router.match("h", "/api/x")->name, std::string("api"));
    EXPECT_EQ(router.match("h", "/other")->name, std::string("root"));
}

TEST(Router, NoMatchInTheChosenHostGroupIsNoRoute) {
    R any{"any"}, host{"host"};
    Router<R> router;
    router.add("", "/", false, &any);
    router.add("example.com", "/only/", false, &host);
    EXPECT_EQ(router.match("example.com", "/else"), nullptr);
    EXPECT_EQ(router.match("other.com", "/else")->name, std::string("any"));
}
