# shellcheck shell=bash
# group_lib.sh: a group of leadflow-project instances under restarts and
# scaling, for tests/integration/test_group.sh (short) and the `group` and
# `scale` scenarios of tests/chaos/chaos.sh (long). Source it after
# tests/integration/lib.sh (fail, LF_PROJECT, LF_PIDS, lf_broker, lf_newdb,
# lf_checksums, BIN) with the dev stack up.
#
#   grp_init WORKFILE DIR         the workload (JSON lines for leadflow-emit)
#                                 and a directory for the logs
#   grp_rolling NAME RESTARTS     three instances, restarted one at a time
#                                 (SIGTERM and SIGKILL alternately) while the
#                                 parts are produced
#   grp_scale NAME                1 -> 3 -> 1 instances while producing
# Both use topic and database NAME (12 partitions) and end with grp_verify:
# the tables equal a clean run of the same topic, and the committed ranges in
# the instances' logs chain per partition (grp_chain). They print "ok ..."
# lines and call fail on any mismatch.

GRP_PARTITIONS=${GRP_PARTITIONS:-12}
GRP_BATCH=${GRP_BATCH:-7}
# -g: this file may be sourced inside a function
declare -gA GRP_PID=() GRP_LOG=() GRP_N=()

grp_init() {
    GRP_WORK=$1
    GRP_W=$2
    GRP_LINES=$(wc -l <"$GRP_WORK")
}

grp_log() { echo "$(date +%T) $*"; }

