/* leadflow-gen: a synthetic, realistic and deterministic funnel workload:
 * the lifecycle events of N leads as JSON lines, or straight to Kafka. */

/*
 * How it works. Every lead gets its own PRNG, seeded from --seed and the
 * lead's number, and walks the funnel: captured, scored, handed off with
 * an SLA, accepted or recycled, qualified into an opportunity, won or lost,
 * recycled into nurture and perhaps re-qualified into a new cycle. Each
 * step is a coin with a documented default rate, and each wait a draw from
 * a documented delay. The leads' events are then merged into one stream in
 * time order. Because a lead's journey depends only on its own PRNG, the
 * output is the same for the same flags and seed, byte for byte.
 *
 * Every journey follows the projector's state machine (issue 4, section 3)
 * unless --anomalies asks otherwise. The fault knobs (--duplicates,
 * --shuffle, --late, --bad) then damage the stream the way real producers
 * do, drawing from a separate PRNG so the clean journeys do not change.
 *
 * The events are kept in memory as compact records (48 bytes each) and
 * turned into JSON, or into lf_event_t for --produce, one at a time.
 */

#include "lf_cli.h"
#include "lf_common.h"
#include "lf_conf.h"
#include "lf_event.h"
#include "lf_json.h"
#include "lf_log.h"
#include "lf_producer.h"
#include "lf_time.h"
#include "lf_uuid.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "leadflow-gen"

#define SEC  INT64_C(1000)
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)
#define DAY  (24 * HOUR)

#define MAX_LEADS  50000000u
#define MAX_CYCLES 3 /* a lead re-qualifies from nurture at most twice */

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

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

typedef struct param_s {
    const char *name;
    double value; /* a probability, or a delay in ms */
    const char *help;
} param_t;

enum {
    R_MQL,
    R_JUNK,
    R_ACCEPT,
    R_HANDOFF_DISQ,
    R_SQL,
    R_SAL_LOST,
    R_WIN,
    R_SQL_RECYCLE,
    R_LOST_RECYCLE,
    R_REQUALIFY,
    R_TOUCH,
    R_RESCORE,
    R__COUNT
};

static param_t rates[R__COUNT] = {
    [R_MQL] = {"mql", 0.30,
               "captured -> marketing_qualified (score crosses "
               "the threshold); 20-40 % [1]"},
    [R_JUNK] = {"junk", 0.05,
                "captured -> disqualified by marketing (spam, student, "
                "competitor)"},
    [R_ACCEPT] = {"accept", 0.70,
                  "handed_off -> sales_accepted; the rest recycled [1]"},
    [R_HANDOFF_DISQ] = {"handoff-disq", 0.05,
                        "handed_off -> disqualified by sales (wrong fit)"},
    [R_SQL] = {"sql", 0.55,
               "sales_accepted -> sales_qualified (opportunity) [1]"},
    [R_SAL_LOST] = {"sal-lost", 0.10,
                    "sales_accepted -> lost; the rest recycled"},
    [R_WIN] = {"win", 0.25, "sales_qualified -> won; 20-30 % [1]"},
    [R_SQL_RECYCLE] = {"sql-recycle", 0.10,
                       "sales_qualified -> recycled; the rest lost"},
    [R_LOST_RECYCLE] = {"lost-recycle", 0.30, "lost -> recycled to nurture"},
    [R_REQUALIFY] = {"requalify", 0.25,
                     "nurture -> marketing_qualified again (a new cycle)"},
    [R_TOUCH] = {"touch", 0.15,
                 "a known lead is captured again (another form, "
                 "another campaign)"},
    [R_RESCORE] = {"rescore", 0.20,
                   "a lead in sales is scored again (no stage change)"},
};

enum {
    D_SCORE,
    D_RESCORE,
    D_HANDOFF,
    D_RESPONSE,
    D_QUALIFY,
    D_CLOSE,
    D_LOST_RECYCLE,
    D_NURTURE,
    D_TOUCH,
    D_JUNK,
    D__COUNT
};

