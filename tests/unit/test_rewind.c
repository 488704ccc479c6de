/* test_rewind.c: the rewind rules and the --to-offset syntax (lf_rewind). */
#include "lf_rewind.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>

/* One partition: watermarks, stored offset, target; what the plan does. */
typedef struct plan_case_s {
    const char *what;
    int64_t low, high, current, target;
    int64_t next; /* expected stored offset afterwards (-1: none) */
    bool changed;
    bool clamped;
    const char *note; /* substring of the note, or NULL for none */
} plan_case_t;

static const plan_case_t plan_cases[] = {
    {"back", 0, 100, 80, 50, 50, true, false, NULL},
    {"back to the beginning", 0, 100, 80, 0, 0, true, false, NULL},
    {"same offset", 0, 100, 80, 80, 80, false, false, "already"},
    {"forward is refused", 0, 100, 80, 90, 80, false, false,
     "never moves "
     "forward"},
    {"past the end", 0, 100, 80, 1000, 80, false, false, "already"},
    {"time after the last message: high watermark", 0, 100, 100, 100, 100,
     false, false, "already"},
    {"below the retained log: low watermark", 40, 100, 80, 10, 40, true, true,
     NULL},
    {"not asked", 0, 100, 80, -1, 80, false, false, "not asked"},
    {"no stored offset: never created", 0, 100, -1, 50, -1, false, false,
     "from the beginning anyway"},
};

Test(rewind, plan)
{
    for (size_t i = 0; i < sizeof(plan_cases) / sizeof(*plan_cases); i++) {
        const plan_case_t *c = &plan_cases[i];
        lf_rewind_t r = {.partition = 0,
                         .low = c->low,
                         .high = c->high,
                         .current = c->current,
                         .target = c->target};
        int changed = lf_rewind_plan(&r, 1);
        cr_expect_eq(changed, c->changed ? 1 : 0, "%s: changed", c->what);
        cr_expect_eq(r.next, c->next, "%s: next %lld", c->what,
                     (long long)r.next);
        cr_expect_eq(r.clamped, c->clamped, "%s: clamped", c->what);
        if (c->note)
            cr_expect(r.note && strstr(r.note, c->note), "%s: note \"%s\"",
                      c->what, r.note ? r.note : "(none)");
        else
            cr_expect_null(r.note, "%s: note \"%s\"", c->what, r.note);
    }
}

Test(rewind, plan_counts_partitions)
{
    lf_rewind_t rows[3] = {
        {.partition = 0, .low = 0, .high = 10, .current = 10, .target = 5},
        {.partition = 1, .low = 0, .high = 10, .current = 10, .target = 10},
        {.partition = 2, .low = 0, .high = 10, .current = 7, .target = 0},
    };
    cr_expect_eq(lf_rewind_plan(rows, 3), 2);
    cr_expect_eq(rows[0].next, 5);
    cr_expect_eq(rows[1].next, 10);
    cr_expect_eq(rows[2].next, 0);
}

static void fresh(lf_rewind_t *rows, int n)
{
    for (int i = 0; i < n; i++)
        rows[i] = (lf_rewind_t){.partition = i,
                                .low = 10 * i,
                                .high = 1000,
                                .target = -1,
                                .current = -1,
                                .next = -1};
}

Test(rewind, parse_offsets)
{
    lf_rewind_t rows[4];
    char err[256];

    fresh(rows, 4);
    cr_assert_eq(
        lf_rewind_parse_offsets("0:5,2:beginning", rows, 4, err, sizeof(err)),
        LF_OK, "%s", err);
    cr_expect_eq(rows[0].target, 5);
    cr_expect_eq(rows[1].target, -1);
    cr_expect_eq(rows[2].target, 20, "beginning is the low watermark");
    cr_expect_eq(rows[3].target, -1);
}

typedef struct bad_case_s {
    const char *in;
    const char *why;
} bad_case_t;

static const bad_case_t bad_cases[] = {
    {"", "empty"},
    {"0", "PARTITION:OFFSET"},
    {"0:", "not an offset"},
    {"0:-1", "not an offset"},
    {"0:x", "not an offset"},
    {"x:1", "not a partition"},
    {"-1:1", "not a partition"},
    {"0:1,,1:2", "bad item"},
    {"0:1,", NULL}, /* a trailing comma is harmless */
    {"7:1", "no partition 7"},
    {"0:1,0:2", "given twice"},
    {"0:99999999999999999999", "not an offset"},
};

Test(rewind, parse_offsets_errors)
{
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(*bad_cases); i++) {
        lf_rewind_t rows[4];
        char err[256] = "";
        fresh(rows, 4);
        lf_err_t e =
            lf_rewind_parse_offsets(bad_cases[i].in, rows, 4, err, sizeof(err));
        if (!bad_cases[i].why) {
            cr_expect_eq(e, LF_OK, "\"%s\": %s", bad_cases[i].in, err);
            continue;
        }
        cr_expect_eq(e, LF_ERR_INVALID, "\"%s\" accepted", bad_cases[i].in);
        cr_expect(strstr(err, bad_cases[i].why), "\"%s\": \"%s\" lacks \"%s\"",
                  bad_cases[i].in, err, bad_cases[i].why);
    }
}

