/* leadflow-project: consume lead events from Kafka and keep the funnel model
 * in PostgreSQL, exactly once in effect: each batch, its derived state and
 * the offsets it consumed commit in one transaction, and on assignment the
 * consumer starts from the offsets stored there. */
#include "lf_cli.h"
#include "lf_conf.h"
#include "lf_fetchwake.h"
#include "lf_log.h"
#include "lf_metrics.h"
#include "lf_pg.h"
#include "lf_projector.h"

#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/*
 * Writers. Partitions are split over N lanes (partition % N); each lane has
 * its own PostgreSQL connection and writer thread, and two batches: the
 * main thread decodes messages into `fill` while the writer commits
 * `write`. So the server works on N transactions at once, and decoding
 * overlaps writing. Lanes never share a partition, so each keeps its
 * partitions' order and writes its own rows of funnel.offsets; a lead's
 * events share a partition (the key), and the lead locks of
 * lf_projector_flush() keep the rare lead that does not (a wrong key)
 * serialised, as between two projector instances.
 */
typedef struct lane_s {
    struct app_s *app;
    int index;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;  /* guards the fields below and the swap */
    pthread_cond_t cond;   /* busy, or quit, changed */
    lf_projector_t *fill;  /* the main thread's */
    lf_projector_t *write; /* the writer's while busy */
    bool busy;             /* write holds a batch being written */
    bool quit;
    atomic_bool give_up; /* revoke or stop: one attempt, then drop it */
    int64_t fill_start;  /* when fill got its first message (mono ms) */
    PGconn *conn;        /* the writer's */
} lane_t;

typedef struct app_s {
    lf_conf_t *conf;
    const char *conninfo;
    const char *topic;
    const char *group;
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt; /* held from the start, see main() */
    PGconn *conn;         /* the main thread's: migrations, offsets, probe */
    lf_projector_t *proj; /* the main thread's, for reading offsets */
    lane_t *lanes;
    int nlanes;
    int batch_max;
    int linger_ms;
    int assigned;        /* partitions currently assigned */
    int64_t assigned_at; /* when they were (monotonic ms) */
    atomic_uint_fast64_t pg_retries;
    pthread_mutex_t stats_lock;
    lf_projector_stats_t stats;  /* every lane's committed batches */
    lf_metrics_t *metrics;     /* NULL without --metrics */
    lf_fetchwake_t *fetchwake; /* NULL if it could not start */
} app_t;

static void usage(FILE *fp)
{
    fprintf(fp,
            "Usage: leadflow-project [options]\n"
            "Consume lead events and keep the funnel model (schema funnel) in "
            "PostgreSQL.\n"
            "\n"
            "  -b, --brokers LIST     bootstrap servers (default "
            "$LEADFLOW_BROKERS, then localhost:9092)\n"
            "  -t, --topic NAME       topic (default lead-events)\n"
            "  -g, --group ID         consumer group (default "
            "leadflow-projector)\n"
            "  -d, --db CONNINFO      libpq conninfo or URI (default: libpq's "
            "PG* environment)\n"
            "  -X key=value           a configuration property (librdkafka's "
            "or leadflow's);\n"
            "                         -X dump prints the effective "
            "configuration and exits\n"
            "  -c, --config FILE      key=value configuration file (# "
            "comments)\n"
            "      --batch N          events per transaction (default 10000; "
            "a batch also\n"
            "                         closes at 2500 distinct leads)\n"
            "      --linger MS        longest wait to fill a batch (default "
            "50)\n"
            "      --writers N        transactions in flight at once, each on "
            "its own\n"
            "                         connection and share of the partitions "
            "(default 2)\n"
            "      --idle-exit S      exit 0 once no message arrived for S "
            "seconds\n"
            "                         (counted from the partition "
            "assignment)\n"
            "      --migrate-only     apply the migrations and exit\n"
            "      --metrics ADDR:PORT\n"
            "                         serve Prometheus /metrics and /healthz "
            "(200 while\n"
            "                         assigned and PostgreSQL reachable, "
            "else 503), e.g.\n"
            "                         0.0.0.0:9464 (-X "
            "metrics.listen=ADDR:PORT)\n"
            "  -v, --verbose          more logging (repeatable)\n"
            "  -q, --quiet            less logging\n"
            "  -h, --help             this help\n"
            "  -V, --version          versions of leadflow and its libraries\n"
            "\n"
            "Secrets never go on the command line: put the password in "
            "~/.pgpass or PGPASSFILE,\nor in the -c file (chmod 600).\n"
            "Runs until SIGINT/SIGTERM: the current batch is committed or "
            "rolled back, then it exits 0.\n"
            "PostgreSQL unreachable or refusing a batch: the batch is retried "
            "with backoff, never skipped.\n"
            "Only eager assignment strategies (range, roundrobin) are "
            "supported.\n"
            "\n"
            "Exit codes: 0 done, 64 usage, 69 Kafka or PostgreSQL unusable "
            "at start,\n  70 internal error, 78 bad configuration.\n");
}

