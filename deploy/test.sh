#!/usr/bin/env bash
# refbus tests: installs what is missing, configures, builds, runs every test via ctest.
#
#   deploy/test.sh [--sanitize address|thread] [-L LABEL] [-E TEST_REGEX]
#
# Build trees: build/ (default), build-asan/ or build-tsan/; the fuzz smoke test makes its
# own clang tree next to it (build-fuzz/). Exits non-zero if anything fails.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sanitize=""
ctest_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --sanitize) sanitize=$2; shift 2 ;;
    -L) ctest_args+=(-L "$2"); shift 2 ;;
    -E) ctest_args+=(-E "$2"); shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$sanitize" in
  "") build="$root/build" ;;
  address) build="$root/build-asan" ;;
  thread) build="$root/build-tsan" ;;
  *) echo "test.sh: --sanitize takes 'address' or 'thread'" >&2; exit 2 ;;
esac

# Sanitizer reports stop the process that has one (tests and the brokers and agents they
# start inherit these). ThreadSanitizer: the libraries Debian ships are not instrumented,
# so it cannot see how they synchronize; ignore_noninstrumented_modules=1 leaves out the
# memory accesses of their intercepted calls (libzmq's read() into a message buffer on its
# I/O thread, protobuf's memcpy out of it on ours), which refbus's own accesses are still
# checked against. Without it every byte of every received frame is a (suppressed) report,
# and large frames take TSan minutes each. tests/tsan.supp suppresses what is left inside
# libzmq, each entry with its reason; history_size=7 lets reports name libzmq's frames.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:history_size=7:ignore_noninstrumented_modules=1:suppressions=$root/tests/tsan.supp}"

"$root/deploy/install-deps.sh"
# Line tables only (-g1) in the suite's trees: the same code as -g (debug information does not
# change code generation), symbolized backtraces and sanitizer reports, and a quarter less
# compile time on CI's two cores. Packages for release are built with full -g (deploy/README.md).
# Every tree compiles in unity batches (CMAKE_UNITY_BUILD; eight files a unit): about half the
# compiler time (six agent/engine_*.cpp files under ASan: 128 s of CPU one by one, 62 s as one
# unit). The clang checks (tests/guards) still parse every product file alone, with its batch's
# flags, so a file that only compiles inside its batch is found there.
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREFBUS_SANITIZE="$sanitize" \
  -DCMAKE_UNITY_BUILD=ON -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG"
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" --output-on-failure -j2 "${ctest_args[@]}"
