// least_conn: runtime. One pass over the eligible peers; no state of its own.
#include "least_conn.hpp"

#include <chrono>
#include <functional>
#include <thread>

namespace least_conn {

bool less_loaded(uint64_t a_inflight, uint32_t a_weight, uint64_t b_inflight,
                 uint32_t b_weight) noexcept {
    // a/wa < b/wb  <=>  a*wb < b*wa  (weights positive)
    using wide = unsigned __int128;
    return static_cast<wide>(a_inflight) * b_weight < static_cast<wide>(b_inflight) * a_weight;
}

namespace {

uint64_t seed_for_this_thread() noexcept {
    uint64_t seed = std::hash<std::thread::id>{}(std::this_thread::get_id());
    seed ^= static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    // splitmix64 finaliser: spread the bits; never return the all-zero xorshift state.
    seed += 0x9e3779b97f4a7c15ull;
    seed = (seed ^ (seed >> 30)) * 0xbf58476d1ce4e5b9ull;
    seed = (seed ^ (seed >> 27)) * 0x94d049bb133111ebull;
    seed ^= seed >> 31;
    return seed != 0 ? seed : 0x2545f4914f6cdd1dull;
}

uint64_t next_random() noexcept {
    thread_local uint64_t state = seed_for_this_thread();
    // xorshift64*
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545f4914f6cdd1dull;
}

} // namespace

uint32_t random_below(uint32_t bound) noexcept {
    // Lemire's multiply-shift: the high 32 bits of a 32x32 product, close enough to uniform for
    // tie-breaking among at most a few thousand peers.
    const uint64_t r = next_random() >> 32;
    return static_cast<uint32_t>((r * bound) >> 32);
}

std::optional<uint32_t> select_peer(gh::Pool pool, const gh::SelectContext &ctx) noexcept {
    std::optional<uint32_t> best;
    uint64_t best_inflight = 0;
    uint32_t best_weight = 1, ties = 0;
    for (uint32_t i = 0; i < ctx.peer_count(); ++i) {
        if (!ctx.eligible(i))
            continue;
        std::optional<gh_peer_info_t> peer = pool.peer(i);
        if (!peer)
            continue;
        const uint32_t weight = peer->weight > 0 ? peer->weight : 1;
        if (!best || less_loaded(peer->inflight, weight, best_inflight, best_weight)) {
            best = i;
            best_inflight = peer->inflight;
            best_weight = weight;
            ties = 1;
        } else if (!less_loaded(best_inflight, best_weight, peer->inflight, weight)) {
            // Equal load: reservoir sampling keeps each of the `ties` peers with chance 1/ties.
            if (random_below(++ties) == 0)
                best = i;
        }
    }
    return best;
}

} // namespace least_conn
