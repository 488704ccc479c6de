/* lf_metrics.h: leadflow-project's Prometheus endpoint (/metrics) and health
 * check (/healthz): the projector's loop records what it knows, an HTTP
 * thread (libmicrohttpd) serves the latest values. */
#ifndef LF_METRICS_H
#define LF_METRICS_H

#include "lf_common.h"
#include "lf_projector.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>

/*
 * Threading: every lf_metrics_* call that records (assign, batch, db,
 * refresh) must come from one thread, the projector's loop (the rebalance
 * callback runs there too). The HTTP thread only reads a copy of the values
 * under a mutex and never calls librdkafka or libpq, so a scrape can never
 * block the consumer nor wait on it.
 *
 * Every function accepts a NULL @c m and then does nothing: a program
 * started without --metrics records into nothing.
 */

typedef struct lf_metrics_s lf_metrics_t;

/**
 * Start serving on @p listen, "HOST:PORT" ("0.0.0.0:9464", "[::1]:9464",
 * ":9464" for every IPv4 interface; PORT 0 picks a free one, see
 * lf_metrics_port()). @p listen NULL: record only, serve nothing (tests).
 * @returns LF_OK with *@p out to free with lf_metrics_destroy();
 * LF_ERR_INVALID for a malformed address, LF_ERR_IO when it cannot be
 * bound, LF_ERR_NOMEM; errstr says which.
 */
lf_err_t lf_metrics_new(const char *listen, lf_metrics_t **out, char *errstr,
                        size_t errstr_size);

/** Stop the HTTP thread (waiting for a scrape in progress) and free.
 *  NULL-safe. */
void lf_metrics_destroy(lf_metrics_t *m);

/** The TCP port served, or 0 when not serving. */
int lf_metrics_port(const lf_metrics_t *m);

/**
 * Partitions assigned, with the offsets the projector starts from (those
 * of funnel.offsets, or RD_KAFKA_OFFSET_BEGINNING): they replace the
 * previous assignment. NULL: every partition revoked. @p parts stays the
 * caller's.
 */
void lf_metrics_assign(lf_metrics_t *m,
                       const rd_kafka_topic_partition_list_t *parts);

/**
 * A batch committed to PostgreSQL in @p seconds: the counters so far, the
 * next offsets now stored in funnel.offsets (@p committed, may be NULL),
 * the commit time (now). Marks the database reachable.
 */
void lf_metrics_batch(lf_metrics_t *m, const lf_projector_stats_t *stats,
                      uint64_t pg_retries, double seconds,
                      const rd_kafka_topic_partition_list_t *committed);

/** Whether the last connection attempt, query or batch succeeded. */
void lf_metrics_db(lf_metrics_t *m, bool ok);

/**
 * Refresh the counters and, from librdkafka's local cache (no request to a
 * broker), the high watermark of every assigned partition, from which the
 * lag is computed. @p rk may be NULL (counters only).
 */
void lf_metrics_refresh(lf_metrics_t *m, rd_kafka_t *rk,
                        const lf_projector_stats_t *stats, uint64_t pg_retries);

/**
 * Also serve leadflow_sla_breaches_open{owner}: the rows of
 * funnel.open_sla_breaches per owner, read by a thread of its own on its
 * own connection to @p conninfo (copied), at most every @p interval_s
 * seconds. A scrape shows the latest successful read (nothing before the
 * first one) and never waits for PostgreSQL; an owner whose breaches are
 * all gone shows 0. A failed read is logged and retried at the next
 * interval. Call once, from the projector's thread; the thread stops in
 * lf_metrics_destroy(). @returns LF_OK, LF_ERR_INVALID if already started,
 * LF_ERR_NOMEM, or LF_ERR_IO if the thread cannot start.
 */
lf_err_t lf_metrics_watch_sla(lf_metrics_t *m, const char *conninfo,
                              int interval_s, char *errstr, size_t errstr_size);

/**
 * The Prometheus text exposition (format 0.0.4) of the current values.
 * @returns a NUL-terminated string to free(), its length in *@p len (may
 * be NULL), or NULL if out of memory.
 */
char *lf_metrics_render(lf_metrics_t *m, size_t *len);

/**
 * True while partitions are assigned and the database is reachable (what
 * /healthz answers 200 for). Otherwise false with the reason in @p why
 * (may be NULL).
 */
bool lf_metrics_healthy(lf_metrics_t *m, char *why, size_t why_size);

#endif
