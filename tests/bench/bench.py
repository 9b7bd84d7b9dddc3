#!/usr/bin/env python3
"""gatehouse vs nginx vs HAProxy on loopback: orchestration, measurement and report.

Called by tests/bench/run.sh (which installs the tools, builds gatehouse, raises RLIMIT_NOFILE
and cleans up by PID). Standard library only. Everything is bounded in time: every child has a
deadline, the whole run has an alarm, and every process started is recorded in --pid-file
("PID COMM" lines) so run.sh's EXIT trap can kill whatever this script could not.

Traffic goes to 127.0.0.1 only.
"""

import argparse
import contextlib
import datetime
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

CLK_TCK = os.sysconf("SC_CLK_TCK")
HERE = Path(__file__).resolve().parent
TOP = HERE.parent.parent


_T0 = time.monotonic()


def log(msg):
    print(f"{time.monotonic() - _T0:6.1f}s {msg}", file=sys.stderr, flush=True)


def arm_time_limit(seconds):
    """SIGTERM/SIGINT end the run through the normal cleanup; after `seconds` a BenchError."""
    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    def on_alarm(_signum, _frame):
        raise BenchError(f"time limit of {seconds} s reached")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)


def report_failure(prefix, error, tmp):
    """Logs a BenchError and the last lines of every log in `tmp`; returns the exit code 1."""
    log(f"{prefix}: error: {error}")
    for f in sorted(Path(tmp).glob("*.log")):
        tail = f.read_text(errors="replace").strip().splitlines()[-5:]
        if tail:
            log(f"--- {f.name}\n" + "\n".join(tail))
    return 1


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------------------------
# /proc helpers


def children_of(pid):
    """Direct children of pid (nginx master -> workers)."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def cpu_ticks(pids):
    """utime + stime of each process (all its threads, dead ones included), in clock ticks."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)
    return total


def cpu_ns(pids):
    """CPU time of each process's threads alive now, in ns (the scheduler's own count, from
    /proc/PID/task/TID/schedstat): finer than cpu_ticks for the short runs of --compare."""
    total = 0
    for pid in pids:
        for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            try:
                total += int(stat.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
    return total


def children_cpu_s():
    """User + system CPU seconds of this process's children that have ended and been waited
    for (RUSAGE_CHILDREN): around a wrk run, that wrk's CPU (all its threads)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def comm_of(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


# --------------------------------------------------------------------------------------------
# Processes


class Registry:
    """Every process started, recorded in the PID file for run.sh's trap as well."""

    def __init__(self, pid_file):
        self.pid_file = pid_file
        self.procs = []  # (Popen, name)
        self.extra = set()  # discovered children (nginx workers)

    def record(self, pid):
        comm = comm_of(pid)
        if comm:
            with open(self.pid_file, "a") as f:
                f.write(f"{pid} {comm}\n")

    def popen(self, argv, name, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(argv, start_new_session=True, **kw)
        self.procs.append((p, name))
        # comm is the binary's name once exec has happened; wait for it briefly.
        want = os.path.basename(argv[0])[:15]
        deadline = time.monotonic() + 2
        while comm_of(p.pid) not in (want, None) and time.monotonic() < deadline:
            time.sleep(0.005)
        self.record(p.pid)
        return p

    def adopt(self, pid):
        if pid not in self.extra:
            self.extra.add(pid)
            self.record(pid)

    def stop(self, p, grace=5.0):
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
            except ProcessLookupError:
                pass

    def cleanup(self):
        for p, _ in reversed(self.procs):
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for p, _ in reversed(self.procs):
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                try:
                    p.wait(3)
                except subprocess.TimeoutExpired:
                    pass
        for pid in self.extra:
            if comm_of(pid) in ("nginx",):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    def run(self, argv, name, timeout, **kw):
        """Runs argv to completion (bounded); returns (rc, stdout, stderr)."""
        p = self.popen(argv, name, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate(timeout=5)
            raise BenchError(f"{name}: no result within {timeout} s")
        return p.returncode, out, err


# --------------------------------------------------------------------------------------------
# Small HTTP helpers (raw sockets, loopback only)


def http_get(port, path, timeout=2.0):
    """One GET on a fresh connection with Connection: close; returns (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
                  .encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, body


def wait_ready(port, path, proc, name, timeout=10.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with status {proc.returncode} during start-up")
        try:
            status, _ = http_get(port, path, timeout=1.0)
            if status == 200:
                return
            last = f"status {status}"
        except OSError as e:
            last = str(e)
        time.sleep(0.05)
    raise BenchError(f"{name} not ready on 127.0.0.1:{port} within {timeout} s ({last})")


class Stub:
    """The backend nginx's stub_status: accepted connections and requests, all listeners."""

    def __init__(self, port):
        self.port = port

    def read(self):
        status, body = http_get(self.port, "/")
        m = re.search(rb"server accepts handled requests\s+(\d+)\s+(\d+)\s+(\d+)", body)
        if status != 200 or not m:
            raise BenchError(f"backend stub_status unreadable: {status} {body[:200]!r}")
        # Each read is one connection and one request of its own (counted in its own answer).
        return int(m.group(1)), int(m.group(3))


# --------------------------------------------------------------------------------------------
# Configurations


class Ports:
    def __init__(self):
        self.used = set()

    def get(self):
        while True:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                p = s.getsockname()[1]
            if p not in self.used:
                self.used.add(p)
                return p


def nginx_common(tmp, name, workers, nofile, conns):
    t = tmp / f"{name}-temp"
    t.mkdir(exist_ok=True)
    return f"""worker_processes {workers};
worker_rlimit_nofile {nofile};
daemon off;
master_process on;
pid {tmp}/{name}.pid;
error_log {tmp}/{name}-error.log warn;
events {{ worker_connections {conns}; }}
http {{
    access_log off;
    client_body_temp_path {t}/client;
    proxy_temp_path {t}/proxy;
    fastcgi_temp_path {t}/fastcgi;
    uwsgi_temp_path {t}/uwsgi;
    scgi_temp_path {t}/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
"""


# The files the backend serves: name, size, and the step of their byte pattern. 1 KiB and
# 100 KiB for the scenarios; the matrix adds two odd sizes (not a multiple of any buffer or page).
BACKEND_FILES = [("1k.bin", 1024, 7), ("100k.bin", 100 * 1024, 13), ("3001.bin", 3001, 11),
                 ("37893.bin", 37893, 17)]

# The backend's third listener closes keep-alive connections idle for this long: shorter than
# every proxy's pool idle time, so the proxies meet connections closed under them.
SHORT_KEEPALIVE_S = 1.0


def backend_conf(tmp, b1, b2, b3, status, nofile, conns):
    return nginx_common(tmp, "backend", 1, nofile, conns) + f"""
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    open_file_cache max=16 inactive=300s;
    open_file_cache_valid 300s;
    server {{
        listen 127.0.0.1:{b1} backlog=4096;
        listen 127.0.0.1:{b2} backlog=4096;
        root {tmp}/www;
        # PUT and POST with a body (the static module answers them 405): read, discarded, 200.
        location = /echo {{ return 200 "ok\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{b3} backlog=4096;
        keepalive_timeout {SHORT_KEEPALIVE_S:g}s;
        root {tmp}/www;
        location = /short/echo {{ return 200 "ok\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{status};
        location / {{ stub_status; }}
    }}
}}
"""


def nginx_proxy_conf(tmp, name, workers, port, b1, b2, b3, nofile, conns):
    headers = """
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            # 16 KiB buffers like HAProxy's tune.bufsize and gatehouse's connection buffers
            # (nginx's default 4/8 KiB ones cost it ~2.5x the syscalls on 100 KiB bodies).
            proxy_buffer_size 16k;
            proxy_buffers 8 16k;"""

    def pool(name, *ports):
        servers = "".join(f"\n        server 127.0.0.1:{p};" for p in ports)
        return f"""
    upstream {name} {{{servers}
        keepalive 64;
        keepalive_requests 100000000;
        keepalive_timeout 60s;
    }}"""
    return nginx_common(tmp, name, workers, nofile, conns) + f"""
    upstream short {{
        server 127.0.0.1:{b3};
        keepalive 64;
        keepalive_timeout 60s;
    }}
{pool("backend", b1, b2)}{pool("one", b1)}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://backend;{headers}
        }}
        location /one/ {{
            proxy_pass http://one;{headers}
        }}
        location /short/ {{
            proxy_pass http://short;{headers}
        }}
    }}
}}
"""


def haproxy_conf(workers, port, b1, b2, b3, maxconn):
    return f"""global
    nbthread {workers}
    maxconn {maxconn}
    # maxconn (for the idle-connection test) implies ~2 fds per connection; the idle test
    # needs one. Without this HAProxy refuses to start when RLIMIT_NOFILE is below that.
    no strict-limits

defaults
    mode http
    option http-keep-alive
    http-reuse always
    option forwardfor
    maxconn {maxconn}
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    timeout http-request 10s

frontend fe
    bind 127.0.0.1:{port}
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    use_backend short if {{ path_beg /short/ }}
    use_backend one if {{ path_beg /one/ }}
    default_backend be

backend short
    server s3 127.0.0.1:{b3}

backend be
    balance roundrobin
    server s1 127.0.0.1:{b1}
    server s2 127.0.0.1:{b2}

backend one
    balance roundrobin
    server s1 127.0.0.1:{b1}
"""


def gatehouse_conf(workers, port, b1, b2, b3, module_dir, load, balancer, upstream_extra=""):
    loads = ", ".join(f'"{m}"' for m in load)

    def pool(name, *ports):
        servers = ", ".join(f'{{ address = "127.0.0.1:{p}" }}' for p in ports)
        extra = f"{upstream_extra}\n" if upstream_extra else ""
        return f"""[upstream.{name}]
balancer = "{balancer}"
servers = [{servers}]
{extra}"""

    def route(name, path, upstream):
        return f"""[[route]]
name = "{name}"
path = "{path}"
upstream = "{upstream}"
"""
    return f"""# gatehouse benchmark config: defaults everywhere (strict framing, limits, timeouts on)
[server]
workers = {workers}
log_level = "warn"

[modules]
dir = "{module_dir}"
load = [{loads}]

[[listener]]
name = "bench"
listen = "127.0.0.1:{port}"

{pool("backend", b1, b2)}
{pool("one", b1)}
{pool("short", b3)}
{route("bench", "/", "backend")}
{route("one", "/one/", "one")}
{route("short", "/short/", "short")}"""


class Proxy:
    def __init__(self, key, label, kind, workers, port, proc):
        self.key, self.label, self.kind, self.workers, self.port, self.proc = (
            key, label, kind, workers, port, proc)

    def pids(self, reg):
        if self.proc.poll() is not None:
            raise BenchError(f"{self.label} ({self.workers}w) exited with status "
                             f"{self.proc.returncode}")
        pids = [self.proc.pid]
        if self.kind == "nginx":
            for kid in children_of(self.proc.pid):
                reg.adopt(kid)
                pids.append(kid)
        return pids


# --------------------------------------------------------------------------------------------
# wrk


_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}


def to_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise BenchError(f"unparsable latency {text!r}")
    return float(m.group(1)) * _UNIT_MS[m.group(2)]


def parse_wrk(out):
    r = {}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+),", out)
    if not m:
        raise BenchError(f"unparsable wrk output:\n{out}")
    r["requests"] = int(m.group(1))
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r["rps"] = float(m.group(1))
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        r[f"p{pct}"] = to_ms(m.group(1))
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(g) for g in m.groups())
    r["errors"] = errors
    return r


