"""TLS termination: protocol versions, SNI certificate selection, ALPN, session resumption (by ID
and by ticket, across worker threads, with rotating ticket keys), the scheme forwarded upstream,
certificate renewal under load (on SIGHUP and by file watching), certificate errors refused by
`check`, start and reload, and the strength of the default cipher list.

Certificates come from tls_helpers (made with the openssl CLI in the test's tmp dir)."""

import hashlib
import os
import re
import signal
import socket
import ssl
import subprocess
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest

import harness
from harness import Backend, Client, Gatehouse, run_check, wait_until
from tls_helpers import (LoadLoop, TLSClient, client_context, count_log,
                         generation_count, https_request, install_cert, pki, replace_file,
                         s_client_handshake_ok, tls_connect, tls_proxy_config, tls_table,
                         wait_generation,
                         wait_log_count, last_log_entry)

__all__ = ["pki"]  # fixture imported for pytest

V = ssl.TLSVersion


@pytest.fixture(scope="module")
def shared(module_processes, pki):
    """One backend and one 2-worker gatehouse whose TLS listener has five certificates:
    default.test (default), exact.test + alt-exact.test, *.wild.test, chained.test (issued by an
    intermediate, PEM = leaf + intermediate) and rsa.test (RSA key)."""
    tmp = module_processes.tmp_path
    backend = Backend(tmp, "tls-origin")
    module_processes.backends.append(backend)
    certs = [pki.default, pki.exact, pki.wild, pki.chained, pki.rsa]
    gh = Gatehouse(tmp, tls_proxy_config([backend], certs), name="tls-shared")
    module_processes.gatehouses.append(gh)
    return gh, backend


def peer_der(sock):
    return sock.getpeercert(binary_form=True)


def no_verify(**kw):
    return client_context(verify=False, **kw)


# --------------------------------------------------------------------------------------------
# Protocol versions


