#!/usr/bin/env bash
# gatehouse vs nginx vs HAProxy on loopback (issue 4). See tests/bench/README.md.
#
#   tests/bench/run.sh [--no-build] [--quick] [--rounds N] [--profile] [--callgrind] [--keep-tmp]
#                      [--duration S] [--idle-conns N] ...   (other options: bench.py --help)
#
# Installs nginx, haproxy, wrk and perf (linux-perf) with apt when missing (as root), builds a Release
# gatehouse into build-bench/ (GATEHOUSE_BUILD_DIR overrides; --no-build uses what is there),
# runs tests/bench/bench.py and writes tests/bench/results.md. Every process started is killed
# by PID on exit; configs and logs live in a temp dir that is removed (unless --keep-tmp).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build_dir=${GATEHOUSE_BUILD_DIR:-$top/build-bench}
python=${PYTHON:-python3}

do_build=1
keep_tmp=0
profile=0
callgrind=0
args=()
for arg in "$@"; do
  case $arg in
    --no-build) do_build=0 ;;
    --keep-tmp) keep_tmp=1 ;;
    --profile) profile=1; args+=("$arg") ;;
    --callgrind) callgrind=1; args+=("$arg") ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$arg") ;;
  esac
done

# ---- tools -------------------------------------------------------------------------------
source "$(dirname "$0")/tools.sh"
tools=(nginx haproxy wrk perf)
((callgrind)) && tools+=(valgrind callgrind_control)
bench_tools bench "${tools[@]}"

# ---- gatehouse ---------------------------------------------------------------------------
if ((do_build)); then
  echo "bench: building gatehouse (Release) in $build_dir" >&2
  GATEHOUSE_BUILD_DIR=$build_dir CMAKE_BUILD_TYPE=Release GATEHOUSE_BUILD_TESTS=OFF \
    "$top/contrib/scripts/build.sh" >&2
fi
gatehouse=$build_dir/kernel/gatehouse
[[ -x $gatehouse ]] || { echo "bench: $gatehouse not built (drop --no-build)" >&2; exit 1; }

# ---- limits: 10,000 idle client connections need as many descriptors in the proxy ----------
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"

# ---- run, then kill by PID whatever is left --------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench.XXXXXX")
chmod 755 "$tmp"   # nginx workers (www-data) read the static files below it
pids=$tmp/pids
: >"$pids"
py=

bench_cleanup_on_exit "bench"

command_line="tests/bench/run.sh${*:+ $*}"
# A partial run (--only) must not replace the full report: the matrix alone has its own file,
# other parts go to results-partial.md (not kept in git).
out="$here/results.md"
only=""
prev=""
for arg in "$@"; do
  [[ $prev == --only ]] && only=$arg
  [[ $arg == --only=* ]] && only=${arg#--only=}
  prev=$arg
done
if [[ $only == matrix ]]; then out="$here/matrix-results.md"
elif [[ -n $only ]]; then out="$here/results-partial.md"
fi
"$python" "$here/bench.py" --tmp "$tmp" --pid-file "$pids" --gatehouse "$gatehouse" \
  --module-dir "$build_dir/modules" --out "$out" --command "$command_line" \
  ${args[@]+"${args[@]}"} &
py=$!
wait "$py"
