/* lf_identity.c: merged leads and erased people in a funnel schema
 * (lf_identity.h). */
#include "lf_identity.h"

#include "lf_funnel.h"
#include "lf_log.h"
#include "lf_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- sets of ids ------------------------------------------------------ */

lf_err_t lf_ids_add(lf_ids_t *s, const char *id)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        char **v = realloc(s->v, cap * sizeof(*v));
        if (!v)
            return LF_ERR_NOMEM;
        s->v = v;
        s->cap = cap;
    }
    if (!(s->v[s->n] = strdup(id)))
        return LF_ERR_NOMEM;
    s->n++;
    return LF_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void lf_ids_sort(lf_ids_t *s)
{
    size_t w = 0;

    if (s->n > 1)
        qsort(s->v, s->n, sizeof(*s->v), cmp_str);
    for (size_t r = 0; r < s->n; r++) {
        if (w && !strcmp(s->v[w - 1], s->v[r]))
            free(s->v[r]);
        else
            s->v[w++] = s->v[r];
    }
    s->n = w;
}

bool lf_ids_has(const lf_ids_t *s, const char *id)
{
    return s->n && bsearch(&id, s->v, s->n, sizeof(*s->v), cmp_str) != NULL;
}

void lf_ids_free(lf_ids_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof(*s));
}

/* ---- components ------------------------------------------------------- */

void lf_component_free(lf_component_t *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->m[i].event_id);
        free(c->m[i].lead_id);
        free(c->m[i].into_lead_id);
    }
    free(c->m);
    lf_ids_free(&c->ids);
    memset(c, 0, sizeof(*c));
}

lf_err_t lf_component_add(lf_component_t *c, const char *event_id,
                          const char *lead_id, const char *into_lead_id,
                          int64_t occurred_at)
{
    lf_merge_t *m;

    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        lf_merge_t *v = realloc(c->m, cap * sizeof(*v));
        if (!v)
            return LF_ERR_NOMEM;
        c->m = v;
        c->cap = cap;
    }
    m = &c->m[c->n];
    memset(m, 0, sizeof(*m));
    m->event_id = strdup(event_id);
    m->lead_id = strdup(lead_id);
    m->into_lead_id = strdup(into_lead_id);
    m->occurred_at = occurred_at;
    c->n++; /* freed by lf_component_free() even when half copied */
    return m->event_id && m->lead_id && m->into_lead_id ? LF_OK : LF_ERR_NOMEM;
}

/* The text[] literal of @p v[0..n) into @p b. */
static lf_err_t array_of(lf_buf_t *b, char *const *v, size_t n)
{
    lf_buf_reset(b);
    return lf_pg_text_array(b, (const char *const *)v, n) ? LF_ERR_NOMEM
                                                          : LF_OK;
}

/* One round of the search: the merged events touching the leads of
 * @p frontier; new leads go into c->ids and @p next. */
static lf_err_t component_round(PGconn *conn, const char *sql,
                                lf_component_t *c, lf_ids_t *frontier,
                                lf_ids_t *next, char *errstr,
                                size_t errstr_size)
{
    lf_buf_t arr = {0};
    PGresult *res = NULL;
    const char *param;
    lf_err_t err;

    if ((err = array_of(&arr, frontier->v, frontier->n)))
        return err;
    param = (const char *)arr.data;
    err = lf_pg_query(conn, sql, 1, &param, "finding merges", &res, errstr,
                      errstr_size);
    lf_buf_free(&arr);
    for (int r = 0; !err && r < PQntuples(res); r++) {
        const char *ev = PQgetvalue(res, r, 0);
        bool seen = false;
        for (size_t i = 0; i < c->n && !seen; i++)
            seen = !strcmp(c->m[i].event_id, ev);
        if (seen)
            continue;
        err = lf_component_add(c, ev, PQgetvalue(res, r, 1),
                               PQgetvalue(res, r, 2),
                               strtoll(PQgetvalue(res, r, 3), NULL, 10));
        for (int k = 1; !err && k <= 2; k++) {
            const char *id = PQgetvalue(res, r, k);
            if (lf_ids_has(&c->ids, id) || lf_ids_has(next, id))
                continue;
            if (!(err = lf_ids_add(next, id)))
                lf_ids_sort(next);
        }
    }
    PQclear(res);
    return err;
}

