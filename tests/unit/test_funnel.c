/* test_funnel.c: every row of the funnel transition table, each anomaly
 * case, cycles, visits and the lead's milestone columns. */
#include "lf_definition.h"
#include "lf_funnel.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXEV 16

/* An event from a short spec: "captured", "scored:80/50", "handed_off",
 * "accepted", "recycled", "qualified", "won", "lost", "disqualified". The
 * i-th event happens at minute i, with event_id "e<i>". */
static void make_event(lf_event_t *ev, const char *spec, int i)
{
    char type[32] = {0}, id[16];
    int score = 0, threshold = 0;

    lf_event_init(ev);
    sscanf(spec, "%31[a-z_]:%d/%d", type, &score, &threshold);
    snprintf(id, sizeof(id), "e%02d", i);
    ev->event_id = strdup(id);
    ev->lead_id = strdup("L-1");
    ev->source = strdup("test");
    ev->occurred_at = 1000000 + (int64_t)i * 60000;
    int t = lf_event_type_parse(type);
    cr_assert(t >= 0, "bad spec %s", spec);
    ev->type = (lf_event_type_t)t;
    switch (ev->type) {
    case LF_EV_CAPTURED:
        ev->u.captured.channel = strdup("web");
        break;
    case LF_EV_SCORED:
        ev->u.scored.score = score;
        ev->u.scored.threshold = threshold;
        ev->u.scored.model = strdup("m1");
        break;
    case LF_EV_HANDED_OFF:
        ev->u.handed_off.owner = strdup("rep-1");
        ev->u.handed_off.sla_hours = 24;
        break;
    case LF_EV_ACCEPTED:
        ev->u.accepted.owner = strdup("rep-2");
        break;
    case LF_EV_RECYCLED:
        ev->u.recycled.reason = LF_RR_NO_BUDGET;
        break;
    case LF_EV_QUALIFIED:
        ev->u.qualified.opportunity_id = strdup(id); /* e.g. "e04" */
        ev->u.qualified.amount_minor = 1000 * i;
        ev->u.qualified.currency = strdup(i % 2 ? "USD" : "EUR");
        break;
    case LF_EV_WON:
        ev->u.won.amount_minor = 12345;
        ev->u.won.currency = strdup("EUR");
        break;
    case LF_EV_LOST:
        ev->u.lost.reason = strdup("price");
        break;
    case LF_EV_DISQUALIFIED:
        ev->u.disqualified.reason = strdup("spam");
        break;
    default:
        break;
    }
}

/* The definition run_specs() applies; NULL: the embedded default. */
static const lf_definition_t *use_def;

typedef struct run_s {
    lf_lead_t lead;
    lf_event_t ev[MAXEV];
    int n;
    lf_funnel_out_t out; /* everything, accumulated */
    int anomalies;
    char last_anomaly[160];
} run_t;

/* Apply a ';'-separated list of specs; visits/anomalies accumulate. */
static void run_specs(run_t *r, const char *specs)
{
    char buf[512], *save = NULL;

    memset(r, 0, sizeof(*r));
    cr_assert_eq(lf_lead_init(&r->lead, "L-1"), LF_OK);
    snprintf(buf, sizeof(buf), "%s", specs);
    for (char *tok = strtok_r(buf, "; ", &save); tok;
         tok = strtok_r(NULL, "; ", &save)) {
        lf_funnel_out_t one = {0};
        make_event(&r->ev[r->n], tok, r->n);
        if (use_def)
            cr_assert_eq(
                lf_funnel_apply_def(use_def, &r->lead, &r->ev[r->n], &one),
                LF_OK);
        else
            cr_assert_eq(lf_funnel_apply(&r->lead, &r->ev[r->n], &one), LF_OK);
        for (size_t i = 0; i < one.visit_count; i++) {
            /* keep the latest row per visit number, as the projector does */
            size_t k;
            for (k = 0; k < r->out.visit_count; k++)
                if (r->out.visits[k].visit == one.visits[i].visit)
                    break;
            if (k == r->out.visit_count) {
                r->out.visits =
                    realloc(r->out.visits, (k + 1) * sizeof(lf_visit_t));
                r->out.visit_count++;
            }
            r->out.visits[k] = one.visits[i];
        }
        r->anomalies += (int)one.anomaly_count;
        if (one.anomaly_count)
            snprintf(r->last_anomaly, sizeof(r->last_anomaly), "%s",
                     one.anomalies[0].reason);
        lf_funnel_out_free(&one);
        r->n++;
    }
}

