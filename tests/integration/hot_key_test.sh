#!/usr/bin/env bash
# A hot key: half of all events belong to one customer (the last, c-000150) on the
# reference pipeline (config/pipelines/cdp.yaml); the rest follow the seed's Pareto skew. The
# partition actor owning c-000150 reports it:
# a log line naming the key, keyflow_hot_keys_detected_total and keyflow_hot_key_share; and
# every result stays exact (tests/integration/seeds/cdp.py check). With detection off
# (--hot-key-percent 0) the results are the same and nothing is reported.
#
# Usage: hot_key_test.sh BIN_DIR REPO_ROOT
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 BIN_DIR REPO_ROOT" >&2
  exit 2
fi
ROOT=$2
PY=/usr/bin/python3 # has confluent_kafka, redis and protobuf
SCRIPT=$ROOT/tests/integration/seeds/cdp.py
export KF_RUN_DIR; KF_RUN_DIR=$(mktemp -d /tmp/keyflow-it-hot-key.XXXXXX)
export KF_BIN_DIR=$1
# shellcheck source=tools/lib.sh
source "$ROOT/tools/lib.sh"
trap kf_test_finish EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

INPUT=(--events 30000 --customers 150 --hot-share 0.5)
HOT=c-000150
kf_start_redis
kf_start_broker events:4 events-dlq:1 activations:1
"$PY" "$SCRIPT" setup --redis "$KF_REDIS" "${INPUT[@]}"
"$PY" "$SCRIPT" generate --bootstrap "$KF_BOOTSTRAP" "${INPUT[@]}"

for percent in 20 0; do
  echo "== --hot-key-percent $percent"
  redis-cli -u "redis://$KF_REDIS" --scan --pattern 'profile:*' | xargs -r -n 500 \
    redis-cli -u "redis://$KF_REDIS" del > /dev/null
  kf_start_node --pipeline "$ROOT/config/pipelines/cdp.yaml" --bootstrap-servers "$KF_BOOTSTRAP" \
    --redis "$KF_REDIS" --state-dir "$KF_RUN_DIR/state-$percent" --workers 2 \
    --partition-actors 3 --group-id "hot-$percent" --hot-key-percent "$percent"
  "$PY" "$SCRIPT" check --bootstrap "$KF_BOOTSTRAP" --redis "$KF_REDIS" "${INPUT[@]}" --restarted \
    || fail "results differ with --hot-key-percent $percent"
  # Reports come every --flush-interval-ms (1 s): wait for one (at most 15 s).
  for _ in $(seq 150); do
    { [ "$percent" = 0 ] || grep -q "hot key '$HOT' on partition actor" "$KF_RUN_DIR/keyflowd.log"; } && break
    sleep 0.1
  done
  sleep 1.5 # and one more report, with detection off too
  detected=$(kf_metric '^keyflow_hot_keys_detected_total')
  share=$(curl -fs "$KF_METRICS" | awk '$1 ~ /^keyflow_hot_key_share/ { if ($NF > m) m = $NF } END { print m + 0 }')
  echo "   hot keys detected: $detected, largest hot-key share: $share"
  if [ "$percent" -gt 0 ]; then
    # The input is skewed anyway (Pareto): c-000001 is hot on its actor too.
    [ "$detected" -ge 1 ] || fail "no hot key reported"
    grep -q "hot key '$HOT' on partition actor" "$KF_RUN_DIR/keyflowd.log" \
      || fail "no log line names the hot key $HOT"
    # The owner sees c-000150's half plus about a third of the other half: ~0.6-0.7.
    "$PY" -c "import sys; sys.exit(0 if float('$share') >= 0.5 else 1)" \
      || fail "keyflow_hot_key_share $share, want >= 0.5"
  else
    [ "$detected" -eq 0 ] || fail "detection is off but $detected hot keys were reported"
  fi
  kill -TERM "$KF_NODE_PID"; wait "$KF_NODE_PID" || fail "keyflowd exited non-zero"
  mv "$KF_RUN_DIR/keyflowd.log" "$KF_RUN_DIR/keyflowd-$percent.log"
done
echo "== hot key: PASS in ${SECONDS} s"