lf_err_t lf_identity_component(PGconn *conn, const char *schema,
                               lf_component_t *c, char *errstr,
                               size_t errstr_size)
{
    char sql[1024];
    lf_ids_t frontier = {0}, next = {0};
    lf_err_t err = LF_OK;

    snprintf(sql, sizeof(sql),
             "SELECT event_id, lead_id, payload ->> 'into_lead_id', "
             "(extract(epoch FROM occurred_at) * 1000)::int8 FROM %s.events "
             "WHERE type = 'merged' AND (lead_id = ANY($1::text[]) OR "
             "payload ->> 'into_lead_id' = ANY($1::text[]))",
             schema);
    lf_ids_sort(&c->ids);
    for (size_t i = 0; !err && i < c->ids.n; i++)
        err = lf_ids_add(&frontier, c->ids.v[i]);
    while (!err && frontier.n) {
        err = component_round(conn, sql, c, &frontier, &next, errstr,
                              errstr_size);
        for (size_t i = 0; !err && i < next.n; i++)
            err = lf_ids_add(&c->ids, next.v[i]);
        lf_ids_sort(&c->ids);
        lf_ids_free(&frontier);
        frontier = next;
        memset(&next, 0, sizeof(next));
    }
    lf_ids_free(&frontier);
    lf_ids_free(&next);
    if (err == LF_ERR_NOMEM)
        lf_seterr(err, errstr, errstr_size, "out of memory");
    return err;
}

/* ---- the merge rule --------------------------------------------------- */

static int by_rule_order(const void *a, const void *b)
{
    const lf_merge_t *x = a, *y = b;
    return lf_event_order(x->occurred_at, x->event_id, y->occurred_at,
                          y->event_id);
}

/* The index of @p id in c->ids (sorted; every merge's leads are in it). */
static size_t id_index(const lf_component_t *c, const char *id)
{
    char *const *at =
        bsearch(&id, c->ids.v, c->ids.n, sizeof(*c->ids.v), cmp_str);
    return at ? (size_t)(at - c->ids.v) : SIZE_MAX;
}

/* The counted merge of each lead, by index in c->ids: built by the rule,
 * read by lf_identity_root(). Kept beside the component in its verdicts:
 * recomputed on demand from them. */
static size_t *parents(const lf_component_t *c)
{
    size_t *par = malloc((c->ids.n + 1) * sizeof(*par));

    if (!par)
        return NULL;
    for (size_t i = 0; i < c->ids.n; i++)
        par[i] = SIZE_MAX;
    for (size_t i = 0; i < c->n; i++)
        if (c->m[i].verdict == LF_MERGE_COUNTS)
            par[id_index(c, c->m[i].lead_id)] =
                id_index(c, c->m[i].into_lead_id);
    return par;
}

lf_err_t lf_identity_merge_rule(lf_component_t *c)
{
    size_t *par = malloc((c->ids.n + 1) * sizeof(*par));
    const char **by = malloc((c->ids.n + 1) * sizeof(*by));

    if (!par || !by) {
        free(par);
        free(by);
        return LF_ERR_NOMEM;
    }
    lf_ids_sort(&c->ids);
    if (c->n > 1)
        qsort(c->m, c->n, sizeof(*c->m), by_rule_order);
    for (size_t i = 0; i < c->ids.n; i++)
        par[i] = SIZE_MAX;
    for (size_t i = 0; i < c->n; i++) {
        lf_merge_t *m = &c->m[i];
        size_t from = id_index(c, m->lead_id),
               to = id_index(c, m->into_lead_id);
        size_t at = to;

        if (par[from] != SIZE_MAX) {
            m->verdict =
                par[from] == to ? LF_MERGE_DUPLICATE : LF_MERGE_OTHER_TARGET;
            m->by = by[from];
            continue;
        }
        while (at != SIZE_MAX && at != from)
            at = par[at];
        if (at == from) {
            m->verdict = LF_MERGE_CYCLE;
            continue;
        }
        m->verdict = LF_MERGE_COUNTS;
        par[from] = to;
        by[from] = m->event_id;
    }
    free(par);
    free(by);
    return LF_OK;
}

/* The surviving lead of @p id under @p par (parents()). */
static const char *root_in(const lf_component_t *c, const size_t *par,
                           const char *id)
{
    size_t at = id_index(c, id);

    if (at == SIZE_MAX)
        return id;
    while (par[at] != SIZE_MAX)
        at = par[at];
    return c->ids.v[at];
}

bool lf_identity_roots(const lf_component_t *c, const char **out)
{
    size_t *par = parents(c);

    if (!par)
        return false;
    for (size_t i = 0; i < c->ids.n; i++)
        out[i] = root_in(c, par, c->ids.v[i]);
    free(par);
    return true;
}

const char *lf_identity_root(const lf_component_t *c, const char *id)
{
    size_t *par = parents(c);
    const char *root = par ? root_in(c, par, id) : id;

    free(par);
    return root;
}

/* ---- writing a component's merges ------------------------------------ */

/* Run @p sql with up to 4 text parameters; *out as lf_pg_query(). */
static lf_err_t q(PGconn *conn, const char *sql, const char *what, int n,
                  const char *p1, const char *p2, const char *p3,
                  const char *p4, PGresult **out, char *errstr,
                  size_t errstr_size)
{
    const char *params[4] = {p1, p2, p3, p4};
    return lf_pg_query(conn, sql, n, params, what, out, errstr, errstr_size);
}

