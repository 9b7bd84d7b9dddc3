#!/usr/bin/env bash
# Build gatehouse and run the demo: two demo backends on 127.0.0.1:9001 and :9002, and gatehouse
# in the foreground on conf/gatehouse.toml (127.0.0.1:8080). Ctrl-C stops everything.
# Idempotent: installs only missing packages, rebuilds incrementally, and replaces demo backends
# left over from an earlier run.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
run_dir="$top/build/demo"

"$top/contrib/scripts/deps.sh"
"$top/contrib/scripts/build.sh" runtime   # the binary and the modules; not the tests

mkdir -p "$run_dir"
pids=()         # demo backends, then gatehouse: everything this script started

stop_all() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -f "$run_dir"/backend-*.pid
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A demo backend from an earlier run that did not clean up (killed -9) still holds its port.
stop_stale_backend() {
  local pidfile=$1 pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "contrib/demo/backend.py"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do [ -e "/proc/$pid" ] || break; sleep 0.1; done
  fi
  rm -f "$pidfile"
}

start_backend() {
  local name=$1 port=$2 pidfile="$run_dir/backend-$2.pid"
  stop_stale_backend "$pidfile"
  python3 "$top/contrib/demo/backend.py" --name "$name" --port "$port" &
  pids+=($!)
  echo $! >"$pidfile"
}

start_backend backend-1 9001
start_backend backend-2 9002

# Wait (bounded) until both backends accept connections.
for port in 9001 9002; do
  for _ in $(seq 50); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
done

echo "demo: http://127.0.0.1:8080/ (Ctrl-C to stop)"
# Started as a job and waited for, so Ctrl-C or a SIGTERM to this script runs the traps at once
# and stops gatehouse as well as the backends; its log still goes to this terminal.
"$top/build/kernel/gatehouse" -c "$top/conf/gatehouse.toml" &
pids+=($!)
status=0
wait "${pids[-1]}" || status=$?
exit "$status"
