/* test_projector.c: the projector against a throwaway PostgreSQL
 * (lf_test_pg.h): events built with the C API go in through
 * lf_projector_add_event() and lf_projector_add_message(), and the tests
 * check the rows a user would check in funnel.events, leads,
 * stage_history, anomalies, dead_letters and offsets. */
#include "lf_codec.h"
#include "lf_codec_int.h"
#include "lf_conf.h"
#include "lf_deadletter.h"
#include "lf_definition.h"
#include "lf_defstore.h"
#include "lf_embedded.h"
#include "lf_identity.h"
#include "lf_projector.h"
#include "lf_projector_int.h"
#include "lf_rebuild.h"
#include "lf_test_pg.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOPIC "leads"
#define GROUP "g-test"

/* Per test: a server with the funnel tables, a projector into them. */
static char pgdir[512];
static PGconn *conn;
static lf_projector_t *proj;
static char errstr[512];

/* The erasure key of every projector here (tests only). */
static const char test_key[32] = "leadflow-test-pseudonym-key-32b";
static lf_pseudonym_t *pseudonyms;

static void setup(void)
{
    conn = pg_up_migrated(pgdir, sizeof(pgdir));
    proj = lf_projector_new("funnel", GROUP, errstr, sizeof(errstr));
    cr_assert_not_null(proj, "%s", errstr);
    pseudonyms = lf_pseudonym_new(test_key, sizeof(test_key));
    cr_assert_not_null(pseudonyms);
    lf_projector_use_pseudonyms(proj, pseudonyms);
}

/* A producer handle and topic for building consumed messages (created
 * on first use by add_dead()). */
static rd_kafka_t *msg_rk;
static rd_kafka_topic_t *msg_rkt;

static void teardown(void)
{
    if (msg_rkt)
        rd_kafka_topic_destroy(msg_rkt);
    if (msg_rk)
        rd_kafka_destroy(msg_rk);
    msg_rk = NULL;
    msg_rkt = NULL;
    lf_projector_destroy(proj);
    lf_pseudonym_destroy(pseudonyms);
    pg_down(conn, pgdir);
}

TestSuite(projector, .init = setup, .fini = teardown, .timeout = 120);

/* ---- building events --------------------------------------------------- */

/* An event of @p type with the payload fields it needs; the times are ms
 * since the epoch. */
static lf_event_t event(const char *id, const char *lead, lf_event_type_t type,
                        int64_t at)
{
    lf_event_t ev;

    lf_event_init(&ev);
    ev.event_id = strdup(id);
    ev.lead_id = strdup(lead);
    ev.type = type;
    ev.occurred_at = at;
    ev.source = strdup("crm");
    switch (type) {
    case LF_EV_CAPTURED:
        ev.u.captured.channel = strdup("web");
        ev.u.captured.campaign = strdup("spring");
        break;
    case LF_EV_SCORED:
        ev.u.scored.score = 80;
        ev.u.scored.threshold = 50;
        ev.u.scored.model = strdup("m1");
        break;
    case LF_EV_HANDED_OFF:
        ev.u.handed_off.owner = strdup("ann");
        ev.u.handed_off.sla_hours = 24;
        break;
    case LF_EV_ACCEPTED:
        ev.u.accepted.owner = strdup("ann");
        break;
    case LF_EV_QUALIFIED:
        ev.u.qualified.opportunity_id = strdup("opp-1");
        ev.u.qualified.amount_minor = 500000;
        ev.u.qualified.currency = strdup("EUR");
        break;
    case LF_EV_WON:
        ev.u.won.amount_minor = 450000;
        ev.u.won.currency = strdup("EUR");
        break;
    case LF_EV_LOST:
        ev.u.lost.reason = strdup("price");
        break;
    case LF_EV_DISQUALIFIED:
        ev.u.disqualified.reason = strdup("spam");
        break;
    case LF_EV_RECYCLED:
        ev.u.recycled.reason = LF_RR_NOT_READY;
        break;
    case LF_EV_MERGED:
        ev.u.merged.into_lead_id = strdup("L-into");
        break;
    case LF_EV_VOIDED:
        ev.u.voided.voided_event_id =
            strdup("6f1c2a3e-1b2c-4d5e-8f90-a1b2c3d4e5f6");
        ev.u.voided.reason = strdup("test data");
        break;
    case LF_EV_ERASED:
        ev.u.erased.request_id = strdup("req-1");
        break;
    default:
        break;
    }
    return ev;
}

/* Add an event as consumed from TOPIC partition 0 at @p offset. */
static void add(const char *id, const char *lead, lf_event_type_t type,
                int64_t at, int64_t offset)
{
    lf_event_t ev = event(id, lead, type, at);
    cr_assert_eq(lf_projector_add_event(proj, &ev, TOPIC, 0, offset), LF_OK);
}

static void flush_ok(void)
{
    lf_err_t err = lf_projector_flush(proj, conn, NULL, errstr, sizeof(errstr));
    cr_assert_eq(err, LF_OK, "flush: %s", errstr);
    cr_assert_eq(lf_projector_pending(proj), 0);
}

/* The content of every funnel table (no wall-clock column) as one
 * digest. */
static char *tables_digest(void)
{
    return strdup(sql_value(
        conn,
        "SELECT md5(concat_ws('|',"
        " (SELECT string_agg((to_jsonb(e) - 'received_at')::text, ','"
        "  ORDER BY event_id) FROM funnel.events e),"
        " (SELECT string_agg((to_jsonb(l) - 'updated_at')::text, ','"
        "  ORDER BY lead_id) FROM funnel.leads l),"
        " (SELECT string_agg(h::text, ',' ORDER BY lead_id, visit)"
        "  FROM funnel.stage_history h),"
        " (SELECT string_agg((to_jsonb(a) - 'detected_at')::text, ','"
        "  ORDER BY event_id, kind, reason) FROM funnel.anomalies a),"
        " (SELECT string_agg((to_jsonb(d) - 'received_at')::text, ','"
        "  ORDER BY \"offset\") FROM funnel.dead_letters d),"
        " (SELECT string_agg(concat_ws(':', group_id, topic, partition,"
        "  next_offset), ',' ORDER BY topic, partition) FROM funnel.offsets)"
        "))"));
}

/* ---- the tests ---------------------------------------------------------- */

Test(projector, happy_path_lead)
{
    rd_kafka_topic_partition_list_t *committed = NULL;

    add("e1", "L1", LF_EV_CAPTURED, 1000, 10);
    add("e2", "L1", LF_EV_SCORED, 2000, 11);
    add("e3", "L1", LF_EV_HANDED_OFF, 3000, 12);
    cr_assert_eq(
        lf_projector_flush(proj, conn, &committed, errstr, sizeof(errstr)),
        LF_OK, "%s", errstr);

    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM funnel.events"),
                     "3");
    cr_expect_str_eq(
        sql_value(
            conn,
            "SELECT concat_ws('|', stage, score, score_model, owner, channel,"
            " campaign, cycle, visits, last_event_id, stage_entered_by,"
            " (extract(epoch FROM captured_at) * 1000)::int8,"
            " (extract(epoch FROM first_marketing_qualified_at) * 1000)::int8,"
            " (extract(epoch FROM first_handed_off_at) * 1000)::int8,"
            " (extract(epoch FROM stage_entered_at) * 1000)::int8,"
            " (extract(epoch FROM last_event_at) * 1000)::int8)"
            " FROM funnel.leads WHERE lead_id = 'L1'"),
        "handed_off|80|m1|ann|web|spring|1|3|e3|e3|1000|2000|3000|3000|3000");
    cr_expect_str_eq(
        sql_value(conn,
                  "SELECT string_agg(concat_ws(':', visit, stage,"
                  " entered_by, (extract(epoch FROM exited_at) * 1000)::int8),"
                  " ',' ORDER BY visit) FROM funnel.stage_history"),
        "1:captured:e1:2000,2:marketing_qualified:e2:3000,"
        "3:handed_off:e3");
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM funnel.anomalies"),
                     "0");
    cr_expect_str_eq(
        sql_value(conn, "SELECT concat_ws('|', group_id, topic, partition,"
                        " next_offset) FROM funnel.offsets"),
        GROUP "|" TOPIC "|0|13");
    cr_assert_not_null(committed);
    cr_expect_eq(committed->cnt, 1);
    cr_expect_eq(committed->elems[0].offset, 13);
    rd_kafka_topic_partition_list_destroy(committed);

    const lf_projector_stats_t *st = lf_projector_stats(proj);
    cr_expect_eq(st->events_new, 3);
    cr_expect_eq(st->duplicates, 0);
    cr_expect_eq(st->batches, 1);
    cr_expect_eq(st->by_type[LF_EV_SCORED], 1);
}

/* Every column of a lead that continues from its stored row, batch after
 * batch, is what it would be in one batch. */
Test(projector, lead_continues_from_its_stored_row)
{
    add("e1", "L1", LF_EV_CAPTURED, 1000, 0);
    add("e2", "L1", LF_EV_SCORED, 2000, 1);
    flush_ok();
    add("e3", "L1", LF_EV_HANDED_OFF, 3000, 2);
    add("e4", "L1", LF_EV_ACCEPTED, 4000, 3);
    flush_ok();
    add("e5", "L1", LF_EV_QUALIFIED, 5000, 4);
    add("e6", "L1", LF_EV_WON, 6000, 5);
    flush_ok();

    cr_expect_eq(lf_projector_stats(proj)->recomputed, 0);
    cr_expect_str_eq(
        sql_value(
            conn,
            "SELECT concat_ws('|', stage, cycle, score, score_model, owner,"
            " channel, campaign, won_amount_minor, currency, visits,"
            " last_event_id, stage_entered_by,"
            " (extract(epoch FROM stage_entered_at) * 1000)::int8,"
            " (extract(epoch FROM captured_at) * 1000)::int8,"
            " (extract(epoch FROM first_marketing_qualified_at) * 1000)::int8,"
            " (extract(epoch FROM first_handed_off_at) * 1000)::int8,"
            " (extract(epoch FROM first_sales_accepted_at) * 1000)::int8,"
            " (extract(epoch FROM first_sales_qualified_at) * 1000)::int8,"
            " (extract(epoch FROM won_at) * 1000)::int8,"
            " coalesce(lost_at::text, 'no'), coalesce(disqualified_at::text,"
            " 'no'), (extract(epoch FROM last_event_at) * 1000)::int8)"
            " FROM funnel.leads"),
        "won|1|80|m1|ann|web|spring|450000|EUR|6|e6|e6|6000|1000|2000|3000|"
        "4000|5000|6000|no|no|6000");
    cr_expect_str_eq(
        sql_value(conn, "SELECT string_agg(visit || ':' || stage || ':' ||"
                        " coalesce((extract(epoch FROM exited_at) * 1000)"
                        "::int8::text, '-'), ',' ORDER BY visit)"
                        " FROM funnel.stage_history"),
        "1:captured:2000,2:marketing_qualified:3000,"
        "3:handed_off:4000,4:sales_accepted:5000,"
        "5:sales_qualified:6000,6:won:-");
}

Test(projector, late_event_recomputes_its_lead)
{
    add("e1", "L1", LF_EV_CAPTURED, 1000, 0);
    add("e3", "L1", LF_EV_HANDED_OFF, 3000, 1);
    flush_ok();
    cr_expect_str_eq(sql_value(conn,
                               "SELECT first_marketing_qualified_at IS NULL"
                               " FROM funnel.leads"),
                     "t");

    add("e2", "L1", LF_EV_SCORED, 2000, 2); /* before e3 */
    flush_ok();
    cr_expect_eq(lf_projector_stats(proj)->recomputed, 1);
    cr_expect_str_eq(
        sql_value(
            conn,
            "SELECT concat_ws('|', stage, score, visits, last_event_id,"
            " (extract(epoch FROM first_marketing_qualified_at) * 1000)::int8)"
            " FROM funnel.leads"),
        "handed_off|80|3|e3|2000");
    cr_expect_str_eq(sql_value(conn,
                               "SELECT string_agg(visit || ':' || stage, ','"
                               " ORDER BY visit) FROM funnel.stage_history"),
                     "1:captured,2:marketing_qualified,3:handed_off");
}

Test(projector, duplicates_are_stored_once)
{
    add("e1", "L1", LF_EV_CAPTURED, 1000, 0);
    add("e1", "L1", LF_EV_CAPTURED, 1000, 1); /* twice in one batch */
    flush_ok();
    add("e1", "L1", LF_EV_CAPTURED, 1000, 2); /* and in a later one */
    flush_ok();

    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM funnel.events"),
                     "1");
    cr_expect_str_eq(sql_value(conn, "SELECT \"offset\" FROM funnel.events"),
                     "0");
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM funnel.anomalies"),
                     "0");
    cr_expect_str_eq(sql_value(conn, "SELECT visits FROM funnel.leads"), "1");
    cr_expect_str_eq(sql_value(conn, "SELECT next_offset FROM funnel.offsets"),
                     "3");
    cr_expect_eq(lf_projector_stats(proj)->events_new, 1);
    cr_expect_eq(lf_projector_stats(proj)->duplicates, 2);
    cr_expect_eq(lf_projector_stats(proj)->conflicts, 0);
}

Test(projector, conflict_keeps_the_first_and_lists_the_other)
{
    add("e1", "L1", LF_EV_CAPTURED, 1000, 0);
    flush_ok();
    add("e1", "L1", LF_EV_CAPTURED, 5000, 4); /* same id, other content */
    flush_ok();
    add("e1", "L1", LF_EV_CAPTURED, 5000, 4); /* replayed: listed once */
    flush_ok();

    cr_expect_str_eq(
        sql_value(conn, "SELECT (extract(epoch FROM occurred_at) * 1000)::int8"
                        " FROM funnel.events"),
        "1000");
    cr_expect_str_eq(
        sql_value(
            conn,
            "SELECT concat_ws('|', count(*), min(event_id), min(lead_id),"
            " min(reason)) FROM funnel.anomalies WHERE kind = 'conflict'"),
        "1|e1|L1|event_id reused with different content at " TOPIC
        " partition 0 offset 4");
    cr_expect_eq(lf_projector_stats(proj)->conflicts, 1);
}

Test(projector, anomalies_are_listed)
{
    add("w1", "L9", LF_EV_SCORED, 1000, 0); /* not captured */
    add("e1", "L1", LF_EV_CAPTURED, 1000, 1);
    add("e2", "L1", LF_EV_ACCEPTED, 2000, 2); /* not handed off */
    flush_ok();

    cr_expect_str_eq(
        sql_value(conn, "SELECT string_agg(event_id || ':' || lead_id, ','"
                        " ORDER BY event_id) FROM funnel.anomalies"
                        " WHERE kind = 'state'"),
        "e2:L1,w1:L9");
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM funnel.leads WHERE"
                                     " lead_id = 'L9'"),
                     "0");
    cr_expect_str_eq(
        sql_value(conn, "SELECT stage FROM funnel.leads WHERE lead_id = 'L1'"),
        "captured");
    cr_expect_eq(lf_projector_stats(proj)->anomalies, 2);

    /* The capture arrives late: L9 is recomputed, and its anomaly is
     * resolved. */
    add("c9", "L9", LF_EV_CAPTURED, 500, 3);
    flush_ok();
    cr_expect_str_eq(sql_value(conn,
                               "SELECT count(*) FROM funnel.anomalies WHERE"
                               " lead_id = 'L9'"),
                     "0");
    cr_expect_str_eq(
        sql_value(conn, "SELECT stage FROM funnel.leads WHERE lead_id = 'L9'"),
        "marketing_qualified");
}

