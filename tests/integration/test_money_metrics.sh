#!/usr/bin/env bash
# test_money_metrics.sh BIN_DIR: leadflow-project's
# leadflow_sla_breaches_open{owner} against funnel.open_sla_breaches, on
# the real dev stack:
#   numbers   after a run, per owner, the gauge equals the view
#   no wait   a scrape answers at once while the view cannot be read (its
#             table locked), and shows the last values read
#   refresh   new breaches show within the 30 s refresh
#   pipeline  the projector fills funnel.leads' opportunity columns from
#             the latest applied qualified event, which funnel.pipeline sums
set -euo pipefail
BIN=$(cd "${1:?usage: test_money_metrics.sh BIN_DIR}" && pwd)
. "$(dirname "$0")/lib.sh"

command -v curl >/dev/null || fail "curl is needed (Debian package curl)"
lf_stack_up
T=slametrics
lf_broker "topic $T 2" >/dev/null
lf_newdb slametrics
export PGDATABASE=slametrics

q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }
scrape() { curl -sf --max-time 2 "http://127.0.0.1:$PORT/metrics"; }
# The gauge's samples as "owner count" lines, sorted.
gauge() {
    sed -n 's/^leadflow_sla_breaches_open{owner="\(.*\)"} \([0-9]*\)$/\1 \2/p' \
        <<<"$1" | awk '$NF != 0' | sort
}
view() {
    q "SELECT coalesce(owner, '') || ' ' || count(*) FROM
       funnel.open_sla_breaches GROUP BY owner" | sort
}
LF_WAIT_LOGS=("$LF_TMP/project.err")
gen() { # SEED PREFIX
    "$BIN/leadflow-gen" --leads 150 --seed "$1" --prefix "$2" \
        --start 2024-01-01 --days 30 --produce -b "$LEADFLOW_BROKERS" \
        -t $T -q || fail "leadflow-gen $1 failed"
}
projected() { [ "$(q "SELECT count(*) FROM funnel.events")" = "$1" ]; }

gen 3 A-
# With the failover conninfo RELIABILITY.md recommends: the watcher's
# read-only connection must still find the primary. -q: the port it picked
# is said all the same (a notice).
"${LF_PROJECT[@]}" -q -t $T -g g-sla --metrics 127.0.0.1:0 \
    -d "dbname=slametrics target_session_attrs=read-write" \
    2>"$LF_TMP/project.err" &
pid=$!
LF_PIDS+=("$pid")
port_known() {
    PORT=$(sed -n 's/.*msg="serving metrics".* port=\([0-9]*\).*/\1/p' \
        "$LF_TMP/project.err" | head -1)
    [ -n "$PORT" ]
}
wait_for 20 "no \"serving metrics\" line" port_known
events() { psql -X -At -c "SELECT count(*) FROM funnel.events" 2>/dev/null || echo 0; }
# Everything projected: the count stops moving.
settled() {
    local a b
    a=$(events)
    sleep 1
    b=$(events)
    [ "$a" = "$b" ] && [ "$a" != 0 ]
}
wait_for 60 "the projection never settled" settled
want=$(view)
[ -n "$want" ] || fail "the workload made no open SLA breach"
# The watcher's first read may have been before the last batch: at most
# one refresh later the gauge agrees.
same() { [ "$(gauge "$(scrape)")" = "$want" ]; }
wait_for 40 "gauge $(gauge "$(scrape)" | tr '\n' ';') != view $(tr '\n' ';' <<<"$want")" same
[ "$(grep -c '^# TYPE leadflow_sla_breaches_open gauge' <<<"$(scrape)")" = 1 ] ||
    fail "no TYPE line for leadflow_sla_breaches_open"
echo "ok   numbers: per owner, the gauge equals funnel.open_sla_breaches ($(wc -l <<<"$want") owners)"

# ---- a scrape never waits on PostgreSQL --------------------------------
psql -X -q -c "BEGIN; LOCK TABLE funnel.stage_history IN ACCESS EXCLUSIVE
    MODE; SELECT pg_sleep(40); COMMIT;" >/dev/null 2>&1 &
locker=$!
LF_PIDS+=("$locker")
sleep 1
for i in 1 2 3; do
    start=$(date +%s%N)
    m=$(scrape) || fail "/metrics did not answer while the view is locked"
    ms=$((($(date +%s%N) - start) / 1000000))
    [ "$ms" -lt 1000 ] || fail "a scrape took $ms ms while the view is locked"
    [ "$(gauge "$m")" = "$want" ] || fail "the last values were not kept"
    sleep 1
done
kill "$locker" 2>/dev/null || true
wait "$locker" 2>/dev/null || true
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE
   '%pg_sleep(40)%' AND pid <> pg_backend_pid()" >/dev/null
echo "ok   no wait: scrapes answer in under 1 s with the view locked, last values kept"

# ---- new breaches show at the next refresh -----------------------------
before=$(q "SELECT count(*) FROM funnel.open_sla_breaches")
gen 4 B-
wait_for 60 "the second workload never settled" settled
want=$(view)
[ "$(q "SELECT count(*) FROM funnel.open_sla_breaches")" != "$before" ] ||
    fail "the second workload made no new breach"
wait_for 40 "the gauge never caught up with the new breaches" same
echo "ok   refresh: new breaches show within the 30 s refresh"

# ---- the projector's opportunity columns ---------------------------------
# The latest applied qualified event: the one that opened the lead's latest
# sales_qualified visit.
bad=$(q "SELECT count(*) FROM funnel.leads l
    LEFT JOIN LATERAL (SELECT e.payload FROM funnel.stage_history h
        JOIN funnel.events e ON e.event_id = h.entered_by
        WHERE h.lead_id = l.lead_id AND h.stage = 'sales_qualified'
        ORDER BY h.visit DESC LIMIT 1) q ON true
    WHERE l.opportunity_id IS DISTINCT FROM q.payload ->> 'opportunity_id'
       OR l.opportunity_amount_minor IS DISTINCT FROM
          (q.payload ->> 'amount_minor')::bigint
       OR l.opportunity_currency IS DISTINCT FROM q.payload ->> 'currency'")
[ "$bad" = 0 ] || fail "$bad leads' opportunity columns differ from their latest qualified event"
[ "$(q "SELECT count(*) FROM funnel.leads WHERE opportunity_id IS NOT NULL")" -gt 0 ] ||
    fail "no lead has an opportunity"
[ "$(q "SELECT coalesce(sum(opportunity_amount_minor), 0) FROM funnel.leads
        WHERE stage = 'sales_qualified'")" = \
  "$(q "SELECT coalesce(sum(open_amount_minor), 0) FROM funnel.pipeline
        WHERE channel IS NULL")" ] || fail "funnel.pipeline's open amount differs"
echo "ok   pipeline: opportunity columns from the latest qualified event"

kill -TERM "$pid"
wait "$pid" || fail "leadflow-project exited $? on SIGTERM"
echo "ok   test_money_metrics"
