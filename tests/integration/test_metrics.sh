#!/usr/bin/env bash
# test_metrics.sh BIN_DIR: leadflow-project --metrics against the real dev
# stack. Scrapes /metrics with curl during a run and checks the numbers
# against the funnel tables, and /healthz through PostgreSQL outages:
#   start      PostgreSQL down: 503; back up, partitions assigned: 200
#   numbers    events by type, dead letters, anomalies, batches (and the
#              duration histogram), offsets and lag match the tables
#   outage     PostgreSQL crashed while idle: 503; events produced meanwhile
#              show as lag and retries; restarted: 200, lag back to 0
#   errors     a malformed or busy address fails at start (78, 69)
set -euo pipefail
BIN=$(cd "${1:?usage: test_metrics.sh BIN_DIR}" && pwd)
. "$(dirname "$0")/lib.sh"

command -v curl >/dev/null || fail "curl is needed (Debian package curl)"
lf_stack_up
echo "stack: brokers=$LEADFLOW_BROKERS pg=$PGHOST:$PGPORT"
T=metrics
lf_broker "topic $T 4" >/dev/null
lf_newdb metrics
export PGDATABASE=metrics

q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }
scrape() { curl -sf --max-time 5 "http://127.0.0.1:$PORT/metrics"; }
health() {
    curl -s --max-time 5 -o /dev/null -w '%{http_code}' \
        "http://127.0.0.1:$PORT/healthz" || true
}
# metric TEXT NAME [LABEL_FILTER]: the sum of the samples of NAME (exact
# name, any labels containing LABEL_FILTER); "none" if there is no sample.
metric() {
    awk -v n="$2" -v f="${3:-}" '
        /^#/ { next }
        { name = $1; sub(/\{.*/, "", name) }
        name == n && index($1, f) { s += $2; found = 1 }
        END { if (found) printf "%.0f\n", s; else print "none" }' <<<"$1"
}
LF_WAIT_LOGS=("$LF_TMP/project.err")
health_is() { [ "$(health)" = "$1" ]; }

# ---- start: PostgreSQL down, then up ---------------------------------
lf_pg_crash
"${LF_PROJECT[@]}" -t $T -g g-metrics --metrics 127.0.0.1:0 --batch 50 \
    2>"$LF_TMP/project.err" &
pid=$!
LF_PIDS+=("$pid")
port_known() {
    PORT=$(sed -n 's/.*msg="serving metrics".* port=\([0-9]*\).*/\1/p' \
        "$LF_TMP/project.err" | head -1)
    [ -n "$PORT" ]
}
wait_for 10 "no \"serving metrics\" line" port_known
code=$(health)
[ "$code" = 503 ] || fail "/healthz with PostgreSQL down: $code, want 503"
m=$(scrape) || fail "/metrics did not answer while PostgreSQL is down"
[ "$(metric "$m" leadflow_db_up)" = 0 ] || fail "db_up should be 0"
[ "$(metric "$m" leadflow_assigned_partitions)" = 0 ] ||
    fail "no partitions should be assigned before the database is up"
echo "ok   start: 503 while PostgreSQL is down"
lf_pg_start
wait_for 40 "/healthz never 200 after PostgreSQL came back" health_is 200
echo "ok   start: 200 once PostgreSQL is up and partitions are assigned"
[ "$(curl -s -o /dev/null -w '%{http_code}' \
    "http://127.0.0.1:$PORT/nope")" = 404 ] || fail "unknown path not 404"

# ---- numbers against the tables --------------------------------------
gen() { # SEED PREFIX [--produce]: a workload; prints its size
    "$BIN/leadflow-gen" --leads 200 --seed "$1" --prefix "$2" \
        --anomalies 0.2 "${@:3}" -t $T -qq 2>/dev/null | wc -l
}
gen 7 L- --produce >/dev/null || fail "leadflow-gen failed"
printf '%s\n' "6c2d31 00" "6c2d32 000000000107" "- 0000000001" \
    "6c2d33 6e6f7420617672" | lf_send_raw $T >/dev/null
n1=$(gen 7 L-)
sent=$((n1 + 4))
drained() {
    m=$(scrape) || return 1
    [ "$(metric "$m" leadflow_messages_total)" = "$sent" ] &&
        [ "$(metric "$m" leadflow_partition_high_watermark)" = "$sent" ] &&
        [ "$(metric "$m" leadflow_consumer_lag)" = 0 ]
}
wait_for 60 "messages_total never reached $sent" drained
m=$(scrape)
check() { # WHAT METRIC_VALUE TABLE_VALUE
    [ "$2" = "$3" ] || fail "$1: /metrics says $2, the tables $3"
}
for type in $(q "SELECT DISTINCT type FROM funnel.events ORDER BY 1"); do
    check "events $type" \
        "$(metric "$m" leadflow_events_projected_total "type=\"$type\"")" \
        "$(q "SELECT count(*) FROM funnel.events WHERE type = '$type'")"
done
check "events" "$(metric "$m" leadflow_events_projected_total)" \
    "$(q "SELECT count(*) FROM funnel.events")"
check "events = sent" "$(metric "$m" leadflow_events_projected_total)" "$n1"
check "dead letters" "$(metric "$m" leadflow_dead_letters_total)" \
    "$(q "SELECT count(*) FROM funnel.dead_letters")"
check "the 4 raw messages are dead letters" \
    "$(metric "$m" leadflow_dead_letters_total)" 4
# Anomalies are counted once, when first written. A lead recomputed from its
# stored events (an event sorting before one already applied) derives its
# anomalies again, which do not count again, but may resolve one (its late
# predecessor arrived), which stays counted: the count equals the rows only
# when nothing was recomputed.
anomalies=$(metric "$m" leadflow_anomalies_total)
rows=$(q "SELECT count(*) FROM funnel.anomalies WHERE kind = 'state'")
[ "$rows" -gt 0 ] || fail "the workload should contain anomalies"
if [ "$(metric "$m" leadflow_leads_recomputed_total)" = 0 ]; then
    check "anomalies" "$anomalies" "$rows"
else
    [ "$anomalies" -ge "$rows" ] ||
        fail "anomalies: /metrics says $anomalies, fewer than the $rows rows"
fi
# A recompute derives a lead's anomalies again: they are not new. R-1 is
# accepted without a handoff (an anomaly that stays one); a late score
# sorting before it makes the projector recompute R-1.
emit_lines() { "$BIN/leadflow-emit" -t $T -qq || fail "leadflow-emit failed"; }
printf '%s\n' \
    '{"event_id":"r-1","lead_id":"R-1","type":"captured","occurred_at":"2026-03-01T10:00:00Z","source":"web","channel":"direct"}' \
    '{"event_id":"r-2","lead_id":"R-1","type":"accepted","occurred_at":"2026-03-01T10:05:00Z","source":"crm","owner":"rep-1"}' |
    emit_lines
sent=$((sent + 2))
wait_for 60 "messages_total never reached $sent" drained
m=$(scrape)
a1=$(metric "$m" leadflow_anomalies_total)
rc1=$(metric "$m" leadflow_leads_recomputed_total)
r1=$(q "SELECT count(*) FROM funnel.anomalies WHERE lead_id = 'R-1'
        AND kind = 'state'")
[ "$r1" -ge 1 ] || fail "R-1 accepted without a handoff: no anomaly"
printf '%s\n' '{"event_id":"r-3","lead_id":"R-1","type":"scored","occurred_at":"2026-03-01T10:01:00Z","source":"mkto","score":10,"threshold":60,"model":"m"}' |
    emit_lines
sent=$((sent + 1))
wait_for 60 "messages_total never reached $sent" drained
m=$(scrape)
[ "$(metric "$m" leadflow_leads_recomputed_total)" -gt "$rc1" ] ||
    fail "the late score did not recompute R-1"
check "R-1's anomalies after the recompute" \
    "$(q "SELECT count(*) FROM funnel.anomalies WHERE lead_id = 'R-1'
          AND kind = 'state'")" "$r1"
check "anomalies_total after a recompute that found nothing new" \
    "$(metric "$m" leadflow_anomalies_total)" "$a1"
echo "ok   anomalies: a recompute does not count $r1 anomaly(ies) of R-1 again"

# The same stream again: every event is a duplicate.
gen 7 L- --produce >/dev/null || fail "leadflow-gen (again) failed"
sent=$((sent + n1))
wait_for 60 "messages_total never reached $sent" drained
m=$(scrape)
check "duplicates" "$(metric "$m" leadflow_duplicates_total)" "$n1"
check "events after duplicates" \
    "$(metric "$m" leadflow_events_projected_total)" \
    "$(q "SELECT count(*) FROM funnel.events")"
batches=$(metric "$m" leadflow_batches_total)
[ "$batches" -ge 2 ] || fail "batches_total $batches, want >= 2 (--batch 50)"
check "histogram count" "$(metric "$m" leadflow_batch_duration_seconds_count)" \
    "$batches"
check "histogram +Inf bucket" \
    "$(metric "$m" leadflow_batch_duration_seconds_bucket 'le="+Inf"')" \
    "$batches"
check "stored offsets" "$(metric "$m" leadflow_consumer_offset)" \
    "$(q "SELECT sum(next_offset) FROM funnel.offsets
          WHERE group_id = 'g-metrics' AND topic = '$T'")"
check "high watermarks" "$(metric "$m" leadflow_partition_high_watermark)" \
    "$sent"
check "partitions with a lag" \
    "$(grep -c '^leadflow_consumer_lag{' <<<"$m")" 4
last=$(metric "$m" leadflow_last_commit_timestamp_seconds)
now=$(date +%s)
# the metric carries the commit's wall time to the millisecond and date +%s
# truncates, so the last commit can read up to one second "ahead"
[ $((now - last)) -ge -1 ] && [ $((now - last)) -lt 120 ] ||
    fail "last commit $last is not recent (now $now)"
grep -q '^# TYPE leadflow_batch_duration_seconds histogram$' <<<"$m" ||
    fail "no histogram TYPE line"
echo "ok   numbers: $sent messages, $(metric "$m" \
    leadflow_events_projected_total) events, $batches batches match the tables"

# ---- merges count wherever they are finished ------------------------
# Pairs whose leads sit on partitions of both writers: a merge crossing the
# writers waits in identity_pending and is finished by the idle settle,
# whose merges count as the writers' do.
for i in $(seq 1 12); do
    printf '{"event_id":"ma-%d","lead_id":"MA-%d","type":"captured","occurred_at":"2026-03-02T10:00:00Z","source":"web","channel":"direct"}\n' "$i" "$i"
    printf '{"event_id":"mb-%d","lead_id":"MB-%d","type":"captured","occurred_at":"2026-03-02T10:01:00Z","source":"web","channel":"direct"}\n' "$i" "$i"
    printf '{"event_id":"mm-%d","lead_id":"MA-%d","type":"merged","occurred_at":"2026-03-02T10:02:00Z","source":"crm","into_lead_id":"MB-%d"}\n' "$i" "$i" "$i"
done | emit_lines
sent=$((sent + 36))
wait_for 60 "messages_total never reached $sent" drained
merges_counted() {
    m=$(scrape) || return 1
    [ "$(metric "$m" leadflow_merges_total)" = 12 ] &&
        [ "$(q "SELECT count(*) FROM funnel.merges")" = 12 ]
}
wait_for 30 "leadflow_merges_total and funnel.merges never both 12" \
    merges_counted
echo "ok   merges: leadflow_merges_total counts the 12 merges, settled or not"

# ---- outage while idle -----------------------------------------------
retries=$(metric "$m" leadflow_pg_retries_total)
lf_pg_crash
wait_for 20 "/healthz still $(health) after PostgreSQL crashed" health_is 503
echo "ok   outage: 503 after PostgreSQL crashed"
# RELIABILITY.md's line, with --metrics too (its probe also watches the
# connection), and every line of the log key=value: the server's own
# "terminating connection" warning goes through the log as well.
wait_for 10 "no \"lost the connection\" line" grep -q \
    'msg="lost the connection to PostgreSQL while idle' "$LF_TMP/project.err"
raw=$(grep -v '^ts=' "$LF_TMP/project.err" || true)
[ -z "$raw" ] || fail "lines on stderr that are not key=value: $raw"
echo "ok   outage: the documented warning, and nothing but key=value lines"
gen 8 M- --produce >/dev/null || fail "leadflow-gen (outage) failed"
more=$(gen 8 M-)
lagging() {
    m=$(scrape) || return 1
    [ "$(metric "$m" leadflow_consumer_lag)" = "$more" ] &&
        [ "$(metric "$m" leadflow_pg_retries_total)" -gt "$retries" ]
}
wait_for 30 "lag never showed the $more new events: $(metric "$(scrape)" \
    leadflow_consumer_lag)" lagging
[ "$(health)" = 503 ] || fail "/healthz not 503 while batches fail"
echo "ok   outage: lag $more and retries counted while PostgreSQL is down"
lf_pg_start
wait_for 60 "/healthz never 200 after the restart" health_is 200
sent=$((sent + more))
wait_for 60 "lag never back to 0 after the restart" drained
m=$(scrape)
check "events after the outage" \
    "$(metric "$m" leadflow_events_projected_total)" \
    "$(q "SELECT count(*) FROM funnel.events")"
echo "ok   outage: 200 again, lag 0, $(metric "$m" \
    leadflow_events_projected_total) events"

kill -TERM "$pid"
wait "$pid" || fail "leadflow-project exited $? after SIGTERM"

# ---- --idle-exit waits for the database ---------------------------------
# Drained and idle, then PostgreSQL away: --idle-exit must not end the
# drain (exit 0) while the database may have lost what it acknowledged;
# it exits once it has resumed from the stored offsets again.
# idle_exit_waits LOG CRASH_AFTER_S DOWN_S PROJECT_ARGS...: start, crash
# PostgreSQL CRASH_AFTER_S after the assignment, check the projector is
# still there DOWN_S later, restart PostgreSQL, expect exit 0.
idle_exit_waits() {
    local log=$LF_TMP/$1 after=$2 down=$3 ipid
    shift 3
    "${LF_PROJECT[@]}" -t $T -g g-metrics "$@" 2>"$log" &
    ipid=$!
    LF_PIDS+=("$ipid")
    wait_for 60 "the idle projector was never assigned" \
        grep -q 'msg=assigned' "$log"
    sleep "$after"
    lf_pg_crash
    sleep "$down"
    kill -0 "$ipid" 2>/dev/null ||
        fail "--idle-exit ended with PostgreSQL down: $(tail -3 "$log")"
    lf_pg_start
    wait_for 60 "--idle-exit never ended after the restart" \
        sh -c "! kill -0 $ipid 2>/dev/null"
    wait "$ipid" || fail "--idle-exit after the restart: exit $?"
}
idle_exit_waits idle.err 0 9 --metrics 127.0.0.1:0 --idle-exit 5
echo "ok   idle-exit: no exit while PostgreSQL is down, exit 0 once it is back"

# The same without --metrics, PostgreSQL crashed just before the idle time
# is up: the connection is watched every 2 s, and a crash since the last
# look must not let the projector exit 0 (after a failover it would leave
# what the standby lost unread).
idle_exit_waits idle2.err 2.4 4 --idle-exit 3
echo "ok   idle-exit: a crash just before the idle time is up is noticed"

# ---- bad addresses -----------------------------------------------------
set +e
"$BIN/leadflow-project" --metrics nope -t $T 2>/dev/null
rc=$?
[ "$rc" = 78 ] || fail "--metrics nope: exit $rc, want 78"
python3 -c 'import socket,time,sys
s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen()
print(s.getsockname()[1], flush=True); time.sleep(20)' >"$LF_TMP/busy" &
busy=$!
LF_PIDS+=("$busy")
wait_for 5 "no busy port" test -s "$LF_TMP/busy"
"$BIN/leadflow-project" --metrics "127.0.0.1:$(cat "$LF_TMP/busy")" -t $T \
    2>/dev/null
rc=$?
kill "$busy"
wait "$busy" 2>/dev/null
set -e
[ "$rc" = 69 ] || fail "--metrics on a busy port: exit $rc, want 69"
echo "ok   errors: malformed address 78, busy port 69"
