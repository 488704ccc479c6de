/* test_promote.c: swapping a rebuilt schema in as funnel (lf_promote),
 * against a throwaway PostgreSQL. */
#include "lf_promote.h"

#include "lf_diff.h"
#include "lf_rebuild.h"
#include "lf_test_pg.h"
#include "lf_time.h"

/* The fixture in funnel and, projected the same way, in the complete
 * rebuild rb. */
static PGconn *live_and_rebuilt(char *dir, size_t dir_size, bool complete)
{
    char errstr[512];
    PGconn *conn = pg_up_migrated(dir, dir_size);

    project_funnel(conn, "funnel");
    cr_assert_eq(lf_rebuild_create(conn, "rb", false, 30000, NULL, "from-db",
                                   errstr, sizeof(errstr)),
                 LF_OK, "%s", errstr);
    project_funnel(conn, "rb");
    if (complete)
        cr_assert_eq(lf_rebuild_complete(conn, "rb", "from-db", "events=13",
                                         errstr, sizeof(errstr)),
                     LF_OK, "%s", errstr);
    return conn;
}

static lf_err_t refuse(void *arg, char *errstr, size_t errstr_size)
{
    (*(int *)arg)++;
    return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                     "the projector group has 1 member");
}

static lf_err_t allow(void *arg, char *errstr, size_t errstr_size)
{
    (void)errstr;
    (void)errstr_size;
    (*(int *)arg)++;
    return LF_OK;
}

/* Every function of funnel with its owner and privileges (as sets: the
 * order of ACL entries means nothing), in one line. */
static const char *acl_sql =
    "SELECT string_agg(proname || ':' || pg_get_userbyid(proowner) || '=' || "
    "(SELECT string_agg(a.grantee || '/' || a.privilege_type, ',' ORDER BY "
    "a.grantee, a.privilege_type) FROM (SELECT CASE WHEN grantee = 0 "
    "THEN 'public' ELSE pg_get_userbyid(grantee) END AS grantee, "
    "privilege_type FROM aclexplode(coalesce(proacl, acldefault('f', "
    "proowner)))) AS a(grantee, privilege_type)), ' ' ORDER BY proname, "
    "oid) FROM pg_proc WHERE pronamespace = 'funnel'::regnamespace";

