#!/usr/bin/env bash
# The size limits of STYLE.md on the product code (core, schema, keys, broker, agent,
# audit; not tests): no .cpp file over MAX_FILE_LINES lines, and no function over
# MAX_FUNCTION_LINES lines, measured by clang-tidy's readability-function-size (a lambda's
# lines count toward the function that holds it). Uses the GCC build's
# compile_commands.json, so the generated protobuf headers must have been built.
#   tests/guards/function_size.sh SOURCE_DIR BUILD_DIR [FILE...]
set -euo pipefail
src=$1
build=$2
shift 2
max_file_lines=900
max_function_lines=100
command -v clang-tidy >/dev/null || { echo "function size: clang-tidy is not installed; run deploy/install-deps.sh" >&2; exit 1; }
[[ -f "$build/compile_commands.json" ]] || { echo "function size: $build/compile_commands.json not found" >&2; exit 1; }
cd "$src"
if [[ $# -gt 0 ]]; then
  files=("$@")
else
  mapfile -t files < <(find core schema keys broker agent audit -name '*.cpp' 2>/dev/null | sort)
fi
[[ ${#files[@]} -gt 0 ]] || { echo "function size: no product sources found under $src" >&2; exit 1; }

failed=0
for f in "${files[@]}"; do
  n=$(wc -l <"$f")
  if ((n > max_file_lines)); then
    echo "function size: $f has $n lines (limit $max_file_lines): split it along a seam" >&2
    failed=1
  fi
done

config="{Checks: '-*,readability-function-size', CheckOptions: [{key: readability-function-size.LineThreshold, value: $max_function_lines}]}"
out=$(mktemp)
canary=$(mktemp --suffix=.cpp)
trap 'rm -f "$out" "$canary"' EXIT
# The canary: a function just over the limit must be flagged with this very configuration,
# or the check below would pass whatever the code does.
{
  echo 'int Canary(int x) {'
  for ((i = 0; i <= max_function_lines; i++)); do echo "  x += $i;"; done
  echo '  return x;'
  echo '}'
} >"$canary"
# (Output read whole: with pipefail, grep -q closing the pipe early would fail clang-tidy.)
canary_out=$(clang-tidy --quiet --config="$config" "$canary" -- -std=c++20 2>/dev/null || true)
if [[ "$canary_out" != *"exceeds recommended size"* ]]; then
  echo "function size: clang-tidy did not flag a function over $max_function_lines lines: the check is not working" >&2
  exit 1
fi
# Two files at a time (CI has two cores). clang-tidy's exit code is 0 on warnings: the
# verdict is read from its output.
printf '%s\n' "${files[@]}" |
  xargs -P2 -I{} sh -c 'clang-tidy --quiet -p "$1" --config="$2" "$3" 2>/dev/null || echo "$3: clang-tidy could not parse it" ' \
    sh "$build" "$config" {} >"$out" || true
if grep -E 'warning: function .* exceeds recommended size|could not parse' "$out" >&2; then
  grep -E 'lines including' "$out" >&2 || true
  failed=1
fi
if [[ $failed -ne 0 ]]; then
  echo "function size: over the limits above (functions: $max_function_lines lines, files: $max_file_lines)" >&2
  exit 1
fi
echo "function size: ${#files[@]} product files, every function within $max_function_lines lines, every file within $max_file_lines"
