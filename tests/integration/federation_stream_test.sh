#!/usr/bin/env bash
# Integration test: a stream relayed between two federated brokers (schema/PROTOCOL.md
# section 12) while the second broker, or the link between them, fails.
#
# Brokers region-a and region-b; sender-police is homed at region-a, recv-b at region-b.
# refbus-loadgen send streams COUNT envelopes to recv-b through region-a, which relays them to
# region-b over its federation link (store-and-forward: region-a keeps them on disk until
# region-b has committed them).
#
#   kill-peer  region-b is killed with SIGKILL once about a third of the stream has reached
#              recv-b, and restarted on the same port.
#   proxy-cut  region-a reaches region-b through refbus_cut_proxy ([federation] endpoints).
#              Under load the proxy cuts the link for 15 s (SIGUSR1), then heals it (SIGUSR2).
#   netns-cut  the same with each broker in a network namespace of its own, joined by a veth
#              pair; the cut is `ip link set <veth> down` for 15 s. Needs root; a failure to
#              set the namespaces up is a FAIL, never a skip.
#
# In the cut modes the stream goes to recv-b and to recv-a, an agency homed at region-a,
# so that local delivery can be watched during the cut. While the link is cut: region-a's
# status (refbus-broker --status --json) shows the link to region-b down with a backlog,
# and a second sender (sender2-police, at region-a) sends COUNT2 envelopes to recv-a and
# recv-b: all of them reach recv-a before the heal, none reaches recv-b. After the heal:
# the link is up with an empty backlog.
#
# Afterwards, in every mode: each sender's acked set is exactly what each of its recipients
# received, no id reached an application twice, and each receiver got each sender's
# envelopes in the order the sender's broker acknowledged them (order per sender-recipient
# pair). Both brokers stop with exit 0 on SIGTERM. Redeliveries below the application (the
# receivers' duplicate counts) and link sessions are reported.
#   federation_stream_test.sh BIN_DIR PROXY_BIN MODE [COUNT]
# (KEEP_WORK=1 in the environment keeps the temporary folder, its logs and id lists.)
set -uo pipefail
if [[ $# -lt 3 ]]; then
  echo "usage: federation_stream_test.sh BIN_DIR PROXY_BIN kill-peer|proxy-cut|netns-cut [COUNT]"
  exit 2
fi
bin=$1
proxy_bin=$2
mode=$3
count=${4:-10000}
count2=$((count / 10 > 0 ? count / 10 : 1))  # the second sender's envelopes (cut modes)
# REFBUS_TEST_SLOW (set by ctest: 10 under ThreadSanitizer) stretches every deadline.
slow=${REFBUS_TEST_SLOW:-1}
# Wall clock. The checks inside the cut take about 6 s on a loaded 2-core machine (link seen
# down within link_timeout_ms, then the second stream delivered locally); 15 s leaves them
# more than twice that, and the two cut tests run alone (RUN_SERIAL), so every second of cut
# is a second of CI.
cut_s=$((slow > 1 ? 60 : 15))
agent_timeout=$((150 * slow))
case $mode in kill-peer | proxy-cut | netns-cut) ;; *)
  echo "FAIL - unknown mode '$mode' (kill-peer, proxy-cut or netns-cut)"; exit 2 ;;
esac

