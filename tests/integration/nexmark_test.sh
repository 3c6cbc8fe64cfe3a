#!/usr/bin/env bash
# Nexmark q1, q2, q5, q7 and q11 from config/pipelines/nexmark/*.yaml: keyflow-gen nexmark
# writes persons, auctions and bids (1:3:46) to a 4-partition topic, with random partitioning
# and bounded disorder; each query runs on keyflowd and its output topic is compared with an
# independent computation (tests/integration/nexmark_check.py). q5 (two stages: sliding
# counts, then the maximum per window after key_by) also runs through a kill -9 and a restart
# from its last checkpoint while events are still arriving.
#
# Usage: nexmark_test.sh BIN_DIR REPO_ROOT
set -euo pipefail
BIN=$1
ROOT=$2

export KF_RUN_DIR; KF_RUN_DIR=$(mktemp -d /tmp/keyflow-it-nexmark.XXXXXX)
export KF_BIN_DIR=$BIN
# shellcheck source=tools/lib.sh
source "$ROOT/tools/lib.sh"
trap kf_test_finish EXIT
PY=/usr/bin/python3
EVENTS=${NEXMARK_EVENTS:-50000}
BOUND=1000 # max_out_of_orderness_ms of the pipelines

kf_start_broker nexmark:4 nexmark-dlq:1 nexmark-q1:4 nexmark-q2:1 nexmark-q5:1 nexmark-q7:1 \
  nexmark-q11:1 nexmark-r:4 nexmark-q5r:1
echo "== $EVENTS Nexmark events (500/s of event time, disorder up to 500 ms)"
"$BIN/keyflow-gen" nexmark --bootstrap-servers "$KF_BOOTSTRAP" --topic nexmark \
  --events "$EVENTS" --events-per-second 500 --max-delay-ms 500 --random-partition --seed 5 \
  > "$KF_RUN_DIR/gen.json"

check() { # check QUERY OUTPUT_TOPIC INPUT_TOPIC
  $PY "$ROOT/tests/integration/nexmark_check.py" --bootstrap "$KF_BOOTSTRAP" \
    --input-topic "$3" --query "$1" --output-topic "$2" --out-of-orderness-ms "$BOUND" --wait-s 60
}

for q in q1 q2 q5 q7 q11; do
  echo "== $q"
  kf_start_node --pipeline "$ROOT/config/pipelines/nexmark/$q.yaml" \
    --bootstrap-servers "$KF_BOOTSTRAP" --state-dir "$KF_RUN_DIR/state-$q"
  check "$q" "nexmark-$q" nexmark
  kill -TERM "$KF_NODE_PID"
  wait "$KF_NODE_PID" 2> /dev/null || true
done

echo "== q5 with a kill -9 mid-stream"
sed -e 's/topic: nexmark$/topic: nexmark-r/' -e 's/topic: nexmark-q5$/topic: nexmark-q5r/' \
  "$ROOT/config/pipelines/nexmark/q5.yaml" > "$KF_RUN_DIR/q5r.yaml"
sed -i "s#\.\./\.\./proto/#$ROOT/config/proto/#" "$KF_RUN_DIR/q5r.yaml"
node=(--pipeline "$KF_RUN_DIR/q5r.yaml" --bootstrap-servers "$KF_BOOTSTRAP"
      --state-dir "$KF_RUN_DIR/state-q5r" --checkpoint-interval-ms 300)
kf_start_node "${node[@]}"
"$BIN/keyflow-gen" nexmark --bootstrap-servers "$KF_BOOTSTRAP" --topic nexmark-r \
  --events "$EVENTS" --events-per-second 1000 --max-delay-ms 500 --random-partition --seed 6 \
  --rate 25000 > "$KF_RUN_DIR/gen-r.json" &
GEN=$!
sleep 1.2
kill -9 "$KF_NODE_PID"
echo "   killed keyflowd mid-stream; restarting from its last checkpoint"
kf_start_node "${node[@]}"
wait "$GEN"
check q5 nexmark-q5r nexmark-r
echo "PASS: nexmark q1 q2 q5 q7 q11 exact, q5 exact through kill -9"
