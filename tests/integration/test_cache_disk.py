"""cache_disk through the real binary: one test per RFC 9111 rule, against a scripted origin that
counts requests (script_origin.py); restart survival, crash safety (kill -9 while writing),
eviction under the byte cap, compress variants, metrics and `gatehouse check`.

"From cache" is always asserted on the origin's request count, never on our own header alone."""

import hashlib
import itertools
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest

import harness
from admin_helpers import admin_port, parse_metrics, scrape
from harness import Client, wait_until
from script_origin import Reply, ScriptOrigin, http_date

MODULES = ("round_robin", "cache_disk")
_ids = itertools.count()


@pytest.fixture
def origin():
    """A ScriptOrigin of the test's own, closed at teardown."""
    o = ScriptOrigin()
    yield o
    o.close()


def cache_config(origin, path, module_table="", route_extra="", filters=("cache_disk",),
                 modules=MODULES, admin=False, workers=2, extra=""):
    route = "filters = [%s]\n" % ", ".join('"%s"' % f for f in filters) + route_extra
    text = harness.proxy_config([origin.address], route=route, workers=workers,
                                extra='[filter.cache_disk]\npath = "%s"\n%s\n%s'
                                % (path, module_table, extra))
    if admin:
        text = text.replace("[[listener]]", "[admin]\nlisten = \"127.0.0.1:0\"\n\n[[listener]]", 1)
    return text.replace(harness.modules_toml(), harness.modules_toml(modules))


class Cache:
    """A gatehouse with cache_disk in front of a ScriptOrigin."""

    def __init__(self, g, origin, path):
        self.g, self.origin, self.path = g, origin, path

    def get(self, target, headers=(), method="GET", body=b"", host="test.local"):
        with Client(self.g.port, timeout=10.0) as c:
            r = c.request(method, target, list(headers), body=body, host=host)
        assert r.complete, r
        return r

    def metrics(self):
        return parse_metrics(scrape(admin_port(self.g)))

    def metric(self, name, **labels):
        """One sample's value, 0 while the series does not exist yet."""
        try:
            return self.metrics().value(name, **labels)
        except KeyError:
            return 0.0


@pytest.fixture(scope="module")
def cache(module_processes):
    origin = ScriptOrigin()
    path = module_processes.tmp_path / "cache"
    g = harness.Gatehouse(module_processes.tmp_path, cache_config(origin, path, admin=True))
    module_processes.gatehouses.append(g)
    yield Cache(g, origin, path)
    origin.close()


def fresh_path(origin, *replies):
    p = "/t%d" % next(_ids)
    origin.script(p, *replies)
    return p


def ok(headers=(), body=b"body", status=200, **kw):
    return Reply(status, [("Date", http_date())] + list(headers), body, **kw)


def status_of(r):
    return r.header("cache-status") or ""


# ---- storing and reuse ---------------------------------------------------------------------


def test_fresh_response_is_served_from_cache_with_age_and_original_date(cache):
    p = fresh_path(cache.origin, ok([("Cache-Control", "max-age=3600"), ("X-A", "1")], b"hello"))
    first = cache.get(p)
    assert first.status == 200 and first.body == b"hello"
    assert "fwd=uri-miss" in status_of(first) and "stored" in status_of(first)
    assert first.header("content-length") == "5", "an observed body keeps its framing"
    time.sleep(1.1)
    second = cache.get(p)
    assert cache.origin.count(p) == 1
    assert second.status == 200 and second.body == b"hello"
    assert second.header("x-a") == "1"
    assert second.header("date") == first.header("date"), "Date is never regenerated"
    assert int(second.header("age")) >= 1
    assert re.match(r"gatehouse; hit; ttl=\d+", status_of(second)), status_of(second)


def test_age_counts_upstream_age_and_resident_time(cache):
    p = fresh_path(cache.origin, ok([("Cache-Control", "max-age=3600"), ("Age", "30")]))
    assert cache.get(p).header("age") == "30", "a miss passes the origin's Age through"
    time.sleep(2.1)
    r = cache.get(p)
    assert cache.origin.count(p) == 1
    assert int(r.header("age")) >= 32


@pytest.mark.parametrize("headers,request_headers,reason", [
    ([("Cache-Control", "no-store")], [], "no_store"),
    ([("Cache-Control", "No-StOrE, max-age=100")], [], "no_store"),
    ([("Cache-Control", "max-age=100")], [("Cache-Control", "no-store")], "no_store"),
    ([("Cache-Control", "private, max-age=100")], [], "private"),
    ([("Cache-Control", "max-age=100")], [("Authorization", "Basic eDp5")], "authorization"),
    ([("Cache-Control", "max-age=100"), ("Set-Cookie", "s=1")], [], "set_cookie"),
    ([("Cache-Control", "max-age=100"), ("Vary", "*")], [], "vary_star"),
    ([("Cache-Control", "max-age=100"), ("Vary", "Foo, *")], [], "vary_star"),
    ([("Last-Modified", http_date(-86400))], [], None),  # 201: not heuristically cacheable
])
def test_unstorable_responses_go_to_the_origin_every_time(cache, headers, request_headers, reason):
    status = 201 if reason is None else 200
    p = fresh_path(cache.origin, ok(headers, status=status))
    first = cache.get(p, request_headers)
    assert first.status == status
    if reason:
        assert "detail=" + reason in status_of(first), status_of(first)
    cache.get(p, request_headers)
    assert cache.origin.count(p) == 2


def test_authorization_may_be_shared_with_public_or_s_maxage(cache):
    for cc in ("public, max-age=100", "s-maxage=100", "must-revalidate, max-age=100"):
        p = fresh_path(cache.origin, ok([("Cache-Control", cc)]))
        cache.get(p, [("Authorization", "Basic eDp5")])
        assert cache.get(p).status == 200
        assert cache.origin.count(p) == 1, cc


