// cache_disk: configuration keys, types and ranges (see README.md), and the cache key.
#include "config.hpp"

#include <algorithm>
#include <cctype>

namespace cache_disk {

namespace {

void read_key_parts(const gh::ConfigNode &key, Config &c) {
    auto parts = key.strings();
    if (!parts)
        return;
    KeyRules fresh = c.key;
    fresh.scheme = fresh.host = fresh.path = fresh.query = false;
    for (const std::string &p : *parts) {
        bool *slot = p == "scheme" ? &fresh.scheme
                     : p == "host" ? &fresh.host
                     : p == "path" ? &fresh.path
                     : p == "query" ? &fresh.query
                                    : nullptr;
        if (!slot) {
            key.error("parts are \"scheme\", \"host\", \"path\" and \"query\", got \"" + p + "\"");
            return;
        }
        *slot = true;
    }
    if (!fresh.path) {
        key.error("must include \"path\"");
        return;
    }
    c.key = fresh;
}

// One list replaces the other: a route setting query_allow drops an inherited query_deny.
void read_query_allow(const gh::ConfigNode &n, Config &c) {
    if (auto v = n.strings()) {
        c.key.query_allow = std::move(*v);
        if (!c.key.query_allow.empty())
            c.key.query_deny.clear();
    }
}
void read_query_deny(const gh::ConfigNode &n, Config &c) {
    if (auto v = n.strings()) {
        c.key.query_deny = std::move(*v);
        if (!c.key.query_deny.empty())
            c.key.query_allow.clear();
    }
}

std::string absolute_path_error(std::string_view v) {
    return !v.empty() && v.front() == '/' ? std::string() : "must be an absolute directory path";
}
std::string header_name_error(std::string_view v) {
    const bool ok = std::all_of(v.begin(), v.end(), [](char ch) {
        return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-';
    });
    return ok ? std::string() : "must be a header field name (letters, digits, '-') or \"\"";
}
std::string token_error(std::string_view v) {
    const bool token = !v.empty() && std::all_of(v.begin(), v.end(), [](char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
               ch == '-' || ch == '_' || ch == '.';
    });
    return token ? std::string() : "must be a token (letters, digits, '-', '_', '.')";
}

gh::Keys<Config> declare() {
    using gh::Scope;
    constexpr uint64_t kUnbounded = UINT64_MAX;
    auto limits = [](auto member) {
        return [member](Config &c) -> auto & { return c.limits.*member; };
    };
    return std::move(
        gh::Keys<Config>("cache_disk")
            .string("path", &Config::path, Scope::module,
                    "the store's directory; created with 256 sub-directories and `tmp/` at "
                    "start-up",
                    absolute_path_error, "absolute path")
            .shown_default("none (required once a route lists `cache_disk`)")
            .example("path = \"/var/cache/gatehouse\"")
            .bytes("max_size", limits(&StoreLimits::max_size), 1u << 20, kUnbounded, Scope::module,
                   "cap on the bytes of stored files, enforced when admitting an object (least "
                   "recently used objects are evicted first)")
            .example("max_size = \"10g\"")
            .bytes("max_object_size", limits(&StoreLimits::max_object_size), 1, 1ull << 30,
                   Scope::module,
                   "a larger body is passed through and not stored (by `Content-Length` up front, "
                   "or once the body grows past it); at most `max_size`")
            .example("max_object_size = \"64m\"")
            .duration("inactive", limits(&StoreLimits::inactive_ms), 1000, kUnbounded,
                      Scope::module,
                      "an object not used for this long is removed, fresh or not (nginx's "
                      "`inactive`)")
            .example("inactive = \"1d\"")
            .bytes("memory_size", limits(&StoreLimits::memory_size), 0, kUnbounded, Scope::module,
                   "the hot tier: bodies of recently used small objects also kept in memory and "
                   "served without touching the disk (least recently used dropped first; `0` "
                   "turns it off)")
            .example("memory_size = \"512m\"")
            .bytes("memory_object_max", limits(&StoreLimits::memory_object_max), 0, kUnbounded,
                   Scope::module,
                   "larger bodies are always read from their file; at most `max_object_size`")
            .example("memory_object_max = \"1m\"")
            .bytes("collect_size", limits(&StoreLimits::collect_size), 0, kUnbounded,
                   Scope::module,
                   "memory all responses being stored may hold until they are complete and "
                   "written; a response that would go past it is passed on without being stored "
                   "(`verdict=\"busy\"`); at least `max_object_size`")
            .example("collect_size = \"1g\"")
            .flag("enabled", &Config::enabled, Scope::both,
                  "`false`: the route neither reads nor stores")
            .example("enabled = false")
            .custom("key", "array of `\"scheme\"`, `\"host\"`, `\"path\"`, `\"query\"`",
                    "all four", Scope::both,
                    "what the primary cache key is made of; `path` is required", read_key_parts)
            .example("key = [\"host\", \"path\"]")
            .custom("query_allow", "array of strings", "`[]` (all)", Scope::both,
                    "only these query parameters are part of the key", read_query_allow)
            .example("query_allow = [\"id\", \"page\"]")
            .custom("query_deny", "array of strings", "`[]`", Scope::both,
                    "these query parameters are left out of the key (not with `query_allow` in "
                    "the same table; a route's list replaces an inherited list of the other kind)",
                    read_query_deny)
            .example("query_deny = [\"utm_source\"]")
            .flag("query_sort", [](Config &c) -> bool & { return c.key.query_sort; }, Scope::both,
                  "parameters sorted, so `?a=1&b=2` and `?b=2&a=1` are one object")
            .example("query_sort = true")
            .integer("heuristic_percent", [](Config &c) -> unsigned & { return c.heuristic.percent; },
                     0, 100, Scope::both,
                     "heuristic freshness (RFC 9111 §4.2.2) for responses without explicit "
                     "freshness: this share of the time since `Last-Modified`; `0` turns "
                     "heuristics off")
            .example("heuristic_percent = 0")
            .duration_s("heuristic_max",
                        [](Config &c) -> int64_t & { return c.heuristic.max_seconds; }, 0,
                        kUnbounded, Scope::both, "cap on a heuristic lifetime")
            .example("heuristic_max = \"1h\"")
            .string("targeted_cache_control",
                    [](Config &c) -> std::string & { return c.store_rules.targeted; }, Scope::both,
                    "RFC 9213 targeted field: when present and a valid Structured Field Dictionary "
                    "it replaces `Cache-Control` for this cache; `\"\"` ignores it",
                    header_name_error, "header name or `\"\"`")
            .example("targeted_cache_control = \"\"")
            .flag("store_set_cookie",
                  [](Config &c) -> bool & { return c.store_rules.store_set_cookie; }, Scope::both,
                  "store responses that carry `Set-Cookie` (off by default, as in nginx and "
                  "Varnish: one user's cookie must not reach another)")
            .example("store_set_cookie = true")
            .flag("collapse", &Config::collapse, Scope::both,
                  "request collapsing: concurrent misses for one key make one origin request (see "
                  "*Under load*)")
            .example("collapse = false")
            .duration("collapse_timeout", &Config::collapse_timeout_ms, 10, 600000, Scope::both,
                      "a request waiting for another's origin response goes upstream itself after "
                      "this (nginx's `proxy_cache_lock_timeout`)")
            .example("collapse_timeout = \"1s\"")
            .duration_s("stale_if_error", &Config::stale_if_error_s, 0, kUnbounded, Scope::both,
                        "grace: when the origin fails (5xx, unreachable, timeout), a stale object "
                        "this far past its lifetime is served even without a `stale-if-error` "
                        "directive")
            .example("stale_if_error = \"1h\"")
            .flag("cache_status", &Config::cache_status, Scope::both,
                  "send the `Cache-Status` response header")
            .example("cache_status = false")
            .string("cache_status_name", &Config::cache_status_name, Scope::both,
                    "the cache's name in `Cache-Status`", token_error, "token")
            .example("cache_status_name = \"edge-1\""));
}

// Limits that depend on each other, checked after every key was read (a limit is checked
// against another only when it was set).
void check_limits(gh::ConfigNode table, const StoreLimits &l) {
    gh::ConfigNode max_object = table.get("max_object_size");
    if (l.max_object_size > l.max_size)
        (max_object.present() ? max_object : table.get("max_size"))
            .error("max_object_size cannot exceed max_size");
    gh::ConfigNode memory_max = table.get("memory_object_max");
    if (memory_max.present() && l.memory_object_max > l.max_object_size)
        memory_max.error("cannot exceed max_object_size");
    gh::ConfigNode collect = table.get("collect_size");
    if (collect.present() && l.collect_size < l.max_object_size)
        collect.error("must be at least max_object_size");
}

} // namespace

const gh::Keys<Config> &keys() {
    static const gh::Keys<Config> declared = declare();
    return declared;
}

std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base) {
    auto c = std::make_unique<Config>(base);
    const bool route = gh::config_level() == gh::ConfigLevel::route;
    if (route)
        c->module_config = &base;
    const auto listed = [&](std::string_view key) {
        gh::ConfigNode n = table.get(key);
        return n.is_array() && n.size() > 0;
    };
    if (listed("query_allow") && listed("query_deny"))
        table.get("query_deny").error("query_allow and query_deny cannot both be set");
    keys().read(table, *c);
    if (!route)
        check_limits(table, c->limits);
    c->heuristic.targeted = c->store_rules.targeted;
    if (route && c->enabled && c->path.empty())
        table.error("a route uses cache_disk but [filter.cache_disk] has no `path`");
    return c;
}

