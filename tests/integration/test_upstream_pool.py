"""Pooled upstream connections: by default a server keeps as many idle connections as were in
use at once (no cliff at a fixed number), up to a cap, and the pool shrinks when demand falls;
a fixed `keepalive` keeps exactly that many."""

import threading
import time

from admin_helpers import admin_port, settled_metrics
from harness import Client, proxy_config, wait_until

CLIENTS = 40
ROUNDS = 8


def established_to(port):
    """Open TCP connections whose server side is `port` on 127.0.0.1 (the backend's accepted
    connections), from /proc/net/tcp."""
    count = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state == "01" and int(local.split(":")[1], 16) == port:
                count += 1
    return count


def concurrent_load(port, clients=CLIENTS, rounds=ROUNDS):
    """Rounds of `clients` requests sent together (a barrier between rounds): every round, all
    of them are in use at once, then all idle at once -- the pattern a fixed pool size cuts."""
    errors = []
    barrier = threading.Barrier(clients, timeout=30)

    def client():
        try:
            with Client(port, timeout=10) as c:
                for _ in range(rounds):
                    barrier.wait()
                    r = c.request("GET", "/sleep/30")
                    assert r.status == 200, r
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
            barrier.abort()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]


def new_connections(admin):
    m = settled_metrics(admin)
    return m.value("gatehouse_upstream_connections_total", upstream="app", reused="false")


def test_default_pool_keeps_what_demand_used_then_shrinks(start_backend, start_gatehouse):
    backend = start_backend("pool")
    gh = start_gatehouse(proxy_config([backend], workers=1,
                                      extra='[admin]\nlisten = "127.0.0.1:0"\n'))
    admin = admin_port(gh)
    concurrent_load(gh.port)
    concurrent_load(gh.port)
    # 640 requests, at most 40 at once: each new upstream connection served many of them.
    fresh = new_connections(admin)
    assert backend.stats()["max_active"] >= CLIENTS // 2  # the load really was concurrent
    assert fresh <= CLIENTS + 4, fresh
    assert backend.stats()["connections"] <= CLIENTS + 4
    pooled = established_to(backend.port)
    assert pooled >= CLIENTS // 2, pooled
    # Nobody needs them now: the pool halves what stayed idle, period after period.
    assert wait_until(lambda: established_to(backend.port) <= pooled // 2, 16, interval=0.25), \
        established_to(backend.port)


def test_fixed_keepalive_keeps_exactly_that_many(start_backend, start_gatehouse):
    backend = start_backend("pool")
    gh = start_gatehouse(proxy_config([backend], workers=1, upstream="keepalive = 4",
                                      extra='[admin]\nlisten = "127.0.0.1:0"\n'))
    admin = admin_port(gh)
    concurrent_load(gh.port, rounds=4)
    # Beyond 4 idle ones, connections close when they come back, and new ones are opened.
    assert new_connections(admin) > CLIENTS + 20
    assert wait_until(lambda: established_to(backend.port) <= 4, 5), established_to(backend.port)
