"""sso: every forged or wrong ID token refused end to end, and counted by reason. A provider of
our own (rogue_op.py) answers the token request with a token made by jwcrypto -- wrong nonce,
iss, aud, azp, expired, nbf in the future, alg none, HS256 keyed with the RSA public key, an
unknown kid (after one refetch of the keys), a crit header, a bad signature, no sub -- and the
test calls gatehouse's callback itself with the state gatehouse issued."""

import json
import time
import urllib.parse

import pytest

import harness
import oidc
from admin_helpers import admin_port, scrape

pytestmark = pytest.mark.skipif(bool(oidc.unavailable()), reason=oidc.unavailable() or "-")

SECRET = "forged-secret-0123456789-abcdefghijklmn"


@pytest.fixture(scope="module")
def rogue_site(module_processes):
    from rogue_op import RogueProvider
    op = RogueProvider()
    tmp = module_processes.tmp_path
    backend = harness.Backend(tmp, "forged-app")
    module_processes.backends.append(backend)
    port = harness.free_port()
    text = (
        "[server]\nworkers = 1\n\n" + harness.modules_toml(("round_robin", "sso")) + "\n"
        + "[admin]\nlisten = \"127.0.0.1:0\"\n\n"
        + "[[listener]]\nlisten = \"127.0.0.1:%d\"\n\n" % port
        + "[upstream.app]\nservers = [{ address = \"%s\" }]\n\n" % backend.address
        + "[upstream.idp]\nservers = [{ address = \"127.0.0.1:%d\" }]\n\n" % op.port
        + "[filter.sso]\nsecrets = [\"%s\"]\ncookie_secure = false\n\n" % SECRET
        + "[filter.sso.providers.rogue]\nissuer = \"%s\"\nupstream = \"idp\"\n" % op.issuer
        + "client_id = \"gatehouse\"\nclient_secret = \"x\"\nalgs = [\"RS256\"]\n"
        + "jwks_cooldown = \"1s\"\n\n"
        + "[[route]]\npath = \"/api/\"\nupstream = \"app\"\nfilters = [\"sso\"]\n"
        + "filter_config = { sso = { bearer = true, on_missing = \"deny\", "
        + "bearer_audience = \"https://api.example\" } }\n\n"
        + "[[route]]\npath = \"/\"\nupstream = \"app\"\nfilters = [\"sso\"]\n")
    g = harness.Gatehouse(tmp, text, name="forged")
    module_processes.gatehouses.append(g)
    g.op = op
    g.base = "http://127.0.0.1:%d" % port
    yield g
    op.stop()


def failures(g, reason):
    for line in scrape(admin_port(g)).splitlines():
        if line.startswith('gatehouse_sso_login_failures_total{reason="%s"} ' % reason):
            return float(line.split()[-1])
    return 0.0


def attempt(g, make_token):
    """Start a login, have the provider answer `make_token(nonce)`, call the callback."""
    b = oidc.Browser()
    status, headers, _, _ = b.open(g.base + "/echo/p", follow=False)
    assert status == 302, status
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(headers["Location"]).query))
    g.op.next_id_token = make_token(q["nonce"])
    callback = g.base + "/oauth2/callback?" + urllib.parse.urlencode(
        {"code": "c0de", "state": q["state"], "iss": g.op.issuer})
    status, headers, body, _ = b.open(callback, follow=False)
    return b, status, headers, body


def test_a_good_token_signs_in(rogue_site):
    g = rogue_site
    b, status, headers, _ = attempt(g, lambda n: g.op.sign(g.op.claims(n)))
    assert status == 302 and headers["Location"] == "/echo/p"
    # The secret went as HTTP Basic, the PKCE verifier in the form.
    auth, form = g.op.token_requests[-1]
    assert auth.startswith("Basic ") and "code_verifier=" in form and "code=c0de" in form
    status, _, body, _ = b.open(g.base + "/echo/again")
    assert status == 200
    assert ["X-Forwarded-User", "mallory"] in json.loads(body)["headers"]


