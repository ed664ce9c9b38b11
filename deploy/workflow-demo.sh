#!/usr/bin/env bash
# The field's referral paths across three regional brokers (Seoul, Busan, Central), each
# its own refbus-broker process with its own data and config, linked over CURVE
# ([federation] endpoint_files), and one refbus-agent daemon per agency, connected to its
# home broker only, driven with the refbus-agent CLI as caseworkers would. Called by
# deploy/demo.sh; runnable alone once built:
#
#   deploy/workflow-demo.sh BIN_DIR WORK_DIR
#
# The agencies are spread over the regions as in the field, so the paths cross brokers:
# a Seoul Wee center refers to a Busan counseling center, a Seoul police unit hands its
# case to a Busan support center and tasks the Central deletion center, the Busan
# counseling center asks the Central deletion center too, and withdrawals of consent reach
# Busan and Central and their purge confirmations come back. Each step prints what the
# agencies concerned see; at the end the auditor verifies every broker's audit log and
# every broker's status shows its links up with nothing left queued.
set -euo pipefail
bin=$1
work=$2
mkdir -p "$work"
demo_name="workflow demo"
# shellcheck source=deploy/demo-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/demo-lib.sh"

brokers=(seoul-broker busan-broker central-broker)
declare -A home=(
  [seoul-wee-01]=seoul-broker [seoul-police-03]=seoul-broker
  [busan-counsel-01]=busan-broker [busan-support]=busan-broker
  [central-dsc]=central-broker
)
agencies=(seoul-wee-01 seoul-police-03 busan-counsel-01 busan-support central-dsc)

cat >"$work/regions.toml" <<TOML
federation = "refbus-demo-regions"
authority = "demo-authority"
[[broker]]
id = "seoul-broker"
region = "seoul"
name = "Seoul regional broker"
[[broker]]
id = "busan-broker"
region = "busan"
name = "Busan regional broker"
[[broker]]
id = "central-broker"
region = "central"
name = "Central broker"
[[agency]]
id = "seoul-wee-01"
type = "wee-center"
name = "Seoul Gangnam Wee Center"
region = "seoul"
home_broker = "seoul-broker"
[[agency]]
id = "seoul-police-03"
type = "police-unit"
name = "Seoul Police, Women and Youth Unit 3"
region = "seoul"
home_broker = "seoul-broker"
[[agency]]
id = "busan-counsel-01"
type = "counseling-center"
name = "Busan Sexual Violence Counseling Center"
region = "busan"
home_broker = "busan-broker"
[[agency]]
id = "busan-support"
type = "support-center"
name = "Busan Sunflower Support Center"
region = "busan"
home_broker = "busan-broker"
[[agency]]
id = "central-dsc"
type = "deletion-center"
name = "Central Digital Sex Crime Deletion Support Center"
region = "central"
home_broker = "central-broker"
[[auditor]]
id = "audit-office"
name = "Federation audit office"
region = "central"
TOML
"$bin/refbus-keys" federation init --manifest "$work/regions.toml" --out "$work/fed" \
  >"$work/federation-init.log" || die "federation init failed (see $work/federation-init.log)"

demo_write_broker_configs
# The auditor names the witnesses it requires (each broker's log is cosigned by the other
# two; a log never counts as its own witness): verify needs one of them by default.
cat >"$work/fed/audit-office/auditor.toml" <<TOML
[verify]
witnesses = [ "seoul-broker", "busan-broker", "central-broker" ]
min_cosignatures = 1
TOML
demo_start_brokers
wait_links
for b in "${brokers[@]}"; do echo "  $b on ${endpoint[$b]}"; done
echo "  linked over CURVE in a full mesh, every link up; each broker checks every envelope"
echo "  against its consent grant, which travels with it from broker to broker"

demo_start_agents
for b in "${brokers[@]}"; do
  at=""
  for a in "${agencies[@]}"; do [[ ${home[$a]} == "$b" ]] && at+=" $a"; done
  echo "  agents homed at $b:$at"
done
echo "  each agent talks to its home broker only, with a local API on 127.0.0.1 behind a 0600 token"

