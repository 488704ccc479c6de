#!/usr/bin/env bash
# test_security.sh BIN_DIR: least privilege, secrets and TLS against the
# real dev stack.
#   privilege  an administrator applies the migrations (--migrate-only as the
#              owner); leadflow-project then runs as a LOGIN role granted
#              only leadflow_projector, authenticated by password (scram),
#              and projects a stream exactly as the administrator would; the
#              same role cannot read, write or create anything outside schema
#              funnel, nor change funnel's structure or its own privileges
#   secrets    the password comes from PGPASSFILE or from the -c file, never
#              the command line; -X dump masks secrets; a config file holding
#              a secret that others can read gets a warning, a chmod 600 one
#              does not; --help says where secrets go
#   tls        security.protocol=ssl / sasl_* pass through to librdkafka: a
#              plain listener, an unreachable TLS endpoint and an unreadable
#              CA file fail with a clear error in bounded time; the projector
#              logs the handshake failure and stops on SIGTERM; libpq
#              sslmode=verify-full against a server without SSL fails with
#              libpq's reason (docs/security.md has the examples)
set -euo pipefail
BIN=$(cd "${1:?usage: test_security.sh BIN_DIR}" && pwd)
. "$(dirname "$0")/lib.sh"

lf_stack_up
echo "stack: brokers=$LEADFLOW_BROKERS pg=$PGHOST:$PGPORT"
q() { psql -X -At -v ON_ERROR_STOP=1 -d "${DB:-sec}" -c "$1"; }

# ---- privilege ---------------------------------------------------------
lf_newdb sec
lf_newdb ref
PGDATABASE=sec lf_project --migrate-only -q || fail "admin --migrate-only"
PW="pw-$RANDOM-$RANDOM-'\"x"
# The password goes in through the environment, never on a command line.
LF_PW=$PW psql -X -q -v ON_ERROR_STOP=1 -d sec >/dev/null <<'SQL'
\getenv pw LF_PW
CREATE ROLE lf_proj LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE
    PASSWORD :'pw';
GRANT leadflow_projector TO lf_proj;
CREATE SCHEMA other;
CREATE TABLE other.secret (x int);
INSERT INTO other.secret VALUES (42);
SQL
[ "$(q "SELECT string_agg(g.rolname, ',') FROM pg_auth_members m
        JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
        WHERE u.rolname = 'lf_proj'")" = leadflow_projector ] ||
    fail "lf_proj should be a member of leadflow_projector only"
# Password authentication for lf_proj (the throwaway cluster trusts everyone
# else): the first matching pg_hba line wins.
hba=$LEADFLOW_PGDATA/data/pg_hba.conf
{
    echo "host all lf_proj 127.0.0.1/32 scram-sha-256"
    cat "$hba"
} >"$LF_TMP/hba" && cat "$LF_TMP/hba" >"$hba"
q "SELECT pg_reload_conf()" >/dev/null
sleep 0.5

lf_broker "topic sec 2" >/dev/null
"$BIN/leadflow-gen" --leads 60 --seed 4 --anomalies 0.2 --duplicates 0.1 \
    --produce -b "$LEADFLOW_BROKERS" -t sec -q || fail "leadflow-gen"
PGDATABASE=ref lf_project -t sec -g g-ref --idle-exit 2 -q

CONN="host=$PGHOST port=$PGPORT dbname=sec user=lf_proj"
# Without a password: refused, with libpq's reason, in bounded time.
rc=0
PGPASSWORD= PGPASSFILE=/nonexistent timeout 30 "$BIN/leadflow-project" \
    -d "$CONN" --migrate-only 2>"$LF_TMP/nopw.err" || rc=$?
[ "$rc" = 69 ] && grep -q "password" "$LF_TMP/nopw.err" ||
    fail "no password: exit $rc, $(cat "$LF_TMP/nopw.err")"
