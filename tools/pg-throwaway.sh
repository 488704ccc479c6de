#!/usr/bin/env bash
# pg-throwaway.sh: start and stop a throwaway PostgreSQL 15 for development and
# integration tests.
#
#   tools/pg-throwaway.sh start [DIR]   create a cluster in DIR (default: a new
#                                       /tmp/leadflow-pg.XXXXXX), start it and
#                                       print `export` lines on stdout:
#                                       eval "$(tools/pg-throwaway.sh start)"
#   tools/pg-throwaway.sh env [DIR]     print the same export lines again
#   tools/pg-throwaway.sh stop [DIR]    stop it (fast shutdown) and remove DIR
#
# DIR defaults to $LEADFLOW_PGDATA for env and stop. Exports: PGHOST=127.0.0.1,
# PGPORT, PGUSER=postgres, PGDATABASE=postgres, LEADFLOW_PGDATA=DIR. Everything
# else (progress, errors) goes to stderr.
#
# Layout: DIR/data is PGDATA, DIR itself holds the Unix socket, DIR/postgres.log
# the server log, DIR/env the export lines, DIR/.leadflow-pg-throwaway a marker
# without which `stop` refuses to delete anything.
#
# Why it looks like this:
# - initdb and postgres refuse to run as root. As root the cluster is owned by
#   the `postgres` user (runuser), so DIR must be reachable by that user:
#   parents of DIR below /tmp get o+x (search only) if they lack it, a DIR
#   under /root or another closed directory is refused. Run as any other user,
#   the cluster belongs to that user and no runuser is involved.
# - Authentication is `trust` for local and 127.0.0.1 connections only: the
#   server listens on 127.0.0.1 only, on a free port chosen at start.
# - fsync stays on: the crash tests kill the server and expect committed data
#   back. Only initdb runs with --no-sync, which can lose the new cluster to an
#   OS crash, never to a server crash: fine for a throwaway.
#
# Exit status: 0 ok, 64 usage error, 69 PostgreSQL unavailable or failed to
# start.
set -euo pipefail

PROG=pg-throwaway.sh
MARKER=.leadflow-pg-throwaway

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}

short_usage() {
    echo "usage: $PROG start [DIR] | env [DIR] | stop [DIR]   (see --help)"
}

die() { # die CODE MESSAGE...
    local code=$1
    shift
    echo "$PROG: $*" >&2
    exit "$code"
}

log() { echo "$PROG: $*" >&2; }

find_pgbin() {
    local d
    if [ -n "${PGBIN:-}" ]; then
        [ -x "$PGBIN/pg_ctl" ] || die 69 "PGBIN=$PGBIN has no pg_ctl"
        echo "$PGBIN"
        return
    fi
    for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return
        fi
    done
    die 69 "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin" \
        "(apt-get install postgresql, or set PGBIN)"
}

# Runs a command as the cluster's owner: `postgres` when we are root, else us.
# It runs from DIR because runuser keeps the caller's working directory, which
# postgres may not be allowed to enter (initdb then fails on getcwd).
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        (cd "$dir" && runuser -u postgres -- "$@")
    else
        (cd "$dir" && "$@")
    fi
}

# Prints a free TCP port on 127.0.0.1. The port is free when we look; start()
# retries with another if the server loses the race for it.
free_port() {
    local py
    for py in /usr/bin/python3 python3; do
        if command -v "$py" >/dev/null 2>&1; then
            "$py" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])' && return
        fi
    done
    echo $((20000 + RANDOM % 40000))
}

