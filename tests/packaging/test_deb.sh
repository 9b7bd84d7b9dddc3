#!/usr/bin/env bash
# contrib/debian builds: a copy of the source tree with contrib/debian as debian/, built with
# `dpkg-buildpackage -b` (the packages are never installed on this machine), then checked:
# one package per component with the right files and relationships, and the packaged kernel,
# unpacked, runs on the packaged modules with /usr/lib/gatehouse/modules as its default.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:?usage: test_deb.sh WORK_DIR (a folder of the build tree, reused between runs)}
if ! command -v dpkg-buildpackage >/dev/null || ! command -v dh >/dev/null; then
  echo "SKIP: dpkg-buildpackage or debhelper missing (contrib/scripts/deps.sh installs them)"
  exit 77
fi
# A fixed path: Debian's flags name the source folder (-ffile-prefix-map), so a new folder per
# run would miss ccache every time.
tmp=$work/deb
rm -rf "$tmp"
mkdir -p "$tmp"
fail() { printf 'FAIL: %b\n' "$*" >&2; exit 1; }

# The source as a packager gets it: no build trees, no VCS metadata.
mkdir "$tmp/gatehouse-0.1.0"
tar -C "$src" --exclude='./build*' --exclude=./.git --exclude='__pycache__' -cf - . |
  tar -C "$tmp/gatehouse-0.1.0" -xf -
cp -r "$src/contrib/debian" "$tmp/gatehouse-0.1.0/debian"
# dh gives the build a fresh HOME; keep ccache's cache where it is so rebuilds stay quick.
export CCACHE_DIR=${CCACHE_DIR:-$(ccache -k cache_dir 2>/dev/null || echo "$HOME/.cache/ccache")}
export DEB_BUILD_OPTIONS="parallel=${GATEHOUSE_JOBS:-2} nocheck"
(cd "$tmp/gatehouse-0.1.0" && dpkg-buildpackage -b -uc -us >"$tmp/build.log" 2>&1) ||
  { tail -40 "$tmp/build.log"; fail "dpkg-buildpackage failed"; }

arch=$(dpkg --print-architecture)
deb() { echo "$tmp/$1_0.1.0-1_$2.deb"; }
runtime=(gatehouse gatehouse-module-round-robin gatehouse-module-least-conn
         gatehouse-module-compress gatehouse-module-cache-disk gatehouse-module-waf
         gatehouse-module-sso)
for p in "${runtime[@]}"; do
  [[ -f $(deb "$p" "$arch") ]] || fail "no package $p"
done
[[ -f $(deb gatehouse-sdk all) ]] || fail "no package gatehouse-sdk"

files() { dpkg-deb -c "$1" | awk '{print $6}' | grep -v '/$' | sed 's|^\./||' | sort; }
expect_files() { # package-file, then the exact file list
  local got want
  got=$(files "$1"); shift
  want=$(printf '%s\n' "$@" | sort)
  [[ "$got" == "$want" ]] || fail "$(basename "$1") holds:\n$got\nexpected:\n$want"
}
expect_files "$(deb gatehouse-module-cache-disk "$arch")" \
  usr/lib/gatehouse/modules/cache_disk.so \
  usr/share/doc/gatehouse-module-cache-disk/changelog.Debian.gz \
  usr/share/doc/gatehouse/modules/cache_disk/README.md.gz
expect_files "$(deb gatehouse-module-waf "$arch")" \
  usr/lib/gatehouse/modules/waf.so \
  usr/share/doc/gatehouse-module-waf/changelog.Debian.gz \
  usr/share/doc/gatehouse/modules/waf/README.md.gz
waf=$(dpkg-deb -f "$(deb gatehouse-module-waf "$arch")" Depends)
[[ "$waf" == *libmodsecurity3* ]] || fail "gatehouse-module-waf Depends: $waf"
[[ "$(dpkg-deb -f "$(deb gatehouse-module-waf "$arch")" Recommends)" == *modsecurity-crs* ]] ||
  fail "gatehouse-module-waf does not recommend modsecurity-crs"
