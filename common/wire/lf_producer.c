/* lf_producer.c: LeadEvents to Kafka through one idempotent librdkafka
 * producer, framed Avro values, CloudEvents headers. */
#include "lf_producer.h"

#include "lf_buf.h"
#include "lf_codec.h"
#include "lf_log.h"
#include "lf_time.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct lf_producer_s {
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    char *topic;
    pthread_mutex_t lock; /* guards codec and buf */
    lf_codec_t *codec;
    lf_registry_t *reg; /* the codec's; NULL without schema.registry.url */
    int32_t schema_id;  /* framed into every value */
    lf_buf_t buf;
    lf_delivery_cb_t *dr_cb;
    void *dr_opaque;
    const volatile sig_atomic_t *interrupt;
    atomic_int_fast64_t emitted, delivered, failed;
    atomic_bool fatal;
    char ce_type[LF_EV__COUNT][64]; /* "leadflow.lead.<type>", made once */
};

/*
 * The defaults, one table. Why each:
 * - enable.idempotence: librdkafka retries after a timeout or a broker
 *   restart would otherwise write an event twice or out of order; with it
 *   the broker discards the retried copy (no duplicate in the topic).
 * - acks=all: "delivered" must mean "survives the loss of the leader".
 * - compression.type=lz4: cheap on CPU, and the dev broker keeps only 5 MiB
 *   per partition, so smaller batches keep more history.
 * - linger.ms=5: measured with leadflow-gen --produce --leads 100000
 *   (392,284 events, 4 partitions, leadflow-devbroker on loopback, 2
 *   shared cores; 5 rounds, median events/s and delivery latency p50/p99):
 *   0 ms 234k/s (0.3/7.0 ms), 1 ms 279k/s (1.0/3.2 ms), 5 ms 279k/s
 *   (4.1/8.2 ms), 10 ms 259k/s (6.3/13.3 ms), 20 ms 237k/s (12.8/23.7 ms),
 *   50 ms 214k/s (34.1/66.2 ms). Throughput peaks at 1-5 ms (the encoder,
 *   not the broker, is then the limit) and falls past 10 ms. We take 5 ms:
 *   the same peak, and more room to fill batches on a real network whose
 *   round trips are longer than loopback's, for a few ms of latency.
 * - partitioner=murmur2_random: Java's placement of a key, so a lead lands
 *   on the same partition whatever language produced its events, and one
 *   lead's events stay in order.
 * - message.timeout.ms=300000: a broker restart or a leader election must
 *   not turn into failed events; five minutes of retries first.
 */
static const struct {
    const char *key, *value;
} producer_defaults[] = {
    {"enable.idempotence", "true"},
    {"acks", "all"},
    {"compression.type", "lz4"},
    {"linger.ms", LF_PRODUCER_LINGER_MS},
    {"partitioner", "murmur2_random"},
    {"message.timeout.ms", LF_PRODUCER_MESSAGE_TIMEOUT_MS},
};
#define N_DEFAULTS (sizeof(producer_defaults) / sizeof(producer_defaults[0]))

lf_err_t lf_producer_conf_defaults(lf_conf_t *conf)
{
    for (size_t i = 0; i < N_DEFAULTS; i++)
        if (lf_conf_default(conf, producer_defaults[i].key,
                            producer_defaults[i].value))
            return LF_ERR_NOMEM;
    if (lf_conf_default(conf, LF_CONF_TOPIC, LF_CONF_DEFAULT_TOPIC))
        return LF_ERR_NOMEM;
    return LF_OK;
}

bool lf_producer_err_retriable(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
    case RD_KAFKA_RESP_ERR__DESTROY:
    case RD_KAFKA_RESP_ERR__RETRY:
    case RD_KAFKA_RESP_ERR__WAIT_COORD:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR:
        return true;
    default:
        return false;
    }
}

