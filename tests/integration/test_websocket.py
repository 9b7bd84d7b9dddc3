"""WebSocket / Upgrade: a 101 turns the connection into a byte tunnel in both directions with its
own idle timeout (`timeouts.tunnel`), which counts as in-flight for least_conn; an Upgrade
request answered with a plain 200 stays a normal HTTP exchange.

Client: python3-websockets (asyncio API) -> gatehouse -> ws_backend.py (python3-websockets)."""

import asyncio
import json
import os
import signal
import time

import pytest
import websockets

import harness
from harness import Client, get, proxy_config, wait_until
from tls_helpers import (client_context, pki, run_async, start_ws_backend, tls_proxy_config)

__all__ = ["pki", "start_ws_backend"]


def ws_url(port, path, scheme="ws"):
    return "%s://127.0.0.1:%d%s" % (scheme, port, path)


def ws_connect(port, path, scheme="ws", **kw):
    opts = dict(ping_interval=None, max_size=None, close_timeout=10, open_timeout=5,
                compression=None)
    opts.update(kw)
    return websockets.connect(ws_url(port, path, scheme), **opts)


def backend_stats(b):
    return get(b.port, "/stats").json()


TUNNEL_TIMEOUTS = """
[timeouts]
tunnel = "1s"
"""


@pytest.fixture
def ws_proxy(start_ws_backend, start_gatehouse):
    backend = start_ws_backend("ws-a")
    gh = start_gatehouse(proxy_config([backend.address], extra=TUNNEL_TIMEOUTS))
    return gh, backend


def test_echo_text_and_binary_both_ways(ws_proxy):
    gh, _ = ws_proxy

    async def scenario():
        async with ws_connect(gh.port, "/echo") as ws:
            for i in range(10):
                await ws.send("text message %d" % i)
                assert await ws.recv() == "text message %d" % i
                data = bytes([i]) * (i * 100 + 1)
                await ws.send(data)
                got = await ws.recv()
                assert isinstance(got, bytes) and got == data
            # many in flight at once
            sent = ["burst %d %s" % (i, "x" * i) for i in range(100)]
            for m in sent:
                await ws.send(m)
            assert [await ws.recv() for _ in sent] == sent
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 3)
    run_async(scenario(), 20)


