/* lf_producer.h: the C producer API: LeadEvents to Kafka as framed Avro,
 * keyed by lead_id, with CloudEvents headers and one delivery report per
 * event. What an adapter links; leadflow-emit and leadflow-gen use it too. */
#ifndef LF_PRODUCER_H
#define LF_PRODUCER_H

#include "lf_conf.h"
#include "lf_event.h"

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdint.h>

/*
 * Typical use (see producers/leadflow-emit.c for a whole program):
 *
 *     lf_producer_t *p = lf_producer_new(conf, errstr, sizeof(errstr));
 *     lf_producer_set_delivery_cb(p, on_delivery, app);
 *     for each event:
 *         lf_producer_emit_opaque(p, &ev, my_ref, errstr, sizeof(errstr));
 *     while (lf_producer_flush(p, 1000) == LF_ERR_TEMPORARY)
 *         report progress;
 *     lf_producer_destroy(p);
 *
 * Every event accepted by an emit call gets exactly one delivery report:
 * delivered (the broker acknowledged it with acks=all) or failed (after
 * librdkafka's own retries, within message.timeout.ms, or purged). An
 * event is never reported delivered unless the broker acknowledged it.
 *
 * Threading: the emit, poll and flush calls may be made from several
 * threads (the codec is guarded by a mutex, librdkafka is thread-safe).
 * Delivery callbacks run on whichever thread is inside emit, poll, flush
 * or destroy at that moment, never on librdkafka's own threads, so a
 * single-threaded program needs no locks. A callback must not call
 * lf_producer_destroy().
 */

/** Settings the producer applies unless the configuration sets them. */
#define LF_PRODUCER_LINGER_MS          "5"
#define LF_PRODUCER_MESSAGE_TIMEOUT_MS "300000"

typedef struct lf_producer_s lf_producer_t;

/** One delivery report. Valid only during the callback: copy what you keep. */
typedef struct lf_delivery_s {
    void *msg_opaque;        /**< as passed to lf_producer_emit_opaque() */
    rd_kafka_resp_err_t err; /**< RD_KAFKA_RESP_ERR_NO_ERROR: delivered */
    /** NULL when delivered; otherwise a sentence saying why it failed and
     *  whether the broker may still have it. */
    const char *reason;
    /** RD_KAFKA_MSG_STATUS_PERSISTED when delivered; NOT_PERSISTED or
     *  POSSIBLY_PERSISTED when it failed. */
    rd_kafka_msg_status_t status;
    int32_t partition; /**< -1 if unknown */
    int64_t offset;    /**< -1 if unknown */
    const char *key;   /**< the lead_id, not NUL-terminated */
    size_t key_len;
    int64_t latency_us; /**< from emit to this report; -1 if unknown */
} lf_delivery_t;

/** The delivery callback: @p opaque is the one given to
 *  lf_producer_set_delivery_cb(). */
typedef void(lf_delivery_cb_t)(const lf_delivery_t *dr, void *opaque);

/**
 * Add the producer's defaults to @p conf for every key it does not set:
 * enable.idempotence=true, acks=all, compression.type=lz4, linger.ms,
 * partitioner=murmur2_random, message.timeout.ms, topic. Used by
 * lf_producer_new() on its own view of the settings and by programs that
 * print the effective configuration (-X dump).
 * @returns LF_OK or LF_ERR_NOMEM.
 */
lf_err_t lf_producer_conf_defaults(lf_conf_t *conf);

/**
 * Create a producer from @p conf (not kept: the caller still owns and
 * frees it): the topic from "topic" (default lead-events), every
 * non-leadflow key passed to librdkafka, the defaults of
 * lf_producer_conf_defaults() for the keys @p conf does not set.
 * Values are written in contract v2 (schemas/avro/lead_event.v2.avsc), or
 * v1 with contract.version=1, for topics whose consumers are not upgraded
 * yet: an event v1 cannot carry is then refused by the emit call, never
 * sent with a field dropped. With schema.registry.url set, the registry
 * is first asked whether subject "<topic>-value" accepts that schema (an
 * incompatible answer fails here, naming the subject and the registry's
 * reason, before anything is sent); then it is registered (lf_registry.h
 * has the settings) and the id the registry returns is framed into every
 * value; a registry that is away is retried with backoff for
 * schema.registry.retry.timeout.ms (default 60 s) before giving up.
 * Without it, the pinned id (2, or 1 for contract v1).
 * @returns a producer to free with lf_producer_destroy(), or NULL with the
 * reason in errstr (a bad key or value is named; so are the registry's
 * URL and HTTP status).
 */
lf_producer_t *lf_producer_new(const lf_conf_t *conf, char *errstr,
                               size_t errstr_size);

