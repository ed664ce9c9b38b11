#!/usr/bin/env bash
# The field's referral paths through one regional broker and one refbus-agent daemon per
# agency, driven with the refbus-agent CLI as caseworkers would. Called by deploy/demo.sh;
# runnable alone once built:
#
#   deploy/workflow-demo.sh BIN_DIR WORK_DIR
#
# Until brokers route between regions (issue 6), every agency here is homed at the Seoul
# broker. Each step prints what the agencies concerned see.
set -euo pipefail
bin=$1
work=$2
mkdir -p "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
die() { echo "workflow demo: $*" >&2; exit 1; }

cat >"$work/seoul-region.toml" <<TOML
federation = "refbus-demo-seoul"
authority = "demo-authority"
[[broker]]
id = "seoul-broker"
region = "seoul"
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
id = "seoul-counsel-01"
type = "counseling-center"
name = "Seoul Youth Counseling Center"
region = "seoul"
home_broker = "seoul-broker"
[[agency]]
id = "seoul-dsc"
type = "deletion-center"
name = "Digital Sex Crime Deletion Support (Seoul desk)"
region = "seoul"
home_broker = "seoul-broker"
[[agency]]
id = "seoul-support"
type = "support-center"
name = "Seoul Sunflower Support Center"
region = "seoul"
home_broker = "seoul-broker"
[[auditor]]
id = "audit-office"
name = "Federation audit office"
region = "seoul"
TOML
"$bin/refbus-keys" federation init --manifest "$work/seoul-region.toml" --out "$work/fed" \
  >"$work/federation-init.log" || die "federation init failed (see $work/federation-init.log)"

b="$work/fed/seoul-broker"
cat >"$b/broker.toml" <<TOML
[broker]
id = "seoul-broker"
bind = "tcp://127.0.0.1:*"
data_dir = "data"
key_file = "identity.key"
directory = "directory"
anchor = "authority.pub"
trust_state = "trust-state"
endpoint_file = "endpoint"
TOML
"$bin/refbus-broker" -c "$b/broker.toml" >"$work/seoul-broker.log" 2>&1 &
broker_pid=$!
pids+=("$broker_pid")
for _ in $(seq 200); do [[ -s "$b/endpoint" ]] && break; sleep 0.05; done
[[ -s "$b/endpoint" ]] || die "the broker did not start (see $work/seoul-broker.log)"
endpoint=$(cat "$b/endpoint")
echo "  seoul-broker on $endpoint (consent enforced: no envelope without a registered grant)"

agencies=(seoul-wee-01 seoul-police-03 seoul-counsel-01 seoul-dsc seoul-support)
for a in "${agencies[@]}"; do
  d="$work/fed/$a"
  cat >"$d/agent.toml" <<TOML
[agent]
id = "$a"
data_dir = "agent-data"
key_file = "identity.key"
directory = "directory"
anchor = "authority.pub"
trust_state = "agent-trust-state"
broker_endpoint = "$endpoint"
[api]
listen = "127.0.0.1:0"
TOML
  "$bin/refbus-agent" run -c "$d/agent.toml" >"$work/$a.log" 2>&1 &
  pids+=("$!")
done
for a in "${agencies[@]}"; do
  for _ in $(seq 200); do
    "$bin/refbus-agent" status -c "$work/fed/$a/agent.toml" --json 2>/dev/null |
      grep -q '"session_ready": *true' && break
    sleep 0.05
  done
done
echo "  agents up, each with a local API on 127.0.0.1 behind a 0600 token: ${agencies[*]}"

# ag AGENCY OPERATOR COMMAND...: the CLI against that agency's daemon.
ag() { local a=$1 op=$2; shift 2; REFBUS_OPERATOR=$op "$bin/refbus-agent" "$@" -c "$work/fed/$a/agent.toml"; }
# jget JSON KEY: a top-level string field of a one-object JSON reply.
jget() { sed -n "s/.*\"$2\": *\"\\([^\"]*\\)\".*/\\1/p" <<<"$1" | head -1; }
# wait_for AGENCY OPERATOR PATTERN COMMAND...: until the command's output matches.
wait_for() {
  local a=$1 op=$2 pat=$3; shift 3
  for _ in $(seq 200); do ag "$a" "$op" "$@" 2>/dev/null | grep -q -- "$pat" && return 0; sleep 0.05; done
  die "$a never saw '$pat' in '$*'"
}
expect_refusal() {
  local what=$1; shift
  set +e; out=$("$@" 2>&1); rc=$?; set -e
  [[ $rc -eq 1 ]] || die "$what was not refused (exit $rc): $out"
  echo "    refused: $what -> $(grep -m1 -o 'refbus-agent[^:]*: .*' <<<"$out" | cut -c1-150)"
}

