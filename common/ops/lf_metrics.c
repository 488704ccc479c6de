/* lf_metrics.c: leadflow-project's /metrics and /healthz over libmicrohttpd,
 * served from values the projector's loop records under a mutex. */
#include "lf_metrics.h"

#include "lf_event.h"
#include "lf_log.h"
#include "lf_pg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* Upper bounds of the batch duration histogram, in seconds: from a small
 * batch on a local database to a large one on a busy remote server. */
static const double buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                 0.5,   1,    2.5,   5,    10};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

typedef struct part_s {
    char *topic;
    int32_t partition;
    int64_t stored; /* next offset in funnel.offsets; <0 none yet */
    int64_t lo, hi; /* watermarks from librdkafka's cache; <0 unknown */
} part_t;

/* Open SLA breaches of one owner ("" for handoffs without one). */
typedef struct sla_owner_s {
    char *owner;
    long open;
} sla_owner_t;

/* The thread reading funnel.open_sla_breaches. Its fields other than
 * owners/refreshed_ms are its own; stop is set under the metrics lock. */
typedef struct sla_watch_s {
    pthread_t thread;
    bool running; /* the thread was started (join it) */
    bool stop;
    pthread_cond_t wake; /* with the metrics lock: stop now */
    char *conninfo;
    int interval_s;
    sla_owner_t *owners; /* every owner seen so far, by the lock */
    size_t nowners;
    int64_t refreshed_ms; /* wall clock of the last good read; 0 none */
} sla_watch_t;

struct lf_metrics_s {
    pthread_mutex_t lock; /* guards everything below for the HTTP thread */
    struct MHD_Daemon *mhd;
    int port;

    lf_projector_stats_t stats;
    uint64_t pg_retries;
    bool db_ok;
    bool assigned; /* partitions are assigned */
    part_t *parts;
    size_t nparts, capparts;
    int64_t last_commit_ms;      /* wall clock; 0 never */
    uint64_t hist[NBUCKETS + 1]; /* per bucket, not cumulative; last +Inf */
    double hist_sum;
    uint64_t hist_count;
    sla_watch_t sla;
};

static void parts_clear(lf_metrics_t *m)
{
    for (size_t i = 0; i < m->nparts; i++)
        free(m->parts[i].topic);
    m->nparts = 0;
}

/* ---- recording (the projector's thread) ------------------------------ */

void lf_metrics_assign(lf_metrics_t *m,
                       const rd_kafka_topic_partition_list_t *parts)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    parts_clear(m);
    m->assigned = false;
    if (parts && (size_t)parts->cnt > m->capparts) {
        part_t *np = realloc(m->parts, (size_t)parts->cnt * sizeof(*np));
        if (np) {
            m->parts = np;
            m->capparts = (size_t)parts->cnt;
        }
    }
    for (int i = 0; parts && i < parts->cnt && (size_t)i < m->capparts; i++) {
        part_t *pt = &m->parts[m->nparts];
        if (!(pt->topic = strdup(parts->elems[i].topic)))
            break;
        pt->partition = parts->elems[i].partition;
        pt->stored = parts->elems[i].offset >= 0 ? parts->elems[i].offset : -1;
        pt->lo = pt->hi = -1;
        m->nparts++;
    }
    m->assigned = parts && parts->cnt > 0;
    pthread_mutex_unlock(&m->lock);
}

static part_t *part_find(lf_metrics_t *m, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < m->nparts; i++)
        if (m->parts[i].partition == partition &&
            !strcmp(m->parts[i].topic, topic))
            return &m->parts[i];
    return NULL;
}

/* Take @p in, a copy of the running totals made by some thread a moment
 * ago: a writer's copy may be published after a newer one (the main
 * thread's, another writer's), so each counter keeps the larger value and
 * never goes back (Prometheus would read a reset). Under m->lock. */