Test(projector, messages_dead_letters_and_key_anomalies)
{
    rd_kafka_conf_t *kconf = rd_kafka_conf_new();
    char kerr[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kconf, kerr, sizeof(kerr));
    cr_assert_not_null(rk, "%s", kerr);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, TOPIC, NULL);
    lf_codec_t *codec = lf_codec_new(errstr, sizeof(errstr));
    lf_event_t ev = event("e1", "L1", LF_EV_CAPTURED, 1000);
    lf_buf_t value = {0};
    rd_kafka_message_t rkm;

    cr_assert_not_null(codec, "%s", errstr);
    cr_assert_eq(lf_codec_encode(codec, &ev, LF_SCHEMA_ID_V2, &value, errstr,
                                 sizeof(errstr)),
                 LF_OK, "%s", errstr);
    memset(&rkm, 0, sizeof(rkm));
    rkm.rkt = rkt;
    rkm.partition = 2;
    rkm.offset = 7;
    rkm.payload = value.data;
    rkm.len = value.len;
    rkm.key = (void *)"someone-else";
    rkm.key_len = strlen("someone-else");
    cr_assert_eq(lf_projector_add_message(proj, &rkm), LF_OK);
    rkm.offset = 8;
    rkm.payload = (void *)"not avro";
    rkm.len = 8;
    cr_assert_eq(lf_projector_add_message(proj, &rkm), LF_OK);
    /* A key that is not UTF-8 is measured, not quoted (PostgreSQL would
     * refuse the note, and the batch with it). */
    lf_event_clear(&ev);
    ev = event("e2", "L2", LF_EV_CAPTURED, 1000);
    lf_buf_reset(&value);
    cr_assert_eq(lf_codec_encode(codec, &ev, LF_SCHEMA_ID_V2, &value, errstr,
                                 sizeof(errstr)),
                 LF_OK, "%s", errstr);
    rkm.offset = 9;
    rkm.payload = value.data;
    rkm.len = value.len;
    rkm.key = (void *)"\xff\xfe";
    rkm.key_len = 2;
    cr_assert_eq(lf_projector_add_message(proj, &rkm), LF_OK);
    flush_ok();

    cr_expect_str_eq(
        sql_value(conn, "SELECT string_agg(concat_ws('|', event_id, lead_id, "
                        "reason), ';' ORDER BY event_id)"
                        " FROM funnel.anomalies WHERE kind = 'key'"),
        "e1|L1|Kafka key \"someone-else\" differs from lead_id;"
        "e2|L2|Kafka key (2 bytes, not a lead id) differs from lead_id");
    cr_expect_str_eq(sql_value(conn, "SELECT string_agg(stage, ',') FROM "
                                     "funnel.leads"),
                     "captured,captured");
    cr_expect_str_eq(
        sql_value(conn, "SELECT concat_ws('|', topic, partition, \"offset\","
                        " convert_from(key, 'UTF8'),"
                        " convert_from(value, 'UTF8'), error <> '')"
                        " FROM funnel.dead_letters"),
        TOPIC "|2|8|someone-else|not avro|t");
    cr_expect_str_eq(sql_value(conn, "SELECT next_offset FROM funnel.offsets"
                                     " WHERE partition = 2"),
                     "10");
    cr_expect_eq(lf_projector_stats(proj)->dead_letters, 1);

    /* Another group reads the letter again: stored once, and not counted
     * again (leadflow_dead_letters_total counted it). */
    lf_projector_t *other =
        lf_projector_new("funnel", "another-group", errstr, sizeof(errstr));
    cr_assert_not_null(other, "%s", errstr);
    lf_projector_use_pseudonyms(other, pseudonyms);
    rkm.offset = 8;
    rkm.payload = (void *)"not avro";
    rkm.len = 8;
    rkm.key = (void *)"someone-else";
    rkm.key_len = strlen("someone-else");
    cr_assert_eq(lf_projector_add_message(other, &rkm), LF_OK);
    cr_assert_eq(lf_projector_flush(other, conn, NULL, errstr, sizeof(errstr)),
                 LF_OK, "%s", errstr);
    cr_expect_eq(lf_projector_stats(other)->dead_letters, 0);
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM "
                                     "funnel.dead_letters"),
                     "1");
    lf_projector_destroy(other);

    lf_event_clear(&ev);
    lf_buf_free(&value);
    lf_codec_destroy(codec);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
}

/* A v2 merged event (@p id: @p lead into @p into) sent under Kafka key
 * @p key at @p offset to a reader that knows contract v1 only: a dead
 * letter the upgraded decoder of a retry applies. */
static void send_v2_merge(const char *id, const char *lead, const char *into,
                          const char *key, int64_t offset)
{
    rd_kafka_conf_t *kconf = rd_kafka_conf_new();
    char kerr[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kconf, kerr, sizeof(kerr));
    cr_assert_not_null(rk, "%s", kerr);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, TOPIC, NULL);
    lf_codec_t *codec = lf_codec_new(errstr, sizeof(errstr));
    lf_codec_t *old = lf_codec_new_reader_v1(errstr, sizeof(errstr));
    lf_event_t ev = event(id, lead, LF_EV_MERGED, 2000);
    lf_buf_t value = {0};
    rd_kafka_message_t rkm;

    cr_assert(codec && old, "%s", errstr);
    free(ev.u.merged.into_lead_id);
    ev.u.merged.into_lead_id = strdup(into);
    lf_projector_use_codec(proj, old);
    cr_assert_eq(lf_codec_encode(codec, &ev, LF_SCHEMA_ID_V2, &value, errstr,
                                 sizeof(errstr)),
                 LF_OK, "%s", errstr);
    memset(&rkm, 0, sizeof(rkm));
    rkm.rkt = rkt;
    rkm.offset = offset;
    rkm.payload = value.data;
    rkm.len = value.len;
    rkm.key = (void *)key;
    rkm.key_len = strlen(key);
    cr_assert_eq(lf_projector_add_message(proj, &rkm), LF_OK);
    flush_ok();
    lf_projector_use_codec(proj, codec); /* the projector destroys it */
    lf_event_clear(&ev);
    lf_buf_free(&value);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
}

/* What the last retry_all() printed (its first 8 KiB). */
static char retry_out[8192];

/* leadflow-replay dead-letters retry --all, with @p note. */
static lf_retry_counts_t retry_all(const char *note)
{
    lf_conf_t *conf = lf_conf_new();
    lf_retry_counts_t st = {0};
    FILE *out = tmpfile();
    char hex[2 * sizeof(test_key) + 1];

    cr_assert(conf && out);
    for (size_t i = 0; i < sizeof(test_key); i++) /* the projectors' key */
        snprintf(hex + 2 * i, 3, "%02x", (unsigned char)test_key[i]);
    cr_assert_eq(
        lf_conf_set(conf, LF_CONF_PSEUDONYM_KEY, hex, errstr, sizeof(errstr)),
        LF_OK, "%s", errstr);
    cr_assert_eq(lf_deadletter_retry(conn, conf, NULL, 0, false, note, out,
                                     NULL, &st, errstr, sizeof(errstr)),
                 LF_OK, "%s", errstr);
    rewind(out);
    retry_out[fread(retry_out, 1, sizeof(retry_out) - 1, out)] = '\0';
    fclose(out);
    lf_conf_destroy(conf);
    return st;
}

/* A reader that knows contract v1 only meets a v2 merged event: the
 * message is dead-lettered with the schema id and the symbol named; after
 * the upgrade (the decoder the configuration gives knows v2), a retry of
 * the dead letters applies it. */
Test(projector, unknown_symbol_dead_lettered_then_applied_by_retry)
{
    send_v2_merge("m1", "L5", "L-into", "L5", 3);
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM funnel.events"),
                     "0");
    cr_expect_str_eq(
        sql_value(conn, "SELECT (error LIKE '%schema id 2%') AND "
                        "(error LIKE '%MERGED%') FROM funnel.dead_letters"),
        "t", "the reason names the schema id and the symbol");

    lf_retry_counts_t st = retry_all("upgrade");
    cr_expect_eq(st.applied, 1);
    cr_expect_eq(st.still_failing, 0);
    cr_expect_str_eq(sql_value(conn,
                               "SELECT concat_ws('|', event_id, lead_id, type,"
                               " payload->>'into_lead_id') FROM funnel.events"),
                     "m1|L5|merged|L-into");
    cr_expect_str_eq(sql_value(conn, "SELECT resolved_at IS NOT NULL FROM"
                                     " funnel.dead_letters"),
                     "t");
}

/* lf_projector_before_commit(): the caller's writes commit with the batch,
 * and a failure of theirs leaves nothing of it (what dead-letters retry
 * relies on: its letters' marks and their events, or neither). */
static lf_err_t note_batch(void *arg, PGconn *c, char *e, size_t n)
{
    const char *sql = arg;
    PGresult *res = PQexec(c, sql);
    lf_err_t err =
        PQresultStatus(res) == PGRES_COMMAND_OK
            ? LF_OK
            : lf_seterr(LF_ERR_PG, e, n, "%s", PQresultErrorMessage(res));
    PQclear(res);
    return err;
}

Test(projector, before_commit_writes_go_with_the_batch)
{
    sql_ok(conn, "CREATE TABLE public.marks (x int)");
    lf_projector_before_commit(proj, note_batch,
                               "INSERT INTO public.marks VALUES (1/0)");
    add("h1", "LH", LF_EV_CAPTURED, 1000, 0);
    cr_expect_eq(lf_projector_flush(proj, conn, NULL, errstr, sizeof(errstr)),
                 LF_ERR_PG);
    cr_expect(strstr(errstr, "division by zero"), "%s", errstr);
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM funnel.events"),
                     "0");
    lf_projector_before_commit(proj, note_batch,
                               "INSERT INTO public.marks VALUES (1)");
    flush_ok();
    lf_projector_before_commit(proj, NULL, NULL);
    cr_expect_str_eq(sql_value(conn, "SELECT (SELECT count(*) FROM "
                                     "funnel.events) || '|' || (SELECT "
                                     "count(*) FROM public.marks)"),
                     "1|1");
}

/* A batch declared to continue from a stored next offset that the table
 * no longer holds is refused whole, and kept. */
Test(projector, fenced_batch_is_refused_when_the_stored_offset_differs)
{
    add("e1", "L1", LF_EV_CAPTURED, 1000, 0);
    cr_assert_eq(
        lf_projector_continue_from(proj, TOPIC, 0, LF_PROJECTOR_NO_ROW), LF_OK);
    flush_ok();
    add("e2", "L1", LF_EV_SCORED, 2000, 1);
    cr_assert_eq(lf_projector_continue_from(proj, TOPIC, 0, 5), LF_OK);
    cr_assert_eq(lf_projector_flush(proj, conn, NULL, errstr, sizeof(errstr)),
                 LF_ERR_STALE);
    cr_expect(strstr(errstr, "partition 0"), "%s", errstr);
    cr_expect_eq(lf_projector_pending(proj), 1);
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM funnel.events"),
                     "1");
    cr_expect_str_eq(sql_value(conn, "SELECT next_offset FROM funnel.offsets"),
                     "1");
}

/* A batch: a lead through the whole funnel, a duplicate, a late event, an
 * anomaly. */
static void add_mixed_batch(void)
{
    add("a1", "LA", LF_EV_CAPTURED, 1000, 0);
    add("a2", "LA", LF_EV_SCORED, 2000, 1);
    add("a3", "LA", LF_EV_HANDED_OFF, 3000, 2);
    add("a4", "LA", LF_EV_ACCEPTED, 4000, 3);
    add("a5", "LA", LF_EV_QUALIFIED, 5000, 4);
    add("a6", "LA", LF_EV_WON, 6000, 5);
    add("b1", "LB", LF_EV_CAPTURED, 1500, 6);
    add("b1", "LB", LF_EV_CAPTURED, 1500, 7);
    add("b2", "LB", LF_EV_LOST, 1600, 8);
    add("c1", "LC", LF_EV_DISQUALIFIED, 900, 9);
}

Test(projector, flushing_a_batch_twice_is_idempotent)
{
    char *once, *twice;

    add_mixed_batch();
    flush_ok();
    cr_expect_str_eq(
        sql_value(conn, "SELECT stage FROM funnel.leads WHERE lead_id = 'LA'"),
        "won");
    cr_expect_str_eq(sql_value(conn, "SELECT won_amount_minor FROM funnel.leads"
                                     " WHERE lead_id = 'LA'"),
                     "450000");
    once = tables_digest();
    add_mixed_batch();
    flush_ok();
    twice = tables_digest();
    cr_expect_str_eq(twice, once);
    cr_expect_eq(lf_projector_stats(proj)->events_new, 9);
    free(once);
    free(twice);
}

/* A trigger that makes storing offsets, the last step before COMMIT, fail
 * with @p body. */
static void sabotage_offsets(const char *body)
{
    char sql[512];

    snprintf(sql, sizeof(sql),
             "CREATE FUNCTION sabotage_fn() RETURNS trigger LANGUAGE plpgsql"
             " AS $$BEGIN %s; RETURN NEW; END$$",
             body);
    sql_ok(conn, sql);
    sql_ok(conn,
           "CREATE TRIGGER sabotage BEFORE INSERT OR UPDATE ON funnel.offsets"
           " FOR EACH ROW EXECUTE FUNCTION sabotage_fn()");
}

static void repair_offsets(void)
{
    sql_ok(conn, "DROP TRIGGER sabotage ON funnel.offsets");
    sql_ok(conn, "DROP FUNCTION sabotage_fn()");
}

Test(projector, refused_flush_rolls_back_and_keeps_the_batch)
{
    char *expected;

    add_mixed_batch();
    flush_ok();
    expected = tables_digest();
    sql_ok(conn, "TRUNCATE funnel.events, funnel.leads, funnel.stage_history,"
                 " funnel.anomalies, funnel.offsets");

    sabotage_offsets("RAISE 'no offsets today'");
    add_mixed_batch();
    cr_assert_eq(lf_projector_flush(proj, conn, NULL, errstr, sizeof(errstr)),
                 LF_ERR_PG);
    cr_expect(strstr(errstr, "no offsets today"), "%s", errstr);
    cr_expect_eq(lf_projector_pending(proj), 10);
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM funnel.events"),
                     "0");
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM funnel.leads"), "0");
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM funnel.anomalies"),
                     "0");

    repair_offsets();
    flush_ok();
    char *got = tables_digest();
    cr_expect_str_eq(got, expected);
    free(got);
    free(expected);
}

Test(projector, lost_connection_rolls_back_and_the_retry_commits)
{
    add_mixed_batch();
    sabotage_offsets("PERFORM pg_terminate_backend(pg_backend_pid())");
    cr_assert_eq(lf_projector_flush(proj, conn, NULL, errstr, sizeof(errstr)),
                 LF_ERR_TEMPORARY, "%s", errstr);
    cr_expect_eq(lf_projector_pending(proj), 10);

    PQfinish(conn);
    conn = PQconnectdb(""); /* the server's PG* exports */
    cr_assert_eq(PQstatus(conn), CONNECTION_OK, "%s", PQerrorMessage(conn));
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM funnel.events"),
                     "0");
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM funnel.offsets"),
                     "0");
    repair_offsets();
    lf_projector_conn_reset(proj); /* the staging tables went with it */
    flush_ok();
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM funnel.events"),
                     "9");
    cr_expect_str_eq(
        sql_value(conn, "SELECT stage FROM funnel.leads WHERE lead_id = 'LA'"),
        "won");
    cr_expect_str_eq(sql_value(conn, "SELECT next_offset FROM funnel.offsets"),
                     "10");
}

