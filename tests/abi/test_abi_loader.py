"""The real gatehouse binary against the ABI test modules.

* `gatehouse check` refuses bad_major / newer_minor / a missing file / a .so without the entry
  symbol with exit 1 and ONE error line naming the module, its path, the versions and a fix.
* The abi_conformance module (filter + balancer) runs through a real listener, with a Python
  backend (http.server in a thread, 127.0.0.1 port 0) as both the route upstream and the callout
  upstream; every response must carry `x-abi-conformance: ok`.

Environment: GATEHOUSE_BIN, GATEHOUSE_MODULE_DIR, GATEHOUSE_ABI_MODULE_DIR (defaults: the
/work/main/build tree). Every process started here is killed by PID; every wait is bounded.
"""

import http.client
import http.server
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from tls_helpers import CertAuthority  # noqa: E402  (real OpenSSL certificates)

GATEHOUSE_BIN = os.environ.get("GATEHOUSE_BIN", "/work/main/build/kernel/gatehouse")
MODULE_DIR = os.environ.get("GATEHOUSE_MODULE_DIR", "/work/main/build/modules")
ABI_MODULE_DIR = os.environ.get("GATEHOUSE_ABI_MODULE_DIR", "/work/main/build/abi-modules")
CHECK_TIMEOUT = 20
START_TIMEOUT = 15
REQUEST_TIMEOUT = 10

# Lines the kernel's logger writes at info/debug level ("... info [kernel] ..."): not errors.
_QUIET_LOG_LINE = re.compile(r"^\S+Z (info|debug) \[")

pytestmark = pytest.mark.skipif(not os.access(GATEHOUSE_BIN, os.X_OK),
                                reason=f"no gatehouse binary at {GATEHOUSE_BIN}")


def conformance_table(backend_name="backend", extra=""):
    """[filter.abi_conformance]: every key the module expects (see conformance/README.md)."""
    return f"""
[filter.abi_conformance]
callout_upstream = "{backend_name}"
timer_ms = 5
ratio = 0.25
enabled = true
timeout = "1500ms"
timeout_expect_ms = 1500
max_body = "64k"
max_body_expect = 65536
labels = ["alpha", "beta"]
extra = {{ one = 1, two = 2 }}
{extra}
"""


def run_check(tmp_path, text):
    cfg = tmp_path / "gatehouse.toml"
    cfg.write_text(text)
    proc = subprocess.run([GATEHOUSE_BIN, "check", "-c", str(cfg)], capture_output=True,
                          text=True, timeout=CHECK_TIMEOUT)
    return proc, cfg


def error_lines(stderr):
    return [line for line in stderr.splitlines()
            if line.strip() and not _QUIET_LOG_LINE.match(line)]


def modules_only_config(module_dir, names):
    quoted = ", ".join(f'"{n}"' for n in names)
    return f"""
[modules]
dir = "{module_dir}"
load = [{quoted}]

[[listener]]
listen = "127.0.0.1:0"
"""


def refusal_line(tmp_path, name, module_dir=ABI_MODULE_DIR):
    """Runs `check` loading `name` alone; returns the single error line after the assertions."""
    proc, _ = run_check(tmp_path, modules_only_config(module_dir, [name]))
    assert proc.returncode == 1, proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, f"expected one error line, got:\n{proc.stderr}"
    line = lines[0]
    assert name in line
    assert str(Path(module_dir) / f"{name}.so") in line
    assert "load called" not in proc.stderr, "a refused module's hooks must not run"
    return line


def versions_in(line):
    return {(int(a), int(b)) for a, b in re.findall(r"\b(\d+)\.(\d+)\b", line)}


# ---- refusals ----------------------------------------------------------------------------------


def test_bad_major_is_refused_with_one_line_naming_both_versions(tmp_path):
    line = refusal_line(tmp_path, "bad_major")
    found = versions_in(line)
    assert any(major == 2 for major, _ in found), line  # the module's
    assert any(major == 1 for major, _ in found), line  # the kernel's
    assert re.search(r"rebuild|upgrade", line, re.I), line


def test_newer_minor_is_refused_with_one_line_naming_both_versions(tmp_path):
    line = refusal_line(tmp_path, "newer_minor")
    minors = sorted(minor for major, minor in versions_in(line) if major == 1)
    assert any(m + 1 in minors for m in minors), f"module 1.(k+1) and kernel 1.k in: {line}"
    assert re.search(r"upgrade|rebuild", line, re.I), line


