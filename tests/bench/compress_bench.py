#!/usr/bin/env python3
"""Compression benchmark (issues 5 and 15): gatehouse's compress module vs nginx `gzip on` at the
same level, same machine, same run; output sizes against the gzip and brotli command-line tools;
and brotli against nginx with ngx_brotli (Debian's libnginx-mod-http-brotli-filter) at the same
quality and window on chunked bodies: bytes per response, req/s and memory per held stream.

Run through tests/bench/compress.sh. Standard library only (plus python3-brotli for decoding).
All traffic is on 127.0.0.1; every process started is recorded and killed on exit (the memory
test's origin is this script too: `compress_bench.py slow-backend --port P --www DIR --prefix N`).
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
    """A deterministic HTML page of `size` bytes (100 KiB: the benchmark page): navigation,
    sections of prose and small tables."""
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
    length = len(out[0])
    while length < size:
        n += 1
        section = ['<section id="s%d" class="card">\n<h2>%s %d</h2>\n'
                   % (n, " ".join(rnd.choice(words) for _ in range(4)).title(), n)]
        for _ in range(rnd.randint(1, 3)):
            section.append("<p>" + " ".join(rnd.choice(words)
                                            for _ in range(rnd.randint(20, 60))) + ".</p>\n")
        section.append('<table class="data"><tr><th>name</th><th>value</th><th>unit</th></tr>\n')
        for _ in range(rnd.randint(2, 5)):
            section.append('<tr><td class="k">%s_%s</td><td class="v">%d</td><td>%s</td></tr>\n'
                           % (rnd.choice(words), rnd.choice(words), rnd.randint(0, 99999),
                              rnd.choice(["ms", "s", "B", "KiB", "req/s"])))
        section.append("</table>\n</section>\n")
        out += section
        length += sum(map(len, section))
    return "".join(out).encode()[:size - 16].ljust(size - 16, b" ") + b"</main></body>\n\n"


def start(cmd, log):
    with open(log, "wb") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=f, stdin=subprocess.DEVNULL)
    PROCS.append(p)
    return p


def stop(p):
    """Ends one process this script started (SIGTERM, then SIGKILL after 5 s)."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


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
    # /chunked/ serves the same files through the SSI filter (no SSI commands in them, so the
    # bytes are unchanged): it drops Content-Length and the response is sent chunked, a stream
    # whose length neither proxy knows when it starts compressing.
    conf = tmp / "backend.conf"
    conf.write_text("daemon off;\nworker_processes 1;\n"
                    + NGINX_COMMON.format(tmp=tmp, name="backend")
                    + "  server {\n    listen 127.0.0.1:%d;\n    root %s;\n    sendfile on;\n"
                      "    gzip off;\n"
                      "    location /chunked/ {\n      alias %s/;\n      ssi on;\n    }\n  }\n}\n"
                    % (port, tmp / "www", tmp / "www"))
    return start(["nginx", "-c", str(conf), "-p", str(tmp)], tmp / "backend.log")


NGINX_PROXY_LOCATION = ("    location / {\n      proxy_pass http://app;\n"
                        "      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n"
                        "      proxy_buffer_size 16k;\n      proxy_buffers 8 16k;\n    }\n")


def nginx_gzip_proxy(tmp, port, backend_port, level):
    conf = tmp / "nginx-gzip.conf"
    conf.write_text("daemon off;\nworker_processes 1;\n"
                    + NGINX_COMMON.format(tmp=tmp, name="proxy")
                    + "  upstream app {\n    server 127.0.0.1:%d;\n    keepalive 64;\n  }\n"
                      "  server {\n    listen 127.0.0.1:%d;\n"
                      "    gzip on;\n    gzip_comp_level %d;\n    gzip_types text/html;\n"
                      "    gzip_min_length 256;\n    gzip_vary on;\n    gzip_proxied any;\n"
                    % (backend_port, port, level)
                    + NGINX_PROXY_LOCATION + "  }\n}\n")
    return start(["nginx", "-c", str(conf), "-p", str(tmp)], tmp / "nginx-gzip.log")


def window_size(bits):
    """ngx_brotli's brotli_window takes a size: 2^bits bytes as nginx writes sizes."""
    return "%dm" % (1 << (bits - 20)) if bits >= 20 else "%dk" % (1 << (bits - 10))


def nginx_br_proxy(tmp, name, port, backend_port, level, window, module):
    """nginx with Debian's libnginx-mod-http-brotli-filter (ngx_brotli's filter module)."""
    conf = tmp / (name + ".conf")
    conf.write_text("load_module %s;\ndaemon off;\nworker_processes 1;\n" % module
                    + NGINX_COMMON.format(tmp=tmp, name=name)
                    + "  upstream app {\n    server 127.0.0.1:%d;\n    keepalive 64;\n  }\n"
                      "  server {\n    listen 127.0.0.1:%d;\n"
                      "    brotli on;\n    brotli_comp_level %d;\n    brotli_window %s;\n"
                      "    brotli_types text/html;\n    brotli_min_length 256;\n"
                    % (backend_port, port, level, window_size(window))
                    + NGINX_PROXY_LOCATION + "  }\n}\n")
    return start(["nginx", "-c", str(conf), "-p", str(tmp)], tmp / (name + ".log"))


