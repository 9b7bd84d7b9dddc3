"""Upstream failures: retries on connect failure, 502/504 when nothing is left, stale pooled
connections, no replay of a non-idempotent request, passive ejection, malformed responses."""

import re
import threading
import time

import pytest

from harness import Client, free_port, get, proxy_config, request, wait_until


def count(backend, target):
    return sum(1 for t in backend.targets() if t == target)


def test_connect_refused_retries_the_other_server(start_backend, start_gatehouse):
    live = start_backend("live")
    dead = "127.0.0.1:%d" % free_port()
    gh = start_gatehouse(proxy_config([dead, live]))
    for _ in range(20):
        r = get(gh.port, "/id")
        assert r.status == 200 and r.body == b"live"


def test_post_is_retried_after_connect_failure(start_backend, start_gatehouse):
    # Nothing of the request reached a server whose connect was refused: retrying is safe.
    live = start_backend("live")
    gh = start_gatehouse(proxy_config(["127.0.0.1:%d" % free_port(), live]))
    for i in range(6):
        r = request(gh.port, "POST", "/echo?n=%d" % i, body=b"payload")
        assert r.status == 200 and r.json()["body_length"] == 7
    assert len(live.targets()) == 6


def test_all_servers_down_is_502_quickly_with_reason_logged(start_gatehouse):
    dead = ["127.0.0.1:%d" % free_port() for _ in range(2)]
    gh = start_gatehouse(proxy_config(dead))
    start = time.monotonic()
    r = get(gh.port, "/id")
    assert r.status == 502
    assert time.monotonic() - start < 2.0
    assert gh.wait_log("(?i)" + "|".join(re.escape(a) for a in dead) + "|refused"), \
        "no reason for the 502 in the log:\n" + gh.log_text()


def test_stale_pooled_connection_is_not_a_502(start_backend, start_gatehouse):
    backend = start_backend("ka", keepalive_timeout=0.2)
    gh = start_gatehouse(proxy_config([backend], workers=1))
    with Client(gh.port) as c:
        for _ in range(4):
            assert c.request("GET", "/id").status == 200
            time.sleep(0.5)  # the backend has closed the pooled connection by now


def test_stale_pooled_connection_post_is_not_a_502(start_backend, start_gatehouse):
    # The backend's FIN arrived long before the POST: the pool must notice, not send into it.
    backend = start_backend("ka", keepalive_timeout=0.2)
    gh = start_gatehouse(proxy_config([backend], workers=1))
    with Client(gh.port) as c:
        for i in range(4):
            r = c.request("POST", "/echo?n=%d" % i, body=b"data")
            assert r.status == 200 and r.json()["body_length"] == 4
            time.sleep(0.5)


def test_get_on_reused_connection_closed_without_response_is_retried(start_backend,
                                                                       start_gatehouse):
    # The backend reads the 2nd request on every connection, then closes without answering:
    # the race a pooled connection loses when the server's keep-alive timer fires.
    backend = start_backend("drop", drop_nth_request=2)
    gh = start_gatehouse(proxy_config([backend], workers=1))
    with Client(gh.port) as c:
        for _ in range(6):
            r = c.request("GET", "/id")
            assert r.status == 200 and r.body == b"drop"


def test_post_on_reused_connection_closed_without_response_is_not_replayed(start_backend,
                                                                            start_gatehouse):
    backend = start_backend("drop", drop_nth_request=2)
    gh = start_gatehouse(proxy_config([backend], workers=1))
    with Client(gh.port) as c:
        assert c.request("POST", "/echo?first", body=b"1").status == 200
        r = c.request("POST", "/echo?second", body=b"2")
    assert r.status == 502
    assert count(backend, "/echo?second") == 1


def test_post_reset_mid_request_is_502_and_not_replayed(start_backend, start_gatehouse):
    a, b = start_backend("a"), start_backend("b")
    gh = start_gatehouse(proxy_config([a, b]))
    start = time.monotonic()
    r = request(gh.port, "POST", "/raw/reset", body=b"p" * (1 << 20))
    assert r.status == 502
    assert time.monotonic() - start < 3.0
    time.sleep(0.2)
    assert count(a, "/raw/reset") + count(b, "/raw/reset") == 1


def test_first_byte_timeout_is_504(start_backend, start_gatehouse):
    backend = start_backend("slow")
    gh = start_gatehouse(proxy_config([backend], upstream='first_byte_timeout = "300ms"'))
    start = time.monotonic()
    assert get(gh.port, "/slow-header/3000").status == 504
    assert time.monotonic() - start < 2.5


