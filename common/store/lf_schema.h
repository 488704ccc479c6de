/* lf_schema.h: the funnel model as a whole, for leadflow-replay: create an
 * empty twin of schema funnel to rebuild into, feed it from funnel.events,
 * compare two schemas (diff) and swap a rebuilt one in (promote). */
#ifndef LF_SCHEMA_H
#define LF_SCHEMA_H

#include "lf_buf.h"
#include "lf_common.h"
#include "lf_projector.h"

#include <libpq-fe.h>
#include <stdbool.h>

/** Name of the live schema. */
#define LF_SCHEMA_LIVE "funnel"

/**
 * Check that @p name can hold a funnel model: lower-case letters, digits
 * and _ (the projector writes it into SQL unquoted), at most 48 bytes, not
 * a reserved word, not "funnel", not pg_*. @p conn (may be NULL: skip the
 * keyword check) asks the server for its keywords.
 * @returns LF_OK or LF_ERR_INVALID with the reason.
 */
lf_err_t lf_schema_check_name(PGconn *conn, const char *name, char *errstr,
                              size_t errstr_size);

/**
 * Create schema @p into as an empty twin of funnel: every table of funnel
 * (LIKE ... INCLUDING ALL: columns, defaults, constraints, indexes,
 * comments), serial columns on sequences of its own, the migration list
 * copied, and a comment marking it an unfinished rebuild (@p how, e.g.
 * "from-kafka", goes into it). One transaction. With @p replace an existing
 * @p into is dropped first; without, it is an error.
 * @returns LF_OK, LF_ERR_INVALID (exists, or funnel missing), LF_ERR_PG or
 * LF_ERR_TEMPORARY.
 */
lf_err_t lf_schema_twin_create(PGconn *conn, const char *into, bool replace,
                               const char *how, char *errstr,
                               size_t errstr_size);

/** Move every serial sequence of @p into past its column's largest value
 *  and mark the rebuild complete (@p summary goes into the comment that
 *  promote looks for). @returns LF_OK or LF_ERR_PG/LF_ERR_TEMPORARY. */
lf_err_t lf_schema_twin_complete(PGconn *conn, const char *into,
                                 const char *how, const char *summary,
                                 char *errstr, size_t errstr_size);

/**
 * Rows of the model's tables in @p schema, as "events=N leads=N
 * stage_history=N anomalies=N dead_letters=N" into @p buf.
 * @returns LF_OK, LF_ERR_PG or LF_ERR_TEMPORARY.
 */
lf_err_t lf_schema_counts(PGconn *conn, const char *schema, char *buf,
                          size_t size, char *errstr, size_t errstr_size);

/** Order in which rebuild --from-db reads funnel.events. The projector's
 *  result does not depend on it; the work does. */
typedef enum lf_order_e {
    LF_ORDER_LEAD = 0, /**< lead_id, occurred_at, event_id: each lead in
                            one batch, no recompute */
    LF_ORDER_TIME,     /**< occurred_at, event_id: no recompute either, but
                            a lead is rewritten in every batch it is in */
    LF_ORDER_NONE      /**< as stored: recomputes leads that arrive late */
} lf_order_t;

/** "lead", "time" or "none". @returns the order or -1. */
int lf_order_parse(const char *s);

/** funnel.events read in one REPEATABLE READ snapshot (a connection of its
 *  own), so the events, the dead letters and the offsets it copies agree
 *  with each other. */
typedef struct lf_dbsource_s lf_dbsource_t;

/**
 * Open the snapshot on a new connection to @p conninfo, count the events
 * and open a cursor over them in @p order.
 * @returns a source for lf_dbsource_close(), or NULL with the reason.
 */
lf_dbsource_t *lf_dbsource_open(const char *conninfo, lf_order_t order,
                                char *errstr, size_t errstr_size);

/** Events in the snapshot. */
uint64_t lf_dbsource_total(const lf_dbsource_t *s);

/**
 * Fetch up to @p max events and add them to @p p with their stored Kafka
 * coordinates. @p *added is 0 at the end.
 * @returns LF_OK, LF_ERR_INVALID (a stored event no longer parses: the
 * event id and reason in errstr), LF_ERR_NOMEM, LF_ERR_TEMPORARY or
 * LF_ERR_PG.
 */
lf_err_t lf_dbsource_next(lf_dbsource_t *s, lf_projector_t *p, size_t max,
                          size_t *added, char *errstr, size_t errstr_size);

/**
 * Copy into @p into (through @p conn), from the same snapshot, what the
 * events do not carry: every dead letter (ids, resolutions and times
 * kept), the anomalies that are not recomputed from events (kinds
 * conflict and key) and the stored offsets, which are exactly those of the
 * events in the snapshot. One transaction on @p conn. @p copied (may be
 * NULL) receives the rows copied per table: dead letters, anomalies,
 * offsets.
 */
