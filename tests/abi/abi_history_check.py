#!/usr/bin/env python3
"""Checks that the current SDK headers only append to every released 1.x header set.

For each sdk/abi-history/<version>/, lists the released structs' fields and integer constants,
then builds one small program twice -- against the released headers and against the current
ones -- that prints each field's offset and size, each struct's size and each constant's value.
Every released field must keep its offset and size, no struct may shrink and no constant may
change value (GH_ABI_MINOR aside); a field that disappeared fails to compile.

usage: abi_history_check.py SDK_INCLUDE_DIR ABI_HISTORY_DIR CXX
"""
import pathlib
import re
import subprocess
import sys
import tempfile

STRUCT = re.compile(r"typedef struct (\w+) \{(.*?)\} (\w+);", re.S)
FIELD_PTR = re.compile(r"\(\*(\w+)\)\s*\(")
FIELD = re.compile(r"(\w+)\s*(\[\w*\])?$")
DEFINE = re.compile(r"^#define (GH_[A-Z0-9_]+)\s+\(?-?[0-9][0-9a-fA-FxXuU]*\)?", re.M)
CHANGEABLE = {"GH_ABI_MINOR"}


def fields(body):
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    out = []
    for statement in body.split(";"):
        statement = " ".join(statement.split())
        if not statement:
            continue
        m = FIELD_PTR.search(statement) or FIELD.search(statement)
        if m:
            out.append(m.group(1))
    return out


def dump_program(structs, defines):
    lines = ["#include <cstddef>", "#include <cstdio>", "#include <gatehouse/gatehouse.h>",
             "int main() {"]
    for name, members in structs:
        lines.append(f'  std::printf("sizeof {name} %zu\\n", sizeof({name}));')
        for f in members:
            lines.append(f'  std::printf("field {name}.{f} %zu %zu\\n", offsetof({name}, {f}), '
                         f'sizeof((({name}*)nullptr)->{f}));')
    for d in defines:
        lines.append(f'  std::printf("const {d} %lld\\n", (long long)({d}));')
    lines.append("}")
    return "\n".join(lines) + "\n"


def run(cxx, include, source, tmp, tag):
    exe = tmp / f"dump-{tag}"
    build = subprocess.run([cxx, "-std=c++17", "-I", str(include), str(source), "-o", str(exe)],
                           capture_output=True, text=True)
    if build.returncode != 0:
        return None, build.stderr
    return subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout, ""


def main(sdk_include, history_root, cxx):
    versions = sorted(p for p in pathlib.Path(history_root).iterdir() if p.is_dir())
    if not versions:
        print("no released ABI versions under", history_root)
        return 1
    failures = 0
    for version in versions:
        structs, defines = [], []
        for header in sorted((version / "gatehouse").glob("*.h")):
            text = header.read_text()
            structs += [(m.group(3), fields(m.group(2))) for m in STRUCT.finditer(text)]
            defines += [m.group(1) for m in DEFINE.finditer(text) if m.group(1) not in CHANGEABLE]
        with tempfile.TemporaryDirectory() as tmp:
            tmp = pathlib.Path(tmp)
            source = tmp / "dump.cpp"
            source.write_text(dump_program(structs, defines))
            released, _ = run(cxx, version, source, tmp, "released")
            current, error = run(cxx, sdk_include, source, tmp, "current")
        if released is None:
            print(f"ABI {version.name}: the released headers do not build")
            failures += 1
            continue
        if current is None:
            print(f"ABI {version.name}: INCOMPATIBLE, a released name is gone:\n{error[-3000:]}")
            failures += 1
            continue
        now = {line.rsplit(" ", 2)[0] if line.startswith("field") else line.rsplit(" ", 1)[0]: line
               for line in current.splitlines()}
        problems = []
        for line in released.splitlines():
            key = line.rsplit(" ", 2)[0] if line.startswith("field") else line.rsplit(" ", 1)[0]
            if line.startswith("sizeof"):
                if int(now[key].rsplit(" ", 1)[1]) < int(line.rsplit(" ", 1)[1]):
                    problems.append(f"{key} shrank: {line} -> {now[key]}")
            elif now.get(key) != line:
                problems.append(f"changed: {line} -> {now.get(key)}")
        if problems:
            failures += 1
            print(f"ABI {version.name}: INCOMPATIBLE\n  " + "\n  ".join(problems))
        else:
            print(f"ABI {version.name}: compatible ({len(structs)} structs, "
                  f"{sum(len(m) for _, m in structs)} fields, {len(defines)} constants)")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:4]))
