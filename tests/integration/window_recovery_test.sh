#!/usr/bin/env bash
# Crash recovery with event-time windows and dedup: the iot pipeline
# (config/pipelines/iot.yaml: dedup, tumbling and sliding windows with allowed lateness, a
# filter on window results) with checkpoints every 500 ms, while tests/integration/seeds/
# iot.py writes its main readings at a steady rate:
#   1. kill -9 of keyflowd at seeded random moments (6 in the fast mode, 15 with
#      KEYFLOW_LONG_TESTS=1), restarting it on the same state each time;
#   2. after the input ends, one more kill -9 right after a completed checkpoint and a
#      restart into 2 instead of 3 partition actors (key groups and window timers restored
#      into a different number of actors);
#   3. once the watermark passed the main data: the late readings (within the lateness,
#      an hour behind, duplicates).
# Then every window result in Redis and Kafka, every alert and every dead letter must equal
# what a failure-free run produces, exactly (dead letters may repeat: at-least-once).
#
# Usage: window_recovery_test.sh BIN_DIR REPO_ROOT
set -euo pipefail
BIN=$1
ROOT=$2
PIPELINE=$ROOT/config/pipelines/iot.yaml
PY=/usr/bin/python3
SCRIPT=$ROOT/tests/integration/seeds/iot.py
INPUT=(--seed 9 --devices 40 --minutes 40)
KILLS=${KEYFLOW_KILLS:-6}
[ "${KEYFLOW_LONG_TESTS:-0}" = 1 ] && KILLS=15

export KF_RUN_DIR; KF_RUN_DIR=$(mktemp -d /tmp/keyflow-it-window-recovery.XXXXXX)
export KF_BIN_DIR=$BIN
# shellcheck source=tools/lib.sh
source "$ROOT/tools/lib.sh"
trap kf_test_finish EXIT

kf_start_redis
kf_start_broker readings:4 readings-dlq:1 iot-minute:2 alerts:1

# node [ACTORS]: starts keyflowd (ACTORS partition actors, default 3) on the shared state and
# checkpoint directories.
node() {
  kf_start_node --pipeline "$PIPELINE" --bootstrap-servers "$KF_BOOTSTRAP" --redis "$KF_REDIS" \
    --state-dir "$KF_RUN_DIR/state" --checkpoint-interval-ms 500 --workers 2 \
    --partition-actors "${1:-3}"
}

echo "== writing the main readings at 700/s while keyflowd is killed $KILLS times"
"$PY" "$SCRIPT" generate --bootstrap "$KF_BOOTSTRAP" --phase main --rate 700 "${INPUT[@]}" \
  > "$KF_RUN_DIR/gen.log" 2>&1 &
GEN=$!

# keyflowd starts once records are waiting on every partition (see seeds_test.sh: sources
# idle before a burst would let the first one advance the watermark past the others).
# has_records P: partition P of the input topic holds a record.
has_records() {
  [ -n "$(timeout 5 kcat -C -b "$KF_BOOTSTRAP" -t readings -p "$1" -o beginning -c 1 -e -q \
    -f '%o\n' 2>/dev/null)" ]
}
for p in 0 1 2 3; do kf_wait_for has_records "$p"; done
RANDOM=4711   # seeded: the same kill points every run
node
for i in $(seq "$KILLS"); do
  sleep "$(( RANDOM % 3 )).$(( RANDOM % 10 ))"   # 0.0 .. 2.9 s: before and after checkpoints
  echo "   kill -9 #$i (pid $KF_NODE_PID, $(kf_metric '^keyflow_checkpoints_total.*result="completed"') checkpoints completed)"
  kf_crash_node
  node
done
wait "$GEN" || { cat "$KF_RUN_DIR/gen.log" >&2; exit 1; }
cat "$KF_RUN_DIR/gen.log"

echo "== kill -9 after a completed checkpoint, restart into 2 partition actors"
kf_wait_checkpoints 1
kf_crash_node
node 2
grep -q "restored checkpoint" "$KF_RUN_DIR/keyflowd.log" ||
  { echo "the restart did not restore a checkpoint" >&2; exit 1; }
grep -o "restored checkpoint.*" "$KF_RUN_DIR/keyflowd.log" | head -1

echo "== late readings, once the watermark passed the main data"
"$PY" "$SCRIPT" wait --metrics "$KF_METRICS" --phase main "${INPUT[@]}"
"$PY" "$SCRIPT" generate --bootstrap "$KF_BOOTSTRAP" --phase late "${INPUT[@]}"

echo "== check"
"$PY" "$SCRIPT" check --bootstrap "$KF_BOOTSTRAP" --redis "$KF_REDIS" --restarted "${INPUT[@]}"
echo "PASS in ${SECONDS} s"
