"""compress module: gzip / brotli response compression through gatehouse, decoded by the client
and compared byte for byte with the backend's body."""

import gzip
import time
import zlib

import pytest

import harness
from harness import Client, get

brotli = pytest.importorskip("brotli")


def text_body(n):
    import backend  # the test backend module, for the exact body it sends
    return backend.text_body(n)


def compress_config(backend, module_table="", route_extra=""):
    base = harness.proxy_config([backend], route='filters = ["compress"]\n' + route_extra,
                                extra="[filter.compress]\n" + module_table)
    return base.replace(harness.modules_toml(),
                        harness.modules_toml(("round_robin", "least_conn", "compress")))


@pytest.fixture
def gh(start_backend, start_gatehouse):
    backend = start_backend("text")
    return start_gatehouse(compress_config(backend))


def fetch(g, target, accept=None, method="GET"):
    headers = [("Accept-Encoding", accept)] if accept is not None else []
    with Client(g.port, timeout=10.0) as c:
        return c.request(method, target, headers)


def vary_tokens(resp):
    return [t.strip().lower() for v in resp.headers_named("vary") for t in v.split(",") if t.strip()]


def test_gzip_decodes_to_backend_bytes(gh):
    for n in (256, 1000, 100_000, 3_000_000):
        r = fetch(gh, "/text/%d" % n, "gzip")
        assert r.status == 200 and r.complete
        assert r.header("content-encoding") == "gzip"
        assert r.header("content-length") is None
        assert gzip.decompress(r.body) == text_body(n)
        assert len(r.body) < n


def test_brotli_decodes_to_backend_bytes(gh):
    for n in (300, 100_000, 3_000_000):
        r = fetch(gh, "/text/%d" % n, "gzip, deflate, br")
        assert r.status == 200 and r.complete
        assert r.header("content-encoding") == "br"
        assert brotli.decompress(r.body) == text_body(n)


def test_chunked_upstream_is_compressed(gh):
    r = fetch(gh, "/text/50000?chunks=7", "gzip")
    assert r.header("content-encoding") == "gzip"
    assert gzip.decompress(r.body) == text_body(50000)
    r = fetch(gh, "/text/50000?chunks=7&type=application/json", "br")
    assert r.header("content-encoding") == "br"
    assert brotli.decompress(r.body) == text_body(50000)


def test_q_values_choose_the_coding(gh):
    assert fetch(gh, "/text/5000", "br;q=0.5, gzip").header("content-encoding") == "gzip"
    assert fetch(gh, "/text/5000", "br;q=0, *").header("content-encoding") == "gzip"
    assert fetch(gh, "/text/5000", "*").header("content-encoding") == "br"
    r = fetch(gh, "/text/5000", "gzip;q=0, br;q=0")
    assert r.header("content-encoding") is None and r.body == text_body(5000)


def test_vary_and_weak_etag_when_compressed(gh):
    r = fetch(gh, "/text/5000", "gzip")
    assert vary_tokens(r).count("accept-encoding") == 1
    assert r.header("etag") == 'W/"text-5000"'
    assert r.header("accept-ranges") is None
    # an existing Vary is merged, not duplicated
    r = fetch(gh, "/text/5000?vary=Origin", "gzip")
    assert vary_tokens(r) == ["origin", "accept-encoding"]
    r = fetch(gh, "/text/5000?vary=Accept-Encoding", "gzip")
    assert vary_tokens(r) == ["accept-encoding"]


def test_identity_without_accept_encoding_still_varies(gh):
    r = fetch(gh, "/text/5000")
    assert r.header("content-encoding") is None
    assert r.body == text_body(5000)
    assert r.header("content-length") == "5000"
    assert r.header("etag") == '"text-5000"'
    assert "accept-encoding" in vary_tokens(r)


def test_below_min_length_is_not_compressed(gh):
    r = fetch(gh, "/text/255", "gzip, br")
    assert r.header("content-encoding") is None and r.body == text_body(255)
    assert r.header("etag") == '"text-255"'
    assert "accept-encoding" in vary_tokens(r)


def test_skips(gh):
    # a type outside the list: untouched, no Vary
    r = fetch(gh, "/bytes/10000", "gzip, br")
    assert r.header("content-encoding") is None and len(r.body) == 10000
    assert "accept-encoding" not in vary_tokens(r)
    # Cache-Control: no-transform
    r = fetch(gh, "/text/5000?cc=public,%20no-transform", "gzip")
    assert r.header("content-encoding") is None and r.body == text_body(5000)
    # not 200
    r = fetch(gh, "/status/404", "gzip")
    assert r.status == 404 and r.header("content-encoding") is None
    # HEAD
    r = fetch(gh, "/text/5000", "gzip", method="HEAD")
    assert r.status == 200 and r.header("content-encoding") is None


def test_streamed_chunks_are_flushed_promptly(start_backend, start_gatehouse):
    """Each upstream chunk is decodable at the client before the backend sends the next."""
    backend = start_backend("text")
    g = start_gatehouse(compress_config(backend))
    with Client(g.port, timeout=10.0) as c:
        c.send(Client.build("GET", "/text/3000?chunks=3&pause_ms=1500&type=text/event-stream",
                            [("Accept-Encoding", "gzip")]))
        start = time.monotonic()
        got = b""
        text = b""
        while len(text) < 1000 and time.monotonic() - start < 5:
            c.sock.settimeout(5)
            data = c.sock.recv(65536)
            if not data:
                break
            got += data
            head, sep, rest = got.partition(b"\r\n\r\n")
            if not sep:
                continue
            # de-chunk what we have so far
            body, buf = b"", rest
            while True:
                line, s2, after = buf.partition(b"\r\n")
                if not s2:
                    break
                size = int(line.split(b";")[0], 16)
                if len(after) < size + 2:
                    break
                body += after[:size]
                buf = after[size + 2:]
            text = zlib.decompressobj(16 + 15).decompress(body)
        assert b"content-encoding: gzip" in head.lower()
        assert text[:1000] == text_body(3000)[:1000]
        assert time.monotonic() - start < 1.4  # before the backend's first pause ended


def test_config_is_checked(tmp_path, start_backend):
    backend = start_backend("text")
    rc, err = harness.run_check(tmp_path, compress_config(backend, "gzip_level = 12\n"))
    assert rc != 0 and "gzip_level" in err
    rc, err = harness.run_check(tmp_path, compress_config(backend, "gzip_lvl = 5\n"))
    assert rc != 0 and "gzip_lvl" in err
    rc, err = harness.run_check(tmp_path, compress_config(backend, "types = [\"text\"]\n"))
    assert rc != 0 and "types" in err
    rc, err = harness.run_check(tmp_path, compress_config(
        backend, "brotli = false\ngzip_level = 9\nmin_length = \"1k\"\ntypes = [\"text/*\"]\n"))
    assert rc == 0, err


def test_brotli_off_and_min_length_config(start_backend, start_gatehouse):
    backend = start_backend("text")
    g = start_gatehouse(compress_config(backend, "brotli = false\nmin_length = 2000\n"))
    r = fetch(g, "/text/5000", "br, gzip")
    assert r.header("content-encoding") == "gzip"
    assert gzip.decompress(r.body) == text_body(5000)
    r = fetch(g, "/text/1999", "br, gzip")
    assert r.header("content-encoding") is None and r.body == text_body(1999)
