"""test_roles.py: the least-privilege roles of schemas/sql/003_roles.sql.

A LOGIN role granted leadflow_analyst reads every table and view of schema
funnel (and the views' *_filtered functions) and can change nothing: no
INSERT, UPDATE, DELETE or TRUNCATE on any table, no CREATE (in funnel, in
public, or a schema), no DDL on our objects, no sequence use; the data is
unchanged afterwards, and leadflow-report runs as it. A LOGIN role granted leadflow_projector writes the
funnel tables and creates TEMP tables, but creates nothing and reads nothing
outside funnel. The roles survive a second database in the same cluster
(created only if missing; grants per database), and the grants cover a
table a later migration adds.

Usage: test_roles.py BIN_DIR
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lf_funnel_fixture import BIN, fail, migrate, psql, setup  # noqa: E402

checks = 0


def ok(what, sql, user, db=None):
    global checks
    checks += 1
    rc, rows, err = psql(sql, user=user, db=db, check=False)
    if rc:
        fail("%s: as %s, expected success, got: %s" % (what, user,
                                                        err.strip()))
    return rows


def refused(what, sql, user, sqlstates=("42501",), db=None):
    """sql must fail for user with one of sqlstates (42501 = insufficient
    privilege, which also covers "must be owner")."""
    global checks
    checks += 1
    rc, _, err = psql(sql, user=user, db=db, check=False)
    if rc == 0:
        fail("%s: as %s, expected refusal, but it worked: %s" % (what, user,
                                                                  sql))
    if not any("ERROR:  %s:" % s in err for s in sqlstates):
        fail("%s: as %s, expected SQLSTATE %s, got: %s" % (
            what, user, "/".join(sqlstates), err.strip()))


pg = setup()
psql("""
    CREATE ROLE alice LOGIN;
    GRANT leadflow_analyst TO alice;
    CREATE ROLE bob LOGIN;
    GRANT leadflow_projector TO bob;
    -- Something outside funnel that neither may touch.
    CREATE SCHEMA other;
    CREATE TABLE other.secret (x int);
    INSERT INTO other.secret VALUES (42);
