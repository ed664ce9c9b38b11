#!/usr/bin/env bash
# refbus benchmarks: installs what is missing (deploy/install-deps.sh --bench), builds with
# benchmarks on, and measures in one run, on this machine:
#   - its limits: the per-message cryptography (crypto_floor_bench), LMDB durable group
#     commit (lmdb_commit_bench), a plain ZeroMQ CURVE forwarder with no storage;
#   - refbus-broker fed pre-sealed envelopes (broker_bench), with the window and one at a
#     time (--window 1);
#   - the peers, from Debian packages, started here as plain processes in a temp folder and
#     stopped afterwards: RabbitMQ (quorum and classic durable queues, persistent messages,
#     publisher confirms) and Mosquitto (QoS 1, persistence on) through peer_bench;
#   - refbus end to end (e2e_bench): referrals with 1 KiB of content sealed on the fly to 1
#     and to 3 recipients under a registered consent grant, from 4 sending agents to 4
#     receiving agents (agent::Client, durable outbox and inbox), through one broker and
#     across two federated brokers: the maximum rate, then latency from send to the opened
#     message p50/p99/p99.9 at 10%, 50% and 90% of it;
#   - how cost grows (scale_bench): throughput and broker memory with 10, 100 and 1,000
#     connected agencies; a backlog of 1,000,000 messages for an offline agency (broker
#     memory while it fills, drain rate on reconnect);
#   - refbus-broker start-up time over a 10,000,000-entry audit log (startup_bench);
#   - bulk deletion (issue 20): 10,000 and 100,000 items from CSV through two federated
#     brokers to a deletion center with one chunk held back (the integration test
#     BulkDeletionTest with REFBUS_BULK_ITEMS): time to the center holding the whole list
#     (including the 1 s chunk timeout), time for the full status report back, and each
#     agent's peak RSS;
# then prints one summary table with every figure and the ratios issue 8 sets as goals,
# saves every RESULT line to tests/bench/results/<date>-<host>.txt and plots end-to-end
# latency against offered load to tests/bench/results/latency.png (gnuplot).
# Not part of deploy/test.sh (it takes minutes and measures, it does not assert).
#
#   deploy/bench.sh [--messages N] [--window W] [--rate R] [--paced-messages P]
#                   [--sync-messages M] [--no-peers] [--e2e-messages E]
#                   [--paced-seconds T] [--agencies LIST] [--backlog B]
#                   [--audit-entries A] [--quick] [--only PARTS]
#
#   N messages at full speed with W in flight (default 20000, 64) for refbus, the forwarder
#   and every peer; P messages paced at R/s for refbus and the forwarder (5000, 1000);
#   M messages one at a time for all (2000). --no-peers skips RabbitMQ and Mosquitto.
#   E messages for each end-to-end maximum-rate run (20000), T seconds for each paced
#   end-to-end run (10); LIST of connected-agency counts (10,100,1000); B messages of
#   backlog (1000000); A audit-log entries for the start-up time (10000000).
#   --quick: the heavy parts at development size (backlog 20000, audit log 200000).
#   --only PARTS: a comma-separated subset of crypto,lmdb,broker,peers,e2e,scale,backlog,
#   startup,bulk (e.g. --only broker,peers to compare refbus and the peers side by side).
#   REFBUS_BENCH_BUILD: the build tree (default: build/ in the repository).
#   REFBUS_BENCH_SKIP_DEPS=1: do not run install-deps.sh (packages already there).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${REFBUS_BENCH_BUILD:-$root/build}
[[ "$build" == /* ]] || build="$root/$build"

messages=20000 window=64 rate=1000 paced=5000 sync=2000 peers=1
e2e_messages=20000 paced_seconds=10 agencies=10,100,1000 backlog=1000000 audit_entries=10000000
only=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --messages) messages=$2; shift 2 ;;
    --window) window=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --paced-messages) paced=$2; shift 2 ;;
    --sync-messages) sync=$2; shift 2 ;;
    --no-peers) peers=0; shift ;;
    --e2e-messages) e2e_messages=$2; shift 2 ;;
    --paced-seconds) paced_seconds=$2; shift 2 ;;
    --agencies) agencies=$2; shift 2 ;;
    --backlog) backlog=$2; shift 2 ;;
    --audit-entries) audit_entries=$2; shift 2 ;;
    --quick) backlog=20000 audit_entries=200000; shift ;;
    --only) only=$2; shift 2 ;;
    -h|--help) sed -n '2,44p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done

# --only LIST: run only these parts (crypto,lmdb,broker,peers,e2e,scale,backlog,startup,bulk);
# the summary marks the others n/a.
want() { [[ -z "$only" || ",$only," == *",$1,"* ]]; }

if [[ "${REFBUS_BENCH_SKIP_DEPS:-0}" != 1 ]]; then
  "$root/deploy/install-deps.sh" --bench
fi
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREFBUS_BUILD_BENCH=ON >/dev/null
targets=(broker_bench crypto_floor_bench lmdb_commit_bench e2e_bench scale_bench startup_bench
  refbus-broker refbus-agent integration_it_test)
[[ $peers == 1 ]] && targets+=(peer_bench)
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"
bin="$build/bin"
[[ -x "$bin/broker_bench" ]] || bin="$build/tests/bench"

work=$(mktemp -d "${TMPDIR:-/tmp}/refbus-bench.XXXXXX")
rabbit_pid="" mosq_pid="" epmd_port=""
cleanup() {
  if [[ -n "$rabbit_pid" ]]; then stop_rabbitmq || true; fi
  if [[ -n "$mosq_pid" ]]; then stop_mosquitto || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# ---- results: every bench prints "RESULT <name> key=value ..." lines -----------------
declare -A R
# run LABEL ALIAS -- command...: runs, shows and keeps the output; RESULT lines are stored
# as R[<alias or name>.<key>] and kept (under that name) for the results file. A failing
# bench is reported and the run goes on.
run() {
  local label=$1 alias=$2 out="$work/$1.out"
  shift 3
  echo
  echo "== $label"
  if ! "$@" >"$out" 2>&1; then
    echo "bench.sh: $label exited with an error (its figures are marked n/a if missing)"
  fi
  grep -v '^RESULT ' "$out" || true
  local line name kv fields
  while read -r line; do
    read -r -a fields <<<"$line"
    name=${fields[1]}
    [[ -n "$alias" ]] && name=$alias
    for kv in "${fields[@]:2}"; do R["$name.${kv%%=*}"]=${kv#*=}; done
    echo "RESULT $name ${fields[*]:2}" >>"$work/results.txt"
  done < <(grep '^RESULT ' "$out" || true)
}
get() { echo "${R[$1]:-n/a}"; }
yes_no() { case "$(get "$1")" in 1) echo yes ;; 0) echo NO ;; *) echo n/a ;; esac; }

free_port() {
  local p
  while true; do
    p=$((20000 + RANDOM % 30000))
    (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}
wait_port() {  # port, seconds
  for _ in $(seq 1 $(($2 * 10))); do
    (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# ---- the machine -----------------------------------------------------------------------
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
disk_dev=$(df --output=source "$work" | tail -1)
disk_name=$(basename "$(readlink -f "$disk_dev")")
disk_block=$disk_name
[[ -e /sys/class/block/$disk_name/partition ]] &&
  disk_block=$(basename "$(readlink -f "/sys/class/block/$disk_name/..")")
disk="$disk_dev"
if [[ -r /sys/block/$disk_block/queue/rotational ]]; then
  case "$disk_block" in vd*) disk+=" (virtio" ;; nvme*) disk+=" (NVMe" ;; *) disk+=" (" ;; esac
  disk+=", rotational=$(cat "/sys/block/$disk_block/queue/rotational") as reported)"
fi
machine="$(uname -srm); $cpu; $(nproc) cores; $mem; disk $disk"
echo "== machine: $machine"
echo "   load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- the limits and refbus -------------------------------------------------------------
want crypto && run "crypto floor" "" -- "$bin/crypto_floor_bench"
want lmdb && run "LMDB group commit" "" -- "$bin/lmdb_commit_bench" --dir "$work"
want broker && run "refbus-broker and the plain CURVE forwarder, window $window" broker -- \
  "$bin/broker_bench" --messages "$messages" --window "$window" --rate "$rate" \
  --paced-messages "$paced"
want broker && run "refbus-broker and the plain CURVE forwarder, one at a time" broker1 -- \
  "$bin/broker_bench" --messages "$sync" --window 1 --rate "$rate" --paced-messages 0

# ---- the peers -------------------------------------------------------------------------
rabbit_bin=/usr/lib/rabbitmq/bin
rabbit_env() {
  env HOME="$work/rabbitmq" RABBITMQ_NODENAME="$rabbit_node" \
    RABBITMQ_MNESIA_BASE="$work/rabbitmq/mnesia" RABBITMQ_LOG_BASE="$work/rabbitmq/log" \
    RABBITMQ_CONFIG_FILE="$work/rabbitmq/rabbitmq" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$work/rabbitmq/enabled_plugins" \
    RABBITMQ_PID_FILE="$work/rabbitmq/pid" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$rabbit_port" RABBITMQ_DIST_PORT="$rabbit_dist_port" \
    ERL_EPMD_PORT="$epmd_port" "$@"
}
start_rabbitmq() {
  rabbit_node="refbus-bench-$$@localhost"
  rabbit_port=$(free_port) rabbit_dist_port=$(free_port) epmd_port=$(free_port)
  mkdir -p "$work/rabbitmq"
  echo '[].' >"$work/rabbitmq/enabled_plugins"
  rabbit_env "$rabbit_bin/rabbitmq-server" >"$work/rabbitmq/server.log" 2>&1 &
  rabbit_pid=$!
  # await_startup gives up at once while the node has not yet registered with epmd: poll.
  local deadline=$((SECONDS + 120))
  until rabbit_env timeout 60 "$rabbit_bin/rabbitmqctl" -q -n "$rabbit_node" await_startup \
    >>"$work/rabbitmq/ctl.log" 2>&1; do
    if ((SECONDS > deadline)) || ! kill -0 "$rabbit_pid" 2>/dev/null; then
      echo "bench.sh: RabbitMQ did not start; its log:" >&2
      tail -20 "$work/rabbitmq/server.log" "$work/rabbitmq/ctl.log" >&2
      return 1
    fi
    sleep 1
  done
}
stop_rabbitmq() {
  rabbit_env timeout 60 "$rabbit_bin/rabbitmqctl" -q -n "$rabbit_node" stop >/dev/null 2>&1 ||
    kill "$rabbit_pid" 2>/dev/null || true
  wait "$rabbit_pid" 2>/dev/null || true
  rabbit_pid=""
  # rabbitmq-server started an epmd daemon on our port; nobody else uses that port.
  env ERL_EPMD_PORT="$epmd_port" epmd -kill >/dev/null 2>&1 || true
}
start_mosquitto() {
  mosq_port=$(free_port)
  mkdir -p "$work/mosquitto"
  {
    echo "listener $mosq_port 127.0.0.1"
    echo "allow_anonymous true"
    echo "persistence true"
    echo "persistence_location $work/mosquitto/"
    echo "max_inflight_messages 1024"   # as refbus's delivery_window in broker_bench
    echo "max_queued_messages 1000000"  # the default (1000) drops QoS 1 messages beyond it
    echo "log_dest file $work/mosquitto/mosquitto.log"
    [[ $(id -u) -eq 0 ]] && echo "user root"  # it would drop to a user who cannot write here
  } >"$work/mosquitto/mosquitto.conf"
  mosquitto -c "$work/mosquitto/mosquitto.conf" >"$work/mosquitto/stderr.log" 2>&1 &
  mosq_pid=$!
  if ! wait_port "$mosq_port" 20; then
    echo "bench.sh: Mosquitto did not start:" >&2
    cat "$work/mosquitto/stderr.log" "$work/mosquitto/mosquitto.log" >&2 2>/dev/null || true
    return 1
  fi
}
stop_mosquitto() {
  kill -TERM "$mosq_pid" 2>/dev/null || true
  wait "$mosq_pid" 2>/dev/null || true
  mosq_pid=""
}

if [[ $peers == 1 ]] && want peers; then
  if start_rabbitmq; then
    run "RabbitMQ $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null)" "" -- \
      "$bin/peer_bench" rabbitmq --port "$rabbit_port" --messages "$messages" \
      --window "$window" --sync-messages "$sync"
    stop_rabbitmq
  fi
  if start_mosquitto; then
    run "Mosquitto $(dpkg-query -W -f='${Version}' mosquitto 2>/dev/null)" "" -- \
      "$bin/peer_bench" mosquitto --port "$mosq_port" --messages "$messages" \
      --window "$window" --sync-messages "$sync"
    stop_mosquitto
  fi
fi

# ---- refbus end to end, scaling, backlog, start-up ------------------------------------
for brokers in 1 2; do
  for recipients in 1 3; do
    want e2e && run "end to end: $brokers broker(s), $recipients recipient(s) per message" "" -- \
      "$bin/e2e_bench" --brokers "$brokers" --recipients "$recipients" \
      --messages "$e2e_messages" --paced-seconds "$paced_seconds"
  done
done
want scale && run "broker with $agencies connected agencies" "" -- \
  "$bin/scale_bench" --mode scale --agencies "$agencies" --messages "$messages"
started=$SECONDS
want backlog && run "backlog of $backlog messages for an offline agency" "" -- \
  "$bin/scale_bench" --mode backlog --backlog "$backlog"
echo "   ($((SECONDS - started)) s)"
started=$SECONDS
want startup && run "start-up with a $audit_entries-entry audit log" "" -- \
  "$bin/startup_bench" --entries "$audit_entries" --dir "$work"
echo "   ($((SECONDS - started)) s)"
for n in 10000 100000; do
  want bulk && run "bulk deletion of $n items" "bulk_$n" -- env REFBUS_BULK_ITEMS=$n \
    "$build/bin/integration_it_test" \
    --gtest_filter='BulkDeletionTest.ThousandsOfItemsAcrossTwoBrokersWithADroppedChunk'
done

# ---- the summary -----------------------------------------------------------------------
ratio() {  # a / b with 2 decimals, or n/a
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a";
                                   else printf "%.2f", a / b }'
}
verdict() {  # value op threshold -> met / missed / n/a
  awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { if (v == "n/a" || t == "n/a") { print "n/a"; exit }
    ok = (op == ">=") ? (v + 0 >= t + 0) : (v + 0 <= t + 0); print ok ? "met" : "missed" }'
}
row() { printf "| %-50s | %10s | %8s | %8s | %8s | %8s | %s\n" "$@"; }
line() { printf '|%s\n' "----------------------------------------------------|------------|----------|----------|----------|----------|------"; }

b=broker b1=broker1
echo
echo "================================ refbus benchmark summary ================================"
echo "machine: $machine"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine moves every figure)"
echo "disk flush (4 KiB write + fdatasync): $(get lmdb.fsync_before_ms) ms at the LMDB bench," \
  "$(get $b.fsync_before_ms) / $(get $b.fsync_after_ms) ms before / after broker_bench"
echo "$messages messages of 1 KiB with $window in flight; one at a time: $sync messages;" \
  "paced: $paced at $rate/s"
echo "end to end: $e2e_messages messages at the maximum rate, then $paced_seconds s at each load;" \
  "scaling: $messages messages; backlog: $backlog messages; start-up: $audit_entries audit entries"
echo
row "what" "msg/s" "p50 ms" "p99 ms" "1by1 p50" "1by1 p99" "notes"
line
row "crypto floor, 1 recipient, 1 core" "$(get crypto.floor1_rate_1core)" - - - - \
  "seal $(get crypto.seal1_us) + verify $(get crypto.verify1_us) + open $(get crypto.open1_us) us"
row "crypto floor, 1 recipient, $(get crypto.cores) cores" "$(get crypto.floor1_rate_ncores)" - - - - \
  "1 core x cores; measured on all cores: $(get crypto.floor1_rate_measured)/s"
row "crypto floor, 3 recipients, $(get crypto.cores) cores" "$(get crypto.floor3_rate_ncores)" - - - - \
  "seal $(get crypto.seal3_us) + verify + 3 x open $(get crypto.open3_us) us"
row "broker's crypto (verify only), $(get crypto.cores) cores" "$(get crypto.verify_rate_ncores)" - - - - \
  "Ed25519 verify $(get crypto.sign_verify_us) us; sign $(get crypto.sign_us) us; X25519 $(get crypto.scalarmult_us) us"
for n in 1 16 64 256; do
  row "LMDB group commit, $n x 1 KiB per fsynced commit" "$(get lmdb.b${n}_records_s)" \
    "$(get lmdb.b${n}_p50_ms)" "$(get lmdb.b${n}_p99_ms)" - - "$(get lmdb.b${n}_commits_s) commits/s"
done
row "plain CURVE forwarder (no storage)" "$(get $b.fwd_rate)" "$(get $b.fwd_p50_ms)" \
  "$(get $b.fwd_p99_ms)" "$(get $b1.fwd_p50_ms)" "$(get $b1.fwd_p99_ms)" \
  "paced $rate/s: p50 $(get $b.fwd_paced_p50_ms) p99 $(get $b.fwd_paced_p99_ms) ms"
row "refbus-broker (durable, audited, CURVE)" "$(get $b.brk_rate)" "$(get $b.brk_p50_ms)" \
  "$(get $b.brk_p99_ms)" "$(get $b1.brk_p50_ms)" "$(get $b1.brk_p99_ms)" \
  "paced $rate/s: p50 $(get $b.brk_paced_p50_ms) p99 $(get $b.brk_paced_p99_ms) ms; refused $(get $b.brk_refused)"
if [[ $peers == 1 ]]; then
  row "RabbitMQ quorum queue, persistent, confirms" "$(get rabbitmq_quorum.rate)" \
    "$(get rabbitmq_quorum.p50_ms)" "$(get rabbitmq_quorum.p99_ms)" \
    "$(get rabbitmq_quorum.sync_p50_ms)" "$(get rabbitmq_quorum.sync_p99_ms)" \
    "consumer $(get rabbitmq_quorum.consume_rate)/s end to end; all received: $(yes_no rabbitmq_quorum.ok)"
  row "RabbitMQ classic durable queue, same" "$(get rabbitmq_classic.rate)" \
    "$(get rabbitmq_classic.p50_ms)" "$(get rabbitmq_classic.p99_ms)" \
    "$(get rabbitmq_classic.sync_p50_ms)" "$(get rabbitmq_classic.sync_p99_ms)" \
    "consumer $(get rabbitmq_classic.consume_rate)/s end to end; all received: $(yes_no rabbitmq_classic.ok)"
  row "Mosquitto QoS 1, persistence on" "$(get mosquitto.rate)" "$(get mosquitto.p50_ms)" \
    "$(get mosquitto.p99_ms)" "$(get mosquitto.sync_p50_ms)" "$(get mosquitto.sync_p99_ms)" \
    "PUBACK from memory (disk snapshot every 1800 s and at exit); consumer $(get mosquitto.consume_rate)/s; all received: $(yes_no mosquitto.ok)"
fi
line
r_fwd=$(ratio "$(get $b.brk_rate)" "$(get $b.fwd_rate)")
row "ratio refbus-broker / forwarder" "$r_fwd" - - - - "goal >= 0.50: $(verdict "$r_fwd" ">=" 0.5)"
r_ver=$(ratio "$(get $b.brk_rate)" "$(get crypto.verify_rate_ncores)")
row "ratio refbus-broker / its crypto ceiling" "$r_ver" - - - - "verify only, all cores (no goal)"
if [[ $peers == 1 ]]; then
  r_rmq=$(ratio "$(get $b.brk_rate)" "$(get rabbitmq_quorum.rate)")
  row "ratio refbus-broker / RabbitMQ quorum" "$r_rmq" - - - - \
    "goal >= 1: $(verdict "$r_rmq" ">=" 1); aim >= 2: $(verdict "$r_rmq" ">=" 2)"
  r_lat=$(ratio "$(get $b1.brk_p50_ms)" "$(get rabbitmq_quorum.sync_p50_ms)")
  row "1by1 ack p50, refbus / RabbitMQ quorum" "$r_lat" - - "$(get $b1.brk_p50_ms)" \
    "$(get rabbitmq_quorum.sync_p50_ms)" "goal <= 1: $(verdict "$r_lat" "<=" 1)"
  row "ratio refbus-broker / RabbitMQ classic" \
    "$(ratio "$(get $b.brk_rate)" "$(get rabbitmq_classic.rate)")" - - - - "(no goal)"
  row "ratio refbus-broker / Mosquitto" "$(ratio "$(get $b.brk_rate)" "$(get mosquitto.rate)")" \
    - - - - "(no goal; Mosquitto's ack is not durable)"
fi
line
e2e_rows() {  # alias, label
  local k=$1 label=$2 l
  row "$label, max" "$(get "$k.max_rate")" "$(get "$k.max_p50_ms")" "$(get "$k.max_p99_ms")" - - \
    "p99.9 $(get "$k.max_p999_ms") ms; $(get "$k.deliveries_rate") openings/s; all opened: $(yes_no "$k.ok")"
  for l in 10 50 90; do
    row "  at $l% ($(get "$k.l${l}_offered") msg/s offered)" "$(get "$k.l${l}_rate")" \
      "$(get "$k.l${l}_p50_ms")" "$(get "$k.l${l}_p99_ms")" - - \
      "p99.9 $(get "$k.l${l}_p999_ms") ms; senders' worst lag $(get "$k.l${l}_lag_ms") ms"
  done
}
e2e_rows e2e_b1_r1 "e2e, 1 broker, 1 recipient"
e2e_rows e2e_b1_r3 "e2e, 1 broker, 3 recipients"
e2e_rows e2e_b2_r1 "e2e, 2 federated brokers, 1 recipient"
e2e_rows e2e_b2_r3 "e2e, 2 federated brokers, 3 recipients"
line
for k in b1_r1 b2_r1; do
  r_e2e=$(ratio "$(get "e2e_$k.max_rate")" "$(get crypto.floor1_rate_ncores)")
  row "ratio e2e ${k/_/ } / crypto floor, 1 recipient" "$r_e2e" - - - - \
    "goal >= 0.70: $(verdict "$r_e2e" ">=" 0.7)"
done
for k in b1_r3 b2_r3; do
  r_e2e=$(ratio "$(get "e2e_$k.max_rate")" "$(get crypto.floor3_rate_ncores)")
  row "ratio e2e ${k/_/ } / crypto floor, 3 recipients" "$r_e2e" - - - - \
    "goal >= 0.70: $(verdict "$r_e2e" ">=" 0.7)"
done
line
for n in ${agencies//,/ }; do
  row "broker with $n connected agencies" "$(get "scale.n${n}_rate")" - - - - \
    "broker RSS $(get "scale.n${n}_rss_start_mb") MiB at start, $(get "scale.n${n}_rss_idle_mb") with them connected (heap $(get "scale.n${n}_anon_idle_mb")), peak $(get "scale.n${n}_hwm_mb"); Hellos $(get "scale.n${n}_connect_s") s"
done
heap_growth=$(awk -v a="$(get backlog.anon_before_fill_mb)" -v b="$(get backlog.anon_max_fill_mb)" \
  'BEGIN { if (a == "n/a" || b == "n/a") print "n/a"; else printf "%.1f", b - a }')
row "backlog: $(get backlog.messages) queued for an offline agency" "$(get backlog.fill_rate)" - - - - \
  "broker heap (RssAnon) $(get backlog.anon_before_fill_mb) / $(get backlog.anon_mid_fill_mb) / $(get backlog.anon_after_fill_mb) MiB at 0/50/100%: +$heap_growth MiB at most; VmRSS $(get backlog.rss_before_fill_mb) / $(get backlog.rss_mid_fill_mb) / $(get backlog.rss_after_fill_mb) MiB (with LMDB's mapped file pages, which the kernel can reclaim); store $(get backlog.store_mb) MiB"
row "backlog: drained on reconnect" "$(get backlog.drain_rate)" - - - - \
  "$(get backlog.drain_s) s; online rate $(get backlog.online_rate)/s; drain / online $(get backlog.drain_ratio) (full speed, >= 1: $(verdict "$(get backlog.drain_ratio)" ">=" 1)); all delivered: $(yes_no backlog.ok)"
row "start-up, $(get startup.entries)-entry audit log" - - - - - \
  "exec to listening $(get startup.median_ms) ms (first $(get startup.first_ms) ms; empty store $(get startup.empty_ms) ms); RSS $(get startup.rss_mb) MiB; store $(get startup.store_mb) MiB, built in $(get startup.build_s) s"
for n in 10000 100000; do
  row "bulk deletion, $(get bulk_$n.items) items (CSV, 2 brokers)" - - - - - \
    "center holds the list $(get bulk_$n.list_held_ms) ms after the send ($(get bulk_$n.send_ms) ms; incl. a 1 s chunk timeout); full status back $(get bulk_$n.status_back_ms) ms; peak RSS requester $(get bulk_$n.requester_peak_rss_kib) KiB, center $(get bulk_$n.center_peak_rss_kib) KiB"
done

# ---- the results file and the latency plot -------------------------------------------------
results_dir="$root/tests/bench/results"
mkdir -p "$results_dir"
host=$(hostname -s 2>/dev/null || hostname)
results="$results_dir/$(date +%Y-%m-%d)-$host.txt"
n=2
while [[ -e "$results" ]]; do results="$results_dir/$(date +%Y-%m-%d)-$host-$n.txt"; n=$((n + 1)); done
{
  echo "# refbus deploy/bench.sh, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# machine: $machine"
  echo "# commit: $(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)$(
    [[ -n "$(git -C "$root" status --porcelain 2>/dev/null)" ]] && echo " (with local changes)")"
  echo "# options: --messages $messages --window $window --rate $rate --paced-messages $paced" \
    "--sync-messages $sync --e2e-messages $e2e_messages --paced-seconds $paced_seconds" \
    "--agencies $agencies --backlog $backlog --audit-entries $audit_entries$([[ $peers == 0 ]] && echo " --no-peers")$([[ -n $only ]] && echo " --only $only")"
  echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  cat "$work/results.txt" 2>/dev/null || true
} >"$results"
echo
echo "results: $results"

# Latency (ms, log scale) against offered load (msg/s), one panel per end-to-end setup.
png="$results_dir/latency.png"
if command -v gnuplot >/dev/null && want e2e; then
  plot="$work/latency.gp"
  {
    echo "set terminal pngcairo size 1400,1000 font ',10'"
    echo "set output '$png'"
    echo "set multiplot layout 2,2 title 'refbus end to end, send to opened: latency against offered load ($host, $(date +%Y-%m-%d))'"
    echo "set logscale y; set grid; set key top left"
    echo "set xlabel 'offered load (msg/s; 10, 50, 90% of the maximum rate)'; set ylabel 'latency (ms)'"
  } >"$plot"
  panels=0
  for k in b1_r1 b1_r3 b2_r1 b2_r3; do
    dat="$work/latency-$k.dat"
    : >"$dat"
    for l in 10 50 90; do
      v=("$(get "e2e_$k.l${l}_offered")" "$(get "e2e_$k.l${l}_p50_ms")" \
        "$(get "e2e_$k.l${l}_p99_ms")" "$(get "e2e_$k.l${l}_p999_ms")")
      [[ " ${v[*]} " == *" n/a "* ]] || echo "${v[*]}" >>"$dat"
    done
    [[ -s "$dat" ]] || continue
    brokers=${k:1:1} recipients=${k:4:1}
    {
      echo "set title '$([[ $brokers == 1 ]] && echo "1 broker" || echo "2 federated brokers"), $recipients recipient$([[ $recipients == 1 ]] || echo s) per message (max $(get "e2e_$k.max_rate") msg/s)'"
      echo "plot '$dat' using 1:2 with linespoints lw 2 title 'p50', '' using 1:3 with linespoints lw 2 title 'p99', '' using 1:4 with linespoints lw 2 title 'p99.9'"
    } >>"$plot"
    panels=$((panels + 1))
  done
  echo "unset multiplot" >>"$plot"
  if ((panels > 0)) && gnuplot "$plot" 2>"$work/gnuplot.err"; then
    echo "latency plot: $png"
  else
    echo "bench.sh: no latency plot (no end-to-end figures, or gnuplot failed:" \
      "$(head -3 "$work/gnuplot.err" 2>/dev/null))"
  fi
else
  echo "bench.sh: gnuplot is not installed (deploy/install-deps.sh --bench): no latency plot"
fi
