// The admin endpoint's /status document (JSON): what is running and how the upstream servers
// are doing. Built from plain inputs so it can be tested without a running kernel.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::modules {
struct LoadedModule;
}
namespace gatehouse::upstream {
class UpstreamPool;
}

namespace gatehouse::admin {

struct StatusInputs {
    std::string version; // GATEHOUSE_VERSION
    std::string config_file;
    std::string config_hash; // config_sha256() of the text the generation was built from
    uint64_t generation = 0; // 1 at start, +1 per successful reload
    std::chrono::system_clock::time_point started_at;
    bool ready = true; // false while draining
    std::vector<const modules::LoadedModule*> modules;
    std::vector<const upstream::UpstreamPool*> pools; // the current generation's
};

// {"version", "config_file", "config_hash", "generation", "started_at", "uptime_seconds",
//  "ready", "modules": [{name, version, abi, kinds, path}],
//  "upstreams": [{name, balancer, servers: [{address, weight, backup, healthy, inflight,
//                                            consecutive_fails}]}]}
std::string status_json(const StatusInputs& in);

// Lower-case hex SHA-256 of `text`.
std::string config_sha256(std::string_view text);

} // namespace gatehouse::admin
