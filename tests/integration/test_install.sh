#!/usr/bin/env bash
# test_install.sh BIN_DIR: `cmake --install` into a temporary prefix, as a
# user of the library and the programs would see it:
#   files      the programs, libleadflow.a, its headers (each compiles on
#              its own), leadflow.pc, a man page per program
#   man        every page renders without groff warnings and documents every
#              long option of its program's --help
#   adapter    examples/adapter.c, built from the installed copy with
#              `pkg-config --cflags --libs leadflow` only, publishes an event
#              to the installed leadflow-devbroker; kcat (an independent
#              client) consumes it back: key, CloudEvents headers and the
#              decoded value
set -euo pipefail
BIN=$(cd "${1:?usage: test_install.sh BIN_DIR}" && pwd)
. "$(dirname "$0")/lib.sh"
BUILD=$(cd "$BIN/.." && pwd)
TESTS=${LEADFLOW_TESTS:-$BUILD/tests}
T=$LF_TMP/prefix

cmake --install "$BUILD" --prefix "$T" >"$LF_TMP/install.log" ||
    fail "cmake --install: $(cat "$LF_TMP/install.log")"

# ---- files -------------------------------------------------------------
PROGS="leadflow-devbroker leadflow-emit leadflow-gen leadflow-project
    leadflow-replay leadflow-report"
for p in $PROGS; do
    [ -x "$T/bin/$p" ] || fail "$p not installed in $T/bin"
    [ -f "$T/share/man/man1/$p.1" ] || fail "no man page $p.1"
done
[ -f "$T/share/man/man7/leadflow.7" ] || fail "no man page leadflow.7"
[ -f "$T/lib/libleadflow.a" ] || fail "no lib/libleadflow.a"
[ -f "$T/lib/pkgconfig/leadflow.pc" ] || fail "no lib/pkgconfig/leadflow.pc"
for h in lf_producer.h lf_event.h lf_conf.h lf_common.h lf_json.h lf_codec.h; do
    [ -f "$T/include/leadflow/$h" ] || fail "header $h not installed"
done
[ ! -e "$T/include/leadflow/lf_metrics.h" ] ||
    fail "lf_metrics.h is the projector's, not libleadflow's"
"$T/bin/leadflow-emit" --version | grep '^leadflow-emit ' >/dev/null ||
    fail "installed leadflow-emit --version"
echo "ok   files: programs, library, headers, leadflow.pc, man pages"

