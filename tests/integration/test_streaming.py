"""Bodies stream through without being buffered: 1 GiB each way with flat RSS; chunked bodies
with trailers; Expect: 100-continue."""

import functools
import hashlib
import threading

import pytest

from backend import pattern_chunks, pattern_sha256
import harness
from harness import Client, proxy_config

GIB = 1 << 30
RSS_LIMIT_KIB = 64 * 1024


@functools.lru_cache(maxsize=None)
def expected_sha256(size):
    return pattern_sha256(size)


class RssSampler:
    """Samples gatehouse's VmRSS every 20 ms while a transfer runs; keeps the peak."""

    def __init__(self, gh):
        self.gh = gh
        self.peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.wait(0.02):
            try:
                self.peak = max(self.peak, self.gh.proc_status("VmRSS"))
            except (OSError, KeyError):
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)
        self.peak = max(self.peak, self.gh.proc_status("VmRSS"))


@pytest.fixture
def unlimited(start_backend, start_gatehouse):
    backend = start_backend("stream")
    extra = "[limits]\nmax_body_bytes = \"2g\"\n"
    return start_gatehouse(proxy_config([backend], extra=extra)), backend


def test_1gib_download_streams_with_flat_rss(unlimited):
    gh, _ = unlimited
    digest = hashlib.sha256()
    with RssSampler(gh) as rss, Client(gh.port, timeout=30) as c:
        r = c.request("GET", "/bytes/%d" % GIB, sink=digest.update)
    assert r.status == 200
    assert r.complete and r.body_length == GIB
    assert digest.hexdigest() == expected_sha256(GIB)
    assert rss.peak < RSS_LIMIT_KIB, "RSS peaked at %d KiB" % rss.peak
    assert gh.proc_status("VmHWM") < RSS_LIMIT_KIB


def test_1gib_upload_streams_with_flat_rss(unlimited):
    gh, _ = unlimited
    with RssSampler(gh) as rss, Client(gh.port, timeout=30) as c:
        c.send(Client.build("PUT", "/echo", [("Content-Length", str(GIB))]))
        for piece in pattern_chunks(GIB):
            c.send(piece)
        r = c.read_response()
    assert r.status == 200
    info = r.json()
    assert info["body_length"] == GIB
    assert info["body_sha256"] == expected_sha256(GIB)
    assert rss.peak < RSS_LIMIT_KIB, "RSS peaked at %d KiB" % rss.peak
    assert gh.proc_status("VmHWM") < RSS_LIMIT_KIB


def test_large_chunked_upload_streams_with_flat_rss(unlimited):
    gh, _ = unlimited
    size = 256 << 20
    with RssSampler(gh) as rss, Client(gh.port, timeout=30) as c:
        c.send(Client.build("POST", "/echo", [("Transfer-Encoding", "chunked")]))
        for piece in pattern_chunks(size):
            c.send(b"%x\r\n" % len(piece) + bytes(piece) + b"\r\n")
        c.send(b"0\r\n\r\n")
        r = c.read_response()
    info = r.json()
    assert r.status == 200 and info["body_length"] == size
    assert info["body_sha256"] == expected_sha256(size)
    assert rss.peak < RSS_LIMIT_KIB, "RSS peaked at %d KiB" % rss.peak


def test_large_chunked_download_streams_with_flat_rss(unlimited):
    gh, _ = unlimited
    size = 256 << 20
    digest = hashlib.sha256()
    with RssSampler(gh) as rss, Client(gh.port, timeout=30) as c:
        r = c.request("GET", "/chunked/%d" % size, sink=digest.update)
    assert r.status == 200 and r.complete and r.body_length == size
    assert digest.hexdigest() == expected_sha256(size)
    assert rss.peak < RSS_LIMIT_KIB, "RSS peaked at %d KiB" % rss.peak


def test_chunked_response_trailers_are_forwarded(proxy):
    gh, _ = proxy
    with Client(gh.port) as c:
        r = c.request("GET", "/chunked/100000")
        assert r.status == 200 and r.complete
        assert r.body_length == 100000
        trailers = {n.lower(): v for n, v in r.trailers}
        assert trailers.get("x-body-sha256") == hashlib.sha256(r.body).hexdigest()
        assert trailers.get("x-body-length") == "100000"
        assert c.request("GET", "/id").body == b"only"  # framing intact after the trailers


