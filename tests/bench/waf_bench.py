#!/usr/bin/env python3
"""WAF benchmark: gatehouse's waf module against nginx 1.22 with Debian's ModSecurity connector
(libnginx-mod-http-modsecurity), both on libmodsecurity 3 with the same OWASP CRS 3.3.4 rules
and engine settings, in front of the same nginx backend, one worker each.

Run through tests/bench/waf.sh. Standard library only; the process registry, nginx start-up,
wrk parsing, CPU accounting from /proc and the table helpers are bench.py's. All traffic is on
127.0.0.1; every process started is recorded in --pid-file and killed by PID on exit.

Workloads (clean traffic: no CRS rule may match, checked through gatehouse's rule-hit counter
before the rounds, and every measured response must be a 2xx):
  get   GET of a small HTML page (phases 1-4: the page is text/html, so phase 4 inspects it)
  form  POST of a 4 KiB application/x-www-form-urlencoded form (phase 2 parses ARGS_POST),
        answered with a small HTML page (phase 4 again)
  json  POST of a 64 KiB application/json document (the JSON body processor, rule 200001),
        answered with a small JSON object (not a response_types type: no phase 4)
"""

import argparse
import datetime
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

from bench import (CLK_TCK, BenchError, Ports, Proxy, Registry, Stub, children_cpu_s,
                   children_of, cpu_ticks, fmt, log, md_table, median, nginx_common,
                   arm_time_limit, parse_wrk, report_failure, resource_nofile, text_table,
                   to_ms, versions)

HERE = Path(__file__).resolve().parent
TOP = HERE.parent.parent
sys.path.insert(0, str(TOP / "tests" / "waf"))
import modsec_text  # noqa: E402
from modsec_text import CRS_RULES, CRS_SETUP, MODSEC_NGINX_MODULE, directive_drift  # noqa: E402

HOST = "shop.example.com"
# wrk holds back the first request of each connection this long (its Lua delay()), so the proxy
# has accepted every connection before the first request arrives (see Workload.lua).
START_DELAY_MS = 250
FORM_BYTES = 4096
JSON_BYTES = 64 * 1024
PAGE_BYTES = 1024

# --------------------------------------------------------------------------------------------
# The rules both proxies run: gatehouse's from [filter.waf], nginx's the same text written out by
# tests/waf/modsec_text.py (same settings, base rules, CRS files, order).

PARANOIA = 1
RESPONSE_TYPES = modsec_text.DEFAULT_RESPONSE_TYPES
INBOUND_THRESHOLD = modsec_text.INBOUND_THRESHOLD
OUTBOUND_THRESHOLD = modsec_text.OUTBOUND_THRESHOLD


def nginx_rules_text():
    try:
        return modsec_text.nginx_rules_text("on", PARANOIA, RESPONSE_TYPES)
    except FileNotFoundError as e:
        raise BenchError(str(e)) from e


# --------------------------------------------------------------------------------------------
# Payloads: deterministic, realistic and clean (no CRS rule at paranoia level 1 matches them).

SENTENCES = [
    "We run a small bakery near the market square and have ordered from you for two years now.",
    "The last delivery arrived on time and everything was packed well.",
    "Please leave parcels with the neighbour at number twelve if nobody answers the door.",
    "The side gate is usually open during the day, the front door is locked after six.",
    "We would like the invoices sent to the accounts address rather than the shop.",
    "Our opening hours change in December, so deliveries before nine work best for us.",
    "The blue boxes can be collected when the driver brings the next order.",
    "Thank you for the quick reply about the missing flour last month.",
    "Could the driver call ahead when the van is about ten minutes away.",
    "We are happy with the new paper bags, they are much stronger than the old ones.",
    "The car park behind the building is free for loading in the morning.",
    "Two of the glass jars in the last order were cracked, a refund would be appreciated.",
    "We plan to open a second shop in the spring and will need larger orders then.",
    "The oat milk was very popular with our customers, please keep it in the range.",
    "Everything else is fine, many thanks to the whole team for the friendly service.",
]


def prose(n_chars, start=0):
    """Sentences from SENTENCES, cycling from `start`, cut at a word to at most n_chars."""
    out, i = "", start
    while len(out) < n_chars:
        out += ("" if not out else " ") + SENTENCES[i % len(SENTENCES)]
        i += 1
    cut = out[:n_chars]
    if len(out) > n_chars and " " in cut:
        cut = cut[:cut.rfind(" ")]
    return cut.rstrip()


def html_page(size=PAGE_BYTES):
    head = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<title>Sourdough loaf, 800 g | Corner Bakery</title>\n"
            "<link rel=\"stylesheet\" href=\"/static/site.css\">\n</head>\n<body>\n"
            "<header><a href=\"/\">Corner Bakery</a> <nav><a href=\"/shop\">Shop</a> "
            "<a href=\"/account\">Account</a> <a href=\"/basket\">Basket (2)</a></nav></header>\n"
            "<main>\n<h1>Sourdough loaf, 800 g</h1>\n<p class=\"price\">4.20 GBP</p>\n<p>")
    tail = ("</p>\n<form method=\"post\" action=\"/basket/add\"><input type=\"hidden\" "
            "name=\"sku\" value=\"BK-1042\"><button>Add to basket</button></form>\n</main>\n"
            "<footer>Corner Bakery, 14 Market Street</footer>\n</body>\n</html>\n")
    room = size - len(head) - len(tail)
    text = prose(room)
    return (head + text + " " * (room - len(text)) + tail).encode()


