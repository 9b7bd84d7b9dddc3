// sso: the declared keys (README tables, errors), providers and the derived sealers.
#include "config.hpp"
#include "provider.hpp"
#include "store.hpp"

#include <gatehouse/sdk/testing.hpp>

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace sso {
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

const std::string secret(40, 's');

Value provider(const char *issuer = "https://idp.example.com") {
    return Value::table({{"issuer", issuer}, {"upstream", "idp"}, {"client_id", "app"}});
}

TEST(SsoConfig, ReadmeKeyTablesAreTheDeclarations) {
    EXPECT_EQ(gh::testing::key_table_mismatch(keys(), SSO_README), "");
    std::ifstream in(SSO_README);
    std::stringstream text;
    text << in.rdbuf();
    EXPECT_NE(text.str().find(provider_keys().markdown()), std::string::npos)
        << "the README's provider table is not:\n" << provider_keys().markdown();
}

TEST(SsoConfig, OneProviderIsChosenBySelf) {
    auto p = parse(Value::table({{"secrets", Value::array({secret})},
                                 {"providers", Value::table({{"corp", provider()}})}}));
    ASSERT_TRUE(p.errors.empty()) << p.errors[0];
    ASSERT_TRUE(p.config->chosen);
    EXPECT_EQ(p.config->chosen->config().name, "corp");
    EXPECT_EQ(p.config->chosen->config().scopes.front(), "openid");
    ASSERT_TRUE(p.config->session_sealer);
    // A route picks another one by name; an unknown name is an error at its key.
    std::vector<std::pair<std::string, Value>> both;
    both.emplace_back("a", provider());
    both.emplace_back("b", provider("https://b"));
    auto two = parse(Value::table({{"secrets", Value::array({secret})},
                                   {"provider", "a"},
                                   {"providers", Value::table(std::move(both))}}));
    ASSERT_TRUE(two.errors.empty()) << two.errors[0];
    auto route = parse(Value::table({{"provider", "b"}}), *two.config, gh::ConfigLevel::route);
    ASSERT_TRUE(route.errors.empty()) << route.errors[0];
    EXPECT_EQ(route.config->chosen->config().issuer, "https://b");
    auto wrong = parse(Value::table({{"provider", "c"}}), *two.config, gh::ConfigLevel::route);
    ASSERT_EQ(wrong.errors.size(), 1u);
    EXPECT_NE(wrong.errors[0].find("no provider \"c\""), std::string::npos) << wrong.errors[0];
}

TEST(SsoConfig, BadValuesAreRefusedAtTheirKey) {
    auto p = parse(Value::table(
        {{"secrets", Value::array({"short"})},
         {"callback_path", "callback"},
         {"user_header", "X User"},
         {"providers",
          Value::table({{"corp", Value::table({{"issuer", "idp.example.com"},
                                               {"upstream", "idp"},
                                               {"algs", Value::array({"HS256"})}})}})}}));
    const std::string all = [&] {
        std::string s;
        for (const auto &e : p.errors)
            s += e + "\n";
        return s;
    }();
    EXPECT_NE(all.find("secrets: must be at least 32 characters"), std::string::npos) << all;
    EXPECT_NE(all.find("callback_path: must be a path"), std::string::npos) << all;
    EXPECT_NE(all.find("user_header: \"X User\" is not a header name"), std::string::npos) << all;
    EXPECT_NE(all.find("issuer: must be an http(s) URL"), std::string::npos) << all;
    EXPECT_NE(all.find("\"HS256\" is not an algorithm the module verifies"), std::string::npos)
        << all;
    EXPECT_NE(all.find("needs `client_id`"), std::string::npos) << all;
}

TEST(SsoConfig, RedisStore) {
    auto p = parse(Value::table({{"secrets", Value::array({secret})},
                                 {"store", "redis"},
                                 {"redis", "10.0.0.5:6380"},
                                 {"providers", Value::table({{"corp", provider()}})}}));
    ASSERT_TRUE(p.errors.empty()) << p.errors[0];
    ASSERT_TRUE(p.config->redis_store);
    EXPECT_EQ(p.config->redis_store->options().host, "10.0.0.5");
    EXPECT_EQ(p.config->redis_store->options().port, 6380);
    auto bad = parse(Value::table({{"store", "memcached"}, {"redis", "localhost"}}));
    ASSERT_EQ(bad.errors.size(), 2u);
    EXPECT_NE(bad.errors[0].find("store: must be one of \"cookie\", \"redis\""), std::string::npos)
        << bad.errors[0];
    EXPECT_NE(bad.errors[1].find("redis: must be host:port"), std::string::npos) << bad.errors[1];
    auto cookie = parse(Value::table({{"secrets", Value::array({secret})},
                                      {"providers", Value::table({{"corp", provider()}})}}));
    EXPECT_FALSE(cookie.config->redis_store);
}

TEST(SsoConfig, ProvidersNeedSecrets) {
    auto p = parse(Value::table({{"providers", Value::table({{"corp", provider()}})}}));
    ASSERT_EQ(p.errors.size(), 1u);
    EXPECT_NE(p.errors[0].find("needs `secrets`"), std::string::npos) << p.errors[0];
}

TEST(SsoConfig, ModuleKeysAreRefusedInARoute) {
    auto module = parse(Value::table({{"secrets", Value::array({secret})},
                                      {"providers", Value::table({{"corp", provider()}})}}));
    auto route = parse(Value::table({{"secrets", Value::array({secret})}}), *module.config,
                       gh::ConfigLevel::route);
    ASSERT_EQ(route.errors.size(), 1u);
    EXPECT_NE(route.errors[0].find("is a module-level key"), std::string::npos);
}

TEST(SsoRules, ParsedAndMatched) {
    auto module = parse(Value::table({{"secrets", Value::array({secret})},
                                      {"providers", Value::table({{"corp", provider()}})}}));
    auto p = parse(Value::table(
                       {{"require_any",
                         Value::array({Value::table({{"claim", "groups"}, {"contains", "admins"}}),
                                       Value::table({{"email_domain", "Example.COM"}})})},
                        {"require_all",
                         Value::array({Value::table({{"claim", "email_verified"}, {"equals", true}})})}}),
                   *module.config, gh::ConfigLevel::route);
    ASSERT_TRUE(p.errors.empty()) << p.errors[0];
    ASSERT_EQ(p.config->require_any.size(), 2u);
    const Rule &group = p.config->require_any[0], &domain = p.config->require_any[1];
    const Rule &verified = p.config->require_all[0];
    EXPECT_TRUE(rule_matches(group, {{"groups", {"dev", "admins"}}}));
    EXPECT_FALSE(rule_matches(group, {{"groups", {"administrators"}}}));
    EXPECT_TRUE(rule_matches(group, {{"groups", "dev admins"}}));   // space-separated
    EXPECT_TRUE(rule_matches(group, {{"groups", "dev,admins"}}));   // comma-separated
    EXPECT_FALSE(rule_matches(group, {{"groups", "sysadmins"}}));
    EXPECT_TRUE(rule_matches(domain, {{"email", "a@example.com"}}));
    EXPECT_TRUE(rule_matches(domain, {{"email", "a@EXAMPLE.com"}, {"email_verified", true}}));
    EXPECT_FALSE(rule_matches(domain, {{"email", "a@example.com"}, {"email_verified", false}}));
    EXPECT_FALSE(rule_matches(domain, {{"email", "a@evil-example.com"}}));
    EXPECT_FALSE(rule_matches(domain, {{"email", "a@example.com.evil"}}));
    EXPECT_TRUE(rule_matches(verified, {{"email_verified", true}}));
    EXPECT_FALSE(rule_matches(verified, {{"email_verified", "true"}}));
    EXPECT_FALSE(rule_matches(verified, json::object()));

    auto bad = parse(Value::table({{"require_all",
                                    Value::array({Value::table({{"claim", "x"}}),
                                                  Value::table({{"email_domain", "a@b"}}),
                                                  "groups"})}}),
                     *module.config, gh::ConfigLevel::route);
    ASSERT_EQ(bad.errors.size(), 3u);
    EXPECT_NE(bad.errors[0].find("needs one of `equals` or `contains`"), std::string::npos)
        << bad.errors[0];
}

TEST(ProviderTarget, OriginFormOfProviderUrls) {
    EXPECT_EQ(Provider::target_of("https://idp/a/b?x=1#frag"), "/a/b?x=1");
    EXPECT_EQ(Provider::target_of("http://idp:8080"), "/");
    EXPECT_EQ(Provider::target_of("http://idp?x"), "/?x");
    EXPECT_EQ(Provider::target_of("ftp://idp/x"), "");
    EXPECT_EQ(Provider::target_of("idp/x"), "");
}

} // namespace
} // namespace sso