/* Sleep up to ms, in slices, unless asked to stop (or, with @p lane, to
 * give up its batch). */
static void nap(int ms, lane_t *lane)
{
    while (ms > 0 && !stop && !(lane && atomic_load(&lane->give_up))) {
        int s = ms < 100 ? ms : 100;
        struct timespec ts = {0, (long)s * 1000000L};
        nanosleep(&ts, NULL);
        ms -= s;
    }
}

/* (Re)connect *conn if needed; false when it failed (logged). */
static bool db_ready(app_t *app, PGconn **conn, lane_t *lane)
{
    char errstr[512];

    if (*conn && PQstatus(*conn) == CONNECTION_OK)
        return true;
    PQfinish(*conn);
    if (lane) {
        /* Both batches' staging tables were the old connection's. */
        pthread_mutex_lock(&lane->lock);
        lf_projector_conn_reset(lane->fill);
        lf_projector_conn_reset(lane->write);
        pthread_mutex_unlock(&lane->lock);
    }
    *conn = lf_pg_connect(app->conninfo, errstr, sizeof(errstr));
    lf_metrics_db(app->metrics, *conn != NULL);
    if (!*conn) {
        char q[600];
        LF_LOG(LF_LOG_WARNING,
               "msg=\"cannot reach PostgreSQL, will retry\" "
               "error=%s",
               lf_log_quote(errstr, q, sizeof(q)));
        return false;
    }
    return true;
}

static int backoff_ms(int attempt)
{
    int ms = 100 << (attempt < 7 ? attempt : 7);
    return ms > 10000 ? 10000 : ms;
}

static void stats_add(lf_projector_stats_t *to, const lf_projector_stats_t *now,
                      const lf_projector_stats_t *before)
{
    to->messages += now->messages - before->messages;
    to->events_new += now->events_new - before->events_new;
    to->duplicates += now->duplicates - before->duplicates;
    to->conflicts += now->conflicts - before->conflicts;
    to->dead_letters += now->dead_letters - before->dead_letters;
    to->anomalies += now->anomalies - before->anomalies;
    to->recomputed += now->recomputed - before->recomputed;
    to->batches += now->batches - before->batches;
    for (int t = 0; t < LF_EV__COUNT; t++)
        to->by_type[t] += now->by_type[t] - before->by_type[t];
}

static lf_projector_stats_t stats_snapshot(app_t *app)
{
    lf_projector_stats_t s;
    pthread_mutex_lock(&app->stats_lock);
    s = app->stats;
    pthread_mutex_unlock(&app->stats_lock);
    return s;
}

/* Write the lane's batch; retry with backoff until it commits, or, once
 * asked to give up (revoke, stop), after one attempt. Never skips: a
 * refused batch blocks its lane, and soon the stream, loudly. On the
 * writer thread. @returns whether it committed. */
static bool write_batch(lane_t *lane)
{
    app_t *app = lane->app;
    lf_projector_t *p = lane->write;
    char errstr[1024], q[1100];

    for (int attempt = 0; lf_projector_pending(p); attempt++) {
        if (attempt) {
            if (atomic_load(&lane->give_up) || stop)
                return false;
            atomic_fetch_add(&app->pg_retries, 1);
            nap(backoff_ms(attempt - 1), lane);
            if (atomic_load(&lane->give_up) || stop)
                return false;
        }
        if (!db_ready(app, &lane->conn, lane))
            continue;
        rd_kafka_topic_partition_list_t *committed = NULL;
        lf_projector_stats_t before = *lf_projector_stats(p);
        int64_t t0 = lf_now_mono_ms();
        lf_err_t err = lf_projector_flush(p, lane->conn, &committed, errstr,
                                          sizeof(errstr));
        if (err == LF_OK) {
            pthread_mutex_lock(&app->stats_lock);
            stats_add(&app->stats, lf_projector_stats(p), &before);
            lf_projector_stats_t total = app->stats;
            pthread_mutex_unlock(&app->stats_lock);
            lf_metrics_batch(
                app->metrics, &total, atomic_load(&app->pg_retries),
                (double)(lf_now_mono_ms() - t0) / 1000.0, committed);
            /* Kafka's committed offsets only serve lag tools; the truth is
             * funnel.offsets, already committed. */
            if (committed && committed->cnt)
                rd_kafka_commit(app->rk, committed, 1);
            if (committed)
                rd_kafka_topic_partition_list_destroy(committed);
            return true;
        }
        LF_LOG(LF_LOG_ERR,
               "msg=\"batch not written, will retry\" writer=%d attempt=%d "
               "transient=%s error=%s",
               lane->index, attempt + 1, err == LF_ERR_TEMPORARY ? "yes" : "no",
               lf_log_quote(errstr, q, sizeof(q)));
        lf_metrics_db(app->metrics, false);
        if (err == LF_ERR_TEMPORARY) {
            PQfinish(lane->conn);
            lane->conn = NULL;
        }
    }
    return true;
}

