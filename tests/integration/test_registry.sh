#!/usr/bin/env bash
# test_registry.sh BIN_DIR: the schema registry client against a
# stand-in server (sr_standin.py: the REST calls we use, the registry's
# answers, basic auth, TLS, a switch to be unavailable), the dev broker and a
# throwaway PostgreSQL. The funnel tables projected through the registry are
# compared with those of the same events sent with the pinned id 1
# (lf_checksums: content only). The registry is a stand-in because no real
# one (Java) can be installed here:
#   register   producers ask whether <topic>-value accepts contract v2,
#              register it and frame the id the registry gives (ids start
#              at 100 here, so the pinned 1 and 2 cannot pass for it); a
#              second producer gets the same id
#   compat     a producer whose schema the registry says is not compatible
#              (contract.version=1 on a subject at v2) stops before it
#              sends anything, naming the subject and the registry's reason
#   lookup     the projector fetches the id once and projects the same
#              tables as the pinned run
#   v1x->v2    a topic mixing v2 (leadflow-emit) and another version
#              (python3-avro with tests/data/lead_event.v1x.avsc: v1 and
#              two new optional fields) projects the same tables: read by
#              field name, the unknown fields kept
#   v2->v1x    the reverse, by a v1x reader elsewhere in the ecosystem
#              (python3-avro): our v2 output reads with the new fields null
#   unknown    an id the registry does not know is dead-lettered with a
#              reason naming the id and the 404; a PROTOBUF schema too
#   replay     leadflow-replay decodes as the live projector does: rebuild
#              --from-kafka of the registry topics equals the live tables
#              (no dead letter), dump prints every event, and dead-letters
#              retry applies a message whose schema id the registry did not
#              know when it was projected and knows now
#   down       producer: 503, and killed-then-back; consumer: registry
#              killed while it starts, nothing dead-lettered, everything
#              projected once the registry is back
#   auth       wrong credentials: producer fails fast (401, URL named,
#              password not); consumer holds messages, dead-letters none
#   tls        HTTPS with our CA and a client certificate (encrypted key)
set -euo pipefail
BIN=$(cd "${1:?usage: test_registry.sh BIN_DIR}" && pwd)
. "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
TOOLS=${LEADFLOW_TESTS:-$(dirname "$BIN")/tests}

lf_stack_up
echo "stack: brokers=$LEADFLOW_BROKERS pg=$PGHOST:$PGPORT"

SR_USER=leadflow:s3cret-pw
SR_PORT=0
SR_LOG=$LF_TMP/sr.log
: >"$SR_LOG"
printf '{"schema":"x","schemaType":"PROTOBUF"}' >"$LF_TMP/protobuf.json"

# Start the stand-in (again on the same port and state: a restart of the
# same registry).
reg_start() {
    rm -f "$LF_TMP/sr.port"
    $PY "$HERE/sr_standin.py" --port "$SR_PORT" --port-file "$LF_TMP/sr.port" \
        --state "$LF_TMP/sr.state" --first-id 100 --user "$SR_USER" \
        --raw "777:200:$LF_TMP/protobuf.json" --log "$SR_LOG" &
    SR_PID=$!
    LF_PIDS+=("$SR_PID")
    for _ in $(seq 200); do
        [ -s "$LF_TMP/sr.port" ] && break
        sleep 0.05
    done
    [ -s "$LF_TMP/sr.port" ] || fail "the stand-in registry did not start"
    SR_PORT=$(cat "$LF_TMP/sr.port")
}
reg_stop() {
    kill "$SR_PID"
    wait "$SR_PID" 2>/dev/null || true
}
reg_start
SR="http://127.0.0.1:$SR_PORT"
export SR_URL=$SR SR_USER
CONF=$LF_TMP/registry.conf
printf 'schema.registry.url=%s\nschema.registry.basic.auth.user.info=%s\n' \
    "$SR" "$SR_USER" >"$CONF"
chmod 600 "$CONF"
echo "registry: $SR"

