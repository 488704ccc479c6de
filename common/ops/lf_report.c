/* lf_report.c: the funnel report, from the analysts' views to text, CSV,
 * JSON and one HTML page with inline SVG charts. The SQL lives in the views
 * (schemas/sql/002_views.sql); here we only pick rows and lay them out. */
#include "lf_report.h"

#include "lf_event.h"
#include "lf_pg.h"
#include "lf_uuid.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- the sections ------------------------------------------------------ */

/* The filter arguments of every *_filtered function; NULL = no filter. */
#define ARGS "($1::date, $2::date, $3::text)"

/* How many accounts the accounts sections list (per currency by revenue). */
#define LF_REPORT_TOP_ACCOUNTS "10"

typedef enum section_e {
    SEC_STAGES,
    SEC_CONVERSION,
    SEC_TIME,
    SEC_SLA_OWNERS,
    SEC_SLA_TOTAL,
    SEC_RECYCLE,
    SEC_COHORTS,
    SEC_REVENUE,
    SEC_SOURCES,
    SEC_SOURCE_TOTAL,
    SEC_PIPELINE,
    SEC_FLOWS,
    SEC_SCORES,
    SEC_CLOSE,
    SEC_BREACHES,
    SEC_RECYCLE_RESPONSE,
    SEC_ROI_CHANNEL,
    SEC_ROI_CAMPAIGN,
    SEC_ROI_MONTH,
    SEC_ACCOUNTS_REVENUE,
    SEC_ACCOUNTS_LEADS,
    SEC_IDENTITY,
    SEC__COUNT
} section_t;

/* One query per section. Its first nkeys columns name a row, the others are
 * the metrics: CSV writes one line per metric, JSON one object per row, and
 * the HTML page tags each number with the same section/key/metric. */
static const struct section_def_s {
    const char *name;
    int nkeys;
    const char *sql;
} sections[SEC__COUNT] = {
    [SEC_STAGES] = {"stage_counts", 1,
                    "SELECT stage, leads, share"
                    " FROM funnel.stage_counts_filtered" ARGS
                    " WHERE channel IS NULL ORDER BY stage_order"},
    [SEC_CONVERSION] = {"conversion", 2,
                        "SELECT from_stage, to_stage, entered, reached, rate"
                        " FROM funnel.conversion_filtered" ARGS
                        " WHERE capture_month IS NULL AND channel IS NULL"
                        " ORDER BY step"},
    [SEC_TIME] = {"time_in_stage", 1,
                  "SELECT stage, finished_visits, median_hours, p90_hours,"
                  " mean_hours, current_visits, current_median_hours,"
                  " current_max_hours"
                  " FROM funnel.time_in_stage_filtered" ARGS
                  " ORDER BY stage_order"},
    [SEC_SLA_OWNERS] = {"handoff_sla_by_owner", 1,
                        "SELECT owner, handoffs, accepted, recycled,"
                        " disqualified, still_open, sla_met, sla_breached,"
                        " sla_pending, sla_met_rate, acceptance_rate,"
                        " median_hours_to_accept"
                        " FROM funnel.handoff_sla_by_owner_filtered" ARGS
                        " WHERE owner IS NOT NULL ORDER BY owner"},
    [SEC_SLA_TOTAL] = {"handoff_sla_total", 0,
                       "SELECT handoffs, accepted, recycled, disqualified,"
                       " still_open, sla_met, sla_breached, sla_pending,"
                       " sla_met_rate, acceptance_rate,"
                       " median_hours_to_accept"
                       " FROM funnel.handoff_sla_by_owner_filtered" ARGS
                       " WHERE owner IS NULL"},
    [SEC_RECYCLE] = {"recycle_reasons", 1,
                     "SELECT reason, recycles, share"
                     " FROM funnel.recycle_reasons_filtered" ARGS
                     " WHERE breakdown = 'reason'"
                     " ORDER BY recycles DESC, reason"},
    [SEC_COHORTS] = {"cohorts", 2,
                     "SELECT capture_month, stage, leads, reached, share"
                     " FROM funnel.cohorts_filtered" ARGS
                     " ORDER BY capture_month, stage_order"},
    [SEC_REVENUE] = {"won_revenue", 1,
                     "SELECT r.key AS currency,"
                     " r.value::numeric AS amount_minor"
                     " FROM funnel.source_performance_filtered" ARGS " AS s"
                     " CROSS JOIN LATERAL jsonb_each_text(s.won_amount_minor)"
                     " AS r WHERE s.channel IS NULL ORDER BY r.key"},
    [SEC_SOURCES] = {"source_performance", 2,
                     "SELECT channel, campaign, leads, marketing_qualified,"
                     " handed_off, sales_accepted, sales_qualified, won,"
                     " won_rate"
                     " FROM funnel.source_performance_filtered" ARGS
                     " WHERE channel IS NOT NULL"
                     " ORDER BY channel, campaign NULLS FIRST"},
    [SEC_SOURCE_TOTAL] = {"source_total", 0,
                          "SELECT leads, marketing_qualified, handed_off,"
                          " sales_accepted, sales_qualified, won, won_rate"
                          " FROM funnel.source_performance_filtered" ARGS
                          " WHERE channel IS NULL"},
    /* The money views (schemas/sql/008_money.sql). A pipeline row is keyed
     * by "owner / channel / campaign" ("-" for none) and its currency; the
     * total rows per currency have no first key. */
    [SEC_PIPELINE] = {"pipeline", 2,
                      "SELECT CASE WHEN channel IS NOT NULL THEN"
                      " concat_ws(' / ', coalesce(owner, '-'), channel,"
                      " coalesce(campaign, '-')) END AS source, currency,"
                      " open_opportunities, open_amount_minor, won,"
                      " won_amount_minor"
                      " FROM funnel.pipeline_filtered" ARGS
                      " ORDER BY channel IS NULL, source, currency"},
    [SEC_FLOWS] = {"flows", 2,
                   "SELECT period_start AS month, stage, entered, exited,"
                   " open_at_end FROM funnel.flows_filtered" ARGS
                   " ORDER BY period_start, stage_order"},
    [SEC_SCORES] = {"score_outcomes", 2,
                    "SELECT model, score_band, threshold, leads,"
                    " below_threshold, marketing_qualified, handed_off,"
                    " sales_accepted, sales_qualified, won, nurture,"
                    " disqualified, acceptance_rate, won_rate"
                    " FROM funnel.score_outcomes_filtered" ARGS
                    " ORDER BY model NULLS LAST, score_band"},
    [SEC_CLOSE] = {"close_reasons", 2,
                   "SELECT kind, reason, closes, share"
                   " FROM funnel.close_reasons_filtered" ARGS
                   " WHERE breakdown = 'reason'"
                   " ORDER BY kind, closes DESC, reason"},
    [SEC_BREACHES] = {"open_sla_breaches", 2,
                      "SELECT lead_id, owner, channel,"
                      " to_char(handed_off_at AT TIME ZONE 'UTC',"
                      " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS handed_off_at,"
                      " to_char(due_at AT TIME ZONE 'UTC',"
                      " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS due_at,"
                      " sla_hours, hours_overdue"
                      " FROM funnel.open_sla_breaches_filtered" ARGS
                      " LIMIT 50"},
    [SEC_RECYCLE_RESPONSE] = {"recycle_response", 1,
                              "SELECT reason, recycles, requalified,"
                              " requalified_30d, requalified_90d,"
                              " requalified_30d_rate, requalified_90d_rate,"
                              " median_hours_to_requalify, won_later"
                              " FROM funnel.recycle_response_filtered" ARGS
                              " ORDER BY reason IS NULL, recycles DESC,"
                              " reason"},
#define ROI_COLS                                                               \
    " currency, cost_minor, leads, mqls, sqls, won, won_revenue_minor,"        \
    " cost_per_lead, cost_per_mql, cost_per_sql, cac, roi, missing_rates"      \
    " FROM funnel.roi_filtered" ARGS
    [SEC_ROI_CHANNEL] = {"roi_channel", 1,
                         "SELECT channel," ROI_COLS
                         " WHERE grain IN ('channel', 'total')"
                         " ORDER BY channel NULLS LAST"},
    [SEC_ROI_CAMPAIGN] = {"roi_campaign", 2,
                          "SELECT channel, campaign," ROI_COLS
                          " WHERE grain = 'campaign' ORDER BY 1, 2"},
    /* The month grain, keyed by month and "channel / campaign" (the
     * campaign left out for none). */
    [SEC_ROI_MONTH] = {"roi_month", 2,
                       "SELECT month, concat_ws(' / ', channel,"
                       " nullif(campaign, '')) AS source," ROI_COLS
                       " WHERE grain = 'month' ORDER BY month, channel,"
                       " campaign"},
    /* The accounts (funnel.accounts): the top ones by won revenue, per
     * currency (amounts in two currencies do not add up), with the leads
     * won in that currency, and by leads; the leads without an account
     * are not an account. The amounts are funnel.accounts'
     * won_amount_minor, summed from the same leads. */
    [SEC_ACCOUNTS_REVENUE] = {"accounts_by_revenue", 2,
                              "SELECT account_id, currency, amount_minor,"
                              " won, leads FROM (SELECT a.account_id,"
                              " w.currency, w.amount_minor, w.won, a.leads,"
                              " row_number() OVER (PARTITION BY w.currency"
                              " ORDER BY w.amount_minor DESC, a.account_id)"
                              " AS rank"
                              " FROM funnel.accounts_filtered" ARGS " AS a"
                              " JOIN (SELECT account_id, currency,"
                              " sum(won_amount_minor) AS amount_minor,"
                              " count(*) AS won"
                              " FROM funnel.leads_in_scope" ARGS
                              " WHERE won_at IS NOT NULL AND currency IS NOT"
                              " NULL GROUP BY 1, 2) AS w USING (account_id)"
                              " WHERE a.account_id IS NOT NULL) AS t"
                              " WHERE rank <= " LF_REPORT_TOP_ACCOUNTS
                              " ORDER BY currency, rank"},
    /* ... with their revenue in the reporting currency, and the average
     * over the accounts (the same in every row). */
    [SEC_ACCOUNTS_LEADS] = {"accounts_by_leads", 1,
                            "SELECT a.account_id, a.leads,"
                            " a.marketing_qualified, a.handed_off,"
                            " a.sales_accepted, a.sales_qualified, a.won,"
                            " s.reporting_currency AS currency,"
                            " a.won_revenue_reporting_minor,"
                            " a.avg_won_revenue_per_account_minor,"
                            " a.missing_rates"
                            " FROM funnel.accounts_filtered" ARGS " AS a"
                            " CROSS JOIN funnel_ref.settings AS s"
                            " WHERE a.account_id IS NOT NULL"
                            " ORDER BY a.leads DESC, a.account_id"
                            " LIMIT " LF_REPORT_TOP_ACCOUNTS},
    /* Merges, voided events, erasures and the anomalies of merged and
     * voided events that do not count (schemas/sql/010_identity_views.sql):
     * one row, everything unfiltered, else by surviving lead in scope. */
    [SEC_IDENTITY] = {"identity", 0,
                      "SELECT merges, voided_events, erasures,"
                      " merge_anomalies, void_anomalies"
                      " FROM funnel.identity_summary_filtered" ARGS},
};

struct lf_report_s {
    char *from, *to, *channel;
    char generated_at[40];
    PGresult *res[SEC__COUNT];
    PGresult *def;    /* funnel.definition: name, version, sha256 */
    PGresult *rules;  /* funnel.rules, one row per rule */
    PGresult *labels; /* the definition's labels: stage, label */
    PGresult *cycle;  /* its new_cycle: from and to stages, labelled */
};

/* ---- parsing arguments ------------------------------------------------- */

lf_err_t lf_report_check_date(const char *s, char *errstr, size_t errstr_size)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30,
                                  31, 31, 30, 31, 30, 31};
    int y, m, d;
    bool leap;

    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        goto bad;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
            goto bad;
    y = atoi(s);
    m = atoi(s + 5);
    d = atoi(s + 8);
    leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1 || m < 1 || m > 12 || d < 1 ||
        d > mdays[m - 1] + (m == 2 && leap))
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "\"%s\" is not a calendar date", s);
    return LF_OK;
bad:
    return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                     "\"%.40s\": expected a date as YYYY-MM-DD", s);
}

lf_err_t lf_report_parse_format(const char *s, lf_report_format_t *fmt)
{
    static const char *names[] = {"text", "csv", "json", "html"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i])) {
            *fmt = (lf_report_format_t)i;
            return LF_OK;
        }
    return LF_ERR_INVALID;
}

/* ---- fetching ---------------------------------------------------------- */

