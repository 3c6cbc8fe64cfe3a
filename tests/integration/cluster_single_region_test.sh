#!/usr/bin/env bash
# A pipeline whose source is not partitioned by its key (records of one customer in every
# partition) with --regions 1 is one region in a cluster: it runs whole on one node and moves
# whole (cluster_spread_test.sh spreads it over the nodes instead). Two keyflowd nodes;
# keyflow-gen sends to random partitions; the node running the job is killed with kill -9
# mid-stream, the other restores the job from the shared checkpoints; every result must be
# exact. Also: more regions than source partitions are refused at start.
#
# Usage: cluster_single_region_test.sh BIN_DIR REPO_ROOT
set -euo pipefail
BIN=$1
ROOT=$2

export KF_RUN_DIR; KF_RUN_DIR=$(mktemp -d /tmp/keyflow-it-cluster1.XXXXXX)
export KF_BIN_DIR=$BIN
# shellcheck source=tools/lib.sh
source "$ROOT/tools/lib.sh"
# shellcheck source=tests/integration/cluster_lib.sh
source "$ROOT/tests/integration/cluster_lib.sh"
trap kf_test_finish EXIT

# The reference pipeline without partitioned_by_key.
PIPELINE=$KF_RUN_DIR/cdp-any-partition.yaml
kf_cdp_any_partition "$ROOT" "$PIPELINE" || fail "no pipeline copy"

kf_start_redis
kf_start_broker events:4 events-dlq:1 activations:1
# shellcheck disable=SC2034 # METRICS is filled by cluster_node
declare -A PORT PID METRICS STATUSURL
for i in 1 2; do PORT[$i]=$(kf_free_port); done
SEEDS=127.0.0.1:${PORT[1]},127.0.0.1:${PORT[2]}

node() { cluster_node "$1" --regions 1 --checkpoint-interval-ms 500 --failure-timeout-ms 2500; }

echo "== --regions 9 for a topic of 4 partitions is refused"
refused_node "$KF_RUN_DIR/x-shared" "more than the 4 partitions of the source topic" --regions 9

echo "== 2 nodes, one region"
node 1
node 2
covered 1 2
[ "$($STATUS generations "${STATUSURL[1]}" | wc -w)" = 1 ] || fail "expected one region"
owner=1
[ -n "$($STATUS running "${STATUSURL[2]}")" ] && owner=2
other=$((3 - owner))
echo "   node $owner runs the job"

EVENTS=80000
"$BIN/keyflow-gen" --bootstrap-servers "$KF_BOOTSTRAP" --events $EVENTS --customers 1000 \
  --malformed 0.01 --random-partition --rate 8000 --seed 5 \
  --summary "$KF_RUN_DIR/summary.json" 2> "$KF_RUN_DIR/gen.log" &
GEN=$!
kf_track $GEN
sleep 4

echo "== SIGUSR1: node $owner checkpoints its region at once"
kill -USR1 "${PID[$owner]}"
kf_wait_for grep -q "checkpoint requested (SIGUSR1) for 1 region" "$KF_RUN_DIR/n$owner.log" ||
  fail "node $owner did not take the SIGUSR1 request"

echo "== kill -9 of node $owner (it runs the whole job)"
kill -KILL "${PID[$owner]}"
covered $other 1
[ -n "$($STATUS running "${STATUSURL[$other]}")" ] || fail "node $other does not run the job"
grep -q "region 0 generation .* started from .*/region-0/g" "$KF_RUN_DIR/n$other.log" ||
  fail "node $other did not restore the job from a checkpoint"

wait $GEN || fail "keyflow-gen failed"
echo "== verify"
"$BIN/keyflow-verify" --summary "$KF_RUN_DIR/summary.json" --redis "$KF_REDIS" \
  --pipeline "$PIPELINE" --bootstrap-servers "$KF_BOOTSTRAP" --wait 90 --sample 3 \
  --at-least-once-kafka