topic() { lf_broker "topic $1 4" >/dev/null; }
q() { psql -X -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
emit() { # TOPIC FILE [flags]: through the registry
    local t=$1 f=$2
    shift 2
    "$BIN/leadflow-emit" -b "$LEADFLOW_BROKERS" -t "$t" -c "$CONF" -qq "$@" "$f"
}
project() { # DB TOPIC [flags]
    local db=$1 t=$2
    shift 2
    lf_newdb "$db"
    PGDATABASE=$db "${LF_PROJECT[@]}" -t "$t" -g "g-$db" --idle-exit 2 -q "$@"
}
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
# As same(), for DB_B holding the v1x half: its two fields the contract
# does not know (events.extra, payload.landing_page) left out of the
# comparison (they are checked where the v1x events are first projected).
same_v1x() { # DB_A DB_B WHAT
    local a b
    PGDATABASE=$2 psql -X -q -v ON_ERROR_STOP=1 -c "
        CREATE SCHEMA v1x_stripped;
        CREATE TABLE v1x_stripped.events AS SELECT event_id, lead_id, type,
            occurred_at, source, actor, payload - 'landing_page' AS payload
            FROM funnel.events;
        CREATE TABLE v1x_stripped.leads AS SELECT * FROM funnel.leads;
        CREATE TABLE v1x_stripped.stage_history AS
            SELECT * FROM funnel.stage_history;
        CREATE TABLE v1x_stripped.anomalies AS SELECT * FROM funnel.anomalies;
        CREATE TABLE v1x_stripped.dead_letters AS
            SELECT * FROM funnel.dead_letters;"
    a=$(PGDATABASE=$1 lf_checksums)
    b=$(PGDATABASE=$2 lf_checksums v1x_stripped)
    PGDATABASE=$2 psql -X -q -c "SET client_min_messages = warning;
        DROP SCHEMA v1x_stripped CASCADE"
    if [ "$a" != "$b" ]; then
        diff <(echo "$a") <(echo "$b") >&2 || true
        fail "$3: without the v1x fields, tables of $2 differ from $1"
    fi
    echo "ok   $3"
}
sr_get() { curl -sS -u "$SR_USER" "$SR$1"; }

"$BIN/leadflow-gen" --leads 40 --seed 7 -q >"$LF_TMP/events.jsonl"
EV=$LF_TMP/events.jsonl
N=$(wc -l <"$EV")
awk 'NR % 2 == 1' "$EV" >"$LF_TMP/odd.jsonl"
awk 'NR % 2 == 0' "$EV" >"$LF_TMP/even.jsonl"

# ---- register ---------------------------------------------------------
for t in pinned reg1 mixed unknown; do topic $t; done
"$BIN/leadflow-emit" -b "$LEADFLOW_BROKERS" -t pinned -qq "$EV" ||
    fail "emit without a registry"
emit reg1 "$EV" || fail "emit through the registry exited $?"
[ "$(sr_get /subjects/reg1-value/versions)" = "[1]" ] ||
    fail "reg1-value versions: $(sr_get /subjects/reg1-value/versions)"
head -5 "$EV" >"$LF_TMP/first5.jsonl"
emit reg1 "$LF_TMP/first5.jsonl" || fail "second producer"
[ "$(sr_get /subjects/reg1-value/versions)" = "[1]" ] ||
    fail "a second producer added a version"
ids=$($PY "$HERE/sr_client.py" ids reg1 | sort | uniq -c | awk '{print $2 "x" $1}')
[ "$ids" = "100x$((N + 5))" ] || fail "reg1 framing ids: $ids (want 100x$((N + 5)))"
[ "$($PY "$HERE/sr_client.py" ids pinned | sort -u)" = 2 ] ||
    fail "without a registry the id must stay the pinned 2 (contract v2)"
sr_get /schemas/ids/100 | $PY -c '
import json, sys
got = json.loads(json.load(sys.stdin)["schema"])
want = json.load(open(sys.argv[1]))
sys.exit(0 if got == want else "registered schema differs from v2")' \
    "$SRC/schemas/avro/lead_event.v2.avsc" || fail "registered schema"
grep -q '^POST /compatibility/subjects/reg1-value/versions/latest 404' "$SR_LOG" ||
    fail "the producer did not ask about compatibility first: $(head -3 "$SR_LOG")"
echo "ok   register: reg1-value version 1 = id 100 = lead_event.v2.avsc, framed into $((N + 5)) values; a second producer reuses it"
# auto.register.schemas=false: look up only (registries where producers
# may not register)
topic lookonly
emit reg1 "$LF_TMP/first5.jsonl" -X schema.registry.auto.register.schemas=false ||
    fail "look-up-only producer on a registered subject"
set +e
err=$(emit lookonly "$LF_TMP/first5.jsonl" -X schema.registry.auto.register.schemas=false 2>&1)
rc=$?
set -e
[ $rc = 78 ] || fail "look-up-only on an unregistered subject: exit $rc: $err"
echo "$err" | grep -q "schema registry $SR/subjects/lookonly-value: HTTP 404 (error_code 40401: Subject 'lookonly-value' not found.): the schema is not registered under subject \"lookonly-value\" and schema.registry.auto.register.schemas=false" ||
    fail "look-up-only message: $err"
[ "$(sr_get /subjects)" = '["reg1-value"]' ] ||
    fail "look-up-only registered something: $(sr_get /subjects)"
echo "ok   register: auto.register.schemas=false looks the id up, and fails clearly when the subject lacks it"

# ---- compat: the registry's "not compatible" stops a producer ----------
topic compat
emit compat "$LF_TMP/first5.jsonl" || fail "emit v2 into compat"
: >"$SR_LOG"
set +e
err=$(emit compat "$EV" -X contract.version=1 2>&1)
rc=$?
set -e
[ $rc = 78 ] || fail "an incompatible schema: exit $rc, want 78: $err"
echo "$err" | grep -q "leadflow-emit: schema registry $SR/compatibility/subjects/compat-value/versions/latest?verbose=true: subject \"compat-value\" does not accept this schema: .*missing_enum_symbols" ||
    fail "incompatible message: $err"
# Asked as the API documents it; the "no" asked again verbosely, for the
# reason.
[ "$(sed -n 's/^POST \(\/compatibility[^ ]*\) .*/\1/p' "$SR_LOG" | head -2 | tr '\n' ' ')" = \
  "/compatibility/subjects/compat-value/versions/latest /compatibility/subjects/compat-value/versions/latest?verbose=true " ] ||
    fail "the compatibility requests: $(cat "$SR_LOG")"
grep -q '^POST /subjects/compat-value' "$SR_LOG" &&
    fail "registered after the registry said not compatible: $(cat "$SR_LOG")"
[ "$($PY "$HERE/sr_client.py" ids compat | wc -l)" = 5 ] ||
    fail "the refused producer sent something"
echo "ok   compat: contract.version=1 on a subject at v2: exit 78 before sending; $(echo "$err" | tail -1 | cut -c1-160)"

# ---- v2 writers next to v1 writers -------------------------------------
emit mixed "$LF_TMP/odd.jsonl" || fail "emit odd"
v2id=$(SR_URL=$SR $PY "$HERE/sr_client.py" produce-v2 mixed <"$LF_TMP/even.jsonl") ||
    fail "python v2 producer"
[ "$v2id" = 101 ] || fail "v2 got id $v2id, want 101"
[ "$(sr_get /subjects/mixed-value/versions)" = "[1, 2]" ] ||
    fail "mixed-value versions: $(sr_get /subjects/mixed-value/versions)"

# ---- unknown ids --------------------------------------------------------
# A valid v1 body framed with ids the registry does not know (4242, three
# times: asked once) or holds as PROTOBUF (777), then a good event (id 100;
# with a registry every id is the registry's, the pinned 1 included).
good=$(head -1 "$EV" | "$TOOLS/lf_codec_tool" encode)
key=$(printf 'L-000001' | od -An -tx1 | tr -d ' \n')
{
    for _ in 1 2 3; do echo "$key 0000001092${good:10}"; done
    echo "$key 0000000309${good:10}"
    echo "$key 0000000064${good:10}"
} | lf_send_raw unknown >/dev/null

# ---- lookup: project all four in parallel --------------------------------
: >"$SR_LOG"
project pinned pinned & p1=$!
project reg1 reg1 -c "$CONF" & p2=$!
project mixed mixed -c "$CONF" & p3=$!
project unknown unknown -c "$CONF" & p4=$!
wait $p1 || fail "pinned projection"
wait $p2 || fail "reg1 projection"
wait $p3 || fail "mixed projection"
wait $p4 || fail "unknown projection"
same pinned reg1 "lookup: v2 through the registry = pinned v2"
# The v1x half carries two fields the contract does not know: nothing a
# writer sends is lost, so correlation_id is in events.extra and
# landing_page in the captured payloads. Without them, the events are the
# pinned run's; the funnel tables are the pinned run's as they are.
kept=$(PGDATABASE=mixed psql -X -At -v ON_ERROR_STOP=1 -c "
    SELECT count(*) FILTER (WHERE extra->>'correlation_id' =
                            'corr-' || left(event_id, 8)),
           count(*) FILTER (WHERE type = 'captured' AND
                            payload->>'landing_page' = '/lp/' || lead_id),
           count(*) FILTER (WHERE type = 'captured')
    FROM funnel.events WHERE extra IS NOT NULL")
[ "${kept%%|*}" -gt 0 ] && [ "$(echo "$kept" | cut -d'|' -f2)" = \
    "$(echo "$kept" | cut -d'|' -f3)" ] ||
    fail "v1x->v2: the v1x fields are not all kept (kept|landing|captured: $kept)"
same_v1x pinned mixed "v1x->v2: half v1x (python3-avro), half v2 = pinned v2, the v1x fields kept besides ($kept)"

fetches=$(grep -c '^GET /schemas/ids/100 200' "$SR_LOG" || true)
[ "$fetches" -le 3 ] || fail "id 100 fetched $fetches times by 3 projectors"
[ "$(grep -c '^GET /schemas/ids/101 200' "$SR_LOG")" = 1 ] ||
    fail "id 101 not fetched exactly once"
echo "ok   cache: id 100 fetched $fetches times for $((2 * N + 10)) messages in 3 processes, id 101 once"

dl=$(q unknown "SELECT error FROM funnel.dead_letters ORDER BY partition, \"offset\"")
[ "$(echo "$dl" | grep -c 'schema id 4242 is unknown to the schema registry: schema registry http://127.0.0.1:[0-9]*/schemas/ids/4242: HTTP 404 (error_code 40403: Schema 4242 not found)')" = 3 ] ||
    fail "unknown id dead letters: $dl"
echo "$dl" | grep -q 'schema id 777: schemaType PROTOBUF: only Avro schemas can be read' ||
    fail "PROTOBUF dead letter: $dl"
[ "$(q unknown "SELECT count(*) FROM funnel.events")" = 1 ] ||
    fail "the good event after the unknown ids"
[ "$(grep -c '^GET /schemas/ids/4242 404' "$SR_LOG")" = 1 ] ||
    fail "the 404 was not remembered"
echo "ok   unknown: 3 dead letters naming id 4242 and the 404 (asked once), 1 naming PROTOBUF, the next event projected"
echo "     $(echo "$dl" | head -1)"

# ---- replay: rebuild, dump and retry through the registry ---------------
R=$BIN/leadflow-replay
replay() { # DB COMMAND [args]: leadflow-replay with the registry settings
    local db=$1 cmd=$2
    shift 2
    PGDATABASE=$db "$R" "$cmd" -c "$CONF" --progress none "$@"
}
for db in reg1 mixed; do
    replay "$db" rebuild --into r_kafka --from-kafka -t "$db" -g "g-$db" \
        2>"$LF_TMP/rebuild.err" ||
        fail "rebuild --from-kafka of $db exited $?: $(tail -3 "$LF_TMP/rebuild.err")"
    [ "$(q "$db" "SELECT count(*) FROM r_kafka.dead_letters")" = 0 ] ||
        fail "rebuild --from-kafka of $db dead-lettered: $(q "$db" "SELECT DISTINCT error FROM r_kafka.dead_letters" | head -3)"
    replay "$db" diff --against r_kafka >"$LF_TMP/diff" 2>/dev/null || {
        cat "$LF_TMP/diff" >&2
        fail "rebuild --from-kafka of $db differs from the live tables"
    }
    [ "$(PGDATABASE=$db lf_checksums r_kafka)" = "$(PGDATABASE=$db lf_checksums)" ] ||
        fail "rebuild --from-kafka of $db: checksums differ from the live tables"
done
echo "ok   replay: rebuild --from-kafka through the registry (ids 100, 101) = the live tables, no dead letter"
# A bad registry setting is refused (78) before the schema is made: the
# same command with the setting fixed then runs without --replace.
rc=0
replay reg1 rebuild --into r_badsr -t reg1 -g g-reg1 \
    -X schema.registry.url=ftp://x 2>"$LF_TMP/badsr.err" || rc=$?
[ "$rc" = 78 ] && grep -q "bad schema registry configuration" "$LF_TMP/badsr.err" ||
    fail "rebuild with a bad registry URL: exit $rc: $(cat "$LF_TMP/badsr.err")"
[ "$(q reg1 "SELECT count(*) FROM pg_namespace WHERE nspname = 'r_badsr'")" = 0 ] ||
    fail "rebuild with a bad registry URL made its schema"
echo "ok   replay: rebuild with a bad registry setting exits 78 before making its schema"
replay reg1 dump -t reg1 >"$LF_TMP/dump.jsonl" 2>"$LF_TMP/dump.err" ||
    fail "dump exited $?: $(tail -3 "$LF_TMP/dump.err")"
grep -q "undecodable=0 " "$LF_TMP/dump.err" ||
    fail "dump: $(grep summary "$LF_TMP/dump.err")"
[ "$(wc -l <"$LF_TMP/dump.jsonl")" = $((N + 10)) ] ||
    fail "dump wrote $(wc -l <"$LF_TMP/dump.jsonl") lines, expected $((N + 10))"
[ "$(jq -r .event_id "$LF_TMP/dump.jsonl" | sort -u | wc -l)" = "$(q reg1 "SELECT count(*) FROM funnel.events")" ] ||
    fail "dump: not every event of reg1"
echo "ok   replay: dump through the registry printed all $((N + 10)) messages of reg1"
# dump shows the fields the contract does not know (the v1x half of
# mixed): each event's extra and payload extra as stored; emit refuses
# such a line (naming the field) rather than send it without them.
replay mixed dump -t mixed >"$LF_TMP/dumpx.jsonl" 2>"$LF_TMP/dumpx.err" ||
    fail "dump of mixed exited $?: $(tail -3 "$LF_TMP/dumpx.err")"
jq -c 'select(._extra or ._payload_extra) | [.event_id, ._extra,
    ._payload_extra]' "$LF_TMP/dumpx.jsonl" | sort >"$LF_TMP/dumpx.got"
q mixed "SELECT json_build_array(event_id, extra, CASE WHEN type =
    'captured' AND payload ? 'landing_page' THEN jsonb_build_object(
    'landing_page', payload->'landing_page') END)::jsonb FROM funnel.events
    WHERE extra IS NOT NULL OR payload ? 'landing_page'" |
    jq -c . | sort >"$LF_TMP/dumpx.want"
