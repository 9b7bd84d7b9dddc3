"""The default TLS configuration as an outside prober sees it (issue 3: no weak protocol or
cipher in the default config), with Debian's testssl.sh against a real listener."""

import shutil
import subprocess

import pytest

from tls_helpers import self_signed, tls_proxy_config


def test_default_tls_config_offers_nothing_weak(start_backend, start_gatehouse, tmp_path):
    testssl = shutil.which("testssl")
    if not testssl:
        pytest.skip("testssl.sh is not installed (contrib/scripts/deps.sh installs it)")
    cert = self_signed(tmp_path / "pki", "site", ["site.test"], ips=["127.0.0.1"], key_type="rsa")
    gh = start_gatehouse(tls_proxy_config([start_backend("b")], [cert]))
    # Protocols, cipher categories, forward secrecy and the known vulnerabilities.
    result = subprocess.run(
        [testssl, "--quiet", "--color", "0", "--warnings", "off", "--ip", "one",
         "-p", "-s", "-f", "-U", "127.0.0.1:%d" % gh.port],
        capture_output=True, text=True, timeout=240)
    out = result.stdout
    assert "TLS 1.3    offered" in out and "TLS 1.2    offered" in out, out
    for old in ("SSLv2", "SSLv3", "TLS 1 ", "TLS 1.1"):
        line = next(l for l in out.splitlines() if l.strip().startswith(old.strip()) and
                    (old != "TLS 1 " or l.strip().startswith("TLS 1 ")))
        assert "not offered" in line, line
    for category in ("NULL ciphers", "Anonymous NULL", "Export ciphers", "LOW: 64 Bit",
                     "Triple DES", "Obsolete CBC"):
        line = next(l for l in out.splitlines() if category in l)
        assert "not offered" in line, line
    assert "PFS is offered (OK)" in out, out
    vulnerable = [l for l in out.splitlines() if "VULNERABLE" in l and "not vulnerable" not in l]
    assert not vulnerable, vulnerable
