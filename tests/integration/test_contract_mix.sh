#!/usr/bin/env bash
# test_contract_mix.sh BIN_DIR: a topic whose writers were upgraded one at
# a time, against the real dev stack (devbroker + throwaway PostgreSQL):
#   mix        the same workload, half written as contract v1
#              (-X contract.version=1), half as v2 (the default), projects
#              to the tables of the whole workload written as v1
#   v2         v2-only events (accounts, merges, voids, erasures) next to
#              them: every one stored, account_id on the leads, identity
#              events stored, none of them entering a stage
#   rebuild    a rebuild from Kafka of that mixed topic equals the live
#              tables (leadflow-replay diff exits 0)
set -euo pipefail
BIN=$(cd "${1:?usage: test_contract_mix.sh BIN_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

lf_stack_up
echo "stack: brokers=$LEADFLOW_BROKERS pg=$PGHOST:$PGPORT"

q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
topic() { lf_broker "topic $1 4" >/dev/null; }
emit() { # TOPIC FILE [args]
    local t=$1 f=$2
    shift 2
    "$BIN/leadflow-emit" -t "$t" -q "$@" "$f"
}
project() { # DB TOPIC
    lf_newdb "$1"
    PGDATABASE=$1 lf_project -t "$2" -g "g-$2" --idle-exit 2 -q ||
        fail "leadflow-project on $2 exited $?"
}

"$BIN/leadflow-gen" --leads 300 --seed 11 -q -o "$LF_TMP/all.jsonl"
n=$(wc -l <"$LF_TMP/all.jsonl")
head -n $((n / 2)) "$LF_TMP/all.jsonl" >"$LF_TMP/first.jsonl"
tail -n +$((n / 2 + 1)) "$LF_TMP/all.jsonl" >"$LF_TMP/second.jsonl"

# ---- mix ----------------------------------------------------------------
for t in v1 mix; do topic $t; done
emit v1 "$LF_TMP/all.jsonl" -X contract.version=1 || fail "emit v1"
emit mix "$LF_TMP/first.jsonl" -X contract.version=1 || fail "emit mix v1"
emit mix "$LF_TMP/second.jsonl" || fail "emit mix v2"
project v1 v1
project mix mix
a=$(PGDATABASE=v1 lf_checksums)
b=$(PGDATABASE=mix lf_checksums)
[ "$a" = "$b" ] || {
    diff <(echo "$a") <(echo "$b") >&2 || true
    fail "mix: half v1, half v2 differs from all v1"
}
echo "ok   mix: $n events, half v1 half v2 = all v1 ($(echo "$a" |
    awk -F'|' '{printf "%s=%s ", $1, $2}'))"

# ---- v2-only events next to them ----------------------------------------
"$BIN/leadflow-gen" --leads 60 --seed 12 --accounts 7 --merges 0.1 \
    --voids 0.05 --erasures 0.05 -q -o "$LF_TMP/v2.jsonl"
kinds=$(grep -c -E '"type":"(merged|voided|erased)"' "$LF_TMP/v2.jsonl" ||
    true)
[ "$kinds" -gt 0 ] || fail "v2: the workload has no identity events"
emit mix "$LF_TMP/v2.jsonl" || fail "emit mix v2-only"
PGDATABASE=mix lf_project -t mix -g g-mix --idle-exit 2 -q ||
    fail "leadflow-project on mix (v2) exited $?"
total=$(($(wc -l <"$LF_TMP/all.jsonl") + $(wc -l <"$LF_TMP/v2.jsonl")))
stored=$(PGDATABASE=mix q "SELECT count(*) FROM funnel.events")
dl=$(PGDATABASE=mix q "SELECT count(*) FROM funnel.dead_letters")
# leadflow-gen writes some duplicates on purpose: count distinct event ids.
want=$(cat "$LF_TMP/all.jsonl" "$LF_TMP/v2.jsonl" |
    grep -o '"event_id":"[^"]*"' | sort -u | wc -l)
[ "$stored" = "$want" ] && [ "$dl" = 0 ] ||
    fail "v2: $stored events stored and $dl dead letters, want $want and 0 (of $total lines)"
ident=$(PGDATABASE=mix q "SELECT count(*) FROM funnel.events
    WHERE type IN ('merged', 'voided', 'erased')")
[ "$ident" -gt 0 ] || fail "v2: no identity event stored"
bad=$(PGDATABASE=mix q "SELECT count(*) FROM funnel.stage_history h
    JOIN funnel.events e ON e.event_id = h.entered_by
    WHERE e.type IN ('merged', 'voided', 'erased')")
[ "$bad" = 0 ] || fail "v2: $bad visits entered by an identity event"
accts=$(PGDATABASE=mix q "SELECT count(DISTINCT account_id)
    FROM funnel.leads WHERE account_id IS NOT NULL")
[ "$accts" -gt 0 ] && [ "$accts" -le 7 ] ||
    fail "v2: $accts accounts on the leads, want 1..7"
echo "ok   v2: $stored events ($ident identity), $accts accounts, no dead letter"

# ---- rebuild from Kafka of the mixed topic --------------------------------
PGDATABASE=mix "$BIN/leadflow-replay" rebuild -t mix -g g-mix --into rb \
    --from-kafka --progress none -q || fail "rebuild --from-kafka exited $?"
PGDATABASE=mix "$BIN/leadflow-replay" diff --against rb -q ||
    fail "rebuild of the mixed topic differs from the live tables"
echo "ok   rebuild: from Kafka of a v1 + v2 topic = the live tables"