/* ---- contract v2: accounts, identity events, fields a newer writer sent - */

/* An event with the v2 envelope: @p account (NULL: none), and the fields a
 * newer writer sent, @p extra and @p payload_extra (JSON objects or NULL). */
static lf_event_t event2(const char *id, const char *lead, lf_event_type_t type,
                         int64_t at, const char *account, const char *extra,
                         const char *payload_extra)
{
    lf_event_t ev = event(id, lead, type, at);

    ev.account_id = account ? strdup(account) : NULL;
    ev.extra = extra ? strdup(extra) : NULL;
    ev.payload_extra = payload_extra ? strdup(payload_extra) : NULL;
    return ev;
}

static void add2(const char *id, const char *lead, lf_event_type_t type,
                 int64_t at, const char *account, int64_t offset)
{
    lf_event_t ev = event2(id, lead, type, at, account, NULL, NULL);
    cr_assert_eq(lf_projector_add_event(proj, &ev, TOPIC, 0, offset), LF_OK);
}

/* The funnel tables but events (no wall-clock column) as one digest. */
static char *funnel_digest(void)
{
    return strdup(sql_value(
        conn, "SELECT md5(concat_ws('|',"
              " (SELECT string_agg((to_jsonb(l) - 'updated_at')::text, ','"
              "  ORDER BY lead_id) FROM funnel.leads l),"
              " (SELECT string_agg(h::text, ',' ORDER BY lead_id, visit)"
              "  FROM funnel.stage_history h),"
              " (SELECT string_agg((to_jsonb(a) - 'detected_at')::text, ','"
              "  ORDER BY event_id, kind, reason) FROM funnel.anomalies a)))"));
}

Test(projector, v2_fields_are_stored_every_one)
{
    lf_event_t ev = event2("e1", "L1", LF_EV_CAPTURED, 1000, "ACME",
                           "{\"region\": \"eu\", \"tier\": 2}",
                           "{\"utm\": {\"src\": \"ad\"}}");
    cr_assert_eq(lf_projector_add_event(proj, &ev, TOPIC, 0, 0), LF_OK);
    ev = event2("e2", "L1", LF_EV_SCORED, 2000, NULL, NULL, "{ }");
    cr_assert_eq(lf_projector_add_event(proj, &ev, TOPIC, 0, 1), LF_OK);
    flush_ok();

    cr_expect_str_eq(
        sql_value(conn, "SELECT concat_ws('|', account_id, extra::text, "
                        "payload::text) FROM funnel.events "
                        "WHERE event_id = 'e1'"),
        "ACME|{\"tier\": 2, \"region\": \"eu\"}|{\"utm\": {\"src\": \"ad\"}, "
        "\"channel\": \"web\", \"campaign\": \"spring\"}");
    cr_expect_str_eq(sql_value(conn, "SELECT concat_ws('|', account_id IS "
                                     "NULL, extra IS NULL, payload::text) "
                                     "FROM funnel.events "
                                     "WHERE event_id = 'e2'"),
                     "t|t|{\"model\": \"m1\", \"score\": 80, "
                     "\"threshold\": 50}");
    cr_expect_str_eq(sql_value(conn, "SELECT concat_ws('|', account_id, "
                                     "stage) FROM funnel.leads"),
                     "ACME|marketing_qualified");
}

/* A stored event read back (a recompute, a rebuild) is the event that
 * came in, with its unknown fields apart again. */
Test(projector, stored_event_reads_back_whole)
{
    lf_event_t ev = event2("e1", "L1", LF_EV_CAPTURED, 1000, "ACME",
                           "{\"region\": \"eu\"}", "{\"utm\": \"ad\"}");
    char sql[16384];
    PGresult *res;
    lf_event_t back;

    cr_assert_eq(lf_projector_add_event(proj, &ev, TOPIC, 0, 0), LF_OK);
    flush_ok();
    snprintf(sql, sizeof(sql), "SELECT %s FROM funnel.events",
             lf_projector_stored_sql());
    res = PQexec(conn, sql);
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s",
                 PQresultErrorMessage(res));
    cr_assert_eq(
        lf_projector_stored_event(res, 0, 0, &back, errstr, sizeof(errstr)),
        LF_OK, "%s", errstr);
    PQclear(res);
    cr_expect_str_eq(back.account_id, "ACME");
    cr_expect_str_eq(back.extra, "{\"region\": \"eu\"}");
    cr_expect_str_eq(back.payload_extra, "{\"utm\": \"ad\"}");
    cr_expect_str_eq(back.u.captured.channel, "web");
    cr_expect_str_eq(back.u.captured.campaign, "spring");
    lf_event_clear(&back);
}

/* An identity event: merged into @p arg, voided @p arg (an event_id), or
 * erased under request @p arg. */
static void add_identity(const char *id, const char *lead, lf_event_type_t t,
                         int64_t at, const char *arg, int64_t offset)
{
    lf_event_t ev = event(id, lead, t, at);
    char **field = t == LF_EV_MERGED   ? &ev.u.merged.into_lead_id
                   : t == LF_EV_VOIDED ? &ev.u.voided.voided_event_id
                                       : &ev.u.erased.request_id;
    free(*field);
    *field = strdup(arg);
    cr_assert_eq(lf_projector_add_event(proj, &ev, TOPIC, 0, offset), LF_OK);
}

static const char *leads_now(void)
{
    return sql_value(conn, "SELECT string_agg(concat_ws('|', lead_id, stage, "
                           "visits), ',' ORDER BY lead_id) FROM funnel.leads");
}

/* Merges chain and the surviving lead's funnel is the union of its
 * leads' stage events, whichever came first; a merged lead has no rows. */
Test(projector, merged_leads_count_for_the_surviving_lead)
{
    add("a1", "A", LF_EV_CAPTURED, 1000, 0);
    add("a2", "A", LF_EV_SCORED, 2000, 1);
    add("a9", "A", LF_EV_WON, 2500, 9); /* not a transition: an anomaly */
    add("c1", "C", LF_EV_CAPTURED, 500, 2);
    flush_ok();
    cr_expect_str_eq(leads_now(), "A|marketing_qualified|2,C|captured|1");

    add_identity("m1", "A", LF_EV_MERGED, 3000, "B", 3);
    add_identity("m2", "B", LF_EV_MERGED, 3500, "C", 4);
    flush_ok();
    /* C's capture (500), A's capture (a touch) and A's score. */
    cr_expect_str_eq(leads_now(), "C|marketing_qualified|2");
    cr_expect_str_eq(sql_value(conn, "SELECT string_agg(concat_ws('|', "
                                     "lead_id, into_lead_id, "
                                     "surviving_lead_id, event_id), ',' "
                                     "ORDER BY lead_id) FROM funnel.merges"),
                     "A|B|C|m1,B|C|C|m2");
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM "
                                     "funnel.stage_history WHERE lead_id "
                                     "IN ('A', 'B')"),
                     "0");
    cr_expect_str_eq(sql_value(conn, "SELECT string_agg(concat_ws('|', "
                                     "event_id, lead_id, kind), ',' ORDER BY "
                                     "event_id) FROM funnel.anomalies"),
                     "a9|C|state");
    cr_expect_eq(lf_projector_stats(proj)->merges, 2);

    /* A later event of a merged lead lands on the surviving lead. */
    add("a3", "A", LF_EV_HANDED_OFF, 4000, 5);
    flush_ok();
    cr_expect_str_eq(leads_now(), "C|handed_off|3");
}

/* A second merge of a lead into another target, and a cycle, are
 * anomalies; the same target again changes nothing. */
Test(projector, merge_conflicts_and_cycles_are_anomalies)
{
    add("a1", "A", LF_EV_CAPTURED, 1000, 0);
    add("b1", "B", LF_EV_CAPTURED, 1000, 1);
    add_identity("m1", "A", LF_EV_MERGED, 2000, "B", 2);
    add_identity("m2", "A", LF_EV_MERGED, 2100, "C", 3); /* other target */
    add_identity("m3", "A", LF_EV_MERGED, 2200, "B", 4); /* duplicate */
    add_identity("m4", "B", LF_EV_MERGED, 2300, "A", 5); /* cycle */
    flush_ok();
    cr_expect_str_eq(sql_value(conn, "SELECT string_agg(concat_ws('|', "
                                     "lead_id, surviving_lead_id), ',') "
                                     "FROM funnel.merges"),
                     "A|B");
    cr_expect_str_eq(sql_value(conn, "SELECT string_agg(concat_ws('|', "
                                     "event_id, lead_id), ',' ORDER BY "
                                     "event_id) FROM funnel.anomalies WHERE "
                                     "kind = 'merge'"),
                     "m2|B,m4|B");
    /* An earlier merge of A into C arrives late: it counts instead. */
    add_identity("m0", "A", LF_EV_MERGED, 1500, "C", 7);
    flush_ok();
    cr_expect_str_eq(sql_value(conn, "SELECT string_agg(concat_ws('|', "
                                     "lead_id, surviving_lead_id), ',' ORDER "
                                     "BY lead_id) FROM funnel.merges"),
                     "A|C,B|C"); /* B into A counts now: no cycle */
    cr_expect_str_eq(leads_now(), "C|captured|1");
}

#define UUID_A2 "00000000-0000-4000-8000-0000000000a2"
#define UUID_A3 "00000000-0000-4000-8000-0000000000a3"

/* A voided stage event no longer counts; a void of a missing event is an
 * anomaly until the event arrives. */
Test(projector, voided_events_do_not_count)
{
    add("a1", "A", LF_EV_CAPTURED, 1000, 0);
    add(UUID_A2, "A", LF_EV_SCORED, 2000, 1);
    flush_ok();
    add_identity("v1", "A", LF_EV_VOIDED, 5000, UUID_A2, 2);
    add_identity("v2", "A", LF_EV_VOIDED, 5000, UUID_A3, 3); /* not yet */
    flush_ok();
    cr_expect_str_eq(leads_now(), "A|captured|1");
    cr_expect_str_eq(sql_value(conn, "SELECT string_agg(event_id || '|' || "
                                     "voided_by, ',') FROM "
                                     "funnel.voided_events"),
                     UUID_A2 "|v1");
    cr_expect_str_eq(sql_value(conn, "SELECT string_agg(event_id || '|' || "
                                     "reason, ',') FROM funnel.anomalies "
                                     "WHERE kind = 'void'"),
                     "v2|voided event " UUID_A3 " not received");
    add(UUID_A3, "A", LF_EV_HANDED_OFF, 3000, 4);
    flush_ok();
    cr_expect_str_eq(leads_now(), "A|captured|1");
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM funnel.anomalies"),
                     "0");
}

/* @p fmt with two strings, into @p w (256 bytes). */
static const char *want(char *w, const char *fmt, const char *a, const char *b)
{
    snprintf(w, 256, fmt, a, b);
    return w;
}

/* Erasing a lead erases the person: ids become pseudonyms everywhere,
 * personal fields go, the funnel numbers stay, later events land on the
 * pseudonym. */
/* A's capture, at offset 0, with a personal attribute: email
 * ann@example.com. */
static void add_ann(void)
{
    lf_event_t ev = event("a1", "A", LF_EV_CAPTURED, 1000);
    lf_attr_t *attr = calloc(1, sizeof(*attr));

    attr->key = strdup("email");
    attr->value = strdup("ann@example.com");
    ev.u.captured.attrs = attr;
    ev.u.captured.attr_count = 1;
    cr_assert_eq(lf_projector_add_event(proj, &ev, TOPIC, 0, 0), LF_OK);
}

Test(projector, erased_people_leave_no_trace)
{
    char pa[LF_PSEUDONYM_LEN + 1], pb[LF_PSEUDONYM_LEN + 1], w[256];

    add_ann();
    add("a2", "A", LF_EV_HANDED_OFF, 1800, 1);
    add("a3", "A", LF_EV_ACCEPTED, 1900, 6);
    add("a4", "A", LF_EV_LOST, 2000, 7);
    add("b1", "B", LF_EV_CAPTURED, 1500, 2);
    add_identity("m1", "B", LF_EV_MERGED, 2500, "A", 3);
    flush_ok();
    add_identity("x1", "A", LF_EV_ERASED, 3000, "REQ-9 for A", 4);
    flush_ok();
    lf_pseudonym_of(pseudonyms, 0, "A", 1, pa);
    lf_pseudonym_of(pseudonyms, 0, "B", 1, pb);
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM funnel.events "
                                     "WHERE lead_id IN ('A', 'B') OR "
                                     "payload::text LIKE '%ann@%' OR "
                                     "payload::text LIKE '%price%' OR "
                                     "payload ->> 'into_lead_id' = 'A'"),
                     "0");
    cr_expect_str_eq(sql_value(conn, "SELECT lead_id || '|' || stage FROM "
                                     "funnel.leads"),
                     want(w, "%s|lost", pa, ""));
    cr_expect_str_eq(sql_value(conn, "SELECT concat_ws('|', pseudonym, "
                                     "request_id) FROM funnel.erasures"),
                     want(w, "%s|REQ-9 for %s", pa, pa));
    cr_expect_str_eq(sql_value(conn, "SELECT concat_ws('|', lead_id, "
                                     "into_lead_id) FROM funnel.merges"),
                     want(w, "%s|%s", pb, pa));
    /* A later event of B (original id) lands on the pseudonyms. */
    add("b2", "B", LF_EV_RECYCLED, 4000, 5);
    flush_ok();
    cr_expect_str_eq(sql_value(conn, "SELECT lead_id FROM funnel.events "
                                     "WHERE event_id = 'b2'"),
                     pb);
    cr_expect_str_eq(sql_value(conn, "SELECT lead_id || '|' || stage FROM "
                                     "funnel.leads"),
                     want(w, "%s|nurture", pa, ""));
    cr_expect_eq(lf_projector_stats(proj)->erasures, 1);
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM "
                                     "funnel.stage_history WHERE exit_reason "
                                     "= 'price'"),
                     "0");
}

/* A letter a retry applied under a Kafka key that is none of the person's
 * lead ids (an adapter's own key) holds their data as much as one keyed by
 * their id: the person's erasure removes its key and value, found by the
 * lead_id in its value. Another person's letter keeps them, even when its
 * event id begins with the erased event's, or is an erased event's id
 * (a conflict: the copy is the other person's). */
