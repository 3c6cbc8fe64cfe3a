#!/usr/bin/env bash
# Overload benchmark: keyflowd's memory when its input arrives much faster than it can
# process it. The reference pipeline (config/pipelines/cdp.yaml) on one standalone
# keyflowd (--workers 2, 3 partition actors), keyflow-broker with 8 partitions, a real
# redis-server; every process on this machine. Three runs, each on a fresh broker, Redis
# and state directory:
#   1. sustainable: E events preloaded, then keyflowd started; events/s = records processed
#      (aggregated or dead-lettered) between the first poll that saw one and the poll that
#      saw all E (polls every 100 ms): the rate keyflowd sustains on this machine;
#   2. low: keyflow-gen at a tenth of that rate for D seconds while keyflowd runs;
#   3. overload: keyflow-gen asked for FACTOR (10) x the sustainable rate for D seconds.
#      keyflow-gen is one producer process sharing the 2 cores with keyflowd: it offers
#      less; the table shows the rate it really offered (records in the topic / D).
# During runs 2 and 3, keyflowd's VmRSS and records processed are sampled every 0.5 s.
# Printed per run: asked and offered rate, processed rate and count, keyed-state entries
# in memory (keyflow_state_keys), consumer lag at the end, records the broker dropped, peak
# sampled RSS and VmHWM; and the overload run's RSS at the moment it had processed as many
# records as the low run did in all (keyed state grows with records processed: dedup keeps
# every event id). The broker keeps ~5 MiB per partition (zstd: ~200 k events): in the
# overload run the backlog exceeds that, so the broker drops the oldest input, as Kafka
# retention would, and the sources skip to the log start (auto.offset.reset=earliest). When
# the producer is fast enough, the log start moves on before a source's fetch from it
# arrives, again and again: the sources then read nothing more (the run line prints the
# resets and when processing last advanced). A limit of the embedded broker, not of
# keyflowd: a real Kafka keeps the backlog.
# Fails only on errors (a process does not start, the preloaded input is not all read),
# never on timings or memory. See benchmarks/README.md.
#
# Usage: overload_bench.sh BIN_DIR REPO_ROOT [--duration D] [--factor F] [--events E]
#          [--short] [--keep]
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
BIN=$(cd "$1" && pwd)
ROOT=$(cd "$2" && pwd)
shift 2
DURATION=30 FACTOR=10 EVENTS=1000000 KEEP=0
while [ $# -gt 0 ]; do
  case $1 in
    --duration) DURATION=$2; shift ;;
    --factor) FACTOR=$2; shift ;;
    --events) EVENTS=$2; shift ;;
    --short) DURATION=8; EVENTS=300000 ;;
    --keep) KEEP=1 ;;
    *) echo "overload_bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
PARTITIONS=8
CUSTOMERS=1000
PIPELINE=$ROOT/config/pipelines/cdp.yaml
for tool in keyflowd keyflow-broker keyflow-gen; do
  [ -x "$BIN/$tool" ] || { echo "overload_bench.sh: $BIN/$tool not found" >&2; exit 2; }
done
for tool in redis-server redis-cli kcat curl; do
  command -v $tool > /dev/null || { echo "overload_bench.sh: $tool not on PATH" >&2; exit 2; }
done

TOP=$(mktemp -d /tmp/keyflow-bench-overload.XXXXXX)
export KF_BIN_DIR=$BIN
export KF_RUN_DIR=$TOP/setup
mkdir -p "$KF_RUN_DIR"
# shellcheck source=tools/lib.sh
source "$ROOT/tools/lib.sh"
RUNS=()
GEN_PID=""

