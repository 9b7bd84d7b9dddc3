"""Graceful reload: SIGHUP (and `gatehouse reload -c FILE`, and admin `POST /reload`) builds and
activates a new generation; under continuous load no request fails and the new routing takes
effect; a bad config keeps the old one serving and the log says why; listeners added or removed
by the new config are opened or closed; in-flight requests and tunnels finish.

Log lines relied on: `reload: generation N active` and `reload failed, ...`."""

import os
import re
import signal
import socket
import threading
import time

import pytest
import websockets

import harness
from harness import Client, free_port, get, modules_toml, run_cli, toml_value, wait_until
from tls_helpers import (Cert, LoadLoop, TLSClient, client_context, count_log,
                         generation_count, https_request, install_cert, last_log_entry, pki,
                         run_async, start_ws_backend, tls_proxy_config,
                         wait_generation, wait_log_count)

__all__ = ["pki", "start_ws_backend"]


def config(listen_ports, upstreams, routes, server_extra="", extra="", workers=2):
    """listen_ports: [port, ...]; upstreams: {name: [address, ...]};
    routes: [(path, upstream) or (path, upstream, host)]."""
    text = "[server]\nworkers = %d\nlog_level = \"info\"\n%s\n" % (workers, server_extra)
    text += modules_toml() + "\n"
    for i, port in enumerate(listen_ports):
        text += "[[listener]]\nname = \"l%d\"\nlisten = \"127.0.0.1:%d\"\n\n" % (port, port)
    for name, servers in upstreams.items():
        text += "[upstream.%s]\nservers = [%s]\nmax_fails = 1000\n\n" % (
            name, ", ".join(toml_value({"address": getattr(s, "address", s)}) for s in servers))
    for route in routes:
        path, upstream = route[0], route[1]
        text += "[[route]]\npath = %s\nupstream = %s\n" % (toml_value(path),
                                                          toml_value(upstream))
        if len(route) > 2:
            text += "host = %s\n" % toml_value(route[2])
        text += "\n"
    return text + extra + "\n"


def ids_via_new_connections(port, target="/id", n=4):
    """Backend ids answering `target` on new connections (from /id's body or /echo's JSON)."""
    out = []
    for _ in range(n):
        r = get(port, target)
        assert r.status == 200, r
        out.append(r.json()["id"] if r.body.startswith(b"{") else r.body.decode())
    return out


def sighup_and_wait(gh):
    before, last = generation_count(gh)
    os.kill(gh.pid, signal.SIGHUP)
    gen = wait_generation(gh, before, 10)
    assert gen is not None, "no 'reload: generation N active' after SIGHUP:\n" + \
        gh.log_text()[-2000:]
    if last is not None:
        assert gen > last
    return gen


def reload_failure_after(gh, trigger):
    before = count_log(gh, r"reload failed")
    trigger()
    assert wait_log_count(gh, r"reload failed", before, 10), \
        "no 'reload failed' logged (alive: %s):\n%s" % (gh.alive(), gh.log_text()[-2000:])
    return last_log_entry(gh, r"reload failed")


def keepalive_and_new_connection_load(port):
    """A LoadLoop request function: odd requests on a kept-alive connection (reopened only after
    the server said Connection: close), even ones on a new connection. Every failure counts."""
    conns = {}

    def one(k, i):
        if i % 2 == 0:
            with Client(port, timeout=5) as c:
                r = c.request("GET", "/id")
        else:
            c = conns.get(k)
            if c is None:
                c = conns[k] = Client(port, timeout=5)
            try:
                r = c.request("GET", "/id")
            except Exception:
                conns.pop(k).close()
                raise
            if "close" in (r.header("connection") or "").lower():
                conns.pop(k).close()
        if r.status != 200 or not r.complete:
            raise AssertionError("status %s complete %s body %r" % (r.status, r.complete,
                                                                     r.body[:100]))
        return r.body.decode()
    return one


# --------------------------------------------------------------------------------------------