expect_files "$(deb gatehouse-module-sso "$arch")" \
  usr/lib/gatehouse/modules/sso.so \
  usr/share/doc/gatehouse-module-sso/changelog.Debian.gz \
  usr/share/doc/gatehouse/modules/sso/README.md.gz
sso=$(dpkg-deb -f "$(deb gatehouse-module-sso "$arch")" Depends)
[[ "$sso" == *libssl3* && "$sso" == *libhiredis* ]] || fail "gatehouse-module-sso Depends: $sso"
kernel=$(files "$(deb gatehouse "$arch")")
for f in usr/bin/gatehouse lib/systemd/system/gatehouse.service \
         usr/lib/sysusers.d/gatehouse.conf usr/share/doc/gatehouse/kernel/README.md.gz \
         usr/share/man/man8/gatehouse.8.gz etc/logrotate.d/gatehouse \
         usr/share/doc/gatehouse/conf/examples/edge-tls.toml; do
  grep -qx "$f" <<<"$kernel" || fail "gatehouse lacks $f"
done
if grep -E '\.so$|^usr/include' <<<"$kernel"; then fail "gatehouse holds module or SDK files"; fi
sdk=$(files "$(deb gatehouse-sdk all)")
for f in usr/include/gatehouse/gatehouse.h usr/share/cmake/GatehouseSDK/GatehouseSDKConfig.cmake \
         usr/share/pkgconfig/gatehouse-sdk.pc; do
  grep -qx "$f" <<<"$sdk" || fail "gatehouse-sdk lacks $f"
done
# Architecture: all holds nothing under an architecture's lib directory.
if grep -E '^usr/lib/' <<<"$sdk"; then fail "gatehouse-sdk has architecture-specific paths"; fi

# The ABI relationship: the kernel provides every 1.y up to its own; modules depend on theirs.
minor=$(sed -n 's/^#define GH_ABI_MINOR \([0-9]*\).*/\1/p' "$src/sdk/include/gatehouse/types.h")
provides=$(dpkg-deb -f "$(deb gatehouse "$arch")" Provides)
[[ "$provides" == *"gatehouse-abi-1.0"* && "$provides" == *"gatehouse-abi-1.$minor"* ]] ||
  fail "gatehouse Provides: $provides"
depends=$(dpkg-deb -f "$(deb gatehouse-module-least-conn "$arch")" Depends)
[[ "$depends" == *"gatehouse-abi-1.$minor"* && "$depends" == *libc6* ]] ||
  fail "gatehouse-module-least-conn Depends: $depends"
dpkg-deb -I "$(deb gatehouse "$arch")" conffiles | grep -qx /etc/logrotate.d/gatehouse ||
  fail "/etc/logrotate.d/gatehouse is not a conffile"
postinst=$(dpkg-deb -I "$(deb gatehouse "$arch")" postinst 2>/dev/null || true)
grep -q "systemd-sysusers" <<<"$postinst" || fail "the postinst does not create the user"
grep -q "deb-systemd-helper" <<<"$postinst" || fail "the postinst does not register the unit"

# Unpacked (not installed), the packaged kernel runs the packaged modules.
root=$tmp/root
for p in "${runtime[@]}"; do
  dpkg-deb -x "$(deb "$p" "$arch")" "$root"
done
"$root/usr/bin/gatehouse" --version | grep -qx "modules dir default: /usr/lib/gatehouse/modules" ||
  fail "packaged kernel's default modules dir: $("$root/usr/bin/gatehouse" --version)"
cat >"$tmp/g.toml" <<TOML
[modules]
dir = "$root/usr/lib/gatehouse/modules"
load = ["round_robin", "least_conn", "compress", "cache_disk", "waf", "sso"]
[[listener]]
listen = "127.0.0.1:0"
[upstream.app]
servers = [{ address = "127.0.0.1:9" }]
[[route]]
upstream = "app"
TOML
out=$("$root/usr/bin/gatehouse" modules -c "$tmp/g.toml") || fail "gatehouse modules: $out"
for m in round_robin least_conn compress cache_disk waf sso; do
  grep -q "$m" <<<"$out" || fail "$m not listed: $out"
done
echo "ok: 7 packages built, contents, ABI relationships and the unpacked kernel checked"
