# lib.sh: shared helpers for the integration tests (source it).
#   lf_stack_up              start devbroker + throwaway PostgreSQL, export
#                            LEADFLOW_BROKERS, PG*, LEADFLOW_DEVSTACK; stopped
#                            on exit
#   lf_broker CMD            a devbroker fault command ("down 1", "topic t 4")
#   lf_checksums [SCHEMA]    one line per funnel table: name, rows, md5 of its
#                            content without wall-clock columns and Kafka
#                            coordinates (so two streams of the same events
#                            compare equal)
#   "${LF_PROJECT[@]}" ARGS  leadflow-project with test-friendly settings; an
#                            array, not a function, so that "... &" gives $!
#                            the program's own pid (for kill -9)
#   fail MSG                 print and exit 1
# Needs $1 of the test = the bin dir; sets BIN and SRC.

BIN=${BIN:-${LEADFLOW_BIN:-$(pwd)/build/bin}}
SRC=${LEADFLOW_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
LF_TMP=$(mktemp -d /tmp/leadflow-test.XXXXXX)
LF_PIDS=()

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# wait_for SECONDS WHAT CMD...: until CMD succeeds, or fail saying WHAT,
# after the last lines of the logs named in LF_WAIT_LOGS.
LF_WAIT_LOGS=()
wait_for() {
    local t=$1 what=$2 i
    shift 2
    for i in $(seq 1 $((t * 5))); do
        "$@" && return 0
        sleep 0.2
    done
    [ ${#LF_WAIT_LOGS[@]} = 0 ] || tail -n 20 "${LF_WAIT_LOGS[@]}" >&2 || true
    fail "$what (after $t s)"
}

lf_cleanup() {
    local pid
    for pid in "${LF_PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    if [ -n "${LEADFLOW_DEVSTACK:-}" ] && [ -d "$LEADFLOW_DEVSTACK" ]; then
        LEADFLOW_BIN=$BIN "$SRC/tools/devstack.sh" stop "$LEADFLOW_DEVSTACK" \
            >/dev/null 2>&1 || true
    fi
    rm -rf "$LF_TMP"
}
trap lf_cleanup EXIT

lf_stack_up() {
    local out
    out=$(LEADFLOW_BIN=$BIN "$SRC/tools/devstack.sh" start "$LF_TMP/stack" \
        2>"$LF_TMP/stack.err") || {
        cat "$LF_TMP/stack.err" >&2
        fail "dev stack did not start"
    }
    eval "$out"
}

lf_broker() {
    LEADFLOW_BIN=$BIN "$SRC/tools/devstack.sh" cmd "$LEADFLOW_DEVSTACK" "$*"
}

# Group joins on the mock cluster wait out the previous member's session
# timeout; 6 s is the smallest the mock accepts.
LF_PROJECT=("$BIN/leadflow-project" -X session.timeout.ms=6000
    -X heartbeat.interval.ms=500)

lf_checksums() {
    local s=${1:-funnel}
    psql -X -At -v ON_ERROR_STOP=1 <<SQL
SELECT 'events', count(*), md5(coalesce(string_agg(md5(concat_ws('|',
    event_id, lead_id, type, occurred_at, source, actor, payload::text)), ','
    ORDER BY event_id), '')) FROM $s.events;
SELECT 'leads', count(*), md5(coalesce(string_agg(md5(concat_ws('|',
    lead_id, stage, stage_entered_at, cycle, score, score_model, owner,
    channel, campaign, captured_at, first_marketing_qualified_at,
    first_handed_off_at, first_sales_accepted_at, first_sales_qualified_at,
    won_at, won_amount_minor, currency, lost_at, disqualified_at,
    last_event_at, last_event_id, stage_entered_by, visits, opportunity_id,
    opportunity_amount_minor, opportunity_currency)), ','
    ORDER BY lead_id), '')) FROM $s.leads;
SELECT 'stage_history', count(*), md5(coalesce(string_agg(md5(concat_ws('|',
    lead_id, visit, cycle, stage, entered_at, exited_at, entered_by,
    exit_reason)), ',' ORDER BY lead_id, visit), '')) FROM $s.stage_history;
SELECT 'anomalies', count(*), md5(coalesce(string_agg(md5(concat_ws('|',
    event_id, lead_id, kind, reason)), ',' ORDER BY event_id, kind, reason),
    '')) FROM $s.anomalies WHERE kind <> 'conflict';
SELECT 'dead_letters', count(*), md5(coalesce(string_agg(md5(concat_ws('|',
    key, value, error)), ',' ORDER BY value, key, error), ''))
    FROM $s.dead_letters;
SQL
}

PGBIN_DIR=${PGBIN_DIR:-/usr/lib/postgresql/15/bin}
lf_as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
# Crash PostgreSQL (no shutdown checkpoint: the WAL has to carry it).
lf_pg_crash() {
    lf_as_pg "$PGBIN_DIR/pg_ctl" -D "$LEADFLOW_PGDATA/data" -m immediate \
        -w -t 20 stop >/dev/null
}
lf_pg_start() {
    lf_as_pg "$PGBIN_DIR/pg_ctl" -D "$LEADFLOW_PGDATA/data" \
        -l "$LEADFLOW_PGDATA/postgres.log" -w -t 30 start >/dev/null
}

# A fresh database for one projection; prints nothing.
lf_newdb() {
    psql -X -q -d postgres -c "CREATE DATABASE \"$1\"" >/dev/null
}

# Raw messages into Kafka: lines "KEYHEX VALUEHEX" ("-" for null), through
# the independent python3-kafka client.
lf_send_raw() { # TOPIC < lines
    /usr/bin/python3 "$SRC/tests/integration/lf_send.py" "$1"
}

# The same in the foreground (not for kill -9: $! would be a subshell).
lf_project() { "${LF_PROJECT[@]}" "$@"; }
