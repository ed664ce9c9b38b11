#!/usr/bin/env bash
# Linkage (issue 19): three support centers find that they hold the same perpetrator
# without any of them revealing an identifier. The story of seed 004: a man filmed and
# uploaded videos of women and girls for years; the Incheon center had tracked him for two
# years, and only at his sentencing hearing did it learn that the Seoul and Busan centers
# were deleting his uploads too. Here each center enters the identifiers its own victims'
# cases hold, typed the way its caseworker found them (010-1234-5678 at one center,
# +82 10 1234 5678 at another; an @handle at one, the profile address at another), plus
# unrelated cases. Two brokers are the linkage evaluators (each holds half of the
# oblivious PRF's key, PROTOCOL.md 13.3-13.5), the Central center is the matching escrow
# (13.6): it can open an entry only once a second center enters the same identifier, and
# then tells each center concerned. Called by deploy/demo.sh; runnable alone once built:
#
#   deploy/linkage-demo.sh BIN_DIR WORK_DIR
#
# Everything is made from scratch: the evaluators' linkage keys (refbus-broker
# linkage-key), the federation with refbus-keys (the brokers listed with the role
# linkage-evaluator and their keys, the Central center with the role linkage-escrow), two
# federated brokers (capital and Busan), one refbus-agent daemon per center driven with the
# refbus-agent CLI as caseworkers would. Each step prints what the center sees; the script
# stops with a non-zero exit naming the step when an expectation does not hold. At the end
# the auditor verifies both brokers' audit logs.
set -euo pipefail
bin=$1
work=$2
if [[ -d $work && -n $(ls -A "$work") ]]; then
  echo "linkage demo: $work is not empty (give a new or empty folder)" >&2
  exit 2
fi
mkdir -p "$work"
# Waits stretch under sanitizers (tests/integration/CMakeLists.txt sets REFBUS_TEST_SLOW).
slow=${REFBUS_TEST_SLOW:-1}
demo_name="linkage demo"
# shellcheck source=deploy/demo-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/demo-lib.sh"
step="setup"
fail() { die "step '$step': $*"; }

brokers=(capital-broker busan-broker)
declare -A home=(
  [incheon-center]=capital-broker [seoul-center]=capital-broker
  [central-center]=capital-broker [busan-center]=busan-broker
)
agencies=(incheon-center seoul-center busan-center central-center)
centers=(incheon-center seoul-center busan-center)

# ---- the keys: two evaluators' linkage keys, then the federation's ceremony
mkdir -p "$work/linkage-keys"
declare -A linkage_pub
for b in "${brokers[@]}"; do
  out=$("$bin/refbus-broker" linkage-key --out "$work/linkage-keys/$b.key") ||
    fail "refbus-broker linkage-key for $b failed"
  linkage_pub[$b]=$(sed -n 's/.*linkage_key for this broker): *\([0-9a-f]\{64\}\).*/\1/p' <<<"$out")
  [[ -n ${linkage_pub[$b]} ]] || fail "no public key in: $out"
done
cat >"$work/linkage.toml" <<TOML
federation = "refbus-demo-linkage"
authority = "demo-authority"
[[broker]]
id = "capital-broker"
region = "capital"
name = "Capital region broker (Seoul, Incheon)"
roles = [ "relay", "witness", "linkage-evaluator" ]
linkage_key = "${linkage_pub[capital-broker]}"
[[broker]]
id = "busan-broker"
region = "busan"
name = "Busan regional broker"
roles = [ "relay", "witness", "linkage-evaluator" ]
linkage_key = "${linkage_pub[busan-broker]}"
[[agency]]
id = "incheon-center"
type = "support-center"
name = "Incheon Digital Sex Crime Prevention and Response Center"
region = "incheon"
home_broker = "capital-broker"
[[agency]]
id = "seoul-center"
type = "support-center"
name = "Seoul Digital Sex Crime Safety Support Center"
region = "seoul"
home_broker = "capital-broker"
[[agency]]
id = "busan-center"
type = "support-center"
name = "Busan Digital Sex Crime Victim Support Center"
region = "busan"
home_broker = "busan-broker"
[[agency]]
id = "central-center"
type = "support-center"
name = "Central Digital Sex Crime Victim Support Center"
region = "central"
home_broker = "capital-broker"
roles = [ "refer", "receive", "case-lead", "linkage-escrow" ]
[[auditor]]
id = "audit-office"
name = "Federation audit office"
region = "central"
TOML
"$bin/refbus-keys" federation init --manifest "$work/linkage.toml" --out "$work/fed" \
  >"$work/federation-init.log" || fail "federation init failed (see $work/federation-init.log)"
