#!/usr/bin/env bash
# Integration test: kill -9 of the broker in the middle of a stream of 10,000 messages.
# Real processes, real keys, loopback: refbus-broker, a sending and a receiving agent
# (refbus-loadgen send | receive: the agent library's client and store). The broker is
# killed twice while the stream runs and restarted on the same endpoint each time: once
# at a third of the stream wherever it is, once at two thirds exactly between a commit and
# its acks (gdb stops it at Server::SendReplies, which runs after the writer's commit
# returned and before any reply of that commit is sent; gdb is required). Afterwards: the set of message ids the receiving application got equals
# the set the broker acknowledged to the sender, and no id reached the application twice.
# Redeliveries below the application are counted and reported.
#   crash_stream_test.sh BIN_DIR [COUNT]
set -uo pipefail
bin=$1
count=${2:-10000}
# REFBUS_TEST_SLOW (set by ctest: 10 under ThreadSanitizer) stretches every deadline.
slow=${REFBUS_TEST_SLOW:-1}
work=$(mktemp -d /tmp/refbus-crash.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL - $*"; for f in "$work"/*.log; do echo "--- $f"; tail -20 "$f"; done; exit 1; }

cat >"$work/fed.toml" <<TOML
federation = "crash-test"
authority = "authority"
[[broker]]
id = "region-broker"
[[agency]]
id = "sender-police"
type = "police-unit"
home_broker = "region-broker"
[[agency]]
id = "receiver-dsc"
type = "deletion-center"
home_broker = "region-broker"
TOML
"$bin/refbus-keys" federation init --manifest "$work/fed.toml" --out "$work/fed" >/dev/null ||
  fail "federation init"

b="$work/fed/region-broker"
write_config() {
  cat >"$work/broker.toml" <<TOML
[broker]
id = "region-broker"
bind = "$1"
data_dir = "$work/broker-data"
key_file = "$b/identity.key"
directory = "$b/directory"
anchor = "$b/authority.pub"
trust_state = "$b/trust-state"
endpoint_file = "$work/endpoint"
[limits]
redelivery_ms = 3000
[policy]
allow_unscoped_opaque = true  # this test streams OPAQUE envelopes without consent grants
TOML
}
start_broker() {
  rm -f "$work/endpoint"
  "$bin/refbus-broker" -c "$work/broker.toml" >>"$work/broker.log" 2>&1 &
  broker_pid=$!
  pids+=("$broker_pid")
  for _ in $(seq $((200 * slow))); do [[ -s "$work/endpoint" ]] && return 0; sleep 0.05; done
  fail "broker did not start"
}
write_config "tcp://127.0.0.1:*"
start_broker
endpoint=$(cat "$work/endpoint")
write_config "$endpoint"   # restarts bind the same port so the agents find it again

"$bin/refbus-loadgen" receive --dir "$work/fed/receiver-dsc" --data "$work/receiver-data" \
  --broker-endpoint "$endpoint" --expect "$count" --received-log "$work/received.ids" \
  --timeout $((240 * slow)) >"$work/receiver.log" 2>&1 &
rx=$!; pids+=("$rx")
"$bin/refbus-loadgen" send --dir "$work/fed/sender-police" --data "$work/sender-data" \
  --broker-endpoint "$endpoint" --to receiver-dsc --count "$count" \
  --acked-log "$work/acked.ids" --timeout $((240 * slow)) >"$work/sender.log" 2>&1 &
tx=$!; pids+=("$tx")

# Kill the broker once about a third of the stream is acknowledged.
for _ in $(seq $((1200 * slow))); do
  n=0; [[ -f "$work/acked.ids" ]] && n=$(wc -l <"$work/acked.ids")
  [[ $n -ge $((count / 3)) ]] && break
  sleep 0.05
done
echo "killing the broker with SIGKILL after $n acks"
kill -9 "$broker_pid"
wait "$broker_pid" 2>/dev/null
sleep 1
start_broker
echo "broker restarted on $endpoint"

# The second kill: between a commit and its acks, under load. gdb stops the broker at the
# 20th SendReplies after two thirds of the stream are acked (a commit of the stream, its
# envelopes durable, none of its acks sent) and SIGKILLs it there.
command -v gdb >/dev/null || fail "gdb is needed to stop the broker between a commit and its ack"
for _ in $(seq $((2400 * slow))); do
  n=$(wc -l <"$work/acked.ids")
  [[ $n -ge $((2 * count / 3)) ]] && break
  sleep 0.05
done
gdb -p "$broker_pid" -batch -ex 'set pagination off' \
  -ex 'break refbus::broker::Server::SendReplies' -ex 'ignore 1 19' -ex 'continue' \
  -ex 'bt 3' -ex "shell kill -9 $broker_pid" >"$work/gdb.log" 2>&1
wait "$broker_pid" 2>/dev/null
grep -q 'Server::SendReplies' "$work/gdb.log" ||
  fail "gdb did not stop the broker at SendReplies: $(tail -5 "$work/gdb.log")"
n_at_kill=$(wc -l <"$work/acked.ids")
[[ $n_at_kill -lt $count ]] || fail "the stream ended before the second kill ($n_at_kill acks)"
echo "killed the broker with SIGKILL between a commit and its acks, after $n_at_kill acks"
sleep 1
start_broker
echo "broker restarted on $endpoint"

wait "$tx"; tx_rc=$?
wait "$rx"; rx_rc=$?
[[ $tx_rc -eq 0 ]] || fail "sender exited $tx_rc"
[[ $rx_rc -eq 0 ]] || fail "receiver exited $rx_rc"
kill -TERM "$broker_pid"; wait "$broker_pid"; brc=$?
[[ $brc -eq 0 ]] || fail "broker did not stop cleanly on SIGTERM (exit $brc)"

acked=$(sort -u "$work/acked.ids" | wc -l)
received=$(wc -l <"$work/received.ids")
received_unique=$(sort -u "$work/received.ids" | wc -l)
echo "acked by the broker: $acked; received by the application: $received ($received_unique distinct)"
grep -i 'duplicate' "$work/receiver.log" | tail -1
[[ $acked -eq $count ]] || fail "the broker acked $acked of $count"
[[ $received -eq $received_unique ]] || fail "$((received - received_unique)) ids reached the application twice"
if ! cmp -s <(sort -u "$work/acked.ids") <(sort "$work/received.ids"); then
  fail "received set differs from acked set: $(comm -3 <(sort -u "$work/acked.ids") <(sort "$work/received.ids") | head -5)"
fi
echo "1 passed, 0 failed"
