// example: the [filter.example] table (and a route's filter_config.example) -> Config.
#pragma once

#include <gatehouse/sdk.hpp>

#include <algorithm>

#include <memory>
#include <string>

namespace example {

// The defaults; the keys are declared in config.cpp (keys()).
struct Config {
    std::string header = "x-example"; // response header to set
    std::string value = "hello";      // its value
};

// Every key, declared once: README.md's table is printed from it (test/example_test.cpp keeps
// the two equal; GH_UPDATE_README=1 ctest rewrites the README's table).
const gh::Keys<Config> &keys();

// Read the keys present in `table` over `base` (Config{} for [filter.example], the module config
// for a route's table). Errors are recorded on the node; the kernel prints file:line.
// Main thread, config hooks only.
std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base);

} // namespace example
