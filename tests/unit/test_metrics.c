/* test_metrics.c: lf_metrics' exposition text and health rule, without
 * HTTP (the server is exercised by tests/integration/test_metrics.sh). */
#include "lf_metrics.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static lf_metrics_t *m;

static void setup(void)
{
    char err[256];
    cr_assert_eq(lf_metrics_new(NULL, &m, err, sizeof(err)), LF_OK, "%s", err);
}

static void teardown(void)
{
    lf_metrics_destroy(m);
    m = NULL;
}

TestSuite(metrics, .init = setup, .fini = teardown);

/* The exposition text, or fail. */
static char *render(void)
{
    size_t len = 0;
    char *s = lf_metrics_render(m, &len);
    cr_assert_not_null(s);
    cr_assert_eq(strlen(s), len);
    return s;
}

static void expect_line(const char *text, const char *line)
{
    char *want;
    cr_assert(asprintf(&want, "\n%s\n", line) > 0);
    cr_expect(strstr(text, want) != NULL, "no line \"%s\" in:\n%s", line, text);
    free(want);
}

static rd_kafka_topic_partition_list_t *parts(int n, int64_t offset0)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, "lead-events", i)->offset =
            offset0 < 0 ? offset0 : offset0 + i;
    return l;
}

Test(metrics, counters_by_type_and_histogram)
{
    lf_projector_stats_t st = {0};
    st.messages = 12;
    st.events_new = 10;
    st.dead_letters = 2;
    st.anomalies = 3;
    st.batches = 3;
    st.by_type[LF_EV_CAPTURED] = 7;
    st.by_type[LF_EV_WON] = 3;

    lf_metrics_batch(m, &st, 5, 0.003, NULL);
    lf_metrics_batch(m, &st, 5, 0.2, NULL);
    lf_metrics_batch(m, &st, 5, 30, NULL);
    char *s = render();
    expect_line(s, "leadflow_messages_total 12");
    expect_line(s, "leadflow_events_projected_total{type=\"captured\"} 7");
    expect_line(s, "leadflow_events_projected_total{type=\"won\"} 3");
    expect_line(s, "leadflow_events_projected_total{type=\"lost\"} 0");
    expect_line(s, "leadflow_dead_letters_total 2");
    expect_line(s, "leadflow_anomalies_total 3");
    expect_line(s, "leadflow_batches_total 3");
    expect_line(s, "leadflow_pg_retries_total 5");
    expect_line(s, "# TYPE leadflow_batch_duration_seconds histogram");
    /* cumulative buckets */
    expect_line(s, "leadflow_batch_duration_seconds_bucket{le=\"0.005\"} 1");
    expect_line(s, "leadflow_batch_duration_seconds_bucket{le=\"0.1\"} 1");
    expect_line(s, "leadflow_batch_duration_seconds_bucket{le=\"0.25\"} 2");
    expect_line(s, "leadflow_batch_duration_seconds_bucket{le=\"10\"} 2");
    expect_line(s, "leadflow_batch_duration_seconds_bucket{le=\"+Inf\"} 3");
    expect_line(s, "leadflow_batch_duration_seconds_count 3");
    expect_line(s, "leadflow_batch_duration_seconds_sum 30.203");
    cr_expect(strstr(s, "leadflow_last_commit_timestamp_seconds 0\n") == NULL);
    free(s);
}

Test(metrics, identity_counters)
{
    lf_projector_stats_t st = {0};
    st.merges = 4;
    st.voids = 2;
    st.erasures = 1;
    st.merge_anomalies = 3;
    st.void_anomalies = 5;

    lf_metrics_batch(m, &st, 0, 0.01, NULL);
    char *s = render();
    expect_line(s, "# TYPE leadflow_merges_total counter");
    expect_line(s, "leadflow_merges_total 4");
    expect_line(s, "# TYPE leadflow_voids_total counter");
    expect_line(s, "leadflow_voids_total 2");
    expect_line(s, "# TYPE leadflow_erasures_total counter");
    expect_line(s, "leadflow_erasures_total 1");
    expect_line(s, "# TYPE leadflow_identity_anomalies_total counter");
    expect_line(s, "leadflow_identity_anomalies_total{kind=\"merge\"} 3");
    expect_line(s, "leadflow_identity_anomalies_total{kind=\"void\"} 5");
    cr_expect(strstr(s, "# HELP leadflow_merges_total ") != NULL, "%s", s);
    cr_expect(strstr(s, "# HELP leadflow_voids_total ") != NULL, "%s", s);
    cr_expect(strstr(s, "# HELP leadflow_erasures_total ") != NULL, "%s", s);
    cr_expect(strstr(s, "# HELP leadflow_identity_anomalies_total ") != NULL,
              "%s", s);
    free(s);

    /* a refresh carries the projector's latest counters too */
    st.merges = 6;
    lf_metrics_refresh(m, NULL, &st, 0);
    s = render();
    expect_line(s, "leadflow_merges_total 6");
    free(s);
}