/* Without the topic's partitions (rows NULL): the same syntax errors, and
 * a partition the topic may not have passes (it is judged later). */
Test(rewind, parse_offsets_syntax_only)
{
    char err[256] = "";

    cr_expect_eq(
        lf_rewind_parse_offsets("9:0,1:beginning", NULL, 0, err, sizeof(err)),
        LF_OK, "%s", err);
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(*bad_cases); i++) {
        lf_err_t e =
            lf_rewind_parse_offsets(bad_cases[i].in, NULL, 0, err, sizeof(err));
        bool syntax = bad_cases[i].why &&
                      !strstr(bad_cases[i].why, "no partition") &&
                      !strstr(bad_cases[i].why, "twice");
        cr_expect_eq(e, syntax ? LF_ERR_INVALID : LF_OK, "\"%s\": %s",
                     bad_cases[i].in, err);
    }
}

/* ---- lf_rewind_run against a throwaway PostgreSQL ---------------------- */

#include "lf_test_pg.h"

/* Every stored offset, "group/topic/partition=next;..." in key order. */
static char *offsets(PGconn *conn)
{
    return strdup(sql_value(
        conn, "SELECT string_agg(group_id || '/' || topic || '/' || "
              "partition || '=' || next_offset, ';' ORDER BY group_id, "
              "topic, partition) FROM funnel.offsets"));
}

static lf_err_t busy_group(void *arg, char *errstr, size_t errstr_size)
{
    (*(int *)arg)++;
    return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                     "group g has 2 members: stop the projectors first");
}

/* Partitions 0..4 of topic t, watermarks [10, 100); @p targets per
 * partition (-1: not asked). */
static void ask(lf_rewind_t *rows, const int64_t targets[5])
{
    for (int i = 0; i < 5; i++)
        rows[i] = (lf_rewind_t){.partition = i,
                                .low = 10,
                                .high = 100,
                                .target = targets[i],
                                .current = -1,
                                .next = -1};
}

Test(rewind, run_rewinds_as_asked_and_nothing_else, .timeout = 120)
{
    /* p0 back to 20; p1 not asked; p2 asked forward (stays); p3 asked
     * below the low watermark (to 10); p4 has no stored offset. */
    static const int64_t targets[5] = {20, -1, 70, 3, 20};
    char dir[512], errstr[512];
    PGconn *conn = pg_up_migrated(dir, sizeof(dir));
    lf_rewind_t rows[5];
    int changed = -1, calls = 0;

    sql_ok(conn, "INSERT INTO funnel.offsets (group_id, topic, partition, "
                 "next_offset) VALUES ('g', 't', 0, 50), ('g', 't', 1, 50), "
                 "('g', 't', 2, 50), ('g', 't', 3, 50), ('g', 'u', 0, 50), "
                 "('h', 't', 0, 50)");
    char *before = offsets(conn);

    /* A dry run plans and changes nothing. */
    ask(rows, targets);
    cr_assert_eq(lf_rewind_run(conn, "g", "t", rows, 5, false, 1000, NULL, NULL,
                               &changed, errstr, sizeof(errstr)),
                 LF_OK, "%s", errstr);
    cr_expect_eq(changed, 2);
    cr_expect_eq(rows[0].current, 50);
    cr_expect_eq(rows[0].next, 20);
    cr_expect_eq(rows[3].next, 10);
    cr_expect(rows[3].clamped);
    cr_expect_eq(rows[4].current, -1);
    cr_expect_eq(rows[4].next, -1, "a rewind never creates an offset");
    char *after = offsets(conn);
    cr_expect_str_eq(after, before);
    free(after);

    /* The caller's check refuses: its reason, nothing changed. */
    ask(rows, targets);
    cr_expect_eq(lf_rewind_run(conn, "g", "t", rows, 5, true, 1000, busy_group,
                               &calls, &changed, errstr, sizeof(errstr)),
                 LF_ERR_INVALID);
    cr_expect_str_eq(errstr, "group g has 2 members: stop the projectors "
                             "first");
    cr_expect_eq(calls, 1);
    after = offsets(conn);
    cr_expect_str_eq(after, before);
    free(after);

    /* Applied: exactly p0 and p3 of g/t move back. */
    ask(rows, targets);
    cr_assert_eq(lf_rewind_run(conn, "g", "t", rows, 5, true, 1000, NULL, NULL,
                               &changed, errstr, sizeof(errstr)),
                 LF_OK, "%s", errstr);
    cr_expect_eq(changed, 2);
    after = offsets(conn);
    cr_expect_str_eq(after, "g/t/0=20;g/t/1=50;g/t/2=50;g/t/3=10;g/u/0=50;"
                            "h/t/0=50");
    free(after);
    free(before);
    pg_down(conn, dir);
}

