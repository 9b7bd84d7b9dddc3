"""The two balancer modules through the real binary: round_robin's exact weighted shares,
least_conn's preference for the less busy server, and in-flight counters that return to 0."""

import collections
import socket
import threading
import time

from harness import Client, get, proxy_config, raw_request


def run_parallel(workers, fn):
    """Runs fn(i) on `workers` threads; re-raises the first failure."""
    errors = []

    def wrap(i):
        try:
            fn(i)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=wrap, args=(i,), daemon=True) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "client threads hung"
    if errors:
        raise errors[0]


def test_round_robin_weighted_shares_are_exact(start_backend, start_gatehouse):
    a, b = start_backend("a"), start_backend("b")
    gh = start_gatehouse(proxy_config([{"address": a.address, "weight": 3}, b.address]))
    counts = collections.Counter()
    lock = threading.Lock()

    def client(_):
        with Client(gh.port) as c:
            for _ in range(100):
                r = c.request("GET", "/id")
                assert r.status == 200
                with lock:
                    counts[r.body] += 1
    run_parallel(4, client)
    assert counts == {b"a": 300, b"b": 100}


def test_round_robin_every_full_cycle_has_the_weight_shares(start_backend, start_gatehouse):
    a, b, c = start_backend("a"), start_backend("b"), start_backend("c")
    servers = [{"address": a.address, "weight": 3}, {"address": b.address, "weight": 2}, c.address]
    gh = start_gatehouse(proxy_config(servers))
    with Client(gh.port) as conn:
        order = [conn.request("GET", "/id").body for _ in range(60)]
    for i in range(0, 60, 6):
        cycle = collections.Counter(order[i:i + 6])
        assert cycle == {b"a": 3, b"b": 2, b"c": 1}, (i, order)
    # Smooth: the heavy server is not picked three times in a row.
    assert b"a,a,a" not in b",".join(order)


def test_least_conn_sends_fewer_requests_to_a_slow_server(start_backend, start_gatehouse):
    slow, fast = start_backend("slow", delay_ms=300), start_backend("fast")
    gh = start_gatehouse(proxy_config([slow, fast], balancer="least_conn"))
    counts = collections.Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + 2.0

    def client(_):
        with Client(gh.port) as c:
            while time.monotonic() < deadline:
                r = c.request("GET", "/id")
                assert r.status == 200
                with lock:
                    counts[r.body] += 1
    run_parallel(6, client)
    assert counts[b"fast"] > 4 * counts[b"slow"], counts


def chaos(port):
    """Requests that end every way a request can: completed, aborted by the client during the
    upstream wait and during the body, reset by the upstream, timed out waiting for the header."""
    def completed(_):
        for _ in range(10):
            assert get(port, "/id").status == 200

    def client_abort_waiting(_):
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(Client.build("GET", "/sleep/800"))
            time.sleep(0.1)

    def client_abort_in_body(_):
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(Client.build("POST", "/echo", [("Content-Length", "100000")]) + b"x" * 1000)
            time.sleep(0.1)

    def upstream_reset(_):
        assert get(port, "/raw/reset").status == 502

    def timed_out(_):
        assert get(port, "/slow-header/1500").status == 504

    def client_abort_raw(_):
        raw_request(port, Client.build("GET", "/sleep/300"), timeout=0.05)

    kinds = [completed, client_abort_waiting, client_abort_in_body, upstream_reset, timed_out,
             client_abort_raw]
    run_parallel(len(kinds) * 3, lambda i: kinds[i % len(kinds)](i))


def test_least_conn_counters_return_to_zero_after_every_kind_of_ending(start_backend,
                                                                      start_gatehouse):
    a, b = start_backend("a"), start_backend("b")
    upstream = 'first_byte_timeout = "300ms"\nmax_fails = 1000\n'
    gh = start_gatehouse(proxy_config([a, b], balancer="least_conn", upstream=upstream))
    chaos(gh.port)
    time.sleep(2.0)  # let every upstream exchange started by the chaos finish
    # With all in-flight counters back at 0, sequential requests tie every time and the random
    # tie-break splits them evenly; one leaked count would send (nearly) all of them one way.
    with Client(gh.port) as c:
        counts = collections.Counter(c.request("GET", "/id").body for _ in range(200))
    assert 60 <= counts[b"a"] <= 140, counts
    assert counts[b"a"] + counts[b"b"] == 200
