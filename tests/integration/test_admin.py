"""The admin listener ([admin] listen): /healthz, /readyz, /metrics (Prometheus text, exact
counter values after known traffic, checked by `promtool check metrics`), /status (JSON),
POST /reload (generation and config hash), and /readyz during a SIGTERM drain."""

import hashlib
import json
import re
import signal
import socket
import threading

import pytest

from admin_helpers import (admin_config, admin_port, parse_metrics, promtool_check, scrape,
                           settled_metrics)
from harness import Client, free_port, get, raw_request, request, wait_until


def main_routes(host="test.local", dead=True):
    routes = [{"name": "main", "host": host, "path": "/", "upstream": "app"}]
    if dead:
        routes.append({"name": "deadr", "host": host, "path": "/dead/", "upstream": "dead"})
    return routes


@pytest.fixture
def admin_setup(start_backend, start_gatehouse):
    """gatehouse with upstream `app` (one live backend) and `dead` (a refused port, ejected after
    one failure), routes `main` and `deadr` for Host test.local only; returns a namespace."""
    def start(app_extra="", **kw):
        backend = start_backend("app")
        dead = "127.0.0.1:%d" % free_port()
        text = admin_config({"app": [backend], "dead": [dead]}, main_routes(),
                            upstream_extra={"dead": "max_fails = 1\nfail_backoff = \"30s\"",
                                            "app": "max_fails = 1000\n" + app_extra}, **kw)
        gh = start_gatehouse(text)
        return type("Setup", (), {"gh": gh, "backend": backend, "dead": dead,
                                  "admin": admin_port(gh), "port": gh.port})
    return start


# --------------------------------------------------------------------------------------------
# Simple endpoints


def test_healthz_readyz_status_codes_and_methods(admin_setup):
    s = admin_setup()
    r = get(s.admin, "/healthz")
    assert r.status == 200 and r.body == b"ok\n", r
    r = get(s.admin, "/readyz")
    assert r.status == 200 and r.body == b"ready\n", r
    r = request(s.admin, "HEAD", "/healthz")
    assert r.status == 200 and r.body == b"" and r.header("content-length") == "3", r
    for path in ("/", "/nope", "/metricsx", "/healthz/extra"):
        assert get(s.admin, path).status == 404, path
    r = request(s.admin, "POST", "/healthz")
    assert r.status == 405 and r.header("allow") == "GET, HEAD", r
    r = request(s.admin, "DELETE", "/metrics")
    assert r.status == 405, r
    r = get(s.admin, "/reload")
    assert r.status == 405 and r.header("allow") == "POST", r
    r = get(s.admin, "/metrics")
    assert r.status == 200 and "text/plain" in r.header("content-type")
    assert "version=0.0.4" in r.header("content-type"), r.header("content-type")
    r = get(s.admin, "/status")
    assert r.status == 200 and r.header("content-type").startswith("application/json")
    # The admin listener is not the proxy: none of this was counted as proxied traffic.
    m = parse_metrics(scrape(s.admin))
    assert m.value("gatehouse_connections_total") == 0
    assert sum(v for _, v in m.series("gatehouse_requests_total")) == 0


def test_admin_keeps_alive_and_answers_several_requests(admin_setup):
    s = admin_setup()
    with Client(s.admin) as c:
        for path in ("/healthz", "/readyz", "/metrics", "/status", "/healthz"):
            assert c.request("GET", path).status == 200, path


# --------------------------------------------------------------------------------------------
# /metrics


def known_traffic(s):
    """3x200 on one keep-alive connection, a 404 from the upstream via route main, a framing
    reject (400), a request no route matches (404), a 502 from the dead upstream.
    Five client connections in all."""
    with Client(s.port) as c:
        for i in range(3):
            r = c.request("GET", "/id?n=%d" % i)
            assert r.status == 200 and r.body == b"app", r
    assert get(s.port, "/status/404").status == 404
    reply = raw_request(s.port, b"POST /echo HTTP/1.1\r\nHost: test.local\r\n"
                                b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                                b"0\r\n\r\n")
    assert reply.status == 400, reply
    assert get(s.port, "/id", host="nobody.example").status == 404
    assert get(s.port, "/dead/x").status == 502


