"""The access log ([access_log] path, format): json and combined lines parsed and checked field by
field for each way a request ends (completed, local reply, rejected, client abort, upstream
reset / error, timeouts), stdout as a destination, SIGUSR1 reopening a renamed file, and the
order of one keep-alive connection's lines."""

import datetime
import json
import os
import re
import signal
import socket
import time

import pytest

from admin_helpers import (SplitGatehouse, admin_config, read_json_lines, read_lines,
                           rst_close, wait_lines)
from harness import Client, free_port, get, raw_request, wait_until

JSON_KEYS = ["time", "client", "method", "target", "version", "host", "status", "bytes_sent",
             "bytes_received", "referer", "user_agent", "route", "upstream", "upstream_address",
             "t_header_ms", "t_connect_ms", "t_first_byte_ms", "t_total_ms", "termination", "tls",
             "attempts"]

UPSTREAM_APP = """max_fails = 1000
first_byte_timeout = "300ms"
idle_timeout = "300ms"
"""

COMBINED = re.compile(
    r'^(?P<ip>\S+) - - \[(?P<time>\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000)\] '
    r'"(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+) '
    r'"(?P<referer>[^"]*)" "(?P<user_agent>[^"]*)" '
    r'upstream=(?P<upstream>\S+) route=(?P<route>\S+) '
    r't_header=(?P<t_header>-|\d+\.\d{3}) t_connect=(?P<t_connect>-|\d+\.\d{3}) '
    r't_first_byte=(?P<t_first_byte>-|\d+\.\d{3}) t_total=(?P<t_total>-|\d+\.\d{3}) '
    r'term=(?P<term>\S+) attempts=(?P<attempts>\d+)(?P<fields>( \S+=\S+)*)$')


class Setup:
    def __init__(self, gh, backend, dead, log_path):
        self.gh, self.backend, self.dead, self.log_path = gh, backend, dead, log_path
        self.port = gh.port

    def records(self):
        return read_json_lines(self.log_path)

    def wait_record(self, predicate, timeout=3.0, what="access-log line"):
        """The single JSON record matching predicate, waited for (lines are written by a
        background thread within ~100 ms)."""
        recs = wait_lines(self.records, lambda rs: any(predicate(r) for r in rs), timeout)
        found = [r for r in recs if predicate(r)]
        assert found, "no %s in %s after %.1f s; all lines:\n%s\nlog:\n%s" % (
            what, self.log_path, timeout, "\n".join(map(str, recs)), self.gh.log_text()[-1500:])
        assert len(found) == 1, "several lines for one request: %r" % found
        return found[0]

    def assert_no_more(self, predicate, count, wait=0.4):
        time.sleep(wait)
        assert len([r for r in self.records() if predicate(r)]) == count


@pytest.fixture
def alog(start_backend, start_gatehouse, tmp_path):
    """gatehouse with a json (or combined) access log `access.log` next to its config: route
    `main` (Host test.local) to one backend with 300 ms first-byte/idle timeouts, route `deadr`
    (/dead/) to a refused port."""
    def start(fmt="json", path="access.log", timeouts="", workers=2):
        backend = start_backend("app")
        dead = "127.0.0.1:%d" % free_port()
        routes = [{"name": "main", "host": "test.local", "path": "/", "upstream": "app"},
                  {"name": "deadr", "host": "test.local", "path": "/dead/", "upstream": "dead"}]
        extra = "[timeouts]\n%s\n" % timeouts if timeouts else ""
        text = admin_config({"app": [backend], "dead": [dead]}, routes, admin=False,
                            access_log={"path": path, "format": fmt},
                            upstream_extra={"app": UPSTREAM_APP, "dead": "max_fails = 1000"},
                            extra=extra, workers=workers)
        gh = start_gatehouse(text)
        return Setup(gh, backend, dead, tmp_path / "access.log")
    return start


def read_until_close(sock, timeout=5.0):
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            got = sock.recv(65536)
        except (socket.timeout, TimeoutError):
            break
        except ConnectionResetError:
            break
        if not got:
            break
        data += got
    return data


