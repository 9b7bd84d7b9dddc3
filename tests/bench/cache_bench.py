#!/usr/bin/env python3
"""Cache-hit benchmark (issue 6): gatehouse's cache_disk vs nginx `proxy_cache`, same machine,
same run, both serving one 10 KiB object from their cache.

Run through tests/bench/cache.sh. Standard library only; the process registry, nginx start-up,
wrk driving and parsing, CPU accounting from /proc and the table helpers are bench.py's (the
run.sh benchmark). All traffic is on 127.0.0.1; every process started is killed by PID on exit.

The object must be a hit for every measured request: each cache is warmed and its cache-status
header checked, and the origin's access log must not grow while wrk runs (else the run fails).
"""

import argparse
import datetime
import http.client
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import (Bench, BenchError, Proxy, Stub, fmt, log, md_table, median, nginx_common,
                   arm_time_limit, report_failure, resource_nofile, text_table, versions,
                   wait_ready)

HERE = Path(__file__).resolve().parent
OBJECT = "/10k.bin"
OBJECT_BYTES = bytes((i * 11) % 251 for i in range(10 * 1024))
WARM_REQUESTS = 3  # per proxy, after the start-up probe (which is the miss that stores it)
CONNS = 64


# --------------------------------------------------------------------------------------------
# Configurations


def origin_conf(tmp, port, status, nofile):
    """nginx serving /10k.bin (ETag and Last-Modified are nginx's own), logging every request."""
    return nginx_common(tmp, "origin", 1, nofile, 4096) + f"""
    default_type application/octet-stream;
    sendfile on;
    log_format bench '$msec $remote_addr:$remote_port "$request" $status $body_bytes_sent';
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {tmp}/www;
        access_log {tmp}/origin-access.log bench;
        add_header Cache-Control "max-age=3600";
    }}
    server {{
        listen 127.0.0.1:{status};
        location / {{ stub_status; }}
    }}
}}
"""


def nginx_cache_conf(tmp, port, origin, nofile):
    return nginx_common(tmp, "nginx-cache", 1, nofile, 4096) + f"""
    proxy_cache_path {tmp}/ngx-cache levels=1:2 keys_zone=bench:10m max_size=1g inactive=10m use_temp_path=off;
    upstream origin {{
        server 127.0.0.1:{origin};
        keepalive 64;
        keepalive_requests 100000000;
        keepalive_timeout 60s;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffer_size 16k;
            proxy_buffers 8 16k;
            proxy_cache bench;
            proxy_cache_valid 200 1h;
            add_header X-Cache-Status $upstream_cache_status;
        }}
    }}
}}
"""


def gatehouse_cache_conf(tmp, port, origin, module_dir):
    return f"""# gatehouse cache benchmark config: cache_disk defaults apart from its path
[server]
workers = 1
log_level = "warn"

[modules]
dir = "{module_dir}"
load = ["round_robin", "cache_disk"]

[[listener]]
name = "bench"
listen = "127.0.0.1:{port}"

[upstream.origin]
balancer = "round_robin"
servers = [{{ address = "127.0.0.1:{origin}" }}]
keepalive = 64

[filter.cache_disk]
path = "{tmp}/gh-cache"

[[route]]
name = "bench"
path = "/"
upstream = "origin"
filters = ["cache_disk"]
"""


# --------------------------------------------------------------------------------------------
# Origin accounting and cache checks


def logged_requests(tmp):
    """Requests for the object in the origin's access log."""
    try:
        text = (tmp / "origin-access.log").read_text()
    except FileNotFoundError:
        return 0
    return sum(1 for line in text.splitlines() if f'"GET {OBJECT} ' in line)


