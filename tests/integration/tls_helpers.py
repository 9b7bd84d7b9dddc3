"""TLS, WebSocket and process helpers for the TLS / upstream-TLS / WebSocket / reload / shutdown
integration tests.

Certificates are made in the test's tmp dir with the `openssl` command line (no network, no
system configuration: every `openssl` call gets its own minimal config file):

    ca = CertAuthority(tmp_path)                       # root CA: ca.cert (PEM path)
    leaf = ca.issue("site", ["site.test", "*.wild.test"], ips=["127.0.0.1"])
    leaf.cert, leaf.key, leaf.der, leaf.serial         # paths, DER bytes, serial (int)
    ca.issue("old", ["x.test"], expired=True)          # notAfter in the past
    ca.issue("client", [], common_name="client-1", client=True)   # clientAuth, for mTLS
    inter = ca.intermediate("inter"); inter.issue(...) # leaf whose PEM holds leaf + intermediate
    self_signed(tmp_path, "rogue", ["backend.test"])   # not issued by any test CA

Clients: `client_context(...)` builds an explicit ssl.SSLContext; `tls_connect` returns a connected
SSLSocket; `TLSClient` is harness.Client over TLS (same reader, so the bytes are visible).

Processes: `ProcessBackend` runs any backend script that prints its port as the first stdout
line (backend.py with --tls-cert/--client-ca, or ws_backend.py); register it in the `processes`
fixture so it is killed by PID at teardown. The fixtures at the bottom (`start_tls_backend`,
`start_ws_backend`, `pki`) are imported by the test modules that use them.
"""

import asyncio
import hashlib
import itertools
import json
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import harness
from harness import HERE, START_TIMEOUT, Client

WS_BACKEND_PY = HERE / "ws_backend.py"
OPENSSL = "openssl"
_serials = itertools.count(int(time.time() * 1000) % 10**9 * 1000)

_OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
"""


def openssl(*args, cwd=None, timeout=30, input=None):
    """Runs the openssl CLI; raises with its stderr on failure."""
    done = subprocess.run([OPENSSL, *map(str, args)], capture_output=True, timeout=timeout,
                          cwd=cwd, input=input)
    if done.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(map(str, args)),
                                                      done.stderr.decode(errors="replace")))
    return done.stdout


def _newkey_args(key_type):
    if key_type == "ec":
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    if key_type == "rsa":
        return ["-newkey", "rsa:2048"]
    raise ValueError(key_type)


class Cert:
    """A certificate file (PEM, possibly a chain) and its key file."""

    def __init__(self, cert, key, names=()):
        self.cert = Path(cert)
        self.key = Path(key)
        self.names = list(names)

    @property
    def der(self):
        """DER of the first (leaf) certificate in the PEM file."""
        text = self.cert.read_text()
        end = text.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
        return ssl.PEM_cert_to_DER_cert(text[:end] + "\n")

    @property
    def serial(self):
        out = openssl("x509", "-in", self.cert, "-noout", "-serial").decode()
        return int(out.strip().split("=", 1)[1], 16)

    @property
    def fingerprint(self):
        return hashlib.sha256(self.der).hexdigest()

    def toml(self):
        return {"cert": str(self.cert), "key": str(self.key)}


class CertAuthority:
    """A CA made with `openssl req -x509`; issues leaf certificates with `openssl x509 -req`."""

    def __init__(self, directory, name="ca", key_type="ec", _parent=None):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.cnf = self.dir / "openssl-min.cnf"
        self.cnf.write_text(_OPENSSL_CNF)
        self.cert = self.dir / ("%s.pem" % name)
        self.key = self.dir / ("%s.key" % name)
        self.parent = _parent
        subject = "/CN=gatehouse test %s" % name
        if _parent is None:
            openssl("req", "-x509", *_newkey_args(key_type), "-nodes", "-keyout", self.key,
                    "-out", self.cert, "-days", "3650", "-subj", subject, "-config", self.cnf,
                    "-extensions", "v3_ca")
        else:
            csr = self.dir / ("%s.csr" % name)
            openssl("req", "-new", *_newkey_args(key_type), "-nodes", "-keyout", self.key,
                    "-out", csr, "-subj", subject, "-config", self.cnf)
            ext = self.dir / ("%s.ext" % name)
            ext.write_text("[ext]\nbasicConstraints = critical,CA:TRUE,pathlen:0\n"
                           "keyUsage = critical,keyCertSign,cRLSign\n"
                           "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n")
            openssl("x509", "-req", "-in", csr, "-CA", _parent.cert, "-CAkey", _parent.key,
                    "-set_serial", next(_serials), "-days", "3650", "-extfile", ext,
                    "-extensions", "ext", "-out", self.cert)

    def intermediate(self, name="intermediate"):
        return CertAuthority(self.dir, name, _parent=self)

    def chain_pem(self):
        """PEM of this CA's certificate and its parents except the root (what a server sends)."""
        parts = []
        ca = self
        while ca.parent is not None:
            parts.append(ca.cert.read_text())
            ca = ca.parent
        return "".join(parts)

    def issue(self, name, dns_names, ips=(), common_name=None, key_type="ec", days=30,
              expired=False, client=False, directory=None):
        """A leaf certificate for dns_names (and IP SANs); the PEM file holds the leaf followed by
        any intermediate CA certificates."""
        d = Path(directory) if directory else self.dir
        d.mkdir(parents=True, exist_ok=True)
        key = d / ("%s.key" % name)
        cert = d / ("%s.pem" % name)
        csr = d / ("%s.csr" % name)
        cn = common_name or (dns_names[0] if dns_names else name)
        openssl("req", "-new", *_newkey_args(key_type), "-nodes", "-keyout", key, "-out", csr,
                "-subj", "/CN=%s" % cn, "-config", self.cnf)
        sans = ["DNS:%s" % n for n in dns_names] + ["IP:%s" % i for i in ips]
        usage = "digitalSignature" + (",keyEncipherment" if key_type == "rsa" else "")
        ext_lines = ["[ext]", "basicConstraints = critical,CA:FALSE",
                     "keyUsage = critical,%s" % usage,
                     "extendedKeyUsage = %s" % ("clientAuth" if client else "serverAuth"),
                     "subjectKeyIdentifier = hash", "authorityKeyIdentifier = keyid"]
        if sans:
            ext_lines.append("subjectAltName = " + ",".join(sans))
        ext = d / ("%s.ext" % name)
        ext.write_text("\n".join(ext_lines) + "\n")
        openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
                "-set_serial", next(_serials), "-days", -1 if expired else days,
                "-extfile", ext, "-extensions", "ext", "-out", cert)
        chain = self.chain_pem()
        if chain:
            cert.write_text(cert.read_text() + chain)
        return Cert(cert, key, dns_names)