FORM_RESPONSE = (b"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                 b"<title>Profile saved</title></head>\n<body><main><h1>Thank you</h1>"
                 b"<p>Your details were saved.</p><p><a href=\"/account\">Back to your account"
                 b"</a></p></main></body></html>\n")
JSON_RESPONSE = b'{"status":"accepted","batch":"2026-12-07-0042"}\n'


def form_body(size=FORM_BYTES):
    """A customer profile form, URL-encoded as a browser sends it, exactly `size` bytes."""
    fields = [
        ("csrf_token", "Jm4Y2kqQx8H3tWv0bR6nLs9PzD1cAeFgUiKo7MyTpN5"),
        ("first_name", "Jane"), ("last_name", "Doe"), ("email", "jane.doe@example.com"),
        ("phone", "+44 20 7946 0958"), ("company", "Corner Bakery Ltd"),
        ("address_line1", "14 Market Street"), ("address_line2", "Unit 3"),
        ("city", "Norwich"), ("postcode", "NR2 1ND"), ("country", "GB"),
        ("delivery_window", "morning"), ("newsletter", "1"), ("marketing_sms", "0"),
        ("preferred_contact", "email"), ("vat_number", "GB123456789"),
        ("delivery_notes", prose(400, 2)),
    ]
    enc = urllib.parse.urlencode(fields)  # spaces as '+', '@' as %40, like a browser
    prefix = enc + "&about_us="
    room = size - len(prefix)
    # Grow the text until its encoding fills the room, then pad the last word with '+'
    # (encoded spaces).
    text = prose(room, 5)
    while len(urllib.parse.quote_plus(text)) > room:
        text = text[:text.rfind(" ")]
    body = prefix + urllib.parse.quote_plus(text)
    body += "+" * (size - len(body))
    assert len(body) == size, len(body)
    return body.encode()


def json_body(size=JSON_BYTES):
    """A batch of product reviews as a shop's back office posts them, exactly `size` bytes
    (the whitespace before the closing brace pads it); few enough leaves (under the engine's
    SecArgumentsLimit of 1,000 arguments) that rule 200007 keeps out of it."""
    authors = ["Anna K.", "Tom B.", "Priya S.", "Marek W.", "Lucy H.", "Sam O.", "Ines F."]
    titles = ["Lovely crust and a soft crumb", "Good value for a weekly loaf",
              "Keeps well for three days", "Our favourite for weekend breakfasts",
              "Arrived fresh and well packed", "A bit dense but tasty", "Great with soup"]
    doc = {"batch": "2026-12-07-0042", "source": "storefront", "currency": "GBP",
           "reviews": []}
    i = 0
    while True:
        review = {"product_id": 10234 + i % 40, "sku": f"BK-{1000 + i % 40}",
                  "rating": 3 + i % 3, "title": titles[i % len(titles)],
                  "author": authors[i % len(authors)], "verified": i % 4 != 0,
                  "body": prose(560 + 7 * (i % 9), i)}
        doc["reviews"].append(review)
        text = json.dumps(doc, separators=(",", ":"))
        if len(text) > size - 2:
            doc["reviews"].pop()
            break
        i += 1
    text = json.dumps(doc, separators=(",", ":"))
    text = text[:-1] + " " * (size - len(text)) + "}"
    assert len(text) == size
    json.loads(text)
    return text.encode(), len(doc["reviews"])


COMMON_HEADERS = [
    ("Host", HOST),
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
    ("Accept-Language", "en-GB,en;q=0.5"),
    ("Accept-Encoding", "gzip, deflate, br"),
    ("Cookie", "sid=Q2xlYW5TZXNzaW9uSWQ0Mg; theme=light"),
]
HTML_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


class Workload:
    def __init__(self, key, title, method, path, headers, body, expect_type, expect_body,
                 conns, duration_factor=1):
        self.key, self.title, self.method, self.path = key, title, method, path
        self.headers, self.body = headers, body
        self.expect_type, self.expect_body = expect_type, expect_body
        # Connections: enough to keep the proxy busy (it needs ~1.4 ms of CPU per GET, ~8 ms
        # per form and ~150 ms per JSON document through the CRS) with latencies well under
        # wrk's 10 s timeout; the JSON runs are longer to complete a few dozen requests.
        self.conns, self.duration_factor = conns, duration_factor

    def lua(self, threads):
        """The wrk script: method, headers and body (read from a file: no quoting issues), and
        a delay() that holds back the first request of each connection by START_DELAY_MS.
        Without it, wrk's connections and their first requests arrive together, and a proxy
        that spends milliseconds of CPU per request (both do here) accepts one connection per
        turn of its event loop while it inspects the requests of those it has: depending on
        who wins that race, a few dozen connections wait seconds in the listen queue, and p99
        becomes a coin toss (seen with both proxies: 54 connections still unaccepted 0.3 s
        into a form run, 5 still waiting 7 s later, p99 6 s instead of 0.45 s). wrk starts
        a request's latency clock after its delay; the delay is taken out of req/s."""
        per_thread = self.conns // threads
        lines = [f'wrk.method = "{self.method}"']
        for k, v in self.headers:
            lines.append(f'wrk.headers["{k}"] = "{v}"')
        if self.body is not None:
            lines += [f'local f = assert(io.open("{self.body_file}", "rb"))',
                      "wrk.body = f:read(\"*a\")", "f:close()"]
        lines += [f"local held = {per_thread}", "function delay()",
                  "    if held > 0 then", "        held = held - 1",
                  f"        return {START_DELAY_MS}", "    end", "    return 0", "end"]
        return "\n".join(lines) + "\n"