Test(promote, swaps_the_schemas_and_keeps_them_consistent, .timeout = 120)
{
    char dir[512], errstr[512], views[32], old[80], sql[256], acl[8192];
    PGconn *conn = live_and_rebuilt(dir, sizeof(dir), true);
    lf_promote_t out;
    lf_diff_t d;
    int calls = 0;

    snprintf(views, sizeof(views), "%.31s",
             sql_value(conn, "SELECT count(*) FROM pg_views WHERE "
                             "schemaname = 'funnel'"));
    sql_ok(conn, "UPDATE rb.offsets SET next_offset = 7");
    /* The same rules in both: the funnel's time of adoption stays (a
     * definition that differs is adopted at the promote: test_definition). */
    sql_ok(conn, "DELETE FROM funnel.definition; DELETE FROM rb.definition");
    sql_ok(conn,
           "INSERT INTO funnel.definition (name, version, sha256, json, "
           "adopted_at) VALUES ('d', 1, 'ab', '{}', '2020-01-02 03:04Z')");
    sql_ok(conn,
           "INSERT INTO rb.definition (name, version, sha256, json, "
           "adopted_at) VALUES ('d', 1, 'ab', '{}', '2021-01-02 03:04Z')");
    /* The privileges of every function come along, also of those the
     * rebuild has its own of (bodies that name no schema). */
    sql_ok(conn, "DO $$BEGIN CREATE ROLE bi_reader NOLOGIN; EXCEPTION WHEN "
                 "duplicate_object THEN NULL; END$$");
    sql_ok(conn, "REVOKE EXECUTE ON FUNCTION funnel.fx_rate(text, date) "
                 "FROM PUBLIC; GRANT EXECUTE ON FUNCTION "
                 "funnel.flows_grain(text) TO bi_reader");
    snprintf(acl, sizeof(acl), "%s", sql_value(conn, acl_sql));
    cr_assert_eq(lf_promote_swap(conn, "rb", 5000, allow, &calls, &out, errstr,
                                 sizeof(errstr)),
                 LF_OK, "%s", errstr);
    cr_expect_str_eq(sql_value(conn, acl_sql), acl);
    cr_expect_eq(calls, 2,
                 "the check runs under the locks, before the "
                 "swap and again before COMMIT");
    cr_expect(!strncmp(out.old_name, "funnel_old_", 11), "%s", out.old_name);
    snprintf(old, sizeof(old), "%s", out.old_name);
    cr_expect_eq(out.tables, 12); /* up to identity_pending (011) */
    cr_expect_eq(out.views, atoi(views));
    cr_expect(out.functions > 0);
    cr_expect(out.grants > 0, "the analysts' and projector's privileges");
    cr_expect_str_eq(out.offsets.data,
                     "group=leadflow-project topic=leads partition=0 old=13 "
                     "new=7\n");
    lf_promote_free(&out);

    /* rb is gone, funnel is the rebuilt model, the old one is kept. */
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM pg_namespace "
                                     "WHERE nspname = 'rb'"),
                     "0");
    cr_expect_str_eq(sql_value(conn, "SELECT next_offset FROM funnel.offsets"),
                     "7");
    cr_expect_str_eq(sql_value(conn, "SELECT adopted_at = '2020-01-02 03:04Z' "
                                     "FROM funnel.definition"),
                     "t");
    snprintf(sql, sizeof(sql), "SELECT next_offset FROM %s.offsets", old);
    cr_expect_str_eq(sql_value(conn, sql), "13");
    cr_expect(strstr(sql_value(conn, "SELECT obj_description('funnel'::"
                                     "regnamespace, 'pg_namespace')"),
                     "promoted from schema rb at "));
    snprintf(sql, sizeof(sql),
             "SELECT obj_description('%s'::regnamespace, 'pg_namespace')", old);
    cr_expect(strstr(sql_value(conn, sql), "replaced by promote of rb at "));

    /* Consistent: the views are there again and read the new tables, the
     * privileges came along, and the two models hold the same funnel. */
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM pg_views WHERE "
                                     "schemaname = 'funnel'"),
                     views);
    sql_ok(conn, "UPDATE funnel.leads SET stage = 'lost' WHERE lead_id = "
                 "'L4'");
    cr_expect_str_eq(sql_value(conn, "SELECT leads FROM funnel.stage_counts "
                                     "WHERE stage = 'lost' AND channel IS "
                                     "NULL"),
                     "1");
    cr_expect_str_eq(sql_value(conn,
                               "SELECT has_table_privilege("
                               "'leadflow_analyst', 'funnel.leads', "
                               "'SELECT') AND has_table_privilege("
                               "'leadflow_analyst', 'funnel.stage_counts',"
                               " 'SELECT')"),
                     "t");
    sql_ok(conn, "UPDATE funnel.leads SET stage = 'captured' WHERE lead_id = "
                 "'L4'");
    cr_assert_eq(
        lf_diff_compare(conn, "funnel", old, 10, &d, errstr, sizeof(errstr)),
        LF_OK, "%s", errstr);
    cr_expect_not(d.differs);
    lf_diff_free(&d);

    /* Undo at once, in the same second: the name of the second is taken
     * (made so here for the next minute), so the old funnel is kept as
     * its name with _2, and the undo is done. */
    sql_ok(conn, "DO $$ BEGIN FOR k IN 0..60 LOOP EXECUTE format('CREATE "
                 "SCHEMA IF NOT EXISTS %I', 'funnel_old_' || to_char(now() AT "
                 "TIME ZONE 'UTC' + make_interval(secs => k), "
                 "'YYYYMMDDHH24MISS')); END LOOP; END $$");
    cr_assert_eq(lf_promote_swap(conn, old, 5000, allow, &calls, &out, errstr,
                                 sizeof(errstr)),
                 LF_OK, "%s", errstr);
    cr_expect(!strncmp(out.old_name, "funnel_old_", 11) &&
                  !strcmp(out.old_name + strlen(out.old_name) - 2, "_2"),
              "%s", out.old_name);
    lf_promote_free(&out);
    cr_expect_str_eq(sql_value(conn, "SELECT next_offset FROM funnel.offsets"),
                     "13");
    pg_down(conn, dir);
}

/* Nothing changed: funnel is still the live model, rb still there. */
static void expect_unchanged(PGconn *conn)
{
    /* funnel_ref (reference data) is never promoted: not counted. */
    cr_expect_str_eq(sql_value(conn, "SELECT string_agg(nspname, ',' ORDER BY "
                                     "nspname) FROM pg_namespace WHERE "
                                     "(nspname LIKE 'funnel%' AND nspname <> "
                                     "'funnel_ref') OR nspname = 'rb'"),
                     "funnel,rb");
    cr_expect_str_eq(sql_value(conn, "SELECT coalesce(obj_description("
                                     "'funnel'::regnamespace, "
                                     "'pg_namespace'), 'none') NOT LIKE "
                                     "'%promoted%'"),
                     "t");
}

