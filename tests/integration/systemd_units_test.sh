#!/usr/bin/env bash
# The systemd units in deploy/systemd: `systemd-analyze verify` accepts them (pointed at
# the binaries of this build), and their sandboxing keeps the exposure score at or below
# the README's figure.
#   tests/integration/systemd_units_test.sh SOURCE_DIR BIN_DIR
set -euo pipefail
src=$1
bin=$2
max_exposure=2.0
command -v systemd-analyze >/dev/null ||
  { echo "FAIL - systemd-analyze is not installed (deploy/install-deps.sh installs systemd)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for unit in "$src"/deploy/systemd/*.service; do
  name=$(basename "$unit")
  sed "s#/usr/bin/refbus-#$bin/refbus-#" "$unit" >"$work/$name"
  if ! out=$(systemd-analyze verify --man=no "$work/$name" 2>&1) || [[ -n "$out" ]]; then
    echo "FAIL - systemd-analyze verify $name:"; echo "$out"; exit 1
  fi
  score=$(systemd-analyze security --offline=yes "$work/$name" 2>&1 |
    sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  [[ -n "$score" ]] || { echo "FAIL - no exposure score for $name"; exit 1; }
  awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s <= m) }' ||
    { echo "FAIL - $name exposure $score is above $max_exposure"; exit 1; }
  echo "ok - $name verifies; exposure $score"
done
