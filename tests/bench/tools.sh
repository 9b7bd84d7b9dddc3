# Sourced by the benchmark scripts (run.sh, compress.sh, cache.sh, waf.sh):
#
#   bench_cleanup_on_exit PREFIX    on exit (and INT/TERM): stop the Python driver ($py), then
#                                   every process recorded in $pids ("PID COMM" lines, checked
#                                   against /proc so a reused PID is left alone) by PID, then
#                                   remove $tmp unless $keep_tmp is 1
#
#   bench_tools PREFIX COMMAND...   make every COMMAND available, installing its Debian package
#                                   with apt when it is missing (as root; otherwise exit 1)
#   bench_packages PREFIX PACKAGE...
#                                   install every Debian PACKAGE that dpkg does not list as
#                                   installed (for packages that add no command, e.g. nginx's
#                                   dynamic modules: libnginx-mod-http-brotli-filter)
#
# Packages: nginx -> nginx-light (nginx as a fallback), perf -> linux-perf (optional: a warning
# when unavailable), callgrind_control -> valgrind, anything else -> the package of the same
# name. The packages' services (nginx and haproxy on port 80) are kept from starting while they
# install (a policy-rc.d that says no, unless one is already there).
bench_tools() {
  local prefix=$1 cmd
  shift
  local need=()
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null || need+=("$cmd")
  done
  ((${#need[@]})) || return 0
  _bench_apt "$prefix" "${need[@]}"
}

bench_packages() {
  local prefix=$1 pkg
  shift
  local need=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
      need+=("pkg:$pkg")
  done
  ((${#need[@]})) || return 0
  _bench_apt "$prefix" "${need[@]}"
}

# _bench_apt PREFIX ITEM...: ITEM is a command (mapped to its package as above) or pkg:NAME.
_bench_apt() {
  local prefix=$1 cmd
  shift
  local need=("$@")
  if [[ $EUID -ne 0 ]]; then
    echo "$prefix: missing ${need[*]#pkg:}; run as root to install them with apt" >&2
    exit 1
  fi
  echo "$prefix: installing ${need[*]#pkg:}" >&2
  local install_pkg='DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends'
  local policy=/usr/sbin/policy-rc.d made_policy=0 rc=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
  fi
  apt-get update -qq || rc=$?
  for cmd in "${need[@]}"; do
    case $cmd in
      pkg:*) eval "$install_pkg ${cmd#pkg:}" || rc=1 ;;
      nginx) eval "$install_pkg nginx-light" || eval "$install_pkg nginx" || rc=1 ;;
      perf) eval "$install_pkg linux-perf" || echo "$prefix: linux-perf unavailable, no syscall counts or profile" >&2 ;;
      callgrind_control) ;; # part of valgrind
      *) eval "$install_pkg $cmd" || rc=1 ;;
    esac
  done
  ((made_policy)) && rm -f "$policy"
  ((rc == 0)) || { echo "$prefix: apt-get failed" >&2; exit 1; }
}

bench_cleanup_on_exit() {
  _bench_cleanup_prefix=$1
  trap _bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

_bench_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n ${py:-} ]] && kill -0 "$py" 2>/dev/null; then
    kill -TERM "$py" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$py" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$py" 2>/dev/null || true
  fi
  # Every process the driver started, by PID, if it is still the same program.
  local pid comm left=()
  while read -r pid comm; do
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]] || continue
    kill -TERM "$pid" 2>/dev/null && left+=("$pid:$comm")
  done <"$pids"
  if ((${#left[@]})); then
    sleep 2
    local entry
    for entry in "${left[@]}"; do
      pid=${entry%%:*}; comm=${entry#*:}
      [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]] && kill -KILL "$pid" 2>/dev/null
    done
  fi
  if ((${keep_tmp:-0})); then
    echo "$_bench_cleanup_prefix: configs and logs kept in $tmp" >&2
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