/**
 * lf_producer_new() that also says what kind of failure it was, for the
 * exit status: *@p out receives the producer (NULL on failure).
 * @returns LF_OK; LF_ERR_INVALID (bad configuration, or the schema
 * registry refused the schema or our credentials); LF_ERR_TEMPORARY (the
 * schema registry stayed unreachable: run again later); LF_ERR_KAFKA;
 * LF_ERR_NOMEM.
 */
lf_err_t lf_producer_create(const lf_conf_t *conf, lf_producer_t **out,
                            char *errstr, size_t errstr_size);

/**
 * lf_producer_create() whose wait for an unreachable schema registry ends
 * as soon as *@p stop becomes non-zero (a signal handler's flag; NULL:
 * never), with LF_ERR_TEMPORARY; the producer's interrupt flag
 * (lf_producer_set_interrupt()) is then @p stop as well.
 */
lf_err_t lf_producer_create_stoppable(const lf_conf_t *conf,
                                      const volatile sig_atomic_t *stop,
                                      lf_producer_t **out, char *errstr,
                                      size_t errstr_size);

/** Register the delivery callback; call before the first emit. @p cb may
 *  be NULL (reports are then only counted). */
void lf_producer_set_delivery_cb(lf_producer_t *p, lf_delivery_cb_t *cb,
                                 void *opaque);

/** When *@p flag becomes non-zero (a signal handler's flag), an emit that
 *  is waiting for queue space gives up with LF_ERR_TEMPORARY instead of
 *  waiting on. NULL to unset. */
void lf_producer_set_interrupt(lf_producer_t *p,
                               const volatile sig_atomic_t *flag);

/**
 * Validate @p ev, encode it (contract v2, or v1 with contract.version=1;
 * framed with the pinned id or the registry's) and queue it for the topic,
 * key
 * lead_id, with the CloudEvents headers. The event is copied: the caller
 * keeps ownership of @p ev. When librdkafka's queue is full it serves
 * delivery reports and retries, never dropping the event; it returns early
 * only if the interrupt flag is raised. Serves pending delivery reports.
 * @p msg_opaque comes back in the event's delivery report.
 * @returns LF_OK: exactly one delivery report will follow;
 * LF_ERR_INVALID: the event breaks the contract, or the contract version
 * written cannot carry it (errstr names the field);
 * LF_ERR_TEMPORARY: interrupted while the queue was full;
 * LF_ERR_KAFKA: librdkafka refused it (fatal producer error, message too
 * large, ...). On any error no report follows.
 */
lf_err_t lf_producer_emit_opaque(lf_producer_t *p, const lf_event_t *ev,
                                 void *msg_opaque, char *errstr,
                                 size_t errstr_size);

/** lf_producer_emit_opaque() with a NULL message opaque. */
lf_err_t lf_producer_emit(lf_producer_t *p, const lf_event_t *ev, char *errstr,
                          size_t errstr_size);

/** Serve delivery reports, waiting up to @p timeout_ms for the first.
 *  @returns the number of reports served. */
int lf_producer_poll(lf_producer_t *p, int timeout_ms);

/**
 * Wait up to @p timeout_ms until every emitted event has its delivery
 * report, serving them.
 * @returns LF_OK when nothing is in flight, LF_ERR_TEMPORARY on timeout
 * (call again, or lf_producer_purge()).
 */
lf_err_t lf_producer_flush(lf_producer_t *p, int timeout_ms);

/** Give up on every event still queued or in flight: each gets its failed
 *  delivery report (served here, up to @p timeout_ms). For shutdowns that
 *  cannot wait; purged in-flight events may still reach the topic. */
void lf_producer_purge(lf_producer_t *p, int timeout_ms);

/** Events emitted and not yet reported. */
int64_t lf_producer_inflight(const lf_producer_t *p);

/** Counters since creation. Any pointer may be NULL. */
void lf_producer_counts(const lf_producer_t *p, int64_t *emitted,
                        int64_t *delivered, int64_t *failed);

/** True once librdkafka raised a fatal error (the idempotent producer can
 *  no longer guarantee order or no duplicates); every later emit fails. */
bool lf_producer_fatal(const lf_producer_t *p);

/** The librdkafka handle, for statistics or metadata; owned by @p p. */
rd_kafka_t *lf_producer_rk(lf_producer_t *p);

/** The topic name; owned by @p p. */
const char *lf_producer_topic(const lf_producer_t *p);

/**
 * Purge what is still in flight (each gets a failed report, served here),
 * then free the producer. Call lf_producer_flush() first to deliver.
 * NULL-safe.
 */
void lf_producer_destroy(lf_producer_t *p);

/** Classify a delivery error: true if re-sending later may succeed
 *  (timeouts, broker or network down, purged), false for errors that will
 *  repeat (authorization, message too large, unknown topic). */
bool lf_producer_err_retriable(rd_kafka_resp_err_t err);

#endif
