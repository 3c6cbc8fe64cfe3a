# Shared shell helpers for tools/quickstart.sh and the integration tests: free ports,
# starting redis-server / keyflow-broker / keyflowd in a run directory, waiting for them,
# and stopping everything by PID. Source it; set KF_RUN_DIR and KF_BIN_DIR first.

# The admin API's bearer token for every keyflowd and keyflowctl started from here (both
# read $KEYFLOW_ADMIN_TOKEN).
export KEYFLOW_ADMIN_TOKEN="${KEYFLOW_ADMIN_TOKEN:-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}"

# kf_free_port: prints a free TCP port on 127.0.0.1.
kf_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# kf_track PID: remembers a PID to stop in kf_stop_all.
kf_track() { echo "$1" >> "$KF_RUN_DIR/pids"; }

# kf_stop_all: stops every tracked process, newest first (so keyflowd drains while Kafka and
# Redis still run): TERM, then KILL after 15 s.
kf_stop_all() {
  [ -f "$KF_RUN_DIR/pids" ] || return 0
  local p
  for p in $(tac "$KF_RUN_DIR/pids"); do
    kill -TERM "$p" 2>/dev/null || continue
    for _ in $(seq 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  rm -f "$KF_RUN_DIR/pids"
}

# kf_wait_for CMD...: retries a command for up to 30 s.
kf_wait_for() {
  for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "timed out waiting for: $*" >&2; return 1
}

# kf_start_redis: starts redis-server on a free port; sets KF_REDIS (host:port).
kf_start_redis() {
  local port; port=$(kf_free_port)
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$KF_RUN_DIR" > "$KF_RUN_DIR/redis.log" 2>&1 &
  kf_track $!
  KF_REDIS="127.0.0.1:$port"
  kf_wait_for redis-cli -p "$port" ping
}

# kf_start_broker TOPIC:N...: starts keyflow-broker; sets KF_BOOTSTRAP.
kf_start_broker() {
  local args=()
  for t in "$@"; do args+=(--topic "$t"); done
  rm -f "$KF_RUN_DIR/bootstrap"
  "$KF_BIN_DIR/keyflow-broker" "${args[@]}" --bootstrap-file "$KF_RUN_DIR/bootstrap" \
    > "$KF_RUN_DIR/broker.log" 2>&1 &
  kf_track $!
  kf_wait_for test -s "$KF_RUN_DIR/bootstrap"
  KF_BOOTSTRAP=$(cat "$KF_RUN_DIR/bootstrap")
}

# kf_start_node ARGS...: starts keyflowd with extra ARGS; sets KF_NODE_PID and KF_METRICS.
kf_start_node() {
  local mport; mport=$(kf_free_port)
  "$KF_BIN_DIR/keyflowd" --metrics-address "127.0.0.1:$mport" --admin-address 127.0.0.1:0 "$@" \
    > "$KF_RUN_DIR/keyflowd.out" 2> "$KF_RUN_DIR/keyflowd.log" &
  KF_NODE_PID=$!
  kf_track $KF_NODE_PID
  KF_METRICS="http://127.0.0.1:$mport/metrics"
  kf_wait_for grep -q "keyflowd ready" "$KF_RUN_DIR/keyflowd.out" || {
    cat "$KF_RUN_DIR/keyflowd.log" >&2; return 1; }
}

# kf_crash_node: kill -9 of the node kf_start_node started, waiting until it is gone.
kf_crash_node() {
  kill -KILL "$KF_NODE_PID" 2>/dev/null || true
  wait "$KF_NODE_PID" 2>/dev/null || true
}

# kf_wait_checkpoints N: waits (up to 15 s) until the node has completed N checkpoints.
kf_wait_checkpoints() {
  for _ in $(seq 300); do
    [ "$(kf_metric '^keyflow_checkpoints_total.*result="completed"')" -ge "$1" ] && return 0
    sleep 0.05
  done
  echo "no $1 completed checkpoints" >&2; return 1
}

# kf_metric NAME_REGEX: sums the values of matching series from the node's /metrics.
kf_metric() {
  curl -fs "$KF_METRICS" | awk -v re="$1" '$0 !~ /^#/ && $1 ~ re { s += $NF } END { printf "%.0f\n", s }'
}

# kf_cdp_changed_state IN OUT: writes to OUT a copy of the cdp pipeline file IN whose operator
# 'aggregate' keeps one aggregate more: its state type changes, so a deploy of OUT over IN is
# refused naming 'aggregate'.
kf_cdp_changed_state() {
  sed -e 's/^      count: {fn: count}$/      count: {fn: count}\n      top: {fn: max, field: value}/' \
    "$1" > "$2"
  grep -q "top: {fn: max" "$2" || { echo "kf_cdp_changed_state: no aggregate list in $1" >&2; return 1; }
}

# kf_exit_code CMD...: runs CMD (its stdout and stderr to $KF_RUN_DIR/last.out and
# last.err) and prints its exit code, without stopping a `set -e` script when it fails.
kf_exit_code() {
  local rc=0
  "$@" > "$KF_RUN_DIR/last.out" 2> "$KF_RUN_DIR/last.err" || rc=$?
  echo $rc
}

# kf_json_get FILE EXPR: evaluates a Python expression over the JSON document `d` in FILE.
kf_json_get() {
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"
}

# kf_wait_processed N [AGG_OP]: waits (up to 120 s) until N records are accounted for: folded
# into keyed state by the aggregate operator (default id "aggregate") or dead-lettered.
kf_wait_processed() {
  local want=$1 op=${2:-aggregate} got=0
  for _ in $(seq 1200); do
    local agg dead
    agg=$(kf_metric "^keyflow_records_in_total.*operator=\"$op\"")
    dead=$(kf_metric '^keyflow_dead_letters_total')
    got=$(( ${agg:-0} + ${dead:-0} ))
    [ "$got" -ge "$want" ] && return 0
    sleep 0.05
  done
  echo "timed out: $got of $want records processed" >&2; return 1
}

# kf_test_finish: EXIT trap for integration tests. On failure it prints the record counts of
# the reference topics and the node's last log lines and keeps the run directory; on
# success it removes it (unless KF_KEEP_RUN_DIR=1). Always stops what was started.
kf_test_finish() {
  local rc=$?
  if [ $rc -ne 0 ] && [ -n "${KF_BOOTSTRAP:-}" ]; then
    for t in events events-dlq activations; do
      echo "--- records in $t: $(timeout 20 kcat -b "$KF_BOOTSTRAP" -C -t $t -e -q -f '%o\n' | wc -l)"
    done
  fi
  kf_stop_all
  if [ $rc -ne 0 ]; then
    echo "--- last keyflowd log:"; grep -v '^%' "$KF_RUN_DIR/keyflowd.log" | tail -30 || true
    echo "(run dir kept: $KF_RUN_DIR)"
  elif [ "${KF_KEEP_RUN_DIR:-0}" = 1 ]; then
    echo "(run dir kept: $KF_RUN_DIR)"
  else
    rm -rf "$KF_RUN_DIR"
  fi
}

# kf_cdp_any_partition ROOT OUT: writes to OUT the reference pipeline (ROOT/config/pipelines/
# cdp.yaml) without source.partitioned_by_key (records of one key in any partition), with its
# schema path made absolute; fails if the copy still declares it.
kf_cdp_any_partition() {
  sed -e '/partitioned_by_key/d' -e "s|proto: ../proto/|proto: $1/config/proto/|" \
    "$1/config/pipelines/cdp.yaml" > "$2"
  if grep -q partitioned_by_key "$2"; then
    echo "kf_cdp_any_partition: $2 still declares partitioned_by_key" >&2
    return 1
  fi
}