def test_sighup_reloads_under_load_lose_no_request(start_backend, start_gatehouse):
    a, b, c = start_backend("a"), start_backend("b"), start_backend("c")
    port = free_port()
    steps = [
        # (upstreams, routes, expected ids for "/" and "/b/x")
        ({"one": [a]}, [("/", "one")], ({"a"}, {"a"})),
        ({"two": [b]}, [("/", "two")], ({"b"}, {"b"})),
        ({"one": [a, c]}, [("/", "one")], ({"a", "c"}, {"a", "c"})),
        ({"one": [c], "two": [b]}, [("/", "one"), ("/b/", "two")], ({"c"}, {"b"})),
        ({"two": [b, a]}, [("/", "two")], ({"a", "b"}, {"a", "b"})),
        ({"one": [a]}, [("/", "one")], ({"a"}, {"a"})),
    ]
    gh = start_gatehouse(config([port], *steps[0][:2]))
    assert set(ids_via_new_connections(port)) == steps[0][2][0]
    with LoadLoop(keepalive_and_new_connection_load(port), threads=2, name="reload") as load:
        time.sleep(0.4)
        for upstreams, routes, (root_ids, b_ids) in steps[1:]:
            gh.config_path.write_text(config([port], upstreams, routes))
            sighup_and_wait(gh)
            # Enough samples that round_robin, shared with the load threads, shows every server.
            got_root = set(ids_via_new_connections(port, "/", 20))
            got_b = set(ids_via_new_connections(port, "/b/x", 20))
            assert got_root == root_ids, (routes, got_root)
            assert got_b == b_ids, (routes, got_b)
            time.sleep(0.4)
    assert not load.failures, "%d of %d requests failed across reloads; first: %s" % (
        len(load.failures), load.ok + len(load.failures), load.failures[:5])
    assert load.ok > 200, load.ok
    assert gh.alive()


def test_tls_reloads_with_a_rolling_certificate_change_lose_no_request(
        tmp_path, pki, start_backend, start_gatehouse):
    """HTTPS load (new verified handshakes and keep-alive requests) across SIGHUP reloads that
    change the upstream, one of them also rolling the certificate files."""
    a, b = start_backend("a"), start_backend("b")
    live_dir = tmp_path / "live"
    v1 = pki.ca.issue("roll-v1", ["roll.test"], directory=tmp_path / "v1")
    v2 = pki.ca.issue("roll-v2", ["roll.test"], directory=tmp_path / "v2")
    live_dir.mkdir()
    live = Cert(live_dir / "roll.pem", live_dir / "roll.key")
    install_cert(v1, live)
    port = free_port()

    def cfg(upstream):
        return tls_proxy_config([upstream], [live], {"watch_interval": "1h"},
                                listen="127.0.0.1:%d" % port)
    gh = start_gatehouse(cfg(a))
    ctx = client_context(pki.ca)
    conns = {}

    def one(k, i):
        if i % 2 == 0:
            with TLSClient(port, ctx, "roll.test") as c:
                r = c.request("GET", "/id")
        else:
            c = conns.get(k)
            if c is None:
                c = conns[k] = TLSClient(port, ctx, "roll.test")
            try:
                r = c.request("GET", "/id")
            except Exception:
                conns.pop(k).close()
                raise
            if "close" in (r.header("connection") or "").lower():
                conns.pop(k).close()
        if r.status != 200 or not r.complete:
            raise AssertionError("status %s" % r.status)
        return r.body.decode()

    with LoadLoop(one, threads=2, name="tls-reload") as load:
        time.sleep(0.4)
        for step, upstream in enumerate([b, a, b, a]):
            if step == 1:
                install_cert(v2, live)
            gh.config_path.write_text(cfg(upstream))
            sighup_and_wait(gh)
            assert set(ids_via_new_connections_tls(port, ctx, "roll.test")) == {upstream.id}
            time.sleep(0.4)
    for c in conns.values():
        c.close()
    assert not load.failures, "%d of %d HTTPS requests failed across reloads; first: %s" % (
        len(load.failures), load.ok + len(load.failures), load.failures[:5])
    assert load.ok > 100, load.ok
    with TLSClient(port, ctx, "roll.test") as c:
        assert c.sock.getpeercert(binary_form=True) == v2.der