def exchange(port, data, timeout=5.0):
    """Sends data on a new connection, reads until close; returns (client address, reply)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        me = "127.0.0.1:%d" % s.getsockname()[1]
        s.sendall(data)
        return me, read_until_close(s, timeout)


def check_timings(rec, upstream=True):
    for key in ("t_header_ms", "t_total_ms"):
        assert isinstance(rec[key], (int, float)) and rec[key] >= 0, (key, rec)
    if upstream:
        for key in ("t_connect_ms", "t_first_byte_ms"):
            assert isinstance(rec[key], (int, float)) and rec[key] >= 0, (key, rec)
        assert rec["t_first_byte_ms"] >= rec["t_connect_ms"], rec
        assert rec["t_total_ms"] >= rec["t_first_byte_ms"], rec
    assert rec["t_total_ms"] >= rec["t_header_ms"], rec


# --------------------------------------------------------------------------------------------
# json


def test_json_completed_request_has_every_field(alog):
    s = alog()
    req = (b"GET /sleep/150?x=1 HTTP/1.1\r\nHost: test.local\r\nUser-Agent: probe/1.0\r\n"
           b"Referer: http://ref.example/page\r\nConnection: close\r\n\r\n")
    before = datetime.datetime.now(datetime.timezone.utc)
    me, reply = exchange(s.port, req)
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"\r\n\r\napp"), reply
    rec = s.wait_record(lambda r: r["client"] == me)
    assert list(rec) == JSON_KEYS, list(rec)
    t = datetime.datetime.strptime(rec["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)
    assert abs((t - before).total_seconds()) < 5, (rec["time"], before)
    assert rec["method"] == "GET" and rec["target"] == "/sleep/150?x=1"
    assert rec["version"] == "HTTP/1.1" and rec["host"] == "test.local"
    assert rec["status"] == 200
    assert rec["bytes_sent"] == len(reply), (rec["bytes_sent"], len(reply))
    assert rec["bytes_received"] == len(req), (rec["bytes_received"], len(req))
    assert rec["referer"] == "http://ref.example/page" and rec["user_agent"] == "probe/1.0"
    assert rec["route"] == "main" and rec["upstream"] == "app"
    assert rec["upstream_address"] == s.backend.address
    check_timings(rec)
    # The upstream slept 150 ms before answering: that is first-byte time, not connect time.
    assert rec["t_first_byte_ms"] >= 150, rec
    assert rec["t_connect_ms"] < 150, rec
    assert rec["t_total_ms"] < 3000, rec
    assert rec["termination"] == "completed" and rec["tls"] is False
    assert rec["attempts"] == 1


def test_json_request_body_counts_in_bytes_received(alog):
    s = alog()
    body = b"z" * 5000
    req = (b"POST /echo HTTP/1.1\r\nHost: test.local\r\nContent-Length: 5000\r\n"
           b"Connection: close\r\n\r\n" + body)
    me, reply = exchange(s.port, req)
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
    rec = s.wait_record(lambda r: r["client"] == me)
    assert rec["method"] == "POST" and rec["status"] == 200
    assert rec["bytes_received"] == len(req), rec
    assert rec["bytes_sent"] == len(reply), rec
    assert rec["termination"] == "completed"


def test_json_no_route_404_is_a_local_reply_without_upstream(alog):
    s = alog()
    me, reply = exchange(s.port, b"GET /x HTTP/1.1\r\nHost: nobody.example\r\n"
                                 b"Connection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 404 "), reply
    rec = s.wait_record(lambda r: r["client"] == me)
    assert rec["status"] == 404 and rec["target"] == "/x" and rec["host"] == "nobody.example"
    assert rec["route"] == "" and rec["upstream"] == "" and rec["upstream_address"] == ""
    assert rec["t_connect_ms"] is None and rec["t_first_byte_ms"] is None, rec
    check_timings(rec, upstream=False)
    assert rec["bytes_sent"] == len(reply)
    assert rec["termination"] == "local_reply", rec


def test_json_framing_reject_is_400_rejected(alog):
    s = alog()
    me, reply = exchange(s.port, b"POST /echo HTTP/1.1\r\nHost: test.local\r\n"
                                 b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b"0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 "), reply
    rec = s.wait_record(lambda r: r["client"] == me)
    assert rec["status"] == 400 and rec["termination"] == "rejected", rec
    assert rec["route"] == "" and rec["upstream_address"] == ""
    assert rec["bytes_sent"] == len(reply)
    assert rec["t_total_ms"] is not None and rec["t_total_ms"] >= 0
    assert s.backend.stats()["requests"] == 0


def test_json_unparseable_request_line_is_rejected(alog):
    s = alog()
    me, reply = exchange(s.port, b"GARBAGE\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 "), reply
    rec = s.wait_record(lambda r: r["client"] == me)
    assert rec["status"] == 400 and rec["termination"] == "rejected", rec


def test_json_client_abort_mid_download(alog):
    s = alog()
    total = 50_000_000
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    me = "127.0.0.1:%d" % sock.getsockname()[1]
    received = 0
    try:
        sock.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: test.local\r\n\r\n" % total)
        while received < 300_000:
            got = sock.recv(65536)
            assert got, "closed before the abort"
            received += len(got)
    finally:
        rst_close(sock)
    rec = s.wait_record(lambda r: r["client"] == me)
    assert rec["status"] == 200, rec
    assert rec["termination"] == "client_abort", rec
    assert received <= rec["bytes_sent"] < total, (received, rec["bytes_sent"])
    assert rec["upstream_address"] == s.backend.address
    check_timings(rec)


def test_json_upstream_reset_before_response(alog):
    s = alog()
    me, reply = exchange(s.port, b"GET /raw/reset HTTP/1.1\r\nHost: test.local\r\n"
                                 b"Connection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 502 "), reply
    rec = s.wait_record(lambda r: r["client"] == me)
    assert rec["status"] == 502 and rec["termination"] == "upstream_reset", rec
    assert rec["upstream_address"] == s.backend.address and rec["route"] == "main"
    assert rec["t_first_byte_ms"] is None, rec


def test_json_upstream_connect_refused_is_upstream_error(alog):
    s = alog()
    me, reply = exchange(s.port, b"GET /dead/x HTTP/1.1\r\nHost: test.local\r\n"
                                 b"Connection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 502 "), reply
    rec = s.wait_record(lambda r: r["client"] == me)
    assert rec["status"] == 502 and rec["termination"] == "upstream_error", rec
    assert rec["route"] == "deadr" and rec["upstream"] == "dead"
    assert rec["upstream_address"] == s.dead
    assert rec["t_connect_ms"] is None and rec["t_first_byte_ms"] is None, rec
    assert rec["attempts"] == 1  # one server: one try


def test_retried_request_shows_its_attempts(start_backend, start_gatehouse, tmp_path):
    """A request that reached its answer on a second server says so in its line."""
    backend = start_backend("live")
    dead = "127.0.0.1:%d" % free_port()
    routes = [{"name": "main", "path": "/", "upstream": "app"}]
    text = admin_config({"app": [dead, backend]}, routes, admin=False,
                        access_log={"path": "access.log", "format": "json"},
                        upstream_extra={"app": "max_fails = 1000"}, workers=1)
    gh = start_gatehouse(text)
    for i in range(4):
        assert get(gh.port, "/id?n=%d" % i).status == 200
    recs = wait_lines(lambda: read_json_lines(tmp_path / "access.log"), lambda rs: len(rs) == 4)
    attempts = [r["attempts"] for r in recs]
    # Whichever server round robin offers first, the dead one is tried at least once in four.
    assert set(attempts) <= {1, 2} and 2 in attempts, attempts
    assert all(r["upstream_address"] == backend.address for r in recs)


def test_json_first_byte_timeout_504_is_timeout(alog):
    s = alog()
    me, reply = exchange(s.port, b"GET /slow-header/2000 HTTP/1.1\r\nHost: test.local\r\n"
                                 b"Connection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 504 "), reply
    rec = s.wait_record(lambda r: r["client"] == me)
    assert rec["status"] == 504 and rec["termination"] == "timeout", rec
    assert rec["t_first_byte_ms"] is None, rec
    assert 280 <= rec["t_total_ms"] < 2000, rec
    assert rec["upstream_address"] == s.backend.address


def test_json_header_timeout_408_is_timeout(alog):
    s = alog(timeouts='header = "300ms"')
    me, reply = exchange(s.port, b"GET /id HTTP/1.1\r\nHost: test.local\r\nX-Partial: ")
    assert reply.startswith(b"HTTP/1.1 408 "), reply
    rec = s.wait_record(lambda r: r["client"] == me)
    assert rec["status"] == 408 and rec["termination"] == "timeout", rec
    assert rec["upstream_address"] == ""


def test_json_upstream_idle_timeout_mid_body_is_logged_as_timeout(alog):
    """The upstream sends the header and half the body, then idles past idle_timeout (300 ms):
    the client connection is cut, and the request must still get its line."""
    s = alog()
    with socket.create_connection(("127.0.0.1", s.port), timeout=5) as sock:
        me = "127.0.0.1:%d" % sock.getsockname()[1]
        sock.sendall(b"GET /slow-body/1500 HTTP/1.1\r\nHost: test.local\r\n\r\n")
        reply = read_until_close(sock, 4)
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
    head, _, body = reply.partition(b"\r\n\r\n")
    assert len(body) < 2000, "the response completed although the upstream idled"
    rec = s.wait_record(lambda r: r["client"] == me, what="line for the idle-timed-out request")
    assert rec["status"] == 200 and rec["termination"] == "timeout", rec
    assert rec["bytes_sent"] == len(reply), rec


def test_json_client_write_timeout_is_logged_as_timeout(alog):
    """A client that stops reading a large response: client_write (300 ms) expires and the
    connection is closed; the request must still get its line."""
    s = alog(timeouts='client_write = "300ms"')
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    try:
        sock.connect(("127.0.0.1", s.port))
        me = "127.0.0.1:%d" % sock.getsockname()[1]
        sock.sendall(b"GET /bytes/50000000 HTTP/1.1\r\nHost: test.local\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 200 ")
        # Do not read on: the proxy's writes stall, then its client_write timer expires.
        time.sleep(1.5)
        # Now drain: what was buffered arrives, then the close (well before 50 MB).
        got, closed = 0, False
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and got < 40_000_000:
            try:
                data = sock.recv(1 << 20)
            except ConnectionResetError:
                closed = True
                break
            if not data:
                closed = True
                break
            got += len(data)
        assert closed, "the connection was not closed by client_write (read %d bytes)" % got
        rec = s.wait_record(lambda r: r["client"] == me, timeout=3,
                            what="line for the client-write-timed-out request")
    finally:
        sock.close()
    assert rec["status"] == 200 and rec["termination"] == "timeout", rec
    assert rec["bytes_sent"] < 50_000_000


def test_json_every_line_parses_and_keepalive_lines_keep_their_order(alog):
    s = alog()
    a = Client(s.port)
    b = Client(s.port)
    try:
        me = "127.0.0.1:%d" % a.sock.getsockname()[1]
        for i in range(12):
            assert a.request("GET", "/id?seq=%d" % i).status == 200
            assert b.request("GET", "/echo?other=%d" % i).status == 200
        # Then five pipelined requests on the same connection.
        a.send(b"".join(Client.build("GET", "/id?seq=%d" % i) for i in range(12, 17)))
        for _ in range(12, 17):
            assert a.read_response().status == 200
    finally:
        a.close()
        b.close()
    recs = wait_lines(s.records, lambda rs: len(rs) >= 29)
    assert len(recs) == 29, len(recs)
    for r in recs:
        assert list(r) == JSON_KEYS and r["termination"] == "completed", r
    mine = [r["target"] for r in recs if r["client"] == me]
    assert mine == ["/id?seq=%d" % i for i in range(17)], mine
    starts = [r["time"] for r in recs if r["client"] == me]
    assert starts == sorted(starts), starts


# --------------------------------------------------------------------------------------------
# combined


def test_combined_lines_parse_with_every_field(alog):
    s = alog(fmt="combined")
    ua = 'probe "quoted" \\ agent'
    me_ok, reply_ok = exchange(
        s.port, ("GET /sleep/50?q=1 HTTP/1.1\r\nHost: test.local\r\nUser-Agent: %s\r\n"
                 "Referer: http://ref.example/\r\nConnection: close\r\n\r\n" % ua).encode())
    assert reply_ok.startswith(b"HTTP/1.1 200 ")
    me_404, _ = exchange(s.port, b"GET /nothing HTTP/1.1\r\nHost: nobody.example\r\n"
                                 b"Connection: close\r\n\r\n")
    me_400, reply_400 = exchange(s.port, b"POST /echo HTTP/1.1\r\nHost: test.local\r\n"
                                         b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n"
                                         b"\r\n0\r\n\r\n")
    assert reply_400.startswith(b"HTTP/1.1 400 ")
    me_502, _ = exchange(s.port, b"GET /dead/y HTTP/1.1\r\nHost: test.local\r\n"
                                 b"Connection: close\r\n\r\n")
    me_504, _ = exchange(s.port, b"GET /slow-header/1500 HTTP/1.1\r\nHost: test.local\r\n"
                                 b"Connection: close\r\n\r\n")
    lines = wait_lines(lambda: read_lines(s.log_path), lambda ls: len(ls) >= 5)
    assert len(lines) == 5, lines
    parsed = []
    for line in lines:
        m = COMBINED.match(line)
        assert m, "combined line does not parse: %r" % line
        parsed.append(m.groupdict())
    for p in parsed:
        assert p["ip"] == "127.0.0.1"
        t = datetime.datetime.strptime(p["time"], "%d/%b/%Y:%H:%M:%S +0000")
        assert abs((t - datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)).total_seconds()) < 30, p["time"]
    by_request = {p["request"]: p for p in parsed}
    ok = by_request["GET /sleep/50?q=1 HTTP/1.1"]
    assert ok["status"] == "200" and int(ok["bytes"]) == len(reply_ok)
    assert ok["referer"] == "http://ref.example/"
    assert ok["user_agent"] == 'probe \\x22quoted\\x22 \\x5C agent', ok["user_agent"]
    assert ok["upstream"] == s.backend.address and ok["route"] == "main"
    assert ok["term"] == "completed"
    t = {k: float(ok[k]) for k in ("t_header", "t_connect", "t_first_byte", "t_total")}
    assert t["t_first_byte"] >= 0.05 and t["t_total"] >= t["t_first_byte"] >= t["t_connect"] >= 0
    nf = by_request["GET /nothing HTTP/1.1"]
    assert (nf["status"], nf["upstream"], nf["route"], nf["term"]) == ("404", "-", "-",
                                                                       "local_reply"), nf
    assert nf["t_connect"] == "-" and nf["t_first_byte"] == "-" and nf["t_total"] != "-"
    assert nf["referer"] == "-" and nf["user_agent"] == "-"
    rejected = [p for p in parsed if p["status"] == "400"]
    assert len(rejected) == 1 and rejected[0]["term"] == "rejected", rejected
    assert int(rejected[0]["bytes"]) == len(reply_400)
    dead = by_request["GET /dead/y HTTP/1.1"]
    assert (dead["status"], dead["upstream"], dead["route"], dead["term"], dead["attempts"]) == (
        "502", s.dead, "deadr", "upstream_error", "1"), dead
    slow = by_request["GET /slow-header/1500 HTTP/1.1"]
    assert (slow["status"], slow["term"], slow["t_first_byte"]) == ("504", "timeout", "-"), slow
    assert float(slow["t_total"]) >= 0.28


# --------------------------------------------------------------------------------------------
# destinations and rotation


@pytest.mark.parametrize("fmt", ["json", "combined"])
def test_stdout_destination(processes, start_backend, tmp_path, fmt):
    backend = start_backend("app")
    routes = [{"name": "main", "path": "/", "upstream": "app"}]
    text = admin_config({"app": [backend]}, routes, admin=False,
                        access_log={"path": "stdout", "format": fmt})
    gh = SplitGatehouse(tmp_path, text)
    processes.gatehouses.append(gh)  # killed by PID at teardown
    with Client(gh.port) as c:
        for i in range(3):
            assert c.request("GET", "/id?stdout=%d" % i).status == 200
    lines = wait_lines(lambda: gh.stdout_text().splitlines(), lambda ls: len(ls) >= 3)
    assert len(lines) == 3, (lines, gh.log_text())
    for i, line in enumerate(lines):
        assert "/id?stdout=%d" % i in line, lines
        if fmt == "json":
            assert json.loads(line)["status"] == 200
        else:
            assert COMBINED.match(line), line
    assert "/id?stdout=" not in gh.log_text(), "access-log lines went to stderr"
    assert not (tmp_path / "stdout").exists(), "'stdout' was opened as a file"


def test_sigusr1_reopens_a_renamed_file(alog, tmp_path):
    s = alog()
    assert get(s.port, "/id?phase=before").status == 200
    s.wait_record(lambda r: r["target"] == "/id?phase=before")
    rotated = tmp_path / "access.log.1"
    os.rename(s.log_path, rotated)
    # Still the old file (renamed) until SIGUSR1.
    assert get(s.port, "/id?phase=renamed").status == 200
    assert wait_until(lambda: any(r["target"] == "/id?phase=renamed"
                                  for r in read_json_lines(rotated)), 3), \
        "line after rename did not land in the renamed file"
    assert not s.log_path.exists()
    s.gh.proc.send_signal(signal.SIGUSR1)
    assert s.gh.wait_log(r"SIGUSR1: logs reopened", 3), s.gh.log_text()[-1500:]
    assert wait_until(lambda: s.log_path.exists(), 2), "no new file at the original path"
    with Client(s.port) as c:
        for i in range(3):
            assert c.request("GET", "/id?phase=after&n=%d" % i).status == 200
    new = wait_lines(s.records, lambda rs: len(rs) >= 3)
    assert [r["target"] for r in new] == ["/id?phase=after&n=%d" % i for i in range(3)], new
    old = [r["target"] for r in read_json_lines(rotated)]
    assert old == ["/id?phase=before", "/id?phase=renamed"], old
    assert s.gh.alive()
