/* test_rebuild.c: the twin schema a rebuild writes into, and funnel.events
 * as a rebuild's source (lf_rebuild), against a throwaway PostgreSQL. */
#include "lf_rebuild.h"

#include "lf_test_pg.h"

/* Table definitions of @p schema as one string: name, columns, types,
 * NOT NULL, in order. */
static char *shape(PGconn *conn, const char *schema)
{
    char sql[768];
    snprintf(sql, sizeof(sql),
             "SELECT string_agg(c.relname || '(' || (SELECT string_agg("
             "a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || "
             "CASE WHEN a.attnotnull THEN ' not null' ELSE '' END, ', ' "
             "ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = "
             "c.oid AND a.attnum > 0 AND NOT a.attisdropped) || ')', '; ' "
             "ORDER BY c.relname) FROM pg_class c WHERE c.relnamespace = "
             "'%s'::regnamespace AND c.relkind = 'r'",
             schema);
    return strdup(sql_value(conn, sql));
}

Test(rebuild, twin_has_the_same_tables_empty_and_marked, .timeout = 120)
{
    char dir[512], errstr[512];
    PGconn *conn = pg_up_migrated(dir, sizeof(dir));

    project_funnel(conn, "funnel");
    cr_assert_eq(lf_rebuild_create(conn, "rb", false, 30000, NULL, "from-db",
                                   errstr, sizeof(errstr)),
                 LF_OK, "%s", errstr);
    char *live = shape(conn, "funnel"), *twin = shape(conn, "rb");
    cr_expect_str_eq(twin, live);
    cr_expect(strstr(live, "leads(lead_id text not null"), "%s", live);
    free(live);
    free(twin);
    cr_expect_str_eq(sql_value(conn, "SELECT (SELECT count(*) FROM rb.events) "
                                     "+ (SELECT count(*) FROM rb.leads) + "
                                     "(SELECT count(*) FROM rb.offsets)"),
                     "0");
    cr_expect_str_eq(
        sql_value(conn, "SELECT (SELECT array_agg(name ORDER BY name) FROM "
                        "rb.schema_migrations) = (SELECT array_agg(name ORDER "
                        "BY name) FROM funnel.schema_migrations)"),
        "t");
    /* Indexes come along (LIKE ... INCLUDING ALL). */
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM pg_indexes WHERE "
                                     "schemaname = 'rb'"),
                     sql_value(conn, "SELECT count(*) FROM pg_indexes WHERE "
                                     "schemaname = 'funnel'"));
    /* A serial column draws from a sequence of the twin's own. */
    cr_expect_str_eq(sql_value(conn, "SELECT pg_get_serial_sequence("
                                     "'rb.dead_letters', 'id')"),
                     "rb.dead_letters_id_seq");
    cr_expect(strstr(sql_value(conn, "SELECT obj_description('rb'::"
                                     "regnamespace, 'pg_namespace')"),
                     "leadflow-replay rebuild --from-db started at "),
              "comment");
    cr_expect(strstr(sql_value(conn, "SELECT obj_description('rb'::"
                                     "regnamespace, 'pg_namespace')"),
                     ": incomplete"),
              "comment");
    /* funnel's views and functions, reading the twin's tables: its numbers
     * read like the live model's before it is promoted. */
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM pg_views WHERE "
                                     "schemaname = 'rb'"),
                     sql_value(conn, "SELECT count(*) FROM pg_views WHERE "
                                     "schemaname = 'funnel'"));
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM pg_proc WHERE "
                                     "pronamespace = 'rb'::regnamespace"),
                     sql_value(conn, "SELECT count(*) FROM pg_proc WHERE "
                                     "pronamespace = 'funnel'::regnamespace"));
    cr_expect_str_eq(sql_value(conn, "SELECT coalesce(sum(leads), 0) FROM "
                                     "rb.stage_counts"),
                     "0");
    cr_expect_str_eq(sql_value(conn, "SELECT sum(leads) > 0 FROM "
                                     "funnel.stage_counts"),
                     "t");
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM "
                                     "rb.roi_filtered(NULL, NULL, 'web')"),
                     "0");
    cr_expect(strstr(sql_value(conn, "SELECT obj_description('rb.roi'::"
                                     "regclass, 'pg_class')"),
                     "attribution"),
              "the views' comments come along");
    /* The live model is untouched. */
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM funnel.events"),
                     "13");
    pg_down(conn, dir);
}

