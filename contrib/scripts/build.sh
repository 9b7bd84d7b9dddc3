#!/usr/bin/env bash
# Configure and build gatehouse, its modules and (unless GATEHOUSE_BUILD_TESTS=OFF) its tests;
# with arguments, only those targets (`build.sh runtime`: the binary and the modules).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${GATEHOUSE_BUILD_DIR:-$top/build}
cmake -S "$top" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=${CMAKE_BUILD_TYPE:-RelWithDebInfo} \
  -DGATEHOUSE_BUILD_TESTS=${GATEHOUSE_BUILD_TESTS:-ON} \
  -DGATEHOUSE_BUILD_ABI_TESTS=${GATEHOUSE_BUILD_TESTS:-ON} >/dev/null
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build "$build" -j "${GATEHOUSE_JOBS:-2}" "${targets[@]}"
