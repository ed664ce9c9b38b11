# Shared by the demo scripts that run a federation of real processes
# (deploy/workflow-demo.sh, deploy/linkage-demo.sh); sourced, not run. The caller sets:
#   bin       the folder holding refbus-broker, refbus-agent, refbus-audit
#   work      its work folder; the federation's parties are in $work/fed/<id>/ (refbus-keys
#             federation init --out "$work/fed")
#   brokers   the broker ids (array)
#   agencies  the agency ids (array), and home[agency]=broker (associative array)
#   demo_name its name, for error messages
# and gets die, the brokers and agents started and stopped, the CLI helpers below, and the
# auditor's verification of every broker's log. pids holds every process started; the
# EXIT trap stops what is still running.
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
die() { echo "$demo_name: $*" >&2; exit 1; }
declare -A broker_pid endpoint

# Writes each broker's broker.toml: its peers found through the endpoint files they write
# at start (read at each connect), as an operator would point it at the peers' published
# endpoints; every other broker witnesses its log. demo_broker_extra BROKER, if the caller
# defines it, prints more TOML for that broker (whole sections).
demo_write_broker_configs() {
  local b o files peers
  for b in "${brokers[@]}"; do
    files="" peers=""
    for o in "${brokers[@]}"; do
      [[ $o == "$b" ]] && continue
      files+="${files:+, }$o = \"$work/fed/$o/endpoint\""
      peers+="${peers:+, }\"$o\""
    done
    cat >"$work/fed/$b/broker.toml" <<TOML
[broker]
id = "$b"
bind = "tcp://127.0.0.1:*"
data_dir = "data"
key_file = "identity.key"
directory = "directory"
anchor = "authority.pub"
trust_state = "trust-state"
endpoint_file = "endpoint"
[federation]
endpoint_files = { $files }
link_timeout_ms = 5000
[witness]
peers = [ $peers ]
endpoint_files = { $files }
TOML
    if declare -F demo_broker_extra >/dev/null; then demo_broker_extra "$b" >>"$work/fed/$b/broker.toml"; fi
  done
}

# Starts every broker and waits for its endpoint file: endpoint[broker].
demo_start_brokers() {
  local b
  for b in "${brokers[@]}"; do
    "$bin/refbus-broker" -c "$work/fed/$b/broker.toml" >"$work/$b.log" 2>&1 &
    broker_pid[$b]=$!
    pids+=("$!")
  done
  for b in "${brokers[@]}"; do
    for _ in $(seq 200); do [[ -s "$work/fed/$b/endpoint" ]] && break; sleep 0.05; done
    [[ -s "$work/fed/$b/endpoint" ]] || die "$b did not start (see $work/$b.log)"
    endpoint[$b]=$(cat "$work/fed/$b/endpoint")
  done
}

# links_settled BROKER SINCE_MS: its status, written at or after SINCE_MS (the broker
# rewrites it every second), shows every federation link up and nothing queued on them.
links_settled() {
  local s t
  s=$("$bin/refbus-broker" -c "$work/fed/$1/broker.toml" --status --json 2>/dev/null) || return 1
  t=$(sed -n 's/^ *"time_ms": *\([0-9]*\).*/\1/p' <<<"$s" | head -1)
  [[ -n $t && $t -ge $2 ]] && grep -q '"running": *true' <<<"$s" &&
    [[ $(grep -c '"state": *"up"' <<<"$s") -eq $((${#brokers[@]} - 1)) ]] &&
    ! grep -q '"backlog": *[1-9]' <<<"$s"
}
wait_links() {
  local since b
  since=$(date +%s%3N)
  for b in "${brokers[@]}"; do
    for _ in $(seq 100); do links_settled "$b" "$since" && break; sleep 0.1; done
    links_settled "$b" "$since" ||
      die "$b: federation links not all up with an empty backlog: $("$bin/refbus-broker" \
        -c "$work/fed/$b/broker.toml" --status 2>&1) (see $work/$b.log)"
  done
}

# Writes each agency's agent.toml (at its home broker; demo_agent_extra AGENCY, if
# defined, prints more TOML), starts its daemon and waits for its session.
demo_start_agents() {
  local a d
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
broker_endpoint = "${endpoint[${home[$a]}]}"
[api]
listen = "127.0.0.1:0"
TOML
    if declare -F demo_agent_extra >/dev/null; then demo_agent_extra "$a" >>"$d/agent.toml"; fi
    "$bin/refbus-agent" run -c "$d/agent.toml" >"$work/$a.log" 2>&1 &
    pids+=("$!")
  done
  for a in "${agencies[@]}"; do
    for _ in $(seq 200); do
      "$bin/refbus-agent" status -c "$work/fed/$a/agent.toml" --json 2>/dev/null |
        grep -q '"session_ready": *true' && break
      sleep 0.05
    done
    "$bin/refbus-agent" status -c "$work/fed/$a/agent.toml" --json 2>/dev/null |
      grep -q '"session_ready": *true' ||
      die "$a has no session with ${home[$a]} (see $work/$a.log, $work/${home[$a]}.log)"
  done
}

# ag AGENCY OPERATOR COMMAND...: the CLI against that agency's daemon.
ag() { local a=$1 op=$2; shift 2; REFBUS_OPERATOR=$op "$bin/refbus-agent" "$@" -c "$work/fed/$a/agent.toml"; }
# jget JSON KEY: a top-level string field of a one-object JSON reply.
jget() { sed -n "s/.*\"$2\": *\"\\([^\"]*\\)\".*/\\1/p" <<<"$1" | head -1; }
# wait_for AGENCY OPERATOR PATTERN COMMAND...: until the command's output matches.
wait_for() {
  local a=$1 op=$2 pat=$3; shift 3
  local out=""
  for _ in $(seq 200); do
    out=$(ag "$a" "$op" "$@" 2>&1) && grep -q -- "$pat" <<<"$out" && return 0
    sleep 0.05
  done
  printf '%s\n' "$out" | head -40 >&2
  die "$a never saw '$pat' in '$*' (its last answer above; logs: $work/$a.log, $work/*-broker.log)"
}

# The auditor (its folder $work/fed/AUDITOR) fetches each broker's audit log with one
# cosignature at least and verifies it; prints what it found.
demo_audit_all() {
  local auditor=$1 b store
  for b in "${brokers[@]}"; do
    store="$work/$auditor-store/$b"
    echo "    $b:"
    "$bin/refbus-audit" fetch --dir "$work/fed/$auditor" --broker "$b" \
      --endpoint "${endpoint[$b]}" --store "$store" --wait-cosignatures 1 --wait-ms 20000 |
      sed 's/^/      /'
    "$bin/refbus-audit" verify --dir "$work/fed/$auditor" --store "$store" | sed 's/^/      /' ||
      die "$b's audit log did not verify"
    echo "      accesses without a matching consent:"
    "$bin/refbus-audit" unconsented --store "$store" | sed 's/^/        /'
  done
}

# Stops the agents, then the brokers, each with SIGTERM, and requires a clean exit.
demo_stop_all() {
  local p b
  for p in "${pids[@]:${#brokers[@]}}"; do kill -TERM "$p"; done
  for p in "${pids[@]:${#brokers[@]}}"; do wait "$p" || die "an agent did not stop cleanly"; done
  for b in "${brokers[@]}"; do kill -TERM "${broker_pid[$b]}"; done
  for b in "${brokers[@]}"; do wait "${broker_pid[$b]}" || die "$b did not stop cleanly"; done
  pids=()
}