Test(projector, letter_applied_under_another_key_is_erased_with_its_person)
{
    char pa[LF_PSEUDONYM_LEN + 1], w[600];

    add("c1", "L-into", LF_EV_CAPTURED, 1000, 0);
    flush_ok();
    send_v2_merge("m1", "L5", "L-into", "crm-7 L5", 1);
    send_v2_merge("m1 by z", "L6", "L7", "crm-8", 2);
    send_v2_merge("c1", "L9", "L10", "crm-9", 3);
    /* Ids of 64 bytes and more: their lengths take two bytes. */
    char long_event[101], long_lead[71];
    memset(long_event, 'e', 100);
    long_event[100] = '\0';
    memset(long_lead, 'L', 70);
    long_lead[70] = '\0';
    send_v2_merge(long_event, long_lead, "L-into", "crm-10", 4);
    lf_retry_counts_t st = retry_all("ticket for L5");
    cr_assert_eq(st.applied, 3);
    cr_expect_eq(st.conflicts, 1);
    cr_expect_eq(st.duplicates, 0);
    /* ... and said so, not "applied" */
    cr_expect(strstr(retry_out, "offset 3: not applied, a conflict with the "
                                "stored event c1 by leadflow-replay"),
              "%s", retry_out);
    cr_expect(!strstr(retry_out, "offset 3: applied"), "%s", retry_out);
    /* L9's c1 was not applied: it conflicts with L-into's capture. */
    cr_expect_str_eq(
        sql_value(conn, "SELECT string_agg(\"offset\" || ' ' || left("
                        "resolution, strpos(resolution, ' by leadflow-replay')"
                        " - 1), ',' ORDER BY \"offset\") FROM "
                        "funnel.dead_letters WHERE \"offset\" < 4"),
        "1 applied as event m1,2 applied as event m1 by z,"
        "3 not applied, a conflict with the stored event c1");
    cr_assert_str_eq(sql_value(conn, "SELECT count(*) FROM funnel.dead_letters"
                                     " WHERE key IS NOT NULL AND value IS NOT"
                                     " NULL AND resolved_at IS NOT NULL"),
                     "4");
    add_identity("x1", "L5", LF_EV_ERASED, 3000, "req-5", 5);
    flush_ok();

    const char *letters =
        "SELECT string_agg(concat_ws('|', \"offset\", "
        "coalesce(convert_from(key, 'UTF8'), '-'), value IS NULL, error LIKE "
        "'%" LF_ERASED_NOTE "'), ',' ORDER BY \"offset\") FROM "
        "funnel.dead_letters";
    cr_expect_str_eq(sql_value(conn, letters),
                     "1|-|t|t,2|crm-8|f|f,3|crm-9|f|f,4|-|t|t");
    /* Its resolution names the event, never the lead; the operator's note
     * that quoted the id quotes the pseudonym. */
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM funnel.dead_letters"
                                     " WHERE \"offset\" = 1 AND "
                                     "(strpos(error || resolution, 'L5') > 0 "
                                     "OR resolution NOT LIKE '%ticket for "
                                     "erased:%')"),
                     "0");
    lf_pseudonym_of(pseudonyms, 0, "L5", 2, pa);
    cr_expect_str_eq(sql_value(conn, "SELECT lead_id FROM funnel.events "
                                     "WHERE event_id = 'm1'"),
                     want(w, "%s%s", pa, ""));
    /* L9's copy of c1 was a conflict, never stored: found all the same. */
    add_identity("x2", "L9", LF_EV_ERASED, 3000, "req-9", 6);
    flush_ok();
    cr_expect_str_eq(sql_value(conn, letters),
                     "1|-|t|t,2|crm-8|f|f,3|-|t|t,4|-|t|t");
    /* After the erasure, another copy of L5's m1 under an adapter's key:
     * a conflict with the stored (erased) m1, and still L5's data. */
    send_v2_merge("m1", "L5", "L-other", "crm-11", 7);
    /* (its reason and the retry's note quoting the lead: the pseudonym
     * stands there after, as for a letter erased on the way in) */
    sql_ok(conn, "UPDATE funnel.dead_letters SET error = 'old: L5 broke' "
                 "WHERE \"offset\" = 7");
    st = retry_all("ticket for L5");
    cr_expect_eq(st.conflicts, 1);
    cr_expect_str_eq(sql_value(conn, "SELECT concat_ws('|', key IS NULL, value"
                                     " IS NULL, error LIKE '%" LF_ERASED_NOTE
                                     "') FROM funnel.dead_letters WHERE "
                                     "\"offset\" = 7"),
                     "t|t|t");
    cr_expect_str_eq(sql_value(conn, "SELECT error FROM funnel.dead_letters "
                                     "WHERE \"offset\" = 7"),
                     want(w, "old: %s broke%s", pa, LF_ERASED_NOTE));
    const char *res7 =
        sql_value(conn, "SELECT resolution FROM "
                        "funnel.dead_letters WHERE \"offset\" = 7");
    cr_expect(strstr(res7, want(w, "ticket for %s%s", pa, "")) &&
                  !strstr(res7, "L5"),
              "%s", res7);
    /* A writer schema (from a registry) with lead_id before event_id: the
     * value's first id is not the event the resolution names, so the
     * erasure of a lead named as its event_id leaves it alone. */
    sql_ok(conn, "INSERT INTO funnel.dead_letters (topic, partition, "
                 "\"offset\", key, value, error, resolved_at, resolution) "
                 "VALUES ('t', 0, 100, 'k9', '\\x0000000078044c35046539'::"
                 "bytea, 'x', now(), 'applied as event e9 by leadflow-replay "
                 "0 dead-letters retry')");
    add_identity("x3", "e9", LF_EV_ERASED, 3000, "req-e9", 8);
    flush_ok();
    cr_expect_str_eq(sql_value(conn, "SELECT convert_from(key, 'UTF8') FROM "
                                     "funnel.dead_letters WHERE \"offset\" = "
                                     "100"),
                     "k9");
}

/* A's capture again: with another email (@p other_email) or another
 * campaign, at @p offset. */
static void add_ann_copy(bool other_email, int64_t offset)
{
    lf_event_t ev = event("a1", "A", LF_EV_CAPTURED, 1000);
    lf_attr_t *attr = calloc(1, sizeof(*attr));

    attr->key = strdup("email");
    attr->value = strdup(other_email ? "bob@example.com" : "ann@example.com");
    ev.u.captured.attrs = attr;
    ev.u.captured.attr_count = 1;
    if (!other_email) {
        free(ev.u.captured.campaign);
        ev.u.captured.campaign = strdup("autumn");
    }
    cr_assert_eq(lf_projector_add_event(proj, &ev, TOPIC, 0, offset), LF_OK);
}

/* A's capture, a copy differing only in the email, one differing in the
 * campaign, and A's erasure, flushed as @p cuts says (a flush after the
 * message at each index it lists, and after the last): the conflicts
 * left, with their reasons. */
static char *erased_conflicts(const char *order, const char *cuts)
{
    sql_ok(conn, "TRUNCATE funnel.events, funnel.leads, funnel.stage_history, "
                 "funnel.anomalies, funnel.offsets, funnel.erasures, "
                 "funnel.erased_leads");
    for (const char *c = order; *c; c++) {
        if (*c == 'a')
            add_ann();
        else if (*c == 'p') /* the email differs: an erasure removes it */
            add_ann_copy(true, 1);
        else if (*c == 'c') /* the campaign differs: it stays */
            add_ann_copy(false, 2);
        else
            add_identity("x1", "A", LF_EV_ERASED, 3000, "REQ-1", 3);
        if (strchr(cuts, '0' + (int)(c - order)) || !c[1])
            flush_ok();
    }
    return strdup(sql_value(
        conn, "SELECT concat_ws(' / ', string_agg(reason, ',' ORDER BY "
              "reason), (SELECT count(*) FROM funnel.erasures)) FROM "
              "funnel.anomalies WHERE kind = 'conflict'"));
}

/* Whether a copy of an erased person's event is a conflict does not
 * depend on when the erasure arrives: one that differs only in what the
 * erasure removes is listed until the erasure, never after; one that
 * differs in anything else stays listed. */
Test(projector, erased_persons_conflicts_do_not_depend_on_order)
{
    static const char *const runs[][2] = {
        {"apcx", "012"}, {"apcx", ""},  {"apcx", "2"},  {"axpc", "1"},
        {"axpc", "0"},   {"pacx", "0"}, {"xpac", "02"}, {"apxc", "1"},
    };
    char *before = erased_conflicts("apc", "");
    char *want;

    cr_expect_str_eq(before,
                     "event_id reused with different content at leads "
                     "partition 0 offset 2,event_id reused with different "
                     "content, only in fields an erasure removes, at leads "
                     "partition 0 offset 1 / 0");
    want = erased_conflicts(runs[0][0], runs[0][1]);
    cr_expect_str_eq(want, "event_id reused with different content at leads "
                           "partition 0 offset 2 / 1");
    for (size_t i = 1; i < sizeof(runs) / sizeof(*runs); i++) {
        char *got = erased_conflicts(runs[i][0], runs[i][1]);
        cr_expect_str_eq(got, want, "order %s, flushed after %s", runs[i][0],
                         runs[i][1]);
        free(got);
    }
    free(before);
    free(want);
}

/* What identity leaves in the tables: the funnel's digest, then the
 * events' leads, merges, erasures and what waits (no wall-clock column,
 * no offset). */
static char *identity_digest(void)
{
    char *funnel = funnel_digest(), *d;
    const char *rest = sql_value(
        conn, "SELECT concat_ws(' / ',"
              " (SELECT string_agg(concat_ws(':', event_id, lead_id, payload"
              "  ->> 'into_lead_id'), ',' ORDER BY event_id) FROM "
              "  funnel.events),"
              " (SELECT string_agg(m::text, ',' ORDER BY event_id)"
              "  FROM funnel.merges m),"
              " (SELECT string_agg(pseudonym, ',' ORDER BY pseudonym)"
              "  FROM funnel.erased_leads),"
              " (SELECT string_agg(concat_ws(':', event_id, pseudonym), ',')"
              "  FROM funnel.erasures),"
              " (SELECT count(*) FROM funnel.identity_pending))");

    cr_assert_not_null(d = malloc(strlen(funnel) + strlen(rest) + 4));
    sprintf(d, "%s / %s", funnel, rest);
    free(funnel);
    return d;
}

/* Two writers at once, the interleaving made certain: the first (proj on
 * conn, in a thread) is held at one of its statements by a row lock that
 * a third connection takes, while the second (proj2 on conn2) flushes a
 * whole batch; then the first commits and the projector settles. */
typedef struct race_s {
    PGconn *side, *conn2, *watch; /* watch: asks pg_stat_activity */
    lf_projector_t *proj2;
    pthread_t t, t2;
    bool second_in_thread;
} race_t;

static char errstr2[512];

static void *flush_in_thread(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)lf_projector_flush(proj, conn, NULL, errstr,
                                                sizeof(errstr));
}

/* Lock a row with @p row_lock, then flush proj's batch until it waits on
 * a lock at a statement LIKE @p waits_at. */
/* Wait (up to 30 s) until @p who's backend waits for a lock of
 * @p wait_event (pg_stat_activity's) at a statement LIKE @p like;
 * @returns whether it does. Asked on @p on. */
static bool waiting(PGconn *on, PGconn *who, const char *wait_event,
                    const char *like)
{
    char pid[16];
    const char *params[3] = {pid, wait_event, like};
    bool yes = false;

    snprintf(pid, sizeof(pid), "%d", PQbackendPID(who));
    for (int i = 0; i < 600 && !yes; i++) {
        PGresult *res = PQexecParams(
            on,
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int AND "
            "wait_event_type = 'Lock' AND wait_event = $2 AND query LIKE $3",
            3, NULL, params, NULL, NULL, 0);
        cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s",
                     PQresultErrorMessage(res));
        yes = !strcmp(PQgetvalue(res, 0, 0), "1");
        PQclear(res);
        if (!yes)
            usleep(50 * 1000);
    }
    return yes;
}

/* Two instances that both found no stored offset for a partition (one
 * kept it past a rebalance): the second to reach the fence waits for the
 * first's commit, then reads its row and is refused, instead of writing
 * the partition's first batch again. The side connection is the other
 * instance, in its batch's transaction past the fence. */
Test(projector, first_batch_of_a_partition_is_written_once)
{
    const char *params[2] = {GROUP, "{0/" TOPIC "}"};
    PGconn *side = PQconnectdb(""), *watch = PQconnectdb("");
    PGresult *res;
    pthread_t t;
    void *rc;

    cr_assert_eq(PQstatus(side), CONNECTION_OK);
    cr_assert_eq(PQstatus(watch), CONNECTION_OK);
    sql_ok(side, "BEGIN");
    res = PQexecParams(side, LF_PROJECTOR_PARTITION_LOCK_SQL, 2, NULL, params,
                       NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s",
                 PQresultErrorMessage(res));
    PQclear(res);
    sql_ok(side, "INSERT INTO funnel.offsets (group_id, topic, partition, "
                 "next_offset) VALUES ('" GROUP "', '" TOPIC "', 0, 7)");
    add("e1", "L1", LF_EV_CAPTURED, 1000, 0);
    cr_assert_eq(
        lf_projector_continue_from(proj, TOPIC, 0, LF_PROJECTOR_NO_ROW), LF_OK);
    cr_assert_eq(pthread_create(&t, NULL, flush_in_thread, NULL), 0);
    cr_expect(waiting(watch, conn, "advisory", "%pg_advisory_xact_lock%"),
              "the batch did not wait for the other instance's");
    sql_ok(side, "COMMIT");
    cr_assert_eq(pthread_join(t, &rc), 0);
    cr_expect_eq((lf_err_t)(intptr_t)rc, LF_ERR_STALE, "flush: %s", errstr);
    cr_expect(strstr(errstr, "stored next offset is 7"), "%s", errstr);
    cr_expect_str_eq(sql_value(conn, "SELECT next_offset FROM funnel.offsets"),
                     "7");
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM funnel.events"),
                     "0");
    PQfinish(side);
    PQfinish(watch);
}

static void race_first(race_t *r, const char *row_lock, const char *waits_at)
{
    r->conn2 = PQconnectdb("");
    r->side = PQconnectdb("");
    r->watch = PQconnectdb("");
    cr_assert_eq(PQstatus(r->watch), CONNECTION_OK);
    cr_assert_eq(PQstatus(r->conn2), CONNECTION_OK);
    cr_assert_eq(PQstatus(r->side), CONNECTION_OK);
    cr_assert_not_null(
        r->proj2 = lf_projector_new("funnel", GROUP, errstr, sizeof(errstr)));
    lf_projector_use_pseudonyms(r->proj2, pseudonyms);
    sql_ok(r->side, "BEGIN");
    sql_ok(r->side, row_lock);
    cr_assert_eq(pthread_create(&r->t, NULL, flush_in_thread, NULL), 0);
    cr_assert(waiting(r->watch, conn, "transactionid", waits_at),
              "the first batch never waited at %s", waits_at);
}

static void *flush2_in_thread(void *arg)
{
    race_t *r = arg;
    return (void *)(intptr_t)lf_projector_flush(r->proj2, r->conn2, NULL,
                                                errstr2, sizeof(errstr2));
}

/* Flush the second writer's batch in a thread of its own (it may wait for
 * the first): race_end() joins it. */
static void race_second_in_thread(race_t *r)
{
    cr_assert_eq(pthread_create(&r->t2, NULL, flush2_in_thread, r), 0);
    r->second_in_thread = true;
}

/* Flush @p ev alone through the second writer (partition 1). */
static void race_second(race_t *r, lf_event_t *ev)
{
    cr_assert_eq(lf_projector_add_event(r->proj2, ev, TOPIC, 1, 0), LF_OK);
    cr_assert_eq(
        lf_projector_flush(r->proj2, r->conn2, NULL, errstr2, sizeof(errstr2)),
        LF_OK, "%s", errstr2);
}

/* Let the first writer commit, then settle. */
static void race_end(race_t *r)
{
    void *rc;

    sql_ok(r->side, "COMMIT");
    cr_assert_eq(pthread_join(r->t, &rc), 0);
    cr_assert_eq((lf_err_t)(intptr_t)rc, LF_OK, "first writer: %s", errstr);
    if (r->second_in_thread) {
        cr_assert_eq(pthread_join(r->t2, &rc), 0);
        cr_assert_eq((lf_err_t)(intptr_t)rc, LF_OK, "second: %s", errstr2);
    }
    cr_assert_eq(lf_projector_settle_all(proj, conn, errstr, sizeof(errstr)),
                 LF_OK, "%s", errstr);
    lf_projector_destroy(r->proj2);
    PQfinish(r->conn2);
    PQfinish(r->side);
    PQfinish(r->watch);
}

