"""Strict request framing (DESIGN §2, issue 2 item 5): every ambiguous or malformed request is
answered 400 and the connection closed, so nothing after it can be smuggled to the backend."""

import hashlib
import time

import pytest

from harness import Client, get, raw_request

H = b"Host: test.local\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: test.local\r\n\r\n"


def post(*fields, body=b""):
    return b"POST /echo HTTP/1.1\r\n" + H + b"".join(f + b"\r\n" for f in fields) + b"\r\n" + body


CHUNKED = b"Transfer-Encoding: chunked"
REJECTED = {
    # Content-Length together with Transfer-Encoding, in both orders
    "cl_and_te": post(b"Content-Length: 5", CHUNKED, body=b"0\r\n\r\n" + SMUGGLED),
    "te_and_cl": post(CHUNKED, b"Content-Length: 5", body=b"0\r\n\r\n" + SMUGGLED),
    # duplicate or invalid Content-Length
    "cl_differing_duplicates": post(b"Content-Length: 5", b"Content-Length: 6",
                                    body=b"hello!" + SMUGGLED),
    "cl_identical_duplicates": post(b"Content-Length: 5", b"Content-Length: 5",
                                    body=b"hello" + SMUGGLED),
    "cl_list": post(b"Content-Length: 5, 5", body=b"hello" + SMUGGLED),
    "cl_not_a_number": post(b"Content-Length: abc", body=b"hello" + SMUGGLED),
    "cl_negative": post(b"Content-Length: -5", body=b"hello" + SMUGGLED),
    "cl_plus_sign": post(b"Content-Length: +5", body=b"hello" + SMUGGLED),
    "cl_hex": post(b"Content-Length: 0x5", body=b"hello" + SMUGGLED),
    "cl_empty": post(b"Content-Length: ", body=b"hello" + SMUGGLED),
    "cl_overflow": post(b"Content-Length: 99999999999999999999999", body=b"hello" + SMUGGLED),
    # invalid chunk framing
    "chunk_size_not_hex": post(CHUNKED, body=b"zz\r\nhello\r\n0\r\n\r\n" + SMUGGLED),
    "chunk_size_negative": post(CHUNKED, body=b"-5\r\nhello\r\n0\r\n\r\n" + SMUGGLED),
    "chunk_size_overflow": post(CHUNKED, body=b"10000000000000005\r\nhello\r\n0\r\n\r\n" + SMUGGLED),
    "chunk_data_longer_than_size": post(CHUNKED, body=b"3\r\nhello\r\n0\r\n\r\n" + SMUGGLED),
    "chunk_size_bare_lf": post(CHUNKED, body=b"5\nhello\r\n0\r\n\r\n" + SMUGGLED),
    # bare LF line endings
    "bare_lf_request_line": b"GET /echo HTTP/1.1\n" + H + b"\r\n" + SMUGGLED,
    "bare_lf_header": b"GET /echo HTTP/1.1\r\nHost: test.local\nX-A: b\r\n\r\n" + SMUGGLED,
    "bare_lf_everywhere": b"GET /echo HTTP/1.1\nHost: test.local\n\n" + SMUGGLED,
    "bare_cr_in_value": post(b"X-A: a\rb", b"Content-Length: 0") + SMUGGLED,
    # obs-fold (RFC 9112 §5.2: a server must reject it or replace it; a proxy must not forward it)
    "obs_fold_space": post(b"X-Folded: a", b" b", b"Content-Length: 0") + SMUGGLED,
    "obs_fold_tab": post(b"X-Folded: a", b"\tb", b"Content-Length: 0") + SMUGGLED,
    "obs_fold_te": post(b"X-A: a", b" " + CHUNKED, b"Content-Length: 5", body=b"hello") + SMUGGLED,
    # whitespace between field name and colon (RFC 9112 §5.1)
    "space_before_colon": post(b"Transfer-Encoding : chunked", b"Content-Length: 5",
                               body=b"hello" + SMUGGLED),
    "tab_before_colon": post(b"X-A\t: b", b"Content-Length: 0") + SMUGGLED,
    "space_before_colon_host": b"GET /echo HTTP/1.1\r\nHost : test.local\r\n\r\n" + SMUGGLED,
    # invalid header names and control characters in values
    "invalid_header_name": post(b"X@A: b", b"Content-Length: 0") + SMUGGLED,
    "empty_header_name": post(b": b", b"Content-Length: 0") + SMUGGLED,
    "ctl_in_value": post(b"X-A: a\x01b", b"Content-Length: 0") + SMUGGLED,
    "nul_in_value": post(b"X-A: a\x00b", b"Content-Length: 0") + SMUGGLED,
    "del_in_value": post(b"X-A: a\x7fb", b"Content-Length: 0") + SMUGGLED,
    "vertical_tab_in_te": post(b"Transfer-Encoding: \x0bchunked", b"Content-Length: 5",
                               body=b"hello" + SMUGGLED),
    "leading_whitespace_first_header": b"GET /echo HTTP/1.1\r\n X-A: b\r\n" + H + b"\r\n" + SMUGGLED,
    "chunk_size_0x_prefix": post(CHUNKED, body=b"0x5\r\nhello\r\n0\r\n\r\n" + SMUGGLED),
    "te_with_parameter": post(b"Transfer-Encoding: chunked;q=1", body=b"0\r\n\r\n" + SMUGGLED),
    # invalid method, target, version
    "double_space_request_line": b"GET  /echo HTTP/1.1\r\n" + H + b"\r\n" + SMUGGLED,
    "extra_request_line_token": b"GET /echo HTTP/1.1 x\r\n" + H + b"\r\n" + SMUGGLED,
    "lowercase_version": b"GET /echo http/1.1\r\n" + H + b"\r\n" + SMUGGLED,
    "invalid_method": b"G(ET /echo HTTP/1.1\r\n" + H + b"\r\n" + SMUGGLED,
    "invalid_target_relative": b"GET echo HTTP/1.1\r\n" + H + b"\r\n" + SMUGGLED,
    "invalid_target_ctl": b"GET /ec\x01ho HTTP/1.1\r\n" + H + b"\r\n" + SMUGGLED,
    "invalid_target_space": b"GET /ec ho HTTP/1.1\r\n" + H + b"\r\n" + SMUGGLED,
    "invalid_target_non_ascii": b"GET /ec\xffho HTTP/1.1\r\n" + H + b"\r\n" + SMUGGLED,
    "invalid_target_fragment_space": b"GET /echo#a b HTTP/1.1\r\n" + H + b"\r\n" + SMUGGLED,
    "invalid_version": b"GET /echo HTTX/1.1\r\n" + H + b"\r\n" + SMUGGLED,
    # Transfer-Encoding whose final coding is not chunked
    "te_xchunked": post(b"Transfer-Encoding: xchunked", body=b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLED),
    "te_chunked_identity": post(b"Transfer-Encoding: chunked, identity",
                                body=b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLED),
    "te_chunked_then_identity_headers": post(CHUNKED, b"Transfer-Encoding: identity",
                                             body=b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLED),
    "te_gzip_only": post(b"Transfer-Encoding: gzip", body=b"hello" + SMUGGLED),
    "te_chunked_twice": post(b"Transfer-Encoding: chunked, chunked",
                             body=b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLED),
    # any Transfer-Encoding on HTTP/1.0
    "te_on_http10": b"POST /echo HTTP/1.0\r\n" + H + CHUNKED + b"\r\n\r\n0\r\n\r\n" + SMUGGLED,
    # Host missing or repeated on HTTP/1.1
    "missing_host": b"GET /echo HTTP/1.1\r\nX-A: b\r\n\r\n" + SMUGGLED,
    "two_host_headers": b"GET /echo HTTP/1.1\r\n" + H + b"Host: other.example\r\n\r\n" + SMUGGLED,
    "two_identical_host_headers": b"GET /echo HTTP/1.1\r\n" + H + H + b"\r\n" + SMUGGLED,
}