def self_signed(directory, name, dns_names, ips=(), key_type="ec"):
    """A self-signed server certificate trusted by nobody."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cnf = d / "openssl-min.cnf"
    cnf.write_text(_OPENSSL_CNF)
    key = d / ("%s.key" % name)
    cert = d / ("%s.pem" % name)
    sans = ",".join(["DNS:%s" % n for n in dns_names] + ["IP:%s" % i for i in ips])
    openssl("req", "-x509", *_newkey_args(key_type), "-nodes", "-keyout", key, "-out", cert,
            "-days", "30", "-subj", "/CN=%s" % (dns_names[0] if dns_names else name),
            "-config", cnf, "-addext", "subjectAltName=" + sans)
    return Cert(cert, key, dns_names)


def replace_file(path, data):
    """Atomically replaces path with data (write a temp file, then rename over it)."""
    path = Path(path)
    tmp = path.with_name(".%s.tmp-%d" % (path.name, time.monotonic_ns()))
    tmp.write_bytes(data if isinstance(data, bytes) else data.encode())
    os.replace(tmp, path)


def install_cert(src, dst, order=("key", "cert")):
    """Copies a Cert's files over dst's, one atomic rename per file, in `order`."""
    for what in order:
        replace_file(getattr(dst, what), getattr(src, what).read_bytes())


# --------------------------------------------------------------------------------------------
# Config text


def tls_table(certs, **extra):
    """An inline `tls = { ... }` value for a [[listener]]."""
    table = {"certificates": [c.toml() for c in certs]}
    table.update(extra)
    return harness.toml_value(table)


def tls_proxy_config(servers, certs, tls_extra=None, workers=2, upstream="", extra="",
                     plain_port=None, listen="127.0.0.1:0", server_extra=""):
    """Like harness.proxy_config, but the one listener serves TLS with `certs` (first =
    default); optionally a second, plain listener on plain_port."""
    entries = []
    for s in servers:
        if hasattr(s, "address"):
            s = s.address
        entries.append(s if isinstance(s, dict) else {"address": s})
    text = ("[server]\nworkers = %d\nlog_level = \"info\"\n%s\n" % (workers, server_extra)
            + harness.modules_toml() + "\n"
            + "[[listener]]\nname = \"tls\"\nlisten = %s\ntls = %s\n\n"
            % (harness.toml_value(listen), tls_table(certs, **(tls_extra or {}))))
    if plain_port:
        text += "[[listener]]\nname = \"plain\"\nlisten = \"127.0.0.1:%d\"\n\n" % plain_port
    text += ("[upstream.app]\nservers = [\n"
             + "".join("  %s,\n" % harness.toml_value(e) for e in entries) + "]\n"
             + upstream + "\n\n"
             + "[[route]]\npath = \"/\"\nupstream = \"app\"\n\n" + extra + "\n")
    return text


# --------------------------------------------------------------------------------------------
# TLS clients


def client_context(ca=None, verify=True, min_version=None, max_version=None, ciphers=None,
                   alpn=None, tickets=True, cert=None, check_hostname=None):
    """An explicit client SSLContext. ca: a CertAuthority/Cert/path whose PEM is trusted."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = True if check_hostname is None else check_hostname
        if ca is not None:
            ctx.load_verify_locations(cafile=str(getattr(ca, "cert", ca)))
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    if alpn is not None:
        ctx.set_alpn_protocols(list(alpn))
    if not tickets:
        ctx.options |= ssl.OP_NO_TICKET
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
    return ctx


