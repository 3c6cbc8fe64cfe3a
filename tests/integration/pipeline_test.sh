#!/usr/bin/env bash
# End-to-end test of the reference pipeline (config/pipelines/cdp.yaml): keyflow-broker
# (embedded Kafka) + a real redis-server + keyflowd; keyflow-gen writes events and
# keyflow-verify checks every profile in Redis, the dead letters and the activations in Kafka
# against what the generator says it sent. Two cases:
#   keyed:  100k events over 1000 customers, 1% malformed, Kafka records keyed by customer
#   random: the same with zipf skew 1.1 and every record on a random Kafka partition
#           (Keyflow must re-key by itself)
# Each case also checks /metrics with promtool and that SIGTERM makes keyflowd exit 0
# within 30 s.
#
# Usage: pipeline_test.sh BIN_DIR REPO_ROOT
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 BIN_DIR REPO_ROOT" >&2
  exit 2
fi
ROOT=$2
PIPELINE=$ROOT/config/pipelines/cdp.yaml

RUN=$(mktemp -d /tmp/keyflow-it-pipeline.XXXXXX)
export KF_BIN_DIR=$1
export KF_RUN_DIR=$RUN
# shellcheck source=tools/lib.sh
source "$ROOT/tools/lib.sh"

CASE_DIRS=()
cleanup() {
  local rc=$?
  set +e
  for d in "${CASE_DIRS[@]}"; do KF_RUN_DIR=$d kf_stop_all; done
  if [ $rc -eq 0 ]; then
    rm -rf "$RUN"
  else
    for d in "${CASE_DIRS[@]}"; do
      echo "--- $d/keyflowd.log (last 30 lines)" >&2
      tail -n 30 "$d/keyflowd.log" >&2 2>/dev/null
    done
    echo "FAILED; run directory kept: $RUN" >&2
  fi
  exit $rc
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}


