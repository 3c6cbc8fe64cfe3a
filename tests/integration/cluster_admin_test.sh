#!/usr/bin/env bash
# The admin API on a cluster (docs/admin-api.md, "On a cluster"), as an operator fails over
# from cluster A to a standby cluster B:
#   1. cluster A (2 nodes, 4 regions) runs the cdp pipeline while events arrive; every call
#      to the node that does not coordinate needs the token, "../" names are 400; a snapshot
#      asked of it is forwarded to the coordinator and taken in one part per region;
#   2. A is stopped with a snapshot through that node: every region drains with its final
#      checkpoint as the snapshot's part; the nodes stay up with the job stopped; export;
#   3. cluster B (2 nodes started --standby, other state and checkpoint directories) runs
#      nothing until it imports and restores the snapshot; its regions resume from the
#      snapshot's offsets and fence A's regions; every profile, dead letter and activation is
#      exact; inspect equals Redis; diff between two cluster snapshots; rescale answers 409
#      with the reason;
#   4. a new version of the pipeline deployed on cluster B through the node that does not
#      coordinate: the plan keeps every operator's state, the job stops with a snapshot, every
#      node runs the new version from it; a version that changes a state type is refused
#      naming the operator.
# With "spread", the same for the pipeline without partitioned_by_key: one job spread over
# the nodes in 4 slices, whose snapshots are one job manifest over a part per slice.
#
# Usage: cluster_admin_test.sh BIN_DIR REPO_ROOT [spread]
set -euo pipefail
BIN=$1
ROOT=$2
MODE=${3:-regions}
PIPELINE=$ROOT/config/pipelines/cdp.yaml
CTL=$BIN/keyflowctl
PY=/usr/bin/python3 # has the redis module

export KF_RUN_DIR; KF_RUN_DIR=$(mktemp -d /tmp/keyflow-it-cluster-admin-$MODE.XXXXXX)
export KF_BIN_DIR=$BIN
# shellcheck source=tools/lib.sh
source "$ROOT/tools/lib.sh"
# shellcheck source=tests/integration/cluster_lib.sh
source "$ROOT/tests/integration/cluster_lib.sh"
PARTS=4 # parts of a snapshot: one per region, or one job manifest
if [ "$MODE" = spread ]; then
  PIPELINE=$KF_RUN_DIR/cdp-any-partition.yaml
  kf_cdp_any_partition "$ROOT" "$PIPELINE" || fail "no pipeline copy"
  PARTS=1
fi
trap 'rc=$?; set +e; [ $rc -ne 0 ] && for i in 1 2 3 4; do echo "--- node $i:"; grep -v "^%" "$KF_RUN_DIR/n$i.log" 2>/dev/null | grep -i "cluster:\|admin\|error\|warn" | tail -15; done; (exit $rc); kf_test_finish' EXIT

kf_start_redis
kf_start_broker events:4 events-dlq:1 activations:1
declare -A PORT PID METRICS STATUSURL
for i in 1 2 3 4; do PORT[$i]=$(kf_free_port); done
node() {
  cluster_node "$1" --regions 4 --checkpoint-interval-ms 500 --failure-timeout-ms 2500 "${@:2}"
}
admin_of() { echo "${STATUSURL[$1]%/status}"; }
T=$KEYFLOW_ADMIN_TOKEN

echo "== cluster A: nodes 1 and 2, 4 regions ($MODE)"
SEEDS=127.0.0.1:${PORT[1]},127.0.0.1:${PORT[2]}
node 1
node 2
covered 1 2
A2=$(admin_of 2) # node 2 does not coordinate (the lowest live id does)
[ "$($STATUS coordinator "${STATUSURL[2]}")" = 1 ] || fail "node 1 should coordinate"

# code METHOD URL [BODY] [TOKEN]: the HTTP status of one call.
code() {
  local args=(-s -o "$KF_RUN_DIR/body" -w '%{http_code}' -X "$1")
  [ -n "${3:-}" ] && args+=(-H 'Content-Type: application/json' --data "$3")
  [ -n "${4:-}" ] && args+=(-H "Authorization: Bearer $4")
  curl "${args[@]}" "$2"
}
for call in "POST /snapshots" "GET /snapshots" "GET /snapshots/x/state" "POST /restore" \
            "POST /stop" "POST /export" "POST /import" "POST /cluster/checkpoint"; do
  set -- $call
  [ "$(code "$1" "$A2$2" '{}')" = 401 ] || fail "$call without a token: $(cat "$KF_RUN_DIR/body")"
