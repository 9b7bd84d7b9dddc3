// The client side of a connection: request heads, filters, local replies, keep-alive.
#include "net/client_connection.hpp"

#include "http/path.hpp"
#include "http/status.hpp"
#include "log.hpp"
#include "modules/services.hpp"
#include "net/head_fields.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <fmt/format.h>

namespace gatehouse::net {

namespace asio = boost::asio;
using boost::system::error_code;

std::atomic<bool> draining{false};
// How long a keep-alive connection keeps its buffers while waiting for the next request.
constexpr std::chrono::milliseconds idle_release{1000};
std::atomic<uint64_t> current_generation_number{1};
metrics::KernelMetrics* kernel_metrics = nullptr;

namespace {
// `out` = the Host header value without the port, lower-case: "Example.com:8080" ->
// "example.com", "[::1]:80" -> "[::1]". Into the connection's string: no allocation per request.
void assign_host_without_port(std::string& out, std::string_view host) {
    if (!host.empty() && host[0] == '[') {
        size_t close = host.find(']');
        out.assign(host.substr(0, close == std::string_view::npos ? host.size() : close + 1));
    } else {
        out.assign(host.substr(0, host.find(':')));
    }
    for (auto& c : out)
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c + 32);
}
} // namespace

ClientConnection::ClientConnection(Worker& worker, std::shared_ptr<const Generation> generation,
                                   asio::ip::tcp::socket socket,
                                   std::shared_ptr<const tls::CertStore> tls)
    : worker_(worker), generation_(std::move(generation)), config_(&generation_->config()),
      transport_(std::move(socket)), watchdog_(transport_.socket().get_executor()),
      tls_store_(std::move(tls)) {
    worker_.connection_opened(this);
    if (kernel_metrics)
        kernel_metrics->shard(worker_.id()).connection_opened();
    error_code ec;
    transport_.socket().set_option(asio::ip::tcp::no_delay(true), ec);
    auto remote = transport_.socket().remote_endpoint(ec);
    if (!ec) {
        auto address = remote.address();
        stream_.client_address = address.is_v6()
                                     ? fmt::format("[{}]:{}", address.to_string(), remote.port())
                                     : fmt::format("{}:{}", address.to_string(), remote.port());
        // Whether X-Forwarded-* from this peer are believed: decided once per connection.
        for (const auto& cidr : config_->forwarding.trusted_proxies) {
            if (address.is_v4()) {
                auto b = address.to_v4().to_bytes();
                trusted_peer_ = trusted_peer_ || config::cidr_contains(cidr, b.data(), false);
            } else {
                auto b = address.to_v6().to_bytes();
                trusted_peer_ = trusted_peer_ || config::cidr_contains(cidr, b.data(), true);
            }
        }
    }
    stream_.connection = this;
    stream_.request = &request_;
    stream_.response = &response_;
}

ClientConnection::~ClientConnection() {
    worker_.connection_closed(this);
    if (kernel_metrics)
        kernel_metrics->shard(worker_.id()).connection_closed();
}

void ClientConnection::start() {
    if (!tls_store_)
        return read_request();
    // The handshake counts against the header timeout, like the head that follows it.
    stream_.tls = true;
    transport_.enable_tls(tls_store_->default_context());
    timeout_ = Timeout::header;
    watchdog_.arm(config_->timeouts.header, *this);
    transport_.tls_stream_ref().async_handshake(
        asio::ssl::stream_base::server, [self = shared_from_this()](const error_code& ec) {
            self->on_handshake(ec);
        });
}

void ClientConnection::on_handshake(const error_code& ec) {
    watchdog_.disarm();
    timeout_ = Timeout::none;
    if (ec) {
        log::debug("{}: TLS handshake failed: {}", stream_.client_address, ec.message());
        if (kernel_metrics)
            kernel_metrics->shard(worker_.id()).tls_handshake_failed();
        if (plain_http_on_tls(ec))
            return reply_plain_http_on_tls();
        request_body_done_ = true; // nothing to drain
        return close();
    }
    if (kernel_metrics)
        kernel_metrics->shard(worker_.id()).tls_handshake(SSL_session_reused(transport_.ssl()) == 1);
    read_request();
}

