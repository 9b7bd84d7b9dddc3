// compress: the [filter.compress] table (and a route's filter_config.compress) -> Config.
#pragma once

#include <gatehouse/sdk.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace compress_filter {

struct Config {
    bool gzip = true;
    bool brotli = true;
    int gzip_level = 6;   // 1-9
    int brotli_level = 5; // 0-11
    uint64_t min_length = 256;
    std::vector<std::string> types = {"text/*",          "application/json",
                                      "application/javascript", "application/xml",
                                      "image/svg+xml",   "application/wasm"};
};

// Parse `table` over `base` (Config{} for the module table, the module config for a route).
// Main thread, config hooks only.
std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base);

} // namespace compress_filter
