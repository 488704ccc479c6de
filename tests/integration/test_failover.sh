#!/usr/bin/env bash
# test_failover.sh BIN_DIR: the offsets fence of leadflow-project against
# the real dev stack (devbroker + throwaway PostgreSQL). A database that
# lost commits (what a failover to an asynchronous standby looks like) is
# simulated by moving funnel.offsets back under a running projector:
#   lost       the projector's next batches are refused (never written past
#              the gap), it re-reads the stored offsets, consumes again from
#              there, and the tables equal a clean run of the same stream
#   two        two instances in one group, one stopped and one started
#              mid-stream: no two batches continued from the same stored
#              offset of a partition (the committed ranges chain), and the
#              tables equal a clean run
set -euo pipefail
BIN=$(cd "${1:?usage: test_failover.sh BIN_DIR}" && pwd)
. "$(dirname "$0")/lib.sh"

LEADS=${LF_TEST_LEADS:-150}
lf_stack_up
echo "stack: brokers=$LEADFLOW_BROKERS pg=$PGHOST:$PGPORT"

topic() { lf_broker "topic $1 4" >/dev/null; }

gen() { # TOPIC SEED
    "$BIN/leadflow-gen" --leads "$LEADS" --seed "$2" --anomalies 0.1 \
        --produce -b "$LEADFLOW_BROKERS" -t "$1" -q ||
        fail "leadflow-gen into $1 failed"
}