FRESHNESS_CASES = [
    ([("Cache-Control", "max-age=0")], False),
    ([("Cache-Control", "max-age=-3600")], False),
    ([("Cache-Control", "max-age=003600")], True),
    ([("Cache-Control", "max-age='3600'")], False),
    ([("Cache-Control", 'extension="max-age=3600", max-age=1')], False),
    ([("Cache-Control", "max-age=3600, s-maxage=1")], False),
    ([("Cache-Control", "max-age=3600"), ("Cache-Control", "s-maxage=1")], False),
    ([("Cache-Control", "s-maxage=3600")], True),
    ([("Cache-Control", "max-age=3600"), ("Age", "7200")], False),
    ([("Cache-Control", "max-age=3600"), ("Age", "0, 7200")], True),
    ([("Cache-Control", "max-age=3600"), ("Age", "7200"), ("Age", "0")], False),
    ([("Cache-Control", "max-age=3600"), ("Age", "2147483648")], False),
    ([("Cache-Control", "max-age=3600"), ("Age", "7200.0")], True),
    ([("Expires", http_date(3600))], True),
    ([("Expires", http_date(-3600))], False),
    ([("Expires", "0")], False),
    ([("Expires", "Thu, 18 Aug 2050 02:01:18 UTC")], False),
    ([("Expires", "Thu, 18 Aug 2050 02:01:18 GMT"), ("Expires", "Thu, 18 Aug 2050 02:01:19 GMT")],
     False),
    ([("Expires", http_date(3600)), ("Cache-Control", "max-age=0")], False),
    ([("Last-Modified", http_date(-864000))], True),  # heuristic: 10 % of 10 days
    ([("CDN-Cache-Control", "max-age=1"), ("Cache-Control", "max-age=3600")], False),
    ([("CDN-Cache-Control", "max-age=3600"), ("Cache-Control", "no-store")], True),
    ([("CDN-Cache-Control", "no-store"), ("Cache-Control", "max-age=3600")], False),
    ([("CDN-Cache-Control", "max-age=3600, &&&"), ("Cache-Control", "no-store")], False),
]


def test_freshness(cache):
    """For each response, the second request 1.5 s later is served from cache exactly when the
    response is still fresh by RFC 9111 §4.2 (shared-cache rules, RFC 9213 targeted field).
    All first requests go out, then one pause, then all second requests."""
    paths = [fresh_path(cache.origin, ok(headers)) for headers, _ in FRESHNESS_CASES]
    for p in paths:
        cache.get(p)
    time.sleep(1.5)
    failures = []
    for p, (headers, cached) in zip(paths, FRESHNESS_CASES):
        second = cache.get(p)
        assert second.status == 200
        if cache.origin.count(p) != (1 if cached else 2):
            failures.append((headers, cached, status_of(second)))
    assert not failures, failures


def test_stale_expires_beats_the_heuristic_for_every_status(cache):
    for status in (200, 301, 404, 410, 500):
        p = fresh_path(cache.origin, ok([("Expires", http_date(-5000)),
                                         ("Last-Modified", http_date(-100000))], status=status),
                       ok([("Cache-Control", "max-age=100")]))
        cache.get(p)
        assert cache.get(p).status == 200
        assert cache.origin.count(p) == 2, status


def test_query_is_part_of_the_key(cache):
    p = fresh_path(cache.origin, ok([("Cache-Control", "max-age=100")]))
    cache.get(p + "?a=1")
    cache.get(p + "?a=2")
    cache.get(p + "?a=1")
    assert cache.origin.count(p) == 2


def test_head_is_served_from_a_stored_get(cache):
    p = fresh_path(cache.origin, ok([("Cache-Control", "max-age=100")], b"0123456789"))
    cache.get(p)
    r = cache.get(p, method="HEAD")
    assert r.status == 200 and r.body == b""
    assert r.header("content-length") == "10"
    assert cache.origin.count(p) == 1


def test_hop_by_hop_and_connection_listed_fields_are_not_stored(cache):
    p = fresh_path(cache.origin, ok([("Cache-Control", "max-age=100"), ("Connection", "a, b"),
                                     ("A", "1"), ("B", "2"), ("C", "3")]))
    cache.get(p)
    r = cache.get(p)
    assert cache.origin.count(p) == 1
    assert r.header("c") == "3" and r.header("a") is None and r.header("b") is None


def test_empty_204_is_stored(cache):
    p = fresh_path(cache.origin, ok([("Cache-Control", "max-age=100")], b"", status=204))
    assert cache.get(p).status == 204
    r = cache.get(p)
    assert r.status == 204 and r.header("content-length") is None
    assert cache.origin.count(p) == 1


# ---- request directives ----------------------------------------------------------------------


def test_request_no_cache_and_max_age_0_revalidate(cache):
    p = fresh_path(cache.origin, ok([("Cache-Control", "max-age=100"), ("ETag", '"v1"')], b"v1"),
                   Reply(304, [("ETag", '"v1"'), ("Date", http_date())]))
    cache.get(p)
    for h in ([("Cache-Control", "no-cache")], [("Cache-Control", "max-age=0")],
              [("Pragma", "no-cache")]):
        r = cache.get(p, h)
        assert r.status == 200 and r.body == b"v1"
    assert cache.origin.count(p) == 4
    assert all(rq.header("if-none-match") == '"v1"' for rq in cache.origin.requests(p)[1:])
    # Pragma is ignored when Cache-Control is present.
    cache.get(p, [("Pragma", "no-cache"), ("Cache-Control", "nothing-to-see-here")])
    assert cache.origin.count(p) == 4


def test_max_stale_min_fresh_and_only_if_cached(cache):
    p = fresh_path(cache.origin, ok([("Cache-Control", "max-age=1")], b"x"))
    cache.get(p)
    assert cache.get(p, [("Cache-Control", "min-fresh=30")]).status == 200
    assert cache.origin.count(p) == 2, "min-fresh beyond the lifetime goes to the origin"
    time.sleep(1.6)
    r = cache.get(p, [("Cache-Control", "max-stale=60")])
    assert r.status == 200 and cache.origin.count(p) == 2, "max-stale accepts the stale copy"
    assert re.search(r"; hit; ttl=(0|-\d+)$", status_of(r)), status_of(r)
    r = cache.get(p, [("Cache-Control", "only-if-cached")])
    assert r.status == 504 and cache.origin.count(p) == 2
    q = fresh_path(cache.origin, ok([("Cache-Control", "max-age=100")]))
    assert cache.get(q, [("Cache-Control", "only-if-cached")]).status == 504
    assert cache.origin.count(q) == 0


def test_must_revalidate_is_never_served_stale(cache):
    for cc in ("max-age=1, must-revalidate", "max-age=1, proxy-revalidate", "s-maxage=1"):
        p = fresh_path(cache.origin, ok([("Cache-Control", cc)]))
        cache.get(p)
        time.sleep(1.2)
        cache.get(p, [("Cache-Control", "max-stale=100")])
        assert cache.origin.count(p) == 2, cc


