/* test_producer.c: the producer API (lf_producer): defaults and overrides,
 * one delivery report per emitted event whatever happens, never a drop on a
 * full queue, and the bytes on the wire (key, partition, headers, value)
 * read back from librdkafka's built-in mock cluster. */
#include "lf_codec.h"
#include "lf_json.h"
#include "lf_log.h"
#include "lf_producer.h"

#include <criterion/criterion.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REPORTS 64

/* The unreachable-broker cases make librdkafka complain on every retry. */
static void quiet(void)
{
    lf_log_level = LF_LOG_CRIT;
}

TestSuite(producer, .init = quiet);

typedef struct reports_s {
    int n;
    void *opaque[MAX_REPORTS];
    rd_kafka_resp_err_t err[MAX_REPORTS];
    rd_kafka_msg_status_t status[MAX_REPORTS];
    int32_t partition[MAX_REPORTS];
    char reason[MAX_REPORTS][256];
    int64_t latency_us[MAX_REPORTS];
} reports_t;

static void on_report(const lf_delivery_t *dr, void *opaque)
{
    reports_t *r = opaque;
    cr_assert_lt(r->n, MAX_REPORTS);
    r->opaque[r->n] = dr->msg_opaque;
    r->err[r->n] = dr->err;
    r->status[r->n] = dr->status;
    r->partition[r->n] = dr->partition;
    r->latency_us[r->n] = dr->latency_us;
    snprintf(r->reason[r->n], sizeof(r->reason[0]), "%s",
             dr->reason ? dr->reason : "");
    cr_assert_eq(!dr->err, !dr->reason, "reason iff failed");
    r->n++;
}

static lf_conf_t *conf_with(const char *const *kv)
{
    lf_conf_t *conf = lf_conf_new();
    char err[256];
    cr_assert_not_null(conf);
    for (; *kv; kv++)
        cr_assert_eq(lf_conf_set_kv(conf, *kv, err, sizeof(err)), LF_OK, "%s",
                     err);
    return conf;
}

static lf_producer_t *producer_with(const char *const *kv, reports_t *r)
{
    lf_conf_t *conf = conf_with(kv);
    char err[512] = "";
    lf_producer_t *p = lf_producer_new(conf, err, sizeof(err));
    lf_conf_destroy(conf);
    cr_assert_not_null(p, "lf_producer_new: %s", err);
    lf_producer_set_delivery_cb(p, on_report, r);
    return p;
}

static void event(lf_event_t *ev, const char *json)
{
    char err[512] = "";
    cr_assert_eq(lf_json_parse_event(json, strlen(json), ev, err, sizeof(err)),
                 LF_OK, "%s", err);
}

/* Kafka's Java murmur2 (org.apache.kafka.common.utils.Utils.murmur2),
 * written from its definition: the partition a Java producer picks. */
