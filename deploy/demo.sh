#!/usr/bin/env bash
# refbus demo: installs what is missing, builds, and runs the main job.
#
# The main job: the key ceremony of a small federation (an authority, brokers for three
# regions, one agency of each type, an auditor); a party holding only public material
# verifies the signed directory and prints it, a tampered copy is refused, and an old
# directory is refused as a rollback; then the field's referral paths run across three
# federated regional brokers (Seoul, Busan, Central) with one refbus-agent daemon per
# agency, each at its home broker (deploy/workflow-demo.sh); then linkage (issue 19): the
# Incheon, Seoul and Busan support centers enter the identifiers their cases hold, two
# evaluator brokers turn them into pseudonyms no single party can compute, and the Central
# center's matching escrow finds exactly the ones shared and tells each center; each center
# signs a tally of its victims and deletion items about the shared video, the lead center
# builds the joint evidence bundle and refbus-audit check-bundle verifies it (and refuses a
# tally edited by one byte) (deploy/linkage-demo.sh).
#
#   deploy/demo.sh [--work DIR] [--console]
#     --work DIR   default: build/demo; wiped at start, kept at the end
#     --console    after the paths, keep the federation running and print each agency's
#                  console address and a first-login account, until Ctrl-C
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work="$root/build/demo"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --work) work=$2; shift 2 ;;
    --console) export REFBUS_DEMO_CONSOLE=1; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

"$root/deploy/install-deps.sh"
echo "== Building refbus"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build" -j"$(nproc)" --target refbus-keys refbus-broker refbus-agent refbus-audit >/dev/null
bin="$root/build/bin"
keys="$bin/refbus-keys"

rm -rf "$work"
mkdir -p "$work"
"$root/deploy/ceremony.sh" "$bin" "$work"

printf '\n== 5. A newcomer holding only public material verifies the directory\n'
observer="$work/observer"
mkdir -p "$observer"
cp "$work/exchange/authority.pub" "$work/exchange/directory" "$observer/"
ls "$observer"
"$keys" directory verify "$observer/directory" --anchor "$observer/authority.pub" \
  --state "$observer/trust-state"

printf '\n== 6. A tampered copy is refused\n'
cp "$observer/directory" "$observer/directory.tampered"
# Someone edits a listing in transit: the Wee center's name, same length, nothing else.
perl -0777 -pi -e 's/Gangnam Wee/Gangbuk Wee/' "$observer/directory.tampered"
cmp -s "$observer/directory" "$observer/directory.tampered" && { echo "demo: tampering failed" >&2; exit 1; }
echo "  (edited: 'Seoul Gangnam Wee Center' -> 'Seoul Gangbuk Wee Center')"
set +e
"$keys" directory verify "$observer/directory.tampered" --anchor "$observer/authority.pub"
rc=$?
set -e
if [[ $rc -ne 3 ]]; then echo "demo: the tampered directory was not refused (exit $rc)" >&2; exit 1; fi
echo "  -> refused (exit code $rc)"

printf '\n== 7. The Wee center rotates its prekey; the authority issues serial 2\n'
"$keys" party rotate-prekey --dir "$work/parties/seoul-wee-01" >/dev/null
cp "$work/parties/seoul-wee-01/seoul-wee-01.record" "$work/exchange/"
cp "$work/exchange/directory" "$work/exchange/directory.serial-1"
"$keys" directory issue --authority-dir "$work/authority" \
  --passphrase-file "$work/authority.passphrase" \
  --add "$work/exchange/seoul-wee-01.record" --out "$work/exchange/directory"
cp "$work/exchange/directory" "$observer/directory"
"$keys" directory verify "$observer/directory" --anchor "$observer/authority.pub" \
  --state "$observer/trust-state" >"$observer/verify-serial-2.txt"
head -2 "$observer/verify-serial-2.txt"

for p in "$work"/parties/*/; do
  cp "$work/exchange/directory" "$p/directory"
  "$keys" directory verify "$p/directory" --anchor "$p/authority.pub" --state "$p/trust-state" \
    >/dev/null
done
echo "  serial 2 distributed to and verified by every party"

printf '\n== 8. Someone replays the old serial 1: refused as a rollback\n'
set +e
"$keys" directory verify "$work/exchange/directory.serial-1" --anchor "$observer/authority.pub" \
  --state "$observer/trust-state"
rc=$?
set -e
if [[ $rc -ne 3 ]]; then echo "demo: the old directory was not refused (exit $rc)" >&2; exit 1; fi
echo "  -> refused (exit code $rc)"

printf '\n== 9. The field paths across three regions: referrals, handoffs, deletion, withdrawal, closing\n'
"$root/deploy/workflow-demo.sh" "$bin" "$work/workflows"

"$root/deploy/linkage-demo.sh" "$bin" "$work/linkage"

printf '\n== Summary\n'
echo "  parties: $(ls -d "$work"/parties/*/ | wc -l), each with its own identity.key (mode 0600)"
echo "  exchanged between parties: $(ls "$work/exchange" | tr '\n' ' ')"
echo "  directory: serial 2 verified; tampered copy and rollback refused"
echo "  workflows: six field paths across five agency daemons and three federated brokers"
echo "             (Seoul, Busan, Central), every refusal shown above, each broker's audit log"
echo "             verified; logs in $work/workflows"
echo "  linkage: three centers' identifiers, typed differently, matched at the Central center's"
echo "           escrow through two evaluator brokers: exactly the four shared ones, a notice at"
echo "           each center, unrelated ones unmatched; the joint evidence bundle of three"
echo "           centers' tallies verified (15 victims, 10,744 deletion items), an edited one"
echo "           refused; logs in $work/linkage"
echo "  data left in: $work"
