#!/usr/bin/env python3
"""Test backend for gatehouse's integration tests: a real HTTP/1.1 origin in its own process.

Standard library only, one thread per connection, blocking sockets. It binds 127.0.0.1 (port 0
unless --port is given) and prints the bound port as the first line on stdout; nothing else goes
to stdout. Connections are kept alive and pipelined requests are answered in order.

The request reader here is deliberately tiny and lenient: its job is to *record* exactly what the
proxy sent (header order, duplicates, odd framing), not to judge it, so the tests can assert what
reached the origin. Bodies are read streaming (Content-Length or chunked with trailers) and only
hashed, never held whole.

Behaviour is selected by the path (the query string is ignored):
  /echo                JSON: id, method, target, version, headers (ordered [name, value] list),
                       trailers, body_length, body_sha256, conn_id, conn_request (1-based index
                       of the request on its connection). Any unknown path behaves like /echo.
  /bytes/N             N bytes (pattern_chunks) with Content-Length, generated streaming.
  /chunked/N           N bytes chunked, with trailers X-Body-Sha256 and X-Body-Length.
  /text/N              N bytes of text (text_body), strong ETag, Accept-Ranges; reads its query:
                       type=, cc= (Cache-Control), vary=, chunks=K and pause_ms= (K chunked
                       pieces with a pause after each), status=CODE (206 adds a Content-Range),
                       ce= (a Content-Encoding the body is sent under, unchanged), and
                       inm=strong (an origin that compares If-None-Match strongly, byte for
                       byte against its own "text-N": a match is a 304 with ETag and Vary).
  /sse/K               text/event-stream, chunked: K events "id: i / data: <send time>", the
                       time (time.time()) taken just before each is sent; pause_ms= between.
  /slow-header/MS      waits MS before sending the response header.
  /slow-body/MS        sends the header and half the body, waits MS, sends the rest.
  /status/CODE         responds with CODE.
  /close               responds with Connection: close, then closes.
  /id                  the --id value as text (also in X-Backend-Id).
  /sleep/MS            waits MS, then responds like /id.
  /hop                 a response carrying hop-by-hop headers and one named in Connection.
  /big-header/N        a valid response whose header section is about N bytes.
  /raw/NAME            a canned, mostly broken response (see RAW_RESPONSES), then close (except
                       RAW_KEEP_OPEN); `none` closes without answering, `reset` aborts with a
                       TCP RST before reading the body.
  /stats               JSON: connections (that carried a request other than /stats), requests
                       seen, targets seen, active and max_active (requests being handled at
                       once); /stats itself is not recorded.
  /health-check        responds with the current health status (200 until /set-health), for
                       gatehouse's active health checks.
  /set-health/CODE     sets that status (a test flips a server's health by calling it directly).
Options: --id, --port, --keepalive-timeout SECONDS (close idle connections), --delay-ms MS
(every recorded request waits MS first), --drop-nth-request K (the K-th request on every
connection is read, then the connection is closed without a response).
TLS: --tls-cert PEM --tls-key KEY serve HTTPS instead (handshake in the connection's thread);
/echo then also has "tls": {sni, version, cipher, alpn, client_cert (subject CN or null)} and
/stats has tls_handshake_failures; --client-ca PEM requires a client certificate issued by it.
"""

import argparse
import hashlib
import json
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse

