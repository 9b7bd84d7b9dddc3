"""compress module through the real binary: responses decoded by the client (Python's zlib and
brotli) and compared byte for byte with the backend's body; skips, negotiation, Vary, the
ETag/If-None-Match round trip, SSE timing, the CPU guard, metrics and `gatehouse check`."""

import gzip
import re
import time
import zlib

import pytest

import harness
from admin_helpers import admin_port, promtool_check, scrape, settled_metrics
from harness import Client

brotli = pytest.importorskip("brotli")

MODULES = ("round_robin", "least_conn", "compress")


def text_body(n):
    import backend  # the test backend module, for the exact body it sends
    return backend.text_body(n)


def compress_config(backend, module_table="", route_extra="", extra="", workers=2, admin=False):
    base = harness.proxy_config([backend], route='filters = ["compress"]\n' + route_extra,
                                extra=extra + "\n[filter.compress]\n" + module_table,
                                workers=workers)
    if admin:
        base = base.replace("[[listener]]", "[admin]\nlisten = \"127.0.0.1:0\"\n\n[[listener]]", 1)
    return base.replace(harness.modules_toml(), harness.modules_toml(MODULES))


@pytest.fixture(scope="module")
def shared(module_processes):
    """One backend and one gatehouse with the default [filter.compress], shared read-only."""
    tmp = module_processes.tmp_path
    backend = harness.Backend(tmp, "text")
    module_processes.backends.append(backend)
    g = harness.Gatehouse(tmp, compress_config(backend))
    module_processes.gatehouses.append(g)
    return g


def fetch(g, target, accept=None, method="GET", headers=(), host="test.local"):
    hs = list(headers) + ([("Accept-Encoding", accept)] if accept is not None else [])
    with Client(g.port, timeout=20.0) as c:
        r = c.request(method, target, hs, host=host)
    assert r.complete, r
    return r


def decoded(r):
    ce = r.header("content-encoding")
    if ce == "gzip":
        return gzip.decompress(r.body)
    if ce == "br":
        return brotli.decompress(r.body)
    assert ce is None, ce
    return r.body


def vary_tokens(r):
    return [t.strip().lower() for v in r.headers_named("vary") for t in v.split(",") if t.strip()]


# ---- bodies: sizes, framings, codecs -------------------------------------------------------

SIZES = [0, 1, 255, 256, 257, 100_000, 10 * 1024 * 1024]


