"""`cmake --install` of the build under test, as a packager runs it (DESTDIR staging): the layout,
the per-module components, the installed kernel loading the installed modules, and the systemd
unit and sysusers file passing systemd's own checks."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import harness

BUILD = Path(harness.GATEHOUSE_BIN).resolve().parent.parent
SHIPPED = ["cache_disk", "compress", "least_conn", "round_robin", "sso", "waf"]
TEST_ONLY = ["abi_conformance", "bad_major", "newer_minor"]


def cache_value(key):
    for line in (BUILD / "CMakeCache.txt").read_text().splitlines():
        if line.startswith(key + ":"):
            return line.split("=", 1)[1]
    raise KeyError(key)


@pytest.fixture(scope="module")
def prefix():
    if not (BUILD / "CMakeCache.txt").exists():
        print("no CMakeCache.txt next to %s: not a CMake build tree" % harness.GATEHOUSE_BIN)
        pytest.skip("GATEHOUSE_BIN is not in a CMake build tree")
    return cache_value("CMAKE_INSTALL_PREFIX")


def install(destdir, *args):
    """`DESTDIR=destdir cmake --install BUILD ARGS`; the installed files, relative to destdir."""
    done = subprocess.run(["cmake", "--install", str(BUILD), *args],
                          env=dict(os.environ, DESTDIR=str(destdir)), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return sorted(str(p.relative_to(destdir)) for p in Path(destdir).rglob("*") if p.is_file())


def built_modules():
    return [m for m in SHIPPED if (BUILD / "modules" / (m + ".so")).exists()]


def test_full_install_layout_and_the_installed_kernel_loads_the_installed_modules(prefix,
                                                                                 tmp_path):
    stage = tmp_path / "stage"
    files = install(stage)
    root = Path(str(stage) + prefix)
    modules_dir = root / "lib/gatehouse/modules"
    assert sorted(p.stem for p in modules_dir.glob("*.so")) == built_modules()
    for name in TEST_ONLY:                 # the ABI tests' modules are not shipped
        assert not any(name in f for f in files), name
    for rel in ("bin/gatehouse", "lib/systemd/system/gatehouse.service",
                "lib/sysusers.d/gatehouse.conf", "share/doc/gatehouse/README.md",
                "share/doc/gatehouse/kernel/README.md", "share/doc/gatehouse/sdk/README.md",
                "share/doc/gatehouse/conf/examples/edge-tls.toml",
                "include/gatehouse/gatehouse.h", "share/pkgconfig/gatehouse-sdk.pc",
                "share/cmake/GatehouseSDK/GatehouseSDKConfig.cmake", "share/man/man8/gatehouse.8"):
        assert (root / rel).is_file(), rel
    if shutil.which("man"):
        page = subprocess.run(["man", "--warnings", "-l", str(root / "share/man/man8/gatehouse.8")],
                              capture_output=True, text=True, timeout=30,
                              env=dict(os.environ, MANWIDTH="100", MAN_KEEP_FORMATTING=""))
        assert page.returncode == 0 and not page.stderr.strip(), page.stderr
        assert "gatehouse reload -c FILE" in page.stdout
    else:
        print("man not installed: the manual page was not rendered")
    for m in built_modules():
        assert (root / "share/doc/gatehouse/modules" / m / "README.md").is_file(), m

    gatehouse = root / "bin/gatehouse"
    done = subprocess.run([str(gatehouse), "--version"], capture_output=True, text=True,
                          timeout=10)
    # Without [modules] dir the kernel looks where the install put the modules (DESTDIR aside).
    assert "modules dir default: %s/lib/gatehouse/modules" % prefix in done.stdout, done.stdout
    config = tmp_path / "gatehouse.toml"
    config.write_text(harness.proxy_config(["127.0.0.1:9"]).replace(
        harness.modules_toml(), '[modules]\ndir = %s\nload = %s\n' % (
            harness.toml_value(str(modules_dir)), harness.toml_value(built_modules()))))
    done = subprocess.run([str(gatehouse), "modules", "-c", str(config)], capture_output=True,
                          text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    for m in built_modules():
        assert re.search(r"\b%s\b" % m, done.stdout), (m, done.stdout)

    check_logrotate(root / "etc/logrotate.d/gatehouse", tmp_path)

    unit = (root / "lib/systemd/system/gatehouse.service").read_text()
    assert "ExecStart=%s/bin/gatehouse -c /etc/gatehouse/gatehouse.toml" % prefix in unit
    assert "@" not in unit.replace("$MAINPID", ""), "unsubstituted @VAR@ in the unit"
    check_unit(unit.replace("%s/bin/gatehouse" % prefix, str(gatehouse)), tmp_path,
               root / "lib/sysusers.d/gatehouse.conf")


def check_logrotate(path, tmp_path):
    text = path.read_text()
    assert "/var/log/gatehouse/*.log" in text and "USR1" in text
    tool = shutil.which("logrotate") or shutil.which("logrotate", path="/usr/sbin:/sbin")
    if tool is None:
        print("logrotate not installed: its file was not parsed")
        return
    # -d: parse and show what it would do, touching nothing. The gatehouse user does not exist
    # here, so the copy creates files as root.
    copy = tmp_path / "logrotate.conf"
    copy.write_text(text.replace("create 0640 gatehouse adm", "create 0640 root adm"))
    done = subprocess.run([tool, "-d", "-s", str(tmp_path / "logrotate.state"), str(copy)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "error" not in done.stderr.lower(), done.stderr


def check_unit(unit_text, tmp_path, sysusers):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        print("systemd-analyze not installed (Debian: systemd): the unit's check skipped")
        pytest.skip("systemd-analyze is not installed")
    # Binaries named by the unit must exist for `verify`: the staged kernel stands in.
    unit = tmp_path / "units" / "gatehouse.service"
    unit.parent.mkdir()
    unit.write_text(unit_text)
    done = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    root = tmp_path / "sysroot"
    (root / "etc").mkdir(parents=True)
    done = subprocess.run(["systemd-sysusers", "--dry-run", "--root", str(root), str(sysusers)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "Creating user 'gatehouse'" in done.stdout + done.stderr


def test_a_module_component_installs_that_module_alone(prefix, tmp_path):
    if "cache_disk" not in built_modules():
        print("cache_disk is not built (GATEHOUSE_MODULE_CACHE_DISK=OFF): component test skipped")
        pytest.skip("cache_disk not built")
    files = install(tmp_path / "one", "--component", "module-cache_disk")
    p = prefix.lstrip("/")
    assert files == sorted([p + "/lib/gatehouse/modules/cache_disk.so",
                            p + "/share/doc/gatehouse/modules/cache_disk/README.md"]), files
    files = install(tmp_path / "kernel", "--component", "kernel")
    assert p + "/bin/gatehouse" in files
    assert not [f for f in files if f.endswith(".so") or "/include/" in f], files
