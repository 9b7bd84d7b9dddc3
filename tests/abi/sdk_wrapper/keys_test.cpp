// gh::Keys: declared keys read a table with uniform range messages, refuse keys at the wrong
// level, keep absent keys' values, and print the README key table.
#include <gatehouse/sdk.hpp>
#include <gatehouse/sdk/testing.hpp>

#include <gtest/gtest.h>

namespace {

using gh::Scope;
using gh::testing::Value;

enum class Mode { fast, safe };

struct Conf {
    bool on = true;
    int level = 6;
    double ratio = 0.5;
    std::string name = "gh";
    std::vector<std::string> tags = {"a"};
    Mode mode = Mode::safe;
    uint64_t timeout_ms = 5000;
    int64_t grace_s = 0;
    struct {
        uint64_t block = 16 * 1024;
    } nested;
    uint64_t route_only = 0;
};

const gh::Keys<Conf> &keys() {
    static const gh::Keys<Conf> k = std::move(
        gh::Keys<Conf>("demo")
            .flag("on", &Conf::on, Scope::both, "switch").example("on = false")
            .integer("level", &Conf::level, 1, 9, Scope::both, "how hard").example("level = 4")
            .number("ratio", &Conf::ratio, 0, 1, Scope::both, "a share")
            .string("name", &Conf::name, Scope::module, "a | name",
                    [](std::string_view v) { return v.empty() ? "must not be empty" : ""; })
            .strings("tags", &Conf::tags, Scope::both, "labels")
            .choice("mode", &Conf::mode,
                    std::vector<std::pair<std::string, Mode>>{{"fast", Mode::fast},
                                                              {"safe", Mode::safe}},
                    Scope::both, "how")
            .duration("timeout", &Conf::timeout_ms, 10, 60000, Scope::both, "wait")
            .duration_s("grace", &Conf::grace_s, 0, UINT64_MAX, Scope::both, "extra")
            .bytes("block", [](Conf &c) -> uint64_t & { return c.nested.block; }, 1024,
                   16 << 20, Scope::both, "piece")
            .integer("route_only", &Conf::route_only, 0, INT64_MAX, Scope::route, "per route")
            .shown_default("`0` (none)"));
    return k;
}

class Keys : public ::testing::Test {
  protected:
    Conf read(const Value &table, gh::ConfigLevel level = gh::ConfigLevel::module) {
        gh::testing::AtLevel at(level);
        Conf c;
        keys().read(gh::ConfigNode(table.handle()), c);
        return c;
    }
    gh::testing::FakeHost host;
};

TEST_F(Keys, PresentKeysFillTheirMembersAbsentOnesKeepThem) {
    Conf c = read(Value::table({{"on", false},
                                {"level", 3},
                                {"ratio", 1},
                                {"tags", Value::array({"x", "y"})},
                                {"mode", "fast"},
                                {"timeout", "2s"},
                                {"grace", "1m"},
                                {"block", "64k"}}));
    EXPECT_TRUE(host.config_errors.empty()) << host.config_errors_text();
    EXPECT_FALSE(c.on);
    EXPECT_EQ(c.level, 3);
    EXPECT_EQ(c.ratio, 1.0);
    EXPECT_EQ(c.tags, (std::vector<std::string>{"x", "y"}));
    EXPECT_EQ(c.mode, Mode::fast);
    EXPECT_EQ(c.timeout_ms, 2000u);
    EXPECT_EQ(c.grace_s, 60);
    EXPECT_EQ(c.nested.block, 64u * 1024);
    EXPECT_EQ(c.name, "gh"); // absent: the default stays
}

TEST_F(Keys, OutOfRangeAndBadValuesGetOneWordingAndLeaveTheDefault) {
    Conf c = read(Value::table({{"level", 0},
                                {"ratio", 1.5},
                                {"name", ""},
                                {"mode", "slow"},
                                {"timeout", "5ms"},
                                {"block", "32m"},
                                {"on", "yes"}}));
    EXPECT_EQ(host.config_errors,
              (std::vector<std::string>{"on: must be a boolean",
                                        "level: must be between 1 and 9, got 0",
                                        "ratio: must be between 0 and 1, got 1.5",
                                        "name: must not be empty",
                                        "mode: must be one of \"fast\", \"safe\", got \"slow\"",
                                        "timeout: must be between 10ms and 1m, got 5ms",
                                        "block: must be between 1k and 16m, got 32m"}));
    EXPECT_EQ(c.level, 6);
    EXPECT_EQ(c.nested.block, 16u * 1024);
}

TEST_F(Keys, KeysAtTheWrongLevelAreRefusedWithWhereTheyBelong) {
    read(Value::table({{"name", "x"}, {"level", 2}}), gh::ConfigLevel::route);
    read(Value::table({{"route_only", 1}}), gh::ConfigLevel::module);
    EXPECT_EQ(host.config_errors,
              (std::vector<std::string>{
                  "name: is a module-level key: set it in [filter.demo], not in a route's "
                  "filter_config",
                  "route_only: is a route-level key: set it in a route's filter_config.demo"}));
    Conf c = read(Value::table({{"route_only", 7}}), gh::ConfigLevel::route);
    EXPECT_EQ(c.route_only, 7u);
}

TEST_F(Keys, TheKeyTableShowsTypesDefaultsScopesAndEscapesPipes) {
    const std::string table = keys().markdown();
    EXPECT_EQ(table.substr(0, table.find('\n')), "| key | type | default | scope | example | meaning |");
    for (const char *row : {
             "| `on` | bool | `true` | module, route | `on = false` | switch |",
             "| `level` | integer 1–9 | `6` | module, route | `level = 4` | how hard |",
             "| `name` | string | `\"gh\"` | module |  | a \\| name |",
             "| `tags` | array of strings | `[\"a\"]` | module, route |  | labels |",
             "| `mode` | `\"fast\"` or `\"safe\"` | `\"safe\"` | module, route |  | how |",
             "| `timeout` | duration 10ms–1m | `\"5s\"` | module, route |  | wait |",
             "| `grace` | duration | `\"0s\"` | module, route |  | extra |",
             "| `block` | size 1k–16m | `\"16k\"` | module, route |  | piece |",
             "| `route_only` | integer | `0` (none) | route |  | per route |"})
        EXPECT_NE(table.find(row), std::string::npos) << row << "\n" << table;
}

TEST_F(Keys, AModuleWithoutKeysPrintsNoKeys) {
    EXPECT_EQ(gh::Keys<Conf>("none").markdown(), "No keys.\n");
}

} // namespace
