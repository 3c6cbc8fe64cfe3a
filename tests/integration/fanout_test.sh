#!/usr/bin/env bash
# Hot-key fanout: half of all events belong to one customer, on a pipeline whose running
# aggregate (count, sum, min, max, avg of the event value per customer) is the only consumer
# of the source's records. The customer's events are in every partition, so every source
# actor pre-aggregates its share of them and the partition actor owning the customer merges
# the partials. The totals in Redis must equal, for every customer, those of a run without
# fanout (--no-hot-key-fanout: every record folded one by one by the owner), and the counts
# must add up to every valid record read. The same for a 1-minute tumbling window of those
# aggregates per customer.
#
# Usage: fanout_test.sh BIN_DIR REPO_ROOT
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 BIN_DIR REPO_ROOT" >&2
  exit 2
fi
ROOT=$2
PY=/usr/bin/python3 # has confluent_kafka, redis and protobuf
SCRIPT=$ROOT/tests/integration/seeds/cdp.py
export KF_RUN_DIR; KF_RUN_DIR=$(mktemp -d /tmp/keyflow-it-fanout.XXXXXX)
export KF_BIN_DIR=$1
# shellcheck source=tools/lib.sh
source "$ROOT/tools/lib.sh"
trap kf_test_finish EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

PIPELINE=$KF_RUN_DIR/totals.yaml
cat > "$PIPELINE" <<YAML
pipeline:
  name: totals
  version: 1
  max_parallelism: 128
  mode: exactly-once
schema:
  proto: $ROOT/config/proto/event.proto
  message: keyflow.proto.Event
source:
  id: source
  topic: events
  key: customer_id
  event_time: event_time_ms
dead_letters:
  topic: events-dlq
operators:
  - id: validate
    type: validate
    required: [event_id, customer_id, event_time_ms]
  - id: totals
    type: aggregate
    aggregates:
      count: {fn: count}
      sum: {fn: sum, field: value}
      min: {fn: min, field: value}
      max: {fn: max, field: value}
      avg: {fn: avg, field: value}
sinks:
  - id: totals_redis
    type: redis
    from: totals
    key_prefix: "totals:"
YAML

# The same per customer and 1-minute tumbling window (late records would depend on timing:
# none are, with an hour of allowed lateness). A last event far in the future on every
# partition makes the watermark fire every window of the input.
WINDOWED=$KF_RUN_DIR/minutes.yaml
sed -e 's/name: totals/name: minutes/' -e 's/type: aggregate/type: window\n    kind: tumbling\n    size_ms: 60000\n    allowed_lateness_ms: 3600000/' \
  -e 's/key_prefix: "totals:"/key_prefix: "totals:"\n    key_fields: [window_start_ms]/' \
  -e 's/^  topic: events$/  topic: events\n  watermark:\n    max_out_of_orderness_ms: 5000\n    idle_timeout_ms: 2000/' \
  "$PIPELINE" > "$WINDOWED"
grep -q "kind: tumbling" "$WINDOWED" || fail "no windowed pipeline"

INPUT=(--events 40000 --customers 150 --hot-share 0.5)
HOT=c-000150
kf_start_redis
kf_start_broker events:4 events-dlq:1
"$PY" "$SCRIPT" generate --bootstrap "$KF_BOOTSTRAP" "${INPUT[@]}" --flush-event \
  | tee "$KF_RUN_DIR/generate.out"
RECORDS=$(grep -o '^cdp generate: [0-9]*' "$KF_RUN_DIR/generate.out" | grep -o '[0-9]*$')

