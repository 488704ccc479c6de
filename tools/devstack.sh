#!/usr/bin/env bash
# devstack.sh: the whole dev stack on one machine: leadflow-devbroker (Kafka
# protocol, librdkafka's mock cluster) plus a throwaway PostgreSQL.
#
#   tools/devstack.sh start [STATE_DIR]  start both, wait until both answer,
#                                        print export lines on stdout:
#                                        eval "$(tools/devstack.sh start)"
#   tools/devstack.sh env [STATE_DIR]    print the export lines again
#   tools/devstack.sh cmd STATE_DIR LINE send one fault command to the broker
#                                        (e.g. "down 1") and print its answer;
#                                        exit 0 on "ok...", 1 on "error: ..."
#   tools/devstack.sh stop [STATE_DIR]   stop both and remove STATE_DIR
#
# STATE_DIR defaults to a new /tmp/leadflow-dev.XXXXXX for start and to
# $LEADFLOW_DEVSTACK for the other commands. Exports: LEADFLOW_BROKERS (the
# bootstrap.servers list), LEADFLOW_DEVSTACK=STATE_DIR, and PGHOST, PGPORT,
# PGUSER, PGDATABASE, LEADFLOW_PGDATA from tools/pg-throwaway.sh, and
# LEADFLOW_PSEUDONYM_KEY_FILE, a random erasure key made for this stack.
#
# Environment: LEADFLOW_BIN, the directory holding leadflow-devbroker (default
# build/bin in the source tree); LEADFLOW_BROKER_ARGS, extra arguments for it
# (e.g. "--brokers 3 --topic lead-events:8"; not --no-stdin, the commands need
# stdin).
#
# How the broker is run, and why:
# - Its stdin is the FIFO STATE_DIR/broker.in. A `sleep` process holds the FIFO
#   open for writing for as long as the stack runs, so the broker never sees end
#   of file when a writer goes away; anyone may then write commands into it:
#     echo "down 1" > "$LEADFLOW_DEVSTACK/broker.in"
# - Its stdout is the file STATE_DIR/broker.out: the bootstrap list on line 1,
#   then one answer line per command, in order. `devstack.sh cmd` writes a
#   command and waits for the next answer line, under a lock
#   (STATE_DIR/broker.lock) so that two callers cannot take each other's answer.
#   Writers that bypass `cmd` must not race each other.
# - Its stderr is STATE_DIR/broker.log.
# - Both run in their own session (setsid), away from the caller's terminal: a
#   Ctrl-C in the shell that ran `eval "$(devstack.sh start)"` must not stop the
#   stack, and their output never reaches the $(...) that captures ours.
# - stop closes the FIFO (kills the sleeper), which makes the broker exit
#   cleanly on end of stdin; SIGTERM, then SIGKILL, follow only if it lingers.
#   Only the process ids recorded in STATE_DIR are signalled.
# - A failed start undoes everything it had started and removes STATE_DIR if
#   it created it.
#
# Exit status: 0 ok, 1 a `cmd` answered "error: ...", 64 usage error, 69 a
# component is missing or failed to start.
set -euo pipefail

PROG=devstack.sh
MARKER=.leadflow-devstack
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
PG_THROWAWAY=$HERE/pg-throwaway.sh
START_TIMEOUT=15 # seconds for each component to come up
CMD_TIMEOUT=10   # seconds to wait for the answer to a command

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}

short_usage() {
    echo "usage: $PROG start [STATE_DIR] | env [STATE_DIR] |" \
        "cmd STATE_DIR LINE | stop [STATE_DIR]   (see --help)"
}

die() { # die CODE MESSAGE...
    local code=$1
    shift
    echo "$PROG: $*" >&2
    exit "$code"
}

log() { echo "$PROG: $*" >&2; }