void lf_report_destroy(lf_report_t *rep)
{
    if (!rep)
        return;
    for (int i = 0; i < SEC__COUNT; i++)
        PQclear(rep->res[i]);
    PQclear(rep->def);
    PQclear(rep->rules);
    PQclear(rep->labels);
    PQclear(rep->cycle);
    free(rep->from);
    free(rep->to);
    free(rep->channel);
    free(rep);
}

static char *dup_or_null(const char *s, bool *oom)
{
    char *c;
    if (!s)
        return NULL;
    if (!(c = strdup(s)))
        *oom = true;
    return c;
}

/* Fill errstr from a failed result; a missing view or schema gets a hint. */
static void query_error(const PGresult *res, PGconn *conn, const char *what,
                        char *errstr, size_t errstr_size)
{
    const char *msg = res ? PQresultErrorMessage(res) : "";
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    int n;

    if (!*msg)
        msg = PQerrorMessage(conn);
    n = (int)strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        n--;
    lf_seterr(LF_ERR_PG, errstr, errstr_size, "%s: %.*s%s", what, n, msg,
              state && (!strcmp(state, "42883") || !strcmp(state, "42P01") ||
                        !strcmp(state, "3F000"))
                  ? " (are the migrations applied? leadflow-project "
                    "--migrate-only)"
                  : "");
}

/* The definition the tables were built with and its rules, read in the
 * report's snapshot: every output names the agreement its numbers follow. */
static const char *definition_sql =
    "SELECT name, version, sha256 FROM funnel.definition";
/* The display names the definition gives stages (its "labels"). */
static const char *labels_sql =
    "SELECT l.key, l.value FROM funnel.definition d, jsonb_each_text("
    "coalesce(d.json -> 'labels', '{}'::jsonb)) l JOIN funnel.stages s ON "
    "s.stage = l.key ORDER BY s.stage_order";
static const char *rules_sql =
    "SELECT r.event, string_agg(coalesce(d.json -> 'labels' ->> r.from_stage, "
    "r.from_stage), ', ' ORDER BY s.stage_order) AS from_stages, r.to_stage, "
    "coalesce(d.json -> 'labels' ->> r.to_stage, r.to_stage) AS to_label, "
    "r.otherwise, r.qualify FROM funnel.rules r "
    "JOIN funnel.stages s ON s.stage = r.from_stage CROSS JOIN "
    "funnel.definition d GROUP BY r.rule, r.event, r.to_stage, d.json, "
    "r.otherwise, r.qualify ORDER BY r.rule";

/* Its new_cycle rule: the stages of "from" and of "to", labelled. */
static const char *cycle_sql =
    "SELECT (SELECT string_agg(coalesce(d.json -> 'labels' ->> f, f), ', ' "
    "ORDER BY s.stage_order) FROM jsonb_array_elements_text(d.json -> "
    "'new_cycle' -> 'from') f JOIN funnel.stages s ON s.stage = f), (SELECT "
    "string_agg(coalesce(d.json -> 'labels' ->> t, t), ', ' ORDER BY "
    "s.stage_order) FROM jsonb_array_elements_text(d.json -> 'new_cycle' -> "
    "'to') t JOIN funnel.stages s ON s.stage = t) FROM funnel.definition d";

static lf_err_t fetch_definition(PGconn *conn, lf_report_t *rep, char *errstr,
                                 size_t errstr_size)
{
    rep->def = PQexec(conn, definition_sql);
    if (PQresultStatus(rep->def) != PGRES_TUPLES_OK) {
        query_error(rep->def, conn, "report: the funnel definition", errstr,
                    errstr_size);
        return LF_ERR_PG;
    }
    rep->rules = PQexec(conn, rules_sql);
    if (PQresultStatus(rep->rules) != PGRES_TUPLES_OK) {
        query_error(rep->rules, conn, "report: the funnel rules", errstr,
                    errstr_size);
        return LF_ERR_PG;
    }
    rep->labels = PQexec(conn, labels_sql);
    if (PQresultStatus(rep->labels) != PGRES_TUPLES_OK) {
        query_error(rep->labels, conn, "report: the stages' labels", errstr,
                    errstr_size);
        return LF_ERR_PG;
    }
    rep->cycle = PQexec(conn, cycle_sql);
    if (PQresultStatus(rep->cycle) != PGRES_TUPLES_OK) {
        query_error(rep->cycle, conn, "report: the new-cycle rule", errstr,
                    errstr_size);
        return LF_ERR_PG;
    }
    return LF_OK;
}

lf_report_t *lf_report_fetch(PGconn *conn, const lf_report_filter_t *filter,
                             char *errstr, size_t errstr_size)
{
    static const lf_report_filter_t none = {NULL, NULL, NULL};
    lf_report_t *rep = calloc(1, sizeof(*rep));
    const char *params[3];
    PGresult *res;
    bool oom = false;

    if (!filter)
        filter = &none;
    if (rep) {
        rep->from = dup_or_null(filter->from, &oom);
        rep->to = dup_or_null(filter->to, &oom);
        rep->channel = dup_or_null(filter->channel, &oom);
    }
    if (!rep || oom) {
        lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
        lf_report_destroy(rep);
        return NULL;
    }
    params[0] = rep->from;
    params[1] = rep->to;
    params[2] = rep->channel;

    /* One snapshot for every section, and one now() for the ages. */
    if (lf_pg_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                   "report: starting a read-only transaction", errstr,
                   errstr_size))
        goto fail;
    res = PQexec(conn, "SELECT to_char(now() AT TIME ZONE 'UTC', "
                       "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        query_error(res, conn, "report: reading the clock", errstr,
                    errstr_size);
        PQclear(res);
        goto fail;
    }
    snprintf(rep->generated_at, sizeof(rep->generated_at), "%s",
             PQgetvalue(res, 0, 0));
    PQclear(res);
    for (int i = 0; i < SEC__COUNT; i++) {
        char what[96];
        res =
            PQexecParams(conn, sections[i].sql, 3, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            snprintf(what, sizeof(what), "report section %s", sections[i].name);
            query_error(res, conn, what, errstr, errstr_size);
            PQclear(res);
            goto fail;
        }
        rep->res[i] = res;
    }
    if (fetch_definition(conn, rep, errstr, errstr_size) ||
        lf_pg_exec(conn, "COMMIT", "report: commit", errstr, errstr_size))
        goto fail;
    return rep;
fail:
    if (PQtransactionStatus(conn) != PQTRANS_IDLE)
        PQclear(PQexec(conn, "ROLLBACK"));
    lf_report_destroy(rep);
    return NULL;
}

/* ---- reading results --------------------------------------------------- */

/* The value of column @p col in @p row, or NULL for SQL NULL (or no such
 * row or column). Owned by the result. */
static const char *get(const PGresult *res, int row, const char *col)
{
    int c = PQfnumber(res, col);
    if (c < 0 || row < 0 || row >= PQntuples(res) || PQgetisnull(res, row, c))
        return NULL;
    return PQgetvalue(res, row, c);
}

static double num(const char *v)
{
    return v ? strtod(v, NULL) : 0.0;
}

/* ---- display helpers --------------------------------------------------- */

typedef enum shape_e {
    SHOW_COUNT, /* 13 */
    SHOW_PCT,   /* 0.6923 -> 69.2% */
    SHOW_HOURS, /* 10.00 -> 10.00 h */
} shape_t;

/* The fraction @p v ("0.0515", as the view wrote it) as a percentage to
 * one place, rounded half away from zero from its decimal digits (a double
 * would make 0.0515 5.1499... and print 5.1%; the CSV's 0.0515 is 5.2%).
 * @returns false when @p v is no plain decimal. */
static bool pct_text(const char *v, char *buf, size_t size)
{
    const char *p = v + (*v == '-'), *frac;
    unsigned long long whole = 0, tenths;
    char d[4] = {'0', '0', '0', '0'};

    if (!isdigit((unsigned char)*p))
        return false;
    for (; isdigit((unsigned char)*p); p++) {
        if (whole > 1000000000ULL)
            return false;
        whole = whole * 10 + (unsigned)(*p - '0');
    }
    frac = *p == '.' ? p + 1 : p;
    for (int i = 0; i < 4 && isdigit((unsigned char)frac[i]); i++)
        d[i] = frac[i];
    for (p = frac; isdigit((unsigned char)*p); p++)
        ;
    if (*p)
        return false;
    /* tenths of a percent: the fraction's first three digits, then its
     * fourth (and any after it) rounds */
    tenths = whole * 1000 + (unsigned)(d[0] - '0') * 100 +
             (unsigned)(d[1] - '0') * 10 + (unsigned)(d[2] - '0') +
             (d[3] >= '5');
    snprintf(buf, size, "%s%llu.%llu%%", *v == '-' && tenths ? "-" : "",
             tenths / 10, tenths % 10);
    return true;
}

/* @p v (a view's text, NULL for SQL NULL) as a person reads it; "-" for
 * NULL. @returns buf. */
static const char *show(shape_t shape, const char *v, char *buf, size_t size)
{
    if (!v)
        snprintf(buf, size, "-");
    else if (shape == SHOW_PCT) {
        if (!pct_text(v, buf, size))
            snprintf(buf, size, "%.1f%%", num(v) * 100.0);
    } else if (shape == SHOW_HOURS)
        snprintf(buf, size, "%s h", v);
    else
        snprintf(buf, size, "%s", v);
    return buf;
}

/* ---- rates from their counts ------------------------------------------- */

/* The views round every rate to 4 places; a percentage to one place made
 * from that fraction would round twice (27 of 277 is 9.747 %, 0.0975 in
 * the view, 9.8 % shown). So the text and the page make each rate again
 * from the counts of its row, which every section selects: @c num over
 * @c den (plus @c plus, less @c less), or over the sum of @c num in the
 * section's rows (a share; with @c by_kind, those of the same first key).
 * With @c net, the rate is (@c num - @c den) / @c den (ROI). The CSV and
 * JSON carry the views' values as they are. */
static const struct rate_src_s {
    section_t sec;
    const char *col, *num, *den, *plus, *less;
    bool by_kind, net;
} rate_srcs[] = {
    {SEC_STAGES, "share", "leads", NULL, NULL, NULL, false, false},
    {SEC_CONVERSION, "rate", "reached", "entered", NULL, NULL, false, false},
    {SEC_SLA_OWNERS, "sla_met_rate", "sla_met", "sla_met", "sla_breached", NULL,
     false, false},
    {SEC_SLA_OWNERS, "acceptance_rate", "accepted", "handoffs", NULL,
     "still_open", false, false},
    {SEC_SLA_TOTAL, "sla_met_rate", "sla_met", "sla_met", "sla_breached", NULL,
     false, false},
    {SEC_SLA_TOTAL, "acceptance_rate", "accepted", "handoffs", NULL,
     "still_open", false, false},
    {SEC_RECYCLE, "share", "recycles", NULL, NULL, NULL, false, false},
    {SEC_COHORTS, "share", "reached", "leads", NULL, NULL, false, false},
    {SEC_SOURCES, "won_rate", "won", "leads", NULL, NULL, false, false},
    {SEC_SOURCE_TOTAL, "won_rate", "won", "leads", NULL, NULL, false, false},
    {SEC_SCORES, "acceptance_rate", "sales_accepted", "handed_off", NULL, NULL,
     false, false},
    {SEC_SCORES, "won_rate", "won", "handed_off", NULL, NULL, false, false},
    {SEC_CLOSE, "share", "closes", NULL, NULL, NULL, true, false},
    {SEC_RECYCLE_RESPONSE, "requalified_30d_rate", "requalified_30d",
     "recycles", NULL, NULL, false, false},
    {SEC_RECYCLE_RESPONSE, "requalified_90d_rate", "requalified_90d",
     "recycles", NULL, NULL, false, false},
    {SEC_ROI_CHANNEL, "roi", "won_revenue_minor", "cost_minor", NULL, NULL,
     false, true},
    {SEC_ROI_CAMPAIGN, "roi", "won_revenue_minor", "cost_minor", NULL, NULL,
     false, true},
    {SEC_ROI_MONTH, "roi", "won_revenue_minor", "cost_minor", NULL, NULL, false,
     true},
};

__extension__ typedef __int128 wide_t; /* products of two int64 and 10^4 */

/* Column @p col of row @p r as a whole number: false when it is missing,
 * NULL, or not a plain integer (a rate is then shown from the view). */
static bool whole_at(const PGresult *res, int r, const char *col, wide_t *out)
{
    const char *v = col ? get(res, r, col) : NULL;
    char *end;

    if (!v || !*v)
        return false;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end)
        return false;
    *out = x;
    return true;
}

/* @p num * @p scale / @p den rounded half away from zero (den > 0). */
static wide_t scaled(wide_t num, wide_t den, int scale)
{
    wide_t a = (num < 0 ? -num : num) * scale * 2;
    wide_t q = (a + den) / (den * 2);
    return num < 0 ? -q : q;
}

