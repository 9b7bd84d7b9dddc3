// Framing rules the kernel adds on top of Beast's parser (design §2), request and response.
#include "http/parser.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

using namespace gatehouse::http;

namespace {

struct Parsed {
    Reject reject = Reject::none;
    bool header_done = false;
    size_t consumed = 0;
    RequestHead head;
};

Parsed parse_request(const std::string& bytes, ParserLimits limits = {}) {
    Parsed out;
    RequestParser parser(out.head);
    parser.reset(limits);
    boost::beast::error_code ec;
    out.consumed = parser.feed(bytes.data(), bytes.size(), ec);
    out.reject = ec ? parser.reject() : Reject::none;
    out.header_done = parser.is_header_done();
    return out;
}

Reject reject_of(const std::string& bytes) { return parse_request(bytes).reject; }

const std::string ok_head = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";

} // namespace

TEST(RequestFraming, PlainRequestParsesToViews) {
    // The views point into the bytes, which must outlive them.
    const std::string bytes = "GET /x?y HTTP/1.1\r\nHost: example.com\r\nA: b\r\n\r\n";
    Parsed p;
    RequestParser parser(p.head);
    parser.reset({});
    boost::beast::error_code ec;
    parser.feed(bytes.data(), bytes.size(), ec);
    ASSERT_FALSE(ec);
    ASSERT_TRUE(parser.is_header_done());
    EXPECT_EQ(p.head.method, "GET");
    EXPECT_EQ(p.head.target, "/x?y");
    EXPECT_EQ(p.head.host, "example.com");
    ASSERT_EQ(p.head.fields.size(), 2u);
    EXPECT_EQ(p.head.fields[1].name, "A");
    EXPECT_EQ(p.head.fields[1].value, "b");
}

TEST(RequestFraming, ObsFoldIsRejected) {
    EXPECT_EQ(reject_of("GET / HTTP/1.1\r\nHost: a\r\nX: one\r\n two\r\n\r\n"), Reject::bad_request);
}

