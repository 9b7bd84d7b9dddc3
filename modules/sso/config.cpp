// sso: configuration keys, providers and the derived sealers (see README.md).
#include "config.hpp"

#include "jose.hpp"
#include "provider.hpp"
#include "store.hpp"

#include <algorithm>
#include <cctype>

namespace sso {

namespace {

std::string http_url(std::string_view u) {
    if ((u.rfind("https://", 0) != 0 && u.rfind("http://", 0) != 0) ||
        u.find_first_of(" \t\r\n") != std::string_view::npos)
        return gh::cat("must be an http(s) URL, got \"", u, "\"");
    return {};
}

std::string not_empty(std::string_view s) {
    return s.empty() ? std::string("must not be empty") : std::string();
}

std::string path_error(std::string_view p) {
    if (p.empty() || p.front() != '/' || p.find_first_of("?# \t") != std::string_view::npos)
        return gh::cat("must be a path starting with \"/\" (no query), got \"", p, "\"");
    return {};
}

std::string header_name_error(std::string_view n) {
    if (!n.empty() && !gh::http::is_token(n))
        return gh::cat("\"", n, "\" is not a header name");
    return {};
}

std::string alg_error(std::string_view a) {
    if (!alg_supported(a))
        return gh::cat("\"", a, "\" is not an algorithm the module verifies (RS256/384/512, "
                                "PS256/384/512, ES256/384/512, EdDSA; never none or HS*)");
    return {};
}

std::string secret_error(std::string_view s) {
    if (s.size() < 32)
        return "must be at least 32 characters (use `openssl rand -base64 32`)";
    return {};
}

// [{ claim = "groups", contains = "admins" }, { email_domain = "example.com" },
//  { claim = "email_verified", equals = true }]
std::vector<Rule> read_rules(const gh::ConfigNode &n) {
    std::vector<Rule> out;
    if (!n.is_array()) {
        n.error("must be an array of rules: { claim = \"...\", equals = ... }, { claim = "
                "\"...\", contains = \"...\" } or { email_domain = \"...\" }");
        return out;
    }
    for (size_t i = 0; i < n.size(); ++i) {
        gh::ConfigNode r = n.at(i);
        if (!r.is_table()) {
            r.error("must be a table: { claim = \"...\", equals = ... }");
            continue;
        }
        Rule rule;
        gh::ConfigNode claim = r.get("claim"), equals = r.get("equals"),
                       contains = r.get("contains"), domain = r.get("email_domain");
        if (domain.present()) {
            auto d = domain.string();
            if (!d || d->empty() || d->find('@') != std::string::npos) {
                domain.error("must be a domain like \"example.com\"");
                continue;
            }
            rule.kind = Rule::Kind::email_domain;
            for (char &ch : *d)
                ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            rule.domain = *d;
            rule.text = gh::cat("email_domain = ", rule.domain);
            if (claim.present() || equals.present() || contains.present())
                r.error("email_domain stands alone (no claim, equals or contains)");
            out.push_back(std::move(rule));
            continue;
        }
        auto name = claim.string();
        if (!name || name->empty()) {
            r.error("needs `claim` (or `email_domain`)");
            continue;
        }
        rule.claim = *name;
        if (equals.present() == contains.present()) {
            r.error("needs one of `equals` or `contains`");
            continue;
        }
        if (contains.present()) {
            auto v = contains.string();
            if (!v) {
                contains.error("must be a string");
                continue;
            }
            rule.kind = Rule::Kind::contains;
            rule.value = *v;
            rule.text = gh::cat(rule.claim, " contains ", *v);
        } else {
            rule.kind = Rule::Kind::equals;
            if (auto b = equals.type() == GH_CFG_BOOL ? equals.boolean() : std::nullopt)
                rule.value = *b;
            else if (auto v = equals.type() == GH_CFG_INT ? equals.integer() : std::nullopt)
                rule.value = *v;
            else if (auto t = equals.type() == GH_CFG_STRING ? equals.string() : std::nullopt)
                rule.value = *t;
            else {
                equals.error("must be a string, an integer or a boolean");
                continue;
            }
            rule.text = gh::cat(rule.claim, " = ", rule.value.dump());
        }
        out.push_back(std::move(rule));
    }
    return out;
}

void read_providers(const gh::ConfigNode &providers, Config &c) {
    c.providers = std::make_shared<std::map<std::string, std::shared_ptr<Provider>>>();
    if (!providers.is_table()) {
        providers.error("must be a table of providers: [filter.sso.providers.NAME]");
        return;
    }
    for (size_t i = 0; i < providers.size(); ++i) {
        auto [name, node] = providers.entry(i);
        if (!node.is_table()) {
            node.error("must be a table ([filter.sso.providers.NAME])");
            continue;
        }
        ProviderConfig p;
        p.name = std::string(name);
        provider_keys().read(node, p);
        for (const char *required : {"issuer", "upstream", "client_id"})
            if (!node.get(required).present())
                node.error(gh::cat("needs `", required, "`"));
        if (std::find(p.scopes.begin(), p.scopes.end(), "openid") == p.scopes.end())
            p.scopes.insert(p.scopes.begin(), "openid");
        if (p.algs.empty())
            node.get("algs").error("must name at least one algorithm");
        std::string key = p.name;
        c.providers->emplace(std::move(key), std::make_shared<Provider>(std::move(p)));
    }
}

gh::Keys<Config> declare() {
    using gh::Scope;
    constexpr Scope both = Scope::both, module = Scope::module;
    return std::move(
        gh::Keys<Config>("sso")
            .custom("providers", "table of providers", "`{}`", module,
                    "the OpenID providers, one `[filter.sso.providers.NAME]` table each (keys: "
                    "see *Providers*)",
                    read_providers)
            .example("providers.corp = { issuer = \"https://idp.example.com\", upstream = \"idp\", client_id = \"app\" }")
            .strings("secrets", &Config::secrets, module,
                     "keys for the session and login-state cookies (each at least 32 "
                     "characters): the first seals, all open, so a new secret goes first and an "
                     "old one stays until the sessions it sealed have expired",
                     secret_error, "array of strings")
            .example("secrets = [\"K8v...new\", \"Zq1...old\"]")
            .shown_default("required")
            .string("callback_path", &Config::callback_path, module,
                    "where the provider sends the browser back (register scheme://host + this "
                    "as the redirect URI); handled on any route with the filter",
                    path_error, "path")
            .example("callback_path = \"/_sso/callback\"")
            .string("logout_path", &Config::logout_path, module,
                    "RP-initiated logout: clears the session and sends the browser to the "
                    "provider's end_session_endpoint",
                    path_error, "path")
            .example("logout_path = \"/_sso/logout\"")
            .string("backchannel_path", &Config::backchannel_path, module,
                    "where the provider POSTs OpenID Back-Channel Logout tokens (register "
                    "scheme://host + this as the back-channel logout URI)",
                    path_error, "path")
            .example("backchannel_path = \"/_sso/backchannel\"")
            .duration("refresh_margin", &Config::refresh_margin_ms, 0, 3600 * 1000, module,
                      "a session's access token is renewed this long before it expires (with "
                      "`refresh`)")
            .example("refresh_margin = \"5m\"")
            .string("cookie_name", &Config::cookie_name, module,
                    "session cookie name (chunks add `_1`, `_2`...; login state uses "
                    "`NAME_login_STATE`)",
                    [](std::string_view n) {
                        return gh::http::is_token(n) ? std::string()
                                                     : gh::cat("\"", n, "\" is not a cookie name");
                    },
                    "cookie name")
            .example("cookie_name = \"__Host-sso\"")
            .string("cookie_domain", &Config::cookie_domain, module,
                    "Domain attribute of the session cookie (empty: host-only)", {}, "domain")
            .example("cookie_domain = \"example.com\"")
            .string("cookie_path", &Config::cookie_path, module,
                    "Path attribute of the module's cookies: the part of the site they are "
                    "sent to (it must cover every protected path and `callback_path`)",
                    path_error, "path")
            .example("cookie_path = \"/wiki/\"")
            .flag("cookie_secure", &Config::cookie_secure, module,
                  "mark the cookies `Secure` (turn off only for plain-http development)")
            .example("cookie_secure = false")
            .duration("session_idle", &Config::session_idle_ms, 60 * 1000, 365ull * 86400 * 1000,
                      module, "a session unused this long ends")
            .example("session_idle = \"30m\"")
            .duration("session_lifetime", &Config::session_lifetime_ms, 60 * 1000,
                      365ull * 86400 * 1000, module,
                      "a session ends this long after the login, used or not")
            .example("session_lifetime = \"12h\"")
            .duration("login_timeout", &Config::login_timeout_ms, 10 * 1000, 3600 * 1000, module,
                      "how long a browser has to come back from the provider")
            .example("login_timeout = \"5m\"")
            .integer("logins_in_flight", &Config::logins_in_flight, 1, 20, module,
                     "sign-ins a browser may have open at once (one state cookie each; the "
                     "oldest is dropped)")
            .example("logins_in_flight = 3")
            .integer("clock_skew", &Config::clock_skew_s, 0, 600, module,
                     "seconds of clock difference tolerated in `exp`, `nbf` and `iat`")
            .example("clock_skew = 30")
            .string("redirect_uri", &Config::redirect_uri, module,
                    "the redirect URI sent to the provider (empty: the request's scheme and "
                    "Host + `callback_path`)",
                    [](std::string_view u) { return u.empty() ? std::string() : http_url(u); },
                    "URL")
            .example("redirect_uri = \"https://app.example.com/oauth2/callback\"")
            .strings("post_logout_redirects", &Config::post_logout_redirects, module,
                     "URLs `logout_path?rd=URL` may send the browser to after logout (exact "
                     "match; anything else goes to `/`)",
                     http_url, "array of URLs")
            .example("post_logout_redirects = [\"https://example.com/bye\"]")
            .choice("store", &Config::store,
                    std::vector<std::pair<std::string, Config::Store>>{
                        {"cookie", Config::Store::cookie}, {"redis", Config::Store::redis}},
                    module,
                    "where sessions live: `cookie` (all of it in the encrypted cookie), or "
                    "`redis` (redis-server keeps it; the cookie holds only a sealed session id: "
                    "revocation everywhere at once, tokens of any size)")
            .example("store = \"redis\"")
            .string("redis", &Config::redis, module,
                    "redis-server for `store = \"redis\"`: `host:port`",
                    [](std::string_view a) {
                        const size_t colon = a.rfind(':');
                        return colon == std::string_view::npos || colon == 0 ||
                                       colon + 1 == a.size() ||
                                       a.find_first_not_of("0123456789", colon + 1) !=
                                           std::string_view::npos
                                   ? gh::cat("must be host:port, got \"", a, "\"")
                                   : std::string();
                    },
                    "host:port")
            .example("redis = \"10.0.3.5:6379\"")
            .string("redis_prefix", &Config::redis_prefix, module,
                    "prefix of the module's redis keys (sessions `PREFIXs:ID`, logout indexes "
                    "`PREFIXsid:...`, `PREFIXsub:...`)",
                    {}, "string")
            .example("redis_prefix = \"wiki:sso:\"")
            .duration("redis_timeout", &Config::redis_timeout_ms, 10, 10000, module,
                      "a redis command not answered within this fails (the request gets a 503; "
                      "redis is not asked again for a second)")
            .example("redis_timeout = \"200ms\"")
            .string("provider", &Config::provider, both,
                    "the provider this route logs in with (a key of `providers`; empty: the "
                    "only one)",
                    {}, "string")
            .example("provider = \"corp\"")
            .choice("on_missing", &Config::on_missing,
                    std::vector<std::pair<std::string, OnMissing>>{
                        {"login", OnMissing::login}, {"deny", OnMissing::deny}},
                    both,
                    "a request without a valid session: `login` redirects the browser to the "
                    "provider, `deny` answers 401 with a JSON body (APIs)")
            .example("on_missing = \"deny\"")
            .strings("public", &Config::public_paths, both,
                     "paths that need no session: exact, or a prefix ending in `*`",
                     [](std::string_view p) {
                         return p.empty() || p.front() != '/'
                                    ? gh::cat("must start with \"/\", got \"", p, "\"")
                                    : std::string();
                     },
                     "array of paths")
            .example("public = [\"/healthz\", \"/static/*\"]")
            .string("user_header", &Config::user_header, both,
                    "request header that carries `user_claim` upstream (empty: none)",
                    header_name_error, "header name")
            .example("user_header = \"Remote-User\"")
            .string("user_claim", &Config::user_claim, both,
                    "the claim `user_header` carries", not_empty, "claim name")
            .example("user_claim = \"preferred_username\"")
            .string("email_header", &Config::email_header, both,
                    "request header for the `email` claim (empty: none)", header_name_error,
                    "header name")
            .example("email_header = \"\"")
            .string("groups_header", &Config::groups_header, both,
                    "request header for the `groups` claim, comma-separated (empty: none)",
                    header_name_error, "header name")
            .example("groups_header = \"Remote-Groups\"")
            .custom("claim_headers", "table of header = claim", "`{}`", both,
                    "more request headers, each set from a claim (strings as they are, "
                    "numbers and booleans as JSON, arrays comma-separated)",
                    [](const gh::ConfigNode &n, Config &c) {
                        if (!n.is_table()) {
                            n.error("must be a table of header = \"claim\"");
                            return;
                        }
                        c.claim_headers.clear();
                        for (size_t i = 0; i < n.size(); ++i) {
                            auto [header, claim] = n.entry(i);
                            auto v = claim.string();
                            if (!gh::http::is_token(header))
                                claim.error(gh::cat("\"", header, "\" is not a header name"));
                            else if (!v || v->empty())
                                claim.error("must be a claim name");
                            else
                                c.claim_headers[std::string(header)] = *v;
                        }
                    })
            .example("claim_headers = { \"X-User-Name\" = \"name\" }")
            .flag("pass_access_token", &Config::pass_access_token, both,
                  "send the session's access token upstream as `Authorization: Bearer`")
            .example("pass_access_token = true")
            .flag("refresh", &Config::refresh, both,
                  "renew a session's tokens with its refresh token before the access token "
                  "expires (one renewal per session at a time; the request that starts it waits "
                  "for it); a refused renewal ends the session")
            .example("refresh = false")
            .custom("require_all", "array of rules", "`[]`", both,
                    "every rule must match the session's claims, else 403: `{ claim = \"C\", "
                    "equals = V }` (string, integer or boolean), `{ claim = \"C\", contains = "
                    "\"V\" }` (an array claim holds V, or a space- or comma-separated string "
                    "does), `{ email_domain = \"D\" }` (a verified `email` at D)",
                    [](const gh::ConfigNode &n, Config &c) { c.require_all = read_rules(n); })
            .example("require_all = [{ claim = \"email_verified\", equals = true }]")
            .custom("require_any", "array of rules", "`[]`", both,
                    "at least one rule must match (when not empty), else 403; rules as in "
                    "`require_all`",
                    [](const gh::ConfigNode &n, Config &c) { c.require_any = read_rules(n); })
            .example("require_any = [{ claim = \"groups\", contains = \"wiki-admins\" }, { email_domain = \"example.com\" }]")
            .flag("bearer", &Config::bearer, both,
                  "accept `Authorization: Bearer` JWTs signed by the provider (APIs): verified "
                  "like ID tokens (no nonce), identity headers from their claims; a bad token "
                  "is a 401 with `error=\"invalid_token\"`")
            .example("bearer = true")
            .string("bearer_audience", &Config::bearer_audience, both,
                    "the `aud` a bearer token must carry (empty: the provider's client id)", {},
                    "string")
            .example("bearer_audience = \"https://api.example.com\""));
}

gh::Keys<ProviderConfig> declare_provider() {
    using gh::Scope;
    constexpr Scope module = Scope::module;
    using P = ProviderConfig;
    return std::move(
        gh::Keys<ProviderConfig>("sso")
            .string("issuer", &P::issuer, module,
                    "the provider's issuer URL, exactly as its tokens' `iss`; discovery reads "
                    "ISSUER/.well-known/openid-configuration",
                    http_url, "URL")
            .example("issuer = \"https://login.example.com/realms/corp\"")
            .shown_default("required")
            .string("upstream", &P::upstream, module,
                    "the `[upstream.NAME]` that reaches the provider: discovery, keys and token "
                    "requests go through it (its TLS verification, timeouts and health)",
                    not_empty, "upstream name")
            .example("upstream = \"idp\"")
            .shown_default("required")
            .string("client_id", &P::client_id, module, "the client id registered at the provider",
                    not_empty, "string")
            .example("client_id = \"gatehouse\"")
            .shown_default("required")
            .string("client_secret", &P::client_secret, module,
                    "the client secret (empty: a public client, PKCE alone)", {}, "string")
            .example("client_secret = \"s3cr3t\"")
            .choice("client_auth", &P::client_auth,
                    std::vector<std::pair<std::string, P::ClientAuth>>{
                        {"basic", P::ClientAuth::basic}, {"post", P::ClientAuth::post}},
                    module,
                    "how the token request carries the secret: `basic` (HTTP Basic, "
                    "client_secret_basic) or `post` (form fields, client_secret_post)")
            .example("client_auth = \"post\"")
            .strings("scopes", &P::scopes, module,
                     "scopes requested (`openid` is added when missing)", not_empty,
                     "array of strings")
            .example("scopes = [\"openid\", \"email\", \"groups\"]")
            .strings("algs", &P::algs, module,
                     "signature algorithms accepted for ID tokens (never `none` or HS*)",
                     alg_error, "array of strings")
            .example("algs = [\"RS256\"]")
            .shown_default("all of RS*, PS*, ES*, EdDSA")
            .duration("metadata_refresh", &P::metadata_refresh_ms, 60 * 1000,
                      7ull * 86400 * 1000, module, "how often discovery is read again")
            .example("metadata_refresh = \"6h\"")
            .duration("jwks_refresh", &P::jwks_refresh_ms, 60 * 1000, 7ull * 86400 * 1000, module,
                      "how long the keys are used before a refetch, when the provider's "
                      "response sets no `max-age`")
            .example("jwks_refresh = \"15m\"")
            .duration("jwks_cooldown", &P::jwks_cooldown_ms, 1000, 3600 * 1000, module,
                      "least time between refetches caused by a token with an unknown `kid`")
            .example("jwks_cooldown = \"1m\"")
            .duration("timeout", &P::timeout_ms, 100, 120 * 1000, module,
                      "per request to the provider")
            .example("timeout = \"10s\""));
}

} // namespace

bool rule_matches(const Rule &r, const nlohmann::json &claims, const std::string *sub) {
    if (r.kind == Rule::Kind::email_domain) {
        auto email = claims.find("email");
        auto verified = claims.find("email_verified");
        if (email == claims.end() || !email->is_string() ||
            (verified != claims.end() && verified->is_boolean() && !verified->get<bool>()))
            return false;
        const std::string &e = email->get_ref<const std::string &>();
        const size_t at = e.rfind('@');
        if (at == std::string::npos || e.size() - at - 1 != r.domain.size())
            return false;
        for (size_t i = 0; i < r.domain.size(); ++i)
            if (std::tolower(static_cast<unsigned char>(e[at + 1 + i])) != r.domain[i])
                return false;
        return true;
    }
    if (sub != nullptr && r.claim == "sub")
        return r.kind == Rule::Kind::equals ? r.value == *sub
                                            : rule_matches(r, nlohmann::json{{"sub", *sub}});
    auto v = claims.find(r.claim);
    if (v == claims.end())
        return false;
    if (r.kind == Rule::Kind::equals)
        return *v == r.value;
    const std::string &want = r.value.get_ref<const std::string &>();
    if (v->is_array())
        return std::find(v->begin(), v->end(), r.value) != v->end();
    if (!v->is_string())
        return false;
    const std::string &text = v->get_ref<const std::string &>();
    size_t start = 0;
    while (start <= text.size()) {
        size_t end = text.find_first_of(" ,", start);
        if (end == std::string::npos)
            end = text.size();
        if (text.compare(start, end - start, want) == 0 && end > start)
            return true;
        start = end + 1;
    }
    return false;
}

const gh::Keys<Config> &keys() {
    static const gh::Keys<Config> k = declare();
    return k;
}

const gh::Keys<ProviderConfig> &provider_keys() {
    static const gh::Keys<ProviderConfig> k = declare_provider();
    return k;
}

std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base) {
    auto c = std::make_unique<Config>(base);
    if (gh::config_level() == gh::ConfigLevel::module)
        c->providers.reset(); // a new generation: new provider state
    keys().read(table, *c);
    if (gh::config_level() == gh::ConfigLevel::module) {
        if (!c->providers)
            c->providers = std::make_shared<std::map<std::string, std::shared_ptr<Provider>>>();
        if (!c->providers->empty() && c->secrets.empty())
            table.error("[filter.sso] needs `secrets` (at least one, 32+ characters)");
        if (!c->secrets.empty()) {
            c->session_sealer = std::make_shared<const Sealer>(c->secrets, "session");
            c->state_sealer = std::make_shared<const Sealer>(c->secrets, "login-state");
        }
        if (c->store == Config::Store::redis) {
            RedisStore::Options o;
            const size_t colon = c->redis.rfind(':');
            o.host = c->redis.substr(0, colon);
            if (o.host.size() > 2 && o.host.front() == '[' && o.host.back() == ']')
                o.host = o.host.substr(1, o.host.size() - 2);
            o.port = std::atoi(c->redis.c_str() + colon + 1);
            o.prefix = c->redis_prefix;
            o.timeout_ms = static_cast<uint32_t>(c->redis_timeout_ms);
            c->redis_store = std::make_shared<RedisStore>(std::move(o));
        }
        if (c->session_lifetime_ms < c->session_idle_ms)
            table.get("session_lifetime").error("must not be shorter than `session_idle`");
    }
    c->chosen.reset();
    if (c->providers && !c->providers->empty()) {
        if (c->provider.empty()) {
            if (c->providers->size() == 1)
                c->chosen = c->providers->begin()->second;
            else
                table.error("several providers: set `provider` (at module level: the default)");
        } else if (auto it = c->providers->find(c->provider); it != c->providers->end()) {
            c->chosen = it->second;
        } else {
            table.get("provider").error(gh::cat("no provider \"", c->provider,
                                                "\" in [filter.sso.providers]"));
        }
    }
    return c;
}

} // namespace sso
