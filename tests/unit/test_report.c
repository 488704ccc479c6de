/* test_report.c: the funnel report (lf_report) against a throwaway
 * PostgreSQL: for a small hand-built funnel, every number it prints is the
 * number the analysts' views give, and its errors name the problem. */
#include "lf_report.h"

#include "lf_test_pg.h"

#include <jansson.h>

/* Each report section as a query of the plain views (what an analyst
 * runs), its key columns first, the metrics after, in the report's order.
 * time_in_stage leaves out the ages of current visits: they are measured
 * against now(), which moves between the report and this query. */
static const struct {
    const char *section;
    int nkeys;
    const char *sql;
} view_sql[] = {
    {"stage_counts", 1,
     "SELECT stage, leads, share FROM funnel.stage_counts WHERE channel IS "
     "NULL ORDER BY stage_order"},
    {"conversion", 2,
     "SELECT from_stage, to_stage, entered, reached, rate FROM "
     "funnel.conversion WHERE capture_month IS NULL AND channel IS NULL "
     "ORDER BY step"},
    {"time_in_stage", 1,
     "SELECT stage, finished_visits, median_hours, p90_hours, mean_hours, "
     "current_visits FROM funnel.time_in_stage ORDER BY stage_order"},
    {"handoff_sla_by_owner", 1,
     "SELECT owner, handoffs, accepted, recycled, disqualified, still_open, "
     "sla_met, sla_breached, sla_pending, sla_met_rate, acceptance_rate, "
     "median_hours_to_accept FROM funnel.handoff_sla_by_owner WHERE owner IS "
     "NOT NULL ORDER BY owner"},
    {"handoff_sla_total", 0,
     "SELECT handoffs, accepted, recycled, disqualified, still_open, "
     "sla_met, sla_breached, sla_pending, sla_met_rate, acceptance_rate, "
     "median_hours_to_accept FROM funnel.handoff_sla_by_owner WHERE owner IS "
     "NULL"},
    {"recycle_reasons", 1,
     "SELECT reason, recycles, share FROM funnel.recycle_reasons WHERE "
     "breakdown = 'reason' ORDER BY recycles DESC, reason"},
    {"cohorts", 2,
     "SELECT capture_month, stage, leads, reached, share FROM funnel.cohorts "
     "ORDER BY capture_month, stage_order"},
    {"won_revenue", 1,
     "SELECT r.key AS currency, r.value::numeric AS amount_minor FROM "
     "funnel.source_performance s CROSS JOIN LATERAL "
     "jsonb_each_text(s.won_amount_minor) r WHERE s.channel IS NULL ORDER BY "
     "r.key"},
    {"source_performance", 2,
     "SELECT channel, campaign, leads, marketing_qualified, handed_off, "
     "sales_accepted, sales_qualified, won, won_rate FROM "
     "funnel.source_performance WHERE channel IS NOT NULL ORDER BY channel, "
     "campaign NULLS FIRST"},
    {"source_total", 0,
     "SELECT leads, marketing_qualified, handed_off, sales_accepted, "
     "sales_qualified, won, won_rate FROM funnel.source_performance WHERE "
     "channel IS NULL"},
    {"identity", 0,
     "SELECT merges, voided_events, erasures, merge_anomalies, "
     "void_anomalies FROM funnel.identity_summary"},
};

/* The report for @p filter in format @p fmt, as a string to free(). */
static char *report(PGconn *conn, const lf_report_filter_t *filter,
                    lf_report_format_t fmt)
{
    char errstr[512], *text = NULL;
    size_t len = 0;
    lf_report_t *rep = lf_report_fetch(conn, filter, errstr, sizeof(errstr));
    FILE *fp = open_memstream(&text, &len);

    cr_assert_not_null(rep, "%s", errstr);
    cr_assert_not_null(fp);
    cr_assert_eq(lf_report_write(rep, fmt, fp, errstr, sizeof(errstr)), LF_OK,
                 "%s", errstr);
    fclose(fp);
    lf_report_destroy(rep);
    return text;
}

/* Every line of section view_sql[@p i] that the views give is in the
 * report's @p csv, and the report has no other line of that section. */