bool ClientConnection::plain_http_on_tls(const error_code& ec) {
    // OpenSSL recognises a plain HTTP request in place of a ClientHello (its first record
    // starts "GET ", "POST ", "HEAD ", "PUT " or "CONNE"); other bytes that are no TLS record
    // at all read as a wrong version number.
    if (ec.category() != asio::error::get_ssl_category())
        return false;
    int reason = ERR_GET_REASON(static_cast<unsigned long>(ec.value()));
    return reason == SSL_R_HTTP_REQUEST || reason == SSL_R_HTTPS_PROXY_REQUEST ||
           reason == SSL_R_WRONG_VERSION_NUMBER;
}

void ClientConnection::reply_plain_http_on_tls() {
    // As nginx: a plain-HTTP client gets an answer it can read, not an empty reply. Written on
    // the raw socket; the connection then closes, draining what the client still sends.
    static constexpr std::string_view reply =
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 46\r\n"
        "Connection: close\r\n\r\nThis port speaks HTTPS: use an https:// URL.\r\n";
    static_assert(reply.size() - reply.find("\r\n\r\n") - 4 == 46);
    log::debug("{}: plain HTTP on a TLS listener: 400", stream_.client_address);
    timeout_ = Timeout::client_write;
    watchdog_.arm(config_->timeouts.client_write, *this);
    asio::async_write(transport_.socket(), asio::buffer(reply.data(), reply.size()),
                      [self = shared_from_this()](const error_code&, size_t) {
                          self->watchdog_.disarm();
                          self->timeout_ = Timeout::none;
                          self->close(); // request_body_done_ is false: a lingering close
                      });
}

// ---- reading requests ----------------------------------------------------------------------

void ClientConnection::read_request() {
    if (!in_.empty())
        return parse_request();
    // Between requests only the keep-alive timeout runs; the header deadline starts with the
    // first byte (and covers the whole head, however slowly it trickles in). A plain-TCP
    // connection idle for idle_release gives its buffers back and waits without them.
    auto keepalive = config_->timeouts.keepalive;
    if (!requests_served_) {
        timeout_ = Timeout::header;
        watchdog_.arm(config_->timeouts.header, *this);
    } else if (!transport_.tls() && keepalive > idle_release) {
        timeout_ = Timeout::idle;
        idle_deadline_ = Watchdog::Clock::now() + keepalive;
        watchdog_.arm(idle_release, *this);
    } else {
        timeout_ = Timeout::keepalive;
        watchdog_.arm(keepalive, *this);
    }
    in_.reserve(std::max<size_t>(16 * 1024, config_->limits.max_header_bytes));
    in_.compact();
    // The next request is often here already (the client sent it as our response arrived): read
    // it now. Otherwise the read waits for its bytes without a recv that says EAGAIN first; no
    // write to the client is in flight between requests (Transport::async_read_draining).
    auto space = asio::buffer(in_.space(), in_.space_size());
    error_code ec;
    if (size_t n = transport_.try_read(space, ec); n || ec)
        return on_read_request(ec, n);
    transport_.async_read_draining(space, [self = shared_from_this()](const error_code& ec, size_t n) {
        self->on_read_request(ec, n);
    });
}

void ClientConnection::on_read_request(const error_code& ec, size_t n) {
    if (ec) {
        if (ec == asio::error::operation_aborted && response_started_)
            return; // the watchdog cancelled the read and is replying
        if (ec == asio::error::operation_aborted && idle_parked_ && !closing_)
            return park();
        return close();
    }
    in_.commit(n);
    idle_parked_ = false;
    if (timeout_ == Timeout::keepalive || timeout_ == Timeout::idle) {
        timeout_ = Timeout::header;
        watchdog_.arm(config_->timeouts.header, *this);
    }
    parse_request();
}

