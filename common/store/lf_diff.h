/* lf_diff.h: compare the funnel model in two schemas (leadflow-replay
 * diff): per table a row count and an order-independent checksum, and for
 * the tables that differ, the differing rows described for a person. */
#ifndef LF_DIFF_H
#define LF_DIFF_H

#include "lf_buf.h"
#include "lf_common.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#define LF_DIFF_TABLES 8

/** One table compared: rows and checksum on each side. */
typedef struct lf_diff_table_s {
    const char *table; /**< static */
    long long rows_a, rows_b;
    char sum_a[17], sum_b[17];
    bool differs;
} lf_diff_table_t;

/** One differing row, described for a person. */
typedef struct lf_diff_row_s {
    char *lead; /**< the lead it belongs to; NULL for a dead letter */
    char *text; /**< 'leads: stage a="won" b="lost"' */
} lf_diff_row_t;

/** What lf_diff_compare() found. Free with lf_diff_free(). */
typedef struct lf_diff_s {
    lf_diff_table_t tables[LF_DIFF_TABLES];
    lf_diff_row_t *rows; /**< of the first differing leads, by lead, then
                              differing dead letters */
    size_t row_count;
    size_t leads; /**< distinct leads among rows */
    bool differs;
} lf_diff_t;

/**
 * Compare the funnel model in schemas @p a and @p b: per table, row count
 * and a checksum of the rows, over every column @p a's table has (read
 * from the catalog, so a column a migration adds is compared too) except
 * wall-clock columns (received_at,
 * updated_at, detected_at) and without the Kafka coordinates of events
 * (a duplicated event keeps the copy that came first, which another run
 * may take from another partition); anomalies of kind conflict compare by
 * event only (their reason names coordinates); dead letters compare while
 * open (a resolved one is history). Then, for the differing tables, the
 * first @p max_leads differing leads (by lead_id) with every differing row
 * of theirs and the columns that differ, and up to @p max_leads differing
 * dead letters. On error @p d holds nothing.
 * @returns LF_OK (d->differs tells), LF_ERR_INVALID (a schema missing or
 * a bad name), LF_ERR_PG (a table missing: the table and the server's
 * reason in errstr) or LF_ERR_TEMPORARY.
 */
lf_err_t lf_diff_compare(PGconn *conn, const char *a, const char *b,
                         int max_leads, lf_diff_t *d, char *errstr,
                         size_t errstr_size);

/** Free what a diff holds. NULL-safe. */
void lf_diff_free(lf_diff_t *d);

/**
 * The numbers both teams look at, side by side for schemas @p a (the live
 * model) and @p b (a what-if rebuild), with the change, appended to @p out
 * as text: each schema's definition (name, version, sha256), then leads
 * per current stage, the step-by-step conversion rates, the median hours
 * of finished visits per stage and the anomalies. Each number is computed
 * as the views of funnel compute it over all leads (funnel.stage_counts,
 * funnel.conversion, funnel.time_in_stage: the rows over all months and
 * channels), so after promoting @p b the views show @p b's column.
 * Rows: "  <section> <key> <a> <b> <change>", NULL printed as "-".
 * @returns LF_OK, LF_ERR_PG or LF_ERR_NOMEM (then @p out is partial).
 */
lf_err_t lf_diff_summary(PGconn *conn, const char *a, const char *b,
                         lf_buf_t *out, char *errstr, size_t errstr_size);

#endif