def test_missing_module_file_is_refused_with_one_line(tmp_path):
    line = refusal_line(tmp_path, "abi_does_not_exist")
    assert re.search(r"not found|no such file", line, re.I), line
    assert re.search(r"install|modules\.dir", line, re.I), line


def test_shared_object_without_entry_symbol_is_refused_with_one_line(tmp_path):
    line = refusal_line(tmp_path, "no_entry")
    assert "gatehouse_module_v1" in line
    assert re.search(r"rebuild|GH_MODULE|SDK", line, re.I), line


# ---- configuration through the module ----------------------------------------------------------


def full_config(backend_port, module_dir=MODULE_DIR, extra="", workers=2, access_log=None):
    log = f'[access_log]\npath = "{access_log}"\n' if access_log else ""
    return f"""
[server]
workers = {workers}

{log}
[modules]
dir = "{module_dir}"
load = ["abi_conformance"]

[[listener]]
listen = "127.0.0.1:0"

[admin]
listen = "127.0.0.1:0"

[upstream.backend]
servers = [{{ address = "127.0.0.1:{backend_port}" }}]
balancer = "abi_conformance"

[upstream.dead]
servers = [{{ address = "127.0.0.1:1" }}]
balancer = "abi_conformance"

[[route]]
name = "tagged"
path = "/tagged/"
upstream = "backend"
filters = ["abi_conformance"]
filter_config = {{ abi_conformance = {{ tag = "r2" }} }}

[[route]]
path = "/abi/dead/"
upstream = "dead"
filters = ["abi_conformance"]

[[route]]
path = "/"
upstream = "backend"
filters = ["abi_conformance"]
""" + conformance_table(extra=extra)


def test_check_accepts_the_conformance_config(tmp_path):
    proc, _ = run_check(tmp_path, full_config(9))
    assert proc.returncode == 0, proc.stderr


def test_module_config_error_points_at_file_line_and_key(tmp_path):
    proc, cfg = run_check(tmp_path, full_config(9, extra="fail_on_purpose = true"))
    assert proc.returncode == 1, proc.stderr
    line_no = cfg.read_text().splitlines().index("fail_on_purpose = true") + 1
    matching = [l for l in proc.stderr.splitlines() if "fail_on_purpose" in l]
    assert matching, proc.stderr
    assert f"{cfg}:{line_no}:" in matching[0], matching[0]
    assert "filter.abi_conformance" in matching[0], matching[0]


def test_key_the_module_never_read_is_an_unknown_key_error(tmp_path):
    proc, _ = run_check(tmp_path, full_config(9, extra="bogus_key = 1"))
    assert proc.returncode == 1, proc.stderr
    assert any("bogus_key" in l for l in error_lines(proc.stderr)), proc.stderr


@pytest.mark.parametrize("balancer", ["round_robin", "least_conn"])
def test_balancer_modules_accept_an_empty_table_and_refuse_any_key(tmp_path, balancer):
    base = modules_only_config(MODULE_DIR, [balancer]) + f"\n[balancer.{balancer}]\n"
    proc, _ = run_check(tmp_path, base)
    assert proc.returncode == 0, proc.stderr
    proc, _ = run_check(tmp_path, base + "weight = 3\n")
    assert proc.returncode == 1, proc.stderr
    assert any(f"balancer.{balancer}" in l and "weight" in l
               for l in error_lines(proc.stderr)), proc.stderr


# ---- a real listener ---------------------------------------------------------------------------


class _BackendHandler(http.server.BaseHTTPRequestHandler):
    """Answers /callout with "callout-ok"; anything else with JSON of what it received."""

    protocol_version = "HTTP/1.1"
    server_version = "abi-backend"

    def log_message(self, *args):
        pass

    def _read_body(self):
        # gatehouse re-chunks a request body that a filter rewrote (its length changes).
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(self):
        body = self._read_body()
        if self.path.startswith("/callout"):
            self.server.callouts += 1
            self._send(b"callout-ok", "text/plain")
            return
        if self.path == "/watch":  # the module's own socket (1.3 fd_watch), HTTP/1.0
            self.server.watches += 1
            self._send(b"watch-ok", "text/plain")
            return
        seen = {"method": self.command, "path": self.path,
                "headers": [[k.lower(), v] for k, v in self.headers.items()],
                "body": body.decode("latin-1")}
        self._send(json.dumps(seen).encode(), "application/json",
                   [("x-backend", "1"), ("x-backend-remove", "gone")])

    def _send(self, payload, ctype, extra=()):
        self.send_response(200)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(payload)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer


