#include "server.hpp"

#include "admin/status.hpp"
#include "log.hpp"
#include "metrics.hpp"
#include "modules/services.hpp"
#include "net/client_connection.hpp"
#include "reload_status.hpp"
#include "tls/ticket_keys.hpp"

#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <future>
#include <thread>
#include <unistd.h>

namespace gatehouse {

namespace asio = boost::asio;

namespace {

std::string endpoint_text(const asio::ip::tcp::endpoint& e) {
    auto a = e.address();
    return a.is_v6() ? fmt::format("[{}]:{}", a.to_string(), e.port())
                     : fmt::format("{}:{}", a.to_string(), e.port());
}

} // namespace

Server::Server(std::string config_file, modules::ModuleSet& modules,
               std::shared_ptr<Generation> generation)
    : config_file_(std::move(config_file)), modules_(modules), stop_signals_(io_, SIGTERM, SIGINT),
      other_signals_(io_, SIGHUP, SIGUSR1), housekeeping_(io_), ticket_rotation_(io_),
      drain_deadline_(io_), current_owned_(std::move(generation)) {
    current_.store(current_owned_);
}

Server::~Server() = default;

bool Server::open_listener(const config::ListenerConfig& lc, ListenerSet& out, std::string& error) {
    asio::ip::tcp::endpoint endpoint(asio::ip::make_address(lc.host), lc.port);
    auto source = [this] { return current_.load(); };
    if (!net::address_free(endpoint, error)) {
        error = fmt::format("cannot listen on {}: {}", endpoint_text(endpoint), error);
        return false;
    }
    for (auto& w : workers_) {
        auto listener = std::make_shared<net::Listener>(*w, source, lc.key());
        if (!listener->open(endpoint, error)) {
            error = fmt::format("cannot listen on {}: {}", endpoint_text(endpoint), error);
            return false;
        }
        // Port 0: the first acceptor picked a port; the others share it (SO_REUSEPORT).
        endpoint.port(listener->port());
        out.push_back(std::move(listener));
    }
    log::info("listening on {}{}", endpoint_text(endpoint), lc.tls ? " (tls)" : "");
    return true;
}

bool Server::reconcile_listeners(const Generation& next, std::string& error) {
    // Open what is new first: if one fails, nothing changes.
    std::map<std::string, ListenerSet> opened;
    for (const auto& lc : next.config().listeners) {
        if (listeners_.count(lc.key()) || opened.count(lc.key()))
            continue;
        ListenerSet set;
        if (!open_listener(lc, set, error))
            return false;
        opened.emplace(lc.key(), std::move(set));
    }
    for (auto it = listeners_.begin(); it != listeners_.end();) {
        bool kept = false;
        for (const auto& lc : next.config().listeners)
            kept = kept || lc.key() == it->first;
        if (kept) {
            ++it;
            continue;
        }
        log::info("closing listener {}", it->first);
        for (auto& l : it->second)
            asio::post(l->worker().io(), [l] { l->stop(); });
        it = listeners_.erase(it);
    }
    for (auto& [key, set] : opened) {
        for (auto& l : set)
            asio::post(l->worker().io(), [l] { l->start(); });
        listeners_.emplace(key, std::move(set));
    }
    return true;
}

bool Server::open_access_log(const Generation& generation,
                             std::shared_ptr<accesslog::AccessLog>& out, std::string& error) {
    const auto& cfg = generation.config().access_log;
    out = access_log_;
    if (cfg.path == access_log_config_.path && cfg.format == access_log_config_.format)
        return true; // unchanged: keep the open file (and its writer)
    out.reset();
    if (cfg.path.empty())
        return true;
    out = accesslog::AccessLog::open(cfg, error);
    if (!out)
        error = fmt::format("{}: [access_log.path] {}", generation.config().file, error);
    return out != nullptr;
}

void Server::use_access_log(Generation& generation, std::shared_ptr<accesslog::AccessLog> log) {
    access_log_config_ = generation.config().access_log;
    access_log_ = log;
    generation.set_access_log(std::move(log));
}

std::string Server::render_metrics() const {
    auto gen = current_.load();
    std::vector<const upstream::UpstreamPool*> pools;
    for (const auto& p : gen->pools())
        pools.push_back(p.get());
    return metrics_->render(pools) + metrics::render_prometheus();
}

std::string Server::render_status() const {
    auto gen = current_.load();
    admin::StatusInputs in;
    in.version = GATEHOUSE_VERSION;
    in.config_file = config_file_;
    in.config_hash = gen->config().text_sha256;
    in.generation = gen->number();
    in.started_at = started_at_;
    in.ready = !net::draining.load();
    for (const auto& m : modules_.all())
        in.modules.push_back(m.get());
    for (const auto& p : gen->pools())
        in.pools.push_back(p.get());
    return admin::status_json(in);
}

// /modules/NAME/rest?query on the admin thread: the module's SDK 1.2 admin handler.
std::optional<admin::AdminHandlers::ModuleReply>
Server::module_admin(std::string_view method, std::string_view target, std::string_view body) {
    std::string_view path = target.substr(0, target.find('?'));
    std::string_view query;
    if (size_t q = target.find('?'); q != std::string_view::npos)
        query = target.substr(q + 1);
    path.remove_prefix(std::string_view("/modules/").size());
    const size_t slash = path.find('/');
    const std::string_view name = path.substr(0, slash);
    const std::string_view rest = slash == std::string_view::npos ? "" : path.substr(slash);
    modules::LoadedModule* m = modules_.find(name);
    if (!m)
        return std::nullopt;
    auto str = [](std::string_view v) { return gh_str_t{v.data(), v.size()}; };
    gh_admin_request_t req{sizeof(gh_admin_request_t), 0, str(method), str(rest), str(query),
                           gh_bytes_t{reinterpret_cast<const uint8_t*>(body.data()), body.size()}};
    gh_admin_response_t res{sizeof(gh_admin_response_t), 200, {}, {}};
    std::lock_guard lock(modules::admin_mutex);
    if (!m->admin_fn)
        return std::nullopt;
    m->admin_fn(m->admin_arg, &req, &res);
    admin::AdminHandlers::ModuleReply out;
    out.status = res.status >= 100 && res.status <= 599 ? res.status : 500;
    out.content_type.assign(res.content_type.ptr ? res.content_type.ptr : "", res.content_type.len);
    out.body.assign(res.body.ptr ? reinterpret_cast<const char*>(res.body.ptr) : "", res.body.len);
    return out;
}

bool Server::start_admin(std::string& error) {
    const auto& cfg = current_owned_->config().admin;
    if (!cfg.enabled)
        return true;
    admin::AdminHandlers handlers;
    handlers.metrics = [this] { return render_metrics(); };
    handlers.status_json = [this] { return render_status(); };
    handlers.reload = [this] { return reload_from_any_thread(); };
    handlers.module = [this](std::string_view method, std::string_view target,
                             std::string_view body) { return module_admin(method, target, body); };
    asio::ip::tcp::endpoint endpoint(asio::ip::make_address(cfg.host), cfg.port);
    admin_ = admin::AdminServer::start(endpoint, std::move(handlers), error);
    if (!admin_)
        return false;
    endpoint.port(admin_->port());
    log::info("admin listening on {}", endpoint_text(endpoint));
    return true;
}

void Server::start_health_checks(const Generation& generation) {
    if (health_)
        health_->stop();
    std::vector<upstream::UpstreamPool*> pools;
    std::vector<tls::ClientContext*> tls;
    for (const auto& pool : generation.pools()) {
        pools.push_back(pool.get());
        tls.push_back(generation.pool_tls(pool->index()));
    }
    health_ = upstream::HealthChecker::start(std::move(pools), std::move(tls));
}

void Server::activate_generation(std::shared_ptr<Generation> next) {
    auto previous = std::move(current_owned_);
    current_owned_ = next;
    current_.store(next);
    modules::set_current_generation(next);
    net::current_generation_number.store(next->number());
    start_health_checks(*next);
    auto instances = next->modules();
    for (auto& w : workers_)
        asio::post(w->io(), [instances] {
            for (const auto& i : instances)
                if (i.module->desc.worker_init)
                    i.module->desc.worker_init(i.module->state, i.config);
        });
    if (previous)
        retired_.push_back(std::move(previous));
}

std::pair<bool, std::string> Server::reload() {
    if (draining_)
        return {false, "shutting down"};
    std::vector<std::string> load_errors, warnings;
    auto next = Generation::load(config_file_, modules_, load_errors, warnings);
    for (const auto& w : warnings)
        log::warn("reload: {}", w);
    std::string error;
    for (const auto& e : load_errors)
        error += (error.empty() ? "" : "\n") + e;
    if (next && next->config().server.workers != current_owned_->config().server.workers)
        log::warn("reload: server.workers changes only on restart");
    std::vector<std::string> errors;
    if (next && !next->activate(errors)) {
        for (const auto& e : errors)
            error += (error.empty() ? "" : "\n") + e;
        next.reset();
    }
    std::shared_ptr<accesslog::AccessLog> log;
    if (next && !open_access_log(*next, log, error))
        next.reset();
    if (next && !reconcile_listeners(*next, error))
        next.reset();
    if (!next) {
        // One log line: each error (already FILE:LINE: [key] message) after the next.
        std::string one_line = error;
        std::replace(one_line.begin(), one_line.end(), '\n', ' ');
        log::error("reload failed, generation {} keeps serving: {}", current_owned_->number(),
                   one_line);
        ++reload_attempts_;
        record_reload(false, error);
        return {false, error};
    }
    next->set_number(next_number_++);
    next->bind_metrics(*metrics_);
    if (next->config().admin.host != current_owned_->config().admin.host ||
        next->config().admin.port != current_owned_->config().admin.port)
        log::warn("reload: the admin listener changes only on restart");
    use_access_log(*next, std::move(log));
    activate_generation(next);
    log::info("reload: generation {} active", next->number());
    std::string outcome = fmt::format("generation {} active", next->number());
    ++reload_attempts_;
    record_reload(true, outcome);
    return {true, outcome};
}

std::pair<bool, std::string> Server::reload_from_any_thread() {
    auto result = std::make_shared<std::promise<std::pair<bool, std::string>>>();
    auto future = result->get_future();
    asio::post(io_, [this, result] { result->set_value(reload()); });
    // The main loop may stop (shutdown) before it runs the reload: do not wait forever.
    while (future.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready)
        if (stopped_.load())
            return {false, "shutting down"};
    return future.get();
}

void Server::sweep_retired() {
    // A retired generation goes when no connection holds it any more: the workers run their
    // exit hooks and forget its pooled connections, then it is destroyed here, on the main thread.
    for (auto it = retired_.begin(); it != retired_.end();) {
        if (it->use_count() > 1) {
            ++it;
            continue;
        }
        std::shared_ptr<Generation> gen = std::move(*it);
        it = retired_.erase(it);
        auto remaining = std::make_shared<std::atomic<size_t>>(workers_.size());
        for (auto& w : workers_) {
            net::Worker* worker = w.get();
            asio::post(worker->io(), [this, gen, worker, remaining] {
                for (const auto& pool : gen->pools())
                    worker->drop_pooled(pool.get());
                for (const auto& i : gen->modules())
                    if (i.module->desc.worker_exit)
                        i.module->desc.worker_exit(i.module->state, i.config);
                if (remaining->fetch_sub(1) == 1)
                    asio::post(io_, [this, gen] { released_.push_back(gen); });
            });
        }
    }
    // Destroyed here, on the main thread, once the workers' copies are gone too.
    std::erase_if(released_, [](const std::shared_ptr<Generation>& gen) {
        if (gen.use_count() > 1)
            return false;
        log::debug("generation {} released", gen->number());
        return true;
    });
}

void Server::watch_certificates() {
    auto gen = current_.load();
    for (const auto& [key, tls] : gen->tls_listeners()) {
        std::string error;
        auto before = tls->store();
        if (!tls->reload_if_changed(error))
            log::error("listener {}: certificate reload failed, keeping the old one: {}", key, error);
        else if (tls->store() != before)
            log::info("listener {}: certificates reloaded", key);
    }
}

void Server::schedule_housekeeping() {
    // Once a second at most; certificate watching at the shortest configured interval.
    auto interval = std::chrono::milliseconds(1000);
    for (const auto& lc : current_.load()->config().listeners)
        if (lc.tls)
            interval = std::min(interval, lc.tls->watch_interval);
    housekeeping_.expires_after(interval);
    housekeeping_.async_wait([this](const boost::system::error_code& ec) {
        if (ec || stopped_)
            return;
        sweep_retired();
        watch_certificates();
        if (draining_)
            check_drained();
        schedule_housekeeping();
    });
}

void Server::on_signal(int signal) {
    if (signal == SIGTERM || signal == SIGINT) {
        if (draining_) {
            log::warn("signal {} while draining: exiting now", signal);
            std::fflush(nullptr);
            std::_Exit(1);
        }
        log::info("signal {}: draining for up to {} ms", signal,
                  current_owned_->config().timeouts.drain.count());
        start_drain();
    }
    stop_signals_.async_wait([this](const boost::system::error_code& ec, int s) {
        if (!ec)
            on_signal(s);
    });
}

void Server::start_drain() {
    draining_ = true;
    net::draining.store(true);
    if (admin_)
        admin_->set_ready(false); // load balancers in front stop sending first
    for (auto& [key, set] : listeners_)
        for (auto& l : set)
            asio::post(l->worker().io(), [l] { l->stop(); });
    listeners_.clear();
    for (auto& w : workers_)
        asio::post(w->io(), [worker = w.get()] { worker->close_idle_connections(); });
    drain_deadline_.expires_after(current_owned_->config().timeouts.drain);
    drain_deadline_.async_wait([this](const boost::system::error_code& ec) {
        if (ec || stopped_)
            return;
        log::warn("drain timeout: closing the remaining connections");
        // Closed on their own threads, so every filter still gets LOG and STREAM_END (the SDK
        // promises STREAM_END exactly once); then a moment for that before the loops stop.
        for (auto& w : workers_)
            asio::post(w->io(), [worker = w.get()] { worker->close_all_connections(); });
        drain_deadline_.expires_after(std::chrono::milliseconds(200));
        drain_deadline_.async_wait([this](const boost::system::error_code& ec) {
            if (ec || stopped_)
                return;
            stopped_ = true;
            io_.stop();
        });
    });
    check_drained();
}

void Server::check_drained() {
    size_t open = 0;
    for (auto& w : workers_)
        open += w->open_connections();
    if (open == 0 && !stopped_) {
        log::info("drained");
        stopped_ = true;
        io_.stop();
    }
}

bool Server::write_pid_file(std::string& error) {
    const std::string& path = current_owned_->config().server.pid_file;
    if (path.empty())
        return true;
    // Written whole or not at all: `gatehouse reload` and service managers read it.
    std::string text = fmt::format("{}\n", ::getpid());
    FILE* f = std::fopen(path.c_str(), "w");
    bool ok = f && std::fwrite(text.data(), 1, text.size(), f) == text.size();
    int saved = errno;
    if (f && std::fclose(f) != 0 && ok) {
        ok = false;
        saved = errno;
    }
    if (!ok) {
        if (f)
            std::remove(path.c_str());
        error = fmt::format("cannot write '{}': {}", path, std::strerror(saved));
        return false;
    }
    pid_file_ = path;
    record_reload(true, "started");
    return true;
}

void Server::record_reload(bool ok, const std::string& message) {
    if (pid_file_.empty())
        return;
    reload_status::Status status;
    status.pid = ::getpid();
    status.config = std::filesystem::absolute(config_file_).lexically_normal().string();
    status.attempt = reload_attempts_;
    status.ok = ok;
    status.generation = current_owned_->number();
    status.message = message;
    std::string error;
    if (!reload_status::write(reload_status::path_for(pid_file_), status, error))
        log::warn("[server.pid_file] {}: `gatehouse reload` cannot report outcomes", error);
}

void Server::shut_down() {
    // Every way out of run() after start-up began comes here, so nothing (the generation held
    // for callouts, the access log, worker threads) outlives the server or the modules' code.
    stopped_ = true;
    if (health_)
        health_->stop();
    if (admin_)
        admin_->stop();
    for (auto& w : workers_)
        w->stop();
    for (auto& w : workers_)
        w->join();
    listeners_.clear();
    workers_.clear();
    retired_.clear();
    released_.clear();
    modules::stop_offload_pool();
    modules::set_current_generation(nullptr);
    if (current_owned_)
        current_owned_->set_access_log(nullptr);
    access_log_.reset(); // flushes
    net::kernel_metrics = nullptr;
    if (!pid_file_.empty()) {
        std::remove(pid_file_.c_str());
        std::remove(reload_status::path_for(pid_file_).c_str());
    }
    log::info("stopped");
}

int Server::run() {
    const config::Config& cfg = current_owned_->config();
    std::vector<std::string> errors;
    if (!current_owned_->activate(errors)) {
        for (const auto& e : errors)
            log::error("{}", e);
        return 1;
    }
    std::string log_error;
    std::shared_ptr<accesslog::AccessLog> log;
    if (!open_access_log(*current_owned_, log, log_error)) {
        log::error("{}", log_error);
        return 1;
    }
    use_access_log(*current_owned_, std::move(log));
    unsigned count = cfg.server.workers ? cfg.server.workers
                                        : std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < count; ++i)
        workers_.push_back(std::make_unique<net::Worker>(i));
    metrics_ = std::make_unique<metrics::KernelMetrics>(count);
    net::kernel_metrics = metrics_.get();
    current_owned_->bind_metrics(*metrics_);
    std::string error;
    for (const auto& lc : cfg.listeners) {
        ListenerSet set;
        if (!open_listener(lc, set, error)) {
            log::error("{}:{}: [listener] {}", cfg.file, lc.line, error);
            shut_down();
            return 1;
        }
        listeners_.emplace(lc.key(), std::move(set));
    }
    for (const auto& m : modules_.all())
        log::info("module {} {} (ABI {}.{}, {})", m->name, m->desc.version ? m->desc.version : "?",
                  m->desc.abi_major, m->desc.abi_minor, m->kinds());
    current_owned_->set_number(1);
    modules::set_current_generation(current_owned_);
    net::current_generation_number.store(1);
    start_health_checks(*current_owned_);
    auto instances = current_owned_->modules();
    auto exit_hooks = [this] {
        // At shutdown: the exit hooks of the generation active then.
        for (const auto& i : current_.load()->modules())
            if (i.module->desc.worker_exit)
                i.module->desc.worker_exit(i.module->state, i.config);
    };
    for (auto& w : workers_)
        w->start([instances] {
            for (const auto& i : instances)
                if (i.module->desc.worker_init)
                    i.module->desc.worker_init(i.module->state, i.config);
        }, exit_hooks);
    for (auto& [key, set] : listeners_)
        for (auto& l : set)
            asio::post(l->worker().io(), [l] { l->start(); });
    if (!start_admin(error)) {
        log::error("{}: [admin.listen] {}", cfg.file, error);
        shut_down();
        return 1;
    }
    if (!write_pid_file(error)) {
        log::error("{}:{}: [server.pid_file] {}", cfg.file, cfg.server.pid_file_line, error);
        shut_down();
        return 1;
    }
    log::info("ready: {} worker{}", count, count == 1 ? "" : "s");

