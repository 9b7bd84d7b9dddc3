#include "config/health_config.hpp"

#include "config/table_reader.hpp"

#include <fmt/format.h>

#include <charconv>
#include <string_view>

namespace gatehouse::config {

namespace {

bool parse_status(std::string_view text, unsigned& out) {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && end == text.data() + text.size() && out >= 100 && out <= 599;
}

// "200" or "200-399"; the outputs change only on success.
bool parse_expect(std::string_view text, unsigned& min, unsigned& max) {
    size_t dash = text.find('-');
    unsigned low = 0, high = 0;
    bool ok;
    if (dash == std::string_view::npos) {
        ok = parse_status(text, low);
        high = low;
    } else {
        ok = parse_status(text.substr(0, dash), low) &&
             parse_status(text.substr(dash + 1), high) && low <= high;
    }
    if (ok) {
        min = low;
        max = high;
    }
    return ok;
}

// The value goes into a request line or header as-is: no whitespace or control characters,
// which would split or end the line.
bool is_token_text(std::string_view text) {
    for (unsigned char c : text)
        if (c <= 0x20 || c == 0x7f)
            return false;
    return true;
}

void read_duration(TableReader& t, std::string_view key, std::chrono::milliseconds& field,
                   bool zero_ok) {
    field = std::chrono::milliseconds(t.duration_ms(key, static_cast<uint64_t>(field.count())));
    if (!zero_ok && field.count() == 0)
        t.error(key, "must be greater than 0");
}

} // namespace

void read_health_config(TableReader& t, HealthCheckConfig& out) {
    out.path = t.string("path", out.path);
    if (out.path.empty() || out.path[0] != '/' || !is_token_text(out.path))
        t.error("path", "must start with '/' and contain no spaces or control characters");
    out.host = t.string("host", out.host);
    if (t.has("host") && (out.host.empty() || !is_token_text(out.host)))
        t.error("host", "must be a non-empty host name without spaces or control characters");
    read_duration(t, "interval", out.interval, false);
    read_duration(t, "jitter", out.jitter, true);
    read_duration(t, "timeout", out.timeout, false);
    if (auto expect = t.string("expect");
        expect && !parse_expect(*expect, out.expect_min, out.expect_max))
        t.error("expect", fmt::format("'{}' is not a status or a range of statuses such as "
                                      "\"200\" or \"200-399\" (100..599)",
                                      *expect));
    out.rise = static_cast<unsigned>(t.integer("rise", out.rise, 1, 1000));
    out.fall = static_cast<unsigned>(t.integer("fall", out.fall, 1, 1000));
    t.finish();
}

} // namespace gatehouse::config