@pytest.mark.parametrize("version", [V.TLSv1_2, V.TLSv1_3], ids=["tls1.2", "tls1.3"])
def test_tls12_and_tls13_handshakes_succeed_and_proxy(shared, pki, version):
    gh, _ = shared
    ctx = client_context(pki.ca, min_version=version, max_version=version)
    with TLSClient(gh.port, ctx, "default.test") as c:
        assert c.sock.version() == {V.TLSv1_2: "TLSv1.2", V.TLSv1_3: "TLSv1.3"}[version]
        r = c.request("GET", "/echo", host="default.test")
    assert r.status == 200 and r.complete
    assert r.json()["target"] == "/echo"


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_tls10_and_tls11_are_refused(shared, version):
    gh, _ = shared
    v = getattr(V, version)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = no_verify(min_version=v, max_version=v, ciphers="ALL:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        with TLSClient(gh.port, ctx, "default.test") as c:
            c.request("GET", "/echo")
    flag = {"TLSv1": "-tls1", "TLSv1_1": "-tls1_1"}[version]
    ok, out = s_client_handshake_ok(gh.port, flag, "-cipher", "DEFAULT:@SECLEVEL=0",
                                    servername="default.test")
    assert not ok, "openssl s_client %s succeeded:\n%s" % (flag, out)
    # the listener is still fine afterwards
    assert https_request(gh.port, no_verify(), "GET", "/id", "default.test").status == 200


@pytest.mark.parametrize("request_line", [b"GET / HTTP/1.1", b"POST /form HTTP/1.1",
                                          b"DELETE /x HTTP/1.1", b"OPTIONS * HTTP/1.1",
                                          b"GET /old HTTP/1.0"])
def test_plain_http_on_a_tls_listener_gets_a_readable_400(shared, request_line):
    """As nginx: a client that speaks plain HTTP to the HTTPS port learns why, instead of
    reading an empty reply; the listener goes on serving TLS."""
    gh, _ = shared
    raw = harness.raw_request(gh.port, request_line + b"\r\nHost: default.test\r\n"
                              b"Content-Length: 5\r\n\r\nhello")
    assert raw.status == 400, raw
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"Connection: close" in head and b"https://" in body, raw
    assert int(re.search(rb"Content-Length: (\d+)", head).group(1)) == len(body)
    assert raw.closed
    assert https_request(gh.port, no_verify(), "GET", "/id", "default.test").status == 200


# --------------------------------------------------------------------------------------------
# SNI


@pytest.mark.parametrize("server_name,expected", [
    ("exact.test", "exact"),
    ("alt-exact.test", "exact"),          # second DNS name of the same certificate
    ("EXACT.test", "exact"),              # DNS names are case-insensitive
    ("a.wild.test", "wild"),
    ("other.wild.test", "wild"),
    ("default.test", "default"),
    ("chained.test", "chained"),
    ("rsa.test", "rsa"),
    ("unknown.test", "default"),          # no match: the first certificate
    ("wild.test", "default"),             # the bare suffix is not covered by *.wild.test
    (None, "default"),                    # no SNI at all
])
def test_sni_selects_the_certificate(shared, pki, server_name, expected):
    gh, _ = shared
    with TLSClient(gh.port, no_verify(), server_name) as c:
        der = peer_der(c.sock)
        r = c.request("GET", "/id")
    assert r.status == 200
    want = getattr(pki, expected)
    assert der == want.der, "SNI %r got a certificate other than %s" % (server_name, expected)


def test_sni_wildcard_matches_one_label_only(shared, pki):
    gh, _ = shared
    with TLSClient(gh.port, no_verify(), "a.b.wild.test") as c:
        der = peer_der(c.sock)
    assert der == pki.default.der, "*.wild.test must not cover a.b.wild.test (RFC 6125)"


@pytest.mark.parametrize("server_name", ["exact.test", "a.wild.test", "chained.test",
                                         "rsa.test", "default.test"])
def test_served_certificates_verify_against_the_root_ca(shared, pki, server_name):
    """Full verification with name checks against the root only: chained.test verifies only
    if gatehouse sends the intermediate from the PEM chain file."""
    gh, _ = shared
    r = https_request(gh.port, client_context(pki.ca), "GET", "/id", server_name)
    assert r.status == 200


# --------------------------------------------------------------------------------------------
# ALPN


@pytest.mark.parametrize("offer", [["h2", "http/1.1"], ["http/1.1"], ["http/1.1", "h2"]])
def test_alpn_negotiates_http11_never_h2(shared, offer):
    gh, _ = shared
    with TLSClient(gh.port, no_verify(alpn=offer), "default.test") as c:
        assert c.sock.selected_alpn_protocol() == "http/1.1"
        assert c.request("GET", "/id").status == 200


def test_alpn_offering_only_h2_never_gets_h2(shared):
    gh, _ = shared
    try:
        with TLSClient(gh.port, no_verify(alpn=["h2"]), "default.test") as c:
            selected = c.sock.selected_alpn_protocol()
    except ssl.SSLError:
        return  # no_application_protocol alert: acceptable
    assert selected != "h2"


def test_no_alpn_offered_still_works(shared):
    gh, _ = shared
    with TLSClient(gh.port, no_verify(), "default.test") as c:
        assert c.sock.selected_alpn_protocol() is None
        assert c.request("GET", "/id").status == 200


def test_check_refuses_h2_in_alpn(tmp_path, pki):
    text = tls_proxy_config(["127.0.0.1:9"], [pki.default], {"alpn": ["h2", "http/1.1"]},
                            listen="127.0.0.1:%d" % harness.free_port())
    code, err = run_check(tmp_path, text)
    assert code == 1, err
    assert "h2" in err and "alpn" in err, err


# --------------------------------------------------------------------------------------------
# Session resumption


def resumption_run(port, ctx, server_name="default.test", n=24):
    """One full handshake, then n resumption attempts with its session, each on a new
    connection; returns the list of session_reused flags (each request must succeed)."""
    with TLSClient(port, ctx, server_name) as c:
        assert c.request("GET", "/id").status == 200  # also receives TLS 1.3 tickets
        assert not c.session_reused
        session = c.session
    assert session is not None
    flags = []
    for _ in range(n):
        with TLSClient(port, ctx, server_name, session=session) as c:
            assert c.request("GET", "/id").status == 200
            flags.append(c.session_reused)
    return flags


@pytest.fixture
def tls_gatehouse(start_backend, start_gatehouse, pki):
    """start(tls_extra, workers=2, **kw) -> a gatehouse with default.test + exact.test certs."""
    backend = start_backend("tls-origin")

    def start(tls_extra=None, workers=2, certs=None, **kw):
        return start_gatehouse(tls_proxy_config([backend], certs or [pki.default, pki.exact],
                                                tls_extra, workers=workers, **kw))
    start.backend = backend
    return start


def test_resumption_by_session_id_across_workers(tls_gatehouse):
    gh = tls_gatehouse({"session_tickets": False, "session_cache": 1000})
    ctx = no_verify(max_version=V.TLSv1_2, tickets=False)
    flags = resumption_run(gh.port, ctx)
    assert all(flags), "resumed %d of %d connections (session ID, 2 workers)" % (sum(flags),
                                                                                  len(flags))


def test_resumption_by_ticket_tls12_without_session_cache(tls_gatehouse):
    gh = tls_gatehouse({"session_tickets": True, "session_cache": 0})
    ctx = no_verify(max_version=V.TLSv1_2)
    flags = resumption_run(gh.port, ctx)
    assert all(flags), "resumed %d of %d connections (TLS 1.2 ticket, 2 workers)" % (
        sum(flags), len(flags))


def test_resumption_by_ticket_tls13_across_workers(tls_gatehouse):
    gh = tls_gatehouse({"session_tickets": True, "session_cache": 0})
    ctx = no_verify(min_version=V.TLSv1_3)
    flags = resumption_run(gh.port, ctx)
    assert all(flags), "resumed %d of %d connections (TLS 1.3 ticket, 2 workers)" % (
        sum(flags), len(flags))


def test_resumption_with_default_settings(tls_gatehouse):
    gh = tls_gatehouse()
    for ctx in (no_verify(max_version=V.TLSv1_2, tickets=False),
                no_verify(max_version=V.TLSv1_2), no_verify(min_version=V.TLSv1_3)):
        flags = resumption_run(gh.port, ctx, n=12)
        assert all(flags), (ctx.maximum_version, flags)


def test_no_resumption_when_tickets_and_cache_are_off(tls_gatehouse):
    gh = tls_gatehouse({"session_tickets": False, "session_cache": 0})
    for ctx in (no_verify(max_version=V.TLSv1_2), no_verify(max_version=V.TLSv1_2,
                                                            tickets=False)):
        flags = resumption_run(gh.port, ctx, n=6)
        assert not any(flags), flags


def test_resumed_session_is_not_used_for_another_certificate_name(tls_gatehouse):
    """A session from default.test offered with SNI exact.test: whatever happens, the client
    must end up with exact.test's certificate on a full handshake, or the request works."""
    gh = tls_gatehouse()
    ctx = no_verify(max_version=V.TLSv1_2)
    with TLSClient(gh.port, ctx, "default.test") as c:
        assert c.request("GET", "/id").status == 200
        session = c.session
    with TLSClient(gh.port, ctx, "exact.test", session=session) as c:
        assert c.request("GET", "/id").status == 200


def test_ticket_keys_rotate_and_old_keys_still_decrypt_for_a_while(tls_gatehouse):
    """ticket_key_rotation = 1s, no session cache: a ticket still resumes ~1.3 s later (the key
    is current or one of the previous two), but not ~3.8 s later (three or more rotations)."""
    gh = tls_gatehouse({"session_tickets": True, "session_cache": 0,
                        "ticket_key_rotation": "1s"})
    ctx = no_verify(max_version=V.TLSv1_2)
    with TLSClient(gh.port, ctx, "default.test") as c:
        assert c.request("GET", "/id").status == 200
        session = c.session
    issued = time.monotonic()
    time.sleep(1.3)
    reused = []
    for _ in range(6):  # both workers
        with TLSClient(gh.port, ctx, "default.test", session=session) as c:
            assert c.request("GET", "/id").status == 200
            reused.append(c.session_reused)
    assert all(reused), "ticket not accepted one rotation later: %s" % reused
    time.sleep(max(0.0, issued + 3.8 - time.monotonic()))
    late = []
    for _ in range(6):
        with TLSClient(gh.port, ctx, "default.test", session=session) as c:
            assert c.request("GET", "/id").status == 200  # full handshake still works
            late.append(c.session_reused)
    assert not any(late), "a ticket from >3 rotations ago still resumes: keys do not rotate"


# --------------------------------------------------------------------------------------------
# What reaches the upstream


def test_x_forwarded_proto_https_reaches_the_backend(tls_gatehouse):
    gh = tls_gatehouse(extra="[forwarding]\nforwarded = true\n")
    r = https_request(gh.port, no_verify(), "GET", "/echo", "default.test",
                      headers=[("X-Forwarded-Proto", "http")], host="default.test")
    assert r.status == 200
    headers = r.json()["headers"]
    protos = [v for n, v in headers if n.lower() == "x-forwarded-proto"]
    assert protos == ["https"], headers
    fwd = [v for n, v in headers if n.lower() == "forwarded"]
    assert fwd and "proto=https" in fwd[-1].lower(), headers


def test_large_bodies_both_ways_and_keepalive_over_tls(shared):
    gh, _ = shared
    from backend import pattern_sha256
    body = os.urandom(3 * 1024 * 1024 + 7)
    with TLSClient(gh.port, no_verify(), "default.test", timeout=20) as c:
        r = c.request("GET", "/bytes/4000001")
        assert r.status == 200 and r.complete
        assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(4000001)
        r = c.request("POST", "/echo", body=body)
        assert r.status == 200
        info = r.json()
        assert info["body_length"] == len(body)
        assert info["body_sha256"] == hashlib.sha256(body).hexdigest()
        r = c.request("GET", "/chunked/300000")
        assert r.status == 200 and r.complete and len(r.body) == 300000
        assert dict((n.lower(), v) for n, v in r.trailers)["x-body-length"] == "300000"
        for _ in range(20):
            assert c.request("GET", "/id").status == 200


def test_plain_http_and_garbage_on_the_tls_port_do_not_hurt(shared):
    gh, _ = shared
    reply = harness.raw_request(gh.port, b"GET /id HTTP/1.1\r\nHost: x\r\n\r\n", timeout=3)
    assert b"HTTP/1.1 200" not in reply
    assert reply.closed, "plain HTTP on a TLS port left the connection open"
    reply = harness.raw_request(gh.port, b"\x16\x03\x01\x00\x05garbagegarbage", timeout=3)
    assert reply.closed
    # half a ClientHello, then close
    with socket.create_connection(("127.0.0.1", gh.port), timeout=3) as s:
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    assert https_request(gh.port, no_verify(), "GET", "/id", "default.test").status == 200
    assert gh.alive()


def test_stalled_handshake_is_closed_by_the_header_timeout(tls_gatehouse):
    """A client that connects and never sends a ClientHello is a slowloris too."""
    gh = tls_gatehouse(extra='[timeouts]\nheader = "1s"\n')
    with socket.create_connection(("127.0.0.1", gh.port), timeout=5) as s:
        start = time.monotonic()
        s.settimeout(5)
        try:
            data = s.recv(100)
        except ConnectionResetError:
            data = b""
        except (socket.timeout, TimeoutError):
            pytest.fail("a connection that never starts its handshake is open after 5 s")
        elapsed = time.monotonic() - start
    assert data == b"" or data[:1] == b"\x15", data  # closed, maybe after an alert
    assert elapsed < 4.0, elapsed


# --------------------------------------------------------------------------------------------
# Certificate renewal under load


def renewal_setup(tmp_path, pki, tls_gatehouse, tls_extra):
    live_dir = tmp_path / "live"
    live_dir.mkdir()
    first = pki.ca.issue("renew-v1", ["renew.test"], directory=tmp_path / "v1")
    live = type(first)(live_dir / "renew.pem", live_dir / "renew.key", ["renew.test"])
    install_cert(first, live)
    gh = tls_gatehouse(tls_extra, certs=[live, pki.exact])
    second = pki.ca.issue("renew-v2", ["renew.test"], directory=tmp_path / "v2")
    return gh, live, first, second


def renewal_under_load(gh, pki, first, second, change):
    """Runs 2 threads of fresh verified HTTPS connections (full handshakes), plus one keep-alive
    connection opened before the change; calls change(); waits until the new certificate is
    served; asserts no handshake or request failed and the new one is served from then on."""
    ctx = client_context(pki.ca)
    fp_first, fp_second = first.fingerprint, second.fingerprint

    def one(_k, _i):
        with TLSClient(gh.port, ctx, "renew.test") as c:
            fp = hashlib.sha256(peer_der(c.sock)).hexdigest()
            r = c.request("GET", "/id", host="renew.test")
            if r.status != 200 or not r.complete:
                raise AssertionError("status %s complete %s" % (r.status, r.complete))
            return fp

    with TLSClient(gh.port, ctx, "renew.test") as kept:
        assert hashlib.sha256(peer_der(kept.sock)).hexdigest() == fp_first
        assert kept.request("GET", "/id").status == 200
        with LoadLoop(one, threads=2, name="renew") as load:
            time.sleep(0.6)
            t_change = time.monotonic()
            change()

            def new_served():
                with load.lock:
                    return any(t > t_change and fp == fp_second for t, fp in load.results)
            switched = wait_until(new_served, 8.0)
            time.sleep(0.6)
        # the connection opened before the change still works
        assert kept.request("GET", "/id").status == 200
    assert not load.failures, "%d failed during the renewal (of %d ok); first: %s" % (
        len(load.failures), load.ok, load.failures[:3])
    assert switched, "the renewed certificate was never served"
    fps = [fp for _, fp in load.results]
    assert set(fps) <= {fp_first, fp_second}
    last_first = max((t for t, fp in load.results if fp == fp_first), default=0)
    first_second = min(t for t, fp in load.results if fp == fp_second)
    assert last_first <= first_second + 0.3, "old certificate still served after the new one"
    assert load.ok > 20, load.ok
    r = https_request(gh.port, ctx, "GET", "/id", "renew.test")
    assert r.status == 200


def test_renewed_certificate_served_after_sighup_without_failures(tmp_path, pki,
                                                                   tls_gatehouse):
    gh, live, first, second = renewal_setup(tmp_path, pki, tls_gatehouse,
                                            {"watch_interval": "1h"})
    before, _ = generation_count(gh)

    def change():
        install_cert(second, live)
        os.kill(gh.pid, signal.SIGHUP)
    renewal_under_load(gh, pki, first, second, change)
    assert wait_generation(gh, before, 5) is not None, gh.log_text()[-2000:]


def test_renewed_certificate_picked_up_by_watching_without_failures(tmp_path, pki,
                                                                     tls_gatehouse):
    """Files replaced one by one (key first: for a moment key and certificate do not match)
    with no SIGHUP; watch_interval = 200ms."""
    gh, live, first, second = renewal_setup(tmp_path, pki, tls_gatehouse,
                                            {"watch_interval": "200ms"})
    renewal_under_load(gh, pki, first, second, lambda: install_cert(second, live))


def test_watched_certificate_replaced_by_garbage_keeps_the_old_one(tmp_path, pki,
                                                                    tls_gatehouse):
    gh, live, first, second = renewal_setup(tmp_path, pki, tls_gatehouse,
                                            {"watch_interval": "200ms"})
    ctx = client_context(pki.ca)
    replace_file(live.cert, b"-----BEGIN CERTIFICATE-----\nnot base64 !!\n"
                            b"-----END CERTIFICATE-----\n")
    time.sleep(1.0)
    for _ in range(6):
        with TLSClient(gh.port, ctx, "renew.test") as c:
            assert peer_der(c.sock) == first.der
            assert c.request("GET", "/id").status == 200
    assert str(live.cert) in gh.log_text(), "the unreadable certificate is not logged"
    install_cert(second, live)

    def serves_second():
        with TLSClient(gh.port, ctx, "renew.test") as c:
            return peer_der(c.sock) == second.der
    assert wait_until(serves_second, 5.0, 0.1), "valid files after garbage not picked up"


def test_watched_symlinked_certificate_is_picked_up_when_the_link_moves(tmp_path, pki,
                                                                       tls_gatehouse):
    """certbot's layout: live/NAME.pem -> ../archive/NAME1.pem; a renewal writes NAME2.pem and
    re-points the links. The watcher must follow the paths, not the old inodes."""
    archive, live_dir = tmp_path / "archive", tmp_path / "live"
    archive.mkdir()
    live_dir.mkdir()
    v1 = pki.ca.issue("sym-v1", ["renew.test"], directory=archive)
    v2 = pki.ca.issue("sym-v2", ["renew.test"], directory=archive)
    live = type(v1)(live_dir / "renew.pem", live_dir / "renew.key", ["renew.test"])

    def point(cert):
        for src, dst in ((cert.key, live.key), (cert.cert, live.cert)):
            tmp = dst.with_name(dst.name + ".new")
            os.symlink(os.path.relpath(src, live_dir), tmp)
            os.replace(tmp, dst)
    point(v1)
    gh = tls_gatehouse({"watch_interval": "200ms"}, certs=[live, pki.exact])
    renewal_under_load(gh, pki, v1, v2, lambda: point(v2))


def test_reload_adds_a_certificate_for_a_new_name(tls_gatehouse, pki):
    gh = tls_gatehouse({"watch_interval": "1h"}, certs=[pki.default])
    with TLSClient(gh.port, no_verify(), "a.wild.test") as c:
        assert peer_der(c.sock) == pki.default.der
    text = gh.config_path.read_text()
    old = tls_table([pki.default], watch_interval="1h")
    assert old in text
    gh.config_path.write_text(text.replace(old, tls_table([pki.default, pki.wild],
                                                          watch_interval="1h")))
    before, _ = generation_count(gh)
    os.kill(gh.pid, signal.SIGHUP)
    assert wait_generation(gh, before, 5) is not None, gh.log_text()[-2000:]
    with TLSClient(gh.port, client_context(pki.ca), "a.wild.test") as c:
        assert peer_der(c.sock) == pki.wild.der
        assert c.request("GET", "/id").status == 200


class PausedHandshake:
    """A client handshake driven through memory BIOs, so it can stop half-way: after the
    server's first flight, before the client's reply reaches the server."""

    def __init__(self, port, ctx, server_name):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname=server_name)
        self.done = self._step()
        self.sock.sendall(self.out.read())  # ClientHello
        while self.out.pending == 0:  # read the server's flight until the client answers
            data = self.sock.recv(65536)
            assert data, "server closed during the handshake"
            self.inc.write(data)
            self.done = self._step()

    def _step(self):
        try:
            self.obj.do_handshake()
            return True
        except ssl.SSLWantReadError:
            return False

    def finish_and_request(self, target="/id"):
        self.sock.sendall(self.out.read())
        while not self.done:
            data = self.sock.recv(65536)
            assert data, "server closed while finishing the handshake"
            self.inc.write(data)
            self.done = self._step()
        der = self.obj.getpeercert(binary_form=True)
        self.obj.write(Client.build("GET", target))
        self.sock.sendall(self.out.read())
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.endswith(b"renew-origin"):
            data = self.sock.recv(65536)
            if not data:
                break
            self.inc.write(data)
            try:
                reply += self.obj.read(65536)
            except ssl.SSLWantReadError:
                pass
            if self.out.pending:
                self.sock.sendall(self.out.read())
        self.sock.close()
        return der, reply


