/* lf_lanes.c: the projector's writer lanes (lf_lanes.h). */
#include "lf_lanes.h"

#include "lf_log.h"
#include "lf_pg.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct lane_s {
    struct lf_lanes_s *w;
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
    unsigned connects;   /* connections the writer opened */
} lane_t;

struct lf_lanes_s {
    lf_lanes_conf_t conf;
    lane_t *lanes;
    int n; /* lanes made: what lf_lanes_destroy() tears down */
    /* Main thread: the next offset funnel.offsets is believed to hold, per
     * assigned partition (LF_PROJECTOR_NO_ROW: no row). */
    rd_kafka_topic_partition_list_t *pos;
    atomic_bool stale;
    atomic_bool refused; /* a batch needs another configuration */
    char refused_why[1024];
    atomic_uint_fast64_t retries;
    pthread_mutex_t stats_lock;
    lf_projector_stats_t stats; /* every lane's committed batches */
};

/* ---- the writers --------------------------------------------------- */

static bool stopping(const lf_lanes_t *w)
{
    return w->conf.stop && *w->conf.stop;
}

/* A retry is pointless: stopping, the lane asked to give up, or the
 * position no longer trusted. */
static bool giving_up(lane_t *lane)
{
    return stopping(lane->w) || atomic_load(&lane->give_up) ||
           atomic_load(&lane->w->stale);
}

/* Sleep up to ms, in slices, unless the lane is giving up. */
static void nap(lane_t *lane, int ms)
{
    while (ms > 0 && !giving_up(lane)) {
        int s = ms < 100 ? ms : 100;
        struct timespec ts = {0, (long)s * 1000000L};
        nanosleep(&ts, NULL);
        ms -= s;
    }
}

int lf_lanes_backoff_ms(int attempt)
{
    int ms = 100 << (attempt < 7 ? attempt : 7);
    return ms > 10000 ? 10000 : ms;
}

static void hook_db(lf_lanes_t *w, bool up)
{
    if (w->conf.hooks.db)
        w->conf.hooks.db(w->conf.hooks.opaque, up);
}

/* (Re)connect the lane if needed; false when it failed (logged). A new
 * connection after the first may reach another server (libpq's multi-host
 * failover) that lacks commits this one acknowledged: the lanes turn
 * stale, and the caller re-reads the stored offsets. Writer thread. */
static bool db_ready(lane_t *lane)
{
    lf_lanes_t *w = lane->w;
    char errstr[512], q[600];

    if (lane->conn && PQstatus(lane->conn) == CONNECTION_OK)
        return true;
    PQfinish(lane->conn);
    /* Both batches' staging tables were the old connection's. */
    pthread_mutex_lock(&lane->lock);
    lf_projector_conn_reset(lane->fill);
    lf_projector_conn_reset(lane->write);
    pthread_mutex_unlock(&lane->lock);
    lane->conn = lf_pg_connect(w->conf.conninfo, errstr, sizeof(errstr));
    hook_db(w, lane->conn != NULL);
    if (!lane->conn) {
        LF_LOG(LF_LOG_WARNING,
               "msg=\"cannot reach PostgreSQL, will retry\" "
               "error=%s",
               lf_log_quote(errstr, q, sizeof(q)));
        return false;
    }
    if (lane->connects++) {
        LF_LOG(LF_LOG_WARNING,
               "msg=\"new database connection: the stored offsets will be "
               "re-read\" writer=%d",
               lane->index);
        atomic_store(&w->stale, true);
    }
    return true;
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
    to->merges += now->merges - before->merges;
    to->voids += now->voids - before->voids;
    to->erasures += now->erasures - before->erasures;
    to->merge_anomalies += now->merge_anomalies - before->merge_anomalies;
    to->void_anomalies += now->void_anomalies - before->void_anomalies;
    to->batches += now->batches - before->batches;
    for (int t = 0; t < LF_EV__COUNT; t++)
        to->by_type[t] += now->by_type[t] - before->by_type[t];
}

/* A batch's partition ranges, kept for the debug line after its commit. */
typedef struct range_s {
    const char *topic;
    int32_t partition;
    int64_t from, next;
} range_t;

/* The ranges of @p p, or NULL when not logged (or out of memory). */
static range_t *ranges_of(const lf_projector_t *p, size_t *n)
{
    range_t *r = NULL, one;

    *n = 0;
    if (lf_log_level < LF_LOG_DEBUG)
        return NULL;
    while (lf_projector_partition(p, *n, &one.topic, &one.partition, &one.from,
                                  &one.next)) {
        range_t *g = realloc(r, (*n + 1) * sizeof(*r));
        if (!g)
            break;
        r = g;
        r[(*n)++] = one;
    }
    return r;
}

