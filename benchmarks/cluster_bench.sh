#!/usr/bin/env bash
# Cluster benchmark: keyflowd cluster mode (config/pipelines/cdp.yaml, 6 regions = the 6
# partitions of "events") on this machine, every process on loopback.
#   1. throughput with 1, 2 and 3 nodes (--workers 1 each): E events preloaded into a fresh
#      keyflow-broker before the nodes start; events/s = records read (source records_in
#      summed over the nodes) between the first poll that saw a record and the poll that saw
#      all E (polls every 100 ms); also from the moment every region runs on its owner. CPU
#      (nodes; broker + redis) over the same span, peak RSS (VmHWM) per node;
#   2. bytes between the nodes in the 3-node run (ss -tni, bytes_sent of every socket on a
#      cluster port) and per record;
#   3. failover: 3 nodes, keyflow-gen at a steady rate, kill -9 of node 3 (not the
#      coordinator), --repeat times (restarted and covered again in between); the parts
#      (detection, assignment, region restore, running again, output again) from the
#      survivors' logs and from the profiles' versions in Redis.
# --spread: the same pipeline without source.partitioned_by_key, events sent to random
# partitions: a job spread over the nodes in 6 slices (src/node/spread_job.hpp), whose
# records cross the middleman to their key group's node; throughput and bytes only (the
# failover phase reads the region logs of independent regions).
# Prints tables; --json FILE writes the summary. Fails only on errors (a node that does not
# start, records not all processed in time, a failover that does not complete), never on
# timings. See benchmarks/README.md.
#
# Usage: cluster_bench.sh BIN_DIR REPO_ROOT [--short] [--json FILE] [--events N]
#          [--rate R] [--repeat N] [--failure-timeout-ms MS] [--only throughput|failover]
#          [--keep] [--spread]
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
BIN=$(cd "$1" && pwd)
ROOT=$(cd "$2" && pwd)
shift 2
SHORT=0 JSON="" EVENTS="" RATE=5000 REPEAT=3 FAILURE_MS=1500 ONLY="" KEEP=0 SPREAD=0
while [ $# -gt 0 ]; do
  case $1 in
    --short) SHORT=1 ;;
    --json) JSON=$2; shift ;;
    --events) EVENTS=$2; shift ;;
    --rate) RATE=$2; shift ;;
    --repeat) REPEAT=$2; shift ;;
    --failure-timeout-ms) FAILURE_MS=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --keep) KEEP=1 ;;
    --spread) SPREAD=1; ONLY=throughput ;;
    *) echo "cluster_bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$EVENTS" ]; then
  if [ $SHORT = 1 ]; then EVENTS=100000; else EVENTS=1000000; fi
fi
STEADY=4                     # seconds the cluster runs steadily before each kill
[ $SHORT = 1 ] && STEADY=2
HEARTBEAT_MS=150
CUSTOMERS=2000
ZIPF=0.8
PIPELINE=$ROOT/config/pipelines/cdp.yaml
PY=/usr/bin/python3          # has redis (the output watch); json/urllib for the rest
HELPER=$ROOT/benchmarks/cluster_bench.py
for tool in keyflowd keyflow-broker keyflow-gen; do
  [ -x "$BIN/$tool" ] || { echo "cluster_bench.sh: $BIN/$tool not found" >&2; exit 2; }
done
for tool in redis-server redis-cli kcat ss; do
  command -v $tool > /dev/null || { echo "cluster_bench.sh: $tool not on PATH" >&2; exit 2; }
done
[ -x $PY ] || { echo "cluster_bench.sh: $PY not found" >&2; exit 2; }
[ -n "$JSON" ] && JSON=$(realpath -m "$JSON")