/* Writers publish copies of the totals made a moment before; an older
 * copy published after a newer one must not take a counter back. */
Test(metrics, counters_never_go_back)
{
    lf_projector_stats_t newer = {0}, older = {0};
    newer.messages = 900;
    newer.batches = 9;
    newer.merges = 3;
    older.messages = 800;
    older.batches = 8;
    older.merges = 3;

    lf_metrics_batch(m, &newer, 7, 0.01, NULL);
    lf_metrics_batch(m, &older, 6, 0.01, NULL);
    lf_metrics_refresh(m, NULL, &older, 5);
    char *s = render();
    expect_line(s, "leadflow_merges_total 3");
    expect_line(s, "leadflow_messages_total 900");
    expect_line(s, "leadflow_batches_total 9");
    expect_line(s, "leadflow_pg_retries_total 7");
    free(s);
}

Test(metrics, lag_from_stored_offsets)
{
    rd_kafka_topic_partition_list_t *l = parts(2, 100);
    lf_metrics_assign(m, l);
    char *s = render();
    /* nothing fetched yet: no lag sample rather than a false one */
    cr_expect(strstr(s, "leadflow_consumer_lag{") == NULL, "%s", s);
    expect_line(s, "leadflow_consumer_offset{topic=\"lead-events\","
                   "partition=\"1\"} 101");
    expect_line(s, "leadflow_assigned_partitions 2");
    free(s);

    /* a batch moves partition 0 to 150; the watermark is not refreshed
     * yet: the end offset shown is never behind what was stored */
    rd_kafka_topic_partition_list_destroy(l);
    l = parts(1, 150);
    lf_metrics_batch(m, NULL, 0, 0.01, l);
    rd_kafka_topic_partition_list_destroy(l);
    s = render();
    expect_line(s, "leadflow_consumer_offset{topic=\"lead-events\","
                   "partition=\"0\"} 150");
    free(s);

    lf_metrics_assign(m, NULL);
    s = render();
    expect_line(s, "leadflow_assigned_partitions 0");
    cr_expect(strstr(s, "leadflow_consumer_offset{") == NULL, "%s", s);
    free(s);
}

Test(metrics, health_needs_assignment_and_database)
{
    char why[128];
    rd_kafka_topic_partition_list_t *l = parts(1, RD_KAFKA_OFFSET_BEGINNING);

    cr_expect_not(lf_metrics_healthy(m, why, sizeof(why)));
    cr_expect(strstr(why, "assigned") != NULL, "%s", why);
    lf_metrics_db(m, true);
    cr_expect_not(lf_metrics_healthy(m, NULL, 0));
    lf_metrics_assign(m, l);
    cr_expect(lf_metrics_healthy(m, why, sizeof(why)), "%s", why);
    lf_metrics_db(m, false);
    cr_expect_not(lf_metrics_healthy(m, why, sizeof(why)));
    cr_expect(strstr(why, "PostgreSQL") != NULL, "%s", why);
    /* a committed batch proves the database reachable again */
    lf_metrics_batch(m, NULL, 0, 0.01, NULL);
    cr_expect(lf_metrics_healthy(m, NULL, 0));
    rd_kafka_topic_partition_list_destroy(l);
    /* an empty assignment is no assignment */
    l = parts(0, 0);
    lf_metrics_assign(m, l);
    cr_expect_not(lf_metrics_healthy(m, NULL, 0));
    rd_kafka_topic_partition_list_destroy(l);
}

Test(metrics, bad_addresses)
{
    lf_metrics_t *x = NULL;
    char err[256];
    static const char *bad[] = {"nope", "127.0.0.1:", "127.0.0.1:70000",
                                "127.0.0.1:9x", "[::1:80"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_expect_eq(lf_metrics_new(bad[i], &x, err, sizeof(err)),
                     LF_ERR_INVALID, "%s", bad[i]);
        cr_expect_null(x);
        cr_expect(strstr(err, bad[i]) != NULL, "%s", err);
    }
    /* NULL is a no-op everywhere */
    lf_metrics_db(NULL, true);
    lf_metrics_assign(NULL, NULL);
    lf_metrics_destroy(NULL);
    cr_expect_null(lf_metrics_render(NULL, NULL));
    cr_expect_eq(lf_metrics_port(NULL), 0);
}

Test(metrics, serves_on_a_free_port)
{
    lf_metrics_t *x = NULL;
    char err[256];

    cr_assert_eq(lf_metrics_new("127.0.0.1:0", &x, err, sizeof(err)), LF_OK,
                 "%s", err);
    cr_expect_gt(lf_metrics_port(x), 0);
    lf_metrics_destroy(x);
}