@pytest.mark.parametrize("size", [1 << 20, 5 * (1 << 20) + 13])
def test_large_messages(ws_proxy, size):
    gh, _ = ws_proxy

    async def scenario():
        async with ws_connect(gh.port, "/echo") as ws:
            data = os.urandom(size)
            await ws.send(data)
            assert await ws.recv() == data
            text = "é" * (size // 2)
            await ws.send(text)
            assert await ws.recv() == text
    run_async(scenario(), 30)


def test_server_sends_first(ws_proxy):
    gh, _ = ws_proxy

    async def scenario():
        async with ws_connect(gh.port, "/hello") as ws:
            assert await asyncio.wait_for(ws.recv(), 3) == "hello from ws-a"
            await ws.send("after hello")
            assert await ws.recv() == "after hello"
    run_async(scenario(), 10)


def test_server_initiated_close_reaches_the_client_and_the_tunnel_ends(ws_proxy):
    gh, backend = ws_proxy

    async def scenario():
        ws = await ws_connect(gh.port, "/close-after/2")
        await ws.send("one")
        assert await ws.recv() == "one"
        await ws.send(b"two")
        assert await ws.recv() == b"two"
        start = time.monotonic()
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        # the client waits for the TCP close from the server side (close_timeout = 10 s)
        await asyncio.wait_for(ws.wait_closed(), 10)
        elapsed = time.monotonic() - start
        assert ws.close_code == 4001 and ws.close_reason == "bye"
        return elapsed
    elapsed = run_async(scenario(), 20)
    assert elapsed < 3.0, "closing took %.1f s: TCP close not propagated" % elapsed
    assert wait_until(lambda: backend_stats(backend)["open"] == 0, 3)


def test_client_initiated_close_completes_promptly(ws_proxy):
    gh, backend = ws_proxy

    async def scenario():
        ws = await ws_connect(gh.port, "/echo")
        await ws.send("bye soon")
        assert await ws.recv() == "bye soon"
        start = time.monotonic()
        await ws.close(1000, "done")
        elapsed = time.monotonic() - start
        assert ws.close_code == 1000
        return elapsed
    elapsed = run_async(scenario(), 20)
    assert elapsed < 3.0, "close handshake + TCP close took %.1f s" % elapsed
    assert wait_until(lambda: backend_stats(backend)["closed"] >= 1, 3)


def test_tunnel_closes_after_tunnel_idle_timeout(ws_proxy):
    gh, backend = ws_proxy

    async def scenario():
        ws = await ws_connect(gh.port, "/echo")
        await ws.send("ping")
        assert await ws.recv() == "ping"
        start = time.monotonic()
        try:
            await asyncio.wait_for(ws.wait_closed(), 6)
        except asyncio.TimeoutError:
            pytest.fail("an idle tunnel is still open after 6 s (tunnel = 1s)")
        return time.monotonic() - start
    elapsed = run_async(scenario(), 15)
    assert 0.8 <= elapsed <= 3.5, elapsed
    assert wait_until(lambda: backend_stats(backend)["open"] == 0, 3), \
        "the upstream side of the idle tunnel was left open"


def test_client_traffic_keeps_the_tunnel_open(ws_proxy):
    gh, _ = ws_proxy

    async def scenario():
        async with ws_connect(gh.port, "/echo") as ws:
            end = time.monotonic() + 2.6
            i = 0
            while time.monotonic() < end:
                await ws.send("keep %d" % i)
                assert await ws.recv() == "keep %d" % i
                i += 1
                await asyncio.sleep(0.3)
            assert ws.open
    run_async(scenario(), 15)


def test_server_only_traffic_keeps_the_tunnel_open(ws_proxy):
    """Idle means idle in both directions: a silent client receiving ticks stays connected."""
    gh, _ = ws_proxy

    async def scenario():
        async with ws_connect(gh.port, "/ticks/300") as ws:
            got = []
            end = time.monotonic() + 2.6
            while time.monotonic() < end:
                got.append(await asyncio.wait_for(ws.recv(), 2))
            assert ws.open
            assert got[:3] == ["tick 1", "tick 2", "tick 3"]
    run_async(scenario(), 15)


def test_tunnel_is_not_cut_by_the_http_timeouts(start_ws_backend, start_gatehouse):
    """keepalive, body_idle, client_write and the upstream idle/first-byte timeouts are short;
    a tunnel idle for longer than all of them (but less than `tunnel`) stays open."""
    backend = start_ws_backend("ws-a")
    extra = ('[timeouts]\nkeepalive = "300ms"\nbody_idle = "300ms"\nclient_write = "300ms"\n'
             'header = "300ms"\ntunnel = "20s"\n')
    upstream = 'idle_timeout = "300ms"\nfirst_byte_timeout = "300ms"\nkeepalive_timeout = "300ms"\n'
    gh = start_gatehouse(proxy_config([backend.address], upstream=upstream, extra=extra))

    async def scenario():
        async with ws_connect(gh.port, "/echo") as ws:
            await ws.send("a")
            assert await ws.recv() == "a"
            await asyncio.sleep(1.5)
            assert ws.open
            await ws.send("b")
            assert await asyncio.wait_for(ws.recv(), 3) == "b"
    run_async(scenario(), 15)


def test_handshake_headers_reach_the_backend(ws_proxy):
    gh, _ = ws_proxy

    async def scenario():
        async with ws_connect(gh.port, "/headers?q=1",
                              extra_headers=[("X-Custom", "kept")]) as ws:
            return json.loads(await ws.recv())
    info = run_async(scenario(), 10)
    headers = {}
    for name, value in info["headers"]:
        headers.setdefault(name.lower(), []).append(value)
    assert info["path"] == "/headers?q=1"
    assert headers["upgrade"] == ["websocket"]
    assert "upgrade" in ",".join(headers["connection"]).lower()
    assert headers.get("sec-websocket-key") and headers.get("sec-websocket-version") == ["13"]
    assert headers["x-custom"] == ["kept"]
    assert headers.get("x-forwarded-for") == ["127.0.0.1"]


def test_many_concurrent_tunnels_stay_separate(ws_proxy):
    gh, _ = ws_proxy

    async def one(k):
        async with ws_connect(gh.port, "/echo") as ws:
            for i in range(20):
                payload = ("conn %d msg %d " % (k, i)) * (k + 1)
                await ws.send(payload)
                assert await ws.recv() == payload

    async def scenario():
        await asyncio.gather(*(one(k) for k in range(12)))
    run_async(scenario(), 30)


def test_backend_dying_closes_the_tunnel(ws_proxy):
    gh, backend = ws_proxy

    async def scenario():
        ws = await ws_connect(gh.port, "/echo")
        await ws.send("x")
        assert await ws.recv() == "x"
        backend.proc.send_signal(signal.SIGKILL)
        start = time.monotonic()
        try:
            await asyncio.wait_for(ws.wait_closed(), 5)
        except asyncio.TimeoutError:
            pytest.fail("tunnel still open 5 s after the backend died")
        return time.monotonic() - start
    elapsed = run_async(scenario(), 15)
    assert elapsed < 2.0, elapsed
    assert gh.alive()


def test_client_abort_closes_the_upstream_side(ws_proxy):
    gh, backend = ws_proxy

    async def scenario():
        ws = await ws_connect(gh.port, "/echo")
        await ws.send("x")
        assert await ws.recv() == "x"
        assert backend_stats(backend)["open"] == 1
        ws.transport.abort()  # TCP close without a close frame
        await asyncio.sleep(0.05)
    run_async(scenario(), 10)
    assert wait_until(lambda: backend_stats(backend)["open"] == 0, 3), \
        "the upstream side of an aborted tunnel was left open"


def test_upgrade_answered_with_200_is_a_normal_response(start_backend, start_gatehouse):
    """backend.py ignores Upgrade and answers 200: the exchange stays HTTP, keep-alive works."""
    backend = start_backend("plain")
    gh = start_gatehouse(proxy_config([backend]))
    upgrade = [("Connection", "Upgrade"), ("Upgrade", "websocket"),
               ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
               ("Sec-WebSocket-Version", "13")]
    with Client(gh.port) as c:
        r = c.request("GET", "/echo", upgrade)
        assert r.status == 200 and r.complete
        seen = {n.lower(): v for n, v in r.json()["headers"]}
        assert seen.get("upgrade") == "websocket"  # the upgrade was offered upstream
        r2 = c.request("GET", "/echo")
        assert r2.status == 200
        assert r2.json()["conn_request"] >= 1
        r3 = c.request("GET", "/bytes/1000")
        assert r3.status == 200 and len(r3.body) == 1000
    assert gh.alive()


def test_wss_through_a_tls_listener(start_ws_backend, start_gatehouse, pki):
    backend = start_ws_backend("ws-a")
    gh = start_gatehouse(tls_proxy_config([backend.address], [pki.default]))
    ctx = client_context(pki.ca)

    async def scenario():
        async with ws_connect(gh.port, "/echo", scheme="wss", ssl=ctx,
                              server_hostname="default.test") as ws:
            for i in range(5):
                await ws.send("secure %d" % i)
                assert await ws.recv() == "secure %d" % i
            data = os.urandom(300000)
            await ws.send(data)
            assert await ws.recv() == data
    run_async(scenario(), 15)


@pytest.mark.parametrize("ending", ["client-close", "server-close", "client-abort",
                                    "idle-timeout"])
def test_open_tunnel_counts_as_in_flight_for_least_conn(start_ws_backend, start_gatehouse,
                                                        ending):
    """While a tunnel is open on one server, least_conn sends everything to the other; however
    the tunnel ends, its count goes back down (the random tie-break then uses both again)."""
    a = start_ws_backend("ws-a")
    b = start_ws_backend("ws-b")
    gh = start_gatehouse(proxy_config([a.address, b.address], balancer="least_conn",
                                      workers=1, extra='[timeouts]\ntunnel = "2s"\n'))
    # server-close: the backend closes after its 2nd echo, which the test triggers after the
    # picks, so the tunnel is certainly open while they are made.
    path = "/close-after/2" if ending == "server-close" else "/whoami"

    async def scenario():
        ws = await ws_connect(gh.port, path)
        if ending == "server-close":
            await ws.send("who")
            assert await ws.recv() == "who"
            holder = "ws-a" if backend_stats(a)["opened"] else "ws-b"
        else:
            holder = await ws.recv()
        other = "ws-b" if holder == "ws-a" else "ws-a"
        picks = [get(gh.port, "/id").body.decode() for _ in range(8)]
        if ending == "client-close":
            await ws.close()
        elif ending == "client-abort":
            ws.transport.abort()
        elif ending == "server-close":
            await ws.send("bye")
            assert await ws.recv() == "bye"
            await asyncio.wait_for(ws.wait_closed(), 6)
        else:  # idle-timeout (2 s)
            await asyncio.wait_for(ws.wait_closed(), 6)
        return holder, other, picks
    holder, other, picks = run_async(scenario(), 20)
    assert picks == [other] * 8, "least_conn ignored the open tunnel on %s: %s" % (holder,
                                                                                   picks)
    assert wait_until(lambda: backend_stats(a)["open"] + backend_stats(b)["open"] == 0, 3)
    time.sleep(0.2)
    after = {get(gh.port, "/id").body.decode() for _ in range(24)}
    assert after == {"ws-a", "ws-b"}, "in-flight count of the ended tunnel leaked: %s" % after


def test_unsolicited_101_is_a_502(start_backend, start_gatehouse):
    """A 101 to a request that did not ask to upgrade must not open a tunnel."""
    backend = start_backend("plain")
    gh = start_gatehouse(proxy_config([backend], upstream="max_fails = 1000\n"))
    reply = harness.raw_request(gh.port, Client.build("GET", "/raw/switch-101"), timeout=3)
    assert reply.status == 502, reply
    assert b"after-switch" not in reply
    assert gh.alive()


def test_101_bytes_sent_right_after_the_head_reach_the_client(start_backend, start_gatehouse):
    """The backend's first tunnel bytes arrive in the same packet as its 101 head."""
    backend = start_backend("plain")
    gh = start_gatehouse(proxy_config([backend]))
    upgrade = [("Connection", "Upgrade"), ("Upgrade", "websocket"),
               ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
               ("Sec-WebSocket-Version", "13")]
    reply = harness.raw_request(gh.port, Client.build("GET", "/raw/switch-101", upgrade),
                                timeout=3)
    assert reply.status == 101, reply
    assert reply.endswith(b"\r\n\r\nafter-switch"), reply
    assert reply.closed, "the tunnel stayed open after the backend closed"
