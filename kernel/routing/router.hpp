// Host then path routing with a fixed precedence: exact host, then the longest "*.suffix"
// wildcard, then routes without a host; within a host group, an exact path, then the longest
// prefix. Built once per config generation; lookups allocate nothing.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace gatehouse::routing {

template <class Route>
class Router {
public:
    void add(std::string_view host, std::string_view path, bool exact, const Route* route);
    // host: lower-case, without port. Returns nullptr for no match.
    const Route* match(std::string_view host, std::string_view path) const;

private:
    struct PathTable {
        std::vector<std::pair<std::string, const Route*>> exact;
        std::vector<std::pair<std::string, const Route*>> prefixes; // longest first
        const Route* match(std::string_view path) const;
    };
    PathTable& table_for(std::string_view host);

    struct Hash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    std::unordered_map<std::string, PathTable, Hash, std::equal_to<>> exact_hosts_;
    std::vector<std::pair<std::string, PathTable>> wildcard_hosts_; // ".suffix", longest first
    PathTable any_host_;
};

template <class Route>
const Route* Router<Route>::PathTable::match(std::string_view path) const {
    for (const auto& [p, route] : exact)
        if (p == path)
            return route;
    for (const auto& [p, route] : prefixes)
        if (path.substr(0, p.size()) == p)
            return route;
    return nullptr;
}

template <class Route>
typename Router<Route>::PathTable& Router<Route>::table_for(std::string_view host) {
    if (host.empty())
        return any_host_;
    if (host.substr(0, 2) == "*.") {
        std::string suffix(host.substr(1));
        for (auto& [s, table] : wildcard_hosts_)
            if (s == suffix)
                return table;
        wildcard_hosts_.emplace_back(suffix, PathTable{});
        // Longest suffix first, so the most specific wildcard wins.
        std::stable_sort(wildcard_hosts_.begin(), wildcard_hosts_.end(),
                         [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
        for (auto& [s, table] : wildcard_hosts_)
            if (s == suffix)
                return table;
    }
    return exact_hosts_[std::string(host)];
}

template <class Route>
void Router<Route>::add(std::string_view host, std::string_view path, bool exact,
                        const Route* route) {
    PathTable& table = table_for(host);
    if (exact) {
        table.exact.emplace_back(std::string(path), route);
        return;
    }
    table.prefixes.emplace_back(std::string(path), route);
    std::stable_sort(table.prefixes.begin(), table.prefixes.end(),
                     [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

template <class Route>
const Route* Router<Route>::match(std::string_view host, std::string_view path) const {
    // The host picks one group, as a virtual host would; the path is matched only within it.
    // (No hashing of the host when no route names one.)
    if (auto it = exact_hosts_.empty() ? exact_hosts_.end() : exact_hosts_.find(host);
        it != exact_hosts_.end())
        return it->second.match(path);
    for (const auto& [suffix, table] : wildcard_hosts_)
        if (host.size() > suffix.size() && host.substr(host.size() - suffix.size()) == suffix)
            return table.match(path);
    return any_host_.match(path);
}

} // namespace gatehouse::routing