Test(rebuild, create_refuses_with_a_reason, .timeout = 120)
{
    static const struct {
        const char *name, *reason;
    } bad[] = {
        {"Rb", "use lower-case letters, digits and _"},
        {"1rb", "not starting with a digit"},
        {"funnel", "choose a schema of its own"},
        {"pg_rb", "choose a schema of its own"},
        {"select", "is an SQL keyword"},
    };
    char dir[512], errstr[512];
    PGconn *conn = pg_up(dir, sizeof(dir));

    /* No model yet. */
    cr_expect_eq(lf_rebuild_create(conn, "rb", false, 30000, NULL, "from-db",
                                   errstr, sizeof(errstr)),
                 LF_ERR_INVALID);
    cr_expect(strstr(errstr, "schema funnel does not exist"), "%s", errstr);
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM pg_namespace "
                                     "WHERE nspname = 'rb'"),
                     "0", "rolled back");

    char e2[512];
    cr_assert_eq(lf_pg_migrate(conn, NULL, e2, sizeof(e2)), LF_OK, "%s", e2);
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        cr_expect_eq(lf_rebuild_create(conn, bad[i].name, false, 30000, NULL,
                                       "from-db", errstr, sizeof(errstr)),
                     LF_ERR_INVALID, "%s", bad[i].name);
        cr_expect(strstr(errstr, bad[i].reason), "%s: %s", bad[i].name, errstr);
    }

    /* An existing schema: only with replace, which empties it. */
    cr_assert_eq(lf_rebuild_create(conn, "rb", false, 30000, NULL, "from-db",
                                   errstr, sizeof(errstr)),
                 LF_OK, "%s", errstr);
    sql_ok(conn, "INSERT INTO rb.offsets (group_id, topic, partition, "
                 "next_offset) VALUES ('g', 't', 0, 5)");
    cr_expect_eq(lf_rebuild_create(conn, "rb", false, 30000, NULL, "from-db",
                                   errstr, sizeof(errstr)),
                 LF_ERR_INVALID);
    cr_expect(strstr(errstr, "schema rb exists") && strstr(errstr, "--replace"),
              "%s", errstr);
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM rb.offsets"), "1");
    cr_expect_eq(lf_rebuild_create(conn, "rb", true, 30000, NULL, "from-kafka",
                                   errstr, sizeof(errstr)),
                 LF_OK, "%s", errstr);
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM rb.offsets"), "0");

    /* --replace drops a rebuild's schema only: not someone's data, not
     * the undo point a promote kept; both stay as they were. */
    sql_ok(conn, "CREATE SCHEMA userdata; CREATE TABLE userdata.important "
                 "(x int); INSERT INTO userdata.important VALUES (1); "
                 "CREATE SCHEMA funnel_old_20260101000000; COMMENT ON SCHEMA "
                 "funnel_old_20260101000000 IS 'leadflow funnel model "
                 "replaced by promote of rb at 2026-01-01T00:00:00Z'");
    cr_expect_eq(lf_rebuild_create(conn, "userdata", true, 30000, NULL,
                                   "from-db", errstr, sizeof(errstr)),
                 LF_ERR_INVALID);
    cr_expect(strstr(errstr, "was not made by leadflow-replay rebuild") &&
                  strstr(errstr, "DROP SCHEMA userdata CASCADE"),
              "%s", errstr);
    cr_expect_str_eq(sql_value(conn, "SELECT x FROM userdata.important"), "1");
    cr_expect_eq(lf_rebuild_create(conn, "funnel_old_20260101000000", true,
                                   30000, NULL, "from-db", errstr,
                                   sizeof(errstr)),
                 LF_ERR_INVALID);
    cr_expect(strstr(errstr, "is the funnel a promote replaced"), "%s", errstr);
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM pg_namespace WHERE "
                                     "nspname = 'funnel_old_20260101000000'"),
                     "1");
    /* ... nor what someone built on the rebuild: a view reading it. */
    sql_ok(conn, "CREATE VIEW userdata.whatif AS SELECT count(*) FROM "
                 "rb.offsets");
    cr_expect_eq(lf_rebuild_create(conn, "rb", true, 30000, NULL, "from-db",
                                   errstr, sizeof(errstr)),
                 LF_ERR_INVALID);
    cr_expect(strstr(errstr, "used from outside it (view userdata.whatif)"),
              "%s", errstr);
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM pg_views WHERE "
                                     "viewname = 'whatif'"),
                     "1");
    pg_down(conn, dir);
}

/* An analyst's open transaction on the what-if holds --replace's DROP at
 * most the lock timeout (a DROP waiting longer would hold up every later
 * reader of the schema): refused, to retry (75), the schema as it was. */