void ClientConnection::parse_request() {
    bool first_bytes = !timing_.started;
    if (first_bytes) {
        timing_ = {};
        timing_.started = true;
        timing_.start = std::chrono::steady_clock::now();
    }
    if (!request_parser_) {
        request_parser_.emplace(request_);
        request_parser_->reset({config_->limits.max_header_bytes, config_->limits.max_headers,
                                config_->limits.max_uri_bytes, config_->limits.max_body_bytes});
    }
    error_code ec;
    size_t n = request_parser_->feed(in_.data(), in_.size(), ec);
    if (ec) {
        log::debug("{}: request rejected: {}", stream_.client_address,
                   request_parser_->reject_reason());
        if (kernel_metrics)
            kernel_metrics->shard(worker_.id()).rejected(http::status_for(request_parser_->reject()));
        termination_ = Termination::rejected;
        return reply(http::status_for(request_parser_->reject()), {}, true);
    }
    if (!request_parser_->is_header_done()) {
        if (in_.size() >= config_->limits.max_header_bytes || in_.full()) {
            termination_ = Termination::rejected;
            return reply(431, {}, true);
        }
        in_.compact();
        transport_.async_read_some(asio::buffer(in_.space(), in_.space_size()),
                                [self = shared_from_this()](const error_code& ec, size_t n) {
                                    self->on_read_request(ec, n);
                                });
        return;
    }
    // A head that came whole with the first read took no time to arrive (one clock read less).
    timing_.head = first_bytes ? timing_.start : std::chrono::steady_clock::now();
    timing_.bytes_in += n;
    request_store_.assign(in_.data(), n);
    http::rebase_views(request_, in_.data(), request_store_.data(), n);
    in_.consume(n);
    watchdog_.disarm();
    timeout_ = Timeout::none;
    // Until on_request_head() returns, it is still the moment the head arrived: an upstream
    // attempt started in that call takes timing_.head as its start (one clock read less).
    in_head_call_ = true;
    on_request_head();
    in_head_call_ = false;
}

bool ClientConnection::prepare_stream() {
    std::string_view target = request_.target;
    std::string_view authority;
    // RFC 9112 §3.2.2: in absolute-form the target's authority replaces Host.
    if (target.size() > 7 && (http::iequals(target.substr(0, 7), "http://") ||
                              (target.size() > 8 && http::iequals(target.substr(0, 8), "https://")))) {
        size_t start = target.find("//") + 2;
        size_t slash = target.find('/', start);
        authority = target.substr(start, slash == std::string_view::npos ? std::string_view::npos
                                                                          : slash - start);
        target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
        if (authority.empty() || authority.find('@') != std::string_view::npos)
            return false;
        request_.host = stream_.keep(authority);
        std::erase_if(request_.fields, [](const http::Field& f) { return http::iequals(f.name, "host"); });
        request_.fields.push_back({"Host", request_.host});
    }
    if (!http::normalise_target(target, stream_.path, stream_.query))
        return false;
    stream_.normalised_target = stream_.path;
    if (!stream_.query.empty() || target.find('?') != std::string_view::npos) {
        stream_.normalised_target += '?';
        stream_.normalised_target += stream_.query;
    }
    assign_host_without_port(stream_.host, request_.host);
    return true;
}

void ClientConnection::on_request_head() {
    keep_alive_ = request_.framing.keep_alive;
    request_body_done_ = !request_.has_body();
    if (!prepare_stream()) {
        termination_ = Termination::rejected;
        return reply(400, {}, true);
    }
    if (request_.expect_other)
        return reply(417, {}, true);
    stream_.phase = GH_PHASE_REQUEST_HEADERS;
    filter_index_ = 0;
    if (generation_->early_filters().empty())
        return continue_after(GH_PHASE_REQUEST_HEADERS);
    run_filters();
}

// ---- replies and the end of a request -------------------------------------------------------

