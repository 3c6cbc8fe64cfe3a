#!/usr/bin/env bash
# Prometheus: config/prometheus/ passes promtool (config, rules and the rules' unit tests), and
# a real prometheus server (the Debian package) started with that configuration scrapes a
# running keyflowd: its query API returns the keyflow metrics (records read equal to what was
# sent), every alert rule is loaded, and every query of the Grafana dashboard
# (config/grafana/keyflow.json) runs, the core panels with data.
#
# Usage: prometheus_test.sh BIN_DIR REPO_ROOT
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 BIN_DIR REPO_ROOT" >&2
  exit 2
fi
ROOT=$2
CONF=$ROOT/config/prometheus
export KF_RUN_DIR; KF_RUN_DIR=$(mktemp -d /tmp/keyflow-it-prometheus.XXXXXX)
export KF_BIN_DIR=$1
# shellcheck source=tools/lib.sh
source "$ROOT/tools/lib.sh"
trap kf_test_finish EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "== promtool"
promtool check config "$CONF/prometheus.yml" || fail "promtool check config"
promtool check rules "$CONF/alerts.yml" || fail "promtool check rules"
(cd "$CONF" && promtool test rules alerts_test.yml) || fail "promtool test rules"

echo "== a prometheus server scrapes keyflowd"
EVENTS=3000
kf_start_redis
kf_start_broker events:4 events-dlq:1 activations:1
kf_start_node --pipeline "$ROOT/config/pipelines/cdp.yaml" --bootstrap-servers "$KF_BOOTSTRAP" \
  --redis "$KF_REDIS" --state-dir "$KF_RUN_DIR/state" --workers 2
timeout 120 "$KF_BIN_DIR/keyflow-gen" --bootstrap-servers "$KF_BOOTSTRAP" --topic events \
  --events "$EVENTS" --customers 100 --seed 5 > /dev/null || fail "keyflow-gen failed"
TARGET=${KF_METRICS#http://}
TARGET=${TARGET%/metrics}
# The repository's configuration, pointed at this node and scraping every second.
cp "$CONF/alerts.yml" "$KF_RUN_DIR/alerts.yml"
sed -e "s|\"127.0.0.1:9464\"|\"$TARGET\"|" -e 's|scrape_interval: 5s|scrape_interval: 1s|' \
  "$CONF/prometheus.yml" > "$KF_RUN_DIR/prometheus.yml"
grep -q "$TARGET" "$KF_RUN_DIR/prometheus.yml" || fail "no scrape target in the configuration"
PPORT=$(kf_free_port)
prometheus --config.file "$KF_RUN_DIR/prometheus.yml" --storage.tsdb.path "$KF_RUN_DIR/tsdb" \
  --web.listen-address "127.0.0.1:$PPORT" > "$KF_RUN_DIR/prometheus.log" 2>&1 &
kf_track $!
API=http://127.0.0.1:$PPORT/api/v1
kf_wait_for curl -fs "$API/status/buildinfo" || fail "prometheus did not start"

# query EXPR: the first sample's value of an instant query, or "" if none.
query() {
  curl -fs --get "$API/query" --data-urlencode "query=$1" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")'
}
read=""
for _ in $(seq 300); do
  read=$(query 'sum(keyflow_records_in_total{job="keyflow",operator="source"})')
  [ -n "$read" ] && [ "${read%.*}" -ge "$EVENTS" ] && break
  sleep 0.2
done
echo "   records read, as Prometheus scraped them: ${read:-none}"
[ -n "$read" ] && [ "${read%.*}" -ge "$EVENTS" ] || fail "prometheus has not seen the $EVENTS records read"
[ "$(query 'up{job="keyflow"}')" = 1 ] || fail "up{job=\"keyflow\"} is not 1"
names=$(curl -fs "$API/label/__name__/values" |
  python3 -c 'import json,sys; print(len([n for n in json.load(sys.stdin)["data"] if n.startswith("keyflow_")]))')
echo "   keyflow metric names known to Prometheus: $names"
[ "$names" -ge 20 ] || fail "only $names keyflow metrics scraped"
rules=$(curl -fs "$API/rules" |
  python3 -c 'import json,sys; print(sum(len(g["rules"]) for g in json.load(sys.stdin)["data"]["groups"]))')
want=$(grep -c '^      - alert:' "$CONF/alerts.yml")
echo "   alert rules loaded: $rules of $want"
[ "$rules" = "$want" ] || fail "prometheus loaded $rules alert rules, alerts.yml has $want"
echo "== the Grafana dashboard's queries (config/grafana/keyflow.json)"
# Every panel's query must parse and run; the core panels must show data (retried for 20 s
# while Prometheus gathers the samples rate() needs).
/usr/bin/python3 - "$API" "$ROOT/config/grafana/keyflow.json" <<'PYEOF' || fail "dashboard queries"
import json, sys, time, urllib.parse, urllib.request
api, path = sys.argv[1], sys.argv[2]
dash = json.load(open(path))
core = {"Events read per second", "Records out per operator", "Consumer lag per partition",
        "Processing latency p50 / p99", "Nodes up"}
def run(expr):
    url = api + "/query?" + urllib.parse.urlencode({"query": expr})
    try:
        return json.load(urllib.request.urlopen(url, timeout=10))
    except urllib.error.HTTPError as e:
        return json.load(e)
bad, empty = [], set(core)
for _ in range(100):
    bad = []
    for panel in dash["panels"]:
        for t in panel["targets"]:
            r = run(t["expr"])
            if r.get("status") != "success":
                bad.append((panel["title"], t["expr"], r.get("error")))
            elif panel["title"] in empty and r["data"]["result"]:
                empty.discard(panel["title"])
    if bad or not empty:
        break
    time.sleep(0.2)
n = sum(len(p["targets"]) for p in dash["panels"])
print(f"   {len(dash['panels'])} panels, {n} queries; errors: {len(bad)}; core panels without data: {sorted(empty)}")
for b in bad:
    print("   query error:", b)
sys.exit(1 if bad or empty else 0)
PYEOF
echo "== prometheus: PASS in ${SECONDS} s"
