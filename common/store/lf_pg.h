/* lf_pg.h: thin PostgreSQL helpers: connect, migrate, binary COPY, and
 * classifying errors as worth retrying or not. */
#ifndef LF_PG_H
#define LF_PG_H

#include "lf_buf.h"
#include "lf_common.h"

#include <libpq-fe.h>
#include <signal.h>
#include <stdbool.h>

/** Route @p conn's notices and warnings (a server shutting down, say)
 *  into our log as debug lines, not raw text on stderr. lf_pg_connect()
 *  does it for its connections. */
void lf_pg_log_notices(PGconn *conn);

/**
 * Connect with a libpq conninfo or URI (NULL or "" = libpq's PG* environment
 * and defaults), with client_encoding UTF8, timezone UTC and a short
 * connect_timeout unless the conninfo sets one.
 * @returns a connection to PQfinish(), or NULL with libpq's message in
 * errstr.
 */
PGconn *lf_pg_connect(const char *conninfo, char *errstr, size_t errstr_size);

/**
 * Can libpq parse @p conninfo? As libpq reads a dbname (expand_dbname): a
 * value with '=' or a postgres:// URI is a conninfo, anything else a
 * database name, always parsable (NULL too).
 * @returns LF_OK; LF_ERR_INVALID with "not a valid libpq conninfo or URI"
 * and libpq's reason (left out when it quotes the value, password and
 * all); LF_ERR_NOMEM.
 */
lf_err_t lf_pg_conninfo_check(const char *conninfo, char *errstr,
                              size_t errstr_size);

/**
 * Did every server lf_pg_connect() tried refuse for a reason of the
 * settings, which a retry does not change: the database or the role does
 * not exist, the password is wrong, pg_hba.conf has no entry? @p errstr is
 * lf_pg_connect()'s message. False when one server could not be reached
 * at all, was read-only, or was starting or stopping (a failover), and for
 * a server whose messages are not in English (the text is all libpq
 * gives of a refused connection).
 */
bool lf_pg_refused_for_good(const char *errstr);

/**
 * Apply the embedded migrations (schemas/sql/) that funnel.schema_migrations
 * does not list, in name order, all in one transaction under an advisory
 * lock, so several instances may start at once. @p applied (may be NULL)
 * receives how many were applied.
 * @returns LF_OK, or LF_ERR_PG with the failing file and libpq's message.
 */
lf_err_t lf_pg_migrate(PGconn *conn, int *applied, char *errstr,
                       size_t errstr_size);

/**
 * Is the database's funnel migrated as far as this build's migrations
 * go? @returns LF_OK; LF_ERR_INVALID naming what is missing (no schema
 * funnel at all, or the first migration not applied) and what to run;
 * LF_ERR_PG when the question cannot be asked.
 */
lf_err_t lf_pg_check_migrated(PGconn *conn, char *errstr, size_t errstr_size);

/**
 * COMMIT the transaction on @p conn. When the connection broke before the
 * server's answer arrived, whether it committed cannot be known from
 * here: *in_doubt (@p in_doubt may be NULL) is then set (else cleared)
 * and errstr says so.
 * @returns LF_OK, or lf_pg_fail()'s error.
 */
lf_err_t lf_pg_commit(PGconn *conn, bool *in_doubt, char *errstr,
                      size_t errstr_size);

/** Run @p sql (no parameters) expecting no rows. @returns LF_OK or
 *  LF_ERR_PG with @p what and libpq's message in errstr. */
lf_err_t lf_pg_exec(PGconn *conn, const char *sql, const char *what,
                    char *errstr, size_t errstr_size);

/*
 * Rows for COPY ... FROM STDIN (FORMAT binary): PostgreSQL parses no text
 * (timestamps, integers, escapes), about a third less server time per row
 * than the text format (BENCHMARKS.md). Start each row with
 * lf_pg_bin_row() (the first one also writes the format's header), then
 * append exactly its @p ncols fields, each of the column's own type: int4
 * for integer, int8 for bigint (the server refuses a mismatch, naming the
 * column). lf_pg_bin_end() adds the trailer before the data is sent.
 * All return LF_OK or LF_ERR_NOMEM (also for a field over 1 GiB).
 */
