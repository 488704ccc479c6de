#!/usr/bin/env bash
# test_project.sh BIN_DIR: leadflow-project against the real dev stack
# (devbroker + throwaway PostgreSQL). Each scenario streams a workload into
# its own topic, projects it into its own database, and compares the funnel
# tables with a clean run (lf_checksums: content only, no wall clock, no
# Kafka coordinates):
#   order      the same events shuffled, duplicated and late, over seeds
#   kill       the projector killed with SIGKILL mid-stream, restarted
#   pgcrash    PostgreSQL crashed (-m immediate) and restarted mid-stream
#   twogroup   two instances in one group, one killed
#   again      the same stream twice to one running projector
#   locks      15000 leads in one would-be batch: cut at 2500 leads
#   writers    --writers 1 against 3 and 4; a lead's events spread over
#              partitions of different writers (partitioner=random), read
#              through a 100-message prefetch (fetch wake-ups)
#   start      no assigned partition waits for its leader (offset retry)
#   dead       every malformed kind ends in dead_letters with its reason
#   hostile    hostile strings survive byte for byte; duplicates and
#              conflicting duplicates
set -euo pipefail
BIN=$(cd "${1:?usage: test_project.sh BIN_DIR}" && pwd)
. "$(dirname "$0")/lib.sh"

LEADS=${LF_TEST_LEADS:-150}
lf_stack_up
echo "stack: brokers=$LEADFLOW_BROKERS pg=$PGHOST:$PGPORT"

topic() { lf_broker "topic $1 4" >/dev/null; }

# gen TOPIC SEED [gen flags]: produce a workload through the C API.
gen() {
    local t=$1 seed=$2
    shift 2
    "$BIN/leadflow-gen" --leads "$LEADS" --seed "$seed" --anomalies 0.1 \
        "$@" --produce -b "$LEADFLOW_BROKERS" -t "$t" -q ||
        fail "leadflow-gen into $t failed"
}

# project DB TOPIC [flags]: drain TOPIC into database DB until idle.
project() {
    local db=$1 t=$2
    shift 2
    PGDATABASE=$db "${LF_PROJECT[@]}" -t "$t" -g "g-$db" --idle-exit 2 -q "$@" ||
        fail "leadflow-project into $db exited $?"
}

sums() { PGDATABASE=$1 lf_checksums; }

same() { # DB_A DB_B WHAT
    local a b
    a=$(sums "$1")
    b=$(sums "$2")
    if [ "$a" != "$b" ]; then
        diff <(echo "$a") <(echo "$b") >&2 || true
        fail "$3: tables of $2 differ from $1"
    fi
    echo "ok   $3 ($(echo "$a" | awk -F'|' '{printf "%s=%s ", $1, $2}'))"
}