# Resolves $1 (or $LEADFLOW_DEVSTACK) into the global $state, absolute.
resolve_state() {
    state=${1:-${LEADFLOW_DEVSTACK:-}}
    if [ -z "$state" ]; then
        echo "$PROG: no STATE_DIR given and LEADFLOW_DEVSTACK is not set" >&2
        short_usage >&2
        exit 64
    fi
    case $state in /*) ;; *) state=$PWD/$state ;; esac
    state=${state%/}
}

# True if pid $1 is alive and its command line contains $2: a recorded pid
# may have been reused by an unrelated process since.
pid_is() {
    [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] &&
        tr '\0' ' ' <"/proc/$1/cmdline" | grep -- "$2" >/dev/null
}

# Stops the recorded broker and sleeper, gently first. Safe to call twice.
stop_broker() {
    local bpid spid i
    bpid=$(cat "$state/broker.pid" 2>/dev/null || true)
    spid=$(cat "$state/sleeper.pid" 2>/dev/null || true)
    # End of file on the FIFO is the broker's normal way out.
    if pid_is "$spid" sleep; then
        kill -TERM "$spid" 2>/dev/null || true
    fi
    for i in $(seq 1 50); do
        pid_is "$bpid" leadflow-devbroker || break
        if [ "$i" = 20 ]; then
            kill -TERM "$bpid" 2>/dev/null || true
        fi
        sleep 0.1
    done
    if pid_is "$bpid" leadflow-devbroker; then
        log "broker $bpid ignored SIGTERM, killing it"
        kill -KILL "$bpid" 2>/dev/null || true
    fi
    rm -f "$state/broker.pid" "$state/sleeper.pid"
}

created_state=0

cleanup_failed_start() {
    local rc=$?
    [ "$rc" = 0 ] && return 0
    log "start failed, cleaning up"
    if [ -f "$state/broker.log" ]; then
        log "first lines of $state/broker.log:"
        head -n 5 "$state/broker.log" >&2 || true
    fi
    stop_broker
    if [ -f "$state/pg/.leadflow-pg-throwaway" ]; then
        "$PG_THROWAWAY" stop "$state/pg" >/dev/null 2>&1 || true
    fi
    if [ "$created_state" = 1 ]; then
        rm -rf -- "${state:?}"
    else
        rm -rf -- "${state:?}/pg" "$state/broker.in" "$state/broker.out" \
            "$state/broker.log" "$state/broker.lock" "$state/env" \
            "${state:?}/$MARKER"
    fi
    return "$rc"
}

cmd_start() {
    local bindir broker bs i bpid spid hostport
    bindir=${LEADFLOW_BIN:-$SRC/build/bin}
    broker=$bindir/leadflow-devbroker
    [ -x "$broker" ] ||
        die 69 "$broker not found: build it (cmake --build build) or set" \
            "LEADFLOW_BIN to the directory that holds it"

    if [ -n "${1:-}" ]; then
        resolve_state "$1"
        case $state in *[!A-Za-z0-9/._-]*)
            die 64 "$state: use only letters, digits and / . _ - in" \
                "STATE_DIR" ;;
        esac
        if [ -e "$state" ]; then
            [ -d "$state" ] || die 64 "$state exists and is not a directory"
            [ -z "$(ls -A "$state")" ] ||
                die 64 "$state is not empty (stop the old stack first:" \
                    "$0 stop $state)"
        else
            mkdir -p -- "$state"
            created_state=1
        fi
    else
        state=$(mktemp -d /tmp/leadflow-dev.XXXXXX)
        created_state=1
    fi
    trap cleanup_failed_start EXIT
    touch "$state/$MARKER"

    # The broker. Its open() of the FIFO blocks until the sleeper opens the
    # other end, so both go to the background before either can block us.
    mkfifo "$state/broker.in"
    : >"$state/broker.out"
    # shellcheck disable=SC2086 # LEADFLOW_BROKER_ARGS is a list of words
    setsid "$broker" ${LEADFLOW_BROKER_ARGS:-} <"$state/broker.in" \
        >"$state/broker.out" 2>"$state/broker.log" &
    bpid=$!
    echo "$bpid" >"$state/broker.pid"
    setsid sleep infinity >"$state/broker.in" 2>/dev/null </dev/null &
    spid=$!
    echo "$spid" >"$state/sleeper.pid"

    bs=
    for i in $(seq 1 $((START_TIMEOUT * 10))); do
        bs=$(head -n 1 "$state/broker.out")
        # A complete first line ends with a newline; wait for it.
        [ -n "$bs" ] && [ "$(wc -l <"$state/broker.out")" -ge 1 ] && break
        kill -0 "$bpid" 2>/dev/null ||
            die 69 "leadflow-devbroker exited during start"
        bs=
        sleep 0.1
    done
    [ -n "$bs" ] || die 69 "leadflow-devbroker printed no bootstrap list" \
        "within ${START_TIMEOUT}s"
    # The command channel works end to end, and the Kafka port accepts.
    broker_cmd "ping" >/dev/null ||
        die 69 "leadflow-devbroker does not answer on $state/broker.in"
    hostport=${bs%%,*}
    if ! (exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}") 2>/dev/null; then
        die 69 "leadflow-devbroker does not accept connections on $hostport"
    fi
    log "leadflow-devbroker up: $bs (pid $bpid, log $state/broker.log)"

    "$PG_THROWAWAY" start "$state/pg" >"$state/pg.env" ||
        die 69 "the throwaway PostgreSQL failed to start"

    # A pseudonym key for erasures (docs/security.md): a dev stack's own,
    # random, readable by its owner only.
    (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' \
        >"$state/pseudonym.key" && echo >>"$state/pseudonym.key") ||
        die 69 "cannot write $state/pseudonym.key"
    {
        echo "export LEADFLOW_BROKERS=$bs"
        echo "export LEADFLOW_DEVSTACK=$state"
        echo "export LEADFLOW_PSEUDONYM_KEY_FILE=$state/pseudonym.key"
        cat "$state/pg.env"
    } >"$state/env"
    rm -f "$state/pg.env"
    trap - EXIT
    cat "$state/env"
}

# Writes one command line to the broker and prints the answer line.
# Returns 0 for "ok...", 1 for "error: ...", 69 if no answer came.
broker_cmd() {
    local line=$1 before after ans i trimmed
    case $line in *$'\n'*) die 64 "one command line at a time" ;; esac
    # Blank and comment lines get no answer: do not wait for one.
    trimmed=${line#"${line%%[![:space:]]*}"}
    case $trimmed in '' | '#'*) return 0 ;; esac
    exec 9>>"$state/broker.lock"
    flock -w "$CMD_TIMEOUT" 9 || die 69 "$state/broker.lock is held by" \
        "another command for over ${CMD_TIMEOUT}s"
    before=$(wc -l <"$state/broker.out")
    printf '%s\n' "$line" >"$state/broker.in"
    for i in $(seq 1 $((CMD_TIMEOUT * 20))); do
        after=$(wc -l <"$state/broker.out")
        [ "$after" -gt "$before" ] && break
        sleep 0.05
    done
    exec 9>&-
    [ "$after" -gt "$before" ] ||
        die 69 "no answer from leadflow-devbroker within ${CMD_TIMEOUT}s"
    ans=$(sed -n "$((before + 1))p" "$state/broker.out")
    echo "$ans"
    case $ans in ok*) return 0 ;; *) return 1 ;; esac
}

cmd_cmd() {
    resolve_state "$1"
    if [ ! -f "$state/$MARKER" ] || [ ! -p "$state/broker.in" ]; then
        die 69 "$state: no dev stack here"
    fi
    pid_is "$(cat "$state/broker.pid" 2>/dev/null || true)" \
        leadflow-devbroker || die 69 "$state: leadflow-devbroker is not running"
    broker_cmd "$2"
}

cmd_env() {
    resolve_state "${1:-}"
    if [ ! -f "$state/$MARKER" ] || [ ! -f "$state/env" ]; then
        die 69 "$state: no dev stack here"
    fi
    cat "$state/env"
}

cmd_stop() {
    resolve_state "${1:-}"
    if [ ! -e "$state" ]; then
        log "$state does not exist: nothing to stop"
        return 0
    fi
    [ -f "$state/$MARKER" ] ||
        die 64 "$state was not made by $PROG (no $MARKER): not touching it"
    stop_broker
    if [ -e "$state/pg" ]; then
        "$PG_THROWAWAY" stop "$state/pg" || log "could not stop PostgreSQL" \
            "in $state/pg"
    fi
    rm -rf -- "${state:?}"
    log "stopped and removed $state"
}

case ${1:-} in
start) shift; [ $# -le 1 ] || die 64 "start takes one STATE_DIR"
    cmd_start "$@" ;;
env) shift; [ $# -le 1 ] || die 64 "env takes one STATE_DIR"; cmd_env "$@" ;;
stop) shift; [ $# -le 1 ] || die 64 "stop takes one STATE_DIR"
    cmd_stop "$@" ;;
cmd) shift; [ $# -eq 2 ] || die 64 "usage: $PROG cmd STATE_DIR LINE"
    cmd_cmd "$@" ;;
-h | --help | help) usage ;;
"") short_usage >&2; exit 64 ;;
*) echo "$PROG: unknown command '$1'" >&2; short_usage >&2; exit 64 ;;
esac
