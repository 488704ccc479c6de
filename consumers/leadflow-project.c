/* leadflow-project: consume lead events from Kafka and keep the funnel model
 * in PostgreSQL, exactly once in effect: each batch, its derived state and
 * the offsets it consumed commit in one transaction, and on assignment (and
 * after any doubt about the database, such as a failover) the consumer
 * starts from the offsets stored there. The batches are written by the
 * writer lanes of lf_lanes.h. */
#include "lf_cli.h"
#include "lf_conf.h"
#include "lf_definition.h"
#include "lf_defstore.h"
#include "lf_fetchwake.h"
#include "lf_lanes.h"
#include "lf_log.h"
#include "lf_metrics.h"
#include "lf_pg.h"
#include "lf_projector.h"

#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What the command line asks for. */
typedef struct project_cfg_s {
    int batch_max; /* --batch: BENCHMARKS.md, "Batch size" */
    int linger_ms;
    int writers;
    int idle_exit; /* seconds, 0: never */
    bool migrate_only;
    lf_cli_t *cli; /* --metrics is a setting, in command-line order */
} project_cfg_t;

/* The running projector. Main thread, except what the lanes' hooks use
 * (metrics and rk, both thread-safe). */
typedef struct app_s {
    const project_cfg_t *cfg;
    lf_conf_t *conf;
    const char *conninfo, *topic, *group;
    rd_kafka_conf_t *rkc; /* check_settings() to start_kafka() */
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt; /* held from the start, see start_kafka() */
    PGconn *conn;          /* migrations, stored offsets, the idle probe */
    unsigned conns;        /* connections conn was opened with */
    bool doubt; /* conn is new: the stored offsets may have moved back */
    lf_projector_t *proj; /* reads offsets; owns the registry client */
    lf_lanes_t *lanes;
    lf_definition_t *def;      /* -X funnel.definition; NULL: the default */
    lf_pseudonym_t *ps;        /* pseudonym.key.file; NULL: none */
    int assigned;              /* partitions currently assigned */
    int64_t assigned_at;       /* when they were (monotonic ms) */
    lf_metrics_t *metrics;     /* NULL without --metrics */
    lf_fetchwake_t *fetchwake; /* NULL if it could not start */
} app_t;

/* ---- the command line ---------------------------------------------- */

enum {
    OPT_BATCH = 256,
    OPT_LINGER,
    OPT_WRITERS,
    OPT_IDLE_EXIT,
    OPT_MIGRATE_ONLY,
    OPT_METRICS
};

/* @p arg as an int in lo..hi into *out; false when it is not one. */
static bool int_arg(const char *arg, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(arg, &end, 10);

    if (!*arg || *end || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

static lf_err_t own_opt(void *arg, int opt, const char *val, char *errstr,
                        size_t errstr_size)
{
    project_cfg_t *cfg = arg;

    switch (opt) {
    case OPT_BATCH:
        if (!int_arg(val, 1, 1000000, &cfg->batch_max))
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "--batch %s: expected 1..1000000", val);
        return LF_OK;
    case OPT_LINGER:
        if (!int_arg(val, 0, 60000, &cfg->linger_ms))
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "--linger %s: expected 0..60000", val);
        return LF_OK;
    case OPT_WRITERS:
        if (!int_arg(val, 1, 64, &cfg->writers))
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "--writers %s: expected 1..64", val);
        return LF_OK;
    case OPT_IDLE_EXIT:
        if (!int_arg(val, 1, 1000000000, &cfg->idle_exit))
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "--idle-exit %s: expected a number of seconds "
                             ">= 1",
                             val);
        return LF_OK;
    case OPT_MIGRATE_ONLY:
        cfg->migrate_only = true;
        return LF_OK;
    default: /* OPT_METRICS */
        lf_cli_add(cfg->cli, LF_CONF_METRICS, val);
        return LF_OK;
    }
}

static const struct option longopts[] = {
    {"batch", required_argument, NULL, OPT_BATCH},
    {"linger", required_argument, NULL, OPT_LINGER},
    {"writers", required_argument, NULL, OPT_WRITERS},
    {"idle-exit", required_argument, NULL, OPT_IDLE_EXIT},
    {"migrate-only", no_argument, NULL, OPT_MIGRATE_ONLY},
    {"metrics", required_argument, NULL, OPT_METRICS},
    {NULL, 0, NULL, 0}};

