// compress: the [filter.compress] table (and a route's filter_config.compress) -> Config.
// Defaults live in Config; every key is declared once in config.cpp (keys()).
#pragma once

#include "compress.hpp"
#include "encoder.hpp"

#include <gatehouse/sdk.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace compress_filter {

// Per-stream encoder memory limits the configuration must stay within (see README.md).
inline constexpr size_t kGzipMemoryLimit = 256 * 1024;

enum class FlushPolicy {
    auto_, // flush after every chunk shorter than a full kernel read; SSE always
    always // flush after every upstream chunk
};

struct Config {
    bool enabled = true;
    bool gzip = true;
    bool brotli = true;
    GzipParams gzip_params;     // level 6, windowBits 15, memLevel 7 (198 KiB per stream)
    BrotliParams brotli_params; // quality 5, lgwin 16
    std::vector<Coding> prefer = {Coding::br, Coding::gzip};
    uint64_t min_length = 256;
    std::vector<std::string> types = {"text/*",
                                      "application/json",
                                      "application/javascript",
                                      "application/xml",
                                      "application/xhtml+xml",
                                      "application/rss+xml",
                                      "application/atom+xml",
                                      "application/manifest+json",
                                      "application/ld+json",
                                      "application/wasm",
                                      "image/svg+xml",
                                      "font/ttf",
                                      "font/otf"};
    FlushPolicy flush = FlushPolicy::auto_;
    int max_cpu_percent = 100; // 100: the guard is off
    uint64_t cpu_window_ms = 1000;

    // Derived: the codings switched on, in server preference order.
    std::vector<Coding> enabled_codings;
};

// Every key: name, member, type, range, scope, example and docs (README.md's table is printed
// from it; a unit test keeps the two equal).
const gh::Keys<Config> &keys();

// Parse `table` over `base` (Config{} for the module table, the module config for a route).
// Main thread, config hooks only.
std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base);

} // namespace compress_filter
