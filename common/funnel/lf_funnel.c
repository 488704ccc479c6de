/* lf_funnel.c: the funnel state machine. The table below is the agreement
 * between marketing and sales; read it as one. */
#include "lf_funnel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *stage_names[LF_ST__COUNT] = {"",
                                                "captured",
                                                "marketing_qualified",
                                                "handed_off",
                                                "sales_accepted",
                                                "sales_qualified",
                                                "won",
                                                "lost",
                                                "nurture",
                                                "disqualified"};

#define S(st) (1u << (st))
/* What an event does to a captured lead in a stage outside `from`. */
typedef enum otherwise_e {
    TOUCH,   /* a valid event that changes no stage */
    ANOMALY, /* stored, listed in funnel.anomalies, changes nothing */
} otherwise_t;

/* Short names, so that each rule below fits on one line. */
#define CAP  S(LF_ST_CAPTURED)
#define MQL  S(LF_ST_MARKETING_QUALIFIED)
#define HO   S(LF_ST_HANDED_OFF)
#define SAL  S(LF_ST_SALES_ACCEPTED)
#define SQL  S(LF_ST_SALES_QUALIFIED)
#define WON  S(LF_ST_WON)
#define LOST S(LF_ST_LOST)
#define NUR  S(LF_ST_NURTURE)
#define DQ   S(LF_ST_DISQUALIFIED)

/* One row per event type. CAPTURED on an unknown lead is the one way in
 * (handled before the table); every other event on an unknown lead is an
 * anomaly. SCORED moves only when score >= threshold (needs_qualifying).
 * An event whose lead is in a stage of `from` enters `to` (a new visit);
 * from any other stage it is `otherwise`. */
static const struct transition_s {
    lf_event_type_t type;
    unsigned from; /* stages it leaves */
    lf_stage_t to;
    bool needs_qualifying;
    otherwise_t otherwise;
} transitions[LF_EV__COUNT] = {
    /* clang-format off */
/*   event                from                                      to                          qualify otherwise */
    {LF_EV_CAPTURED,      0,                                        LF_ST_NONE,                 false,  TOUCH},
    {LF_EV_SCORED,        CAP | NUR,                                LF_ST_MARKETING_QUALIFIED,  true,   TOUCH},
    {LF_EV_HANDED_OFF,    MQL | CAP | NUR,                          LF_ST_HANDED_OFF,           false,  ANOMALY},
    {LF_EV_ACCEPTED,      HO,                                       LF_ST_SALES_ACCEPTED,       false,  ANOMALY},
    {LF_EV_RECYCLED,      HO | SAL | SQL | LOST,                    LF_ST_NURTURE,              false,  ANOMALY},
    {LF_EV_QUALIFIED,     SAL,                                      LF_ST_SALES_QUALIFIED,      false,  ANOMALY},
    {LF_EV_WON,           SQL,                                      LF_ST_WON,                  false,  ANOMALY},
    {LF_EV_LOST,          SAL | SQL,                                LF_ST_LOST,                 false,  ANOMALY},
    {LF_EV_DISQUALIFIED,  CAP | MQL | HO | SAL | SQL | LOST | NUR,  LF_ST_DISQUALIFIED,         false,  ANOMALY},
    /* clang-format on */
};

#undef CAP
#undef MQL
#undef HO
#undef SAL
#undef SQL
#undef WON
#undef LOST
#undef NUR
#undef DQ

const char *lf_stage_name(lf_stage_t st)
{
    return (unsigned)st < LF_ST__COUNT ? stage_names[st] : "";
}

lf_stage_t lf_stage_parse(const char *name)
{
    for (int i = 1; i < LF_ST__COUNT; i++)
        if (!strcmp(name, stage_names[i]))
            return (lf_stage_t)i;
    return LF_ST_NONE;
}

void lf_funnel_out_reset(lf_funnel_out_t *out)
{
    out->visit_count = 0;
    out->anomaly_count = 0;
}

void lf_funnel_out_free(lf_funnel_out_t *out)
{
    free(out->visits);
    free(out->anomalies);
    memset(out, 0, sizeof(*out));
}

