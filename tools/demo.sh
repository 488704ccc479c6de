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
\echo 'Leads per current stage (funnel.stage_counts, every channel)'
SELECT stage, leads, round(100 * share, 1) AS pct
FROM funnel.stage_counts WHERE channel IS NULL ORDER BY stage_order;

\echo 'Stage-to-stage conversion (funnel.conversion: of the leads that reached a stage, those that reached the next after it)'
SELECT from_stage || ' -> ' || to_stage AS stages, entered,
       reached AS reached_next, round(100 * rate, 1) AS rate_pct
FROM funnel.conversion
WHERE capture_month IS NULL AND channel IS NULL ORDER BY step;

\echo 'Time in stage, hours (funnel.time_in_stage: visits that ended)'
SELECT stage, finished_visits, median_hours, p90_hours, current_visits
FROM funnel.time_in_stage ORDER BY stage_order;

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
    echo "or give a shell its settings (LEADFLOW_BROKERS, PGHOST, ...) for"
    echo "leadflow-emit, -project, -replay and -report:"
    echo "  eval \"\$($SRC/tools/devstack.sh env $STATE)\""
    echo "Stop it with:"
    echo "  LEADFLOW_BIN=$BIN $SRC/tools/devstack.sh stop $STATE"
else
    echo "Everything is stopped and removed. To keep the stack and explore with"
    echo "psql (the command is printed then):  make demo LEADFLOW_DEMO_KEEP=1"
fi
