/* lf_defstore.c: SCHEMA.definition, the funnel definition the tables were
 * built with. The hash is computed by the server from the canonical form
 * (lf_definition_canonical()), so the database needs no hash of ours and
 * what it stores is what it hashed. Schema names are checked by the
 * callers and spliced quoted. */
#include "lf_defstore.h"

#include "lf_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHA256_OF(p) "encode(sha256(convert_to(" p ", 'UTF8')), 'hex')"

static void copy(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

lf_err_t lf_defstore_read(PGconn *conn, const char *schema,
                          lf_defstore_row_t *row, char *errstr,
                          size_t errstr_size)
{
    char sql[256];
    PGresult *res;
    lf_err_t err;

    memset(row, 0, sizeof(*row));
    snprintf(sql, sizeof(sql),
             "SELECT name, version, sha256, to_char(adopted_at AT TIME ZONE "
             "'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM \"%s\".definition",
             schema);
    if ((err = lf_pg_query(conn, sql, 0, NULL, "reading the definition", &res,
                           errstr, errstr_size)))
        return err;
    if ((row->found = PQntuples(res) > 0)) {
        copy(row->name, sizeof(row->name), PQgetvalue(res, 0, 0));
        row->version = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        copy(row->sha256, sizeof(row->sha256), PQgetvalue(res, 0, 2));
        copy(row->adopted_at, sizeof(row->adopted_at), PQgetvalue(res, 0, 3));
    }
    PQclear(res);
    return LF_OK;
}

/* Insert @p def unless a row exists (ON CONFLICT: a concurrent start). */
static lf_err_t insert(PGconn *conn, const char *schema,
                       const lf_definition_t *def, const char *canon,
                       char *errstr, size_t errstr_size)
{
    char sql[384], version[24];
    const char *params[3] = {def->name, version, canon};

    snprintf(version, sizeof(version), "%lld", (long long)def->version);
    snprintf(sql, sizeof(sql),
             "INSERT INTO \"%s\".definition (name, version, sha256, json) "
             "VALUES ($1, $2::bigint, " SHA256_OF(
                 "$3") ", $3::jsonb) "
                       "ON CONFLICT (singleton) DO NOTHING",
             schema);
    return lf_pg_query(conn, sql, 3, params, "recording the definition", NULL,
                       errstr, errstr_size);
}

lf_err_t lf_defstore_record(PGconn *conn, const char *schema,
                            const lf_definition_t *def, char *errstr,
                            size_t errstr_size)
{
    char sql[128];
    char *canon = lf_definition_canonical(def);
    lf_err_t err;

    if (!canon)
        return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
    snprintf(sql, sizeof(sql), "DELETE FROM \"%s\".definition", schema);
    if (!(err = lf_pg_query(conn, sql, 0, NULL, "replacing the definition",
                            NULL, errstr, errstr_size)))
        err = insert(conn, schema, def, canon, errstr, errstr_size);
    free(canon);
    return err;
}

/* The recorded definition and the hash of @p canon, side by side; *res
 * has no row when nothing is recorded. */
static lf_err_t compare(PGconn *conn, const char *schema, const char *canon,
                        PGresult **res, char *errstr, size_t errstr_size)
{
    char sql[384];
    const char *params[1] = {canon};

    snprintf(
        sql, sizeof(sql),
        "SELECT name, version, sha256, " SHA256_OF("$1") " FROM "
                                                         "\"%s\".definition",
        schema);
    return lf_pg_query(conn, sql, 1, params, "reading the definition", res,
                       errstr, errstr_size);
}

/* Tables with events and no recorded definition were built before
 * definitions were recorded: under the embedded default. */
static lf_err_t check_unrecorded(PGconn *conn, const char *schema,
                                 const char *canon, bool *legacy, char *errstr,
                                 size_t errstr_size)
{
    char sql[160];
    PGresult *res;
    lf_err_t err;
    char *dflt;

    *legacy = false;
    snprintf(sql, sizeof(sql), "SELECT EXISTS (SELECT 1 FROM \"%s\".events)",
             schema);
    if ((err = lf_pg_query(conn, sql, 0, NULL, "looking for events", &res,
                           errstr, errstr_size)))
        return err;
    bool has_events = !strcmp(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    if (!has_events)
        return LF_OK;
    if (!(dflt = lf_definition_canonical(lf_definition_default())))
        return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
    *legacy = strcmp(dflt, canon) != 0;
    free(dflt);
    return LF_OK;
}

/* The refusal: what is recorded, what was offered, and how to adopt it.
 * @p res: compare()'s row, or NULL for tables built before definitions
 * were recorded. */
static lf_err_t refuse(const char *schema, const lf_definition_t *def,
                       const char *file, PGresult *res, char *errstr,
                       size_t errstr_size)
{
    const char *f = file ? file : "FILE";
    char was[256], now[64] = "";

    if (res) {
        snprintf(was, sizeof(was),
                 "definition \"%s\" version %s (sha256 %.12s)",
                 PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
                 PQgetvalue(res, 0, 2));
        snprintf(now, sizeof(now), " (sha256 %.12s)", PQgetvalue(res, 0, 3));
    } else
        snprintf(was, sizeof(was),
                 "the embedded default definition (they hold events from "
                 "before definitions were recorded)");
    return lf_seterr(
        LF_ERR_INVALID, errstr, errstr_size,
        "the tables of schema %s were built under %s, not under %s: "
        "definition \"%s\" version %lld%s. One set of tables never mixes "
        "two rule sets. To adopt the new definition: leadflow-replay "
        "rebuild --into funnel_next --definition %s; leadflow-replay diff "
        "--against funnel_next --summary; leadflow-replay promote "
        "funnel_next; then restart leadflow-project with -X "
        "funnel.definition=%s. To keep the recorded one, start with its file "
        "(docs/definition.md)",
        schema, was, file ? file : "the embedded default", def->name,
        (long long)def->version, now, f, f);
}

/* Is the recorded definition (compare()'s row) @p canon's? */
static bool same(PGresult *res)
{
    return !strcmp(PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3));
}

lf_err_t lf_defstore_check(PGconn *conn, const char *schema,
                           const lf_definition_t *def, const char *file,
                           bool *differs, char *errstr, size_t errstr_size)
{
    char *canon = lf_definition_canonical(def);
    PGresult *res = NULL;
    bool legacy = false;
    lf_err_t err;

    *differs = false;
    if (!canon)
        return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
    err = compare(conn, schema, canon, &res, errstr, errstr_size);
    if (!err && !PQntuples(res)) {
        PQclear(res);
        res = NULL;
        if (!(err = check_unrecorded(conn, schema, canon, &legacy, errstr,
                                     errstr_size)) &&
            !legacy &&
            !(err = insert(conn, schema, def, canon, errstr, errstr_size)))
            err = compare(conn, schema, canon, &res, errstr, errstr_size);
    }
    if (!err && (legacy || !PQntuples(res) || !same(res))) {
        *differs = true;
        err =
            refuse(schema, def, file, legacy ? NULL : res, errstr, errstr_size);
    }
    PQclear(res);
    free(canon);
    return err;
}

lf_err_t lf_defstore_load(PGconn *conn, const char *schema,
                          lf_definition_t **def, char *errstr,
                          size_t errstr_size)
{
    char sql[128], why[512];
    PGresult *res;
    lf_err_t err;

    *def = NULL;
    snprintf(sql, sizeof(sql), "SELECT json::text FROM \"%s\".definition",
             schema);
    if ((err = lf_pg_query(conn, sql, 0, NULL, "reading the definition", &res,
                           errstr, errstr_size)))
        return err;
    if (PQntuples(res) &&
        !(*def = lf_definition_parse(PQgetvalue(res, 0, 0),
                                     (size_t)PQgetlength(res, 0, 0), why,
                                     sizeof(why))))
        err = lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                        "%s.definition does not parse: %s", schema, why);
    PQclear(res);
    return err;
}
