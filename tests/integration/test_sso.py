"""sso module through the real binary against a real OpenID provider (npm's oidc-provider, see
oidc.py): the whole sign-in in a cookie-keeping client (the provider's login and consent forms
filled in), identity headers upstream and client copies of them removed, the module's cookies
kept from the upstream, sessions that need no provider round trip and survive the provider going
down, the refused callbacks (tampered, replayed, expired state; wrong iss), open redirects,
tampered and retired-key session cookies, 401 for APIs, and RP-initiated logout."""

import json
import re
import time
import urllib.parse
from pathlib import Path

import pytest

import harness
import oidc
from admin_helpers import admin_port, scrape

pytestmark = pytest.mark.skipif(bool(oidc.unavailable()), reason=oidc.unavailable() or "-")

SECRET = "test-secret-0123456789-abcdefghijklmnop"
OTHER_SECRET = "another-secret-0123456789-abcdefghijkl"


def client_for(port):
    return {"client_id": "gatehouse", "client_secret": "s3cret-client",
            "redirect_uris": ["http://127.0.0.1:%d/oauth2/callback" % port],
            "post_logout_redirect_uris": ["http://127.0.0.1:%d/public/bye" % port],
            "backchannel_logout_uri": "http://127.0.0.1:%d/oauth2/backchannel-logout" % port,
            "backchannel_logout_session_required": True,
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"], "token_endpoint_auth_method": "client_secret_basic"}


def sso_config(port, backend, provider, secrets=(SECRET,), extra_module="", extra_routes=""):
    return (
        "[server]\nworkers = 2\nlog_level = \"info\"\n\n"
        + harness.modules_toml(("round_robin", "sso")) + "\n"
        + "[admin]\nlisten = \"127.0.0.1:0\"\n\n"
        + "[[listener]]\nlisten = \"127.0.0.1:%d\"\n\n" % port
        + "[upstream.app]\nservers = [{ address = \"%s\" }]\n\n" % backend.address
        + "[upstream.idp]\nservers = [{ address = \"127.0.0.1:%d\" }]\n\n" % provider.port
        + "[filter.sso]\nsecrets = %s\ncookie_secure = false\n" % json.dumps(list(secrets))
        + "post_logout_redirects = [\"http://127.0.0.1:%d/public/bye\"]\n" % port
        + extra_module + "\n"
        + "[filter.sso.providers.test]\nissuer = \"%s\"\nupstream = \"idp\"\n" % provider.issuer
        + "client_id = \"gatehouse\"\nclient_secret = \"s3cret-client\"\n"
        + "scopes = [\"openid\", \"email\", \"profile\", \"groups\"]\n\n"
        + extra_routes
        + "[[route]]\nname = \"api\"\npath = \"/api/\"\nupstream = \"app\"\nfilters = [\"sso\"]\n"
        + "filter_config = { sso = { on_missing = \"deny\" } }\n\n"
        + "[[route]]\nname = \"admin\"\npath = \"/admin/\"\nupstream = \"app\"\n"
        + "filters = [\"sso\"]\nfilter_config = { sso = { require_any = ["
        + "{ claim = \"groups\", contains = \"admins\" }, { email_domain = \"admins.example\" }] } }\n\n"
        + "[[route]]\nname = \"site\"\npath = \"/\"\nupstream = \"app\"\nfilters = [\"sso\"]\n"
        + "filter_config = { sso = { public = [\"/public/*\"] } }\n"
    )


class Site:
    def __init__(self, tmp, processes, secrets=(SECRET,), name="sso", ttl=None, extra_module="",
                 keys=None, client_extra=None):
        self.port = harness.free_port()
        self.backend = harness.Backend(tmp, name + "-app")
        processes.backends.append(self.backend)
        client = dict(client_for(self.port), **(client_extra or {}))
        self.provider = oidc.Provider(tmp, [client], ttl=ttl, keys=keys,
                                      accounts={"alice": {"groups": ["staff", "admins"]},
                                                "erin": {"email": "erin@admins.example"},
                                                "kate": {"groups": ["group-with-a-long-name-%03d" % i
                                                                    for i in range(150)]}})
        self.tmp = Path(tmp)
        self.gatehouse = harness.Gatehouse(tmp, sso_config(self.port, self.backend, self.provider,
                                                           secrets, extra_module), name=name)
        processes.gatehouses.append(self.gatehouse)
        self.base = "http://127.0.0.1:%d" % self.port

    def url(self, path):
        return self.base + path

    def stop(self):
        self.provider.stop()


@pytest.fixture(scope="module")
def site(module_processes):
    s = Site(module_processes.tmp_path, module_processes)
    yield s
    s.stop()


def seen(body, name):
    info = json.loads(body)
    return [v for n, v in info["headers"] if n.lower() == name.lower()]


def metric(g, name, label, value):
    key = 'gatehouse_%s{%s="%s"} ' % (name, label, value)
    for line in scrape(admin_port(g)).splitlines():
        if line.startswith(key):
            return float(line.split()[-1])
    return 0.0


def failures(g, reason):
    return metric(g, "sso_login_failures_total", "reason", reason)


def signed_in(site, user="alice", path="/echo/start?x=1"):
    b = oidc.Browser()
    status, headers, body, at = b.login(site.url(path), user=user)
    assert status == 200, (status, body[:300])
    return b, body, at


def test_full_sign_in_returns_to_the_page_with_the_identity(site):
    b, body, at = signed_in(site)
    assert at == site.url("/echo/start?x=1")
    info = json.loads(body)
    assert info["target"] == "/echo/start?x=1"
    assert seen(body, "X-Forwarded-User") == ["alice"]
    assert seen(body, "X-Forwarded-Email") == ["alice@example.com"]
    # The module's cookies never reach the upstream.
    assert not any("gh_sso" in v for v in seen(body, "Cookie"))
    cookies = b.cookies("gh_sso")
    assert "gh_sso" in cookies and not any(n.startswith("gh_sso_login_") for n in cookies)


def test_the_session_needs_no_provider_and_survives_it_going_down(module_processes):
    s = Site(module_processes.tmp_path, module_processes, name="sso-down")
    try:
        b, _, _ = signed_in(s)
        s.provider.stop()
        for _ in range(3):
            status, _, body, _ = b.open(s.url("/echo/later"))
            assert status == 200 and seen(body, "X-Forwarded-User") == ["alice"]
        # A new sign-in needs the provider, which gatehouse asks before sending a browser there
        # (unless it answered within the last second): a clear 502 page, not a dead redirect.
        time.sleep(1.1)
        fresh = oidc.Browser()
        status, _, body, _ = fresh.open(s.url("/echo/new"), follow=False)
        assert status == 502 and b"provider_unreachable" in body
        # Back up: sign-ins work again.
        s.provider.start()
        _, body, _ = signed_in(s, user="zoe")
        assert seen(body, "X-Forwarded-User") == ["zoe"]
    finally:
        s.stop()


def test_a_provider_never_reached_gives_new_logins_a_502_page(module_processes, tmp_path):
    port = harness.free_port()
    backend = harness.Backend(tmp_path, "sso-nop")
    module_processes.backends.append(backend)
    dead = type("Dead", (), {"port": harness.free_port(), "issuer": "http://127.0.0.1:1"})()
    dead.issuer = "http://127.0.0.1:%d" % dead.port
    g = harness.Gatehouse(tmp_path, sso_config(port, backend, dead), name="sso-nop")
    module_processes.gatehouses.append(g)
    r = harness.get(port, "/echo/x")
    assert r.status == 502
    assert b"Sign-in failed" in r.body and b"provider_unreachable" in r.body
    assert failures(g, "provider_unreachable") >= 1


def test_client_identity_headers_are_removed(site):
    # Without a session, on a public path: the spoofed headers are gone.
    r = harness.get(site.port, "/public/x", headers=[("X-Forwarded-User", "admin"),
                                                      ("X-Forwarded-Groups", "root")])
    assert r.status == 200
    assert seen(r.body, "X-Forwarded-User") == [] and seen(r.body, "X-Forwarded-Groups") == []
    # With a session: replaced by the session's.
    b, _, _ = signed_in(site, user="bob")
    status, _, body, _ = b.open(site.url("/echo/h"), headers={"X-Forwarded-User": "admin"})
    assert status == 200 and seen(body, "X-Forwarded-User") == ["bob"]


def test_api_routes_answer_401_with_json(site):
    r = harness.get(site.port, "/api/items")
    assert r.status == 401
    assert r.header("WWW-Authenticate").startswith("Bearer")
    assert json.loads(r.body)["error"] == "unauthorized"


def test_unauthenticated_page_redirects_with_pkce_and_a_state_cookie(site):
    b = oidc.Browser()
    status, headers, _, _ = b.open(site.url("/echo/p"), follow=False)
    assert status == 302
    loc = urllib.parse.urlparse(headers["Location"])
    q = dict(urllib.parse.parse_qsl(loc.query))
    assert loc.netloc == "127.0.0.1:%d" % site.provider.port
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
    assert q["redirect_uri"] == site.url("/oauth2/callback")
    assert q["state"] and q["nonce"] and q["state"] != q["nonce"]
    names = list(b.cookies("gh_sso_login_"))
    assert names == ["gh_sso_login_" + q["state"]]


def test_logins_in_flight_are_bounded(site):
    b = oidc.Browser()
    for _ in range(8):
        assert b.open(site.url("/echo/many"), follow=False)[0] == 302
    assert len(b.cookies("gh_sso_login_")) == 5


def test_callback_refusals(site):
    b = oidc.Browser()
    callback = b.login(site.url("/echo/cb"), stop_at_callback=True)
    assert isinstance(callback, str), callback
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(callback).query))
    assert q["iss"] == site.provider.issuer  # RFC 9207, advertised by the provider
    saved = dict(b.cookies("gh_sso_login_"))
    # A tampered state: no cookie for it.
    bad = callback.replace("state=" + q["state"], "state=" + q["state"][:-2] + "xx")
    before = failures(site.gatehouse, "state")
    assert b.open(bad, follow=False)[0] == 400
    assert failures(site.gatehouse, "state") == before + 1
    # The real one signs in (the tampered one named no login, so it consumed none)...
    status, headers, _, _ = b.open(callback, follow=False)
    assert status == 302 and headers["Location"] == "/echo/cb"
    # ...and the same callback again (state cookie put back) is a replay.
    for name, value in saved.items():
        b.set_cookie(name, value)
    before = failures(site.gatehouse, "state_replay")
    assert b.open(callback, follow=False)[0] == 400
    assert failures(site.gatehouse, "state_replay") == before + 1
    # A callback whose iss is not the provider's is refused, and ends that login.
    b2 = oidc.Browser()
    callback = b2.login(site.url("/echo/cb2"), stop_at_callback=True)
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(callback).query))
    bad_iss = callback.replace(urllib.parse.quote(q["iss"], safe=""), "http%3A%2F%2Fevil")
    assert bad_iss != callback
    before = failures(site.gatehouse, "iss")
    assert b2.open(bad_iss, follow=False)[0] == 400
    assert failures(site.gatehouse, "iss") == before + 1
    assert b2.open(callback, follow=False)[0] == 400  # its state cookie was cleared


