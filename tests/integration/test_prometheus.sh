#!/usr/bin/env bash
# test_prometheus.sh BIN_DIR: a real Prometheus (Debian's /usr/bin/prometheus,
# its own config and data directory, loopback only) scrapes a running
# leadflow-project on the dev stack every second and evaluates
# deploy/prometheus/alerts.yml; everything is checked through Prometheus'
# HTTP API (/api/v1/query, /api/v1/alerts):
#   series     the events counters equal what the projector committed (the
#              funnel tables), per type; messages, lag, offsets, db_up, up
#   dashboard  every query of deploy/grafana/leadflow.json (its variables
#              set to "all") runs and returns series; every leadflow_* name
#              it or the rules use is among the names Prometheus scraped
#   healthy    no alert pending or firing
#   dead       two undecodable messages: LeadflowDeadLettersArriving fires
#   db down    PostgreSQL crashed: LeadflowDatabaseDown fires; restarted:
#              leadflow_db_up 1 again and the alert resolves
# The rules are loaded from a copy whose `for:` durations are cut to 2 s
# (sed), so that the database alert fires within seconds; the expressions
# are the shipped ones.
set -euo pipefail
BIN=$(cd "${1:?usage: test_prometheus.sh BIN_DIR}" && pwd)
. "$(dirname "$0")/lib.sh"

PROMETHEUS=${PROMETHEUS:-/usr/bin/prometheus}
[ -x "$PROMETHEUS" ] || fail "$PROMETHEUS is needed (Debian package prometheus)"
command -v curl >/dev/null || fail "curl is needed (Debian package curl)"
started=$(date +%s)

LF_WAIT_LOGS=("$LF_TMP/project.err" "$LF_TMP/prometheus.log")
q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }

lf_stack_up
echo "stack: brokers=$LEADFLOW_BROKERS pg=$PGHOST:$PGPORT"
T=prom
lf_broker "topic $T 4" >/dev/null
lf_newdb prom
export PGDATABASE=prom

# ---- the projector ---------------------------------------------------
"${LF_PROJECT[@]}" -t $T -g g-prom --metrics 127.0.0.1:0 --batch 50 \
    2>"$LF_TMP/project.err" &
LF_PIDS+=($!)
port_known() {
    MPORT=$(sed -n 's/.*msg="serving metrics".* port=\([0-9]*\).*/\1/p' \
        "$LF_TMP/project.err" | head -1)
    [ -n "$MPORT" ]
}
wait_for 10 "no \"serving metrics\" line" port_known
"$BIN/leadflow-gen" --leads 200 --seed 11 --prefix P- --anomalies 0.2 \
    -t $T --produce -qq >/dev/null 2>&1 || fail "leadflow-gen failed"
sent=$("$BIN/leadflow-gen" --leads 200 --seed 11 --prefix P- \
    --anomalies 0.2 -t $T -qq 2>/dev/null | wc -l)

# ---- Prometheus ------------------------------------------------------
mkdir -p "$LF_TMP/prom"
sed -E 's/^([[:space:]]*for:).*/\1 2s/' "$SRC/deploy/prometheus/alerts.yml" \
    >"$LF_TMP/prom/alerts.yml"
cat >"$LF_TMP/prom/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [alerts.yml]
scrape_configs:
  - job_name: leadflow
    static_configs:
      - targets: ["127.0.0.1:$MPORT"]