class Bench:
    def __init__(self, args):
        self.a = args
        self.tmp = Path(args.tmp)
        self.reg = Registry(args.pid_file)
        self.ports = Ports()
        self.proxies = {}
        self.notes = []
        self.backend = None

    # ---- start-up ------------------------------------------------------------------------

    def start(self):
        a = self.a
        nofile = resource_nofile()
        self.nofile = nofile
        # 10,000 idle client connections: each proxy needs one fd per connection, this process
        # one per socket; keep headroom under the limit.
        self.idle_n = min(a.idle_conns, nofile - 600)
        if self.idle_n < a.idle_conns:
            self.notes.append(f"RLIMIT_NOFILE is {nofile}: idle test uses {self.idle_n} "
                              f"connections instead of {a.idle_conns}")
        wconns = min(nofile - 200, max(16384, self.idle_n + 1024))

        www = self.tmp / "www"
        # The same files under / (the two-server pool), /one/ (the one-server pool) and /short/
        # (the listener that closes idle connections): the proxies pass the path on unchanged.
        for name, size, step in BACKEND_FILES:
            body = bytes((i * step) % 251 for i in range(size))
            for sub in ("", "one", "short"):
                (www / sub).mkdir(parents=True, exist_ok=True)
                (www / sub / name).write_bytes(body)

        b1, b2, b3, st = self.ports.get(), self.ports.get(), self.ports.get(), self.ports.get()
        self.b1, self.b2, self.b3 = b1, b2, b3
        conf = self.tmp / "backend.conf"
        conf.write_text(backend_conf(self.tmp, b1, b2, b3, st, nofile, wconns))
        self.backend = self.spawn_nginx("backend", conf)
        wait_ready(b1, "/1k.bin", self.backend, "backend nginx")
        wait_ready(b2, "/1k.bin", self.backend, "backend nginx")
        self.stub = Stub(st)
        self.stub.read()
        if a.compare:
            return

        modules = sorted(p.stem for p in Path(a.module_dir).glob("*.so")
                         if p.stem != "abi_conformance")
        if "round_robin" not in modules or "least_conn" not in modules:
            raise BenchError(f"round_robin.so / least_conn.so missing in {a.module_dir}")
        self.all_modules = modules

        for w in (1, 2):
            self.add_gatehouse(f"gh-rr-{w}", "gatehouse", w, ["round_robin"], "round_robin")
            self.add_nginx(f"nginx-{w}", w, nofile, wconns)
            self.add_haproxy(f"haproxy-{w}", w)
        self.add_gatehouse("gh-lc-1", "gatehouse least_conn", 1, ["least_conn"], "least_conn")
        self.add_gatehouse("gh-mods-1", "gatehouse +modules", 1, modules, "round_robin")
        # The operator's choice for deploys under load: POSTs replayed on a stale connection.
        self.add_gatehouse("gh-retry-1", "gatehouse retry_non_idempotent", 1, ["round_robin"],
                           "round_robin", upstream_extra="retry_non_idempotent = true")

    def spawn_nginx(self, name, conf):
        rc, out, err = self.reg.run(["nginx", "-t", "-q", "-c", str(conf), "-p", str(self.tmp),
                                     "-e", str(self.tmp / f"{name}-error.log")],
                                    "nginx -t", 20)
        if rc:
            raise BenchError(f"{name}: nginx -t failed:\n{out}{err}")
        logf = open(self.tmp / f"{name}.out", "w")
        return self.reg.popen(["nginx", "-c", str(conf), "-p", str(self.tmp),
                               "-e", str(self.tmp / f"{name}-error.log")],
                              name, stdout=logf, stderr=subprocess.STDOUT)

    def add_gatehouse(self, key, label, workers, load, balancer, binary=None, module_dir=None,
                      upstream_extra=""):
        binary = binary or self.a.gatehouse
        port = self.ports.get()
        conf = self.tmp / f"{key}.toml"
        conf.write_text(gatehouse_conf(workers, port, self.b1, self.b2, self.b3,
                                       Path(module_dir or self.a.module_dir).resolve(), load,
                                       balancer, upstream_extra))
        rc, out, err = self.reg.run([binary, "check", "-c", str(conf)], "gatehouse check", 20)
        if rc:
            raise BenchError(f"{key}: gatehouse check failed:\n{out}{err}")
        logf = open(self.tmp / f"{key}.log", "w")
        p = self.reg.popen([binary, "-c", str(conf)], key,
                           stdout=logf, stderr=subprocess.STDOUT)
        wait_ready(port, "/1k.bin", p, key)
        self.proxies[key] = Proxy(key, label, "gatehouse", workers, port, p)

    def add_nginx(self, key, workers, nofile, wconns):
        port = self.ports.get()
        conf = self.tmp / f"{key}.conf"
        conf.write_text(nginx_proxy_conf(self.tmp, key, workers, port, self.b1, self.b2, self.b3,
                                         nofile, wconns))
        p = self.spawn_nginx(key, conf)
        wait_ready(port, "/1k.bin", p, key)
        self.proxies[key] = Proxy(key, "nginx", "nginx", workers, port, p)
        self.proxies[key].pids(self.reg)  # records the workers

    def add_haproxy(self, key, workers):
        port = self.ports.get()
        conf = self.tmp / f"{key}.cfg"
        conf.write_text(haproxy_conf(workers, port, self.b1, self.b2, self.b3, self.idle_n + 1000))
        rc, out, err = self.reg.run(["haproxy", "-c", "-q", "-f", str(conf)], "haproxy -c", 20)
        if rc:
            raise BenchError(f"{key}: haproxy -c failed:\n{out}{err}")
        logf = open(self.tmp / f"{key}.log", "w")
        p = self.reg.popen(["haproxy", "-db", "-f", str(conf)], key,
                           stdout=logf, stderr=subprocess.STDOUT)
        wait_ready(port, "/1k.bin", p, key)
        self.proxies[key] = Proxy(key, "HAProxy", "haproxy", workers, port, p)

    # ---- measurements --------------------------------------------------------------------

    def wrk_argv(self, port, path, duration, conns, method="GET", threads=None):
        argv = ["wrk", f"-t{threads or self.a.threads}", f"-c{conns}", f"-d{duration}s",
                "--latency", "--timeout", "5s"]
        if method != "GET":
            # A request with a body of BODY_BYTES: wrk sends it as its Lua script says.
            script = self.tmp / f"{method.lower()}.lua"
            if not script.exists():
                script.write_text(f'wrk.method = "{method}"\n'
                                  f'wrk.body = string.rep("b", {BODY_BYTES})\n'
                                  'wrk.headers["Content-Type"] = "application/octet-stream"\n')
            argv += ["-s", str(script)]
        return argv + [f"http://127.0.0.1:{port}{path}"]

    def wrk(self, port, path, duration, conns, method="GET", threads=None):
        argv = self.wrk_argv(port, path, duration, conns, method, threads)
        rc, out, err = self.reg.run(argv, "wrk", duration + 30)
        if rc:
            raise BenchError(f"wrk failed ({rc}): {err.strip()}")
        return parse_wrk(out)

    def backend_pids(self):
        """The backend nginx's master and workers (none for a subclass without self.backend)."""
        if self.backend is None:
            return []
        return [self.backend.pid] + children_of(self.backend.pid)

    def measure(self, proxy, path, conns, threads=None):
        """wrk warm-up, then the wrk run measured: wrk's figures, the proxy's CPU per request,
        and where the CPU went meanwhile (% of one CPU: proxy, wrk, backend)."""
        a = self.a
        self.wrk(proxy.port, path, a.warmup, conns, threads=threads)
        pids = proxy.pids(self.reg)
        backend = self.backend_pids()
        acc0, req0 = self.stub.read()
        t0, b0, w0, s0 = cpu_ticks(pids), cpu_ticks(backend), children_cpu_s(), time.monotonic()
        r = self.wrk(proxy.port, path, a.duration, conns, threads=threads)
        t1, b1, w1, s1 = cpu_ticks(pids), cpu_ticks(backend), children_cpu_s(), time.monotonic()
        acc1, req1 = self.stub.read()
        proxy.pids(self.reg)  # still alive?
        upstream_requests = req1 - req0 - 1
        new_conns = acc1 - acc0 - 1
        r["cpu_us"] = (t1 - t0) / CLK_TCK * 1e6 / max(1, r["requests"])
        wall = max(1e-3, s1 - s0)
        r["proxy_pct"] = 100.0 * (t1 - t0) / CLK_TCK / wall
        r["backend_pct"] = 100.0 * (b1 - b0) / CLK_TCK / wall
        r["wrk_pct"] = 100.0 * (w1 - w0) / wall  # wrk is the only child reaped meanwhile
        r["upstream_new_pct"] = 100.0 * new_conns / max(1, upstream_requests)
        r["upstream_requests"] = upstream_requests
        return r

    def run_rounds(self, cells, n_rounds):
        """Every cell (key, path, conns, proxies, wrk threads or None for --threads) measured once
        per round, its proxies alternated from round to round (ABC, BCA, CAB, ...), so slow drifts
        of the machine hit all of them: {key: {proxy: [per-round results]}}."""
        rounds = {key: {p: [] for p in proxies} for key, _, _, proxies, _ in cells}
        for rnd in range(n_rounds):
            for key, path, conns, proxies, threads in cells:
                k = rnd % len(proxies)
                for p in proxies[k:] + proxies[:k]:
                    r = self.measure(self.proxies[p], path, conns, threads)
                    rounds[key][p].append(r)
                    log(f"[round {rnd + 1}/{n_rounds}] {key:12} {p:10} {r['rps']:9.0f} req/s  "
                        f"p50 {r['p50']:.3f} ms  p99 {r['p99']:.3f} ms  err {r['errors']}  "
                        f"CPU {r['cpu_us']:.2f} µs/req ({r['proxy_pct']:.0f} %, wrk "
                        f"{r['wrk_pct']:.0f} %)  new upstream {r['upstream_new_pct']:.3f} %")
        return rounds

    def idle_close(self, proxy, method="GET"):
        """Bursts of requests to the backend listener that closes connections idle for
        SHORT_KEEPALIVE_S, separated by pauses around that time, so pooled connections are
        closed by the backend before, while and after the proxy reuses them. Counts errors.
        PUT and POST carry a body of BODY_BYTES."""
        path = "/short/1k.bin" if method == "GET" else "/short/echo"
        total = errors = 0
        acc0, _ = self.stub.read()
        for pause in IDLE_CLOSE_PAUSES:
            r = self.wrk(proxy.port, path, 1, 16, method)
            total += r["requests"]
            errors += r["errors"]
            time.sleep(pause)
        r = self.wrk(proxy.port, path, 1, 16, method)
        acc1, _ = self.stub.read()
        return {"requests": total + r["requests"], "errors": errors + r["errors"],
                "bursts": len(IDLE_CLOSE_PAUSES) + 1, "new_upstream": acc1 - acc0 - 1}

    def restarts(self, proxy, method):
        """A deploy of the backend under load: wrk -c16 for RESTART_SECONDS while the backend
        nginx is reloaded (SIGHUP) every second -- new workers start, the old ones finish what
        they are answering and close every connection they held, idle pooled ones included.
        Counts what the clients saw fail."""
        path = "/1k.bin" if method == "GET" else "/echo"
        argv = self.wrk_argv(proxy.port, path, RESTART_SECONDS, 16, method)
        p = self.reg.popen(argv, "wrk", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(RESTART_SECONDS - 1):
            time.sleep(1)
            self.backend.send_signal(signal.SIGHUP)
        try:
            out, err = p.communicate(timeout=RESTART_SECONDS + 30)
        except subprocess.TimeoutExpired:
            p.kill()
            raise BenchError("wrk: no result during the backend restarts")
        if p.returncode:
            raise BenchError(f"wrk failed ({p.returncode}): {err.strip()}")
        r = parse_wrk(out)
        time.sleep(1.5)  # the last old workers are gone before the next proxy's turn
        return {"requests": r["requests"], "errors": r["errors"],
                "restarts": RESTART_SECONDS - 1}

    @contextlib.contextmanager
    def perf_stat(self, targets, events, who):
        """`perf stat -x,` with the `events` arguments attached to each (pids, output file) of
        `targets` while the block runs; stopped with SIGINT after it (its counts are written
        then)."""
        stats = [self.reg.popen(["perf", "stat", "-x", ",", "-o", str(out),
                                 "-p", ",".join(map(str, pids))] + events, "perf stat",
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for pids, out in targets]
        try:
            time.sleep(0.5)  # attached
            if any(st.poll() is not None for st in stats):
                raise BenchError(f"perf stat could not attach to {who}")
            yield
        finally:
            for st in stats:
                if st.poll() is None:
                    st.send_signal(signal.SIGINT)
                try:
                    st.wait(20)
                except subprocess.TimeoutExpired:
                    st.kill()
                    st.wait(5)

    def syscalls(self, proxy, path, conns, threads=None):
        """Syscalls of all the proxy's threads while wrk runs ÷ requests at the backend, counted
        by `perf stat` on the kernel's syscall tracepoints. Not strace: it stops the process at
        every call, and a proxy slowed that much finds data waiting on every read -- it hides
        the reads that say EAGAIN at full speed (gatehouse measured 4.1 under strace and 5.85
        with tracepoints before those were fixed)."""
        a = self.a
        pids = proxy.pids(self.reg)
        name = path.strip("/").replace("/", "-")
        out = self.tmp / f"syscalls-{proxy.key}-t{threads or a.threads}-{name}.csv"
        events = ["-e", "raw_syscalls:sys_enter"]
        for n in SYSCALL_NAMES:
            if tracepoint_exists(f"sys_enter_{n}"):
                events += ["-e", f"syscalls:sys_enter_{n}"]
        for n in EAGAIN_READS:
            if tracepoint_exists(f"sys_exit_{n}"):
                events += ["-e", f"syscalls:sys_exit_{n}", "--filter", "ret == -11"]
        with self.perf_stat([(pids, out)], events, proxy.label):
            acc0, req0 = self.stub.read()
            r = self.wrk(proxy.port, path, a.syscalls_duration, conns, threads=threads)
            acc1, req1 = self.stub.read()
        requests = max(1, req1 - req0 - 1)
        counts = parse_perf_stat(out.read_text())
        total = counts.pop("raw_syscalls:sys_enter", 0)
        eagain = sum(v for k, v in counts.items() if k.startswith("syscalls:sys_exit_"))
        calls = {k.removeprefix("syscalls:sys_enter_"): v for k, v in counts.items()
                 if k.startswith("syscalls:sys_enter_")}
        calls["other"] = total - sum(calls.values())
        per_call = {n: c / requests for n, c in calls.items()}
        return {"per_request": total / requests, "requests": requests,
                "wrk_requests": r["requests"], "eagain": eagain / requests, "calls": per_call,
                "top": sorted(per_call.items(), key=lambda x: -x[1])[:8]}

    def idle_rss(self, proxy):
        """RSS growth of the proxy for idle_n keep-alive client connections (one request each,
        then idle for --idle-wait seconds)."""
        n = self.idle_n
        pids = proxy.pids(self.reg)
        before = rss_kib(pids)
        req = f"GET /1k.bin HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}\r\n\r\n".encode()
        socks = []
        try:
            batch = 200
            for start in range(0, n, batch):
                group = []
                for _ in range(min(batch, n - start)):
                    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                    socks.append(s)
                    group.append(s)
                    s.sendall(req)
                for s in group:
                    read_response(s)
            time.sleep(self.a.idle_wait)
            pids = proxy.pids(self.reg)
            after = rss_kib(pids)
            open_now = 0
            for s in socks:
                s.setblocking(False)  # a socket with a timeout would wait for data first
                try:
                    if s.recv(1, socket.MSG_PEEK) == b"":
                        continue
                except BlockingIOError:
                    open_now += 1
                except OSError:
                    continue
        finally:
            for s in socks:
                s.close()  # SO_LINGER 0: a reset, no TIME_WAIT left behind
        time.sleep(0.5)
        return {"before": before, "after": after, "per_conn": (after - before) / max(1, n),
                "open": open_now, "n": n}

    def profile(self, proxy, path, conns):
        """perf record (flat, sampled) of gatehouse under load; report written next to results."""
        if not shutil.which("perf"):
            self.notes.append("--profile: perf not installed")
            return None
        data = self.tmp / "perf.data"
        pids = ",".join(str(p) for p in proxy.pids(self.reg))
        pr = self.reg.popen(["perf", "record", "-F", "999", "-p", pids, "-o", str(data),
                             "--", "sleep", str(self.a.duration)], "perf",
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.3)
        self.wrk(proxy.port, path, self.a.duration, conns)
        try:
            _, err = pr.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            pr.kill()
            pr.communicate(timeout=5)
        if pr.returncode:
            self.notes.append(f"--profile: perf record failed: {err.decode(errors='replace')[-300:]}")
            return None
        rc, out, err = self.reg.run(["perf", "report", "-i", str(data), "--stdio", "--no-children",
                                     "--sort", "dso,symbol", "--percent-limit", "0.5", "-g", "none"],
                                    "perf", 120)
        lines = []
        for line in out.splitlines():
            if line.startswith("#") and "Overhead" not in line and "Samples" not in line:
                continue
            line = re.sub(r"\s+-\s+-\s*$", "", line.rstrip())  # empty IPC columns
            lines.append(re.sub(r"\s{3,}", "  ", line)[:200])
        dest = Path(self.a.out).with_name(f"profile-{proxy.kind}.txt")
        dest.write_text(f"# perf record -F 999 -p {proxy.label} (1 worker, {path}, wrk -c64) for "
                        f"{self.a.duration} s; flat profile by DSO and symbol\n"
                        + "\n".join(l for l in lines if l.strip()) + "\n")
        return dest

    def together(self, pair, rounds, duration, conns, tag, count_syscalls=False):
        """Two proxies driven at the same time, a wrk each on `conns` connections, against the same
        backend: both run under the same conditions (the machine's drift, and the idle time a
        proxy faster than wrk has when measured alone, hit both), so their ratio of CPU per
        request is steadier than the alternated rounds' (a gatehouse build against itself gives
        1.00 ± 0.02 per round). CPU is the scheduler's count of each proxy's threads. Returns per
        round (first's ns/req, second's ns/req, second ÷ first, errors, first's requests,
        second's requests), and with `count_syscalls` (first's, second's) (syscalls, epoll_waits)
        per request from one more run under `perf stat` (else None)."""
        a, b = pair

        def drive(duration):
            procs = [self.reg.popen(["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency",
                                     "--timeout", "5s", f"http://127.0.0.1:{p.port}/1k.bin"],
                                    "wrk", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
                     for p in (a, b)]
            outs = []
            for proc in procs:
                out, err = proc.communicate(timeout=duration + 30)
                if proc.returncode:
                    raise BenchError(f"wrk failed ({proc.returncode}): {err.strip()}")
                outs.append(parse_wrk(out))
            return outs

        drive(self.a.warmup)
        rows = []
        for rnd in range(rounds):
            c0 = [cpu_ns(p.pids(self.reg)) for p in (a, b)]
            ra, rb = drive(duration)
            c1 = [cpu_ns(p.pids(self.reg)) for p in (a, b)]
            na = (c1[0] - c0[0]) / max(1, ra["requests"])
            nb = (c1[1] - c0[1]) / max(1, rb["requests"])
            errors = ra["errors"] + rb["errors"]
            rows.append((na, nb, nb / na, errors, ra["requests"], rb["requests"]))
            log(f"[{tag} {rnd + 1}/{rounds}] {a.key} {na:6.0f} ns/req  {b.key} {nb:6.0f} ns/req  "
                f"ratio {nb / na:.3f}  errors {errors}")
        if not count_syscalls:
            return rows, None
        # One more run with perf stat on each (syscalls and epoll_waits per wrk request).
        events = ["-e", "raw_syscalls:sys_enter"]
        if tracepoint_exists("sys_enter_epoll_wait"):
            events += ["-e", "syscalls:sys_enter_epoll_wait"]
        outs = [self.tmp / f"together-{p.key}.csv" for p in (a, b)]
        with self.perf_stat([(p.pids(self.reg), out) for p, out in zip((a, b), outs)], events,
                            "the same-time proxies"):
            results = drive(duration)
        calls = []
        for out, r in zip(outs, results):
            counts = parse_perf_stat(out.read_text())
            n = max(1, r["requests"])
            calls.append((counts.get("raw_syscalls:sys_enter", 0) / n,
                          counts.get("syscalls:sys_enter_epoll_wait", 0) / n))
        log(f"[{tag} syscalls] {a.key} {calls[0][0]:.2f}/req (epoll_wait {calls[0][1]:.2f})  "
            f"{b.key} {calls[1][0]:.2f}/req (epoll_wait {calls[1][1]:.2f})")
        return rows, calls

    def compare(self, other, rounds, duration, conns):
        """This build against another gatehouse binary (1 worker, round_robin each), driven
        together(): rows with the other's CPU per request ÷ this build's."""
        other_modules = Path(other).resolve().parent.parent / "modules"
        if not (other_modules / "round_robin.so").exists():
            other_modules = None  # an installed binary: the modules of this build
        self.add_gatehouse("gh-a", "this build", 1, ["round_robin"], "round_robin")
        self.add_gatehouse("gh-b", "other build", 1, ["round_robin"], "round_robin", other,
                           other_modules)
        rows, _ = self.together((self.proxies["gh-a"], self.proxies["gh-b"]), rounds, duration,
                                conns, "compare")
        return rows

    def callgrind(self, path, conns):
        """User-space instructions per proxied request: gatehouse (1 worker, round_robin) under
        valgrind's callgrind, counting the whole process during a wrk run after a warm-up (the
        counters are zeroed then; the other threads sleep meanwhile). Steady to about 1 % where
        the timed figures move by 5 %: a measure to compare two builds by. Report: total per
        request and the functions by their own cost."""
        if not shutil.which("valgrind"):
            self.notes.append("--callgrind: valgrind not installed")
            return None
        port = self.ports.get()
        conf = self.tmp / "gh-callgrind.toml"
        conf.write_text(gatehouse_conf(1, port, self.b1, self.b2, self.b3,
                                       Path(self.a.module_dir).resolve(), ["round_robin"],
                                       "round_robin"))
        out_file = self.tmp / "callgrind.out"
        logf = open(self.tmp / "gh-callgrind.log", "w")
        p = self.reg.popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}",
                            self.a.gatehouse,
                            "-c", str(conf)], "callgrind", stdout=logf, stderr=subprocess.STDOUT)
        wait_ready(port, path, p, "callgrind", timeout=60)
        self.wrk(port, path, 2, conns)  # warm-up: pools filled, caches grown
        self.reg.run(["callgrind_control", "--zero", str(p.pid)], "callgrind_control", 30)
        r = self.wrk(port, path, self.a.duration, conns)
        self.reg.run(["callgrind_control", "--dump", str(p.pid)], "callgrind_control", 60)
        p.terminate()
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
        dumps = sorted(self.tmp.glob("callgrind.out.*"), key=lambda f: f.stat().st_mtime)
        if not dumps or not r["requests"]:
            self.notes.append("--callgrind: no dump or no requests")
            return None
        total, by_fn = callgrind_self_costs(dumps[0].read_text(errors="replace"))
        n = r["requests"]
        dest = Path(self.a.out).with_name("callgrind-gatehouse.txt")
        lines = [f"# callgrind: gatehouse 1 worker, {path}, wrk -c{conns} {self.a.duration} s "
                 f"under valgrind, {n} requests; user-space instructions of the process",
                 f"instructions per request: {total / n:.0f}", "",
                 "# per request  share  function (own cost)"]
        for fn, cost in sorted(by_fn.items(), key=lambda kv: -kv[1])[:60]:
            lines.append(f"{cost / n:10.0f}  {100.0 * cost / total:5.1f} %  {fn[:150]}")
        dest.write_text("\n".join(lines) + "\n")
        log(f"[callgrind] {total / n:.0f} instructions per request -> {dest}")
        return dest


