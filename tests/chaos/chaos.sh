#!/usr/bin/env bash
# chaos.sh: fault injection against the whole pipeline: no event lost or
# duplicated, and the tables equal a clean run's, whatever fails.
#
#   tests/chaos/chaos.sh [--quick|--long] [-j N] [--bin DIR] [SCENARIO...]
#
# A generated workload (leadflow-gen: anomalies, duplicates, late and
# shuffled events; a third of the lines without event_id, so emit derives
# it) is streamed through leadflow-emit and leadflow-project while a fault
# happens. Each scenario runs on its own dev stack (devbroker + throwaway
# PostgreSQL), so a crash in one cannot disturb another and scenarios can run
# side by side (-j). Afterwards every scenario checks:
#   lost        events of the workload missing from funnel.events
#   duplicated  rows of funnel.events beyond one per event of the workload
#   tables      lf_checksums of every funnel table equal those of one clean
#               run over the same file (tests/integration/lib.sh)
# plus what the scenario itself promises (below), and prints one table.
#
# Scenarios (quick / long):
#   kill      the projector SIGKILLed at random moments and restarted, 10 /
#             100 times (one kill in four during start-up, the others after
#             it made progress); the stream is being emitted meanwhile
#   pg        PostgreSQL crashed (-m immediate) and restarted mid-stream
#             (1 / 3 times), then stopped for CHAOS_PG_DOWN_S seconds
#             (connections refused) and started again; the projector keeps
#             running and must log "will retry"
#   broker    three brokers; latency (rtt), request errors (Produce, Fetch,
#             OffsetCommit, JoinGroup, Heartbeat, _TRANSPORT) and brokers
#             down and up, through the devbroker, while emit (acks=all,
#             retries, not idempotent: see scenario_broker) and the
#             projector run; emit must still deliver every line (exit 0)
#   two       two projectors in one group; one SIGKILLed (1 / 4 times,
#             restarted in between), the other carries on and drains
#   emitkill  leadflow-emit killed mid-file (SIGKILL, and a SIGTERM), each
#             time re-sending the whole file; finally the file is re-sent in
#             full: the topic holds duplicates, the tables do not
#   diskfull  a test trigger on funnel.leads raises disk_full (53100), then
#             check_violation (23514), for CHAOS_DISK_S seconds each: while
#             it is there funnel.offsets must not move, no event may be
#             stored or dead-lettered; the projector retries and completes
#             once the trigger is dropped
# Long set only (named on the command line, they run in --quick too; their
# short versions are tests/integration/test_failover_pg.sh and
# test_group.sh):
#   failover  PostgreSQL failover, CHAOS_FAILOVERS (20) times: the stack's
#             PostgreSQL and an asynchronous streaming standby
#             (tools/pg-standby.sh), the projector given both in one libpq
#             multi-host conninfo (target_session_attrs=read-write); at a
#             random moment of the stream the primary is stopped hard
#             (-m immediate) and the standby promoted, the old primary is
#             rebuilt as the new standby. Half of the time the standby's WAL
#             receiver is cut a random moment before the stop, so that it
#             surely misses commits; each failover logs what the standby lost
#             (old primary's offsets, read from its data directory, against
#             the promoted one's), and at least a quarter must have lost some
#   group     three projectors in one group on 12 partitions, restarted one
#             at a time (SIGTERM and SIGKILL alternately), CHAOS_GROUP_RESTARTS
#             (30) times while the stream is produced; the committed ranges
#             in their logs (-v -v, msg=committed) must chain per partition:
#             no batch of a partition written twice, none skipped
#             (tests/chaos/group_lib.sh)
#   scale     1 -> 3 -> 1 projectors in one group during the stream, the
#             same checks
#   replayfo  leadflow-replay rewind and promote cut off by a failover while
#             they wait for a lock (they must fail and change nothing, then
#             succeed when run again), and CHAOS_REPLAY_FAILOVERS (4) rewinds
#             with the primary stopped at a random moment around them: the
#             promoted standby holds the offsets from before or after the
#             rewind, never a mix
#   identity  a workload of its own with merged, voided and erased events
#             (leadflow-gen --merges 0.05 --voids 0.05 --erasures 0.01),
#             projected with a pseudonym key while the projector is
#             SIGKILLed CHAOS_ID_KILLS (8 / 50) times at random moments
#             (random batch sizes, so that merges and erasures fall on
#             either side of a kill); then funnel.merges, erasures and
#             erased_leads too equal a clean run's (another database on the
#             same stack), and pg_dump of either database holds none of the
#             erased lead ids (every lead a merged event connects to an
#             erased one)
#
# Knobs (environment): CHAOS_LEADS (quick 500 / long 4000), CHAOS_KILLS,
# CHAOS_PG_CRASHES, CHAOS_PG_DOWN_S, CHAOS_DISK_S, CHAOS_TWO_KILLS,
# CHAOS_EMIT_KILLS, CHAOS_FAILOVERS, CHAOS_GROUP_RESTARTS,
# CHAOS_REPLAY_FAILOVERS, CHAOS_ID_KILLS, CHAOS_STREAM_S (how long emit
# takes to send the file),
# CHAOS_SEED (printed; the same seed gives the same workload), CHAOS_JOBS
# (default 2); CHAOS_KEEP=1 keeps the logs. The figures in RELIABILITY.md
# come from `make chaos` (--long) and test_chaos_quick.sh (--quick).
#
# Exit status: 0 every scenario passed, 1 one failed (its log is printed),
# 64 usage.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF=$HERE/$(basename "${BASH_SOURCE[0]}")
ALL_SCENARIOS="kill pg broker two emitkill diskfull"
LONG_SCENARIOS="failover group scale replayfo identity"

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$SELF"
}

