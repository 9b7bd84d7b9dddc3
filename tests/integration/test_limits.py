"""Request and response size limits: 431 header bytes/count, 414 URI, 413 body, 502 for an
upstream response header over max_response_header_bytes."""

import pytest

from harness import Client, get, proxy_config, raw_request, request

LIMITS = """
[limits]
max_header_bytes = "2k"
max_headers = 20
max_uri_bytes = "512"
max_body_bytes = "4k"
"""


@pytest.fixture
def limited(start_backend, start_gatehouse):
    backend = start_backend("limited")
    return start_gatehouse(proxy_config([backend], extra=LIMITS)), backend


def assert_rejected_and_closed(reply, status):
    assert reply.status == status, bytes(reply[:300])
    assert reply.closed, "connection left open after %d" % status


def test_header_bytes_over_limit_is_431(limited):
    gh, backend = limited
    reply = raw_request(gh.port, Client.build("GET", "/echo?big", [("X-Big", "v" * 3000)]))
    assert_rejected_and_closed(reply, 431)
    assert "/echo?big" not in backend.targets()


def test_header_bytes_under_limit_pass(limited):
    gh, _ = limited
    assert get(gh.port, "/echo", headers=[("X-Big", "v" * 1000)]).status == 200


def test_many_small_headers_over_byte_limit_is_431(limited):
    gh, _ = limited
    headers = [("X-H%d" % (i % 15), "v" * 190) for i in range(15)]  # 15 fields, ~3 KiB
    assert_rejected_and_closed(raw_request(gh.port, Client.build("GET", "/echo", headers)), 431)


def test_header_count_at_limit_passes(limited):
    gh, _ = limited
    headers = [("X-H%d" % i, "v") for i in range(19)]  # + Host = 20 fields
    assert get(gh.port, "/echo", headers=headers).status == 200


def test_header_count_over_limit_is_431(limited):
    gh, _ = limited
    headers = [("X-H%d" % i, "v") for i in range(20)]  # + Host = 21 fields
    assert_rejected_and_closed(raw_request(gh.port, Client.build("GET", "/echo", headers)), 431)


def test_uri_over_limit_is_414(limited):
    gh, backend = limited
    target = "/echo?" + "q" * 600
    assert_rejected_and_closed(raw_request(gh.port, Client.build("GET", target)), 414)
    assert target not in backend.targets()


def test_uri_under_limit_passes(limited):
    gh, _ = limited
    assert get(gh.port, "/echo?" + "q" * 400).status == 200


def test_declared_body_over_limit_is_413_without_contacting_backend(limited):
    gh, backend = limited
    raw = Client.build("POST", "/echo?declared", [("Content-Length", "5000")]) + b"x" * 5000
    assert_rejected_and_closed(raw_request(gh.port, raw), 413)
    assert "/echo?declared" not in backend.targets()


def test_declared_body_over_limit_with_expect_gets_413_not_100(limited):
    gh, _ = limited
    raw = Client.build("POST", "/echo", [("Content-Length", "5000"), ("Expect", "100-continue")])
    reply = raw_request(gh.port, raw)
    assert_rejected_and_closed(reply, 413)
    assert b" 100 " not in reply


def test_body_at_limit_passes(limited):
    gh, _ = limited
    r = request(gh.port, "POST", "/echo", body=b"x" * 4096)
    assert r.status == 200 and r.json()["body_length"] == 4096


def test_chunked_body_streamed_over_limit_is_413(limited):
    gh, _ = limited
    body = b"".join(b"7d0\r\n" + b"c" * 2000 + b"\r\n" for _ in range(3)) + b"0\r\n\r\n"
    raw = Client.build("POST", "/echo", [("Transfer-Encoding", "chunked")]) + body
    assert_rejected_and_closed(raw_request(gh.port, raw), 413)


def test_chunked_body_under_limit_passes(limited):
    gh, _ = limited
    body = b"".join(b"3e8\r\n" + b"c" * 1000 + b"\r\n" for _ in range(4)) + b"0\r\n\r\n"
    r = request(gh.port, "POST", "/echo", [("Transfer-Encoding", "chunked")], body)
    assert r.status == 200 and r.json()["body_length"] == 4000


def test_upstream_response_header_over_default_limit_is_502(proxy):
    gh, _ = proxy
    assert get(gh.port, "/raw/huge-headers").status == 502


def test_upstream_response_header_under_limit_passes(proxy):
    gh, _ = proxy
    r = get(gh.port, "/big-header/20000")
    assert r.status == 200 and r.body == b"big\n"


def test_upstream_response_header_limit_is_configurable(start_backend, start_gatehouse):
    backend = start_backend("a")
    gh = start_gatehouse(proxy_config([backend], extra="[limits]\nmax_response_header_bytes = \"8k\"\n"))
    assert get(gh.port, "/big-header/4000").status == 200
    assert get(gh.port, "/big-header/12000").status == 502


def test_default_request_header_limit_is_16k(proxy):
    gh, _ = proxy
    assert get(gh.port, "/echo", headers=[("X-Big", "v" * 15000)]).status == 200
    reply = raw_request(gh.port, Client.build("GET", "/echo", [("X-Big", "v" * 17000)]))
    assert_rejected_and_closed(reply, 431)


def test_default_body_limit_is_64m(proxy):
    gh, _ = proxy
    raw = Client.build("POST", "/echo", [("Content-Length", str(65 << 20))])
    assert_rejected_and_closed(raw_request(gh.port, raw), 413)


def test_body_limit_zero_means_unlimited(start_backend, start_gatehouse):
    backend = start_backend("a")
    gh = start_gatehouse(proxy_config([backend], extra="[limits]\nmax_body_bytes = 0\n"))
    size = 70 << 20
    with Client(gh.port, timeout=30) as c:
        c.send(Client.build("POST", "/echo", [("Content-Length", str(size))]))
        chunk = b"z" * (1 << 20)
        for _ in range(size >> 20):
            c.send(chunk)
        r = c.read_response()
    assert r.status == 200 and r.json()["body_length"] == size
