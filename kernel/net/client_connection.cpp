// The client side of a connection: request heads, filters, local replies, keep-alive.
#include "net/client_connection.hpp"

#include "http/path.hpp"
#include "http/status.hpp"
#include "log.hpp"
#include "modules/services.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

namespace gatehouse::net {

namespace asio = boost::asio;
using boost::system::error_code;

std::atomic<bool> draining{false};
std::atomic<uint64_t> current_generation_number{1};
std::atomic<std::shared_ptr<accesslog::AccessLog>> access_log;
metrics::KernelMetrics* kernel_metrics = nullptr;

namespace {
std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c + 32);
    return out;
}

// Host header value without the port: "Example.com:8080" -> "example.com", "[::1]:80" -> "[::1]".
std::string host_without_port(std::string_view host) {
    if (!host.empty() && host[0] == '[') {
        size_t close = host.find(']');
        return lower(host.substr(0, close == std::string_view::npos ? host.size() : close + 1));
    }
    return lower(host.substr(0, host.find(':')));
}
} // namespace

void gh_stream_reset(gh_stream& s);

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
    watchdog_.arm(config_->timeouts.header, shared_from_this());
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
        request_body_done_ = true; // nothing to drain
        return close();
    }
    if (kernel_metrics)
        kernel_metrics->shard(worker_.id()).tls_handshake(SSL_session_reused(transport_.ssl()) == 1);
    read_request();
}

// ---- reading requests ----------------------------------------------------------------------

void ClientConnection::read_request() {
    if (!in_.empty())
        return parse_request();
    // Between requests only the keep-alive timeout runs; the header deadline starts with the
    // first byte (and covers the whole head, however slowly it trickles in).
    timeout_ = requests_served_ ? Timeout::keepalive : Timeout::header;
    watchdog_.arm(timeout_ == Timeout::keepalive ? config_->timeouts.keepalive
                                                 : config_->timeouts.header,
                  shared_from_this());
    in_.reserve(std::max<size_t>(16 * 1024, config_->limits.max_header_bytes));
    in_.compact();
    transport_.async_read_some(asio::buffer(in_.space(), in_.space_size()),
                            [self = shared_from_this()](const error_code& ec, size_t n) {
                                self->on_read_request(ec, n);
                            });
}

void ClientConnection::on_read_request(const error_code& ec, size_t n) {
    if (ec) {
        if (ec == asio::error::operation_aborted && response_started_)
            return; // the watchdog cancelled the read and is replying
        return close();
    }
    in_.commit(n);
    if (timeout_ == Timeout::keepalive) {
        timeout_ = Timeout::header;
        watchdog_.arm(config_->timeouts.header, shared_from_this());
    }
    parse_request();
}