# ======================================================================
# The parent: workload, baseline, a pool of scenario children, the table.
# ======================================================================
parent() {
    local mode=quick jobs=${CHAOS_JOBS:-2} bin=${LEADFLOW_BIN:-} scen=()
    while [ $# -gt 0 ]; do
        case $1 in
        --quick) mode=quick ;;
        --long) mode=long ;;
        -j) jobs=${2:?-j needs a number}; shift ;;
        -j*) jobs=${1#-j} ;;
        --bin) bin=${2:?--bin needs a directory}; shift ;;
        -h | --help) usage; exit 0 ;;
        -*) echo "chaos.sh: unknown option $1" >&2; exit 64 ;;
        *)
            case " $ALL_SCENARIOS $LONG_SCENARIOS " in *" $1 "*) scen+=("$1") ;;
            *) echo "chaos.sh: unknown scenario $1 (one of $ALL_SCENARIOS" \
                "$LONG_SCENARIOS)" >&2
                exit 64 ;;
            esac ;;
        esac
        shift
    done
    if [ ${#scen[@]} = 0 ]; then
        # the long set starts with its longest scenarios
        if [ "$mode" = long ]; then
            read -r -a scen <<<"failover group $ALL_SCENARIOS scale replayfo identity"
        else
            read -r -a scen <<<"$ALL_SCENARIOS"
        fi
    fi
    [ -n "$bin" ] || bin=$(cd "$HERE/../.." && pwd)/build/bin
    bin=$(cd "$bin" && pwd)
    [ -x "$bin/leadflow-project" ] || {
        echo "chaos.sh: no leadflow-project in $bin (--bin DIR)" >&2
        exit 64
    }

    # Defaults per set; the environment wins.
    if [ "$mode" = long ]; then
        : "${CHAOS_LEADS:=4000}" "${CHAOS_KILLS:=100}" "${CHAOS_PG_CRASHES:=3}"
        : "${CHAOS_PG_DOWN_S:=10}" "${CHAOS_DISK_S:=10}" "${CHAOS_STREAM_S:=30}"
        : "${CHAOS_TWO_KILLS:=4}" "${CHAOS_EMIT_KILLS:=5}"
        : "${CHAOS_FAILOVERS:=20}" "${CHAOS_GROUP_RESTARTS:=30}"
        : "${CHAOS_REPLAY_FAILOVERS:=4}" "${CHAOS_ID_KILLS:=50}"
    else
        : "${CHAOS_LEADS:=500}" "${CHAOS_KILLS:=10}" "${CHAOS_PG_CRASHES:=1}"
        : "${CHAOS_PG_DOWN_S:=10}" "${CHAOS_DISK_S:=4}" "${CHAOS_STREAM_S:=10}"
        : "${CHAOS_TWO_KILLS:=1}" "${CHAOS_EMIT_KILLS:=2}"
        : "${CHAOS_FAILOVERS:=2}" "${CHAOS_GROUP_RESTARTS:=3}"
        : "${CHAOS_REPLAY_FAILOVERS:=2}" "${CHAOS_ID_KILLS:=8}"
    fi
    : "${CHAOS_SEED:=$((RANDOM % 1000 + 1))}"
    export CHAOS_LEADS CHAOS_KILLS CHAOS_PG_CRASHES CHAOS_PG_DOWN_S \
        CHAOS_DISK_S CHAOS_STREAM_S CHAOS_TWO_KILLS CHAOS_EMIT_KILLS CHAOS_SEED \
        CHAOS_FAILOVERS CHAOS_GROUP_RESTARTS CHAOS_REPLAY_FAILOVERS \
        CHAOS_ID_KILLS
    export LEADFLOW_BIN=$bin
    CHAOS_WORK=$(mktemp -d /tmp/leadflow-chaos.XXXXXX)
    export CHAOS_WORK
    local pids=() started
    trap 'for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
          wait 2>/dev/null
          if [ -n "${CHAOS_KEEP:-}" ]; then echo "chaos: logs kept in $CHAOS_WORK"
          else rm -rf "$CHAOS_WORK"; fi' EXIT
    trap 'exit 143' TERM
    trap 'exit 130' INT
    started=$(date +%s)

    # The workload: one file for every scenario and the baseline.
    "$bin/leadflow-gen" --leads "$CHAOS_LEADS" --seed "$CHAOS_SEED" \
        --anomalies 0.1 --duplicates 0.05 --late 0.1 --shuffle 20 -q \
        -o "$CHAOS_WORK/gen.jsonl"
    # Every third line loses its event_id: emit derives one from the
    # content, the same each time the line is sent.
    sed -E '0~3 s/^\{"event_id":"[^"]*",/{/' "$CHAOS_WORK/gen.jsonl" \
        >"$CHAOS_WORK/work.jsonl"
    echo "chaos: $mode set, seed $CHAOS_SEED, $CHAOS_LEADS leads," \
        "$(wc -l <"$CHAOS_WORK/work.jsonl") lines, $jobs at a time," \
        "bin $bin"

    if ! bash "$SELF" --child baseline >"$CHAOS_WORK/baseline.log" 2>&1; then
        cat "$CHAOS_WORK/baseline.log" >&2
        echo "chaos: the clean baseline run failed" >&2
        exit 1
    fi
    echo "chaos: baseline $(awk -F'|' '{printf "%s=%s ", $1, $2}' \
        "$CHAOS_WORK/clean.sums")"

    # A pool of $jobs children, longest (kill) first.
    local s pid failed=0 running=0
    declare -A name_of=()
    for s in "${scen[@]}"; do
        while [ "$running" -ge "$jobs" ]; do
            wait -n || true
            running=$((running - 1))
        done
        bash "$SELF" --child "$s" >"$CHAOS_WORK/$s.log" 2>&1 &
        pid=$!
        pids+=("$pid")
        name_of[$pid]=$s
        running=$((running + 1))
        echo "chaos: started $s"
    done
    wait || true

    printf '\n%-9s %7s  %-46s %5s %5s %s\n' scenario events "faults injected" \
        lost dup "tables equal"
    for s in "${scen[@]}"; do
        if [ -f "$CHAOS_WORK/$s.result" ]; then
            IFS='|' read -r _ ev faults lost dup eq secs \
                <"$CHAOS_WORK/$s.result"
            printf '%-9s %7s  %-46s %5s %5s %s (%ss)\n' "$s" "$ev" "$faults" \
                "$lost" "$dup" "$eq" "$secs"
            [ "$lost" = 0 ] && [ "$dup" = 0 ] && [ "$eq" = yes ] &&
                grep -q '^PASS' "$CHAOS_WORK/$s.log" || failed=1
        else
            printf '%-9s %7s  %-46s %5s %5s %s\n' "$s" - "(did not finish)" \
                - - no
            failed=1
        fi
    done
    echo
    for s in "${scen[@]}"; do
        if ! grep -q '^PASS' "$CHAOS_WORK/$s.log" 2>/dev/null; then
            echo "---- $s: last lines of its log" >&2
            tail -n 40 "$CHAOS_WORK/$s.log" >&2 || true
        fi
    done
    echo "chaos: $(($(date +%s) - started)) s, seed $CHAOS_SEED" \
        "(CHAOS_SEED=$CHAOS_SEED reproduces the workload)"
    if [ "$failed" = 0 ]; then
        echo "PASS chaos ($mode)"
    else
        echo "FAIL chaos ($mode)"
        exit 1
    fi
}

# ======================================================================
# A child: one scenario on its own dev stack.
# ======================================================================
child() {
    SCEN=$1
    BIN=$LEADFLOW_BIN
    # shellcheck source=../integration/lib.sh
    . "$HERE/../integration/lib.sh"
    # A signal (the parent or CTest giving up) must still stop the stack.
    trap 'exit 143' TERM
    trap 'exit 130' INT
    W=$CHAOS_WORK
    WORK=$W/work.jsonl
    CLEAN=$W/clean # CLEAN.ids, CLEAN.sums: what the clean run stored
    NLINES=$(wc -l <"$WORK")
    T0=$(date +%s)
    FAULTS=()
    EMIT_ARGS=()
    PROJECT_ARGS=() # more leadflow-project arguments for project_bg, drain
    DB=$SCEN
    TOPIC=$SCEN
    if [ "$SCEN" = broker ]; then
        LEADFLOW_BROKER_ARGS="--brokers 3" lf_stack_up
    else
        lf_stack_up
    fi
    echo "stack: brokers=$LEADFLOW_BROKERS pg=$PGHOST:$PGPORT"
    case $SCEN in
    group | scale) ;; # group_lib.sh makes a 12-partition topic
    *) lf_broker "topic $TOPIC 4" >/dev/null
        lf_newdb "$DB" ;;
    esac
    export PGDATABASE=$DB
    "scenario_$SCEN"
}