expect_refusal() {
  local what=$1; shift
  set +e; out=$("$@" 2>&1); rc=$?; set -e
  [[ $rc -eq 1 ]] || die "$what was not refused (exit $rc): $out"
  echo "    refused: $what -> $(grep -m1 -o 'refbus-agent[^:]*: .*' <<<"$out" | cut -c1-150)"
}

printf '\n  -- Path 1: a Seoul Wee center refers a student to a Busan counseling center --\n'
r=$(ag seoul-wee-01 wee-teacher-kim consent --json --local-case WEE-2026-0042 \
  --basis consent-legal-representative --legal-article "PIPA 22-2" --consenter guardian --assent \
  --purpose counseling --category identity --category contact --category incident-summary \
  --recipient-type counseling-center --days 90)
grant1=$(jget "$r" grant_id); case1=$(jget "$r" case_ref)
echo "    seoul-wee-01 recorded the guardian's consent and the student's assent: grant ${grant1:0:12}..., case $case1"
printf 'identity:student=Student A, grade 8\nincident-summary:summary=Threatened after sharing images; needs counseling\n' \
  >"$work/referral-fields.txt"
expect_refusal "a health field the guardian did not consent to" \
  ag seoul-wee-01 wee-teacher-kim send-referral --grant "$grant1" --to busan-counsel-01 \
  --purpose counseling --field "health:diagnosis=withheld"
expect_refusal "a referral to the police under this consent" \
  ag seoul-wee-01 wee-teacher-kim send-referral --grant "$grant1" --to seoul-police-03 \
  --purpose counseling --fields-file "$work/referral-fields.txt"
r=$(ag seoul-wee-01 wee-teacher-kim send-referral --json --grant "$grant1" --to busan-counsel-01 \
  --purpose counseling --fields-file "$work/referral-fields.txt")
ref1=$(jget "$r" referral_id)
echo "    seoul-wee-01 sent referral ${ref1:0:12}... to busan-counsel-01 (seoul-broker relays it to busan-broker)"
wait_for busan-counsel-01 counselor-lee "referral" inbox
msg1=$(ag busan-counsel-01 counselor-lee inbox --json | grep -o '"message_id": *"[0-9a-f]*"' | head -1 | grep -o '[0-9a-f]\{32\}')
echo "    busan-counsel-01 inbox:"; ag busan-counsel-01 counselor-lee inbox | sed 's/^/      /'
echo "    busan-counsel-01 opens it (the access is recorded and the Wee center in Seoul is told):"
ag busan-counsel-01 counselor-lee open "$msg1" | sed 's/^/      /'
expect_refusal "completing a referral that was never accepted" \
  ag busan-counsel-01 counselor-lee state "$ref1" completed
ag busan-counsel-01 counselor-lee accept "$ref1" >/dev/null
ag busan-counsel-01 counselor-lee state "$ref1" in-progress >/dev/null
wait_for seoul-wee-01 wee-teacher-kim "in-progress" referrals
echo "    seoul-wee-01 sees:"; ag seoul-wee-01 wee-teacher-kim case WEE-2026-0042 | sed 's/^/      /'

printf '\n  -- Path 2: Seoul police hand the case to a Busan support center and task the Central deletion center --\n'
r=$(ag seoul-police-03 officer-park consent --json --local-case SPD-2026-118 \
  --basis police-notify-support-center --legal-article "Youth Sex Offense Act 38, 38-2" \
  --purpose counseling --purpose legal --purpose deletion \
  --category incident-summary --category investigation --category content-locations \
  --category deletion-status --recipient-type support-center --recipient-type deletion-center)
grant2=$(jget "$r" grant_id); case2=$(jget "$r" case_ref)
r=$(ag seoul-police-03 officer-park handoff --json --grant "$grant2" --to busan-support \
  --reason "victim support after the report; the family moved to Busan" \
  --field "investigation:case=SPD-2026-118")
hand2=$(jget "$r" handoff_id)
printf 'v1,https://video.example/watch/a1\nv2,https://video.example/watch/b2\nv3,https://forum.example/t/9913\n' \
  >"$work/items.txt"