/* The view's 4-place fraction @p v in ten-thousandths; false when it has
 * another form. */
static bool view_e4(const char *v, wide_t *out)
{
    const char *dot = strchr(v, '.');
    char *end;

    if (!dot || strlen(dot + 1) != 4 || !isdigit((unsigned char)dot[1]))
        return false;
    errno = 0;
    long long whole = strtoll(v, &end, 10), frac = strtoll(dot + 1, NULL, 10);
    if (errno || end != dot)
        return false;
    *out = (wide_t)whole * 10000 + (*v == '-' ? -frac : frac);
    return true;
}

/* The numerator and denominator of rate @p s in row @p r. */
static bool rate_parts(const PGresult *res, int r, const struct rate_src_s *s,
                       wide_t *num, wide_t *den)
{
    wide_t x = 0;

    if (!whole_at(res, r, s->num, num))
        return false;
    if (!s->den) { /* a share: the sum over the rows (of the same kind) */
        const char *kind = s->by_kind ? PQgetvalue(res, r, 0) : NULL;
        *den = 0;
        for (int i = 0; i < PQntuples(res); i++) {
            if (kind && strcmp(kind, PQgetvalue(res, i, 0)))
                continue;
            if (!whole_at(res, i, s->num, &x))
                return false;
            *den += x;
        }
        return true;
    }
    if (!whole_at(res, r, s->den, den))
        return false;
    if (s->plus && !whole_at(res, r, s->plus, &x))
        return false;
    *den += s->plus ? x : 0;
    if (s->less && !whole_at(res, r, s->less, &x))
        return false;
    *den -= s->less ? x : 0;
    if (s->net)
        *num -= *den;
    return true;
}

/* Rate @p col of row @p r of section @p sec (the view's value @p v) as a
 * percentage to one place, made from its counts; false when it cannot be,
 * or when the counts do not give the view's own 4-place value (a safety
 * net: then the view's value is shown). */
static bool exact_pct(const lf_report_t *rep, section_t sec, int r,
                      const char *col, const char *v, char *buf, size_t size)
{
    const PGresult *res = rep->res[sec];
    wide_t num, den, e4;

    for (size_t i = 0; i < sizeof(rate_srcs) / sizeof(*rate_srcs); i++) {
        const struct rate_src_s *s = &rate_srcs[i];
        if (s->sec != sec || strcmp(s->col, col))
            continue;
        if (!rate_parts(res, r, s, &num, &den) || den <= 0 ||
            !view_e4(v, &e4) || scaled(num, den, 10000) != e4)
            return false;
        wide_t tenths = scaled(num, den, 1000),
               a = tenths < 0 ? -tenths : tenths;
        if (a > LLONG_MAX)
            return false;
        snprintf(buf, size, "%s%lld.%lld%%", tenths < 0 ? "-" : "",
                 (long long)(a / 10), (long long)(a % 10));
        return true;
    }
    return false;
}

/* How row @p r of section @p sec shows its column @p col. */
static const char *show_at(const lf_report_t *rep, section_t sec, int r,
                           const char *col, shape_t shape, char *buf,
                           size_t size)
{
    const char *v = get(rep->res[sec], r, col);

    if (shape == SHOW_PCT && v && exact_pct(rep, sec, r, col, v, buf, size))
        return buf;
    return show(shape, v, buf, size);
}

/* ISO 4217 minor-unit exponents that are not 2 (as
 * funnel.currency_exponent() has them). */
static int currency_exponent(const char *cur)
{
    static const char *zero[] = {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY",
                                 "KMF", "KRW", "PYG", "RWF", "UGX", "UYI",
                                 "VND", "VUV", "XAF", "XOF", "XPF"};
    static const char *three[] = {"BHD", "IQD", "JOD", "KWD",
                                  "LYD", "OMR", "TND"};
    for (size_t i = 0; i < sizeof(zero) / sizeof(*zero); i++)
        if (!strcmp(cur, zero[i]))
            return 0;
    for (size_t i = 0; i < sizeof(three) / sizeof(*three); i++)
        if (!strcmp(cur, three[i]))
            return 3;
    if (!strcmp(cur, "CLF") || !strcmp(cur, "UYW"))
        return 4;
    return 2;
}

/* A sum in minor units ("1234567", as the view has it) in major units with
 * thousands separators ("12,345.67"). Text that is not an integer is
 * copied. @returns buf. */
