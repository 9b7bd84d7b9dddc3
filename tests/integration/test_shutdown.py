"""Graceful shutdown on SIGTERM/SIGINT: stop accepting (new connections refused), /readyz 503,
keep-alive responses carry `Connection: close`, in-flight requests finish within
`timeouts.drain`, then exit 0; a request longer than `drain` is cut off and the process still
exits; a second signal exits at once (status 1)."""

import signal
import socket
import threading
import time

import pytest
import websockets

from harness import Client, free_port, get, modules_toml, toml_value, wait_until
from tls_helpers import (TLSClient, client_context, pki, run_async, start_ws_backend,
                         tls_proxy_config)

__all__ = ["pki", "start_ws_backend"]


def config(port, servers, drain="5s", admin=None, extra=""):
    text = "[server]\nworkers = 2\nlog_level = \"info\"\n\n" + modules_toml() + "\n"
    text += "[[listener]]\nlisten = \"127.0.0.1:%d\"\n\n" % port
    if admin:
        text += "[admin]\nlisten = \"127.0.0.1:%d\"\n\n" % admin
    text += "[timeouts]\ndrain = %s\n%s\n" % (toml_value(drain), extra)
    text += "[upstream.app]\nservers = [%s]\nmax_fails = 1000\n\n" % ", ".join(
        toml_value({"address": getattr(s, "address", s)}) for s in servers)
    text += "[[route]]\npath = \"/\"\nupstream = \"app\"\n"
    return text


class InFlight:
    """One request on its own thread: .response, .error, .finished_at."""

    def __init__(self, port, target, client=None, timeout=20):
        self.response = None
        self.error = None
        self.finished_at = None
        self.client = client
        self.thread = threading.Thread(target=self._run, args=(port, target, timeout),
                                       daemon=True)
        self.thread.start()

    def _run(self, port, target, timeout):
        try:
            if self.client is None:
                with Client(port, timeout=timeout) as c:
                    self.response = c.request("GET", target)
            else:
                self.response = self.client.request("GET", target)
        except Exception as e:  # noqa: BLE001
            self.error = e
        self.finished_at = time.monotonic()

    def join(self, timeout):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "in-flight request still running"


def signal_gatehouse(gh, sig):
    gh.stopping = True  # exiting is expected from now on
    gh.proc.send_signal(sig)
    return time.monotonic()


def wait_exit(gh, timeout):
    try:
        return gh.proc.wait(timeout)
    except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired
        return None


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    return False


def wait_backend_active(backend, target, timeout=3):
    """Waits until the backend has received `target` (so gatehouse forwarded it) and is busy."""
    def arrived():
        stats = backend.stats()
        return stats["active"] >= 1 and target in [t for _, t in stats["targets"]]
    assert wait_until(arrived, timeout), "the request never reached the backend"


@pytest.fixture
def setup(start_backend, start_gatehouse):
    def start(drain="5s", admin=False, extra=""):
        backend = start_backend("slow")
        port = free_port()
        admin_port = free_port() if admin else None
        gh = start_gatehouse(config(port, [backend], drain, admin_port, extra))
        return gh, backend, port, admin_port
    return start


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_drains_in_flight_request_refuses_new_and_exits_0(setup, sig):
    gh, backend, port, _ = setup(drain="5s")
    slow = InFlight(port, "/slow-body/1500")
    wait_backend_active(backend, "/slow-body/1500")
    t0 = signal_gatehouse(gh, sig)
    assert wait_until(lambda: refused(port), 1.0), "new connections still accepted 1 s after " \
        "the signal"
    assert slow.finished_at is None, "the in-flight request was cut short at once"
    code = wait_exit(gh, 6)
    exited = time.monotonic() - t0
    slow.join(5)
    assert slow.error is None, slow.error
    r = slow.response
    assert r.status == 200 and r.complete and len(r.body) == 2000, r
    assert code == 0, "exit code %s; log:\n%s" % (code, gh.log_text()[-2000:])
    assert exited < 4.0, "exit took %.1f s for a 1.5 s request (drain 5 s)" % exited