static void truncate_identity(void)
{
    sql_ok(conn, "TRUNCATE funnel.events, funnel.leads, funnel.stage_history, "
                 "funnel.anomalies, funnel.offsets, funnel.merges, "
                 "funnel.erasures, funnel.erased_leads");
}

/* A's and C's events; C's erasure, held after it read C's merges, while
 * the second writer stores a merge of A into C, finds C locked and leaves
 * the merge waiting. */
static void merge_meets_erasure(race_t *r)
{
    lf_event_t ev;

    add("a1", "A", LF_EV_CAPTURED, 1000, 0);
    add("c1", "C", LF_EV_CAPTURED, 1500, 1);
    add("c2", "C", LF_EV_SCORED, 1600, 2);
    flush_ok();
    add_identity("x1", "C", LF_EV_ERASED, 3000, "REQ-1", 3);
    race_first(r, "SELECT 1 FROM funnel.leads WHERE lead_id = 'C' FOR UPDATE",
               "DELETE FROM funnel.leads%");
    ev = event("m1", "A", LF_EV_MERGED, 2500);
    free(ev.u.merged.into_lead_id);
    ev.u.merged.into_lead_id = strdup("C");
    race_second(r, &ev);
    cr_expect_str_eq(sql_value(r->conn2, "SELECT string_agg(lead_id, ',' "
                                         "ORDER BY lead_id) FROM "
                                         "funnel.identity_pending"),
                     "A,C", "the merge did not wait for C");
}

/* The advisory lock key the projector takes for lead @p id. */
static long long lock_key(const char *id)
{
    char ps[LF_PSEUDONYM_LEN + 1];
    const char *params[1] = {ps};

    lf_pseudonym_of(pseudonyms, 0, id, strlen(id), ps);
    PGresult *res = PQexecParams(conn, "SELECT hashtextextended($1, 0)", 1,
                                 NULL, params, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    long long k = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return k;
}

static void *settle2_in_thread(void *arg)
{
    race_t *r = arg;
    return (void *)(intptr_t)lf_projector_settle_all(r->proj2, r->conn2,
                                                     errstr2, sizeof(errstr2));
}

/* A into B waits (B is another writer's); its settle reads {A, B} and
 * waits for B, whose writer stores B into C and works out {A, B, C}. The
 * settle must read the component again under its locks: writing {A, B}
 * as read deleted the merge of B into C for good (a rolling-restart
 * black-box test; the ids are picked so that B's lock comes first). */
Test(projector, a_settle_reads_again_the_component_it_waited_for)
{
    race_t r = {0};
    char a[8];
    lf_event_t ev;
    void *rc;
    pthread_t settler;

    for (int i = 0;
         snprintf(a, sizeof(a), "A%d", i), lock_key("B") > lock_key(a); i++)
        cr_assert(i < 100);
    /* B into C, held in storing its event by an uncommitted copy */
    add_identity("bc", "B", LF_EV_MERGED, 2000, "C", 0);
    race_first(&r,
               "INSERT INTO funnel.events (event_id, lead_id, type, "
               "occurred_at, source, payload, topic, partition, \"offset\") "
               "VALUES ('bc', 'B', 'merged', now(), 's', '{}', 'x', 9, 0)",
               "%");
    ev = event("ab", a, LF_EV_MERGED, 1000);
    free(ev.u.merged.into_lead_id);
    ev.u.merged.into_lead_id = strdup("B");
    race_second(&r, &ev);
    cr_expect_str_eq(sql_value(r.conn2, "SELECT count(*) FROM "
                                        "funnel.identity_pending"),
                     "2", "A into B did not wait");
    cr_assert_eq(pthread_create(&settler, NULL, settle2_in_thread, &r), 0);
    cr_assert(waiting(r.watch, r.conn2, "advisory", "%"),
              "the settle did not wait for B");
    sql_ok(r.side, "ROLLBACK"); /* B into C goes on, and commits */
    cr_assert_eq(pthread_join(r.t, &rc), 0);
    cr_assert_eq((lf_err_t)(intptr_t)rc, LF_OK, "B into C: %s", errstr);
    cr_assert_eq(pthread_join(settler, &rc), 0);
    cr_assert_eq((lf_err_t)(intptr_t)rc, LF_OK, "settle: %s", errstr2);
    cr_expect_str_eq(sql_value(conn,
                               "SELECT string_agg(concat_ws('|', event_id, "
                               "into_lead_id, surviving_lead_id), ',' ORDER BY "
                               "event_id) FROM funnel.merges"),
                     "ab|B|C,bc|C|C");
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM "
                                     "funnel.identity_pending"),
                     "0");
    lf_projector_destroy(r.proj2);
    PQfinish(r.conn2);
    PQfinish(r.side);
    PQfinish(r.watch);
}

/* One erases C while the other stores a merge of A into C, neither
 * seeing the other's rows. Working the merge out afterwards must erase
 * A, which the merge makes C's person, exactly as if the merge had come
 * after the erasure. */
Test(projector, merge_and_erasure_in_flight_at_once_reach_the_person)
{
    char *serial, *raced;
    race_t r = {0};

    add("a1", "A", LF_EV_CAPTURED, 1000, 0);
    add("c1", "C", LF_EV_CAPTURED, 1500, 1);
    add("c2", "C", LF_EV_SCORED, 1600, 2);
    flush_ok();
    add_identity("x1", "C", LF_EV_ERASED, 3000, "REQ-1", 3);
    flush_ok();
    add_identity("m1", "A", LF_EV_MERGED, 2500, "C", 4);
    flush_ok();
    serial = identity_digest();
    cr_assert(strstr(serial, "m1:erased:"), "serial: %s", serial);
    truncate_identity();

    merge_meets_erasure(&r);
    race_end(&r);
    raced = identity_digest();
    cr_expect_str_eq(raced, serial);
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM funnel.events "
                                     "WHERE lead_id IN ('A', 'C') OR "
                                     "payload ->> 'into_lead_id' IN "
                                     "('A', 'C')"),
                     "0");
    free(serial);
    free(raced);
}

/* The same, worked out after the key changed: C keeps the pseudonym it
 * was erased under (the older key's), A gets the new key's. */
Test(projector, merge_and_erasure_in_flight_settled_under_a_new_key)
{
    static const char new_key[32] = "leadflow-test-pseudonym-key-new";
    lf_pseudonym_t *ring = lf_pseudonym_new(new_key, sizeof(new_key));
    char pa[LF_PSEUDONYM_LEN + 1], pc[LF_PSEUDONYM_LEN + 1], w[256];
    race_t r = {0};

    cr_assert(ring && lf_pseudonym_add_old(ring, test_key, sizeof(test_key)));
    merge_meets_erasure(&r);
    lf_projector_use_pseudonyms(proj, ring); /* before race_end() settles */
    race_end(&r);
    lf_pseudonym_of(ring, 0, "A", 1, pa);
    lf_pseudonym_of(ring, 1, "C", 1, pc);
    cr_expect_str_eq(sql_value(conn, "SELECT concat_ws('|', lead_id, payload "
                                     "->> 'into_lead_id') FROM funnel.events "
                                     "WHERE event_id = 'm1'"),
                     want(w, "%s|%s", pa, pc));
    cr_expect_str_eq(sql_value(conn, "SELECT string_agg(pseudonym, ',' ORDER "
                                     "BY pseudonym) FROM funnel.erased_leads"),
                     strcmp(pa, pc) < 0 ? want(w, "%s,%s", pa, pc)
                                        : want(w, "%s,%s", pc, pa));
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM "
                                     "funnel.identity_pending"),
                     "0");
    lf_projector_use_pseudonyms(proj, pseudonyms);
    lf_pseudonym_destroy(ring);
}

/* The second writer's flush, noting when it returned. */
typedef struct timed_flush_s {
    race_t *r;
    atomic_bool done;
    lf_err_t rc;
} timed_flush_t;

static void *timed_flush(void *arg)
{
    timed_flush_t *t = arg;

    t->rc = lf_projector_flush(t->r->proj2, t->r->conn2, NULL, errstr2,
                               sizeof(errstr2));
    atomic_store(&t->done, true);
    return NULL;
}

/* Open the second writer (r->conn2, r->proj2) and a side connection in a
 * transaction (r->side); A and C captured, their merge's serial digest
 * into *@p serial, and the second writer given "A merged into C". */
static void two_writers(race_t *r, char **serial)
{
    lf_event_t ev;

    add("a1", "A", LF_EV_CAPTURED, 1000, 0);
    add("c1", "C", LF_EV_CAPTURED, 1500, 1);
    flush_ok();
    add_identity("m1", "A", LF_EV_MERGED, 2500, "C", 2);
    flush_ok();
    *serial = identity_digest();
    truncate_identity();
    add("a1", "A", LF_EV_CAPTURED, 1000, 0);
    add("c1", "C", LF_EV_CAPTURED, 1500, 1);
    flush_ok();
    r->conn2 = PQconnectdb("");
    r->side = PQconnectdb("");
    cr_assert_eq(PQstatus(r->conn2), CONNECTION_OK);
    cr_assert_eq(PQstatus(r->side), CONNECTION_OK);
    cr_assert_not_null(
        r->proj2 = lf_projector_new("funnel", GROUP, errstr, sizeof(errstr)));
    lf_projector_use_pseudonyms(r->proj2, pseudonyms);
    ev = event("m1", "A", LF_EV_MERGED, 2500);
    free(ev.u.merged.into_lead_id);
    ev.u.merged.into_lead_id = strdup("C");
    cr_assert_eq(lf_projector_add_event(r->proj2, &ev, TOPIC, 1, 0), LF_OK);
    sql_ok(r->side, "BEGIN");
}

/* Flush the second writer's batch while the side transaction stays open:
 * it must return (within 20 s) without waiting for it. Then commit the
 * side, settle, and compare with @p serial. */
static void second_returns_then_settle(race_t *r, const char *serial,
                                       const char *pending_then)
{
    timed_flush_t t = {.r = r};
    pthread_t th;
    char *raced;

    cr_assert_eq(pthread_create(&th, NULL, timed_flush, &t), 0);
    for (int i = 0; i < 400 && !atomic_load(&t.done); i++)
        usleep(50 * 1000);
    cr_expect(atomic_load(&t.done),
              "the merge waited for the other writer's transaction");
    cr_expect_str_eq(sql_value(r->conn2, "SELECT string_agg(lead_id, ',' "
                                         "ORDER BY lead_id) FROM "
                                         "funnel.identity_pending"),
                     pending_then, "leads left waiting");
    sql_ok(r->side, "COMMIT");
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(t.rc, LF_OK, "second writer: %s", errstr2);
    cr_assert_eq(lf_projector_settle_all(proj, conn, errstr, sizeof(errstr)),
                 LF_OK, "%s", errstr);
    raced = identity_digest();
    cr_expect_str_eq(raced, serial);
    free(raced);
    lf_projector_destroy(r->proj2);
    PQfinish(r->conn2);
    PQfinish(r->side);
}

/* While another writer is leaving A to wait (its row in identity_pending
 * not committed yet) and holds C, the second writer stores "A merged into
 * C", finds C held and leaves A and C to wait too: it must not wait for
 * the other writer's transaction to do so (with lead_id unique it did,
 * and the two writers took turns). Settled, the tables are those of the
 * merge applied in turn, and no lead is left waiting. */
Test(projector, two_writers_leave_one_lead_waiting_without_waiting)
{
    char ps[LF_PSEUDONYM_LEN + 1], sql[256], *serial;
    race_t r = {0};

    two_writers(&r, &serial);
    lf_pseudonym_of(pseudonyms, 0, "C", 1, ps);
    snprintf(sql, sizeof(sql),
             "SELECT pg_advisory_xact_lock(hashtextextended('%s', 0))", ps);
    sql_ok(r.side, sql);
    sql_ok(r.side, "INSERT INTO funnel.identity_pending (lead_id) "
                   "VALUES ('A')");
    second_returns_then_settle(&r, serial, "A,C");
    free(serial);
}

/* Another writer is working out A and C (its transaction deletes their
 * waiting rows) and holds C while the second writer stores "A merged into
 * C": the second must leave A and C waiting anew, without waiting, and
 * not count on the rows being deleted, or the merge it stored would never
 * be worked out. */
Test(projector, a_merge_left_waiting_while_its_leads_are_cleared_is_kept)
{
    char ps[LF_PSEUDONYM_LEN + 1], sql[256], *serial;
    race_t r = {0};

    two_writers(&r, &serial);
    sql_ok(conn, "INSERT INTO funnel.identity_pending (lead_id) "
                 "VALUES ('A'), ('C')");
    lf_pseudonym_of(pseudonyms, 0, "C", 1, ps);
    snprintf(sql, sizeof(sql),
             "SELECT pg_advisory_xact_lock(hashtextextended('%s', 0))", ps);
    sql_ok(r.side, sql);
    sql_ok(r.side, "DELETE FROM funnel.identity_pending");
    second_returns_then_settle(&r, serial, "A,A,C,C");
    free(serial);
}

/* Another writer has taken A's waiting row to work it out (pending_seeds'
 * FOR UPDATE) while the second writer works out A's merge itself: the
 * second must not wait for it to clear A's row; the row is left, and the
 * settle that follows works A out again to the same tables. */
Test(projector, a_worked_out_merge_leaves_rows_another_writer_took)
{
    char *serial;
    race_t r = {0};

    two_writers(&r, &serial);
    sql_ok(conn, "INSERT INTO funnel.identity_pending (lead_id) "
                 "VALUES ('A')");
    sql_ok(r.side, "SELECT 1 FROM funnel.identity_pending "
                   "WHERE lead_id = 'A' FOR UPDATE");
    second_returns_then_settle(&r, serial, "A");
    free(serial);
}

/* One stores a void of Y's event y2 on lead V while the other stores y2,
 * neither seeing the other's row (the void's batch is held after it found
 * y2 missing). Once settled, the void's anomaly says what it says when y2
 * came first: another lead's event. */
Test(projector, void_and_its_target_in_flight_at_once_settle_as_in_order)
{
    char *serial, *raced;
    race_t r = {0};
    lf_event_t ev;

    add("v1", "V", LF_EV_CAPTURED, 1000, 0);
    add("y1", "Y", LF_EV_CAPTURED, 1100, 1);
    flush_ok();
    add("y2", "Y", LF_EV_SCORED, 1200, 2);
    flush_ok();
    add_identity("w1", "V", LF_EV_VOIDED, 2000, "y2", 3);
    add("v2", "V", LF_EV_SCORED, 1500, 4);
    flush_ok();
    serial = identity_digest();
    cr_assert_str_eq(sql_value(conn, "SELECT reason FROM funnel.anomalies "
                                     "WHERE kind = 'void'"),
                     "voided event y2 belongs to another lead");
    truncate_identity();

    add("v1", "V", LF_EV_CAPTURED, 1000, 0);
    add("y1", "Y", LF_EV_CAPTURED, 1100, 1);
    flush_ok();
    add_identity("w1", "V", LF_EV_VOIDED, 2000, "y2", 3);
    add("v2", "V", LF_EV_SCORED, 1500, 4);
    race_first(&r, "SELECT 1 FROM funnel.leads WHERE lead_id = 'V' FOR UPDATE",
               "%funnel.leads%");
    ev = event("y2", "Y", LF_EV_SCORED, 1200);
    race_second(&r, &ev);
    race_end(&r);
    raced = identity_digest();
    cr_expect_str_eq(raced, serial);
    free(serial);
    free(raced);
}