static const char *show_money(const char *cur, const char *minor, char *buf,
                              size_t size)
{
    char digits[64], out[96];
    size_t n, pad, whole, o = 0;
    int exp = currency_exponent(cur);
    bool neg = minor[0] == '-';
    const char *d = minor + neg;

    n = strlen(d);
    if (!n || n >= 40 || strspn(d, "0123456789") != n) {
        snprintf(buf, size, "%s", minor);
        return buf;
    }
    /* At least one digit before the point: 5 cents is 0.05. */
    pad = n <= (size_t)exp ? (size_t)exp + 1 - n : 0;
    memset(digits, '0', pad);
    memcpy(digits + pad, d, n + 1);
    n += pad;
    if (neg)
        out[o++] = '-';
    whole = n - (size_t)exp;
    for (size_t i = 0; i < whole; i++) {
        if (i && (whole - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    if (exp) {
        out[o++] = '.';
        for (size_t i = whole; i < n; i++)
            out[o++] = digits[i];
    }
    out[o] = '\0';
    snprintf(buf, size, "%s", out);
    return buf;
}

/* Write @p s for a terminal: control characters (which could move the
 * cursor or recolour the screen: the data comes from event producers) as
 * '?', padded with spaces to @p width characters; when max > 0, a value
 * of more than @p max characters shows its first max - 1 and "\u2026", so
 * that two values cut at the same place do not read as one. */
static void put_term(FILE *fp, const char *s, int width, int max)
{
    int len = 0, w = 0;
    bool cut;

    for (const char *q = s; *q; q++)
        len += ((unsigned char)*q & 0xC0) != 0x80;
    cut = max > 0 && len > max;
    for (size_t i = 0; s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c & 0xC0) != 0x80 && cut && w == max - 1)
            break;
        if (lf_utf8_is_c1(s + i)) { /* C1 controls too: one '?' */
            fputc('?', fp);
            i++;
            w++;
            continue;
        }
        fputc(c < 0x20 || c == 0x7f ? '?' : c, fp);
        w += (c & 0xC0) != 0x80;
    }
    if (cut) {
        fputs("\u2026", fp);
        w++;
    }
    for (; w < width; w++)
        fputc(' ', fp);
}

/* Widest value of @p col (in characters, at most @p max), or @p min. */
static int col_width(const PGresult *res, const char *col, int min, int max)
{
    int w = min;
    for (int r = 0; r < PQntuples(res); r++) {
        const char *v = get(res, r, col);
        int n = 0;
        for (; v && *v; v++)
            n += ((unsigned char)*v & 0xC0) != 0x80;
        if (n > w)
            w = n;
    }
    return w > max ? max : w;
}

static void put_scope(FILE *fp, const lf_report_t *rep,
                      void (*put)(FILE *, const char *))
{
    if (!rep->from && !rep->to && !rep->channel) {
        put(fp, "all leads");
        return;
    }
    put(fp, "leads captured");
    if (rep->from) {
        put(fp, " from ");
        put(fp, rep->from);
    }
    if (rep->to) {
        put(fp, rep->from ? " to " : " up to ");
        put(fp, rep->to);
    }
    if (rep->channel) {
        put(fp, " in channel ");
        put(fp, rep->channel);
    }
}

/* ---- text -------------------------------------------------------------- */

static void term_str(FILE *fp, const char *s)
{
    put_term(fp, s, 0, 0);
}

static void text_stages(const lf_report_t *rep, FILE *fp)
{
    const PGresult *res = rep->res[SEC_STAGES];
    long long total = 0;
    char a[64];

    fputs("\nLeads by current stage\n", fp);
    fprintf(fp, "  %-20s %7s  %6s\n", "stage", "leads", "share");
    for (int r = 0; r < PQntuples(res); r++) {
        fputs("  ", fp);
        put_term(fp, get(res, r, "stage"), 20, 0);
        fprintf(fp, " %7s  %6s\n", get(res, r, "leads"),
                show_at(rep, SEC_STAGES, r, "share", SHOW_PCT, a, sizeof(a)));
        total += strtoll(get(res, r, "leads"), NULL, 10);
    }
    fprintf(fp, "  %-20s %7lld\n", "total", total);
}

static void text_conversion(const lf_report_t *rep, FILE *fp)
{
    const PGresult *res = rep->res[SEC_CONVERSION];
    char a[64];

    fputs("\nConversion between stages\n", fp);
    if (!PQntuples(res))
        fputs("  (no leads)\n", fp);
    else
        fprintf(fp, "  %-20s   %-20s %7s %7s  %6s\n", "from", "to", "entered",
                "reached", "rate");
    for (int r = 0; r < PQntuples(res); r++)
        fprintf(
            fp, "  %-20s-> %-20s %7s %7s  %6s\n", get(res, r, "from_stage"),
            get(res, r, "to_stage"), get(res, r, "entered"),
            get(res, r, "reached"),
            show_at(rep, SEC_CONVERSION, r, "rate", SHOW_PCT, a, sizeof(a)));
}

static void text_time(const lf_report_t *rep, FILE *fp)
{
    const PGresult *res = rep->res[SEC_TIME];

    fputs("\nTime in stage (hours, visits that ended)\n", fp);
    fprintf(fp, "  %-20s %6s %8s %8s %8s %10s\n", "stage", "visits", "median",
            "p90", "mean", "in it now");
    for (int r = 0; r < PQntuples(res); r++) {
        const char *m = get(res, r, "median_hours");
        const char *p = get(res, r, "p90_hours");
        const char *x = get(res, r, "mean_hours");
        fprintf(fp, "  %-20s %6s %8s %8s %8s %10s\n", get(res, r, "stage"),
                get(res, r, "finished_visits"), m ? m : "-", p ? p : "-",
                x ? x : "-", get(res, r, "current_visits"));
    }
}

static void text_sla(const lf_report_t *rep, FILE *fp)
{
    int w = col_width(rep->res[SEC_SLA_OWNERS], "owner", 10, 24);
    char a[64], b[64];

    fputs("\nHandoff SLA\n  ", fp);
    put_term(fp, "owner", w, 0);
    fprintf(fp, " %8s %8s %5s %5s %7s  %7s  %10s  %18s\n", "handoffs",
            "accepted", "met", "late", "pending", "SLA met", "acceptance",
            "median h to accept");
    for (int pass = 0; pass < 2; pass++) {
        section_t sec = pass ? SEC_SLA_TOTAL : SEC_SLA_OWNERS;
        const PGresult *s = rep->res[sec];
        for (int r = 0; r < PQntuples(s); r++) {
            const char *med = get(s, r, "median_hours_to_accept");
            fputs("  ", fp);
            put_term(fp, pass ? "all owners" : get(s, r, "owner"), w, w);
            fprintf(
                fp, " %8s %8s %5s %5s %7s  %7s  %10s  %18s\n",
                get(s, r, "handoffs"), get(s, r, "accepted"),
                get(s, r, "sla_met"), get(s, r, "sla_breached"),
                get(s, r, "sla_pending"),
                show_at(rep, sec, r, "sla_met_rate", SHOW_PCT, a, sizeof(a)),
                show_at(rep, sec, r, "acceptance_rate", SHOW_PCT, b, sizeof(b)),
                med ? med : "-");
        }
    }
}

static void text_recycle(const lf_report_t *rep, FILE *fp)
{
    const PGresult *res = rep->res[SEC_RECYCLE];
    char a[64];

    fputs("\nTop recycle reasons\n", fp);
    if (!PQntuples(res))
        fputs("  (no recycles)\n", fp);
    else
        fprintf(fp, "  %-16s %8s  %6s\n", "reason", "recycles", "share");
    for (int r = 0; r < PQntuples(res) && r < 5; r++) {
        fputs("  ", fp);
        put_term(fp, get(res, r, "reason"), 16, 16);
        fprintf(fp, " %8s  %6s\n", get(res, r, "recycles"),
                show_at(rep, SEC_RECYCLE, r, "share", SHOW_PCT, a, sizeof(a)));
    }
}

static void text_revenue(const lf_report_t *rep, FILE *fp)
{
    const PGresult *res = rep->res[SEC_SOURCE_TOTAL];
    char c[64], d[64];

    fputs("\nWon revenue\n", fp);
    if (PQntuples(res))
        fprintf(fp, "  won %s of %s leads (%s)\n", get(res, 0, "won"),
                get(res, 0, "leads"),
                show_at(rep, SEC_SOURCE_TOTAL, 0, "won_rate", SHOW_PCT, c,
                        sizeof(c)));
    res = rep->res[SEC_REVENUE];
    for (int r = 0; r < PQntuples(res); r++) {
        const char *cur = get(res, r, "currency");
        fputs("  ", fp);
        put_term(fp, cur, 4, 8);
        fprintf(fp, " %18s\n",
                show_money(cur, get(res, r, "amount_minor"), d, sizeof(d)));
    }
}

/* The definition the numbers follow: "name" version V, sha256 H. */
static void text_definition(const lf_report_t *rep, FILE *fp)
{
    if (!PQntuples(rep->def)) {
        fputs("Funnel definition: none recorded\n", fp);
        return;
    }
    fputs("Funnel definition: ", fp);
    term_str(fp, PQgetvalue(rep->def, 0, 0));
    fprintf(fp, " version %s, sha256 %s\n", PQgetvalue(rep->def, 0, 1),
            PQgetvalue(rep->def, 0, 2));
    for (int r = 0; r < PQntuples(rep->labels); r++) {
        fputs(r ? ", " : "Stage labels: ", fp);
        term_str(fp, PQgetvalue(rep->labels, r, 1));
        fputs(" = ", fp);
        term_str(fp, PQgetvalue(rep->labels, r, 0));
        fputs(r + 1 < PQntuples(rep->labels) ? "" : "\n", fp);
    }
}

/* How a metric column reads: rates, shares and ROI as percentages, hours
 * with their unit, the rest as the view wrote it. */
static shape_t col_shape(const char *col)
{
    size_t n = strlen(col);
    if (!strcmp(col, "share") || !strcmp(col, "roi") ||
        (n > 5 && !strcmp(col + n - 5, "_rate")))
        return SHOW_PCT;
    if (strstr(col, "hours") && strcmp(col, "sla_hours"))
        return SHOW_HOURS;
    return SHOW_COUNT;
}

/* A section as a table: its keys (@p all for a NULL first key: a total
 * row; "-" for another NULL key), then
 * every metric as its column is named; at most @p max rows. */
static void text_table(const lf_report_t *rep, FILE *fp, section_t sec,
                       const char *title, const char *all, int max)
{
    const PGresult *res = rep->res[sec];
    int nk = sections[sec].nkeys, nf = PQnfields(res), w[32];
    char a[64];

    fprintf(fp, "\n%s\n", title);
    if (!PQntuples(res)) {
        fputs("  (none)\n", fp);
        return;
    }
    for (int c = 0; c < nf && c < 32; c++) {
        int n = (int)strlen(PQfname(res, c));
        w[c] = col_width(res, PQfname(res, c), n > 4 ? n : 4, 28);
        if (c >= nk && col_shape(PQfname(res, c)) != SHOW_COUNT)
            w[c] += 2;
    }
    fputs(" ", fp);
    for (int c = 0; c < nf && c < 32; c++)
        fprintf(fp, c < nk ? " %-*s" : " %*s", w[c], PQfname(res, c));
    fputc('\n', fp);
    for (int r = 0; r < PQntuples(res) && r < max; r++) {
        fputs(" ", fp);
        for (int c = 0; c < nf && c < 32; c++) {
            const char *v =
                PQgetisnull(res, r, c) ? NULL : PQgetvalue(res, r, c);
            fputc(' ', fp);
            if (c < nk)
                put_term(fp, v ? v : c ? "-" : all, w[c], w[c]);
            else if (PQftype(res, c) == 25) /* text: a producer's string */
                put_term(fp, v ? v : "-", w[c], w[c]);
            else
                fprintf(fp, "%*s", w[c],
                        show_at(rep, sec, r, PQfname(res, c),
                                col_shape(PQfname(res, c)), a, sizeof(a)));
        }
        fputc('\n', fp);
    }
    if (PQntuples(res) > max)
        fprintf(fp, "  ... %d more rows (CSV and JSON have them all)\n",
                PQntuples(res) - max);
}

static void text_money(const lf_report_t *rep, FILE *fp)
{
    text_table(rep, fp, SEC_PIPELINE,
               "Pipeline (owner / channel / campaign; amounts in minor units)",
               "all", 40);
    text_table(rep, fp, SEC_FLOWS, "Flows per month", "", 200);
    text_table(rep, fp, SEC_SCORES, "Score outcomes (deciding score bands)",
               "none", 60);
    text_table(rep, fp, SEC_CLOSE, "Why leads leave", "none", 20);
    text_table(rep, fp, SEC_BREACHES, "Open SLA breaches (most overdue)",
               "none", 20);
    text_table(rep, fp, SEC_RECYCLE_RESPONSE,
               "Recycle response (marketing's SLA)", "all", 20);
    text_table(rep, fp, SEC_ROI_CHANNEL,
               "ROI by channel (reporting currency, minor units)", "all", 40);
    text_table(rep, fp, SEC_ROI_CAMPAIGN, "ROI by campaign", "all", 60);
    text_table(rep, fp, SEC_ROI_MONTH, "ROI by month (channel / campaign)", "",
               60);
}

/* The top accounts by won revenue (per currency) and by leads. */
static void text_accounts(const lf_report_t *rep, FILE *fp)
{
    const PGresult *res = rep->res[SEC_ACCOUNTS_REVENUE];
    char d[64];

    fputs("\nTop accounts by won revenue\n", fp);
    if (!PQntuples(res))
        fputs("  (nothing won by an account)\n", fp);
    else
        fprintf(fp, "  %-24s %-4s %18s %6s %7s\n", "account", "cur",
                "won revenue", "won", "leads");
    for (int r = 0; r < PQntuples(res); r++) {
        const char *cur = get(res, r, "currency");
        fputs("  ", fp);
        put_term(fp, get(res, r, "account_id"), 24, 24);
        fputc(' ', fp);
        put_term(fp, cur, 4, 8);
        fprintf(fp, " %18s %6s %7s\n",
                show_money(cur, get(res, r, "amount_minor"), d, sizeof(d)),
                get(res, r, "won"), get(res, r, "leads"));
    }
    res = rep->res[SEC_ACCOUNTS_LEADS];
    fputs("\nTop accounts by leads\n", fp);
    if (!PQntuples(res))
        fputs("  (no lead has an account)\n", fp);
    else
        fprintf(fp, "  %-24s %7s %6s %7s %8s %6s %6s %18s\n", "account",
                "leads", "MQL", "handoff", "accepted", "SQL", "won",
                "won revenue");
    for (int r = 0; r < PQntuples(res); r++) {
        const char *cur = get(res, r, "currency"),
                   *rev = get(res, r, "won_revenue_reporting_minor");
        fputs("  ", fp);
        put_term(fp, get(res, r, "account_id"), 24, 24);
        fprintf(fp, " %7s %6s %7s %8s %6s %6s %18s\n", get(res, r, "leads"),
                get(res, r, "marketing_qualified"), get(res, r, "handed_off"),
                get(res, r, "sales_accepted"), get(res, r, "sales_qualified"),
                get(res, r, "won"),
                rev ? show_money(cur, rev, d, sizeof(d)) : "no rate");
    }
    if (PQntuples(res)) {
        const char *avg = get(res, 0, "avg_won_revenue_per_account_minor");
        fputs("  won revenue in ", fp);
        put_term(fp, get(res, 0, "currency"), 3, 8);
        fprintf(fp, "; average per account that won: %s\n",
                avg ? show_money(get(res, 0, "currency"), avg, d, sizeof(d))
                    : "-");
    }
}

static void write_text(const lf_report_t *rep, FILE *fp)
{
    fputs("Lead funnel report: ", fp);
    put_scope(fp, rep, term_str);
    fprintf(fp, "\nAs of %s\n", rep->generated_at);
    text_definition(rep, fp);
    text_stages(rep, fp);
    text_conversion(rep, fp);
    text_time(rep, fp);
    text_sla(rep, fp);
    text_recycle(rep, fp);
    text_revenue(rep, fp);
    text_money(rep, fp);
    text_accounts(rep, fp);
    text_table(rep, fp, SEC_IDENTITY,
               "Identity (merges that count, voided events, erasures, and "
               "their anomalies)",
               "", 1);
}

/* ---- CSV --------------------------------------------------------------- */

/* A CSV field (RFC 4180): quoted when it holds a comma, quote, CR or LF,
 * or starts or ends with a space; NULL is an empty field. */
static void put_csv(FILE *fp, const char *s)
{
    size_t n;
    if (!s)
        return;
    n = strlen(s);
    if (!strpbrk(s, ",\"\r\n") && !(n && (s[0] == ' ' || s[n - 1] == ' '))) {
        fputs(s, fp);
        return;
    }
    fputc('"', fp);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', fp);
        fputc(*s, fp);
    }
    fputc('"', fp);
}

/* The definition as three rows of section "definition" (not numbers of a
 * view: readers of the numbers skip that section). */
static void csv_definition(const lf_report_t *rep, FILE *fp)
{
    static const char *const metric[] = {"name", "version", "sha256"};
    for (int c = 0; PQntuples(rep->def) && c < 3; c++) {
        fprintf(fp, "definition,,,%s,", metric[c]);
        put_csv(fp, PQgetvalue(rep->def, 0, c));
        fputs("\r\n", fp);
    }
    for (int r = 0; r < PQntuples(rep->labels); r++) {
        fputs("definition,", fp);
        put_csv(fp, PQgetvalue(rep->labels, r, 0));
        fputs(",,label,", fp);
        put_csv(fp, PQgetvalue(rep->labels, r, 1));
        fputs("\r\n", fp);
    }
}

static void write_csv(const lf_report_t *rep, FILE *fp)
{
    fputs("section,key,key2,metric,value\r\n", fp);
    csv_definition(rep, fp);
    for (int i = 0; i < SEC__COUNT; i++) {
        const PGresult *res = rep->res[i];
        int nk = sections[i].nkeys;
        for (int r = 0; r < PQntuples(res); r++)
            for (int c = nk; c < PQnfields(res); c++) {
                fputs(sections[i].name, fp);
                fputc(',', fp);
                if (nk > 0 && !PQgetisnull(res, r, 0))
                    put_csv(fp, PQgetvalue(res, r, 0));
                fputc(',', fp);
                if (nk > 1 && !PQgetisnull(res, r, 1))
                    put_csv(fp, PQgetvalue(res, r, 1));
                fputc(',', fp);
                put_csv(fp, PQfname(res, c));
                fputc(',', fp);
                if (!PQgetisnull(res, r, c))
                    put_csv(fp, PQgetvalue(res, r, c));
                fputs("\r\n", fp);
            }
    }
}

/* ---- JSON -------------------------------------------------------------- */

/* Type OIDs (pg_type.dat); libpq clients may not include server headers. */
#define OID_BOOL    16
#define OID_INT8    20
#define OID_INT2    21
#define OID_INT4    23
#define OID_FLOAT4  700
#define OID_FLOAT8  701
#define OID_NUMERIC 1700

/* A number a double cannot hold exactly (a sum past 2^63, an ROI of more
 * than 15 digits: numeric since migration 021) goes into the tree as a
 * string under this mark, and write_json() writes its digits as they are.
 * The mark holds a random part, so no producer's string can be taken for
 * one. */
static char num_mark[48];

static void num_mark_init(void)
{
    char uuid[37];

    if (num_mark[0])
        return;
    lf_uuid_v4(uuid); /* getrandom(2) */
    snprintf(num_mark, sizeof(num_mark), "\001lfnum-%s:", uuid);
}

/* Is @p v a JSON number of more than 15 significant digits (what %.15g
 * would round)? */
static bool long_number(const char *v)
{
    const char *p = v + (*v == '-');
    int digits = 0;
    bool seen = false, point = false;

    if (!isdigit((unsigned char)*p))
        return false;
    for (; *p; p++) {
        if (*p == '.' && !point) {
            point = true;
            continue;
        }
        if (!isdigit((unsigned char)*p))
            return false;
        seen |= *p != '0';
        digits += seen;
    }
    return p[-1] != '.' && digits > 15;
}

/* One cell as JSON: numbers as numbers (integers and long numbers
 * exactly), NULL as null. */
static json_t *cell_json(const PGresult *res, int r, int c)
{
    const char *v = PQgetvalue(res, r, c);
    Oid t = PQftype(res, c);

    if (PQgetisnull(res, r, c))
        return json_null();
    if (t == OID_BOOL)
        return json_boolean(v[0] == 't');
    if (t == OID_INT2 || t == OID_INT4 || t == OID_INT8 || t == OID_NUMERIC ||
        t == OID_FLOAT4 || t == OID_FLOAT8) {
        char *end;
        if (!strpbrk(v, ".eEN")) {
            errno = 0;
            long long i = strtoll(v, &end, 10);
            if (!errno && !*end)
                return json_integer(i);
        }
        if (long_number(v)) {
            char buf[160];
            snprintf(buf, sizeof(buf), "%s%s", num_mark, v);
            if (strlen(v) < 100)
                return json_string(buf);
        }
        json_t *j = json_real(strtod(v, NULL));
        return j ? j : json_null(); /* NaN and infinities have no JSON */
    }
    return json_string(v);
}

