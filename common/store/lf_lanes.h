/* lf_lanes.h: the projector's writer lanes: consumed messages decoded into
 * batches on the caller's thread and written to PostgreSQL by one writer
 * thread per lane, each on its own connection, every batch fenced on the
 * stored offsets.
 *
 * Partitions are split over N lanes (partition % N). Each lane has two
 * batches: the caller decodes messages into `fill` while the lane's writer
 * commits `write`; so the server works on N transactions at once, and
 * decoding overlaps writing. Lanes never share a partition, so each keeps
 * its partitions' order and writes its own rows of funnel.offsets; a
 * lead's events share a partition (the key), and the lead locks of
 * lf_projector_flush() keep the rare lead that does not (a wrong key)
 * serialised, as between two projector instances.
 *
 * Threads: everything here is called from one thread, the consumer's (the
 * "main thread"), except the hooks, which the writers call. A batch that
 * does not commit is retried with backoff, never skipped: its lane blocks,
 * and soon the stream, loudly.
 *
 * The position: for each assigned partition the lanes keep the next
 * offset funnel.offsets is believed to hold (set by lf_lanes_assign(),
 * then moved past each message added), and declare it to each batch
 * (lf_projector_continue_from()). When a writer meets a database that is
 * not where it was believed to be (a batch refused with LF_ERR_STALE), or
 * has to open a new connection after its first (a failover may have put
 * it on a standby that missed the last commits), the lanes turn stale:
 * no batch is written until the caller has called lf_lanes_reset(),
 * re-read the stored offsets, and re-assigned from them with
 * lf_lanes_assign(). */
#ifndef LF_LANES_H
#define LF_LANES_H

#include "lf_common.h"
#include "lf_projector.h"

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdbool.h>

/**
 * What the writers report, on their own threads (any of them may be
 * NULL). The lanes' lock is not held during a call.
 */
typedef struct lf_lanes_hooks_s {
    /** A batch committed: @p total is every lane's committed counters so
     *  far, @p retries the failed write attempts so far, @p seconds the
     *  flush's duration, @p committed the next offsets it stored (the
     *  lanes destroy it after the call). */
    void (*committed)(void *opaque, const lf_projector_stats_t *total,
                      uint64_t retries, double seconds,
                      const rd_kafka_topic_partition_list_t *committed);
    /** The database was found reachable (@p up) or not. */
    void (*db)(void *opaque, bool up);
    /** On the caller's thread, about every 2 s while it waits for a busy
     *  writer (to keep lag metrics fresh). */
    void (*waiting)(void *opaque);
    void *opaque;
} lf_lanes_hooks_t;

/** How to build the lanes. Strings and @p registry are borrowed: they
 *  must outlive the lanes. */
typedef struct lf_lanes_conf_s {
    int n;                /**< lanes, 1..64 */
    int batch_max;        /**< messages per batch */
    int linger_ms;        /**< the longest a batch waits to fill */
    const char *conninfo; /**< libpq conninfo or URI of every lane */
    const char *schema;   /**< "funnel" */
    const char *group;    /**< funnel.offsets' group_id */
    /** Decodes with this projector's registry client (see
     *  lf_projector_share_registry()); NULL: pinned schema ids. */
    lf_projector_t *registry;
    /** Writers stop retrying when this becomes non-zero (the signal
     *  counter, lf_cli_signals); may be NULL. */
    const volatile sig_atomic_t *stop;
    lf_lanes_hooks_t hooks;
    /** The funnel rules every lane applies (borrowed, must outlive the
     *  lanes); NULL: the embedded default. */
    const lf_definition_t *definition;
    const lf_pseudonym_t *pseudonyms; /**< the erasure key ring, or NULL */
} lf_lanes_conf_t;

typedef struct lf_lanes_s lf_lanes_t;

/**
 * The lanes and their writer threads (they connect to PostgreSQL at their
 * first batch).
 * @returns lanes to free with lf_lanes_destroy(), or NULL with the reason
 * in errstr.
 */
lf_lanes_t *lf_lanes_new(const lf_lanes_conf_t *conf, char *errstr,
                         size_t errstr_size);

/** Stop the writers (a batch being written finishes its attempt) and
 *  free everything, uncommitted batches included. NULL-safe. */
