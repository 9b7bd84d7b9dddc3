"""A real OpenID provider for the sso tests: npm's oidc-provider (tests/oidc, pinned by its
package-lock.json, installed by contrib/scripts/deps.sh with `npm ci`), started on 127.0.0.1
with the clients and signing keys a test gives it (keys made here with jwcrypto), and a browser
stand-in that keeps cookies the way a browser does (by host, not port) and fills in the
provider's development login and consent forms."""

import http.cookiejar
import json
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import harness

OIDC_DIR = Path(__file__).resolve().parent.parent / "oidc"
PROVIDER_JS = OIDC_DIR / "provider.mjs"


def unavailable():
    """Why the provider cannot run here ("" when it can)."""
    if not shutil.which("node"):
        return "node is not installed (contrib/scripts/deps.sh installs nodejs)"
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        return "tests/oidc/node_modules is missing (contrib/scripts/deps.sh runs npm ci there)"
    try:
        import jwcrypto  # noqa: F401
    except ImportError:
        return "python3-jwcrypto is not installed (contrib/scripts/deps.sh installs it)"
    return ""


def make_key(kind="RSA", kid="k1"):
    """A private JWK (as a dict) for the provider's JWKS."""
    from jwcrypto import jwk
    if kind == "RSA":
        key = jwk.JWK.generate(kty="RSA", size=2048, kid=kid, use="sig", alg="RS256")
    elif kind == "EC":
        key = jwk.JWK.generate(kty="EC", crv="P-256", kid=kid, use="sig", alg="ES256")
    else:
        key = jwk.JWK.generate(kty="OKP", crv="Ed25519", kid=kid, use="sig", alg="EdDSA")
    return json.loads(key.export_private())


class Provider:
    """oidc-provider on 127.0.0.1:PORT (chosen before start: the issuer names it)."""

    def __init__(self, workdir, clients, keys=None, ttl=None, port=0, accounts=None,
                 host="127.0.0.1"):
        """host: the name in the issuer URL (it listens on 127.0.0.1 either way; "localhost"
        makes it another site than gatehouse on 127.0.0.1, as a real provider is)."""
        self.workdir = Path(workdir)
        self.port = port or harness.free_port()
        self.issuer = "http://%s:%d" % (host, self.port)
        self.keys = keys or [make_key()]
        self.clients = clients
        self.ttl = ttl or {}
        self.accounts = accounts or {}
        self.proc = None
        self.start()

    def start(self):
        conf = self.workdir / ("provider-%d.json" % self.port)
        conf.write_text(json.dumps({"port": self.port, "issuer": self.issuer,
                                    "jwks": {"keys": self.keys}, "clients": self.clients,
                                    "ttl": self.ttl, "accounts": self.accounts}))
        self.log_path = self.workdir / ("provider-%d.log" % self.port)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(["node", str(PROVIDER_JS), str(conf)], stdout=log,
                                         stderr=log, stdin=subprocess.DEVNULL, cwd=str(OIDC_DIR))

        def listening():  # this start's line, not an earlier one's
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return ("listening on %d" % self.port).encode() in f.read()
        ok = harness.wait_until(lambda: self.proc.poll() is not None or listening(), 20)
        if not ok or self.proc.poll() is not None:
            raise RuntimeError("oidc-provider did not start:\n" + self.log_path.read_text())

    def stop(self):
        if self.proc is not None:
            harness._kill(self.proc)
            self.proc = None

    def restart(self, keys=None):
        self.stop()
        if keys is not None:
            self.keys = keys
        self.start()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Browser:
    """Follows redirects (or not), keeps cookies per host, submits the provider's forms."""

    def __init__(self, context=None):
        """context: the SSLContext for https URLs (the test CA's)."""
        self.jar = http.cookiejar.CookieJar()
        https = urllib.request.HTTPSHandler(context=context)
        self.follow = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar),
                                                  https)
        self.single = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar),
                                                  https, NoRedirect)

    def open(self, url, data=None, headers=None, follow=True):
        """(status, headers, body, final url); HTTP errors are answers too."""
        req = urllib.request.Request(url, data=data, headers=headers or {})
        try:
            with (self.follow if follow else self.single).open(req, timeout=10) as r:
                return r.status, r.headers, r.read(), r.geturl()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read(), e.geturl()

    def cookies(self, prefix=""):
        return {c.name: c.value for c in self.jar if c.name.startswith(prefix)}

    def set_cookie(self, name, value, domain="127.0.0.1", path="/"):
        self.jar.set_cookie(http.cookiejar.Cookie(
            0, name, value, None, False, domain, False, False, path, True, False, None, False,
            None, None, {}))

    def login(self, url, user="alice", stop_at_callback=False):
        """Starts at `url` (a protected page), signs in as `user` at the provider, consents, and
        comes back. Returns the last answer; with stop_at_callback, the callback URL instead of
        following it."""
        status, headers, body, at = self.open(url)
        for _ in range(4):
            page = body.decode(errors="replace")
            form = re.search(r'<form[^>]*action="([^"]+)"[^>]*method="post"', page)
            if not form:
                break
            action = urllib.parse.urljoin(at, form.group(1))
            fields = dict(re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"',
                                     page))
            if 'name="login"' in page:
                fields.update({"login": user, "password": "any"})
            data = urllib.parse.urlencode(fields).encode()
            if stop_at_callback:
                status, headers, body, at = self._to_callback(action, data)
                if at is not None and "/oauth2/callback" in at:
                    return at
                if status is None:
                    break
            else:
                status, headers, body, at = self.open(action, data=data)
        return status, headers, body, at

    def _to_callback(self, url, data):
        """Follows the provider's redirects by hand until one points at the callback."""
        status, headers, body, at = self.open(url, data=data, follow=False)
        for _ in range(10):
            loc = headers.get("Location") if headers else None
            if status not in (301, 302, 303, 307) or not loc:
                return status, headers, body, at
            nxt = urllib.parse.urljoin(at, loc)
            if "/oauth2/callback" in nxt:
                return status, headers, body, nxt
            status, headers, body, at = self.open(nxt, follow=False)
        return None, None, b"", None
