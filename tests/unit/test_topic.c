/* test_topic.c: reading a topic outside any group (lf_topic) from
 * librdkafka's mock cluster: partitions and watermarks, offsets for a
 * time, and a reader that stops at the end the topic had when it looked. */
#include "lf_topic.h"

#include <criterion/criterion.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <string.h>

typedef struct cluster_s {
    rd_kafka_t *mrk; /* the handle the mock cluster lives in */
    rd_kafka_mock_cluster_t *mc;
    rd_kafka_t *producer;
    lf_conf_t *conf; /* bootstrap.servers of the cluster */
} cluster_t;

/* A mock cluster with topic "t": 3 partitions, 5 messages in partition 0
 * (timestamps 1000, 2000, ... 5000), none in 1, 3 in 2 (10000, 20000,
 * 30000). */
static void cluster_up(cluster_t *c)
{
    char err[512];
    rd_kafka_conf_t *mconf = rd_kafka_conf_new(), *pconf = rd_kafka_conf_new();

    rd_kafka_conf_set(mconf, "log_level", "2", err, sizeof(err));
    c->mrk = rd_kafka_new(RD_KAFKA_PRODUCER, mconf, err, sizeof(err));
    cr_assert_not_null(c->mrk, "%s", err);
    cr_assert_not_null(c->mc = rd_kafka_mock_cluster_new(c->mrk, 1));
    cr_assert_eq(rd_kafka_mock_topic_create(c->mc, "t", 3, 1), 0);
    rd_kafka_conf_set(pconf, "bootstrap.servers",
                      rd_kafka_mock_cluster_bootstraps(c->mc), err,
                      sizeof(err));
    rd_kafka_conf_set(pconf, "log_level", "2", err, sizeof(err));
    c->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, err, sizeof(err));
    cr_assert_not_null(c->producer, "%s", err);
    for (int i = 0; i < 8; i++) {
        int32_t part = i < 5 ? 0 : 2;
        int64_t ts = i < 5 ? 1000 * (i + 1) : 10000 * (i - 4);
        cr_assert_eq(rd_kafka_producev(
                         c->producer, RD_KAFKA_V_TOPIC("t"),
                         RD_KAFKA_V_PARTITION(part), RD_KAFKA_V_VALUE("v", 1),
                         RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                         RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_END),
                     0);
    }
    cr_assert_eq(rd_kafka_flush(c->producer, 10000), 0);
    c->conf = lf_conf_new();
    cr_assert_eq(lf_conf_set(c->conf, "bootstrap.servers",
                             rd_kafka_mock_cluster_bootstraps(c->mc), err,
                             sizeof(err)),
                 LF_OK, "%s", err);
    lf_conf_set(c->conf, "log_level", "2", err, sizeof(err));
}

static void cluster_down(cluster_t *c)
{
    lf_conf_destroy(c->conf);
    rd_kafka_destroy(c->producer);
    rd_kafka_mock_cluster_destroy(c->mc);
    rd_kafka_destroy(c->mrk);
}

Test(topic, partitions_and_a_reader_up_to_the_end, .timeout = 60)
{
    char err[512];
    cluster_t c;
    lf_topic_part_t *parts;
    int count, got[3] = {0, 0, 0};

    cluster_up(&c);
    rd_kafka_t *rk = lf_topic_consumer_new(c.conf, err, sizeof(err));
    cr_assert_not_null(rk, "%s", err);
    cr_assert_eq(
        lf_topic_partitions(rk, "t", 10000, &parts, &count, err, sizeof(err)),
        LF_OK, "%s", err);
    cr_assert_eq(count, 3);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(parts[i].partition, i);
    cr_expect_eq(parts[0].low, 0);
    cr_expect_eq(parts[0].high, 5);
    cr_expect_eq(parts[1].high, parts[1].low);
    cr_expect_eq(parts[2].high, 3);

    lf_topic_reader_t *r =
        lf_topic_reader_new(rk, "t", parts, count, err, sizeof(err));
    cr_assert_not_null(r, "%s", err);
    cr_expect_eq(lf_topic_reader_total(r), 8);
    /* Produced after the reader looked: not read. */
    cr_assert_eq(rd_kafka_producev(
                     c.producer, RD_KAFKA_V_TOPIC("t"), RD_KAFKA_V_PARTITION(0),
                     RD_KAFKA_V_VALUE("late", 4),
                     RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                 0);
    cr_assert_eq(rd_kafka_flush(c.producer, 10000), 0);
    for (int polls = 0; !lf_topic_reader_done(r) && polls < 200; polls++) {
        rd_kafka_message_t *rkm = lf_topic_reader_next(r, 100);
        if (!rkm)
            continue;
        cr_assert(rkm->partition >= 0 && rkm->partition < 3);
        cr_expect_eq(rkm->offset, got[rkm->partition]++, "in order");
        cr_expect_eq(rkm->len, 1, "not the late message");
        rd_kafka_message_destroy(rkm);
    }
    cr_expect(lf_topic_reader_done(r));
    cr_expect_eq(got[0], 5);
    cr_expect_eq(got[1], 0);
    cr_expect_eq(got[2], 3);
    cr_expect_null(lf_topic_reader_next(r, 10));
    lf_topic_reader_destroy(r);
    free(parts);

    rd_kafka_destroy(rk);
    cluster_down(&c);
}

Test(topic, offsets_for_a_time, .timeout = 60)
{
    char err[512];
    cluster_t c;
    lf_topic_part_t *parts;
    int count;
    int64_t out[3];
    bool searched[3];

    cluster_up(&c);
    rd_kafka_t *rk = lf_topic_consumer_new(c.conf, err, sizeof(err));
    cr_assert_not_null(rk, "%s", err);
    cr_assert_eq(
        lf_topic_partitions(rk, "t", 10000, &parts, &count, err, sizeof(err)),
        LF_OK, "%s", err);
    /* The first message at or after the time; the end when none is. */
    cr_assert_eq(lf_topic_offsets_for_time(rk, "t", parts, count, 2500, 5000,
                                           out, searched, err, sizeof(err)),
                 LF_OK, "%s", err);
    cr_expect_eq(out[0], 2);
    cr_expect_eq(out[1], parts[1].high);
    cr_expect_eq(out[2], 0);
    cr_assert_eq(lf_topic_offsets_for_time(rk, "t", parts, count, 20000, 5000,
                                           out, NULL, err, sizeof(err)),
                 LF_OK, "%s", err);
    cr_expect_eq(out[0], 5, "nothing that recent in partition 0");
    cr_expect_eq(out[2], 1);
    free(parts);
    rd_kafka_destroy(rk);
    cluster_down(&c);
}
