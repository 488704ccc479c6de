/* lf_catalog.h: the PostgreSQL schemas that hold a funnel model, as the
 * catalog sees them: the live schema's name, which names another model may
 * take, whether a schema exists, and statements the server generates from
 * its catalog (format('%I')) and we then run. Shared by lf_rebuild,
 * lf_diff and lf_promote. */
#ifndef LF_CATALOG_H
#define LF_CATALOG_H

#include "lf_common.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

/** Name of the live schema. */
#define LF_SCHEMA_LIVE "funnel"

/**
 * Check that @p name can hold a funnel model: lower-case letters, digits
 * and _ (the projector writes it into SQL unquoted), at most 48 bytes, not
 * a reserved word, not "funnel", not pg_*. @p conn (may be NULL: skip the
 * keyword check) asks the server for its keywords.
 * @returns LF_OK or LF_ERR_INVALID with the reason.
 */
lf_err_t lf_catalog_check_name(PGconn *conn, const char *name, char *errstr,
                               size_t errstr_size);

/**
 * Whether schema @p name exists, into @p *exists.
 * @returns LF_OK, LF_ERR_PG or LF_ERR_TEMPORARY.
 */
lf_err_t lf_catalog_schema_exists(PGconn *conn, const char *name, bool *exists,
                                  char *errstr, size_t errstr_size);

/** A list of SQL statements, each a string of its own. Zero-initialise;
 *  free with lf_catalog_stmts_free(). */
typedef struct lf_catalog_stmts_s {
    char **s;
    size_t n, cap;
} lf_catalog_stmts_t;

/** Append a copy of @p s. @returns LF_OK or LF_ERR_NOMEM. */
lf_err_t lf_catalog_stmts_add(lf_catalog_stmts_t *l, const char *s);

/** Free the statements and empty the list (reusable). NULL-safe. */
void lf_catalog_stmts_free(lf_catalog_stmts_t *l);

/**
 * Run @p sql with @p n (0 to 2) text parameters and append every non-NULL
 * first-column value of its rows to @p l. @p what names the step in errors.
 * @returns LF_OK, LF_ERR_NOMEM, LF_ERR_PG or LF_ERR_TEMPORARY.
 */
lf_err_t lf_catalog_gather(PGconn *conn, const char *sql, int n, const char *p1,
                           const char *p2, const char *what,
                           lf_catalog_stmts_t *l, char *errstr,
                           size_t errstr_size);

/** Run the statements of @p l in order; stops at the first failure.
 *  @returns LF_OK, LF_ERR_PG or LF_ERR_TEMPORARY. */
lf_err_t lf_catalog_run_all(PGconn *conn, const lf_catalog_stmts_t *l,
                            const char *what, char *errstr, size_t errstr_size);

/** lf_catalog_gather() then lf_catalog_run_all(): run the statements that
 *  @p sql generates. */
lf_err_t lf_catalog_run_generated(PGconn *conn, const char *sql, int n,
                                  const char *p1, const char *p2,
                                  const char *what, char *errstr,
                                  size_t errstr_size);

/**
 * The views of funnel as statements, each view's after those of the views
 * it reads. @p views_sql (with @p p1 as $1 unless NULL) gives a row per
 * view: its oid, then four statements (each NULL when there is nothing to
 * do: create, comment, owner, column comments), appended to @p out in that
 * order; @p views counts the views. @returns LF_OK, LF_ERR_NOMEM,
 * LF_ERR_INVALID (a cycle), LF_ERR_PG or LF_ERR_TEMPORARY.
 */
lf_err_t lf_catalog_views(PGconn *conn, const char *views_sql, const char *p1,
                          lf_catalog_stmts_t *out, int *views, char *errstr,
                          size_t errstr_size);

/** Roll back the open transaction if the connection is still up (the
 *  error being handled is the caller's, so this one reports nothing). */
void lf_catalog_rollback(PGconn *conn);

#endif
