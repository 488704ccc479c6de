#!/usr/bin/env bash
# test_devbroker.sh: leadflow-devbroker serves real Kafka clients (kcat) and
# obeys its fault commands.
#
#   tests/integration/test_devbroker.sh BIN_DIR      (e.g. build/bin)
#
# Checks what a user of the dev stack relies on: keyed messages produced with
# kcat come back intact; a consumer group gets the messages and its commits
# hold (a second run of the group sees only what was produced since); the
# command channel answers, and an injected fault has the effect it claims.
# Takes about 15 s, most of it the mock's consumer group join delays.
set -euo pipefail

BIN=${1:?usage: $0 BIN_DIR}
BROKER=$BIN/leadflow-devbroker
TOPIC=lead-events
# Mock consumer groups wait session.timeout.ms - 1 s before assigning
# partitions to a member that joins after the previous one left.
GROUP_OPTS=(-X session.timeout.ms=6000 -X auto.offset.reset=earliest)

if ! command -v kcat >/dev/null; then
    echo "FAIL: kcat is not installed (apt-get install kcat)" >&2
    exit 1
fi
if [ ! -x "$BROKER" ]; then
    echo "FAIL: $BROKER not found" >&2
    exit 1
fi

work=$(mktemp -d /tmp/test_devbroker.XXXXXX)
broker_pid=
cleanup() {
    if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
        kill -TERM "$broker_pid" 2>/dev/null || true
    fi
    rm -rf -- "$work"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    if [ -f "$work/broker.log" ]; then
        echo "--- broker log (last 20 lines):" >&2
        tail -n 20 "$work/broker.log" >&2
    fi
    exit 1
}
step() { echo "--- $*"; }

# The broker runs as a coprocess: we write commands to its stdin and read one
# answer line per command from its stdout. bash unsets BR_PID and BR when
# the coprocess ends: keep copies.
coproc BR { exec "$BROKER" --brokers 3 2>"$work/broker.log"; }
broker_pid=$BR_PID
BR_IN=${BR[1]}
BR_OUT=${BR[0]}

read -r -t 10 -u "$BR_OUT" BS || fail "no bootstrap.servers line within 10 s"
[[ $BS =~ ^127\.0\.0\.1:[0-9]+(,127\.0\.0\.1:[0-9]+){2}$ ]] ||
    fail "first stdout line is not a 3-broker bootstrap list: '$BS'"
echo "bootstrap.servers=$BS"

# cmd LINE: sends one command, sets $ANS to the answer line.
cmd() {
    printf '%s\n' "$1" >&"$BR_IN"
    read -r -t 10 -u "$BR_OUT" ANS || fail "no answer to '$1' within 10 s"
    echo "> $1  < $ANS"
}
expect_ok() {
    cmd "$1"
    [ "$ANS" = ok ] || fail "'$1' answered '$ANS', expected 'ok'"
}

expect_ok ping

step "produce 10 keyed messages"
for i in $(seq 1 10); do echo "lead-$i:value-$i"; done >"$work/sent"
timeout 20 kcat -P -b "$BS" -t "$TOPIC" -K: <"$work/sent" ||
    fail "kcat could not produce to $TOPIC"

step "consume them back"
timeout 20 kcat -C -b "$BS" -t "$TOPIC" -e -q -f '%k:%s\n' >"$work/got" ||
    fail "kcat could not consume $TOPIC to its end"
sort "$work/sent" >"$work/sent.sorted"
sort "$work/got" >"$work/got.sorted"
diff -u "$work/sent.sorted" "$work/got.sorted" ||
    fail "consumed messages differ from the produced ones"
# The default topic has 4 partitions and keys spread over them.
timeout 20 kcat -C -b "$BS" -t "$TOPIC" -e -q -f '%k %p\n' >"$work/parts"
[ "$(awk '{print $2}' "$work/parts" | sort -u | wc -l)" -gt 1 ] ||
    fail "10 keys all landed in one partition of 4"

