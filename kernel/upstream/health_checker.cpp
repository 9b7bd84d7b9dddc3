#include "upstream/health_checker.hpp"

#include "log.hpp"
#include "net/transport.hpp"
#include "tls/client_context.hpp"
#include "upstream/pool.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/http.hpp>

#include <cctype>
#include <optional>

namespace gatehouse::upstream {

namespace beast = boost::beast;
namespace bhttp = beast::http;
using Millis = std::chrono::milliseconds;

namespace {

// A health response's head only needs a status line; this is generous for any real one.
constexpr uint32_t max_check_header_bytes = 16 * 1024;

std::string describe_error(const beast::error_code& ec, Millis timeout) {
    if (ec == beast::error::timeout)
        return fmt::format("timed out after {} ms", timeout.count());
    std::string text = ec.message();
    if (!text.empty())
        text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
    return text;
}

} // namespace

bool apply_check_result(Peer& peer, bool passed, const config::HealthCheckConfig& health) {
    constexpr auto relaxed = std::memory_order_relaxed;
    auto& same = passed ? peer.check_passes : peer.check_fails;
    auto& other = passed ? peer.check_fails : peer.check_passes;
    other.store(0, relaxed);
    uint32_t run = same.load(relaxed) + 1;
    same.store(run, relaxed);
    bool healthy = peer.active_healthy.load(relaxed);
    if (healthy == passed || run < (passed ? health.rise : health.fall))
        return false;
    peer.active_healthy.store(passed, relaxed);
    return true;
}

// One server's check loop: wait (interval + jitter), connect, send the request, read the
// response head, count the result, wait again. A Beast session; every step runs on the
// checker's thread, one check in flight per server.
class HealthChecker::ServerProbe : public std::enable_shared_from_this<ServerProbe> {
public:
    ServerProbe(boost::asio::io_context& io, std::mt19937& rng, UpstreamPool& pool, Peer& peer,
                tls::ClientContext* tls)
        : io_(io), rng_(rng), pool_(pool), peer_(peer), health_(pool.config().health),
          timer_(io), deadline_(io), tls_(tls) {
        request_.method(bhttp::verb::get);
        request_.target(health_.path);
        request_.version(11);
        request_.set(bhttp::field::host,
                     health_.host.empty() ? peer.entry.address : health_.host);
        // One request per connection: nothing to keep alive between checks seconds apart.
        request_.set(bhttp::field::connection, "close");
        request_.set(bhttp::field::user_agent, "gatehouse-health-check/" GATEHOUSE_VERSION);
    }

    // The first check comes after a random part of the jitter, so that the servers of a pool
    // (and pools configured alike) are not all checked in the same instant.
    void start() { wait(random_jitter()); }

private:
    Millis random_jitter() {
        if (health_.jitter.count() <= 0)
            return Millis(0);
        std::uniform_int_distribution<int64_t> pick(0, health_.jitter.count());
        return Millis(pick(rng_));
    }

