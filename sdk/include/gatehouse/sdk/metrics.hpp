/*
 * gatehouse SDK, C++ wrapper -- metrics: Counter, Gauge, Histogram with label values.
 *
 * Register in the module's constructor (the load hook) or in a config/activate hook, on the main
 * thread; record from any thread. The kernel prefixes names with "gatehouse_" and serves them on
 * the admin listener's /metrics. Include <gatehouse/sdk.hpp> rather than this file.
 */
#ifndef GATEHOUSE_SDK_METRICS_HPP
#define GATEHOUSE_SDK_METRICS_HPP

#include "gatehouse/sdk/core.hpp"

#include <initializer_list>
#include <string_view>
#include <vector>

namespace gh {

/* A list of label names or values, in registration order. Ownership: borrowed for the call. */
using Labels = std::initializer_list<std::string_view>;

/* Common part of the metric wrappers: a registered metric handle and its label count.
 * Ownership: the kernel owns the metric (valid until destroy); copies of the wrapper share it.
 * Thread: construct on the main thread; record on any thread. */
class Metric {
  public:
    Metric() = default;
    /* True if registration succeeded (false on a bad name or a conflicting registration). */
    bool valid() const noexcept { return metric_ != nullptr; }
    explicit operator bool() const noexcept { return valid(); }
    /* The C handle, for host calls the wrapper does not cover. */
    gh_metric_t *raw() const noexcept { return metric_; }

  protected:
    Metric(uint32_t type, std::string_view name, std::string_view help, Labels label_names,
           const double *buckets, std::size_t bucket_count) noexcept {
        const gh_host_api_v1 *h = detail::g_host;
        if (h == nullptr || h->metric_register == nullptr)
            return;
        try {
            std::vector<gh_str_t> names;
            names.reserve(label_names.size());
            for (std::string_view n : label_names)
                names.push_back(str(n));
            metric_ = h->metric_register(detail::g_self, type, str(name), str(help), names.data(),
                                         names.size(), buckets, bucket_count);
        } catch (...) {
            detail::log_current_exception("metric_register");
        }
    }

    /* Record `value` with `op` (GH_METRIC_ADD/SET/OBSERVE). A metric that failed to register
     * records nothing. */
    void record(uint32_t op, Labels label_values, double value) const noexcept {
        if (metric_ == nullptr)
            return;
        constexpr std::size_t inline_labels = 8;
        gh_str_t values[inline_labels] = {};
        std::size_t n = 0;
        if (label_values.size() <= inline_labels) {
            for (std::string_view v : label_values)
                values[n++] = str(v);
            detail::g_host->metric_record(metric_, op, values, n, value);
            return;
        }
        try {
            std::vector<gh_str_t> many;
            for (std::string_view v : label_values)
                many.push_back(str(v));
            detail::g_host->metric_record(metric_, op, many.data(), many.size(), value);
        } catch (...) {
            detail::log_current_exception("metric_record");
        }
    }

  private:
    gh_metric_t *metric_ = nullptr;
};

/* A monotonically increasing counter. Ownership and thread: as Metric. */
class Counter : public Metric {
  public:
    Counter() = default;
    /* Register `name` with the label names (fixed from now on). Main thread. */
    Counter(std::string_view name, std::string_view help, Labels label_names = {}) noexcept
        : Metric(GH_METRIC_COUNTER, name, help, label_names, nullptr, 0) {}
    /* Add `value` (>= 0) for the label values, in registration order. Any thread. */
    void add(double value, Labels label_values = {}) const noexcept {
        record(GH_METRIC_ADD, label_values, value);
    }
    /* Add 1. Any thread. */
    void inc(Labels label_values = {}) const noexcept { record(GH_METRIC_ADD, label_values, 1.0); }
};

/* A value that goes up and down. Ownership and thread: as Metric. */
class Gauge : public Metric {
  public:
    Gauge() = default;
    /* Register `name` with the label names. Main thread. */
    Gauge(std::string_view name, std::string_view help, Labels label_names = {}) noexcept
        : Metric(GH_METRIC_GAUGE, name, help, label_names, nullptr, 0) {}
    /* Set to `value`. Any thread. */
    void set(double value, Labels label_values = {}) const noexcept {
        record(GH_METRIC_SET, label_values, value);
    }
    /* Add `delta` (may be negative). Any thread. */
    void add(double delta, Labels label_values = {}) const noexcept {
        record(GH_METRIC_ADD, label_values, delta);
    }
};

/* A distribution over fixed buckets. Ownership and thread: as Metric. */
class Histogram : public Metric {
  public:
    Histogram() = default;
    /* Register `name` with bucket upper bounds (increasing) and label names. The bounds are
     * copied by the kernel. Main thread. */
    Histogram(std::string_view name, std::string_view help, std::initializer_list<double> buckets,
              Labels label_names = {}) noexcept
        : Metric(GH_METRIC_HISTOGRAM, name, help, label_names, buckets.begin(), buckets.size()) {}
    /* Record one observation. Any thread. */
    void observe(double value, Labels label_values = {}) const noexcept {
        record(GH_METRIC_OBSERVE, label_values, value);
    }
};

} // namespace gh

#endif // GATEHOUSE_SDK_METRICS_HPP