static void *writer_main(void *arg)
{
    lane_t *lane = arg;
    char name[16];

    snprintf(name, sizeof(name), "lf:writer%d", lane->index);
    pthread_setname_np(pthread_self(), name); /* for top -H, perf */

    pthread_mutex_lock(&lane->lock);
    for (;;) {
        while (!lane->busy && !lane->quit)
            pthread_cond_wait(&lane->cond, &lane->lock);
        if (!lane->busy)
            break;
        pthread_mutex_unlock(&lane->lock);
        if (!write_batch(lane)) {
            /* Rolled back: whoever owns the partitions next re-reads it
             * from funnel.offsets. */
            LF_LOG(LF_LOG_WARNING,
                   "msg=\"batch rolled back; it will be re-read\" "
                   "writer=%d messages=%zu",
                   lane->index, lf_projector_pending(lane->write));
            lf_projector_discard(lane->write);
        }
        pthread_mutex_lock(&lane->lock);
        lane->busy = false;
        pthread_cond_broadcast(&lane->cond);
    }
    pthread_mutex_unlock(&lane->lock);
    return NULL;
}

static size_t lanes_pending(app_t *app)
{
    size_t n = 0;
    for (int i = 0; i < app->nlanes; i++) {
        lane_t *l = &app->lanes[i];
        pthread_mutex_lock(&l->lock);
        n += lf_projector_pending(l->fill) + (l->busy ? 1 : 0);
        pthread_mutex_unlock(&l->lock);
    }
    return n;
}

/* Hand the lane's filled batch to its writer. @p wait: wait for the
 * writer to finish the one before (keeping /metrics fresh meanwhile);
 * else hand it over only if the writer is free. @returns whether it was
 * handed over. Main thread. */
static bool hand_over(app_t *app, lane_t *lane, bool wait)
{
    int64_t last_refresh = lf_now_mono_ms();
    bool done = false;

    if (!lf_projector_pending(lane->fill))
        return true;
    pthread_mutex_lock(&lane->lock);
    while (lane->busy && wait) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&lane->cond, &lane->lock, &ts);
        if (lane->busy && app->metrics &&
            lf_now_mono_ms() - last_refresh >= 2000) {
            /* Stuck behind a batch that does not commit: keep lag and
             * retries fresh. */
            pthread_mutex_unlock(&lane->lock);
            lf_projector_stats_t s = stats_snapshot(app);
            lf_metrics_refresh(app->metrics, app->rk, &s,
                               atomic_load(&app->pg_retries));
            last_refresh = lf_now_mono_ms();
            pthread_mutex_lock(&lane->lock);
        }
    }
    if (!lane->busy) {
        lf_projector_t *t = lane->write;
        lane->write = lane->fill;
        lane->fill = t;
        lane->busy = true;
        pthread_cond_broadcast(&lane->cond);
        done = true;
    }
    pthread_mutex_unlock(&lane->lock);
    return done;
}

/* Wait until the lane's writer is free. */
static void lane_wait(lane_t *lane)
{
    pthread_mutex_lock(&lane->lock);
    while (lane->busy)
        pthread_cond_wait(&lane->cond, &lane->lock);
    pthread_mutex_unlock(&lane->lock);
}

/* Write everything decoded so far and wait until it is committed. With
 * @p give_up (revoke, stop), each batch gets one attempt and is dropped
 * (to be re-read) if it fails. Main thread. */
