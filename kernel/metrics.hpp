// Process-wide metrics: the kernel's and those modules register through the SDK. Rendered in
// the Prometheus text format (the admin endpoint serves it).
#pragma once

#include <gatehouse/gatehouse.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

struct gh_metric {
    uint32_t type;
    std::string name; // with the "gatehouse_" prefix
    std::string help;
    std::vector<std::string> label_names;
    std::vector<double> buckets;
    struct Series {
        double value = 0;              // counter / gauge
        std::vector<uint64_t> counts;  // histogram, per bucket (+Inf last)
        double sum = 0;
        uint64_t count = 0;
    };
    std::mutex mutex; // guards series; recording is short
    std::map<std::vector<std::string>, Series> series;
};

namespace gatehouse::metrics {

// Returns nullptr (and why) on a bad name or a conflicting re-registration.
gh_metric* register_metric(uint32_t type, std::string_view name, std::string_view help,
                           std::vector<std::string> labels, std::vector<double> buckets,
                           std::string& error);
void record(gh_metric* metric, uint32_t op, const gh_str_t* values, size_t count, double value);
std::string render_prometheus();
// A label value (or HELP text) escaped for the Prometheus text format.
std::string escape_label(std::string_view value);

} // namespace gatehouse::metrics
