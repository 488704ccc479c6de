/* test_defstore.c: SCHEMA.definition against a throwaway PostgreSQL: the
 * first check records the definition, the same rules (in any layout) pass,
 * other rules are refused with a message that says how to adopt them,
 * tables with events and nothing recorded count as built under the
 * default, and a rebuild's record replaces what a schema holds. */
#include "lf_defstore.h"

#include "lf_test_pg.h"

#include <stdlib.h>
#include <string.h>

static char pgdir[512];

/* The default file with its version changed to @p version. */
static lf_definition_t *default_version(int version)
{
    char errstr[256], *c = lf_definition_canonical(lf_definition_default());
    char *at = strstr(c, "\"version\":1");
    cr_assert_not_null(at, "%s", c);
    at[10] = (char)('0' + version);
    lf_definition_t *def =
        lf_definition_parse(c, strlen(c), errstr, sizeof(errstr));
    cr_assert_not_null(def, "%s", errstr);
    free(c);
    return def;
}

Test(defstore, first_start_records_then_compares, .timeout = 120)
{
    PGconn *conn = pg_up_migrated(pgdir, sizeof(pgdir));
    char errstr[2048];
    lf_defstore_row_t row;
    bool differs = true;
    lf_definition_t *v2 = default_version(2);

    cr_assert_eq(lf_defstore_read(conn, "funnel", &row, errstr, sizeof(errstr)),
                 LF_OK, "%s", errstr);
    cr_expect_not(row.found);
    cr_assert_eq(lf_defstore_check(conn, "funnel", lf_definition_default(),
                                   NULL, &differs, errstr, sizeof(errstr)),
                 LF_OK, "%s", errstr);
    cr_expect_not(differs);
    cr_assert_eq(lf_defstore_read(conn, "funnel", &row, errstr, sizeof(errstr)),
                 LF_OK);
    cr_expect(row.found);
    cr_expect_str_eq(row.name, "default");
    cr_expect_eq(row.version, 1);
    cr_expect_eq(strlen(row.sha256), 64);
    /* Again: the same definition passes. */
    cr_assert_eq(lf_defstore_check(conn, "funnel", lf_definition_default(),
                                   NULL, &differs, errstr, sizeof(errstr)),
                 LF_OK, "%s", errstr);
    /* Other rules: refused, and the message says how to adopt them. */
    cr_assert_eq(lf_defstore_check(conn, "funnel", v2, "/etc/v2.json", &differs,
                                   errstr, sizeof(errstr)),
                 LF_ERR_INVALID);
    cr_expect(differs);
    cr_expect(strstr(errstr, "\"default\" version 1") &&
                  strstr(errstr, "version 2") &&
                  strstr(errstr, "leadflow-replay rebuild --into funnel_next "
                                 "--definition /etc/v2.json") &&
                  strstr(errstr, "diff --against funnel_next --summary") &&
                  strstr(errstr, "promote funnel_next") &&
                  strstr(errstr, "-X funnel.definition=/etc/v2.json"),
              "%s", errstr);
    /* A rebuild's record replaces it. */
    cr_assert_eq(lf_defstore_record(conn, "funnel", v2, errstr, sizeof(errstr)),
                 LF_OK, "%s", errstr);
    cr_assert_eq(lf_defstore_check(conn, "funnel", v2, NULL, &differs, errstr,
                                   sizeof(errstr)),
                 LF_OK, "%s", errstr);
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM funnel.definition"),
                     "1");
    lf_definition_t *back = NULL;
    cr_assert_eq(
        lf_defstore_load(conn, "funnel", &back, errstr, sizeof(errstr)), LF_OK,
        "%s", errstr);
    cr_assert_not_null(back);
    cr_expect_eq(back->version, 2);
    lf_definition_destroy(back);
    lf_definition_destroy(v2);
    pg_down(conn, pgdir);
}

Test(defstore, tables_from_before_are_the_defaults, .timeout = 120)
{
    PGconn *conn = pg_up_migrated(pgdir, sizeof(pgdir));
    char errstr[2048];
    bool differs = false;
    lf_definition_t *v2 = default_version(2);

    cr_assert_eq(lf_defstore_check(conn, "funnel", v2, "v2.json", &differs,
                                   errstr, sizeof(errstr)),
                 LF_OK, "no events: %s", errstr);
    sql_ok(conn, "DELETE FROM funnel.definition");
    project_lines(
        conn, "funnel",
        (const char *const[]){"{\"lead_id\":\"L1\",\"type\":\"captured\","
                              "\"occurred_at\":\"2026-01-01T00:00:00Z\","
                              "\"source\":\"t\",\"channel\":\"web\"}"},
        1);
    cr_assert_eq(lf_defstore_check(conn, "funnel", v2, "v2.json", &differs,
                                   errstr, sizeof(errstr)),
                 LF_ERR_INVALID);
    cr_expect(differs);
    cr_expect(strstr(errstr, "embedded default"), "%s", errstr);
    cr_assert_eq(lf_defstore_check(conn, "funnel", lf_definition_default(),
                                   NULL, &differs, errstr, sizeof(errstr)),
                 LF_OK, "%s", errstr);
    lf_definition_destroy(v2);
    pg_down(conn, pgdir);
}
