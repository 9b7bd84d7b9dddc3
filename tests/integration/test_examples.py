"""The configs we ship (conf/gatehouse.toml and conf/examples/*.toml) stay valid and do what their
comments say.

Each passes `gatehouse check` as written: only `[modules] dir` is set to this build, and the
certificate files it names are made here (by a test CA) next to the copy. Then each example runs
with its addresses moved to loopback — listeners on port 0, its servers replaced by test
backends, its absolute paths (pid file, access log, cache) moved into the test's folder — and
serves the traffic its comments describe."""

import json
import os
import re
import shutil
import tomllib
import urllib.parse

import pytest

import harness
import oidc
from admin_helpers import admin_port, settled_metrics
from harness import Client, get, wait_until
from tls_helpers import CertAuthority, TLSClient, client_context, start_tls_backend  # noqa: F401

CONF = harness.HERE.parent.parent / "conf"
EXAMPLES = sorted(CONF.glob("examples/*.toml"))


def with_module_dir(text):
    """text with `[modules] dir` set to the modules of this build: the examples name none (they
    use the installed modules), the demo config names the build tree relative to conf/."""
    line = "dir = %s" % harness.toml_value(harness.MODULE_DIR)
    text, n = re.subn(r'(?m)^dir = "[^"]*".*$', line, text)
    if n == 0:
        text, n = re.subn(r'(?m)^\[modules\]$', "[modules]\n" + line, text)
    assert n == 1, "expected one [modules] table"
    return text


def make_files(example, folder, ca):
    """Writes example (with its module dir) into folder, and every certificate, key and CA file
    it names (relative paths, relative to folder), issued by ca. Returns the copy's path."""
    text = example.read_text()
    doc = tomllib.loads(text)
    for listener in doc.get("listener", []):
        for entry in listener.get("tls", {}).get("certificates", []):
            cert = folder / entry["cert"]
            assert cert.name.endswith(".pem") and (folder / entry["key"]).parent == cert.parent
            name = cert.name[:-len(".pem")]
            parent_domain = name.split(".", 1)[1]
            issued = ca.issue(name, [name, parent_domain, "*." + parent_domain],
                              directory=cert.parent)
            assert issued.key == folder / entry["key"], "key not named like its certificate"
    for upstream in doc.get("upstream", {}).values():
        if "tls_ca" in upstream:
            target = folder / upstream["tls_ca"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ca.cert, target)
    copy = folder / example.name
    copy.write_text(with_module_dir(text))
    return copy


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return CertAuthority(tmp_path_factory.mktemp("examples-ca"))


@pytest.mark.parametrize("example", EXAMPLES + [CONF / "gatehouse.toml"], ids=lambda p: p.name)
def test_example_passes_check_as_written(example, tmp_path, ca):
    copy = make_files(example, tmp_path, ca)
    absent = [p for p in ("/run/gatehouse", "/var/cache/gatehouse", "/var/log/gatehouse")
              if not os.path.exists(p)]
    done = harness.run_cli(["check", "-c", str(copy)])
    assert done.returncode == 0, "%s:\n%s" % (example.name, done.stderr)
    # `check` has no side effects: no pid file, cache directory or log is created.
    for path in absent:
        assert not os.path.exists(path), "check created %s" % path


def test_examples_exist():
    assert {p.name for p in EXAMPLES} >= {"edge-tls.toml", "cache-compress.toml",
                                           "api-least-conn.toml", "waf.toml", "sso.toml"}


def localized(example, tmp_path, ca, servers, paths=()):
    """The example ready to run here: listeners on 127.0.0.1:0, each server address replaced by
    servers[address] (every one must be given), each absolute path in paths moved to tmp_path."""
    copy = make_files(example, tmp_path, ca)
    text = re.sub(r'(?m)^listen = "[^"]*"', 'listen = "127.0.0.1:0"', copy.read_text())
    for old, new in servers.items():
        assert '"%s"' % old in text, old
        text = text.replace('"%s"' % old, '"%s"' % new)
    for addr in re.findall(r'address = "([^"]*)"', text):
        assert addr.startswith("127.0.0.1:"), "example server %s not replaced" % addr
    for path in paths:
        assert '"%s"' % path in text, path
        text = text.replace('"%s"' % path, harness.toml_value(str(tmp_path / path.strip("/"))))
    return text


def targets(*backends):
    """[method, target] of every request the backends saw."""
    return [t for b in backends for t in b.stats()["targets"]]


