// A worker thread: its own io_context, its listeners' acceptors, and its idle upstream
// connections. Everything here is touched only by this thread.
#pragma once

#include "net/buffer.hpp"
#include "net/transport.hpp"
#include "net/watchdog.hpp"
#include "upstream/pool.hpp"

#include <gatehouse/gatehouse.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <unordered_set>
#include <thread>
#include <vector>

namespace gatehouse {
class Generation;
}

namespace gatehouse::net {

class ClientConnection;

struct UpstreamConnection {
    explicit UpstreamConnection(boost::asio::io_context& io) : transport(io) {}
    Transport transport;
    Buffer buffer;
    upstream::Peer* peer = nullptr;
    const upstream::UpstreamPool* pool = nullptr;
    CoarseClock::time_point idle_since; // idle timeouts are seconds: the tick clock will do
    uint64_t requests = 0; // served on this connection; > 0 means it was reused
};

// Idle keep-alive connections to upstream servers, per pool and peer, newest last (reuse takes
// the newest, so the oldest are the ones demand no longer reaches).
//
// With `keepalive` following demand (the default) a server keeps every connection that comes
// back, up to keepalive_auto_cap: as many as were in use at once. Demand falling shows as idle
// connections nobody took: every trim_period, half of the fewest that sat idle all period long
// are closed (HAProxy's pool purge works alike), and keepalive_timeout closes the rest.
class ConnectionCache {
public:
    std::unique_ptr<UpstreamConnection> take(const upstream::UpstreamPool& pool, uint32_t peer);
    void put(std::unique_ptr<UpstreamConnection> connection);
    // Closes connections idle for longer than their pool's keepalive_timeout, and those demand
    // left idle (above).
    void sweep(CoarseClock::time_point now);
    void clear() { idle_.clear(); }
    void drop(const upstream::UpstreamPool* pool);

    static constexpr std::chrono::seconds trim_period{5};

private:
    struct Key {
        const upstream::UpstreamPool* pool;
        uint32_t peer;
        bool operator==(const Key&) const = default;
    };
    struct Idle {
        Key key;
        std::vector<std::unique_ptr<UpstreamConnection>> list;
        size_t fewest = 0; // fewest idle this trim period: connections nobody needed
    };
    void trim();
    std::vector<Idle> idle_;
    CoarseClock::time_point next_trim_{};
};

class Worker {
public:
    // Only this worker's thread starts, completes or cancels I/O on its sockets (other threads
    // post() to it), so the reactor's per-socket locking is switched off; posting and timer
    // registration stay locked.
    explicit Worker(unsigned id)
        : id_(id), io_(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO), sweep_timer_(io_) {
        measure_wall_offset();
    }

    unsigned id() const { return id_; }
    boost::asio::io_context& io() { return io_; }
    ConnectionCache& connections() { return connections_; }
    gh_worker_t* handle() { return reinterpret_cast<gh_worker_t*>(this); }
    static Worker* from(gh_worker_t* w) { return reinterpret_cast<Worker*>(w); }
    static Worker* current();

    void start(std::function<void()> on_thread_start, std::function<void()> on_thread_exit);
    void stop();
    void join();
    size_t open_connections() const { return open_connections_.load(std::memory_order_relaxed); }
    void connection_opened(ClientConnection* c) {
        connections_open_.insert(c);
        open_connections_.store(connections_open_.size(), std::memory_order_relaxed);
    }
    void connection_closed(ClientConnection* c) {
        connections_open_.erase(c);
        open_connections_.store(connections_open_.size(), std::memory_order_relaxed);
    }
    // On this worker's thread: close every connection waiting for a next request.
    void close_idle_connections();
    // On this worker's thread (each sweep): end the requests waiting on an upstream for more
    // than a second whose client has gone.
    void close_gone_clients();
    // On this worker's thread: close every connection (the drain timeout).
    void close_all_connections();
    // On this worker's thread: forget pooled connections of pools that are going away.
    void drop_pooled(const upstream::UpstreamPool* pool);
    // The wall-clock time of a steady-clock instant, from an offset between the two clocks that
    // the worker measures again every sweep (250 ms): a request's start time for the access
    // log without a second clock read per request. A step of the system clock shows within
    // one sweep.
    std::chrono::system_clock::time_point wall_time(std::chrono::steady_clock::time_point t) {
        return std::chrono::system_clock::time_point(
            std::chrono::duration_cast<std::chrono::system_clock::duration>(t.time_since_epoch() +
                                                                            wall_offset_));
    }

private:
    void schedule_sweep();
    void measure_wall_offset();
    std::vector<std::shared_ptr<ClientConnection>> alive_connections() const;

    unsigned id_;
    std::chrono::nanoseconds wall_offset_{0}; // system_clock - steady_clock
    // Declared before io_: destroying io_ destroys pending handlers, and with them connections
    // that unregister themselves here.
    std::unordered_set<ClientConnection*> connections_open_;
    std::atomic<size_t> open_connections_{0};
    boost::asio::io_context io_;
    boost::asio::steady_timer sweep_timer_;
    ConnectionCache connections_;
    std::thread thread_;
};

} // namespace gatehouse::net
