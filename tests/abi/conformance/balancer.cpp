// abi_conformance: balancer hooks. Picks the first eligible peer and checks the pool functions.
#include "conformance.hpp"

#include <new>
#include <optional>

namespace abi_conformance {

namespace {
struct PoolState {
    uint32_t size = 0;
    std::string name;
};

bool peer_ok(const gh_pool_t *pool, uint32_t i) noexcept {
    gh_peer_info_t info{};
    info.struct_size = sizeof(info);
    return g_host->pool_peer(pool, i, &info) == GH_OK && info.weight >= 1 && info.address.len > 0;
}
} // namespace

gh_status_t pool_init(void *config, const gh_pool_t *pool, void **pool_state) noexcept {
    auto *ps = new (std::nothrow) PoolState();
    if (ps == nullptr)
        return GH_ERR_INTERNAL;
    ps->size = g_host->pool_size(pool);
    try {
        ps->name = std::string(sv(g_host->pool_name(pool)));
    } catch (...) {
        delete ps;
        return GH_ERR_INTERNAL;
    }
    gh_peer_info_t past_end{};
    past_end.struct_size = sizeof(past_end);
    global_check(config != nullptr && ps->size >= 1 && !ps->name.empty() && peer_ok(pool, 0) &&
                     g_host->pool_peer(pool, ps->size, &past_end) != GH_OK,
                 kPoolInit);
    *pool_state = ps;
    return GH_OK;
}

void pool_free(void *pool_state) noexcept { delete static_cast<PoolState *>(pool_state); }

gh_status_t select(void *pool_state, const gh_pool_t *pool, const gh_select_ctx_t *ctx,
                   uint32_t *peer) noexcept {
    const auto *ps = static_cast<const PoolState *>(pool_state);
    bool ok = ctx != nullptr && ctx->struct_size >= sizeof(gh_select_ctx_t) &&
              ctx->peer_count == g_host->pool_size(pool) && ctx->peer_count == ps->size &&
              ctx->eligible != nullptr && sv(g_host->pool_name(pool)) == ps->name;
    std::optional<uint32_t> chosen;
    for (uint32_t i = 0; ok && i < ctx->peer_count; ++i) {
        ok = peer_ok(pool, i);
        if (!chosen && ctx->eligible[i])
            chosen = i;
    }
    global_check(ok, kSelect);
    if (ctx != nullptr && ctx->stream != nullptr)
        if (StreamState *st = state_of(ctx->stream)) {
            st->balancer_ran = true;
            st->check(ok, "select");
        }
    if (!chosen)
        return GH_ERR_NOT_FOUND;
    *peer = *chosen;
    return GH_OK;
}

void report(void *pool_state, const gh_pool_t *, const gh_outcome_t *outcome) noexcept {
    const auto *ps = static_cast<const PoolState *>(pool_state);
    global_check(outcome != nullptr && outcome->struct_size >= sizeof(gh_outcome_t) &&
                     outcome->peer < ps->size && outcome->outcome <= GH_OUTCOME_ABORTED,
                 kReport);
}

} // namespace abi_conformance