def ids_via_new_connections_tls(port, ctx, name, n=4):
    return [https_request(port, ctx, "GET", "/id", name).body.decode() for _ in range(n)]


def test_rapid_sighups_are_survived(start_backend, start_gatehouse):
    a = start_backend("a")
    port = free_port()
    gh = start_gatehouse(config([port], {"one": [a]}, [("/", "one")]))
    before, _ = generation_count(gh)
    with LoadLoop(keepalive_and_new_connection_load(port), threads=2) as load:
        for _ in range(6):
            os.kill(gh.pid, signal.SIGHUP)
            time.sleep(0.02)
        assert wait_generation(gh, before, 10) is not None
        time.sleep(0.5)
    assert not load.failures, load.failures[:5]
    assert gh.alive()
    assert get(port, "/id").body == b"a"


BROKEN = {
    "toml-syntax": ("[[route]\npath = \"/\"\n", r"(?i)line|parse|expected|toml"),
    "unknown-upstream": ("[[route]]\npath = \"/broken/\"\nupstream = \"nosuch\"\n", r"nosuch"),
    "unknown-key": ("[timeouts]\nheadr = \"1s\"\n", r"headr"),
    "bad-duration": ("[timeouts]\ntunnel = \"soon\"\n", r"tunnel"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_config_on_reload_keeps_the_old_one(start_backend, start_gatehouse, case):
    a, b = start_backend("a"), start_backend("b")
    port = free_port()
    good = config([port], {"one": [a]}, [("/", "one")])
    gh = start_gatehouse(good)
    count, gen_before = generation_count(gh)
    addition, reason = BROKEN[case]
    gh.config_path.write_text(good + addition)
    line = reload_failure_after(gh, lambda: os.kill(gh.pid, signal.SIGHUP))
    assert re.search(reason, line), "reason not in the log line: " + line
    assert gh.alive()
    assert generation_count(gh) == (count, gen_before), "a failed reload activated something"
    with Client(port) as c:
        for _ in range(3):
            assert c.request("GET", "/id").body == b"a"
    # a good config afterwards still reloads
    gh.config_path.write_text(config([port], {"two": [b]}, [("/", "two")]))
    sighup_and_wait(gh)
    assert set(ids_via_new_connections(port)) == {"b"}


def test_reload_with_a_missing_module_keeps_the_old_one(start_backend, start_gatehouse):
    a = start_backend("a")
    port = free_port()
    good = config([port], {"one": [a]}, [("/", "one")])
    gh = start_gatehouse(good)
    broken = good.replace(modules_toml(), modules_toml(("round_robin", "no_such_module")))
    assert broken != good
    gh.config_path.write_text(broken)
    line = reload_failure_after(gh, lambda: os.kill(gh.pid, signal.SIGHUP))
    assert "no_such_module" in line, line
    assert get(port, "/id").body == b"a"


def test_reload_whose_new_listener_cannot_bind_keeps_the_old_config(start_backend,
                                                                    start_gatehouse):
    a, b = start_backend("a"), start_backend("b")
    port = free_port()
    gh = start_gatehouse(config([port], {"one": [a]}, [("/", "one")]))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        busy = squatter.getsockname()[1]
        gh.config_path.write_text(config([port, busy], {"two": [b]}, [("/", "two")]))
        line = reload_failure_after(gh, lambda: os.kill(gh.pid, signal.SIGHUP))
        assert "127.0.0.1:%d" % busy in line, line
        assert set(ids_via_new_connections(port)) == {"a"}, "half-applied reload"


def test_listener_added_by_reload_accepts_and_removed_one_stops(start_backend,
                                                                start_gatehouse):
    a = start_backend("a")
    p1, p2 = free_port(), free_port()
    gh = start_gatehouse(config([p1], {"one": [a]}, [("/", "one")]))
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", p2), timeout=2).close()
    gh.config_path.write_text(config([p1, p2], {"one": [a]}, [("/", "one")]))
    sighup_and_wait(gh)
    assert wait_until(lambda: _serves(p2), 3), "the listener added by reload does not serve"
    assert _serves(p1)
    gh.config_path.write_text(config([p2], {"one": [a]}, [("/", "one")]))
    sighup_and_wait(gh)

    def p1_refused():
        try:
            socket.create_connection(("127.0.0.1", p1), timeout=1).close()
        except ConnectionRefusedError:
            return True
        return False
    assert wait_until(p1_refused, 3), "the listener removed by reload still accepts"
    assert _serves(p2)


def _serves(port):
    try:
        return get(port, "/id", timeout=2).status == 200
    except OSError:
        return False


def test_in_flight_request_finishes_on_the_old_generation(start_backend, start_gatehouse):
    a, b = start_backend("a"), start_backend("b")
    port = free_port()
    gh = start_gatehouse(config([port], {"one": [a]}, [("/", "one")]))
    result = {}

    def slow():
        try:
            with Client(port, timeout=10) as c:
                result["r"] = c.request("GET", "/sleep/1500")
        except Exception as e:  # noqa: BLE001
            result["e"] = e
    t = threading.Thread(target=slow)
    t.start()
    try:
        assert wait_until(lambda: a.stats()["active"] == 1, 3)
        gh.config_path.write_text(config([port], {"two": [b]}, [("/", "two")]))
        sighup_and_wait(gh)
        assert set(ids_via_new_connections(port)) == {"b"}
        assert "r" not in result and "e" not in result, "the slow request ended early"
    finally:
        t.join(10)
    assert "e" not in result, result
    r = result["r"]
    assert r.status == 200 and r.complete and r.body == b"a"


def test_open_tunnel_survives_a_reload(start_backend, start_ws_backend, start_gatehouse):
    a, b = start_backend("a"), start_backend("b")
    ws = start_ws_backend("ws")
    port = free_port()
    gh = start_gatehouse(config([port], {"one": [a], "ws": [ws]},
                                [("/", "one"), ("/ws/", "ws")]))

    async def scenario():
        async with websockets.connect("ws://127.0.0.1:%d/ws/echo" % port, ping_interval=None,
                                      close_timeout=5, open_timeout=5) as conn:
            await conn.send("before")
            assert await conn.recv() == "before"
            gh.config_path.write_text(config([port], {"two": [b], "ws": [ws]},
                                             [("/", "two"), ("/ws/", "ws")]))
            sighup_and_wait(gh)
            assert set(ids_via_new_connections(port)) == {"b"}
            for i in range(3):
                await conn.send("after %d" % i)
                assert await conn.recv() == "after %d" % i
    run_async(scenario(), 30)


def test_reload_command_signals_the_pid_file(tmp_path, start_backend, start_gatehouse):
    a, b = start_backend("a"), start_backend("b")
    port = free_port()
    pid_file = tmp_path / "gatehouse.pid"
    extra = "pid_file = %s" % toml_value(str(pid_file))
    gh = start_gatehouse(config([port], {"one": [a]}, [("/", "one")], server_extra=extra))
    assert wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), 3)
    assert int(pid_file.read_text().strip()) == gh.pid
    gh.config_path.write_text(config([port], {"two": [b]}, [("/", "two")],
                                     server_extra=extra))
    before, _ = generation_count(gh)
    done = run_cli(["reload", "-c", str(gh.config_path)])
    assert done.returncode == 0, done.stderr
    # The command reports the outcome, not only that it sent a signal.
    assert re.search(r"reloaded .*: generation \d+ active \(PID %d\)" % gh.pid, done.stdout), \
        done.stdout
    assert wait_generation(gh, before, 10) is not None, gh.log_text()[-2000:]
    assert set(ids_via_new_connections(port)) == {"b"}