@pytest.mark.parametrize("accept,coding", [("gzip", "gzip"), ("br", "br")])
@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_sizes_decode_to_backend_bytes(shared, accept, coding, framing):
    for n in SIZES:
        query = "?chunks=%d" % max(1, n // 300_000) if framing == "chunked" else ""
        r = fetch(shared, "/text/%d%s" % (n, query), accept)
        assert r.status == 200
        assert decoded(r) == text_body(n), n
        # min_length (256): from Content-Length, or from the first bytes of a chunked body
        # (the kernel holds the head until 256 bytes, the end or a pause).
        compressed = n >= 256
        assert r.header("content-encoding") == (coding if compressed else None), n
        if compressed:
            assert r.header("content-length") is None
            assert r.header("transfer-encoding") == "chunked"
            assert r.header("etag") == 'W/"text-%d"' % n
            assert r.header("accept-ranges") is None
        elif framing == "length":
            assert r.header("content-length") == str(n)
            assert r.header("etag") == '"text-%d"' % n
        else:
            assert r.header("transfer-encoding") == "chunked"
            assert r.header("etag") == '"text-%d"' % n
        assert vary_tokens(r).count("accept-encoding") == 1
        if n >= 100_000:
            assert len(r.body) < n / 4


def test_other_statuses_with_a_body_are_compressed(shared):
    for status in (201, 404, 500):
        r = fetch(shared, "/text/5000?status=%d" % status, "gzip")
        assert r.status == status and r.header("content-encoding") == "gzip"
        assert decoded(r) == text_body(5000)


# ---- negotiation ----------------------------------------------------------------------------

@pytest.mark.parametrize("accept,coding", [
    (None, None),
    ("", None),
    ("identity", None),
    ("gzip", "gzip"),
    ("br", "br"),
    ("gzip, br", "br"),                      # tie: server preference br > gzip
    ("gzip;q=1.0, br;q=0.5", "gzip"),
    ("br;q=0.5, gzip", "gzip"),
    ("br;q=0, *", "gzip"),
    ("*", "br"),
    ("*;q=0.5, gzip;q=0.4", "br"),
    ("gzip;q=0, br;q=0", None),
    ("deflate, zstd", None),
    ("gzip;q=0.5, identity", None),          # identity explicitly preferred
    ("identity;q=0, gzip", "gzip"),
    ("identity;q=0", None),                  # nothing acceptable: sent as is (no 406)
    ("*;q=0", None),
    ("x-gzip", "gzip"),
    ("GZip;Q=0.8, BR;q=0.9", "br"),
])
def test_accept_encoding_negotiation(shared, accept, coding):
    r = fetch(shared, "/text/5000", accept)
    assert r.status == 200
    assert r.header("content-encoding") == coding
    assert decoded(r) == text_body(5000)
    assert vary_tokens(r) == ["accept-encoding"]


def test_identity_refused_compresses_below_min_length(shared):
    r = fetch(shared, "/text/100", "identity;q=0, gzip")
    assert r.header("content-encoding") == "gzip" and decoded(r) == text_body(100)
    r = fetch(shared, "/text/100", "gzip")
    assert r.header("content-encoding") is None and r.body == text_body(100)


# ---- Vary ------------------------------------------------------------------------------------

def test_vary_merged_once_on_every_compressible_response(shared):
    assert vary_tokens(fetch(shared, "/text/5000?vary=Origin", "gzip")) == ["origin",
                                                                            "accept-encoding"]
    assert vary_tokens(fetch(shared, "/text/5000?vary=accept-encoding", "br")) == [
        "accept-encoding"]
    assert vary_tokens(fetch(shared, "/text/5000?vary=*", "br")) == ["*"]
    # sent uncompressed, still varies: too small, refused, no header, no-transform, HEAD
    for target, accept, method in [("/text/100?vary=Origin", "gzip", "GET"),
                                   ("/text/5000?vary=Origin", "gzip;q=0", "GET"),
                                   ("/text/5000?vary=Origin", None, "GET"),
                                   ("/text/5000?vary=Origin&cc=no-transform", "gzip", "GET"),
                                   ("/text/5000?vary=Origin", "gzip", "HEAD")]:
        r = fetch(shared, target, accept, method=method)
        assert r.header("content-encoding") is None, target
        assert vary_tokens(r) == ["origin", "accept-encoding"], (target, accept, method)
    # a type that is never compressed is left alone
    assert "accept-encoding" not in vary_tokens(fetch(shared, "/bytes/5000", "gzip"))


# ---- ETag / If-None-Match ------------------------------------------------------------------

def test_weak_etag_revalidates_against_a_strongly_comparing_origin(shared):
    target = "/text/5000?inm=strong&vary=Origin"
    r = fetch(shared, target, "gzip")
    assert r.status == 200 and r.header("content-encoding") == "gzip"
    weak = r.header("etag")
    assert weak == 'W/"text-5000"'
    # The client revalidates its compressed copy with the tag it got.
    r = fetch(shared, target, "gzip", headers=[("If-None-Match", weak)])
    assert r.status == 304, r
    assert r.body == b""
    assert r.header("etag") == weak
    assert vary_tokens(r) == ["origin", "accept-encoding"]
    # Among other tags too.
    r = fetch(shared, target, "br", headers=[("If-None-Match", '"other", ' + weak)])
    assert r.status == 304 and r.header("etag") == weak
    # An identity client revalidating the origin's strong tag gets it back strong.
    r = fetch(shared, target, None, headers=[("If-None-Match", '"text-5000"')])
    assert r.status == 304 and r.header("etag") == '"text-5000"'
    assert vary_tokens(r) == ["origin", "accept-encoding"]
    # A stale tag is a full, compressed response.
    r = fetch(shared, target, "gzip", headers=[("If-None-Match", 'W/"text-4999"')])
    assert r.status == 200 and decoded(r) == text_body(5000)


# ---- streaming ------------------------------------------------------------------------------

def read_events(c, coding, count, deadline):
    """Reads a chunked, encoded SSE body from client `c` (head already read); returns
    [(client time when the event became decodable, event bytes)]."""
    decoder = zlib.decompressobj(16 + 15) if coding == "gzip" else brotli.Decompressor()
    decode = decoder.decompress if coding == "gzip" else decoder.process
    text, got = b"", []
    while len(got) < count and time.monotonic() < deadline:
        line_end = c.buf.find(b"\r\n")
        size = int(bytes(c.buf[:line_end]).split(b";")[0], 16) if line_end >= 0 else None
        if size is None or len(c.buf) < line_end + 2 + size + 2:
            assert c._fill(), "connection closed after %d events" % len(got)
            continue
        text += decode(bytes(c.buf[line_end + 2:line_end + 2 + size]))
        del c.buf[:line_end + 2 + size + 2]
        events = text.split(b"\n\n")
        got += [(time.time(), e) for e in events[len(got):-1]]
    return got


@pytest.mark.parametrize("coding", ["gzip", "br"])
def test_sse_event_decodes_before_the_next_is_sent(shared, coding):
    with Client(shared.port, timeout=10.0) as c:
        c.send(Client.build("GET", "/sse/3?pause_ms=800", [("Accept-Encoding", coding)]))
        head = c.read_head()
        assert head.status == 200 and head.header("content-encoding") == coding
        got = read_events(c, coding, 3, time.monotonic() + 8)
    assert len(got) == 3, got
    sent = [float(e.split(b"data: ")[1]) for _, e in got]
    decoded_at = [t for t, _ in got]
    for i in range(2):
        # event i was decoded by the client before the backend even sent event i + 1
        assert decoded_at[i] < sent[i + 1], (decoded_at, sent)
        assert decoded_at[i] - sent[i] < 0.5
    assert sent[2] - sent[0] > 1.5  # the backend did pause


@pytest.mark.parametrize("total", [600, 3000, 150_000])
def test_streamed_chunks_are_flushed_promptly(shared, total):
    """Chunks of a non-SSE stream that are followed by an upstream pause are decodable at once --
    pieces below min_length (the head does not wait for min_length bytes past a pause), small
    pieces, and pieces larger than one encoder-friendly read (50 KB) alike."""
    piece = total // 3
    with Client(shared.port, timeout=10.0) as c:
        c.send(Client.build("GET", f"/text/{total}?chunks=3&pause_ms=1500",
                            [("Accept-Encoding", "gzip")]))
        start = time.monotonic()
        head = c.read_head()
        assert head.header("content-encoding") == "gzip"
        decoder = zlib.decompressobj(16 + 15)
        text = b""
        while len(text) < piece and time.monotonic() - start < 5:
            size = int(c.readline().split(b";")[0], 16)
            while len(c.buf) < size + 2:
                c._fill()
            text += decoder.decompress(bytes(c.buf[:size]))
            del c.buf[:size + 2]
        assert text[:piece] == text_body(total)[:piece]
        assert time.monotonic() - start < 1.4  # before the backend's first pause ended


# ---- skips and metrics ----------------------------------------------------------------------

def skip_cases(g):
    """Every skip reason once; each response must be the backend's bytes, not encoded."""
    cases = {
        "no_content": fetch(g, "/status/204", "gzip"),
        "not_modified": fetch(g, "/text/5000?inm=strong", "gzip",
                              headers=[("If-None-Match", '"text-5000"')]),
        "head": fetch(g, "/text/5000", "gzip", method="HEAD"),
        "already_encoded": fetch(g, "/text/5000?ce=x-custom", "gzip"),
        "type": fetch(g, "/bytes/5000", "gzip"),
        "no_transform": fetch(g, "/text/5000?cc=public,%20no-transform", "gzip"),
        "range": fetch(g, "/text/5000?status=206", "gzip"),
        "client_refused": fetch(g, "/text/5000", "gzip;q=0, br;q=0"),
        "too_small": fetch(g, "/text/255", "gzip"),
    }
    assert cases["no_content"].status == 204
    assert cases["not_modified"].status == 304
    assert cases["range"].status == 206
    for reason, r in cases.items():
        assert r.header("content-encoding") in (None, "x-custom"), reason
    assert cases["already_encoded"].body == text_body(5000)
    assert cases["range"].body == text_body(5000)
    assert cases["range"].header("content-range") == "bytes 0-4999/10000"
    assert cases["range"].header("accept-ranges") == "bytes"
    assert len(cases["type"].body) == 5000
    # 101: the upgrade goes through untouched
    with Client(g.port, timeout=5.0) as c:
        c.send(Client.build("GET", "/raw/switch-101", [("Accept-Encoding", "gzip"),
                                                       ("Upgrade", "websocket"),
                                                       ("Connection", "Upgrade")]))
        head = c.read_head()
        assert head.status == 101 and head.header("content-encoding") is None
    return set(cases) | {"informational"}


def test_skips_and_metrics(start_backend, start_gatehouse):
    backend = start_backend("text")
    g = start_gatehouse(compress_config(backend, admin=True))
    admin = admin_port(g)
    reasons = skip_cases(g)
    sent = {"gzip": fetch(g, "/text/100000", "gzip"), "br": fetch(g, "/text/100000", "br")}
    m = settled_metrics(admin)
    text = scrape(admin)
    for reason in reasons:
        assert m.value("gatehouse_compress_skipped_total", reason=reason) == 1, reason
    assert m.types["gatehouse_compress_skipped_total"] == "counter"
    for codec, r in sent.items():
        assert decoded(r) == text_body(100000)
        assert m.value("gatehouse_compress_responses_total", codec=codec) == 1
        assert m.value("gatehouse_compress_bytes_in_total", codec=codec) == 100000
        assert m.value("gatehouse_compress_bytes_out_total", codec=codec) == len(r.body)
        assert m.value("gatehouse_compress_encoder_memory_bytes", codec=codec) == 0
    assert 100_000 < m.value("gatehouse_compress_encoder_peak_bytes", codec="gzip") <= 256 * 1024
    assert m.value("gatehouse_compress_encoder_peak_bytes", codec="br") > 100_000
    checked = promtool_check(text)
    if checked is not None:
        assert checked[0] == 0, checked[1]


def test_cpu_guard_sends_uncompressed_when_the_worker_is_busy(start_backend, start_gatehouse):
    backend = start_backend("text")
    g = start_gatehouse(compress_config(backend, 'max_cpu_percent = 1\ncpu_window = "50ms"\n',
                                        workers=1, admin=True))
    admin = admin_port(g)
    # Opens the window, then burns well over 1 % of the worker for the next one.
    r = fetch(g, "/text/3000000", "br")
    assert r.header("content-encoding") == "br" and decoded(r) == text_body(3000000)
    time.sleep(0.06)
    r = fetch(g, "/text/5000?vary=Origin", "br")
    assert r.header("content-encoding") is None and r.body == text_body(5000)
    assert vary_tokens(r) == ["origin", "accept-encoding"]
    m = settled_metrics(admin)
    assert m.value("gatehouse_compress_skipped_total", reason="cpu_guard") == 1
    assert m.value("gatehouse_compress_worker_busy_ratio", worker="0") > 0.01
    # Idle for a while: the next window is mostly idle and compression resumes.
    time.sleep(1.5)
    r = fetch(g, "/text/5000", "br")
    assert r.header("content-encoding") == "br" and decoded(r) == text_body(5000)
    m = settled_metrics(admin)
    assert m.value("gatehouse_compress_worker_busy_ratio", worker="0") < 0.01


# ---- configuration --------------------------------------------------------------------------

def test_module_keys_change_behaviour(start_backend, start_gatehouse):
    backend = start_backend("text")
    g = start_gatehouse(compress_config(
        backend, 'prefer = ["gzip", "br"]\nmin_length = "2k"\ngzip_level = 1\n'
                 'brotli_level = 9\nbrotli_window = 18\ngzip_window = 14\ngzip_mem_level = 8\n'
                 'types = ["text/html"]\nflush = "always"\n'))
    r = fetch(g, "/text/5000?type=text/html", "gzip, br")
    assert r.header("content-encoding") == "gzip" and decoded(r) == text_body(5000)
    assert fetch(g, "/text/5000?type=text/html", "*").header("content-encoding") == "gzip"
    r = fetch(g, "/text/5000?type=text/html", "br")
    assert r.header("content-encoding") == "br" and decoded(r) == text_body(5000)
    r = fetch(g, "/text/2047?type=text/html", "gzip")
    assert r.header("content-encoding") is None and r.body == text_body(2047)
    r = fetch(g, "/text/5000", "gzip")  # text/plain is no longer listed
    assert r.header("content-encoding") is None and "accept-encoding" not in vary_tokens(r)


def test_route_overrides_and_disables(start_backend, start_gatehouse):
    backend = start_backend("text")
    routes = ""
    for host, table in (("off.test", "{ enabled = false }"),
                        ("gz.test", '{ brotli = false, min_length = 0, types = ["text/*"] }')):
        routes += ('[[route]]\nhost = "%s"\npath = "/"\nupstream = "app"\nfilters = ["compress"]\n'
                   'filter_config = { compress = %s }\n\n' % (host, table))
    g = start_gatehouse(compress_config(backend, 'min_length = 1000\n', extra=routes))
    r = fetch(g, "/text/5000", "br", host="off.test")
    assert r.header("content-encoding") is None and r.body == text_body(5000)
    assert r.header("vary") is None and r.header("etag") == '"text-5000"'
    r = fetch(g, "/text/10", "gzip, br", host="gz.test")
    assert r.header("content-encoding") == "gzip" and decoded(r) == text_body(10)
    # the module table still applies elsewhere
    assert fetch(g, "/text/999", "br").header("content-encoding") is None
    assert fetch(g, "/text/1000", "br").header("content-encoding") == "br"


BAD_VALUES = [
    ("gzip_level = 12", "filter.compress.gzip_level", "between 1 and 9"),
    ("gzip_level = \"6\"", "filter.compress.gzip_level", ""),
    ("brotli_level = -1", "filter.compress.brotli_level", "between 0 and 11"),
    ("brotli_window = 24", "filter.compress.brotli_window", "between 10 and 20"),
    ("brotli_block = \"512\"", "filter.compress.brotli_block", "between 1k and 16m"),
    ("brotli_block = true", "filter.compress.brotli_block", ""),
    ("gzip_window = 8", "filter.compress.gzip_window", "between 9 and 15"),
    ("gzip_mem_level = 9", "filter.compress.gzip_mem_level", "256 KiB"),
    ("gzip_max_chain = 5000", "filter.compress.gzip_max_chain", "between 0 and 4096"),
    ("gzip_max_chain = -1", "filter.compress.gzip_max_chain", "between 0 and 4096"),
    ("gzip = \"yes\"", "filter.compress.gzip", ""),
    ("enabled = 1", "filter.compress.enabled", ""),
    ("min_length = \"lots\"", "filter.compress.min_length", ""),
    ("types = [\"text\"]", "filter.compress.types", "type/subtype"),
    ("types = \"text/html\"", "filter.compress.types", "array"),
    ("prefer = [\"zstd\"]", "filter.compress.prefer", "\"br\" and \"gzip\""),
    ("prefer = [\"br\", \"br\"]", "filter.compress.prefer", "twice"),
    ("flush = \"never\"", "filter.compress.flush", "\"auto\", \"always\""),
    ("max_cpu_percent = 0", "filter.compress.max_cpu_percent", "between 1 and 100"),
    ("cpu_window = \"1ms\"", "filter.compress.cpu_window", "10ms and 1m"),
    ("cpu_window = \"soon\"", "filter.compress.cpu_window", ""),
    ("gzip_lvl = 5", "filter.compress.gzip_lvl", ""),
]


@pytest.mark.parametrize("line,path,message", BAD_VALUES)
def test_check_refuses_bad_module_values(tmp_path, line, path, message):
    text = compress_config("127.0.0.1:1", line + "\n")
    rc, err = harness.run_check(tmp_path, text)
    assert rc != 0
    lineno = text.splitlines().index(line) + 1
    assert re.search(r"gatehouse\.toml:%d: \[%s\]" % (lineno, re.escape(path)), err), err
    assert message in err


def test_check_refuses_bad_route_values_and_accepts_good_ones(tmp_path):
    text = compress_config("127.0.0.1:1",
                           route_extra="filter_config = { compress = { gzip_level = 0 } }\n")
    rc, err = harness.run_check(tmp_path, text)
    assert rc != 0 and "filter_config.compress.gzip_level" in err and "between 1 and 9" in err
    good = ('gzip = true\nbrotli = true\ngzip_level = 9\nbrotli_level = 4\ngzip_window = 15\n'
            'gzip_mem_level = 7\nbrotli_window = 20\nprefer = ["gzip"]\nmin_length = "1k"\n'
            'types = ["text/*", "*/*"]\nflush = "always"\nmax_cpu_percent = 80\n'
            'cpu_window = "2s"\nenabled = true\nbrotli_block = "64k"\n')
    rc, err = harness.run_check(tmp_path, compress_config("127.0.0.1:1", good))
    assert rc == 0, err


# ---- bodies without a length: the head waits for the first min_length bytes --------------------

def raw_upstream_gatehouse(start_gatehouse, response, hold=0.0, upstream=""):
    up = harness.OneShotUpstream(response, hold=hold)
    cfg = compress_config(up.address)
    if upstream:
        cfg = cfg.replace("[upstream.app]\n", "[upstream.app]\n" + upstream, 1)
    return up, start_gatehouse(cfg)


@pytest.mark.parametrize("size,compressed", [(100, False), (1000, True)])
def test_close_delimited_body_decided_from_its_bytes(start_gatehouse, size, compressed):
    body = text_body(size)
    up, g = raw_upstream_gatehouse(
        start_gatehouse, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body)
    try:
        r = fetch(g, "/x", "gzip")
    finally:
        up.close()
    assert r.status == 200
    assert r.header("content-encoding") == ("gzip" if compressed else None)
    assert decoded(r) == body
    assert "accept-encoding" in vary_tokens(r)


def test_chunked_body_in_one_piece_below_min_length_is_not_compressed(start_gatehouse):
    body = text_body(200)
    up, g = raw_upstream_gatehouse(
        start_gatehouse, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + b"64\r\n" + body[:100] + b"\r\n64\r\n" +
        body[100:] + b"\r\n0\r\n\r\n")
    try:
        r = fetch(g, "/x", "gzip")
    finally:
        up.close()
    assert r.status == 200 and r.header("content-encoding") is None
    assert r.body == body and r.header("transfer-encoding") == "chunked"


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_body_already_in_the_buffer_goes_through_in_pieces_without_waiting(start_gatehouse,
                                                                          framing):
    """The filters get at most 16 KiB of a read at a time (a bounded decoded copy per stream);
    the rest of what the buffer holds follows without another upstream read: an upstream that
    sent the whole body and then stays open, silent, does not delay it."""
    body = text_body(400_000)
    if framing == "length":
        raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(
            body) + body
    else:
        raw = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n" +
               b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 50_000]), body[i:i + 50_000])
                        for i in range(0, len(body), 50_000)) + b"0\r\n\r\n")
    up, g = raw_upstream_gatehouse(start_gatehouse, raw, hold=6.0)
    try:
        start = time.monotonic()
        r = fetch(g, "/x", "br")
        elapsed = time.monotonic() - start
    finally:
        up.close()
    assert r.status == 200 and r.header("content-encoding") == "br"
    assert decoded(r) == body
    assert elapsed < 3, elapsed


