/* test_lanes.c: the writer lanes against a throwaway PostgreSQL
 * (tools/pg-throwaway.sh): batches handed to the lanes commit, each
 * partition's batches commit in order, a failing database makes a batch
 * retry and never skip, and a database that is not where the lanes
 * believed (stored offsets moved back, a connection lost) stops them until
 * the caller re-reads the stored offsets. */
#include "lf_codec.h"
#include "lf_json.h"
#include "lf_lanes.h"
#include "lf_pg.h"
#include "lf_test_pg.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOPIC "t"
#define GROUP "g"
#define NPART 4

static volatile sig_atomic_t stop_writers;

/* ---- a throwaway PostgreSQL (lf_test_pg.h) --------------------------- */

static char pgdir[512];

static PGconn *db_up(void)
{
    return pg_up_migrated(pgdir, sizeof(pgdir));
}

static void db_down(PGconn *conn)
{
    pg_down(conn, pgdir);
}

static long long one_int(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    long long v;
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s: %s", sql,
                 PQresultErrorMessage(res));
    v = PQntuples(res) ? atoll(PQgetvalue(res, 0, 0)) : -1;
    PQclear(res);
    return v;
}

static long long stored(PGconn *conn, int partition)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT next_offset FROM funnel.offsets WHERE group_id = '" GROUP
             "' AND topic = '" TOPIC "' AND partition = %d",
             partition);
    return one_int(conn, sql);
}

/* ---- messages ------------------------------------------------------- */

static rd_kafka_t *rk;
static rd_kafka_topic_t *rkt;
static lf_codec_t *codec;

static void kafka_up(void)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    cr_assert_not_null(
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr)),
        "%s", errstr);
    cr_assert_not_null(rkt = rd_kafka_topic_new(rk, TOPIC, NULL));
    cr_assert_not_null(codec = lf_codec_new(errstr, sizeof(errstr)));
}

static void kafka_down(void)
{
    lf_codec_destroy(codec);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
}

/* The event of @p partition at @p offset (one lead each) into the lanes,
 * as the consumer would hand it over. */
static void add(lf_lanes_t *w, int partition, int64_t offset)
{
    char json[256], key[48], errstr[512];
    lf_event_t ev;
    lf_buf_t value = {0};
    rd_kafka_message_t rkm;

    snprintf(key, sizeof(key), "L-%d-%lld", partition, (long long)offset);
    snprintf(json, sizeof(json),
             "{\"lead_id\":\"%s\",\"type\":\"captured\",\"occurred_at\":"
             "\"2026-01-01T00:00:00Z\",\"source\":\"t\",\"channel\":\"web\"}",
             key);
    lf_event_init(&ev);
    cr_assert_eq(
        lf_json_parse_event(json, strlen(json), &ev, errstr, sizeof(errstr)),
        LF_OK, "%s", errstr);
    cr_assert_eq(lf_codec_encode(codec, &ev, LF_SCHEMA_ID_V2, &value, errstr,
                                 sizeof(errstr)),
                 LF_OK, "%s", errstr);
    memset(&rkm, 0, sizeof(rkm));
    rkm.rkt = rkt;
    rkm.partition = partition;
    rkm.offset = offset;
    rkm.payload = value.data;
    rkm.len = value.len;
    rkm.key = key;
    rkm.key_len = strlen(key);
    cr_assert_eq(lf_lanes_add(w, &rkm), LF_OK);
    lf_event_clear(&ev);
    lf_buf_free(&value);
}

/* ---- what the writers report ----------------------------------------- */

static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t last_next[NPART]; /* the last committed next offset */
static int out_of_order;         /* commits that went backwards */
static int commits;

static void on_committed(void *opaque, const lf_projector_stats_t *total,
                         uint64_t retries, double seconds,
                         const rd_kafka_topic_partition_list_t *committed)
{
    (void)opaque, (void)total, (void)retries, (void)seconds;
    pthread_mutex_lock(&seen_lock);
    for (int i = 0; i < committed->cnt; i++) {
        int p = committed->elems[i].partition;
        if (committed->elems[i].offset <= last_next[p])
            out_of_order++;
        last_next[p] = committed->elems[i].offset;
    }
    commits++;
    pthread_mutex_unlock(&seen_lock);
}