static void expect_section(PGconn *conn, const char *csv, size_t i)
{
    PGresult *res = PQexec(conn, view_sql[i].sql);
    char prefix[64];
    int nk = view_sql[i].nkeys, lines = 0, want = 0;

    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s",
                 PQresultErrorMessage(res));
    for (int r = 0; r < PQntuples(res); r++)
        for (int c = nk; c < PQnfields(res); c++, want++) {
            char line[512];
            snprintf(line, sizeof(line), "\n%s,%s,%s,%s,%s\r\n",
                     view_sql[i].section, nk > 0 ? PQgetvalue(res, r, 0) : "",
                     nk > 1 ? PQgetvalue(res, r, 1) : "", PQfname(res, c),
                     PQgetvalue(res, r, c));
            cr_expect(strstr(csv, line), "not in the report: %s", line + 1);
        }
    PQclear(res);
    /* No more lines than the view has (time_in_stage: two more metrics). */
    snprintf(prefix, sizeof(prefix), "\n%s,", view_sql[i].section);
    for (const char *s = csv; (s = strstr(s, prefix)); s++)
        lines++;
    if (!strcmp(view_sql[i].section, "time_in_stage"))
        want += 2 * (want / 5);
    cr_expect_eq(lines, want, "%s", view_sql[i].section);
}

Test(report, numbers_are_the_views_numbers, .timeout = 120)
{
    static const char *const by_hand[] = {
        "\nstage_counts,won,,leads,1\r\n",
        "\nstage_counts,nurture,,leads,1\r\n",
        "\nstage_counts,disqualified,,leads,1\r\n",
        "\nstage_counts,captured,,leads,1\r\n",
        "\nstage_counts,captured,,share,0.2500\r\n",
        "\nsource_total,,,leads,4\r\n",
        "\nsource_total,,,won,1\r\n",
        "\nwon_revenue,EUR,,amount_minor,500000\r\n",
        "\nhandoff_sla_total,,,handoffs,2\r\n",
        "\nrecycle_reasons,not_ready,,recycles,1\r\n",
        "\nsource_performance,web,spring,leads,2\r\n",
    };
    char dir[512];
    PGconn *conn = pg_up_migrated(dir, sizeof(dir));

    project_funnel(conn, "funnel");
    char *csv = report(conn, NULL, LF_REPORT_CSV);
    cr_assert(!strncmp(csv, "section,key,key2,metric,value\r\n", 31), "%s",
              csv);
    for (size_t i = 0; i < sizeof(by_hand) / sizeof(*by_hand); i++)
        cr_expect(strstr(csv, by_hand[i]), "%s not in\n%s", by_hand[i] + 1,
                  csv);
    for (size_t i = 0; i < sizeof(view_sql) / sizeof(*view_sql); i++)
        expect_section(conn, csv, i);
    free(csv);

    /* JSON carries the same numbers, as numbers. */
    char *js = report(conn, NULL, LF_REPORT_JSON);
    json_error_t jerr;
    json_t *root = json_loads(js, 0, &jerr);
    cr_assert_not_null(root, "%s: %s", jerr.text, js);
    json_t *total = json_object_get(root, "source_total");
    if (json_is_array(total))
        total = json_array_get(total, 0);
    cr_expect_eq(json_integer_value(json_object_get(total, "leads")), 4, "%s",
                 js);
    json_decref(root);
    free(js);
    pg_down(conn, dir);
}