def test_reload_command_reports_a_reload_the_running_process_refused(tmp_path, start_backend,
                                                                    start_gatehouse):
    """A config that passes `check` can still fail in the running process (a new listener whose
    address another process holds): the command says so and exits 1."""
    a, b = start_backend("a"), start_backend("b")
    port = free_port()
    extra = "pid_file = %s" % toml_value(str(tmp_path / "gatehouse.pid"))
    gh = start_gatehouse(config([port], {"one": [a]}, [("/", "one")], server_extra=extra))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        busy = squatter.getsockname()[1]
        gh.config_path.write_text(config([port, busy], {"two": [b]}, [("/", "two")],
                                         server_extra=extra))
        done = run_cli(["reload", "-c", str(gh.config_path)])
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "generation 1 keeps serving" in done.stderr, done.stderr
    assert "127.0.0.1:%d" % busy in done.stderr, done.stderr
    assert set(ids_via_new_connections(port)) == {"a"}


def test_reload_command_with_another_file_is_refused_naming_the_running_one(
        tmp_path, start_backend, start_gatehouse):
    """A signal cannot hand the running process another file: `reload -c NEW` must not claim a
    reload of NEW while the process re-reads its own."""
    a, b = start_backend("a"), start_backend("b")
    port = free_port()
    extra = "pid_file = %s" % toml_value(str(tmp_path / "gatehouse.pid"))
    gh = start_gatehouse(config([port], {"one": [a]}, [("/", "one")], server_extra=extra))
    other = tmp_path / "new.toml"
    other.write_text(config([port], {"two": [b]}, [("/", "two")], server_extra=extra))
    before = count_log(gh, r"reload")
    done = run_cli(["reload", "-c", str(other)])
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert str(gh.config_path.resolve()) in done.stderr and str(other) in done.stderr, done.stderr
    time.sleep(0.3)
    assert count_log(gh, r"reload") == before, "the running process was signalled anyway"
    assert set(ids_via_new_connections(port)) == {"a"}


