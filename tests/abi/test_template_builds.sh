#!/usr/bin/env bash
# The installed SDK is enough to build a module: install the SDK from BUILD_DIR into a temporary
# prefix, copy sdk/template out of the source tree, build it with find_package(GatehouseSDK) and
# again with pkg-config, check each .so exports exactly gatehouse_module_v1, and run the
# template's unit tests (built on the installed gatehouse/sdk/testing.hpp).
set -euo pipefail
build=${1:?usage: test_template_builds.sh BUILD_DIR (a configured gatehouse build)}
src=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

only_entry_symbol() {
  local symbols
  symbols=$(nm -D --defined-only "$1" | awk '{print $NF}' | sort | tr '\n' ' ')
  if [[ "$symbols" != "gatehouse_module_v1 " ]]; then
    echo "FAIL $1 exports: ${symbols:-nothing}" >&2
    return 1
  fi
  echo "ok   $1 exports only gatehouse_module_v1"
}

# 1. Install the SDK alone (headers, CMake package, pkg-config file).
cmake --install "$build/sdk" --prefix "$tmp/prefix" >/dev/null
test -f "$tmp/prefix/include/gatehouse/sdk.hpp"

# 2. The template, outside the source tree, with the CMake package.
cp -r "$src/sdk/template" "$tmp/template"
cmake -S "$tmp/template" -B "$tmp/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$tmp/build" -j2 >/dev/null
if grep -q "$src/sdk" "$tmp/build/compile_commands.json"; then
  echo "FAIL the template build used the source tree's SDK, not the installed one" >&2
  exit 1
fi
only_entry_symbol "$tmp/build/example.so"
# The template's unit tests run against the installed test-support header (the fake host).
ctest --test-dir "$tmp/build" --output-on-failure >"$tmp/ctest.log" 2>&1 ||
  { cat "$tmp/ctest.log" >&2; echo "FAIL the template's unit tests" >&2; exit 1; }
grep -q "100% tests passed" "$tmp/ctest.log" ||
  { cat "$tmp/ctest.log" >&2; echo "FAIL the template ran no unit test" >&2; exit 1; }
echo "ok   the template's unit tests pass on the installed fake host"
# `cmake --install` puts it where a kernel installed with the same prefix looks by default.
cmake --install "$tmp/build" --prefix "$tmp/modprefix" >/dev/null
installed=$(cd "$tmp/modprefix" && find . -type f | sort)
[[ "$installed" == "./lib/gatehouse/modules/example.so" ]] ||
  { echo "FAIL the template installed: $installed" >&2; exit 1; }
echo "ok   the template installs lib/gatehouse/modules/example.so"

# 3. The same sources with pkg-config and a plain compiler line.
export PKG_CONFIG_PATH="$tmp/prefix/share/pkgconfig"
cflags=$(pkg-config --cflags gatehouse-sdk)
include_dir=$(readlink -f "$(pkg-config --variable=includedir gatehouse-sdk)")
[[ "$include_dir" == "$(readlink -f "$tmp/prefix/include")" ]] ||
  { echo "FAIL pkg-config includedir: $include_dir (cflags: $cflags)" >&2; exit 1; }
mkdir "$tmp/pc"
version_map="$tmp/pc/exports.map"
printf '{\n  global: gatehouse_module_v1;\n  local: *;\n};\n' >"$version_map"
# shellcheck disable=SC2086
c++ -std=c++17 -O2 -fPIC -shared -fvisibility=hidden -fvisibility-inlines-hidden -Wall -Wextra \
  -Werror $cflags "$tmp"/template/*.cpp -Wl,--no-undefined -Wl,--version-script="$version_map" \
  -o "$tmp/pc/example.so"
only_entry_symbol "$tmp/pc/example.so"