done
for req in "POST /snapshots {\"name\":\"../x\"}" "POST /restore {\"snapshot\":\"../../etc\"}" \
           "POST /stop {\"snapshot\":\"a/../b\"}" "GET /snapshots/..%2Fx/state"; do
  set -- $req
  got=$(code "$1" "$A2$2" "${3:-}" "$T")
  [ "$got" = 400 ] || fail "$req: expected 400, got $got $(cat "$KF_RUN_DIR/body")"
done
echo "   401 without the token, 400 for ../ names, on the node that does not coordinate"

"$BIN/keyflow-gen" --bootstrap-servers "$KF_BOOTSTRAP" --events 60000 --customers 400 \
  --malformed 0.01 --rate 5000 --seed 23 --summary "$KF_RUN_DIR/summary.json" \
  2> "$KF_RUN_DIR/gen.log" &
GEN=$!
kf_track $GEN
read_some() { [ "$(metric_sum 1 keyflow_records_in_total 'operator="source"')" -gt 3000 ]; }
kf_wait_for read_some || fail "cluster A reads nothing"

echo "== a snapshot asked of node 2 is taken by the coordinator"
"$CTL" snapshot --node "$A2" --name mid --output json > "$KF_RUN_DIR/mid.json" ||
  fail "snapshot mid failed"
[ "$(kf_json_get "$KF_RUN_DIR/mid.json" 'd["complete"], len(d["parts"])')" = "True $PARTS" ] ||
  fail "snapshot mid: $(cat "$KF_RUN_DIR/mid.json")"
grep -q "forwarded to the coordinator (node 1)" "$KF_RUN_DIR/n2.log" || fail "not forwarded"
"$CTL" snapshots --node "$(admin_of 1)" --output json > "$KF_RUN_DIR/snaps.json"
kf_json_get "$KF_RUN_DIR/snaps.json" '[s["name"] for s in d["snapshots"] if s["complete"]]' |
  grep -q "'mid'" || fail "mid not listed: $(cat "$KF_RUN_DIR/snaps.json")"
rc=$(kf_exit_code "$CTL" snapshot --node "$A2" --name mid)
[ "$rc" = 4 ] || fail "a second snapshot 'mid' was not refused (exit $rc)"
echo "   snapshot 'mid' in $PARTS part(s); a second 'mid' refused"

echo "== stop cluster A with a snapshot, through node 2, while events still arrive"
kill -0 "$GEN" 2> /dev/null || fail "the generator finished before the stop (raise --events)"
"$CTL" stop --snapshot final --node "$A2" > "$KF_RUN_DIR/stop.out" || fail "stop failed"
for i in 1 2; do
  "$CTL" status --node "$(admin_of $i)" --output json > "$KF_RUN_DIR/status.json"
  [ "$(kf_json_get "$KF_RUN_DIR/status.json" 'd["state"], len(d["running"])')" = "stopped 0" ] ||
    fail "node $i after stop: $(cat "$KF_RUN_DIR/status.json")"
  kill -0 "${PID[$i]}" || fail "node $i exited"
done
mkdir -p "$KF_RUN_DIR/exported"
"$CTL" export final "$KF_RUN_DIR/exported" --node "$A2" > /dev/null || fail "export failed"
for r in 0 1 2 3; do
  part=region-$r
  [ "$MODE" = spread ] && part=slice-$r
  [ -f "$KF_RUN_DIR/exported/final/$part/MANIFEST.pb" ] || fail "$part not exported"
done
echo "   both nodes up with the job stopped; 'final' exported"

echo "== cluster B: standby nodes 3 and 4 with their own directories"
SEEDS=127.0.0.1:${PORT[3]},127.0.0.1:${PORT[4]}
CHECKPOINTS=$KF_RUN_DIR/b-shared
node 3 --standby
node 4 --standby
B4=$(admin_of 4)
sleep 3 # past the failure timeout: a coordinator that assigned would have done so
"$CTL" status --node "$B4" --output json > "$KF_RUN_DIR/status.json"
[ "$(kf_json_get "$KF_RUN_DIR/status.json" 'd["state"], d["assignment"]["version"]')" = \
  "standby 0" ] || fail "standby cluster runs: $(cat "$KF_RUN_DIR/status.json")"
"$CTL" import "$KF_RUN_DIR/exported/final" --node "$B4" > /dev/null || fail "import failed"
"$CTL" restore final --node "$B4" > /dev/null || fail "restore failed"
covered 3 2
if [ "$MODE" = spread ]; then
  grep -q "generation .* starts from .*b-shared/job/g.*/chk-" "$KF_RUN_DIR/n3.log" ||
    fail "the leader did not start the job from the adopted snapshot"
else
  for i in 3 4; do
    grep -q "region .* started from .*b-shared/region-.*/chk-" "$KF_RUN_DIR/n$i.log" ||
      fail "node $i did not start a region from the adopted snapshot"
  done
