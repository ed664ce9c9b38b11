#!/usr/bin/env bash
# The key ceremony of a small federation, run for real with refbus-keys: every party makes
# its keys in its own folder and hands over only its public record; the authority issues
# the signed directory; every party verifies its copy.
#
#   deploy/ceremony.sh BIN_DIR WORK_DIR
#
# WORK_DIR/
#   authority/            the authority's folder (signing key, passphrase-protected)
#   parties/<id>/         each party's own folder (identity.key 0600, its record)
#   exchange/             the only place parties and authority share: public files only
# Used by deploy/demo.sh and by the integration test tests/integration/key_ceremony_test.sh.
set -euo pipefail
bin=$1
work=$2
keys="$bin/refbus-keys"
mkdir -p "$work/exchange" "$work/parties"

say() { printf '\n== %s\n' "$*"; }

say "1. The authority makes its signing key (protected by a passphrase) and trust anchor"
umask 077
head -c 24 /dev/urandom | base64 > "$work/authority.passphrase"
umask 022
"$keys" authority init --dir "$work/authority" --id ministry \
  --passphrase-file "$work/authority.passphrase"
cp "$work/authority/authority.pub" "$work/exchange/authority.pub"

say "2. Each party makes its keys on its own machine and hands over only its public record"
# id | kind | type | region | home broker | name
parties=(
  "seoul-broker|broker||seoul||Seoul regional broker"
  "busan-broker|broker||busan||Busan regional broker"
  "central-broker|broker||central||Central broker"
  "seoul-wee-01|agency|wee-center|seoul|seoul-broker|Seoul Gangnam Wee Center"
  "seoul-police-03|agency|police-unit|seoul|seoul-broker|Seoul Police Women and Youth Unit 3"
  "busan-counseling-01|agency|counseling-center|busan|busan-broker|Busan Sexual Violence Counseling Center"
  "central-dsc|agency|deletion-center|central|central-broker|Central Digital Sex Crime Deletion Support Center"
  "busan-support|agency|support-center|busan|busan-broker|Busan Regional Victim Support Center"
  "audit-office|auditor||central||Federation audit office"
)
records=()
for p in "${parties[@]}"; do
  IFS='|' read -r id kind type region home name <<<"$p"
  args=(party init --dir "$work/parties/$id" --id "$id" --kind "$kind" --region "$region"
        --name "$name")
  [[ -n "$type" ]] && args+=(--type "$type")
  [[ -n "$home" ]] && args+=(--home-broker "$home")
  "$keys" "${args[@]}" >"$work/parties/$id.init.log"
  cp "$work/parties/$id/$id.record" "$work/exchange/"
  records+=(--add "$work/exchange/$id.record")
  printf '  %-20s %-8s %s\n' "$id" "$kind" "$(awk '/^  signing key:/ {print $3}' "$work/parties/$id.init.log")"
  rm -f "$work/parties/$id.init.log"
done

say "3. The authority checks each record and issues directory serial 1"
for r in "$work"/exchange/*.record; do
  "$keys" record show "$r" >/dev/null
done
"$keys" directory issue --authority-dir "$work/authority" --federation refbus-demo \
  --passphrase-file "$work/authority.passphrase" "${records[@]}" \
  --out "$work/exchange/directory"

say "4. Every party receives the anchor and directory and verifies them itself"
for p in "${parties[@]}"; do
  id=${p%%|*}
  cp "$work/exchange/authority.pub" "$work/exchange/directory" "$work/parties/$id/"
  "$keys" directory verify "$work/parties/$id/directory" --anchor "$work/parties/$id/authority.pub" \
    --state "$work/parties/$id/trust-state" --json >/dev/null
  echo "  $id: directory verified, serial recorded in its trust-state"
done
