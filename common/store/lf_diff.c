/* lf_diff.c: compare the funnel model in two schemas. The schema names go
 * into SQL as quoted identifiers after lf_catalog_check_name(); the rest of
 * each statement is built from the tables described below, never from
 * input. */
#include "lf_diff.h"

#include "lf_buf.h"
#include "lf_catalog.h"
#include "lf_json.h"
#include "lf_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What is compared, per table. source is a FROM item with %1$s for the
 * schema; keys identify a row. The columns compared (keys among them) are
 * cols when given, else every column of the table except skip, read from
 * the catalog: a column a migration adds is compared without a word here.
 * Not compared: wall-clock times, and the Kafka coordinates of events (a
 * duplicated event keeps the copy that came first, which another run may
 * take from another partition). */
typedef struct diff_spec_s {
    const char *table;
    const char *source;
    bool has_lead;
    const char *keys[4];
    const char *cols[8];
    const char *skip[6];
} diff_spec_t;

static const diff_spec_t diff_specs[LF_DIFF_TABLES] = {
    {"events",
     "%1$s.events",
     true,
     {"event_id"},
     {NULL},
     {"topic", "partition", "\"offset\"", "received_at"}},
    {"leads", "%1$s.leads", true, {"lead_id"}, {NULL}, {"updated_at"}},
    {"stage_history",
     "%1$s.stage_history",
     true,
     {"lead_id", "visit"},
     {NULL},
     {NULL}},
    /* A conflict's reason names where the second copy was read: compare
     * conflicts by event. */
    {"anomalies",
     "(SELECT DISTINCT event_id, lead_id, kind, CASE WHEN kind = "
     "'conflict' THEN '' ELSE reason END AS reason FROM %1$s.anomalies)",
     true,
     {"event_id", "kind", "reason"},
     {"event_id", "lead_id", "kind", "reason"},
     {NULL}},
    {"dead_letters",
     "(SELECT * FROM %1$s.dead_letters WHERE resolved_at IS NULL)",
     false,
     {"topic", "partition", "\"offset\""},
     {"topic", "partition", "\"offset\"", "key", "value", "error"},
     {NULL}},
    {"merges", "%1$s.merges", true, {"lead_id"}, {NULL}, {NULL}},
    {"erasures", "%1$s.erasures", false, {"event_id"}, {NULL}, {NULL}},
    {"erased_leads", "%1$s.erased_leads", false, {"pseudonym"}, {NULL}, {NULL}},
};

/* The most columns a table may have for a diff. */
#define DIFF_COLS_MAX 64

/* The columns compared of one table: names (quoted where SQL needs it)
 * pointing into sp->cols or into names. */
typedef struct diff_cols_s {
    const char *col[DIFF_COLS_MAX + 1]; /* NULL-terminated */
    lf_catalog_stmts_t names;
} diff_cols_t;

static bool skipped(const diff_spec_t *sp, const char *name)
{
    for (int i = 0; sp->skip[i]; i++)
        if (!strcmp(sp->skip[i], name))
            return true;
    return false;
}

/* Fill @p dc for @p sp: its fixed list, or the columns of schema @p a's
 * table in table order, without the skipped ones. Free dc->names. */
static lf_err_t diff_cols(PGconn *conn, const diff_spec_t *sp, const char *a,
                          diff_cols_t *dc, char *errstr, size_t errstr_size)
{
    int n = 0;
    lf_err_t err;

    memset(dc, 0, sizeof(*dc));
    if (sp->cols[0]) {
        for (; sp->cols[n]; n++)
            dc->col[n] = sp->cols[n];
        return LF_OK;
    }
    if ((err = lf_catalog_gather(
             conn,
             "SELECT quote_ident(a.attname) FROM pg_attribute a WHERE "
             "a.attrelid = format('%I.%I', $1::text, $2::text)::regclass AND "
             "a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
             2, a, sp->table, sp->table, &dc->names, errstr, errstr_size)))
        return err;
    for (size_t i = 0; i < dc->names.n; i++) {
        if (skipped(sp, dc->names.s[i]))
            continue;
        if (n == DIFF_COLS_MAX)
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "%s.%s: more than %d columns to compare", a,
                             sp->table, DIFF_COLS_MAX);
        dc->col[n++] = dc->names.s[i];
    }
    return LF_OK;
}

