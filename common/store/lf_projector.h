/* lf_projector.h: the projector's core, shared by leadflow-project and
 * leadflow-replay: a batch of consumed messages (decoded events and dead
 * letters) written to the funnel model in one PostgreSQL transaction
 * together with the offsets it consumed. */
#ifndef LF_PROJECTOR_H
#define LF_PROJECTOR_H

#include "lf_codec.h"
#include "lf_common.h"
#include "lf_conf.h"
#include "lf_event.h"
#include "lf_funnel.h"
#include "lf_pseudonym.h"

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>

/** Counters over a projector's life (and of its last batch). */
typedef struct lf_projector_stats_s {
    uint64_t messages;     /**< messages added */
    uint64_t events_new;   /**< distinct events stored for the first time */
    uint64_t duplicates;   /**< events already stored (or twice in a batch) */
    uint64_t conflicts;    /**< event_id reused with other content */
    uint64_t dead_letters; /**< undecodable or invalid messages written to
                                dead_letters (not one stored before) */
    uint64_t anomalies;    /**< state-machine anomalies written */
    uint64_t recomputed;   /**< leads recomputed from their stored events */
    uint64_t merges;       /**< merges that came to count (funnel.merges rows
                                added) */
    uint64_t voids;        /**< events that came to be voided */
    uint64_t erasures;     /**< erased events projected (funnel.erasures
                                rows added) */
    uint64_t merge_anomalies; /**< merged events that do not count (another
                                   target, a cycle), listed */
    uint64_t void_anomalies;  /**< voided events that do not count (target
                                   missing, another person's, not a stage
                                   event), listed */
    uint64_t batches;         /**< transactions committed */
    uint64_t by_type[LF_EV__COUNT]; /**< new events by type */
} lf_projector_stats_t;

typedef struct lf_projector_s lf_projector_t;

/**
 * A projector writing into schema @p schema (normally "funnel"; replay
 * rebuilds into another) and recording offsets under @p group_id (NULL: do
 * not record offsets). Strings are copied.
 * @returns a projector to free with lf_projector_destroy(), or NULL with
 * the reason in errstr.
 */
lf_projector_t *lf_projector_new(const char *schema, const char *group_id,
                                 char *errstr, size_t errstr_size);
void lf_projector_destroy(lf_projector_t *p);

/**
 * Project under the funnel rules of @p def (borrowed: it must outlive
 * @p p) instead of the embedded default; NULL: the default again. Call
 * before the first flush: one set of tables is built under one definition
 * (lf_defstore.h records which).
 */
void lf_projector_use_definition(lf_projector_t *p, const lf_definition_t *def);

/**
 * Erase with the key ring @p ps (borrowed: it must outlive @p p; NULL:
 * none). Without one, a batch holding an erased event, or any batch once
 * SCHEMA.erased_leads holds a pseudonym, fails with LF_ERR_CONFIG and a
 * message naming pseudonym.key.file: nothing of it is written, and it
 * goes through once the key is configured. Every instance of a group
 * needs the same key ring.
 */
void lf_projector_use_pseudonyms(lf_projector_t *p, const lf_pseudonym_t *ps);

/**
 * Read about @p rows stored events back at a time when a batch recomputes
 * persons (0: the default, 10,000): a batch whose persons hold more is
 * recomputed in chunks, so its memory does not grow with their histories.
 * The tables do not depend on it, only memory and round trips do. The
 * persons the batch's merges join leads into are one chunk, with those
 * leads.
 */
void lf_projector_limit_recompute(lf_projector_t *p, size_t rows);

/**
 * Resolve schema ids through the schema registry that @p conf names
 * (schema.registry.url and the other schema.registry.* keys, see
 * lf_registry.h); nothing changes when it names none (contract.version is
 * checked all the same). The projector owns the registry client. Call
 * before the first message. @p conf is not kept.
 * @returns LF_OK, or LF_ERR_INVALID/LF_ERR_NOMEM with the bad setting
 * named in errstr (no request is made here).
 */
lf_err_t lf_projector_use_registry(lf_projector_t *p, const lf_conf_t *conf,
                                   char *errstr, size_t errstr_size);

/**
 * Resolve schema ids through @p owner's registry client (set up with
 * lf_projector_use_registry(), or none), so that one process with several
 * batches in flight fetches each schema once. Borrowed: @p owner must
 * outlive @p p, and the two must decode on the same thread (the client is
 * not thread-safe).
 */
void lf_projector_share_registry(lf_projector_t *p, lf_projector_t *owner);

