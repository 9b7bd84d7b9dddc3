#!/usr/bin/env bash
# gatehouse waf vs nginx 1.22 + Debian's ModSecurity connector (libnginx-mod-http-modsecurity):
# the same libmodsecurity 3, the same OWASP CRS 3.3.4 (modsecurity-crs) at paranoia level 1 in
# blocking mode, the same engine settings and base rules, one worker each, in front of the same
# nginx backend. Workloads: GET of a small HTML page, 4 KiB urlencoded form POSTs, 64 KiB JSON
# POSTs (all clean: checked to match no rule). Reports req/s, CPU µs per request, p99 and
# errors of each and their ratios against the goals, and gatehouse's engine time per request.
#
#   tests/bench/waf.sh [--build] [--quick] [--rounds N] [--duration S] [--conns N]
#                      [--only get,form,json] [--keep-tmp] ...   (python3 tests/bench/waf_bench.py --help)
#   tests/bench/waf.sh --stall [--rounds N]   the WAF-free route's p99 while a WAF route on the
#                      same worker is saturated with 256 KiB form POSTs: defaults, engine never yielding, offload off
#                      (tests/bench/waf_stall.py; writes tests/bench/waf-stall-results.md)
#
# Uses the Release gatehouse binary and modules in $GATEHOUSE_BUILD_DIR (default build-bench/,
# shared with the other benchmarks; --build builds it first, -j2), nginx and wrk (installed with
# apt when missing, as root: tests/bench/tools.sh), libnginx-mod-http-modsecurity and
# modsecurity-crs. Default: 5 rounds of 5 s per proxy and workload (10 s for JSON), ~5 minutes;
# --quick: 1 round of 3 s (6 s for JSON), under a minute. Writes tests/bench/waf-results.md
# (--quick runs are marked as smoke runs in it). Loopback only; every process started is killed
# by PID on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build_dir=${GATEHOUSE_BUILD_DIR:-$top/build-bench}
python=${PYTHON:-/usr/bin/python3}

build=0
keep_tmp=0
stall=0
args=()
for arg in "$@"; do
  case $arg in
    --build) build=1 ;;
    --stall) stall=1 ;;
    --quick) args+=(--quick --rounds 1 --duration 3) ;;
    --keep-tmp) keep_tmp=1; args+=("$arg") ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$arg") ;;
  esac
done

source "$here/tools.sh"
bench_tools "waf bench" nginx wrk
bench_packages "waf bench" libnginx-mod-http-modsecurity modsecurity-crs

if ((build)); then
  echo "waf bench: building gatehouse (Release) in $build_dir" >&2
  GATEHOUSE_BUILD_DIR=$build_dir CMAKE_BUILD_TYPE=Release GATEHOUSE_BUILD_TESTS=OFF \
    GATEHOUSE_JOBS=${GATEHOUSE_JOBS:-2} "$top/contrib/scripts/build.sh" >&2
fi
[[ -x $build_dir/kernel/gatehouse && -f $build_dir/modules/waf.so ]] || {
  echo "waf bench: no gatehouse build with waf.so in $build_dir (use --build)" >&2; exit 1; }

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---- run, then kill by PID whatever is left --------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gh-waf-bench.XXXXXX")
chmod 755 "$tmp"   # nginx workers (www-data) read the page below it
pids=$tmp/pids
: >"$pids"
py=

bench_cleanup_on_exit "waf bench"

if ((stall)); then
  rounds=()
  for ((i = 0; i < ${#args[@]}; i++)); do
    [[ ${args[i]} == --rounds ]] && rounds=(--rounds "${args[i + 1]}")
  done
  "$python" "$here/waf_stall.py" --tmp "$tmp" --pid-file "$pids" \
    --gatehouse "$build_dir/kernel/gatehouse" --module-dir "$build_dir/modules" \
    --command "tests/bench/waf.sh${*:+ $*}" ${rounds[@]+"${rounds[@]}"} &
else
  "$python" "$here/waf_bench.py" --tmp "$tmp" --pid-file "$pids" \
    --gatehouse "$build_dir/kernel/gatehouse" --module-dir "$build_dir/modules" \
    --command "tests/bench/waf.sh${*:+ $*}" ${args[@]+"${args[@]}"} &
fi
py=$!
wait "$py"