/* A column's name for a person: without SQL's quotes. */
static const char *col_label(const char *col, char *buf, size_t size)
{
    size_t n = strlen(col);
    if (n < 2 || col[0] != '"')
        return col;
    snprintf(buf, size, "%.*s", (int)(n - 2), col + 1);
    return buf;
}

static lf_err_t list_join(lf_buf_t *b, const char *const *items,
                          const char *prefix, const char *sep)
{
    for (int i = 0; items[i]; i++)
        if ((i && lf_buf_puts(b, sep)) || lf_buf_puts(b, prefix) ||
            lf_buf_puts(b, items[i]))
            return LF_ERR_NOMEM;
    return LF_OK;
}

static lf_err_t append_source(lf_buf_t *b, const diff_spec_t *sp,
                              const char *schema)
{
    /* %1$s only: expand by hand (the format is ours, not input). */
    for (const char *s = sp->source; *s; s++) {
        if (!strncmp(s, "%1$s", 4)) {
            if (lf_buf_printf(b, "\"%s\"", schema))
                return LF_ERR_NOMEM;
            s += 3;
        } else if (lf_buf_append(b, s, 1)) {
            return LF_ERR_NOMEM;
        }
    }
    return LF_OK;
}

static lf_err_t checksum(PGconn *conn, const diff_spec_t *sp,
                         const char *const *cols, const char *schema,
                         long long *rows, char *sum, char *errstr,
                         size_t errstr_size)
{
    lf_buf_t b = {0};
    PGresult *res;
    lf_err_t err;

    /* The sum of 60 bits of each row's md5: independent of row order,
     * no sort, memory bounded. */
    if (lf_buf_puts(&b, "SELECT count(*), substr(md5(count(*) || ':' || "
                        "coalesce(sum(('x' || substr(h, 1, 15))::bit(60)::"
                        "int8), 0)), 1, 16) FROM (SELECT md5(ROW(") ||
        list_join(&b, cols, "t.", ", ") ||
        lf_buf_puts(&b, ")::text) AS h FROM ") ||
        append_source(&b, sp, schema) || lf_buf_puts(&b, " t) s")) {
        lf_buf_free(&b);
        return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
    }
    err = lf_pg_query(conn, b.data, 0, NULL, sp->table, &res, errstr,
                      errstr_size);
    lf_buf_free(&b);
    if (err)
        return err;
    *rows = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    snprintf(sum, 17, "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    return LF_OK;
}

static lf_err_t add_row(lf_diff_t *d, size_t *cap, const char *lead,
                        const char *text)
{
    if (d->row_count == *cap) {
        size_t c = *cap ? *cap * 2 : 32;
        lf_diff_row_t *n = realloc(d->rows, c * sizeof(*n));
        if (!n)
            return LF_ERR_NOMEM;
        d->rows = n;
        *cap = c;
    }
    lf_diff_row_t *r = &d->rows[d->row_count];
    r->lead = lead ? strdup(lead) : NULL;
    r->text = strdup(text);
    if ((lead && !r->lead) || !r->text) {
        free(r->lead);
        free(r->text);
        return LF_ERR_NOMEM;
    }
    d->row_count++;
    return LF_OK;
}

/* Quote a value for a diff line, cut to a readable length. */
static void show_value(lf_buf_t *b, const PGresult *res, int r, int c)
{
    if (PQgetisnull(res, r, c)) {
        lf_buf_puts(b, "NULL");
        return;
    }
    const char *v = PQgetvalue(res, r, c);
    size_t n = strlen(v), m = n > 60 ? 60 : n;

    /* Cut before a character, never inside one: the line stays UTF-8. */
    while (m < n && m > 0 && ((unsigned char)v[m] & 0xC0) == 0x80)
        m--;
    lf_json_append_string(b, v, m);
    if (m < n)
        lf_buf_puts(b, "...");
}

static int count_items(const char *const *items)
{
    int n = 0;
    while (items[n])
        n++;
    return n;
}

/* The first part of detail()'s query: CTE d, one row per differing row,
 * with its lead, whether it is on one side only, its key for a person and
 * every compared column of both sides as text (a0, b0, a1, b1, ...). */
static lf_err_t detail_rows_sql(lf_buf_t *s, const diff_spec_t *sp,
                                const char *const *cols, const char *a,
                                const char *b)
{
    int nkeys = count_items(sp->keys);

    if (lf_buf_puts(s, "WITH d AS (SELECT ") ||
        lf_buf_puts(s, sp->has_lead ? "coalesce(a.lead_id, b.lead_id)"
                                    : "NULL::text") ||
        lf_buf_puts(s, " AS lf_lead, a.lf_h IS NULL AS only_b, "
                       "b.lf_h IS NULL AS only_a, concat_ws(' ', NULL::text"))
        return LF_ERR_NOMEM;
    for (int k = 0; k < nkeys; k++) {
        const char *key = sp->keys[k];
        if (sp->has_lead && !strcmp(key, "lead_id"))
            continue;
        if (lf_buf_printf(s, ", '%s=' || coalesce(a.%s, b.%s)::text",
                          key[0] == '"' ? "offset" : key, key, key))
            return LF_ERR_NOMEM;
    }
    if (lf_buf_puts(s, ") AS lf_key"))
        return LF_ERR_NOMEM;
    for (int c = 0; cols[c]; c++)
        if (lf_buf_printf(s, ", a.%s::text AS a%d, b.%s::text AS b%d", cols[c],
                          c, cols[c], c))
            return LF_ERR_NOMEM;
    for (int side = 0; side < 2; side++)
        if (lf_buf_puts(s, side ? " FULL JOIN (SELECT " : " FROM (SELECT ") ||
            list_join(s, cols, "t.", ", ") || lf_buf_puts(s, ", md5(ROW(") ||
            list_join(s, cols, "t.", ", ") ||
            lf_buf_puts(s, ")::text) AS lf_h FROM ") ||
            append_source(s, sp, side ? b : a) ||
            lf_buf_puts(s, side ? " t) b ON " : " t) a"))
            return LF_ERR_NOMEM;
    for (int k = 0; k < nkeys; k++)
        if (lf_buf_printf(s, "%sa.%s = b.%s", k ? " AND " : "", sp->keys[k],
                          sp->keys[k]))
            return LF_ERR_NOMEM;
    if (lf_buf_puts(s, " WHERE a.lf_h IS DISTINCT FROM b.lf_h)"))
        return LF_ERR_NOMEM;
    return LF_OK;
}

/* detail()'s whole query: the rows of d for the first max_leads leads
 * (or the first max_leads rows without a lead). */
static lf_err_t detail_sql(lf_buf_t *s, const diff_spec_t *sp,
                           const char *const *cols, const char *a,
                           const char *b, int max_leads)
{
    if (detail_rows_sql(s, sp, cols, a, b))
        return LF_ERR_NOMEM;
    if (sp->has_lead)
        return lf_buf_printf(s,
                             ", l AS (SELECT lf_lead FROM d GROUP BY lf_lead "
                             "ORDER BY lf_lead COLLATE \"C\" LIMIT %d) SELECT "
                             "d.* FROM "
                             "d JOIN l USING (lf_lead) ORDER BY lf_lead "
                             "COLLATE \"C\", lf_key COLLATE \"C\" LIMIT 10000",
                             max_leads)
                   ? LF_ERR_NOMEM
                   : LF_OK;
    return lf_buf_printf(s,
                         " SELECT * FROM d ORDER BY lf_key COLLATE \"C\" "
                         "LIMIT %d",
                         max_leads)
               ? LF_ERR_NOMEM
               : LF_OK;
}

/* Row @p r of detail()'s result for a person: 'TABLE KEY: only in B' or
 * 'TABLE KEY: COL A=VALUE B=VALUE; ...' for the columns that differ. */
static lf_err_t describe_row(lf_buf_t *line, const diff_spec_t *sp,
                             const char *const *cols, const PGresult *res,
                             int r, const char *a, const char *b)
{
    const char *key = PQgetvalue(res, r, 3);
    int shown = 0;

    lf_buf_reset(line);
    if (lf_buf_printf(line, "%s%s%s:", sp->table, *key ? " " : "", key))
        return LF_ERR_NOMEM;
    if (!strcmp(PQgetvalue(res, r, 1), "t"))
        return lf_buf_printf(line, " only in %s", b) ? LF_ERR_NOMEM : LF_OK;
    if (!strcmp(PQgetvalue(res, r, 2), "t"))
        return lf_buf_printf(line, " only in %s", a) ? LF_ERR_NOMEM : LF_OK;
    for (int c = 0; cols[c]; c++) {
        char label[80];
        int ca = 4 + 2 * c, cb = ca + 1;
        bool same = PQgetisnull(res, r, ca) == PQgetisnull(res, r, cb) &&
                    !strcmp(PQgetvalue(res, r, ca), PQgetvalue(res, r, cb));
        if (same)
            continue;
        if (lf_buf_printf(line, "%s %s %s=", shown++ ? ";" : "",
                          col_label(cols[c], label, sizeof(label)), a))
            return LF_ERR_NOMEM;
        show_value(line, res, r, ca);
        if (lf_buf_printf(line, " %s=", b))
            return LF_ERR_NOMEM;
        show_value(line, res, r, cb);
    }
    return LF_OK;
}

/* The differing rows of one table, for its first max_leads leads (or
 * first max_leads rows without a lead), added to @p d. */
static lf_err_t detail(PGconn *conn, const diff_spec_t *sp,
                       const char *const *cols, const char *a, const char *b,
                       int max_leads, lf_diff_t *d, size_t *cap, char *errstr,
                       size_t errstr_size)
{
    lf_buf_t s = {0}, line = {0};
    PGresult *res = NULL;
    lf_err_t err = LF_ERR_NOMEM;

    if (detail_sql(&s, sp, cols, a, b, max_leads))
        goto out;
    if ((err = lf_pg_query(conn, s.data, 0, NULL, sp->table, &res, errstr,
                           errstr_size)))
        goto out;
    err = LF_ERR_NOMEM;
    for (int r = 0; r < PQntuples(res); r++)
        if (describe_row(&line, sp, cols, res, r, a, b) ||
            add_row(d, cap,
                    PQgetisnull(res, r, 0) ? NULL : PQgetvalue(res, r, 0),
                    line.data))
            goto out;
    err = LF_OK;
out:
    if (err == LF_ERR_NOMEM)
        lf_seterr(err, errstr, errstr_size, "out of memory");
    PQclear(res);
    lf_buf_free(&s);
    lf_buf_free(&line);
    return err;
}

typedef struct seq_row_s {
    lf_diff_row_t row;
    size_t seq;
} seq_row_t;

/* Rows of leads first, by lead_id bytewise, then lead-less rows (dead
 * letters); ties keep the order they were found in (table order). */
static int by_lead_row(const void *x, const void *y)
{
    const seq_row_t *a = x, *b = y;
    int c;
    if (!a->row.lead || !b->row.lead)
        c = (a->row.lead == NULL) - (b->row.lead == NULL);
    else
        c = strcmp(a->row.lead, b->row.lead);
    if (c)
        return c;
    return (a->seq > b->seq) - (a->seq < b->seq);
}

/* Keep the rows of the first max_leads leads over all tables, each lead's
 * rows together, and every lead-less row. */
static lf_err_t keep_first_leads(lf_diff_t *d, int max_leads)
{
    seq_row_t *v = calloc(d->row_count + 1, sizeof(*v));
    size_t keep = 0;
    const char *prev = NULL;

    if (!v)
        return LF_ERR_NOMEM;
    for (size_t i = 0; i < d->row_count; i++)
        v[i] = (seq_row_t){d->rows[i], i};
    qsort(v, d->row_count, sizeof(*v), by_lead_row);
    d->leads = 0;
    for (size_t i = 0; i < d->row_count; i++) {
        lf_diff_row_t *r = &v[i].row;
        if (r->lead && (!prev || strcmp(prev, r->lead))) {
            if (d->leads == (size_t)max_leads) {
                free(r->lead);
                free(r->text);
                continue;
            }
            d->leads++;
            prev = r->lead;
        }
        d->rows[keep++] = *r;
    }
    d->row_count = keep;
    free(v);
    return LF_OK;
}

/* A schema without the compared tables holds no funnel model: bad data
 * (65), not a database that is away (69). */
static lf_err_t check_tables(PGconn *conn, const char *schema, char *errstr,
                             size_t errstr_size)
{
    const char *names[LF_DIFF_TABLES], *params[2] = {schema, NULL};
    lf_buf_t arr = {0};
    PGresult *res = NULL;
    lf_err_t err;

    for (int t = 0; t < LF_DIFF_TABLES; t++)
        names[t] = diff_specs[t].table;
    if (lf_pg_text_array(&arr, names, LF_DIFF_TABLES))
        return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
    params[1] = arr.data;
    err = lf_pg_query(conn,
                      "SELECT string_agg(t, ', ') FROM unnest($2::text[]) "
                      "AS t WHERE to_regclass(format('%I.%I', $1::text, t)) "
                      "IS NULL",
                      2, params, "reading the schema's tables", &res, errstr,
                      errstr_size);
    lf_buf_free(&arr);
    if (!err && !PQgetisnull(res, 0, 0))
        err = lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                        "schema %s holds no funnel model (no table %s)", schema,
                        PQgetvalue(res, 0, 0));
    PQclear(res);
    return err;
}