def gatehouse(tmp, binary, module_dir, port, backend_port, gzip_level, brotli_level,
              brotli_window=16, name="gatehouse", admin_port=None, extra=""):
    conf = tmp / (name + ".toml")
    conf.write_text(
        '[server]\nworkers = 1\nlog_level = "warn"\n\n'
        '[modules]\ndir = "%s"\nload = ["round_robin", "compress"]\n\n'
        '[[listener]]\nlisten = "127.0.0.1:%d"\n\n'
        % (module_dir, port)
        + ('[admin]\nlisten = "127.0.0.1:%d"\n\n' % admin_port if admin_port else "")
        + '[upstream.app]\nbalancer = "round_robin"\nkeepalive = 64\n'
        'servers = [{ address = "127.0.0.1:%d" }]\n\n'
        '[[route]]\npath = "/"\nupstream = "app"\nfilters = ["compress"]\n\n'
        '[filter.compress]\ngzip_level = %d\nbrotli_level = %d\nbrotli_window = %d\n%s'
        % (backend_port, gzip_level, brotli_level, brotli_window, extra))
    return start([binary, "-c", str(conf)], tmp / (name + ".log"))


def http_get(port, path, accept):
    """One GET; returns (headers dict, body bytes). Content-Length or chunked framing."""
    with socket.create_connection(("127.0.0.1", port), 10) as s:
        s.sendall(("GET %s HTTP/1.1\r\nHost: bench\r\nAccept-Encoding: %s\r\n"
                   "Connection: close\r\n\r\n" % (path, accept)).encode())
        chunks = []
        while True:
            got = s.recv(65536)
            if not got:
                break
            chunks.append(got)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding") == "chunked":
        out, pos = [], 0
        while True:
            end = body.index(b"\r\n", pos)
            size = int(body[pos:end].split(b";")[0], 16)
            if size == 0:
                break
            out.append(body[end + 2:end + 2 + size])
            pos = end + 2 + size + 2
        body = b"".join(out)
    return headers, body


WRK_BYTES_LUA = """
done = function(summary, latency, requests)
  io.write(string.format("BYTES %d REQUESTS %d\\n", summary.bytes, summary.requests))
end
"""


def wrk(port, accept, duration, threads, conns, path="/page.html", script=None, pid=None):
    """Returns (req/s, error note, bytes per response on the wire or None, CPU µs per response
    of the process tree `pid` or None). The per-response figures need `script` (WRK_BYTES_LUA)."""
    cpu0 = cpu_ns(pid) if pid else None
    # --timeout 10s: a response delayed by a busy machine is counted, not dropped and retried.
    cmd = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % duration, "--timeout", "10s",
           "-H", "Accept-Encoding: " + accept]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run(cmd + ["http://127.0.0.1:%d%s" % (port, path)],
                         capture_output=True, text=True, timeout=duration + 30).stdout
    cpu = cpu_ns(pid) - cpu0 if pid else None
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if not m:
        raise RuntimeError("wrk output without Requests/sec:\n" + out)
    b = re.search(r"BYTES (\d+) REQUESTS (\d+)", out)
    wire = int(b.group(1)) / int(b.group(2)) if b and int(b.group(2)) else None
    cpu_us = cpu / 1000.0 / int(b.group(2)) if cpu is not None and wire else None
    return float(m.group(1)), (errors.group(0) if errors else ""), wire, cpu_us


# ---------------------------------------------------------------------------------------------
# brotli vs nginx + ngx_brotli (issue 15, C17)

def brotli_wbits(stream):
    """WBITS from a brotli stream header (RFC 7932 §9.2), or None for a large-window stream."""
    b = stream[0]
    if not b & 1:
        return 16
    n = (b >> 1) & 7
    if n:
        return 17 + n
    m = (b >> 4) & 7
    if m == 1:
        return None
    return 8 + m if m else 17


def libbrotli_variants(brotli, data, quality, window):
    """What libbrotli makes of `data` at a quality and window, fed the ways a proxy may feed it:
    one call and finish; or process, flush, then finish (the end of the body came after a
    pause). Byte equality with a proxy's output shows the quality and window it used."""
    out = {"one call": brotli.compress(data, quality=quality, lgwin=window)}
    c = brotli.Compressor(quality=quality, lgwin=window)
    out["process+finish"] = c.process(data) + c.finish()
    c = brotli.Compressor(quality=quality, lgwin=window)
    out["process+flush+finish"] = c.process(data) + c.flush() + c.finish()
    return out


