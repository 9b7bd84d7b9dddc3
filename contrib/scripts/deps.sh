#!/usr/bin/env bash
# Install what building and testing gatehouse needs, from Debian 12's packages. Idempotent: it
# installs only what is missing. Run as root (or with sudo available).
set -euo pipefail
packages=(
  build-essential cmake ninja-build ccache pkg-config
  libboost1.74-dev libboost-program-options1.74-dev
  libssl-dev libtomlplusplus-dev libfmt-dev libgtest-dev
  python3 python3-pytest python3-websockets python3-brotli python3-yaml curl openssl binutils
  zlib1g-dev libbrotli-dev brotli
  libmodsecurity-dev modsecurity-crs   # the waf module and its default rule set
  nginx libnginx-mod-http-modsecurity  # the CRS suite, per case, against nginx + ModSecurity (test_waf_crs.py)
  nodejs python3-jwcrypto   # the sso tests: a real OpenID provider (tests/oidc) and keys for it
  chromium chromium-driver python3-selenium   # the sso test that signs in with a real browser
  libhiredis-dev redis-server   # the sso module's session store, and a redis for its tests
  libjemalloc-dev   # the kernel's allocator
  nlohmann-json3-dev prometheus testssl.sh
  systemd   # systemd-analyze verify and systemd-sysusers check the installed unit (test_install.py)
  debhelper dpkg-dev fakeroot   # contrib/debian: the .deb packages (tests/packaging)
  logrotate   # parses contrib/logrotate/gatehouse (test_install.py)
)
# npm comes with nodejs from some repositories and as its own package from Debian's.
command -v npm >/dev/null 2>&1 || packages+=(npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  # Packages with a service (nginx on port 80) must not start it here: a policy-rc.d that says
  # no while they install, unless the machine already has one.
  policy=/usr/sbin/policy-rc.d made_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null && $SUDO chmod +x "$policy" &&
      made_policy=1
  fi
  rc=0
  $SUDO apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" || rc=$?
  ((made_policy)) && $SUDO rm -f "$policy"
  ((rc == 0)) || exit "$rc"
fi

# The test-only OpenID provider (npm's oidc-provider), exactly as tests/oidc/package-lock.json
# pins it; again only when the lock changed since the last install.
oidc=$(cd "$(dirname "$0")/../../tests/oidc" && pwd)
if [[ ! -f $oidc/node_modules/.package-lock.json ||
      $oidc/package-lock.json -nt $oidc/node_modules/.package-lock.json ]]; then
  echo "deps: npm ci in tests/oidc"
  (cd "$oidc" && npm ci --no-audit --no-fund --loglevel=error)
fi