def test_no_open_redirect_after_login(site):
    b = oidc.Browser()
    callback = b.login(site.url("//evil.example/x"), stop_at_callback=True)
    assert isinstance(callback, str), callback
    status, headers, _, _ = b.open(callback, follow=False)
    assert status == 302 and headers["Location"] == "/"


def test_tampered_and_truncated_session_cookies_start_a_new_login(site):
    b, _, _ = signed_in(site)
    value = b.cookies("gh_sso")["gh_sso"]
    before = failures(site.gatehouse, "session_cookie")
    for bad in (value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB"), value[: len(value) // 2],
                "x" * 5000):
        c = oidc.Browser()
        c.set_cookie("gh_sso", bad)
        status, headers, _, _ = c.open(site.url("/echo/t"), follow=False)
        assert status == 302 and headers["Location"].startswith(site.provider.issuer)
    assert failures(site.gatehouse, "session_cookie") == before + 3


def test_secret_rotation(module_processes, tmp_path):
    old = Site(tmp_path, module_processes, secrets=(OTHER_SECRET,), name="sso-old")
    try:
        b, _, _ = signed_in(old)
        cookie = b.cookies("gh_sso")["gh_sso"]
        # The same provider and client, behind a gatehouse with the new secret first.
        for secrets, accepted in (((SECRET, OTHER_SECRET), True), ((SECRET,), False)):
            port = old.port
            old.gatehouse.stop()
            g = harness.Gatehouse(tmp_path, sso_config(port, old.backend, old.provider, secrets),
                                  name="sso-rot-%d" % len(secrets))
            module_processes.gatehouses.append(g)
            old.gatehouse = g
            c = oidc.Browser()
            c.set_cookie("gh_sso", cookie)
            status, _, body, _ = c.open(old.url("/echo/rot"), follow=False)
            if accepted:
                assert status == 200 and seen(body, "X-Forwarded-User") == ["alice"]
            else:
                assert status == 302  # a retired key: sign in again
    finally:
        old.stop()