printf '\n  -- Path 1: a Wee center refers a student to a counseling center --\n'
r=$(ag seoul-wee-01 wee-teacher-kim consent --json --local-case WEE-2026-0042 \
  --basis consent-legal-representative --legal-article "PIPA 22-2" --consenter guardian --assent \
  --purpose counseling --category identity --category contact --category incident-summary \
  --recipient-type counseling-center --days 90)
grant1=$(jget "$r" grant_id); case1=$(jget "$r" case_ref)
echo "    seoul-wee-01 recorded the guardian's consent and the student's assent: grant ${grant1:0:12}..., case $case1"
printf 'identity:student=Student A, grade 8\nincident-summary:summary=Threatened after sharing images; needs counseling\n' \
  >"$work/referral-fields.txt"
expect_refusal "a health field the guardian did not consent to" \
  ag seoul-wee-01 wee-teacher-kim send-referral --grant "$grant1" --to seoul-counsel-01 \
  --purpose counseling --field "health:diagnosis=withheld"
expect_refusal "a referral to the police under this consent" \
  ag seoul-wee-01 wee-teacher-kim send-referral --grant "$grant1" --to seoul-police-03 \
  --purpose counseling --fields-file "$work/referral-fields.txt"
r=$(ag seoul-wee-01 wee-teacher-kim send-referral --json --grant "$grant1" --to seoul-counsel-01 \
  --purpose counseling --fields-file "$work/referral-fields.txt")
ref1=$(jget "$r" referral_id)
echo "    seoul-wee-01 sent referral ${ref1:0:12}... to seoul-counsel-01"
wait_for seoul-counsel-01 counselor-lee "referral" inbox
msg1=$(ag seoul-counsel-01 counselor-lee inbox --json | grep -o '"message_id": *"[0-9a-f]*"' | head -1 | grep -o '[0-9a-f]\{32\}')
echo "    seoul-counsel-01 inbox:"; ag seoul-counsel-01 counselor-lee inbox | sed 's/^/      /'
echo "    seoul-counsel-01 opens it (the access is recorded and the Wee center is told):"
ag seoul-counsel-01 counselor-lee open "$msg1" | sed 's/^/      /'
expect_refusal "completing a referral that was never accepted" \
  ag seoul-counsel-01 counselor-lee state "$ref1" completed
ag seoul-counsel-01 counselor-lee accept "$ref1" >/dev/null
ag seoul-counsel-01 counselor-lee state "$ref1" in-progress >/dev/null
wait_for seoul-wee-01 wee-teacher-kim "in-progress" referrals
echo "    seoul-wee-01 sees:"; ag seoul-wee-01 wee-teacher-kim case WEE-2026-0042 | sed 's/^/      /'

printf '\n  -- Path 2: police hand the case to a support center and task the deletion center --\n'
r=$(ag seoul-police-03 officer-park consent --json --local-case SPD-2026-118 \
  --basis police-notify-support-center --legal-article "Youth Sex Offense Act 38, 38-2" \
  --purpose counseling --purpose legal --purpose deletion \
  --category incident-summary --category investigation --category content-locations \
  --category deletion-status --recipient-type support-center --recipient-type deletion-center)
grant2=$(jget "$r" grant_id); case2=$(jget "$r" case_ref)
r=$(ag seoul-police-03 officer-park handoff --json --grant "$grant2" --to seoul-support \
  --reason "victim support after the report" --field "investigation:case=SPD-2026-118")
hand2=$(jget "$r" handoff_id)
printf 'v1,https://video.example/watch/a1\nv2,https://video.example/watch/b2\nv3,https://forum.example/t/9913\n' \
  >"$work/items.txt"
r=$(ag seoul-police-03 officer-park request-deletion --json --grant "$grant2" --to seoul-dsc \
  --items-file "$work/items.txt" --report-to seoul-support --monitor)
req2=$(jget "$r" request_id)
echo "    seoul-police-03: handoff ${hand2:0:12}... to seoul-support, deletion request ${req2:0:12}... (3 items) to seoul-dsc"
wait_for seoul-support sc-choi "${hand2:0:12}" case "$case2" --json
expect_refusal "the support center closing a case it does not lead yet" \
  ag seoul-support sc-choi close "$case2" --reason "not yet"