/**
 * Decode a consumed message into the batch: an event, or a dead letter
 * with the reason (raw key and value kept). @p rkm stays the caller's.
 * @returns LF_OK; LF_ERR_NOMEM; LF_ERR_TEMPORARY (only with a registry)
 * when the message's schema id is not cached and the registry could not
 * be asked: the message was NOT added (no dead letter, its offset not
 * passed; logged at warning level). Offer the same message again after a
 * pause, and add no later message of its partition before it is in.
 */
lf_err_t lf_projector_add_message(lf_projector_t *p,
                                  const rd_kafka_message_t *rkm);

/**
 * Add a decoded event as if consumed at topic/partition/offset (the
 * rebuild from funnel.events). The batch takes ownership of @p ev's
 * strings (ev is left cleared).
 */
lf_err_t lf_projector_add_event(lf_projector_t *p, lf_event_t *ev,
                                const char *topic, int32_t partition,
                                int64_t offset);

/**
 * As lf_projector_add_event(), for an event that came under Kafka key
 * @p key (@p key_len bytes; NULL: no key), as a message would
 * (dead-letters retry): a key other than its lead_id is listed as a 'key'
 * anomaly, as lf_projector_add_message() lists it.
 */
lf_err_t lf_projector_add_event_keyed(lf_projector_t *p, lf_event_t *ev,
                                      const void *key, size_t key_len,
                                      const char *topic, int32_t partition,
                                      int64_t offset);

/**
 * The select list (unqualified columns of an events table) that reads a
 * stored event back, for lf_projector_stored_event(): four columns, the
 * flat JSON of its envelope and the payload fields the JSON mapping knows,
 * then account_id, extra, and the payload fields it does not know (those
 * a newer writer sent) as a JSON object or NULL. Static string, built on
 * the first call (thread-safe). @returns NULL when out of memory.
 */
const char *lf_projector_stored_sql(void);

/** Columns of lf_projector_stored_sql(). */
#define LF_PROJECTOR_STORED_COLS 4

/**
 * Read the event in row @p row, columns @p col .. @p col + 3, of a result
 * whose select list holds lf_projector_stored_sql() there, into @p ev
 * (overwritten; the caller frees it with lf_event_clear()): the event as
 * it was stored, account_id, extra and payload_extra included.
 * @returns LF_OK, or LF_ERR_INVALID (the JSON mapping refuses it: the code
 * changed incompatibly) or LF_ERR_NOMEM with the reason in errstr; @p ev
 * is then cleared.
 */
lf_err_t lf_projector_stored_event(const PGresult *res, int row, int col,
                                   lf_event_t *ev, char *errstr,
                                   size_t errstr_size);

/** lf_projector_continue_from()'s @p from when funnel.offsets holds no row
 *  for the partition (it was never written under this group). */
#define LF_PROJECTOR_NO_ROW (-1)
/** lf_projector_partition()'s @p from when nothing was declared. */
#define LF_PROJECTOR_UNDECLARED INT64_MIN

/**
 * Fence the batch on the stored offsets: declare that its messages of
 * @p topic / @p partition continue from @p from, the next offset the
 * caller believes funnel.offsets holds for them (read at assignment, or
 * the next offset after the last message it added to an earlier batch),
 * or LF_PROJECTOR_NO_ROW. lf_projector_flush() then refuses the batch with
 * LF_ERR_STALE unless the stored value is still @p from. Call after adding
 * a message of the partition; the first declaration per partition and
 * batch counts, later ones are ignored. A partition never declared is not
 * fenced (replay's rebuild).
 * @returns LF_OK, or LF_ERR_INVALID when the batch holds no message of the
 * partition (nothing declared).
 */
lf_err_t lf_projector_continue_from(lf_projector_t *p, const char *topic,
                                    int32_t partition, int64_t from);

/**
 * Partition @p i (from 0) of the current batch: *topic (the projector's,
 * valid until lf_projector_destroy()), *partition, the stored next offset
 * it continues from (*from, LF_PROJECTOR_NO_ROW or
 * LF_PROJECTOR_UNDECLARED) and the next offset a flush stores (*next).
 * @returns false when the batch has fewer partitions.
 */
bool lf_projector_partition(const lf_projector_t *p, size_t i,
                            const char **topic, int32_t *partition,
                            int64_t *from, int64_t *next);

/** Messages in the current batch. */
size_t lf_projector_pending(const lf_projector_t *p);

/**
 * Most leads one batch should hold. A flush takes one advisory lock per
 * lead until it commits, and PostgreSQL keeps those in a shared lock table
 * sized by max_locks_per_transaction (64) x max_connections (100) plus
 * slack: with the defaults two transactions of 6000 locks each fit, two of
 * 8000 fail with "out of shared memory". 2500 lets two instances of two
 * writers each run at once.
 */
