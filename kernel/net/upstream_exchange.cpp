// The upstream side of a request: peer selection, pooled or new connections, retries, the
// request head and body going up, the response head and body coming back.
#include "net/client_connection.hpp"

#include "http/status.hpp"
#include "log.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <sys/ioctl.h>
#include <sys/socket.h>

namespace gatehouse::net {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

constexpr size_t response_buffer = 128 * 1024;

bool idempotent(std::string_view method) {
    // RFC 9110 §9.2.2
    for (std::string_view m : {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
        if (method == m)
            return true;
    return false;
}

// A pooled connection the server has closed shows EOF (or an error) to a non-blocking peek.
bool still_open(Transport& transport) {
    // TLS may have unread records (a late session ticket) on a healthy connection: no peek
    // there; the stale-connection replay covers it.
    if (transport.tls())
        return true;
    char byte;
    ssize_t n = ::recv(transport.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

// Names listed in Connection headers: hop-by-hop for this message only (RFC 9110 §7.6.1).
void connection_options(const std::vector<http::Field>& fields,
                        std::vector<std::string_view>& out) {
    out.clear();
    for (const auto& f : fields)
        if (http::iequals(f.name, "connection"))
            http::for_each_token(f.value, [&](std::string_view t) { out.push_back(t); });
}

bool listed(const std::vector<std::string_view>& names, std::string_view name) {
    for (auto n : names)
        if (http::iequals(n, name))
            return true;
    return false;
}

// After a read completes, takes what else has arrived since, without waiting, so a body goes
// out in few large writes rather than many small ones (each small write also wakes the client
// once more). Returns whether more bytes are still waiting (the buffer filled up first): body
// filters then need not flush (GH_CHUNK_MORE). Plain TCP only: a TLS stream's records go
// through its own buffer, and "nothing known to be waiting" is the safe answer there. An error
// or EOF here is left for the next read to report.
bool top_up(Transport& transport, Buffer& buf) {
    if (transport.tls())
        return false;
    int fd = transport.socket().native_handle();
    while (buf.space_size() > 0) {
        ssize_t n = ::recv(fd, buf.space(), buf.space_size(), MSG_DONTWAIT);
        if (n <= 0)
            return false;
        buf.commit(static_cast<size_t>(n));
    }
    int waiting = 0;
    return ::ioctl(fd, FIONREAD, &waiting) == 0 && waiting > 0;
}

void append_field(std::string& out, std::string_view name, std::string_view value) {
    size_t at = out.size();
    out.resize(at + name.size() + value.size() + 4);
    char* p = out.data() + at;
    std::memcpy(p, name.data(), name.size());
    p += name.size();
    *p++ = ':';
    *p++ = ' ';
    std::memcpy(p, value.data(), value.size());
    p += value.size();
    *p++ = '\r';
    *p = '\n';
}

// Appends header fields to a head being built. A field that is still its original
// "name: value" CRLF line in the stored head is copied from there, and consecutive such lines
// in one copy; any other (added or edited by a module, unusual whitespace) is formatted.
class FieldWriter {
public:
    FieldWriter(std::string& out, std::string_view stored)
        : out_(out), lo_(address(stored.data())), hi_(lo_ + stored.size()) {}
    FieldWriter(const FieldWriter&) = delete;
    FieldWriter& operator=(const FieldWriter&) = delete;
    ~FieldWriter() { flush(); }

    void add(const http::Field& f) {
        uintptr_t line = address(f.name.data());
        uintptr_t value = address(f.value.data());
        uintptr_t end = value + f.value.size() + 2;
        if (line >= lo_ && end <= hi_ && value == line + f.name.size() + 2) {
            const char* l = f.name.data();
            const char* e = f.value.data() + f.value.size();
            if (l[f.name.size()] == ':' && l[f.name.size() + 1] == ' ' && e[0] == '\r' &&
                e[1] == '\n') {
                if (!run_begin_ || run_end_ != l) {
                    flush();
                    run_begin_ = l;
                }
                run_end_ = e + 2;
                return;
            }
        }
        flush();
        append_field(out_, f.name, f.value);
    }
    void flush() {
        if (run_begin_)
            out_.append(run_begin_, run_end_);
        run_begin_ = run_end_ = nullptr;
    }

private:
    static uintptr_t address(const char* p) { return reinterpret_cast<uintptr_t>(p); }
    std::string& out_;
    uintptr_t lo_, hi_;
    const char* run_begin_ = nullptr;
    const char* run_end_ = nullptr;
};

} // namespace

bool ClientConnection::request_rechunked() const {
    return stream_.subscribed(GH_DIR_REQUEST) && !request_held_ && request_.has_body();
}

bool ClientConnection::request_replayable() const {
    return !request_bytes_sent_ || (idempotent(request_.method) && !request_body_started_);
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
    attempt_start_ = std::chrono::steady_clock::now();
    timing_.connect_start = attempt_start_;
    timing_.connected = timing_.first_byte = {};
    request_bytes_sent_ = false;
    // A pooled connection may have been closed by the server since; for a request we could not
    // replay, check first (one extra syscall) rather than risk a client-visible failure.
    auto c = worker_.connections().take(*pool_, peer->index);
    while (c && !idempotent(request_.method) && !still_open(c->transport))
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
    watchdog_.arm(pool_->config().connect_timeout, shared_from_this());
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
    watchdog_.arm(pool_->config().connect_timeout, shared_from_this());
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
    timing_.connected = std::chrono::steady_clock::now();
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
    // connection to the same server if the request itself is replayable.
    if (!upstream_ || upstream_->requests == 0 || stale_retried_ || !request_replayable() ||
        closing_)
        return false;
    stale_retried_ = true;
    log::debug("upstream {} {}: pooled connection was stale, retrying on a new one",
               pool_->name(), stream_.peer_address);
    upstream_.reset();
    request_bytes_sent_ = false;
    connect_peer();
    return true;
}

void ClientConnection::attempt_failed(uint32_t outcome, bool may_retry, const char* why) {
    auto latency = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - attempt_start_);
    if (upstream::Peer* peer = inflight_.peer())
        pool_->report(*peer, outcome, 0, static_cast<uint64_t>(latency.count()));
    if (outcome == GH_OUTCOME_TIMEOUT)
        last_failure_timeout_ = true;
    upstream_.reset();
    inflight_.release();
    if (may_retry && request_replayable() && !closing_)
        return next_attempt();
    fail_upstream(last_failure_timeout_ ? 504 : 502, why);
}

void ClientConnection::fail_upstream(unsigned status, const char* why) {
    termination_ = status == 504 ? Termination::timeout
                   : termination_ == Termination::upstream_reset ? Termination::upstream_reset
                                                                 : Termination::upstream_error;
    log::info("{} {} -> upstream {}: {} ({})", request_.method, stream_.path,
              pool_ ? pool_->name() : "-", status, why);
    abort_upstream();
    if (response_started_)
        return close();
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
    thread_local std::vector<std::string_view> options;
    options.clear();
    if (request_.framing.connection_options)
        connection_options(request_.fields, options);
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
        switch (http::classify(f.name)) {
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
            if (drop_length)
                continue;
            break;
        case http::FieldKind::other:
            break;
        }
        if (!options.empty() && listed(options, f.name))
            continue;
        fields.add(f);
    }
    fields.flush();
    append_field(out, "X-Forwarded-For", xff.empty() ? std::string(client_ip)
                                                     : fmt::format("{}, {}", xff, client_ip));
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
    if (held)
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
    } else if (!request_body_done_ && !in_.empty()) {
        size_t n = 0;
        std::string_view forward;
        if (!feed_request_body(n, forward))
            return;
        buffers[1] = asio::buffer(forward.data(), forward.size());
        pending_consume_ = n;
    }
    request_bytes_sent_ = true;
    size_t total = asio::buffer_size(buffers);
    error_code wec;
    if (upstream_->transport.try_write(buffers, wec) == total || wec)
        return asio::post(transport_.get_executor(),
                          [self = shared_from_this(), wec] { self->on_upstream_written(wec); });
    timeout_ = Timeout::upstream_idle;
    watchdog_.arm(pool_->config().idle_timeout, shared_from_this());
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
    watchdog_.arm(pool_->config().idle_timeout, shared_from_this());
    asio::async_write(upstream_->transport, asio::const_buffer(forward.data(), forward.size()),
                      [self = shared_from_this()](const error_code& ec, size_t) {
                          self->on_upstream_written(ec);
                      });
}

void ClientConnection::on_upstream_written(const error_code& ec) {
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
    read_response();
}

void ClientConnection::send_request_body() {
    timeout_ = Timeout::body_idle;
    watchdog_.arm(config_->timeouts.body_idle, shared_from_this());
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

// ---- response coming back -------------------------------------------------------------------

void ClientConnection::read_response() {
    response_parser_.emplace(response_);
    response_parser_->reset({config_->limits.max_response_header_bytes, 1000, 0, 0});
    if (request_.method == "HEAD")
        response_parser_->expect_no_body();
    // One buffer for the head and the body: a body read is as large as it can usefully be
    // (fewer, larger writes to the client), and pages the reads never touch cost no memory.
    upstream_->buffer.reserve(std::max<size_t>(response_buffer, config_->limits.max_response_header_bytes));
    timeout_ = Timeout::upstream_first_byte;
    watchdog_.arm(pool_->config().first_byte_timeout, shared_from_this());
    upstream_->buffer.compact();
    upstream_->transport.async_read_some(
        asio::buffer(upstream_->buffer.space(), upstream_->buffer.space_size()),
        [self = shared_from_this()](const error_code& ec, size_t n) { self->on_response_read(ec, n); });
}

void ClientConnection::on_response_read(const error_code& ec, size_t n) {
    if (closing_)
        return;
    if (ec) {
        Timeout was = std::exchange(timeout_, Timeout::none);
        watchdog_.disarm();
        bool nothing_yet = upstream_->buffer.empty();
        if (was == Timeout::upstream_first_byte && ec == asio::error::operation_aborted)
            return attempt_failed(GH_OUTCOME_TIMEOUT, nothing_yet, "upstream first byte timed out");
        if (nothing_yet && retry_stale_connection())
            return;
        termination_ = Termination::upstream_reset;
        return attempt_failed(GH_OUTCOME_RESET, nothing_yet,
                              nothing_yet ? "upstream closed the connection before responding"
                                          : "upstream closed the connection mid-header");
    }
    upstream_->buffer.commit(n);
    parse_response();
}

void ClientConnection::parse_response() {
    Buffer& buf = upstream_->buffer;
    for (;;) {
        error_code ec;
        size_t n = response_parser_->feed(buf.data(), buf.size(), ec);
        if (ec) {
            watchdog_.disarm();
            timeout_ = Timeout::none;
            log::info("upstream {} {}: invalid response: {}", pool_->name(), stream_.peer_address,
                      response_parser_->reject_reason());
            return attempt_failed(GH_OUTCOME_RESET, false, "invalid upstream response");
        }
        if (!response_parser_->is_header_done()) {
            if (buf.size() >= config_->limits.max_response_header_bytes || buf.full()) {
                watchdog_.disarm();
                timeout_ = Timeout::none;
                return attempt_failed(GH_OUTCOME_RESET, false, "upstream response header too large");
            }
            buf.compact();
            upstream_->transport.async_read_some(
                asio::buffer(buf.space(), buf.space_size()),
                [self = shared_from_this()](const error_code& ec, size_t n) {
                    self->on_response_read(ec, n);
                });
            return;
        }
        if (response_.status == 101 && request_.framing.upgrade) {
            // The upgrade the client asked for: this is the final response, then a tunnel.
            response_store_.assign(buf.data(), n);
            http::rebase_views(response_, buf.data(), response_store_.data(), n);
            buf.consume(n);
            timing_.first_byte = std::chrono::steady_clock::now();
            break;
        }
        if (response_.status >= 100 && response_.status < 200) {
            // Interim responses (100, 103...) are dropped: we answered Expect ourselves. A 101
            // nobody asked for is a broken upstream.
            buf.consume(n);
            if (response_.status == 101)
                return attempt_failed(GH_OUTCOME_RESET, false, "upstream switched protocols unasked");
            response_parser_.emplace(response_);
            response_parser_->reset({config_->limits.max_response_header_bytes, 1000, 0, 0});
            if (request_.method == "HEAD")
                response_parser_->expect_no_body();
            continue;
        }
        timing_.first_byte = std::chrono::steady_clock::now();
        generation_->metrics().upstream_attempt(
            worker_.id(), pool_->index(),
            static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                      timing_.first_byte - attempt_start_).count()));
        response_store_.assign(buf.data(), n);
        http::rebase_views(response_, buf.data(), response_store_.data(), n);
        buf.consume(n);
        upstream_more_ = response_.framing.has_content_length &&
                         response_.framing.content_length > buf.size() &&
                         top_up(upstream_->transport, buf);
        break;
    }
    watchdog_.disarm();
    timeout_ = Timeout::none;
    auto latency = std::chrono::duration_cast<std::chrono::microseconds>(timing_.first_byte -
                                                                         attempt_start_);
    pool_->report(*inflight_.peer(), response_.status >= 500 ? GH_OUTCOME_HTTP_5XX : GH_OUTCOME_SUCCESS,
                  response_.status, static_cast<uint64_t>(latency.count()));
    on_response_head();
}