def test_rp_initiated_logout(site):
    b, _, _ = signed_in(site)
    status, headers, _, _ = b.open(site.url("/oauth2/logout?rd=" + urllib.parse.quote(
        site.url("/public/bye"), safe="")), follow=False)
    assert status == 302
    loc = urllib.parse.urlparse(headers["Location"])
    q = dict(urllib.parse.parse_qsl(loc.query))
    assert headers["Location"].startswith(site.provider.issuer + "/session/end")
    assert q["id_token_hint"].count(".") == 2
    assert q["post_logout_redirect_uri"] == site.url("/public/bye")
    assert "gh_sso" not in b.cookies("gh_sso")
    # A redirect target not on the list is dropped.
    b2, _, _ = signed_in(site)
    status, headers, _, _ = b2.open(site.url("/oauth2/logout?rd=https%3A%2F%2Fevil.example"),
                                    follow=False)
    assert "evil" not in headers["Location"]


def bearer_upstream(body):
    auth = seen(body, "Authorization")
    return auth[0] if auth else None


def test_refresh_renews_the_access_token_once_and_ends_a_revoked_session(module_processes,
                                                                         tmp_path):
    # Access tokens live 62 s; renewal starts 60 s before expiry: 2 s after the sign-in.
    s = Site(tmp_path, module_processes, name="sso-refresh", ttl={"AccessToken": 62},
             extra_module="pass_access_token = true\n")
    try:
        g = s.gatehouse
        b, body, _ = signed_in(s)
        first = bearer_upstream(body)
        assert first and first.startswith("Bearer ")
        cookie = b.cookies("gh_sso")["gh_sso"]
        assert metric(g, "sso_refreshes_total", "result", "ok") == 0
        time.sleep(2.5)
        status, _, body, _ = b.open(s.url("/echo/renewed"))
        assert status == 200
        renewed = bearer_upstream(body)
        assert renewed and renewed != first
        assert b.cookies("gh_sso")["gh_sso"] != cookie  # the new tokens went into the cookie
        assert metric(g, "sso_refreshes_total", "result", "ok") == 1
        # A request still carrying the old cookie gets the renewed session, no second renewal.
        old = oidc.Browser()
        old.set_cookie("gh_sso", cookie)
        status, _, body, _ = old.open(s.url("/echo/old"))
        assert status == 200 and bearer_upstream(body) == renewed
        assert metric(g, "sso_refreshes_total", "result", "ok") == 1
        # The provider down at renewal time: the session goes on with what it has.
        time.sleep(2.5)
        s.provider.stop()
        status, _, body, _ = b.open(s.url("/echo/down"))
        assert status == 200 and seen(body, "X-Forwarded-User") == ["alice"]
        assert metric(g, "sso_refreshes_total", "result", "error") >= 1
        # The provider back without the grant (its store is in memory): the renewal is refused,
        # the session ends and the browser is sent to sign in again.
        s.provider.start()
        status, headers, _, _ = b.open(s.url("/echo/gone?q=1"), follow=False)
        assert status == 302 and headers["Location"] == "/echo/gone?q=1"
        assert metric(g, "sso_refreshes_total", "result", "refused") == 1
        assert "gh_sso" not in b.cookies("gh_sso")
    finally:
        s.stop()