static const lf_cli_spec_t spec = {
    .prog = "leadflow-project",
    .synopsis = "leadflow-project [options]\n"
                "Consume lead events and keep the funnel model (schema "
                "funnel) in PostgreSQL.",
    .shared = LF_CLI_BROKERS | LF_CLI_TOPIC | LF_CLI_GROUP | LF_CLI_DB |
              LF_CLI_CONF | LF_CLI_VERBOSE,
    .own_help =
        "      --batch N          events per transaction (default 10000; "
        "a batch also\n"
        "                         closes at 2500 distinct leads)\n"
        "      --linger MS        longest wait to fill a batch, 0..60000 "
        "(default 50)\n"
        "      --writers N        transactions in flight at once, each on "
        "its own\n"
        "                         connection and share of the partitions "
        "(default 2)\n"
        "      --idle-exit S      exit 0 once no message arrived for S "
        "seconds\n"
        "                         (counted from the partition assignment;\n"
        "                         never while PostgreSQL is away)\n"
        "      --migrate-only     apply the migrations and exit\n"
        "      --metrics ADDR:PORT\n"
        "                         serve Prometheus /metrics and /healthz "
        "(200 while\n"
        "                         assigned and PostgreSQL reachable, else "
        "503), e.g.\n"
        "                         0.0.0.0:9464 (-X metrics.listen=ADDR:PORT)\n",
    .notes = "Secrets never go on the command line: put the password in "
             "~/.pgpass or PGPASSFILE,\nor in the -c file (chmod 600).\n"
             "Runs until SIGINT/SIGTERM: the current batch is committed or "
             "rolled back, then it exits 0.\n"
             "PostgreSQL unreachable or refusing a batch: the batch is retried "
             "with backoff, never skipped.\n"
             "After a new database connection (a failover) it resumes from the "
             "offsets stored there.\n"
             "Only eager assignment strategies (range, roundrobin) are "
             "supported.\n"
             "-X funnel.definition=FILE projects under the funnel rules in "
             "FILE (default: the\n"
             "  embedded schemas/funnel/default.json). The database records "
             "the definition\n"
             "  its tables were built with (funnel.definition); under another "
             "one this exits 78\n"
             "  and says how to adopt it (rebuild, diff --summary, promote: "
             "docs/definition.md).\n"
             "-X pseudonym.key.file=FILE erases people with the keys in FILE "
             "(mode 0600, one hex\n"
             "  key of 32+ bytes per line, the first current): erased events "
             "need it, and once\n"
             "  people are erased every start does (docs/security.md). Never "
             "-X pseudonym.key.\n"
             "\n"
             "Exit codes: 0 done, 64 usage, 69 --migrate-only without "
             "PostgreSQL, or the\n  metrics address cannot be bound (an "
             "unreachable Kafka or PostgreSQL is\n  otherwise waited for), "
             "70 internal error, 77 PostgreSQL refuses this role a\n  "
             "privilege the start needs: its grant, or the migrations the "
             "database\n  lacks (at once with --migrate-only, else after "
             "30 s),\n  78 bad configuration (a bad definition file, or one "
             "other than the\n  tables'; an erasure without a pseudonym "
             "key).\n",
    .longopts = longopts,
    .own = own_opt,
    .max_args = 0,
};

/* Fill @p cfg and @p cli from argv. */
static lf_cli_next_t parse(int argc, char **argv, lf_cli_t *cli,
                           project_cfg_t *cfg)
{
    cfg->cli = cli;
    return lf_cli_parse(cli, &spec, cfg, argc, argv);
}

/* The settings: -X and the shared options over -c FILE over the
 * environment, then the projector's defaults. @returns an exit code, 0 to
 * go on (*conf is the caller's to lf_conf_destroy() either way). */
static int settings(const lf_cli_t *cli, lf_conf_t **conf)
{
    char errstr[1024];
    lf_err_t err;

    if (!(*conf = lf_conf_new())) {
        fprintf(stderr, "leadflow-project: out of memory\n");
        return LF_EX_SOFTWARE;
    }
    if ((err = lf_cli_conf(cli, *conf, errstr, sizeof(errstr))))
        return lf_cli_conf_failed(cli, err, errstr);
    lf_conf_default(*conf, "bootstrap.servers", "localhost:9092");
    lf_conf_default(*conf, LF_CONF_TOPIC, LF_CONF_DEFAULT_TOPIC);
    lf_conf_default(*conf, "group.id", "leadflow-projector");
    lf_conf_default(*conf, "enable.auto.commit", "false");
    lf_conf_default(*conf, "enable.auto.offset.store", "false");
    lf_conf_default(*conf, "auto.offset.reset", "earliest");
    lf_conf_default(*conf, "fetch.wait.max.ms", "100");
    /* Bounds the prefetched messages (RSS): BENCHMARKS.md, "The consumer
     * queue". */
    lf_conf_default(*conf, "queued.min.messages", "5000");
    lf_conf_default(*conf, "queued.max.messages.kbytes", "16384");
    lf_conf_default(*conf, LF_CONF_DB, "");
    return 0;
}

/* glibc's allocator for a process of short-lived batches: BENCHMARKS.md,
 * "One malloc arena" and "The mmap threshold". */
static void tune_malloc(void)
{
    mallopt(M_ARENA_MAX, 1);
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
}

/* ---- the database, from the main thread ---------------------------- */

/* Sleep up to ms, in slices, unless a signal came. */
static void nap(int ms)
{
    while (ms > 0 && !lf_cli_signals) {
        int s = ms < 100 ? ms : 100;
        struct timespec ts = {0, (long)s * 1000000L};
        nanosleep(&ts, NULL);
        ms -= s;
    }
}

/* The main connection is lost: say so. The server reached next may be a
 * standby that lost commits, so the positions are in doubt: with
 * --metrics the probe reconnects (db_ready() puts them in doubt then, and
 * /metrics stays fresh meanwhile); without it, now (resync() waits in
 * load_offsets() for a server and reads them from it). */
static void lost_db(app_t *app)
{
    LF_LOG(LF_LOG_WARNING, "msg=\"lost the connection to PostgreSQL while "
                           "idle, will retry and resume from the stored "
                           "offsets\"");
    PQfinish(app->conn);
    app->conn = NULL;
    if (!app->metrics)
        app->doubt = true;
}

