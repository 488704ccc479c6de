/* lf_workload.h: a synthetic, realistic and deterministic funnel workload:
 * the lifecycle events of N leads walking the funnel, with the faults real
 * producers add (duplicates, late and shuffled arrivals, malformed lines).
 *
 * Every lead gets its own PRNG, seeded from the seed and the lead's number,
 * and walks the funnel: captured, scored, handed off with an SLA, accepted
 * or recycled, qualified into an opportunity, won or lost, recycled into
 * nurture and perhaps re-qualified into a new cycle. Each step is a coin
 * with a documented rate (lf_workload_rates) and each wait a draw from a
 * documented delay (lf_workload_delays). The leads' events are merged into
 * one stream in time order. The same options give the same stream, event
 * for event and byte for byte, on any machine: the PRNG is our own, not the
 * C library's.
 *
 * Every journey follows the funnel state machine (lf_funnel.h) unless
 * `anomalies` asks otherwise. The fault knobs (duplicates, late, bad,
 * shuffle) draw from a separate PRNG, so they never change the journeys.
 * So do the contract v2 knobs (accounts, merges, voids, erasures), all off
 * by default: with them off the stream is the one contract v1 could carry,
 * byte for byte as before.
 *
 * The stream is kept in memory as compact records (48 bytes an event) and
 * turned into an lf_event_t or a JSON line one at a time. */
#ifndef LF_WORKLOAD_H
#define LF_WORKLOAD_H

#include "lf_buf.h"
#include "lf_common.h"
#include "lf_event.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** The coins of a journey: probabilities, see lf_workload_rates. */
typedef enum lf_workload_rate_e {
    LF_WL_RATE_MQL,
    LF_WL_RATE_JUNK,
    LF_WL_RATE_ACCEPT,
    LF_WL_RATE_HANDOFF_DISQ,
    LF_WL_RATE_SQL,
    LF_WL_RATE_SAL_LOST,
    LF_WL_RATE_WIN,
    LF_WL_RATE_SQL_RECYCLE,
    LF_WL_RATE_LOST_RECYCLE,
    LF_WL_RATE_REQUALIFY,
    LF_WL_RATE_TOUCH,
    LF_WL_RATE_RESCORE,
    LF_WL_RATE_COUNT
} lf_workload_rate_t;

/** The waits of a journey: mean delays in ms, see lf_workload_delays. */
typedef enum lf_workload_delay_e {
    LF_WL_DELAY_SCORE,
    LF_WL_DELAY_RESCORE,
    LF_WL_DELAY_HANDOFF,
    LF_WL_DELAY_RESPONSE,
    LF_WL_DELAY_QUALIFY,
    LF_WL_DELAY_CLOSE,
    LF_WL_DELAY_LOST_RECYCLE,
    LF_WL_DELAY_NURTURE,
    LF_WL_DELAY_TOUCH,
    LF_WL_DELAY_JUNK,
    LF_WL_DELAY_COUNT
} lf_workload_delay_t;

/** A rate or a delay: its name ("mql", "response"), default value and a
 *  help line that cites its source as "[n]" (the sources are listed in
 *  leadflow-gen(1) and lf_workload.c). */
typedef struct lf_workload_param_s {
    const char *name;
    double value; /**< a probability, or a mean delay in ms */
    const char *help;
} lf_workload_param_t;

/** The default rates and delays, indexed by lf_workload_rate_t and
 *  lf_workload_delay_t. */
extern const lf_workload_param_t lf_workload_rates[LF_WL_RATE_COUNT];
extern const lf_workload_param_t lf_workload_delays[LF_WL_DELAY_COUNT];

/** The most leads one workload holds. */
#define LF_WORKLOAD_MAX_LEADS 50000000u

/** What to generate. Start from lf_workload_defaults(). */
typedef struct lf_workload_opts_s {
    uint64_t seed;      /**< default 1 */
    uint32_t leads;     /**< default 1000, at most LF_WORKLOAD_MAX_LEADS */
    int64_t start;      /**< first capture, epoch ms (default 2026-01-01) */
    int days;           /**< captures spread over 1..3650 days (default 90) */
    bool cutoff;        /**< drop events after the window (default true) */
    const char *prefix; /**< lead ids are PREFIX000001 (default "L-"); at
                             most 40 bytes, must outlive the workload */
    int threshold;      /**< MQL score threshold (default 60) */
    int sla_hours;      /**< handoff SLA (default 24) */
    double deal_size;   /**< median deal, major units (default 12000) */
    double duplicates;  /**< P(an event is sent twice), same event_id */
    double late;        /**< P(an event arrives 1-7 days late) */
    double bad;         /**< P(a malformed line follows an event) */
    double anomalies;   /**< P(a lead has an event the funnel refuses) */
    long shuffle;       /**< shuffle arrivals in windows of this size */
    uint32_t accounts;  /**< 0: no account_id; else the leads belong to
                             this many accounts (ACC-000001, ...), several
                             leads each, every event carrying the lead's */
    double merges;      /**< P(a lead is merged into another lead) */
    double voids;       /**< P(an event is voided later, by id) */
    double erasures;    /**< P(a lead is erased: a privacy request) */
    double rate[LF_WL_RATE_COUNT];   /**< probabilities */
    double delay[LF_WL_DELAY_COUNT]; /**< mean delays in ms */
} lf_workload_opts_t;

