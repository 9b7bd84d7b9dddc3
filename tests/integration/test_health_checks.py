"""Active health checks ([upstream.NAME.health]) and the panic threshold through the real binary:
a server failing its checks is taken out within interval x fall and gets no client request, it
comes back after `rise` passes, and when too few servers are healthy every server is used."""

import re
import socket
import threading
import time

import pytest

from harness import Client, get, proxy_config, run_check

INTERVAL, JITTER, RISE, FALL = 0.2, 0.02, 2, 2
HEALTH = """
[upstream.app.health]
path = "/health-check"
interval = "%dms"
jitter = "%dms"
timeout = "500ms"
rise = %d
fall = %d
""" % (INTERVAL * 1000, JITTER * 1000, RISE, FALL)
# A state change takes `fall` (or `rise`) checks: the first comes within one jitter, each next one
# within interval + jitter. The slack covers a loaded 2-core machine, not a slower design.
SLACK = 1.5
FALL_WITHIN = JITTER + (FALL - 1) * (INTERVAL + JITTER) + SLACK
RISE_WITHIN = RISE * (INTERVAL + JITTER) + SLACK


def set_health(backend, status):
    """Sets the status the backend's /health-check answers, asking the backend directly."""
    with Client(backend.port) as c:
        assert c.request("GET", "/set-health/%d" % status).status == 200


def unhealthy_line(backend, reason=r"status 500"):
    return r"server %s is unhealthy \(%d failed checks: %s\)" % (re.escape(backend.address), FALL,
                                                                 reason)


def healthy_again_line(backend):
    return r"server %s is healthy again \(%d passed checks\)" % (re.escape(backend.address), RISE)


def ids_of(port, n=20):
    return [get(port, "/id").body for _ in range(n)]


def id_requests(backend):
    return sum(1 for t in backend.targets() if t == "/id")


def test_failing_server_is_taken_out_and_gets_no_client_request(start_backend, start_gatehouse):
    good, bad = start_backend("good"), start_backend("bad")
    set_health(bad, 500)
    gh = start_gatehouse(proxy_config([good, bad], upstream=HEALTH))
    started = time.monotonic()
    assert gh.wait_log(unhealthy_line(bad), FALL_WITHIN), gh.log_text()
    assert time.monotonic() - started < FALL_WITHIN
    before = id_requests(bad)
    assert set(ids_of(gh.port)) == {b"good"}
    assert id_requests(bad) == before
    assert "%s is unhealthy" % good.address not in gh.log_text()


def test_server_whose_health_recovers_is_back_after_rise_passes(start_backend, start_gatehouse):
    good, flaky = start_backend("good"), start_backend("flaky")
    set_health(flaky, 503)
    gh = start_gatehouse(proxy_config([good, flaky], upstream=HEALTH))
    assert gh.wait_log(unhealthy_line(flaky, "status 503"), FALL_WITHIN), gh.log_text()
    assert set(ids_of(gh.port)) == {b"good"}
    set_health(flaky, 200)
    started = time.monotonic()
    assert gh.wait_log(healthy_again_line(flaky), RISE_WITHIN), gh.log_text()
    assert time.monotonic() - started < RISE_WITHIN
    assert set(ids_of(gh.port)) == {b"good", b"flaky"}


def test_stopped_server_is_unhealthy_until_restarted_on_its_port(start_backend, start_gatehouse):
    good, gone = start_backend("good"), start_backend("gone")
    gh = start_gatehouse(proxy_config([good, gone], upstream=HEALTH))
    port = gone.port
    gone.stop()
    assert gh.wait_log(unhealthy_line(gone, "connection refused"), FALL_WITHIN + INTERVAL), \
        gh.log_text()
    assert set(ids_of(gh.port)) == {b"good"}
    back = start_backend("back", port=port)
    assert gh.wait_log(healthy_again_line(back), RISE_WITHIN), gh.log_text()
    assert set(ids_of(gh.port)) == {b"good", b"back"}


def test_all_servers_unhealthy_still_serves_requests(start_backend, start_gatehouse):
    a, b = start_backend("a"), start_backend("b")
    set_health(a, 500)
    set_health(b, 500)
    gh = start_gatehouse(proxy_config([a, b], upstream=HEALTH))
    assert gh.wait_log(unhealthy_line(a), FALL_WITHIN), gh.log_text()
    assert gh.wait_log(unhealthy_line(b), FALL_WITHIN), gh.log_text()
    responses = [get(gh.port, "/id") for _ in range(20)]
    assert all(r.status == 200 for r in responses)
    assert {r.body for r in responses} == {b"a", b"b"}


@pytest.mark.parametrize("threshold, used", [(60, {b"good", b"bad"}), (50, {b"good"})])
def test_panic_threshold_uses_every_server_when_too_few_are_healthy(start_backend,
                                                                    start_gatehouse, threshold,
                                                                    used):
    # 1 of 2 healthy is 50%: below a threshold of 60, not below one of 50.
    good, bad = start_backend("good"), start_backend("bad")
    set_health(bad, 500)
    upstream = "panic_threshold = %d\n%s" % (threshold, HEALTH)
    gh = start_gatehouse(proxy_config([good, bad], upstream=upstream))
    assert gh.wait_log(unhealthy_line(bad), FALL_WITHIN), gh.log_text()
    assert set(ids_of(gh.port)) == used


class OneShotOrigin:
    """A listener that records the first request head it receives and answers it with 200."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(5.0)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.head = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5.0)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            self.head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def close(self):
        self.thread.join(6.0)
        self.sock.close()


@pytest.mark.parametrize("host_line, expected_host", [('host = "app.internal"\n', "app.internal"),
                                                      ("", None)])
def test_check_request_is_a_get_of_path_with_host_and_connection_close(start_gatehouse,
                                                                       host_line,
                                                                       expected_host):
    origin = OneShotOrigin()
    try:
        health = '[upstream.app.health]\npath = "/hc?deep=1"\ninterval = "5s"\njitter = 0\n'
        start_gatehouse(proxy_config([origin.address], upstream=health + host_line))
        origin.thread.join(5.0)
        assert origin.head is not None, "no health check arrived"
        lines = origin.head.split("\r\n")
        headers = {n.strip().lower(): v.strip() for n, _, v in (l.partition(":") for l in lines[1:])}
        assert lines[0] == "GET /hc?deep=1 HTTP/1.1"
        assert headers["host"] == (expected_host or origin.address)
        assert headers["connection"].lower() == "close"
    finally:
        origin.close()


def test_bad_health_config_is_refused_with_its_key(tmp_path):
    text = proxy_config(["127.0.0.1:9"], upstream='[upstream.app.health]\nexpect = "2xx"\n')
    code, stderr = run_check(tmp_path, text)
    assert code != 0
    assert "[upstream.app.health.expect] '2xx' is not a status" in stderr
