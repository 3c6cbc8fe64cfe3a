#!/usr/bin/env bash
# Metrics and structured logs of a running keyflowd (reference pipeline, --log-format json):
#   - keyflow_freshness_seconds: > 0 once records were processed, and growing while no input
#     arrives (updated every second even when idle);
#   - keyflow_state_size_bytes and keyflow_state_estimated_keys: > 0 after records were
#     processed and checkpoints taken;
#   - keyflow_stage_latency_seconds: batches timed per stage, labelled with its operators;
#     keyflow_operator_latency_seconds: per operator;
#   - every log line is one JSON object with ts, level, node, logger and msg, and the hot-key
#     warning carries the partition actor and the key group.
#
# Usage: metrics_test.sh BIN_DIR REPO_ROOT
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 BIN_DIR REPO_ROOT" >&2
  exit 2
fi
ROOT=$2
export KF_RUN_DIR; KF_RUN_DIR=$(mktemp -d /tmp/keyflow-it-metrics.XXXXXX)
export KF_BIN_DIR=$1
# shellcheck source=tools/lib.sh
source "$ROOT/tools/lib.sh"
trap kf_test_finish EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# series REGEX AGG: min or max (AGG) of the values of the node's series matching REGEX;
# empty if none.
series() {
  curl -fs "$KF_METRICS" | awk -v re="$1" -v agg="$2" '
    $0 !~ /^#/ && $1 ~ re { v = $NF + 0; if (n++ == 0 || (agg == "min" ? v < r : v > r)) r = v }
    END { if (n) printf "%.3f\n", r }'
}
# above A B: A > B (decimals).
above() { python3 -c "import sys; sys.exit(0 if float('$1') > float('$2') else 1)"; }

EVENTS=3000
kf_start_redis
kf_start_broker events:4 events-dlq:1 activations:1
kf_start_node --pipeline "$ROOT/config/pipelines/cdp.yaml" --bootstrap-servers "$KF_BOOTSTRAP" \
  --redis "$KF_REDIS" --state-dir "$KF_RUN_DIR/state" --workers 2 --checkpoint-interval-ms 1000 \
  --log-format json
# Skewed keys (zipf 2): c-000001 has most records, so its partition actor reports it hot.
timeout 120 "$KF_BIN_DIR/keyflow-gen" --bootstrap-servers "$KF_BOOTSTRAP" --topic events \
  --events "$EVENTS" --customers 100 --zipf 2 --seed 5 > /dev/null || fail "keyflow-gen failed"
kf_wait_processed "$EVENTS"
kf_wait_checkpoints 2

echo "== state size"
bytes=0
for _ in $(seq 50); do # the checkpoint coordinator updates it every interval (1 s)
  bytes=$(kf_metric '^keyflow_state_size_bytes')
  [ "$bytes" -gt 0 ] && break
  sleep 0.1
done
keys=$(kf_metric '^keyflow_state_estimated_keys')
echo "   keyflow_state_size_bytes $bytes, keyflow_state_estimated_keys $keys"
[ "$bytes" -gt 0 ] || fail "keyflow_state_size_bytes is $bytes after a checkpoint"
[ "$keys" -gt 0 ] || fail "keyflow_state_estimated_keys is $keys after a checkpoint"

echo "== freshness while idle"
f1=""
for _ in $(seq 30); do # published every second
  f1=$(series '^keyflow_freshness_seconds' min)
  [ -n "$f1" ] && break
  sleep 0.1
done
[ -n "$f1" ] || fail "no keyflow_freshness_seconds series"
sleep 2.5
f2=$(series '^keyflow_freshness_seconds' min)
echo "   keyflow_freshness_seconds (freshest actor) $f1, 2.5 s later $f2"
above "$f1" 0 || fail "freshness $f1 is not > 0"
above "$f2" "$(python3 -c "print($f1 + 1.5)")" || fail "freshness did not grow while idle: $f1 -> $f2"

echo "== stage latency"
count=$(kf_metric '^keyflow_stage_latency_seconds_count\{.*stage="stage0"')
sum=$(series '^keyflow_stage_latency_seconds_sum\{.*stage="stage0"' max)
echo "   stage0: $count batches, $sum s"
[ "$count" -gt 0 ] || fail "no batch timed on stage0"
above "$sum" 0 || fail "keyflow_stage_latency_seconds_sum is $sum"
# (grep reads all: with pipefail, grep -q ending first would fail curl with SIGPIPE)
curl -fs "$KF_METRICS" | grep -c '^keyflow_stage_latency_seconds_count{.*operators="[^"]*aggregate' > /dev/null ||
  fail "keyflow_stage_latency_seconds does not name the stage's operators"
for op in dedup enrich aggregate; do
  n=$(kf_metric '^keyflow_operator_latency_seconds_count\{.*operator="'$op'"')
  [ "$n" -gt 0 ] || fail "no batch of operator '$op' timed: $(curl -fs "$KF_METRICS" |
    grep '^keyflow_operator_latency_seconds_count')"
done
echo "   keyflow_operator_latency_seconds: batches timed for dedup, enrich and aggregate"

echo "== JSON logs"
for _ in $(seq 100); do # hot keys are reported every --flush-interval-ms (1 s)
  grep -q "hot key 'c-000001'" "$KF_RUN_DIR/keyflowd.log" && break
  sleep 0.1
done
# librdkafka's own lines ("%3|...") do not go through spdlog.
grep -v '^%' "$KF_RUN_DIR/keyflowd.log" | python3 -c '
import json, re, sys
lines = [l for l in sys.stdin.read().splitlines() if l]
hot = 0
for l in lines:
    j = json.loads(l)
    for f in ("ts", "level", "node", "logger", "msg"):
        assert f in j, f"no {f}: {l}"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", j["ts"]), l
    assert j["node"] == 0 and j["logger"] == "keyflowd", l
    if j["msg"].startswith("hot key %sc-000001%s" % (chr(39), chr(39))):
        assert j["level"] == "warn" and re.fullmatch(r"stage0/\d+", j["actor"]), l
        assert isinstance(j["key_group"], int) and 0 <= j["key_group"] < 128, l
        hot += 1
assert hot >= 1, "no hot-key line"
print(f"   {len(lines)} lines, each a JSON object; hot-key lines with actor and key_group: {hot}")
' || fail "keyflowd's log is not one JSON object per line with the expected fields"

echo "== metrics: PASS in ${SECONDS} s"