/* A COMMIT whose answer is lost (here a deferred trigger ends the session
 * at COMMIT; a crash or a cut network does the same) is reported as in
 * doubt (*changed -1), which the caller says, never as "not done". */
Test(rewind, run_says_when_its_commit_is_in_doubt, .timeout = 120)
{
    static const int64_t targets[5] = {20, -1, 70, 3, 20};
    char dir[512], errstr[512];
    PGconn *conn = pg_up_migrated(dir, sizeof(dir)), *other;
    lf_rewind_t rows[5];
    int changed = 0;

    sql_ok(conn, "INSERT INTO funnel.offsets (group_id, topic, partition, "
                 "next_offset) VALUES ('g', 't', 0, 50)");
    sql_ok(conn, "CREATE FUNCTION cut() RETURNS trigger LANGUAGE plpgsql AS "
                 "$$BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); "
                 "RETURN NULL; END$$");
    sql_ok(conn, "CREATE CONSTRAINT TRIGGER cut AFTER UPDATE ON "
                 "funnel.offsets DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                 "EXECUTE FUNCTION cut()");
    other = PQconnectdb("");
    cr_assert_eq(PQstatus(other), CONNECTION_OK);
    ask(rows, targets);
    cr_expect_neq(lf_rewind_run(other, "g", "t", rows, 5, true, 1000, NULL,
                                NULL, &changed, errstr, sizeof(errstr)),
                  LF_OK);
    cr_expect_eq(changed, -1, "%s", errstr);
    cr_expect(strstr(errstr, "it may have been committed"), "%s", errstr);
    PQfinish(other);
    pg_down(conn, dir);
}

Test(rewind, run_gives_up_on_a_held_lock, .timeout = 120)
{
    static const int64_t targets[5] = {20, -1, -1, -1, -1};
    char dir[512], errstr[512];
    PGconn *conn = pg_up_migrated(dir, sizeof(dir));
    PGconn *projector = PQconnectdb("");
    lf_rewind_t rows[5];
    int changed = -1;

    sql_ok(conn, "INSERT INTO funnel.offsets (group_id, topic, partition, "
                 "next_offset) VALUES ('g', 't', 0, 50)");
    cr_assert_eq(PQstatus(projector), CONNECTION_OK);
    sql_ok(projector, "BEGIN");
    sql_ok(projector, "SELECT * FROM funnel.offsets");
    ask(rows, targets);
    cr_expect_eq(lf_rewind_run(conn, "g", "t", rows, 5, true, 200, NULL, NULL,
                               &changed, errstr, sizeof(errstr)),
                 LF_ERR_TEMPORARY);
    cr_expect(strstr(errstr, "locking funnel.offsets: ") &&
                  strstr(errstr, "lock timeout"),
              "%s", errstr);
    sql_ok(projector, "ROLLBACK");
    PQfinish(projector);
    cr_expect_str_eq(sql_value(conn, "SELECT next_offset FROM funnel.offsets"),
                     "50");
    pg_down(conn, dir);
}

/* A signal while the lock is waited for: the wait ends at once (not when
 * the lock comes or the timeout runs out), and nothing changed. */
static volatile sig_atomic_t stop_flag;

static void *raise_later(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 300 * 1000000L};
    nanosleep(&ts, NULL);
    stop_flag = 1;
    return NULL;
}

Test(rewind, a_signal_ends_the_wait_for_the_lock, .timeout = 120)
{
    static const int64_t targets[5] = {20, -1, -1, -1, -1};
    char dir[512], errstr[512];
    PGconn *conn = pg_up_migrated(dir, sizeof(dir));
    PGconn *projector = PQconnectdb("");
    lf_rewind_t rows[5];
    int changed = -1;
    pthread_t t;
    struct timespec t0, t1;

    sql_ok(conn, "INSERT INTO funnel.offsets (group_id, topic, partition, "
                 "next_offset) VALUES ('g', 't', 0, 50)");
    sql_ok(projector, "BEGIN");
    sql_ok(projector, "SELECT * FROM funnel.offsets");
    ask(rows, targets);
    lf_pg_set_stop(&stop_flag);
    cr_assert_eq(pthread_create(&t, NULL, raise_later, NULL), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_expect_eq(lf_rewind_run(conn, "g", "t", rows, 5, true, 60000, NULL, NULL,
                               &changed, errstr, sizeof(errstr)),
                 LF_ERR_TEMPORARY);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_join(t, NULL);
    lf_pg_set_stop(NULL);
    cr_expect(strstr(errstr, "interrupted by a signal"), "%s", errstr);
    /* well before the 60 s timeout (the lock was never let go) */
    cr_expect_lt(t1.tv_sec - t0.tv_sec, 20);
    sql_ok(projector, "ROLLBACK");
    PQfinish(projector);
    cr_expect_str_eq(sql_value(conn, "SELECT next_offset FROM funnel.offsets"),
                     "50");
    /* and the connection serves the next command */
    cr_expect_str_eq(sql_value(conn, "SELECT 1"), "1");
    pg_down(conn, dir);
}
