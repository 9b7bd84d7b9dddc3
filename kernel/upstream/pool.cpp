#include "upstream/pool.hpp"

#include "coarse_clock.hpp"
#include "log.hpp"
#include "modules/loader.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <fmt/format.h>

namespace gatehouse::upstream {

int64_t now_ns() { return CoarseClock::now().time_since_epoch().count(); }

UpstreamPool::UpstreamPool(const config::UpstreamConfig& config, uint32_t index)
    : config_(config), index_(index) {
    for (size_t i = 0; i < config_.servers.size(); ++i) {
        auto peer = std::make_unique<Peer>();
        peer->index = static_cast<uint32_t>(i);
        peer->entry = config_.servers[i];
        peers_.push_back(std::move(peer));
    }
}

UpstreamPool::~UpstreamPool() {
    if (balancer_ && balancer_->balancer.pool_free)
        balancer_->balancer.pool_free(balancer_state_);
}

bool UpstreamPool::resolve(std::string& error) {
    boost::asio::io_context io;
    boost::asio::ip::tcp::resolver resolver(io);
    for (auto& peer : peers_) {
        boost::system::error_code ec;
        auto address = boost::asio::ip::make_address(peer->entry.host, ec);
        if (!ec) {
            peer->endpoint = {address, peer->entry.port};
            continue;
        }
        auto results = resolver.resolve(peer->entry.host, std::to_string(peer->entry.port), ec);
        if (ec || results.empty()) {
            error = fmt::format("cannot resolve '{}': {}", peer->entry.host,
                                ec ? ec.message() : "no address");
            return false;
        }
        peer->endpoint = results.begin()->endpoint();
    }
    return true;
}

bool UpstreamPool::bind_balancer(modules::LoadedModule* module, void* module_config,
                                 std::string& error) {
    if (!module || !module->has_balancer) {
        error = fmt::format("module '{}' is not a balancer", config_.balancer);
        return false;
    }
    balancer_ = module;
    if (module->balancer.pool_init &&
        module->balancer.pool_init(module_config, handle(), &balancer_state_) != GH_OK) {
        error = fmt::format("balancer '{}' refused the pool", module->name);
        balancer_ = nullptr;
        return false;
    }
    return true;
}

uint32_t UpstreamPool::max_attempts() const {
    return config_.max_attempts ? config_.max_attempts : static_cast<uint32_t>(peers_.size());
}

bool UpstreamPool::fill_eligible(std::vector<uint8_t>& eligible, const std::vector<uint8_t>& tried,
                                 bool backup, bool ignore_health, int64_t now) const {
    bool any = false;
    for (size_t i = 0; i < peers_.size(); ++i) {
        const Peer& p = *peers_[i];
        bool ok = !tried[i] && p.entry.backup == backup &&
                  (ignore_health || p.healthy(now)) &&
                  (p.entry.max_inflight == 0 ||
                   p.inflight.load(std::memory_order_relaxed) < p.entry.max_inflight);
        eligible[i] = ok;
        any = any || ok;
    }
    return any;
}

bool UpstreamPool::below_panic_threshold(int64_t now) const {
    if (config_.panic_threshold == 0)
        return false;
    uint32_t primaries = 0, healthy = 0;
    for (const auto& p : peers_) {
        if (p->entry.backup)
            continue;
        ++primaries;
        healthy += p->healthy(now) ? 1 : 0;
    }
    // healthy / primaries < threshold / 100, in integers.
    return primaries > 0 && uint64_t{healthy} * 100 < uint64_t{config_.panic_threshold} * primaries;
}

Peer* UpstreamPool::select(gh_stream_t* stream, uint32_t attempt,
                           const std::vector<uint8_t>& tried) {
    // Per thread and grown only to the largest pool: no allocation per request.
    thread_local std::vector<uint8_t> eligible;
    eligible.assign(peers_.size(), 0);
    int64_t now = now_ns();
    gh_select_ctx_t ctx{};
    ctx.struct_size = sizeof ctx;
    ctx.attempt = attempt;
    ctx.peer_count = static_cast<uint32_t>(peers_.size());
    ctx.stream = stream;
    // Panic mode: with too few healthy primaries the healthy ones would take the whole load
    // and fall over too; spreading it over every server (Envoy's panic threshold) is better.
    bool panic = below_panic_threshold(now);
    bool any = fill_eligible(eligible, tried, false, panic, now) ||
               fill_eligible(eligible, tried, true, panic, now);
    if (!any) {
        // Nobody eligible at all: try everyone not yet tried rather than fail every request.
        for (size_t i = 0; i < peers_.size(); ++i) {
            eligible[i] = !tried[i];
            any = any || eligible[i];
        }
    }
    if (!any)
        return nullptr;
    ctx.eligible = eligible.data();
    // Another worker may fill a server between the eligibility check and the choice: the count
    // is taken with a compare-and-swap against max_inflight, and a lost race asks again.
    for (size_t round = 0; round < peers_.size(); ++round) {
        uint32_t index = 0;
        gh_status_t rc = balancer_->balancer.select(balancer_state_, handle(), &ctx, &index);
        // Fail closed on a balancer that answers outside what it was offered.
        if (rc != GH_OK || index >= peers_.size() || !eligible[index])
            return nullptr;
        if (try_acquire(*peers_[index]))
            return peers_[index].get();
        eligible[index] = 0;
        bool left = false;
        for (uint8_t e : eligible)
            left = left || e;
        if (!left)
            return nullptr;
    }
    return nullptr;
}

bool UpstreamPool::try_acquire(Peer& peer) {
    uint32_t max = peer.entry.max_inflight;
    if (max == 0) {
        peer.inflight.fetch_add(1, std::memory_order_relaxed);
        return true;
    }
    uint64_t current = peer.inflight.load(std::memory_order_relaxed);
    while (current < max)
        if (peer.inflight.compare_exchange_weak(current, current + 1, std::memory_order_relaxed))
            return true;
    return false;
}

void UpstreamPool::record_failure(Peer& peer) {
    // A server still ejected is tried only when nobody else is left (or in panic): its failure
    // then says nothing new, and must not push its return further out. The back-off grows
    // from the probe after an ejection ends.
    if (peer.ejected(now_ns()))
        return;
    uint32_t fails = peer.consecutive_fails.fetch_add(1, std::memory_order_relaxed) + 1;
    bool probation = peer.ejections.load(std::memory_order_relaxed) > 0;
    if (fails < config_.max_fails && !probation)
        return;
    uint32_t ejections = peer.ejections.fetch_add(1, std::memory_order_relaxed) + 1;
    auto backoff = config_.fail_backoff * (1u << std::min<uint32_t>(ejections - 1, 4));
    peer.ejected_until_ns.store(
        now_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(backoff).count(),
        std::memory_order_relaxed);
    peer.consecutive_fails.store(0, std::memory_order_relaxed);
    log::warn("upstream {}: server {} ejected for {} ms after {} failure{}", config_.name,
              peer.entry.address, backoff.count(), fails, fails == 1 ? "" : "s");
}

void UpstreamPool::record_success(Peer& peer) {
    if (peer.consecutive_fails.load(std::memory_order_relaxed) != 0)
        peer.consecutive_fails.store(0, std::memory_order_relaxed);
    // One answer clears an ejection at once, also one not yet expired (the server answered a
    // request sent when nobody else was left): health, metrics and /status say so from now.
    if (peer.ejections.load(std::memory_order_relaxed) == 0)
        return;
    peer.ejected_until_ns.store(0, std::memory_order_relaxed);
    if (peer.ejections.exchange(0, std::memory_order_relaxed) != 0)
        log::info("upstream {}: server {} answers again, back in the pool", config_.name,
                  peer.entry.address);
}

void UpstreamPool::report(Peer& peer, uint32_t outcome, uint32_t status, uint64_t latency_us) {
    switch (outcome) {
    case GH_OUTCOME_SUCCESS:
    case GH_OUTCOME_HTTP_5XX:
        record_success(peer);
        break;
    case GH_OUTCOME_CONNECT_FAILURE:
    case GH_OUTCOME_TIMEOUT:
    case GH_OUTCOME_RESET:
        record_failure(peer);
        break;
    default:
        break;
    }
    if (balancer_ && balancer_->balancer.report) {
        gh_outcome_t o{};
        o.struct_size = sizeof o;
        o.peer = peer.index;
        o.outcome = outcome;
        o.status = status;
        o.latency_us = latency_us;
        balancer_->balancer.report(balancer_state_, handle(), &o);
    }
}

} // namespace gatehouse::upstream
