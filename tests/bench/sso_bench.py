#!/usr/bin/env python3
"""SSO benchmark: what a valid session costs per request. One gatehouse worker with three routes
to the same nginx backend page (1 KiB): `/bare/` without the module, `/sso/` with the sso module
and a session cookie from a real sign-in (npm's oidc-provider, tests/oidc), `/api/` with
`bearer = true` and JWTs signed RS256 or ES256 with the provider's keys (the keys cached); and
nginx 1.22 doing oauth2-proxy-style forward auth -- `auth_request` to a local auth endpoint (a
second nginx that only checks the cookie is there: no decryption, so a lower bound on what
oauth2-proxy would cost). Same backend, same run, same wrk (-t1 -c64).

Goals (issue 17): session check <= 15 us CPU per request (gatehouse CPU per request on /sso/
minus on /bare/), req/s on /sso/ >= 0.9x /bare/; bearer verification per request reported.

    tests/bench/sso.sh [--rounds N] [--duration S]     (python3 tests/bench/sso_bench.py --help)

Loopback only; every process started is recorded in --pid-file and killed by PID on exit."""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import (BenchError, Ports, Registry, arm_time_limit, children_of, cpu_ns, log,
                   md_table, nginx_common, parse_wrk, resource_nofile)

HERE = Path(__file__).resolve().parent
TOP = HERE.parent.parent
sys.path.insert(0, str(TOP / "tests" / "integration"))
import oidc  # noqa: E402

SECRET = "bench-secret-0123456789-abcdefghijklmnop"
PAGE = b"<!doctype html><title>page</title>" + b"x" * (1024 - 34)


def backend_conf(tmp, port, nofile):
    return nginx_common(tmp, "backend", 1, nofile, 4096) + f"""
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {tmp}/www;
        location / {{ }}
    }}
}}
"""


def auth_conf(tmp, port, nofile):
    # The local auth endpoint: 204 when the session cookie is there, 401 otherwise.
    return nginx_common(tmp, "auth", 1, nofile, 4096) + f"""
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            if ($cookie_gh_sso = "") {{ return 401; }}
            return 204;
        }}
    }}
}}
"""


def nginx_conf(tmp, port, backend, auth, nofile):
    return nginx_common(tmp, "nginx-fa", 1, nofile, 4096) + f"""
    upstream app {{ server 127.0.0.1:{backend}; keepalive 64; }}
    upstream authsrv {{ server 127.0.0.1:{auth}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /_auth {{
            internal;
            proxy_pass http://authsrv/check;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }}
        location / {{
            auth_request /_auth;
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def gatehouse_conf(port, admin, backend, provider, module_dir):
    return f"""[server]
workers = 1
log_level = "warn"

[modules]
dir = "{module_dir}"
load = ["round_robin", "sso"]

[admin]
listen = "127.0.0.1:{admin}"

[[listener]]
listen = "127.0.0.1:{port}"

[upstream.app]
servers = [{{ address = "127.0.0.1:{backend}" }}]
keepalive = 64

[upstream.idp]
servers = [{{ address = "127.0.0.1:{provider.port}" }}]

[filter.sso]
secrets = ["{SECRET}"]
cookie_secure = false

[filter.sso.providers.bench]
issuer = "{provider.issuer}"
upstream = "idp"
client_id = "bench"
client_secret = "bench-secret"

[[route]]
path = "/bare/"
upstream = "app"

[[route]]
path = "/api/"
upstream = "app"
filters = ["sso"]
filter_config = {{ sso = {{ bearer = true, on_missing = "deny" }} }}

[[route]]
path = "/"
upstream = "app"
filters = ["sso"]
"""


def wait_http(port, proc, name, timeout=30):
    import http.client
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{name} exited during start-up")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/bare/page.html")
            c.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"{name} not answering on {port}")


def bearer_token(key, alg, provider, n=0):
    """A JWT the provider could have issued, signed with its private `key` (a jwcrypto JWK)."""
    from jwcrypto import jws
    now = int(time.time())
    claims = {"iss": provider.issuer, "aud": "bench", "sub": "bench-user-%d" % n, "iat": now,
              "exp": now + 3600, "email": "bench@example.com"}
    t = jws.JWS(json.dumps(claims).encode())
    t.add_signature(key, alg=alg, protected=json.dumps({"alg": alg, "kid": key.get("kid")}))
    return t.serialize(compact=True)


def lua(headers):
    return "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers)


# More distinct tokens than the per-worker cache holds (2 x 1024): every request is verified.
DISTINCT_TOKENS = 4096


def lua_rotating(token_file):
    return f"""local tokens = {{}}
