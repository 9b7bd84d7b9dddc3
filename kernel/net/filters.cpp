// Running the route's filters: header phases (PAUSE/resume, RESPOND, HOLD), body subscriptions
// and the body filter chain.
#include "net/client_connection.hpp"

#include "http/status.hpp"
#include "log.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

namespace gatehouse::net {

namespace asio = boost::asio;
using boost::system::error_code;

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
            module_hold_ = shared_from_this();
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
        self->module_hold_.reset();
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
    if (action == GH_DROP) {
        termination_ = Termination::dropped;
        keep_alive_ = false;
        return close();
    }
    bool request_phase = phase == GH_PHASE_REQUEST_HEADERS || phase == GH_PHASE_ACCESS ||
                         phase == GH_PHASE_PRE_UPSTREAM;
    // A request body held once per stream: the hook runs again when it is complete -- at once
    // when there is none (no upstream is connected in these phases, so nothing went up yet).
    if (action == GH_HOLD && request_phase && stream_.subscribed(GH_DIR_REQUEST) &&
        !request_held_) {
        held_by_ = static_cast<int>(filter_index_);
        return read_held_body();
    }
    if (action == GH_HOLD && phase == GH_PHASE_RESPONSE_HEADERS && stream_.peek_bytes > 0 &&
        !stream_.peek_done) {
        held_by_ = static_cast<int>(filter_index_);
        return peek_response(true);
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
    case GH_PHASE_UPSTREAM_ERROR:
        return reply(stream_.upstream_error_status, {}, !request_body_done_);
    default:
        return;
    }
}

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
            if (stream_.route->config->body_overflow == config::BodyOverflow::reject) {
                termination_ = Termination::rejected;
                return reply(413, {}, true);
            }
            // pass: the filter decides on what it has; what follows goes up unchecked, after it.
            request_held_ = false;
            request_unchecked_ = true;
            stream_.body_overflowed[GH_DIR_REQUEST] = true;
            return held_body_complete();
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
    watchdog_.arm(config_->timeouts.body_idle, *this);
    in_.compact();
    transport_.async_read_some(asio::buffer(in_.space(), in_.space_size()),
                            [self = shared_from_this()](const error_code& ec, size_t n) {
                                self->on_held_body_read(ec, n);
                            });
}

bool ClientConnection::feed_request_body(size_t& consumed, std::string_view& forward) {
    // Past an overflow a Content-Length body goes up as the client framed it; a chunked one is
    // re-chunked (its held part went up as one chunk, cut anywhere in the client's chunks).
    bool filtered = stream_.subscribed(GH_DIR_REQUEST) &&
                    !(request_unchecked_ && !request_.framing.chunked);
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
    if (direction == GH_DIR_REQUEST && request_unchecked_) {
        out = current; // over body_limit with body_overflow = pass: nobody inspects the rest
        return true;
    }
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
        const bool more = direction == GH_DIR_RESPONSE && (upstream_more_ || feed_capped_);
        uint32_t flags = last ? GH_CHUNK_LAST : more ? GH_CHUNK_MORE : 0u;
        gh_body_chunk_t chunk{sizeof(gh_body_chunk_t), flags,
                              {reinterpret_cast<const uint8_t*>(current.data()), current.size()}};
        std::string& next = body_stage_[stage];
        stream_.body_out.clear();
        // (1.4) Inspectors never change a body: body_write is refused, CONSUMED aborts.
        const bool inspector = direction == GH_DIR_RESPONSE &&
                               f.module->filter.response_body_class == GH_BODY_CLASS_INSPECT;
        stream_.in_on_body = !inspector;
        stream_.body_writer_direction = direction;
        int32_t rc = f.module->filter.on_body(&stream_, direction, &chunk, f.route_config);
        stream_.in_on_body = false;
        if (inspector && rc == GH_BODY_CONSUMED)
            rc = GH_BODY_ABORT;
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

gh_status_t ClientConnection::peek_body(gh_module_t* module, uint32_t direction, uint64_t bytes) {
    if (direction != GH_DIR_RESPONSE || bytes == 0)
        return GH_ERR_INVALID;
    bool subscribed = false;
    for (const auto& s : stream_.subscriptions[GH_DIR_RESPONSE])
        subscribed = subscribed || s.module == module;
    if (stream_.phase != GH_PHASE_RESPONSE_HEADERS || response_started_ || stream_.has_reply ||
        !subscribed || stream_.peek_done || response_.no_body)
        return GH_ERR_STATE;
    if (bytes == GH_PEEK_WHOLE) {
        // One byte past the limit tells an overflow from a body of exactly body_limit bytes.
        stream_.peek_whole = true;
        bytes = stream_.route->config->body_limit + 1;
    }
    stream_.peek_bytes = std::max(stream_.peek_bytes, bytes);
    return GH_OK;
}

bool ClientConnection::request_headers_editable() const {
    return stream_.phase <= GH_PHASE_UPSTREAM_REQUEST && !request_bytes_sent_;
}

bool ClientConnection::response_headers_editable() const {
    return stream_.phase == GH_PHASE_RESPONSE_HEADERS && !response_started_;
}

// LOG, then the access-log line (so LOG hooks can still add fields with log_field), then
// STREAM_END.
void ClientConnection::end_stream() {
    const bool filters = stream_.route || !generation_->early_filters().empty();
    if (filters)
        run_end_phase(GH_PHASE_LOG);
    log_access();
    if (filters)
        run_end_phase(GH_PHASE_STREAM_END);
}

void ClientConnection::run_end_phase(uint32_t phase) {
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

} // namespace gatehouse::net