# ---- man pages -----------------------------------------------------------
for page in "$T"/share/man/man1/*.1 "$T/share/man/man7/leadflow.7"; do
    warn=$(groff -man -Tutf8 -ww -z "$page" 2>&1) ||
        fail "groff failed on $page"
    [ -z "$warn" ] || fail "groff warnings on $(basename "$page"): $warn"
done
for p in $PROGS; do
    # troff writes a literal hyphen as \-: compare without the backslash
    src=$(sed 's/\\-/-/g' "$T/share/man/man1/$p.1")
    for opt in $("$T/bin/$p" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
        grep -qF -- "$opt" <<<"$src" ||
            fail "$p.1 does not document $opt (it is in $p --help)"
    done
done
echo "ok   man: pages render cleanly and document every long option"

# ---- the example adapter against the installed library -------------------
export PKG_CONFIG_PATH=$T/lib/pkgconfig
pkg-config --exists leadflow || fail "pkg-config does not find leadflow"
v=$(pkg-config --modversion leadflow)
"$T/bin/leadflow-emit" --version | grep -F "leadflow-emit $v" >/dev/null ||
    fail "leadflow.pc says version $v, leadflow-emit says otherwise"
CFLAGS_LF=$(pkg-config --cflags leadflow)
LIBS_LF=$(pkg-config --libs leadflow)
# Each installed header compiles on its own (includes what it uses).
for h in "$T"/include/leadflow/*.h; do
    echo "#include <$(basename "$h")>" |
        cc -std=c11 -Wall -Wextra -Werror -fsyntax-only -x c - $CFLAGS_LF ||
        fail "$(basename "$h") does not compile on its own"
done
ex=$T/share/doc/leadflow/examples/adapter.c
[ -f "$ex" ] || fail "the example is not installed"
# shellcheck disable=SC2086 # pkg-config output is a list of words
cc -std=c11 -Wall -Wextra -Wpedantic -Werror -o "$LF_TMP/adapter" "$ex" \
    $CFLAGS_LF $LIBS_LF 2>"$LF_TMP/cc.err" ||
    fail "the example does not build with pkg-config: $(cat "$LF_TMP/cc.err")"
echo "ok   adapter: builds with pkg-config --cflags --libs leadflow"

"$T/bin/leadflow-devbroker" --no-stdin --topic example:3 \
    >"$LF_TMP/broker.out" 2>"$LF_TMP/broker.err" &
broker=$!
LF_PIDS+=("$broker")
for _ in $(seq 1 50); do
    [ -s "$LF_TMP/broker.out" ] && break
    sleep 0.1
done
brokers=$(head -1 "$LF_TMP/broker.out")
[ -n "$brokers" ] || fail "the installed devbroker did not start"
out=$(env -u LEADFLOW_BROKERS "$LF_TMP/adapter" -b "$brokers" -t example \
    -X client.id=example-test 'L-ex 42' webinar) ||
    fail "the adapter exited $?"
grep -q '^delivered lead_id=L-ex 42 partition=[0-2] offset=0 event_id=' \
    <<<"$out" || fail "adapter said: $out"
event_id=$(sed 's/.*event_id=//' <<<"$out")

# Consume it back with kcat.
kc() { kcat -C -b "$brokers" -t example -e -q -o beginning "$@"; }
[ "$(kc -f '%k\n')" = "L-ex 42" ] || fail "key: $(kc -f '%k\n')"
hdrs=$(kc -f '%h\n')
for h in ce_specversion=1.0 ce_type=leadflow.lead.captured \
    "ce_subject=L-ex 42" ce_id="$event_id" content-type=application/avro; do
    grep -qF -- "$h" <<<"$hdrs" || fail "header $h missing in: $hdrs"
done
kc -f '%s' | xxd -p | tr -d '\n' >"$LF_TMP/value.hex"
echo >>"$LF_TMP/value.hex"
json=$("$TESTS/lf_codec_tool" decode <"$LF_TMP/value.hex") ||
    fail "the value does not decode: $json"
/usr/bin/python3 - "$json" "$event_id" <<'PY' || fail "decoded event: $json"
import json, sys
ev = json.loads(sys.argv[1])
assert ev["event_id"] == sys.argv[2], ev
assert ev["lead_id"] == "L-ex 42", ev
assert ev["type"] == "captured", ev
assert ev["source"] == "example-crm", ev
assert ev["channel"] == "webinar", ev
assert ev["campaign"] == "spring-webinar", ev
assert ev["attributes"] == {"company": "Acme SA", "country": "FR"}, ev
PY
echo "ok   adapter: event published and consumed back with kcat"

# Usage errors are 64, and a contract violation is 65 (lead_id > 128 bytes).
set +e
"$LF_TMP/adapter" >/dev/null 2>&1
rc=$?
"$LF_TMP/adapter" -b "$brokers" -t example "$(printf 'x%.0s' $(seq 1 200))" \
    >/dev/null 2>&1
rc2=$?
set -e
[ "$rc" = 64 ] || fail "adapter without a lead: exit $rc, want 64"
[ "$rc2" = 65 ] || fail "adapter with a 200-byte lead_id: exit $rc2, want 65"
echo "ok   adapter: exit 64 on usage, 65 on an invalid event"
kill -TERM "$broker"
wait "$broker" 2>/dev/null || true
