// waf: the declared keys (README table, errors) and the rule sets a generation compiles: shared
// by routes with the same rules, settings merged in front without recompiling.
#include "config.hpp"

#include <gatehouse/sdk/testing.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace waf {
namespace {

using gh::testing::Value;

struct Parsed {
    std::unique_ptr<Config> config;
    std::vector<std::string> errors;
};

Parsed parse(const Value &table, const Config &base = Config{},
             gh::ConfigLevel level = gh::ConfigLevel::module) {
    gh::testing::FakeHost host;
    Parsed p;
    p.config = gh::testing::parse_table(parse_config, table, base, level);
    p.errors = host.config_errors;
    return p;
}

Value own_rules(const char *text = "SecRule ARGS:a \"@streq 1\" \"id:9,phase:1,deny\"") {
    return Value::table({{"crs", false}, {"rules_inline", Value::array({text})}});
}

TEST(WafConfig, ReadmeKeyTableIsTheDeclaration) {
    EXPECT_EQ(gh::testing::key_table_mismatch(keys(), WAF_README), "");
}

TEST(WafConfig, ErrorsUseTheSdksWording) {
    auto p = parse(Value::table({{"crs", false},
                                 {"paranoia", 5},
                                 {"mode", "block"},
                                 {"response_types", Value::array({"html"})}}));
    EXPECT_EQ(p.errors, (std::vector<std::string>{
                            "mode: must be one of \"on\", \"detect\", \"off\", got \"block\"",
                            "paranoia: must be between 1 and 4, got 5",
                            "response_types: media types look like \"text/html\", got \"html\""}));
}

TEST(WafConfig, RoutesShareTheCompiledRules) {
    auto module = parse(own_rules());
    ASSERT_TRUE(module.errors.empty()) << module.errors[0];
    ASSERT_TRUE(module.config->ruleset);
    EXPECT_EQ(module.config->cache->compiles, 1u);
    // Same rules, other settings: a new merged set, no new compile.
    auto detect = parse(Value::table({{"mode", "detect"}, {"paranoia", 3}}), *module.config,
                        gh::ConfigLevel::route);
    ASSERT_TRUE(detect.errors.empty()) << detect.errors[0];
    EXPECT_NE(detect.config->ruleset, module.config->ruleset);
    EXPECT_EQ(module.config->cache->compiles, 1u);
    // Nothing changed: the very same set.
    auto same = parse(Value::table({}), *module.config, gh::ConfigLevel::route);
    EXPECT_EQ(same.config->ruleset, module.config->ruleset);
    // Other rules: compiled once more.
    auto other = parse(Value::table({{"rules_inline", Value::array({"SecRule ARGS:b \"@streq 1\" "
                                                                    "\"id:10,phase:1,deny\""})}}),
                       *module.config, gh::ConfigLevel::route);
    ASSERT_TRUE(other.errors.empty()) << other.errors[0];
    EXPECT_EQ(module.config->cache->compiles, 2u);
    // mode = off: no rules at all.
    auto off = parse(Value::table({{"mode", "off"}}), *module.config, gh::ConfigLevel::route);
    EXPECT_FALSE(off.config->ruleset);
}

TEST(WafConfig, RuleErrorsAreReportedAtTheKey) {
    auto p = parse(own_rules("SecRule ARGS \"@rx a\" \"phase:1,nosuchaction\""));
    ASSERT_EQ(p.errors.size(), 1u);
    EXPECT_EQ(p.errors[0].rfind("rules_inline: rules refused by the engine: rules_inline[0]", 0),
              0u)
        << p.errors[0];
    auto missing = parse(Value::table({{"crs", false},
                                       {"rules", Value::array({"/nonexistent/*.conf"})}}));
    EXPECT_EQ(missing.errors,
              std::vector<std::string>{"rules: no file matches /nonexistent/*.conf"});
    auto nocrs = parse(Value::table({{"crs_setup", "/nonexistent/crs-setup.conf"}}));
    ASSERT_EQ(nocrs.errors.size(), 1u);
    EXPECT_NE(nocrs.errors[0].find("modsecurity-crs"), std::string::npos) << nocrs.errors[0];
}

TEST(WafConfig, FilesAndGlobsLoadInNameOrder) {
    const auto dir = std::filesystem::temp_directory_path() / "waf-config-test";
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "b.conf") << "SecRule ARGS:b \"@streq 1\" \"id:21,phase:1,deny\"\n";
    std::ofstream(dir / "a.conf") << "SecRule ARGS:a \"@streq 1\" \"id:20,phase:1,deny\"\n";
    Config c;
    c.crs = false;
    c.rules = {(dir / "*.conf").string()};
    std::string error;
    auto sources = rule_sources(c, error);
    ASSERT_EQ(error, "");
    ASSERT_EQ(sources.size(), 3u); // the engine settings, then a.conf, b.conf
    EXPECT_EQ(sources[1].content, (dir / "a.conf").string());
    EXPECT_EQ(sources[2].content, (dir / "b.conf").string());
    std::filesystem::remove_all(dir);
}

TEST(WafConfig, GeneratedDirectivesFollowTheKeys) {
    Config c;
    c.mode = Mode::detect;
    c.paranoia = 3;
    c.inbound_threshold = 12;
    c.response_body = ResponseBody::off;
    c.request_body = false;
    const std::string s = settings_directives(c);
    EXPECT_NE(s.find("SecRuleEngine DetectionOnly"), std::string::npos);
    EXPECT_NE(s.find("setvar:tx.paranoia_level=3"), std::string::npos);
    EXPECT_NE(s.find("setvar:tx.inbound_anomaly_score_threshold=12"), std::string::npos);
    const std::string e = engine_directives(c);
    EXPECT_NE(e.find("SecRequestBodyAccess Off"), std::string::npos);
    EXPECT_NE(e.find("SecResponseBodyAccess Off"), std::string::npos);
    EXPECT_NE(e.find("id:200002"), std::string::npos);
    c.base_rules = false;
    EXPECT_EQ(engine_directives(c).find("id:200002"), std::string::npos);
}

} // namespace
} // namespace waf
