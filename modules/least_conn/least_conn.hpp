// least_conn: pick the eligible peer with the fewest in-flight requests per unit of weight.
#pragma once

#include <gatehouse/sdk.hpp>

#include <cstdint>
#include <optional>

namespace least_conn {

// True if a_inflight / a_weight < b_inflight / b_weight, compared exactly by cross-multiplying
// (no floating point; 128-bit products, so no overflow). Weights are >= 1.
bool less_loaded(uint64_t a_inflight, uint32_t a_weight, uint64_t b_inflight,
                 uint32_t b_weight) noexcept;

// A uniform integer in [0, bound) from a per-thread xorshift generator (bound >= 1).
// Thread: any; each thread has its own state, seeded from the thread's identity and the clock.
uint32_t random_below(uint32_t bound) noexcept;

// The eligible peer of `pool` with the lowest inflight/weight, read through the host's
// pool_peer; ties are broken uniformly at random (reservoir choice). nullopt if no peer is
// eligible. The kernel owns and updates the in-flight counters; this only reads snapshots.
// Thread: any worker, concurrently; no shared mutable state.
std::optional<uint32_t> select_peer(gh::Pool pool, const gh::SelectContext &ctx) noexcept;

} // namespace least_conn