/* promote of rb refused, its reason holding @p a (and @p b, if not
 * NULL), nothing changed. */
static void expect_refused(PGconn *conn, const char *a, const char *b)
{
    char errstr[4096];
    lf_promote_t out;

    cr_expect_eq(lf_promote_swap(conn, "rb", 5000, NULL, NULL, &out, errstr,
                                 sizeof(errstr)),
                 LF_ERR_INVALID);
    cr_expect(strstr(errstr, a) && (!b || strstr(errstr, b)), "%s", errstr);
    lf_promote_free(&out);
    expect_unchanged(conn);
}

Test(promote, refuses_with_a_reason_and_changes_nothing, .timeout = 120)
{
    char dir[512], errstr[4096];
    PGconn *conn = live_and_rebuilt(dir, sizeof(dir), false);
    lf_promote_t out;
    int calls = 0;

    /* Not marked complete. */
    cr_expect_eq(lf_promote_swap(conn, "rb", 5000, NULL, NULL, &out, errstr,
                                 sizeof(errstr)),
                 LF_ERR_INVALID);
    cr_expect(strstr(errstr, "cannot promote rb: schema rb is not a complete "
                             "rebuild (its comment: leadflow-replay rebuild "
                             "--from-db started at "),
              "%s", errstr);
    lf_promote_free(&out);
    expect_unchanged(conn);

    /* The caller's check fails: its reason, as it gave it. */
    cr_assert_eq(lf_rebuild_complete(conn, "rb", "from-db", "events=13", errstr,
                                     sizeof(errstr)),
                 LF_OK, "%s", errstr);
    cr_expect_eq(lf_promote_swap(conn, "rb", 5000, refuse, &calls, &out, errstr,
                                 sizeof(errstr)),
                 LF_ERR_INVALID);
    cr_expect_str_eq(errstr, "the projector group has 1 member");
    cr_expect_eq(calls, 1);
    lf_promote_free(&out);
    expect_unchanged(conn);

    /* A table of another shape. */
    sql_ok(conn, "ALTER TABLE rb.leads ADD COLUMN extra integer");
    expect_refused(conn, "table leads differs: funnel has (",
                   ", extra integer)");
    sql_ok(conn, "ALTER TABLE rb.leads DROP COLUMN extra");

    /* Something promote could not carry over. */
    sql_ok(conn, "CREATE MATERIALIZED VIEW funnel.mv AS SELECT 1 AS x");
    expect_refused(conn, "materialized view mv", NULL);
    sql_ok(conn, "DROP MATERIALIZED VIEW funnel.mv");

    /* What a DBA added to funnel after the rebuild copied it: the swap
     * would drop it without a word. */
    sql_ok(conn, "CREATE INDEX leads_owner_dba ON funnel.leads (owner); "
                 "ALTER TABLE funnel.events ADD CONSTRAINT dba_src CHECK "
                 "(length(source) < 1000)");
    expect_refused(conn, "index leads_owner_dba on leads (added after",
                   "check constraint dba_src on events");
    sql_ok(conn, "DROP INDEX funnel.leads_owner_dba; ALTER TABLE "
                 "funnel.events DROP CONSTRAINT dba_src");

    /* A rebuild without an event over a funnel with some (the wrong
     * topic): its history would go. */
    sql_ok(conn, "BEGIN; CREATE TEMP TABLE keep AS SELECT * FROM rb.events; "
                 "DELETE FROM rb.events; COMMIT");
    cr_expect_eq(lf_promote_swap(conn, "rb", 5000, NULL, NULL, &out, errstr,
                                 sizeof(errstr)),
                 LF_ERR_INVALID);
    cr_expect(strstr(errstr, "rb holds no event while funnel holds some"), "%s",
              errstr);
    lf_promote_free(&out);
    expect_unchanged(conn);
    sql_ok(conn, "INSERT INTO rb.events SELECT * FROM keep");

    /* No such schema, and a name no rebuild could have. */
    cr_expect_eq(lf_promote_swap(conn, "nope", 5000, NULL, NULL, &out, errstr,
                                 sizeof(errstr)),
                 LF_ERR_INVALID);
    cr_expect_str_eq(errstr, "schema nope does not exist");
    lf_promote_free(&out);
    cr_expect_eq(lf_promote_swap(conn, "funnel", 5000, NULL, NULL, &out, errstr,
                                 sizeof(errstr)),
                 LF_ERR_INVALID);
    cr_expect(strstr(errstr, "choose a schema of its own"), "%s", errstr);
    lf_promote_free(&out);
    expect_unchanged(conn);
    pg_down(conn, dir);
}

