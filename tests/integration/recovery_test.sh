#!/usr/bin/env bash
# Crash recovery of the reference pipeline: keyflow-broker + real redis-server + keyflowd
# with checkpoints every 300 ms while keyflow-gen writes events at a steady rate.
#   1. kill -9 of keyflowd at seeded random moments (10 in the fast mode, 20 with
#      KEYFLOW_LONG_TESTS=1), restarting it each time;
#   2. kill -9 inside a checkpoint, after the state snapshot and before the manifest (fail
#      point): the restart ignores the incomplete checkpoint;
#   3. a corrupted file in the newest checkpoint: the restart falls back to the previous one
#      and keyflow_checkpoints_corrupt_total shows it;
#   4. restarts with 3 and then 1 partition actors (key groups restored into a different
#      number of actors).
# At the end every customer's profile in Redis, every dead letter and every activation
# must equal what the generator sent (keyflow-verify), exactly.
#
# Usage: recovery_test.sh BIN_DIR REPO_ROOT
set -euo pipefail
BIN=$1
ROOT=$2
PIPELINE=$ROOT/config/pipelines/cdp.yaml
KILLS=${KEYFLOW_KILLS:-10}
[ "${KEYFLOW_LONG_TESTS:-0}" = 1 ] && KILLS=20

export KF_RUN_DIR; KF_RUN_DIR=$(mktemp -d /tmp/keyflow-it-recovery.XXXXXX)
export KF_BIN_DIR=$BIN
# shellcheck source=tools/lib.sh
source "$ROOT/tools/lib.sh"
trap kf_test_finish EXIT

kf_start_redis
kf_start_broker events:4 events-dlq:1 activations:1

# node [ARGS...]: starts keyflowd on the shared state and checkpoint directories.
node() {
  kf_start_node --pipeline "$PIPELINE" --bootstrap-servers "$KF_BOOTSTRAP" --redis "$KF_REDIS" \
    --state-dir "$KF_RUN_DIR/state" --checkpoint-interval-ms 300 "$@"
}

EVENTS=200000
echo "== generating $EVENTS events at 20000/s while keyflowd is killed $KILLS times"
"$BIN/keyflow-gen" --bootstrap-servers "$KF_BOOTSTRAP" --events $EVENTS --customers 2000 \
  --malformed 0.01 --zipf 0.8 --random-partition --rate 20000 --seed 7 \
  --summary "$KF_RUN_DIR/summary.json" 2> "$KF_RUN_DIR/gen.log" &
GEN=$!

RANDOM=4242   # seeded: the same kill points every run
node
for i in $(seq "$KILLS"); do
  sleep "0.$(( RANDOM % 9 + 1 ))"
  echo "   kill -9 #$i (pid $KF_NODE_PID)"
  kf_crash_node
  node
done

echo "== kill -9 between state snapshot and manifest (fail point)"
kf_wait_checkpoints 1
kf_crash_node
before=$(ls "$KF_RUN_DIR/state-checkpoints" | sort | tail -1)
KEYFLOW_FAIL_POINT=checkpoint.before_manifest node
for _ in $(seq 200); do kill -0 "$KF_NODE_PID" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$KF_NODE_PID" 2>/dev/null; then echo "fail point did not fire" >&2; exit 1; fi
wait "$KF_NODE_PID" 2>/dev/null || true
incomplete=$(ls "$KF_RUN_DIR/state-checkpoints" | sort -V | tail -1)
[ ! -f "$KF_RUN_DIR/state-checkpoints/$incomplete/MANIFEST.pb" ] ||
  { echo "newest checkpoint $incomplete has a manifest, expected none" >&2; exit 1; }
node
grep -q "restored checkpoint" "$KF_RUN_DIR/keyflowd.log" ||
  { echo "restart after the fail point did not restore a checkpoint" >&2; exit 1; }
grep "restored checkpoint" "$KF_RUN_DIR/keyflowd.log" | head -1
echo "   (newest complete before: $before, incomplete: $incomplete)"

wait "$GEN"
echo "== corrupt a file of the newest checkpoint"
kf_wait_checkpoints 2
kf_crash_node
newest=$(cd "$KF_RUN_DIR/state-checkpoints" && ls -d chk-* | sort -V | tail -1)
victim=$(ls "$KF_RUN_DIR/state-checkpoints/$newest/rocksdb/"MANIFEST-* | head -1)
printf 'garbage' | dd of="$victim" bs=1 seek=8 conv=notrunc 2>/dev/null
node
grep -q "$newest is unusable" "$KF_RUN_DIR/keyflowd.log" ||
  { echo "corrupted $newest was not detected" >&2; exit 1; }
[ "$(kf_metric '^keyflow_checkpoints_corrupt_total')" -ge 1 ] ||
  { echo "keyflow_checkpoints_corrupt_total did not count the corrupted checkpoint" >&2; exit 1; }
grep "unusable\|restored checkpoint" "$KF_RUN_DIR/keyflowd.log" | head -2

echo "== restore into 3, then 1 partition actors (keeping only 100 keys in memory)"
kf_wait_checkpoints 1
kf_crash_node
node --partition-actors 3
kf_wait_checkpoints 1
kf_crash_node
node --partition-actors 1 --state-cache-keys 100   # most keys re-read from RocksDB

echo "== verify"
"$BIN/keyflow-verify" --summary "$KF_RUN_DIR/summary.json" --redis "$KF_REDIS" \
  --pipeline "$PIPELINE" --bootstrap-servers "$KF_BOOTSTRAP" --wait 90 --sample 3 \
  --at-least-once-kafka
