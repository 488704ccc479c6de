/* test_pg.c: the binary COPY writer and the text[] literal (no server
 * needed; test_project and the other integration tests load these rows
 * into a real PostgreSQL), and a COPY sent in pieces (lf_pg_copy_begin,
 * _send, _end) into a throwaway PostgreSQL, and lf_pg_check_migrated. */
#include "lf_pg.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The bytes of PostgreSQL's binary COPY format, spelled out. */
static const char header[] = "PGCOPY\n\377\r\n\0" /* signature */
                             "\0\0\0\0"           /* flags */
                             "\0\0\0\0";          /* extension length */

Test(pg, bin_row_bytes)
{
    lf_buf_t b = {0};
    static const char row[] =
        "\0\x09" /* 9 fields */
        "\0\0\0\x03"
        "a\tb"             /* text, no escaping */
        "\xff\xff\xff\xff" /* NULL text */
        "\0\0\0\x04"
        "\xff\xff\xff\xfe" /* int4 -2 */
        "\0\0\0\x08"
        "\0\0\x01\x1f\x71\xfb\x04\xcb" /* int8 1234567890123 */
        "\0\0\0\x08"
        "\0\0\0\0\0\0\0\0" /* 2000-01-01: 0 us */
        "\0\0\0\x08"
        "\xff\xfc\xa2\xfe\xc4\xc8\x20\x00" /* 1970: -946684800 s */
        "\xff\xff\xff\xff"                 /* NULL timestamp */
        "\0\0\0\x03"
        "\x01{}" /* jsonb: version 1 */
        "\0\0\0\x02"
        "\x00\xff"; /* bytea */
    size_t hl = sizeof(header) - 1, rl = sizeof(row) - 1;

    cr_assert_eq(lf_pg_bin_row(&b, 9), LF_OK);
    cr_assert_eq(lf_pg_bin_text(&b, "a\tb"), LF_OK);
    cr_assert_eq(lf_pg_bin_text(&b, NULL), LF_OK);
    cr_assert_eq(lf_pg_bin_int4(&b, -2), LF_OK);
    cr_assert_eq(lf_pg_bin_int8(&b, INT64_C(1234567890123)), LF_OK);
    cr_assert_eq(lf_pg_bin_ts(&b, INT64_C(946684800000)), LF_OK);
    cr_assert_eq(lf_pg_bin_ts(&b, 0), LF_OK);
    cr_assert_eq(lf_pg_bin_ts(&b, INT64_MIN), LF_OK);
    cr_assert_eq(lf_pg_bin_jsonb(&b, "{}", 2), LF_OK);
    cr_assert_eq(lf_pg_bin_bytea(&b, "\x00\xff", 2), LF_OK);
    cr_assert_eq(b.len, hl + rl);
    cr_expect_eq(memcmp(b.data, header, hl), 0, "file header");
    cr_expect_eq(memcmp(b.data + hl, row, rl), 0, "row");

    /* A second row has no header; the trailer is a field count of -1. */
    cr_assert_eq(lf_pg_bin_row(&b, 1), LF_OK);
    cr_assert_eq(lf_pg_bin_null(&b), LF_OK);
    cr_assert_eq(lf_pg_bin_end(&b), LF_OK);
    cr_assert_eq(b.len, hl + rl + 2 + 4 + 2);
    cr_expect_eq(memcmp(b.data + hl + rl, "\0\x01\xff\xff\xff\xff\xff\xff", 8),
                 0, "second row and trailer");
    cr_expect_eq(b.data[b.len], '\0', "still NUL-terminated");
    lf_buf_free(&b);
}

Test(pg, text_array_quotes)
{
    lf_buf_t b = {0};
    const char *items[] = {"a", "b\"c", "d\\e", ""};
    cr_assert_eq(lf_pg_text_array(&b, items, 4), LF_OK);
    cr_expect_str_eq(b.data, "{\"a\",\"b\\\"c\",\"d\\\\e\",\"\"}");
    lf_buf_free(&b);
}

