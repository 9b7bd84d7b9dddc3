/*
 * gatehouse SDK, C++ wrapper -- streams: one HTTP request/response exchange as a filter sees it.
 *
 * Ownership: the stream belongs to the kernel; gh::Stream is a non-owning handle (cheap to copy),
 * valid until STREAM_END returns (the kernel then reuses it for the connection's next request).
 * Views it hands out are borrowed, as gatehouse/host.h says: facts until the phase ends (peer_addr
 * changes when a retry picks another server), header views until the header block is modified
 * or the phase ends, body chunks for the on_*_body call, body_held() as its comment says. "The
 * phase ends" when the kernel moves on from it (after stream_resume for a paused hook); inside
 * on_*_body it means when that call returns. Copy what you keep longer.
 * Thread: the stream's worker thread only, inside a filter hook or an async completion for that
 * stream. Include <gatehouse/sdk.hpp> rather than this file.
 */
#ifndef GATEHOUSE_SDK_STREAM_HPP
#define GATEHOUSE_SDK_STREAM_HPP

#include "gatehouse/sdk/core.hpp"

#include <initializer_list>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace gh {

/* A body chunk passed to on_request_body / on_response_body.
 * Ownership: `data` is borrowed for the call (the kernel reuses the buffer). Thread: the stream's
 * worker. */
struct Chunk {
    std::string_view data;
    bool last = false; /* no more data follows (data may be empty) */
    bool more = false; /* GH_CHUNK_MORE (1.1): more bytes already waiting; no need to flush */
};

/* One header field as a pair of views. Ownership: borrowed (see Stream). */
using HeaderField = std::pair<std::string_view, std::string_view>;

/* A non-owning handle to a stream. Ownership and thread: as the file comment. */
class Stream {
  public:
    explicit Stream(gh_stream_t *s) noexcept : s_(s) {}
    gh_stream_t *raw() const noexcept { return s_; }

    /* ---- facts (GH_FACT_*); empty if the kernel has none (e.g. route before routing) ----
     * Views valid until the phase ends (see the file comment). */
    std::string_view fact(uint32_t which) const noexcept {
        gh_str_t out{nullptr, 0};
        return host().stream_get(s_, which, &out) == GH_OK ? sv(out) : std::string_view();
    }
    std::string_view method() const noexcept { return fact(GH_FACT_METHOD); }
    std::string_view target() const noexcept { return fact(GH_FACT_TARGET); }
    std::string_view path() const noexcept { return fact(GH_FACT_PATH); }
    std::string_view query() const noexcept { return fact(GH_FACT_QUERY); }
    std::string_view host_name() const noexcept { return fact(GH_FACT_HOST); }
    std::string_view scheme() const noexcept { return fact(GH_FACT_SCHEME); }
    std::string_view client_addr() const noexcept { return fact(GH_FACT_CLIENT_ADDR); }
    std::string_view route() const noexcept { return fact(GH_FACT_ROUTE); }
    std::string_view upstream() const noexcept { return fact(GH_FACT_UPSTREAM); }
    std::string_view peer_addr() const noexcept { return fact(GH_FACT_PEER_ADDR); }
    std::string_view version() const noexcept { return fact(GH_FACT_VERSION); }
    /* (1.4) The request-target as the client sent it (target() is normalised). */
    std::string_view raw_target() const noexcept { return fact(GH_FACT_RAW_TARGET); }

    /* ---- headers; `which` is GH_HEADERS_REQUEST or GH_HEADERS_RESPONSE ---- */
    /* The index-th field named `name` (case-insensitive), or nullopt. The view is valid until
     * the header block is modified (set/add/remove_header, respond) or the phase ends. */
    std::optional<std::string_view> header(uint32_t which, std::string_view name,
                                           std::size_t index = 0) const noexcept {
        gh_str_t out{nullptr, 0};
        if (host().header_get(s_, which, str(name), index, &out) != GH_OK)
            return std::nullopt;
        return sv(out);
    }
    std::optional<std::string_view> request_header(std::string_view name) const noexcept {
        return header(GH_HEADERS_REQUEST, name);
    }
    std::optional<std::string_view> response_header(std::string_view name) const noexcept {
        return header(GH_HEADERS_RESPONSE, name);
    }
    std::size_t header_count(uint32_t which) const noexcept { return host().header_count(s_, which); }
    /* Field i in wire order, or nullopt past the end. Views as header(). */
    std::optional<HeaderField> header_at(uint32_t which, std::size_t i) const noexcept {
        gh_str_t name{nullptr, 0}, value{nullptr, 0};
        if (host().header_at(s_, which, i, &name, &value) != GH_OK)
            return std::nullopt;
        return HeaderField{sv(name), sv(value)};
    }
    /* Replace every field named `name` with one. GH_ERR_STATE outside the allowed phases,
     * GH_ERR_INVALID for a bad name/value. Name and value copied. */
    gh_status_t set_header(uint32_t which, std::string_view name, std::string_view value) noexcept {
        return host().header_set(s_, which, str(name), str(value), GH_HEADER_SET);
    }
    /* Append one more field. Status as set_header. */
    gh_status_t add_header(uint32_t which, std::string_view name, std::string_view value) noexcept {
        return host().header_set(s_, which, str(name), str(value), GH_HEADER_ADD);
    }
    /* Remove every field named `name`. Status as set_header. */
    gh_status_t remove_header(uint32_t which, std::string_view name) noexcept {
        return host().header_set(s_, which, str(name), gh_str_t{"", 0}, GH_HEADER_REMOVE);
    }

