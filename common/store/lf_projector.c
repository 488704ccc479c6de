/* lf_projector.c: one batch, one transaction. The batch is staged with COPY
 * into temporary tables and merged with a few INSERT ... SELECT ... ON
 * CONFLICT statements; the funnel state machine runs here in C, per lead,
 * continuing from the stored lead row when the new events come after it
 * and recomputing the lead from its stored events when one arrives late. */
#include "lf_projector.h"

#include "lf_buf.h"
#include "lf_funnel.h"
#include "lf_json.h"
#include "lf_log.h"
#include "lf_pg.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One consumed message. */
typedef struct entry_s {
    bool dead;      /* undecodable: a dead letter */
    bool is_new;    /* first store of this event_id (set during flush) */
    int topic;      /* index into p->topics */
    int32_t partition;
    int64_t offset;
    lf_event_t ev;  /* when !dead */
    char *note;     /* dead: the error; event: a key anomaly or NULL */
    void *key, *value; /* dead letters only: raw bytes, NULL if absent */
    size_t key_len, value_len;
} entry_t;

typedef struct next_offset_s {
    int topic;
    int32_t partition;
    int64_t next;
    int64_t from; /* lf_projector_continue_from(), or LF_PROJECTOR_UNDECLARED */
} next_offset_t;

struct lf_projector_s {
    char *schema, *group_id;
    lf_codec_t *codec; /* may own the registry client others borrow */
    char **topics;
    int topic_count;
    entry_t *entries;
    size_t count, cap;
    next_offset_t *offs;
    size_t off_count, off_cap;
    bool temp_ready;
    bool expect_new; /* the last batch committed was all new: no probe */
    /* The batch's distinct lead ids (pointers into its entries), open
     * addressing, at most half full. */
    const char **leadset;
    size_t leadset_cap, leads;
    lf_projector_stats_t stats;
    /* Reused between flushes. */
    lf_buf_t copy, arr, tmp;
    lf_funnel_out_t out;
};

#define ERRLEN 512
#define BUF_KEEP (256 * 1024) /* bytes a buffer keeps between batches */

/* ---- life cycle ----------------------------------------------------- */

static bool schema_name_ok(const char *s)
{
    if (!*s || strlen(s) > 48 || !(islower((unsigned char)*s) || *s == '_'))
        return false;
    for (; *s; s++)
        if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) &&
            *s != '_')
            return false;
    return true;
}

lf_projector_t *lf_projector_new(const char *schema, const char *group_id,
                                 char *errstr, size_t errstr_size)
{
    lf_projector_t *p;

    /* The schema name is spliced into SQL as an identifier, so it is held
     * to a plain lower-case name. */
    if (!schema_name_ok(schema)) {
        lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                  "schema \"%.64s\": use lower-case letters, digits and _",
                  schema);
        return NULL;
    }
    if (!(p = calloc(1, sizeof(*p))) || !(p->schema = strdup(schema)) ||
        (group_id && !(p->group_id = strdup(group_id)))) {
        lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
        lf_projector_destroy(p);
        return NULL;
    }
    if (!(p->codec = lf_codec_new(errstr, errstr_size))) {
        lf_projector_destroy(p);
        return NULL;
    }
    return p;
}

static void entry_clear(entry_t *e)
{
    lf_event_clear(&e->ev);
    free(e->note);
    free(e->key);
    free(e->value);
    memset(e, 0, sizeof(*e));
}

void lf_projector_discard(lf_projector_t *p)
{
    for (size_t i = 0; i < p->count; i++)
        entry_clear(&p->entries[i]);
    p->count = 0;
    p->off_count = 0;
    if (p->leads)
        memset(p->leadset, 0, p->leadset_cap * sizeof(*p->leadset));
    p->leads = 0;
}

static size_t lead_hash(const char *s)
{
    uint64_t h = UINT64_C(1469598103934665603); /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
    return (size_t)h;
}

/* Count @p lead_id among the batch's leads (it must live as long as the
 * batch). @returns false when out of memory. */
static bool lead_add(lf_projector_t *p, const char *lead_id)
{
    if ((p->leads + 1) * 2 > p->leadset_cap) {
        size_t cap = p->leadset_cap ? p->leadset_cap * 2 : 1024;
        const char **set = calloc(cap, sizeof(*set));
        if (!set)
            return false;
        for (size_t i = 0; i < p->leadset_cap; i++)
            if (p->leadset[i]) {
                size_t h = lead_hash(p->leadset[i]) & (cap - 1);
                while (set[h])
                    h = (h + 1) & (cap - 1);
                set[h] = p->leadset[i];
            }
        free(p->leadset);
        p->leadset = set;
        p->leadset_cap = cap;
    }
    size_t h = lead_hash(lead_id) & (p->leadset_cap - 1);
    while (p->leadset[h]) {
        if (!strcmp(p->leadset[h], lead_id))
            return true;
        h = (h + 1) & (p->leadset_cap - 1);
    }
    p->leadset[h] = lead_id;
    p->leads++;
    return true;
}

bool lf_projector_full(const lf_projector_t *p, size_t batch_max)
{
    return p->count >= batch_max || p->leads >= LF_PROJECTOR_MAX_LEADS;
}

void lf_projector_destroy(lf_projector_t *p)
{
    if (!p)
        return;
    lf_projector_discard(p);
    free(p->entries);
    free(p->offs);
    free(p->leadset);
    for (int i = 0; i < p->topic_count; i++)
        free(p->topics[i]);
    free(p->topics);
    lf_codec_destroy(p->codec);
    lf_buf_free(&p->copy);
    lf_buf_free(&p->arr);
    lf_buf_free(&p->tmp);
    lf_funnel_out_free(&p->out);
    free(p->schema);
    free(p->group_id);
    free(p);
}

lf_err_t lf_projector_use_registry(lf_projector_t *p, const lf_conf_t *conf,
                                   char *errstr, size_t errstr_size)
{
    lf_codec_t *codec;
    lf_err_t err;

    if (!lf_registry_configured(conf))
        return LF_OK;
    if ((err = lf_codec_from_conf(conf, &codec, errstr, errstr_size)))
        return err;
    lf_codec_destroy(p->codec);
    p->codec = codec;
    return LF_OK;
}

void lf_projector_share_registry(lf_projector_t *p, lf_projector_t *owner)
{
    lf_codec_set_registry(p->codec, lf_codec_registry(owner->codec));
}

void lf_projector_conn_reset(lf_projector_t *p)
{
    p->temp_ready = false;
}

size_t lf_projector_pending(const lf_projector_t *p)
{
    return p->count;
}

const lf_projector_stats_t *lf_projector_stats(const lf_projector_t *p)
{
    return &p->stats;
}

/* ---- adding to the batch -------------------------------------------- */

static int topic_index(lf_projector_t *p, const char *topic)
{
    char **n;
    for (int i = 0; i < p->topic_count; i++)
        if (!strcmp(p->topics[i], topic))
            return i;
    if (!(n = realloc(p->topics, (size_t)(p->topic_count + 1) * sizeof(*n))))
        return -1;
    p->topics = n;
    if (!(n[p->topic_count] = strdup(topic)))
        return -1;
    return p->topic_count++;
}

static entry_t *new_entry(lf_projector_t *p, const char *topic,
                          int32_t partition, int64_t offset)
{
    entry_t *e;
    int t = topic_index(p, topic);
    size_t i;

    if (t < 0)
        return NULL;
    if (p->count == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 1024;
        entry_t *n = realloc(p->entries, cap * sizeof(*n));
        if (!n)
            return NULL;
        p->entries = n;
        p->cap = cap;
    }
    for (i = 0; i < p->off_count; i++)
        if (p->offs[i].topic == t && p->offs[i].partition == partition)
            break;
    if (i == p->off_count) {
        if (p->off_count == p->off_cap) {
            size_t cap = p->off_cap ? p->off_cap * 2 : 16;
            next_offset_t *n = realloc(p->offs, cap * sizeof(*n));
            if (!n)
                return NULL;
            p->offs = n;
            p->off_cap = cap;
        }
        p->offs[p->off_count++] =
            (next_offset_t){t, partition, offset + 1, LF_PROJECTOR_UNDECLARED};
    } else if (offset + 1 > p->offs[i].next) {
        p->offs[i].next = offset + 1;
    }
    e = &p->entries[p->count++];
    memset(e, 0, sizeof(*e));
    e->topic = t;
    e->partition = partition;
    e->offset = offset;
    return e;
}