@pytest.mark.parametrize("version", [V.TLSv1_2, V.TLSv1_3], ids=["tls1.2", "tls1.3"])
def test_handshake_in_progress_survives_a_certificate_reload(tmp_path, pki, start_backend,
                                                             start_gatehouse, version):
    backend = start_backend("renew-origin")
    live_dir = tmp_path / "live"
    live_dir.mkdir()
    first = pki.ca.issue("renew-v1", ["renew.test"], directory=tmp_path / "v1")
    second = pki.ca.issue("renew-v2", ["renew.test"], directory=tmp_path / "v2")
    live = type(first)(live_dir / "renew.pem", live_dir / "renew.key", ["renew.test"])
    install_cert(first, live)
    gh = start_gatehouse(tls_proxy_config([backend], [live], {"watch_interval": "1h"}))
    ctx = client_context(pki.ca, min_version=version, max_version=version)
    paused = [PausedHandshake(gh.port, ctx, "renew.test") for _ in range(4)]
    install_cert(second, live)
    before, _ = generation_count(gh)
    os.kill(gh.pid, signal.SIGHUP)
    assert wait_generation(gh, before, 5) is not None, gh.log_text()[-2000:]
    for h in paused:
        der, reply = h.finish_and_request()
        assert der == first.der
        assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"renew-origin"), reply
    with TLSClient(gh.port, ctx, "renew.test") as c:
        assert peer_der(c.sock) == second.der


