/* lf_pg.c: PostgreSQL helpers. Parameters or COPY, never spliced values. */
#include "lf_pg.h"

#include "lf_embedded.h"
#include "lf_log.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The SQLSTATE of the last statement run through here that failed; ""
 * once another statement runs (a later failure of another kind, a
 * rollback after one that was handled, must not be told as this one). */
static _Thread_local char last_sqlstate[6];

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
    lf_pg_log_notices(conn);
    return conn;
}

/* The options whose values libpq checks only when it connects, each with
 * the values it takes (libpq 15; "" = the default). A bad one would be
 * retried as if the server were away. */
static const struct {
    const char *name, *values;
} choices[] = {
    {"sslmode", "disable allow prefer require verify-ca verify-full"},
    {"gssencmode", "disable prefer require"},
    {"channel_binding", "disable prefer require"},
    {"target_session_attrs",
     "any read-write read-only primary standby prefer-standby"},
    {"ssl_min_protocol_version", "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3"},
    {"ssl_max_protocol_version", "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3"},
};

/* libpq compares the TLS versions without case, the others with. */
static bool one_of(const char *v, const char *values, bool nocase)
{
    size_t n = strlen(v);

    for (const char *w = values; *w; w += strcspn(w, " "), w += *w == ' ') {
        if (n && !(nocase ? strncasecmp(w, v, n) : strncmp(w, v, n)) &&
            (w[n] == ' ' || !w[n]))
            return true;
    }
    return false;
}

/* One port as libpq reads it (strtol: spaces and a sign around the
 * digits), 1..65535. A list is left to libpq: it skips a host whose port
 * is bad and tries the next. */
static bool port_valid(const char *v)
{
    char *end;
    long port;

    if (strchr(v, ','))
        return true;
    errno = 0;
    port = strtol(v, &end, 10);
    while (*end == ' ' || *end == '\t')
        end++;
    return end != v && !*end && !errno && port >= 1 && port <= 65535;
}

/* The port and the options of a few values. */
static lf_err_t check_choices(const PQconninfoOption *opts, char *errstr,
                              size_t errstr_size)
{
    for (const PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !*o->val)
            continue;
        if (!strcmp(o->keyword, "port") && !port_valid(o->val))
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "not a valid libpq conninfo or URI: port \"%s\" "
                             "is not a port number (1-65535)",
                             o->val);
        for (size_t i = 0; i < sizeof(choices) / sizeof(*choices); i++)
            if (!strcmp(o->keyword, choices[i].name) &&
                !one_of(o->val, choices[i].values,
                        !strncmp(o->keyword, "ssl_", 4)))
                return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                                 "not a valid libpq conninfo or URI: %s "
                                 "\"%s\" is not one of: %s",
                                 o->keyword, o->val, choices[i].values);
    }
    return LF_OK;
}

/* Items of a comma-separated list; 0 for NULL or "". */
static size_t items(const char *v)
{
    size_t n = v && *v ? 1 : 0;

    for (; v && *v; v++)
        n += *v == ',';
    return n;
}

static const char *opt_val(const PQconninfoOption *opts, const char *name)
{
    for (const PQconninfoOption *o = opts; o->keyword; o++)
        if (!strcmp(o->keyword, name))
            return o->val;
    return NULL;
}

/* A value libpq would refuse only at connect time. */
static lf_err_t check_values(const PQconninfoOption *opts, char *errstr,
                             size_t errstr_size)
{
    size_t hosts = items(opt_val(opts, "host")),
           addrs = items(opt_val(opts, "hostaddr")),
           ports = items(opt_val(opts, "port"));

    /* Without a host in the conninfo, PGHOST or a service file may give a
     * list this parse does not see: libpq counts those. */
    if (!hosts && !addrs)
        return check_choices(opts, errstr, errstr_size);
    if (hosts && addrs && hosts != addrs)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "not a valid libpq conninfo or URI: %zu host names "
                         "for %zu hostaddr values",
                         hosts, addrs);
    if (ports > 1 && ports != (hosts ? hosts : addrs ? addrs : 1))
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "not a valid libpq conninfo or URI: %zu ports for "
                         "%zu hosts (one port for all, or one per host)",
                         ports,
                         hosts   ? hosts
                         : addrs ? addrs
                                 : 1);
    return check_choices(opts, errstr, errstr_size);
}