static void *dup_bytes(const void *b, size_t n)
{
    void *c = malloc(n ? n : 1);
    if (c && n)
        memcpy(c, b, n);
    return c;
}

lf_err_t lf_projector_add_message(lf_projector_t *p,
                                  const rd_kafka_message_t *rkm)
{
    char why[ERRLEN], q[ERRLEN + 100];
    lf_event_t ev;
    lf_err_t err = lf_codec_decode(p->codec, rkm->payload, rkm->len, &ev, why,
                                   sizeof(why));
    entry_t *e;

    if (err == LF_ERR_TEMPORARY) {
        /* The schema registry could not say what the message's schema id
         * is: that says nothing about the message, so it is not dead-
         * lettered; it is not added at all (its offset is not passed) and
         * the caller offers it again later. */
        LF_LOG(LF_LOG_WARNING,
               "msg=\"schema registry unavailable: message held for a "
               "retry\" topic=%s partition=%d offset=%lld error=%s",
               rd_kafka_topic_name(rkm->rkt), (int)rkm->partition,
               (long long)rkm->offset, lf_log_quote(why, q, sizeof(q)));
        return LF_ERR_TEMPORARY;
    }
    if (!(e = new_entry(p, rd_kafka_topic_name(rkm->rkt), rkm->partition,
                        rkm->offset))) {
        lf_event_clear(&ev);
        return LF_ERR_NOMEM;
    }
    if (err == LF_OK) {
        e->ev = ev; /* the entry takes the strings */
        if (!lead_add(p, e->ev.lead_id))
            return LF_ERR_NOMEM;
        /* The key should be the lead id (it places the lead on a
         * partition); an event under another key is kept but listed. */
        if (!rkm->key)
            snprintf(why, sizeof(why), "Kafka key missing (null), expected "
                                       "the lead_id");
        else if (rkm->key_len != strlen(e->ev.lead_id) ||
                 memcmp(rkm->key, e->ev.lead_id, rkm->key_len))
            snprintf(why, sizeof(why),
                     "Kafka key \"%.*s\" differs from lead_id",
                     (int)(rkm->key_len > 64 ? 64 : rkm->key_len),
                     (const char *)rkm->key);
        else
            return LF_OK;
        if (!(e->note = strdup(why)))
            return LF_ERR_NOMEM;
        return LF_OK;
    }
    e->dead = true;
    if (!(e->note = strdup(why)) ||
        (rkm->key && !(e->key = dup_bytes(rkm->key, rkm->key_len))) ||
        (rkm->payload && !(e->value = dup_bytes(rkm->payload, rkm->len))))
        return LF_ERR_NOMEM;
    e->key_len = rkm->key_len;
    e->value_len = rkm->len;
    return LF_OK;
}

lf_err_t lf_projector_add_event(lf_projector_t *p, lf_event_t *ev,
                                const char *topic, int32_t partition,
                                int64_t offset)
{
    entry_t *e = new_entry(p, topic, partition, offset);
    if (!e)
        return LF_ERR_NOMEM;
    e->ev = *ev;
    lf_event_init(ev);
    return lead_add(p, e->ev.lead_id) ? LF_OK : LF_ERR_NOMEM;
}

/* ---- the offsets fence's declarations ------------------------------- */

lf_err_t lf_projector_continue_from(lf_projector_t *p, const char *topic,
                                    int32_t partition, int64_t from)
{
    for (size_t i = 0; i < p->off_count; i++) {
        next_offset_t *o = &p->offs[i];
        if (o->partition != partition || strcmp(p->topics[o->topic], topic))
            continue;
        if (o->from == LF_PROJECTOR_UNDECLARED)
            o->from = from;
        return LF_OK;
    }
    return LF_ERR_INVALID;
}

bool lf_projector_partition(const lf_projector_t *p, size_t i,
                            const char **topic, int32_t *partition,
                            int64_t *from, int64_t *next)
{
    if (i >= p->off_count)
        return false;
    *topic = p->topics[p->offs[i].topic];
    *partition = p->offs[i].partition;
    *from = p->offs[i].from;
    *next = p->offs[i].next;
    return true;
}

/* ---- flush helpers --------------------------------------------------- */

typedef struct flush_s {
    lf_projector_t *p;
    PGconn *conn;
    char *errstr;
    size_t errstr_size;
    lf_projector_stats_t st; /* this batch, added to p->stats on commit */
    char *recomputed; /* text[] of the leads recomputed in this batch */
} flush_t;

/* Record a failed statement: temporary if the connection or server is in
 * trouble, a data error otherwise. */
static lf_err_t fail(flush_t *f, PGresult *res, const char *what)
{
    return lf_pg_fail(f->conn, res, what, f->errstr, f->errstr_size);
}

/* Run a statement (with up to 2 parameters); *out gets the result when
 * non-NULL (caller clears), else it is cleared here. */
static lf_err_t run(flush_t *f, const char *sql, const char *what, int n,
                    const char *p1, const char *p2, PGresult **out)
{
    const char *params[2] = {p1, p2};

    return lf_pg_query(f->conn, sql, n, params, what, out, f->errstr,
                      f->errstr_size);
}

/* A failed COPY, classified: lf_pg_copy* keep no result to look at, but a
 * live connection means the server refused the data, a dead one means try
 * again elsewhere. */
static lf_err_t copy_failed(const flush_t *f)
{
    return PQstatus(f->conn) == CONNECTION_OK ? LF_ERR_PG : LF_ERR_TEMPORARY;
}

/* COPY binary-format rows (lf_pg_bin_*); nothing when there are none. */
static lf_err_t copy(flush_t *f, const char *sql, lf_buf_t *data)
{
    if (!data->len)
        return LF_OK;
    if (lf_pg_bin_end(data))
        return lf_seterr(LF_ERR_NOMEM, f->errstr, f->errstr_size,
                         "out of memory");
    if (lf_pg_copy(f->conn, sql, data, f->errstr, f->errstr_size))
        return copy_failed(f);
    return LF_OK;
}

/* The temporary staging tables, once per connection. They are emptied at
 * every commit or rollback. */
static lf_err_t ensure_temp(flush_t *f)
{
    if (f->p->temp_ready)
        return LF_OK;
    lf_err_t err = run(
        f,
        "CREATE TEMP TABLE IF NOT EXISTS lf_stg_events ("
        " seq int, event_id text, lead_id text, type text,"
        " occurred_at timestamptz, source text, actor text, payload jsonb,"
        " topic text, partition int, \"offset\" bigint)"
        " ON COMMIT DELETE ROWS;"
        "CREATE TEMP TABLE IF NOT EXISTS lf_stg_leads ("
        " lead_id text, stage text, stage_entered_at timestamptz, cycle int,"
        " score int, score_model text, owner text, channel text,"
        " campaign text, captured_at timestamptz,"
        " first_marketing_qualified_at timestamptz,"
        " first_handed_off_at timestamptz,"
        " first_sales_accepted_at timestamptz,"
        " first_sales_qualified_at timestamptz, won_at timestamptz,"
        " won_amount_minor bigint, currency text, lost_at timestamptz,"
        " disqualified_at timestamptz, last_event_at timestamptz,"
        " last_event_id text, stage_entered_by text, visits int)"
        " ON COMMIT DELETE ROWS;"
        "CREATE TEMP TABLE IF NOT EXISTS lf_stg_visits ("
        " lead_id text, visit int, cycle int, stage text,"
        " entered_at timestamptz, exited_at timestamptz, entered_by text,"
        " exit_reason text) ON COMMIT DELETE ROWS;"
        "CREATE TEMP TABLE IF NOT EXISTS lf_stg_anomalies ("
        " event_id text, lead_id text, kind text, reason text)"
        " ON COMMIT DELETE ROWS;"
        "CREATE TEMP TABLE IF NOT EXISTS lf_stg_dead ("
        " topic text, partition int, \"offset\" bigint, key bytea,"
        " value bytea, error text) ON COMMIT DELETE ROWS",
        "creating staging tables", 0, NULL, NULL, NULL);
    if (!err)
        f->p->temp_ready = true;
    return err;
}

