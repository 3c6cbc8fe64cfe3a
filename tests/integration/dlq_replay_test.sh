#!/usr/bin/env bash
# Dead letters listed and replayed through keyflowd's admin API and keyflowctl.
# keyflow-broker + redis-server + keyflowd with a variant of the reference pipeline
# (config/pipelines/cdp.yaml) whose enrich operator sends records of customers without a
# "customer:<id>" hash to the dead-letter topic (on_missing: dead_letter; no dedup, which
# would drop a replayed record as a duplicate of its first delivery; a 1 ms entity cache).
# An independent Python client writes events where every 4th customer has no hash, plus
# undecodable records. Checks:
# - the dead letters are exactly the expected ones (kfcheck.diff_dead_letters), and
#   `keyflowctl dlq list --output json` lists each with its provenance, operator, error,
#   attempts and pipeline version; --reason / --operator / --limit filter; bad parameters
#   get HTTP 400 naming the parameter, and keyflowctl exits 1 (error answer, unreachable
#   node) or 2 (usage);
# - after the missing hashes are written, `keyflowctl dlq replay --reason enrich_missing`
#   replays exactly the enrich_missing letters (passing the undecodable ones), each back to
#   its source partition with a keyflow-replay-of header, and every profile in Redis then
#   equals the one computed here over all valid events; no new dead letter appears;
# - a second replay replays nothing.
#
# Usage: dlq_replay_test.sh BIN_DIR REPO_ROOT
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 BIN_DIR REPO_ROOT" >&2
  exit 2
fi
BIN=$1
ROOT=$2
PY=/usr/bin/python3 # has confluent_kafka, redis and protobuf
CTL=$BIN/keyflowctl

export KF_RUN_DIR; KF_RUN_DIR=$(mktemp -d /tmp/keyflow-it-dlq.XXXXXX)
export KF_BIN_DIR=$BIN
# shellcheck source=tools/lib.sh
source "$ROOT/tools/lib.sh"
trap kf_test_finish EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# The pipeline: cdp.yaml with enrich on_missing: dead_letter, without dedup.
PIPE=$KF_RUN_DIR/cdp-dlq.yaml
sed -e "s|proto: ../proto/|proto: $ROOT/config/proto/|" \
  -e '/- id: dedup/,/ttl_ms:/d' \
  -e 's/on_missing: defaults/on_missing: dead_letter\n    cache_ttl_ms: 1/' \
  "$ROOT/config/pipelines/cdp.yaml" > "$PIPE"
grep -q 'on_missing: dead_letter' "$PIPE" || fail "$PIPE: no on_missing: dead_letter"
grep -q 'cache_ttl_ms: 1$' "$PIPE" || fail "$PIPE: no cache_ttl_ms"
if grep -q 'type: dedup' "$PIPE"; then fail "$PIPE still has a dedup operator"; fi

kf_start_redis
kf_start_broker events:4 events-dlq:1 activations:1
echo "== dlq: redis $KF_REDIS, kafka $KF_BOOTSTRAP"

# The input and the expected results, computed here (deterministic for the seed).
cat > "$KF_RUN_DIR/dlq.py" <<'EOF'
"""setup | generate | profiles: the input of dlq_replay_test.sh and its expected profiles."""
import collections
import json
import math
import os
import random
import sys

sys.path.insert(0, os.environ["KF_TESTS"])
import kfcheck  # noqa: E402

T0, EVENTS, CUSTOMERS, MALFORMED = 1767225600000, 3000, 40, 12
cmd, run_dir = sys.argv[1], os.environ["KF_RUN_DIR"]
pb = kfcheck.compile_proto(os.path.join(os.environ["KF_ROOT"], "config", "proto", "event.proto"))
rng = random.Random(7)


def hash_of(c):
    """The customer:<id> hash of customer number c."""
    return {"segment": ["vip", "regular", "churn-risk"][c % 3],
            "tier": ["gold", "silver", "bronze"][c % 5 % 3]}