PATTERN_PERIOD = 65521  # prime, so 2^k-sized buffer mistakes in the proxy show up in the hash
_PATTERN_BLOCK = bytes((i * 131 + (i >> 7) + 17) & 0xFF for i in range(PATTERN_PERIOD))
_PATTERN_SPAN = 1 << 20
_PATTERN_BIG = _PATTERN_BLOCK * (_PATTERN_SPAN // PATTERN_PERIOD + 2)


def pattern_chunks(total, chunk=_PATTERN_SPAN):
    """Yields memoryviews that concatenate to the first `total` bytes of the test pattern."""
    view = memoryview(_PATTERN_BIG)
    offset = 0
    while offset < total:
        n = min(chunk, total - offset)
        start = offset % PATTERN_PERIOD
        yield view[start:start + n]
        offset += n


def text_body(total):
    """The first `total` bytes of a compressible text (numbered lines)."""
    lines = []
    size = 0
    i = 0
    while size < total:
        line = b"line %d: the quick brown fox jumps over the lazy dog\n" % i
        lines.append(line)
        size += len(line)
        i += 1
    return b"".join(lines)[:total]


def pattern_sha256(total):
    h = hashlib.sha256()
    for piece in pattern_chunks(total):
        h.update(piece)
    return h.hexdigest()


# Broken upstream responses; each is sent as-is and the connection is then closed.
RAW_RESPONSES = {
    "cl-te": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"0\r\n\r\n",
    "dup-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "dup-cl-same": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    "bad-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello",
    "bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "obs-fold": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Folded: a\r\n b\r\n\r\nhello",
    "xchunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "te-identity": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n"
                   b"5\r\nhello\r\n0\r\n\r\n",
    "space-colon": b"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello",
    "bare-lf": b"HTTP/1.1 200 OK\nContent-Length: 5\n\nhello",
    "bad-status": b"HTTP/1.1 2x0 OK\r\nContent-Length: 5\r\n\r\nhello",
    "not-http": b"SSH-2.0-OpenSSH_9.2\r\n",
    "ctl-value": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Bad: a\x01b\r\n\r\nhello",
    "http10": b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    "eof-body": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello, until close",
    # One response, then an unsolicited second one on a connection kept open: a proxy that
    # reuses this connection would hand "smuggled" to the next client.
    "extra-response": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
                      b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled",
    # A 101 whether or not the client asked to upgrade (then close).
    "switch-101": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\n\r\nafter-switch",
    "huge-headers": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                    + b"".join(b"X-Filler-%03d: %s\r\n" % (i, b"f" * 1000) for i in range(40))
                    + b"\r\nhello",
}

RAW_KEEP_OPEN = {"extra-response"}

REASONS = {100: "Continue", 200: "OK", 201: "Created", 204: "No Content", 206: "Partial Content",
           301: "Moved",
           304: "Not Modified", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.connections = 0
        self.requests = 0
        self.targets = []
        self.active = 0
        self.max_active = 0
        self.tls_handshake_failures = None  # a count when serving TLS

    def connection(self):
        with self.lock:
            self.connections += 1
            return self.connections

    def request(self, method, target):
        with self.lock:
            self.requests += 1
            if len(self.targets) < 100000:
                self.targets.append([method, target])

    def begin(self):
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)

    def end(self):
        with self.lock:
            self.active -= 1

    def snapshot(self, backend_id):
        with self.lock:
            snap = {"id": backend_id, "connections": self.connections,
                    "requests": self.requests, "targets": list(self.targets),
                    "active": self.active, "max_active": self.max_active}
            if self.tls_handshake_failures is not None:
                snap["tls_handshake_failures"] = self.tls_handshake_failures
            return snap


class ConnectionClosed(Exception):
    pass


class Request:
    def __init__(self, method, target, version, headers):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers  # ordered list of [name, value], as received
        self.trailers = []
        self.body_length = 0
        self.body_sha256 = hashlib.sha256()

    def values(self, name):
        name = name.lower()
        return [v for n, v in self.headers if n.lower() == name]

    def tokens(self, name):
        return [t.strip().lower() for v in self.values(name) for t in v.split(",") if t.strip()]

    @property
    def path(self):
        return self.target.split("?", 1)[0]

    def wants_close(self):
        conn = self.tokens("connection")
        if self.version == "HTTP/1.0":
            return "keep-alive" not in conn
        return "close" in conn


class Session:
    """One accepted connection: reads requests in order and answers each."""

    def __init__(self, server, sock):
        self.server = server
        self.sock = sock
        self.rfile = sock.makefile("rb", buffering=65536)
        self.conn_id = None  # numbered at its first request other than /stats
        self.count = 0
        self.tls = None  # TLS details when serving HTTPS

    def run(self):
        try:
            while True:
                self.sock.settimeout(self.server.args.keepalive_timeout)
                req = self.read_head()
                self.sock.settimeout(60)
                self.count += 1
                # "active" = received and not answered yet; it ends just before the response
                # goes out, so a client that has the whole response never sees it still active.
                self.active = req.path != "/stats"
                if self.active:
                    self.server.stats.begin()
                try:
                    keep = self.handle(req)
                finally:
                    self.end_active()
                if not keep:
                    break
        except (ConnectionClosed, OSError, ValueError):
            pass
        finally:
            self.close()

    def close(self):
        try:
            self.rfile.close()
            self.sock.close()
        except OSError:
            pass

    def readline(self):
        line = self.rfile.readline(65537)
        if not line:
            raise ConnectionClosed()
        return line

    def read_head(self):
        line = self.readline()
        while line in (b"\r\n", b"\n"):  # RFC 9112 §2.2: ignore empty lines before a request
            line = self.readline()
        parts = line.rstrip(b"\r\n").decode("latin-1").split(" ", 2)
        if len(parts) != 3:
            self.server.stats.request("MALFORMED", line.decode("latin-1"))
            raise ConnectionClosed()
        headers = self.read_fields()
        req = Request(parts[0], parts[1], parts[2], headers)
        if req.path != "/stats":
            if self.conn_id is None:
                self.conn_id = self.server.stats.connection()
            self.server.stats.request(req.method, req.target)
        return req

    def read_fields(self):
        fields = []
        while True:
            line = self.readline().rstrip(b"\r\n").decode("latin-1")
            if not line:
                return fields
            name, _, value = line.partition(":")
            fields.append([name, value.strip(" \t")])

    def read_body(self, req):
        """Consumes the request body streaming, hashing it."""
        if "100-continue" in req.tokens("expect"):
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        te = req.tokens("transfer-encoding")
        if te and te[-1] == "chunked":
            self.read_chunked(req)
        elif req.values("content-length"):
            self.read_exact(req, int(req.values("content-length")[0]))

    def read_exact(self, req, n):
        buf = bytearray(min(n, 1 << 20) or 1)
        view = memoryview(buf)
        while n > 0:
            got = self.rfile.readinto(view[:min(n, len(buf))])
            if not got:
                raise ConnectionClosed()
            req.body_sha256.update(view[:got])
            req.body_length += got
            n -= got

    def read_chunked(self, req):
        while True:
            size = int(self.readline().split(b";", 1)[0].strip(), 16)
            if size == 0:
                req.trailers = self.read_fields()
                return
            self.read_exact(req, size)
            if self.readline() not in (b"\r\n", b"\n"):
                raise ConnectionClosed()

    def end_active(self):
        if getattr(self, "active", False):
            self.active = False
            self.server.stats.end()

    def send_response(self, req, status, body=b"", headers=(), content_type="text/plain"):
        self.end_active()
        close = req.wants_close()
        head = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status"))]
        head.append("Content-Type: " + content_type)
        head.extend("%s: %s" % h for h in headers)
        if status >= 200 and status not in (204, 304):
            head.append("Content-Length: %d" % len(body))
        if close:
            head.append("Connection: close")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if req.method != "HEAD" and status >= 200 and status not in (204, 304):
            data += body
        self.sock.sendall(data)
        return not close

    def handle(self, req):
        args = self.server.args
        if args.drop_nth_request and self.count == args.drop_nth_request:
            self.read_body(req)
            return False
        path = req.path
        if path == "/stats":
            self.read_body(req)
            body = json.dumps(self.server.stats.snapshot(args.id)).encode()
            return self.send_response(req, 200, body, content_type="application/json")
        if args.delay_ms:
            time.sleep(args.delay_ms / 1000)
        name, _, param = path[1:].partition("/")
        handler = getattr(self, "do_" + name.replace("-", "_"), None)
        return (handler or self.do_echo)(req, param)

    def do_echo(self, req, _param):
        self.read_body(req)
        info = {"id": self.server.args.id, "method": req.method, "target": req.target,
                "version": req.version, "headers": req.headers, "trailers": req.trailers,
                "body_length": req.body_length, "body_sha256": req.body_sha256.hexdigest(),
                "conn_id": self.conn_id, "conn_request": self.count}
        if self.tls is not None:
            info["tls"] = self.tls
        body = json.dumps(info).encode()
        return self.send_response(req, 200, body, content_type="application/json")

    def do_id(self, req, _param):
        self.read_body(req)
        backend_id = self.server.args.id
        return self.send_response(req, 200, backend_id.encode(),
                                  headers=[("X-Backend-Id", backend_id)])

    def do_sleep(self, req, param):
        self.read_body(req)
        time.sleep(int(param) / 1000)
        return self.do_id(req, "")

    def do_health_check(self, req, _param):
        self.read_body(req)
        code = self.server.health_status
        return self.send_response(req, code, b"health %d\n" % code)

    def do_set_health(self, req, param):
        self.read_body(req)
        self.server.health_status = int(param)
        return self.send_response(req, 200, b"health set to %d\n" % self.server.health_status)

    def do_status(self, req, param):
        self.read_body(req)
        code = int(param)
        return self.send_response(req, code, b"status %d\n" % code)

    def do_close(self, req, _param):
        self.read_body(req)
        self.send_response(req, 200, b"closing\n", headers=[("Connection", "close")])
        return False

    def do_bytes(self, req, param):
        self.read_body(req)
        total = int(param)
        close = req.wants_close()
        head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        head += "Content-Length: %d\r\n" % total
        head += "Connection: close\r\n\r\n" if close else "\r\n"
        self.sock.sendall(head.encode())
        if req.method != "HEAD":
            for piece in pattern_chunks(total):
                self.sock.sendall(piece)
        return not close

    def do_chunked(self, req, param):
        self.read_body(req)
        total = int(param)
        head = ("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                "Transfer-Encoding: chunked\r\nTrailer: X-Body-Sha256, X-Body-Length\r\n\r\n")
        self.sock.sendall(head.encode())
        h = hashlib.sha256()
        sizes = (1, 100, 4096, 65536, 1 << 20)
        sent = 0
        for i, piece in enumerate(pattern_chunks(total, 1 << 20)):
            start = 0
            while start < len(piece):
                part = piece[start:start + sizes[(i + start) % len(sizes)]]
                start += len(part)
                h.update(part)
                sent += len(part)
                self.sock.sendall(b"%x\r\n" % len(part) + bytes(part) + b"\r\n")
        trailer = "0\r\nX-Body-Sha256: %s\r\nX-Body-Length: %d\r\n\r\n" % (h.hexdigest(), sent)
        self.sock.sendall(trailer.encode())
        return not req.wants_close()

    def do_text(self, req, param):
        """/text/N[?type=T&cc=CACHE_CONTROL&vary=V&chunks=K&pause_ms=MS]: N bytes of text (text_body)
        with a strong ETag and Accept-Ranges; sent in K chunked pieces with pauses if chunks is set."""
        self.read_body(req)
        query = urllib.parse.parse_qs(req.target.partition("?")[2])
        opt = {k: v[0] for k, v in query.items()}
        body = text_body(int(param))
        status = int(opt.get("status", "200"))
        etag = '"text-%d"' % len(body)
        if opt.get("inm") == "strong":
            tags = [t.strip() for v in req.values("if-none-match") for t in v.split(",")]
            if etag in tags:
                head = ["HTTP/1.1 304 Not Modified", "ETag: " + etag]
                if "vary" in opt:
                    head.append("Vary: " + opt["vary"])
                self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
                return not req.wants_close()
        head = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status")),
                "Content-Type: " + opt.get("type", "text/plain; charset=utf-8"),
                "ETag: " + etag, "Accept-Ranges: bytes"]
        if status == 206:
            head.append("Content-Range: bytes 0-%d/%d" % (max(len(body) - 1, 0), len(body) * 2))
        if "ce" in opt:
            head.append("Content-Encoding: " + opt["ce"])
        if "cc" in opt:
            head.append("Cache-Control: " + opt["cc"])
        if "vary" in opt:
            head.append("Vary: " + opt["vary"])
        chunks = int(opt.get("chunks", "0"))
        if chunks:
            head.append("Transfer-Encoding: chunked")
        else:
            head.append("Content-Length: %d" % len(body))
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if req.method == "HEAD":
            return not req.wants_close()
        if not chunks:
            self.sock.sendall(body)
            return not req.wants_close()
        step = max(1, -(-len(body) // chunks))
        for start in range(0, len(body), step):
            part = body[start:start + step]
            self.sock.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
            time.sleep(int(opt.get("pause_ms", "0")) / 1000)
        self.sock.sendall(b"0\r\n\r\n")
        return not req.wants_close()

    def do_sse(self, req, param):
        """/sse/K[?pause_ms=MS]: K server-sent events, each carrying the time it was sent."""
        self.read_body(req)
        query = urllib.parse.parse_qs(req.target.partition("?")[2])
        pause = int(query.get("pause_ms", ["1000"])[0]) / 1000
        head = ("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                "Transfer-Encoding: chunked\r\n\r\n")
        self.sock.sendall(head.encode())
        for i in range(int(param)):
            if i:
                time.sleep(pause)
            event = b"id: %d\ndata: %.6f\n\n" % (i, time.time())
            self.sock.sendall(b"%x\r\n" % len(event) + event + b"\r\n")
        self.sock.sendall(b"0\r\n\r\n")
        return not req.wants_close()

    def do_slow_header(self, req, param):
        self.read_body(req)
        time.sleep(int(param) / 1000)
        return self.send_response(req, 200, b"slow header\n")

    def do_slow_body(self, req, param):
        self.read_body(req)
        half = b"x" * 1000
        self.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (2 * len(half)) + half)
        time.sleep(int(param) / 1000)
        self.sock.sendall(half)
        return not req.wants_close()

    def do_hop(self, req, _param):
        self.read_body(req)
        headers = [("Connection", "X-Backend-Private"), ("X-Backend-Private", "secret"),
                   ("Keep-Alive", "timeout=5"), ("Proxy-Connection", "keep-alive"),
                   ("Proxy-Authenticate", "Basic realm=x"), ("Upgrade", "foo/1"),
                   ("X-Backend-Public", "visible"), ("Set-Cookie", "a=1"),
                   ("Set-Cookie", "b=2")]
        return self.send_response(req, 200, b"hop\n", headers=headers)

    def do_big_header(self, req, param):
        self.read_body(req)
        size = int(param)
        headers = [("X-Big-%03d" % i, "b" * 990) for i in range(size // 1000)]
        return self.send_response(req, 200, b"big\n", headers=headers)

    def do_raw(self, req, name):
        if name == "reset":
            # Read only the head: a reset mid-request (body not consumed) is the point.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        self.read_body(req)
        if name != "none":
            self.sock.sendall(RAW_RESPONSES[name])
        return name in RAW_KEEP_OPEN


class Server:
    def __init__(self, args):
        self.args = args
        self.stats = Stats()
        self.health_status = 200  # /health-check's answer; an int set and read whole: no lock
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", args.port))
        self.listener.listen(1024)
        self.tls_context = None
        self.tls_local = threading.local()
        if args.tls_cert:
            self.stats.tls_handshake_failures = 0
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(args.tls_cert, args.tls_key)
            ctx.set_alpn_protocols(["http/1.1"])
            if args.client_ca:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(cafile=args.client_ca)

            def sni(_sslobj, name, _ctx):
                self.tls_local.sni = name
            ctx.sni_callback = sni
            self.tls_context = ctx

    def serve(self):
        while True:
            sock, _ = self.listener.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls_context is None:
                threading.Thread(target=Session(self, sock).run, daemon=True).start()
            else:
                threading.Thread(target=self.tls_session, args=(sock,), daemon=True).start()

    def tls_session(self, sock):
        self.tls_local.sni = None
        sock.settimeout(10)
        try:
            sock = self.tls_context.wrap_socket(sock, server_side=True)
        except (OSError, ValueError) as e:
            with self.stats.lock:
                self.stats.tls_handshake_failures += 1
            print("tls handshake failed: %s" % e, file=sys.stderr, flush=True)
            sock.close()
            return
        peer = sock.getpeercert()
        client_cn = None
        if peer:
            for rdn in peer.get("subject", ()):
                for key, value in rdn:
                    if key == "commonName":
                        client_cn = value
        session = Session(self, sock)
        session.tls = {"sni": self.tls_local.sni, "version": sock.version(),
                       "cipher": sock.cipher()[0], "alpn": sock.selected_alpn_protocol(),
                       "client_cert": client_cn}
        session.run()


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--id", default="backend")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--keepalive-timeout", type=float, default=300.0)
    p.add_argument("--delay-ms", type=int, default=0)
    p.add_argument("--drop-nth-request", type=int, default=0)
    p.add_argument("--tls-cert", default=None)
    p.add_argument("--tls-key", default=None)
    p.add_argument("--client-ca", default=None)
    return p.parse_args(argv)


def main(argv):
    server = Server(parse_args(argv))
    print(server.listener.getsockname()[1], flush=True)
    try:
        server.serve()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main(sys.argv[1:])