def callgrind_self_costs(text):
    """(total, {function: own cost}) from a callgrind dump: cost lines count for the current
    fn= unless they follow a calls= line (those are the callee's inclusive cost)."""
    names, own, fn, after_call = {}, {}, None, False

    def name(tok):
        m = re.match(r"\((\d+)\)(?: (.*))?", tok)
        if not m:
            return tok
        if m.group(2):
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), tok)

    for line in text.splitlines():
        if line.startswith("fn="):
            fn, after_call = name(line[3:]), False
        elif line.startswith("cfn="):
            name(line[4:])
        elif line.startswith("calls="):
            after_call = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            parts = line.split()
            if len(parts) >= 2:
                if after_call:
                    after_call = False
                else:
                    own[fn] = own.get(fn, 0) + int(parts[1])
    return sum(own.values()), own


def read_response(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise BenchError("idle test: connection closed before a response")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
    want = int(m.group(1)) if m else 0
    while len(body) < want:
        chunk = s.recv(65536)
        if not chunk:
            raise BenchError("idle test: connection closed inside a response")
        body += chunk
    if not head.startswith(b"HTTP/1.1 200"):
        raise BenchError(f"idle test: {head[:40]!r}")


# The syscalls counted by name (the rest is "other"); reads that say EAGAIN are counted apart.
SYSCALL_NAMES = ["read", "write", "readv", "writev", "recvfrom", "sendto", "recvmsg", "sendmsg",
                 "epoll_wait", "epoll_pwait", "epoll_ctl", "accept4", "close", "splice",
                 "getsockopt", "setsockopt", "connect", "socket", "ioctl", "futex"]
EAGAIN_READS = ["read", "readv", "recvfrom", "recvmsg"]


def tracepoint_exists(name):
    return any(Path(root, "events/syscalls", name).is_dir()
               for root in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"))


def parse_perf_stat(text):
    """perf stat -x, output: {event: count}; counters that could not be read count 0."""
    counts = {}
    for line in text.splitlines():
        f = line.split(",")
        if len(f) < 3 or line.startswith("#"):
            continue
        try:
            n = int(f[0])
        except ValueError:
            n = 0  # <not counted> / <not supported>
        counts[f[2]] = counts.get(f[2], 0) + n
    return counts


def resource_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft


# --------------------------------------------------------------------------------------------
# Scenarios, rounds, report

# Pauses between the idle-close bursts, around the backend's keep-alive timeout.
BODY_BYTES = 1000      # PUT and POST bodies in the closing and restart scenarios
RESTART_SECONDS = 5    # each restart run: the backend reloaded every second, 4 times
IDLE_CLOSE_PAUSES = [SHORT_KEEPALIVE_S + d for d in (-0.05, -0.02, -0.01, 0.0, 0.005, 0.01, 0.02, 0.05)]

SCENARIOS = [
    # key, title, path, conns, proxies (rotated each round), syscalls counted?
    ("1k-1w", "1 KiB, 64 conns, 1 worker", "/1k.bin", 64, ["gh-rr-1", "nginx-1", "haproxy-1"], True),
    # Many client connections through one worker: the upstream pool must follow demand.
    ("1k-1w-256", "1 KiB, 256 conns, 1 worker", "/1k.bin", 256,
     ["gh-rr-1", "nginx-1", "haproxy-1"], False),
    ("1k-1w-1024", "1 KiB, 1024 conns, 1 worker", "/1k.bin", 1024,
     ["gh-rr-1", "nginx-1", "haproxy-1"], False),
    ("1k-2w", "1 KiB, 64 conns, 2 workers", "/1k.bin", 64, ["gh-rr-2", "nginx-2", "haproxy-2"], True),
    ("100k-1w", "100 KiB, 64 conns, 1 worker", "/100k.bin", 64,
     ["gh-rr-1", "nginx-1", "haproxy-1"], True),
    ("var-1w", "gatehouse variants, 1 KiB, 64 conns, 1 worker", "/1k.bin", 64,
     ["gh-rr-1", "gh-lc-1", "gh-mods-1"], False),
]


# The matrix (issue 15, A5): does the lead hold across load generators, pools and sizes? Every
# cell of wrk threads x servers in the pool x response size, 1 proxy worker, 64 connections,
# the proxies of the 1-worker scenarios (the one-server pool is their /one/ route).
class MatrixCell(NamedTuple):
    key: str
    threads: int  # wrk -t
    servers: int  # in the upstream pool
    size: str
    path: str


MATRIX_PROXIES = ["gh-rr-1", "nginx-1", "haproxy-1"]
MATRIX_CONNS = 64
MATRIX = [MatrixCell(f"m-t{t}-p{n}-{f.removesuffix('.bin')}", t, n, size,
                     ("/" if n == 2 else "/one/") + f)
          for t in (1, 2) for n in (1, 2)
          for size, f in (("1 KiB", "1k.bin"), ("3001 B", "3001.bin"), ("37893 B", "37893.bin"))]
# Cells whose syscalls are counted (where the CPU goes): one wrk thread, and two to compare.
MATRIX_SYSCALLS = ["m-t1-p2-1k", "m-t2-p2-1k"]
# Goals in every cell: (label, field, other proxy, bound, +1 = at least / -1 = at most).
MATRIX_GOALS = [("req/s ÷nginx ≥ 1.10", "rps", "nginx-1", 1.10, +1),
                ("req/s ÷HAProxy ≥ 1.0", "rps", "haproxy-1", 1.0, +1),
                ("CPU ÷nginx ≤ 0.85", "cpu_us", "nginx-1", 0.85, -1)]


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec):
    return "–" if x is None else format(x, spec)


def median_ratio(res, other, field):
    """Median of the per-round ratios res[i][field] / other[i][field] (same rounds)."""
    return median(g[field] / o[field] for g, o in zip(res, other) if o[field])


def versions(gatehouse):
    def first(argv):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        except Exception:  # noqa: BLE001 - informational only
            return "?"
    rev = first(["git", "-C", str(TOP), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(TOP), "status", "--porcelain", "--", "kernel", "sdk",
                            "modules"], capture_output=True, text=True, timeout=10).stdout.strip()
    cpu = "?"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                   if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "gatehouse": first([gatehouse, "--version"]) + f" (git {rev}{' + local changes' if dirty else ''})",
        "nginx": first(["nginx", "-v"]).replace("nginx version: ", ""),
        "haproxy": first(["haproxy", "-v"]).split(" - ")[0],
        "wrk": first(["wrk", "-v"]).split(" Copyright")[0],
        "machine": f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}",
    }


