// The gh_config_node_t handles modules read their TOML tables through. A ConfigSession owns
// the handles for one hook call, remembers which keys the module asked for, and afterwards
// reports the keys it never read as unknown.
#pragma once

#include "config/diagnostics.hpp"

#include <gatehouse/gatehouse.h>

#include <toml++/toml.h>

#include <deque>
#include <string>
#include <vector>

namespace gatehouse::modules {
class ConfigSession;
}

struct gh_config_node {
    const toml::node* node;
    std::string path;
    gatehouse::modules::ConfigSession* session;
    mutable std::vector<std::string> known; // keys the module asked for (tables)
};

namespace gatehouse::modules {

class ConfigSession {
public:
    explicit ConfigSession(config::Diagnostics& diag) : diag_(diag) {}
    const gh_config_node_t* root(const toml::table* table, std::string path);
    const gh_config_node_t* child(const gh_config_node_t* parent, const toml::node* node,
                                  std::string path);
    void error(const gh_config_node_t* node, std::string_view message);
    void warn_bare_duration(const gh_config_node_t* node);
    // Reports unknown keys in every table handle given out. Returns true if no error at all.
    bool finish();
    bool failed() const { return failed_; }

private:
    config::Diagnostics& diag_;
    std::deque<gh_config_node> nodes_;
    toml::table empty_;
    bool failed_ = false;
};

} // namespace gatehouse::modules