@pytest.mark.parametrize("raw", list(REJECTED.values()), ids=list(REJECTED))
def test_malformed_request_gets_400_and_close(proxy, raw):
    gh, backend = proxy
    reply = raw_request(gh.port, raw, timeout=3.0)
    assert reply.status == 400, bytes(reply[:300])
    assert reply.closed, "connection left open after a framing error"
    assert reply.count_responses() == 1, bytes(reply)
    # A valid request on a new connection still works ...
    assert get(gh.port, "/echo?after=1").status == 200
    # ... and nothing smuggled behind the bad one ever reached the backend.
    assert not [t for t in backend.targets() if "smuggled" in t]


ACCEPTED = {
    "chunk_extension_and_trailer": post(CHUNKED, body=b"5;name=value\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"),
    "te_mixed_case_chunked": post(b"Transfer-Encoding: Chunked", body=b"5\r\nhello\r\n0\r\n\r\n"),
    "content_length_zero": post(b"Content-Length: 0"),
    "absolute_form_target": b"GET http://test.local/echo HTTP/1.1\r\n" + H + b"\r\n",
    "http10_without_host": b"GET /echo HTTP/1.0\r\n\r\n",
    "host_with_port": b"GET /echo HTTP/1.1\r\nHost: test.local:8080\r\n\r\n",
    "tab_and_obs_text_in_value": post(b"X-A: a\tb caf\xe9", b"Content-Length: 0"),
    "no_space_after_colon": post(b"X-A:b", b"Content-Length:0"),
    "cl_leading_zeros_and_ows": post(b"Content-Length:  005 ", body=b"hello"),
    "chunk_size_leading_zeros": post(CHUNKED, body=b"0005\r\nhello\r\n0000\r\n\r\n"),
    "te_with_ows": post(b"Transfer-Encoding:   chunked  ", body=b"5\r\nhello\r\n0\r\n\r\n"),
}