Test(pg, text_array_grows_past_its_buffer)
{
    enum { N = 300 };
    static char item[N][40];
    const char *items[N] = {0};
    lf_buf_t b = {0}, want = {0};

    cr_assert_eq(lf_pg_text_array(&b, items, 0), LF_OK);
    cr_expect_str_eq(b.data, "{}", "no items");
    lf_buf_reset(&b);
    cr_assert_eq(lf_buf_puts(&b, "x="), LF_OK); /* appends to what is there */
    lf_buf_puts(&want, "x={");
    for (int i = 0; i < N; i++) {
        snprintf(item[i], sizeof(item[i]), "L-%d\\\"%s", i,
                 i % 7 ? "" : "\"\"\"\"\"\"\"\"\"\"\"\"");
        items[i] = item[i];
        lf_buf_printf(&want, "%s\"", i ? "," : "");
        for (const char *c = item[i]; *c; c++)
            lf_buf_printf(&want, "%s%c", *c == '"' || *c == '\\' ? "\\" : "",
                          *c);
        lf_buf_puts(&want, "\"");
    }
    lf_buf_puts(&want, "}");
    cr_assert_eq(lf_pg_text_array(&b, items, N), LF_OK);
    cr_expect_eq(b.len, want.len);
    cr_expect_str_eq(b.data, want.data);
    lf_buf_free(&b);
    lf_buf_free(&want);
}

/* ---- lf_pg_copy_begin/send/end against a real server ------------------- */

#include "lf_test_pg.h"