TOP=$(mktemp -d /tmp/keyflow-bench-cluster.XXXXXX)
RESULTS=$TOP/results
mkdir -p "$RESULTS"
export KF_BIN_DIR=$BIN
export KF_RUN_DIR=$TOP/setup
mkdir -p "$KF_RUN_DIR"
# shellcheck source=tools/lib.sh
source "$ROOT/tools/lib.sh"
PHASES=()
GEN_EXTRA=()
if [ $SPREAD = 1 ]; then # records of one key in every partition: a spread job
  kf_cdp_any_partition "$ROOT" "$TOP/cdp-spread.yaml" || exit 1
  PIPELINE=$TOP/cdp-spread.yaml
  GEN_EXTRA=(--random-partition)
fi

# On exit: stop everything every phase started; on failure show the nodes' last log lines
# of the current phase and keep the run directory.
finish() {
  local rc=$?
  set +e
  if [ $rc -ne 0 ]; then
    for f in "$KF_RUN_DIR"/n*.log; do
      [ -f "$f" ] || continue
      echo "--- $f:"; grep -v '^%' "$f" | grep -v "checkpoint [0-9]* complete" | tail -15
    done
  fi
  for d in "${PHASES[@]}"; do KF_RUN_DIR=$d kf_stop_all; done
  if [ $rc -ne 0 ] || [ $KEEP = 1 ]; then
    echo "(run directory kept: $TOP)"
  else
    rm -rf "$TOP"
  fi
  exit $rc
}
trap finish EXIT
trap 'exit 130' INT TERM
fail() { echo "FAIL: $*" >&2; exit 1; }
ms() { date +%s%3N; }

# phase NAME: a fresh run directory (broker, redis, nodes) for the next measurement.
phase() {
  KF_RUN_DIR=$TOP/$1
  mkdir -p "$KF_RUN_DIR"
  PHASES+=("$KF_RUN_DIR")
  unset PID CPORT MPORT APORT
  declare -gA PID CPORT MPORT APORT
}

# stop_phase: stops what the current phase started: the nodes all at once (SIGTERM: each
# drains its regions; one by one, each leaving node would hand its regions to the next),
# then the rest.
stop_phase() {
  local i
  for i in "${!PID[@]}"; do kill -TERM "${PID[$i]}" 2> /dev/null || true; done
  for i in "${!PID[@]}"; do
    for _ in $(seq 150); do kill -0 "${PID[$i]}" 2> /dev/null || break; sleep 0.1; done
  done
  kf_stop_all
}

# topic_count: records in "events" (sum of the high watermarks); fails if the broker's
# retention (~5 MiB per partition) dropped any (a low watermark above 0).
topic_count() {
  local args=() p
  for p in 0 1 2 3 4 5; do args+=(-t "events:$p:-2"); done
  local low; low=$(kcat -b "$KF_BOOTSTRAP" -Q "${args[@]}" | awk '/offset/ { s += $NF } END { print s + 0 }')
  [ "$low" = 0 ] || fail "keyflow-broker dropped $low records of 'events' (retention); use fewer --events"
  args=()
  for p in 0 1 2 3 4 5; do args+=(-t "events:$p:-1"); done
  kcat -b "$KF_BOOTSTRAP" -Q "${args[@]}" | awk '/offset/ { s += $NF } END { print s + 0 }'
}

# start_node I SEEDS [keep-ports]: starts cluster node I of the current phase in the
# background (its cluster port CPORT[I] must be set; metrics and status ports are picked
# here unless keep-ports: then MPORT[I] and APORT[I] are set already).
start_node() {
  local i=$1 seeds=$2
  if [ "${3:-}" != keep-ports ]; then
    MPORT[$i]=$(kf_free_port)
    APORT[$i]=$(kf_free_port)
  fi
  "$BIN/keyflowd" --pipeline "$PIPELINE" --bootstrap-servers "$KF_BOOTSTRAP" \
    --redis "$KF_REDIS" --state-dir "$KF_RUN_DIR/n$i/state" \
    --checkpoint-dir "$KF_RUN_DIR/shared" --checkpoint-interval-ms 1000 --node-id "$i" \
    --cluster-address "127.0.0.1:${CPORT[$i]}" --seeds "$seeds" --heartbeat-ms $HEARTBEAT_MS \
    --failure-timeout-ms "$FAILURE_MS" --workers 1 \
    --metrics-address "127.0.0.1:${MPORT[$i]}" --admin-address "127.0.0.1:${APORT[$i]}" \
    > "$KF_RUN_DIR/n$i.out" 2>> "$KF_RUN_DIR/n$i.log" &
  PID[$i]=$!
  kf_track "${PID[$i]}"
}