q() { psql -X -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

# ---- migrations from several instances at once; SIGTERM exits 0 ------
lf_newdb mig
for i in 1 2 3; do
    PGDATABASE=mig "$BIN/leadflow-project" --migrate-only -q &
    LF_PIDS+=($!)
done
for i in 1 2 3; do
    wait "${LF_PIDS[-$i]}" || fail "a concurrent --migrate-only failed"
done
[ "$(q mig "SELECT count(*) = count(DISTINCT name) AND count(*) > 0
            FROM funnel.schema_migrations")" = t ] ||
    fail "migrations recorded twice or not at all"
topic term
"${LF_PROJECT[@]}" -d "dbname=mig" -t term -g g-term -q &
pid=$!
LF_PIDS+=("$pid")
sleep 2
kill -TERM "$pid"
wait "$pid" || fail "SIGTERM: leadflow-project exited $?, expected 0"
echo "ok   3 concurrent --migrate-only; SIGTERM exits 0"

# A database that does not exist is waited for REFUSED_AT_START_S (30 s: an
# init step may still be creating it), then it is a mistake: exit 78 naming
# it. Checked at the end, while the other scenarios run.
"${LF_PROJECT[@]}" -d "dbname=no_such_db" -t term -g g-nodb \
    2>"$LF_TMP/nodb.err" &
nodb_pid=$!
LF_PIDS+=("$nodb_pid")

# ---- usage errors name the option and exit 64 --------------------------
for bad in "--writers 0" "--writers 65" "--writers two" "--batch 0" \
    "--linger -1"; do
    set +e
    # shellcheck disable=SC2086
    "$BIN/leadflow-project" $bad >/dev/null 2>"$LF_TMP/usage.err"
    rc=$?
    set -e
    [ "$rc" = 64 ] || fail "leadflow-project $bad: exit $rc, want 64"
    grep -qF -- "${bad% *}" "$LF_TMP/usage.err" ||
        fail "leadflow-project $bad: the message does not name ${bad% *}"
done
# --help into a variable first: grep -q may stop reading before the program
# has written everything, and pipefail would count its SIGPIPE as a failure.
help=$("$BIN/leadflow-project" --help)
grep -q -- "--writers N" <<<"$help" ||
    fail "--help does not list --writers"
echo "ok   usage: bad --writers, --batch, --linger exit 64 naming the option"

# ---- order independence, over seeds ----------------------------------
for seed in 11 12 13; do
    topic "clean$seed"
    topic "var$seed"
    lf_newdb "clean$seed"
    lf_newdb "var$seed"
    gen "clean$seed" "$seed"
    gen "var$seed" "$seed" --duplicates 0.2 --shuffle 40 --late 0.2
    # The reference writes one transaction at a time.
    project "clean$seed" "clean$seed" --writers 1 &
    p1=$!
    # small batches: late events land in later batches and force recomputes;
    # three writers on four partitions
    project "var$seed" "var$seed" --batch 23 --writers 3 &
    p2=$!
    wait $p1 || fail "clean projection $seed"
    wait $p2 || fail "variant projection $seed"
    [ "$(q "var$seed" "SELECT count(*) FROM funnel.leads")" -gt 0 ] ||
        fail "no leads projected for seed $seed"
    [ "$(q "clean$seed" "SELECT count(*) FROM funnel.anomalies")" -gt 0 ] ||
        fail "seed $seed: the workload should contain anomalies"
    same "clean$seed" "var$seed" "order: seed $seed shuffled+duplicated+late"
done

# ---- a lead's events on partitions of different writers --------------
# partitioner=random ignores the key: one lead's events land on several
# partitions, so several writers' transactions touch it at once (only the
# lead locks order them) and its late events come through another writer.
topic scatter
lf_newdb scatter
gen scatter 11 -X partitioner=random
[ "$(q clean11 "SELECT count(*) FROM funnel.events")" -gt 0 ] ||
    fail "no reference"
# A prefetch of 100 messages: librdkafka 2.0 stops fetching there and
# would look again a second later; the projector wakes it (lf_fetchwake).
project scatter scatter --batch 7 --writers 4 -X queued.min.messages=100 \
    -v 2>"$LF_TMP/scatter.log"
grep -q 'msg="stopped" .* fetch_wakeups=[1-9]' "$LF_TMP/scatter.log" ||
    fail "scatter: no fetch wake-up over a 100-message prefetch:
$(tail -n 3 "$LF_TMP/scatter.log")"
[ "$(q scatter "SELECT count(*) FROM (SELECT lead_id FROM funnel.events
                GROUP BY lead_id HAVING count(DISTINCT partition % 4) > 1) s")" -gt 0 ] ||
    fail "scatter: no lead has events under two writers"
[ "$(q scatter "SELECT count(*) FROM funnel.anomalies WHERE kind = 'key'")" = 0 ] ||
    fail "scatter: key anomalies listed (the keys are the lead ids)"
same clean11 scatter "writers: one lead's events over 4 writers, batches of 7"

# ---- assigned partitions start at once -------------------------------
# A subscribing consumer makes its partitions only when they are assigned,
# and librdkafka resets a "beginning" offset as each appears, before the
# metadata has named its leader: those wait for a 500 ms retry timer. The
# projector holds the topic from the start so no partition is met
# leaderless (a fresh projector wrote nothing for half a second).
lf_broker "topic start 16" >/dev/null
lf_newdb start
gen start 11
project start start -v -v -v -X debug=topic 2>"$LF_TMP/start.log"
grep -q "src=rdkafka fac=OFFSET" "$LF_TMP/start.log" ||
    fail "start: no librdkafka offset debug lines to check"
! grep -q "no current leader for partition" "$LF_TMP/start.log" ||
    fail "start: a partition was assigned before its leader was known:
$(grep -m 3 "no current leader" "$LF_TMP/start.log")"
same clean11 start "start: 16 partitions assigned, none waits for its leader"

# ---- a bigger stream for the fault scenarios -------------------------
BIG=${LF_TEST_BIG_LEADS:-800}
topic bigclean
lf_newdb bigclean
LEADS=$BIG gen bigclean 21
project bigclean bigclean

events() { # 0 until the projector has created the schema
    q "$1" "SELECT count(*) FROM funnel.events" 2>/dev/null || echo 0
}

# wait_progress DB: until the projector has stored more than before.
wait_progress() {
    local before=$2 i
    for i in $(seq 1 200); do
        [ "$(events "$1")" -gt "$before" ] && return 0
        sleep 0.1
    done
    fail "$1: no progress in 20 s"
}

# ---- the same stream twice, to one running projector -----------------
# After clean batches the projector no longer probes for stored events: the
# second copy's first batches fail their COPY on the primary key (an ERROR
# in the server's log) and take the staged path. Nothing is stored twice.
topic again
lf_newdb again
LEADS=$BIG gen again 21
total=$(events bigclean)
errors() { grep -c 'duplicate key value violates unique constraint "events_pkey"' \
    "$LEADFLOW_PGDATA/postgres.log" || true; }
errs=$(errors)
# 300-event batches: each writer's two batch buffers commit clean batches
# of the first copy (so both skip the probe) however fast the build runs.
PGDATABASE=again "${LF_PROJECT[@]}" -t again -g g-again --idle-exit 4 \
    --batch 300 -v 2>"$LF_TMP/again.log" &
pid=$!
LF_PIDS+=("$pid")
for i in $(seq 1 300); do
    [ "$(events again)" -ge "$total" ] && break
    sleep 0.1
done
[ "$(events again)" = "$total" ] || fail "again: the first copy is not in"
LEADS=$BIG gen again 21
wait "$pid" || fail "again: the projector exited $?"
grep -q "msg=\"stopped\" messages=$((2 * total)) events=$total duplicates=$total " \
    "$LF_TMP/again.log" ||
    fail "again: expected $total events and $total duplicates:
$(grep 'msg="stopped"' "$LF_TMP/again.log")"
[ "$(errors)" -gt "$errs" ] ||
    fail "again: no COPY failed on events_pkey (the probe was not skipped)"
same bigclean again "the same stream twice to one projector"

# ---- kill -9 during batches ------------------------------------------
topic kill
lf_newdb kill
LEADS=$BIG gen kill 21
total=$(events bigclean)
kills=0
for i in 1 2 3 4; do
    PGDATABASE=kill "${LF_PROJECT[@]}" -t kill -g g-kill --batch 3 -q &
    pid=$!
    LF_PIDS+=("$pid")
    wait_progress kill "$(events kill)"
    sleep "0.$((RANDOM % 4))$((RANDOM % 10))"
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    n=$(events kill)
    echo "     SIGKILL $i at $n of $total events"
    [ "$n" -lt "$total" ] && kills=$((kills + 1))
done
[ "$kills" -ge 3 ] || fail "only $kills of 4 kills landed mid-stream"
project kill kill
same bigclean kill "kill -9 $kills times mid-stream"

# ---- PostgreSQL crash mid-stream -------------------------------------
topic pgc
lf_newdb pgc
LEADS=$BIG gen pgc 21
PGDATABASE=pgc "${LF_PROJECT[@]}" -t pgc -g g-pgc --batch 3 --idle-exit 4 \
    2>"$LF_TMP/pgc.log" &
pid=$!
LF_PIDS+=("$pid")
wait_progress pgc 0
lf_pg_crash
sleep 2
lf_pg_start
wait "$pid" || fail "projector exited $? after the PostgreSQL crash"
grep -q "will retry" "$LF_TMP/pgc.log" ||
    fail "the projector did not notice the crash (no retry logged)"
[ "$(events pgc)" -lt "$total" ] || true
same bigclean pgc "PostgreSQL crashed and restarted mid-stream"

# ---- two instances in one group, one killed --------------------------
topic two
lf_newdb two
PGDATABASE=two "${LF_PROJECT[@]}" -t two -g g-two --batch 11 -q &
a=$!
LF_PIDS+=("$a")
PGDATABASE=two "${LF_PROJECT[@]}" -t two -g g-two --batch 11 --idle-exit 8 -q &
b=$!
LF_PIDS+=("$b")
LEADS=$BIG gen two 21
wait_progress two 0
sleep 0.5
kill -9 "$a"
wait "$b" || fail "the surviving instance exited $?"
same bigclean two "two instances in one group, one killed"

# ---- many leads at once: the lock table ------------------------------
# A flush holds one advisory lock per lead until it commits; PostgreSQL's
# default lock table holds about 12000. 15000 leads in one 100000-event
# batch would fail with "out of shared memory" at every retry; a batch
# closes at LF_PROJECTOR_MAX_LEADS (2500) leads instead.
topic locks
lf_newdb locks
"$BIN/leadflow-gen" --leads 15000 --seed 5 --produce -b "$LEADFLOW_BROKERS" \
    -t locks -q || fail "leadflow-gen into locks failed"
PGDATABASE=locks timeout 180 "${LF_PROJECT[@]}" -t locks -g g-locks \
    --idle-exit 3 --writers 1 --batch 100000 -X queued.min.messages=100000 \
    2>"$LF_TMP/locks.log" || fail "locks: the projector exited $?:
$(grep -m 3 'level=err' "$LF_TMP/locks.log")"
[ "$(q locks "SELECT count(*) FROM funnel.leads")" = 15000 ] ||
    fail "locks: $(q locks "SELECT count(*) FROM funnel.leads") of 15000 leads"
! grep -q "out of shared memory" "$LF_TMP/locks.log" ||
    fail "locks: PostgreSQL ran out of lock table"
batches=$(sed -n 's/.*msg="stopped" .* batches=\([0-9]*\) .*/\1/p' "$LF_TMP/locks.log")
[ "${batches:-0}" -ge 6 ] || fail "locks: $batches batches for 15000 leads"

# ---- malformed messages -> dead_letters ------------------------------
topic dead
lf_newdb dead
/usr/bin/python3 "$SRC/tests/integration/bad_messages.py" >"$LF_TMP/bad.tsv"
good=$(echo '{"lead_id":"G-1","type":"captured","occurred_at":"2026-01-01T00:00:00Z","source":"t","channel":"web"}' |
    "$LEADFLOW_TESTS/lf_codec_tool" encode)
{
    echo "$(printf 'G-1' | xxd -p) $good"
    cut -f1 "$LF_TMP/bad.tsv"
    echo "$(printf 'G-2' | xxd -p) $(echo '{"lead_id":"G-2","type":"captured","occurred_at":"2026-01-01T00:00:00Z","source":"t","channel":"web"}' |
        "$LEADFLOW_TESTS/lf_codec_tool" encode)"
} | lf_send_raw dead >/dev/null
project dead dead
kinds=$(wc -l <"$LF_TMP/bad.tsv")
while IFS=$'\t' read -r msg where expect lead; do
    key=${msg%% *}
    val=${msg#* }
    if [ "$where" = dead ]; then
        [ "$val" = - ] && val=
        # by md5: a 1 MiB value is too long for a command-line argument
        sum=$(printf '%s' "$val" | md5sum | cut -d' ' -f1)
        got=$(q dead "SELECT error FROM funnel.dead_letters WHERE
            md5(coalesce(encode(value, 'hex'), '')) = '$sum'")
        [ -n "$got" ] || fail "dead letter for $lead ($expect) missing"
        case "$got" in *"$expect"*) ;;
        *) fail "$lead: reason \"$got\" does not name \"$expect\"" ;; esac
    else
        got=$(q dead "SELECT reason FROM funnel.anomalies WHERE lead_id = '$lead' AND kind = 'key'")
        case "$got" in *"$expect"*) ;;
        *) fail "$lead: key anomaly \"$got\" does not name \"$expect\"" ;; esac
        [ "$(q dead "SELECT count(*) FROM funnel.leads WHERE lead_id = '$lead'")" = 1 ] ||
            fail "$lead: an event under a wrong key must still be projected"
    fi