static char *one_value(PGconn *conn, const char *sql)
{
    static char v[256];
    PGresult *res = PQexec(conn, sql);
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s: %s", sql,
                 PQresultErrorMessage(res));
    snprintf(v, sizeof(v), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

Test(pg, copy_in_pieces_against_postgresql, .timeout = 120)
{
    static const char sql[] = "COPY t (a, b) FROM STDIN (FORMAT binary)";
    char dir[512], errstr[512];
    PGconn *conn = pg_up(dir, sizeof(dir));
    lf_buf_t b = {0};

    PQclear(PQexec(conn, "CREATE TABLE t (a int4, b text)"));

    /* 1000 rows sent in pieces of 100, the buffer emptied between them:
     * one header, one trailer, every row stored. */
    cr_assert_eq(lf_pg_copy_begin(conn, sql, errstr, sizeof(errstr)), LF_OK,
                 "%s", errstr);
    for (int i = 0; i < 1000; i++) {
        cr_assert_eq((i ? lf_pg_bin_tuple : lf_pg_bin_row)(&b, 2), LF_OK);
        cr_assert_eq(lf_pg_bin_int4(&b, i), LF_OK);
        cr_assert_eq(lf_pg_bin_text(&b, i % 2 ? "odd" : "even"), LF_OK);
        if (i == 999)
            cr_assert_eq(lf_pg_bin_end(&b), LF_OK);
        if (i % 100 == 99) {
            cr_assert_eq(lf_pg_copy_send(conn, sql, b.data, b.len, errstr,
                                         sizeof(errstr)),
                         LF_OK, "%s", errstr);
            lf_buf_reset(&b);
        }
    }
    cr_assert_eq(lf_pg_copy_end(conn, sql, LF_OK, errstr, sizeof(errstr)),
                 LF_OK, "%s", errstr);
    cr_expect_str_eq(one_value(conn, "SELECT count(*) || ' ' || sum(a) || ' ' "
                                     "|| count(*) FILTER (WHERE b = 'odd') "
                                     "FROM t"),
                     "1000 499500 500");

    /* The caller gives up halfway (its own error): the COPY is aborted,
     * nothing of it is stored, the caller's message stays and the
     * connection is usable again. */
    cr_assert_eq(lf_pg_copy_begin(conn, sql, errstr, sizeof(errstr)), LF_OK);
    lf_buf_reset(&b);
    cr_assert_eq(lf_pg_bin_row(&b, 2), LF_OK);
    cr_assert_eq(lf_pg_bin_int4(&b, 5000), LF_OK);
    cr_assert_eq(lf_pg_bin_text(&b, "lost"), LF_OK);
    cr_assert_eq(
        lf_pg_copy_send(conn, sql, b.data, b.len, errstr, sizeof(errstr)),
        LF_OK);
    snprintf(errstr, sizeof(errstr), "out of memory");
    cr_expect_eq(
        lf_pg_copy_end(conn, sql, LF_ERR_NOMEM, errstr, sizeof(errstr)),
        LF_ERR_NOMEM);
    cr_expect_str_eq(errstr, "out of memory");
    cr_expect_str_eq(one_value(conn, "SELECT count(*) FROM t"), "1000");

    /* Rows the server refuses (three fields for two columns): LF_ERR_PG
     * with the server's reason, naming the statement. */
    cr_assert_eq(lf_pg_copy_begin(conn, sql, errstr, sizeof(errstr)), LF_OK);
    lf_buf_reset(&b);
    cr_assert_eq(lf_pg_bin_row(&b, 3), LF_OK);
    cr_assert_eq(lf_pg_bin_int4(&b, 1), LF_OK);
    cr_assert_eq(lf_pg_bin_text(&b, "x"), LF_OK);
    cr_assert_eq(lf_pg_bin_text(&b, "y"), LF_OK);
    cr_assert_eq(lf_pg_bin_end(&b), LF_OK);
    lf_err_t err =
        lf_pg_copy_send(conn, sql, b.data, b.len, errstr, sizeof(errstr));
    cr_expect_eq(lf_pg_copy_end(conn, sql, err, errstr, sizeof(errstr)),
                 LF_ERR_PG);
    cr_expect(strstr(errstr, "COPY t (a, b)") &&
                  strstr(errstr, "row field count is 3, expected 2"),
              "errstr: %s", errstr);
    cr_expect_str_eq(one_value(conn, "SELECT count(*) FROM t"), "1000");

    lf_buf_free(&b);
    pg_down(conn, dir);
}

/* lf_pg_check_migrated: a database without the funnel, one that lacks a
 * migration of this build, and one that has them all. */
Test(pg, check_migrated_names_what_is_missing, .timeout = 120)
{
    char dir[512], errstr[512];
    PGconn *conn = pg_up(dir, sizeof(dir));

    cr_expect_eq(lf_pg_check_migrated(conn, errstr, sizeof(errstr)),
                 LF_ERR_INVALID);
    cr_expect(strstr(errstr, "has no leadflow funnel") &&
                  strstr(errstr, "--migrate-only"),
              "%s", errstr);
    cr_assert_eq(lf_pg_migrate(conn, NULL, errstr, sizeof(errstr)), LF_OK, "%s",
                 errstr);
    cr_expect_eq(lf_pg_check_migrated(conn, errstr, sizeof(errstr)), LF_OK,
                 "%s", errstr);
    sql_ok(conn, "DELETE FROM funnel.schema_migrations WHERE name = "
                 "'019_anomaly_person.sql'");
    cr_expect_eq(lf_pg_check_migrated(conn, errstr, sizeof(errstr)),
                 LF_ERR_INVALID);
    cr_expect(strstr(errstr, "lacks migration 019_anomaly_person.sql"), "%s",
              errstr);
    pg_down(conn, dir);
}

/* The SQLSTATE replay tells a missing privilege by (exit 77) is the last
 * statement's: one that failed and was handled (rolled back to a
 * savepoint) is not told as a later failure of another kind. */
Test(pg, last_sqlstate_is_the_last_statements, .timeout = 120)
{
    char dir[512], errstr[512];
    PGconn *conn = pg_up(dir, sizeof(dir));

    cr_expect_eq(
        lf_pg_exec(conn, "SELECT 1/0", "dividing", errstr, sizeof(errstr)),
        LF_ERR_PG);
    cr_expect_str_eq(lf_pg_last_sqlstate(), "22012");
    cr_expect_eq(lf_pg_query(conn, "SET ROLE nosuch", 0, NULL, "role", NULL,
                             errstr, sizeof(errstr)),
                 LF_ERR_PG);
    cr_expect_str_eq(lf_pg_last_sqlstate(), "22023");
    cr_expect_eq(lf_pg_query(conn, "SELECT 1", 0, NULL, "one", NULL, errstr,
                             sizeof(errstr)),
                 LF_OK);
    cr_expect_str_eq(lf_pg_last_sqlstate(), "");
    pg_down(conn, dir);
}

/* The refusals lf_pg_refused_for_good() tells apart, from a real server's
 * and libpq's own messages. */
Test(pg, refusals_of_the_settings_told_from_outages, .timeout = 120)
{
    char dir[512], ci[1024], errstr[1024];
    PGconn *conn = pg_up(dir, sizeof(dir)), *c;
    const char *host = getenv("PGHOST"), *port = getenv("PGPORT");
    static const struct {
        const char *fmt; /* %1$s host, %2$s port */
        bool for_good;
    } cases[] = {
        {"host=%1$s port=%2$s dbname=no_such_db", true},
        {"host=%1$s port=%2$s user=no_such_role", true},
        /* the same server twice, refusing twice */
        {"host=%1$s,%1$s port=%2$s,%2$s dbname=no_such_db", true},
        /* nothing listens on port 1: an outage, worth waiting for */
        {"host=127.0.0.1 port=1", false},
        /* one server away, one refusing: the first may come back */
        {"host=127.0.0.1,%1$s port=1,%2$s dbname=no_such_db", false},
        /* a standby where a primary is wanted: a failover in progress
         * looks like this (here: no standby at all, read-write wanted of
         * a read-only session) */
        {"host=%1$s port=%2$s target_session_attrs=read-only", false},
    };

    cr_assert(host && port);
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        snprintf(ci, sizeof(ci), cases[i].fmt, host, port);
        c = lf_pg_connect(ci, errstr, sizeof(errstr));
        cr_assert_null(c, "%s connected", ci);
        cr_expect_eq(lf_pg_refused_for_good(errstr), cases[i].for_good,
                     "%s: %s", ci, errstr);
    }
    cr_expect(!lf_pg_refused_for_good(NULL));
    cr_expect(!lf_pg_refused_for_good(""));
    /* libpq's text for a host name that does not resolve (a DNS switch
     * during a failover) has no "connection to server": it is an attempt
     * that reached nothing all the same */
    cr_expect(!lf_pg_refused_for_good(
        "PostgreSQL: could not translate host name \"db-a.invalid\" to "
        "address: Name or service not known\nconnection to server at "
        "\"127.0.0.1\", port 5432 failed: FATAL:  database \"d\" does not "
        "exist"));
    /* sslmode=prefer: two lines for one server, both refusals */
    cr_expect(lf_pg_refused_for_good(
        "PostgreSQL: connection to server at \"h\" (10.0.0.1), port 5432 "
        "failed: FATAL:  no pg_hba.conf entry for host \"10.0.0.2\", user "
        "\"u\", database \"d\", SSL encryption\nconnection to server at "
        "\"h\" (10.0.0.1), port 5432 failed: FATAL:  no pg_hba.conf entry "
        "for host \"10.0.0.2\", user \"u\", database \"d\", no "
        "encryption"));
    /* a hint on a line of its own (a tab first) is no attempt */
    cr_expect(!lf_pg_refused_for_good(
        "PostgreSQL: connection to server at \"h\", port 1 failed: "
        "Connection refused\n\tIs the server running on that host and "
        "accepting TCP/IP connections?"));
    pg_down(conn, dir);
}