/* (Re)connect the main connection if needed; false when it failed
 * (logged). A new one after the first may reach another server (a
 * failover): the positions in memory are then in doubt, as after a new
 * connection of a lane. */
static bool db_ready(app_t *app)
{
    char errstr[512], q[600];

    if (app->conn && PQstatus(app->conn) == CONNECTION_OK)
        return true;
    if (app->conn)
        lost_db(app);
    app->conn = lf_pg_connect(app->conninfo, errstr, sizeof(errstr));
    lf_metrics_db(app->metrics, app->conn != NULL);
    if (!app->conn) {
        LF_LOG(LF_LOG_WARNING,
               "msg=\"cannot reach PostgreSQL, will retry\" "
               "error=%s",
               lf_log_quote(errstr, q, sizeof(q)));
        return false;
    }
    app->doubt = app->conns++ > 0;
    return true;
}

/* The stored next offsets of @p parts (RD_KAFKA_OFFSET_BEGINNING where
 * none is stored), retried with backoff until read. @returns false when a
 * signal came first. */
static bool load_offsets(app_t *app, rd_kafka_topic_partition_list_t *parts)
{
    char errstr[512], q[600];

    for (int attempt = 0;; attempt++) {
        if (lf_cli_signals)
            return false;
        if (db_ready(app)) {
            if (!lf_projector_load_offsets(app->proj, app->conn, parts, errstr,
                                           sizeof(errstr))) {
                app->doubt = false; /* read from the server reached now */
                return true;
            }
            LF_LOG(LF_LOG_ERR,
                   "msg=\"cannot read stored offsets, will retry\" "
                   "error=%s",
                   lf_log_quote(errstr, q, sizeof(q)));
            PQfinish(app->conn);
            app->conn = NULL;
        }
        lf_lanes_count_retry(app->lanes);
        nap(lf_lanes_backoff_ms(attempt));
    }
}

/* Log each partition's starting offset at @p level with @p msg. */
static void log_offsets(int level, const char *msg,
                        const rd_kafka_topic_partition_list_t *parts)
{
    char q[32];

    for (int i = 0; i < parts->cnt; i++)
        LF_LOG(level, "msg=%s topic=%s partition=%d offset=%s", msg,
               parts->elems[i].topic, (int)parts->elems[i].partition,
               parts->elems[i].offset == RD_KAFKA_OFFSET_BEGINNING
                   ? "beginning"
                   : (snprintf(q, sizeof(q), "%lld",
                               (long long)parts->elems[i].offset),
                      q));
}

/* Consume @p parts from their stored offsets (read already). */
static void assign(app_t *app, rd_kafka_topic_partition_list_t *parts)
{
    if (lf_lanes_assign(app->lanes, parts))
        LF_LOG(LF_LOG_CRIT, "msg=\"out of memory: batches not fenced\"");
    rd_kafka_assign(app->rk, parts);
    lf_metrics_assign(app->metrics, parts);
    app->assigned = parts->cnt;
    app->assigned_at = lf_now_mono_ms();
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    app_t *app = opaque;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        /* Start where funnel.offsets says, never where Kafka's committed
         * offsets say: those may be ahead of what the database holds. */
        if (!load_offsets(app, parts)) {
            rd_kafka_assign(rk, NULL);
            return;
        }
        log_offsets(LF_LOG_INFO, "assigned", parts);
        assign(app, parts);
    } else {
        /* Eager revoke: every partition goes; whoever gets them next starts
         * from funnel.offsets. Commit what we hold if we can (less to
         * re-read), otherwise dropping it is safe. */
        lf_lanes_drain(app->lanes, true);
        LF_LOG(LF_LOG_INFO, "msg=revoked partitions=%d", parts->cnt);
        rd_kafka_assign(rk, NULL);
        lf_lanes_assign(app->lanes, NULL);
        lf_metrics_assign(app->metrics, NULL);
        app->assigned = 0;
    }
}

/* The lanes found the database elsewhere than believed (a new connection,
 * a batch refused by the offsets fence): drop every batch in hand, re-read
 * the stored offsets from the database now written to, and consume every
 * assigned partition again from there. Unassign then assign, not seek:
 * librdkafka 2.0's seek is unreliable, and a new assignment also discards
 * the messages already fetched from the old position. */
static void resync(app_t *app)
{
    rd_kafka_topic_partition_list_t *parts = NULL;

    lf_lanes_reset(app->lanes);
    PQfinish(app->conn); /* to reach the server the lanes reach now */
    app->conn = NULL;
    app->doubt = false;
    if (rd_kafka_assignment(app->rk, &parts) || !parts)
        return;
    if (parts->cnt && load_offsets(app, parts)) {
        log_offsets(LF_LOG_WARNING, "\"resuming from stored offsets\"", parts);
        rd_kafka_assign(app->rk, NULL);
        assign(app, parts);
    }
    rd_kafka_topic_partition_list_destroy(parts);
}