# run_case NAME GEN_ARGS...: a fresh broker, redis and node; generate; verify; stop.
run_case() {
  local name=$1
  shift
  echo "=== case $name"
  export KF_RUN_DIR=$RUN/$name
  mkdir -p "$KF_RUN_DIR"
  CASE_DIRS+=("$KF_RUN_DIR")

  kf_start_redis
  kf_start_broker events:4 events-dlq:1 activations:1
  kf_start_node --pipeline "$PIPELINE" --bootstrap-servers "$KF_BOOTSTRAP" --redis "$KF_REDIS" \
    --state-dir "$KF_RUN_DIR/state" --workers 2 --partition-actors 3
  echo "redis $KF_REDIS, kafka $KF_BOOTSTRAP, metrics $KF_METRICS"

  local events=100000 summary=$KF_RUN_DIR/summary.json
  timeout 120 "$KF_BIN_DIR/keyflow-gen" --bootstrap-servers "$KF_BOOTSTRAP" --topic events \
    --events $events --customers 1000 --malformed 0.01 --summary "$summary" "$@" ||
    fail "keyflow-gen failed"
  [ "$(kf_json_get "$summary" 'd["delivered"]')" = "$events" ] || fail "not all events delivered"
  [ "$(kf_json_get "$summary" 'd["failed_deliveries"]')" = 0 ] || fail "failed deliveries"
  local malformed
  malformed=$(kf_json_get "$summary" 'd["malformed"]')
  [ "$malformed" -gt 0 ] || fail "the generator sent no malformed records: weak test"

  # Every record is folded into state or dead-lettered (waits up to 120 s).
  kf_wait_processed $events

  local out=$KF_RUN_DIR/verify.out rc=0
  timeout 150 "$KF_BIN_DIR/keyflow-verify" --summary "$summary" --redis "$KF_REDIS" \
    --pipeline "$PIPELINE" --bootstrap-servers "$KF_BOOTSTRAP" --wait 60 --sample 3 \
    > "$out" 2>&1 || rc=$?
  cat "$out"
  [ $rc -eq 0 ] || fail "keyflow-verify exited $rc"
  grep -q '^RESULT: all results match$' "$out" || fail "keyflow-verify did not report a match"
  grep -q "^profiles: 1000 customers checked, 1000 match, 0 differ$" "$out" ||
    fail "not every profile matches"

  # Dead letters: exact count, and the reasons match what was sent.
  local dl_line
  dl_line=$(grep "^dead letters in 'events-dlq': " "$out") || fail "no dead-letter check ran"
  [[ $dl_line == "dead letters in 'events-dlq': $malformed (generator sent $malformed malformed)"* ]] ||
    fail "dead-letter count differs: $dl_line"
  local want_decode want_missing
  want_decode=$(kf_json_get "$summary" 'd["malformed_by_reason"]["decode_error"]')
  want_missing=$(kf_json_get "$summary" \
    'sum(v for k, v in d["malformed_by_reason"].items() if k.startswith("missing_"))')
  [[ $dl_line == *"decode_error=$want_decode"* ]] ||
    fail "decode_error dead letters differ (want $want_decode): $dl_line"
  [[ $dl_line == *"missing_field=$want_missing"* ]] ||
    fail "missing_field dead letters differ (want $want_missing): $dl_line"
  if grep -q "lack provenance" "$out"; then fail "dead letters without provenance"; fi

  # Activations: exactly one per customer whose final score reached the threshold.
  local act_line
  act_line=$(grep "^activations in 'activations': " "$out") || fail "no activation check ran"
  [[ $act_line =~ :\ ([0-9]+)\ customers\ \(expected\ ([0-9]+)\),\ 0\ wrong$ ]] ||
    fail "activations differ: $act_line"
  [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ] || fail "activations differ: $act_line"
  [ "${BASH_REMATCH[2]}" -gt 0 ] || fail "no customer was activated: weak test"

  # With --random-partition the same customer's records are spread over partitions.
  if [ "$(kf_json_get "$summary" 'd["random_partition"]')" = True ]; then
    local spread=0 hits
    for p in 0 1 2 3; do
      hits=$(timeout 60 kcat -C -b "$KF_BOOTSTRAP" -t events -p $p -o beginning -e -q -f '%k\n' |
        grep -cx 'c-000001' || true)
      if [ "${hits:-0}" -gt 0 ]; then spread=$((spread + 1)); fi
    done
    echo "c-000001 found on $spread of 4 partitions"
    [ $spread -ge 2 ] || fail "c-000001 is on $spread partitions: records were not spread"
  fi

  # No profile for anything the generator did not send (e.g. keys of malformed records).
  local profiles want_profiles
  profiles=$(timeout 30 redis-cli -h 127.0.0.1 -p "${KF_REDIS##*:}" --scan --pattern 'profile:*' | wc -l)
  want_profiles=$(kf_json_get "$summary" 'len(d["per_customer"])')
  [ "$profiles" -eq "$want_profiles" ] ||
    fail "$profiles profile hashes in Redis, want $want_profiles"

  # /metrics is valid Prometheus text.
  local metrics=$KF_RUN_DIR/metrics.txt
  curl -fsS --max-time 10 "$KF_METRICS" > "$metrics" || fail "cannot scrape $KF_METRICS"
  grep -q '^keyflow_' "$metrics" || fail "no keyflow_ series in /metrics"
  promtool check metrics < "$metrics" || fail "promtool check metrics failed"

  # SIGTERM: keyflowd drains and exits 0 within 30 s.
  kill -TERM "$KF_NODE_PID"
  local node_rc=0
  for _ in $(seq 300); do kill -0 "$KF_NODE_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$KF_NODE_PID" 2>/dev/null; then
    kill -KILL "$KF_NODE_PID"
    wait "$KF_NODE_PID" || true
    fail "keyflowd still running 30 s after SIGTERM"
  fi
  wait "$KF_NODE_PID" || node_rc=$?
  [ $node_rc -eq 0 ] || fail "keyflowd exited $node_rc after SIGTERM"
  grep -q "drained: " "$KF_RUN_DIR/keyflowd.log" || fail "keyflowd did not report its drain"

  kf_stop_all
  echo "=== case $name: ok"
}

run_case keyed --seed 42
run_case random --seed 7 --zipf 1.1 --random-partition
echo "PASS"