/* Columns of the rows to write, as text[] literals. */
typedef struct cols_s {
    lf_ids_t a, b, c, d;
    lf_buf_t la, lb, lc, ld;
} cols_t;

static void cols_free(cols_t *k)
{
    lf_ids_free(&k->a);
    lf_ids_free(&k->b);
    lf_ids_free(&k->c);
    lf_ids_free(&k->d);
    lf_buf_free(&k->la);
    lf_buf_free(&k->lb);
    lf_buf_free(&k->lc);
    lf_buf_free(&k->ld);
}

static lf_err_t cols_arrays(cols_t *k)
{
    return array_of(&k->la, k->a.v, k->a.n) ||
                   array_of(&k->lb, k->b.v, k->b.n) ||
                   array_of(&k->lc, k->c.v, k->c.n) ||
                   array_of(&k->ld, k->d.v, k->d.n)
               ? LF_ERR_NOMEM
               : LF_OK;
}

/* The rows: merges (lead, into, surviving, event) in k1; merge anomalies
 * (event, surviving lead of its lead, reason) in k2; every lead of the
 * component and its surviving lead in k3 (a, b), the merged leads in k3.c,
 * the component's merged events in k3.d. */
static lf_err_t merge_rows(const lf_component_t *c, const size_t *par,
                           cols_t *k1, cols_t *k2, cols_t *k3)
{
    char why[256];
    lf_err_t e = LF_OK;

    for (size_t i = 0; !e && i < c->n; i++) {
        const lf_merge_t *m = &c->m[i];
        const char *root = root_in(c, par, m->lead_id);
        e = lf_ids_add(&k3->d, m->event_id);
        if (e || m->verdict == LF_MERGE_DUPLICATE)
            continue;
        if (m->verdict == LF_MERGE_COUNTS) {
            e = lf_ids_add(&k1->a, m->lead_id) ||
                        lf_ids_add(&k1->b, m->into_lead_id) ||
                        lf_ids_add(&k1->c, root) ||
                        lf_ids_add(&k1->d, m->event_id) ||
                        lf_ids_add(&k3->c, m->lead_id)
                    ? LF_ERR_NOMEM
                    : LF_OK;
            continue;
        }
        if (m->verdict == LF_MERGE_CYCLE)
            snprintf(why, sizeof(why), "%s",
                     !strcmp(m->lead_id, m->into_lead_id)
                         ? "merged into itself: a cycle of one"
                         : "merging would close a cycle of merges");
        else
            snprintf(why, sizeof(why),
                     "already merged into another lead by merged event %.128s",
                     m->by);
        e = lf_ids_add(&k2->a, m->event_id) || lf_ids_add(&k2->b, root) ||
                    lf_ids_add(&k2->c, why)
                ? LF_ERR_NOMEM
                : LF_OK;
    }
    for (size_t i = 0; !e && i < c->ids.n; i++)
        e = lf_ids_add(&k3->a, c->ids.v[i]) ||
                    lf_ids_add(&k3->b, root_in(c, par, c->ids.v[i]))
                ? LF_ERR_NOMEM
                : LF_OK;
    return e;
}

/* How many pairs (x[i], y[i]) @p before (columns 0 and 1 of its rows)
 * did not hold. */
static uint64_t count_new(const PGresult *before, const lf_ids_t *x,
                          const lf_ids_t *y)
{
    uint64_t n = 0;

    for (size_t i = 0; i < x->n; i++) {
        bool had = false;
        for (int r = 0; r < PQntuples(before) && !had; r++)
            had = !strcmp(PQgetvalue(before, r, 0), x->v[i]) &&
                  !strcmp(PQgetvalue(before, r, 1), y->v[i]);
        n += !had;
    }
    return n;
}

static lf_err_t write_merge_rows(PGconn *conn, const char *schema, cols_t *k1,
                                 cols_t *k3, lf_merge_counts_t *counts,
                                 char *errstr, size_t errstr_size)
{
    char sql[1024];
    PGresult *res = NULL;
    lf_err_t err;

    snprintf(sql, sizeof(sql),
             "DELETE FROM %s.merges WHERE lead_id = ANY($1::text[]) "
             "RETURNING lead_id, event_id",
             schema);
    if ((err = q(conn, sql, "writing merges", 1, (char *)k3->la.data, NULL,
                 NULL, NULL, &res, errstr, errstr_size)))
        return err;
    counts->merges += count_new(res, &k1->a, &k1->d);
    PQclear(res);
    snprintf(sql, sizeof(sql),
             "INSERT INTO %s.merges (lead_id, into_lead_id, "
             "surviving_lead_id, merged_at, event_id) "
             "SELECT u.l, u.i, u.s, e.occurred_at, u.e FROM unnest($1::text[], "
             "$2::text[], $3::text[], $4::text[]) AS u(l, i, s, e) "
             "JOIN %s.events AS e ON e.event_id = u.e",
             schema, schema);
    return q(conn, sql, "writing merges", 4, (char *)k1->la.data,
             (char *)k1->lb.data, (char *)k1->lc.data, (char *)k1->ld.data,
             NULL, errstr, errstr_size);
}

