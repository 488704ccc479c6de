#!/usr/bin/env bash
# demo.sh BIN_DIR: the whole pipeline on the embedded stack, in about a
# minute: dev stack up, leadflow-gen | leadflow-emit into Kafka,
# leadflow-project until idle, a funnel summary from SQL, the HTML report,
# then everything stopped and removed.
#
#   LEADFLOW_DEMO_LEADS=N   leads to generate (default 3000)
#   LEADFLOW_DEMO_KEEP=1    keep the stack running to explore with psql;
#                           the script prints how to stop it
set -euo pipefail
BIN=$(cd "${1:-build/bin}" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
LEADS=${LEADFLOW_DEMO_LEADS:-3000}
KEEP=${LEADFLOW_DEMO_KEEP:-0}
STATE=$(mktemp -d /tmp/leadflow-demo.XXXXXX)
REPORT=$SRC/build/leadflow-report.html

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
    if [ "$KEEP" != 1 ]; then
        LEADFLOW_BIN=$BIN "$SRC/tools/devstack.sh" stop "$STATE" \
            >/dev/null 2>&1 || true
        rm -rf "$STATE"
    fi
}
trap cleanup EXIT

start=$(date +%s)
say "Starting the dev stack (leadflow-devbroker + a throwaway PostgreSQL)"
rmdir "$STATE"
eval "$(LEADFLOW_BIN=$BIN LEADFLOW_BROKER_ARGS="--topic lead-events:8" \
    "$SRC/tools/devstack.sh" start "$STATE")"

say "Generating $LEADS leads and sending their events: leadflow-gen | leadflow-emit"
"$BIN/leadflow-gen" --leads "$LEADS" --seed 42 --anomalies 0.02 \
    --merges 0.02 --voids 0.01 --erasures 0.002 |
    "$BIN/leadflow-emit" -b "$LEADFLOW_BROKERS" -t lead-events \
        --rejects "$STATE/rejects.jsonl"

say "Projecting into PostgreSQL: leadflow-project (until idle for 3 s)"
"$BIN/leadflow-project" -b "$LEADFLOW_BROKERS" -t lead-events \
    -X session.timeout.ms=6000 --idle-exit 3 -q

say "The funnel both teams now share"
psql -X -q -P footer=off <<'SQL'
\echo 'Leads per current stage'
SELECT stage, count(*) AS leads,
       round(100.0 * count(*) / sum(count(*)) OVER (), 1) AS pct
FROM funnel.leads GROUP BY stage
ORDER BY array_position(ARRAY['captured','marketing_qualified','handed_off',
  'sales_accepted','sales_qualified','won','lost','nurture','disqualified'],
  stage);

\echo 'Stage-to-stage conversion (leads that ever reached each stage)'
WITH reached AS (
  SELECT count(*) AS captured,
         count(first_marketing_qualified_at) AS marketing_qualified,
         count(first_handed_off_at) AS handed_off,
         count(first_sales_accepted_at) AS sales_accepted,
         count(first_sales_qualified_at) AS sales_qualified,
         count(won_at) AS won
  FROM funnel.leads)
SELECT step, from_n AS entered, to_n AS reached_next,
       round(100.0 * to_n / nullif(from_n, 0), 1) AS rate_pct
FROM reached, LATERAL (VALUES
  (1, 'captured -> marketing_qualified', captured, marketing_qualified),
  (2, 'marketing_qualified -> handed_off', marketing_qualified, handed_off),
  (3, 'handed_off -> sales_accepted', handed_off, sales_accepted),
  (4, 'sales_accepted -> sales_qualified', sales_accepted, sales_qualified),
  (5, 'sales_qualified -> won', sales_qualified, won)) AS v(n, step, from_n, to_n)
ORDER BY n;

\echo 'Median time in stage (finished visits)'
SELECT stage, count(*) AS visits,
       justify_interval(date_trunc('minute', percentile_cont(0.5)
         WITHIN GROUP (ORDER BY exited_at - entered_at))) AS median
FROM funnel.stage_history WHERE exited_at IS NOT NULL
GROUP BY stage ORDER BY median DESC;

\echo 'Identity: merged leads, voided events, people erased (keyed pseudonyms)'
SELECT (SELECT count(*) FROM funnel.merges) AS merges,
       (SELECT count(*) FROM funnel.voided_events) AS voided,
       (SELECT count(*) FROM funnel.erasures) AS erasures;

\echo 'Kept but not fitting the state machine'
SELECT kind, count(*) AS anomalies FROM funnel.anomalies GROUP BY kind
ORDER BY kind;
SQL

if [ -x "$BIN/leadflow-report" ]; then
    say "HTML report"
    "$BIN/leadflow-report" --html "$REPORT" >/dev/null
    echo "written: $REPORT"
fi

say "Done in $(($(date +%s) - start)) s"
if [ "$KEEP" = 1 ]; then
    echo "The stack keeps running. Explore with:"
    echo "  psql -h $PGHOST -p $PGPORT -U $PGUSER $PGDATABASE"
    echo "Stop it with:"
    echo "  LEADFLOW_BIN=$BIN $SRC/tools/devstack.sh stop $STATE"
else
    echo "Everything is stopped and removed. To keep the stack and explore with"
    echo "psql (the command is printed then):  make demo LEADFLOW_DEMO_KEEP=1"
fi
