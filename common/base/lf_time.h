/* lf_time.h: RFC 3339 timestamps <-> epoch milliseconds. */
#ifndef LF_TIME_H
#define LF_TIME_H

#include "lf_common.h"

/**
 * Parse an RFC 3339 date-time ("2026-03-01T09:30:00.250Z", "...+02:00";
 * 't', 'z' and a space for 'T' accepted) into ms since the epoch. Digits of
 * the fraction past milliseconds are truncated. A bare date "2026-03-01"
 * is accepted when @p allow_date is non-zero (midnight UTC).
 * @returns LF_OK, or LF_ERR_INVALID with the reason in errstr.
 */
lf_err_t lf_time_parse(const char *s, int allow_date, int64_t *ms, char *errstr,
                       size_t errstr_size);

/** Write @p ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" into @p buf (>= 25 bytes).
 *  @returns buf. */
char *lf_time_format(int64_t ms, char *buf, size_t size);

/** Days since 1970-01-01 of a proleptic Gregorian date. */
int64_t lf_days_from_civil(int64_t y, unsigned m, unsigned d);

#endif
