// cache_disk: the declared keys -- README table, scopes (module-level keys refused in a route),
// limits that depend on each other, the key rules -- read through the SDK's fake host.
#include "config.hpp"

#include <gatehouse/sdk/testing.hpp>

#include <gtest/gtest.h>

namespace cache_disk {
namespace {

using gh::testing::Value;

class CacheDiskConfig : public ::testing::Test {
  protected:
    std::unique_ptr<Config> module(const Value &table) {
        return gh::testing::parse_table(parse_config, table, Config{});
    }
    std::unique_ptr<Config> route(const Value &table, const Config &base) {
        return gh::testing::parse_table(parse_config, table, base, gh::ConfigLevel::route);
    }
    gh::testing::FakeHost host;
};

TEST_F(CacheDiskConfig, ReadmeKeyTableIsTheDeclaration) {
    EXPECT_EQ(gh::testing::key_table_mismatch(keys(), CACHE_DISK_README), "");
}

TEST_F(CacheDiskConfig, ModuleLevelKeysAreRefusedInARouteWithTheReason) {
    auto base = module(Value::table({{"path", "/var/cache/gh"}, {"max_size", "2g"}}));
    ASSERT_TRUE(host.config_errors.empty()) << host.config_errors_text();
    EXPECT_EQ(base->limits.max_size, 2ull << 30);
    auto r = route(Value::table({{"max_size", "1g"}, {"collapse", false}}), *base);
    EXPECT_EQ(host.config_errors,
              std::vector<std::string>{"max_size: is a module-level key: set it in "
                                       "[filter.cache_disk], not in a route's filter_config"});
    EXPECT_FALSE(r->collapse);
    EXPECT_EQ(r->limits.max_size, 2ull << 30); // the module's, untouched
    EXPECT_EQ(r->module_config, base.get());
}

TEST_F(CacheDiskConfig, RouteWithoutAStorePathIsRefused) {
    auto base = module(Value::table());
    route(Value::table({{"enabled", true}}), *base);
    EXPECT_EQ(host.config_errors, std::vector<std::string>{
                                      "a route uses cache_disk but [filter.cache_disk] has no "
                                      "`path`"});
}

TEST_F(CacheDiskConfig, LimitsAreCheckedAgainstEachOtherAndRanges) {
    module(Value::table({{"max_size", "1m"},
                         {"max_object_size", "2m"},
                         {"memory_object_max", "4m"},
                         {"inactive", "10ms"},
                         {"path", "relative"}}));
    module(Value::table({{"max_size", "512k"}, {"collapse_timeout", "20m"}}));
    EXPECT_EQ(host.config_errors,
              (std::vector<std::string>{"path: must be an absolute directory path",
                                        "inactive: must be at least 1s, got 10ms",
                                        "max_object_size: max_object_size cannot exceed max_size",
                                        "memory_object_max: cannot exceed max_object_size",
                                        "max_size: must be at least 1m, got 512k",
                                        "collapse_timeout: must be between 10ms and 10m, got 20m"}));
}

TEST_F(CacheDiskConfig, KeyRulesAndQueryListsReplaceEachOther) {
    auto base = module(Value::table({{"path", "/c"},
                                     {"key", Value::array({"host", "path", "query"})},
                                     {"query_deny", Value::array({"utm_source"})},
                                     {"heuristic_max", "1h"},
                                     {"stale_if_error", "2m"}}));
    ASSERT_TRUE(host.config_errors.empty()) << host.config_errors_text();
    EXPECT_FALSE(base->key.scheme);
    EXPECT_EQ(base->heuristic.max_seconds, 3600);
    EXPECT_EQ(base->stale_if_error_s, 120);
    auto r = route(Value::table({{"query_allow", Value::array({"id"})}}), *base);
    EXPECT_EQ(r->key.query_allow, std::vector<std::string>{"id"});
    EXPECT_TRUE(r->key.query_deny.empty()); // one list replaces the other
    module(Value::table({{"query_allow", Value::array({"a"})},
                         {"query_deny", Value::array({"b"})},
                         {"key", Value::array({"host"})}}));
    EXPECT_EQ(host.config_errors,
              (std::vector<std::string>{"query_deny: query_allow and query_deny cannot both be set",
                                        "key: must include \"path\""}));
}

} // namespace
} // namespace cache_disk
