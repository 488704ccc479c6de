/* test_workload.c: the synthetic workload keeps its promises: the same
 * options give the same stream, every event fits the contract, the rates
 * are honoured over many leads, the fault knobs do what they say. */
#include "lf_json.h"
#include "lf_workload.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS INT64_C(86400000)

static lf_workload_t *make(const lf_workload_opts_t *o)
{
    lf_workload_t *w = NULL;
    char errstr[256];

    cr_assert_eq(lf_workload_new(o, &w, errstr, sizeof(errstr)), LF_OK, "%s",
                 errstr);
    return w;
}

/* Every line of @p w, newline-separated, as one string (free it). */
static char *all_lines(lf_workload_t *w)
{
    lf_buf_t line = {0}, all = {0};
    char *s;

    for (size_t i = 0; i < lf_workload_count(w); i++) {
        cr_assert_eq(lf_workload_line(w, i, &line), LF_OK);
        lf_buf_append(&all, line.data ? line.data : "", line.len);
        lf_buf_puts(&all, "\n");
    }
    lf_buf_free(&line);
    s = strdup(all.data ? all.data : "");
    lf_buf_free(&all);
    return s;
}

Test(workload, same_seed_same_stream_other_seed_another)
{
    lf_workload_opts_t o;
    lf_workload_t *a, *b, *c;
    char *sa, *sb, *sc;

    lf_workload_defaults(&o);
    o.leads = 300;
    o.duplicates = 0.1;
    o.late = 0.05;
    o.bad = 0.05;
    o.shuffle = 5;
    o.anomalies = 0.1;
    a = make(&o);
    b = make(&o);
    o.seed = 2;
    c = make(&o);
    sa = all_lines(a);
    sb = all_lines(b);
    sc = all_lines(c);
    cr_assert(lf_workload_count(a) > 300);
    cr_assert_str_eq(sa, sb);
    cr_assert_str_neq(sa, sc);
    free(sa);
    free(sb);
    free(sc);
    lf_workload_destroy(a);
    lf_workload_destroy(b);
    lf_workload_destroy(c);
}

Test(workload, events_fit_the_contract_and_their_json_round_trips)
{
    lf_workload_opts_t o;
    lf_workload_t *w;
    lf_buf_t line = {0};
    char errstr[256];

    lf_workload_defaults(&o);
    o.leads = 2000;
    w = make(&o);
    for (size_t i = 0; i < lf_workload_count(w); i++) {
        const lf_event_t *ev = lf_workload_event(w, i);
        lf_event_t back;
        cr_assert_eq(lf_event_validate(ev, errstr, sizeof(errstr)), LF_OK,
                     "event %zu: %s", i, errstr);
        cr_assert_eq(lf_workload_line(w, i, &line), LF_OK);
        cr_assert_eq(lf_json_parse_event(line.data, line.len, &back, errstr,
                                         sizeof(errstr)),
                     LF_OK, "line %zu: %s: %s", i, errstr, line.data);
        lf_event_clear(&back);
    }
    lf_buf_free(&line);
    lf_workload_destroy(w);
}

Test(workload, bad_lines_are_refused_and_the_rest_parse)
{
    lf_workload_opts_t o;
    lf_workload_t *w;
    lf_buf_t line = {0};
    size_t nbad = 0, n;
    char errstr[256];

    lf_workload_defaults(&o);
    o.leads = 1000;
    o.bad = 0.2;
    w = make(&o);
    n = lf_workload_count(w);
    for (size_t i = 0; i < n; i++) {
        lf_event_t ev;
        lf_err_t err;
        cr_assert_eq(lf_workload_line(w, i, &line), LF_OK);
        err = lf_json_parse_event(line.data ? line.data : "", line.len, &ev,
                                  errstr, sizeof(errstr));
        if (lf_workload_kind(w, i) == LF_WL_BAD) {
            nbad++;
            cr_assert_neq(err, LF_OK, "bad line %zu accepted: %s", i,
                          line.data);
        } else {
            cr_assert_eq(err, LF_OK, "line %zu: %s", i, errstr);
            lf_event_clear(&ev);
        }
    }
    /* one bad line after about a fifth of the events */
    cr_assert(nbad > (n - nbad) / 7 && nbad < (n - nbad) / 3,
              "%zu bad lines for %zu events", nbad, n - nbad);
    lf_buf_free(&line);
    lf_workload_destroy(w);
}