static json_t *row_json(const PGresult *res, int r)
{
    json_t *o = json_object();
    for (int c = 0; o && c < PQnfields(res); c++)
        if (json_object_set_new(o, PQfname(res, c), cell_json(res, r, c))) {
            json_decref(o);
            return NULL;
        }
    return o;
}

/* "definition": {"name", "version", "sha256"}, or null when none is
 * recorded; "stage_labels": {stage: display name} (the definition's
 * labels, {} without any). @returns false when out of memory. */
static bool json_definition(const lf_report_t *rep, json_t *root)
{
    json_t *def = json_null(), *labels = json_object();
    if (PQntuples(rep->def))
        def = json_pack(
            "{s:s, s:I, s:s}", "name", PQgetvalue(rep->def, 0, 0), "version",
            (json_int_t)strtoll(PQgetvalue(rep->def, 0, 1), NULL, 10), "sha256",
            PQgetvalue(rep->def, 0, 2));
    for (int r = 0; labels && r < PQntuples(rep->labels); r++)
        if (json_object_set_new(labels, PQgetvalue(rep->labels, r, 0),
                                json_string(PQgetvalue(rep->labels, r, 1)))) {
            json_decref(labels);
            labels = NULL;
        }
    if (!def || !labels) {
        json_decref(def);
        json_decref(labels);
        return false;
    }
    if (json_object_set_new(root, "definition", def)) {
        json_decref(labels);
        return false;
    }
    return !json_object_set_new(root, "stage_labels", labels);
}

/* Write the dumped @p text with each marked number ("\u0001lfnum-...:DIGITS",
 * cell_json()) as its bare digits. */
static void put_json_numbers(FILE *fp, const char *text)
{
    char mark[64];
    const char *p = text, *hit;
    size_t mlen;

    /* as jansson writes it: '"', the control character escaped, the rest */
    snprintf(mark, sizeof(mark), "\"\\u0001%s", num_mark + 1);
    mlen = strlen(mark);
    while (num_mark[0] && (hit = strstr(p, mark))) {
        const char *digits = hit + mlen, *close = strchr(digits, '"');
        fwrite(p, 1, (size_t)(hit - p), fp);
        if (!close) /* cannot be: jansson closed the string */
            break;
        fwrite(digits, 1, (size_t)(close - digits), fp);
        p = close + 1;
    }
    fputs(p, fp);
}

static lf_err_t write_json(const lf_report_t *rep, FILE *fp)
{
    json_t *root = json_object(), *filter = json_object();
    bool ok = root && filter;

    num_mark_init();

    ok =
        ok &&
        !json_object_set_new(root, "generated_at",
                             json_string(rep->generated_at)) &&
        !json_object_set_new(
            filter, "from", rep->from ? json_string(rep->from) : json_null()) &&
        !json_object_set_new(filter, "to",
                             rep->to ? json_string(rep->to) : json_null()) &&
        !json_object_set_new(filter, "channel",
                             rep->channel ? json_string(rep->channel)
                                          : json_null()) &&
        !json_object_set(root, "filter", filter) && json_definition(rep, root);
    for (int i = 0; ok && i < SEC__COUNT; i++) {
        const PGresult *res = rep->res[i];
        json_t *v;
        if (sections[i].nkeys == 0) {
            v = PQntuples(res) ? row_json(res, 0) : json_null();
        } else {
            v = json_array();
            for (int r = 0; v && r < PQntuples(res); r++)
                if (json_array_append_new(v, row_json(res, r))) {
                    json_decref(v);
                    v = NULL;
                }
        }
        ok = v && !json_object_set_new(root, sections[i].name, v);
    }
    /* %.15g: a value of at most 15 significant digits prints as
     * PostgreSQL wrote it, 0.6923 and not 0.69230000000000003; longer ones
     * are marked strings (cell_json()), written here as their digits. A
     * write that failed (a full disk, a closed pipe) is left to
     * lf_report_write(), which finds it in ferror(fp) and says so. */
    char *text =
        ok ? json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(15)) : NULL;
    if (text) {
        put_json_numbers(fp, text);
        fputc('\n', fp);
    }
    ok = text != NULL;
    free(text);
    json_decref(filter);
    json_decref(root);
    return ok ? LF_OK : LF_ERR_NOMEM;
}

/* ---- HTML -------------------------------------------------------------- */

/* Escape for HTML text and attribute values; control characters other
 * than tab and newline become U+FFFD. */
static void put_html(FILE *fp, const char *s)
{
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '&':
            fputs("&amp;", fp);
            break;
        case '<':
            fputs("&lt;", fp);
            break;
        case '>':
            fputs("&gt;", fp);
            break;
        case '"':
            fputs("&quot;", fp);
            break;
        case '\'':
            fputs("&#39;", fp);
            break;
        default:
            if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
                fputs("\xEF\xBF\xBD", fp);
            else
                fputc(c, fp);
        }
    }
}

/* Up to @p max characters of @p s, escaped, with an ellipsis if cut. */
static void put_html_cut(FILE *fp, const char *s, int max)
{
    size_t i = 0;
    int n = 0;
    char buf[512];

    while (s[i] && n < max) {
        i++;
        while (((unsigned char)s[i] & 0xC0) == 0x80)
            i++;
        n++;
    }
    if (!s[i] || i >= sizeof(buf)) {
        put_html(fp, s);
        return;
    }
    memcpy(buf, s, i);
    buf[i] = '\0';
    put_html(fp, buf);
    fputs("\xE2\x80\xA6", fp);
}

/*
 * A number on the page: <tag data-section data-key data-key2 data-metric
 * data-value>shown</tag>. The data- attributes carry exactly what the CSV
 * row carries (section, key, key2, metric, the view's value), so a test or
 * a scraper can read every number back from the DOM.
 */
static void put_num(FILE *fp, const char *tag, const char *extra, section_t sec,
                    const char *key, const char *key2, const char *metric,
                    const char *value, const char *shown)
{
    fprintf(fp, "<%s%s%s data-section=\"%s\"", tag, extra ? " " : "",
            extra ? extra : "", sections[sec].name);
    if (key) {
        fputs(" data-key=\"", fp);
        put_html(fp, key);
        fputc('"', fp);
    }
    if (key2) {
        fputs(" data-key2=\"", fp);
        put_html(fp, key2);
        fputc('"', fp);
    }
    fprintf(fp, " data-metric=\"%s\" data-value=\"", metric);
    put_html(fp, value ? value : "");
    fputs("\">", fp);
    put_html(fp, shown);
    fprintf(fp, "</%s>", tag);
}

/* The same for a metric of row @p r of section @p sec, keyed as in CSV. */
static void put_metric(FILE *fp, const char *tag, const char *extra,
                       const lf_report_t *rep, section_t sec, int r,
                       const char *metric, shape_t shape)
{
    const PGresult *res = rep->res[sec];
    const char *key = NULL, *key2 = NULL, *v = get(res, r, metric);
    char buf[64];

    if (sections[sec].nkeys > 0 && !PQgetisnull(res, r, 0))
        key = PQgetvalue(res, r, 0);
    if (sections[sec].nkeys > 1 && !PQgetisnull(res, r, 1))
        key2 = PQgetvalue(res, r, 1);
    put_num(fp, tag, extra, sec, key, key2, metric, v,
            show_at(rep, sec, r, metric, shape, buf, sizeof(buf)));
}

/* The definition's label of @p stage, else the stage's name. */
static const char *defined_label(const lf_report_t *rep, const char *stage)
{
    for (int r = 0; r < PQntuples(rep->labels); r++)
        if (!strcmp(stage, PQgetvalue(rep->labels, r, 0)))
            return PQgetvalue(rep->labels, r, 1);
    return stage;
}

/* The name the funnel's charts show for @p stage: the definition's label,
 * else a short form of the stage's name. */
static const char *stage_label(const lf_report_t *rep, const char *stage)
{
    static const char *labels[][2] = {
        {"captured", "captured"},
        {"marketing_qualified", "MQL"},
        {"handed_off", "handed off"},
        {"sales_accepted", "accepted"},
        {"sales_qualified", "SQL"},
        {"won", "won"},
        {"lost", "lost"},
        {"nurture", "nurture"},
        {"disqualified", "disqualified"},
    };
    if (defined_label(rep, stage) != stage)
        return defined_label(rep, stage);
    for (size_t i = 0; i < sizeof(labels) / sizeof(*labels); i++)
        if (!strcmp(stage, labels[i][0]))
            return labels[i][1];
    return stage;
}

static void svg_open(FILE *fp, int w, int h, const char *label)
{
    fprintf(fp,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
            "width=\"%d\" height=\"%d\" role=\"img\" aria-label=\"",
            w, h, w, h);
    put_html(fp, label);
    fputs("\">\n", fp);
}

#define CHART_W 800

static void html_tiles(const lf_report_t *rep, FILE *fp)
{
    const PGresult *tot = rep->res[SEC_SOURCE_TOTAL];
    const PGresult *sla = rep->res[SEC_SLA_TOTAL];
    const PGresult *rev = rep->res[SEC_REVENUE];
    char buf[64];

    fputs("<div class=\"tiles\">\n", fp);
    if (PQntuples(tot)) {
        fputs("<div class=\"tile\"><div class=\"label\">Leads</div>", fp);
        put_metric(fp, "div", "class=\"big\"", rep, SEC_SOURCE_TOTAL, 0,
                   "leads", SHOW_COUNT);
        fputs("</div>\n<div class=\"tile\"><div class=\"label\">Won</div>", fp);
        put_metric(fp, "div", "class=\"big\"", rep, SEC_SOURCE_TOTAL, 0, "won",
                   SHOW_COUNT);
        fputs("</div>\n<div class=\"tile\"><div class=\"label\">Capture "
              "&rarr; won</div>",
              fp);
        put_metric(fp, "div", "class=\"big\"", rep, SEC_SOURCE_TOTAL, 0,
                   "won_rate", SHOW_PCT);
        fputs("</div>\n", fp);
    }
    if (PQntuples(sla)) {
        fputs("<div class=\"tile\"><div class=\"label\">Handoff SLA "
              "met</div>",
              fp);
        put_metric(fp, "div", "class=\"big\"", rep, SEC_SLA_TOTAL, 0,
                   "sla_met_rate", SHOW_PCT);
        fputs("</div>\n", fp);
    }
    for (int r = 0; r < PQntuples(rev); r++) {
        const char *cur = get(rev, r, "currency");
        fputs("<div class=\"tile\"><div class=\"label\">Won revenue, ", fp);
        put_html(fp, cur);
        fputs("</div>", fp);
        put_num(fp, "div", "class=\"big\"", SEC_REVENUE, cur, NULL,
                "amount_minor", get(rev, r, "amount_minor"),
                show_money(cur, get(rev, r, "amount_minor"), buf, sizeof(buf)));
        fputs("</div>\n", fp);
    }
    fputs("</div>\n", fp);
}

/* The funnel: one centred bar per step stage, as wide as the leads that
 * entered it, with the conversion to the next stage between the bars. */