[ -s "$LF_TMP/dumpx.want" ] && cmp -s "$LF_TMP/dumpx.got" "$LF_TMP/dumpx.want" ||
    fail "dump's _extra/_payload_extra differ from the stored ones: $(diff "$LF_TMP/dumpx.got" "$LF_TMP/dumpx.want" | head -4)"
rc=0
grep -m1 '"_extra"' "$LF_TMP/dumpx.jsonl" |
    "$BIN/leadflow-emit" -b "$LEADFLOW_BROKERS" -t dumpx --dry-run \
        >/dev/null 2>"$LF_TMP/dumpx.err" || rc=$?
[ "$rc" = 65 ] && grep -q 'field \\"_extra\\": fields of a newer contract' \
    "$LF_TMP/dumpx.err" ||
    fail "emit of a dumped line with _extra: exit $rc: $(cat "$LF_TMP/dumpx.err")"
echo "ok   replay: dump shows the fields the contract does not know ($(wc -l <"$LF_TMP/dumpx.want") events); emit refuses them by name"
# A v2 body framed with id 102, before any schema has that id: the live
# projector dead-letters it (404). Then the registry learns the schema
# (v2 with another doc: a new id, the same body), and a retry applies it.
topic late
printf '%s 0000000066%s\n' "$key" "${good:10}" | lf_send_raw late >/dev/null
project late late -c "$CONF" || fail "late projection"
q late "SELECT error FROM funnel.dead_letters" |
    grep -q "schema id 102 is unknown to the schema registry" ||
    fail "late: not dead-lettered as unknown: $(q late "SELECT error FROM funnel.dead_letters")"