lf_err_t lf_pg_conninfo_check(const char *conninfo, char *errstr,
                              size_t errstr_size)
{
    PQconninfoOption *opts;
    char *why = NULL;
    bool quoted;
    lf_err_t err;

    if (!conninfo || !*conninfo ||
        !(strchr(conninfo, '=') || !strncmp(conninfo, "postgresql://", 13) ||
          !strncmp(conninfo, "postgres://", 11)))
        return LF_OK;
    if ((opts = PQconninfoParse(conninfo, &why))) {
        err = check_values(opts, errstr, errstr_size);
        PQconninfoFree(opts);
        return err;
    }
    if (!why)
        return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
    /* libpq's reason may quote the whole URI, password and all. */
    quoted = strstr(why, conninfo) != NULL;
    lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
              "not a valid libpq conninfo or URI%s%.*s", quoted ? "" : ": ",
              quoted ? 0 : (int)strcspn(why, "\n"), why);
    PQfreemem(why);
    return LF_ERR_INVALID;
}

static const volatile sig_atomic_t *stop_flag;

void lf_pg_set_stop(const volatile sig_atomic_t *flag)
{
    stop_flag = flag;
}

bool lf_pg_stopped(void)
{
    return stop_flag && *stop_flag;
}

/* Ask the server to cancel what @p conn runs (best effort: the answer is
 * the statement's result). */
static void cancel(PGconn *conn)
{
    char buf[256];
    PGcancel *c = PQgetCancel(conn);

    if (c) {
        PQcancel(c, buf, sizeof(buf));
        PQfreeCancel(c);
    }
}

lf_err_t lf_pg_exec_stoppable(PGconn *conn, const char *sql, const char *what,
                              char *errstr, size_t errstr_size)
{
    bool cancelled = false;
    PGresult *res;
    lf_err_t err = LF_OK;

    last_sqlstate[0] = '\0';
    if (lf_pg_stopped())
        return lf_seterr(LF_ERR_TEMPORARY, errstr, errstr_size,
                         "%s: interrupted by a signal", what);
    if (!PQsendQuery(conn, sql))
        return lf_pg_fail(conn, NULL, what, errstr, errstr_size);
    while (PQisBusy(conn)) {
        struct pollfd p = {.fd = PQsocket(conn), .events = POLLIN};
        if (!cancelled && lf_pg_stopped()) {
            cancel(conn);
            cancelled = true;
        }
        if (poll(&p, 1, 100) < 0 && errno != EINTR)
            break;
        if (!PQconsumeInput(conn))
            break; /* the result says what happened */
    }
    bool by_cancel = false; /* the statement ended by our cancel */
    while ((res = PQgetResult(conn))) {
        ExecStatusType st = PQresultStatus(res);
        if (!err && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            by_cancel = state && !strcmp(state, "57014");
            err = lf_pg_fail(conn, res, what, errstr, errstr_size);
        }
        PQclear(res);
    }
    /* A statement that failed for its own reason says so; one that our
     * cancel ended, or that ended well all the same (the caller rolls
     * back), was interrupted. */
    if (cancelled && (!err || by_cancel))
        return lf_seterr(LF_ERR_TEMPORARY, errstr, errstr_size,
                         "%s: interrupted by a signal", what);
    return err;
}

bool lf_pg_refused_for_good(const char *errstr)
{
    /* libpq writes a line per attempt ("connection to server at ...
     * failed: REASON", "could not translate host name ...", two per server
     * with sslmode=prefer), its hints on lines that begin with a tab. Every
     * attempt's line must be a refusal of the settings: one server that
     * could not be reached at all (refused, no such name, read-only) may
     * come back. */
    static const char *const settings[] = {
        "\" does not exist", /* database "x" / role "x" */
        "password authentication failed",
        "no pg_hba.conf entry",
        "no password supplied",
    };
    int lines = 0;

    if (!errstr)
        return false;
    for (const char *l = errstr; *l;
         l += strcspn(l, "\n") + (l[strcspn(l, "\n")] != 0)) {
        size_t n = strcspn(l, "\n");
        bool refused = false;
        if (!n || *l == '\t' || *l == ' ')
            continue;
        for (size_t i = 0; !refused && i < sizeof(settings) / sizeof(*settings);
             i++) {
            const char *hit = strstr(l, settings[i]);
            refused = hit && hit < l + n;
        }
        if (!refused)
            return false;
        lines++;
    }
    return lines > 0;
}

void lf_pg_log_notices(PGconn *conn)
{
    PQsetNoticeProcessor(conn, notice_to_log, NULL);
}

const char *lf_pg_last_sqlstate(void)
{
    return last_sqlstate;
}

static void note_sqlstate(const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    snprintf(last_sqlstate, sizeof(last_sqlstate), "%s", state ? state : "");
}

static lf_err_t pg_fail(PGconn *conn, PGresult *res, const char *what,
                        char *errstr, size_t errstr_size)
{
    const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
    int n = (int)strlen(msg);

    note_sqlstate(res);
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

    last_sqlstate[0] = '\0';
    if (PQresultStatus(res) != PGRES_COMMAND_OK &&
        PQresultStatus(res) != PGRES_TUPLES_OK)
        err = pg_fail(conn, res, what, errstr, errstr_size);
    PQclear(res);
    return err;
}

