# shellcheck shell=bash
# shellcheck disable=SC2004,SC2034 # PID, METRICS, STATUSURL: associative arrays of the caller
# Shell helpers of the cluster tests (source after tools/lib.sh). The caller sets
# PIPELINE, SEEDS and PORT[i] (cluster port of node i) and declares the associative arrays
# PID, METRICS and STATUSURL, which these helpers fill.
STATUS="python3 $(dirname "${BASH_SOURCE[0]}")/cluster_status.py"

# fail MESSAGE: prints it and exits 1 (the EXIT trap cleans up).
fail() { echo "FAIL: $*" >&2; exit 1; }

# cluster_node I [ARGS...]: starts cluster node I (again) on its state directory and the
# shared checkpoint directory ($CHECKPOINTS if set), with ARGS appended, and waits until it
# is ready.
cluster_node() {
  local i=$1; shift
  "$KF_BIN_DIR/keyflowd" --pipeline "$PIPELINE" --bootstrap-servers "$KF_BOOTSTRAP" \
    --redis "$KF_REDIS" --state-dir "$KF_RUN_DIR/n$i/state" --checkpoint-dir "${CHECKPOINTS:-$KF_RUN_DIR/shared}" \
    --node-id "$i" --cluster-address "127.0.0.1:${PORT[$i]}" --seeds "$SEEDS" \
    --heartbeat-ms 200 --workers 1 --metrics-address 127.0.0.1:0 --admin-address 127.0.0.1:0 \
    "$@" > "$KF_RUN_DIR/n$i.out" 2>> "$KF_RUN_DIR/n$i.log" &
  PID[$i]=$!
  kf_track "${PID[$i]}"
  kf_wait_for grep -q "keyflowd ready" "$KF_RUN_DIR/n$i.out" || fail "node $i did not start"
  METRICS[$i]=$(grep -o 'metrics=[^ ]*' "$KF_RUN_DIR/n$i.out" | cut -d= -f2)
  STATUSURL[$i]=$(grep -o 'status=[^ ]*' "$KF_RUN_DIR/n$i.out" | cut -d= -f2)
}

# refused_node CHECKPOINT_DIR WANT ARGS...: a cluster node (id 9) on CHECKPOINT_DIR with
# ARGS must exit 2 before it starts, and its message must contain WANT.
refused_node() {
  local dir=$1 want=$2 rc=0
  shift 2
  timeout 60 "$KF_BIN_DIR/keyflowd" --pipeline "$PIPELINE" --bootstrap-servers "$KF_BOOTSTRAP" \
    --redis "$KF_REDIS" --state-dir "$KF_RUN_DIR/n9/state" --checkpoint-dir "$dir" \
    --node-id 9 --cluster-address 127.0.0.1:1 --admin-address 127.0.0.1:0 \
    --metrics-address 127.0.0.1:0 "$@" > /dev/null 2> "$KF_RUN_DIR/n9.log" || rc=$?
  [ $rc -eq 2 ] || fail "keyflowd $* exited $rc, expected 2"
  grep -qF -- "$want" "$KF_RUN_DIR/n9.log" || fail "no '$want' in: $(cat "$KF_RUN_DIR/n9.log")"
}

# covered I N: waits (60 s) until node I sees N members alive and every region running on
# its assigned owner.
covered() {
  for _ in $(seq 600); do
    $STATUS covered "${STATUSURL[$1]}" "$2" && return 0
    sleep 0.1
  done
  curl -s -H "Authorization: Bearer $KEYFLOW_ADMIN_TOKEN" "${STATUSURL[$1]}" >&2 || true
  fail "node $1: regions not all running on $2 live nodes"
}

# metric_sum I NAME [LABEL]: sum of metric NAME's samples on node I (those whose labels
# contain LABEL, e.g. 'sender="source"', if given); 0 if absent.
metric_sum() {
  curl -s "${METRICS[$1]}" |
    awk -v n="$2" -v l="${3:-}" '($1 == n || index($1, n"{") == 1) && index($1, l) { s += $2 } END { print s + 0 }'
}
