/*
 * gatehouse SDK -- the header-only C++17 wrapper over the C ABI v1. See sdk/README.md.
 *
 * Compiled into the module: it adds no kernel symbol and needs no library (no Boost). It gives
 * std::string_view accessors (gh::sv / gh::str), gh::Host and gh::host_has capability checks,
 * logging, metric classes, gh::ConfigNode, gh::Stream, gh::Pool, async helpers (timers, offload,
 * post, callouts) and the CRTP module bases gh::Filter / gh::Balancer / gh::FilterBalancer with
 * the GH_MODULE registration macro. Every C hook the wrapper installs is a noexcept trampoline.
 *
 * Ownership and threads follow the C headers; each item below says its own.
 */
#ifndef GATEHOUSE_SDK_HPP
#define GATEHOUSE_SDK_HPP

#include "gatehouse/gatehouse.h"
#include "gatehouse/sdk/async.hpp"
#include "gatehouse/sdk/config.hpp"
#include "gatehouse/sdk/http.hpp"
#include "gatehouse/sdk/http/auth.hpp"
#include "gatehouse/sdk/http/coding.hpp"
#include "gatehouse/sdk/http/cookie.hpp"
#include "gatehouse/sdk/http/query.hpp"
#include "gatehouse/sdk/http/structured.hpp"
#include "gatehouse/sdk/core.hpp"
#include "gatehouse/sdk/keys.hpp"
#include "gatehouse/sdk/metrics.hpp"
#include "gatehouse/sdk/module.hpp"
#include "gatehouse/sdk/pool.hpp"
#include "gatehouse/sdk/stream.hpp"

#endif // GATEHOUSE_SDK_HPP