static void html_funnel(const lf_report_t *rep, FILE *fp)
{
    const PGresult *res = rep->res[SEC_CONVERSION];
    int n = PQntuples(res), pitch = 58, top = 8, h;
    double max = 1;
    char buf[64];

    fputs("<section><h2>Funnel</h2>\n<p class=\"note\">Leads that ever "
          "entered each stage; between the bars, the share of them that "
          "went on to the next (view <code>funnel.conversion</code>).</p>\n",
          fp);
    if (!n) {
        fputs("<p>No leads.</p></section>\n", fp);
        return;
    }
    for (int r = 0; r < n; r++)
        if (num(get(res, r, "entered")) > max)
            max = num(get(res, r, "entered"));
    h = top + (n + 1) * pitch;
    svg_open(fp, CHART_W, h, "Funnel with stage-to-stage conversion");
    for (int i = 0; i <= n; i++) {
        /* Bar i is the from_stage of row i; the last is row n-1's to. */
        int r = i < n ? i : n - 1;
        const char *stage = get(res, r, i < n ? "from_stage" : "to_stage");
        const char *count = get(res, r, i < n ? "entered" : "reached");
        double bw = 480.0 * num(count) / max;
        int y = top + i * pitch;
        if (bw < 2)
            bw = 2;
        fprintf(fp,
                "<text x=\"150\" y=\"%d\" class=\"lbl\" "
                "text-anchor=\"end\">",
                y + 21);
        put_html(fp, stage_label(rep, stage));
        fprintf(fp,
                "</text>\n<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" "
                "height=\"32\" rx=\"3\" class=\"bar s%d\"/>\n",
                400 - bw / 2, y, bw, i);
        fprintf(fp, "<text x=\"650\" y=\"%d\" class=\"val\">", y + 21);
        put_metric(fp, "tspan", NULL, rep, SEC_CONVERSION, r,
                   i < n ? "entered" : "reached", SHOW_COUNT);
        fputs(count && !strcmp(count, "1") ? " lead</text>\n"
                                           : " leads</text>\n",
              fp);
        if (i < n) {
            fprintf(fp,
                    "<text x=\"400\" y=\"%d\" class=\"conv\" "
                    "text-anchor=\"middle\">&#8595; ",
                    y + 49);
            put_metric(fp, "tspan", "class=\"rate\"", rep, SEC_CONVERSION, r,
                       "rate", SHOW_PCT);
            fputs(" (", fp);
            put_metric(fp, "tspan", NULL, rep, SEC_CONVERSION, r, "reached",
                       SHOW_COUNT);
            fprintf(fp, " of %s)</text>\n",
                    show(SHOW_COUNT, get(res, r, "entered"), buf, sizeof(buf)));
        }
    }
    fputs("</svg></section>\n", fp);
}

/* Horizontal bars: label, bar scaled to the largest value, number. */
static void html_bars(const lf_report_t *rep, FILE *fp, section_t sec,
                      const char *label_col, const char *value_col,
                      const char *share_col, const char *aria)
{
    const PGresult *res = rep->res[sec];
    int n = PQntuples(res), pitch = 26;
    double max = 1;

    for (int r = 0; r < n; r++)
        if (num(get(res, r, value_col)) > max)
            max = num(get(res, r, value_col));
    svg_open(fp, CHART_W, 8 + n * pitch, aria);
    for (int r = 0; r < n; r++) {
        int y = 8 + r * pitch;
        double bw = 440.0 * num(get(res, r, value_col)) / max;
        fprintf(fp,
                "<text x=\"190\" y=\"%d\" class=\"lbl\" "
                "text-anchor=\"end\">",
                y + 14);
        /* (a stage by the definition's label, as the funnel has it) */
        put_html_cut(fp,
                     strcmp(label_col, "stage")
                         ? get(res, r, label_col)
                         : defined_label(rep, get(res, r, label_col)),
                     28);
        fprintf(fp,
                "</text>\n<rect x=\"200\" y=\"%d\" width=\"%.1f\" "
                "height=\"18\" rx=\"2\" class=\"bar\"/>\n<text x=\"%.1f\" "
                "y=\"%d\" class=\"val\">",
                y, bw < 1 ? 1 : bw, 208 + (bw < 1 ? 1 : bw), y + 14);
        put_metric(fp, "tspan", NULL, rep, sec, r, value_col, SHOW_COUNT);
        if (share_col) {
            fputs(" (", fp);
            put_metric(fp, "tspan", NULL, rep, sec, r, share_col, SHOW_PCT);
            fputs(")", fp);
        }
        fputs("</text>\n", fp);
    }
    fputs("</svg>\n", fp);
}

static void html_time(const lf_report_t *rep, FILE *fp)
{
    const PGresult *res = rep->res[SEC_TIME];
    int n = PQntuples(res), pitch = 44;
    double max = 1;

    fputs("<section><h2>Time in stage</h2>\n<p class=\"note\">Hours per "
          "visit that ended: median (dark) and 90th percentile (light); "
          "mean, visits and leads in the stage now beside them (view "
          "<code>funnel.time_in_stage</code>).</p>\n",
          fp);
    for (int r = 0; r < n; r++) {
        double p = num(get(res, r, "p90_hours"));
        if (p > max)
            max = p;
    }
    svg_open(fp, CHART_W, 8 + n * pitch, "Time in stage");
    for (int r = 0; r < n; r++) {
        int y = 8 + r * pitch;
        double m = 280.0 * num(get(res, r, "median_hours")) / max;
        double p = 280.0 * num(get(res, r, "p90_hours")) / max;
        fprintf(fp,
                "<text x=\"150\" y=\"%d\" class=\"lbl\" "
                "text-anchor=\"end\">",
                y + 17);
        put_html_cut(fp, defined_label(rep, get(res, r, "stage")), 22);
        fprintf(fp,
                "</text>\n<rect x=\"160\" y=\"%d\" width=\"%.1f\" "
                "height=\"12\" class=\"bar light\"/>\n<rect x=\"160\" "
                "y=\"%d\" width=\"%.1f\" height=\"12\" class=\"bar\"/>\n",
                y + 14, p, y + 2, m);
        fprintf(fp, "<text x=\"455\" y=\"%d\" class=\"val\">median ", y + 12);
        put_metric(fp, "tspan", NULL, rep, SEC_TIME, r, "median_hours",
                   SHOW_HOURS);
        fputs(" &#183; p90 ", fp);
        put_metric(fp, "tspan", NULL, rep, SEC_TIME, r, "p90_hours",
                   SHOW_HOURS);
        fputs(" &#183; mean ", fp);
        put_metric(fp, "tspan", NULL, rep, SEC_TIME, r, "mean_hours",
                   SHOW_HOURS);
        fprintf(fp, "</text>\n<text x=\"455\" y=\"%d\" class=\"sub\">", y + 28);
        put_metric(fp, "tspan", NULL, rep, SEC_TIME, r, "finished_visits",
                   SHOW_COUNT);
        fputs(" visits ended &#183; ", fp);
        put_metric(fp, "tspan", NULL, rep, SEC_TIME, r, "current_visits",
                   SHOW_COUNT);
        fputs(" in it now</text>\n", fp);
    }
    fputs("</svg></section>\n", fp);
}

/* A share 0..1 as a colour from pale grey-blue to deep blue. */
static void heat_colour(double share, char *buf, size_t size)
{
    static const int lo[3] = {0xee, 0xf2, 0xf7}, hi[3] = {0x1e, 0x40, 0xaf};
    int c[3];
    if (share < 0)
        share = 0;
    if (share > 1)
        share = 1;
    for (int i = 0; i < 3; i++)
        c[i] = lo[i] + (int)((hi[i] - lo[i]) * share);
    snprintf(buf, size, "#%02x%02x%02x", c[0], c[1], c[2]);
}

static void html_cohorts(const lf_report_t *rep, FILE *fp)
{
    const PGresult *res = rep->res[SEC_COHORTS];
    int n = PQntuples(res), months = 0, cols = 0, cw = 68, x0 = 150, rh = 30,
        top = 30;
    char colour[16];

    fputs("<section><h2>Cohorts</h2>\n<p class=\"note\">Per capture month "
          "(UTC): the leads captured and the share of them that ever "
          "reached each stage (view <code>funnel.cohorts</code>).</p>\n",
          fp);
    if (!n) {
        fputs("<p>No leads.</p></section>\n", fp);
        return;
    }
    /* Rows come month by month, each month with the same stages. */
    const char *first = get(res, 0, "capture_month");
    for (int r = 0; r < n && !strcmp(get(res, r, "capture_month"), first); r++)
        cols++;
    months = n / cols;
    svg_open(fp, x0 + cols * cw + 10, top + months * rh + 8, "Cohort heat map");
    fprintf(fp,
            "<text x=\"%d\" y=\"18\" class=\"hdr\" "
            "text-anchor=\"end\">leads</text>\n",
            x0 - 6);
    for (int c = 0; c < cols; c++) {
        fprintf(fp,
                "<text x=\"%d\" y=\"18\" class=\"hdr\" "
                "text-anchor=\"middle\">",
                x0 + c * cw + cw / 2);
        put_html(fp, stage_label(rep, get(res, c, "stage")));
        fputs("</text>\n", fp);
    }
    for (int m = 0; m < months; m++) {
        int y = top + m * rh, r0 = m * cols;
        const char *month = get(res, r0, "capture_month");
        fprintf(fp, "<text x=\"8\" y=\"%d\" class=\"lbl\">", y + 19);
        /* "2024-01-01" is shown as the month "2024-01". */
        fprintf(fp,
                "%.7s</text>\n<text x=\"%d\" y=\"%d\" class=\"val\" "
                "text-anchor=\"end\">",
                month, x0 - 6, y + 19);
        put_metric(fp, "tspan", NULL, rep, SEC_COHORTS, r0, "leads",
                   SHOW_COUNT);
        fputs("</text>\n", fp);
        for (int c = 0; c < cols && r0 + c < n; c++) {
            int r = r0 + c;
            double share = num(get(res, r, "share"));
            heat_colour(share, colour, sizeof(colour));
            fprintf(fp, "<g><title>%.7s: %s of %s leads reached ", month,
                    get(res, r, "reached"), get(res, r, "leads"));
            put_html(fp, get(res, r, "stage"));
            fprintf(fp,
                    "</title><rect x=\"%d\" y=\"%d\" width=\"%d\" "
                    "height=\"%d\" fill=\"%s\" class=\"cell\"/>"
                    "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" "
                    "class=\"%s\">",
                    x0 + c * cw, y, cw - 2, rh - 2, colour,
                    x0 + c * cw + cw / 2, y + 19,
                    share > 0.5 ? "cellv dark" : "cellv");
            put_metric(fp, "tspan", NULL, rep, SEC_COHORTS, r, "share",
                       SHOW_PCT);
            fputs("</text></g>\n", fp);
        }
    }
    fputs("</svg></section>\n", fp);
}

static void html_sla(const lf_report_t *rep, FILE *fp)
{
    int pitch = 46, n = 0, y;

    fputs("<section><h2>Handoff SLA by owner</h2>\n<p class=\"note\">Share "
          "of handoffs that sales answered (accepted, recycled or "
          "disqualified) within the SLA; open handoffs past it count as "
          "breached, open ones within it are left out (view "
          "<code>funnel.handoff_sla_by_owner</code>).</p>\n",
          fp);
    n = PQntuples(rep->res[SEC_SLA_OWNERS]) +
        PQntuples(rep->res[SEC_SLA_TOTAL]);
    if (!PQntuples(rep->res[SEC_SLA_OWNERS])) {
        fputs("<p>No handoffs.</p></section>\n", fp);
        return;
    }
    svg_open(fp, CHART_W, 8 + n * pitch, "Handoff SLA met by owner");
    y = 8;
    for (int pass = 0; pass < 2; pass++) {
        section_t sec = pass ? SEC_SLA_TOTAL : SEC_SLA_OWNERS;
        const PGresult *res = rep->res[sec];
        for (int r = 0; r < PQntuples(res); r++, y += pitch) {
            const char *rate = get(res, r, "sla_met_rate");
            double bw = 220.0 * num(rate);
            fprintf(fp,
                    "<text x=\"150\" y=\"%d\" class=\"lbl%s\" "
                    "text-anchor=\"end\">",
                    y + 15, pass ? " strong" : "");
            if (pass)
                fputs("all owners", fp);
            else
                put_html_cut(fp, get(res, r, "owner"), 20);
            fprintf(fp,
                    "</text>\n<rect x=\"160\" y=\"%d\" width=\"220\" "
                    "height=\"18\" rx=\"2\" class=\"track\"/>\n<rect "
                    "x=\"160\" y=\"%d\" width=\"%.1f\" height=\"18\" "
                    "rx=\"2\" class=\"bar%s\"/>\n",
                    y + 2, y + 2, bw, pass ? " total" : "");
            fprintf(fp, "<text x=\"390\" y=\"%d\" class=\"val\">", y + 15);
            put_metric(fp, "tspan", "class=\"rate\"", rep, sec, r,
                       "sla_met_rate", SHOW_PCT);
            fputs(" met: ", fp);
            put_metric(fp, "tspan", NULL, rep, sec, r, "sla_met", SHOW_COUNT);
            fputs(" on time, ", fp);
            put_metric(fp, "tspan", NULL, rep, sec, r, "sla_breached",
                       SHOW_COUNT);
            fputs(" late, ", fp);
            put_metric(fp, "tspan", NULL, rep, sec, r, "sla_pending",
                       SHOW_COUNT);
            fprintf(fp,
                    " pending</text>\n<text x=\"390\" y=\"%d\" "
                    "class=\"sub\">",
                    y + 32);
            put_metric(fp, "tspan", NULL, rep, sec, r, "handoffs", SHOW_COUNT);
            fputs(" handoffs &#183; ", fp);
            put_metric(fp, "tspan", NULL, rep, sec, r, "acceptance_rate",
                       SHOW_PCT);
            fputs(" accepted &#183; median ", fp);
            put_metric(fp, "tspan", NULL, rep, sec, r, "median_hours_to_accept",
                       SHOW_HOURS);
            fputs(" to accept</text>\n", fp);
        }
    }
    fputs("</svg></section>\n", fp);
}

