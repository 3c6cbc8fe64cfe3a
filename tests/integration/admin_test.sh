#!/usr/bin/env bash
# The admin API and keyflowctl, as an operator uses them (docs/admin-api.md):
#   1. every call without the bearer token (or with another one) is 401; snapshot names with
#      "../" are 400 (and refused by keyflowctl before asking);
#   2. region A runs the cdp pipeline while events arrive; under load it is updated to a new
#      version that keeps the operator ids (deploy: state carried over), rescaled, snapshotted,
#      and a version that changes an operator's state type is refused naming the operator;
#   3. the job is stopped with a snapshot, exported, imported into region B (a standby node
#      with another state and checkpoint directory and its own token file) and restored
#      there: B resumes from the snapshot's offsets and every profile is exact;
#   4. inspect of a customer in a snapshot equals the profile Redis holds; diff between two
#      snapshots shows changed keys.
#
# Usage: admin_test.sh BIN_DIR REPO_ROOT
set -euo pipefail
BIN=$1
ROOT=$2

export KF_RUN_DIR; KF_RUN_DIR=$(mktemp -d /tmp/keyflow-it-admin.XXXXXX)
export KF_BIN_DIR=$BIN
# shellcheck source=tools/lib.sh
source "$ROOT/tools/lib.sh"
trap kf_test_finish EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
CTL=$BIN/keyflowctl
PY=/usr/bin/python3 # has the redis module
PIPELINE=$ROOT/config/pipelines/cdp.yaml

kf_start_redis
kf_start_broker events:4 events-dlq:1 activations:1
common=(--bootstrap-servers "$KF_BOOTSTRAP" --redis "$KF_REDIS" --checkpoint-interval-ms 500)
kf_start_node --pipeline "$PIPELINE" "${common[@]}" --state-dir "$KF_RUN_DIR/a" \
  --checkpoint-dir "$KF_RUN_DIR/a-checkpoints"
A=$(sed -n 's|.* admin=http://\([0-9.:]*\).*|\1|p' "$KF_RUN_DIR/keyflowd.out")
[ -n "$A" ] || fail "no admin address in keyflowd's ready line"
echo "   region A admin API at $A"

# code METHOD PATH [BODY] [TOKEN]: the HTTP status of one call.
code() {
  local args=(-s -o "$KF_RUN_DIR/body" -w '%{http_code}' -X "$1")
  [ -n "${3:-}" ] && args+=(-H 'Content-Type: application/json' --data "$3")
  [ -n "${4:-}" ] && args+=(-H "Authorization: Bearer $4")
  curl "${args[@]}" "http://$A$2"
}

echo "== every call needs the token"
calls=("GET /status" "GET /snapshots" "POST /snapshots" "GET /snapshots/x" "GET /snapshots/x/state"
       "GET /diff?a=x&b=y" "POST /restore" "POST /stop" "POST /deploy" "POST /rescale"
       "POST /export" "POST /import" "GET /dead-letters" "POST /dead-letters/replay"
       "GET /no-such-call")
for call in "${calls[@]}"; do
  set -- $call
  [ "$(code "$1" "$2" '{}')" = 401 ] || fail "$call without a token: $(cat "$KF_RUN_DIR/body")"
  grep -q "Authorization: Bearer" "$KF_RUN_DIR/body" || fail "401 does not say what is missing"
  [ "$(code "$1" "$2" '{}' wrong-token)" = 401 ] || fail "$call with a wrong token answered"
done
echo "   ${#calls[@]} calls: 401 without a token and with a wrong one"
T=$KEYFLOW_ADMIN_TOKEN
[ "$(code GET /status '' "$T")" = 200 ] || fail "status with the token: $(cat "$KF_RUN_DIR/body")"

echo "== snapshot names cannot leave the snapshot directory"
for req in "POST /snapshots {\"name\":\"../x\"}" "POST /restore {\"snapshot\":\"../../etc\"}" \
           "POST /stop {\"snapshot\":\"a/../../b\"}" "POST /export {\"snapshot\":\"..\",\"dir\":\"/tmp\"}" \
           "GET /snapshots/..%2F..%2Fetc/state" "GET /snapshots/..%2Fx" "GET /diff?a=../x&b=y"; do
  set -- $req
  got=$(code "$1" "$2" "${3:-}" "$T")
  [ "$got" = 400 ] || fail "$req: expected 400, got $got $(cat "$KF_RUN_DIR/body")"
  grep -q "not a valid snapshot name" "$KF_RUN_DIR/body" || fail "$req: $(cat "$KF_RUN_DIR/body")"
