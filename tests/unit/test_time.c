/* test_time.c: RFC 3339 parsing and formatting (lf_time). */
#include "lf_time.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

typedef struct parse_case_s {
    const char *in;
    int allow_date;
    int64_t ms;      /* expected; ignored when bad */
    const char *bad; /* NULL when it must parse; else a substring of errstr */
} parse_case_t;

static const parse_case_t parse_cases[] = {
    {"1970-01-01T00:00:00Z", 0, 0, NULL},
    {"1970-01-01T00:00:00.000Z", 0, 0, NULL},
    {"1970-01-01T00:00:00.001Z", 0, 1, NULL},
    {"2026-03-01T09:30:00.250Z", 0, INT64_C(1772357400250), NULL},
    /* lower-case t and z, and a space for T */
    {"2026-03-01t09:30:00.250z", 0, INT64_C(1772357400250), NULL},
    {"2026-03-01 09:30:00.250Z", 0, INT64_C(1772357400250), NULL},
    /* offsets are converted to UTC */
    {"2026-03-01T15:00:00.250+05:30", 0, INT64_C(1772357400250), NULL},
    {"2026-03-01T01:30:00.250-08:00", 0, INT64_C(1772357400250), NULL},
    {"2026-03-01T09:30:00.250+00:00", 0, INT64_C(1772357400250), NULL},
    /* the offset moves the date back over a non-leap February */
    {"2026-03-01T04:00:00+05:00", 0, INT64_C(1772323200000) - 3600000, NULL},
    /* fraction: shorter is scaled, longer is truncated (not rounded) */
    {"2026-03-01T09:30:00.1Z", 0, INT64_C(1772357400100), NULL},
    {"2026-03-01T09:30:00.12Z", 0, INT64_C(1772357400120), NULL},
    {"2026-03-01T09:30:00.123456789Z", 0, INT64_C(1772357400123), NULL},
    {"2026-03-01T09:30:00.1239Z", 0, INT64_C(1772357400123), NULL},
    /* leap years: divisible by 4, not by 100 unless by 400 */
    {"2000-02-29T00:00:00Z", 0, INT64_C(951782400000), NULL},
    {"2024-02-29T12:00:00.5Z", 0, INT64_C(1709208000500), NULL},
    {"2100-03-01T00:00:00Z", 0, INT64_C(4107542400000), NULL},
    {"1600-03-01T00:00:00Z", 0, INT64_C(-11670912000000), NULL},
    {"9999-12-31T23:59:59.999Z", 0, INT64_C(253402300799999), NULL},
    /* a leap second is the last millisecond of its minute */
    {"2016-12-31T23:59:60Z", 0, INT64_C(1483228799999), NULL},
    /* a bare date only when allowed */
    {"2026-03-01", 1, INT64_C(1772323200000), NULL},
    {"2026-03-01", 0, 0, "expected T"},
    /* invalid dates */
    {"2023-02-29T00:00:00Z", 0, 0, "no such date"},
    {"1900-02-29T00:00:00Z", 0, 0, "no such date"},
    {"2100-02-29T00:00:00Z", 0, 0, "no such date"},
    {"2026-04-31T00:00:00Z", 0, 0, "no such date"},
    {"2026-13-01T00:00:00Z", 0, 0, "no such date"},
    {"2026-00-10T00:00:00Z", 0, 0, "no such date"},
    {"2026-01-00T00:00:00Z", 0, 0, "no such date"},
    /* invalid times */
    {"2026-03-01T24:00:00Z", 0, 0, "no such time"},
    {"2026-03-01T09:60:00Z", 0, 0, "no such time"},
    {"2026-03-01T09:30:61Z", 0, 0, "no such time"},
    /* malformed */
    {"", 0, 0, "YYYY-MM-DD"},
    {"2026", 0, 0, "YYYY-MM-DD"},
    {"26-03-01T09:30:00Z", 0, 0, "YYYY-MM-DD"},
    {"2026/03/01T09:30:00Z", 0, 0, "YYYY-MM-DD"},
    {"2026-3-01T09:30:00Z", 0, 0, "YYYY-MM-DD"},
    {"2026-03-01T09:30", 0, 0, "HH:MM:SS"},
    {"2026-03-01T9:30:00Z", 0, 0, "HH:MM:SS"},
    {"2026-03-01T09:30:00", 0, 0, "missing Z"},
    {"2026-03-01T09:30:00.Z", 0, 0, "empty fraction"},
    {"2026-03-01T09:30:00Zjunk", 0, 0, "trailing"},
    {"2026-03-01T09:30:00Z ", 0, 0, "trailing"},
    {"2026-03-01T09:30:00+5:30", 0, 0, "offset"},
    {"2026-03-01T09:30:00+05", 0, 0, "offset"},
    {"2026-03-01T09:30:00+0530", 0, 0, "offset"},
    {"2026-03-01T09:30:00+05:60", 0, 0, "offset"},
    {"2026-03-01T09:30:00+24:00", 0, 0, "offset"},
    {"yesterday", 0, 0, "YYYY-MM-DD"},
};