# ---- validation ------------------------------------------------------------------------------


def test_no_cache_response_is_revalidated_every_time(cache):
    p = fresh_path(cache.origin,
                   ok([("Cache-Control", "max-age=100, no-cache"), ("ETag", '"e"')], b"stored"),
                   Reply(304, [("ETag", '"e"'), ("Date", http_date())]))
    cache.get(p)
    for _ in range(2):
        r = cache.get(p)
        assert r.status == 200 and r.body == b"stored"
        assert "fwd-status=304" in status_of(r)
    assert cache.origin.count(p) == 3


def test_304_updates_stored_headers_and_freshness_but_not_content_length(cache):
    body = b"x" * 36
    p = fresh_path(cache.origin,
                   ok([("Cache-Control", "max-age=1"), ("ETag", '"u1"'), ("Test-Header", "A"),
                       ("Content-Length", "36")], body),
                   Reply(304, [("Date", http_date()), ("ETag", '"u1"'), ("Test-Header", "B"),
                               ("Cache-Control", "max-age=3600"), ("Content-Length", "10")]))
    cache.get(p)
    time.sleep(1.5)
    r = cache.get(p)
    assert cache.origin.requests(p)[1].header("if-none-match") == '"u1"'
    assert r.status == 200 and r.body == body
    assert r.header("test-header") == "B" and r.header("content-length") == "36"
    r = cache.get(p)
    assert cache.origin.count(p) == 2, "the 304 made the stored response fresh again"
    assert r.header("test-header") == "B" and r.header("cache-control") == "max-age=3600"


def test_last_modified_is_sent_back_byte_for_byte(cache):
    lm = "Wed, 01 Jan 2020 00:00:00 GMT"
    p = fresh_path(cache.origin,
                   ok([("Cache-Control", "max-age=1"), ("Last-Modified", lm), ("T", "A")], b"lm"),
                   Reply(304, [("Date", http_date()), ("Last-Modified", lm)]))
    cache.get(p)
    time.sleep(1.5)
    r = cache.get(p)
    assert cache.origin.requests(p)[1].header("if-modified-since") == lm
    assert r.status == 200 and r.body == b"lm" and r.header("t") == "A"


def test_a_full_response_to_revalidation_replaces_the_stored_one(cache):
    p = fresh_path(cache.origin, ok([("Cache-Control", "max-age=1"), ("ETag", '"a"')], b"old"),
                   ok([("Cache-Control", "max-age=100"), ("ETag", '"b"')], b"new"))
    cache.get(p)
    time.sleep(1.5)
    assert cache.get(p).body == b"new"
    r = cache.get(p)
    assert r.body == b"new" and r.header("etag") == '"b"'
    assert cache.origin.count(p) == 2


def test_client_conditionals_are_answered_from_cache(cache):
    lm = http_date(-1000)()
    p = fresh_path(cache.origin, ok([("Cache-Control", "max-age=100"), ("ETag", '"abc"'),
                                     ("Last-Modified", lm)]))
    cache.get(p)
    r = cache.get(p, [("If-None-Match", '"abc"')])
    assert r.status == 304 and r.header("etag") == '"abc"' and r.body == b""
    assert r.header("content-length") is None
    assert cache.get(p, [("If-None-Match", 'W/"abc", "zz"')]).status == 304
    assert cache.get(p, [("If-None-Match", '"other"')]).status == 200
    assert cache.get(p, [("If-Modified-Since", lm)]).status == 304
    assert cache.get(p, [("If-None-Match", '"abc"'),
                         ("If-Modified-Since", http_date(-100000)())]).status == 304
    assert cache.get(p, [("If-None-Match", '"x"'), ("If-Modified-Since", lm)]).status == 200
    assert cache.origin.count(p) == 1


# ---- Vary ----------------------------------------------------------------------------------------


def test_vary_selects_variants(cache):
    p = fresh_path(cache.origin, ok([("Cache-Control", "max-age=100"), ("Vary", "Foo"),
                                     ("Vary", "Bar")]))
    cache.get(p, [("Foo", "1"), ("Bar", "a")])
    cache.get(p, [("Foo", "1"), ("Bar", "a")])
    assert cache.origin.count(p) == 1
    cache.get(p, [("Foo", "2"), ("Bar", "a")])
    assert cache.origin.count(p) == 2, "a different value is another variant"
    cache.get(p, [("Foo", "1")])
    assert cache.origin.count(p) == 3, "an omitted header does not match a stored value"
    cache.get(p, [("Foo", "2"), ("Bar", "a")])
    cache.get(p, [("Foo", "1"), ("Bar", "a")])
    assert cache.origin.count(p) == 3, "both variants are kept"
    r = cache.get(p, [("Foo", "1"), ("Bar", "b")])
    assert "fwd=vary-miss" in status_of(r)


def test_vary_header_omitted_when_stored(cache):
    p = fresh_path(cache.origin, ok([("Cache-Control", "max-age=100"), ("Vary", "Foo")]))
    cache.get(p)
    cache.get(p, [("Foo", "1")])
    assert cache.origin.count(p) == 2


def test_vary_accept_encoding_is_normalised_to_the_preferred_coding(cache):
    p = fresh_path(cache.origin, ok([("Cache-Control", "max-age=100"),
                                     ("Vary", "Accept-Encoding")]))
    cache.get(p, [("Accept-Encoding", "gzip, deflate, br")])
    cache.get(p, [("Accept-Encoding", "br, gzip")])
    assert cache.origin.count(p) == 1
    cache.get(p, [("Accept-Encoding", "gzip")])
    assert cache.origin.count(p) == 2


# ---- invalidation --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "M-SEARCH"])
def test_unsafe_methods_invalidate(cache, method):
    p = fresh_path(cache.origin, ok([("Cache-Control", "max-age=100")]))
    cache.get(p)
    cache.get(p, method=method, body=b"abc")
    cache.get(p)
    assert cache.origin.count(p) == 3


def test_failed_unsafe_method_does_not_invalidate(cache):
    p = fresh_path(cache.origin, ok([("Cache-Control", "max-age=100")]))
    cache.get(p)
    cache.origin.script(p, ok(status=500))
    cache.get(p, method="POST", body=b"abc")
    assert cache.get(p).status == 200
    assert cache.origin.count(p) == 2