def test_keepalive_response_during_drain_says_connection_close(setup):
    gh, backend, port, _ = setup(drain="5s")
    c = Client(port, timeout=10)
    try:
        assert c.request("GET", "/id").status == 200
        slow = InFlight(port, "/sleep/1200", client=c)
        wait_backend_active(backend, "/sleep/1200")
        signal_gatehouse(gh, signal.SIGTERM)
        slow.join(8)
        assert slow.error is None, slow.error
        r = slow.response
        assert r.status == 200 and r.body == b"slow"
        assert "close" in (r.header("connection") or "").lower(), r.headers
        assert c.wait_closed(3), "connection left open after Connection: close"
    finally:
        c.close()
    assert wait_exit(gh, 5) == 0


def test_idle_keepalive_connection_does_not_delay_exit(setup):
    gh, _, port, _ = setup(drain="10s")
    with Client(port, timeout=10) as c:
        assert c.request("GET", "/id").status == 200
        t0 = signal_gatehouse(gh, signal.SIGTERM)
        assert c.wait_closed(3), "idle keep-alive connection not closed on shutdown"
        code = wait_exit(gh, 5)
        assert code == 0
        assert time.monotonic() - t0 < 2.5


def test_no_traffic_exits_promptly_with_0(setup):
    gh, _, _, _ = setup(drain="10s")
    t0 = signal_gatehouse(gh, signal.SIGTERM)
    assert wait_exit(gh, 5) == 0
    assert time.monotonic() - t0 < 2.0


def test_readyz_is_503_while_draining(setup):
    gh, backend, port, admin = setup(drain="5s", admin=True)
    assert get(admin, "/readyz").status == 200
    slow = InFlight(port, "/sleep/2000")
    wait_backend_active(backend, "/sleep/2000")
    signal_gatehouse(gh, signal.SIGTERM)

    def readyz_503():
        try:
            return get(admin, "/readyz", timeout=1).status == 503
        except OSError:
            return False
    assert wait_until(readyz_503, 1.0), "/readyz not 503 while draining"
    assert slow.finished_at is None
    slow.join(6)
    assert slow.response is not None and slow.response.status == 200
    assert wait_exit(gh, 5) == 0


def test_request_longer_than_drain_is_cut_off_and_the_process_exits(setup):
    gh, backend, port, _ = setup(drain="1s")
    slow = InFlight(port, "/sleep/6000")
    wait_backend_active(backend, "/sleep/6000")
    t0 = signal_gatehouse(gh, signal.SIGTERM)
    code = wait_exit(gh, 5)
    exited = time.monotonic() - t0
    assert code is not None, "still running 5 s after SIGTERM with drain = 1s"
    assert 0.8 <= exited < 3.0, exited
    assert code == 0, code
    slow.join(3)
    r = slow.response
    assert slow.error is not None or not (r.status == 200 and r.complete), \
        "a 6 s request completed although drain is 1 s"


def test_open_tunnel_does_not_hold_exit_past_drain(start_ws_backend, start_gatehouse):
    ws = start_ws_backend("ws")
    port = free_port()
    gh = start_gatehouse(config(port, [ws], drain="1s"))

    async def scenario():
        conn = await websockets.connect("ws://127.0.0.1:%d/echo" % port, ping_interval=None,
                                        close_timeout=2, open_timeout=5)
        await conn.send("hi")
        assert await conn.recv() == "hi"
        t0 = signal_gatehouse(gh, signal.SIGTERM)
        await asyncio_sleep(0.3)
        await conn.send("still draining")  # the tunnel works during the drain
        assert await conn.recv() == "still draining"
        try:
            await asyncio_wait_for(conn.wait_closed(), 5)
        except Exception:  # noqa: BLE001
            pytest.fail("tunnel still open 5 s after SIGTERM with drain = 1s")
        return t0
    t0 = run_async(scenario(), 20)
    assert wait_exit(gh, 3) == 0
    assert time.monotonic() - t0 < 4.0


async def asyncio_sleep(s):
    import asyncio
    await asyncio.sleep(s)