def test_chunked_request_with_trailers_is_forwarded(proxy):
    gh, _ = proxy
    body = bytes(range(256)) * 1000
    chunks = b"".join(b"%x\r\n" % len(body[i:i + 7777]) + body[i:i + 7777] + b"\r\n"
                      for i in range(0, len(body), 7777))
    with Client(gh.port) as c:
        c.send(Client.build("POST", "/echo", [("Transfer-Encoding", "chunked"),
                                              ("Trailer", "X-Client-Trailer")])
               + chunks + b"0\r\nX-Client-Trailer: abc\r\n\r\n")
        r = c.read_response()
        info = r.json()
        assert r.status == 200
        assert info["body_length"] == len(body)
        assert info["body_sha256"] == hashlib.sha256(body).hexdigest()
        assert ["X-Client-Trailer", "abc"] in info["trailers"]
        assert c.request("GET", "/id").body == b"only"


def test_expect_100_continue_gets_interim_then_final_response(proxy):
    gh, _ = proxy
    with Client(gh.port, timeout=3) as c:
        c.send(Client.build("POST", "/echo", [("Content-Length", "10"),
                                              ("Expect", "100-continue")]))
        interim = c.read_response(skip_interim=False)
        assert interim.status == 100
        c.send(b"0123456789")
        final = c.read_response()
        assert final.status == 200
        assert final.json()["body_length"] == 10


@pytest.mark.parametrize("version,forwarded", [("HTTP/1.1", True), ("HTTP/1.0", False)])
def test_interim_responses_reach_http11_clients(start_gatehouse, version, forwarded):
    """An upstream's 103 Early Hints (and 102) go to HTTP/1.1 clients before the final
    response, without hop-by-hop fields; an upstream's 100 never does; HTTP/1.0 gets none."""
    up = harness.OneShotUpstream(
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 102 Processing\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nConnection: x-hop\r\n"
        b"X-Hop: 1\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    try:
        gh = start_gatehouse(harness.proxy_config([up.address]))
        with Client(gh.port, timeout=3) as c:
            c.send(Client.build("GET", "/x", version=version))
            seen = []
            while True:
                r = c.read_response(skip_interim=False)
                seen.append(r)
                if r.status >= 200:
                    break
        assert seen[-1].status == 200 and seen[-1].body == b"ok"
        interim = [r.status for r in seen[:-1]]
        if forwarded:
            assert interim == [102, 103]
            hints = seen[1]
            assert hints.header("link") == "</a.css>; rel=preload"
            assert hints.header("x-hop") is None and hints.header("connection") is None
        else:
            assert interim == []
    finally:
        up.close()


def response_head(fields_bytes, body_length):
    """A 200 head whose X-Pad fields add up to about `fields_bytes`."""
    fields = "".join("X-Pad-%03d: %s\r\n" % (i, "p" * 90) for i in range(fields_bytes // 103))
    return ("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (body_length, fields)).encode()


@pytest.mark.parametrize("pieces", [
    # the head trickles in: the first read is short, later ones fill the first page
    "trickled head",
    # head and body in one burst, well past the first page
    "one burst",
    # exactly one page in all (head and body)
    "exactly 4096 bytes",
])
def test_responses_past_the_first_read_page_arrive_whole(start_gatehouse, pieces):
    """The first read of a response lands in one 4 KiB page, and a response that fills it moves
    to a full-size buffer: heads and bodies on either side of that boundary, however they are
    split, reach the client byte for byte."""
    body = bytes(range(256)) * 1200  # 300 KiB
    head = response_head(10000, len(body))
    if pieces == "trickled head":
        response = [head[i:i + 1500] for i in range(0, len(head), 1500)] + [body]
    elif pieces == "one burst":
        response = head + body
    else:
        body = b"x" * (4096 - len(response_head(0, 1000)))
        head = response_head(0, len(body))
        response = head + body
        assert len(response) == 4096
    up = harness.OneShotUpstream(response, pause=0.05)
    try:
        gh = start_gatehouse(harness.proxy_config([up.address]))
        with Client(gh.port, timeout=5) as c:
            c.send(Client.build("GET", "/x"))
            r = c.read_response()
        assert r.status == 200
        assert r.body == body
        if pieces != "exactly 4096 bytes":
            assert r.header("x-pad-000") == "p" * 90 and r.header("x-pad-096") == "p" * 90
    finally:
        up.close()
