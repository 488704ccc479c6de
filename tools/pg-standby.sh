#!/usr/bin/env bash
# pg-standby.sh: an asynchronous streaming standby of a throwaway PostgreSQL
# (tools/pg-throwaway.sh), for the failover tests.
#
#   tools/pg-standby.sh start PRIMARY_DIR DIR [PORT]
#                        copy the cluster of PRIMARY_DIR (a throwaway or a
#                        standby made here, possibly promoted since) with
#                        `pg_basebackup -R` into DIR/data, start it as a hot
#                        standby on PORT (default: a free one) with its socket
#                        in DIR, and print the same export lines as
#                        pg-throwaway.sh (PGPORT is the standby's)
#   tools/pg-standby.sh cut DIR
#                        stop the standby's WAL receiver (primary_conninfo
#                        emptied, reloaded) and wait until it has replayed all
#                        it received (its replay position still for 1 s): from
#                        here on it falls behind its primary
#   tools/pg-standby.sh promote DIR
#                        promote the standby (pg_ctl promote -w)
#   tools/pg-standby.sh inspect DIR DBNAME QUERY
#                        start the stopped cluster of DIR alone (crash recovery
#                        if it was stopped hard) on a free port, without TCP,
#                        print QUERY's result (psql -At), stop it again: what
#                        an old primary had committed, out of anyone's reach
#   tools/pg-standby.sh stop DIR
#                        the same as `pg-throwaway.sh stop DIR`
#
# DIR carries the marker and the env file of pg-throwaway.sh, so either
# script stops it. Replication is asynchronous (no synchronous_standby_names):
# the primary never waits for the standby, which may lose the last commits of
# a primary stopped hard; that is what the failover tests want.
#
# Why it looks like this:
# - initdb's pg_hba.conf already lets local and 127.0.0.1 connections
#   replicate (trust), and PostgreSQL 15 defaults to wal_level=replica and 10
#   WAL senders: a throwaway cluster is a usable primary as it is.
# - pg_basebackup copies postgresql.auto.conf, which names the primary's port
#   and socket directory: the standby's own lines are appended after it (the
#   last setting wins).
# - As root everything runs as the `postgres` user, like pg-throwaway.sh.
#
# Exit status: 0 ok, 64 usage error, 69 PostgreSQL failed.
set -euo pipefail

PROG=pg-standby.sh
MARKER=.leadflow-pg-throwaway
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() { # die CODE MESSAGE...
    local code=$1
    shift
    echo "$PROG: $*" >&2
    exit "$code"
}

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}

pgbin=${PGBIN:-/usr/lib/postgresql/15/bin}
[ -x "$pgbin/pg_basebackup" ] || die 69 "no pg_basebackup in $pgbin (set PGBIN)"

as_owner() { # from DIR: postgres may not enter the caller's directory
    if [ "$(id -u)" = 0 ]; then
        (cd "$dir" && runuser -u postgres -- "$@")
    else
        (cd "$dir" && "$@")
    fi
}