finish() {
  local rc=$?
  set +e
  [ -n "$GEN_PID" ] && kill -KILL "$GEN_PID" 2> /dev/null && wait "$GEN_PID" 2> /dev/null
  for d in "${RUNS[@]}"; do KF_RUN_DIR=$d kf_stop_all; done
  if [ $rc -ne 0 ]; then
    echo "--- last keyflowd log lines:"; grep -v '^%' "$KF_RUN_DIR/keyflowd.log" 2> /dev/null | tail -15
  fi
  if [ $rc -ne 0 ] || [ $KEEP = 1 ]; then
    echo "(run directory kept: $TOP)"
  else
    rm -rf "$TOP"
  fi
  exit $rc
}
trap finish EXIT
trap 'exit 130' INT TERM
fail() { echo "FAIL: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }

# run NAME: a fresh run directory with redis-server and keyflow-broker.
run() {
  KF_RUN_DIR=$TOP/$1
  mkdir -p "$KF_RUN_DIR"
  RUNS+=("$KF_RUN_DIR")
  kf_start_redis
  kf_start_broker events:$PARTITIONS events-dlq:1 activations:1
}

start_node() {
  kf_start_node --pipeline "$PIPELINE" --bootstrap-servers "$KF_BOOTSTRAP" --redis "$KF_REDIS" \
    --state-dir "$KF_RUN_DIR/state" --workers 2 --partition-actors 3
}

# offsets WHICH: sum over the partitions of "events" of the low (-2) or high (-1) watermark.
offsets() {
  local args=() p
  for p in $(seq 0 $((PARTITIONS - 1))); do args+=(-t "events:$p:$1"); done
  kcat -b "$KF_BOOTSTRAP" -Q "${args[@]}" | awk '/offset/ { s += $NF } END { print s + 0 }'
}

records_read() { kf_metric '^keyflow_records_in_total.*operator="source"'; }
# processed: records folded into state by the aggregate operator or dead-lettered.
processed() {
  echo $(( $(kf_metric '^keyflow_records_in_total.*operator="aggregate"') + $(kf_metric '^keyflow_dead_letters_total') ))
}
rss_kib() { awk "/^$1:/ { print \$2 }" "/proc/$KF_NODE_PID/status"; }

gen() { # EVENTS [ARGS...]
  local n=$1
  shift
  "$BIN/keyflow-gen" --bootstrap-servers "$KF_BOOTSTRAP" --topic events --events "$n" \
    --customers $CUSTOMERS --seed 11 --compression zstd "$@"
}

# ------------------------------------------------------------------ 1. sustainable rate
run sustainable
gen "$EVENTS" > "$KF_RUN_DIR/gen.out" || fail "keyflow-gen failed"
[ "$(offsets -2)" = 0 ] || fail "the broker dropped preloaded input (retention); use fewer --events"
start_node
first=0 first_n=0 last=0
for _ in $(seq 3000); do
  n=$(processed)
  t=$(now_ms)
  if [ "$first" = 0 ] && [ "$n" -gt 0 ]; then first=$t first_n=$n; fi
  if [ "$n" -ge "$EVENTS" ]; then last=$t; break; fi
  sleep 0.1
done
[ "$last" != 0 ] || fail "keyflowd did not process the $EVENTS preloaded events within 300 s"
SUSTAINABLE=$(( (EVENTS - first_n) * 1000 / (last - first) ))
SUST_HWM=$(rss_kib VmHWM)
echo "sustainable: $EVENTS events processed in $((last - first)) ms: $SUSTAINABLE events/s, VmHWM $((SUST_HWM / 1024)) MiB"
kf_stop_all

# ------------------------------------------------------------------ 2. + 3. paced input
# paced NAME RATE: keyflow-gen asked for RATE events/s for DURATION s while keyflowd runs;
# sets the row of the table in ROW[NAME].
declare -A ROW TOTAL
paced() {
  local name=$1 rate=$2
  run "$name"
  start_node
  local rss0; rss0=$(rss_kib VmRSS)
  # Not through gen(): $! must be keyflow-gen itself (a function would run in a subshell).
  "$BIN/keyflow-gen" --bootstrap-servers "$KF_BOOTSTRAP" --topic events \
    --events $((rate * DURATION)) --customers $CUSTOMERS --seed 11 --compression zstd \
    --rate "$rate" > "$KF_RUN_DIR/gen.out" 2>&1 &
  GEN_PID=$!
  local t0; t0=$(now_ms)
  local peak=0 r end=$((t0 + DURATION * 1000))
  while [ "$(now_ms)" -lt $end ]; do
    r=$(rss_kib VmRSS)
    [ "$r" -gt "$peak" ] && peak=$r
    echo "$(( $(now_ms) - t0 )) $r $(processed)" >> "$KF_RUN_DIR/rss.txt"
    sleep 0.5
  done
  local t1; t1=$(now_ms)
  local produced; produced=$(offsets -1)
  local read1; read1=$(records_read)
  local done1; done1=$(processed)
  local keys; keys=$(kf_metric '^keyflow_state_keys')
  cp "$KF_RUN_DIR/rss.txt" "$TOP/rss-$name.txt"
  local dropped; dropped=$(offsets -2)
  local hwm; hwm=$(rss_kib VmHWM)
  kill -TERM "$GEN_PID" 2> /dev/null || true
  for _ in $(seq 100); do kill -0 "$GEN_PID" 2> /dev/null || break; sleep 0.1; done
  kill -KILL "$GEN_PID" 2> /dev/null || true
  wait "$GEN_PID" 2> /dev/null || true
  GEN_PID=""
  local secs; secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1000 }')
  local offered rate_done
  offered=$(awk -v n="$produced" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
  rate_done=$(awk -v n="$done1" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
  # librdkafka's "offset reset" warnings: the broker's retention overtook a source.
  local resets; resets=$(grep -c '|OFFSET|.*offset reset' "$KF_RUN_DIR/keyflowd.log" || true)
  # When processing last advanced (the sample after which the count stayed the same).
  local stuck_at; stuck_at=$(awk '$3 != last { t = $1; last = $3 } END { printf "%.1f", t / 1000 }' \
    "$KF_RUN_DIR/rss.txt")
  local lag=$((produced - read1))
  ROW[$name]="| $name | $rate | $offered | $rate_done | $done1 | $keys | $lag | $dropped | $((peak / 1024)) | $((hwm / 1024)) |"
  TOTAL[$name]=$done1
  echo "$name: ${secs} s, asked $rate/s, offered $offered/s, processed $rate_done/s ($done1)," \
    "state keys $keys, lag $lag, dropped by retention $dropped, RSS at start $((rss0 / 1024)) MiB," \
    "peak $((peak / 1024)) MiB, VmHWM $((hwm / 1024)) MiB; offset resets $resets," \
    "processing last advanced at ${stuck_at} s"
  kf_stop_all
}

paced low $((SUSTAINABLE / 10))
paced overload $((SUSTAINABLE * FACTOR))

# Most of the RSS is keyed state (dedup keeps one event id per record), which grows with
# the records processed, not with the input rate: the overload run's RSS when it had
# processed as many records as the low run did in all is the like-for-like comparison.
at_same=$(awk -v n="${TOTAL[low]}" '$3 >= n { print int($2 / 1024); found = 1; exit }
  END { if (!found) print "-" }' "$TOP/rss-overload.txt")
echo
echo "keyflowd, cdp pipeline, $PARTITIONS partitions, --workers 2, 3 partition actors, ${DURATION} s per run;"
echo "sustainable rate $SUSTAINABLE events/s ($EVENTS preloaded events, VmHWM $((SUST_HWM / 1024)) MiB)"
echo "| run | asked events/s | offered events/s | processed events/s | processed | state keys | lag at end | dropped by retention | peak RSS MiB (0.5 s samples) | VmHWM MiB |"
echo "|---|---|---|---|---|---|---|---|---|---|"
echo "${ROW[low]}"
echo "${ROW[overload]}"
echo "overload run's RSS once it had processed ${TOTAL[low]} records (the low run's total): $at_same MiB"
# rss_at FILE N: sampled RSS (MiB) when the run had first processed N records, or "-".
rss_at() {
  awk -v n="$2" '$3 >= n { print int($2 / 1024); found = 1; exit } END { if (!found) print "-" }' "$1"
}
echo "RSS (MiB) by records processed: the slope is keyed state, the gap is what overload holds"
echo "| records processed | low | overload |"
echo "|---|---|---|"
low_last=$(awk 'END { print $3 }' "$TOP/rss-low.txt") # processed at the low run's last sample
for q in 1 2 3 4; do
  n=$((low_last * q / 4))
  echo "| $n | $(rss_at "$TOP/rss-low.txt" "$n") | $(rss_at "$TOP/rss-overload.txt" "$n") |"
done
for n in 800000 1200000 1600000 2000000; do
  [ "$(rss_at "$TOP/rss-overload.txt" "$n")" = - ] || echo "| $n | | $(rss_at "$TOP/rss-overload.txt" "$n") |"
done
