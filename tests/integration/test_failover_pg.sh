#!/usr/bin/env bash
# test_failover_pg.sh BIN_DIR: leadflow-project across a PostgreSQL failover
# to an asynchronous standby that lost the primary's last commits.
#
# A primary (tools/pg-throwaway.sh) and a `pg_basebackup -R` streaming
# standby (tools/pg-standby.sh) on this machine; the projector is given both
# in one libpq multi-host conninfo with target_session_attrs=read-write, so
# libpq itself finds whichever is the primary. While it drains a topic in
# small batches, the primary is stopped hard (pg_ctl -m immediate) and the
# standby promoted. Checked:
#   - the standby really lost commits: the old primary's funnel.offsets
#     (read from its data directory, restarted alone afterwards) are ahead
#     of what the promoted standby held;
#   - the stop came mid-stream, with commits flowing;
#   - after the projector has caught up on the new primary, every funnel
#     table equals a clean run (the same topic projected into a fresh
#     database; lf_checksums): nothing lost, nothing stored twice.
# Then the same while the projector is idle: it has drained a second topic
# (no --metrics, no message coming) when the new primary is stopped hard and
# a standby of it that stopped receiving before the drain is promoted. With
# no batch to write and no probe, only its idle watch of the connection can
# find out that the positions it holds are ahead of the new primary's.
# Two failovers here (about a minute); 20 at random moments are the
# `failover` scenario of tests/chaos/chaos.sh --long.
set -euo pipefail
BIN=$(cd "${1:?usage: test_failover_pg.sh BIN_DIR}" && pwd)
. "$(dirname "$0")/lib.sh"

LEADS=${LF_TEST_FAILOVER_LEADS:-2000}
TOPIC=fo

# The two clusters of the pair are ours to stop, before lib.sh removes LF_TMP.
fo_cleanup() {
    local d
    for d in "$LF_TMP/pa" "$LF_TMP/pb" "$LF_TMP/pc"; do
        [ -d "$d" ] && "$SRC/tools/pg-throwaway.sh" stop "$d" >/dev/null 2>&1
    done
    lf_cleanup
}
trap fo_cleanup EXIT

lf_stack_up
echo "stack: brokers=$LEADFLOW_BROKERS reference pg=$PGHOST:$PGPORT"
lf_broker "topic $TOPIC 4" >/dev/null
"$BIN/leadflow-gen" --leads "$LEADS" --seed 31 --anomalies 0.1 \
    --duplicates 0.05 --late 0.1 --produce -b "$LEADFLOW_BROKERS" -t "$TOPIC" \
    -q || fail "leadflow-gen failed"

# ---- the clean run: the same topic into a fresh database ---------------
lf_newdb clean
PGDATABASE=clean lf_project -t "$TOPIC" -g g-clean --idle-exit 2 -q ||
    fail "the clean projection exited $?"
CLEAN=$(PGDATABASE=clean lf_checksums)
TOTAL=$(psql -X -At -d clean -c "SELECT sum(next_offset) FROM funnel.offsets")
EVENTS=$(psql -X -At -d clean -c "SELECT count(*) FROM funnel.events")
echo "clean run: $TOTAL messages, $EVENTS events"

# ---- the pair ------------------------------------------------------------
PA=$LF_TMP/pa
PB=$LF_TMP/pb
P1=$("$SRC/tools/pg-throwaway.sh" start "$PA" 2>"$LF_TMP/pa.err" |
    sed -n 's/^export PGPORT=//p') || { cat "$LF_TMP/pa.err" >&2; fail "primary"; }
[ -n "$P1" ] || { cat "$LF_TMP/pa.err" >&2; fail "the primary did not start"; }
psql -X -q -h "$PA" -p "$P1" -d postgres -c "CREATE DATABASE fo" ||
    fail "CREATE DATABASE on the primary"
P2=$("$SRC/tools/pg-standby.sh" start "$PA" "$PB" 2>"$LF_TMP/pb.err" |
    sed -n 's/^export PGPORT=//p') || true
[ -n "$P2" ] || { cat "$LF_TMP/pb.err" >&2; fail "the standby did not start"; }
echo "pair: primary port $P1, asynchronous standby port $P2 (sockets in $LF_TMP)"

CONN="host=$PA,$PB port=$P1,$P2 dbname=fo user=postgres connect_timeout=5
      target_session_attrs=read-write"