absdir() { # absdir PATH: without a trailing slash, absolute
    local d=${1%/}
    case $d in /*) echo "$d" ;; *) echo "$PWD/$d" ;; esac
}

free_port() {
    /usr/bin/python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# sql DIR PORT QUERY: one value from the cluster of DIR, over its socket.
sql() {
    "$pgbin/psql" -X -At -h "$1" -p "$2" -U postgres -d postgres -c "$3"
}

port_of() { # port_of DIR: from its env file
    sed -n 's/^export PGPORT=//p' "$1/env"
}

# As root, lets postgres traverse the parents of $dir below /tmp (search
# only, o+x), as pg-throwaway.sh does.
open_parents() {
    local p=$dir
    while p=$(dirname "$p") && [ "$p" != / ] && [ "$p" != /tmp ]; do
        case $p in /tmp/*) ;; *) return 0 ;; esac
        runuser -u postgres -- test -x "$p" || chmod o+x "$p"
    done
}

cmd_start() {
    local primary port pport try
    primary=$(absdir "$1")
    dir=$(absdir "$2")
    port=${3:-}
    [ -f "$primary/env" ] || die 64 "$primary: no throwaway PostgreSQL here"
    pport=$(port_of "$primary")
    case $dir in *[!A-Za-z0-9/._-]*) die 64 "$dir: use only A-Za-z0-9/._-" ;; esac
    [ ${#dir} -le 80 ] || die 64 "$dir: too long for a socket directory"
    if [ -e "$dir/data" ]; then die 64 "$dir/data exists"; fi
    mkdir -p "$dir"
    touch "$dir/$MARKER"
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$dir"
        chmod 755 "$dir"
        open_parents
    fi
    as_owner "$pgbin/pg_basebackup" -h "$primary" -p "$pport" -U postgres \
        -D "$dir/data" -R -X stream -c fast --no-sync \
        >"$dir/basebackup.log" 2>&1 || {
        cat "$dir/basebackup.log" >&2
        die 69 "pg_basebackup from $primary failed"
    }
    for try in 1 2 3 4 5; do
        [ -n "$port" ] && [ "$try" -gt 1 ] && die 69 "port $port is taken"
        [ -n "$port" ] || port=$(free_port)
        # appended: the copied lines name the primary's port and socket
        cat <<EOF | as_owner tee -a "$dir/data/postgresql.auto.conf" >/dev/null
# Written by $PROG: the standby's own settings.
port = $port
unix_socket_directories = '$dir'
hot_standby = on
EOF
        if as_owner "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" \
            -w -t 60 -s start >/dev/null 2>&1; then
            break
        fi
        grep -q "could not bind\|already in use" "$dir/postgres.log" ||
            { tail -n 15 "$dir/postgres.log" >&2; die 69 "standby failed"; }
        port=${3:-}
    done
    cat >"$dir/env" <<EOF
export PGHOST=127.0.0.1
export PGPORT=$port
export PGUSER=postgres
export PGDATABASE=postgres
export LEADFLOW_PGDATA=$dir
EOF
    # streaming before we return: the tests rely on it
    for try in $(seq 1 300); do
        [ "$(sql "$dir" "$port" "SELECT count(*) FROM pg_stat_wal_receiver
             WHERE status = 'streaming'" 2>/dev/null)" = 1 ] && break
        sleep 0.1
    done
    [ "$try" -lt 300 ] || die 69 "the standby in $dir does not stream"
    echo "$PROG: standby of $primary up on port $port (socket in $dir)" >&2
    cat "$dir/env"
}

cmd_cut() {
    local port try lsn last= same=0
    dir=$(absdir "$1")
    port=$(port_of "$dir")
    sql "$dir" "$port" "ALTER SYSTEM SET primary_conninfo = ''" >/dev/null
    sql "$dir" "$port" "SELECT pg_reload_conf()" >/dev/null
    for try in $(seq 1 300); do
        [ "$(sql "$dir" "$port" "SELECT count(*) FROM pg_stat_wal_receiver")" = 0 ] &&
            break
        sleep 0.1
    done
    [ "$try" -lt 300 ] || die 69 "the WAL receiver of $dir does not stop"
    # Replay has ended once its position stays put for a second. (It may
    # stop short of the last byte received: a record cut in two by the
    # receiver's end is never replayed.)
    for try in $(seq 1 600); do
        lsn=$(sql "$dir" "$port" "SELECT pg_last_wal_replay_lsn()")
        if [ "$lsn" = "$last" ]; then
            same=$((same + 1))
            [ "$same" -ge 10 ] && return 0
        else
            same=0
            last=$lsn
        fi
        sleep 0.1
    done
    die 69 "the standby in $dir still replays WAL after 60 s"
}

cmd_promote() {
    dir=$(absdir "$1")
    as_owner "$pgbin/pg_ctl" -D "$dir/data" -w -t 60 promote >/dev/null ||
        die 69 "promoting $dir failed"
}

cmd_inspect() {
    local port rc=0
    dir=$(absdir "$1")
    port=$(free_port)
    as_owner "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/inspect.log" -w -t 120 \
        -s -o "-p $port -c listen_addresses=''" start >/dev/null ||
        { tail -n 15 "$dir/inspect.log" >&2; die 69 "$dir does not start"; }
    "$pgbin/psql" -X -At -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres \
        -d "$2" -c "$3" || rc=$?
    as_owner "$pgbin/pg_ctl" -D "$dir/data" -m fast -w -t 60 -s stop \
        >/dev/null || die 69 "$dir does not stop"
    return "$rc"
}

case ${1:-} in
inspect) [ $# = 4 ] || die 64 "inspect DIR DBNAME QUERY"
    cmd_inspect "$2" "$3" "$4" ;;
start) { [ $# -ge 3 ] && [ $# -le 4 ]; } || die 64 "start PRIMARY_DIR DIR [PORT]"
    cmd_start "$2" "$3" "${4:-}" ;;
cut) [ $# = 2 ] || die 64 "cut DIR"; cmd_cut "$2" ;;
promote) [ $# = 2 ] || die 64 "promote DIR"; cmd_promote "$2" ;;
stop) [ $# = 2 ] || die 64 "stop DIR"; exec "$HERE/pg-throwaway.sh" stop "$2" ;;
-h | --help | help) usage ;;
*) usage >&2; exit 64 ;;
esac
