/* lf_workload.c: the synthetic funnel workload (lf_workload.h): journeys,
 * the rates and delays with their sources, faults, rendering. */
#include "lf_workload.h"

#include "lf_json.h"
#include "lf_uuid.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEC  INT64_C(1000)
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)
#define DAY  (24 * HOUR)

#define MAX_CYCLES 3 /* a lead re-qualifies from nurture at most twice */

/* ---------------------------------------------------------------------------
 * PRNG: xoshiro256** seeded through splitmix64 (Blackman and Vigna). Our
 * own, so the output does not depend on the C library's rand().
 */

typedef struct rng_s {
    uint64_t s[4];
} rng_t;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static void rng_seed(rng_t *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * UINT64_C(0xd1342543de82ef95));
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(rng_t *r)
{
    uint64_t *s = r->s, result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/** Uniform in [0, 1). */
static double rng_unit(rng_t *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

static bool rng_chance(rng_t *r, double p)
{
    return rng_unit(r) < p;
}

/** Uniform integer in [lo, hi]. */
static int64_t rng_range(rng_t *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

static double rng_exp(rng_t *r, double mean)
{
    return -mean * log(1.0 - rng_unit(r));
}

static double rng_normal(rng_t *r)
{
    double u = 1.0 - rng_unit(r), v = rng_unit(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/** Lognormal with the given mean and shape sigma. */
static double rng_lognormal(rng_t *r, double mean, double sigma)
{
    return mean * exp(sigma * rng_normal(r) - sigma * sigma / 2.0);
}

/** Index drawn from cumulative weights w[0..n) (need not sum to 1). */
static int rng_pick(rng_t *r, const double *w, int n)
{
    double total = 0, x;
    for (int i = 0; i < n; i++)
        total += w[i];
    x = rng_unit(r) * total;
    for (int i = 0; i < n - 1; i++)
        if ((x -= w[i]) < 0)
            return i;
    return n - 1;
}

/* ---------------------------------------------------------------------------
 * The funnel model: rates and delays, one table each, with their sources.
 *
 * The figures are illustrative defaults for a mid-market B2B company, each
 * chosen inside a publicly quoted range; none is a measurement of ours:
 * - lead->MQL 20-40 %, MQL->SQL 30-60 %, opportunity->won 20-30 % for
 *   mid-market B2B: the stage ranges in "B2B Conversion Rate: What It Is,
 *   How to Calculate It, and Benchmarks" (b2blead.io, 2026), which match
 *   the HubSpot/First Page Sage figures other roundups quote (e.g. the
 *   RevOps dictionary at altiorco.com: MQL->SQL 30-50 %, opp->won 20-30 %).
 *   We split MQL->SQL into accept x qualify: 0.70 x 0.55 = 0.385.
 * - response to a handed-off lead: Oldroyd, McElheran and Elkington, "The
 *   Short Life of Online Sales Leads", Harvard Business Review, March 2011:
 *   of 2,241 US companies 37 % answered a web lead within an hour, 16 %
 *   within 1-24 hours, 24 % later, 23 % never; the average among those
 *   that answered within 30 days was 42 hours. We draw from those three
 *   buckets (the "never" ones are left out) scaled to a 42-hour mean.
 * - SQL->close: B2B sales cycles of 1-6 months (roundups citing Zippia,
 *   e.g. UserGems, "How to shorten the sales cycle"); we use a 45-day mean.
 * - the SLA of 24 hours: common practice for MQL follow-up (acceptance or
 *   rejection within a working day); illustrative.
 * - everything else (junk rate, recycling, nurture, re-qualification,
 *   touches, scoring cadence): illustrative, chosen to give every stage
 *   and every transition of the state machine some traffic.
 */

const lf_workload_param_t lf_workload_rates[LF_WL_RATE_COUNT] = {
    [LF_WL_RATE_MQL] = {"mql", 0.30,
                        "captured -> marketing_qualified (score crosses "
                        "the threshold); 20-40 % [1]"},
    [LF_WL_RATE_JUNK] =
        {"junk", 0.05,
         "captured -> disqualified by marketing (spam, student, "
         "competitor)"},
    [LF_WL_RATE_ACCEPT] =
        {"accept", 0.70, "handed_off -> sales_accepted; the rest recycled [1]"},
    [LF_WL_RATE_HANDOFF_DISQ] =
        {"handoff-disq", 0.05,
         "handed_off -> disqualified by sales (wrong fit)"},
    [LF_WL_RATE_SQL] = {"sql", 0.55,
                        "sales_accepted -> sales_qualified (opportunity) [1]"},
    [LF_WL_RATE_SAL_LOST] = {"sal-lost", 0.10,
                             "sales_accepted -> lost; the rest recycled"},
    [LF_WL_RATE_WIN] = {"win", 0.25, "sales_qualified -> won; 20-30 % [1]"},
    [LF_WL_RATE_SQL_RECYCLE] = {"sql-recycle", 0.10,
                                "sales_qualified -> recycled; the rest lost"},
    [LF_WL_RATE_LOST_RECYCLE] = {"lost-recycle", 0.30,
                                 "lost -> recycled to nurture"},
    [LF_WL_RATE_REQUALIFY] =
        {"requalify", 0.25,
         "nurture -> marketing_qualified again (a new cycle)"},
    [LF_WL_RATE_TOUCH] = {"touch", 0.15,
                          "a known lead is captured again (another form, "
                          "another campaign)"},
    [LF_WL_RATE_RESCORE] =
        {"rescore", 0.20, "a lead in sales is scored again (no stage change)"},
};

const lf_workload_param_t lf_workload_delays[LF_WL_DELAY_COUNT] = {
    [LF_WL_DELAY_SCORE] = {"score", 1.0 * DAY,
                           "capture -> first score (exponential)"},
    [LF_WL_DELAY_RESCORE] = {"rescore", 3.0 * DAY,
                             "between scores (exponential)"},
    [LF_WL_DELAY_HANDOFF] = {"handoff", 4.0 * HOUR,
                             "marketing_qualified -> handed_off (exponential)"},
    [LF_WL_DELAY_RESPONSE] =
        {"response", 42.0 * HOUR,
         "handed_off -> accepted or recycled: the HBR 2011 "
         "buckets scaled to this mean [2]"},
    [LF_WL_DELAY_QUALIFY] =
        {"qualify", 7.0 * DAY,
         "sales_accepted -> qualified or lost (exponential)"},
    [LF_WL_DELAY_CLOSE] = {"close", 45.0 * DAY,
                           "sales_qualified -> won or lost (lognormal) [3]"},
    [LF_WL_DELAY_LOST_RECYCLE] = {"lost-recycle", 30.0 * DAY,
                                  "lost -> recycled (exponential)"},
    [LF_WL_DELAY_NURTURE] = {"nurture", 60.0 * DAY,
                             "nurture -> re-qualifying score (exponential)"},
    [LF_WL_DELAY_TOUCH] = {"touch", 10.0 * DAY, "capture -> a repeat capture"},
    [LF_WL_DELAY_JUNK] = {"junk", 2.0 * DAY, "score -> disqualified as junk"},
};

/* Where leads come from: channel, the system that captures them, weight. */
static const struct channel_s {
    const char *name, *source;
    double weight;
    const char *campaigns[3]; /* NULL-terminated; none: no campaign */
} channels[] = {
    {"organic_search", "web-forms", 0.25, {NULL}},
    {"paid_search",
     "web-forms",
     0.15,
     {"2026-brand-search", "2026-competitor-terms", NULL}},
    {"paid_social",
     "linkedin-lead-gen",
     0.10,
     {"2026-q1-abm-linkedin", "2026-retargeting", NULL}},
    {"email", "marketo", 0.10, {"newsletter", "2026-product-launch", NULL}},
    {"webinar",
     "marketo",
     0.10,
     {"webinar-funnel-analytics", "webinar-revops-101", NULL}},
    {"events", "event-scanner", 0.08, {"saastr-2026", "dreamforce-2026", NULL}},
    {"referral", "web-forms", 0.07, {"customer-referral", NULL}},
    {"content_syndication", "partner-feed", 0.10, {"ebook-state-of-b2b", NULL}},
    {"direct", "web-forms", 0.05, {NULL}},
};
#define N_CHANNELS ((int)(sizeof(channels) / sizeof(channels[0])))

static const char *countries[] = {"US", "GB", "DE", "FR", "NL",
                                  "CA", "AU", "IN", "BR", "JP"};
static const double country_w[] = {40, 12, 10, 6, 4, 6, 4, 8, 5, 5};
static const char *sizes[] = {"1-10", "11-50", "51-200", "201-1000", "1001+"};
static const double size_w[] = {15, 25, 30, 20, 10};
static const char *industries[] = {
    "software", "financial_services", "healthcare",           "manufacturing",
    "retail",   "education",          "professional_services"};
/* Company names with the characters real CRMs carry: accents, CJK, quotes,
 * ampersands, a backslash and a tab. */
static const char *companies[] = {
    "Acme Corp",        "Müller & Söhne GmbH",      "Société Générale Tech",
    "株式会社サンプル", "O'Brien \"Analytics\"",    "Nordisk Ørsted A/S",
    "São Paulo Dados",  "Back\\slash Labs",         "Tab\tSeparated Ltd",
    "Zürich Rück AG",   "Łódź Software Sp. z o.o.", "Initech",
    "Globex",           "Umbrella Health",          "Hooli",
    "Stark Industries"};

static const char *junk_reasons[] = {"spam", "student", "competitor",
                                     "invalid contact data"};
static const char *fit_reasons[] = {"wrong company size", "wrong geography",
                                    "existing customer", "no decision maker"};
static const char *lost_reasons[] = {"lost to competitor", "price",
                                     "no decision", "timing", "went dark"};
static const char *models[] = {"fit-engagement-v3"};
static const char *notes[] = {"asked to be contacted next quarter",
                              "budget frozen until next fiscal year",
                              "champion left the company",
                              "closed-lost review"};
static const char *void_reasons[] = {"entered twice", "test record",
                                     "wrong lead"};
static const char *currencies[] = {"USD", "EUR", "GBP"};
static const double currency_w[] = {70, 20, 10};

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))
/* ---------------------------------------------------------------------------
 * Compact events.
 */

enum { KIND_EVENT = 0, KIND_DUPLICATE = 1, KIND_BAD = 2 };

/* The kinds of malformed line the `bad` knob adds (kind KIND_BAD + k). */
enum {
    BAD_TRUNCATED,
    BAD_MISSING_LEAD_ID,
    BAD_UNKNOWN_TYPE,
    BAD_TIMESTAMP,
    BAD_WRONG_TYPE,
    BAD_UNKNOWN_FIELD,
    BAD_NEGATIVE,
    BAD_CURRENCY,
    BAD_EMPTY_LEAD_ID,
    BAD_UTF8,
    BAD_NOT_OBJECT,
    BAD_LONG_LEAD_ID,
    BAD_OTHER_TYPES_FIELD,
    BAD__COUNT
};

typedef struct gev_s {
    int64_t at;     /* occurred_at */
    int64_t arrive; /* position in the stream */
    int64_t amount; /* QUALIFIED, WON */
    uint32_t lead;  /* 0-based lead number */
    uint16_t seq;   /* per lead: the event id derives from it */
    uint8_t type;
    uint8_t kind;       /* KIND_*, KIND_BAD + BAD_* */
    int32_t i1, i2, i3; /* per type, see render_event() */
} gev_t;

/* The scratch an lf_event_t points into while it is rendered. */
typedef struct scratch_s {
    char lead_id[64], event_id[LF_UUID_STRLEN + 1], owner[16], actor[32],
        opp[80], account[24], other[64], voided[LF_UUID_STRLEN + 1],
        request[80];
    lf_attr_t attrs[4];
} scratch_t;

/* Event numbers (gev_t.seq) of the identity events, above any journey's:
 * a void of event s is VOID_SEQ | s. */
#define VOID_SEQ  0x8000u
#define MERGE_SEQ 0xfffeu
#define ERASE_SEQ 0xffffu

struct lf_workload_s {
    lf_workload_opts_t o;
    int64_t end; /* the capture window is [o.start, end) */
    int lead_width;
    double response_scale;
    bool nomem; /* an event could not be stored: the stream is cut short */
    gev_t *ev;
    size_t n, cap;
    scratch_t s;    /* what lf_workload_event() returns points here */
    lf_event_t out; /* lf_workload_event()'s answer */
    lf_buf_t bad;   /* a malformed line in the making */
};

#define RATE(l, k)  ((l)->g->o.rate[LF_WL_RATE_##k])
#define DELAY(l, k) ((l)->g->o.delay[LF_WL_DELAY_##k])

/* A new zeroed record at the end of the stream, or NULL (and g->nomem)
 * when out of memory. */
static gev_t *push(lf_workload_t *g)
{
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 4096;
        gev_t *n = g->nomem ? NULL : realloc(g->ev, cap * sizeof(*n));
        if (!n) {
            g->nomem = true;
            return NULL;
        }
        g->ev = n;
        g->cap = cap;
    }
    memset(&g->ev[g->n], 0, sizeof(gev_t));
    return &g->ev[g->n++];
}

/* ---------------------------------------------------------------------------
 * One lead's journey.
 */

typedef struct lead_s {
    lf_workload_t *g;
    rng_t r;
    uint32_t lead;
    uint16_t seq;
    int64_t t; /* time of the last event of the main path */
    bool over; /* the main path ran past the cutoff */
    int cycle;
    int owner;
} lead_t;

/* Append an event at time @p at; NULL (and nothing appended) past the
 * cutoff. */
static gev_t *add_at(lead_t *l, int type, int64_t at)
{
    gev_t *e;
    if (l->g->o.cutoff && at >= l->g->end)
        return NULL;
    if (!(e = push(l->g)))
        return NULL;
    e->at = e->arrive = at;
    e->lead = l->lead;
    e->seq = l->seq++;
    e->type = (uint8_t)type;
    return e;
}

/* Append the next event of the main path, @p delay ms after the last one
 * (at least a second, so one lead's events never tie). */
static gev_t *step(lead_t *l, int type, double delay)
{
    gev_t *e;
    int64_t d = (int64_t)delay;
    if (l->over)
        return NULL;
    l->t += d < SEC ? SEC + rng_range(&l->r, 0, 999) : d;
    if (!(e = add_at(l, type, l->t)))
        l->over = true;
    return e;
}

static void scored(lead_t *l, double delay, bool qualifies)
{
    gev_t *e = step(l, LF_EV_SCORED, delay);
    if (!e)
        return;
    e->i1 = qualifies ? (int)rng_range(&l->r, l->g->o.threshold,
                                       l->g->o.threshold + 35)
                      : (int)rng_range(&l->r, 5, l->g->o.threshold - 1);
    e->i2 = l->g->o.threshold;
    e->i3 = 0;
}

/* handed_off -> accepted or recycled: the HBR buckets, conditional on an
 * answer: 37/77 within the hour, 16/77 in 1-24 hours, 24/77 in 1-14 days
 * (log-uniform), then scaled so the mean is the "response" delay. */
static double response_delay(lead_t *l)
{
    static const double w[] = {37, 16, 24};
    double x;
    switch (rng_pick(&l->r, w, 3)) {
    case 0:
        x = (double)MIN + rng_unit(&l->r) * 59.0 * MIN;
        break;
    case 1:
        x = (double)HOUR + rng_unit(&l->r) * 23.0 * HOUR;
        break;
    default:
        x = 24.0 * HOUR * exp(rng_unit(&l->r) * log(14.0));
        break;
    }
    return x * l->g->response_scale;
}

static double response_base_mean(void)
{
    double m1 = 30.0 * MIN, m2 = 12.5 * HOUR,
           m3 = (14.0 - 1.0) * 24.0 * HOUR / log(14.0);
    return (37 * m1 + 16 * m2 + 24 * m3) / 77.0;
}

static void recycled(lead_t *l, double delay, const int *reasons, int n)
{
    gev_t *e = step(l, LF_EV_RECYCLED, delay);
    if (!e)
        return;
    e->i1 = reasons[rng_range(&l->r, 0, n - 1)];
    e->i2 =
        rng_chance(&l->r, 0.4) ? (int)rng_range(&l->r, 0, N(notes) - 1) : -1;
    e->i3 = l->owner;
}

static void captured_fields(lead_t *l, gev_t *e)
{
    double w[N_CHANNELS];
    int ch, nc = 0;

    for (int i = 0; i < N_CHANNELS; i++)
        w[i] = channels[i].weight;
    ch = rng_pick(&l->r, w, N_CHANNELS);
    while (nc < 3 && channels[ch].campaigns[nc])
        nc++;
    e->i1 = ch;
    e->i2 = nc ? (int)rng_range(&l->r, 0, nc - 1) : -1;
    /* One draw per statement: C leaves the order of operands unspecified,
     * and the output must not depend on the compiler. */
    e->i3 = rng_pick(&l->r, country_w, N(countries));
    e->i3 |= rng_pick(&l->r, size_w, N(sizes)) << 4;
    e->i3 |= (int)rng_range(&l->r, 0, N(industries) - 1) << 8;
    e->i3 |= (int)rng_range(&l->r, 0, N(companies) - 1) << 12;
}

/* The reasons sales gives when it recycles a lead at each point. */
static const int sales_recycle[] = {LF_RR_NOT_READY, LF_RR_NO_RESPONSE,
                                    LF_RR_BAD_TIMING};
static const int qual_recycle[] = {LF_RR_NO_BUDGET, LF_RR_NO_AUTHORITY,
                                   LF_RR_NO_NEED, LF_RR_BAD_TIMING};
static const int opp_recycle[] = {LF_RR_NO_BUDGET, LF_RR_BAD_TIMING,
                                  LF_RR_OTHER};
static const int lost_recycle[] = {LF_RR_OTHER};

/* An event the state machine refuses, at capture time. */
static void anomaly(lead_t *l, int64_t captured_at)
{
    gev_t *e;

    if (rng_chance(&l->r, 0.5)) {
        /* the CRM accepted a lead marketing never handed off */
        if ((e = add_at(l, LF_EV_ACCEPTED,
                        captured_at + rng_range(&l->r, MIN, HOUR))))
            e->i1 = (int)rng_range(&l->r, 1, 24);
    } else if ((e = add_at(l, LF_EV_SCORED,
                           captured_at - rng_range(&l->r, MIN, DAY)))) {
        /* scored before its capture reached us */
        e->i1 = (int)rng_range(&l->r, 5, l->g->o.threshold - 1);
        e->i2 = l->g->o.threshold;
    }
}

static void lost(lead_t *l, double delay)
{
    gev_t *e = step(l, LF_EV_LOST, delay);

    if (e) {
        e->i1 = (int)rng_range(&l->r, 0, N(lost_reasons) - 1);
        e->i3 = l->owner;
    }
}

/* In nurture: perhaps re-engaged, a qualifying score that moves it to
 * marketing_qualified. @returns true when a new cycle starts. */
static bool nurture(lead_t *l)
{
    if (l->cycle >= MAX_CYCLES || !rng_chance(&l->r, RATE(l, REQUALIFY)))
        return false;
    scored(l, rng_exp(&l->r, DELAY(l, NURTURE)), true);
    l->cycle++;
    return !l->over;
}

/* Lost: perhaps recycled to nurture later. @returns as nurture(). */
static bool after_lost(lead_t *l)
{
    if (!rng_chance(&l->r, RATE(l, LOST_RECYCLE)))
        return false;
    recycled(l, rng_exp(&l->r, DELAY(l, LOST_RECYCLE)), lost_recycle,
             N(lost_recycle));
    return nurture(l);
}

/* sales_qualified: an opportunity with an amount, then won, recycled or
 * lost. @returns as nurture(). */
static bool opportunity(lead_t *l)
{
    gev_t *e = step(l, LF_EV_QUALIFIED, rng_exp(&l->r, DELAY(l, QUALIFY)));
    int64_t amount;
    int currency;
    double d, x;

    if (e) {
        e->i1 = l->cycle;
        e->i2 = rng_pick(&l->r, currency_w, N(currencies));
        e->i3 = l->owner;
        /* whole hundreds of the minor unit, lognormal around the median
         * deal size */
        e->amount = 100 * (int64_t)rng_lognormal(
                              &l->r, l->g->o.deal_size * exp(0.405), 0.9);
    }
    amount = e ? e->amount : 0;
    currency = e ? e->i2 : 0;
    d = rng_lognormal(&l->r, DELAY(l, CLOSE), 0.7);
    x = rng_unit(&l->r);
    if (x < RATE(l, WIN)) {
        if ((e = step(l, LF_EV_WON, d))) {
            e->amount = amount / 100 * (int64_t)rng_range(&l->r, 80, 105);
            e->i2 = currency;
            e->i3 = l->owner;
        }
        return false;
    }
    if (x < RATE(l, WIN) + RATE(l, SQL_RECYCLE)) {
        recycled(l, d, opp_recycle, N(opp_recycle));
        return nurture(l);
    }
    lost(l, d);
    return after_lost(l);
}

/* One cycle from marketing_qualified: handed off, then disqualified,
 * recycled or accepted, and from sales_accepted qualified, lost or
 * recycled. @returns true when the lead starts another cycle. */
static bool cycle(lead_t *l)
{
    gev_t *e;
    double x;

    l->owner = (int)rng_range(&l->r, 1, 24);
    if ((e = step(l, LF_EV_HANDED_OFF, rng_exp(&l->r, DELAY(l, HANDOFF))))) {
        e->i1 = l->owner;
        e->i2 = l->g->o.sla_hours;
    }
    x = rng_unit(&l->r);
    if (x < RATE(l, HANDOFF_DISQ)) {
        if ((e = step(l, LF_EV_DISQUALIFIED, response_delay(l)))) {
            e->i1 = (int)rng_range(&l->r, 0, N(fit_reasons) - 1);
            e->i3 = l->owner;
        }
        return false;
    }
    if (x >= RATE(l, HANDOFF_DISQ) + RATE(l, ACCEPT)) {
        recycled(l, response_delay(l), sales_recycle, N(sales_recycle));
        return nurture(l);
    }
    if ((e = step(l, LF_EV_ACCEPTED, response_delay(l))))
        e->i1 = l->owner;
    if (rng_chance(&l->r, RATE(l, RESCORE)))
        scored(l, rng_exp(&l->r, DELAY(l, QUALIFY) / 2), true);
    x = rng_unit(&l->r);
    if (x < RATE(l, SQL))
        return opportunity(l);
    {
        double d = rng_exp(&l->r, DELAY(l, QUALIFY));
        if (x < RATE(l, SQL) + RATE(l, SAL_LOST)) {
            lost(l, d);
            return after_lost(l);
        }
        recycled(l, d, qual_recycle, N(qual_recycle));
        return nurture(l);
    }
}

/* Lead number @p lead, captured at @p captured_at: its whole journey. */
static void journey(lf_workload_t *g, uint32_t lead, int64_t captured_at)
{
    lead_t l = {.g = g, .lead = lead, .t = captured_at, .cycle = 1};
    gev_t *e;
    bool qualifies;

    rng_seed(&l.r, g->o.seed, (uint64_t)lead + 1);
    if (!(e = add_at(&l, LF_EV_CAPTURED, captured_at)))
        return;
    captured_fields(&l, e);
    /* A repeat capture: a touch, no stage change, at any later time. */
    if (rng_chance(&l.r, RATE(&l, TOUCH)) &&
        (e = add_at(&l, LF_EV_CAPTURED,
                    captured_at + MIN +
                        (int64_t)rng_exp(&l.r, DELAY(&l, TOUCH)))))
        captured_fields(&l, e);
    if (rng_chance(&l.r, g->o.anomalies))
        anomaly(&l, captured_at);
    if (rng_chance(&l.r, RATE(&l, JUNK))) {
        scored(&l, rng_exp(&l.r, DELAY(&l, SCORE)), false);
        if ((e = step(&l, LF_EV_DISQUALIFIED,
                      rng_exp(&l.r, DELAY(&l, JUNK))))) {
            e->i1 = (int)rng_range(&l.r, 0, N(junk_reasons) - 1);
            e->i3 = -1;
        }
        return;
    }
    qualifies = rng_chance(&l.r, RATE(&l, MQL));
    for (int i = 0, n = (int)rng_range(&l.r, 1, 3); i < n; i++)
        scored(&l, rng_exp(&l.r, i ? DELAY(&l, RESCORE) : DELAY(&l, SCORE)),
               qualifies && i == n - 1);
    if (qualifies)
        while (cycle(&l))
            ;
}

/* Capture times: uniform over the window, thinned by a working-week
 * profile (weekends and nights see fewer form fills). */
static int64_t capture_time(lf_workload_t *g, rng_t *r)
{
    for (;;) {
        int64_t t =
            g->o.start + (int64_t)(rng_unit(r) * (double)(g->end - g->o.start));
        int64_t day = t / DAY, hour = (t % DAY) / HOUR;
        int weekday = (int)((day + 3) % 7); /* 0 = Monday (1970-01-01 Thu) */
        double w = weekday >= 5 ? 0.3 : 1.0;
        if (hour < 7 || hour >= 20)
            w *= 0.25;
        if (rng_unit(r) < w)
            return t;
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_gev(const void *a, const void *b)
{
    const gev_t *x = a, *y = b;
    if (x->arrive != y->arrive)
        return x->arrive < y->arrive ? -1 : 1;
    if (x->lead != y->lead)
        return x->lead < y->lead ? -1 : 1;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    return (x->kind > y->kind) - (x->kind < y->kind);
}

/* The faults, from their own stream, over the clean events in the order
 * they were generated; then the stream in arrival order, shuffled in
 * windows. */
static void faults(lf_workload_t *g)
{
    size_t n = g->n;
    rng_t r;

    rng_seed(&r, g->o.seed, UINT64_C(0xfa17));
    for (size_t i = 0; i < n; i++) {
        gev_t *f;
        if (g->o.late > 0 && rng_chance(&r, g->o.late))
            g->ev[i].arrive = g->ev[i].at + rng_range(&r, DAY, 7 * DAY);
        if (g->o.duplicates > 0 && rng_chance(&r, g->o.duplicates) &&
            (f = push(g))) {
            *f = g->ev[i];
            f->kind = KIND_DUPLICATE;
            f->arrive += rng_range(&r, SEC, 15 * MIN);
        }
        if (g->o.bad > 0 && rng_chance(&r, g->o.bad) && (f = push(g))) {
            *f = g->ev[i];
            f->kind = (uint8_t)(KIND_BAD + rng_range(&r, 0, BAD__COUNT - 1));
        }
    }
    if (g->n)
        qsort(g->ev, g->n, sizeof(gev_t), cmp_gev);
    if (g->o.shuffle > 1)
        for (size_t w = 0; w < g->n; w += (size_t)g->o.shuffle) {
            size_t len = g->n - w < (size_t)g->o.shuffle ? g->n - w
                                                         : (size_t)g->o.shuffle;
            for (size_t i = len - 1; i > 0; i--) {
                size_t j = (size_t)rng_range(&r, 0, (int64_t)i);
                gev_t t = g->ev[w + i];
                g->ev[w + i] = g->ev[w + j];
                g->ev[w + j] = t;
            }
        }
}

/* The privacy request number of @p lead_id's erasure (FNV-1a). */
static uint32_t request_number(const char *lead_id)
{
    uint32_t h = 2166136261u;

    for (const char *c = lead_id; *c; c++)
        h = (h ^ (unsigned char)*c) * 16777619u;
    return h;
}

/* The identity events of the lead whose journey is g->ev[first..end)
 * (a lead's events are contiguous before the faults), from @p r: voids of
 * some of its events, then perhaps a merge into another lead and an
 * erasure, after its last event. */
static void identity_events(lf_workload_t *g, size_t first, size_t end,
                            rng_t *r)
{
    lead_t l = {.g = g, .lead = g->ev[first].lead};
    int64_t last = 0;
    gev_t *e;

    for (size_t i = first; i < end; i++)
        last = g->ev[i].at > last ? g->ev[i].at : last;
    for (size_t i = first; i < end; i++) {
        if (!rng_chance(r, g->o.voids))
            continue;
        int64_t at = g->ev[i].at + rng_range(r, MIN, 3 * DAY);
        uint16_t seq = g->ev[i].seq;
        l.seq = (uint16_t)(VOID_SEQ | seq);
        if ((e = add_at(&l, LF_EV_VOIDED, at))) {
            e->i1 = seq;
            e->i2 = (int)rng_range(r, 0, N(void_reasons) - 1);
        }
        last = at > last ? at : last;
    }
    if (g->o.leads > 1 && rng_chance(r, g->o.merges)) {
        int64_t other = rng_range(r, 0, (int64_t)g->o.leads - 2);
        l.seq = MERGE_SEQ;
        last += rng_range(r, HOUR, 30 * DAY);
        if ((e = add_at(&l, LF_EV_MERGED, last)))
            e->i1 = (int32_t)(other >= l.lead ? other + 1 : other);
    }
    if (rng_chance(r, g->o.erasures)) {
        l.seq = ERASE_SEQ;
        add_at(&l, LF_EV_ERASED, last + rng_range(r, DAY, 60 * DAY));
    }
}

/* The identity events of every lead, from their own PRNG (the journeys
 * stay as they are); nothing at all when their knobs are off. */
static void identities(lf_workload_t *g)
{
    size_t n = g->n, first = 0;
    rng_t r;

    if (!(g->o.voids > 0 || g->o.merges > 0 || g->o.erasures > 0))
        return;
    rng_seed(&r, g->o.seed, UINT64_C(0x1d3)); /* "identity" */
    for (size_t i = 1; i <= n && !g->nomem; i++)
        if (i == n || g->ev[i].lead != g->ev[first].lead) {
            identity_events(g, first, i, &r);
            first = i;
        }
}

/* Every journey, then the faults. @returns LF_OK or LF_ERR_NOMEM. */
static lf_err_t generate(lf_workload_t *g)
{
    int64_t *caps = malloc((g->o.leads ? g->o.leads : 1) * sizeof(int64_t));
    rng_t r;

    if (!caps)
        return LF_ERR_NOMEM;
    /* Lead 1 is the first captured: sort the capture times. */
    rng_seed(&r, g->o.seed, 0);
    for (uint32_t i = 0; i < g->o.leads; i++)
        caps[i] = capture_time(g, &r);
    qsort(caps, g->o.leads, sizeof(int64_t), cmp_i64);
    for (uint32_t i = 0; i < g->o.leads && !g->nomem; i++)
        journey(g, i, caps[i]);
    free(caps);
    if (!g->nomem)
        identities(g);
    if (!g->nomem)
        faults(g);
    return g->nomem ? LF_ERR_NOMEM : LF_OK;
}

/* ---------------------------------------------------------------------------
 * Rendering: a compact event into an lf_event_t whose strings point into
 * static tables and the scratch buffers (never lf_event_clear() it).
 */

/* The fields of a capture: channel, campaign and the four attributes. */
static void render_captured(const gev_t *e, lf_event_t *ev, scratch_t *s)
{
    const struct channel_s *ch = &channels[e->i1];

    ev->source = (char *)ch->source;
    ev->u.captured.channel = (char *)ch->name;
    ev->u.captured.campaign = e->i2 >= 0 ? (char *)ch->campaigns[e->i2] : NULL;
    /* keys in sorted order, as lf_event_t wants them */
    s->attrs[0] = (lf_attr_t){"company", (char *)companies[(e->i3 >> 12) & 15]};
    s->attrs[1] = (lf_attr_t){"company_size", (char *)sizes[(e->i3 >> 4) & 15]};
    s->attrs[2] = (lf_attr_t){"country", (char *)countries[e->i3 & 15]};
    s->attrs[3] =
        (lf_attr_t){"industry", (char *)industries[(e->i3 >> 8) & 15]};
    ev->u.captured.attrs = s->attrs;
    ev->u.captured.attr_count = 4;
}

/* The event id of event @p seq of @p lead_id: a UUID v5 of the seed, the
 * lead and the event's number, so a run again sends the same ids. */
static void event_uuid(const lf_workload_t *g, const char *lead_id,
                       unsigned seq, char *out)
{
    char name[160];
    int n = snprintf(name, sizeof(name), "leadflow-gen:%llu:%s:%u",
                     (unsigned long long)g->o.seed, lead_id, seq);
    lf_uuid_v5(name, (size_t)n, out);
}

/* The account of lead @p lead (0-based), 1..accounts: a hash of the seed
 * and the lead, so accounts gather leads captured at any time. */
static uint32_t account_of(const lf_workload_t *g, uint32_t lead)
{
    uint64_t x = g->o.seed ^ ((uint64_t)lead * UINT64_C(0x9e3779b97f4a7c15));
    return (uint32_t)(splitmix64(&x) % g->o.accounts) + 1;
}

/* Opportunity @p n of lead @p lead_id, into @p out: a CRM's own
 * reference, not the lead id, which an erasure must find nowhere else
 * (an FNV-1a of it, 64 bits: deterministic). */
static char *opp_id(char *out, size_t size, const char *lead_id, int n)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);

    for (const char *c = lead_id; *c; c++)
        h = (h ^ (unsigned char)*c) * UINT64_C(0x100000001b3);
    snprintf(out, size, "OPP-%016" PRIx64 "-%d", h, n);
    return out;
}

/* The envelope: lead id, event id (event_uuid()), the lead's account. */
static void render_envelope(const lf_workload_t *g, const gev_t *e,
                            lf_event_t *ev, scratch_t *s)
{
    memset(ev, 0, sizeof(*ev));
    snprintf(s->lead_id, sizeof(s->lead_id), "%s%0*u", g->o.prefix,
             g->lead_width, e->lead + 1);
    event_uuid(g, s->lead_id, e->seq, s->event_id);
    if (g->o.accounts) {
        snprintf(s->account, sizeof(s->account), "ACC-%06u",
                 account_of(g, e->lead));
        ev->account_id = s->account;
    }
    ev->event_id = s->event_id;
    ev->lead_id = s->lead_id;
    ev->type = (lf_event_type_t)e->type;
    ev->occurred_at = e->at;
    ev->source = "salesforce";
}

static void render_event(const lf_workload_t *g, const gev_t *e, lf_event_t *ev,
                         scratch_t *s)
{
    render_envelope(g, e, ev, s);
    switch (e->type) {
    case LF_EV_CAPTURED:
        render_captured(e, ev, s);
        break;
    case LF_EV_SCORED:
        ev->source = "marketo";
        ev->u.scored.score = e->i1;
        ev->u.scored.threshold = e->i2;
        ev->u.scored.model = (char *)models[e->i3];
        break;
    case LF_EV_HANDED_OFF:
        ev->source = "marketo";
        ev->actor = "rule:lead-routing";
        snprintf(s->owner, sizeof(s->owner), "sdr-%02d", e->i1);
        ev->u.handed_off.owner = s->owner;
        ev->u.handed_off.sla_hours = e->i2;
        break;
    case LF_EV_ACCEPTED:
        snprintf(s->owner, sizeof(s->owner), "sdr-%02d", e->i1);
        ev->actor = s->owner;
        ev->u.accepted.owner = s->owner;
        break;
    case LF_EV_RECYCLED:
        ev->u.recycled.reason = (lf_recycle_reason_t)e->i1;
        ev->u.recycled.note = e->i2 >= 0 ? (char *)notes[e->i2] : NULL;
        break;
    case LF_EV_QUALIFIED:
        ev->u.qualified.opportunity_id =
            opp_id(s->opp, sizeof(s->opp), s->lead_id, e->i1);
        ev->u.qualified.amount_minor = e->amount;
        ev->u.qualified.currency = (char *)currencies[e->i2];
        break;
    case LF_EV_WON:
        ev->u.won.amount_minor = e->amount;
        ev->u.won.currency = (char *)currencies[e->i2];
        break;
    case LF_EV_LOST:
        ev->u.lost.reason = (char *)lost_reasons[e->i1];
        break;
    case LF_EV_DISQUALIFIED:
        if (e->i3 < 0) {
            ev->source = "marketo";
            ev->actor = "rule:junk-filter";
            ev->u.disqualified.reason = (char *)junk_reasons[e->i1];
        } else {
            ev->u.disqualified.reason = (char *)fit_reasons[e->i1];
        }
        break;
    case LF_EV_MERGED:
        ev->actor = "rule:dedup";
        snprintf(s->other, sizeof(s->other), "%s%0*u", g->o.prefix,
                 g->lead_width, (unsigned)e->i1 + 1);
        ev->u.merged.into_lead_id = s->other;
        return;
    case LF_EV_VOIDED:
        event_uuid(g, s->lead_id, (unsigned)e->i1, s->voided);
        ev->u.voided.voided_event_id = s->voided;
        ev->u.voided.reason = (char *)void_reasons[e->i2];
        return;
    case LF_EV_ERASED:
        ev->source = "privacy-portal";
        /* A ticket number of its own: a reference that quoted the lead
         * id would keep it in the database after the erasure. */
        snprintf(s->request, sizeof(s->request), "DSR-%08x",
                 request_number(s->lead_id));
        ev->u.erased.request_id = s->request;
        return;
    }
    /* The sales rep who recorded a sales-side outcome. */
    if (e->type >= LF_EV_RECYCLED && e->i3 > 0) {
        snprintf(s->actor, sizeof(s->actor), "sdr-%02d", e->i3);
        ev->actor = s->actor;
    }
}

/* Damage the object *@p objp (an event's JSON, of type @p type) the way
 * malformed line kind @p bad wants; it may be replaced. */
static void damage(int bad, json_t **objp, const char *type)
{
    json_t *obj = *objp;

    switch (bad) {
    case BAD_TRUNCATED:
    case BAD_UTF8:
        break;
    case BAD_MISSING_LEAD_ID:
        json_object_del(obj, "lead_id");
        break;
    case BAD_UNKNOWN_TYPE:
        json_object_set_new(obj, "type", json_string("teleported"));
        break;
    case BAD_TIMESTAMP:
        json_object_set_new(obj, "occurred_at", json_string("last tuesday"));
        break;
    case BAD_WRONG_TYPE:
        json_object_set_new(obj, "lead_id", json_integer(42));
        break;
    case BAD_UNKNOWN_FIELD:
        json_object_set_new(obj, "colour", json_string("blue"));
        break;
    case BAD_NEGATIVE:
        if (json_object_get(obj, "score"))
            json_object_set_new(obj, "score", json_integer(-5));
        else if (json_object_get(obj, "sla_hours"))
            json_object_set_new(obj, "sla_hours", json_integer(-1));
        else if (json_object_get(obj, "amount_minor"))
            json_object_set_new(obj, "amount_minor", json_integer(-100));
        else
            json_object_set_new(obj, "occurred_at", json_integer(-1000));
        break;
    case BAD_CURRENCY:
        if (json_object_get(obj, "currency"))
            json_object_set_new(obj, "currency", json_string("usd"));
        else
            json_object_set_new(obj, "amount_minor", json_string("lots"));
        break;
    case BAD_EMPTY_LEAD_ID:
        json_object_set_new(obj, "lead_id", json_string(""));
        break;
    case BAD_NOT_OBJECT: {
        json_t *arr = json_array();
        json_array_append(arr, json_object_get(obj, "lead_id"));
        json_decref(obj);
        *objp = arr;
        break;
    }
    case BAD_LONG_LEAD_ID: {
        char id[201];
        memset(id, 'x', 200);
        id[200] = '\0';
        json_object_set_new(obj, "lead_id", json_string(id));
        break;
    }
    case BAD_OTHER_TYPES_FIELD:
        if (type && !strcmp(type, "captured"))
            json_object_set_new(obj, "owner", json_string("sdr-01"));
        else
            json_object_set_new(obj, "channel", json_string("web"));
        break;
    }
}

/* A malformed line of kind @p bad, made from the good line @p good (without
 * its event_id, so a line that is fixed later is a new event). Each kind
 * is refused by leadflow-emit with a reason naming what is wrong. */
static void render_bad(int bad, const char *good, size_t len, lf_buf_t *out)
{
    json_t *obj = json_loadb(good, len, 0, NULL);
    const char *type;
    char *text;

    lf_buf_reset(out);
    if (!obj)
        return;
    json_object_del(obj, "event_id");
    type = json_string_value(json_object_get(obj, "type"));
    damage(bad, &obj, type);
    text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    if (!text)
        return;
    if (bad == BAD_TRUNCATED) {
        lf_buf_append(out, text, strlen(text) / 2);
    } else if (bad == BAD_UTF8) {
        /* a Latin-1 byte where UTF-8 must be: "source":"\xe9..." */
        char *p = strstr(text, "\"source\":\"");
        if (p) {
            p += 10;
            lf_buf_append(out, text, (size_t)(p - text));
            lf_buf_append(out, "caf\xe9-", 5);
            lf_buf_puts(out, p);
        } else {
            lf_buf_puts(out, text);
        }
    } else {
        lf_buf_puts(out, text);
    }
    free(text);
}

/* ---------------------------------------------------------------------------
 * Options and the API.
 */

void lf_workload_defaults(lf_workload_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->seed = 1;
    o->leads = 1000;
    o->start = INT64_C(1767225600000); /* 2026-01-01T00:00:00Z */
    o->days = 90;
    o->cutoff = true;
    o->prefix = "L-";
    o->threshold = 60;
    o->sla_hours = 24;
    o->deal_size = 12000;
    for (int i = 0; i < LF_WL_RATE_COUNT; i++)
        o->rate[i] = lf_workload_rates[i].value;
    for (int i = 0; i < LF_WL_DELAY_COUNT; i++)
        o->delay[i] = lf_workload_delays[i].value;
}

/* The index of NAME in "NAME=VALUE" in @p table, *value after the '='.
 * @returns -1 when there is no '=' or no such name. */
static int param_find(const lf_workload_param_t *table, int n, const char *arg,
                      const char **value)
{
    const char *eq = strchr(arg, '=');

    if (!eq)
        return -1;
    for (int i = 0; i < n; i++)
        if (strlen(table[i].name) == (size_t)(eq - arg) &&
            !strncmp(table[i].name, arg, (size_t)(eq - arg))) {
            *value = eq + 1;
            return i;
        }
    return -1;
}

lf_err_t lf_workload_set_rate(lf_workload_opts_t *o, const char *name_value,
                              char *errstr, size_t errstr_size)
{
    const char *value = NULL;
    int i = param_find(lf_workload_rates, LF_WL_RATE_COUNT, name_value, &value);
    char *end;
    double v;

    if (i < 0)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "\"%s\": expected NAME=P with a NAME from the table",
                         name_value);
    errno = 0;
    v = strtod(value, &end);
    if (errno || end == value || *end || !(v >= 0.0 && v <= 1.0))
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "\"%s\": P must be 0..1", name_value);
    o->rate[i] = v;
    return LF_OK;
}