def get(port):
    """One GET the way wrk sends it (Host: 127.0.0.1:PORT, so the same cache key);
    returns (status, headers with lower-case names, body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", OBJECT)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


class CacheBench(Bench):
    def __init__(self, args):
        super().__init__(args)
        self.warmups = {}  # proxy -> warm-up responses and the origin requests they caused
        self.order = []  # per round, the order the proxies ran in

    def start(self):
        a = self.a
        nofile = resource_nofile()
        www = self.tmp / "www"
        www.mkdir()
        (www / "10k.bin").write_bytes(OBJECT_BYTES)
        # nginx's workers drop root privileges: they must read the object.
        for path, mode in ((self.tmp, 0o755), (www, 0o755), (www / "10k.bin", 0o644)):
            path.chmod(mode)

        op, st = self.ports.get(), self.ports.get()
        conf = self.tmp / "origin.conf"
        conf.write_text(origin_conf(self.tmp, op, st, nofile))
        self.origin = self.spawn_nginx("origin", conf)
        wait_ready(op, OBJECT, self.origin, "origin nginx")
        self.stub = Stub(st)
        self.stub.read()
        status, headers, body = get(op)
        if status != 200 or body != OBJECT_BYTES or "etag" not in headers or \
                headers.get("cache-control") != "max-age=3600":
            raise BenchError(f"origin answers {status} {headers} ({len(body)} bytes)")
        self.origin_base = self.origin_requests()  # the two checks above, not via a proxy

        module_dir = Path(a.module_dir).resolve()
        if not (module_dir / "cache_disk.so").exists():
            raise BenchError(f"cache_disk.so missing in {module_dir}")
        port = self.ports.get()
        conf = self.tmp / "gatehouse.toml"
        conf.write_text(gatehouse_cache_conf(self.tmp, port, op, module_dir))
        rc, out, err = self.reg.run([a.gatehouse, "check", "-c", str(conf)], "gatehouse check", 20)
        if rc:
            raise BenchError(f"gatehouse check failed:\n{out}{err}")
        logf = open(self.tmp / "gatehouse.log", "w")
        p = self.reg.popen([a.gatehouse, "-c", str(conf)], "gatehouse",
                           stdout=logf, stderr=subprocess.STDOUT)
        self.warm("gatehouse", port, p, "cache-status", lambda v: "; hit" in v)
        self.proxies["gatehouse"] = Proxy("gatehouse", "gatehouse cache_disk", "gatehouse", 1,
                                          port, p)

        port = self.ports.get()
        conf = self.tmp / "nginx-cache.conf"
        conf.write_text(nginx_cache_conf(self.tmp, port, op, nofile))
        p = self.spawn_nginx("nginx-cache", conf)
        self.warm("nginx", port, p, "x-cache-status", lambda v: v == "HIT")
        self.proxies["nginx"] = Proxy("nginx", "nginx proxy_cache", "nginx", 1, port, p)
        self.proxies["nginx"].pids(self.reg)  # records the workers and cache processes

    def origin_requests(self):
        """Requests for the object the origin has logged. nginx logs a request after sending
        its response, so a client may have it before the line is written: a stub_status request
        to the origin's one worker first makes sure every earlier request is logged."""
        self.stub.read()
        return logged_requests(self.tmp)

    def warm(self, name, port, proc, header, is_hit):
        """Start-up probe (the miss that stores the object), then WARM_REQUESTS that must hit."""
        before = self.origin_requests()
        wait_ready(port, OBJECT, proc, name)
        seen = []
        for _ in range(WARM_REQUESTS):
            status, headers, body = get(port)
            value = headers.get(header, "(none)")
            seen.append(f"{status} {header}: {value}")
            if status != 200 or body != OBJECT_BYTES:
                raise BenchError(f"{name} warm-up: {status}, {len(body)} bytes, headers {headers}")
        fetched = self.origin_requests() - before
        self.warmups[name] = {"responses": seen, "origin": fetched, "headers": headers}
        log(f"{name} warm-up: {'; '.join(seen)}; origin requests {fetched}")
        if not is_hit(value):
            raise BenchError(f"{name}: not a cache hit after warm-up: {seen}; last response "
                             f"headers {headers}; origin requests {fetched}")
        if fetched > 1 + WARM_REQUESTS:
            raise BenchError(f"{name}: origin got {fetched} requests during the warm-up")

    def measure_hits(self, proxy):
        """bench.py's measure (wrk warm-up, then wrk with CPU from /proc), failing if anything
        reached the origin meanwhile."""
        before = self.origin_requests()
        r = self.measure(proxy, OBJECT, CONNS)
        grew = self.origin_requests() - before
        if grew or r["upstream_requests"]:
            raise BenchError(f"{proxy.label}: the origin served {grew} requests (stub_status: "
                             f"{r['upstream_requests']}) while wrk ran: not all hits")
        return r