static lf_err_t write_merge_anomalies(PGconn *conn, const char *schema,
                                      cols_t *k2, cols_t *k3,
                                      lf_merge_counts_t *counts, char *errstr,
                                      size_t errstr_size)
{
    char sql[1024];
    PGresult *res = NULL;
    lf_err_t err;

    snprintf(sql, sizeof(sql),
             "DELETE FROM %s.anomalies WHERE kind = 'merge' AND "
             "event_id = ANY($1::text[]) RETURNING event_id, reason",
             schema);
    if ((err = q(conn, sql, "writing merge anomalies", 1, (char *)k3->ld.data,
                 NULL, NULL, NULL, &res, errstr, errstr_size)))
        return err;
    counts->anomalies += count_new(res, &k2->a, &k2->c);
    PQclear(res);
    snprintf(sql, sizeof(sql),
             "INSERT INTO %s.anomalies (event_id, lead_id, kind, reason) "
             "SELECT e, l, 'merge', r FROM unnest($1::text[], $2::text[], "
             "$3::text[]) AS u(e, l, r) ON CONFLICT DO NOTHING",
             schema);
    return q(conn, sql, "writing merge anomalies", 3, (char *)k2->la.data,
             (char *)k2->lb.data, (char *)k2->lc.data, NULL, NULL, errstr,
             errstr_size);
}

/* Every anomaly of the component's leads under their surviving lead; no
 * row for a merged lead. A conflict anomaly goes by its stored event's
 * lead (record_conflicts() in lf_projector.c), not by the lead it is
 * listed under: that may be a surviving lead of before (a late, earlier
 * merge moved the lead to another), and the anomaly would stay there in
 * one arrival order and not in another. So does a key anomaly, whose lead
 * is its message's: the stored event's unless the message conflicted
 * with it (another lead may have sent it; such a one stays). State and
 * void anomalies are the recompute's, merge anomalies
 * write_merge_anomalies()'. */
static lf_err_t move_to_surviving(PGconn *conn, const char *schema, cols_t *k3,
                                  char *errstr, size_t errstr_size)
{
    char sql[1024];
    lf_err_t err;

    snprintf(sql, sizeof(sql),
             "UPDATE %s.anomalies AS a SET lead_id = u.s FROM "
             "unnest($1::text[], $2::text[]) AS u(l, s) "
             "WHERE a.lead_id = u.l AND u.l <> u.s",
             schema);
    if ((err = q(conn, sql, "moving anomalies", 2, (char *)k3->la.data,
                 (char *)k3->lb.data, NULL, NULL, NULL, errstr, errstr_size)))
        return err;
    snprintf(sql, sizeof(sql),
             "UPDATE %s.anomalies AS a SET lead_id = u.s FROM %s.events AS e, "
             "unnest($1::text[], $2::text[]) AS u(l, s) "
             "WHERE a.lead_id = ANY($1::text[]) AND (a.kind = 'conflict' OR "
             "a.kind = 'key' AND NOT EXISTS (SELECT 1 FROM %s.anomalies AS c "
             "WHERE c.event_id = a.event_id AND c.kind = 'conflict')) AND "
             "e.event_id = a.event_id AND e.lead_id = u.l AND a.lead_id <> "
             "u.s",
             schema, schema, schema);
    if ((err = q(conn, sql, "moving anomalies", 2, (char *)k3->la.data,
                 (char *)k3->lb.data, NULL, NULL, NULL, errstr, errstr_size)))
        return err;
    snprintf(sql, sizeof(sql),
             "DELETE FROM %s.leads WHERE lead_id = ANY($1::text[])", schema);
    if ((err = q(conn, sql, "clearing merged leads", 1, (char *)k3->lc.data,
                 NULL, NULL, NULL, NULL, errstr, errstr_size)))
        return err;
    snprintf(sql, sizeof(sql),
             "DELETE FROM %s.stage_history WHERE lead_id = ANY($1::text[])",
             schema);
    return q(conn, sql, "clearing merged leads", 1, (char *)k3->lc.data, NULL,
             NULL, NULL, NULL, errstr, errstr_size);
}

