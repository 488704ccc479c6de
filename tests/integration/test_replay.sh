#!/usr/bin/env bash
# test_replay.sh BIN_DIR: leadflow-replay against the real dev stack
# (devbroker + throwaway PostgreSQL). One workload (with duplicates, late
# events, anomalies and undecodable messages) is projected into funnel, then:
#   usage      --help, usage errors exit 64
#   rewind     --dry-run counts the messages after a time; the rewind plus a
#              projector run re-reads exactly those and leaves the tables
#              identical; offsets never move forward
#   rebuild    from Kafka, from the database (two read orders): diff equal
#   diff       finds a deliberately changed row and names the lead (exit 1)
#   dump       filters hold; the whole dump re-sent through leadflow-emit into
#              a fresh topic projects to the same tables
#   promote    a concurrent reader sees the old model or the new, never a
#              mix; views, functions and privileges carried over; the
#              projector then catches up to the same tables as the old model
#   dead       retry keeps still-failing letters open with updated reasons;
#              a letter that now decodes is applied once (a second retry is
#              a no-op)
set -euo pipefail
BIN=$(cd "${1:?usage: test_replay.sh BIN_DIR}" && pwd)
. "$(dirname "$0")/lib.sh"
TESTS=${LEADFLOW_TESTS:-$(dirname "$BIN")/tests}
R=$BIN/leadflow-replay
TOPIC=ev
GROUP=proj

lf_stack_up
echo "stack: brokers=$LEADFLOW_BROKERS pg=$PGHOST:$PGPORT"

# -q: no command tag ("INSERT 0 1") after the rows of a RETURNING, so a
# caller reads exactly the rows (cutting the tag off with `| head -1` raced:
# psql could get SIGPIPE writing it, and pipefail failed the statement).
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
project() { # [flags]: drain the topic into funnel until idle
    lf_project -t "$TOPIC" -g "$GROUP" --idle-exit 2 -q "$@" ||
        fail "leadflow-project exited $?"
}
replay() { # COMMAND [args]
    local cmd=$1
    shift
    "$R" "$cmd" -t "$TOPIC" -g "$GROUP" --progress none "$@"
}
expect_rc() { # RC WHAT CMD...: run CMD, which must exit RC
    local want=$1 what=$2 rc=0
    shift 2
    "$@" >"$LF_TMP/out" 2>"$LF_TMP/err" || rc=$?
    if [ "$rc" != "$want" ]; then
        cat "$LF_TMP/out" "$LF_TMP/err" >&2
        fail "$what: exit $rc, expected $want"
    fi
}
sums() { lf_checksums "${1:-funnel}"; }
same_sums() { # A B WHAT
    if [ "$1" != "$2" ]; then
        diff <(echo "$1") <(echo "$2") >&2 || true
        fail "$3"
    fi
}
gen() { # SEED PREFIX LEADS [flags]: produce a workload
    local seed=$1 prefix=$2 leads=$3
    shift 3
    "$BIN/leadflow-gen" --leads "$leads" --seed "$seed" --prefix "$prefix" \
        "$@" --produce -b "$LEADFLOW_BROKERS" -t "$TOPIC" -q ||
        fail "leadflow-gen $seed failed"
}
now_rfc3339() { date -u +%Y-%m-%dT%H:%M:%S.%3NZ; }
hex() { printf '%s' "$1" | xxd -p | tr -d '\n'; }

# ---- usage ---------------------------------------------------------------
"$R" --help | grep "dead-letters retry" >/dev/null || fail "--help lacks a command"
"$R" rewind --help | grep -- "--to-offset" >/dev/null || fail "rewind --help"
expect_rc 64 "no command" "$R"
expect_rc 64 "unknown command" "$R" frobnicate
expect_rc 64 "rewind without --to" "$R" rewind
expect_rc 64 "rewind with both targets" "$R" rewind --to 2026-01-01 \
    --to-offset 0:1
expect_rc 64 "rebuild without --into" "$R" rebuild
expect_rc 64 "rebuild into funnel" "$R" rebuild --into funnel
expect_rc 64 "diff without --against" "$R" diff
expect_rc 64 "diff against a name no schema has" "$R" diff --against intr_INT
expect_rc 64 "retry without --id/--all" "$R" dead-letters retry
expect_rc 64 "retry with --id and --all" "$R" dead-letters retry --id 1 --all
grep -q "not both" "$LF_TMP/err" || fail "retry --id --all: $(cat "$LF_TMP/err")"
expect_rc 64 "--order without --from-db" "$R" rebuild --into x --order time
expect_rc 64 "bad --progress" "$R" dump --progress sometimes
# A malformed --to-offset is a usage error before any server is asked.
expect_rc 64 "--to-offset x" "$R" rewind --to-offset x -d host=/nonexistent
# A conninfo libpq cannot parse: 78 (bad configuration), named.
expect_rc 78 "diff -d bogus===" "$R" diff --against x -d "bogus==="
grep -q "not a valid libpq conninfo" "$LF_TMP/err" ||
    fail "bad conninfo: $(cat "$LF_TMP/err")"
