#include "admin/status.hpp"

#include "modules/loader.hpp"
#include "upstream/pool.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

namespace gatehouse::admin {

namespace {

using nlohmann::json;

std::string iso8601_utc(std::chrono::system_clock::time_point t) {
    return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}",
                       fmt::gmtime(std::chrono::system_clock::to_time_t(t)));
}

json module_json(const modules::LoadedModule& m) {
    return {{"name", m.name},
            {"version", m.desc.version ? m.desc.version : ""},
            // The ABI the module was built against (its minimum kernel), not the kernel's.
            {"abi", fmt::format("{}.{}", m.desc.abi_major, m.desc.abi_minor)},
            {"kinds", m.kinds()},
            {"path", m.path}};
}

json pool_json(const upstream::UpstreamPool& pool, int64_t now) {
    json servers = json::array();
    for (size_t i = 0; i < pool.size(); ++i) {
        const upstream::Peer& p = pool.peer(i);
        servers.push_back(
            {{"address", p.entry.address},
             {"weight", p.entry.weight},
             {"backup", p.entry.backup},
             {"healthy", p.healthy(now)},
             {"inflight", p.inflight.load(std::memory_order_relaxed)},
             {"consecutive_fails", p.consecutive_fails.load(std::memory_order_relaxed)}});
    }
    return {{"name", pool.name()}, {"balancer", pool.config().balancer}, {"servers", servers}};
}

} // namespace

std::string status_json(const StatusInputs& in) {
    auto uptime = std::chrono::duration_cast<std::chrono::seconds>(
        std::chrono::system_clock::now() - in.started_at);
    json doc = {{"version", in.version},
                {"config_file", in.config_file},
                {"config_hash", in.config_hash},
                {"generation", in.generation},
                {"started_at", iso8601_utc(in.started_at)},
                {"uptime_seconds", uptime.count()},
                {"ready", in.ready}};
    json mods = json::array();
    for (const auto* m : in.modules)
        mods.push_back(module_json(*m));
    doc["modules"] = std::move(mods);
    json pools = json::array();
    int64_t now = upstream::now_ns();
    for (const auto* p : in.pools)
        pools.push_back(pool_json(*p, now));
    doc["upstreams"] = std::move(pools);
    // Names from the config or a module may hold any bytes: replace invalid UTF-8 rather than
    // throw on the admin thread.
    return doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string config_sha256(std::string_view text) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr) != 1)
        return {};
    std::string hex;
    for (unsigned i = 0; i < length; ++i)
        fmt::format_to(std::back_inserter(hex), "{:02x}", digest[i]);
    return hex;
}

} // namespace gatehouse::admin
