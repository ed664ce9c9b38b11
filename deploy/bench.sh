#!/usr/bin/env bash
# refbus benchmarks: installs what is missing, builds with benchmarks on, and runs them.
# Not part of deploy/test.sh (they take minutes and measure, they do not assert).
#
#   deploy/bench.sh [--messages N] [--window W] [--rate R]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/deploy/install-deps.sh"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREFBUS_BUILD_BENCH=ON >/dev/null
cmake --build "$root/build" -j"$(nproc)" --target broker_bench refbus-broker
echo "== $(uname -srm); $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$root/build/bin/broker_bench" "$@"
