"""test_comments.py: every object of schema funnel says what it holds.

After the migrations, every table, view and function of schema funnel and
every column of its tables and views has a non-empty COMMENT (what psql's
\\d+ shows an analyst). Checked three ways:

  fresh     a new database migrated by leadflow-project --migrate-only
  upgrade   a database built by the earlier migrations only (as a release
            before the newest migration left it), holding the 13-lead
            fixture, then migrated in place: only the missing migrations
            run, each recorded once, the rows are untouched, and the
            comments equal the fresh database's
  rebuild   leadflow-replay rebuild --from-db into a twin schema and
            promote: the twin and the promoted funnel keep the column
            comments and the table comments

Usage: test_comments.py BIN_DIR   (CTest passes it; needs PostgreSQL 15)
"""

import glob
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lf_funnel_fixture import (BIN, SRC, Postgres, fail, fixture_sql,  # noqa
                               migrate, psql)


checks = 0


def expect(what, got, want):
    global checks
    checks += 1
    if got != want:
        fail("%s:\n  got  %r\n  want %r" % (what, got, want))


def rows(sql, db):
    return [tuple(r) for r in psql(sql, db=db)]


def undocumented(db, schema="funnel", tables_too=True):
    """Objects of @schema without a comment: (kind, name, column); with
    tables_too=False, tables lacking only their own comment pass."""
    kinds = "'r', 'p', 'v', 'm', 'f'" if tables_too else "'v', 'm'"
    return rows("""
        SELECT 'relation', c.relname, NULL FROM pg_class c
        WHERE c.relnamespace = '%(s)s'::regnamespace
          AND c.relkind IN (%(k)s)
          AND coalesce(obj_description(c.oid, 'pg_class'), '') = ''
        UNION ALL
        SELECT 'column', c.relname, a.attname FROM pg_class c
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
                           AND NOT a.attisdropped
        WHERE c.relnamespace = '%(s)s'::regnamespace
          AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
          AND coalesce(col_description(c.oid, a.attnum), '') = ''
        UNION ALL
        SELECT 'function', p.proname, NULL FROM pg_proc p
        WHERE p.pronamespace = '%(s)s'::regnamespace
          AND coalesce(obj_description(p.oid, 'pg_proc'), '') = ''
        ORDER BY 1, 2, 3""" % {"s": schema, "k": kinds}, db)


def table_comments_missing(db, schema):
    return rows("""
        SELECT c.relname FROM pg_class c
        WHERE c.relnamespace = '%s'::regnamespace AND c.relkind IN ('r', 'p')
          AND coalesce(obj_description(c.oid, 'pg_class'), '') = ''
        ORDER BY 1""" % schema, db)


def comments(db, schema="funnel"):
    """Every comment in @schema, by object and column."""
    return rows("""
        SELECT c.relname, coalesce(a.attname, ''), d.description
        FROM pg_description d
        JOIN pg_class c ON d.classoid = 'pg_class'::regclass
                       AND d.objoid = c.oid
        LEFT JOIN pg_attribute a ON a.attrelid = c.oid
                                AND a.attnum = d.objsubid
        WHERE c.relnamespace = '%s'::regnamespace
        ORDER BY 1, 2""" % schema, db)


def table_columns(db):
    """The columns of every funnel table but schema_migrations."""
    return {t: cols.split(",") for t, cols in rows("""
            SELECT c.relname, string_agg(quote_ident(a.attname), ','
                                         ORDER BY a.attnum)
            FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
                AND a.attnum > 0 AND NOT a.attisdropped
            WHERE c.relnamespace = 'funnel'::regnamespace
              AND c.relkind = 'r' AND c.relname <> 'schema_migrations'
            GROUP BY 1 ORDER BY 1""", db)}


def table_digest(db, columns):
    """One md5 per funnel table over its rows' values in @columns (the
    tables' columns before a migration: the columns a migration adds may
    be filled in, the rows already there must keep their values)."""
    out = []
    for t, cols in sorted(columns.items()):
        out += rows("SELECT '%s', count(*), md5(coalesce(string_agg("
                    "t::text, '|' ORDER BY t::text), '')) FROM (SELECT %s "
                    "FROM funnel.%s) t" % (t, ", ".join(cols), t), db)
    return out


