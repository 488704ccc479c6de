/* lf_pg.c: PostgreSQL helpers. Parameters or COPY, never spliced values. */
#include "lf_pg.h"

#include "lf_embedded.h"
#include "lf_log.h"
#include "lf_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The advisory lock that serialises migrations across instances: "lfmg". */
#define LF_MIGRATION_LOCK 0x6c666d67

/* Server NOTICEs ("already exists, skipping") are debug lines in our log,
 * not raw text on stderr. */
static void notice_to_log(void *arg, const char *message)
{
    char q[1024];
    (void)arg;
    LF_LOG(LF_LOG_DEBUG, "src=postgres msg=%s",
           lf_log_quote(message, q, sizeof(q)));
}

PGconn *lf_pg_connect(const char *conninfo, char *errstr, size_t errstr_size)
{
    const char *keys[] = {"dbname",
                          "client_encoding",
                          "options",
                          "connect_timeout",
                          "application_name",
                          "fallback_application_name",
                          NULL};
    const char *vals[] = {conninfo ? conninfo : "",
                          "UTF8",
                          "-c TimeZone=UTC",
                          "10",
                          NULL,
                          "leadflow",
                          NULL};
    PGconn *conn;

    /* expand_dbname=1: a conninfo or URI in dbname wins over our defaults
     * for any key it sets. "application_name" stays NULL (= PGAPPNAME). */
    conn = PQconnectdbParams(keys, vals, 1);
    if (!conn) {
        lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        char *msg = PQerrorMessage(conn);
        size_t n = strlen(msg);
        while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
            msg[--n] = '\0';
        lf_seterr(LF_ERR_PG, errstr, errstr_size, "PostgreSQL: %s", msg);
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, notice_to_log, NULL);
    return conn;
}

static lf_err_t pg_fail(PGconn *conn, PGresult *res, const char *what,
                        char *errstr, size_t errstr_size)
{
    const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
    int n = (int)strlen(msg);
    while (n && msg[n - 1] == '\n')
        n--;
    lf_seterr(LF_ERR_PG, errstr, errstr_size, "%s: %.*s", what, n, msg);
    return LF_ERR_PG;
}

lf_err_t lf_pg_exec(PGconn *conn, const char *sql, const char *what,
                    char *errstr, size_t errstr_size)
{
    PGresult *res = PQexec(conn, sql);
    lf_err_t err = LF_OK;

    if (PQresultStatus(res) != PGRES_COMMAND_OK &&
        PQresultStatus(res) != PGRES_TUPLES_OK)
        err = pg_fail(conn, res, what, errstr, errstr_size);
    PQclear(res);
    return err;
}

lf_err_t lf_pg_migrate(PGconn *conn, int *applied, char *errstr,
                       size_t errstr_size)
{
    char lock[96];
    int n = 0;
    lf_err_t err;

    snprintf(lock, sizeof(lock), "SELECT pg_advisory_xact_lock(%d)",
             LF_MIGRATION_LOCK);
    if ((err = lf_pg_exec(conn, "BEGIN", "migrations", errstr, errstr_size)))
        return err;
    if ((err = lf_pg_exec(conn, lock, "migrations: lock", errstr, errstr_size)))
        goto rollback;
    /* Create the bookkeeping only when missing: a role that may write the
     * funnel but create nothing (leadflow_projector) must get past this
     * once an administrator has migrated. */
    PGresult *res =
        PQexec(conn, "SELECT to_regclass('funnel.schema_migrations')"
                     " IS NULL");
    bool fresh = PQresultStatus(res) == PGRES_TUPLES_OK &&
                 !strcmp(PQgetvalue(res, 0, 0), "t");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        err = pg_fail(conn, res, "migrations", errstr, errstr_size);
        PQclear(res);
        goto rollback;
    }
    PQclear(res);
    if (fresh &&
        (err = lf_pg_exec(conn,
                          "CREATE SCHEMA IF NOT EXISTS funnel;"
                          "CREATE TABLE funnel.schema_migrations"
                          " (name text PRIMARY KEY,"
                          "  applied_at timestamptz NOT NULL DEFAULT now())",
                          "migrations: bookkeeping", errstr, errstr_size)))
        goto rollback;
    for (const lf_migration_t *m = lf_embedded_migrations; m->name; m++) {
        const char *params[1] = {m->name};
        PGresult *res = PQexecParams(
            conn, "SELECT 1 FROM funnel.schema_migrations WHERE name = $1", 1,
            NULL, params, NULL, NULL, 0);
        bool done = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            err = pg_fail(conn, res, "migrations", errstr, errstr_size);
            PQclear(res);
            goto rollback;
        }
        PQclear(res);
        if (done)
            continue;
        char what[160];
        snprintf(what, sizeof(what), "migration %s", m->name);
        if ((err = lf_pg_exec(conn, m->sql, what, errstr, errstr_size)))
            goto rollback;
        res = PQexecParams(conn,
                           "INSERT INTO funnel.schema_migrations (name) "
                           "VALUES ($1)",
                           1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            err = pg_fail(conn, res, what, errstr, errstr_size);
            PQclear(res);
            goto rollback;
        }
        PQclear(res);
        n++;
    }
    if ((err = lf_pg_exec(conn, "COMMIT", "migrations: commit", errstr,
                          errstr_size)))
        return err;
    if (applied)
        *applied = n;
    return LF_OK;
