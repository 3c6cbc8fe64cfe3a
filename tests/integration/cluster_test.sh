#!/usr/bin/env bash
# A 3-node cluster on loopback (keyflow-broker, redis-server, three keyflowd with a shared
# checkpoint directory) running the reference pipeline (6 regions) while keyflow-gen
# writes events at a steady rate:
#   1. two nodes share the regions; a third joins mid-stream (2 -> 3): regions move to it by
#      hand-off;
#   2. kill -9 of a node that is not the coordinator: its regions restart on the others from
#      the shared checkpoints; the survivors' own regions keep running (same generation, no
#      stop counted); the survivors count one failover per region taken over (hand-offs and
#      first starts count none);
#   3. the killed node comes back and gets work again;
#   4. SIGSTOP of a node past the failure timeout, then SIGCONT: it finds itself stalled,
#      stops its regions (fenced) and rejoins; the fence of every region in Redis holds the
#      generation of its current owner;
#   5. kill -9 of the coordinator: the next lowest id takes over (3 -> 2 nodes);
#   6. the coordinator comes back (2 -> 3) and takes over again; a node stops gracefully
#      (SIGTERM: drains, final checkpoints, tells the others it leaves) (3 -> 2);
#   7. a node started with another --regions is refused (exit 2) by the shared directory;
# At the end every profile in Redis, every dead letter and every activation must equal what
# the generator sent (keyflow-verify), exactly.
#
# Usage: cluster_test.sh BIN_DIR REPO_ROOT
set -euo pipefail
BIN=$1
ROOT=$2
PIPELINE=$ROOT/config/pipelines/cdp.yaml
TIMEOUT_MS=2500

export KF_RUN_DIR; KF_RUN_DIR=$(mktemp -d /tmp/keyflow-it-cluster.XXXXXX)
export KF_BIN_DIR=$BIN
# shellcheck source=tools/lib.sh
source "$ROOT/tools/lib.sh"
# shellcheck source=tests/integration/cluster_lib.sh
source "$ROOT/tests/integration/cluster_lib.sh"
trap 'rc=$?; set +e; [ $rc -ne 0 ] && for i in 1 2 3; do echo "--- node $i:"; grep -v "^%" "$KF_RUN_DIR/n$i.log" 2>/dev/null | grep -i "cluster:\|error\|warn" | tail -15; done; (exit $rc); kf_test_finish' EXIT

kf_start_redis
kf_start_broker events:6 events-dlq:1 activations:1
declare -A PORT PID METRICS STATUSURL
for i in 1 2 3; do PORT[$i]=$(kf_free_port); done
SEEDS=127.0.0.1:${PORT[1]},127.0.0.1:${PORT[2]},127.0.0.1:${PORT[3]}

# node I: starts cluster node I (again) and waits until it is ready.
node() { cluster_node "$1" --checkpoint-interval-ms 1000 --failure-timeout-ms $TIMEOUT_MS; }
# metric I REGEX: sum of node I's series matching REGEX.
metric() {
  curl -fs "${METRICS[$1]}" | awk -v re="$2" '$0 !~ /^#/ && $1 ~ re { s += $2 } END { printf "%.0f\n", s }'
}
# kept I BEFORE: node I still runs every region:generation pair in BEFORE.
kept() {
  local now; now=" $($STATUS running "${STATUSURL[$1]}") "
  for pair in $2; do
    [[ "$now" == *" $pair "* ]] || fail "node $1: region $pair was restarted or moved (now:$now)"
  done
}

echo "== 2 nodes"
node 1
node 2
covered 1 2
"$BIN/keyflowctl" status --node "$(echo "${STATUSURL[2]}" | sed 's|http://||; s|/status||')" \
  > "$KF_RUN_DIR/ctl.txt" || fail "keyflowctl status failed"
cat "$KF_RUN_DIR/ctl.txt"
grep -q "coordinator: node 1" "$KF_RUN_DIR/ctl.txt" || fail "keyflowctl: no coordinator"
[ "$(grep -cE '^[12]\*? +127.0.0.1:[0-9]+ +yes' "$KF_RUN_DIR/ctl.txt")" = 2 ] ||
  fail "keyflowctl: not both members alive"
[ "$(grep -cE '^[0-5] +[12] +[0-9]+ +[0-5]$' "$KF_RUN_DIR/ctl.txt")" = 6 ] ||
  fail "keyflowctl: not 6 regions with owners and partitions"
echo "   node 1 runs: $($STATUS running "${STATUSURL[1]}"); node 2 runs: $($STATUS running "${STATUSURL[2]}")"

EVENTS=150000
echo "== generating $EVENTS events at 6000/s"
"$BIN/keyflow-gen" --bootstrap-servers "$KF_BOOTSTRAP" --events $EVENTS --customers 2000 \
  --malformed 0.01 --zipf 0.8 --rate 6000 --seed 11 \
  --summary "$KF_RUN_DIR/summary.json" 2> "$KF_RUN_DIR/gen.log" &
GEN=$!
kf_track $GEN
sleep 2

echo "== scale 2 -> 3: node 3 joins mid-stream"
node 3
covered 1 3
[ -n "$($STATUS running "${STATUSURL[3]}")" ] || fail "node 3 got no region"
echo "   node 3 runs: $($STATUS running "${STATUSURL[3]}")"
sleep 2

