// sso: the [filter.sso] table (and a route's filter_config.sso) -> Config, and the providers of
// [filter.sso.providers.NAME]. Defaults live in the structs; every key is declared once in
// config.cpp (keys(), provider_keys()), and the README tables are checked against them.
#pragma once

#include "crypto.hpp"

#include <gatehouse/sdk.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace sso {

class Provider;   // provider.hpp: the runtime state (metadata, keys) shared by the workers
class RedisStore; // store.hpp: the optional session store

struct ProviderConfig {
    std::string name;
    std::string issuer;   // exact `iss`; discovery at issuer + /.well-known/openid-configuration
    std::string upstream; // the [upstream.NAME] that reaches the provider (TLS, timeouts, health)
    std::string client_id;
    std::string client_secret;
    enum class ClientAuth { basic, post } client_auth = ClientAuth::basic;
    std::vector<std::string> scopes = {"openid", "email", "profile"};
    std::vector<std::string> algs = {"RS256", "RS384", "RS512", "PS256", "PS384",
                                     "PS512", "ES256", "ES384", "ES512", "EdDSA"};
    uint64_t metadata_refresh_ms = 3600 * 1000;
    uint64_t jwks_refresh_ms = 3600 * 1000;   // when the response sets no max-age
    uint64_t jwks_cooldown_ms = 30 * 1000;    // between refetches for unknown `kid`s
    uint64_t timeout_ms = 5000;               // per request to the provider
};

enum class OnMissing { login, deny }; // no session: redirect to the provider, or 401

// One authorization rule on the session's (or bearer token's) claims.
struct Rule {
    enum class Kind { equals, contains, email_domain } kind = Kind::equals;
    std::string claim;        // equals / contains
    nlohmann::json value;     // equals: a string, number or bool; contains: a string
    std::string domain;       // email_domain (lower-case)
    std::string text;         // as configured, for logs
};
// True when `claims` satisfy the rule; the claim "sub" is `sub` when given (the session keeps
// the subject apart from its other claims).
bool rule_matches(const Rule &r, const nlohmann::json &claims, const std::string *sub = nullptr);

struct Config {
    // Module scope.
    std::vector<std::string> secrets;        // first seals, all open
    std::string callback_path = "/oauth2/callback";
    std::string logout_path = "/oauth2/logout";
    std::string backchannel_path = "/oauth2/backchannel-logout";
    uint64_t refresh_margin_ms = 60 * 1000;
    std::string cookie_name = "gh_sso";
    std::string cookie_domain;
    std::string cookie_path = "/";
    bool cookie_secure = true;
    uint64_t session_idle_ms = 8ull * 3600 * 1000;
    uint64_t session_lifetime_ms = 24ull * 3600 * 1000;
    uint64_t login_timeout_ms = 10ull * 60 * 1000;
    int logins_in_flight = 5; // state cookies per browser; the oldest is dropped
    int64_t clock_skew_s = 60;
    std::string redirect_uri; // absolute; "" = scheme://host of the request + callback_path
    std::vector<std::string> post_logout_redirects; // allowed post-logout URLs (absolute)
    enum class Store { cookie, redis } store = Store::cookie;
    std::string redis = "127.0.0.1:6379";
    std::string redis_prefix = "gatehouse:sso:";
    uint64_t redis_timeout_ms = 500;
    // Module and route scope.
    std::string provider;            // "" = the only one
    OnMissing on_missing = OnMissing::login;
    std::vector<std::string> public_paths; // exact, or a prefix ending in '*'
    std::string user_header = "X-Forwarded-User";
    std::string user_claim = "sub";
    std::string email_header = "X-Forwarded-Email";
    std::string groups_header = "X-Forwarded-Groups";
    std::map<std::string, std::string> claim_headers; // header -> claim
    bool pass_access_token = false;
    bool refresh = true; // renew the access token with the refresh token before it expires
    std::vector<Rule> require_all; // every one must match
    std::vector<Rule> require_any; // one must match (when not empty)
    bool bearer = false;          // accept Authorization: Bearer JWTs from the provider
    std::string bearer_audience;  // their required `aud` ("" = the client id)

    // Derived (module table): shared by the routes of a generation.
    std::shared_ptr<std::map<std::string, std::shared_ptr<Provider>>> providers;
    std::shared_ptr<const Sealer> session_sealer, state_sealer;
    std::shared_ptr<Provider> chosen; // the provider this scope uses
    std::shared_ptr<RedisStore> redis_store; // store = "redis"
};

const gh::Keys<Config> &keys();
const gh::Keys<ProviderConfig> &provider_keys();
std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base);

} // namespace sso
