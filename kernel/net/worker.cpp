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
    for (auto& [key, list] : idle_) {
        if (key.pool != &pool || key.peer != peer || list.empty())
            continue;
        auto c = std::move(list.back());
        list.pop_back();
        return c;
    }
    return nullptr;
}

void ConnectionCache::put(std::unique_ptr<UpstreamConnection> connection) {
    Key key{connection->pool, connection->peer->index};
    uint32_t limit = connection->pool->config().keepalive;
    connection->idle_since = CoarseClock::now();
    for (auto& [k, list] : idle_) {
        if (!(k == key))
            continue;
        if (list.size() >= limit)
            list.erase(list.begin()); // drop the oldest
        if (limit)
            list.push_back(std::move(connection));
        return;
    }
    if (limit) {
        idle_.emplace_back(key, std::vector<std::unique_ptr<UpstreamConnection>>{});
        idle_.back().second.push_back(std::move(connection));
    }
}

void ConnectionCache::sweep(CoarseClock::time_point now) {
    for (auto& [key, list] : idle_) {
        auto timeout = key.pool->config().keepalive_timeout;
        std::erase_if(list, [&](const std::unique_ptr<UpstreamConnection>& c) {
            return now - c->idle_since >= timeout;
        });
        // A connection that stays idle gives its buffer back; a busy one keeps it, so the
        // request path allocates nothing.
        for (auto& c : list)
            if (now - c->idle_since >= std::chrono::seconds(1))
                c->buffer.release();
    }
}

void ConnectionCache::drop(const upstream::UpstreamPool* pool) {
    std::erase_if(idle_, [pool](const auto& entry) { return entry.first.pool == pool; });
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