static int32_t java_partition(const char *key, int partitions)
{
    const uint32_t m = 0x5bd1e995;
    const unsigned char *d = (const unsigned char *)key;
    size_t len = strlen(key), i;
    uint32_t h = 0x9747b28c ^ (uint32_t)len;

    for (i = 0; i + 4 <= len; i += 4) {
        uint32_t k = (uint32_t)d[i] | (uint32_t)d[i + 1] << 8 |
                     (uint32_t)d[i + 2] << 16 | (uint32_t)d[i + 3] << 24;
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    switch (len & 3) {
    case 3:
        h ^= (uint32_t)d[i + 2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t)d[i + 1] << 8;
        /* fall through */
    case 1:
        h ^= d[i];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return (int32_t)((h & 0x7fffffff) % (uint32_t)partitions);
}

Test(producer, java_murmur2_reference)
{
    /* python3-kafka's murmur2(b"L-000001") = 1294498059 */
    cr_assert_eq(java_partition("L-000001", 1000000000), 294498059);
}

Test(producer, defaults_fill_only_unset_keys)
{
    lf_conf_t *conf =
        conf_with((const char *const[]){"linger.ms=50", "topic=t1", NULL});
    cr_assert_eq(lf_producer_conf_defaults(conf), LF_OK);
    cr_assert_str_eq(lf_conf_get(conf, "linger.ms"), "50");
    cr_assert_str_eq(lf_conf_get(conf, "topic"), "t1");
    cr_assert_str_eq(lf_conf_get(conf, "enable.idempotence"), "true");
    cr_assert_str_eq(lf_conf_get(conf, "acks"), "all");
    cr_assert_str_eq(lf_conf_get(conf, "compression.type"), "lz4");
    cr_assert_str_eq(lf_conf_get(conf, "partitioner"), "murmur2_random");
    cr_assert_str_eq(lf_conf_get(conf, "message.timeout.ms"),
                     LF_PRODUCER_MESSAGE_TIMEOUT_MS);
    lf_conf_destroy(conf);
}

Test(producer, bad_setting_is_named)
{
    lf_conf_t *conf =
        conf_with((const char *const[]){"no.such.property=1", NULL});
    char err[512] = "";
    cr_assert_null(lf_producer_new(conf, err, sizeof(err)));
    cr_assert(strstr(err, "no.such.property"), "%s", err);
    lf_conf_destroy(conf);

    conf = conf_with((const char *const[]){"acks=1", NULL});
    cr_assert_null(lf_producer_new(conf, err, sizeof(err)),
                   "idempotence with acks=1 must be refused");
    cr_assert(strstr(err, "acks"), "%s", err);
    lf_conf_destroy(conf);
}

Test(producer, invalid_event_is_refused_without_report)
{
    reports_t r = {0};
    lf_producer_t *p = producer_with(
        (const char *const[]){"bootstrap.servers=127.0.0.1:1", NULL}, &r);
    lf_event_t ev;
    char err[512] = "";

    event(&ev, "{\"lead_id\":\"L-1\",\"type\":\"won\",\"source\":\"s\","
               "\"occurred_at\":0,\"amount_minor\":5,\"currency\":\"EUR\"}");
    ev.u.won.amount_minor = -5;
    cr_assert_eq(lf_producer_emit(p, &ev, err, sizeof(err)), LF_ERR_INVALID);
    cr_assert(strstr(err, "amount_minor"), "%s", err);
    cr_assert_eq(lf_producer_inflight(p), 0);
    lf_producer_destroy(p);
    cr_assert_eq(r.n, 0);
    lf_event_clear(&ev);
}

Test(producer, unreachable_broker_fails_each_event_once)
{
    reports_t r = {0};
    lf_producer_t *p =
        producer_with((const char *const[]){"bootstrap.servers=127.0.0.1:1",
                                            "message.timeout.ms=300", NULL},
                      &r);
    lf_event_t ev;
    char err[512];
    int tickets[3];
    int64_t emitted, delivered, failed;

    event(&ev, "{\"lead_id\":\"L-1\",\"type\":\"accepted\",\"source\":\"s\","
               "\"occurred_at\":1000,\"owner\":\"rep\"}");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(
            lf_producer_emit_opaque(p, &ev, &tickets[i], err, sizeof(err)),
            LF_OK, "%s", err);
    cr_assert_eq(lf_producer_flush(p, 10000), LF_OK);
    cr_assert_eq(r.n, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(r.opaque[i], &tickets[i], "reports in emit order");
        cr_assert_eq(r.err[i], RD_KAFKA_RESP_ERR__MSG_TIMED_OUT);
        cr_assert_eq(r.status[i], RD_KAFKA_MSG_STATUS_NOT_PERSISTED);
        cr_assert(strstr(r.reason[i], "timed out"), "%s", r.reason[i]);
        cr_assert(lf_producer_err_retriable(r.err[i]));
    }
    lf_producer_counts(p, &emitted, &delivered, &failed);
    cr_assert(emitted == 3 && delivered == 0 && failed == 3);
    lf_producer_destroy(p);
    lf_event_clear(&ev);
}

Test(producer, full_queue_waits_never_drops)
{
    reports_t r = {0};
    lf_producer_t *p =
        producer_with((const char *const[]){"bootstrap.servers=127.0.0.1:1",
                                            "queue.buffering.max.messages=2",
                                            "message.timeout.ms=200", NULL},
                      &r);
    lf_event_t ev;
    char err[512];

    event(&ev, "{\"lead_id\":\"L-2\",\"type\":\"lost\",\"source\":\"s\","
               "\"occurred_at\":1000,\"reason\":\"price\"}");
    /* Only 2 fit; each emit past them waits until older ones time out. */
    for (int i = 0; i < 8; i++)
        cr_assert_eq(lf_producer_emit(p, &ev, err, sizeof(err)), LF_OK, "%s",
                     err);
    cr_assert_eq(lf_producer_flush(p, 10000), LF_OK);
    cr_assert_eq(r.n, 8, "every emitted event reported, none dropped");
    lf_producer_destroy(p);
    lf_event_clear(&ev);
}

Test(producer, interrupt_while_queue_full)
{
    static volatile sig_atomic_t flag;
    reports_t r = {0};
    lf_producer_t *p = producer_with(
        (const char *const[]){"bootstrap.servers=127.0.0.1:1",
                              "queue.buffering.max.messages=1", NULL},
        &r);
    lf_event_t ev;
    char err[512];

    lf_producer_set_interrupt(p, &flag);
    event(&ev, "{\"lead_id\":\"L-3\",\"type\":\"lost\",\"source\":\"s\","
               "\"occurred_at\":1000,\"reason\":\"price\"}");
    cr_assert_eq(lf_producer_emit(p, &ev, err, sizeof(err)), LF_OK);
    flag = 1;
    cr_assert_eq(lf_producer_emit(p, &ev, err, sizeof(err)), LF_ERR_TEMPORARY);
    cr_assert(strstr(err, "not sent"), "%s", err);
    cr_assert_eq(lf_producer_inflight(p), 1);
    /* Destroy gives up on the one in flight, and reports it. */
    lf_producer_destroy(p);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(r.err[0], RD_KAFKA_RESP_ERR__PURGE_QUEUE);
    lf_event_clear(&ev);
}

/* Read back up to @p n messages of "lead-events" from @p bootstrap, all
 * four partitions from the beginning, into out[0..*got). Returns the
 * consumer: destroy the messages before it (rd_kafka_destroy() waits for
 * them). */
static rd_kafka_t *consume(const char *bootstrap, rd_kafka_message_t **out,
                           int n, int *got_out)
{
    rd_kafka_conf_t *rkc = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *parts;
    char err[512];
    rd_kafka_t *rk;
    int got = 0;

    cr_assert_eq(rd_kafka_conf_set(rkc, "bootstrap.servers", bootstrap, err,
                                   sizeof(err)),
                 RD_KAFKA_CONF_OK);
    rd_kafka_conf_set(rkc, "group.id", "test", err, sizeof(err));
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, rkc, err, sizeof(err));
    cr_assert_not_null(rk, "%s", err);
    parts = rd_kafka_topic_partition_list_new(4);
    for (int i = 0; i < 4; i++)
        rd_kafka_topic_partition_list_add(parts, "lead-events", i)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    for (int tries = 0; got < n && tries < 100; tries++) {
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(rk, 100);
        if (!rkm)
            continue;
        if (rkm->err)
            rd_kafka_message_destroy(rkm);
        else
            out[got++] = rkm;
    }
    *got_out = got;
    return rk;
}

static const char *header(rd_kafka_message_t *rkm, const char *name, char *buf,
                          size_t size)
{
    rd_kafka_headers_t *hdrs;
    const void *v;
    size_t len;

    if (rd_kafka_message_headers(rkm, &hdrs) ||
        rd_kafka_header_get_last(hdrs, name, &v, &len))
        return NULL;
    snprintf(buf, size, "%.*s", (int)len, (const char *)v);
    return buf;
}

Test(producer, wire_key_partition_headers_value, .timeout = 30)
{
    static const char *leads[] = {"L-000001", "L-2", "lead \xc3\xa9", "x",
                                  "L-000017"};
    reports_t r = {0};
    rd_kafka_message_t *msgs[8];
    lf_event_t ev[5], back;
    lf_codec_t *codec;
    char err[512], json[512], buf[128], bootstrap[300];
    rd_kafka_t *mrk, *crk;
    rd_kafka_mock_cluster_t *mc;
    lf_producer_t *p;
    int n;

    /* A mock cluster of its own with the topic made first, 4 partitions
     * like the devbroker's default (auto-created ones get the mock's
     * default count). */
    rd_kafka_conf_t *mconf = rd_kafka_conf_new();
    rd_kafka_conf_set(mconf, "log_level", "2", err, sizeof(err));
    mrk = rd_kafka_new(RD_KAFKA_PRODUCER, mconf, err, sizeof(err));
    cr_assert_not_null(mrk, "%s", err);
    mc = rd_kafka_mock_cluster_new(mrk, 1);
    cr_assert_not_null(mc);
    cr_assert_eq(rd_kafka_mock_topic_create(mc, "lead-events", 4, 1), 0);
    snprintf(bootstrap, sizeof(bootstrap), "bootstrap.servers=%s",
             rd_kafka_mock_cluster_bootstraps(mc));
    p = producer_with((const char *const[]){bootstrap, NULL}, &r);

    for (int i = 0; i < 5; i++) {
        snprintf(json, sizeof(json),
                 "{\"lead_id\":\"%s\",\"type\":\"handed_off\",\"source\":"
                 "\"marketo\",\"occurred_at\":\"2026-03-01T09:30:00.%03dZ\","
                 "\"owner\":\"rep-7\",\"sla_hours\":24}",
                 leads[i], i);
        event(&ev[i], json);
        cr_assert_eq(
            lf_producer_emit_opaque(p, &ev[i], &leads[i], err, sizeof(err)),
            LF_OK, "%s", err);
    }
    cr_assert_eq(lf_producer_flush(p, 20000), LF_OK);
    cr_assert_eq(r.n, 5);
    for (int k = 0; k < 5; k++) {
        /* reports come per partition: the opaque says which event */
        int i = (int)((const char **)r.opaque[k] - leads);
        cr_assert(i >= 0 && i < 5);
        cr_assert_eq(r.err[k], 0, "%s", r.reason[k]);
        cr_assert_eq(r.status[k], RD_KAFKA_MSG_STATUS_PERSISTED);
        cr_assert_eq(r.partition[k], java_partition(leads[i], 4),
                     "lead %s: partition %d, Java says %d", leads[i],
                     r.partition[k], java_partition(leads[i], 4));
        cr_assert_geq(r.latency_us[k], 0);
    }

    crk = consume(rd_kafka_mock_cluster_bootstraps(mc), msgs, 5, &n);
    cr_assert_eq(n, 5);
    codec = lf_codec_new(err, sizeof(err));
    cr_assert_not_null(codec);
    for (int k = 0; k < n; k++) {
        rd_kafka_message_t *m = msgs[k];
        int i = -1;
        lf_event_init(&back);
        cr_assert_eq(
            lf_codec_decode(codec, m->payload, m->len, &back, err, sizeof(err)),
            LF_OK, "%s", err);
        for (int j = 0; j < 5; j++)
            if (!strcmp(ev[j].event_id, back.event_id))
                i = j;
        cr_assert_geq(i, 0);
        cr_assert(lf_event_equal(&back, &ev[i]));
        cr_assert_eq(m->key_len, strlen(leads[i]));
        cr_assert_eq(memcmp(m->key, leads[i], m->key_len), 0);
        cr_assert_eq(m->partition, java_partition(leads[i], 4));
        cr_assert_str_eq(header(m, "ce_specversion", buf, sizeof(buf)), "1.0");
        cr_assert_str_eq(header(m, "ce_id", buf, sizeof(buf)), ev[i].event_id);
        cr_assert_str_eq(header(m, "ce_type", buf, sizeof(buf)),
                         "leadflow.lead.handed_off");
        cr_assert_str_eq(header(m, "ce_source", buf, sizeof(buf)), "marketo");
        cr_assert_str_eq(header(m, "ce_subject", buf, sizeof(buf)), leads[i]);
        snprintf(json, sizeof(json), "2026-03-01T09:30:00.%03dZ", i);
        cr_assert_str_eq(header(m, "ce_time", buf, sizeof(buf)), json);
        cr_assert_str_eq(header(m, "content-type", buf, sizeof(buf)),
                         "application/avro");
        lf_event_clear(&back);
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(crk);
    rd_kafka_destroy(crk);
    lf_codec_destroy(codec);
    lf_producer_destroy(p);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(mrk);
    for (int i = 0; i < 5; i++)
        lf_event_clear(&ev[i]);
}

Test(producer, destroy_reports_what_is_in_flight)
{
    reports_t r = {0};
    lf_producer_t *p = producer_with(
        (const char *const[]){"bootstrap.servers=127.0.0.1:1", NULL}, &r);
    lf_event_t ev;
    char err[512];

    event(&ev, "{\"lead_id\":\"L-4\",\"type\":\"lost\",\"source\":\"s\","
               "\"occurred_at\":1000,\"reason\":\"price\"}");
    for (int i = 0; i < 4; i++)
        cr_assert_eq(lf_producer_emit(p, &ev, err, sizeof(err)), LF_OK);
    cr_assert_eq(lf_producer_flush(p, 100), LF_ERR_TEMPORARY);
    lf_producer_destroy(p);
    cr_assert_eq(r.n, 4, "each event reported even at destroy");
    for (int i = 0; i < 4; i++)
        cr_assert_neq(r.err[i], 0);
    lf_event_clear(&ev);
}

Test(producer, retriable_classification)
{
    cr_assert(lf_producer_err_retriable(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT));
    cr_assert(lf_producer_err_retriable(RD_KAFKA_RESP_ERR__TRANSPORT));
    cr_assert(lf_producer_err_retriable(RD_KAFKA_RESP_ERR__PURGE_INFLIGHT));
    cr_assert_not(
        lf_producer_err_retriable(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE));
    cr_assert_not(lf_producer_err_retriable(
        RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED));
}

/* contract.version picks what is written; v1 refuses what it cannot
 * carry, naming it, and no report follows. */
Test(producer, contract_version)
{
    reports_t r = {0};
    lf_conf_t *conf = conf_with((const char *const[]){
        "bootstrap.servers=127.0.0.1:1", "contract.version=3", NULL});
    char err[512] = "";
    lf_producer_t *p;
    lf_event_t ev;

    cr_assert_null(lf_producer_new(conf, err, sizeof(err)));
    cr_assert(strstr(err, "\"contract.version\""), "%s", err);
    lf_conf_destroy(conf);
    p = producer_with((const char *const[]){"bootstrap.servers=127.0.0.1:1",
                                            "contract.version=1", NULL},
                      &r);
    event(&ev, "{\"lead_id\":\"L-1\",\"type\":\"merged\",\"source\":\"s\","
               "\"occurred_at\":0,\"into_lead_id\":\"L-2\"}");
    cr_assert_eq(lf_producer_emit(p, &ev, err, sizeof(err)), LF_ERR_INVALID);
    cr_assert(strstr(err, "contract v1 cannot carry merged events"), "%s", err);
    lf_event_clear(&ev);
    event(&ev, "{\"lead_id\":\"L-1\",\"type\":\"lost\",\"source\":\"s\","
               "\"occurred_at\":0,\"reason\":\"r\",\"account_id\":\"A\"}");
    cr_assert_eq(lf_producer_emit(p, &ev, err, sizeof(err)), LF_ERR_INVALID);
    cr_assert(strstr(err, "field \"account_id\": contract v1 cannot carry"),
              "%s", err);
    cr_assert_eq(lf_producer_inflight(p), 0);
    lf_producer_destroy(p);
    cr_assert_eq(r.n, 0);
    lf_event_clear(&ev);
}