def test_edge_tls_terminates_for_both_sites(tmp_path, ca, start_backend, start_gatehouse):
    app = start_backend("app")
    backup = start_backend("backup")
    app2 = start_backend("app2")
    servers = {"10.0.1.10:8080": app.address, "10.0.1.11:8080": app2.address,
               "10.0.1.12:8080": backup.address}
    text = localized(CONF / "examples" / "edge-tls.toml", tmp_path, ca, servers,
                     ("/run/gatehouse/gatehouse.pid", "/var/log/gatehouse/access.log"))
    for folder in ("var/log/gatehouse", "run/gatehouse"):
        (tmp_path / folder).mkdir(parents=True)
    g = start_gatehouse(tmp_path, text, name="edge")
    ctx = client_context(ca=ca)
    for sni, host in (("www.example.com", "www.example.com"),
                      ("shop.example.net", "shop.example.net")):
        with TLSClient(g.port, ctx, server_name=sni) as c:
            # the hostname check passed: the certificate for this name was chosen by SNI
            assert c.sock.getpeercert()["subject"][0][0][1] == sni
            r = c.request("GET", "/echo", host=host)
        assert r.status == 200, r
        headers = {k.lower(): v for k, v in r.json()["headers"]}
        assert headers["x-forwarded-proto"] == "https"
        assert headers["x-forwarded-for"] == "127.0.0.1"      # not a trusted proxy: replaced
        assert "proto=https" in headers["forwarded"]
    with TLSClient(g.port, ctx, server_name="www.example.com") as c:
        assert c.request("GET", "/", host="other.example.org").status == 404   # no route
    assert (tmp_path / "run/gatehouse/gatehouse.pid").read_text().strip() == str(g.pid)
    assert get(admin_port(g), "/readyz").status == 200
    log = tmp_path / "var/log/gatehouse/access.log"
    assert wait_until(lambda: log.exists() and len(log.read_text().splitlines()) == 3, 5)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    # two workers: lines are in the order requests finished, per worker
    assert sorted(line["status"] for line in lines) == [200, 200, 404], lines
    # the backup server only got the active health checks
    assert targets(app, app2).count(["GET", "/echo"]) == 2
    assert {t for _, t in targets(backup)} <= {"/healthz"}


def test_cache_compress_stores_the_compressed_page(tmp_path, ca, start_backend,
                                                   start_gatehouse):
    origin = start_backend("origin")
    spare = start_backend("spare")
    servers = {"10.0.2.10:8080": origin.address, "10.0.2.11:8080": spare.address}
    text = localized(CONF / "examples" / "cache-compress.toml", tmp_path, ca, servers,
                     ("/var/cache/gatehouse",))
    g = start_gatehouse(tmp_path, text, name="cache")
    page = "/text/20000?type=text/html&cc=" + urllib.parse.quote("max-age=60")
    seen = []
    for _ in range(2):
        with Client(g.port) as c:
            r = c.request("GET", page, [("Accept-Encoding", "br, gzip")])
        assert r.status == 200 and r.header("content-encoding") == "br", r
        seen.append(r.header("cache-status") or "")
    assert seen[0].startswith("gatehouse; fwd=uri-miss") and "stored" in seen[0], seen
    assert seen[1].startswith("gatehouse; hit; ttl="), seen
    assert targets(origin, spare).count(["GET", page]) == 1
    for _ in range(2):     # /account/ is compressed but never stored
        with Client(g.port) as c:
            r = c.request("GET", "/account/x", [("Accept-Encoding", "gzip")])
        assert r.status == 200 and r.header("cache-status") is None, r
    assert targets(origin, spare).count(["GET", "/account/x"]) == 2
    m = settled_metrics(admin_port(g))
    assert m.value("gatehouse_cache_disk_requests_total", result="hit") == 1
    assert m.value("gatehouse_compress_responses_total", codec="br") == 1
    assert (tmp_path / "var/cache/gatehouse").is_dir()


def test_api_least_conn_and_verified_upstream_tls(tmp_path, ca, start_backend,
                                                  start_tls_backend, start_gatehouse):
    api = [start_backend("api-%d" % i) for i in range(3)]
    billing = start_tls_backend("billing", ca.issue("billing", ["billing.internal"],
                                                    directory=tmp_path / "billing"))
    servers = {"10.0.3.10:8080": api[0].address, "10.0.3.11:8080": api[1].address,
               "10.0.3.12:8080": api[2].address, "10.0.4.10:8443": billing.address}
    text = localized(CONF / "examples" / "api-least-conn.toml", tmp_path, ca, servers)
    g = start_gatehouse(tmp_path, text, name="api")
    ids = set()
    for _ in range(30):    # idle servers tie; least_conn breaks ties at random (1 in 3^29 of one)
        r = get(g.port, "/v1/echo")
        assert r.status == 200, r
        ids.add(r.json()["id"])
    assert ids <= {"api-0", "api-1", "api-2"} and len(ids) >= 2, ids
    r = get(g.port, "/v1/billing/echo")
    assert r.status == 200 and r.json()["tls"]["sni"] == "billing.internal", r
    assert get(g.port, "/version").status == 200
    assert get(g.port, "/version/x").status == 404    # `match = "exact"`