def test_location_and_content_location_of_the_same_origin_are_invalidated(cache):
    a = fresh_path(cache.origin, ok([("Cache-Control", "max-age=100")]))
    b = fresh_path(cache.origin, ok([("Cache-Control", "max-age=100")]))
    c = fresh_path(cache.origin, ok([("Cache-Control", "max-age=100")]))
    for x in (a, b, c):
        cache.get(x)
    post = fresh_path(cache.origin, ok([("Location", a),
                                        ("Content-Location", "http://test.local" + b)]))
    cache.get(post, method="POST", body=b"x")
    other = fresh_path(cache.origin, ok([("Location", "http://elsewhere.example" + c)]))
    cache.get(other, method="POST", body=b"x")
    for x in (a, b, c):
        cache.get(x)
    assert (cache.origin.count(a), cache.origin.count(b), cache.origin.count(c)) == (2, 2, 1)


# ---- ranges --------------------------------------------------------------------------------------


def test_ranges_are_served_from_a_complete_stored_response(cache):
    p = fresh_path(cache.origin, ok([("Cache-Control", "max-age=100"), ("ETag", '"r"'),
                                     ("A", "1")], b"01234567890"))
    cache.get(p)
    r = cache.get(p, [("Range", "bytes=0-1")])
    assert r.status == 206 and r.body == b"01" and r.header("a") == "1"
    assert r.header("content-range") == "bytes 0-1/11"
    assert cache.get(p, [("Range", "bytes=-3")]).body == b"890"
    assert cache.get(p, [("Range", "bytes=9-")]).body == b"90"
    r = cache.get(p, [("Range", "bytes=50-60")])
    assert r.status == 416 and r.header("content-range") == "bytes */11"
    assert cache.get(p, [("Range", "bytes=0-1"), ("If-Range", '"other"')]).status == 200
    assert cache.get(p, [("Range", "bytes=0-1"), ("If-Range", '"r"')]).status == 206
    assert cache.get(p, [("Range", "bytes=0-1,3-4")]).status == 200
    assert cache.origin.count(p) == 1


# ---- operations ------------------------------------------------------------------------------


def test_metrics_count_hits_misses_and_bytes(cache):
    p = fresh_path(cache.origin, ok([("Cache-Control", "max-age=100")], b"m" * 1000))
    hits = cache.metric("gatehouse_cache_disk_requests_total", result="hit")
    misses = cache.metric("gatehouse_cache_disk_requests_total", result="miss")
    written = cache.metric("gatehouse_cache_disk_bytes_written_total")
    cache.get(p)
    cache.get(p)
    assert wait_until(
        lambda: cache.metric("gatehouse_cache_disk_bytes_written_total") - written >= 1000, 5)
    assert cache.metric("gatehouse_cache_disk_requests_total", result="hit") - hits >= 1
    assert cache.metric("gatehouse_cache_disk_requests_total", result="miss") - misses >= 1

    assert cache.metric("gatehouse_cache_disk_objects", path=str(cache.path)) >= 1


def test_restart_serves_existing_objects(start_gatehouse, tmp_path, origin):
    path = tmp_path / "cache"
    p = fresh_path(origin, ok([("Cache-Control", "max-age=3600"), ("ETag", '"s"')],
                              b"survives" * 100))
    g = start_gatehouse(cache_config(origin, path))
    Cache(g, origin, path).get(p)
    wait_until(lambda: any(f.is_file() for f in path.glob("??/*")), 5)
    g.stop()
    g2 = start_gatehouse(cache_config(origin, path), name="again")
    c = Cache(g2, origin, path)
    assert wait_until(lambda: c.get(p).status == 200 and origin.count(p) == 1
                      and "hit" in status_of(c.get(p)), 5)
    assert c.get(p).body == b"survives" * 100
    assert origin.count(p) == 1