def test_metrics_exact_counters_after_known_traffic(admin_setup):
    s = admin_setup()
    known_traffic(s)
    m = settled_metrics(s.admin)

    def requests(route, klass):
        return m.value("gatehouse_requests_total", route=route, code_class=klass)

    expected = {("main", "2xx"): 3, ("main", "4xx"): 1, ("deadr", "5xx"): 1, ("", "4xx"): 2}
    for route in ("main", "deadr", ""):
        for klass in ("1xx", "2xx", "3xx", "4xx", "5xx"):
            assert requests(route, klass) == expected.get((route, klass), 0), (route, klass)
    assert m.value("gatehouse_requests_rejected_total", code="400") == 1
    assert [l for l, _ in m.series("gatehouse_requests_rejected_total")] == [{"code": "400"}]
    assert m.value("gatehouse_connections_total") == 5
    assert m.value("gatehouse_connections_open") == 0

    # Latency histograms: one observation per response, by route; upstream first-byte
    # times only for attempts that got a response.
    for route, n in (("main", 4), ("deadr", 1), ("", 2)):
        assert m.value("gatehouse_request_duration_seconds_count", route=route) == n, route
        assert m.value("gatehouse_request_duration_seconds_bucket", route=route, le="+Inf") == n
    assert m.value("gatehouse_upstream_response_duration_seconds_count", upstream="app") == 4
    assert m.value("gatehouse_upstream_response_duration_seconds_count", upstream="dead") == 0
    assert m.types["gatehouse_request_duration_seconds"] == "histogram"
    assert m.types["gatehouse_upstream_response_duration_seconds"] == "histogram"

    # Pool reuse: the keep-alive connection's 2nd and 3rd requests reused the pooled
    # upstream connection (same worker); 4 attempts to app in all, 1 (new) to dead.
    reused = m.value("gatehouse_upstream_connections_total", upstream="app", reused="true")
    fresh = m.value("gatehouse_upstream_connections_total", upstream="app", reused="false")
    assert reused >= 2 and reused + fresh == 4, (reused, fresh)
    assert m.value("gatehouse_upstream_connections_total", upstream="dead", reused="false") == 1
    assert m.value("gatehouse_upstream_connections_total", upstream="dead", reused="true") == 0

    # Server gauges: idle again, the live server healthy, the dead one passively ejected.
    assert m.value("gatehouse_upstream_server_inflight", upstream="app",
                   server=s.backend.address) == 0
    assert m.value("gatehouse_upstream_server_inflight", upstream="dead", server=s.dead) == 0
    assert m.value("gatehouse_upstream_server_healthy", upstream="app",
                   server=s.backend.address) == 1
    assert m.value("gatehouse_upstream_server_healthy", upstream="dead", server=s.dead) == 0
    assert m.value("gatehouse_tls_handshakes_total", resumed="false") == 0
    assert m.value("gatehouse_tls_handshakes_total", resumed="true") == 0
    assert m.value("gatehouse_tls_handshake_failures_total") == 0


def test_request_cut_by_upstream_idle_timeout_is_still_counted(admin_setup):
    """Every response sent is counted, also one whose body the upstream stopped sending
    (idle_timeout 300 ms): the client got a 200 head, so main/2xx goes up by one."""
    s = admin_setup(app_extra='idle_timeout = "300ms"')
    with socket.create_connection(("127.0.0.1", s.port), timeout=5) as sock:
        sock.sendall(b"GET /slow-body/1500 HTTP/1.1\r\nHost: test.local\r\n\r\n")
        data = b""
        while True:
            try:
                got = sock.recv(65536)
            except ConnectionResetError:
                break
            if not got:
                break
            data += got
    assert data.startswith(b"HTTP/1.1 200 ") and len(data.partition(b"\r\n\r\n")[2]) < 2000
    m = settled_metrics(s.admin)
    assert m.value("gatehouse_upstream_server_inflight", upstream="app",
                   server=s.backend.address) == 0
    assert m.value("gatehouse_request_duration_seconds_count", route="main") == 1, \
        "the cut request is missing from the request metrics"
    assert m.value("gatehouse_requests_total", route="main", code_class="2xx") == 1


