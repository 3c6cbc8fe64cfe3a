#!/usr/bin/env bash
# One seed pipeline end to end (config/pipelines/NAME.yaml): keyflow-broker + a real
# redis-server + keyflowd (3 partition actors). tests/integration/seeds/NAME.py, an
# independent Python Kafka client, writes the entity hashes to Redis (setup) and the seeded
# input to Kafka (generate), and then compares the dead letters, every Kafka output and
# every Redis hash with results it computes itself (check, which re-reads until they match
# or 60 s pass). For iot the late readings are written in a second phase, once the
# watermark has passed all windows of the main data.
#
# Usage: seeds_test.sh BIN_DIR REPO_ROOT NAME   (NAME: clickstream, marketing, iot, cdp)
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 BIN_DIR REPO_ROOT NAME" >&2
  exit 2
fi
BIN=$1
ROOT=$2
NAME=$3
PY=/usr/bin/python3   # has confluent_kafka, redis and protobuf
SCRIPT=$ROOT/tests/integration/seeds/$NAME.py
case $NAME in
  clickstream) TOPICS=(pageviews:4 pageviews-dlq:1 sessions:2) ;;
  marketing) TOPICS=(interactions:4 interactions-dlq:1 offers:1) ;;
  iot) TOPICS=(readings:4 readings-dlq:1 iot-minute:2 alerts:1) ;;
  cdp) TOPICS=(events:4 events-dlq:1 activations:1) ;;
  *) echo "unknown seed pipeline '$NAME'" >&2; exit 2 ;;
esac

export KF_RUN_DIR; KF_RUN_DIR=$(mktemp -d "/tmp/keyflow-it-seeds-$NAME.XXXXXX")
export KF_BIN_DIR=$BIN
# shellcheck source=tools/lib.sh
source "$ROOT/tools/lib.sh"
trap kf_test_finish EXIT

kf_start_redis
kf_start_broker "${TOPICS[@]}"
echo "== $NAME: redis $KF_REDIS, kafka $KF_BOOTSTRAP"
"$PY" "$SCRIPT" setup --redis "$KF_REDIS"
# The input is written before keyflowd starts, so that every source finds records at once:
# a source without input for the idle timeout stops holding the watermark back, and if
# keyflowd sat idle before a burst, the first source to read would advance the watermark
# past the records the others have not read yet (they would be late).
"$PY" "$SCRIPT" generate --bootstrap "$KF_BOOTSTRAP"
kf_start_node --pipeline "$ROOT/config/pipelines/$NAME.yaml" --bootstrap-servers "$KF_BOOTSTRAP" \
  --redis "$KF_REDIS" --state-dir "$KF_RUN_DIR/state" --workers 2 --partition-actors 3
echo "   metrics $KF_METRICS"
if [ "$NAME" = iot ]; then
  "$PY" "$SCRIPT" wait --metrics "$KF_METRICS"
  "$PY" "$SCRIPT" generate --bootstrap "$KF_BOOTSTRAP" --phase late
fi
"$PY" "$SCRIPT" check --bootstrap "$KF_BOOTSTRAP" --redis "$KF_REDIS" --metrics "$KF_METRICS"
echo "== $NAME: PASS in ${SECONDS} s"