at() { # at DIR PORT SQL: one value from one member of the pair
    psql -X -At -v ON_ERROR_STOP=1 -h "$1" -p "$2" -d fo -c "$3"
}
offsets_sum="SELECT coalesce(sum(next_offset), 0) FROM funnel.offsets"
sum_at() { at "$1" "$2" "$offsets_sum" 2>/dev/null || echo 0; }
# reach DB DIR PORT TOTAL SECONDS LOG WHAT: wait until the offsets stored in
# DB on that server reach TOTAL, the projector $PJ alive; else fail.
reach() {
    local db=$1 dir=$2 port=$3 total=$4 log=$6 i got=0
    for i in $(seq 1 $(($5 * 10))); do
        got=$(psql -X -At -h "$dir" -p "$port" -d "$db" -c "$offsets_sum" \
            2>/dev/null || echo 0)
        [ "$got" -ge "$total" ] && return 0
        kill -0 "$PJ" 2>/dev/null ||
            fail "the projector died: $(tail -n 5 "$log")"
        sleep 0.1
    done
    fail "$7 in $5 s ($got of $total offsets): $(tail -n 5 "$log")"
}

# Small batches: many commits, and a stream that lasts long enough to stop
# the primary in the middle of it.
"${LF_PROJECT[@]}" -d "$CONN" -t "$TOPIC" -g g-fo --batch 3 --writers 2 -v \
    2>"$LF_TMP/fo.log" &
PJ=$!
LF_PIDS+=("$PJ")

for i in $(seq 1 1200); do
    [ "$(sum_at "$PA" "$P1")" -ge $((TOTAL / 10)) ] && break
    kill -0 "$PJ" 2>/dev/null || fail "the projector died: $(tail -n 3 "$LF_TMP/fo.log")"
    sleep 0.1
done
[ "$i" -lt 1200 ] || fail "no tenth of the stream projected in 120 s"

# On this machine the standby usually replays within milliseconds of the
# primary, so a hard stop would often find it caught up. Pausing its replay
# (pg_wal_replay_pause) is no help: promotion replays every WAL record it
# had received. So its WAL receiver is cut instead: from here on the standby
# receives nothing, and every commit the primary makes before the stop is a
# commit the standby loses, as an asynchronous standby loses what was in
# flight when its primary died.
"$SRC/tools/pg-standby.sh" cut "$PB" || fail "cannot cut the standby's WAL receiver"
STANDBY=$(sum_at "$PB" "$P2")
# Commits keep flowing on the primary; stop it while they do.
for i in $(seq 1 600); do
    [ "$(sum_at "$PA" "$P1")" -ge $((STANDBY + 60)) ] && break
    sleep 0.05
done
lf_as_pg "$PGBIN_DIR/pg_ctl" -D "$PA/data" -m immediate -w -t 30 stop \
    >/dev/null || fail "cannot stop the primary"
echo "primary stopped hard (-m immediate); the standby holds $STANDBY offsets"
sleep 1
"$SRC/tools/pg-standby.sh" promote "$PB" || fail "cannot promote the standby"
echo "standby promoted"

# The projector is done once the new primary's offsets cover the topic.
reach fo "$PB" "$P2" "$TOTAL" 120 "$LF_TMP/fo.log" \
    "the projector did not catch up on the promoted standby"
sleep 1 # let a batch in flight commit before SIGTERM
kill -TERM "$PJ"
wait "$PJ" || fail "the projector exited $? on SIGTERM"
grep -q "will retry" "$LF_TMP/fo.log" ||
    fail "the projector did not notice the failover (no \"will retry\" logged)"
echo "projector reconnected: $(grep -c 'will retry' "$LF_TMP/fo.log") retries logged"

# What the old primary had committed, from its own data directory.
PRIMARY=$("$SRC/tools/pg-standby.sh" inspect "$PA" fo "$offsets_sum") ||
    fail "cannot read the old primary's offsets"
echo "offsets: old primary $PRIMARY, promoted standby $STANDBY, topic $TOTAL"
[ "$PRIMARY" -gt "$STANDBY" ] ||
    fail "the standby lost no commits ($PRIMARY <= $STANDBY): nothing tested"
[ "$PRIMARY" -lt "$TOTAL" ] ||
    fail "the primary had committed the whole topic before it stopped"
echo "ok   the standby lost $((PRIMARY - STANDBY)) offsets' worth of commits"

GOT=$(PGHOST=$PB PGPORT=$P2 PGDATABASE=fo lf_checksums)
NOW=$(at "$PB" "$P2" "SELECT count(*) FROM funnel.events")
if [ "$GOT" != "$CLEAN" ]; then
    diff <(echo "$CLEAN") <(echo "$GOT") >&2 || true
    fail "after the failover: $NOW of $EVENTS events" \
        "($((EVENTS - NOW)) missing); the tables differ from the clean run"
