"""Client-side and upstream timeouts: each expires with the documented status or close."""

import re
import select
import socket
import threading
import time

import pytest

from harness import Blackhole, Client, get, proxy_config

TIMEOUTS = """
[timeouts]
header = "1s"
body_idle = "500ms"
keepalive = "500ms"
client_write = "500ms"
"""
UPSTREAM = """connect_timeout = "300ms"
first_byte_timeout = "500ms"
idle_timeout = "500ms"
max_fails = 1000
"""


@pytest.fixture
def timed(start_backend, start_gatehouse):
    backend = start_backend("timed")
    gh = start_gatehouse(proxy_config([backend], upstream=UPSTREAM, extra=TIMEOUTS))
    return gh, backend


def read_until_close(sock, timeout):
    """Reads what the server sends until it closes; returns (data, closed)."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            got = sock.recv(65536)
        except (socket.timeout, TimeoutError):
            break
        except ConnectionResetError:
            return data, True
        if not got:
            return data, True
        data += got
    return data, False


def test_slowloris_trickling_header_is_cut_off_with_408(timed):
    gh, _ = timed
    with socket.create_connection(("127.0.0.1", gh.port), timeout=5) as s:
        start = time.monotonic()
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: test.local\r\nX-Slow: ")
        answered = False
        # One byte every 200 ms: each byte arrives well within any idle timer, so only a
        # whole-header deadline stops this client. Give up after 6 s.
        while time.monotonic() - start < 6:
            readable, _, _ = select.select([s], [], [], 0.2)
            if readable:
                answered = True
                break
            try:
                s.send(b"a")
            except (BrokenPipeError, ConnectionResetError):
                answered = True
                break
        elapsed = time.monotonic() - start
        data, closed = read_until_close(s, 2.0)
    assert answered, "still accepting a trickled header after 6 s"
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert closed
    assert 0.8 <= elapsed <= 3.0, elapsed


def test_body_idle_timeout_is_408_and_close(timed):
    gh, _ = timed
    with socket.create_connection(("127.0.0.1", gh.port), timeout=5) as s:
        s.sendall(Client.build("POST", "/echo", [("Content-Length", "100")]) + b"0123456789")
        start = time.monotonic()
        data, closed = read_until_close(s, 4.0)
        elapsed = time.monotonic() - start
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert closed
    assert 0.4 <= elapsed <= 3.0, elapsed


def test_body_idle_timer_restarts_on_each_byte(timed):
    gh, _ = timed
    with Client(gh.port) as c:
        c.send(Client.build("POST", "/echo", [("Content-Length", "8")]))
        for b in b"abcdefgh":  # 8 bytes, 200 ms apart: 1.6 s in total, never 500 ms idle
            time.sleep(0.2)
            c.send(bytes([b]))
        r = c.read_response()
    assert r.status == 200 and r.json()["body_length"] == 8


def test_keepalive_idle_connection_is_closed(timed):
    gh, _ = timed
    with Client(gh.port) as c:
        assert c.request("GET", "/id").status == 200
        time.sleep(0.2)
        assert c.request("GET", "/id").status == 200  # still open before the timeout
        start = time.monotonic()
        assert c.wait_closed(3.0), "idle keep-alive connection not closed"
        assert 0.3 <= time.monotonic() - start <= 2.5


def test_upstream_connect_timeout_is_504(start_gatehouse):
    with Blackhole() as hole:
        gh = start_gatehouse(proxy_config([hole.address], upstream=UPSTREAM))
        start = time.monotonic()
        r = get(gh.port, "/id")
        elapsed = time.monotonic() - start
    assert r.status == 504
    assert elapsed < 2.5, elapsed
    assert gh.wait_log("(?i)%s|time" % re.escape(hole.address)), \
        "no reason for the 504 in the log:\n" + gh.log_text()


def test_upstream_connect_timeout_tries_next_server(start_backend, start_gatehouse):
    backend = start_backend("live")
    with Blackhole() as hole:
        gh = start_gatehouse(proxy_config([hole.address, backend], upstream=UPSTREAM))
        for _ in range(4):
            r = get(gh.port, "/id")
            assert r.status == 200 and r.body == b"live"


def test_upstream_first_byte_timeout_is_504(timed):
    gh, _ = timed
    start = time.monotonic()
    r = get(gh.port, "/slow-header/3000")
    elapsed = time.monotonic() - start
    assert r.status == 504
    assert 0.4 <= elapsed <= 2.5, elapsed


def test_upstream_idle_timeout_aborts_response(timed):
    gh, _ = timed
    with Client(gh.port) as c:
        start = time.monotonic()
        r = c.request("GET", "/slow-body/3000")
        elapsed = time.monotonic() - start
        assert r.status == 200  # the header had already been forwarded
        assert not r.complete, "body completed although the upstream idled past idle_timeout"
        assert r.body_length < 2000
        assert c.eof or c.wait_closed(1.0)
    assert elapsed <= 2.5, elapsed


def test_client_write_timeout_closes_stalled_client(timed):
    gh, _ = timed
    total = 1 << 30
    with Client(gh.port, rcvbuf=16384) as c:
        c.send(Client.build("GET", "/bytes/%d" % total))
        time.sleep(2.0)  # read nothing: gatehouse's writes stop making progress
        received = 0
        closed = False
        deadline = time.monotonic() + 10
        c.sock.settimeout(2.0)
        while time.monotonic() < deadline:
            try:
                got = c.sock.recv(1 << 20)
            except (socket.timeout, TimeoutError):
                break
            except ConnectionResetError:
                closed = True
                break
            if not got:
                closed = True
                break
            received += len(got)
    assert closed, "connection not closed after client_write timeout"
    assert received < total // 4, received


def test_upstream_keepalive_timeout_expires_pooled_connections(start_backend, start_gatehouse):
    backend = start_backend("pool")
    gh = start_gatehouse(proxy_config([backend], upstream='keepalive_timeout = "300ms"'))
    with Client(gh.port) as c:
        assert c.request("GET", "/id").status == 200
        assert c.request("GET", "/id").status == 200
        assert backend.stats()["connections"] == 1
        time.sleep(1.0)
        assert c.request("GET", "/id").status == 200
    assert backend.stats()["connections"] == 2


def test_idle_keepalive_connection_parks_then_serves_and_still_times_out(start_backend,
                                                                        start_gatehouse):
    # After 1 s idle a keep-alive connection gives its buffers back (kernel: park); it must
    # still serve its next request, and the keep-alive timeout still counts from the last one.
    backend = start_backend("b")
    gh = start_gatehouse(proxy_config([backend], extra='[timeouts]\nkeepalive = "2500ms"\n'))
    with Client(gh.port) as c:
        assert c.request("GET", "/id").status == 200
        time.sleep(1.5)  # parked by now
        assert c.request("GET", "/id").status == 200
        start = time.monotonic()
        assert c.wait_closed(5.0), "idle keep-alive connection was not closed"
        elapsed = time.monotonic() - start
    assert 1.8 < elapsed < 3.5, elapsed


class SilentUpstream:
    """Accepts one connection, reads the request, sends `answer` (maybe nothing: a head and part
    of a body), then goes silent, and records when the proxy closes that connection."""

    def __init__(self, answer=b""):
        self.answer = answer
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.address = "127.0.0.1:%d" % self.listener.getsockname()[1]
        self.closed_at = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(30)
            try:
                conn.recv(65536)
                conn.sendall(self.answer)
                while conn.recv(65536):
                    pass
            except OSError:
                pass
            self.closed_at = time.monotonic()

    def close(self):
        self.listener.close()
        self.thread.join(35)


@pytest.mark.parametrize("answer", [b"", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf"],
                         ids=["before-the-head", "mid-body"])
def test_client_gone_while_the_upstream_is_silent_frees_the_upstream(start_gatehouse, tmp_path,
                                                                     answer):
    """nginx's default: a client that closes while its request waits on a silent upstream ends
    the request then (logged as client_abort), not at the upstream's timeouts (30 s here)."""
    up = SilentUpstream(answer)
    log = tmp_path / "access.log"
    gh = start_gatehouse(proxy_config(
        [up.address], upstream='first_byte_timeout = "30s"\nidle_timeout = "30s"\n',
        extra='[access_log]\npath = "%s"\n' % log))
    try:
        with socket.create_connection(("127.0.0.1", gh.port), timeout=5) as c:
            c.sendall(b"GET /slow HTTP/1.1\r\nHost: test.local\r\n\r\n")
            time.sleep(0.3)
        gone = time.monotonic()
        while up.closed_at is None and time.monotonic() < gone + 5:
            time.sleep(0.05)
        assert up.closed_at is not None, "the upstream connection outlived the client by 5 s"
        # A request is checked once it has waited 1 s, at the worker's 250 ms sweeps.
        assert up.closed_at - gone < 2.5
        line = ""
        while time.monotonic() < gone + 8 and "/slow" not in line:
            line = log.read_text() if log.exists() else ""
            time.sleep(0.05)
        assert "client_abort" in line, line
    finally:
        up.close()
