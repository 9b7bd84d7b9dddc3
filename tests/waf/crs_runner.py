#!/usr/bin/env python3
"""The OWASP CRS 3.3.4 regression suite (tests/waf/crs-regression, FTW YAML) against a running
gatehouse with the waf module, over HTTP, in front of a real backend.

Set-up (the CRS project's own, see crs-regression/README.md): the CRS at paranoia 4 in
DetectionOnly, the 900005 variables, and a marker rule: a request carrying `X-CRS-Test: NAME`
logs `X-CRS-Test NAME` and skips every other rule. Each stage is sent between two marker
requests on fresh connections; the rule ids the engine logged between the two markers (its
native lines, `engine_log`, one worker so the order is the order of the requests) are that
stage's matches.

    crs_runner.py --gatehouse BIN --modules DIR [--only 942100] [--report FILE]

prints a summary and writes the per-case results; tests/integration/test_waf_crs.py runs it and
checks the result against crs-overrides.yaml."""

import argparse
import base64
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

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
response_types = ["text/plain", "text/html", "text/xml", "application/json"]
[[route]]
path = "/"
upstream = "app"
filters = ["waf"]
body_limit = "16m"
""" % (json.dumps(str(modules)), backend_port, json.dumps(str(setup)),
       json.dumps(str(Path(tmp) / "engine.log")))


def start(cmd, log_path, ready):
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE if ready == "port" else log,
                            stderr=log, stdin=subprocess.DEVNULL)
    return proc


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(gatehouse, modules, only=None, workdir=None):
    """Runs the suite; returns {title: (passed, why)}."""
    tmp = Path(workdir or tempfile.mkdtemp(prefix="crs-"))
    backend = subprocess.Popen([sys.executable, str(BACKEND), "--id", "crs", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=open(tmp / "backend.err", "wb"),
                               stdin=subprocess.DEVNULL)
    g = None
    try:
        backend_port = int(backend.stdout.readline())
        (tmp / "gatehouse.toml").write_text(config(tmp, backend_port, modules))
        g = subprocess.Popen([gatehouse, "-c", str(tmp / "gatehouse.toml")],
                             stdout=open(tmp / "gatehouse.log", "wb"), stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        port = None
        deadline = time.monotonic() + 30
        while port is None and time.monotonic() < deadline and g.poll() is None:
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)",
                          (tmp / "gatehouse.log").read_text(errors="replace"))
            if m and "ready" in (tmp / "gatehouse.log").read_text(errors="replace"):
                port = int(m.group(1))
            time.sleep(0.05)
        if port is None:
            raise RuntimeError("gatehouse did not start:\n" +
                               (tmp / "gatehouse.log").read_text(errors="replace"))
        log = EngineLog(tmp / "engine.log")
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
            if g.poll() is not None:
                raise RuntimeError("gatehouse exited during %s:\n%s" % (
                    title, (tmp / "gatehouse.log").read_text(errors="replace")[-3000:]))
        return results
    finally:
        if g is not None:
            stop(g)
        stop(backend)


def load_overrides():
    doc = yaml.safe_load(OVERRIDES.read_text()) if OVERRIDES.exists() else None
    return {str(k): v for k, v in ((doc or {}).get("overrides") or {}).items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gatehouse", required=True)
    ap.add_argument("--modules", required=True)
    ap.add_argument("--only", help="test titles starting with this (e.g. 942100)")
    ap.add_argument("--report", help="write every failing case, one per line, here")
    args = ap.parse_args()
    results = run(os.path.abspath(args.gatehouse), os.path.abspath(args.modules), args.only)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
