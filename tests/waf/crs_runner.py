#!/usr/bin/env python3
"""The OWASP CRS 3.3.4 regression suite (tests/waf/crs-regression, FTW YAML) against a running
gatehouse with the waf module, over HTTP, in front of a real backend.

Set-up (the CRS project's own, see crs-regression/README.md): the CRS at paranoia 4 in
DetectionOnly, the 900005 variables, and a marker rule: a request carrying `X-CRS-Test: NAME`
logs `X-CRS-Test NAME` and skips every other rule. Each stage is sent between two marker
requests on fresh connections; the rule ids the engine logged between the two markers (its
native lines, `engine_log`, one worker so the order is the order of the requests) are that
stage's matches.

    crs_runner.py --gatehouse BIN --modules DIR [--only 942100] [--report FILE] [--compare]

prints a summary and writes the per-case results; tests/integration/test_waf_crs.py runs it and
checks the result against crs-overrides.yaml. --compare runs the same cases through nginx 1.22 +
Debian's ModSecurity connector with the same rules (tests/waf/modsec_text.py; its error log
carries the engine's lines) and lists the cases only one of the two passes."""

import argparse
import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

import modsec_text

HERE = Path(__file__).resolve().parent
SUITE = HERE / "crs-regression" / "tests"
OVERRIDES = HERE / "crs-overrides.yaml"
BACKEND = HERE.parent / "integration" / "backend.py"

SETUP_RULES = r"""
SecAction "id:900005,phase:1,nolog,pass,ctl:ruleEngine=DetectionOnly,ctl:ruleRemoveById=910000,\
  setvar:tx.paranoia_level=4,setvar:tx.crs_validate_utf8_encoding=1,\
  setvar:tx.arg_name_length=100,setvar:tx.arg_length=400,setvar:tx.combined_file_sizes=65535"
SecRule REQUEST_HEADERS:X-CRS-Test "@rx ^.*$" \
  "id:999999,phase:1,pass,t:none,log,msg:'X-CRS-Test %{MATCHED_VAR}',ctl:ruleRemoveById=1-999998"
"""

RESPONSE_TYPES = ["text/plain", "text/html", "text/xml", "application/json"]

MARKER = re.compile(r"\[msg \"X-CRS-Test ([^\"]+)\"\]")


def as_bytes(text):
    """YAML strings go on the wire as UTF-8, as go-ftw sends them (so "\\xac" is the two bytes
    of U+00AC: test 944200-0FP relies on it)."""
    return text if isinstance(text, bytes) else text.encode("utf-8")


def build_request(inp):
    """The bytes of one stage's request, FTW conventions: a `data` list is joined with CRLF;
    without stop_magic a body gets a Content-Length and (form encoding) a Content-Type when it
    has none."""
    if "encoded_request" in inp:
        return base64.b64decode(inp["encoded_request"])
    if "raw_request" in inp:
        return as_bytes(inp["raw_request"])
    method = str(inp.get("method", "GET"))
    uri = str(inp.get("uri", "/"))
    version = str(inp.get("version", "HTTP/1.1"))
    headers = inp.get("headers") or {}
    data = inp.get("data")
    if isinstance(data, list):
        data = "\r\n".join(str(x) for x in data)
    body = as_bytes(str(data)) if data is not None else b""
    lines = [as_bytes("%s %s %s" % (method, uri, version))]
    names = {str(k).lower() for k in headers}
    for k, v in headers.items():
        lines.append(as_bytes("%s: %s" % (k, v)))
    if body and not inp.get("stop_magic"):
        if "content-type" not in names:
            lines.append(b"Content-Type: application/x-www-form-urlencoded")
        if "content-length" not in names and "transfer-encoding" not in names:
            lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def exchange(port, data, timeout=3.0):
    """Sends the bytes; returns (status or None, error or None)."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError as e:
        return None, str(e)
    try:
        sock.sendall(data)
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        try:
            resp.read()
        except (http.client.HTTPException, OSError):
            pass
        return resp.status, None
    except (http.client.HTTPException, OSError) as e:
        return None, "%s: %s" % (type(e).__name__, e)
    finally:
        sock.close()


def marker_request(port, name):
    req = ("GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: ModSecurity CRS 3 Tests\r\n"
           "X-CRS-Test: %s\r\nConnection: close\r\n\r\n" % name).encode()
    status, err = exchange(port, req)
    if status != 200:
        raise RuntimeError("marker request %s failed: %s %s" % (name, status, err))


class EngineLog:
    """Follows the engine log: the lines between two markers."""

    def __init__(self, path):
        self.path = Path(path)
        self.offset = 0
        self.pending = ""

    def until_marker(self, name, timeout=5.0):
        """Lines (before the marker `name`) read since the last call; waits for the marker."""
        lines = []
        deadline = time.monotonic() + timeout
        while True:
            if self.path.exists():
                with open(self.path, "rb") as f:
                    f.seek(self.offset)
                    chunk = f.read()
                self.offset += len(chunk)
                self.pending += chunk.decode("utf-8", "replace")
                *complete, self.pending = self.pending.split("\n")
                for line in complete:
                    m = MARKER.search(line)
                    if m and m.group(1) == name:
                        return lines
                    if not m:
                        lines.append(line)
            if time.monotonic() > deadline:
                raise RuntimeError("marker %s never reached the engine log" % name)
            time.sleep(0.005)


def judge(output, status, error, lines):
    """(passed, why) for one stage."""
    text = "\n".join(lines)
    if output.get("expect_error"):
        return (error is not None or status is None or status >= 400,
                "expected an error, got %s" % status)
    if error is not None and "status" not in output:
        pass  # FTW judges only the log when no status is asked for
    if "status" in output:
        want = output["status"]
        want = want if isinstance(want, list) else [want]
        if status not in [int(w) for w in want]:
            return False, "status %s, expected %s" % (status, want)
    got = "status %s" % status if error is None else error
    if "log_contains" in output and not re.search(output["log_contains"], text):
        return False, "log lacks %s (%s)" % (output["log_contains"], got)
    if "no_log_contains" in output and re.search(output["no_log_contains"], text):
        uids = sorted(set(re.findall(r'\[unique_id "([^"]+)"\]', text)))
        return False, "log has %s (%s; requests %s)" % (output["no_log_contains"], got,
                                                       ", ".join(uids))
    if "response_contains" in output:
        return False, "response_contains is not supported"
    return True, ""


def cases(only=None):
    for path in sorted(SUITE.rglob("*.yaml")):
        doc = yaml.safe_load(path.read_text(errors="replace"))
        if not doc or not doc.get("meta", {}).get("enabled", True):
            continue
        for test in doc.get("tests") or []:
            title = str(test.get("test_title"))
            if only and not title.startswith(only):
                continue
            yield title, [s["stage"] for s in test.get("stages") or []]


def config(tmp, backend_port, modules):
    setup = Path(tmp) / "crs-test-setup.conf"
    setup.write_text(SETUP_RULES)
    return """
