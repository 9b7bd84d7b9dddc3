// abi_conformance: shared state of the ABI v1 conformance module (written against the C ABI
// directly, not sdk.hpp, so it tests the kernel's side of the contract on its own).
#pragma once

#include <gatehouse/gatehouse.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace abi_conformance {

// ---- process-wide ------------------------------------------------------------------------------
extern const gh_host_api_v1 *g_host;
extern gh_module_t *g_self;
extern std::atomic<int> g_live_streams; // stream contexts not yet freed

struct Metrics {
    gh_metric_t *phases = nullptr;        // counter{phase}
    gh_metric_t *live_streams = nullptr;  // gauge
    gh_metric_t *pause_ms = nullptr;      // histogram
    gh_metric_t *late_failures = nullptr; // counter{check}
};
extern Metrics g_metrics;

// Checks made outside any stream (lifecycle, config, balancer). A failure sets its bit; every
// later response lists it.
enum GlobalCheck : uint32_t {
    kEntryHost,
    kLoadSelf,
    kMetricRegister,
    kMetricRejects,
    kMainThreadHasNoWorker,
    kCfgType,
    kCfgGet,
    kCfgGetAbsent,
    kCfgSize,
    kCfgAt,
    kCfgString,
    kCfgInt,
    kCfgFloat,
    kCfgBool,
    kCfgDuration,
    kCfgBytes,
    kRouteConfig,
    kActivate,
    kWorkerInit,
    kWorkerExit,
    kPoolInit,
    kSelect,
    kReport,
    kTimerCancel,
    kAdminHandle,
    kGlobalCheckCount
};
void global_check(bool ok, GlobalCheck which) noexcept;
// Names of the failed global checks, comma-separated ("" if none).
std::string global_failures();

// ---- configuration ([filter.abi_conformance], keys documented in README.md) -------------------
struct Config {
    std::string callout_upstream;
    int64_t timer_ms = 1;
    double ratio = 0;
    bool enabled = false;
    uint64_t timeout_ms = 0;
    uint64_t max_body = 0;
    std::vector<std::string> labels;
    std::vector<std::pair<std::string, int64_t>> extra;
    int64_t watch_port = 0; // 0: no fd_watch leg
    std::string tag; // route-level only
};

// ---- per stream --------------------------------------------------------------------------------
struct StreamState {
    gh_stream_t *stream = nullptr;
    const Config *config = nullptr; // the route config seen in ACCESS
    gh_worker_t *worker = nullptr;
    uint64_t paused_at_ms = 0;
    uint32_t phases_seen = 0;  // GH_PHASE_BIT mask
    uint32_t last_phase = 0;   // last header/control phase, for the order check
    bool chain_pending = false; // PAUSE chain (timer -> offload -> post -> callout) running
    bool ended = false;         // STREAM_END ran
    bool offload_ran = false;
    bool offload_off_worker = false;
    bool balancer_ran = false;
    bool responded_locally = false; // /abi/respond answered with host->respond
    bool transform_upper = false;   // request header x-abi-transform: upper
    bool header_written = false; // x-abi-conformance set; later failures are "late"
    bool peek_asked = false;     // RESPONSE_HEADERS asked for a body peek and returned GH_HOLD
    bool hold_asked = false;     // ACCESS held the request body (x-abi-hold: 1)
    uint64_t held_bytes = 0;     // request body bytes seen before the ACCESS re-run
    uint64_t request_body_bytes = 0;
    uint64_t response_body_bytes = 0;
    std::vector<std::string> failures;

    void check(bool ok, const char *name) noexcept;
};

// The stream's state (stream_ctx), or nullptr.
StreamState *state_of(gh_stream_t *s) noexcept;

// Hooks, by file. All noexcept: nothing may leave a hook.
gh_status_t config_parse(void *module_state, const gh_config_node_t *table, void **config) noexcept;
void config_free(void *module_state, void *config) noexcept;
gh_status_t route_config_parse(void *module_state, void *config, const gh_config_node_t *table,
                               void **route_config) noexcept;
gh_action_t on_phase(gh_stream_t *s, uint32_t phase, void *route_config) noexcept;
int32_t on_body(gh_stream_t *s, uint32_t direction, const gh_body_chunk_t *chunk,
                void *route_config) noexcept;
gh_status_t pool_init(void *config, const gh_pool_t *pool, void **pool_state) noexcept;
void pool_free(void *pool_state) noexcept;
gh_status_t select(void *pool_state, const gh_pool_t *pool, const gh_select_ctx_t *ctx,
                   uint32_t *peer) noexcept;
void report(void *pool_state, const gh_pool_t *pool, const gh_outcome_t *outcome) noexcept;

// The 1.3 fd_watch leg of the PAUSE chain (fd_watch.cpp): runs, then calls finish(st, ok) once.
void start_watch_leg(StreamState *st, void (*finish)(StreamState *, bool)) noexcept;

// Helpers.
inline gh_str_t str(std::string_view s) noexcept { return gh_str_t{s.data(), s.size()}; }
inline std::string_view sv(gh_str_t s) noexcept {
    return s.ptr ? std::string_view(s.ptr, s.len) : std::string_view();
}
inline std::string_view sv(gh_bytes_t b) noexcept {
    return b.ptr ? std::string_view(reinterpret_cast<const char *>(b.ptr), b.len)
                 : std::string_view();
}
void log(uint32_t level, const std::string &msg) noexcept;

} // namespace abi_conformance
