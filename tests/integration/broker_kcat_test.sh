#!/usr/bin/env bash
# keyflow-broker + keyflow-gen, checked from outside with kcat (an independent Kafka client).
# Usage: broker_kcat_test.sh PATH/TO/keyflow-broker PATH/TO/keyflow-gen
# Every command runs under `timeout`; brokers are stopped by PID on exit.
set -euo pipefail

BROKER=${1:?usage: $0 keyflow-broker keyflow-gen}
GEN=${2:?usage: $0 keyflow-broker keyflow-gen}
command -v kcat >/dev/null || { echo "FAIL: kcat not installed (apt-get install kcat)" >&2; exit 1; }

WORK=$(mktemp -d -t keyflow-broker-test.XXXXXX)
PIDS=()

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  for f in "$WORK"/*.err; do
    [[ -e $f ]] && { echo "--- $f" >&2; tail -20 "$f" >&2; }
  done
  exit 1
}

# start_broker NAME ARGS...: starts keyflow-broker, waits for its bootstrap file and sets
# BROKER_PID and ADDR. Returns 1 (without failing) if the broker exits early.
start_broker() {
  local name=$1
  shift
  timeout 300 "$BROKER" "$@" --bootstrap-file "$WORK/$name.addr" \
    >"$WORK/$name.out" 2>"$WORK/$name.err" &
  BROKER_PID=$!
  local i
  for i in $(seq 100); do
    if [[ -s $WORK/$name.addr ]]; then
      PIDS+=("$BROKER_PID")
      ADDR=$(<"$WORK/$name.addr")
      return 0
    fi
    kill -0 "$BROKER_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  kill -TERM "$BROKER_PID" 2>/dev/null || true
  fail "broker $name did not write its bootstrap file within 10 s"
}

# json_number FILE KEY: the first "KEY": <integer> in FILE.
json_number() {
  grep -o "\"$2\": *[0-9]*" "$1" | head -1 | grep -o '[0-9]*$'
}

# count_records ADDR TOPIC: number of records kcat reads from the beginning.
count_records() {
  timeout 60 kcat -b "$1" -C -t "$2" -e -o beginning -q -f '%p %o\n' >"$WORK/records.txt" \
    || fail "kcat -C -t $2 failed"
  [[ $(sort -u "$WORK/records.txt" | wc -l) -eq $(wc -l <"$WORK/records.txt") ]] \
    || fail "duplicate partition/offset pairs in $2"
  wc -l <"$WORK/records.txt"
}

echo "== bad options are refused"
for args in "--topic x:0" "--topic bad!name" "--brokers 0" "--port 70000" "--no-such-option"; do
  # shellcheck disable=SC2086
  if timeout 10 "$BROKER" $args >/dev/null 2>"$WORK/bad.log"; then
    fail "keyflow-broker $args exited 0"
  fi
done
timeout 10 "$GEN" --events 1 >/dev/null 2>&1 && fail "keyflow-gen without --bootstrap-servers exited 0"
timeout 10 "$GEN" -b 127.0.0.1:1 --malformed 2 >/dev/null 2>&1 && fail "keyflow-gen --malformed 2 exited 0"

echo "== port 0: broker, generator, kcat"
start_broker main --port 0 --topic events:4 || fail "broker (port 0) did not start"
[[ $(cat "$WORK/main.out") == "bootstrap.servers=$ADDR" ]] \
  || fail "stdout '$(cat "$WORK/main.out")' is not bootstrap.servers=$ADDR"
timeout 60 "$GEN" --bootstrap-servers "$ADDR" --topic events --events 1000 --malformed 0.02 \
  --summary "$WORK/summary.json" 2>"$WORK/gen.err" || fail "keyflow-gen failed"
timeout 20 kcat -b "$ADDR" -L -t events >"$WORK/meta.txt" || fail "kcat -L failed"
grep -q 'topic "events" with 4 partitions' "$WORK/meta.txt" || fail "no 4-partition topic events"
n=$(count_records "$ADDR" events)
[[ $n -eq 1000 ]] || fail "kcat read $n records from events, want 1000"

S=$WORK/summary.json
valid=$(json_number "$S" valid)
malformed=$(json_number "$S" malformed)
[[ $(json_number "$S" events) -eq 1000 ]] || fail "summary events != 1000"
[[ $((valid + malformed)) -eq 1000 ]] || fail "valid $valid + malformed $malformed != 1000"
[[ $malformed -gt 0 && $malformed -lt 60 ]] || fail "malformed $malformed not near 2% of 1000"
reasons=0
for r in decode_error missing_customer_id missing_event_id missing_event_time; do
  reasons=$((reasons + $(json_number "$S" "$r")))
done
[[ $reasons -eq $malformed ]] || fail "malformed_by_reason sums to $reasons, want $malformed"
counts=$(grep -o '"count": *[0-9]*' "$S" | awk '{s += $2} END {print s + 0}')
[[ $counts -eq $valid ]] || fail "per_customer counts sum to $counts, want $valid"

echo "== same seed, same records"
timeout 60 "$GEN" -b "$ADDR" --topic events-again --events 1000 --malformed 0.02 \
  --summary "$WORK/summary2.json" 2>/dev/null || fail "second keyflow-gen failed"
diff <(grep -v -e elapsed_s -e '"topic"' "$S") <(grep -v -e elapsed_s -e '"topic"' "$WORK/summary2.json") \
  >/dev/null || fail "same seed gave a different summary"
timeout 60 kcat -b "$ADDR" -C -t events -e -o beginning -q -f '%k %s\n' | sort >"$WORK/a.txt"
timeout 60 kcat -b "$ADDR" -C -t events-again -e -o beginning -q -f '%k %s\n' | sort >"$WORK/b.txt"
cmp -s "$WORK/a.txt" "$WORK/b.txt" || fail "same seed gave different records"

echo "== --random-partition spreads one key over several partitions"
timeout 60 "$GEN" -b "$ADDR" --topic shuffled --events 400 --customers 10 --random-partition \
  2>/dev/null || fail "keyflow-gen --random-partition failed"
spread=$(timeout 60 kcat -b "$ADDR" -C -t shuffled -e -o beginning -q -f '%k %p\n' | sort -u \
  | awk '{n[$1]++} END {m=0; for (k in n) if (n[k]>m) m=n[k]; print m}')
[[ $spread -gt 1 ]] || fail "--random-partition kept every key on one partition"

echo "== fixed --port"
fixed_ok=0
for attempt in $(seq 10); do
  PORT=$((20000 + RANDOM % 40000))
  if start_broker fixed --port "$PORT" --brokers 2 --topic events:4; then
    fixed_ok=1
    break
  fi
done
[[ $fixed_ok -eq 1 ]] || fail "could not start a broker on a fixed port in 10 attempts"
FIXED_PID=$BROKER_PID
[[ $ADDR == "127.0.0.1:$PORT" ]] || fail "fixed-port bootstrap is $ADDR, want 127.0.0.1:$PORT"
[[ $(cat "$WORK/fixed.out") == "bootstrap.servers=127.0.0.1:$PORT" ]] || fail "fixed-port stdout"
timeout 20 kcat -b "127.0.0.1:$PORT" -L >"$WORK/meta2.txt" || fail "kcat -L via port $PORT failed"
grep -q 'topic "events" with 4 partitions' "$WORK/meta2.txt" || fail "events missing via port"
grep -q ' 2 brokers' "$WORK/meta2.txt" || fail "want 2 brokers via port"
timeout 60 "$GEN" -b "127.0.0.1:$PORT" --events 200 --seed 7 2>/dev/null \
  || fail "keyflow-gen via port $PORT failed"
n=$(count_records "127.0.0.1:$PORT" events)
[[ $n -eq 200 ]] || fail "kcat via port read $n records, want 200"

echo "== a taken port is refused"
if timeout 10 "$BROKER" --port "$PORT" >/dev/null 2>"$WORK/taken.log"; then
  fail "second broker on port $PORT exited 0"
fi
grep -q "$PORT" "$WORK/taken.log" || fail "port-in-use message does not name the port"

echo "== SIGTERM stops the broker with exit 0 and removes its bootstrap file"
kill -TERM "$FIXED_PID"
rc=0
wait "$FIXED_PID" || rc=$?
[[ $rc -eq 0 ]] || fail "broker exited $rc after SIGTERM"
[[ ! -e $WORK/fixed.addr ]] || fail "bootstrap file left behind"

echo "PASS"