void ClientConnection::on_response_head() {
    stream_.phase = GH_PHASE_RESPONSE_HEADERS;
    filter_index_ = 0;
    if (stream_.route->phase_mask & GH_PHASE_BIT(GH_PHASE_RESPONSE_HEADERS))
        return run_filters();
    continue_after(GH_PHASE_RESPONSE_HEADERS);
}

void ClientConnection::build_response_head() {
    bool client_10 = request_.version == 10;
    bool filtered = stream_.subscribed(GH_DIR_RESPONSE);
    if (response_.no_body)
        response_mode_ = BodyMode::raw;
    else if (client_10 && (response_.framing.chunked || filtered))
        response_mode_ = BodyMode::dechunk;
    else if (filtered)
        response_mode_ = BodyMode::rechunk;
    else
        response_mode_ = BodyMode::raw;
    bool length_known = response_.no_body || (response_mode_ == BodyMode::raw &&
                                              (response_.framing.has_content_length ||
                                               (response_.framing.chunked && !client_10)));
    if (!length_known && response_mode_ != BodyMode::rechunk)
        keep_alive_ = false; // the body ends when we close
    if (draining.load(std::memory_order_relaxed))
        keep_alive_ = false; // shutting down: tell the client not to reuse the connection
    if (response_mode_ != BodyMode::raw) {
        body_capture_ = true;
        response_parser_->set_body_sink(this);
    }

    thread_local std::vector<std::string_view> options;
    options.clear();
    if (response_.framing.connection_options)
        connection_options(response_.fields, options);
    std::string& out = out_head_;
    out.clear();
    // Upstream statuses are 100-599 (the parser refuses others).
    char status[] = {'H', 'T', 'T', 'P', '/', '1', '.', '1', ' ',
                     static_cast<char>('0' + response_.status / 100),
                     static_cast<char>('0' + response_.status / 10 % 10),
                     static_cast<char>('0' + response_.status % 10), ' '};
    out.append(status, sizeof status);
    out.append(response_.reason.empty() ? http::reason(response_.status) : response_.reason);
    out.append("\r\n");
    bool drop_length = response_mode_ != BodyMode::raw;
    FieldWriter fields(out, response_store_);
    for (const auto& f : response_.fields) {
        http::FieldKind kind = http::classify(f.name);
        if (kind == http::FieldKind::hop_by_hop ||
            (drop_length && kind == http::FieldKind::content_length) ||
            (!options.empty() && listed(options, f.name)))
            continue;
        fields.add(f);
    }
    fields.flush();
    if ((response_mode_ == BodyMode::raw && response_.framing.chunked && !response_.no_body) ||
        response_mode_ == BodyMode::rechunk)
        out.append("Transfer-Encoding: chunked\r\n");
    if (response_.status == 101) {
        // Upgrade and Connection are hop-by-hop, but a 101 must carry them (RFC 9110 §7.8).
        for (const auto& f : response_.fields)
            if (http::iequals(f.name, "upgrade"))
                append_field(out, "Upgrade", f.value);
        out.append("Connection: upgrade\r\n");
    } else if (!keep_alive_) {
        out.append("Connection: close\r\n");
    } else if (client_10) {
        out.append("Connection: keep-alive\r\n");
    }
    out.append("\r\n");
}

