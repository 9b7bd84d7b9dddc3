// compress: the filter's hooks -- when to compress, the header edits, and the body encoding.
#include "filter.hpp"

#include "cpu_guard.hpp"

namespace compress_filter {

namespace {

// All values of a header joined with ", " (empty when absent).
std::string joined(gh::Stream &s, uint32_t which, std::string_view name) {
    std::string out;
    for (size_t i = 0;; ++i) {
        auto v = s.header(which, name, i);
        if (!v)
            break;
        if (!out.empty())
            out += ", ";
        out += *v;
    }
    return out;
}

// The request's Accept-Encoding, all its lines joined (RFC 9110 §5.3); nullopt when absent.
std::optional<std::string> accept_encoding(gh::Stream &s) {
    if (!s.request_header("accept-encoding"))
        return std::nullopt;
    return joined(s, GH_HEADERS_REQUEST, "accept-encoding");
}

Negotiation negotiate_request(gh::Stream &s, const Config &c) {
    const std::optional<std::string> ae = accept_encoding(s);
    return negotiate(ae ? std::optional<std::string_view>(*ae) : std::nullopt, c.enabled_codings);
}

bool is_event_stream(std::string_view content_type) {
    return media_type(content_type) == "text/event-stream";
}

void add_vary(gh::Stream &s) {
    if (auto merged = merge_vary(joined(s, GH_HEADERS_RESPONSE, "vary")))
        s.set_header(GH_HEADERS_RESPONSE, "vary", *merged);
}

void weaken_response_etag(gh::Stream &s) {
    if (auto etag = s.response_header("etag")) {
        const std::string weak = weaken_etag(*etag);
        if (weak != *etag)
            s.set_header(GH_HEADERS_RESPONSE, "etag", weak);
    }
}

void raise_to(std::atomic<size_t> &peak, size_t value, const gh::Gauge &gauge,
              std::string_view codec) {
    size_t seen = peak.load(std::memory_order_relaxed);
    while (value > seen)
        if (peak.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
            gauge.set(static_cast<double>(value), {codec});
            return;
        }
}

} // namespace

std::string_view skip_reason_name(SkipReason r) noexcept {
    switch (r) {
    case SkipReason::informational:
        return "informational";
    case SkipReason::no_content:
        return "no_content";
    case SkipReason::not_modified:
        return "not_modified";
    case SkipReason::head:
        return "head";
    case SkipReason::already_encoded:
        return "already_encoded";
    case SkipReason::type:
        return "type";
    case SkipReason::no_transform:
        return "no_transform";
    case SkipReason::range:
        return "range";
    case SkipReason::client_refused:
        return "client_refused";
    case SkipReason::too_small:
        return "too_small";
    case SkipReason::cpu_guard:
        return "cpu_guard";
    case SkipReason::failed:
        return "failed";
    }
    return "failed";
}

CompressFilter::CompressFilter() {
    // Zero series for every codec, so dashboards see them before the first response.
    for (std::string_view codec : {"gzip", "br"}) {
        responses_.add(0, {codec});
        bytes_in_.add(0, {codec});
        bytes_out_.add(0, {codec});
        memory_.add(0, {codec});
        peak_.set(0, {codec});
    }
}

std::unique_ptr<Config> CompressFilter::parse_config(gh::ConfigNode table, const Config &base) {
    return compress_filter::parse_config(table, base);
}

gh_action_t CompressFilter::on_upstream_request(gh::Stream s, const Config &c) {
    if (!c.enabled || c.enabled_codings.empty())
        return GH_CONTINUE;
    std::string inm = joined(s, GH_HEADERS_REQUEST, "if-none-match");
    if (inm.empty())
        return GH_CONTINUE;
    // The client may be revalidating a compressed copy we tagged W/"x": let an origin that
    // compares strongly see its own "x" as well, as nginx and Apache do.
    auto strengthened = strengthen_if_none_match(inm);
    if (!strengthened ||
        s.set_header(GH_HEADERS_REQUEST, "if-none-match", *strengthened) != GH_OK)
        return GH_CONTINUE;
    StreamState *st = s.ctx<StreamState>();
    if (st == nullptr)
        st = &s.emplace_ctx<StreamState>();
    st->client_inm = std::move(inm);
    return GH_CONTINUE;
}

gh_action_t CompressFilter::on_response_headers(gh::Stream s, const Config &c) {
    if (!c.enabled || c.enabled_codings.empty())
        return GH_CONTINUE;
    const uint32_t status = s.response_status();
    if (status < 200)
        return skip(SkipReason::informational);
    if (status == 204)
        return skip(SkipReason::no_content);
    if (status == 304) {
        on_not_modified(s, c);
        return skip(SkipReason::not_modified);
    }
    if (s.response_header("content-encoding"))
        return skip(SkipReason::already_encoded);
    auto ct = s.response_header("content-type");
    if (!ct || !type_matches(*ct, c.types))
        return skip(SkipReason::type);
    // From here the response is compressible: caches must key it on Accept-Encoding, whether
    // this particular one goes out compressed or not.
    add_vary(s);
    if (s.method() == "HEAD")
        return skip(SkipReason::head);
    if (has_no_transform(joined(s, GH_HEADERS_RESPONSE, "cache-control")))
        return skip(SkipReason::no_transform);
    if (status == 206 || s.response_header("content-range"))
        return skip(SkipReason::range);
    const Negotiation n = negotiate_request(s, c);
    if (n.coding == Coding::identity)
        return skip(SkipReason::client_refused);
    // min_length is an optimisation; a client that refuses identity gets its coding anyway.
    if (auto cl = s.response_header("content-length")) {
        auto length = parse_length(*cl);
        if (length && *length < c.min_length && n.identity_acceptable)
            return skip(SkipReason::too_small);
    } else if (c.min_length > 0 && n.identity_acceptable && !(ct && is_event_stream(*ct))) {
        // No length: look at the first bytes (the kernel holds the head until min_length bytes
        // arrived, the body ended or the upstream paused), then this hook runs again.
        StreamState *st = s.ctx<StreamState>();
        if (st == nullptr)
            st = &s.emplace_ctx<StreamState>();
        if (!st->peeked) {
            if (s.body_subscribe(GH_DIR_RESPONSE, GH_BODY_STREAM) == GH_OK &&
                s.body_peek(GH_DIR_RESPONSE, c.min_length) == GH_OK) {
                st->peeked = true;
                return GH_HOLD;
            }
            // A kernel without peeks (ABI 1.0): compress, as nginx and Envoy do.
        } else {
            auto held = s.body_held(GH_DIR_RESPONSE);
            if (s.response_body_complete() && held && held->size() < c.min_length)
                return skip(SkipReason::too_small);
            // Not complete: a stream that paused, or min_length bytes arrived: compress.
        }
    }
    if (cpu_guard_tripped(c))
        return skip(SkipReason::cpu_guard);
    return start_encoding(s, c, n.coding);
}

// RFC 9110 §15.4.5: a 304 carries the Vary (and ETag) the 200 would have had.
void CompressFilter::on_not_modified(gh::Stream s, const Config &c) {
    auto ct = s.response_header("content-type");
    if (ct && !type_matches(*ct, c.types))
        return;
    add_vary(s);
    const StreamState *st = s.ctx<StreamState>();
    auto etag = s.response_header("etag");
    if (st == nullptr || st->client_inm.empty() || !etag)
        return;
    // The client revalidated the compressed copy (its W/"x"): answer with that same tag.
    if (lists_weak_form(st->client_inm, *etag) &&
        negotiate_request(s, c).coding != Coding::identity)
        weaken_response_etag(s);
}

gh_action_t CompressFilter::start_encoding(gh::Stream s, const Config &c, Coding coding) {
    std::unique_ptr<Encoder> encoder = coding == Coding::br
                                           ? make_brotli_encoder(c.brotli_params)
                                           : make_gzip_encoder(c.gzip_params);
    if (s.body_subscribe(GH_DIR_RESPONSE, GH_BODY_STREAM) != GH_OK)
        return skip(SkipReason::failed); // left as it is
    StreamState *st = s.ctx<StreamState>();
    if (st == nullptr)
        st = &s.emplace_ctx<StreamState>();
    st->encoder = std::move(encoder);
    st->coding = coding;
    auto ct = s.response_header("content-type");
    st->always_flush = c.flush == FlushPolicy::always || (ct && is_event_stream(*ct));
    s.set_header(GH_HEADERS_RESPONSE, "content-encoding", coding_name(coding));
    s.remove_header(GH_HEADERS_RESPONSE, "accept-ranges"); // ranges of the encoded bytes: none
    weaken_response_etag(s);
    responses_.inc({coding_name(coding)});
    account_memory(*st);
    return GH_CONTINUE;
}

int32_t CompressFilter::on_response_body(gh::Stream s, const gh::Chunk &chunk, const Config &) {
    StreamState *st = s.ctx<StreamState>();
    if (st == nullptr || !st->encoder)
        return GH_BODY_PASS;
    if (chunk.data.empty() && !chunk.last)
        return GH_BODY_CONSUMED;
    const EncodeOp op = chunk.last ? EncodeOp::finish
                        : st->always_flush || !chunk.more ? EncodeOp::flush
                                                           : EncodeOp::process;
    const std::string out = st->encoder->encode(chunk.data, op);
    const std::string_view codec = coding_name(st->coding);
    bytes_in_.add(static_cast<double>(chunk.data.size()), {codec});
    bytes_out_.add(static_cast<double>(out.size()), {codec});
    account_memory(*st);
    if (!out.empty() && s.body_write(GH_DIR_RESPONSE, out) != GH_OK)
        return GH_BODY_ABORT;
    if (chunk.last) {
        release_memory(*st);
        st->encoder.reset();
    }
    return GH_BODY_CONSUMED;
}

void CompressFilter::on_stream_end(gh::Stream s, const Config &) {
    std::unique_ptr<StreamState> st = s.take_ctx<StreamState>();
    if (st && st->encoder)
        release_memory(*st);
}

gh_action_t CompressFilter::skip(SkipReason reason) {
    skipped_.inc({skip_reason_name(reason)});
    return GH_CONTINUE;
}

bool CompressFilter::cpu_guard_tripped(const Config &c) {
    if (c.max_cpu_percent >= 100)
        return false;
    thread_local CpuGuard guard;
    thread_local std::string worker;
    if (worker.empty())
        worker = std::to_string(next_worker_.fetch_add(1, std::memory_order_relaxed));
    const uint64_t window_ns = c.cpu_window_ms * 1000000u;
    const uint64_t now = monotonic_ns();
    if (guard.due(now, window_ns) && guard.sample(now, thread_cpu_ns(), window_ns))
        busy_.set(guard.busy_ratio(), {worker});
    return guard.busy_ratio() * 100 > c.max_cpu_percent;
}

void CompressFilter::account_memory(StreamState &st) {
    const std::string_view codec = coding_name(st.coding);
    const size_t now = st.encoder->memory();
    if (now != st.reported_memory) {
        memory_.add(static_cast<double>(now) - static_cast<double>(st.reported_memory), {codec});
        st.reported_memory = now;
    }
    raise_to(st.coding == Coding::br ? peak_br_ : peak_gzip_, st.encoder->peak_memory(), peak_,
             codec);
}

void CompressFilter::release_memory(StreamState &st) {
    if (st.reported_memory != 0)
        memory_.add(-static_cast<double>(st.reported_memory), {coding_name(st.coding)});
    st.reported_memory = 0;
}

} // namespace compress_filter