/* Both schemas must exist; a name other than funnel must be one a rebuild
 * could have written (it goes into SQL quoted, but unchecked never). */
static lf_err_t check_schemas(PGconn *conn, const char *a, const char *b,
                              char *errstr, size_t errstr_size)
{
    for (int s = 0; s < 2; s++) {
        const char *name = s ? b : a;
        bool exists;
        lf_err_t err;
        if (strcmp(name, LF_SCHEMA_LIVE) &&
            (err = lf_catalog_check_name(NULL, name, errstr, errstr_size)))
            return err;
        if ((err = lf_catalog_schema_exists(conn, name, &exists, errstr,
                                            errstr_size)))
            return err;
        if (!exists)
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "schema %s does not exist", name);
        if ((err = check_tables(conn, name, errstr, errstr_size)))
            return err;
    }
    return LF_OK;
}

/* Inside the snapshot: table @p t's checksums, and its details if it
 * differs. */
static lf_err_t compare_table(PGconn *conn, int t, const char *a, const char *b,
                              int max_leads, lf_diff_t *d, size_t *cap,
                              char *errstr, size_t errstr_size)
{
    const diff_spec_t *sp = &diff_specs[t];
    lf_diff_table_t *dt = &d->tables[t];
    diff_cols_t dc;
    lf_err_t err;

    dt->table = sp->table;
    if (!(err = diff_cols(conn, sp, a, &dc, errstr, errstr_size)) &&
        !(err = checksum(conn, sp, dc.col, a, &dt->rows_a, dt->sum_a, errstr,
                         errstr_size)) &&
        !(err = checksum(conn, sp, dc.col, b, &dt->rows_b, dt->sum_b, errstr,
                         errstr_size))) {
        dt->differs = dt->rows_a != dt->rows_b || strcmp(dt->sum_a, dt->sum_b);
        if (dt->differs) {
            d->differs = true;
            err = detail(conn, sp, dc.col, a, b, max_leads, d, cap, errstr,
                         errstr_size);
        }
    }
    lf_catalog_stmts_free(&dc.names);
    return err;
}