rollback:
    PQclear(PQexec(conn, "ROLLBACK"));
    return err;
}

lf_err_t lf_pg_copy_escape(lf_buf_t *out, const char *s, size_t len)
{
    size_t start = 0;

    if (lf_buf_reserve(out, len))
        return LF_ERR_NOMEM;
    for (size_t i = 0; i < len; i++) {
        const char *rep;
        switch (s[i]) {
        case '\\':
            rep = "\\\\";
            break;
        case '\t':
            rep = "\\t";
            break;
        case '\n':
            rep = "\\n";
            break;
        case '\r':
            rep = "\\r";
            break;
        default:
            continue;
        }
        if (lf_buf_append(out, s + start, i - start) ||
            lf_buf_append(out, rep, 2))
            return LF_ERR_NOMEM;
        start = i + 1;
    }
    return lf_buf_append(out, s + start, len - start);
}

static lf_err_t sep(lf_buf_t *out, bool last)
{
    return lf_buf_append(out, last ? "\n" : "\t", 1);
}

lf_err_t lf_pg_copy_str(lf_buf_t *out, const char *s, bool last)
{
    if (!s)
        return lf_buf_append(out, "\\N", 2) || sep(out, last) ? LF_ERR_NOMEM
                                                              : LF_OK;
    return lf_pg_copy_escape(out, s, strlen(s)) || sep(out, last) ? LF_ERR_NOMEM
                                                                  : LF_OK;
}

lf_err_t lf_pg_copy_int(lf_buf_t *out, int64_t v, bool last)
{
    char digits[24], *p = digits + sizeof(digits);
    /* unsigned, so INT64_MIN negates without overflow */
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

    do
        *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *--p = '-';
    return lf_buf_append(out, p, (size_t)(digits + sizeof(digits) - p)) ||
                   sep(out, last)
               ? LF_ERR_NOMEM
               : LF_OK;
}

lf_err_t lf_pg_copy_ts(lf_buf_t *out, int64_t ms, bool last)
{
    char ts[40];
    if (ms == INT64_MIN)
        return lf_pg_copy_str(out, NULL, last);
    return lf_pg_copy_str(out, lf_time_format(ms, ts, sizeof(ts)), last);
}

lf_err_t lf_pg_copy_bytea(lf_buf_t *out, const void *data, size_t len,
                          bool last)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = data;

    if (!data)
        return lf_pg_copy_str(out, NULL, last);
    /* "\\x" in COPY text is the two characters \x after de-escaping. */
    if (lf_buf_reserve(out, 3 + 2 * len) || lf_buf_append(out, "\\\\x", 3))
        return LF_ERR_NOMEM;
    for (size_t i = 0; i < len; i++) {
        out->data[out->len++] = hex[p[i] >> 4];
        out->data[out->len++] = hex[p[i] & 15];
    }
    out->data[out->len] = '\0';
    return sep(out, last);
}

