#include "modules/config_node.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace gatehouse::modules {

const gh_config_node_t* ConfigSession::root(const toml::table* table, std::string path) {
    nodes_.push_back({table ? table : &empty_, std::move(path), this, {}});
    return &nodes_.back();
}

const gh_config_node_t* ConfigSession::child(const gh_config_node_t*, const toml::node* node,
                                             std::string path) {
    nodes_.push_back({node, std::move(path), this, {}});
    return &nodes_.back();
}

void ConfigSession::error(const gh_config_node_t* node, std::string_view message) {
    failed_ = true;
    diag_.error(node->node->source(), node->path, std::string(message));
}

void ConfigSession::warn_bare_duration(const gh_config_node_t* node) {
    config::warn_bare_duration(diag_, *node->node, node->path);
}

bool ConfigSession::finish() {
    for (const auto& n : nodes_) {
        const toml::table* table = n.node->as_table();
        if (!table)
            continue;
        for (const auto& [key, value] : *table) {
            std::string_view name = key.str();
            if (std::find(n.known.begin(), n.known.end(), name) != n.known.end())
                continue;
            std::string hint = config::closest_match(name, n.known);
            std::string message = fmt::format("unknown key '{}'", name);
            if (!hint.empty())
                message += fmt::format(" (did you mean '{}'?)", hint);
            diag_.error(key.source(), n.path.empty() ? std::string(name) : n.path + "." +
                        std::string(name), std::move(message));
            failed_ = true;
        }
    }
    return !failed_;
}

} // namespace gatehouse::modules