lf_err_t lf_identity_write_merges(PGconn *conn, const char *schema,
                                  const lf_component_t *c,
                                  lf_merge_counts_t *counts, char *errstr,
                                  size_t errstr_size)
{
    cols_t k1 = {0}, k2 = {0}, k3 = {0};
    size_t *par = parents(c);
    lf_err_t err = par ? merge_rows(c, par, &k1, &k2, &k3) : LF_ERR_NOMEM;

    free(par);
    if (!err)
        err = cols_arrays(&k1) || cols_arrays(&k2) || cols_arrays(&k3)
                  ? LF_ERR_NOMEM
                  : LF_OK;
    if (err == LF_ERR_NOMEM)
        lf_seterr(err, errstr, errstr_size, "out of memory");
    if (!err)
        err = write_merge_rows(conn, schema, &k1, &k3, counts, errstr,
                               errstr_size);
    if (!err)
        err = write_merge_anomalies(conn, schema, &k2, &k3, counts, errstr,
                                    errstr_size);
    if (!err)
        err = move_to_surviving(conn, schema, &k3, errstr, errstr_size);
    cols_free(&k1);
    cols_free(&k2);
    cols_free(&k3);
    return err;
}

/* ---- erasure ---------------------------------------------------------- */

#define ID_AS_WORD LF_SQL_ID_AS_WORD

/* Where the event_id of dead letter d's value starts (0-based), and its
 * length, for a letter a retry applied (it decoded): after the registry
 * framing (magic byte, schema id), the contract's schemas begin with
 * event_id and lead_id, each a zig-zag varint length and UTF-8; an id of
 * 1..128 bytes has a length of one or two bytes. NULL when the value is
 * too short. LETTER_LEAD_AT: where its lead_id starts. A writer schema of
 * another order (a registry may hold one) is told apart by
 * LETTER_APPLIED_AS: the event_id so read must be the one the resolution
 * names; else the letter is not matched. */
#define LETTER_ID_AT                                                           \
    "(CASE WHEN octet_length(d.value) < 7 THEN NULL WHEN get_byte(d.value, "   \
    "5) < 128 THEN 6 ELSE 7 END)"
#define LETTER_ID_LEN                                                          \
    "(CASE WHEN octet_length(d.value) < 7 THEN NULL WHEN get_byte(d.value, "   \
    "5) < 128 THEN get_byte(d.value, 5) >> 1 ELSE ((get_byte(d.value, 5) & "   \
    "127) | (get_byte(d.value, 6) << 7)) >> 1 END)"
#define LETTER_LEAD_AT "(" LETTER_ID_AT " + " LETTER_ID_LEN ")"
#define LETTER_APPLIED_AS                                                      \
    "position(convert_to(' event ', 'UTF8') || substring(d.value "             \
    "FROM " LETTER_ID_AT " + 1 FOR " LETTER_ID_LEN ") || convert_to(' by "     \
    "leadflow-replay ', 'UTF8') IN convert_to(d.resolution, 'UTF8')) > 0"
/* The lead_id of letter d as its value encodes it (length and bytes),
 * v.at being where it starts (LETTER_LEAD_AT); NULL when the value ends
 * before its length does. */
#define LETTER_LEAD_ENC                                                        \
    "(CASE WHEN octet_length(d.value) <= v.at THEN NULL WHEN "                 \
    "get_byte(d.value, v.at) < 128 THEN substring(d.value FROM v.at + 1 FOR "  \
    "1 + (get_byte(d.value, v.at) >> 1)) WHEN octet_length(d.value) <= v.at "  \
    "+ 1 THEN NULL ELSE substring(d.value FROM v.at + 1 FOR 2 + "              \
    "(((get_byte(d.value, v.at) & 127) | (get_byte(d.value, v.at + 1) << "     \
    "7)) >> 1)) END)"

/* Each statement: $1 the original ids, $2 their pseudonyms; %1$s the
 * schema, %2$s the payload keys to keep. */
