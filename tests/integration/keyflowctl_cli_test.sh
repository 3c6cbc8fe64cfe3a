#!/usr/bin/env bash
# keyflowctl's command line, without a node:
# - `keyflowctl --help` lists every command in its group (Job, Snapshots, Dead letters) and
#   the exit codes; every command's --help exits 0 and names its arguments, the global
#   options and an example;
# - usage errors exit 2 with "keyflowctl: <message>" on stderr, before any request: unknown
#   command or option, missing arguments, invalid snapshot names (naming the argument and the
#   name), rescale N < 1, an unreadable pipeline file, bad --node/--output/--timeout/--limit,
#   missing --token-file/--ca-file;
# - a node that cannot be reached exits 1 with "cannot reach HOST:PORT: Connection refused",
#   for every command.
# (The commands against a real keyflowd are tested end to end elsewhere.)
#
# Usage: keyflowctl_cli_test.sh KEYFLOWCTL
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 KEYFLOWCTL" >&2
  exit 2
fi
CTL=$1
TMP=$(mktemp -d /tmp/keyflowctl-cli.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
# No token or node from the environment or the current directory.
unset KEYFLOW_ADMIN KEYFLOW_ADMIN_TOKEN
cd "$TMP"

fail() { echo "FAIL: $*" >&2; exit 1; }
checks=0

# run ARGS...: runs keyflowctl; sets RC, OUT (stdout) and ERR (stderr).
run() {
  RC=0
  "$CTL" "$@" > "$TMP/out" 2> "$TMP/err" < /dev/null || RC=$?
  OUT=$(cat "$TMP/out")
  ERR=$(cat "$TMP/err")
}

# expect RC ARGS...: keyflowctl ARGS exits RC.
expect() {
  local want=$1
  shift
  run "$@"
  [ "$RC" = "$want" ] || fail "keyflowctl $* exited $RC, not $want; stderr: $ERR"
  checks=$((checks + 1))
}

# has TEXT WHAT: TEXT contains WHAT (fixed string).
has() { grep -qF -- "$2" <<< "$1"; }

# A port nothing listens on: usage errors must be found before connecting to it (else the
# exit code would be 1), and unreachable-node checks connect to it.
DEAD=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
NODE=127.0.0.1:$DEAD
printf 'name: cli-test\nversion: 1\n' > "$TMP/pipeline.yaml"

echo "== keyflowctl --help"
expect 0 --help
for w in "Job:" "Snapshots:" "Dead letters:" status deploy stop rescale snapshot snapshots \
  inspect diff restore export import dlq "Exit codes" "--node" "--token-file" "--tls" \
  "--ca-file" "--output" "--timeout" KEYFLOW_ADMIN KEYFLOW_ADMIN_TOKEN; do
  has "$OUT" "$w" || fail "keyflowctl --help does not mention '$w'"
done
for code in "0  success" "1  the node answered with an error (500) or could not be reached" \
  "2  usage error" "3  authentication failed (401)" "4  refused"; do
  has "$OUT" "$code" || fail "keyflowctl --help does not document exit code '$code'"
done
# The groups list their commands in order, one line each.
awk '/^Job:/{g="job"} /^Snapshots:/{g="snap"} /^Dead letters:/{g="dlq"} /^$/{g=""}
     g && /^  [a-z]/{print g, $1}' <<< "$OUT" | tr '\n' ' ' > "$TMP/groups"
[ "$(cat "$TMP/groups")" = "job status job deploy job stop job rescale snap snapshot snap snapshots snap inspect snap diff snap restore snap export snap import dlq dlq " ] ||
  fail "command groups: $(cat "$TMP/groups")"
expect 0 -h

echo "== every command's --help"
GLOBAL="--node --token-file --tls --ca-file --output --timeout"
# help_mentions "COMMAND..." WORDS...: COMMAND --help exits 0 and mentions each word, the
# global options and an example.
help_mentions() {
  local cmd=$1
  shift
  # shellcheck disable=SC2086
  expect 0 $cmd --help
  for w in "$@" $GLOBAL "Usage: keyflowctl $cmd" "Example"; do
    has "$OUT" "$w" || fail "keyflowctl $cmd --help does not mention '$w': $OUT"
  done
  [ "$(head -1 <<< "$OUT")" != "" ] || fail "keyflowctl $cmd --help: no one-line summary"
}
help_mentions status
help_mentions deploy FILE --dry-run --allow-drop-state --yes
help_mentions stop --snapshot
help_mentions rescale " N" ">= 1"
help_mentions snapshot --name
help_mentions snapshots
help_mentions inspect SNAPSHOT --operator --key --limit
help_mentions diff " A " " B " --operator --limit
help_mentions restore SNAPSHOT
help_mentions export SNAPSHOT DIR
help_mentions import DIR
help_mentions "dlq list" --reason --operator --from --limit
help_mentions "dlq replay" --reason --operator --from
expect 0 dlq --help
for w in list replay "Example"; do has "$OUT" "$w" || fail "keyflowctl dlq --help: no '$w'"; done
expect 0 snapshot -h

echo "== usage errors: exit 2, before any request"
# usage WORDS ARGS...: keyflowctl ARGS exits 2 with "keyflowctl: " on stderr mentioning each
# of WORDS ("|"-separated, may be empty).
usage() {
  local words=$1
  shift
  expect 2 "$@"
  has "$ERR" "keyflowctl: " || fail "keyflowctl $*: no 'keyflowctl: ' message: $ERR"
  local IFS='|'
  for w in $words; do
    [ -z "$w" ] || has "$ERR" "$w" || fail "keyflowctl $*: the error does not name '$w': $ERR"
  done
}
usage "a command is required"
usage "unknown command 'frobnicate'" frobnicate
usage "unknown command 'frob'" dlq frob
usage "a command is required" dlq
usage "--bogus" status --bogus --node "$NODE"
usage "--bogus" --bogus status
usage "--token-file" --token-file "$TMP/no-token" status --node "$NODE"
usage "extra" status extra --node "$NODE"
usage "FILE" deploy --node "$NODE"
usage "SNAPSHOT" inspect --node "$NODE"
usage "B" diff a --node "$NODE"
usage "SNAPSHOT" restore --node "$NODE"
usage "N" rescale --node "$NODE"
usage "DIR" export nightly --node "$NODE"
usage "DIR" import --node "$NODE"
usage "--name|../x" snapshot --name ../x --node "$NODE"
usage "--name|'.'" snapshot --name . --node "$NODE"
usage "--name|'..'" snapshot --name .. --node "$NODE"
usage "--name|a/b" snapshot --name a/b --node "$NODE"
usage "--name|a b" snapshot --name "a b" --node "$NODE"
usage "--name" snapshot --name "" --node "$NODE"
usage "--name|1-64" snapshot --name "$(printf 'a%.0s' $(seq 65))" --node "$NODE"
usage "--snapshot|../x" stop --snapshot ../x --node "$NODE"
usage "SNAPSHOT|../etc" inspect ../etc --node "$NODE"
usage "B|../x" diff nightly ../x --node "$NODE"
usage "A|x/y" diff x/y nightly --node "$NODE"
usage "SNAPSHOT|'..'" restore .. --node "$NODE"
usage "SNAPSHOT|../x" export ../x "$TMP" --node "$NODE"
usage "DIR|'..'" import "$TMP/.." --node "$NODE"
usage "N|'0'" rescale 0 --node "$NODE"
usage "N|'-1'" rescale -1 --node "$NODE"
usage "N|'two'" rescale two --node "$NODE"
usage "FILE|$TMP/missing.yaml" deploy "$TMP/missing.yaml" --node "$NODE"
usage "FILE" deploy "$TMP" --node "$NODE"
if [ "$(id -u)" != 0 ]; then # root reads any file
  cp "$TMP/pipeline.yaml" "$TMP/secret.yaml"
  chmod 000 "$TMP/secret.yaml"
  usage "FILE|secret.yaml" deploy "$TMP/secret.yaml" --node "$NODE"
fi
usage "--output" status --output xml --node "$NODE"
usage "--timeout" status --timeout 0 --node "$NODE"
usage "--node|nonsense" status --node nonsense
usage "--node|127.0.0.1:99999" status --node 127.0.0.1:99999
usage "--node|:9465" status --node :9465
usage "--token-file|$TMP/no-token" status --token-file "$TMP/no-token" --node "$NODE"
: > "$TMP/empty-token"
usage "--token-file|empty" status --token-file "$TMP/empty-token" --node "$NODE"
usage "--ca-file" status --ca-file "$TMP/no-ca.pem" --node "$NODE"
usage "--limit" dlq list --limit 0 --node "$NODE"
usage "--from" dlq list --from -1 --node "$NODE"
usage "--limit" inspect nightly --limit 0 --node "$NODE"
usage "--limit" dlq replay --limit 5 --node "$NODE"
RC=0
KEYFLOW_ADMIN=bad "$CTL" status > /dev/null 2> "$TMP/err" || RC=$?
if [ "$RC" != 2 ] || ! grep -q 'KEYFLOW_ADMIN' "$TMP/err"; then
  fail "KEYFLOW_ADMIN=bad keyflowctl status exited $RC: $(cat "$TMP/err")"
fi

echo "== an unreachable node: exit 1, 'cannot reach'"
# unreachable ARGS...: keyflowctl ARGS --node NODE exits 1 saying it cannot reach NODE.
unreachable() {
  expect 1 "$@" --node "$NODE"
  has "$ERR" "keyflowctl: cannot reach $NODE: Connection refused" ||
    fail "keyflowctl $*: not 'cannot reach $NODE: Connection refused': $ERR"
  [ -z "$OUT" ] || fail "keyflowctl $*: printed on stdout: $OUT"
}
unreachable status
unreachable status --output json
unreachable status --tls
unreachable deploy "$TMP/pipeline.yaml" --dry-run
unreachable deploy "$TMP/pipeline.yaml" --yes
unreachable stop
unreachable stop --snapshot final-1
unreachable rescale 4
unreachable snapshot
unreachable snapshot --name nightly_2026-01-01.v1
unreachable snapshots
unreachable inspect chk-12 --operator profile --key c-000001 --limit 5
unreachable diff nightly chk-12 --operator profile --limit 5
unreachable restore nightly
unreachable export nightly "$TMP/exports"
unreachable import "$TMP/exports/nightly/"
unreachable dlq list --reason enrich_missing --operator enrich --from 3 --limit 5
unreachable dlq replay --reason enrich_missing
# Global options go before the command too.
expect 1 --node "$NODE" status
has "$ERR" "cannot reach $NODE" || fail "keyflowctl --node $NODE status: $ERR"
expect 1 --node "$NODE" --output json --timeout 5 dlq list --limit 5
has "$ERR" "cannot reach $NODE" || fail "keyflowctl --node $NODE ... dlq list: $ERR"
usage "--node|bad" --node bad status
usage "--name|../x" --node "$NODE" snapshot --name ../x
# The token is read (and the file checked) before connecting; it does not change the answer.
echo tok > "$TMP/token"
unreachable status --token-file "$TMP/token"
RC=0
KEYFLOW_ADMIN=$NODE KEYFLOW_ADMIN_TOKEN=tok "$CTL" snapshots > /dev/null 2> "$TMP/err" || RC=$?
if [ "$RC" != 1 ] || ! grep -qF "cannot reach $NODE" "$TMP/err"; then
  fail "KEYFLOW_ADMIN=$NODE keyflowctl snapshots exited $RC: $(cat "$TMP/err")"
fi
# --node wins over $KEYFLOW_ADMIN.
RC=0
KEYFLOW_ADMIN=bad "$CTL" status --node "$NODE" > /dev/null 2> "$TMP/err" || RC=$?
if [ "$RC" != 1 ] || ! grep -qF "cannot reach $NODE" "$TMP/err"; then
  fail "--node does not override KEYFLOW_ADMIN (exit $RC): $(cat "$TMP/err")"
fi

echo "PASS: keyflowctl command line ($checks checks)"
