#!/usr/bin/env bash
# keyflowd refuses bad input before it starts anything: malformed pipeline files (unknown key,
# wrong type, missing source topic, ...), a pipeline naming a topic Kafka does not have, and
# a Redis address where nothing listens. Each must exit non-zero without "keyflowd ready" on
# stdout and without creating its state directory, with a message on stderr naming the
# thing at fault (file:line and key; topic; address). A broker and a redis-server are running
# so that nothing but the fault can stop the node; a control run with the reference pipeline
# shows they do start a node.
#
# Usage: bad_config_test.sh BIN_DIR REPO_ROOT
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 BIN_DIR REPO_ROOT" >&2
  exit 2
fi
ROOT=$2

RUN=$(mktemp -d /tmp/keyflow-it-bad-config.XXXXXX)
mkdir -p "$RUN/pipelines"
export KF_BIN_DIR=$1
export KF_RUN_DIR=$RUN
# shellcheck source=tools/lib.sh
source "$ROOT/tools/lib.sh"

cleanup() {
  local rc=$?
  set +e
  KF_RUN_DIR=$RUN/control kf_stop_all
  KF_RUN_DIR=$RUN kf_stop_all
  if [ $rc -eq 0 ]; then rm -rf "$RUN"; else echo "FAILED; run directory kept: $RUN" >&2; fi
  exit $rc
}
trap cleanup EXIT

FAILURES=0
fail() {
  echo "FAIL: $*" >&2
  FAILURES=$((FAILURES + 1))
}

kf_start_redis
kf_start_broker events:4 events-dlq:1 activations:1
echo "redis $KF_REDIS, kafka $KF_BOOTSTRAP"

CASE=0
# expect_refusal NAME PIPELINE_FILE [KAFKA [REDIS]]: runs keyflowd (against the live broker
# and redis unless given other addresses); it must exit non-zero before starting. Leaves
# its stderr in $ERR.
expect_refusal() {
  local name=$1 file=$2 kafka=${3:-$KF_BOOTSTRAP} redis=${4:-$KF_REDIS}
  CASE=$((CASE + 1))
  local dir=$RUN/case$CASE
  mkdir -p "$dir"
  ERR=$dir/stderr
  local rc=0
  timeout 60 "$KF_BIN_DIR/keyflowd" --pipeline "$file" --bootstrap-servers "$kafka" \
    --redis "$redis" --state-dir "$dir/state" --metrics-address 127.0.0.1:0 \
    > "$dir/stdout" 2> "$ERR" || rc=$?
  echo "--- $name: exit $rc: $(grep -m1 '^keyflowd: ' "$ERR" | head -c 300)"
  if [ $rc -eq 0 ]; then fail "$name: keyflowd exited 0"; fi
  if [ $rc -eq 124 ] || [ $rc -ge 128 ]; then fail "$name: keyflowd hung or crashed ($rc)"; fi
  if grep -q "keyflowd ready" "$dir/stdout"; then fail "$name: keyflowd started (ready)"; fi
  if [ -e "$dir/state" ]; then fail "$name: keyflowd created its state directory"; fi
  return 0
}

# expect_in_stderr NAME TEXT...: keyflowd's own error message (a stderr line starting with
# "keyflowd: ", not a library's log line) contains every TEXT.
expect_in_stderr() {
  local name=$1
  shift
  local msg
  msg=$(grep '^keyflowd: ' "$ERR" || true)
  [ -n "$msg" ] || fail "$name: no 'keyflowd: ' error message on stderr"
  for text in "$@"; do
    grep -qF -- "$text" <<< "$msg" || fail "$name: keyflowd's message does not contain '$text'"
  done
}

# expect_position NAME FILE LINE KEY: stderr names FILE:LINE: and KEY.
expect_position() {
  expect_in_stderr "$1" "$2:$3:" "$4"
}

P=$RUN/pipelines

# Shared tail of the pipelines below (validate + aggregate, no sinks).
ops='operators:
  - id: validate
    type: validate
  - id: aggregate
    type: aggregate'

# 1. An unknown key (line 6).
cat > "$P/unknown_key.yaml" <<EOF
pipeline:
  name: bad
  version: 1
source:
  topic: events
  colour: blue
dead_letters:
  topic: events-dlq
$ops
EOF
expect_refusal "unknown key" "$P/unknown_key.yaml"
expect_position "unknown key" "$P/unknown_key.yaml" 6 colour

# 2. An unknown key in an operator (line 10).
cat > "$P/unknown_operator_key.yaml" <<EOF
pipeline:
  name: bad
source:
  topic: events
dead_letters:
  topic: events-dlq
operators:
  - id: validate
    type: validate
    strict: yes
  - id: aggregate
    type: aggregate
EOF
expect_refusal "unknown operator key" "$P/unknown_operator_key.yaml"
expect_position "unknown operator key" "$P/unknown_operator_key.yaml" 10 strict

# 3. A wrong type: text where a number belongs (line 3).
cat > "$P/wrong_type_number.yaml" <<EOF
pipeline:
  name: bad
  max_parallelism: lots