# --help, --version and -X dump that standard output lost: 74, said.
for args in "--help" "--version" "rewind --help" "dump -X dump"; do
    rc=0
    # shellcheck disable=SC2086
    "$R" $args >/dev/full 2>"$LF_TMP/err" || rc=$?
    [ "$rc" = 74 ] && grep -q "cannot write to standard output" "$LF_TMP/err" ||
        fail "$args >/dev/full: exit $rc: $(cat "$LF_TMP/err")"
done
for p in leadflow-emit leadflow-project; do
    rc=0
    "$BIN/$p" -X dump >/dev/full 2>"$LF_TMP/err" || rc=$?
    [ "$rc" = 74 ] || fail "$p -X dump >/dev/full: exit $rc"
done
# -X dump after any command, without that command's required options.
for c in rewind rebuild diff promote dead-letters dump erase explain; do
    "$R" "$c" -X dump -t dumped >"$LF_TMP/out" 2>"$LF_TMP/err" ||
        fail "$c -X dump: exit $?: $(cat "$LF_TMP/err")"
    grep -qx "topic=dumped" "$LF_TMP/out" || fail "$c -X dump: $(cat "$LF_TMP/out")"
done
# The topic reader's prefetch bound shows, and -X overrides it.
"$R" dump -X dump -X queued.min.messages=700 >"$LF_TMP/out" ||
    fail "dump -X dump: exit $?"
grep -qx "queued.max.messages.kbytes=16384" "$LF_TMP/out" &&
    grep -qx "queued.min.messages=700" "$LF_TMP/out" ||
    fail "dump -X dump: the reader's prefetch bound: $(cat "$LF_TMP/out")"
expect_rc 64 "-X dump before the command" "$R" -X dump
grep -q "a command comes first" "$LF_TMP/err" || fail "-X dump first: $(cat "$LF_TMP/err")"
echo "ok   usage: --help exits 0, usage errors exit 64; -X dump after any command"

# ---- a database without a funnel -------------------------------------------
# A wrong -d (or a database never migrated) is named, with what to run,
# before any command reads a table: exit 65, never a statement's error.
psql -X -q -c "CREATE DATABASE nofunnel" || fail "CREATE DATABASE nofunnel"
for cmd in "diff --against x" "rebuild --into x --from-db" \
    "dead-letters list" "explain --lead L-1"; do
    # shellcheck disable=SC2086
    expect_rc 65 "$cmd without a funnel" replay $cmd -d dbname=nofunnel
    grep -q "database nofunnel has no leadflow funnel.*--migrate-only" \
        "$LF_TMP/err" || fail "$cmd: $(cat "$LF_TMP/err")"
    if grep -q "does not exist" "$LF_TMP/err"; then
        fail "$cmd: a statement's error: $(cat "$LF_TMP/err")"
    fi
done
echo "ok   no funnel: named with what to run (65)"

# ---- the workload --------------------------------------------------------
lf_broker "topic $TOPIC 4" >/dev/null || fail "devbroker: topic not created"
gen 21 L- 200 --duplicates 0.05 --late 0.05 --anomalies 0.1
sleep 1.2 # Kafka timestamps are milliseconds: keep the batches apart
T=$(now_rfc3339)
sleep 1.2
gen 22 M- 100 --duplicates 0.05
nB=$("$BIN/leadflow-gen" --leads 100 --seed 22 --prefix M- --duplicates 0.05 \
    2>/dev/null | wc -l)
good='{"lead_id":"B-7","type":"captured","occurred_at":"2026-01-02T00:00:00Z","source":"t","channel":"web"}'
v1=$(echo "$good" | "$TESTS/lf_codec_tool" encode)
{
    echo "$(hex B-1) $(hex 'not avro at all')"
    echo "$(hex B-2) -"
    # the same valid v1 record framed under schema id 7
    echo "$(hex B-7) 0000000007${v1:10}"
} | lf_send_raw "$TOPIC" >/dev/null
nB=$((nB + 3))
project
C1=$(sums)
[ "$(q "SELECT count(*) FROM funnel.dead_letters")" = 3 ] ||
    fail "expected 3 dead letters"
[ "$(q "SELECT count(*) FROM funnel.anomalies")" -gt 0 ] ||
    fail "the workload should have anomalies"
echo "ok   workload: $(echo "$C1" | awk -F'|' '{printf "%s=%s ", $1, $2}')"

# ---- rewind --------------------------------------------------------------
offs() { q "SELECT string_agg(partition || ':' || next_offset, ',' ORDER BY
    partition) FROM funnel.offsets WHERE group_id = '$GROUP'"; }
