#!/usr/bin/env bash
# refbus fuzzing: installs what is missing, builds the libFuzzer targets in their own clang
# tree (build-fuzz/), and runs each chosen target for a given time.
#
#   deploy/fuzz.sh [--time SECONDS] [--jobs N] [TARGET...]
#
#   --time SECONDS  per target (default 600)
#   --jobs N        targets run at once (default 1; each uses one core)
#   TARGET          frame_fuzz envelope_fuzz ... (default: every target in tests/fuzz/);
#                   the _fuzz suffix may be left out
#
# Each target works on build-fuzz/corpus-work/<name>/, seeded from the committed corpus
# tests/fuzz/corpus/<name>/ and kept between runs: new inputs go there, never into the
# committed corpus. Logs: build-fuzz/fuzz-logs/<target>.log. Crash reproducers:
# build-fuzz/fuzz-crashes/<target>/. Prints per target the executions, exec/s, coverage
# (libFuzzer's final cov and ft) and any crash file; exits 1 if any target crashed or
# did not build.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
time_s=600
jobs=1
chosen=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --time) time_s=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) chosen+=("${1%_fuzz}_fuzz"); shift ;;
  esac
done
[[ "$time_s" =~ ^[0-9]+$ && "$time_s" -gt 0 ]] || { echo "fuzz.sh: --time takes seconds" >&2; exit 2; }
[[ "$jobs" =~ ^[0-9]+$ && "$jobs" -gt 0 ]] || { echo "fuzz.sh: --jobs takes a count" >&2; exit 2; }

all=()
for f in "$root"/tests/fuzz/*_fuzz.cpp; do all+=("$(basename "$f" .cpp)"); done
if [[ ${#chosen[@]} -eq 0 ]]; then chosen=("${all[@]}"); fi
for t in "${chosen[@]}"; do
  [[ " ${all[*]} " == *" $t "* ]] || { echo "fuzz.sh: no target '$t' (have: ${all[*]})" >&2; exit 2; }
done

"$root/deploy/install-deps.sh" --fuzz
build="$root/build-fuzz"
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DREFBUS_FUZZ=ON -DREFBUS_BUILD_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build.configure.log"
fi
cmake "$build" >>"$build.configure.log"
echo "== Building ${chosen[*]} (clang, libFuzzer, ASan+UBSan) in $build"
unbuilt=()
if ! cmake --build "$build" -j"$(nproc)" --target "${chosen[@]}" >"$build.build.log" 2>&1; then
  # Say which targets do not build and why; fuzz the others.
  built=()
  mkdir -p "$build/fuzz-build-logs"
  for t in "${chosen[@]}"; do
    if cmake --build "$build" -j"$(nproc)" --target "$t" >"$build/fuzz-build-logs/$t.log" 2>&1; then
      built+=("$t")
    else
      grep -E 'error' -A3 "$build/fuzz-build-logs/$t.log" | head -20 >&2
      echo "fuzz.sh: $t does not build (log: $build/fuzz-build-logs/$t.log)" >&2
      unbuilt+=("$t")
    fi
  done
  chosen=("${built[@]}")
fi

logs="$build/fuzz-logs"
mkdir -p "$logs"

run_one() {
  local t=$1 name=${1%_fuzz}
  local work="$build/corpus-work/$name" crashes="$build/fuzz-crashes/$t"
  mkdir -p "$work" "$crashes"
  cp -rn "$root/tests/fuzz/corpus/$name/." "$work/"
  local rc=0
  # -rss_limit_mb: the ASan quarantine alone is 256 MB; 2 GB is libFuzzer's default.
  "$build/bin/$t" -max_total_time="$time_s" -max_len=16384 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$crashes/" "$work" >"$logs/$t.log" 2>&1 || rc=$?
  echo "$rc" >"$logs/$t.rc"
}

summary() {
  local t=$1 rc=$2 log="$logs/$1.log"
  local execs rate done cov ft crash
  execs=$(awk '/^stat::number_of_executed_units:/ {print $2}' "$log" | tail -1)
  rate=$(awk '/^stat::average_exec_per_sec:/ {print $2}' "$log" | tail -1)
  done=$(grep -E '^#[0-9]+[[:space:]]+(DONE|NEW|REDUCE|pulse|INITED)' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done")
  crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
  printf '%-18s execs %-10s exec/s %-7s cov %-6s ft %-6s %s\n' "$t" "${execs:-?}" "${rate:-?}" \
    "${cov:-?}" "${ft:-?}" "$([[ $rc -eq 0 ]] && echo ok || echo "CRASH (exit $rc) ${crash:-see $log}")"
}

echo "== Fuzzing each target for $time_s s ($jobs at a time); logs in $logs"
for t in "${chosen[@]}"; do
  rm -f "$logs/$t.rc"
  run_one "$t" &
  while [[ $(jobs -rp | wc -l) -ge $jobs ]]; do wait -n || true; done
done
wait
crashed=0
echo
for t in "${chosen[@]}"; do
  rc=$(cat "$logs/$t.rc" 2>/dev/null || echo 99)
  summary "$t" "$rc"
  [[ $rc -eq 0 ]] || crashed=1
done
for t in "${unbuilt[@]}"; do
  printf '%-18s NOT BUILT (see %s)\n' "$t" "$build/fuzz-build-logs/$t.log"
done
if [[ ${#unbuilt[@]} -gt 0 && $crashed -eq 0 ]]; then
  echo "fuzz.sh: ${unbuilt[*]} did not build" >&2
  exit 1
fi
if [[ $crashed -ne 0 ]]; then
  echo "fuzz.sh: crashes found: minimize with '<target> -minimize_crash=1 -runs=100000 FILE'," \
       "keep the reproducer under tests/fuzz/crashes/<name>/ with a note" >&2
  exit 1
fi