Test(pg, conninfo_check_names_the_problem_not_the_password)
{
    char errstr[512];

    cr_expect_eq(lf_pg_conninfo_check(NULL, errstr, sizeof(errstr)), LF_OK);
    cr_expect_eq(lf_pg_conninfo_check("", errstr, sizeof(errstr)), LF_OK);
    /* a bare word is a database name, whatever it holds */
    cr_expect_eq(lf_pg_conninfo_check("leads", errstr, sizeof(errstr)), LF_OK);
    cr_expect_eq(lf_pg_conninfo_check("host=db port=5432 dbname=leads", errstr,
                                      sizeof(errstr)),
                 LF_OK);
    cr_expect_eq(lf_pg_conninfo_check("postgresql://u:pw@db/leads", errstr,
                                      sizeof(errstr)),
                 LF_OK);
    cr_expect_eq(lf_pg_conninfo_check("bogus===", errstr, sizeof(errstr)),
                 LF_ERR_INVALID);
    cr_expect(strstr(errstr, "not a valid libpq conninfo or URI: invalid "
                             "connection option \"bogus\""),
              "%s", errstr);
    cr_expect_eq(lf_pg_conninfo_check("postgresql://u:s3cret@db/leads?x=1",
                                      errstr, sizeof(errstr)),
                 LF_ERR_INVALID);
    cr_expect(strstr(errstr, "not a valid libpq conninfo or URI"), "%s",
              errstr);
    cr_expect(!strstr(errstr, "s3cret"), "%s", errstr);
    cr_expect(!strchr(errstr, '\n'), "%s", errstr);
}

/* Values libpq parses but refuses when it connects (the projector took
 * them for an outage and retried forever): refused at once, each as
 * libpq itself refuses it. */