lf_err_t lf_lead_init(lf_lead_t *lead, const char *lead_id)
{
    memset(lead, 0, sizeof(*lead));
    lead->stage_entered_at = lead->captured_at = LF_NO_TIME;
    lead->last_event_at = LF_NO_TIME;
    for (int i = 0; i < LF_ST__COUNT; i++)
        lead->first_at[i] = lead->last_at[i] = LF_NO_TIME;
    if (!(lead->lead_id = strdup(lead_id)))
        return LF_ERR_NOMEM;
    return LF_OK;
}

void lf_lead_clear(lf_lead_t *lead)
{
    if (!lead)
        return;
    free(lead->lead_id);
    free(lead->stage_entered_by);
    free(lead->score_model);
    free(lead->owner);
    free(lead->channel);
    free(lead->campaign);
    free(lead->currency);
    free(lead->opportunity_id);
    free(lead->opportunity_currency);
    free(lead->last_event_id);
    memset(lead, 0, sizeof(*lead));
}

int lf_event_order(int64_t at_a, const char *id_a, int64_t at_b,
                   const char *id_b)
{
    int c;
    if (at_a != at_b)
        return at_a < at_b ? -1 : 1;
    c = strcmp(id_a, id_b);
    return c < 0 ? -1 : c > 0;
}

bool lf_funnel_is_next(const lf_lead_t *lead, const lf_event_t *ev)
{
    if (!lead->last_event_id)
        return true;
    return lf_event_order(ev->occurred_at, ev->event_id, lead->last_event_at,
                          lead->last_event_id) > 0;
}

/* Replace *dst with a copy of src (NULL allowed). */
static lf_err_t set_str(char **dst, const char *src)
{
    char *c = NULL;
    if (src && !(c = strdup(src)))
        return LF_ERR_NOMEM;
    free(*dst);
    *dst = c;
    return LF_OK;
}

static lf_err_t add_anomaly(lf_funnel_out_t *out, const lf_event_t *ev,
                            const char *fmt, const char *a, const char *b)
{
    if (out->anomaly_count == out->anomaly_cap) {
        size_t cap = out->anomaly_cap ? out->anomaly_cap * 2 : 16;
        lf_anomaly_t *n = realloc(out->anomalies, cap * sizeof(*n));
        if (!n)
            return LF_ERR_NOMEM;
        out->anomalies = n;
        out->anomaly_cap = cap;
    }
    lf_anomaly_t *an = &out->anomalies[out->anomaly_count++];
    an->event_id = ev->event_id;
    snprintf(an->reason, sizeof(an->reason), fmt, a, b);
    return LF_OK;
}

static lf_visit_t *add_visit(lf_funnel_out_t *out)
{
    if (out->visit_count == out->visit_cap) {
        size_t cap = out->visit_cap ? out->visit_cap * 2 : 16;
        lf_visit_t *n = realloc(out->visits, cap * sizeof(*n));
        if (!n)
            return NULL;
        out->visits = n;
        out->visit_cap = cap;
    }
    return &out->visits[out->visit_count++];
}

/* Why a visit ended, for stage_history.exit_reason. */
static const char *exit_reason_of(const lf_event_t *ev)
{
    switch (ev->type) {
    case LF_EV_RECYCLED:
        return lf_recycle_reason_name(ev->u.recycled.reason);
    case LF_EV_LOST:
        return ev->u.lost.reason;
    case LF_EV_DISQUALIFIED:
        return ev->u.disqualified.reason;
    default:
        return NULL;
    }
}

/* Move the lead into stage `to` at ev: close the current visit, open one. */
static lf_err_t enter(lf_lead_t *lead, lf_stage_t to, const lf_event_t *ev,
                      lf_funnel_out_t *out)
{
    lf_visit_t *v;

    if (lead->stage != LF_ST_NONE) {
        if (!(v = add_visit(out)))
            return LF_ERR_NOMEM;
        v->visit = lead->visits;
        v->cycle = lead->cycle;
        v->stage = lead->stage;
        v->entered_at = lead->stage_entered_at;
        v->exited_at = ev->occurred_at;
        snprintf(v->entered_by, sizeof(v->entered_by), "%s",
                 lead->stage_entered_by);
        v->exit_reason = exit_reason_of(ev);
        /* Leaving nurture for another try starts the next cycle. */
        if (lead->stage == LF_ST_NURTURE &&
            (to == LF_ST_MARKETING_QUALIFIED || to == LF_ST_HANDED_OFF))
            lead->cycle++;
    } else {
        lead->cycle = 1;
    }
    lead->visits++;
    lead->stage = to;
    lead->stage_entered_at = ev->occurred_at;
    if (set_str(&lead->stage_entered_by, ev->event_id))
        return LF_ERR_NOMEM;
    if (lead->first_at[to] == LF_NO_TIME)
        lead->first_at[to] = ev->occurred_at;
    lead->last_at[to] = ev->occurred_at;
    if (!(v = add_visit(out)))
        return LF_ERR_NOMEM;
    v->visit = lead->visits;
    v->cycle = lead->cycle;
    v->stage = to;
    v->entered_at = ev->occurred_at;
    v->exited_at = LF_NO_TIME;
    snprintf(v->entered_by, sizeof(v->entered_by), "%s", ev->event_id);
    v->exit_reason = NULL;
    return LF_OK;
}