lf_err_t lf_dbsource_copy_rest(lf_dbsource_t *s, PGconn *conn, const char *into,
                               uint64_t copied[3], char *errstr,
                               size_t errstr_size);

/** End the snapshot, close its connection, free. NULL-safe. */
void lf_dbsource_close(lf_dbsource_t *s);

/* ---- diff ------------------------------------------------------------ */

#define LF_DIFF_TABLES 5

/** One table compared: rows and checksum on each side. */
typedef struct lf_diff_table_s {
    const char *table; /**< static */
    long long rows_a, rows_b;
    char sum_a[17], sum_b[17];
    bool differs;
} lf_diff_table_t;

/** One differing row, described for a person. */
typedef struct lf_diff_row_s {
    char *lead; /**< the lead it belongs to; NULL for a dead letter */
    char *text; /**< 'leads: stage a="won" b="lost"' */
} lf_diff_row_t;

/** What lf_schema_diff() found. Free with lf_diff_free(). */
typedef struct lf_diff_s {
    lf_diff_table_t tables[LF_DIFF_TABLES];
    lf_diff_row_t *rows; /**< of the first differing leads, by lead, then
                              differing dead letters */
    size_t row_count;
    size_t leads; /**< distinct leads among rows */
    bool differs;
} lf_diff_t;

/**
 * Compare the funnel model in schemas @p a and @p b: per table, row count
 * and a checksum of the rows without wall-clock columns (received_at,
 * updated_at, detected_at) and without the Kafka coordinates of events
 * (a duplicated event keeps the copy that came first, which another run
 * may take from another partition); anomalies of kind conflict compare by
 * event only (their reason names coordinates); dead letters compare while
 * open (a resolved one is history). Then, for the differing tables, the
 * first @p max_leads differing leads (by lead_id) with every differing row
 * of theirs and the columns that differ, and up to @p max_leads differing
 * dead letters.
 * @returns LF_OK (d->differs tells), LF_ERR_INVALID (a schema or table
 * missing), LF_ERR_PG or LF_ERR_TEMPORARY.
 */
lf_err_t lf_schema_diff(PGconn *conn, const char *a, const char *b,
                        int max_leads, lf_diff_t *d, char *errstr,
                        size_t errstr_size);

/** Free what a diff holds. NULL-safe. */
void lf_diff_free(lf_diff_t *d);

/* ---- promote ---------------------------------------------------------- */

/** What promote did (or found). */
typedef struct lf_promote_s {
    char old_name[64]; /**< where the replaced funnel now lives */
    int tables, functions, views, grants, owners;
    lf_buf_t offsets; /**< one line per stored offset that differs between
                           the old and the new model, for the operator */
} lf_promote_t;

/**
 * Swap schema @p from in as funnel, in one transaction: lock every table
 * and view of both schemas (ACCESS EXCLUSIVE, waiting at most
 * @p lock_timeout_ms), call @p check (may be NULL; "no projector is
 * running") while holding the locks, verify that @p from is a complete
 * rebuild with the same tables and columns and the same migrations as
 * funnel and that funnel holds nothing promote cannot carry over
 * (aggregates, triggers, policies, materialized views, other schemas'
 * views on it...), rename funnel to funnel_old_YYYYMMDDHHMMSS (UTC) and
 * @p from to funnel, re-create funnel's functions and views in the new
 * funnel (views in dependency order; options, comments, owners and
 * privileges kept) and carry over the owners and privileges of the schema,
 * tables, sequences and columns, and the schema's default privileges.
 * Objects @p from already has (an old funnel promoted back) are kept as
 * they are. The old schema's SQL functions keep bodies that name "funnel":
 * called from funnel_old_*, they read the new tables. A reader sees the old
 * model or the new one, never a mix: the locks make every statement that
 * touches the model wait, and name lookups after the wait find the new tables.
 * The new funnel keeps its own funnel.offsets (those of the events it was
 * built from), never the old one's: see leadflow-replay --help.
 * @returns LF_OK; LF_ERR_INVALID (a precondition failed: the reason says
 * which), LF_ERR_TEMPORARY (lock timeout, deadlock, connection), LF_ERR_PG,
 * or what @p check returned. On error nothing changed.
 */
lf_err_t lf_schema_promote(PGconn *conn, const char *from, int lock_timeout_ms,
                           lf_err_t (*check)(void *arg, char *errstr,
                                             size_t errstr_size),
                           void *arg, lf_promote_t *out, char *errstr,
                           size_t errstr_size);

/** Free what a promote report holds. NULL-safe. */
void lf_promote_free(lf_promote_t *out);

#endif
