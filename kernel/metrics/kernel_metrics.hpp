// The kernel's own request-path metrics: request counts and durations per route, upstream
// first-byte times and connection reuse per pool, client connections, TLS handshakes and
// rejected requests. Rendered in the Prometheus text format next to the modules' metrics
// (metrics.hpp), both served by the admin endpoint's /metrics.
//
// Recording takes no lock and allocates nothing: every worker writes only its own cells
// (single-writer relaxed atomics, so a scrape from the admin thread reads them safely) and a
// scrape sums the workers. Per-route and per-pool series are kept by name for the life of the
// process, so a reload that keeps a route keeps its counters.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace gatehouse::upstream {
class UpstreamPool;
}

namespace gatehouse::metrics {

// request_done() for a request that matched no route (no-route 404s, rejects before routing).
inline constexpr uint32_t kNoRoute = UINT32_MAX;

// Upper bounds of the duration histograms, in seconds (microseconds for recording).
inline constexpr std::array<uint64_t, 12> kBucketBoundsUs = {
    1'000,   5'000,   10'000,    25'000,    50'000,    100'000,
    250'000, 500'000, 1'000'000, 2'500'000, 5'000'000, 10'000'000};

// A counter written by one thread only: a plain load + store instead of a locked
// read-modify-write (no `lock xadd` on the request path); readers on other threads still see
// whole values because the cell is atomic.
class Cell {
public:
    void add(uint64_t n = 1) {
        v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    uint64_t get() const { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<uint64_t> v_{0};
};

// Bucket counts are not cumulative (one increment per observation) and include the +Inf
// bucket, so the total is their sum: a scrape can never see a count below a bucket.
struct HistogramCells {
    std::array<Cell, kBucketBoundsUs.size() + 1> buckets;
    Cell sum_us;
    void observe(uint64_t us);
};

// One worker's cells of one series, on their own cache lines so workers do not contend.
struct alignas(64) RouteCells {
    std::array<Cell, 5> code_classes; // 1xx .. 5xx
    HistogramCells duration;
};
struct alignas(64) PoolCells {
    HistogramCells first_byte;
    Cell connections_new;
    Cell connections_reused;
};

struct RouteSeries {
    std::string name;
    std::vector<RouteCells> workers;
};
struct PoolSeries {
    std::string name;
    std::vector<PoolCells> workers;
};

// Counters that do not depend on the config generation. Each shard is written by its own
// worker thread only (Cell is single-writer); any thread may render.
class alignas(64) WorkerShard {
public:
    void connection_opened() { opened_.add(); }
    void connection_closed() { closed_.add(); }
    void tls_handshake(bool resumed) { (resumed ? tls_resumed_ : tls_full_).add(); }
    void tls_handshake_failed() { tls_failed_.add(); }
    // A request refused by framing checks or limits (400, 408, 413, 414, 417, 431, ...).
    void rejected(unsigned status);

private:
    friend class KernelMetrics;
    Cell opened_, closed_;
    Cell tls_full_, tls_resumed_, tls_failed_;
    std::array<Cell, 500> rejected_{}; // by status - 100
};

// One config generation's view: its route and pool indexes mapped to the series of those
// names. Built when the generation is built; the KernelMetrics must outlive it.
class GenerationMetrics {
public:
    GenerationMetrics() = default;

    // Every response sent on a route (route_index = the generation's route order, or kNoRoute),
    // with the time from the request's first byte to the response's last. `status` outside
    // 100..599 (no response was sent) is not counted. Call on `worker`'s thread only, as for
    // the two below.
    void request_done(unsigned worker, uint32_t route_index, unsigned status,
                      uint64_t duration_us) const;
    // An upstream attempt that got a response head: request sent -> first response byte.
    void upstream_attempt(unsigned worker, uint32_t pool_index, uint64_t first_byte_us) const;
    // An upstream connection taken for an attempt: a pooled one (reused) or a new one.
    void upstream_connection(unsigned worker, uint32_t pool_index, bool reused) const;

private:
    friend class KernelMetrics;
    std::vector<RouteSeries*> routes_;
    std::vector<PoolSeries*> pools_;
    RouteSeries* unrouted_ = nullptr;
};

class KernelMetrics {
public:
    explicit KernelMetrics(unsigned workers);
    KernelMetrics(const KernelMetrics&) = delete;
    KernelMetrics& operator=(const KernelMetrics&) = delete;

    unsigned workers() const { return static_cast<unsigned>(shards_.size()); }
    WorkerShard& shard(unsigned worker) { return *shards_[worker]; }

    // At generation build, never per request (takes a lock, allocates): the series for these
    // names, created on first use and kept after, so counters continue across reloads.
    GenerationMetrics bind(const std::vector<std::string>& route_names,
                           const std::vector<std::string>& pool_names);

    // The kernel's metrics in Prometheus text format, with server health and in-flight read
    // from `pools` (the current generation's) at this moment. Safe from any thread.
    std::string render(const std::vector<const upstream::UpstreamPool*>& pools) const;

private:
    RouteSeries* route_series(const std::string& name);
    PoolSeries* pool_series(const std::string& name);
    void render_connections(std::string& out) const;
    void render_requests(std::string& out) const;
    void render_upstreams(std::string& out,
                          const std::vector<const upstream::UpstreamPool*>& pools) const;

    std::vector<std::unique_ptr<WorkerShard>> shards_;
    mutable std::mutex series_mutex_; // guards the maps (bind/render), never the cells
    std::map<std::string, std::unique_ptr<RouteSeries>> routes_;
    std::map<std::string, std::unique_ptr<PoolSeries>> pools_;
    RouteSeries* unrouted_;
};

} // namespace gatehouse::metrics
