#!/usr/bin/env bash
# test_replay_identity.sh BIN_DIR: leadflow-replay's identity commands
# against the real dev stack (devbroker + throwaway PostgreSQL):
#   usage      --help names both commands; missing options exit 64 naming
#              the option
#   erase      publishes one erased event that readers we did not write see
#              as the contract says (kcat: key, partition, offset; Apache
#              Avro's python3 library: the fields); the same request gives
#              the same event_id; --dry-run sends nothing; a broker that
#              cannot be reached exits 69
#   explain    on a projected workload with merges, voids and anomalies:
#              a merged lead resolves to its surviving lead, every event of
#              the person is listed in the order applied with its mark, then
#              the stage history; --json says the same; an unknown lead
#              exits 65
#   erased     after erase and projection, the lead is found only with the
#              pseudonym key, and explained under its pseudonym; the run
#              at another time is a conflict, not a second erasure
set -euo pipefail
BIN=$(cd "${1:?usage: test_replay_identity.sh BIN_DIR}" && pwd)
. "$(dirname "$0")/lib.sh"
R=$BIN/leadflow-replay
TOPIC=ident
GROUP=proj
PY=/usr/bin/python3 # python3-avro is the distribution's

lf_stack_up
echo "stack: brokers=$LEADFLOW_BROKERS pg=$PGHOST:$PGPORT"
# The key is given where it is needed (-X), so "without the key" means it.
unset LEADFLOW_PSEUDONYM_KEY_FILE