/* The topic handle of built messages (TOPIC). */
static rd_kafka_topic_t *msg_topic(void)
{
    if (!msg_rk) {
        msg_rk = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), NULL, 0);
        cr_assert_not_null(msg_rkt = rd_kafka_topic_new(msg_rk, TOPIC, NULL));
    }
    return msg_rkt;
}

/* Add to @p p an undecodable message keyed @p key, as consumed from TOPIC
 * @p partition at @p offset: a dead letter. */
static void add_dead(lf_projector_t *p, int32_t partition, int64_t offset,
                     const char *key)
{
    rd_kafka_message_t rkm = {.partition = partition,
                              .offset = offset,
                              .payload = (void *)"not avro",
                              .len = 8,
                              .key = (void *)key,
                              .key_len = strlen(key)};

    rkm.rkt = msg_topic();
    cr_assert_eq(lf_projector_add_message(p, &rkm), LF_OK);
}

/* One erases C while the other stores a dead letter keyed C: the dead
 * letter's batch waits for the erasure (it locks its key as C's), then
 * finds C erased and keeps no key or value. Without that wait, each
 * would miss the other's rows. */
Test(projector, dead_letter_of_a_lead_erased_in_flight_keeps_no_key)
{
    race_t r = {0};

    add("c1", "C", LF_EV_CAPTURED, 1500, 0);
    flush_ok();
    add_identity("x1", "C", LF_EV_ERASED, 3000, "REQ-1", 1);
    /* held at its last statement, after it erased the dead letters */
    race_first(&r, "SELECT 1 FROM funnel.offsets FOR UPDATE",
               "INSERT INTO funnel.offsets%");
    add_dead(r.proj2, 1, 0, "C");
    race_second_in_thread(&r);
    cr_expect(waiting(r.watch, r.conn2, "advisory", "%"),
              "the dead letter's batch did not wait for the erasure");
    race_end(&r);
    cr_expect_str_eq(sql_value(conn, "SELECT concat_ws('|', key IS NULL, "
                                     "value IS NULL, error LIKE "
                                     "'%[erased: key and value removed]') "
                                     "FROM funnel.dead_letters"),
                     "t|t|t");
}

/* Messages dead-lettered, then read again and decoded (a rewind after the
 * cause was fixed): their letters are resolved as a retry would resolve
 * them, not left open for on-call (a black-box replay test); a conflict
 * is not applied and says so; one that still fails stays open. */
Test(projector, dead_letters_read_again_and_decoded_are_resolved)
{
    add("c1", "A", LF_EV_CAPTURED, 1000, 0);
    add_dead(proj, 0, 1, "A");
    add_dead(proj, 0, 2, "A");
    add_dead(proj, 0, 3, "C");
    add_dead(proj, 0, 4, "K");
    flush_ok();
    add("s1", "A", LF_EV_SCORED, 2000, 1);
    add("c1", "A", LF_EV_CAPTURED, 1500, 2); /* c1 with other content */
    add_dead(proj, 0, 3, "C");
    /* another message at a letter's position (a topic made again): the
     * letter's key is not its lead, so it is not that letter's message */
    add("z9", "Z", LF_EV_CAPTURED, 1000, 4);
    flush_ok();
    cr_expect_str_eq(
        sql_value(conn, "SELECT string_agg(\"offset\" || '|' || "
                        "coalesce(resolution, 'open') || '|' || (resolved_at "
                        "IS NULL), ',' ORDER BY \"offset\") FROM "
                        "funnel.dead_letters"),
        "1|applied as event s1 by leadflow-project " LF_VERSION
        " when it read the message again|false,"
        "2|not applied, a conflict with the stored event c1 by "
        "leadflow-project " LF_VERSION " when it read the message again|false,"
        "3|open|true,4|open|true");
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM funnel.anomalies "
                                     "WHERE kind = 'conflict'"),
                     "1");
}

/* A letter whose person was erased lost its key and value: a retry says
 * so, and where its message is (read again from Kafka, it is erased on the
 * way in). The letter, the erasure's record, stays as it is. */
Test(projector, an_erased_letter_says_where_its_message_is)
{
    add("c1", "C", LF_EV_CAPTURED, 1500, 0);
    add_dead(proj, 0, 1, "C");
    flush_ok();
    add_identity("x1", "C", LF_EV_ERASED, 3000, "REQ-1", 2);
    flush_ok();
    lf_retry_counts_t st = retry_all(NULL);
    cr_expect_eq(st.still_failing, 1);
    cr_expect(strstr(retry_out, "removed when its person was erased") &&
                  strstr(retry_out, "offset 1 of partition 0"),
              "%s", retry_out);
    add("s1", "C", LF_EV_SCORED, 2000, 1); /* read again, decoded */
    flush_ok();
    cr_expect_str_eq(
        sql_value(conn, "SELECT concat_ws('|', coalesce(resolution, 'open'), "
                        "key IS NULL, value IS NULL) FROM funnel.dead_letters"),
        "open|t|t");
    cr_expect_str_eq(sql_value(conn, "SELECT lead_id LIKE 'erased:%' FROM "
                                     "funnel.events WHERE event_id = 's1'"),
                     "t");
}

/* A batch of dead letters closes at the lead cap too: each locks its key. */
Test(projector, dead_letters_with_keys_count_against_the_lead_cap)
{
    for (int i = 0; i < LF_PROJECTOR_MAX_LEADS; i++) {
        cr_expect(!lf_projector_full(proj, 10000), "full after %d", i);
        add_dead(proj, 0, i, "K");
    }
    cr_expect(lf_projector_full(proj, 10000));
    flush_ok();
    cr_expect(!lf_projector_full(proj, 10000));
    cr_expect_eq(atoi(sql_value(conn, "SELECT count(*) FROM "
                                      "funnel.dead_letters")),
                 LF_PROJECTOR_MAX_LEADS);
}

static void add_keyed(lf_event_t *ev, const char *key, int64_t offset);

/* An event under a key other than its lead_id locks that key as well (with
 * pseudonyms, list_batch()): such a batch closes at the cap of locks, not
 * of leads, or PostgreSQL's shared lock table runs out ("out of shared
 * memory") for every session of the server. */
Test(projector, events_under_other_keys_count_against_the_lead_cap)
{
    const int half = LF_PROJECTOR_MAX_LEADS / 2;
    char lead[32], key[32], id[32];

    for (int i = 0; i < half; i++) {
        lf_event_t ev;
        cr_expect(!lf_projector_full(proj, 10000), "full after %d", i);
        snprintf(lead, sizeof(lead), "L%d", i);
        snprintf(key, sizeof(key), "crm-%d", i);
        snprintf(id, sizeof(id), "c%d", i);
        ev = event(id, lead, LF_EV_CAPTURED, 1000 + i);
        add_keyed(&ev, key, i);
    }
    cr_expect(lf_projector_full(proj, 10000));
    flush_ok();
    cr_expect(!lf_projector_full(proj, 10000));
    cr_expect_eq(atoi(sql_value(conn, "SELECT count(*) FROM funnel.anomalies "
                                      "WHERE kind = 'key'")),
                 half);
}

/* Add @p ev, encoded as contract v2 and keyed @p key, as consumed from
 * TOPIC partition 0 at @p offset (takes @p ev). */
static void add_keyed(lf_event_t *ev, const char *key, int64_t offset)
{
    lf_codec_t *codec = lf_codec_new(errstr, sizeof(errstr));
    lf_buf_t value = {0};
    rd_kafka_message_t rkm = {
        .partition = 0, .offset = offset, .key = (void *)key};

    cr_assert_not_null(codec, "%s", errstr);
    cr_assert_eq(lf_codec_encode(codec, ev, LF_SCHEMA_ID_V2, &value, errstr,
                                 sizeof(errstr)),
                 LF_OK, "%s", errstr);
    rkm.rkt = msg_topic();
    rkm.payload = value.data;
    rkm.len = value.len;
    rkm.key_len = strlen(key);
    cr_assert_eq(lf_projector_add_message(proj, &rkm), LF_OK);
    lf_event_clear(ev);
    lf_buf_free(&value);
    lf_codec_destroy(codec);
}

/* The workload of the test below, its two merges in the order given. */
static char *conflict_and_key_under(bool merges_in_time_order)
{
    lf_event_t ev;
    int first = merges_in_time_order ? 0 : 1;

    sql_ok(conn, "TRUNCATE funnel.events, funnel.leads, funnel.stage_history, "
                 "funnel.anomalies, funnel.offsets, funnel.merges");
    add("b1", "B", LF_EV_CAPTURED, 1000, 0);
    add("s1", "S", LF_EV_CAPTURED, 1000, 1);
    add("c1", "C", LF_EV_CAPTURED, 1000, 2);
    add("b2", "B", LF_EV_SCORED, 3000, 3);
    flush_ok();
    ev = event("b2", "B", LF_EV_SCORED, 3000); /* other content: a conflict */
    free(ev.source);
    ev.source = strdup("other");
    add_keyed(&ev, "B", 4);
    ev = event("b3", "B", LF_EV_SCORED, 4000); /* under another key */
    add_keyed(&ev, "someone-else", 5);
    /* A message reusing b2's id under another lead: listed under the
     * lead of the event that stands, B. */
    ev = event("b2", "X", LF_EV_SCORED, 3000);
    add_keyed(&ev, "X", 6);
    flush_ok();
    for (int i = 0; i < 2; i++) {
        if ((first + i) % 2 == 0) /* B into C at 10 s: counts first */
            add_identity("m0", "B", LF_EV_MERGED, 10000, "C", 7);
        else /* B into S at 20 s: counts only until m0 arrives */
            add_identity("m1", "B", LF_EV_MERGED, 20000, "S", 8);
        flush_ok();
    }
    return strdup(sql_value(
        conn, "SELECT string_agg(concat_ws('|', event_id, lead_id, kind), "
              "',' ORDER BY event_id, kind, reason) FROM funnel.anomalies"));
}

/* One event sent under two Kafka keys (each a key anomaly), then the
 * erasure of a person, flushed message by message (@p apart) or at once:
 * the key anomalies left. @p others: the event is another lead's (Z1),
 * sent under two ids of the person (X1, X2 merged into it); else X1's own
 * under two other keys. */
static char *keys_erased(bool others, bool apart)
{
    lf_event_t ev;
    int64_t off = 0;

    sql_ok(conn, "TRUNCATE funnel.events, funnel.leads, funnel.stage_history, "
                 "funnel.anomalies, funnel.offsets, funnel.merges, "
                 "funnel.erasures, funnel.erased_leads");
    for (int i = 0; i < 2; i++) {
        ev = event("k1", others ? "Z1" : "X1", LF_EV_CAPTURED, 1000);
        add_keyed(&ev, others ? (i ? "X2" : "X1") : (i ? "K-8" : "K-9"), off++);
        if (apart)
            flush_ok();
    }
    if (others) {
        add_identity("m1", "X2", LF_EV_MERGED, 2000, "X1", off++);
        if (apart)
            flush_ok();
    }
    add_identity("x1", "X1", LF_EV_ERASED, 3000, "REQ-1", off++);
    flush_ok();
    return strdup(sql_value(conn,
                            "SELECT string_agg(concat_ws('|', event_id, "
                            "reason), ',' ORDER BY event_id, reason) FROM "
                            "funnel.anomalies WHERE kind = 'key'"));
}

/* The erasure of a person whose event came under several keys, or whose
 * ids were the keys of another lead's event, collapses their key
 * anomalies to one per event, as when they arrive together: it used to
 * fail on the anomalies' primary key, retried without end. */
Test(projector, key_anomalies_under_several_keys_survive_an_erasure)
{
    for (int others = 0; others < 2; others++) {
        char *apart = keys_erased(others, true);
        char *together = keys_erased(others, false);
        cr_expect_str_eq(apart, "k1|" LF_KEY_ERASED_NOTE, "others %d", others);
        cr_expect_str_eq(apart, together, "others %d", others);
        free(apart);
        free(together);
    }
}

/* B's capture under another key (and under a second, 'K'), A's erasure,
 * then B merged into A, in the order @p order names ('k', 'e', 'm'), each
 * flushed alone (or all at
 * once when @p apart is false): the key anomalies left. */
static char *key_then_merge_into_erased(const char *order, bool apart)
{
    lf_event_t ev;

    sql_ok(conn, "TRUNCATE funnel.events, funnel.leads, funnel.stage_history, "
                 "funnel.anomalies, funnel.offsets, funnel.merges, "
                 "funnel.erasures, funnel.erased_leads");
    for (int64_t off = 0; order[off]; off++) {
        if (order[off] == 'k' || order[off] == 'K') { /* two keys */
            ev = event("kb", "LB", LF_EV_CAPTURED, 1000);
            add_keyed(&ev, order[off] == 'k' ? "crm-key-of-LB" : "crm-2", off);
        } else if (order[off] == 'e') {
            add_identity("ea", "LA", LF_EV_ERASED, 2000, "REQ-1", off);
        } else {
            add_identity("mb", "LB", LF_EV_MERGED, 3000, "LA", off);
        }
        if (apart)
            flush_ok();
    }
    if (!apart)
        flush_ok();
    return strdup(sql_value(conn,
                            "SELECT string_agg(concat_ws('|', event_id, "
                            "reason), ',' ORDER BY event_id, reason) FROM "
                            "funnel.anomalies WHERE kind = 'key'"));
}

/* A lead merged into an erased person after the erasure is erased, and
 * so is the key its event's key anomaly quoted, whatever the order: the
 * merge's recompute moved the anomaly to the person before the erasure of
 * the lead looked for it by the lead's id (a black-box exactness test). */
Test(projector, key_anomaly_of_a_lead_merged_into_an_erased_person)
{
    static const char *const orders[] = {"kem", "kme",  "mke",  "emk",
                                         "ekm", "kKem", "ekKm", "kemK"};

    for (size_t i = 0; i < sizeof(orders) / sizeof(*orders); i++)
        for (int apart = 1; apart >= 0; apart--) {
            char *got = key_then_merge_into_erased(orders[i], apart);
            cr_expect_str_eq(got, "kb|" LF_KEY_ERASED_NOTE, "%s apart %d",
                             orders[i], apart);
            free(got);
        }
}

/* A conflict or key anomaly goes with its lead's person whatever order
 * the merges arrive in: a late merge that counts before one already
 * applied moves it from the surviving lead of before. */
Test(projector, conflict_and_key_anomalies_follow_a_late_merge)
{
    char *late = conflict_and_key_under(false);
    char *in_order = conflict_and_key_under(true);

    cr_expect_str_eq(late, "b2|C|conflict,b2|C|conflict,b3|C|key,m1|C|merge");
    cr_expect_str_eq(late, in_order);
    free(late);
    free(in_order);
}