late_id=$($PY -c '
import json, sys
s = json.load(open(sys.argv[1]))
s["doc"] = "v2, registered late"
print(json.dumps({"schema": json.dumps(s)}))' "$SRC/schemas/avro/lead_event.v2.avsc" |
    curl -sS -u "$SR_USER" -H "Content-Type: application/vnd.schemaregistry.v1+json" \
        --data-binary @- "$SR/subjects/late-value/versions")
[ "$late_id" = '{"id": 102}' ] || [ "$late_id" = '{"id":102}' ] ||
    fail "the late schema got $late_id, want id 102"
replay late dead-letters retry --all >"$LF_TMP/retry" 2>"$LF_TMP/retry.err" ||
    fail "retry exited $?: $(tail -3 "$LF_TMP/retry.err")"
grep -q "selected=1 applied=1 new_events=1 .* still_failing=0" "$LF_TMP/retry.err" ||
    fail "retry: $(cat "$LF_TMP/retry" "$LF_TMP/retry.err")"
[ "$(q late "SELECT count(*) FROM funnel.events") $(q late "SELECT count(*) FROM funnel.dead_letters WHERE resolved_at IS NULL")" = "1 0" ] ||
    fail "retry did not apply the late letter"
echo "ok   replay: a letter whose schema id 102 the registry learnt later: retry applied it"

