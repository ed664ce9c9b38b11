#!/usr/bin/env bash
# Clang's thread-safety analysis over the product code that uses refbus::Mutex
# (core/mutex.h): every translation unit that includes core/mutex.h, directly or through a
# header of ours, is compiled by clang with -fsyntax-only -Wthread-safety (as an error),
# with the include paths and definitions the GCC build used (compile_commands.json).
# A GUARDED_BY member read without its mutex, a REQUIRES function called without it, or a
# lock taken twice fails the check and names the line.
#   tests/guards/thread_safety.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1
build=$2
db="$build/compile_commands.json"
command -v clang++ >/dev/null || { echo "thread-safety: clang++ is not installed; run deploy/install-deps.sh" >&2; exit 1; }
command -v jq >/dev/null || { echo "thread-safety: jq is not installed; run deploy/install-deps.sh" >&2; exit 1; }
[[ -f "$db" ]] || { echo "thread-safety: $db not found (configure the build first)" >&2; exit 1; }
cd "$src"
layers=(core schema keys broker agent audit)

# Headers of ours that bring in core/mutex.h, to a fixed point.
declare -A users=([core/mutex.h]=1)
changed=1
while [[ $changed -eq 1 ]]; do
  changed=0
  while IFS= read -r h; do
    [[ -n "${users[$h]:-}" ]] && continue
    for u in "${!users[@]}"; do
      if grep -q "#include \"$u\"" "$h"; then users[$h]=1; changed=1; break; fi
    done
  done < <(find "${layers[@]}" -name '*.h' 2>/dev/null | sort)
done

files=()
while IFS= read -r f; do
  for u in "${!users[@]}"; do
    if grep -q "#include \"$u\"" "$f"; then files+=("$f"); break; fi
  done
done < <(find "${layers[@]}" -name '*.cpp' 2>/dev/null | sort)
if [[ ${#files[@]} -eq 0 ]]; then
  echo "thread-safety: no translation unit includes core/mutex.h: nothing would be checked" >&2
  exit 1
fi

# The canary: a guarded read without the lock must fail with these very flags, or the check
# below would pass whatever the code does.
canary=$(mktemp --suffix=.cpp)
trap 'rm -f "$canary"' EXIT
cat >"$canary" <<'CPP'
#include "core/mutex.h"
struct Canary {
  refbus::Mutex mu;
  int x GUARDED_BY(mu) = 0;
  int Read() { return x; }
};
CPP
if clang++ -std=c++20 -I"$src" -fsyntax-only -Wno-everything -Wthread-safety -Werror=thread-safety \
    "$canary" 2>/dev/null; then
  echo "thread-safety: clang accepted an unguarded read of a GUARDED_BY member: the analysis is not on" >&2
  exit 1
fi

failed=0
for f in "${files[@]}"; do
  abs="$src/$f"
  entry=$(jq -c --arg f "$abs" 'map(select(.file == $f)) | first // empty' "$db")
  if [[ -z "$entry" ]]; then
    echo "thread-safety: $f is not in $db (not built by any target?)" >&2
    failed=1
    continue
  fi
  dir=$(jq -r '.directory' <<<"$entry")
  # The GCC command line, less the compiler, the output and GCC's own warning switches.
  mapfile -t args < <(jq -r '.command' <<<"$entry" | tr ' ' '\n' | sed '/^$/d')
  flags=()
  skip=0
  for ((i = 1; i < ${#args[@]}; i++)); do
    a=${args[i]}
    if [[ $skip -eq 1 ]]; then skip=0; continue; fi
    case "$a" in
      -o|-MF|-MT|-MQ) skip=1 ;;
      -c|-MD|-MMD|-W*|-fdiagnostics-color=*|"$abs") ;;
      *) flags+=("$a") ;;
    esac
  done
  if ! (cd "$dir" && clang++ "${flags[@]}" -fsyntax-only -Wno-everything -Wthread-safety \
          -Werror=thread-safety "$abs"); then
    echo "thread-safety: $f fails the analysis" >&2
    failed=1
  fi
done
if [[ $failed -ne 0 ]]; then exit 1; fi
echo "thread-safety: ${#files[@]} translation units checked, no findings: ${files[*]}"