log() { echo "$(date +%T) $*"; }

q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }

events() { # 0 until the projector has created the schema
    q "SELECT count(*) FROM funnel.events" 2>/dev/null || echo 0
}

# wait_progress BEFORE [SECONDS]: until funnel.events holds more than BEFORE
# rows, or every event of the workload. A group join on the mock waits out
# the last member's session (6 s) plus its initial rebalance delay (3 s):
# allow for that.
wait_progress() {
    local before=$1 limit=${2:-60} i n total
    total=$(wc -l <"$CLEAN.ids")
    for i in $(seq 1 $((limit * 10))); do
        n=$(events)
        [ "$n" -gt "$before" ] || [ "$n" -ge "$total" ] && return 0
        sleep 0.1
    done
    fail "no progress beyond $before events in ${limit} s"
}

# spawn NAME CMD...: CMD in the background; its pid in $SPAWNED, its exit
# status kept in a file for reap. (`wait PID` long after a child ended is
# not reliable here: pid_max may be 32768, pids come round within minutes
# on a busy machine, and bash forgets a saved status once a new child gets
# the same pid.) Stdin from $SPAWN_STDIN if set.
NSPAWN=0
spawn() {
    local name=$1
    shift
    rm -f "$W/$SCEN.$name.pid" "$W/$SCEN.$name.rc"
    (
        if [ -n "${SPAWN_STDIN:-}" ]; then
            "$@" <"$SPAWN_STDIN" &
        else
            "$@" &
        fi
        echo $! >"$W/$SCEN.$name.pid.tmp"
        mv "$W/$SCEN.$name.pid.tmp" "$W/$SCEN.$name.pid"
        rc=0
        wait $! || rc=$? # (set -e would end this subshell here)
        echo "$rc" >"$W/$SCEN.$name.rc.tmp"
        mv "$W/$SCEN.$name.rc.tmp" "$W/$SCEN.$name.rc"
    ) &
    LF_PIDS+=("$!")
    while [ ! -f "$W/$SCEN.$name.pid" ]; do sleep 0.01; done
    SPAWNED=$(cat "$W/$SCEN.$name.pid")
    LF_PIDS+=("$SPAWNED")
}

# reap NAME: wait until the spawned NAME has ended; returns its status.
reap() {
    local i
    for i in $(seq 1 6000); do
        [ -f "$W/$SCEN.$1.rc" ] && return "$(cat "$W/$SCEN.$1.rc")"
        sleep 0.1
    done
    fail "$1 did not end within 10 minutes"
}

# project_bg LOG [ARGS]: the projector in the background; its pid in $PJ,
# its spawn name in $PJN.
project_bg() {
    local logf=$1
    shift
    NSPAWN=$((NSPAWN + 1))
    PJN=project$NSPAWN
    spawn "$PJN" "${LF_PROJECT[@]}" -t "$TOPIC" -g "g-$DB" \
        ${PROJECT_ARGS[@]+"${PROJECT_ARGS[@]}"} "$@" 2>>"$logf"
    PJ=$SPAWNED
}

# drain: one more projector run until the topic has been idle for 3 s.
drain() {
    "${LF_PROJECT[@]}" -t "$TOPIC" -g "g-$DB" --idle-exit 3 -q \
        ${PROJECT_ARGS[@]+"${PROJECT_ARGS[@]}"} 2>>"$W/$SCEN.drain.log" ||
        fail "the final projector run exited $?"
}

# emit_stream [KILLABLE]: leadflow-emit reading the workload through a slow
# pipe, so the stream lasts about CHAOS_STREAM_S seconds; its pid in $EM.
emit_stream() {
    local chunk=$((NLINES / (CHAOS_STREAM_S * 5) + 1)) fifo=$W/$SCEN.fifo
    rm -f "$fifo"
    mkfifo "$fifo"
    {
        local i=1
        while [ "$i" -le "$NLINES" ]; do
            sed -n "${i},$((i + chunk - 1))p" "$WORK"
            i=$((i + chunk))
            sleep 0.2
        done
    } >"$fifo" 2>/dev/null &
    LF_PIDS+=("$!")
    SPAWN_STDIN=$fifo spawn emit "$BIN/leadflow-emit" \
        -b "$LEADFLOW_BROKERS" -t "$TOPIC" -q "${EMIT_ARGS[@]}" \
        --rejects "$W/$SCEN.rejects" - 2>>"$W/$SCEN.emit.log"
    EM=$SPAWNED
}

# emit_all: the whole file at once; must deliver every line.
emit_all() {
    "$BIN/leadflow-emit" -b "$LEADFLOW_BROKERS" -t "$TOPIC" -q \
        --rejects "$W/$SCEN.rejects" "$WORK" 2>>"$W/$SCEN.emit.log" ||
        fail "leadflow-emit exited $? (rejects: $(head -c 300 "$W/$SCEN.rejects"))"
}

wait_emit() {
    reap emit || fail "leadflow-emit exited $? during $SCEN" \
        "(rejects: $(head -c 300 "$W/$SCEN.rejects"))"
}

# Messages in the topic (duplicates included), through kcat.
messages() {
    kcat -C -b "$LEADFLOW_BROKERS" -t "$TOPIC" -e -q -f 'x\n' 2>/dev/null |
        wc -l
}