def test_reload_command_without_a_running_process_fails(tmp_path):
    pid_file = tmp_path / "absent.pid"
    path = tmp_path / "g.toml"
    path.write_text(config([free_port()], {"one": ["127.0.0.1:9"]}, [("/", "one")],
                           server_extra="pid_file = %s" % toml_value(str(pid_file))))
    done = run_cli(["reload", "-c", str(path)])
    assert done.returncode != 0
    assert str(pid_file) in done.stderr, done.stderr


def test_reload_command_without_pid_file_setting_fails(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text(config([free_port()], {"one": ["127.0.0.1:9"]}, [("/", "one")]))
    done = run_cli(["reload", "-c", str(path)])
    assert done.returncode != 0
    assert "pid_file" in done.stderr, done.stderr


def test_admin_post_reload(start_backend, start_gatehouse):
    a, b = start_backend("a"), start_backend("b")
    port, admin = free_port(), free_port()
    admin_toml = "[admin]\nlisten = \"127.0.0.1:%d\"\n" % admin
    gh = start_gatehouse(config([port], {"one": [a]}, [("/", "one")], extra=admin_toml))
    _, gen0 = generation_count(gh)
    gh.config_path.write_text(config([port], {"two": [b]}, [("/", "two")], extra=admin_toml))
    r = harness.request(admin, "POST", "/reload")
    assert r.status == 200, r
    _, gen1 = generation_count(gh)
    assert gen1 is not None and (gen0 is None or gen1 > gen0)
    assert str(gen1).encode() in r.body, r.body
    assert set(ids_via_new_connections(port)) == {"b"}
    gh.config_path.write_text(config([port], {"two": [b]}, [("/", "nosuch")],
                                     extra=admin_toml))
    r = harness.request(admin, "POST", "/reload")
    assert r.status == 500, r
    assert b"nosuch" in r.body, r.body
    assert set(ids_via_new_connections(port)) == {"b"}
    assert "reload failed" in gh.log_text()