O1=$(offs)
replay rewind --to "$T" --dry-run >"$LF_TMP/plan" 2>"$LF_TMP/err" ||
    fail "rewind --dry-run exited $?"
reread=$(awk -F'\t' 'NR > 2 { s += $4 } END { print s }' "$LF_TMP/plan")
[ "$reread" = "$nB" ] || {
    cat "$LF_TMP/plan" >&2
    fail "dry run: $reread messages to re-read, expected $nB (after $T)"
}
[ "$(offs)" = "$O1" ] || fail "a dry run changed funnel.offsets"
grep -q "msg=summary command=rewind dry_run=yes" "$LF_TMP/err" ||
    fail "rewind printed no summary"
# Forward is never a rewind; partitions not named stay.
replay rewind --to-offset 0:999999,1:0 --dry-run >"$LF_TMP/plan2" 2>/dev/null
grep -q $'^0\t[0-9]*\t[0-9]*\t0\talready at or before' "$LF_TMP/plan2" ||
    fail "a forward offset was not refused: $(cat "$LF_TMP/plan2")"
grep -q $'^1\t[0-9]*\t0\t' "$LF_TMP/plan2" || fail "--to-offset 1:0 ignored"
grep -q $'^2\t.*not asked' "$LF_TMP/plan2" || fail "partition 2 not left alone"
expect_rc 65 "--to-offset with no such partition" replay rewind \
    --to-offset 9:0 --dry-run
# A group (or topic) without a stored offset: a typo, not a rewind done.
expect_rc 65 "rewind of a group that never ran" replay rewind -g "$GROUP-typo" \
    --to-offset 0:0 --no-group-check
grep -q "no stored offset for the topic" "$LF_TMP/err" ||
    fail "rewind of a group that never ran: $(cat "$LF_TMP/err")"
# A report that could not be written is a failure, said (74), as the
# command's other reports: a dry run's plan, diff, dead-letters list.
for cmd in "rewind --to $T --dry-run" "diff --against funnel" \
    "dead-letters list --all"; do
    rc=0
    # shellcheck disable=SC2086
    replay $cmd >/dev/full 2>"$LF_TMP/err" || rc=$?
    [ "$rc" = 74 ] && grep -q "cannot write to standard output" \
        "$LF_TMP/err" || fail "$cmd >/dev/full exited $rc: $(cat "$LF_TMP/err")"
done
# The dev broker has no DescribeGroups: rewind says so and refuses.
expect_rc 69 "rewind without a group check" replay rewind --to "$T"
grep -q "no-group-check" "$LF_TMP/err" || fail "rewind did not explain"
replay rewind --to "$T" --no-group-check >/dev/null 2>&1 ||
    fail "rewind exited $?"
