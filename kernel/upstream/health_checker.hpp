// Active health checks. One checker per process (its own thread and io_context, not one per
// worker) sends `GET health.path` to every server of the pools that have an
// `[upstream.NAME.health]` table, and flips Peer::active_healthy after `fall` failed or `rise`
// passed checks in a row. Workers only read that flag, in UpstreamPool::select.
#pragma once

#include "config/health_config.hpp"

#include <boost/asio/io_context.hpp>

#include <memory>
#include <random>
#include <thread>
#include <vector>

namespace gatehouse::tls {
class ClientContext;
}

namespace gatehouse::upstream {

class UpstreamPool;
struct Peer;

// Counts one check's result on the peer and returns true when it changed the peer's active
// health. Thread: the checker's only (the check counters have a single writer).
bool apply_check_result(Peer& peer, bool passed, const config::HealthCheckConfig& health);

class HealthChecker {
public:
    // Starts checking every server of the pools whose `health.enabled`. The pools must outlive
    // the checker: stop() it before their generation is destroyed. Never null; with nothing to
    // check no thread is started. `tls[i]` is pool i's client TLS context (null: plain HTTP);
    // checks use it like requests do. Thread: main.
    static std::unique_ptr<HealthChecker> start(std::vector<UpstreamPool*> pools,
                                                std::vector<tls::ClientContext*> tls = {});
    // Stops the thread, abandoning checks in flight (the servers keep their last state).
    // Idempotent; also done by the destructor. Thread: main.
    void stop();
    ~HealthChecker();

    HealthChecker(const HealthChecker&) = delete;
    HealthChecker& operator=(const HealthChecker&) = delete;

private:
    class ServerProbe;
    HealthChecker() = default;

    // Declared before io_: pending handlers (destroyed with io_) hold probes that refer to it.
    std::mt19937 rng_{std::random_device{}()};
    boost::asio::io_context io_;
    std::thread thread_;
};

} // namespace gatehouse::upstream