void ClientConnection::write_response_chunk() {
    Buffer& buf = upstream_->buffer;
    // A member, not a local: async_write keeps referring to the sequence across partial writes.
    auto& buffers = out_buffers_;
    buffers = {};
    size_t count = 0;
    pending_consume_ = 0;
    bool head_pending = !response_started_;
    if (head_pending)
        buffers[count++] = asio::buffer(out_head_);
    if (!response_body_done_ && (!buf.empty() || response_parser_->is_done() || upstream_eof_ ||
                                 !stream_.peeked.empty())) {
        error_code ec;
        decoded_.clear();
        decoded_.swap(stream_.peeked); // bytes a peek read ahead go first
        size_t n = buf.empty() ? 0 : response_parser_->feed(buf.data(), buf.size(), ec);
        if (ec) {
            log::info("upstream {} {}: invalid response body: {}", pool_->name(),
                      stream_.peer_address, response_parser_->reject_reason());
            if (head_pending)
                return fail_upstream(502, "invalid upstream response body");
            termination_ = Termination::upstream_error;
            return close();
        }
        response_body_done_ = response_parser_->is_done();
        stream_.response_body_complete = response_body_done_;
        pending_consume_ = n;
        if (response_mode_ == BodyMode::raw) {
            buffers[count++] = asio::const_buffer(buf.data(), n);
        } else {
            std::string_view data = decoded_;
            if (stream_.subscribed(GH_DIR_RESPONSE) &&
                !filter_body(GH_DIR_RESPONSE, data, response_body_done_, data)) {
                termination_ = Termination::upstream_error;
                return close();
            }
            if (response_mode_ == BodyMode::rechunk) {
                // RFC 9112 §7.1: size line, data, CRLF; "0" CRLF CRLF after the last one.
                static constexpr std::string_view suffixes[] = {"", "\r\n", "0\r\n\r\n",
                                                                "\r\n0\r\n\r\n"};
                chunk_prefix_.clear();
                if (!data.empty()) {
                    fmt::format_to(std::back_inserter(chunk_prefix_), "{:x}\r\n", data.size());
                    buffers[count++] = asio::buffer(chunk_prefix_);
                    buffers[count++] = asio::buffer(data.data(), data.size());
                }
                std::string_view suffix =
                    suffixes[(data.empty() ? 0 : 1) + (response_body_done_ ? 2 : 0)];
                if (!suffix.empty())
                    buffers[count++] = asio::buffer(suffix.data(), suffix.size());
            } else {
                buffers[count++] = asio::buffer(data.data(), data.size());
            }
        }
    }
    if (response_.no_body)
        response_body_done_ = true;
    response_started_ = true;
    std::span<asio::const_buffer> pending(buffers.data(), count);
    size_t total = asio::buffer_size(pending);
    error_code wec;
    size_t sent = transport_.try_write(pending, wec);
    timing_.bytes_out += sent;
    if (wec || (sent == total && total > 0)) {
        // Continue from the event loop, as a completion would: by then the client has often
        // sent its next request (and the upstream its next bytes), so the next read finds
        // data instead of costing a recv that says EAGAIN.
        return asio::post(transport_.get_executor(),
                          [self = shared_from_this(), wec] { self->on_response_written(wec); });
    }
    timeout_ = Timeout::client_write;
    watchdog_.arm(config_->timeouts.client_write, shared_from_this());
    asio::async_write(transport_, std::span<const asio::const_buffer>(pending),
                      [self = shared_from_this()](const error_code& ec, size_t n) {
                          self->timing_.bytes_out += n;
                          self->on_response_written(ec);
                      });
}