# --------------------------------------------------------------------------------------------
# Report


def ratio(res, field, gh="gatehouse", nx="nginx"):
    """Median over rounds of the per-round gatehouse / nginx ratios."""
    return median(g[field] / n[field] for g, n in zip(res[gh], res[nx]) if n[field])


def report(b, res, started, finished, command, origin_total):
    a = b.a
    v = versions(a.gatehouse)
    head = ["proxy", "req/s", "p50 ms", "p99 ms", "errors", "CPU µs/req"]
    rows = []
    for key in ("gatehouse", "nginx"):
        rs = res[key]
        rows.append([b.proxies[key].label, fmt(median(r["rps"] for r in rs), ".0f"),
                     fmt(median(r["p50"] for r in rs), ".3f"),
                     fmt(median(r["p99"] for r in rs), ".3f"),
                     fmt(median(r["errors"] for r in rs), ".0f"),
                     fmt(median(r["cpu_us"] for r in rs), ".2f")])
    rps, p99, p50, cpu = (ratio(res, f) for f in ("rps", "p99", "p50", "cpu_us"))
    rrows = [["req/s", fmt(rps, ".3f"), "≥ 1.00", "met" if rps >= 1.0 else "NOT met"],
             ["p99", fmt(p99, ".3f"), "≤ 1.00", "met" if p99 <= 1.0 else "NOT met"],
             ["p50", fmt(p50, ".3f"), "", ""],
             ["CPU µs/req", fmt(cpu, ".3f"), "", ""]]

    md = ["# cache benchmark (issue 6): cache_disk vs nginx proxy_cache, hits", "",
          f"Run {started:%Y-%m-%d %H:%M} UTC, {finished - started.timestamp():.0f} s; `{command}`",
          "",
          f"- {v['machine']}; wrk, origin and proxy share these CPUs",
          f"- {v['gatehouse']}; {v['nginx']}; {v['wrk']}",
          f"- origin: nginx, 1 worker, `{OBJECT}` ({len(OBJECT_BYTES)} bytes, sendfile) with "
          f"`Cache-Control: max-age=3600`, nginx's ETag and Last-Modified, every request logged",
          "- gatehouse: `workers = 1`, `load = [\"round_robin\", \"cache_disk\"]`, "
          "`[filter.cache_disk] path = \"<tmp>/gh-cache\"` (other keys default), route `/` with "
          "`filters = [\"cache_disk\"]`, upstream `keepalive = 64`",
          "- nginx: `worker_processes 1`, `proxy_cache_path <tmp>/ngx-cache levels=1:2 "
          "keys_zone=bench:10m max_size=1g inactive=10m use_temp_path=off`, `proxy_cache bench; "
          "proxy_cache_valid 200 1h`, `add_header X-Cache-Status $upstream_cache_status`, "
          "upstream `keepalive 64`, HTTP/1.1, 16 KiB proxy buffers; CPU counts the master, the "
          "worker and the cache manager/loader",
          f"- each cache warmed with a start-up probe plus {WARM_REQUESTS} GETs (same Host as "
          f"wrk), the last of which must be a hit; `wrk -t{a.threads} -c{CONNS} -d{a.duration}s "
          f"--latency` after a {a.warmup} s wrk warm-up, {a.rounds} round(s), the proxies' order "
          f"alternated; medians over rounds (ratios: median of the per-round ratios)",
          f"- origin requests for the object through the proxies: {origin_total} in the whole "
          f"run, all during the warm-ups (" + ", ".join(f"{k} {w['origin']}" for k, w in
                                                       b.warmups.items())
          + "); none while wrk ran, checked after each measurement (access log and stub_status)",
          "", "## Cache hits, 10 KiB object, 64 connections, 1 worker", ""]
    md += md_table(head, rows)
    md += ["", "## gatehouse ÷ nginx", ""]
    md += md_table(["figure", "ratio", "goal", ""], rrows)
    md += ["", "Warm-up responses:", ""]
    for k, w in b.warmups.items():
        md.append(f"- {b.proxies[k].label}: " + "; ".join(f"`{s}`" for s in w["responses"]))
    errs = [(k, i + 1, r["errors"]) for k, rs in res.items() for i, r in enumerate(rs)
            if r["errors"]]
    if errs:
        md += ["", "Errors (wrk non-2xx/3xx + socket errors):", ""]
        md += [f"- {b.proxies[k].label} round {i}: {e}" for k, i, e in errs]
    md += ["", "## Per-round figures", ""]
    prow = [[b.proxies[k].label, str(i + 1), f"{r['rps']:.0f}", f"{r['p50']:.3f}",
             f"{r['p99']:.3f}", str(r["errors"]), f"{r['cpu_us']:.2f}", str(r["requests"])]
            for i in range(a.rounds) for k in b.order[i] for r in [res[k][i]]]
    md += md_table(["proxy", "round", "req/s", "p50 ms", "p99 ms", "errors", "CPU µs/req",
                    "requests"], prow)
    txt = text_table(head, rows) + [""] + text_table(["gatehouse ÷ nginx", "ratio", "goal", ""],
                                                      rrows)
    return "\n".join(md) + "\n", "\n".join(txt)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gatehouse", required=True)
    ap.add_argument("--module-dir", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    ap.add_argument("--warmup", type=int, default=1, help="seconds of wrk before each measurement")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads (1 per proxy worker)")
    ap.add_argument("--out", default=str(HERE / "cache-results.md"))
    ap.add_argument("--command", default="tests/bench/cache.sh")
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--time-limit", type=int, default=600, help="abort the whole run after")
    a = ap.parse_args(argv)
    if a.rounds < 1 or a.duration < 1:
        ap.error("--rounds and --duration must be ≥ 1")

    a.tmp = tempfile.mkdtemp(prefix="gh-cache-bench-")
    a.pid_file = str(Path(a.tmp) / "pids")

    arm_time_limit(a.time_limit)

    started = datetime.datetime.now(datetime.timezone.utc)
    b = CacheBench(a)
    try:
        log(f"starting origin and proxies in {a.tmp}")
        b.start()
        after_warmup = b.origin_requests()
        res = {"gatehouse": [], "nginx": []}
        for rnd in range(a.rounds):
            order = ["gatehouse", "nginx"] if rnd % 2 == 0 else ["nginx", "gatehouse"]
            b.order.append(order)
            for key in order:
                r = b.measure_hits(b.proxies[key])
                res[key].append(r)
                log(f"[round {rnd + 1}/{a.rounds}] {key:9} {r['rps']:9.0f} req/s  "
                    f"p50 {r['p50']:.3f} ms  p99 {r['p99']:.3f} ms  err {r['errors']}  "
                    f"CPU {r['cpu_us']:.2f} µs/req")
        total = b.origin_requests()
        if total != after_warmup:
            raise BenchError(f"origin served {total - after_warmup} requests after the warm-ups")
        md, txt = report(b, res, started, time.time(), a.command, total - b.origin_base)
        Path(a.out).write_text(md)
        print(txt)
        print(f"\nMarkdown: {a.out}")
        return 0
    except BenchError as e:
        return report_failure("cache bench", e, a.tmp)
    finally:
        signal.alarm(0)
        b.reg.cleanup()
        if a.keep_tmp:
            log(f"configs and logs kept in {a.tmp}")
        else:
            shutil.rmtree(a.tmp, True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