Test(time, parse_vectors)
{
    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        const parse_case_t *c = &parse_cases[i];
        char err[256] = "";
        int64_t ms = INT64_C(-424242);
        lf_err_t rc =
            lf_time_parse(c->in, c->allow_date, &ms, err, sizeof(err));
        if (!c->bad) {
            cr_expect_eq(rc, LF_OK, "\"%s\": failed: %s", c->in, err);
            cr_expect_eq(ms, c->ms, "\"%s\": got %lld, expected %lld", c->in,
                         (long long)ms, (long long)c->ms);
        } else {
            cr_expect_eq(rc, LF_ERR_INVALID, "\"%s\": accepted as %lld", c->in,
                         (long long)ms);
            cr_expect(strstr(err, c->bad) != NULL,
                      "\"%s\": error \"%s\" lacks \"%s\"", c->in, err, c->bad);
            cr_expect(strstr(err, "RFC 3339") != NULL,
                      "\"%s\": error \"%s\" does not say what was expected",
                      c->in, err);
        }
    }
}

typedef struct format_case_s {
    int64_t ms;
    const char *out;
} format_case_t;

static const format_case_t format_cases[] = {
    {0, "1970-01-01T00:00:00.000Z"},
    {1, "1970-01-01T00:00:00.001Z"},
    {999, "1970-01-01T00:00:00.999Z"},
    {-1, "1969-12-31T23:59:59.999Z"},
    {-1000, "1969-12-31T23:59:59.000Z"},
    {INT64_C(951782400000), "2000-02-29T00:00:00.000Z"},
    {INT64_C(1709208000500), "2024-02-29T12:00:00.500Z"},
    {INT64_C(1772357400250), "2026-03-01T09:30:00.250Z"},
    {INT64_C(4107542400000), "2100-03-01T00:00:00.000Z"},
    {INT64_C(-11670912000000), "1600-03-01T00:00:00.000Z"},
    {INT64_C(253402300799999), "9999-12-31T23:59:59.999Z"},
};

Test(time, format_vectors)
{
    for (size_t i = 0; i < sizeof(format_cases) / sizeof(format_cases[0]);
         i++) {
        char buf[40];
        char *r = lf_time_format(format_cases[i].ms, buf, sizeof(buf));
        cr_expect_eq(r, buf);
        cr_expect_str_eq(buf, format_cases[i].out, "%lld: got %s",
                         (long long)format_cases[i].ms, buf);
    }
}

/* format then parse gives the same instant, every ~37 days over 1970..9999
 * with a moving time of day, so month ends and leap days are crossed. */
Test(time, format_parse_round_trip)
{
    const int64_t step = INT64_C(37) * 86400000 + 3723001;
    int n = 0;

    for (int64_t ms = 0; ms <= INT64_C(253402300799999); ms += step, n++) {
        char buf[40], err[200] = "";
        int64_t back = -1;
        lf_time_format(ms, buf, sizeof(buf));
        cr_assert_eq(lf_time_parse(buf, 0, &back, err, sizeof(err)), LF_OK,
                     "%s: %s", buf, err);
        cr_assert_eq(back, ms, "%s: %lld != %lld", buf, (long long)back,
                     (long long)ms);
    }
    cr_expect_gt(n, 70000);
}

/* Any int64 formats without undefined behaviour (the negation of INT64_MIN
 * was one), and floor division keeps instants before 1970 right. Far out of
 * range the year is just a number. */
Test(time, format_extremes)
{
    char buf[40];

    cr_expect_str_eq(lf_time_format(-1, buf, sizeof(buf)),
                     "1969-12-31T23:59:59.999Z");
    cr_expect_str_eq(lf_time_format(-86400001, buf, sizeof(buf)),
                     "1969-12-30T23:59:59.999Z");
    cr_expect_str_eq(lf_time_format(INT64_MIN, buf, sizeof(buf)),
                     "-292275055-05-16T16:47:04.192Z");
    cr_expect_str_eq(lf_time_format(INT64_MIN + 1, buf, sizeof(buf)),
                     "-292275055-05-16T16:47:04.193Z");
    cr_expect_str_eq(lf_time_format(INT64_MAX, buf, sizeof(buf)),
                     "292278994-08-17T07:12:55.807Z");
}

Test(time, days_from_civil)
{
    cr_expect_eq(lf_days_from_civil(1970, 1, 1), 0);
    cr_expect_eq(lf_days_from_civil(1969, 12, 31), -1);
    cr_expect_eq(lf_days_from_civil(2000, 3, 1), 11017);
    cr_expect_eq(lf_days_from_civil(2000, 2, 29), 11016);
    cr_expect_eq(lf_days_from_civil(9999, 12, 31), 2932896);
}