def replay(*args):
    cmd = [os.path.join(BIN, "leadflow-replay")] + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        fail("%s exited %d: %s" % (" ".join(cmd), p.returncode,
                                   p.stderr.strip()))


pg = Postgres()
migrations = sorted(glob.glob(os.path.join(SRC, "schemas", "sql", "*.sql")))
names = [os.path.basename(m) for m in migrations]
if len(names) < 2:
    fail("expected several migrations in schemas/sql, found %r" % names)

# ---- fresh -----------------------------------------------------------------
psql("CREATE DATABASE fresh")
migrate("fresh")
expect("fresh: objects without a comment", undocumented("fresh"), [])
expect("fresh: migrations recorded",
       [r[0] for r in rows("SELECT name FROM funnel.schema_migrations "
                           "ORDER BY name", "fresh")], names)

# ---- upgrade in place ------------------------------------------------------
# What leadflow-project made before the newest migration existed: the
# bookkeeping table exactly as lf_pg_migrate creates it, then every earlier
# migration, each recorded, all in one transaction.
psql("CREATE DATABASE upgrade")
earlier = "".join(
    "%s\nINSERT INTO funnel.schema_migrations (name) VALUES ('%s');\n" % (
        open(m).read(), os.path.basename(m)) for m in migrations[:-1])
psql("BEGIN;\nCREATE SCHEMA IF NOT EXISTS funnel;\n"
     "CREATE TABLE funnel.schema_migrations (name text PRIMARY KEY, "
     "applied_at timestamptz NOT NULL DEFAULT now());\n" + earlier +
     "COMMIT;\n", db="upgrade")
psql(fixture_sql(), db="upgrade")
psql("INSERT INTO funnel.dead_letters (topic, partition, \"offset\", key, "
     "value, error) VALUES ('lead-events', 0, 99, 'L01', '\\x00', 'short');"
     "INSERT INTO funnel.offsets (group_id, topic, partition, next_offset) "
     "VALUES ('leadflow-projector', 'lead-events', 0, 100);", db="upgrade")
old_columns = table_columns("upgrade")
before = table_digest("upgrade", old_columns)
migrate("upgrade")
expect("upgrade: migrations recorded, the newest once",
       rows("SELECT name, count(*) FROM funnel.schema_migrations "
            "GROUP BY name ORDER BY name", "upgrade"),
       [(n, "1") for n in names])
expect("upgrade: objects without a comment", undocumented("upgrade"), [])
expect("upgrade: the same comments as a fresh database",
       comments("upgrade"), comments("fresh"))
# A migration may add columns (and fill them in) and tables (empty); the
# values of the columns that were there stay as they were.
expect("upgrade: rows unchanged", table_digest("upgrade", old_columns),
       before)
added = sorted(set(table_columns("upgrade")) - set(old_columns))
for t in added:
    expect("upgrade: table %s, added by the migration, is empty" % t,
           rows("SELECT count(*) FROM funnel.%s" % t, "upgrade"), [("0",)])

# ---- rebuild into a twin, promote ------------------------------------------
replay("rebuild", "--into", "twin", "--from-db", "-q", "-d", "dbname=upgrade")


def check_rebuilt(schema, what):
    expect("%s: columns, views and functions without a comment" % what,
           undocumented("upgrade", schema, tables_too=False), [])
    # CREATE TABLE ... (LIKE ... INCLUDING ALL) copies the comments of
    # columns, constraints and indexes, not the table's own: the rebuild
    # copies those itself.
    expect("%s: tables without a comment" % what,
           table_comments_missing("upgrade", schema), [])


check_rebuilt("twin", "rebuild twin")
replay("promote", "twin", "--no-group-check", "-q", "-d", "dbname=upgrade")
check_rebuilt("funnel", "promoted funnel")

print("ok: %d checks (%d migrations)" % (checks, len(names)))