/* Inside the snapshot: every table, then the first max_leads leads. */
static lf_err_t compare_tables(PGconn *conn, const char *a, const char *b,
                               int max_leads, lf_diff_t *d, char *errstr,
                               size_t errstr_size)
{
    size_t cap = 0;
    lf_err_t err;

    for (int t = 0; t < LF_DIFF_TABLES; t++)
        if ((err = compare_table(conn, t, a, b, max_leads, d, &cap, errstr,
                                 errstr_size)))
            return err;
    if ((err = keep_first_leads(d, max_leads)))
        return lf_seterr(err, errstr, errstr_size, "out of memory");
    return LF_OK;
}

lf_err_t lf_diff_compare(PGconn *conn, const char *a, const char *b,
                         int max_leads, lf_diff_t *d, char *errstr,
                         size_t errstr_size)
{
    lf_err_t err;

    memset(d, 0, sizeof(*d));
    if ((err = check_schemas(conn, a, b, errstr, errstr_size)))
        return err;
    /* One snapshot for both sides. */
    if ((err = lf_pg_query(conn,
                           "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0,
                           NULL, "BEGIN", NULL, errstr, errstr_size)))
        return err;
    err = compare_tables(conn, a, b, max_leads, d, errstr, errstr_size);
    lf_catalog_rollback(conn);
    if (err)
        lf_diff_free(d);
    return err;
}

