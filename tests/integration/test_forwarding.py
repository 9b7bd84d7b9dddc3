"""X-Forwarded-* / Forwarded with trusted-proxy CIDRs, and hop-by-hop stripping both ways."""

import json
import socket

import pytest

from harness import OneShotUpstream, free_port, get, proxy_config, raw_request


def seen(info, name):
    """Values of a header as the backend received it, in order."""
    return [v for n, v in info["headers"] if n.lower() == name.lower()]


def joined(info, name):
    return ", ".join(seen(info, name))


@pytest.fixture
def trusting(start_backend, start_gatehouse):
    backend = start_backend("t")
    extra = '[forwarding]\ntrusted_proxies = ["127.0.0.0/8"]\nforwarded = true\n'
    return start_gatehouse(proxy_config([backend], extra=extra))


@pytest.fixture
def distrusting(start_backend, start_gatehouse):
    backend = start_backend("d")
    extra = '[forwarding]\ntrusted_proxies = ["10.0.0.0/8", "::1/128"]\nforwarded = true\n'
    return start_gatehouse(proxy_config([backend], extra=extra))


def test_xff_is_set_to_client_address(proxy):
    gh, _ = proxy
    info = get(gh.port, "/echo").json()
    assert seen(info, "X-Forwarded-For") == ["127.0.0.1"]


def test_spoofed_xff_from_untrusted_peer_is_replaced(distrusting):
    info = get(distrusting.port, "/echo", headers=[("X-Forwarded-For", "6.6.6.6")]).json()
    assert joined(info, "X-Forwarded-For") == "127.0.0.1"


def test_spoofed_xff_is_replaced_by_default(proxy):
    gh, _ = proxy
    headers = [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "7.7.7.7")]
    info = get(gh.port, "/echo", headers=headers).json()
    assert joined(info, "X-Forwarded-For") == "127.0.0.1"


def test_xff_from_trusted_peer_is_appended_to(trusting):
    headers = [("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-For", "5.6.7.8, 9.9.9.9")]
    info = get(trusting.port, "/echo", headers=headers).json()
    assert joined(info, "X-Forwarded-For") == "1.2.3.4, 5.6.7.8, 9.9.9.9, 127.0.0.1"


def test_xff_from_trusted_peer_without_incoming_value(trusting):
    info = get(trusting.port, "/echo").json()
    assert joined(info, "X-Forwarded-For") == "127.0.0.1"


def test_x_forwarded_proto_and_host_are_set(proxy):
    gh, _ = proxy
    info = get(gh.port, "/echo", host="shop.example:8080").json()
    assert seen(info, "X-Forwarded-Proto") == ["http"]
    assert seen(info, "X-Forwarded-Host") in (["shop.example:8080"], ["shop.example"])
    assert seen(info, "Host") == ["shop.example:8080"]


def test_spoofed_proto_and_host_from_untrusted_peer_are_replaced(distrusting):
    headers = [("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.example")]
    info = get(distrusting.port, "/echo", headers=headers, host="shop.example").json()
    assert seen(info, "X-Forwarded-Proto") == ["http"]
    assert seen(info, "X-Forwarded-Host") == ["shop.example"]