    /* ---- responses ---- */
    /* The response status: a local reply's, else the upstream's (0 before one exists); in
     * on_upstream_error the 502/503/504 the kernel would send. */
    uint32_t response_status() const noexcept { return host().response_status(s_); }
    /* Prepare a local reply, then return GH_RESPOND from the hook. Allowed up to PRE_UPSTREAM,
     * in RESPONSE_HEADERS and (1.2) in UPSTREAM_ERROR. Headers and body copied; more than 16
     * headers: GH_ERR_LIMIT. */
    gh_status_t respond(uint32_t status, std::initializer_list<HeaderField> headers = {},
                        std::string_view body = {}) noexcept {
        constexpr std::size_t inline_headers = 16;
        gh_header_t fields[inline_headers];
        if (headers.size() > inline_headers)
            return GH_ERR_LIMIT;
        std::size_t n = 0;
        for (const HeaderField &h : headers)
            fields[n++] = gh_header_t{str(h.first), str(h.second)};
        return host().respond(s_, status, fields, n, gh::bytes(body));
    }
    /* respond() with any range of HeaderField-like pairs of string views (several Set-Cookie
     * fields, a list built at run time); more than 16 headers: GH_ERR_LIMIT. May throw
     * std::bad_alloc. */
    template <class Range, class = decltype(std::begin(std::declval<const Range &>()))>
    gh_status_t respond(uint32_t status, const Range &headers, std::string_view body = {}) {
        std::vector<gh_header_t> fields;
        for (const auto &h : headers)
            fields.push_back(gh_header_t{str(h.first), str(h.second)});
        if (fields.size() > 16)
            return GH_ERR_LIMIT;
        return host().respond(s_, status, fields.data(), fields.size(), gh::bytes(body));
    }

    /* ---- per-stream module context (one slot per stream and module) ----
     * The kernel only keeps the pointer, and forgets it after STREAM_END; the module owns what it
     * points to. */
    /* The pointer stored with set_ctx, or nullptr. */
    template <class T>
    T *ctx() const noexcept {
        return static_cast<T *>(host().stream_ctx(s_, detail::g_self));
    }
    /* Store a pointer; the module still owns what it points to (free it in STREAM_END). */
    void set_ctx(void *ctx) noexcept { host().stream_set_ctx(s_, detail::g_self, ctx); }
    /* Allocate a T, store it as the context and return it. May throw. Pair with take_ctx. */
    template <class T, class... Args>
    T &emplace_ctx(Args &&...args) {
        auto owned = std::make_unique<T>(std::forward<Args>(args)...);
        set_ctx(owned.get());
        return *owned.release();
    }
    /* Clear the slot and hand back ownership of a context made with emplace_ctx. */
    template <class T>
    std::unique_ptr<T> take_ctx() noexcept {
        std::unique_ptr<T> owned(ctx<T>());
        set_ctx(nullptr);
        return owned;
    }

    /* ---- async ---- */
    /* After a hook returned GH_PAUSE: continue with `action`, exactly once, on this worker (a
     * call from inside that hook is ignored). The kernel continues from a fresh call stack.
     * Never after the stream's STREAM_END. */
    void resume(gh_action_t action = GH_CONTINUE) noexcept { host().stream_resume(s_, action); }

