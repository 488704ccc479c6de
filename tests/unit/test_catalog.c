/* test_catalog.c: the schemas that may hold a funnel model, and statements
 * generated from the catalog (lf_catalog). */
#include "lf_catalog.h"

#include "lf_test_pg.h"

static const struct {
    const char *name, *why; /* why NULL: accepted */
} names[] = {
    {"rb", NULL},
    {"funnel_rebuild_2024", NULL},
    {"_x", NULL},
    {"", "use lower-case letters, digits and _"},
    {"Rb", "use lower-case letters, digits and _"},
    {"9rb", "not starting with a digit"},
    {"r-b", "use lower-case letters"},
    {"r\"b", "use lower-case letters"},
    {"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghi", "at most 48"},
    {"funnel", "choose a schema of its own"},
    {"public", "choose a schema of its own"},
    {"funnel_ref", "choose a schema of its own"},
    {"information_schema", "choose a schema of its own"},
    {"pg_temp", "choose a schema of its own"},
};

Test(catalog, name_rules_without_a_server)
{
    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
        char errstr[256] = "";
        lf_err_t err =
            lf_catalog_check_name(NULL, names[i].name, errstr, sizeof(errstr));
        if (!names[i].why) {
            cr_expect_eq(err, LF_OK, "\"%s\": %s", names[i].name, errstr);
            continue;
        }
        cr_expect_eq(err, LF_ERR_INVALID, "\"%s\" accepted", names[i].name);
        cr_expect(strstr(errstr, names[i].why), "\"%s\": %s", names[i].name,
                  errstr);
    }
    /* Without a server, keywords are not known. */
    cr_expect_eq(lf_catalog_check_name(NULL, "select", NULL, 0), LF_OK);
}

Test(catalog, keywords_existence_and_generated_statements, .timeout = 120)
{
    char dir[512], errstr[512];
    PGconn *conn = pg_up(dir, sizeof(dir));
    lf_catalog_stmts_t l = {0};
    bool exists = true;

    cr_expect_eq(lf_catalog_check_name(conn, "select", errstr, sizeof(errstr)),
                 LF_ERR_INVALID);
    cr_expect_str_eq(errstr,
                     "schema \"select\" is an SQL keyword: choose another "
                     "name");
    /* Non-reserved keywords are fine as names. */
    cr_expect_eq(lf_catalog_check_name(conn, "data", errstr, sizeof(errstr)),
                 LF_OK, "%s", errstr);

    cr_assert_eq(
        lf_catalog_schema_exists(conn, "rb", &exists, errstr, sizeof(errstr)),
        LF_OK, "%s", errstr);
    cr_expect_not(exists);
    sql_ok(conn, "CREATE SCHEMA rb");
    sql_ok(conn, "CREATE TABLE rb.a (x int); CREATE TABLE rb.b (x int)");
    cr_assert_eq(
        lf_catalog_schema_exists(conn, "rb", &exists, errstr, sizeof(errstr)),
        LF_OK, "%s", errstr);
    cr_expect(exists);

    /* Statements the server writes, run in order. */
    cr_assert_eq(lf_catalog_gather(conn,
                                   "SELECT format('INSERT INTO %I.%I VALUES "
                                   "(1)', $1::text, relname) FROM pg_class "
                                   "WHERE relnamespace = $1::regnamespace "
                                   "AND relkind = 'r' ORDER BY relname",
                                   1, "rb", NULL, "inserting", &l, errstr,
                                   sizeof(errstr)),
                 LF_OK, "%s", errstr);
    cr_assert_eq(l.n, 2);
    cr_expect_str_eq(l.s[0], "INSERT INTO rb.a VALUES (1)");
    cr_expect_eq(
        lf_catalog_run_all(conn, &l, "inserting", errstr, sizeof(errstr)),
        LF_OK, "%s", errstr);
    lf_catalog_stmts_free(&l);
    cr_expect_eq(l.n, 0);
    cr_expect_str_eq(sql_value(conn, "SELECT (SELECT count(*) FROM rb.a) + "
                                     "(SELECT count(*) FROM rb.b)"),
                     "2");
    cr_expect_eq(lf_catalog_run_generated(conn,
                                          "SELECT format('DROP TABLE %I.a', "
                                          "$1::text)",
                                          1, "rb", NULL, "dropping", errstr,
                                          sizeof(errstr)),
                 LF_OK, "%s", errstr);
    /* A failing statement: what we were doing and the server's reason. */
    cr_expect_eq(lf_catalog_run_generated(conn,
                                          "SELECT format('DROP TABLE %I.a', "
                                          "$1::text)",
                                          1, "rb", NULL, "dropping", errstr,
                                          sizeof(errstr)),
                 LF_ERR_PG);
    cr_expect(strstr(errstr, "dropping: ") &&
                  strstr(errstr, "table \"a\" does not exist"),
              "%s", errstr);
    pg_down(conn, dir);
}
