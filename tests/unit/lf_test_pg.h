/* lf_test_pg.h: a throwaway PostgreSQL for the unit tests of the store
 * modules (tools/pg-throwaway.sh; the test needs LF_SRC_DIR, which
 * tests/CMakeLists.txt defines), the funnel tables through the migrations,
 * and a few helpers that fail the test on any SQL error. Included by one
 * test file each, so everything here is static. */
#ifndef LF_TEST_PG_H
#define LF_TEST_PG_H

#include "lf_json.h"
#include "lf_pg.h"
#include "lf_projector.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Start the server and connect; the exports pg-throwaway.sh prints go into
 * the environment, which libpq (and lf_pg_connect("")) then reads. */
static inline PGconn *pg_up(char *dir, size_t dir_size)
{
    char cmd[1024], line[1024];
    FILE *f;

    snprintf(cmd, sizeof(cmd), "%s/tools/pg-throwaway.sh start", LF_SRC_DIR);
    cr_assert_not_null(f = popen(cmd, "r"), "cannot run %s", cmd);
    dir[0] = '\0';
    while (fgets(line, sizeof(line), f)) {
        char *eq, *v;
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "export ", 7) || !(eq = strchr(line + 7, '=')))
            continue;
        *eq = '\0';
        v = eq + 1;
        if (*v == '\'' && strlen(v) >= 2) { /* 'quoted' */
            v++;
            v[strlen(v) - 1] = '\0';
        }
        setenv(line + 7, v, 1);
        if (!strcmp(line + 7, "LEADFLOW_PGDATA"))
            snprintf(dir, dir_size, "%s", v);
    }
    cr_assert_eq(pclose(f), 0, "pg-throwaway.sh start failed");
    cr_assert(dir[0], "pg-throwaway.sh printed no LEADFLOW_PGDATA");
    PGconn *conn = PQconnectdb("");
    cr_assert_eq(PQstatus(conn), CONNECTION_OK, "%s", PQerrorMessage(conn));
    return conn;
}

static inline void pg_down(PGconn *conn, const char *dir)
{
    char cmd[1024];
    PQfinish(conn);
    snprintf(cmd, sizeof(cmd), "%s/tools/pg-throwaway.sh stop '%s' 2>/dev/null",
             LF_SRC_DIR, dir);
    cr_expect_eq(system(cmd), 0, "pg-throwaway.sh stop failed");
}

/* The server with the funnel tables, views and roles (lf_pg_migrate). */
static inline PGconn *pg_up_migrated(char *dir, size_t dir_size)
{
    char errstr[512];
    PGconn *conn = pg_up(dir, dir_size);
    cr_assert_eq(lf_pg_migrate(conn, NULL, errstr, sizeof(errstr)), LF_OK, "%s",
                 errstr);
    return conn;
}

/* Run @p sql, which must succeed. */
static inline void sql_ok(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql,
              PQresultErrorMessage(res));
    PQclear(res);
}

/* The first value of @p sql's first row ("" for NULL), in a static buffer:
 * copy it before the next call. */
static inline const char *sql_value(PGconn *conn, const char *sql)
{
    static char v[4096];
    PGresult *res = PQexec(conn, sql);
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s: %s", sql,
                 PQresultErrorMessage(res));
    cr_assert(PQntuples(res) > 0, "%s: no rows", sql);
    snprintf(v, sizeof(v), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

/* Project JSON lines (leadflow-emit's input) into @p schema as the live
 * projector would, as messages 0, 1, ... of partition 0 of topic "leads",
 * offsets recorded for group "leadflow-project". One batch. */
static inline void project_lines(PGconn *conn, const char *schema,
                                 const char *const *lines, size_t n)
{
    char errstr[512];
    lf_projector_t *p =
        lf_projector_new(schema, "leadflow-project", errstr, sizeof(errstr));

    cr_assert_not_null(p, "%s", errstr);
    for (size_t i = 0; i < n; i++) {
        lf_event_t ev;
        lf_event_init(&ev);
        cr_assert_eq(lf_json_parse_event(lines[i], strlen(lines[i]), &ev,
                                         errstr, sizeof(errstr)),
                     LF_OK, "line %zu: %s", i, errstr);
        cr_assert_eq(lf_projector_add_event(p, &ev, "leads", 0, (int64_t)i),
                     LF_OK);
        lf_event_clear(&ev);
    }
    cr_assert_eq(lf_projector_flush(p, conn, NULL, errstr, sizeof(errstr)),
                 LF_OK, "%s", errstr);
    lf_projector_destroy(p);
}

/* A small funnel in JSON lines: L1 (web) is won, L2 (web) handed off then
 * recycled to nurture, L3 (ads) disqualified, L4 (ads) only captured.
 * @returns the lines, @p n their number. */
#define EV(id, lead, type, at, rest)                                           \
    "{\"event_id\":\"" id "\",\"lead_id\":\"" lead "\",\"type\":\"" type       \
    "\",\"occurred_at\":\"" at "\",\"source\":\"crm\"" rest "}"
static inline const char *const *funnel_lines(size_t *n)
{
    static const char *const lines[] = {
        EV("e1", "L1", "captured", "2024-01-01T00:00:00Z",
           ",\"channel\":\"web\",\"campaign\":\"spring\""),
        EV("e2", "L1", "scored", "2024-01-01T10:00:00Z",
           ",\"score\":80,\"threshold\":60,\"model\":\"m1\""),
        EV("e3", "L1", "handed_off", "2024-01-02T00:00:00Z",
           ",\"owner\":\"ana\",\"sla_hours\":24"),
        EV("e4", "L1", "accepted", "2024-01-02T06:00:00Z",
           ",\"owner\":\"ana\""),
        EV("e5", "L1", "qualified", "2024-01-03T00:00:00Z",
           ",\"opportunity_id\":\"O1\",\"amount_minor\":500000,"
           "\"currency\":\"EUR\""),
        EV("e6", "L1", "won", "2024-01-10T00:00:00Z",
           ",\"amount_minor\":500000,\"currency\":\"EUR\""),
        EV("e7", "L2", "captured", "2024-01-05T00:00:00Z",
           ",\"channel\":\"web\",\"campaign\":\"spring\""),
        EV("e8", "L2", "scored", "2024-01-05T10:00:00Z",
           ",\"score\":70,\"threshold\":60,\"model\":\"m1\""),
        EV("e9", "L2", "handed_off", "2024-01-06T00:00:00Z",
           ",\"owner\":\"ben\",\"sla_hours\":24"),
        EV("e10", "L2", "recycled", "2024-01-08T00:00:00Z",
           ",\"reason\":\"not_ready\""),
        EV("e11", "L3", "captured", "2024-02-01T00:00:00Z",
           ",\"channel\":\"ads\""),
        EV("e12", "L3", "disqualified", "2024-02-01T06:00:00Z",
           ",\"reason\":\"spam\""),
        EV("e13", "L4", "captured", "2024-02-03T00:00:00Z",
           ",\"channel\":\"ads\""),
    };
    *n = sizeof(lines) / sizeof(*lines);
    return lines;
}

/* funnel_lines() projected into @p schema. */
static inline void project_funnel(PGconn *conn, const char *schema)
{
    size_t n;
    const char *const *lines = funnel_lines(&n);
    project_lines(conn, schema, lines, n);
}

#endif