static const char *const erase_steps[] = {
    "INSERT INTO %1$s.erased_leads SELECT unnest($2::text[]) "
    "WHERE $1::text[] IS NOT NULL ON CONFLICT DO NOTHING",
    "UPDATE %1$s.events AS e SET lead_id = u.p, extra = NULL, "
    "payload = ((payload - ARRAY(SELECT jsonb_object_keys(payload - "
    "%2$s))) - 'attributes' - 'note') - (CASE WHEN type IN ('lost', "
    "'disqualified') THEN 'reason' ELSE '' END) "
    "FROM unnest($1::text[], $2::text[]) AS u(o, p) WHERE e.lead_id = u.o",
    /* A void's reason is free text the contract requires: a mark. */
    "UPDATE %1$s.events AS e SET payload = jsonb_set(e.payload, "
    "'{reason}', '\"" LF_EVENT_ERASED_REASON "\"') FROM unnest($1::text[], "
    "$2::text[]) AS u(o, p) WHERE e.lead_id = u.p AND e.type = 'voided' "
    "AND e.payload ->> 'reason' IS DISTINCT FROM '" LF_EVENT_ERASED_REASON "'",
    /* A request reference that quoted the lead id quotes the
     * pseudonym (the erased events are the pseudonyms' now): the id as a
     * word of its own, so that lead 42's "PRIV-4242" stays as it is. */
    "UPDATE %1$s.events AS e SET payload = jsonb_set(e.payload, "
    "'{request_id}', to_jsonb(regexp_replace(e.payload ->> "
    "'request_id', " ID_AS_WORD
    ", u.p, 'g'))) FROM unnest($1::text[], $2::text[]) AS "
    "u(o, p) WHERE e.lead_id = u.p AND e.type = 'erased' AND "
    "strpos(e.payload ->> 'request_id', u.o) > 0",
    "UPDATE %1$s.erasures AS x SET request_id = "
    "regexp_replace(x.request_id, " ID_AS_WORD ", u.p, 'g') FROM "
    "unnest($1::text[], $2::text[]) AS u(o, p) WHERE x.pseudonym = u.p AND "
    "strpos(x.request_id, u.o) > 0",
    "UPDATE %1$s.events AS e SET payload = jsonb_set(e.payload, "
    "'{into_lead_id}', to_jsonb(u.p)) FROM unnest($1::text[], "
    "$2::text[]) AS u(o, p) WHERE e.type = 'merged' AND "
    "e.payload ->> 'into_lead_id' = u.o",
    /* (the projector recomputes the person under its pseudonym) */
    "DELETE FROM %1$s.leads WHERE lead_id = ANY($1::text[]) AND "
    "$2::text[] IS NOT NULL",
    "DELETE FROM %1$s.stage_history WHERE lead_id = ANY($1::text[]) AND "
    "$2::text[] IS NOT NULL",
    /* A copy of their event that differs only in what is removed here
     * is no conflict once they are erased (record_conflicts() in
     * lf_projector.c), as it is none when it comes after. */
    "DELETE FROM %1$s.anomalies AS a USING %1$s.events AS e, "
    "unnest($2::text[]) AS u(p) WHERE e.lead_id = u.p AND "
    "a.event_id = e.event_id AND a.kind = 'conflict' AND a.reason LIKE "
    "'event_id reused with different content" LF_CONFLICT_ERASABLE " at %%' "
    "AND $1::text[] IS NOT NULL",
    /* Their events' key anomalies lose the key they quote. One event sent
     * under several keys has one such anomaly per key, which become one
     * row (as when they arrive after the erasure): the others go. */
    "DELETE FROM %1$s.anomalies AS a WHERE a.lead_id = ANY($1::text[]) AND "
    "a.kind = 'key' AND a.reason LIKE 'Kafka key \"%%' AND $2::text[] IS "
    "NOT NULL AND EXISTS (SELECT 1 FROM %1$s.anomalies AS b WHERE "
    "b.event_id = a.event_id AND b.kind = 'key' AND (b.reason = "
    "'" LF_KEY_ERASED_NOTE
    "' OR b.lead_id = ANY($1::text[]) AND b.reason LIKE 'Kafka key \"%%' "
    "AND b.reason < a.reason))",
    "UPDATE %1$s.anomalies AS a SET lead_id = u.p, reason = CASE WHEN "
    "a.kind = 'key' AND a.reason LIKE 'Kafka key \"%%' THEN "
    "'" LF_KEY_ERASED_NOTE "' ELSE a.reason END FROM "
    "unnest($1::text[], $2::text[]) AS u(o, p) WHERE a.lead_id = u.o",
    /* ... and so do those a merge already moved to an erased person (a
     * lead merged into one after the erasure: lf_identity_write_merges()
     * runs first), found by their event, now under a pseudonym. */
    "DELETE FROM %1$s.anomalies AS a USING %1$s.events AS e, "
    "%1$s.erased_leads AS x WHERE e.lead_id = ANY($2::text[]) AND "
    "a.event_id = e.event_id AND x.pseudonym = a.lead_id AND a.kind = 'key' "
    "AND a.reason LIKE 'Kafka key \"%%' AND $1::text[] IS NOT NULL AND "
    "EXISTS (SELECT 1 FROM %1$s.anomalies AS b WHERE b.event_id = "
    "a.event_id AND b.kind = 'key' AND (b.reason = '" LF_KEY_ERASED_NOTE
    "' OR b.reason LIKE 'Kafka key \"%%' AND b.reason < a.reason AND "
    "b.lead_id IN (SELECT pseudonym FROM %1$s.erased_leads)))",
    "UPDATE %1$s.anomalies AS a SET reason = '" LF_KEY_ERASED_NOTE "' FROM "
    "%1$s.events AS e, %1$s.erased_leads AS x WHERE e.lead_id = "
    "ANY($2::text[]) AND a.event_id = e.event_id AND x.pseudonym = "
    "a.lead_id AND a.kind = 'key' AND a.reason LIKE 'Kafka key \"%%' AND "
    "$1::text[] IS NOT NULL",
    /* Another lead's event sent under the person's id as its key: the
     * note quotes the key whole (a lead id always fits: see key_note() in
     * lf_projector.c); sent under two of their ids, one row stays. */
    "DELETE FROM %1$s.anomalies AS a USING unnest($1::text[], $2::text[]) "
    "AS u(o, p) WHERE a.kind = 'key' AND a.reason = 'Kafka key \"' || u.o "
    "|| '\" differs from lead_id' AND EXISTS (SELECT 1 FROM "
    "%1$s.anomalies AS b WHERE b.event_id = a.event_id AND b.kind = 'key' "
    "AND (b.reason = '" LF_KEY_ERASED_NOTE
    "' OR b.reason < a.reason AND b.reason "
    "IN (SELECT 'Kafka key \"' || x || '\" differs from lead_id' FROM "
    "unnest($1::text[]) AS x)))",
    "UPDATE %1$s.anomalies AS a SET reason = '" LF_KEY_ERASED_NOTE "' FROM "
    "unnest($1::text[], $2::text[]) "
    "AS u(o, p) WHERE a.kind = 'key' AND a.reason = 'Kafka key \"' || u.o "
    "|| '\" differs from lead_id'",
    "UPDATE %1$s.merges AS m SET "
    "lead_id = coalesce((SELECT p FROM unnest($1::text[], $2::text[]) "
    "AS u(o, p) WHERE o = m.lead_id), m.lead_id), "
    "into_lead_id = coalesce((SELECT p FROM unnest($1::text[], "
    "$2::text[]) AS u(o, p) WHERE o = m.into_lead_id), m.into_lead_id), "
    "surviving_lead_id = coalesce((SELECT p FROM unnest($1::text[], "
    "$2::text[]) AS u(o, p) WHERE o = m.surviving_lead_id), "
    "m.surviving_lead_id) WHERE m.lead_id = ANY($1::text[]) OR "
    "m.into_lead_id = ANY($1::text[]) OR "
    "m.surviving_lead_id = ANY($1::text[])",
    /* (A settle holding such a row waits for our leads' locks: a
     * deadlock the server breaks, and the loser retries.) */
    "DELETE FROM %1$s.identity_pending WHERE lead_id = ANY($1::text[]) "
    "AND $2::text[] IS NOT NULL",
    /* The error may quote the id (a self-merge's, say), and the resolution
     * a retry's --note: as a word of its own, as forget_dead() in
     * lf_projector.c has it on the way in. */
    "UPDATE %1$s.dead_letters AS d SET key = NULL, value = NULL, "
    "resolution = regexp_replace(d.resolution, " ID_AS_WORD ", u.p, 'g'), "
    "error = regexp_replace(d.error, " ID_AS_WORD
    ", u.p, 'g') || '" LF_ERASED_NOTE "' "
    "FROM unnest($1::text[], $2::text[]) AS u(o, p) "
    "WHERE d.key = convert_to(u.o, 'UTF8')",
    /* A letter a retry applied, under a key that is not one of their ids:
     * found by the lead_id its own value carries, its encoding
     * (LETTER_LEAD_ENC) read once per letter and joined by equality with
     * each of their ids in the value's encoding. */
    "UPDATE %1$s.dead_letters AS t SET key = NULL, value = NULL, "
    "resolution = regexp_replace(t.resolution, " ID_AS_WORD ", u.p, 'g'), "
    "error = regexp_replace(t.error, " ID_AS_WORD
    ", u.p, 'g') || '" LF_ERASED_NOTE "' "
    "FROM (SELECT d.id, " LETTER_LEAD_ENC " AS lead FROM %1$s.dead_letters "
    "AS d, LATERAL (SELECT " LETTER_LEAD_AT " AS at) AS v WHERE "
    "d.resolved_at IS NOT NULL AND " LETTER_APPLIED_AS ") AS x, "
    "unnest($1::text[], $2::text[]) AS u(o, p), LATERAL (SELECT "
    "convert_to(u.o, 'UTF8') AS b) AS i WHERE t.id = x.id AND x.lead = "
    "decode(CASE WHEN octet_length(i.b) < 64 THEN lpad(to_hex(2 * "
    "octet_length(i.b)), 2, '0') ELSE lpad(to_hex(((2 * octet_length(i.b)) "
    "& 127) | 128), 2, '0') || lpad(to_hex((2 * octet_length(i.b)) >> 7), "
    "2, '0') END, 'hex') || i.b",
};

