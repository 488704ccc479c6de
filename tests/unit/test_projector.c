/* test_projector.c: the projector against a throwaway PostgreSQL
 * (lf_test_pg.h): events built with the C API go in through
 * lf_projector_add_event() and lf_projector_add_message(), and the tests
 * check the rows a user would check in funnel.events, leads,
 * stage_history, anomalies, dead_letters and offsets. */
#include "lf_codec.h"
#include "lf_projector.h"
#include "lf_test_pg.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOPIC "leads"
#define GROUP "g-test"

/* Per test: a server with the funnel tables, a projector into them. */
static char pgdir[512];
static PGconn *conn;
static lf_projector_t *proj;
static char errstr[512];

static void setup(void)
{
    conn = pg_up_migrated(pgdir, sizeof(pgdir));
    proj = lf_projector_new("funnel", GROUP, errstr, sizeof(errstr));
    cr_assert_not_null(proj, "%s", errstr);
}

static void teardown(void)
{
    lf_projector_destroy(proj);
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
    flush_ok();

    cr_expect_str_eq(
        sql_value(conn, "SELECT concat_ws('|', event_id, lead_id, reason)"
                        " FROM funnel.anomalies WHERE kind = 'key'"),
        "e1|L1|Kafka key \"someone-else\" differs from lead_id");
    cr_expect_str_eq(sql_value(conn, "SELECT stage FROM funnel.leads"),
                     "captured");
    cr_expect_str_eq(
        sql_value(conn, "SELECT concat_ws('|', topic, partition, \"offset\","
                        " convert_from(key, 'UTF8'),"
                        " convert_from(value, 'UTF8'), error <> '')"
                        " FROM funnel.dead_letters"),
        TOPIC "|2|8|someone-else|not avro|t");
    cr_expect_str_eq(sql_value(conn, "SELECT next_offset FROM funnel.offsets"
                                     " WHERE partition = 2"),
                     "9");
    cr_expect_eq(lf_projector_stats(proj)->dead_letters, 1);

    lf_event_clear(&ev);
    lf_buf_free(&value);
    lf_codec_destroy(codec);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
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