done <"$LF_TMP/bad.tsv"
ndead=$(q dead "SELECT count(*) FROM funnel.dead_letters")
[ "$ndead" = "$(grep -c $'\tdead\t' "$LF_TMP/bad.tsv")" ] ||
    fail "expected one dead letter per bad message, got $ndead"
[ "$(q dead "SELECT string_agg(lead_id, ',' ORDER BY lead_id) FROM funnel.leads WHERE lead_id LIKE 'G-%'")" = "G-1,G-2" ] ||
    fail "valid messages around the bad ones were not projected"
# A retry says what still fails, one line per letter, escaped as the
# listing is: no producer's newline or terminal escape gets through.
"$BIN/leadflow-replay" dead-letters retry --all -d dbname=dead -q \
    >"$LF_TMP/retry.out" || fail "dead-letters retry: exit $?"
[ "$(grep -c 'still failing' "$LF_TMP/retry.out")" = "$ndead" ] ||
    fail "retry: not one line per letter: $(head -c 600 "$LF_TMP/retry.out")"
if LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]\|\xc2[\x80-\x9f]' \
    "$LF_TMP/retry.out"; then
    fail "retry: a control character on stdout"
fi
grep -qF 'currency": "\x1b]0;t\x07"' "$LF_TMP/retry.out" ||
    fail "retry: the escape not shown escaped: $(grep currency "$LF_TMP/retry.out")"