grp_q() { psql -X -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

# grp_sum DB: the messages the group has committed (sum of next offsets).
grp_sum() {
    grp_q "$1" "SELECT coalesce(sum(next_offset), 0) FROM funnel.offsets" \
        2>/dev/null || echo 0
}

# grp_emit_part TOPIC I N: part I of N of the workload, in the background, as
# five leadflow-emit runs 0.3 s apart (a stream, not one burst); its status in
# $GRP_W/emit.rc, waited for by grp_wait_emit.
grp_emit_part() {
    local topic=$1 i=$2 n=$3 from to
    from=$(((i - 1) * GRP_LINES / n + 1))
    to=$((i * GRP_LINES / n))
    rm -f "$GRP_W/emit.rc"
    (
        rc=0
        step=$(((to - from + 1) / 5 + 1))
        for ((l = from; l <= to; l += step)); do
            sed -n "${l},$((l + step - 1 > to ? to : l + step - 1))p" "$GRP_WORK" |
                "$BIN/leadflow-emit" -b "$LEADFLOW_BROKERS" -t "$topic" -q - \
                    2>>"$GRP_W/emit.log" || { rc=$?; break; }
            sleep 0.3
        done
        echo "$rc" >"$GRP_W/emit.rc"
    ) &
    LF_PIDS+=("$!")
}

grp_wait_emit() {
    local i
    for i in $(seq 1 1800); do
        if [ -f "$GRP_W/emit.rc" ]; then
            [ "$(cat "$GRP_W/emit.rc")" = 0 ] ||
                fail "leadflow-emit failed: $(tail -n 3 "$GRP_W/emit.log")"
            return 0
        fi
        sleep 0.1
    done
    fail "leadflow-emit did not finish in 180 s"
}

# grp_start SCEN NAME: one instance (a new incarnation, its own log).
grp_start() {
    local scen=$1 name=$2 n
    n=$((${GRP_N[$scen.$name]:-0} + 1))
    GRP_N[$scen.$name]=$n
    GRP_LOG[$scen.$name]=$GRP_W/$scen.$name.$n.log
    PGDATABASE=$scen "${LF_PROJECT[@]}" -t "$scen" -g "g-$scen" \
        --batch "$GRP_BATCH" -v -v 2>"${GRP_LOG[$scen.$name]}" &
    GRP_PID[$scen.$name]=$!
    LF_PIDS+=("$!")
}

# grp_stop SCEN NAME SIG: SIGTERM must end it with status 0.
grp_stop() {
    kill -"$3" "${GRP_PID[$1.$2]}" 2>/dev/null || true
    grp_reap "$@"
}

# grp_reap SCEN NAME SIG: wait for an instance sent SIG.
grp_reap() {
    local scen=$1 name=$2 sig=$3 rc=0
    wait "${GRP_PID[$scen.$name]}" 2>/dev/null || rc=$?
    GRP_PID[$scen.$name]=
    [ "$sig" = KILL ] && echo "${GRP_LOG[$scen.$name]}" >>"$GRP_W/$scen.killed"
    if [ "$sig" = TERM ] && [ "$rc" != 0 ]; then
        fail "$scen: instance $name exited $rc on SIGTERM:
$(tail -n 5 "${GRP_LOG[$scen.$name]}")"
    fi
    grp_log "$scen: instance $name stopped (SIG$sig) at $(grp_sum "$scen") offsets"
}

# grp_wait_assigned SCEN NAME [COUNT]: until the instance's current log holds
# COUNT (default 1) "msg=assigned" lines. A join waits out the session of a
# killed member (6 s) and the mock's rebalance delay: allow a minute.
grp_wait_assigned() {
    local scen=$1 name=$2 want=${3:-1} i
    for i in $(seq 1 600); do
        [ "$(grep -c 'msg=assigned' "${GRP_LOG[$scen.$name]}")" -ge "$want" ] &&
            return 0
        kill -0 "${GRP_PID[$scen.$name]}" 2>/dev/null ||
            fail "$scen: instance $name died: $(tail -n 3 "${GRP_LOG[$scen.$name]}")"
        sleep 0.1
    done
    fail "$scen: instance $name got no partitions in 60 s"
}

# grp_wait_sum SCEN MIN [SECONDS]: until the group has committed MIN messages.
grp_wait_sum() {
    local scen=$1 min=$2 limit=${3:-180} i
    for i in $(seq 1 $((limit * 10))); do
        [ "$(grp_sum "$scen")" -ge "$min" ] && return 0
        sleep 0.1
    done
    fail "$scen: $(grp_sum "$scen") of $min messages committed after ${limit} s"
}

# grp_clean SCEN: the same topic into a fresh database by one instance with
# one writer; prints the topic's message count.
grp_clean() {
    local scen=$1
    lf_newdb "${scen}_clean"
    PGDATABASE=${scen}_clean "${LF_PROJECT[@]}" -t "$scen" -g "g-${scen}-clean" \
        --writers 1 --idle-exit 3 -q || fail "$scen: the clean run exited $?"
    PGDATABASE=${scen}_clean lf_checksums >"$GRP_W/$scen.clean.sums"
    grp_sum "${scen}_clean"
}

# grp_chain SCEN LOG...: the committed ranges of the logs chain per
# partition, from 0 to funnel.offsets. from=beginning (no stored offset
# before the batch) is offset 0, the start of every partition of these
# topics; any other value that is not a number cannot be checked and fails.
# One gap is allowed right after the last range an incarnation logged if it
# was SIGKILLed (listed in SCEN.killed): its last batches may have committed
# before their lines were written (seen: 3 ranges of 2 writers, 1 of 15
# kills). An overlap always fails: two writes of the same range.
grp_chain() {
    local scen=$1 res
    shift
    grep -H 'msg=committed' "$@" /dev/null >"$GRP_W/$scen.committed" || true
    [ -s "$GRP_W/$scen.committed" ] ||
        fail "$scen: no \"msg=committed\" line in the projectors' logs (-v -v):" \
            "this leadflow-project does not log its committed batches" \
            "(msg=committed writer=N partition=P from=X to=Y), so the test" \
            "cannot show that no two instances wrote the same batch"
    grp_q "$scen" "SELECT partition, next_offset FROM funnel.offsets
                   WHERE group_id = 'g-$scen'" >"$GRP_W/$scen.final"
    touch "$GRP_W/$scen.killed"
    res=$(awk '
        function field(k) {
            if (match($0, " " k "=[0-9]+")) return substr($0, RSTART + length(k) + 2, RLENGTH - length(k) - 2)
            if (k == "from" && $0 ~ / from=beginning/) return 0
            return -1
        }
        { print field("partition"), field("from"), field("to"), substr($0, 1, index($0, ":") - 1) }' \
        "$GRP_W/$scen.committed" | sort -k1,1n -k2,2n -k3,3n |
        awk -v final="$GRP_W/$scen.final" -v killed="$GRP_W/$scen.killed" '
        BEGIN {
            while ((getline l < final) > 0) { split(l, a, "|"); end[a[1]] = a[2] }
            while ((getline l < killed) > 0) dead[l] = 1
        }
        $1 < 0 || $2 < 0 || $3 < 0 { bad++; next }
        {
            n++
            if (!($1 in at)) { at[$1] = 0; by[$1] = "" }
            if ($2 < at[$1]) { over++; if (over <= 5) printf "overlap: partition %d [%d,%d) of %s after %d of %s\n", $1, $2, $3, $4, at[$1], by[$1] }
            else if ($2 > at[$1] && (by[$1] in dead) && $4 != by[$1]) { unlogged++; printf "unlogged: partition %d [%d,%d) after SIGKILL of %s\n", $1, at[$1], $2, by[$1] }
            else if ($2 > at[$1]) { gap++; if (gap <= 5) printf "gap: partition %d [%d,%d) of %s after %d of %s\n", $1, $2, $3, $4, at[$1], by[$1] }
            if ($3 > at[$1]) { at[$1] = $3; by[$1] = $4 }
        }
        END {
            for (p in end) if (at[p] + 0 != end[p] + 0) { short++; printf "partition %d: ranges end at %d, funnel.offsets at %d\n", p, at[p], end[p] }
            printf "batches=%d overlaps=%d gaps=%d unparsed=%d ends_differ=%d unlogged_after_kill=%d\n", n, over + 0, gap + 0, bad + 0, short + 0, unlogged + 0
        }')
    echo "$res" | grep -v '^batches=' >&2 || true
    res=$(echo "$res" | tail -n 1)
    grp_log "$scen: committed ranges: $res"
    case $res in
    *" overlaps=0 gaps=0 unparsed=0 ends_differ=0 "*) ;;
    *) fail "$scen: the committed ranges do not chain per partition ($res):" \
        "two writes of the same partition's batch, or one lost" ;;
    esac
    echo "ok   $scen: $(echo "$res" | sed 's/ .*//;s/batches=//') committed partition" \
        "ranges chain, none written twice"
}