/* The fields an accepted event sets, whether or not it moves the lead. */
static lf_err_t take_fields(lf_lead_t *lead, const lf_event_t *ev)
{
    lf_err_t err;

    switch (ev->type) {
    case LF_EV_SCORED:
        lead->has_score = true;
        lead->score = ev->u.scored.score;
        return set_str(&lead->score_model, ev->u.scored.model);
    case LF_EV_HANDED_OFF:
        return set_str(&lead->owner, ev->u.handed_off.owner);
    case LF_EV_ACCEPTED:
        return set_str(&lead->owner, ev->u.accepted.owner);
    case LF_EV_QUALIFIED:
        lead->has_opportunity_amount = true;
        lead->opportunity_amount_minor = ev->u.qualified.amount_minor;
        if ((err = set_str(&lead->opportunity_id,
                           ev->u.qualified.opportunity_id)))
            return err;
        return set_str(&lead->opportunity_currency, ev->u.qualified.currency);
    case LF_EV_WON:
        lead->has_won_amount = true;
        lead->won_amount_minor = ev->u.won.amount_minor;
        return set_str(&lead->currency, ev->u.won.currency);
    default:
        return LF_OK;
    }
}

lf_err_t lf_funnel_apply(lf_lead_t *lead, const lf_event_t *ev,
                         lf_funnel_out_t *out)
{
    const struct transition_s *t = &transitions[ev->type];
    lf_err_t err;

    /* Every event counts for last_event_at, fitting or not. */
    if (lf_funnel_is_next(lead, ev)) {
        lead->last_event_at = ev->occurred_at;
        if ((err = set_str(&lead->last_event_id, ev->event_id)))
            return err;
    }

    if (lead->stage == LF_ST_NONE) {
        if (ev->type != LF_EV_CAPTURED)
            return add_anomaly(out, ev, "%s before the lead's capture",
                               lf_event_type_name(ev->type), "");
        lead->captured_at = ev->occurred_at;
        if ((err = set_str(&lead->channel, ev->u.captured.channel)) ||
            (err = set_str(&lead->campaign, ev->u.captured.campaign)))
            return err;
        return enter(lead, LF_ST_CAPTURED, ev, out);
    }

    if ((t->from & S(lead->stage)) &&
        (!t->needs_qualifying ||
         ev->u.scored.score >= ev->u.scored.threshold)) {
        if ((err = take_fields(lead, ev)))
            return err;
        return enter(lead, t->to, ev, out);
    }
    if (t->otherwise == TOUCH)
        return take_fields(lead, ev);
    return add_anomaly(out, ev, "%s is not a transition from stage %s",
                       lf_event_type_name(ev->type),
                       lf_stage_name(lead->stage));
}

void lf_funnel_describe(lf_buf_t *out)
{
    lf_buf_puts(out, "  captured      unknown lead -> captured "
                     "(a known lead: a touch)\n");
    for (int e = 1; e < LF_EV__COUNT; e++) {
        const struct transition_s *t = &transitions[e];
        bool first = true;
        lf_buf_printf(out, "  %-13s ", lf_event_type_name(t->type));
        for (int s = 1; s < LF_ST__COUNT; s++)
            if (t->from & S(s)) {
                lf_buf_printf(out, "%s%s", first ? "" : ", ", stage_names[s]);
                first = false;
            }
        lf_buf_printf(out, " -> %s%s (otherwise: %s)\n", stage_names[t->to],
                      t->needs_qualifying ? " if score >= threshold" : "",
                      t->otherwise == TOUCH ? "no stage change" : "anomaly");
    }
}
