/* lf_promote.h: swap a rebuilt schema in as funnel (leadflow-replay
 * promote), in one transaction, carrying over what the old funnel had
 * beyond its tables: functions, views, owners and privileges. */
#ifndef LF_PROMOTE_H
#define LF_PROMOTE_H

#include "lf_buf.h"
#include "lf_common.h"

#include <libpq-fe.h>
#include <stdbool.h>

/** What promote did (or found). */
typedef struct lf_promote_s {
    char old_name[64]; /**< where the replaced funnel now lives */
    int tables, functions, views, grants, owners;
    lf_buf_t offsets; /**< one line per stored offset that differs between
                           the old and the new model, for the operator */
    bool in_doubt;    /**< the swap failed at COMMIT with its answer lost
                           (lf_pg_commit()): it may have been done */
} lf_promote_t;

/**
 * Swap schema @p from in as funnel, in one transaction: lock every table
 * and view of both schemas (ACCESS EXCLUSIVE, waiting at most
 * @p lock_timeout_ms), call @p check (may be NULL; "no projector is
 * running", "no signal came") while holding the locks, before the swap and
 * again before COMMIT, verify that @p from is a complete
 * rebuild with the same tables and columns and the same migrations as
 * funnel and that funnel holds nothing promote cannot carry over
 * (aggregates, triggers, policies, materialized views, other schemas'
 * views on it...), rename funnel to funnel_old_YYYYMMDDHHMMSS (UTC; with
 * _2, _3... when that schema exists) and
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
 * @p out is filled in either case; free it with lf_promote_free().
 * @returns LF_OK; LF_ERR_INVALID (a precondition failed: the reason says
 * which), LF_ERR_TEMPORARY (lock timeout, deadlock, connection), LF_ERR_PG,
 * or what @p check returned. On error nothing changed.
 */
lf_err_t
lf_promote_swap(PGconn *conn, const char *from, int lock_timeout_ms,
                lf_err_t (*check)(void *arg, char *errstr, size_t errstr_size),
                void *arg, lf_promote_t *out, char *errstr, size_t errstr_size);

/** Free what a promote report holds. NULL-safe. */
void lf_promote_free(lf_promote_t *out);

#endif