missing = [c for c in range(1, CUSTOMERS + 1) if c % 4 == 0]
events = [pb.Event(event_id=f"e-{n}", customer_id=f"c-{1 + rng.randrange(CUSTOMERS):06d}",
                   event_time_ms=T0 + n * 20, type="purchase",
                   value=rng.randrange(1, 2001) * 0.25) for n in range(EVENTS)]
records = [(e.customer_id.encode(), e.SerializeToString(), None) for e in events]
bad = []
for i in range(MALFORMED):
    value = kfcheck.undecodable(rng.choice(events).SerializeToString(), rng)
    bad.append(value)
    records.insert(rng.randrange(len(records) + 1), (b"c-000001", value, None))
dead = collections.Counter((v, "decode_error", "validate") for v in bad)
for e in events:
    if int(e.customer_id[2:]) in missing:
        dead[(e.SerializeToString(), "enrich_missing", "enrich")] += 1

if cmd == "setup":  # the hashes of every customer but the missing ones
    kfcheck.set_redis_hashes(os.environ["KF_REDIS"], {
        f"customer:c-{c:06d}": hash_of(c) for c in range(1, CUSTOMERS + 1) if c not in missing})
elif cmd == "fix":  # the missing hashes
    kfcheck.set_redis_hashes(os.environ["KF_REDIS"],
                             {f"customer:c-{c:06d}": hash_of(c) for c in missing})
elif cmd == "generate":
    kfcheck.produce(os.environ["KF_BOOTSTRAP"], "events", records)
    json.dump({"records": len(records), "malformed": MALFORMED,
               "enrich_missing": sum(n for (_, code, _), n in dead.items()
                                     if code == "enrich_missing")},
              open(os.path.join(run_dir, "expect.json"), "w"))
elif cmd == "dead":  # the dead letters, exactly (provenance checked against the input)
    inputs = kfcheck.read_topic(os.environ["KF_BOOTSTRAP"], "events")
    letters, wrong = kfcheck.read_dead_letters(os.environ["KF_BOOTSTRAP"], "events-dlq")
    d = kfcheck.diff_dead_letters(dead, letters, inputs, "events", "cdp")
    d.different += [((p, o), {"record": ("DeadLetter", why)}) for p, o, why in wrong]
    kfcheck.require_equal(d, f"dead letters: {sum(dead.values())} expected")
elif cmd in ("profiles", "profiles-before"):
    # Before the replay, customers without a hash have no profile; after it, everyone does.
    per = collections.defaultdict(list)
    for e in events:
        if cmd == "profiles" or int(e.customer_id[2:]) not in missing:
            per[e.customer_id].append(e)
    want = {}
    for c, es in per.items():
        total = sum(e.value for e in es)  # quarters: exact in any order
        z = -6.0
        z += 0.04 * float(len(es))
        z += 0.0001 * total
        h = hash_of(int(c[2:]))
        want[f"profile:{c}"] = {"count": len(es), "sum": total,
                                "last_event_time_ms": max(e.event_time_ms for e in es),
                                "segment": h["segment"], "tier": h["tier"],
                                "score": 1.0 / (1.0 + math.exp(-z))}
    diffs = kfcheck.wait_for_match(
        lambda: [kfcheck.diff_hashes(want, kfcheck.read_redis_hashes(os.environ["KF_REDIS"],
                                                                     "profile:*"),
                                     "profiles in Redis")], 60.0)
    sys.exit(kfcheck.report_all(diffs, f"dlq {cmd}", f"{len(want)} profiles"))
EOF
export KF_TESTS=$ROOT/tests/integration KF_ROOT=$ROOT KF_REDIS KF_BOOTSTRAP
"$PY" "$KF_RUN_DIR/dlq.py" setup
"$PY" "$KF_RUN_DIR/dlq.py" generate
RECORDS=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["records"])' "$KF_RUN_DIR/expect.json")
MALFORMED=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["malformed"])' "$KF_RUN_DIR/expect.json")
MISSING=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["enrich_missing"])' "$KF_RUN_DIR/expect.json")
DEAD=$((MALFORMED + MISSING))
echo "   $RECORDS records: $DEAD dead letters expected ($MALFORMED decode_error, $MISSING enrich_missing)"

