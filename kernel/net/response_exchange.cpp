// The response coming back from the upstream: its head (checked, filtered, rebuilt for the
// client), its body relayed or re-framed through the body filters, a peek at its first bytes
// for a filter that asks (body_peek), and the connection back to the pool.
#include "net/client_connection.hpp"
#include "net/head_fields.hpp"

#include "http/status.hpp"
#include "log.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include <span>
#include <sys/ioctl.h>
#include <sys/socket.h>

namespace gatehouse::net {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

constexpr size_t response_buffer = 128 * 1024;
// Body bytes decoded and run through the body filters at a time. The decoded copy (decoded_)
// then stays this small per stream whatever one read brings (up to response_buffer); the rest
// of the buffer follows as soon as the client took this piece, flagged GH_CHUNK_MORE so an
// encoder need not flush in between.
constexpr size_t filter_feed_max = 16 * 1024;
// The first read of a response lands in one page: most heads, and small responses whole, fit.
constexpr size_t first_read_buffer = 4 * 1024;

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
        const size_t want = buf.space_size();
        ssize_t n = raw_recv(fd, buf.space(), want, MSG_DONTWAIT);
        if (n <= 0)
            return false;
        buf.commit(static_cast<size_t>(n));
        if (static_cast<size_t>(n) < want)
            return false; // a short read took all there was: no call just to hear EAGAIN
    }
    int waiting = 0;
    return ::ioctl(fd, FIONREAD, &waiting) == 0 && waiting > 0;
}

} // namespace

// ---- response coming back -------------------------------------------------------------------

void ClientConnection::read_response(bool sent_now) {
    response_parser_.emplace(response_);
    response_parser_->reset({config_->limits.max_response_header_bytes, 1000, 0, 0});
    if (request_.method == "HEAD")
        response_parser_->expect_no_body();
    // A connection waiting for its upstream holds one page, not a full buffer: with many
    // responses outstanding, a full buffer reserved now would be cold in the CPU cache by the
    // time its response came (see on_response_read for the rest).
    upstream_->buffer.reserve(first_read_buffer);
    timeout_ = Timeout::upstream_first_byte;
    watchdog_.arm(pool_->config().first_byte_timeout, *this);
    upstream_->buffer.compact();
    auto space = asio::buffer(upstream_->buffer.space(), upstream_->buffer.space_size());
    auto done = [self = shared_from_this()](const error_code& ec, size_t n) {
        self->on_response_read(ec, n);
    };
    if (sent_now)
        upstream_->transport.async_read_answer(space, std::move(done));
    else
        upstream_->transport.async_read_some(space, std::move(done));
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
    if (grow_response_buffer())
        top_up(upstream_->transport, upstream_->buffer);
    parse_response();
}