# Resolves $1 (or $LEADFLOW_PGDATA) into the global $dir, as an absolute path.
resolve_dir() {
    dir=${1:-${LEADFLOW_PGDATA:-}}
    [ -n "$dir" ] || {
        echo "$PROG: no DIR given and LEADFLOW_PGDATA is not set" >&2
        short_usage >&2
        exit 64
    }
    case $dir in /*) ;; *) dir=$PWD/$dir ;; esac
    dir=${dir%/}
}

cmd_env() {
    resolve_dir "${1:-}"
    if [ ! -f "$dir/$MARKER" ] || [ ! -f "$dir/env" ]; then
        die 69 "$dir: no throwaway PostgreSQL here"
    fi
    cat "$dir/env"
}

# As root, lets postgres traverse the parents of $dir that are below /tmp
# (typically a test's own mktemp directory, mode 700) by adding o+x: search
# only, no listing. Parents elsewhere are left alone; start then refuses.
open_parents() {
    local p=$dir
    while p=$(dirname "$p") && [ "$p" != / ] && [ "$p" != /tmp ]; do
        case $p in /tmp/*) ;; *) return 0 ;; esac
        if ! runuser -u postgres -- test -x "$p"; then
            log "letting user postgres traverse $p (chmod o+x)"
            chmod o+x "$p"
        fi
    done
}

# State for the failure trap of start.
created_dir=0
started=0

cleanup_failed_start() {
    local rc=$?
    [ "$rc" = 0 ] && return 0
    if [ "$started" = 1 ]; then
        as_owner "$pgbin/pg_ctl" -D "$dir/data" -m immediate -w -t 10 stop \
            >/dev/null 2>&1 || true
    fi
    if [ -f "$dir/postgres.log" ]; then
        log "last lines of $dir/postgres.log:"
        tail -n 15 "$dir/postgres.log" >&2 || true
    fi
    if [ "$created_dir" = 1 ]; then
        rm -rf -- "$dir"
    elif [ -f "$dir/$MARKER" ]; then
        rm -rf -- "${dir:?}/data" "$dir/postgres.log" "$dir/env" \
            "${dir:?}/$MARKER"
    fi
    return "$rc"
}

cmd_start() {
    local port try pgversion
    pgbin=$(find_pgbin)

    if [ -n "${1:-}" ]; then
        resolve_dir "$1"
    else
        dir=/tmp/leadflow-pg.XXXXXX # checked below, made by mktemp
    fi
    # The path is spliced into postgresql.conf and is a socket directory:
    # keep it to characters that need no quoting, and short enough for
    # sun_path (107 bytes including "/.s.PGSQL.NNNNN.lock").
    case $dir in *[!A-Za-z0-9/._-]*)
        die 64 "$dir: use only letters, digits and / . _ - in DIR" ;;
    esac
    [ ${#dir} -le 80 ] || die 64 "$dir: path too long for a Unix socket" \
        "directory (80 characters at most)"

    if [ -z "${1:-}" ]; then
        dir=$(mktemp -d "$dir")
        created_dir=1
    elif [ -e "$dir" ]; then
        [ -d "$dir" ] || die 64 "$dir exists and is not a directory"
        [ -z "$(ls -A "$dir")" ] ||
            die 64 "$dir is not empty (stop the old cluster first:" \
                "$0 stop $dir)"
    else
        mkdir -p -- "$dir"
        created_dir=1
    fi
    trap cleanup_failed_start EXIT

    touch "$dir/$MARKER"
    if [ "$(id -u)" = 0 ]; then
        getent passwd postgres >/dev/null ||
            die 69 "running as root needs a 'postgres' user to own the cluster"
        chown postgres: "$dir"
        chmod 755 "$dir"
        open_parents
        runuser -u postgres -- test -x "$dir" -a -w "$dir" ||
            die 64 "user postgres cannot enter $dir: a parent directory is" \
                "closed to it (use a directory under /tmp)"
    fi

    as_owner "$pgbin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 \
        --no-locale --no-sync >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        die 69 "initdb failed"
    }
    rm -f "$dir/initdb.log"

    pgversion=$("$pgbin/pg_ctl" --version | awk '{print $3}')
    for try in 1 2 3 4 5; do
        port=$(free_port)
        # postgresql.auto.conf overrides postgresql.conf and is rewritten
        # whole on each try.
        cat >"$dir/data/postgresql.auto.conf" <<EOF
# Written by $PROG: a throwaway cluster for development and tests.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 100
fsync = on
EOF
        [ "$(id -u)" = 0 ] && chown postgres: "$dir/data/postgresql.auto.conf"
        started=1
        if as_owner "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" \
            -w -t 30 -s start >/dev/null 2>&1; then
            break
        fi
        started=0
        if [ "$try" -lt 5 ] && grep -q "could not bind\|already in use" \
            "$dir/postgres.log" 2>/dev/null; then
            log "port $port was taken, trying another"
            : >"$dir/postgres.log"
            continue
        fi
        die 69 "PostgreSQL $pgversion failed to start in $dir"
    done

    "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$port" -t 10 ||
        die 69 "PostgreSQL started but does not accept connections on" \
            "127.0.0.1:$port"

    cat >"$dir/env" <<EOF
export PGHOST=127.0.0.1
export PGPORT=$port
export PGUSER=postgres
export PGDATABASE=postgres
export LEADFLOW_PGDATA=$dir
EOF
    log "PostgreSQL $pgversion up on 127.0.0.1:$port (socket in $dir," \
        "log $dir/postgres.log)"
    trap - EXIT
    cat "$dir/env"
}

cmd_stop() {
    local pid
    resolve_dir "${1:-}"
    if [ ! -e "$dir" ]; then
        log "$dir does not exist: nothing to stop"
        return 0
    fi
    [ -f "$dir/$MARKER" ] ||
        die 64 "$dir was not made by $PROG (no $MARKER): not touching it"
    pgbin=$(find_pgbin)
    if [ -f "$dir/data/postmaster.pid" ]; then
        pid=$(head -n 1 "$dir/data/postmaster.pid")
        if ! as_owner "$pgbin/pg_ctl" -D "$dir/data" -m fast -w -t 30 -s \
            stop >/dev/null 2>&1; then
            log "fast shutdown failed, killing postmaster $pid"
            # Only the pid the cluster itself recorded, and only if it is
            # still a postgres process.
            if [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] &&
                grep -q postgres "/proc/$pid/comm"; then
                kill -KILL "$pid" 2>/dev/null || true
                sleep 0.5
            fi
        fi
    fi
    rm -rf -- "${dir:?}"
    log "stopped and removed $dir"
}

case ${1:-} in
start) shift; [ $# -le 1 ] || die 64 "start takes one DIR"; cmd_start "$@" ;;
stop) shift; [ $# -le 1 ] || die 64 "stop takes one DIR"; cmd_stop "$@" ;;
env) shift; [ $# -le 1 ] || die 64 "env takes one DIR"; cmd_env "$@" ;;
-h | --help | help) usage ;;
"") short_usage >&2; exit 64 ;;
*) echo "$PROG: unknown command '$1'" >&2; short_usage >&2; exit 64 ;;
esac