def workloads(page):
    form = form_body()
    js, reviews = json_body()
    get_h = COMMON_HEADERS + [("Accept", HTML_ACCEPT)]
    post_h = COMMON_HEADERS + [("Origin", f"https://{HOST}"),
                               ("Referer", f"https://{HOST}/account/profile")]
    return [
        Workload("get", f"GET of a {len(page)}-byte HTML page", "GET", "/product/sourdough.html",
                 get_h, None, "text/html", page, 64),
        Workload("form", f"POST, {len(form)}-byte urlencoded form", "POST", "/account/profile",
                 post_h + [("Accept", HTML_ACCEPT),
                           ("Content-Type", "application/x-www-form-urlencoded")],
                 form, "text/html", FORM_RESPONSE, 64),
        Workload("json", f"POST, {len(js)}-byte JSON ({reviews} reviews)", "POST",
                 "/api/reviews/import",
                 post_h + [("Accept", "application/json"), ("Content-Type", "application/json")],
                 js, "application/json", JSON_RESPONSE, 8, 2),
    ]


# --------------------------------------------------------------------------------------------
# Configurations


def backend_conf(tmp, port, status, nofile):
    """nginx, 1 worker: the page from a file; the POST targets answered by `return` (nginx reads
    and discards the request body first)."""
    form = FORM_RESPONSE.decode().replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    js = JSON_RESPONSE.decode().replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return nginx_common(tmp, "backend", 1, nofile, 4096) + f"""
    default_type application/octet-stream;
    types {{ text/html html; }}
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    open_file_cache max=16 inactive=300s;
    open_file_cache_valid 300s;
    client_body_buffer_size 128k;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {tmp}/www;
        location = /account/profile {{
            default_type "text/html; charset=utf-8";
            return 200 "{form}";
        }}
        location = /api/reviews/import {{
            default_type application/json;
            return 200 "{js}";
        }}
    }}
    server {{
        listen 127.0.0.1:{status};
        location / {{ stub_status; }}
    }}
}}
"""


def nginx_waf_conf(tmp, port, backend, rules_file, nofile):
    return f"load_module {MODSEC_NGINX_MODULE};\n" + nginx_common(
        tmp, "nginx-waf", 1, nofile, 4096) + f"""
    upstream app {{
        server 127.0.0.1:{backend};
        keepalive 64;
        keepalive_requests 100000000;
        keepalive_timeout 60s;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        # The connector reads the whole request body before phase 2: in memory up to this
        # size (nginx's default, 16 KiB, would write every 64 KiB body to a temp file).
        client_body_buffer_size 128k;
        client_max_body_size 1m;
        modsecurity on;
        modsecurity_rules_file {rules_file};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_buffer_size 16k;
            proxy_buffers 8 16k;
        }}
    }}
}}
"""


def gatehouse_waf_conf(port, admin, backend, module_dir):
    return f"""# gatehouse waf benchmark: the CRS in blocking mode, the waf module's defaults otherwise
[server]
workers = 1
log_level = "warn"

[admin]
listen = "127.0.0.1:{admin}"

[modules]
dir = "{module_dir}"
load = ["round_robin", "waf"]

[[listener]]
name = "bench"
listen = "127.0.0.1:{port}"

[upstream.app]
balancer = "round_robin"
servers = [{{ address = "127.0.0.1:{backend}" }}]
keepalive = 64

[filter.waf]
crs = true
mode = "on"
paranoia = {PARANOIA}

[[route]]
name = "site"
path = "/"
upstream = "app"
filters = ["waf"]
"""


# --------------------------------------------------------------------------------------------
# HTTP helpers (raw sockets, loopback only)