bool ClientConnection::grow_response_buffer() {
    // A read filled the first page: move to a full-size buffer, taken from the worker's cache
    // now that the bytes are here (the most recently used one, still in the CPU cache). The
    // head and the body share it: a body read is as large as it can usefully be (fewer, larger
    // writes to the client), and pages the reads never touch cost no memory. Every read of the
    // response comes here, so a body that arrives after its head grows the buffer too.
    Buffer& buf = upstream_->buffer;
    if (!buf.full() || buf.capacity() >= response_buffer)
        return false;
    buf.reserve(std::max<size_t>(response_buffer, config_->limits.max_response_header_bytes));
    return true;
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
            return attempt_failed(GH_OUTCOME_RESET, false, "invalid upstream response", "invalid");
        }
        if (!response_parser_->is_header_done()) {
            if (buf.size() >= config_->limits.max_response_header_bytes || buf.full()) {
                watchdog_.disarm();
                timeout_ = Timeout::none;
                return attempt_failed(GH_OUTCOME_RESET, false, "upstream response header too large",
                                      "invalid");
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
            // Interim responses: 100 is dropped (we answered Expect ourselves); others (102,
            // 103 Early Hints...) go on to HTTP/1.1 clients as they came, minus hop-by-hop
            // fields (RFC 9110 §15.2); a 101 nobody asked for is a broken upstream.
            if (response_.status == 101) {
                buf.consume(n);
                return attempt_failed(GH_OUTCOME_RESET, false, "upstream switched protocols unasked");
            }
            const bool forward = response_.status != 100 && request_.version == 11 &&
                                 !response_started_;
            if (forward) {
                interim_.clear();
                append_status_line(interim_, response_.status,
                                   response_.reason.empty() ? http::reason(response_.status)
                                                            : response_.reason);
                ConnectionOptions options(response_.fields, response_.framing);
                for (const auto& f : response_.fields)
                    if (http::kind_of(f) != http::FieldKind::hop_by_hop &&
                        !options.lists(f.name))
                        append_field(interim_, f.name, f.value);
                interim_.append("\r\n");
            }
            buf.consume(n);
            response_parser_.emplace(response_);
            response_parser_->reset({config_->limits.max_response_header_bytes, 1000, 0, 0});
            if (request_.method == "HEAD")
                response_parser_->expect_no_body();
            if (forward) {
                // No upstream read is pending while the client takes the interim response; the
                // first-byte timeout starts again after it (an interim is a sign of life).
                watchdog_.disarm();
                return asio::async_write(
                    transport_, asio::buffer(interim_),
                    [self = shared_from_this()](const error_code& ec, size_t n) {
                        self->timing_.bytes_out += n;
                        if (ec)
                            return self->on_client_write_error(ec);
                        self->timeout_ = Timeout::upstream_first_byte;
                        self->watchdog_.arm(self->pool_->config().first_byte_timeout, *self);
                        self->parse_response();
                    });
            }
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
    // Observers (a cache storing the body) see every byte but change none: the body keeps its
    // framing and Content-Length, and goes out exactly as it came.
    observe_only_ = filtered && !response_.no_body && stream_.peek_bytes == 0 &&
                    !(client_10 && response_.framing.chunked) && only_observers();
    if (observe_only_)
        filtered = false;
    // The whole body is held (GH_PEEK_WHOLE) and nobody may change it: send it with its length.
    const bool held_whole = filtered && !response_.no_body && stream_.peek_whole &&
                            stream_.peek_done && stream_.response_body_complete &&
                            only_observers();
    if (response_.no_body)
        response_mode_ = BodyMode::raw;
    else if (held_whole)
        response_mode_ = BodyMode::held;
    else if (client_10 && (response_.framing.chunked || filtered))
        response_mode_ = BodyMode::dechunk;
    else if (filtered)
        response_mode_ = BodyMode::rechunk;
    else
        response_mode_ = BodyMode::raw;
    bool length_known = response_.no_body || response_mode_ == BodyMode::held ||
                        (response_mode_ == BodyMode::raw &&
                         (response_.framing.has_content_length ||
                          (response_.framing.chunked && !client_10)));
    if (!length_known && response_mode_ != BodyMode::rechunk)
        keep_alive_ = false; // the body ends when we close
    if (draining.load(std::memory_order_relaxed))
        keep_alive_ = false; // shutting down: tell the client not to reuse the connection
    if (response_mode_ != BodyMode::raw || observe_only_) {
        body_capture_ = true;
        response_parser_->set_body_sink(this);
    }

    ConnectionOptions options(response_.fields, response_.framing);
    std::string& out = out_head_;
    out.clear();
    // Upstream statuses are 100-599 (the parser refuses others).
    append_status_line(out, response_.status,
                       response_.reason.empty() ? http::reason(response_.status)
                                                : response_.reason);
    bool drop_length = response_mode_ != BodyMode::raw;
    FieldWriter fields(out, response_store_);
    for (const auto& f : response_.fields) {
        http::FieldKind kind = http::kind_of(f);
        if (kind == http::FieldKind::hop_by_hop ||
            (drop_length && kind == http::FieldKind::content_length) ||
            options.lists(f.name))
            continue;
        if (kind == http::FieldKind::content_length)
            add_content_length(fields, out, f, response_.framing.content_length);
        else
            fields.add(f);
    }
    fields.flush();
    if (response_mode_ == BodyMode::held)
        append_field(out, "Content-Length", std::to_string(stream_.peeked.size()));
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

bool ClientConnection::only_observers() const {
    for (const auto& sub : stream_.subscriptions[GH_DIR_RESPONSE]) {
        bool observer = false;
        for (const auto& f : stream_.route->response_body_order)
            if (&f.module->handle == sub.module)
                observer = f.module->filter.response_body_class == GH_BODY_CLASS_OBSERVE ||
                           f.module->filter.response_body_class == GH_BODY_CLASS_INSPECT;
        if (!observer)
            return false;
    }
    return true;
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
        size_t offer = body_capture_ ? std::min(buf.size(), filter_feed_max) : buf.size();
        size_t n = buf.empty() ? 0 : response_parser_->feed(buf.data(), offer, ec);
        if (!ec && n == 0 && offer < buf.size()) // cannot happen with sane framing: be safe
            n = response_parser_->feed(buf.data(), offer = buf.size(), ec);
        feed_capped_ = n > 0 && offer < buf.size();
        if (ec) {
            log::info("upstream {} {}: invalid response body: {}", pool_->name(),
                      stream_.peer_address, response_parser_->reject_reason());
            if (head_pending)
                return fail_upstream(502, "invalid upstream response body", "invalid");
            termination_ = Termination::upstream_error;
            return close();
        }
        response_body_done_ = response_parser_->is_done();
        stream_.response_body_complete = response_body_done_;
        pending_consume_ = n;
        if (response_mode_ == BodyMode::raw) {
            buffers[count++] = asio::const_buffer(buf.data(), n);
            std::string_view ignored;
            if (observe_only_ && !filter_body(GH_DIR_RESPONSE, decoded_, response_body_done_,
                                              ignored)) {
                termination_ = Termination::upstream_error;
                return close();
            }
        } else {
            std::string_view data = decoded_;
            std::string_view seen;
            if (stream_.subscribed(GH_DIR_RESPONSE) &&
                !filter_body(GH_DIR_RESPONSE, data, response_body_done_,
                             response_mode_ == BodyMode::held ? seen : data)) {
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
    if (!wec && sent == total && feed_capped_) {
        // This piece is out (or the filters made nothing of it yet) and the next one is in the
        // buffer already: filter it now, while their state (an encoder's tables) is still in the
        // CPU cache -- a turn of the event loop in between lets other streams evict it. At most
        // response_buffer / filter_feed_max deep.
        upstream_->buffer.consume(std::exchange(pending_consume_, 0));
        feed_capped_ = false;
        return write_response_chunk();
    }
    if (wec || (sent == total && total > 0)) {
        // The response is out and the client has sent nothing since its request: wait for the
        // next one now (that read cannot recurse: it waits). Otherwise continue from the event
        // loop, as a completion would: a body's next bytes have often come from the upstream by
        // then, and pipelined requests are not answered by ever deeper recursion.
        if (!wec && response_body_done_ && response_.status != 101 && in_.empty() &&
            transport_.drained())
            return on_response_written(wec);
        return asio::post(worker_.io().get_executor(),
                          recycled([self = shared_from_this(), wec] {
                              self->on_response_written(wec);
                          }));
    }
    timeout_ = Timeout::client_write;
    watchdog_.arm(config_->timeouts.client_write, *this);
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
    if (std::exchange(feed_capped_, false)) // the buffer holds more body: filter the next piece
        return write_response_chunk();
    // What is left in the buffer is an incomplete piece (a chunk header): read more.
    if (upstream_->buffer.full()) {
        termination_ = Termination::upstream_error;
        return close();
    }
    read_response_body();
}

// A close-delimited body ends when the upstream closes: tell the parser.
void ClientConnection::body_ended_by_close() {
    upstream_eof_ = true;
    upstream_more_ = false;
    error_code ec;
    response_parser_->put_eof(ec);
}

void ClientConnection::read_response_body() {
    Buffer& buf = upstream_->buffer;
    buf.compact();
    timeout_ = Timeout::upstream_idle;
    watchdog_.arm(pool_->config().idle_timeout, *this);
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
            body_ended_by_close();
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
    grow_response_buffer();
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
    bool more_here = false; // the buffer holds body the peek has not decoded yet
    if (!buf.empty()) {
        // Decode what the filter asked for, in pieces of filter_feed_max at least: the rest
        // stays in the buffer for write_response_chunk, so neither peeked nor decoded_ grows to
        // the size of a read.
        const size_t want = stream_.peek_bytes > stream_.peeked.size()
                                ? static_cast<size_t>(stream_.peek_bytes) - stream_.peeked.size()
                                : 0;
        size_t offer = std::min(buf.size(), std::max(want, filter_feed_max));
        decoded_.clear();
        error_code ec;
        size_t n = response_parser_->feed(buf.data(), offer, ec);
        if (!ec && n == 0 && offer < buf.size())
            n = response_parser_->feed(buf.data(), offer = buf.size(), ec);
        if (ec) {
            log::info("upstream {} {}: invalid response body: {}", pool_->name(),
                      stream_.peer_address, response_parser_->reject_reason());
            return fail_upstream(502, "invalid upstream response body", "invalid");
        }
        buf.consume(n);
        stream_.peeked.append(decoded_);
        more_here = n > 0 && offer < n + buf.size();
    }
    stream_.response_body_complete = response_parser_->is_done();
    const bool enough = stream_.response_body_complete || upstream_eof_ ||
                        stream_.peeked.size() >= stream_.peek_bytes;
    if (!enough && more_here)
        return peek_response(false, paused); // framing ate the piece: decode the next one
    if (stream_.peek_whole && stream_.peeked.size() >= stream_.peek_bytes &&
        !stream_.response_body_complete) {
        // Over body_limit: the route's overflow policy.
        if (stream_.route->config->body_overflow == config::BodyOverflow::reject) {
            log::info("{} {}: response body over body_limit ({} bytes) for a filter that holds "
                      "it whole: 502",
                      request_.method, stream_.path, stream_.route->config->body_limit);
            termination_ = Termination::rejected;
            return reply(502, {}, true);
        }
        // pass: the hook decides on what is held (body_limit bytes or a little more, as
        // decoded); the rest streams on behind it.
    }
    if (enough || (paused && !stream_.peek_whole)) {
        stream_.peek_done = true;
        filter_index_ = static_cast<size_t>(held_by_);
        held_by_ = -1;
        return run_filters();
    }
    if (buf.full())
        return fail_upstream(502, "upstream chunk header too large", "invalid");
    buf.compact();
    if (!stream_.peeked.empty() && !upstream_more_ && !stream_.peek_whole) {
        timeout_ = Timeout::peek_pause;
        watchdog_.arm(peek_pause, *this);
    } else {
        timeout_ = Timeout::peek_idle;
        watchdog_.arm(pool_->config().idle_timeout, *this);
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
            body_ended_by_close();
            return peek_response(false);
        }
        if (was == Timeout::peek_idle && ec == asio::error::operation_aborted)
            return fail_upstream(504, "upstream idle timeout before the response started",
                                 "timeout");
        termination_ = Termination::upstream_reset;
        return fail_upstream(502, "upstream closed the connection mid-body", "reset");
    }
    upstream_->buffer.commit(n);
    grow_response_buffer();
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
        // The last read took all there was: from now on, a readiness edge on the idle
        // connection means the server closed it (or sent what nobody asked for), which the pool
        // checks before reuse (Transport::idle_intact). A FIN that came with the response's
        // last bytes is missed this way; the pool then polls anyway for a request that could
        // not be replayed, and the stale-connection retry covers the others.
        if (!upstream_more_)
            upstream_->transport.mark_drained();
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