q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
expect_rc() { # RC WHAT CMD...: run CMD, which must exit RC
    local want=$1 what=$2 rc=0
    shift 2
    "$@" >"$LF_TMP/out" 2>"$LF_TMP/err" || rc=$?
    if [ "$rc" != "$want" ]; then
        cat "$LF_TMP/out" "$LF_TMP/err" >&2
        fail "$what: exit $rc, expected $want"
    fi
}
# The key the projector and explain share (mode 0600: lf_pseudonym.h).
KEY=$LF_TMP/pseudonym.key
(umask 077 && printf '%s\n' \
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff" >"$KEY")
project() {
    lf_project -t "$TOPIC" -g "$GROUP" --idle-exit 2 -q \
        -X pseudonym.key.file="$KEY" || fail "leadflow-project exited $?"
}
# Messages in the topic, every partition, read by kcat.
messages() {
    kcat -b "$LEADFLOW_BROKERS" -C -t "$TOPIC" -o beginning -e -q \
        -f 'm\n' | wc -l
}

# ---- usage ---------------------------------------------------------------
"$R" --help >"$LF_TMP/help"
grep -q "leadflow-replay erase --lead ID --request REF" "$LF_TMP/help" ||
    fail "--help lacks erase"
grep -q "leadflow-replay explain --lead ID" "$LF_TMP/help" ||
    fail "--help lacks explain"
"$R" erase --help | grep -q -- "--request REF" || fail "erase --help"
"$R" explain --help | grep -q -- "--json" || fail "explain --help"
expect_rc 64 "erase without --lead" "$R" erase --request T-1
grep -q -- "--lead ID is required" "$LF_TMP/err" ||
    fail "erase without --lead: the message does not name --lead"
expect_rc 64 "erase without --request" "$R" erase --lead E-2
grep -q -- "--request REF is required" "$LF_TMP/err" ||
    fail "erase without --request: the message does not name --request"
expect_rc 64 "erase with a bad --at" "$R" erase --lead E-2 --request T-1 \
    --at yesterday
grep -q -- "--at yesterday" "$LF_TMP/err" || fail "bad --at not named"
expect_rc 64 "explain without --lead" "$R" explain
grep -q -- "--lead ID is required" "$LF_TMP/err" ||
    fail "explain without --lead: the message does not name --lead"
expect_rc 64 "-X pseudonym.key on the command line" "$R" explain --lead A-1 \
    -X pseudonym.key=00112233445566778899aabbccddeeff00112233445566778899aabb
echo "ok   usage: --help names both; missing options exit 64 naming them"

# ---- the workload --------------------------------------------------------
# Person A: A-1 (captured, scored) and A-2 (captured, an accepted that fits
# nowhere, handed_off), A-2 merged into A-1, then merged again into A-9
# (another lead: an anomaly). A-1: accepted, qualified (voided), won (no
# longer fits: its qualified is voided), a void of an event never received.
# Person E: E-1 captured, E-2 merged into it; erased below.
lf_broker "topic $TOPIC 4" >/dev/null || fail "devbroker: topic not created"
id() { printf '00000000-0000-4000-8000-%012d' "$1"; }
ev() { # N LEAD TYPE TIME [JSON FIELDS]
    printf '{"event_id":"%s","lead_id":"%s","type":"%s","occurred_at":"2026-03-01T%s.000Z","source":"crm"%s}\n' \
        "$(id "$1")" "$2" "$3" "$4" "${5:+,$5}"
}
{
    ev 1 A-1 captured 10:00:00 '"channel":"web","attributes":{"email":"a1@example.com"}'
    ev 2 A-1 scored 10:05:00 '"score":80,"threshold":50,"model":"m1"'
    ev 3 A-2 captured 10:10:00 '"channel":"events"'
    ev 4 A-2 accepted 10:15:00 '"owner":"rep-1"'
    ev 5 A-2 handed_off 10:20:00 '"owner":"rep-1","sla_hours":24'
    ev 6 A-2 merged 10:25:00 '"into_lead_id":"A-1"'
    ev 7 A-1 accepted 10:30:00 '"owner":"rep-1"'
    ev 8 A-1 qualified 10:35:00 '"opportunity_id":"OPP-1","amount_minor":100000,"currency":"EUR"'
    ev 9 A-1 voided 10:40:00 "\"voided_event_id\":\"$(id 8)\",\"reason\":\"wrong opportunity\""
    ev 10 A-1 won 10:45:00 '"amount_minor":100000,"currency":"EUR"'
    ev 11 A-2 merged 10:50:00 '"into_lead_id":"A-9"'
    ev 12 A-1 voided 10:55:00 "\"voided_event_id\":\"$(id 999)\",\"reason\":\"typo\""
    ev 21 E-1 captured 11:00:00 '"channel":"web","attributes":{"email":"e1@example.com"}'
    ev 22 E-2 captured 11:05:00 '"channel":"web","attributes":{"email":"e2@example.com"}'
    ev 23 E-2 merged 11:10:00 '"into_lead_id":"E-1"'
    ev 24 E-1 scored 11:15:00 '"score":90,"threshold":50,"model":"m1"'
} >"$LF_TMP/events.jsonl"
"$BIN/leadflow-emit" -t "$TOPIC" -q "$LF_TMP/events.jsonl" ||
    fail "leadflow-emit exited $?"
project
[ "$(q "SELECT count(*) FROM funnel.events")" = 16 ] ||
    fail "expected the 16 events stored"
echo "ok   workload: 16 events projected"

# ---- erase ---------------------------------------------------------------
before=$(messages)
expect_rc 0 "erase --dry-run" "$R" erase -t "$TOPIC" --lead E-2 \
    --request T-1 --actor oncall --dry-run
dry_id=$("$PY" -c 'import json, sys; e = json.load(sys.stdin)
assert e["type"] == "erased" and e["lead_id"] == "E-2", e
assert e["request_id"] == "T-1" and e["source"] == "leadflow-replay", e
assert e["actor"] == "oncall", e
print(e["event_id"])' <"$LF_TMP/out") || fail "erase --dry-run: not the event"
sleep 1
[ "$(messages)" = "$before" ] || fail "erase --dry-run sent something"

AT=2026-03-02T09:00:00.000Z
erase() { # the published event's coordinates: "EVENT_ID PARTITION OFFSET"
    expect_rc 0 "erase" "$R" erase -t "$TOPIC" --lead E-2 --request T-1 \
        --actor oncall --at "$AT"
    grep -q "^published erased " "$LF_TMP/out" || fail "erase printed $(cat "$LF_TMP/out")"
    sed -E 's/.*event_id=([^ ]+).* partition=([0-9]+) offset=([0-9]+).*/\1 \2 \3/' \
        "$LF_TMP/out"
}
read -r eid part off < <(erase)
# The second with contract.version=1 (shared with producers of an old
# topic): an erased event is v2 whatever it says.
read -r eid2 part2 off2 < <(
    export LEADFLOW_CONTRACT_VERSION=1
    erase
)
[ "$eid" = "$dry_id" ] && [ "$eid2" = "$eid" ] ||
    fail "event_id not stable: dry run $dry_id, runs $eid and $eid2"
[ "$part2" = "$part" ] && [ "$off2" != "$off" ] ||
    fail "the second run should be a second message on partition $part"
# Without --at the event says another time, under the same event_id.
expect_rc 0 "erase without --at" "$R" erase -t "$TOPIC" --lead E-2 \
    --request T-1 -q
grep -q "^published erased event_id=$eid " "$LF_TMP/out" ||
    fail "erase without --at: $(cat "$LF_TMP/out")"
# kcat reads the message at the printed coordinates; Apache Avro decodes it.
key=$(kcat -b "$LEADFLOW_BROKERS" -C -t "$TOPIC" -p "$part" -o "$off" -c 1 \
    -e -q -f '%k')
[ "$key" = E-2 ] || fail "key at $part:$off is \"$key\", expected E-2"
kcat -b "$LEADFLOW_BROKERS" -C -t "$TOPIC" -p "$part" -o "$off" -c 1 -e -q \
    -f '%s' >"$LF_TMP/value"
"$PY" - "$SRC/schemas/avro/lead_event.v2.avsc" "$LF_TMP/value" "$eid" \
    "$AT" <<'PY' || fail "the erased event on the wire is not as published"
import datetime, io, sys
import avro.io, avro.schema
schema = avro.schema.parse(open(sys.argv[1]).read())
value = open(sys.argv[2], "rb").read()
assert value[0] == 0 and int.from_bytes(value[1:5], "big") == 2, value[:5]
buf = io.BytesIO(value[5:])
rec = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(buf))
assert buf.read() == b"", "trailing bytes"
at = rec["occurred_at"]
if not isinstance(at, int):
    at = int(round(at.timestamp() * 1000))
want = datetime.datetime.fromisoformat(sys.argv[4].replace("Z", "+00:00"))
assert at == int(want.timestamp() * 1000), at
assert rec["event_id"] == sys.argv[3], rec
assert rec["lead_id"] == "E-2" and rec["type"] == "ERASED", rec
assert rec["source"] == "leadflow-replay" and rec["actor"] == "oncall", rec
assert rec["payload"]["request_id"] == "T-1", rec
PY
expect_rc 69 "erase with no broker" "$R" erase -b 127.0.0.1:1 \
    -X message.timeout.ms=1500 -t "$TOPIC" --lead E-2 --request T-1 -q
echo "ok   erase: one erased event per run, event_id $eid stable, read back" \
    "by kcat and python3-avro; --dry-run sends nothing; no broker: 69"

# ---- explain -------------------------------------------------------------
explain() { "$R" explain --progress none -q "$@"; }
section() { # NAME FILE: the tab-separated rows of a section, header dropped
    awk -v s="$1" '$0 ~ "^" s { on = 1; getline; next } /^$/ { on = 0 } on' "$2"
}
explain --lead A-2 >"$LF_TMP/a2" || fail "explain A-2 exited $?"
explain --lead A-1 >"$LF_TMP/a1" || fail "explain A-1 exited $?"
grep -q "^  merged into A-1 by $(id 6) at 2026-03-01T10:25:00.000Z; its surviving lead is A-1$" \
    "$LF_TMP/a2" || {
    cat "$LF_TMP/a2" >&2
    fail "explain A-2 does not say it was merged into A-1"
}
grep -q "^  leads of the person: A-1 A-2$" "$LF_TMP/a1" ||
    fail "explain A-1: the person's leads"
grep -q "^  stage sales_accepted, cycle 1, since 2026-03-01T10:30:00.000Z$" \
    "$LF_TMP/a1" || fail "explain A-1: the stage"
section events "$LF_TMP/a1" >"$LF_TMP/ev1"
section events "$LF_TMP/a2" >"$LF_TMP/ev2"
cmp -s "$LF_TMP/ev1" "$LF_TMP/ev2" || fail "A-1 and A-2 list other events"
# Every event of the person (not E's), in (occurred_at, event_id) order.
got=$(cut -f2 "$LF_TMP/ev1" | sed 's/.*-0*//' | tr '\n' ' ')
[ "$got" = "1 2 3 4 5 6 7 8 9 10 11 12 " ] || {
    cat "$LF_TMP/a1" >&2
    fail "events listed: $got"
}
mark() { # N: the mark of event N
    awk -F'\t' -v e="$(id "$1")" '$2 == e { print $5 }' "$LF_TMP/ev1"
}
line() { awk -F'\t' -v e="$(id "$1")" '$2 == e' "$LF_TMP/ev1"; }
[ "$(line 5 | cut -f1,3,4)" = "$(printf '2026-03-01T10:20:00.000Z\tA-2\thanded_off')" ] ||
    fail "the merged lead's event: $(line 5)"
[ "$(mark 8)" = "voided by $(id 9) (wrong opportunity)" ] ||
    fail "voided qualified: \"$(mark 8)\""
[ "$(mark 6)" = "merge: counts (into A-1)" ] || fail "merge: \"$(mark 6)\""
mark 11 | grep -q "^merge: does not count (already merged into another lead" ||
    fail "second merge: \"$(mark 11)\""
[ "$(mark 9)" = "void: counts (voids $(id 8))" ] || fail "void: \"$(mark 9)\""
mark 12 | grep -q "^void: does not count (.*not received" ||
    fail "void of a missing event: \"$(mark 12)\""
for n in 4 10; do # fit nowhere: accepted before handed_off; won unqualified
    want=$(q "SELECT string_agg('anomaly: ' || reason, '; ' ORDER BY reason)
        FROM funnel.anomalies WHERE event_id = '$(id $n)' AND kind = 'state'")
    [ -n "$want" ] && [ "$(mark $n)" = "$want" ] ||
        fail "event $n: mark \"$(mark $n)\", anomalies \"$want\""
done
for n in 1 2 3 5 7; do
    [ "$(mark $n)" = - ] || fail "event $n: unexpected mark \"$(mark $n)\""
done
section "stage history of A-1" "$LF_TMP/a1" | cut -f1-6 >"$LF_TMP/hist"
t() { printf '2026-03-01T%s.000Z' "$1"; }
printf '%s\n' \
    "$(printf '1\t1\tcaptured\t%s\t%s\t%s' "$(t 10:00:00)" "$(t 10:05:00)" "$(id 1)")" \
    "$(printf '2\t1\tmarketing_qualified\t%s\t%s\t%s' "$(t 10:05:00)" "$(t 10:20:00)" "$(id 2)")" \
    "$(printf '3\t1\thanded_off\t%s\t%s\t%s' "$(t 10:20:00)" "$(t 10:30:00)" "$(id 5)")" \
    "$(printf '4\t1\tsales_accepted\t%s\t-\t%s' "$(t 10:30:00)" "$(id 7)")" \
    >"$LF_TMP/hist.want"
diff "$LF_TMP/hist.want" "$LF_TMP/hist" >&2 || fail "explain A-1: stage history"

explain --lead A-2 --json >"$LF_TMP/a2.json" || fail "explain --json exited $?"
"$PY" - "$LF_TMP/a2.json" "$LF_TMP/ev1" <<'PY' || fail "explain --json"
import json, sys
x = json.load(open(sys.argv[1]))
assert x["lead_id"] == "A-2" and x["surviving_lead_id"] == "A-1", x
assert x["merged"]["into_lead_id"] == "A-1" and not x["erased"], x
assert x["leads"] == ["A-1", "A-2"], x["leads"]
assert x["lead"] == {"stage": "sales_accepted", "cycle": 1,
                     "stage_entered_at": "2026-03-01T10:30:00.000Z"}, x["lead"]
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[2])]
got = [[e["occurred_at"], e["event_id"], e["lead_id"], e["type"],
        e["mark"] or "-"] for e in x["events"]]
