// `[upstream.NAME.health]`: active health checks of an upstream's servers (kernel/README.md).
// Kept apart from config.hpp so the checker and its tests need only this type.
#pragma once

#include <chrono>
#include <string>

namespace gatehouse::config {

class TableReader;

struct HealthCheckConfig {
    bool enabled = false; // the table is present
    std::string path = "/";
    std::string host; // empty = the server's address as written
    std::chrono::milliseconds interval{5000};
    std::chrono::milliseconds jitter{500};
    std::chrono::milliseconds timeout{2000};
    unsigned expect_min = 200, expect_max = 399;
    unsigned rise = 2, fall = 3;
};

// Reads every key of the table into `out` (keeping the defaults of absent keys) and reports
// unknown keys. Does not touch `enabled`: the caller sets it because the table exists.
void read_health_config(TableReader& health_table, HealthCheckConfig& out);

} // namespace gatehouse::config