Test(pg, conninfo_check_refuses_values_libpq_refuses_at_connect)
{
    static const struct {
        const char *conninfo, *ours, *libpq;
    } bad[] = {
        {"host=127.0.0.1 port=1 sslmode=bogus", "sslmode \"bogus\"",
         "invalid sslmode value"},
        {"postgresql://u:S3cret@127.0.0.1:1/db?sslmode=Require",
         "sslmode \"Require\"", "invalid sslmode value"},
        {"host=127.0.0.1 port=1 target_session_attrs=master",
         "target_session_attrs \"master\"", "target_session_attrs"},
        {"host=127.0.0.1 port=1 gssencmode=on", "gssencmode",
         "invalid gssencmode value"},
        {"host=127.0.0.1 port=1 channel_binding=yes", "channel_binding",
         "channel_binding"},
        {"host=127.0.0.1 port=1 ssl_min_protocol_version=TLSv9",
         "ssl_min_protocol_version", "ssl_min_protocol_version"},
        {"host=127.0.0.1 port=99999", "port \"99999\"", "invalid port"},
        {"host=127.0.0.1 port=54x", "port \"54x\"",
         "invalid integer value \"54x\""},
        {"host=127.0.0.1 port=1,2,3", "3 ports for 1 hosts",
         "could not match 3 port numbers to 1 hosts"},
        {"host=127.0.0.1 port=1 ssl_max_protocol_version=tlsv9",
         "ssl_max_protocol_version", "ssl_max_protocol_version"},
        {"host=127.0.0.1,127.0.0.1 hostaddr=127.0.0.1 port=1",
         "2 host names for 1 hostaddr", "could not match 2 host names"},
    };
    static const char *const good[] = {
        "host=127.0.0.1 port=1 sslmode=verify-full",
        "host=127.0.0.1,127.0.0.1 port=1,2 target_session_attrs=read-write",
        "host=127.0.0.1,127.0.0.1 port=1 target_session_attrs=prefer-standby",
        "host=127.0.0.1 port='' connect_timeout=1 sslmode=disable",
        "postgresql://u@127.0.0.1:1,127.0.0.1:2/db?target_session_attrs=any",
        /* as libpq takes them (a review found these refused) */
        "host=127.0.0.1 port=1 ssl_min_protocol_version=tlsv1.2",
        "host=127.0.0.1 port=+1", "host=127.0.0.1 port=' 1'",
        "host=127.0.0.1,127.0.0.1 port=99999,1", /* libpq skips the first */
    };
    char errstr[512];

    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        PGconn *c = PQconnectdb(bad[i].conninfo);
        cr_expect(strstr(PQerrorMessage(c), bad[i].libpq), "libpq on %s: %s",
                  bad[i].conninfo, PQerrorMessage(c));
        PQfinish(c);
        cr_expect_eq(
            lf_pg_conninfo_check(bad[i].conninfo, errstr, sizeof(errstr)),
            LF_ERR_INVALID, "%s", bad[i].conninfo);
        cr_expect(strstr(errstr, bad[i].ours) && !strstr(errstr, "S3cret"),
                  "%s: %s", bad[i].conninfo, errstr);
    }
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
        PGconn *c = PQconnectdb(good[i]);
        /* libpq got as far as connecting (nothing listens there) */
        cr_expect(strstr(PQerrorMessage(c), "Connection refused"),
                  "libpq on %s: %s", good[i], PQerrorMessage(c));
        PQfinish(c);
        cr_expect_eq(lf_pg_conninfo_check(good[i], errstr, sizeof(errstr)),
                     LF_OK, "%s: %s", good[i], errstr);
    }
    /* Without a host in it, PGHOST may hold the list its ports match. */
    char *was = getenv("PGHOST") ? strdup(getenv("PGHOST")) : NULL;
    setenv("PGHOST", "127.0.0.1,127.0.0.1", 1);
    PGconn *c = PQconnectdb("port=1,2 dbname=x");
    cr_expect(!strstr(PQerrorMessage(c), "could not match"), "libpq: %s",
              PQerrorMessage(c));
    PQfinish(c);
    cr_expect_eq(
        lf_pg_conninfo_check("port=1,2 dbname=x", errstr, sizeof(errstr)),
        LF_OK, "%s", errstr);
    if (was)
        setenv("PGHOST", was, 1);
    else
        unsetenv("PGHOST");
    free(was);
}