Test(workload, a_duplicate_repeats_an_earlier_event)
{
    lf_workload_opts_t o;
    lf_workload_t *w;
    lf_buf_t line = {0};
    size_t ndup = 0;
    char *seen;

    lf_workload_defaults(&o);
    o.leads = 300;
    o.duplicates = 0.3;
    w = make(&o);
    /* the JSON lines of the events in the order they arrive */
    seen = calloc(1, 1);
    for (size_t i = 0; i < lf_workload_count(w); i++) {
        cr_assert_eq(lf_workload_line(w, i, &line), LF_OK);
        if (lf_workload_kind(w, i) == LF_WL_DUPLICATE) {
            ndup++;
            cr_assert(strstr(seen, line.data),
                      "duplicate %zu before its "
                      "event: %s",
                      i, line.data);
        } else {
            size_t len = strlen(seen);
            seen = realloc(seen, len + line.len + 2);
            memcpy(seen + len, line.data, line.len);
            strcpy(seen + len + line.len, "\n");
        }
    }
    cr_assert(ndup > 0);
    free(seen);
    lf_buf_free(&line);
    lf_workload_destroy(w);
}

Test(workload, clean_stream_in_time_order_within_the_window)
{
    lf_workload_opts_t o;
    lf_workload_t *w;
    int64_t last = INT64_MIN;
    size_t captured = 0;

    lf_workload_defaults(&o);
    o.leads = 500;
    o.days = 30;
    o.prefix = "T-";
    w = make(&o);
    for (size_t i = 0; i < lf_workload_count(w); i++) {
        const lf_event_t *ev = lf_workload_event(w, i);
        cr_assert_geq(ev->occurred_at, last, "event %zu out of order", i);
        cr_assert_lt(ev->occurred_at, o.start + 30 * DAY_MS);
        cr_assert(!strncmp(ev->lead_id, "T-", 2) && strlen(ev->lead_id) == 8,
                  "lead id %s", ev->lead_id);
        last = ev->occurred_at;
        captured += ev->type == LF_EV_CAPTURED;
    }
    cr_assert_geq(captured, 500, "every lead is captured");
    lf_workload_destroy(w);
}

/* Over many finished journeys, the share of leads ever handed off to
 * sales is (1 - junk) x mql, and the share the junk filter disqualifies is
 * junk: within 1.5 points (about five standard deviations). */
static void funnel_shares(double mql, double junk)
{
    const uint32_t leads = 20000;
    lf_workload_opts_t o;
    lf_workload_t *w;
    bool *handed = calloc(leads + 1, sizeof(bool));
    size_t nhanded = 0, njunk = 0;
    char errstr[256], arg[32];

    lf_workload_defaults(&o);
    o.leads = leads;
    o.cutoff = false;
    snprintf(arg, sizeof(arg), "mql=%g", mql);
    cr_assert_eq(lf_workload_set_rate(&o, arg, errstr, sizeof(errstr)), LF_OK);
    snprintf(arg, sizeof(arg), "junk=%g", junk);
    cr_assert_eq(lf_workload_set_rate(&o, arg, errstr, sizeof(errstr)), LF_OK);
    w = make(&o);
    for (size_t i = 0; i < lf_workload_count(w); i++) {
        const lf_event_t *ev = lf_workload_event(w, i);
        unsigned long lead = strtoul(ev->lead_id + 2, NULL, 10); /* "L-" */
        cr_assert(lead >= 1 && lead <= leads, "lead id %s", ev->lead_id);
        if (ev->type == LF_EV_HANDED_OFF && !handed[lead]) {
            handed[lead] = true;
            nhanded++;
        }
        if (ev->type == LF_EV_DISQUALIFIED && ev->actor &&
            !strcmp(ev->actor, "rule:junk-filter"))
            njunk++;
    }
    lf_workload_destroy(w);
    free(handed);
    cr_assert_float_eq((double)nhanded / leads, (1 - junk) * mql, 0.015,
                       "mql %g junk %g: %zu of %u leads handed off", mql, junk,
                       nhanded, leads);
    cr_assert_float_eq((double)njunk / leads, junk, 0.015,
                       "junk %g: %zu of %u leads junked", junk, njunk, leads);
}