def test_histogram_buckets_are_cumulative_and_match_count_and_sum(admin_setup):
    s = admin_setup()
    with Client(s.port) as c:
        for ms in (0, 30, 120):
            assert c.request("GET", "/sleep/%d" % ms).status == 200
    m = settled_metrics(s.admin)
    for family, label, value in (("gatehouse_request_duration_seconds", "route", "main"),
                                 ("gatehouse_upstream_response_duration_seconds", "upstream",
                                  "app")):
        buckets = sorted(((float(l["le"]), v) for l, v in m.series(family + "_bucket")
                          if l.get(label) == value), key=lambda x: x[0])
        assert buckets[-1][0] == float("inf")
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), "buckets not cumulative: %r" % buckets
        assert counts[-1] == m.value(family + "_count", **{label: value}) == 3
        bounds = dict(buckets)
        # 0 ms, 30 ms, 120 ms upstream sleeps: the first under 100 ms, the last above.
        assert 1 <= bounds[0.1] <= 2 and bounds[0.05] <= 2, buckets
        total = m.value(family + "_sum", **{label: value})
        assert 0.15 <= total < 2.0, total


def test_inflight_gauge_counts_a_request_in_flight(admin_setup):
    s = admin_setup()
    done = {}

    def slow():
        done["r"] = get(s.port, "/sleep/2500", timeout=10)
    t = threading.Thread(target=slow, daemon=True)
    t.start()

    def inflight():
        return parse_metrics(scrape(s.admin)).value(
            "gatehouse_upstream_server_inflight", upstream="app", server=s.backend.address)
    try:
        assert wait_until(lambda: inflight() == 1, 2), "inflight never showed the request"
        status = json.loads(get(s.admin, "/status").body)
        app = [u for u in status["upstreams"] if u["name"] == "app"][0]
        assert app["servers"][0]["inflight"] == 1, app
        m = parse_metrics(scrape(s.admin))
        assert m.value("gatehouse_connections_open") == 1
    finally:
        t.join(10)
    assert done["r"].status == 200
    assert wait_until(lambda: inflight() == 0, 2), "inflight not back to 0 when idle"


def test_metrics_pass_promtool_check(admin_setup, start_backend, start_gatehouse):
    s = admin_setup()
    known_traffic(s)
    # Label values that need escaping: a route name with a quote and a backslash.
    b = start_backend("odd")
    routes = [{"name": 'we"ird\\route', "path": "/", "upstream": "app"}]
    odd = start_gatehouse(admin_config({"app": [b]}, routes), name="odd")
    odd_admin = admin_port(odd)
    assert get(odd.port, "/id").status == 200
    for port in (s.admin, odd_admin):
        settled_metrics(port)
        text = scrape(port)
        parsed = parse_metrics(text)  # the local format check runs even without promtool
        assert parsed.values
        if port == odd_admin:
            assert parsed.value("gatehouse_requests_total", route='we\\"ird\\\\route',
                                code_class="2xx") == 1
        result = promtool_check(text)
        if result is None:
            print("promtool not installed: `promtool check metrics` skipped")
            pytest.skip("promtool is not installed (Debian: prometheus package)")
        code, output = result
        assert code == 0, "promtool check metrics failed:\n%s\n--- metrics ---\n%s" % (output,
                                                                                       text)


# --------------------------------------------------------------------------------------------
# /status and reload


def status(admin):
    r = get(admin, "/status")
    assert r.status == 200, r
    return json.loads(r.body)


def sha256_file(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_status_json_fields(admin_setup):
    s = admin_setup()
    doc = status(s.admin)
    assert re.fullmatch(r"\d+\.\d+\.\d+", doc["version"]), doc["version"]
    assert doc["config_file"].endswith("gatehouse.toml")
    assert doc["config_hash"] == sha256_file(s.gh.config_path)
    assert doc["generation"] == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["started_at"]), doc["started_at"]
    assert doc["ready"] is True
    names = {m["name"]: m for m in doc["modules"]}
    assert {"round_robin", "least_conn"} <= set(names), names
    for m in names.values():
        assert re.fullmatch(r"\d+\.\d+", m["abi"]) and m["version"], m
    ups = {u["name"]: u for u in doc["upstreams"]}
    assert set(ups) == {"app", "dead"}
    assert ups["app"]["balancer"] == "round_robin"
    [server] = ups["app"]["servers"]
    assert server["address"] == s.backend.address
    assert server["healthy"] is True and server["inflight"] == 0
    # The dead server: healthy until its first failure, then ejected.
    assert get(s.port, "/dead/x").status == 502
    ups = {u["name"]: u for u in status(s.admin)["upstreams"]}
    [dead] = ups["dead"]["servers"]
    assert dead["address"] == s.dead and dead["healthy"] is False, dead