/* Runs inside rd_kafka_poll()/flush() on the application's thread. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm,
                        void *opaque)
{
    lf_producer_t *p = opaque;
    lf_delivery_t dr = {0};
    char reason[512];

    (void)rk;
    dr.msg_opaque = rkm->_private;
    dr.err = rkm->err;
    dr.status = rd_kafka_message_status(rkm);
    dr.partition = rkm->partition;
    dr.offset = rkm->offset;
    dr.key = rkm->key;
    dr.key_len = rkm->key_len;
    dr.latency_us = rd_kafka_message_latency(rkm);
    if (rkm->err) {
        const char *fate;
        switch (dr.status) {
        case RD_KAFKA_MSG_STATUS_NOT_PERSISTED:
            fate = "the broker did not write it";
            break;
        case RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED:
            fate = "the broker may have written it; re-sending is safe, "
                   "the event_id is the same";
            break;
        default:
            fate = "the broker wrote it but did not acknowledge it";
            break;
        }
        snprintf(reason, sizeof(reason), "delivery failed: %s (%s)",
                 rd_kafka_err2str(rkm->err), fate);
        dr.reason = reason;
        atomic_fetch_add(&p->failed, 1);
    } else {
        atomic_fetch_add(&p->delivered, 1);
    }
    if (p->dr_cb)
        p->dr_cb(&dr, p->dr_opaque);
}

/* Runs inside rd_kafka_poll() on the application's thread. librdkafka also
 * logs most of these through the log callback; this adds what the
 * application must know: all brokers down, and fatal errors. */
static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    lf_producer_t *p = opaque;
    char q[600];

    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, why, sizeof(why));
        atomic_store(&p->fatal, true);
        LF_LOG(LF_LOG_CRIT,
               "msg=\"fatal producer error: no more events can be sent\" "
               "err=%s reason=%s",
               rd_kafka_err2name(orig), lf_log_quote(why, q, sizeof(q)));
        return;
    }
    LF_LOG(err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ? LF_LOG_WARNING
                                                      : LF_LOG_NOTICE,
           "msg=\"kafka error (librdkafka retries)\" err=%s reason=%s",
           rd_kafka_err2name((rd_kafka_resp_err_t)err),
           lf_log_quote(reason, q, sizeof(q)));
}

/*
 * Learn the schema id to frame values with before anything is sent (with a
 * registry: register our schema under "<topic>-value"). A registry that is
 * away is retried with backoff for schema.registry.retry.timeout.ms;
 * nothing is produced meanwhile, so nothing can be reported delivered that
 * was not. @returns lf_codec_writer_id()'s result, LF_ERR_TEMPORARY if the
 * registry stayed away.
 */
static lf_err_t learn_schema_id(lf_producer_t *p, char *errstr,
                                size_t errstr_size)
{
    int64_t start = lf_now_mono_ms();
    char why[1024], q[1100];
    lf_err_t err;

    for (int attempt = 1;; attempt++) {
        err = lf_codec_writer_id(p->codec, p->topic, &p->schema_id, why,
                                 sizeof(why));
        if (err != LF_ERR_TEMPORARY)
            break;
        int64_t waited = lf_now_mono_ms() - start,
                limit = lf_registry_retry_timeout_ms(p->reg);
        int delay = 100 << (attempt < 6 ? attempt - 1 : 5); /* to 3.2 s */
        /* The last attempt is made at the deadline, not a backoff
         * before it. */
        if (waited + delay > limit)
            delay = (int)(limit - waited);
        if (delay <= 0)
            return lf_seterr(err, errstr, errstr_size,
                             "%s (gave up after %d attempts in %.1f s, "
                             "%s=%lld)",
                             why, attempt, (double)waited / 1000.0,
                             LF_CONF_SR_RETRY,
                             (long long)lf_registry_retry_timeout_ms(p->reg));
        LF_LOG(LF_LOG_WARNING,
               "msg=\"schema registry unavailable, will retry\" attempt=%d "
               "retry_in_ms=%d error=%s",
               attempt, delay, lf_log_quote(why, q, sizeof(q)));
        /* A signal cuts the sleep short (EINTR) and the wait with it. */
        nanosleep(&(struct timespec){delay / 1000, (delay % 1000) * 1000000L},
                  NULL);
        if (p->interrupt && *p->interrupt)
            return lf_seterr(LF_ERR_TEMPORARY, errstr, errstr_size,
                             "interrupted while waiting for the schema "
                             "registry (%s): nothing was sent",
                             why);
    }
    if (err)
        return lf_seterr(err, errstr, errstr_size, "%s", why);
    if (p->reg)
        LF_LOG(LF_LOG_INFO,
               "msg=\"schema registered\" registry=%s subject=%s-value "
               "schema_id=%d",
               lf_registry_url(p->reg), p->topic, (int)p->schema_id);
    return LF_OK;
}