Test(workload, rates_are_honoured_over_many_leads)
{
    funnel_shares(lf_workload_rates[LF_WL_RATE_MQL].value,
                  lf_workload_rates[LF_WL_RATE_JUNK].value);
    funnel_shares(0.8, 0.2);
}

Test(workload, a_rate_or_delay_out_of_range_is_refused)
{
    lf_workload_opts_t o;
    lf_workload_t *w = (lf_workload_t *)&o;
    char errstr[256];

    lf_workload_defaults(&o);
    cr_assert_eq(lf_workload_set_rate(&o, "nosuch=0.5", errstr, sizeof(errstr)),
                 LF_ERR_INVALID);
    cr_assert_eq(lf_workload_set_rate(&o, "mql=1.5", errstr, sizeof(errstr)),
                 LF_ERR_INVALID);
    cr_assert_eq(lf_workload_set_delay(&o, "close=3w", errstr, sizeof(errstr)),
                 LF_ERR_INVALID);
    cr_assert_eq(lf_workload_set_delay(&o, "close=90d", errstr, sizeof(errstr)),
                 LF_OK);
    cr_assert_float_eq(o.delay[LF_WL_DELAY_CLOSE], 90.0 * DAY_MS, 1e-6);
    /* accept and handoff-disq share one coin */
    cr_assert_eq(
        lf_workload_set_rate(&o, "accept=0.99", errstr, sizeof(errstr)), LF_OK);
    cr_assert_eq(lf_workload_new(&o, &w, errstr, sizeof(errstr)),
                 LF_ERR_INVALID);
    cr_assert_null(w);
    cr_assert(strstr(errstr, "handoff-disq + accept"), "%s", errstr);
}

/* The contract v2 knobs: off by default (no account_id, no identity
 * event); on, they add valid events without changing the journeys, and
 * every lead keeps one account. */
Test(workload, contract_v2_knobs)
{
    lf_workload_opts_t o;
    lf_workload_t *plain, *w;
    char errstr[256], acct[600][16] = {{0}};
    size_t n[LF_EV__COUNT] = {0}, journey = 0;

    lf_workload_defaults(&o);
    o.leads = 500;
    plain = make(&o);
    for (size_t i = 0; i < lf_workload_count(plain); i++) {
        const lf_event_t *ev = lf_workload_event(plain, i);
        cr_assert_null(ev->account_id);
        cr_assert(!LF_EV_IS_IDENTITY(ev->type));
    }
    o.accounts = 50;
    o.merges = 0.2;
    o.voids = 0.05;
    o.erasures = 0.1;
    w = make(&o);
    for (size_t i = 0; i < lf_workload_count(w); i++) {
        const lf_event_t *ev = lf_workload_event(w, i);
        unsigned lead = (unsigned)atoi(ev->lead_id + 2);
        cr_assert_eq(lf_event_validate(ev, errstr, sizeof(errstr)), LF_OK,
                     "event %zu: %s", i, errstr);
        cr_assert_not_null(ev->account_id);
        cr_assert_lt(lead, 600);
        if (!acct[lead][0])
            snprintf(acct[lead], sizeof(acct[lead]), "%s", ev->account_id);
        cr_assert_str_eq(acct[lead], ev->account_id, "lead %u", lead);
        n[ev->type]++;
        if (!LF_EV_IS_IDENTITY(ev->type)) {
            /* the journeys, in the same order */
            const lf_event_t *pe = lf_workload_event(plain, journey++);
            cr_assert_str_eq(pe->event_id, lf_workload_event(w, i)->event_id);
        }
    }
    cr_assert_eq(journey, lf_workload_count(plain));
    cr_assert(n[LF_EV_MERGED] > 0 && n[LF_EV_VOIDED] > 0 &&
              n[LF_EV_ERASED] > 0);
    o.voids = 1.5;
    cr_assert_eq(lf_workload_check(&o, errstr, sizeof(errstr)), LF_ERR_INVALID);
    lf_workload_destroy(plain);
    lf_workload_destroy(w);
}