#define COPY_SLICE (64 * 1024)

lf_err_t lf_pg_copy(PGconn *conn, const char *copy_sql, const lf_buf_t *data,
                    char *errstr, size_t errstr_size)
{
    PGresult *res = PQexec(conn, copy_sql);
    lf_err_t err = LF_OK;

    if (PQresultStatus(res) != PGRES_COPY_IN) {
        err = pg_fail(conn, res, copy_sql, errstr, errstr_size);
        PQclear(res);
        return err;
    }
    PQclear(res);
    /* In slices: libpq copies what it is given into its output buffer,
     * which grows to the largest call and stays that size for the life of
     * the connection (4 MiB of a projector's peak RSS with two writers
     * and whole batches). Blocking connection: PQputCopyData returns 1 or
     * -1, never 0. */
    for (size_t off = 0; !err && off < data->len;) {
        size_t n = data->len - off < COPY_SLICE ? data->len - off : COPY_SLICE;
        if (PQputCopyData(conn, data->data + off, (int)n) != 1)
            err = pg_fail(conn, NULL, copy_sql, errstr, errstr_size);
        off += n;
    }
    if (!err && PQputCopyEnd(conn, NULL) != 1)
        err = pg_fail(conn, NULL, copy_sql, errstr, errstr_size);
    while ((res = PQgetResult(conn))) {
        if (!err && PQresultStatus(res) != PGRES_COMMAND_OK)
            err = pg_fail(conn, res, copy_sql, errstr, errstr_size);
        PQclear(res);
    }
    return err;
}

lf_err_t lf_pg_text_array(lf_buf_t *out, const char *const *items, size_t n)
{
    if (lf_buf_append(out, "{", 1))
        return LF_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *s = items[i];
        if ((i && lf_buf_append(out, ",", 1)) || lf_buf_append(out, "\"", 1))
            return LF_ERR_NOMEM;
        for (; *s; s++)
            if (((*s == '"' || *s == '\\') && lf_buf_append(out, "\\", 1)) ||
                lf_buf_append(out, s, 1))
                return LF_ERR_NOMEM;
        if (lf_buf_append(out, "\"", 1))
            return LF_ERR_NOMEM;
    }
    return lf_buf_append(out, "}", 1);
}

lf_err_t lf_pg_query(PGconn *conn, const char *sql, int n,
                     const char *const *params, const char *what,
                     PGresult **out, char *errstr, size_t errstr_size)
{
    PGresult *res = n ? PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0)
                      : PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);

    if (out)
        *out = NULL;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        lf_err_t err = lf_pg_fail(conn, res, what, errstr, errstr_size);
        PQclear(res);
        return err;
    }
    if (out)
        *out = res;
    else
        PQclear(res);
    return LF_OK;
}

lf_err_t lf_pg_fail(PGconn *conn, const PGresult *res, const char *what,
                    char *errstr, size_t errstr_size)
{
    const char *msg = res ? PQresultErrorMessage(res) : "";
    int n;

    if (!*msg)
        msg = PQerrorMessage(conn);
    n = (int)strlen(msg);
    while (n && msg[n - 1] == '\n')
        n--;
    lf_seterr(LF_ERR_PG, errstr, errstr_size, "%s: %.*s", what, n, msg);
    return lf_pg_is_transient(conn, res) ? LF_ERR_TEMPORARY : LF_ERR_PG;
}

bool lf_pg_is_transient(PGconn *conn, const PGresult *res)
{
    const char *state;

    if (!conn || PQstatus(conn) != CONNECTION_OK)
        return true;
    state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!state)
        return true; /* no SQLSTATE: the connection broke */
    return !strncmp(state, "08", 2) || !strncmp(state, "53", 2) ||
           !strncmp(state, "57", 2) || !strncmp(state, "58", 2) ||
           !strcmp(state, "40001") || !strcmp(state, "40P01") ||
           !strcmp(state, "55P03");
}

const char *lf_pg_version(void)
{
    static char buf[32];
    int v = PQlibVersion();
    snprintf(buf, sizeof(buf), "%d.%d", v / 10000, v % 10000);
    return buf;
}