def test_reload_with_a_missing_certificate_keeps_the_old_config(tmp_path, pki, tls_gatehouse):
    gh, live, first, second = renewal_setup(tmp_path, pki, tls_gatehouse,
                                            {"watch_interval": "1h"})
    before = count_log(gh, r"reload failed")
    missing = tmp_path / "nope" / "missing.pem"
    text = gh.config_path.read_text().replace(str(live.cert), str(missing))
    assert str(missing) in text
    gh.config_path.write_text(text)
    os.kill(gh.pid, signal.SIGHUP)
    assert wait_log_count(gh, r"reload failed", before, 5), gh.log_text()[-2000:]
    line = last_log_entry(gh, r"reload failed")
    assert str(missing) in line, line
    ctx = client_context(pki.ca)
    with TLSClient(gh.port, ctx, "renew.test") as c:
        assert peer_der(c.sock) == first.der
        assert c.request("GET", "/id").status == 200


# --------------------------------------------------------------------------------------------
# Certificate errors refused by check and start


def bad_cert_cases(tmp_path, pki):
    d = tmp_path / "bad"
    d.mkdir()
    garbage = d / "garbage.pem"
    garbage.write_text("this is not a certificate\n")
    garbage_key = d / "garbage.key"
    garbage_key.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    a_dir = d / "a-directory.pem"
    a_dir.mkdir()
    other_key = pki.exact.key
    return {
        # name: (cert, key, path expected in the message, reason regex)
        "missing-cert": (d / "missing.pem", pki.default.key, d / "missing.pem",
                         r"No such file|not found|does not exist|cannot open|system lib"),
        "missing-key": (pki.default.cert, d / "missing.key", d / "missing.key",
                        r"No such file|not found|does not exist|cannot open|system lib"),
        "cert-is-a-directory": (a_dir, pki.default.key, a_dir,
                                r"directory|read|no start line|PEM|system lib"),
        "garbage-cert": (garbage, pki.default.key, garbage,
                         r"no start line|PEM routines|decoder|ASN1|bad"),
        "garbage-key": (pki.default.cert, garbage_key, garbage_key,
                        r"PEM|decoder|ASN1|bad|unsupported|key"),
        "mismatched-key": (pki.default.cert, other_key, None,
                           r"key values mismatch|does not match|mismatch"),
    }