/* In another model kept in the database (a promoted model's old funnel, a
 * what-if), which no projector recomputes, the person's rows are renamed
 * instead of deleted: its numbers stay those it was made with. */
static const char *const kept_rows[][2] = {
    {"DELETE FROM %1$s.leads ", "UPDATE %1$s.leads AS l SET lead_id = u.p "
                                "FROM unnest($1::text[], $2::text[]) AS "
                                "u(o, p) WHERE l.lead_id = u.o"},
    /* ... and the free-text reason of a visit that lost or disqualified
     * ended goes, as the recompute would drop it. */
    {"DELETE FROM %1$s.stage_history ",
     "UPDATE %1$s.stage_history AS h SET lead_id = u.p, exit_reason = CASE "
     "WHEN EXISTS (SELECT 1 FROM %1$s.stage_history AS n JOIN "
     "%1$s.events AS e ON e.event_id = n.entered_by WHERE n.lead_id = "
     "h.lead_id AND n.visit = h.visit + 1 AND e.type IN ('lost', "
     "'disqualified')) THEN NULL ELSE h.exit_reason END FROM "
     "unnest($1::text[], $2::text[]) AS u(o, p) WHERE h.lead_id = u.o"},
};

/* The other models of the database, quoted: schemas a rebuild or a
 * promote marked as leadflow's (their comment) that hold the model's
 * tables, not the live funnel (its own projector erases it there, and
 * recomputes the person). One of an older shape is tried too, and logged
 * if it fails. $1 = the projector's schema. */