/* Sorting entry indexes by one of the entry's strings. Each index goes
 * with the string's first 8 bytes as a big-endian number, which orders
 * like strcmp and settles most comparisons without a trip to the entry
 * (the sorts were a fifth of a writer's CPU, mostly cache misses in
 * strcmp); strcmp on a tie. qsort has no context argument, so the base
 * is per thread (leadflow-project flushes on several writer threads). */
typedef struct skey_s {
    uint64_t k;
    size_t i;
} skey_t;

static _Thread_local entry_t *sort_base;

static uint64_t prefix8(const char *s)
{
    uint64_t k = 0;
    for (int j = 0; j < 8; j++) {
        k <<= 8;
        if (*s)
            k |= (unsigned char)*s++;
    }
    return k;
}

static int by_event_id(const void *a, const void *b)
{
    const skey_t *x = a, *y = b;
    int c;

    if (x->k != y->k)
        return x->k < y->k ? -1 : 1;
    if ((c = strcmp(sort_base[x->i].ev.event_id, sort_base[y->i].ev.event_id)))
        return c;
    return x->i < y->i ? -1 : x->i > y->i;
}

static int by_lead_then_order(const void *a, const void *b)
{
    const skey_t *x = a, *y = b;
    const lf_event_t *ex = &sort_base[x->i].ev, *ey = &sort_base[y->i].ev;
    int c;

    if (x->k != y->k)
        return x->k < y->k ? -1 : 1;
    if ((c = strcmp(ex->lead_id, ey->lead_id)))
        return c;
    return lf_event_order(ex->occurred_at, ex->event_id, ey->occurred_at,
                          ey->event_id);
}

/* Sort @p idx[0..n) by event_id (then index), or by lead_id then event
 * order. @returns false when out of memory (idx unchanged). */
static bool sort_entries(lf_projector_t *p, size_t *idx, size_t n, bool lead)
{
    skey_t *k;

    if (n < 2)
        return true;
    if (!(k = malloc(n * sizeof(*k))))
        return false;
    for (size_t j = 0; j < n; j++) {
        const lf_event_t *ev = &p->entries[idx[j]].ev;
        k[j].i = idx[j];
        k[j].k = prefix8(lead ? ev->lead_id : ev->event_id);
    }
    sort_base = p->entries;
    qsort(k, n, sizeof(*k), lead ? by_lead_then_order : by_event_id);
    for (size_t j = 0; j < n; j++)
        idx[j] = k[j].i;
    free(k);
    return true;
}

