#!/usr/bin/env bash
# Integration test: the key ceremony run for real with refbus-keys, as the demo runs it
# (deploy/ceremony.sh): separate folders, public records only. Then revocation, rotation,
# tampering, rollback, foreign anchors and bad key files, each checked by exit code and
# message.
#   key_ceremony_test.sh SOURCE_DIR BIN_DIR
set -uo pipefail
src=$1
bin=$2
keys="$bin/refbus-keys"
work=$(mktemp -d /tmp/refbus-ceremony.XXXXXX)
trap 'rm -rf "$work"' EXIT
failures=0
passes=0

ok() { passes=$((passes + 1)); echo "ok   - $*"; }
bad() { failures=$((failures + 1)); echo "FAIL - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
# expect_exit CODE PATTERN WHAT -- command...: exit code and a message matching PATTERN.
expect_exit() {
  local code=$1 pattern=$2 what=$3; shift 4
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [[ $rc -eq $code ]] && grep -qE "$pattern" <<<"$out"; then ok "$what"; else
    bad "$what (exit $rc, wanted $code; output: $out)"; fi
}

if ! "$src/deploy/ceremony.sh" "$bin" "$work" >"$work/ceremony.log" 2>&1; then
  cat "$work/ceremony.log"
  echo "FAIL - the ceremony script failed"; exit 1
fi
ok "ceremony ran"

# --- Only public files crossed between parties.
ex="$work/exchange"
check "exchange holds only records, the anchor and the directory" \
  test -z "$(ls "$ex" | grep -vE '^([a-z0-9-]+\.record|authority\.pub|directory)$')"
check "no secret key file in the exchange" \
  test -z "$(grep -l '^refbus-secret-key/' "$ex"/* 2>/dev/null)"
parties=$(ls "$work/parties")
check "nine parties, one folder each" test "$(wc -w <<<"$parties")" -eq 9
for p in $parties; do
  d="$work/parties/$p"
  n_keys=$(grep -l '^refbus-secret-key/' "$d"/* 2>/dev/null | wc -l)
  check "$p: exactly one secret key file, its own" test "$n_keys" -eq 1
  check "$p: identity.key is mode 0600" test "$(stat -c %a "$d/identity.key")" = 600
  check "$p: trust-state records serial 1" grep -q '^serial 1$' "$d/trust-state"
done
check "authority key is passphrase-protected (no plaintext checksum form)" \
  test "$(stat -c %a "$work/authority/identity.key")" = 600

# --- A public-only verifier.
obs="$work/observer"; mkdir -p "$obs"
cp "$ex/authority.pub" "$ex/directory" "$obs/"
out=$("$keys" directory verify "$obs/directory" --anchor "$obs/authority.pub" --state "$obs/ts")
check "public-only verify succeeds" test $? -eq 0
check "table lists the deletion center" grep -q 'central-dsc .*deletion-center' <<<"$out"
check "table says 9 parties" grep -q '^9 parties: 3 brokers, 5 agencies, 1 auditors' <<<"$out"

# --- Tampering and foreign anchors.
cp "$obs/directory" "$work/tampered"
perl -0777 -pi -e 's/Gangnam Wee/Gangbuk Wee/' "$work/tampered"
expect_exit 3 'signature does not verify' "tampered listing refused" -- \
  "$keys" directory verify "$work/tampered" --anchor "$obs/authority.pub"
head -c 100 "$obs/directory" >"$work/truncated"
expect_exit 1 'does not decode|malformed' "truncated directory refused" -- \
  "$keys" directory verify "$work/truncated" --anchor "$obs/authority.pub"
# The federation's root key is never written unprotected by accident (issue 17, item 8):
# without --passphrase-file, authority init refuses unless told loudly not to protect it.
expect_exit 1 'passphrase-file.*insecure-no-passphrase' \
  "authority init without a passphrase is refused, naming both ways out" -- \
  "$keys" authority init --dir "$work/unprotected" --id rogue
check "the refused authority init wrote no key" test ! -e "$work/unprotected/identity.key"
warning=$("$keys" authority init --dir "$work/rogue" --id rogue --insecure-no-passphrase 2>&1 >/dev/null)
check "authority init --insecure-no-passphrase succeeds" test -f "$work/rogue/identity.key"
check "and warns on stderr that the root key is unprotected" \
  grep -q 'WARNING.*NOT protected by a passphrase' <<<"$warning"
expect_exit 3 'not by the authority key' "directory checked against another authority refused" -- \
  "$keys" directory verify "$obs/directory" --anchor "$work/rogue/authority.pub"
expect_exit 1 'not of the federation authority' "a party record is not a trust anchor" -- \
  "$keys" directory verify "$obs/directory" --anchor "$ex/seoul-wee-01.record"
expect_exit 1 "not a refbus directory file: it is a 'refbus-party-record/1' file" \
  "a record passed as a directory is named" -- \
  "$keys" directory verify "$ex/seoul-wee-01.record" --anchor "$obs/authority.pub"

# --- Revocation: serial 2 revokes the police unit.
pass="$work/authority.passphrase"
"$keys" directory issue --authority-dir "$work/authority" --passphrase-file "$pass" \
  --revoke seoul-police-03 --out "$work/directory.2" >/dev/null
check "serial 2 issued" test -f "$work/directory.2"
json=$("$keys" --json directory verify "$work/directory.2" --anchor "$obs/authority.pub" --state "$obs/ts")
check "serial 2 accepted" grep -q '"serial": 2' <<<"$json"
table=$("$keys" directory verify "$work/directory.2" --anchor "$obs/authority.pub")
check "police unit is revoked in serial 2" grep -qE '^seoul-police-03 +police-unit +seoul +seoul-broker +revoked' <<<"$table"
check "only the police unit is revoked" test "$(grep -c ' revoked ' <<<"$table")" -eq 1
expect_exit 3 'rollback' "serial 1 refused after serial 2 (rollback)" -- \
  "$keys" directory verify "$obs/directory" --anchor "$obs/authority.pub" --state "$obs/ts"
expect_exit 1 'revoked id is never reused' "a revoked id cannot be re-added" -- \
  "$keys" directory issue --authority-dir "$work/authority" --passphrase-file "$pass" \
  --add "$ex/seoul-police-03.record" --out "$work/directory.x"

# --- Rotation: the support center makes new keys, endorsed by the old one.
"$keys" party rotate --dir "$work/parties/busan-support" >/dev/null
check "old key kept in retired/ with mode 0600" \
  test "$(stat -c %a "$work/parties/busan-support"/retired/*.key)" = 600
"$keys" directory issue --authority-dir "$work/authority" --passphrase-file "$pass" \
  --add "$work/parties/busan-support/busan-support.record" --out "$work/directory.3" >/dev/null
json=$("$keys" directory verify "$work/directory.3" --anchor "$obs/authority.pub" --json)
flat=$(tr -d '\n ' <<<"$json")
check "rotated party lists an active and a retired key" \
  grep -Pq '"id":"busan-support".*?"state":"active".*?"state":"retired"' <<<"$flat"

# --- Bad key files and passphrases.
chmod 644 "$work/parties/central-dsc/identity.key"
expect_exit 1 'chmod 600' "key file readable by others refused" -- \
  "$keys" party rotate-prekey --dir "$work/parties/central-dsc"
chmod 600 "$work/parties/central-dsc/identity.key"
umask 077; echo "wrong horse battery" >"$work/wrong.pass"; umask 022
expect_exit 3 'wrong passphrase' "wrong authority passphrase refused" -- \
  "$keys" directory issue --authority-dir "$work/authority" --passphrase-file "$work/wrong.pass" \
  --revoke busan-broker --out "$work/directory.y"
expect_exit 1 'protected by a passphrase' "missing passphrase explained" -- \
  "$keys" directory issue --authority-dir "$work/authority" --revoke busan-broker --out "$work/directory.y"
expect_exit 1 'already exists' "keys are never overwritten" -- \
  "$keys" party init --dir "$work/parties/central-dsc" --id central-dsc --kind agency \
  --type deletion-center --home-broker central-broker
expect_exit 2 'required|Run with --help' "usage error exits 2" -- "$keys" party init

# --- The manifest path runs the same ceremony.
out=$("$keys" federation init --manifest "$src/deploy/examples/federation.toml" --out "$work/fed" 2>&1)
check "federation init succeeds" test $? -eq 0
check "federation init: all parties verified" grep -q 'all 9 parties verified directory serial 1' <<<"$out"
check "federation init: a folder per party" test -f "$work/fed/central-dsc/identity.key"
check "federation init: parties hold no one else's key" \
  test "$(grep -l '^refbus-secret-key/' "$work/fed/central-dsc"/* | wc -l)" -eq 1

echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]]
