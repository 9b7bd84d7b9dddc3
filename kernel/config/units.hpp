// Durations ("250ms", "5s", "2m", "1h") and sizes ("512", "16k", "10m", "1g").
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace gatehouse::config {

std::optional<uint64_t> parse_duration_ms(std::string_view text);
std::optional<uint64_t> parse_bytes(std::string_view text);

} // namespace gatehouse::config