/* A section as an HTML table: keys as text, every metric tagged. */
static void html_table(const lf_report_t *rep, FILE *fp, section_t sec,
                       const char *all, int max)
{
    const PGresult *res = rep->res[sec];
    int nk = sections[sec].nkeys, nf = PQnfields(res);

    if (!PQntuples(res)) {
        fputs("<p>None.</p>\n", fp);
        return;
    }
    fputs("<div class=\"scroll\"><table>\n<tr>", fp);
    for (int c = 0; c < nf; c++) {
        fputs("<th>", fp);
        put_html(fp, PQfname(res, c));
        fputs("</th>", fp);
    }
    fputs("</tr>\n", fp);
    for (int r = 0; r < PQntuples(res) && r < max; r++) {
        fputs("<tr>", fp);
        for (int c = 0; c < nf; c++) {
            const char *v = get(res, r, PQfname(res, c));
            if (c < nk) {
                fputs("<td>", fp);
                put_html_cut(fp, v ? v : c ? "-" : all, 40);
                fputs("</td>", fp);
            } else {
                put_metric(fp, "td", NULL, rep, sec, r, PQfname(res, c),
                           col_shape(PQfname(res, c)));
            }
        }
        fputs("</tr>\n", fp);
    }
    fputs("</table></div>\n", fp);
    if (PQntuples(res) > max)
        fprintf(fp, "<p class=\"note\">%d more rows in the CSV and JSON.</p>\n",
                PQntuples(res) - max);
}

/* One stage's line of the flows chart: its months left to right (@p dx
 * apart), the visits entering it scaled to @p max over @p h pixels, each
 * point labelled with its number; the months under the first line. */
static void flows_line(FILE *fp, const lf_report_t *rep, const char *stage,
                       size_t idx, double dx, double max, int h)
{
    const PGresult *res = rep->res[SEC_FLOWS];
    int m = 0;

    fprintf(fp, "<g class=\"line s%zu\"><polyline points=\"", idx);
    for (int r = 0; r < PQntuples(res); r++)
        if (!strcmp(get(res, r, "stage"), stage))
            fprintf(fp, "%.1f,%.1f ", 60 + dx * m++,
                    10 + h - h * num(get(res, r, "entered")) / max);
    fputs("\"/>", fp);
    m = 0;
    for (int r = 0; r < PQntuples(res); r++) {
        if (strcmp(get(res, r, "stage"), stage))
            continue;
        double x = 60 + dx * m++;
        double y = 10 + h - h * num(get(res, r, "entered")) / max;
        fprintf(fp, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\"/>", x, y);
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" class=\"sub\">", x + 4, y - 4);
        put_metric(fp, "tspan", NULL, rep, SEC_FLOWS, r, "entered", SHOW_COUNT);
        fputs("</text>", fp);
        if (idx == 0) {
            fprintf(fp,
                    "<text x=\"%.1f\" y=\"%d\" class=\"hdr\" "
                    "text-anchor=\"middle\">",
                    x, h + 30);
            put_html(fp, get(res, r, "month"));
            fputs("</text>", fp);
        }
    }
    fprintf(fp,
            "<rect x=\"%d\" y=\"%zu\" width=\"10\" height=\"10\"/>"
            "<text x=\"%d\" y=\"%zu\" class=\"lbl\">",
            CHART_W - 110, 11 + 18 * idx, CHART_W - 94, 20 + 18 * idx);
    put_html(fp, stage_label(rep, stage));
    fputs("</text></g>\n", fp);
}

/* Flows per month: a line per happy-path stage of the visits entering it,
 * each point carrying its number. */
static void html_flows(const lf_report_t *rep, FILE *fp)
{
    static const char *stages[] = {"captured", "marketing_qualified",
                                   "handed_off", "sales_qualified", "won"};
    const PGresult *res = rep->res[SEC_FLOWS];
    int months = 0, h = 220;
    double max = 1;

    fputs("<section><h2>Flows per month</h2>\n<p class=\"note\">Visits "
          "entering each stage per calendar month, UTC (view "
          "<code>funnel.flows</code>; <code>funnel.flows_by</code> gives "
          "days, weeks and quarters).</p>\n",
          fp);
    for (int r = 0; r < PQntuples(res); r++) {
        if (!strcmp(get(res, r, "stage"), "captured"))
            months++;
        if (num(get(res, r, "entered")) > max)
            max = num(get(res, r, "entered"));
    }
    if (months) {
        double dx = months > 1 ? 560.0 / (months - 1) : 0;
        svg_open(fp, CHART_W, h + 40, "Visits entering each stage per month");
        for (size_t s = 0; s < sizeof(stages) / sizeof(*stages); s++)
            flows_line(fp, rep, stages[s], s, dx, max, h);
        fputs("</svg>\n", fp);
    }
    html_table(rep, fp, SEC_FLOWS, "", 400);
    fputs("</section>\n", fp);
}

/* Score outcomes of the first model: leads per band as bars, acceptance
 * and won rates (of the handoffs) as dots, the threshold as a line. */
static void html_scores(const lf_report_t *rep, FILE *fp)
{
    const PGresult *res = rep->res[SEC_SCORES];
    const char *model = get(res, 0, "model");
    int h = 200, bands = 0;
    double max = 1;

    fputs("<section><h2>Score outcomes</h2>\n<p class=\"note\">Leads by "
          "the band of their deciding score (bars), the share of their "
          "handoffs sales accepted (blue dots) and won "
          "(green); the dashed line is the threshold. A band under it with "
          "a high acceptance says the threshold is too strict (view "
          "<code>funnel.score_outcomes</code>).</p>\n",
          fp);
    for (int r = 0; model && r < PQntuples(res); r++)
        if (get(res, r, "model") && !strcmp(get(res, r, "model"), model)) {
            bands++;
            if (num(get(res, r, "leads")) > max)
                max = num(get(res, r, "leads"));
        }
    if (bands) {
        double bw = 640.0 / 11;
        fputs("<p class=\"note\">The chart shows model <code>", fp);
        put_html(fp, model);
        fputs("</code>; the table under it lists every model.</p>\n", fp);
        svg_open(fp, CHART_W, h + 40, "Score outcomes per band");
        for (int r = 0, b = 0; r < PQntuples(res); r++) {
            if (!get(res, r, "model") || strcmp(get(res, r, "model"), model))
                continue;
            double band = num(get(res, r, "score_band"));
            double x = 60 + bw * (band / 10 > 10 ? 10 : band / 10);
            double lh = h * num(get(res, r, "leads")) / max;
            fprintf(fp,
                    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                    "height=\"%.1f\" class=\"bar light\"/>",
                    x + 2, 10 + h - lh, bw - 4, lh);
            fprintf(fp,
                    "<text x=\"%.1f\" y=\"%d\" class=\"hdr\" "
                    "text-anchor=\"middle\">",
                    x + bw / 2, h + 24);
            put_html(fp, get(res, r, "score_band"));
            fputs(" (", fp);
            put_metric(fp, "tspan", NULL, rep, SEC_SCORES, r, "leads",
                       SHOW_COUNT);
            fputs(")</text>", fp);
            if (get(res, r, "acceptance_rate"))
                fprintf(fp,
                        "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" "
                        "class=\"dot acc\"/>",
                        x + bw / 2,
                        10 + h - h * num(get(res, r, "acceptance_rate")));
            if (get(res, r, "won_rate"))
                fprintf(fp,
                        "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" "
                        "class=\"dot won\"/>",
                        x + bw / 2, 10 + h - h * num(get(res, r, "won_rate")));
            if (!b++ && get(res, r, "threshold")) {
                double tx = 60 + bw * num(get(res, r, "threshold")) / 10;
                fprintf(fp,
                        "<line x1=\"%.1f\" y1=\"4\" x2=\"%.1f\" "
                        "y2=\"%d\" class=\"threshold\"/><text x=\"%.1f\" "
                        "y=\"14\" class=\"lbl\">threshold ",
                        tx, tx, h + 12, tx + 4);
                put_metric(fp, "tspan", NULL, rep, SEC_SCORES, r, "threshold",
                           SHOW_COUNT);
                fputs("</text>", fp);
            }
            fputc('\n', fp);
        }
        fputs("</svg>\n", fp);
    }
    html_table(rep, fp, SEC_SCORES, "no score", 200);
    fputs("</section>\n", fp);
}

/* ROI by channel: cost and won revenue side by side, ROI beside them. */
static void html_roi(const lf_report_t *rep, FILE *fp)
{
    const PGresult *res = rep->res[SEC_ROI_CHANNEL];
    int n = PQntuples(res), pitch = 40;
    double max = 1;

    fputs("<section><h2>ROI by channel</h2>\n<p class=\"note\">Cost (dark) "
          "and won revenue (light) in the reporting currency, minor units, "
          "first-touch attribution; ROI = (revenue - cost) / cost (view "
          "<code>funnel.roi</code>; costs from "
          "<code>funnel_ref.campaign_costs</code>).</p>\n",
          fp);
    for (int r = 0; r < n; r++) {
        if (num(get(res, r, "cost_minor")) > max)
            max = num(get(res, r, "cost_minor"));
        if (num(get(res, r, "won_revenue_minor")) > max)
            max = num(get(res, r, "won_revenue_minor"));
    }
    if (n) {
        svg_open(fp, CHART_W, 8 + n * pitch, "Cost and won revenue by channel");
        for (int r = 0; r < n; r++) {
            int y = 8 + r * pitch;
            double cw = 400.0 * num(get(res, r, "cost_minor")) / max;
            double rw = 400.0 * num(get(res, r, "won_revenue_minor")) / max;
            const char *ch = get(res, r, "channel");
            fprintf(fp,
                    "<text x=\"150\" y=\"%d\" class=\"lbl\" "
                    "text-anchor=\"end\">",
                    y + 20);
            put_html_cut(fp, ch ? ch : "all channels", 22);
            fprintf(fp,
                    "</text><rect x=\"160\" y=\"%d\" width=\"%.1f\" "
                    "height=\"14\" class=\"bar\"/><rect x=\"160\" "
                    "y=\"%d\" width=\"%.1f\" height=\"14\" "
                    "class=\"bar light\"/><text x=\"%.1f\" y=\"%d\" "
                    "class=\"val\">ROI ",
                    y, cw < 1 ? 1 : cw, y + 16, rw < 1 ? 1 : rw,
                    170 + (cw > rw ? cw : rw), y + 20);
            put_metric(fp, "tspan", NULL, rep, SEC_ROI_CHANNEL, r, "roi",
                       SHOW_PCT);
            fputs("</text>\n", fp);
        }
        fputs("</svg>\n", fp);
    }
    html_table(rep, fp, SEC_ROI_CHANNEL, "all channels", 100);
    fputs("<h2>ROI by campaign</h2>\n", fp);
    html_table(rep, fp, SEC_ROI_CAMPAIGN, "", 200);
    fputs("<h2>ROI by month</h2>\n", fp);
    html_table(rep, fp, SEC_ROI_MONTH, "", 200);
    fputs("</section>\n", fp);
}

/* A titled section holding one table. */
static void html_table_section(const lf_report_t *rep, FILE *fp, section_t sec,
                               const char *title, const char *note,
                               const char *all, int max)
{
    fputs("<section><h2>", fp);
    put_html(fp, title);
    fputs("</h2>\n<p class=\"note\">", fp);
    fputs(note, fp);
    fputs("</p>\n", fp);
    html_table(rep, fp, sec, all, max);
    fputs("</section>\n", fp);
}

static void html_money(const lf_report_t *rep, FILE *fp)
{
    html_table_section(
        rep, fp, SEC_PIPELINE, "Pipeline",
        "Open opportunities (leads now in sales_qualified) and won leads, "
        "by owner / channel / campaign and currency, minor units (view "
        "<code>funnel.pipeline</code>).",
        "all", 200);
    html_flows(rep, fp);
    html_scores(rep, fp);
    html_table_section(rep, fp, SEC_CLOSE, "Why leads leave",
                       "Lost and disqualified reasons, normalised (view "
                       "<code>funnel.close_reasons</code>).",
                       "", 100);
    html_table_section(rep, fp, SEC_BREACHES, "Open SLA breaches",
                       "Handoffs still unanswered past their due time, most "
                       "overdue first, at most 50 (view "
                       "<code>funnel.open_sla_breaches</code>).",
                       "", 50);
    html_table_section(rep, fp, SEC_RECYCLE_RESPONSE, "Recycle response",
                       "Leads sales handed back: how many marketing "
                       "qualified again, how fast, and how many were won "
                       "(view <code>funnel.recycle_response</code>).",
                       "all reasons", 50);
    html_roi(rep, fp);
}