# explain_loss: where the lost events are: in the topic (then the projector
# skipped them) or not (then Kafka never stored them), with their offsets
# and the projector's stored offsets.
explain_loss() {
    local id
    "$BIN/leadflow-replay" dump -b "$LEADFLOW_BROKERS" -t "$TOPIC" \
        --progress none -q >"$W/$SCEN.dump" 2>>"$W/$SCEN.dump.log" || true
    echo "topic holds $(wc -l <"$W/$SCEN.dump") decodable messages"
    LC_ALL=C comm -23 "$CLEAN.ids" "$W/$SCEN.ids" >"$W/$SCEN.lost"
    while read -r id; do
        if grep -q "\"event_id\":\"$id\"" "$W/$SCEN.dump"; then
            echo "lost $id: in the topic, not projected:" \
                "$(grep -m1 "\"event_id\":\"$id\"" "$W/$SCEN.dump" |
                    grep -o '"_kafka":.*')"
        else
            echo "lost $id: not in the topic (never stored by Kafka):" \
                "$(grep -m1 "$id" "$W/gen.jsonl" | cut -c1-160)"
        fi
    done <"$W/$SCEN.lost"
    echo "stored offsets: $(q "SELECT string_agg(partition || ':' ||
        next_offset, ',' ORDER BY partition) FROM funnel.offsets")"
}

# verify: the checks every scenario ends with; writes SCEN.result.
verify() {
    local sums lost extra n nd dup eq=yes secs faults
    q "SELECT event_id FROM funnel.events ORDER BY 1" |
        LC_ALL=C sort >"$W/$SCEN.ids"
    lost=$(LC_ALL=C comm -23 "$CLEAN.ids" "$W/$SCEN.ids" | wc -l)
    extra=$(LC_ALL=C comm -13 "$CLEAN.ids" "$W/$SCEN.ids" | wc -l)
    n=$(q "SELECT count(*) FROM funnel.events")
    nd=$(q "SELECT count(DISTINCT event_id) FROM funnel.events")
    dup=$((extra + n - nd))
    sums=$(lf_checksums)
    if [ "$sums" != "$(cat "$CLEAN.sums")" ]; then
        eq=no
        diff <(cat "$CLEAN.sums") <(echo "$sums") || true
    fi
    # what the scenario itself promises about the tables
    if [ -n "${VERIFY_EXTRA:-}" ] && ! "$VERIFY_EXTRA"; then eq=no; fi
    secs=$(($(date +%s) - T0))
    faults=$(IFS=,; echo "${FAULTS[*]}")
    [ "$lost" = 0 ] || explain_loss
    echo "$SCEN|$n|${faults// ,/,}|$lost|$dup|$eq|$secs" >"$W/$SCEN.result"
    echo "result: events=$n lost=$lost duplicated=$dup tables_equal=$eq" \
        "faults=${FAULTS[*]}"
    [ "$lost" = 0 ] || fail "$lost events lost"
    [ "$dup" = 0 ] || fail "$dup events stored twice or unexpected"
    [ "$eq" = yes ] || fail "funnel tables differ from the clean run"
    echo "PASS $SCEN"
}

# ---- baseline ---------------------------------------------------------
scenario_baseline() {
    emit_all
    drain
    q "SELECT event_id FROM funnel.events" | LC_ALL=C sort >"$W/clean.ids"
    lf_checksums >"$W/clean.sums"
    [ "$(events)" -gt 0 ] || fail "the baseline projected nothing"
    [ "$(q "SELECT count(*) FROM funnel.anomalies")" -gt 0 ] ||
        fail "the workload should contain anomalies"
    [ "$(wc -l <"$W/clean.ids")" -lt "$NLINES" ] ||
        fail "the workload should contain duplicates"
    echo "PASS baseline"
}

# ---- the projector SIGKILLed, many times ---------------------------------
# SIGKILL the projector $1 times while the stream is projected, each run
# with --batch $2 ("random": 1 to 5 events), its log in $3; KILL_MID gets
# how many kills landed before the whole stream was stored.
kill_projector() {
    local kills=$1 batch=$2 plog=$3 total k n before b
    total=$(wc -l <"$CLEAN.ids")
    KILL_MID=0
    for k in $(seq 1 "$kills"); do
        before=$(events)
        b=$batch
        [ "$b" = random ] && b=$((RANDOM % 5 + 1))
        project_bg "$plog" --batch "$b" -q
        if [ $((k % 4)) = 0 ]; then
            # during start-up: migrations, group join, offset load
            sleep "$((RANDOM % 2)).$((RANDOM % 10))"
        else
            wait_progress "$before"
            sleep "0.$((RANDOM % 3))$((RANDOM % 10))"
        fi
        kill -9 "$PJ" 2>/dev/null || true
        reap "$PJN" || true
        n=$(events)
        [ "$n" -lt "$total" ] && KILL_MID=$((KILL_MID + 1))
        log "SIGKILL $k at $n of $total events"
    done
}

scenario_kill() {
    local mid
    emit_stream
    # one event per transaction: many commits to land in, and a pace
    # that leaves most of the stream for the next kills
    kill_projector "$CHAOS_KILLS" 1 "$W/kill.project.log"
    mid=$KILL_MID
    wait_emit
    FAULTS+=("$CHAOS_KILLS SIGKILL ($mid mid-stream)")
    [ $((mid * 10)) -ge $((CHAOS_KILLS * 7)) ] ||
        fail "only $mid of $CHAOS_KILLS kills landed before the end"
    drain
    verify
}

# ---- PostgreSQL crashed, then away for a while -------------------------
scenario_pg() {
    local c before
    emit_stream
    project_bg "$W/pg.project.log" --batch 5 --idle-exit 8
    for c in $(seq 1 "$CHAOS_PG_CRASHES"); do
        wait_progress "$(events)"
        sleep "0.$((RANDOM % 10))"
        lf_pg_crash
        log "PostgreSQL crashed (-m immediate) $c"
        sleep 1
        lf_pg_start
    done
    FAULTS+=("$CHAOS_PG_CRASHES crash")
    before=$(events)
    wait_progress "$before"
    lf_as_pg "$PGBIN_DIR/pg_ctl" -D "$LEADFLOW_PGDATA/data" -m fast -w -t 20 \
        stop >/dev/null
    log "PostgreSQL stopped for $CHAOS_PG_DOWN_S s (connections refused)"
    sleep "$CHAOS_PG_DOWN_S"
    lf_pg_start
    FAULTS+=("${CHAOS_PG_DOWN_S}s refused")
    wait_emit
    reap "$PJN" || fail "the projector exited $? after PostgreSQL came back"
    grep -q "will retry" "$W/pg.project.log" ||
        fail "the projector did not notice (no \"will retry\" logged)"
    log "retries logged: $(grep -c 'will retry' "$W/pg.project.log")"
    verify
}