_Static_assert(sizeof(lf_projector_stats_t) % sizeof(uint64_t) == 0,
               "lf_projector_stats_t holds only uint64_t counters");
static void totals_take(lf_metrics_t *m, const lf_projector_stats_t *in,
                        uint64_t pg_retries)
{
    uint64_t *to = (uint64_t *)&m->stats;
    const uint64_t *from = (const uint64_t *)in;

    for (size_t i = 0; in && i < sizeof(*in) / sizeof(uint64_t); i++)
        if (from[i] > to[i])
            to[i] = from[i];
    if (pg_retries > m->pg_retries)
        m->pg_retries = pg_retries;
}

void lf_metrics_batch(lf_metrics_t *m, const lf_projector_stats_t *stats,
                      uint64_t pg_retries, double seconds,
                      const rd_kafka_topic_partition_list_t *committed)
{
    size_t b;

    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    totals_take(m, stats, pg_retries);
    m->db_ok = true;
    m->last_commit_ms = lf_now_ms();
    for (b = 0; b < NBUCKETS && seconds > buckets[b]; b++)
        ;
    m->hist[b]++;
    m->hist_sum += seconds;
    m->hist_count++;
    for (int i = 0; committed && i < committed->cnt; i++) {
        part_t *pt = part_find(m, committed->elems[i].topic,
                               committed->elems[i].partition);
        if (pt && committed->elems[i].offset >= 0)
            pt->stored = committed->elems[i].offset;
    }
    pthread_mutex_unlock(&m->lock);
}

void lf_metrics_db(lf_metrics_t *m, bool ok)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->db_ok = ok;
    pthread_mutex_unlock(&m->lock);
}

void lf_metrics_refresh(lf_metrics_t *m, rd_kafka_t *rk,
                        const lf_projector_stats_t *stats, uint64_t pg_retries)
{
    if (!m)
        return;
    /* Only this thread changes the partition table, so reading it unlocked
     * here is safe; librdkafka is called outside the mutex. */
    for (size_t i = 0; rk && i < m->nparts; i++) {
        int64_t lo = -1, hi = -1;
        if (rd_kafka_get_watermark_offsets(rk, m->parts[i].topic,
                                           m->parts[i].partition, &lo,
                                           &hi) != RD_KAFKA_RESP_ERR_NO_ERROR)
            continue;
        pthread_mutex_lock(&m->lock);
        m->parts[i].lo = lo;
        m->parts[i].hi = hi;
        pthread_mutex_unlock(&m->lock);
    }
    pthread_mutex_lock(&m->lock);
    totals_take(m, stats, pg_retries);
    pthread_mutex_unlock(&m->lock);
}

/* ---- open SLA breaches (the watcher's thread) ------------------------- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Per owner, from the view. A short statement timeout: a slow read only
 * delays the next one, it never holds anything else. */
static const char *sla_sql =
    "SELECT coalesce(owner, ''), count(*) FROM funnel.open_sla_breaches "
    "GROUP BY 1 ORDER BY 1";

/* Put @p res (sla_sql's rows) into the owners under the lock: every owner
 * seen before goes to 0 unless the read names it. @returns false if out
 * of memory (the values then stay as they were). */
static bool sla_store(lf_metrics_t *m, const PGresult *res)
{
    sla_watch_t *w = &m->sla;
    size_t n = (size_t)PQntuples(res), cap = w->nowners + n;
    sla_owner_t *all = calloc(cap ? cap : 1, sizeof(*all));
    size_t k = 0;
    bool ok = all != NULL;

    for (size_t i = 0; ok && i < w->nowners; i++)
        all[k++] = (sla_owner_t){w->owners[i].owner, 0};
    for (size_t r = 0; ok && r < n; r++) {
        const char *o = PQgetvalue(res, (int)r, 0);
        size_t j = 0;
        while (j < k && strcmp(all[j].owner, o))
            j++;
        if (j == k && !(all[k++].owner = strdup(o)))
            ok = false;
        else
            all[j].open = strtol(PQgetvalue(res, (int)r, 1), NULL, 10);
    }
    if (!ok) {
        for (size_t i = w->nowners; i < k; i++)
            free(all[i].owner);
        free(all);
        return false;
    }
    pthread_mutex_lock(&m->lock);
    free(w->owners); /* the strings moved into all */
    w->owners = all;
    w->nowners = k;
    w->refreshed_ms = wall_ms();
    pthread_mutex_unlock(&m->lock);
    return true;
}