def hs256_with_the_public_key(op, nonce):
    from jwcrypto import jwk
    from jwcrypto.common import base64url_encode
    pem = op.key.export_to_pem()  # the RSA public key, as an attacker can fetch it
    secret = jwk.JWK(kty="oct", k=base64url_encode(pem), kid=op.key.get("kid"))
    return op.sign(op.claims(nonce), key=secret, header={"alg": "HS256"})


CASES = {
    "nonce": lambda op, n: op.sign(op.claims("not-" + n)),
    "iss": lambda op, n: op.sign(op.claims(n, iss="https://elsewhere.example")),
    "aud": lambda op, n: op.sign(op.claims(n, aud="someone-else")),
    "azp": lambda op, n: op.sign(op.claims(n, aud=["gatehouse", "other"])),
    "expired": lambda op, n: op.sign(op.claims(n, exp=int(time.time()) - 3600,
                                              iat=int(time.time()) - 7200)),
    "nbf": lambda op, n: op.sign(op.claims(n, nbf=int(time.time()) + 3600)),
    "claims": lambda op, n: op.sign(op.claims(n, sub=None)),
    "crit": lambda op, n: op.sign_raw({"crit": ["exp"], "exp": 1}, op.claims(n)),
    "alg": lambda op, n: op.unsigned({"alg": "none", "typ": "JWT"}, op.claims(n)),
    "alg-hs256": hs256_with_the_public_key,
    "signature": lambda op, n: op.sign(op.claims(n)).rsplit(".", 1)[0] + "." +
                               op.sign(op.claims(n, sub="x")).rsplit(".", 1)[1],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_forged_tokens_are_refused(rogue_site, case):
    g = rogue_site
    reason = case.split("-")[0]
    before = failures(g, reason)
    b, status, headers, body = attempt(g, lambda n: CASES[case](g.op, n))
    assert status == 403, (case, status, body[:200])
    assert b"Sign-in failed" in body
    assert "gh_sso" not in b.cookies("gh_sso")
    assert failures(g, reason) == before + 1, case


def test_an_unknown_kid_refetches_the_keys_once_then_refuses(rogue_site):
    from jwcrypto import jwk
    g = rogue_site
    stranger = jwk.JWK.generate(kty="RSA", size=2048, kid="stranger", use="sig", alg="RS256")
    seen = {}

    def token(nonce):  # called between the redirect and the callback
        seen["fetches"] = g.op.jwks_fetches
        return g.op.sign(g.op.claims(nonce), key=stranger)
    time.sleep(1.1)  # past jwks_cooldown
    before = failures(g, "unknown_kid")
    _, status, _, _ = attempt(g, token)
    assert status == 403
    assert failures(g, "unknown_kid") == before + 1
    assert g.op.jwks_fetches == seen["fetches"] + 1  # the callback refetched once
    # The provider rotates the key in after gatehouse last read its keys: the refetch finds it.
    def rotated(nonce):
        g.op.published = [g.op.key, stranger]
        return token(nonce)
    time.sleep(1.1)
    _, status, headers, _ = attempt(g, rotated)
    assert status == 302 and headers["Location"] == "/echo/p"
    assert g.op.jwks_fetches == seen["fetches"] + 1


def test_a_refused_token_request_is_a_403(rogue_site):
    g = rogue_site
    before = failures(g, "token")
    _, status, _, _ = attempt(g, lambda n: None)  # the provider answers invalid_grant
    assert status == 403
    assert failures(g, "token") == before + 1


def bearer_rejected(g, reason):
    for line in scrape(admin_port(g)).splitlines():
        if line.startswith('gatehouse_sso_bearer_rejected_total{reason="%s"} ' % reason):
            return float(line.split()[-1])
    return 0.0


def test_bearer_tokens_on_an_api_route(rogue_site):
    g = rogue_site
    op = g.op
    port = int(g.base.rsplit(":", 1)[1])

    def call(token, spoof=True):
        headers = [("Authorization", "Bearer " + token)] if token else []
        if spoof:
            headers.append(("X-Forwarded-User", "admin"))
        return harness.get(port, "/api/echo", headers=headers)

    good = op.sign(op.claims(None, aud="https://api.example", azp="some-client"))
    r = call(good)
    assert r.status == 200, r.body
    users = [v for n, v in json.loads(r.body)["headers"] if n.lower() == "x-forwarded-user"]
    assert users == ["mallory"]
    assert call(None).status == 401
    refused = {
        "aud": op.sign(op.claims(None)),  # the client id, not the API's audience
        "expired": op.sign(op.claims(None, aud="https://api.example",
                                     exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)),
        "alg": op.unsigned({"alg": "none"}, op.claims(None, aud="https://api.example")),
        "signature": good.rsplit(".", 1)[0] + "." + op.sign(op.claims(None)).rsplit(".", 1)[1],
        "malformed": "not-a-jwt",
    }
    for reason, token in refused.items():
        before = bearer_rejected(g, reason)
        r = call(token)
        assert r.status == 401, (reason, r.status)
        assert 'error="invalid_token"' in r.header("WWW-Authenticate"), reason
        assert bearer_rejected(g, reason) == before + 1, reason


def logout_rejected(g, reason):
    for line in scrape(admin_port(g)).splitlines():
        if line.startswith('gatehouse_sso_logout_tokens_rejected_total{reason="%s"} ' % reason):
            return float(line.split()[-1])
    return 0.0


def post_logout_token(g, token):
    port = int(g.base.rsplit(":", 1)[1])
    body = urllib.parse.urlencode({"logout_token": token}).encode() if token is not None else b""
    return harness.request(port, "POST", "/oauth2/backchannel-logout",
                           [("Content-Type", "application/x-www-form-urlencoded")], body)


def logout_claims(op, **changes):
    now = int(time.time())
    c = {"iss": op.issuer, "aud": "gatehouse", "iat": now, "exp": now + 120,
         "jti": "j-%d-%f" % (now, time.monotonic()), "sid": "sid-1",
         "events": {"http://schemas.openid.net/event/backchannel-logout": {}}}
    for k, v in changes.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def test_back_channel_logout_tokens(rogue_site):
    g = rogue_site
    op = g.op
    port = int(g.base.rsplit(":", 1)[1])
    # Two sessions of provider session "sid-1", one of "sid-2".
    sessions = {}
    for name, sid in (("a", "sid-1"), ("b", "sid-1"), ("c", "sid-2")):
        b, status, _, _ = attempt(g, lambda n, sid=sid: op.sign(op.claims(n, sid=sid)))
        assert status == 302
        sessions[name] = b
    assert harness.get(port, "/oauth2/backchannel-logout").status == 405
    refused = {
        "nonce": op.sign(logout_claims(op, nonce="n")),
        "events": op.sign(logout_claims(op, events=None)),
        "no_sid_or_sub": op.sign(logout_claims(op, sid=None)),
        "aud": op.sign(logout_claims(op, aud="other")),
        "alg": op.unsigned({"alg": "none"}, logout_claims(op)),
        "signature": op.sign(logout_claims(op)).rsplit(".", 1)[0] + "." +
                     op.sign(logout_claims(op, sid="x")).rsplit(".", 1)[1],
        "malformed": "abc",
        "no_logout_token": None,
        "jti": op.sign(logout_claims(op, jti=None)),
    }
    for reason, token in refused.items():
        before = logout_rejected(g, reason)
        r = post_logout_token(g, token)
        assert r.status == 400, (reason, r.status, r.body)
        assert json.loads(r.body)["error"] == "invalid_request"
        assert logout_rejected(g, reason) == before + 1, reason
    for b in sessions.values():  # nothing was revoked by those
        assert b.open(g.base + "/echo/still")[0] == 200
    good = op.sign(logout_claims(op), header={"typ": "logout+jwt"})
    assert post_logout_token(g, good).status == 200
    before = logout_rejected(g, "jti_replay")
    assert post_logout_token(g, good).status == 400
    assert logout_rejected(g, "jti_replay") == before + 1
    for name, b in sessions.items():
        status = b.open(g.base + "/echo/after", follow=False)[0]
        assert status == (302 if name in "ab" else 200), name
    # A token naming only the user ends all of the user's sessions.
    assert post_logout_token(g, op.sign(logout_claims(op, sid=None, sub="mallory"))).status == 200
    assert sessions["c"].open(g.base + "/echo/after", follow=False)[0] == 302