def proc_tree(root):
    """root and every process descending from it (nginx: master and workers)."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path("/proc/%s/stat" % d).read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(d))
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += children.get(pid, [])
    return pids


def rss_kib(root):
    """VmRSS summed over the process tree, KiB."""
    total = 0
    for pid in proc_tree(root):
        try:
            for line in Path("/proc/%d/status" % pid).read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def rss_sample(root, n=5, every=0.2):
    samples = []
    for _ in range(n):
        samples.append(rss_kib(root))
        time.sleep(every)
    return statistics.median(samples)


def gatehouse_metrics(admin_port):
    """gatehouse's compress metrics for codec br: {name without prefix: value}."""
    _, body = http_get(admin_port, "/metrics", "identity")
    return {m.group(1): float(m.group(2)) for m in re.finditer(
        r'^gatehouse_compress_(\w+)\{codec="br"\} (\S+)$', body.decode(), re.M)}


def cpu_ns(root):
    """CPU time (ns) of every thread of the process tree, from the scheduler's counts."""
    total = 0
    for pid in proc_tree(root):
        try:
            for task in os.listdir("/proc/%d/task" % pid):
                total += int(Path("/proc/%d/task/%s/schedstat" % (pid, task)).read_text()
                             .split()[0])
        except OSError:
            pass
    return total


def socket_queues(filter_expr):
    """(sum of Recv-Q, sum of Send-Q, sockets) over established TCP sockets matching an ss
    filter, e.g. "dport = :8080"."""
    out = subprocess.run(["ss", "-Htn", "state", "established", filter_expr],
                         capture_output=True, text=True, timeout=10).stdout
    recv = send = n = 0
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 4:
            recv, send, n = recv + int(f[0]), send + int(f[1]), n + 1
    return recv, send, n


def slow_backend_main(argv):
    """The memory test's origin (run as `compress_bench.py slow-backend ...`): chunked HTML from
    --www. GET /full/NAME sends the whole file; GET /hold/NAME sends its first --prefix bytes and
    then holds the response open until the proxy closes the connection (or --max-hold seconds
    pass, then it sends the rest). GET /stats: how many held responses are open now, and how many
    of those had their whole prefix written. Keep-alive; 16 KiB chunks."""
    import asyncio
    import json
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--www", required=True)
    ap.add_argument("--prefix", type=int, required=True)
    ap.add_argument("--max-hold", type=float, default=60)
    ap.add_argument("--lifetime", type=float, default=900)
    args = ap.parse_args(argv)
    files = {p.name: p.read_bytes() for p in Path(args.www).iterdir()}
    state = {"open": 0, "prefix_sent": 0}

    async def send(writer, data):
        for off in range(0, len(data), 16384):
            part = data[off:off + 16384]
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                if path == "/stats":
                    body = json.dumps(state).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                                 % (len(body), body))
                    await writer.drain()
                    return
                data = files[path.rsplit("/", 1)[1]]
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")
                cut = 0
                if path.startswith("/hold/"):
                    cut = min(args.prefix, len(data))
                    state["open"] += 1
                    sent = False
                    try:
                        await send(writer, data[:cut])
                        sent = True
                        state["prefix_sent"] += 1
                        got = await asyncio.wait_for(reader.read(1), args.max_hold)
                    except asyncio.TimeoutError:
                        got = None
                    finally:
                        state["open"] -= 1
                        state["prefix_sent"] -= sent
                    if got is not None:
                        return  # the proxy closed (or sent bytes mid-response): done
                await send(writer, data[cut:])
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def serve():
        server = await asyncio.start_server(handle, "127.0.0.1", args.port, backlog=1024)
        async with server:
            await asyncio.sleep(args.lifetime)  # bounded even if nobody stops it

    asyncio.run(serve())
    return 0


def open_held_streams(port, path, n, accept="br", timeout=30):
    """n clients, each with a 4 KiB receive buffer: request `path` with `accept`, read the head
    and the first body bytes, then stop reading (a stalled slow client). Returns the sockets."""
    req = ("GET %s HTTP/1.1\r\nHost: bench\r\nAccept-Encoding: %s\r\n\r\n"
           % (path, accept)).encode()
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
        s.sendall(req)
        socks.append(s)
    for s in socks:
        data = b""
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < 64:
            got = s.recv(1024)
            if not got:
                raise RuntimeError("held stream closed early: %r" % data[:300])
            data += got
        head = data.partition(b"\r\n\r\n")[0].decode("latin-1").lower()
        if not head.startswith("http/1.1 200") or \
                ("content-encoding: br" in head) != (accept == "br"):
            raise RuntimeError("held stream not a 200 %s response: %r" % (accept, head))
    return socks


