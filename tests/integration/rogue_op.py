"""An OpenID provider that forges: discovery, a JWKS and a token endpoint that answers whatever
ID token the test sets next -- tokens signed (or not) by jwcrypto, a different tool from the
module's OpenSSL, to drive the module's refusals end to end. A thread of the test process on
127.0.0.1; no authorization endpoint logic (the test calls gatehouse's callback itself)."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from jwcrypto import jwk, jws
from jwcrypto.common import base64url_encode


class RogueProvider:
    def __init__(self, client_id="gatehouse"):
        self.client_id = client_id
        self.key = jwk.JWK.generate(kty="RSA", size=2048, kid="rogue-1", use="sig", alg="RS256")
        self.published = [self.key]
        self.next_id_token = None
        self.jwks_fetches = 0
        self.token_requests = []
        op = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def reply(self, status, doc):
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/.well-known/openid-configuration":
                    return self.reply(200, op.metadata())
                if self.path == "/jwks":
                    op.jwks_fetches += 1
                    return self.reply(200, {"keys": [json.loads(k.export_public())
                                                     for k in op.published]})
                self.reply(404, {})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                op.token_requests.append((self.headers.get("Authorization"),
                                          self.rfile.read(length).decode()))
                if self.path != "/token" or op.next_id_token is None:
                    return self.reply(400, {"error": "invalid_grant"})
                self.reply(200, {"access_token": "at", "token_type": "Bearer", "expires_in": 300,
                                 "id_token": op.next_id_token})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.issuer = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def metadata(self):
        return {"issuer": self.issuer, "authorization_endpoint": self.issuer + "/auth",
                "token_endpoint": self.issuer + "/token", "jwks_uri": self.issuer + "/jwks",
                "end_session_endpoint": self.issuer + "/logout",
                "authorization_response_iss_parameter_supported": True}

    def claims(self, nonce, **changes):
        now = int(time.time())
        c = {"iss": self.issuer, "sub": "mallory", "aud": self.client_id, "iat": now,
             "exp": now + 300, "nonce": nonce}
        for k, v in changes.items():
            if v is None:
                c.pop(k, None)
            else:
                c[k] = v
        return c

    def sign(self, claims, key=None, header=None):
        key = key or self.key
        h = {"alg": "RS256", "kid": key.get("kid"), "typ": "JWT"}
        h.update(header or {})
        token = jws.JWS(json.dumps(claims).encode())
        token.add_signature(key, alg=h["alg"], protected=json.dumps(h))
        return token.serialize(compact=True)

    def sign_raw(self, header, claims, key=None):
        """RS256 over any header (jwcrypto refuses to sign an unknown `crit`): the signature
        made with the key's private part through `cryptography`, which jwcrypto wraps."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        key = key or self.key
        h = {"alg": "RS256", "kid": key.get("kid"), "typ": "JWT"}
        h.update(header)
        signing_input = (base64url_encode(json.dumps(h)) + "." +
                         base64url_encode(json.dumps(claims))).encode()
        sig = key.get_op_key("sign").sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return signing_input.decode() + "." + base64url_encode(sig)

    @staticmethod
    def unsigned(header, claims, signature=b""):
        return ".".join([base64url_encode(json.dumps(header)), base64url_encode(json.dumps(claims)),
                         base64url_encode(signature) if signature else ""])

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
