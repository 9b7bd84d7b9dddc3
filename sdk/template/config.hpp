// example: the [filter.example] table (and a route's filter_config.example) -> Config.
#pragma once

#include <gatehouse/sdk.hpp>

#include <memory>
#include <string>

namespace example {

// Every key, its type and default in one place; README.md's table matches it.
struct Config {
    std::string header = "x-example"; // response header to set
    std::string value = "hello";      // its value
};

// Read the keys present in `table` over `base` (Config{} for [filter.example], the module config
// for a route's table). Errors are recorded on the node; the kernel prints file:line.
// Main thread, config hooks only.
std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base);

} // namespace example