/* Log each partition range a committed batch wrote: the batch holds the
 * offsets from..to-1, and funnel.offsets went from `from` to `to`. Two
 * writers never write the same range, so the lines chain per partition. */
static void log_committed(const lane_t *lane, const range_t *r, size_t n)
{
    char from[24];

    for (size_t i = 0; i < n; i++) {
        if (r[i].from == LF_PROJECTOR_NO_ROW)
            snprintf(from, sizeof(from), "beginning");
        else if (r[i].from == LF_PROJECTOR_UNDECLARED)
            snprintf(from, sizeof(from), "unknown");
        else
            snprintf(from, sizeof(from), "%lld", (long long)r[i].from);
        LF_LOG(LF_LOG_DEBUG,
               "msg=committed writer=%d topic=%s partition=%d from=%s "
               "to=%lld",
               lane->index, r[i].topic, (int)r[i].partition, from,
               (long long)r[i].next);
    }
}

/* One attempt at the lane's batch; on success account for it and report
 * it. Writer thread. */
static lf_err_t flush_once(lane_t *lane, char *errstr, size_t errstr_size)
{
    lf_lanes_t *w = lane->w;
    lf_projector_t *p = lane->write;
    rd_kafka_topic_partition_list_t *committed = NULL;
    lf_projector_stats_t before = *lf_projector_stats(p), total;
    int64_t t0 = lf_now_mono_ms();
    size_t nranges;
    range_t *ranges = ranges_of(p, &nranges);
    lf_err_t err;

    err = lf_projector_flush(p, lane->conn, &committed, errstr, errstr_size);
    if (err == LF_OK) {
        log_committed(lane, ranges, nranges);
        pthread_mutex_lock(&w->stats_lock);
        stats_add(&w->stats, lf_projector_stats(p), &before);
        total = w->stats;
        pthread_mutex_unlock(&w->stats_lock);
        if (w->conf.hooks.committed)
            w->conf.hooks.committed(
                w->conf.hooks.opaque, &total, atomic_load(&w->retries),
                (double)(lf_now_mono_ms() - t0) / 1000.0, committed);
    }
    if (committed)
        rd_kafka_topic_partition_list_destroy(committed);
    free(ranges);
    return err;
}

/* Write the lane's batch; retry with backoff until it commits, or, once
 * asked to give up (revoke, stop), after one attempt. Never skips: a
 * refused batch blocks its lane, and soon the stream, loudly. Nothing is
 * written while the lanes are stale. Writer thread.
 * @returns whether it committed. */