/* The owners' carry-over alters the rebuilt tables' sequences, which the
 * locks cannot cover (LOCK takes no sequence): a session holding one keeps
 * the promote waiting at most the lock timeout, then nothing changed. */
Test(promote, a_held_sequence_stops_it_within_the_timeout, .timeout = 120)
{
    char dir[512], errstr[512];
    PGconn *conn = live_and_rebuilt(dir, sizeof(dir), true);
    PGconn *reader = PQconnectdb("");
    lf_promote_t out;

    cr_assert_eq(PQstatus(reader), CONNECTION_OK);
    sql_ok(conn, "CREATE ROLE owner1");
    sql_ok(conn, "DO $$ DECLARE t text; BEGIN FOR t IN SELECT relname FROM "
                 "pg_class WHERE relnamespace = 'funnel'::regnamespace AND "
                 "relkind IN ('r', 'p') LOOP EXECUTE format('ALTER TABLE "
                 "funnel.%I OWNER TO owner1', t); END LOOP; END $$");
    sql_ok(reader, "BEGIN");
    sql_ok(reader, "SELECT last_value FROM rb.dead_letters_id_seq");
    int64_t t0 = lf_now_mono_ms();
    cr_expect_eq(lf_promote_swap(conn, "rb", 1500, NULL, NULL, &out, errstr,
                                 sizeof(errstr)),
                 LF_ERR_TEMPORARY);
    cr_expect(lf_now_mono_ms() - t0 < 10000, "waited %lld ms",
              (long long)(lf_now_mono_ms() - t0));
    cr_expect(strstr(errstr, "past --lock-timeout (1 s"), "%s", errstr);
    lf_promote_free(&out);
    sql_ok(reader, "ROLLBACK");
    PQfinish(reader);
    expect_unchanged(conn);
    pg_down(conn, dir);
}

/* Two promotes of one schema at once: the one that waited for its locks
 * finds the schema gone (renamed by the other) and says so, as a promote of
 * a missing schema does (65), not as an outage (69). */
Test(promote, a_schema_renamed_during_the_lock_wait_is_missing, .timeout = 120)
{
    char dir[512], errstr[512];
    PGconn *conn = live_and_rebuilt(dir, sizeof(dir), true);
    PGconn *other = PQconnectdb("");
    lf_promote_t out;
    PGresult *res;

    cr_assert_eq(PQstatus(other), CONNECTION_OK);
    sql_ok(other, "BEGIN");
    sql_ok(other, "LOCK TABLE rb.leads IN ACCESS EXCLUSIVE MODE");
    cr_assert(PQsendQuery(other, "SELECT pg_sleep(1.2); ALTER SCHEMA rb "
                                 "RENAME TO rb_gone; COMMIT"));
    cr_expect_eq(lf_promote_swap(conn, "rb", 10000, NULL, NULL, &out, errstr,
                                 sizeof(errstr)),
                 LF_ERR_INVALID, "%s", errstr);
    cr_expect(strstr(errstr, "schema rb does not exist"), "%s", errstr);
    lf_promote_free(&out);
    while ((res = PQgetResult(other)))
        PQclear(res);
    PQfinish(other);
    sql_ok(conn, "ALTER SCHEMA rb_gone RENAME TO rb");
    expect_unchanged(conn);
    pg_down(conn, dir);
}

Test(promote, gives_up_on_a_busy_model_within_the_timeout, .timeout = 120)
{
    char dir[512], errstr[512];
    PGconn *conn = live_and_rebuilt(dir, sizeof(dir), true);
    PGconn *reader = PQconnectdb("");
    lf_promote_t out;

    /* A reader holding funnel.leads: the promote tries again and again,
     * then gives up with the reason and what to do. */
    cr_assert_eq(PQstatus(reader), CONNECTION_OK);
    sql_ok(reader, "BEGIN");
    sql_ok(reader, "LOCK TABLE funnel.leads IN ACCESS SHARE MODE");
    cr_expect_eq(lf_promote_swap(conn, "rb", 1500, NULL, NULL, &out, errstr,
                                 sizeof(errstr)),
                 LF_ERR_TEMPORARY);
    cr_expect(strstr(errstr, "could not lock funnel and rb within 1 s") &&
                  strstr(errstr, "--lock-timeout"),
              "%s", errstr);
    lf_promote_free(&out);
    sql_ok(reader, "ROLLBACK");
    PQfinish(reader);
    expect_unchanged(conn);
    pg_down(conn, dir);
}