def request(port, w, timeout=10.0):
    """One request of workload w on a fresh connection; returns (status, headers, body)."""
    head = f"{w.method} {w.path} HTTP/1.1\r\n"
    for k, v in w.headers:
        head += f"{k}: {v}\r\n"
    if w.body is not None:
        head += f"Content-Length: {len(w.body)}\r\n"
    head += "Connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head.encode() + (w.body or b""))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    raw_head, _, body = data.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1]) if lines[0].startswith("HTTP/") else 0
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            n = int(size_line.split(b";")[0], 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        body = out
    return status, headers, body


def http_get(port, path, timeout=5.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, body


def wait_port(port, proc, name, path, timeout):
    """Until GET path answers (any status: the WAF may object to the probe's Host)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with status {proc.returncode} during start-up")
        try:
            status, _ = http_get(port, path, 1.0)
            if status:
                return
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    raise BenchError(f"{name} not ready on 127.0.0.1:{port} within {timeout} s ({last})")


METRIC_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')


def scrape(port):
    """gatehouse's /metrics: {(name, labels-string): value} for the waf's series."""
    status, body = http_get(port, "/metrics")
    if status != 200:
        raise BenchError(f"gatehouse /metrics answered {status}")
    out = {}
    for line in body.decode().splitlines():
        m = METRIC_RE.match(line)
        if m and m.group(1).startswith("gatehouse_waf_"):
            try:
                out[(m.group(1), m.group(2) or "")] = float(m.group(3))
            except ValueError:
                pass
    return out


def label(labels, name):
    m = re.search(rf'{name}="([^"]*)"', labels)
    return m.group(1) if m else None


def metric_delta(before, after, name):
    """{label-string: delta} of one metric's series (summed over nothing: one per labels)."""
    out = {}
    for (n, labels), v in after.items():
        if n == name:
            d = v - before.get((n, labels), 0.0)
            if d:
                out[labels] = d
    return out


def by_label(delta, name):
    out = {}
    for labels, v in delta.items():
        k = label(labels, name) or "?"
        out[k] = out.get(k, 0.0) + v
    return out


# --------------------------------------------------------------------------------------------


class WafBench:
    def __init__(self, a):
        self.a = a
        self.tmp = Path(a.tmp)
        self.reg = Registry(a.pid_file)
        self.ports = Ports()
        self.proxies = {}
        self.checks = []  # lines for the report: what the pre-check saw

    def spawn_nginx(self, name, conf):
        rc, out, err = self.reg.run(["nginx", "-t", "-q", "-c", str(conf), "-p", str(self.tmp),
                                     "-e", str(self.tmp / f"{name}-error.log")], "nginx -t", 120)
        if rc:
            raise BenchError(f"{name}: nginx -t failed:\n{out}{err}")
        logf = open(self.tmp / f"{name}.out", "w")
        p = self.reg.popen(["nginx", "-c", str(conf), "-p", str(self.tmp),
                            "-e", str(self.tmp / f"{name}-error.log")],
                           name, stdout=logf, stderr=subprocess.STDOUT)
        return p

    def start(self):
        a = self.a
        nofile = resource_nofile()
        self.page = html_page()
        self.workloads = workloads(self.page)
        www = self.tmp / "www"
        (www / "product").mkdir(parents=True)
        (www / "product" / "sourdough.html").write_bytes(self.page)
        for w in self.workloads:
            if w.body is not None:
                w.body_file = self.tmp / f"{w.key}.body"
                w.body_file.write_bytes(w.body)
        for path in (self.tmp, www, www / "product"):
            path.chmod(0o755)
        (www / "product" / "sourdough.html").chmod(0o644)

        bp, st = self.ports.get(), self.ports.get()
        conf = self.tmp / "backend.conf"
        conf.write_text(backend_conf(self.tmp, bp, st, nofile))
        self.backend = self.spawn_nginx("backend", conf)
        wait_port(bp, self.backend, "backend nginx", "/product/sourdough.html", 15)
        for kid in children_of(self.backend.pid):
            self.reg.adopt(kid)
        self.stub = Stub(st)
        self.stub.read()
        for w in self.workloads:
            status, headers, body = request(bp, w)
            if status != 200 or body != w.expect_body:
                raise BenchError(f"backend answers {w.key} with {status} ({len(body)} bytes)")

        # gatehouse
        module_dir = Path(a.module_dir).resolve()
        if not (module_dir / "waf.so").exists():
            raise BenchError(f"waf.so missing in {module_dir} (build with --build)")
        port, admin = self.ports.get(), self.ports.get()
        conf = self.tmp / "gatehouse.toml"
        conf.write_text(gatehouse_waf_conf(port, admin, bp, module_dir))
        rc, out, err = self.reg.run([a.gatehouse, "check", "-c", str(conf)], "gatehouse check",
                                    120)
        if rc:
            raise BenchError(f"gatehouse check failed:\n{out}{err}")
        logf = open(self.tmp / "gatehouse.log", "w")
        p = self.reg.popen([a.gatehouse, "-c", str(conf)], "gatehouse",
                           stdout=logf, stderr=subprocess.STDOUT)
        wait_port(port, p, "gatehouse", "/product/sourdough.html", 120)
        self.admin = admin
        self.proxies["gatehouse"] = Proxy("gatehouse", "gatehouse waf", "gatehouse", 1, port, p)

        # nginx + ModSecurity
        if not MODSEC_NGINX_MODULE.exists():
            raise BenchError(f"{MODSEC_NGINX_MODULE} missing: apt-get install "
                             "libnginx-mod-http-modsecurity")
        rules = self.tmp / "modsecurity.conf"
        rules.write_text(nginx_rules_text())
        port = self.ports.get()
        conf = self.tmp / "nginx-waf.conf"
        conf.write_text(nginx_waf_conf(self.tmp, port, bp, rules, nofile))
        p = self.spawn_nginx("nginx-waf", conf)
        wait_port(port, p, "nginx-waf", "/product/sourdough.html", 120)
        self.proxies["nginx"] = Proxy("nginx", "nginx + ModSecurity", "nginx", 1, port, p)
        self.proxies["nginx"].pids(self.reg)  # records the worker

        self.precheck()

    def precheck(self):
        """Each workload once through each proxy: 200 with the backend's body, and no rule of
        the CRS matched (gatehouse's rule-hit counter: the same rules as nginx's)."""
        for w in self.workloads:
            for key in ("gatehouse", "nginx"):
                px = self.proxies[key]
                before = scrape(self.admin) if key == "gatehouse" else None
                status, headers, body = request(px.port, w)
                ctype = headers.get("content-type", "").split(";")[0].strip()
                if status != 200 or body != w.expect_body or ctype != w.expect_type:
                    raise BenchError(f"{px.label}: {w.key} answered {status} {ctype} "
                                     f"({len(body)} bytes): {body[:300]!r} -- a 403 means the "
                                     f"payload trips the CRS")
                if key == "gatehouse":
                    after = scrape(self.admin)
                    hits = by_label(metric_delta(before, after, "gatehouse_waf_rule_hits_total"),
                                    "rule")
                    inspected = sum(metric_delta(before, after,
                                                 "gatehouse_waf_requests_total").values())
                    if inspected != 1:
                        raise BenchError(f"gatehouse: the waf inspected {inspected} requests "
                                         f"for one {w.key} request")
                    if hits:
                        raise BenchError(f"{w.key}: CRS rules matched the payload: "
                                         f"{sorted(hits)} (fix the payload, not the rules)")
            self.checks.append(f"{w.key}: 200 {w.expect_type} with the backend's "
                               f"{len(w.expect_body)}-byte body from both; no rule matched")
        log("pre-check: every workload answered 200 by both proxies, no CRS rule matched")

    def wrk(self, port, w, duration):
        argv = ["wrk", f"-t{self.a.threads}", f"-c{w.conns}", f"-d{duration}s", "--latency",
                "--timeout", "10s", "-s", str(w.script), f"http://127.0.0.1:{port}{w.path}"]
        rc, out, err = self.reg.run(argv, "wrk", duration + 60)
        if rc:
            raise BenchError(f"wrk failed ({rc}): {err.strip()}")
        r = parse_wrk(out)
        m = re.search(r"\d+ requests in ([\d.]+\w+),", out)
        runtime_s = to_ms(m.group(1)) / 1e3
        r["rps"] = r["requests"] / max(1e-3, runtime_s - START_DELAY_MS / 1e3)
        m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        r["non2xx"] = int(m.group(1)) if m else 0
        r["socket_errors"] = r["errors"] - r["non2xx"]
        return r

    def wait_idle(self, pids, name, timeout=120.0):
        """Until the proxy's CPU time stops growing: after a wrk run, the requests it had read
        but not yet inspected (up to one per connection) are still being worked on."""
        deadline = time.monotonic() + timeout
        last = cpu_ticks(pids)
        while time.monotonic() < deadline:
            time.sleep(0.3)
            now = cpu_ticks(pids)
            if now - last <= 1:
                return
            last = now
        raise BenchError(f"{name} still busy {timeout:.0f} s after wrk ended")

    def measure(self, key, w):
        a = self.a
        px = self.proxies[key]
        duration = a.duration * w.duration_factor
        pids = px.pids(self.reg)
        self.wrk(px.port, w, a.warmup)
        self.wait_idle(pids, px.label)
        gh = key == "gatehouse"
        m0 = scrape(self.admin) if gh else None
        acc0, req0 = self.stub.read()
        t0, w0, s0 = cpu_ticks(pids), children_cpu_s(), time.monotonic()
        r = self.wrk(px.port, w, duration)
        t1, w1, s1 = cpu_ticks(pids), children_cpu_s(), time.monotonic()
        acc1, req1 = self.stub.read()
        m1 = scrape(self.admin) if gh else None
        px.pids(self.reg)  # still alive?
        self.wait_idle(pids, px.label)  # leaves nothing of this run to the next
        n = max(1, r["requests"])
        r["cpu_us"] = (t1 - t0) / CLK_TCK * 1e6 / n
        wall = max(1e-3, s1 - s0)
        r["proxy_pct"] = 100.0 * (t1 - t0) / CLK_TCK / wall
        r["wrk_pct"] = 100.0 * (w1 - w0) / wall
        r["upstream_requests"] = req1 - req0 - 1
        r["engine"] = {}
        if gh:
            sums = by_label(metric_delta(m0, m1, "gatehouse_waf_engine_seconds_sum"), "phase")
            counts = by_label(metric_delta(m0, m1, "gatehouse_waf_engine_seconds_count"), "phase")
            # Per request: the phase's engine time over the run / requests wrk completed; and
            # per call: / the phase's count (requests in flight at the edges move both a little).
            r["engine"] = {ph: {"per_req_us": sums.get(ph, 0.0) * 1e6 / n,
                                "per_call_us": sums.get(ph, 0.0) * 1e6 / counts[ph],
                                "count": counts[ph]} for ph in counts if counts[ph]}
            r["engine_us"] = sum(sums.values()) * 1e6 / n
            r["inspected"] = sum(metric_delta(m0, m1, "gatehouse_waf_requests_total").values())
            r["interventions"] = sum(metric_delta(m0, m1,
                                                  "gatehouse_waf_interventions_total").values())
            r["rule_hits"] = by_label(metric_delta(m0, m1, "gatehouse_waf_rule_hits_total"),
                                      "rule")
            r["engine_errors"] = sum(metric_delta(m0, m1,
                                                  "gatehouse_waf_engine_errors_total").values())
        return r


# --------------------------------------------------------------------------------------------
# Report

GOALS = [("req/s", "rps", 1.0, +1), ("CPU µs/req", "cpu_us", 1.0, -1), ("p99", "p99", 1.0, -1)]


def rps_fmt(x):
    """req/s with 3 significant digits at least (the JSON workload runs at a few per second)."""
    if x is None:
        return "–"
    return f"{x:.0f}" if x >= 100 else f"{x:.2f}" if x < 10 else f"{x:.1f}"


def ratio(res, wkey, field):
    g, n = res[wkey]["gatehouse"], res[wkey]["nginx"]
    return median(x[field] / y[field] for x, y in zip(g, n) if y[field])


def verdict(value, bound, sense):
    if value is None:
        return "–"
    ok = round(value, 3) >= bound if sense > 0 else round(value, 3) <= bound
    return "met" if ok else "NOT met"


def loadavg():
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def package_version(name):
    try:
        p = subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True,
                           text=True, timeout=10)
        return p.stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def report(b, res, order, started, finished, command):
    a = b.a
    v = versions(a.gatehouse)
    wl = {w.key: w for w in b.workloads}
    phases = sorted({ph for wk in res for r in res[wk]["gatehouse"] for ph in r["engine"]})

    head = ["workload", "proxy", "req/s", "p50 ms", "p99 ms", "CPU µs/req", "proxy CPU %",
            "errors (non-2xx + socket)"]
    rows = []
    for wk in res:
        for key in ("gatehouse", "nginx"):
            rs = res[wk][key]
            errs = sum(r["non2xx"] for r in rs), sum(r["socket_errors"] for r in rs)
            rows.append([wl[wk].title, b.proxies[key].label,
                         rps_fmt(median(r["rps"] for r in rs)),
                         fmt(median(r["p50"] for r in rs), ".3f"),
                         fmt(median(r["p99"] for r in rs), ".3f"),
                         fmt(median(r["cpu_us"] for r in rs), ".1f"),
                         fmt(median(r["proxy_pct"] for r in rs), ".0f"),
                         f"{errs[0] + errs[1]} ({errs[0]} + {errs[1]})"])

    ghead = ["workload", "req/s ÷nginx (goal ≥ 1.0)", "", "CPU/req ÷nginx (goal ≤ 1.0)", "",
             "p99 ÷nginx (goal ≤ 1.0)", "", "errors"]
    grows = []
    all_met = True
    for wk in res:
        cells = [wl[wk].title]
        for _, field, bound, sense in GOALS:
            x = ratio(res, wk, field)
            ver = verdict(x, bound, sense)
            all_met &= ver == "met"
            cells += [fmt(x, ".3f"), ver]
        errors = sum(r["errors"] for key in ("gatehouse", "nginx") for r in res[wk][key])
        all_met &= errors == 0
        cells.append(f"{errors}" + ("" if errors == 0 else " (must be 0)"))
        grows.append(cells)

    ehead = (["workload"] + [f"phase {ph} µs/req" for ph in phases]
             + ["engine µs/req", "gatehouse CPU µs/req", "engine ÷ CPU", "outside the engine µs/req",
                "nginx CPU µs/req"])
    erows = []
    for wk in res:
        rs = res[wk]["gatehouse"]
        eng = median(r["engine_us"] for r in rs)
        cpu = median(r["cpu_us"] for r in rs)
        ncpu = median(r["cpu_us"] for r in res[wk]["nginx"])
        erows.append([wl[wk].title]
                     + [fmt(median(r["engine"][ph]["per_req_us"] if ph in r["engine"] else 0.0
                                   for r in rs), ".1f") for ph in phases]
                     + [fmt(eng, ".1f"), fmt(cpu, ".1f"),
                        fmt(median(r["engine_us"] / r["cpu_us"] for r in rs if r["cpu_us"]), ".3f"),
                        fmt(median(r["cpu_us"] - r["engine_us"] for r in rs), ".1f"),
                        fmt(ncpu, ".1f")])

    hits = {}
    inspected = requests = interventions = engine_errors = 0
    for wk in res:
        for r in res[wk]["gatehouse"]:
            for rule, n in r["rule_hits"].items():
                hits[rule] = hits.get(rule, 0) + n
            inspected += r["inspected"]
            requests += r["requests"]
            interventions += r["interventions"]
            engine_errors += r["engine_errors"]

    crs = package_version("modsecurity-crs")
    md = ["# waf benchmark: gatehouse waf vs nginx + ModSecurity (OWASP CRS)", "",
          f"Run {started:%Y-%m-%d %H:%M} UTC, {finished - started.timestamp():.0f} s; `{command}`",
          ""]
    if a.quick:
        md += ["**A `--quick` run (1 round, short measurements): a smoke test, not the "
               "benchmark's figures.**", ""]
    if a.note:
        md += [f"**{a.note}**", ""]
    md += [
        f"- {v['machine']}; wrk, the backend and the proxy share these CPUs; load average "
        f"{a.load_before} before the run, {loadavg()} after it (anything else running moves "
        "the figures: see the proxy CPU % column)",
        f"- {v['gatehouse']}; {v['nginx']} with libnginx-mod-http-modsecurity "
        f"{package_version('libnginx-mod-http-modsecurity')} (`load_module "
        f"{MODSEC_NGINX_MODULE}`); libmodsecurity3 {package_version('libmodsecurity3')} "
        f"for both; modsecurity-crs {crs}; {v['wrk']}",
        "- rules, the same for both, in the same order: `SecRuleEngine On` and rule 4290001 "
        f"(`tx.paranoia_level={PARANOIA}`, inbound threshold {INBOUND_THRESHOLD}, outbound "
        f"{OUTBOUND_THRESHOLD}), the engine settings and base rules 200000-200005/200007 "
        "of `modules/waf/config.cpp` `engine_directives()` (`SecRequestBodyAccess On`, "
        "`SecResponseBodyAccess On`, `SecResponseBodyMimeType " + " ".join(RESPONSE_TYPES)
        + "`, body limits 1 GiB with `ProcessPartial`, `SecArgumentsLimit 1000`, PCRE limits "
        "1000, `SecAuditEngine Off`), then `" + str(CRS_SETUP) + "`, then every `"
        + str(CRS_RULES) + "/*.conf` in name order (listed one by one: libmodsecurity has no "
        "`IncludeOptional`). gatehouse writes them from its config; nginx reads them from one "
        "`modsecurity_rules_file`",
        "- gatehouse: `workers = 1`, `load = [\"round_robin\", \"waf\"]`, `[filter.waf] crs = "
        f"true, mode = \"on\", paranoia = {PARANOIA}` (other keys default: "
        "`response_body = \"buffer\"`, `offload_above = \"64k\"`, route `body_limit` 1 MiB), "
        "route `/` with `filters = [\"waf\"]`, upstream `keepalive = 64`, `[admin]` on "
        "loopback for the metrics",
        "- nginx: `worker_processes 1`, `modsecurity on; modsecurity_rules_file`, "
        "`client_body_buffer_size 128k` (the connector reads the whole body first; with the "
        "default 16 KiB a 64 KiB body would go to a temp file), `proxy_pass` to an upstream "
        "with `keepalive 64`, HTTP/1.1, `Host`/`X-Forwarded-*` as gatehouse sets them, 16 KiB "
        "proxy buffers",
        "- backend: nginx, 1 worker: the page from a file (sendfile), the two POST targets "
        "answered by `return 200` (nginx reads and discards the body); the form's answer is a "
        f"{len(FORM_RESPONSE)}-byte `text/html` page (phase 4 inspects it), the JSON's a "
        f"{len(JSON_RESPONSE)}-byte `application/json` object (not a `response_types` type: "
        "no phase 4)",
        f"- load: `wrk -t{a.threads} --latency --timeout 10s` with a Lua script per workload "
        "(method, headers, body): " + ", ".join(f"{w.key} `-c{w.conns} "
                                                 f"-d{a.duration * w.duration_factor}s`"
                                                 for w in b.workloads)
        + f", each after a {a.warmup} s wrk warm-up and a wait until the proxy is idle "
        "(it finishes the requests it had read); the first request of each connection is held "
        f"back {START_DELAY_MS} ms (the script's `delay()`), so the proxy has accepted every "
        "connection before requests arrive (else connections accepted late wait seconds and "
        f"decide p99), and req/s = requests ÷ (run time − {START_DELAY_MS / 1e3:g} s); "
        f"{a.rounds} round(s), the proxies alternated within each round (gatehouse first in "
        "odd rounds, nginx first in even ones); medians over rounds (ratios: median of the "
        "per-round ratios)",
        f"- requests as a browser or a back office sends them: `Host: {HOST}`, a Firefox "
        "`User-Agent`, `Accept`, `Accept-Language`, `Accept-Encoding`, a session `Cookie`; "
        "the POSTs also `Origin` and `Referer`. Form: a customer profile (17 fields and a "
        "free-text field of plain sentences), URL-encoded like a browser; JSON: a batch of "
        "product reviews (under 1,000 arguments, rule 200007's limit), padded to the size with "
        "whitespace before the last brace",
        "- checked before the rounds: each workload once through each proxy answers 200 with "
        "the backend's body, and no rule matched (gatehouse's `gatehouse_waf_rule_hits_total`, "
        "the same rules as nginx's); during the rounds: wrk's non-2xx responses and socket "
        "errors (must be 0) and gatehouse's rule hits and interventions",
        "- CPU µs/req: utime+stime of the proxy's processes (`/proc/PID/stat`, all threads; "
        "nginx: master and worker) over the wrk run ÷ requests wrk completed; proxy CPU % of "
        "one CPU",
        "",
        "## Results", ""]
    md += md_table(head, rows)
    md += ["", "## gatehouse ÷ nginx, against the goals", ""]
    md += md_table(ghead, grows)
    md += ["", "All goals met." if all_met else "Not all goals met (see above).", ""]
    md += ["## gatehouse: engine time per request (its metrics)", "",
           "`gatehouse_waf_engine_seconds_sum` ÷ requests wrk completed, by phase (deltas "
           "over each measured run from the admin endpoint's `/metrics`), medians over rounds. "
           "The engine time is libmodsecurity's own work (rule evaluation, body parsing); the "
           "rest of gatehouse's CPU per request is the proxy and the module's glue. Phase 5 is "
           "logging (the engine's phase 5 rules and the transaction's end). The metric is wall "
           "time around each engine call (`steady_clock` in `WafFilter::timed`), not CPU time: "
           "when other processes take the CPU from the worker mid-call (wrk and the backend "
           "share the two CPUs, and anything else running on the machine), it grows, and "
           "*outside the engine* can come out negative. Its `_count` counts engine calls, not "
           "requests (a body fed in pieces is one call per piece, then one to process it), so "
           "the table divides the sums by the requests wrk completed.", ""]
    md += md_table(ehead, erows)
    md += ["", f"During the measured runs: {requests} requests completed, the waf inspected "
           f"{inspected:.0f}, interventions {interventions:.0f}, engine errors "
           f"{engine_errors:.0f}, rule hits "
           + (", ".join(f"{k}: {v:.0f}" for k, v in sorted(hits.items())) if hits else "none")
           + ".", ""]
    md += ["Pre-check:", ""] + [f"- {c}" for c in b.checks]
    md += ["", "## Per-round figures", ""]
    prow = []
    for i, rnd_order in enumerate(order):
        for wk, keys in rnd_order:
            for key in keys:
                r = res[wk][key][i]
                prow.append([wl[wk].key, str(i + 1), b.proxies[key].label, rps_fmt(r["rps"]),
                             f"{r['p50']:.3f}", f"{r['p99']:.3f}", f"{r['cpu_us']:.1f}",
                             f"{r['proxy_pct']:.0f}", f"{r['wrk_pct']:.0f}",
                             str(r["non2xx"]), str(r["socket_errors"]),
                             fmt(r.get("engine_us"), ".1f"), str(r["requests"])])
    md += md_table(["workload", "round", "proxy", "req/s", "p50 ms", "p99 ms", "CPU µs/req",
                    "proxy CPU %", "wrk CPU %", "non-2xx", "socket errors", "engine µs/req",
                    "requests"], prow)
    txt = (text_table(head, rows) + [""] + text_table(ghead, grows) + [""]
           + text_table(ehead, erows))
    return "\n".join(md) + "\n", "\n".join(txt), all_met


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gatehouse", required=True)
    ap.add_argument("--module-dir", required=True)
    ap.add_argument("--tmp", help="work directory (default: a new temp dir, removed after)")
    ap.add_argument("--pid-file", help="where every started process is recorded "
                    "(default: TMP/pids)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    ap.add_argument("--warmup", type=int, default=1, help="seconds of wrk before each measurement")
    ap.add_argument("--threads", type=int, default=1,
                    help="wrk threads (default 1: the proxy, not wrk, is the slowest process)")
    ap.add_argument("--conns", type=int, help="wrk connections for every workload (default: "
                    "64 for get and form, 8 for json)")
    ap.add_argument("--only", help="comma-separated workloads (get, form, json)")
    ap.add_argument("--quick", action="store_true", help="marks the report as a smoke run")
    ap.add_argument("--note", default="", help="a line for the report's head")
    ap.add_argument("--out", help="the report (default tests/bench/waf-results.md; with --only "
                    "tests/bench/waf-results-partial.md, so a partial run keeps the full report)")
    ap.add_argument("--command", default="tests/bench/waf.sh")
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--time-limit", type=int, help="abort the whole run after (default: "
                    "derived from rounds and duration)")
    a = ap.parse_args(argv)
    if a.rounds < 1 or a.duration < 1:
        ap.error("--rounds and --duration must be ≥ 1")
    only = a.only.split(",") if a.only else ["get", "form", "json"]
    if set(only) - {"get", "form", "json"}:
        ap.error("--only: get, form, json")
    a.out = a.out or str(HERE / ("waf-results-partial.md" if a.only else "waf-results.md"))

    own_tmp = a.tmp is None
    a.tmp = a.tmp or tempfile.mkdtemp(prefix="gh-waf-bench-")
    Path(a.tmp).chmod(0o755)
    a.pid_file = a.pid_file or str(Path(a.tmp) / "pids")
    if a.time_limit is None:
        # Per round and workload: two proxies x (warm-up + run + idle waits and start-up slack);
        # the JSON runs are twice as long.
        a.time_limit = 300 + a.rounds * sum(2 * (a.warmup + a.duration * (2 if k == "json" else 1)
                                                 + 20) for k in only)
    arm_time_limit(a.time_limit)

    drift = directive_drift()
    if drift:
        log("waf bench: modules/waf/config.cpp no longer writes these directives (update "
            "waf_bench.py so nginx runs the same settings):\n  " + "\n  ".join(drift))
        return 1

    started = datetime.datetime.now(datetime.timezone.utc)
    a.load_before = loadavg()
    b = WafBench(a)
    try:
        log(f"starting backend and proxies in {a.tmp}")
        b.start()
        b.workloads = [w for w in b.workloads if w.key in only]
        for w in b.workloads:
            w.conns = max(a.conns or w.conns, a.threads)
            w.script = Path(a.tmp) / f"{w.key}.lua"
            w.script.write_text(w.lua(a.threads))
        res = {w.key: {"gatehouse": [], "nginx": []} for w in b.workloads}
        order = []
        for rnd in range(a.rounds):
            keys = ["gatehouse", "nginx"] if rnd % 2 == 0 else ["nginx", "gatehouse"]
            order.append([(w.key, keys) for w in b.workloads])
            for w in b.workloads:
                for key in keys:
                    r = b.measure(key, w)
                    res[w.key][key].append(r)
                    extra = ""
                    if key == "gatehouse":
                        extra = (f"  engine {r['engine_us']:.1f} µs/req ("
                                 + ", ".join(f"p{ph} {e['per_req_us']:.1f}"
                                             for ph, e in sorted(r["engine"].items())) + ")")
                        if r["rule_hits"] or r["interventions"]:
                            extra += f"  RULE HITS {r['rule_hits']} interventions " \
                                     f"{r['interventions']:.0f}"
                    log(f"[round {rnd + 1}/{a.rounds}] {w.key:5} {key:9} {r['rps']:8.0f} req/s  "
                        f"p50 {r['p50']:.3f} ms  p99 {r['p99']:.3f} ms  non-2xx {r['non2xx']} "
                        f"sock {r['socket_errors']}  CPU {r['cpu_us']:.1f} µs/req "
                        f"({r['proxy_pct']:.0f} %, wrk {r['wrk_pct']:.0f} %){extra}")
        md, txt, _ = report(b, res, order, started, time.time(), a.command)
        Path(a.out).write_text(md)
        print(txt)
        print(f"\nMarkdown: {a.out}")
        errors = sum(r["errors"] for wk in res for k in res[wk] for r in res[wk][k])
        if errors:
            log(f"waf bench: {errors} errors (non-2xx or socket) during the runs")
            return 1
        return 0
    except BenchError as e:
        return report_failure("waf bench", e, a.tmp)
    finally:
        signal.alarm(0)
        b.reg.cleanup()
        if a.keep_tmp:
            log(f"configs and logs kept in {a.tmp}")
        elif own_tmp:
            shutil.rmtree(a.tmp, True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