fi
echo "   B restored 'final' and runs every region"
wait "$GEN"
"$BIN/keyflow-verify" --summary "$KF_RUN_DIR/summary.json" --redis "$KF_REDIS" \
  --pipeline "$PIPELINE" --bootstrap-servers "$KF_BOOTSTRAP" --wait 90 --sample 2 \
  --at-least-once-kafka

echo "== inspect equals Redis; diff; rescale refused"
"$CTL" snapshot --node "$B4" --name after > /dev/null || fail "snapshot in cluster B failed"
checked=0
for key in $(redis-cli -p "${KF_REDIS##*:}" --scan --pattern 'profile:*' | head -5); do
  customer=${key#profile:}
  "$CTL" inspect after --operator aggregate --key "$customer" --node "$B4" --output json \
    > "$KF_RUN_DIR/inspect.json" || fail "inspect $customer failed"
  $PY "$ROOT/tests/integration/inspect_check.py" profile "$KF_RUN_DIR/inspect.json" \
    "$KF_REDIS" "$customer" || fail "inspect differs from Redis for $customer"
  checked=$((checked + 1))
done
[ $checked -ge 3 ] || fail "only $checked profiles to compare"
"$CTL" diff final after --operator aggregate --node "$B4" --output json > "$KF_RUN_DIR/diff.json"
$PY "$ROOT/tests/integration/inspect_check.py" diff "$KF_RUN_DIR/diff.json" ||
  fail "diff: $(cat "$KF_RUN_DIR/diff.json")"
rc=$(kf_exit_code "$CTL" rescale 3 --node "$B4")
[ "$rc" = 4 ] || fail "keyflowctl rescale on a cluster: exit $rc $(cat "$KF_RUN_DIR/last.err")"
grep -q "add or stop nodes" "$KF_RUN_DIR/last.err" || fail "rescale: $(cat "$KF_RUN_DIR/last.err")"
echo "   inspect of $checked customers equals Redis; rescale refused (409) with the reason"

echo "== deploy a new version on cluster B through node 4: the job restarts with its state"
V3=$KF_RUN_DIR/cdp-v3.yaml
sed -e 's/^  version: 2$/  version: 3/' -e 's#proto: ../proto/#proto: '"$ROOT"'/config/proto/#' \
  "$PIPELINE" > "$V3"
"$CTL" deploy "$V3" --node "$B4" --dry-run --output json > "$KF_RUN_DIR/plan.json" ||
  fail "dry run on a cluster failed"
[ "$(kf_json_get "$KF_RUN_DIR/plan.json" \
     '" ".join(o["id"] + "=" + o["state"] for o in d["operators"] if o["state"] != "stateless")')" = \
  "dedup=keep aggregate=keep activate=keep" ] || fail "dry run plan: $(cat "$KF_RUN_DIR/plan.json")"
BAD=$KF_RUN_DIR/cdp-bad.yaml
kf_cdp_changed_state "$V3" "$BAD" || fail "no changed pipeline"
rc=$(kf_exit_code "$CTL" deploy "$BAD" --node "$B4" --yes)
[ "$rc" = 4 ] || fail "incompatible deploy on a cluster: exit $rc $(cat "$KF_RUN_DIR/last.err")"
grep -q "operator 'aggregate'" "$KF_RUN_DIR/last.err" ||
  fail "refusal does not name the operator: $(cat "$KF_RUN_DIR/last.err")"
"$CTL" deploy "$V3" --node "$B4" --yes > "$KF_RUN_DIR/deploy.out" || fail "deploy of v3 failed"
grep -q "forwarded to the coordinator (node 3)" "$KF_RUN_DIR/n4.log" || fail "not forwarded"
covered 3 2
for i in 3 4; do
  "$CTL" status --node "$(admin_of $i)" --output json > "$KF_RUN_DIR/status.json"
  [ "$(kf_json_get "$KF_RUN_DIR/status.json" 'd["version"], d["state"]')" = "3 running" ] ||
    fail "node $i after the deploy: $(cat "$KF_RUN_DIR/status.json")"
done
"$CTL" snapshot --node "$B4" --name v3 > /dev/null || fail "snapshot v3 failed"
"$CTL" inspect v3 --operator aggregate --key "$customer" --node "$B4" --output json \
  > "$KF_RUN_DIR/inspect.json" || fail "inspect $customer in v3 failed"
$PY "$ROOT/tests/integration/inspect_check.py" profile "$KF_RUN_DIR/inspect.json" \
  "$KF_REDIS" "$customer" || fail "v3 lost the state of $customer"
echo "   v3 runs on both nodes with the state of v2 (inspect of $customer equals Redis);"
echo "   an incompatible version is refused naming operator 'aggregate'"
echo "PASS"
