#include "http/parser.hpp"

#include <boost/beast/http/error.hpp>

#include <array>
#include <string_view>

namespace gatehouse::http {

namespace {
// Any error_code works to stop Beast; the Reject value carries the meaning.
error_code stop_code() { return beast_http::error::bad_value; }

// RFC 3986 reg-name / IP-literal / port characters, as a table: Host is checked byte by byte
// on every request.
constexpr auto host_chars = [] {
    std::array<bool, 256> ok{};
    for (int c = 'a'; c <= 'z'; ++c)
        ok[c] = true;
    for (int c = 'A'; c <= 'Z'; ++c)
        ok[c] = true;
    for (int c = '0'; c <= '9'; ++c)
        ok[c] = true;
    for (unsigned char c : std::string_view("-._~:[]!$&'()*+,;=%"))
        ok[c] = true;
    return ok;
}();

bool host_char_ok(char c) { return host_chars[static_cast<unsigned char>(c)]; }
} // namespace

bool valid_host(std::string_view host) {
    for (char c : host)
        if (!host_char_ok(c))
            return false;
    return true;
}

unsigned status_for(Reject why) {
    switch (why) {
    case Reject::header_too_large:
    case Reject::too_many_headers: return 431;
    case Reject::uri_too_long: return 414;
    case Reject::body_too_large: return 413;
    case Reject::bad_version: return 505;
    default: return 400;
    }
}

FieldKind field_kind(beast_http::field f, std::string_view name) {
    using F = beast_http::field;
    switch (f) {
    case F::connection:
    case F::keep_alive:
    case F::proxy_connection:
    case F::te:
    case F::trailer:
    case F::transfer_encoding:
    case F::upgrade:
    case F::proxy_authenticate:
    case F::proxy_authorization: return FieldKind::hop_by_hop;
    case F::expect: return FieldKind::expect;
    case F::content_length: return FieldKind::content_length;
    case F::forwarded: return FieldKind::forwarded;
    case F::unknown: return classify(name);
    default: return FieldKind::other;
    }
}

template <bool isRequest>
void HeadParser<isRequest>::reset(const ParserLimits& limits) {
    // basic_parser cannot be re-initialised in place; the owner re-constructs the parser per
    // message (cheap: no allocation). This sets the per-message state after construction.
    limits_ = limits;
    this->header_limit(static_cast<std::uint32_t>(limits.header_bytes));
    // Boost 1.74: body_limit(boost::none) rejects every body; the kernel enforces its own limit.
    this->body_limit(std::uint64_t(-1));
    this->eager(false);
    head_.clear();
    head_parsed_ = 0;
    head_base_ = nullptr;
}

template <bool isRequest>
void HeadParser<isRequest>::fail(error_code& ec, Reject why, const char* reason) {
    reject_ = why;
    reason_ = reason;
    ec = stop_code();
}

template <bool isRequest>
size_t HeadParser<isRequest>::feed(const char* data, size_t size, error_code& ec) {
    base_ = data;
    base_size_ = size;
    bool in_head = !this->is_header_done();
    size_t n = 0;
    if (in_head) {
        // Beast parses a partial head field by field: it has consumed what it parsed, and the
        // views it reported point where those bytes were. The caller keeps every byte of the
        // head until it is whole (and may have moved them since): Beast goes on after what it
        // consumed, and the views follow the bytes.
        if (head_parsed_ && data != head_base_)
            rebase_views(head_, head_base_, data, head_parsed_);
        head_base_ = data;
        n = head_parsed_;
    }
    // Without eager, each put() parses one piece: the head, a chunk header, some body.
    while (n < size && !this->is_done()) {
        size_t used = this->put(boost::asio::const_buffer(data + n, size - n), ec);
        n += used;
        if (ec || used == 0 || in_head)
            break;
    }
    if (in_head && !this->is_header_done()) {
        head_parsed_ = n;
        n = 0; // nothing consumed until the head is whole
    }
    if (ec == beast_http::error::need_more)
        ec = {};
    if (ec && reject_ == Reject::none) {
        if (ec == beast_http::error::header_limit)
            reject_ = isRequest ? Reject::header_too_large : Reject::bad_request,
            reason_ = "header too large";
        else if (ec == beast_http::error::body_limit)
            reject_ = Reject::body_too_large, reason_ = "body too large";
        else
            reject_ = Reject::bad_request, reason_ = "malformed message";
    }
    return n;
}

template <bool isRequest>
void HeadParser<isRequest>::on_request_impl(beast_http::verb, boost::beast::string_view method,
                                            boost::beast::string_view target, int version,
                                            error_code& ec) {
    if constexpr (isRequest) {
        if (version / 10 != 1)
            return fail(ec, Reject::bad_version, "unsupported HTTP version");
        if (target.size() > limits_.uri_bytes)
            return fail(ec, Reject::uri_too_long, "request-target too long");
        // RFC 9112 §3.2: the target is ASCII; raw non-ASCII bytes must be percent-encoded.
        for (unsigned char c : target)
            if (c >= 0x80)
                return fail(ec, Reject::bad_request, "non-ASCII byte in request-target");
        head_.method = {method.data(), method.size()};
        head_.target = {target.data(), target.size()};
        head_.version = version == 10 ? 10 : 11;
    }
}

template <bool isRequest>
void HeadParser<isRequest>::on_response_impl(int code, boost::beast::string_view reason,
                                             int version, error_code& ec) {
    if constexpr (!isRequest) {
        if (version / 10 != 1 || code < 100 || code > 599)
            return fail(ec, Reject::bad_request, "bad status line");
        head_.status = static_cast<unsigned>(code);
        head_.reason = {reason.data(), reason.size()};
        head_.version = version == 10 ? 10 : 11;
    }
}

template <bool isRequest>
bool HeadParser<isRequest>::check_field(beast_http::field kind, std::string_view name,
                                        std::string_view value, error_code& ec) {
    // Beast hands obs-folded values over from a buffer of its own: refuse them (RFC 9112 §5.2).
    if (!in_input(value) || !in_input(name)) {
        fail(ec, Reject::bad_request, "obs-fold in header field");
        return false;
    }
    // Beast has already looked the name up (case-insensitively) in its table of known fields.
    switch (kind) {
    case beast_http::field::content_length: {
        ++content_length_fields_;
        if (content_length_fields_ > 1) {
            fail(ec, Reject::bad_request, "duplicate Content-Length");
            return false;
        }
        // Beast accepts a list of identical values ("5, 5"); we accept only one number.
        bool digits = !value.empty();
        for (char c : value)
            digits = digits && c >= '0' && c <= '9';
        if (!digits) {
            fail(ec, Reject::bad_request, "invalid Content-Length");
            return false;
        }
        break;
    }
    case beast_http::field::transfer_encoding: {
        ++transfer_encoding_fields_;
        // Only a single "chunked" is supported; anything else is ambiguous framing.
        unsigned codings = 0;
        for_each_token(value, [&](std::string_view coding) {
            ++codings;
            if (!iequals(coding, "chunked"))
                te_valid_ = false;
        });
        if (codings != 1 || transfer_encoding_fields_ > 1)
            te_valid_ = false;
        break;
    }
    case beast_http::field::connection:
        // The usual values whole, without tokenising.
        if (iequals(value, "keep-alive")) {
            connection_keep_alive_ = true;
            break;
        }
        if (iequals(value, "close")) {
            connection_close_ = true;
            break;
        }
        for_each_token(value, [&](std::string_view option) {
            if (iequals(option, "close"))
                connection_close_ = true;
            else if (iequals(option, "keep-alive"))
                connection_keep_alive_ = true;
            else if (iequals(option, "upgrade"))
                connection_upgrade_ = true;
            else
                connection_other_ = true;
        });
        break;
    case beast_http::field::upgrade:
        has_upgrade_ = true;
        break;
    default:
        break;
    }
    if constexpr (isRequest) {
        if (kind == beast_http::field::host) {
            if (++host_fields_ > 1) {
                fail(ec, Reject::bad_request, "repeated Host");
                return false;
            }
            // Empty is valid only for a target without an authority (RFC 9110 §7.2), which an
            // http(s) URI never is (§4.2.1: an empty host must be rejected): 400, as nginx.
            if (value.empty()) {
                fail(ec, Reject::bad_request, "empty Host");
                return false;
            }
            for (char c : value)
                if (!host_char_ok(c)) {
                    fail(ec, Reject::bad_request, "invalid Host");
                    return false;
                }
            head_.host = value;
            head_.has_host = true;
        } else if (kind == beast_http::field::expect) {
            if (iequals(value, "100-continue"))
                head_.expect_continue = true;
            else
                head_.expect_other = true;
        }
    }
    return true;
}

template <bool isRequest>
void HeadParser<isRequest>::on_field_impl(beast_http::field kind, boost::beast::string_view name,
                                          boost::beast::string_view value, error_code& ec) {
    std::string_view n{name.data(), name.size()}, v{value.data(), value.size()};
    if (header_done_) {
        // A trailer field. Framing fields are not allowed there (RFC 9110 §6.5.1).
        if (!in_input(v) || !in_input(n))
            return fail(ec, Reject::bad_request, "obs-fold in trailer");
        if (iequals(n, "content-length") || iequals(n, "transfer-encoding") || iequals(n, "host"))
            return fail(ec, Reject::bad_request, "framing field in trailer");
        trailers_ = true;
        if (sink_)
            sink_->on_trailer_field(n, v);
        return;
    }
    if (head_.fields.size() >= limits_.headers)
        return fail(ec, isRequest ? Reject::too_many_headers : Reject::bad_request,
                    "too many header fields");
    if (!check_field(kind, n, v, ec))
        return;
    head_.fields.push_back({n, v, field_kind(kind, n)});
}

template <bool isRequest>
bool HeadParser<isRequest>::check_framing(error_code& ec) {
    Framing& f = head_.framing;
    if (transfer_encoding_fields_ > 0) {
        if (head_.version == 10) {
            fail(ec, Reject::bad_request, "Transfer-Encoding in HTTP/1.0");
            return false;
        }
        if (!te_valid_ || !this->chunked()) {
            fail(ec, Reject::bad_request, "Transfer-Encoding other than chunked");
            return false;
        }
    }
    f.chunked = this->chunked();
    auto length = this->content_length();
    f.has_content_length = length.has_value();
    f.content_length = length ? *length : 0;
    f.keep_alive = head_.version == 11 ? !connection_close_ : connection_keep_alive_;
    f.upgrade = connection_upgrade_ && has_upgrade_;
    f.connection_options = connection_other_;
    if constexpr (isRequest) {
        if (head_.version == 11 && host_fields_ == 0) {
            fail(ec, Reject::bad_request, "missing Host");
            return false;
        }
        if (limits_.body_bytes && f.has_content_length && f.content_length > limits_.body_bytes) {
            fail(ec, Reject::body_too_large, "declared body too large");
            return false;
        }
    } else {
        head_.no_body = head_.no_body || head_.status < 200 || head_.status == 204 ||
                        head_.status == 304;
        head_.close_delimited = !head_.no_body && !f.chunked && !f.has_content_length;
        if (head_.close_delimited)
            f.keep_alive = false;
    }
    return true;
}

template <bool isRequest>
void HeadParser<isRequest>::on_header_impl(error_code& ec) {
    header_done_ = true;
    check_framing(ec);
}

template <bool isRequest>
void HeadParser<isRequest>::on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) {}

template <bool isRequest>
bool HeadParser<isRequest>::add_body(uint64_t n, error_code& ec) {
    body_bytes_ += n;
    if (isRequest && limits_.body_bytes && body_bytes_ > limits_.body_bytes) {
        fail(ec, Reject::body_too_large, "body too large");
        return false;
    }
    return true;
}

template <bool isRequest>
size_t HeadParser<isRequest>::on_body_impl(boost::beast::string_view body, error_code& ec) {
    if (!add_body(body.size(), ec))
        return 0;
    if (sink_)
        sink_->on_body_data({body.data(), body.size()});
    return body.size();
}

template <bool isRequest>
void HeadParser<isRequest>::on_chunk_header_impl(std::uint64_t, boost::beast::string_view,
                                                 error_code&) {}

template <bool isRequest>
size_t HeadParser<isRequest>::on_chunk_body_impl(std::uint64_t, boost::beast::string_view body,
                                                 error_code& ec) {
    return on_body_impl(body, ec);
}

template <bool isRequest>
void HeadParser<isRequest>::on_finish_impl(error_code&) {}

template class HeadParser<true>;
template class HeadParser<false>;

} // namespace gatehouse::http