Test(rebuild, replace_waits_for_readers_at_most_the_lock_timeout,
     .timeout = 120)
{
    char dir[512], errstr[512];
    PGconn *conn = pg_up_migrated(dir, sizeof(dir));
    PGconn *reader = PQconnectdb("");

    cr_assert_eq(PQstatus(reader), CONNECTION_OK, "%s", PQerrorMessage(reader));
    cr_assert_eq(lf_rebuild_create(conn, "rb", false, 30000, NULL, "from-db",
                                   errstr, sizeof(errstr)),
                 LF_OK, "%s", errstr);
    sql_ok(conn, "INSERT INTO rb.offsets (group_id, topic, partition, "
                 "next_offset) VALUES ('g', 't', 0, 5)");
    sql_ok(reader, "BEGIN; SELECT count(*) FROM rb.offsets");
    cr_expect_eq(lf_rebuild_create(conn, "rb", true, 1000, NULL, "from-db",
                                   errstr, sizeof(errstr)),
                 LF_ERR_TEMPORARY);
    cr_expect(strstr(errstr, "schema rb is in use") &&
                  strstr(errstr, "for 1 s") && strstr(errstr, "--lock-timeout"),
              "%s", errstr);
    cr_expect_str_eq(sql_value(conn, "SELECT next_offset FROM rb.offsets"),
                     "5");
    sql_ok(reader, "COMMIT");
    cr_expect_eq(lf_rebuild_create(conn, "rb", true, 1000, NULL, "from-db",
                                   errstr, sizeof(errstr)),
                 LF_OK, "%s", errstr);
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM rb.offsets"), "0");
    /* A signal that came while it waited: nothing is dropped. */
    volatile sig_atomic_t stop = 1;
    sql_ok(conn, "INSERT INTO rb.offsets (group_id, topic, partition, "
                 "next_offset) VALUES ('g', 't', 0, 7)");
    cr_expect_eq(lf_rebuild_create(conn, "rb", true, 1000, &stop, "from-db",
                                   errstr, sizeof(errstr)),
                 LF_ERR_TEMPORARY);
    cr_expect(strstr(errstr, "interrupted: nothing changed"), "%s", errstr);
    cr_expect_str_eq(sql_value(conn, "SELECT next_offset FROM rb.offsets"),
                     "7");
    PQfinish(reader);
    pg_down(conn, dir);
}

/* The rebuild --from-db loop of leadflow-replay, without the program. */
static void rebuild_from_db(PGconn *conn, const char *into,
                            lf_rebuild_order_t order, uint64_t copied[3])
{
    char errstr[512];
    lf_rebuild_source_t *src =
        lf_rebuild_source_open("", order, errstr, sizeof(errstr));
    lf_projector_t *p = lf_projector_new(into, NULL, errstr, sizeof(errstr));
    size_t added;

    cr_assert_not_null(src, "%s", errstr);
    cr_assert_not_null(p, "%s", errstr);
    cr_assert_eq(lf_rebuild_create(conn, into, true, 30000, NULL, "from-db",
                                   errstr, sizeof(errstr)),
                 LF_OK, "%s", errstr);
    cr_expect_eq(lf_rebuild_source_total(src), 13);
    for (;;) {
        cr_assert_eq(
            lf_rebuild_source_next(src, p, 5, &added, errstr, sizeof(errstr)),
            LF_OK, "%s", errstr);
        if (!added)
            break;
        cr_assert_eq(lf_projector_flush(p, conn, NULL, errstr, sizeof(errstr)),
                     LF_OK, "%s", errstr);
    }
    cr_assert_eq(lf_rebuild_source_copy_rest(src, conn, into, copied, errstr,
                                             sizeof(errstr)),
                 LF_OK, "%s", errstr);
    cr_assert_eq(lf_rebuild_complete(conn, into, "from-db", "events=13", errstr,
                                     sizeof(errstr)),
                 LF_OK, "%s", errstr);
    lf_projector_destroy(p);
    lf_rebuild_source_close(src);
}

