#!/usr/bin/env bash
# Build gatehouse with its tests and run every test: unit (GoogleTest), ABI and integration
# (pytest against the real binary). Installs what it needs first. Idempotent.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${GATEHOUSE_BUILD_DIR:-$top/build}
"$top/contrib/scripts/deps.sh"
GATEHOUSE_BUILD_DIR="$build" GATEHOUSE_BUILD_TESTS=ON "$top/contrib/scripts/build.sh"
cd "$build"
ctest -j "${GATEHOUSE_JOBS:-2}" --output-on-failure --timeout 900 "$@"