""")

# ---- the roles themselves -------------------------------------------------
roles = psql("""
    SELECT rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole,
           rolinherit
    FROM pg_roles WHERE rolname LIKE 'leadflow\\_%' ORDER BY 1""")
if roles != [["leadflow_analyst", "f", "f", "f", "f", "t"],
             ["leadflow_marketing_ops", "f", "f", "f", "f", "t"],
             ["leadflow_projector", "f", "f", "f", "f", "t"]]:
    fail("roles: %r" % roles)

relations = psql("""
    SELECT c.relname, c.relkind FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'funnel' AND c.relkind IN ('r', 'p', 'v', 'm')
    ORDER BY 1""")
tables = [r for r, k in relations if k in ("r", "p")]
views = [r for r, k in relations if k in ("v", "m")]
for t in ("events", "leads", "stage_history", "anomalies", "dead_letters",
          "offsets", "schema_migrations"):
    if t not in tables:
        fail("funnel.%s missing from %r" % (t, tables))
if len(views) < 9:
    fail("expected the 9 views, found %r" % views)


def checksum():
    return psql("\n".join(
        "SELECT '%s', count(*), md5(coalesce(string_agg(t::text, '|' "
        "ORDER BY t::text), '')) FROM funnel.%s t;" % (r, r)
        for r in tables))


before = checksum()

# ---- analyst: reads everything --------------------------------------------
for r in tables + views:
    ok("analyst SELECT funnel.%s" % r, "SELECT count(*) FROM funnel.%s" % r,
       "alice")
# The numbers an analyst sees are the fixture's.
if ok("analyst reads a view",
      "SELECT leads FROM funnel.source_performance WHERE channel IS NULL",
      "alice") != [["13"]]:
    fail("analyst: source_performance total is not 13 leads")
for f in ("stage_counts", "conversion", "time_in_stage", "handoff_sla",
          "handoff_sla_by_owner", "recycle_reasons", "cohorts",
          "source_performance"):
    ok("analyst calls funnel.%s_filtered" % f,
       "SELECT count(*) FROM funnel.%s_filtered('2024-01-01', '2024-12-31',"
       " 'web')" % f, "alice")

# ---- analyst: writes nothing ----------------------------------------------
for t in tables:
    col = psql("SELECT attname FROM pg_attribute WHERE attrelid = "
               "'funnel.%s'::regclass AND attnum = 1" % t)[0][0]
    refused("analyst INSERT funnel.%s" % t,
            "INSERT INTO funnel.%s DEFAULT VALUES" % t, "alice")
    refused("analyst UPDATE funnel.%s" % t,
            'UPDATE funnel.%s SET "%s" = "%s"' % (t, col, col), "alice")
    refused("analyst DELETE funnel.%s" % t, "DELETE FROM funnel.%s" % t,
            "alice")
    refused("analyst TRUNCATE funnel.%s" % t, "TRUNCATE funnel.%s" % t,
            "alice")
# Views: not updatable, and not the analyst's to change anyway (42501 or
# 55000 "cannot insert into view", whichever PostgreSQL checks first;
# TRUNCATE on a view is 42809 "not a table").
for v in views:
    refused("analyst INSERT funnel.%s" % v,
            "INSERT INTO funnel.%s DEFAULT VALUES" % v, "alice",
            ("42501", "55000"))
    refused("analyst DELETE funnel.%s" % v, "DELETE FROM funnel.%s" % v,
            "alice", ("42501", "55000"))
    refused("analyst TRUNCATE funnel.%s" % v, "TRUNCATE funnel.%s" % v,
            "alice", ("42501", "42809"))
for what, sql in [
        ("CREATE TABLE in funnel", "CREATE TABLE funnel.x (a int)"),
        ("CREATE VIEW in funnel", "CREATE VIEW funnel.x AS SELECT 1"),
        ("CREATE FUNCTION in funnel",
         "CREATE FUNCTION funnel.x() RETURNS int LANGUAGE sql "
         "AS 'SELECT 1'"),
        ("CREATE TYPE in funnel", "CREATE TYPE funnel.x AS (a int)"),
        ("CREATE TABLE in public", "CREATE TABLE public.x (a int)"),
        ("CREATE VIEW in public", "CREATE VIEW public.x AS SELECT 1"),
        ("CREATE TABLE (default search_path)", "CREATE TABLE x (a int)"),
        ("CREATE SCHEMA", "CREATE SCHEMA mine"),
        ("CREATE INDEX on funnel.leads",
         "CREATE INDEX ON funnel.leads (score)"),
        ("ALTER TABLE funnel.leads",
         "ALTER TABLE funnel.leads ADD COLUMN x int"),
        ("DROP VIEW funnel.conversion", "DROP VIEW funnel.conversion"),
        ("CREATE OR REPLACE VIEW funnel.stage_counts",
         "CREATE OR REPLACE VIEW funnel.stage_counts AS "
         "SELECT * FROM funnel.stage_counts_filtered(NULL, NULL, NULL)"),
        ("COMMENT ON VIEW funnel.conversion",
         "COMMENT ON VIEW funnel.conversion IS 'x'"),
        ("nextval on funnel's sequence",
         "SELECT nextval('funnel.dead_letters_id_seq')"),
        ("read outside funnel", "SELECT * FROM other.secret")]:
    refused("analyst " + what, sql, "alice")
if checksum() != before:
    fail("the funnel tables changed while the analyst tried to write")

# leadflow-report needs nothing more than leadflow_analyst.
checks += 1
p = subprocess.run([os.path.join(BIN, "leadflow-report"), "-d",
                    "user=alice", "--format", "csv"], capture_output=True,
                   text=True)
if p.returncode or "source_total,,,leads,13" not in p.stdout.splitlines():
    fail("leadflow-report as the analyst: exit %d, %s" % (
        p.returncode, p.stderr.strip()))

# ---- projector: writes funnel, nothing else -------------------------------
ok("projector writes the funnel tables", """
    BEGIN;
    CREATE TEMP TABLE lf_stg (lead_id text) ON COMMIT DROP;
    INSERT INTO funnel.offsets (group_id, topic, partition, next_offset)
        VALUES ('g', 't', 0, 1);
    UPDATE funnel.leads SET updated_at = now() WHERE lead_id = 'L01';
    DELETE FROM funnel.anomalies;
    INSERT INTO funnel.dead_letters (topic, partition, "offset", error)
        VALUES ('t', 0, 1, 'x');
    TRUNCATE funnel.anomalies;
    ROLLBACK;""", "bob")
for what, sql in [
        ("CREATE TABLE in funnel", "CREATE TABLE funnel.x (a int)"),
        ("CREATE TABLE in public", "CREATE TABLE public.x (a int)"),
        ("CREATE SCHEMA", "CREATE SCHEMA mine"),
        ("DROP TABLE funnel.events", "DROP TABLE funnel.events"),
        ("ALTER TABLE funnel.leads",
         "ALTER TABLE funnel.leads ADD COLUMN x int"),
        ("read outside funnel", "SELECT * FROM other.secret"),
        ("write outside funnel", "INSERT INTO other.secret VALUES (1)")]:
    refused("projector " + what, sql, "bob")
if checksum() != before:
    fail("the funnel tables changed (the projector's writes were rolled "
         "back)")

# ---- a second database in the same cluster --------------------------------
# The roles exist already (cluster-wide): the migration must not fail on
# them, and must make this database's grants.
psql("CREATE DATABASE second")
migrate("second")
ok("analyst reads the second database",
   "SELECT count(*) FROM funnel.conversion", "alice", db="second")
refused("analyst writes the second database",
        "DELETE FROM funnel.events", "alice", db="second")

# ---- default privileges: a table a later migration adds -------------------
psql("CREATE TABLE funnel.later (a int); INSERT INTO funnel.later VALUES (1)")
if ok("analyst reads a table created later",
      "SELECT a FROM funnel.later", "alice") != [["1"]]:
    fail("analyst cannot read funnel.later")
refused("analyst writes a table created later",
        "INSERT INTO funnel.later VALUES (2)", "alice")
ok("projector writes a table created later",
   "INSERT INTO funnel.later VALUES (2)", "bob")

print("test_roles: %d checks passed" % checks)