void ClientConnection::send_continue_then_upstream() {
    // We answer Expect: 100-continue ourselves once the request is known to go upstream, and do
    // not forward it (like nginx): the upstream gets the body as soon as it is here.
    if (request_.expect_continue && request_.version == 11 && !request_body_done_ &&
        in_.empty() && !request_body_started_) {
        static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
        timeout_ = Timeout::client_write;
        watchdog_.arm(config_->timeouts.client_write, *this);
        asio::async_write(transport_, asio::buffer(cont.data(), cont.size()),
                          [self = shared_from_this()](const error_code& ec, size_t) {
                              self->watchdog_.disarm();
                              self->timeout_ = Timeout::none;
                              if (ec)
                                  return self->close();
                              self->start_upstream();
                          });
        return;
    }
    start_upstream();
}

void ClientConnection::reply(unsigned status, std::string_view body, bool close) {
    stream_.has_reply = true;
    stream_.reply_status = status;
    stream_.reply_headers.clear();
    if (body.empty())
        stream_.reply_body = fmt::format("{} {}\n", status, http::reason(status));
    else
        stream_.reply_body.assign(body);
    stream_.reply_headers.push_back({"Content-Type", "text/plain"});
    if (close)
        keep_alive_ = false;
    if (termination_ == Termination::completed)
        termination_ = Termination::local_reply;
    send_reply();
}

void ClientConnection::send_reply() {
    if (response_started_)
        return close();
    // A reply that replaces an upstream response: that response's body is never read.
    abort_upstream();
    // A reply before the request body was read: the connection cannot be reused safely.
    if (!request_body_done_)
        keep_alive_ = false;
    out_head_.clear();
    // 200..599: respond() checks.
    append_status_line(out_head_, stream_.reply_status, http::reason(stream_.reply_status));
    for (const auto& f : stream_.reply_headers)
        append_field(out_head_, f.name, f.value);
    bool head_request = request_.method == "HEAD";
    // 304 and 204 carry no body and no Content-Length (a 304's would describe the selected
    // representation, which a local reply does not know).
    bool bodiless = stream_.reply_status == 304 || stream_.reply_status == 204;
    if (stream_.reply_streamed) {
        bool known = stream_.reply_length != GH_LENGTH_UNKNOWN;
        streamed_ = {};
        streamed_.active = true;
        streamed_.discard = bodiless || head_request;
        streamed_.chunked = !known && !streamed_.discard && request_.version == 11;
        if (known && !bodiless)
            fmt::format_to(std::back_inserter(out_head_), "Content-Length: {}\r\n",
                           stream_.reply_length);
        else if (streamed_.chunked)
            out_head_ += "Transfer-Encoding: chunked\r\n";
        else if (!known && !streamed_.discard)
            keep_alive_ = false; // HTTP/1.0 client: the body ends when we close
        if (!keep_alive_)
            out_head_ += "Connection: close\r\n";
        out_head_ += "\r\n";
        response_started_ = true;
        response_.status = stream_.reply_status;
        streamed_.pending = std::move(out_head_);
        out_head_.clear();
        return flush_streamed_reply();
    }
    if (!bodiless) {
        char digits[24];
        auto end = std::to_chars(digits, digits + sizeof digits, stream_.reply_body.size()).ptr;
        append_field(out_head_, "Content-Length", std::string_view(digits, end - digits));
    }
    if (!keep_alive_)
        out_head_ += "Connection: close\r\n";
    out_head_ += "\r\n";
    const bool with_body = !head_request && !bodiless;
    response_started_ = true;
    response_.status = stream_.reply_status;
    timeout_ = Timeout::client_write;
    watchdog_.arm(config_->timeouts.client_write, *this);
    // Head and body in one gathered write: the body is not copied behind the head. Like a
    // proxied response: one non-blocking sendmsg, and the rest (if any) asynchronously.
    out_buffers_ = {asio::buffer(out_head_),
                    with_body ? asio::buffer(stream_.reply_body) : asio::const_buffer()};
    std::span<asio::const_buffer> parts(out_buffers_.data(), 2);
    const size_t total = asio::buffer_size(parts);
    error_code wec;
    const size_t sent = transport_.try_write(parts, wec);
    timing_.bytes_out += sent;
    if (wec || sent == total) {
        watchdog_.disarm();
        timeout_ = Timeout::none;
        return asio::post(worker_.io().get_executor(),
                          recycled([self = shared_from_this(), wec] {
                              if (wec)
                                  return self->on_client_write_error(wec);
                              self->finish_request();
                          }));
    }
    asio::async_write(transport_, std::span<const asio::const_buffer>(parts),
                      [self = shared_from_this()](const error_code& ec, size_t n) {
                          self->watchdog_.disarm();
                          self->timeout_ = Timeout::none;
                          self->timing_.bytes_out += n;
                          if (ec)
                              return self->on_client_write_error(ec);
                          self->finish_request();
                      });
}

