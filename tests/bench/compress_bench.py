#!/usr/bin/env python3
"""Compression benchmark (issue 5): gatehouse's compress module vs nginx `gzip on` at the same
level, same machine, same run; plus output sizes against the gzip and brotli command-line tools.

Run through tests/bench/compress.sh. Standard library only (plus python3-brotli for decoding).
All traffic is on 127.0.0.1; every process started is recorded and killed on exit.
"""

import argparse
import atexit
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOP = HERE.parent.parent
PROCS = []


def kill_all():
    for p in PROCS:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in PROCS:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()


atexit.register(kill_all)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listening on %d" % port)


def html_page(size=100 * 1024, seed=5):
    """A deterministic 100 KiB HTML page: navigation, sections of prose and small tables."""
    rnd = random.Random(seed)
    words = ("proxy gateway request response header body stream chunk encoder window level "
             "module route upstream server client latency throughput buffer socket worker "
             "thread config metric counter gauge histogram cache policy token session cookie "
             "origin vary etag compress brotli gzip deflate identity quality accept content "
             "type length the a of to and in is for with on").split()
    out = ['<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
           '<title>gatehouse bench page</title>\n<link rel="stylesheet" href="/s.css">\n'
           '</head>\n<body>\n<nav class="top"><ul>'
           + "".join('<li><a href="/docs/%s">%s</a></li>' % (w, w.title()) for w in words[:12])
           + "</ul></nav>\n<main>\n"]
    n = 0
    while sum(map(len, out)) < size:
        n += 1
        out.append('<section id="s%d" class="card">\n<h2>%s %d</h2>\n'
                   % (n, " ".join(rnd.choice(words) for _ in range(4)).title(), n))
        for _ in range(rnd.randint(1, 3)):
            out.append("<p>" + " ".join(rnd.choice(words) for _ in range(rnd.randint(20, 60)))
                       + ".</p>\n")
        out.append('<table class="data"><tr><th>name</th><th>value</th><th>unit</th></tr>\n')
        for _ in range(rnd.randint(2, 5)):
            out.append('<tr><td class="k">%s_%s</td><td class="v">%d</td><td>%s</td></tr>\n'
                       % (rnd.choice(words), rnd.choice(words), rnd.randint(0, 99999),
                          rnd.choice(["ms", "s", "B", "KiB", "req/s"])))
        out.append("</table>\n</section>\n")
    return "".join(out).encode()[:size - 16].ljust(size - 16, b" ") + b"</main></body>\n\n"


def start(cmd, log):
    with open(log, "wb") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=f, stdin=subprocess.DEVNULL)
    PROCS.append(p)
    return p


NGINX_COMMON = """
worker_rlimit_nofile 65536;
error_log {tmp}/{name}-error.log warn;
pid {tmp}/{name}.pid;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/{name}-body; proxy_temp_path {tmp}/{name}-proxy;
  fastcgi_temp_path {tmp}/{name}-fcgi; uwsgi_temp_path {tmp}/{name}-uwsgi;
  scgi_temp_path {tmp}/{name}-scgi;
  types {{ text/html html; }}
  keepalive_requests 1000000;
"""


def nginx_backend(tmp, port):
    conf = tmp / "backend.conf"
    conf.write_text("daemon off;\nworker_processes 1;\n"
                    + NGINX_COMMON.format(tmp=tmp, name="backend")
                    + "  server {\n    listen 127.0.0.1:%d;\n    root %s;\n    sendfile on;\n"
                      "    gzip off;\n  }\n}\n" % (port, tmp / "www"))
    return start(["nginx", "-c", str(conf), "-p", str(tmp)], tmp / "backend.log")


