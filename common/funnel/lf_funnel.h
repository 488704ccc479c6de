/* lf_funnel.h: the funnel state machine: a pure function that applies a
 * lead's events in (occurred_at, event_id) order to its state under a
 * definition, the teams' agreement as data (lf_definition.h; today's is
 * schemas/funnel/default.json, embedded). No I/O here: the projector and
 * the rebuild both call it, and the unit tests check every rule. */
#ifndef LF_FUNNEL_H
#define LF_FUNNEL_H

#include "lf_buf.h"
#include "lf_event.h"

#include <stdbool.h>

typedef enum lf_stage_e {
    LF_ST_NONE = 0, /**< not captured yet */
    LF_ST_CAPTURED,
    LF_ST_MARKETING_QUALIFIED,
    LF_ST_HANDED_OFF,
    LF_ST_SALES_ACCEPTED,
    LF_ST_SALES_QUALIFIED,
    LF_ST_WON,
    LF_ST_LOST,
    LF_ST_NURTURE,
    LF_ST_DISQUALIFIED,
    LF_ST__COUNT
} lf_stage_t;

#define LF_NO_TIME INT64_MIN /**< a NULL timestamp */

/** A funnel definition: the rules (lf_definition.h). */
typedef struct lf_definition_s lf_definition_t;

/** "captured", "marketing_qualified", ...; "" for LF_ST_NONE. Static. */
const char *lf_stage_name(lf_stage_t st);
/** The stage named @p name, or LF_ST_NONE. */
lf_stage_t lf_stage_parse(const char *name);

/**
 * One lead's state: the columns of funnel.leads plus the bookkeeping to
 * continue from it. Strings are heap copies owned by the state and freed by
 * lf_lead_clear(). Timestamps are ms since the epoch or LF_NO_TIME.
 */
typedef struct lf_lead_s {
    char *lead_id;
    lf_stage_t stage; /**< LF_ST_NONE until captured: then no row exists */
    int64_t stage_entered_at;
    char *stage_entered_by;
    int32_t cycle;
    int32_t visits; /**< visits so far; the current one is number visits */
    bool has_score;
    int32_t score;
    char *score_model;
    char *owner, *channel, *campaign;
    int64_t captured_at;
    int64_t first_at[LF_ST__COUNT]; /**< first entry into each stage */
    int64_t last_at[LF_ST__COUNT];  /**< last entry into each stage */
    bool has_won_amount;
    int64_t won_amount_minor;
    char *currency;
    /** The opportunity of the latest applied qualified event; NULL/false
     *  before one. */
    char *opportunity_id;
    bool has_opportunity_amount;
    int64_t opportunity_amount_minor;
    char *opportunity_currency;
    int64_t last_event_at; /**< latest occurred_at of any event */
    char *last_event_id;   /**< its event_id (ties broken by event_id) */
} lf_lead_t;

/** One row of funnel.stage_history. exit_reason points into the event that
 *  ended the visit (or is static): valid while that event is. */
typedef struct lf_visit_s {
    int32_t visit;
    int32_t cycle;
    lf_stage_t stage;
    int64_t entered_at;
    int64_t exited_at; /**< LF_NO_TIME while current */
    char entered_by[LF_EVENT_ID_MAX + 1];
    const char *exit_reason; /**< NULL unless ended by recycle/lost/disq. */
} lf_visit_t;

/** An event kept but not fitting the machine. */
typedef struct lf_anomaly_s {
    const char *event_id;
    char reason[160];
} lf_anomaly_t;

/** What applying events produced: visits to write (new ones, and the one
 *  that was current when it has now ended) and anomalies. Owned by the
 *  caller; lf_funnel_out_reset() empties, lf_funnel_out_free() frees. */
typedef struct lf_funnel_out_s {
    lf_visit_t *visits;
    size_t visit_count, visit_cap;
    lf_anomaly_t *anomalies;
    size_t anomaly_count, anomaly_cap;
} lf_funnel_out_t;

void lf_funnel_out_reset(lf_funnel_out_t *out);
void lf_funnel_out_free(lf_funnel_out_t *out);

/** A fresh state for @p lead_id (copied). @returns LF_OK or LF_ERR_NOMEM. */
lf_err_t lf_lead_init(lf_lead_t *lead, const char *lead_id);
/** Free the state's strings and zero it. NULL-safe. */
void lf_lead_clear(lf_lead_t *lead);

/** -1, 0, 1: the order of events by (occurred_at, event_id bytewise). */
int lf_event_order(int64_t at_a, const char *id_a, int64_t at_b,
                   const char *id_b);

/** True if @p ev sorts after the last event already applied to @p lead, so
 *  applying it continues the lead; false means recompute the lead. */
bool lf_funnel_is_next(const lf_lead_t *lead, const lf_event_t *ev);

/**
 * Apply @p ev (which must sort after every event already applied) to
 * @p lead under the rules of @p def, appending to @p out the visits it opens or
 * closes and any anomaly. The visit current before the call is reported only if
 * this event ends it. Anomaly event ids and exit reasons point into @p ev: keep
 * the event until @p out is used.
 * @returns LF_OK or LF_ERR_NOMEM.
 */
lf_err_t lf_funnel_apply_def(const lf_definition_t *def, lf_lead_t *lead,
                             const lf_event_t *ev, lf_funnel_out_t *out);

/** lf_funnel_apply_def() under the embedded default definition
 *  (lf_definition_default()). @returns LF_OK or LF_ERR_NOMEM. */
lf_err_t lf_funnel_apply(lf_lead_t *lead, const lf_event_t *ev,
                         lf_funnel_out_t *out);

/** Human-readable form of the default definition's rules (for --help and
 *  docs); lf_definition_describe() for another definition. */
void lf_funnel_describe(lf_buf_t *out);

#endif
