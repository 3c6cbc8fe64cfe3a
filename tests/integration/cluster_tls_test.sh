#!/usr/bin/env bash
# Mutual TLS between cluster nodes (--tls-cert/--tls-key/--tls-ca, caf_openssl):
#   1. a CA, node1/node2 certificates it signs and a "rogue" certificate from another CA,
#      made with the openssl CLI;
#   2. nodes 1 and 2 with their certificates join each other;
#   3. node 3 with the rogue certificate (trusting the real CA), and node 3 without TLS,
#      stay outside: after several failure timeouts neither side sees the other alive;
#   4. a partial TLS configuration and a non-loopback --cluster-address without TLS exit 2
#      before starting; --insecure-plaintext-cluster allows the latter;
#   5. hostile clients (tests/integration/basp_hostile.py) on node 1's cluster port: plain
#      TCP connections that send one BASP header announcing a ~2 GB payload (the header
#      that makes a plain CAF 0.17.6 node allocate the payload before any check), and TLS
#      clients without a certificate or with the rogue one. Every connection must be
#      dropped, node 1's memory must not grow by more than $MAX_GROWTH_MB, and nodes 1
#      and 2 must still see each other alive.
# With KEYFLOW_BASP_CONTROL=1 it also sends one such header to a plaintext loopback node (the
# control that shows the vulnerability this guards against) and prints the RSS growth; the
# result is reported, not checked, and the node may allocate ~2 GB.
#
# Usage: cluster_tls_test.sh BIN_DIR REPO_ROOT
set -euo pipefail
BIN=$1
ROOT=$2
PIPELINE=$ROOT/config/pipelines/cdp.yaml
PY=/usr/bin/python3
HOSTILE=$ROOT/tests/integration/basp_hostile.py
HEARTBEAT_MS=200
FAILURE_MS=1500
MAX_GROWTH_MB=50

export KF_RUN_DIR; KF_RUN_DIR=$(mktemp -d /tmp/keyflow-it-cluster-tls.XXXXXX)
export KF_BIN_DIR=$BIN
# shellcheck source=tools/lib.sh
source "$ROOT/tools/lib.sh"

# On failure: the last lines of every node's log, then the usual kf_test_finish.
finish() {
  local rc=$?
  set +e # errexit would end the trap at the first failing command, leaving processes behind
  if [ $rc -ne 0 ]; then
    for f in "$KF_RUN_DIR"/*.log; do
      case $f in */redis*.log|*/broker.log) continue ;; esac
      echo "--- $(basename "$f"):"; grep -v '^%' "$f" | tail -20 || true
    done
  fi
  (exit $rc)
  kf_test_finish
}
trap finish EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

echo "== certificates: a CA, node1 and node2 signed by it, a rogue one from another CA"
CERTS=$KF_RUN_DIR/certs
mkdir -p "$CERTS"
(
  cd "$CERTS"
  exec 2>openssl.log
  echo "subjectAltName=IP:127.0.0.1" > san.ext
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=keyflow-ca -keyout ca.key -out ca.crt
  for n in node1 node2; do
    openssl req -new -newkey rsa:2048 -nodes -subj "/CN=$n" -keyout "$n.key" -out "$n.csr"
    openssl x509 -req -in "$n.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile san.ext -out "$n.crt"
  done
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=rogue-ca -keyout rogue-ca.key \
    -out rogue-ca.crt
  openssl req -new -newkey rsa:2048 -nodes -subj /CN=rogue -keyout rogue.key -out rogue.csr
  openssl x509 -req -in rogue.csr -CA rogue-ca.crt -CAkey rogue-ca.key -CAcreateserial -days 2 \
    -extfile san.ext -out rogue.crt
  openssl verify -CAfile ca.crt node1.crt node2.crt >&2
  ! openssl verify -CAfile ca.crt rogue.crt >&2
) || { cat "$CERTS/openssl.log" >&2; fail "creating the certificates"; }

kf_start_redis
kf_start_broker events:6 events-dlq:1 activations:1
REDIS=$KF_REDIS
# Outsiders (nodes that must not join) get their own Redis, checkpoint directory and consumer
# group: alone, each one assigns itself every region, and must not fence the real cluster's.
kf_start_redis
OUTSIDER_REDIS=$KF_REDIS
KF_REDIS=$REDIS