def scenario_title(key):
    for s in SCENARIOS:
        if s[0] == key:
            return s[1]
    for c in MATRIX:
        if c.key == key:
            return (f"matrix: wrk -t{c.threads}, {c.servers} server{'s' if c.servers > 1 else ''}, "
                    f"{c.size}, {MATRIX_CONNS} conns, 1 worker")
    return key


def matrix_report(b, rounds, sysc):
    """The matrix section (markdown lines, terminal lines): every cell with its verdict against
    MATRIX_GOALS, then where the CPU goes in the MATRIX_SYSCALLS cells. Empty if not run."""
    cells = [c for c in MATRIX if c.key in rounds]
    if not cells:
        return [], []
    gh, nx, hp = MATRIX_PROXIES
    rows = []
    for c in cells:
        data = rounds[c.key]

        def med(p, field):
            return median(r[field] for r in data[p])

        ratio = {(f, o): median_ratio(data[gh], data[o], f) for f in ("rps", "cpu_us")
                 for o in (nx, hp)}
        failed = [label for label, f, o, bound, sign in MATRIX_GOALS
                  if ratio[(f, o)] is None or sign * (round(ratio[(f, o)], 3) - bound) < 0]
        rows.append([str(c.threads), str(c.servers), c.size]
                    + [fmt(med(p, "rps"), ".0f") for p in MATRIX_PROXIES]
                    + [fmt(med(p, "cpu_us"), ".2f") for p in MATRIX_PROXIES]
                    + [fmt(ratio[k], ".3f") for k in (("rps", nx), ("rps", hp), ("cpu_us", nx),
                                                        ("cpu_us", hp))]
                    + ["/".join(fmt(med(p, "proxy_pct"), ".0f") for p in MATRIX_PROXIES),
                       str(sum(r["errors"] for p in MATRIX_PROXIES for r in data[p])),
                       "PASS" if not failed else "FAIL: " + "; ".join(
                           f.replace("≥", "<").replace("≤", ">") for f in failed)])
    head = ["wrk -t", "servers", "size", "gatehouse req/s", "nginx req/s", "HAProxy req/s",
            "gatehouse CPU µs/req", "nginx CPU µs/req", "HAProxy CPU µs/req", "req/s ÷nginx",
            "req/s ÷HAProxy", "CPU ÷nginx", "CPU ÷HAProxy", "CPU % gatehouse/nginx/HAProxy",
            "errors", "goals"]
    n_pass = sum(r[-1] == "PASS" for r in rows)
    goals = ", ".join(g[0] for g in MATRIX_GOALS)
    n_rounds = len(rounds[cells[0].key][gh])
    md = [f"### Matrix: wrk threads × upstream pool × response size (1 worker, "
          f"{MATRIX_CONNS} connections)", "",
          f"Each cell: gatehouse (round_robin), nginx and HAProxy, 1 worker each, configured as "
          f"in the scenarios (the one-server pool is their `/one/` route to the first backend "
          f"port), alternated, {n_rounds} round(s), "
          f"medians; ratios are medians of the per-round ratios. Goals in every cell: {goals}. "
          f"CPU %: the proxy's CPU during the run, in % of one CPU. "
          f"**{n_pass} of {len(rows)} cells pass.**", ""]
    md += md_table(head, rows)
    md.append("")
    txt = [f"matrix: {n_pass} of {len(rows)} cells pass ({goals})"] + text_table(head, rows)

    wrows = []
    for key in (k for k in MATRIX_SYSCALLS if k in rounds):
        c = next(c for c in MATRIX if c.key == key)
        for p in MATRIX_PROXIES:
            res, sc = rounds[key][p], sysc.get((key, p))
            ep = sc and sc["calls"].get("epoll_wait", 0) + sc["calls"].get("epoll_pwait", 0)
            wrows.append([str(c.threads), b.proxies[p].label,
                          fmt(median(r["rps"] for r in res), ".0f"),
                          fmt(median(r["cpu_us"] for r in res), ".2f")]
                         + [fmt(median(r[f] for r in res), ".0f")
                            for f in ("proxy_pct", "wrk_pct", "backend_pct")]
                         + [fmt(sc and sc["per_request"], ".2f"), fmt(ep, ".2f"),
                            fmt(1 / ep if ep else None, ".2f"), fmt(sc and sc["eagain"], ".2f"),
                            ", ".join(f"{n} {v:.2f}" for n, v in sc["top"] if v >= 0.01)
                            if sc else "–"])
    if wrows:
        whead = ["wrk -t", "proxy", "req/s", "CPU µs/req", "proxy CPU %", "wrk CPU %",
                 "backend CPU %", "syscalls/req", "epoll_wait/req", "req per epoll_wait",
                 "reads saying EAGAIN", "top syscalls per request"]
        md += ["#### Where the CPU goes: 1 KiB, 2 servers, wrk -t1 and -t2", "",
               f"CPU of the proxy, of wrk (all its threads) and of the backend nginx during the "
               f"cell's runs, in % of one CPU ({os.cpu_count()} CPUs: "
               f"{100 * (os.cpu_count() or 1)} % in all), medians over rounds. Syscalls from one "
               f"more run per proxy under perf stat with the same wrk (separate "
               f"{b.a.syscalls_duration} s run). Fewer requests per epoll_wait = a proxy that "
               f"drains its events before the load generator sends more, and pays a wake-up "
               f"for each.", ""]
        md += md_table(whead, wrows)
        md.append("")
        txt += [""] + text_table(whead, wrows)
    return md, txt + [""]