# ---- the broker: latency, request errors, down and up -------------------
scenario_broker() {
    local n=0 cmd
    # Not the idempotent producer here: the mock cluster does not check
    # idempotent sequence numbers, and librdkafka acknowledges a batch whose
    # request failed uncertainly (timeout, dropped connection) once a later
    # batch of the same partition succeeds ("implicit ack", librdkafka PR
    # #2081), which a real broker allows only if the first batch was written
    # (it refuses the later one with OUT_OF_ORDER_SEQUENCE_NUMBER). With
    # injected Produce errors the mock thus loses acknowledged batches (seen:
    # 2 events in 1 of 5 runs). Plain retries instead write duplicates,
    # which is what this scenario means to throw at the projector.
    EMIT_ARGS=(-X enable.idempotence=false)
    emit_stream
    project_bg "$W/broker.project.log" --batch 50 -q
    bcmd() {
        lf_broker "$*" >/dev/null || fail "devbroker refused \"$*\""
        log "broker: $*"
    }
    # All within the stream (CHAOS_STREAM_S, 10 s in the quick set), while
    # the projector joins its group and consumes.
    sleep 1
    for cmd in "rtt 2 300" "rtt 3 150" "error Produce 5 REQUEST_TIMED_OUT" \
        "error Fetch 5 NOT_LEADER_FOR_PARTITION" \
        "error OffsetCommit 3 REQUEST_TIMED_OUT" \
        "error Produce 3 _TRANSPORT" "error Fetch 2 _TRANSPORT" \
        "error JoinGroup 1 REQUEST_TIMED_OUT" \
        "error Heartbeat 2 NOT_COORDINATOR"; do
        bcmd "$cmd"
        n=$((n + 1))
        sleep 0.2
    done
    FAULTS+=("2 rtt" "$((n - 2)) error kinds")
    sleep 0.5
    bcmd "rtt 2 0"
    bcmd "rtt 3 0"
    bcmd "down 2"
    sleep 2
    bcmd "up 2"
    sleep 0.5
    bcmd "down 1"
    sleep 2
    bcmd "up 1"
    FAULTS+=("2 down/up")
    kill -0 "$EM" 2>/dev/null && log "emit still streaming after the faults"
    wait_emit
    log "topic holds $(messages) messages for $NLINES lines (retries)"
    drain_with_running
    verify
}

# The projector started first still runs: stop it (SIGTERM, it commits or
# rolls back) once the topic is idle, then drain.
drain_with_running() {
    kill -TERM "$PJ" 2>/dev/null || true
    reap "$PJN" || fail "the projector exited $? on SIGTERM"
    drain
}

# ---- two instances in one group, one killed -----------------------------
scenario_two() {
    local k a an b bn
    emit_stream
    project_bg "$W/two.b.log" --batch 7 --idle-exit 10
    b=$PJ bn=$PJN
    for k in $(seq 1 "$CHAOS_TWO_KILLS"); do
        project_bg "$W/two.a.$k.log" --batch 7
        a=$PJ an=$PJN
        # both must hold partitions before one dies
        for _ in $(seq 1 300); do
            grep -q "msg=assigned" "$W/two.a.$k.log" && break
            sleep 0.1
        done
        grep -q "msg=assigned" "$W/two.a.$k.log" ||
            fail "the second instance got no partitions in 30 s"
        sleep "0.$((RANDOM % 10))"
        kill -9 "$a"
        reap "$an" || true
        log "instance A killed ($k) at $(events) events"
        kill -0 "$b" 2>/dev/null || fail "instance B died"
    done
    FAULTS+=("$CHAOS_TWO_KILLS SIGKILL of 1 of 2")
    wait_emit
    PJ=$b PJN=$bn
    reap "$bn" || fail "the surviving instance exited $?"
    [ "$(grep -c 'msg=assigned' "$W/two.b.log")" -gt 0 ] ||
        fail "instance B never held a partition"
    verify
}

# ---- emit killed mid-file, the file re-sent -------------------------------
scenario_emitkill() {
    local k before after sig
    project_bg "$W/emitkill.project.log" --batch 20 -q
    for k in $(seq 1 "$CHAOS_EMIT_KILLS"); do
        before=$(messages)
        emit_stream
        sleep "$((RANDOM % 2 + 1)).$((RANDOM % 10))"
        sig=KILL
        [ "$k" = "$CHAOS_EMIT_KILLS" ] && [ "$k" -gt 1 ] && sig=TERM
        kill -"$sig" "$EM" 2>/dev/null || true
        reap emit || true
        after=$(messages)
        log "emit SIG$sig $k: $((after - before)) of $NLINES lines delivered"
        [ "$((after - before))" -lt "$NLINES" ] ||
            fail "emit finished the file before the kill"
    done
    FAULTS+=("$CHAOS_EMIT_KILLS emit kills + re-send")
    emit_all
    log "topic holds $(messages) messages for $(wc -l <"$CLEAN.ids") events"
    drain_with_running
    verify
}

# ---- the disk-full class: a write error that must block, not skip ----------
scenario_diskfull() {
    local offs phase code i t
    emit_stream
    project_bg "$W/diskfull.project.log" --batch 10 -q
    wait_progress 0
    # The trigger is the administrator's (the projector owns nothing); a
    # statement trigger fires for every write to leads, even of no rows.
    for phase in disk_full check_violation; do
        q "CREATE OR REPLACE FUNCTION public.chaos_fail() RETURNS trigger
           LANGUAGE plpgsql AS \$\$ BEGIN
             RAISE EXCEPTION 'chaos: injected %', TG_ARGV[0]
               USING ERRCODE = TG_ARGV[0]; END \$\$;
           CREATE TRIGGER chaos_fail BEFORE INSERT OR UPDATE OR DELETE
             ON funnel.leads FOR EACH STATEMENT
             EXECUTE FUNCTION public.chaos_fail('$phase');" >/dev/null
        # Any batch in flight when CREATE TRIGGER got its lock committed
        # before it: from here on nothing may commit.
        offs=$(q "SELECT string_agg(partition || ':' || next_offset, ','
                  ORDER BY partition) FROM funnel.offsets")
        local ev dl
        ev=$(events)
        dl=$(q "SELECT count(*) FROM funnel.dead_letters")
        log "trigger raising $phase: offsets $offs, $ev events"
        for i in $(seq 1 $((CHAOS_DISK_S * 4))); do
            sleep 0.25
            t=$(q "SELECT string_agg(partition || ':' || next_offset, ','
                   ORDER BY partition) FROM funnel.offsets")
            [ "$t" = "$offs" ] ||
                fail "$phase: offsets moved from $offs to $t"
            [ "$(events)" = "$ev" ] || fail "$phase: events were stored"
            [ "$(q "SELECT count(*) FROM funnel.dead_letters")" = "$dl" ] ||
                fail "$phase: events were dead-lettered"
        done
        kill -0 "$PJ" 2>/dev/null || fail "the projector gave up during $phase"
        q "DROP TRIGGER chaos_fail ON funnel.leads" >/dev/null
        log "trigger dropped"
        FAULTS+=("${CHAOS_DISK_S}s $phase")
        wait_progress "$ev" # resumed (or had stored everything before)
    done
    code=$(grep -c "will retry.*chaos: injected" "$W/diskfull.project.log" ||
        true)
    [ "$code" -gt 0 ] || fail "no \"will retry\" with the injected error logged"
    log "$code retries logged"
    wait_emit
    drain_with_running
    verify
}