P1=$(kf_free_port)
P2=$(kf_free_port)
P3=$(kf_free_port)
# Nodes 1 and 2 also seed node 3's address: they connect to it as TLS clients too.
SEEDS=127.0.0.1:$P1,127.0.0.1:$P2,127.0.0.1:$P3

# start_node NAME ID CLUSTER_ADDRESS [ARGS...]: starts a cluster node (log NAME.log) and
# waits until it is ready; sets NODE_PID and NODE_STATUS (its /status URL).
start_node() {
  local name=$1 id=$2 addr=$3
  shift 3
  "$BIN/keyflowd" --pipeline "$PIPELINE" --bootstrap-servers "$KF_BOOTSTRAP" \
    --state-dir "$KF_RUN_DIR/$name/state" --node-id "$id" --cluster-address "$addr" \
    --metrics-address 127.0.0.1:0 --admin-address 127.0.0.1:0 --workers 1 \
    --heartbeat-ms $HEARTBEAT_MS --failure-timeout-ms $FAILURE_MS "$@" \
    > "$KF_RUN_DIR/$name.out" 2> "$KF_RUN_DIR/$name.log" &
  NODE_PID=$!
  kf_track $NODE_PID
  kf_wait_for grep -q "keyflowd ready" "$KF_RUN_DIR/$name.out" ||
    fail "$name did not get ready"
  NODE_STATUS=$(sed -n 's/.* status=\([^ ]*\).*/\1/p' "$KF_RUN_DIR/$name.out")
}
# stop_node PID: SIGTERM, waits until it is gone.
stop_node() {
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
# tls NAME CA: sets TLS to the options for certificate NAME trusting CA.
tls() { TLS=(--tls-cert "$CERTS/$1.crt" --tls-key "$CERTS/$1.key" --tls-ca "$CERTS/$2.crt"); }
# alive_peers STATUS_URL: the other members the node sees alive, sorted, e.g. "1,2".
alive_peers() {
  curl -fsS --max-time 5 -H "Authorization: Bearer $KEYFLOW_ADMIN_TOKEN" "$1" | $PY -c '
import json, sys
j = json.load(sys.stdin)
print(",".join(str(i) for i in sorted(m["id"] for m in j["members"] if m["alive"] and not m["self"])))'
}
# wait_peers STATUS_URL EXPECTED: waits (up to 30 s) until alive_peers prints EXPECTED.
wait_peers() {
  local got=""
  for _ in $(seq 150); do
    got=$(alive_peers "$1" 2>/dev/null || echo "?")
    [ "$got" = "$2" ] && return 0
    sleep 0.2
  done
  fail "$1 sees alive '$got', expected '$2'"
}
# expect_peers STATUS_URL EXPECTED WHO: alive_peers must print EXPECTED now.
expect_peers() {
  local got; got=$(alive_peers "$1")
  [ "$got" = "$2" ] || fail "$3 sees alive '$got', expected '$2'"
}
# log_count FILE REGEX: lines of FILE matching REGEX.
log_count() { grep -c -- "$2" "$1" || true; }

echo "== nodes 1 and 2 with mutual TLS"
tls node1 ca
start_node n1 1 "127.0.0.1:$P1" --redis "$REDIS" --checkpoint-dir "$KF_RUN_DIR/shared" \
  --seeds "$SEEDS" "${TLS[@]}"
N1=$NODE_PID N1_STATUS=$NODE_STATUS
tls node2 ca
start_node n2 2 "127.0.0.1:$P2" --redis "$REDIS" --checkpoint-dir "$KF_RUN_DIR/shared" \
  --seeds "$SEEDS" "${TLS[@]}"
N2=$NODE_PID N2_STATUS=$NODE_STATUS
wait_peers "$N1_STATUS" 2
wait_peers "$N2_STATUS" 1
for u in "$N1_STATUS" "$N2_STATUS"; do
  [ "$(curl -fsS -H "Authorization: Bearer $KEYFLOW_ADMIN_TOKEN" "$u" | $PY -c 'import json,sys; print(json.load(sys.stdin)["tls"])')" = True ] ||
    fail "$u does not report tls: true"
done
grep -q "(mutual TLS)" "$KF_RUN_DIR/n1.log" || fail "node 1 does not log mutual TLS"
grep "cluster: node 2 .* is alive" "$KF_RUN_DIR/n1.log" | head -1
grep "cluster: node 1 .* is alive" "$KF_RUN_DIR/n2.log" | head -1

# outsider NAME [ARGS...]: starts node 3 on P3 with ARGS, waits several failure timeouts and
# checks that it and nodes 1/2 never see each other alive; then stops it.
outsider() {
  local name=$1
  shift
  start_node "$name" 3 "127.0.0.1:$P3" --redis "$OUTSIDER_REDIS" \
    --checkpoint-dir "$KF_RUN_DIR/$name/shared" --group-id "keyflow-$name" --seeds "$SEEDS" "$@"
  local pid=$NODE_PID status=$NODE_STATUS
  sleep $(( 4 * FAILURE_MS / 1000 ))
  expect_peers "$N1_STATUS" 2 "node 1 (with $name up)"
  expect_peers "$N2_STATUS" 1 "node 2 (with $name up)"
  expect_peers "$status" "" "$name"
  for f in n1 n2; do
    ! grep -q "cluster: node 3 " "$KF_RUN_DIR/$f.log" || fail "$f.log mentions node 3"
  done
  ! grep -q "cluster: node [12] " "$KF_RUN_DIR/$name.log" || fail "$name.log mentions node 1 or 2"
  # Not the first seed and never heard from a member: it must not run the job on its own.
  [ -z "$($PY "$ROOT/tests/integration/cluster_status.py" running "$status")" ] ||
    fail "$name runs regions on its own"
  grep -q "cluster: not joined" "$KF_RUN_DIR/$name.log" || fail "$name does not say it is not joined"
  kill -0 "$pid" 2>/dev/null || fail "$name exited"
  stop_node "$pid"
  echo "   $name stayed outside (nodes 1/2 see alive: $(alive_peers "$N1_STATUS")/$(alive_peers "$N2_STATUS"))"
}

echo "== node 3 with a certificate from another CA (trusting the real CA) does not join"
tls rogue ca
outsider n3-rogue "${TLS[@]}"
echo "== node 3 with a certificate from another CA (trusting that CA) does not join"
tls rogue rogue-ca
outsider n3-rogue-ca "${TLS[@]}"
echo "== node 3 without TLS does not join"
outsider n3-plain

echo "== option checks"
# refused CMD_ARGS... EXPECTED_TEXT: keyflowd ARGS must exit 2 naming EXPECTED_TEXT.
refused() {
  local want=${*: -1} rc=0
  timeout 60 "$BIN/keyflowd" "${@:1:$#-1}" > "$KF_RUN_DIR/refused.out" 2>&1 || rc=$?
  [ $rc -eq 2 ] || { cat "$KF_RUN_DIR/refused.out" >&2; fail "exit $rc, expected 2 for: ${*:1:$#-1}"; }
  grep -qF -- "$want" "$KF_RUN_DIR/refused.out" ||
    { cat "$KF_RUN_DIR/refused.out" >&2; fail "no '$want' in the message"; }
  grep -q "keyflowd ready" "$KF_RUN_DIR/refused.out" && fail "started anyway: ${*:1:$#-1}"
  echo "   exit 2: $(head -1 "$KF_RUN_DIR/refused.out" | cut -c1-150)"
}
P4=$(kf_free_port)
BASE=(--pipeline "$PIPELINE" --bootstrap-servers "$KF_BOOTSTRAP" --redis "$OUTSIDER_REDIS"
      --state-dir "$KF_RUN_DIR/n4/state" --checkpoint-dir "$KF_RUN_DIR/n4/shared" --node-id 4
      --group-id keyflow-n4)
refused "${BASE[@]}" --cluster-address "127.0.0.1:$P4" --tls-cert "$CERTS/node1.crt" \
  "--tls-cert, --tls-key and --tls-ca"
refused "${BASE[@]}" --cluster-address "127.0.0.1:$P4" --tls-cert "$CERTS/node1.crt" \
  --tls-key "$CERTS/node1.key" "--tls-cert, --tls-key and --tls-ca"
refused "${BASE[@]}" --cluster-address "0.0.0.0:$P4" \
  "refusing to listen on a non-loopback address without TLS"
start_node n4-insecure 4 "0.0.0.0:$P4" --redis "$OUTSIDER_REDIS" \
  --checkpoint-dir "$KF_RUN_DIR/n4/shared" --group-id keyflow-n4 --seeds "127.0.0.1:$P4" \
  --insecure-plaintext-cluster
stop_node "$NODE_PID"
echo "   --insecure-plaintext-cluster: 0.0.0.0:$P4 without TLS started"

echo "== hostile clients on node 1's TLS cluster port"
dead_before=$(( $(log_count "$KF_RUN_DIR/n1.log" "is dead") + $(log_count "$KF_RUN_DIR/n2.log" "is dead") ))
# check_hostile JSON WHAT: every connection dropped, RSS and peak RSS within MAX_GROWTH_MB.
check_hostile() {
  $PY - "$1" "$MAX_GROWTH_MB" "$2" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
limit, what = float(sys.argv[2]), sys.argv[3]
bad = [c for c in r["connections"] if not c.get("closed_by_server")]
first = {}
for c in r["connections"]:
    first.setdefault(c["kind"], c)
for c in list(first.values()) + bad[:3]:
    print(f"   {c['kind']}: {c.get('handshake', 'n/a')} -> {c['outcome']}")
if bad:
    sys.exit(f"FAIL: {what}: {len(bad)} of {len(r['connections'])} connection(s) not dropped")
if r["rss_growth_mb"] > limit or r["hwm_growth_mb"] > limit:
    sys.exit(f"FAIL: {what}: node 1 grew by {r['rss_growth_mb']:.1f} MB RSS, "
             f"{r['hwm_growth_mb']:.1f} MB peak RSS (limit {limit:.0f} MB)")
EOF
}
$PY "$HOSTILE" 127.0.0.1 "$P1" --plain 20 --tls 5 --pid "$N1" --settle 2 \
  --json "$KF_RUN_DIR/hostile.json"
check_hostile "$KF_RUN_DIR/hostile.json" "20 plain headers + 5 TLS clients without certificate"
$PY "$HOSTILE" 127.0.0.1 "$P1" --tls 5 --cert "$CERTS/rogue.crt" --key "$CERTS/rogue.key" \
  --pid "$N1" --settle 2 --json "$KF_RUN_DIR/hostile-rogue.json"
check_hostile "$KF_RUN_DIR/hostile-rogue.json" "5 TLS clients with the rogue certificate"

kill -0 "$N1" 2>/dev/null || fail "node 1 exited"
kill -0 "$N2" 2>/dev/null || fail "node 2 exited"
sleep $(( 2 * FAILURE_MS / 1000 ))
expect_peers "$N1_STATUS" 2 "node 1 (after the hostile clients)"
expect_peers "$N2_STATUS" 1 "node 2 (after the hostile clients)"
dead_after=$(( $(log_count "$KF_RUN_DIR/n1.log" "is dead") + $(log_count "$KF_RUN_DIR/n2.log" "is dead") ))
[ "$dead_after" -eq "$dead_before" ] ||
  fail "nodes 1/2 declared a member dead during the hostile clients"
echo "   node 1 alive, nodes 1 and 2 still see each other alive"

if [ "${KEYFLOW_BASP_CONTROL:-0}" = 1 ]; then
  echo "== control (not checked): one such header to a PLAINTEXT loopback node"
  P5=$(kf_free_port)
  start_node n5-plain 5 "127.0.0.1:$P5" --redis "$OUTSIDER_REDIS" \
    --checkpoint-dir "$KF_RUN_DIR/n5/shared" --group-id keyflow-n5 --seeds "127.0.0.1:$P5"
  $PY "$HOSTILE" 127.0.0.1 "$P5" --plain 1 --pid "$NODE_PID" --settle 2 \
    --json "$KF_RUN_DIR/control.json"
  stop_node "$NODE_PID"
fi

echo "PASS"
