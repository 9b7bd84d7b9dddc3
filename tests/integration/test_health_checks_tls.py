"""Active health checks of TLS upstreams go over TLS, with the same verification as requests:
a server whose certificate cannot be verified is marked unhealthy by its checks; one that
verifies is checked by status like any other."""

from harness import get, proxy_config, wait_until
from tls_helpers import pki, start_tls_backend

__all__ = ["pki", "start_tls_backend"]

HEALTH = """
[upstream.app.health]
path = "/health-check"
interval = "100ms"
jitter = "0ms"
timeout = "1s"
rise = 1
fall = 2
"""


def config(servers, ca):
    upstream = 'tls = true\ntls_ca = "%s"\ntls_server_name = "backend.test"\nmax_fails = 1000\n' % ca
    return proxy_config(servers, upstream=upstream) + HEALTH


def test_tls_upstream_checks_pass_over_tls_and_fail_on_status(start_tls_backend, start_gatehouse, pki):
    b = start_tls_backend("tls-checked", pki.backend)
    gh = start_gatehouse(config([b.address], pki.ca.cert))
    assert get(gh.port, "/id").status == 200
    # The check reached the server over TLS: flip its health status there, it goes unhealthy.
    from tls_helpers import client_context, https_request
    https_request(b.port, client_context(verify=False), "GET", "/set-health/500")
    assert gh.wait_log(r"server 127\.0\.0\.1:%d is unhealthy .*status 500" % b.port, 5.0), \
        gh.log_text()[-2000:]
    https_request(b.port, client_context(verify=False), "GET", "/set-health/200")
    assert gh.wait_log(r"server 127\.0\.0\.1:%d is healthy again" % b.port, 5.0), gh.log_text()[-2000:]


def test_tls_upstream_with_an_untrusted_certificate_fails_its_checks(start_tls_backend,
                                                                     start_gatehouse, pki):
    good = start_tls_backend("good", pki.backend)
    rogue = start_tls_backend("rogue", pki.rogue)
    gh = start_gatehouse(config([good.address, rogue.address], pki.ca.cert))
    assert gh.wait_log(r"server 127\.0\.0\.1:%d is unhealthy .*TLS" % rogue.port, 5.0), \
        gh.log_text()[-2000:]
    # Only the verified server answers now.
    bodies = [get(gh.port, "/id").body for _ in range(6)]
    assert set(bodies) == {b"good"}, bodies
