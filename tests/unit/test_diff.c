/* test_diff.c: comparing the funnel model in two schemas (lf_diff),
 * against a throwaway PostgreSQL: none for equal schemas, exactly the rows
 * that differ otherwise. */
#include "lf_diff.h"

#include "lf_rebuild.h"
#include "lf_test_pg.h"

/* The fixture in funnel and, projected the same way, in schema rb. */
static PGconn *two_models(char *dir, size_t dir_size)
{
    char errstr[512];
    PGconn *conn = pg_up_migrated(dir, dir_size);

    project_funnel(conn, "funnel");
    cr_assert_eq(lf_rebuild_create(conn, "rb", false, 30000, NULL, "from-db",
                                   errstr, sizeof(errstr)),
                 LF_OK, "%s", errstr);
    project_funnel(conn, "rb");
    return conn;
}

Test(diff, equal_schemas_differ_in_nothing, .timeout = 120)
{
    char dir[512], errstr[512];
    PGconn *conn = two_models(dir, sizeof(dir));
    lf_diff_t d;

    /* Wall-clock columns and the order rows were written in do not count. */
    sql_ok(conn, "UPDATE rb.leads SET updated_at = now() + interval '1 day'");
    sql_ok(conn, "UPDATE rb.events SET received_at = now() - interval '1 day'");
    cr_assert_eq(
        lf_diff_compare(conn, "funnel", "rb", 10, &d, errstr, sizeof(errstr)),
        LF_OK, "%s", errstr);
    cr_expect_not(d.differs);
    cr_expect_eq(d.row_count, 0);
    cr_expect_eq(d.leads, 0);
    for (int t = 0; t < LF_DIFF_TABLES; t++) {
        const lf_diff_table_t *dt = &d.tables[t];
        cr_expect_not(dt->differs, "%s", dt->table);
        cr_expect_eq(dt->rows_a, dt->rows_b, "%s", dt->table);
        cr_expect_str_eq(dt->sum_a, dt->sum_b, "%s", dt->table);
    }
    cr_expect_str_eq(d.tables[0].table, "events");
    cr_expect_eq(d.tables[0].rows_a, 13);
    cr_expect_str_eq(d.tables[1].table, "leads");
    cr_expect_eq(d.tables[1].rows_a, 4);
    lf_diff_free(&d);
    pg_down(conn, dir);
}

Test(diff, finds_exactly_the_rows_that_differ, .timeout = 120)
{
    static const struct {
        const char *lead, *text;
    } want[] = {
        {"L2", "leads: owner funnel=\"ben\" rb=\"zed\""},
        {"L4", "events event_id=e13: only in funnel"},
        {NULL, "dead_letters topic=leads partition=0 offset=99: only in rb"},
    };
    char dir[512], errstr[512];
    PGconn *conn = two_models(dir, sizeof(dir));
    lf_diff_t d;

    sql_ok(conn, "UPDATE rb.leads SET owner = 'zed' WHERE lead_id = 'L2'");
    sql_ok(conn, "DELETE FROM rb.events WHERE event_id = 'e13'");
    sql_ok(conn, "INSERT INTO rb.dead_letters (topic, partition, \"offset\", "
                 "error) VALUES ('leads', 0, 99, 'framing: bad magic byte')");
    /* A resolved letter is history, not a difference. */
    sql_ok(conn, "INSERT INTO funnel.dead_letters (topic, partition, "
                 "\"offset\", error, resolved_at, resolution) VALUES "
                 "('leads', 0, 98, 'x', now(), 'by hand')");
    cr_assert_eq(
        lf_diff_compare(conn, "funnel", "rb", 10, &d, errstr, sizeof(errstr)),
        LF_OK, "%s", errstr);
    cr_expect(d.differs);
    cr_expect_eq(d.leads, 2);
    cr_assert_eq(d.row_count, 3);
    for (size_t i = 0; i < 3; i++) {
        if (want[i].lead)
            cr_expect_str_eq(d.rows[i].lead, want[i].lead);
        else
            cr_expect_null(d.rows[i].lead);
        cr_expect_str_eq(d.rows[i].text, want[i].text);
    }
    for (int t = 0; t < LF_DIFF_TABLES; t++) {
        bool should = !strcmp(d.tables[t].table, "events") ||
                      !strcmp(d.tables[t].table, "leads") ||
                      !strcmp(d.tables[t].table, "dead_letters");
        cr_expect_eq(d.tables[t].differs, should, "%s", d.tables[t].table);
    }
    cr_expect_eq(d.tables[0].rows_a, 13);
    cr_expect_eq(d.tables[0].rows_b, 12);
    lf_diff_free(&d);

    /* At most one lead: the first by lead_id, and the lead-less rows. */
    cr_assert_eq(
        lf_diff_compare(conn, "funnel", "rb", 1, &d, errstr, sizeof(errstr)),
        LF_OK, "%s", errstr);
    cr_expect_eq(d.leads, 1);
    cr_assert_eq(d.row_count, 2);
    cr_expect_str_eq(d.rows[0].text, want[0].text);
    cr_expect_str_eq(d.rows[1].text, want[2].text);
    lf_diff_free(&d);
    pg_down(conn, dir);
}

