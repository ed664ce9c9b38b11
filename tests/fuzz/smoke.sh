#!/usr/bin/env bash
# Fuzz smoke run for the test suite: builds the libFuzzer targets with clang in their own
# build tree (if needed), then runs each for a fixed number of iterations on a copy of its
# committed seed corpus. Fails, saying why, if clang/libFuzzer are missing.
#   tests/fuzz/smoke.sh SOURCE_DIR FUZZ_BUILD_DIR [RUNS]
set -euo pipefail
src=$1
build=$2
runs=${3:-20000}
targets=(envelope_fuzz)

if ! command -v clang++ >/dev/null; then
  echo "fuzz smoke: clang++ is not installed; run deploy/install-deps.sh" >&2
  exit 1
fi
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  CC=clang CXX=clang++ cmake -S "$src" -B "$build" -DREFBUS_FUZZ=ON -DREFBUS_BUILD_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build.configure.log" 2>&1 ||
    { cat "$build.configure.log" >&2; echo "fuzz smoke: cannot configure the clang build tree" >&2; exit 1; }
fi
cmake --build "$build" -j2 --target "${targets[@]}" >"$build.build.log" 2>&1 ||
  { tail -50 "$build.build.log" >&2; echo "fuzz smoke: clang build failed" >&2; exit 1; }

for t in "${targets[@]}"; do
  corpus="$src/tests/fuzz/corpus/${t%_fuzz}"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cp -r "$corpus/." "$work/"
  echo "fuzz smoke: $t for $runs runs"
  "$build/bin/$t" -runs="$runs" -max_len=65536 -print_final_stats=1 "$work" 2>&1 | tail -15
  rm -rf "$work"
  trap - EXIT
done
