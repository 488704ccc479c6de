/* lf_deadletter.h: funnel.dead_letters for on-call: list them, and retry
 * them with the current decoder, applying those that now pass exactly as
 * the projector would have. */
#ifndef LF_DEADLETTER_H
#define LF_DEADLETTER_H

#include "lf_common.h"
#include "lf_conf.h"
#include "lf_progress.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>

/** What a retry did. */
typedef struct lf_retry_counts_s {
    uint64_t selected;         /**< open letters looked at */
    uint64_t applied;          /**< decoded now and applied (resolved): new
                                    events and duplicates, not conflicts */
    uint64_t still_failing;    /**< still undecodable (error updated) */
    uint64_t already_resolved; /**< asked for by id but resolved before */
    uint64_t missing;          /**< asked for by id but no such letter */
    uint64_t events_new;       /**< applied letters that were new events */
    uint64_t duplicates;       /**< applied letters already stored */
    uint64_t conflicts; /**< decoded letters whose event_id was stored with
                             other content: not applied, recorded as
                             conflicts (resolved as such) */
} lf_retry_counts_t;

/**
 * Print dead letters to @p out, one per line, tab-separated under a
 * header: id, received_at, topic, partition, offset, status (open or
 * resolved), retries, key (escaped), value size, error, resolution. Only
 * open ones unless @p all; only those received at or after @p since_ms
 * (INT64_MIN: all). @p shown and @p open (may be NULL) get counts.
 * @returns LF_OK, LF_ERR_PG or LF_ERR_TEMPORARY.
 */
lf_err_t lf_deadletter_list(PGconn *conn, int64_t since_ms, bool all, FILE *out,
                            uint64_t *shown, uint64_t *open, char *errstr,
                            size_t errstr_size);

/**
 * Retry the open dead letters with ids @p ids[0..nids) (nids == 0: every
 * open one), in id order, in batches: each value is decoded again with the
 * current code, through the decoder @p conf gives (lf_codec_from_conf(): the
 * schema registry it names, as the live projector reads); one that passes
 * goes through the projector core (lf_projector_add_event, schema funnel,
 * its original topic, partition and offset, no offsets recorded) and is
 * then marked resolved with the time and a resolution naming the event and
 * @p note (may be NULL); one that still fails keeps its row with the new
 * error, retried_at and retries + 1. A batch's events and its marks commit
 * in one transaction (lf_projector_before_commit()): a process that dies
 * leaves both or neither (a batch with no event to write, every letter
 * still failing, is marked in a transaction of its own). With
 * @p dry_run nothing is written. One line per letter goes to
 * @p out; @p pr (may be NULL) shows the progress. @p conf is not kept.
 * @returns LF_OK (see @p st); LF_ERR_TEMPORARY (PostgreSQL, or the schema
 * registry could not be asked: the batch at hand is not written, earlier
 * batches keep their marks); LF_ERR_PG; LF_ERR_INVALID (unusable
 * schema.registry.* settings); LF_ERR_NOMEM.
 */
lf_err_t lf_deadletter_retry(PGconn *conn, const lf_conf_t *conf,
                             const int64_t *ids, size_t nids, bool dry_run,
                             const char *note, FILE *out, lf_progress_t *pr,
                             lf_retry_counts_t *st, char *errstr,
                             size_t errstr_size);

#endif
