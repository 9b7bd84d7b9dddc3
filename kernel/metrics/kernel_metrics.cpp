#include "metrics/kernel_metrics.hpp"

#include "metrics.hpp"

#include "upstream/pool.hpp"

#include <fmt/format.h>

#include <cassert>
#include <iterator>

namespace gatehouse::metrics {

namespace {

// The `le` labels, written once as Prometheus clients conventionally print them.
constexpr std::array<const char*, kBucketBoundsUs.size()> kBucketLabels = {
    "0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10"};

constexpr const char* kCodeClasses[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(std::back_inserter(out), "# HELP gatehouse_{} {}\n# TYPE gatehouse_{} {}\n",
                   name, help, name, type);
}

// Sums one histogram over the workers, as cumulative bucket counts (+Inf last) and the sum.
struct HistogramTotals {
    std::array<uint64_t, kBucketBoundsUs.size() + 1> cumulative{};
    uint64_t sum_us = 0;
};

template <class Cells, class Member>
HistogramTotals sum_histogram(const std::vector<Cells>& workers, Member member) {
    HistogramTotals t;
    for (const Cells& w : workers) {
        const HistogramCells& h = w.*member;
        for (size_t i = 0; i < h.buckets.size(); ++i)
            t.cumulative[i] += h.buckets[i].get();
        t.sum_us += h.sum_us.get();
    }
    for (size_t i = 1; i < t.cumulative.size(); ++i)
        t.cumulative[i] += t.cumulative[i - 1];
    return t;
}

void render_histogram(std::string& out, std::string_view name, std::string_view labels,
                      const HistogramTotals& t) {
    auto it = std::back_inserter(out);
    for (size_t i = 0; i < kBucketLabels.size(); ++i)
        fmt::format_to(it, "gatehouse_{}_bucket{{{},le=\"{}\"}} {}\n", name, labels,
                       kBucketLabels[i], t.cumulative[i]);
    fmt::format_to(it, "gatehouse_{}_bucket{{{},le=\"+Inf\"}} {}\n", name, labels,
                   t.cumulative.back());
    fmt::format_to(it, "gatehouse_{}_sum{{{}}} {}\n", name, labels,
                   static_cast<double>(t.sum_us) / 1e6);
    fmt::format_to(it, "gatehouse_{}_count{{{}}} {}\n", name, labels, t.cumulative.back());
}

unsigned code_class(unsigned status) { return status / 100 - 1; }

} // namespace

void HistogramCells::observe(uint64_t us) {
    size_t i = 0;
    while (i < kBucketBoundsUs.size() && us > kBucketBoundsUs[i])
        ++i;
    buckets[i].add();
    sum_us.add(us);
}

void WorkerShard::rejected(unsigned status) {
    if (status >= 100 && status < 600)
        rejected_[status - 100].add();
}

void GenerationMetrics::request_done(unsigned worker, uint32_t route_index, unsigned status,
                                     uint64_t duration_us) const {
    if (status < 100 || status > 599)
        return;
    RouteSeries* s = route_index == kNoRoute ? unrouted_ : routes_[route_index];
    RouteCells& c = s->workers[worker];
    c.code_classes[code_class(status)].add();
    c.duration.observe(duration_us);
}

void GenerationMetrics::upstream_attempt(unsigned worker, uint32_t pool_index,
                                         uint64_t first_byte_us) const {
    pools_[pool_index]->workers[worker].first_byte.observe(first_byte_us);
}

void GenerationMetrics::upstream_connection(unsigned worker, uint32_t pool_index,
                                            bool reused) const {
    PoolCells& c = pools_[pool_index]->workers[worker];
    (reused ? c.connections_reused : c.connections_new).add();
}

KernelMetrics::KernelMetrics(unsigned workers) {
    assert(workers > 0);
    for (unsigned i = 0; i < workers; ++i)
        shards_.push_back(std::make_unique<WorkerShard>());
    // An empty label value reads as "no route" in PromQL (`route=""` matches a missing label).
    unrouted_ = route_series("");
}

RouteSeries* KernelMetrics::route_series(const std::string& name) {
    auto& slot = routes_[name];
    if (!slot)
        slot.reset(new RouteSeries{name, std::vector<RouteCells>(shards_.size())});
    return slot.get();
}

PoolSeries* KernelMetrics::pool_series(const std::string& name) {
    auto& slot = pools_[name];
    if (!slot)
        slot.reset(new PoolSeries{name, std::vector<PoolCells>(shards_.size())});
    return slot.get();
}

GenerationMetrics KernelMetrics::bind(const std::vector<std::string>& route_names,
                                      const std::vector<std::string>& pool_names) {
    std::lock_guard lock(series_mutex_);
    GenerationMetrics g;
    for (const auto& name : route_names)
        g.routes_.push_back(route_series(name));
    for (const auto& name : pool_names)
        g.pools_.push_back(pool_series(name));
    g.unrouted_ = unrouted_;
    return g;
}

void KernelMetrics::render_connections(std::string& out) const {
    auto it = std::back_inserter(out);
    uint64_t opened = 0, closed = 0, full = 0, resumed = 0, failed = 0;
    // Closes are read before opens: every close read has its open read too, so the open-gauge
    // never goes negative while connections come and go during the scrape.
    for (const auto& s : shards_)
        closed += s->closed_.get();
    for (const auto& s : shards_) {
        opened += s->opened_.get();
        full += s->tls_full_.get();
        resumed += s->tls_resumed_.get();
        failed += s->tls_failed_.get();
    }
    header(out, "connections_open", "gauge", "Client connections open now.");
    fmt::format_to(it, "gatehouse_connections_open {}\n", opened - closed);
    header(out, "connections_total", "counter", "Client connections accepted.");
    fmt::format_to(it, "gatehouse_connections_total {}\n", opened);
    header(out, "tls_handshakes_total", "counter",
           "Completed TLS handshakes with clients, by session resumption.");
    fmt::format_to(it, "gatehouse_tls_handshakes_total{{resumed=\"false\"}} {}\n", full);
    fmt::format_to(it, "gatehouse_tls_handshakes_total{{resumed=\"true\"}} {}\n", resumed);
    header(out, "tls_handshake_failures_total", "counter", "Failed TLS handshakes with clients.");
    fmt::format_to(it, "gatehouse_tls_handshake_failures_total {}\n", failed);

    header(out, "requests_rejected_total", "counter",
           "Requests refused by framing checks or limits, by status code.");
    for (unsigned code = 100; code < 600; ++code) {
        uint64_t n = 0;
        for (const auto& s : shards_)
            n += s->rejected_[code - 100].get();
        if (n)
            fmt::format_to(it, "gatehouse_requests_rejected_total{{code=\"{}\"}} {}\n", code, n);
    }
}

void KernelMetrics::render_requests(std::string& out) const {
    auto it = std::back_inserter(out);
    header(out, "requests_total", "counter",
           "Responses sent to clients, by route and status class.");
    for (const auto& [name, series] : routes_) {
        std::array<uint64_t, 5> classes{};
        for (const RouteCells& w : series->workers)
            for (size_t i = 0; i < classes.size(); ++i)
                classes[i] += w.code_classes[i].get();
        std::string route = escape_label(name);
        for (size_t i = 0; i < classes.size(); ++i)
            fmt::format_to(it, "gatehouse_requests_total{{route=\"{}\",code_class=\"{}\"}} {}\n",
                           route, kCodeClasses[i], classes[i]);
    }
    header(out, "request_duration_seconds", "histogram",
           "Time from a request's first byte to its response's last, by route.");
    for (const auto& [name, series] : routes_)
        render_histogram(out, "request_duration_seconds",
                         fmt::format("route=\"{}\"", escape_label(name)),
                         sum_histogram(series->workers, &RouteCells::duration));
}

void KernelMetrics::render_upstreams(
    std::string& out, const std::vector<const upstream::UpstreamPool*>& pools) const {
    auto it = std::back_inserter(out);
    header(out, "upstream_response_duration_seconds", "histogram",
           "Time from a request sent upstream to the first byte of the response, by upstream.");
    for (const auto& [name, series] : pools_)
        render_histogram(out, "upstream_response_duration_seconds",
                         fmt::format("upstream=\"{}\"", escape_label(name)),
                         sum_histogram(series->workers, &PoolCells::first_byte));
    header(out, "upstream_connections_total", "counter",
           "Upstream connections used for attempts: pooled (reused) or new.");
    for (const auto& [name, series] : pools_) {
        uint64_t reused = 0, fresh = 0;
        for (const PoolCells& w : series->workers) {
            reused += w.connections_reused.get();
            fresh += w.connections_new.get();
        }
        std::string upstream = escape_label(name);
        fmt::format_to(
            it, "gatehouse_upstream_connections_total{{upstream=\"{}\",reused=\"false\"}} {}\n",
            upstream, fresh);
        fmt::format_to(
            it, "gatehouse_upstream_connections_total{{upstream=\"{}\",reused=\"true\"}} {}\n",
            upstream, reused);
    }

    int64_t now = upstream::now_ns();
    std::string healthy, inflight;
    for (const upstream::UpstreamPool* pool : pools) {
        std::string upstream = escape_label(pool->name());
        for (size_t i = 0; i < pool->size(); ++i) {
            const upstream::Peer& peer = pool->peer(i);
            std::string labels = fmt::format("upstream=\"{}\",server=\"{}\"", upstream,
                                             escape_label(peer.entry.address));
            fmt::format_to(std::back_inserter(healthy),
                           "gatehouse_upstream_server_healthy{{{}}} {}\n", labels,
                           peer.healthy(now) ? 1 : 0);
            fmt::format_to(std::back_inserter(inflight),
                           "gatehouse_upstream_server_inflight{{{}}} {}\n", labels,
                           peer.inflight.load(std::memory_order_relaxed));
        }
    }
    header(out, "upstream_server_healthy", "gauge",
           "1 if the server is healthy: actively checked healthy and not ejected.");
    out += healthy;
    header(out, "upstream_server_inflight", "gauge", "Requests in flight to the server.");
    out += inflight;
}

std::string KernelMetrics::render(const std::vector<const upstream::UpstreamPool*>& pools) const {
    std::string out;
    out.reserve(16 * 1024);
    render_connections(out);
    std::lock_guard lock(series_mutex_);
    render_requests(out);
    render_upstreams(out, pools);
    return out;
}

} // namespace gatehouse::metrics