static void lanes_drain(app_t *app, bool give_up)
{
    for (int i = 0; i < app->nlanes; i++)
        if (give_up)
            atomic_store(&app->lanes[i].give_up, true);
    for (int i = 0; i < app->nlanes; i++)
        hand_over(app, &app->lanes[i], true);
    for (int i = 0; i < app->nlanes; i++) {
        lane_wait(&app->lanes[i]);
        atomic_store(&app->lanes[i].give_up, false);
    }
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    app_t *app = opaque;
    char errstr[512], q[600];

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        /* Start where funnel.offsets says, never where Kafka's committed
         * offsets say: those may be ahead of what the database holds. */
        for (int attempt = 0;; attempt++) {
            if (stop) {
                rd_kafka_assign(rk, NULL);
                return;
            }
            if (db_ready(app, &app->conn, NULL)) {
                lf_err_t e = lf_projector_load_offsets(
                    app->proj, app->conn, parts, errstr, sizeof(errstr));
                if (!e)
                    break;
                LF_LOG(LF_LOG_ERR,
                       "msg=\"cannot read stored offsets, will retry\" "
                       "error=%s",
                       lf_log_quote(errstr, q, sizeof(q)));
                PQfinish(app->conn);
                app->conn = NULL;
            }
            atomic_fetch_add(&app->pg_retries, 1);
            nap(backoff_ms(attempt), NULL);
        }
        for (int i = 0; i < parts->cnt; i++)
            LF_LOG(LF_LOG_INFO, "msg=assigned topic=%s partition=%d offset=%s",
                   parts->elems[i].topic, (int)parts->elems[i].partition,
                   parts->elems[i].offset == RD_KAFKA_OFFSET_BEGINNING
                       ? "beginning"
                       : (snprintf(q, sizeof(q), "%lld",
                                   (long long)parts->elems[i].offset),
                          q));
        rd_kafka_assign(rk, parts);
        lf_metrics_assign(app->metrics, parts);
        app->assigned = parts->cnt;
        app->assigned_at = lf_now_mono_ms();
    } else {
        /* Eager revoke: every partition goes; whoever gets them next starts
         * from funnel.offsets. Commit what we hold if we can (less to
         * re-read), otherwise dropping it is safe. */
        lanes_drain(app, true);
        LF_LOG(LF_LOG_INFO, "msg=revoked partitions=%d", parts->cnt);
        rd_kafka_assign(rk, NULL);
        lf_metrics_assign(app->metrics, NULL);
        app->assigned = 0;
    }
}

static void log_stats(app_t *app, const char *msg)
{
    const lf_projector_stats_t s = stats_snapshot(app);
    LF_LOG(LF_LOG_INFO,
           "msg=\"%s\" messages=%llu events=%llu duplicates=%llu "
           "conflicts=%llu dead_letters=%llu anomalies=%llu recomputed=%llu "
           "batches=%llu pg_retries=%llu fetch_wakeups=%llu",
           msg, (unsigned long long)s.messages,
           (unsigned long long)s.events_new, (unsigned long long)s.duplicates,
           (unsigned long long)s.conflicts, (unsigned long long)s.dead_letters,
           (unsigned long long)s.anomalies, (unsigned long long)s.recomputed,
           (unsigned long long)s.batches,
           (unsigned long long)atomic_load(&app->pg_retries),
           (unsigned long long)lf_fetchwake_count(app->fetchwake));
}

/* The lanes and their writer threads. @returns false with errstr set. */
static bool lanes_new(app_t *app, int n, char *errstr, size_t errstr_size)
{
    if (!(app->lanes = calloc((size_t)n, sizeof(*app->lanes)))) {
        snprintf(errstr, errstr_size, "out of memory");
        return false;
    }
    for (int i = 0; i < n; i++) {
        lane_t *l = &app->lanes[i];
        l->app = app;
        l->index = i;
        pthread_mutex_init(&l->lock, NULL);
        pthread_cond_init(&l->cond, NULL);
        app->nlanes = i + 1; /* what lanes_free() tears down */
        atomic_init(&l->give_up, false);
        for (int k = 0; k < 2; k++) {
            lf_projector_t *p =
                lf_projector_new("funnel", app->group, errstr, errstr_size);
            if (!p)
                return false;
            *(k ? &l->write : &l->fill) = p;
            /* Messages are decoded on the main thread only. */
            lf_projector_share_registry(p, app->proj);
        }
        if (pthread_create(&l->thread, NULL, writer_main, l)) {
            snprintf(errstr, errstr_size, "cannot start a writer thread");
            return false;
        }
        l->started = true;
    }
    return true;
}

static void lanes_free(app_t *app)
{
    for (int i = 0; app->lanes && i < app->nlanes; i++) {
        lane_t *l = &app->lanes[i];
        if (l->started) {
            pthread_mutex_lock(&l->lock);
            l->quit = true;
            pthread_cond_broadcast(&l->cond);
            pthread_mutex_unlock(&l->lock);
            pthread_join(l->thread, NULL);
        }
        lf_projector_destroy(l->fill);
        lf_projector_destroy(l->write);
        PQfinish(l->conn);
        pthread_cond_destroy(&l->cond);
        pthread_mutex_destroy(&l->lock);
    }
    free(app->lanes);
    app->lanes = NULL;
}