def test_kill_9_while_writing_never_serves_a_corrupt_object(start_gatehouse, tmp_path, origin):
    """Concurrent clients store many 64-200 KiB objects; gatehouse is killed with SIGKILL in
    the middle; after a restart every object served from cache matches the checksum the
    origin put in its headers, and the rest are clean misses."""
    path = tmp_path / "cache"
    paths = []
    for i in range(120):
        body = hashlib.sha256(b"%d" % i).digest() * (2048 + 37 * i)
        paths.append(fresh_path(origin, ok([("Cache-Control", "max-age=3600"),
                                            ("X-Sha256", hashlib.sha256(body).hexdigest())],
                                           body)))
    g = start_gatehouse(cache_config(origin, path))
    c = Cache(g, origin, path)
    stop = threading.Event()

    def client(mine):
        for p in mine:
            if stop.is_set():
                return
            try:
                c.get(p)
            except Exception:  # the kill cuts requests short
                return

    threads = [threading.Thread(target=client, args=(paths[k::4],)) for k in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: sum(1 for _ in path.glob("??/*")) >= 20, 10)
    g.stopping = True  # the kill below is the test, not a crash
    os.kill(g.pid, signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join(10)
    g.proc.wait(5)
    g2 = start_gatehouse(cache_config(origin, path), name="after-kill")
    c2 = Cache(g2, origin, path)
    time.sleep(0.5)  # let the loader index what survived
    served = 0
    for p in paths:
        r = c2.get(p, [("Cache-Control", "only-if-cached")])
        if r.status == 200:
            served += 1
            assert hashlib.sha256(r.body).hexdigest() == r.header("x-sha256"), p
        else:
            assert r.status == 504
    assert served >= 10, "objects written before the kill are served after it"


def test_byte_cap_evicts_least_recently_used(start_gatehouse, tmp_path, origin):
    path = tmp_path / "cache"
    g = start_gatehouse(cache_config(origin, path, admin=True,
                                     module_table='max_size = "1m"\n'
                                                  'max_object_size = "128k"\n'))
    c = Cache(g, origin, path)
    body = b"e" * 100_000
    ps = [fresh_path(origin, ok([("Cache-Control", "max-age=100")], body)) for _ in range(25)]
    for p in ps:
        c.get(p)
        c.get(ps[0])  # keep the first one hot
    wait_until(lambda: c.metric("gatehouse_cache_disk_evictions_total", reason="lru"), 5)
    on_disk = sum(f.stat().st_size for f in path.glob("??/*"))
    assert on_disk <= (1 << 20) + (128 << 10)
    assert c.metric("gatehouse_cache_disk_evictions_total", reason="lru") >= 10
    before = origin.count(ps[0])
    c.get(ps[0])
    assert origin.count(ps[0]) == before, "the hot object survived"
    big = fresh_path(origin, ok([("Cache-Control", "max-age=100")], b"b" * 200_000))
    assert "detail=too_large" in status_of(c.get(big))


def test_compress_variants_are_stored_once_each(start_gatehouse, tmp_path, origin):
    brotli = pytest.importorskip("brotli")
    import gzip
    path = tmp_path / "cache"
    text = b"<p>hello cache</p>\n" * 500
    p = fresh_path(origin, ok([("Cache-Control", "max-age=100"), ("ETag", '"c1"'),
                               ("Content-Type", "text/html")], text))
    g = start_gatehouse(cache_config(origin, path, filters=("cache_disk", "compress"),
                                     modules=MODULES + ("compress",)))
    c = Cache(g, origin, path)
    seen = {}
    for ae in ("br, gzip", "gzip", "identity", "gzip, deflate, br", "gzip"):
        r = c.get(p, [("Accept-Encoding", ae)])
        ce = r.header("content-encoding")
        body = (brotli.decompress(r.body) if ce == "br" else
                gzip.decompress(r.body) if ce == "gzip" else r.body)
        assert body == text
        assert "accept-encoding" in r.header("vary").lower()
        seen.setdefault(ce, set()).add((r.header("etag"), r.header("vary")))
    assert set(seen) == {"br", "gzip", None}
    assert all(len(v) == 1 for v in seen.values()), seen  # hits match misses
    assert seen["br"] == {('W/"c1"', seen["br"].copy().pop()[1])}
    assert origin.count(p) == 3, "one origin request per encoding"
    # Files are written after the response (offload): wait for the third, then count.
    assert wait_until(lambda: sum(1 for _ in path.glob("??/*")) >= 3, 5)
    assert sum(1 for _ in path.glob("??/*")) == 3


@pytest.mark.parametrize("table,route,message", [
    ('path = "relative/dir"', "", "[filter.cache_disk.path] must be an absolute directory"),
    ('path = "/tmp/x"\nmax_size = "10k"', "", "max_size] must be at least 1m"),
    ('path = "/tmp/x"\nmax_size = "2m"\nmax_object_size = "3m"', "",
     "max_object_size cannot exceed max_size"),
    ('path = "/tmp/x"\ninactive = "10ms"', "", "inactive] must be at least 1s"),
    ('path = "/tmp/x"\ncollect_size = "1k"', "", "must be at least max_object_size"),
    ('path = "/tmp/x"\nmemory_object_max = "1g"', "", "cannot exceed max_object_size"),
    ('path = "/tmp/x"\ncollapse_timeout = "1ms"', "", "between 10ms and 10m"),
    ('path = "/tmp/x"\nkey = ["host", "cookie"]', "", "parts are"),
    ('path = "/tmp/x"\nkey = ["host"]', "", 'must include "path"'),
    ('path = "/tmp/x"\nquery_allow = ["a"]\nquery_deny = ["b"]', "", "cannot both be set"),
    ('path = "/tmp/x"\nheuristic_percent = 200', "", "heuristic_percent"),
    ('path = "/tmp/x"\ncache_status_name = "a b"', "", "must be a token"),
    ('path = "/tmp/x"\ntargeted_cache_control = "a:b"', "", "header field name"),
    ('path = "/tmp/x"\nmax_sise = "1g"', "", "max_sise"),
    ('path = "/tmp/x"', 'filter_config.cache_disk = { max_size = "2g" }',
     "is a module-level key"),
    ("", "", "has no `path`"),
])
def test_check_refuses_bad_values(tmp_path, table, route, message):
    text = harness.proxy_config(["127.0.0.1:1"], route='filters = ["cache_disk"]\n' + route,
                                extra="[filter.cache_disk]\n" + table + "\n")
    text = text.replace(harness.modules_toml(), harness.modules_toml(MODULES))
    code, out = harness.run_check(tmp_path, text)
    assert code != 0
    assert message in out, out
    assert re.search(r"gatehouse\.toml:\d+", out), out


# ---- collapsing --------------------------------------------------------------------------------


def _concurrent(n, fn):
    results = [None] * n
    errors = []

    def run(i):
        try:
            results[i] = fn(i)
        except Exception as e:  # reported below, not swallowed
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors[:3]
    return results


def test_100_concurrent_misses_make_one_origin_request(cache):
    body = b"collapsed " * 2000
    p = fresh_path(cache.origin, ok([("Cache-Control", "max-age=100")], body, delay=0.8))
    results = _concurrent(100, lambda i: cache.get(p))
    assert cache.origin.count(p) == 1
    assert all(r.status == 200 and r.body == body for r in results)
    collapsed = [r for r in results if "collapsed" in status_of(r)]
    assert len(collapsed) >= 90, [status_of(r) for r in results][:5]


def test_waiters_are_streamed_the_body_as_it_arrives(cache):
    """The origin sends half the body, pauses 1.5 s, sends the rest: waiters that joined after
    the leader get their first body bytes during the pause, then the whole body."""
    import socket
    pieces = [b"a" * 5000, b"b" * 5000]
    p = fresh_path(cache.origin, ok([("Cache-Control", "max-age=100")], chunks=pieces, pause=1.5))

    def waiter(i):
        with socket.create_connection(("127.0.0.1", cache.g.port), timeout=10) as sock:
            sock.sendall(Client.build("GET", p, []))
            data = b""
            first = None
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                head_end = data.find(b"\r\n\r\n")
                if first is None and head_end >= 0 and len(data) > head_end + 4:
                    first = time.time()
                if b"b" * 100 in data and data.endswith(b"0\r\n\r\n"):
                    break
            return first, data

    leader = threading.Thread(target=lambda: cache.get(p))
    leader.start()
    assert wait_until(lambda: cache.origin.count(p) == 1, 5)
    start = time.time()
    results = _concurrent(10, waiter)
    leader.join(10)
    assert cache.origin.count(p) == 1
    for first, data in results:
        assert first is not None and first - start < 1.0, "first bytes came during the pause"
        assert b"collapsed" in data and data.count(b"a") >= 5000 and data.count(b"b") >= 5000


def test_uncacheable_response_releases_every_waiter_at_once(cache):
    p = fresh_path(cache.origin, ok([("Cache-Control", "no-store")], b"private", delay=0.6))
    start = time.time()
    results = _concurrent(20, lambda i: cache.get(p))
    elapsed = time.time() - start
    assert all(r.status == 200 and r.body == b"private" for r in results)
    assert cache.origin.count(p) == 20
    assert elapsed < 3.0, "released together, not one after another (%.1f s)" % elapsed


def test_waiter_with_another_variant_goes_upstream(cache):
    p = fresh_path(cache.origin, ok([("Cache-Control", "max-age=100"), ("Vary", "Foo")],
                                    b"v", delay=0.5))
    results = _concurrent(2, lambda i: cache.get(p, [("Foo", str(i))]) if i == 0 else
                          (time.sleep(0.1), cache.get(p, [("Foo", "other")]))[1])
    assert all(r.status == 200 for r in results)
    assert cache.origin.count(p) == 2


def test_leader_failure_aborts_or_releases_waiters(cache):
    """The origin resets the connection mid-body: the leader's client gets a truncated response
    and so does every waiter already streaming it -- never a complete-looking wrong body."""
    p = fresh_path(cache.origin, Reply(200, [("Cache-Control", "max-age=100"),
                                             ("Content-Length", "10000")], b"x" * 100,
                                       delay=0.4))
    def fetch(i):
        try:
            r = cache.get(p)
            return r.complete and len(r.body) == 10000
        except Exception:
            return False
    results = _concurrent(5, fetch)
    assert not any(results), "no client may get a whole body the origin never sent"


def test_collapse_timeout_lets_waiters_go_upstream(start_gatehouse, tmp_path, origin):
    path = tmp_path / "cache"
    g = start_gatehouse(cache_config(origin, path, module_table='collapse_timeout = "200ms"'))
    c = Cache(g, origin, path)
    p = fresh_path(origin, ok([("Cache-Control", "max-age=100")], b"slow", delay=1.5))
    results = _concurrent(4, lambda i: c.get(p))
    assert all(r.status == 200 for r in results)
    assert origin.count(p) == 4
    q = fresh_path(origin, ok([("Cache-Control", "max-age=100")], b"slow", delay=0.5))
    g2 = start_gatehouse(cache_config(origin, tmp_path / "c2",
                                      module_table="collapse = false"), name="nocollapse")
    _concurrent(4, lambda i: Cache(g2, origin, path).get(q))
    assert origin.count(q) == 4


# ---- serving stale ---------------------------------------------------------------------------


def test_stale_while_revalidate_serves_stale_and_revalidates_once(cache):
    p = fresh_path(cache.origin,
                   ok([("Cache-Control", "max-age=1, stale-while-revalidate=30"), ("ETag", '"1"')],
                      b"old"),
                   ok([("Cache-Control", "max-age=100"), ("ETag", '"2"')], b"new", delay=0.5))
    cache.get(p)
    time.sleep(1.5)
    start = time.time()
    results = [cache.get(p) for _ in range(5)]
    assert time.time() - start < 0.5, "stale answers do not wait for the origin"
    assert all(r.body == b"old" for r in results)
    assert wait_until(lambda: cache.origin.count(p) == 2, 5)
    assert cache.origin.requests(p)[1].header("if-none-match") == '"1"'
    time.sleep(0.3)
    assert wait_until(lambda: cache.get(p).body == b"new", 5)
    assert cache.origin.count(p) == 2, "exactly one background revalidation"


def test_stale_while_revalidate_window_ends(cache):
    p = fresh_path(cache.origin,
                   ok([("Cache-Control", "max-age=1, stale-while-revalidate=1"), ("ETag", '"a"')]),
                   ok([("Cache-Control", "no-cache"), ("ETag", '"b"')], b"fresh"))
    cache.get(p)
    time.sleep(3.2)  # ages are whole seconds: well past max-age + the window
    r = cache.get(p)
    assert r.body == b"fresh" and cache.origin.count(p) == 2


def test_stale_if_error_serves_stale_on_5xx_and_when_unreachable(cache):
    p = fresh_path(cache.origin,
                   ok([("Cache-Control", "max-age=1, stale-if-error=60"), ("X-Stored", "1")],
                      b"stale"),
                   ok(status=503), Reply(disconnect=True))
    cache.get(p)
    time.sleep(1.5)
    r = cache.get(p)
    assert r.status == 200 and r.body == b"stale" and r.header("x-stored") == "1"
    assert "fwd=stale" in status_of(r) and "fwd-status=503" in status_of(r)
    r = cache.get(p)
    assert r.status == 200 and r.body == b"stale", status_of(r)
    assert "detail=" in status_of(r)


@pytest.mark.parametrize("cc", ["max-age=1, must-revalidate, stale-if-error=60",
                                "max-age=1, proxy-revalidate, stale-if-error=60",
                                "s-maxage=1, stale-if-error=60",
                                "max-age=1, no-cache, stale-if-error=60"])
def test_never_stale_when_the_response_forbids_it(cache, cc):
    p = fresh_path(cache.origin, ok([("Cache-Control", cc), ("X-Stored", "1")], b"stale"),
                   Reply(disconnect=True))
    cache.get(p)
    time.sleep(1.2)
    r = cache.get(p)
    assert r.status in (502, 504) and r.header("x-stored") is None


def test_grace_serves_stale_without_a_directive(start_gatehouse, tmp_path, origin):
    path = tmp_path / "cache"
    g = start_gatehouse(cache_config(origin, path, module_table='stale_if_error = "1m"'))
    c = Cache(g, origin, path)
    p = fresh_path(origin, ok([("Cache-Control", "max-age=1")], b"graced"),
                   Reply(disconnect=True))
    c.get(p)
    time.sleep(1.2)
    assert c.get(p).body == b"graced"
    q = fresh_path(origin, ok([("Cache-Control", "max-age=1")], b"x"), Reply(disconnect=True))
    g2 = start_gatehouse(cache_config(origin, tmp_path / "c2"), name="nograce")
    Cache(g2, origin, path).get(q)
    time.sleep(1.2)
    assert Cache(g2, origin, path).get(q).status == 502


# ---- purge through the admin listener --------------------------------------------------------


def admin_call(cache, method, target):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", admin_port(cache.g), timeout=5)
    try:
        conn.request(method, target)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_purge_by_key_removes_every_variant(cache):
    import json
    p = fresh_path(cache.origin, ok([("Cache-Control", "max-age=100"), ("Vary", "Foo")]))
    cache.get(p, [("Foo", "1")])
    cache.get(p, [("Foo", "2")])
    assert cache.origin.count(p) == 2
    status, body = admin_call(cache, "POST",
                              "/modules/cache_disk/purge?key=http%3A%2F%2Ftest.local" + p)
    assert status == 200 and json.loads(body) == {"purged": 2}, body
    cache.get(p, [("Foo", "1")])
    cache.get(p, [("Foo", "2")])
    assert cache.origin.count(p) == 4


def test_purge_by_prefix(cache):
    import json
    base = fresh_path(cache.origin)
    paths = []
    for i in range(3):
        q = base + "/item%d" % i
        cache.origin.script(q, ok([("Cache-Control", "max-age=100")]))
        paths.append(q)
        cache.get(q)
    other = fresh_path(cache.origin, ok([("Cache-Control", "max-age=100")]))
    cache.get(other)
    status, body = admin_call(cache, "POST",
                              "/modules/cache_disk/purge?prefix=http://test.local" + base + "/")
    assert status == 200 and json.loads(body) == {"purged": 3}, body
    for q in paths + [other]:
        cache.get(q)
    assert [cache.origin.count(q) for q in paths] == [2, 2, 2]
    assert cache.origin.count(other) == 1, "outside the prefix"


def test_purge_refuses_bad_requests_and_lives_only_on_the_admin_listener(cache):
    assert admin_call(cache, "GET", "/modules/cache_disk/purge?key=x")[0] == 405
    assert admin_call(cache, "POST", "/modules/cache_disk/purge")[0] == 400
    assert admin_call(cache, "POST", "/modules/cache_disk/purge?key=a&prefix=b")[0] == 400
    assert admin_call(cache, "POST", "/modules/cache_disk/nothing")[0] == 404
    assert admin_call(cache, "POST", "/modules/no_such_module/purge?key=x")[0] == 404
    status, body = admin_call(cache, "GET", "/modules/cache_disk/stats")
    assert status == 200 and b'"objects"' in body
    # On the data plane the same path is just proxied (the origin has no such script).
    assert cache.get("/modules/cache_disk/purge?prefix=http").status == 404


def test_cache_key_rules_per_route(start_gatehouse, tmp_path, origin):
    """query_sort, query_deny and query_allow per route; key without the host."""
    path = tmp_path / "cache"
    extra = ('\n[[route]]\npath = "/allow/"\nupstream = "app"\nfilters = ["cache_disk"]\n'
             'filter_config = { cache_disk = { query_allow = ["id"] } }\n'
             '\n[[route]]\npath = "/nohost/"\nupstream = "app"\nfilters = ["cache_disk"]\n'
             'filter_config = { cache_disk = { key = ["path", "query"] } }\n')
    text = cache_config(origin, path, module_table=(
        'query_sort = true\nquery_deny = ["utm_source"]\n'), extra=extra)
    g = start_gatehouse(text)  # routes match by longest path prefix
    c = Cache(g, origin, path)
    p = fresh_path(origin, ok([("Cache-Control", "max-age=100")]))
    c.get(p + "?a=1&b=2")
    c.get(p + "?b=2&a=1")
    c.get(p + "?a=1&b=2&utm_source=x")
    assert origin.count(p) == 1, "sorted, utm_source left out"
    origin.script("/allow/x", ok([("Cache-Control", "max-age=100")]))
    c.get("/allow/x?id=1&session=a")
    c.get("/allow/x?id=1&session=b")
    c.get("/allow/x?id=2")
    assert origin.count("/allow/x") == 2, "only id is part of the key"
    origin.script("/nohost/y", ok([("Cache-Control", "max-age=100")]))
    c.get("/nohost/y", host="a.example")
    c.get("/nohost/y", host="b.example")
    assert origin.count("/nohost/y") == 1, "the host is not part of this route's key"


def test_interim_response_is_forwarded_and_only_the_final_one_stored(cache):
    p = fresh_path(cache.origin, ok([("Cache-Control", "max-age=100")], b"final",
                                    interim=[(103, [("Link", "</s.css>; rel=preload")])]))
    with Client(cache.g.port, timeout=5) as c:
        c.send(Client.build("GET", p))
        hints = c.read_response(skip_interim=False)
        assert hints.status == 103 and hints.header("link") == "</s.css>; rel=preload"
        final = c.read_response()
        assert final.status == 200 and final.body == b"final"
    r = cache.get(p)
    assert r.status == 200 and r.body == b"final" and cache.origin.count(p) == 1


# ---- failure paths ---------------------------------------------------------------------------


def test_unusable_cache_directory_logs_and_proxies_without_caching(start_gatehouse, tmp_path, origin):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    g = start_gatehouse(cache_config(origin, blocker))
    p = fresh_path(origin, ok([("Cache-Control", "max-age=100")], b"through"))
    c = Cache(g, origin, blocker)
    for _ in range(2):
        r = c.get(p)
        assert r.status == 200 and r.body == b"through"
        assert r.header("cache-status") is None
    assert origin.count(p) == 2
    assert "cache_disk: cannot create" in g.log_text()


def test_write_errors_are_counted_and_the_response_is_unharmed(start_gatehouse, tmp_path, origin):
    import shutil
    path = tmp_path / "cache"
    g = start_gatehouse(cache_config(origin, path, admin=True,
                                     module_table='memory_size = "0"'))
    c = Cache(g, origin, path)
    shutil.rmtree(path / "tmp")
    (path / "tmp").write_text("temporaries cannot be created in a file")
    p = fresh_path(origin, ok([("Cache-Control", "max-age=100")], b"unharmed"))
    r = c.get(p)
    assert r.status == 200 and r.body == b"unharmed"
    assert wait_until(lambda: c.metric("gatehouse_cache_disk_write_errors_total") >= 1, 5)
    assert wait_until(lambda: c.get(p).status == 200 and origin.count(p) >= 2, 5), \
        "an object that could not be written is not served"


def test_corrupted_file_is_never_served_after_restart(start_gatehouse, tmp_path, origin):
    path = tmp_path / "cache"
    p = fresh_path(origin, ok([("Cache-Control", "max-age=100")], b"A" * 5000),
                   ok([("Cache-Control", "max-age=100")], b"B" * 5000))
    g = start_gatehouse(cache_config(origin, path))
    Cache(g, origin, path).get(p)
    assert wait_until(lambda: len(list(path.glob("??/*"))) == 1, 5)
    g.stop()
    f = next(path.glob("??/*"))
    data = bytearray(f.read_bytes())
    data[-10] ^= 0xFF  # one flipped byte in the body
    f.write_bytes(bytes(data))
    g2 = start_gatehouse(cache_config(origin, path), name="restarted")
    c = Cache(g2, origin, path)
    time.sleep(0.3)
    r = c.get(p)
    assert r.body == b"B" * 5000, "the corrupted copy was not served"
    assert origin.count(p) == 2


def test_clients_leaving_mid_stream_do_not_disturb_the_others(cache):
    import socket
    pieces = [b"x" * 4000, b"y" * 4000]
    p = fresh_path(cache.origin, ok([("Cache-Control", "max-age=100")], chunks=pieces, pause=0.8))
    leader = threading.Thread(target=lambda: cache.get(p))
    leader.start()
    assert wait_until(lambda: cache.origin.count(p) == 1, 5)
    quitters = []
    for _ in range(5):  # waiters that hang up before the body is complete
        s = socket.create_connection(("127.0.0.1", cache.g.port), timeout=5)
        s.sendall(Client.build("GET", p))
        quitters.append(s)
    time.sleep(0.3)
    for s in quitters:
        s.close()
    stayer = cache.get(p)
    leader.join(10)
    assert stayer.body == b"".join(pieces)
    assert cache.get(p).body == b"".join(pieces) and cache.origin.count(p) == 1


def test_collect_budget_passes_responses_through_unstored(start_gatehouse, tmp_path, origin):
    path = tmp_path / "cache"
    g = start_gatehouse(cache_config(origin, path, admin=True, module_table=(
        'max_size = "4m"\nmax_object_size = "1m"\ncollect_size = "1m"\n')))
    c = Cache(g, origin, path)
    pieces = [b"p" * 600_000, b"q" * 200_000]
    a = fresh_path(origin, ok([("Cache-Control", "max-age=100")], chunks=pieces, pause=0.6))
    b = fresh_path(origin, ok([("Cache-Control", "max-age=100")], chunks=pieces, pause=0.6))
    results = _concurrent(2, lambda i: c.get(a if i == 0 else b))
    assert all(r.body == b"".join(pieces) for r in results), "both answered whole"
    assert c.metric("gatehouse_cache_disk_store_decisions_total", verdict="busy") >= 1
    later = fresh_path(origin, ok([("Cache-Control", "max-age=100")], b"z" * 900_000))
    c.get(later)
    c.get(later)
    assert origin.count(later) == 1, "the budget was given back"


def test_large_objects_are_streamed_from_their_file(start_gatehouse, tmp_path, origin):
    """Bodies over memory_object_max are never read whole: verified, then sent in pieces as the
    client takes them. Whole, ranged, HEAD and conditional hits; a file corrupted under the
    cache is never served."""
    import socket
    path = tmp_path / "cache"
    g = start_gatehouse(cache_config(origin, path, module_table='memory_object_max = "64k"'))
    c = Cache(g, origin, path)
    body = bytes(range(256)) * (3 * 4096)  # 3 MiB
    p = fresh_path(origin, ok([("Cache-Control", "max-age=100"), ("ETag", '"big"')], body),
                   ok([("Cache-Control", "max-age=100"), ("ETag", '"big2"')], b"refetched"))
    assert c.get(p).body == body
    assert wait_until(lambda: len(list(path.glob("??/*"))) == 1, 5)
    time.sleep(0.2)
    r = c.get(p)
    assert r.status == 200 and r.body == body and "hit" in status_of(r)
    assert r.header("content-length") == str(len(body))
    r = c.get(p, [("Range", "bytes=1000000-1000099")])
    assert r.status == 206 and r.body == body[1000000:1000100]
    r = c.get(p, method="HEAD")
    assert r.status == 200 and r.body == b"" and r.header("content-length") == str(len(body))
    assert c.get(p, [("If-None-Match", '"big"')]).status == 304
    # A slow reader: the pieces follow it, and a reader that leaves stops the stream.
    with socket.create_connection(("127.0.0.1", g.port), timeout=5) as sock:
        sock.sendall(Client.build("GET", p))
        sock.recv(1000)
    assert c.get(p).body == body
    assert origin.count(p) == 1
    f = next(path.glob("??/*"))
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    r = c.get(p)
    assert r.body == b"refetched", "a corrupted file is not served"
    assert origin.count(p) == 2


def test_unknown_request_directives_and_pragmas_change_nothing(cache):
    # What the cache-tests suite sends on every request: neither may bypass the cache.
    h = [("Cache-Control", "nothing-to-see-here"), ("Pragma", "foo")]
    p = fresh_path(cache.origin, ok([("Cache-Control", "max-age=100")]))
    cache.get(p, h)
    r = cache.get(p, h)
    assert "hit" in status_of(r) and cache.origin.count(p) == 1


def test_rebuild_at_start_logs_and_the_cache_answers_meanwhile(start_gatehouse, tmp_path, origin):
    path = tmp_path / "cache"
    g = start_gatehouse(cache_config(origin, path))
    c = Cache(g, origin, path)
    ps = [fresh_path(origin, ok([("Cache-Control", "max-age=300")], b"o%d" % i))
          for i in range(300)]
    for p in ps:
        c.get(p)
    assert wait_until(lambda: len(list(path.glob("??/*"))) == 300, 10)
    g.stop()
    g2 = start_gatehouse(cache_config(origin, path), name="rebuilt")
    c2 = Cache(g2, origin, path)
    start = time.time()
    assert c2.get(ps[-1]).body == b"o299"  # answered whether indexed yet or not
    assert time.time() - start < 2
    assert wait_until(lambda: "300 objects indexed" in g2.log_text()
                      or "299 objects indexed" in g2.log_text(), 10), g2.log_text()[-500:]
    hits = sum("hit" in status_of(c2.get(p)) for p in ps[:50])
    assert hits == 50