sum_new=$(q "SELECT sum(next_offset) FROM funnel.offsets WHERE group_id =
    '$GROUP'")
sum_old=$(echo "$O1" | tr ',' '\n' | awk -F: '{ s += $2 } END { print s }')
[ $((sum_old - sum_new)) = "$nB" ] || fail "rewind moved $((sum_old - sum_new)) offsets, expected $nB"
project -q -v -v 2>"$LF_TMP/proj.log" # notice level: the stopped line
grep -q "msg=\"stopped\" messages=$nB events=0 duplicates=$((nB - 3))" \
    "$LF_TMP/proj.log" || {
    tail -3 "$LF_TMP/proj.log" >&2
    fail "the projector did not re-read exactly the $nB messages"
}
[ "$(offs)" = "$O1" ] || fail "offsets not back where they were"
same_sums "$C1" "$(sums)" "rewind + projector run changed the tables"
echo "ok   rewind: --dry-run showed $nB messages after $T; re-read, tables identical"

# ---- rebuild and diff ----------------------------------------------------
replay rebuild --into r_kafka --from-kafka 2>"$LF_TMP/err" ||
    fail "rebuild --from-kafka exited $?"
grep -q "msg=summary command=rebuild into=r_kafka" "$LF_TMP/err" ||
    fail "rebuild printed no summary"
replay rebuild --into r_db --from-db --batch 97 --progress bar \
    2>"$LF_TMP/err" || fail "rebuild --from-db exited $?"
grep -q $'\rrebuild \\[' "$LF_TMP/err" || fail "--progress bar drew no bar"
replay rebuild --into r_none --from-db --order none --batch 50 2>/dev/null ||
    fail "rebuild --order none exited $?"
for s in r_kafka r_db r_none; do
    replay diff --against "$s" >"$LF_TMP/diff" 2>/dev/null || {
        cat "$LF_TMP/diff" >&2
        fail "diff --against $s: exit $?, expected 0 (equal)"
    }
    same_sums "$C1" "$(sums "$s")" "rebuild $s: checksums differ"
done
[ "$(q "SELECT count(*) FROM r_kafka.dead_letters")" = 3 ] ||
    fail "the dead letters did not come along from Kafka"
[ "$(q "SELECT string_agg(next_offset::text, ',' ORDER BY partition) FROM
    r_kafka.offsets")" = "$(q "SELECT string_agg(next_offset::text, ','
    ORDER BY partition) FROM funnel.offsets")" ] ||
    fail "rebuild --from-kafka did not store the offsets it reached"
expect_rc 65 "rebuild into an existing schema" replay rebuild --into r_db \
    --from-db
replay rebuild --into r_db --from-db --replace 2>/dev/null ||
    fail "rebuild --replace exited $?"
echo "ok   rebuild: from Kafka, from the database (lead order, as stored), diff equal"

lead=$(q "SELECT lead_id FROM r_db.leads WHERE stage <> 'lost' ORDER BY
    lead_id OFFSET 7 LIMIT 1")
q "UPDATE r_db.leads SET stage = 'lost' WHERE lead_id = '$lead'" >/dev/null || fail "could not change a row"
expect_rc 1 "diff of a changed row" replay diff --against r_db
grep -q "^lead $lead\$" "$LF_TMP/out" || fail "diff did not name $lead"
grep -q "leads: stage funnel=\"[a-z_]*\" r_db=\"lost\"" "$LF_TMP/out" ||
    fail "diff did not name the column: $(cat "$LF_TMP/out")"
grep -Eq "^leads +[0-9]+ +[0-9]+ .*DIFFERS" "$LF_TMP/out" ||
    fail "diff did not flag the table"
expect_rc 65 "diff against a missing schema" replay diff --against nope
echo "ok   diff: found the changed row of $lead and named the column"

# ---- dump ------------------------------------------------------------------
replay dump >"$LF_TMP/dump.jsonl" 2>"$LF_TMP/err" || fail "dump exited $?"
# Into a pipe nobody reads (dump | head, after head left): 74, said, not a
# silent death by SIGPIPE.
rc=0
/usr/bin/python3 -c 'import os, subprocess, sys
r, w = os.pipe()
os.close(r)
sys.exit(subprocess.call(sys.argv[1:], stdout=w) % 256)' \
    "$R" dump -t "$TOPIC" -g "$GROUP" --progress none 2>"$LF_TMP/epipe" || rc=$?
[ "$rc" = 74 ] && grep -q "cannot write to standard output" "$LF_TMP/epipe" ||
    fail "dump into a closed pipe: exit $rc: $(cat "$LF_TMP/epipe")"
total=0 # messages in the topic, counted by kcat
for p in 0 1 2 3; do
    n=$(kcat -b "$LEADFLOW_BROKERS" -C -t "$TOPIC" -p "$p" -o beginning -e \
        -f '%o\n' 2>/dev/null | wc -l)
    total=$((total + n))
done
[ "$(wc -l <"$LF_TMP/dump.jsonl")" = $((total - 3)) ] ||
    fail "dump wrote $(wc -l <"$LF_TMP/dump.jsonl") lines, expected $((total - 3))"
grep -q "undecodable=3" "$LF_TMP/err" || fail "dump did not count the 3 undecodable"
jq -e -s 'all(.[]; ._kafka.topic == "ev" and (._kafka.partition | type) ==
    "number" and (._kafka.offset | type) == "number")' \
    "$LF_TMP/dump.jsonl" >/dev/null || fail "dump lines lack _kafka"
# Filters.
lead2=$(q "SELECT lead_id FROM funnel.leads WHERE lead_id LIKE 'M-%' ORDER BY
    lead_id LIMIT 1")
replay dump --lead "$lead" --lead "$lead2" 2>/dev/null >"$LF_TMP/d1"
[ "$(jq -r .lead_id "$LF_TMP/d1" | sort -u | tr '\n' ' ')" = "$lead $lead2 " ] ||
    fail "dump --lead: other leads in the output"
[ "$(jq -r .event_id "$LF_TMP/d1" | sort -u | wc -l)" = "$(q "SELECT count(*)
    FROM funnel.events WHERE lead_id IN ('$lead', '$lead2')")" ] ||
    fail "dump --lead: not every event of the leads"
replay dump --partition 2 2>/dev/null >"$LF_TMP/d2"
[ "$(jq -r ._kafka.partition "$LF_TMP/d2" | sort -u)" = 2 ] ||
    fail "dump --partition 2: other partitions in the output"
[ "$(jq -r .event_id "$LF_TMP/d2" | sort -u | wc -l)" = "$(q "SELECT
    count(*) FROM funnel.events WHERE partition = 2")" ] ||
    fail "dump --partition 2: events missing"
replay dump --from 2026-02-01 --to 2026-03-01T00:00:00Z 2>/dev/null >"$LF_TMP/d3"
jq -e -s 'all(.[]; .occurred_at >= "2026-02-01" and .occurred_at <
    "2026-03-01")' "$LF_TMP/d3" >/dev/null || fail "dump --from/--to leaked"
[ "$(jq -r .event_id "$LF_TMP/d3" | sort -u | wc -l)" = "$(q "SELECT
    count(*) FROM funnel.events WHERE occurred_at >= '2026-02-01T00:00:00Z'
    AND occurred_at < '2026-03-01T00:00:00Z'")" ] || fail "dump --from/--to: events missing"
expect_rc 65 "dump of a missing partition" replay dump --partition 9
# The whole dump through emit into a fresh topic, projected into a fresh
# database: the same tables (dead letters aside: they are not events).
lf_broker "topic fresh 3" >/dev/null || fail "devbroker: topic fresh not created"
"$BIN/leadflow-emit" -b "$LEADFLOW_BROKERS" -t fresh -q \
    <"$LF_TMP/dump.jsonl" || fail "leadflow-emit rejected the dump ($?)"
lf_newdb fresh
PGDATABASE=fresh lf_project -t fresh -g fresh --idle-exit 2 -q ||
    fail "projecting the fresh topic exited $?"
same_sums "$(echo "$C1" | grep -v dead_letters)" \
    "$(PGDATABASE=fresh lf_checksums | grep -v dead_letters)" \
    "dump -> emit -> project gave other tables"
echo "ok   dump: $(wc -l <"$LF_TMP/dump.jsonl") events; filters hold; re-sent through emit, the same tables"

# ---- promote ---------------------------------------------------------------
replay rebuild --into r_promote --from-db 2>/dev/null ||
    fail "rebuild r_promote exited $?"
gen 23 N- 60 # the live model moves past the rebuild
project
C2=$(sums)
# What the reader prints, for the old model and the new one (its view
# funnel.stage_counts sums to its leads).
old=$(q "SELECT (SELECT count(*) FROM funnel.leads) || ',' || (SELECT
    count(*) FROM funnel.events) || ',' || (SELECT sum(leads) FROM
    funnel.stage_counts WHERE channel IS NULL)")
new=$(q "SELECT (SELECT count(*) FROM r_promote.leads) || ',' || (SELECT
    count(*) FROM r_promote.events) || ',' || (SELECT count(*) FROM
    r_promote.leads)")
[ "$old" != "$new" ] || fail "the rebuilt model should lag the live one"
expect_rc 65 "promote of a schema that is not a rebuild" \
    sh -c "psql -X -q -c 'CREATE SCHEMA junk' && \"$R\" promote junk --no-group-check"
grep -q "not a complete rebuild" "$LF_TMP/err" || fail "promote junk: $(cat "$LF_TMP/err")"
# Two readers, as fast as they can until told to stop, failing on any
# error: one statement reading two tables and a view (over a function),
# and a transaction reading two tables in two statements.
rm -f "$LF_TMP/stop"
(
    while [ ! -e "$LF_TMP/stop" ]; do
        echo "SELECT (SELECT count(*) FROM funnel.leads) || ',' || (SELECT
            count(*) FROM funnel.events) || ',' || (SELECT sum(leads) FROM
            funnel.stage_counts WHERE channel IS NULL);"
    done | psql -X -At -v ON_ERROR_STOP=1 >"$LF_TMP/reader1" 2>"$LF_TMP/reader1.err"
) &
reader1=$!
(
    while [ ! -e "$LF_TMP/stop" ]; do
        echo "BEGIN ISOLATION LEVEL REPEATABLE READ;
            SELECT count(*) AS l FROM funnel.events \gset
            SELECT count(*) || ',' || :l || ',' || count(*) FROM funnel.leads;
            COMMIT;"
    done | psql -X -At -q -v ON_ERROR_STOP=1 >"$LF_TMP/reader2" 2>"$LF_TMP/reader2.err"
) &
reader2=$!
sleep 0.5
replay promote r_promote --no-group-check >"$LF_TMP/promote" 2>&1 ||
    fail "promote exited $?: $(cat "$LF_TMP/promote")"