void lf_diff_free(lf_diff_t *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->row_count; i++) {
        free(d->rows[i].lead);
        free(d->rows[i].text);
    }
    free(d->rows);
    memset(d, 0, sizeof(*d));
}

/* ---- the summary ------------------------------------------------------ */

/* One schema's numbers, in a fixed order of rows (section, key, value as
 * text or NULL) so that two schemas' rows pair up by index. The formulas
 * are those of 002_views.sql over all leads; %1$s is the schema (a checked
 * name). */
static const char *summary_sql =
    "WITH st (stage, ord) AS (VALUES ('captured', 1), "
    "('marketing_qualified', 2), ('handed_off', 3), ('sales_accepted', 4), "
    "('sales_qualified', 5), ('won', 6), ('lost', 7), ('nurture', 8), "
    "('disqualified', 9)), "
    "per_lead AS (SELECT "
    "min(h.visit) FILTER (WHERE h.stage = 'captured') AS cap, "
    "min(h.visit) FILTER (WHERE h.stage = 'marketing_qualified') AS mf, "
    "max(h.visit) FILTER (WHERE h.stage = 'marketing_qualified') AS ml, "
    "min(h.visit) FILTER (WHERE h.stage = 'handed_off') AS hf, "
    "max(h.visit) FILTER (WHERE h.stage = 'handed_off') AS hl, "
    "min(h.visit) FILTER (WHERE h.stage = 'sales_accepted') AS af, "
    "max(h.visit) FILTER (WHERE h.stage = 'sales_accepted') AS al, "
    "min(h.visit) FILTER (WHERE h.stage = 'sales_qualified') AS qf, "
    "max(h.visit) FILTER (WHERE h.stage = 'sales_qualified') AS ql, "
    "max(h.visit) FILTER (WHERE h.stage = 'won') AS wl "
    "FROM \"%1$s\".leads l JOIN \"%1$s\".stage_history h "
    "ON h.lead_id = l.lead_id GROUP BY l.lead_id), "
    "c AS (SELECT count(cap) e1, count(*) FILTER (WHERE ml > cap) r1, "
    "count(mf) e2, count(*) FILTER (WHERE hl > mf) r2, "
    "count(hf) e3, count(*) FILTER (WHERE al > hf) r3, "
    "count(af) e4, count(*) FILTER (WHERE ql > af) r4, "
    "count(qf) e5, count(*) FILTER (WHERE wl > qf) r5 FROM per_lead), "
    "rows (sec, ord, key, val) AS ("
    "SELECT 1, st.ord, st.stage, (SELECT count(*) FROM \"%1$s\".leads l "
    "WHERE l.stage = st.stage)::numeric FROM st "
    "UNION ALL SELECT 2, s.step, s.step || ':' || s.f || '->' || s.t, "
    "round(s.r::numeric / nullif(s.e, 0), 4) FROM c CROSS JOIN LATERAL "
    "(VALUES (1, 'captured', 'marketing_qualified', c.e1, c.r1), "
    "(2, 'marketing_qualified', 'handed_off', c.e2, c.r2), "
    "(3, 'handed_off', 'sales_accepted', c.e3, c.r3), "
    "(4, 'sales_accepted', 'sales_qualified', c.e4, c.r4), "
    "(5, 'sales_qualified', 'won', c.e5, c.r5)) AS s (step, f, t, e, r) "
    "UNION ALL SELECT 3, st.ord, st.stage, (SELECT "
    "round((percentile_cont(0.5) WITHIN GROUP (ORDER BY (extract(epoch "
    "FROM h.exited_at - h.entered_at) / 3600)::float8))::numeric, 2) "
    "FROM \"%1$s\".stage_history h JOIN \"%1$s\".leads l ON l.lead_id = "
    "h.lead_id WHERE h.stage = st.stage AND h.exited_at IS NOT NULL) "
    "FROM st "
    "UNION ALL SELECT 4, 1, 'all', (SELECT count(*) FROM "
    "\"%1$s\".anomalies)::numeric) "
    "SELECT sec, key, val::text FROM rows ORDER BY sec, ord";

