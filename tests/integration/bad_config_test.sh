#!/usr/bin/env bash
# keyflowd refuses bad input before it starts anything: malformed pipeline files (unknown key,
# wrong type, missing source topic, ..., and every file of tests/data/bad_pipelines), fields
# the schema does not have, a missing schema file, bad node options, a pipeline naming a
# topic Kafka does not have, and a Redis address where nothing listens. Each must exit non-zero without "keyflowd ready" on
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
PROTO=$ROOT/config/proto/event.proto

# Shared head of the pipelines below (lines 1-5; the first operator is on line 6).
head="pipeline: {name: bad, version: 1}
schema: {proto: $PROTO, message: keyflow.proto.Event}
source: {topic: events}
dead_letters: {topic: events-dlq}
operators:"
agg='  - {id: aggregate, type: aggregate, aggregates: {count: {fn: count}}}'

# 1. An unknown key in the source (line 6).
cat > "$P/unknown_key.yaml" <<EOF
pipeline:
  name: bad
schema: {proto: $PROTO, message: keyflow.proto.Event}
source:
  topic: events
  colour: blue
dead_letters:
  topic: events-dlq
operators:
$agg
EOF
expect_refusal "unknown key" "$P/unknown_key.yaml"
expect_position "unknown key" "$P/unknown_key.yaml" 6 source.colour

# 2. A key the operator's type does not take (line 9): a window has no 'every'.
cat > "$P/unknown_operator_key.yaml" <<EOF
$head
  - id: windows
    type: window
    kind: tumbling
    every: 1000
    aggregates: {count: {fn: count}}
EOF
expect_refusal "unknown operator key" "$P/unknown_operator_key.yaml"
expect_position "unknown operator key" "$P/unknown_operator_key.yaml" 9 operators[0].every

# 3. A wrong type: text where a number belongs (line 3).
cat > "$P/wrong_type_number.yaml" <<EOF
pipeline:
  name: bad
  max_parallelism: lots
schema: {proto: $PROTO, message: keyflow.proto.Event}
source: {topic: events}
dead_letters: {topic: events-dlq}
operators:
$agg
EOF
expect_refusal "wrong type (number)" "$P/wrong_type_number.yaml"
expect_position "wrong type (number)" "$P/wrong_type_number.yaml" 3 pipeline.max_parallelism

# 4. A wrong type: a list where a map belongs (line 5).
cat > "$P/wrong_type_map.yaml" <<EOF
pipeline:
  name: bad
schema: {proto: $PROTO, message: keyflow.proto.Event}
source:
  - topic: events
dead_letters:
  topic: events-dlq
operators:
$agg
EOF
expect_refusal "wrong type (map)" "$P/wrong_type_map.yaml"
expect_position "wrong type (map)" "$P/wrong_type_map.yaml" 5 "source: expected a map"

# 5. A wrong type in the score model: a quoted number (line 11).
cat > "$P/wrong_type_weight.yaml" <<EOF
$head
$agg
  - id: score
    type: score
    bias: -6.0
    weights:
      count: "0.04"
EOF
expect_refusal "wrong type (quoted number)" "$P/wrong_type_weight.yaml"
expect_position "wrong type (quoted number)" "$P/wrong_type_weight.yaml" 11 \
  operators[1].weights.count

# 6. The source has no topic (the source map starts on line 4, under "source:" on line 3).
cat > "$P/missing_source_topic.yaml" <<EOF
pipeline:
  name: bad
source:
  id: src
  start_offset: earliest
schema: {proto: $PROTO, message: keyflow.proto.Event}
dead_letters:
  topic: events-dlq
operators:
$agg
EOF
expect_refusal "missing source topic" "$P/missing_source_topic.yaml"
expect_position "missing source topic" "$P/missing_source_topic.yaml" 4 source.topic

# 7. A field the schema does not have: the message names the operator, the fields there and
# the schema's explanation (line 7).
cat > "$P/unknown_field.yaml" <<EOF
$head
  - {id: validate, type: validate, required: [event_id]}
  - {id: big, type: filter, field: valeu, op: gt, value: "100"}
EOF
expect_refusal "unknown field" "$P/unknown_field.yaml"
expect_position "unknown field" "$P/unknown_field.yaml" 7 operators[1].field
expect_in_stderr "unknown field" "unknown field 'valeu' in the input of 'big'" \
  "'keyflow.proto.Event' has no field 'valeu'"

# 8. The event time is not an integer field (line 3).
cat > "$P/event_time_double.yaml" <<EOF
pipeline: {name: bad}
schema: {proto: $PROTO, message: keyflow.proto.Event}
source: {topic: events, event_time: value}
dead_letters: {topic: events-dlq}
operators:
$agg
EOF
expect_refusal "event time not an integer" "$P/event_time_double.yaml"
expect_position "event time not an integer" "$P/event_time_double.yaml" 3 source.event_time

# 9. The schema file does not exist (relative to the pipeline file; line 2).
cat > "$P/missing_schema.yaml" <<EOF
pipeline: {name: bad}
schema: {proto: nowhere/event.proto, message: keyflow.proto.Event}
source: {topic: events}
dead_letters: {topic: events-dlq}
operators:
$agg
EOF
expect_refusal "missing schema file" "$P/missing_schema.yaml"
expect_position "missing schema file" "$P/missing_schema.yaml" 2 schema
expect_in_stderr "missing schema file" "$P/nowhere/event.proto"

