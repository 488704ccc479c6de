/* lf_time.c: RFC 3339 without the C library's time zone state (timegm and
 * strptime depend on locale and TZ; this does not). */
#include "lf_time.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Howard Hinnant's days_from_civil algorithm (public domain description). */
int64_t lf_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* Read exactly n digits. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int days_in_month(int y, int m)
{
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dim[m - 1];
}

#define BAD(why)                                                               \
    lf_seterr(LF_ERR_INVALID, errstr, errstr_size,                             \
              "\"%.40s\" is not an RFC 3339 timestamp (%s)", s, why)

lf_err_t lf_time_parse(const char *s, int allow_date, int64_t *ms, char *errstr,
                       size_t errstr_size)
{
    const char *p = s;
    int Y, M, D, h = 0, mi = 0, sec = 0, frac = 0, off = 0;

    if (digits(&p, 4, &Y) || *p++ != '-' || digits(&p, 2, &M) || *p++ != '-' ||
        digits(&p, 2, &D))
        return BAD("expected YYYY-MM-DD");
    if (M < 1 || M > 12 || D < 1 || D > days_in_month(Y, M))
        return BAD("no such date");
    if (*p == '\0' && allow_date)
        goto done;
    if (*p != 'T' && *p != 't' && *p != ' ')
        return BAD("expected T and a time");
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
        digits(&p, 2, &sec))
        return BAD("expected HH:MM:SS");
    if (h > 23 || mi > 59 || sec > 60)
        return BAD("no such time");
    if (sec == 60) /* a leap second is the last instant of its minute */
        sec = 59, frac = 999;
    if (*p == '.') {
        int n = 0;
        p++;
        if (!isdigit((unsigned char)*p))
            return BAD("empty fraction");
        frac = 0;
        for (; isdigit((unsigned char)*p); p++, n++)
            if (n < 3)
                frac = frac * 10 + (*p - '0');
        for (; n < 3; n++)
            frac *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) ||
            oh > 23 || om > 59)
            return BAD("bad offset, expected +HH:MM");
        off = sign * (oh * 60 + om);
    } else {
        return BAD("missing Z or offset");
    }
    if (*p)
        return BAD("trailing characters");
done:;
    int64_t days = lf_days_from_civil(Y, (unsigned)M, (unsigned)D);
    *ms =
        ((days * 86400 + h * 3600 + mi * 60 + sec) - (int64_t)off * 60) * 1000 +
        frac;
    return LF_OK;
}

char *lf_time_format(int64_t ms, char *buf, size_t size)
{
    /* Floor division without negating ms: -INT64_MIN does not exist. The
     * C API may hand us any int64 (only validated events are in range). */
    int64_t secs = ms / 1000, frac = ms % 1000;
    if (frac < 0)
        frac += 1000, secs--;
    int64_t days = secs / 86400, rem = secs % 86400, y;
    if (rem < 0)
        rem += 86400, days--;
    unsigned m, d;

    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999 || size < 25) {
        snprintf(buf, size, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ",
                 (long long)y, m, d, (int)(rem / 3600), (int)(rem / 60 % 60),
                 (int)(rem % 60), (int)frac);
        return buf;
    }
    /* By hand: this runs for every timestamp the projector writes, and
     * snprintf was a fifth of its CPU. */
    static const char tmpl[] = "0000-00-00T00:00:00.000Z";
    const int fields[][3] = {{0, 4, (int)y},
                             {5, 2, (int)m},
                             {8, 2, (int)d},
                             {11, 2, (int)(rem / 3600)},
                             {14, 2, (int)(rem / 60 % 60)},
                             {17, 2, (int)(rem % 60)},
                             {20, 3, (int)frac}};
    memcpy(buf, tmpl, sizeof(tmpl));
    for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++)
        for (int i = fields[f][1] - 1, v = fields[f][2]; i >= 0; i--, v /= 10)
            buf[fields[f][0] + i] = (char)('0' + v % 10);
    return buf;
}
