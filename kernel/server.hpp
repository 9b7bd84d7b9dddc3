// The running process: workers, listeners, the active config generation, reloads (SIGHUP, the
// admin endpoint), TLS certificate watching, ticket key rotation and graceful shutdown. All of
// it runs on the main thread's io_context; workers only ever see immutable generations.
#pragma once

#include "admin/admin_server.hpp"
#include "metrics/kernel_metrics.hpp"
#include "modules/loader.hpp"
#include "net/listener.hpp"
#include "net/worker.hpp"
#include "runtime.hpp"
#include "upstream/health_checker.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace gatehouse {

class Server {
public:
    Server(std::string config_file, modules::ModuleSet& modules,
           std::shared_ptr<Generation> generation);
    ~Server();

    // Opens listeners, starts workers, serves until stopped. Returns the exit code.
    int run();
    // Builds and activates a new generation from the config file; on any error the current one
    // keeps serving. Main thread. Returns (ok, message).
    std::pair<bool, std::string> reload();
    // Any thread: reload on the main thread and wait for the result (admin endpoint).
    std::pair<bool, std::string> reload_from_any_thread();

    std::shared_ptr<const Generation> generation() const { return current_.load(); }
    const std::vector<std::unique_ptr<net::Worker>>& workers() const { return workers_; }
    bool draining() const { return draining_; }

private:
    using ListenerSet = std::vector<std::shared_ptr<net::Listener>>;

    bool open_listener(const config::ListenerConfig& listener, ListenerSet& out, std::string& error);
    bool reconcile_listeners(const Generation& next, std::string& error);
    void activate_generation(std::shared_ptr<Generation> next);
    void sweep_retired();
    void schedule_housekeeping();
    void watch_certificates();
    void on_signal(int signal);
    void start_drain();
    void check_drained();
    bool write_pid_file(std::string& error); // false: the reason in error
    // Start-up's or the last reload attempt's outcome, beside the pid file, for `gatehouse reload`.
    void record_reload(bool ok, const std::string& message);
    void shut_down();
    bool start_admin(std::string& error);
    std::optional<admin::AdminHandlers::ModuleReply>
    module_admin(std::string_view method, std::string_view target, std::string_view body);
    std::string render_metrics() const;
    std::string render_status() const;
    void start_health_checks(const Generation& generation);
    // The generation's access log: the open one if unchanged, else newly opened (not yet used).
    bool open_access_log(const Generation& generation, std::shared_ptr<accesslog::AccessLog>& out,
                         std::string& error);
    void use_access_log(Generation& generation, std::shared_ptr<accesslog::AccessLog> log);

    std::string config_file_;
    std::string pid_file_; // written at start, removed at exit
    uint64_t reload_attempts_ = 0;
    modules::ModuleSet& modules_;
    boost::asio::io_context io_;
    boost::asio::signal_set stop_signals_;
    boost::asio::signal_set other_signals_;
    boost::asio::steady_timer housekeeping_;
    boost::asio::steady_timer ticket_rotation_;
    boost::asio::steady_timer drain_deadline_;
    std::vector<std::unique_ptr<net::Worker>> workers_;
    std::map<std::string, ListenerSet> listeners_; // by ListenerConfig::key()
    std::atomic<std::shared_ptr<const Generation>> current_;
    std::shared_ptr<Generation> current_owned_;
    std::vector<std::shared_ptr<Generation>> retired_;  // replaced, maybe still in use
    std::vector<std::shared_ptr<Generation>> released_; // workers done with it: freed next sweep
    std::unique_ptr<upstream::HealthChecker> health_; // checks the current generation's pools
    std::shared_ptr<accesslog::AccessLog> access_log_;
    std::unique_ptr<metrics::KernelMetrics> metrics_;
    std::unique_ptr<admin::AdminServer> admin_;
    std::chrono::system_clock::time_point started_at_ = std::chrono::system_clock::now();
    accesslog::AccessLogConfig access_log_config_;
    uint64_t next_number_ = 2;
    bool draining_ = false;
    std::atomic<bool> stopped_{false};
};

} // namespace gatehouse