void ClientConnection::post_drained() {
    for (auto [fn, arg] : streamed_.drained)
        asio::post(transport_.get_executor(), [fn, arg] { fn(arg); });
    streamed_.drained.clear();
}

gh_status_t ClientConnection::reply_drained(gh_task_fn fn, void* arg) {
    if (!fn)
        return GH_ERR_INVALID;
    if (!streamed_.active || closing_)
        return GH_ERR_STATE;
    streamed_.drained.emplace_back(fn, arg);
    if (!streamed_.writing && streamed_.pending.empty())
        post_drained(); // nothing buffered: drained already
    return GH_OK;
}

void ClientConnection::flush_streamed_reply() {
    StreamedReply& r = streamed_;
    if (r.writing || closing_)
        return;
    if (r.pending.empty()) {
        post_drained();
        if (!r.last) {
            module_hold_ = shared_from_this(); // waiting for the module's next piece
            return;
        }
        module_hold_.reset();
        r.active = false;
        response_body_done_ = true;
        if (r.broken) {
            termination_ = Termination::upstream_error;
            return close();
        }
        return finish_request();
    }
    r.in_flight.clear();
    r.in_flight.swap(r.pending);
    r.writing = true;
    timeout_ = Timeout::client_write;
    watchdog_.arm(config_->timeouts.client_write, *this);
    asio::async_write(transport_, asio::buffer(r.in_flight),
                      [self = shared_from_this()](const error_code& ec, size_t n) {
                          self->watchdog_.disarm();
                          self->timeout_ = Timeout::none;
                          self->timing_.bytes_out += n;
                          self->streamed_.writing = false;
                          if (ec)
                              return self->on_client_write_error(ec);
                          self->flush_streamed_reply();
                      });
}

gh_status_t ClientConnection::reply_write(std::string_view data, bool last, bool abort) {
    // The module's hold may be the last reference, and finishing drops it: keep us alive until
    // this call returns.
    auto self = shared_from_this();
    StreamedReply& r = streamed_;
    if (!r.active || r.last || closing_)
        return GH_ERR_STATE;
    if (abort && !r.discard) {
        r.broken = true; // close after what was already accepted: no terminator
        data = {};
    }
    if (!r.discard && !r.broken) {
        const uint64_t length = stream_.reply_length;
        if (length != GH_LENGTH_UNKNOWN && r.body_bytes + data.size() > length) {
            data = data.substr(0, length - r.body_bytes); // never more than declared
            r.broken = true;
        }
        r.body_bytes += data.size();
        if (r.chunked && !data.empty())
            fmt::format_to(std::back_inserter(r.pending), "{:x}\r\n", data.size());
        r.pending.append(data);
        if (r.chunked && !data.empty())
            r.pending.append("\r\n");
        if (last && r.chunked)
            r.pending.append("0\r\n\r\n");
        if (last && length != GH_LENGTH_UNKNOWN && r.body_bytes < length)
            r.broken = true; // short: the client must not take it for the whole body
    }
    r.last = last;
    if (r.broken)
        r.last = true; // nothing more is accepted
    flush_streamed_reply();
    return GH_OK;
}