kf_start_node --pipeline "$PIPE" --bootstrap-servers "$KF_BOOTSTRAP" --redis "$KF_REDIS" \
  --state-dir "$KF_RUN_DIR/state" --workers 2
ADMIN=$(sed -n 's|.*status=http://\([0-9.:]*\)/status.*|\1|p' "$KF_RUN_DIR/keyflowd.out")
[ -n "$ADMIN" ] || fail "no status address in keyflowd's ready line"
echo "   admin $ADMIN, metrics $KF_METRICS"
# wait_processed AGG DEAD: waits (up to 120 s) until AGG records reached the aggregate and
# DEAD dead letters are in Kafka (keyflow_dead_letters_total does not count enrich's).
wait_processed() {
  local agg=0 dead=0
  for _ in $(seq 1200); do
    agg=$(kf_metric '^keyflow_records_in_total.*operator="aggregate"')
    dead=$(kf_metric '^keyflow_sink_writes_total.*sink="dead-letters"')
    [ "${agg:-0}" -ge "$1" ] && [ "${dead:-0}" -ge "$2" ] && return 0
    sleep 0.1
  done
  fail "timed out: $agg of $1 records aggregated, $dead of $2 dead letters written"
}
wait_processed $((RECORDS - DEAD)) "$DEAD"

# --- The dead letters, exactly, and as keyflowctl lists them.
"$PY" "$KF_RUN_DIR/dlq.py" dead
"$PY" "$KF_RUN_DIR/dlq.py" profiles-before
"$CTL" dlq list --node "$ADMIN" --limit 100000 --output json > "$KF_RUN_DIR/list.json"
"$PY" - "$KF_RUN_DIR/list.json" "$DEAD" <<'EOF'
import json, sys
j, want = json.load(open(sys.argv[1])), int(sys.argv[2])
letters = j["dead_letters"]
assert j["topic"] == "events-dlq" and j["pipeline"] == "cdp", j
assert j["count"] == len(letters) == want, (j["count"], len(letters), want)
assert sorted((e["partition"], e["offset"]) for e in letters) == [(0, o) for o in range(want)]
for e in letters:
    problem = (e["source_topic"] != "events" or not 0 <= e["source_partition"] < 4
               or e["source_offset"] < 0 or e["operator"] not in ("validate", "enrich")
               or e["error_code"] not in ("decode_error", "enrich_missing")
               or not e["error_message"] or e["attempts"] < 1 or e["pipeline"] != "cdp"
               or e["pipeline_version"] != 2 or e["value_size"] <= 0 or not e["value_base64"])
    assert not problem, f"dead letter with a missing or wrong field: {e}"
print(f"keyflowctl dlq list: {len(letters)} dead letters, each with its provenance")
EOF
count() { "$PY" -c 'import json,sys; print(json.load(sys.stdin)["count"])'; }
[ "$("$CTL" dlq list --node "$ADMIN" --limit 100000 --reason enrich_missing --output json | count)" = "$MISSING" ] ||
  fail "dlq list --reason enrich_missing: not $MISSING"
[ "$("$CTL" dlq list --node "$ADMIN" --limit 100000 --operator validate --output json | count)" = "$MALFORMED" ] ||
  fail "dlq list --operator validate: not $MALFORMED"
[ "$("$CTL" dlq list --node "$ADMIN" --output json | count)" = 100 ] || fail "default limit is not 100"
[ "$("$CTL" dlq list --node "$ADMIN" --limit 3 --from 5 --output json | count)" = 3 ] ||
  fail "dlq list --limit 3 --from 5"
"$CTL" dlq list --node "$ADMIN" --limit 5 > "$KF_RUN_DIR/list.txt"
grep -q '^DLQ .*SOURCE .*OPERATOR .*REASON' "$KF_RUN_DIR/list.txt" || fail "no table header"
grep -q '5 dead letter(s) in events-dlq (pipeline cdp); limit reached' "$KF_RUN_DIR/list.txt" ||
  fail "table footer: $(tail -1 "$KF_RUN_DIR/list.txt")"

