"""Requests pass through gatehouse; keep-alive holds on both sides; pipelining; pool reuse."""

import hashlib
import random
import socket
import threading
import time

from harness import Client, get, proxy_config, raw_request, request


def test_get_passes_through_with_method_target_and_query(proxy):
    gh, _ = proxy
    r = get(gh.port, "/echo/some/path?q=1&r=two")
    assert r.status == 200
    info = r.json()
    assert info["method"] == "GET"
    assert info["target"] == "/echo/some/path?q=1&r=two"
    assert info["version"] == "HTTP/1.1"
    assert info["body_length"] == 0


def test_post_body_passes_through_intact(proxy):
    gh, _ = proxy
    body = bytes(range(256)) * 400
    r = request(gh.port, "POST", "/echo", [("Content-Type", "application/octet-stream")], body)
    assert r.status == 200
    info = r.json()
    assert info["method"] == "POST"
    assert info["body_length"] == len(body)
    assert info["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_other_methods_pass_through(proxy):
    gh, _ = proxy
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
        r = request(gh.port, method, "/echo", body=b"x" if method in ("PUT", "PATCH") else b"")
        assert r.status == 200, method
        assert r.json()["method"] == method


def test_upstream_status_codes_are_forwarded(proxy):
    gh, _ = proxy
    for code in (201, 404, 500, 503):
        assert get(gh.port, "/status/%d" % code).status == code


def test_client_connection_is_kept_alive_across_requests(proxy):
    gh, _ = proxy
    with Client(gh.port) as c:
        for i in range(20):
            r = c.request("GET", "/echo?n=%d" % i)
            assert r.status == 200
            assert r.json()["target"] == "/echo?n=%d" % i
            assert "close" not in (r.header("connection") or "").lower()
        assert not c.wait_closed(0.3)


def test_pipelined_requests_are_answered_in_order(proxy):
    gh, _ = proxy
    batch = b"".join(
        Client.build("POST", "/echo?n=%d" % i, body=b"b" * i) if i % 3 == 0
        else Client.build("GET", "/echo?n=%d" % i)
        for i in range(12))
    with Client(gh.port) as c:
        c.send(batch)
        for i in range(12):
            r = c.read_response()
            assert r.status == 200
            info = r.json()
            assert info["target"] == "/echo?n=%d" % i
            assert info["body_length"] == (i if i % 3 == 0 else 0)


def test_request_sent_while_the_previous_one_waits_for_its_upstream_is_answered(proxy):
    """The second request arrives on its own while the first is still at the upstream: the
    proxy has seen its bytes come before it wants them, and must read them once the first is
    answered -- the client sends nothing more, so a read that waited for new bytes would hang."""
    gh, _ = proxy
    with Client(gh.port, timeout=5) as c:
        c.send(Client.build("GET", "/sleep/300"))
        time.sleep(0.1)
        c.send(Client.build("GET", "/echo?n=2"))
        first = c.read_response()
        assert first.status == 200, first
        started = time.monotonic()
        second = c.read_response()
        assert second.status == 200, second
        assert second.json()["target"] == "/echo?n=2"
        assert time.monotonic() - started < 2


def test_client_half_close_while_its_request_is_at_the_upstream(proxy):
    """A client that shuts down its sending side after a request (its FIN comes while the
    upstream is still working) gets the response, then the connection is closed -- promptly,
    not after the keep-alive timeout."""
    gh, _ = proxy
    with Client(gh.port, timeout=5) as c:
        c.send(Client.build("GET", "/sleep/300"))
        time.sleep(0.1)
        c.sock.shutdown(socket.SHUT_WR)
        r = c.read_response()
        assert r.status == 200, r
        assert c.wait_closed(2)


def test_many_clients_mixing_pipelined_and_paced_requests_all_get_answers(proxy):
    """Clients on several connections at once send their requests alone, paced, or several
    pipelined in one write or in separate writes while earlier ones are at the upstream: every
    request is answered, in order, and none waits for a timeout (each connection's reads rely
    on knowing when its socket was drained)."""
    gh, _ = proxy
    errors = []

    def client(seed):
        rng = random.Random(seed)
        try:
            with Client(gh.port, timeout=5) as c:
                n = 0
                for _ in range(15):
                    batch = rng.randint(1, 4)
                    targets = ["/echo?c=%d&n=%d" % (seed, n + i) for i in range(batch)]
                    if rng.random() < 0.3:
                        targets[0] = "/sleep/%d" % rng.randint(1, 30)
                    if rng.random() < 0.5:
                        c.send(b"".join(Client.build("GET", t) for t in targets))
                    else:
                        for t in targets:
                            c.send(Client.build("GET", t))
                            time.sleep(rng.random() * 0.005)
                    for t in targets:
                        r = c.read_response()
                        assert r.status == 200, r
                        if t.startswith("/echo"):
                            assert r.json()["target"] == t
                    n += batch
        except Exception as e:  # noqa: BLE001 -- reported by the main thread
            errors.append("client %d: %r" % (seed, e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(12)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert not errors, errors
    assert time.monotonic() - started < 20


def test_upstream_connections_are_pooled_and_reused(proxy):
    gh, backend = proxy
    with Client(gh.port) as c:
        for _ in range(50):
            assert c.request("GET", "/id").status == 200
    for _ in range(50):
        assert get(gh.port, "/id").status == 200
    # 100 sequential requests; at most one pooled connection per worker (2) is ever needed.
    assert backend.stats()["connections"] <= 4


def test_upstream_pool_disabled_with_keepalive_zero(start_backend, start_gatehouse):
    backend = start_backend("a")
    gh = start_gatehouse(proxy_config([backend], upstream="keepalive = 0"))
    with Client(gh.port) as c:
        for _ in range(5):
            assert c.request("GET", "/id").status == 200
    assert backend.stats()["connections"] == 5


def test_head_response_has_no_body_and_connection_stays_usable(proxy):
    gh, _ = proxy
    with Client(gh.port) as c:
        c.send(Client.build("HEAD", "/bytes/1000") + Client.build("GET", "/id"))
        head = c.read_response("HEAD")
        assert head.status == 200
        assert head.header("content-length") == "1000"
        follow = c.read_response()
        assert follow.status == 200 and follow.body == b"only"


def test_204_and_304_responses_have_no_body(proxy):
    gh, _ = proxy
    with Client(gh.port) as c:
        c.send(Client.build("GET", "/status/204") + Client.build("GET", "/status/304")
               + Client.build("GET", "/id"))
        assert c.read_response().status == 204
        assert c.read_response().status == 304
        assert c.read_response().body == b"only"


def test_http10_client_gets_response_then_close(proxy):
    gh, _ = proxy
    reply = raw_request(gh.port, b"GET /id HTTP/1.0\r\nHost: test.local\r\n\r\n")
    assert reply.status == 200
    assert reply.endswith(b"only")
    assert reply.closed


def test_client_connection_close_is_honoured(proxy):
    gh, _ = proxy
    with Client(gh.port) as c:
        r = c.request("GET", "/id", [("Connection", "close")])
        assert r.status == 200
        assert c.wait_closed(2.0)


def test_upstream_close_does_not_close_client_connection(proxy):
    gh, _ = proxy
    with Client(gh.port) as c:
        r = c.request("GET", "/close")
        assert r.status == 200 and r.body == b"closing\n"
        assert c.request("GET", "/id").body == b"only"