def nginx_gzip_proxy(tmp, port, backend_port, level):
    conf = tmp / "nginx-gzip.conf"
    conf.write_text("daemon off;\nworker_processes 1;\n"
                    + NGINX_COMMON.format(tmp=tmp, name="proxy")
                    + "  upstream app {\n    server 127.0.0.1:%d;\n    keepalive 64;\n  }\n"
                      "  server {\n    listen 127.0.0.1:%d;\n"
                      "    gzip on;\n    gzip_comp_level %d;\n    gzip_types text/html;\n"
                      "    gzip_min_length 256;\n    gzip_vary on;\n    gzip_proxied any;\n"
                      "    location / {\n      proxy_pass http://app;\n"
                      "      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n"
                      "      proxy_buffer_size 16k;\n      proxy_buffers 8 16k;\n    }\n  }\n}\n"
                    % (backend_port, port, level))
    return start(["nginx", "-c", str(conf), "-p", str(tmp)], tmp / "nginx-gzip.log")


def gatehouse(tmp, binary, module_dir, port, backend_port, gzip_level, brotli_level):
    conf = tmp / "gatehouse.toml"
    conf.write_text(
        '[server]\nworkers = 1\nlog_level = "warn"\n\n'
        '[modules]\ndir = "%s"\nload = ["round_robin", "compress"]\n\n'
        '[[listener]]\nlisten = "127.0.0.1:%d"\n\n'
        '[upstream.app]\nbalancer = "round_robin"\nkeepalive = 64\n'
        'servers = [{ address = "127.0.0.1:%d" }]\n\n'
        '[[route]]\npath = "/"\nupstream = "app"\nfilters = ["compress"]\n\n'
        '[filter.compress]\ngzip_level = %d\nbrotli_level = %d\n'
        % (module_dir, port, backend_port, gzip_level, brotli_level))
    return start([binary, "-c", str(conf)], tmp / "gatehouse.log")


def http_get(port, path, accept):
    """One GET; returns (headers dict, body bytes). Content-Length or chunked framing."""
    with socket.create_connection(("127.0.0.1", port), 10) as s:
        s.sendall(("GET %s HTTP/1.1\r\nHost: bench\r\nAccept-Encoding: %s\r\n"
                   "Connection: close\r\n\r\n" % (path, accept)).encode())
        data = b""
        while True:
            got = s.recv(65536)
            if not got:
                break
            data += got
    head, _, body = data.partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding") == "chunked":
        out = b""
        while True:
            line, _, body = body.partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            if size == 0:
                break
            out += body[:size]
            body = body[size + 2:]
        body = out
    return headers, body