    void wait(Millis delay) {
        timer_.expires_after(delay);
        timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
            if (!ec)
                self->check();
        });
    }

    void check() {
        stream_.emplace(io_);
        buffer_.clear();
        parser_.emplace();
        parser_->header_limit(max_check_header_bytes);
        timed_out_ = false;
        // One deadline for the whole check: connect, TLS, write and read together.
        deadline_.expires_after(health_.timeout);
        deadline_.async_wait([self = shared_from_this()](beast::error_code ec) {
            if (ec || !self->stream_)
                return;
            self->timed_out_ = true;
            beast::error_code ignored;
            self->stream_->socket().close(ignored);
        });
        stream_->socket().async_connect(peer_.endpoint, [self = shared_from_this()](beast::error_code ec) {
            self->on_connect(ec);
        });
    }

    void on_connect(beast::error_code ec) {
        if (ec)
            return fail(ec);
        if (!tls_)
            return send();
        // The same TLS as requests: SNI, verification and client certificate.
        stream_->enable_tls(tls_->context());
        if (!tls_->prepare(stream_->ssl(), peer_.entry.host))
            return finish(false, "TLS setup failed");
        stream_->tls_stream_ref().async_handshake(
            boost::asio::ssl::stream_base::client, [self = shared_from_this()](beast::error_code ec) {
                if (ec) {
                    long verify = SSL_get_verify_result(self->stream_->ssl());
                    if (verify != X509_V_OK && !self->timed_out_)
                        return self->finish(false, std::string("TLS: ") +
                                                       X509_verify_cert_error_string(verify));
                    return self->fail(ec);
                }
                self->send();
            });
    }

    void send() {
        bhttp::async_write(*stream_, request_,
                           [self = shared_from_this()](beast::error_code ec, size_t) {
                               self->on_write(ec);
                           });
    }

    void on_write(beast::error_code ec) {
        if (ec)
            return fail(ec);
        // The status decides; the body, if any, is not worth reading.
        bhttp::async_read_header(*stream_, buffer_, *parser_,
                                 [self = shared_from_this()](beast::error_code ec, size_t) {
                                     self->on_read(ec);
                                 });
    }

    void on_read(beast::error_code ec) {
        if (ec)
            return fail(ec);
        unsigned status = parser_->get().result_int();
        bool passed = status >= health_.expect_min && status <= health_.expect_max;
        finish(passed, fmt::format("status {}", status));
    }

    void fail(beast::error_code ec) {
        finish(false, describe_error(timed_out_ ? beast::error::timeout : ec, health_.timeout));
    }

    void finish(bool passed, const std::string& reason) {
        deadline_.cancel();
        beast::error_code ignored;
        stream_->socket().close(ignored);
        stream_.reset();
        if (!passed)
            log::debug("upstream {}: health check of {} failed: {}", pool_.name(),
                       peer_.entry.address, reason);
        if (apply_check_result(peer_, passed, health_))
            log_transition(passed, reason);
        wait(health_.interval + random_jitter());
    }

    void log_transition(bool healthy, const std::string& reason) {
        if (healthy) {
            uint32_t passes = peer_.check_passes.load(std::memory_order_relaxed);
            log::info("upstream {}: server {} is healthy again ({} passed check{})", pool_.name(),
                      peer_.entry.address, passes, passes == 1 ? "" : "s");
        } else {
            uint32_t fails = peer_.check_fails.load(std::memory_order_relaxed);
            log::warn("upstream {}: server {} is unhealthy ({} failed check{}: {})", pool_.name(),
                      peer_.entry.address, fails, fails == 1 ? "" : "s", reason);
        }
    }

    boost::asio::io_context& io_;
    std::mt19937& rng_;
    UpstreamPool& pool_;
    Peer& peer_;
    const config::HealthCheckConfig& health_;
    boost::asio::steady_timer timer_;
    boost::asio::steady_timer deadline_;
    tls::ClientContext* tls_; // the pool's client TLS context, or null for plain HTTP
    bool timed_out_ = false;
    bhttp::request<bhttp::empty_body> request_;
    std::optional<net::Transport> stream_;
    beast::flat_buffer buffer_;
    std::optional<bhttp::response_parser<bhttp::empty_body>> parser_;
};

std::unique_ptr<HealthChecker> HealthChecker::start(std::vector<UpstreamPool*> pools,
                                                    std::vector<tls::ClientContext*> tls) {
    std::unique_ptr<HealthChecker> checker(new HealthChecker());
    size_t servers = 0, upstreams = 0;
    for (size_t p = 0; p < pools.size(); ++p) {
        UpstreamPool* pool = pools[p];
        if (!pool->config().health.enabled)
            continue;
        ++upstreams;
        tls::ClientContext* context = p < tls.size() ? tls[p] : nullptr;
        for (size_t i = 0; i < pool->size(); ++i, ++servers)
            std::make_shared<ServerProbe>(checker->io_, checker->rng_, *pool, pool->peer(i), context)
                ->start();
    }
    if (servers == 0)
        return checker;
    log::info("health checks: {} server{} in {} upstream{}", servers, servers == 1 ? "" : "s",
              upstreams, upstreams == 1 ? "" : "s");
    checker->thread_ = std::thread([io = &checker->io_] {
        try {
            io->run();
        } catch (const std::exception& e) {
            // Not expected (requests are built up front); without the thread, servers keep
            // their last state and passive health still applies.
            log::error("health checks stopped: {}", e.what());
        }
    });
    return checker;
}

void HealthChecker::stop() {
    io_.stop();
    if (thread_.joinable())
        thread_.join();
}

HealthChecker::~HealthChecker() { stop(); }

} // namespace gatehouse::upstream