# wait_ready I: waits (30 s) for node I's "keyflowd ready" line.
wait_ready() {
  local i=$1
  for _ in $(seq 300); do
    grep -q "keyflowd ready" "$KF_RUN_DIR/n$i.out" 2> /dev/null && return 0
    kill -0 "${PID[$i]}" 2> /dev/null ||
      fail "node $i exited before it was ready: $(grep -v '^%' "$KF_RUN_DIR/n$i.log" | tail -5)"
    sleep 0.1
  done
  fail "node $i did not start within 30 s (log: $KF_RUN_DIR/n$i.log)"
}

status_url() { echo "http://127.0.0.1:${APORT[$1]}/status"; }
metrics_url() { echo "http://127.0.0.1:${MPORT[$1]}/metrics"; }

# seeds_of K: the cluster addresses of nodes 1..K.
seeds_of() {
  local s="" i
  for i in $(seq "$1"); do s+="${s:+,}127.0.0.1:${CPORT[$i]}"; done
  echo "$s"
}

# ------------------------------------------------------------------ 1 + 2: throughput
# throughput K [ATTEMPT]: one run with K nodes in a fresh phase; a run whose start was not
# clean (the coordinator assigned before it heard every node, so regions moved while
# starting and some records were read twice) is repeated once, and flagged if it happens
# again.
throughput() {
  local k=$1 attempt=${2:-1} i
  phase "tp$k-$attempt"
  kf_start_redis
  kf_start_broker events:6 events-dlq:1 activations:1
  local others; mapfile -t others < "$KF_RUN_DIR/pids"   # redis-server, keyflow-broker
  local t0; t0=$(ms)
  # zstd: the embedded broker keeps the newest ~5 MiB per partition; lz4 overflows its
  # hottest partitions at 1 M events of this skew.
  "$BIN/keyflow-gen" --bootstrap-servers "$KF_BOOTSTRAP" --events "$EVENTS" "${GEN_EXTRA[@]}" \
    --customers $CUSTOMERS --zipf $ZIPF --seed 7 --compression zstd \
    --summary "$KF_RUN_DIR/summary.json" 2> "$KF_RUN_DIR/gen.log" ||
    fail "keyflow-gen failed: $(tail -3 "$KF_RUN_DIR/gen.log")"
  local n; n=$(topic_count)
  [ "$n" = "$EVENTS" ] || fail "'events' holds $n records, expected $EVENTS"
  echo "   preloaded $EVENTS events in $(( $(ms) - t0 )) ms"
  for i in $(seq "$k"); do
    CPORT[$i]=$(kf_free_port) MPORT[$i]=$(kf_free_port) APORT[$i]=$(kf_free_port)
  done
  local seeds; seeds=$(seeds_of "$k")
  # Highest id first, the coordinator (node 1) last, all within a few ms: node 1 finds the
  # others listening and hears them within its quiet period (--failure-timeout-ms), so its
  # first assignment covers every node.
  for i in $(seq "$k" -1 1); do start_node "$i" "$seeds" keep-ports; done
  local urls=() pids=()
  for i in $(seq "$k"); do urls+=("$(metrics_url "$i")"); pids+=("${PID[$i]}"); done
  local ports=()
  [ "$k" = 3 ] && ports=(--cluster-ports "${CPORT[@]}")
  local timeout=$(( EVENTS / 5000 ))
  [ $timeout -lt 60 ] && timeout=60
  $PY "$HELPER" sample --metrics "${urls[@]}" --pids "${pids[@]}" --other-pids "${others[@]}" \
    --status "$(status_url 1)" --nodes "$k" "${ports[@]}" --events "$EVENTS" \
    --timeout $timeout --out "$KF_RUN_DIR/sample.json" ||
    fail "$k node(s): the $EVENTS events were not all processed"
  for i in $(seq "$k"); do wait_ready "$i"; done
  stop_phase
  local clean
  clean=$($PY -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["clean_start"]))' \
            "$KF_RUN_DIR/sample.json")
  if [ "$clean" = 0 ]; then
    echo "   note: $k node(s), attempt $attempt: not a clean start (regions moved while" \
         "starting; see $KF_RUN_DIR/n1.log)"
    if [ "$attempt" = 1 ]; then
      throughput "$k" 2
      return
    fi
  fi
  cp "$KF_RUN_DIR/sample.json" "$RESULTS/tp$k.json"
  $PY - "$RESULTS/tp$k.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