/* Shuffle @p a[0..n) with rand(). */
static void shuffle(int *a, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = rand() % (i + 1), t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* Batch 2 of erasure_survives_a_failed_flush: C merged into A, and A
 * erased, after A's and B's events (batch 1, flushed before). */
static void erasure_batches(bool fail_first)
{
    add_ann();
    add("a2", "A", LF_EV_HANDED_OFF, 1800, 1);
    add("b1", "B", LF_EV_CAPTURED, 1500, 2);
    add_identity("m1", "B", LF_EV_MERGED, 2500, "A", 3);
    flush_ok();
    add("c1", "C", LF_EV_CAPTURED, 2600, 4);
    add_identity("m2", "C", LF_EV_MERGED, 2700, "A", 5);
    add_identity("x1", "A", LF_EV_ERASED, 3000, "REQ-9 for A", 6);
    if (fail_first) {
        sabotage_offsets("RAISE 'no offsets today'");
        for (int i = 0; i < 2; i++)
            cr_assert_eq(
                lf_projector_flush(proj, conn, NULL, errstr, sizeof(errstr)),
                LF_ERR_PG, "%s", errstr);
        repair_offsets();
    }
    flush_ok();
}

/* A flush that erases a person in the batch and then fails is retried
 * with the batch as it came: the retry erases the person's stored rows
 * too (under the ids they have again after the rollback), as a flush
 * that never failed does, instead of a pseudonym of the pseudonym. */
Test(projector, erasure_survives_a_failed_flush)
{
    char pa[LF_PSEUDONYM_LEN + 1], w[256];
    char *clean, *retried;

    erasure_batches(false);
    clean = identity_digest();
    truncate_identity();
    erasure_batches(true);
    retried = identity_digest();
    cr_expect_str_eq(retried, clean);
    lf_pseudonym_of(pseudonyms, 0, "A", 1, pa);
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM funnel.events "
                                     "WHERE lead_id IN ('A', 'B', 'C') OR "
                                     "payload::text LIKE '%ann@%' OR "
                                     "payload ->> 'into_lead_id' = 'A'"),
                     "0");
    cr_expect_str_eq(sql_value(conn, "SELECT string_agg(pseudonym, ',') FROM "
                                     "funnel.erasures"),
                     pa);
    cr_expect_str_eq(sql_value(conn, want(w,
                                          "SELECT count(*) FROM "
                                          "funnel.erased_leads WHERE "
                                          "pseudonym = '%s'",
                                          pa, "")),
                     "1");
    free(clean);
    free(retried);
}

static void truncate_all(void)
{
    sql_ok(conn, "TRUNCATE funnel.events, funnel.leads, funnel.stage_history, "
                 "funnel.anomalies, funnel.offsets");
}

/* leads.account_id is that of the lead's latest event carrying one,
 * whatever order the events arrive in and however they are batched: a
 * late one recomputes the lead from its stored events. */
Test(projector, account_is_the_latest_events_whatever_the_order)
{
    static const struct {
        const char *id;
        lf_event_type_t type;
        int64_t at;
        const char *account;
    } evs[] = {
        {"e1", LF_EV_CAPTURED, 1000, "A"},   {"e2", LF_EV_SCORED, 2000, NULL},
        {"e3", LF_EV_HANDED_OFF, 3000, "B"}, {"e4", LF_EV_ACCEPTED, 3000, "C"},
        {"e5", LF_EV_QUALIFIED, 5000, NULL}, {"i1", LF_EV_MERGED, 6000, "Z"},
    };
    int n = (int)(sizeof(evs) / sizeof(*evs)), order[6];
    char *first = NULL;

    srand(17);
    for (int round = 0; round < 12; round++) {
        truncate_all();
        for (int i = 0; i < n; i++)
            order[i] = i;
        if (round)
            shuffle(order, n);
        for (int k = 0; k < n; k++) {
            int i = order[k];
            add2(evs[i].id, "L1", evs[i].type, evs[i].at, evs[i].account, k);
            if (rand() % 2)
                flush_ok();
        }
        flush_ok();
        /* e4 ties e3 on occurred_at and sorts after it by event_id. */
        cr_expect_str_eq(sql_value(conn, "SELECT concat_ws('|', account_id, "
                                         "stage) FROM funnel.leads"),
                         "C|sales_qualified", "round %d", round);
        char *d = funnel_digest();
        if (!first)
            first = d;
        else {
            cr_expect_str_eq(d, first, "round %d", round);
            free(d);
        }
    }
    free(first);
}

/* The stored rows of lead L1's history and its row, each with its row
 * version (ctid): a row written again gets a new one. */
static char *l1_versions(void)
{
    return strdup(sql_value(
        conn, "SELECT concat_ws('|', (SELECT string_agg(visit || ':' || stage "
              "|| '@' || ctid::text, ',' ORDER BY visit) FROM "
              "funnel.stage_history WHERE lead_id = 'L1'), (SELECT "
              "ctid::text FROM funnel.leads WHERE lead_id = 'L1'))"));
}

/* The ctid of L1's visit @p visit ("" if none). */
static char *l1_visit_ctid(int visit)
{
    char sql[160];
    snprintf(sql, sizeof(sql),
             "SELECT coalesce((SELECT ctid::text FROM funnel.stage_history "
             "WHERE lead_id = 'L1' AND visit = %d), '')",
             visit);
    return strdup(sql_value(conn, sql));
}

static const struct {
    const char *id;
    lf_event_type_t type;
    int64_t at;
} l1_events[] = {
    {"c1", LF_EV_CAPTURED, 1000},     {"s1", LF_EV_SCORED, 2000},
    {"h1", LF_EV_HANDED_OFF, 4000},   {"s2", LF_EV_SCORED, 3000},
    {"d1", LF_EV_DISQUALIFIED, 3500}, {"d0", LF_EV_DISQUALIFIED, 1500},
};

/* The first @p n of l1_events projected in time order into empty tables:
 * what a clean run gives. */
static char *l1_clean_digest(int n)
{
    int order[6];
    for (int i = 0; i < n; i++)
        order[i] = i;
    for (int i = 1; i < n; i++) /* insertion sort by time */
        for (int j = i;
             j > 0 && l1_events[order[j]].at < l1_events[order[j - 1]].at;
             j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    truncate_all();
    for (int k = 0; k < n; k++)
        add(l1_events[order[k]].id, "L1", l1_events[order[k]].type,
            l1_events[order[k]].at, k);
    flush_ok();
    return funnel_digest();
}

/* The events of l1_events from @p from to @p to, one batch each, after
 * the first @p from went in one batch. */
static void l1_live(int from, int to)
{
    truncate_all();
    for (int k = 0; k < from; k++)
        add(l1_events[k].id, "L1", l1_events[k].type, l1_events[k].at, k);
    flush_ok();
    for (int k = from; k < to; k++) {
        add(l1_events[k].id, "L1", l1_events[k].type, l1_events[k].at, k);
        flush_ok();
    }
}

/* A late event is recomputed exactly (the tables equal a clean run's of
 * the same events) and writes only what it changes: a late event that
 * changes nothing rewrites nothing; one inside visit 2 keeps visit 1's row;
 * one that shortens the history removes the visits it ends. */
Test(projector, late_event_writes_only_what_it_changes)
{
    char *clean, *live, *before, *v1;

    /* s2 (a second score, same values) changes no row of L1. */
    clean = l1_clean_digest(4);
    l1_live(3, 4);
    live = funnel_digest();
    cr_expect_str_eq(live, clean, "a late score: tables differ from clean");
    cr_expect_eq(lf_projector_stats(proj)->recomputed, 1);
    free(live);
    free(clean);

    /* Rows unchanged keep their version: visits and the lead's row. */
    l1_live(3, 3);
    before = l1_versions();
    add(l1_events[3].id, "L1", l1_events[3].type, l1_events[3].at, 3);
    flush_ok();
    live = l1_versions();
    cr_expect_str_eq(live, before,
                     "a late event that changes nothing "
                     "rewrote rows");
    free(live);
    free(before);

    /* d1 at 3500 ends visit 2 earlier and replaces visit 3: visit 1 stays. */
    clean = l1_clean_digest(5);
    l1_live(4, 4);
    v1 = l1_visit_ctid(1);
    before = l1_visit_ctid(2);
    add(l1_events[4].id, "L1", l1_events[4].type, l1_events[4].at, 4);
    flush_ok();
    live = funnel_digest();
    cr_expect_str_eq(live, clean, "disqualified inside visit 2");
    free(live);
    cr_expect_str_eq(sql_value(conn, "SELECT string_agg(visit || ':' || stage, "
                                     "',' ORDER BY visit) FROM "
                                     "funnel.stage_history"),
                     "1:captured,2:marketing_qualified,3:disqualified");
    live = l1_visit_ctid(1);
    cr_expect_str_eq(live, v1, "visit 1 was rewritten");
    free(live);
    live = l1_visit_ctid(2);
    cr_expect_str_neq(live, before, "visit 2 changed but was not rewritten");
    free(live);
    free(before);
    free(v1);
    free(clean);

    /* d0 at 1500 ends the lead at visit 2: visit 3 goes. */
    clean = l1_clean_digest(6);
    l1_live(5, 6);
    live = funnel_digest();
    cr_expect_str_eq(live, clean, "disqualified before the score");
    cr_expect_str_eq(sql_value(conn, "SELECT string_agg(visit || ':' || stage, "
                                     "',' ORDER BY visit) FROM "
                                     "funnel.stage_history"),
                     "1:captured,2:disqualified");
    free(live);
    free(clean);
}

/* Events of a lead not captured yet are 'state' anomalies; more of them in
 * later batches are added without reading the lead back, and its capture,
 * arriving last, recomputes it into the row a clean run gives. */
Test(projector, uncaptured_lead_is_read_back_only_for_its_capture)
{
    char *clean;

    add("u3", "U", LF_EV_HANDED_OFF, 3000, 0);
    add("u2", "U", LF_EV_SCORED, 2000, 1);
    add("u1", "U", LF_EV_CAPTURED, 1000, 2);
    flush_ok();
    clean = funnel_digest();
    truncate_all();

    add("u3", "U", LF_EV_HANDED_OFF, 3000, 0);
    flush_ok();
    add("u2", "U", LF_EV_SCORED, 2000, 1); /* earlier, still no capture */
    flush_ok();
    cr_expect_eq(lf_projector_stats(proj)->recomputed, 0);
    cr_expect_str_eq(sql_value(conn, "SELECT string_agg(event_id || ':' || "
                                     "reason, ',' ORDER BY event_id) FROM "
                                     "funnel.anomalies WHERE lead_id = 'U'"),
                     "u2:scored before the lead's capture,"
                     "u3:handed_off before the lead's capture");
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM funnel.leads"), "0");
    add("u1", "U", LF_EV_CAPTURED, 1000, 2);
    flush_ok();
    cr_expect_eq(lf_projector_stats(proj)->recomputed, 1);
    char *live = funnel_digest();
    cr_expect_str_eq(live, clean, "the capture's recompute differs from clean");
    free(live);
    free(clean);
}

/* The same event_id with another account or other unknown fields is a
 * conflict: the first stays, the other is listed. */
Test(projector, changed_account_or_extra_is_a_conflict)
{
    lf_event_t ev;

    add2("e1", "L1", LF_EV_CAPTURED, 1000, "A", 0);
    add2("e2", "L1", LF_EV_SCORED, 2000, NULL, 1);
    flush_ok();
    add2("e1", "L1", LF_EV_CAPTURED, 1000, "A", 2); /* the same: a duplicate */
    add2("e1", "L1", LF_EV_CAPTURED, 1000, "B", 3);
    add2("e2", "L1", LF_EV_SCORED, 2000, "B", 4);
    ev = event2("e1", "L1", LF_EV_CAPTURED, 1000, "A", "{\"x\": 1}", NULL);
    cr_assert_eq(lf_projector_add_event(proj, &ev, TOPIC, 0, 5), LF_OK);
    ev = event2("e2", "L1", LF_EV_SCORED, 2000, NULL, NULL, "{\"y\": 1}");
    cr_assert_eq(lf_projector_add_event(proj, &ev, TOPIC, 0, 6), LF_OK);
    flush_ok();

    cr_expect_str_eq(
        sql_value(conn, "SELECT string_agg(reason, ',' ORDER BY reason) "
                        "FROM funnel.anomalies WHERE kind = 'conflict'"),
        "event_id reused with different content at leads partition 0 offset "
        "3,event_id reused with different content at leads partition 0 "
        "offset 4,event_id reused with different content, only in fields "
        "an erasure removes, at leads partition 0 offset 5,event_id reused "
        "with different content, only in fields an erasure removes, at "
        "leads partition 0 offset 6");
    cr_expect_str_eq(sql_value(conn, "SELECT concat_ws('|', account_id, "
                                     "extra IS NULL) FROM funnel.events "
                                     "WHERE event_id = 'e1'"),
                     "A|t");
    cr_expect_str_eq(sql_value(conn, "SELECT account_id FROM funnel.leads"),
                     "A");
}

/* Tables that record another definition than the projector's (a promote
 * of a what-if under it) stop it: the batch is refused as a configuration
 * error, nothing written, and goes through once the definitions agree. */
Test(projector, tables_under_another_definition_stop_the_batch)
{
    const char *text = lf_embedded_funnel_default;
    const char *at = strstr(text, "\"name\": \"default\"");
    lf_definition_t *other;
    lf_buf_t b = {0};

    /* The default under another name: other rules, as far as the record
     * says. */
    cr_assert_not_null(at);
    lf_buf_append(&b, text, (size_t)(at - text));
    lf_buf_printf(&b, "\"name\": \"stricter\"%s",
                  at + strlen("\"name\": \"default\""));
    other = lf_definition_parse((const char *)b.data, b.len, errstr,
                                sizeof(errstr));
    cr_assert_not_null(other, "%s", errstr);

    cr_assert_eq(lf_defstore_record(conn, "funnel", lf_definition_default(),
                                    errstr, sizeof(errstr)),
                 LF_OK, "%s", errstr);
    add("e1", "L1", LF_EV_CAPTURED, 1000, 0);
    flush_ok();
    cr_assert_eq(
        lf_defstore_record(conn, "funnel", other, errstr, sizeof(errstr)),
        LF_OK, "%s", errstr);
    add("e2", "L1", LF_EV_SCORED, 2000, 1);
    cr_assert_eq(lf_projector_flush(proj, conn, NULL, errstr, sizeof(errstr)),
                 LF_ERR_CONFIG);
    cr_expect(strstr(errstr, "now record definition \"stricter\"") &&
                  strstr(errstr, "not this projector's \"default\""),
              "%s", errstr);
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM funnel.events"),
                     "1");
    cr_expect_eq(lf_projector_pending(proj), 1);
    lf_projector_use_definition(proj, other);
    flush_ok();
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM funnel.events"),
                     "2");
    lf_projector_use_definition(proj, NULL);
    lf_definition_destroy(other);
    lf_buf_free(&b);
}

/* ---- a model of accounts, against random workloads ---------------------- */

/* One event of a random workload, regenerated from here as often as it is
 * sent (a duplicate is the same content). */
typedef struct spec_s {
    char id[16], lead[16];
    lf_event_type_t type;
    int64_t at;
    int account; /* -1: none (a v1 event) */
    int64_t amount;
    const char *currency;
    bool extras;   /* fields a newer writer sent */
    char into[16]; /* merged: into_lead_id ("" the default, L-into) */
} spec_t;

#define M_LEADS    24
#define M_ACCOUNTS 4
#define M_MAX      (M_LEADS * 8)

static const lf_event_type_t happy[] = {LF_EV_CAPTURED,   LF_EV_SCORED,
                                        LF_EV_HANDED_OFF, LF_EV_ACCEPTED,
                                        LF_EV_QUALIFIED,  LF_EV_WON};