# 10. A validate operator that cannot run in the sources (line 7).
cat > "$P/validate_late.yaml" <<EOF
$head
  - {id: euros, type: map, set: {eur: {field: value, multiply: 0.9}}}
  - {id: validate, type: validate, required: [event_id]}
EOF
expect_refusal "validate not first" "$P/validate_late.yaml"
expect_position "validate not first" "$P/validate_late.yaml" 7 \
  "validate operator 'validate' must run in the sources"

# 11. Every bad pipeline file of the unit tests: line 2 holds the expected error
# ("# expect: LINE:COL: KEY.PATH: MESSAGE"), which must be keyflowd's message exactly.
fixtures=0
for f in "$ROOT"/tests/data/bad_pipelines/*.yaml; do
  name="fixture $(basename "$f" .yaml)"
  expect=$(sed -n '2s/^# expect: //p' "$f")
  if [ -z "$expect" ]; then fail "$name: no '# expect: ' line"; continue; fi
  expect_refusal "$name" "$f" > /dev/null
  grep -qxF -- "keyflowd: $f:$expect" "$ERR" ||
    fail "$name: expected 'keyflowd: $f:$expect', got '$(grep -m1 '^keyflowd: ' "$ERR")'"
  fixtures=$((fixtures + 1))
done
echo "--- $fixtures bad pipeline files refused with their expected message"
[ "$fixtures" -ge 100 ] || fail "only $fixtures bad pipeline files"

# 12. Bad node options: an unknown key in a node file (file, line and key), an unknown
# command-line option, a value out of range. None may create the state directory.
# expect_node_refusal NAME TEXT ARGS...: keyflowd ARGS exits non-zero naming TEXT.
expect_node_refusal() {
  local name=$1 text=$2 rc=0
  shift 2
  CASE=$((CASE + 1))
  ERR=$RUN/case$CASE.stderr
  timeout 60 "$KF_BIN_DIR/keyflowd" --state-dir "$RUN/node-state" "$@" > /dev/null 2> "$ERR" ||
    rc=$?
  echo "--- $name: exit $rc: $(grep -m1 '^keyflowd: ' "$ERR" | head -c 300)"
  if [ $rc -eq 0 ] || [ $rc -ge 124 ]; then fail "$name: exit $rc"; fi
  expect_in_stderr "$name" "$text"
  if [ -e "$RUN/node-state" ]; then fail "$name: keyflowd created its state directory"; fi
}
expect_node_refusal "node file unknown key" \
  "$ROOT/tests/data/node_options/unknown_key.yaml:3:1: batchsize: unknown key" \
  --config "$ROOT/tests/data/node_options/unknown_key.yaml"
expect_node_refusal "unknown option" "--creditz" \
  --pipeline "$ROOT/config/pipelines/cdp.yaml" --embedded-kafka --creditz 3
expect_node_refusal "credits 0" "--credits: must be at least 1" \
  --pipeline "$ROOT/config/pipelines/cdp.yaml" --embedded-kafka --credits 0

# cdp_with SED_SCRIPT: the reference pipeline edited by SED_SCRIPT, its schema path made
# absolute (the copy lives in another directory).
cdp_with() {
  sed -e "s|proto: \.\./proto/|proto: $ROOT/config/proto/|" -e "$1" "$ROOT/config/pipelines/cdp.yaml"
}

# 13. The source topic does not exist in Kafka (and checking must not create it).
cdp_with 's/^  topic: events$/  topic: clicks-nowhere/' > "$P/unknown_source_topic.yaml"
grep -q "topic: clicks-nowhere" "$P/unknown_source_topic.yaml" || fail "sed did not apply"
expect_refusal "unknown source topic" "$P/unknown_source_topic.yaml"
expect_in_stderr "unknown source topic" "clicks-nowhere"
if timeout 30 kcat -L -b "$KF_BOOTSTRAP" | grep -q '"clicks-nowhere"'; then
  fail "unknown source topic: checking for the topic created it"
fi

# 14. The dead-letter topic does not exist.
cdp_with 's/^  topic: events-dlq$/  topic: dlq-nowhere/' > "$P/unknown_dlq_topic.yaml"
expect_refusal "unknown dead-letter topic" "$P/unknown_dlq_topic.yaml"
expect_in_stderr "unknown dead-letter topic" "dlq-nowhere"

# 15. The activations topic does not exist.
cdp_with 's/^    topic: activations$/    topic: activations-nowhere/' \
  > "$P/unknown_activations_topic.yaml"
expect_refusal "unknown activations topic" "$P/unknown_activations_topic.yaml"
expect_in_stderr "unknown activations topic" "activations-nowhere"

# 16. Nothing listens at the Redis address.
closed=$(kf_free_port)
expect_refusal "closed Redis port" "$ROOT/config/pipelines/cdp.yaml" "$KF_BOOTSTRAP" \
  "127.0.0.1:$closed"
expect_in_stderr "closed Redis port" "127.0.0.1:$closed"

# 17. Nothing listens at the Kafka address.
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