fi
echo "ok   after the failover the tables equal the clean run" \
    "($(echo "$GOT" | awk -F'|' '{printf "%s=%s ", $1, $2}'))"

# ---- a failover while the projector is idle ----------------------------
# fo2 gets two streams: the second standby receives the projection of the
# first (the schema and some commits), then is cut and loses all of the
# second's.
TOPIC2=fo2
lf_broker "topic $TOPIC2 4" >/dev/null
gen2() { # gen2 SEED: prints the messages delivered
    "$BIN/leadflow-gen" --leads 200 --seed "$1" --anomalies 0.1 --produce \
        -b "$LEADFLOW_BROKERS" -t "$TOPIC2" 2>&1 |
        sed -n 's/.*msg="summary".* delivered=\([0-9]*\) .*/\1/p'
}
at "$PB" "$P2" "SELECT 1" >/dev/null || fail "the promoted standby is down"
psql -X -q -h "$PB" -p "$P2" -d postgres -c "CREATE DATABASE fo2" ||
    fail "CREATE DATABASE on the new primary"
PC=$LF_TMP/pc
P3=$("$SRC/tools/pg-standby.sh" start "$PB" "$PC" 2>"$LF_TMP/pc.err" |
    sed -n 's/^export PGPORT=//p') || true
[ -n "$P3" ] || { cat "$LF_TMP/pc.err" >&2; fail "the second standby did not start"; }
at2() { psql -X -At -v ON_ERROR_STOP=1 -h "$1" -p "$2" -d fo2 -c "$3"; }
sum2_at() { at2 "$1" "$2" "$offsets_sum" 2>/dev/null || echo 0; }
CONN2="host=$PB,$PC port=$P2,$P3 dbname=fo2 user=postgres connect_timeout=5
       target_session_attrs=read-write"
"${LF_PROJECT[@]}" -d "$CONN2" -t "$TOPIC2" -g g-fo2 --writers 2 -v \
    2>"$LF_TMP/fo2.log" &
PJ=$!
LF_PIDS+=("$PJ")
drained2() { # drained2 TOTAL: wait until the new primary's offsets reach it
    reach fo2 "$PB" "$P2" "$1" 120 "$LF_TMP/fo2.log" "$TOPIC2 not drained"
}
FIRST=$(gen2 41)
[ -n "$FIRST" ] && [ "$FIRST" -gt 0 ] || fail "leadflow-gen sent nothing"
drained2 "$FIRST"
for i in $(seq 1 100); do # the standby has replayed the first stream
    [ "$(sum2_at "$PC" "$P3")" -ge "$FIRST" ] && break
    sleep 0.1
done
"$SRC/tools/pg-standby.sh" cut "$PC" || fail "cannot cut the second standby"
STANDBY2=$(sum2_at "$PC" "$P3")
[ -n "$(gen2 42)" ] || fail "leadflow-gen sent nothing"
lf_newdb clean2
PGDATABASE=clean2 lf_project -t "$TOPIC2" -g g-clean2 --idle-exit 2 -q ||
    fail "the clean projection of $TOPIC2 exited $?"
CLEAN2=$(PGDATABASE=clean2 lf_checksums)
TOTAL2=$(psql -X -At -d clean2 -c "SELECT sum(next_offset) FROM funnel.offsets")
drained2 "$TOTAL2"
sleep 3 # idle: drained, no message coming
lf_as_pg "$PGBIN_DIR/pg_ctl" -D "$PB/data" -m immediate -w -t 30 stop \
    >/dev/null || fail "cannot stop the new primary"
"$SRC/tools/pg-standby.sh" promote "$PC" || fail "cannot promote the second standby"
echo "idle projector: primary stopped hard after the drain of $TOTAL2" \
    "offsets, the standby (which holds $STANDBY2) promoted"
reach fo2 "$PC" "$P3" "$TOTAL2" 60 "$LF_TMP/fo2.log" \
    "the idle projector did not re-read what the promoted standby lost"
sleep 1
kill -TERM "$PJ"
wait "$PJ" || fail "the projector exited $? on SIGTERM"
grep -q "lost the connection to PostgreSQL while idle" "$LF_TMP/fo2.log" ||
    fail "the idle projector did not log the lost connection"
GOT2=$(PGHOST=$PC PGPORT=$P3 PGDATABASE=fo2 lf_checksums)
[ "$GOT2" = "$CLEAN2" ] || {
    diff <(echo "$CLEAN2") <(echo "$GOT2") >&2 || true
    fail "after the idle failover the tables differ from the clean run"
}
echo "ok   idle failover: the projector re-read all $TOTAL2 offsets the" \
    "standby lost; the tables equal the clean run"
echo "PASS test_failover_pg"
