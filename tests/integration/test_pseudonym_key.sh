#!/usr/bin/env bash
# test_pseudonym_key.sh BIN_DIR: the erasure key as an operator meets it, on
# the real dev stack (devbroker + throwaway PostgreSQL):
#   nokey      an erased event reaching a projector without a key: exit 78
#              naming pseudonym.key.file, nothing of the batch written
#   key        the same topic with the key: the person is erased, the
#              erasure recorded under the pseudonym
#   restart    once people are erased, a projector without the key refuses
#              to start (exit 78)
#   argv       -X pseudonym.key=HEX is refused (exit 64); a key file others
#              can read is refused (exit 78); -X dump masks the key settings
set -euo pipefail
BIN=$(cd "${1:?usage: test_pseudonym_key.sh BIN_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

lf_stack_up
KEY=$LEADFLOW_PSEUDONYM_KEY_FILE
unset LEADFLOW_PSEUDONYM_KEY_FILE
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

cat >"$LF_TMP/ev.jsonl" <<'EOF'
{"event_id":"00000000-0000-4000-8000-000000000001","lead_id":"L-ann","type":"captured","occurred_at":"2026-01-01T10:00:00Z","source":"web","channel":"web","attributes":{"email":"ann@example.org"}}
{"event_id":"00000000-0000-4000-8000-000000000002","lead_id":"L-ann","type":"erased","occurred_at":"2026-01-02T10:00:00Z","source":"privacy-portal","request_id":"DSR-77"}
EOF
lf_broker "topic t 1" >/dev/null
"$BIN/leadflow-emit" -t t -q "$LF_TMP/ev.jsonl" || fail "emit exited $?"

# ---- nokey ----------------------------------------------------------------
rc=0
lf_project -t t -g g --idle-exit 30 -q 2>"$LF_TMP/err" || rc=$?
[ "$rc" = 78 ] || fail "nokey: exit $rc, want 78: $(cat "$LF_TMP/err")"
grep -q "pseudonym.key.file" "$LF_TMP/err" ||
    fail "nokey: the message does not name pseudonym.key.file: $(cat "$LF_TMP/err")"
[ "$(q "SELECT count(*) FROM funnel.events")" = 0 ] ||
    fail "nokey: events were written"
echo "ok   nokey: exit 78, $(head -c 120 "$LF_TMP/err")"

# ---- key ------------------------------------------------------------------
lf_project -t t -g g --idle-exit 2 -q -X pseudonym.key.file="$KEY" ||
    fail "key: leadflow-project exited $?"
ps=$(q "SELECT pseudonym FROM funnel.erasures WHERE request_id = 'DSR-77'")
want=erased:$(printf '%s' L-ann | openssl dgst -sha256 -mac HMAC \
    -macopt "hexkey:$(head -n 1 "$KEY")" | awk '{print substr($NF, 1, 32)}')
[ "$ps" = "$want" ] || fail "key: pseudonym $ps, want $want (HMAC by openssl)"
[ "$(q "SELECT lead_id || '|' || stage FROM funnel.leads")" = "$ps|captured" ] ||
    fail "key: the lead is not under its pseudonym"
if q "SELECT * FROM funnel.events" | grep -q -e L-ann -e ann@example.org; then
    fail "key: funnel.events still holds the person"
fi
echo "ok   key: erased as $ps (= openssl's HMAC-SHA-256)"

# ---- restart without the key ------------------------------------------------
rc=0
lf_project -t t -g g --idle-exit 2 -q 2>"$LF_TMP/err" || rc=$?
[ "$rc" = 78 ] && grep -q "pseudonym.key.file" "$LF_TMP/err" ||
    fail "restart: exit $rc, want 78 naming the key: $(cat "$LF_TMP/err")"
echo "ok   restart: refused without the key"

# ---- argv, file mode, dump --------------------------------------------------
rc=0
"$BIN/leadflow-project" -X "pseudonym.key=$(head -n 1 "$KEY")" --version \
    >/dev/null 2>"$LF_TMP/err" || rc=$?
[ "$rc" = 64 ] && grep -q "never given on the command line" "$LF_TMP/err" ||
    fail "argv: exit $rc, want 64: $(cat "$LF_TMP/err")"
if grep -q "$(head -n 1 "$KEY")" "$LF_TMP/err"; then
    fail "argv: the message repeats the key"
fi
cp "$KEY" "$LF_TMP/open.key"
chmod 644 "$LF_TMP/open.key"
rc=0
lf_project -t t -g g --idle-exit 2 -q -X pseudonym.key.file="$LF_TMP/open.key" \
    2>"$LF_TMP/err" || rc=$?
[ "$rc" = 78 ] && grep -q "can be read by others" "$LF_TMP/err" ||
    fail "mode: exit $rc, want 78: $(cat "$LF_TMP/err")"
out=$("$BIN/leadflow-project" -X pseudonym.key.file="$KEY" -X dump)
echo "$out" | grep -qx 'pseudonym.key.file=\*\*\*' ||
    fail "dump: pseudonym.key.file not masked: $out"
echo "ok   argv: -X pseudonym.key refused (64), open key file refused (78), dump masks"