echo "ok   no password: exit 69, $(grep -o 'fe_sendauth[^"]*\|password authentication failed[^"]*' "$LF_TMP/nopw.err" | head -1)"

# PGPASSFILE: the password never appears in argv.
pgpw=${PW//\\/\\\\}
pgpw=${pgpw//:/\\:}
printf '%s:%s:sec:lf_proj:%s\n' "$PGHOST" "$PGPORT" "$pgpw" >"$LF_TMP/pgpass"
printf '%s:%s:unmig:lf_proj:%s\n' "$PGHOST" "$PGPORT" "$pgpw" >>"$LF_TMP/pgpass"
chmod 600 "$LF_TMP/pgpass"
PGPASSFILE=$LF_TMP/pgpass "$BIN/leadflow-project" -d "$CONN" --migrate-only \
    -q || fail "--migrate-only as lf_proj (nothing to apply) exited $?"
# A database the owner has not migrated yet: lf_proj may not, and says so
# (77) at once with --migrate-only, after 30 s of waiting for the owner
# without (started now, checked at the end).
lf_newdb unmig
DB=unmig q "REVOKE CREATE ON SCHEMA public FROM PUBLIC" >/dev/null
rc=0
PGPASSFILE=$LF_TMP/pgpass timeout 30 "$BIN/leadflow-project" \
    -d "${CONN/dbname=sec/dbname=unmig}" --migrate-only \
    2>"$LF_TMP/unmig.err" || rc=$?
[ "$rc" = 77 ] && grep -q 'refuses this role a privilege.*--migrate-only.*user="lf_proj"' \
    "$LF_TMP/unmig.err" ||
    fail "--migrate-only as lf_proj on an unmigrated database: exit $rc," \
        "$(tail -c 600 "$LF_TMP/unmig.err")"
echo "ok   --migrate-only as lf_proj on an unmigrated database: exit 77, said"
PGPASSFILE=$LF_TMP/pgpass timeout 90 "$BIN/leadflow-project" \
    -d "${CONN/dbname=sec/dbname=unmig}" -t sec -g g-unmig --idle-exit 2 \
    2>"$LF_TMP/unmig2.err" &
unmig_pid=$!
LF_PIDS+=("$unmig_pid")
unmig_t0=$(date +%s)
PGPASSFILE=$LF_TMP/pgpass "${LF_PROJECT[@]}" -d "$CONN" -t sec -g g-sec \
    --idle-exit 2 -q 2>"$LF_TMP/proj.err" &
pid=$!
LF_PIDS+=("$pid")
# It really is lf_proj that writes (and nothing else can read argv's secret).
seen=
for _ in $(seq 1 100); do
    seen=$(q "SELECT usename FROM pg_stat_activity
              WHERE datname = 'sec' AND usename = 'lf_proj' LIMIT 1")
    [ -n "$seen" ] && break
    sleep 0.1
done
[ "$seen" = lf_proj ] || fail "no connection of lf_proj seen"
if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -F -- "$PW" >/dev/null; then
    fail "the password is on the projector's command line"
fi
wait "$pid" || fail "the projector as lf_proj exited $?: $(tail -3 "$LF_TMP/proj.err")"
a=$(PGDATABASE=ref lf_checksums)
b=$(PGDATABASE=sec lf_checksums)
[ "$a" = "$b" ] || {
    diff <(echo "$a") <(echo "$b") >&2 || true
    fail "projection as lf_proj differs from the administrator's"
}
echo "ok   leadflow-project as a login role granted only leadflow_projector:" \
    "$(q "SELECT count(*) FROM funnel.events") events, tables equal"

# What lf_proj must not do: every statement refused with 42501 (insufficient
# privilege, also "must be owner") or, for the superuser-only ones, 42501 too.
refused() { # WHAT SQL
    local out rc=0
    out=$(PGPASSFILE=$LF_TMP/pgpass psql -X -At -v ON_ERROR_STOP=1 \
        -v VERBOSITY=verbose -d "$CONN" -c "$2" 2>&1) || rc=$?
    [ "$rc" != 0 ] || fail "lf_proj could $1: $2"
    case $out in *"ERROR:  42501:"*) ;;
    *) fail "lf_proj $1: expected 42501, got: $out" ;; esac
}
n=0
while IFS='|' read -r what sql; do
    [ -n "$what" ] || continue
    refused "$what" "$sql"
    n=$((n + 1))
done <<'EOF'
read outside funnel|SELECT * FROM other.secret
write outside funnel|INSERT INTO other.secret VALUES (1)
create in public|CREATE TABLE public.x (a int)
create a schema|CREATE SCHEMA mine
create in funnel|CREATE TABLE funnel.x (a int)
create a function in funnel|CREATE FUNCTION funnel.f() RETURNS int LANGUAGE sql AS 'SELECT 1'
drop a funnel table|DROP TABLE funnel.events
alter a funnel table|ALTER TABLE funnel.leads ADD COLUMN x int
add a trigger|CREATE TRIGGER t BEFORE INSERT ON funnel.leads FOR EACH ROW EXECUTE FUNCTION pg_catalog.suppress_redundant_updates_trigger()
replace a view|CREATE OR REPLACE VIEW funnel.stage_counts AS SELECT 1 AS x
change the migrations|ALTER TABLE funnel.schema_migrations OWNER TO lf_proj
grant itself more|GRANT leadflow_analyst TO lf_proj
become superuser|ALTER ROLE lf_proj SUPERUSER
become the admin|SET ROLE postgres
read server files|SELECT pg_read_file('/etc/passwd')
write server files|COPY funnel.events TO '/tmp/leadflow-stolen'
run programs|COPY funnel.events TO PROGRAM 'id'
read password hashes|SELECT * FROM pg_authid
create a database|CREATE DATABASE stolen
create an extension|CREATE EXTENSION dblink
EOF
[ "$(q "SELECT x FROM other.secret")" = 42 ] || fail "other.secret changed"
[ ! -e /tmp/leadflow-stolen ] || fail "lf_proj wrote a server file"
echo "ok   lf_proj refused $n things outside its grant (42501 each)"

# leadflow-replay as lf_proj: what needs the owner (a rebuild creates a
# schema) says so with 77, not 69 ("PostgreSQL unavailable").
rc=0
PGPASSFILE=$LF_TMP/pgpass "$BIN/leadflow-replay" rebuild --into funnel_mine \
    --from-db -d "$CONN" 2>"$LF_TMP/rebuild.err" || rc=$?
[ "$rc" = 77 ] && grep -q "lacks a privilege" "$LF_TMP/rebuild.err" ||
    fail "rebuild as lf_proj: exit $rc, $(cat "$LF_TMP/rebuild.err")"
[ "$(q "SELECT count(*) FROM pg_namespace WHERE nspname = 'funnel_mine'")" = 0 ] ||
    fail "rebuild as lf_proj left a schema"
echo "ok   replay rebuild as lf_proj: exit 77, names the owner role"
# promote too: its locks are refused (42501) before anything is renamed.
"$BIN/leadflow-replay" rebuild --into r_owner --from-db -d dbname=sec -q ||
    fail "rebuild r_owner as the owner exited $?"
rc=0
PGPASSFILE=$LF_TMP/pgpass "$BIN/leadflow-replay" promote r_owner \
    --no-group-check -d "$CONN" 2>"$LF_TMP/promote.err" || rc=$?
[ "$rc" = 77 ] && grep -q "lacks a privilege" "$LF_TMP/promote.err" ||
    fail "promote as lf_proj: exit $rc, $(cat "$LF_TMP/promote.err")"
[ "$(q "SELECT count(*) FROM pg_namespace WHERE nspname = 'r_owner'")" = 1 ] ||
    fail "promote as lf_proj renamed r_owner"
q "DROP SCHEMA r_owner CASCADE" >/dev/null
echo "ok   replay promote as lf_proj: exit 77, nothing renamed"

# ---- secrets -----------------------------------------------------------
# -c file with the password: works, no warning at 600; a warning at 644.
cipw=${PW//\\/\\\\}
cipw=${cipw//\'/\\\'}
printf "db=%s password='%s'\n" "$CONN" "$cipw" >"$LF_TMP/proj.conf"
chmod 600 "$LF_TMP/proj.conf"
PGPASSFILE=/nonexistent "$BIN/leadflow-project" -c "$LF_TMP/proj.conf" \
    --migrate-only 2>"$LF_TMP/c600.err" ||
    fail "password from the -c file: exit $?: $(cat "$LF_TMP/c600.err")"
! grep -q "others can read" "$LF_TMP/c600.err" ||
    fail "a chmod 600 config file got the warning"
chmod 644 "$LF_TMP/proj.conf"
PGPASSFILE=/nonexistent "$BIN/leadflow-project" -c "$LF_TMP/proj.conf" \
    --migrate-only 2>"$LF_TMP/c644.err" || fail "-c file at 644: exit $?"
grep -q "holds a secret and others can read it" "$LF_TMP/c644.err" ||
    fail "no warning for a world-readable config file with a password"
printf 'sasl.password=hunter2\nbootstrap.servers=x:1\n' >"$LF_TMP/k.conf"
chmod 640 "$LF_TMP/k.conf"
"$BIN/leadflow-emit" -c "$LF_TMP/k.conf" -X dump >"$LF_TMP/dump" \
    2>"$LF_TMP/k.err" || fail "emit -X dump exited $?"
grep -q "others can read" "$LF_TMP/k.err" ||
    fail "emit: no warning for a group-readable file with sasl.password"
grep -q '^sasl.password=\*\*\*$' "$LF_TMP/dump" &&
    ! grep -q hunter2 "$LF_TMP/dump" || fail "-X dump shows the secret"
printf 'bootstrap.servers=x:1\ntopic=t\n' >"$LF_TMP/plain.conf"
chmod 644 "$LF_TMP/plain.conf"
"$BIN/leadflow-emit" -c "$LF_TMP/plain.conf" -X dump >/dev/null \
    2>"$LF_TMP/plain.err"
! grep -q "others can read" "$LF_TMP/plain.err" ||
    fail "a config file without secrets got the warning"
"$BIN/leadflow-project" -d "$CONN password=hunter2" -X dump |
    grep -q '^db=\*\*\*$' || fail "project -X dump shows the db conninfo"
# Not set is worth seeing: an empty secret is shown empty.
env -i "$BIN/leadflow-project" -X dump | grep -qx 'db=' ||
    fail "project -X dump hides that no db is set"
# A password in a URL is a secret too: masked in the dump, warned of.
printf 'schema.registry.url=http://u:hunter4@reg:8081,http://r2\n' \
    >"$LF_TMP/url.conf"
chmod 644 "$LF_TMP/url.conf"
"$BIN/leadflow-emit" -c "$LF_TMP/url.conf" -X dump >"$LF_TMP/dump" \
    2>"$LF_TMP/url.err" || fail "emit -X dump exited $?"
grep -qx 'schema.registry.url=http://\*\*\*@reg:8081,http://r2' \
    "$LF_TMP/dump" && ! grep -q hunter4 "$LF_TMP/dump" ||
    fail "-X dump shows a URL's password: $(cat "$LF_TMP/dump")"
grep -q "others can read" "$LF_TMP/url.err" ||
    fail "no warning for a readable file with a password in a URL"
echo "ok   secrets: PGPASSFILE and -c file work; warning at 644/640, none" \
    "at 600 or without secrets; -X dump masks them"

# --help: where secrets go, in every program that takes one. (grep reads
# all of its input: a grep -q could end the pipe early and, under
# pipefail, fail it.)
for p in leadflow-project leadflow-emit leadflow-gen leadflow-replay \
    leadflow-report; do
    "$BIN/$p" --help | tr '\n' ' ' |
        grep -iE "secrets never go on the command line: put " >/dev/null ||
        fail "$p --help does not say where secrets go"
done
echo "ok   --help of every program says where secrets go"

# ---- TLS and SASL pass-through -----------------------------------------
LINE='{"lead_id":"T-1","type":"captured","occurred_at":"2026-01-01T00:00:00Z","source":"t","channel":"web"}'
CA=/etc/ssl/certs/ca-certificates.crt
[ -r "$CA" ] || CA=/dev/null
tls_emit() { # NAME EXPECT_RC GREP ARGS...
    local name=$1 want=$2 pat=$3 rc=0 t0
    shift 3
    t0=$(date +%s)
    echo "$LINE" | timeout 60 "$BIN/leadflow-emit" -t tls \
        -X message.timeout.ms=2000 "$@" >"$LF_TMP/tls.out" \
        2>"$LF_TMP/tls.err" || rc=$?
    [ "$rc" = "$want" ] || fail "$name: exit $rc, expected $want:" \
        "$(tail -c 600 "$LF_TMP/tls.err")"
    grep -q "$pat" "$LF_TMP/tls.err" ||
        fail "$name: no \"$pat\" in: $(tail -c 600 "$LF_TMP/tls.err")"
    echo "ok   $name: exit $rc in $(($(date +%s) - t0)) s, \"$pat\""
}
tls_emit "emit ssl -> plain listener" 75 "SSL handshake failed" \
    -b "$LEADFLOW_BROKERS" -X security.protocol=ssl -X ssl.ca.location="$CA"
tls_emit "emit ssl -> unreachable endpoint" 75 "Connection refused" \
    -b 127.0.0.1:1 -X security.protocol=ssl -X ssl.ca.location="$CA"
tls_emit "emit ssl, unreadable CA file" 78 "ssl.ca.location" \
    -b "$LEADFLOW_BROKERS" -X security.protocol=ssl \
    -X ssl.ca.location=/nonexistent/ca.pem
tls_emit "emit sasl_plaintext PLAIN -> broker without SASL" 75 "SASL" \
    -b "$LEADFLOW_BROKERS" -X security.protocol=sasl_plaintext \
    -X sasl.mechanism=PLAIN -X sasl.username=u -X sasl.password=p
tls_emit "emit sasl_ssl SCRAM -> plain listener" 75 "SSL handshake failed" \
    -b "$LEADFLOW_BROKERS" -X security.protocol=sasl_ssl \
    -X sasl.mechanism=SCRAM-SHA-256 -X sasl.username=u -X sasl.password=p
# It works (above), but a password on the command line is said to be one.
grep -q 'msg="a secret on the command line.*key=sasl.password' \
    "$LF_TMP/tls.err" || fail "-X sasl.password: no warning in:" \
    "$(tail -c 600 "$LF_TMP/tls.err")"
echo "ok   -X sasl.password warns that it is a secret on the command line"

# The projector keeps retrying (a consumer waits for its broker), but says
# why at once and stops promptly when told.
lf_newdb tlsdb
PGDATABASE=tlsdb "$BIN/leadflow-project" -t tls -q \
    -X security.protocol=ssl -X ssl.ca.location="$CA" 2>"$LF_TMP/ptls.err" &
pid=$!
LF_PIDS+=("$pid")
for _ in $(seq 1 150); do
    grep -q "SSL handshake failed" "$LF_TMP/ptls.err" && break
    sleep 0.1
done
grep -q "SSL handshake failed" "$LF_TMP/ptls.err" ||
    fail "project ssl -> plain: no handshake error logged in 15 s"
kill -TERM "$pid"
t0=$(date +%s)
rc=0
wait "$pid" || rc=$?
[ "$rc" = 0 ] && [ $(($(date +%s) - t0)) -le 10 ] ||
    fail "project did not stop cleanly on SIGTERM (exit $rc)"
echo "ok   project ssl -> plain listener: handshake error logged, SIGTERM" \
    "exits 0"

for p in leadflow-project leadflow-report; do
    args=(--migrate-only)
    [ "$p" = leadflow-report ] && args=(--format csv)
    rc=0
    timeout 30 "$BIN/$p" -d "host=$PGHOST port=$PGPORT dbname=sec
        sslmode=verify-full sslrootcert=$CA" "${args[@]}" \
        >/dev/null 2>"$LF_TMP/pgtls.err" || rc=$?
    [ "$rc" = 69 ] && grep -q "server does not support SSL" \
        "$LF_TMP/pgtls.err" || fail "$p sslmode=verify-full: exit $rc," \
        "$(cat "$LF_TMP/pgtls.err")"
    echo "ok   $p sslmode=verify-full -> server without SSL: exit 69," \
        "\"server does not support SSL, but SSL was required\""
done

# Settings judged before any wait for a server: a bad librdkafka key or
# a conninfo libpq cannot parse exits 78 at once, with the database away
# (it retried "cannot reach PostgreSQL" forever), and never quotes a URI
# that may hold a password.
for bad in "-X nosuch.key=1 -d host=/nonexistent" "-d bogus=1" \
    "-d postgresql://u:hunter5@[bad" \
    "-d postgresql://u:hunter5@127.0.0.1:1/db?sslmode=bogus" \
    "-X contract.version=3 -d host=/nonexistent"; do
    rc=0
    # shellcheck disable=SC2086
    timeout 20 "$BIN/leadflow-project" $bad >/dev/null 2>"$LF_TMP/early.err" ||
        rc=$?
    [ "$rc" = 78 ] && ! grep -q hunter5 "$LF_TMP/early.err" ||
        fail "project $bad: exit $rc: $(cat "$LF_TMP/early.err")"
done
# A bare name is a database name, as libpq, report and replay read -d.
"$BIN/leadflow-project" --migrate-only -q -d "$PGDATABASE" \
    2>"$LF_TMP/early.err" || fail "project -d $PGDATABASE (a database" \
    "name): exit $?: $(cat "$LF_TMP/early.err")"
echo "ok   project: bad Kafka setting or conninfo -> 78 before the database;" \
    "a bare -d is a database name"

rc=0
wait "$unmig_pid" || rc=$?
waited=$(($(date +%s) - unmig_t0))
[ "$rc" = 77 ] && [ "$waited" -ge 29 ] &&
    grep -q 'refuses this role a privilege' "$LF_TMP/unmig2.err" ||
    fail "project as lf_proj on an unmigrated database: exit $rc after" \
        "$waited s: $(tail -c 600 "$LF_TMP/unmig2.err")"
echo "ok   project as lf_proj on an unmigrated database: exit 77 after" \
    "$waited s of waiting for the owner"

echo "PASS test_security"
