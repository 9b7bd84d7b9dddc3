#include "config/units.hpp"

#include <charconv>

namespace gatehouse::config {

namespace {
// Splits "123unit" into the number and the unit; no sign, no spaces, no fraction.
std::optional<std::pair<uint64_t, std::string_view>> split_number(std::string_view text) {
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end == text.data())
        return std::nullopt;
    return std::pair{value, text.substr(static_cast<size_t>(end - text.data()))};
}

std::optional<uint64_t> scale(uint64_t value, uint64_t factor) {
    if (factor != 0 && value > UINT64_MAX / factor)
        return std::nullopt;
    return value * factor;
}
} // namespace

std::optional<uint64_t> parse_duration_ms(std::string_view text) {
    auto parts = split_number(text);
    if (!parts)
        return std::nullopt;
    auto [value, unit] = *parts;
    if (unit == "ms")
        return value;
    if (unit == "s")
        return scale(value, 1000);
    if (unit == "m")
        return scale(value, 60'000);
    if (unit == "h")
        return scale(value, 3'600'000);
    if (unit == "d")
        return scale(value, 86'400'000);
    return std::nullopt;
}

std::optional<uint64_t> parse_bytes(std::string_view text) {
    auto parts = split_number(text);
    if (!parts)
        return std::nullopt;
    auto [value, unit] = *parts;
    if (unit.empty() || unit == "b")
        return value;
    if (unit == "k" || unit == "K")
        return scale(value, 1024);
    if (unit == "m" || unit == "M")
        return scale(value, 1024 * 1024);
    if (unit == "g" || unit == "G")
        return scale(value, 1024ull * 1024 * 1024);
    return std::nullopt;
}

} // namespace gatehouse::config