def test_upstream_silent_after_the_head_is_a_504(start_gatehouse):
    """The head waits for the first body bytes; an upstream that sends none within its idle
    timeout gets the client a 504, not a hang or a reset."""
    up, g = raw_upstream_gatehouse(
        start_gatehouse, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n", hold=3.0, upstream='idle_timeout = "500ms"\n')
    try:
        start = time.monotonic()
        r = fetch(g, "/x", "gzip")
        assert r.status == 504
        assert time.monotonic() - start < 2.5
    finally:
        up.close()


def test_invalid_chunk_while_peeking_is_a_502(start_gatehouse):
    up, g = raw_upstream_gatehouse(
        start_gatehouse, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
    try:
        r = fetch(g, "/x", "gzip")
    finally:
        up.close()
    assert r.status == 502


@pytest.mark.parametrize("size,compressed", [(100, False), (1000, True)])
def test_peeked_body_to_an_http10_client(start_gatehouse, size, compressed):
    """HTTP/1.0 client, chunked upstream: the held first bytes and the rest go out unchunked,
    ended by the close."""
    body = text_body(size)
    half = size // 2
    up, g = raw_upstream_gatehouse(
        start_gatehouse, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % half + body[:half] + b"\r\n" +
        b"%x\r\n" % (size - half) + body[half:] + b"\r\n0\r\n\r\n")
    try:
        raw = harness.raw_request(g.port, Client.build("GET", "/x", [("Accept-Encoding", "gzip")],
                                                       version="HTTP/1.0"))
    finally:
        up.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"transfer-encoding" not in head.lower()
    assert (b"content-encoding: gzip" in head.lower()) == compressed
    assert (gzip.decompress(payload) if compressed else payload) == body