async def asyncio_wait_for(aw, timeout):
    import asyncio
    return await asyncio.wait_for(aw, timeout)


@pytest.mark.parametrize("sigs", [(signal.SIGTERM, signal.SIGTERM),
                                  (signal.SIGINT, signal.SIGINT),
                                  (signal.SIGTERM, signal.SIGINT)],
                         ids=["TERM-TERM", "INT-INT", "TERM-INT"])
def test_second_signal_exits_at_once(setup, sigs):
    gh, backend, port, _ = setup(drain="30s")
    slow = InFlight(port, "/sleep/8000")
    wait_backend_active(backend, "/sleep/8000")
    signal_gatehouse(gh, sigs[0])
    time.sleep(0.5)
    assert gh.alive(), "exited before the drain with a request in flight"
    t1 = signal_gatehouse(gh, sigs[1])
    code = wait_exit(gh, 3)
    assert code is not None, "still running 3 s after the second signal"
    assert time.monotonic() - t1 < 1.0
    assert code == 1, "kernel/README: a second signal exits at once with status 1"
    slow.join(5)


def test_request_whose_body_is_still_uploading_completes(setup):
    gh, backend, port, _ = setup(drain="5s")
    body = b"u" * 20000
    with Client(port, timeout=10) as c:
        c.send(Client.build("POST", "/echo", [("Content-Length", str(len(body)))])
               + body[:10000])
        assert wait_until(lambda: "/echo" in [t for _, t in backend.stats()["targets"]], 3)
        signal_gatehouse(gh, signal.SIGTERM)
        time.sleep(0.8)
        c.send(body[10000:])
        r = c.read_response("POST")
    assert r.status == 200 and r.complete, r
    assert r.json()["body_length"] == len(body)
    assert "close" in (r.header("connection") or "").lower(), r.headers
    assert wait_exit(gh, 5) == 0


def test_in_flight_https_request_completes(start_backend, start_gatehouse, pki):
    backend = start_backend("slow")
    port = free_port()
    gh = start_gatehouse(tls_proxy_config([backend], [pki.default],
                                          listen="127.0.0.1:%d" % port,
                                          extra='[timeouts]\ndrain = "5s"\n'))
    result = {}
    with TLSClient(port, client_context(pki.ca), "default.test", timeout=10) as c:
        assert c.request("GET", "/id").status == 200

        def run():
            try:
                result["r"] = c.request("GET", "/sleep/1000")
            except Exception as e:  # noqa: BLE001
                result["e"] = e
        t = threading.Thread(target=run, daemon=True)
        t.start()
        wait_backend_active(backend, "/sleep/1000")
        signal_gatehouse(gh, signal.SIGTERM)
        t.join(8)
        assert "e" not in result, result
        r = result["r"]
        assert r.status == 200 and r.body == b"slow"
        assert "close" in (r.header("connection") or "").lower(), r.headers
        assert c.wait_closed(3)
    assert wait_exit(gh, 5) == 0


def test_open_tunnel_is_in_flight_until_it_closes(start_ws_backend, start_gatehouse):
    """drain = 5s: the tunnel keeps working after SIGTERM; once the client closes it the process
    exits at once (it does not wait for the whole drain)."""
    ws = start_ws_backend("ws")
    port = free_port()
    gh = start_gatehouse(config(port, [ws], drain="5s"))

    async def scenario():
        conn = await websockets.connect("ws://127.0.0.1:%d/echo" % port, ping_interval=None,
                                        close_timeout=3, open_timeout=5)
        signal_gatehouse(gh, signal.SIGTERM)
        for i in range(5):
            await asyncio_sleep(0.2)
            await conn.send("draining %d" % i)
            assert await conn.recv() == "draining %d" % i
        assert gh.alive(), "exited while a tunnel was open"
        await conn.close()
        return time.monotonic()
    closed_at = run_async(scenario(), 20)
    assert wait_exit(gh, 5) == 0
    assert time.monotonic() - closed_at < 1.5, "exit waited for the drain timeout"
