#!/usr/bin/env bash
# gatehouse cache_disk vs nginx `proxy_cache` (issue 6): cache hits on one 10 KiB object.
#
#   tests/bench/cache.sh [--no-build] [--quick] [--rounds N] [--duration S] [--keep-tmp]
#
# Builds a Release gatehouse into build-bench/ (GATEHOUSE_BUILD_DIR overrides, shared with
# tests/bench/run.sh; --no-build uses what is there), then runs tests/bench/cache_bench.py with
# nginx and wrk (installed with apt when missing, as root: tests/bench/tools.sh). Writes
# tests/bench/cache-results.md. Loopback only; every process started is killed
# by PID on exit. Defaults: 3 rounds of 5 s per proxy, about a minute.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build_dir=${GATEHOUSE_BUILD_DIR:-$top/build-bench}
python=${PYTHON:-/usr/bin/python3}

do_build=1
args=()
for arg in "$@"; do
  case $arg in
    --no-build) do_build=0 ;;
    --quick) args+=(--rounds 1 --duration 3) ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$arg") ;;
  esac
done

source "$here/tools.sh"
bench_tools "cache bench" nginx wrk

if ((do_build)); then
  echo "cache bench: building gatehouse (Release) in $build_dir" >&2
  GATEHOUSE_BUILD_DIR=$build_dir CMAKE_BUILD_TYPE=Release GATEHOUSE_BUILD_TESTS=OFF \
    "$top/contrib/scripts/build.sh" >&2
fi
[[ -x $build_dir/kernel/gatehouse && -f $build_dir/modules/cache_disk.so ]] || {
  echo "cache bench: no gatehouse build with cache_disk in $build_dir (drop --no-build)" >&2
  exit 1; }

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec "$python" "$here/cache_bench.py" --gatehouse "$build_dir/kernel/gatehouse" \
  --module-dir "$build_dir/modules" --command "tests/bench/cache.sh${*:+ $*}" \
  ${args[@]+"${args[@]}"}