# ---- PostgreSQL failover to an asynchronous standby, many times -----------
# Node 1 is the stack's PostgreSQL, node 2 a standby beside it; they swap
# roles at each failover and keep their ports, so one conninfo names both.
FO_DIR=()
FO_PORT=()
fo_stop_nodes() {
    [ -n "${FO_DIR[2]:-}" ] && [ -d "${FO_DIR[2]}" ] &&
        "$SRC/tools/pg-throwaway.sh" stop "${FO_DIR[2]}" >/dev/null 2>&1
    lf_cleanup
}

fo_sum() { # fo_sum NODE: the messages committed there (0 if unreachable)
    psql -X -At -h "${FO_DIR[$1]}" -p "${FO_PORT[$1]}" -d "$DB" \
        -c "SELECT coalesce(sum(next_offset), 0) FROM funnel.offsets" \
        2>/dev/null || echo 0
}

# fo_use NODE: point q, events, verify and drain at NODE.
fo_use() {
    export PGHOST=${FO_DIR[$1]} PGPORT=${FO_PORT[$1]}
}

# fo_switch WHAT P S: stop primary P hard, let standby S replay all it
# received, promote it, rebuild P as S's standby on P's old port. Sets
# FO_BEFORE (P's last offsets sum, from its data directory) and FO_AFTER
# (S's once promoted).
fo_switch() {
    local what=$1 p=$2 s=$3
    lf_as_pg "$PGBIN_DIR/pg_ctl" -D "${FO_DIR[$p]}/data" -m immediate -w \
        -t 30 stop >/dev/null || fail "$what: cannot stop the primary"
    # all the standby received is replayed before it is read: its offsets
    # are then those it will have once promoted
    "$SRC/tools/pg-standby.sh" cut "${FO_DIR[$s]}" ||
        fail "$what: the standby does not settle"
    FO_AFTER=$(fo_sum "$s")
    "$SRC/tools/pg-standby.sh" promote "${FO_DIR[$s]}" ||
        fail "$what: cannot promote the standby"
    fo_use "$s"
    FO_BEFORE=$("$SRC/tools/pg-standby.sh" inspect "${FO_DIR[$p]}" "$DB" \
        "SELECT coalesce(sum(next_offset), 0) FROM funnel.offsets") ||
        fail "$what: cannot read the old primary's offsets"
    # the old primary becomes the new standby, on its old port
    "$SRC/tools/pg-throwaway.sh" stop "${FO_DIR[$p]}" >/dev/null 2>&1 ||
        fail "$what: cannot remove the old primary"
    "$SRC/tools/pg-standby.sh" start "${FO_DIR[$s]}" "${FO_DIR[$p]}" \
        "${FO_PORT[$p]}" >/dev/null 2>>"$W/$SCEN.standby.log" ||
        fail "$what: cannot rebuild node $p as a standby:
$(tail -n 5 "$W/$SCEN.standby.log")"
}

# fo_once F PRIMARY STANDBY: one failover at a random moment of the stream;
# adds to FO_LOSSES/FO_LOST.
fo_once() {
    local f=$1 p=$2 s=$3 cut=no lost
    wait_progress "$(events)" 120
    sleep "$((RANDOM % 3)).$((RANDOM % 10))"
    if [ $((RANDOM % 2)) = 0 ]; then
        # the standby stops receiving WAL; the primary goes on committing
        "$SRC/tools/pg-standby.sh" cut "${FO_DIR[$s]}" ||
            fail "failover $f: cannot cut the standby"
        cut=yes
        sleep "0.$((RANDOM % 10))"
    fi
    fo_switch "failover $f" "$p" "$s"
    lost=$((FO_BEFORE - FO_AFTER))
    [ "$lost" -ge 0 ] ||
        fail "failover $f: the standby is ahead ($FO_AFTER > $FO_BEFORE)"
    [ "$lost" -gt 0 ] && FO_LOSSES=$((FO_LOSSES + 1))
    FO_LOST=$((FO_LOST + lost))
    log "failover $f: node $p stopped hard (receiver cut before: $cut)," \
        "node $s promoted; old primary $FO_BEFORE offsets, promoted" \
        "$FO_AFTER: lost $lost"
}

# fo_pair: node 1 is the stack's PostgreSQL, node 2 its new standby; sets
# FO_CONN, the multi-host conninfo naming both.
fo_pair() {
    FO_DIR=("" "$LEADFLOW_PGDATA" "$LF_TMP/pg2")
    FO_PORT=("" "$PGPORT" "")
    trap fo_stop_nodes EXIT
    FO_PORT[2]=$("$SRC/tools/pg-standby.sh" start "${FO_DIR[1]}" "${FO_DIR[2]}" \
        2>>"$W/$SCEN.standby.log" | sed -n 's/^export PGPORT=//p') || true
    [ -n "${FO_PORT[2]}" ] || fail "the standby did not start:
$(tail -n 5 "$W/$SCEN.standby.log")"
    fo_use 1
    FO_CONN="host=${FO_DIR[1]},${FO_DIR[2]} port=${FO_PORT[1]},${FO_PORT[2]}
          dbname=$DB user=postgres connect_timeout=5
          target_session_attrs=read-write"
}

scenario_failover() {
    local f p=1 s=2 total i
    fo_pair
    FO_LOSSES=0 FO_LOST=0
    # a stream long enough for every failover to land in it
    CHAOS_STREAM_S=$((CHAOS_FAILOVERS * 8)) emit_stream
    project_bg "$W/failover.project.log" -d "$FO_CONN" --batch 3 -v
    for f in $(seq 1 "$CHAOS_FAILOVERS"); do
        fo_once "$f" "$p" "$s"
        i=$p p=$s s=$i
    done
    FAULTS+=("$CHAOS_FAILOVERS failovers ($FO_LOSSES lost $FO_LOST offsets)")
    wait_emit
    total=$(messages)
    for i in $(seq 1 1800); do
        [ "$(fo_sum "$p")" -ge "$total" ] && break
        kill -0 "$PJ" 2>/dev/null || fail "the projector died"
        sleep 0.1
    done
    log "the projector committed $(fo_sum "$p") of $total messages"
    kill -TERM "$PJ" 2>/dev/null || true
    reap "$PJN" || fail "the projector exited $? on SIGTERM"
    [ $((FO_LOSSES * 4)) -ge "$CHAOS_FAILOVERS" ] ||
        fail "only $FO_LOSSES of $CHAOS_FAILOVERS failovers lost commits"
    verify
}