r=$(ag seoul-police-03 officer-park request-deletion --json --grant "$grant2" --to central-dsc \
  --items-file "$work/items.txt" --report-to busan-support --monitor)
req2=$(jget "$r" request_id)
echo "    seoul-police-03: handoff ${hand2:0:12}... to busan-support, deletion request ${req2:0:12}... (3 items) to central-dsc"
wait_for busan-support sc-choi "${hand2:0:12}" case "$case2" --json
expect_refusal "the support center closing a case it does not lead yet" \
  ag busan-support sc-choi close "$case2" --reason "not yet"
ag busan-support sc-choi ack-handoff "$hand2" >/dev/null
wait_for seoul-police-03 officer-park '"lead": *"busan-support"' case SPD-2026-118 --json
echo "    the lead moved across regions: seoul-police-03 now sees lead = busan-support"

printf '\n  -- Path 3: the Central deletion center reports per-item status to Seoul and Busan --\n'
wait_for central-dsc dsc-han "${req2:0:12}" deletions --json
ag central-dsc dsc-han deletion-status "$req2" --item v1:received --item v2:received --item v3:received >/dev/null
ag central-dsc dsc-han deletion-status "$req2" --item v1:notified --item v2:removed --item v3:notified >/dev/null
ag central-dsc dsc-han deletion-status "$req2" --item v1:removed --item v3:reappeared >/dev/null
wait_for seoul-police-03 officer-park '"v3": "reappeared"' deletions --json
wait_for busan-support sc-choi '"v3": "reappeared"' deletions --json
echo "    seoul-police-03 sees:"; ag seoul-police-03 officer-park deletions | sed 's/^/      /'
echo "    busan-support sees:"; ag busan-support sc-choi deletions | sed 's/^/      /'

printf '\n  -- Path 4: the Busan counseling center refers onward and asks the Central deletion center to delete --\n'
r=$(ag busan-counsel-01 counselor-lee consent --json --case-ref "$case1" \
  --basis consent-legal-representative --consenter guardian --assent \
  --purpose legal --purpose psychological --purpose family --purpose deletion \
  --category identity --category incident-summary --category counseling-notes \
  --category content-locations --category deletion-status \
  --recipient busan-support --recipient central-dsc)
grant4=$(jget "$r" grant_id)
for p in legal psychological family; do
  ag busan-counsel-01 counselor-lee send-referral --grant "$grant4" --to busan-support \
    --purpose "$p" --field "counseling-notes:notes=assessment summary for $p support" >/dev/null
done
printf 'w1,https://share.example/f/77a\nw2,https://chat.example/m/5120\n' >"$work/items-student.txt"
r=$(ag busan-counsel-01 counselor-lee request-deletion --json --grant "$grant4" --to central-dsc \
  --items-file "$work/items-student.txt")
req4=$(jget "$r" request_id)
echo "    busan-counsel-01: three referrals to busan-support (same region), deletion request ${req4:0:12}... (2 items) to central-dsc"
wait_for busan-support sc-choi "family" referrals
echo "    busan-support sees:"; ag busan-support sc-choi referrals | sed 's/^/      /'
wait_for central-dsc dsc-han "${req4:0:12}" deletions --json
ag central-dsc dsc-han deletion-status "$req4" --item w1:received --item w2:received >/dev/null
ag central-dsc dsc-han deletion-status "$req4" --item w1:removed --item w2:notified >/dev/null
wait_for busan-counsel-01 counselor-lee '"w2": "notified"' deletions --json
echo "    busan-counsel-01 sees central-dsc's report:"; ag busan-counsel-01 counselor-lee deletions | sed 's/^/      /'

printf '\n  -- Path 5: the guardian withdraws both consents; Busan and Central purge and confirm --\n'
ag seoul-wee-01 wee-teacher-kim revoke-consent "$grant1" --reason withdrawn-by-guardian | sed 's/^/    /'
ag busan-counsel-01 counselor-lee revoke-consent "$grant4" --reason withdrawn-by-guardian | sed 's/^/    /'
wait_for seoul-wee-01 wee-teacher-kim "busan-counsel-01" case WEE-2026-0042 --json
wait_for seoul-wee-01 wee-teacher-kim "\"messages_purged\"" case WEE-2026-0042 --json
for a in busan-support central-dsc; do
  wait_for busan-counsel-01 counselor-lee "agency=$a  grant_id=$grant4  messages_purged" case "$case1"
