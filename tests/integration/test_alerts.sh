#!/usr/bin/env bash
# test_alerts.sh BIN_DIR: the monitoring files operators load as they are,
# checked without a running stack (test_prometheus.sh runs them for real):
#   rules      `promtool check rules deploy/prometheus/alerts.yml`, and the
#              unit tests `promtool test rules alerts_test.yml` (each rule
#              fires on its series and stays quiet on the others)
#   config     deploy/prometheus/prometheus.yml (the compose file's) passes
#              `promtool check config` and loads the rules
#   names      every leadflow_* name the rules and the Grafana dashboard
#              query is one leadflow-project exports (common/ops/lf_metrics.c)
#   dashboard  deploy/grafana/leadflow.json parses, every panel queries
#              through the templated datasource, and it shows lag per
#              partition, events by type, the batch duration histogram, dead
#              letters, anomalies and the database's state
set -euo pipefail
BIN=$(cd "${1:?usage: test_alerts.sh BIN_DIR}" && pwd)
. "$(dirname "$0")/lib.sh"

command -v promtool >/dev/null ||
    fail "promtool is needed (Debian package prometheus)"
RULES=$SRC/deploy/prometheus/alerts.yml

promtool check rules "$RULES" >"$LF_TMP/check.out" 2>&1 || {
    cat "$LF_TMP/check.out" >&2
    fail "promtool check rules $RULES"
}
echo "ok   rules: $(grep -o '[0-9]* rules found' "$LF_TMP/check.out")"
(cd "$SRC/deploy/prometheus" && promtool test rules alerts_test.yml) \
    >"$LF_TMP/test.out" 2>&1 || {
    cat "$LF_TMP/test.out" >&2
    fail "promtool test rules alerts_test.yml"
}
echo "ok   rules: promtool test rules alerts_test.yml"

# promtool check config resolves rule_files relative to the config file.
promtool check config "$SRC/deploy/prometheus/prometheus.yml" \
    >"$LF_TMP/config.out" 2>&1 || {
    cat "$LF_TMP/config.out" >&2
    fail "promtool check config deploy/prometheus/prometheus.yml"
}
grep -q 'alerts.yml' "$LF_TMP/config.out" ||
    fail "deploy/prometheus/prometheus.yml does not load alerts.yml"
echo "ok   config: deploy/prometheus/prometheus.yml"

python3 - "$SRC" <<'PY' || fail "names or dashboard (above)"
import json, re, sys
import yaml

src = sys.argv[1]
with open(f"{src}/common/ops/lf_metrics.c", encoding="utf-8") as f:
    exported = set(re.findall(r'"(leadflow_[a-z0-9_]+)', f.read()))
assert "leadflow_db_up" in exported, sorted(exported)
errors = []


def names(expr):
    return set(re.findall(r"\bleadflow_[a-z0-9_]+", expr))


def unknown(where, expr):
    for n in sorted(names(expr) - exported):
        errors.append(f"{where}: {n} is not exported by leadflow-project")


with open(f"{src}/deploy/prometheus/alerts.yml", encoding="utf-8") as f:
    rules = [r for g in yaml.safe_load(f)["groups"] for r in g["rules"]]
for r in rules:
    unknown(f"alert {r['alert']}", r["expr"])
    for k in ("severity",):
        if k not in r.get("labels", {}):
            errors.append(f"alert {r['alert']}: no {k} label")
    for k in ("summary", "description"):
        if not r.get("annotations", {}).get(k):
            errors.append(f"alert {r['alert']}: no {k} annotation")
alerts = {r["alert"] for r in rules}
for a in ("LeadflowConsumerLagGrowing", "LeadflowNoCommitWithLag",
          "LeadflowDatabaseDown", "LeadflowDeadLettersArriving",
          "LeadflowAnomalyRateJump", "LeadflowSlaBreaches"):
    if a not in alerts:
        errors.append(f"no alert {a}")

with open(f"{src}/deploy/grafana/leadflow.json", encoding="utf-8") as f:
    dash = json.load(f)
variables = {v["name"]: v for v in dash["templating"]["list"]}
ds = variables.get("datasource", {})
if ds.get("type") != "datasource" or ds.get("query") != "prometheus":
    errors.append("no templated Prometheus datasource variable")
if not dash.get("uid") or not dash.get("title"):
    errors.append("the dashboard needs a uid and a title")
panels = [p for p in dash["panels"] if p["type"] != "row"]
ids = [p["id"] for p in dash["panels"]]
if len(ids) != len(set(ids)):
    errors.append(f"panel ids repeat: {ids}")
used = {}
for p in panels:
    if p.get("datasource", {}).get("uid") != "${datasource}":
        errors.append(f"panel {p['title']}: not on ${{datasource}}")
    if not p.get("targets"):
        errors.append(f"panel {p['title']}: no query")
    for t in p.get("targets", []):
        if t.get("datasource", {}).get("uid") != "${datasource}":
            errors.append(f"panel {p['title']}: a query not on ${{datasource}}")
        unknown(f"panel {p['title']}", t["expr"])
        for n in names(t["expr"]):
            used.setdefault(n, []).append((p["type"], t["expr"]))
for v in variables.values():
    if v["type"] == "query":
        unknown(f"variable {v['name']}", v["definition"])


def shown(metric, pred=lambda ptype, expr: True):
    return any(pred(ptype, e) for ptype, e in used.get(metric, []))


need = {
    "lag per partition": shown(
        "leadflow_consumer_lag", lambda t, e: "partition" in e),
    "events by type": shown(
        "leadflow_events_projected_total", lambda t, e: "by (type)" in e),
    "batch duration histogram": shown(
        "leadflow_batch_duration_seconds_bucket",
        lambda t, e: t == "heatmap" or "histogram_quantile" in e),
    "dead letters": shown("leadflow_dead_letters_total"),
    "anomalies": shown("leadflow_anomalies_total"),
    "database up": shown("leadflow_db_up"),
}
errors += [f"dashboard: no panel for {k}" for k, ok in need.items() if not ok]
for e in errors:
    print("  " + e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY
echo "ok   names: the rules and the dashboard query only exported metrics"
echo "ok   dashboard: $(python3 -c 'import json,sys
print(len([p for p in json.load(open(sys.argv[1]))["panels"]
           if p["type"] != "row"]))' "$SRC/deploy/grafana/leadflow.json") panels"