static void run_free(run_t *r)
{
    for (int i = 0; i < r->n; i++)
        lf_event_clear(&r->ev[i]);
    free(r->out.visits);
    lf_lead_clear(&r->lead);
}

/* The table: a history, the stage it ends in, the anomalies it makes. */
static const struct {
    const char *specs;
    const char *stage; /* "" = never captured */
    int anomalies;
    int cycle;
} cases[] = {
    /* the way in */
    {"captured", "captured", 0, 1},
    {"captured captured", "captured", 0, 1}, /* a touch */
    /* SCORED */
    {"captured scored:80/50", "marketing_qualified", 0, 1},
    {"captured scored:50/50", "marketing_qualified", 0, 1}, /* >= */
    {"captured scored:49/50", "captured", 0, 1},
    {"captured scored:80/50 scored:90/50", "marketing_qualified", 0, 1},
    {"captured handed_off recycled scored:80/50", "marketing_qualified", 0, 2},
    {"captured handed_off scored:80/50", "handed_off", 0, 1}, /* touch */
    /* HANDED_OFF from marketing_qualified, captured, nurture */
    {"captured scored:80/50 handed_off", "handed_off", 0, 1},
    {"captured handed_off", "handed_off", 0, 1},
    {"captured handed_off recycled handed_off", "handed_off", 0, 2},
    {"captured handed_off handed_off", "handed_off", 1, 1},
    {"captured handed_off accepted handed_off", "sales_accepted", 1, 1},
    /* ACCEPTED from handed_off only */
    {"captured handed_off accepted", "sales_accepted", 0, 1},
    {"captured accepted", "captured", 1, 1},
    {"captured scored:80/50 accepted", "marketing_qualified", 1, 1},
    /* RECYCLED from handed_off, sales_accepted, sales_qualified, lost */
    {"captured handed_off recycled", "nurture", 0, 1},
    {"captured handed_off accepted recycled", "nurture", 0, 1},
    {"captured handed_off accepted qualified recycled", "nurture", 0, 1},
    {"captured handed_off accepted lost recycled", "nurture", 0, 1},
    {"captured recycled", "captured", 1, 1},
    {"captured handed_off recycled recycled", "nurture", 1, 1},
    {"captured handed_off accepted qualified won recycled", "won", 1, 1},
    /* QUALIFIED from sales_accepted */
    {"captured handed_off accepted qualified", "sales_qualified", 0, 1},
    {"captured handed_off qualified", "handed_off", 1, 1},
    /* WON from sales_qualified */
    {"captured handed_off accepted qualified won", "won", 0, 1},
    {"captured handed_off accepted won", "sales_accepted", 1, 1},
    /* LOST from sales_accepted, sales_qualified */
    {"captured handed_off accepted lost", "lost", 0, 1},
    {"captured handed_off accepted qualified lost", "lost", 0, 1},
    {"captured handed_off lost", "handed_off", 1, 1},
    {"captured handed_off accepted qualified won lost", "won", 1, 1},
    /* DISQUALIFIED from anything but won and disqualified */
    {"captured disqualified", "disqualified", 0, 1},
    {"captured scored:80/50 disqualified", "disqualified", 0, 1},
    {"captured handed_off disqualified", "disqualified", 0, 1},
    {"captured handed_off accepted disqualified", "disqualified", 0, 1},
    {"captured handed_off accepted qualified disqualified", "disqualified", 0,
     1},
    {"captured handed_off accepted lost disqualified", "disqualified", 0, 1},
    {"captured handed_off recycled disqualified", "disqualified", 0, 1},
    {"captured handed_off accepted qualified won disqualified", "won", 1, 1},
    {"captured disqualified disqualified", "disqualified", 1, 1},
    {"captured disqualified handed_off", "disqualified", 1, 1},
    /* before the capture: anomalies, no lead */
    {"scored:80/50", "", 1, 0},
    {"handed_off accepted", "", 2, 0},
    {"accepted captured", "captured", 1, 1},
    /* cycles: leaving nurture for MQL or handoff starts the next */
    {"captured handed_off recycled handed_off recycled scored:90/10 "
     "handed_off",
     "handed_off", 0, 3},
};