step "consumer group receives the messages and commits"
timeout 30 kcat -b "$BS" -G tg "${GROUP_OPTS[@]}" -e -q -f '%k:%s\n' "$TOPIC" \
    >"$work/g1" 2>"$work/g1.err" ||
    { cat "$work/g1.err" >&2; fail "group consumer (run 1) failed"; }
sort "$work/g1" | diff -u "$work/sent.sorted" - ||
    fail "group consumer (run 1) did not receive the 10 messages"
printf 'lead-11:value-11\nlead-12:value-12\n' >"$work/sent2"
timeout 20 kcat -P -b "$BS" -t "$TOPIC" -K: <"$work/sent2" ||
    fail "kcat could not produce the second batch"
# Without commits, auto.offset.reset=earliest would replay all 12.
timeout 30 kcat -b "$BS" -G tg "${GROUP_OPTS[@]}" -e -q -f '%k:%s\n' "$TOPIC" \
    >"$work/g2" 2>"$work/g2.err" ||
    { cat "$work/g2.err" >&2; fail "group consumer (run 2) failed"; }
sort "$work/g2" | diff -u "$work/sent2" - ||
    fail "group consumer (run 2) should get only the 2 new messages: the" \
        "group's offsets were not committed"

step "fault commands"
expect_ok "down 1"
expect_ok "up 1"
expect_ok "down all"
if timeout 20 kcat -L -b "$BS" -m 2 >/dev/null 2>&1; then
    fail "metadata request succeeded with every broker down"
fi
expect_ok "up all"
timeout 20 kcat -L -b "$BS" -m 5 >/dev/null 2>&1 ||
    fail "metadata request failed after 'up all'"

# A retriable error: the producer retries and the message gets through.
expect_ok "error Produce 1 REQUEST_TIMED_OUT"
echo "lead-13:value-13" | timeout 20 kcat -P -b "$BS" -t "$TOPIC" -K: ||
    fail "produce failed after one injected REQUEST_TIMED_OUT (retriable)"
# A fatal error: the produce fails, which proves the injection is real.
expect_ok "error Produce 1 TOPIC_AUTHORIZATION_FAILED"
if echo "lead-14:value-14" | timeout 20 kcat -P -b "$BS" -t "$TOPIC" -K: \
    2>"$work/p14.err"; then
    fail "produce succeeded despite an injected TOPIC_AUTHORIZATION_FAILED"
fi
grep -q "authorization" "$work/p14.err" ||
    fail "kcat did not report the injected error: $(cat "$work/p14.err")"
timeout 20 kcat -C -b "$BS" -t "$TOPIC" -e -q -f '%k\n' >"$work/keys"
grep -qx lead-13 "$work/keys" || fail "lead-13 is missing from $TOPIC"
if grep -qx lead-14 "$work/keys"; then
    fail "lead-14 was stored although its produce request was failed"
fi

cmd "bogus 1"
[[ $ANS == 'error: unknown command "bogus" (try help)' ]] ||
    fail "unknown command answered '$ANS'"
cmd "error Produce 1 NO_SUCH_ERROR"
[[ $ANS == error:* ]] || fail "bad error name answered '$ANS'"
cmd "down 4"
[[ $ANS == error:* ]] || fail "'down 4' on a 3-broker cluster answered '$ANS'"
cmd "help"
[[ $ANS == ok* && $ANS == *down* ]] || fail "help answered '$ANS'"

step "end of stdin stops the broker cleanly"
exec {BR_IN}>&-
rc=0
for _ in $(seq 1 50); do
    kill -0 "$broker_pid" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$broker_pid" 2>/dev/null && fail "broker still running 5 s after EOF"
wait "$broker_pid" || rc=$?
[ "$rc" = 0 ] || fail "broker exited with status $rc after EOF"
broker_pid=

echo "PASS: test_devbroker"
