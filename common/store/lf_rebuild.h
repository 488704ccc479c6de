/* lf_rebuild.h: rebuilding the funnel model into another schema, for
 * leadflow-replay rebuild: create an empty twin of schema funnel, mark it
 * complete, count its rows, and read funnel.events (with what the events do
 * not carry) as the source of a rebuild from the database. */
#ifndef LF_REBUILD_H
#define LF_REBUILD_H

#include "lf_common.h"
#include "lf_projector.h"

#include <libpq-fe.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

/**
 * Create schema @p into as an empty twin of funnel: every table of funnel
 * (LIKE ... INCLUDING ALL: columns, defaults, constraints, indexes,
 * comments), serial columns on sequences of its own, the migration list
 * copied, and a comment marking it an unfinished rebuild (@p how, e.g.
 * "from-kafka", goes into it). One transaction. With @p replace an existing
 * @p into is dropped first, waiting at most @p lock_timeout_ms for the
 * sessions reading it; without, it is an error. When @p stop (may be NULL)
 * is non-zero by then (a signal came while it waited), nothing is done.
 * @returns LF_OK, LF_ERR_INVALID (bad name, exists, or funnel missing),
 * LF_ERR_PG or LF_ERR_TEMPORARY (also: the schema stayed in use).
 */
lf_err_t lf_rebuild_create(PGconn *conn, const char *into, bool replace,
                           int lock_timeout_ms,
                           const volatile sig_atomic_t *stop, const char *how,
                           char *errstr, size_t errstr_size);

/** Move every serial sequence of @p into past its column's largest value
 *  and mark the rebuild complete (@p summary goes into the comment that
 *  promote looks for). @returns LF_OK or LF_ERR_PG/LF_ERR_TEMPORARY. */
lf_err_t lf_rebuild_complete(PGconn *conn, const char *into, const char *how,
                             const char *summary, char *errstr,
                             size_t errstr_size);

/**
 * Rows of the model's tables in @p schema, as "events=N leads=N
 * stage_history=N anomalies=N dead_letters=N" into @p buf.
 * @returns LF_OK, LF_ERR_PG or LF_ERR_TEMPORARY.
 */
lf_err_t lf_rebuild_counts(PGconn *conn, const char *schema, char *buf,
                           size_t size, char *errstr, size_t errstr_size);

/** Order in which rebuild --from-db reads funnel.events. The projector's
 *  result does not depend on it; the work does. */
typedef enum lf_rebuild_order_e {
    LF_REBUILD_ORDER_LEAD = 0, /**< lead_id, occurred_at, event_id: each
                                    lead in one batch, no recompute */
    LF_REBUILD_ORDER_TIME,     /**< occurred_at, event_id: no recompute
                                    either, but a lead is rewritten in every
                                    batch it is in */
    LF_REBUILD_ORDER_NONE      /**< as stored: recomputes leads that arrive
                                    late */
} lf_rebuild_order_t;

/** "lead", "time" or "none". @returns the order or -1. */
int lf_rebuild_order_parse(const char *s);

/** funnel.events read in one REPEATABLE READ snapshot (a connection of its
 *  own), so the events, the dead letters and the offsets it copies agree
 *  with each other. */
typedef struct lf_rebuild_source_s lf_rebuild_source_t;

/**
 * Open the snapshot on a new connection to @p conninfo, count the events
 * and open a cursor over them in @p order.
 * @returns a source for lf_rebuild_source_close(), or NULL with the reason.
 */
lf_rebuild_source_t *lf_rebuild_source_open(const char *conninfo,
                                            lf_rebuild_order_t order,
                                            char *errstr, size_t errstr_size);

/** Events in the snapshot. */
uint64_t lf_rebuild_source_total(const lf_rebuild_source_t *s);

/**
 * Fetch up to @p max events and add them to @p p with their stored Kafka
 * coordinates. @p *added is 0 at the end.
 * @returns LF_OK, LF_ERR_INVALID (a stored event no longer parses: the
 * event id and reason in errstr), LF_ERR_NOMEM, LF_ERR_TEMPORARY or
 * LF_ERR_PG.
 */
lf_err_t lf_rebuild_source_next(lf_rebuild_source_t *s, lf_projector_t *p,
                                size_t max, size_t *added, char *errstr,
                                size_t errstr_size);

/**
 * Copy into @p into (through @p conn), from the same snapshot, what the
 * events do not carry: every dead letter (ids, resolutions and times
 * kept), the anomalies that are not recomputed from events (kinds
 * conflict and key) and the stored offsets, which are exactly those of the
 * events in the snapshot. One transaction on @p conn. @p copied (may be
 * NULL) receives the rows copied per table: dead letters, anomalies,
 * offsets.
 */
lf_err_t lf_rebuild_source_copy_rest(lf_rebuild_source_t *s, PGconn *conn,
                                     const char *into, uint64_t copied[3],
                                     char *errstr, size_t errstr_size);

/** End the snapshot, close its connection, free. NULL-safe. */
void lf_rebuild_source_close(lf_rebuild_source_t *s);

#endif