/* One read, connecting first if needed. @p conn is the thread's. */
static void sla_read(lf_metrics_t *m, PGconn **conn)
{
    const char *keys[] = {"dbname", "connect_timeout", "options",
                          "application_name", NULL};
    const char *vals[] = {m->sla.conninfo, "5", "-c statement_timeout=10000",
                          "leadflow-project-sla", NULL};
    PGresult *res = NULL;
    bool fresh = false;
    char q[600];

    if (*conn && PQstatus(*conn) != CONNECTION_OK) {
        PQfinish(*conn);
        *conn = NULL;
    }
    if (!*conn && (*conn = PQconnectdbParams(keys, vals, 1))) {
        lf_pg_log_notices(*conn);
        fresh = true;
    }
    if (!*conn || PQstatus(*conn) != CONNECTION_OK) {
        LF_LOG(LF_LOG_WARNING,
               "msg=\"open SLA breaches: cannot connect\" "
               "error=%s",
               lf_log_quote(*conn ? PQerrorMessage(*conn) : "out of memory", q,
                            sizeof(q)));
        return;
    }
    /* Read-only once connected, not by the startup options: with those,
     * libpq's target_session_attrs=read-write (the failover conninfo)
     * takes every server for a standby. */
    if (fresh)
        res = PQexec(*conn, "SET default_transaction_read_only = on");
    if (res && PQresultStatus(res) != PGRES_COMMAND_OK) {
        LF_LOG(LF_LOG_WARNING,
               "msg=\"open SLA breaches: read failed\" "
               "error=%s",
               lf_log_quote(PQerrorMessage(*conn), q, sizeof(q)));
        PQclear(res);
        PQfinish(*conn);
        *conn = NULL;
        return;
    }
    PQclear(res);
    res = PQexec(*conn, sla_sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        LF_LOG(LF_LOG_WARNING,
               "msg=\"open SLA breaches: read failed\" "
               "error=%s",
               lf_log_quote(PQerrorMessage(*conn), q, sizeof(q)));
    else if (!sla_store(m, res))
        LF_LOG(LF_LOG_WARNING, "msg=\"open SLA breaches: out of memory\"");
    PQclear(res);
}

static void *sla_main(void *arg)
{
    lf_metrics_t *m = arg;
    PGconn *conn = NULL;

    pthread_mutex_lock(&m->lock);
    while (!m->sla.stop) {
        pthread_mutex_unlock(&m->lock);
        sla_read(m, &conn);
        pthread_mutex_lock(&m->lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += m->sla.interval_s;
        while (!m->sla.stop && pthread_cond_timedwait(&m->sla.wake, &m->lock,
                                                      &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&m->lock);
    PQfinish(conn);
    return NULL;
}

lf_err_t lf_metrics_watch_sla(lf_metrics_t *m, const char *conninfo,
                              int interval_s, char *errstr, size_t errstr_size)
{
    if (!m)
        return LF_OK;
    if (m->sla.running || interval_s < 1)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "open SLA breaches: already watched, or an "
                         "interval under 1 s");
    if (!(m->sla.conninfo = strdup(conninfo ? conninfo : "")))
        return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
    m->sla.interval_s = interval_s;
    pthread_cond_init(&m->sla.wake, NULL);
    if (pthread_create(&m->sla.thread, NULL, sla_main, m)) {
        pthread_cond_destroy(&m->sla.wake);
        return lf_seterr(LF_ERR_IO, errstr, errstr_size,
                         "open SLA breaches: cannot start a thread");
    }
    m->sla.running = true;
    return LF_OK;
}

/* Stop the watcher (a read in progress finishes first) and free it. */
static void sla_destroy(lf_metrics_t *m)
{
    if (m->sla.running) {
        pthread_mutex_lock(&m->lock);
        m->sla.stop = true;
        pthread_cond_signal(&m->sla.wake);
        pthread_mutex_unlock(&m->lock);
        pthread_join(m->sla.thread, NULL);
        pthread_cond_destroy(&m->sla.wake);
    }
    for (size_t i = 0; i < m->sla.nowners; i++)
        free(m->sla.owners[i].owner);
    free(m->sla.owners);
    free(m->sla.conninfo);
}

/* ---- rendering ------------------------------------------------------- */

/* A label value: backslash, double quote and newline escaped. */
static void put_label(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fprintf(f, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

static void put_head(FILE *f, const char *name, const char *type,
                     const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_counter(FILE *f, const char *name, const char *help, uint64_t v)
{
    put_head(f, name, "counter", help);
    fprintf(f, "%s %llu\n", name, (unsigned long long)v);
}

static void put_gauge(FILE *f, const char *name, const char *help, double v)
{
    put_head(f, name, "gauge", help);
    fprintf(f, "%s %.17g\n", name, v);
}

/* The lag of one partition: messages in Kafka past what funnel.offsets
 * holds. Without a stored offset the projector starts at the beginning,
 * the low watermark. -1: unknown (nothing fetched yet). */
static int64_t part_lag(const part_t *pt)
{
    int64_t from;

    if (pt->hi < 0)
        return -1;
    from = pt->stored >= 0 ? pt->stored : pt->lo >= 0 ? pt->lo : 0;
    return pt->hi > from ? pt->hi - from : 0;
}

/* The end offset, never behind what was stored: the cached watermark may
 * be a refresh older than the batch just committed. */
static int64_t part_high(const part_t *pt)
{
    if (pt->hi < 0)
        return -1;
    return pt->hi > pt->stored ? pt->hi : pt->stored;
}

enum { PART_LAG, PART_STORED, PART_HIGH };

static void put_parts(FILE *f, const lf_metrics_t *m, const char *name,
                      const char *help, int what)
{
    put_head(f, name, "gauge", help);
    for (size_t i = 0; i < m->nparts; i++) {
        const part_t *pt = &m->parts[i];
        int64_t v = what == PART_LAG      ? part_lag(pt)
                    : what == PART_STORED ? pt->stored
                                          : part_high(pt);
        if (v < 0)
            continue; /* unknown: no sample rather than a false one */
        fprintf(f, "%s{topic=\"", name);
        put_label(f, pt->topic);
        fprintf(f, "\",partition=\"%d\"} %lld\n", (int)pt->partition,
                (long long)v);
    }
}

/* The batch duration histogram, cumulative buckets as Prometheus wants. */
static void put_histogram(FILE *f, const lf_metrics_t *m)
{
    uint64_t cum = 0;

    put_head(f, "leadflow_batch_duration_seconds", "histogram",
             "Time to write one batch to PostgreSQL (its successful "
             "attempt).");
    for (size_t i = 0; i <= NBUCKETS; i++) {
        cum += m->hist[i];
        if (i < NBUCKETS)
            fprintf(f,
                    "leadflow_batch_duration_seconds_bucket{le=\"%g\"} %llu\n",
                    buckets[i], (unsigned long long)cum);
        else
            fprintf(
                f, "leadflow_batch_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                (unsigned long long)cum);
    }
    fprintf(f, "leadflow_batch_duration_seconds_sum %.9g\n", m->hist_sum);
    fprintf(f, "leadflow_batch_duration_seconds_count %llu\n",
            (unsigned long long)m->hist_count);
}

/* The watcher's values, when it runs; none before its first read. */
static void put_sla(FILE *f, const lf_metrics_t *m)
{
    const sla_watch_t *w = &m->sla;

    if (!w->running)
        return;
    put_head(f, "leadflow_sla_breaches_open", "gauge",
             "Handoffs breaching their SLA now (funnel.open_sla_breaches), "
             "per sales owner; read at most every 30 s.");
    for (size_t i = 0; w->refreshed_ms && i < w->nowners; i++) {
        fputs("leadflow_sla_breaches_open{owner=\"", f);
        put_label(f, w->owners[i].owner);
        fprintf(f, "\"} %ld\n", w->owners[i].open);
    }
    put_gauge(f, "leadflow_sla_breaches_refreshed_timestamp_seconds",
              "Unix time of the last read of funnel.open_sla_breaches "
              "(0: none yet).",
              (double)w->refreshed_ms / 1000.0);
}

/* Merges, voids and erasures projected, and the anomalies of the identity
 * events that do not count, per kind as funnel.anomalies names them. */
static void put_identity(FILE *f, const lf_projector_stats_t *s)
{
    put_counter(f, "leadflow_merges_total",
                "Merges that came to count (rows added to funnel.merges).",
                s->merges);
    put_counter(f, "leadflow_voids_total",
                "Events that came to be voided (listed in "
                "funnel.voided_events).",
                s->voids);
    put_counter(f, "leadflow_erasures_total",
                "Erased events projected (rows added to funnel.erasures).",
                s->erasures);
    put_head(f, "leadflow_identity_anomalies_total", "counter",
             "Anomalies of merged and voided events that do not count, "
             "written to funnel.anomalies, by kind: merge (another target, "
             "a cycle), void (target not received, another lead's, not a "
             "stage event).");
    fprintf(f, "leadflow_identity_anomalies_total{kind=\"merge\"} %llu\n",
            (unsigned long long)s->merge_anomalies);
    fprintf(f, "leadflow_identity_anomalies_total{kind=\"void\"} %llu\n",
            (unsigned long long)s->void_anomalies);
}

/* Everything, under the lock. */
static void put_all(FILE *f, const lf_metrics_t *m)
{
    const lf_projector_stats_t *s = &m->stats;

    put_head(f, "leadflow_build_info", "gauge",
             "Versions of leadflow-project and librdkafka.");
    fprintf(f, "leadflow_build_info{version=\"%s\",librdkafka=\"%s\"} 1\n",
            LF_VERSION, rd_kafka_version_str());
    put_counter(f, "leadflow_messages_total",
                "Kafka messages consumed and committed with their batch.",
                s->messages);
    put_head(f, "leadflow_events_projected_total", "counter",
             "Events stored for the first time, by event type.");
    for (int t = 0; t < LF_EV__COUNT; t++)
        fprintf(f, "leadflow_events_projected_total{type=\"%s\"} %llu\n",
                lf_event_type_name((lf_event_type_t)t),
                (unsigned long long)s->by_type[t]);
    put_counter(f, "leadflow_duplicates_total",
                "Events received again with the same event_id and content.",
                s->duplicates);
    put_counter(f, "leadflow_conflicts_total",
                "Events reusing an event_id with other content "
                "(kept as anomalies).",
                s->conflicts);
    put_counter(f, "leadflow_dead_letters_total",
                "Undecodable or invalid messages written to "
                "funnel.dead_letters.",
                s->dead_letters);
    put_counter(f, "leadflow_anomalies_total",
                "State-machine anomalies written to funnel.anomalies, each "
                "once: one a recompute derives again is not new.",
                s->anomalies);
    put_counter(f, "leadflow_leads_recomputed_total",
                "Leads recomputed from their stored events (late events).",
                s->recomputed);
    put_identity(f, s);
    put_counter(f, "leadflow_batches_total",
                "Batches committed to PostgreSQL (one transaction each).",
                s->batches);
    put_counter(f, "leadflow_pg_retries_total",
                "PostgreSQL attempts retried (connection lost, batch "
                "refused, offsets unreadable).",
                m->pg_retries);

    put_histogram(f, m);
    put_gauge(f, "leadflow_last_commit_timestamp_seconds",
              "Unix time of the last batch committed to PostgreSQL "
              "(0: none yet).",
              (double)m->last_commit_ms / 1000.0);
    put_gauge(f, "leadflow_assigned_partitions",
              "Partitions assigned to this instance.", (double)m->nparts);
    put_gauge(f, "leadflow_db_up",
              "1 if the last PostgreSQL connection, query or batch "
              "succeeded.",
              m->db_ok ? 1 : 0);
    put_parts(f, m, "leadflow_consumer_lag",
              "Messages in the partition past the offset stored in "
              "funnel.offsets.",
              PART_LAG);
    put_parts(f, m, "leadflow_consumer_offset",
              "Next offset to project, as stored in funnel.offsets.",
              PART_STORED);
    put_parts(f, m, "leadflow_partition_high_watermark",
              "The partition's end offset, as last seen by the consumer.",
              PART_HIGH);
    put_sla(f, m);
}

char *lf_metrics_render(lf_metrics_t *m, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f;
    bool failed;

    if (!m || !(f = open_memstream(&buf, &n)))
        return NULL;
    pthread_mutex_lock(&m->lock);
    put_all(f, m);
    pthread_mutex_unlock(&m->lock);
    failed = ferror(f) != 0;
    if (fclose(f) || failed) { /* out of memory */
        free(buf);
        return NULL;
    }
    if (len)
        *len = n;
    return buf;
}

bool lf_metrics_healthy(lf_metrics_t *m, char *why, size_t why_size)
{
    bool ok;
    const char *reason = NULL;

    if (!m)
        return false;
    pthread_mutex_lock(&m->lock);
    if (!m->assigned)
        reason = "no partitions assigned";
    else if (!m->db_ok)
        reason = "PostgreSQL unreachable or refusing batches";
    ok = !reason;
    pthread_mutex_unlock(&m->lock);
    if (why && why_size)
        snprintf(why, why_size, "%s", ok ? "ok" : reason);
    return ok;
}

/* ---- HTTP (libmicrohttpd's thread) ------------------------------------ */

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status,
                             char *body, size_t len, const char *type)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, body, body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    enum MHD_Result r;

    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

static char *text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *text(const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;

    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **req_cls)
{
    lf_metrics_t *m = cls;
    static const char *plain = "text/plain; charset=utf-8";
    char *body;

    (void)version;
    (void)upload;
    (void)upload_size;
    (void)req_cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) &&
        strcmp(method, MHD_HTTP_METHOD_HEAD)) {
        body = text("only GET and HEAD\n");
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, body,
                     body ? strlen(body) : 0, plain);
    }
    if (!strcmp(url, "/metrics")) {
        size_t len = 0;
        body = lf_metrics_render(m, &len);
        if (!body)
            return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, 0, plain);
        return reply(conn, MHD_HTTP_OK, body, len,
                     "text/plain; version=0.0.4; charset=utf-8");
    }
    if (!strcmp(url, "/healthz")) {
        char why[128];
        bool ok = lf_metrics_healthy(m, why, sizeof(why));
        body = text("%s\n", why);
        return reply(conn, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                     body, body ? strlen(body) : 0, plain);
    }
    body = text("not found; try /metrics or /healthz\n");
    return reply(conn, MHD_HTTP_NOT_FOUND, body, body ? strlen(body) : 0,
                 plain);
}

/* libmicrohttpd's own complaints (a client misbehaving, a socket error),
 * through our log. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512], q[600];
    size_t n;

    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    LF_LOG(LF_LOG_WARNING, "msg=\"metrics server\" error=%s",
           lf_log_quote(msg, q, sizeof(q)));
}

/* Split "HOST:PORT" ("[v6]:PORT", ":PORT") and resolve it. */
static lf_err_t parse_listen(const char *listen, struct sockaddr_storage *ss,
                             socklen_t *sslen, char *errstr, size_t errstr_size)
{
    char host[256];
    const char *colon = strrchr(listen, ':'), *port, *h = listen;
    size_t hlen;
    char *end;
    long pn;
    struct addrinfo hints = {0}, *ai = NULL;
    int e;

    if (!colon)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "metrics address \"%s\": expected HOST:PORT", listen);
    port = colon + 1;
    pn = strtol(port, &end, 10);
    if (!*port || *end || pn < 0 || pn > 65535)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "metrics address \"%s\": port must be 0..65535",
                         listen);
    hlen = (size_t)(colon - listen);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen >= sizeof(host))
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "metrics address \"%s\": host too long", listen);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    hints.ai_family = hlen ? AF_UNSPEC : AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if ((e = getaddrinfo(hlen ? host : NULL, port, &hints, &ai)) || !ai)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "metrics address \"%s\": %s", listen,
                         e ? gai_strerror(e) : "no address");
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *sslen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return LF_OK;
}