Test(rebuild, from_db_gives_the_live_model_back, .timeout = 120)
{
    char dir[512], errstr[512], live[256], twin[256];
    PGconn *conn = pg_up_migrated(dir, sizeof(dir));
    uint64_t copied[3];

    project_funnel(conn, "funnel");
    /* What events do not carry: a dead letter (one resolved), and a
     * conflict anomaly. */
    sql_ok(conn, "INSERT INTO funnel.dead_letters (topic, partition, "
                 "\"offset\", key, value, error) VALUES ('leads', 0, 90, "
                 "'k', '\\x00', 'framing: bad magic byte'), ('leads', 0, 91, "
                 "'k', '\\x00', 'framing: bad magic byte')");
    sql_ok(conn, "UPDATE funnel.dead_letters SET resolved_at = now(), "
                 "resolution = 'by hand' WHERE \"offset\" = 91");
    sql_ok(conn, "INSERT INTO funnel.anomalies (event_id, lead_id, kind, "
                 "reason) VALUES ('e4', 'L1', 'conflict', 'copy at x')");
    for (int order = LF_REBUILD_ORDER_LEAD; order <= LF_REBUILD_ORDER_NONE;
         order++) {
        rebuild_from_db(conn, "rb", (lf_rebuild_order_t)order, copied);
        cr_expect_eq(copied[0], 2, "dead letters");
        cr_expect_eq(copied[1], 1, "conflict and key anomalies");
        cr_expect_eq(copied[2], 1, "offsets");
        cr_assert_eq(lf_rebuild_counts(conn, "funnel", live, sizeof(live),
                                       errstr, sizeof(errstr)),
                     LF_OK, "%s", errstr);
        cr_assert_eq(lf_rebuild_counts(conn, "rb", twin, sizeof(twin), errstr,
                                       sizeof(errstr)),
                     LF_OK, "%s", errstr);
        cr_expect_str_eq(twin, live, "order %d", order);
        cr_expect(strstr(live, "events=13 leads=4 "), "%s", live);
        cr_expect_str_eq(
            sql_value(conn, "SELECT count(*) FROM (SELECT lead_id, stage, "
                            "cycle, owner, channel, won_amount_minor, visits "
                            "FROM funnel.leads EXCEPT SELECT lead_id, stage, "
                            "cycle, owner, channel, won_amount_minor, visits "
                            "FROM rb.leads) x"),
            "0", "order %d", order);
        /* The twin's views give the live model's numbers. */
        cr_expect_str_eq(
            sql_value(conn, "SELECT (SELECT count(*) FROM (SELECT * FROM "
                            "funnel.stage_counts EXCEPT SELECT * FROM "
                            "rb.stage_counts) a) + (SELECT count(*) FROM "
                            "(SELECT * FROM funnel.conversion EXCEPT SELECT * "
                            "FROM rb.conversion) b)"),
            "0", "order %d", order);
        cr_expect_str_eq(sql_value(conn, "SELECT (SELECT count(*) FROM "
                                         "rb.stage_counts) = (SELECT count(*) "
                                         "FROM funnel.stage_counts)"),
                         "t");
    }
    /* Complete: marked so, and a new dead letter gets a fresh id. */
    cr_expect(strstr(sql_value(conn, "SELECT obj_description('rb'::"
                                     "regnamespace, 'pg_namespace')"),
                     "leadflow-replay rebuild --from-db complete at "),
              "comment");
    cr_expect_str_eq(
        sql_value(conn, "INSERT INTO rb.dead_letters (topic, partition, "
                        "\"offset\", error) VALUES ('leads', 0, 92, 'x') "
                        "RETURNING id > (SELECT max(id) FROM "
                        "funnel.dead_letters)"),
        "t");
    pg_down(conn, dir);
}

Test(rebuild, source_refuses_an_event_that_no_longer_parses, .timeout = 120)
{
    char dir[512], errstr[512];
    PGconn *conn = pg_up_migrated(dir, sizeof(dir));
    lf_projector_t *p = lf_projector_new("funnel", NULL, errstr, 512);
    lf_rebuild_source_t *src;
    size_t added = 99;

    sql_ok(conn, "INSERT INTO funnel.events (event_id, lead_id, type, "
                 "occurred_at, source, payload, topic, partition, \"offset\") "
                 "VALUES ('bad', 'L9', 'teleported', now(), 'crm', '{}', "
                 "'leads', 3, 77)");
    src = lf_rebuild_source_open("", LF_REBUILD_ORDER_NONE, errstr,
                                 sizeof(errstr));
    cr_assert_not_null(src, "%s", errstr);
    cr_expect_eq(lf_rebuild_source_total(src), 1);
    cr_expect_eq(
        lf_rebuild_source_next(src, p, 10, &added, errstr, sizeof(errstr)),
        LF_ERR_INVALID);
    cr_expect(strstr(errstr, "stored event at leads [3] offset 77 no longer "
                             "parses"),
              "%s", errstr);
    cr_expect_eq(added, 0);
    lf_rebuild_source_close(src);
    lf_projector_destroy(p);

    /* No server there: the reason is libpq's. */
    cr_expect_null(lf_rebuild_source_open("host=127.0.0.1 port=1",
                                          LF_REBUILD_ORDER_LEAD, errstr,
                                          sizeof(errstr)));
    cr_expect(errstr[0], "a reason");
    pg_down(conn, dir);
}

Test(rebuild, order_names)
{
    cr_expect_eq(lf_rebuild_order_parse("lead"), LF_REBUILD_ORDER_LEAD);
    cr_expect_eq(lf_rebuild_order_parse("time"), LF_REBUILD_ORDER_TIME);
    cr_expect_eq(lf_rebuild_order_parse("none"), LF_REBUILD_ORDER_NONE);
    cr_expect_eq(lf_rebuild_order_parse("Lead"), -1);
    cr_expect_eq(lf_rebuild_order_parse(""), -1);
}