q() { psql -X -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

same() { # DB_A DB_B WHAT
    local a b
    a=$(PGDATABASE=$1 lf_checksums)
    b=$(PGDATABASE=$2 lf_checksums)
    if [ "$a" != "$b" ]; then
        diff <(echo "$a") <(echo "$b") >&2 || true
        fail "$3: tables of $2 differ from $1"
    fi
    echo "ok   $3 ($(echo "$a" | awk -F'|' '{printf "%s=%s ", $1, $2}'))"
}

# settled DB GROUP: wait until funnel.offsets stops moving (2 s unchanged).
settled() {
    local prev="" cur
    for _ in $(seq 1 120); do
        cur=$(q "$1" "SELECT coalesce(sum(next_offset), 0) FROM funnel.offsets
            WHERE group_id = '$2'" 2>/dev/null) || cur="" # not migrated yet
        [ -n "$cur" ] && [ "$cur" = "$prev" ] && [ "$cur" != 0 ] && return 0
        prev=$cur
        sleep 2
    done
    fail "$1: offsets never settled"
}

# ---- lost: the stored offsets moved back under a running projector ----
topic lost
lf_newdb clean
lf_newdb lost
gen lost 31
PGDATABASE=lost "${LF_PROJECT[@]}" -t lost -g g-lost --batch 25 -v \
    --idle-exit 15 2>"$LF_TMP/lost.log" &
pid=$!
LF_PIDS+=("$pid")
settled lost g-lost
# The database "lost" the last commits of partitions 0 and 2: their stored
# offsets go back to half. The rows stay, as rows a standby got from older
# commits would; re-reading the range must not change the tables.
declare -A back
for p in 0 2; do
    n=$(q lost "SELECT next_offset FROM funnel.offsets WHERE group_id =
        'g-lost' AND partition = $p")
    back[$p]=$((n / 2))
    q lost "UPDATE funnel.offsets SET next_offset = ${back[$p]}
        WHERE group_id = 'g-lost' AND partition = $p" >/dev/null
done
gen lost 32 # more of the stream: the next batches meet the gap
wait "$pid" || fail "leadflow-project (lost) exited $?"
# The next batch is refused by the offsets check, or, if the projector was
# idle for 2 s first, its idle watch finds the offsets moved: either way it
# resumes from them.
grep -qE 'msg="batch refused: the database is not where|msg="the stored offsets changed under this projector' \
    "$LF_TMP/lost.log" ||
    fail "lost: no batch was refused: $(grep -c committed "$LF_TMP/lost.log")"
for p in 0 2; do
    grep -qE "level=warning .*msg=\"resuming from stored offsets\" \
topic=lost partition=$p offset=${back[$p]}\$" "$LF_TMP/lost.log" ||
        fail "lost: partition $p not resumed from ${back[$p]}"
    grep -qE "msg=committed writer=[0-9]+ topic=lost partition=$p \
from=${back[$p]} to=" "$LF_TMP/lost.log" ||
        fail "lost: no batch of partition $p continued from ${back[$p]}"
done
echo "ok   lost: batches past the gap refused; partitions 0 and 2 resumed" \
    "from ${back[0]} and ${back[2]}, re-read from there"
# The reference: the same topic, one clean projector.
PGDATABASE=clean "${LF_PROJECT[@]}" -t lost -g g-clean --idle-exit 2 -q ||
    fail "leadflow-project (clean) exited $?"
same clean lost "lost: tables equal a clean run"
offs() { # DB GROUP
    q "$1" "SELECT string_agg(next_offset::text, ',' ORDER BY partition)
        FROM funnel.offsets WHERE group_id = '$2'"
}
[ "$(offs lost g-lost)" = "$(offs clean g-clean)" ] ||
    fail "lost: stored offsets $(offs lost g-lost) differ from the clean" \
        "run's $(offs clean g-clean)"
echo "ok   lost: stored offsets equal the clean run's"

# ---- two: two instances, ranges never written twice ----------------------
topic two
lf_newdb two
lf_newdb twoclean
gen two 41 &
gpid=$!
PGDATABASE=two "${LF_PROJECT[@]}" -t two -g g-two --batch 15 -v \
    2>"$LF_TMP/two-a.log" &
a=$!
LF_PIDS+=("$a")
sleep 3
PGDATABASE=two "${LF_PROJECT[@]}" -t two -g g-two --batch 15 -v \
    --idle-exit 8 2>"$LF_TMP/two-b.log" &
b=$!
LF_PIDS+=("$b")
wait "$gpid" || fail "leadflow-gen into two failed"
sleep 4
gen two 42
kill -TERM "$a"
wait "$a" || fail "leadflow-project (two, a) exited $? after SIGTERM"
wait "$b" || fail "leadflow-project (two, b) exited $?"
cat "$LF_TMP/two-a.log" "$LF_TMP/two-b.log" | /usr/bin/python3 -c '
import re, sys
seen, lines = {}, 0
for line in sys.stdin:
    m = re.search(r"msg=committed writer=\d+ topic=(\S+) partition=(\d+) "
                  r"from=(\S+) to=(\d+)", line)
    if not m:
        continue
    lines += 1
    key = (m.group(1), int(m.group(2)), m.group(3))
    if key in seen:
        sys.exit("two batches continued from %s of partition %d" %
                 (key[2], key[1]))
    seen[key] = int(m.group(4))
# Each partition chains from its beginning to its last stored offset.
for t, p in {(k[0], k[1]) for k in seen}:
    nxt, at = {k[2]: v for k, v in seen.items() if k[:2] == (t, p)}, \
        "beginning"
    steps = 0
    while at in nxt:
        at, steps = str(nxt[at]), steps + 1
    if steps != len(nxt):
        sys.exit("partition %d: %d ranges, %d chain" % (p, len(nxt), steps))
print("%d committed batches" % lines)
' >"$LF_TMP/two.chk" 2>&1 || fail "two: $(cat "$LF_TMP/two.chk")"
grep -q "msg=committed" "$LF_TMP/two-b.log" ||
    fail "two: the second instance committed nothing"
echo "ok   two: $(cat "$LF_TMP/two.chk"), each partition's ranges chain," \
    "none written twice"
PGDATABASE=twoclean "${LF_PROJECT[@]}" -t two -g g-twoclean --idle-exit 2 \
    -q || fail "leadflow-project (twoclean) exited $?"
same twoclean two "two: tables equal a clean run"

echo "PASS test_failover"