lf_producer_t *lf_producer_new(const lf_conf_t *conf, char *errstr,
                               size_t errstr_size)
{
    lf_producer_t *p = NULL;

    lf_producer_create(conf, &p, errstr, errstr_size);
    return p;
}

lf_err_t lf_producer_create(const lf_conf_t *conf, lf_producer_t **out,
                            char *errstr, size_t errstr_size)
{
    return lf_producer_create_stoppable(conf, NULL, out, errstr, errstr_size);
}

lf_err_t lf_producer_create_stoppable(const lf_conf_t *conf,
                                      const volatile sig_atomic_t *stop,
                                      lf_producer_t **out, char *errstr,
                                      size_t errstr_size)
{
    lf_producer_t *p = calloc(1, sizeof(*p));
    rd_kafka_conf_t *rkc = NULL;
    const char *topic = lf_conf_get(conf, LF_CONF_TOPIC);
    char why[512];
    lf_err_t err = LF_ERR_INVALID;

    *out = NULL;
    if (!p)
        return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
    pthread_mutex_init(&p->lock, NULL);
    p->interrupt = stop;
    for (int t = 0; t < LF_EV__COUNT; t++)
        snprintf(p->ce_type[t], sizeof(p->ce_type[t]), "leadflow.lead.%s",
                 lf_event_type_name((lf_event_type_t)t));
    if (!(p->topic = strdup(topic && *topic ? topic : LF_CONF_DEFAULT_TOPIC))) {
        err = lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
        goto fail;
    }
    if ((err = lf_codec_from_conf(conf, &p->codec, errstr, errstr_size)))
        goto fail;
    p->reg = lf_codec_registry(p->codec); /* the codec's */
    err = LF_ERR_INVALID; /* what the settings below fail with */
    if (!(rkc = lf_conf_to_rdkafka(conf, errstr, errstr_size)))
        goto fail;
    for (size_t i = 0; i < N_DEFAULTS; i++) {
        if (lf_conf_get(conf, producer_defaults[i].key))
            continue;
        if (rd_kafka_conf_set(rkc, producer_defaults[i].key,
                              producer_defaults[i].value, why,
                              sizeof(why)) != RD_KAFKA_CONF_OK) {
            lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                      "configuration \"%s\": %s", producer_defaults[i].key,
                      why);
            goto fail;
        }
    }
    rd_kafka_conf_set_opaque(rkc, p);
    rd_kafka_conf_set_dr_msg_cb(rkc, on_delivery);
    rd_kafka_conf_set_error_cb(rkc, on_error);
    if (!(p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, rkc, why, sizeof(why)))) {
        err = lf_seterr(LF_ERR_KAFKA, errstr, errstr_size,
                        "cannot create the Kafka producer: %s", why);
        goto fail;
    }
    rkc = NULL; /* rd_kafka_new() took it */
    if (!(p->rkt = rd_kafka_topic_new(p->rk, p->topic, NULL))) {
        err = lf_seterr(LF_ERR_KAFKA, errstr, errstr_size, "topic \"%s\": %s",
                        p->topic, rd_kafka_err2str(rd_kafka_last_error()));
        goto fail;
    }
    /* Last: every setting is known good before we wait on a registry. */
    if ((err = learn_schema_id(p, errstr, errstr_size)))
        goto fail;
    *out = p;
    return LF_OK;

fail:
    if (rkc)
        rd_kafka_conf_destroy(rkc);
    lf_producer_destroy(p);
    return err;
}

void lf_producer_set_delivery_cb(lf_producer_t *p, lf_delivery_cb_t *cb,
                                 void *opaque)
{
    p->dr_cb = cb;
    p->dr_opaque = opaque;
}

void lf_producer_set_interrupt(lf_producer_t *p,
                               const volatile sig_atomic_t *flag)
{
    p->interrupt = flag;
}

/* The CloudEvents Kafka protocol binding, binary content mode: the event's
 * attributes as ce_* headers, the data (our Avro value) as the value. */