lf_err_t lf_pg_bin_row(lf_buf_t *out, int ncols);
/** The start of a row, never the header: for rows sent in pieces
 *  (lf_pg_copy_send), in a buffer emptied after the first piece, which
 *  began with lf_pg_bin_row(). */
lf_err_t lf_pg_bin_tuple(lf_buf_t *out, int ncols);
/** A text field; NULL is SQL NULL. */
lf_err_t lf_pg_bin_text(lf_buf_t *out, const char *s);
lf_err_t lf_pg_bin_int4(lf_buf_t *out, int32_t v);
lf_err_t lf_pg_bin_int8(lf_buf_t *out, int64_t v);
lf_err_t lf_pg_bin_null(lf_buf_t *out);
/** A timestamptz from ms since the epoch; INT64_MIN is SQL NULL. */
lf_err_t lf_pg_bin_ts(lf_buf_t *out, int64_t ms);
/** A jsonb field from JSON text (the server parses it). */
lf_err_t lf_pg_bin_jsonb(lf_buf_t *out, const char *json, size_t len);
/** A bytea field; NULL data is SQL NULL. */
lf_err_t lf_pg_bin_bytea(lf_buf_t *out, const void *data, size_t len);
lf_err_t lf_pg_bin_end(lf_buf_t *out);

/**
 * COPY @p data (rows in the format @p copy_sql names) into the table with
 * @p copy_sql ("COPY t (a, b) FROM STDIN"). @returns LF_OK or LF_ERR_PG.
 */
lf_err_t lf_pg_copy(PGconn *conn, const char *copy_sql, const lf_buf_t *data,
                    char *errstr, size_t errstr_size);

/**
 * The same COPY sent while it is being formatted: lf_pg_copy_begin(), then
 * lf_pg_copy_send() for each piece of data, in order, then lf_pg_copy_end()
 * with LF_OK, or with the error that stopped the caller (a failed send, or
 * its own): then the COPY is aborted and the transaction has failed, the
 * error is returned and @p errstr is left as it was. lf_pg_copy() is the
 * three in one. @returns LF_OK or LF_ERR_PG.
 */
lf_err_t lf_pg_copy_begin(PGconn *conn, const char *copy_sql, char *errstr,
                          size_t errstr_size);
lf_err_t lf_pg_copy_send(PGconn *conn, const char *copy_sql, const char *data,
                         size_t len, char *errstr, size_t errstr_size);
lf_err_t lf_pg_copy_end(PGconn *conn, const char *copy_sql, lf_err_t err,
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

/** The SQLSTATE of this thread's last statement run by these helpers, if
 *  it failed ("42501": a privilege the role lacks); "" when it did not,
 *  or failed without one (a connection that broke). A statement run after
 *  a failure clears it. */
const char *lf_pg_last_sqlstate(void);

/** True if the failure of @p conn / @p res is about the connection or the
 *  server (class 08, 53, 57, 58, deadlock, serialization, a lock wait that
 *  ran out) rather than the data: retrying later may succeed. */
bool lf_pg_is_transient(PGconn *conn, const PGresult *res);

/** The flag that stops a wait for locks (lf_pg_exec_stoppable(), the
 *  replay operations' lock attempts): a program's signal counter, or NULL
 *  (never stopped, the default). */
void lf_pg_set_stop(const volatile sig_atomic_t *flag);

/** Has the flag of lf_pg_set_stop() been raised? */
bool lf_pg_stopped(void);

/**
 * Run @p sql (no parameters, no rows wanted: a LOCK, a DROP) as
 * lf_pg_query() does, but while the server waits, look at the flag of
 * lf_pg_set_stop() every 100 ms: raised, the statement is cancelled.
 * @returns as lf_pg_query(); LF_ERR_TEMPORARY with "WHAT: interrupted by a
 * signal" once cancelled (the transaction is then in error: roll it back).
 */
lf_err_t lf_pg_exec_stoppable(PGconn *conn, const char *sql, const char *what,
                              char *errstr, size_t errstr_size);

/** libpq's version as "15.18". Static buffer. */
const char *lf_pg_version(void);

#endif