void ClientConnection::on_client_write_error(const error_code& ec) {
    if (ec != asio::error::operation_aborted || timeout_ != Timeout::client_write)
        termination_ = Termination::client_abort;
    close();
}

void ClientConnection::finish_request() {
    end_stream();
    ++requests_served_;
    if (!keep_alive_ || closing_)
        return close();
    next_request();
}

void ClientConnection::next_request() {
    request_parser_.reset();
    response_parser_.reset();
    request_.clear();
    response_.clear();
    stream_.reset();
    stream_.connection = this;
    stream_.request = &request_;
    stream_.response = &response_;
    filter_index_ = 0;
    paused_ = false;
    held_by_ = -1;
    body_capture_ = false;
    termination_ = Termination::completed;
    timing_.started = false;
    pool_ = nullptr;
    inflight_.release();
    tried_.clear();
    attempt_ = 0;
    last_failure_timeout_ = request_bytes_sent_ = request_body_started_ = false;
    replay_body_kept_ = false;
    last_failure_ = nullptr;
    stale_retried_ = false;
    response_started_ = response_body_done_ = upstream_eof_ = upstream_more_ = false;
    feed_capped_ = false;
    request_held_ = request_unchecked_ = false;
    request_body_out_.clear();
    response_mode_ = BodyMode::raw;
    observe_only_ = false;
    streamed_ = {};
    upstream_request_done_ = false;
    // A reload happened: the next request uses the new generation, so the old one drains.
    if (generation_->number() != current_generation_number.load(std::memory_order_relaxed)) {
        if (auto next = modules::current_generation()) {
            generation_ = std::move(next);
            config_ = &generation_->config();
        }
    }
    if (draining.load(std::memory_order_relaxed))
        return close();
    read_request();
}

void ClientConnection::park() {
    // Idle long enough: drop every per-request buffer and wait for readability without one
    // (one epoll_ctl, paid only by connections that really went idle).
    in_.release();
    std::string().swap(request_store_);
    std::string().swap(response_store_);
    std::string().swap(out_head_);
    std::string().swap(decoded_);
    std::string().swap(request_chunk_);
    std::string().swap(request_body_out_);
    std::string().swap(body_stage_[0]);
    std::string().swap(body_stage_[1]);
    std::vector<http::Field>().swap(request_.fields);
    std::vector<http::Field>().swap(response_.fields);
    stream_.release_memory();
    transport_.socket().async_wait(asio::ip::tcp::socket::wait_read,
                                   [self = shared_from_this()](const error_code& ec) {
                                       self->idle_parked_ = false;
                                       if (ec || self->closing_)
                                           return ec == asio::error::operation_aborted ? void()
                                                                                       : self->close();
                                       self->read_request();
                                   });
}

void ClientConnection::close_now() {
    if (!closing_)
        termination_ = Termination::client_abort;
    close();
}

void ClientConnection::close_if_idle() {
    // Idle = between requests, nothing of the next one received yet.
    if ((timeout_ == Timeout::keepalive || timeout_ == Timeout::idle) && in_.empty() && !closing_) {
        request_body_done_ = true;
        close();
    }
}

bool ClientConnection::awaits_upstream_since(std::chrono::steady_clock::time_point now,
                                             std::chrono::milliseconds patience) const {
    const bool waiting = timeout_ == Timeout::upstream_connect ||
                         timeout_ == Timeout::upstream_first_byte ||
                         timeout_ == Timeout::upstream_idle || timeout_ == Timeout::peek_idle ||
                         timeout_ == Timeout::peek_pause;
    return waiting && !closing_ && timing_.started && now - timing_.start >= patience;
}

void ClientConnection::close_if_client_gone() {
    if (closing_ || !transport_.peer_hung_up())
        return;
    log::info("{} {}: client closed the connection while the upstream had not answered",
              request_.method, stream_.path);
    termination_ = Termination::client_abort;
    close();
}

