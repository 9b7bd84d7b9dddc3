// The [admin] table: where the admin endpoint listens (kernel/README.md, section [admin]).
#pragma once

#include "config/table_reader.hpp"

#include <cstdint>
#include <string>

namespace gatehouse::admin {

struct AdminConfig {
    std::string host;     // an IP literal
    uint16_t port = 0;    // 0 picks a free port
    bool enabled = false; // `listen` was given
};

// Reads `listen = "ADDR:PORT"` (an IP address, "[v6]:port" for IPv6) and reports unknown keys.
void read_admin_config(config::TableReader& table, AdminConfig& out);

} // namespace gatehouse::admin
