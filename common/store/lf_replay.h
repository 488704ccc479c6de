/* lf_replay.h: the Kafka side of leadflow-replay: a consumer handle that
 * only assign()s, a topic's partitions and watermarks, offsets for a time,
 * whether the projector group has live members, reading a topic from its
 * start to the end it had when we looked (rebuild, dump), and the rewind of
 * the projector's stored offsets in funnel.offsets. */
#ifndef LF_REPLAY_H
#define LF_REPLAY_H

#include "lf_common.h"
#include "lf_conf.h"

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>

/** One partition of the topic and its watermarks when we looked: messages
 *  [low, high) are in the log. */
typedef struct lf_part_s {
    int32_t partition;
    int64_t low, high;
} lf_part_t;

/**
 * A consumer handle for replay from @p conf (every librdkafka key of it),
 * with its own group.id ("leadflow-replay": it never joins a group and never
 * commits, so the projector group is untouched), auto commit off and
 * partition EOF events on.
 * @returns a handle for rd_kafka_destroy(), or NULL with the reason.
 */
rd_kafka_t *lf_replay_consumer_new(const lf_conf_t *conf, char *errstr,
                                   size_t errstr_size);

/**
 * The partitions of @p topic with their watermarks, by partition number.
 * @p *parts is the caller's to free(). @returns LF_OK, LF_ERR_INVALID
 * (no such topic) or LF_ERR_KAFKA (broker unreachable: the reason says).
 */
lf_err_t lf_replay_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms,
                              lf_part_t **parts, int *count, char *errstr,
                              size_t errstr_size);

/**
 * The first offset of each partition whose message timestamp is at or
 * after @p ts_ms (rd_kafka_offsets_for_times), or the partition's high
 * watermark when no message is that recent. A broker that cannot look up
 * by time answers "none" for every time; when the partition's last message
 * proves that answer wrong, the offset is found by a binary search over
 * the messages' timestamps instead (which assumes timestamps grow with
 * offsets, as Kafka's time index does) and @p searched[i] is set.
 * @p out and @p searched (may be NULL) have @p count entries.
 * @returns LF_OK or LF_ERR_KAFKA with the reason.
 */
lf_err_t lf_replay_offsets_for_time(rd_kafka_t *rk, const char *topic,
                                    const lf_part_t *parts, int count,
                                    int64_t ts_ms, int timeout_ms, int64_t *out,
                                    bool *searched, char *errstr,
                                    size_t errstr_size);

/**
 * Whether consumer group @p group has members (DescribeGroups). @p *members
 * gets their number, @p state (may be NULL) the group state ("Empty",
 * "Stable", ...; "" for an unknown group).
 * @returns LF_OK, or LF_ERR_KAFKA when the broker cannot tell (it does not
 * implement the request, as the dev broker, or is unreachable).
 */
lf_err_t lf_replay_group_members(rd_kafka_t *rk, const char *group,
                                 int timeout_ms, int *members, char *state,
                                 size_t state_size, char *errstr,
                                 size_t errstr_size);

/** Reads a topic from each partition's low watermark to the high watermark
 *  it had when we looked (messages produced later are not read). */
typedef struct lf_reader_s lf_reader_t;

/**
 * Start reading @p parts (from lf_replay_partitions(), maybe a subset) of
 * @p topic through @p rk (which must not consume anything else meanwhile).
 * @returns a reader for lf_reader_destroy(), or NULL with the reason.
 */
lf_reader_t *lf_reader_new(rd_kafka_t *rk, const char *topic,
                           const lf_part_t *parts, int count, char *errstr,
                           size_t errstr_size);

/**
 * The next message, waiting up to @p timeout_ms. Returns NULL when the
 * wait ran out or everything was read (see lf_reader_done()). The caller
 * destroys the message with rd_kafka_message_destroy(). Consumer errors
 * other than the end of a partition are logged and skipped: the reader
 * goes on, as librdkafka retries.
 */
rd_kafka_message_t *lf_reader_next(lf_reader_t *r, int timeout_ms);

/** True when every partition has been read up to its high watermark. */
bool lf_reader_done(const lf_reader_t *r);

/** Messages in the ranges to read (an upper bound: offsets may have gaps). */
uint64_t lf_reader_total(const lf_reader_t *r);

/** Stop reading (unassign) and free. NULL-safe. */
void lf_reader_destroy(lf_reader_t *r);

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
 * into @p rows (count partitions, from lf_replay_partitions()): sets
 * target; the partitions not named keep target -1.
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
 * LF_ERR_PG, or what @p check returned, with the reason in errstr.
 */
lf_err_t
lf_rewind_run(PGconn *conn, const char *group, const char *topic,
              lf_rewind_t *rows, int count, bool apply, int lock_timeout_ms,
              lf_err_t (*check)(void *arg, char *errstr, size_t errstr_size),
              void *arg, int *changed, char *errstr, size_t errstr_size);

#endif