def test_failing_server_is_ejected_for_backoff_then_tried_again(start_backend, start_gatehouse):
    live = start_backend("live")
    port = free_port()
    upstream = 'max_fails = 2\nfail_backoff = "2s"\n'
    gh = start_gatehouse(proxy_config(["127.0.0.1:%d" % port, live], upstream=upstream))
    for _ in range(6):  # round robin offers the dead server every other request
        assert get(gh.port, "/id").status == 200
    ejected_at = time.monotonic()
    # The server comes back during its backoff: it must not be tried yet.
    revived = start_backend("revived", port=port)
    for _ in range(10):
        assert get(gh.port, "/id").body == b"live"
    assert time.monotonic() - ejected_at < 1.5, "too slow to test inside the backoff"
    assert revived.stats()["connections"] == 0
    # After the backoff it is tried again and serves.
    time.sleep(max(0.0, ejected_at + 2.5 - time.monotonic()))
    served = [get(gh.port, "/id").body for _ in range(10)]
    assert b"revived" in served


def test_backup_server_is_used_only_when_primaries_are_down(start_backend, start_gatehouse):
    primary, backup = start_backend("primary"), start_backend("backup")
    gh = start_gatehouse(proxy_config([primary, {"address": backup.address, "backup": True}]))
    assert {get(gh.port, "/id").body for _ in range(10)} == {b"primary"}
    gh2 = start_gatehouse(proxy_config(["127.0.0.1:%d" % free_port(),
                                        {"address": backup.address, "backup": True}]), name="gh2")
    assert {get(gh2.port, "/id").body for _ in range(6)} == {b"backup"}


MALFORMED = ["cl-te", "dup-cl", "dup-cl-same", "bad-cl", "obs-fold", "xchunked", "te-identity",
             "space-colon", "bare-lf", "bad-status", "not-http", "ctl-value", "huge-headers",
             "none", "reset"]


def test_unsolicited_extra_upstream_response_never_reaches_a_client(start_backend,
                                                                     start_gatehouse):
    backend = start_backend("pool")
    gh = start_gatehouse(proxy_config([backend], workers=1))
    with Client(gh.port) as c:
        first = c.request("GET", "/raw/extra-response")
        assert first.status in (200, 502)
        if first.status == 200:
            assert first.body == b"hello"
        for _ in range(3):
            assert c.request("GET", "/id").body == b"pool"
    for _ in range(3):
        assert get(gh.port, "/id").body == b"pool"


def test_http10_upstream_response_is_forwarded(proxy):
    gh, _ = proxy
    with Client(gh.port) as c:
        r = c.request("GET", "/raw/http10")
        assert r.status == 200 and r.body == b"hello"
        assert c.request("GET", "/id").body == b"only"


def test_close_delimited_upstream_body_is_forwarded_whole(proxy):
    gh, _ = proxy
    with Client(gh.port) as c:
        r = c.request("GET", "/raw/eof-body")
        assert r.status == 200 and r.complete
        assert r.body == b"hello, until close"


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_upstream_response_is_502(start_backend, start_gatehouse, name):
    backend = start_backend("raw")
    gh = start_gatehouse(proxy_config([backend]))
    with Client(gh.port, timeout=5) as c:
        r = c.request("GET", "/raw/" + name)
        assert r.status == 502, r
        assert b"hello" not in r.body


def test_bad_chunk_in_upstream_response_is_not_passed_on_as_complete(start_backend,
                                                                     start_gatehouse):
    # The header may already be on its way to the client when the bad chunk arrives; then the
    # only honest signal left is an aborted response (no terminating chunk) and a close.
    backend = start_backend("raw")
    gh = start_gatehouse(proxy_config([backend]))
    with Client(gh.port, timeout=5) as c:
        r = c.request("GET", "/raw/bad-chunk")
        if r.status != 502:
            assert not r.complete, r
            assert wait_until(lambda: c.eof or c.wait_closed(0.2), 3.0)


def test_max_attempts_limits_tries_per_request(start_backend, start_gatehouse):
    live = start_backend("live")
    upstream = "max_attempts = 1\nmax_fails = 1000\n"
    gh = start_gatehouse(proxy_config(["127.0.0.1:%d" % free_port(), live], upstream=upstream))
    statuses = [get(gh.port, "/id").status for _ in range(10)]
    # Round robin offers the dead server first half of the time, and one try allows no retry.
    assert sorted(set(statuses)) == [200, 502], statuses


def test_server_at_max_inflight_is_skipped(start_backend, start_gatehouse):
    limited, other = start_backend("limited"), start_backend("other")
    servers = [{"address": limited.address, "max_inflight": 1}, other.address]
    gh = start_gatehouse(proxy_config(servers, balancer="least_conn"))
    errors = []

    def client():
        try:
            for _ in range(3):
                assert get(gh.port, "/sleep/200").status == 200
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors, errors
    assert limited.stats()["max_active"] == 1
    assert limited.stats()["requests"] + other.stats()["requests"] == 12


RESTART_CASES = [("PUT", b"u" * 1000), ("POST", b"p" * 1000), ("GET", b"g" * 100),
                 ("DELETE", b"d" * 10), ("PATCH", b"a" * 500), ("OPTIONS", b""), ("GET", b""),
                 ("PUT", b"big" * 20000)]