# grp_verify SCEN: tables equal the clean run; the logs chain.
grp_verify() {
    local scen=$1 got want n
    got=$(PGDATABASE=$scen lf_checksums)
    want=$(cat "$GRP_W/$scen.clean.sums")
    if [ "$got" != "$want" ]; then
        diff <(echo "$want") <(echo "$got") >&2 || true
        n=$(grp_q "$scen" "SELECT count(*) FROM funnel.events")
        fail "$scen: the tables differ from the clean run ($n of" \
            "$(echo "$want" | awk -F'|' '$1 == "events" {print $2}') events)"
    fi
    echo "ok   $scen: tables equal the clean run" \
        "($(echo "$got" | awk -F'|' '{printf "%s=%s ", $1, $2}'))"
    grp_chain "$scen" "$GRP_W/$scen".*.log
}

grp_topic() {
    lf_broker "topic $1 $GRP_PARTITIONS" >/dev/null || fail "topic $1"
    lf_newdb "$1"
}

# grp_finish SCEN: once production is over: the clean run, the group drains
# everything, its instances stop (SIGTERM), the checks.
grp_finish() {
    local scen=$1 total name
    total=$(grp_clean "$scen")
    grp_wait_sum "$scen" "$total"
    # all at once: each leaves the group on SIGTERM, which takes seconds
    for name in a b c; do
        if [ -n "${GRP_PID[$scen.$name]:-}" ]; then
            kill -TERM "${GRP_PID[$scen.$name]}" 2>/dev/null || true
        fi
    done
    for name in a b c; do
        [ -n "${GRP_PID[$scen.$name]:-}" ] && grp_reap "$scen" "$name" TERM
    done
    grp_log "$scen: $total messages, $(cat "$GRP_W/$scen".*.log |
        grep -c 'msg=revoked') revocations in the logs"
    grp_verify "$scen"
}

grp_rolling() {
    local scen=$1 restarts=$2 k name sig parts=$(($2 + 2))
    grp_topic "$scen"
    grp_emit_part "$scen" 1 "$parts"
    for name in a b c; do grp_start "$scen" "$name"; done
    for name in a b c; do grp_wait_assigned "$scen" "$name"; done
    grp_wait_emit
    for k in $(seq 1 "$restarts"); do
        grp_emit_part "$scen" $((k + 1)) "$parts"
        grp_wait_sum "$scen" $(($(grp_sum "$scen") + 20)) 60
        sleep "0.$((RANDOM % 10))"
        name=$(echo a b c | cut -d' ' -f$(((k - 1) % 3 + 1)))
        sig=TERM
        [ $((k % 2)) = 0 ] && sig=KILL
        grp_stop "$scen" "$name" "$sig"
        grp_start "$scen" "$name"
        grp_wait_assigned "$scen" "$name"
        grp_wait_emit
    done
    grp_emit_part "$scen" "$parts" "$parts"
    grp_wait_emit
    grp_finish "$scen"
}

grp_scale() {
    local scen=$1
    grp_topic "$scen"
    grp_start "$scen" a
    grp_wait_assigned "$scen" a
    grp_emit_part "$scen" 1 3
    grp_wait_sum "$scen" 1 60
    grp_start "$scen" b
    grp_start "$scen" c
    grp_wait_assigned "$scen" b
    grp_wait_assigned "$scen" c
    grp_log "$scen: scaled out to 3 instances at $(grp_sum "$scen") offsets"
    grp_wait_emit
    grp_emit_part "$scen" 2 3
    # the three share the stream for a while
    grp_wait_sum "$scen" $(($(grp_sum "$scen") + 100)) 60
    local before
    before=$(grep -c 'msg=assigned' "${GRP_LOG[$scen.a]}")
    grp_stop "$scen" b TERM
    grp_stop "$scen" c TERM
    # a takes all twelve partitions back
    grp_wait_assigned "$scen" a $((before + GRP_PARTITIONS))
    grp_log "$scen: scaled in to 1 instance at $(grp_sum "$scen") offsets"
    grp_wait_emit
    grp_emit_part "$scen" 3 3
    grp_wait_emit
    grp_finish "$scen"
}