/* A long value is cut for the line before a character, never inside
 * one: the 60th byte here is the second of "Ł". */
Test(diff, cuts_a_long_value_between_characters, .timeout = 120)
{
    char dir[512], errstr[512], want[160];
    PGconn *conn = two_models(dir, sizeof(dir));
    lf_diff_t d;

    sql_ok(conn, "UPDATE rb.leads SET owner = repeat('a', 59) || "
                 "'\u0141\u00f3d\u017a' WHERE lead_id = 'L2'");
    cr_assert_eq(
        lf_diff_compare(conn, "funnel", "rb", 10, &d, errstr, sizeof(errstr)),
        LF_OK, "%s", errstr);
    cr_assert_eq(d.row_count, 1);
    snprintf(
        want, sizeof(want), "leads: owner funnel=\"ben\" rb=\"%.59s\"...",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    cr_expect_str_eq(d.rows[0].text, want);
    lf_diff_free(&d);
    pg_down(conn, dir);
}

Test(diff, compares_a_column_a_migration_adds, .timeout = 120)
{
    char dir[512], errstr[512];
    PGconn *conn = two_models(dir, sizeof(dir));
    lf_diff_t d;

    sql_ok(conn, "ALTER TABLE funnel.leads ADD COLUMN tier text");
    sql_ok(conn, "ALTER TABLE rb.leads ADD COLUMN tier text");
    sql_ok(conn, "UPDATE rb.leads SET tier = 'gold' WHERE lead_id = 'L3'");
    cr_assert_eq(
        lf_diff_compare(conn, "funnel", "rb", 10, &d, errstr, sizeof(errstr)),
        LF_OK, "%s", errstr);
    cr_expect(d.differs);
    cr_assert_eq(d.row_count, 1);
    cr_expect_str_eq(d.rows[0].lead, "L3");
    cr_expect_str_eq(d.rows[0].text, "leads: tier funnel=NULL rb=\"gold\"");
    lf_diff_free(&d);
    pg_down(conn, dir);
}

Test(diff, says_which_schema_is_wrong, .timeout = 120)
{
    char dir[512], errstr[512];
    PGconn *conn = pg_up_migrated(dir, sizeof(dir));
    lf_diff_t d;

    cr_expect_eq(
        lf_diff_compare(conn, "funnel", "nope", 10, &d, errstr, sizeof(errstr)),
        LF_ERR_INVALID);
    cr_expect_str_eq(errstr, "schema nope does not exist");
    cr_expect_eq(lf_diff_compare(conn, "Bad-Name", "funnel", 10, &d, errstr,
                                 sizeof(errstr)),
                 LF_ERR_INVALID);
    cr_expect(strstr(errstr, "\"Bad-Name\": use lower-case letters"), "%s",
              errstr);
    /* A schema without the model's tables: bad data (65 in replay, not the
     * 69 of a database away), naming the tables. */
    sql_ok(conn, "CREATE SCHEMA empty");
    cr_expect_eq(lf_diff_compare(conn, "funnel", "empty", 10, &d, errstr,
                                 sizeof(errstr)),
                 LF_ERR_INVALID);
    cr_expect(strstr(errstr, "schema empty holds no funnel model (no table "
                             "events, leads,"),
              "%s", errstr);
    cr_expect_null(d.rows);
    cr_expect_eq(d.row_count, 0);
    /* The connection is usable afterwards (the snapshot was let go). */
    cr_expect_str_eq(sql_value(conn, "SELECT 1"), "1");
    pg_down(conn, dir);
}