/* "90s", "30m", "4h", "7d", "1.5d", "250ms" -> ms, at most 3650 days. */
static bool parse_duration(const char *s, double *ms)
{
    static const struct {
        const char *unit;
        double ms;
    } units[] = {{"ms", 1}, {"s", SEC}, {"m", MIN}, {"h", HOUR}, {"d", DAY}};
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || !(v >= 0))
        return false;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (!strcmp(end, units[i].unit)) {
            *ms = v * units[i].ms;
            return *ms <= 3650.0 * DAY;
        }
    return false;
}

lf_err_t lf_workload_set_delay(lf_workload_opts_t *o, const char *name_value,
                               char *errstr, size_t errstr_size)
{
    const char *value = NULL;
    int i =
        param_find(lf_workload_delays, LF_WL_DELAY_COUNT, name_value, &value);

    if (i < 0)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "\"%s\": expected NAME=DURATION with a NAME from "
                         "the table",
                         name_value);
    if (!parse_duration(value, &o->delay[i]))
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "\"%s\": DURATION is a number and ms, s, m, h or d "
                         "(at most 3650d)",
                         name_value);
    return LF_OK;
}

lf_err_t lf_workload_check(const lf_workload_opts_t *o, char *errstr,
                           size_t errstr_size)
{
    const double *r = o->rate;

    if (r[LF_WL_RATE_HANDOFF_DISQ] + r[LF_WL_RATE_ACCEPT] > 1 ||
        r[LF_WL_RATE_SQL] + r[LF_WL_RATE_SAL_LOST] > 1 ||
        r[LF_WL_RATE_WIN] + r[LF_WL_RATE_SQL_RECYCLE] > 1)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "handoff-disq + accept, sql + sal-lost and win + "
                         "sql-recycle must each be at most 1");
    if (o->leads > LF_WORKLOAD_MAX_LEADS || o->days < 1 || o->days > 3650 ||
        o->start < 0 || !o->prefix || strlen(o->prefix) > 40 ||
        o->threshold < 10 || o->threshold > 1000 || o->sla_hours < 0 ||
        !(o->deal_size >= 1 && o->deal_size <= 1e9) || o->shuffle < 0 ||
        !(o->merges >= 0 && o->merges <= 1) ||
        !(o->voids >= 0 && o->voids <= 1) ||
        !(o->erasures >= 0 && o->erasures <= 1) ||
        o->accounts > LF_WORKLOAD_MAX_LEADS)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "an option is out of range (lf_workload.h)");
    /* journeys run past the window by up to MAX_CYCLES long cycles */
    if (o->start + o->days * DAY > INT64_C(253402300799999) - 10 * 3650 * DAY)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "the capture window reaches past year 9999");
    return LF_OK;
}

