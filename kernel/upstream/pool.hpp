// An upstream pool: its servers ("peers") and their process-wide state -- in-flight count and
// passive health -- shared by every worker through atomics (no lock on the request path).
#pragma once

#include "config/config.hpp"

#include <gatehouse/gatehouse.h>

#include <boost/asio/ip/tcp.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gatehouse::modules {
struct LoadedModule;
}

namespace gatehouse::upstream {

struct Peer {
    uint32_t index = 0;
    config::ServerEntry entry;
    boost::asio::ip::tcp::endpoint endpoint;
    std::atomic<uint64_t> inflight{0};
    std::atomic<uint32_t> consecutive_fails{0};
    std::atomic<uint32_t> ejections{0};          // successive ejections, for the backoff
    std::atomic<int64_t> ejected_until_ns{0};    // steady clock; 0 = not ejected
    // Active health (HealthChecker): written only by the checker thread, read by every worker.
    // Servers start healthy so a pool serves at once, before the first check has run.
    std::atomic<bool> active_healthy{true};
    std::atomic<uint32_t> check_passes{0}; // consecutive passed checks, for `rise`
    std::atomic<uint32_t> check_fails{0};  // consecutive failed checks, for `fall`

    bool ejected(int64_t now_ns) const {
        return ejected_until_ns.load(std::memory_order_relaxed) > now_ns;
    }
    // Healthy by both measures: actively checked healthy and not passively ejected.
    bool healthy(int64_t now_ns) const {
        return active_healthy.load(std::memory_order_relaxed) && !ejected(now_ns);
    }
};

// Keeps a peer's in-flight count right whatever happens to the attempt: the count goes up when
// an attempt starts and down when this guard is released or destroyed.
class InflightGuard {
public:
    InflightGuard() = default;
    // Takes over one in-flight count that UpstreamPool::select already added for `peer`.
    static InflightGuard adopt(Peer* peer) {
        InflightGuard g;
        g.peer_ = peer;
        return g;
    }
    InflightGuard(InflightGuard&& other) noexcept : peer_(std::exchange(other.peer_, nullptr)) {}
    InflightGuard& operator=(InflightGuard&& other) noexcept {
        release();
        peer_ = std::exchange(other.peer_, nullptr);
        return *this;
    }
    ~InflightGuard() { release(); }
    void release() {
        if (peer_)
            peer_->inflight.fetch_sub(1, std::memory_order_relaxed);
        peer_ = nullptr;
    }
    Peer* peer() const { return peer_; }

private:
    Peer* peer_ = nullptr;
};

class UpstreamPool {
public:
    UpstreamPool(const config::UpstreamConfig& config, uint32_t index);
    ~UpstreamPool();

    // Resolves server addresses (at start-up / reload, not per request).
    bool resolve(std::string& error);
    // Binds the balancer module and lets it build its per-pool state.
    bool bind_balancer(modules::LoadedModule* module, void* module_config, std::string& error);

    const std::string& name() const { return config_.name; }
    const config::UpstreamConfig& config() const { return config_; }
    uint32_t index() const { return index_; } // dense index, for per-worker tables
    size_t size() const { return peers_.size(); }
    Peer& peer(size_t i) { return *peers_[i]; }
    const Peer& peer(size_t i) const { return *peers_[i]; }
    uint32_t max_attempts() const;

    // Picks a peer for attempt `attempt`, excluding `tried` (a bit per peer), and counts the
    // attempt in its in-flight count (adopt it with InflightGuard::adopt). nullptr = none: every
    // candidate is tried or at its max_inflight.
    Peer* select(gh_stream_t* stream, uint32_t attempt, const std::vector<uint8_t>& tried);
    void report(Peer& peer, uint32_t outcome, uint32_t status, uint64_t latency_us);
    static bool try_acquire(Peer& peer);

    gh_pool_t* handle() { return reinterpret_cast<gh_pool_t*>(this); }
    static UpstreamPool* from(const gh_pool_t* pool) {
        return const_cast<UpstreamPool*>(reinterpret_cast<const UpstreamPool*>(pool));
    }

private:
    void record_failure(Peer& peer);
    void record_success(Peer& peer);
    // Marks the untried peers of one tier that are below max_inflight (and healthy, unless
    // `ignore_health`); returns whether any was marked.
    bool fill_eligible(std::vector<uint8_t>& eligible, const std::vector<uint8_t>& tried,
                       bool backup, bool ignore_health, int64_t now_ns) const;
    // True when fewer than panic_threshold % of the primary servers are healthy.
    bool below_panic_threshold(int64_t now_ns) const;

    config::UpstreamConfig config_;
    uint32_t index_;
    std::vector<std::unique_ptr<Peer>> peers_;
    modules::LoadedModule* balancer_ = nullptr;
    void* balancer_state_ = nullptr;
};

// CoarseClock's nanoseconds (tick resolution) for ejection and backoff deadlines: read on every
// server selection, where the precise clock's TSC read cost more than the rest of the check.
int64_t now_ns();

} // namespace gatehouse::upstream
