"""The command line: `check`, `modules`, `--version`, `--help`, and config errors reported as
`FILE:LINE: [key.path] message` with nothing started."""

import re
import socket
import time

import pytest

from harness import (MODULE_DIR, free_port, get, modules_toml, proxy_config, run_check,
                     toml_value, run_cli)

GOOD = """[server]
workers = 2
log_level = "info"

{modules}
[limits]
max_header_bytes = "16k"
max_body_bytes = "10m"

[timeouts]
header = "5s"
body_idle = 10000

[forwarding]
trusted_proxies = ["10.0.0.0/8", "::1/128"]

[[listener]]
name = "public"
listen = "127.0.0.1:{port}"

[upstream.app]
balancer = "least_conn"
servers = [{{ address = "127.0.0.1:9", weight = 2 }}, {{ address = "127.0.0.1:10", backup = true }}]
max_fails = 5
fail_backoff = "30s"

[[route]]
name = "api"
host = "*.example.com"
path = "/api/"
upstream = "app"

[[route]]
path = "/"
match = "prefix"
upstream = "app"
"""


def good_config(port=None):
    return GOOD.format(modules=modules_toml(), port=port or free_port())


def test_check_accepts_a_good_config(tmp_path):
    code, err = run_check(tmp_path, good_config())
    assert code == 0, err


def test_check_has_no_side_effects(tmp_path):
    with socket.socket() as taken:  # check must not bind: the address being busy is fine
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        log_file = tmp_path / "should-not-exist.log"
        text = good_config(taken.getsockname()[1]).replace(
            'log_level = "info"', 'log_level = "info"\nlog_file = "%s"' % log_file)
        code, err = run_check(tmp_path, text)
        assert code == 0, err
        assert not log_file.exists()


BAD = [
    # (id, change to the good config (old, new), key path regex, message regex)
    ("unknown_key_did_you_mean", ('workers = 2', 'workres = 2'),
     r"server\.workres", r"(?i)did you mean.*workers"),
    ("unknown_section", ('[limits]', '[limtis]'), r"limtis", r"(?i)did you mean.*limits"),
    ("wrong_type", ('workers = 2', 'workers = "two"'), r"server\.workers", r""),
    ("negative_workers", ('workers = 2', 'workers = -1'), r"server\.workers", r""),
    ("bad_duration", ('header = "5s"', 'header = "5 parsecs"'), r"timeouts\.header", r""),
    ("bad_size", ('max_body_bytes = "10m"', 'max_body_bytes = "10q"'),
     r"limits\.max_body_bytes", r""),
    ("bad_log_level", ('log_level = "info"', 'log_level = "loud"'), r"server\.log_level", r""),
    ("unknown_upstream_in_route", ('upstream = "app"\n\n[[route]]', 'upstream = "nope"\n\n[[route]]'),
     r"route(\[0\]|\.0)?\.upstream", r"nope"),
    ("unknown_balancer", ('balancer = "least_conn"', 'balancer = "fastest"'),
     r"upstream\.app\.balancer", r"fastest"),
    ("unknown_module", ('"least_conn"]', '"least_conn", "nosuchmodule"]'),
     r"modules\.load(\[2\]|\.2)?", r"nosuchmodule"),
    ("bad_listen_address", ('listen = "127.0.0.1:', 'listen = "127.0.0.1:99999'),
     r"listener(\[0\]|\.0)?\.listen", r""),
    ("listen_not_an_address", ('listen = "127.0.0.1:', 'listen = "not an address'),
     r"listener(\[0\]|\.0)?\.listen", r""),
    ("bad_server_address", ('address = "127.0.0.1:9"', 'address = "127.0.0.1"'),
     r"upstream\.app\.servers(\[0\]|\.0)?\.address", r""),
    ("weight_out_of_range", ('weight = 2', 'weight = 0'),
     r"upstream\.app\.servers(\[0\]|\.0)?\.weight", r""),
    ("bad_cidr", ('"10.0.0.0/8"', '"10.0.0.0/33"'), r"forwarding\.trusted_proxies(\[0\]|\.0)?", r""),
    ("bad_match", ('match = "prefix"', 'match = "regex"'), r"route(\[1\]|\.1)?\.match", r""),
    ("unknown_route_key", ('name = "api"', 'nmae = "api"'), r"route(\[0\]|\.0)?\.nmae",
     r"(?i)did you mean.*name"),
]