sleep 0.5
touch "$LF_TMP/stop"
wait "$reader1" || fail "reader 1 failed: $(cat "$LF_TMP/reader1.err")"
wait "$reader2" || fail "reader 2 failed: $(cat "$LF_TMP/reader2.err")"
for r in reader1 reader2; do
    mixed=$(sort -u "$LF_TMP/$r" | grep -vx -e "$old" -e "$new" || true)
    [ -z "$mixed" ] || fail "$r saw a mix: $mixed (old $old, new $new)"
    grep -qx "$old" "$LF_TMP/$r" && grep -qx "$new" "$LF_TMP/$r" ||
        fail "$r did not overlap the promote ($(sort -u "$LF_TMP/$r" | tr '\n' ' '))"
    [ "$(tail -1 "$LF_TMP/$r")" = "$new" ] || fail "$r ended on the old model"
done
oldschema=$(q "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'funnel_old_%'")
[ -n "$oldschema" ] || fail "no funnel_old_* schema"
[ "$(q "SELECT count(*) FROM pg_namespace WHERE nspname = 'r_promote'")" = 0 ] ||
    fail "r_promote still exists"
for priv in "has_schema_privilege('leadflow_analyst', 'funnel', 'USAGE')" \
    "has_table_privilege('leadflow_analyst', 'funnel.leads', 'SELECT')" \
    "has_table_privilege('leadflow_analyst', 'funnel.stage_counts', 'SELECT')" \
    "has_table_privilege('leadflow_projector', 'funnel.events', 'INSERT')" \
    "has_function_privilege('leadflow_analyst', 'funnel.leads_in_scope(date, date, text)', 'EXECUTE')"; do
    [ "$(q "SELECT $priv")" = t ] || fail "not carried over: $priv"