std::string cache_key(const KeyRules &rules, std::string_view scheme, std::string_view host,
                      std::string_view path, std::string_view query) {
    std::string key;
    if (rules.scheme) {
        key.append(scheme);
        key.append("://");
    }
    if (rules.host)
        key.append(host);
    key.append(path);
    if (!rules.query || query.empty())
        return key;
    const bool filtered = !rules.query_allow.empty() || !rules.query_deny.empty();
    if (!filtered && !rules.query_sort) {
        key.push_back('?');
        key.append(query);
        return key;
    }
    std::vector<std::string_view> params;
    while (!query.empty()) {
        const size_t amp = query.find('&');
        std::string_view p = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        if (p.empty())
            continue;
        const std::string_view name = p.substr(0, p.find('='));
        auto listed = [&](const std::vector<std::string> &l) {
            return std::find(l.begin(), l.end(), name) != l.end();
        };
        if (!rules.query_allow.empty() && !listed(rules.query_allow))
            continue;
        if (listed(rules.query_deny))
            continue;
        params.push_back(p);
    }
    if (rules.query_sort)
        std::stable_sort(params.begin(), params.end());
    for (size_t i = 0; i < params.size(); ++i) {
        key.push_back(i == 0 ? '?' : '&');
        key.append(params[i]);
    }
    return key;
}

} // namespace cache_disk
