#include "upstream/pool.hpp"

#include "log.hpp"
#include "modules/loader.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <fmt/format.h>

namespace gatehouse::upstream {

int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
        .count();
}

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

void UpstreamPool::fill_eligible(std::vector<uint8_t>& eligible, const std::vector<uint8_t>& tried,
                                 bool backup, bool ignore_health, int64_t now) const {
    for (size_t i = 0; i < peers_.size(); ++i) {
        const Peer& p = *peers_[i];
        bool ok = !tried[i] && p.entry.backup == backup;
        if (ok && !ignore_health)
            ok = !p.ejected(now) && (p.entry.max_inflight == 0 ||
                                     p.inflight.load(std::memory_order_relaxed) <
                                         p.entry.max_inflight);
        eligible[i] = ok;
    }
}

Peer* UpstreamPool::select(gh_stream_t* stream, uint32_t attempt,
                           const std::vector<uint8_t>& tried) {
    thread_local std::vector<uint8_t> eligible;
    eligible.assign(peers_.size(), 0);
    int64_t now = now_ns();
    gh_select_ctx_t ctx{};
    ctx.struct_size = sizeof ctx;
    ctx.attempt = attempt;
    ctx.peer_count = static_cast<uint32_t>(peers_.size());
    ctx.stream = stream;
    // Primaries, then backups; if health leaves nobody, try everyone not yet tried (panic mode)
    // rather than failing every request.
    for (int pass = 0; pass < 3; ++pass) {
        bool backup = pass == 1;
        bool panic = pass == 2;
        if (panic) {
            for (size_t i = 0; i < peers_.size(); ++i)
                eligible[i] = !tried[i];
        } else {
            fill_eligible(eligible, tried, backup, false, now);
        }
        bool any = false;
        for (uint8_t e : eligible)
            any = any || e;
        if (!any)
            continue;
        ctx.eligible = eligible.data();
        uint32_t index = 0;
        gh_status_t rc = balancer_->balancer.select(balancer_state_, handle(), &ctx, &index);
        // Fail closed on a balancer that answers outside what it was offered.
        if (rc != GH_OK || index >= peers_.size() || !eligible[index])
            return nullptr;
        return peers_[index].get();
    }
    return nullptr;
}

void UpstreamPool::record_failure(Peer& peer) {
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
    log::warn("upstream {}: server {} ejected for {} ms after {} failures", config_.name,
              peer.entry.address, backoff.count(), fails);
}

void UpstreamPool::report(Peer& peer, uint32_t outcome, uint32_t status, uint64_t latency_us) {
    switch (outcome) {
    case GH_OUTCOME_SUCCESS:
    case GH_OUTCOME_HTTP_5XX:
        peer.consecutive_fails.store(0, std::memory_order_relaxed);
        if (peer.ejections.load(std::memory_order_relaxed) != 0)
            peer.ejections.store(0, std::memory_order_relaxed);
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
