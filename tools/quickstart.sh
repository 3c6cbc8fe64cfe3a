#!/usr/bin/env bash
# Quickstart: installs what is missing, builds, and runs the reference pipeline
# (config/pipelines/cdp.yaml) on an embedded Kafka (keyflow-broker) and a real redis-server,
# then compares the results in Redis and Kafka with what the generator sent.
# Exits non-zero if any result differs. Everything it starts is stopped by PID at exit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${KEYFLOW_BUILD_DIR:-$ROOT/build}
EVENTS=${EVENTS:-100000}
CUSTOMERS=${CUSTOMERS:-1000}
MALFORMED=${MALFORMED:-0.01}

"$ROOT/tools/install-deps.sh"
echo "== building (into $BUILD)"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo > "$ROOT/.quickstart-cmake.log" 2>&1 ||
  { cat "$ROOT/.quickstart-cmake.log"; exit 1; }
rm -f "$ROOT/.quickstart-cmake.log"
cmake --build "$BUILD" -j "$(nproc)" --target keyflowd keyflow-broker keyflow-gen keyflow-verify

export KF_RUN_DIR; KF_RUN_DIR=$(mktemp -d /tmp/keyflow-quickstart.XXXXXX)
export KF_BIN_DIR=$BUILD/bin
# shellcheck source=tools/lib.sh
source "$ROOT/tools/lib.sh"
trap 'kf_stop_all' EXIT

PIPELINE=$ROOT/config/pipelines/cdp.yaml
echo "== starting redis-server, keyflow-broker and keyflowd (run dir $KF_RUN_DIR)"
kf_start_redis
kf_start_broker events:4 events-dlq:1 activations:1
kf_start_node --pipeline "$PIPELINE" --bootstrap-servers "$KF_BOOTSTRAP" --redis "$KF_REDIS" \
  --state-dir "$KF_RUN_DIR/state"
echo "   redis $KF_REDIS, kafka $KF_BOOTSTRAP, metrics $KF_METRICS"

echo "== generating $EVENTS events over $CUSTOMERS customers ($MALFORMED malformed)"
start=$(date +%s.%N)
"$KF_BIN_DIR/keyflow-gen" --bootstrap-servers "$KF_BOOTSTRAP" --topic events --events "$EVENTS" \
  --customers "$CUSTOMERS" --malformed "$MALFORMED" --seed 42 --summary "$KF_RUN_DIR/summary.json"
kf_wait_processed "$EVENTS"
end=$(date +%s.%N)
python3 -c "print('== processed $EVENTS events in %.2f s: %.0f events/s (generator and pipeline running together)' % ($end-$start, $EVENTS/($end-$start)))"

echo "== results (Redis profiles beside the generator's expected values)"
rc=0
"$KF_BIN_DIR/keyflow-verify" --summary "$KF_RUN_DIR/summary.json" --redis "$KF_REDIS" \
  --pipeline "$PIPELINE" --bootstrap-servers "$KF_BOOTSTRAP" --wait 30 --sample 8 || rc=$?
echo "== dead letters counted by keyflowd: $(kf_metric '^keyflow_dead_letters_total')"
echo "== metrics: $KF_METRICS (p50/p99 in keyflow_processing_latency_seconds)"
curl -fs "$KF_METRICS" | grep -E '^keyflow_(records_(in|out)_total|dead_letters_total|consumer_lag_records|sink_writes_total)' || true
exit $rc
