#include "metrics.hpp"

#include <fmt/format.h>

namespace gatehouse::metrics {

namespace {
std::mutex registry_mutex;
std::vector<std::unique_ptr<gh_metric>>& registry() {
    static std::vector<std::unique_ptr<gh_metric>> metrics;
    return metrics;
}

bool valid_name(std::string_view name) {
    if (name.empty() || (name[0] >= '0' && name[0] <= '9'))
        return false;
    for (char c : name)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    return true;
}

} // namespace

gh_metric* register_metric(uint32_t type, std::string_view name, std::string_view help,
                           std::vector<std::string> labels, std::vector<double> buckets,
                           std::string& error) {
    if (type > GH_METRIC_HISTOGRAM || !valid_name(name)) {
        error = fmt::format("invalid metric name '{}' (must match [a-z_][a-z0-9_]*)", name);
        return nullptr;
    }
    for (const auto& l : labels)
        if (!valid_name(l)) {
            error = fmt::format("invalid label name '{}'", l);
            return nullptr;
        }
    for (size_t i = 1; i < buckets.size(); ++i)
        if (!(buckets[i] > buckets[i - 1])) {
            error = "histogram buckets must increase";
            return nullptr;
        }
    std::string full = fmt::format("gatehouse_{}", name);
    std::lock_guard lock(registry_mutex);
    for (auto& m : registry()) {
        if (m->name != full)
            continue;
        // Registering the same metric again (a reload) returns the existing one.
        if (m->type == type && m->label_names == labels && m->buckets == buckets)
            return m.get();
        error = fmt::format("metric '{}' already registered with another shape", full);
        return nullptr;
    }
    auto m = std::make_unique<gh_metric>();
    m->type = type;
    m->name = std::move(full);
    m->help = help;
    m->label_names = std::move(labels);
    m->buckets = std::move(buckets);
    registry().push_back(std::move(m));
    return registry().back().get();
}

void record(gh_metric* m, uint32_t op, const gh_str_t* values, size_t count, double value) {
    if (!m || count != m->label_names.size())
        return;
    std::vector<std::string> key;
    key.reserve(count);
    for (size_t i = 0; i < count; ++i)
        key.emplace_back(values[i].ptr ? values[i].ptr : "", values[i].len);
    std::lock_guard lock(m->mutex);
    auto& s = m->series[key];
    switch (op) {
    case GH_METRIC_ADD:
        if (m->type == GH_METRIC_HISTOGRAM || (m->type == GH_METRIC_COUNTER && value < 0))
            return;
        s.value += value;
        break;
    case GH_METRIC_SET:
        if (m->type == GH_METRIC_GAUGE)
            s.value = value;
        break;
    case GH_METRIC_OBSERVE:
        if (m->type != GH_METRIC_HISTOGRAM)
            return;
        if (s.counts.empty())
            s.counts.assign(m->buckets.size() + 1, 0);
        for (size_t i = 0; i < m->buckets.size(); ++i)
            if (value <= m->buckets[i])
                ++s.counts[i];
        ++s.counts.back();
        s.sum += value;
        ++s.count;
        break;
    default:
        break;
    }
}

std::string render_prometheus() {
    std::string out;
    std::lock_guard lock(registry_mutex);
    for (auto& m : registry()) {
        static constexpr const char* types[] = {"counter", "gauge", "histogram"};
        fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", m->name,
                       escape_label(m->help), m->name, types[m->type]);
        std::lock_guard series_lock(m->mutex);
        for (const auto& [values, s] : m->series) {
            auto labels = [&](std::string_view extra) {
                std::string l;
                for (size_t i = 0; i < values.size(); ++i)
                    l += fmt::format("{}{}=\"{}\"", l.empty() ? "" : ",", m->label_names[i],
                                     escape_label(values[i]));
                if (!extra.empty())
                    l += fmt::format("{}{}", l.empty() ? "" : ",", extra);
                return l.empty() ? std::string() : "{" + l + "}";
            };
            if (m->type != GH_METRIC_HISTOGRAM) {
                fmt::format_to(std::back_inserter(out), "{}{} {}\n", m->name, labels(""), s.value);
                continue;
            }
            for (size_t i = 0; i < m->buckets.size(); ++i)
                fmt::format_to(std::back_inserter(out), "{}_bucket{} {}\n", m->name,
                               labels(fmt::format("le=\"{}\"", m->buckets[i])), s.counts[i]);
            fmt::format_to(std::back_inserter(out), "{}_bucket{} {}\n{}_sum{} {}\n{}_count{} {}\n",
                           m->name, labels("le=\"+Inf\""), s.counts.back(), m->name, labels(""),
                           s.sum, m->name, labels(""), s.count);
        }
    }
    return out;
}

std::string escape_label(std::string_view value) {
    // Prometheus text format: backslash, double quote and line feed are escaped.
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        if (c == '\\' || c == '"')
            out.push_back('\\');
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out.push_back(c);
    }
    return out;
}

} // namespace gatehouse::metrics