work=$(mktemp -d /tmp/refbus-fed.XXXXXX)
pids=()
ns_a="refbus-a-$$"
ns_b="refbus-b-$$"
netns_made=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  # Deleting a namespace deletes the veth end in it, and with it the pair.
  for ns in "${netns_made[@]}"; do ip netns del "$ns" 2>/dev/null; done
  if [[ -n ${KEEP_WORK:-} ]]; then echo "kept $work (KEEP_WORK)"; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() {
  echo "FAIL - $*"
  for f in "$work"/*.log; do [[ -f $f ]] && { echo "--- $f"; tail -20 "$f"; }; done
  exit 1
}
say() { echo "[$(printf '%3d' "$SECONDS") s] $*"; }
lines() { if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi; }
command -v jq >/dev/null || fail "jq is needed to read refbus-broker --status --json"
[[ -x $bin/refbus-broker && -x $bin/refbus-loadgen && -x $bin/refbus-keys ]] ||
  fail "refbus-broker, refbus-loadgen and refbus-keys are not all in $bin"
[[ $mode != proxy-cut || -x $proxy_bin ]] || fail "no proxy executable at $proxy_bin"

# --- Network: loopback, or two namespaces joined by a veth pair.
declare -A ns=([region-a]="" [region-b]="" [region-c]="")
declare -A host=([region-a]=127.0.0.1 [region-b]=127.0.0.1 [region-c]=127.0.0.1)
if [[ $mode == netns-cut ]]; then
  [[ $(id -u) -eq 0 ]] || fail "netns-cut needs root (ip netns add, veth)"
  net="10.231.$(($$ % 250 + 1))"  # the addresses live inside the namespaces only
  for n in "$ns_a" "$ns_b"; do
    out=$(ip netns add "$n" 2>&1) || fail "ip netns add $n: $out"
    netns_made+=("$n")
  done
  out=$(ip -n "$ns_a" link add veth-a type veth peer name veth-b netns "$ns_b" 2>&1) ||
    fail "cannot create the veth pair between $ns_a and $ns_b: $out"
  for step in "$ns_a addr add $net.1/24 dev veth-a" "$ns_b addr add $net.2/24 dev veth-b" \
    "$ns_a link set lo up" "$ns_b link set lo up" \
    "$ns_a link set veth-a up" "$ns_b link set veth-b up"; do
    # shellcheck disable=SC2086  # the step is words on purpose
    out=$(ip -n $step 2>&1) || fail "veth setup: ip -n $step: $out"
  done
  ns=([region-a]="$ns_a" [region-b]="$ns_b")
  host=([region-a]="$net.1" [region-b]="$net.2")
  say "namespaces $ns_a ($net.1, veth-a) and $ns_b ($net.2, veth-b)"
fi
# in_ns BROKER_ID COMMAND...: runs the command in that broker's namespace (exec: same pid).
in_ns() {
  local n=${ns[$1]}; shift
  if [[ -n $n ]]; then exec ip netns exec "$n" "$@"; else exec "$@"; fi
}

# --- Ceremony: three brokers, agencies homed at each (region-c only runs in kill-peer,
# where the stream also goes to recv-c: the third region keeps receiving while region-b is
# dead).
cat >"$work/fed.toml" <<TOML
federation = "fed-stream-test"
authority = "authority"
[[broker]]
id = "region-a"
[[broker]]
id = "region-b"
[[broker]]
id = "region-c"
[[agency]]
id = "sender-police"
type = "police-unit"
home_broker = "region-a"
[[agency]]
id = "sender2-police"
type = "police-unit"
home_broker = "region-a"
[[agency]]
id = "recv-a"
type = "deletion-center"
home_broker = "region-a"
[[agency]]
id = "recv-b"
type = "deletion-center"
home_broker = "region-b"
[[agency]]
id = "recv-c"
type = "deletion-center"
home_broker = "region-c"
TOML
out=$("$bin/refbus-keys" federation init --manifest "$work/fed.toml" --out "$work/fed" 2>&1) ||
  fail "federation init: $out"

# write_config BROKER_ID BIND FEDERATION_LINES
write_config() {
  local id=$1 bind=$2 fed=$3 k="$work/fed/$1"
  cat >"$work/$id.toml" <<TOML
[broker]
id = "$id"
bind = "$bind"
data_dir = "$work/$id-data"
key_file = "$k/identity.key"
directory = "$k/directory"
anchor = "$k/authority.pub"
trust_state = "$k/trust-state"
endpoint_file = "$work/$id.endpoint"
[limits]
redelivery_ms = 3000
[policy]
allow_unscoped_opaque = true  # this test streams OPAQUE envelopes without consent grants
[federation]
$fed
link_timeout_ms = 3000
TOML
}
declare -A broker_pid endpoint
start_broker() {
  local id=$1
  rm -f "$work/$id.endpoint"
  (in_ns "$id" "$bin/refbus-broker" -c "$work/$id.toml") >>"$work/$id.log" 2>&1 &
  broker_pid[$id]=$!
  pids+=("$!")
  for _ in $(seq $((200 * slow))); do
    if [[ -s $work/$id.endpoint ]]; then endpoint[$id]=$(cat "$work/$id.endpoint"); return 0; fi
    kill -0 "${broker_pid[$id]}" 2>/dev/null || fail "broker $id exited at start"
    sleep 0.05
  done
  fail "broker $id did not start"
}
stop_broker() {
  local id=$1 rc
  kill -TERM "${broker_pid[$id]}"
  wait "${broker_pid[$id]}"; rc=$?
  [[ $rc -eq 0 ]] || fail "broker $id did not stop cleanly on SIGTERM (exit $rc)"
  say "broker $id stopped on SIGTERM with exit 0"
}

# read_link_status: region-a's status; sets link_state and link_backlog for its link to region-b.
link_state="" link_backlog=""
read_link_status() {
  local out
  out=$( (in_ns region-a "$bin/refbus-broker" -c "$work/region-a.toml" --status --json) 2>&1)
  printf '%s\n' "$out" >"$work/status-a.json"
  read -r link_state link_backlog < <(jq -r \
    '(.links // [])[] | select(.peer == "region-b") | "\(.state) \(.backlog)"' \
    <<<"$out" 2>/dev/null) || true
}
show_status() { echo "--- region-a status (refbus-broker --status --json):"; cat "$work/status-a.json"; }
# wait_link PREDICATE SECONDS: polls region-a's status until the predicate holds.
wait_link() {
  local deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    read_link_status
    "$1" && return 0
    sleep 0.2
  done
  return 1
}
down_with_backlog() { [[ $link_state == down && ${link_backlog:-0} -gt 0 ]]; }
not_up_holding_second_stream() { [[ -n $link_state && $link_state != up && ${link_backlog:-0} -ge $count2 ]]; }
up_and_empty() { [[ $link_state == up && $link_backlog == 0 ]]; }

# --- Brokers. region-b first: region-a's link needs its port (or the proxy's).
if [[ $mode == netns-cut ]]; then
  # Fixed ports (each namespace has its own); each side names the other's veth address.
  bind_a="tcp://${host[region-a]}:7451"
  bind_b="tcp://${host[region-b]}:7452"
  fed_b="endpoints = { region-a = \"$bind_a\" }"
else
  bind_a="tcp://127.0.0.1:*"
  bind_b="tcp://127.0.0.1:*"
  # region-b reaches region-a through region-a's endpoint file, read at each connect.
  fed_b="endpoint_files = { region-a = \"$work/region-a.endpoint\" }"
fi
write_config region-b "$bind_b" "$fed_b"
start_broker region-b
# Restarts bind the same port, so that region-a and the receiver find it again.
write_config region-b "${endpoint[region-b]}" "$fed_b"
link_to_b=${endpoint[region-b]}
if [[ $mode == proxy-cut ]]; then
  port_b=${endpoint[region-b]##*:}
  "$proxy_bin" --listen 127.0.0.1:0 --to "127.0.0.1:$port_b" --port-file "$work/proxy.port" \
    >>"$work/proxy.log" 2>&1 &
  proxy_pid=$!
  pids+=("$proxy_pid")
  for _ in $(seq 100); do [[ -s $work/proxy.port ]] && break; sleep 0.05; done
  [[ -s $work/proxy.port ]] || fail "the proxy did not start"
  link_to_b="tcp://127.0.0.1:$(cat "$work/proxy.port")"
  say "proxy on $link_to_b forwards to region-b at ${endpoint[region-b]}"
fi
fed_a="endpoints = { region-b = \"$link_to_b\" }"
if [[ $mode == kill-peer ]]; then
  fed_c="endpoint_files = { region-a = \"$work/region-a.endpoint\", region-b = \"$work/region-b.endpoint\" }"
  write_config region-c "tcp://127.0.0.1:*" "$fed_c"
  start_broker region-c
  fed_a="endpoints = { region-b = \"$link_to_b\", region-c = \"${endpoint[region-c]}\" }"
fi
write_config region-a "$bind_a" "$fed_a"
start_broker region-a
say "region-a at ${endpoint[region-a]} (link to region-b: $link_to_b), region-b at ${endpoint[region-b]}"

# --- The stream.
# receive AGENCY BROKER_ID EXPECT
receive() {
  (in_ns "$2" "$bin/refbus-loadgen" receive --dir "$work/fed/$1" --data "$work/$1-data" \
    --broker-endpoint "${endpoint[$2]}" --expect "$3" --received-log "$work/$1.ids" \
    --timeout "$agent_timeout") >"$work/$1.log" 2>&1 &
}
# send AGENCY TO COUNT
send() {
  (in_ns region-a "$bin/refbus-loadgen" send --dir "$work/fed/$1" --data "$work/$1-data" \
    --broker-endpoint "${endpoint[region-a]}" --to "$2" --count "$3" \
    --acked-log "$work/$1.acked" --timeout "$agent_timeout") >"$work/$1.log" 2>&1 &
}
if [[ $mode == kill-peer ]]; then
  receive recv-b region-b "$count"; rx_b=$!; pids+=("$rx_b")
  receive recv-c region-c "$count"; rx_c=$!; pids+=("$rx_c")
  send sender-police recv-b,recv-c "$count"; tx=$!; pids+=("$tx")
else
  receive recv-b region-b $((count + count2)); rx_b=$!; pids+=("$rx_b")
  receive recv-a region-a $((count + count2)); rx_a=$!; pids+=("$rx_a")
  send sender-police recv-b,recv-a "$count"; tx=$!; pids+=("$tx")
fi
say "streaming $count envelopes from sender-police (region-a) to recv-b (region-b)$(
  [[ $mode != kill-peer ]] && echo " and recv-a (region-a)" || echo " and recv-c (region-c)")"

# Until about a third of the stream has reached recv-b across the link.
deadline=$((SECONDS + 60 * slow))
while (($(lines "$work/recv-b.ids") < count / 3)); do
  ((SECONDS < deadline)) ||
    fail "recv-b got $(lines "$work/recv-b.ids") of $count in $((60 * slow)) s: is the link relaying?"
  kill -0 "$tx" 2>/dev/null || [[ -s $work/sender-police.acked ]] ||
    fail "the sender exited before anything was acked"
  sleep 0.05
done

if [[ $mode == kill-peer ]]; then
  n=$(lines "$work/recv-b.ids")
  say "killing region-b with SIGKILL after $n deliveries to recv-b ($(lines "$work/sender-police.acked") acked at region-a)"
  kill -9 "${broker_pid[region-b]}"
  wait "${broker_pid[region-b]}" 2>/dev/null
  sleep 1
  start_broker region-b
  say "region-b restarted on ${endpoint[region-b]}"
else
  cut_at=$SECONDS
  n_b=$(lines "$work/recv-b.ids")
  if [[ $mode == proxy-cut ]]; then
    kill -USR1 "$proxy_pid"
    say "link cut at the proxy (SIGUSR1) after $n_b deliveries to recv-b"
  else
    # region-b's side: a link set down loses its local routes too, and region-a's local
    # delivery (recv-a to region-a over veth-a's address) must go on.
    out=$(ip -n "$ns_b" link set veth-b down 2>&1) || fail "ip link set veth-b down: $out"
    say "link cut (veth-b down in $ns_b) after $n_b deliveries to recv-b"
  fi
  # (a) region-a reports the link down, with a backlog.
  if ! wait_link down_with_backlog $((cut_s - 6)); then
    show_status
    fail "region-a's status never showed the link to region-b down with a backlog during the cut (last: '${link_state:-none}' backlog '${link_backlog:-none}')"
  fi
  say "region-a status: link to region-b $link_state, backlog $link_backlog"
  # (b) Local delivery at region-a goes on: a second sender's envelopes all reach recv-a
  # while the link is down, and none reaches recv-b.
  n_a=$(lines "$work/recv-a.ids")
  send sender2-police recv-a,recv-b "$count2"; tx2=$!; pids+=("$tx2")
  until [[ $(lines "$work/sender2-police.acked") -ge $count2 ]] &&
    [[ $(grep -cxFf "$work/sender2-police.acked" "$work/recv-a.ids" 2>/dev/null) -ge $count2 ]]; do
    ((SECONDS < cut_at + cut_s - 1)) ||
      fail "during the cut, recv-a got $(grep -cxFf "$work/sender2-police.acked" "$work/recv-a.ids" 2>/dev/null) of sender2-police's $count2 envelopes ($(lines "$work/sender2-police.acked") acked)"
    sleep 0.1
  done
  leaked=$(grep -cxFf "$work/sender2-police.acked" "$work/recv-b.ids")
  [[ $leaked -eq 0 ]] || fail "$leaked of sender2-police's envelopes reached recv-b while the link was cut"
  if ! wait_link not_up_holding_second_stream 5; then
    show_status
    fail "during the cut, region-a's backlog for region-b is '${link_backlog:-none}' (state '${link_state:-none}'), below sender2-police's $count2"
  fi
  say "during the cut: recv-a went from $n_a to $(lines "$work/recv-a.ids") (all $count2 of sender2-police's), recv-b from $n_b to $(lines "$work/recv-b.ids") (none of them); backlog $link_backlog"
  ((SECONDS < cut_at + cut_s - 1)) || fail "the checks during the cut ran past the cut"
  while ((SECONDS < cut_at + cut_s)); do sleep 0.2; done
  read_link_status
  [[ $link_state != up ]] || { show_status; fail "the link to region-b is up at the end of the cut"; }
  if [[ $mode == proxy-cut ]]; then
    kill -USR2 "$proxy_pid"
  else
    out=$(ip -n "$ns_b" link set veth-b up 2>&1) || fail "ip link set veth-b up: $out"
  fi
  say "link healed after $((SECONDS - cut_at)) s (backlog then: $link_backlog)"
fi

# --- The end of the stream.
wait "$tx"; rc=$?
[[ $rc -eq 0 ]] || fail "sender-police exited $rc"
if [[ $mode != kill-peer ]]; then
  wait "$tx2"; rc=$?
  [[ $rc -eq 0 ]] || fail "sender2-police exited $rc"
  wait "$rx_a"; rc=$?
  [[ $rc -eq 0 ]] || fail "recv-a exited $rc"
fi
wait "$rx_b"; rc=$?
[[ $rc -eq 0 ]] || fail "recv-b exited $rc"
if [[ $mode == kill-peer ]]; then
  wait "$rx_c"; rc=$?
  [[ $rc -eq 0 ]] || fail "recv-c exited $rc"
fi
say "the stream is complete"
if [[ $mode == kill-peer ]]; then
  # region-a saw the connection close when region-b died (its socket monitor), rather than
  # waiting out link_timeout_ms for unanswered relays.
  grep -q "federation link to region-b DOWN: the connection to .* closed" "$work/region-a.log" ||
    fail "region-a's log does not say that the connection to region-b closed"
fi
if ! wait_link up_and_empty $((30 * slow)); then
  show_status
  fail "after the stream, region-a's link to region-b is '${link_state:-none}' with backlog '${link_backlog:-none}' (wanted up, 0)"
fi
sessions=$(jq -r '(.links // [])[] | select(.peer == "region-b") | .sessions' "$work/status-a.json")
say "region-a status: link to region-b up, backlog 0, $sessions sessions"

stop_broker region-a
stop_broker region-b
[[ $mode == kill-peer ]] && stop_broker region-c
if [[ $mode == proxy-cut ]]; then
  kill -TERM "$proxy_pid"; wait "$proxy_pid"; rc=$?
  [[ $rc -eq 0 ]] || fail "the proxy did not stop cleanly on SIGTERM (exit $rc)"
fi

# --- Exactly once, and in order per sender-recipient pair.
# check_pair SENDER RECEIVER: the receiver got the sender's envelopes in acked order.
check_pair() {
  local tx=$1 rx=$2
  awk '!seen[$0]++' "$work/$tx.acked" >"$work/$tx.order"
  awk 'NR == FNR { mine[$0]; next } $0 in mine' "$work/$tx.order" "$work/$rx.ids" \
    >"$work/$rx.from-$tx"
  if ! cmp -s "$work/$tx.order" "$work/$rx.from-$tx"; then
    local at want got
    at=$(awk 'NR == FNR { a[FNR] = $0; next } a[FNR] != $0 { print FNR; exit }' \
      "$work/$tx.order" "$work/$rx.from-$tx")
    want=$(sed -n "${at}p" "$work/$tx.order")
    got=$(grep -nxF "$want" "$work/$rx.from-$tx" | cut -d: -f1)
    fail "$rx did not get $tx's envelopes in acked order: acked #$at ($want) arrived as #${got:-never}, #$at was $(sed -n "${at}p" "$work/$rx.from-$tx") (acked as #$(grep -nxF "$(sed -n "${at}p" "$work/$rx.from-$tx")" "$work/$tx.order" | cut -d: -f1)); $(lines "$work/$tx.order") acked, $(lines "$work/$rx.from-$tx") received"
  fi
}
# check_receiver RECEIVER SENDERS...
check_receiver() {
  local rx=$1; shift
  local received unique
  received=$(lines "$work/$rx.ids")
  unique=$(sort -u "$work/$rx.ids" | wc -l)
  [[ $received -eq $unique ]] || fail "$((received - unique)) ids reached $rx twice"
  local acked_files=()
  for tx in "$@"; do acked_files+=("$work/$tx.acked"); done
  if ! cmp -s <(sort -u "${acked_files[@]}") <(sort "$work/$rx.ids"); then
    fail "$rx's received set differs from the acked set: $(comm -3 <(sort -u "${acked_files[@]}") <(sort "$work/$rx.ids") | head -5 | tr '\n' ' ')"
  fi
  for tx in "$@"; do check_pair "$tx" "$rx"; done
  say "$rx: received $received, all distinct, equal to the acked set, in acked order per sender; $(grep -E '^duplicates' "$work/$rx.log" | tr '\n' ' ')"
}
acked=$(sort -u "$work/sender-police.acked" | wc -l)
[[ $acked -eq $count ]] || fail "region-a acked $acked of sender-police's $count"
say "sender-police: $acked acked; $(grep -E '^(resent|sessions):' "$work/sender-police.log" | tr '\n' ' ')"
if [[ $mode == kill-peer ]]; then
  check_receiver recv-b sender-police
  check_receiver recv-c sender-police
else
  acked2=$(sort -u "$work/sender2-police.acked" | wc -l)
  [[ $acked2 -eq $count2 ]] || fail "region-a acked $acked2 of sender2-police's $count2"
  check_receiver recv-b sender-police sender2-police
  check_receiver recv-a sender-police sender2-police
fi
grep -hE 'federation link to region-b (DOWN|UP)' "$work/region-a.log" | tail -4
echo "1 passed, 0 failed"
