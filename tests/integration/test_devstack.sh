#!/usr/bin/env bash
# test_devstack.sh: the throwaway PostgreSQL and the whole dev stack start,
# answer, and leave nothing behind when stopped.
#
#   tests/integration/test_devstack.sh BIN_DIR      (e.g. build/bin)
#
# 1. tools/pg-throwaway.sh start/stop: psql connects with the exported
#    variables, fsync is on, and stop removes the directory and the server.
# 2. tools/devstack.sh start/env/cmd/stop: both components answer with the
#    exported variables, fault commands go through the FIFO, and stop leaves
#    no process and no directory.
# Takes a few seconds.
set -euo pipefail

BIN=${1:?usage: $0 BIN_DIR}
BIN=$(cd "$BIN" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
PGT=$SRC/tools/pg-throwaway.sh
DEVSTACK=$SRC/tools/devstack.sh

pgdir=
state=
scratch=$(mktemp -d /tmp/test_devstack.XXXXXX)
cleanup() {
    # Best effort, after a failure: the scripts under test do the real work.
    if [ -n "$state" ]; then
        "$DEVSTACK" stop "$state" >/dev/null 2>&1 || true
    fi
    if [ -n "$pgdir" ]; then
        "$PGT" stop "$pgdir" >/dev/null 2>&1 || true
    fi
    rm -rf -- "$scratch"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
step() { echo "--- $*"; }

# Runs "$@" in a subshell that first evals the export lines in file $1.
with_env() {
    local envfile=$1
    shift
    (
        # shellcheck disable=SC1090
        . "$envfile"
        "$@"
    )
}

step "pg-throwaway.sh start"
"$PGT" start >"$scratch/pg.env" || fail "pg-throwaway.sh start failed"
pgdir=$(sed -n 's/^export LEADFLOW_PGDATA=//p' "$scratch/pg.env")
[ -d "$pgdir" ] || fail "LEADFLOW_PGDATA=$pgdir is not a directory"
for v in PGHOST PGPORT PGUSER PGDATABASE LEADFLOW_PGDATA; do
    grep -q "^export $v=." "$scratch/pg.env" || fail "no export of $v"
done
got=$(with_env "$scratch/pg.env" psql -X -A -t -c 'select 1') ||
    fail "psql -c 'select 1' failed"
[ "$got" = 1 ] || fail "select 1 returned '$got'"
got=$(with_env "$scratch/pg.env" psql -X -A -t -c 'show fsync')
[ "$got" = on ] || fail "fsync is '$got', the crash tests need it on"
port=$(sed -n 's/^export PGPORT=//p' "$scratch/pg.env")
"$PGT" env "$pgdir" | cmp -s - "$scratch/pg.env" ||
    fail "pg-throwaway.sh env does not reprint the start exports"

step "pg-throwaway.sh stop"
"$PGT" stop "$pgdir" || fail "pg-throwaway.sh stop failed"
[ ! -e "$pgdir" ] || fail "$pgdir still exists after stop"
if pg_isready -q -h 127.0.0.1 -p "$port" -t 2; then
    fail "PostgreSQL still answers on port $port after stop"
fi
pgdir=

step "devstack.sh start"
state=$scratch/stack
LEADFLOW_BIN=$BIN "$DEVSTACK" start "$state" >"$scratch/stack.env" ||
    fail "devstack.sh start failed"
for v in LEADFLOW_BROKERS LEADFLOW_DEVSTACK PGHOST PGPORT LEADFLOW_PGDATA; do
    grep -q "^export $v=." "$scratch/stack.env" || fail "no export of $v"
done
"$DEVSTACK" env "$state" | cmp -s - "$scratch/stack.env" ||
    fail "devstack.sh env does not reprint the start exports"
got=$(with_env "$scratch/stack.env" psql -X -A -t -c 'select 1') ||
    fail "psql against the dev stack failed"
[ "$got" = 1 ] || fail "select 1 returned '$got'"
if command -v kcat >/dev/null; then
    # shellcheck disable=SC2016 # expanded by the inner shell
    with_env "$scratch/stack.env" sh -c \
        'timeout 20 kcat -L -b "$LEADFLOW_BROKERS" -t lead-events -m 5' \
        >"$scratch/meta" 2>&1 || fail "kcat -L against the dev stack failed"
    grep -q 'topic "lead-events" with 4 partitions' "$scratch/meta" ||
        fail "lead-events with 4 partitions not in the metadata"
fi

step "devstack.sh cmd and the FIFO"
got=$("$DEVSTACK" cmd "$state" "down 1") || fail "'down 1' answered '$got'"
got=$("$DEVSTACK" cmd "$state" "up 1") || fail "'up 1' answered '$got'"
if got=$("$DEVSTACK" cmd "$state" "nonsense"); then
    fail "'nonsense' was accepted: '$got'"
fi
[[ $got == error:* ]] || fail "'nonsense' answered '$got'"
lines=$(wc -l <"$state/broker.out")
echo "ping" >"$state/broker.in"
for _ in $(seq 1 50); do
    [ "$(wc -l <"$state/broker.out")" -gt "$lines" ] && break
    sleep 0.1
done
[ "$(tail -n 1 "$state/broker.out")" = ok ] ||
    fail "a command written straight into broker.in got no 'ok'"

step "devstack.sh stop"
bpid=$(cat "$state/broker.pid")
spid=$(cat "$state/sleeper.pid")
"$DEVSTACK" stop "$state" || fail "devstack.sh stop failed"
[ ! -e "$state" ] || fail "$state still exists after stop"
for pid in "$bpid" "$spid"; do
    # A zombie waiting for its (re)parent to reap it has stopped running.
    st=$(ps -o stat= -p "$pid" || true)
    if [ -n "$st" ] && [[ $st != Z* ]]; then
        fail "process $pid still runs after stop ($st)"
    fi
done
state=

echo "PASS: test_devstack"