echo "ok   dead letters: $kinds hostile kinds, $ndead dead letters, valid neighbours projected; a retry's lines escaped"

# ---- hostile strings, duplicates, conflicts --------------------------
topic hostile
lf_newdb hostile
cat >"$LF_TMP/hostile.jsonl" <<'EOF'
{"event_id":"h-1","lead_id":"H-1 \"quoted\" \\ back\tslash","type":"captured","occurred_at":"2026-02-01T10:00:00.123+02:00","source":"web\nforms","actor":"a;DROP TABLE funnel.leads;--","channel":"\\.","campaign":"Été 🚀 ünïcødé","attributes":{"tab\tkey":"line1\nline2","q":"'\"'"}}
{"event_id":"h-2","lead_id":"H-1 \"quoted\" \\ back\tslash","type":"handed_off","occurred_at":"2026-02-01T09:00:00Z","source":"crm","owner":"O'Brien \\N","sla_hours":24}
{"event_id":"h-2","lead_id":"H-1 \"quoted\" \\ back\tslash","type":"handed_off","occurred_at":"2026-02-01T09:00:00Z","source":"crm","owner":"O'Brien \\N","sla_hours":24}
{"event_id":"h-2","lead_id":"H-1 \"quoted\" \\ back\tslash","type":"handed_off","occurred_at":"2026-02-01T09:00:00Z","source":"crm","owner":"someone else","sla_hours":48}
EOF
"$LEADFLOW_TESTS/lf_codec_tool" encode <"$LF_TMP/hostile.jsonl" >"$LF_TMP/hostile.hex"
key=$(printf 'H-1 "quoted" \\ back\tslash' | xxd -p | tr -d '\n')
sed "s/^/$key /" "$LF_TMP/hostile.hex" | lf_send_raw hostile >/dev/null
project hostile hostile
expect_hex() { # SQL-EXPR EXPECTED-TEXT
    local got want
    got=$(q hostile "SELECT encode(convert_to($1, 'UTF8'), 'hex') FROM funnel.leads")
    want=$(printf '%s' "$2" | xxd -p | tr -d '\n')
    [ "$got" = "$want" ] || fail "hostile $1: got $(echo "$got" | xxd -r -p | head -c 200)"
}
expect_hex lead_id 'H-1 "quoted" \ back	slash'
expect_hex campaign 'Été 🚀 ünïcødé'
expect_hex channel '\.'
expect_hex owner "O'Brien \\N"
[ "$(q hostile "SELECT actor FROM funnel.events WHERE event_id = 'h-1'")" = "a;DROP TABLE funnel.leads;--" ] ||
    fail "actor with SQL did not survive"
