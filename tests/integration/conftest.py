"""Fixtures for gatehouse's integration tests (see harness.py for the helpers they wrap).

    start_backend(backend_id="a", keepalive_timeout=None, delay_ms=0, drop_nth_request=0, port=0)
    start_gatehouse([workdir,] toml_text, name="gatehouse", args=(), wait_ready=True)
        -> Gatehouse with .port, .ports, .pid, .log_text(), .stop(), .proc_status("VmRSS")

Every process started through them is killed by PID at teardown; a gatehouse that exited on its
own before teardown (a crash under test traffic) fails the test.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402


@pytest.fixture
def processes():
    registry = harness.ProcessRegistry()
    yield registry
    crashed = registry.cleanup()
    if crashed:
        g = crashed[0]
        pytest.fail("gatehouse exited on its own (code %s) during the test; log tail:\n%s"
                    % (g.proc.returncode, g.log_text()[-3000:]), pytrace=False)


@pytest.fixture
def start_backend(processes, tmp_path):
    def start(backend_id="backend", **kw):
        b = harness.Backend(tmp_path, backend_id, **kw)
        processes.backends.append(b)
        return b
    return start


@pytest.fixture
def start_gatehouse(processes, tmp_path):
    def start(*args, name="gatehouse", **kw):
        # start(toml_text) or start(workdir, toml_text)
        workdir, toml_text = args if len(args) == 2 else (tmp_path, args[0])
        g = harness.Gatehouse(workdir, toml_text, name=name, **kw)
        processes.gatehouses.append(g)
        return g
    return start


@pytest.fixture
def proxy(start_backend, start_gatehouse):
    """A gatehouse in front of one fresh backend; returns (gatehouse, backend)."""
    backend = start_backend("only")
    return start_gatehouse(harness.proxy_config([backend])), backend


@pytest.fixture(scope="module")
def module_processes(tmp_path_factory):
    """Like `processes`, shared by a whole test module (for read-only setups such as routing)."""
    registry = harness.ProcessRegistry()
    registry.tmp_path = tmp_path_factory.mktemp("shared")
    yield registry
    crashed = registry.cleanup()
    if crashed:
        g = crashed[0]
        pytest.fail("gatehouse exited on its own (code %s) during the module; log tail:\n%s"
                    % (g.proc.returncode, g.log_text()[-3000:]), pytrace=False)