static void log_stats(app_t *app, const char *msg)
{
    const lf_projector_stats_t s = lf_lanes_stats(app->lanes);
    LF_LOG(LF_LOG_INFO,
           "msg=\"%s\" messages=%llu events=%llu duplicates=%llu "
           "conflicts=%llu dead_letters=%llu anomalies=%llu recomputed=%llu "
           "batches=%llu pg_retries=%llu fetch_wakeups=%llu",
           msg, (unsigned long long)s.messages,
           (unsigned long long)s.events_new, (unsigned long long)s.duplicates,
           (unsigned long long)s.conflicts, (unsigned long long)s.dead_letters,
           (unsigned long long)s.anomalies, (unsigned long long)s.recomputed,
           (unsigned long long)s.batches,
           (unsigned long long)lf_lanes_retries(app->lanes),
           (unsigned long long)lf_fetchwake_count(app->fetchwake));
}

/* Seconds a first connection refused for a reason of the settings (see
 * lf_pg_refused_for_good()) is retried: a database or role that a
 * deployment's init step is still creating. Then it is a mistake. */
#define REFUSED_AT_START_S 30

/* Has @p refused held for REFUSED_AT_START_S, since *@p since (the first
 * refusal in a row, ms; -1: none)? */
static bool refused_long(bool refused, int64_t *since)
{
    if (!refused)
        *since = -1;
    else if (*since < 0)
        *since = lf_now_mono_ms();
    return refused && lf_now_mono_ms() - *since >= REFUSED_AT_START_S * 1000;
}

/* Migrate on the connection made. A role refused a privilege on the way
 * (42501: the projector's own login before an administrator ran
 * --migrate-only after an upgrade, or one never granted
 * leadflow_projector) is waited for as long as a refused connection, then
 * said.
 * @returns an exit code, 0 when ready, -1 to try again. */
static int migrate(app_t *app, bool migrate_only, int64_t *denied_since)
{
    char errstr[8192], q[8300];
    int applied = 0;

    if (lf_pg_migrate(app->conn, &applied, errstr, sizeof(errstr)) == LF_OK) {
        LF_LOG(LF_LOG_INFO, "msg=\"schema ready\" migrations_applied=%d",
               applied);
        return 0;
    }
    LF_LOG(LF_LOG_ERR, "msg=\"migrations failed\" error=%s",
           lf_log_quote(errstr, q, sizeof(q)));
    bool denied = !strcmp(lf_pg_last_sqlstate(), "42501");
    if (refused_long(denied, denied_since) || (denied && migrate_only)) {
        LF_LOG(LF_LOG_ERR,
               "msg=\"PostgreSQL refuses this role a privilege the start "
               "needs: the projector's login needs GRANT leadflow_projector "
               "TO it, and migrations the database lacks need its owner's "
               "leadflow-project --migrate-only (docs/security.md)\" user=%s",
               lf_log_quote(PQuser(app->conn), q, sizeof(q)));
        return LF_EX_NOPERM;
    }
    if (!lf_pg_is_transient(app->conn, NULL) || migrate_only)
        return LF_EX_UNAVAILABLE;
    PQfinish(app->conn);
    app->conn = NULL;
    return -1;
}

/* Connect and migrate, retrying while the database is away (not with
 * --migrate-only). @returns an exit code, 0 when ready (or stopped). */