ag seoul-support sc-choi ack-handoff "$hand2" >/dev/null
wait_for seoul-police-03 officer-park '"lead": *"seoul-support"' case SPD-2026-118 --json
echo "    the lead moved: seoul-police-03 now sees lead = seoul-support"

printf '\n  -- Path 3: the deletion center reports per-item status --\n'
wait_for seoul-dsc dsc-han "${req2:0:12}" deletions --json
ag seoul-dsc dsc-han deletion-status "$req2" --item v1:received --item v2:received --item v3:received >/dev/null
ag seoul-dsc dsc-han deletion-status "$req2" --item v1:notified --item v2:removed --item v3:notified >/dev/null
ag seoul-dsc dsc-han deletion-status "$req2" --item v1:removed --item v3:reappeared >/dev/null
wait_for seoul-police-03 officer-park '"report_seq": *3' deletions --json
wait_for seoul-support sc-choi '"report_seq": *3' deletions --json
echo "    seoul-police-03 sees:"; ag seoul-police-03 officer-park deletions | sed 's/^/      /'
echo "    seoul-support sees:"; ag seoul-support sc-choi deletions | sed 's/^/      /'

printf '\n  -- Path 4: the counseling center refers onward (legal, psychological, family) --\n'
r=$(ag seoul-counsel-01 counselor-lee consent --json --basis consent-legal-representative \
  --consenter guardian --assent --purpose legal --purpose psychological --purpose family \
  --category identity --category incident-summary --category counseling-notes \
  --recipient seoul-support)
grant4=$(jget "$r" grant_id)
for p in legal psychological family; do
  ag seoul-counsel-01 counselor-lee send-referral --grant "$grant4" --to seoul-support \
    --purpose "$p" --field "counseling-notes:notes=assessment summary for $p support" >/dev/null
done
wait_for seoul-support sc-choi "family" referrals
echo "    seoul-support sees:"; ag seoul-support sc-choi referrals | sed 's/^/      /'

printf '\n  -- Path 5: the guardian withdraws the consent of path 1 --\n'
ag seoul-wee-01 wee-teacher-kim revoke-consent "$grant1" --reason withdrawn-by-guardian | sed 's/^/    /'
wait_for seoul-wee-01 wee-teacher-kim "seoul-counsel-01" case WEE-2026-0042 --json
wait_for seoul-wee-01 wee-teacher-kim "\"messages_purged\"" case WEE-2026-0042 --json
expect_refusal "opening the purged referral at the counseling center" \
  ag seoul-counsel-01 counselor-lee open "$msg1"
expect_refusal "a new referral under the withdrawn consent" \
  ag seoul-wee-01 wee-teacher-kim send-referral --grant "$grant1" --to seoul-counsel-01 \
  --purpose counseling --fields-file "$work/referral-fields.txt"
echo "    seoul-wee-01 sees (purge confirmation from seoul-counsel-01, referral withdrawn):"
ag seoul-wee-01 wee-teacher-kim case WEE-2026-0042 | sed 's/^/      /'

printf '\n  -- Path 6: the support center, now the lead, closes the police case --\n'
ag seoul-support sc-choi close "$case2" --reason "support completed" | sed 's/^/    /'
wait_for seoul-police-03 officer-park '"closed": *true' case SPD-2026-118 --json
wait_for seoul-dsc dsc-han '"closed": *true' case "$case2" --json
echo "    seoul-police-03 and seoul-dsc see the case closed"

printf '\n  -- The auditor fetches and verifies the Seoul broker'"'"'s audit log --\n'
audit_store="$work/audit-office-store"
"$bin/refbus-audit" fetch --dir "$work/fed/audit-office" --broker seoul-broker \
  --endpoint "$endpoint" --store "$audit_store" | sed 's/^/    /'
"$bin/refbus-audit" verify --dir "$work/fed/audit-office" --store "$audit_store" | sed 's/^/    /' ||
  die "the audit log did not verify"
echo "    everything that happened to the Wee center's case ($case1), as the log records it:"
"$bin/refbus-audit" case "$case1" --store "$audit_store" | sed 's/^/      /'
echo "    accesses without a matching consent:"
"$bin/refbus-audit" unconsented --store "$audit_store" | sed 's/^/      /'

for p in "${pids[@]:1}"; do kill -TERM "$p"; done
for p in "${pids[@]:1}"; do wait "$p" || die "an agent did not stop cleanly"; done
kill -TERM "$broker_pid"; wait "$broker_pid" || die "the broker did not stop cleanly"
pids=()
echo "  all daemons stopped cleanly; logs in $work/*.log"
