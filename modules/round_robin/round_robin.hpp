// round_robin: smooth weighted round-robin over a precomputed sequence, shared across threads.
#pragma once

#include <gatehouse/sdk.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace round_robin {

// The nginx smooth weighted round-robin order for `weights` (each >= 1), after dividing them by
// their gcd: one full cycle, sum(weights / gcd) entries of peer indexes. Over a cycle peer i
// appears exactly weights[i] / gcd times, interleaved (5:1:1 gives a a b a c a a).
// Cost: O(peers x cycle length), once per pool per config generation.
std::vector<uint32_t> smooth_sequence(const std::vector<uint32_t> &weights);

// One upstream pool's balancer state: the immutable sequence and a shared ticket counter.
// Thread: select is called on every worker concurrently; it only does one relaxed fetch_add.
class RoundRobinPool {
  public:
    explicit RoundRobinPool(const std::vector<uint32_t> &weights);

    // Read the peers' weights from the kernel's pool (main thread, pool_init).
    // nullptr if a peer cannot be read.
    static std::unique_ptr<RoundRobinPool> from_pool(gh::Pool pool);

    // The next peer in the sequence that ctx marks eligible, scanning at most one cycle from
    // this call's ticket (the skipped slots are consumed, so eligible peers keep their ratio);
    // nullopt if none is eligible. Any worker thread, lock-free.
    std::optional<uint32_t> select(const gh::SelectContext &ctx) noexcept;

    const std::vector<uint32_t> &sequence() const noexcept { return sequence_; }

  private:
    std::vector<uint32_t> sequence_;
    // Own cache line: every worker writes it, while sequence_ is only read.
    alignas(64) std::atomic<uint64_t> next_{0};
};

} // namespace round_robin