# ---- v1 written, v2 read (another consumer of the ecosystem) ----------
out=$($PY "$HERE/sr_client.py" read-v2 reg1 "$EV") || fail "v2 reader on reg1"
[ "$out" = "v1-written=$((N + 10)) v2-written=0" ] || fail "read-v2 reg1: $out"
out=$($PY "$HERE/sr_client.py" read-v2 mixed "$EV") || fail "v2 reader on mixed"
echo "ok   v2->v1x: python3-avro with the v1x reader schema reads our v2 output (new fields null); mixed: $out"

# ---- auth -----------------------------------------------------------------
topic authp
for ui in "leadflow:wrong-pw" ""; do
    t0=$(date +%s)
    set +e
    err=$("$BIN/leadflow-emit" -b "$LEADFLOW_BROKERS" -t authp -q \
        -X "schema.registry.url=$SR" \
        -X "schema.registry.basic.auth.user.info=$ui" "$LF_TMP/first5.jsonl" 2>&1)
    rc=$?
    set -e
    [ $rc = 78 ] || fail "wrong credentials: exit $rc, want 78: $err"
    [ $(($(date +%s) - t0)) -lt 10 ] || fail "a 401 must not be retried"
    echo "$err" | grep -q "schema registry $SR/compatibility/subjects/authp-value/versions/latest: HTTP 401 (error_code 40101: Unauthorized)" ||
        fail "401 message: $err"
    case $err in *wrong-pw*) fail "the password is printed: $err" ;; esac
