"""A scripted HTTP/1.1 origin for cache tests: each path answers with the responses a test gave
it, in order (the last one repeats), and every request is recorded, so a test can assert exactly
how many reached the origin and with which headers.

    origin = ScriptOrigin()                       # binds 127.0.0.1:0 in a thread
    origin.script("/a", Reply(200, [("Cache-Control", "max-age=60")], b"one"),
                        Reply(200, [...], b"two"))
    origin.count("/a"); origin.requests("/a")[-1].header("if-none-match")
    origin.close()

Header values may be callables, evaluated when the response is sent (dates relative to then):
`http_date(offset)` returns one. A Reply can also `disconnect` (close without answering), send
`interim` 1xx responses first, `delay` before answering, or stream its body in `chunks` with a
pause between them. Paths are matched without the query; an unscripted path answers 404.
Standard library only; the server runs in daemon threads and is shut down by close().
"""

import email.utils
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def http_date(offset=0.0):
    """A callable giving the IMF-fixdate of now + offset seconds at send time."""
    return lambda: email.utils.formatdate(time.time() + offset, usegmt=True)


class Reply:
    def __init__(self, status=200, headers=(), body=b"", disconnect=False, interim=(),
                 delay=0.0, chunks=None, pause=0.0):
        self.status = status
        self.headers = list(headers)
        self.body = body.encode() if isinstance(body, str) else body
        self.disconnect = disconnect
        self.interim = list(interim)
        self.delay = delay
        self.chunks = chunks
        self.pause = pause


class Recorded:
    def __init__(self, method, target, headers, body, when):
        self.method = method
        self.target = target
        self.headers = headers  # [(name, value)] in order
        self.body = body
        self.when = when

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _handle(self):
        origin = self.server.origin
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        rec = Recorded(self.command, self.path, list(self.headers.items()), body, time.time())
        reply = origin._next(path, rec)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.disconnect:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        out = b""
        for status, fields in reply.interim:
            out += b"HTTP/1.1 %d Interim\r\n" % status
            out += b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in fields)
            out += b"\r\n"
        out += b"HTTP/1.1 %d Scripted\r\n" % reply.status
        names = set()
        for k, v in reply.headers:
            v = v() if callable(v) else v
            names.add(k.lower())
            out += b"%s: %s\r\n" % (k.encode(), str(v).encode())
        bodiless = self.command == "HEAD" or reply.status in (204, 304)
        if reply.chunks is not None:
            out += b"Transfer-Encoding: chunked\r\n\r\n"
            self.wfile.write(out)
            for piece in reply.chunks:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
                time.sleep(reply.pause)
            self.wfile.write(b"0\r\n\r\n")
            return
        if "content-length" not in names and reply.status not in (204, 304):
            out += b"Content-Length: %d\r\n" % len(reply.body)
        out += b"\r\n"
        if not bodiless:
            out += reply.body
        self.wfile.write(out)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _handle

    def handle_one_request(self):
        # Any method, including unknown ones (M-SEARCH, PURGE...).
        self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline:
            self.close_connection = True
            return
        if not self.parse_request():
            return
        self._handle()
        self.wfile.flush()


class ScriptOrigin:
    def __init__(self):
        self._lock = threading.Lock()
        self._scripts = {}
        self._served = {}
        self._requests = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.origin = self
        self.port = self.server.server_address[1]
        self.address = "127.0.0.1:%d" % self.port
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def script(self, path, *replies):
        with self._lock:
            self._scripts[path] = list(replies)
            self._served[path] = 0

    def _next(self, path, rec):
        with self._lock:
            self._requests.setdefault(path, []).append(rec)
            replies = self._scripts.get(path)
            if not replies:
                return Reply(404, [("Content-Type", "text/plain")], b"unscripted\n")
            i = min(self._served[path], len(replies) - 1)
            self._served[path] += 1
            return replies[i]

    def count(self, path):
        with self._lock:
            return len(self._requests.get(path, []))

    def requests(self, path):
        with self._lock:
            return list(self._requests.get(path, []))

    def close(self):
        self.server.shutdown()
        self.server.server_close()