#define LF_PROJECTOR_MAX_LEADS 2500

/** True when the current batch should be written now: it holds @p
 *  batch_max messages, or LF_PROJECTOR_MAX_LEADS lead locks to take
 *  (distinct lead ids and, with pseudonyms, dead letters with a key and
 *  events under a key other than their lead_id: each locks its key).
 *  Locks found later (merge components, the leads of stored events whose
 *  event_id a message reuses) are not counted. */
bool lf_projector_full(const lf_projector_t *p, size_t batch_max);

/**
 * Write the batch in one transaction: events, derived leads, stage
 * history, anomalies, dead letters and the next offsets. On success the
 * batch is emptied and @p committed (may be NULL) receives the offsets to
 * commit to Kafka (caller destroys it). On failure the transaction is
 * rolled back and the batch kept, so the same call can be retried.
 * @returns LF_OK, LF_ERR_TEMPORARY (connection or server trouble: retry
 * later, maybe after reconnecting), LF_ERR_PG (the database refused the
 * data: retrying may not help, but nothing was written) or LF_ERR_STALE
 * (a partition's stored next offset is not the one the batch continues
 * from, lf_projector_continue_from(): nothing was written; do not retry
 * the batch, re-read the stored offsets and consume from there).
 */
lf_err_t lf_projector_flush(lf_projector_t *p, PGconn *conn,
                            rd_kafka_topic_partition_list_t **committed,
                            char *errstr, size_t errstr_size);

/** What lf_projector_before_commit() runs. */
typedef lf_err_t (*lf_projector_hook_t)(void *arg, PGconn *conn, char *errstr,
                                        size_t errstr_size);

/**
 * Run @p fn(@p arg, ...) in each batch's transaction after its last step,
 * before COMMIT, until set again (@p fn NULL: none): what it writes
 * commits with the batch or not at all. An error from it fails the flush
 * as a step's would (rolled back, the batch kept).
 */
void lf_projector_before_commit(lf_projector_t *p, lf_projector_hook_t fn,
                                void *arg);

/** Drop the batch without writing (partitions revoked). */
void lf_projector_discard(lf_projector_t *p);

/** Must be called when @p conn is a new connection (temp tables are
 *  per connection). */
void lf_projector_conn_reset(lf_projector_t *p);

/** Counters so far. */
const lf_projector_stats_t *lf_projector_stats(const lf_projector_t *p);

/**
 * Work out the merges and erasures left waiting in SCHEMA.identity_pending
 * (a batch leaves them there rather than wait for leads another writer
 * holds), some at a time, waiting for their locks, in one transaction;
 * recompute the persons of void anomalies saying "not received" whose
 * target is stored (another writer stored it while the void's batch was
 * in flight). Call with no batch in hand, on an idle connection; until
 * then the tables are not yet the function of the events they will be.
 * *@p more: whether merges or erasures were waiting (call again until
 * false; stale voids are recomputed in the first call). @returns
 * LF_OK or the failure (LF_ERR_TEMPORARY: try again later).
 */
lf_err_t lf_projector_settle(lf_projector_t *p, PGconn *conn, bool *more,
                             char *errstr, size_t errstr_size);

/** lf_projector_settle() until nothing waits (giving up after 30 s of
 *  leads another transaction holds: LF_ERR_TEMPORARY). */
lf_err_t lf_projector_settle_all(lf_projector_t *p, PGconn *conn, char *errstr,
                                 size_t errstr_size);

/**
 * Do the tables still record this projector's definition? A promote of a
 * rebuild under other rules replaces them under a running projector; each
 * batch checks, and an idle projector asks with this.
 * @returns LF_OK, LF_ERR_CONFIG with the reason in @p errstr, or the
 * query's error.
 */
lf_err_t lf_projector_check_definition(lf_projector_t *p, PGconn *conn,
                                       char *errstr, size_t errstr_size);

/**
 * The offsets stored for @p group_id and @p topic in schema's offsets
 * table, for the partitions in @p parts: each found one gets its offset,
 * the others RD_KAFKA_OFFSET_BEGINNING.
 * @returns LF_OK, LF_ERR_TEMPORARY or LF_ERR_PG.
 */
lf_err_t lf_projector_load_offsets(lf_projector_t *p, PGconn *conn,
                                   rd_kafka_topic_partition_list_t *parts,
                                   char *errstr, size_t errstr_size);

#endif