void ClientConnection::parse_request() {
    if (!timing_.started) {
        timing_ = {};
        timing_.started = true;
        timing_.wall_start = std::chrono::system_clock::now();
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
    timing_.head = std::chrono::steady_clock::now();
    timing_.bytes_in += n;
    request_store_.assign(in_.data(), n);
    http::rebase_views(request_, in_.data(), request_store_.data(), n);
    in_.consume(n);
    watchdog_.disarm();
    timeout_ = Timeout::none;
    on_request_head();
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
    stream_.host = host_without_port(request_.host);
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

// ---- filters --------------------------------------------------------------------------------

void ClientConnection::run_filters() {
    uint32_t phase = stream_.phase;
    const auto& list = phase == GH_PHASE_REQUEST_HEADERS ? generation_->early_filters()
                                                          : stream_.route->filters;
    while (filter_index_ < list.size()) {
        const FilterBinding& f = list[filter_index_];
        if (!(f.phases & GH_PHASE_BIT(phase)) || !f.module->filter.on_phase) {
            ++filter_index_;
            continue;
        }
        gh_action_t action = f.module->filter.on_phase(&stream_, phase, f.route_config);
        if (action == GH_PAUSE) {
            paused_ = true;
            return;
        }
        if (action != GH_CONTINUE)
            return phase_action(action);
        ++filter_index_;
    }
    filter_index_ = 0;
    continue_after(phase);
}

void ClientConnection::resume(gh_action_t action) {
    if (!paused_)
        return;
    // Never re-enter the module from inside its own call: continue from a fresh stack.
    asio::post(transport_.socket().get_executor(), [self = shared_from_this(), action] {
        self->paused_ = false;
        if (self->closing_)
            return;
        if (action == GH_CONTINUE) {
            ++self->filter_index_;
            return self->run_filters();
        }
        self->phase_action(action);
    });
}

void ClientConnection::phase_action(gh_action_t action) {
    uint32_t phase = stream_.phase;
    if (action == GH_RESPOND && stream_.has_reply) {
        termination_ = Termination::local_reply;
        return send_reply();
    }
    bool request_phase = phase == GH_PHASE_REQUEST_HEADERS || phase == GH_PHASE_ACCESS ||
                         phase == GH_PHASE_PRE_UPSTREAM;
    if (action == GH_HOLD && request_phase && stream_.subscribed(GH_DIR_REQUEST) &&
        !request_held_ && !request_body_done_) {
        held_by_ = static_cast<int>(filter_index_);
        return read_held_body();
    }
    // GH_ERROR, GH_RESPOND without a reply, HOLD where it cannot apply, or an unknown value:
    // fail closed.
    log::warn("{} {}: filter failed in phase {} (action {})", request_.method, stream_.path,
              phase, action);
    termination_ = Termination::local_reply;
    if (response_started_)
        return close();
    reply(500, {}, !request_body_done_);
}

void ClientConnection::continue_after(uint32_t phase) {
    switch (phase) {
    case GH_PHASE_REQUEST_HEADERS: {
        stream_.route = generation_->route(stream_.host, stream_.path);
        if (!stream_.route)
            return reply(404);
        pool_ = stream_.route->pool;
        stream_.phase = GH_PHASE_ACCESS;
        if (stream_.route->phase_mask & GH_PHASE_BIT(GH_PHASE_ACCESS))
            return run_filters();
        [[fallthrough]];
    }
    case GH_PHASE_ACCESS:
        stream_.phase = GH_PHASE_PRE_UPSTREAM;
        if (stream_.route->phase_mask & GH_PHASE_BIT(GH_PHASE_PRE_UPSTREAM))
            return run_filters();
        [[fallthrough]];
    case GH_PHASE_PRE_UPSTREAM:
        return send_continue_then_upstream();
    case GH_PHASE_UPSTREAM_REQUEST:
        return send_request_head();
    case GH_PHASE_RESPONSE_HEADERS:
        return build_response_head(), write_response_chunk();
    default:
        return;
    }
}

// ---- held request bodies (a filter returned HOLD) -------------------------------------------

void ClientConnection::read_held_body() {
    // Consume what is buffered, then read until the body is complete. A held request body must
    // fit the route's body_limit (413 otherwise): the filter asked to see all of it.
    request_held_ = true;
    while (!request_body_done_ && !in_.empty()) {
        size_t n = 0;
        std::string_view ignored;
        if (!feed_request_body(n, ignored))
            return;
        in_.consume(n);
        if (request_body_out_.size() > stream_.route->config->body_limit) {
            termination_ = Termination::rejected;
            return reply(413, {}, true);
        }
        if (n == 0)
            break;
    }
    if (request_body_done_)
        return held_body_complete();
    if (request_.expect_continue && request_.version == 11 && !request_body_started_) {
        request_body_started_ = true;
        static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
        asio::async_write(transport_, asio::buffer(cont.data(), cont.size()),
                          [self = shared_from_this()](const error_code& ec, size_t) {
                              if (ec)
                                  return self->close();
                              self->read_held_body();
                          });
        return;
    }
    request_body_started_ = true;
    timeout_ = Timeout::body_idle;
    watchdog_.arm(config_->timeouts.body_idle, shared_from_this());
    in_.compact();
    transport_.async_read_some(asio::buffer(in_.space(), in_.space_size()),
                            [self = shared_from_this()](const error_code& ec, size_t n) {
                                self->on_held_body_read(ec, n);
                            });
}

bool ClientConnection::feed_request_body(size_t& consumed, std::string_view& forward) {
    bool filtered = stream_.subscribed(GH_DIR_REQUEST);
    if (filtered || request_held_) {
        body_capture_ = true;
        request_parser_->set_body_sink(this);
        decoded_.clear();
    }
    error_code ec;
    consumed = request_parser_->feed(in_.data(), in_.size(), ec);
    if (ec) {
        termination_ = Termination::rejected;
        abort_upstream();
        reply(http::status_for(request_parser_->reject()), {}, true);
        return false;
    }
    request_body_done_ = request_parser_->is_done();
    forward = {in_.data(), consumed};
    if (!filtered && !request_held_)
        return true; // the bytes go up exactly as the client framed them
    std::string_view out = decoded_;
    if (filtered && !filter_body(GH_DIR_REQUEST, decoded_, request_body_done_, out)) {
        termination_ = Termination::rejected;
        abort_upstream();
        reply(stream_.body_overflowed[GH_DIR_REQUEST] ? 413 : 400, {}, true);
        return false;
    }
    if (request_held_) {
        // Sent whole, with a Content-Length, once complete.
        request_body_out_.append(out);
        forward = {};
        return true;
    }
    // Filters may change the length: what they let through goes up re-chunked.
    request_chunk_.clear();
    if (!out.empty()) {
        fmt::format_to(std::back_inserter(request_chunk_), "{:x}\r\n", out.size());
        request_chunk_.append(out);
        request_chunk_.append("\r\n");
    }
    if (request_body_done_)
        request_chunk_.append("0\r\n\r\n");
    forward = request_chunk_;
    return true;
}

void ClientConnection::on_held_body_read(const error_code& ec, size_t n) {
    watchdog_.disarm();
    if (ec) {
        if (ec == asio::error::operation_aborted && response_started_)
            return; // the watchdog cancelled the read and is replying
        termination_ = Termination::client_abort;
        return close();
    }
    timeout_ = Timeout::none;
    in_.commit(n);
    read_held_body();
}

void ClientConnection::held_body_complete() {
    body_capture_ = false;
    request_parser_->set_body_sink(nullptr);
    filter_index_ = static_cast<size_t>(held_by_);
    held_by_ = -1;
    run_filters();
}

bool ClientConnection::filter_body(uint32_t direction, std::string_view data, bool last,
                                   std::string_view& out) {
    const auto& filters = direction == GH_DIR_RESPONSE ? stream_.route->response_body_order
                                                       : stream_.route->filters;
    std::string& held = stream_.held_body[direction];
    std::string_view current = data;
    int stage = 0;
    for (const auto& f : filters) {
        const gh_stream::Subscription* sub = nullptr;
        for (const auto& s : stream_.subscriptions[direction])
            if (s.module == &f.module->handle)
                sub = &s;
        if (!sub || !f.module->filter.on_body)
            continue;
        if (sub->mode == GH_BODY_BUFFER) {
            // The kernel holds the body; the filter sees it once, whole (or up to the limit).
            if (stream_.body_overflowed[direction])
                continue;
            held.append(current);
            bool over = held.size() > stream_.route->config->body_limit;
            if (over && stream_.route->config->body_overflow == config::BodyOverflow::reject)
                return false;
            if (!last && !over) {
                current = {};
                continue;
            }
            stream_.body_overflowed[direction] = over;
            current = held;
        }
        gh_body_chunk_t chunk{sizeof(gh_body_chunk_t), last ? GH_CHUNK_LAST : 0u,
                              {reinterpret_cast<const uint8_t*>(current.data()), current.size()}};
        std::string& next = body_stage_[stage];
        stream_.body_out.clear();
        stream_.in_on_body = true;
        stream_.body_writer_direction = direction;
        int32_t rc = f.module->filter.on_body(&stream_, direction, &chunk, f.route_config);
        stream_.in_on_body = false;
        if (rc == GH_BODY_PASS) {
            next.assign(stream_.body_out);
            next.append(current);
        } else if (rc == GH_BODY_CONSUMED) {
            next.assign(stream_.body_out);
        } else {
            log::warn("{} {}: filter {} aborted the body", request_.method, stream_.path,
                      f.module->name);
            return false;
        }
        current = next;
        stage ^= 1;
    }
    out = current;
    return true;
}

void ClientConnection::on_body_data(std::string_view data) {
    if (body_capture_)
        decoded_.append(data);
}

void ClientConnection::on_trailer_field(std::string_view, std::string_view) {}

gh_status_t ClientConnection::subscribe_body(gh_module_t* module, uint32_t direction,
                                             uint32_t mode) {
    if (direction > GH_DIR_RESPONSE || mode > GH_BODY_BUFFER)
        return GH_ERR_INVALID;
    uint32_t phase = stream_.phase;
    bool ok = direction == GH_DIR_REQUEST
                  ? (phase == GH_PHASE_REQUEST_HEADERS || phase == GH_PHASE_ACCESS ||
                     phase == GH_PHASE_PRE_UPSTREAM) && !request_body_started_
                  : phase <= GH_PHASE_RESPONSE_HEADERS && !response_started_;
    if (!ok)
        return GH_ERR_STATE;
    for (auto& s : stream_.subscriptions[direction])
        if (s.module == module) {
            s.mode = mode;
            return GH_OK;
        }
    stream_.subscriptions[direction].push_back({module, mode});
    return GH_OK;
}

bool ClientConnection::request_headers_editable() const {
    return stream_.phase <= GH_PHASE_UPSTREAM_REQUEST && !request_bytes_sent_;
}

bool ClientConnection::response_headers_editable() const {
    return stream_.phase == GH_PHASE_RESPONSE_HEADERS && !response_started_;
}

// ---- replies and the end of a request -------------------------------------------------------

void ClientConnection::send_continue_then_upstream() {
    // We answer Expect: 100-continue ourselves once the request is known to go upstream, and do
    // not forward it (like nginx): the upstream gets the body as soon as it is here.
    if (request_.expect_continue && request_.version == 11 && !request_body_done_ &&
        in_.empty() && !request_body_started_) {
        static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
        timeout_ = Timeout::client_write;
        watchdog_.arm(config_->timeouts.client_write, shared_from_this());
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
    fmt::format_to(std::back_inserter(out_head_), "HTTP/1.1 {} {}\r\n", stream_.reply_status,
                   http::reason(stream_.reply_status));
    for (const auto& f : stream_.reply_headers)
        fmt::format_to(std::back_inserter(out_head_), "{}: {}\r\n", f.name, f.value);
    bool head_request = request_.method == "HEAD";
    fmt::format_to(std::back_inserter(out_head_), "Content-Length: {}\r\n",
                   stream_.reply_body.size());
    if (!keep_alive_)
        out_head_ += "Connection: close\r\n";
    out_head_ += "\r\n";
    if (!head_request)
        out_head_ += stream_.reply_body;
    response_started_ = true;
    response_.status = stream_.reply_status;
    timeout_ = Timeout::client_write;
    watchdog_.arm(config_->timeouts.client_write, shared_from_this());
    asio::async_write(transport_, asio::buffer(out_head_),
                      [self = shared_from_this()](const error_code& ec, size_t n) {
                          self->watchdog_.disarm();
                          self->timeout_ = Timeout::none;
                          self->timing_.bytes_out += n;
                          if (ec)
                              return self->on_client_write_error(ec);
                          self->finish_request();
                      });
}

void ClientConnection::on_client_write_error(const error_code& ec) {
    if (ec != asio::error::operation_aborted || timeout_ != Timeout::client_write)
        termination_ = Termination::client_abort;
    close();
}

void ClientConnection::run_end_phases() {
    if (!stream_.route && generation_->early_filters().empty())
        return;
    for (uint32_t phase : {GH_PHASE_LOG, GH_PHASE_STREAM_END}) {
        stream_.phase = phase;
        auto run = [&](const std::vector<FilterBinding>& list) {
            for (const auto& f : list)
                if ((f.phases & GH_PHASE_BIT(phase)) && f.module->filter.on_phase)
                    f.module->filter.on_phase(&stream_, phase, f.route_config);
        };
        run(generation_->early_filters());
        if (stream_.route)
            run(stream_.route->filters);
    }
}

namespace {
const char* termination_name(Termination t) {
    switch (t) {
    case Termination::completed: return "completed";
    case Termination::rejected: return "rejected";
    case Termination::local_reply: return "local_reply";
    case Termination::client_abort: return "client_abort";
    case Termination::upstream_error: return "upstream_error";
    case Termination::upstream_reset: return "upstream_reset";
    case Termination::timeout: return "timeout";
    }
    return "completed";
}

int64_t micros(std::chrono::steady_clock::time_point from, std::chrono::steady_clock::time_point to) {
    if (from.time_since_epoch().count() == 0 || to.time_since_epoch().count() == 0)
        return -1;
    return std::chrono::duration_cast<std::chrono::microseconds>(to - from).count();
}

std::string_view request_header(const http::RequestHead& head, std::string_view name) {
    for (const auto& f : head.fields)
        if (http::iequals(f.name, name))
            return f.value;
    return {};
}
} // namespace

void ClientConnection::log_access() {
    if (!timing_.started || timing_.logged)
        return;
    timing_.logged = true;
    auto now = std::chrono::steady_clock::now();
    unsigned status = stream_.has_reply ? stream_.reply_status : response_.status;
    if (status == 0 && termination_ == Termination::client_abort)
        status = 499; // nginx's "client closed request", so aborts show in the metrics
    generation_->metrics().request_done(worker_.id(),
                                        stream_.route ? stream_.route->index : metrics::kNoRoute,
                                        status, static_cast<uint64_t>(micros(timing_.start, now)));
    auto log = access_log.load(std::memory_order_relaxed);
    if (!log)
        return;
    accesslog::AccessRecord r;
    r.start = timing_.wall_start;
    r.client_address = stream_.client_address;
    r.method = request_.method;
    r.target = stream_.normalised_target.empty() ? request_.target
                                                 : std::string_view(stream_.normalised_target);
    r.host = request_.host;
    r.user_agent = request_header(request_, "user-agent");
    r.referer = request_header(request_, "referer");
    r.route = stream_.route ? std::string_view(stream_.route->config->name) : "";
    r.upstream = pool_ ? std::string_view(pool_->name()) : "";
    r.upstream_address = stream_.peer_address;
    r.version = request_.version;
    r.status = stream_.has_reply ? stream_.reply_status : response_.status;
    r.bytes_sent = timing_.bytes_out;
    r.bytes_received = timing_.bytes_in;
    r.header_read_us = micros(timing_.start, timing_.head);
    r.upstream_connect_us = micros(timing_.connect_start, timing_.connected);
    r.upstream_first_byte_us = micros(timing_.connect_start, timing_.first_byte);
    r.total_us = micros(timing_.start, now);
    r.termination = termination_name(termination_);
    r.tls = stream_.tls;
    log->write(worker_.id(), r);
}

void ClientConnection::finish_request() {
    log_access();
    run_end_phases();
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
    stale_retried_ = false;
    response_started_ = response_body_done_ = upstream_eof_ = false;
    request_held_ = false;
    request_body_out_.clear();
    response_mode_ = BodyMode::raw;
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

void ClientConnection::close_if_idle() {
    // Idle = between requests, nothing of the next one received yet.
    if (timeout_ == Timeout::keepalive && in_.empty() && !closing_) {
        request_body_done_ = true;
        close();
    }
}

void ClientConnection::close() {
    if (closing_ && !transport_.socket().is_open())
        return;
    if (!closing_ && (stream_.phase < GH_PHASE_LOG)) {
        closing_ = true;
        if (termination_ == Termination::completed && !response_body_done_ && response_started_)
            termination_ = Termination::client_abort;
        log_access();
        run_end_phases();
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
        watchdog_.arm(std::chrono::milliseconds(2000), shared_from_this());
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
    case Timeout::upstream_connect:
    case Timeout::upstream_first_byte:
        if (upstream_)
            upstream_->transport.socket().cancel(ec);
        last_failure_timeout_ = true;
        timeout_ = which; // the pending upstream handler sees operation_aborted and this
        return;
    case Timeout::keepalive:
    case Timeout::client_write:
    case Timeout::upstream_idle:
    case Timeout::tunnel:
    case Timeout::none:
        if (which != Timeout::keepalive && which != Timeout::none)
            termination_ = Termination::timeout;
        request_body_done_ = true;
        watchdog_.cancel();
        abort_upstream();
        transport_.socket().close(ec);
        closing_ = true;
        return;
    }
}

} // namespace gatehouse::net