done
expect_refusal "opening the purged referral at the Busan counseling center" \
  ag busan-counsel-01 counselor-lee open "$msg1"
expect_refusal "a new referral from Seoul under the withdrawn consent" \
  ag seoul-wee-01 wee-teacher-kim send-referral --grant "$grant1" --to busan-counsel-01 \
  --purpose counseling --fields-file "$work/referral-fields.txt"
expect_refusal "a new deletion request from Busan under the withdrawn consent" \
  ag busan-counsel-01 counselor-lee request-deletion --grant "$grant4" --to central-dsc \
  --item "w3,https://share.example/f/88b"
echo "    seoul-wee-01 sees (purge confirmation from busan-counsel-01, referral withdrawn):"
ag seoul-wee-01 wee-teacher-kim case WEE-2026-0042 | sed 's/^/      /'
echo "    busan-counsel-01 sees (its own purge, and confirmations from busan-support and central-dsc):"
ag busan-counsel-01 counselor-lee case "$case1" | grep -A2 'purge_confirmations (' | sed 's/^/      /'
ag busan-counsel-01 counselor-lee case "$case1" | grep 'event=purged' | sed 's/^ */        /'

printf '\n  -- Path 6: the Busan support center, now the lead, closes the Seoul police case --\n'
ag busan-support sc-choi close "$case2" --reason "support completed" | sed 's/^/    /'
wait_for seoul-police-03 officer-park '"closed": *true' case SPD-2026-118 --json
wait_for central-dsc dsc-han '"closed": *true' case "$case2" --json
echo "    seoul-police-03 (Seoul) and central-dsc (Central) see the case closed"

printf '\n  -- The auditor fetches and verifies each broker'"'"'s audit log --\n'
demo_audit_all audit-office
echo "    everything that happened to the Wee center's case ($case1), as each broker's log records it:"
for b in "${brokers[@]}"; do
  echo "      at $b:"
  "$bin/refbus-audit" case "$case1" --store "$work/audit-office-store/$b" | sed 's/^/        /'
done

printf '\n  -- The brokers'"'"' status: links up, nothing left queued --\n'
wait_links
for b in "${brokers[@]}"; do
  "$bin/refbus-broker" -c "$work/fed/$b/broker.toml" --status | sed 's/^/    /'
done

# REFBUS_DEMO_CONSOLE=1 (deploy/demo.sh --console): keep the federation running and give
# each agency's console a first-login account, made as the agency's administrator would.
if [[ ${REFBUS_DEMO_CONSOLE:-0} == 1 ]]; then
  declare -A person=(
    [seoul-wee-01]=kim-teacher [seoul-police-03]=park-officer [busan-counsel-01]=lee-counselor
    [busan-support]=choi-support [central-dsc]=jung-dsc
  )
  printf '\n== The agencies'"'"' consoles (browser on this machine; Ctrl-C stops the federation)\n'
  for a in "${agencies[@]}"; do
    pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    printf '%s\n' "$pw" | "$bin/refbus-agent" operator add "${person[$a]}" --role caseworker \
      -c "$work/fed/$a/agent.toml" >/dev/null || die "operator add ${person[$a]} at $a failed"
    printf '  %-17s %s/console/   operator %-13s password %s\n' "$a" \
      "$(cat "$work/fed/$a/agent-data/api.url")" "${person[$a]}" "$pw"
  done
  echo "  (passwords are shown once; change one with: refbus-agent operator passwd NAME -c AGENT.toml)"
  echo "  running until Ctrl-C; logs in $work/*.log"
  while true; do sleep 3600; done  # in the foreground: Ctrl-C ends it, and the EXIT trap stops the daemons
fi

demo_stop_all
echo "  all daemons stopped cleanly; logs in $work/*.log"
