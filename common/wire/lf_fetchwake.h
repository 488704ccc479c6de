/* lf_fetchwake.h: keeps a Kafka consumer's fetcher from sleeping while its
 * queue drains, with librdkafka before 2.2.
 *
 * librdkafka stops fetching while the consumer queue holds
 * queued.min.messages messages. Before 2.2 (Debian bookworm has 2.0.2) a
 * broker thread with nothing to fetch decides again only when something else
 * wakes it, at the latest a second later (a fixed one-second backoff that
 * 2.2 made configurable as fetch.queue.backoff.ms). A consumer that empties
 * its queue in less than a second then waits, idle, for the rest of that
 * second: leadflow-project drained a 100k-event backlog in bursts separated
 * by 300-450 ms of nothing.
 *
 * The consumer calls lf_fetchwake_check() as it polls. Once the queue has
 * come near the threshold (3/4: fetching may have stopped) and has then
 * drained to half of it, a helper thread sends one ListOffsets request to the
 * leader of every assigned partition's broker (rd_kafka_offsets_for_times): the
 * request wakes each broker thread, which then sees the room and fetches. One
 * request per leader per refill; nothing at all while the queue stays below the
 * threshold (a consumer keeping up with a live stream never triggers it).
 * With librdkafka 2.2 or later it is harmless and simply unneeded.
 */
#ifndef LF_FETCHWAKE_H
#define LF_FETCHWAKE_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>

typedef struct lf_fetchwake_s lf_fetchwake_t;

/**
 * Watch the consumer queue of @p rk (a consumer, kept by the caller and
 * alive until lf_fetchwake_destroy()) against its own queued.min.messages.
 * Starts the helper thread "lf:fetchwake".
 * @returns the watcher, to free with lf_fetchwake_destroy(), or NULL when
 * out of memory or out of threads (the consumer then works as without it:
 * callers may pass NULL to every other call).
 */
lf_fetchwake_t *lf_fetchwake_new(rd_kafka_t *rk);

/** Look at the queue's length and wake the fetchers if it is time. Cheap
 *  (one queue lock); call it from the polling thread after each poll. */
void lf_fetchwake_check(lf_fetchwake_t *fw);

/** Wake-ups sent so far (each one request per leader). */
uint64_t lf_fetchwake_count(lf_fetchwake_t *fw);

/** Stop the helper (waiting out a request in flight, at most about a
 *  second) and free. Call before closing the consumer. NULL-safe. */
void lf_fetchwake_destroy(lf_fetchwake_t *fw);

#endif