cat >"$work/fed/audit-office/auditor.toml" <<TOML
[verify]
witnesses = [ "capital-broker", "busan-broker" ]
min_cosignatures = 1
TOML

# Each evaluator broker's [linkage] section: its key file and the per-agency daily quota.
demo_broker_extra() {
  printf '[linkage]\nkey_file = "%s"\ndaily_quota = 300\n' "$work/linkage-keys/$1.key"
}
demo_write_broker_configs
demo_start_brokers
wait_links
# Every agent asks the same two evaluators, in the same order (PROTOCOL.md 13.5).
demo_agent_extra() {
  printf '[linkage]\nfirst_evaluator = "capital-broker"\nfirst_endpoint = "%s"\n' \
    "${endpoint[capital-broker]}"
  printf 'second_evaluator = "busan-broker"\nsecond_endpoint = "%s"\ntimeout_ms = 10000\n' \
    "${endpoint[busan-broker]}"
}
demo_start_agents

printf '\n== 10. Linkage: three centers find that they hold the same perpetrator\n'
step="10a directory"
echo "  -- 10a. Who is who in the signed directory --"
listing=$("$bin/refbus-keys" --json directory verify "$work/fed/incheon-center/directory" \
  --anchor "$work/fed/incheon-center/authority.pub" --json) || fail "the directory does not verify"
for b in "${brokers[@]}"; do
  jq -e --arg b "$b" '[.. | objects | select(.id? == $b) | .roles[]?] | index("linkage-evaluator")' \
    <<<"$listing" >/dev/null || fail "$b is not listed as a linkage evaluator"
done
jq -e '[.. | objects | select(.id? == "central-center") | .roles[]?] | index("linkage-escrow")' \
  <<<"$listing" >/dev/null || fail "central-center is not listed as the linkage escrow"
echo "    capital-broker, busan-broker: role linkage-evaluator, each with its own VOPRF key"
echo "      (${linkage_pub[capital-broker]:0:16}..., ${linkage_pub[busan-broker]:0:16}...): no one party can compute a pseudonym"
echo "    central-center: role linkage-escrow: it holds the entries and can open one only on a match"
for a in "${agencies[@]}"; do echo "    $a at ${home[$a]} (${endpoint[${home[$a]}]})"; done