Test(funnel, table)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_t r;
        run_specs(&r, cases[i].specs);
        cr_expect_str_eq(lf_stage_name(r.lead.stage), cases[i].stage,
                         "[%s] stage", cases[i].specs);
        cr_expect_eq(r.anomalies, cases[i].anomalies, "[%s] anomalies %d",
                     cases[i].specs, r.anomalies);
        cr_expect_eq(r.lead.cycle, cases[i].cycle, "[%s] cycle %d",
                     cases[i].specs, r.lead.cycle);
        run_free(&r);
    }
}

Test(funnel, anomaly_reasons_name_event_and_stage)
{
    run_t r;
    run_specs(&r, "captured accepted");
    cr_expect_str_eq(r.last_anomaly,
                     "accepted is not a transition from stage captured");
    run_free(&r);
    run_specs(&r, "won");
    cr_expect_str_eq(r.last_anomaly, "won before the lead's capture");
    run_free(&r);
}

Test(funnel, visits_and_exit_reasons)
{
    run_t r;
    /* e00 captured, e01 handed_off, e02 recycled, e03 handed_off (cycle 2),
     * e04 accepted, e05 lost */
    run_specs(&r, "captured handed_off recycled handed_off accepted lost");
    cr_assert_eq(r.out.visit_count, 6);
    static const struct {
        const char *stage, *by, *reason;
        int cycle;
        bool open;
    } want[] = {
        {"captured", "e00", NULL, 1, false},
        {"handed_off", "e01", "no_budget", 1, false},
        {"nurture", "e02", NULL, 1, false},
        {"handed_off", "e03", NULL, 2, false},
        {"sales_accepted", "e04", "price", 2, false},
        {"lost", "e05", NULL, 2, true},
    };
    for (int i = 0; i < 6; i++) {
        const lf_visit_t *v = &r.out.visits[i];
        cr_expect_eq(v->visit, i + 1);
        cr_expect_str_eq(lf_stage_name(v->stage), want[i].stage);
        cr_expect_str_eq(v->entered_by, want[i].by);
        cr_expect_eq(v->cycle, want[i].cycle, "visit %d cycle %d", i + 1,
                     v->cycle);
        cr_expect_eq(v->entered_at, 1000000 + (int64_t)i * 60000);
        if (want[i].open)
            cr_expect_eq(v->exited_at, LF_NO_TIME);
        else
            cr_expect_eq(v->exited_at, 1000000 + (int64_t)(i + 1) * 60000);
        if (want[i].reason)
            cr_expect_str_eq(v->exit_reason, want[i].reason);
        else
            cr_expect_null(v->exit_reason, "visit %d", i + 1);
    }
    cr_expect_eq(r.lead.visits, 6);
    run_free(&r);
}

Test(funnel, lead_columns)
{
    run_t r;
    /* minute: 0 captured, 1 scored 70/50 (MQL), 2 scored 30/50 (touch),
     * 3 handed_off, 4 accepted, 5 lost, 6 recycled, 7 handed_off,
     * 8 accepted, 9 qualified, 10 won */
    run_specs(&r, "captured scored:70/50 scored:30/50 handed_off accepted "
                  "lost recycled handed_off accepted qualified won");
    lf_lead_t *l = &r.lead;
    int64_t m = 60000, t0 = 1000000;
    cr_expect_str_eq(lf_stage_name(l->stage), "won");
    cr_expect_eq(l->score, 30); /* the last SCORED, even one that moved none */
    cr_expect_str_eq(l->score_model, "m1");
    cr_expect_str_eq(l->owner, "rep-2");
    cr_expect_str_eq(l->channel, "web");
    cr_expect_null(l->campaign);
    cr_expect_eq(l->captured_at, t0);
    cr_expect_eq(l->first_at[LF_ST_MARKETING_QUALIFIED], t0 + 1 * m);
    cr_expect_eq(l->first_at[LF_ST_HANDED_OFF], t0 + 3 * m);
    cr_expect_eq(l->first_at[LF_ST_SALES_ACCEPTED], t0 + 4 * m);
    cr_expect_eq(l->first_at[LF_ST_SALES_QUALIFIED], t0 + 9 * m);
    cr_expect_eq(l->last_at[LF_ST_LOST], t0 + 5 * m);
    cr_expect_eq(l->last_at[LF_ST_WON], t0 + 10 * m);
    cr_expect(l->has_won_amount);
    cr_expect_eq(l->won_amount_minor, 12345);
    cr_expect_str_eq(l->currency, "EUR");
    cr_expect_eq(l->cycle, 2);
    cr_expect_eq(l->last_event_at, t0 + 10 * m);
    cr_expect_str_eq(l->last_event_id, "e10");
    cr_expect_str_eq(l->stage_entered_by, "e10");
    run_free(&r);
}