# ---- leadflow-replay cut off by a failover ---------------------------------
# rewind and promote each write in one transaction: whatever the moment of
# the failover, the promoted standby must hold the state from before the
# operation or the whole result of it, never a part. Made certain once each:
# the operation waits for a lock held by another session when the primary
# stops (it must then fail and have done nothing, and succeed when run
# again); then CHAOS_REPLAY_FAILOVERS rewinds with the stop at a random
# moment around them, the standby's receiver cut half of the time.
rp_offsets() {
    q "SELECT string_agg(partition || ':' || next_offset, ',' ORDER BY partition)
       FROM funnel.offsets WHERE group_id = 'g-$DB'"
}
rp_schemas() {
    q "SELECT string_agg(regexp_replace(nspname, '[0-9]+$', 'N'), ','
       ORDER BY nspname) FROM pg_namespace WHERE nspname LIKE 'funnel%'
       AND nspname <> 'funnel_ref'"
}
rp_replay() { # rp_replay NAME ARGS...: leadflow-replay in the background
    local name=$1
    shift
    spawn "$name" "$BIN/leadflow-replay" "$@" -d "$FO_CONN" \
        -b "$LEADFLOW_BROKERS" -t "$TOPIC" -g "g-$DB" --progress none \
        2>>"$W/$SCEN.replay.log"
}
# rp_block LOCKSQL: another session takes a lock and holds it; returns once
# it is granted.
rp_block() {
    rm -f "$W/$SCEN.blocked"
    NSPAWN=$((NSPAWN + 1))
    spawn "block$NSPAWN" psql -X -q -v ON_ERROR_STOP=1 -c "BEGIN" -c "$1" \
        -c "\\o $W/$SCEN.blocked" -c "SELECT 1" -c "SELECT pg_sleep(3600)" \
        2>>"$W/$SCEN.block.log"
    for _ in $(seq 1 300); do
        [ -s "$W/$SCEN.blocked" ] && return 0
        sleep 0.1
    done
    fail "the blocking session got no lock"
}
# rp_waiting: until a session other than the blocker waits for a lock
rp_waiting() {
    for _ in $(seq 1 300); do
        [ "$(q "SELECT count(*) FROM pg_locks WHERE NOT granted")" -gt 0 ] &&
            return 0
        sleep 0.1
    done
    fail "no session waits for the blocker's lock"
}
# rp_caught_up S: until standby S has replayed all the primary wrote.
rp_caught_up() {
    local lsn
    lsn=$(q "SELECT pg_current_wal_lsn()")
    for _ in $(seq 1 600); do
        [ "$(psql -X -At -h "${FO_DIR[$1]}" -p "${FO_PORT[$1]}" -d "$DB" -c \
            "SELECT pg_last_wal_replay_lsn() >= '$lsn'")" = t ] && return 0
        sleep 0.1
    done
    fail "the standby does not catch up"
}

scenario_replayfo() {
    local p=1 s=2 i rc offs new sch f target cut outcome
    fo_pair
    emit_all
    "${LF_PROJECT[@]}" -d "$FO_CONN" -t "$TOPIC" -g "g-$DB" --idle-exit 3 -q \
        2>>"$W/$SCEN.drain.log" || fail "the first projection exited $?"

    # rewind, cut off while it waits for the offsets' lock
    offs=$(rp_offsets)
    rp_caught_up "$s"
    rp_block "LOCK TABLE funnel.offsets IN ACCESS EXCLUSIVE MODE"
    rp_replay rw1 rewind --to-offset 0:beginning,1:beginning,2:beginning,3:beginning \
        --no-group-check --lock-timeout 600
    rp_waiting
    fo_switch "rewind" "$p" "$s"
    i=$p p=$s s=$i
    rc=0
    reap rw1 || rc=$?
    [ "$rc" != 0 ] || fail "rewind reported success although cut off"
    [ "$(rp_offsets)" = "$offs" ] ||
        fail "rewind cut off (exit $rc) changed the offsets: $offs -> $(rp_offsets)"
    log "rewind cut off by a failover: exit $rc, offsets unchanged ($offs)"
    rp_replay rw2 rewind --to-offset 0:beginning,1:beginning,2:beginning,3:beginning \
        --no-group-check
    reap rw2 || fail "rewind after the failover exited $?"
    [ "$(rp_offsets)" = "0:0,1:0,2:0,3:0" ] ||
        fail "rewind after the failover: offsets $(rp_offsets)"
    "${LF_PROJECT[@]}" -d "$FO_CONN" -t "$TOPIC" -g "g-$DB" --idle-exit 3 -q \
        2>>"$W/$SCEN.drain.log" || fail "the projection after rewind exited $?"
    FAULTS+=("rewind cut")

    # promote, cut off while it waits for a reader's lock
    rp_replay rb rebuild --into funnel_new --from-db
    reap rb || fail "rebuild exited $?"
    sch=$(rp_schemas)
    rp_caught_up "$s"
    rp_block "LOCK TABLE funnel.leads IN ACCESS SHARE MODE"
    rp_replay pr1 promote funnel_new --no-group-check --lock-timeout 600
    sleep 2 # its attempts at the locks are short and repeated
    kill -0 "$SPAWNED" 2>/dev/null || fail "promote did not wait for the lock"
    fo_switch "promote" "$p" "$s"
    i=$p p=$s s=$i
    rc=0
    reap pr1 || rc=$?
    [ "$rc" != 0 ] || fail "promote reported success although cut off"
    [ "$(rp_schemas)" = "$sch" ] ||
        fail "promote cut off (exit $rc) changed the schemas: $sch -> $(rp_schemas)"
    log "promote cut off by a failover: exit $rc, schemas unchanged ($sch)"
    rp_replay pr2 promote funnel_new --no-group-check
    reap pr2 || fail "promote after the failover exited $?"
    case $(rp_schemas) in
    funnel,funnel_old_N) ;;
    *) fail "promote after the failover: schemas $(rp_schemas)" ;;
    esac
    FAULTS+=("promote cut")

    # rewinds at random moments around a stop
    for f in $(seq 1 "${CHAOS_REPLAY_FAILOVERS:-4}"); do
        offs=$(rp_offsets)
        target=$(echo "$offs" | tr ',' '\n' |
            awk -F: -v f="$f" '{printf "%s%d:%d", (NR > 1 ? "," : ""), $1, $2 * (9 - f) / 10}')
        rp_caught_up "$s"
        cut=no
        if [ $((RANDOM % 2)) = 0 ]; then
            "$SRC/tools/pg-standby.sh" cut "${FO_DIR[$s]}"
            cut=yes
        fi
        rp_replay "rwr$f" rewind --to-offset "$target" --no-group-check
        sleep "0.$((RANDOM % 3))$((RANDOM % 10))"
        fo_switch "rewind $f" "$p" "$s"
        i=$p p=$s s=$i
        rc=0
        reap "rwr$f" || rc=$?
        new=$(rp_offsets)
        if [ "$new" = "$offs" ]; then outcome="did nothing"
        elif [ "$new" = "$target" ]; then outcome=completed
        else fail "rewind $f half done: $offs -> $new (target $target)"
        fi
        log "rewind $f (exit $rc, receiver cut: $cut): $outcome on the promoted standby"
        [ "$rc" = 0 ] && [ "$outcome" != completed ] &&
            log "rewind $f: reported done, lost with the asynchronous standby"
    done
    FAULTS+=("${CHAOS_REPLAY_FAILOVERS:-4} rewind races")
    "${LF_PROJECT[@]}" -d "$FO_CONN" -t "$TOPIC" -g "g-$DB" --idle-exit 3 -q \
        2>>"$W/$SCEN.drain.log" || fail "the final projection exited $?"
    verify
}