static bool write_batch(lane_t *lane)
{
    lf_lanes_t *w = lane->w;
    char errstr[1024], q[1100];

    for (int attempt = 0; lf_projector_pending(lane->write); attempt++) {
        if (attempt) {
            if (giving_up(lane))
                return false;
            atomic_fetch_add(&w->retries, 1);
            nap(lane, lf_lanes_backoff_ms(attempt - 1));
        }
        if (atomic_load(&w->stale) || (attempt && giving_up(lane)))
            return false;
        if (!db_ready(lane))
            continue;
        if (atomic_load(&w->stale))
            return false;
        lf_err_t err = flush_once(lane, errstr, sizeof(errstr));
        if (err == LF_OK)
            return true;
        if (err == LF_ERR_CONFIG) {
            LF_LOG(LF_LOG_ERR,
                   "msg=\"batch refused: the configuration cannot write it; "
                   "stopping\" writer=%d error=%s",
                   lane->index, lf_log_quote(errstr, q, sizeof(q)));
            pthread_mutex_lock(&w->stats_lock);
            snprintf(w->refused_why, sizeof(w->refused_why), "%s", errstr);
            pthread_mutex_unlock(&w->stats_lock);
            atomic_store(&w->refused, true);
            return false;
        }
        if (err == LF_ERR_STALE) {
            LF_LOG(LF_LOG_WARNING,
                   "msg=\"batch refused: the database is not where this "
                   "projector believed, re-reading the stored offsets\" "
                   "writer=%d error=%s",
                   lane->index, lf_log_quote(errstr, q, sizeof(q)));
            atomic_store(&w->stale, true);
            return false;
        }
        LF_LOG(LF_LOG_ERR,
               "msg=\"batch not written, will retry\" writer=%d attempt=%d "
               "transient=%s error=%s",
               lane->index, attempt + 1, err == LF_ERR_TEMPORARY ? "yes" : "no",
               lf_log_quote(errstr, q, sizeof(q)));
        hook_db(w, false);
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
            /* Rolled back, or its COMMIT's answer lost with the
             * connection (then it may be in): whoever owns the
             * partitions next, or this projector once it re-read them,
             * reads again from funnel.offsets what is not. */
            LF_LOG(LF_LOG_WARNING,
                   "msg=\"batch not confirmed; what was not committed "
                   "will be re-read\" "
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

/* ---- the main thread ----------------------------------------------- */

/* Wait on the lane's condition up to 200 ms. Lock held. */
static void lane_timedwait(lane_t *lane)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 200 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&lane->cond, &lane->lock, &ts);
}

/* Hand the lane's filled batch to its writer. @p wait: wait for the
 * writer to finish the one before (calling the waiting hook meanwhile);
 * else hand it over only if the writer is free. @returns whether it was
 * handed over. */
static bool hand_over(lf_lanes_t *w, lane_t *lane, bool wait)
{
    int64_t last_hook = lf_now_mono_ms();
    bool done = false;

    if (!lf_projector_pending(lane->fill))
        return true;
    pthread_mutex_lock(&lane->lock);
    while (lane->busy && wait) {
        lane_timedwait(lane);
        if (lane->busy && w->conf.hooks.waiting &&
            lf_now_mono_ms() - last_hook >= 2000) {
            /* Stuck behind a batch that does not commit. */
            pthread_mutex_unlock(&lane->lock);
            w->conf.hooks.waiting(w->conf.hooks.opaque);
            last_hook = lf_now_mono_ms();
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

lf_err_t lf_lanes_add(lf_lanes_t *w, const rd_kafka_message_t *rkm)
{
    lane_t *lane = &w->lanes[rkm->partition % w->n];
    const char *topic = rd_kafka_topic_name(rkm->rkt);
    rd_kafka_topic_partition_t *pos;
    lf_err_t err;

    if (lf_projector_full(lane->fill, (size_t)w->conf.batch_max))
        hand_over(w, lane, true);
    if (!lf_projector_pending(lane->fill))
        lane->fill_start = lf_now_mono_ms();
    if ((err = lf_projector_add_message(lane->fill, rkm)))
        return err;
    pos = w->pos ? rd_kafka_topic_partition_list_find(w->pos, topic,
                                                      rkm->partition)
                 : NULL;
    if (pos) {
        lf_projector_continue_from(lane->fill, topic, rkm->partition,
                                   pos->offset);
        pos->offset = rkm->offset + 1;
    }
    return LF_OK;
}

bool lf_lanes_tick(lf_lanes_t *w, bool dry)
{
    int64_t now = lf_now_mono_ms();
    bool waiting = false;

    /* Small batches at low rates keep latency low, big ones at high rates
     * keep throughput high. */
    for (int i = 0; i < w->n; i++) {
        lane_t *lane = &w->lanes[i];
        if (lf_projector_pending(lane->fill) &&
            (lf_projector_full(lane->fill, (size_t)w->conf.batch_max) || dry ||
             now - lane->fill_start >= w->conf.linger_ms) &&
            !hand_over(w, lane, false))
            waiting = true;
    }
    return waiting;
}

size_t lf_lanes_filling(const lf_lanes_t *w)
{
    size_t n = 0;
    for (int i = 0; i < w->n; i++)
        n += lf_projector_pending(w->lanes[i].fill);
    return n;
}

size_t lf_lanes_pending(lf_lanes_t *w)
{
    size_t n = 0;
    for (int i = 0; i < w->n; i++) {
        lane_t *l = &w->lanes[i];
        pthread_mutex_lock(&l->lock);
        n += lf_projector_pending(l->fill) + (l->busy ? 1 : 0);
        pthread_mutex_unlock(&l->lock);
    }
    return n;
}

void lf_lanes_drain(lf_lanes_t *w, bool give_up)
{
    for (int i = 0; i < w->n; i++)
        if (give_up)
            atomic_store(&w->lanes[i].give_up, true);
    for (int i = 0; i < w->n; i++)
        hand_over(w, &w->lanes[i], true);
    for (int i = 0; i < w->n; i++) {
        lane_wait(&w->lanes[i]);
        atomic_store(&w->lanes[i].give_up, false);
    }
}

bool lf_lanes_refused(lf_lanes_t *w, char *why, size_t size)
{
    if (!atomic_load(&w->refused))
        return false;
    pthread_mutex_lock(&w->stats_lock);
    snprintf(why, size, "%s", w->refused_why);
    pthread_mutex_unlock(&w->stats_lock);
    return true;
}

bool lf_lanes_stale(const lf_lanes_t *w)
{
    return atomic_load(&w->stale);
}

void lf_lanes_reset(lf_lanes_t *w)
{
    /* Stale, the writers drop what they hold instead of writing it. */
    atomic_store(&w->stale, true);
    for (int i = 0; i < w->n; i++) {
        lane_t *lane = &w->lanes[i];
        lane_wait(lane);
        lf_projector_discard(lane->fill);
        /* The writer is idle until the next hand-over. Its next connection
         * is made after the caller re-read the stored offsets, like a
         * first one: one failover costs one re-read, not one per lane. */
        PQfinish(lane->conn);
        lane->conn = NULL;
        lane->connects = 0;
    }
    atomic_store(&w->stale, false);
}

lf_err_t lf_lanes_assign(lf_lanes_t *w,
                         const rd_kafka_topic_partition_list_t *parts)
{
    if (w->pos)
        rd_kafka_topic_partition_list_destroy(w->pos);
    w->pos = NULL;
    if (!parts)
        return LF_OK;
    if (!(w->pos = rd_kafka_topic_partition_list_copy(parts)))
        return LF_ERR_NOMEM;
    for (int i = 0; i < w->pos->cnt; i++)
        if (w->pos->elems[i].offset < 0) /* RD_KAFKA_OFFSET_BEGINNING */
            w->pos->elems[i].offset = LF_PROJECTOR_NO_ROW;
    return LF_OK;
}

bool lf_lanes_committed_as(const lf_lanes_t *w,
                           const rd_kafka_topic_partition_list_t *stored)
{
    for (int i = 0; w->pos && i < stored->cnt; i++) {
        const rd_kafka_topic_partition_t *s = &stored->elems[i];
        const rd_kafka_topic_partition_t *pos =
            rd_kafka_topic_partition_list_find(w->pos, s->topic, s->partition);
        if (pos &&
            pos->offset != (s->offset < 0 ? LF_PROJECTOR_NO_ROW : s->offset))
            return false;
    }
    return true;
}

lf_projector_stats_t lf_lanes_stats(lf_lanes_t *w)
{
    lf_projector_stats_t s;
    pthread_mutex_lock(&w->stats_lock);
    s = w->stats;
    pthread_mutex_unlock(&w->stats_lock);
    return s;
}

void lf_lanes_add_settled(lf_lanes_t *w, const lf_projector_stats_t *now,
                          const lf_projector_stats_t *before)
{
    lf_projector_stats_t was = *before;

    was.messages = now->messages;
    was.batches = now->batches;
    pthread_mutex_lock(&w->stats_lock);
    stats_add(&w->stats, now, &was);
    pthread_mutex_unlock(&w->stats_lock);
}

uint64_t lf_lanes_retries(const lf_lanes_t *w)
{
    return atomic_load(&w->retries);
}

void lf_lanes_count_retry(lf_lanes_t *w)
{
    atomic_fetch_add(&w->retries, 1);
}

/* ---- life cycle ---------------------------------------------------- */

/* Lane @p i: its batches and its writer thread. @returns false with
 * errstr set. */
static bool lane_start(lf_lanes_t *w, int i, char *errstr, size_t errstr_size)
{
    lane_t *l = &w->lanes[i];

    l->w = w;
    l->index = i;
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->cond, NULL);
    atomic_init(&l->give_up, false);
    w->n = i + 1;
    for (int k = 0; k < 2; k++) {
        lf_projector_t *p = lf_projector_new(w->conf.schema, w->conf.group,
                                             errstr, errstr_size);
        if (!p)
            return false;
        *(k ? &l->write : &l->fill) = p;
        lf_projector_use_definition(p, w->conf.definition);
        lf_projector_use_pseudonyms(p, w->conf.pseudonyms);
        /* Messages are decoded on the main thread only. */
        if (w->conf.registry)
            lf_projector_share_registry(p, w->conf.registry);
    }
    if (pthread_create(&l->thread, NULL, writer_main, l)) {
        snprintf(errstr, errstr_size, "cannot start a writer thread");
        return false;
    }
    l->started = true;
    return true;
}

lf_lanes_t *lf_lanes_new(const lf_lanes_conf_t *conf, char *errstr,
                         size_t errstr_size)
{
    lf_lanes_t *w = calloc(1, sizeof(*w));

    if (!w || !(w->lanes = calloc((size_t)conf->n, sizeof(*w->lanes)))) {
        free(w);
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    w->conf = *conf;
    atomic_init(&w->stale, false);
    atomic_init(&w->retries, 0);
    pthread_mutex_init(&w->stats_lock, NULL);
    for (int i = 0; i < conf->n; i++)
        if (!lane_start(w, i, errstr, errstr_size)) {
            lf_lanes_destroy(w);
            return NULL;
        }
    return w;
}

void lf_lanes_destroy(lf_lanes_t *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->n; i++) {
        lane_t *l = &w->lanes[i];
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
    if (w->pos)
        rd_kafka_topic_partition_list_destroy(w->pos);
    pthread_mutex_destroy(&w->stats_lock);
    free(w->lanes);
    free(w);
}