source:
  topic: events
dead_letters:
  topic: events-dlq
$ops
EOF
expect_refusal "wrong type (number)" "$P/wrong_type_number.yaml"
expect_position "wrong type (number)" "$P/wrong_type_number.yaml" 3 max_parallelism

# 4. A wrong type: a list where a map belongs (line 5).
cat > "$P/wrong_type_map.yaml" <<EOF
pipeline:
  name: bad
source:
  - topic: events
dead_letters:
  topic: events-dlq
$ops
EOF
expect_refusal "wrong type (map)" "$P/wrong_type_map.yaml"
expect_in_stderr "wrong type (map)" "$P/wrong_type_map.yaml:" "source"
grep -qE -- "^keyflowd: $P/wrong_type_map.yaml:(3|4):" "$ERR" ||
  fail "wrong type (map): stderr does not name line 3 or 4"

# 5. A wrong type in the score model: a quoted number (line 18).
cat > "$P/wrong_type_threshold.yaml" <<EOF
pipeline:
  name: bad
source:
  topic: events
dead_letters:
  topic: events-dlq
operators:
  - id: validate
    type: validate
  - id: aggregate
    type: aggregate
  - id: score
    type: score
    bias: -6.0
    weights:
      count: 0.04
      sum: 0.0001
    threshold: "0.6"
EOF
expect_refusal "wrong type (quoted number)" "$P/wrong_type_threshold.yaml"
expect_position "wrong type (quoted number)" "$P/wrong_type_threshold.yaml" 18 threshold

# 6. The source has no topic (the source map starts on line 4, under "source:" on line 3).
cat > "$P/missing_source_topic.yaml" <<EOF
pipeline:
  name: bad
source:
  id: src
  start_offset: earliest
dead_letters:
  topic: events-dlq
$ops
EOF
expect_refusal "missing source topic" "$P/missing_source_topic.yaml"
expect_in_stderr "missing source topic" "$P/missing_source_topic.yaml:" "source.topic"
grep -qE -- "^keyflowd: $P/missing_source_topic.yaml:(3|4):" "$ERR" ||
  fail "missing source topic: stderr does not name line 3 or 4"

# 7. The source topic does not exist in Kafka (and checking must not create it).
sed 's/^  topic: events$/  topic: clicks-nowhere/' "$ROOT/config/pipelines/cdp.yaml" \
  > "$P/unknown_source_topic.yaml"
grep -q "topic: clicks-nowhere" "$P/unknown_source_topic.yaml" || fail "sed did not apply"
expect_refusal "unknown source topic" "$P/unknown_source_topic.yaml"
expect_in_stderr "unknown source topic" "clicks-nowhere"
if timeout 30 kcat -L -b "$KF_BOOTSTRAP" | grep -q '"clicks-nowhere"'; then
  fail "unknown source topic: checking for the topic created it"
fi

# 8. The dead-letter topic does not exist.
sed 's/^  topic: events-dlq$/  topic: dlq-nowhere/' "$ROOT/config/pipelines/cdp.yaml" \
  > "$P/unknown_dlq_topic.yaml"
expect_refusal "unknown dead-letter topic" "$P/unknown_dlq_topic.yaml"
expect_in_stderr "unknown dead-letter topic" "dlq-nowhere"

# 9. The activations topic does not exist.
sed 's/^    topic: activations$/    topic: activations-nowhere/' \
  "$ROOT/config/pipelines/cdp.yaml" > "$P/unknown_activations_topic.yaml"
expect_refusal "unknown activations topic" "$P/unknown_activations_topic.yaml"
expect_in_stderr "unknown activations topic" "activations-nowhere"

# 10. Nothing listens at the Redis address.
closed=$(kf_free_port)
expect_refusal "closed Redis port" "$ROOT/config/pipelines/cdp.yaml" "$KF_BOOTSTRAP" \
  "127.0.0.1:$closed"
expect_in_stderr "closed Redis port" "127.0.0.1:$closed"

# 11. Nothing listens at the Kafka address.
closed=$(kf_free_port)
expect_refusal "closed Kafka port" "$ROOT/config/pipelines/cdp.yaml" "127.0.0.1:$closed"
expect_in_stderr "closed Kafka port" "127.0.0.1:$closed"

# Control: the same broker, redis and options start a node with the reference pipeline.
mkdir -p "$RUN/control"
KF_RUN_DIR=$RUN/control
kf_start_node --pipeline "$ROOT/config/pipelines/cdp.yaml" --bootstrap-servers "$KF_BOOTSTRAP" \
  --redis "$KF_REDIS" --state-dir "$RUN/control/state" || fail "control: keyflowd did not start"
KF_RUN_DIR=$RUN
kill -TERM "$KF_NODE_PID" 2>/dev/null || true
for _ in $(seq 300); do kill -0 "$KF_NODE_PID" 2>/dev/null || break; sleep 0.1; done

if [ $FAILURES -gt 0 ]; then
  echo "$FAILURES checks failed" >&2
  exit 1
fi
echo "PASS"