class _Server(http.server.ThreadingHTTPServer):
    # listen(5), the default, overflows when test_concurrent_requests_are_all_ok opens 16
    # proxied and 16 watch connections at once: a connection the kernel then resets made the
    # conformance module's fd_watch_send fail now and then.
    request_queue_size = 128


class Backend:
    def __init__(self, cert=None):
        self.server = _Server(("127.0.0.1", 0), _BackendHandler)
        if cert is not None:  # HTTPS: the certificate's chain and key
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(cert.cert), str(cert.key))
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.server.daemon_threads = True
        self.server.callouts = 0
        self.server.watches = 0
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class Gatehouse:
    """A running gatehouse; stderr is collected by a reader thread."""

    def __init__(self, config_path):
        self.proc = subprocess.Popen([GATEHOUSE_BIN, "-c", str(config_path)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.admin_port = None
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.port = self._wait_ready()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        port = None
        while time.monotonic() < deadline:
            for line in list(self.lines):
                m = re.search(r"(admin )?listening on 127\.0\.0\.1:(\d+)", line)
                if m and m.group(1):
                    self.admin_port = int(m.group(2))
                elif m:
                    port = int(m.group(2))
                if port and re.search(r"\bready\b", line):
                    return port
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        pytest.fail("gatehouse did not become ready:\n" + "\n".join(self.lines))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.reader.join(5)
        return self.proc.returncode

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp, resp.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    backend = Backend()
    gatehouse = None
    try:
        cfg = tmp_path_factory.mktemp("abi") / "gatehouse.toml"
        access_log = cfg.parent / "access.log"
        cfg.write_text(full_config(backend.port, access_log=access_log,
                                   extra=f"watch_port = {backend.port}"))
        gatehouse = Gatehouse(cfg)
        gatehouse.backend = backend
        gatehouse.access_log = access_log
        yield gatehouse
    finally:
        if gatehouse is not None:
            gatehouse.stop()
        backend.stop()


def header_values(resp, name):
    return resp.msg.get_all(name) or []


def seen_headers(seen, name):
    return [v for k, v in seen["headers"] if k == name]


def assert_conformant(resp):
    assert resp.getheader("x-abi-conformance") == "ok", (
        f"x-abi-conformance: {resp.getheader('x-abi-conformance')}")


def test_get_through_the_conformance_module_is_ok(proxy):
    callouts_before = proxy.backend.server.callouts
    resp, body = proxy.request("GET", "/hello?x=1",
                               headers={"x-abi-remove": "1", "x-abi-add": "client"})
    assert resp.status == 200, body
    assert_conformant(resp)
    assert resp.getheader("x-abi-resp-set") == "1"
    assert header_values(resp, "x-abi-resp-add") == ["a", "b"]
    assert resp.getheader("x-backend-remove") is None
    seen = json.loads(body)
    assert seen["path"] == "/hello?x=1"
    assert seen_headers(seen, "x-abi-set") == ["1"]
    assert seen_headers(seen, "x-abi-add")[-2:] == ["a", "b"]
    assert seen_headers(seen, "x-abi-remove") == []
    assert seen_headers(seen, "x-abi-upstream-request") == ["1"]
    assert proxy.backend.server.callouts > callouts_before  # the PAUSE chain's callout


def test_module_socket_driven_by_fd_watch_on_the_worker(proxy):
    # The PAUSE chain's last leg: the module's own non-blocking socket to the backend, driven by
    # 1.3 fd_watch (connect, send, read 16 bytes per report); its checks are in the verdict.
    before = proxy.backend.server.watches
    resp, body = proxy.request("GET", "/watched")
    assert resp.status == 200, body
    assert_conformant(resp)
    assert proxy.backend.server.watches == before + 1


def tls_callout_config(backend_port, idp_port, ca_file):
    """The conformance config with its callouts sent to `idp`, an HTTPS upstream."""
    text = full_config(backend_port).replace('callout_upstream = "backend"',
                                             'callout_upstream = "idp"')
    return text + f"""
[upstream.idp]
servers = [{{ address = "127.0.0.1:{idp_port}" }}]
balancer = "abi_conformance"
tls = true
tls_ca = "{ca_file}"
tls_server_name = "idp.test"
"""


@pytest.mark.parametrize("trusted", [True, False], ids=["trusted", "untrusted"])
def test_callout_to_a_tls_upstream_verifies_its_certificate(tmp_path, trusted):
    """Callouts go to HTTPS upstreams as proxied requests do (`tls = true`: verification against
    `tls_ca`, SNI and the name from `tls_server_name`): an IdP or a tag server is HTTPS."""
    ca = CertAuthority(tmp_path / "pki")
    other = CertAuthority(tmp_path / "other", name="other")
    idp = Backend(cert=ca.issue("idp", ["idp.test"]))
    backend = Backend()
    gatehouse = None
    try:
        cfg = tmp_path / "gatehouse.toml"
        cfg.write_text(tls_callout_config(backend.port, idp.port,
                                          (ca if trusted else other).cert))
        gatehouse = Gatehouse(cfg)
        resp, _ = gatehouse.request("GET", "/tls-callout")
        if trusted:
            assert_conformant(resp)
            assert idp.server.callouts == 1
        else:
            assert "callout_response" in resp.getheader("x-abi-conformance", "")
            assert idp.server.callouts == 0
    finally:
        if gatehouse is not None:
            gatehouse.stop()
        idp.stop()
        backend.stop()


def test_module_fields_reach_the_access_log_line(proxy):
    # 1.3 log_field: set in LOG, the line is written after it, named MODULE.name.
    resp, _ = proxy.request("GET", "/logged-request")
    assert resp.status == 200
    deadline = time.monotonic() + 5
    line = ""
    while time.monotonic() < deadline:
        lines = [l for l in proxy.access_log.read_text().splitlines() if "/logged-request" in l]
        if lines:
            line = lines[-1]
            break
        time.sleep(0.05)
    assert " abi_conformance.checks=ok" in line, line
    assert "pending" not in line and "late=" not in line, line


def test_post_with_a_body_is_ok_and_the_body_arrives_intact(proxy):
    payload = bytes(i % 251 for i in range(100_000)).replace(b"\x00", b"z")
    resp, body = proxy.request("POST", "/echo", body=payload,
                               headers={"content-type": "application/octet-stream"})
    assert resp.status == 200, body[:200]
    assert_conformant(resp)
    assert json.loads(body)["body"].encode("latin-1") == payload


@pytest.mark.parametrize("body", [b"", b"held-" * 2000])
def test_access_holds_the_request_body_and_runs_again_once_it_is_complete(proxy, body):
    # GH_HOLD from ACCESS: the hook runs again once the body is complete -- with every byte
    # seen first, and at once for a request without a body (which used to be a 500).
    headers = {"x-abi-hold": "1"}
    if body:
        headers["content-type"] = "application/octet-stream"
    resp, got = proxy.request("POST" if body else "GET", "/echo", body=body or None,
                              headers=headers)
    assert resp.status == 200, got[:200]
    assert_conformant(resp)
    assert resp.getheader("x-abi-held-bytes") == str(len(body))
    seen = json.loads(got)
    if body:
        assert seen["body"].encode("latin-1") == body
    else:  # a GET without a body goes up without a Content-Length (a held body or not)
        assert seen_headers(seen, "content-length") == [] and seen["body"] == ""


def test_request_body_replaced_with_body_write_reaches_the_upstream(proxy):
    # GH_BODY_CONSUMED + body_write: only the bytes the filter wrote go on (types.h).
    payload = b"lower case body " * 1000
    resp, body = proxy.request("POST", "/echo", body=payload,
                               headers={"x-abi-transform": "upper"})
    assert resp.status == 200, body[:200]
    assert_conformant(resp)
    assert json.loads(body)["body"].encode("latin-1") == payload.upper()


def test_route_config_overrides_the_module_table(proxy):
    resp, _ = proxy.request("GET", "/tagged/x")
    assert resp.status == 200
    assert_conformant(resp)
    assert resp.getheader("x-abi-route-tag") == "r2"


def test_local_reply_with_respond(proxy):
    resp, body = proxy.request("GET", "/abi/respond")
    assert resp.status == 299
    assert body == b"conformance"
    assert resp.getheader("x-abi-local") == "1"


def test_streamed_local_reply_with_respond_stream(proxy):
    # SDK 1.2: respond_stream + reply_write from timers after the hook returned.
    resp, body = proxy.request("GET", "/abi/stream")
    assert resp.status == 200
    assert resp.getheader("transfer-encoding") == "chunked"
    assert body == b"part1part2"


def test_drop_closes_the_connection_without_a_response(proxy):
    # SDK 1.4: GH_DROP from a header phase: no status line, no byte at all.
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=REQUEST_TIMEOUT) as s:
        s.sendall(b"GET /abi/drop HTTP/1.1\r\nHost: abi\r\n\r\n")
        got = b""
        while True:
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                break
            if not data:
                break
            got += data
    assert got == b""


def test_raw_target_is_what_the_client_sent(proxy):
    # SDK 1.4: GH_FACT_RAW_TARGET beside the normalised GH_FACT_TARGET.
    resp, body = proxy.request("GET", "/abi/x/.././raw?a=%41")
    assert resp.status == 299
    assert body == b"/abi/x/.././raw?a=%41\n/abi/raw?a=%41"


def test_streamed_reply_short_of_its_length_is_cut(proxy):
    import http.client
    with pytest.raises(http.client.IncompleteRead):
        proxy.request("GET", "/abi/stream-short")


def test_drain_timeout_still_ends_every_stream(tmp_path):
    # A streamed reply the module never finishes: at the drain timeout the kernel closes the
    # connection on its worker, so STREAM_END runs (the module's destroy reports leaks).
    backend = Backend()
    gatehouse = None
    try:
        cfg = tmp_path / "gatehouse.toml"
        cfg.write_text(full_config(backend.port).replace(
            "[admin]", "[timeouts]\ndrain = \"1s\"\n\n[admin]", 1))
        gatehouse = Gatehouse(cfg)
        sock = socket.create_connection(("127.0.0.1", gatehouse.port), timeout=5)
        sock.sendall(b"GET /abi/stream-hang HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert gatehouse.stop() == 0
        assert time.monotonic() - started < 8
        log = "\n".join(gatehouse.lines)
        assert "drain timeout" in log
        assert "leaked" not in log, log
        sock.close()
    finally:
        if gatehouse is not None:
            gatehouse.stop()
        backend.stop()


def test_admin_endpoint_of_a_module(proxy):
    # SDK 1.2: admin_handle serves /modules/NAME/... on the admin listener.
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", proxy.admin_port, timeout=REQUEST_TIMEOUT)
    try:
        conn.request("POST", "/modules/abi_conformance/echo?a=1", body=b"hello")
        resp = conn.getresponse()
        assert resp.status == 201
        assert resp.getheader("content-type") == "text/x-conformance"
        assert resp.read() == b"POST /echo?a=1 hello"
        conn.request("GET", "/modules/not_loaded/x")
        resp = conn.getresponse()
        assert resp.status == 404
        resp.read()
    finally:
        conn.close()


def test_upstream_error_phase_may_answer_instead_of_the_kernel(proxy):
    # SDK 1.2: GH_PHASE_UPSTREAM_ERROR with GH_FACT_UPSTREAM_ERROR and the kernel's status.
    resp, body = proxy.request("GET", "/abi/dead/answer")
    assert resp.status == 299, body
    assert body == b"upstream-error:connect:ok", body
    resp, body = proxy.request("GET", "/abi/dead/kernel")
    assert resp.status == 502


def test_concurrent_requests_are_all_ok(proxy):
    results = []

    def one(i):
        try:
            resp, _ = proxy.request("GET", f"/c/{i}")
            results.append((resp.status, resp.getheader("x-abi-conformance")))
        except OSError as e:  # reported below as a failure, not a hang
            results.append((0, str(e)))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(REQUEST_TIMEOUT + 5)
    assert sorted(results) == [(200, "ok")] * 16


def test_shutdown_shows_no_late_failures_or_leaked_contexts(proxy):
    # Runs last in this file: stops the module-scoped proxy and reads everything it logged.
    proxy.request("GET", "/last")
    proxy.stop()
    log = "\n".join(proxy.lines)
    assert "late check failed" not in log, log
    assert "verdict fail" not in log, log
    assert "leaked" not in log, log
    assert "failed checks" not in log, log
