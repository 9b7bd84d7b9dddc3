"""Upstream TLS: `tls = true` connects with TLS, sends SNI, verifies the certificate (against
`tls_ca`, or the system store by default); untrusted, expired or wrong-name certificates are a
502 with the verification error logged; `tls_verify = false` turns verification off; a client
certificate (`tls_cert`/`tls_key`) satisfies a backend that requires one.

The TLS backend is backend.py with --tls-cert/--tls-key (and --client-ca); its /echo reports
the SNI it received and the client certificate's CN."""

import hashlib
import os
import re
import socket
import threading
import time

import pytest

from harness import get, proxy_config, run_check, wait_until
from tls_helpers import pki, start_tls_backend

__all__ = ["pki", "start_tls_backend"]


def upstream_tls(**keys):
    lines = ["tls = true"]
    for k, v in keys.items():
        lines.append("%s = %s" % (k, '"%s"' % v if isinstance(v, str) else
                                  ("true" if v is True else "false" if v is False else v)))
    return "\n".join(lines) + "\nmax_fails = 1000\n"


def echo_tls(gh):
    r = get(gh.port, "/echo")
    assert r.status == 200, (r, gh.log_text()[-2000:])
    info = r.json()
    assert "tls" in info, "the backend was reached without TLS"
    return info


def test_tls_upstream_with_ca_verifies_and_sends_sni(start_tls_backend, start_gatehouse, pki):
    b = start_tls_backend("tls-up", pki.backend)
    gh = start_gatehouse(proxy_config([b.address], upstream=upstream_tls(
        tls_ca=str(pki.ca.cert), tls_server_name="backend.test")))
    info = echo_tls(gh)
    assert info["tls"]["sni"] == "backend.test"
    assert info["tls"]["version"] in ("TLSv1.2", "TLSv1.3")
    assert info["tls"]["client_cert"] is None


def test_tls_upstream_by_ip_address_verifies_the_ip_san(start_tls_backend, start_gatehouse,
                                                         pki):
    """No tls_server_name: the name verified is the server's host (127.0.0.1, an IP SAN)."""
    b = start_tls_backend("tls-up", pki.backend)
    gh = start_gatehouse(proxy_config([b.address], upstream=upstream_tls(
        tls_ca=str(pki.ca.cert))))
    info = echo_tls(gh)
    assert info["tls"]["sni"] in (None, "127.0.0.1")  # IP literals are not valid SNI


def test_tls_upstream_keeps_connections_alive_and_streams(start_tls_backend, start_gatehouse,
                                                          pki):
    from backend import pattern_sha256
    from harness import Client
    b = start_tls_backend("tls-up", pki.backend)
    gh = start_gatehouse(proxy_config([b.address], workers=1, upstream=upstream_tls(
        tls_ca=str(pki.ca.cert), tls_server_name="backend.test")))
    body = os.urandom(2 * 1024 * 1024 + 3)
    with Client(gh.port, timeout=20) as c:
        r = c.request("POST", "/echo", body=body)
        assert r.status == 200
        assert r.json()["body_sha256"] == hashlib.sha256(body).hexdigest()
        r = c.request("GET", "/bytes/3000017")
        assert r.status == 200 and r.complete
        assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(3000017)
        for _ in range(10):
            assert c.request("GET", "/id").status == 200
    stats = b.stats()
    assert stats["requests"] == 12
    assert stats["connections"] <= 2, "upstream TLS connections are not reused: %s" % stats


def test_untrusted_self_signed_upstream_is_502_with_the_verify_error_logged(
        start_tls_backend, start_gatehouse, pki):
    b = start_tls_backend("rogue", pki.rogue)
    gh = start_gatehouse(proxy_config([b.address], upstream=upstream_tls(
        tls_ca=str(pki.ca.cert), tls_server_name="backend.test")))
    r = get(gh.port, "/echo")
    assert r.status == 502, r
    assert gh.wait_log(r"(?i)self[- ]signed certificate", 3), gh.log_text()[-2000:]
    assert b.stats()["requests"] == 0


def test_upstream_signed_by_another_ca_is_502(start_tls_backend, start_gatehouse, pki):
    other = pki.other_ca.issue("other-backend", ["backend.test"], ips=["127.0.0.1"])
    b = start_tls_backend("other", other)
    gh = start_gatehouse(proxy_config([b.address], upstream=upstream_tls(
        tls_ca=str(pki.ca.cert), tls_server_name="backend.test")))
    assert get(gh.port, "/echo").status == 502
    assert gh.wait_log(r"(?i)unable to get local issuer certificate|certificate verify failed",
                       3), gh.log_text()[-2000:]
    assert b.stats()["requests"] == 0


def test_verification_is_on_by_default_against_the_system_store(start_tls_backend,
                                                                 start_gatehouse, pki):
    """No tls_ca: the test CA is not in the system store, so the upstream is refused."""
    b = start_tls_backend("tls-up", pki.backend)
    gh = start_gatehouse(proxy_config([b.address], upstream=upstream_tls(
        tls_server_name="backend.test")))
    assert get(gh.port, "/echo").status == 502
    assert b.stats()["requests"] == 0