def provider_logout(b, url):
    """Follows a logout to the provider and confirms its "sign out?" form."""
    status, headers, body, at = b.open(url)
    page = body.decode(errors="replace")
    action = re.search(r'<form[^>]*id="op.logoutForm"[^>]*>|<form[^>]*>', page)
    form = re.search(r'action="([^"]+)"', action.group(0)) if action else None
    xsrf = re.search(r'name="xsrf" value="([^"]+)"', page)
    assert form and xsrf, page[:500]
    data = urllib.parse.urlencode({"xsrf": xsrf.group(1), "logout": "yes"}).encode()
    return b.open(urllib.parse.urljoin(at, form.group(1)), data=data)


def test_back_channel_logout_ends_every_copy_of_the_session(site):
    g = site.gatehouse
    b, _, _ = signed_in(site, user="carol")
    copy = b.cookies("gh_sso")["gh_sso"]
    before = metric(g, "sso_logouts_total", "kind", "backchannel")
    status, _, _, at = provider_logout(b, site.url("/oauth2/logout?rd=" + urllib.parse.quote(
        site.url("/public/bye"), safe="")))
    assert at.startswith(site.url("/public/bye")), at  # back at the post-logout page
    assert harness.wait_until(
        lambda: metric(g, "sso_logouts_total", "kind", "backchannel") == before + 1, 5)
    # The provider told gatehouse: the cookie a second device kept no longer works.
    other = oidc.Browser()
    other.set_cookie("gh_sso", copy)
    revoked = failures(g, "session_revoked")
    status, headers, _, _ = other.open(site.url("/echo/after"), follow=False)
    assert status == 302 and headers["Location"].startswith(site.provider.issuer)
    assert failures(g, "session_revoked") == revoked + 1
    # Another user's session is untouched.
    b2, _, _ = signed_in(site, user="dave")
    assert b2.open(site.url("/echo/fine"))[0] == 200


