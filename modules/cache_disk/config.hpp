// cache_disk: the [filter.cache_disk] table (and a route's filter_config.cache_disk) -> Config.
// Defaults live in Config; every key is declared once in config.cpp (keys()).
#pragma once

#include "policy.hpp"
#include "store.hpp"

#include <gatehouse/sdk.hpp>

#include <memory>
#include <string>
#include <vector>

namespace cache_disk {

// What the primary cache key is made of (RFC 9111 §2: by default the method-less target URI).
struct KeyRules {
    bool scheme = true;
    bool host = true;
    bool path = true;
    bool query = true;
    std::vector<std::string> query_allow; // only these parameters (empty: all)
    std::vector<std::string> query_deny;  // never these
    bool query_sort = false;              // parameters sorted, so a=1&b=2 == b=2&a=1
};

struct Config {
    bool enabled = true;
    // Module level only (one store per path, shared by every route and config generation).
    std::string path;
    StoreLimits limits;
    // Module level, route may override.
    KeyRules key;
    HeuristicRules heuristic;
    StoreRules store_rules;
    bool collapse = true;                 // concurrent misses share one origin request
    uint64_t collapse_timeout_ms = 5000;  // a waiter goes upstream itself after this
    int64_t stale_if_error_s = 0;         // grace: serve stale this long past expiry on errors
    bool cache_status = true;             // send the Cache-Status response header
    std::string cache_status_name = "gatehouse";

    // Route configs are parsed before activation: they reach the store through the module
    // config they were merged over (which lives as long as they do).
    const Config *module_config = nullptr;
    std::shared_ptr<Store> store; // set by activate, on the module config

    Store *active_store() const {
        return module_config ? module_config->store.get() : store.get();
    }
};

// Every key: name, member, type, range, scope, example and docs (README.md's table is printed
// from it; a unit test keeps the two equal).
const gh::Keys<Config> &keys();

// Parse `table` over `base` (Config{} for the module table, the module config for a route).
// Main thread, config hooks only.
std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base);

// The primary key of a request: [scheme "://"] [host] [path] ["?" query], the query filtered and
// sorted as the rules say.
std::string cache_key(const KeyRules &rules, std::string_view scheme, std::string_view host,
                      std::string_view path, std::string_view query);

} // namespace cache_disk