void ClientConnection::on_response_written(const error_code& ec) {
    watchdog_.disarm();
    Timeout was = std::exchange(timeout_, Timeout::none);
    if (ec) {
        termination_ = was == Timeout::client_write && ec == asio::error::operation_aborted
                           ? Termination::timeout
                           : Termination::client_abort;
        return close();
    }
    upstream_->buffer.consume(pending_consume_);
    pending_consume_ = 0;
    if (response_.status == 101)
        return start_tunnel();
    if (response_body_done_)
        return response_complete();
    // What is left in the buffer is an incomplete piece (a chunk header): read more.
    if (upstream_->buffer.full()) {
        termination_ = Termination::upstream_error;
        return close();
    }
    read_response_body();
}

void ClientConnection::read_response_body() {
    Buffer& buf = upstream_->buffer;
    buf.compact();
    timeout_ = Timeout::upstream_idle;
    watchdog_.arm(pool_->config().idle_timeout, shared_from_this());
    upstream_->transport.async_read_some(
        asio::buffer(buf.space(), buf.space_size()),
        [self = shared_from_this()](const error_code& ec, size_t n) {
            self->on_response_body_read(ec, n);
        });
}

void ClientConnection::on_response_body_read(const error_code& ec, size_t n) {
    watchdog_.disarm();
    Timeout was = std::exchange(timeout_, Timeout::none);
    if (closing_)
        return;
    if (ec) {
        if (ec == asio::error::eof && response_.close_delimited) {
            upstream_eof_ = true;
            upstream_more_ = false;
            error_code put_ec;
            response_parser_->put_eof(put_ec);
            return write_response_chunk();
        }
        termination_ = was == Timeout::upstream_idle ? Termination::timeout
                                                     : Termination::upstream_error;
        log::info("{} {} -> upstream {} {}: response body interrupted: {}", request_.method,
                  stream_.path, pool_->name(), stream_.peer_address,
                  was == Timeout::upstream_idle ? "idle timeout" : ec.message());
        return close();
    }
    upstream_->buffer.commit(n);
    upstream_more_ = !response_.close_delimited && top_up(upstream_->transport, upstream_->buffer);
    write_response_chunk();
}