def test_route_rules_on_claims(site):
    alice, _, _ = signed_in(site, user="alice")   # in group admins
    erin, _, _ = signed_in(site, user="erin")     # email at admins.example
    bob, _, _ = signed_in(site, user="bob")       # neither
    for b in (alice, erin):
        status, _, body, _ = b.open(site.url("/admin/echo"))
        assert status == 200
    status, _, body, _ = bob.open(site.url("/admin/echo"), follow=False)
    assert status == 403 and b"Access denied" in body
    assert metric(site.gatehouse, "sso_requests_total", "result", "forbidden") >= 1
    assert bob.open(site.url("/echo/ok"))[0] == 200  # other routes stay open to bob


def test_provider_key_rotation(module_processes, tmp_path):
    s = Site(tmp_path, module_processes, name="sso-rotate")
    try:
        g = s.gatehouse
        alice, _, _ = signed_in(s, user="alice")
        # The provider rotates to a new key and drops the old one.
        s.provider.restart(keys=[oidc.make_key("RSA", kid="k2")])
        assert alice.open(s.url("/echo/still"))[0] == 200  # sessions need no provider key
        bob, body, _ = signed_in(s, user="bob")           # an ID token with an unknown kid
        assert seen(body, "X-Forwarded-User") == ["bob"]
        text = scrape(admin_port(g))
        ok = [l for l in text.splitlines()
              if l.startswith("gatehouse_sso_provider_fetches_total{") and 'what="jwks"' in l
              and 'result="ok"' in l]
        assert ok and float(ok[0].split()[-1]) == 2, ok  # the first fetch and one refetch
    finally:
        s.stop()