# --- Bad parameters: HTTP 400 naming the parameter; keyflowctl exit codes.
for q in 'limit=0' 'limit=abc' 'from=-1' 'reason=bogus' 'colour=red' 'limit=5&limit=6'; do
  code=$(curl -s -H "Authorization: Bearer $KEYFLOW_ADMIN_TOKEN" -o "$KF_RUN_DIR/bad.json" -w '%{http_code}' "http://$ADMIN/dead-letters?$q")
  [ "$code" = 400 ] || fail "GET /dead-letters?$q answered $code"
  name=${q%%=*}
  grep -q "\"error\":.*'$name'" "$KF_RUN_DIR/bad.json" || fail "?$q: error does not name '$name': $(cat "$KF_RUN_DIR/bad.json")"
done
code=$(curl -s -H "Authorization: Bearer $KEYFLOW_ADMIN_TOKEN" -o "$KF_RUN_DIR/bad.json" -w '%{http_code}' -d '' "http://$ADMIN/dead-letters/replay?limit=5")
[ "$code" = 400 ] || fail "POST /dead-letters/replay?limit=5 answered $code"
grep -q "unknown parameter 'limit'" "$KF_RUN_DIR/bad.json" || fail "replay?limit=5: $(cat "$KF_RUN_DIR/bad.json")"
rc=0; "$CTL" dlq replay --node "$ADMIN" --reason bogus 2> "$KF_RUN_DIR/ctl.err" || rc=$?
[ $rc = 2 ] || fail "dlq replay --reason bogus exited $rc"
grep -q "400: parameter 'reason': unknown error code 'bogus'" "$KF_RUN_DIR/ctl.err" ||
  fail "keyflowctl did not print the node's reason: $(cat "$KF_RUN_DIR/ctl.err")"
rc=0; "$CTL" dlq list --node "127.0.0.1:$(kf_free_port)" 2> /dev/null || rc=$?
[ $rc = 1 ] || fail "dlq list of an unreachable node exited $rc"
rc=0; "$CTL" dlq list --node "$ADMIN" --limit 0 2> /dev/null || rc=$?
[ $rc = 2 ] || fail "dlq list --limit 0 exited $rc"
rc=0; "$CTL" dlq 2> /dev/null || rc=$?
[ $rc = 2 ] || fail "dlq without a command exited $rc"

# --- Fix the cause, replay, check the results; a second replay replays nothing.
"$PY" "$KF_RUN_DIR/dlq.py" fix
"$CTL" dlq replay --node "$ADMIN" --reason enrich_missing --output json > "$KF_RUN_DIR/replay.json"
"$PY" - "$KF_RUN_DIR/replay.json" "$MISSING" "$MALFORMED" "$DEAD" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
missing, malformed, dead = (int(x) for x in sys.argv[2:])
assert j["replayed"] == missing and j["replayed_by_reason"] == {"enrich_missing": missing}, j
assert j["skipped"] == malformed and j["skipped_by_reason"] == {"decode_error": malformed}, j
assert j["group"] == "keyflow-dlq-replay-cdp" and j["committed"] == {"0": dead}, j
print(f"keyflowctl dlq replay: {missing} replayed, {malformed} passed")
EOF
REPLAYED=$(timeout 60 kcat -b "$KF_BOOTSTRAP" -C -t events -e -q -f '%h\n' | grep -c 'keyflow-replay-of=events-dlq/0/' || true)
[ "$REPLAYED" = "$MISSING" ] || fail "$REPLAYED records with a keyflow-replay-of header, not $MISSING"
wait_processed $((RECORDS - DEAD + MISSING)) "$DEAD"
"$PY" "$KF_RUN_DIR/dlq.py" profiles
"$PY" "$KF_RUN_DIR/dlq.py" dead # no new dead letter
"$CTL" dlq replay --node "$ADMIN" > "$KF_RUN_DIR/replay2.txt"
cat "$KF_RUN_DIR/replay2.txt"
grep -q '^replayed 0 dead letter(s) from events-dlq' "$KF_RUN_DIR/replay2.txt" ||
  fail "second replay: $(cat "$KF_RUN_DIR/replay2.txt")"
grep -q 'passed 0 other(s)' "$KF_RUN_DIR/replay2.txt" || fail "second replay passed letters"
echo "== dlq: PASS in ${SECONDS} s"