static lf_lanes_t *lanes_up(int n, int batch_max)
{
    char errstr[512];
    lf_lanes_conf_t conf = {
        .n = n,
        .batch_max = batch_max,
        .linger_ms = 0,
        .conninfo = "", /* the PG* environment of db_up() */
        .schema = "funnel",
        .group = GROUP,
        .stop = &stop_writers,
        .hooks = {.committed = on_committed},
    };
    lf_lanes_t *w = lf_lanes_new(&conf, errstr, sizeof(errstr));
    cr_assert_not_null(w, "%s", errstr);
    memset(last_next, 0, sizeof(last_next));
    out_of_order = commits = 0;
    return w;
}

/* Assign the NPART partitions from what funnel.offsets holds. */
static void assign_stored(lf_lanes_t *w, PGconn *conn)
{
    char errstr[512];
    rd_kafka_topic_partition_list_t *parts =
        rd_kafka_topic_partition_list_new(NPART);
    lf_projector_t *p =
        lf_projector_new("funnel", GROUP, errstr, sizeof(errstr));

    for (int i = 0; i < NPART; i++)
        rd_kafka_topic_partition_list_add(parts, TOPIC, i);
    cr_assert_eq(
        lf_projector_load_offsets(p, conn, parts, errstr, sizeof(errstr)),
        LF_OK, "%s", errstr);
    cr_assert_eq(lf_lanes_assign(w, parts), LF_OK);
    lf_projector_destroy(p);
    rd_kafka_topic_partition_list_destroy(parts);
}

static void sleep_ms(int ms)
{
    nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
}

static void lanes_down(lf_lanes_t *w)
{
    stop_writers = 1;
    lf_lanes_destroy(w);
    stop_writers = 0;
}

/* ---- the tests ------------------------------------------------------- */

Test(lanes, batches_commit_in_partition_order, .timeout = 120)
{
    PGconn *conn = db_up();
    lf_lanes_t *w;

    kafka_up();
    w = lanes_up(2, 7);
    assign_stored(w, conn);
    /* Partitions interleaved, as a consumer sees them; handed over as
     * they fill, so batches of one lane overlap with the other's. */
    for (int64_t off = 0; off < 50; off++) {
        for (int p = 0; p < NPART; p++)
            add(w, p, off);
        lf_lanes_tick(w, off % 5 == 0);
    }
    lf_lanes_drain(w, false);
    cr_assert_not(lf_lanes_stale(w), "a batch was refused by the fence");
    cr_expect_eq(lf_lanes_pending(w), 0);
    for (int p = 0; p < NPART; p++)
        cr_expect_eq(stored(conn, p), 50, "partition %d", p);
    cr_expect_eq(one_int(conn, "SELECT count(*) FROM funnel.events"),
                 NPART * 50);
    cr_expect_eq(one_int(conn, "SELECT count(*) FROM funnel.leads"),
                 NPART * 50);
    cr_expect_gt(commits, NPART * 2,
                 "only %d commits: batches too big to "
                 "show an order",
                 commits);
    cr_expect_eq(out_of_order, 0, "a partition's commits went backwards");
    cr_expect_eq(lf_lanes_stats(w).messages, NPART * 50);
    cr_expect_eq(lf_lanes_retries(w), 0);
    lanes_down(w);
    kafka_down();
    db_down(conn);
}