assert got == rows, (got, rows)
assert [h["stage"] for h in x["stage_history"]] == [
    "captured", "marketing_qualified", "handed_off", "sales_accepted"], x
assert x["stage_history"][0]["visit"] == 1, x["stage_history"][0]
PY
expect_rc 65 "explain of an unknown lead" "$R" explain --lead NOPE-1
grep -q "lead NOPE-1 has no events" "$LF_TMP/err" ||
    fail "unknown lead: $(cat "$LF_TMP/err")"
grep -q "pseudonym.key.file" "$LF_TMP/err" ||
    fail "unknown lead without a key: no hint about erased leads"
echo "ok   explain: merged lead under its surviving lead, marks, history, --json"

# ---- an erased person ----------------------------------------------------
project # the two erased events
pseudo() { # LEAD: its pseudonym, computed here from the key
    "$PY" -c 'import hashlib, hmac, sys
key = bytes.fromhex(open(sys.argv[1]).read().split()[0])
print("erased:" + hmac.new(key, sys.argv[2].encode(),
                           hashlib.sha256).hexdigest()[:32])' "$KEY" "$1"
}
P1=$(pseudo E-1)
P2=$(pseudo E-2)
expect_rc 65 "explain of an erased lead without the key" "$R" explain \
    --lead E-2