/** Fill @p o with the defaults above and the default rates and delays. */
void lf_workload_defaults(lf_workload_opts_t *o);

/**
 * Set one rate from "NAME=P" (P in 0..1), as leadflow-gen's --rate.
 * @returns LF_OK, or LF_ERR_INVALID with the reason in errstr.
 */
lf_err_t lf_workload_set_rate(lf_workload_opts_t *o, const char *name_value,
                              char *errstr, size_t errstr_size);

/**
 * Set one mean delay from "NAME=DURATION", as leadflow-gen's --delay: a
 * number and ms, s, m, h or d ("90s", "1.5d"), at most 3650 days.
 * @returns LF_OK, or LF_ERR_INVALID with the reason in errstr.
 */
lf_err_t lf_workload_set_delay(lf_workload_opts_t *o, const char *name_value,
                               char *errstr, size_t errstr_size);

/**
 * Check that @p o describes a workload: the rates that share one coin
 * (handoff-disq + accept, sql + sal-lost, win + sql-recycle) sum to at
 * most 1, the window ends before year 9999, the numbers are in range.
 * @returns LF_OK, or LF_ERR_INVALID with the reason in errstr.
 */
lf_err_t lf_workload_check(const lf_workload_opts_t *o, char *errstr,
                           size_t errstr_size);

/** A generated stream of events. */
typedef struct lf_workload_s lf_workload_t;

/**
 * Generate the stream @p o describes (it takes about a second per million
 * events). On success *out is the caller's, to lf_workload_destroy(); it
 * keeps a copy of @p o but points to o->prefix.
 * @returns LF_OK; LF_ERR_INVALID (as lf_workload_check()) or LF_ERR_NOMEM,
 * with the reason in errstr and *out NULL.
 */
lf_err_t lf_workload_new(const lf_workload_opts_t *o, lf_workload_t **out,
                         char *errstr, size_t errstr_size);

/** NULL-safe. */
void lf_workload_destroy(lf_workload_t *w);

/** The number of items in the stream: events, duplicates, bad lines. */
size_t lf_workload_count(const lf_workload_t *w);

/** What the i-th item of the stream is. */
typedef enum lf_workload_kind_e {
    LF_WL_EVENT,     /**< an event, sent once so far */
    LF_WL_DUPLICATE, /**< an event sent again: an earlier item's event_id */
    LF_WL_BAD,       /**< a malformed line (JSON only: see lf_workload_line) */
} lf_workload_kind_t;

/** The kind of item @p i (< lf_workload_count()). */
lf_workload_kind_t lf_workload_kind(const lf_workload_t *w, size_t i);

/**
 * Item @p i (< lf_workload_count()) as an event. For LF_WL_BAD, the event
 * the malformed line was made from. Event ids are name-based (UUID v5 of
 * the seed, lead and the event's number), so a run again yields the same
 * ids. @returns an event whose strings belong to @p w: valid until the next
 * lf_workload_event() or lf_workload_line() call on @p w; never
 * lf_event_clear() it.
 */
const lf_event_t *lf_workload_event(lf_workload_t *w, size_t i);

/**
 * Item @p i (< lf_workload_count()) as one JSON line of the flat mapping
 * (lf_json.h), without the newline, in @p out (reset first). A LF_WL_BAD
 * item is a line leadflow-emit refuses, one of 13 kinds (truncated JSON,
 * missing or empty or long or non-string lead_id, unknown type, bad
 * timestamp, unknown field, negative number, bad currency, invalid UTF-8,
 * not an object, another type's field), without an event_id.
 * @returns LF_OK or LF_ERR_NOMEM.
 */
lf_err_t lf_workload_line(lf_workload_t *w, size_t i, lf_buf_t *out);

#endif
