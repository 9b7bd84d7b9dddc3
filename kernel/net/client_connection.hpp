// One client connection on one worker thread, for its whole life: reads requests, runs the
// route's filters, proxies to an upstream server and streams the response back. Callback style
// (Beast examples' do_x/on_x pairs); fixed, reused buffers; one timer for every timeout.
#pragma once

#include "http/parser.hpp"
#include "net/buffer.hpp"
#include "net/per_request.hpp"
#include "net/post_memory.hpp"
#include "net/stream.hpp"
#include "net/transport.hpp"
#include "net/watchdog.hpp"
#include "net/worker.hpp"
#include "runtime.hpp"
#include "tls/server_context.hpp"
#include "upstream/pool.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <array>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace gatehouse::net {

enum class Timeout : uint8_t {
    none,
    keepalive,
    header,
    body_idle,
    client_write,
    upstream_connect,
    upstream_first_byte,
    upstream_idle,
    tunnel,
    idle, // keep-alive wait, before the buffers are released
    peek_pause, // a response peek waiting to see whether the upstream paused
    peek_idle,  // a response peek waiting for body bytes (the upstream's idle_timeout)
};

// Why a request ended, for the log (and later the access log).
enum class Termination : uint8_t {
    completed,
    rejected,        // bad request framing / limits
    local_reply,     // a filter or the kernel answered
    client_abort,
    upstream_error,  // connect failure, bad response
    upstream_reset,  // the upstream closed or reset the connection mid-exchange
    timeout,
    dropped,         // a filter closed the connection without a response (GH_DROP)
};

// Set when the process drains (SIGTERM): responses say Connection: close, idle keep-alive
// connections are closed.
extern std::atomic<bool> draining;
// The active generation's number; a connection compares it before each request.
extern std::atomic<uint64_t> current_generation_number;
// The process's request metrics (set before workers start; null in tools that serve nothing).
extern metrics::KernelMetrics* kernel_metrics;