# A key other than the projector's finds no erased E-2, and says so.
"$PY" -c 'import secrets; print(secrets.token_hex(32))' >"$LF_TMP/other.key"
chmod 600 "$LF_TMP/other.key"
expect_rc 65 "explain of an erased lead with another key" "$R" explain \
    --lead E-2 -X pseudonym.key.file="$LF_TMP/other.key"
grep -q "lead E-2 has no events .*with another key" "$LF_TMP/err" ||
    fail "erased lead, another key: no hint about the key: $(cat "$LF_TMP/err")"
explain --lead E-2 -X pseudonym.key.file="$KEY" >"$LF_TMP/e2" ||
    fail "explain of the erased E-2 exited $?"
grep -q "^  erased: explaining its pseudonym $P2 " "$LF_TMP/e2" ||
    fail "explain E-2: not explained as $P2: $(cat "$LF_TMP/e2")"
grep -q "^  merged into $P1 by $(id 23) .* its surviving lead is $P1$" \
    "$LF_TMP/e2" || fail "explain E-2: the merge under pseudonyms"
grep -q "^  erased by request T-1 at $AT (event $eid)$" "$LF_TMP/e2" ||
    fail "explain E-2: the erasure"
[ "$(grep -c "E-[12]" "$LF_TMP/e2")" = 1 ] ||
    fail "explain E-2 shows an original id beyond the one typed"
