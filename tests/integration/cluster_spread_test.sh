#!/usr/bin/env bash
# A job spread over the nodes: the reference pipeline without partitioned_by_key (records of
# one customer in every partition), cut into 4 slices (--regions 4). Each slice owns a
# quarter of the key groups and reads one partition; sources send every record to the
# partition actor of its key group on whichever node owns it (batches over the CAF
# middleman), and every checkpoint is written in parts, one per slice, by the slices'
# owners. Mid-stream: 2 nodes -> a third joins -> kill -9 of a node -> SIGTERM of one
# (scale 3 -> 2 -> 1) -> the killed one returns -> kill -9 of the coordinator; every change
# restarts the job from its newest complete checkpoint; results exact.
#
# Usage: cluster_spread_test.sh BIN_DIR REPO_ROOT
set -euo pipefail
BIN=$1
ROOT=$2

export KF_RUN_DIR; KF_RUN_DIR=$(mktemp -d /tmp/keyflow-it-spread.XXXXXX)
export KF_BIN_DIR=$BIN
# shellcheck source=tools/lib.sh
source "$ROOT/tools/lib.sh"
# shellcheck source=tests/integration/cluster_lib.sh
source "$ROOT/tests/integration/cluster_lib.sh"
trap kf_test_finish EXIT

# The reference pipeline without partitioned_by_key.
PIPELINE=$KF_RUN_DIR/cdp-spread.yaml
kf_cdp_any_partition "$ROOT" "$PIPELINE" || fail "no pipeline copy"

kf_start_redis
kf_start_broker events:4 events-dlq:1 activations:1
# shellcheck disable=SC2034 # METRICS is filled by cluster_node
declare -A PORT PID METRICS STATUSURL
for i in 1 2 3; do PORT[$i]=$(kf_free_port); done
SEEDS=127.0.0.1:${PORT[1]},127.0.0.1:${PORT[2]},127.0.0.1:${PORT[3]}

node() { cluster_node "$1" --regions 4 --checkpoint-interval-ms 500 --failure-timeout-ms 2500; }

# wait_parts N: waits until some node has completed a checkpoint written in N parts.
wait_parts() {
  kf_wait_for grep -q "complete: .* in $1 parts" "$KF_RUN_DIR"/n*.log ||
    fail "no checkpoint in $1 parts"
}

echo "== 2 nodes, 4 slices"
node 1
node 2
covered 1 2
[ "$($STATUS generations "${STATUSURL[1]}" | tr ' ' '\n' | cut -d: -f2 | sort -u | wc -l)" = 1 ] ||
  fail "the slices do not share one generation"
"$BIN/keyflowctl" status --node "$(echo "${STATUSURL[2]}" | sed 's|http://||; s|/status||')" \
  > "$KF_RUN_DIR/ctl.txt" || fail "keyflowctl status failed"
grep -q "one job spread over the nodes" "$KF_RUN_DIR/ctl.txt" || fail "keyflowctl: not a spread job"
[ "$(grep -cE '^[0-3] +[12] +[0-9]+ +[0-3] +\[[0-9]+, [0-9]+\)' "$KF_RUN_DIR/ctl.txt")" = 4 ] ||
  fail "keyflowctl: not 4 slices with owners, partitions and key groups: $(cat "$KF_RUN_DIR/ctl.txt")"
curl -s -H "Authorization: Bearer $KEYFLOW_ADMIN_TOKEN" "${STATUSURL[1]}" | python3 -c 'import json, sys; sys.exit(not json.load(sys.stdin)["spread"])' ||
  fail "status does not show a spread job: $(curl -s -H "Authorization: Bearer $KEYFLOW_ADMIN_TOKEN" "${STATUSURL[1]}")"

EVENTS=120000
"$BIN/keyflow-gen" --bootstrap-servers "$KF_BOOTSTRAP" --events $EVENTS --customers 1000 \
  --malformed 0.01 --random-partition --rate 8000 --seed 11 \
  --summary "$KF_RUN_DIR/summary.json" 2> "$KF_RUN_DIR/gen.log" &
GEN=$!
kf_track $GEN
sleep 3
wait_parts 4

echo "== records cross the middleman"
remote=0
for i in 1 2; do remote=$((remote + $(metric_sum "$i" keyflow_remote_batches_total))); done
[ "$remote" -gt 0 ] || fail "no batch went to a partition actor on another node"
echo "   $remote batches sent to another node's partition actors"

echo "== a third node joins (2 -> 3)"
node 3
covered 1 3
sleep 2

echo "== SIGSTOP of node 3 past the failure timeout, then SIGCONT"
kill -STOP "${PID[3]}"
covered 1 2
sleep 1
kill -CONT "${PID[3]}"
kf_wait_for grep -q "slice .* stopped (fenced)" "$KF_RUN_DIR/n3.log" ||
  fail "node 3 did not stop its slices as fenced after its stall"
covered 1 3
sleep 2

echo "== kill -9 of node 2"
kill -KILL "${PID[2]}"
covered 1 2
grep -q "starts from .*/job/g.*checkpoint [0-9]*, 4 parts" "$KF_RUN_DIR/n1.log" ||
  fail "the job did not restart from a checkpoint in parts"
sleep 2

echo "== SIGTERM of node 3 (3 -> ... -> 1 node)"
kill -TERM "${PID[3]}"
wait "${PID[3]}" || fail "node 3 did not stop cleanly"
covered 1 1
sleep 2

echo "== node 2 returns, then kill -9 of the coordinator (node 1)"
node 2
covered 1 2
sleep 2
kill -KILL "${PID[1]}"
covered 2 1
[ "$($STATUS coordinator "${STATUSURL[2]}")" = 2 ] || fail "node 2 did not take over"

echo "== SIGUSR1 on the leader: a checkpoint now"
kill -USR1 "${PID[2]}"
kf_wait_for grep -q "checkpoint requested (SIGUSR1) for the spread job" "$KF_RUN_DIR/n2.log" ||
  fail "node 2 did not take the SIGUSR1 request"

wait $GEN || fail "keyflow-gen failed"
echo "== verify"
"$BIN/keyflow-verify" --summary "$KF_RUN_DIR/summary.json" --redis "$KF_REDIS" \
  --pipeline "$PIPELINE" --bootstrap-servers "$KF_BOOTSTRAP" --wait 90 --sample 3 \
  --at-least-once-kafka