done
rc=$(kf_exit_code "$CTL" snapshot --node "$A" --name ../x)
[ "$rc" = 2 ] || fail "keyflowctl snapshot --name ../x: exit $rc"
echo "   400 for every ../ name; keyflowctl refuses it with exit 2"

echo "== region A: events arrive while the job is deployed, rescaled and snapshotted"
"$BIN/keyflow-gen" --bootstrap-servers "$KF_BOOTSTRAP" --events 60000 --customers 400 \
  --malformed 0.01 --rate 5000 --seed 21 --summary "$KF_RUN_DIR/summary.json" \
  2> "$KF_RUN_DIR/gen.log" &
GEN=$!
read_some() { [ "$(kf_metric '^keyflow_records_in_total.*operator="source"')" -gt 5000 ]; }
kf_wait_for read_some || fail "region A reads nothing"

# v3: the same operators and state, another version and a smaller enrich cache.
V3=$KF_RUN_DIR/cdp-v3.yaml
sed -e 's/^  version: 2$/  version: 3/' -e 's#proto: ../proto/#proto: '"$ROOT"'/config/proto/#' \
  -e 's/^    on_missing: defaults$/    on_missing: defaults\n    cache_entries: 5000/' \
  "$PIPELINE" > "$V3"
"$CTL" deploy "$V3" --node "$A" --dry-run --output json > "$KF_RUN_DIR/plan.json"
[ "$(kf_json_get "$KF_RUN_DIR/plan.json" 'd["action"], d["compatible"]')" = "update True" ] ||
  fail "dry run: $(cat "$KF_RUN_DIR/plan.json")"
[ "$(kf_json_get "$KF_RUN_DIR/plan.json" \
     '" ".join(o["id"] + "=" + o["state"] for o in d["operators"] if o["state"] != "stateless")')" = \
  "dedup=keep aggregate=keep activate=keep" ] ||
  fail "dry run plan: $(cat "$KF_RUN_DIR/plan.json")"
"$CTL" deploy "$V3" --node "$A" --yes > "$KF_RUN_DIR/deploy.out" || fail "deploy v3 failed"
"$CTL" status --node "$A" --output json > "$KF_RUN_DIR/status.json"
[ "$(kf_json_get "$KF_RUN_DIR/status.json" 'd["version"], d["state"]')" = "3 running" ] ||
  fail "status after deploy: $(cat "$KF_RUN_DIR/status.json")"
echo "   deployed v3 (state kept by operator id) under load"

# A changed state type of operator 'aggregate' (another aggregate list) is refused.
BAD=$KF_RUN_DIR/cdp-bad.yaml
kf_cdp_changed_state "$V3" "$BAD" || fail "no changed pipeline"
rc=$(kf_exit_code "$CTL" deploy "$BAD" --node "$A" --yes)
[ "$rc" = 4 ] || fail "incompatible deploy: exit $rc $(cat "$KF_RUN_DIR/last.err")"
grep -q "operator 'aggregate'" "$KF_RUN_DIR/last.err" ||
  fail "refusal does not name the operator: $(cat "$KF_RUN_DIR/last.err")"
echo "   refused: $(head -1 "$KF_RUN_DIR/last.err")"

"$CTL" rescale 2 --node "$A" > /dev/null || fail "rescale failed"
"$CTL" status --node "$A" --output json > "$KF_RUN_DIR/status.json"
[ "$(kf_json_get "$KF_RUN_DIR/status.json" 'd["parallelism"]')" = 2 ] || fail "rescale not applied"
"$CTL" snapshot --node "$A" --name mid > /dev/null || fail "snapshot mid failed"
"$CTL" snapshots --node "$A" --output json > "$KF_RUN_DIR/snaps.json"
kf_json_get "$KF_RUN_DIR/snaps.json" '[s["name"] for s in d["snapshots"]]' | grep -q "'mid'" ||
  fail "snapshot mid not listed: $(cat "$KF_RUN_DIR/snaps.json")"