def wrk(port, accept, duration, threads, conns):
    out = subprocess.run(["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % duration,
                          "-H", "Accept-Encoding: " + accept,
                          "http://127.0.0.1:%d/page.html" % port],
                         capture_output=True, text=True, timeout=duration + 30).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if not m:
        raise RuntimeError("wrk output without Requests/sec:\n" + out)
    return float(m.group(1)), (errors.group(0) if errors else "")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gatehouse", required=True)
    ap.add_argument("--module-dir", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--gzip-level", type=int, default=6)
    ap.add_argument("--brotli-level", type=int, default=5)
    ap.add_argument("--out", default=str(HERE / "compress-results.md"))
    ap.add_argument("--keep-tmp", action="store_true")
    args = ap.parse_args(argv)
    import brotli  # python3-brotli

    tmp = Path(tempfile.mkdtemp(prefix="gh-compress-bench-"))
    if not args.keep_tmp:
        atexit.register(shutil.rmtree, tmp, True)
    (tmp / "www").mkdir()
    page = html_page()
    (tmp / "www" / "page.html").write_bytes(page)
    # nginx's workers drop root privileges: they must be able to read the page.
    for path, mode in ((tmp, 0o755), (tmp / "www", 0o755), (tmp / "www" / "page.html", 0o644)):
        path.chmod(mode)

    backend_port, gh_port, ng_port = free_port(), free_port(), free_port()
    nginx_backend(tmp, backend_port)
    nginx_gzip_proxy(tmp, ng_port, backend_port, args.gzip_level)
    gatehouse(tmp, args.gatehouse, args.module_dir, gh_port, backend_port, args.gzip_level,
              args.brotli_level)
    for p in (backend_port, gh_port, ng_port):
        wait_port(p)

    # ---- sizes
    cli_gzip = len(subprocess.run(["gzip", "-%d" % args.gzip_level, "-n", "-c"], input=page,
                                  capture_output=True, check=True).stdout)
    cli_br = len(subprocess.run(["brotli", "-q", str(args.brotli_level), "-c"], input=page,
                                capture_output=True, check=True).stdout)
    sizes = []
    for name, port, accept, decode, ref, ref_name in (
            ("gatehouse gzip", gh_port, "gzip", lambda b: __import__("gzip").decompress(b),
             cli_gzip, "gzip -%d" % args.gzip_level),
            ("gatehouse br", gh_port, "br", brotli.decompress, cli_br,
             "brotli -q %d" % args.brotli_level),
            ("nginx gzip", ng_port, "gzip", lambda b: __import__("gzip").decompress(b),
             cli_gzip, "gzip -%d" % args.gzip_level)):
        headers, body = http_get(port, "/page.html", accept)
        assert headers.get("content-encoding") == accept, (name, headers)
        assert decode(body) == page, name + ": decoded body differs from the page"
        diff = 100.0 * (len(body) - ref) / ref
        sizes.append((name, len(body), ref_name, ref, diff))

    # ---- throughput: alternate the proxies each round, medians at the end
    runs = {"gatehouse gzip": [], "nginx gzip": [], "gatehouse br": []}
    notes = []
    targets = {"gatehouse gzip": (gh_port, "gzip"), "nginx gzip": (ng_port, "gzip"),
               "gatehouse br": (gh_port, "br")}
    for r in range(args.rounds):
        order = list(targets) if r % 2 == 0 else list(reversed(list(targets)))
        for name in order:
            port, accept = targets[name]
            rps, err = wrk(port, accept, args.duration, args.threads, args.conns)
            runs[name].append(rps)
            if err:
                notes.append("%s round %d: %s" % (name, r + 1, err))
            print("round %d %-15s %10.0f req/s %s" % (r + 1, name, rps, err), flush=True)

    med = {k: statistics.median(v) for k, v in runs.items()}
    lines = [
        "# compress benchmark (issue 5)",
        "",
        "Generated by `tests/bench/compress.sh` on %s; %d CPUs; %s. One 100 KiB HTML page "
        "(deterministic, `compress_bench.py:html_page`) served by an nginx backend (1 worker, "
        "sendfile); each proxy runs 1 worker: gatehouse (`filters = [\"compress\"]`, "
        "gzip_level %d, brotli_level %d, defaults otherwise) and nginx (`gzip on; "
        "gzip_comp_level %d`, 16 KiB proxy buffers, keepalive 64 to the backend). "
        "`wrk -t%d -c%d -d%ds`, %d rounds alternating the order, medians."
        % (time.strftime("%Y-%m-%d %H:%M"), os.cpu_count(), subprocess.run(
            ["nginx", "-v"], capture_output=True, text=True).stderr.strip(), args.gzip_level,
           args.brotli_level, args.gzip_level, args.threads, args.conns, args.duration,
           args.rounds),
        "",
        "## Throughput",
        "",
        "| proxy | Accept-Encoding | median req/s | rounds |",
        "|---|---|---|---|",
    ]
    for name in ("gatehouse gzip", "nginx gzip", "gatehouse br"):
        lines.append("| %s | %s | %.0f | %s |" % (name.split()[0], targets[name][1], med[name],
                                                   ", ".join("%.0f" % x for x in runs[name])))
    ratio = med["gatehouse gzip"] / med["nginx gzip"]
    lines += ["", "gatehouse gzip / nginx gzip: **%.2f×** (goal ≥ 1.00)." % ratio, "",
              "## Compressed size of the page (%d bytes)" % len(page), "",
              "| output | bytes | reference | reference bytes | difference |",
              "|---|---|---|---|---|"]
    for name, n, ref_name, ref, diff in sizes:
        lines.append("| %s | %d | `%s` | %d | %+.2f %% |" % (name, n, ref_name, ref, diff))
    ok = all(abs(d) <= 1.0 or d < 0 for name, _, _, _, d in sizes if name.startswith("gatehouse"))
    lines += ["", "Size goal (gatehouse within 1 %% of the CLI tools, or smaller): **%s**."
              % ("met" if ok else "NOT met")]
    if notes:
        lines += ["", "wrk reported: " + "; ".join(notes)]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