@pytest.mark.parametrize("kind,alg", [("EC", "ES256"), ("OKP", "EdDSA")])
def test_sign_in_with_ec_and_ed25519_keys(module_processes, tmp_path, kind, alg):
    s = Site(tmp_path, module_processes, name="sso-" + alg.lower(),
             keys=[oidc.make_key(kind, kid="k-" + alg)],
             client_extra={"id_token_signed_response_alg": alg})
    try:
        _, body, _ = signed_in(s, user="frank")
        assert seen(body, "X-Forwarded-User") == ["frank"]
    finally:
        s.stop()


def test_a_code_replayed_with_another_login_state_is_refused(site):
    # An attacker who got a victim's code starts a login of their own and presents it there:
    # the provider refuses it (PKCE: the code was issued for the victim's verifier).
    victim = oidc.Browser()
    callback = victim.login(site.url("/echo/victim"), stop_at_callback=True)
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(callback).query))["code"]
    attacker = oidc.Browser()
    status, headers, _, _ = attacker.open(site.url("/echo/attacker"), follow=False)
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(headers["Location"]).query))
    forged = site.url("/oauth2/callback?" + urllib.parse.urlencode(
        {"code": code, "state": q["state"], "iss": site.provider.issuer}))
    before = failures(site.gatehouse, "token")
    status, _, body, _ = attacker.open(forged, follow=False)
    assert status == 403 and b"Sign-in failed" in body
    assert failures(site.gatehouse, "token") == before + 1
    assert "gh_sso" not in attacker.cookies("gh_sso")


# ---- store = "redis" ------------------------------------------------------------------------

import redis_server  # noqa: E402


@pytest.fixture(scope="module")
def redis_site(module_processes):
    why = redis_server.unavailable()
    if why:
        pytest.skip(why)
    tmp = module_processes.tmp_path / "redis"
    tmp.mkdir()
    redis = redis_server.RedisServer(tmp)
    s = Site(tmp, module_processes, name="sso-redis",
             extra_module='store = "redis"\nredis = "127.0.0.1:%d"\nredis_timeout = "300ms"\n'
                          % redis.port)
    s.redis = redis
    yield s
    s.stop()
    redis.stop()


def stored_sessions(redis):
    return [k for k in redis.cli("KEYS", "gatehouse:sso:s:*").split("\n") if k]


def test_redis_store_keeps_the_session_and_the_cookie_only_its_id(redis_site):
    s = redis_site
    before = set(stored_sessions(s.redis))
    b, body, _ = signed_in(s, user="gina")
    assert seen(body, "X-Forwarded-User") == ["gina"]
    cookie = b.cookies("gh_sso")["gh_sso"]
    assert len(cookie) < 120  # a sealed id, not the tokens
    new = set(stored_sessions(s.redis)) - before
    assert len(new) == 1
    stored = json.loads(s.redis.cli("GET", new.pop()))
    assert stored["sub"] == "gina" and stored["it"].count(".") == 2
    assert b.open(s.url("/echo/again"))[0] == 200


def test_redis_store_revocation_is_immediate(redis_site):
    s = redis_site
    b, _, _ = signed_in(s, user="hank")
    key = [k for k in stored_sessions(s.redis)
           if json.loads(s.redis.cli("GET", k))["sub"] == "hank"][0]
    s.redis.cli("DEL", key)  # an operator (or another gatehouse) ends the session
    status, headers, _, _ = b.open(s.url("/echo/after"), follow=False)
    assert status == 302 and headers["Location"].startswith(s.provider.issuer)


