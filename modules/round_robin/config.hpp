// round_robin: the [balancer.round_robin] table -> Config. The module has no keys.
#pragma once

#include <gatehouse/sdk.hpp>

#include <memory>

namespace round_robin {

// [balancer.round_robin] has no keys; an empty table (or none) is the only valid one.
struct Config {};

// The declared keys: none (README.md says "No keys."; a unit test keeps the two equal).
const gh::Keys<Config> &keys();

// Parse the module table over `base`. Reads no key, so the kernel reports every key present as
// unknown. Main thread, config hooks only.
std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base);

} // namespace round_robin