CASES = ["missing-cert", "missing-key", "cert-is-a-directory", "garbage-cert", "garbage-key",
         "mismatched-key"]


@pytest.mark.parametrize("case", CASES)
def test_check_refuses_bad_certificate_files_naming_path_and_reason(tmp_path, pki, case):
    cert, key, path, reason = bad_cert_cases(tmp_path, pki)[case]
    text = tls_proxy_config(["127.0.0.1:9"], [harness_cert(cert, key)],
                            listen="127.0.0.1:%d" % harness.free_port())
    code, err = run_check(tmp_path, text)
    assert code == 1, err
    if path is None:  # mismatch: either file may be named
        assert str(cert) in err or str(key) in err, err
    else:
        assert str(path) in err, err
    assert re.search(reason, err, re.I), "no OpenSSL reason in: " + err


def harness_cert(cert, key):
    from tls_helpers import Cert
    return Cert(cert, key)


def test_start_refuses_a_mismatched_key(tmp_path, pki):
    text = tls_proxy_config(["127.0.0.1:9"], [harness_cert(pki.default.cert, pki.exact.key)],
                            listen="127.0.0.1:%d" % harness.free_port())
    path = tmp_path / "bad.toml"
    path.write_text(text)
    done = subprocess.run([harness.GATEHOUSE_BIN, "-c", str(path)], capture_output=True,
                          text=True, timeout=10, stdin=subprocess.DEVNULL)
    assert done.returncode != 0
    err = done.stdout + done.stderr
    assert str(pki.default.cert) in err or str(pki.exact.key) in err, err
    assert "ready" not in err