@pytest.mark.parametrize("raw", list(ACCEPTED.values()), ids=list(ACCEPTED))
def test_valid_edge_case_request_is_accepted(proxy, raw):
    gh, _ = proxy
    with Client(gh.port) as c:
        c.send(raw)
        r = c.read_response()
        assert r.status == 200, r
        assert r.json()["method"] in ("GET", "POST")


def test_chunked_request_body_is_decoded_not_smuggled(proxy):
    gh, backend = proxy
    with Client(gh.port) as c:
        c.send(post(CHUNKED, body=b"5\r\nhello\r\n0\r\n\r\n") + Client.build("GET", "/echo?second"))
        first = c.read_response()
        assert first.status == 200 and first.json()["body_length"] == 5
        assert c.read_response().json()["target"] == "/echo?second"


def test_request_head_split_across_packets_is_one_request(proxy):
    """A head that arrives in pieces -- the first one ending after complete fields, then split
    inside a field and just before the empty line -- is one request, forwarded whole (real
    clients' heads cross segment boundaries; this used to be a 400: Beast had parsed the first
    fields already and was fed them again)."""
    gh, _ = proxy
    head = (b"GET /echo?split=1 HTTP/1.1\r\n" + H + b"X-One: 1\r\nX-Two: two\r\n"
            b"X-Three: " + b"3" * 3000 + b"\r\n\r\n")
    first = len(b"GET /echo?split=1 HTTP/1.1\r\n" + H + b"X-One: 1\r\n")
    cuts = [first, first + 5, 2000, len(head) - 2]
    with Client(gh.port) as c:
        last = 0
        for cut in cuts + [len(head)]:
            c.send(head[last:cut])
            last = cut
            time.sleep(0.05)
        r = c.read_response()
        assert r.status == 200, r
        seen = {k.lower(): v for k, v in r.json()["headers"]}
        assert r.json()["target"] == "/echo?split=1"
        assert seen["x-one"] == "1" and seen["x-two"] == "two" and seen["x-three"] == "3" * 3000
        # the connection goes on with the next request
        c.send(Client.build("GET", "/echo?next=1"))
        assert c.read_response().json()["target"] == "/echo?next=1"


def test_chunked_request_body_split_across_packets(proxy):
    """A chunked body whose chunk-size lines, data and trailer arrive split across reads is
    decoded whole, and the connection goes on."""
    gh, _ = proxy
    pieces = [post(CHUNKED) + b"5\r", b"\nhel", b"lo\r\n1", b"0\r\n0123456789abcdef\r\n0\r\nX-T",
              b"r: t\r\n", b"\r\n"]
    with Client(gh.port) as c:
        for piece in pieces:
            c.send(piece)
            time.sleep(0.05)
        r = c.read_response()
        assert r.status == 200, r
        echo = r.json()
        assert echo["body_length"] == 21
        assert echo["body_sha256"] == hashlib.sha256(b"hello0123456789abcdef").hexdigest()
        c.send(Client.build("GET", "/echo?next=1"))
        assert c.read_response().json()["target"] == "/echo?next=1"


def test_pipelined_request_whose_head_is_split_after_complete_fields(proxy):
    """The second of two pipelined requests arrives half: its request line and first fields
    come with the first request, the rest later (the buffer is compacted in between, moving the
    half head): both are answered, in order, with the second's fields intact."""
    gh, _ = proxy
    first = b"GET /echo?a=1 HTTP/1.1\r\n" + H + b"\r\n"
    second_part = b"GET /echo?b=2 HTTP/1.1\r\n" + H + b"X-One: 1\r\n"
    with Client(gh.port) as c:
        c.send(first + second_part)
        assert c.read_response().json()["target"] == "/echo?a=1"
        time.sleep(0.1)
        c.send(b"X-Two: 2\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r
        echo = r.json()
        assert echo["target"] == "/echo?b=2"
        seen = {k.lower(): v for k, v in echo["headers"]}
        assert seen["x-one"] == "1" and seen["x-two"] == "2" and seen["host"] == "test.local"
