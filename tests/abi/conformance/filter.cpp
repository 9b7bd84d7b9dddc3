// abi_conformance: filter hooks. ACCESS pauses and runs timer -> offload -> post -> callout ->
// stream_resume; header phases exercise every header/fact/context function; RESPONSE_HEADERS
// writes x-abi-conformance with the verdict.
#include "conformance.hpp"

#include <algorithm>
#include <memory>

namespace abi_conformance {

namespace {

const char *const kPhaseNames[GH_PHASE_UPSTREAM_ERROR + 1] = {
    "request_headers", "access",           "request_body",  "pre_upstream", "balancer",
    "upstream_request", "response_headers", "response_body", "log",          "stream_end",
    "upstream_error"};

std::atomic<bool> g_cancelled_timer_fired{false};

gh_status_t set_header(gh_stream_t *s, uint32_t which, std::string_view name,
                       std::string_view value, uint32_t mode) noexcept {
    return g_host->header_set(s, which, str(name), str(value), mode);
}

// The index-th value of `name`, or the status as a marker when absent.
bool header_is(gh_stream_t *s, uint32_t which, std::string_view name, size_t index,
               std::string_view expected) noexcept {
    gh_str_t v{nullptr, 0};
    return g_host->header_get(s, which, str(name), index, &v) == GH_OK && sv(v) == expected;
}

// How many fields named `name` there are.
size_t header_values(gh_stream_t *s, uint32_t which, std::string_view name) noexcept {
    gh_str_t v{nullptr, 0};
    size_t n = 0;
    while (g_host->header_get(s, which, str(name), n, &v) == GH_OK)
        ++n;
    return n;
}

bool header_absent(gh_stream_t *s, uint32_t which, std::string_view name) noexcept {
    gh_str_t v{nullptr, 0};
    return g_host->header_get(s, which, str(name), 0, &v) == GH_ERR_NOT_FOUND;
}

bool fact_nonempty(gh_stream_t *s, uint32_t fact) noexcept {
    gh_str_t v{nullptr, 0};
    return g_host->stream_get(s, fact, &v) == GH_OK && v.len > 0;
}

void resume(StreamState *st, gh_action_t action) noexcept {
    st->chain_pending = false;
    if (st->ended) { // the stream went away while we were paused: just free
        delete st;
        g_live_streams.fetch_sub(1);
        return;
    }
    g_host->stream_resume(st->stream, action);
}

// ---- the PAUSE chain ---------------------------------------------------------------------------
void finish_chain(StreamState *st) noexcept {
    const double waited = static_cast<double>(g_host->now_ms() - st->paused_at_ms);
    g_host->metric_record(g_metrics.pause_ms, GH_METRIC_OBSERVE, nullptr, 0, waited);
    resume(st, GH_CONTINUE);
}

void on_callout(void *arg, const gh_callout_response_t *r) noexcept {
    auto *st = static_cast<StreamState *>(arg);
    st->check(g_host->current_worker() == st->worker, "callout_worker");
    st->check(r != nullptr && r->struct_size >= sizeof(gh_callout_response_t) && r->status == 200 &&
                  sv(r->body) == "callout-ok",
              "callout_response");
    if (st->config->watch_port != 0)
        return start_watch_leg(st, [](StreamState *leg_st, bool) noexcept {
            finish_chain(leg_st);
        });
    finish_chain(st);
}

void on_posted(void *arg) noexcept {
    auto *st = static_cast<StreamState *>(arg);
    st->check(g_host->current_worker() == st->worker, "post_worker");
    const gh_header_t headers[] = {{str("x-abi-callout"), str("1")}};
    gh_callout_request_t req{};
    req.struct_size = sizeof(req);
    req.timeout_ms = 5000;
    req.upstream = str(st->config->callout_upstream);
    req.method = str("GET");
    req.target = str("/callout");
    req.headers = headers;
    req.header_count = 1;
    req.body = gh_bytes_t{nullptr, 0};
    const gh_status_t r = g_host->callout(&req, &on_callout, st);
    st->check(r == GH_OK, "callout");
    if (r != GH_OK)
        resume(st, GH_CONTINUE);
}

void offload_work(void *arg) noexcept { // a kernel pool thread
    auto *st = static_cast<StreamState *>(arg);
    st->offload_off_worker = g_host->current_worker() == nullptr;
    st->offload_ran = true;
}

void offload_done(void *arg) noexcept {
    auto *st = static_cast<StreamState *>(arg);
    st->check(st->offload_ran && st->offload_off_worker, "offload_work");
    st->check(g_host->current_worker() == st->worker, "offload_done_worker");
    const gh_status_t r = g_host->post(st->worker, &on_posted, st);
    st->check(r == GH_OK, "post");
    if (r != GH_OK)
        resume(st, GH_CONTINUE);
}

void on_timer(void *arg) noexcept {
    auto *st = static_cast<StreamState *>(arg);
    st->check(g_host->current_worker() == st->worker, "timer_worker");
    const gh_status_t r = g_host->offload(&offload_work, &offload_done, st);
    st->check(r == GH_OK, "offload");
    if (r != GH_OK)
        resume(st, GH_CONTINUE);
}

void on_cancelled_timer(void *) noexcept {
    g_cancelled_timer_fired = true;
    global_check(false, kTimerCancel);
}

// ---- phases ------------------------------------------------------------------------------------
gh_action_t request_headers(gh_stream_t *s) noexcept {
    global_check(!g_cancelled_timer_fired, kTimerCancel);
    if (g_host->stream_ctx(s, g_self) != nullptr)
        return GH_ERROR; // a fresh stream must have an empty slot
    auto *st = new (std::nothrow) StreamState();
    if (st == nullptr)
        return GH_ERROR;
    st->stream = s;
    g_host->stream_set_ctx(s, g_self, st);
    g_live_streams.fetch_add(1);
    g_host->metric_record(g_metrics.live_streams, GH_METRIC_ADD, nullptr, 0, 1);
    st->check(g_host->stream_ctx(s, g_self) == st, "stream_ctx");
    for (uint32_t f : {GH_FACT_METHOD, GH_FACT_TARGET, GH_FACT_PATH, GH_FACT_HOST, GH_FACT_SCHEME,
                       GH_FACT_CLIENT_ADDR, GH_FACT_VERSION})
        st->check(fact_nonempty(s, f), "stream_get");
    gh_str_t target{nullptr, 0}, query{nullptr, 0}, route{nullptr, 0};
    g_host->stream_get(s, GH_FACT_TARGET, &target);
    const size_t q = sv(target).find('?');
    const gh_status_t qs = g_host->stream_get(s, GH_FACT_QUERY, &query);
    if (q != std::string_view::npos)
        st->check(qs == GH_OK && sv(query) == sv(target).substr(q + 1), "stream_get_query");
    else
        st->check(qs == GH_ERR_NOT_FOUND || (qs == GH_OK && query.len == 0), "stream_get_query");
    const gh_status_t rs = g_host->stream_get(s, GH_FACT_ROUTE, &route);
    st->check(rs == GH_ERR_NOT_FOUND || (rs == GH_OK && route.len == 0), "stream_get_route_early");
    gh_str_t unknown{nullptr, 0};
    st->check(g_host->stream_get(s, 1000u, &unknown) != GH_OK, "stream_get_unknown_fact");

    const size_t n = g_host->header_count(s, GH_HEADERS_REQUEST);
    gh_str_t name{nullptr, 0}, value{nullptr, 0};
    st->check(n >= 1 && g_host->header_at(s, GH_HEADERS_REQUEST, 0, &name, &value) == GH_OK &&
                  name.len > 0,
              "header_at");
    st->check(g_host->header_at(s, GH_HEADERS_REQUEST, n, &name, &value) != GH_OK, "header_at_end");
    gh_str_t host_value{nullptr, 0};
    st->check(g_host->header_get(s, GH_HEADERS_REQUEST, str("HOST"), 0, &host_value) == GH_OK &&
                  host_value.len > 0,
              "header_get_case_insensitive");
    st->check(header_absent(s, GH_HEADERS_REQUEST, "x-abi-never-sent"), "header_get_absent");
    st->phases_seen |= GH_PHASE_BIT(GH_PHASE_REQUEST_HEADERS);
    return GH_CONTINUE;
}

gh_action_t access(gh_stream_t *s, StreamState *st, const Config *cfg) noexcept {
    // x-abi-hold: 1 -- GH_HOLD the request body, then this hook runs again once it is complete,
    // with every byte of it seen first; also for a request without a body (complete at once).
    if (header_is(s, GH_HEADERS_REQUEST, "x-abi-hold", 0, "1")) {
        if (!st->hold_asked) {
            st->hold_asked = true;
            st->check(g_host->body_subscribe(s, g_self, GH_DIR_REQUEST, GH_BODY_STREAM) == GH_OK,
                      "body_subscribe_hold");
            return GH_HOLD;
        }
        st->held_bytes = st->request_body_bytes; // the re-run
    }
    st->config = cfg;
    gh_str_t body_fact{nullptr, 0};
    st->check(g_host->stream_get(s, GH_FACT_RESPONSE_BODY, &body_fact) == GH_ERR_STATE,
              "fact_response_body_early");
    st->worker = g_host->current_worker();
    st->check(st->worker != nullptr, "current_worker");
    st->check(fact_nonempty(s, GH_FACT_ROUTE) && fact_nonempty(s, GH_FACT_UPSTREAM),
              "stream_get_routed");
    // Request header edits: SET, ADD twice, REMOVE; bad names and values are refused.
    st->check(set_header(s, GH_HEADERS_REQUEST, "x-abi-set", "1", GH_HEADER_SET) == GH_OK &&
                  header_is(s, GH_HEADERS_REQUEST, "x-abi-set", 0, "1"),
              "header_set_set");
    const size_t sent = header_values(s, GH_HEADERS_REQUEST, "x-abi-add"); // ADD appends to these
    st->check(set_header(s, GH_HEADERS_REQUEST, "x-abi-add", "a", GH_HEADER_ADD) == GH_OK &&
                  set_header(s, GH_HEADERS_REQUEST, "x-abi-add", "b", GH_HEADER_ADD) == GH_OK &&
                  header_is(s, GH_HEADERS_REQUEST, "x-abi-add", sent, "a") &&
                  header_is(s, GH_HEADERS_REQUEST, "x-abi-add", sent + 1, "b") &&
                  header_values(s, GH_HEADERS_REQUEST, "x-abi-add") == sent + 2,
              "header_set_add");
    st->check(set_header(s, GH_HEADERS_REQUEST, "x-abi-remove", "", GH_HEADER_REMOVE) == GH_OK &&
                  header_absent(s, GH_HEADERS_REQUEST, "x-abi-remove"),
              "header_set_remove");
    st->check(set_header(s, GH_HEADERS_REQUEST, "bad name", "v", GH_HEADER_SET) == GH_ERR_INVALID &&
                  set_header(s, GH_HEADERS_REQUEST, "x-abi-bad", "a\r\nb: c", GH_HEADER_SET) ==
                      GH_ERR_INVALID,
              "header_set_validates");
    if (!st->hold_asked) // a held request subscribed before its GH_HOLD
        st->check(g_host->body_subscribe(s, g_self, GH_DIR_REQUEST, GH_BODY_STREAM) == GH_OK,
                  "body_subscribe_request");
    st->transform_upper = header_is(s, GH_HEADERS_REQUEST, "x-abi-transform", 0, "upper");
    // The PAUSE chain, plus a second timer that is cancelled and must never fire.
    const uint64_t t0 = g_host->now_ms();
    st->paused_at_ms = g_host->now_ms();
    st->check(st->paused_at_ms >= t0, "now_ms");
    gh_timer_t *never = g_host->timer_start(60000, &on_cancelled_timer, nullptr);
    st->check(never != nullptr, "timer_start");
    if (never != nullptr)
        g_host->timer_cancel(never);
    gh_timer_t *timer = g_host->timer_start(static_cast<uint64_t>(cfg->timer_ms), &on_timer, st);
    st->check(timer != nullptr, "timer_start");
    if (timer == nullptr)
        return GH_CONTINUE;
    st->chain_pending = true;
    return GH_PAUSE;
}

std::string verdict(const StreamState *st) {
    std::string failed = global_failures();
    for (const std::string &f : st->failures)
        failed += (failed.empty() ? "" : ",") + f;
    return failed.empty() ? "ok" : "fail:" + failed;
}

std::string verdict_text(const StreamState *st) { return verdict(st); }

// ---- 1.2: a streamed local reply, written from timers after the hook returned ----------------
struct StreamedReply {
    gh_stream_t *stream;
    StreamState *st;
    int step = 0;
};

void on_stream_piece(void *arg) noexcept {
    auto *r = static_cast<StreamedReply *>(arg);
    if (r->st->ended) { // the client went away: STREAM_END ran and left the state to us
        delete r->st;
        g_live_streams.fetch_sub(1);
        delete r;
        return;
    }
    const std::string_view piece = r->step == 0 ? "part1" : "part2";
    const bool last = r->step == 1;
    const gh_status_t rc = g_host->reply_write(
        r->stream, gh_bytes_t{reinterpret_cast<const uint8_t *>(piece.data()), piece.size()},
        last ? GH_CHUNK_LAST : 0u);
    r->st->check(rc == GH_OK, "reply_write");
    if (last) {
        r->st->check(g_host->reply_write(r->stream, gh_bytes_t{nullptr, 0}, GH_CHUNK_LAST) ==
                         GH_ERR_STATE,
                     "reply_write_after_last");
        r->st->chain_pending = false;
        delete r;
        return;
    }
    ++r->step;
    // 1.2 pacing: the next piece once the client has taken this one.
    const gh_status_t drained = GH_HOST_HAS(g_host, reply_drained)
                                    ? g_host->reply_drained(r->stream, &on_stream_piece, r)
                                    : GH_ERR_UNSUPPORTED;
    r->st->check(drained == GH_OK, "reply_drained");
    if (drained != GH_OK) {
        r->st->chain_pending = false;
        delete r;
    }
}

gh_action_t stream_reply(gh_stream_t *s, StreamState *st, uint64_t length) noexcept {
    const gh_header_t headers[] = {{str("content-type"), str("text/plain")}};
    if (!GH_HOST_HAS(g_host, respond_stream))
        return GH_ERROR;
    const gh_status_t r = g_host->respond_stream(s, 200, headers, 1, length);
    st->check(r == GH_OK, "respond_stream");
    st->check(g_host->reply_write(s, gh_bytes_t{nullptr, 0}, 0) == GH_ERR_STATE,
              "reply_write_before_respond");
    st->responded_locally = r == GH_OK;
    auto *piece = new (std::nothrow) StreamedReply{s, st};
    if (r != GH_OK || piece == nullptr || g_host->timer_start(20, &on_stream_piece, piece) == nullptr) {
        delete piece;
        return GH_ERROR;
    }
    st->chain_pending = true; // the timers own the state until the last piece
    return GH_RESPOND;
}

gh_action_t upstream_error(gh_stream_t *s, StreamState *st) noexcept {
    gh_str_t path{nullptr, 0}, why{nullptr, 0};
    g_host->stream_get(s, GH_FACT_PATH, &path);
    st->check(g_host->stream_get(s, GH_FACT_UPSTREAM_ERROR, &why) == GH_OK && why.len > 0,
              "fact_upstream_error");
    const uint32_t status = g_host->response_status(s);
    st->check(status == 502 || status == 503 || status == 504, "upstream_error_status");
    if (sv(path).rfind("/abi/dead/answer", 0) != 0)
        return GH_CONTINUE; // the kernel's own 502 goes out
    std::string body;
    try {
        body = "upstream-error:" + std::string(sv(why)) + ":" + verdict_text(st);
    } catch (...) {
        return GH_ERROR;
    }
    const gh_header_t headers[] = {{str("content-type"), str("text/plain")}};
    const gh_status_t r = g_host->respond(
        s, 299, headers, 1, gh_bytes_t{reinterpret_cast<const uint8_t *>(body.data()), body.size()});
    st->check(r == GH_OK, "respond_upstream_error");
    return r == GH_OK ? GH_RESPOND : GH_ERROR;
}

gh_action_t pre_upstream(gh_stream_t *s, StreamState *st) noexcept {
    gh_str_t path{nullptr, 0};
    if (g_host->stream_get(s, GH_FACT_PATH, &path) == GH_OK && sv(path) == "/abi/stream")
        return stream_reply(s, st, GH_LENGTH_UNKNOWN);
    if (g_host->stream_get(s, GH_FACT_PATH, &path) == GH_OK && sv(path) == "/abi/stream-hang") {
        // A streamed reply whose body never comes: only the client or shutdown ends it, and
        // STREAM_END must still run (the drain-timeout test checks nothing leaked).
        const gh_header_t headers[] = {{str("content-type"), str("text/plain")}};
        const gh_status_t r = g_host->respond_stream(s, 200, headers, 1, GH_LENGTH_UNKNOWN);
        st->check(r == GH_OK, "respond_stream");
        st->responded_locally = r == GH_OK;
        return r == GH_OK ? GH_RESPOND : GH_ERROR;
    }
    if (g_host->stream_get(s, GH_FACT_PATH, &path) == GH_OK && sv(path) == "/abi/stream-short")
        return stream_reply(s, st, 20); // writes 10 bytes: the kernel must not end it cleanly
    if (g_host->stream_get(s, GH_FACT_PATH, &path) == GH_OK && sv(path) == "/abi/drop") {
        st->responded_locally = true; // nothing goes upstream
        return GH_DROP;               // 1.4: the connection closes without a response
    }
    if (g_host->stream_get(s, GH_FACT_PATH, &path) == GH_OK && sv(path) == "/abi/raw") {
        // 1.4: the target as the client sent it, beside the normalised one.
        gh_str_t raw{nullptr, 0}, target{nullptr, 0};
        st->check(g_host->stream_get(s, GH_FACT_RAW_TARGET, &raw) == GH_OK, "raw_target");
        st->check(g_host->stream_get(s, GH_FACT_TARGET, &target) == GH_OK, "target");
        const std::string body = std::string(sv(raw)) + "\n" + std::string(sv(target));
        const gh_header_t headers[] = {{str("content-type"), str("text/plain")}};
        const gh_status_t r = g_host->respond(
            s, 299, headers, 1,
            gh_bytes_t{reinterpret_cast<const uint8_t *>(body.data()), body.size()});
        st->check(r == GH_OK, "respond_raw");
        st->responded_locally = r == GH_OK;
        return r == GH_OK ? GH_RESPOND : GH_ERROR;
    }
    if (g_host->stream_get(s, GH_FACT_PATH, &path) != GH_OK || sv(path) != "/abi/respond")
        return GH_CONTINUE;
    const gh_header_t headers[] = {{str("content-type"), str("text/plain")},
                                   {str("x-abi-local"), str("1")}};
    const std::string_view body = "conformance";
    const gh_status_t r =
        g_host->respond(s, 299, headers, 2,
                        gh_bytes_t{reinterpret_cast<const uint8_t *>(body.data()), body.size()});
    st->check(r == GH_OK, "respond");
    st->responded_locally = r == GH_OK;
    return r == GH_OK ? GH_RESPOND : GH_ERROR;
}

gh_action_t upstream_request(gh_stream_t *s, StreamState *st) noexcept {
    st->check(set_header(s, GH_HEADERS_REQUEST, "x-abi-upstream-request", "1", GH_HEADER_SET) ==
                  GH_OK,
              "header_set_upstream_request");
    return GH_CONTINUE;
}


gh_action_t response_headers(gh_stream_t *s, StreamState *st, const Config *cfg) noexcept {
    constexpr uint32_t kNeeded = GH_PHASE_BIT(GH_PHASE_REQUEST_HEADERS) |
                                 GH_PHASE_BIT(GH_PHASE_ACCESS) |
                                 GH_PHASE_BIT(GH_PHASE_PRE_UPSTREAM) |
                                 GH_PHASE_BIT(GH_PHASE_UPSTREAM_REQUEST);
    if (st->responded_locally)
        return GH_CONTINUE; // our own 299: nothing upstream-related to check
    // 1.1 body_peek: refused without a subscription, for the request, for 0 bytes; then the
    // first 16 bytes (or the whole body), and this hook runs again to see them.
    gh_str_t method{nullptr, 0};
    g_host->stream_get(s, GH_FACT_METHOD, &method);
    const bool bodiless = sv(method) == "HEAD" || g_host->response_status(s) == 204 ||
                          g_host->response_status(s) == 304;
    if (!st->peek_asked && !bodiless) {
        gh_str_t fact{nullptr, 0};
        st->check(g_host->stream_get(s, GH_FACT_RESPONSE_BODY, &fact) == GH_OK &&
                      sv(fact) == "partial",
                  "fact_response_body_partial");
        st->check(g_host->body_peek(s, g_self, GH_DIR_RESPONSE, 16) == GH_ERR_STATE,
                  "body_peek_unsubscribed");
        st->check(g_host->body_subscribe(s, g_self, GH_DIR_RESPONSE, GH_BODY_STREAM) == GH_OK,
                  "body_subscribe_for_peek");
        st->check(g_host->body_peek(s, g_self, GH_DIR_REQUEST, 16) == GH_ERR_INVALID &&
                      g_host->body_peek(s, g_self, GH_DIR_RESPONSE, 0) == GH_ERR_INVALID,
                  "body_peek_refusals");
        if (g_host->body_peek(s, g_self, GH_DIR_RESPONSE, 16) == GH_OK) {
            st->peek_asked = true;
            return GH_HOLD;
        }
        st->check(false, "body_peek");
    } else if (st->peek_asked) {
        gh_bytes_t held{nullptr, 0};
        gh_str_t fact{nullptr, 0};
        bool complete = g_host->stream_get(s, GH_FACT_RESPONSE_BODY, &fact) == GH_OK &&
                        sv(fact) == "complete";
        st->check(g_host->body_held(s, GH_DIR_RESPONSE, &held) == GH_OK &&
                      (held.len >= 16 || complete) && (held.len == 0 || held.ptr != nullptr),
                  "body_peek_held");
        st->check(g_host->body_peek(s, g_self, GH_DIR_RESPONSE, 16) == GH_ERR_STATE,
                  "body_peek_once");
    }
    st->check((st->phases_seen & kNeeded) == kNeeded, "phases_called");
    st->check(st->balancer_ran, "balancer_select_for_stream");
    st->check(g_host->response_status(s) == 200, "response_status");
    st->check(fact_nonempty(s, GH_FACT_PEER_ADDR), "stream_get_peer_addr");
    st->check(g_host->header_count(s, GH_HEADERS_RESPONSE) >= 1, "header_count_response");
    st->check(header_is(s, GH_HEADERS_RESPONSE, "x-backend", 0, "1"), "header_get_response");
    if (st->hold_asked) {
        const std::string held = std::to_string(st->held_bytes);
        st->check(set_header(s, GH_HEADERS_RESPONSE, "x-abi-held-bytes", held.c_str(),
                             GH_HEADER_SET) == GH_OK,
                  "header_set_held_bytes");
    }
    st->check(set_header(s, GH_HEADERS_RESPONSE, "x-abi-resp-set", "1", GH_HEADER_SET) == GH_OK &&
                  set_header(s, GH_HEADERS_RESPONSE, "x-abi-resp-add", "a", GH_HEADER_ADD) ==
                      GH_OK &&
                  set_header(s, GH_HEADERS_RESPONSE, "x-abi-resp-add", "b", GH_HEADER_ADD) ==
                      GH_OK &&
                  header_is(s, GH_HEADERS_RESPONSE, "x-abi-resp-add", 1, "b"),
              "header_set_response");
    st->check(set_header(s, GH_HEADERS_RESPONSE, "x-backend-remove", "", GH_HEADER_REMOVE) ==
                      GH_OK &&
                  header_absent(s, GH_HEADERS_RESPONSE, "x-backend-remove"),
              "header_remove_response");
    st->check(set_header(s, GH_HEADERS_REQUEST, "x-abi-too-late", "1", GH_HEADER_SET) ==
                  GH_ERR_STATE,
              "header_set_request_too_late");
    st->check(g_host->stream_ctx(s, g_self) == st, "stream_ctx");
    st->check(g_host->body_subscribe(s, g_self, GH_DIR_RESPONSE, GH_BODY_BUFFER) == GH_OK,
              "body_subscribe_response");
    if (!cfg->tag.empty())
        set_header(s, GH_HEADERS_RESPONSE, "x-abi-route-tag", cfg->tag, GH_HEADER_SET);
    try {
        const std::string v = verdict(st);
        set_header(s, GH_HEADERS_RESPONSE, "x-abi-conformance", v, GH_HEADER_SET);
        if (v != "ok")
            log(GH_LOG_ERROR, "abi_conformance: verdict " + v);
    } catch (...) {
        return GH_ERROR;
    }
    st->header_written = true;
    return GH_CONTINUE;
}

// 1.3 log_field: `abi_conformance.checks` carries this stream's verdict into the access log
// (the test reads it there); bad names and values are refused.
void log_fields(gh_stream_t *s, StreamState *st) noexcept {
    const auto put = [s](std::string_view name, std::string_view value) noexcept {
        return g_host->log_field(s, g_self, str(name), str(value));
    };
    st->check(put("Bad-Name", "x") == GH_ERR_INVALID && put("", "x") == GH_ERR_INVALID &&
                  put(std::string(65, 'a'), "x") == GH_ERR_INVALID &&
                  put("big", std::string(1025, 'v')) == GH_ERR_INVALID,
              "log_field_refusals");
    st->check(put("checks", "pending") == GH_OK, "log_field");
    try {
        std::string verdict = "ok";
        for (const auto &f : st->failures)
            verdict = (verdict == "ok" ? "fail:" : verdict + ",") + f;
        st->check(put("checks", verdict) == GH_OK, "log_field_replace"); // replaces "pending"
    } catch (...) {
    }
}

void stream_end(gh_stream_t *s, StreamState *st) noexcept {
    st->check(g_host->log_field(s, g_self, str("late"), str("x")) == GH_ERR_STATE,
              "log_field_stream_end");
    g_host->stream_set_ctx(s, g_self, nullptr);
    st->check(g_host->stream_ctx(s, g_self) == nullptr, "stream_set_ctx_clear");
    st->ended = true;
    g_host->metric_record(g_metrics.live_streams, GH_METRIC_ADD, nullptr, 0, -1);
    if (st->chain_pending)
        return; // the chain's last callback frees it instead of resuming
    delete st;
    g_live_streams.fetch_sub(1);
}

} // namespace

void StreamState::check(bool ok, const char *name) noexcept {
    if (ok || std::find(failures.begin(), failures.end(), name) != failures.end())
        return;
    try {
        failures.emplace_back(name);
    } catch (...) {
        return;
    }
    if (header_written) {
        const gh_str_t label[] = {str(name)};
        g_host->metric_record(g_metrics.late_failures, GH_METRIC_ADD, label, 1, 1);
        try {
            log(GH_LOG_ERROR, std::string("abi_conformance: late check failed: ") + name);
        } catch (...) {
        }
    }
}

StreamState *state_of(gh_stream_t *s) noexcept {
    return static_cast<StreamState *>(g_host->stream_ctx(s, g_self));
}

gh_action_t on_phase(gh_stream_t *s, uint32_t phase, void *route_config) noexcept {
    if (phase > GH_PHASE_UPSTREAM_ERROR || route_config == nullptr)
        return GH_ERROR;
    const gh_str_t label[] = {str(kPhaseNames[phase])};
    g_host->metric_record(g_metrics.phases, GH_METRIC_ADD, label, 1, 1);
    if (phase == GH_PHASE_REQUEST_HEADERS)
        return request_headers(s);
    StreamState *st = state_of(s);
    if (st == nullptr)
        return phase >= GH_PHASE_LOG ? GH_CONTINUE : GH_ERROR;
    const auto *cfg = static_cast<const Config *>(route_config);
    // Body phases may interleave and a retry re-runs selection; the others come in kernel order.
    const bool unordered = phase == GH_PHASE_REQUEST_BODY || phase == GH_PHASE_RESPONSE_BODY ||
                           phase == GH_PHASE_BALANCER || phase == GH_PHASE_UPSTREAM_ERROR;
    if (!unordered) {
        st->check(phase >= st->last_phase, "phase_order");
        st->last_phase = phase;
    }
    st->phases_seen |= GH_PHASE_BIT(phase);
    switch (phase) {
    case GH_PHASE_ACCESS:
        return access(s, st, cfg);
    case GH_PHASE_PRE_UPSTREAM:
        return pre_upstream(s, st);
    case GH_PHASE_UPSTREAM_REQUEST:
        return upstream_request(s, st);
    case GH_PHASE_RESPONSE_HEADERS:
        return response_headers(s, st, cfg);
    case GH_PHASE_UPSTREAM_ERROR:
        return upstream_error(s, st);
    case GH_PHASE_LOG:
        st->check(g_host->response_status(s) != 0, "response_status_log");
        log_fields(s, st);
        return GH_CONTINUE;
    case GH_PHASE_STREAM_END:
        stream_end(s, st);
        return GH_CONTINUE;
    default:
        return GH_CONTINUE;
    }
}

int32_t on_body(gh_stream_t *s, uint32_t direction, const gh_body_chunk_t *chunk,
                void *route_config) noexcept {
    StreamState *st = state_of(s);
    if (st == nullptr || chunk == nullptr || route_config == nullptr)
        return GH_BODY_ABORT;
    st->check(chunk->struct_size >= sizeof(gh_body_chunk_t), "body_chunk_size");
    if (direction == GH_DIR_REQUEST) {
        st->request_body_bytes += chunk->data.len;
        // Re-emit every byte ourselves and drop the original: the upstream must see exactly what
        // was written (upper-cased, same length, when the client asked for x-abi-transform).
        if (chunk->data.len == 0)
            return GH_BODY_CONSUMED;
        gh_bytes_t out = chunk->data;
        std::string upper;
        if (st->transform_upper) {
            try {
                upper.assign(sv(chunk->data));
            } catch (...) {
                return GH_BODY_ABORT;
            }
            for (char &c : upper)
                if (c >= 'a' && c <= 'z')
                    c = static_cast<char>(c - 'a' + 'A');
            out = gh_bytes_t{reinterpret_cast<const uint8_t *>(upper.data()), upper.size()};
        }
        st->check(g_host->body_write(s, GH_DIR_REQUEST, out) == GH_OK, "body_write");
        return GH_BODY_CONSUMED;
    }
    st->response_body_bytes += chunk->data.len;
    if (chunk->flags & GH_CHUNK_LAST) {
        gh_bytes_t held{nullptr, 0};
        st->check(g_host->body_held(s, GH_DIR_RESPONSE, &held) == GH_OK &&
                      held.len <= st->response_body_bytes,
                  "body_held");
    }
    return GH_BODY_PASS;
}

} // namespace abi_conformance
