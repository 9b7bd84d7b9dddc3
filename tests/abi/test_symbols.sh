#!/usr/bin/env bash
# Every *.so in DIR exports exactly one defined dynamic symbol: gatehouse_module_v1.
# Nothing is filtered out: a module that leaks any other symbol (a template instantiation, a
# linker-added _init/_fini) fails, so the cause is fixed instead of hidden.
set -euo pipefail
dir=${1:?usage: test_symbols.sh MODULE_DIR}
shopt -s nullglob
modules=("$dir"/*.so)
if ((${#modules[@]} == 0)); then
  echo "test_symbols: no *.so in $dir" >&2
  exit 1
fi
status=0
for so in "${modules[@]}"; do
  symbols=$(nm -D --defined-only "$so" | awk '{print $NF}' | sort | tr '\n' ' ')
  if [[ "$symbols" == "gatehouse_module_v1 " ]]; then
    echo "ok   $(basename "$so")"
  else
    echo "FAIL $(basename "$so") exports: ${symbols:-nothing}" >&2
    status=1
  fi
done
exit $status