Test(funnel, opportunity_of_the_latest_applied_qualified)
{
    run_t r;
    /* 0 captured, 1 scored (MQL), 2 handed_off, 3 accepted, 4 qualified,
     * 5 qualified again: an anomaly, not applied */
    run_specs(&r, "captured scored:70/50 handed_off accepted qualified "
                  "qualified");
    cr_expect_eq(r.anomalies, 1);
    cr_expect_str_eq(r.lead.opportunity_id, "e04");
    cr_expect(r.lead.has_opportunity_amount);
    cr_expect_eq(r.lead.opportunity_amount_minor, 4000);
    cr_expect_str_eq(r.lead.opportunity_currency, "EUR");
    run_free(&r);
    /* ... 6 recycled, 7 scored (MQL again), 8 handed_off, 9 accepted,
     * 10 qualified, 11 lost: the latest applied one, kept after lost */
    run_specs(&r, "captured scored:70/50 handed_off accepted qualified "
                  "qualified recycled scored:80/50 handed_off accepted "
                  "qualified lost");
    cr_expect_str_eq(lf_stage_name(r.lead.stage), "lost");
    cr_expect_str_eq(r.lead.opportunity_id, "e10");
    cr_expect_eq(r.lead.opportunity_amount_minor, 10000);
    cr_expect_str_eq(r.lead.opportunity_currency, "EUR");
    run_free(&r);
    /* never qualified: none */
    run_specs(&r, "captured scored:70/50 handed_off accepted");
    cr_expect_null(r.lead.opportunity_id);
    cr_expect_not(r.lead.has_opportunity_amount);
    cr_expect_null(r.lead.opportunity_currency);
    run_free(&r);
}

Test(funnel, anomalies_still_count_for_last_event_at)
{
    run_t r;
    run_specs(&r, "captured won");
    cr_expect_eq(r.lead.last_event_at, 1000000 + 60000);
    cr_expect_str_eq(r.lead.last_event_id, "e01");
    cr_expect_str_eq(lf_stage_name(r.lead.stage), "captured");
    run_free(&r);
}

Test(funnel, order_and_is_next)
{
    lf_lead_t l;
    lf_event_t a, b;
    cr_assert_eq(lf_lead_init(&l, "L-1"), LF_OK);
    make_event(&a, "captured", 5);
    make_event(&b, "handed_off", 5);
    cr_expect(lf_funnel_is_next(&l, &a), "an empty lead takes anything");
    l.last_event_at = a.occurred_at;
    l.last_event_id = strdup("e05");
    free(b.event_id);
    b.event_id = strdup("e06"); /* same instant, larger id: after */
    cr_expect(lf_funnel_is_next(&l, &b));
    free(b.event_id);
    b.event_id = strdup("e04"); /* same instant, smaller id: before */
    cr_expect_not(lf_funnel_is_next(&l, &b));
    cr_expect_eq(lf_event_order(1, "a", 2, "a"), -1);
    cr_expect_eq(lf_event_order(2, "a", 2, "b"), -1);
    cr_expect_eq(lf_event_order(2, "b", 2, "b"), 0);
    lf_event_clear(&a);
    lf_event_clear(&b);
    lf_lead_clear(&l);
}

Test(funnel, stage_names_round_trip)
{
    for (int s = 1; s < LF_ST__COUNT; s++)
        cr_expect_eq(lf_stage_parse(lf_stage_name((lf_stage_t)s)), s);
    cr_expect_eq(lf_stage_parse("bogus"), LF_ST_NONE);
}

/* A definition other than today's applies as written: a fixed threshold
 * (the event's own ignored), scored with otherwise anomaly (the score is
 * still taken), a rule into the current stage (a new visit), and cycles
 * that start on other stages. */