Test(report, a_filter_gives_the_views_numbers_for_its_leads, .timeout = 120)
{
    char dir[512], sql[256];
    PGconn *conn = pg_up_migrated(dir, sizeof(dir));
    lf_report_filter_t web = {NULL, NULL, "web"};
    lf_report_filter_t feb = {"2024-02-01", "2024-02-29", NULL};

    project_funnel(conn, "funnel");
    /* One channel: the views' rows of that channel. */
    char *csv = report(conn, &web, LF_REPORT_CSV);
    PGresult *res = PQexec(conn, "SELECT stage, leads, share FROM "
                                 "funnel.stage_counts WHERE channel = 'web' "
                                 "ORDER BY stage_order");
    cr_assert_eq(PQntuples(res), 9);
    for (int r = 0; r < 9; r++) {
        snprintf(sql, sizeof(sql), "\nstage_counts,%s,,leads,%s\r\n",
                 PQgetvalue(res, r, 0), PQgetvalue(res, r, 1));
        cr_expect(strstr(csv, sql), "%s not in\n%s", sql + 1, csv);
    }
    PQclear(res);
    cr_expect(strstr(csv, "\nsource_total,,,leads,2\r\n"), "%s", csv);
    free(csv);
    /* Dates: the leads captured in February (L3, L4). */
    csv = report(conn, &feb, LF_REPORT_CSV);
    cr_expect(strstr(csv, "\nsource_total,,,leads,2\r\n"), "%s", csv);
    cr_expect(strstr(csv, "\nstage_counts,disqualified,,leads,1\r\n"), "%s",
              csv);
    cr_expect(strstr(csv, "\nstage_counts,won,,leads,0\r\n"), "%s", csv);
    free(csv);
    pg_down(conn, dir);
}

Test(report, errors_name_the_problem, .timeout = 120)
{
    char dir[512], errstr[512];
    lf_report_format_t fmt = LF_REPORT_TEXT;
    PGconn *conn = pg_up(dir, sizeof(dir));

    /* No migrations: the section, the server's reason, and what to do. */
    cr_expect_null(lf_report_fetch(conn, NULL, errstr, sizeof(errstr)));
    cr_expect(strstr(errstr, "report section stage_counts: ") &&
                  strstr(errstr, "are the migrations applied? "
                                 "leadflow-project --migrate-only"),
              "%s", errstr);
    cr_expect_eq(PQtransactionStatus(conn), PQTRANS_IDLE, "rolled back");

    cr_expect_eq(lf_report_check_date("2024-02-30", errstr, sizeof(errstr)),
                 LF_ERR_INVALID);
    cr_expect_str_eq(errstr, "\"2024-02-30\" is not a calendar date");
    cr_expect_eq(lf_report_check_date("2024-2-3", errstr, sizeof(errstr)),
                 LF_ERR_INVALID);
    cr_expect_str_eq(errstr, "\"2024-2-3\": expected a date as YYYY-MM-DD");
    cr_expect_eq(lf_report_check_date("2024-02-29", errstr, sizeof(errstr)),
                 LF_OK);
    cr_expect_eq(lf_report_parse_format("xml", &fmt), LF_ERR_INVALID);
    cr_expect_eq(lf_report_parse_format("html", &fmt), LF_OK);
    cr_expect_eq(fmt, LF_REPORT_HTML);
    pg_down(conn, dir);
}

/* Identity rows as the projector would leave them: L5 merged into L1 and
 * L6 into L5 (both count for L1, web), L2's scored event e8 voided by L2,
 * three erasures of people never captured, four merge anomalies under L1
 * (web) and five void anomalies under L3 (ads). */
static const char identity_sql[] =
    "INSERT INTO funnel.merges VALUES"
    " ('L5', 'L1', 'L1', '2024-01-04T00:00:00Z', 'm1'),"
    " ('L6', 'L5', 'L1', '2024-01-04T01:00:00Z', 'm2');"
    "INSERT INTO funnel.events (event_id, lead_id, type, occurred_at, source,"
    " payload, topic, partition, \"offset\") VALUES"
    " ('v1', 'L2', 'voided', '2024-01-07T00:00:00Z', 'crm',"
    " '{\"voided_event_id\": \"e8\", \"reason\": \"test\"}', 'leads', 0,"
    " 100);"
    "INSERT INTO funnel.erasures SELECT 'x' || i, 'erased:' || md5(i::text),"
    " 'DSR-' || i, '2024-03-01T00:00:00Z' FROM generate_series(1, 3) AS i;"
    "INSERT INTO funnel.anomalies (event_id, lead_id, kind, reason)"
    " SELECT 'am' || i, 'L1', 'merge', 'cycle' FROM generate_series(1, 4) i"
    " UNION ALL SELECT 'av' || i, 'L3', 'void', 'not received'"
    " FROM generate_series(1, 5) AS i;";