// A filter asked to see the first bytes of the response body before it decides (body_peek,
// then GH_HOLD in RESPONSE_HEADERS). Decode what the buffer holds into stream_.peeked and read
// on until the filter's target, the end of the body, or a pause: some body arrived and then
// nothing for peek_pause. Then run the filter again. The peeked bytes go through the body
// filters ahead of the rest (write_response_chunk), so the response is re-framed.
void ClientConnection::peek_response(bool first, bool paused) {
    // Long enough for the pieces of one burst written separately (a head, a chunk, the last
    // chunk), short enough to be no delay for a stream that really pauses.
    constexpr std::chrono::milliseconds peek_pause{10};
    body_capture_ = true;
    response_parser_->set_body_sink(this);
    Buffer& buf = upstream_->buffer;
    if (first && !response_.close_delimited)
        upstream_more_ = top_up(upstream_->transport, buf); // what came with the head, and after
    if (!buf.empty()) {
        decoded_.clear();
        error_code ec;
        size_t n = response_parser_->feed(buf.data(), buf.size(), ec);
        if (ec) {
            log::info("upstream {} {}: invalid response body: {}", pool_->name(),
                      stream_.peer_address, response_parser_->reject_reason());
            return fail_upstream(502, "invalid upstream response body");
        }
        buf.consume(n);
        stream_.peeked.append(decoded_);
    }
    stream_.response_body_complete = response_parser_->is_done();
    if (stream_.response_body_complete || upstream_eof_ ||
        stream_.peeked.size() >= stream_.peek_bytes || paused) {
        stream_.peek_done = true;
        filter_index_ = static_cast<size_t>(held_by_);
        held_by_ = -1;
        return run_filters();
    }
    if (buf.full())
        return fail_upstream(502, "upstream chunk header too large");
    buf.compact();
    if (!stream_.peeked.empty() && !upstream_more_) {
        timeout_ = Timeout::peek_pause;
        watchdog_.arm(peek_pause, shared_from_this());
    } else {
        timeout_ = Timeout::upstream_idle;
        watchdog_.arm(pool_->config().idle_timeout, shared_from_this());
    }
    upstream_->transport.async_read_some(
        asio::buffer(buf.space(), buf.space_size()),
        [self = shared_from_this()](const error_code& ec, size_t n) { self->on_peek_read(ec, n); });
}

