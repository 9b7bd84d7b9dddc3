// abi_conformance: entry point, descriptor and lifecycle hooks.
#include "conformance.hpp"

#include <cstring>
#include <exception>

namespace abi_conformance {

const gh_host_api_v1 *g_host = nullptr;
gh_module_t *g_self = nullptr;
std::atomic<int> g_live_streams{0};
Metrics g_metrics;

namespace {

std::atomic<uint32_t> g_failed_globals{0};
std::atomic<int> g_workers{0};

const char *const kGlobalCheckNames[kGlobalCheckCount] = {
    "entry_host",  "load_self",    "metric_register", "metric_rejects",
    "main_thread_worker", "cfg_type", "cfg_get",    "cfg_get_absent",  "cfg_size",
    "cfg_at",      "cfg_string",   "cfg_int",       "cfg_float",       "cfg_bool",
    "cfg_duration_ms", "cfg_bytes", "route_config", "activate",        "worker_init",
    "worker_exit", "pool_init",    "select",        "report",          "timer_cancel",
    "admin_handle",
};

void register_metrics() noexcept {
    const gh_str_t phase_label[] = {str("phase")};
    const gh_str_t check_label[] = {str("check")};
    const double buckets[] = {1, 5, 10, 50, 100, 500, 1000, 5000};
    g_metrics.phases = g_host->metric_register(
        g_self, GH_METRIC_COUNTER, str("abi_conformance_phases_total"),
        str("phase hooks run, by phase"), phase_label, 1, nullptr, 0);
    g_metrics.live_streams = g_host->metric_register(
        g_self, GH_METRIC_GAUGE, str("abi_conformance_live_streams"),
        str("stream contexts allocated and not yet freed"), nullptr, 0, nullptr, 0);
    g_metrics.pause_ms = g_host->metric_register(
        g_self, GH_METRIC_HISTOGRAM, str("abi_conformance_pause_ms"),
        str("ACCESS pause to resume, milliseconds"), nullptr, 0, buckets, 8);
    g_metrics.late_failures = g_host->metric_register(
        g_self, GH_METRIC_COUNTER, str("abi_conformance_late_failures_total"),
        str("checks failed after the response header was written"), check_label, 1, nullptr, 0);
    global_check(g_metrics.phases && g_metrics.live_streams && g_metrics.pause_ms &&
                     g_metrics.late_failures,
                 kMetricRegister);
    // Documented refusals: a bad name, and a conflicting registration of an existing name.
    gh_metric_t *bad = g_host->metric_register(g_self, GH_METRIC_COUNTER, str("Bad-Name"),
                                               str("x"), nullptr, 0, nullptr, 0);
    gh_metric_t *conflict =
        g_host->metric_register(g_self, GH_METRIC_COUNTER, str("abi_conformance_live_streams"),
                                str("x"), nullptr, 0, nullptr, 0);
    global_check(bad == nullptr && conflict == nullptr, kMetricRejects);
    g_host->metric_record(g_metrics.live_streams, GH_METRIC_SET, nullptr, 0, 0);
}

// Admin thread: "METHOD PATH?QUERY BODY" back as text/plain (the views die when it returns).
thread_local std::string g_admin_reply;
void admin_echo(void *, const gh_admin_request_t *req, gh_admin_response_t *res) noexcept {
    try {
        g_admin_reply = std::string(sv(req->method)) + " " + std::string(sv(req->path)) + "?" +
                        std::string(sv(req->query)) + " " + std::string(sv(req->body));
    } catch (...) {
        res->status = 500;
        return;
    }
    res->status = 201;
    res->content_type = str("text/x-conformance");
    res->body = gh_bytes_t{reinterpret_cast<const uint8_t *>(g_admin_reply.data()),
                           g_admin_reply.size()};
}

gh_status_t load(gh_module_t *self, void **state) noexcept {
    g_self = self;
    global_check(self != nullptr, kLoadSelf);
    global_check(g_host->current_worker() == nullptr, kMainThreadHasNoWorker);
    for (uint32_t level : {GH_LOG_ERROR, GH_LOG_WARN, GH_LOG_INFO, GH_LOG_DEBUG})
        if (level != GH_LOG_ERROR && level != GH_LOG_WARN) // keep stderr free of fake problems
            g_host->log(self, level, str("abi_conformance: load (log level probe)"));
    register_metrics();
    // 1.2: an admin endpoint at /modules/abi_conformance/... answering with what it was asked.
    if (GH_HOST_HAS(g_host, admin_handle))
        global_check(g_host->admin_handle(self, &admin_echo, nullptr) == GH_OK, kAdminHandle);
    *state = nullptr;
    return GH_OK;
}

gh_status_t activate(void *, void *config) noexcept {
    global_check(config != nullptr, kActivate);
    log(GH_LOG_INFO, "abi_conformance: activate");
    return GH_OK;
}

void deactivate(void *, void *config) noexcept {
    if (config == nullptr)
        log(GH_LOG_ERROR, "abi_conformance: deactivate without a config");
}

void worker_init(void *, void *config) noexcept {
    global_check(config != nullptr && g_host->current_worker() != nullptr, kWorkerInit);
    g_workers.fetch_add(1);
}

void worker_exit(void *, void *config) noexcept {
    global_check(config != nullptr && g_host->current_worker() != nullptr, kWorkerExit);
    g_workers.fetch_sub(1);
}

void destroy(void *) noexcept {
    const int leaked = g_live_streams.load();
    if (leaked != 0)
        log(GH_LOG_WARN, "abi_conformance: destroy: " + std::to_string(leaked) +
                             " stream context(s) leaked (STREAM_END did not run for them)");
    const std::string failed = global_failures();
    if (!failed.empty())
        log(GH_LOG_ERROR, "abi_conformance: destroy: failed checks: " + failed);
}

constexpr gh_filter_v1 kFilter = {
    sizeof(gh_filter_v1),
    // Every phase: the module reports which ones the kernel actually calls.
    ((1u << GH_PHASE_COUNT) - 1) | GH_PHASE_BIT(GH_PHASE_UPSTREAM_ERROR),
    GH_BODY_CLASS_OBSERVE,
    0,
    &on_phase,
    &on_body,
};

constexpr gh_balancer_v1 kBalancer = {
    sizeof(gh_balancer_v1), 0, &pool_init, &pool_free, &select, &report,
};

constexpr gh_module_v1 kDescriptor = {
    sizeof(gh_module_v1),
    GH_ABI_MAJOR,
    GH_ABI_MINOR,
    GH_KIND_FILTER | GH_KIND_BALANCER,
    "abi_conformance",
    "1.0.0",
    "exercises every hook and host function of ABI v1 (tests/abi)",
    &load,
    &config_parse,
    &config_free,
    &activate,
    &deactivate,
    &route_config_parse,
    &config_free,
    &worker_init,
    &worker_exit,
    &destroy,
    &kFilter,
    &kBalancer,
};

} // namespace

void global_check(bool ok, GlobalCheck which) noexcept {
    if (!ok)
        g_failed_globals.fetch_or(1u << which);
}

std::string global_failures() {
    std::string out;
    const uint32_t failed = g_failed_globals.load();
    for (uint32_t i = 0; i < kGlobalCheckCount; ++i)
        if (failed & (1u << i))
            out += (out.empty() ? "" : ",") + std::string(kGlobalCheckNames[i]);
    return out;
}

void log(uint32_t level, const std::string &msg) noexcept {
    g_host->log(g_self, level, str(msg));
}

} // namespace abi_conformance

extern "C" GH_EXPORT const gh_module_v1 *gatehouse_module_v1(const gh_host_api_v1 *host);
extern "C" GH_EXPORT const gh_module_v1 *gatehouse_module_v1(const gh_host_api_v1 *host) {
    using namespace abi_conformance;
    g_host = host;
    global_check(host != nullptr && host->abi_major == GH_ABI_MAJOR &&
                     host->struct_size >= sizeof(gh_host_api_v1) && host->kernel_version.len > 0 &&
                     GH_HOST_HAS(host, pool_name),
                 kEntryHost);
    return &kDescriptor;
}