def test_tls_verify_false_accepts_the_untrusted_certificate(start_tls_backend,
                                                            start_gatehouse, pki):
    b = start_tls_backend("rogue", pki.rogue)
    gh = start_gatehouse(proxy_config([b.address], upstream=upstream_tls(tls_verify=False)))
    info = echo_tls(gh)
    assert info["id"] == "rogue"


def test_wrong_name_is_502(start_tls_backend, start_gatehouse, pki):
    b = start_tls_backend("tls-up", pki.backend)
    gh = start_gatehouse(proxy_config([b.address], upstream=upstream_tls(
        tls_ca=str(pki.ca.cert), tls_server_name="elsewhere.test")))
    assert get(gh.port, "/echo").status == 502
    assert b.stats()["requests"] == 0


def test_expired_upstream_certificate_is_502_with_the_reason_logged(start_tls_backend,
                                                                    start_gatehouse, pki):
    b = start_tls_backend("expired", pki.expired)
    gh = start_gatehouse(proxy_config([b.address], upstream=upstream_tls(
        tls_ca=str(pki.ca.cert), tls_server_name="backend.test")))
    assert get(gh.port, "/echo").status == 502
    assert gh.wait_log(r"(?i)certificate has expired", 3), gh.log_text()[-2000:]


def test_a_plain_http_server_behind_tls_true_is_502(start_gatehouse):
    """The server answers the ClientHello with plain HTTP and closes: the handshake fails at
    once (a 502, not a timeout)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(10)

    def serve():
        try:
            while True:
                conn, _ = listener.accept()
                with conn:
                    conn.recv(4096)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")
        except OSError:
            pass
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        address = "127.0.0.1:%d" % listener.getsockname()[1]
        gh = start_gatehouse(proxy_config([address], upstream=upstream_tls(tls_verify=False)))
        start = time.monotonic()
        assert get(gh.port, "/echo").status == 502
        assert time.monotonic() - start < 2.0
        assert gh.alive()
    finally:
        listener.close()


def test_mtls_client_certificate_is_presented(start_tls_backend, start_gatehouse, pki):
    b = start_tls_backend("mtls", pki.backend, client_ca=pki.ca, client_cert=pki.client)
    gh = start_gatehouse(proxy_config([b.address], upstream=upstream_tls(
        tls_ca=str(pki.ca.cert), tls_server_name="backend.test",
        tls_cert=str(pki.client.cert), tls_key=str(pki.client.key))))
    info = echo_tls(gh)
    assert info["tls"]["client_cert"] == "gatehouse-client"
    for _ in range(5):
        assert get(gh.port, "/id").status == 200


def test_mtls_backend_refuses_gatehouse_without_client_certificate(start_tls_backend,
                                                                   start_gatehouse, pki):
    b = start_tls_backend("mtls", pki.backend, client_ca=pki.ca, client_cert=pki.client)
    gh = start_gatehouse(proxy_config([b.address], upstream=upstream_tls(
        tls_ca=str(pki.ca.cert), tls_server_name="backend.test")))
    assert get(gh.port, "/echo").status == 502
    # The backend counts the failed handshake on its connection's thread, which may finish
    # after gatehouse already answered 502: wait for it rather than race it.
    assert wait_until(lambda: b.stats()["tls_handshake_failures"] >= 1, 5)
    assert b.stats()["requests"] == 0


def test_mtls_backend_refuses_a_certificate_from_another_ca(start_tls_backend,
                                                            start_gatehouse, pki):
    b = start_tls_backend("mtls", pki.backend, client_ca=pki.ca, client_cert=pki.client)
    gh = start_gatehouse(proxy_config([b.address], upstream=upstream_tls(
        tls_ca=str(pki.ca.cert), tls_server_name="backend.test",
        tls_cert=str(pki.other_client.cert), tls_key=str(pki.other_client.key))))
    assert get(gh.port, "/echo").status == 502
    assert b.stats()["requests"] == 0


@pytest.mark.parametrize("case", ["missing-ca", "missing-client-cert", "mismatched-client-key",
                                  "cert-without-key"])
def test_check_refuses_bad_upstream_tls_files(tmp_path, pki, case):
    missing = tmp_path / "missing.pem"
    keys = {
        "missing-ca": dict(tls_ca=str(missing)),
        "missing-client-cert": dict(tls_cert=str(missing), tls_key=str(pki.client.key)),
        "mismatched-client-key": dict(tls_cert=str(pki.client.cert),
                                      tls_key=str(pki.backend.key)),
        "cert-without-key": dict(tls_cert=str(pki.client.cert)),
    }[case]
    code, err = run_check(tmp_path, proxy_config(["127.0.0.1:9"], upstream=upstream_tls(**keys)))
    assert code == 1, err
    if case in ("missing-ca", "missing-client-cert"):
        assert str(missing) in err, err
    elif case == "mismatched-client-key":
        assert re.search(r"mismatch|does not match", err, re.I), err
    else:
        assert "tls_key" in err, err