def test_generation_increments_on_post_reload_and_sighup_and_hash_follows_file(admin_setup):
    s = admin_setup()
    first = status(s.admin)
    assert first["generation"] == 1
    r = request(s.admin, "POST", "/reload")
    assert r.status == 200 and r.body == b"generation 2 active\n", r
    doc = status(s.admin)
    assert doc["generation"] == 2
    assert doc["config_hash"] == first["config_hash"], "same file, different hash"

    s.gh.config_path.write_text(s.gh.config_path.read_text() + "\n# edited\n")
    r = request(s.admin, "POST", "/reload")
    assert r.status == 200 and r.body == b"generation 3 active\n", r
    doc = status(s.admin)
    assert doc["generation"] == 3
    assert doc["config_hash"] != first["config_hash"]
    assert doc["config_hash"] == sha256_file(s.gh.config_path)

    s.gh.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: status(s.admin)["generation"] == 4, 5), \
        "SIGHUP did not activate generation 4; log:\n" + s.gh.log_text()[-2000:]
    assert get(s.port, "/id").status == 200


def test_post_reload_with_broken_config_is_500_with_file_line_and_old_config_serves(
        admin_setup):
    s = admin_setup()
    before = status(s.admin)
    good = s.gh.config_path.read_text()
    lines = good.splitlines()
    at = lines.index("[[listener]]") + 2  # 1-based line number of the inserted key
    lines.insert(at - 1, "bogus_key = 1")
    s.gh.config_path.write_text("\n".join(lines) + "\n")
    r = request(s.admin, "POST", "/reload")
    assert r.status == 500, r
    body = r.body.decode()
    assert re.search(r"gatehouse\.toml:%d:" % at, body), body
    assert "bogus_key" in body, body
    doc = status(s.admin)
    assert doc["generation"] == before["generation"]
    assert doc["config_hash"] == before["config_hash"]
    r = get(s.port, "/id")
    assert r.status == 200 and r.body == b"app", r
    assert "reload failed" in s.gh.log_text()
    # Fixed again: the next reload succeeds with the next generation.
    s.gh.config_path.write_text(good)
    r = request(s.admin, "POST", "/reload")
    assert r.status == 200, r
    assert status(s.admin)["generation"] == before["generation"] + 1


# --------------------------------------------------------------------------------------------
# Draining


def test_readyz_503_while_draining_then_exit_0(admin_setup):
    s = admin_setup(extra="[timeouts]\ndrain = \"10s\"\n")
    result = {}

    def slow():
        try:
            result["r"] = get(s.port, "/sleep/1500", timeout=10)
        except Exception as e:  # noqa: BLE001
            result["e"] = e
    t = threading.Thread(target=slow, daemon=True)
    t.start()
    assert wait_until(lambda: s.backend.stats()["active"] == 1, 2), "request not in flight"
    s.gh.stopping = True  # exiting is expected from now on
    s.gh.proc.send_signal(signal.SIGTERM)

    def readyz_503():
        try:
            return get(s.admin, "/readyz", timeout=1).status == 503
        except OSError:
            return False
    assert wait_until(readyz_503, 1.0), "/readyz not 503 while draining"
    r = get(s.admin, "/readyz")
    assert r.status == 503 and r.body == b"draining\n", r
    assert get(s.admin, "/healthz").status == 200, "healthz must stay 200 while draining"
    assert status(s.admin)["ready"] is False
    assert "r" not in result, "the slow request finished before the drain was observed"
    assert s.gh.alive()
    t.join(10)
    assert "e" not in result, result.get("e")
    assert result["r"].status == 200 and result["r"].body == b"app", result["r"]
    try:
        code = s.gh.proc.wait(5)
    except Exception:  # noqa: BLE001 - TimeoutExpired
        code = None
    assert code == 0, "exit code %s; log:\n%s" % (code, s.gh.log_text()[-2000:])
    # The admin listener went away with the process.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", s.admin), timeout=1).close()