def memory_round(name, proc, port, backend_port, n, settle, admin_port=None, accept="br"):
    """RSS of the proxy's processes before and while n slow streams are held mid-response."""
    import json
    wait_port(port)
    for _ in range(3):  # warm-up: the first brotli streams' one-time costs are in the baseline
        headers, _ = http_get(port, "/full/page-1m.html", "br")
        assert headers.get("content-encoding") == "br", (name, headers)
    time.sleep(0.5)
    before = rss_sample(proc.pid)
    m0 = gatehouse_metrics(admin_port) if admin_port else None
    socks = open_held_streams(port, "/hold/page-1m.html", n, accept)
    time.sleep(settle)
    held = rss_sample(proc.pid)
    stats = json.loads(http_get(backend_port, "/stats", "identity")[1])
    # Where the bytes wait: upstream bytes the proxy has not read (its sockets to the origin),
    # compressed bytes the kernel holds for the stalled clients (its sockets to them).
    up_unread, _, up_socks = socket_queues("dport = :%d" % backend_port)
    _, to_clients, client_socks = socket_queues("sport = :%d" % port)
    res = {"before": before, "held": held, "per_stream": (held - before) / n,
           "backend_open": stats["open"], "backend_prefix_sent": stats["prefix_sent"],
           "upstream_unread": up_unread / n / 1024, "client_queued": to_clients / n / 1024,
           "sockets": (up_socks, client_socks)}
    if admin_port:
        m1 = gatehouse_metrics(admin_port)
        res["gauge_per_stream"] = m1["encoder_memory_bytes"] / n / 1024
        res["in_per_stream"] = (m1["bytes_in_total"] - m0["bytes_in_total"]) / n / 1024
        res["out_per_stream"] = (m1["bytes_out_total"] - m0["bytes_out_total"]) / n / 1024
    for s in socks:
        s.close()
    time.sleep(1.0)
    res["after"] = rss_sample(proc.pid, n=3)
    # Did the proxy let go of the origin when its clients left (while the origin was silent)?
    res["backend_open_after"] = json.loads(http_get(backend_port, "/stats", "identity")[1])["open"]
    if admin_port:
        res["gauge_after"] = gatehouse_metrics(admin_port)["encoder_memory_bytes"]
    return res


def package_version(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True,
                       text=True)
    return r.stdout.strip() or "?"


# The comparison row: gatehouse with another brotli_block (--diag-block; set in main()).
DIAG_BLOCK = "1m"
DIAG = "gatehouse, block " + DIAG_BLOCK