static param_t delays[D__COUNT] = {
    [D_SCORE] = {"score", 1.0 * DAY, "capture -> first score (exponential)"},
    [D_RESCORE] = {"rescore", 3.0 * DAY, "between scores (exponential)"},
    [D_HANDOFF] = {"handoff", 4.0 * HOUR,
                   "marketing_qualified -> handed_off (exponential)"},
    [D_RESPONSE] = {"response", 42.0 * HOUR,
                    "handed_off -> accepted or recycled: the HBR 2011 "
                    "buckets scaled to this mean [2]"},
    [D_QUALIFY] = {"qualify", 7.0 * DAY,
                   "sales_accepted -> qualified or lost (exponential)"},
    [D_CLOSE] = {"close", 45.0 * DAY,
                 "sales_qualified -> won or lost (lognormal) [3]"},
    [D_LOST_RECYCLE] = {"lost-recycle", 30.0 * DAY,
                        "lost -> recycled (exponential)"},
    [D_NURTURE] = {"nurture", 60.0 * DAY,
                   "nurture -> re-qualifying score (exponential)"},
    [D_TOUCH] = {"touch", 10.0 * DAY, "capture -> a repeat capture"},
    [D_JUNK] = {"junk", 2.0 * DAY, "score -> disqualified as junk"},
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
static const char *currencies[] = {"USD", "EUR", "GBP"};
static const double currency_w[] = {70, 20, 10};

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ---------------------------------------------------------------------------
 * Compact events.
 */

enum { KIND_EVENT = 0, KIND_DUPLICATE = 1, KIND_BAD = 2 };

/* The kinds of malformed line --bad writes (one per KIND_BAD + k). */
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

typedef struct gen_s {
    uint64_t seed;
    uint32_t leads;
    int64_t start, end; /* capture window [start, end) */
    bool cutoff;        /* drop events after end */
    const char *prefix;
    int threshold, sla_hours, lead_width;
    double deal_size; /* median, major units */
    double duplicates, late, bad, anomalies;
    long shuffle;
    double response_scale;
    gev_t *ev;
    size_t n, cap;
} gen_t;

static gev_t *push(gen_t *g)
{
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 4096;
        gev_t *n = realloc(g->ev, cap * sizeof(*n));
        if (!n) {
            fprintf(stderr, PROG ": out of memory\n");
            exit(LF_EX_SOFTWARE);
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
    gen_t *g;
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
    if (l->g->cutoff && at >= l->g->end)
        return NULL;
    e = push(l->g);
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
    e->i1 = qualifies
                ? (int)rng_range(&l->r, l->g->threshold, l->g->threshold + 35)
                : (int)rng_range(&l->r, 5, l->g->threshold - 1);
    e->i2 = l->g->threshold;
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

static void journey(gen_t *g, uint32_t lead, int64_t captured_at)
{
    static const int sales_recycle[] = {LF_RR_NOT_READY, LF_RR_NO_RESPONSE,
                                        LF_RR_BAD_TIMING};
    static const int qual_recycle[] = {LF_RR_NO_BUDGET, LF_RR_NO_AUTHORITY,
                                       LF_RR_NO_NEED, LF_RR_BAD_TIMING};
    static const int opp_recycle[] = {LF_RR_NO_BUDGET, LF_RR_BAD_TIMING,
                                      LF_RR_OTHER};
    lead_t l = {.g = g, .lead = lead, .t = captured_at, .cycle = 1};
    gev_t *e;
    bool qualifies;

    rng_seed(&l.r, g->seed, (uint64_t)lead + 1);

    if (!(e = add_at(&l, LF_EV_CAPTURED, captured_at)))
        return;
    captured_fields(&l, e);

    /* A repeat capture: a touch, no stage change, at any later time. */
    if (rng_chance(&l.r, rates[R_TOUCH].value) &&
        (e = add_at(&l, LF_EV_CAPTURED,
                    captured_at + MIN +
                        (int64_t)rng_exp(&l.r, delays[D_TOUCH].value))))
        captured_fields(&l, e);

    /* Anomalies on request: an event the state machine refuses. */
    if (rng_chance(&l.r, g->anomalies)) {
        if (rng_chance(&l.r, 0.5)) {
            /* the CRM accepted a lead marketing never handed off */
            if ((e = add_at(&l, LF_EV_ACCEPTED,
                            captured_at + rng_range(&l.r, MIN, HOUR))))
                e->i1 = (int)rng_range(&l.r, 1, 24);
        } else if ((e = add_at(&l, LF_EV_SCORED,
                               captured_at - rng_range(&l.r, MIN, DAY)))) {
            /* scored before its capture reached us */
            e->i1 = (int)rng_range(&l.r, 5, g->threshold - 1);
            e->i2 = g->threshold;
        }
    }

    if (rng_chance(&l.r, rates[R_JUNK].value)) {
        scored(&l, rng_exp(&l.r, delays[D_SCORE].value), false);
        if ((e = step(&l, LF_EV_DISQUALIFIED,
                      rng_exp(&l.r, delays[D_JUNK].value)))) {
            e->i1 = (int)rng_range(&l.r, 0, N(junk_reasons) - 1);
            e->i3 = -1;
        }
        return;
    }
    qualifies = rng_chance(&l.r, rates[R_MQL].value);
    for (int i = 0, n = (int)rng_range(&l.r, 1, 3); i < n; i++)
        scored(&l, rng_exp(&l.r, delays[i ? D_RESCORE : D_SCORE].value),
               qualifies && i == n - 1);
    if (!qualifies)
        return;

    for (;;) { /* one cycle: marketing_qualified ... */
        double x;
        l.owner = (int)rng_range(&l.r, 1, 24);
        if ((e = step(&l, LF_EV_HANDED_OFF,
                      rng_exp(&l.r, delays[D_HANDOFF].value)))) {
            e->i1 = l.owner;
            e->i2 = g->sla_hours;
        }
        x = rng_unit(&l.r);
        if (x < rates[R_HANDOFF_DISQ].value) {
            if ((e = step(&l, LF_EV_DISQUALIFIED, response_delay(&l)))) {
                e->i1 = (int)rng_range(&l.r, 0, N(fit_reasons) - 1);
                e->i3 = l.owner;
            }
            return;
        }
        if (x >= rates[R_HANDOFF_DISQ].value + rates[R_ACCEPT].value) {
            recycled(&l, response_delay(&l), sales_recycle, N(sales_recycle));
            goto nurture;
        }
        if ((e = step(&l, LF_EV_ACCEPTED, response_delay(&l))))
            e->i1 = l.owner;

        if (rng_chance(&l.r, rates[R_RESCORE].value))
            scored(&l, rng_exp(&l.r, delays[D_QUALIFY].value / 2), true);
        x = rng_unit(&l.r);
        if (x >= rates[R_SQL].value) {
            double d = rng_exp(&l.r, delays[D_QUALIFY].value);
            if (x < rates[R_SQL].value + rates[R_SAL_LOST].value) {
                if ((e = step(&l, LF_EV_LOST, d))) {
                    e->i1 = (int)rng_range(&l.r, 0, N(lost_reasons) - 1);
                    e->i3 = l.owner;
                }
                goto lost;
            }
            recycled(&l, d, qual_recycle, N(qual_recycle));
            goto nurture;
        }
        if ((e = step(&l, LF_EV_QUALIFIED,
                      rng_exp(&l.r, delays[D_QUALIFY].value)))) {
            e->i1 = l.cycle;
            e->i2 = rng_pick(&l.r, currency_w, N(currencies));
            e->i3 = l.owner;
            /* whole hundreds of the minor unit, lognormal around the
             * median deal size */
            e->amount = 100 * (int64_t)rng_lognormal(
                                  &l.r, g->deal_size * exp(0.405), 0.9);
        }
        {
            int64_t amount = e ? e->amount : 0;
            int currency = e ? e->i2 : 0;
            double d = rng_lognormal(&l.r, delays[D_CLOSE].value, 0.7);
            x = rng_unit(&l.r);
            if (x < rates[R_WIN].value) {
                if ((e = step(&l, LF_EV_WON, d))) {
                    e->amount =
                        amount / 100 * (int64_t)rng_range(&l.r, 80, 105);
                    e->i2 = currency;
                    e->i3 = l.owner;
                }
                return;
            }
            if (x < rates[R_WIN].value + rates[R_SQL_RECYCLE].value) {
                recycled(&l, d, opp_recycle, N(opp_recycle));
                goto nurture;
            }
            if ((e = step(&l, LF_EV_LOST, d))) {
                e->i1 = (int)rng_range(&l.r, 0, N(lost_reasons) - 1);
                e->i3 = l.owner;
            }
        }
    lost:
        if (!rng_chance(&l.r, rates[R_LOST_RECYCLE].value))
            return;
        recycled(&l, rng_exp(&l.r, delays[D_LOST_RECYCLE].value),
                 (const int[]){LF_RR_OTHER}, 1);
    nurture:
        if (l.cycle >= MAX_CYCLES ||
            !rng_chance(&l.r, rates[R_REQUALIFY].value))
            return;
        /* Re-engaged: a qualifying score moves nurture to
         * marketing_qualified and starts the next cycle. */
        scored(&l, rng_exp(&l.r, delays[D_NURTURE].value), true);
        l.cycle++;
        if (l.over)
            return;
    }
}

/* Capture times: uniform over the window, thinned by a working-week
 * profile (weekends and nights see fewer form fills). */
static int64_t capture_time(gen_t *g, rng_t *r)
{
    for (;;) {
        int64_t t =
            g->start + (int64_t)(rng_unit(r) * (double)(g->end - g->start));
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

static void generate(gen_t *g)
{
    rng_t r;
    int64_t *caps = malloc((g->leads ? g->leads : 1) * sizeof(int64_t));
    size_t n;

    if (!caps) {
        fprintf(stderr, PROG ": out of memory\n");
        exit(LF_EX_SOFTWARE);
    }
    /* Lead 1 is the first captured: sort the capture times. */
    rng_seed(&r, g->seed, 0);
    for (uint32_t i = 0; i < g->leads; i++)
        caps[i] = capture_time(g, &r);
    qsort(caps, g->leads, sizeof(int64_t), cmp_i64);
    for (uint32_t i = 0; i < g->leads; i++)
        journey(g, i, caps[i]);
    free(caps);

    /* Faults, from their own stream, over the clean events in the order
     * they were generated. */
    rng_seed(&r, g->seed, UINT64_C(0xfa17));
    n = g->n;
    for (size_t i = 0; i < n; i++) {
        if (g->late > 0 && rng_chance(&r, g->late))
            g->ev[i].arrive = g->ev[i].at + rng_range(&r, DAY, 7 * DAY);
        if (g->duplicates > 0 && rng_chance(&r, g->duplicates)) {
            gev_t *d = push(g);
            *d = g->ev[i];
            d->kind = KIND_DUPLICATE;
            d->arrive += rng_range(&r, SEC, 15 * MIN);
        }
        if (g->bad > 0 && rng_chance(&r, g->bad)) {
            gev_t *b = push(g);
            *b = g->ev[i];
            b->kind = (uint8_t)(KIND_BAD + rng_range(&r, 0, BAD__COUNT - 1));
        }
    }
    if (g->n)
        qsort(g->ev, g->n, sizeof(gev_t), cmp_gev);
    if (g->shuffle > 1)
        for (size_t w = 0; w < g->n; w += (size_t)g->shuffle) {
            size_t len =
                g->n - w < (size_t)g->shuffle ? g->n - w : (size_t)g->shuffle;
            for (size_t i = len - 1; i > 0; i--) {
                size_t j = (size_t)rng_range(&r, 0, (int64_t)i);
                gev_t t = g->ev[w + i];
                g->ev[w + i] = g->ev[w + j];
                g->ev[w + j] = t;
            }
        }
}

/* ---------------------------------------------------------------------------
 * Rendering: a compact event into an lf_event_t whose strings point into
 * static tables and the scratch buffers (never lf_event_clear() it).
 */

typedef struct scratch_s {
    char lead_id[64], event_id[LF_UUID_STRLEN + 1], owner[16], actor[32],
        opp[80];
    lf_attr_t attrs[4];
} scratch_t;

static void render_event(const gen_t *g, const gev_t *e, lf_event_t *ev,
                         scratch_t *s)
{
    char name[160];
    int n;

    memset(ev, 0, sizeof(*ev));
    snprintf(s->lead_id, sizeof(s->lead_id), "%s%0*u", g->prefix, g->lead_width,
             e->lead + 1);
    n = snprintf(name, sizeof(name), "leadflow-gen:%llu:%s:%u",
                 (unsigned long long)g->seed, s->lead_id, e->seq);
    lf_uuid_v5(name, (size_t)n, s->event_id);
    ev->event_id = s->event_id;
    ev->lead_id = s->lead_id;
    ev->type = (lf_event_type_t)e->type;
    ev->occurred_at = e->at;
    ev->source = "salesforce";
    switch (e->type) {
    case LF_EV_CAPTURED: {
        const struct channel_s *ch = &channels[e->i1];
        ev->source = (char *)ch->source;
        ev->u.captured.channel = (char *)ch->name;
        ev->u.captured.campaign =
            e->i2 >= 0 ? (char *)ch->campaigns[e->i2] : NULL;
        /* keys in sorted order, as lf_event_t wants them */
        s->attrs[0] =
            (lf_attr_t){"company", (char *)companies[(e->i3 >> 12) & 15]};
        s->attrs[1] =
            (lf_attr_t){"company_size", (char *)sizes[(e->i3 >> 4) & 15]};
        s->attrs[2] = (lf_attr_t){"country", (char *)countries[e->i3 & 15]};
        s->attrs[3] =
            (lf_attr_t){"industry", (char *)industries[(e->i3 >> 8) & 15]};
        ev->u.captured.attrs = s->attrs;
        ev->u.captured.attr_count = 4;
        break;
    }
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
        snprintf(s->opp, sizeof(s->opp), "OPP-%s-%d", s->lead_id, e->i1);
        ev->u.qualified.opportunity_id = s->opp;
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
    }
    /* The sales rep who recorded a sales-side outcome. */
    if (e->type >= LF_EV_RECYCLED && e->i3 > 0) {
        snprintf(s->actor, sizeof(s->actor), "sdr-%02d", e->i3);
        ev->actor = s->actor;
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
        obj = arr;
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
 * Output.
 */

static int write_json(const gen_t *g, FILE *fp)
{
    lf_buf_t line = {0}, bad = {0};
    scratch_t s;
    lf_event_t ev;

    for (size_t i = 0; i < g->n && !stop_requested; i++) {
        const gev_t *e = &g->ev[i];
        render_event(g, e, &ev, &s);
        lf_buf_reset(&line);
        if (lf_json_format_event(&ev, &line)) {
            fprintf(stderr, PROG ": out of memory\n");
            return LF_EX_SOFTWARE;
        }
        if (e->kind >= KIND_BAD) {
            render_bad(e->kind - KIND_BAD, line.data, line.len, &bad);
            fwrite(bad.data, 1, bad.len, fp);
        } else {
            fwrite(line.data, 1, line.len, fp);
        }
        putc('\n', fp);
    }
    lf_buf_free(&line);
    lf_buf_free(&bad);
    if (fflush(fp) || ferror(fp)) {
        fprintf(stderr, PROG ": write error: %s\n", strerror(errno));
        return LF_EX_IOERR;
    }
    return LF_EX_OK;
}

typedef struct produce_stats_s {
    int64_t failed_retriable, failed_permanent;
    char first_reason[256];
    int64_t *lat; /* delivery latencies in us, for the summary */
    size_t nlat, caplat;
} produce_stats_t;

static void on_delivery(const lf_delivery_t *dr, void *opaque)
{
    produce_stats_t *st = opaque;
    if (!dr->err) {
        if (st->nlat < st->caplat)
            st->lat[st->nlat++] = dr->latency_us;
        return;
    }
    if (lf_producer_err_retriable(dr->err))
        st->failed_retriable++;
    else
        st->failed_permanent++;
    if (!st->first_reason[0])
        snprintf(st->first_reason, sizeof(st->first_reason), "%s", dr->reason);
}

static int produce_all(const gen_t *g, lf_conf_t *conf)
{
    char errstr[512], q[600];
    produce_stats_t st = {0};
    lf_producer_t *p;
    scratch_t s;
    lf_event_t ev;
    int64_t t0 = lf_now_mono_ms(), emitted, delivered, failed, last = t0;
    size_t i;
    int rc = LF_EX_OK;

    lf_err_t perr = lf_producer_create(conf, &p, errstr, sizeof(errstr));
    if (perr) {
        fprintf(stderr, PROG ": %s\n", errstr);
        return perr == LF_ERR_TEMPORARY ? LF_EX_TEMPFAIL : LF_EX_CONFIG;
    }
    st.caplat = g->n;
    st.lat = malloc((g->n ? g->n : 1) * sizeof(int64_t));
    if (!st.lat) {
        lf_producer_destroy(p);
        fprintf(stderr, PROG ": out of memory\n");
        return LF_EX_SOFTWARE;
    }
    lf_producer_set_delivery_cb(p, on_delivery, &st);
    lf_producer_set_interrupt(p, &stop_requested);
    for (i = 0; i < g->n && !stop_requested; i++) {
        render_event(g, &g->ev[i], &ev, &s);
        lf_err_t err = lf_producer_emit(p, &ev, errstr, sizeof(errstr));
        if (err == LF_ERR_TEMPORARY)
            break;
        if (err) {
            LF_LOG(LF_LOG_ERR, "msg=%s lead_id=%s",
                   lf_log_quote(errstr, q, sizeof(q)), ev.lead_id);
            rc = err == LF_ERR_INVALID ? LF_EX_SOFTWARE : LF_EX_UNAVAILABLE;
            break;
        }
    }
    /* Flush: each second report progress; on a signal wait 10 s more at
     * most, then give up on the rest (each counts as failed). */
    int64_t deadline = stop_requested ? lf_now_mono_ms() + 10000 : INT64_MAX;
    while (lf_producer_flush(p, 1000) != LF_OK) {
        lf_producer_counts(p, &emitted, &delivered, &failed);
        if (lf_now_mono_ms() - last >= 5000) {
            LF_LOG(LF_LOG_NOTICE,
                   "msg=\"waiting for deliveries\" in_flight=%lld "
                   "delivered=%lld failed=%lld",
                   (long long)lf_producer_inflight(p), (long long)delivered,
                   (long long)failed);
            last = lf_now_mono_ms();
        }
        if (stop_requested && deadline == INT64_MAX)
            deadline = lf_now_mono_ms() + 10000;
        if (lf_now_mono_ms() >= deadline) {
            lf_producer_purge(p, 5000);
            break;
        }
    }
    lf_producer_counts(p, &emitted, &delivered, &failed);
    double secs = (double)(lf_now_mono_ms() - t0) / 1000.0;
    if (st.nlat)
        qsort(st.lat, st.nlat, sizeof(int64_t), cmp_i64);
    LF_LOG(LF_LOG_NOTICE,
           "msg=\"summary\" events=%zu sent=%lld delivered=%lld failed=%lld "
           "elapsed_s=%.3f events_per_s=%.0f latency_p50_ms=%.1f "
           "latency_p99_ms=%.1f topic=%s",
           g->n, (long long)emitted, (long long)delivered, (long long)failed,
           secs, secs > 0 ? (double)delivered / secs : 0.0,
           st.nlat ? (double)st.lat[st.nlat / 2] / 1000.0 : 0.0,
           st.nlat ? (double)st.lat[st.nlat * 99 / 100] / 1000.0 : 0.0,
           lf_producer_topic(p));
    free(st.lat);
    if (st.first_reason[0])
        LF_LOG(LF_LOG_ERR, "msg=\"first failure\" reason=%s",
               lf_log_quote(st.first_reason, q, sizeof(q)));
    lf_producer_destroy(p);
    if (rc == LF_EX_OK && (failed || (int64_t)i < (int64_t)g->n))
        rc = st.failed_permanent ? LF_EX_UNAVAILABLE : LF_EX_TEMPFAIL;
    return rc;
}

/* ---------------------------------------------------------------------------
 * Command line.
 */

/* "  name          value  help..." wrapped at 79 columns. */
static void help_row(FILE *fp, const char *name, const char *value,
                     const char *help)
{
    int col = fprintf(fp, "  %-13s %-5s ", name, value);
    const int indent = col;

    for (bool first = true; *help; first = false) {
        size_t w = strcspn(help, " ");
        if (!first && col + 1 + (int)w > 79)
            col = fprintf(fp, "\n%*s", indent, "") - 1;
        else if (!first)
            col += fprintf(fp, " ");
        col += fprintf(fp, "%.*s", (int)w, help);
        help += w;
        while (*help == ' ')
            help++;
    }
    fputc('\n', fp);
}

static void usage(FILE *fp)
{
    char b[32];
    fprintf(
        fp,
        "Usage: " PROG " [--leads N] [--seed S] [--start DATE] [--days D]\n"
        "                    [--rate NAME=P]... [--delay NAME=DURATION]...\n"
        "                    [--duplicates P] [--shuffle W] [--late P]\n"
        "                    [--bad P] [--anomalies P] [-o FILE]\n"
        "       " PROG " ... --produce [-b BROKERS] [-t TOPIC]\n"
        "                    [-X key=value]... [-c FILE]\n"
        "       " PROG " --help | --version\n"
        "\n"
        "Writes the lifecycle events of N synthetic leads moving through\n"
        "the funnel, as JSON lines in time order (the input of\n"
        "leadflow-emit), or produces them straight to Kafka with\n"
        "--produce. The same flags and seed give the same output, byte\n"
        "for byte.\n"
        "\n"
        "Workload:\n"
        "  -n, --leads N         leads to generate (default 1000)\n"
        "  -s, --seed S          PRNG seed (default 1)\n"
        "      --start DATE      first capture, RFC 3339 or YYYY-MM-DD\n"
        "                        (default 2026-01-01)\n"
        "      --days D          captures spread over D days (default "
        "90)\n"
        "      --no-cutoff       let every journey finish; by default\n"
        "                        events after the window are dropped (a\n"
        "                        snapshot with open leads)\n"
        "      --prefix P        lead ids are P000001... (default L-)\n"
        "      --threshold T     MQL score threshold (default 60)\n"
        "      --sla-hours H     handoff SLA in hours (default 24) [4]\n"
        "      --deal-size A     median deal in major units (default "
        "12000)\n"
        "      --rate NAME=P     change a rate (table below)\n"
        "      --delay NAME=D    change a mean delay: 90s, 30m, 4h, 7d\n"
        "\n"
        "Faults (for tests):\n"
        "      --duplicates P    re-send each event with probability P\n"
        "                        (same event_id, up to 15 min later)\n"
        "      --shuffle W       shuffle arrival order in windows of W\n"
        "      --late P          deliver an event 1-7 days after its\n"
        "                        occurred_at with probability P\n"
        "      --bad P           after an event, a malformed line with\n"
        "                        probability P (13 kinds: truncated JSON,\n"
        "                        missing or empty or long or non-string\n"
        "                        lead_id, unknown type, bad timestamp,\n"
        "                        unknown field, negative number, bad\n"
        "                        currency, invalid UTF-8, not an object,\n"
        "                        another type's field)\n"
        "      --anomalies P     per lead, an event the state machine\n"
        "                        refuses (default 0)\n"
        "\n"
        "Output:\n"
        "  -o, --output FILE     write to FILE instead of stdout\n"
        "      --produce         produce to Kafka through lf_producer\n"
        "  -b, --brokers LIST    bootstrap servers (default\n"
        "                        $LEADFLOW_BROKERS, then localhost:9092)\n"
        "  -t, --topic NAME      topic (default lead-events)\n"
        "  -X key=value          a setting (leadflow's or librdkafka's);\n"
        "                        -X dump prints them all and exits\n"
        "  -c, --config FILE     settings file (key=value lines)\n"
        "  -v, --verbose / -q, --quiet   more / less logging\n"
        "  -h, --help / -V, --version\n"
        "  Secrets never go on the command line: put sasl.password and\n"
        "  schema.registry.basic.auth.user.info in the -c file (chmod 600)\n"
        "  or in LEADFLOW_* variables.\n"
        "\n"
        "Rates (probabilities; defaults illustrative, see [n]):\n");
    for (int i = 0; i < R__COUNT; i++) {
        snprintf(b, sizeof(b), "%.2f", rates[i].value);
        help_row(fp, rates[i].name, b, rates[i].help);
    }
    fprintf(fp, "\nDelays (means):\n");
    for (int i = 0; i < D__COUNT; i++) {
        double v = delays[i].value;
        if (v >= 2 * DAY)
            snprintf(b, sizeof(b), "%gd", v / DAY);
        else
            snprintf(b, sizeof(b), "%gh", v / HOUR);
        help_row(fp, delays[i].name, b, delays[i].help);
    }
    fprintf(
        fp,
        "\n"
        "Sources (illustrative defaults inside published ranges):\n"
        "  [1] b2blead.io, \"B2B Conversion Rate ... and Benchmarks\" (2026):\n"
        "      lead->MQL 20-40 %%, MQL->SQL 30-60 %% (here accept x sql =\n"
        "      0.385), opportunity->won 20-30 %% for mid-market B2B.\n"
        "  [2] Oldroyd, McElheran, Elkington, \"The Short Life of Online\n"
        "      Sales Leads\", Harvard Business Review, March 2011: 37 %% of\n"
        "      firms answered within an hour, 16 %% in 1-24 h, 24 %% later;\n"
        "      average 42 hours.\n"
        "  [3] B2B sales cycles of 1-6 months (roundups citing Zippia).\n"
        "  [4] common practice: MQL follow-up within a working day.\n"
        "\n"
        "Exit status:\n"
        "  0   done (with --produce: every event delivered)\n"
        "  64  usage error\n"
        "  69  --produce: delivery failed for a reason that will repeat\n"
        "  70  internal error\n"
        "  74  output could not be written\n"
        "  75  --produce: delivery failed (broker unreachable, timed out,\n"
        "      interrupted), or the schema registry stayed unreachable;\n"
        "      running again re-sends the same event ids\n"
        "  78  bad configuration\n");
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, PROG ": ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n");
    usage(stderr);
    return LF_EX_USAGE;
}

static bool parse_prob(const char *s, double *out)
{
    char *end;
    double v;
    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0.0 && v <= 1.0))
        return false;
    *out = v;
    return true;
}

static bool parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* "90s", "30m", "4h", "7d", "1.5d", "250ms" -> ms. */
static bool parse_duration(const char *s, double *ms)
{
    char *end;
    double v;
    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || !(v >= 0))
        return false;
    if (!strcmp(end, "ms"))
        *ms = v;
    else if (!strcmp(end, "s"))
        *ms = v * SEC;
    else if (!strcmp(end, "m"))
        *ms = v * MIN;
    else if (!strcmp(end, "h"))
        *ms = v * HOUR;
    else if (!strcmp(end, "d"))
        *ms = v * DAY;
    else
        return false;
    return *ms <= 3650.0 * DAY;
}

static param_t *find_param(param_t *table, int n, const char *arg,
                           const char **value)
{
    const char *eq = strchr(arg, '=');
    if (!eq)
        return NULL;
    for (int i = 0; i < n; i++)
        if (strlen(table[i].name) == (size_t)(eq - arg) &&
            !strncmp(table[i].name, arg, (size_t)(eq - arg))) {
            *value = eq + 1;
            return &table[i];
        }
    return NULL;
}

enum {
    OPT_START = 256,
    OPT_DAYS,
    OPT_NO_CUTOFF,
    OPT_PREFIX,
    OPT_THRESHOLD,
    OPT_SLA,
    OPT_DEAL,
    OPT_RATE,
    OPT_DELAY,
    OPT_DUP,
    OPT_SHUFFLE,
    OPT_LATE,
    OPT_BAD,
    OPT_ANOM,
    OPT_PRODUCE
};

static int run(int argc, char **argv, lf_cli_t *cli);

int main(int argc, char **argv)
{
    return lf_cli_main(argc, argv, run);
}

static int run(int argc, char **argv, lf_cli_t *cli)
{
    static const struct option longopts[] = {
        {"leads", required_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 's'},
        {"start", required_argument, NULL, OPT_START},
        {"days", required_argument, NULL, OPT_DAYS},
        {"no-cutoff", no_argument, NULL, OPT_NO_CUTOFF},
        {"prefix", required_argument, NULL, OPT_PREFIX},
        {"threshold", required_argument, NULL, OPT_THRESHOLD},
        {"sla-hours", required_argument, NULL, OPT_SLA},
        {"deal-size", required_argument, NULL, OPT_DEAL},
        {"rate", required_argument, NULL, OPT_RATE},
        {"delay", required_argument, NULL, OPT_DELAY},
        {"duplicates", required_argument, NULL, OPT_DUP},
        {"shuffle", required_argument, NULL, OPT_SHUFFLE},
        {"late", required_argument, NULL, OPT_LATE},
        {"bad", required_argument, NULL, OPT_BAD},
        {"anomalies", required_argument, NULL, OPT_ANOM},
        {"output", required_argument, NULL, 'o'},
        {"produce", no_argument, NULL, OPT_PRODUCE},
        {"brokers", required_argument, NULL, 'b'},
        {"topic", required_argument, NULL, 't'},
        {"config", required_argument, NULL, 'c'},
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    gen_t g = {.seed = 1,
               .leads = 1000,
               .cutoff = true,
               .prefix = "L-",
               .threshold = 60,
               .sla_hours = 24,
               .deal_size = 12000};
    const char *output = NULL, *value;
    bool produce = false;
    long days = 90, v;
    char errstr[512];
    param_t *prm;
    int opt, rc;

    lf_log_init("gen");
    if (lf_time_parse("2026-01-01", 1, &g.start, NULL, 0))
        return LF_EX_SOFTWARE;
    while ((opt = getopt_long(argc, argv, "n:s:o:b:t:X:c:vqhV", longopts,
                              NULL)) != -1) {
        switch (opt) {
        case 'n':
            if (!parse_long(optarg, 0, MAX_LEADS, &v))
                return usage_error("--leads: \"%s\" is not a number of "
                                   "leads (0..50000000)",
                                   optarg);
            g.leads = (uint32_t)v;
            break;
        case 's': {
            char *end;
            errno = 0;
            g.seed = strtoull(optarg, &end, 0);
            if (errno || end == optarg || *end)
                return usage_error("--seed: \"%s\" is not a number", optarg);
            break;
        }
        case OPT_START:
            if (lf_time_parse(optarg, 1, &g.start, errstr, sizeof(errstr)) ||
                g.start < 0)
                return usage_error("--start: \"%s\" is not a date after "
                                   "1970",
                                   optarg);
            break;
        case OPT_DAYS:
            if (!parse_long(optarg, 1, 3650, &days))
                return usage_error("--days: \"%s\" is not 1..3650", optarg);
            break;
        case OPT_NO_CUTOFF:
            g.cutoff = false;
            break;
        case OPT_PREFIX:
            if (strlen(optarg) > 40)
                return usage_error("--prefix: \"%s\" is longer than 40 bytes",
                                   optarg);
            g.prefix = optarg;
            break;
        case OPT_THRESHOLD:
            if (!parse_long(optarg, 10, 1000, &v))
                return usage_error("--threshold: \"%s\" is not 10..1000",
                                   optarg);
            g.threshold = (int)v;
            break;
        case OPT_SLA:
            if (!parse_long(optarg, 0, 10000, &v))
                return usage_error("--sla-hours: \"%s\" is not 0..10000",
                                   optarg);
            g.sla_hours = (int)v;
            break;
        case OPT_DEAL: {
            char *end;
            g.deal_size = strtod(optarg, &end);
            if (end == optarg || *end || !(g.deal_size >= 1) ||
                g.deal_size > 1e9)
                return usage_error("--deal-size: \"%s\" is not 1..1e9", optarg);
            break;
        }
        case OPT_RATE:
            if (!(prm = find_param(rates, R__COUNT, optarg, &value)))
                return usage_error("--rate: \"%s\": expected NAME=P with a "
                                   "NAME from the table",
                                   optarg);
            if (!parse_prob(value, &prm->value))
                return usage_error("--rate: \"%s\": P must be 0..1", optarg);
            break;
        case OPT_DELAY:
            if (!(prm = find_param(delays, D__COUNT, optarg, &value)))
                return usage_error("--delay: \"%s\": expected NAME=DURATION "
                                   "with a NAME from the table",
                                   optarg);
            if (!parse_duration(value, &prm->value))
                return usage_error("--delay: \"%s\": DURATION is a number "
                                   "and ms, s, m, h or d (at most 3650d)",
                                   optarg);
            break;
        case OPT_DUP:
            if (!parse_prob(optarg, &g.duplicates))
                return usage_error("--duplicates: \"%s\" is not 0..1", optarg);
            break;
        case OPT_SHUFFLE:
            if (!parse_long(optarg, 0, 100000000, &g.shuffle))
                return usage_error("--shuffle: \"%s\" is not a window size",
                                   optarg);
            break;
        case OPT_LATE:
            if (!parse_prob(optarg, &g.late))
                return usage_error("--late: \"%s\" is not 0..1", optarg);
            break;
        case OPT_BAD:
            if (!parse_prob(optarg, &g.bad))
                return usage_error("--bad: \"%s\" is not 0..1", optarg);
            break;
        case OPT_ANOM:
            if (!parse_prob(optarg, &g.anomalies))
                return usage_error("--anomalies: \"%s\" is not 0..1", optarg);
            break;
        case 'o':
            output = optarg;
            break;
        case OPT_PRODUCE:
            produce = true;
            break;
        case 'b':
        case 't':
            lf_cli_add(cli, opt == 'b' ? "bootstrap.servers" : LF_CONF_TOPIC,
                       optarg);
            break;
        case 'X':
            if (!lf_cli_x(cli, optarg))
                return usage_error("-X \"%s\": expected key=value or dump",
                                   optarg);
            break;
        case 'c':
            cli->config = optarg;
            break;
        case 'v':
            lf_log_level++;
            break;
        case 'q':
            lf_log_level--;
            break;
        case 'h':
            usage(stdout);
            return LF_EX_OK;
        case 'V':
            lf_cli_version(PROG);
            return LF_EX_OK;
        default:
            fprintf(stderr, "\n");
            usage(stderr);
            return LF_EX_USAGE;
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument \"%s\"", argv[optind]);
    if (rates[R_HANDOFF_DISQ].value + rates[R_ACCEPT].value > 1 ||
        rates[R_SQL].value + rates[R_SAL_LOST].value > 1 ||
        rates[R_WIN].value + rates[R_SQL_RECYCLE].value > 1)
        return usage_error("%s", "--rate: handoff-disq + accept, sql + "
                                 "sal-lost and win + sql-recycle must each "
                                 "be at most 1");
    if (produce && g.bad > 0)
        return usage_error("%s", "--bad writes malformed JSON lines; it "
                                 "cannot be combined with --produce");
    if (produce && output)
        return usage_error("%s", "--output and --produce exclude each other");
    g.end = g.start + days * DAY;
    if (g.end > INT64_C(253402300799999) - 10 * 3650 * DAY)
        return usage_error("%s", "--start and --days reach past year 9999");
    g.lead_width = g.leads >= 1000000 ? 8 : 6;
    g.response_scale = delays[D_RESPONSE].value / response_base_mean();

    lf_conf_t *conf = NULL;
    if (produce || cli->dump) {
        if ((rc = lf_cli_producer_conf_old(cli, PROG, &conf, errstr,
                                       sizeof(errstr)))) {
            if (rc == LF_EX_USAGE)
                return usage_error("-X: %s", errstr);
            fprintf(stderr, PROG ": %s\n", errstr);
            return rc;
        }
        if (cli->dump) {
            lf_conf_dump(conf, stdout);
            lf_conf_destroy(conf);
            return LF_EX_OK;
        }
    }

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    generate(&g);
    LF_LOG(LF_LOG_INFO, "msg=\"generated\" leads=%u events=%zu seed=%llu",
           g.leads, g.n, (unsigned long long)g.seed);
    if (produce) {
        rc = produce_all(&g, conf);
    } else {
        FILE *fp = stdout;
        if (output && !(fp = fopen(output, "w"))) {
            fprintf(stderr, PROG ": %s: %s\n", output, strerror(errno));
            rc = LF_EX_IOERR;
        } else {
            static char iobuf[1 << 16];
            setvbuf(fp, iobuf, _IOFBF, sizeof(iobuf));
            rc = write_json(&g, fp);
            if (output && fclose(fp) && rc == LF_EX_OK)
                rc = LF_EX_IOERR;
        }
    }
    lf_conf_destroy(conf);
    free(g.ev);
    return rc;
}