@pytest.mark.parametrize("change, key_path, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_check_rejects_bad_config_with_file_line_and_key_path(tmp_path, change, key_path, message):
    old, new = change
    good = good_config()
    assert old in good
    text = good.replace(old, new, 1)
    code, err = run_check(tmp_path, text)
    assert code == 1, err
    m = re.search(r"gatehouse\.toml:(?P<line>\d+): \[(?:%s)\] (?P<msg>.*)" % key_path, err)
    assert m, "no `FILE:LINE: [%s] message` in:\n%s" % (key_path, err)
    line = text[:text.index(new)].count("\n") + 1
    assert int(m.group("line")) == line, (m.group(0), line)
    assert re.search(message, m.group("msg")), err


def test_missing_listener_is_an_error(tmp_path):
    text = re.sub(r"\[\[listener\]\]\nname = \"public\"\nlisten = \"[^\"]*\"\n", "", good_config())
    code, err = run_check(tmp_path, text)
    assert code == 1
    assert re.search(r"gatehouse\.toml(:\d+)?: \[listener\]", err), err


def test_missing_required_route_upstream_is_an_error(tmp_path):
    text = good_config().replace('path = "/api/"\nupstream = "app"\n', 'path = "/api/"\n')
    code, err = run_check(tmp_path, text)
    assert code == 1
    assert re.search(r"gatehouse\.toml:\d+: \[route(\[0\]|\.0)?(\.upstream)?\]", err), err


def test_toml_syntax_error_reports_file_and_line(tmp_path):
    text = good_config().replace('max_fails = 5', 'max_fails = = 5')
    code, err = run_check(tmp_path, text)
    assert code == 1
    line = text[:text.index("max_fails = = 5")].count("\n") + 1
    assert re.search(r"gatehouse\.toml:%d:" % line, err), err


def test_missing_config_file_is_an_error(tmp_path):
    done = run_cli(["check", "-c", str(tmp_path / "absent.toml")])
    assert done.returncode == 1
    assert "absent.toml" in done.stderr


def test_missing_module_dir_is_an_error(tmp_path):
    text = good_config().replace(MODULE_DIR, str(tmp_path / "no-modules-here"))
    code, err = run_check(tmp_path, text)
    assert code == 1
    assert "round_robin" in err


def test_bad_config_does_not_start(tmp_path):
    port = free_port()
    text = good_config(port).replace('workers = 2', 'workres = 2')
    path = tmp_path / "bad.toml"
    path.write_text(text)
    done = run_cli(["-c", str(path)], timeout=10)
    assert done.returncode == 1
    assert "] ready:" not in done.stderr and "listening on" not in done.stderr
    assert re.search(r"bad\.toml:\d+: \[server\.workres\]", done.stderr), done.stderr


def test_version(tmp_path):
    done = run_cli(["--version"])
    assert done.returncode == 0
    assert re.search(r"\b0\.1\.0\b", done.stdout + done.stderr)
    # where a config without [modules] dir looks: the install prefix's lib/gatehouse/modules
    assert re.search(r"^modules dir default: /\S*/lib/gatehouse/modules$", done.stdout, re.M), \
        done.stdout


def test_help_lists_commands_and_options(tmp_path):
    done = run_cli(["--help"])
    assert done.returncode == 0
    out = done.stdout + done.stderr
    for word in ("check", "modules", "--config", "--version", "--log-level"):
        assert word in out, word


def test_unknown_option_is_usage_error(tmp_path):
    assert run_cli(["--no-such-option"]).returncode == 2


def test_modules_lists_configured_modules(tmp_path):
    path = tmp_path / "gatehouse.toml"
    path.write_text(good_config())
    done = run_cli(["modules", "-c", str(path)])
    assert done.returncode == 0, done.stderr
    out = done.stdout + done.stderr
    for name in ("round_robin", "least_conn"):
        line = next((l for l in out.splitlines() if name in l and ".so" in l), None)
        assert line, "no line for %s in:\n%s" % (name, out)
        assert "%s/%s.so" % (MODULE_DIR.rstrip("/"), name) in line or "%s.so" % name in line
        assert re.search(r"\b\d+\.\d+(\.\d+)?\b", line), line  # version / ABI
        assert "balancer" in line, line


def test_log_level_option_and_startup_lines(start_gatehouse):
    gh = start_gatehouse(proxy_config(["127.0.0.1:9"]), args=["--log-level", "debug"])
    log = gh.log_text()
    assert re.search(r"^\S+ info \[kernel\] listening on 127\.0\.0\.1:%d$" % gh.port, log, re.M), log
    assert "round_robin" in log and "least_conn" in log  # loaded modules are logged


def test_log_file_receives_the_kernel_log(tmp_path, start_gatehouse):
    log_file = tmp_path / "kernel.log"  # relative paths are relative to the config's folder
    text = proxy_config(["127.0.0.1:9"]).replace('log_level = "info"',
                                                  'log_level = "info"\nlog_file = "kernel.log"')
    gh = start_gatehouse(text, wait_ready=False)
    assert wait_until_file_has(log_file, "ready"), gh.log_text()
    assert "listening on" in log_file.read_text()


def wait_until_file_has(path, word, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and word in path.read_text(errors="replace"):
            return True
        time.sleep(0.05)
    return False


def test_sigterm_stops_promptly_with_exit_0(start_gatehouse):
    gh = start_gatehouse(proxy_config(["127.0.0.1:9"]))
    start = time.monotonic()
    assert gh.stop(grace=5) == 0
    assert time.monotonic() - start < 5



def _exits_with(tmp_path, text, pattern):
    # `gatehouse -c` must refuse to start: exit 1 (no crash), the reason logged, never ready.
    path = tmp_path / "gatehouse.toml"
    path.write_text(text)
    done = run_cli(["-c", str(path)])
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert re.search(pattern, done.stderr), done.stderr
    assert "] ready:" not in done.stderr


def test_start_refuses_an_admin_address_in_use(start_backend, tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        extra = '[admin]\nlisten = "127.0.0.1:%d"\n' % taken.getsockname()[1]
        _exits_with(tmp_path, proxy_config([start_backend("b")], extra=extra),
                    r"gatehouse\.toml: \[admin\.listen\] .*in use")
    finally:
        taken.close()


def test_start_refuses_an_access_log_it_cannot_open(start_backend, tmp_path):
    extra = '[access_log]\npath = "%s"\n' % (tmp_path / "no-such-dir" / "access.log")
    _exits_with(tmp_path, proxy_config([start_backend("b")], extra=extra),
                r"\[access_log\.path\] cannot open access log")


def test_start_refuses_a_pid_file_it_cannot_write(start_backend, tmp_path):
    """As nginx: a pid file that cannot be written (its folder is missing here) is an error, not
    a warning — `gatehouse reload` and service managers depend on it. The message names the
    config line; the pid file of a refused start is not left behind."""
    pid_file = tmp_path / "no-such-dir" / "gatehouse.pid"
    text = proxy_config([start_backend("b")]).replace(
        'log_level = "info"', 'log_level = "info"\npid_file = %s' % toml_value(str(pid_file)))
    line = text.splitlines().index("pid_file = %s" % toml_value(str(pid_file))) + 1
    _exits_with(tmp_path, text, r"gatehouse\.toml:%d: \[server\.pid_file\] cannot write '%s': "
                r"No such file or directory" % (line, re.escape(str(pid_file))))
    assert not pid_file.parent.exists()


def test_second_gatehouse_on_an_address_in_use_exits_1(start_backend, start_gatehouse, tmp_path):
    """SO_REUSEPORT would let a second process join the first one's listener and take a share
    of its connections; the start must stop instead, as the manual page promises."""
    port = free_port()
    text = proxy_config([start_backend("b")]).replace("127.0.0.1:0", "127.0.0.1:%d" % port)
    first = start_gatehouse(text)
    _exits_with(tmp_path, text, r"\[listener\] cannot listen on 127\.0\.0\.1:%d: address already "
                r"in use" % port)
    assert first.alive()
    # Every request still reaches the first instance's backend (nobody shares the port).
    for _ in range(12):
        assert get(first.port, "/id").status == 200


def test_second_gatehouse_on_the_wildcard_of_a_used_port_exits_1(start_backend, start_gatehouse,
                                                                 tmp_path):
    port = free_port()
    text = proxy_config([start_backend("b")]).replace("127.0.0.1:0", "127.0.0.1:%d" % port)
    start_gatehouse(text)
    _exits_with(tmp_path, text.replace("127.0.0.1:%d" % port, "0.0.0.0:%d" % port),
                r"cannot listen on 0\.0\.0\.0:%d: address already in use" % port)


def test_examples_check_from_a_build_tree_with_modules_dir():
    """The examples' own "check it with" line, from a build tree: their [modules] dir is the
    installed one, which --modules-dir replaces."""
    from pathlib import Path
    example = Path(__file__).resolve().parents[2] / "conf" / "examples" / "cache-compress.toml"
    assert "--modules-dir build/modules -c conf/examples/cache-compress.toml" in example.read_text()
    done = run_cli(["check", "--modules-dir", MODULE_DIR, "-c", str(example)])
    assert done.returncode == 0, done.stderr
    assert "configuration ok" in done.stdout
    bogus = run_cli(["check", "--modules-dir", "/nonexistent-dir", "-c", str(example)])
    assert bogus.returncode == 1 and "/nonexistent-dir" in bogus.stderr, bogus.stderr


def test_bare_integer_duration_is_accepted_with_a_warning(tmp_path):
    """`connect_timeout = 5` means 5 ms (nginx would read seconds): check says so, with the
    line and key path, and still accepts it; with a unit there is no warning."""
    text = proxy_config(["127.0.0.1:9"], upstream="connect_timeout = 5\nfail_backoff = 0")
    path = tmp_path / "gatehouse.toml"
    path.write_text(text)
    done = run_cli(["check", "-c", str(path)])
    assert done.returncode == 1  # fail_backoff must be > 0: still an error, reported too
    path.write_text(text.replace("fail_backoff = 0", ""))
    done = run_cli(["check", "-c", str(path)])
    assert done.returncode == 0, done.stderr
    line = text.splitlines().index("connect_timeout = 5") + 1
    assert re.search(r"gatehouse\.toml:%d: \[upstream\.app\.connect_timeout\] warning: 5 has no "
                     r"unit, so it means 5 milliseconds; write \"5ms\" to say so, or \"5s\" for "
                     r"seconds" % line, done.stderr), done.stderr
    path.write_text(text.replace("fail_backoff = 0", "").replace("= 5\n", '= "5s"\n'))
    done = run_cli(["check", "-c", str(path)])
    assert done.returncode == 0 and "warning" not in done.stderr, done.stderr


def test_check_reports_kernel_and_module_errors_at_once(tmp_path):
    """A typo in [server] does not hide one in a module's table, or one in a route's table of
    another module: one `check` lists them all, each with its line and key path."""
    text = proxy_config(["127.0.0.1:9"]).replace("workers = 2", "workrs = 2")
    text = text.replace(modules_toml(), modules_toml(("round_robin", "compress", "cache_disk")))
    text += ('[filter.compress]\nlevle = 3\n\n[[route]]\npath = "/c"\nupstream = "app"\n'
             'filters = ["cache_disk"]\nfilter_config = { cache_disk = { kye = "x" } }\n'
             '[filter.cache_disk]\npath = %s\n' % toml_value(str(tmp_path / "cache")))
    path = tmp_path / "gatehouse.toml"
    path.write_text(text)
    done = run_cli(["check", "-c", str(path)])
    assert done.returncode == 1
    for key in ("server.workrs", "filter.compress.levle", "filter_config.cache_disk.kye"):
        assert "[%s" % key in done.stderr or key in done.stderr, (key, done.stderr)