EOF
free_port() {
    python3 -c 'import socket; s = socket.socket()
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
api() { # PATH [curl args]: the JSON answer of Prometheus' HTTP API
    curl -sf --max-time 5 -G "http://127.0.0.1:$PPORT$1" "${@:2}"
}
ready() { curl -sf --max-time 2 "http://127.0.0.1:$PPORT/-/ready" >/dev/null; }
# A port found free may be taken before Prometheus binds it: try again.
for attempt in 1 2 3; do
    PPORT=$(free_port)
    "$PROMETHEUS" --config.file="$LF_TMP/prom/prometheus.yml" \
        --storage.tsdb.path="$LF_TMP/prom/data" \
        --web.listen-address="127.0.0.1:$PPORT" \
        >"$LF_TMP/prometheus.log" 2>&1 &
    ppid=$!
    LF_PIDS+=("$ppid")
    for i in $(seq 1 100); do
        ready && break
        kill -0 "$ppid" 2>/dev/null || break
        sleep 0.2
    done
    ready && break
    kill -9 "$ppid" 2>/dev/null || true
    [ "$attempt" = 3 ] && {
        tail -n 20 "$LF_TMP/prometheus.log" >&2
        fail "Prometheus did not start"
    }
done
echo "ok   prometheus $("$PROMETHEUS" --version 2>&1 | awk 'NR==1{print $3}')" \
    "on 127.0.0.1:$PPORT scraping 127.0.0.1:$MPORT"

# value EXPR: the sum of an instant query's sample values, "none" if the
# result is empty. Integers print as such.
value() {
    api /api/v1/query --data-urlencode "query=$1" | python3 -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
if not r:
    print("none")
else:
    v = sum(float(s["value"][1]) for s in r)
    print(int(v) if v == int(v) else v)'
}
# alert_state NAME: firing, pending or none, from /api/v1/alerts.
alert_state() {
    api /api/v1/alerts | python3 -c '
import json, sys
states = {a["state"] for a in json.load(sys.stdin)["data"]["alerts"]
          if a["labels"]["alertname"] == sys.argv[1]}
print("firing" if "firing" in states else "pending" if states else "none")' "$1"
}
is() { [ "$(value "$1")" = "$2" ]; }
fires() { [ "$(alert_state "$1")" = firing ]; }
gone() { [ "$(alert_state "$1")" = none ]; }

# ---- series ----------------------------------------------------------
wait_for 60 "leadflow_messages_total never $sent in Prometheus" \
    is 'leadflow_messages_total{job="leadflow"}' "$sent"
wait_for 20 "lag never 0 in Prometheus" is 'sum(leadflow_consumer_lag)' 0
check() { # WHAT PROMETHEUS_VALUE TABLE_VALUE
    [ "$2" = "$3" ] || fail "$1: Prometheus says $2, the tables $3"
}
check "events" "$(value 'sum(leadflow_events_projected_total)')" \
    "$(q "SELECT count(*) FROM funnel.events")"
check "events = sent" "$(value 'sum(leadflow_events_projected_total)')" "$sent"
for type in $(q "SELECT DISTINCT type FROM funnel.events ORDER BY 1"); do
    check "events $type" \
        "$(value "leadflow_events_projected_total{type=\"$type\"}")" \
        "$(q "SELECT count(*) FROM funnel.events WHERE type = '$type'")"
done
check "stored offsets" "$(value 'sum(leadflow_consumer_offset)')" \
    "$(q "SELECT sum(next_offset) FROM funnel.offsets WHERE topic = '$T'")"
check "partitions with a lag series" "$(value 'count(leadflow_consumer_lag)')" 4
check "db_up" "$(value leadflow_db_up)" 1
check "up" "$(value 'up{job="leadflow"}')" 1
echo "ok   series: $sent events in Prometheus, per type as in funnel.events"

# ---- the dashboard's queries -------------------------------------------
dashboard_queries() {
    python3 - "$SRC/deploy/grafana/leadflow.json" "$PPORT" <<'PY'
import json, re, sys, urllib.parse, urllib.request

import yaml

dash = json.load(open(sys.argv[1], encoding="utf-8"))
base = f"http://127.0.0.1:{sys.argv[2]}/api/v1/"


def get(path, **params):
    url = base + path + "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def expand(expr):
    return (expr.replace("$__rate_interval", "1m")
            .replace("$job", ".*").replace("$instance", ".*"))


scraped = set(get("label/__name__/values")["data"])
exprs = [(p["title"], t["expr"]) for p in dash["panels"]
         for t in p.get("targets", [])]
exprs += [("variable " + v["name"],
           re.sub(r"label_values\((.*), *\w+\)", r"\1", v["definition"]))
          for v in dash["templating"]["list"] if v["type"] == "query"]
bad = []
for title, expr in exprs:
    res = get("query", query=expand(expr))
    if res["status"] != "success" or not res["data"]["result"]:
        bad.append(f"{title}: {expand(expr)}: {res}")
    for n in re.findall(r"\bleadflow_[a-z0-9_]+", expr):
        if n not in scraped:
            bad.append(f"{title}: {n} was not scraped")
rules = yaml.safe_load(open(sys.argv[1].replace(
    "grafana/leadflow.json", "prometheus/alerts.yml"), encoding="utf-8"))
rules = " ".join(r["expr"] for g in rules["groups"] for r in g["rules"])
# A gauge with nothing to report (leadflow_sla_breaches_open while no
# handoff is past due) has no series, but its HELP and TYPE lines were
# scraped: Prometheus keeps them as metadata.
known = scraped | set(get("metadata")["data"])
for n in set(re.findall(r"\bleadflow_[a-z0-9_]+", rules)) - known:
    bad.append(f"alerts.yml: {n} was not scraped")
for b in bad:
    print("  " + b, file=sys.stderr)
if bad:
    sys.exit(1)
print(f"ok   dashboard: {len(exprs)} queries answer with series")
PY
}
# A rate() answers once its window holds two scrapes: try for a while.
for i in $(seq 1 10); do
    dashboard_queries 2>"$LF_TMP/dashboard.err" && break
    [ "$i" = 10 ] && {
        cat "$LF_TMP/dashboard.err" >&2
        fail "dashboard queries (above)"
    }
    sleep 1
done

# ---- healthy: nothing fires --------------------------------------------
sleep 3 # longer than the shortened for: 2s
firing=$(api /api/v1/alerts | python3 -c '
import json, sys
print(" ".join(sorted(a["labels"]["alertname"] + "/" + a["state"]
               for a in json.load(sys.stdin)["data"]["alerts"])))')
[ -z "$firing" ] || fail "alerts on a healthy projector: $firing"
echo "ok   healthy: no alert pending or firing"

# ---- dead letters arriving ---------------------------------------------
printf '%s\n' "6c2d31 00" "6c2d32 6e6f7420617672" | lf_send_raw $T >/dev/null
wait_for 30 "LeadflowDeadLettersArriving never fired" \
    fires LeadflowDeadLettersArriving
wait_for 10 "leadflow_dead_letters_total never 2 in Prometheus" \
    is leadflow_dead_letters_total 2
check "dead letters" 2 "$(q "SELECT count(*) FROM funnel.dead_letters")"
echo "ok   dead: LeadflowDeadLettersArriving fires after 2 dead letters"

# ---- the database stopped ------------------------------------------------
gone LeadflowDatabaseDown || fail "LeadflowDatabaseDown before the stop"
lf_pg_crash
wait_for 30 "leadflow_db_up never 0 in Prometheus" is leadflow_db_up 0
wait_for 30 "LeadflowDatabaseDown never fired" fires LeadflowDatabaseDown
echo "ok   db down: LeadflowDatabaseDown fires with PostgreSQL stopped"
lf_pg_start
wait_for 40 "leadflow_db_up never 1 again" is leadflow_db_up 1
wait_for 20 "LeadflowDatabaseDown never resolved" gone LeadflowDatabaseDown
echo "ok   db down: resolved once PostgreSQL is back" \
    "($(($(date +%s) - started)) s in all)"
