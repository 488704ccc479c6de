/* lf_topic.h: reading a Kafka topic outside any consumer group, as
 * leadflow-replay does: a consumer handle that only assign()s, a topic's
 * partitions and watermarks, offsets for a time, whether a group has live
 * members, and reading a topic from its start to the end it had when we
 * looked (rebuild, dump). */
#ifndef LF_TOPIC_H
#define LF_TOPIC_H

#include "lf_common.h"
#include "lf_conf.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>

/** One partition of the topic and its watermarks when we looked: messages
 *  [low, high) are in the log. */
typedef struct lf_topic_part_s {
    int32_t partition;
    int64_t low, high;
} lf_topic_part_t;

/**
 * A consumer handle for replay from @p conf (every librdkafka key of it),
 * with its own group.id ("leadflow-replay": it never joins a group and never
 * commits, so the projector group is untouched), auto commit off and
 * partition EOF events on.
 * @returns a handle for rd_kafka_destroy(), or NULL with the reason.
 */
rd_kafka_t *lf_topic_consumer_new(const lf_conf_t *conf, char *errstr,
                                  size_t errstr_size);

/**
 * The partitions of @p topic with their watermarks, by partition number.
 * @p *parts is the caller's to free(). @returns LF_OK, LF_ERR_INVALID
 * (no such topic) or LF_ERR_KAFKA (broker unreachable: the reason says).
 */
lf_err_t lf_topic_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms,
                             lf_topic_part_t **parts, int *count, char *errstr,
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
lf_err_t lf_topic_offsets_for_time(rd_kafka_t *rk, const char *topic,
                                   const lf_topic_part_t *parts, int count,
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
lf_err_t lf_topic_group_members(rd_kafka_t *rk, const char *group,
                                int timeout_ms, int *members, char *state,
                                size_t state_size, char *errstr,
                                size_t errstr_size);

/** Reads a topic from each partition's low watermark to the high watermark
 *  it had when we looked (messages produced later are not read). */
typedef struct lf_topic_reader_s lf_topic_reader_t;

/**
 * Start reading @p parts (from lf_topic_partitions(), maybe a subset) of
 * @p topic through @p rk (which must not consume anything else meanwhile).
 * @returns a reader for lf_topic_reader_destroy(), or NULL with the reason.
 */
lf_topic_reader_t *lf_topic_reader_new(rd_kafka_t *rk, const char *topic,
                                       const lf_topic_part_t *parts, int count,
                                       char *errstr, size_t errstr_size);

/**
 * The next message, waiting up to @p timeout_ms. Returns NULL when the
 * wait ran out or everything was read (see lf_topic_reader_done()). The caller
 * destroys the message with rd_kafka_message_destroy(). Consumer errors
 * other than the end of a partition are logged and skipped: the reader
 * goes on, as librdkafka retries.
 */
rd_kafka_message_t *lf_topic_reader_next(lf_topic_reader_t *r, int timeout_ms);

/** True when every partition has been read up to its high watermark. */
bool lf_topic_reader_done(const lf_topic_reader_t *r);

/** Messages in the ranges to read (an upper bound: offsets may have gaps). */
uint64_t lf_topic_reader_total(const lf_topic_reader_t *r);

/** Stop reading (unassign) and free. NULL-safe. */
void lf_topic_reader_destroy(lf_topic_reader_t *r);

#endif
