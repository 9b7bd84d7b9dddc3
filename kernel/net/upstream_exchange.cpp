// The upstream side of a request: peer selection, pooled or new connections, retries, the
// request head and body going up (the response coming back: response_exchange.cpp).
#include "net/client_connection.hpp"
#include "net/head_fields.hpp"

#include "http/status.hpp"
#include "log.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include <span>
#include <sys/socket.h>

namespace gatehouse::net {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {


bool idempotent(std::string_view method) {
    // RFC 9110 §9.2.2
    for (std::string_view m : {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
        if (method == m)
            return true;
    return false;
}

} // namespace

bool ClientConnection::request_rechunked() const {
    return stream_.subscribed(GH_DIR_REQUEST) && !request_held_ && request_.has_body() &&
           !(request_unchecked_ && !request_.framing.chunked);
}

bool ClientConnection::request_replayable() const {
    return !request_bytes_sent_ || (idempotent(request_.method) && body_at_hand());
}

bool ClientConnection::body_at_hand() const {
    // A body already taken from the client can go up again only if it is still here: held
    // whole, or kept when it went up whole in the first write (send_request_head).
    return !request_body_started_ || request_held_ || replay_body_kept_;
}

bool ClientConnection::stale_replay_possible() const {
    if (!idempotent(request_.method))
        return false;
    if (!request_.has_body() || request_held_ || replay_body_kept_)
        return true;
    // The whole body is here, so it goes up in the first write and is kept (send_request_head).
    return !request_.framing.chunked && !request_body_started_ &&
           in_.size() >= request_.framing.content_length;
}

void ClientConnection::start_upstream() {
    tried_.assign(pool_->size(), 0);
    attempt_ = 0;
    next_attempt();
}

void ClientConnection::next_attempt() {
    upstream::Peer* peer = attempt_ < pool_->max_attempts()
                               ? pool_->select(&stream_, attempt_, tried_)
                               : nullptr;
    if (!peer)
        return fail_upstream(last_failure_timeout_ ? 504 : 502, "no upstream server left to try");
    tried_[peer->index] = 1;
    ++attempt_;
    if (termination_ == Termination::upstream_reset)
        termination_ = Termination::completed; // a new attempt; the last one's reset is history
    inflight_ = upstream::InflightGuard::adopt(peer);
    stream_.peer_address = peer->entry.address;
    attempt_start_ =
        attempt_ == 1 && in_head_call_ ? timing_.head : std::chrono::steady_clock::now();
    timing_.connect_start = attempt_start_;
    timing_.connected = timing_.first_byte = {};
    request_bytes_sent_ = false;
    // The server may have closed a pooled connection since (its keep-alive timer, a restart):
    // such a connection never carries a request, whatever the method.
    bool certain = !stale_replay_possible();
    auto c = worker_.connections().take(*pool_, peer->index);
    while (c && !c->transport.idle_intact(certain))
        c = worker_.connections().take(*pool_, peer->index);
    generation_->metrics().upstream_connection(worker_.id(), pool_->index(), c != nullptr);
    if (!c)
        return connect_peer();
    upstream_ = std::move(c);
    on_connect({});
}

void ClientConnection::connect_peer() {
    upstream_ = std::make_unique<UpstreamConnection>(worker_.io());
    upstream_->peer = inflight_.peer();
    upstream_->pool = pool_;
    timeout_ = Timeout::upstream_connect;
    watchdog_.arm(pool_->config().connect_timeout, *this);
    upstream_->transport.socket().async_connect(inflight_.peer()->endpoint,
                                    [self = shared_from_this()](const error_code& ec) {
                                        self->on_connect(ec);
                                    });
}

void ClientConnection::on_connect(const error_code& ec) {
    Timeout was = timeout_;
    if (was == Timeout::upstream_connect) {
        watchdog_.disarm();
        timeout_ = Timeout::none;
    }
    if (closing_)
        return;
    if (ec) {
        bool timed_out = was == Timeout::upstream_connect && ec == asio::error::operation_aborted &&
                         last_failure_timeout_;
        log::warn("upstream {} {}: connect failed: {}", pool_->name(), stream_.peer_address,
                  timed_out ? "timed out" : ec.message());
        return attempt_failed(timed_out ? GH_OUTCOME_TIMEOUT : GH_OUTCOME_CONNECT_FAILURE, true,
                              timed_out ? "upstream connect timed out" : "upstream connect failed");
    }
    if (upstream_->requests == 0) {
        error_code ignored;
        upstream_->transport.socket().set_option(asio::ip::tcp::no_delay(true), ignored);
        if (generation_->pool_tls(pool_->index()) && !upstream_->transport.tls())
            return start_upstream_tls();
    }
    on_upstream_ready();
}

void ClientConnection::start_upstream_tls() {
    tls::ClientContext& tls = *generation_->pool_tls(pool_->index());
    upstream_->transport.enable_tls(tls.context());
    if (!tls.prepare(upstream_->transport.ssl(), inflight_.peer()->entry.host))
        return attempt_failed(GH_OUTCOME_CONNECT_FAILURE, true, "upstream TLS setup failed");
    timeout_ = Timeout::upstream_connect;
    watchdog_.arm(pool_->config().connect_timeout, *this);
    upstream_->transport.tls_stream_ref().async_handshake(
        asio::ssl::stream_base::client, [self = shared_from_this()](const error_code& ec) {
            self->on_upstream_handshake(ec);
        });
}

void ClientConnection::on_upstream_handshake(const error_code& ec) {
    Timeout was = std::exchange(timeout_, Timeout::none);
    watchdog_.disarm();
    if (closing_)
        return;
    if (ec) {
        long verify = SSL_get_verify_result(upstream_->transport.ssl());
        std::string why = verify != X509_V_OK ? X509_verify_cert_error_string(verify) : ec.message();
        bool timed_out = was == Timeout::upstream_connect && ec == asio::error::operation_aborted;
        log::warn("upstream {} {}: TLS handshake failed: {}", pool_->name(), stream_.peer_address,
                  timed_out ? "timed out" : why);
        return attempt_failed(timed_out ? GH_OUTCOME_TIMEOUT : GH_OUTCOME_CONNECT_FAILURE, true,
                              "upstream TLS handshake failed");
    }
    on_upstream_ready();
}

void ClientConnection::on_upstream_ready() {
    // A pooled connection was ready when the attempt started (one clock read less).
    timing_.connected = upstream_->requests > 0 ? timing_.connect_start
                                                : std::chrono::steady_clock::now();
    if (!upstream_request_done_ &&
        (stream_.route->phase_mask & GH_PHASE_BIT(GH_PHASE_UPSTREAM_REQUEST))) {
        upstream_request_done_ = true;
        stream_.phase = GH_PHASE_UPSTREAM_REQUEST;
        filter_index_ = 0;
        return run_filters();
    }
    send_request_head();
}

bool ClientConnection::retry_stale_connection() {
    // A pooled connection that fails before any response byte was most likely closed by the
    // server's keep-alive timer: not the server's fault, and safe to replay once on a new
    // connection to the same server if the request itself is replayable -- or, where the
    // operator chose `retry_non_idempotent`, whatever its method, when its body is at hand.
    bool replayable = request_replayable() ||
                      (pool_->config().retry_non_idempotent && body_at_hand());
    if (!upstream_ || upstream_->requests == 0 || stale_retried_ || !replayable || closing_)
        return false;
    stale_retried_ = true;
    log::debug("upstream {} {}: pooled connection was stale, retrying on a new one",
               pool_->name(), stream_.peer_address);
    upstream_.reset();
    request_bytes_sent_ = false;
    connect_peer();
    return true;
}

void ClientConnection::attempt_failed(uint32_t outcome, bool may_retry, const char* why,
                                      const char* kind) {
    auto latency = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - attempt_start_);
    if (upstream::Peer* peer = inflight_.peer())
        pool_->report(*peer, outcome, 0, static_cast<uint64_t>(latency.count()));
    if (outcome == GH_OUTCOME_TIMEOUT)
        last_failure_timeout_ = true;
    last_failure_ = kind                                    ? kind
                    : outcome == GH_OUTCOME_TIMEOUT           ? "timeout"
                    : outcome == GH_OUTCOME_CONNECT_FAILURE ? "connect"
                                                            : "reset";
    upstream_.reset();
    inflight_.release();
    if (may_retry && request_replayable() && !closing_)
        return next_attempt();
    fail_upstream(last_failure_timeout_ ? 504 : 502, why);
}

void ClientConnection::fail_upstream(unsigned status, const char* why, const char* kind) {
    termination_ = status == 504 ? Termination::timeout
                   : termination_ == Termination::upstream_reset ? Termination::upstream_reset
                                                                 : Termination::upstream_error;
    log::info("{} {} -> upstream {}: {} ({})", request_.method, stream_.path,
              pool_ ? pool_->name() : "-", status, why);
    abort_upstream();
    if (response_started_)
        return close();
    if (stream_.route && (stream_.route->phase_mask & GH_PHASE_BIT(GH_PHASE_UPSTREAM_ERROR)) &&
        stream_.phase != GH_PHASE_UPSTREAM_ERROR && !stream_.has_reply) {
        // Filters may answer instead (a cache serving its stale copy). Why: this failure's
        // kind, else the last attempt's, else no server could even be tried.
        stream_.upstream_error = kind ? kind : last_failure_ ? last_failure_ : "unavailable";
        stream_.upstream_error_status = status;
        stream_.phase = GH_PHASE_UPSTREAM_ERROR;
        filter_index_ = 0;
        return run_filters();
    }
    reply(status, {}, !request_body_done_);
}

void ClientConnection::abort_upstream() {
    if (upstream_) {
        error_code ec;
        upstream_->transport.socket().close(ec);
        upstream_.reset();
    }
    inflight_.release();
}

// ---- request going up -----------------------------------------------------------------------

void ClientConnection::build_request_head() {
    const config::Config& cfg = *config_;
    bool trusted = trusted_peer_;
    std::string_view client_ip = stream_.client_address;
    client_ip = client_ip.substr(0, client_ip.rfind(':'));
    // X-Forwarded-For carries the bare address, as every backend parses it; the bracketed
    // IPv6 form belongs to Forwarded's quoted node (RFC 7239 §6).
    std::string_view bare_ip = client_ip;
    if (bare_ip.size() > 2 && bare_ip.front() == '[')
        bare_ip = bare_ip.substr(1, bare_ip.size() - 2);
    ConnectionOptions options(request_.fields, request_.framing);
    bool held = request_held_;
    std::string& out = out_head_;
    out.clear();
    out.append(request_.method);
    out.push_back(' ');
    out.append(stream_.normalised_target);
    out.append(" HTTP/1.1\r\n");
    std::string xff, xfp, xfh, fwd;
    bool drop_length = held || request_rechunked();
    FieldWriter fields(out, request_store_);
    for (const auto& f : request_.fields) {
        switch (http::kind_of(f)) {
        case http::FieldKind::hop_by_hop:
        case http::FieldKind::expect:
            continue;
        case http::FieldKind::x_forwarded_for:
            if (trusted)
                xff += xff.empty() ? std::string(f.value) : fmt::format(", {}", f.value);
            continue;
        case http::FieldKind::x_forwarded_proto:
            if (trusted)
                xfp = f.value;
            continue;
        case http::FieldKind::x_forwarded_host:
            if (trusted)
                xfh = f.value;
            continue;
        case http::FieldKind::forwarded:
            if (trusted)
                fwd += fwd.empty() ? std::string(f.value) : fmt::format(", {}", f.value);
            continue;
        case http::FieldKind::content_length:
            if (!drop_length && !options.lists(f.name))
                add_content_length(fields, out, f, request_.framing.content_length);
            continue;
        case http::FieldKind::other:
        case http::FieldKind::unclassified: // kind_of() never answers this
            break;
        }
        if (options.lists(f.name))
            continue;
        fields.add(f);
    }
    fields.flush();
    if (!request_.has_host) {
        // HTTP/1.0 lets a client leave Host out; HTTP/1.1, which goes up, requires it (RFC 9112
        // §3.2): the name the client would have needed to reach this server.
        const std::string& host = pool_->config().host;
        append_field(out, "Host", host.empty() ? inflight_.peer()->entry.address : host);
    }
    if (xff.empty())
        append_field(out, "X-Forwarded-For", bare_ip);
    else
        append_field(out, "X-Forwarded-For", fmt::format("{}, {}", xff, bare_ip));
    std::string_view scheme = stream_.tls ? "https" : "http";
    append_field(out, "X-Forwarded-Proto", xfp.empty() ? scheme : std::string_view(xfp));
    if (!request_.host.empty() || !xfh.empty())
        append_field(out, "X-Forwarded-Host", xfh.empty() ? request_.host : std::string_view(xfh));
    if (cfg.forwarding.forwarded) {
        bool v6 = client_ip.find(':') != std::string_view::npos;
        std::string element = fmt::format("for={}{}{};proto={}", v6 ? "\"" : "", client_ip,
                                          v6 ? "\"" : "", scheme);
        if (!request_.host.empty())
            element += fmt::format(";host=\"{}\"", request_.host);
        append_field(out, "Forwarded", fwd.empty() ? element : fmt::format("{}, {}", fwd, element));
    }
    if (request_.framing.upgrade) {
        for (const auto& f : request_.fields)
            if (http::iequals(f.name, "upgrade"))
                append_field(out, "Upgrade", f.value);
        out.append("Connection: upgrade\r\n");
    }
    if (held && (request_.has_body() || !request_body_out_.empty()))
        append_field(out, "Content-Length", std::to_string(request_body_out_.size()));
    else if (request_.framing.chunked || request_rechunked())
        append_field(out, "Transfer-Encoding", "chunked");
    out.append("\r\n");
}

void ClientConnection::send_request_head() {
    build_request_head();
    std::array<asio::const_buffer, 2> buffers{asio::buffer(out_head_), asio::const_buffer()};
    pending_consume_ = 0;
    if (request_held_) {
        buffers[1] = asio::buffer(request_body_out_);
    } else if (request_unchecked_ && !request_body_out_.empty()) {
        // The part a filter held and judged goes first: as it came for a Content-Length body,
        // as one chunk of a re-chunked one.
        buffers[1] = asio::buffer(request_body_out_);
        if (request_.framing.chunked) {
            request_chunk_ = fmt::format("{:x}\r\n", request_body_out_.size());
            request_chunk_.append(request_body_out_);
            request_chunk_.append(request_body_done_ ? "\r\n0\r\n\r\n" : "\r\n");
            buffers[1] = asio::buffer(request_chunk_);
        }
    } else if (replay_body_kept_) {
        buffers[1] = asio::buffer(replay_body_); // this request's body went up whole before
    } else if (!request_body_done_ && !in_.empty()) {
        size_t n = 0;
        std::string_view forward;
        if (!feed_request_body(n, forward))
            return;
        buffers[1] = asio::buffer(forward.data(), forward.size());
        pending_consume_ = n;
        // On a reused connection the server may have closed it just as this went up (a
        // keep-alive timer's race). A whole body of a request that may be replayed is kept, so
        // the stale-connection retry can send it again; bounded by the client buffer.
        if (request_body_done_ && upstream_->requests > 0 &&
            (idempotent(request_.method) || pool_->config().retry_non_idempotent)) {
            replay_body_.assign(forward);
            replay_body_kept_ = true;
        }
    }
    request_bytes_sent_ = true;
    size_t total = asio::buffer_size(buffers);
    error_code wec;
    if (upstream_->transport.try_write(buffers, wec) == total && !wec) {
        // Whole request out now: go on in this call chain, so the response read is queued
        // before the event loop can see the answer arrive (Transport::async_read_answer).
        return on_upstream_written(wec, true);
    }
    if (wec)
        return asio::post(worker_.io().get_executor(),
                          recycled([self = shared_from_this(), wec] {
                              self->on_upstream_written(wec);
                          }));
    timeout_ = Timeout::upstream_idle;
    watchdog_.arm(pool_->config().idle_timeout, *this);
    asio::async_write(upstream_->transport, buffers,
                      [self = shared_from_this()](const error_code& ec, size_t) {
                          self->on_upstream_written(ec);
                      });
}

void ClientConnection::write_request_body_chunk() {
    size_t n = 0;
    std::string_view forward;
    if (!feed_request_body(n, forward))
        return;
    if (n == 0 && !request_body_done_)
        return send_request_body();
    pending_consume_ = n;
    timeout_ = Timeout::upstream_idle;
    watchdog_.arm(pool_->config().idle_timeout, *this);
    asio::async_write(upstream_->transport, asio::const_buffer(forward.data(), forward.size()),
                      [self = shared_from_this()](const error_code& ec, size_t) {
                          self->on_upstream_written(ec);
                      });
}

void ClientConnection::on_upstream_written(const error_code& ec, bool sent_now) {
    watchdog_.disarm();
    Timeout was = std::exchange(timeout_, Timeout::none);
    if (closing_)
        return;
    if (ec) {
        if (was == Timeout::upstream_idle && ec == asio::error::operation_aborted)
            last_failure_timeout_ = true;
        else if (retry_stale_connection())
            return;
        return attempt_failed(last_failure_timeout_ ? GH_OUTCOME_TIMEOUT : GH_OUTCOME_RESET, true,
                              "writing to upstream failed");
    }
    if (pending_consume_) {
        timing_.bytes_in += pending_consume_;
        in_.consume(pending_consume_);
        pending_consume_ = 0;
        request_body_started_ = true;
    }
    if (!request_body_done_)
        return in_.empty() ? send_request_body() : write_request_body_chunk();
    read_response(sent_now);
}

void ClientConnection::send_request_body() {
    timeout_ = Timeout::body_idle;
    watchdog_.arm(config_->timeouts.body_idle, *this);
    in_.compact();
    transport_.async_read_some(asio::buffer(in_.space(), in_.space_size()),
                            [self = shared_from_this()](const error_code& ec, size_t n) {
                                self->on_request_body_read(ec, n);
                            });
}

void ClientConnection::on_request_body_read(const error_code& ec, size_t n) {
    watchdog_.disarm();
    if (ec) {
        if (ec == asio::error::operation_aborted && response_started_)
            return; // the watchdog replied 408
        termination_ = Termination::client_abort;
        request_body_done_ = true;
        return close();
    }
    timeout_ = Timeout::none;
    in_.commit(n);
    write_request_body_chunk();
}

} // namespace gatehouse::net