class ClientConnection : public std::enable_shared_from_this<ClientConnection>,
                         private http::BodySink {
public:
    ClientConnection(Worker& worker, std::shared_ptr<const Generation> generation,
                     boost::asio::ip::tcp::socket socket,
                     std::shared_ptr<const tls::CertStore> tls = nullptr);
    ~ClientConnection() override;

    void start();
    void on_watchdog();
    // Shutdown: closes the connection if it waits for a next request.
    void close_if_idle();
    // True while this request has waited on its upstream (connect, response head or body, a
    // peek) for longer than `patience` since it started: the worker then asks whether the
    // client is still there (close_if_client_gone).
    bool awaits_upstream_since(std::chrono::steady_clock::time_point now,
                               std::chrono::milliseconds patience) const;
    // A client that closed its connection while its request waits on the upstream ends the
    // request now (as nginx does by default), with the upstream connection and the modules'
    // state, instead of at the upstream's timeouts; logged as client_abort (499).
    void close_if_client_gone();
    // Drain timeout: closes it whatever it is doing (filters still get LOG and STREAM_END).
    void close_now();

    // Host API entry points (the stream's worker thread only).
    gh_stream_t* stream() { return &stream_; }
    void resume(gh_action_t action);
    gh_status_t subscribe_body(gh_module_t* module, uint32_t direction, uint32_t mode);
    gh_status_t peek_body(gh_module_t* module, uint32_t direction, uint64_t bytes);
    bool request_headers_editable() const;
    bool response_headers_editable() const;
    // respond_stream's body (SDK 1.2).
    gh_status_t reply_write(std::string_view data, bool last, bool abort = false);
    gh_status_t reply_drained(gh_task_fn fn, void* arg);

private:
    // ---- client side (client_connection.cpp) ----
    bool plain_http_on_tls(const boost::system::error_code& ec);
    void reply_plain_http_on_tls();
    void on_handshake(const boost::system::error_code& ec);
    void read_request();
    void park();
    void on_read_request(const boost::system::error_code& ec, size_t n);
    void parse_request();
    void on_request_head();
    bool prepare_stream();
    void run_filters();
    void continue_after(uint32_t phase);
    void phase_action(gh_action_t action);
    void read_held_body();
    void on_held_body_read(const boost::system::error_code& ec, size_t n);
    void held_body_complete();
    // Parses request body bytes from in_; `forward` is what to send upstream for them (raw,
    // re-chunked filter output, or nothing while a held body accumulates).
    bool feed_request_body(size_t& consumed, std::string_view& forward);
    bool request_rechunked() const;
    void send_continue_then_upstream();
    void reply(unsigned status, std::string_view body = {}, bool close = false);
    void send_reply();
    void flush_streamed_reply();
    bool only_observers() const;
    void finish_request();
    void next_request();
    void close();
    void on_client_write_error(const boost::system::error_code& ec);
    void end_stream();
    void run_end_phase(uint32_t phase);
    void log_access();
    // Runs `data` through the filters subscribed to `direction`; `out` is what goes on (valid
    // until the next call). False if a filter aborted the stream.
    bool filter_body(uint32_t direction, std::string_view data, bool last, std::string_view& out);

    // BodySink: decoded body data from the parser currently fed.
    void on_body_data(std::string_view data) override;
    void on_trailer_field(std::string_view name, std::string_view value) override;

    // ---- upstream side (upstream_exchange.cpp) ----
    void start_upstream();
    void next_attempt();
    void connect_peer();
    void on_connect(const boost::system::error_code& ec);
    void start_upstream_tls();
    void on_upstream_handshake(const boost::system::error_code& ec);
    void on_upstream_ready();
    void send_request_head();
    void build_request_head();
    void send_request_body();
    void on_request_body_read(const boost::system::error_code& ec, size_t n);
    void write_request_body_chunk();
    // sent_now: the whole request went out in the call chain now running (an inline write), so
    // the response read waits for readiness instead of trying a recv
    // (Transport::async_read_answer).
    void on_upstream_written(const boost::system::error_code& ec, bool sent_now = false);
    void read_response(bool sent_now = false);
    void on_response_read(const boost::system::error_code& ec, size_t n);
    // After a read of the upstream buffer: whether it filled the first page and moved to a
    // full-size buffer (then more may be waiting).
    bool grow_response_buffer();
    void parse_response();
    void on_response_head();
    void build_response_head();
    void write_response_chunk();
    void on_response_written(const boost::system::error_code& ec);
    void read_response_body();
    void on_response_body_read(const boost::system::error_code& ec, size_t n);
    void body_ended_by_close();
    void peek_response(bool first, bool paused = false);
    void on_peek_read(const boost::system::error_code& ec, size_t n);
    void response_complete();
    // `kind` overrides the failure kind the outcome implies (an invalid response: "invalid").
    void attempt_failed(uint32_t outcome, bool may_retry, const char* why,
                        const char* kind = nullptr);
    bool retry_stale_connection();
    void abort_upstream();
    bool request_replayable() const;
    bool body_at_hand() const; // the request body (if any) can be sent again
    // A failure on a stale pooled connection could be replayed: the request is idempotent and
    // its body (if any) will still be here to send again.
    bool stale_replay_possible() const;
    // `kind` is GH_FACT_UPSTREAM_ERROR's value ("invalid", "timeout", "reset"...); nullptr: the
    // last attempt's failure.
    void fail_upstream(unsigned status, const char* why, const char* kind = nullptr);

    // ---- upgraded connections (tunnel.cpp) ----
    void start_tunnel();
    void arm_tunnel_timeout();
    void tunnel_read(bool from_client);
    void on_tunnel_read(bool from_client, const boost::system::error_code& ec, size_t n);
    void tunnel_write(bool from_client);
    void end_tunnel(const char* why);

    Worker& worker_;
    std::shared_ptr<const Generation> generation_;
    const config::Config* config_; // of generation_
    Transport transport_;
    Watchdog watchdog_;
    Timeout timeout_ = Timeout::none;
    std::shared_ptr<const tls::CertStore> tls_store_; // kept for the SNI callback's lifetime

    Buffer in_;
    std::string request_store_; // the request head's bytes; request_ views point here
    http::RequestHead request_;
    PerRequest<http::RequestParser> request_parser_;
    bool request_body_done_ = false;
    uint64_t requests_served_ = 0;
    bool keep_alive_ = true;
    bool closing_ = false;
    bool trusted_peer_ = false; // peer address is in forwarding.trusted_proxies
    bool idle_parked_ = false;  // waiting for readability without buffers
    Watchdog::Clock::time_point idle_deadline_;    // keep-alive expiry while idle

    gh_stream stream_;
    size_t filter_index_ = 0; // next filter to run in the current phase
    bool paused_ = false;
    // Held while a module has the stream (a PAUSE, or a streamed reply waiting for its next
    // piece): no socket operation may be pending then, and the connection must outlive it.
    // Dropped on resume, when the reply completes, and in close().
    std::shared_ptr<ClientConnection> module_hold_;
    int held_by_ = -1;        // filter index that returned HOLD
    bool body_capture_ = false;
    std::string decoded_;     // decoded body bytes of the current feed (filters, de-chunking)
    std::string body_stage_[2]; // filter chain scratch: one filter's output, the next's input
    Termination termination_ = Termination::completed;
    // Timings and byte counts of the current request, for the access log.
    struct Timing {
        std::chrono::steady_clock::time_point start, head, connect_start, connected, first_byte;
        uint64_t bytes_in = 0, bytes_out = 0;
        bool started = false, logged = false;
    } timing_;

    // Upstream exchange state.
    upstream::UpstreamPool* pool_ = nullptr;
    std::unique_ptr<UpstreamConnection> upstream_;
    upstream::InflightGuard inflight_;
    std::vector<uint8_t> tried_;
    uint32_t attempt_ = 0;
    bool last_failure_timeout_ = false;
    const char* last_failure_ = nullptr; // "connect", "timeout", "reset": the last attempt's
    bool stale_retried_ = false;
    bool request_bytes_sent_ = false; // any byte of this request written on this attempt
    bool request_body_started_ = false; // body bytes taken from the client (cannot replay)
    bool replay_body_kept_ = false;     // ...unless kept here, for an idempotent request
    std::string replay_body_;
    std::chrono::steady_clock::time_point attempt_start_;
    bool in_head_call_ = false; // inside the on_request_head() call that follows the head's arrival
    std::string out_head_;        // head being written (request upstream, or response to client)
    std::string chunk_prefix_;    // chunk-size line when re-chunking
    std::string interim_;         // a 1xx response being forwarded to the client
    std::array<boost::asio::const_buffer, 4> out_buffers_; // the response write in progress
    size_t pending_consume_ = 0;  // bytes of in_/upstream buffer to consume after a write
    http::ResponseHead response_;
    std::string response_store_;
    PerRequest<http::ResponseParser> response_parser_;
    bool response_started_ = false; // a byte of the response went to the client
    // held: a whole body held by a peek (GH_PEEK_WHOLE) that only inspectors and observers
    // see, sent with its Content-Length.
    enum class BodyMode : uint8_t { raw, dechunk, rechunk, held } response_mode_ = BodyMode::raw;
    bool response_body_done_ = false;
    bool observe_only_ = false; // every response-body subscriber is an observer: body sent raw
    bool upstream_eof_ = false;
    bool upstream_more_ = false; // bytes known to be waiting behind the buffer (GH_CHUNK_MORE)
    bool feed_capped_ = false;   // the body filters got a piece of the buffer; more is there
    bool request_held_ = false;       // a filter HOLDs: the body is read whole, sent with a length
    std::string request_body_out_;    // the held body as it goes upstream
    // A held body passed the route's body_limit with body_overflow = pass: the filter decided on
    // the first body_limit bytes (request_body_out_, sent first); the rest goes up unchecked.
    bool request_unchecked_ = false;
    std::string request_chunk_;       // a re-chunked piece of a filtered, streamed request body
    bool upstream_request_done_ = false; // UPSTREAM_REQUEST filters ran (once per request)

    // A streamed local reply (respond_stream + reply_write).
    struct StreamedReply {
        bool active = false;   // the head went out; the body comes from reply_write
        bool chunked = false;  // length unknown, HTTP/1.1 client
        bool discard = false;  // HEAD, 204, 304: the body is not sent
        bool last = false;     // the module gave the last piece
        bool broken = false;   // short or over its length: close after what was written
        bool writing = false;  // a write is in flight
        uint64_t body_bytes = 0;
        std::string pending;   // framed bytes not yet handed to the socket
        std::string in_flight; // the bytes of the write in flight
        std::vector<std::pair<gh_task_fn, void*>> drained; // reply_drained callbacks
    } streamed_;
    void post_drained(); // runs (posts) every reply_drained callback once
};

} // namespace gatehouse::net