done
[ -z "$($PY "$HERE/sr_client.py" ids authp)" ] || fail "authp got messages"
echo "ok   auth: wrong or missing credentials: exit 78 at once; $(echo "$err" | head -1)"
lf_newdb authc
PGDATABASE=authc "${LF_PROJECT[@]}" -t reg1 -g g-authc \
    -X "schema.registry.url=$SR" \
    -X "schema.registry.basic.auth.user.info=leadflow:wrong-pw" \
    2>"$LF_TMP/authc.err" &
pc=$!
LF_PIDS+=("$pc")
for _ in $(seq 100); do
    grep -q 'message held' "$LF_TMP/authc.err" && break
    sleep 0.2
done
kill -TERM $pc
wait $pc || true
grep -q 'message held.*HTTP 401' "$LF_TMP/authc.err" ||
    fail "consumer with wrong credentials: $(tail -3 "$LF_TMP/authc.err")"
[ "$(q authc "SELECT (SELECT count(*) FROM funnel.events) + (SELECT count(*) FROM funnel.dead_letters)")" = 0 ] ||
    fail "consumer with wrong credentials wrote events or dead letters"
echo "ok   auth: a consumer refused by the registry holds its messages (no event, no dead letter)"

# ---- down -----------------------------------------------------------------
topic down503
kill -USR1 "$SR_PID" # answer 503 from now on
set +e
err=$(emit down503 "$LF_TMP/first5.jsonl" -X schema.registry.retry.timeout.ms=3000 2>&1)
rc=$?
set -e
kill -USR1 "$SR_PID"
[ $rc = 75 ] || fail "registry 503: exit $rc, want 75: $err"
echo "$err" | grep -q 'msg="schema registry unavailable, will retry" attempt=1' ||
    fail "no retry logged: $err"