@pytest.mark.skipif(not os.path.isdir("/usr/share/modsecurity-crs/rules"),
                    reason="modsecurity-crs is not installed (contrib/scripts/deps.sh installs it)")
def test_waf_blocks_the_site_and_only_flags_the_api(tmp_path, ca, start_backend, start_gatehouse):
    site = start_backend("site")
    api = start_backend("api")
    servers = {"10.0.5.10:8080": site.address, "10.0.5.20:8080": api.address}
    text = localized(CONF / "examples" / "waf.toml", tmp_path, ca, servers,
                     ("/var/log/gatehouse/waf-audit.json",))
    (tmp_path / "var/log/gatehouse").mkdir(parents=True)
    g = start_gatehouse(tmp_path, text, name="waf")
    attack = "?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E"
    assert get(g.port, "/page" + attack).status == 403
    assert get(g.port, "/api/items" + attack).status == 200
    assert get(g.port, "/page?q=plain").status == 200
    assert ["GET", "/page" + attack] not in targets(site)
    assert ["GET", "/api/items" + attack] in targets(api)
    log = tmp_path / "var/log/gatehouse/waf-audit.json"
    assert wait_until(lambda: log.exists() and log.read_text().count("\n") >= 2, 5)
    events = [json.loads(line) for line in log.read_text().split("\n")[:-1] if line]
    assert {(e["route"], e["action"]) for e in events} >= {("site", "blocked"),
                                                          ("api", "detected")}


@pytest.mark.skipif(bool(oidc.unavailable()), reason=oidc.unavailable() or "-")
def test_sso_signs_in_to_the_wiki_and_guards_the_api(tmp_path, ca, start_backend,
                                                     start_gatehouse):
    wiki = start_backend("wiki")
    provider_port = harness.free_port()
    text = localized(CONF / "examples" / "sso.toml", tmp_path, ca,
                     {"10.0.7.10:8080": wiki.address, "10.0.7.2:443": "127.0.0.1:%d" % provider_port})
    # The test's provider speaks plain HTTP at its own issuer URL, and builds its endpoints'
    # URLs from the Host it is asked with: no TLS and no `host` for it here.
    issuer = "http://127.0.0.1:%d" % provider_port
    text = text.replace('"https://login.example.com/realms/corp"', '"%s"' % issuer)
    text = re.sub(r'(?m)^(tls = true|tls_server_name = .*|host = "login.example.com")\n', "",
                  text)
    g = start_gatehouse(tmp_path, text, name="sso")
    base = "https://127.0.0.1:%d" % g.port
    client = {"client_id": "wiki", "client_secret": "change-me",
              "redirect_uris": [base + "/oauth2/callback"],
              "post_logout_redirect_uris": [base + "/"],
              "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"]}
    provider = oidc.Provider(tmp_path, [client], port=provider_port,
                             accounts={"alice": {"groups": ["eng", "wiki-admins"]}})
    try:
        ctx = client_context(ca=ca, check_hostname=False)
        b = oidc.Browser(ctx)
        status, _, body, at = b.login(base + "/page/Home")
        assert status == 200 and at == base + "/page/Home", (status, body[:300])
        headers = {k.lower(): v for k, v in json.loads(body)["headers"]}
        assert headers["x-forwarded-user"] == "alice"
        assert headers["x-forwarded-email"] == "alice@example.com"
        assert headers["x-forwarded-groups"] == "eng,wiki-admins"
        assert "gh_sso" not in headers.get("cookie", "")
        # The session cookie is Secure and HttpOnly, as a browser over HTTPS gets it.
        cookie = next(c for c in b.jar if c.name == "gh_sso")
        assert cookie.secure and cookie.has_nonstandard_attr("HttpOnly")
        # The API: the session works; without one, 401 JSON instead of a redirect.
        assert b.open(base + "/api/pages")[0] == 200
        status, headers, body, _ = oidc.Browser(ctx).open(base + "/api/pages", follow=False)
        assert status == 401 and json.loads(body)["error"] == "unauthorized"
        # Public paths need no session.
        assert oidc.Browser(ctx).open(base + "/assets/site.css", follow=False)[0] == 200
    finally:
        provider.stop()
