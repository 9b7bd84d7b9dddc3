// round_robin: runtime. Precompute the smooth WRR cycle once; select is a ticket into it.
#include "round_robin.hpp"

#include <numeric>

namespace round_robin {

std::vector<uint32_t> smooth_sequence(const std::vector<uint32_t> &weights) {
    uint32_t g = 0;
    for (uint32_t w : weights)
        g = std::gcd(g, w);
    if (g == 0)
        return {};
    std::vector<int64_t> reduced(weights.size()), current(weights.size(), 0);
    int64_t total = 0;
    for (std::size_t i = 0; i < weights.size(); ++i) {
        reduced[i] = weights[i] / g;
        total += reduced[i];
    }
    std::vector<uint32_t> sequence;
    sequence.reserve(static_cast<std::size_t>(total));
    // nginx's smooth WRR step: every peer gains its weight, the richest (lowest index on ties)
    // is chosen and pays the total. After `total` steps every current is 0 again: one cycle.
    for (int64_t step = 0; step < total; ++step) {
        std::size_t best = 0;
        for (std::size_t i = 0; i < reduced.size(); ++i) {
            current[i] += reduced[i];
            if (current[i] > current[best])
                best = i;
        }
        current[best] -= total;
        sequence.push_back(static_cast<uint32_t>(best));
    }
    return sequence;
}

RoundRobinPool::RoundRobinPool(const std::vector<uint32_t> &weights)
    : sequence_(smooth_sequence(weights)) {}

std::unique_ptr<RoundRobinPool> RoundRobinPool::from_pool(gh::Pool pool) {
    std::vector<uint32_t> weights;
    for (uint32_t i = 0, n = pool.size(); i < n; ++i) {
        std::optional<gh_peer_info_t> peer = pool.peer(i);
        if (!peer)
            return nullptr;
        weights.push_back(peer->weight > 0 ? peer->weight : 1);
    }
    return std::make_unique<RoundRobinPool>(weights);
}

std::optional<uint32_t> RoundRobinPool::select(const gh::SelectContext &ctx) noexcept {
    const std::size_t n = sequence_.size();
    if (n == 0)
        return std::nullopt;
    // Tickets are unique across threads, so any run of tickets that is a multiple of the cycle
    // visits every sequence slot equally often: exact weight shares without a lock.
    std::size_t pos = static_cast<std::size_t>(next_.fetch_add(1, std::memory_order_relaxed) % n);
    for (std::size_t skipped = 0; skipped < n; ++skipped) {
        const uint32_t peer = sequence_[pos];
        if (ctx.eligible(peer)) {
            // Consume the slots we skipped, so the next call does not land on the same peer
            // again: ineligible peers drop out of the cycle and the others keep their ratio.
            if (skipped != 0)
                next_.fetch_add(skipped, std::memory_order_relaxed);
            return peer;
        }
        if (++pos == n)
            pos = 0;
    }
    return std::nullopt;
}

} // namespace round_robin
