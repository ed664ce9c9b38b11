#!/usr/bin/env bash
# The clang checks of the product code (core, schema, keys, linkage, broker, agent, audit; not
# tests), by clang-tidy:
#   - STYLE.md's size limits: no .cpp file over MAX_FILE_LINES lines, and no function over
#     MAX_FUNCTION_LINES lines (readability-function-size; a lambda's lines count toward
#     the function that holds it);
#   - clang's thread-safety analysis of the GUARDED_BY/REQUIRES/EXCLUDES annotations
#     (core/mutex.h): a guarded member read without its mutex, a REQUIRES function called
#     without it, or a lock taken twice is a finding, with its line.
# Uses the GCC build's compile_commands.json (its include paths and definitions), so the
# generated protobuf headers must have been built. The build compiles in unity batches of
# eight files (CMAKE_UNITY_BUILD; deploy/test.sh), and so does this check: one parse of each
# batch, with the product .cpp files it includes reported as if each were the main file
# (--header-filter). That is about a third of the CPU of parsing each file alone (a batch of
# agent/ took 8.8 s of user time, its eight files one by one 30 s), and it checks exactly the
# units the build compiles. REFBUS_CLANG_CHECKS_PER_FILE=1 parses each file alone instead
# (unity_commands.py gives it its batch's command), which also shows a file that compiles
# only inside its batch because another file there includes what it uses. Two canaries
# first prove that each check can fail with these very settings, through a batch.
#   tests/guards/clang_checks.sh SOURCE_DIR BUILD_DIR [FILE...]
set -euo pipefail
src=$1
build=$2
shift 2
max_file_lines=900
max_function_lines=100
command -v clang-tidy >/dev/null || { echo "clang checks: clang-tidy is not installed; run deploy/install-deps.sh" >&2; exit 1; }
[[ -f "$build/compile_commands.json" ]] || { echo "clang checks: $build/compile_commands.json not found" >&2; exit 1; }
cd "$src"
if [[ $# -gt 0 ]]; then
  files=("$@")
else
  mapfile -t files < <(find core schema keys linkage broker agent audit -name '*.cpp' 2>/dev/null | sort)
fi
[[ ${#files[@]} -gt 0 ]] || { echo "clang checks: no product sources found under $src" >&2; exit 1; }

failed=0
for f in "${files[@]}"; do
  n=$(wc -l <"$f")
  if ((n > max_file_lines)); then
    echo "function size: $f has $n lines (limit $max_file_lines): split it along a seam" >&2
    failed=1
  fi
done

config="{Checks: '-*,readability-function-size,clang-diagnostic-thread-safety*', CheckOptions: [{key: readability-function-size.LineThreshold, value: $max_function_lines}]}"
# As warnings even under the build's -Werror: a finding is reported as a finding (read from the
# output below), not as a file clang-tidy could not parse.
extra=(--extra-arg=-Wthread-safety --extra-arg=-Wno-error=thread-safety)
out=$(mktemp)
canary=$(mktemp --suffix=.cpp)
db=$(mktemp -d)
trap 'rm -rf "$out" "$canary" "$db"' EXIT
python3 "$(dirname "${BASH_SOURCE[0]}")/unity_commands.py" "$build/compile_commands.json" >"$db/compile_commands.json" ||
  { echo "clang checks: cannot read $build/compile_commands.json" >&2; exit 1; }
# The canaries: a function just over the limit, and a guarded read without the lock, must
# both be flagged in a file that a batch includes, or the run below would pass whatever the
# code does.
{
  echo '#include "core/mutex.h"'
  echo 'struct Canary { refbus::Mutex mu; int x GUARDED_BY(mu) = 0; int Read() { return x; } };'
  echo 'int Long(int x) {'
  for ((i = 0; i <= max_function_lines; i++)); do echo "  x += $i;"; done
  echo '  return x;'
  echo '}'
} >"$db/canary.cpp"
echo "#include \"$db/canary.cpp\"" >"$canary"
# A regular expression that matches exactly the given paths.
exactly() { printf '%s\n' "$@" | sed 's/[][\.*^$+?(){}|]/\\&/g' | paste -sd'|' | sed 's/.*/^(&)$/'; }
# (Output read whole: with pipefail, grep -q closing the pipe early would fail clang-tidy.)
canary_out=$(clang-tidy --quiet --config="$config" --header-filter="$(exactly "$db/canary.cpp")" "${extra[@]}" "$canary" -- -std=c++20 -I"$src" 2>/dev/null || true)
if [[ "$canary_out" != *"canary.cpp:"*"exceeds recommended size"* ]]; then
  echo "function size: clang-tidy did not flag a function over $max_function_lines lines: the check is not working" >&2
  exit 1
fi
if [[ "$canary_out" != *"requires holding mutex"* ]]; then
  echo "thread-safety: clang-tidy did not flag an unguarded read of a GUARDED_BY member: the analysis is not on" >&2
  exit 1
fi
abs=()
for f in "${files[@]}"; do abs+=("$(realpath "$f")"); done
if [[ "${REFBUS_CLANG_CHECKS_PER_FILE:-0}" == 1 ]]; then
  units=("${abs[@]}")
else
  mapfile -t units < <(python3 "$(dirname "${BASH_SOURCE[0]}")/unity_commands.py" --units "$build/compile_commands.json" "${abs[@]}")
fi
filter=$(exactly "${abs[@]}")
# Two parses at a time (CI has two cores). clang-tidy's exit code is 0 on warnings: the
# verdict is read from its output.
printf '%s\n' "${units[@]}" |
  xargs -P2 -I{} sh -c 'clang-tidy --quiet -p "$1" --config="$2" --header-filter="$3" "$4" "$5" "$6" 2>/dev/null || echo "$6: clang-tidy could not parse it" ' \
    sh "$db" "$config" "$filter" "${extra[0]}" "${extra[1]}" {} >"$out" || true
if grep -E 'could not parse' "$out" >&2; then
  echo "clang checks: the files above did not parse with the build's flags (errors above)" >&2
  grep -E ': error:' "$out" >&2 || true
  failed=1
fi
if grep -E 'warning: function .* exceeds recommended size' "$out" >&2; then
  grep -E 'lines including' "$out" >&2 || true
  echo "function size: over the limits above (functions: $max_function_lines lines, files: $max_file_lines)" >&2
  failed=1
fi
if grep -E -A3 '\[clang-diagnostic-thread-safety' "$out" >&2; then
  echo "thread-safety: the findings above break the locking annotations (core/mutex.h)" >&2
  failed=1
fi
if [[ $failed -ne 0 ]]; then exit 1; fi
echo "clang checks: ${#files[@]} product files in ${#units[@]} parses; every function within $max_function_lines lines, every file within $max_file_lines; no thread-safety finding"