void ClientConnection::on_peek_read(const error_code& ec, size_t n) {
    watchdog_.disarm();
    Timeout was = std::exchange(timeout_, Timeout::none);
    if (closing_)
        return;
    if (ec) {
        if (was == Timeout::peek_pause && ec == asio::error::operation_aborted)
            return peek_response(false, true); // the upstream paused: decide with what is here
        if (ec == asio::error::eof && response_.close_delimited) {
            upstream_eof_ = true;
            upstream_more_ = false;
            error_code put_ec;
            response_parser_->put_eof(put_ec);
            return peek_response(false);
        }
        if (was == Timeout::upstream_idle && ec == asio::error::operation_aborted)
            return fail_upstream(504, "upstream idle timeout before the response started");
        termination_ = Termination::upstream_reset;
        return fail_upstream(502, "upstream closed the connection mid-body");
    }
    upstream_->buffer.commit(n);
    upstream_more_ = !response_.close_delimited && top_up(upstream_->transport, upstream_->buffer);
    peek_response(false);
}

void ClientConnection::response_complete() {
    inflight_.release();
    bool reusable = upstream_ && response_.framing.keep_alive && !response_.close_delimited &&
                    request_body_done_ && response_parser_->is_done() && !upstream_eof_ &&
                    upstream_->buffer.empty();
    if (reusable) {
        ++upstream_->requests;
        // The buffer goes back to the worker's cache between responses: the next exchange, on
        // whichever connection, takes the most recently used one, still in the CPU cache,
        // instead of each pooled connection keeping 128 KiB of its own cold.
        upstream_->buffer.release();
        worker_.connections().put(std::move(upstream_));
    }
    upstream_.reset();
    finish_request();
}

} // namespace gatehouse::net