lf_err_t lf_workload_new(const lf_workload_opts_t *o, lf_workload_t **out,
                         char *errstr, size_t errstr_size)
{
    lf_workload_t *g;
    lf_err_t err;

    *out = NULL;
    if ((err = lf_workload_check(o, errstr, errstr_size)))
        return err;
    if (!(g = calloc(1, sizeof(*g))))
        return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
    g->o = *o;
    g->end = o->start + o->days * DAY;
    g->lead_width = o->leads >= 1000000 ? 8 : 6;
    g->response_scale = o->delay[LF_WL_DELAY_RESPONSE] / response_base_mean();
    if (generate(g)) {
        lf_workload_destroy(g);
        return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size,
                         "out of memory for the events of %u leads", o->leads);
    }
    *out = g;
    return LF_OK;
}

void lf_workload_destroy(lf_workload_t *w)
{
    if (!w)
        return;
    free(w->ev);
    lf_buf_free(&w->bad);
    free(w);
}

size_t lf_workload_count(const lf_workload_t *w)
{
    return w->n;
}

lf_workload_kind_t lf_workload_kind(const lf_workload_t *w, size_t i)
{
    return w->ev[i].kind >= KIND_BAD         ? LF_WL_BAD
           : w->ev[i].kind == KIND_DUPLICATE ? LF_WL_DUPLICATE
                                             : LF_WL_EVENT;
}

const lf_event_t *lf_workload_event(lf_workload_t *w, size_t i)
{
    render_event(w, &w->ev[i], &w->out, &w->s);
    return &w->out;
}

lf_err_t lf_workload_line(lf_workload_t *w, size_t i, lf_buf_t *out)
{
    const gev_t *e = &w->ev[i];

    render_event(w, e, &w->out, &w->s);
    lf_buf_reset(out);
    if (lf_json_format_event(&w->out, out))
        return LF_ERR_NOMEM;
    if (e->kind < KIND_BAD)
        return LF_OK;
    render_bad(e->kind - KIND_BAD, out->data, out->len, &w->bad);
    lf_buf_reset(out);
    return lf_buf_append(out, w->bad.data, w->bad.len);
}
