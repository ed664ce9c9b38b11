#!/usr/bin/env python3
"""Prints a compile database with one entry per source file, from a build's database.

A build with CMAKE_UNITY_BUILD names only its batches (.../Unity/unity_N_cxx.cxx, each a list
of #include "/abs/path/file.cpp" lines). Each file a batch includes gets the batch's command,
with the batch's path replaced by the file's own, so that clang-tidy parses it alone with the
flags it is built with. Entries that are not batches pass through unchanged.

  unity_commands.py BUILD/compile_commands.json > DIR/compile_commands.json
"""
import json
import re
import sys

INCLUDE = re.compile(r'^#include "(/[^"]+)"\s*$')


def sources_of(batch):
    with open(batch, encoding="utf-8") as f:
        return [m.group(1) for m in map(INCLUDE.match, f) if m]


def expand(entry):
    batch = entry["file"]
    if "/Unity/unity_" not in batch:
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
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: unity_commands.py BUILD/compile_commands.json")
    with open(sys.argv[1], encoding="utf-8") as f:
        database = json.load(f)
    json.dump([e for entry in database for e in expand(entry)], sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