static int setup_db(app_t *app, bool migrate_only)
{
    char errstr[1024], q[1100];
    int applied = 0;

    for (int attempt = 0; !stop; attempt++) {
        if (attempt)
            nap(backoff_ms(attempt - 1), NULL);
        if (!app->conn) {
            app->conn = lf_pg_connect(app->conninfo, errstr, sizeof(errstr));
            if (!app->conn) {
                LF_LOG(migrate_only ? LF_LOG_ERR : LF_LOG_WARNING,
                       "msg=\"cannot reach PostgreSQL%s\" error=%s",
                       migrate_only ? "" : ", will retry",
                       lf_log_quote(errstr, q, sizeof(q)));
                if (migrate_only)
                    return LF_EX_UNAVAILABLE;
                continue;
            }
        }
        if (lf_pg_migrate(app->conn, &applied, errstr, sizeof(errstr)) ==
            LF_OK) {
            LF_LOG(LF_LOG_INFO, "msg=\"schema ready\" migrations_applied=%d",
                   applied);
            return 0;
        }
        LF_LOG(LF_LOG_ERR, "msg=\"migrations failed\" error=%s",
               lf_log_quote(errstr, q, sizeof(q)));
        if (!lf_pg_is_transient(app->conn, NULL) || migrate_only)
            return LF_EX_UNAVAILABLE;
        PQfinish(app->conn);
        app->conn = NULL;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"brokers", required_argument, NULL, 'b'},
        {"topic", required_argument, NULL, 't'},
        {"group", required_argument, NULL, 'g'},
        {"db", required_argument, NULL, 'd'},
        {"config", required_argument, NULL, 'c'},
        {"batch", required_argument, NULL, 'B'},
        {"linger", required_argument, NULL, 'L'},
        {"writers", required_argument, NULL, 'W'},
        {"idle-exit", required_argument, NULL, 'I'},
        {"migrate-only", no_argument, NULL, 'M'},
        {"metrics", required_argument, NULL, 'P'},
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    /* 10000 per transaction: a lead's events within one batch cost one
     * upsert, not one per batch. Side by side (bench/run.py --compare-arg,
     * 5 rounds, 100k backlog) 10000 against 5000 gave 1.43x, 20000 against
     * 10000 another 1.13x but a peak RSS of 67 MiB (the target is 64): with
     * two writers four batches are alive at once. A slow stream still
     * flushes small batches as soon as the queue runs dry. */
    app_t app = {.batch_max = 10000, .linger_ms = 50};
    lf_cli_t cli;
    int opt, idle_exit = 0, writers = 2;
    bool migrate_only = false;
    char errstr[1024], q[1100];
    int rc = 0;

    lf_log_init("project");
    /* One malloc arena for all threads: each writer thread otherwise gets
     * its own, which keeps what its batches freed; the peak RSS of a 100k
     * backlog went from 57 to 74 MiB with two writers, and kept growing
     * over 1M events (82.6 MiB), against 62 MiB with one arena. The
     * writers spend their time waiting for PostgreSQL, not in malloc. */
    mallopt(M_ARENA_MAX, 1);
    /* Blocks of 128 KiB and more always from mmap, given back when freed.
     * By default glibc raises that threshold to the largest block freed so
     * far, so the COPY buffers a batch grows to several MiB (and shrinks
     * after, BUF_KEEP) come from the heap instead and leave it fragmented.
     * Side by side on a 100k backlog (bench/run.py --compare, 7 rounds):
     * peak RSS 41.9 -> 39.4 MiB (lower in every round), rate 1.00x. Setting
     * it also switches the raising off. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    pthread_mutex_init(&app.stats_lock, NULL);
    atomic_init(&app.pg_retries, 0);
    app.conf = lf_conf_new();
    if (!app.conf || lf_cli_init(&cli, argc)) {
        fprintf(stderr, "leadflow-project: out of memory\n");
        lf_conf_destroy(app.conf);
        return LF_EX_SOFTWARE;
    }
    while ((opt = getopt_long(argc, argv, "b:t:g:d:X:c:vqhV", opts, NULL)) !=
           -1) {
        char *end;
        switch (opt) {
        case 'b':
        case 't':
        case 'g':
        case 'd':
        case 'P': {
            static const char *keys[] = {['b'] = "bootstrap.servers",
                                         ['t'] = LF_CONF_TOPIC,
                                         ['g'] = "group.id",
                                         ['d'] = LF_CONF_DB,
                                         ['P'] = LF_CONF_METRICS};
            lf_cli_add(&cli, keys[opt], optarg);
            break;
        }
        case 'X':
            if (!lf_cli_x(&cli, optarg)) {
                fprintf(stderr,
                        "leadflow-project: -X \"%s\": expected key=value "
                        "or dump\n",
                        optarg);
                rc = LF_EX_USAGE;
                goto out;
            }
            break;
        case 'c':
            cli.config = optarg;
            break;
        case 'B':
            app.batch_max = (int)strtol(optarg, &end, 10);
            if (*end || app.batch_max < 1 || app.batch_max > 1000000) {
                fprintf(stderr,
                        "leadflow-project: --batch %s: expected "
                        "1..1000000\n",
                        optarg);
                usage(stderr);
                {
                    rc = LF_EX_USAGE;
                    goto out;
                }
            }
            break;
        case 'L':
            app.linger_ms = (int)strtol(optarg, &end, 10);
            if (*end || app.linger_ms < 0 || app.linger_ms > 60000) {
                fprintf(stderr,
                        "leadflow-project: --linger %s: expected "
                        "0..60000\n",
                        optarg);
                usage(stderr);
                {
                    rc = LF_EX_USAGE;
                    goto out;
                }
            }
            break;
        case 'W':
            writers = (int)strtol(optarg, &end, 10);
            if (*end || writers < 1 || writers > 64) {
                fprintf(stderr,
                        "leadflow-project: --writers %s: expected 1..64\n",
                        optarg);
                usage(stderr);
                rc = LF_EX_USAGE;
                goto out;
            }
            break;
        case 'I':
            idle_exit = (int)strtol(optarg, &end, 10);
            if (*end || idle_exit < 1) {
                fprintf(stderr,
                        "leadflow-project: --idle-exit %s: expected "
                        "a number of seconds >= 1\n",
                        optarg);
                usage(stderr);
                {
                    rc = LF_EX_USAGE;
                    goto out;
                }
            }
            break;
        case 'M':
            migrate_only = true;
            break;
        case 'v':
            lf_log_level++;
            break;
        case 'q':
            lf_log_level--;
            break;
        case 'h':
            usage(stdout);
            {
                rc = 0;
                goto out;
            }
        case 'V':
            lf_cli_version("leadflow-project");
            {
                rc = 0;
                goto out;
            }
        default:
            usage(stderr);
            {
                rc = LF_EX_USAGE;
                goto out;
            }
        }
    }
    if (optind < argc) {
        fprintf(stderr, "leadflow-project: unexpected argument \"%s\"\n",
                argv[optind]);
        usage(stderr);
        {
            rc = LF_EX_USAGE;
            goto out;
        }
    }
    if ((rc = lf_cli_apply(&cli, app.conf, errstr, sizeof(errstr)))) {
        fprintf(stderr, "leadflow-project: %s\n", errstr);
        goto out;
    }
    lf_conf_default(app.conf, "bootstrap.servers", "localhost:9092");
    lf_conf_default(app.conf, LF_CONF_TOPIC, LF_CONF_DEFAULT_TOPIC);
    lf_conf_default(app.conf, "group.id", "leadflow-projector");
    lf_conf_default(app.conf, "enable.auto.commit", "false");
    lf_conf_default(app.conf, "enable.auto.offset.store", "false");
    lf_conf_default(app.conf, "auto.offset.reset", "earliest");
    lf_conf_default(app.conf, "fetch.wait.max.ms", "100");
    /* librdkafka prefetches up to queued.min.messages (100000) messages,
     * ~90 MiB of RSS on a backlog of small events; with the high-level
     * consumer the threshold counts the one consumer queue. librdkafka 2.0
     * looks at a full queue again only about once a second unless woken,
     * which lf_fetchwake does: the queue then only has to cover a fetch's
     * round trip. 10000 against 40000 side by side: 1.02x the rate, peak
     * RSS 39.7 against 60.9 MiB (bench/run.py --compare-arg, 5 rounds);
     * 5000 against 10000, once decoding got ~6x cheaper: 1.00x the rate,
     * peak RSS 31.2 against 35.5 MiB (7 rounds). */
    lf_conf_default(app.conf, "queued.min.messages", "5000");
    lf_conf_default(app.conf, "queued.max.messages.kbytes", "16384");
    lf_conf_default(app.conf, LF_CONF_DB, "");
    if (cli.dump) {
        lf_conf_dump(app.conf, stdout);
        {
            rc = 0;
            goto out;
        }
    }
    app.topic = lf_conf_get(app.conf, LF_CONF_TOPIC);
    app.group = lf_conf_get(app.conf, "group.id");
    app.conninfo = lf_conf_get(app.conf, LF_CONF_DB);
    {
        const char *strategy =
            lf_conf_get(app.conf, "partition.assignment.strategy");
        if (strategy && strstr(strategy, "cooperative")) {
            fprintf(stderr,
                    "leadflow-project: partition.assignment.strategy=%s: only "
                    "eager strategies (range, roundrobin) are supported\n",
                    strategy);
            {
                rc = LF_EX_CONFIG;
                goto out;
            }
        }
    }

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    app.proj = lf_projector_new("funnel", app.group, errstr, sizeof(errstr));
    if (!app.proj ||
        lf_projector_use_registry(app.proj, app.conf, errstr, sizeof(errstr))) {
        fprintf(stderr, "leadflow-project: %s\n", errstr);
        {
            rc = app.proj ? LF_EX_CONFIG : LF_EX_SOFTWARE;
            goto out;
        }
    }
    {
        /* Before the database: /healthz answers 503 while it is awaited. */
        const char *listen = lf_conf_get(app.conf, LF_CONF_METRICS);
        if (listen && *listen && !migrate_only) {
            lf_err_t e =
                lf_metrics_new(listen, &app.metrics, errstr, sizeof(errstr));
            if (e) {
                fprintf(stderr, "leadflow-project: %s\n", errstr);
                rc = e == LF_ERR_INVALID ? LF_EX_CONFIG : LF_EX_UNAVAILABLE;
                goto out;
            }
            LF_LOG(LF_LOG_INFO, "msg=\"serving metrics\" listen=%s port=%d",
                   listen, lf_metrics_port(app.metrics));
        }
    }
    if ((rc = setup_db(&app, migrate_only)) || migrate_only || stop)
        goto out;
    if (!lanes_new(&app, writers, errstr, sizeof(errstr))) {
        fprintf(stderr, "leadflow-project: %s\n", errstr);
        rc = LF_EX_SOFTWARE;
        goto out;
    }
    lf_metrics_db(app.metrics, true);

    rd_kafka_conf_t *rkc = lf_conf_to_rdkafka(app.conf, errstr, sizeof(errstr));
    if (!rkc) {
        fprintf(stderr, "leadflow-project: %s\n", errstr);
        rc = LF_EX_CONFIG;
        goto out;
    }
    rd_kafka_conf_set_rebalance_cb(rkc, on_rebalance);
    rd_kafka_conf_set_opaque(rkc, &app);
    app.rk = rd_kafka_new(RD_KAFKA_CONSUMER, rkc, errstr, sizeof(errstr));
    if (!app.rk) {
        rd_kafka_conf_destroy(rkc);
        fprintf(stderr, "leadflow-project: %s\n", errstr);
        rc = LF_EX_CONFIG;
        goto out;
    }
    rd_kafka_poll_set_consumer(app.rk);
    app.fetchwake = lf_fetchwake_new(app.rk);
    if (!app.fetchwake)
        LF_LOG(LF_LOG_WARNING, "msg=\"fetch wake-ups unavailable: out of "
                               "memory or threads; a drained queue may wait "
                               "up to a second for the next fetch\"");
    {
        rd_kafka_topic_partition_list_t *sub =
            rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(sub, app.topic,
                                          RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t e = rd_kafka_subscribe(app.rk, sub);
        rd_kafka_topic_partition_list_destroy(sub);
        if (e) {
            fprintf(stderr, "leadflow-project: subscribe to %s: %s\n",
                    app.topic, rd_kafka_err2str(e));
            rc = LF_EX_UNAVAILABLE;
            goto out;
        }
    }
    /* Hold the topic from the start. A subscribing consumer otherwise
     * makes its partitions only when they are assigned, and librdkafka
     * resets a "beginning" offset as each partition appears, before the
     * same metadata has named its leader: the partitions it meets first
     * wait for a 500 ms retry timer (a fresh projector wrote nothing for
     * its first half second, a third of a 100k drain). Made now, they have
     * their leaders long before the group assigns them. */
    if (app.topic[0] != '^' && !(app.rkt = rd_kafka_topic_new(app.rk, app.topic,
                                                           NULL)))
        LF_LOG(LF_LOG_DEBUG, "msg=\"topic handle not made early\" error=%s",
               rd_kafka_err2str(rd_kafka_last_error()));
    LF_LOG(LF_LOG_INFO, "msg=started topic=%s group=%s batch=%d writers=%d",
           app.topic, app.group, app.batch_max, app.nlanes);

    int64_t last_msg = lf_now_mono_ms(), last_stats = lf_now_mono_ms(),
            last_probe = 0;
    unsigned polled = 0;
    while (!stop) {
        size_t pending = 0;
        bool waiting = false; /* a batch is due but its writer is busy */
        for (int i = 0; i < app.nlanes; i++)
            pending += lf_projector_pending(app.lanes[i].fill);
        rd_kafka_message_t *rkm =
            rd_kafka_consumer_poll(app.rk, pending ? 0 : 100);
        int64_t now = lf_now_mono_ms();
        if (!rkm || !(++polled & 63))
            lf_fetchwake_check(app.fetchwake);

        if (rkm) {
            if (rkm->err) {
                if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    LF_LOG(LF_LOG_WARNING, "msg=\"consumer error\" error=%s",
                           lf_log_quote(rd_kafka_message_errstr(rkm), q,
                                        sizeof(q)));
            } else {
                lane_t *lane = &app.lanes[rkm->partition % app.nlanes];
                lf_err_t aerr;
                /* A full batch waits for its writer: the stream slows to
                 * what PostgreSQL takes. */
                if (lf_projector_full(lane->fill, (size_t)app.batch_max))
                    hand_over(&app, lane, true);
                if (!lf_projector_pending(lane->fill))
                    lane->fill_start = now;
                /* Schema registry unreachable: the message is held (not
                 * added, not dead-lettered); write what came before it and
                 * offer it again with backoff until it is in or we stop. */
                for (int attempt = 0;
                     (aerr = lf_projector_add_message(lane->fill, rkm)) ==
                         LF_ERR_TEMPORARY &&
                     !stop;
                     attempt++) {
                    lanes_drain(&app, false);
                    nap(backoff_ms(attempt), NULL);
                }
                if (aerr && aerr != LF_ERR_TEMPORARY) {
                    LF_LOG(LF_LOG_CRIT, "msg=\"out of memory\"");
                    rd_kafka_message_destroy(rkm);
                    rc = LF_EX_SOFTWARE;
                    break;
                }
                last_msg = now;
            }
            rd_kafka_message_destroy(rkm);
        }
        /* Write a batch when it is full, old enough, or the queue ran
         * dry: small batches at low rates keep latency low, big ones at
         * high rates keep throughput high. One whose writer is still busy
         * keeps filling meanwhile. */
        for (int i = 0; i < app.nlanes; i++) {
            lane_t *lane = &app.lanes[i];
            size_t n = lf_projector_pending(lane->fill);
            if (n &&
                (lf_projector_full(lane->fill, (size_t)app.batch_max) || !rkm ||
                 now - lane->fill_start >= app.linger_ms) &&
                !hand_over(&app, lane, false))
                waiting = true;
        }
        if (waiting && !rkm) {
            /* Nothing to read, a batch due: do not spin. */
            struct timespec ts = {0, 2 * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (app.metrics && now - last_probe >= 2000) {
            /* Keep /metrics fresh; while idle, notice a lost database
             * without a query (a closed socket is read as such) and
             * reconnect, so /healthz follows it. */
            if (!lanes_pending(&app)) {
                if (app.conn)
                    PQconsumeInput(app.conn);
                lf_metrics_db(app.metrics, db_ready(&app, &app.conn, NULL));
            }
            lf_projector_stats_t s = stats_snapshot(&app);
            lf_metrics_refresh(app.metrics, app.rk, &s,
                               atomic_load(&app.pg_retries));
            last_probe = now;
        }
        if (now - last_stats >= 10000) {
            log_stats(&app, "progress");
            last_stats = now;
        }
        /* Idle counts from the last message or the last assignment, so
         * a slow group join is not mistaken for an empty topic. */
        if (idle_exit && app.assigned && !lanes_pending(&app) &&
            now - (last_msg > app.assigned_at ? last_msg : app.assigned_at) >=
                (int64_t)idle_exit * 1000) {
            LF_LOG(LF_LOG_INFO, "msg=\"idle, exiting\" idle_s=%d", idle_exit);
            break;
        }
    }
    /* Finish the batches in hand (once; if the database is away, they are
     * rolled back and re-read next time), then leave the group. */
    lanes_drain(&app, true);
    log_stats(&app, "stopped");
    lf_fetchwake_destroy(app.fetchwake);
    app.fetchwake = NULL;
    rd_kafka_consumer_close(app.rk);

out:
    if (app.rkt)
        rd_kafka_topic_destroy(app.rkt);
    lf_fetchwake_destroy(app.fetchwake);
    lanes_free(&app);
    lf_metrics_destroy(app.metrics);
    if (app.rk)
        rd_kafka_destroy(app.rk);
    lf_projector_destroy(app.proj);
    PQfinish(app.conn);
    lf_conf_destroy(app.conf);
    lf_cli_free(&cli);
    return rc;
}