lf_err_t lf_pg_commit(PGconn *conn, bool *in_doubt, char *errstr,
                      size_t errstr_size)
{
    lf_err_t err = lf_pg_query(conn, "COMMIT", 0, NULL, "COMMIT", NULL, errstr,
                               errstr_size);
    bool doubt = err && PQstatus(conn) != CONNECTION_OK;

    if (in_doubt)
        *in_doubt = doubt;
    if (doubt) {
        size_t n = strlen(errstr);
        snprintf(errstr + n, errstr_size - n,
                 " (the answer was lost: it may have been committed)");
    }
    return err;
}

lf_err_t lf_pg_check_migrated(PGconn *conn, char *errstr, size_t errstr_size)
{
    const char **names, *params[1];
    lf_buf_t arr = {0};
    PGresult *res = NULL;
    size_t n = 0;
    lf_err_t err;

    while (lf_embedded_migrations[n].name)
        n++;
    if (!(names = calloc(n + 1, sizeof(*names))))
        return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
    for (size_t i = 0; i < n; i++)
        names[i] = lf_embedded_migrations[i].name;
    err = lf_pg_text_array(&arr, names, n) ? LF_ERR_NOMEM : LF_OK;
    free(names);
    if (err)
        return lf_seterr(err, errstr, errstr_size, "out of memory");
    /* The first of ours the database lacks ('' when it has them all);
     * without the bookkeeping there is no funnel here (asked first: a
     * statement naming a missing table does not even parse). */
    params[0] = (const char *)arr.data;
    err = lf_pg_query(
        conn, "SELECT to_regclass('funnel.schema_migrations') IS NULL", 0, NULL,
        "reading the migrations", &res, errstr, errstr_size);
    if (!err && !strcmp(PQgetvalue(res, 0, 0), "t")) {
        err = lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                        "database %s has no leadflow funnel (schema funnel): "
                        "check -d, or run leadflow-project --migrate-only on "
                        "it first",
                        PQdb(conn));
    } else if (!err) {
        PQclear(res);
        res = NULL;
        err = lf_pg_query(conn,
                          "SELECT coalesce((SELECT n FROM unnest($1::text[]) "
                          "AS n WHERE n NOT IN (SELECT name FROM "
                          "funnel.schema_migrations) ORDER BY n LIMIT 1), '')",
                          1, params, "reading the migrations", &res, errstr,
                          errstr_size);
        if (!err && *PQgetvalue(res, 0, 0))
            err = lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                            "schema funnel of database %s lacks migration %s: "
                            "run this version's leadflow-project "
                            "--migrate-only first",
                            PQdb(conn), PQgetvalue(res, 0, 0));
    }
    lf_buf_free(&arr);
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

/* ---- binary COPY ------------------------------------------------------ */

static void put_be(char *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--, v >>= 8)
        p[i] = (char)(v & 0xff);
}

/* A field: its length (-1: NULL), then its bytes. */
static lf_err_t bin_field(lf_buf_t *out, const void *data, size_t len)
{
    if (!data) {
        if (lf_buf_reserve(out, 4))
            return LF_ERR_NOMEM;
        put_be(out->data + out->len, UINT32_MAX, 4);
        out->len += 4;
        out->data[out->len] = '\0';
        return LF_OK;
    }
    if (len > (1u << 30) || lf_buf_reserve(out, 4 + len))
        return LF_ERR_NOMEM;
    put_be(out->data + out->len, len, 4);
    if (len)
        memcpy(out->data + out->len + 4, data, len);
    out->len += 4 + len;
    out->data[out->len] = '\0';
    return LF_OK;
}

lf_err_t lf_pg_bin_row(lf_buf_t *out, int ncols)
{
    /* Signature, flags (no OIDs), header extension length. */
    static const char header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";

    if (!out->len && lf_buf_append(out, header, sizeof(header)))
        return LF_ERR_NOMEM;
    return lf_pg_bin_tuple(out, ncols);
}

lf_err_t lf_pg_bin_tuple(lf_buf_t *out, int ncols)
{
    char n[2];

    put_be(n, (uint64_t)ncols, 2);
    return lf_buf_append(out, n, 2);
}

lf_err_t lf_pg_bin_text(lf_buf_t *out, const char *s)
{
    return bin_field(out, s, s ? strlen(s) : 0);
}

lf_err_t lf_pg_bin_int4(lf_buf_t *out, int32_t v)
{
    char b[4];
    put_be(b, (uint32_t)v, 4);
    return bin_field(out, b, 4);
}

lf_err_t lf_pg_bin_int8(lf_buf_t *out, int64_t v)
{
    char b[8];
    put_be(b, (uint64_t)v, 8);
    return bin_field(out, b, 8);
}

lf_err_t lf_pg_bin_null(lf_buf_t *out)
{
    return bin_field(out, NULL, 0);
}