rc=$(kf_exit_code "$CTL" snapshot --node "$A" --name mid)
[ "$rc" = 4 ] || fail "a second snapshot 'mid' was not refused (exit $rc)"
echo "   rescaled to 2 actors per stage; snapshot 'mid' taken and listed"

echo "== stop with a snapshot while events still arrive; export it"
kill -0 "$GEN" 2> /dev/null || fail "the generator finished before the stop (raise --events)"
"$CTL" stop --snapshot final --node "$A" > /dev/null || fail "stop failed"
"$CTL" status --node "$A" --output json > "$KF_RUN_DIR/status.json"
[ "$(kf_json_get "$KF_RUN_DIR/status.json" 'd["state"]')" = stopped ] || fail "job not stopped"
mkdir -p "$KF_RUN_DIR/exported"
"$CTL" export final "$KF_RUN_DIR/exported" --node "$A" > /dev/null || fail "export failed"
[ -f "$KF_RUN_DIR/exported/final/MANIFEST.pb" ] || fail "nothing exported"

mv "$KF_RUN_DIR/keyflowd.log" "$KF_RUN_DIR/region-a.log" # A's job stays stopped
echo "== region B: a standby node with its own directories and token restores it"
echo "region-b-secret" > "$KF_RUN_DIR/b-token"
kf_start_node --pipeline "$V3" "${common[@]}" --state-dir "$KF_RUN_DIR/b" \
  --checkpoint-dir "$KF_RUN_DIR/b-checkpoints" --standby --admin-token-file "$KF_RUN_DIR/b-token"
B=$(sed -n 's|.* admin=http://\([0-9.:]*\).*|\1|p' "$KF_RUN_DIR/keyflowd.out")
BCTL=("$CTL" --node "$B" --token-file "$KF_RUN_DIR/b-token")
[ "$(A=$B code GET /status '' "$T")" = 401 ] || fail "region B accepted region A's token"
"${BCTL[@]}" status --output json > "$KF_RUN_DIR/status.json"
[ "$(kf_json_get "$KF_RUN_DIR/status.json" 'd["state"]')" = stopped ] || fail "standby runs"
"${BCTL[@]}" import "$KF_RUN_DIR/exported/final" > /dev/null || fail "import failed"
"${BCTL[@]}" restore final > /dev/null || fail "restore failed"
grep -q "restored checkpoint .*b-checkpoints/snapshots/final" "$KF_RUN_DIR/keyflowd.log" ||
  fail "region B did not restore the imported snapshot"
wait "$GEN"
"$BIN/keyflow-verify" --summary "$KF_RUN_DIR/summary.json" --redis "$KF_REDIS" \
  --pipeline "$V3" --bootstrap-servers "$KF_BOOTSTRAP" --wait 90 --sample 2 --at-least-once-kafka

echo "== inspect equals Redis; diff shows what changed"
"${BCTL[@]}" snapshot --name after > /dev/null || fail "snapshot in region B failed"
checked=0
for key in $(redis-cli -p "${KF_REDIS##*:}" --scan --pattern 'profile:*' | head -5); do
  customer=${key#profile:}
  "${BCTL[@]}" inspect after --operator aggregate --key "$customer" --output json \
    > "$KF_RUN_DIR/inspect.json" || fail "inspect $customer failed"
  $PY "$ROOT/tests/integration/inspect_check.py" profile "$KF_RUN_DIR/inspect.json" "$KF_REDIS" \
    "$customer" || fail "inspect differs from Redis for $customer"
  checked=$((checked + 1))
done
[ $checked -ge 3 ] || fail "only $checked profiles to compare"
"${BCTL[@]}" diff final after --operator aggregate --output json > "$KF_RUN_DIR/diff.json"
$PY "$ROOT/tests/integration/inspect_check.py" diff "$KF_RUN_DIR/diff.json" ||
  fail "diff: $(cat "$KF_RUN_DIR/diff.json")"
echo "   inspect of $checked customers equals their Redis profiles"
echo "PASS"