def tls_connect(port, ctx, server_name=None, session=None, timeout=5.0, host="127.0.0.1"):
    """A connected, handshaken SSLSocket (server_name is sent as SNI when not None)."""
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=server_name, session=session)
    except BaseException:
        raw.close()
        raise


class TLSClient(Client):
    """harness.Client over TLS: same raw reader, so framing stays visible."""

    def __init__(self, port, ctx, server_name=None, session=None, timeout=5.0,
                 host="127.0.0.1"):
        self.sock = tls_connect(port, ctx, server_name, session, timeout, host)
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False

    def _fill(self, size=65536):
        if self.eof:
            return False
        try:
            data = self.sock.recv(size)
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    @property
    def session(self):
        return self.sock.session

    @property
    def session_reused(self):
        return self.sock.session_reused


def https_request(port, ctx, method, target, server_name=None, headers=(), body=b"",
                  host="test.local", timeout=5.0, session=None):
    with TLSClient(port, ctx, server_name, session, timeout) as c:
        return c.request(method, target, headers, body, host)


def s_client(port, *args, servername=None, timeout=10, stdin=b"Q\n"):
    """`openssl s_client -connect 127.0.0.1:PORT ARGS`; returns CompletedProcess (bytes).
    The handshake succeeded when the output has a 'Cipher is X' line with X not '(NONE)'."""
    cmd = [OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port, "-brief"]
    if servername:
        cmd += ["-servername", servername]
    else:
        cmd += ["-noservername"]
    cmd += list(args)
    return subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)


def s_client_handshake_ok(port, *args, servername=None):
    """(ok, output text) for an `openssl s_client` handshake with args."""
    done = s_client(port, *args, servername=servername)
    text = (done.stdout + done.stderr).decode(errors="replace")
    ok = "CONNECTION ESTABLISHED" in text or ("Ciphersuite:" in text and "(NONE)" not in text)
    return ok, text


# --------------------------------------------------------------------------------------------
# Backend processes


class ProcessBackend:
    """A backend script run as `python3 SCRIPT ARGS`, which prints its port first on stdout."""

    def __init__(self, log_dir, script, args, backend_id="backend", scheme="http",
                 tls_ca=None, client_cert=None):
        cmd = [sys.executable, str(script), "--id", backend_id, *map(str, args)]
        self.id = backend_id
        self.scheme = scheme
        self.tls_ca = tls_ca
        self.client_cert = client_cert
        self.log_path = Path(log_dir) / ("%s-%s-%d.stderr" % (Path(script).stem, backend_id,
                                                             time.monotonic_ns()))
        with open(self.log_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err,
                                         stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        ready, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT)
        line = self.proc.stdout.readline() if ready else b""
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError("backend %s did not report its port: %r %s"
                               % (script, line, self.log_path.read_text(errors="replace")))
        self.port = int(line)
        self.address = "127.0.0.1:%d" % self.port

    def stats(self):
        """backend.py's /stats, straight from the backend (over TLS when it serves TLS)."""
        if self.scheme == "https":
            ctx = client_context(verify=False, cert=self.client_cert)
            return https_request(self.port, ctx, "GET", "/stats").json()
        with Client(self.port) as c:
            return c.request("GET", "/stats").json()

    def stop(self):
        harness._kill(self.proc)
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture
def start_tls_backend(processes, tmp_path):
    """start_tls_backend(backend_id, cert, client_ca=None, **kw) -> ProcessBackend serving
    backend.py over HTTPS with cert (a Cert); client_ca requires client certificates."""
    def start(backend_id="tls-backend", cert=None, client_ca=None, client_cert=None):
        args = ["--tls-cert", cert.cert, "--tls-key", cert.key]
        if client_ca is not None:
            args += ["--client-ca", getattr(client_ca, "cert", client_ca)]
        b = ProcessBackend(tmp_path, harness.BACKEND_PY, args, backend_id, scheme="https",
                           client_cert=client_cert)
        processes.backends.append(b)
        return b
    return start