done
[ "$(q "SELECT count(*) FROM pg_class WHERE relnamespace =
    'funnel'::regnamespace AND relkind = 'v'")" = "$(q "SELECT count(*) FROM
    pg_class WHERE relnamespace = '$oldschema'::regnamespace AND relkind =
    'v'")" ] || fail "views not carried over"
project # resumes from the rebuilt model's offsets, re-reads the rest
same_sums "$C2" "$(sums)" "after promote + projector run the tables differ from the old model"
same_sums "$C2" "$(sums "$oldschema")" "the old model changed"
echo "ok   promote: $(cat "$LF_TMP/reader1" "$LF_TMP/reader2" | wc -l) reads by 2 readers saw only $old or $new; views and privileges carried; caught up to the old tables"

# ---- dead letters ----------------------------------------------------------
replay dead-letters list >"$LF_TMP/dl" 2>/dev/null || fail "list exited $?"
[ "$(tail -n +2 "$LF_TMP/dl" | wc -l)" = 3 ] || fail "list: expected 3 open"
grep -q "unknown schema id 7" "$LF_TMP/dl" || fail "list: no schema id 7 letter"
q "UPDATE funnel.dead_letters SET error = 'old reason'" >/dev/null ||
    fail "could not age the dead letters' reasons"
replay dead-letters retry --all >"$LF_TMP/retry" 2>"$LF_TMP/err" ||
    fail "retry --all exited $?"
grep -q "selected=3 applied=0 .* still_failing=3" "$LF_TMP/err" ||
    fail "retry --all: $(cat "$LF_TMP/err")"
[ "$(q "SELECT count(*) FROM funnel.dead_letters WHERE resolved_at IS NULL
    AND retries = 1 AND retried_at IS NOT NULL AND error <> 'old reason'")" = 3 ] ||
    fail "still-failing letters should stay open with an updated reason"
# A letter an older, buggier projector wrote for a message that decodes
# today: the message is real (in topic legacy), the row as it would be.
lf_broker "topic legacy 1" >/dev/null || fail "devbroker: topic legacy not created"
xgood='{"event_id":"x-1","lead_id":"X-1","type":"captured","occurred_at":"2026-01-03T00:00:00Z","source":"t","channel":"web"}'
xval=$(echo "$xgood" | "$TESTS/lf_codec_tool" encode)
echo "$(hex X-1) $xval" | lf_send_raw legacy >/dev/null ||
    fail "could not produce the legacy message"
xoff=0 # the first message of a new one-partition topic
xid=$(q "INSERT INTO funnel.dead_letters (topic, partition, \"offset\", key,
    value, error) VALUES ('legacy', 0, $xoff, 'X-1', '\\x$xval',
    'framing: unknown schema id 1 (known: none)') RETURNING id") ||
    fail "could not insert the legacy dead letter"
replay dead-letters retry --id "$xid" --dry-run >"$LF_TMP/retry" 2>"$LF_TMP/err" ||
    fail "retry --dry-run exited $?: $(cat "$LF_TMP/err")"
grep -q "id=$xid .*would apply" "$LF_TMP/retry" || fail "dry run: $(cat "$LF_TMP/retry")"
[ "$(q "SELECT count(*) FROM funnel.events WHERE event_id = 'x-1'")" = 0 ] ||
    fail "a dry run applied the event"
replay dead-letters retry --id "$xid" --note "fixed in 0.1.1" \
    >"$LF_TMP/retry" 2>"$LF_TMP/err" || fail "retry --id exited $?"
