/*
 * gatehouse SDK, test support -- a fake kernel for unit tests of a module, without the kernel.
 *
 *   #include <gatehouse/sdk/testing.hpp>   // in the test only; not part of <gatehouse/sdk.hpp>
 *
 *   gh::testing::FakeHost host;                        // installs a complete gh_host_api_v1
 *   gh::testing::Loaded mod(gatehouse_module_v1);      // the entry point GH_MODULE defined; load
 *   auto config = mod.parse(gh::testing::Value::table({{"level", 5}, {"mode", "fast"}}));
 *   ASSERT_TRUE(config.ok()) << host.config_errors_text();
 *   gh::testing::FakeStream s;                          // a request: facts and headers
 *   s.set_fact(GH_FACT_PATH, "/x");
 *   s.add_header(GH_HEADERS_REQUEST, "accept-encoding", "br");
 *   EXPECT_EQ(mod.phase(s, GH_PHASE_ACCESS, config), GH_CONTINUE);
 *   EXPECT_EQ(s.header(GH_HEADERS_REQUEST, "x-added"), "1");
 *
 * What the fake does: config nodes from a Value tree (typed getters with the kernel's type rules,
 * "5s"/"64k" units, unknown-key errors after each config hook like the kernel's), errors and logs
 * recorded as text, metrics recorded by name and labels, streams with facts, header blocks,
 * local replies, contexts, resume, body subscriptions/writes/held bodies, access-log fields;
 * timers, posts, offloads and callouts queued until the test runs them (run_queued(),
 * complete_callout()), fd watches recorded until the test fires them (fire_fd()), pools for
 * balancers (FakePool, FakeSelect). It checks
 * arguments the way the kernel documents (NULL, bad names) but not phases or threads: test those
 * through the real binary.
 *
 * Header-only, C++17; one FakeHost at a time per process (the C table has no state pointer).
 * Thread: a test's thread only.
 */
#ifndef GATEHOUSE_SDK_TESTING_HPP
#define GATEHOUSE_SDK_TESTING_HPP

#include "gatehouse/sdk/testing/fakes.hpp"  // Value, FakeStream, FakePool, FakeSelect
#include "gatehouse/sdk/testing/host.hpp"   // FakeHost
#include "gatehouse/sdk/testing/module.hpp" // Loaded, AtLevel, key_table_mismatch

#endif // GATEHOUSE_SDK_TESTING_HPP