TEST(RequestFraming, TransferEncodingMustBeExactlyChunked) {
    const std::string pre = "POST / HTTP/1.1\r\nHost: a\r\n";
    EXPECT_EQ(reject_of(pre + "Transfer-Encoding: xchunked\r\n\r\n"), Reject::bad_request);
    EXPECT_EQ(reject_of(pre + "Transfer-Encoding: chunked, identity\r\n\r\n"), Reject::bad_request);
    EXPECT_EQ(reject_of(pre + "Transfer-Encoding: gzip, chunked\r\n\r\n"), Reject::bad_request);
    EXPECT_EQ(reject_of(pre + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
              Reject::bad_request);
    EXPECT_EQ(reject_of(pre + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), Reject::none);
}

TEST(RequestFraming, TransferEncodingOnHttp10IsRejected) {
    EXPECT_EQ(reject_of("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
              Reject::bad_request);
}

TEST(RequestFraming, HostMustBePresentOnceOnHttp11) {
    EXPECT_EQ(reject_of("GET / HTTP/1.1\r\n\r\n"), Reject::bad_request);
    EXPECT_EQ(reject_of("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), Reject::bad_request);
    EXPECT_EQ(reject_of("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), Reject::bad_request);
    EXPECT_EQ(reject_of("GET / HTTP/1.0\r\n\r\n"), Reject::none);
    // An http(s) target always has a host (RFC 9110 §4.2.1): an empty Host is refused.
    EXPECT_EQ(reject_of("GET / HTTP/1.1\r\nHost:\r\n\r\n"), Reject::bad_request);
    EXPECT_EQ(reject_of("GET / HTTP/1.1\r\nHost: \r\n\r\n"), Reject::bad_request);
    EXPECT_EQ(reject_of("GET / HTTP/1.0\r\nHost:\r\n\r\n"), Reject::bad_request);
}

TEST(RequestFraming, ContentLengthMustBeOneNumber) {
    const std::string pre = "POST / HTTP/1.1\r\nHost: a\r\n";
    EXPECT_EQ(reject_of(pre + "Content-Length: 1\r\nContent-Length: 1\r\n\r\nx"), Reject::bad_request);
    EXPECT_EQ(reject_of(pre + "Content-Length: 1, 1\r\n\r\nx"), Reject::bad_request);
    EXPECT_EQ(reject_of(pre + "Content-Length: +1\r\n\r\nx"), Reject::bad_request);
    EXPECT_EQ(reject_of(pre + "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
              Reject::bad_request);
}

TEST(RequestFraming, NonAsciiTargetIsRejected) {
    EXPECT_EQ(reject_of("GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n"), Reject::bad_request);
    EXPECT_EQ(reject_of("GET /%FF HTTP/1.1\r\nHost: a\r\n\r\n"), Reject::none);
}

TEST(RequestFraming, BareLineFeedAndSpaceBeforeColonAreRejected) {
    EXPECT_EQ(reject_of("GET / HTTP/1.1\nHost: a\n\n"), Reject::bad_request);
    EXPECT_EQ(reject_of("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), Reject::bad_request);
}

TEST(RequestFraming, LimitsMapToTheirStatuses) {
    ParserLimits limits;
    limits.headers = 2;
    EXPECT_EQ(parse_request("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", limits).reject,
              Reject::too_many_headers);
    limits = {};
    limits.uri_bytes = 16;
    EXPECT_EQ(parse_request("GET /" + std::string(40, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n", limits).reject,
              Reject::uri_too_long);
    limits = {};
    limits.body_bytes = 4;
    EXPECT_EQ(parse_request("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", limits).reject,
              Reject::body_too_large);
    EXPECT_EQ(status_for(Reject::too_many_headers), 431u);
    EXPECT_EQ(status_for(Reject::uri_too_long), 414u);
    EXPECT_EQ(status_for(Reject::body_too_large), 413u);
}

TEST(RequestFraming, StreamedChunkedBodyOverTheLimitIs413) {
    ParserLimits limits;
    limits.body_bytes = 4;
    auto p = parse_request("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", limits);
    ASSERT_EQ(p.reject, Reject::none);
    RequestHead head;
    RequestParser parser(head);
    parser.reset(limits);
    std::string bytes = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    boost::beast::error_code ec;
    size_t n = parser.feed(bytes.data(), bytes.size(), ec);
    ASSERT_FALSE(ec);
    parser.feed(bytes.data() + n, bytes.size() - n, ec);
    EXPECT_TRUE(ec);
    EXPECT_EQ(parser.reject(), Reject::body_too_large);
}

TEST(RequestFraming, FeedStopsAfterTheHeadSoItsSizeIsKnown) {
    std::string bytes = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET";
    RequestHead head;
    RequestParser parser(head);
    parser.reset({});
    boost::beast::error_code ec;
    size_t n = parser.feed(bytes.data(), bytes.size(), ec);
    EXPECT_EQ(n, bytes.size() - 6);
    size_t body = parser.feed(bytes.data() + n, bytes.size() - n, ec);
    EXPECT_EQ(body, 3u) << "the body ends at Content-Length; the next request is not consumed";
    EXPECT_TRUE(parser.is_done());
}

TEST(RequestFraming, HeadArrivingInPiecesIsOneHeadOnTheBytesWhereverTheyMoved) {
    // Every split point, including after complete fields: feed() consumes nothing until the
    // head is whole (the caller keeps the bytes, and may move them meanwhile), then all of it,
    // with every view on the bytes where they are now.
    const std::string bytes = "GET /a HTTP/1.1\r\nHost: h\r\nX-One: 1\r\nX-Two: 2\r\n\r\n";
    for (size_t split = 1; split < bytes.size(); ++split) {
        RequestHead head;
        RequestParser parser(head);
        parser.reset({});
        boost::beast::error_code ec;
        std::string first = bytes.substr(0, split);
        EXPECT_EQ(parser.feed(first.data(), first.size(), ec), 0u) << split;
        EXPECT_FALSE(ec) << split;
        EXPECT_FALSE(parser.is_header_done()) << split;
        const std::string whole = bytes;       // the rest arrived; the bytes moved
        std::fill(first.begin(), first.end(), '#'); // what a stale view would read
        EXPECT_EQ(parser.feed(whole.data(), whole.size(), ec), bytes.size()) << split;
        ASSERT_FALSE(ec) << split;
        ASSERT_TRUE(parser.is_header_done());
        EXPECT_EQ(head.method, "GET") << split;
        EXPECT_EQ(head.target, "/a") << split;
        EXPECT_EQ(head.host, "h") << split;
        ASSERT_EQ(head.fields.size(), 3u) << split;
        EXPECT_EQ(head.fields[0].name, "Host") << split;
        EXPECT_EQ(head.fields[1].name, "X-One") << split;
        EXPECT_EQ(head.fields[1].value, "1") << split;
        EXPECT_EQ(head.fields[2].value, "2") << split;
        for (const auto& f : head.fields)
            EXPECT_TRUE(f.name.data() >= whole.data() &&
                        f.value.data() + f.value.size() <= whole.data() + whole.size())
                << split;
    }
}

TEST(RequestFraming, BareLineFeedIsRefusedWithoutWaitingForMore) {
    // No CRLF CRLF will ever come: the bytes go to Beast, which refuses them at once.
    RequestHead head;
    RequestParser parser(head);
    parser.reset({});
    boost::beast::error_code ec;
    std::string bytes = "GET / HTTP/1.1\r\nHost: a\nX: b";
    parser.feed(bytes.data(), bytes.size(), ec);
    EXPECT_TRUE(ec);
    EXPECT_EQ(parser.reject(), Reject::bad_request);
}

TEST(ResponseFraming, HeadArrivingInPiecesIsOneHeadOnTheBytesWhereverTheyMoved) {
    const std::string bytes = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: a\r\n\r\nok";
    for (size_t split = 1; split < bytes.size() - 2; ++split) {
        ResponseHead head;
        ResponseParser parser(head);
        parser.reset({});
        boost::beast::error_code ec;
        std::string first = bytes.substr(0, split);
        EXPECT_EQ(parser.feed(first.data(), first.size(), ec), 0u) << split;
        EXPECT_FALSE(ec) << split;
        const std::string whole = bytes;
        std::fill(first.begin(), first.end(), '#');
        EXPECT_EQ(parser.feed(whole.data(), whole.size(), ec), bytes.size() - 2) << split;
        ASSERT_FALSE(ec) << split;
        EXPECT_EQ(head.status, 200u);
        EXPECT_EQ(head.reason, "OK") << split;
        EXPECT_EQ(head.framing.content_length, 2u);
        ASSERT_EQ(head.fields.size(), 2u);
        EXPECT_EQ(head.fields[0].name, "Content-Length") << split;
        EXPECT_EQ(head.fields[1].value, "a") << split;
    }
}

TEST(FieldKinds, TheParsersKindFromBeastsLookupIsClassifysAnswer) {
    // Every name classify() knows, in other cases too, and some it does not.
    for (std::string name :
         {"te", "TE", "expect", "Expect", "trailer", "upgrade", "forwarded", "connection",
          "Connection", "keep-alive", "Keep-Alive", "content-length", "Content-Length",
          "x-forwarded-for", "X-Forwarded-For", "proxy-connection", "x-forwarded-host",
          "transfer-encoding", "x-forwarded-proto", "proxy-authenticate", "proxy-authorization",
          "host", "date", "server", "etag", "x-custom", "content-type", "set-cookie", "via",
          "accept-encoding", "authorization", "x-forwarded-port", "x-real-ip"}) {
        EXPECT_EQ(field_kind(boost::beast::http::string_to_field(name), name), classify(name))
            << name;
    }
}

TEST(FieldKinds, ParsedFieldsCarryTheirKindAndAddedOnesAreClassifiedByName) {
    Parsed p = parse_request("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
                             "X-Forwarded-For: 1.2.3.4\r\nX-A: b\r\n\r\n");
    ASSERT_EQ(p.head.fields.size(), 4u);
    EXPECT_EQ(p.head.fields[1].kind, FieldKind::hop_by_hop);
    EXPECT_EQ(p.head.fields[2].kind, FieldKind::x_forwarded_for);
    EXPECT_EQ(p.head.fields[3].kind, FieldKind::other);
    Field added{"Keep-Alive", "timeout=5"};
    EXPECT_EQ(added.kind, FieldKind::unclassified);
    EXPECT_EQ(kind_of(added), FieldKind::hop_by_hop);
}

TEST(ResponseFraming, CloseDelimitedAndBodilessResponsesAreRecognised) {
    ResponseHead head;
    ResponseParser parser(head);
    parser.reset({});
    std::string bytes = "HTTP/1.1 200 OK\r\nA: b\r\n\r\n";
    boost::beast::error_code ec;
    parser.feed(bytes.data(), bytes.size(), ec);
    ASSERT_FALSE(ec);
    EXPECT_TRUE(head.close_delimited);
    EXPECT_FALSE(head.framing.keep_alive);

    ResponseHead head304;
    ResponseParser p304(head304);
    p304.reset({});
    bytes = "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n";
    p304.feed(bytes.data(), bytes.size(), ec);
    ASSERT_FALSE(ec);
    EXPECT_TRUE(head304.no_body);
    EXPECT_TRUE(p304.is_done());
}

TEST(ResponseFraming, AmbiguousUpstreamResponsesAreRejected) {
    for (std::string bytes : {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
                              "HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n",
                              "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",
                              "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"}) {
        ResponseHead head;
        ResponseParser parser(head);
        parser.reset({});
        boost::beast::error_code ec;
        parser.feed(bytes.data(), bytes.size(), ec);
        EXPECT_TRUE(ec) << bytes;
    }
}
