#!/usr/bin/env bash
# A two-stage job spread over the nodes: Nexmark q5 (sliding bid counts per auction, then
# key_by window to the maximum per window), 4 slices on 2 keyflowd nodes. Records cross the
# middleman twice: sources -> the counts' actors by auction, counts -> the maxima's actors
# by window. Mid-stream kill -9 of node 2 (node 1 runs every slice), node 2 returns (the job
# spreads again); the output topic must equal an independent computation
# (tests/integration/nexmark_check.py).
#
# Usage: cluster_spread_nexmark_test.sh BIN_DIR REPO_ROOT
set -euo pipefail
BIN=$1
ROOT=$2

export KF_RUN_DIR; KF_RUN_DIR=$(mktemp -d /tmp/keyflow-it-spread-q5.XXXXXX)
export KF_BIN_DIR=$BIN
# shellcheck source=tools/lib.sh
source "$ROOT/tools/lib.sh"
# shellcheck source=tests/integration/cluster_lib.sh
source "$ROOT/tests/integration/cluster_lib.sh"
trap kf_test_finish EXIT
PY=/usr/bin/python3
EVENTS=${NEXMARK_EVENTS:-60000}

PIPELINE=$KF_RUN_DIR/q5.yaml
sed -e "s#\.\./\.\./proto/#$ROOT/config/proto/#" "$ROOT/config/pipelines/nexmark/q5.yaml" \
  > "$PIPELINE"

kf_start_redis # the slices' fences
kf_start_broker nexmark:4 nexmark-dlq:1 nexmark-q5:1
# shellcheck disable=SC2034 # METRICS is filled by cluster_node
declare -A PORT PID METRICS STATUSURL
for i in 1 2; do PORT[$i]=$(kf_free_port); done
SEEDS=127.0.0.1:${PORT[1]},127.0.0.1:${PORT[2]}

node() { cluster_node "$1" --regions 4 --checkpoint-interval-ms 300 --failure-timeout-ms 2500; }

echo "== 2 nodes, 4 slices of nexmark q5"
node 1
node 2
covered 1 2

"$BIN/keyflow-gen" nexmark --bootstrap-servers "$KF_BOOTSTRAP" --topic nexmark \
  --events "$EVENTS" --events-per-second 1000 --max-delay-ms 500 --random-partition --seed 6 \
  --rate 15000 > "$KF_RUN_DIR/gen.json" &
GEN=$!
kf_track $GEN
sleep 1.5

echo "== records cross the middleman at both stages"
src=0 part=0
for i in 1 2; do
  src=$((src + $(metric_sum "$i" keyflow_remote_batches_total 'sender="source"')))
  part=$((part + $(metric_sum "$i" keyflow_remote_batches_total 'sender="partition"')))
done
echo "   $src batches from sources, $part from the first stage to another node"
[ "$src" -gt 0 ] || fail "no source batch went to another node"
[ "$part" -gt 0 ] || fail "no first-stage batch went to another node"

echo "== kill -9 of node 2 mid-stream"
kill -KILL "${PID[2]}"
covered 1 1
echo "== node 2 returns"
node 2
covered 1 2

wait $GEN || fail "keyflow-gen failed"
echo "== check q5"
$PY "$ROOT/tests/integration/nexmark_check.py" --bootstrap "$KF_BOOTSTRAP" \
  --input-topic nexmark --query q5 --output-topic nexmark-q5 --out-of-orderness-ms 1000 \
  --wait-s 60
