#include "config/diagnostics.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace gatehouse::config {

std::string Diagnostic::to_string() const {
    if (key_path.empty())
        return fmt::format("{}:{}: {}", file, line, message);
    return fmt::format("{}:{}: [{}] {}", file, line, key_path, message);
}

void Diagnostics::error(const toml::source_region& where, std::string_view key_path,
                        std::string message) {
    error(static_cast<uint32_t>(where.begin.line), key_path, std::move(message));
}

void Diagnostics::error(uint32_t line, std::string_view key_path, std::string message) {
    errors_.push_back({file_, line, std::string(key_path), std::move(message)});
}

void Diagnostics::warn(const toml::source_region& where, std::string_view key_path,
                       std::string message) {
    warnings_.push_back({file_, static_cast<uint32_t>(where.begin.line), std::string(key_path),
                         "warning: " + std::move(message)});
}

void warn_bare_duration(Diagnostics& diag, const toml::node& node, std::string_view key_path) {
    auto value = node.value_exact<int64_t>();
    if (!value || *value <= 0)
        return;
    diag.warn(node.source(), key_path,
              fmt::format("{0} has no unit, so it means {0} milliseconds; write \"{0}ms\" to say "
                          "so, or \"{0}s\" for seconds", *value));
}

namespace {
// Optimal string alignment distance: insertions, deletions, substitutions and adjacent
// transpositions ("nmae" -> "name") each cost 1.
size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
    for (size_t i = 0; i <= a.size(); ++i)
        d[i][0] = i;
    for (size_t j = 0; j <= b.size(); ++j)
        d[0][j] = j;
    for (size_t i = 1; i <= a.size(); ++i)
        for (size_t j = 1; j <= b.size(); ++j) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    return d[a.size()][b.size()];
}
} // namespace

std::string closest_match(std::string_view key, const std::vector<std::string>& candidates) {
    std::string best;
    size_t best_distance = SIZE_MAX;
    for (const auto& candidate : candidates) {
        size_t d = edit_distance(key, candidate);
        if (d < best_distance) {
            best_distance = d;
            best = candidate;
        }
    }
    // A typo is a small fraction of the word: allow 1 edit for short keys, up to a third for long.
    size_t allowed = std::max<size_t>(1, std::max(key.size(), best.size()) / 3);
    return best_distance <= allowed ? best : std::string();
}

} // namespace gatehouse::config