def test_redis_store_back_channel_logout_deletes_the_sessions(redis_site):
    s = redis_site
    b, _, _ = signed_in(s, user="ivan")
    copy = b.cookies("gh_sso")["gh_sso"]
    count = len(stored_sessions(s.redis))
    provider_logout(b, s.url("/oauth2/logout"))
    assert harness.wait_until(lambda: len(stored_sessions(s.redis)) == count - 1, 5)
    other = oidc.Browser()
    other.set_cookie("gh_sso", copy)
    assert other.open(s.url("/echo/after"), follow=False)[0] == 302


def test_redis_store_down_is_a_fast_503_then_recovers(redis_site):
    s = redis_site
    b, _, _ = signed_in(s, user="judy")
    s.redis.stop()
    try:
        t0 = time.monotonic()
        status, _, body, _ = b.open(s.url("/echo/down"), follow=False)
        assert status == 503 and b"session store" in body
        assert time.monotonic() - t0 < 2
        assert failures(s.gatehouse, "store_unavailable") >= 1
    finally:
        s.redis.start()  # same port; the sessions are gone with it (nothing saved)
    time.sleep(1.2)      # past the retry delay
    status, headers, _, _ = b.open(s.url("/echo/back"), follow=False)
    assert status == 302 and headers["Location"].startswith(s.provider.issuer)
    b2, body, _ = signed_in(s, user="judy")
    assert seen(body, "X-Forwarded-User") == ["judy"]


def test_a_large_session_is_split_into_cookie_chunks(site):
    b, body, _ = signed_in(site, user="kate")  # 150 groups: a 6 KB ID token
    groups = seen(body, "X-Forwarded-Groups")[0].split(",")
    assert len(groups) == 150
    chunks = b.cookies("gh_sso")
    assert {"gh_sso", "gh_sso_1", "gh_sso_2"} <= set(chunks), sorted(chunks)
    assert all(len(n) + 1 + len(v) <= 4000 for n, v in chunks.items())
    assert not any("gh_sso" in v for v in seen(body, "Cookie"))
    # A missing chunk is a broken session: sign in again.
    partial = oidc.Browser()
    for name, value in chunks.items():
        if name != "gh_sso_1":
            partial.set_cookie(name, value)
    assert partial.open(site.url("/echo/part"), follow=False)[0] == 302


def test_redis_store_renewal_takes_a_lock_and_updates_the_store(module_processes, tmp_path):
    why = redis_server.unavailable()
    if why:
        pytest.skip(why)
    redis = redis_server.RedisServer(tmp_path)
    s = Site(tmp_path, module_processes, name="sso-redis-refresh", ttl={"AccessToken": 62},
             extra_module='store = "redis"\nredis = "127.0.0.1:%d"\npass_access_token = true\n'
                          % redis.port)
    try:
        b, body, _ = signed_in(s, user="lena")
        first = bearer_upstream(body)
        cookie = b.cookies("gh_sso")["gh_sso"]
        time.sleep(2.5)
        status, _, body, _ = b.open(s.url("/echo/renewed"))
        assert status == 200 and bearer_upstream(body) not in (None, first)
        assert b.cookies("gh_sso")["gh_sso"] == cookie  # the store changed, not the cookie
        keys = [k for k in redis.cli("KEYS", "gatehouse:sso:*").split("\n") if k]
        assert any(k.startswith("gatehouse:sso:lock:") for k in keys), keys
        stored = [json.loads(redis.cli("GET", k)) for k in keys if k.startswith("gatehouse:sso:s:")]
        assert [x["at"] for x in stored] == [bearer_upstream(body)[len("Bearer "):]]
        assert metric(s.gatehouse, "sso_refreshes_total", "result", "ok") == 1
    finally:
        s.stop()
        redis.stop()


