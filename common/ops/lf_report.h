/* lf_report.h: the funnel report: read the analysts' views (through their
 * *_filtered functions, schemas/sql/002_views.sql) in one snapshot, and
 * write them as aligned text, CSV, JSON or a self-contained HTML page with
 * inline SVG charts. Every number printed is a value of a view, unchanged
 * in CSV, JSON and the HTML data-value attributes. */
#ifndef LF_REPORT_H
#define LF_REPORT_H

#include "lf_common.h"

#include <libpq-fe.h>
#include <stdio.h>

/** Output formats. */
typedef enum lf_report_format_e {
    LF_REPORT_TEXT = 0, /**< aligned for a terminal */
    LF_REPORT_CSV,      /**< section,key,key2,metric,value rows */
    LF_REPORT_JSON,     /**< one object, one member per section */
    LF_REPORT_HTML,     /**< one page, inline CSS and SVG, no assets */
} lf_report_format_t;

/** Which leads the report covers. NULL members do not filter. Dates are
 *  "YYYY-MM-DD", UTC capture dates, both inclusive. */
typedef struct lf_report_filter_s {
    const char *from;
    const char *to;
    const char *channel;
} lf_report_filter_t;

typedef struct lf_report_s lf_report_t;

/**
 * Check that @p s is a calendar date written YYYY-MM-DD (the form --from
 * and --to take). @returns LF_OK or LF_ERR_INVALID with the reason.
 */
lf_err_t lf_report_check_date(const char *s, char *errstr, size_t errstr_size);

/**
 * Parse "text", "csv", "json" or "html" into @p fmt.
 * @returns LF_OK or LF_ERR_INVALID.
 */
lf_err_t lf_report_parse_format(const char *s, lf_report_format_t *fmt);

/**
 * Query every section for the leads @p filter selects, in one read-only
 * REPEATABLE READ transaction, so all sections (and "now", which open
 * handoffs and current visits are measured against) agree. @p filter's
 * strings are copied; dates must have passed lf_report_check_date().
 * @returns a report to free with lf_report_destroy(), or NULL with the
 * failing section and libpq's message in errstr.
 */
lf_report_t *lf_report_fetch(PGconn *conn, const lf_report_filter_t *filter,
                             char *errstr, size_t errstr_size);

/** Free the report and its results. NULL-safe. */
void lf_report_destroy(lf_report_t *rep);

/**
 * Write @p rep in format @p fmt to @p fp (which stays open).
 * @returns LF_OK, LF_ERR_IO if writing failed, or LF_ERR_NOMEM.
 */
lf_err_t lf_report_write(const lf_report_t *rep, lf_report_format_t fmt,
                         FILE *fp, char *errstr, size_t errstr_size);

#endif
