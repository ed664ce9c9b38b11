#!/usr/bin/env bash
# Fuzz smoke run for the test suite: builds the libFuzzer targets with clang in their own
# build tree (if needed), then runs each for a fixed number of iterations on a copy of its
# committed seed corpus. Fails, saying why, if clang/libFuzzer are missing or a target
# finds a crash (the reproducer is kept and its path printed).
#   tests/fuzz/smoke.sh SOURCE_DIR FUZZ_BUILD_DIR [RUNS]
# RUNS overrides every target's count. The default counts below give about 5 s a target
# (about 50 s for the whole run on a 2-core machine once the tree is built): enough to
# replay the seeds, mutate them a little and catch a crash near them, not a fuzzing
# campaign (deploy/fuzz.sh is that).
set -euo pipefail
src=$1
build=$2
override=${3:-}

# target  runs   (measured rates on 2 cores, ASan+UBSan: 15k to 70k exec/s)
runs_of=(
  frame_fuzz 60000
  envelope_fuzz 250000
  directory_fuzz 200000
  consent_fuzz 250000
  case_message_fuzz 120000
  audit_fuzz 200000
  checkpoint_fuzz 200000
  keyfile_fuzz 120000
  config_fuzz 100000
)
targets=()
declare -A runs
for ((i = 0; i < ${#runs_of[@]}; i += 2)); do
  targets+=("${runs_of[i]}")
  runs[${runs_of[i]}]=${override:-${runs_of[i + 1]}}
done

if ! command -v clang++ >/dev/null; then
  echo "fuzz smoke: clang++ is not installed; run deploy/install-deps.sh" >&2
  exit 1
fi
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  CC=clang CXX=clang++ cmake -S "$src" -B "$build" -DREFBUS_FUZZ=ON -DREFBUS_BUILD_TESTS=OFF \
    -DCMAKE_UNITY_BUILD=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build.configure.log" 2>&1 ||
    { cat "$build.configure.log" >&2; echo "fuzz smoke: cannot configure the clang build tree" >&2; exit 1; }
fi
# Re-run the configure step so that targets added since the tree was made exist.
cmake "$build" >>"$build.configure.log" 2>&1 ||
  { tail -30 "$build.configure.log" >&2; echo "fuzz smoke: cannot configure the clang build tree" >&2; exit 1; }
failed=()
if ! cmake --build "$build" -j2 --target "${targets[@]}" >"$build.build.log" 2>&1; then
  # Find which targets do not build, say why, and still run the others.
  built=()
  mkdir -p "$build/fuzz-build-logs"
  for t in "${targets[@]}"; do
    if cmake --build "$build" -j2 --target "$t" >"$build/fuzz-build-logs/$t.log" 2>&1; then
      built+=("$t")
    else
      grep -E 'error' -A3 "$build/fuzz-build-logs/$t.log" | head -20 >&2
      echo "fuzz smoke: $t does not build with clang (log: $build/fuzz-build-logs/$t.log)" >&2
      failed+=("$t")
    fi
  done
  targets=("${built[@]}")
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$SECONDS
for t in "${targets[@]}"; do
  corpus="$src/tests/fuzz/corpus/${t%_fuzz}"
  mkdir -p "$work/$t" "$work/$t-artifacts"
  cp -r "$corpus/." "$work/$t/"
  t0=$SECONDS
  set +e
  "$build/bin/$t" -runs="${runs[$t]}" -max_len=16384 -print_final_stats=1 \
    -artifact_prefix="$work/$t-artifacts/" "$work/$t" >"$work/$t.log" 2>&1
  rc=$?
  set -e
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$work/$t.log" | tail -1 || true)
  echo "fuzz smoke: $t: ${runs[$t]} runs, $((SECONDS - t0)) s: ${done_line:-no final stats}"
  if [[ $rc -ne 0 ]]; then
    tail -40 "$work/$t.log" >&2
    kept="$build/smoke-crashes/$t"
    mkdir -p "$kept"
    cp -r "$work/$t-artifacts/." "$kept/"
    echo "fuzz smoke: $t FAILED (exit $rc); reproducer(s) kept in $kept" >&2
    failed+=("$t")
  fi
done
echo "fuzz smoke: ${#targets[@]} targets in $((SECONDS - start)) s"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz smoke: failures in ${failed[*]}" >&2
  exit 1
fi