# --------------------------------------------------------------------------------------------
# Protocol and cipher configuration


def test_protocols_and_ciphers_settings_are_applied(tls_gatehouse):
    gh = tls_gatehouse({"protocols": ["TLSv1.2"], "ciphers": "ECDHE-ECDSA-AES256-GCM-SHA384"})
    with pytest.raises(ssl.SSLError):
        tls_connect(gh.port, no_verify(min_version=V.TLSv1_3), "default.test").close()
    with pytest.raises(ssl.SSLError):
        tls_connect(gh.port, no_verify(max_version=V.TLSv1_2,
                                       ciphers="ECDHE-ECDSA-AES128-GCM-SHA256"),
                    "default.test").close()
    with TLSClient(gh.port, no_verify(max_version=V.TLSv1_2), "default.test") as c:
        assert c.sock.cipher()[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"
        assert c.request("GET", "/id").status == 200


def test_tls13_only_listener_refuses_tls12(tls_gatehouse):
    gh = tls_gatehouse({"protocols": ["TLSv1.3"]})
    with pytest.raises(ssl.SSLError):
        tls_connect(gh.port, no_verify(max_version=V.TLSv1_2), "default.test").close()
    with TLSClient(gh.port, no_verify(), "default.test") as c:
        assert c.sock.version() == "TLSv1.3"


def client_tls12_ciphers():
    """Every TLS 1.2 cipher this machine's openssl can offer (PSK/SRP need credentials)."""
    out = subprocess.run(["openssl", "ciphers", "-tls1_2", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"],
                         capture_output=True, text=True, timeout=10).stdout.strip()
    return [c for c in out.split(":") if c and not c.startswith("TLS_")
            and "PSK" not in c and "SRP" not in c]


def probe_ciphers(port, ciphers, server_name):
    """The ciphers for which `openssl s_client -tls1_2 -cipher X` completes a handshake."""
    def probe(cipher):
        ok, _ = s_client_handshake_ok(port, "-tls1_2", "-cipher", cipher + ":@SECLEVEL=0",
                                      servername=server_name)
        return cipher if ok else None
    with ThreadPoolExecutor(max_workers=4) as pool:
        return [c for c in pool.map(probe, ciphers) if c]


def is_weak(cipher):
    return (any(w in cipher for w in ("RC4", "DES", "NULL", "EXP", "MD5", "ADH", "AECDH"))
            or cipher.endswith("-SHA"))  # CBC with a SHA-1 MAC


# SNI selects the RSA or the ECDSA certificate, so both key types' suites can be negotiated.
@pytest.mark.parametrize("server_name", ["rsa.test", "default.test"], ids=["rsa", "ecdsa"])
def test_default_cipher_list_offers_no_weak_cipher(shared, server_name):
    """openssl s_client -tls1_2 -cipher X for every weak suite the local OpenSSL can offer
    (NULL, anonymous, CBC-SHA1, MD5; RC4, 3DES and EXPORT are named too, and are reported
    impossible when the local OpenSSL - the same library gatehouse links - lacks them)."""
    gh, _ = shared
    candidates = [c for c in client_tls12_ciphers() if is_weak(c)]
    for named in ("RC4-SHA", "RC4-MD5", "DES-CBC3-SHA", "ECDHE-RSA-DES-CBC3-SHA",
                  "EXP-RC4-MD5", "EXP-DES-CBC-SHA"):
        if named not in candidates:
            candidates.append(named)
    assert any(c.endswith("-SHA") and "AES" in c for c in candidates)
    accepted = probe_ciphers(gh.port, candidates, server_name)
    assert not accepted, "weak TLS 1.2 ciphers accepted: %s" % accepted
    # positive control: a good suite for this key type is accepted
    good = ("ECDHE-RSA-AES128-GCM-SHA256" if server_name == "rsa.test"
            else "ECDHE-ECDSA-AES128-GCM-SHA256")
    ok, out = s_client_handshake_ok(gh.port, "-tls1_2", "-cipher", good, servername=server_name)
    assert ok, out


FS_AEAD = re.compile(r"^(ECDHE|DHE)-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$")


@pytest.mark.parametrize("server_name", ["rsa.test", "default.test"], ids=["rsa", "ecdsa"])
def test_default_tls12_ciphers_are_forward_secret_aead_only(shared, server_name):
    """Every TLS 1.2 suite the server accepts is in the intermediate list (ECDHE/DHE with
    AES-GCM or CHACHA20-POLY1305): no CBC, no static RSA key exchange, no CAMELLIA/ARIA."""
    gh, _ = shared
    accepted = probe_ciphers(gh.port, client_tls12_ciphers(), server_name)
    assert accepted, "no TLS 1.2 cipher accepted at all"
    outside = [c for c in accepted if not FS_AEAD.match(c)]
    assert not outside, "accepted outside ECDHE/DHE + AEAD: %s" % outside