void lf_lanes_destroy(lf_lanes_t *w);

/**
 * The partitions now assigned and the next offset funnel.offsets holds for
 * each (RD_KAFKA_OFFSET_BEGINNING: no row), as lf_projector_load_offsets()
 * fills them; NULL: none. Copied. Call with no batch in hand (after
 * lf_lanes_drain() or lf_lanes_reset()).
 * @returns LF_OK or LF_ERR_NOMEM.
 */
lf_err_t lf_lanes_assign(lf_lanes_t *w,
                         const rd_kafka_topic_partition_list_t *parts);

/**
 * Decode @p rkm (still the caller's) into its lane's batch, first handing
 * a full batch to its writer (waiting for it: the stream slows to what
 * PostgreSQL takes). A message of a partition not assigned with
 * lf_lanes_assign() is added unfenced.
 * @returns LF_OK, LF_ERR_NOMEM, or LF_ERR_TEMPORARY as
 * lf_projector_add_message(): not added; offer it again after a pause.
 */
lf_err_t lf_lanes_add(lf_lanes_t *w, const rd_kafka_message_t *rkm);

/**
 * Hand each batch that is due to its writer: full, older than linger, or
 * @p dry (the consumer's queue ran dry). A batch whose writer is busy
 * keeps filling.
 * @returns true when a batch is due but its writer is busy.
 */
bool lf_lanes_tick(lf_lanes_t *w, bool dry);

/** Messages decoded and not yet handed to a writer. */
size_t lf_lanes_filling(const lf_lanes_t *w);

/** Messages decoded and not yet handed over, plus batches being written:
 *  0 when everything consumed is committed (or given up). */
size_t lf_lanes_pending(lf_lanes_t *w);

/**
 * Write everything decoded so far and wait until it is committed. With
 * @p give_up (partitions revoked, stopping), each batch gets one attempt
 * and is dropped if it fails: whoever owns the partitions next re-reads
 * it from funnel.offsets.
 */
void lf_lanes_drain(lf_lanes_t *w, bool give_up);

/**
 * True when the stored offsets are no longer to be trusted (see the top
 * of this file): the caller calls lf_lanes_reset(), re-reads the stored
 * offsets and re-assigns (Kafka and lf_lanes_assign()).
 */
bool lf_lanes_stale(const lf_lanes_t *w);

/** With nothing pending: do @p stored (the stored offsets of the
 *  assignment, lf_projector_load_offsets()) still say what this instance
 *  consumed and committed? False when the tables changed under it (a
 *  promote, another writer): the caller resumes from them. */
bool lf_lanes_committed_as(const lf_lanes_t *w,
                           const rd_kafka_topic_partition_list_t *stored);

/** Did a writer refuse a batch because the configuration cannot write it
 *  (LF_ERR_CONFIG: an erased event without a pseudonym key)? Then the
 *  reason is in @p why and the caller stops: nothing of that batch was
 *  written, and it is read again after a restart. */
bool lf_lanes_refused(lf_lanes_t *w, char *why, size_t size);

/** Wait for the writers, drop every batch in hand unwritten, close the
 *  writers' connections (their next ones count as first ones: call this
 *  before re-reading the stored offsets) and clear the stale state. */
void lf_lanes_reset(lf_lanes_t *w);

/** Every lane's committed counters so far. */
lf_projector_stats_t lf_lanes_stats(lf_lanes_t *w);

/** Add to lf_lanes_stats() what a settle on another projector did (its
 *  stats @p now against @p before): the merges, voids, erasures, anomalies
 *  and recomputes of the identity work it finished. Its transactions are
 *  not batches of messages: batches and messages are left as they are. */
void lf_lanes_add_settled(lf_lanes_t *w, const lf_projector_stats_t *now,
                          const lf_projector_stats_t *before);

/** Failed write attempts so far (each retry counts). */
uint64_t lf_lanes_retries(const lf_lanes_t *w);

/** Count one failed attempt made outside the lanes (reading offsets). */
void lf_lanes_count_retry(lf_lanes_t *w);

/** The backoff before retry @p attempt (from 0): 100 ms doubling, at
 *  most 10 s. */
int lf_lanes_backoff_ms(int attempt);

#endif
