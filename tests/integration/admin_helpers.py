"""Helpers for the admin-endpoint and access-log tests (test_admin.py, test_access_log.py).

    admin_config(...)            one listener, an [admin] listener on port 0, upstreams and routes
    admin_port(gh)               the port from the `admin listening on 127.0.0.1:PORT` log line
    scrape(port) / parse_metrics(text) / Samples.value(name, **labels)
    settled_metrics(port)        parsed metrics once every client connection has closed
    promtool_check(text)         `promtool check metrics` (None when promtool is not installed)
    read_lines(path) / wait_lines(path, predicate, timeout)
    SplitGatehouse               a gatehouse with stdout and stderr in separate files
    rst_close(sock)              close with a TCP RST (SO_LINGER 0): an abrupt client abort

Everything is bounded in time like the rest of the harness.
"""

import json
import os
import re
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import harness
from harness import modules_toml, toml_value, wait_until

ADMIN_LISTENING = re.compile(r"admin listening on 127\.0\.0\.1:(\d+)")


def admin_config(upstreams, routes, admin=True, access_log=None, upstream_extra=None,
                 extra="", workers=2, log_level="info"):
    """upstreams: {name: [Backend | "host:port", ...]}; routes: [{name, path, upstream, host?}];
    access_log: None or {"path": ..., "format": ...}; upstream_extra: {name: "toml lines"}."""
    upstream_extra = upstream_extra or {}
    text = "[server]\nworkers = %d\nlog_level = %s\n\n" % (workers, toml_value(log_level))
    text += modules_toml() + "\n"
    text += "[[listener]]\nlisten = \"127.0.0.1:0\"\n\n"
    if admin:
        text += "[admin]\nlisten = \"127.0.0.1:0\"\n\n"
    if access_log:
        text += "[access_log]\n" + "".join(
            "%s = %s\n" % (k, toml_value(v)) for k, v in access_log.items()) + "\n"
    for name, servers in upstreams.items():
        entries = [{"address": getattr(s, "address", s)} for s in servers]
        text += "[upstream.%s]\nservers = [%s]\n%s\n\n" % (
            name, ", ".join(toml_value(e) for e in entries), upstream_extra.get(name, ""))
    for r in routes:
        text += "[[route]]\n" + "".join("%s = %s\n" % (k, toml_value(v)) for k, v in r.items())
        text += "\n"
    return text + extra + "\n"


def admin_port(gh, timeout=5.0):
    m = gh.wait_log(ADMIN_LISTENING.pattern, timeout)
    assert m, "no 'admin listening on' line in the log:\n" + gh.log_text()[-2000:]
    return int(m.group(1))


# --------------------------------------------------------------------------------------------
# Prometheus text


def scrape(port):
    r = harness.get(port, "/metrics")
    assert r.status == 200, r
    return r.body.decode()


def settled_metrics(port, timeout=3.0):
    """The metrics once gatehouse_connections_open is 0. A request is counted when its response
    has been written, which the client can see before the worker has finished; a connection
    closes only after its last request was counted. So a test closes its clients, then calls
    this instead of scrape() to read exact values."""
    last = {}

    def settled():
        last["m"] = parse_metrics(scrape(port))
        return last["m"].value("gatehouse_connections_open") == 0
    assert wait_until(settled, timeout), \
        "gatehouse_connections_open never went back to 0 (%s)" % last["m"].value(
            "gatehouse_connections_open")
    return last["m"]


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')


class Samples:
    """Parsed samples: {(name, frozenset(labels)): float}, plus the # TYPE of each family."""

    def __init__(self, text):
        self.values = {}
        self.types = {}
        self.order = []
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(None, 3)
                self.types[name] = kind
                continue
            if line.startswith("#"):
                continue
            m = _SAMPLE.match(line)
            assert m, "unparseable metrics line %r" % line
            name, labels_text, value = m.groups()
            labels = {}
            if labels_text:
                pos = 0
                while pos < len(labels_text):
                    lm = _LABEL.match(labels_text, pos)
                    assert lm, "bad labels in %r" % line
                    labels[lm.group(1)] = lm.group(2)
                    pos = lm.end()
            key = (name, frozenset(labels.items()))
            assert key not in self.values, "duplicate series %r" % line
            self.values[key] = float(value)
            self.order.append(key)

    def value(self, name, **labels):
        """The sample with exactly these labels (KeyError if absent)."""
        key = (name, frozenset(labels.items()))
        if key not in self.values:
            raise KeyError("no series %s%r; have: %s" % (name, labels, sorted(
                dict(k[1]) for k in self.values if k[0] == name)))
        return self.values[key]

    def series(self, name):
        """[(labels dict, value)] of one name."""
        return [(dict(k[1]), v) for k, v in self.values.items() if k[0] == name]


def parse_metrics(text):
    return Samples(text)


def promtool_check(text, timeout=20):
    """(returncode, output) of `promtool check metrics` on text, or None without promtool."""
    tool = shutil.which("promtool") or ("/usr/bin/promtool" if os.access("/usr/bin/promtool",
                                                                         os.X_OK) else None)
    if not tool:
        return None
    done = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True,
                          timeout=timeout, stdin=None)
    return done.returncode, done.stdout + done.stderr


# --------------------------------------------------------------------------------------------
# Access-log files


def read_lines(path):
    try:
        data = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return []
    return data.splitlines()


def read_json_lines(path):
    """Every line parsed as JSON (a line that does not parse fails the caller's test)."""
    out = []
    for line in read_lines(path):
        try:
            out.append(json.loads(line))
        except ValueError as e:
            raise AssertionError("access-log line is not JSON (%s): %r" % (e, line)) from None
    return out


def wait_lines(read, predicate, timeout=3.0):
    """Polls read() (a list of lines or records) until predicate(list) holds; returns the list."""
    result = wait_until(lambda: (lambda v: v if predicate(v) else None)(read()), timeout)
    return result if result is not None else read()


# --------------------------------------------------------------------------------------------
# Processes and sockets


class SplitGatehouse(harness.Gatehouse):
    """harness.Gatehouse, but stdout goes to its own file (`.stdout_path`) so a test can tell
    what gatehouse wrote on stdout from its log on stderr. Register it in the `processes`
    fixture's registry so it is killed by PID at teardown."""

    def __init__(self, workdir, toml_text, name="gatehouse"):
        if not os.access(harness.GATEHOUSE_BIN, os.X_OK):
            import pytest
            pytest.skip("gatehouse binary not built at %s" % harness.GATEHOUSE_BIN)
        workdir = Path(workdir)
        self.config_path = workdir / (name + ".toml")
        self.config_path.write_text(toml_text)
        self.log_path = workdir / (name + ".stderr")
        self.stdout_path = workdir / (name + ".stdout")
        self.stopping = False
        with open(self.log_path, "wb") as err, open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen([harness.GATEHOUSE_BIN, "-c", str(self.config_path)],
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        self.addresses = []
        self._wait_ready()
        self.port = self.ports[0]

    def stdout_text(self):
        return self.stdout_path.read_text(errors="replace")


def rst_close(sock):
    """Closes sock with a TCP RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