static lf_event_t from_spec(const spec_t *s)
{
    char acc[16];
    lf_event_t ev;

    snprintf(acc, sizeof(acc), "ACC-%d", s->account);
    ev = event2(s->id, s->lead, s->type, s->at, s->account < 0 ? NULL : acc,
                s->extras ? "{\"region\": \"eu\"}" : NULL,
                s->extras ? "{\"hint\": [1, 2]}" : NULL);
    if (s->type == LF_EV_MERGED && s->into[0]) {
        free(ev.u.merged.into_lead_id);
        ev.u.merged.into_lead_id = strdup(s->into);
    }
    if (s->type == LF_EV_WON) {
        ev.u.won.amount_minor = s->amount;
        free(ev.u.won.currency);
        ev.u.won.currency = strdup(s->currency);
    }
    return ev;
}

/* Each lead walks a prefix of the happy path (so which milestones it
 * reached does not need the state machine), events of v1 and v2 with
 * random accounts, and an identity event now and then, whose account must
 * count for nothing. @returns the number of specs. */
static int workload(spec_t *w, bool identity)
{
    int n = 0;

    for (int l = 0; l < M_LEADS; l++) {
        int steps = 1 + rand() % 6;
        for (int k = 0; k < steps; k++) {
            spec_t *s = &w[n++];
            memset(s, 0, sizeof(*s));
            snprintf(s->id, sizeof(s->id), "e%03d-%d", l, k);
            snprintf(s->lead, sizeof(s->lead), "L%03d", l);
            s->type = happy[k];
            s->at = 1700000000000 + l * 100000 + k * 1000;
            s->account = rand() % 3 ? rand() % M_ACCOUNTS : -1;
            s->amount = 1000 * (1 + rand() % 50);
            s->currency = rand() % 2 ? "EUR" : "USD";
            s->extras = rand() % 4 == 0;
        }
        if (identity && rand() % 3 == 0) {
            spec_t *s = &w[n++];
            memset(s, 0, sizeof(*s));
            snprintf(s->id, sizeof(s->id), "i%03d", l);
            snprintf(s->lead, sizeof(s->lead), "L%03d", l);
            s->type = LF_EV_MERGED + rand() % 3;
            s->at = 1700000000000 + l * 100000 + 50000; /* the latest */
            s->account = rand() % M_ACCOUNTS;
        }
    }
    return n;
}

/* The model: per lead its account and last funnel event; per account the
 * funnel.accounts row, in the view's text, NULL account first. */
static void model(const spec_t *w, int n, char *leads, size_t lsize,
                  char *accounts, size_t asize)
{
    struct {
        int64_t leads, reached[6], eur, usd, first, last;
    } a[M_ACCOUNTS + 1] = {{0}};
    size_t lo = 0, ao = 0;

    leads[0] = accounts[0] = '\0';
    for (int i = 0; i < n;) {
        int acc = -1, steps = 0, j = i;
        int64_t last = 0, won = 0;
        const char *cur = NULL;
        for (; j < n && !strcmp(w[j].lead, w[i].lead); j++) {
            if (LF_EV_IS_IDENTITY(w[j].type))
                continue;
            steps++;
            last = w[j].at; /* specs are in time order per lead */
            if (w[j].account >= 0)
                acc = w[j].account;
            if (w[j].type == LF_EV_WON) {
                won = w[j].amount;
                cur = w[j].currency;
            }
        }
        lo += (size_t)snprintf(leads + lo, lsize - lo, "%s%s|%s", lo ? "," : "",
                               w[i].lead, acc < 0 ? "" : "");
        if (acc >= 0)
            lo += (size_t)snprintf(leads + lo, lsize - lo, "ACC-%d", acc);
        int x = acc + 1;
        if (!a[x].leads++ || w[i].at < a[x].first)
            a[x].first = w[i].at;
        for (int k = 1; k < steps; k++)
            a[x].reached[k]++;
        if (cur && !strcmp(cur, "EUR"))
            a[x].eur += won;
        else if (cur)
            a[x].usd += won;
        if (last > a[x].last)
            a[x].last = last;
        i = j;
    }
    for (int x = 0; x <= M_ACCOUNTS; x++) {
        char acc[16] = "", money[64];
        if (!a[x].leads)
            continue;
        if (x)
            snprintf(acc, sizeof(acc), "ACC-%d", x - 1);
        if (a[x].eur && a[x].usd)
            snprintf(money, sizeof(money), "{\"EUR\": %lld, \"USD\": %lld}",
                     (long long)a[x].eur, (long long)a[x].usd);
        else if (a[x].eur || a[x].usd)
            snprintf(money, sizeof(money), "{\"%s\": %lld}",
                     a[x].eur ? "EUR" : "USD",
                     (long long)(a[x].eur + a[x].usd));
        else
            snprintf(money, sizeof(money), "{}");
        ao += (size_t)snprintf(
            accounts + ao, asize - ao,
            "%s%s|%lld|%lld|%lld|%lld|%lld|%lld|%s|%lld|%lld", ao ? "," : "",
            acc, (long long)a[x].leads, (long long)a[x].reached[1],
            (long long)a[x].reached[2], (long long)a[x].reached[3],
            (long long)a[x].reached[4], (long long)a[x].reached[5], money,
            (long long)a[x].first, (long long)a[x].last);
    }
}

static const char *accounts_sql =
    "SELECT coalesce(string_agg(concat_ws('|', coalesce(account_id, ''), "
    "leads, marketing_qualified, handed_off, sales_accepted, "
    "sales_qualified, won, won_amount_minor::text, "
    "(extract(epoch FROM first_captured_at) * 1000)::int8, "
    "(extract(epoch FROM last_event_at) * 1000)::int8), ',' "
    "ORDER BY account_id NULLS FIRST), '') FROM funnel.accounts";

/* Send the workload shuffled, a tenth of it twice, in random batches. */
static void send_workload(const spec_t *w, int n)
{
    int order[2 * M_MAX], m = 0;

    for (int i = 0; i < n; i++) {
        order[m++] = i;
        if (rand() % 10 == 0)
            order[m++] = i;
    }
    shuffle(order, m);
    for (int k = 0; k < m; k++) {
        lf_event_t ev = from_spec(&w[order[k]]);
        cr_assert_eq(lf_projector_add_event(proj, &ev, TOPIC, 0, k), LF_OK);
        if (rand() % 7 == 0)
            flush_ok();
    }
    flush_ok();
}

Test(projector, accounts_equal_an_independent_model, .timeout = 300)
{
    static spec_t w[M_MAX];
    static char leads[8192], accounts[4096];

    for (unsigned seed = 1; seed <= 6; seed++) {
        srand(seed);
        truncate_all();
        int n = workload(w, false); /* identity: test_identity.py */
        model(w, n, leads, sizeof(leads), accounts, sizeof(accounts));
        send_workload(w, n);
        cr_expect_str_eq(sql_value(conn,
                                   "SELECT string_agg(concat_ws('|', lead_id, "
                                   "coalesce(account_id, '')), ',' "
                                   "ORDER BY lead_id) FROM funnel.leads"),
                         leads, "seed %u", seed);
        cr_expect_str_eq(sql_value(conn, accounts_sql), accounts, "seed %u",
                         seed);
        cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM "
                                         "funnel.anomalies"),
                         "0", "seed %u", seed);
    }
}

/* A batch recomputes its persons in chunks of stored events
 * (lf_projector_limit_recompute()): one person per chunk gives the same
 * tables, and counts the same new anomalies, as the default, under
 * shuffled workloads with merges, voids and erasures. */
Test(projector, recompute_in_chunks_equals_one_chunk, .timeout = 300)
{
    static spec_t w[M_MAX];

    for (unsigned seed = 1; seed <= 6; seed++) {
        char *digest[2];
        uint64_t anomalies[2], recomputed[2];
        for (int k = 0; k < 2; k++) {
            const lf_projector_stats_t *st = lf_projector_stats(proj);
            uint64_t a0 = st->anomalies, r0 = st->recomputed;
            int n;
            lf_projector_limit_recompute(proj, k ? 1 : 0);
            srand(seed);
            truncate_identity();
            n = workload(w, true);
            for (int i = 0; i < n; i++) /* chains: anomalies move */
                if (w[i].type == LF_EV_MERGED && i % 2)
                    snprintf(w[i].into, sizeof(w[i].into), "L%03d",
                             (atoi(w[i].lead + 1) + 1) % M_LEADS);
            send_workload(w, n);
            digest[k] = identity_digest();
            anomalies[k] = st->anomalies - a0;
            recomputed[k] = st->recomputed - r0;
        }
        cr_expect_str_eq(digest[1], digest[0], "seed %u", seed);
        cr_expect_eq(anomalies[1], anomalies[0], "seed %u", seed);
        cr_expect_gt(recomputed[0], 0, "seed %u: nothing recomputed", seed);
        free(digest[0]);
        free(digest[1]);
    }
}

/* Every row of the funnel tables of @p schema (no wall-clock column), as
 * one digest. */
static char *schema_digest(const char *schema)
{
    char sql[2048];

    snprintf(sql, sizeof(sql),
             "SELECT md5(concat_ws('|',"
             " (SELECT string_agg((to_jsonb(e) - 'received_at')::text, ','"
             "  ORDER BY event_id) FROM %s.events e),"
             " (SELECT string_agg((to_jsonb(l) - 'updated_at')::text, ','"
             "  ORDER BY lead_id) FROM %s.leads l),"
             " (SELECT string_agg(h::text, ',' ORDER BY lead_id, visit)"
             "  FROM %s.stage_history h),"
             " (SELECT string_agg((to_jsonb(a) - 'detected_at')::text, ','"
             "  ORDER BY event_id, kind, reason) FROM %s.anomalies a)))",
             schema, schema, schema, schema);
    return strdup(sql_value(conn, sql));
}

/* leadflow-replay rebuild --from-db, without the program: the twin equals
 * the live tables, v2 rows, identity events and unknown fields included. */
Test(projector, rebuild_from_db_equals_live_with_v2_rows, .timeout = 300)
{
    static spec_t w[M_MAX];
    lf_rebuild_source_t *src;
    lf_projector_t *p;
    size_t added;
    char *live, *twin;

    srand(99);
    send_workload(w, workload(w, true));
    cr_assert_eq(lf_rebuild_create(conn, "rb", false, 30000, NULL, "from-db",
                                   errstr, sizeof(errstr)),
                 LF_OK, "%s", errstr);
    src = lf_rebuild_source_open("", LF_REBUILD_ORDER_NONE, errstr,
                                 sizeof(errstr));
    cr_assert_not_null(src, "%s", errstr);
    cr_assert_not_null(p = lf_projector_new("rb", NULL, errstr, 512));
    lf_projector_use_pseudonyms(p, pseudonyms);
    do {
        cr_assert_eq(
            lf_rebuild_source_next(src, p, 37, &added, errstr, sizeof(errstr)),
            LF_OK, "%s", errstr);
        cr_assert_eq(lf_projector_flush(p, conn, NULL, errstr, sizeof(errstr)),
                     LF_OK, "%s", errstr);
    } while (added);
    lf_projector_destroy(p);
    lf_rebuild_source_close(src);
    live = schema_digest("funnel");
    twin = schema_digest("rb");
    cr_expect_str_eq(twin, live);
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM rb.events WHERE "
                                     "extra IS NOT NULL AND payload ? 'hint'"),
                     sql_value(conn, "SELECT count(*) FROM funnel.events "
                                     "WHERE extra IS NOT NULL"));
    free(live);
    free(twin);
}

/* A database built by the release before contract v2 (migrations up to
 * 005, with rows) migrates in place: its rows stay, the new columns are
 * NULL, and the projector carries on with v2 events on it. */
Test(projector, database_of_the_previous_release_migrates_in_place)
{
    char *before;

    sql_ok(conn, "DROP SCHEMA funnel CASCADE");
    sql_ok(conn, "CREATE SCHEMA funnel; CREATE TABLE funnel.schema_migrations"
                 " (name text PRIMARY KEY,"
                 "  applied_at timestamptz NOT NULL DEFAULT now())");
    for (const lf_migration_t *m = lf_embedded_migrations; m->name; m++) {
        char rec[256];
        if (strcmp(m->name, "006") >= 0)
            break;
        sql_ok(conn, m->sql);
        snprintf(rec, sizeof(rec),
                 "INSERT INTO funnel.schema_migrations VALUES ('%s')", m->name);
        sql_ok(conn, rec);
    }
    sql_ok(conn,
           "INSERT INTO funnel.events (event_id, lead_id, type, occurred_at, "
           "source, payload, topic, partition, \"offset\") VALUES "
           "('e1', 'L1', 'captured', 'epoch'::timestamptz + interval '1s', "
           "'crm', '{\"channel\": \"web\", \"campaign\": \"spring\"}', "
           "'leads', 0, 0); "
           "INSERT INTO funnel.leads (lead_id, stage, stage_entered_at, "
           "cycle, channel, campaign, captured_at, last_event_at, "
           "last_event_id, stage_entered_by, visits) VALUES ('L1', "
           "'captured', 'epoch'::timestamptz + interval '1s', 1, 'web', "
           "'spring', 'epoch'::timestamptz + interval '1s', "
           "'epoch'::timestamptz + interval '1s', 'e1', 'e1', 1); "
           "INSERT INTO funnel.stage_history (lead_id, visit, cycle, stage, "
           "entered_at, entered_by) VALUES ('L1', 1, 1, 'captured', "
           "'epoch'::timestamptz + interval '1s', 'e1')");
    before = strdup(sql_value(
        conn, "SELECT concat_ws('|', (SELECT string_agg((to_jsonb(e) - "
              "'received_at')::text, ',') FROM funnel.events e), "
              "(SELECT string_agg((to_jsonb(l) - 'updated_at')::text, ',') "
              "FROM funnel.leads l))"));
    cr_assert_eq(lf_pg_migrate(conn, NULL, errstr, sizeof(errstr)), LF_OK, "%s",
                 errstr);
    cr_expect_str_eq(
        sql_value(conn,
                  "SELECT concat_ws('|', (SELECT string_agg((to_jsonb(e) - "
                  "'received_at' - 'account_id' - 'extra')::text, ',') FROM "
                  "funnel.events e), (SELECT string_agg((to_jsonb(l) - "
                  "'updated_at' - 'account_id' - 'opportunity_id' - "
                  "'opportunity_amount_minor' - 'opportunity_currency')"
                  "::text, ',') FROM funnel.leads l))"),
        before);
    free(before);
    cr_expect_str_eq(sql_value(conn, "SELECT (SELECT count(*) FROM "
                                     "funnel.events WHERE account_id IS NULL "
                                     "AND extra IS NULL) + (SELECT count(*) "
                                     "FROM funnel.leads WHERE account_id IS "
                                     "NULL)"),
                     "2");
    cr_expect_str_eq(sql_value(conn, "SELECT count(*) FROM "
                                     "funnel.schema_migrations WHERE name "
                                     "LIKE '006%'"),
                     "1");
    add2("e2", "L1", LF_EV_SCORED, 2000, "ACME", 1);
    flush_ok();
    cr_expect_eq(lf_projector_stats(proj)->recomputed, 0);
    cr_expect_str_eq(sql_value(conn, "SELECT concat_ws('|', account_id, "
                                     "stage, visits) FROM funnel.leads"),
                     "ACME|marketing_qualified|2");
    cr_expect_str_eq(sql_value(conn, "SELECT concat_ws('|', account_id, "
                                     "leads, marketing_qualified) FROM "
                                     "funnel.accounts"),
                     "ACME|1|1");
}
