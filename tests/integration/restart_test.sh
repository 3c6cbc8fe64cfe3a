#!/usr/bin/env bash
# A graceful restart keeps state exact: keyflowd processes a first batch of events, is
# stopped with SIGTERM (it drains and exits 0), is started again on the same state directory
# and consumer group, and processes a second batch. Every profile must then equal what both
# batches together produce: nothing counted twice, nothing lost; activations still exactly
# once per customer.
#
# Usage: restart_test.sh BIN_DIR REPO_ROOT
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 BIN_DIR REPO_ROOT" >&2
  exit 2
fi
ROOT=$2
PIPELINE=$ROOT/config/pipelines/cdp.yaml

RUN=$(mktemp -d /tmp/keyflow-it-restart.XXXXXX)
export KF_BIN_DIR=$1
export KF_RUN_DIR=$RUN
# shellcheck source=tools/lib.sh
source "$ROOT/tools/lib.sh"

trap kf_test_finish EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# stop_node: SIGTERM; keyflowd must exit 0 within 30 s.
stop_node() {
  kill -TERM "$KF_NODE_PID"
  for _ in $(seq 300); do kill -0 "$KF_NODE_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$KF_NODE_PID" 2>/dev/null; then
    kill -KILL "$KF_NODE_PID"
    wait "$KF_NODE_PID" || true
    fail "keyflowd still running 30 s after SIGTERM"
  fi
  local rc=0
  wait "$KF_NODE_PID" || rc=$?
  [ $rc -eq 0 ] || fail "keyflowd exited $rc after SIGTERM"
}

start_node() {
  kf_start_node --pipeline "$PIPELINE" --bootstrap-servers "$KF_BOOTSTRAP" --redis "$KF_REDIS" \
    --state-dir "$RUN/state" --workers 2 --partition-actors 3 --group-id restart-test
}

generate() { # SEED SUMMARY
  timeout 120 "$KF_BIN_DIR/keyflow-gen" --bootstrap-servers "$KF_BOOTSTRAP" --topic events \
    --events 20000 --customers 200 --seed "$1" --summary "$2" || fail "keyflow-gen failed"
}

kf_start_redis
kf_start_broker events:4 events-dlq:1 activations:1

echo "=== first run"
start_node
generate 11 "$RUN/first.json"
kf_wait_processed 20000
stop_node

echo "=== second run, same state directory and consumer group"
start_node
generate 12 "$RUN/second.json"
kf_wait_processed 20000

# What both batches together must produce.
python3 - "$RUN/first.json" "$RUN/second.json" "$RUN/both.json" <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
both = dict(a)
for k in ("events", "valid", "malformed"):
    both[k] = a[k] + b[k]
per = {k: dict(v) for k, v in a["per_customer"].items()}
for k, v in b["per_customer"].items():
    if k in per:
        per[k]["count"] += v["count"]
        per[k]["sum"] += v["sum"]
        per[k]["last_event_time_ms"] = max(per[k]["last_event_time_ms"], v["last_event_time_ms"])
    else:
        per[k] = dict(v)
both["per_customer"] = per
json.dump(both, open(sys.argv[3], "w"))
EOF

rc=0
timeout 150 "$KF_BIN_DIR/keyflow-verify" --summary "$RUN/both.json" --redis "$KF_REDIS" \
  --pipeline "$PIPELINE" --bootstrap-servers "$KF_BOOTSTRAP" --wait 30 --sample 3 || rc=$?
[ $rc -eq 0 ] || fail "results after a graceful restart differ from one run over both batches"
stop_node
echo "PASS"