[ "$(q hostile "SELECT payload->'attributes'->>'tab	key' FROM funnel.events WHERE event_id = 'h-1'")" = $'line1\nline2' ] ||
    fail "attribute with tab key and newline value did not survive"
[ "$(q hostile "SELECT source FROM funnel.events WHERE event_id = 'h-1'")" = $'web\nforms' ] ||
    fail "source with a newline did not survive"
# occurred_at with +02:00 is 08:00:00.123Z: the handoff (09:00Z) follows it
[ "$(q hostile "SELECT stage || ' ' || visits FROM funnel.leads")" = "handed_off 2" ] ||
    fail "hostile lead not in handed_off after 2 visits"
[ "$(q hostile "SELECT count(*) FROM funnel.events")" = 2 ] ||
    fail "an exact duplicate or a conflicting duplicate was stored twice"
[ "$(q hostile "SELECT owner FROM funnel.leads")" = "O'Brien \\N" ] ||
    fail "the first of two conflicting events must be kept"
conf=$(q hostile "SELECT reason FROM funnel.anomalies WHERE kind = 'conflict'")
case "$conf" in "event_id reused with different content at hostile partition "*) ;;
*) fail "conflict not listed: \"$conf\"" ;; esac
echo "ok   hostile strings byte for byte; duplicate ignored; conflict listed"

set +e
wait "$nodb_pid"
rc=$?
set -e
[ "$rc" = 78 ] || fail "a database that does not exist: exit $rc, want 78"
grep -q 'giving up.*database \\"no_such_db\\" does not exist' "$LF_TMP/nodb.err" ||
    fail "a database that does not exist: not named: $(tail -2 "$LF_TMP/nodb.err")"
echo "ok   a database that does not exist: exit 78 after 30 s, named"

echo "PASS test_project"
