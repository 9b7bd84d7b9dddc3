#include "net/worker.hpp"

#include "log.hpp"
#include "net/client_connection.hpp"

namespace gatehouse::net {

namespace {
thread_local Worker* this_worker = nullptr;
}

Worker* Worker::current() { return this_worker; }

std::unique_ptr<UpstreamConnection> ConnectionCache::take(const upstream::UpstreamPool& pool,
                                                          uint32_t peer) {
    for (auto& idle : idle_) {
        if (idle.key.pool != &pool || idle.key.peer != peer)
            continue;
        if (idle.list.empty()) {
            idle.fewest = 0;
            return nullptr;
        }
        auto c = std::move(idle.list.back());
        idle.list.pop_back();
        idle.fewest = std::min(idle.fewest, idle.list.size());
        return c;
    }
    return nullptr;
}

void ConnectionCache::put(std::unique_ptr<UpstreamConnection> connection) {
    Key key{connection->pool, connection->peer->index};
    const auto& config = connection->pool->config();
    uint32_t limit = config.keepalive.value_or(
        connection->peer->entry.max_inflight
            ? std::min(config::keepalive_auto_cap, connection->peer->entry.max_inflight)
            : config::keepalive_auto_cap);
    if (limit == 0)
        return;
    connection->idle_since = CoarseClock::now();
    for (auto& idle : idle_) {
        if (!(idle.key == key))
            continue;
        if (idle.list.size() >= limit)
            idle.list.erase(idle.list.begin()); // drop the oldest
        idle.list.push_back(std::move(connection));
        return;
    }
    idle_.push_back({key, {}, 0});
    idle_.back().list.push_back(std::move(connection));
}

void ConnectionCache::sweep(CoarseClock::time_point now) {
    for (auto& idle : idle_) {
        auto timeout = idle.key.pool->config().keepalive_timeout;
        std::erase_if(idle.list, [&](const std::unique_ptr<UpstreamConnection>& c) {
            return now - c->idle_since >= timeout;
        });
        idle.fewest = std::min(idle.fewest, idle.list.size());
        // A connection that stays idle gives its buffer back; a busy one keeps it, so the
        // request path allocates nothing.
        for (auto& c : idle.list)
            if (now - c->idle_since >= std::chrono::seconds(1))
                c->buffer.release();
    }
    if (now >= next_trim_) {
        trim();
        next_trim_ = now + trim_period;
    }
}

void ConnectionCache::trim() {
    for (auto& idle : idle_) {
        // A fixed `keepalive` is the operator's number: kept as configured.
        if (!idle.key.pool->config().keepalive) {
            size_t spare = std::min(idle.fewest, idle.list.size()) / 2;
            idle.list.erase(idle.list.begin(), idle.list.begin() + static_cast<ptrdiff_t>(spare));
        }
        idle.fewest = idle.list.size();
    }
}

void ConnectionCache::drop(const upstream::UpstreamPool* pool) {
    std::erase_if(idle_, [pool](const Idle& idle) { return idle.key.pool == pool; });
}

std::vector<std::shared_ptr<ClientConnection>> Worker::alive_connections() const {
    // Closing may destroy a connection (and erase it from the set): callers iterate a copy.
    std::vector<std::shared_ptr<ClientConnection>> alive;
    for (ClientConnection* c : connections_open_)
        if (auto shared = c->weak_from_this().lock())
            alive.push_back(std::move(shared));
    return alive;
}

void Worker::close_idle_connections() {
    for (auto& c : alive_connections())
        c->close_if_idle();
}

void Worker::close_gone_clients() {
    constexpr std::chrono::milliseconds patience{1000};
    const auto now = std::chrono::steady_clock::now();
    std::vector<std::shared_ptr<ClientConnection>> waiting;
    for (ClientConnection* c : connections_open_)
        if (c->awaits_upstream_since(now, patience))
            if (auto shared = c->weak_from_this().lock())
                waiting.push_back(std::move(shared));
    for (auto& c : waiting)
        c->close_if_client_gone();
}

void Worker::close_all_connections() {
    for (auto& c : alive_connections())
        c->close_now();
}

void Worker::drop_pooled(const upstream::UpstreamPool* pool) { connections_.drop(pool); }

void Worker::measure_wall_offset() {
    auto steady = std::chrono::steady_clock::now().time_since_epoch();
    auto wall = std::chrono::system_clock::now().time_since_epoch();
    wall_offset_ = std::chrono::duration_cast<std::chrono::nanoseconds>(wall) -
                   std::chrono::duration_cast<std::chrono::nanoseconds>(steady);
}

void Worker::schedule_sweep() {
    sweep_timer_.expires_after(std::chrono::milliseconds(250));
    sweep_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec)
            return;
        connections_.sweep(CoarseClock::now());
        close_gone_clients();
        measure_wall_offset();
        schedule_sweep();
    });
}

void Worker::start(std::function<void()> on_thread_start, std::function<void()> on_thread_exit) {
    thread_ = std::thread([this, on_thread_start, on_thread_exit] {
        this_worker = this;
        if (on_thread_start)
            on_thread_start();
        schedule_sweep();
        try {
            io_.run();
        } catch (const std::exception& e) {
            log::error("worker {}: unexpected exception: {}", id_, e.what());
        }
        connections_.clear();
        if (on_thread_exit)
            on_thread_exit();
        this_worker = nullptr;
    });
}

void Worker::stop() { io_.stop(); }

void Worker::join() {
    if (thread_.joinable())
        thread_.join();
}

} // namespace gatehouse::net
