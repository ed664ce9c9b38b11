#!/usr/bin/env python3
"""Reads a build's compile database for the clang checks (clang_checks.sh).

A build with CMAKE_UNITY_BUILD names only its batches (.../Unity/unity_N_cxx.cxx, each a list
of #include "/abs/path/file.cpp" lines).

  unity_commands.py BUILD/compile_commands.json > DIR/compile_commands.json
      A database with one entry per source file: each file a batch includes gets the batch's
      command, with the batch's path replaced by the file's own, so that clang-tidy can parse
      it alone with the flags it is built with. The batches stay too, and other entries pass
      through unchanged.

  unity_commands.py --units BUILD/compile_commands.json FILE...
      The translation units that cover the given source files (absolute paths), one per line:
      each batch that includes at least one of them, then each file no batch includes (to be
      parsed alone). One parse of a batch checks its eight files for the cost of about two.
"""
import json
import re
import sys

INCLUDE = re.compile(r'^#include "(/[^"]+)"\s*$')


def sources_of(batch):
    with open(batch, encoding="utf-8") as f:
        return [m.group(1) for m in map(INCLUDE.match, f) if m]


def is_batch(path):
    return "/Unity/unity_" in path


def expand(entry):
    batch = entry["file"]
    if not is_batch(batch):
        return [entry]
    out = []
    for source in sources_of(batch):
        e = dict(entry)
        e["file"] = source
        if "command" in e:
            e["command"] = e["command"].replace(batch, source)
        if "arguments" in e:
            e["arguments"] = [source if a == batch else a for a in e["arguments"]]
        out.append(e)
    if not out:
        sys.exit(f"unity_commands: {batch} includes no source file")
    return [entry] + out


def units(database, files):
    wanted = set(files)
    covered = set()
    out = []
    for entry in database:
        batch = entry["file"]
        if not is_batch(batch) or batch in out:
            continue
        inside = wanted.intersection(sources_of(batch))
        if inside:
            out.append(batch)
            covered |= inside
    out += [f for f in files if f not in covered]
    return out


def main():
    args = sys.argv[1:]
    if len(args) >= 2 and args[0] == "--units":
        with open(args[1], encoding="utf-8") as f:
            database = json.load(f)
        print("\n".join(units(database, args[2:])))
        return
    if len(args) != 1:
        sys.exit("usage: unity_commands.py BUILD/compile_commands.json\n"
                 "       unity_commands.py --units BUILD/compile_commands.json FILE...")
    with open(args[0], encoding="utf-8") as f:
        database = json.load(f)
    json.dump([e for entry in database for e in expand(entry)], sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
