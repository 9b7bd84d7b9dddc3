#!/usr/bin/env python3
"""Does the WAF's CPU stall the proxy? A route without the WAF and a WAF route (the CRS at
paranoia 1, blocking) share one gatehouse worker; the WAF route is saturated with 256 KiB
urlencoded form POSTs (tens of ms of engine time each) while the other route's p99 is measured,
against that route's p99 with the WAF route idle. With `offload_above` at its default (64 KiB)
the bodies are inspected on the module's engine threads (SCHED_IDLE, yielding the CPU every
`engine_slice_us`); also measured: those threads never yielding (`engine_slice_us = 0`), and
offload off (`offload_above = "1g"`: on the worker itself). Goal: loaded p99 within 2x of idle p99
with the defaults.

    tests/bench/waf.sh --stall [--rounds N]      (or: python3 tests/bench/waf_stall.py --help)

Uses waf_bench.py's backend (nginx, the page from a file) and payload generator and bench.py's
process registry; loopback only, every process killed by PID."""

import argparse
import statistics
import urllib.parse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import (BenchError, Ports, Registry, arm_time_limit, children_of, cpu_ticks, log,
                   parse_wrk)
import waf_bench as wb

HERE = Path(__file__).resolve().parent
BODY_BYTES = 256 * 1024


def gatehouse_conf(port, backend, module_dir, offload_above, slice_us=200):
    return f"""[server]
workers = 1
log_level = "warn"

[modules]
dir = "{module_dir}"
load = ["round_robin", "waf"]

[[listener]]
listen = "127.0.0.1:{port}"

[upstream.app]
servers = [{{ address = "127.0.0.1:{backend}" }}]
keepalive = 64

[filter.waf]
crs = true
mode = "on"
paranoia = 1
offload_above = "{offload_above}"
engine_slice_us = {slice_us}

[[route]]
name = "plain"
path = "/product/"
upstream = "app"

[[route]]
name = "waf"
path = "/"
upstream = "app"
filters = ["waf"]
body_limit = "1m"
"""


def form_body(size=BODY_BYTES):
    """A big clean form as a back office posts it: many fields of a few lines of prose each
    (the engine's cost grows with the number and length of arguments), exactly `size` bytes."""
    parts, i = [], 0
    while sum(len(p) + 1 for p in parts) < size - 2000:
        parts.append(f"note_{i}=" + urllib.parse.quote_plus(wb.prose(1200, i)))
        i += 1
    body = "&".join(parts) + "&tail="
    body += "+" * (size - len(body))
    return body.encode()


def wait_idle(pid, timeout=300.0):
    """Until the proxy's CPU time stops growing: posts read before a wrk run ended are still
    inspected (on the thread pool) for a while after it."""
    deadline = time.monotonic() + timeout
    last = cpu_ticks([pid])
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu_ticks([pid])
        if now - last <= 1:
            return
        last = now
    raise BenchError(f"gatehouse still busy {timeout:.0f} s after the load ended")