grep -q "applied=1 new_events=1" "$LF_TMP/err" || fail "retry: $(cat "$LF_TMP/err")"
[ "$(q "SELECT topic || '/' || partition || '/' || \"offset\" FROM
    funnel.events WHERE event_id = 'x-1'")" = "legacy/0/$xoff" ] ||
    fail "the event was not applied with its original coordinates"
[ "$(q "SELECT stage FROM funnel.leads WHERE lead_id = 'X-1'")" = captured ] ||
    fail "the lead of the retried event was not projected"
res=$(q "SELECT resolution FROM funnel.dead_letters WHERE id = $xid AND
    resolved_at IS NOT NULL")
case "$res" in *"event x-1"*"fixed in 0.1.1"*) ;;
*) fail "resolution \"$res\" should name the event and the note" ;; esac
# A letter under a Kafka key other than its lead_id gets the 'key' anomaly
# the projector gives such a message; a tombstone keeps the projector's
# reason: a rebuild then finds the same rows.
kgood='{"event_id":"x-2","lead_id":"X-2","type":"captured","occurred_at":"2026-01-03T00:00:00Z","source":"t","channel":"web"}'
kval=$(echo "$kgood" | "$TESTS/lf_codec_tool" encode)
kid=$(q "INSERT INTO funnel.dead_letters (topic, partition, \"offset\", key,
    value, error) VALUES ('legacy', 0, 7, 'OTHER', '\\x$kval', 'old')
    RETURNING id") || fail "could not insert the keyed dead letter"
tid=$(q "INSERT INTO funnel.dead_letters (topic, partition, \"offset\", key,
    value, error) VALUES ('legacy', 0, 8, 'X-3', NULL, 'old') RETURNING id") ||
    fail "could not insert the tombstone"
replay dead-letters retry --id "$kid,$tid" >"$LF_TMP/retry" 2>"$LF_TMP/err" ||
    fail "retry of the keyed letter and the tombstone exited $?"
[ "$(q "SELECT reason FROM funnel.anomalies WHERE event_id = 'x-2' AND
    kind = 'key'")" = 'Kafka key "OTHER" differs from lead_id' ] ||
    fail "the retried letter under another key has no key anomaly"
[ "$(q "SELECT error FROM funnel.dead_letters WHERE id = $tid")" = \
    "empty message: expected a framed Avro LeadEvent" ] ||
    fail "the tombstone's reason: $(q "SELECT error FROM funnel.dead_letters WHERE id = $tid")"
q "DELETE FROM funnel.dead_letters WHERE id IN ($kid, $tid)" >/dev/null
# A letter (under another key) of a person erased since: applied erased,
# and the letter keeps neither key nor value (they hold the person's data).
replay erase --lead X-9 --request R-9 >/dev/null 2>&1 || fail "erase X-9"
project
egood='{"event_id":"x-9","lead_id":"X-9","type":"captured","occurred_at":"2026-01-03T00:00:00Z","source":"t","channel":"web","attributes":{"email":"x9@pii.example"}}'
eval_=$(echo "$egood" | "$TESTS/lf_codec_tool" encode)
eid=$(q "INSERT INTO funnel.dead_letters (topic, partition, \"offset\", key,
    value, error) VALUES ('legacy', 0, 9, 'ACME9', '\\x$eval_', 'old')
    RETURNING id") || fail "could not insert the erased person's letter"
replay dead-letters retry --id "$eid" >/dev/null 2>&1 ||
    fail "retry of the erased person's letter exited $?"
[ "$(q "SELECT lead_id LIKE 'erased:%' FROM funnel.events WHERE event_id = 'x-9'")" = t ] ||
    fail "the erased person's letter was not applied erased"
[ "$(q "SELECT key IS NULL AND value IS NULL AND error LIKE '%[erased:%'
    FROM funnel.dead_letters WHERE id = $eid")" = t ] ||
    fail "the erased person's letter kept its key or value"
q "DELETE FROM funnel.dead_letters WHERE id = $eid" >/dev/null
C3=$(sums)
expect_rc 0 "a second retry of the same letter" replay dead-letters retry --id "$xid"
grep -q "id=$xid skipped: resolved" "$LF_TMP/out" || fail "second retry: $(cat "$LF_TMP/out")"
expect_rc 0 "retry --all again" replay dead-letters retry --all
grep -q "selected=3 applied=0" "$LF_TMP/err" || fail "retry --all again: $(cat "$LF_TMP/err")"
same_sums "$C3" "$(sums)" "a second retry changed the tables"
[ "$(q "SELECT count(*) FROM funnel.events WHERE event_id = 'x-1'")" = 1 ] ||
    fail "the retried event is not there exactly once"
