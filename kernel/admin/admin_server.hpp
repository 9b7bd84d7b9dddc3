// The admin endpoint: /healthz, /readyz, /metrics, /status and POST /reload on their own
// address, served by their own thread and io_context so a busy or stuck worker never hides
// the process's health, and a scrape never runs on a worker. Not the hot path: Boost.Beast
// messages with string bodies.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

namespace gatehouse::admin {

// Called on the admin thread, one request at a time; they must be safe to run concurrently
// with the workers. An exception becomes a 500; an unset handler a 501.
struct AdminHandlers {
    std::function<std::string()> metrics;     // Prometheus text (0.0.4)
    std::function<std::string()> status_json; // the /status document
    // Same as SIGHUP. {true, body} -> 200 (e.g. the new generation); {false, reason} -> 500
    // with the old generation kept.
    std::function<std::pair<bool, std::string>()> reload;
    // /modules/NAME/...: a module's own endpoint (SDK 1.2 admin_handle); nullopt = 404.
    struct ModuleReply {
        unsigned status = 200;
        std::string content_type;
        std::string body;
    };
    std::function<std::optional<ModuleReply>(std::string_view method, std::string_view path,
                                              std::string_view body)>
        module;
};

class AdminServer {
public:
    // Binds `endpoint` (port 0 picks a free one) and starts the admin thread. nullptr (and why)
    // if the address cannot be bound.
    static std::unique_ptr<AdminServer> start(const boost::asio::ip::tcp::endpoint& endpoint,
                                              AdminHandlers handlers, std::string& error);
    ~AdminServer();
    AdminServer(const AdminServer&) = delete;
    AdminServer& operator=(const AdminServer&) = delete;

    uint16_t port() const { return port_; }
    // /readyz answers 200 while ready (the default), 503 once draining. Any thread.
    void set_ready(bool ready) { ready_.store(ready, std::memory_order_relaxed); }
    bool ready() const { return ready_.load(std::memory_order_relaxed); }
    // Stops accepting and joins the admin thread; open admin connections close when the
    // server is destroyed. Idempotent; not from a handler.
    void stop();

private:
    friend class AdminSession;
    explicit AdminServer(AdminHandlers handlers);
    void accept();

    // Declared before io_: sessions still queued in io_ are destroyed with it and read these.
    AdminHandlers handlers_;
    std::atomic<bool> ready_{true};
    unsigned sessions_ = 0; // admin thread only
    uint16_t port_ = 0;
    boost::asio::io_context io_;
    boost::asio::ip::tcp::acceptor acceptor_;
    boost::asio::steady_timer accept_backoff_;
    std::thread thread_;
};

} // namespace gatehouse::admin
