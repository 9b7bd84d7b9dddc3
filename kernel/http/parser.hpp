// Boost.Beast's basic_parser, recording the head as views and adding the framing checks Beast
// lets through (design §2: obs-fold, a final coding other than chunked, missing or repeated Host,
// Transfer-Encoding on HTTP/1.0, identical duplicate Content-Length).
//
// Body bytes are not copied: the caller forwards exactly the bytes put() consumed. Decoded body
// data goes to a BodySink only when one is set (a filter subscribed).
#pragma once

#include "http/message.hpp"

#include <boost/beast/http/basic_parser.hpp>

#include <cstdint>
#include <string_view>

namespace gatehouse::http {

namespace beast_http = boost::beast::http;
using boost::beast::error_code;

// Why a message was refused, which decides the status code.
enum class Reject : uint8_t {
    none,
    bad_request,       // 400
    header_too_large,  // 431
    too_many_headers,  // 431
    uri_too_long,      // 414
    body_too_large,    // 413
    bad_version,       // 505
};

struct BodySink {
    virtual ~BodySink() = default;
    virtual void on_body_data(std::string_view data) = 0;
    virtual void on_trailer_field(std::string_view name, std::string_view value) = 0;
};

struct ParserLimits {
    uint64_t header_bytes = 16 * 1024;
    uint64_t headers = 100;
    uint64_t uri_bytes = 8 * 1024;
    uint64_t body_bytes = 0; // 0 = unlimited
};

template <bool isRequest>
class HeadParser : public beast_http::basic_parser<isRequest> {
public:
    using Head = std::conditional_t<isRequest, RequestHead, ResponseHead>;

    explicit HeadParser(Head& head) : head_(head) {}

    // Feed bytes; returns how many were consumed (0 = need more). feed() stops right after the
    // head, so the head's size is what the call that completed it consumed; after the head it
    // consumes as much body as `data` holds. On error, reject() says why.
    size_t feed(const char* data, size_t size, error_code& ec);
    void reset(const ParserLimits& limits);
    // Responses to HEAD have no body whatever their headers say.
    void expect_no_body() {
        this->skip(true);
        if constexpr (!isRequest)
            head_.no_body = true;
    }

    Reject reject() const { return reject_; }
    const char* reject_reason() const { return reason_; }
    void set_body_sink(BodySink* sink) { sink_ = sink; }
    uint64_t body_bytes() const { return body_bytes_; }
    bool in_trailers() const { return trailers_; }

private:
    void on_request_impl(beast_http::verb, boost::beast::string_view method,
                         boost::beast::string_view target, int version, error_code& ec) override;
    void on_response_impl(int code, boost::beast::string_view reason, int version,
                          error_code& ec) override;
    void on_field_impl(beast_http::field, boost::beast::string_view name,
                       boost::beast::string_view value, error_code& ec) override;
    void on_header_impl(error_code& ec) override;
    void on_body_init_impl(const boost::optional<std::uint64_t>& length, error_code& ec) override;
    size_t on_body_impl(boost::beast::string_view body, error_code& ec) override;
    void on_chunk_header_impl(std::uint64_t size, boost::beast::string_view extensions,
                              error_code& ec) override;
    size_t on_chunk_body_impl(std::uint64_t remain, boost::beast::string_view body,
                              error_code& ec) override;
    void on_finish_impl(error_code& ec) override;

    void fail(error_code& ec, Reject why, const char* reason);
    bool in_input(std::string_view v) const {
        return v.data() >= base_ && v.data() + v.size() <= base_ + base_size_;
    }
    bool check_field(beast_http::field kind, std::string_view name, std::string_view value,
                     error_code& ec);
    bool check_framing(error_code& ec);
    bool add_body(uint64_t n, error_code& ec);

    Head& head_;
    ParserLimits limits_;
    BodySink* sink_ = nullptr;
    const char* base_ = nullptr;
    size_t base_size_ = 0;
    // An incomplete head: where its bytes were at the last feed and how many Beast has parsed.
    const char* head_base_ = nullptr;
    size_t head_parsed_ = 0;
    uint64_t body_bytes_ = 0;
    Reject reject_ = Reject::none;
    const char* reason_ = "";
    unsigned content_length_fields_ = 0;
    unsigned transfer_encoding_fields_ = 0;
    unsigned host_fields_ = 0;
    bool te_valid_ = true;
    bool connection_close_ = false;
    bool connection_keep_alive_ = false;
    bool connection_upgrade_ = false;
    bool connection_other_ = false; // Connection lists other field names

    bool has_upgrade_ = false;
    bool header_done_ = false;
    bool trailers_ = false;
};

using RequestParser = HeadParser<true>;
using ResponseParser = HeadParser<false>;

unsigned status_for(Reject why);

// What classify(name) says, from the field Beast has already looked the name up as: names Beast
// does not know (the X-Forwarded-* family among them) are classified by name.
FieldKind field_kind(beast_http::field f, std::string_view name);

} // namespace gatehouse::http