Test(lanes, failing_database_retries_never_skips, .timeout = 120)
{
    PGconn *conn = db_up();
    lf_lanes_t *w;

    kafka_up();
    w = lanes_up(1, 100);
    assign_stored(w, conn);
    for (int64_t off = 0; off < 10; off++)
        add(w, 0, off);
    lf_lanes_drain(w, false);
    cr_assert_eq(stored(conn, 0), 10);

    /* The database refuses every new event: the batch is retried with
     * backoff, its lane blocks, nothing is stored. */
    sql_ok(conn, "ALTER TABLE funnel.events ADD CONSTRAINT lf_test_refuse "
                 "CHECK (false) NOT VALID");
    for (int64_t off = 10; off < 20; off++)
        add(w, 0, off);
    lf_lanes_tick(w, true);
    for (int i = 0; i < 100 && lf_lanes_retries(w) < 2; i++)
        sleep_ms(100);
    cr_assert_geq(lf_lanes_retries(w), 2, "no retry while refused");
    cr_expect_gt(lf_lanes_pending(w), 0, "the refused batch was dropped");
    cr_expect_eq(stored(conn, 0), 10, "offsets moved past a refused batch");
    cr_expect_eq(one_int(conn, "SELECT count(*) FROM funnel.events"), 10);

    /* The database takes it again: the same batch commits, whole. */
    sql_ok(conn, "ALTER TABLE funnel.events DROP CONSTRAINT lf_test_refuse");
    lf_lanes_drain(w, false);
    cr_assert_not(lf_lanes_stale(w));
    cr_expect_eq(stored(conn, 0), 20);
    cr_expect_eq(one_int(conn, "SELECT count(*) FROM funnel.events"), 20);
    lanes_down(w);
    kafka_down();
    db_down(conn);
}

Test(lanes, stored_offsets_moved_back_stop_the_lanes, .timeout = 120)
{
    PGconn *conn = db_up();
    lf_lanes_t *w;

    kafka_up();
    w = lanes_up(2, 1000);
    assign_stored(w, conn);
    for (int64_t off = 0; off < 30; off++)
        add(w, 1, off);
    lf_lanes_drain(w, false);
    cr_assert_eq(stored(conn, 1), 30);

    /* A database that lost the last commits (a failover to a standby that
     * missed them): it says 20, the lanes believe 30. Their next batch is
     * refused, whole, and the lanes stay stale until reset. */
    sql_ok(conn, "DELETE FROM funnel.events WHERE \"offset\" >= 20");
    sql_ok(conn, "UPDATE funnel.offsets SET next_offset = 20");
    for (int64_t off = 30; off < 40; off++)
        add(w, 1, off);
    lf_lanes_drain(w, false);
    cr_assert(lf_lanes_stale(w), "a batch past a gap was not refused");
    cr_expect_eq(stored(conn, 1), 20);
    cr_expect_eq(one_int(conn, "SELECT count(*) FROM funnel.events"), 20);
    add(w, 1, 40); /* decoded meanwhile: dropped by the reset */
    lf_lanes_reset(w);
    cr_assert_not(lf_lanes_stale(w));
    cr_expect_eq(lf_lanes_pending(w), 0);

    /* Re-read and consumed again from the stored offset: exact. */
    assign_stored(w, conn);
    for (int64_t off = 20; off < 40; off++)
        add(w, 1, off);
    lf_lanes_drain(w, false);
    cr_assert_not(lf_lanes_stale(w));
    cr_expect_eq(stored(conn, 1), 40);
    cr_expect_eq(one_int(conn, "SELECT count(*) FROM funnel.events"), 40);
    lanes_down(w);
    kafka_down();
    db_down(conn);
}

Test(lanes, a_new_connection_makes_them_stale, .timeout = 120)
{
    PGconn *conn = db_up();
    lf_lanes_t *w;

    kafka_up();
    w = lanes_up(1, 1000);
    assign_stored(w, conn);
    for (int64_t off = 0; off < 5; off++)
        add(w, 2, off);
    lf_lanes_drain(w, false);
    cr_assert_eq(stored(conn, 2), 5);

    /* The writer's connection dies (as in a failover): the batch in hand
     * is not written on the new connection, which may reach a server that
     * lacks what the old one acknowledged. */
    sql_ok(conn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE pid <> pg_backend_pid() AND datname = "
                 "current_database()");
    for (int64_t off = 5; off < 10; off++)
        add(w, 2, off);
    lf_lanes_drain(w, false);
    cr_assert(lf_lanes_stale(w), "a new connection was trusted");
    cr_expect_eq(stored(conn, 2), 5);
    lf_lanes_reset(w);
    assign_stored(w, conn);
    for (int64_t off = 5; off < 10; off++)
        add(w, 2, off);
    lf_lanes_drain(w, false);
    cr_assert_not(lf_lanes_stale(w));
    cr_expect_eq(stored(conn, 2), 10);
    lanes_down(w);
    kafka_down();
    db_down(conn);
}