# totals RUN: waits until every record is read and the counts in Redis add up to the valid
# ones, then writes every totals:<customer> hash (sorted) to RUN.json.
totals() {
  local read=0
  for _ in $(seq 600); do
    read=$(kf_metric '^keyflow_records_in_total.*operator="source"')
    [ "$read" -ge "$RECORDS" ] && break
    sleep 0.1
  done
  [ "$read" -ge "$RECORDS" ] || fail "$1: only $read of $RECORDS records read"
  local valid; valid=$(kf_metric '^keyflow_records_out_total.*operator="source"')
  # Windows: the 4 flush events (one per partition, far in the future) fire every other
  # window, never their own.
  [ "${2:-}" = windowed ] && valid=$((valid - 4))
  "$PY" - "$KF_REDIS" "$valid" "$KF_RUN_DIR/$1.json" <<'PYEOF' || fail "$1: totals in Redis do not add up"
import json, sys, time
import redis
host, port = sys.argv[1].rsplit(":", 1)
r = redis.Redis(host=host, port=int(port), decode_responses=True)
want = int(sys.argv[2])
for _ in range(600):
    hashes = {k: r.hgetall(k) for k in r.scan_iter("totals:*")}
    got = sum(int(h.get("count", 0)) for h in hashes.values())
    if got == want:
        for h in hashes.values():
            h.pop("_v", None)  # the version: how often it was written differs with batching
        json.dump(dict(sorted(hashes.items())), open(sys.argv[3], "w"), indent=1, sort_keys=True)
        print(f"   {len(hashes)} hashes, counts add up to {got} valid records")
        sys.exit(0)
    time.sleep(0.1)
print(f"   counts add up to {got}, want {want}")
sys.exit(1)
PYEOF
}

# compare NAME YAML: runs YAML with fanout on and off (fresh state, group and Redis) and
# compares every totals:* hash.
compare() {
  local name=$1 yaml=$2
  echo "== $name: fanout on (default)"
  kf_start_node --pipeline "$yaml" --bootstrap-servers "$KF_BOOTSTRAP" --redis "$KF_REDIS" \
    --state-dir "$KF_RUN_DIR/state-$name-on" --workers 2 --partition-actors 3 \
    --group-id "$name-on"
  totals "$name-on" "$name"
  grep -q "hot key '$HOT': its records are pre-aggregated here (fanout)" "$KF_RUN_DIR/keyflowd.log" \
    || fail "$name: no source pre-aggregated the hot key $HOT"
  echo "   sources pre-aggregating $HOT: $(grep -c "hot key '$HOT': its records are pre-aggregated" "$KF_RUN_DIR/keyflowd.log")"
  kill -TERM "$KF_NODE_PID"; wait "$KF_NODE_PID" || fail "$name: keyflowd exited non-zero"
  mv "$KF_RUN_DIR/keyflowd.log" "$KF_RUN_DIR/keyflowd-$name-on.log"
  redis-cli -u "redis://$KF_REDIS" --scan --pattern 'totals:*' | xargs -r -n 500 \
    redis-cli -u "redis://$KF_REDIS" del > /dev/null

  echo "== $name: fanout off"
  kf_start_node --pipeline "$yaml" --bootstrap-servers "$KF_BOOTSTRAP" --redis "$KF_REDIS" \
    --state-dir "$KF_RUN_DIR/state-$name-off" --workers 2 --partition-actors 3 \
    --group-id "$name-off" --no-hot-key-fanout
  totals "$name-off" "$name"
  ! grep -q "pre-aggregated here" "$KF_RUN_DIR/keyflowd.log" || fail "$name: fanout is off but a source pre-aggregated"
  kill -TERM "$KF_NODE_PID"; wait "$KF_NODE_PID" || fail "$name: keyflowd exited non-zero"
  mv "$KF_RUN_DIR/keyflowd.log" "$KF_RUN_DIR/keyflowd-$name-off.log"
  redis-cli -u "redis://$KF_REDIS" --scan --pattern 'totals:*' | xargs -r -n 500 \
    redis-cli -u "redis://$KF_REDIS" del > /dev/null
  cmp -s "$KF_RUN_DIR/$name-on.json" "$KF_RUN_DIR/$name-off.json" || {
    diff "$KF_RUN_DIR/$name-on.json" "$KF_RUN_DIR/$name-off.json" | head -20
    fail "$name: totals with fanout differ from those without"
  }
  echo "   every hash's count, sum, min, max and avg are identical with and without fanout"
}

compare running "$PIPELINE"
compare windowed "$WINDOWED"
echo "== fanout: PASS in ${SECONDS} s"