static rd_kafka_headers_t *ce_headers(const lf_producer_t *p,
                                      const lf_event_t *ev)
{
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(7);
    char ts[40];

    lf_time_format(ev->occurred_at, ts, sizeof(ts));
    rd_kafka_header_add(hdrs, "ce_specversion", -1, "1.0", -1);
    rd_kafka_header_add(hdrs, "ce_id", -1, ev->event_id, -1);
    rd_kafka_header_add(hdrs, "ce_type", -1, p->ce_type[ev->type], -1);
    rd_kafka_header_add(hdrs, "ce_source", -1, ev->source, -1);
    rd_kafka_header_add(hdrs, "ce_time", -1, ts, -1);
    rd_kafka_header_add(hdrs, "ce_subject", -1, ev->lead_id, -1);
    rd_kafka_header_add(hdrs, "content-type", -1, "application/avro", -1);
    return hdrs;
}

/* One produce attempt. The Kafka timestamp is left to librdkafka (now):
 * stamping occurred_at instead would let time-based retention delete a
 * backfill of old events as soon as it is written. */
static rd_kafka_resp_err_t produce(lf_producer_t *p, const lf_event_t *ev,
                                   void *value, size_t len, int flags,
                                   rd_kafka_headers_t *hdrs, void *msg_opaque)
{
    return rd_kafka_producev(p->rk, RD_KAFKA_V_RKT(p->rkt),
                             RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA),
                             RD_KAFKA_V_KEY(ev->lead_id, strlen(ev->lead_id)),
                             RD_KAFKA_V_VALUE(value, len),
                             RD_KAFKA_V_MSGFLAGS(flags),
                             RD_KAFKA_V_HEADERS(hdrs),
                             RD_KAFKA_V_OPAQUE(msg_opaque), RD_KAFKA_V_END);
}

/* Queue full: librdkafka holds queue.buffering.max.messages (or .kbytes)
 * undelivered. Serve delivery reports, which frees room as the broker
 * acknowledges (or as messages time out), and try again with our own copy
 * of the value (*@p copy, taken by librdkafka once queued): never drop the
 * event. Stops early when the producer's interrupt flag is set.
 * @returns the last producev() error (QUEUE_FULL if interrupted). */
static rd_kafka_resp_err_t wait_for_room(lf_producer_t *p, const lf_event_t *ev,
                                         void **copy, size_t len,
                                         rd_kafka_headers_t *hdrs,
                                         void *msg_opaque)
{
    rd_kafka_resp_err_t rerr = RD_KAFKA_RESP_ERR__QUEUE_FULL;
    int64_t since = lf_now_mono_ms(), told = since; /* not per event */

    while (rerr == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        if (p->interrupt && *p->interrupt)
            break;
        if (lf_now_mono_ms() - told >= 5000) {
            told = lf_now_mono_ms();
            LF_LOG(LF_LOG_NOTICE,
                   "msg=\"producer queue full: waiting for the broker to "
                   "acknowledge\" in_flight=%lld waited_s=%lld",
                   (long long)lf_producer_inflight(p),
                   (long long)((told - since) / 1000));
        }
        rd_kafka_poll(p->rk, 100);
        rerr =
            produce(p, ev, *copy, len, RD_KAFKA_MSG_F_FREE, hdrs, msg_opaque);
        if (!rerr)
            *copy = NULL; /* librdkafka frees it */
    }
    return rerr;
}