static const char *const summary_sections[] = {"", "leads", "conversion",
                                               "median_hours", "anomalies"};

static lf_err_t summary_rows(PGconn *conn, const char *schema, PGresult **res,
                             char *errstr, size_t errstr_size)
{
    char sql[4096];
    snprintf(sql, sizeof(sql), summary_sql, schema);
    return lf_pg_query(conn, sql, 0, NULL, "summarising the model", res, errstr,
                       errstr_size);
}

/* "name version V sha256 H" of @p schema's definition, or "none
 * recorded". */
static void summary_definition(PGconn *conn, const char *schema, lf_buf_t *out)
{
    char sql[160];
    PGresult *res = NULL;

    snprintf(sql, sizeof(sql),
             "SELECT name, version, sha256 FROM \"%s\".definition", schema);
    if (lf_pg_query(conn, sql, 0, NULL, "reading the definition", &res, NULL,
                    0) == LF_OK &&
        PQntuples(res))
        lf_buf_printf(out, "definition %s: \"%s\" version %s sha256 %s\n",
                      schema, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
                      PQgetvalue(res, 0, 2));
    else
        lf_buf_printf(out, "definition %s: none recorded\n", schema);
    PQclear(res);
}

/* The change from @p a to @p b, "-" when either is NULL. */
static void summary_change(PGresult *ra, PGresult *rb, int i, char *buf,
                           size_t size)
{
    if (PQgetisnull(ra, i, 2) || PQgetisnull(rb, i, 2)) {
        snprintf(buf, size, "-");
        return;
    }
    double d =
        strtod(PQgetvalue(rb, i, 2), NULL) - strtod(PQgetvalue(ra, i, 2), NULL);
    int sec = atoi(PQgetvalue(ra, i, 0));
    snprintf(buf, size, sec == 2 ? "%+.4f" : sec == 3 ? "%+.2f" : "%+.0f", d);
}

