#!/usr/bin/env bash
# Named snapshots and failed checkpoints:
#   1. an injected checkpoint failure (fail point checkpoint.error, as on a full disk) is
#      counted in keyflow_checkpoints_total{result="failed"} and the job goes on checkpointing;
#   2. SIGTERM with --stop-snapshot writes the final checkpoint as a named snapshot while
#      events are still being produced;
#   3. a node with a new, empty state directory (as in another region) started with
#      --restore-snapshot resumes from the snapshot's offsets: results exact;
#   4. a missing snapshot and an unsafe name are refused before anything starts.
# A last phase runs the Kafka sink in exactly-once mode (transactions committed at each
# checkpoint) on a fresh pipeline without a checkpoint interval: each SIGUSR1 takes one
# checkpoint, outputs are exact and transactions are counted.
#
# Usage: snapshot_test.sh BIN_DIR REPO_ROOT
set -euo pipefail
BIN=$1
ROOT=$2

export KF_RUN_DIR; KF_RUN_DIR=$(mktemp -d /tmp/keyflow-it-snapshot.XXXXXX)
export KF_BIN_DIR=$BIN
# shellcheck source=tools/lib.sh
source "$ROOT/tools/lib.sh"
trap kf_test_finish EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
PIPELINE=$ROOT/config/pipelines/cdp.yaml

kf_start_redis
kf_start_broker events:4 events-dlq:1 activations:1
SHARED=$KF_RUN_DIR/checkpoints
common=(--pipeline "$PIPELINE" --bootstrap-servers "$KF_BOOTSTRAP" --redis "$KF_REDIS"
        --checkpoint-dir "$SHARED" --checkpoint-interval-ms 200)

echo "== region A, with one injected checkpoint failure"
KEYFLOW_FAIL_POINT=checkpoint.error kf_start_node "${common[@]}" --state-dir "$KF_RUN_DIR/a" \
  --stop-snapshot before-move
"$BIN/keyflow-gen" --bootstrap-servers "$KF_BOOTSTRAP" --events 80000 --customers 500 \
  --malformed 0.01 --rate 20000 --seed 11 --summary "$KF_RUN_DIR/summary.json" \
  2> "$KF_RUN_DIR/gen.log" &
GEN=$!
for _ in $(seq 200); do
  [ "$(kf_metric '^keyflow_checkpoints_total.*result="completed"')" -ge 2 ] && break
  sleep 0.05
done
failed=$(kf_metric '^keyflow_checkpoints_total.*result="failed"')
completed=$(kf_metric '^keyflow_checkpoints_total.*result="completed"')
echo "   checkpoints: $failed failed, $completed completed"
[ "$failed" -eq 1 ] || fail "expected 1 failed checkpoint, got $failed"
[ "$completed" -ge 2 ] || fail "checkpoints did not go on after the failure"
grep -q "injected checkpoint failure" "$KF_RUN_DIR/keyflowd.log" || fail "failure not logged"

sleep 1
echo "== SIGTERM with --stop-snapshot while events still arrive"
kill -TERM "$KF_NODE_PID"
timeout 60 tail --pid="$KF_NODE_PID" -f /dev/null
wait "$KF_NODE_PID" || fail "keyflowd exited non-zero after SIGTERM"
grep -q "written as snapshot 'before-move'" "$KF_RUN_DIR/keyflowd.log" ||
  fail "no snapshot written at stop"
[ -f "$SHARED/snapshots/before-move/MANIFEST.pb" ] || fail "snapshot manifest missing"

echo "== bad restores are refused before anything starts"
for name in does-not-exist ../etc; do
  if "$BIN/keyflowd" "${common[@]}" --state-dir "$KF_RUN_DIR/x" --restore-snapshot "$name" \
     --metrics-address 127.0.0.1:0 > "$KF_RUN_DIR/bad.out" 2> "$KF_RUN_DIR/bad.err"; then
    fail "--restore-snapshot $name started"
  fi
  grep -q "keyflowd ready" "$KF_RUN_DIR/bad.out" && fail "--restore-snapshot $name got ready"
  grep -q -- "$name" "$KF_RUN_DIR/bad.err" || fail "error does not name '$name'"
  echo "   refused: $(grep -v '^%' "$KF_RUN_DIR/bad.err" | tail -1)"
done

echo "== region B: new state directory, restore the snapshot"
kf_start_node "${common[@]}" --state-dir "$KF_RUN_DIR/b" --restore-snapshot before-move
grep -q "restored checkpoint .*snapshots/before-move" "$KF_RUN_DIR/keyflowd.log" ||
  fail "region B did not restore the snapshot"
wait "$GEN"
"$BIN/keyflow-verify" --summary "$KF_RUN_DIR/summary.json" --redis "$KF_REDIS" \
  --pipeline "$PIPELINE" --bootstrap-servers "$KF_BOOTSTRAP" --wait 60 --sample 3 \
  --at-least-once-kafka

echo "== exactly-once Kafka sink (transactions), on its own topics"
kill -TERM "$KF_NODE_PID"; wait "$KF_NODE_PID" || fail "region B exited non-zero"
TXN=$KF_RUN_DIR/cdp-exactly-once.yaml
sed -e 's/^    topic: activations$/    topic: activations-txn\n    delivery: exactly-once/' \
    -e 's/^  topic: events-dlq$/  topic: events-dlq-txn/' -e 's/^  topic: events$/  topic: events-txn/' \
    -e 's/^  name: cdp$/  name: cdp-txn/' -e "s#proto: ../proto/#proto: $ROOT/config/proto/#" \
    "$ROOT/config/pipelines/cdp.yaml" > "$TXN"
grep -q "delivery: exactly-once" "$TXN" || fail "could not make the exactly-once pipeline"
kf_stop_all
kf_start_redis
kf_start_broker events-txn:4 events-dlq-txn:1 activations-txn:1
kf_start_node --pipeline "$TXN" --bootstrap-servers "$KF_BOOTSTRAP" --redis "$KF_REDIS" \
  --state-dir "$KF_RUN_DIR/txn" --checkpoint-interval-ms 0
"$BIN/keyflow-gen" --bootstrap-servers "$KF_BOOTSTRAP" --topic events-txn --events 30000 \
  --customers 300 --malformed 0.01 --seed 5 --summary "$KF_RUN_DIR/summary-txn.json" \
  2> "$KF_RUN_DIR/gen-txn.log"
"$BIN/keyflow-verify" --summary "$KF_RUN_DIR/summary-txn.json" --redis "$KF_REDIS" \
  --pipeline "$TXN" --bootstrap-servers "$KF_BOOTSTRAP" --wait 60 --sample 2
# No interval: checkpoints (and so transaction commits) only on SIGUSR1.
[ "$(kf_metric '^keyflow_checkpoints_total')" -eq 0 ] || fail "checkpoint without interval"
for n in 1 2; do
  kill -USR1 "$KF_NODE_PID"
  for _ in $(seq 200); do
    [ "$(kf_metric '^keyflow_checkpoints_total.*result="completed"')" -ge $n ] && break
    sleep 0.05
  done
done
[ "$(kf_metric '^keyflow_checkpoints_total.*result="completed"')" -eq 2 ] ||
  fail "SIGUSR1 did not take exactly one checkpoint each"
txns=$(kf_metric '^keyflow_sink_transactions_total')
echo "   transactions committed: $txns"
[ "$txns" -ge 2 ] || fail "exactly-once Kafka sink committed $txns transactions"