lf_err_t lf_producer_emit_opaque(lf_producer_t *p, const lf_event_t *ev,
                                 void *msg_opaque, char *errstr,
                                 size_t errstr_size)
{
    rd_kafka_headers_t *hdrs;
    rd_kafka_resp_err_t rerr = RD_KAFKA_RESP_ERR_NO_ERROR;
    bool counted = false;
    void *copy = NULL;
    size_t len = 0;
    lf_err_t err;

    if ((err = lf_event_validate(ev, errstr, errstr_size)))
        return err;
    if (atomic_load(&p->fatal))
        return lf_seterr(LF_ERR_KAFKA, errstr, errstr_size,
                         "the producer hit a fatal error and cannot send");
    hdrs = ce_headers(p, ev);

    pthread_mutex_lock(&p->lock);
    err = lf_codec_encode(p->codec, ev, p->schema_id, &p->buf, errstr,
                          errstr_size);
    if (!err) {
        /* Count first: the report may come before producev() returns. */
        counted = true;
        atomic_fetch_add(&p->emitted, 1);
        rerr = produce(p, ev, p->buf.data, p->buf.len, RD_KAFKA_MSG_F_COPY,
                       hdrs, msg_opaque);
        if (rerr == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            /* Keep our own copy so the lock is not held while waiting. */
            len = p->buf.len;
            if ((copy = malloc(len ? len : 1)))
                memcpy(copy, p->buf.data, len);
            else
                err = lf_seterr(LF_ERR_NOMEM, errstr, errstr_size,
                                "out of memory");
        }
    }
    pthread_mutex_unlock(&p->lock);
    if (err) {
        if (counted)
            atomic_fetch_sub(&p->emitted, 1);
        rd_kafka_headers_destroy(hdrs);
        return err;
    }

    if (rerr == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        rerr = wait_for_room(p, ev, &copy, len, hdrs, msg_opaque);
    free(copy);
    if (rerr) {
        atomic_fetch_sub(&p->emitted, 1);
        rd_kafka_headers_destroy(hdrs); /* not taken on failure */
        if (rerr == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return lf_seterr(LF_ERR_TEMPORARY, errstr, errstr_size,
                             "interrupted while waiting for room in the "
                             "producer queue; event not sent");
        return lf_seterr(LF_ERR_KAFKA, errstr, errstr_size,
                         "cannot produce to \"%s\": %s", p->topic,
                         rd_kafka_err2str(rerr));
    }
    rd_kafka_poll(p->rk, 0); /* serve reports as we go */
    return LF_OK;
}

lf_err_t lf_producer_emit(lf_producer_t *p, const lf_event_t *ev, char *errstr,
                          size_t errstr_size)
{
    return lf_producer_emit_opaque(p, ev, NULL, errstr, errstr_size);
}

int lf_producer_poll(lf_producer_t *p, int timeout_ms)
{
    return rd_kafka_poll(p->rk, timeout_ms);
}

int64_t lf_producer_inflight(const lf_producer_t *p)
{
    return atomic_load(&p->emitted) - atomic_load(&p->delivered) -
           atomic_load(&p->failed);
}

lf_err_t lf_producer_flush(lf_producer_t *p, int timeout_ms)
{
    int64_t deadline = lf_now_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);

    /* rd_kafka_flush() waits for librdkafka's queues; the reports it
     * enqueues are then served by poll. Loop until our own count is 0. */
    for (;;) {
        int64_t left = deadline - lf_now_mono_ms();
        rd_kafka_flush(p->rk, left > 0 ? (int)(left < 100 ? left : 100) : 0);
        rd_kafka_poll(p->rk, 0);
        if (lf_producer_inflight(p) <= 0)
            return LF_OK;
        if (left <= 0)
            return LF_ERR_TEMPORARY;
    }
}

void lf_producer_purge(lf_producer_t *p, int timeout_ms)
{
    int64_t deadline = lf_now_mono_ms() + timeout_ms;

    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    while (lf_producer_inflight(p) > 0 && lf_now_mono_ms() < deadline)
        rd_kafka_poll(p->rk, 50);
}

void lf_producer_counts(const lf_producer_t *p, int64_t *emitted,
                        int64_t *delivered, int64_t *failed)
{
    if (emitted)
        *emitted = atomic_load(&p->emitted);
    if (delivered)
        *delivered = atomic_load(&p->delivered);
    if (failed)
        *failed = atomic_load(&p->failed);
}

bool lf_producer_fatal(const lf_producer_t *p)
{
    return atomic_load(&p->fatal);
}

rd_kafka_t *lf_producer_rk(lf_producer_t *p)
{
    return p->rk;
}

const char *lf_producer_topic(const lf_producer_t *p)
{
    return p->topic;
}

void lf_producer_destroy(lf_producer_t *p)
{
    if (!p)
        return;
    if (p->rk) {
        /* Every emitted event gets its report, even now: purge what is
         * left and serve the failures, so the caller can free its
         * per-message state. */
        if (lf_producer_inflight(p) > 0)
            lf_producer_purge(p, 5000);
        if (p->rkt)
            rd_kafka_topic_destroy(p->rkt);
        rd_kafka_destroy(p->rk);
    }
    lf_codec_destroy(p->codec);
    lf_buf_free(&p->buf);
    free(p->topic);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
