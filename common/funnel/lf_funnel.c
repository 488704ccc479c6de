/* lf_funnel.c: the funnel state machine. The agreement between marketing
 * and sales is data, a definition (lf_definition.h): this file applies it. */
#include "lf_funnel.h"

#include "lf_definition.h"

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

#define S(st) LF_STAGE_BIT(st)

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
static lf_err_t enter(const lf_definition_t *def, lf_lead_t *lead,
                      lf_stage_t to, const lf_event_t *ev, lf_funnel_out_t *out)
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
        /* Leaving a stage of new_cycle.from (today nurture) for one of
         * new_cycle.to, another try, starts the next cycle. */
        if ((def->cycle_from & S(lead->stage)) && (def->cycle_to & S(to)))
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

/* The fields an event sets when it moves the lead (scored: always). */
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

static lf_err_t not_a_transition(const lf_lead_t *lead, const lf_event_t *ev,
                                 lf_funnel_out_t *out)
{
    return add_anomaly(out, ev, "%s is not a transition from stage %s",
                       lf_event_type_name(ev->type),
                       lf_stage_name(lead->stage));
}

/* scored always takes its score and model; it moves the lead only if the
 * score qualifies (a score that does not is a touch), and a qualifying
 * score from a stage outside `from` follows the rule's `otherwise`. */
static lf_err_t apply_scored(const lf_definition_t *def, lf_lead_t *lead,
                             const lf_event_t *ev, lf_funnel_out_t *out)
{
    const lf_rule_t *r = &def->rules[LF_EV_SCORED];
    lf_err_t err;

    if ((err = take_fields(lead, ev)))
        return err;
    if (ev->u.scored.score < lf_definition_threshold(def, ev->u.scored.model,
                                                     ev->u.scored.threshold))
        return LF_OK;
    if (r->from & S(lead->stage))
        return enter(def, lead, r->to, ev, out);
    if (r->otherwise == LF_OTHERWISE_TOUCH)
        return LF_OK;
    return not_a_transition(lead, ev, out);
}

lf_err_t lf_funnel_apply_def(const lf_definition_t *def, lf_lead_t *lead,
                             const lf_event_t *ev, lf_funnel_out_t *out)
{
    const lf_rule_t *r;
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
        return enter(def, lead, LF_ST_CAPTURED, ev, out);
    }
    /* captured on a known lead changes nothing; the identity types after
     * disqualified take no rule (they are handled before the funnel). */
    if (ev->type == LF_EV_CAPTURED || ev->type > LF_EV_DISQUALIFIED)
        return LF_OK;
    if (ev->type == LF_EV_SCORED)
        return apply_scored(def, lead, ev, out);
    r = &def->rules[ev->type];
    if (r->from & S(lead->stage)) {
        if ((err = take_fields(lead, ev)))
            return err;
        return enter(def, lead, r->to, ev, out);
    }
    if (r->otherwise == LF_OTHERWISE_TOUCH)
        return LF_OK; /* a touch changes nothing */
    return not_a_transition(lead, ev, out);
}

lf_err_t lf_funnel_apply(lf_lead_t *lead, const lf_event_t *ev,
                         lf_funnel_out_t *out)
{
    const lf_definition_t *def = lf_definition_default();
    if (!def)
        return LF_ERR_NOMEM;
    return lf_funnel_apply_def(def, lead, ev, out);
}

void lf_funnel_describe(lf_buf_t *out)
{
    const lf_definition_t *def = lf_definition_default();
    if (def)
        lf_definition_describe(def, out);
}