def build_report(b, rounds, sysc, idle, closes, restarts, same, started, finished, command,
                 prof):
    a = b.a
    lines_txt, md = [], []
    v = versions(a.gatehouse)
    md.append(f"Run {started:%Y-%m-%d %H:%M} UTC, {finished - started.timestamp():.0f} s; "
              f"`{command}`")
    md.append("")
    md.append(f"- {v['machine']}; load generator, backend and proxy share these CPUs")
    md.append(f"- {v['gatehouse']}; {v['nginx']}; {v['haproxy']}; {v['wrk']}")
    md.append(f"- wrk -t{a.threads} -c64 -d{a.duration}s --latency after a {a.warmup} s warm-up, "
              f"{a.rounds} round(s), proxies alternated within each round; medians over rounds "
              f"(ratios: median of the per-round ratios)")
    md.append(f"- backend: nginx, 1 worker, static files, two listeners (the pool's two servers) and a third that closes connections idle for 1 s (idle-close)")
    md.append("")

    head = ["scenario", "proxy", "req/s", "p50 ms", "p99 ms", "errors", "CPU µs/req",
            "syscalls/req", "new upstream conns %", "req/s ÷nginx", "req/s ÷HAProxy",
            "p99 ÷nginx", "p99 ÷HAProxy", "CPU ÷nginx", "CPU ÷HAProxy"]
    rows = []
    var_rows = []
    for key, title, path, conns, proxies, _ in SCENARIOS:
        data = rounds[key]  # proxy -> list of per-round results
        gh = proxies[0]
        for p in proxies:
            res = data[p]
            prox = b.proxies[p]
            name = prox.label if key != "var-1w" else {"gh-rr-1": "gatehouse round_robin",
                                                         "gh-lc-1": "gatehouse least_conn",
                                                         "gh-mods-1": "gatehouse +modules"}[p]
            row = [title, name,
                   fmt(median(r["rps"] for r in res), ".0f"),
                   fmt(median(r["p50"] for r in res), ".3f"),
                   fmt(median(r["p99"] for r in res), ".3f"),
                   fmt(median(r["errors"] for r in res), ".0f"),
                   fmt(median(r["cpu_us"] for r in res), ".2f"),
                   fmt(sysc.get((key, p), {}).get("per_request"), ".2f"),
                   fmt(median(r["upstream_new_pct"] for r in res), ".3f")]
            if p == gh and key != "var-1w":
                for field in ("rps", "p99", "cpu_us"):
                    for other in proxies[1:3]:  # nginx, HAProxy
                        row.append(fmt(median_ratio(res, data[other], field), ".3f"))
            else:
                row += [""] * 6
            rows.append(row)
        if key == "var-1w":
            for p in proxies[1:]:
                var_rows.append([{"gh-lc-1": "least_conn", "gh-mods-1":
                                  "+modules loaded, not on the route (" +
                                  ", ".join(b.all_modules) + ")"}[p]] +
                                [fmt(median_ratio(data[p], data[gh], field), ".3f")
                                 for field in ("rps", "p99", "cpu_us")])

    # A partial run (--only) leaves out the sections it did not measure.
    if rows:
        md.append("### Throughput, latency, CPU and syscalls per request")
        md.append("")
        md += md_table(head, rows)
        md.append("")
    if var_rows:
        md.append("### gatehouse variants ÷ gatehouse round_robin (same rounds)")
        md.append("")
        md += md_table(["variant", "req/s ratio", "p99 ratio", "CPU/req ratio"], var_rows)
        md.append("")
    irows = []
    for p in ("gh-rr-1", "nginx-1", "haproxy-1"):
        r = idle.get(p)
        if r:
            irows.append([b.proxies[p].label, f"{r['before'] / 1024:.1f}", f"{r['after'] / 1024:.1f}",
                          f"{r['per_conn']:.2f}", f"{r['open']}/{r['n']}"])
    if irows:
        md.append(f"### Idle keep-alive client connections ({b.idle_n}, one request each, then "
                  f"idle {a.idle_wait} s; 1 worker)")
        md.append("")
        md += md_table(["proxy", "RSS before MiB", "RSS after MiB", "KiB per connection",
                        "still open"], irows)
        md.append("")
    crows = [[b.proxies[p].label, method, str(r["requests"]), str(r["errors"]),
              str(r["new_upstream"])] for (p, method), r in closes.items()]
    if crows:
        md.append(f"### Backend closing idle pooled connections (its keep-alive timeout "
                  f"{SHORT_KEEPALIVE_S:g} s, the proxies' 60 s; 1 worker)")
        md.append("")
        md.append(f"wrk -c16 -d1s bursts separated by pauses of "
                  f"{', '.join(f'{x:.3f}' for x in IDLE_CLOSE_PAUSES)} s; PUT and POST with a "
                  f"{BODY_BYTES}-byte body")
        md.append("")
        md += md_table(["proxy", "method", "requests", "errors", "new upstream connections"],
                       crows)
        md.append("")
    if restarts:
        md.append(f"### Backend restarts under load (the backend nginx reloaded every second, "
                  f"{RESTART_SECONDS - 1} times, during wrk -c16 -d{RESTART_SECONDS}s; 1 worker)")
        md.append("")
        md.append("A reload is a deploy: the old workers finish what they answer and close every "
                  f"connection they held. PUT and POST carry a {BODY_BYTES}-byte body. nginx "
                  "takes a server out for 10 s after one failed attempt (its defaults "
                  "max_fails=1, fail_timeout=10s), so after a reload most of its answers are "
                  "502s. `retry_non_idempotent` replays a POST whose reused connection closed "
                  "before any response byte (off by default: RFC 9110 §9.2.2).")
        md.append("")
        rrows = [[b.proxies[p].label, method, str(r["requests"]), str(r["errors"])]
                 for (p, method), r in restarts.items()]
        md += md_table(["proxy", "method", "requests", "errors"], rrows)
        md.append("")
    if same:
        md.append("### Same time: gatehouse and one other proxy driven together (1 worker each, "
                  "a wrk -t1 -c32 each)")
        md.append("")
        md.append("Both at the same moment, sharing the CPUs with two wrk and the backend: the "
                  "machine's drift and the load generators' pace hit both alike, where alternated "
                  "runs measure each proxy at a different moment. CPU from the scheduler's own "
                  "counts; medians over rounds; syscalls from one more run under perf stat.")
        md.append("")
        trows = []
        for p, (rs, calls) in same.items():
            sc = (f"{calls[0][0]:.2f} ({calls[0][1]:.2f})", f"{calls[1][0]:.2f} ({calls[1][1]:.2f})") \
                if calls else ("–", "–")
            trows.append([b.proxies[p].label, str(len(rs)),
                          f"{median([r[0] for r in rs]) / 1000:.2f}",
                          f"{median([r[1] for r in rs]) / 1000:.2f}",
                          f"{median([r[0] / r[1] for r in rs]):.3f}",
                          f"{median([r[4] / max(1, r[5]) for r in rs]):.3f}",
                          sc[0], sc[1], str(sum(r[3] for r in rs))])
        md += md_table(["other proxy", "rounds", "gatehouse CPU µs/req", "other CPU µs/req",
                        "CPU ÷other", "requests ÷other", "gatehouse syscalls/req (epoll_wait)",
                        "other syscalls/req (epoll_wait)", "errors"], trows)
        md.append("")
    mat_md, mat_txt = matrix_report(b, rounds, sysc)
    md += mat_md
    srows = []
    for (key, p), r in sysc.items():
        if any(c.key == key for c in MATRIX):
            continue  # in the matrix section
        top = ", ".join(f"{n} {c:.2f}" for n, c in r["top"] if c >= 0.01)
        srows.append([scenario_title(key), b.proxies[p].label,
                      f"{r['per_request']:.2f}", f"{r['eagain']:.2f}", str(r["requests"]), top])
    if srows:
        md.append("### Syscalls per request by name (perf stat on the syscall tracepoints, "
                  "separate run)")
        md.append("")
        md += md_table(["scenario", "proxy", "total", "reads saying EAGAIN", "requests",
                        "top syscalls per request"], srows)
    if prof:
        md.append("")
        md.append(f"perf profile ({a.profile_proxy}, {a.profile_path}, 1 worker): `{os.path.relpath(prof, TOP) if str(prof).startswith(str(TOP)) else prof}`")
    errs = [(k, p, i + 1, r["errors"]) for k, d in rounds.items() for p, res in d.items()
            for i, r in enumerate(res) if r["errors"]]
    if errs or b.notes:
        md.append("")
        md.append("Notes:")
        for k, p, i, e in errs:
            md.append(f"- {k} {b.proxies[p].label} ({p}) round {i}: {e} errors")
        for n in b.notes:
            md.append(f"- {n}")
    md.append("")
    md.append("<details><summary>Per-round figures</summary>")
    md.append("")
    prow = []
    for key, d in rounds.items():
        for p, res in d.items():
            for i, r in enumerate(res):
                prow.append([key, p, str(i + 1), f"{r['rps']:.0f}", f"{r['p50']:.3f}",
                             f"{r['p99']:.3f}", str(r["errors"]), f"{r['cpu_us']:.2f}",
                             f"{r['upstream_new_pct']:.3f}", f"{r['proxy_pct']:.0f}",
                             f"{r['wrk_pct']:.0f}", f"{r['backend_pct']:.0f}"])
    md += md_table(["scenario", "proxy", "round", "req/s", "p50 ms", "p99 ms", "errors",
                    "CPU µs/req", "new upstream %", "proxy CPU %", "wrk CPU %",
                    "backend CPU %"], prow)
    md.append("")
    md.append("</details>")

    # Terminal tables: the same main tables, fixed width.
    for head_, rows_ in ((head, rows),
                         (["variant", "req/s ratio", "p99 ratio", "CPU/req ratio"], var_rows),
                         (["proxy", "RSS before MiB", "RSS after MiB", "KiB per connection",
                           "still open"], irows)):
        if rows_:
            lines_txt += text_table(head_, rows_) + [""]
    lines_txt += mat_txt
    return "\n".join(md) + "\n", "\n".join(lines_txt)