def main(argv):
    if argv and argv[0] == "slow-backend":
        return slow_backend_main(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gatehouse", required=True)
    ap.add_argument("--module-dir", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--gzip-level", type=int, default=6)
    ap.add_argument("--brotli-level", type=int, default=5)
    ap.add_argument("--brotli-window", type=int, default=16,
                    help="lgwin for both proxies (gatehouse brotli_window, nginx brotli_window)")
    ap.add_argument("--brotli-module",
                    default="/usr/lib/nginx/modules/ngx_http_brotli_filter_module.so")
    ap.add_argument("--size-repeats", type=int, default=5,
                    help="responses per body and proxy for the brotli sizes (median)")
    ap.add_argument("--mem-streams", type=int, default=200)
    ap.add_argument("--mem-prefix", type=int, default=256 * 1024,
                    help="bytes of the 1 MiB body the origin sends before holding the stream")
    ap.add_argument("--mem-settle", type=float, default=2.0)
    ap.add_argument("--mem-rounds", type=int, default=None, help="default: --rounds")
    ap.add_argument("--diag-block", default="1m",
                    help="brotli_block of the comparison row (not a goal), e.g. 32k or 1m")
    ap.add_argument("--out", default=str(HERE / "compress-results.md"))
    ap.add_argument("--keep-tmp", action="store_true")
    args = ap.parse_args(argv)
    global DIAG, DIAG_BLOCK
    DIAG_BLOCK = args.diag_block
    DIAG = "gatehouse, block " + DIAG_BLOCK
    import brotli  # python3-brotli
    if args.mem_rounds is None:
        args.mem_rounds = args.rounds
    if not Path(args.brotli_module).is_file():
        raise SystemExit("no %s: install libnginx-mod-http-brotli-filter" % args.brotli_module)

    tmp = Path(tempfile.mkdtemp(prefix="gh-compress-bench-"))
    if not args.keep_tmp:
        atexit.register(shutil.rmtree, tmp, True)
    (tmp / "www").mkdir()
    page = html_page()
    # The brotli comparison's bodies: the page, and two more from the same generator.
    bodies = {"page-12k.html": html_page(12 * 1024, seed=6), "page.html": page,
              "page-1m.html": html_page(1024 * 1024, seed=7)}
    for fname, data in bodies.items():
        (tmp / "www" / fname).write_bytes(data)
    (tmp / "bytes.lua").write_text(WRK_BYTES_LUA)
    # nginx's workers drop root privileges: they must be able to read the pages.
    for path in [tmp, tmp / "www"] + [tmp / "www" / f for f in bodies]:
        path.chmod(0o755 if path.is_dir() else 0o644)

    backend_port, gh_port, ng_port, nb_port, gb_port = (free_port() for _ in range(5))
    nginx_backend(tmp, backend_port)
    nginx_gzip_proxy(tmp, ng_port, backend_port, args.gzip_level)
    q, w = args.brotli_level, args.brotli_window
    nb = nginx_br_proxy(tmp, "nginx-br", nb_port, backend_port, q, w, args.brotli_module)
    gh = gatehouse(tmp, args.gatehouse, args.module_dir, gh_port, backend_port, args.gzip_level,
                   q, w)
    # Not a goal: gatehouse with brotli_block = "1m" (no flush every 16 KiB of input, as
    # ngx_brotli does not flush), to show what the per-stream memory bound costs in bytes.
    gb = gatehouse(tmp, args.gatehouse, args.module_dir, gb_port, backend_port, args.gzip_level,
                   q, w, name="gatehouse-block", extra='brotli_block = "%s"\n' % DIAG_BLOCK)
    for p in (backend_port, gh_port, ng_port, nb_port, gb_port):
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

    # ---- brotli vs nginx + ngx_brotli: the same bodies, streamed (chunked from the backend)
    br_proxies = {"gatehouse": gh_port, "nginx": nb_port, DIAG: gb_port}
    for fname, data in bodies.items():
        headers, body = http_get(backend_port, "/chunked/" + fname, "identity")
        assert headers.get("transfer-encoding") == "chunked" and "content-length" not in headers \
            and body == data, ("backend /chunked/ must stream the body chunked", fname, headers)
    br_sizes = {f: {p: [] for p in br_proxies} for f in bodies}
    wbits = {p: set() for p in br_proxies}
    first = {}  # one response per body and proxy, for the byte-equality check
    for i in range(args.size_repeats):
        for fname, data in bodies.items():
            order = list(br_proxies) if i % 2 == 0 else list(reversed(list(br_proxies)))
            for proxy in order:
                headers, body = http_get(br_proxies[proxy], "/chunked/" + fname, "br")
                assert headers.get("content-encoding") == "br", (proxy, fname, headers)
                assert headers.get("transfer-encoding") == "chunked", (proxy, fname, headers)
                assert brotli.decompress(body) == data, (proxy, fname, "decoded body differs")
                br_sizes[fname][proxy].append(len(body))
                wbits[proxy].add(brotli_wbits(body))
                first.setdefault((fname, proxy), body)
    small = "page-12k.html"
    identical = {}
    for proxy in br_proxies:
        got = first[(small, proxy)]
        identical[proxy] = [
            "q%d %s" % (qq, how)
            for qq in (q - 1, q, q + 1) if 0 <= qq <= 11
            for how, ref in libbrotli_variants(brotli, bodies[small], qq, w).items()
            if ref == got]
    one_shot = {f: len(brotli.compress(d, quality=q, lgwin=w)) for f, d in bodies.items()}
    med_size = {f: {p: statistics.median(v) for p, v in d.items()} for f, d in br_sizes.items()}
    size_ratios = {p: {f: med_size[f][p] / med_size[f]["nginx"] for f in bodies}
                   for p in ("gatehouse", DIAG)}
    print("brotli sizes:", med_size, "wbits", wbits, "identical", identical, flush=True)

    # ---- throughput: alternate the proxies each round, medians at the end
    targets = {"gatehouse gzip": (gh_port, "gzip", "/page.html", gh),
               "nginx gzip": (ng_port, "gzip", "/page.html", None),
               "gatehouse br": (gh_port, "br", "/page.html", gh),
               "gatehouse br chunked": (gh_port, "br", "/chunked/page.html", gh),
               "nginx br chunked": (nb_port, "br", "/chunked/page.html", nb),
               DIAG + " br chunked": (gb_port, "br", "/chunked/page.html", gb)}
    runs = {k: [] for k in targets}
    wire = {k: [] for k in targets}
    cpu = {k: [] for k in targets}
    notes = []
    for r in range(args.rounds):
        order = list(targets) if r % 2 == 0 else list(reversed(list(targets)))
        for name in order:
            port, accept, path, proc = targets[name]
            rps, err, per, us = wrk(port, accept, args.duration, args.threads, args.conns, path,
                                    tmp / "bytes.lua", proc.pid if proc else None)
            runs[name].append(rps)
            if per:
                wire[name].append(per)
            if us:
                cpu[name].append(us)
            if err:
                notes.append("%s round %d: %s" % (name, r + 1, err))
            print("round %d %-32s %8.0f req/s %8.0f B/response %8s CPU µs/response %s"
                  % (r + 1, name, rps, per or 0, "%.0f" % us if us else "-", err), flush=True)

    # ---- memory per stream: fresh proxies, N stalled clients, the origin holding mid-body
    slow_port = free_port()
    slow = start([sys.executable, str(Path(__file__).resolve()), "slow-backend", "--port",
                  str(slow_port), "--www", str(tmp / "www"), "--prefix", str(args.mem_prefix),
                  "--max-hold", "60", "--lifetime", "1800"], tmp / "slow-backend.log")
    wait_port(slow_port)
    # The identity rows (not goals): the same held streams without compression, what each proxy
    # spends per held stream besides its encoder.
    mem = {"gatehouse": [], "nginx": [], DIAG: [], "gatehouse identity": [],
           "nginx identity": []}
    for r in range(args.mem_rounds):
        order = list(mem)[r % len(mem):] + list(mem)[:r % len(mem)]
        for variant in order:
            identity = variant.endswith(" identity")
            proxy = variant[:-len(" identity")] if identity else variant
            accept = "identity" if identity else "br"
            port = free_port()
            admin = None
            if proxy == "nginx":
                p = nginx_br_proxy(tmp, "nginx-br-mem", port, slow_port, q, w,
                                   args.brotli_module)
            else:
                admin = free_port()
                p = gatehouse(tmp, args.gatehouse, args.module_dir, port, slow_port,
                              args.gzip_level, q, w, name="gatehouse-mem", admin_port=admin,
                              extra='brotli_block = "%s"\n' % DIAG_BLOCK if variant == DIAG
                              else "")
            try:
                res = memory_round(variant, p, port, slow_port, args.mem_streams,
                                   args.mem_settle, admin, accept)
            finally:
                stop(p)
            mem[variant].append(res)
            print("memory round %d %-22s %s" % (r + 1, variant, res), flush=True)
    stop(slow)
    mem_med = {p: statistics.median(x["per_stream"] for x in v) for p, v in mem.items()}

    med = {k: statistics.median(v) for k, v in runs.items()}
    wire_med = {k: statistics.median(v) if v else None for k, v in wire.items()}
    cpu_med = {k: statistics.median(v) if v else None for k, v in cpu.items()}

    def fmt(x, f="%.0f"):
        return f % x if x is not None else "–"

    lines = [
        "# compress benchmark (issues 5 and 15)",
        "",
        "Generated by `tests/bench/compress.sh` on %s; %d CPUs; %s. One 100 KiB HTML page "
        "(deterministic, `compress_bench.py:html_page`) served by an nginx backend (1 worker, "
        "sendfile); each proxy runs 1 worker: gatehouse (`filters = [\"compress\"]`, "
        "gzip_level %d, brotli_level %d, brotli_window %d, defaults otherwise) and nginx "
        "(`gzip on; gzip_comp_level %d`, 16 KiB proxy buffers, keepalive 64 to the backend). "
        "`wrk -t%d -c%d -d%ds --timeout 10s`, %d rounds alternating the order, medians. "
        "CPU µs/response: "
        "the proxy's processes' CPU time (scheduler counts of every thread) over the wrk run ÷ "
        "the responses wrk completed; bytes/response: wrk's bytes read ÷ responses (headers "
        "and chunk framing included)."
        % (time.strftime("%Y-%m-%d %H:%M"), os.cpu_count(), subprocess.run(
            ["nginx", "-v"], capture_output=True, text=True).stderr.strip(), args.gzip_level,
           q, w, args.gzip_level, args.threads, args.conns, args.duration, args.rounds),
        "",
        "## Throughput",
        "",
        "| proxy | Accept-Encoding | path | median req/s | CPU µs/response | bytes/response "
        "| rounds (req/s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in targets:
        label = {"nginx br chunked": "nginx + ngx_brotli",
                 DIAG + " br chunked": DIAG + " (not a goal)"}.get(name, name.split()[0])
        lines.append("| %s | %s | `%s` | %.0f | %s | %s | %s |" % (
            label, targets[name][1], targets[name][2], med[name], fmt(cpu_med[name]),
            fmt(wire_med[name]), ", ".join("%.0f" % x for x in runs[name])))
    ratio = med["gatehouse gzip"] / med["nginx gzip"]
    lines += ["", "gatehouse gzip / nginx gzip: **%.2f×** (goal ≥ 1.00). The nginx gzip proxy "
              "runs without the brotli module; its CPU is not counted (–)." % ratio, "",
              "## Compressed size of the page (%d bytes)" % len(page), "",
              "| output | bytes | reference | reference bytes | difference |",
              "|---|---|---|---|---|"]
    for name, n, ref_name, ref, diff in sizes:
        lines.append("| %s | %d | `%s` | %d | %+.2f %% |" % (name, n, ref_name, ref, diff))
    ok = all(abs(d) <= 1.0 or d < 0 for name, _, _, _, d in sizes if name.startswith("gatehouse"))
    lines += ["", "Size goal (gatehouse within 1 %% of the CLI tools, or smaller): **%s**."
              % ("met" if ok else "NOT met")]

    # ---- the brotli comparison's report
    size_goal = statistics.median(size_ratios["gatehouse"].values())
    rps_goal = med["gatehouse br chunked"] / med["nginx br chunked"]
    mem_goal = mem_med["gatehouse"] / mem_med["nginx"] if mem_med["nginx"] > 0 else float("inf")
    median_body = sorted(bodies, key=lambda f: med_size[f]["nginx"])[len(bodies) // 2]
    cpu_ratio = (cpu_med["gatehouse br chunked"] / cpu_med["nginx br chunked"]
                 if cpu_med["gatehouse br chunked"] and cpu_med["nginx br chunked"] else None)

    def met(ok):
        return "met" if ok else "**NOT met**"

    lines += [
        "", "## brotli: gatehouse vs nginx + ngx_brotli (issue 15)", "",
        "nginx with Debian's `libnginx-mod-http-brotli-filter` %s (ngx_brotli's filter, "
        "libbrotlienc %s, the library gatehouse's compress module links too): `load_module "
        "%s; brotli on; brotli_comp_level %d; brotli_window %s; brotli_types text/html; "
        "brotli_min_length 256`, otherwise the gzip nginx's proxy setup (1 worker, "
        "`proxy_buffers 8 16k`, keepalive 64). gatehouse: `brotli_level = %d`, "
        "`brotli_window = %d`, `brotli_block` and the rest default (the ≤ 1 MiB per stream "
        "bound). The backend sends every body **chunked** (`/chunked/`: nginx's SSI filter on "
        "files without SSI commands), so both proxies compress a stream of unknown length on "
        "the fly (ngx_brotli would otherwise shrink its window to a known Content-Length). "
        "The row *%s* is gatehouse with `brotli_block = \"%s\"`, for comparison only."
        % (package_version("libnginx-mod-http-brotli-filter"), package_version("libbrotli1"),
           args.brotli_module, q, window_size(w), q, w, DIAG, DIAG_BLOCK),
        "",
        "| goal | gatehouse | nginx | gatehouse / nginx | goal | |",
        "|---|---|---|---|---|---|",
        "| output bytes per response (median over the bodies; ratio: median of the per-body "
        "ratios) | %.0f | %.0f | %.4f× | ≤ 1.01× | %s |"
        % (med_size[median_body]["gatehouse"], med_size[median_body]["nginx"], size_goal,
           met(size_goal <= 1.01)),
        "| req/s, `/chunked/page.html` with br (`wrk -t%d -c%d -d%ds`, %d rounds alternated, "
        "median) | %.0f | %.0f | %.2f× | ≥ 1.00× | %s |"
        % (args.threads, args.conns, args.duration, args.rounds, med["gatehouse br chunked"],
           med["nginx br chunked"], rps_goal, met(rps_goal >= 1.0)),
        "| memory per stream, KiB (RSS growth with %d streams held mid-response ÷ %d, median "
        "of %d rounds) | %.0f | %.0f | %.2f× | ≤ 1.00× | %s |"
        % (args.mem_streams, args.mem_streams, args.mem_rounds, mem_med["gatehouse"],
           mem_med["nginx"], mem_goal, met(mem_goal <= 1.0)),
        "",
        "CPU per response in the same wrk runs: gatehouse %s µs, nginx %s µs (%s×); "
        "%s: %s µs. Bytes per response on the wire under that load: gatehouse %s, nginx %s, "
        "%s %s."
        % (fmt(cpu_med["gatehouse br chunked"]), fmt(cpu_med["nginx br chunked"]),
           fmt(cpu_ratio, "%.2f"), DIAG, fmt(cpu_med[DIAG + " br chunked"]),
           fmt(wire_med["gatehouse br chunked"]), fmt(wire_med["nginx br chunked"]), DIAG,
           fmt(wire_med[DIAG + " br chunked"])),
        "",
        "### Output size per body",
        "",
        "Each body fetched %d times through each proxy (proxies alternated), every response "
        "decoded and compared with the body; median bytes (min–max). One call of libbrotli at "
        "the same quality and window for reference." % args.size_repeats,
        "",
        "| body | bytes | gatehouse | nginx | gatehouse / nginx | %s | %s / nginx "
        "| libbrotli q%d lgwin %d, one call |" % (DIAG, DIAG, q, w),
        "|---|---|---|---|---|---|---|---|",
    ]
    for fname, data in bodies.items():
        cell = {}
        for proxy in br_proxies:
            v = br_sizes[fname][proxy]
            cell[proxy] = "%.0f (%d–%d)" % (med_size[fname][proxy], min(v), max(v))
        lines.append("| `%s` | %d | %s | %s | %.4f× | %s | %.4f× | %d |" % (
            fname, len(data), cell["gatehouse"], cell["nginx"], size_ratios["gatehouse"][fname],
            cell[DIAG], size_ratios[DIAG][fname], one_shot[fname]))
    lines += [
        "",
        "Quality and window in effect: the window bits in every response's stream header "
        "(RFC 7932 §9.2): gatehouse %s, nginx %s, %s %s (configured %d). The `%s` response is "
        "byte-identical to libbrotli fed the same body at — gatehouse: %s; nginx: %s; %s: %s "
        "(tried qualities %d–%d at window %d, as one call, process+finish, "
        "process+flush+finish)."
        % (sorted(wbits["gatehouse"]), sorted(wbits["nginx"]), DIAG, sorted(wbits[DIAG]), w,
           small, ", ".join(identical["gatehouse"]) or "none",
           ", ".join(identical["nginx"]) or "none", DIAG, ", ".join(identical[DIAG]) or "none",
           max(q - 1, 0), min(q + 1, 11), w),
        "",
        "Flush points differ (the sources: gatehouse `modules/compress/encoder.cpp`, ngx_brotli's "
        "body filter): gatehouse flushes its encoder after every `brotli_block` (16 KiB) of "
        "input, which bounds its memory, and when the upstream pauses; ngx_brotli flushes only "
        "where nginx marks a buffer *flush* or *last*. The *%s* column, flushing after that many "
        "input bytes instead of 16 KiB, shows what those cost in bytes." % DIAG,
        "",
        "### Memory per stream",
        "",
        "Fresh proxies per round (order rotated), pointed at a small origin "
        "(`compress_bench.py slow-backend`) that sends the first %d bytes of `page-1m.html` "
        "chunked, then holds the response open. After 3 whole warm-up responses, the RSS of "
        "all the proxy's processes (VmRSS summed; nginx: master and worker) is sampled (median "
        "of 5 over 1 s); %d clients with a 4 KiB receive buffer request it with br, read the "
        "head and the first compressed bytes and stop reading; %.0f s later the RSS is sampled "
        "again, then the clients close. Per stream = (held − before) ÷ %d. The origin's count "
        "of open held responses (and of those whose whole prefix it had written) shows that "
        "every stream was mid-response; *after close*: the RSS and the origin's count 1 s "
        "after the clients closed (the origin still silent). The *identity* rows (not goals) "
        "hold the same streams uncompressed. *Upstream unread*: bytes waiting in the proxy's "
        "sockets from the origin (not read by the proxy); *queued to client*: bytes in the "
        "kernel's send queues of the proxy's client sockets (neither is in RSS); gatehouse's "
        "own counters give the body bytes it fed its encoders (*in*), the compressed bytes it "
        "wrote (*out*) and its encoders' allocations (*encoder*); all per stream, KiB."
        % (args.mem_prefix, args.mem_streams, args.mem_settle, args.mem_streams),
        "",
        "| proxy | round | RSS before KiB | RSS held KiB | per stream | origin: open / prefix "
        "written | upstream unread | queued to client | in / out | encoder | after close: RSS "
        "KiB, origin open |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for proxy in mem:
        for i, x in enumerate(mem[proxy]):
            lines.append("| %s | %d | %.0f | %.0f | %.0f | %d / %d | %.0f | %.0f | %s | %s "
                         "| %.0f, %d |" % (
                             proxy, i + 1, x["before"], x["held"], x["per_stream"],
                             x["backend_open"], x["backend_prefix_sent"], x["upstream_unread"],
                             x["client_queued"],
                             "%.0f / %.0f" % (x["in_per_stream"], x["out_per_stream"])
                             if "in_per_stream" in x else "–",
                             fmt(x.get("gauge_per_stream")), x["after"],
                             x["backend_open_after"]))
    lines += [
        "",
        "Per stream, medians: gatehouse %.0f KiB (identity %.0f: compression adds %.0f), nginx "
        "%.0f KiB (identity %.0f: compression adds %.0f), %s %.0f KiB."
        % (mem_med["gatehouse"], mem_med["gatehouse identity"],
           mem_med["gatehouse"] - mem_med["gatehouse identity"], mem_med["nginx"],
           mem_med["nginx identity"], mem_med["nginx"] - mem_med["nginx identity"], DIAG,
           mem_med[DIAG]),
    ]
    if notes:
        lines += ["", "wrk reported: " + "; ".join(notes)]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
