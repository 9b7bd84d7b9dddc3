#!/usr/bin/env bash
# gatehouse compress vs nginx `gzip on` (issue 5), plus output sizes vs the gzip/brotli CLIs;
# and brotli against nginx with Debian's libnginx-mod-http-brotli-filter (ngx_brotli) at the same
# quality and window on the same bodies streamed chunked (issue 15): output bytes per response,
# req/s and CPU per response under wrk, and memory per stream (RSS growth with 200 slow clients
# held mid-response ÷ 200).
#
#   tests/bench/compress.sh [--build] [--quick] [--rounds N] [--duration S] [--keep-tmp]
#                           [--brotli-level Q] [--brotli-window W] [--mem-streams N]
#                           [--diag-block SIZE] ...
#
# Uses the Release gatehouse binary and modules in $GATEHOUSE_BUILD_DIR (default build-bench/,
# shared with tests/bench/run.sh; --build builds it first), nginx, wrk, gzip and brotli (run
# contrib/scripts/deps.sh for brotli; nginx-light and wrk as tests/bench/run.sh installs them)
# and libnginx-mod-http-brotli-filter, installed with apt when missing (as root, services not
# started). Default run ~4 minutes, --quick ~1.5. Writes tests/bench/compress-results.md
# (python3 tests/bench/compress_bench.py --help lists every option). Loopback only; every
# process started is killed on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build_dir=${GATEHOUSE_BUILD_DIR:-$top/build-bench}
python=${PYTHON:-/usr/bin/python3}

build=0
args=()
for arg in "$@"; do
  case $arg in
    --build) build=1 ;;
    --quick) args+=(--rounds 1 --duration 3) ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$arg") ;;
  esac
done

source "$(dirname "$0")/tools.sh"
bench_tools "compress bench" nginx wrk gzip brotli
bench_packages "compress bench" libnginx-mod-http-brotli-filter
"$python" -c 'import brotli' 2>/dev/null || { echo "compress bench: python3-brotli missing" >&2; exit 1; }

if ((build)); then
  GATEHOUSE_BUILD_DIR=$build_dir CMAKE_BUILD_TYPE=Release GATEHOUSE_BUILD_TESTS=OFF \
    "$top/contrib/scripts/build.sh" >&2
fi
[[ -x $build_dir/kernel/gatehouse && -f $build_dir/modules/compress.so ]] || {
  echo "compress bench: no gatehouse build in $build_dir (use --build)" >&2; exit 1; }

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec "$python" "$here/compress_bench.py" --gatehouse "$build_dir/kernel/gatehouse" \
  --module-dir "$build_dir/modules" "${args[@]}"
