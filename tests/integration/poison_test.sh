#!/usr/bin/env bash
# Supervision and poison records on the reference pipeline (config/pipelines/cdp.yaml):
# about 1% of the input is bad. Malformed records (undecodable, missing fields, NaN) are
# dead-lettered by the source; events whose event_id ends in "137" make the aggregate operator
# throw (keyflowd runs with the KEYFLOW_FAILPOINT test facility). Each such failure restarts
# the pipeline from its last checkpoint with backoff; the failing batch is then processed one
# record at a time, and a record that fails --poison-attempts times is dead-lettered as
# poison. tests/integration/seeds/cdp.py then checks, exactly: the dead letters of every
# input record (reason, operator, provenance, attempts), every profile in Redis and every
# activation: the job went on, nothing was lost or counted twice across the restarts. Then
# the same on a cluster node running regions, and on one running the job spread in slices
# (restarted by the coordinator with a new generation). The
# Kafka outputs (dead letters, activations) are at-least-once: a restart from a checkpoint
# may write a record again, so dead letters are counted once per input record (partition,
# offset), and that count must be exact.
#
# Usage: poison_test.sh BIN_DIR REPO_ROOT
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 BIN_DIR REPO_ROOT" >&2
  exit 2
fi
ROOT=$2
PY=/usr/bin/python3 # has confluent_kafka, redis and protobuf
SCRIPT=$ROOT/tests/integration/seeds/cdp.py
export KF_RUN_DIR; KF_RUN_DIR=$(mktemp -d /tmp/keyflow-it-poison.XXXXXX)
export KF_BIN_DIR=$1
# shellcheck source=tools/lib.sh
source "$ROOT/tools/lib.sh"
trap kf_test_finish EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# 6000 events: ~60 malformed, 6 poison (event ids e-31-N with N ending in 137) and their
# duplicates.
INPUT=(--events 6000 --customers 150 --poison-suffix 137 --poison-operator aggregate
       --poison-attempts 2 --key-partitioned)
kf_start_redis
kf_start_broker events:4 events-dlq:1 activations:1
"$PY" "$SCRIPT" setup --redis "$KF_REDIS" "${INPUT[@]}"
"$PY" "$SCRIPT" generate --bootstrap "$KF_BOOTSTRAP" "${INPUT[@]}"
KEYFLOW_FAILPOINT='aggregate:event_id=*137' kf_start_node \
  --pipeline "$ROOT/config/pipelines/cdp.yaml" --bootstrap-servers "$KF_BOOTSTRAP" \
  --redis "$KF_REDIS" --state-dir "$KF_RUN_DIR/state" --workers 2 --partition-actors 3 \
  --poison-attempts 2 --restart-backoff-ms 20 --restart-backoff-max-ms 200 \
  --checkpoint-interval-ms 1000
"$PY" "$SCRIPT" check --bootstrap "$KF_BOOTSTRAP" --redis "$KF_REDIS" "${INPUT[@]}" --restarted \
  --wait-s 300 || fail "results or dead letters differ"

restarts=$(kf_metric '^keyflow_restarts_total.*cause="operator_failed"')
poison=$(kf_metric '^keyflow_dead_letters_total.*reason="poison"')
echo "   restarts after operator failures: $restarts; poison dead letters: $poison"
[ "$restarts" -ge 2 ] || fail "expected restarts after operator failures, saw $restarts"
[ "$poison" -ge 1 ] || fail "keyflow_dead_letters_total{reason=\"poison\"} is $poison"
kill -0 "$KF_NODE_PID" || fail "keyflowd is no longer running"
kill -TERM "$KF_NODE_PID"; wait "$KF_NODE_PID" || fail "keyflowd exited non-zero"

echo "== the same input on a cluster node: its regions restart the same way"
# shellcheck source=tests/integration/cluster_lib.sh
source "$ROOT/tests/integration/cluster_lib.sh"
PIPELINE=$ROOT/config/pipelines/cdp.yaml
declare -A PORT PID METRICS STATUSURL
PORT[1]=$(kf_free_port)
SEEDS=127.0.0.1:${PORT[1]}
redis-cli -u "redis://$KF_REDIS" --scan --pattern 'profile:*' | xargs -r -n 500 \
  redis-cli -u "redis://$KF_REDIS" del > /dev/null
KEYFLOW_FAILPOINT='aggregate:event_id=*137' cluster_node 1 --group-id poison-cluster \
  --poison-attempts 2 --restart-backoff-ms 20 --restart-backoff-max-ms 200 \
  --checkpoint-interval-ms 1000
"$PY" "$SCRIPT" check --bootstrap "$KF_BOOTSTRAP" --redis "$KF_REDIS" "${INPUT[@]}" --restarted \
  --wait-s 300 || fail "results or dead letters differ on the cluster node"
KF_METRICS=${METRICS[1]}
restarts=$(kf_metric '^keyflow_restarts_total.*cause="operator_failed".*instance="region-')
poison=$(kf_metric '^keyflow_dead_letters_total.*reason="poison"')
echo "   region restarts after operator failures: $restarts; poison dead letters: $poison"
[ "$restarts" -ge 1 ] || fail "expected region restarts after operator failures, saw $restarts"
[ "$poison" -ge 1 ] || fail "the cluster node wrote no poison dead letter"
kill -TERM "${PID[1]}"; wait "${PID[1]}" || fail "cluster node exited non-zero"

echo "== the same input as a job spread over two cluster nodes"
# Without partitioned_by_key a cluster runs the pipeline as one job in slices over the nodes;
# a failure stops the job on the node and the coordinator restarts it from the job's
# checkpoint with a new generation (after twice --failure-timeout-ms). A record's source and
# the operator it fails may be on different nodes: the leader hands every node's poison
# records to every node at each start.
PIPELINE=$KF_RUN_DIR/cdp-any-partition.yaml
kf_cdp_any_partition "$ROOT" "$PIPELINE" || fail "no pipeline copy"
PORT[2]=$(kf_free_port)
PORT[3]=$(kf_free_port)
SEEDS=127.0.0.1:${PORT[2]},127.0.0.1:${PORT[3]}
redis-cli -u "redis://$KF_REDIS" --scan --pattern 'profile:*' | xargs -r -n 500 \
  redis-cli -u "redis://$KF_REDIS" del > /dev/null
for i in 2 3; do
  KEYFLOW_FAILPOINT='aggregate:event_id=*137' cluster_node "$i" --group-id poison-spread \
    --poison-attempts 2 --checkpoint-interval-ms 1000 --failure-timeout-ms 1000
done
"$PY" "$SCRIPT" check --bootstrap "$KF_BOOTSTRAP" --redis "$KF_REDIS" "${INPUT[@]}" --restarted \
  --wait-s 300 || fail "results or dead letters differ in the spread job"
restarts=0 poison=0
for i in 2 3; do
  KF_METRICS=${METRICS[$i]}
  restarts=$((restarts + $(kf_metric '^keyflow_restarts_total.*cause="operator_failed".*instance="slice-')))
  poison=$((poison + $(kf_metric '^keyflow_dead_letters_total.*reason="poison"')))
done
echo "   slice restarts after operator failures: $restarts; poison dead letters: $poison"
[ "$restarts" -ge 1 ] || fail "expected slice restarts after operator failures, saw $restarts"
[ "$poison" -ge 1 ] || fail "the spread job wrote no poison dead letter"
echo "== poison: PASS in ${SECONDS} s"