void ClientConnection::close() {
    // Whoever called us holds a reference or is a handler of ours; the module's hold goes.
    auto hold = std::move(module_hold_);
    post_drained(); // a module pacing a streamed reply learns the client is gone
    if (closing_ && !transport_.socket().is_open())
        return;
    if (!closing_ && (stream_.phase < GH_PHASE_LOG || stream_.phase == GH_PHASE_UPSTREAM_ERROR)) {
        closing_ = true;
        if (termination_ == Termination::completed && !response_body_done_ && response_started_)
            termination_ = Termination::client_abort;
        end_stream();
    }
    closing_ = true;
    watchdog_.cancel();
    abort_upstream();
    if (SSL* ssl = transport_.ssl(); ssl && SSL_is_init_finished(ssl)) {
        // Without a recorded shutdown OpenSSL drops the session from the cache, and clients
        // could not resume it. Quiet: nothing is sent, no wait for the peer.
        SSL_set_quiet_shutdown(ssl, 1);
        SSL_shutdown(ssl);
    }
    error_code ec;
    transport_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
    // Lingering close: drain what the client still sends for a moment, so our last response is
    // not destroyed by a reset (unread data at close() makes the kernel send RST).
    if (!in_.empty() || !request_body_done_) {
        in_.consume(in_.size());
        in_.reserve(4096);
        timeout_ = Timeout::none;
        watchdog_.arm(std::chrono::milliseconds(2000), *this);
        // The raw socket: whatever arrives now (TLS records included) is discarded unread.
        transport_.socket().async_read_some(asio::buffer(in_.space(), in_.space_size()),
                                [self = shared_from_this()](const error_code& ec, size_t) {
                                    self->request_body_done_ = true;
                                    if (!ec)
                                        return self->close();
                                    self->watchdog_.cancel();
                                    error_code ignored;
                                    self->transport_.socket().close(ignored);
                                });
        return;
    }
    transport_.socket().close(ec);
}

void ClientConnection::on_watchdog() {
    Timeout which = timeout_;
    timeout_ = Timeout::none;
    error_code ec;
    switch (which) {
    case Timeout::header:
        termination_ = Termination::timeout;
        if (in_.empty())
            return close(); // nothing received: just close
        request_body_done_ = true;
        transport_.socket().cancel(ec);
        return reply(408, {}, true);
    case Timeout::body_idle:
        termination_ = Termination::timeout;
        transport_.socket().cancel(ec);
        abort_upstream();
        request_body_done_ = true; // nothing more will be read; do not linger for it
        if (!response_started_)
            return reply(408, {}, true);
        return close();
    case Timeout::peek_pause:
    case Timeout::peek_idle:
    case Timeout::upstream_connect:
    case Timeout::upstream_first_byte:
        if (upstream_)
            upstream_->transport.socket().cancel(ec);
        if (which == Timeout::upstream_connect || which == Timeout::upstream_first_byte)
            last_failure_timeout_ = true; // a peek's timeouts are not a failed attempt
        timeout_ = which; // the pending upstream handler sees operation_aborted and this
        return;
    case Timeout::idle: {
        // Stop the buffered read; on_read_request parks the connection. The keep-alive
        // deadline still holds.
        idle_parked_ = true;
        timeout_ = Timeout::keepalive;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            idle_deadline_ - Watchdog::Clock::now());
        watchdog_.arm(std::max(left, std::chrono::milliseconds(1)), *this);
        transport_.socket().cancel(ec);
        return;
    }
    case Timeout::keepalive:
    case Timeout::client_write:
    case Timeout::upstream_idle:
    case Timeout::tunnel:
    case Timeout::none:
        if (which != Timeout::keepalive && which != Timeout::none)
            termination_ = Termination::timeout;
        if (which == Timeout::upstream_idle)
            log::info("{} {} -> upstream {}: response interrupted: idle timeout", request_.method,
                      stream_.path, stream_.peer_address);
        // A timed-out peer gets no lingering grace: the end phases and the log line still run.
        request_body_done_ = true;
        in_.consume(in_.size());
        close();
        transport_.socket().close(ec);
        return;
    }
}

} // namespace gatehouse::net