# ms DATE: Unix milliseconds of a UTC day.
ms() { echo $(($(date -u -d "$1" +%s) * 1000)); }
# consent CENTER OPERATOR LOCAL_CASE: the victim's consent (or her guardian's) to enter her
# case's identifiers into the linkage search, to the Central center; prints the case ref.
consent() {
  local r
  r=$(ag "$1" "$2" consent --json --local-case "$3" --basis consent-subject --consenter subject \
    --purpose linkage --category incident-summary --recipient central-center --days 365) ||
    fail "$1 could not record the consent for $3: $r"
  jget "$r" case_ref
}
# link CENTER OPERATOR LOCAL_CASE KIND VALUE FIRST LAST [VICTIMS ITEMS]: one identifier,
# typed as that center's caseworker has it; the value goes on standard input (never on a
# command line other local users could read), and nothing printed names it.
link() {
  local a=$1 op=$2 lc=$3 kind=$4 value=$5 first=$6 last=$7 r
  local extra=()
  [[ $# -ge 9 ]] && extra=(--victims "$8" --items "$9")
  r=$(printf '%s\n' "$value" | ag "$a" "$op" link add --case "$lc" --kind "$kind" --value - \
    --first-seen-ms "$(ms "$first")" --last-seen-ms "$(ms "$last")" "${extra[@]}") ||
    fail "$a: link add ($kind) for $lc refused: $r"
  grep -qF -- "$value" <<<"$r" && fail "$a's answer names the identifier: $r"
  echo "    $a, case $lc: $(sed 's/; message.*//' <<<"$r")"
}

step="10b consent"
echo
echo "  -- 10b. Each center records its victims' consent to the linkage search --"
declare -A case_of
for spec in incheon-center:yoo-hoyoon:ICN-2025-0311 incheon-center:yoo-hoyoon:ICN-2025-0402 \
  seoul-center:sc-kang:SEL-2025-1187 seoul-center:sc-kang:SEL-2025-1204 \
  busan-center:bs-park:BSN-2025-0456 busan-center:bs-park:BSN-2025-0502; do
  IFS=: read -r a op lc <<<"$spec"
  case_of[$lc]=$(consent "$a" "$op" "$lc")
  [[ -n ${case_of[$lc]} ]] || fail "no case ref for $lc"
  echo "    $a: $lc (case ${case_of[$lc]}), purpose linkage, recipient central-center"
done

step="10c entries"
echo
echo "  -- 10c. Each center enters the identifiers its cases hold, as its caseworker typed them --"
# The man's phone, accounts and uploads, as each center has them (all made up).
video=9f2c4e1ab07d55e3c21b8e4f6a0d9c7b3e58f1a2c4d6e8f0a1b3c5d7e9f1a2b3
link incheon-center yoo-hoyoon ICN-2025-0311 phone "010-1234-5678" 2023-03-02 2025-11-28
link incheon-center yoo-hoyoon ICN-2025-0311 account "instagram:@Kim.Filmmaker" 2023-03-02 2025-11-28
link incheon-center yoo-hoyoon ICN-2025-0311 content-sha256 "$video" 2024-01-15 2025-11-28 2 1283
link seoul-center sc-kang SEL-2025-1187 phone "+82 10 1234 5678" 2024-06-10 2025-10-02
link seoul-center sc-kang SEL-2025-1187 content-sha256 "${video^^}" 2024-06-10 2025-10-02 6 4870
link seoul-center sc-kang SEL-2025-1187 url "https://tube-adult.example/v/88121?utm_source=share&fbclid=IwAR3x" 2024-06-10 2025-10-02
link busan-center bs-park BSN-2025-0456 account "https://www.instagram.com/kim.filmmaker/" 2024-02-20 2025-09-14
link busan-center bs-park BSN-2025-0456 content-sha256 "sha256:${video^^}" 2024-02-20 2025-09-14 7 4591
link busan-center bs-park BSN-2025-0456 url "http://TUBE-ADULT.example/v/88121/" 2024-02-20 2025-09-14
echo "    ... and identifiers of unrelated cases:"
link incheon-center yoo-hoyoon ICN-2025-0402 email "another.person@example.org" 2025-04-02 2025-04-30
link seoul-center sc-kang SEL-2025-1204 phone "010-9876-5432" 2025-05-11 2025-07-01
link busan-center bs-park BSN-2025-0502 account "x:@someone_else" 2025-06-01 2025-06-20
entries_sent=12

step="10d escrow"
echo
echo "  -- 10d. At the Central center (the escrow) --"
held() { ag central-center cc-oh inbox --json | jq '[.[] | select(.kind == "linkage-entry" and .status == "ok")] | length'; }
for _ in $(seq $((300 * slow))); do [[ $(held) -ge $entries_sent ]] && break; sleep 0.1; done
[[ $(held) -eq $entries_sent ]] || fail "the escrow holds $(held) entries, not $entries_sent (see $work/central-center.log)"
refused=$(ag central-center cc-oh inbox --json | jq '[.[] | select(.status == "refused")] | length')
[[ $refused -eq 0 ]] || fail "the escrow refused $refused messages"
echo "    central-center inbox: $entries_sent linkage entries held, none refused; it sees which center"
echo "    sent an entry for which case reference, never the identifier, nor its kind before a match"
inbox=$(ag central-center cc-oh inbox)
awk 'NR == 1 || (tolower($0) ~ /linkage/ && n++ < 3)' <<<"$inbox" | sed 's/^/      /'
echo "      ..."

step="10e notices"
echo
echo "  -- 10e. Each center's notices (refbus-agent link matches) --"
# Expected: the phone (Incheon, Seoul), the account (Incheon, Busan), the upload's address
# (Seoul, Busan) and the video (all three): three notices at each center, four linkage ids.
# matched CENTER: its notices as JSON, once it holds three and the video names two others.
matched() { ag "$1" x link matches --json; }
for a in "${centers[@]}"; do
  for _ in $(seq $((300 * slow))); do
    matched "$a" | jq -e 'length == 3 and ([.[] | select(.kind == "content-sha256") | .others | length] == [2])' \
      >/dev/null && break
    sleep 0.1
  done
done
declare -A expect=(
  [incheon-center]="account:busan-center content-sha256:busan-center,seoul-center phone:seoul-center"
  [seoul-center]="content-sha256:busan-center,incheon-center phone:incheon-center url:busan-center"
  [busan-center]="account:incheon-center content-sha256:incheon-center,seoul-center url:seoul-center"
)
for a in "${centers[@]}"; do
  got=$(matched "$a" | jq -r '[.[] | .kind + ":" + ([.others[].agency] | sort | join(","))] | sort | join(" ")')
  [[ $got == "${expect[$a]}" ]] || fail "$a's notices are '$got', expected '${expect[$a]}'"
  echo "    $a sees:"
  ag "$a" x link matches | sed 's/^/      /'
done
ids=$(for a in "${centers[@]}"; do matched "$a" | jq -r '.[].linkage_id'; done | sort -u | wc -l)
[[ $ids -eq 4 ]] || fail "$ids distinct linkage ids, expected 4"
same=$(for a in "${centers[@]}"; do matched "$a" | jq -r '.[] | select(.kind == "content-sha256") | .linkage_id'; done | sort -u | wc -l)
[[ $same -eq 1 ]] || fail "the video has $same linkage ids across the centers, expected one"
# What Incheon learns from the video's notice: the others' counts, next to its own.
read -r victims items < <(matched incheon-center | jq -r '.[] | select(.kind == "content-sha256") |
  "\(2 + ([.others[].victims] | add)) \(1283 + ([.others[].items] | add))"')
[[ $victims -eq 15 && $items -eq 10744 ]] ||
  fail "Incheon counts $victims victims and $items deletion items across the centers, expected 15 and 10744"
echo "    four linkages, each with one linkage id that every center concerned holds; the video"
echo "    links all three centers: Incheon's 2 victims and 1,283 deletion items become $victims victims"
echo "    and $items items once the others' counts from the notice are added"

step="10f unrelated"
echo
echo "  -- 10f. The unrelated identifiers match nothing --"
for lc in ICN-2025-0402 SEL-2025-1204 BSN-2025-0502; do
  n=0
  for a in "${centers[@]}"; do
    n=$((n + $(matched "$a" | jq --arg c "${case_of[$lc]}" '[.[] | select(.case_ref == $c)] | length')))
  done
  [[ $n -eq 0 ]] || fail "case $lc has $n notices, expected none"
  echo "    $lc: no notice"
done
# At the escrow: the notices it sent, per case it holds entries of. The phone, the account
# and the address: one notice to each of two centers; the video: two when Seoul joined
# Incheon, three more when Busan joined. The unrelated cases: none.
notices_sent() {
  ag central-center cc-oh case "$1" --json | jq '[.timeline[]? | select(.event == "linkage-notice-sent")] | length'
}
total=0
for lc in ICN-2025-0311 SEL-2025-1187 BSN-2025-0456; do total=$((total + $(notices_sent "${case_of[$lc]}"))); done
[[ $total -eq 11 ]] || fail "the escrow sent $total notices about the three victims' cases, expected 11"
for lc in ICN-2025-0402 SEL-2025-1204 BSN-2025-0502; do
  [[ $(notices_sent "${case_of[$lc]}") -eq 0 ]] || fail "the escrow sent a notice about $lc"
done
echo "    central-center sent 11 notices (the video's first two again when Busan joined) and"
echo "    opened nothing of the 3 unrelated entries: they stay sealed under shares no one else holds"

step="10g logs"
for a in "${agencies[@]}"; do
  for needle in 12345678 Kim.Filmmaker kim.filmmaker 88121 "${video:0:16}" another.person 98765432 someone_else; do
    grep -qF -- "$needle" "$work/$a.log" && fail "$a's log names an identifier ($needle)"
  done
done
for b in "${brokers[@]}"; do
  grep -qF -- "12345678" "$work/$b.log" && fail "$b's log names an identifier"
done
echo "    no daemon's log names any identifier"

step="10h bundle"
echo
echo "  -- 10h. The joint evidence bundle: each center signs a tally about the video's linkage --"
# Each center signs a tally (victims it supports, deletion items it handled, dates) about
# the video's linkage id; its home broker records the tally's hash in its audit log and
# hands back the entry, its inclusion proof and a signed checkpoint (PROTOCOL.md 13.7).
# Seoul and Busan send theirs to Incheon over the bus (13.8), each under a consent of its
# case that names Incheon for purpose linkage; Incheon, the lead, builds the bundle a
# prosecutor can check offline with refbus-audit check-bundle, without any evidence file.
lid=$(matched incheon-center | jq -r '.[] | select(.kind == "content-sha256") | .linkage_id')
[[ -n $lid ]] || fail "Incheon holds no linkage id for the video"
ag seoul-center sc-kang link tally "$lid" --victims 6 --deletion-items 4870 \
  --from 2024-06-10 --to 2025-10-02 >/dev/null || fail "Seoul's tally was not recorded"
ag busan-center bs-park link tally "$lid" --victims 7 --deletion-items 4591 \
  --from 2024-02-20 --to 2025-09-14 >/dev/null || fail "Busan's tally was not recorded"
# Seoul's consent names the escrow only: its agent refuses to send the counts to Incheon.
if r=$(ag seoul-center sc-kang link send-tally "$lid" --to incheon-center 2>&1); then
  fail "Seoul sent its tally to Incheon without a consent naming Incheon: $r"
fi
grep -q "no consent grant" <<<"$r" || fail "Seoul's refusal does not say what is missing: $r"
echo "    seoul-center, before a consent names Incheon: refused ($(grep -o 'no consent grant[^:]*' <<<"$r" | head -1))"
for spec in seoul-center:sc-kang:SEL-2025-1187 busan-center:bs-park:BSN-2025-0456; do
  IFS=: read -r a op lc <<<"$spec"
  r=$(ag "$a" "$op" consent --json --case-ref "${case_of[$lc]}" --basis statutory-provision \
    --legal-article "Act on the Protection of Children and Youth against Sex Offenses art. 34" \
    --consenter subject --purpose linkage --category incident-summary \
    --recipient incheon-center --days 365) || fail "$a could not record the consent to Incheon: $r"
  r=$(ag "$a" "$op" link send-tally "$lid" --to incheon-center) ||
    fail "$a could not send its tally to Incheon: $r"
  echo "    $a: consent for $lc naming incheon-center (statutory provision); $(sed 's/; message.*//' <<<"$r")"
done
bus_tallies() {
  ag incheon-center x link tallies "$lid" --json | jq '[.[] | select(.source == "bus")] | length'
}
for _ in $(seq $((300 * slow))); do [[ $(bus_tallies) -ge 2 ]] && break; sleep 0.1; done
[[ $(bus_tallies) -eq 2 ]] || fail "Incheon holds $(bus_tallies) tallies from the bus, not 2"
ag incheon-center yoo-hoyoon link tally "$lid" --victims 2 --deletion-items 1283 \
  --from 2024-01-15 --to 2025-11-28 >/dev/null || fail "Incheon's tally was not recorded"
echo "    incheon-center holds (refbus-agent link tallies):"
ag incheon-center x link tallies "$lid" | sed 's/^/      /'
ag incheon-center yoo-hoyoon link bundle "$lid" --out "$work/bundle.json" >/dev/null ||
  fail "Incheon could not build the bundle"
echo "    incheon-center built $work/bundle.json from three tallies; a court clerk checks it:"
checked=$("$bin/refbus-audit" check-bundle "$work/bundle.json" --dir "$work/fed/audit-office") ||
  fail "the bundle did not verify: $checked"
sed 's/^/      /' <<<"$checked"
grep -q "15 victims, 10744 deletion items" <<<"$checked" ||
  fail "the bundle's total is not 15 victims and 10744 deletion items"
# One byte of Seoul's tally changed (6 victims made 9): check-bundle names that tally.
sed 's/victims 6\\n/victims 9\\n/' "$work/bundle.json" >"$work/bundle-edited.json"
cmp -s "$work/bundle.json" "$work/bundle-edited.json" && fail "the edit of Seoul's tally did not apply"
set +e
edited=$("$bin/refbus-audit" check-bundle "$work/bundle-edited.json" --dir "$work/fed/audit-office" 2>&1)
rc=$?
set -e
[[ $rc -eq 1 ]] || fail "the edited bundle was not refused (exit $rc)"
grep -q "FAILED tally .* (seoul-center)" <<<"$edited" || fail "check-bundle did not name Seoul's tally"
echo "    the same bundle with Seoul's 6 victims edited to 9 (one byte): refused (exit 1):"
grep "FAILED" <<<"$edited" | sed 's/^/      /'

step="10i audit"
echo
echo "  -- 10i. The auditor fetches and verifies each broker's audit log --"
demo_audit_all audit-office
echo "    what capital-broker's log records of Incheon's case ${case_of[ICN-2025-0311]} (ids, agencies,"
echo "    kinds of message and times; never an identifier, a share or a record):"
trail=$("$bin/refbus-audit" case "${case_of[ICN-2025-0311]}" --store "$work/audit-office-store/capital-broker") ||
  fail "refbus-audit case failed"
sed 's/^/      /' <<<"$trail"
grep -qi 'linkage' <<<"$trail" || fail "the log records no linkage message of Incheon's case"
grep -qF 12345678 <<<"$trail" && fail "the audit trail names an identifier"

demo_stop_all
echo "  all daemons stopped cleanly; logs in $work/*.log"