def test_proto_and_host_from_trusted_peer_are_kept(trusting):
    headers = [("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "front.example")]
    info = get(trusting.port, "/echo", headers=headers, host="shop.example").json()
    assert seen(info, "X-Forwarded-Proto") == ["https"]
    assert seen(info, "X-Forwarded-Host") == ["front.example"]


def test_forwarded_header_is_sent_when_enabled(distrusting):
    headers = [("Forwarded", "for=6.6.6.6;proto=https")]
    info = get(distrusting.port, "/echo", headers=headers, host="shop.example").json()
    value = joined(info, "Forwarded").lower()
    assert "6.6.6.6" not in value
    assert "for=127.0.0.1" in value or 'for="127.0.0.1"' in value
    assert "proto=http" in value and "proto=https" not in value


def test_forwarded_from_trusted_peer_is_appended_to(trusting):
    info = get(trusting.port, "/echo", headers=[("Forwarded", "for=1.2.3.4")]).json()
    value = joined(info, "Forwarded").lower()
    assert "1.2.3.4" in value and "127.0.0.1" in value, value
    assert value.index("1.2.3.4") < value.index("127.0.0.1")


def test_forwarded_is_not_sent_by_default(proxy):
    gh, _ = proxy
    assert seen(get(gh.port, "/echo").json(), "Forwarded") == []


def test_hop_by_hop_request_headers_are_stripped(proxy):
    gh, _ = proxy
    headers = [("Connection", "keep-alive, X-Private"), ("Connection", "X-Other"),
               ("X-Private", "secret"), ("X-Other", "secret2"), ("Keep-Alive", "timeout=300"),
               ("Proxy-Connection", "keep-alive"), ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
               ("TE", "gzip"), ("X-Public", "kept")]
    info = get(gh.port, "/echo", headers=headers).json()
    names = [n.lower() for n, _ in info["headers"]]
    for gone in ("x-private", "x-other", "keep-alive", "proxy-connection", "proxy-authorization"):
        assert gone not in names, gone
    assert "gzip" not in joined(info, "TE")
    connection = joined(info, "Connection").lower()
    assert "x-private" not in connection and "x-other" not in connection
    assert seen(info, "X-Public") == ["kept"]


def test_hop_by_hop_response_headers_are_stripped(proxy):
    gh, _ = proxy
    r = get(gh.port, "/hop")
    assert r.status == 200 and r.body == b"hop\n"
    names = r.header_names()
    for gone in ("x-backend-private", "keep-alive", "proxy-connection", "proxy-authenticate",
                 "upgrade"):
        assert gone not in names, gone
    assert "x-backend-private" not in ",".join(r.headers_named("connection")).lower()
    assert r.header("X-Backend-Public") == "visible"
    assert r.headers_named("Set-Cookie") == ["a=1", "b=2"]


def test_end_to_end_headers_keep_their_order_and_duplicates(proxy):
    gh, _ = proxy
    headers = [("X-A", "1"), ("X-B", "2"), ("X-A", "3"), ("Cookie", "a=1"), ("Cookie", "b=2")]
    info = get(gh.port, "/echo", headers=headers).json()
    relevant = [(n, v) for n, v in info["headers"] if n.lower() in ("x-a", "x-b", "cookie")]
    assert [(n.lower(), v) for n, v in relevant] == [(n.lower(), v) for n, v in headers]


def test_header_lines_go_out_in_canonical_form(start_gatehouse):
    """Original "name: value" lines are copied as they are; any other spacing is rewritten to
    "name: value" both ways, and the field values arrive intact."""
    upstream = OneShotUpstream(b"HTTP/1.1 200 OK\r\nX-R1:one\r\nX-R2:   two  \r\nX-R3: three\r\n"
                               b"X-R4: four\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    try:
        gh = start_gatehouse(proxy_config([upstream.address]))
        raw = raw_request(gh.port, b"GET /x HTTP/1.1\r\nHost: h\r\nX-A:1\r\nX-B: \t2 \t\r\n"
                                   b"X-C: 3\r\nX-D: 4\r\nConnection: close\r\n\r\n")
        upstream.thread.join(5)
    finally:
        upstream.close()
    sent = upstream.head.decode()
    assert "\r\nX-A: 1\r\nX-B: 2\r\nX-C: 3\r\nX-D: 4\r\n" in sent, sent
    head = raw.split(b"\r\n\r\n")[0].decode()
    assert "\r\nX-R1: one\r\nX-R2: two\r\nX-R3: three\r\nX-R4: four\r\n" in head + "\r\n", head
    assert raw.endswith(b"\r\n\r\nok")


def _echo_over_ipv6(port):
    """GET /echo from ::1; the backend's JSON view of what it received."""
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(("::1", port))
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        raw = b""
        while True:
            got = s.recv(65536)
            if not got:
                break
            raw += got
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw
    return json.loads(body)


def test_xff_for_an_ipv6_client_is_the_bare_address(start_backend, start_gatehouse):
    """X-Forwarded-For carries "::1" as every backend parses it; RFC 7239's Forwarded keeps the
    quoted, bracketed form that belongs there."""
    backend = start_backend("v6")
    port = free_port()
    text = proxy_config([backend], extra="[forwarding]\nforwarded = true\n").replace(
        'listen = "127.0.0.1:0"', 'listen = "[::1]:%d"' % port)
    start_gatehouse(text)
    info = _echo_over_ipv6(port)
    assert seen(info, "X-Forwarded-For") == ["::1"]
    assert seen(info, "Forwarded") == ['for="[::1]";proto=http;host="h"']


def test_http10_request_without_host_goes_up_with_the_servers_address(start_backend,
                                                                     start_gatehouse):
    """HTTP/1.0 may leave Host out; what goes up is HTTP/1.1, which requires it (RFC 9112 §3.2):
    the server's address as configured, which a client would have needed."""
    backend = start_backend("h10")
    gh = start_gatehouse(proxy_config([backend]))
    raw = raw_request(gh.port, b"GET /echo HTTP/1.0\r\n\r\n")
    assert raw.status == 200, raw
    info = json.loads(raw.split(b"\r\n\r\n", 1)[1])
    assert seen(info, "Host") == [backend.address]
    assert info["version"] == "HTTP/1.1"
    assert seen(info, "X-Forwarded-Host") == []


def test_http10_request_without_host_goes_up_with_the_upstreams_host(start_backend,
                                                                    start_gatehouse):
    backend = start_backend("h10")
    gh = start_gatehouse(proxy_config([backend], upstream='host = "app.internal"'))
    raw = raw_request(gh.port, b"GET /echo HTTP/1.0\r\n\r\n")
    info = json.loads(raw.split(b"\r\n\r\n", 1)[1])
    assert seen(info, "Host") == ["app.internal"]
    # A client that sent a Host (HTTP/1.0 or 1.1) keeps its own, alone.
    for request in (b"GET /echo HTTP/1.0\r\nHost: mine\r\n\r\n",
                    b"GET /echo HTTP/1.1\r\nHost: mine\r\nConnection: close\r\n\r\n"):
        raw = raw_request(gh.port, request)
        sent_host = request.split(b"Host:")[1].split(b"\r\n")[0].strip().decode()
        assert seen(json.loads(raw.split(b"\r\n\r\n", 1)[1]), "Host") == [sent_host]
    # An empty one names no host, which an http URI must have (RFC 9110 §4.2.1): 400, as nginx.
    for request in (b"GET /echo HTTP/1.0\r\nHost:\r\n\r\n",
                    b"GET /echo HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n"):
        assert raw_request(gh.port, request).status == 400, request


@pytest.mark.parametrize("spelling,length", [("010", 10), ("0000000004", 4), ("00", 0),
                                             ("0", 0), ("7", 7)])
def test_request_content_length_goes_up_as_plain_decimal(start_gatehouse, spelling, length):
    """`Content-Length: 010` is decimal 10, but a backend parsing with strtol(..., 0) reads octal
    8 and takes the last bytes as its next request: only the plain decimal goes up."""
    body = b"abcdefghijklmnop"[:length]
    upstream = OneShotUpstream(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    try:
        gh = start_gatehouse(proxy_config([upstream.address]))
        raw = raw_request(gh.port, b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: %s\r\n"
                                   b"Connection: close\r\n\r\n%s" % (spelling.encode(), body))
        upstream.thread.join(5)
    finally:
        upstream.close()
    assert raw.status == 200, raw
    sent = upstream.head.decode("latin-1")
    assert "\r\nContent-Length: %d\r\n" % length in sent, sent
    assert sent.lower().count("content-length") == 1, sent


@pytest.mark.parametrize("spelling,length", [("005", 5), ("0", 0), ("00", 0)])
def test_response_content_length_goes_to_the_client_as_plain_decimal(start_gatehouse, spelling,
                                                                     length):
    body = b"hello"[:length]
    upstream = OneShotUpstream(b"HTTP/1.1 200 OK\r\nContent-Length: %s\r\n\r\n%s"
                               % (spelling.encode(), body))
    try:
        gh = start_gatehouse(proxy_config([upstream.address]))
        raw = raw_request(gh.port, b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        upstream.thread.join(5)
    finally:
        upstream.close()
    head, _, got = raw.partition(b"\r\n\r\n")
    assert b"\r\nContent-Length: %d\r\n" % length in head + b"\r\n", raw
    assert head.lower().count(b"content-length") == 1, raw
    assert got == body
