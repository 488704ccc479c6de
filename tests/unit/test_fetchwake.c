/* test_fetchwake.c: a consumer draining its queue faster than librdkafka
 * refills it keeps receiving, without the second-long pauses librdkafka 2.0
 * leaves once the queue has been full; read from librdkafka's built-in mock
 * cluster, every message once and in order. */
#include "lf_fetchwake.h"
#include "lf_log.h"
#include "lf_time.h"

#include <criterion/criterion.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define PARTS      4
#define MSGS       2000 /* in batches of 50: every fetch brings 4 batches */
#define QUEUED_MIN 400  /* so fetching stops about 5 times on the way */

static void quiet(void)
{
    lf_log_level = LF_LOG_CRIT;
}

TestSuite(fetchwake, .init = quiet);

static void set(rd_kafka_conf_t *rkc, const char *k, const char *v)
{
    char err[256];
    cr_assert_eq(rd_kafka_conf_set(rkc, k, v, err, sizeof(err)),
                 RD_KAFKA_CONF_OK, "%s=%s: %s", k, v, err);
}

/* A mock cluster whose topic "t" holds MSGS messages, batches of 50. The
 * producer owns the cluster: destroying the producer destroys it. */
static rd_kafka_t *cluster(rd_kafka_mock_cluster_t **mc_out)
{
    rd_kafka_conf_t *rkc = rd_kafka_conf_new();
    char err[256], value[100];
    rd_kafka_mock_cluster_t *mc;
    rd_kafka_t *prk;

    set(rkc, "log_level", "2");
    set(rkc, "test.mock.num.brokers", "1"); /* the producer's bootstrap */
    set(rkc, "batch.num.messages", "50");
    set(rkc, "linger.ms", "50");
    prk = rd_kafka_new(RD_KAFKA_PRODUCER, rkc, err, sizeof(err));
    cr_assert_not_null(prk, "%s", err);
    cr_assert_not_null(mc = rd_kafka_handle_mock_cluster(prk));
    cr_assert_eq(rd_kafka_mock_topic_create(mc, "t", PARTS, 1), 0);
    memset(value, 'v', sizeof(value));
    for (int i = 0; i < MSGS; i++) {
        rd_kafka_resp_err_t e;
        do {
            e = rd_kafka_producev(
                prk, RD_KAFKA_V_TOPIC("t"), RD_KAFKA_V_PARTITION(i % PARTS),
                RD_KAFKA_V_VALUE(value, sizeof(value)),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(prk, 10);
        } while (e == RD_KAFKA_RESP_ERR__QUEUE_FULL);
        cr_assert_eq(e, 0, "%s", rd_kafka_err2str(e));
    }
    cr_assert_eq(rd_kafka_flush(prk, 20000), 0);
    *mc_out = mc;
    return prk;
}

typedef struct drain_s {
    int got;
    int64_t max_gap_ms; /* longest wait between two messages */
    uint64_t wakeups;
} drain_t;

/* Read the whole topic with a queue of QUEUED_MIN, with or without the
 * wake-ups; every partition's offsets must come 0, 1, 2, ... */
static drain_t drain(rd_kafka_mock_cluster_t *mc, bool wake)
{
    rd_kafka_conf_t *rkc = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *parts;
    int64_t next[PARTS] = {0}, last = 0, deadline;
    char err[256], qmin[16];
    drain_t d = {0, 0, 0};
    lf_fetchwake_t *fw = NULL;
    rd_kafka_t *rk;

    snprintf(qmin, sizeof(qmin), "%d", QUEUED_MIN);
    set(rkc, "bootstrap.servers", rd_kafka_mock_cluster_bootstraps(mc));
    set(rkc, "group.id", wake ? "with" : "without");
    set(rkc, "enable.auto.commit", "false");
    set(rkc, "queued.min.messages", qmin);
    /* One batch per partition and fetch: the queue fills in steps. */
    set(rkc, "max.partition.fetch.bytes", "1");
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, rkc, err, sizeof(err));
    cr_assert_not_null(rk, "%s", err);
    rd_kafka_poll_set_consumer(rk);
    if (wake)
        cr_assert_not_null(fw = lf_fetchwake_new(rk));
    parts = rd_kafka_topic_partition_list_new(PARTS);
    for (int i = 0; i < PARTS; i++)
        rd_kafka_topic_partition_list_add(parts, "t", i)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    cr_assert_eq(rd_kafka_assign(rk, parts), 0);
    rd_kafka_topic_partition_list_destroy(parts);

    deadline = lf_now_mono_ms() + 60000;
    while (d.got < MSGS && lf_now_mono_ms() < deadline) {
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(rk, 10);
        lf_fetchwake_check(fw);
        if (!rkm)
            continue;
        if (!rkm->err) {
            int64_t now = lf_now_mono_ms();
            cr_assert(rkm->partition >= 0 && rkm->partition < PARTS);
            cr_assert_eq(rkm->offset, next[rkm->partition],
                         "partition %d: offset %lld after %lld",
                         (int)rkm->partition, (long long)rkm->offset,
                         (long long)next[rkm->partition] - 1);
            next[rkm->partition]++;
            if (d.got && now - last > d.max_gap_ms)
                d.max_gap_ms = now - last;
            last = now;
            /* A consumer slower than the fetcher, as the projector is
             * (25k/s): the queue fills up to QUEUED_MIN. */
            if (++d.got % 50 == 0)
                nanosleep(&(struct timespec){0, 2000000L}, NULL);
        }
        rd_kafka_message_destroy(rkm);
    }
    d.wakeups = lf_fetchwake_count(fw);
    lf_fetchwake_destroy(fw);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return d;
}

Test(fetchwake, drained_queue_is_refilled_without_waiting, .timeout = 120)
{
    rd_kafka_mock_cluster_t *mc;
    rd_kafka_t *prk = cluster(&mc);

    drain_t with = drain(mc, true);
    cr_assert_eq(with.got, MSGS);
    cr_assert_geq(with.wakeups, 3, "the queue filled %d times: %llu wake-ups",
                  MSGS / QUEUED_MIN, (unsigned long long)with.wakeups);
    /* A refill is a Fetch round trip to an in-process broker; the pause
     * it replaces is up to a second. */
    cr_assert_lt(with.max_gap_ms, 500, "longest pause %lld ms",
                 (long long)with.max_gap_ms);

    /* The same drain without it pauses: the test sees the problem it
     * guards against (librdkafka 2.2 and later no longer have it). */
    if (rd_kafka_version() < 0x020200ff) {
        drain_t without = drain(mc, false);
        cr_assert_eq(without.got, MSGS);
        cr_assert_geq(without.max_gap_ms, 150, "longest pause %lld ms",
                      (long long)without.max_gap_ms);
    }
    rd_kafka_destroy(prk);
}

Test(fetchwake, null_is_a_no_op)
{
    lf_fetchwake_check(NULL);
    cr_assert_eq(lf_fetchwake_count(NULL), 0);
    lf_fetchwake_destroy(NULL);
}