lf_err_t lf_metrics_new(const char *listen, lf_metrics_t **out, char *errstr,
                        size_t errstr_size)
{
    lf_metrics_t *m;
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    lf_err_t err;

    *out = NULL;
    if (listen &&
        (err = parse_listen(listen, &ss, &sslen, errstr, errstr_size)))
        return err;
    if (!(m = calloc(1, sizeof(*m))))
        return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
    pthread_mutex_init(&m->lock, NULL);
    if (listen) {
        unsigned flags =
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
        if (ss.ss_family == AF_INET6)
            flags |= MHD_USE_IPv6;
        /* Scrapes are small and rare: one thread, a few connections, and a
         * short timeout so an idle client cannot hold a slot. */
        /* The logger first, or MHD reports on stderr until it is set. */
        /* MHD binds MHD_OPTION_SOCK_ADDR; the port is given too, only so
         * that its own messages name the port asked for, not 0. */
        uint16_t port = ntohs(ss.ss_family == AF_INET6
                                  ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                  : ((struct sockaddr_in *)&ss)->sin_port);
        m->mhd = MHD_start_daemon(
            flags, port, NULL, NULL, on_request, m, MHD_OPTION_EXTERNAL_LOGGER,
            on_mhd_log, (void *)NULL, MHD_OPTION_SOCK_ADDR, &ss,
            MHD_OPTION_CONNECTION_LIMIT, 32u, MHD_OPTION_CONNECTION_TIMEOUT,
            10u, MHD_OPTION_END);
        if (!m->mhd) {
            lf_metrics_destroy(m);
            return lf_seterr(LF_ERR_IO, errstr, errstr_size,
                             "metrics address %s: cannot listen (in use, "
                             "or not an address of this host)",
                             listen);
        }
        const union MHD_DaemonInfo *info =
            MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_LISTEN_FD);
        struct sockaddr_storage bound;
        socklen_t blen = sizeof(bound);
        if (info &&
            getsockname(info->listen_fd, (struct sockaddr *)&bound, &blen) == 0)
            m->port = ntohs(bound.ss_family == AF_INET6
                                ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                : ((struct sockaddr_in *)&bound)->sin_port);
    }
    *out = m;
    return LF_OK;
}

int lf_metrics_port(const lf_metrics_t *m)
{
    return m ? m->port : 0;
}

void lf_metrics_destroy(lf_metrics_t *m)
{
    if (!m)
        return;
    if (m->mhd)
        MHD_stop_daemon(m->mhd);
    sla_destroy(m);
    parts_clear(m);
    free(m->parts);
    pthread_mutex_destroy(&m->lock);
    free(m);
}