expect_rc 65 "retry of a missing id" replay dead-letters retry --id 999999
replay dead-letters list --all >"$LF_TMP/dl" 2>/dev/null || fail "list --all exited $?"
[ "$(grep -c $'\tresolved\t' "$LF_TMP/dl")" = 1 ] || fail "list --all: $(cat "$LF_TMP/dl")"
replay dead-letters list --since 2100-01-01 >"$LF_TMP/dl" 2>/dev/null || fail "list --since exited $?"
[ "$(wc -l <"$LF_TMP/dl")" = 1 ] || fail "list --since: rows from the past"
echo "ok   dead letters: 3 still failing stay open with updated reasons; a decodable one applied once"
# A Kafka key is any bytes: the list escapes what is not UTF-8 (and
# control bytes), keeps what is, and the letter stays one line.
kid=$(q "INSERT INTO funnel.dead_letters (topic, partition, \"offset\", key,
    value, error) VALUES ('legacy', 0, 1, '\\xff41c3a90962e2', '\\x00',
    'test') RETURNING id") || fail "could not insert the odd-key letter"
replay dead-letters list >"$LF_TMP/dl" 2>/dev/null || fail "list exited $?"
line=$(grep "^$kid	" "$LF_TMP/dl") || fail "list: no letter $kid"
[ "$(echo "$line" | cut -f8)" = '\xffAé\tb\xe2' ] ||
    fail "list: key written as $(echo "$line" | cut -f8 | od -c | head -2)"
q "DELETE FROM funnel.dead_letters WHERE id = $kid" >/dev/null
echo "ok   dead letters: a key of invalid UTF-8 listed escaped, on one line"

# ---- promote under an idle projector ----------------------------------------
# A projector left running (a promote with --no-group-check that missed
# it), drained and idle: under the same rules it resumes from the promoted
# tables' offsets at once, re-reading what only the replaced tables had;
# under other rules it stops (78). Neither waits for a new message.
LF_WAIT_LOGS=("$LF_TMP/idle.log")
lf_project -t "$TOPIC" -g "$GROUP" -v 2>"$LF_TMP/idle.log" &
ipid=$!
LF_PIDS+=("$ipid")
wait_for 60 "the idle projector was never assigned" \
    grep -q 'msg=assigned' "$LF_TMP/idle.log"
replay rebuild --into r_idle --from-db 2>/dev/null || fail "rebuild r_idle exited $?"
gen 31 I- 40
settled() { # the stored offsets hold still for 3 s
    local a b
    a=$(q "SELECT sum(next_offset) FROM funnel.offsets")
    sleep 3
    b=$(q "SELECT sum(next_offset) FROM funnel.offsets")
    [ "$a" = "$b" ] && [ "$(q "SELECT count(*) FROM funnel.leads WHERE
        lead_id LIKE 'I-%'")" != 0 ]
}
wait_for 60 "the idle projector did not store I-" settled
C4=$(sums)
[ "$(q "SELECT count(*) FROM r_idle.leads WHERE lead_id LIKE 'I-%'")" = 0 ] ||
    fail "r_idle should lack the I- leads"
replay promote r_idle --no-group-check >"$LF_TMP/promote" 2>&1 ||
    fail "promote r_idle exited $?"
grep -q "^definition: \"default\" version 1 (sha256 [0-9a-f]*), the same as the old funnel's$" \
    "$LF_TMP/promote" || fail "promote r_idle: $(cat "$LF_TMP/promote")"
caught_up() { [ "$(sums)" = "$C4" ]; }
wait_for 30 "the idle projector never re-read what the promote took away ($(q \
    "SELECT count(*) FROM funnel.leads WHERE lead_id LIKE 'I-%'") I- leads)" caught_up
grep -q 'stored offsets changed under this projector' "$LF_TMP/idle.log" ||
    fail "the idle projector did not say why it resumed"
kill -0 "$ipid" 2>/dev/null || fail "the idle projector stopped under the same rules"
sed -e 's/"name": "default"/"name": "strict"/' -e 's/"version": 1/"version": 2/' \
    -e 's/"threshold": "event"/"threshold": 90/' \
    "$SRC/schemas/funnel/default.json" >"$LF_TMP/strict.json"
replay rebuild --into r_strict --from-db --definition "$LF_TMP/strict.json" \
    2>/dev/null || fail "rebuild r_strict exited $?"
replay promote r_strict --no-group-check >/dev/null 2>&1 ||
    fail "promote r_strict exited $?"
stopped() { ! kill -0 "$ipid" 2>/dev/null; }
wait_for 30 "the idle projector went on under other rules" stopped
rc=0
wait "$ipid" || rc=$?
[ "$rc" = 78 ] || fail "the idle projector exited $rc under other rules, want 78"
grep -q 'now record definition "strict" version 2' "$LF_TMP/idle.log" ||
    fail "the refusal does not name the new rules: $(tail -3 "$LF_TMP/idle.log")"
echo "ok   promote under an idle projector: same rules, it re-read what the promote took away; other rules, exit 78"
