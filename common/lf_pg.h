/* lf_pg.h: thin PostgreSQL helpers: connect, migrate, COPY text escaping,
 * and classifying errors as worth retrying or not. */
#ifndef LF_PG_H
#define LF_PG_H

#include "lf_buf.h"
#include "lf_common.h"

#include <libpq-fe.h>
#include <stdbool.h>

/**
 * Connect with a libpq conninfo or URI (NULL or "" = libpq's PG* environment
 * and defaults), with client_encoding UTF8, timezone UTC and a short
 * connect_timeout unless the conninfo sets one.
 * @returns a connection to PQfinish(), or NULL with libpq's message in
 * errstr.
 */
PGconn *lf_pg_connect(const char *conninfo, char *errstr, size_t errstr_size);

/**
 * Apply the embedded migrations (schemas/sql/) that funnel.schema_migrations
 * does not list, in name order, all in one transaction under an advisory
 * lock, so several instances may start at once. @p applied (may be NULL)
 * receives how many were applied.
 * @returns LF_OK, or LF_ERR_PG with the failing file and libpq's message.
 */
lf_err_t lf_pg_migrate(PGconn *conn, int *applied, char *errstr,
                       size_t errstr_size);

/** Run @p sql (no parameters) expecting no rows. @returns LF_OK or
 *  LF_ERR_PG with @p what and libpq's message in errstr. */
lf_err_t lf_pg_exec(PGconn *conn, const char *sql, const char *what,
                    char *errstr, size_t errstr_size);

/** Append @p s[0..len) escaped for COPY ... FROM STDIN text format
 *  (backslash, tab, newline, carriage return). */
lf_err_t lf_pg_copy_escape(lf_buf_t *out, const char *s, size_t len);
/** Append a COPY field: NULL becomes \N; then a tab or a newline when
 *  @p last. */
lf_err_t lf_pg_copy_str(lf_buf_t *out, const char *s, bool last);
/** Append an int64 field. */
lf_err_t lf_pg_copy_int(lf_buf_t *out, int64_t v, bool last);
/** Append a timestamp field from ms since the epoch; INT64_MIN is NULL. */
lf_err_t lf_pg_copy_ts(lf_buf_t *out, int64_t ms, bool last);
/** Append bytes as a bytea field in hex (\\x...); NULL data is \N. */
lf_err_t lf_pg_copy_bytea(lf_buf_t *out, const void *data, size_t len,
                          bool last);

/**
 * COPY @p data (text format rows) into the table with @p copy_sql
 * ("COPY t (a, b) FROM STDIN"). @returns LF_OK or LF_ERR_PG.
 */
lf_err_t lf_pg_copy(PGconn *conn, const char *copy_sql, const lf_buf_t *data,
                    char *errstr, size_t errstr_size);

/** Append a PostgreSQL text[] literal ({"a","b"}) of @p items, for a $n
 *  parameter: quotes and backslashes escaped. */
lf_err_t lf_pg_text_array(lf_buf_t *out, const char *const *items, size_t n);

/**
 * Run @p sql: PQexec() when @p n is 0 (several statements allowed), else
 * PQexecParams() with @p n text parameters. *out (if not NULL) gets the
 * result to PQclear(), NULL on failure. @returns LF_OK, or lf_pg_fail()'s
 * error with @p what in errstr.
 */
lf_err_t lf_pg_query(PGconn *conn, const char *sql, int n,
                     const char *const *params, const char *what,
                     PGresult **out, char *errstr, size_t errstr_size);

/**
 * Describe a failed statement in errstr ("WHAT: libpq's message") and
 * classify it. @p res may be NULL (the message is then the connection's).
 * @returns LF_ERR_TEMPORARY when lf_pg_is_transient() says so, LF_ERR_PG
 * otherwise.
 */
lf_err_t lf_pg_fail(PGconn *conn, const PGresult *res, const char *what,
                    char *errstr, size_t errstr_size);

/** True if the failure of @p conn / @p res is about the connection or the
 *  server (class 08, 53, 57, 58, deadlock, serialization, a lock wait that
 *  ran out) rather than the data: retrying later may succeed. */
bool lf_pg_is_transient(PGconn *conn, const PGresult *res);

/** libpq's version as "15.18". Static buffer. */
const char *lf_pg_version(void);

#endif