@pytest.fixture
def start_ws_backend(processes, tmp_path):
    """start_ws_backend(backend_id) -> ProcessBackend running ws_backend.py."""
    def start(backend_id="ws", *args):
        b = ProcessBackend(tmp_path, WS_BACKEND_PY, args, backend_id)
        processes.backends.append(b)
        return b
    return start


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """Module-wide certificates: a root CA, an intermediate, and server/client leaves."""
    d = tmp_path_factory.mktemp("pki")
    ca = CertAuthority(d / "ca")
    inter = ca.intermediate("inter")
    p = type("PKI", (), {})()
    p.dir = d
    p.ca = ca
    p.default = ca.issue("default", ["default.test"], ips=["127.0.0.1"])
    p.exact = ca.issue("exact", ["exact.test", "alt-exact.test"])
    p.wild = ca.issue("wild", ["*.wild.test"])
    p.chained = inter.issue("chained", ["chained.test"])
    p.rsa = ca.issue("rsa", ["rsa.test"], key_type="rsa")
    p.backend = ca.issue("backend", ["backend.test"], ips=["127.0.0.1"])
    p.client = ca.issue("client", [], common_name="gatehouse-client", client=True)
    p.other_ca = CertAuthority(d / "other-ca", "other")
    p.other_client = p.other_ca.issue("other-client", [], common_name="rogue-client",
                                      client=True)
    p.rogue = self_signed(d / "rogue", "rogue", ["backend.test"], ips=["127.0.0.1"])
    p.expired = ca.issue("expired", ["backend.test"], ips=["127.0.0.1"], expired=True)
    return p


# --------------------------------------------------------------------------------------------
# Load loops and signals


class LoadLoop:
    """Background threads making requests until stopped; counts successes and failures.

    request_fn(i) performs one request and returns a value (recorded) or raises / returns a
    falsy value on failure."""

    def __init__(self, request_fn, threads=1, name="load"):
        self.request_fn = request_fn
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failures = []
        self.results = []
        self.threads = [threading.Thread(target=self._run, args=(k,), daemon=True,
                                         name="%s-%d" % (name, k)) for k in range(threads)]

    def _run(self, k):
        i = 0
        while not self.stop_event.is_set():
            i += 1
            t = time.monotonic()
            try:
                value = self.request_fn(k, i)
                err = None if value else "falsy result %r" % (value,)
            except Exception as e:  # noqa: BLE001 - every failure is counted
                value, err = None, "%s: %s" % (type(e).__name__, e)
            with self.lock:
                if err:
                    self.failures.append((t, k, i, err))
                else:
                    self.ok += 1
                    self.results.append((t, value))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(15)
        assert not any(t.is_alive() for t in self.threads), "load thread stuck"


def send_signal(gh, sig=signal.SIGHUP):
    os.kill(gh.pid, sig)


def generation_count(gh):
    """Number of 'reload: generation N active' lines so far, and the last N (or None)."""
    import re
    found = re.findall(r"reload: generation (\d+) active", gh.log_text())
    return len(found), (int(found[-1]) if found else None)


def wait_generation(gh, before_count, timeout=10.0):
    """Waits for a new 'reload: generation N active' (after before_count lines); returns N."""
    import re

    def seen():
        found = re.findall(r"reload: generation (\d+) active", gh.log_text())
        if len(found) > before_count:
            return found[before_count:]
        return "dead" if not gh.alive() else None
    got = harness.wait_until(seen, timeout)
    return int(got[-1]) if got and got != "dead" else None


def wait_log_count(gh, pattern, before_count, timeout=10.0):
    """Waits until pattern occurs more than before_count times; returns the new matches."""
    import re

    def seen():
        found = re.findall(pattern, gh.log_text())
        if len(found) > before_count:
            return found[before_count:]
        return "dead" if not gh.alive() else None
    got = harness.wait_until(seen, timeout)
    return None if got == "dead" else got


def count_log(gh, pattern):
    import re
    return len(re.findall(pattern, gh.log_text()))


_TIMESTAMPED = __import__("re").compile(r"^\d{4}-\d\d-\d\dT")


def last_log_entry(gh, pattern):
    """The last log entry whose first line matches pattern, with its continuation lines (lines
    that do not start with a timestamp, e.g. the reasons listed under 'reload failed')."""
    import re
    lines = gh.log_text().splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if re.search(pattern, lines[i]):
            entry = [lines[i]]
            for more in lines[i + 1:]:
                if _TIMESTAMPED.match(more):
                    break
                entry.append(more)
            return "\n".join(entry)
    return None


# --------------------------------------------------------------------------------------------
# WebSocket client helpers (python3-websockets, asyncio API)


def run_async(coro, timeout=30.0):
    """Runs a coroutine to completion with an overall deadline."""
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


def json_dumps(v):
    return json.dumps(v, sort_keys=True)
