/* lf_rewind.h: the rewind of the projector's stored offsets in
 * funnel.offsets (leadflow-replay rewind): parse the offsets asked for,
 * plan which partitions move back, and apply the plan under a lock. */
#ifndef LF_REWIND_H
#define LF_REWIND_H

#include "lf_common.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

/** One partition of a rewind. */
typedef struct lf_rewind_s {
    int32_t partition;
    int64_t low, high; /**< watermarks */
    int64_t target;    /**< asked for (time lookup or --to-offset); -1 none */
    int64_t current;   /**< next_offset stored in funnel.offsets; -1 none */
    int64_t next;      /**< what is (or would be) stored; -1 none */
    bool clamped;      /**< target was below the low watermark */
    bool searched;     /**< target found by reading timestamps */
    const char *note;  /**< why unchanged, or NULL (static string) */
} lf_rewind_t;

/**
 * Parse a --to-offset list "P:O,P:O,..." (O an offset or "beginning")
 * into @p rows (count partitions, from lf_topic_partitions()): sets
 * target; the partitions not named keep target -1. With @p rows NULL,
 * only the list's syntax is checked (before the topic is known).
 * @returns LF_OK, or LF_ERR_INVALID naming the bad item.
 */
lf_err_t lf_rewind_parse_offsets(const char *list, lf_rewind_t *rows, int count,
                                 char *errstr, size_t errstr_size);

/**
 * Decide each partition's new stored offset from target and current: a
 * rewind only ever moves an offset back (moving it forward would skip
 * messages), never creates one (no stored offset means the projector
 * reads the partition from its beginning anyway), and targets below the
 * low watermark become the low watermark. Pure. @returns how many
 * partitions change.
 */
int lf_rewind_plan(lf_rewind_t *rows, int count);

/**
 * Read the stored offsets of @p group for @p topic from funnel.offsets
 * into rows[].current, then plan (lf_rewind_plan()). With @p apply, all of
 * it inside one transaction that first takes an ACCESS EXCLUSIVE lock on
 * funnel.offsets (waiting at most @p lock_timeout_ms), then calls
 * @p check (may be NULL; e.g. "the group has no members") while holding
 * it, then lowers the offsets and commits: a projector that starts
 * meanwhile blocks on reading funnel.offsets until the rewind committed and
 * then reads the new offsets.
 * @returns LF_OK; LF_ERR_TEMPORARY (lock timeout, connection trouble),
 * LF_ERR_PG, or what @p check returned, with the reason in errstr;
 * *changed is -1 when the COMMIT's answer was lost (lf_pg_commit()): the
 * rewind may have been done.
 */
lf_err_t
lf_rewind_run(PGconn *conn, const char *group, const char *topic,
              lf_rewind_t *rows, int count, bool apply, int lock_timeout_ms,
              lf_err_t (*check)(void *arg, char *errstr, size_t errstr_size),
              void *arg, int *changed, char *errstr, size_t errstr_size);

#endif
