#!/usr/bin/env bash
# gatehouse sso: the CPU a valid session costs per request (a route with the module and a
# session cookie from a real sign-in against npm's oidc-provider, against the same route without
# it), bearer JWT verification (RS256, ES256) per request, and nginx 1.22 doing oauth2-proxy-style
# forward auth (auth_request to a local auth endpoint) in the same run, same backend.
#
#   tests/bench/sso.sh [--build] [--rounds N] [--duration S] [--conns N]
#                      (python3 tests/bench/sso_bench.py --help)
#
# Uses the Release gatehouse binary and modules in $GATEHOUSE_BUILD_DIR (default build-bench/;
# --build builds it first, -j2), nginx and wrk (installed with apt when missing, as root:
# tests/bench/tools.sh), node with tests/oidc/node_modules and python3-jwcrypto
# (contrib/scripts/deps.sh). Default: 5 rounds of 5 s per scenario, about 3 minutes. Writes
# tests/bench/sso-results.md. Loopback only; every process started is killed by PID on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build_dir=${GATEHOUSE_BUILD_DIR:-$top/build-bench}
python=${PYTHON:-/usr/bin/python3}

build=0
keep_tmp=0
args=()
for arg in "$@"; do
  case $arg in
    --build) build=1 ;;
    --keep-tmp) keep_tmp=1 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$arg") ;;
  esac
done

source "$here/tools.sh"
bench_tools "sso bench" nginx wrk

if ((build)); then
  echo "sso bench: building gatehouse (Release) in $build_dir" >&2
  GATEHOUSE_BUILD_DIR=$build_dir CMAKE_BUILD_TYPE=Release GATEHOUSE_BUILD_TESTS=OFF \
    GATEHOUSE_JOBS=${GATEHOUSE_JOBS:-2} "$top/contrib/scripts/build.sh" >&2
fi
[[ -x $build_dir/kernel/gatehouse && -f $build_dir/modules/sso.so ]] || {
  echo "sso bench: no gatehouse build with sso.so in $build_dir (use --build)" >&2; exit 1; }

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gh-sso-bench.XXXXXX")
chmod 755 "$tmp"
pids=$tmp/pids
: >"$pids"
py=

bench_cleanup_on_exit "sso bench"

GATEHOUSE_BIN=$build_dir/kernel/gatehouse GATEHOUSE_MODULE_DIR=$build_dir/modules \
  "$python" "$here/sso_bench.py" --tmp "$tmp" --pid-file "$pids" \
  --gatehouse "$build_dir/kernel/gatehouse" --module-dir "$build_dir/modules" \
  --command "tests/bench/sso.sh${*:+ $*}" ${args[@]+"${args[@]}"} &
py=$!
wait "$py"