    stop_signals_.async_wait([this](const boost::system::error_code& ec, int s) {
        if (!ec)
            on_signal(s);
    });
    std::function<void(const boost::system::error_code&, int)> other;
    other = [this, &other](const boost::system::error_code& ec, int s) {
        if (ec)
            return;
        if (s == SIGHUP)
            reload();
        else if (s == SIGUSR1) {
            std::string e;
            log::set_file(current_owned_->config().server.log_file, e);
            if (access_log_)
                access_log_->reopen();
            log::info("SIGUSR1: logs reopened");
        }
        other_signals_.async_wait(other);
    };
    other_signals_.async_wait(other);
    // Ticket keys rotate at the shortest interval any TLS listener asks for.
    std::function<void()> rotate;
    rotate = [this, &rotate] {
        auto interval = std::chrono::milliseconds(0);
        for (const auto& lc : current_.load()->config().listeners)
            if (lc.tls && lc.tls->session_tickets)
                interval = interval.count() ? std::min(interval, lc.tls->ticket_key_rotation)
                                            : lc.tls->ticket_key_rotation;
        if (!interval.count())
            interval = std::chrono::minutes(1); // look again later (a reload may add TLS)
        ticket_rotation_.expires_after(interval);
        ticket_rotation_.async_wait([this, &rotate](const boost::system::error_code& ec) {
            if (ec || stopped_)
                return;
            tls::TicketKeys::instance().rotate();
            rotate();
        });
    };
    rotate();
    schedule_housekeeping();
    io_.run();

    shut_down();
    return 0;
}

} // namespace gatehouse