def md_table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        out.append("| " + " | ".join(r) + " |")
    return out


def text_table(head, rows):
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    out.append("  ".join("-" * w for w in widths))
    for r in rows:
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    return out


# --------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--pid-file", required=True)
    ap.add_argument("--gatehouse", required=True)
    ap.add_argument("--module-dir", required=True)
    ap.add_argument("--out", default=str(HERE / "results.md"))
    ap.add_argument("--rounds", type=int,
                    help="rounds (default 5; 1 with --quick, 12 with --compare)")
    ap.add_argument("--duration", type=int, default=3, help="seconds per measurement")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2,
                    help="wrk threads (default 2: one wrk thread is the slowest process on two "
                         "CPUs and every proxy waits on it; see README, 'The load')")
    ap.add_argument("--syscalls-duration", type=int, help="seconds (default 3; 2 quick)")
    ap.add_argument("--idle-conns", type=int, default=10000)
    ap.add_argument("--idle-wait", type=float,
                    help="seconds the idle connections stay idle before RSS is read (default 3; 1 quick)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--callgrind", action="store_true",
                    help="also count gatehouse's user-space instructions per request under "
                         "callgrind (writes callgrind-gatehouse.txt; --profile-path sets the load)")
    ap.add_argument("--profile-path", default="/1k.bin",
                    help="what the --profile load requests (default /1k.bin; /100k.bin)")
    ap.add_argument("--profile-proxy", default="gh-rr-1",
                    help="whose profile --profile records (default gh-rr-1; nginx-1, haproxy-1)")
    ap.add_argument("--compare", metavar="GATEHOUSE",
                    help="instead of the benchmark: CPU per request of this build against another "
                         "gatehouse binary, both driven at the same time (see Bench.compare); "
                         "prints per-round figures, writes no report")
    ap.add_argument("--compare-conns", type=int, default=32,
                    help="connections of each of the two wrk in --compare (default 32)")
    ap.add_argument("--command", default="tests/bench/run.sh")
    ap.add_argument("--time-limit", type=int,
                    help="abort the whole run after (default 1500 s, more with the matrix)")
    ap.add_argument("--matrix", action="store_true",
                    help="also run the matrix (wrk threads x pool x size, see README; ~13 "
                         "minutes at 5 rounds, so not in the default run); --only matrix runs "
                         "it alone")
    ap.add_argument("--only", help="comma-separated parts to run (experiments; the report is then "
                    "partial): scenario keys (" + ", ".join(s[0] for s in SCENARIOS) +
                    "), syscalls, idle, idle-close, restarts, same-time, matrix")
    a = ap.parse_args()
    parts = set(a.only.split(",")) if a.only else None
    if parts is not None:
        unknown = parts - {s[0] for s in SCENARIOS} - {"syscalls", "idle", "idle-close",
                                                       "restarts", "same-time", "matrix"}
        if unknown:
            ap.error(f"--only: unknown part(s) {', '.join(sorted(unknown))}")
        SCENARIOS[:] = [s for s in SCENARIOS if s[0] in parts]
    matrix = a.matrix or (parts is not None and "matrix" in parts)
    if a.compare:
        a.rounds = a.rounds or 12
    for name, full, quick in (("rounds", 5, 1), ("syscalls_duration", 3, 2),
                              ("idle_wait", 3.0, 1.0)):
        if getattr(a, name) is None:
            setattr(a, name, quick if a.quick else full)
    if a.rounds < 1:
        ap.error("--rounds must be ≥ 1")
    if a.time_limit is None:
        # The matrix: 36 measurements a round, each a warm-up + the run + ~2 s of margin, and
        # its six syscall runs.
        a.time_limit = 1500 + (a.rounds * len(MATRIX) * len(MATRIX_PROXIES)
                               * (a.warmup + a.duration + 2)
                               + len(MATRIX_SYSCALLS) * len(MATRIX_PROXIES)
                               * (a.syscalls_duration + 5) if matrix else 0)

    arm_time_limit(a.time_limit)

    def wanted(part):
        return parts is None or part in parts

    started = datetime.datetime.now(datetime.timezone.utc)
    t_start = time.time()
    b = Bench(a)
    try:
        log(f"starting backend and proxies in {a.tmp}")
        b.start()
        if a.compare:
            rows = b.compare(a.compare, a.rounds, a.duration, a.compare_conns)
            ratios = [r[2] for r in rows]
            spread = statistics.stdev(ratios) if len(ratios) > 1 else 0.0
            print(f"\nCPU per request, {a.compare} ÷ {a.gatehouse}: median {median(ratios):.3f}, "
                  f"mean {statistics.mean(ratios):.3f}, sd {spread:.3f} over {len(rows)} rounds; "
                  f"ns/request medians: this {median([r[0] for r in rows]):.0f}, "
                  f"other {median([r[1] for r in rows]):.0f}; errors {sum(r[3] for r in rows)}")
            return 0
        log(f"modules for the +modules variant: {', '.join(b.all_modules)}")
        cells = [(key, path, conns, proxies, None) for key, _, path, conns, proxies, _ in SCENARIOS]
        if matrix:
            cells += [(c.key, c.path, MATRIX_CONNS, MATRIX_PROXIES, c.threads) for c in MATRIX]
        rounds = b.run_rounds(cells, a.rounds)
        sysc = {}
        count_syscalls = wanted("syscalls") and shutil.which("perf") is not None
        if (wanted("syscalls") or matrix) and not shutil.which("perf"):
            b.notes.append("syscalls not counted: perf (linux-perf) is not installed")
        for key, title, path, conns, proxies, do in (SCENARIOS if count_syscalls else []):
            if not do:
                continue
            for p in proxies:
                r = b.syscalls(b.proxies[p], path, conns)
                sysc[(key, p)] = r
                log(f"[syscalls] {key:12} {p:10} {r['per_request']:.2f} syscalls/req "
                    f"({r['eagain']:.2f} reads saying EAGAIN) over {r['requests']} requests")
        for cell in (c for c in MATRIX if c.key in MATRIX_SYSCALLS) \
                if matrix and shutil.which("perf") else ():
            for p in MATRIX_PROXIES:
                r = b.syscalls(b.proxies[p], cell.path, MATRIX_CONNS, cell.threads)
                sysc[(cell.key, p)] = r
                log(f"[syscalls] {cell.key:12} {p:10} {r['per_request']:.2f} syscalls/req "
                    f"({r['eagain']:.2f} reads saying EAGAIN, epoll_wait "
                    f"{r['calls'].get('epoll_wait', 0):.2f}) over {r['requests']} requests")
        idle = {}
        for p in ("gh-rr-1", "nginx-1", "haproxy-1") if wanted("idle") else ():
            r = b.idle_rss(b.proxies[p])
            idle[p] = r
            log(f"[idle] {p:10} {r['before']} KiB -> {r['after']} KiB: {r['per_conn']:.2f} KiB/conn "
                f"({r['open']}/{r['n']} still open)")
        closes = {}
        for method in ("GET", "PUT", "POST") if wanted("idle-close") else ():
            for p in ("gh-rr-1", "nginx-1", "haproxy-1"):
                r = b.idle_close(b.proxies[p], method)
                closes[(p, method)] = r
                log(f"[idle-close] {p:10} {method:4} {r['errors']} errors in {r['requests']} "
                    f"requests ({r['bursts']} bursts, {r['new_upstream']} new upstream "
                    f"connections)")
        restarts = {}
        for method in ("GET", "PUT", "POST") if wanted("restarts") else ():
            for p in ("gh-rr-1", "gh-retry-1", "nginx-1", "haproxy-1"):
                r = b.restarts(b.proxies[p], method)
                restarts[(p, method)] = r
                log(f"[restarts] {p:10} {method:4} {r['errors']} errors in {r['requests']} "
                    f"requests ({r['restarts']} backend reloads)")
        same = {}
        for other in ("nginx-1", "haproxy-1") if wanted("same-time") else ():
            same[other] = b.together((b.proxies["gh-rr-1"], b.proxies[other]), a.rounds,
                                     a.syscalls_duration, 32, "same-time",
                                     count_syscalls=shutil.which("perf") is not None)
        prof = b.profile(b.proxies[a.profile_proxy], a.profile_path, 64) if a.profile else None
        if a.callgrind:
            b.callgrind(a.profile_path, 64)
        md, txt = build_report(b, rounds, sysc, idle, closes, restarts, same, started,
                               time.time(), a.command, prof)
        Path(a.out).write_text("<!-- written by tests/bench/run.sh; paste into the README's "
                               "Performance section -->\n" + md)
        print(txt)
        print(f"\nMarkdown: {a.out}  ({time.time() - t_start:.0f} s)")
        return 0
    except BenchError as e:
        return report_failure("bench", e, a.tmp)
    finally:
        signal.alarm(0)
        b.reg.cleanup()


if __name__ == "__main__":
    sys.exit(main())