[server]
workers = 1
[modules]
dir = %s
load = ["round_robin", "waf"]
[limits]
max_body_bytes = "16m"
[[listener]]
listen = "127.0.0.1:0"
[upstream.app]
servers = [{ address = "127.0.0.1:%d" }]
[filter.waf]
crs = true
mode = "detect"
paranoia = 4
rules_before = [%s]
engine_log = %s
response_types = %s
[[route]]
path = "/"
upstream = "app"
filters = ["waf"]
body_limit = "16m"
""" % (json.dumps(str(modules)), backend_port, json.dumps(str(setup)),
       json.dumps(str(Path(tmp) / "engine.log")), json.dumps(RESPONSE_TYPES))


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_gatehouse(tmp, backend_port, gatehouse, modules):
    """(process, port, engine log) of gatehouse with the waf module and the suite's set-up."""
    (tmp / "gatehouse.toml").write_text(config(tmp, backend_port, modules))
    g = subprocess.Popen([gatehouse, "-c", str(tmp / "gatehouse.toml")],
                         stdout=open(tmp / "gatehouse.log", "wb"), stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and g.poll() is None:
        text = (tmp / "gatehouse.log").read_text(errors="replace")
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", text)
        if m and "ready" in text:
            return g, int(m.group(1)), tmp / "engine.log"
        time.sleep(0.05)
    stop(g)
    raise RuntimeError("gatehouse did not start:\n" +
                       (tmp / "gatehouse.log").read_text(errors="replace"))


def nginx_available():
    """"" when nginx and Debian's ModSecurity connector are installed, else why not."""
    if not shutil.which("nginx"):
        return "nginx is not installed"
    if not modsec_text.MODSEC_NGINX_MODULE.exists():
        return "%s is missing (libnginx-mod-http-modsecurity)" % modsec_text.MODSEC_NGINX_MODULE
    return ""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nginx(tmp, backend_port):
    """(process, port, error log) of nginx 1.22 + Debian's connector with the rules the waf
    module runs for config() (tests/waf/modsec_text.py), one process, in front of the same
    backend. The connector writes the engine's lines to the error log at level info."""
    setup = tmp / "crs-test-setup.conf"
    setup.write_text(SETUP_RULES)
    rules = tmp / "modsecurity.conf"
    rules.write_text(modsec_text.nginx_rules_text("detect", 4, RESPONSE_TYPES, before=[setup]))
    (tmp / "nginx-temp").mkdir(exist_ok=True)
    port = free_port()
    log = tmp / "nginx-error.log"
    t = tmp / "nginx-temp"
    (tmp / "nginx.conf").write_text(f"""load_module {modsec_text.MODSEC_NGINX_MODULE};
daemon off;
master_process off;
worker_processes 1;
pid {tmp / "nginx.pid"};
error_log {log} info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {t}/client;
    proxy_temp_path {t}/proxy;
    fastcgi_temp_path {t}/fastcgi;
    uwsgi_temp_path {t}/uwsgi;
    scgi_temp_path {t}/scgi;
    client_max_body_size 16m;
    client_body_buffer_size 16m;
    server {{
        listen 127.0.0.1:{port};
        modsecurity on;
        modsecurity_rules_file {rules};
        location / {{
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
        }}
    }}
}}
""")
    n = subprocess.Popen(["nginx", "-c", str(tmp / "nginx.conf"), "-p", str(tmp),
                          "-e", str(log)], stdout=open(tmp / "nginx.out", "wb"),
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60  # the CRS at paranoia 4 takes seconds to load
    while time.monotonic() < deadline and n.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return n, port, log
        except OSError:
            time.sleep(0.1)
    stop(n)
    raise RuntimeError("nginx did not start:\n" + (tmp / "nginx.out").read_text(errors="replace")
                       + (log.read_text(errors="replace")[-3000:] if log.exists() else ""))


def run(gatehouse, modules, only=None, workdir=None, target="gatehouse"):
    """Runs the suite through `target` ("gatehouse", or "nginx" for nginx + ModSecurity with the
    same rules); returns {title: (passed, why)}."""
    tmp = Path(workdir or tempfile.mkdtemp(prefix="crs-")) / target
    tmp.mkdir(parents=True, exist_ok=True)
    backend = subprocess.Popen([sys.executable, str(BACKEND), "--id", "crs", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=open(tmp / "backend.err", "wb"),
                               stdin=subprocess.DEVNULL)
    proxy = None
    try:
        backend_port = int(backend.stdout.readline())
        if target == "nginx":
            proxy, port, log_path = start_nginx(tmp, backend_port)
        else:
            proxy, port, log_path = start_gatehouse(tmp, backend_port, gatehouse, modules)
        log = EngineLog(log_path)
        results = {}
        n = 0
        for title, stages in cases(only):
            passed, why = True, ""
            for stage in stages:
                n += 1
                start_name, end_name = "start-%d" % n, "end-%d" % n
                marker_request(port, start_name)
                log.until_marker(start_name)
                status, error = exchange(port, build_request(stage["input"]))
                # The test request's log lines are written when its response has gone out,
                # which the client can see a moment before the worker has finished with it:
                # let that moment pass before the closing marker.
                time.sleep(0.002)
                marker_request(port, end_name)
                lines = log.until_marker(end_name)
                ok, reason = judge(stage.get("output") or {}, status, error, lines)
                if not ok:
                    passed, why = False, reason
                    break
            results[title] = (passed, why)
            if proxy.poll() is not None:
                raise RuntimeError("%s exited during %s" % (target, title))
        return results
    finally:
        if proxy is not None:
            stop(proxy)
        stop(backend)


def compare(ours, nginx):
    """Per case: (only gatehouse passes, only nginx passes), each {title: why the other failed}."""
    only_ours = {t: nginx[t][1] for t in ours if ours[t][0] and t in nginx and not nginx[t][0]}
    only_nginx = {t: ours[t][1] for t in ours if not ours[t][0] and t in nginx and nginx[t][0]}
    return only_ours, only_nginx


def load_overrides():
    doc = yaml.safe_load(OVERRIDES.read_text()) if OVERRIDES.exists() else None
    return {str(k): v for k, v in ((doc or {}).get("overrides") or {}).items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gatehouse", required=True)
    ap.add_argument("--modules", required=True)
    ap.add_argument("--only", help="test titles starting with this (e.g. 942100)")
    ap.add_argument("--report", help="write every failing case, one per line, here")
    ap.add_argument("--compare", action="store_true",
                    help="also run the cases through nginx + ModSecurity with the same rules and "
                         "list the cases where the two differ")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="crs-"))
    results = run(os.path.abspath(args.gatehouse), os.path.abspath(args.modules), args.only,
                  work)
    failed = {t: why for t, (ok, why) in results.items() if not ok}
    overrides = load_overrides()
    total = len(results)
    print("CRS regression: %d of %d passed (%.2f %%); %d failed, %d of them in %s"
          % (total - len(failed), total, 100.0 * (total - len(failed)) / max(total, 1),
             len(failed), len(set(failed) & set(overrides)), OVERRIDES.name))
    for t, why in sorted(failed.items()):
        if t not in overrides:
            print("  not in overrides: %s: %s" % (t, why))
    if args.report:
        Path(args.report).write_text("".join("%s: %s\n" % kv for kv in sorted(failed.items())))
    if args.compare:
        why_not = nginx_available()
        if why_not:
            print("no comparison: %s" % why_not)
            return 1
        theirs = run(None, None, args.only, work, target="nginx")
        passed = sum(1 for ok, _ in theirs.values() if ok)
        print("nginx + ModSecurity, same rules: %d of %d passed" % (passed, len(theirs)))
        only_ours, only_nginx = compare(results, theirs)
        print("passed by gatehouse only: %d" % len(only_ours))
        for t, why in sorted(only_ours.items()):
            print("  %s (nginx: %s)" % (t, why))
        print("passed by nginx only: %d" % len(only_nginx))
        for t, why in sorted(only_nginx.items()):
            print("  %s (gatehouse: %s)" % (t, why))
    return 0


if __name__ == "__main__":
    sys.exit(main())