echo "== kill -9 of node 2 (not the coordinator)"
before1=$($STATUS running "${STATUSURL[1]}")
before3=$($STATUS running "${STATUSURL[3]}")
dead2=$($STATUS running "${STATUSURL[2]}" | wc -w)
stops1=$(metric 1 '^keyflow_region_stops_total')
stops3=$(metric 3 '^keyflow_region_stops_total')
failovers=$(( $(metric 1 '^keyflow_failovers_total') + $(metric 2 '^keyflow_failovers_total') +
  $(metric 3 '^keyflow_failovers_total') ))
[ "$failovers" = 0 ] || fail "$failovers failovers counted before any node failed"
kill -KILL "${PID[2]}"
covered 1 2
kept 1 "$before1"
kept 3 "$before3"
[ "$(metric 1 '^keyflow_region_stops_total')" = "$stops1" ] || fail "node 1 stopped a region"
[ "$(metric 3 '^keyflow_region_stops_total')" = "$stops3" ] || fail "node 3 stopped a region"
failovers=$(( $(metric 1 '^keyflow_failovers_total') + $(metric 3 '^keyflow_failovers_total') ))
[ "$failovers" = "$dead2" ] ||
  fail "the survivors counted $failovers failovers, node 2 ran $dead2 regions"
echo "   failovers counted by the survivors: $failovers (node 2 ran $dead2 regions)"
# A killed process: its connection closes and its port refuses a new one (no timeout wait).
grep -q "node 2 .* is dead: its connection closed and its port refuses" "$KF_RUN_DIR/n1.log" ||
  fail "node 1 did not see node 2's port refuse connections"
echo "   survivors kept their regions; node 1: $($STATUS running "${STATUSURL[1]}"); node 3: $($STATUS running "${STATUSURL[3]}")"

echo "== node 2 comes back"
node 2
covered 1 3
[ -n "$($STATUS running "${STATUSURL[2]}")" ] || fail "node 2 got no work back"
sleep 1

echo "== SIGSTOP node 3 past the failure timeout, then SIGCONT"
kill -STOP "${PID[3]}"
covered 1 2
sleep 1
kill -CONT "${PID[3]}"
covered 1 3
grep -q "this node was stalled" "$KF_RUN_DIR/n3.log" || fail "node 3 did not notice its stall"
# A stalled process still accepts connections: only the failure timeout detects it.
grep -q "node 3 .* is dead: silent for" "$KF_RUN_DIR/n1.log" ||
  fail "node 1 did not declare the stalled node 3 dead by its silence"
[ "$(metric 3 '^keyflow_region_stops_total.*reason="fenced"')" -ge 1 ] ||
  fail "node 3 did not stop its regions as fenced"
for pair in $($STATUS generations "${STATUSURL[1]}"); do
  region=${pair%%:*} gen=${pair##*:}
  fence=$(redis-cli -p "${KF_REDIS##*:}" GET "keyflow:fence:cdp:$region")
  [ "$fence" = "$gen" ] || fail "region $region: fence $fence, owner generation $gen"
done
echo "   fences match the assignment; writes refused by node 3's old generation:" \
  "$(metric 3 '^keyflow_fenced_writes_total')"

echo "== kill -9 of the coordinator (node 1)"
[ "$($STATUS coordinator "${STATUSURL[2]}")" = 1 ] || fail "node 1 is not the coordinator"
kill -KILL "${PID[1]}"
covered 2 2
[ "$($STATUS coordinator "${STATUSURL[2]}")" = 2 ] || fail "node 2 did not take over"
[ "$($STATUS coordinator "${STATUSURL[3]}")" = 2 ] || fail "node 3 does not follow node 2"
echo "   node 2 coordinates; node 2: $($STATUS running "${STATUSURL[2]}"); node 3: $($STATUS running "${STATUSURL[3]}")"

echo "== node 1 comes back (2 -> 3), then node 3 stops gracefully (3 -> 2)"
node 1
covered 2 3
kill -TERM "${PID[3]}"
wait "${PID[3]}" || fail "node 3 exited non-zero after SIGTERM"
covered 2 2
grep -q "node 3 (.*) leaves" "$KF_RUN_DIR/n2.log" || fail "node 2 did not see node 3 leave"
[ "$(metric 2 '^keyflow_cluster_coordinator')" = 0 ] || fail "node 2 still coordinates"
echo "   node 1: $($STATUS running "${STATUSURL[1]}"); node 2: $($STATUS running "${STATUSURL[2]}")"

echo "== a node with another number of regions is refused by the shared checkpoint directory"
refused_node "$KF_RUN_DIR/shared" "holds checkpoints of 'pipeline=cdp regions=6'" --regions 3

wait $GEN || fail "keyflow-gen failed"
echo "== verify"
"$BIN/keyflow-verify" --summary "$KF_RUN_DIR/summary.json" --redis "$KF_REDIS" \
  --pipeline "$PIPELINE" --bootstrap-servers "$KF_BOOTSTRAP" --wait 90 --sample 3 \
  --at-least-once-kafka