span = (s["t_read_all_ms"] - s["t_first_ms"]) / 1000
print(f"   {s['nodes']} node(s): {(s['events'] - s['n_first']) / span:,.0f} events/s "
      f"({span:.2f} s first -> last read), peak RSS "
      + " / ".join(f"{k / 1024:.0f}" for k in s["peak_rss_kib"]) + " MiB"
      + ("" if s["clean_start"] else " (NOT a clean start)"))
EOF
}

# ------------------------------------------------------------------ 3: failover
failover() {
  local i rep
  phase failover
  kf_start_redis
  kf_start_broker events:6 events-dlq:1 activations:1
  for i in 1 2 3; do
    CPORT[$i]=$(kf_free_port) MPORT[$i]=$(kf_free_port) APORT[$i]=$(kf_free_port)
  done
  local seeds; seeds=$(seeds_of 3)
  for i in 3 2 1; do start_node "$i" "$seeds" keep-ports; done
  for i in 1 2 3; do wait_ready "$i"; done
  $PY "$HELPER" covered "$(status_url 1)" 3 --timeout 60 ||
    fail "3 nodes: regions not all running on their owners within 60 s"
  "$BIN/keyflow-gen" --bootstrap-servers "$KF_BOOTSTRAP" --events $(( RATE * 900 )) \
    --customers $CUSTOMERS --zipf $ZIPF --rate "$RATE" --seed 11 \
    --summary "$KF_RUN_DIR/summary.json" 2> "$KF_RUN_DIR/gen.log" &
  kf_track $!
  sleep "$STEADY"
  # The 3 hottest customers of every partition (from its first 3000 records): their profiles'
  # versions in Redis show when a moved partition's output flows again.
  local keys=() p hot
  for p in 0 1 2 3 4 5; do
    hot=$(timeout 20 kcat -b "$KF_BOOTSTRAP" -C -t events -p $p -o beginning -c 3000 -e -q \
            -f '%k\n' | sort | uniq -c | sort -rn | awk 'NR <= 3 { print $2 }' | paste -sd,) ||
      fail "kcat could not read partition $p of 'events'"
    [ -n "$hot" ] || fail "no records in partition $p of 'events' to pick customers from"
    keys+=("$p:$hot")
  done
  $PY "$HELPER" watch --redis "$KF_REDIS" --keys "${keys[@]}" --out "$KF_RUN_DIR/watch.txt" &
  kf_track $!
  sleep 1
  for rep in $(seq "$REPEAT"); do
    local coord; coord=$($PY "$ROOT/tests/integration/cluster_status.py" coordinator "$(status_url 1)")
    [ "$coord" = 1 ] || fail "node 1 is not the coordinator (node $coord is)"
    local moved=()   # region:partition,... of each region node 3 runs
    read -ra moved <<< "$($PY "$HELPER" running "$(status_url 3)")"
    [ ${#moved[@]} -gt 0 ] || fail "node 3 runs no region before kill $rep"
    local kill_ms; kill_ms=$(ms)
    kill -KILL "${PID[3]}"
    wait "${PID[3]}" 2> /dev/null || true
    $PY "$HELPER" covered "$(status_url 1)" 2 --timeout 30 ||
      fail "failover $rep: the regions of node 3 (${moved[*]}) were not all running again within 30 s"
    $PY "$HELPER" failover --kill-ms "$kill_ms" --victim 3 --moved "${moved[@]}" \
      --coordinator-log "$KF_RUN_DIR/n1.log" --log "$KF_RUN_DIR/n1.log" "$KF_RUN_DIR/n2.log" \
      --watch "$KF_RUN_DIR/watch.txt" --failure-timeout-ms "$FAILURE_MS" --wait 15 \
      --out "$RESULTS/fo$rep.json" || fail "failover $rep did not complete"
    $PY - "$RESULTS/fo$rep.json" "$rep" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
o = r.get("output_again_ms")
print(f"   kill {sys.argv[2]}: regions {' '.join(map(str, r['moved_regions']))} moved; detected "
      f"{r['detected_ms']:.0f} ms, assigned {r['assigned_ms']:.0f} ms, running again "
      f"{r['running_again_ms']:.0f} ms, output again "
      + (f"{o:.0f} ms" if o is not None else "-") + " after the kill")
EOF
    if [ "$rep" -lt "$REPEAT" ]; then
      start_node 3 "$seeds"
      wait_ready 3
      $PY "$HELPER" covered "$(status_url 1)" 3 --timeout 60 ||
        fail "node 3 did not get regions back within 60 s after its restart"
      sleep "$STEADY"
    fi
  done
  stop_phase
}

START=$(ms)
echo "== cluster_bench: $([ $SHORT = 1 ] && echo short || echo full) mode, $(nproc) cores," \
     "cdp pipeline, run directory $TOP"
T_TP=0 T_FO=0
if [ "$ONLY" != failover ]; then
  T0=$(ms)
  for k in 1 2 3; do
    echo "== throughput, $k node(s): $EVENTS events preloaded"
    throughput "$k"
  done
  T_TP=$(( $(ms) - T0 ))
fi
if [ "$ONLY" != throughput ]; then
  T0=$(ms)
  echo "== failover: 3 nodes, $RATE events/s, kill -9 of node 3, $REPEAT time(s)," \
       "--failure-timeout-ms $FAILURE_MS"
  failover
  T_FO=$(( $(ms) - T0 ))
fi

$PY - "$RESULTS/meta.json" <<EOF
import datetime, json, os, sys
cpu = ""
with open("/proc/cpuinfo") as f:
    for line in f:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip(); break
with open("/proc/meminfo") as f:
    mem_kib = int(f.readline().split()[1])
json.dump({"date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
           "mode": "short" if $SHORT else "full", "nproc": os.cpu_count(), "cpu": cpu,
           "mem_gib": round(mem_kib / 1048576, 1), "load_avg": os.getloadavg(),
           "events": $EVENTS, "customers": $CUSTOMERS, "zipf": $ZIPF,
           "heartbeat_ms": $HEARTBEAT_MS, "failure_timeout_ms": $FAILURE_MS,
           "failover_rate": $RATE, "repeat": $REPEAT, "spread": bool($SPREAD),
           "seconds": {"throughput": $T_TP / 1000, "failover": $T_FO / 1000,
                       "total": ($(ms) - $START) / 1000}},
          open(sys.argv[1], "w"), indent=1)
EOF
$PY "$HELPER" report --dir "$RESULTS" --json "${JSON:-$RESULTS/summary.json}"
echo
echo "== done in $(( ($(ms) - START) / 1000 )) s (throughput $(( T_TP / 1000 )) s, failover $(( T_FO / 1000 )) s)"