lf_err_t lf_diff_summary(PGconn *conn, const char *a, const char *b,
                         lf_buf_t *out, char *errstr, size_t errstr_size)
{
    PGresult *ra = NULL, *rb = NULL;
    char change[40];
    lf_err_t err;
    int sec = 0;

    if ((err = check_schemas(conn, a, b, errstr, errstr_size)) ||
        (err = summary_rows(conn, a, &ra, errstr, errstr_size)) ||
        (err = summary_rows(conn, b, &rb, errstr, errstr_size)))
        goto out;
    summary_definition(conn, a, out);
    summary_definition(conn, b, out);
    lf_buf_printf(out, "%-13s %-40s %12s %12s %10s\n", "summary", "", a, b,
                  "change");
    for (int i = 0; i < PQntuples(ra) && i < PQntuples(rb); i++) {
        int s = atoi(PQgetvalue(ra, i, 0));
        if (s != sec && (sec = s) > 0 && s <= 4)
            lf_buf_printf(out, "%s\n",
                          s == 1   ? "leads per current stage:"
                          : s == 2 ? "conversion, step by step (reached / "
                                     "entered):"
                          : s == 3 ? "median hours in stage (finished visits):"
                                   : "anomalies:");
        summary_change(ra, rb, i, change, sizeof(change));
        lf_buf_printf(out, "  %-11s %-40s %12s %12s %10s\n",
                      summary_sections[s <= 4 ? s : 0], PQgetvalue(ra, i, 1),
                      PQgetisnull(ra, i, 2) ? "-" : PQgetvalue(ra, i, 2),
                      PQgetisnull(rb, i, 2) ? "-" : PQgetvalue(rb, i, 2),
                      change);
    }
out:
    PQclear(ra);
    PQclear(rb);
    return err;
}