/* The identity section's five numbers, in the report's order. */
static const char *const identity_names[] = {
    "merges", "voided_events", "erasures", "merge_anomalies", "void_anomalies"};
static const int identity_want[] = {2, 1, 3, 4, 5};

Test(report, identity_in_every_format, .timeout = 120)
{
    char dir[512], want[256];
    PGconn *conn = pg_up_migrated(dir, sizeof(dir));

    project_funnel(conn, "funnel");
    sql_ok(conn, identity_sql);
    char *csv = report(conn, NULL, LF_REPORT_CSV);
    char *html = report(conn, NULL, LF_REPORT_HTML);
    char *js = report(conn, NULL, LF_REPORT_JSON);
    json_error_t jerr;
    json_t *root = json_loads(js, 0, &jerr);
    cr_assert_not_null(root, "%s: %s", jerr.text, js);
    json_t *id = json_object_get(root, "identity");
    for (size_t i = 0; i < 5; i++) {
        snprintf(want, sizeof(want), "\nidentity,,,%s,%d\r\n",
                 identity_names[i], identity_want[i]);
        cr_expect(strstr(csv, want), "%s not in\n%s", want + 1, csv);
        snprintf(want, sizeof(want),
                 "data-section=\"identity\" data-metric=\"%s\" "
                 "data-value=\"%d\">%d<",
                 identity_names[i], identity_want[i], identity_want[i]);
        cr_expect(strstr(html, want), "%s not in the page", want);
        cr_expect_eq(json_integer_value(json_object_get(id, identity_names[i])),
                     identity_want[i], "%s: %s", identity_names[i], js);
    }
    json_decref(root);
    free(js);
    free(html);
    free(csv);

    /* Text: the column names, then the five numbers in that order. */
    char *text = report(conn, NULL, LF_REPORT_TEXT);
    const char *t = strstr(text, "\nIdentity"), *head;
    int n[5] = {0};
    cr_assert_not_null(t, "%s", text);
    head = strstr(t, "merges");
    cr_assert(head && strstr(head, "voided_events") &&
                  strstr(head, "void_anomalies"),
              "%s", t);
    cr_assert_eq(sscanf(strchr(strstr(t, "void_anomalies"), '\n'),
                        " %d %d %d %d %d", &n[0], &n[1], &n[2], &n[3], &n[4]),
                 5, "%s", t);
    for (size_t i = 0; i < 5; i++)
        cr_expect_eq(n[i], identity_want[i], "%s: %s", identity_names[i], t);
    free(text);
    pg_down(conn, dir);
}

Test(report, identity_filtered_by_surviving_lead, .timeout = 120)
{
    char dir[512];
    PGconn *conn = pg_up_migrated(dir, sizeof(dir));
    lf_report_filter_t web = {NULL, NULL, "web"}, ads = {NULL, NULL, "ads"};

    project_funnel(conn, "funnel");
    sql_ok(conn, identity_sql);
    /* web: L1 (both merges, four merge anomalies) and L2 (the void); the
     * erased people were never captured, so no channel holds them. */
    char *csv = report(conn, &web, LF_REPORT_CSV);
    cr_expect(strstr(csv, "\nidentity,,,merges,2\r\n") &&
                  strstr(csv, "\nidentity,,,voided_events,1\r\n") &&
                  strstr(csv, "\nidentity,,,erasures,0\r\n") &&
                  strstr(csv, "\nidentity,,,merge_anomalies,4\r\n") &&
                  strstr(csv, "\nidentity,,,void_anomalies,0\r\n"),
              "%s", csv);
    free(csv);
    csv = report(conn, &ads, LF_REPORT_CSV);
    cr_expect(strstr(csv, "\nidentity,,,merges,0\r\n") &&
                  strstr(csv, "\nidentity,,,voided_events,0\r\n") &&
                  strstr(csv, "\nidentity,,,erasures,0\r\n") &&
                  strstr(csv, "\nidentity,,,merge_anomalies,0\r\n") &&
                  strstr(csv, "\nidentity,,,void_anomalies,5\r\n"),
              "%s", csv);
    free(csv);
    pg_down(conn, dir);
}