/* One row of an accounts table: the row's keys (the account, and the
 * currency where the section has it), then @p metrics of row @p r of
 * section @p sec, each a cell carrying its value; amount_minor is shown as
 * money in the row's currency. */
static void html_account_row(FILE *fp, const lf_report_t *rep, section_t sec,
                             int r, const char *const *metrics, int n)
{
    const PGresult *res = rep->res[sec];
    char d[64];

    fputs("<tr><th scope=\"row\">", fp);
    put_html_cut(fp, get(res, r, "account_id"), 32);
    fputs("</th>", fp);
    if (sections[sec].nkeys > 1) {
        fputs("<td>", fp);
        put_html(fp, get(res, r, "currency"));
        fputs("</td>", fp);
    }
    for (int i = 0; i < n; i++) {
        const char *v = get(res, r, metrics[i]);
        if (!strstr(metrics[i], "_minor")) {
            put_metric(fp, "td", NULL, rep, sec, r, metrics[i], SHOW_COUNT);
            continue;
        }
        put_num(fp, "td", NULL, sec, get(res, r, "account_id"),
                sections[sec].nkeys > 1 ? get(res, r, "currency") : NULL,
                metrics[i], v,
                v ? show_money(get(res, r, "currency"), v, d, sizeof(d))
                : strcmp(metrics[i], "won_revenue_reporting_minor")
                    ? "-"
                    : "no rate");
    }
    fputs("</tr>\n", fp);
}

/* The top accounts by won revenue (per currency) and by leads, as two
 * tables. */
static void html_accounts(const lf_report_t *rep, FILE *fp)
{
    static const char *by_revenue[] = {"amount_minor", "won", "leads"};
    static const char *by_leads[] = {
        "leads",           "marketing_qualified",
        "handed_off",      "sales_accepted",
        "sales_qualified", "won",
        "currency",        "won_revenue_reporting_minor",
        "missing_rates",   "avg_won_revenue_per_account_minor"};
    const PGresult *res = rep->res[SEC_ACCOUNTS_REVENUE];

    fputs("<section><h2>Top accounts</h2>\n<p class=\"note\">The accounts "
          "with the most won revenue, per currency, and with the most "
          "leads, with their won revenue in the reporting currency and the "
          "average over the accounts that won (view "
          "<code>funnel.accounts</code>).</p>\n",
          fp);
    if (!PQntuples(res))
        fputs("<p>Nothing won by an account.</p>\n", fp);
    else
        fputs("<table class=\"accounts\" id=\"accounts-by-revenue\">"
              "<tr><th>account</th><th>currency</th><th>won revenue</th>"
              "<th>won</th><th>leads</th></tr>\n",
              fp);
    for (int r = 0; r < PQntuples(res); r++)
        html_account_row(fp, rep, SEC_ACCOUNTS_REVENUE, r, by_revenue, 3);
    if (PQntuples(res))
        fputs("</table>\n", fp);
    res = rep->res[SEC_ACCOUNTS_LEADS];
    if (!PQntuples(res))
        fputs("<p>No lead has an account.</p>\n", fp);
    else
        fputs("<table class=\"accounts\" id=\"accounts-by-leads\">"
              "<tr><th>account</th><th>leads</th><th>MQL</th>"
              "<th>handed off</th><th>accepted</th><th>SQL</th>"
              "<th>won</th><th>currency</th><th>won revenue</th>"
              "<th>amounts without a rate</th><th>average per account"
              "</th></tr>\n",
              fp);
    for (int r = 0; r < PQntuples(res); r++)
        html_account_row(fp, rep, SEC_ACCOUNTS_LEADS, r, by_leads, 10);
    if (PQntuples(res))
        fputs("</table>\n", fp);
    fputs("</section>\n", fp);
}

static const char html_style[] =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,"
    "sans-serif;color:#1f2937;background:#f8fafc;margin:0}"
    "main{max-width:840px;margin:0 auto;padding:24px}"
    "h1{font-size:24px;margin:0 0 4px}h2{font-size:17px;margin:0 0 4px}"
    "section{background:#fff;border:1px solid #e2e8f0;border-radius:8px;"
    "padding:16px;margin:16px 0}"
    ".scope{color:#475569;margin:0}.note{color:#64748b;font-size:12px;"
    "margin:0 0 8px}code{font-size:12px}"
    ".tiles{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}"
    ".tile{background:#fff;border:1px solid #e2e8f0;border-radius:8px;"
    "padding:10px 16px;min-width:120px}"
    ".tile .label{color:#64748b;font-size:12px}"
    ".tile .big{font-size:24px;font-weight:600}"
    "svg{display:block;max-width:100%;height:auto}"
    "svg text{font:12px system-ui,sans-serif;fill:#1f2937}"
    "svg .lbl{fill:#334155}svg .strong{font-weight:600}"
    "svg .val{fill:#0f172a}svg .sub{fill:#64748b;font-size:11px}"
    "svg .conv{fill:#475569;font-size:11px}svg .rate{font-weight:600}"
    "svg .hdr{fill:#475569;font-size:11px}"
    ".bar{fill:#2563eb}.bar.light{fill:#93c5fd}.bar.total{fill:#0f766e}"
    ".track{fill:#e2e8f0}.cell{stroke:#fff}"
    ".s0{fill:#1e3a8a}.s1{fill:#1d4ed8}.s2{fill:#2563eb}.s3{fill:#3b82f6}"
    ".s4{fill:#60a5fa}.s5{fill:#059669}"
    "svg .cellv{font-size:11px;fill:#1f2937}svg .cellv.dark{fill:#fff}"
    "footer{color:#64748b;font-size:12px;margin:16px 0}"
    ".scroll{overflow-x:auto}table{border-collapse:collapse;font-size:12px;"
    "margin:8px 0}th,td{padding:2px 8px;text-align:right;border-bottom:1px "
    "solid #e2e8f0;white-space:nowrap}th{color:#475569;font-weight:500}"
    ".line polyline{fill:none;stroke-width:2}.line circle,.line text,"
    ".line rect{stroke:none}"
    ".line.s0{fill:#1e3a8a;stroke:#1e3a8a}.line.s1{fill:#2563eb;"
    "stroke:#2563eb}.line.s2{fill:#0891b2;stroke:#0891b2}.line.s3{fill:"
    "#7c3aed;stroke:#7c3aed}.line.s4{fill:#059669;stroke:#059669}"
    "svg .line text.lbl{fill:#334155}"
    ".dot.acc{fill:#2563eb}.dot.won{fill:#059669}"
    ".threshold{stroke:#dc2626;stroke-dasharray:4 3}";

/* " · definition "name" version V (sha256 H…)" for the scope line. */
static void html_definition(const lf_report_t *rep, FILE *fp)
{
    if (!PQntuples(rep->def))
        return;
    fputs(" &#183; definition <span id=\"definition\">", fp);
    put_html(fp, PQgetvalue(rep->def, 0, 0));
    fputs(" version ", fp);
    put_html(fp, PQgetvalue(rep->def, 0, 1));
    fputs(" (sha256 <code title=\"", fp);
    put_html(fp, PQgetvalue(rep->def, 0, 2));
    fputs("\">", fp);
    put_html_cut(fp, PQgetvalue(rep->def, 0, 2), 12);
    fputs("</code>)</span>", fp);
}

/* The agreement the numbers follow, as a table: one row per rule. */
static void html_rules(const lf_report_t *rep, FILE *fp)
{
    static const char *const head[] = {"Event", "From", "To", "Otherwise",
                                       "Qualifies when"};
    const PGresult *res = rep->rules;

    fputs("<section id=\"rules\"><h2>The rules</h2>\n<p class=\"note\">"
          "How leads move, as marketing and sales agreed it (view "
          "<code>funnel.rules</code>): a lead in a stage of <em>From</em> "
          "enters <em>To</em> on the event; in any other stage the event "
          "is <em>Otherwise</em>. A captured event brings a new lead in."
          "</p>\n<table class=\"rules\">\n<tr>",
          fp);
    for (int c = 0; c < 5; c++)
        fprintf(fp, "<th>%s</th>", head[c]);
    fputs("</tr>\n", fp);
    for (int r = 0; r < PQntuples(res); r++) {
        static const int col[] = {0, 1, 3, 4, 5};
        fputs("<tr>", fp);
        for (int c = 0; c < 5; c++) {
            fputs("<td>", fp);
            put_html(fp, PQgetisnull(res, r, col[c])
                             ? ""
                             : PQgetvalue(res, r, col[c]));
            fputs("</td>", fp);
        }
        fputs("</tr>\n", fp);
    }
    fputs("</table>\n", fp);
    if (PQntuples(rep->cycle) && !PQgetisnull(rep->cycle, 0, 0) &&
        !PQgetisnull(rep->cycle, 0, 1)) {
        fputs("<p class=\"note\">A new cycle starts with a visit to a stage of "
              "<em>",
              fp);
        put_html(fp, PQgetvalue(rep->cycle, 0, 1));
        fputs("</em> that directly follows a visit to a stage of <em>", fp);
        put_html(fp, PQgetvalue(rep->cycle, 0, 0));
        fputs("</em>.</p>\n", fp);
    }
    fputs("</section>\n", fp);
}

static void write_html(const lf_report_t *rep, FILE *fp)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta "
          "charset=\"utf-8\">\n<meta name=\"viewport\" "
          "content=\"width=device-width, initial-scale=1\">\n"
          /* Nothing is fetched: the page must work offline, and a
           * hostile owner or campaign name cannot make it load anything. */
          "<meta http-equiv=\"Content-Security-Policy\" "
          "content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
          "<title>leadflow funnel report</title>\n<style>",
          fp);
    fputs(html_style, fp);
    fputs("</style>\n</head>\n<body>\n<main>\n<h1>Lead funnel</h1>\n<p "
          "class=\"scope\">",
          fp);
    put_scope(fp, rep, put_html);
    fputs(" &#183; as of <span id=\"generated-at\">", fp);
    put_html(fp, rep->generated_at);
    fputs("</span>", fp);
    html_definition(rep, fp);
    fputs("</p>\n", fp);

    html_tiles(rep, fp);
    html_funnel(rep, fp);

    fputs("<section><h2>Leads by current stage</h2>\n<p class=\"note\">"
          "Where the leads stand now (view <code>funnel.stage_counts</code>)."
          "</p>\n",
          fp);
    html_bars(rep, fp, SEC_STAGES, "stage", "leads", "share",
              "Leads by current stage");
    fputs("</section>\n", fp);

    html_time(rep, fp);
    html_cohorts(rep, fp);
    html_sla(rep, fp);

    fputs("<section><h2>Recycle reasons</h2>\n<p class=\"note\">Why sales "
          "sent leads back to nurture (view "
          "<code>funnel.recycle_reasons</code>).</p>\n",
          fp);
    if (PQntuples(rep->res[SEC_RECYCLE]))
        html_bars(rep, fp, SEC_RECYCLE, "reason", "recycles", "share",
                  "Recycles by reason");
    else
        fputs("<p>No recycles.</p>\n", fp);
    fputs("</section>\n", fp);

    html_money(rep, fp);
    html_accounts(rep, fp);
    html_table_section(rep, fp, SEC_IDENTITY, "Identity",
                       "Merges that count, events voided, people erased, and "
                       "the anomalies of merged and voided events that do "
                       "not count (view <code>funnel.identity_summary</code>; "
                       "filtered: those of the leads in scope).",
                       "", 1);
    html_rules(rep, fp);

    fprintf(fp,
            "<footer>leadflow %s &#183; every number on this page is a "
            "value of a view in schema <code>funnel</code>, carried in "
            "its <code>data-value</code> attribute.</footer>\n"
            "</main>\n</body>\n</html>\n",
            LF_VERSION);
}

/* ---- dispatch ---------------------------------------------------------- */

lf_err_t lf_report_write(const lf_report_t *rep, lf_report_format_t fmt,
                         FILE *fp, char *errstr, size_t errstr_size)
{
    lf_err_t err = LF_OK;

    switch (fmt) {
    case LF_REPORT_TEXT:
        write_text(rep, fp);
        break;
    case LF_REPORT_CSV:
        write_csv(rep, fp);
        break;
    case LF_REPORT_JSON:
        err = write_json(rep, fp);
        break;
    case LF_REPORT_HTML:
        write_html(rep, fp);
        break;
    }
    if (err)
        return lf_seterr(err, errstr, errstr_size, "out of memory");
    if (fflush(fp) || ferror(fp))
        return lf_seterr(LF_ERR_IO, errstr, errstr_size, "write failed: %s",
                         strerror(errno));
    return LF_OK;
}
