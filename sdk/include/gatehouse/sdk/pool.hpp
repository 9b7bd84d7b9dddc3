/*
 * gatehouse SDK, C++ wrapper -- upstream pools as balancers see them.
 *
 * The kernel owns the pool, its peers, their health and their in-flight counters; a balancer only
 * reads them. Ownership: gh::Pool and gh::SelectContext are non-owning views; the pool handle is
 * valid from pool_init until pool_free, a select context for the select call only. Thread: any
 * worker thread inside select/report, or the main thread inside pool_init.
 * Include <gatehouse/sdk.hpp> rather than this file.
 */
#ifndef GATEHOUSE_SDK_POOL_HPP
#define GATEHOUSE_SDK_POOL_HPP

#include "gatehouse/sdk/core.hpp"

#include <cstdint>
#include <optional>
#include <string_view>

namespace gh {

/* A non-owning view of an upstream pool. The host table defaults to the module's; tests pass a
 * fake one. Ownership and thread: as the file comment. */
class Pool {
  public:
    explicit Pool(const gh_pool_t *pool, const gh_host_api_v1 *table = detail::g_host) noexcept
        : pool_(pool), host_(table) {}
    const gh_pool_t *raw() const noexcept { return pool_; }
    /* Number of peers (fixed for the pool's lifetime). */
    uint32_t size() const noexcept { return host_->pool_size(pool_); }
    /* Peer `index`: weight, max_inflight, backup, a snapshot of inflight and the address (valid
     * while the pool is: until pool_free). nullopt if the index is out of range. */
    std::optional<gh_peer_info_t> peer(uint32_t index) const noexcept {
        gh_peer_info_t info{};
        info.struct_size = sizeof(info);
        if (host_->pool_peer(pool_, index, &info) != GH_OK)
            return std::nullopt;
        return info;
    }
    /* The upstream's name (`[upstream.NAME]`); valid while the pool is (until pool_free). */
    std::string_view name() const noexcept { return sv(host_->pool_name(pool_)); }

  private:
    const gh_pool_t *pool_;
    const gh_host_api_v1 *host_;
};

/* The arguments of one select call. Ownership: borrowed for the call. Thread: the caller's. */
class SelectContext {
  public:
    explicit SelectContext(const gh_select_ctx_t &ctx) noexcept : ctx_(ctx) {}
    const gh_select_ctx_t &raw() const noexcept { return ctx_; }
    /* 0 for the first try, 1 for the first retry... */
    uint32_t attempt() const noexcept { return ctx_.attempt; }
    uint32_t peer_count() const noexcept { return ctx_.peer_count; }
    /* True if peer i may be chosen now (healthy, not tried yet, below max_inflight, right
     * backup tier); false for any index out of range. */
    bool eligible(uint32_t i) const noexcept {
        return i < ctx_.peer_count && ctx_.eligible != nullptr && ctx_.eligible[i] != 0;
    }
    /* The request, for read-only use during select (hashing a header...); nullptr when the
     * kernel picks a server for a module's callout. */
    gh_stream_t *stream() const noexcept { return ctx_.stream; }

  private:
    const gh_select_ctx_t &ctx_;
};

} // namespace gh

#endif // GATEHOUSE_SDK_POOL_HPP