[ "$(grep -c "^  erased by request" "$LF_TMP/e2")" = 1 ] ||
    fail "explain E-2: three erased messages, one erasure expected"
section events "$LF_TMP/e2" | awk -F'\t' -v e="$eid" '$2 == e { print $5 }' |
    grep -q "^erasure (request T-1); conflict: " ||
    fail "explain E-2: the erased event's mark (and the later conflict)"
got=$(section events "$LF_TMP/e2" | cut -f2 | sort | tr '\n' ' ')
want=$(printf '%s\n' "$(id 21)" "$(id 22)" "$(id 23)" "$(id 24)" "$eid" |
    sort | tr '\n' ' ')
[ "$got" = "$want" ] ||
    fail "explain E-2: events $got"
explain --lead "$P1" >"$LF_TMP/p1" || fail "explain by pseudonym exited $?"
cmp -s <(section events "$LF_TMP/e2") <(section events "$LF_TMP/p1") ||
    fail "explain by pseudonym differs"
# Asked by its pseudonym, the person is still an erased one.
"$R" explain --lead "$P1" --json -v >"$LF_TMP/p1.json" 2>"$LF_TMP/p1.err" ||
    fail "explain --json by pseudonym exited $?"
grep -q '"erased": true' "$LF_TMP/p1.json" ||
    fail "explain --json by pseudonym: not erased: $(head -c 300 "$LF_TMP/p1.json")"
grep -q 'command=explain .*erased=yes' "$LF_TMP/p1.err" ||
    fail "explain by pseudonym: the summary says $(grep -o 'erased=[a-z]*' \
        "$LF_TMP/p1.err")"
echo "ok   erased: found with the key only, explained under its pseudonym"
