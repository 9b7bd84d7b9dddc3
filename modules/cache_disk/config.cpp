// cache_disk: configuration keys, types and ranges (see README.md), and the cache key.
#include "config.hpp"

#include <algorithm>
#include <cctype>

namespace cache_disk {

namespace {

void read_key(gh::ConfigNode table, KeyRules &k) {
    gh::ConfigNode key = table.get("key");
    if (auto parts = key.strings()) {
        KeyRules fresh = k;
        fresh.scheme = fresh.host = fresh.path = fresh.query = false;
        for (const std::string &p : *parts) {
            bool *slot = p == "scheme" ? &fresh.scheme
                         : p == "host" ? &fresh.host
                         : p == "path" ? &fresh.path
                         : p == "query" ? &fresh.query
                                        : nullptr;
            if (!slot) {
                key.error("parts are \"scheme\", \"host\", \"path\" and \"query\", got \"" + p +
                          "\"");
                return;
            }
            *slot = true;
        }
        if (!fresh.path) {
            key.error("must include \"path\"");
            return;
        }
        k = fresh;
    }
    // One list replaces the other: a route setting query_allow drops an inherited query_deny.
    auto allow = table.get("query_allow").strings();
    auto deny = table.get("query_deny").strings();
    if (allow && deny && !allow->empty() && !deny->empty()) {
        table.get("query_deny").error("query_allow and query_deny cannot both be set");
        return;
    }
    if (allow) {
        k.query_allow = std::move(*allow);
        k.query_deny.clear();
    }
    if (deny) {
        k.query_deny = std::move(*deny);
        k.query_allow.clear();
    }
    if (auto v = table.get("query_sort").boolean())
        k.query_sort = *v;
}

void read_module_level(gh::ConfigNode table, Config &c) {
    gh::ConfigNode path = table.get("path");
    if (auto v = path.string()) {
        if (v->empty() || v->front() != '/')
            path.error("must be an absolute directory path");
        else
            c.path = *v;
    }
    gh::ConfigNode max_size = table.get("max_size");
    if (auto v = max_size.bytes()) {
        if (*v < (1u << 20))
            max_size.error("must be at least 1m");
        else
            c.limits.max_size = *v;
    }
    gh::ConfigNode max_object = table.get("max_object_size");
    if (auto v = max_object.bytes()) {
        if (*v < 1 || *v > (1ull << 30))
            max_object.error("must be between 1 and 1g");
        else
            c.limits.max_object_size = *v;
    }
    if (c.limits.max_object_size > c.limits.max_size)
        (max_object.present() ? max_object : max_size)
            .error("max_object_size cannot exceed max_size");
    gh::ConfigNode memory = table.get("memory_size");
    if (auto v = memory.bytes())
        c.limits.memory_size = *v;
    gh::ConfigNode memory_max = table.get("memory_object_max");
    if (auto v = memory_max.bytes()) {
        if (*v > c.limits.max_object_size)
            memory_max.error("cannot exceed max_object_size");
        else
            c.limits.memory_object_max = *v;
    }
    gh::ConfigNode collect = table.get("collect_size");
    if (auto v = collect.bytes()) {
        if (*v < c.limits.max_object_size)
            collect.error("must be at least max_object_size");
        else
            c.limits.collect_size = *v;
    }
    gh::ConfigNode inactive = table.get("inactive");
    if (auto v = inactive.duration_ms()) {
        if (*v < 1000)
            inactive.error("must be at least 1s");
        else
            c.limits.inactive_ms = static_cast<int64_t>(*v);
    }
}

void refuse_module_keys(gh::ConfigNode table) {
    for (std::string_view key :
         {"path", "max_size", "max_object_size", "inactive", "memory_size", "memory_object_max",
          "collect_size"}) {
        gh::ConfigNode n = table.get(key);
        if (n.present())
            n.error("is a module-level key: set it in [filter.cache_disk]");
    }
}

} // namespace

std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base) {
    auto c = std::make_unique<Config>(base);
    const bool route = base.module_level_parsed;
    if (route) {
        refuse_module_keys(table);
        c->module_config = &base;
    }
    else
        read_module_level(table, *c);
    if (auto v = table.get("enabled").boolean())
        c->enabled = *v;
    read_key(table, c->key);
    gh::ConfigNode percent = table.get("heuristic_percent");
    if (auto v = percent.integer(0, 100))
        c->heuristic.percent = static_cast<unsigned>(*v);
    gh::ConfigNode hmax = table.get("heuristic_max");
    if (auto v = hmax.duration_ms())
        c->heuristic.max_seconds = static_cast<int64_t>(*v / 1000);
    gh::ConfigNode targeted = table.get("targeted_cache_control");
    if (auto v = targeted.string()) {
        if (!v->empty() && std::any_of(v->begin(), v->end(), [](char ch) {
                return !(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-');
            }))
            targeted.error("must be a header field name (letters, digits, '-') or \"\"");
        else
            c->store_rules.targeted = c->heuristic.targeted = *v;
    }
    if (auto v = table.get("store_set_cookie").boolean())
        c->store_rules.store_set_cookie = *v;
    if (auto v = table.get("collapse").boolean())
        c->collapse = *v;
    gh::ConfigNode ct = table.get("collapse_timeout");
    if (auto v = ct.duration_ms()) {
        if (*v < 10 || *v > 600000)
            ct.error("must be between 10ms and 10m");
        else
            c->collapse_timeout_ms = *v;
    }
    if (auto v = table.get("stale_if_error").duration_ms())
        c->stale_if_error_s = static_cast<int64_t>(*v / 1000);
    if (auto v = table.get("cache_status").boolean())
        c->cache_status = *v;
    gh::ConfigNode name = table.get("cache_status_name");
    if (auto v = name.string()) {
        const bool token = !v->empty() && std::all_of(v->begin(), v->end(), [](char ch) {
            return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                   (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.';
        });
        if (!token)
            name.error("must be a token (letters, digits, '-', '_', '.')");
        else
            c->cache_status_name = *v;
    }
    if (route && c->enabled && c->path.empty())
        table.error("a route uses cache_disk but [filter.cache_disk] has no `path`");
    c->module_level_parsed = true;
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
