"""redis-server (Debian's) for the tests: on 127.0.0.1 and a free port, nothing saved to disk,
stopped by PID; `cli(...)` runs redis-cli against it."""

import shutil
import subprocess

import harness


def unavailable():
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        return "redis-server is not installed (contrib/scripts/deps.sh installs it)"
    return ""


class RedisServer:
    def __init__(self, workdir):
        self.workdir = workdir
        self.port = harness.free_port()
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir), "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        if not harness.wait_until(lambda: self.ping(), 10):
            self.stop()
            raise RuntimeError("redis-server did not start on port %d" % self.port)

    def cli(self, *args):
        done = subprocess.run(["redis-cli", "-p", str(self.port), "--raw", *args],
                              capture_output=True, text=True, timeout=10)
        return done.stdout.strip()

    def ping(self):
        try:
            return self.cli("PING") == "PONG"
        except subprocess.TimeoutExpired:
            return False

    def stop(self):
        if self.proc is not None:
            harness._kill(self.proc)
            self.proc = None
