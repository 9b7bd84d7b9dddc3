// example: unit tests without a kernel -- the SDK's fake host (gatehouse/sdk/testing.hpp) loads
// the module from its entry point, parses config tables and runs hooks on fake streams.
#include "../config.hpp"

#include <gatehouse/sdk/testing.hpp>

#include <gtest/gtest.h>

namespace {

using gh::testing::Value;

class Example : public ::testing::Test {
  protected:
    gh::testing::FakeHost host;                      // first: the module loads against it
    gh::testing::Loaded module{gatehouse_module_v1}; // the entry point GH_MODULE defined
};

TEST_F(Example, ReadmeKeyTableIsTheDeclaration) {
    EXPECT_EQ(gh::testing::key_table_mismatch(example::keys(), EXAMPLE_README), "");
}

TEST_F(Example, SetsTheConfiguredHeaderAndCountsIt) {
    auto config = module.parse(Value::table({{"header", "x-served-by"}, {"value", "edge-1"}}));
    ASSERT_TRUE(config.ok()) << host.config_errors_text();
    gh::testing::FakeStream stream;
    stream.set_fact(GH_FACT_ROUTE, "api");
    EXPECT_EQ(module.phase(stream, GH_PHASE_RESPONSE_HEADERS, config), GH_CONTINUE);
    EXPECT_EQ(stream.header(GH_HEADERS_RESPONSE, "x-served-by"), "edge-1");
    EXPECT_EQ(host.metric("example_headers_added_total", {"api"}), 1);
}

TEST_F(Example, DefaultsWithAnEmptyTableAndRouteOverridesKeyByKey) {
    auto config = module.parse(Value::table());
    ASSERT_TRUE(config.ok());
    Value route_table = Value::table({{"value", "route"}});
    auto route = module.route(config, &route_table);
    ASSERT_TRUE(route.ok());
    gh::testing::FakeStream stream;
    module.phase(stream, GH_PHASE_RESPONSE_HEADERS, route);
    EXPECT_EQ(stream.header(GH_HEADERS_RESPONSE, "x-example"), "route");
}

TEST_F(Example, BadValuesAndUnknownKeysAreConfigErrors) {
    EXPECT_FALSE(module.parse(Value::table({{"header", "bad header"}})).ok());
    EXPECT_FALSE(module.parse(Value::table({{"value", 5}})).ok());
    EXPECT_FALSE(module.parse(Value::table({{"hedaer", "x"}})).ok());
    EXPECT_EQ(host.config_errors,
              (std::vector<std::string>{
                  "header: must be a header field name (letters, digits, -, ...)",
                  "value: must be a string", "hedaer: unknown key"}));
}

} // namespace
