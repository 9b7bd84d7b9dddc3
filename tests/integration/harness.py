"""Process and client helpers for gatehouse's integration tests.

Everything here is bounded in time: sockets carry timeouts, waits have deadlines, and every
process started is recorded so the fixtures in conftest.py can kill it by PID on teardown.

The HTTP client below is a small raw-socket reader on purpose: the tests must see exactly what
gatehouse put on the wire (framing, duplicate headers, trailers, interim responses, whether the
connection stayed open), which a full client library would normalise away.
"""

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GATEHOUSE_BIN = os.environ.get("GATEHOUSE_BIN", "/work/main/build/kernel/gatehouse")
MODULE_DIR = os.environ.get("GATEHOUSE_MODULE_DIR", "/work/main/build/modules")
BACKEND_PY = HERE / "backend.py"
START_TIMEOUT = 10.0

_LISTENING = re.compile(r"listening on (\S+)")


def wait_until(predicate, timeout, interval=0.02):
    """Polls predicate until it returns a truthy value or timeout expires; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def free_port():
    """A loopback port with nothing listening on it (connects to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill(proc, grace=3.0):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# --------------------------------------------------------------------------------------------
# Processes


class ProcessRegistry:
    """Every process a test starts; killed by PID at teardown."""

    def __init__(self):
        self.backends = []
        self.gatehouses = []

    def cleanup(self):
        crashed = [g for g in self.gatehouses if g.exited_unexpectedly()]
        for p in self.gatehouses + self.backends:
            p.stop()
        return crashed


class Backend:
    def __init__(self, log_dir, backend_id="backend", keepalive_timeout=None, delay_ms=0,
                 drop_nth_request=0, port=0):
        cmd = [sys.executable, str(BACKEND_PY), "--id", backend_id, "--port", str(port)]
        if keepalive_timeout is not None:
            cmd += ["--keepalive-timeout", str(keepalive_timeout)]
        if delay_ms:
            cmd += ["--delay-ms", str(delay_ms)]
        if drop_nth_request:
            cmd += ["--drop-nth-request", str(drop_nth_request)]
        self.id = backend_id
        self.log_path = Path(log_dir) / ("backend-%s-%d.stderr" % (backend_id, time.monotonic_ns()))
        with open(self.log_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err,
                                         stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        self.port = self._read_port()
        self.address = "127.0.0.1:%d" % self.port

    def _read_port(self):
        ready, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT)
        line = self.proc.stdout.readline() if ready else b""
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError("backend did not report its port: %r %s"
                               % (line, self.log_path.read_text(errors="replace")))
        return int(line)

    def stats(self):
        """Counters straight from the backend (not through gatehouse)."""
        with Client(self.port) as c:
            return c.request("GET", "/stats").json()

    def targets(self):
        return [t for _, t in self.stats()["targets"]]

    def stop(self):
        _kill(self.proc)
        if self.proc.stdout:
            self.proc.stdout.close()


class Gatehouse:
    """A running gatehouse started with `-c CONFIG`, stderr captured to a file."""

    def __init__(self, workdir, toml_text, name="gatehouse", args=(), wait_ready=True):
        if not os.access(GATEHOUSE_BIN, os.X_OK):
            import pytest
            pytest.skip("gatehouse binary not built at %s" % GATEHOUSE_BIN)
        workdir = Path(workdir)
        self.config_path = workdir / (name + ".toml")
        self.config_path.write_text(toml_text)
        self.log_path = workdir / (name + ".stderr")
        self.stopping = False
        with open(self.log_path, "wb") as err:
            self.proc = subprocess.Popen([GATEHOUSE_BIN, "-c", str(self.config_path), *args],
                                         stdout=err, stderr=err, stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        self.addresses = []
        if wait_ready:
            self._wait_ready()
        self.port = self.ports[0] if self.addresses else None

    @property
    def ports(self):
        return [int(a.rsplit(":", 1)[1]) for a in self.addresses]

    def _wait_ready(self):
        def ready():
            text = self.log_text()
            return self.proc.poll() is not None or re.search(r"\bready\b", text)
        wait_until(ready, START_TIMEOUT)
        text = self.log_text()
        if self.proc.poll() is not None or not re.search(r"\bready\b", text):
            self.stop()
            raise RuntimeError("gatehouse did not become ready (exit %s); log:\n%s"
                               % (self.proc.returncode, text))
        self.addresses = _LISTENING.findall(text)
        if not self.addresses:
            self.stop()
            raise RuntimeError("gatehouse logged no 'listening on ADDR:PORT'; log:\n" + text)

    def log_text(self):
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern, timeout=5.0):
        """Waits for a regex to appear in the log; returns the match or None."""
        return wait_until(lambda: re.search(pattern, self.log_text()), timeout)

    def proc_status(self, field):
        """A /proc/PID/status field in KiB (VmRSS, VmHWM)."""
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise KeyError(field)

    def alive(self):
        return self.proc.poll() is None

    def exited_unexpectedly(self):
        return not self.stopping and self.proc.poll() is not None

    def stop(self, grace=5.0):
        """SIGTERM, then SIGKILL after `grace`; returns the exit code."""
        self.stopping = True
        _kill(self.proc, grace)
        return self.proc.returncode


def run_cli(args, timeout=10):
    """Runs the gatehouse binary with args; returns CompletedProcess (text)."""
    if not os.access(GATEHOUSE_BIN, os.X_OK):
        import pytest
        pytest.skip("gatehouse binary not built at %s" % GATEHOUSE_BIN)
    return subprocess.run([GATEHOUSE_BIN, *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, errors="replace")


def run_check(tmp_path, toml_text, name="gatehouse.toml"):
    """`gatehouse check -c FILE` on toml_text; returns (returncode, stderr)."""
    path = Path(tmp_path) / name
    path.write_text(toml_text)
    done = run_cli(["check", "-c", str(path)])
    return done.returncode, done.stderr


# --------------------------------------------------------------------------------------------
# Config text


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join("%s = %s" % (k, toml_value(x)) for k, x in v.items()) + " }"
    raise TypeError(v)


def modules_toml(load=("round_robin", "least_conn")):
    return "[modules]\ndir = %s\nload = %s\n" % (toml_value(MODULE_DIR), toml_value(list(load)))


def proxy_config(servers, balancer="round_robin", upstream="", extra="", workers=2,
                 log_level="info", route=""):
    """One listener on 127.0.0.1:0, one upstream `app` of `servers`, one route `/` to it.

    servers: addresses ("127.0.0.1:PORT"), Backend objects, or dicts of server keys.
    upstream: extra lines for [upstream.app]; route: extra lines for the route;
    extra: whole extra tables ([limits], [timeouts], more routes...).
    """
    entries = []
    for s in servers:
        if isinstance(s, Backend):
            s = s.address
        entries.append(s if isinstance(s, dict) else {"address": s})
    return (
        "[server]\nworkers = %d\nlog_level = %s\n\n" % (workers, toml_value(log_level))
        + modules_toml() + "\n"
        + "[[listener]]\nlisten = \"127.0.0.1:0\"\n\n"
        + "[upstream.app]\nbalancer = %s\nservers = [\n" % toml_value(balancer)
        + "".join("  %s,\n" % toml_value(e) for e in entries) + "]\n"
        + upstream + "\n\n"
        + "[[route]]\npath = \"/\"\nupstream = \"app\"\n" + route + "\n\n"
        + extra + "\n"
    )


# --------------------------------------------------------------------------------------------
# Clients


class Response:
    def __init__(self, version, status, reason, headers):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # ordered list of (name, value)
        self.trailers = []
        self.body = b""
        self.body_length = 0
        self.complete = False  # the body ended where its framing said it would

    def header(self, name):
        values = self.headers_named(name)
        return values[0] if values else None

    def headers_named(self, name):
        name = name.lower()
        return [v for n, v in self.headers if n.lower() == name]

    def header_names(self):
        return [n.lower() for n, _ in self.headers]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %s %s %r>" % (self.status, self.headers, self.body[:200])


class Client:
    """One client connection with its own read buffer (usable across pipelined responses)."""

    def __init__(self, port, timeout=5.0, host="127.0.0.1", rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    @staticmethod
    def build(method, target, headers=(), body=b"", host="test.local", version="HTTP/1.1"):
        lines = ["%s %s %s" % (method, target, version)]
        if host is not None:
            lines.append("Host: " + host)
        names = [n.lower() for n, _ in headers]
        lines.extend("%s: %s" % h for h in headers)
        if body and "content-length" not in names and "transfer-encoding" not in names:
            lines.append("Content-Length: %d" % len(body))
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def request(self, method, target, headers=(), body=b"", host="test.local", sink=None):
        self.send(self.build(method, target, headers, body, host))
        return self.read_response(method, sink=sink)

    # --- reading

    def _fill(self, size=65536):
        if self.eof:
            return False
        try:
            data = self.sock.recv(size)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def readline(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > 1 << 20 or not self._fill():
                raise EOFError("connection closed mid-line: %r" % bytes(self.buf[:200]))

    def _read_into(self, n, resp, sink):
        """Reads exactly n body bytes (or until EOF when n is None)."""
        while n is None or n > 0:
            if not self.buf and not self._fill(1 << 20 if n is None else min(n, 1 << 20)):
                if n is None:
                    return True
                return False
            take = len(self.buf) if n is None else min(n, len(self.buf))
            piece = bytes(self.buf[:take])
            del self.buf[:take]
            resp.body_length += take
            if sink:
                sink(piece)
            else:
                resp.body += piece
            if n is not None:
                n -= take
        return True

    def _read_fields(self):
        fields = []
        while True:
            line = self.readline().decode("latin-1")
            if line in ("\r\n", "\n"):
                return fields
            name, _, value = line.rstrip("\r\n").partition(":")
            fields.append((name, value.strip(" \t")))

    def read_head(self):
        line = self.readline().decode("latin-1").rstrip("\r\n")
        parts = line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ValueError("bad status line %r" % line)
        return Response(parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "",
                        self._read_fields())

    def read_response(self, method="GET", sink=None, skip_interim=True):
        while True:
            resp = self.read_head()
            if not (skip_interim and 100 <= resp.status < 200 and resp.status != 101):
                break
        if method == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200:
            resp.complete = True
            return resp
        te = [t.strip().lower() for v in resp.headers_named("transfer-encoding")
              for t in v.split(",")]
        try:
            if te and te[-1] == "chunked":
                resp.complete = self._read_chunked(resp, sink)
            elif resp.header("content-length") is not None:
                resp.complete = self._read_into(int(resp.header("content-length")), resp, sink)
            else:
                resp.complete = self._read_into(None, resp, sink)
        except EOFError:
            resp.complete = False
        return resp

    def _read_chunked(self, resp, sink):
        while True:
            size = int(self.readline().split(b";", 1)[0].strip(), 16)
            if size == 0:
                resp.trailers = self._read_fields()
                return True
            if not self._read_into(size, resp, sink):
                return False
            if self.readline() != b"\r\n":
                return False

    def wait_closed(self, timeout):
        """True if the peer closes (EOF or reset) within timeout with no further data."""
        deadline = time.monotonic() + timeout
        try:
            while not self.eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.sock.settimeout(left)
                if self._fill() and self.buf:
                    return False
        except (socket.timeout, TimeoutError):
            return False
        finally:
            self.sock.settimeout(self.timeout)
        return not self.buf


def request(port, method, target, headers=(), body=b"", host="test.local", timeout=5.0):
    """One request on a fresh connection; returns the Response."""
    with Client(port, timeout) as c:
        return c.request(method, target, headers, body, host)


def get(port, target, **kw):
    return request(port, "GET", target, **kw)


class RawReply(bytes):
    """The bytes a raw_request got back, plus `.status` (first status code or None) and
    `.closed` (the server closed or reset the connection before the timeout)."""

    status = None
    closed = False

    def count_responses(self):
        return len(re.findall(rb"HTTP/1\.[01] \d{3}", self))


def raw_request(port, data, timeout=3.0, shut_write=False):
    """Sends exact bytes, reads until the server closes or `timeout` passes."""
    chunks = []
    closed = False
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        deadline = time.monotonic() + timeout
        try:
            s.sendall(data)
            if shut_write:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                got = s.recv(65536)
            except (socket.timeout, TimeoutError):
                break
            except ConnectionResetError:
                closed = True
                break
            if not got:
                closed = True
                break
            chunks.append(got)
    reply = RawReply(b"".join(chunks))
    m = re.match(rb"HTTP/1\.[01] (\d{3})", reply)
    reply.status = int(m.group(1)) if m else None
    reply.closed = closed
    return reply


class OneShotUpstream:
    """A listener that records the exact bytes of one request head and answers it with canned
    bytes -- or a list of pieces, sent `pause` seconds apart -- then closes the connection, or
    with `hold` keeps it open (silent) for that many seconds first. `address` is for
    proxy_config; close() stops it."""

    def __init__(self, response, hold=0.0, pause=0.0):
        self.pause = pause
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.address = "127.0.0.1:%d" % self.listener.getsockname()[1]
        self.head = b""
        self.thread = threading.Thread(target=self._serve, args=(response, hold), daemon=True)
        self.thread.start()

    def _serve(self, response, hold):
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return  # closed before anyone connected
        with conn:
            conn.settimeout(5)
            while b"\r\n\r\n" not in self.head:
                data = conn.recv(4096)
                if not data:
                    return
                self.head += data
            pieces = response if isinstance(response, list) else [response]
            for i, piece in enumerate(pieces):
                if i:
                    time.sleep(self.pause)
                conn.sendall(piece)
            if hold:
                time.sleep(hold)

    def close(self):
        self.listener.close()
        self.thread.join(10)


class Blackhole:
    """A loopback address whose TCP connects hang: a listener with backlog 0 whose accept queue
    is already full and is never accepted from, so further SYNs are dropped (Linux). Lets the
    tests reach an upstream connect timeout without any non-loopback address."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.address = "127.0.0.1:%d" % self.port
        self.fillers = []
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fillers.append(s)
        time.sleep(0.05)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for s in self.fillers + [self.listener]:
            s.close()