static const char *others_sql =
    "SELECT quote_ident(n.nspname) FROM pg_namespace n WHERE n.nspname <> "
    "$1 AND n.nspname <> 'funnel' AND n.nspname ~ '^[a-z_][a-z0-9_]*$' AND "
    "obj_description(n.oid, "
    "'pg_namespace') LIKE 'leadflow%' AND (SELECT count(*) FROM pg_class c "
    "WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p') AND "
    "c.relname IN ('events', 'leads', 'stage_history')) = 3 ORDER BY 1";

static lf_err_t erase_in(PGconn *conn, const char *schema, bool kept,
                         const char *a, const char *b, const char *known_keys,
                         char *errstr, size_t errstr_size)
{
    char sql[8192];
    lf_err_t err = LF_OK;

    for (size_t i = 0; !err && i < sizeof(erase_steps) / sizeof(*erase_steps);
         i++) {
        const char *step = erase_steps[i];
        for (size_t k = 0; kept && k < 2; k++)
            if (!strncmp(step, kept_rows[k][0], strlen(kept_rows[k][0])))
                step = kept_rows[k][1];
        if (snprintf(sql, sizeof(sql), step, schema, known_keys) >=
            (int)sizeof(sql))
            return lf_seterr(LF_ERR_PG, errstr, errstr_size,
                             "erasing: statement too long");
        err = q(conn, sql, "erasing", 2, a, b, NULL, NULL, NULL, errstr,
                errstr_size);
    }
    return err;
}

/* The same in every other model the database keeps, each under a savepoint:
 * one that cannot be rewritten (an older shape, say) is logged, not a
 * reason to stop the stream. */
static lf_err_t erase_elsewhere(PGconn *conn, const char *schema, const char *a,
                                const char *b, const char *known_keys,
                                char *errstr, size_t errstr_size)
{
    PGresult *res = NULL;
    lf_err_t err = q(conn, others_sql, "finding other models", 1, schema, NULL,
                     NULL, NULL, &res, errstr, errstr_size);

    for (int r = 0; !err && r < PQntuples(res); r++) {
        const char *other = PQgetvalue(res, r, 0);
        char why[512], q1[600];
        if ((err = q(conn, "SAVEPOINT lf_erase", "erasing", 0, NULL, NULL, NULL,
                     NULL, NULL, errstr, errstr_size)))
            break;
        lf_err_t e =
            erase_in(conn, other, true, a, b, known_keys, why, sizeof(why));
        if (e) {
            /* A lost connection, a deadlock with the writer of that schema:
             * the batch is retried whole. */
            if (e == LF_ERR_TEMPORARY || PQstatus(conn) != CONNECTION_OK)
                err =
                    lf_seterr(LF_ERR_TEMPORARY, errstr, errstr_size, "%s", why);
            else {
                LF_LOG(LF_LOG_WARNING,
                       "msg=\"erased person left in another schema\" "
                       "schema=%s error=%s",
                       other, lf_log_quote(why, q1, sizeof(q1)));
                err = q(conn, "ROLLBACK TO SAVEPOINT lf_erase", "erasing", 0,
                        NULL, NULL, NULL, NULL, NULL, errstr, errstr_size);
            }
        }
        if (!err)
            err = q(conn, "RELEASE SAVEPOINT lf_erase", "erasing", 0, NULL,
                    NULL, NULL, NULL, NULL, errstr, errstr_size);
    }
    PQclear(res);
    return err;
}

lf_err_t lf_identity_erase(PGconn *conn, const char *schema,
                           const char *const *orig, const char *const *pseud,
                           size_t n, const char *known_keys, char *errstr,
                           size_t errstr_size)
{
    lf_buf_t a = {0}, b = {0};
    lf_err_t err = LF_OK;

    if (lf_pg_text_array(&a, orig, n) || lf_pg_text_array(&b, pseud, n))
        err = lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
    if (!err)
        err = erase_in(conn, schema, false, a.data, b.data, known_keys, errstr,
                       errstr_size);
    if (!err)
        err = erase_elsewhere(conn, schema, a.data, b.data, known_keys, errstr,
                              errstr_size);
    lf_buf_free(&a);
    lf_buf_free(&b);
    return err;
}