    /* ---- bodies ---- */
    /* Subscribe to a body during a header phase (request: REQUEST_HEADERS or ACCESS; response:
     * RESPONSE_HEADERS). `mode` is GH_BODY_STREAM or GH_BODY_BUFFER. */
    gh_status_t body_subscribe(uint32_t direction, uint32_t mode = GH_BODY_STREAM) noexcept {
        return host().body_subscribe(s_, detail::g_self, direction, mode);
    }
    /* Emit bytes downstream of this filter, from inside on_*_body for that direction
     * (GH_ERR_STATE elsewhere). Copied. */
    gh_status_t body_write(uint32_t direction, std::string_view data) noexcept {
        return host().body_write(s_, direction, gh::bytes(data));
    }
    /* 1.1: in RESPONSE_HEADERS, ask to see up to `bytes` of the response body before deciding;
     * then return GH_HOLD and the hook runs again with body_held(GH_DIR_RESPONSE) (see
     * gh_host_api_v1::body_peek). GH_ERR_UNSUPPORTED on a 1.0 kernel. */
    gh_status_t body_peek(uint32_t direction, uint64_t bytes) noexcept {
        if (!GH_HOST_HAS(&host(), body_peek))
            return GH_ERR_UNSUPPORTED;
        return host().body_peek(s_, detail::g_self, direction, bytes);
    }
    /* 1.1: true once the kernel holds the whole response body (GH_FACT_RESPONSE_BODY). */
    bool response_body_complete() const noexcept { return fact(GH_FACT_RESPONSE_BODY) == "complete"; }
    /* The body held so far (GH_BODY_BUFFER, or a response peek). Once the body is complete (or
     * the peek done: the GH_HOLD re-run) the view is valid until the phase ends; while body still
     * arrives the kernel appends between callbacks, so use it only before the hook returns. */
    std::optional<std::string_view> body_held(uint32_t direction) const noexcept {
        gh_bytes_t out{nullptr, 0};
        if (host().body_held(s_, direction, &out) != GH_OK)
            return std::nullopt;
        return sv(out);
    }

    /* ---- 1.2: streamed local replies and upstream failures ---- */
    /* Like respond(), with the body to follow through reply_write (see
     * gh_host_api_v1::respond_stream). `headers` is any range of HeaderField-like pairs of
     * string views; `length` the body size or GH_LENGTH_UNKNOWN. GH_ERR_UNSUPPORTED on an older
     * kernel. */
    template <class Range>
    gh_status_t respond_stream(uint32_t status, const Range &headers,
                               uint64_t length = GH_LENGTH_UNKNOWN) {
        if (!GH_HOST_HAS(&host(), respond_stream))
            return GH_ERR_UNSUPPORTED;
        std::vector<gh_header_t> fields;
        for (const auto &h : headers)
            fields.push_back(gh_header_t{str(h.first), str(h.second)});
        return host().respond_stream(s_, status, fields.data(), fields.size(), length);
    }
    /* The body of a respond_stream reply cannot be completed: the kernel closes the connection
     * so the client sees a truncated response (GH_CHUNK_ABORT). May run LOG and STREAM_END
     * before it returns, as reply_write. */
    gh_status_t reply_abort() noexcept {
        if (!GH_HOST_HAS(&host(), reply_write))
            return GH_ERR_UNSUPPORTED;
        return host().reply_write(s_, gh_bytes_t{nullptr, 0}, GH_CHUNK_ABORT);
    }
    /* The next piece of a respond_stream body; `last` ends it. Copied. A call that ends the body
     * (last, reply_abort, bytes past `length`) may run LOG and STREAM_END before it returns:
     * touch neither the stream nor your context after it. */
    gh_status_t reply_write(std::string_view data, bool last = false) noexcept {
        if (!GH_HOST_HAS(&host(), reply_write))
            return GH_ERR_UNSUPPORTED;
        return host().reply_write(s_, gh::bytes(data), last ? GH_CHUNK_LAST : 0u);
    }
    /* In on_upstream_error: why the upstream failed ("connect", "timeout", "reset", "invalid",
     * "unavailable"); empty in other phases. */
    std::string_view upstream_error() const noexcept { return fact(GH_FACT_UPSTREAM_ERROR); }

    /* ---- 1.3: access log ---- */
    /* Add `name=value` to this request's access-log line, written as `MODULE.name` (see
     * gh_host_api_v1::log_field: name 1..64 of [a-z0-9_], value up to 1024 bytes, 32 fields;
     * setting a name again replaces it). Any phase up to LOG; GH_ERR_UNSUPPORTED on an older
     * kernel. Copied. */
    gh_status_t log_field(std::string_view name, std::string_view value) noexcept {
        if (!GH_HOST_HAS(&host(), log_field))
            return GH_ERR_UNSUPPORTED;
        return host().log_field(s_, detail::g_self, str(name), str(value));
    }

  private:
    gh_stream_t *s_;
};

} // namespace gh

#endif // GATEHOUSE_SDK_STREAM_HPP