echo "$err" | grep -q "leadflow-emit: schema registry $SR/compatibility/subjects/down503-value/versions/latest: HTTP 503 (error_code 50003: Error in the backend data store) (gave up after [0-9]* attempts" ||
    fail "503 message: $err"
# It asked for the whole retry timeout, not a backoff less.
gave=$(echo "$err" | sed -n 's/.*attempts in \([0-9.]*\) s.*/\1/p')
awk -v s="$gave" 'BEGIN { exit !(s >= 3.0) }' ||
    fail "gave up after ${gave:-?} s, before schema.registry.retry.timeout.ms=3000"
[ -z "$($PY "$HERE/sr_client.py" ids down503)" ] || fail "down503 got messages"
echo "ok   down: producer on a 503 registry: exit 75, nothing sent; $(echo "$err" | tail -1)"

# A signal ends the wait for a registry at once: exit 75, said, nothing
# sent (it was the default action: 143 without a word, and gen waited on
# for the whole retry timeout).
kill -USR1 "$SR_PID" # 503 again
for p in emit gen; do
    if [ $p = emit ]; then # not the function: $! would be its subshell
        "$BIN/leadflow-emit" -b "$LEADFLOW_BROKERS" -t down503 -c "$CONF" \
            -qq "$LF_TMP/first5.jsonl" 2>"$LF_TMP/sig.err" &
    else
        "$BIN/leadflow-gen" -n 5 --produce -b "$LEADFLOW_BROKERS" -t down503 \
            -c "$CONF" -q 2>"$LF_TMP/sig.err" &
    fi
    ps=$!
    sleep 1.5
    t0=$(date +%s)
    kill -TERM $ps
    rc=0
    wait $ps || rc=$?
    [ $rc = 75 ] && [ $(($(date +%s) - t0)) -le 5 ] &&
        grep -q "interrupted while waiting for the schema registry" \
            "$LF_TMP/sig.err" ||
        fail "$p: SIGTERM while waiting for the registry: exit $rc: $(tail -2 "$LF_TMP/sig.err")"
done
kill -USR1 "$SR_PID"
[ -z "$($PY "$HERE/sr_client.py" ids down503)" ] || fail "down503 got messages"
echo "ok   down: SIGTERM while waiting for the registry: exit 75 at once"

topic downp
reg_stop
emit downp "$EV" -v 2>"$LF_TMP/downp.err" &
pe=$!
LF_PIDS+=("$pe")
sleep 1.5
reg_start
wait $pe || fail "producer did not outlast the registry's restart: $(tail -3 "$LF_TMP/downp.err")"
grep -q 'will retry.*Connection refused\|will retry.*Couldn.t connect' "$LF_TMP/downp.err" ||
    fail "no retry on a refused connection: $(head -3 "$LF_TMP/downp.err")"
[ "$($PY "$HERE/sr_client.py" ids downp | sort | uniq -c | awk '{print $2 "x" $1}')" = "100x$N" ] ||
    fail "downp: not every event delivered with id 100"
echo "ok   down: producer started while the registry was down: retried, then all $N delivered"

topic downc
emit downc "$LF_TMP/odd.jsonl" || fail "emit downc"
$PY "$HERE/sr_client.py" produce-v2 downc <"$LF_TMP/even.jsonl" >/dev/null ||
    fail "v2 into downc"