/* timestamptz on the wire: microseconds since 2000-01-01 00:00:00 UTC. */
#define PG_EPOCH_MS INT64_C(946684800000)

lf_err_t lf_pg_bin_ts(lf_buf_t *out, int64_t ms)
{
    if (ms == INT64_MIN)
        return lf_pg_bin_null(out);
    return lf_pg_bin_int8(out, (ms - PG_EPOCH_MS) * 1000);
}

lf_err_t lf_pg_bin_jsonb(lf_buf_t *out, const char *json, size_t len)
{
    /* jsonb's binary input: a version byte (1), then the JSON text. */
    if (len > (1u << 30) || lf_buf_reserve(out, 5 + len))
        return LF_ERR_NOMEM;
    put_be(out->data + out->len, len + 1, 4);
    out->data[out->len + 4] = 1;
    memcpy(out->data + out->len + 5, json, len);
    out->len += 5 + len;
    out->data[out->len] = '\0';
    return LF_OK;
}

lf_err_t lf_pg_bin_bytea(lf_buf_t *out, const void *data, size_t len)
{
    return bin_field(out, data, len);
}

lf_err_t lf_pg_bin_end(lf_buf_t *out)
{
    return lf_buf_append(out, "\377\377", 2); /* a row of -1 fields */
}

#define COPY_SLICE (64 * 1024)

lf_err_t lf_pg_copy_begin(PGconn *conn, const char *copy_sql, char *errstr,
                          size_t errstr_size)
{
    PGresult *res = PQexec(conn, copy_sql);
    lf_err_t err = LF_OK;

    if (PQresultStatus(res) != PGRES_COPY_IN)
        err = pg_fail(conn, res, copy_sql, errstr, errstr_size);
    PQclear(res);
    return err;
}

lf_err_t lf_pg_copy_send(PGconn *conn, const char *copy_sql, const char *data,
                         size_t len, char *errstr, size_t errstr_size)
{
    /* In slices: libpq copies what it is given into its output buffer,
     * which grows to the largest call and stays that size for the life of
     * the connection (4 MiB of a projector's peak RSS with two writers
     * and whole batches). Blocking connection: PQputCopyData returns 1 or
     * -1, never 0. */
    for (size_t off = 0; off < len;) {
        size_t n = len - off < COPY_SLICE ? len - off : COPY_SLICE;
        if (PQputCopyData(conn, data + off, (int)n) != 1)
            return pg_fail(conn, NULL, copy_sql, errstr, errstr_size);
        off += n;
    }
    return LF_OK;
}

lf_err_t lf_pg_copy_end(PGconn *conn, const char *copy_sql, lf_err_t err,
                        char *errstr, size_t errstr_size)
{
    PGresult *res;

    if (!err) {
        if (PQputCopyEnd(conn, NULL) != 1)
            err = pg_fail(conn, NULL, copy_sql, errstr, errstr_size);
    } else if (PQstatus(conn) == CONNECTION_OK) {
        /* Abort: without an end the connection stays in COPY IN, and
         * PQgetResult would answer COPY IN for ever. */
        PQputCopyEnd(conn, "the client gave up on this COPY");
    }
    while ((res = PQgetResult(conn))) {
        if (!err && PQresultStatus(res) != PGRES_COMMAND_OK)
            err = pg_fail(conn, res, copy_sql, errstr, errstr_size);
        PQclear(res);
    }
    return err;
}

lf_err_t lf_pg_copy(PGconn *conn, const char *copy_sql, const lf_buf_t *data,
                    char *errstr, size_t errstr_size)
{
    lf_err_t err = lf_pg_copy_begin(conn, copy_sql, errstr, errstr_size);

    if (err)
        return err;
    err = lf_pg_copy_send(conn, copy_sql, data->data, data->len, errstr,
                          errstr_size);
    return lf_pg_copy_end(conn, copy_sql, err, errstr, errstr_size);
}

lf_err_t lf_pg_text_array(lf_buf_t *out, const char *const *items, size_t n)
{
    if (lf_buf_append(out, "{", 1))
        return LF_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(items[i]);
        char *w;
        /* Room for every byte escaped, the quotes and a comma: one
         * reservation per item, not one append per byte. */
        if (len > (SIZE_MAX - 4) / 2 || lf_buf_reserve(out, 2 * len + 4))
            return LF_ERR_NOMEM;
        w = out->data + out->len;
        if (i)
            *w++ = ',';
        *w++ = '"';
        for (const char *s = items[i]; *s; s++) {
            if (*s == '"' || *s == '\\')
                *w++ = '\\';
            *w++ = *s;
        }
        *w++ = '"';
        *w = '\0';
        out->len = (size_t)(w - out->data);
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

    last_sqlstate[0] = '\0';
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

    note_sqlstate(res);

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
