#!/usr/bin/env bash
# test_valgrind.sh BIN_DIR: valgrind memcheck on leadflow-emit and
# leadflow-project over a small stream: no invalid read or write, no use
# of uninitialised memory, no definite or indirect leak, and the projection
# still equals a run without valgrind. "Possibly
# lost" blocks are reported, not failed: librdkafka's and libpq's threads
# hold pointers into the middle of their own blocks. About a minute.
# Skipped (exit 0) in the sanitizer build, where valgrind cannot run.
set -euo pipefail
BIN=$(cd "${1:?usage: test_valgrind.sh BIN_DIR}" && pwd)
. "$(dirname "$0")/lib.sh"

command -v valgrind >/dev/null || fail "valgrind is not installed" \
    "(apt-get install valgrind; it is in the Makefile's DEB_PACKAGES)"
if ldd "$BIN/leadflow-project" | grep libasan >/dev/null; then
    echo "SKIP test_valgrind: $BIN is a sanitizer build"
    exit 0
fi

lf_stack_up
LEADS=${LF_TEST_VALGRIND_LEADS:-40}
"$BIN/leadflow-gen" --leads "$LEADS" --seed 7 --anomalies 0.2 \
    --duplicates 0.1 -q -o "$LF_TMP/work.jsonl"
# a line emit must reject, so its error path runs under valgrind too
echo '{"lead_id":"V-1","type":"teleported"}' >>"$LF_TMP/work.jsonl"

# --errors-for-leak-kinds: only definite and indirect leaks are errors.
VG=(valgrind --tool=memcheck --error-exitcode=99 --leak-check=full
    --show-leak-kinds=definite,indirect,possible
    --errors-for-leak-kinds=definite,indirect --track-origins=yes
    --num-callers=30)

check_vg() { # NAME RC LOG
    local name=$1 rc=$2 logf=$3
    grep -E "ERROR SUMMARY|definitely lost|indirectly lost|possibly lost" \
        "$logf" | sed "s/^==[0-9]*==/     $name:/"
    if [ "$rc" = 99 ] || ! grep -q "ERROR SUMMARY: 0 errors" "$logf"; then
        sed -n '1,200p' "$logf" >&2
        fail "valgrind found errors in $name"
    fi
}

lf_broker "topic vg 2" >/dev/null
lf_broker "topic plain 2" >/dev/null
rc=0
"${VG[@]}" --log-file="$LF_TMP/emit.vg" "$BIN/leadflow-emit" \
    -b "$LEADFLOW_BROKERS" -t vg -q --rejects "$LF_TMP/rejects" \
    "$LF_TMP/work.jsonl" 2>"$LF_TMP/emit.err" || rc=$?
[ "$rc" = 65 ] || {
    cat "$LF_TMP/emit.err" >&2
    fail "leadflow-emit under valgrind exited $rc, expected 65 (one reject)"
}
check_vg leadflow-emit "$rc" "$LF_TMP/emit.vg"

# The reference: the same file, no valgrind.
"$BIN/leadflow-emit" -b "$LEADFLOW_BROKERS" -t plain -q \
    --rejects "$LF_TMP/rejects2" "$LF_TMP/work.jsonl" 2>/dev/null || true
lf_newdb plain
PGDATABASE=plain lf_project -t plain -g g-plain --idle-exit 2 -q

lf_newdb vg
rc=0
PGDATABASE=vg "${VG[@]}" --log-file="$LF_TMP/project.vg" \
    "${LF_PROJECT[@]}" -t vg -g g-vg --batch 17 --idle-exit 5 -q \
    2>"$LF_TMP/project.err" || rc=$?
[ "$rc" = 0 ] || {
    cat "$LF_TMP/project.err" >&2
    fail "leadflow-project under valgrind exited $rc"
}
check_vg leadflow-project "$rc" "$LF_TMP/project.vg"

a=$(PGDATABASE=plain lf_checksums)
b=$(PGDATABASE=vg lf_checksums)
[ "$a" = "$b" ] || {
    diff <(echo "$a") <(echo "$b") >&2 || true
    fail "the projection under valgrind differs"
}
echo "ok   valgrind memcheck: emit and project clean over" \
    "$(PGDATABASE=vg psql -X -At -c 'SELECT count(*) FROM funnel.events')" \
    "events"
echo "PASS test_valgrind"