def test_two_providers_chosen_per_route(module_processes, tmp_path):
    port = harness.free_port()
    backend = harness.Backend(tmp_path, "sso-two-app")
    module_processes.backends.append(backend)
    corp = oidc.Provider(tmp_path, [client_for(port)])
    partners = oidc.Provider(tmp_path, [client_for(port)])
    try:
        text = (
            "[server]\nworkers = 2\n\n" + harness.modules_toml(("round_robin", "sso")) + "\n"
            + "[[listener]]\nlisten = \"127.0.0.1:%d\"\n\n" % port
            + "[upstream.app]\nservers = [{ address = \"%s\" }]\n\n" % backend.address
            + "".join("[upstream.%s]\nservers = [{ address = \"127.0.0.1:%d\" }]\n\n" % (n, p.port)
                      for n, p in (("corp", corp), ("partners", partners)))
            + "[filter.sso]\nsecrets = [\"%s\"]\ncookie_secure = false\nprovider = \"corp\"\n\n"
            % SECRET
            + "".join("[filter.sso.providers.%s]\nissuer = \"%s\"\nupstream = \"%s\"\n"
                      "client_id = \"gatehouse\"\nclient_secret = \"s3cret-client\"\n\n"
                      % (n, p.issuer, n) for n, p in (("corp", corp), ("partners", partners)))
            + "[[route]]\npath = \"/partners/\"\nupstream = \"app\"\nfilters = [\"sso\"]\n"
            + "filter_config = { sso = { provider = \"partners\" } }\n\n"
            + "[[route]]\npath = \"/\"\nupstream = \"app\"\nfilters = [\"sso\"]\n")
        g = harness.Gatehouse(tmp_path, text, name="sso-two")
        module_processes.gatehouses.append(g)
        base = "http://127.0.0.1:%d" % port
        b = oidc.Browser()
        status, headers, _, _ = b.open(base + "/echo/x", follow=False)
        assert status == 302 and headers["Location"].startswith(corp.issuer)
        status, headers, _, _ = b.open(base + "/partners/echo", follow=False)
        assert status == 302 and headers["Location"].startswith(partners.issuer)
        status, _, body, _ = b.login(base + "/echo/x", user="olga")
        assert status == 200 and seen(body, "X-Forwarded-User") == ["olga"]
        # A corp session is not a partners session: that route signs in at its own provider.
        status, headers, _, _ = b.open(base + "/partners/echo", follow=False)
        assert status == 302 and headers["Location"].startswith(partners.issuer)
    finally:
        corp.stop()
        partners.stop()


def test_check_reports_bad_sso_config_with_file_line_and_key(tmp_path):
    base = (harness.modules_toml(("round_robin", "sso"))
            + "\n[[listener]]\nlisten = \"127.0.0.1:0\"\n"
            "[upstream.app]\nservers = [{ address = \"127.0.0.1:9\" }]\n"
            "[[route]]\npath = \"/\"\nupstream = \"app\"\nfilters = [\"sso\"]\n")
    cases = {
        '[filter.sso]\nsecrets = ["short"]\n': "[filter.sso.secrets]",
        '[filter.sso]\nsecrets = ["%s"]\n[filter.sso.providers.x]\nissuer = "idp"\n'
        'upstream = "u"\nclient_id = "c"\n' % SECRET: "[filter.sso.providers.x.issuer]",
        '[filter.sso]\nsecrets = ["%s"]\nstore = "redis"\nredis = "nowhere"\n' % SECRET:
            "[filter.sso.redis]",
        '[filter.sso]\nsecrets = ["%s"]\n[filter.sso.providers.x]\nissuer = "https://i"\n'
        'upstream = "u"\nclient_id = "c"\nalgs = ["none"]\n' % SECRET:
            "[filter.sso.providers.x.algs]",
    }
    for table, key in cases.items():
        text = base + table
        rc, err = harness.run_check(tmp_path, text)
        assert rc != 0, table
        assert key in err and re.search(r"\.toml:\d+", err), (table, err)
