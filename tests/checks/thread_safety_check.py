#!/usr/bin/env python3
"""Clang's thread-safety analysis over the daemons, the protocol layer and
the client: every ABSL_GUARDED_BY / ABSL_EXCLUSIVE_LOCKS_REQUIRED in them is
checked, and any warning fails.

The build itself uses GCC, which ignores those annotations, so this check
parses each file once more with clang (-fsyntax-only: no code generated),
with the flags of compile_commands.json.

Usage: thread_safety_check.py BUILD_DIR SOURCE_DIR [CLANG++]
"""
import concurrent.futures
import json
import os
import shlex
import subprocess
import sys

DIRS = ("server/", "client/", "proto/lib/")
# Options that only make sense for the real compile (outputs, dependency
# files) or that GCC has and clang does not.
DROP_WITH_ARG = {"-o", "-MF", "-MT", "-MQ"}
DROP = {"-c", "-MD", "-MMD", "-Werror", "-Wall", "-Wextra"}


def clang_command(entry, clang):
    args = entry.get("arguments") or shlex.split(entry["command"])
    # Drop the launcher (ccache) and the compiler itself.
    while args and not args[0].startswith("-") and \
            os.path.basename(args[0]) in ("ccache", "sccache"):
        args = args[1:]
    args = args[1:]
    out = [clang, "-fsyntax-only", "-Wno-everything", "-Wthread-safety",
           "-Werror=thread-safety"]
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a in DROP_WITH_ARG:
            skip = True
            continue
        if a in DROP or a == entry["file"]:
            continue
        out.append(a)
    out.append(entry["file"])
    return out


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    build, src = sys.argv[1], os.path.realpath(sys.argv[2])
    clang = sys.argv[3] if len(sys.argv) > 3 else "clang++"
    if not os.path.isfile(clang) and not any(
            os.path.isfile(os.path.join(d, clang))
            for d in os.environ.get("PATH", "").split(os.pathsep)):
        print(f"{clang} not found: the check needs clang "
              "(scripts/install-deps.sh installs it)")
        return 1
    with open(os.path.join(build, "compile_commands.json")) as f:
        entries = json.load(f)
    todo = []
    for e in entries:
        rel = os.path.relpath(os.path.realpath(e["file"]), src)
        if rel.startswith(DIRS) and rel.endswith(".cc"):
            todo.append((rel, e))
    if not todo:
        print("no server/client/protocol sources in compile_commands.json")
        return 1

    def check(item):
        rel, e = item
        p = subprocess.run(clang_command(e, clang), cwd=e["directory"],
                           capture_output=True, text=True)
        return rel, p.returncode, p.stderr

    failed = 0
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        for rel, rc, err in pool.map(check, sorted(todo)):
            if rc != 0:
                failed += 1
                print(f"--- {rel}\n{err}")
    print(f"thread safety: {len(todo) - failed} of {len(todo)} files clean")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