@pytest.mark.parametrize("method,body", RESTART_CASES,
                         ids=["%s-%d" % (m, len(b)) for m, b in RESTART_CASES])
def test_backend_restart_costs_no_request_of_any_method(start_backend, start_gatehouse,
                                                        method, body):
    """The old process closed the pooled connections when it exited: none of them may carry the
    next request, whatever its method and body (each deploy of a backend would fail uploads)."""
    backend = start_backend("v1")
    port = backend.port
    gh = start_gatehouse(proxy_config([backend], workers=1))
    for generation in ("v2", "v3"):
        with Client(gh.port) as c:  # the pooled connections are warm on both sides
            for _ in range(3):
                r = c.request(method, "/echo", body=body)
                assert r.status == 200 and r.json()["body_length"] == len(body), r
        backend.stop()
        backend = start_backend(generation, port=port)
        r = request(gh.port, method, "/echo", body=body)
        assert r.status == 200, (generation, r, gh.log_text()[-1500:])
        assert r.json()["id"] == generation and r.json()["body_length"] == len(body)


def test_put_on_a_reused_connection_closed_without_response_is_replayed(start_backend,
                                                                        start_gatehouse):
    """The race a pooled connection can still lose (the server's keep-alive timer fires as the
    request goes up): an idempotent request whose whole body went up in its first write is sent
    again on a new connection; a POST is not (test above)."""
    backend = start_backend("drop", drop_nth_request=2)
    gh = start_gatehouse(proxy_config([backend], workers=1))
    with Client(gh.port) as c:
        for i in range(4):
            body = b"%d" % i * 3000
            r = c.request("PUT", "/echo?n=%d" % i, body=body)
            assert r.status == 200 and r.json()["body_length"] == len(body), r
    # Every second request on a connection was read and dropped, then sent again.
    assert count(backend, "/echo?n=1") == 2 and count(backend, "/echo?n=0") == 1


def test_backoff_grows_only_from_real_probes_and_one_answer_clears_it(tmp_path, start_backend,
                                                                      start_gatehouse):
    """With every server down, each request tries the ejected server again (nobody else is
    left): those failures must not push its return further out. When it answers again, health,
    /metrics and /status say so at once, and the log tells."""
    from admin_helpers import Samples, admin_port, scrape
    port = free_port()
    extra = '[admin]\nlisten = "127.0.0.1:0"\n'
    gh = start_gatehouse(proxy_config(["127.0.0.1:%d" % port], workers=1, extra=extra,
                                      upstream='max_fails = 1\nfail_backoff = "30s"\n'))
    admin = admin_port(gh)
    for _ in range(6):
        assert get(gh.port, "/id").status == 502
    ejections = re.findall(r"ejected for (\d+) ms", gh.log_text())
    assert ejections == ["30000"], gh.log_text()[-2000:]
    start_backend("back", port=port)
    assert get(gh.port, "/id").body == b"back"
    assert gh.wait_log(r"server 127\.0\.0\.1:%d answers again" % port, 2)
    status = request(admin, "GET", "/status").json()
    assert status["upstreams"][0]["servers"][0]["healthy"] is True, status
    assert Samples(scrape(admin)).value("gatehouse_upstream_server_healthy", upstream="app",
                               server="127.0.0.1:%d" % port) == 1
    for _ in range(5):
        assert get(gh.port, "/id").status == 200


def test_post_is_replayed_on_a_stale_connection_only_with_retry_non_idempotent(start_backend,
                                                                               start_gatehouse):
    """The operator's choice: with retry_non_idempotent a POST whose reused connection closed
    before any response byte goes up again on a new one; a POST that timed out or failed on a
    fresh connection still is not replayed (test_post_reset_mid_request_is_502_and_not_replayed
    covers the default)."""
    backend = start_backend("drop", drop_nth_request=2)
    gh = start_gatehouse(proxy_config([backend], workers=1,
                                      upstream="retry_non_idempotent = true"))
    with Client(gh.port) as c:
        for i in range(4):
            r = c.request("POST", "/echo?n=%d" % i, body=b"p" * 2000)
            assert r.status == 200 and r.json()["body_length"] == 2000, r
    # The backend drops the second request on every connection: each POST after the first
    # arrived twice, once dropped unanswered and once answered.
    assert [count(backend, "/echo?n=%d" % i) for i in range(4)] == [1, 2, 2, 2]
    a, b = start_backend("a"), start_backend("b")
    gh2 = start_gatehouse(proxy_config([a, b], upstream="retry_non_idempotent = true"),
                          name="gh2")
    assert request(gh2.port, "POST", "/raw/reset", body=b"p" * (1 << 20)).status == 502
    time.sleep(0.2)
    assert count(a, "/raw/reset") + count(b, "/raw/reset") == 1