# ---- a group of three: rolling restarts; scaling out and in ----------------
group_setup() {
    # shellcheck source=group_lib.sh
    . "$HERE/group_lib.sh"
    mkdir -p "$W/$SCEN.grp"
    grp_init "$WORK" "$W/$SCEN.grp"
}

scenario_group() {
    group_setup
    grp_rolling "$SCEN" "$CHAOS_GROUP_RESTARTS"
    FAULTS+=("$CHAOS_GROUP_RESTARTS restarts of 1 of 3")
    verify
}

scenario_scale() {
    group_setup
    grp_scale "$SCEN"
    FAULTS+=("1 -> 3 -> 1 instances")
    verify
}

# ---- merges, voids and erasures under SIGKILL ------------------------------
# The scenario's own workload and clean run (the shared one has no identity
# events): another topic and database on this stack, the same key.
id_setup() {
    local keyf=$W/$SCEN.key
    "$BIN/leadflow-gen" --leads "$CHAOS_LEADS" --seed "$CHAOS_SEED" \
        --merges 0.05 --voids 0.05 --erasures 0.01 --anomalies 0.1 \
        --duplicates 0.05 --shuffle 20 -q -o "$W/$SCEN.jsonl" ||
        fail "leadflow-gen exited $?"
    WORK=$W/$SCEN.jsonl
    NLINES=$(wc -l <"$WORK")
    CLEAN=$W/$SCEN.clean
    (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$keyf" &&
        echo >>"$keyf")
    PROJECT_ARGS=(-X "pseudonym.key.file=$keyf")
    id_erased_ids >"$W/$SCEN.erased"
    [ -s "$W/$SCEN.erased" ] || fail "the workload erases nobody"
    lf_broker "topic ${SCEN}_clean 4" >/dev/null
    lf_newdb "${SCEN}_clean"
    "$BIN/leadflow-emit" -b "$LEADFLOW_BROKERS" -t "${SCEN}_clean" -q \
        "$WORK" 2>>"$W/$SCEN.emit.log" || fail "emit of the clean run: $?"
    PGDATABASE=${SCEN}_clean "${LF_PROJECT[@]}" -t "${SCEN}_clean" \
        -g "g-${SCEN}_clean" --idle-exit 3 -q "${PROJECT_ARGS[@]}" \
        2>>"$W/$SCEN.drain.log" || fail "the clean run exited $?"
    PGDATABASE=${SCEN}_clean q "SELECT event_id FROM funnel.events" |
        LC_ALL=C sort >"$CLEAN.ids"
    PGDATABASE=${SCEN}_clean lf_checksums >"$CLEAN.sums"
    PGDATABASE=${SCEN}_clean id_sums >"$CLEAN.idsums"
    log "clean run: $(tr '\n' ' ' <"$CLEAN.idsums")"
    [ "$(PGDATABASE=${SCEN}_clean q "SELECT count(*) FROM funnel.merges")" \
        -gt 0 ] || fail "the clean run counted no merge"
    id_no_erased_ids "${SCEN}_clean" || fail "the clean run kept erased ids"
}

# The lead ids the workload erases: every lead connected by merged events
# (either direction, counted or not) to a lead with an erased event.
id_erased_ids() {
    python3 - "$WORK" <<'PY'
import collections
import json
import sys
adj, todo, seen = collections.defaultdict(set), [], set()
with open(sys.argv[1]) as f:
    for line in f:
        e = json.loads(line)
        if e["type"] == "merged":
            adj[e["lead_id"]].add(e["into_lead_id"])
            adj[e["into_lead_id"]].add(e["lead_id"])
        elif e["type"] == "erased":
            todo.append(e["lead_id"])
while todo:
    lead = todo.pop()
    if lead not in seen:
        seen.add(lead)
        todo.extend(adj[lead])
print("\n".join(sorted(seen)))
PY
}

# The identity tables lf_checksums does not cover.
id_sums() {
    psql -X -At -v ON_ERROR_STOP=1 <<SQL
SELECT 'merges', count(*), md5(coalesce(string_agg(md5(concat_ws('|',
    lead_id, into_lead_id, surviving_lead_id, merged_at, event_id)), ','
    ORDER BY lead_id), '')) FROM funnel.merges;
SELECT 'erasures', count(*), md5(coalesce(string_agg(md5(concat_ws('|',
    event_id, pseudonym, request_id, erased_at)), ',' ORDER BY event_id),
    '')) FROM funnel.erasures;
SELECT 'erased_leads', count(*), md5(coalesce(string_agg(pseudonym, ','
    ORDER BY pseudonym), '')) FROM funnel.erased_leads;
SQL
}

# id_no_erased_ids DB: pg_dump of DB (plain SQL, as postgres) names none of
# the erased lead ids.
id_no_erased_ids() {
    local found
    pg_dump -U postgres -d "$1" >"$W/$SCEN.$1.dump" || fail "pg_dump $1: $?"
    found=$(grep -F -o -f "$W/$SCEN.erased" "$W/$SCEN.$1.dump" |
        sort | uniq -c | head -5)
    rm -f "$W/$SCEN.$1.dump"
    [ -z "$found" ] && return 0
    echo "pg_dump of $1 holds erased lead ids: $found"
    return 1
}

id_verify() {
    local sums
    sums=$(id_sums)
    if [ "$sums" != "$(cat "$CLEAN.idsums")" ]; then
        diff <(cat "$CLEAN.idsums") <(echo "$sums") || true
        return 1
    fi
    id_no_erased_ids "$DB"
}

scenario_identity() {
    local mid
    id_setup
    emit_stream
    kill_projector "$CHAOS_ID_KILLS" random "$W/$SCEN.project.log"
    mid=$KILL_MID
    wait_emit
    FAULTS+=("$CHAOS_ID_KILLS SIGKILL ($mid mid-stream)")
    drain
    log "erased lead ids: $(wc -l <"$W/$SCEN.erased"); $(id_sums |
        tr '\n' ' ')"
    VERIFY_EXTRA=id_verify verify
}

if [ "${1:-}" = --child ]; then
    child "$2"
else
    parent "$@"
fi