static int64_t ms_or_null(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return LF_NO_TIME;
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static char *str_or_null(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return NULL;
    return strdup(PQgetvalue(res, row, col));
}

#define MS(col) "(extract(epoch FROM " col ") * 1000)::int8"

/* Column order of lead_select and load_lead(). */
/* clang-format off */
#define LEAD_COLUMNS                                                           \
    "lead_id, stage, " MS("stage_entered_at") ", stage_entered_by, cycle, "    \
    "visits, score, score_model, owner, channel, campaign, "                  \
    MS("captured_at") ", " MS("first_marketing_qualified_at") ", "            \
    MS("first_handed_off_at") ", " MS("first_sales_accepted_at") ", "         \
    MS("first_sales_qualified_at") ", " MS("won_at") ", "                     \
    "won_amount_minor, currency, " MS("lost_at") ", "                         \
    MS("disqualified_at") ", " MS("last_event_at") ", last_event_id"
/* clang-format on */

static lf_err_t load_lead(const PGresult *res, int r, lf_lead_t *l)
{
    if (lf_lead_init(l, PQgetvalue(res, r, 0)))
        return LF_ERR_NOMEM;
    l->stage = lf_stage_parse(PQgetvalue(res, r, 1));
    l->stage_entered_at = ms_or_null(res, r, 2);
    l->stage_entered_by = str_or_null(res, r, 3);
    l->cycle = (int32_t)atoi(PQgetvalue(res, r, 4));
    l->visits = (int32_t)atoi(PQgetvalue(res, r, 5));
    l->has_score = !PQgetisnull(res, r, 6);
    l->score = (int32_t)atoi(PQgetvalue(res, r, 6));
    l->score_model = str_or_null(res, r, 7);
    l->owner = str_or_null(res, r, 8);
    l->channel = str_or_null(res, r, 9);
    l->campaign = str_or_null(res, r, 10);
    l->captured_at = ms_or_null(res, r, 11);
    l->first_at[LF_ST_MARKETING_QUALIFIED] = ms_or_null(res, r, 12);
    l->first_at[LF_ST_HANDED_OFF] = ms_or_null(res, r, 13);
    l->first_at[LF_ST_SALES_ACCEPTED] = ms_or_null(res, r, 14);
    l->first_at[LF_ST_SALES_QUALIFIED] = ms_or_null(res, r, 15);
    l->last_at[LF_ST_WON] = ms_or_null(res, r, 16);
    l->has_won_amount = !PQgetisnull(res, r, 17);
    l->won_amount_minor = strtoll(PQgetvalue(res, r, 17), NULL, 10);
    l->currency = str_or_null(res, r, 18);
    l->last_at[LF_ST_LOST] = ms_or_null(res, r, 19);
    l->last_at[LF_ST_DISQUALIFIED] = ms_or_null(res, r, 20);
    l->last_event_at = ms_or_null(res, r, 21);
    l->last_event_id = str_or_null(res, r, 22);
    l->first_at[LF_ST_CAPTURED] = l->captured_at;
    if (!l->stage_entered_by || !l->last_event_id)
        return LF_ERR_NOMEM;
    return LF_OK;
}

/* The COPY buffers: rows to upsert through the staging tables, and rows
 * known not to exist yet (leads_new, visits_new), which COPY writes
 * straight into leads and stage_history at a fraction of an upsert's cost.
 * Under the batch's lead locks nothing else adds rows for these leads. */
typedef struct stage_bufs_s {
    lf_buf_t leads, visits, anomalies, leads_new, visits_new;
} stage_bufs_t;

/* Append a lead's row, its visits and anomalies to the COPY buffers.
 * @p has_row: the lead may have a row in leads; @p stored_visits: the
 * visits it has in stage_history (visits are numbered from 1, so those
 * after it are new: only the one that was current can be updated). */
static lf_err_t write_lead(stage_bufs_t *b, const lf_lead_t *l,
                           const lf_funnel_out_t *out, bool has_row,
                           int32_t stored_visits)
{
    lf_err_t e = LF_OK;

    for (size_t i = 0; i < out->visit_count && !e; i++) {
        const lf_visit_t *v = &out->visits[i];
        lf_buf_t *vb = v->visit > stored_visits ? &b->visits_new : &b->visits;
        /* A visit opened and closed in this batch appears twice: the
         * later row is the truth (ON CONFLICT cannot touch a row twice). */
        if (i + 1 < out->visit_count && out->visits[i + 1].visit == v->visit)
            continue;
        e = lf_pg_bin_row(vb, 8) || lf_pg_bin_text(vb, l->lead_id) ||
            lf_pg_bin_int4(vb, v->visit) || lf_pg_bin_int4(vb, v->cycle) ||
            lf_pg_bin_text(vb, lf_stage_name(v->stage)) ||
            lf_pg_bin_ts(vb, v->entered_at) ||
            lf_pg_bin_ts(vb, v->exited_at) ||
            lf_pg_bin_text(vb, v->entered_by) ||
            lf_pg_bin_text(vb, v->exit_reason);
    }
    for (size_t i = 0; i < out->anomaly_count && !e; i++)
        e = lf_pg_bin_row(&b->anomalies, 4) ||
            lf_pg_bin_text(&b->anomalies, out->anomalies[i].event_id) ||
            lf_pg_bin_text(&b->anomalies, l->lead_id) ||
            lf_pg_bin_text(&b->anomalies, "state") ||
            lf_pg_bin_text(&b->anomalies, out->anomalies[i].reason);
    if (e || l->stage == LF_ST_NONE)
        return e ? LF_ERR_NOMEM : LF_OK;
    lf_buf_t *o = has_row ? &b->leads : &b->leads_new;
    e = lf_pg_bin_row(o, 23) || lf_pg_bin_text(o, l->lead_id) ||
        lf_pg_bin_text(o, lf_stage_name(l->stage)) ||
        lf_pg_bin_ts(o, l->stage_entered_at) ||
        lf_pg_bin_int4(o, l->cycle) ||
        (l->has_score ? lf_pg_bin_int4(o, l->score) : lf_pg_bin_null(o)) ||
        lf_pg_bin_text(o, l->score_model) || lf_pg_bin_text(o, l->owner) ||
        lf_pg_bin_text(o, l->channel) || lf_pg_bin_text(o, l->campaign) ||
        lf_pg_bin_ts(o, l->captured_at) ||
        lf_pg_bin_ts(o, l->first_at[LF_ST_MARKETING_QUALIFIED]) ||
        lf_pg_bin_ts(o, l->first_at[LF_ST_HANDED_OFF]) ||
        lf_pg_bin_ts(o, l->first_at[LF_ST_SALES_ACCEPTED]) ||
        lf_pg_bin_ts(o, l->first_at[LF_ST_SALES_QUALIFIED]) ||
        lf_pg_bin_ts(o, l->last_at[LF_ST_WON]) ||
        (l->has_won_amount ? lf_pg_bin_int8(o, l->won_amount_minor)
                           : lf_pg_bin_null(o)) ||
        lf_pg_bin_text(o, l->currency) ||
        lf_pg_bin_ts(o, l->last_at[LF_ST_LOST]) ||
        lf_pg_bin_ts(o, l->last_at[LF_ST_DISQUALIFIED]) ||
        lf_pg_bin_ts(o, l->last_event_at) ||
        lf_pg_bin_text(o, l->last_event_id) ||
        lf_pg_bin_text(o, l->stage_entered_by) ||
        lf_pg_bin_int4(o, l->visits);
    return e ? LF_ERR_NOMEM : LF_OK;
}

/* Apply events[0..n) in order to lead and stage the result. @p has_row:
 * the lead may have a row in leads (see write_lead()); its stage_history
 * rows are those numbered up to lead->visits. */
static lf_err_t project_lead(lf_projector_t *p, stage_bufs_t *b,
                             lf_lead_t *lead, lf_event_t *const *events,
                             size_t n, lf_projector_stats_t *st, bool has_row)
{
    int32_t stored_visits = lead->visits;

    lf_funnel_out_reset(&p->out);
    for (size_t i = 0; i < n; i++)
        if (lf_funnel_apply(lead, events[i], &p->out))
            return LF_ERR_NOMEM;
    (void)st; /* anomalies: counted as the table takes them (flush) */
    return write_lead(b, lead, &p->out, has_row, stored_visits);
}

/* ---- flush ------------------------------------------------------------ */

/* COPY the events (the columns of events, after the batch position, seq,
 * when @p seq) with @p sql, sent while they are formatted, a slice of
 * COPY_STREAM bytes at a time: the server stores one slice while the next
 * is formatted, and the batch's rows are never all in memory (4 MiB per
 * writer for 10,000 events). @returns LF_OK; LF_ERR_NOMEM; LF_ERR_PG when
 * the server refused them, LF_ERR_TEMPORARY when the connection is gone
 * (both leave the transaction failed). */
#define COPY_STREAM (64 * 1024)

static lf_err_t copy_events(flush_t *f, const char *sql, const size_t *ev_idx,
                            size_t nev, bool seq)
{
    lf_projector_t *p = f->p;
    lf_buf_t *c = &p->copy;
    lf_err_t err = LF_OK;

    if (!nev)
        return LF_OK;
    if (lf_pg_copy_begin(f->conn, sql, f->errstr, f->errstr_size))
        return copy_failed(f);
    lf_buf_reset(c);
    for (size_t k = 0; !err && k < nev; k++) {
        size_t i = ev_idx[k];
        entry_t *e = &p->entries[i];
        lf_buf_reset(&p->tmp);
        if (lf_json_format_payload(&e->ev, &p->tmp) ||
            (k ? lf_pg_bin_tuple : lf_pg_bin_row)(c, seq ? 11 : 10) ||
            (seq && lf_pg_bin_int4(c, (int32_t)i)) ||
            lf_pg_bin_text(c, e->ev.event_id) ||
            lf_pg_bin_text(c, e->ev.lead_id) ||
            lf_pg_bin_text(c, lf_event_type_name(e->ev.type)) ||
            lf_pg_bin_ts(c, e->ev.occurred_at) ||
            lf_pg_bin_text(c, e->ev.source) ||
            lf_pg_bin_text(c, e->ev.actor) ||
            lf_pg_bin_jsonb(c, p->tmp.data, p->tmp.len) ||
            lf_pg_bin_text(c, p->topics[e->topic]) ||
            lf_pg_bin_int4(c, e->partition) || lf_pg_bin_int8(c, e->offset) ||
            (k == nev - 1 && lf_pg_bin_end(c))) {
            err = LF_ERR_NOMEM;
        } else if (c->len >= COPY_STREAM || k == nev - 1) {
            err = lf_pg_copy_send(f->conn, sql, c->data, c->len, f->errstr,
                                  f->errstr_size);
            lf_buf_reset(c);
        }
    }
    if (lf_pg_copy_end(f->conn, sql, err, f->errstr, f->errstr_size) == LF_OK)
        return LF_OK;
    if (err == LF_ERR_NOMEM)
        return lf_seterr(LF_ERR_NOMEM, f->errstr, f->errstr_size,
                         "out of memory");
    return copy_failed(f);
}

static lf_err_t stage_events(flush_t *f, size_t *ev_idx, size_t nev)
{
    return copy_events(f,
                       "COPY lf_stg_events (seq, event_id, lead_id, type, "
                       "occurred_at, source, actor, payload, topic, "
                       "partition, \"offset\") FROM STDIN (FORMAT binary)",
                       ev_idx, nev, true);
}

/* A clean batch, the common case (no event_id twice in it, none stored
 * before), goes straight into events with one COPY: half the cost of
 * staging it and INSERT ... ON CONFLICT. Should one event_id be stored
 * already, COPY fails on the primary key and the savepoint lets the caller
 * take the staged path. While batches come clean (a stream read for the
 * first time) that is all; after a batch that was not, or first, a probe
 * asks whether any of them is stored, so that a replay costs a cheap
 * SELECT per batch rather than a failed COPY and an ERROR in the server's
 * log (one such error is the price of noticing a replay: 11 % of a
 * writer's statement time went to the probe). Both run under the lead
 * locks, so no other projector adds these leads' events meanwhile.
 * *direct tells whether the events are stored (all of them new).
 * @returns LF_OK, or an error when the transaction is unusable. */
static lf_err_t store_events_direct(flush_t *f, size_t *ev_idx, size_t nev,
                                    bool *direct)
{
    lf_projector_t *p = f->p;
    const char **ids = NULL;
    PGresult *res = NULL;
    char sql[512];
    lf_err_t err = LF_OK;

    *direct = false;
    for (size_t k = 1; k < nev; k++)
        if (!strcmp(p->entries[ev_idx[k - 1]].ev.event_id,
                    p->entries[ev_idx[k]].ev.event_id))
            return LF_OK; /* a duplicate within the batch */
    if (!p->expect_new) {
        if (!(ids = malloc(nev * sizeof(*ids))))
            goto nomem;
        for (size_t k = 0; k < nev; k++)
            ids[k] = p->entries[ev_idx[k]].ev.event_id;
        lf_buf_reset(&p->arr);
        if (lf_pg_text_array(&p->arr, ids, nev))
            goto nomem;
        snprintf(sql, sizeof(sql),
                 "SELECT 1 FROM %s.events WHERE event_id = ANY($1::text[]) "
                 "LIMIT 1",
                 p->schema);
        if ((err = run(f, sql, "probing events", 1, p->arr.data, NULL,
                       &res)))
            goto out;
        if (PQntuples(res))
            goto out; /* a replay or a duplicate: the staged path */
    }
    if ((err = run(f, "SAVEPOINT lf_direct", "storing events", 0, NULL, NULL,
                   NULL)))
        goto out;
    snprintf(sql, sizeof(sql),
             "COPY %s.events (event_id, lead_id, type, occurred_at, source, "
             "actor, payload, topic, partition, \"offset\") FROM STDIN (FORMAT binary)",
             p->schema);
    if ((err = copy_events(f, sql, ev_idx, nev, false))) {
        if (err != LF_ERR_NOMEM)
            err = run(f, "ROLLBACK TO SAVEPOINT lf_direct", "storing events",
                      0, NULL, NULL, NULL);
        goto out;
    }
    for (size_t k = 0; k < nev; k++)
        p->entries[ev_idx[k]].is_new = true;
    *direct = true;
out:
    PQclear(res);
    free(ids);
    return err;
nomem:
    free(ids);
    return lf_seterr(LF_ERR_NOMEM, f->errstr, f->errstr_size, "out of memory");
}

static lf_err_t stage_dead_and_keys(flush_t *f, lf_buf_t *anomalies)
{
    lf_projector_t *p = f->p;
    lf_buf_t *c = &p->copy;
    lf_err_t e = LF_OK;

    lf_buf_reset(c);
    for (size_t i = 0; i < p->count && !e; i++) {
        entry_t *en = &p->entries[i];
        if (en->dead) {
            e = lf_pg_bin_row(c, 6) || lf_pg_bin_text(c, p->topics[en->topic]) ||
                lf_pg_bin_int4(c, en->partition) ||
                lf_pg_bin_int8(c, en->offset) ||
                lf_pg_bin_bytea(c, en->key, en->key_len) ||
                lf_pg_bin_bytea(c, en->value, en->value_len) ||
                lf_pg_bin_text(c, en->note);
            f->st.dead_letters++;
        } else if (en->note) {
            e = lf_pg_bin_row(anomalies, 4) ||
                lf_pg_bin_text(anomalies, en->ev.event_id) ||
                lf_pg_bin_text(anomalies, en->ev.lead_id) ||
                lf_pg_bin_text(anomalies, "key") ||
                lf_pg_bin_text(anomalies, en->note);
        }
    }
    if (e)
        return lf_seterr(LF_ERR_NOMEM, f->errstr, f->errstr_size,
                         "out of memory");
    return copy(f,
                "COPY lf_stg_dead (topic, partition, \"offset\", key, value, "
                "error) FROM STDIN (FORMAT binary)",
                c);
}

/* Mark the entries whose event_id the INSERT stored (the first of each
 * id in the batch: DISTINCT ON ... ORDER BY seq); ev_idx is in event_id
 * order. */
static void mark_new(lf_projector_t *p, const size_t *ev_idx, size_t nev,
                     const PGresult *res)
{
    for (int r = 0; r < PQntuples(res); r++) {
        const char *id = PQgetvalue(res, r, 0);
        size_t lo = 0, hi = nev;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (strcmp(p->entries[ev_idx[mid]].ev.event_id, id) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < nev && !strcmp(p->entries[ev_idx[lo]].ev.event_id, id))
            p->entries[ev_idx[lo]].is_new = true;
    }
}

/* A lead's run of new events in ev_idx: ev_idx[at .. at + n). */
typedef struct span_s {
    size_t at, n;
} span_t;

/* Leads without a row in leads: most are new, and their only stored events
 * are the ones this batch just stored, so applying those in memory gives
 * exactly what a recompute would, without reading them back. A lead with
 * older stored events goes to re[] for the full recompute. Which leads
 * have some: a lead has no row only while none of its stored events is a
 * capture (a capture always enters the funnel), and every other event on
 * an uncaptured lead is listed as a 'state' anomaly of that lead in the
 * same transaction that stores it (rule 4, lf_funnel_apply), until a
 * recompute that gives the lead a row. So older stored events <=> a
 * 'state' anomaly already committed: an index lookup in a small table,
 * where counting the lead's events costs 10 % of a batch (bench/). */
static lf_err_t project_fresh(flush_t *f, stage_bufs_t *b, size_t *ev_idx,
                              const span_t *fresh, size_t nfresh,
                              const char **re, size_t *nre, lf_event_t **group)
{
    lf_projector_t *p = f->p;
    const char **ids = malloc(nfresh * sizeof(*ids));
    PGresult *res = NULL;
    char sql[512];
    lf_err_t err;
    size_t r = 0, nrows;

    if (!ids)
        return LF_ERR_NOMEM;
    for (size_t i = 0; i < nfresh; i++)
        ids[i] = p->entries[ev_idx[fresh[i].at]].ev.lead_id;
    lf_buf_reset(&p->arr);
    err = lf_pg_text_array(&p->arr, ids, nfresh) ? LF_ERR_NOMEM : LF_OK;
    free(ids);
    if (err)
        return err;
    snprintf(sql, sizeof(sql),
             "SELECT lead_id FROM %s.anomalies WHERE lead_id = "
             "ANY($1::text[]) AND kind = 'state' GROUP BY lead_id "
             "ORDER BY lead_id COLLATE \"C\"",
             p->schema);
    if ((err =
             run(f, sql, "finding earlier events", 1, p->arr.data, NULL, &res)))
        return err;
    nrows = (size_t)PQntuples(res);
    for (size_t i = 0; i < nfresh && !err; i++) {
        const span_t *s = &fresh[i];
        const char *id = p->entries[ev_idx[s->at]].ev.lead_id;
        lf_lead_t lead;

        while (r < nrows && strcmp(PQgetvalue(res, (int)r, 0), id) < 0)
            r++;
        if (r < nrows && !strcmp(PQgetvalue(res, (int)r, 0), id)) {
            re[(*nre)++] = id;
            continue;
        }
        for (size_t j = 0; j < s->n; j++)
            group[j] = &p->entries[ev_idx[s->at + j]].ev;
        if (lf_lead_init(&lead, id))
            err = LF_ERR_NOMEM;
        else
            err = project_lead(p, b, &lead, group, s->n, &f->st, false);
        lf_lead_clear(&lead);
    }
    PQclear(res);
    return err;
}

static lf_err_t derive(flush_t *f, size_t *ev_idx, size_t nev,
                       stage_bufs_t *b)
{
    lf_projector_t *p = f->p;
    size_t nnew = 0, nleads = 0, nre = 0, nloaded = 0, nfresh = 0;
    const char **leads = NULL, **re = NULL;
    span_t *fresh = NULL;
    lf_lead_t *loaded = NULL;
    lf_event_t **group = NULL, *reevents = NULL;
    size_t nreevents = 0;
    PGresult *res = NULL;
    char sql[2048];
    lf_err_t err = LF_OK;

    /* The new events, by lead then (occurred_at, event_id). */
    for (size_t k = 0; k < nev; k++)
        if (p->entries[ev_idx[k]].is_new)
            ev_idx[nnew++] = ev_idx[k];
    f->st.events_new = nnew;
    if (!nnew)
        return LF_OK;
    leads = calloc(nnew, sizeof(*leads));
    re = calloc(nnew, sizeof(*re));
    group = calloc(nnew, sizeof(*group));
    fresh = calloc(nnew, sizeof(*fresh));
    if (!leads || !re || !group || !fresh ||
        !sort_entries(p, ev_idx, nnew, true)) {
        err = LF_ERR_NOMEM;
        goto done;
    }
    for (size_t k = 0; k < nnew; k++) {
        const char *id = p->entries[ev_idx[k]].ev.lead_id;
        f->st.by_type[p->entries[ev_idx[k]].ev.type]++;
        if (!nleads || strcmp(leads[nleads - 1], id))
            leads[nleads++] = id;
    }

    /* The stored state of those leads, in lead_id order (bytewise, as
     * strcmp, hence COLLATE "C"). */
    lf_buf_reset(&p->arr);
    if (lf_pg_text_array(&p->arr, leads, nleads)) {
        err = LF_ERR_NOMEM;
        goto done;
    }
    snprintf(sql, sizeof(sql),
             "SELECT " LEAD_COLUMNS " FROM %s.leads WHERE lead_id = "
             "ANY($1::text[]) ORDER BY lead_id COLLATE \"C\"",
             p->schema);
    if ((err = run(f, sql, "loading leads", 1, p->arr.data, NULL, &res)))
        goto done;
    nloaded = (size_t)PQntuples(res);
    if (nloaded && !(loaded = calloc(nloaded, sizeof(*loaded)))) {
        err = LF_ERR_NOMEM;
        goto done;
    }
    for (size_t r = 0; r < nloaded; r++)
        if (load_lead(res, (int)r, &loaded[r])) {
            err = LF_ERR_NOMEM;
            goto done;
        }
    PQclear(res);
    res = NULL;

    /* Continue each lead whose new events all come after its last one;
     * list the others (and new leads) for a recompute. */
    size_t li = 0;
    for (size_t k = 0; k < nnew;) {
        const char *id = p->entries[ev_idx[k]].ev.lead_id;
        size_t n = 0;
        while (k + n < nnew &&
               !strcmp(p->entries[ev_idx[k + n]].ev.lead_id, id)) {
            group[n] = &p->entries[ev_idx[k + n]].ev;
            n++;
        }
        k += n;
        while (li < nloaded && strcmp(loaded[li].lead_id, id) < 0)
            li++;
        if (li < nloaded && !strcmp(loaded[li].lead_id, id)) {
            if (!lf_funnel_is_next(&loaded[li], group[0]))
                re[nre++] = id;
            else if ((err = project_lead(p, b, &loaded[li], group, n, &f->st,
                                         true)))
                goto done;
        } else {
            fresh[nfresh++] = (span_t){k - n, n};
        }
    }
    if (nfresh &&
        (err = project_fresh(f, b, ev_idx, fresh, nfresh, re, &nre, group)))
        goto done;
    if (!nre)
        goto done;

    /* Recompute: every stored event of these leads, in order, through the
     * same JSON mapping the events were stored with. */
    f->st.recomputed = nre;
    lf_buf_reset(&p->arr);
    if (lf_pg_text_array(&p->arr, re, nre)) {
        err = LF_ERR_NOMEM;
        goto done;
    }
    snprintf(sql, sizeof(sql),
             "SELECT lead_id, (jsonb_build_object('event_id', event_id, "
             "'lead_id', lead_id, 'type', type, 'occurred_at', "
             MS("occurred_at") ", 'source', source, 'actor', actor) || "
             "payload)::text FROM %s.events WHERE lead_id = ANY($1::text[]) "
             "ORDER BY lead_id COLLATE \"C\", occurred_at, "
             "event_id COLLATE \"C\"",
             p->schema);
    if ((err = run(f, sql, "reading events to recompute", 1, p->arr.data,
                   NULL, &res)))
        goto done;
    nreevents = (size_t)PQntuples(res);
    if (!(reevents = calloc(nreevents + 1, sizeof(*reevents))) ||
        !(group = realloc(group, (nreevents + 1) * sizeof(*group)))) {
        err = LF_ERR_NOMEM;
        goto done;
    }
    for (size_t r = 0; r < nreevents; r++) {
        char why[ERRLEN];
        const char *js = PQgetvalue(res, (int)r, 1);
        if (lf_json_parse_event(js, strlen(js), &reevents[r], why,
                                sizeof(why))) {
            /* Stored events passed this parser when they came in; if one
             * fails now, the code changed incompatibly: stop, loudly. */
            err = lf_seterr(LF_ERR_PG, f->errstr, f->errstr_size,
                            "stored event of lead %s no longer parses: %s",
                            PQgetvalue(res, (int)r, 0), why);
            goto done;
        }
    }
    PQclear(res);
    res = NULL;
    /* Their history is written anew. Their state anomalies are kept: the
     * recompute derives them again (ON CONFLICT keeps the stored row), and
     * the flush deletes those it no longer finds, so that only anomalies
     * the table did not hold are counted as new. */
    snprintf(sql, sizeof(sql),
             "DELETE FROM %s.stage_history WHERE lead_id = ANY($1::text[])",
             p->schema);
    if ((err = run(f, sql, "clearing recomputed leads", 1, p->arr.data, NULL,
                   NULL)))
        goto done;
    if (!(f->recomputed = strdup(p->arr.data))) {
        err = LF_ERR_NOMEM;
        goto done;
    }
    for (size_t r = 0; r < nreevents;) {
        lf_lead_t lead;
        size_t n = 0;
        while (r + n < nreevents &&
               !strcmp(reevents[r + n].lead_id, reevents[r].lead_id)) {
            group[n] = &reevents[r + n];
            n++;
        }
        if (lf_lead_init(&lead, reevents[r].lead_id)) {
            err = LF_ERR_NOMEM;
            goto done;
        }
        /* Its history was deleted above; its row may exist. */
        err = project_lead(p, b, &lead, group, n, &f->st, true);
        lf_lead_clear(&lead);
        if (err)
            goto done;
        r += n;
    }

done:
    if (err == LF_ERR_NOMEM)
        lf_seterr(err, f->errstr, f->errstr_size, "out of memory");
    PQclear(res);
    for (size_t i = 0; i < nloaded; i++)
        lf_lead_clear(&loaded[i]);
    free(loaded);
    for (size_t i = 0; reevents && i < nreevents; i++)
        lf_event_clear(&reevents[i]);
    free(reevents);
    free(group);
    free(leads);
    free(re);
    free(fresh);
    return err;
}

/* The offsets fence, in the batch's transaction before its offsets are
 * stored: every partition whose messages were declared to continue from a
 * stored next offset (lf_projector_continue_from()) must still have that
 * value in funnel.offsets, locked until the commit. A database that lost
 * commits (a failover to an asynchronous standby) or another writer that
 * moved a partition on makes the values differ: then nothing of the batch
 * may be written, since its messages would sit next to a gap or on top of
 * a range written twice, and storing its offsets would hide the gap for
 * good. Kafka offsets may have gaps (compaction, the markers of
 * transactional producers), so a batch is never checked against its first
 * message's offset: it stores last+1 and the next batch continues from
 * exactly that value, gap or not. @returns LF_OK, LF_ERR_STALE, or a
 * statement's error. */
static lf_err_t check_continues(flush_t *f)
{
    lf_projector_t *p = f->p;
    char sql[256];

    snprintf(sql, sizeof(sql),
             "SELECT next_offset FROM %s.offsets WHERE group_id = $1 AND "
             "topic = $2 AND partition = $3 FOR UPDATE",
             p->schema);
    for (size_t i = 0; i < p->off_count; i++) {
        const next_offset_t *o = &p->offs[i];
        char part[16], stored[24] = "none";
        const char *params[3] = {p->group_id, p->topics[o->topic], part};
        PGresult *res;
        bool same;

        if (o->from == LF_PROJECTOR_UNDECLARED)
            continue;
        snprintf(part, sizeof(part), "%d", (int)o->partition);
        res = PQexecParams(f->conn, sql, 3, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            lf_err_t err = fail(f, res, "reading stored offsets");
            PQclear(res);
            return err;
        }
        if (PQntuples(res))
            snprintf(stored, sizeof(stored), "%s", PQgetvalue(res, 0, 0));
        same = PQntuples(res) ? strtoll(stored, NULL, 10) == o->from
                              : o->from == LF_PROJECTOR_NO_ROW;
        PQclear(res);
        if (!same)
            return lf_seterr(LF_ERR_STALE, f->errstr, f->errstr_size,
                             "topic %s partition %d: the stored next offset "
                             "is %s, this batch continues from %lld",
                             p->topics[o->topic], (int)o->partition, stored,
                             (long long)o->from);
    }
    return LF_OK;
}

lf_err_t lf_projector_flush(lf_projector_t *p, PGconn *conn,
                            rd_kafka_topic_partition_list_t **committed,
                            char *errstr, size_t errstr_size)
{
    flush_t f = {p, conn, errstr, errstr_size, {0}, NULL};
    stage_bufs_t b = {{0}, {0}, {0}, {0}, {0}};
    size_t *ev_idx = NULL, nev = 0, nstored = 0;
    bool direct = false;
    const char **leads = NULL;
    size_t nleads = 0;
    PGresult *res = NULL;
    char sql[1536];
    lf_err_t err;

    if (committed)
        *committed = NULL;
    if (!p->count)
        return LF_OK;
    if ((err = ensure_temp(&f)))
        return err;
    if (!(ev_idx = calloc(p->count, sizeof(*ev_idx))) ||
        !(leads = calloc(p->count, sizeof(*leads)))) {
        err = lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < p->count; i++) {
        p->entries[i].is_new = false;
        if (!p->entries[i].dead)
            ev_idx[nev++] = i;
    }
    /* In event_id order, once: for finding an id twice in the batch, for
     * mark_new's search, and as the COPY order (the primary key's). */
    if (!sort_entries(p, ev_idx, nev, false)) {
        err = lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
        goto out;
    }
    /* The batch's leads, each once (the server orders the locks). */
    for (size_t i = 0; i < p->leadset_cap; i++)
        if (p->leadset[i])
            leads[nleads++] = p->leadset[i];

    if ((err = run(&f, "BEGIN", "BEGIN", 0, NULL, NULL, NULL)))
        goto out;

    /* Lock the batch's leads before touching them, in one global order
     * (of the lock keys), so two instances never deadlock and never
     * interleave on one lead. */
    if (nleads) {
        lf_buf_reset(&p->arr);
        if (lf_pg_text_array(&p->arr, leads, nleads)) {
            err = lf_seterr(LF_ERR_NOMEM, errstr, errstr_size,
                            "out of memory");
            goto rollback;
        }
        if ((err = run(&f,
                       "SELECT count(pg_advisory_xact_lock(k)) FROM "
                       "(SELECT DISTINCT hashtextextended(l, 0) AS k FROM "
                       "unnest($1::text[]) AS l ORDER BY 1) AS s",
                       "locking leads", 1, p->arr.data, NULL, NULL)))
            goto rollback;
    }

    if (nev && (err = store_events_direct(&f, ev_idx, nev, &direct)))
        goto rollback;
    if (direct)
        nstored = nev;
    else if ((err = stage_events(&f, ev_idx, nev)))
        goto rollback;
    snprintf(sql, sizeof(sql),
             "INSERT INTO %s.events (event_id, lead_id, type, occurred_at, "
             "source, actor, payload, topic, partition, \"offset\") "
             "SELECT DISTINCT ON (event_id) event_id, lead_id, type, "
             "occurred_at, source, actor, payload, topic, partition, "
             "\"offset\" FROM lf_stg_events ORDER BY event_id, seq "
             "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
             p->schema);
    if (nev && !direct &&
        (err = run(&f, sql, "storing events", 0, NULL, NULL, &res)))
        goto rollback;
    if (res) {
        nstored = (size_t)PQntuples(res);
        mark_new(p, ev_idx, nev, res);
        PQclear(res);
        res = NULL;
    }
    /* The same event_id with other content: the first stays, the later
     * message is listed (once, however often it is replayed). When every
     * staged row was stored just now, each joins only itself: skip the
     * join, the costliest statement of a clean batch. */
    snprintf(sql, sizeof(sql),
             "INSERT INTO %s.anomalies (event_id, lead_id, kind, reason) "
             "SELECT s.event_id, s.lead_id, 'conflict', "
             "format('event_id reused with different content at %%s "
             "partition %%s offset %%s', s.topic, s.partition, s.\"offset\") "
             "FROM lf_stg_events s JOIN %s.events e USING (event_id) "
             "WHERE (e.topic, e.partition, e.\"offset\") IS DISTINCT FROM "
             "(s.topic, s.partition, s.\"offset\") AND "
             "(e.lead_id, e.type, e.occurred_at, e.source, e.actor, "
             "e.payload) IS DISTINCT FROM (s.lead_id, s.type, s.occurred_at, "
             "s.source, s.actor, s.payload) "
             "ON CONFLICT DO NOTHING",
             p->schema, p->schema);
    if (nstored < nev) {
        if ((err = run(&f, sql, "checking conflicts", 0, NULL, NULL, &res)))
            goto rollback;
        f.st.conflicts = strtoull(PQcmdTuples(res), NULL, 10);
        PQclear(res);
        res = NULL;
    }

    if ((err = derive(&f, ev_idx, nev, &b)))
        goto rollback;
    f.st.duplicates = nev - f.st.events_new;
    if ((err = stage_dead_and_keys(&f, &b.anomalies)))
        goto rollback;
    if ((err = copy(&f,
                    "COPY lf_stg_leads (lead_id, stage, stage_entered_at, "
                    "cycle, score, score_model, owner, channel, campaign, "
                    "captured_at, first_marketing_qualified_at, "
                    "first_handed_off_at, first_sales_accepted_at, "
                    "first_sales_qualified_at, won_at, won_amount_minor, "
                    "currency, lost_at, disqualified_at, last_event_at, "
                    "last_event_id, stage_entered_by, visits) FROM STDIN (FORMAT binary)",
                    &b.leads)) ||
        (err = copy(&f,
                    "COPY lf_stg_visits (lead_id, visit, cycle, stage, "
                    "entered_at, exited_at, entered_by, exit_reason) "
                    "FROM STDIN (FORMAT binary)",
                    &b.visits)) ||
        (err = copy(&f,
                    "COPY lf_stg_anomalies (event_id, lead_id, kind, reason) "
                    "FROM STDIN (FORMAT binary)",
                    &b.anomalies)))
        goto rollback;
    snprintf(sql, sizeof(sql),
             "COPY %s.leads (lead_id, stage, stage_entered_at, cycle, score, "
             "score_model, owner, channel, campaign, captured_at, "
             "first_marketing_qualified_at, first_handed_off_at, "
             "first_sales_accepted_at, first_sales_qualified_at, won_at, "
             "won_amount_minor, currency, lost_at, disqualified_at, "
             "last_event_at, last_event_id, stage_entered_by, visits) "
             "FROM STDIN (FORMAT binary)",
             p->schema);
    if ((err = copy(&f, sql, &b.leads_new)))
        goto rollback;
    snprintf(sql, sizeof(sql),
             "COPY %s.stage_history (lead_id, visit, cycle, stage, "
             "entered_at, exited_at, entered_by, exit_reason) FROM STDIN (FORMAT binary)",
             p->schema);
    if ((err = copy(&f, sql, &b.visits_new)))
        goto rollback;

    if (b.leads.len) {
        snprintf(sql, sizeof(sql),
                 "INSERT INTO %s.leads (lead_id, stage, stage_entered_at, "
                 "cycle, score, score_model, owner, channel, campaign, "
                 "captured_at, first_marketing_qualified_at, "
                 "first_handed_off_at, first_sales_accepted_at, "
                 "first_sales_qualified_at, won_at, won_amount_minor, "
                 "currency, lost_at, disqualified_at, last_event_at, "
                 "last_event_id, stage_entered_by, visits) "
                 "SELECT * FROM lf_stg_leads "
                 "ON CONFLICT (lead_id) DO UPDATE SET "
                 "stage = EXCLUDED.stage, "
                 "stage_entered_at = EXCLUDED.stage_entered_at, "
                 "cycle = EXCLUDED.cycle, score = EXCLUDED.score, "
                 "score_model = EXCLUDED.score_model, "
                 "owner = EXCLUDED.owner, channel = EXCLUDED.channel, "
                 "campaign = EXCLUDED.campaign, "
                 "captured_at = EXCLUDED.captured_at, "
                 "first_marketing_qualified_at = "
                 "EXCLUDED.first_marketing_qualified_at, "
                 "first_handed_off_at = EXCLUDED.first_handed_off_at, "
                 "first_sales_accepted_at = EXCLUDED.first_sales_accepted_at, "
                 "first_sales_qualified_at = "
                 "EXCLUDED.first_sales_qualified_at, "
                 "won_at = EXCLUDED.won_at, "
                 "won_amount_minor = EXCLUDED.won_amount_minor, "
                 "currency = EXCLUDED.currency, lost_at = EXCLUDED.lost_at, "
                 "disqualified_at = EXCLUDED.disqualified_at, "
                 "last_event_at = EXCLUDED.last_event_at, "
                 "last_event_id = EXCLUDED.last_event_id, "
                 "stage_entered_by = EXCLUDED.stage_entered_by, "
                 "visits = EXCLUDED.visits, updated_at = now()",
                 p->schema);
        if ((err = run(&f, sql, "writing leads", 0, NULL, NULL, NULL)))
            goto rollback;
    }
    if (b.visits.len) {
        snprintf(sql, sizeof(sql),
                 "INSERT INTO %s.stage_history (lead_id, visit, cycle, stage, "
                 "entered_at, exited_at, entered_by, exit_reason) "
                 "SELECT * FROM lf_stg_visits "
                 "ON CONFLICT (lead_id, visit) DO UPDATE SET "
                 "cycle = EXCLUDED.cycle, stage = EXCLUDED.stage, "
                 "entered_at = EXCLUDED.entered_at, "
                 "exited_at = EXCLUDED.exited_at, "
                 "entered_by = EXCLUDED.entered_by, "
                 "exit_reason = EXCLUDED.exit_reason",
                 p->schema);
        if ((err = run(&f, sql, "writing stage history", 0, NULL, NULL,
                       NULL)))
            goto rollback;
    }
    if (b.anomalies.len) {
        /* The state anomalies the table did not hold are the new ones. */
        snprintf(sql, sizeof(sql),
                 "WITH ins AS (INSERT INTO %s.anomalies (event_id, lead_id, "
                 "kind, reason) SELECT * FROM lf_stg_anomalies "
                 "ON CONFLICT DO NOTHING RETURNING kind) "
                 "SELECT count(*) FILTER (WHERE kind = 'state') FROM ins",
                 p->schema);
        if ((err = run(&f, sql, "writing anomalies", 0, NULL, NULL, &res)))
            goto rollback;
        f.st.anomalies = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
        res = NULL;
    }
    if (f.recomputed) {
        /* A recomputed lead's state anomalies are those just derived:
         * the stored ones it no longer has go (lf_stg_anomalies is empty
         * when the batch staged none). */
        snprintf(sql, sizeof(sql),
                 "DELETE FROM %s.anomalies a WHERE a.lead_id = "
                 "ANY($1::text[]) AND a.kind = 'state' AND NOT EXISTS "
                 "(SELECT 1 FROM lf_stg_anomalies s WHERE s.event_id = "
                 "a.event_id AND s.kind = a.kind AND s.reason = a.reason)",
                 p->schema);
        if ((err = run(&f, sql, "clearing resolved anomalies", 1,
                       f.recomputed, NULL, NULL)))
            goto rollback;
    }
    if (f.st.dead_letters) {
        snprintf(sql, sizeof(sql),
                 "INSERT INTO %s.dead_letters (topic, partition, \"offset\", "
                 "key, value, error) SELECT * FROM lf_stg_dead "
                 "ON CONFLICT (topic, partition, \"offset\") DO NOTHING",
                 p->schema);
        if ((err = run(&f, sql, "writing dead letters", 0, NULL, NULL,
                       NULL)))
            goto rollback;
    }
    if (p->group_id) {
        if ((err = check_continues(&f)))
            goto rollback;
        snprintf(sql, sizeof(sql),
                 "INSERT INTO %s.offsets (group_id, topic, partition, "
                 "next_offset) VALUES ($1, $2, $3, $4) "
                 "ON CONFLICT (group_id, topic, partition) DO UPDATE SET "
                 "next_offset = EXCLUDED.next_offset, updated_at = now()",
                 p->schema);
        for (size_t i = 0; i < p->off_count; i++) {
            char part[16], next[24];
            const char *params[4] = {p->group_id, p->topics[p->offs[i].topic],
                                     part, next};
            snprintf(part, sizeof(part), "%d", (int)p->offs[i].partition);
            snprintf(next, sizeof(next), "%lld", (long long)p->offs[i].next);
            res = PQexecParams(conn, sql, 4, NULL, params, NULL, NULL, 0);
            if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                err = fail(&f, res, "storing offsets");
                goto rollback;
            }
            PQclear(res);
            res = NULL;
        }
    }
    if ((err = run(&f, "COMMIT", "COMMIT", 0, NULL, NULL, NULL)))
        goto out; /* a failed COMMIT has already rolled back */

    /* Committed: account, hand the offsets back, empty the batch. */
    p->expect_new = direct;
    f.st.messages = p->count;
    f.st.batches = 1;
    p->stats.messages += f.st.messages;
    p->stats.events_new += f.st.events_new;
    p->stats.duplicates += f.st.duplicates;
    p->stats.conflicts += f.st.conflicts;
    p->stats.dead_letters += f.st.dead_letters;
    p->stats.anomalies += f.st.anomalies;
    p->stats.recomputed += f.st.recomputed;
    p->stats.batches++;
    for (int t = 0; t < LF_EV__COUNT; t++)
        p->stats.by_type[t] += f.st.by_type[t];
    if (committed) {
        *committed = rd_kafka_topic_partition_list_new((int)p->off_count);
        for (size_t i = 0; i < p->off_count; i++)
            rd_kafka_topic_partition_list_add(*committed,
                                              p->topics[p->offs[i].topic],
                                              p->offs[i].partition)
                ->offset = p->offs[i].next;
    }
    lf_projector_discard(p);
    goto out;

rollback:
    PQclear(res);
    res = NULL;
    if (PQstatus(conn) == CONNECTION_OK)
        PQclear(PQexec(conn, "ROLLBACK"));
out:
    /* The next batch may be a while (or flushed by another writer, with
     * this projector filling meanwhile): keep small buffers, not batch-
     * sized ones (with two writers, four projectors kept ~6 MiB). */
    if (p->copy.cap > BUF_KEEP)
        lf_buf_free(&p->copy);
    if (p->arr.cap > BUF_KEEP)
        lf_buf_free(&p->arr);
    PQclear(res);
    lf_buf_free(&b.leads);
    lf_buf_free(&b.visits);
    lf_buf_free(&b.anomalies);
    lf_buf_free(&b.leads_new);
    lf_buf_free(&b.visits_new);
    free(ev_idx);
    free(leads);
    free(f.recomputed);
    return err;
}

lf_err_t lf_projector_load_offsets(lf_projector_t *p, PGconn *conn,
                                   rd_kafka_topic_partition_list_t *parts,
                                   char *errstr, size_t errstr_size)
{
    flush_t f = {p, conn, errstr, errstr_size, {0}, NULL};
    PGresult *res = NULL;
    char sql[256];
    lf_err_t err;

    for (int i = 0; i < parts->cnt; i++)
        parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
    if (!p->group_id)
        return LF_OK;
    snprintf(sql, sizeof(sql),
             "SELECT topic, partition, next_offset FROM %s.offsets "
             "WHERE group_id = $1",
             p->schema);
    if ((err = run(&f, sql, "loading offsets", 1, p->group_id, NULL, &res)))
        return err;
    for (int r = 0; r < PQntuples(res); r++) {
        rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_find(
            parts, PQgetvalue(res, r, 0), atoi(PQgetvalue(res, r, 1)));
        if (tp)
            tp->offset = strtoll(PQgetvalue(res, r, 2), NULL, 10);
    }
    PQclear(res);
    return LF_OK;
}
