#!/usr/bin/env python3
"""Demo backend for gatehouse: a small HTML page saying which backend answered.

    contrib/demo/backend.py --name backend-1 --port 9001

Standard library only (http.server), HTTP/1.1 with keep-alive, loopback by default.
"""

import argparse
import html
import http.server
import socket
import sys

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>gatehouse demo: {name}</title>
<style>
 body {{ font-family: system-ui, sans-serif; margin: 3rem auto; max-width: 40rem; color: #222; }}
 .who {{ font-size: 2rem; padding: 1rem 1.5rem; border-radius: .5rem; background: {color}; }}
 code {{ background: #f3f3f3; padding: .1rem .3rem; }}
</style></head>
<body>
<h1>gatehouse demo</h1>
<p class="who">Answered by <strong>{name}</strong> on port {port}</p>
<p>Request: <code>{method} {path}</code>, Host <code>{host}</code>,
X-Forwarded-For <code>{xff}</code>.</p>
<p>Reload the page: gatehouse balances requests round-robin across the demo backends.</p>
</body>
</html>
"""
COLORS = ["#d8ecff", "#ffe6cc", "#dff5dc", "#f3dcf5"]


class DemoHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gatehouse-demo"

    def do_GET(self):
        args = self.server.demo_args
        body = PAGE.format(
            name=html.escape(args.name), port=args.port,
            color=COLORS[sum(map(ord, args.name)) % len(COLORS)],
            method=html.escape(self.command), path=html.escape(self.path),
            host=html.escape(self.headers.get("Host", "")),
            xff=html.escape(self.headers.get("X-Forwarded-For", "-"))).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Demo-Backend", args.name)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, fmt, *a):
        sys.stderr.write("[%s] %s\n" % (self.server.demo_args.name, fmt % a))


class DemoServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    p = argparse.ArgumentParser(description="gatehouse demo backend")
    p.add_argument("--name", default="backend")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9001)
    args = p.parse_args()
    server = DemoServer((args.host, args.port), DemoHandler)
    server.demo_args = args
    args.port = server.socket.getsockname()[1]
    print("demo backend %s listening on %s:%d" % (args.name, args.host, args.port), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