reg_stop
lf_newdb downc
PGDATABASE=downc "${LF_PROJECT[@]}" -t downc -g g-downc --idle-exit 2 \
    -c "$CONF" --metrics 127.0.0.1:0 2>"$LF_TMP/downc.err" &
pc=$!
LF_PIDS+=("$pc")
for _ in $(seq 100); do
    [ "$(grep -c 'message held' "$LF_TMP/downc.err")" -ge 2 ] && break
    sleep 0.2
done
[ "$(q downc "SELECT (SELECT count(*) FROM funnel.events) + (SELECT count(*) FROM funnel.dead_letters)")" = 0 ] ||
    fail "events or dead letters while the registry is down"
# The held projector still shows its lag: the stalled-projector alerts
# read it (it had no sample at all before).
mport=$(sed -n 's/.*msg="serving metrics".* port=\([0-9]*\).*/\1/p' \
    "$LF_TMP/downc.err" | head -1)
lag=$(curl -s "http://127.0.0.1:$mport/metrics" |
    awk '/^leadflow_consumer_lag\{/ { s += $2 } END { print s + 0 }')
[ "$lag" -gt 0 ] ||
    fail "no consumer lag on /metrics while the registry is down: '$lag'"
reg_start
wait $pc || fail "projector after the registry came back"
[ "$(q downc "SELECT count(*) FROM funnel.dead_letters")" = 0 ] ||
    fail "dead letters after the registry came back"
same_v1x pinned downc "down: registry down at the consumer's start, then back"
echo "     $(grep -m1 'message held' "$LF_TMP/downc.err")"

# ---- tls --------------------------------------------------------------------
T=$LF_TMP/tls
mkdir -p "$T"
(
    cd "$T"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca \
        -keyout ca.key -out ca.crt
    openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
        -keyout srv.key -out srv.csr
    printf 'subjectAltName=IP:127.0.0.1\n' >san.ext
    openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
        -days 2 -extfile san.ext -out srv.crt
    openssl req -newkey rsa:2048 -subj /CN=leadflow -passout pass:keypw \
        -keyout cli.key -out cli.csr
    openssl x509 -req -in cli.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
        -days 2 -out cli.crt
) >/dev/null 2>&1 || fail "openssl could not make test certificates"
$PY "$HERE/sr_standin.py" --port-file "$T/port" --tls-cert "$T/srv.crt" \
    --tls-key "$T/srv.key" --tls-client-ca "$T/ca.crt" &
TLS_PID=$!
LF_PIDS+=("$TLS_PID")
for _ in $(seq 200); do
    [ -s "$T/port" ] && break
    sleep 0.05
done
TLS_URL=https://127.0.0.1:$(cat "$T/port")
topic tls
"$BIN/leadflow-emit" -b "$LEADFLOW_BROKERS" -t tls -q \
    -X "schema.registry.url=$TLS_URL" \
    -X "schema.registry.ssl.ca.location=$T/ca.crt" \
    -X "schema.registry.ssl.certificate.location=$T/cli.crt" \
    -X "schema.registry.ssl.key.location=$T/cli.key" \
    -X "schema.registry.ssl.key.password=keypw" "$LF_TMP/first5.jsonl" ||
    fail "emit over TLS with a client certificate"
[ "$($PY "$HERE/sr_client.py" ids tls | sort -u)" = 1 ] ||
    fail "tls: the first schema of that registry should be id 1"
set +e
err=$("$BIN/leadflow-emit" -b "$LEADFLOW_BROKERS" -t tls -q \
    -X "schema.registry.url=$TLS_URL" "$LF_TMP/first5.jsonl" 2>&1)
rc=$?
set -e
[ $rc = 78 ] || fail "TLS without our CA: exit $rc, want 78: $err"
echo "$err" | grep -q "schema registry $TLS_URL/compatibility/subjects/tls-value/versions/latest: .*certificate" ||
    fail "TLS error message: $err"
echo "ok   tls: CA, client certificate and encrypted key pass through; without the CA: $(echo "$err" | cut -c1-150)"

reg_stop
kill "$TLS_PID"
wait "$TLS_PID" 2>/dev/null || true
echo "PASS test_registry"