def lua(method, headers, body_file=None):
    lines = [f'wrk.method = "{method}"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers]
    if body_file:
        lines += [f'local f = assert(io.open("{body_file}", "rb"))', 'wrk.body = f:read("*a")',
                  "f:close()"]
    return "\n".join(lines) + "\n"


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gatehouse", required=True)
    ap.add_argument("--module-dir", required=True)
    ap.add_argument("--tmp")
    ap.add_argument("--pid-file")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--load-conns", type=int, default=16)
    ap.add_argument("--out", default=str(HERE / "waf-stall-results.md"))
    ap.add_argument("--command", default="tests/bench/waf.sh --stall")
    a = ap.parse_args(argv)
    a.tmp = a.tmp or tempfile.mkdtemp(prefix="gh-waf-stall-")
    tmp = Path(a.tmp)
    tmp.chmod(0o755)
    arm_time_limit(300 + a.rounds * 6 * (a.duration + 10))
    reg = Registry(a.pid_file or str(tmp / "pids"))
    ports = Ports()
    try:
        # The backend: nginx with the page and the form target (waf_bench's).
        page = wb.html_page()
        www = tmp / "www"
        (www / "product").mkdir(parents=True)
        (www / "product" / "sourdough.html").write_bytes(page)
        for p in (tmp, www, www / "product"):
            p.chmod(0o755)
        bp, st = ports.get(), ports.get()
        conf = tmp / "backend.conf"
        conf.write_text(wb.backend_conf(tmp, bp, st, wb.resource_nofile()))
        backend = reg.popen(["nginx", "-c", str(conf), "-p", str(tmp), "-e",
                             str(tmp / "backend-error.log")], "nginx",
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wb.wait_port(bp, backend, "backend nginx", "/product/sourdough.html", 15)
        for kid in children_of(backend.pid):
            reg.adopt(kid)
        body = form_body()
        (tmp / "form.body").write_bytes(body)
        post_h = wb.COMMON_HEADERS + [("Content-Type", "application/x-www-form-urlencoded")]
        (tmp / "form.lua").write_text(lua("POST", post_h, tmp / "form.body"))
        (tmp / "get.lua").write_text(lua("GET", wb.COMMON_HEADERS))

        results = {}
        modes = (("offload on (64k), engine_slice_us 200 (defaults)", "64k", 200, "default"),
                 ("offload on, engine_slice_us 0 (never yields)", "64k", 0, "noslice"),
                 ("offload off", "1g", 200, "nooffload"))
        for mode, offload, slice_us, tag in modes:
            port = ports.get()
            gconf = tmp / f"gatehouse-{tag}.toml"
            gconf.write_text(gatehouse_conf(port, bp, Path(a.module_dir).resolve(), offload,
                                            slice_us))
            g = reg.popen([a.gatehouse, "-c", str(gconf)], "gatehouse",
                          stdout=open(tmp / f"gatehouse-{tag}.log", "w"),
                          stderr=subprocess.STDOUT)
            wb.wait_port(port, g, "gatehouse", "/product/sourdough.html", 60)
            probe = ["wrk", "-t1", "-c4", f"-d{a.duration}s", "--latency", "--timeout", "10s", "-s",
                     str(tmp / "get.lua"), f"http://127.0.0.1:{port}/product/sourdough.html"]
            load = ["wrk", "-t1", f"-c{a.load_conns}", f"-d{a.duration + 3}s", "--latency",
                    "--timeout", "20s", "-s", str(tmp / "form.lua"),
                    f"http://127.0.0.1:{port}/account/profile"]
            rounds = []
            for _ in range(a.rounds):
                wait_idle(g.pid)
                rc, out, err = reg.run(probe, "wrk", a.duration + 30)
                idle = parse_wrk(out)
                lp = reg.popen(load, "wrk", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
                time.sleep(1.5)  # the WAF route is saturated before the probe starts
                rc, out, err = reg.run(probe, "wrk", a.duration + 30)
                busy = parse_wrk(out)
                lout, _ = lp.communicate(timeout=a.duration + 60)
                loaded = parse_wrk(lout)
                rounds.append({"idle_p99": idle["p99"], "busy_p99": busy["p99"],
                               "idle_rps": idle["rps"], "busy_rps": busy["rps"],
                               "posts_rps": loaded["rps"], "errors": idle["errors"] +
                               busy["errors"] + loaded["errors"]})
                log(f"{mode}: plain p99 {idle['p99']:.3f} ms idle, {busy['p99']:.3f} ms with "
                    f"the WAF route busy ({loaded['rps']:.0f} posts/s)")
            reg.stop(g)
            results[mode] = rounds

        med = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
        lines = ["# waf: does the engine stall the proxy?", "",
                 f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; `{a.command}`", "",
                 f"One gatehouse worker, two routes on it: `/product/` without the WAF (probe: "
                 f"`wrk -t1 -c4 -d{a.duration}s` GETs of a 1 KiB page) and `/` with the CRS at "
                 f"paranoia 1 in blocking mode (load: `wrk -t1 -c{a.load_conns}` POSTs of a "
                 f"{BODY_BYTES // 1024} KiB clean urlencoded form of ~200 fields). p99 of the probe with the WAF "
                 f"route idle, then busy; {a.rounds} rounds, medians. Goal: busy p99 ≤ 2× idle "
                 f"p99 with the defaults. The engine threads run SCHED_IDLE and yield the CPU every "
                 f"`engine_slice_us` while they work.", "",
                 "| mode | probe p99 idle ms | probe p99 busy ms | busy ÷ idle | probe req/s idle "
                 "| probe req/s busy | form POSTs/s | errors | goal |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for mode, rs in results.items():
            ratio = statistics.median(r["busy_p99"] / max(r["idle_p99"], 1e-6) for r in rs)
            goal = ("met" if ratio <= 2 else "NOT met") if "defaults" in mode else "—"
            lines.append(f"| {mode} | {med(rs, 'idle_p99'):.3f} | {med(rs, 'busy_p99'):.3f} | "
                         f"{ratio:.2f} | {med(rs, 'idle_rps'):.0f} | {med(rs, 'busy_rps'):.0f} | "
                         f"{med(rs, 'posts_rps'):.1f} | {sum(r['errors'] for r in rs)} | {goal} |")
        Path(a.out).write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
        return 0
    except BenchError as e:
        print(f"waf stall: {e}", file=sys.stderr)
        return 1
    finally:
        reg.cleanup()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