static const char *other_def =
    "{\"name\": \"other\", \"version\": 3,"
    " \"qualify\": {\"threshold\": {\"m1\": 70, \"*\": \"event\"}},"
    " \"rules\": ["
    "  {\"event\": \"scored\", \"from\": [\"captured\"],"
    "   \"to\": \"marketing_qualified\", \"otherwise\": \"anomaly\"},"
    "  {\"event\": \"handed_off\", \"from\": [\"handed_off\", \"lost\"],"
    "   \"to\": \"handed_off\", \"otherwise\": \"touch\"},"
    "  {\"event\": \"accepted\", \"from\": [\"marketing_qualified\"],"
    "   \"to\": \"sales_accepted\", \"otherwise\": \"anomaly\"},"
    "  {\"event\": \"recycled\", \"from\": [\"sales_accepted\"],"
    "   \"to\": \"nurture\", \"otherwise\": \"anomaly\"},"
    "  {\"event\": \"qualified\", \"from\": [\"sales_accepted\"],"
    "   \"to\": \"sales_qualified\", \"otherwise\": \"anomaly\"},"
    "  {\"event\": \"won\", \"from\": [\"sales_qualified\"],"
    "   \"to\": \"won\", \"otherwise\": \"anomaly\"},"
    "  {\"event\": \"lost\", \"from\": [\"sales_accepted\", \"nurture\"],"
    "   \"to\": \"lost\", \"otherwise\": \"anomaly\"},"
    "  {\"event\": \"disqualified\", \"from\": [\"captured\"],"
    "   \"to\": \"disqualified\", \"otherwise\": \"touch\"}],"
    " \"new_cycle\": {\"from\": [\"lost\"], \"to\": [\"handed_off\"]}}";

static const struct {
    const char *specs;
    const char *stage;
    int anomalies, cycle, visits, score;
} other_cases[] = {
    /* m1's threshold is 70 whatever the event says */
    {"captured scored:69/10", "captured", 0, 1, 1, 69},
    {"captured scored:70/99", "marketing_qualified", 0, 1, 2, 70},
    /* qualifying from outside `from`: anomaly, the score still taken */
    {"captured scored:80/0 scored:90/0", "marketing_qualified", 1, 1, 2, 90},
    /* not qualifying from outside `from`: always a touch */
    {"captured scored:80/0 scored:10/0", "marketing_qualified", 0, 1, 2, 10},
    /* handed_off: touch from captured; into itself is a new visit */
    {"captured handed_off", "captured", 0, 1, 1, -1},
    {"captured scored:80/0 accepted lost handed_off handed_off", "handed_off",
     0, 2, 6, 80},
    /* recycled, then lost from nurture: no new cycle (lost is not
     * handed_off); a disqualified from won is a touch */
    {"captured scored:80/0 accepted recycled lost", "lost", 0, 1, 5, 80},
    {"captured scored:80/0 accepted disqualified", "sales_accepted", 0, 1, 3,
     80},
    {"captured disqualified", "disqualified", 0, 1, 2, -1},
};

Test(funnel, other_definition)
{
    char errstr[256];
    lf_definition_t *def = lf_definition_parse(other_def, strlen(other_def),
                                               errstr, sizeof(errstr));
    cr_assert_not_null(def, "%s", errstr);
    use_def = def;
    for (size_t i = 0; i < sizeof(other_cases) / sizeof(other_cases[0]); i++) {
        run_t r;
        run_specs(&r, other_cases[i].specs);
        cr_expect_str_eq(lf_stage_name(r.lead.stage), other_cases[i].stage,
                         "[%s] stage", other_cases[i].specs);
        cr_expect_eq(r.anomalies, other_cases[i].anomalies, "[%s] anomalies %d",
                     other_cases[i].specs, r.anomalies);
        cr_expect_eq(r.lead.cycle, other_cases[i].cycle, "[%s] cycle %d",
                     other_cases[i].specs, r.lead.cycle);
        cr_expect_eq(r.lead.visits, other_cases[i].visits, "[%s] visits %d",
                     other_cases[i].specs, r.lead.visits);
        cr_expect_eq(r.lead.has_score ? r.lead.score : -1, other_cases[i].score,
                     "[%s] score", other_cases[i].specs);
        run_free(&r);
    }
    use_def = NULL;
    lf_definition_destroy(def);
}