for line in io.lines("{token_file}") do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", nil, {{["Authorization"] = "Bearer " .. tokens[i]}})
end
"""


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gatehouse", required=True)
    ap.add_argument("--module-dir", required=True)
    ap.add_argument("--tmp")
    ap.add_argument("--pid-file")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--out", default=str(HERE / "sso-results.md"))
    ap.add_argument("--command", default="tests/bench/sso.sh")
    a = ap.parse_args(argv)
    why = oidc.unavailable()
    if why:
        print(f"sso bench: {why}", file=sys.stderr)
        return 1
    a.tmp = a.tmp or tempfile.mkdtemp(prefix="gh-sso-bench-")
    tmp = Path(a.tmp)
    tmp.chmod(0o755)
    arm_time_limit(300 + a.rounds * 5 * (a.duration + 10))
    reg = Registry(a.pid_file or str(tmp / "pids"))
    ports = Ports()
    provider = None
    try:
        nofile = resource_nofile()
        (tmp / "www" / "bare").mkdir(parents=True)
        for d in ("", "bare", "sso", "api"):
            (tmp / "www" / d).mkdir(parents=True, exist_ok=True)
            (tmp / "www" / d / "page.html").write_bytes(PAGE)
        for p in tmp.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        bp, ap_, np_, gp, admin = (ports.get() for _ in range(5))
        nginx_procs = []
        for name, text in (("backend", backend_conf(tmp, bp, nofile)),
                           ("auth", auth_conf(tmp, ap_, nofile)),
                           ("nginx-fa", nginx_conf(tmp, np_, bp, ap_, nofile))):
            (tmp / f"{name}.conf").write_text(text)
            p = reg.popen(["nginx", "-c", str(tmp / f"{name}.conf"), "-p", str(tmp), "-e",
                           str(tmp / f"{name}-error.log")], "nginx",
                          stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            nginx_procs.append(p)
        time.sleep(0.5)
        for p in nginx_procs:
            for kid in children_of(p.pid):
                reg.adopt(kid)

        keys = [oidc.make_key("RSA", kid="rs"), oidc.make_key("EC", kid="es")]
        client = {"client_id": "bench", "client_secret": "bench-secret",
                  "redirect_uris": [f"http://127.0.0.1:{gp}/oauth2/callback"],
                  "grant_types": ["authorization_code", "refresh_token"],
                  "response_types": ["code"]}
        provider = oidc.Provider(tmp, [client], keys=keys)
        (tmp / "gatehouse.toml").write_text(
            gatehouse_conf(gp, admin, bp, provider, Path(a.module_dir).resolve()))
        g = reg.popen([a.gatehouse, "-c", str(tmp / "gatehouse.toml")], "gatehouse",
                      stdout=open(tmp / "gatehouse.log", "w"), stderr=subprocess.STDOUT)
        wait_http(gp, g, "gatehouse")
        wait_http(np_, nginx_procs[2], "nginx")

        browser = oidc.Browser()
        status, _, body, _ = browser.login(f"http://127.0.0.1:{gp}/sso/page.html", user="bench")
        if status != 200 or body != PAGE:
            raise BenchError(f"sign-in for the session cookie failed: {status} {body[:200]!r}")
        cookie = browser.cookies("gh_sso")["gh_sso"]

        def fresh_cookie():
            # A browser stores the cookie the idle-timeout slide sends once a minute; wrk does
            # not: each round signs in again, so the cookie is never a minute old.
            b = oidc.Browser()
            status, _, body, _ = b.login(f"http://127.0.0.1:{gp}/sso/page.html", user="bench")
            if status != 200:
                raise BenchError(f"sign-in failed: {status}")
            return [("Cookie", "gh_sso=" + b.cookies("gh_sso")["gh_sso"])]
        from jwcrypto import jwk
        rs_key, es_key = jwk.JWK(**keys[0]), jwk.JWK(**keys[1])
        rs = bearer_token(rs_key, "RS256", provider)
        es = bearer_token(es_key, "ES256", provider)
        log(f"signing {DISTINCT_TOKENS} RS256 and ES256 tokens")
        for name, key, alg in (("rs", rs_key, "RS256"), ("es", es_key, "ES256")):
            (tmp / f"{name}-tokens.txt").write_text("".join(
                bearer_token(key, alg, provider, i) + "\n" for i in range(DISTINCT_TOKENS)))

        scenarios = [
            ("gatehouse, no module (/bare/)", gp, "/bare/page.html", [], [g.pid]),
            ("gatehouse sso, session cookie", gp, "/sso/page.html", fresh_cookie, [g.pid]),
            ("gatehouse sso, bearer RS256, one token (verified once)", gp, "/api/page.html",
             [("Authorization", f"Bearer {rs}")], [g.pid]),
            ("gatehouse sso, bearer ES256, one token (verified once)", gp, "/api/page.html",
             [("Authorization", f"Bearer {es}")], [g.pid]),
            ("gatehouse sso, bearer RS256, 4096 tokens (each verified)", gp, "/api/page.html",
             tmp / "rs-tokens.txt", [g.pid]),
            ("gatehouse sso, bearer ES256, 4096 tokens (each verified)", gp, "/api/page.html",
             tmp / "es-tokens.txt", [g.pid]),
            ("nginx auth_request + auth endpoint", np_, "/page.html",
             [("Cookie", f"gh_sso={cookie}")],
             [p.pid for p in nginx_procs[1:]] + [k for p in nginx_procs[1:]
                                                  for k in children_of(p.pid)]),
        ]
        for name, port, path, headers, _ in scenarios:  # every scenario answers 200 first
            import http.client
            if isinstance(headers, Path):
                first = headers.read_text().split("\n", 1)[0]
                headers = [("Authorization", "Bearer " + first)]
            elif callable(headers):
                headers = headers()
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", path, headers=dict(headers))
            r = c.getresponse()
            body = r.read()
            if r.status != 200 or body != PAGE:
                raise BenchError(f"{name}: {r.status} {body[:200]!r}")
        results = {name: [] for name, *_ in scenarios}
        for rnd in range(a.rounds):
            for name, port, path, headers, pids in scenarios:
                script = tmp / "req.lua"
                script.write_text(lua_rotating(headers) if isinstance(headers, Path)
                                  else lua(headers() if callable(headers) else headers))
                cmd = ["wrk", "-t1", f"-c{a.conns}", f"-d{a.duration}s", "--latency", "-s",
                       str(script), f"http://127.0.0.1:{port}{path}"]
                if rnd == 0:  # warm-up
                    reg.run(cmd[:3] + ["-d2s"] + cmd[4:], "wrk", 30)
                before = cpu_ns(pids)
                rc, out, err = reg.run(cmd, "wrk", a.duration + 30)
                used = cpu_ns(pids) - before
                w = parse_wrk(out)
                w["cpu_us"] = used / 1000 / max(w["requests"], 1)
                results[name].append(w)
                log(f"round {rnd + 1} {name}: {w['rps']:.0f} req/s, {w['cpu_us']:.1f} us CPU/req, "
                    f"p99 {w['p99']:.2f} ms, errors {w['errors']}")

        med = {n: {k: statistics.median(r[k] for r in rs) for k in ("rps", "cpu_us", "p99")}
               for n, rs in results.items()}
        errors = {n: sum(r["errors"] for r in rs) for n, rs in results.items()}
        bare = med["gatehouse, no module (/bare/)"]
        sso = med["gatehouse sso, session cookie"]
        check_us = sso["cpu_us"] - bare["cpu_us"]
        rows = [[n, f"{m['rps']:.0f}", f"{m['rps'] / bare['rps']:.3f}", f"{m['cpu_us']:.1f}",
                 f"{m['cpu_us'] - bare['cpu_us']:+.1f}", f"{m['p99']:.2f}", str(errors[n])]
                for n, m in med.items()]
        nginx = med["nginx auth_request + auth endpoint"]
        lines = [
            "# sso: the cost of a session per request", "",
            f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; `{a.command}`; "
            f"{a.rounds} rounds of {a.duration} s per scenario, medians; wrk -t1 -c{a.conns}, "
            "1 KiB page from the same nginx backend; one gatehouse worker, nginx with one worker "
            "(its CPU below includes the auth endpoint's nginx worker).", "",
            *md_table(["scenario", "req/s", "÷ bare", "CPU µs/req", "vs bare", "p99 ms",
                       "errors"], rows), "",
            f"- session check: **{check_us:.1f} µs CPU per request** (goal ≤ 15: "
            f"{'met' if check_us <= 15 else 'NOT met'}); req/s {sso['rps'] / bare['rps']:.3f}× "
            f"the bare route (goal ≥ 0.9: {'met' if sso['rps'] >= 0.9 * bare['rps'] else 'NOT met'}).",
            "- bearer tokens, keys cached, CPU per request above the bare route: a token verified "
            "for each request — RS256 "
            f"{med['gatehouse sso, bearer RS256, 4096 tokens (each verified)']['cpu_us'] - bare['cpu_us']:.1f} µs, "
            "ES256 "
            f"{med['gatehouse sso, bearer ES256, 4096 tokens (each verified)']['cpu_us'] - bare['cpu_us']:.1f} µs "
            "(OpenSSL alone: `openssl speed rsa2048 ecdsap256`); a client's token verified once "
            "per worker and then taken from the cache — RS256 "
            f"{med['gatehouse sso, bearer RS256, one token (verified once)']['cpu_us'] - bare['cpu_us']:.1f} µs, "
            "ES256 "
            f"{med['gatehouse sso, bearer ES256, one token (verified once)']['cpu_us'] - bare['cpu_us']:.1f} µs.",
            f"- against nginx forward auth: gatehouse with sessions {sso['rps'] / nginx['rps']:.2f}× "
            f"its req/s at {sso['cpu_us'] / nginx['cpu_us']:.2f}× its CPU per request.",
        ]
        Path(a.out).write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
        return 0
    except BenchError as e:
        print(f"sso bench: {e}", file=sys.stderr)
        return 1
    finally:
        if provider is not None:
            provider.stop()
        reg.cleanup()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