static int setup_db(app_t *app, bool migrate_only)
{
    char errstr[8192], q[8300];
    int64_t refused_since = -1; /* the first refusal of the settings, ms */
    int64_t denied_since = -1;  /* the first migration denied, ms */

    for (int attempt = 0; !lf_cli_signals; attempt++) {
        if (attempt)
            nap(lf_lanes_backoff_ms(attempt - 1));
        if (!app->conn) {
            app->conn = lf_pg_connect(app->conninfo, errstr, sizeof(errstr));
            app->conns += app->conn != NULL;
            /* Before any connection only: after one, a failover's
             * half-configured standby may say the same (RELIABILITY.md). */
            bool refused =
                !app->conn && !app->conns && lf_pg_refused_for_good(errstr);
            if (refused_long(refused, &refused_since)) {
                LF_LOG(LF_LOG_ERR,
                       "msg=\"PostgreSQL refuses the connection for a reason "
                       "of the settings (the database, the role, the "
                       "password, pg_hba.conf), since %d s: giving up\" "
                       "error=%s",
                       REFUSED_AT_START_S, lf_log_quote(errstr, q, sizeof(q)));
                return LF_EX_CONFIG;
            }
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
        int rc = migrate(app, migrate_only, &denied_since);
        if (rc >= 0)
            return rc;
    }
    return 0;
}

/* ---- the lanes' hooks (writer threads, except on_waiting) ------------ */

static void on_committed(void *opaque, const lf_projector_stats_t *total,
                         uint64_t retries, double seconds,
                         const rd_kafka_topic_partition_list_t *committed)
{
    app_t *app = opaque;

    lf_metrics_batch(app->metrics, total, retries, seconds, committed);
    /* Kafka's committed offsets only serve lag tools; the truth is
     * funnel.offsets, already committed. */
    if (committed && committed->cnt)
        rd_kafka_commit(app->rk, committed, 1);
}

static void on_db(void *opaque, bool up)
{
    lf_metrics_db(((app_t *)opaque)->metrics, up);
}

/* Stuck behind a batch that does not commit: keep lag and retries
 * fresh. */
static void on_waiting(void *opaque)
{
    app_t *app = opaque;
    lf_projector_stats_t s;

    if (!app->metrics)
        return;
    s = lf_lanes_stats(app->lanes);
    lf_metrics_refresh(app->metrics, app->rk, &s, lf_lanes_retries(app->lanes));
}

/* ---- start-up ------------------------------------------------------ */

/* The funnel definition: -X funnel.definition=FILE, else the embedded
 * default. A bad file stops everything before it starts. @returns an exit
 * code, 0 to go on. */
static int load_definition(app_t *app)
{
    const char *file = lf_conf_get(app->conf, LF_CONF_DEFINITION);
    char errstr[1024];

    if (!file || !*file)
        return lf_definition_default() ? 0 : LF_EX_SOFTWARE;
    if (!(app->def = lf_definition_load(file, errstr, sizeof(errstr)))) {
        fprintf(stderr, "leadflow-project: funnel.definition: %s\n", errstr);
        return LF_EX_CONFIG;
    }
    return 0;
}

/* The pseudonym key ring (pseudonym.key.file), if any. @returns an exit
 * code, 0 to go on. */
static int load_pseudonyms(app_t *app)
{
    char errstr[1024];
    lf_err_t e =
        lf_pseudonym_from_conf(app->conf, &app->ps, errstr, sizeof(errstr));

    if (!e)
        return 0;
    fprintf(stderr, "leadflow-project: %s\n", errstr);
    return e == LF_ERR_NOMEM ? LF_EX_SOFTWARE : LF_EX_CONFIG;
}

/* People erased here need the key to stay erased: without one, their
 * later events would be stored under their original ids. @returns an
 * exit code, 0 to go on. */
static int check_pseudonyms(app_t *app)
{
    const char *param = NULL;
    PGresult *res = NULL;
    char errstr[1024];
    bool erased;

    if (app->ps)
        return 0;
    if (lf_pg_query(
            app->conn, "SELECT EXISTS (SELECT 1 FROM funnel.erased_leads)", 0,
            &param, "checking erasures", &res, errstr, sizeof(errstr))) {
        fprintf(stderr, "leadflow-project: %s\n", errstr);
        return LF_EX_UNAVAILABLE;
    }
    erased = !strcmp(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    if (!erased)
        return 0;
    fprintf(stderr,
            "leadflow-project: people are erased in this database but no "
            "pseudonym key is configured: set %s (docs/security.md)\n",
            LF_CONF_PSEUDONYM_KEY_FILE);
    return LF_EX_CONFIG;
}

/* The tables are built under one definition: record ours on first start,
 * refuse another. @returns an exit code, 0 to go on. */
static int check_definition(app_t *app)
{
    const char *file = lf_conf_get(app->conf, LF_CONF_DEFINITION);
    const lf_definition_t *def = app->def ? app->def : lf_definition_default();
    char errstr[2048];
    bool differs;

    if (!lf_defstore_check(app->conn, "funnel", def,
                           file && *file ? file : NULL, &differs, errstr,
                           sizeof(errstr))) {
        LF_LOG(LF_LOG_INFO, "msg=\"funnel definition\" name=%s version=%lld",
               def->name, (long long)def->version);
        return 0;
    }
    fprintf(stderr, "leadflow-project: %s\n", errstr);
    return differs ? LF_EX_CONFIG : LF_EX_UNAVAILABLE;
}

/* The registry-aware decoder, /metrics, the schema and the lanes.
 * @returns an exit code, 0 to go on. */
static int start_store(app_t *app)
{
    const char *listen = lf_conf_get(app->conf, LF_CONF_METRICS);
    const project_cfg_t *cfg = app->cfg;
    char errstr[1024];
    int rc;

    if ((rc = load_definition(app)) || (rc = load_pseudonyms(app)))
        return rc;
    app->proj = lf_projector_new("funnel", app->group, errstr, sizeof(errstr));
    if (app->proj) {
        /* It also settles waiting merges: the lanes' rules and key. */
        lf_projector_use_definition(app->proj, app->def);
        lf_projector_use_pseudonyms(app->proj, app->ps);
    }
    if (!app->proj || lf_projector_use_registry(app->proj, app->conf, errstr,
                                                sizeof(errstr))) {
        fprintf(stderr, "leadflow-project: %s\n", errstr);
        return app->proj ? LF_EX_CONFIG : LF_EX_SOFTWARE;
    }
    /* Before the database: /healthz answers 503 while it is awaited. */
    if (listen && *listen && !cfg->migrate_only) {
        lf_err_t e =
            lf_metrics_new(listen, &app->metrics, errstr, sizeof(errstr));
        if (e) {
            fprintf(stderr, "leadflow-project: %s\n", errstr);
            return e == LF_ERR_INVALID ? LF_EX_CONFIG : LF_EX_UNAVAILABLE;
        }
        /* notice: -q still says where to scrape (a port of 0 picks one) */
        LF_LOG(LF_LOG_NOTICE, "msg=\"serving metrics\" listen=%s port=%d",
               listen, lf_metrics_port(app->metrics));
    }
    if ((rc = setup_db(app, cfg->migrate_only)) || cfg->migrate_only ||
        lf_cli_signals || (rc = check_definition(app)) ||
        (rc = check_pseudonyms(app)))
        return rc;
    lf_lanes_conf_t lc = {
        .n = cfg->writers,
        .batch_max = cfg->batch_max,
        .linger_ms = cfg->linger_ms,
        .conninfo = app->conninfo,
        .schema = "funnel",
        .group = app->group,
        .registry = app->proj,
        .stop = &lf_cli_signals,
        .hooks = {on_committed, on_db, on_waiting, app},
        .definition = app->def,
        .pseudonyms = app->ps,
    };
    if (!(app->lanes = lf_lanes_new(&lc, errstr, sizeof(errstr))) ||
        lf_metrics_watch_sla(app->metrics, app->conninfo, 30, errstr,
                             sizeof(errstr))) {
        fprintf(stderr, "leadflow-project: %s\n", errstr);
        return LF_EX_SOFTWARE;
    }
    lf_metrics_db(app->metrics, true);
    return 0;
}

/* Subscribe to the topic. @returns an exit code, 0 to go on. */
static int subscribe(app_t *app)
{
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_resp_err_t e;

    rd_kafka_topic_partition_list_add(sub, app->topic, RD_KAFKA_PARTITION_UA);
    e = rd_kafka_subscribe(app->rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (e) {
        fprintf(stderr, "leadflow-project: subscribe to %s: %s\n", app->topic,
                rd_kafka_err2str(e));
        return LF_EX_UNAVAILABLE;
    }
    /* Hold the topic from the start. A subscribing consumer otherwise
     * makes its partitions only when they are assigned, and librdkafka
     * resets a "beginning" offset as each partition appears, before the
     * same metadata has named its leader: the partitions it meets first
     * wait for a 500 ms retry timer (a fresh projector wrote nothing for
     * its first half second, a third of a 100k drain). Made now, they have
     * their leaders long before the group assigns them. */
    if (app->topic[0] != '^' &&
        !(app->rkt = rd_kafka_topic_new(app->rk, app->topic, NULL)))
        LF_LOG(LF_LOG_DEBUG, "msg=\"topic handle not made early\" error=%s",
               rd_kafka_err2str(rd_kafka_last_error()));
    return 0;
}

/* The settings judged before anything waits for a server: the db
 * conninfo's syntax and, unless --migrate-only, every librdkafka setting
 * (a typo must not hide behind "cannot reach PostgreSQL, will retry", nor
 * come after the migrations). @returns an exit code, 0 to go on. */
static int check_settings(app_t *app)
{
    const char *strategy =
        lf_conf_get(app->conf, "partition.assignment.strategy");
    char errstr[512];

    switch (lf_pg_conninfo_check(app->conninfo, errstr, sizeof(errstr))) {
    case LF_OK:
        break;
    case LF_ERR_INVALID:
        fprintf(stderr, "leadflow-project: db: %s\n", errstr);
        return LF_EX_CONFIG;
    default:
        fprintf(stderr, "leadflow-project: %s\n", errstr);
        return LF_EX_SOFTWARE;
    }
    if (app->cfg->migrate_only)
        return 0;
    if (strategy && strstr(strategy, "cooperative")) {
        fprintf(stderr,
                "leadflow-project: partition.assignment.strategy=%s: only "
                "eager strategies (range, roundrobin) are supported\n",
                strategy);
        return LF_EX_CONFIG;
    }
    if (!(app->rkc = lf_conf_to_rdkafka(app->conf, errstr, sizeof(errstr)))) {
        fprintf(stderr, "leadflow-project: %s\n", errstr);
        return LF_EX_CONFIG;
    }
    return 0;
}

/* The consumer of the librdkafka settings check_settings() built,
 * subscribed. @returns an exit code, 0 to go on. */
static int start_kafka(app_t *app)
{
    rd_kafka_conf_t *rkc = app->rkc;
    char errstr[512];

    app->rkc = NULL; /* rd_kafka_new() takes it, or it is destroyed here */
    rd_kafka_conf_set_rebalance_cb(rkc, on_rebalance);
    rd_kafka_conf_set_opaque(rkc, app);
    app->rk = rd_kafka_new(RD_KAFKA_CONSUMER, rkc, errstr, sizeof(errstr));
    if (!app->rk) {
        rd_kafka_conf_destroy(rkc);
        fprintf(stderr, "leadflow-project: %s\n", errstr);
        return LF_EX_CONFIG;
    }
    rd_kafka_poll_set_consumer(app->rk);
    app->fetchwake = lf_fetchwake_new(app->rk);
    if (!app->fetchwake)
        LF_LOG(LF_LOG_WARNING, "msg=\"fetch wake-ups unavailable: out of "
                               "memory or threads; a drained queue may wait "
                               "up to a second for the next fetch\"");
    return subscribe(app);
}

/* ---- the loop ------------------------------------------------------ */

static void probe(app_t *app);

/* One consumed message into its lane. @returns false when out of memory
 * (logged). */
static bool on_message(app_t *app, rd_kafka_message_t *rkm)
{
    char q[1100];
    lf_err_t err;

    if (rkm->err) {
        if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            LF_LOG(LF_LOG_WARNING, "msg=\"consumer error\" error=%s",
                   lf_log_quote(rd_kafka_message_errstr(rkm), q, sizeof(q)));
        return true;
    }
    /* Schema registry unreachable: the message is held (not added, not
     * dead-lettered); write what came before it and offer it again with
     * backoff until it is in or we stop. /metrics keeps showing the lag
     * meanwhile: it is what the alerts on a stalled projector read. */
    for (int attempt = 0;
         (err = lf_lanes_add(app->lanes, rkm)) == LF_ERR_TEMPORARY &&
         !lf_cli_signals;
         attempt++) {
        lf_lanes_drain(app->lanes, false);
        probe(app);
        nap(lf_lanes_backoff_ms(attempt));
    }
    if (err && err != LF_ERR_TEMPORARY) {
        LF_LOG(LF_LOG_CRIT, "msg=\"out of memory\"");
        return false;
    }
    return true;
}

/* While idle, notice a lost main connection without a query (a closed
 * socket is read as such). The database may have failed over to a standby
 * that lost commits this projector made: with no message coming, nothing
 * else would find out, so the positions are put in doubt now (resync()
 * reads them from whichever server it reaches next), --metrics or not. */
static void watch_db(app_t *app)
{
    if (!app->conn)
        return;
    PQconsumeInput(app->conn);
    if (PQstatus(app->conn) != CONNECTION_OK)
        lost_db(app);
}

/* Keep /metrics fresh; while idle, notice a lost database without a query
 * (a closed socket is read as such) and reconnect, so /healthz follows
 * it. */
static void probe(app_t *app)
{
    lf_projector_stats_t s;

    if (!lf_lanes_pending(app->lanes)) {
        bool up;
        if (app->conn)
            PQconsumeInput(app->conn);
        if (!(up = db_ready(app)))
            lf_lanes_count_retry(app->lanes); /* a reconnect that failed */
        lf_metrics_db(app->metrics, up);
    }
    s = lf_lanes_stats(app->lanes);
    lf_metrics_refresh(app->metrics, app->rk, &s, lf_lanes_retries(app->lanes));
}

/* Work out the merges and erasures batches left waiting for leads another
 * writer held, and voids whose target another writer stored at the same
 * moment (lf_projector_settle()), on the main connection: one round,
 * or @p all of them (before exiting). A failure is logged; they wait for
 * the next round or the next start. */
static void settle(app_t *app, bool all)
{
    char errstr[1024], q[1100];
    lf_projector_stats_t before;
    bool more;
    lf_err_t err;

    if (!app->conn || PQstatus(app->conn) != CONNECTION_OK)
        return;
    lf_projector_conn_reset(app->proj); /* app->conn may be a new one */
    before = *lf_projector_stats(app->proj);
    err = all ? lf_projector_settle_all(app->proj, app->conn, errstr,
                                        sizeof(errstr))
              : lf_projector_settle(app->proj, app->conn, &more, errstr,
                                    sizeof(errstr));
    /* The merges it finished count as the lanes' do (/metrics, the
     * summary). */
    lf_lanes_add_settled(app->lanes, lf_projector_stats(app->proj), &before);
    if (err && PQstatus(app->conn) != CONNECTION_OK)
        lost_db(app); /* the server went away under the settle */
    else if (err)
        LF_LOG(LF_LOG_WARNING,
               "msg=\"waiting merges not worked out yet\" error=%s",
               lf_log_quote(errstr, q, sizeof(q)));
}

/* Idle counts from the last message or the last assignment, so a slow
 * group join is not mistaken for an empty topic; and a projector without
 * its database, or not yet resumed from the stored offsets of the one it
 * reached again, is not idle: the server may have lost commits it must
 * read again (with --metrics the probe reconnects, so the loop goes on
 * while PostgreSQL is away). */
static bool idle_done(app_t *app, int64_t now, int64_t last_msg)
{
    int64_t since = last_msg > app->assigned_at ? last_msg : app->assigned_at;

    return app->cfg->idle_exit && app->assigned &&
           !lf_lanes_pending(app->lanes) && app->conn && !app->doubt &&
           !lf_lanes_stale(app->lanes) &&
           now - since >= (int64_t)app->cfg->idle_exit * 1000;
}

/* While idle (nothing pending), every 2 s: are the tables still the ones
 * this projector wrote? A promote replaces them under it: under other
 * rules it stops (78), as its next batch would; with other offsets (a
 * what-if under the same rules) it resumes from them. Without this an idle
 * projector noticed only at its next message, and the live tables lacked
 * what it had written into the replaced ones. @returns an exit code, or 0
 * to go on. A failed query is left to watch_db(). */
static int watch_tables(app_t *app)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    char errstr[1024];
    bool moved = false;
    lf_err_t err;

    if (!app->conn || !app->assigned || PQstatus(app->conn) != CONNECTION_OK)
        return 0;
    err = lf_projector_check_definition(app->proj, app->conn, errstr,
                                        sizeof(errstr));
    if (err == LF_ERR_CONFIG) {
        LF_LOG(LF_LOG_ERR, "msg=\"the tables were replaced under this "
                           "projector: stopping\"");
        fprintf(stderr, "leadflow-project: %s\n", errstr);
        return LF_EX_CONFIG;
    }
    if (err || rd_kafka_assignment(app->rk, &parts) || !parts)
        return 0;
    if (!lf_projector_load_offsets(app->proj, app->conn, parts, errstr,
                                   sizeof(errstr)))
        moved = !lf_lanes_committed_as(app->lanes, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (moved) {
        LF_LOG(LF_LOG_WARNING,
               "msg=\"the stored offsets changed under this projector (a "
               "promote, a rewind, a failover): resuming from them\"");
        resync(app);
    }
    return 0;
}

/* Before exiting idle: does the main connection still reach its server?
 * A failover since the last watch_db() (up to 2 s) would otherwise go
 * unnoticed, and what the standby lost unread until the next start. */
static bool db_answers(app_t *app)
{
    PGresult *res = PQexec(app->conn, "SELECT 1");
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;

    PQclear(res);
    if (!ok)
        lost_db(app);
    return ok;
}

/* Did a writer refuse a batch for its configuration (nothing of it
 * written)? Then say why: LF_EX_CONFIG, else 0. */
static int refused(app_t *app)
{
    char why[1024];

    if (!lf_lanes_refused(app->lanes, why, sizeof(why)))
        return 0;
    fprintf(stderr, "leadflow-project: %s\n", why);
    return LF_EX_CONFIG;
}

/* Consume until a signal, --idle-exit or a fatal error. @returns an exit
 * code. */
static int consume(app_t *app)
{
    int64_t last_msg = lf_now_mono_ms(), last_stats = last_msg, last_probe = 0,
            last_settle = last_msg;
    unsigned polled = 0;

    while (!lf_cli_signals) {
        int rc;
        if ((rc = refused(app)))
            return rc;
        if (lf_lanes_stale(app->lanes) || (app->doubt && app->assigned))
            resync(app);
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(
            app->rk, lf_lanes_filling(app->lanes) ? 0 : 100);
        int64_t now = lf_now_mono_ms();
        if (!rkm || !(++polled & 63))
            lf_fetchwake_check(app->fetchwake);
        if (rkm) {
            bool ok = on_message(app, rkm);
            if (!rkm->err)
                last_msg = now;
            rd_kafka_message_destroy(rkm);
            if (!ok)
                return LF_EX_SOFTWARE;
        }
        /* A batch is due but its writer is busy, nothing to read: do not
         * spin. */
        if (lf_lanes_tick(app->lanes, !rkm) && !rkm)
            nanosleep(&(struct timespec){0, 2 * 1000000L}, NULL);
        if (app->metrics && now - last_probe >= 2000) {
            probe(app);
            last_probe = now;
        }
        if (now - last_stats >= 10000) {
            log_stats(app, "progress");
            last_stats = now;
        }
        if (now - last_settle >= 2000 && !lf_lanes_pending(app->lanes)) {
            watch_db(app);
            if ((rc = watch_tables(app)))
                return rc;
            settle(app, false);
            last_settle = now;
        }
        if (idle_done(app, now, last_msg) && db_answers(app)) {
            LF_LOG(LF_LOG_INFO, "msg=\"idle, exiting\" idle_s=%d",
                   app->cfg->idle_exit);
            break;
        }
    }
    return 0;
}

/* Migrate, then (unless --migrate-only) consume until told to stop.
 * @returns an exit code. */
static int run(app_t *app)
{
    int rc;

    app->topic = lf_conf_get(app->conf, LF_CONF_TOPIC);
    app->group = lf_conf_get(app->conf, "group.id");
    app->conninfo = lf_conf_get(app->conf, LF_CONF_DB);
    if ((rc = check_settings(app)) || (rc = start_store(app)) ||
        app->cfg->migrate_only || lf_cli_signals)
        return rc;
    if ((rc = start_kafka(app)))
        return rc;
    LF_LOG(LF_LOG_INFO, "msg=started topic=%s group=%s batch=%d writers=%d",
           app->topic, app->group, app->cfg->batch_max, app->cfg->writers);
    rc = consume(app);
    /* Finish the batches in hand (once; if the database is away, they are
     * rolled back and re-read next time), then leave the group. */
    lf_lanes_drain(app->lanes, true);
    if (!rc)
        rc = refused(app); /* in the last drain: rolled back */
    if (!rc)
        settle(app, true);
    log_stats(app, "stopped");
    lf_fetchwake_destroy(app->fetchwake);
    app->fetchwake = NULL;
    rd_kafka_consumer_close(app->rk);
    return rc;
}

/* Free what run() built. */
static void app_free(app_t *app)
{
    if (app->rkc) /* stopped before start_kafka() */
        rd_kafka_conf_destroy(app->rkc);
    if (app->rkt)
        rd_kafka_topic_destroy(app->rkt);
    lf_fetchwake_destroy(app->fetchwake);
    lf_lanes_destroy(app->lanes);
    lf_metrics_destroy(app->metrics);
    if (app->rk)
        rd_kafka_destroy(app->rk);
    lf_projector_destroy(app->proj);
    lf_definition_destroy(app->def);
    lf_pseudonym_destroy(app->ps);
    PQfinish(app->conn);
}

int main(int argc, char **argv)
{
    /* --batch: BENCHMARKS.md, "Batch size". */
    project_cfg_t cfg = {.batch_max = 10000, .linger_ms = 50, .writers = 2};
    app_t app = {.cfg = &cfg};
    lf_cli_next_t next;
    lf_cli_t cli;
    int rc;

    lf_log_init("project");
    /* First: a SIGTERM while the settings are read (a supervisor stopping
     * it at once) stops it as any other, exit 0. (One before main(),
     * while the libraries load, still ends it: leadflow-project(1).) */
    lf_cli_catch_signals(false);
    tune_malloc();
    if ((next = parse(argc, argv, &cli, &cfg)) != LF_CLI_RUN) {
        rc = lf_cli_exit_code(next);
    } else if (!(rc = settings(&cli, &app.conf))) {
        if (cli.dump)
            rc = lf_cli_dump(&cli, app.conf);
        else
            rc = run(&app);
    }
    app_free(&app);
    lf_conf_destroy(app.conf);
    lf_cli_free(&cli);
    return rc;
}
