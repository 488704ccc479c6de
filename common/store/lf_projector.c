/* lf_projector.c: one batch, one transaction. The batch is staged with COPY
 * into temporary tables and merged with a few INSERT ... SELECT ... ON
 * CONFLICT statements; the funnel state machine runs here in C, per lead,
 * continuing from the stored lead row when the new events come after it
 * and recomputing the lead from its stored events when one arrives late. */
#include "lf_projector.h"
#include "lf_projector_int.h"

#include "lf_buf.h"
#include "lf_definition.h"
#include "lf_funnel.h"
#include "lf_identity.h"
#include "lf_json.h"
#include "lf_log.h"
#include "lf_pg.h"

#include <ctype.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One consumed message. */
typedef struct entry_s {
    bool dead;   /* undecodable: a dead letter */
    bool is_new; /* first store of this event_id (set during flush) */
    int topic;   /* index into p->topics */
    int32_t partition;
    int64_t offset;
    lf_event_t ev;      /* when !dead */
    const char *person; /* during derive: the lead it counts for (its
                           surviving lead), ev.lead_id or in f->pool */
    char *note;         /* dead: the error; event: a key anomaly or NULL */
    void *key, *value;  /* dead letters only: raw bytes, NULL if absent */
    size_t key_len, value_len;
    /* The ids an erasure in the flush under way replaced (lead_id,
     * into_lead_id; NULL: none), put back if the flush fails: its retry
     * must erase the person's stored rows, which are under them again
     * (restore_erased()). */
    char *was_lead, *was_into;
} entry_t;

typedef struct next_offset_s {
    int topic;
    int32_t partition;
    int64_t next;
    int64_t from; /* lf_projector_continue_from(), or LF_PROJECTOR_UNDECLARED */
} next_offset_t;

struct lf_projector_s {
    char *schema, *group_id;
    lf_codec_t *codec;          /* may own the registry client others borrow */
    const lf_definition_t *def; /* the funnel's rules; borrowed */
    char def_sha[65];           /* its sha256 in hex; "" until computed */
    const lf_pseudonym_t *ps;   /* the pseudonym key ring; borrowed, NULL */
    lf_projector_hook_t hook;   /* lf_projector_before_commit(), or NULL */
    void *hook_arg;
    char **topics;
    int topic_count;
    entry_t *entries;
    size_t count, cap;
    next_offset_t *offs;
    size_t off_count, off_cap;
    bool temp_ready;
    bool expect_new; /* the last batch committed was all new: no probe */
    bool settling;   /* lf_projector_settle(): wait for identity's locks */
    /* The batch's distinct lead ids (pointers into its entries), open
     * addressing, at most half full. */
    const char **leadset;
    size_t leadset_cap, leads;
    size_t key_locks; /* keys to lock besides the leads (list_batch()):
                         dead letters' and, with pseudonyms, events' */
    lf_projector_stats_t stats;
    /* A recompute reads its persons' stored events back in chunks of
     * about chunk_rows rows, sized by the rows per person of the chunk
     * before (recompute()). */
    size_t chunk_rows, rows_per_person;
    /* Reused between flushes. */
    lf_buf_t copy, arr, tmp;
    lf_funnel_out_t out;
};

#define ERRLEN   512
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
    if (!(p->def = lf_definition_default())) {
        lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
        lf_projector_destroy(p);
        return NULL;
    }
    return p;
}

void lf_projector_use_definition(lf_projector_t *p, const lf_definition_t *def)
{
    p->def = def ? def : lf_definition_default();
    p->def_sha[0] = '\0';
}

void lf_projector_use_pseudonyms(lf_projector_t *p, const lf_pseudonym_t *ps)
{
    p->ps = ps;
}

void lf_projector_limit_recompute(lf_projector_t *p, size_t rows)
{
    p->chunk_rows = rows;
}

static void entry_clear(entry_t *e)
{
    lf_event_clear(&e->ev);
    free(e->note);
    free(e->key);
    free(e->value);
    free(e->was_lead);
    free(e->was_into);
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
    p->key_locks = 0;
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
    return p->count >= batch_max ||
           p->leads + p->key_locks >= LF_PROJECTOR_MAX_LEADS;
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

    /* Made even without a registry: it checks contract.version, which a
     * reader does not use, but a typo in it is said, not ignored. */
    if ((err = lf_codec_from_conf(conf, &codec, errstr, errstr_size)))
        return err;
    if (!lf_registry_configured(conf)) {
        lf_codec_destroy(codec);
        return LF_OK;
    }
    lf_codec_destroy(p->codec);
    p->codec = codec;
    return LF_OK;
}

void lf_projector_before_commit(lf_projector_t *p, lf_projector_hook_t fn,
                                void *arg)
{
    p->hook = fn;
    p->hook_arg = arg;
}

void lf_projector_use_codec(lf_projector_t *p, lf_codec_t *codec)
{
    lf_codec_destroy(p->codec);
    p->codec = codec;
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

/* The note of an event under another key than its lead id. A key that
 * could be a lead id (1..128 bytes of UTF-8, no NUL) is quoted whole, so
 * an erasure of that id finds it (lf_identity.c); any other is only
 * measured: quoting a part could split a character, and PostgreSQL
 * refuses text that is not UTF-8. */
static void key_note(const char *k, size_t key_len, char *why, size_t size)
{
    if (key_len >= 1 && key_len <= 128 && !memchr(k, '\0', key_len) &&
        lf_utf8_valid(k, key_len))
        snprintf(why, size, "Kafka key \"%.*s\" differs from lead_id",
                 (int)key_len, k);
    else
        snprintf(why, size,
                 "Kafka key (%zu bytes, not a lead id) differs from lead_id",
                 key_len);
}

/* The key should be the lead id (it places the lead on a partition): an
 * event of entry @p e under another key (@p key NULL: none) is kept but
 * listed, its note the 'key' anomaly's reason. */
static lf_err_t note_key(lf_projector_t *p, entry_t *e, const void *key,
                         size_t key_len)
{
    char why[ERRLEN];

    if (!lead_add(p, e->ev.lead_id))
        return LF_ERR_NOMEM;
    if (!key)
        snprintf(why, sizeof(why),
                 "Kafka key missing (null), expected the lead_id");
    else if (key_len != strlen(e->ev.lead_id) ||
             memcmp(key, e->ev.lead_id, key_len))
        key_note(key, key_len, why, sizeof(why));
    else
        return LF_OK;
    /* The note quotes the key, which may be an erased lead's id:
     * erased_in() looks the key up too. */
    if (!(e->note = strdup(why)) ||
        (key && !(e->key = dup_bytes(key, key_len))))
        return LF_ERR_NOMEM;
    e->key_len = key ? key_len : 0;
    p->key_locks += key && p->ps; /* list_batch() locks it too */
    return LF_OK;
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
        return note_key(p, e, rkm->key, rkm->key_len);
    }
    e->dead = true;
    if (!(e->note = strdup(why)) ||
        (rkm->key && !(e->key = dup_bytes(rkm->key, rkm->key_len))) ||
        (rkm->payload && !(e->value = dup_bytes(rkm->payload, rkm->len))))
        return LF_ERR_NOMEM;
    e->key_len = rkm->key_len;
    e->value_len = rkm->len;
    p->key_locks += rkm->key && p->ps; /* list_batch() locks it */
    return LF_OK;
}

/* A new entry of the batch that takes @p ev's strings, or NULL. */
static entry_t *take_event(lf_projector_t *p, lf_event_t *ev, const char *topic,
                           int32_t partition, int64_t offset)
{
    entry_t *e = new_entry(p, topic, partition, offset);

    if (e) {
        e->ev = *ev;
        lf_event_init(ev);
    }
    return e;
}

lf_err_t lf_projector_add_event_keyed(lf_projector_t *p, lf_event_t *ev,
                                      const void *key, size_t key_len,
                                      const char *topic, int32_t partition,
                                      int64_t offset)
{
    entry_t *e = take_event(p, ev, topic, partition, offset);

    return e ? note_key(p, e, key, key_len) : LF_ERR_NOMEM;
}

lf_err_t lf_projector_add_event(lf_projector_t *p, lf_event_t *ev,
                                const char *topic, int32_t partition,
                                int64_t offset)
{
    entry_t *e = take_event(p, ev, topic, partition, offset);

    return e && lead_add(p, e->ev.lead_id) ? LF_OK : LF_ERR_NOMEM;
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

/* ---- the tables' columns ---------------------------------------------- */

/* How a funnel.leads column travels: write_lead() writes the field of
 * lead_row_t at `off` into the binary COPY row, load_lead() reads it back
 * from the text result of load_leads()'s SELECT. The other tables' rows are
 * written by their own writer, next to their description. */
typedef enum col_kind_e {
    COL_BY_WRITER = 0, /* written by the table's own row writer */
    COL_TEXT,          /* char *, NULL is SQL NULL */
    COL_STAGE,         /* lf_stage_t, as its name */
    COL_INT4,          /* int32_t */
    COL_INT8,          /* int64_t */
    COL_TS             /* int64_t ms since the epoch, LF_NO_TIME is NULL */
} col_kind_t;

/* One column: its name, its SQL type in the staging table, and for
 * funnel.leads how it is written and read. */
typedef struct col_s {
    const char *name;
    const char *type;
    col_kind_t kind;
    size_t off;    /* the field in lead_row_t */
    ptrdiff_t has; /* a number that may be NULL: its bool in lead_row_t;
                      NEVER_NULL otherwise */
} col_t;

/* A table as the projector writes it: its columns in the order of the
 * COPY rows, the first nkey of them its ON CONFLICT key. */
typedef struct table_s {
    const col_t *cols;
    size_t n, nkey;
} table_t;

/* A funnel.leads row: the state machine's lead and what the projector
 * derives beside it. account_id is the account of the latest event applied
 * that carries one: it points into that event (or into @c owned, the
 * stored row's value), so it is valid while the events of the derive are;
 * lead_row_clear() frees only @c owned. */
typedef struct lead_row_s {
    lf_lead_t lead;
    char *account_id;
    char *owned;
} lead_row_t;

static void lead_row_clear(lead_row_t *row)
{
    lf_lead_clear(&row->lead);
    free(row->owned);
    memset(row, 0, sizeof(*row));
}

#define NEVER_NULL  ((ptrdiff_t)-1)
#define LEAD(field) offsetof(lead_row_t, lead.field), NEVER_NULL
#define ROW(field)  offsetof(lead_row_t, field), NEVER_NULL
#define LEAD_OR_NULL(field, has)                                               \
    offsetof(lead_row_t, lead.field), (ptrdiff_t)offsetof(lead_row_t, lead.has)
#define FIRST_AT(st)                                                           \
    offsetof(lead_row_t, lead.first_at) + (st) * sizeof(int64_t), NEVER_NULL
#define LAST_AT(st)                                                            \
    offsetof(lead_row_t, lead.last_at) + (st) * sizeof(int64_t), NEVER_NULL
#define NCOLS(cols) (sizeof(cols) / sizeof(*(cols)))

/* funnel.leads as the projector writes it (all but updated_at). A new
 * column is one row here and its field in lead_row_t. lead_id comes first:
 * load_lead() starts the lead from it. */
/* clang-format off */
static const col_t lead_cols[] = {
    {"lead_id",                      "text",        COL_TEXT,  LEAD(lead_id)},
    {"stage",                        "text",        COL_STAGE, LEAD(stage)},
    {"stage_entered_at",             "timestamptz", COL_TS,    LEAD(stage_entered_at)},
    {"cycle",                        "int",         COL_INT4,  LEAD(cycle)},
    {"score",                        "int",         COL_INT4,  LEAD_OR_NULL(score, has_score)},
    {"score_model",                  "text",        COL_TEXT,  LEAD(score_model)},
    {"owner",                        "text",        COL_TEXT,  LEAD(owner)},
    {"channel",                      "text",        COL_TEXT,  LEAD(channel)},
    {"campaign",                     "text",        COL_TEXT,  LEAD(campaign)},
    {"captured_at",                  "timestamptz", COL_TS,    LEAD(captured_at)},
    {"first_marketing_qualified_at", "timestamptz", COL_TS,    FIRST_AT(LF_ST_MARKETING_QUALIFIED)},
    {"first_handed_off_at",          "timestamptz", COL_TS,    FIRST_AT(LF_ST_HANDED_OFF)},
    {"first_sales_accepted_at",      "timestamptz", COL_TS,    FIRST_AT(LF_ST_SALES_ACCEPTED)},
    {"first_sales_qualified_at",     "timestamptz", COL_TS,    FIRST_AT(LF_ST_SALES_QUALIFIED)},
    {"won_at",                       "timestamptz", COL_TS,    LAST_AT(LF_ST_WON)},
    {"won_amount_minor",             "bigint",      COL_INT8,  LEAD_OR_NULL(won_amount_minor, has_won_amount)},
    {"currency",                     "text",        COL_TEXT,  LEAD(currency)},
    {"lost_at",                      "timestamptz", COL_TS,    LAST_AT(LF_ST_LOST)},
    {"disqualified_at",              "timestamptz", COL_TS,    LAST_AT(LF_ST_DISQUALIFIED)},
    {"last_event_at",                "timestamptz", COL_TS,    LEAD(last_event_at)},
    {"last_event_id",                "text",        COL_TEXT,  LEAD(last_event_id)},
    {"stage_entered_by",             "text",        COL_TEXT,  LEAD(stage_entered_by)},
    {"visits",                       "int",         COL_INT4,  LEAD(visits)},
    {"opportunity_id",               "text",        COL_TEXT,  LEAD(opportunity_id)},
    {"opportunity_amount_minor",     "bigint",      COL_INT8,  LEAD_OR_NULL(opportunity_amount_minor, has_opportunity_amount)},
    {"opportunity_currency",         "text",        COL_TEXT,  LEAD(opportunity_currency)},
    {"account_id",                   "text",        COL_TEXT,  ROW(account_id)},
};

/* The other tables: written by their own row writer, named here. */
#define BY_WRITER(name, type) {name, type, COL_BY_WRITER, 0, NEVER_NULL}

/* funnel.stage_history, written by write_visits(). */
static const col_t visit_cols[] = {
    BY_WRITER("lead_id",     "text"),
    BY_WRITER("visit",       "int"),
    BY_WRITER("cycle",       "int"),
    BY_WRITER("stage",       "text"),
    BY_WRITER("entered_at",  "timestamptz"),
    BY_WRITER("exited_at",   "timestamptz"),
    BY_WRITER("entered_by",  "text"),
    BY_WRITER("exit_reason", "text"),
};

/* funnel.anomalies, written by put_anomaly(). */
static const col_t anomaly_cols[] = {
    BY_WRITER("event_id", "text"),
    BY_WRITER("lead_id",  "text"),
    BY_WRITER("kind",     "text"),
    BY_WRITER("reason",   "text"),
};

/* funnel.events, written by copy_events() (the staging table puts the
 * batch position, seq, first). */
static const col_t event_cols[] = {
    BY_WRITER("event_id",    "text"),
    BY_WRITER("lead_id",     "text"),
    BY_WRITER("type",        "text"),
    BY_WRITER("occurred_at", "timestamptz"),
    BY_WRITER("source",      "text"),
    BY_WRITER("actor",       "text"),
    BY_WRITER("account_id",  "text"),
    BY_WRITER("payload",     "jsonb"),
    BY_WRITER("extra",       "jsonb"),
    BY_WRITER("topic",       "text"),
    BY_WRITER("partition",   "int"),
    BY_WRITER("\"offset\"",  "bigint"),
};

/* funnel.dead_letters, written by stage_dead_and_keys(). */
static const col_t dead_cols[] = {
    BY_WRITER("topic",      "text"),
    BY_WRITER("partition",  "int"),
    BY_WRITER("\"offset\"", "bigint"),
    BY_WRITER("key",        "bytea"),
    BY_WRITER("value",      "bytea"),
    BY_WRITER("error",      "text"),
};
/* clang-format on */

static const table_t leads_table = {lead_cols, NCOLS(lead_cols), 1};
static const table_t visits_table = {visit_cols, NCOLS(visit_cols), 2};
static const table_t anomalies_table = {anomaly_cols, NCOLS(anomaly_cols), 0};
static const table_t events_table = {event_cols, NCOLS(event_cols), 1};
static const table_t dead_table = {dead_cols, NCOLS(dead_cols), 0};

/* A statement being written into a fixed buffer; `bad` when it did not
 * fit or its template named an unknown placeholder. */
typedef struct sqlw_s {
    char *s;
    size_t size, len;
    bool bad;
} sqlw_t;

static void sqlw_put(sqlw_t *w, const char *s, size_t n)
{
    if (w->bad || w->len + n >= w->size) {
        w->bad = true;
        return;
    }
    memcpy(w->s + w->len, s, n);
    w->len += n;
    w->s[w->len] = '\0';
}

static void sqlw_puts(sqlw_t *w, const char *s)
{
    sqlw_put(w, s, strlen(s));
}

/* One column as the list @p what ("cols", "defs", "set", "select") has
 * it. @returns false for another @p what. */
static bool sqlw_col(sqlw_t *w, const col_t *c, const char *what)
{
    if (!strcmp(what, "select") && c->kind == COL_TS) {
        sqlw_puts(w, "(extract(epoch FROM ");
        sqlw_puts(w, c->name);
        sqlw_puts(w, ") * 1000)::int8");
        return true;
    }
    sqlw_puts(w, c->name);
    if (!strcmp(what, "defs")) {
        sqlw_puts(w, " ");
        sqlw_puts(w, c->type);
    } else if (!strcmp(what, "set")) {
        sqlw_puts(w, " = EXCLUDED.");
        sqlw_puts(w, c->name);
    }
    return !strcmp(what, "defs") || !strcmp(what, "set") ||
           !strcmp(what, "cols") || !strcmp(what, "select");
}

/* The list of table @p t's columns that placeholder @p what names; {set}
 * leaves out the conflict key. */
static void sqlw_list(sqlw_t *w, const table_t *t, const char *what)
{
    size_t from;

    if (!t) {
        w->bad = true;
        return;
    }
    from = !strcmp(what, "set") ? t->nkey : 0;
    for (size_t i = from; i < t->n; i++) {
        if (i > from)
            sqlw_puts(w, ", ");
        if (!sqlw_col(w, &t->cols[i], what))
            w->bad = true;
    }
}

#define SQL_MAX 4096

/* Write @p tmpl into @p out (SQL_MAX bytes) with its placeholders filled:
 * {schema} the projector's schema; for table @p t (NULL when the template
 * names none of these) {cols} its column names, {defs} names and SQL
 * types, {set} "name = EXCLUDED.name" for the columns after its key,
 * {select} its names with timestamps as ms since the epoch (int8). The
 * schema name was checked at lf_projector_new(), so it can be spliced.
 * Templates hold no other braces. @returns @p out. */
static const char *sql_text(const lf_projector_t *p, char *out,
                            const table_t *t, const char *tmpl)
{
    sqlw_t w = {out, SQL_MAX, 0, false};

    out[0] = '\0';
    while (*tmpl) {
        const char *open = strchr(tmpl, '{');
        const char *close = open ? strchr(open, '}') : NULL;
        char what[16];

        if (!close || (size_t)(close - open) >= sizeof(what)) {
            sqlw_puts(&w, tmpl);
            break;
        }
        sqlw_put(&w, tmpl, (size_t)(open - tmpl));
        snprintf(what, sizeof(what), "%.*s", (int)(close - open - 1), open + 1);
        if (!strcmp(what, "schema"))
            sqlw_puts(&w, p->schema);
        else
            sqlw_list(&w, t, what);
        tmpl = close + 1;
    }
    /* Every template here is fine: a bad one is a programming error,
     * reported by the server as the statement's failure. */
    if (w.bad)
        snprintf(out, SQL_MAX,
                 "DO $$BEGIN RAISE 'leadflow: a statement "
                 "template with an unknown placeholder or "
                 "over SQL_MAX bytes'; END$$");
    return out;
}

/* ---- flush helpers --------------------------------------------------- */

/* The COPY buffers: rows to upsert through the staging tables, and rows
 * known not to exist yet (leads_new, visits_new, anomalies_new), which
 * COPY writes straight into leads, stage_history and anomalies at a
 * fraction of an upsert's cost. Under the batch's lead locks nothing else
 * adds rows for these leads; a state anomaly is keyed by its event, and
 * anomalies_new holds only those of events this batch stored first. */
typedef struct stage_bufs_s {
    lf_buf_t leads, visits, anomalies, leads_new, visits_new, anomalies_new;
    size_t nanomalies_new; /* rows in anomalies_new */
} stage_bufs_t;

/* One flush: what its steps hand on to each other. */
typedef struct flush_s {
    lf_projector_t *p;
    PGconn *conn;
    char *errstr;
    size_t errstr_size;
    lf_projector_stats_t st; /* this batch, added to p->stats on commit */
    char *recomputed;        /* text[] of the leads recomputed in this batch */
    size_t *ev_idx;          /* the events in event_id order; after derive, the
                                new ones by lead */
    size_t nev;              /* events in ev_idx before derive */
    size_t nstored;          /* events this batch stored */
    bool direct;             /* stored with one COPY, all of them new */
    const char **leads;      /* the batch's leads, each once */
    size_t nleads;
    stage_bufs_t b;
    lf_ids_t locks;      /* the names of the lead locks taken */
    lf_ids_t forced;     /* persons (surviving leads) to recompute in full */
    lf_ids_t cleared;    /* leads no longer a person: their anomalies go */
    lf_ids_t cleared_of; /* the persons those leads count for now */
    lf_ids_t pool;       /* strings entries' person points to */
    lf_ids_t new_ids;    /* the event_ids stored new, sorted */
} flush_t;

/* Record a failed statement: temporary if the connection or server is in
 * trouble, a data error otherwise. */
static lf_err_t fail(flush_t *f, PGresult *res, const char *what)
{
    return lf_pg_fail(f->conn, res, what, f->errstr, f->errstr_size);
}

static lf_err_t nomem(flush_t *f)
{
    return lf_seterr(LF_ERR_NOMEM, f->errstr, f->errstr_size, "out of memory");
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
        return nomem(f);
    if (lf_pg_copy(f->conn, sql, data, f->errstr, f->errstr_size))
        return copy_failed(f);
    return LF_OK;
}

/* The temporary staging tables, once per connection. They are emptied at
 * every commit or rollback. */
static lf_err_t ensure_temp(flush_t *f)
{
    static const struct {
        const char *tmpl;
        const table_t *t;
    } temp[] = {
        {"CREATE TEMP TABLE IF NOT EXISTS lf_stg_events (seq int, {defs})"
         " ON COMMIT DELETE ROWS",
         &events_table},
        {"CREATE TEMP TABLE IF NOT EXISTS lf_stg_leads ({defs})"
         " ON COMMIT DELETE ROWS",
         &leads_table},
        {"CREATE TEMP TABLE IF NOT EXISTS lf_stg_visits ({defs})"
         " ON COMMIT DELETE ROWS",
         &visits_table},
        {"CREATE TEMP TABLE IF NOT EXISTS lf_stg_anomalies ({defs})"
         " ON COMMIT DELETE ROWS",
         &anomalies_table},
        {"CREATE TEMP TABLE IF NOT EXISTS lf_stg_dead ({defs})"
         " ON COMMIT DELETE ROWS",
         &dead_table},
    };
    char sql[SQL_MAX];
    lf_err_t err = LF_OK;

    if (f->p->temp_ready)
        return LF_OK;
    for (size_t i = 0; !err && i < sizeof(temp) / sizeof(*temp); i++)
        err = run(f, sql_text(f->p, sql, temp[i].t, temp[i].tmpl),
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
    if ((c = strcmp(sort_base[x->i].person, sort_base[y->i].person)))
        return c;
    return lf_event_order(ex->occurred_at, ex->event_id, ey->occurred_at,
                          ey->event_id);
}

/* Sort @p idx[0..n) by event_id (then index), or by person (set) then
 * event order. @returns false when out of memory (idx unchanged). */
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
        k[j].k = prefix8(lead ? p->entries[idx[j]].person : ev->event_id);
    }
    sort_base = p->entries;
    qsort(k, n, sizeof(*k), lead ? by_lead_then_order : by_event_id);
    for (size_t j = 0; j < n; j++)
        idx[j] = k[j].i;
    free(k);
    return true;
}

/* ---- rows ------------------------------------------------------------- */

/* Read column @p i of row @p r (lead_select's text) into the lead's field
 * that @p c describes. @returns LF_OK or LF_ERR_NOMEM. */
static lf_err_t load_lead_col(const PGresult *res, int r, int i, const col_t *c,
                              lead_row_t *l)
{
    char *at = (char *)l + c->off;
    const char *v = PQgetvalue(res, r, i);
    bool null = PQgetisnull(res, r, i);

    if (c->has != NEVER_NULL)
        *(bool *)((char *)l + c->has) = !null;
    switch (c->kind) {
    case COL_TEXT:
        if (!null && !(*(char **)at = strdup(v)))
            return LF_ERR_NOMEM;
        return LF_OK;
    case COL_STAGE:
        *(lf_stage_t *)at = lf_stage_parse(v);
        return LF_OK;
    case COL_INT4:
        *(int32_t *)at = (int32_t)atoi(v);
        return LF_OK;
    case COL_INT8:
        *(int64_t *)at = strtoll(v, NULL, 10);
        return LF_OK;
    case COL_TS:
        *(int64_t *)at = null ? LF_NO_TIME : strtoll(v, NULL, 10);
        return LF_OK;
    case COL_BY_WRITER:
        break;
    }
    return LF_ERR_INVALID;
}

/* Row @p r of a result whose columns are {select} of leads_table into
 * @p l (cleared with lead_row_clear() by the caller, also on failure). */
static lf_err_t load_lead(const PGresult *res, int r, lead_row_t *l)
{
    lf_err_t err = LF_OK;

    if (lf_lead_init(&l->lead, PQgetvalue(res, r, 0)))
        return LF_ERR_NOMEM;
    for (size_t i = 1; !err && i < leads_table.n; i++)
        err = load_lead_col(res, r, (int)i, &lead_cols[i], l);
    l->owned = l->account_id; /* the row's own copy, freed with it */
    l->lead.first_at[LF_ST_CAPTURED] = l->lead.captured_at;
    return err ? LF_ERR_NOMEM : LF_OK;
}

/* Append the lead's field that @p c describes to a COPY row. */
static lf_err_t write_lead_col(lf_buf_t *o, const col_t *c, const lead_row_t *l)
{
    const char *at = (const char *)l + c->off;

    if (c->has != NEVER_NULL && !*(const bool *)((const char *)l + c->has))
        return lf_pg_bin_null(o);
    switch (c->kind) {
    case COL_TEXT:
        return lf_pg_bin_text(o, *(char *const *)at);
    case COL_STAGE:
        return lf_pg_bin_text(o, lf_stage_name(*(const lf_stage_t *)at));
    case COL_INT4:
        return lf_pg_bin_int4(o, *(const int32_t *)at);
    case COL_INT8:
        return lf_pg_bin_int8(o, *(const int64_t *)at);
    case COL_TS:
        return lf_pg_bin_ts(o, *(const int64_t *)at);
    case COL_BY_WRITER:
        break;
    }
    return LF_ERR_INVALID;
}

static lf_err_t write_lead(lf_buf_t *o, const lead_row_t *l)
{
    lf_err_t e = lf_pg_bin_row(o, (int)leads_table.n);

    for (size_t i = 0; !e && i < leads_table.n; i++)
        e = write_lead_col(o, &lead_cols[i], l);
    return e;
}

/* A row of anomalies_table. */
static lf_err_t put_anomaly(lf_buf_t *o, const char *event_id,
                            const char *lead_id, const char *kind,
                            const char *reason)
{
    return lf_pg_bin_row(o, (int)anomalies_table.n) ||
                   lf_pg_bin_text(o, event_id) || lf_pg_bin_text(o, lead_id) ||
                   lf_pg_bin_text(o, kind) || lf_pg_bin_text(o, reason)
               ? LF_ERR_NOMEM
               : LF_OK;
}

/* The rows of visits_table from visit number @p from on. @p stored_visits:
 * the visits the lead has in stage_history (visits are numbered from 1, so
 * those after it are new: only the one that was current can be
 * updated). */
static lf_err_t write_visits(stage_bufs_t *b, const lf_lead_t *l,
                             const lf_funnel_out_t *out, int32_t stored_visits,
                             int32_t from)
{
    lf_err_t e = LF_OK;

    for (size_t i = 0; i < out->visit_count && !e; i++) {
        const lf_visit_t *v = &out->visits[i];
        lf_buf_t *vb = v->visit > stored_visits ? &b->visits_new : &b->visits;
        /* A visit opened and closed in this batch appears twice: the
         * later row is the truth (ON CONFLICT cannot touch a row twice). */
        if (i + 1 < out->visit_count && out->visits[i + 1].visit == v->visit)
            continue;
        if (v->visit < from)
            continue;
        e = lf_pg_bin_row(vb, (int)visits_table.n) ||
            lf_pg_bin_text(vb, l->lead_id) || lf_pg_bin_int4(vb, v->visit) ||
            lf_pg_bin_int4(vb, v->cycle) ||
            lf_pg_bin_text(vb, lf_stage_name(v->stage)) ||
            lf_pg_bin_ts(vb, v->entered_at) || lf_pg_bin_ts(vb, v->exited_at) ||
            lf_pg_bin_text(vb, v->entered_by) ||
            lf_pg_bin_text(vb, v->exit_reason);
    }
    return e ? LF_ERR_NOMEM : LF_OK;
}

/* Append a lead's row, its visits and anomalies to the COPY buffers.
 * @p has_row: the lead may have a row in leads. */
static lf_err_t write_lead_out(stage_bufs_t *b, const lead_row_t *row,
                               const lf_funnel_out_t *out, bool has_row,
                               int32_t stored_visits)
{
    const lf_lead_t *l = &row->lead;
    lf_err_t e = write_visits(b, l, out, stored_visits, 0);

    for (size_t i = 0; i < out->anomaly_count && !e; i++)
        e = put_anomaly(&b->anomalies_new, out->anomalies[i].event_id,
                        l->lead_id, "state", out->anomalies[i].reason);
    b->nanomalies_new += out->anomaly_count;
    if (e || l->stage == LF_ST_NONE)
        return e ? LF_ERR_NOMEM : LF_OK;
    return write_lead(has_row ? &b->leads : &b->leads_new, row) ? LF_ERR_NOMEM
                                                                : LF_OK;
}

/* Apply events[0..n) in order to the lead and stage the result; the
 * latest of them that carries an account_id gives the lead its account
 * (the row keeps its own when none does). Identity events never reach
 * here (new_events_by_lead(), read_stored_events()). @p has_row: the lead
 * may have a row in leads (see write_lead_out()); its stage_history rows
 * are those numbered up to lead.visits. */
static lf_err_t apply_events(lf_projector_t *p, lead_row_t *row,
                             lf_event_t *const *events, size_t n)
{
    lf_funnel_out_reset(&p->out);
    for (size_t i = 0; i < n; i++) {
        if (lf_funnel_apply_def(p->def, &row->lead, events[i], &p->out))
            return LF_ERR_NOMEM;
        if (events[i]->account_id)
            row->account_id = events[i]->account_id;
    }
    return LF_OK;
}

static lf_err_t project_lead(lf_projector_t *p, stage_bufs_t *b,
                             lead_row_t *row, lf_event_t *const *events,
                             size_t n, bool has_row)
{
    int32_t stored_visits = row->lead.visits;
    lf_err_t err = apply_events(p, row, events, n);

    return err ? err : write_lead_out(b, row, &p->out, has_row, stored_visits);
}

/* ---- storing events --------------------------------------------------- */

/* The payload column of @p ev into @p out: the fields of its type as the
 * JSON mapping writes them, and the payload fields a newer writer sent
 * (payload_extra, a JSON object's text) in the same object, so that the
 * column keeps every payload field whatever the writer's version. A key in
 * both is written twice; jsonb keeps the last, and they agree anyway.
 * @returns LF_OK or LF_ERR_NOMEM. */
static lf_err_t format_payload(const lf_event_t *ev, lf_buf_t *out)
{
    const char *x = ev->payload_extra, *open, *close, *in;

    if (lf_json_format_payload(ev, out))
        return LF_ERR_NOMEM;
    if (!x || !(open = strchr(x, '{')) || !(close = strrchr(x, '}')) ||
        close < open)
        return LF_OK;
    for (in = open + 1; in < close && isspace((unsigned char)*in); in++)
        ;
    if (in == close || !out->len || out->data[out->len - 1] != '}')
        return LF_OK; /* an empty object: nothing to add */
    out->len--;       /* reopen the object */
    if ((out->len > 1 && lf_buf_append(out, ",", 1)) ||
        lf_buf_append(out, in, (size_t)(close - in)) ||
        lf_buf_append(out, "}", 1))
        return LF_ERR_NOMEM;
    return LF_OK;
}

/* COPY the events (the columns of events_table, after the batch position,
 * seq, when @p seq) with @p sql, sent while they are formatted, a slice of
 * COPY_STREAM bytes at a time: the server stores one slice while the next
 * is formatted, and the batch's rows are never all in memory (4 MiB per
 * writer for 10,000 events). @returns LF_OK; LF_ERR_NOMEM; LF_ERR_PG when
 * the server refused them, LF_ERR_TEMPORARY when the connection is gone
 * (both leave the transaction failed). */
#define COPY_STREAM (64 * 1024)

static lf_err_t copy_events(flush_t *f, const char *sql, bool seq)
{
    lf_projector_t *p = f->p;
    lf_buf_t *c = &p->copy;
    size_t nev = f->nev;
    int ncols = (int)events_table.n + (seq ? 1 : 0);
    lf_err_t err = LF_OK;

    if (!nev)
        return LF_OK;
    if (lf_pg_copy_begin(f->conn, sql, f->errstr, f->errstr_size))
        return copy_failed(f);
    lf_buf_reset(c);
    for (size_t k = 0; !err && k < nev; k++) {
        size_t i = f->ev_idx[k];
        entry_t *e = &p->entries[i];
        lf_buf_reset(&p->tmp);
        if (format_payload(&e->ev, &p->tmp) ||
            (k ? lf_pg_bin_tuple : lf_pg_bin_row)(c, ncols) ||
            (seq && lf_pg_bin_int4(c, (int32_t)i)) ||
            lf_pg_bin_text(c, e->ev.event_id) ||
            lf_pg_bin_text(c, e->ev.lead_id) ||
            lf_pg_bin_text(c, lf_event_type_name(e->ev.type)) ||
            lf_pg_bin_ts(c, e->ev.occurred_at) ||
            lf_pg_bin_text(c, e->ev.source) || lf_pg_bin_text(c, e->ev.actor) ||
            lf_pg_bin_text(c, e->ev.account_id) ||
            lf_pg_bin_jsonb(c, p->tmp.data, p->tmp.len) ||
            (e->ev.extra ? lf_pg_bin_jsonb(c, e->ev.extra, strlen(e->ev.extra))
                         : lf_pg_bin_null(c)) ||
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
        return nomem(f);
    return copy_failed(f);
}

/* Is an event_id of the batch stored already? @returns LF_OK with *stored
 * set, or the probe's error. */
static lf_err_t probe_events(flush_t *f, bool *stored)
{
    lf_projector_t *p = f->p;
    const char **ids = malloc(f->nev * sizeof(*ids));
    PGresult *res = NULL;
    char sql[SQL_MAX];
    lf_err_t err;

    if (!ids)
        return nomem(f);
    for (size_t k = 0; k < f->nev; k++)
        ids[k] = p->entries[f->ev_idx[k]].ev.event_id;
    lf_buf_reset(&p->arr);
    err = lf_pg_text_array(&p->arr, ids, f->nev) ? nomem(f) : LF_OK;
    free(ids);
    if (err)
        return err;
    sql_text(p, sql, NULL,
             "SELECT 1 FROM {schema}.events WHERE event_id = ANY($1::text[]) "
             "LIMIT 1");
    if ((err = run(f, sql, "probing events", 1, p->arr.data, NULL, &res)))
        return err;
    *stored = PQntuples(res) > 0;
    PQclear(res);
    return LF_OK;
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
 * f->direct tells whether the events are stored (all of them new).
 * @returns LF_OK, or an error when the transaction is unusable. */
static lf_err_t store_events_direct(flush_t *f)
{
    lf_projector_t *p = f->p;
    char sql[SQL_MAX];
    bool stored = false;
    lf_err_t err;

    f->direct = false;
    for (size_t k = 1; k < f->nev; k++)
        if (!strcmp(p->entries[f->ev_idx[k - 1]].ev.event_id,
                    p->entries[f->ev_idx[k]].ev.event_id))
            return LF_OK; /* a duplicate within the batch */
    if (!p->expect_new && ((err = probe_events(f, &stored)) || stored))
        return err; /* a replay or a duplicate: the staged path */
    if ((err = run(f, "SAVEPOINT lf_direct", "storing events", 0, NULL, NULL,
                   NULL)))
        return err;
    sql_text(p, sql, &events_table,
             "COPY {schema}.events ({cols}) FROM STDIN (FORMAT binary)");
    if ((err = copy_events(f, sql, false))) {
        if (err != LF_ERR_NOMEM)
            err = run(f, "ROLLBACK TO SAVEPOINT lf_direct", "storing events", 0,
                      NULL, NULL, NULL);
        return err;
    }
    for (size_t k = 0; k < f->nev; k++)
        p->entries[f->ev_idx[k]].is_new = true;
    f->direct = true;
    return LF_OK;
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

/* Step: store the batch's events, each event_id once (the first message
 * with it wins), and mark which of them are new. */
static lf_err_t store_events(flush_t *f)
{
    lf_projector_t *p = f->p;
    PGresult *res = NULL;
    char sql[SQL_MAX];
    lf_err_t err;

    if (!f->nev)
        return LF_OK;
    if ((err = store_events_direct(f)) || f->direct) {
        f->nstored = err ? 0 : f->nev;
        return err;
    }
    sql_text(p, sql, &events_table,
             "COPY lf_stg_events (seq, {cols}) FROM STDIN (FORMAT binary)");
    if ((err = copy_events(f, sql, true)))
        return err;
    sql_text(p, sql, &events_table,
             "INSERT INTO {schema}.events ({cols}) "
             "SELECT DISTINCT ON (event_id) {cols} FROM lf_stg_events "
             "ORDER BY event_id, seq "
             "ON CONFLICT (event_id) DO NOTHING RETURNING event_id");
    if ((err = run(f, sql, "storing events", 0, NULL, NULL, &res)))
        return err;
    f->nstored = (size_t)PQntuples(res);
    mark_new(p, f->ev_idx, f->nev, res);
    PQclear(res);
    return LF_OK;
}

static lf_err_t lock_more(flush_t *f, char *const *ids, size_t n);
static const char *known_keys_sql(void);
/* How known_keys_sql() begins: what follows are its WHEN cases, which
 * record_conflicts() puts after its own "(CASE e.type ". */
#define KNOWN_CASE "(CASE type "
static lf_err_t query_ids(flush_t *f, const char *tmpl, const char *what,
                          const lf_ids_t *in, lf_ids_t *out);

/* Step: the same event_id with other content: the first stays, the later
 * message is listed (once, however often it is replayed), under the
 * person of the event that stands (the later message may name another
 * lead; only the stored event's lead is known again when a merge moves
 * it, lf_identity_write_merges()). When every staged row was stored just
 * now, each joins only itself: skip the join, the costliest statement of
 * a clean batch. */
static lf_err_t record_conflicts(flush_t *f)
{
    PGresult *res = NULL;
    lf_ids_t others = {0};
    char tmpl[SQL_MAX], sql[SQL_MAX];
    lf_err_t err;

    if (f->nstored >= f->nev)
        return LF_OK;
    /* A message reusing another lead's event_id: its anomaly goes under
     * that lead's person, so that lead is locked first (an erasure or a
     * merge of it on another writer must see the row, or wait for it). */
    err = query_ids(f,
                    "SELECT DISTINCT e.lead_id FROM lf_stg_events s JOIN "
                    "{schema}.events e USING (event_id) WHERE e.lead_id <> "
                    "s.lead_id",
                    "finding conflicting leads", NULL, &others);
    if (!err && others.n)
        err = lock_more(f, others.v, others.n);
    lf_ids_free(&others);
    if (err)
        return err;
    /* A copy that differs only in what an erasure removes says so: the
     * erasure deletes its anomaly (erase_steps in lf_identity.c), as the
     * copy of an erased person's event, erased on the way in, is none. */
    if (!known_keys_sql())
        return nomem(f);
    sql_text(
        f->p, tmpl, &anomalies_table,
        "INSERT INTO {schema}.anomalies ({cols}) "
        "SELECT s.event_id, coalesce((SELECT m.surviving_lead_id FROM "
        "{schema}.merges AS m WHERE m.lead_id = e.lead_id), e.lead_id), "
        "'conflict', "
        "format('event_id reused with different content%%s at %%s "
        "partition %%s offset %%s', CASE WHEN (e.lead_id, e.type, "
        "e.occurred_at, e.source, e.actor, e.account_id) IS NOT "
        "DISTINCT FROM (s.lead_id, s.type, s.occurred_at, s.source, "
        "s.actor, s.account_id) AND (SELECT (x.ep - ARRAY(SELECT "
        "jsonb_object_keys(x.ep - x.k))) - x.pk IS NOT DISTINCT FROM "
        "(x.sp - ARRAY(SELECT jsonb_object_keys(x.sp - x.k))) - x.pk "
        "FROM (SELECT e.payload, s.payload, (CASE e.type %s, "
        "ARRAY['attributes', 'note'] || CASE WHEN e.type IN ('lost', "
        "'disqualified', 'voided') THEN ARRAY['reason'] ELSE "
        "ARRAY[]::text[] END) AS x(ep, sp, k, pk)) THEN '" LF_CONFLICT_ERASABLE
        "' ELSE '' END, s.topic, s.partition, s.\"offset\") "
        "FROM lf_stg_events s JOIN {schema}.events e USING (event_id) "
        "WHERE (e.topic, e.partition, e.\"offset\") IS DISTINCT FROM "
        "(s.topic, s.partition, s.\"offset\") AND "
        "(e.lead_id, e.type, e.occurred_at, e.source, e.actor, "
        "e.account_id, e.payload, e.extra) IS DISTINCT FROM (s.lead_id, "
        "s.type, s.occurred_at, s.source, s.actor, s.account_id, "
        "s.payload, s.extra) "
        "ON CONFLICT DO NOTHING");
    if (snprintf(sql, sizeof(sql), tmpl,
                 known_keys_sql() + strlen(KNOWN_CASE)) >= (int)sizeof(sql))
        return lf_seterr(LF_ERR_PG, f->errstr, f->errstr_size,
                         "checking conflicts: statement too long");
    if ((err = run(f, sql, "checking conflicts", 0, NULL, NULL, &res)))
        return err;
    f->st.conflicts = strtoull(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return LF_OK;
}

/* ---- stored events read back ----------------------------------------- */

/* An event of type @p t with every payload field set (to static strings,
 * never freed), for learning which keys the JSON mapping writes. */
static void full_event(lf_event_t *ev, lf_event_type_t t, lf_attr_t *attr)
{
    static char x[] = "x";

    lf_event_init(ev);
    ev->type = t;
    switch (t) {
    case LF_EV_CAPTURED:
        ev->u.captured.channel = ev->u.captured.campaign = x;
        ev->u.captured.attrs = attr;
        ev->u.captured.attr_count = 1;
        break;
    case LF_EV_SCORED:
        ev->u.scored.model = x;
        ev->u.scored.score = ev->u.scored.threshold = 1;
        break;
    case LF_EV_HANDED_OFF:
        ev->u.handed_off.owner = x;
        ev->u.handed_off.sla_hours = 1;
        break;
    case LF_EV_ACCEPTED:
        ev->u.accepted.owner = x;
        break;
    case LF_EV_RECYCLED:
        ev->u.recycled.note = x;
        break;
    case LF_EV_QUALIFIED:
        ev->u.qualified.opportunity_id = ev->u.qualified.currency = x;
        ev->u.qualified.amount_minor = 1;
        break;
    case LF_EV_WON:
        ev->u.won.currency = x;
        ev->u.won.amount_minor = 1;
        break;
    case LF_EV_LOST:
        ev->u.lost.reason = x;
        break;
    case LF_EV_DISQUALIFIED:
        ev->u.disqualified.reason = x;
        break;
    case LF_EV_MERGED:
        ev->u.merged.into_lead_id = x;
        break;
    case LF_EV_VOIDED:
        ev->u.voided.voided_event_id = ev->u.voided.reason = x;
        break;
    case LF_EV_ERASED:
        ev->u.erased.request_id = x;
        break;
    default:
        break;
    }
}

/* Append "WHEN 'type' THEN '{key,...}'::text[] " for type @p t: the
 * payload keys the JSON mapping knows for it. @returns false when out of
 * memory or a key is not a plain name (it is spliced into SQL). */
static bool known_keys_case(lf_buf_t *b, lf_event_type_t t)
{
    static char k[] = "k", v[] = "v";
    lf_attr_t attr = {k, v};
    lf_buf_t js = {0};
    lf_event_t ev;
    json_t *obj;
    const char *key;
    json_t *val;
    bool ok, first = true;

    full_event(&ev, t, &attr);
    ok = !lf_json_format_payload(&ev, &js) &&
         (obj = json_loadb((const char *)js.data, js.len, 0, NULL)) != NULL;
    lf_buf_free(&js);
    if (!ok)
        return false;
    ok = !lf_buf_printf(b, "WHEN '%s' THEN '{", lf_event_type_name(t));
    json_object_foreach(obj, key, val)
    {
        (void)val;
        ok = ok && strspn(key, "abcdefghijklmnopqrstuvwxyz0123456789_") ==
                       strlen(key);
        ok = ok && !lf_buf_printf(b, "%s%s", first ? "" : ",", key);
        first = false;
    }
    json_decref(obj);
    return ok && !lf_buf_puts(b, "}'::text[] ");
}

static char stored_sql[3 * 1024 + SQL_MAX];
static char known_sql[3 * 1024];
static pthread_once_t stored_once = PTHREAD_ONCE_INIT;

/* Build stored_sql and known_sql once (empty when out of memory). */
static void stored_sql_build(void)
{
    lf_buf_t k = {0};
    bool ok = !lf_buf_puts(&k, KNOWN_CASE);

    for (int t = 0; ok && t < LF_EV__COUNT; t++)
        ok = known_keys_case(&k, (lf_event_type_t)t);
    ok = ok && !lf_buf_puts(&k, "ELSE '{}'::text[] END)") &&
         !lf_buf_append(&k, "", 1);
    if (ok && snprintf(known_sql, sizeof(known_sql), "%s",
                       (const char *)k.data) >= (int)sizeof(known_sql))
        known_sql[0] = '\0';
    /* Too long for the buffer is a programming error: no statement. */
    if (ok &&
        snprintf(stored_sql, sizeof(stored_sql),
                 "(jsonb_build_object('event_id', event_id, 'lead_id', "
                 "lead_id, 'type', type, 'occurred_at', (extract(epoch FROM "
                 "occurred_at) * 1000)::int8, 'source', source, 'actor', "
                 "actor) || (payload - ARRAY(SELECT jsonb_object_keys("
                 "payload - %s))))::text, account_id, extra::text, "
                 "nullif(payload - %s, '{}'::jsonb)::text",
                 (const char *)k.data,
                 (const char *)k.data) >= (int)sizeof(stored_sql))
        stored_sql[0] = '\0';
    lf_buf_free(&k);
}

/* The payload keys the JSON mapping knows for each type, as an SQL
 * expression of `type` giving a text[]; NULL when out of memory. */
static const char *known_keys_sql(void)
{
    pthread_once(&stored_once, stored_sql_build);
    return known_sql[0] ? known_sql : NULL;
}

const char *lf_projector_stored_sql(void)
{
    pthread_once(&stored_once, stored_sql_build);
    return stored_sql[0] ? stored_sql : NULL;
}

/* Set *@p field (NULL) to a copy of column @p col (NULL stays NULL). */
static bool set_from_col(const PGresult *res, int row, int col, char **field)
{
    if (PQgetisnull(res, row, col))
        return true;
    return (*field = strdup(PQgetvalue(res, row, col))) != NULL;
}

lf_err_t lf_projector_stored_event(const PGresult *res, int row, int col,
                                   lf_event_t *ev, char *errstr,
                                   size_t errstr_size)
{
    const char *js = PQgetvalue(res, row, col);
    lf_err_t err;

    lf_event_init(ev);
    if ((err = lf_json_parse_stored(js, strlen(js), ev, errstr, errstr_size)))
        return err;
    /* Parsed from JSON without these three: set apart from the JSON
     * mapping, which need not know them, and never hold a strbuf
     * pointer here. */
    ev->account_id = ev->extra = ev->payload_extra = NULL;
    if (!set_from_col(res, row, col + 1, &ev->account_id) ||
        !set_from_col(res, row, col + 2, &ev->extra) ||
        !set_from_col(res, row, col + 3, &ev->payload_extra)) {
        lf_event_clear(ev);
        return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
    }
    return LF_OK;
}

/* ---- stored events read back for a recompute -------------------------- */

/* What a recompute needs of a stored event's payload: the fields the
 * funnel reads (lf_funnel_apply_def(), its exit reasons and thresholds)
 * and the target of a void (apply_voids()). Per type, up to
 * RECOMPUTE_COLS payload keys, each read back as a text column and set
 * into its field; nothing else of the event is read. */
typedef enum rkind_e { R_STR, R_INT, R_LONG, R_REASON } rkind_t;

typedef struct rfield_s {
    const char *key; /* NULL: no more fields for this type */
    rkind_t kind;
    size_t off; /* in lf_event_t */
} rfield_t;

#define RECOMPUTE_COLS 3
#define RF(k, kind, member)                                                    \
    {                                                                          \
        k, kind, offsetof(lf_event_t, member)                                  \
    }

static const rfield_t recompute_fields[LF_EV__COUNT][RECOMPUTE_COLS] = {
    [LF_EV_CAPTURED] = {RF("channel", R_STR, u.captured.channel),
                        RF("campaign", R_STR, u.captured.campaign)},
    [LF_EV_SCORED] = {RF("model", R_STR, u.scored.model),
                      RF("score", R_INT, u.scored.score),
                      RF("threshold", R_INT, u.scored.threshold)},
    [LF_EV_HANDED_OFF] = {RF("owner", R_STR, u.handed_off.owner)},
    [LF_EV_ACCEPTED] = {RF("owner", R_STR, u.accepted.owner)},
    [LF_EV_RECYCLED] = {RF("reason", R_REASON, u.recycled.reason)},
    [LF_EV_QUALIFIED] = {RF("opportunity_id", R_STR,
                            u.qualified.opportunity_id),
                         RF("amount_minor", R_LONG, u.qualified.amount_minor),
                         RF("currency", R_STR, u.qualified.currency)},
    [LF_EV_WON] = {RF("amount_minor", R_LONG, u.won.amount_minor),
                   RF("currency", R_STR, u.won.currency)},
    [LF_EV_LOST] = {RF("reason", R_STR, u.lost.reason)},
    [LF_EV_DISQUALIFIED] = {RF("reason", R_STR, u.disqualified.reason)},
    [LF_EV_VOIDED] = {RF("voided_event_id", R_STR, u.voided.voided_event_id)},
};

static char recompute_cols_sql[4 * 1024];
static pthread_once_t recompute_once = PTHREAD_ONCE_INIT;

/* Build recompute_cols_sql once: for each column j of recompute_fields,
 * "CASE e.type WHEN 'captured' THEN e.payload ->> 'channel' ... END" (so
 * that a row's payload is only looked into for its type's keys); empty
 * when it does not fit (a programming error: no statement). */
static void recompute_cols_build(void)
{
    lf_buf_t b = {0};
    bool ok = true;

    for (int j = 0; ok && j < RECOMPUTE_COLS; j++) {
        ok = !lf_buf_puts(&b, j ? ", CASE e.type" : "CASE e.type");
        for (int t = 0; ok && t < LF_EV__COUNT; t++)
            if (recompute_fields[t][j].key)
                ok = !lf_buf_printf(&b, " WHEN '%s' THEN e.payload ->> '%s'",
                                    lf_event_type_name((lf_event_type_t)t),
                                    recompute_fields[t][j].key);
        ok = ok && !lf_buf_puts(&b, " END");
    }
    ok = ok && !lf_buf_append(&b, "", 1);
    if (!ok ||
        snprintf(recompute_cols_sql, sizeof(recompute_cols_sql), "%s",
                 (const char *)b.data) >= (int)sizeof(recompute_cols_sql))
        recompute_cols_sql[0] = '\0';
    lf_buf_free(&b);
}

/* Column @p col of row @p r, NULL when null; the result's own memory. */
static char *col_or_null(const PGresult *res, int r, int col)
{
    return PQgetisnull(res, r, col) ? NULL : PQgetvalue(res, r, col);
}

/* Row @p r of read_stored_events()'s result into @p ev: event_id, type,
 * occurred_at, account_id and the fields of recompute_fields. Every
 * string is the result's (borrowed: never lf_event_clear() @p ev).
 * @returns false when a column does not read as its field (an integer
 * field null, an unknown type or recycle reason). */
static bool recompute_event(const PGresult *res, int r, lf_event_t *ev)
{
    int type = lf_event_type_parse(PQgetvalue(res, r, 2));

    memset(ev, 0, sizeof(*ev));
    if (type < 0)
        return false;
    ev->type = (lf_event_type_t)type;
    ev->event_id = PQgetvalue(res, r, 1);
    ev->occurred_at = strtoll(PQgetvalue(res, r, 3), NULL, 10);
    ev->account_id = col_or_null(res, r, 4);
    for (int j = 0; j < RECOMPUTE_COLS && recompute_fields[type][j].key; j++) {
        const rfield_t *rf = &recompute_fields[type][j];
        char *v = col_or_null(res, r, 5 + j), *base = (char *)ev + rf->off;
        int reason;
        if (rf->kind == R_STR) {
            *(char **)base = v;
            continue;
        }
        if (!v)
            return false;
        if (rf->kind == R_INT)
            *(int32_t *)base = (int32_t)strtol(v, NULL, 10);
        else if (rf->kind == R_LONG)
            *(int64_t *)base = strtoll(v, NULL, 10);
        else if ((reason = lf_recycle_reason_parse(v)) < 0)
            return false;
        else
            *(lf_recycle_reason_t *)base = (lf_recycle_reason_t)reason;
    }
    return true;
}

/* ---- derive: the new events through the funnel, lead by lead ---------- */

/* A lead's run of new events in ev_idx: ev_idx[at .. at + n). */
typedef struct span_s {
    size_t at, n;
} span_t;

/* What derive's parts hand on. Everything here is derive's own and freed
 * by derive_free(). */
typedef struct derive_s {
    size_t n;           /* new stage events, in f->ev_idx by person, order */
    const char **leads; /* their persons, each once, in lead_id order */
    size_t nleads;
    lead_row_t *loaded; /* the stored rows of those persons, in order */
    size_t nloaded;
    span_t *fresh; /* runs of persons without a row */
    size_t nfresh;
    const char **re; /* persons to recompute from their stored events */
    size_t nre;
    size_t nfirst;        /* re[0 .. nfirst): the persons of the leads
                             identity() cleared (f->cleared_of) */
    PGresult *reres;      /* their stored events as read (person in col 0) */
    lf_event_t *reevents; /* the same, read (strings in reres), in order */
    size_t nreevents;
    lf_event_t **group; /* one person's events, handed to project_lead() */
    bool *voided;       /* recompute: group event i is voided */
    lf_ids_t pending;   /* recompute: voids whose target is not the
                           person's: void event, target, person, ... */
    lf_ids_t rowless;   /* recomputed persons left without a row */
    /* What a recompute compares its results with (read_stored_rows()):
     * the persons' stored visits and the state and void anomalies of the
     * leads it clears, whether a derived one matched each of those, and
     * what goes: (person, first visit) pairs, anomaly rows of ares. */
    PGresult *vres, *ares;
    bool *amatched;
    lf_ids_t vdel_lead, vdel_from;
    lf_buf_t was, now; /* a stored and a recomputed row, encoded */
} derive_t;

/* What one chunk of a recompute read and derived (recompute_chunk()). */
static void chunk_free(derive_t *d)
{
    free(d->reevents); /* their strings are reres's */
    d->reevents = NULL;
    d->nreevents = 0;
    PQclear(d->reres);
    d->reres = NULL;
    free(d->voided);
    d->voided = NULL;
    lf_ids_free(&d->pending);
    PQclear(d->vres);
    d->vres = NULL;
    PQclear(d->ares);
    d->ares = NULL;
    free(d->amatched);
    d->amatched = NULL;
    lf_ids_free(&d->vdel_lead);
    lf_ids_free(&d->vdel_from);
}

static void derive_free(derive_t *d)
{
    for (size_t i = 0; i < d->nloaded; i++)
        lead_row_clear(&d->loaded[i]);
    free(d->loaded);
    chunk_free(d);
    free(d->group);
    free(d->leads);
    free(d->re);
    free(d->fresh);
    lf_ids_free(&d->rowless);
    lf_buf_free(&d->was);
    lf_buf_free(&d->now);
}

/* The first row of @p res (ordered by column 0 bytewise) whose column 0
 * is not below @p id. */
static int first_row(const PGresult *res, const char *id)
{
    int lo = 0, hi = PQntuples(res);

    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (strcmp(PQgetvalue(res, mid, 0), id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The row of @p res (ordered by column 0, bytewise) whose column 0 is
 * @p id, or -1. */
static int find_row(const PGresult *res, const char *id)
{
    int r = first_row(res, id);

    return r < PQntuples(res) && !strcmp(PQgetvalue(res, r, 0), id) ? r : -1;
}

/* Each kept new event's person: its lead's surviving lead (SCHEMA.merges),
 * or its lead. */
static lf_err_t map_persons(flush_t *f, derive_t *d)
{
    lf_projector_t *p = f->p;
    PGresult *res = NULL;
    char sql[SQL_MAX];
    lf_err_t err;

    for (size_t k = 0; k < d->n; k++)
        p->entries[f->ev_idx[k]].person = p->entries[f->ev_idx[k]].ev.lead_id;
    lf_buf_reset(&p->arr);
    if (lf_pg_text_array(&p->arr, f->leads, f->nleads))
        return LF_ERR_NOMEM;
    sql_text(p, sql, NULL,
             "SELECT lead_id, surviving_lead_id FROM {schema}.merges WHERE "
             "lead_id = ANY($1::text[]) ORDER BY lead_id COLLATE \"C\"");
    if ((err = run(f, sql, "finding merged leads", 1, p->arr.data, NULL, &res)))
        return err;
    for (size_t k = 0; PQntuples(res) && k < d->n && !err; k++) {
        entry_t *e = &p->entries[f->ev_idx[k]];
        int r = find_row(res, e->ev.lead_id);
        if (r < 0)
            continue;
        if (lf_ids_add(&f->pool, PQgetvalue(res, r, 1)))
            err = LF_ERR_NOMEM;
        else
            e->person = f->pool.v[f->pool.n - 1];
    }
    PQclear(res);
    return err;
}

static lf_err_t lock_more(flush_t *f, char *const *ids, size_t n);

/* The persons of events of merged leads: their surviving lead may be in
 * another writer's partitions, so it is locked too (rarely: a merged
 * lead's later events). */
static lf_err_t lock_persons(flush_t *f, derive_t *d)
{
    lf_projector_t *p = f->p;
    lf_ids_t more = {0};
    lf_err_t err = LF_OK;

    for (size_t k = 0; !err && k < d->n; k++) {
        const entry_t *e = &p->entries[f->ev_idx[k]];
        if (e->person != e->ev.lead_id)
            err = lf_ids_add(&more, e->person);
    }
    lf_ids_sort(&more);
    if (!err && more.n)
        err = lock_more(f, more.v, more.n);
    lf_ids_free(&more);
    return err;
}

/* Count the new events, keep the stage events the funnel applies in
 * f->ev_idx, ordered by person then (occurred_at, event_id), and list
 * their persons. Identity events (merged, voided, erased) are stored and
 * counted here; their effects were worked out by identity(), and a
 * recompute reads the voids it needs. */
static lf_err_t new_events_by_lead(flush_t *f, derive_t *d)
{
    lf_projector_t *p = f->p;
    size_t *ev_idx = f->ev_idx, cap;
    lf_err_t err;

    for (size_t k = 0; k < f->nev; k++) {
        const lf_event_t *ev = &p->entries[ev_idx[k]].ev;
        if (!p->entries[ev_idx[k]].is_new)
            continue;
        f->st.events_new++;
        f->st.by_type[ev->type]++;
        if (!LF_EV_IS_IDENTITY(ev->type))
            ev_idx[d->n++] = ev_idx[k];
    }
    cap = d->n + f->forced.n + 1;
    d->leads = calloc(cap, sizeof(*d->leads));
    d->re = calloc(cap, sizeof(*d->re));
    d->group = calloc(cap, sizeof(*d->group));
    d->fresh = calloc(cap, sizeof(*d->fresh));
    if (!d->leads || !d->re || !d->group || !d->fresh)
        return LF_ERR_NOMEM;
    if (!d->n)
        return LF_OK;
    if ((err = map_persons(f, d)) || (err = lock_persons(f, d)))
        return err;
    if (!sort_entries(p, ev_idx, d->n, true))
        return LF_ERR_NOMEM;
    for (size_t k = 0; k < d->n; k++) {
        const char *id = p->entries[ev_idx[k]].person;
        if (!d->nleads || strcmp(d->leads[d->nleads - 1], id))
            d->leads[d->nleads++] = id;
    }
    return LF_OK;
}

/* The stored rows of d->leads, in lead_id order (bytewise, as strcmp,
 * hence COLLATE "C"). */
static lf_err_t load_leads(flush_t *f, derive_t *d)
{
    lf_projector_t *p = f->p;
    PGresult *res = NULL;
    char sql[SQL_MAX];
    size_t n;
    lf_err_t err = LF_OK;

    lf_buf_reset(&p->arr);
    if (lf_pg_text_array(&p->arr, d->leads, d->nleads))
        return LF_ERR_NOMEM;
    sql_text(p, sql, &leads_table,
             "SELECT {select} FROM {schema}.leads WHERE lead_id = "
             "ANY($1::text[]) ORDER BY lead_id COLLATE \"C\"");
    if ((err = run(f, sql, "loading leads", 1, p->arr.data, NULL, &res)))
        return err;
    n = (size_t)PQntuples(res);
    if (n && !(d->loaded = calloc(n, sizeof(*d->loaded))))
        err = LF_ERR_NOMEM;
    for (size_t r = 0; !err && r < n; r++) {
        d->nloaded = r + 1; /* cleared by derive_free(), even half read */
        err = load_lead(res, (int)r, &d->loaded[r]);
    }
    PQclear(res);
    return err;
}

/* Continue each stored person whose new events all come after its last
 * one; list the others for a recompute (and those identity() listed),
 * and the persons without a row as fresh. */
static lf_err_t continue_leads(flush_t *f, derive_t *d)
{
    lf_projector_t *p = f->p;
    const size_t *ev_idx = f->ev_idx;
    size_t li = 0;

    for (size_t k = 0; k < d->n;) {
        const char *id = p->entries[ev_idx[k]].person;
        size_t n = 0;
        while (k + n < d->n && !strcmp(p->entries[ev_idx[k + n]].person, id)) {
            d->group[n] = &p->entries[ev_idx[k + n]].ev;
            n++;
        }
        k += n;
        if (lf_ids_has(&f->forced, id))
            continue; /* recomputed with the forced ones */
        while (li < d->nloaded && strcmp(d->loaded[li].lead.lead_id, id) < 0)
            li++;
        if (li >= d->nloaded || strcmp(d->loaded[li].lead.lead_id, id)) {
            d->fresh[d->nfresh++] = (span_t){k - n, n};
        } else if (!lf_funnel_is_next(&d->loaded[li].lead, d->group[0])) {
            d->re[d->nre++] = id;
        } else {
            lf_err_t err =
                project_lead(p, &f->b, &d->loaded[li], d->group, n, true);
            if (err)
                return err;
        }
    }
    return LF_OK;
}

/* Persons without a row in leads: most are new, and their only stored
 * events are the ones this batch just stored, so applying those in memory
 * gives exactly what a recompute would, without reading them back. A
 * person with older stored events goes to d->re for the full recompute
 * when one of its new events is a capture (see has_capture()).
 * Which persons have some: a person has no row only while none of its
 * counted stored events is a capture (a capture always enters the
 * funnel), and every other counted event of an uncaptured person is
 * listed as a 'state' anomaly under the person in the same transaction
 * that stores it or makes it the person's (rule 4, lf_funnel_apply, and
 * the recompute a merge forces), until a recompute that gives it a row.
 * Identity events are never applied, and a voided event does not count,
 * so leaving them out changes nothing (a stored void of one of the new
 * events made identity() force a recompute). So older counted events <=>
 * a 'state' anomaly already committed: an index lookup in a small table,
 * where counting the person's events costs 10 % of a batch (bench/).
 * And such a person needs no recompute either unless a new event is a
 * capture: without one the person stays uncaptured, so every counted
 * event, stored or new, is a 'state' anomaly whose reason names only its
 * type (lf_funnel_apply_def()), and the stored ones are committed
 * already. Applying the new events to a fresh lead adds exactly the new
 * anomalies, and the stored ones stay (the person is not in
 * f->recomputed, so none is cleared). Under a shuffled backfill most of
 * a lead's events arrive before its capture: each such batch of the lead
 * was a read-back of all its events and a rewrite of all its anomalies. */
static bool has_capture(lf_event_t *const *ev, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ev[i]->type == LF_EV_CAPTURED)
            return true;
    return false;
}

/* Apply each fresh person's new events to a new lead, but send a person
 * with a capture among them to the full recompute when @p earlier (the
 * persons with older stored events, ordered bytewise; NULL: none) lists
 * it. */
static lf_err_t project_fresh_rows(flush_t *f, derive_t *d,
                                   const PGresult *earlier)
{
    lf_projector_t *p = f->p;
    const size_t *ev_idx = f->ev_idx;
    size_t r = 0, nrows = earlier ? (size_t)PQntuples(earlier) : 0;
    lf_err_t err = LF_OK;

    for (size_t i = 0; i < d->nfresh && !err; i++) {
        const span_t *s = &d->fresh[i];
        const char *id = p->entries[ev_idx[s->at]].person;
        lead_row_t row = {0};

        while (r < nrows && strcmp(PQgetvalue(earlier, (int)r, 0), id) < 0)
            r++;
        for (size_t j = 0; j < s->n; j++)
            d->group[j] = &p->entries[ev_idx[s->at + j]].ev;
        if (r < nrows && !strcmp(PQgetvalue(earlier, (int)r, 0), id) &&
            has_capture(d->group, s->n)) {
            d->re[d->nre++] = id;
            continue;
        }
        if (lf_lead_init(&row.lead, id))
            err = LF_ERR_NOMEM;
        else
            err = project_lead(p, &f->b, &row, d->group, s->n, false);
        lead_row_clear(&row);
    }
    return err;
}

/* Which fresh persons have older stored events matters only for those
 * whose new events hold a capture (has_capture()): ask about those alone,
 * under a shuffled stream about one fresh person in six. */
static lf_err_t project_fresh(flush_t *f, derive_t *d)
{
    lf_projector_t *p = f->p;
    const size_t *ev_idx = f->ev_idx;
    PGresult *res = NULL;
    char sql[SQL_MAX];
    size_t nask = 0;
    lf_err_t err;

    for (size_t i = 0; i < d->nfresh; i++) { /* d->leads as scratch */
        const span_t *s = &d->fresh[i];
        for (size_t j = 0; j < s->n; j++)
            d->group[j] = &p->entries[ev_idx[s->at + j]].ev;
        if (has_capture(d->group, s->n))
            d->leads[nask++] = p->entries[ev_idx[s->at]].person;
    }
    if (!nask)
        return project_fresh_rows(f, d, NULL);
    lf_buf_reset(&p->arr);
    if (lf_pg_text_array(&p->arr, d->leads, nask))
        return LF_ERR_NOMEM;
    sql_text(p, sql, NULL,
             "SELECT lead_id FROM {schema}.anomalies WHERE lead_id = "
             "ANY($1::text[]) AND kind = 'state' GROUP BY lead_id "
             "ORDER BY lead_id COLLATE \"C\"");
    if ((err =
             run(f, sql, "finding earlier events", 1, p->arr.data, NULL, &res)))
        return err;
    err = project_fresh_rows(f, d, res);
    PQclear(res);
    return err;
}

/* Every stored event of the persons in d->re (as a text[] in p->arr): the
 * events of the person's lead and of every lead merged into it, in order
 * (person bytewise, occurred_at, event_id bytewise), read back as
 * recompute_event() reads them; merged and erased events are left out
 * (identity() worked them out), voided events are read (a recompute
 * decides which count). Each lead's events are an index scan of
 * events_lead_idx of their own (the LATERAL subquery, kept from being
 * flattened into a join by its OFFSET 0), so the plan does not depend on the
 * table's statistics: a new database has none, and without them a join scanned
 * the whole table. */
static lf_err_t read_stored_events(flush_t *f, derive_t *d)
{
    lf_projector_t *p = f->p;
    PGresult *res = NULL;
    char sql[3 * SQL_MAX];
    size_t n;
    lf_err_t err;

    pthread_once(&recompute_once, recompute_cols_build);
    if (!recompute_cols_sql[0])
        return LF_ERR_NOMEM;
    snprintf(sql, sizeof(sql),
             "SELECT m.person, e.event_id, e.type, e.at, e.account_id, %s "
             "FROM (SELECT l AS person, l AS lead_id FROM unnest($1::text[]) "
             "AS l UNION ALL SELECT surviving_lead_id, lead_id FROM %s.merges "
             "WHERE surviving_lead_id = ANY($1::text[])) AS m CROSS JOIN "
             "LATERAL (SELECT event_id, type, occurred_at, (extract(epoch "
             "FROM occurred_at) * 1000)::int8 AS at, account_id, payload "
             "FROM %s.events WHERE lead_id = m.lead_id AND type <> "
             "ALL('{merged,erased}'::text[]) OFFSET 0) AS e ORDER BY m.person "
             "COLLATE \"C\", e.occurred_at, e.event_id COLLATE \"C\"",
             recompute_cols_sql, p->schema, p->schema);
    if ((err = run(f, sql, "reading events to recompute", 1, p->arr.data, NULL,
                   &res)))
        return err;
    d->reres = res;
    n = (size_t)PQntuples(res);
    lf_event_t **group = realloc(d->group, (n + 1) * sizeof(*group));
    if (group)
        d->group = group;
    if (!group || !(d->reevents = calloc(n + 1, sizeof(*d->reevents))) ||
        !(d->voided = calloc(n + 1, sizeof(*d->voided))))
        return LF_ERR_NOMEM;
    d->nreevents = n;
    for (size_t r = 0; r < n; r++)
        /* Stored events passed the contract when they came in; if one
         * does not read now, the code changed incompatibly: stop,
         * loudly. */
        if (!recompute_event(res, (int)r, &d->reevents[r]))
            return lf_seterr(LF_ERR_PG, f->errstr, f->errstr_size,
                             "stored event %s of lead %s no longer reads",
                             PQgetvalue(res, (int)r, 1),
                             PQgetvalue(res, (int)r, 0));
    return LF_OK;
}

/* ---- recompute: write only what changed ------------------------------ */

/* A recompute derives a person's whole history again, but a late event
 * changes little of it: the visits from the one it falls in (often none),
 * an anomaly or two, a column or two of the row. Rewriting all of it was
 * most of a shuffled drain's cost (bench/, BENCHMARKS.md), so the stored
 * visits and anomalies are read with the events, compared in memory, and
 * only the difference is written: the visits from the first that differs,
 * the anomalies the table lacks, the row if it changed; the stored visits
 * from the first difference and the anomalies no longer derived go. Any
 * doubt in a comparison counts as a difference: the result is the same
 * tables as a rewrite. */

/* The stored visits of d->re (a text[] in p->arr) and the state and void
 * anomalies of every lead the recompute clears (f->recomputed). */
static lf_err_t read_stored_rows(flush_t *f, derive_t *d)
{
    lf_projector_t *p = f->p;
    char sql[SQL_MAX];
    lf_err_t err;

    sql_text(p, sql, NULL,
             "SELECT lead_id, visit, cycle, stage, (extract(epoch FROM "
             "entered_at) * 1000)::int8, (extract(epoch FROM exited_at) * "
             "1000)::int8, entered_by, exit_reason FROM {schema}.stage_history "
             "WHERE lead_id = ANY($1::text[]) ORDER BY lead_id COLLATE \"C\", "
             "visit");
    if ((err = run(f, sql, "reading recomputed leads' visits", 1, p->arr.data,
                   NULL, &d->vres)))
        return err;
    sql_text(p, sql, NULL,
             "SELECT event_id, kind, reason, lead_id FROM {schema}.anomalies "
             "WHERE lead_id = ANY($1::text[]) AND kind IN ('state', 'void') "
             "ORDER BY event_id COLLATE \"C\", kind COLLATE \"C\", reason "
             "COLLATE \"C\"");
    if ((err = run(f, sql, "reading recomputed leads' anomalies", 1,
                   f->recomputed, NULL, &d->ares)))
        return err;
    if (!(d->amatched = calloc((size_t)PQntuples(d->ares) + 1, 1)))
        return LF_ERR_NOMEM;
    return LF_OK;
}

static bool same_ms(const PGresult *res, int r, int c, int64_t ms)
{
    if (PQgetisnull(res, r, c))
        return ms == LF_NO_TIME;
    return ms != LF_NO_TIME && strtoll(PQgetvalue(res, r, c), NULL, 10) == ms;
}

/* Is stored visit row @p r of d->vres the visit @p v? */
static bool same_visit(const PGresult *res, int r, const lf_visit_t *v)
{
    return atoi(PQgetvalue(res, r, 1)) == v->visit &&
           atoi(PQgetvalue(res, r, 2)) == v->cycle &&
           !strcmp(PQgetvalue(res, r, 3), lf_stage_name(v->stage)) &&
           same_ms(res, r, 4, v->entered_at) &&
           same_ms(res, r, 5, v->exited_at) &&
           !strcmp(PQgetvalue(res, r, 6), v->entered_by) &&
           (PQgetisnull(res, r, 7)
                ? !v->exit_reason
                : v->exit_reason &&
                      !strcmp(PQgetvalue(res, r, 7), v->exit_reason));
}

/* The first visit number of person @p id whose derived row (in @p out, a
 * whole history from visit 1; of a visit listed twice the later row is the
 * truth) differs from the stored one; *stored_from gets the first
 * stored visit number from which the stored rows must go (INT32_MAX when
 * none must). */
static int32_t first_changed_visit(const PGresult *vres, const char *id,
                                   const lf_funnel_out_t *out,
                                   int32_t *stored_from)
{
    int r = first_row(vres, id), n = PQntuples(vres), nstored = 0;
    int32_t at = 1;

    while (r + nstored < n && !strcmp(PQgetvalue(vres, r + nstored, 0), id))
        nstored++;
    for (size_t i = 0; i < out->visit_count; i++) {
        const lf_visit_t *v = &out->visits[i];
        if (i + 1 < out->visit_count && out->visits[i + 1].visit == v->visit)
            continue;
        if (v->visit != at || at > nstored || !same_visit(vres, r + at - 1, v))
            break;
        at++;
    }
    *stored_from = at <= nstored ? at : INT32_MAX;
    return at;
}

/* Is the anomaly (event, kind, reason) stored under @p lead? A stored row
 * of the same key is marked as derived again (it stays; under another lead
 * it is staged so the upsert moves it). */
static bool anomaly_stored(derive_t *d, const char *event_id, const char *kind,
                           const char *reason, const char *lead)
{
    const PGresult *res = d->ares;
    int lo = first_row(res, event_id), n = PQntuples(res);

    for (int r = lo; r < n && !strcmp(PQgetvalue(res, r, 0), event_id); r++)
        if (!strcmp(PQgetvalue(res, r, 1), kind) &&
            !strcmp(PQgetvalue(res, r, 2), reason)) {
            d->amatched[r] = true;
            return !strcmp(PQgetvalue(res, r, 3), lead);
        }
    return false;
}

/* Stage anomaly (event, person, kind, reason) unless it is stored. */
static lf_err_t put_derived_anomaly(flush_t *f, derive_t *d,
                                    const char *event_id, const char *person,
                                    const char *kind, const char *reason)
{
    if (anomaly_stored(d, event_id, kind, reason, person))
        return LF_OK;
    return put_anomaly(&f->b.anomalies, event_id, person, kind, reason);
}

/* The row of @p row's person as loaded (d->loaded), or NULL. */
static const lead_row_t *loaded_row(const derive_t *d, const char *id)
{
    size_t lo = 0, hi = d->nloaded;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(d->loaded[mid].lead.lead_id, id);
        if (!c)
            return &d->loaded[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Is the person's recomputed row the one it has? Both encoded as COPY
 * writes them: equal bytes, equal columns. */
static bool row_unchanged(derive_t *d, const lead_row_t *row)
{
    const lead_row_t *was = loaded_row(d, row->lead.lead_id);

    if (!was)
        return false;
    lf_buf_reset(&d->was);
    lf_buf_reset(&d->now);
    if (write_lead(&d->was, was) || write_lead(&d->now, row))
        return false;
    return d->was.len == d->now.len &&
           !memcmp(d->was.data, d->now.data, d->was.len);
}

/* Stage what the recompute of one person (its derived history in p->out,
 * its row in @p row) changes. */
static lf_err_t write_recomputed(flush_t *f, derive_t *d, const lead_row_t *row)
{
    const lf_funnel_out_t *out = &f->p->out;
    const char *id = row->lead.lead_id;
    int32_t stored_from,
        from = first_changed_visit(d->vres, id, out, &stored_from);
    char num[16];
    lf_err_t e = write_visits(&f->b, &row->lead, out, from - 1, from);

    if (!e && stored_from != INT32_MAX) {
        snprintf(num, sizeof(num), "%" PRId32, stored_from);
        e = lf_ids_add(&d->vdel_lead, id) || lf_ids_add(&d->vdel_from, num)
                ? LF_ERR_NOMEM
                : LF_OK;
    }
    for (size_t i = 0; i < out->anomaly_count && !e; i++)
        e = put_derived_anomaly(f, d, out->anomalies[i].event_id, id, "state",
                                out->anomalies[i].reason);
    if (e || row->lead.stage == LF_ST_NONE || row_unchanged(d, row))
        return e;
    return write_lead(&f->b.leads, row) ? LF_ERR_NOMEM : LF_OK;
}

/* A person recomputed without a stored event: no row, no visits. */
static lf_err_t forget_person(derive_t *d, const char *id)
{
    if (lf_ids_add(&d->rowless, id))
        return LF_ERR_NOMEM;
    if (find_row(d->vres, id) < 0)
        return LF_OK;
    return lf_ids_add(&d->vdel_lead, id) || lf_ids_add(&d->vdel_from, "1")
               ? LF_ERR_NOMEM
               : LF_OK;
}

/* Delete the stored visits that changed and the anomalies no longer
 * derived (the stored ones no derived one matched). */
static lf_err_t delete_changed(flush_t *f, derive_t *d)
{
    lf_projector_t *p = f->p;
    lf_buf_t *a = &p->arr, b = {0}, c = {0};
    const char **col = NULL;
    char sql[SQL_MAX];
    size_t n = 0, nres = (size_t)PQntuples(d->ares);
    lf_err_t err = LF_OK;

    if (d->vdel_lead.n) {
        lf_buf_reset(a);
        if (lf_pg_text_array(a, (const char *const *)d->vdel_lead.v,
                             d->vdel_lead.n) ||
            lf_pg_text_array(&b, (const char *const *)d->vdel_from.v,
                             d->vdel_from.n))
            err = LF_ERR_NOMEM;
        sql_text(p, sql, NULL,
                 "DELETE FROM {schema}.stage_history AS h USING "
                 "unnest($1::text[], $2::int[]) AS d(lead_id, visit) WHERE "
                 "h.lead_id = d.lead_id AND h.visit >= d.visit");
        if (!err)
            err = run(f, sql, "clearing changed visits", 2, a->data, b.data,
                      NULL);
    }
    for (size_t r = 0; r < nres; r++)
        n += !d->amatched[r];
    if (!err && n && !(col = calloc(n, sizeof(*col))))
        err = LF_ERR_NOMEM;
    lf_buf_reset(a);
    lf_buf_reset(&b);
    for (int k = 0; !err && n && k < 3; k++) {
        lf_buf_t *to = k == 0 ? a : k == 1 ? &b : &c;
        size_t m = 0;
        for (size_t r = 0; r < nres; r++)
            if (!d->amatched[r])
                col[m++] = PQgetvalue(d->ares, (int)r, k);
        if (lf_pg_text_array(to, col, m))
            err = LF_ERR_NOMEM;
    }
    if (!err && n) {
        const char *params[3] = {a->data, b.data, c.data};
        sql_text(p, sql, NULL,
                 "DELETE FROM {schema}.anomalies AS a USING unnest($1::text[], "
                 "$2::text[], $3::text[]) AS d(event_id, kind, reason) WHERE "
                 "a.event_id = d.event_id AND a.kind = d.kind AND a.reason = "
                 "d.reason");
        err =
            lf_pg_query(f->conn, sql, 3, params, "clearing resolved anomalies",
                        NULL, f->errstr, f->errstr_size);
    }
    free(col);
    lf_buf_free(&b);
    lf_buf_free(&c);
    return err;
}

static bool is_new_event(const flush_t *f, const char *event_id)
{
    return lf_ids_has(&f->new_ids, event_id);
}

/* The voids among one person's events ev[0..n): a void counts when its
 * target is one of the person's stage events (voided[] marks them); the
 * others wait in d->pending for void_anomalies(). */
static lf_err_t apply_voids(flush_t *f, derive_t *d, const char *person,
                            lf_event_t *ev, bool *voided, size_t n)
{
    lf_err_t e = LF_OK;

    for (size_t i = 0; !e && i < n; i++) {
        const char *t;
        size_t j;
        if (ev[i].type != LF_EV_VOIDED)
            continue;
        t = ev[i].u.voided.voided_event_id;
        for (j = 0; j < n && strcmp(ev[j].event_id, t); j++)
            ;
        if (j < n && ev[j].type != LF_EV_VOIDED) {
            if (!voided[j] &&
                (is_new_event(f, t) || is_new_event(f, ev[i].event_id)))
                f->st.voids++;
            voided[j] = true;
            continue;
        }
        e = lf_ids_add(&d->pending, ev[i].event_id) ||
                    lf_ids_add(&d->pending, t) ||
                    lf_ids_add(&d->pending, person)
                ? LF_ERR_NOMEM
                : LF_OK;
    }
    return e;
}

/* The voids that do not count, listed as 'void' anomalies of their
 * person: the target not received (yet), not a stage event, or another
 * person's. */
static lf_err_t void_anomalies(flush_t *f, derive_t *d)
{
    lf_projector_t *p = f->p;
    lf_ids_t targets = {0};
    PGresult *res = NULL;
    char sql[SQL_MAX], why[512];
    lf_err_t err = LF_OK;

    if (!d->pending.n)
        return LF_OK;
    for (size_t i = 1; !err && i < d->pending.n; i += 3)
        err = lf_ids_add(&targets, d->pending.v[i]);
    lf_buf_reset(&p->arr);
    if (err ||
        lf_pg_text_array(&p->arr, (const char *const *)targets.v, targets.n))
        err = LF_ERR_NOMEM;
    lf_ids_free(&targets);
    if (err)
        return err;
    sql_text(p, sql, NULL,
             "SELECT e.event_id, e.type FROM {schema}.events AS e "
             "WHERE e.event_id = ANY($1::text[]) "
             "ORDER BY e.event_id COLLATE \"C\"");
    if ((err =
             run(f, sql, "reading voided events", 1, p->arr.data, NULL, &res)))
        return err;
    for (size_t i = 0; !err && i < d->pending.n; i += 3) {
        const char *t = d->pending.v[i + 1];
        int r = find_row(res, t);
        int type = r < 0 ? -1 : lf_event_type_parse(PQgetvalue(res, r, 1));
        if (r < 0)
            snprintf(why, sizeof(why), "voided event %.128s not received", t);
        else if (type < 0 || LF_EV_IS_IDENTITY(type))
            snprintf(why, sizeof(why),
                     "voided event %.128s is not a stage event (it is %s %s "
                     "event)",
                     t, type == LF_EV_ERASED ? "an" : "a",
                     PQgetvalue(res, r, 1));
        else
            snprintf(why, sizeof(why),
                     "voided event %.128s belongs to another lead", t);
        err = put_derived_anomaly(f, d, d->pending.v[i], d->pending.v[i + 2],
                                  "void", why);
    }
    PQclear(res);
    return err;
}

/* One person's events ev[0..n) from the recompute's read: the voids
 * applied, the rest through the funnel, as a fresh lead. */
static lf_err_t recompute_person(flush_t *f, derive_t *d, const char *id,
                                 lf_event_t *ev, bool *voided, size_t n)
{
    lead_row_t row = {0};
    size_t g = 0;
    lf_err_t err = apply_voids(f, d, id, ev, voided, n);

    for (size_t i = 0; !err && i < n; i++)
        if (!voided[i] && !LF_EV_IS_IDENTITY(ev[i].type))
            d->group[g++] = &ev[i];
    if (err || lf_lead_init(&row.lead, id))
        return LF_ERR_NOMEM;
    err = apply_events(f->p, &row, d->group, g);
    if (!err)
        err = write_recomputed(f, d, &row);
    if (!err && row.lead.stage == LF_ST_NONE)
        err = lf_ids_add(&d->rowless, id);
    lead_row_clear(&row);
    return err;
}

/* The persons to recompute, each once: those derive found and those
 * identity() forced, as d->re (copies in f->pool): first those a lead now
 * counts for that identity() cleared (d->nfirst: merged into them, or
 * a stale void's), then the others, each part in bytewise order. */
static lf_err_t list_recompute(flush_t *f, derive_t *d)
{
    lf_ids_t re = {0};
    bool e = false;

    for (size_t i = 0; !e && i < d->nre; i++)
        e = lf_ids_add(&re, d->re[i]);
    for (size_t i = 0; !e && i < f->forced.n; i++)
        e = lf_ids_add(&re, f->forced.v[i]);
    lf_ids_sort(&re);
    d->nre = 0;
    for (int first = 1; !e && first >= 0; first--) {
        for (size_t i = 0; !e && i < re.n; i++)
            if (lf_ids_has(&f->cleared_of, re.v[i]) == (bool)first &&
                !(e = lf_ids_add(&f->pool, re.v[i])))
                d->re[d->nre++] = f->pool.v[f->pool.n - 1];
        if (first)
            d->nfirst = d->nre;
    }
    lf_ids_free(&re);
    return e ? LF_ERR_NOMEM : LF_OK;
}

/* Recompute persons re[0 .. n) (bytewise order) from all their stored
 * events (their leads' and their merged leads'), and write what changed
 * (see "write only what changed" above): the visits from the first that
 * differs, the anomalies the table lacks (so only those count as new),
 * the row if it differs; a person left without a counted capture loses
 * its row (d->rowless, deleted by recompute()). The anomalies compared
 * are those of these persons' leads and, @p cleared, of the leads that
 * stopped being persons (f->cleared: each one's person is in the same
 * chunk, d->nfirst, so a moved anomaly is seen as moved). */
static lf_err_t recompute_chunk(flush_t *f, derive_t *d, const char **re,
                                size_t n, bool cleared)
{
    lf_projector_t *p = f->p;
    lf_ids_t clear = {0};
    size_t at = 0;
    bool e = false;
    lf_err_t err;

    for (size_t i = 0; !e && i < n; i++)
        e = lf_ids_add(&clear, re[i]);
    for (size_t i = 0; !e && cleared && i < f->cleared.n; i++)
        e = lf_ids_add(&clear, f->cleared.v[i]);
    lf_buf_reset(&p->arr);
    e = e || lf_pg_text_array(&p->arr, (const char *const *)clear.v, clear.n);
    free(f->recomputed);
    f->recomputed = e ? NULL : strdup(p->arr.data);
    lf_ids_free(&clear);
    lf_buf_reset(&p->arr);
    if (!f->recomputed || lf_pg_text_array(&p->arr, re, n))
        return LF_ERR_NOMEM;
    if ((err = read_stored_events(f, d)) || (err = read_stored_rows(f, d)))
        return err;
    for (size_t r = 0, k; !err && r < d->nreevents; r += k) {
        const char *id = PQgetvalue(d->reres, (int)r, 0);
        for (k = 1; r + k < d->nreevents &&
                    !strcmp(PQgetvalue(d->reres, (int)(r + k), 0), id);
             k++)
            ;
        for (; !err && at < n && strcmp(re[at], id) < 0; at++)
            err = forget_person(d, re[at]);
        if (at < n && !strcmp(re[at], id))
            at++;
        if (!err)
            err = recompute_person(f, d, id, &d->reevents[r], &d->voided[r], k);
    }
    for (; !err && at < n; at++) /* persons without a counted event */
        err = forget_person(d, re[at]);
    if (!err)
        err = void_anomalies(f, d);
    if (!err)
        err = delete_changed(f, d);
    p->rows_per_person = n ? d->nreevents / n + 1 : p->rows_per_person;
    chunk_free(d);
    return err;
}

/* Stored events a recompute reads back at once, by default: a batch's
 * memory must not grow with the histories of all the persons it
 * recomputes (a shuffled backfill of leads with long histories), and
 * one chunk holds a whole batch's persons under the benchmark's
 * workloads (BENCHMARKS.md). */
#define RECOMPUTE_CHUNK_ROWS 10000

/* Recompute the persons in d->re (list_recompute()): those of cleared
 * leads in one chunk (with those leads: as many as the batch's merges
 * join), the others, voids' persons too, in chunks of about
 * p->chunk_rows stored events; then delete the rows of persons left
 * without one. */
static lf_err_t recompute(flush_t *f, derive_t *d)
{
    lf_projector_t *p = f->p;
    size_t rows = p->chunk_rows ? p->chunk_rows : RECOMPUTE_CHUNK_ROWS;
    char sql[SQL_MAX];
    lf_err_t err;

    if ((err = list_recompute(f, d)) || !d->nre)
        return err;
    f->st.recomputed = d->nre;
    for (size_t at = 0, n; !err && at < d->nre; at += n) {
        size_t per = p->rows_per_person ? p->rows_per_person : 8;
        n = at < d->nfirst ? d->nfirst : rows / per + 1;
        n = n < d->nre - at ? n : d->nre - at;
        err = recompute_chunk(f, d, d->re + at, n, at == 0);
    }
    if (err || !d->rowless.n)
        return err;
    lf_buf_reset(&p->arr);
    if (lf_pg_text_array(&p->arr, (const char *const *)d->rowless.v,
                         d->rowless.n))
        return LF_ERR_NOMEM;
    sql_text(p, sql, NULL,
             "DELETE FROM {schema}.leads WHERE lead_id = ANY($1::text[])");
    return run(f, sql, "clearing leads without a capture", 1, p->arr.data, NULL,
               NULL);
}

/* Every statement from derive() to the commit touches the batch's leads
 * (lead_id = ANY($1), or an index probe per lead): an index's work. But
 * without statistics (a new database, or before autovacuum's first
 * ANALYZE) the planner costs "= ANY" of a few hundred leads at the whole
 * table and scans all of it, every batch; and it costs the recompute's
 * read-back at millions of rows, enough for JIT compilation (most of the
 * statement's time) and parallel workers, neither of which pays for a few
 * thousand rows. So, for the rest of the transaction: no sequential scan
 * where an index serves (the staging tables have none: still scanned), no
 * JIT, no workers. */
static lf_err_t plan_by_key(flush_t *f)
{
    return run(f,
               "SET LOCAL enable_seqscan = off; SET LOCAL jit = off; "
               "SET LOCAL max_parallel_workers_per_gather = 0",
               "setting up the batch's plans", 0, NULL, NULL, NULL);
}

/* Step: run the new events through the funnel, person by person (a
 * person: a surviving lead, with the leads merged into it): continue a
 * stored person when they come after its last event, recompute it from
 * its stored events when one comes late or identity() changed it, start
 * the new ones. The results wait in f->b for stage(). */
static lf_err_t derive(flush_t *f)
{
    derive_t d = {0};
    lf_err_t err = new_events_by_lead(f, &d);

    if (!err && (d.n || f->forced.n))
        err = plan_by_key(f);
    if (!err && d.n)
        err = load_leads(f, &d);
    if (!err && d.n)
        err = continue_leads(f, &d);
    if (!err && d.nfresh)
        err = project_fresh(f, &d);
    if (!err && (d.nre || f->forced.n))
        err = recompute(f, &d);
    if (err == LF_ERR_NOMEM)
        nomem(f);
    derive_free(&d);
    if (!err)
        f->st.duplicates = f->nev - f->st.events_new;
    return err;
}

/* ---- stage and merge -------------------------------------------------- */

/* COPY the dead letters into lf_stg_dead, and add the key anomalies (an
 * event under another Kafka key than its lead_id) to @p anomalies. */
static lf_err_t stage_dead_and_keys(flush_t *f, lf_buf_t *anomalies)
{
    lf_projector_t *p = f->p;
    lf_buf_t *c = &p->copy;
    char sql[SQL_MAX];
    lf_err_t e = LF_OK;

    lf_buf_reset(c);
    for (size_t i = 0; i < p->count && !e; i++) {
        entry_t *en = &p->entries[i];
        if (en->dead) {
            e = lf_pg_bin_row(c, (int)dead_table.n) ||
                lf_pg_bin_text(c, p->topics[en->topic]) ||
                lf_pg_bin_int4(c, en->partition) ||
                lf_pg_bin_int8(c, en->offset) ||
                lf_pg_bin_bytea(c, en->key, en->key_len) ||
                lf_pg_bin_bytea(c, en->value, en->value_len) ||
                lf_pg_bin_text(c, en->note);
            f->st.dead_letters++;
        } else if (en->note) {
            e = put_anomaly(anomalies, en->ev.event_id, en->ev.lead_id, "key",
                            en->note);
        }
    }
    if (e)
        return nomem(f);
    return copy(
        f,
        sql_text(p, sql, &dead_table,
                 "COPY lf_stg_dead ({cols}) FROM STDIN (FORMAT binary)"),
        c);
}

/* Step: everything derived goes to the server: the rows to merge into the
 * staging tables, the rows known to be new straight into their tables. */
static lf_err_t stage(flush_t *f)
{
    static const struct {
        const char *tmpl;
        const table_t *t;
        size_t buf; /* offset of the buffer in stage_bufs_t */
    } copies[] = {
        {"COPY lf_stg_leads ({cols}) FROM STDIN (FORMAT binary)", &leads_table,
         offsetof(stage_bufs_t, leads)},
        {"COPY lf_stg_visits ({cols}) FROM STDIN (FORMAT binary)",
         &visits_table, offsetof(stage_bufs_t, visits)},
        {"COPY lf_stg_anomalies ({cols}) FROM STDIN (FORMAT binary)",
         &anomalies_table, offsetof(stage_bufs_t, anomalies)},
        {"COPY {schema}.leads ({cols}) FROM STDIN (FORMAT binary)",
         &leads_table, offsetof(stage_bufs_t, leads_new)},
        {"COPY {schema}.stage_history ({cols}) FROM STDIN (FORMAT binary)",
         &visits_table, offsetof(stage_bufs_t, visits_new)},
        {"COPY {schema}.anomalies ({cols}) FROM STDIN (FORMAT binary)",
         &anomalies_table, offsetof(stage_bufs_t, anomalies_new)},
    };
    char sql[SQL_MAX];
    lf_err_t err = stage_dead_and_keys(f, &f->b.anomalies);

    for (size_t i = 0; !err && i < sizeof(copies) / sizeof(*copies); i++)
        err = copy(f, sql_text(f->p, sql, copies[i].t, copies[i].tmpl),
                   (lf_buf_t *)((char *)&f->b + copies[i].buf));
    if (!err)
        f->st.anomalies += f->b.nanomalies_new;
    return err;
}

/* Step: upsert the staged leads (those that may have a row). */
static lf_err_t merge_leads(flush_t *f)
{
    char sql[SQL_MAX];

    if (!f->b.leads.len)
        return LF_OK;
    sql_text(f->p, sql, &leads_table,
             "INSERT INTO {schema}.leads ({cols}) SELECT * FROM lf_stg_leads "
             "ON CONFLICT (lead_id) DO UPDATE SET {set}, updated_at = now()");
    return run(f, sql, "writing leads", 0, NULL, NULL, NULL);
}

/* Step: upsert the staged visits (the current one may have ended). */
static lf_err_t merge_visits(flush_t *f)
{
    char sql[SQL_MAX];

    if (!f->b.visits.len)
        return LF_OK;
    sql_text(f->p, sql, &visits_table,
             "INSERT INTO {schema}.stage_history ({cols}) "
             "SELECT * FROM lf_stg_visits "
             "ON CONFLICT (lead_id, visit) DO UPDATE SET {set}");
    return run(f, sql, "writing stage history", 0, NULL, NULL, NULL);
}

/* Step: add the staged anomalies the table does not hold (counting the new
 * state and void anomalies). The recomputed leads' resolved ones went in
 * derive (delete_changed()). */
static lf_err_t merge_anomalies(flush_t *f)
{
    PGresult *res = NULL;
    char sql[SQL_MAX];
    lf_err_t err;

    if (f->b.anomalies.len) {
        /* Listed under the person (a merged lead's under its surviving
         * lead); a recompute may move an anomaly from one to another. */
        sql_text(f->p, sql, &anomalies_table,
                 "WITH ins AS (INSERT INTO {schema}.anomalies ({cols}) "
                 "SELECT DISTINCT ON (s.event_id, s.kind, s.reason) "
                 "s.event_id, coalesce(m.surviving_lead_id, s.lead_id), "
                 "s.kind, s.reason FROM lf_stg_anomalies AS s LEFT JOIN "
                 "{schema}.merges AS m USING (lead_id) "
                 "ON CONFLICT (event_id, kind, reason) DO UPDATE SET "
                 "lead_id = EXCLUDED.lead_id WHERE anomalies.lead_id <> "
                 "EXCLUDED.lead_id RETURNING kind, xmax = 0 AS fresh) "
                 "SELECT count(*) FILTER (WHERE kind = 'state' AND fresh), "
                 "count(*) FILTER (WHERE kind = 'void' AND fresh) FROM ins");
        if ((err = run(f, sql, "writing anomalies", 0, NULL, NULL, &res)))
            return err;
        f->st.anomalies += strtoull(PQgetvalue(res, 0, 0), NULL, 10);
        f->st.void_anomalies = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
        PQclear(res);
    }
    return LF_OK;
}

/* Step: add the dead letters not stored before; only those count (a
 * letter read again, by another group or after a rewind, is not new). */
static lf_err_t store_dead_letters(flush_t *f)
{
    PGresult *res = NULL;
    char sql[SQL_MAX];
    lf_err_t err;

    if (!f->st.dead_letters)
        return LF_OK;
    sql_text(f->p, sql, &dead_table,
             "INSERT INTO {schema}.dead_letters ({cols}) "
             "SELECT * FROM lf_stg_dead "
             "ON CONFLICT (topic, partition, \"offset\") DO NOTHING");
    if ((err = run(f, sql, "writing dead letters", 0, NULL, NULL, &res)))
        return err;
    f->st.dead_letters = strtoull(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return LF_OK;
}

/* The offsets the batch's decoded messages span, per partition. */
typedef struct read_span_s {
    int topic;
    int32_t partition;
    int64_t lo, hi;
} read_span_t;

static size_t decoded_spans(const lf_projector_t *p, read_span_t *out,
                            size_t max)
{
    size_t n = 0, j;

    for (size_t i = 0; i < p->count; i++) {
        const entry_t *e = &p->entries[i];
        if (e->dead)
            continue;
        for (j = 0; j < n && (out[j].topic != e->topic ||
                              out[j].partition != e->partition);
             j++)
            ;
        if (j == n) {
            if (n == max)
                return SIZE_MAX;
            out[n++] =
                (read_span_t){e->topic, e->partition, e->offset, e->offset};
        }
        if (e->offset < out[j].lo)
            out[j].lo = e->offset;
        if (e->offset > out[j].hi)
            out[j].hi = e->offset;
    }
    return n;
}

/* The batch's entry at a position, decoded, keyed @p key (its lead_id as
 * the message named it) and of no erased person; NULL if none. A letter
 * whose message it is not (a topic made again, another cluster's offsets)
 * has another key but by chance; an erased person's letter is left to
 * the erasure's rules. */
static const entry_t *decoded_at(const lf_projector_t *p, const char *topic,
                                 int32_t partition, int64_t offset,
                                 const unsigned char *key, size_t key_len)
{
    for (size_t i = 0; i < p->count; i++) {
        const entry_t *e = &p->entries[i];
        if (!e->dead && e->offset == offset && e->partition == partition &&
            !strcmp(p->topics[e->topic], topic))
            return !e->was_lead && strlen(e->ev.lead_id) == key_len &&
                           !memcmp(e->ev.lead_id, key, key_len)
                       ? e
                       : NULL;
    }
    return NULL;
}

/* Open dead letters at positions this batch read again and decoded (a
 * rewind after the cause was fixed: a newer build, the registry back):
 * their ids into @p ids and the events they became into @p evs (arrays
 * for SQL); *found of them. */
static lf_err_t find_reread(flush_t *f, lf_buf_t *ids, lf_buf_t *evs,
                            size_t *found)
{
    lf_projector_t *p = f->p;
    read_span_t spans[512];
    size_t n = decoded_spans(p, spans, 512);
    lf_buf_t t = {0}, q[3] = {{0}};
    const char *names[512], **ev_ids = NULL;
    PGresult *res = NULL;
    char sql[SQL_MAX];
    lf_err_t err = LF_OK;
    bool ok = true;

    *found = 0;
    if (!n || n == SIZE_MAX) /* (more partitions: a retry resolves them) */
        return LF_OK;
    for (size_t i = 0; i < n; i++)
        names[i] = p->topics[spans[i].topic];
    for (int k = 0; k < 3; k++) {
        ok = ok && !lf_buf_puts(&q[k], "{");
        for (size_t i = 0; i < n; i++)
            ok = ok && !lf_buf_printf(&q[k], "%s%lld", i ? "," : "",
                                      (long long)(k == 0   ? spans[i].partition
                                                  : k == 1 ? spans[i].lo
                                                           : spans[i].hi));
        ok = ok && !lf_buf_puts(&q[k], "}");
    }
    if (!ok || lf_pg_text_array(&t, names, n)) {
        err = nomem(f);
        goto out;
    }
    const char *params[4] = {t.data, q[0].data, q[1].data, q[2].data};
    snprintf(sql, sizeof(sql),
             "SELECT d.id, d.topic, d.partition, d.\"offset\", d.key FROM "
             "%s.dead_letters AS d, unnest($1::text[], $2::int[], "
             "$3::bigint[], $4::bigint[]) AS u(t, p, lo, hi) WHERE d.topic = "
             "u.t AND d.partition = u.p AND d.\"offset\" BETWEEN u.lo AND "
             "u.hi AND d.resolved_at IS NULL AND d.key IS NOT NULL AND "
             "d.received_at < now()", /* (not this batch's own) */
             p->schema);
    if ((err = lf_pg_query(f->conn, sql, 4, params,
                           "finding dead letters read again", &res, f->errstr,
                           f->errstr_size)) ||
        !PQntuples(res))
        goto out;
    if (!(ev_ids = malloc(PQntuples(res) * sizeof(*ev_ids))) ||
        lf_buf_puts(ids, "{")) {
        err = nomem(f);
        goto out;
    }
    for (int r = 0; ok && r < PQntuples(res); r++) {
        size_t klen = 0;
        unsigned char *key = PQunescapeBytea(
            (const unsigned char *)PQgetvalue(res, r, 4), &klen);
        const entry_t *e =
            key ? decoded_at(p, PQgetvalue(res, r, 1),
                             (int32_t)atol(PQgetvalue(res, r, 2)),
                             strtoll(PQgetvalue(res, r, 3), NULL, 10), key,
                             klen)
                : NULL;
        ok = key != NULL;
        PQfreemem(key);
        if (e) {
            ok = ok && !lf_buf_printf(ids, "%s%s", *found ? "," : "",
                                      PQgetvalue(res, r, 0));
            ev_ids[(*found)++] = e->ev.event_id;
        }
    }
    if (!ok || lf_buf_puts(ids, "}") ||
        (*found && lf_pg_text_array(evs, ev_ids, *found)))
        err = nomem(f);
out:
    free(ev_ids);
    PQclear(res);
    lf_buf_free(&t);
    for (int k = 0; k < 3; k++)
        lf_buf_free(&q[k]);
    return err;
}

/* Step: resolve the dead letters this batch read again and decoded: the
 * event, or the conflict it was (record_conflicts() named the position). */
static lf_err_t resolve_reread(flush_t *f)
{
    lf_buf_t ids = {0}, evs = {0};
    const char *params[2];
    char sql[SQL_MAX];
    size_t found;
    lf_err_t err = find_reread(f, &ids, &evs, &found);

    if (!err && found) {
        params[0] = ids.data;
        params[1] = evs.data;
        snprintf(sql, sizeof(sql),
                 "UPDATE %s.dead_letters AS d SET resolved_at = now(), "
                 "resolution = CASE WHEN EXISTS (SELECT 1 FROM %s.anomalies "
                 "AS a WHERE a.event_id = u.e AND a.kind = 'conflict' AND "
                 "right(a.reason, length(' at ' || d.topic || ' partition ' "
                 "|| d.partition || ' offset ' || d.\"offset\")) = ' at ' || "
                 "d.topic || ' partition ' || d.partition || ' offset ' || "
                 "d.\"offset\") THEN 'not applied, a conflict with the stored "
                 "event ' ELSE 'applied as event ' END || u.e || ' by "
                 "leadflow-project " LF_VERSION " when it read the message "
                 "again' FROM unnest($1::bigint[], $2::text[]) AS u(id, e) "
                 "WHERE d.id = u.id AND d.resolved_at IS NULL",
                 f->p->schema, f->p->schema);
        err = lf_pg_query(f->conn, sql, 2, params,
                          "resolving dead letters read again", NULL, f->errstr,
                          f->errstr_size);
    }
    lf_buf_free(&ids);
    lf_buf_free(&evs);
    return err;
}

/* A partition declared to have no stored offset has no row to lock FOR
 * UPDATE: two instances that both found none (one kept it past a
 * rebalance) would both write its first batch. Each takes the partition's
 * advisory lock first (in one sorted order: no cycle of waits), so the
 * second reads the row the first committed, and is refused. */
static lf_err_t lock_new_partitions(flush_t *f)
{
    lf_projector_t *p = f->p;
    lf_ids_t names = {0};
    char name[300];
    lf_err_t err = LF_OK;

    for (size_t i = 0; !err && i < p->off_count; i++) {
        const next_offset_t *o = &p->offs[i];
        if (o->from != LF_PROJECTOR_NO_ROW)
            continue;
        snprintf(name, sizeof(name), "%d/%s", (int)o->partition,
                 p->topics[o->topic]);
        err = lf_ids_add(&names, name) ? nomem(f) : LF_OK;
    }
    if (!err && names.n) {
        lf_buf_reset(&p->arr);
        err = lf_pg_text_array(&p->arr, (const char *const *)names.v, names.n)
                  ? nomem(f)
                  : run(f, LF_PROJECTOR_PARTITION_LOCK_SQL,
                        "locking new partitions", 2, p->group_id, p->arr.data,
                        NULL);
    }
    lf_ids_free(&names);
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
    lf_err_t err;

    if ((err = lock_new_partitions(f)))
        return err;

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

/* Step: the next offset of every partition in the batch, in the same
 * transaction as what was read up to it (nothing without a group). */
static lf_err_t store_offsets(flush_t *f)
{
    lf_projector_t *p = f->p;
    char sql[SQL_MAX];
    lf_err_t err;

    if (!p->group_id)
        return LF_OK;
    if ((err = check_continues(f)))
        return err;
    sql_text(p, sql, NULL,
             "INSERT INTO {schema}.offsets (group_id, topic, partition, "
             "next_offset) VALUES ($1, $2, $3, $4) "
             "ON CONFLICT (group_id, topic, partition) DO UPDATE SET "
             "next_offset = EXCLUDED.next_offset, updated_at = now()");
    for (size_t i = 0; i < p->off_count; i++) {
        char part[16], next[24];
        const char *params[4] = {p->group_id, p->topics[p->offs[i].topic], part,
                                 next};
        PGresult *res;

        snprintf(part, sizeof(part), "%d", (int)p->offs[i].partition);
        snprintf(next, sizeof(next), "%lld", (long long)p->offs[i].next);
        res = PQexecParams(f->conn, sql, 4, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            err = fail(f, res, "storing offsets");
            PQclear(res);
            return err;
        }
        PQclear(res);
    }
    return LF_OK;
}

/* ---- flush ------------------------------------------------------------ */

/* f->leads: the batch's leads, each once (pointers into its entries). */
static void list_leads(flush_t *f)
{
    lf_projector_t *p = f->p;

    f->nleads = 0;
    for (size_t i = 0; i < p->leadset_cap; i++)
        if (p->leadset[i])
            f->leads[f->nleads++] = p->leadset[i];
}

/* After entries' lead ids were replaced (erased people): the batch's lead
 * set again, from the entries. @returns false when out of memory. */
static bool relist_leads(flush_t *f)
{
    lf_projector_t *p = f->p;

    if (p->leadset_cap)
        memset(p->leadset, 0, p->leadset_cap * sizeof(*p->leadset));
    p->leads = 0;
    for (size_t i = 0; i < p->count; i++)
        if (!p->entries[i].dead && !lead_add(p, p->entries[i].ev.lead_id))
            return false;
    list_leads(f);
    return true;
}

/* Add the lock name of lead @p id to f->locks: with a key ring its
 * pseudonym, so that an erased lead's events (stored under the
 * pseudonym) and its later messages (under the original id) take the
 * same lock; else the id. */
static lf_err_t add_lock(flush_t *f, const char *id)
{
    char ps[LF_PSEUDONYM_LEN + 1];

    if (!f->p->ps || lf_pseudonym_is(id))
        return lf_ids_add(&f->locks, id);
    lf_pseudonym_of(f->p->ps, 0, id, strlen(id), ps);
    return lf_ids_add(&f->locks, ps);
}

/* Step zero, before the transaction: the batch's events in event_id order
 * (for finding an id twice in the batch, for mark_new's search, and as
 * the COPY order, the primary key's) and its leads, each once (the server
 * orders the locks). */
static lf_err_t list_batch(flush_t *f)
{
    lf_projector_t *p = f->p;

    if (!(f->ev_idx = calloc(p->count + 1, sizeof(*f->ev_idx))) ||
        !(f->leads = calloc(p->count + 1, sizeof(*f->leads))))
        return nomem(f);
    for (size_t i = 0; i < p->count; i++) {
        p->entries[i].is_new = false;
        if (!p->entries[i].dead)
            f->ev_idx[f->nev++] = i;
    }
    if (!sort_entries(p, f->ev_idx, f->nev, false))
        return nomem(f);
    list_leads(f);
    for (size_t i = 0; i < f->nleads; i++)
        if (add_lock(f, f->leads[i]))
            return nomem(f);
    /* A dead letter's key, or the key of an event sent under another one,
     * may be a lead id: lock it as that lead's (the pseudonym of its
     * bytes), so that an erasure of that lead on another writer is done
     * before this batch looks for erased keys. */
    for (size_t i = 0; p->ps && i < p->count; i++) {
        const entry_t *e = &p->entries[i];
        char ps[LF_PSEUDONYM_LEN + 1];
        if (!e->key)
            continue;
        lf_pseudonym_of(p->ps, 0, e->key, e->key_len, ps);
        if (lf_ids_add(&f->locks, ps))
            return nomem(f);
    }
    return LF_OK;
}

/* Lock leads @p names (lock names, add_lock()) in one global order (of the
 * lock keys), so two instances never interleave on one lead. The batch's
 * leads are locked first, all at once, so two instances never deadlock
 * on them; leads found later (merge components, voids) are locked when
 * found, and a deadlock there is retried as any transient failure. */
static lf_err_t lock_names(flush_t *f, const lf_ids_t *names)
{
    lf_projector_t *p = f->p;

    if (!names->n)
        return LF_OK;
    lf_buf_reset(&p->arr);
    if (lf_pg_text_array(&p->arr, (const char *const *)names->v, names->n))
        return nomem(f);
    return run(f,
               "SELECT count(pg_advisory_xact_lock(k)) FROM "
               "(SELECT DISTINCT hashtextextended(l, 0) AS k FROM "
               "unnest($1::text[]) AS l ORDER BY 1) AS s",
               "locking leads", 1, p->arr.data, NULL, NULL);
}

/* Step: lock the batch's leads before touching them. */
static lf_err_t lock_leads(flush_t *f)
{
    return lock_names(f, &f->locks);
}

/* ---- identity: erased people on the way in ------------------------------ */

/* Run template @p tmpl (SQL_MAX, {schema}) with, when @p in is not NULL,
 * the text[] of @p in as $1, and add column 0 of every row to @p out,
 * sorted after. */
static lf_err_t query_ids(flush_t *f, const char *tmpl, const char *what,
                          const lf_ids_t *in, lf_ids_t *out)
{
    lf_projector_t *p = f->p;
    PGresult *res = NULL;
    char sql[SQL_MAX];
    lf_err_t err;

    lf_buf_reset(&p->arr);
    if (in && lf_pg_text_array(&p->arr, (const char *const *)in->v, in->n))
        return nomem(f);
    sql_text(p, sql, NULL, tmpl);
    if ((err = run(f, sql, what, in ? 1 : 0, in ? p->arr.data : NULL, NULL,
                   &res)))
        return err;
    for (int r = 0; !err && r < PQntuples(res); r++)
        err = lf_ids_add(out, PQgetvalue(res, r, 0)) ? nomem(f) : LF_OK;
    PQclear(res);
    lf_ids_sort(out);
    return err;
}

/* Without a key ring nothing can be erased: a batch holding an erased
 * event, or any batch once SCHEMA.erased_leads holds a pseudonym (its
 * events might be an erased person's), is refused. */
static lf_err_t need_no_key(flush_t *f)
{
    lf_projector_t *p = f->p;
    PGresult *res = NULL;
    char sql[SQL_MAX];
    bool erased = false;
    lf_err_t err;

    for (size_t k = 0; k < f->nev && !erased; k++)
        erased = p->entries[f->ev_idx[k]].ev.type == LF_EV_ERASED;
    if (!erased) {
        sql_text(p, sql, NULL,
                 "SELECT EXISTS (SELECT 1 FROM {schema}.erased_leads)");
        if ((err = run(f, sql, "checking erasures", 0, NULL, NULL, &res)))
            return err;
        erased = !strcmp(PQgetvalue(res, 0, 0), "t");
        PQclear(res);
        if (!erased)
            return LF_OK;
    }
    return lf_seterr(LF_ERR_CONFIG, f->errstr, f->errstr_size,
                     "%s: people are erased here but no pseudonym key is "
                     "configured: set %s (every instance of the group "
                     "needs the same key file)",
                     p->schema, LF_CONF_PSEUDONYM_KEY_FILE);
}

/* The erased_leads rows among pseudonyms $1. */
#define ERASED_AMONG                                                           \
    "SELECT pseudonym FROM {schema}.erased_leads "                             \
    "WHERE pseudonym = ANY($1::text[])"

/* Add the pseudonyms of @p id (@p n bytes) under every key from key
 * @p from on to @p out. */
static lf_err_t add_pseudonyms(const lf_pseudonym_t *ps, size_t from,
                               const void *id, size_t n, lf_ids_t *out)
{
    char buf[LF_PSEUDONYM_LEN + 1];
    lf_err_t err = LF_OK;

    for (size_t k = from; !err && k < lf_pseudonym_keys(ps); k++) {
        lf_pseudonym_of(ps, k, id, n, buf);
        err = lf_ids_add(out, buf);
    }
    return err;
}

/* The pseudonym of @p id (@p n bytes) under some key that @p hits
 * (erased_leads rows) holds, into @p out. @returns false when none. */
static bool erased_as(const lf_pseudonym_t *ps, const lf_ids_t *hits,
                      const void *id, size_t n, char *out)
{
    for (size_t k = 0; hits->n && k < lf_pseudonym_keys(ps); k++) {
        lf_pseudonym_of(ps, k, id, n, out);
        if (lf_ids_has(hits, out))
            return true;
    }
    return false;
}

/* The erased_leads rows among the pseudonyms of the batch's lead ids
 * (each once: f->leads), the leads its merged events name and its dead
 * letters' keys, into @p hits. Under key 0 they are the batch's lock
 * names already (list_batch()); those also hold the leads that are
 * pseudonyms themselves, whose hits forget_entry() passes over. */
static lf_err_t erased_hits(flush_t *f, lf_ids_t *hits)
{
    lf_projector_t *p = f->p;
    lf_ids_t cand = {0};
    lf_err_t err = LF_OK;

    for (size_t i = 0; !err && i < f->locks.n; i++)
        err = lf_ids_add(&cand, f->locks.v[i]);
    for (size_t i = 0; !err && i < f->nleads; i++)
        if (!lf_pseudonym_is(f->leads[i]))
            err = add_pseudonyms(p->ps, 1, f->leads[i], strlen(f->leads[i]),
                                 &cand);
    for (size_t i = 0; !err && i < p->count; i++) {
        const entry_t *e = &p->entries[i];
        if (e->dead) {
            if (e->key)
                err = add_pseudonyms(p->ps, 1, e->key, e->key_len, &cand);
            continue;
        }
        if (e->key) /* an event under another lead's key */
            err = add_pseudonyms(p->ps, 1, e->key, e->key_len, &cand);
        if (!err && e->ev.type == LF_EV_MERGED &&
            !lf_pseudonym_is(e->ev.u.merged.into_lead_id))
            err = add_pseudonyms(p->ps, 0, e->ev.u.merged.into_lead_id,
                                 strlen(e->ev.u.merged.into_lead_id), &cand);
    }
    if (err)
        err = nomem(f);
    else
        err = query_ids(f, ERASED_AMONG, "checking erasures", &cand, hits);
    lf_ids_free(&cand);
    return err;
}

/* An erased person's dead letter: its key and value go, the error stays,
 * quoting @p pseudonym where it quoted the key (a self-merge's error names
 * the lead id), as the erasure's SQL has it for the stored ones. */
static lf_err_t forget_dead(entry_t *e, const char *pseudonym)
{
    static const char mark[] = LF_ERASED_NOTE;
    char *id = strndup(e->key, e->key_len), *note = NULL, *grown = NULL;
    size_t n;

    if (id)
        note = lf_event_replace_words(e->note, id, pseudonym);
    free(id);
    if (note && !(grown = realloc(note, (n = strlen(note)) + sizeof(mark))))
        free(note);
    if (!grown)
        return LF_ERR_NOMEM;
    memcpy(grown + n, mark, sizeof(mark));
    free(e->note);
    e->note = grown;
    free(e->key);
    free(e->value);
    e->key = e->value = NULL;
    e->key_len = e->value_len = 0;
    return LF_OK;
}

/* The key anomaly of an erased person's event: it quoted the key. */
static lf_err_t forget_key_note(entry_t *e)
{
    char *note;

    if (!e->note || strncmp(e->note, "Kafka key \"", 11))
        return LF_OK;
    if (!(note = strdup(LF_KEY_ERASED_NOTE)))
        return LF_ERR_NOMEM;
    free(e->note);
    e->note = note;
    return LF_OK;
}

/* Erase entry @p e when it is an erased person's, as @p hits says. */
static lf_err_t forget_entry(const lf_pseudonym_t *ps, const lf_ids_t *hits,
                             entry_t *e)
{
    char lead[LF_PSEUDONYM_LEN + 1], into[LF_PSEUDONYM_LEN + 1];
    bool l, i = false;
    lf_err_t err;

    if (e->dead)
        return e->key && erased_as(ps, hits, e->key, e->key_len, lead)
                   ? forget_dead(e, lead)
                   : LF_OK;
    if (e->key && erased_as(ps, hits, e->key, e->key_len, into) &&
        (err = forget_key_note(e)))
        return err;
    l = !lf_pseudonym_is(e->ev.lead_id) &&
        erased_as(ps, hits, e->ev.lead_id, strlen(e->ev.lead_id), lead);
    if (e->ev.type == LF_EV_MERGED)
        i = !lf_pseudonym_is(e->ev.u.merged.into_lead_id) &&
            erased_as(ps, hits, e->ev.u.merged.into_lead_id,
                      strlen(e->ev.u.merged.into_lead_id), into);
    if (!l && !i)
        return LF_OK;
    if ((err = lf_event_forget(&e->ev, l ? lead : NULL, i ? into : NULL)))
        return err;
    return l ? forget_key_note(e) : LF_OK;
}

/* Step: erase on the way in. Every message of a lead whose pseudonym is
 * in SCHEMA.erased_leads (an event, a merged event's target, a dead
 * letter's key) is erased before anything of it is stored: the events
 * under the pseudonym without their personal fields, the dead letters
 * without key and value. */
static lf_err_t erased_in(flush_t *f)
{
    lf_projector_t *p = f->p;
    lf_ids_t hits = {0};
    lf_err_t err;

    if (!p->ps)
        return need_no_key(f);
    if ((err = erased_hits(f, &hits)) || !hits.n) {
        lf_ids_free(&hits);
        return err;
    }
    for (size_t i = 0; !err && i < p->count; i++)
        err = forget_entry(p->ps, &hits, &p->entries[i]);
    lf_ids_free(&hits);
    if (err || !relist_leads(f))
        return nomem(f);
    return LF_OK;
}

/* ---- identity: merges, erasures, voids ---------------------------------- */

/* The new events of the batch, by what identity makes of them: the
 * seeds of merge components (both leads of a merged event, the lead of an
 * erased event), the erased leads, the leads of voided events, and the
 * stage events (a stored void may name one). */
typedef struct seeds_s {
    lf_component_t c;
    lf_ids_t erase, voids;
    lf_ids_t now; /* the component's ids as stored now (pseudonyms) */
} seeds_t;

static void seeds_free(seeds_t *s)
{
    lf_component_free(&s->c);
    lf_ids_free(&s->erase);
    lf_ids_free(&s->voids);
    lf_ids_free(&s->now);
}

static lf_err_t gather_seeds(flush_t *f, seeds_t *s)
{
    lf_projector_t *p = f->p;
    lf_err_t e = LF_OK;

    for (size_t k = 0; !e && k < f->nev; k++) {
        const entry_t *en = &p->entries[f->ev_idx[k]];
        const lf_event_t *ev = &en->ev;
        if (!en->is_new)
            continue;
        e = lf_ids_add(&f->new_ids, ev->event_id);
        if (e)
            break;
        switch (ev->type) {
        case LF_EV_MERGED:
            e = lf_ids_add(&s->c.ids, ev->lead_id) ||
                        lf_ids_add(&s->c.ids, ev->u.merged.into_lead_id)
                    ? LF_ERR_NOMEM
                    : LF_OK;
            break;
        case LF_EV_ERASED:
            e = lf_ids_add(&s->c.ids, ev->lead_id) ||
                        lf_ids_add(&s->erase, ev->lead_id)
                    ? LF_ERR_NOMEM
                    : LF_OK;
            break;
        case LF_EV_VOIDED:
            e = lf_ids_add(&s->voids, ev->lead_id);
            break;
        default:
            break;
        }
    }
    lf_ids_sort(&f->new_ids);
    lf_ids_sort(&s->erase);
    return e;
}

/* Lock the lock names of @p ids (found after the batch's own locks). */
static lf_err_t lock_more(flush_t *f, char *const *ids, size_t n)
{
    lf_ids_t saved = f->locks;
    lf_err_t err = LF_OK;

    memset(&f->locks, 0, sizeof(f->locks));
    for (size_t i = 0; !err && i < n; i++)
        err = add_lock(f, ids[i]);
    err = err ? nomem(f) : lock_names(f, &f->locks);
    lf_ids_free(&f->locks);
    f->locks = saved;
    return err;
}

/* Lock the lock names of @p ids without waiting for another transaction:
 * *got says whether all were free (those that were stay locked). While
 * settling, wait for them. */
static lf_err_t try_lock_more(flush_t *f, char *const *ids, size_t n, bool *got)
{
    lf_projector_t *p = f->p;
    lf_ids_t names = {0};
    PGresult *res = NULL;
    lf_err_t err = LF_OK;

    *got = true;
    if (p->settling)
        return lock_more(f, ids, n);
    for (size_t i = 0; !err && i < n; i++) {
        lf_ids_t saved = f->locks;
        memset(&f->locks, 0, sizeof(f->locks));
        err = add_lock(f, ids[i]);
        if (!err && f->locks.n)
            err = lf_ids_add(&names, f->locks.v[0]);
        lf_ids_free(&f->locks);
        f->locks = saved;
    }
    lf_buf_reset(&p->arr);
    if (err ||
        lf_pg_text_array(&p->arr, (const char *const *)names.v, names.n)) {
        lf_ids_free(&names);
        return nomem(f);
    }
    lf_ids_free(&names);
    err = run(f,
              "SELECT coalesce(bool_and(pg_try_advisory_xact_lock(k)), true) "
              "FROM (SELECT DISTINCT hashtextextended(l, 0) AS k FROM "
              "unnest($1::text[]) AS l ORDER BY 1) AS s",
              "locking leads", 1, p->arr.data, NULL, &res);
    if (!err)
        *got = !strcmp(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    return err;
}

/* The identity_pending rows of leads $1 that no other transaction holds
 * (taken by its pending_seeds(), or being added or deleted by it). */
#define PENDING_FREE                                                           \
    "SELECT ctid FROM {schema}.identity_pending "                              \
    "WHERE lead_id = ANY($1::text[]) FOR UPDATE SKIP LOCKED"

/* Leave component @p c's leads in SCHEMA.identity_pending: another
 * writer holds some of them; the next batch, or the projector when idle,
 * works the component out. Never waiting for another writer's
 * transaction: the table has no unique key, and the component's rows are
 * written anew, replacing those no other transaction holds. A row another
 * writer is adding or clearing at this moment stays its business, so a
 * lead may be listed twice for a while (pending_seeds reads it once);
 * skipping a lead because a row of it is visible would lose this batch's
 * merges when that row's deletion commits. */
static lf_err_t defer_component(flush_t *f, const lf_component_t *c)
{
    lf_projector_t *p = f->p;
    char sql[SQL_MAX];

    lf_buf_reset(&p->arr);
    if (lf_pg_text_array(&p->arr, (const char *const *)c->ids.v, c->ids.n))
        return nomem(f);
    sql_text(p, sql, NULL,
             "WITH taken AS (DELETE FROM {schema}.identity_pending "
             "WHERE ctid IN (" PENDING_FREE ")) "
             "INSERT INTO {schema}.identity_pending (lead_id) "
             "SELECT unnest($1::text[])");
    LF_LOG(LF_LOG_DEBUG,
           "msg=\"merges wait for another writer's leads\" leads=%zu",
           c->ids.n);
    return run(f, sql, "deferring merges", 1, p->arr.data, NULL, NULL);
}

/* The leads left waiting (by this or another projector) that no other
 * transaction is working out, as seeds: some at a time. */
static lf_err_t pending_seeds(flush_t *f, seeds_t *s)
{
    return query_ids(f,
                     "SELECT lead_id FROM {schema}.identity_pending "
                     "ORDER BY lead_id LIMIT 500 FOR UPDATE SKIP LOCKED",
                     "reading waiting merges", NULL, &s->c.ids);
}

/* The erased_leads rows that the component's ids hit: an id stored as a
 * pseudonym, or an original id under some key's pseudonym. */
static lf_err_t erased_among(flush_t *f, const lf_ids_t *ids, lf_ids_t *hits)
{
    lf_projector_t *p = f->p;
    lf_ids_t cand = {0};
    lf_err_t err = LF_OK;

    for (size_t i = 0; !err && i < ids->n; i++)
        err =
            lf_pseudonym_is(ids->v[i]) || !p->ps
                ? lf_ids_add(&cand, ids->v[i])
                : add_pseudonyms(p->ps, 0, ids->v[i], strlen(ids->v[i]), &cand);
    err = err ? nomem(f)
              : query_ids(f, ERASED_AMONG, "checking erasures", &cand, hits);
    lf_ids_free(&cand);
    return err;
}

/* The component's leads with an erased event stored (this batch's or an
 * earlier one's, left waiting) join s->erase. */
static lf_err_t erased_events_among(flush_t *f, seeds_t *s)
{
    return query_ids(f,
                     "SELECT DISTINCT lead_id FROM {schema}.events "
                     "WHERE type = 'erased' AND lead_id = ANY($1::text[])",
                     "finding erased events", &s->c.ids, &s->erase);
}

/* Union-find over the component's merges: the representative of each id
 * (by index in c->ids). */
static size_t find_rep(size_t *up, size_t i)
{
    while (up[i] != i)
        i = up[i] = up[up[i]];
    return i;
}

static size_t index_of(const lf_ids_t *ids, const char *id)
{
    size_t lo = 0, hi = ids->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(ids->v[mid], id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The ids to erase: every id not erased yet of each component that holds
 * an erased event's lead or an erased id. */
static lf_err_t to_erase(const seeds_t *s, const lf_ids_t *erased,
                         lf_ids_t *out)
{
    const lf_component_t *c = &s->c;
    size_t *up = malloc((c->ids.n + 1) * sizeof(*up));
    bool *hit = calloc(c->ids.n + 1, sizeof(*hit));
    lf_err_t err = LF_OK;

    if (!up || !hit) {
        free(up);
        free(hit);
        return LF_ERR_NOMEM;
    }
    for (size_t i = 0; i < c->ids.n; i++)
        up[i] = i;
    for (size_t i = 0; i < c->n; i++)
        up[find_rep(up, index_of(&c->ids, c->m[i].lead_id))] =
            find_rep(up, index_of(&c->ids, c->m[i].into_lead_id));
    for (size_t i = 0; i < c->ids.n; i++)
        if (lf_ids_has(&s->erase, c->ids.v[i]) ||
            lf_ids_has(erased, c->ids.v[i]))
            hit[find_rep(up, i)] = true;
    for (size_t i = 0; !err && i < c->ids.n; i++)
        if (hit[find_rep(up, i)] && !lf_ids_has(erased, c->ids.v[i]))
            err = lf_ids_add(out, c->ids.v[i]);
    free(up);
    free(hit);
    return err;
}

/* Replace erased ids in the batch's entries (the database has them as
 * pseudonyms now). */
static lf_err_t forget_in_batch(flush_t *f, const lf_ids_t *orig,
                                const lf_ids_t *pseud)
{
    lf_projector_t *p = f->p;
    lf_err_t err = LF_OK;

    for (size_t i = 0; !err && i < p->count; i++) {
        entry_t *e = &p->entries[i];
        const char *l = NULL, *t = NULL;
        size_t at;
        if (e->key) {
            char *k = strndup(e->key, e->key_len);
            if (!k)
                err = LF_ERR_NOMEM;
            else if ((at = index_of(orig, k)) < orig->n &&
                     !strcmp(orig->v[at], k))
                err =
                    e->dead ? forget_dead(e, pseud->v[at]) : forget_key_note(e);
            free(k);
        }
        if (err || e->dead)
            continue;
        at = index_of(orig, e->ev.lead_id);
        if (at < orig->n && !strcmp(orig->v[at], e->ev.lead_id))
            l = pseud->v[at];
        if (e->ev.type == LF_EV_MERGED) {
            at = index_of(orig, e->ev.u.merged.into_lead_id);
            if (at < orig->n &&
                !strcmp(orig->v[at], e->ev.u.merged.into_lead_id))
                t = pseud->v[at];
        }
        if ((l && !e->was_lead && !(e->was_lead = strdup(e->ev.lead_id))) ||
            (t && !e->was_into &&
             !(e->was_into = strdup(e->ev.u.merged.into_lead_id))))
            err = LF_ERR_NOMEM;
        else if ((l || t) && !(err = lf_event_forget(&e->ev, l, t)) && l)
            err = forget_key_note(e);
    }
    return err || !relist_leads(f) ? nomem(f) : LF_OK;
}

/* A flush failed and rolled back: put back the ids forget_in_batch()
 * replaced, as the batch had them when it was added. What it scrubbed
 * stays scrubbed; the retry scrubs the same again. */
static lf_err_t restore_erased(flush_t *f)
{
    lf_projector_t *p = f->p;
    bool any = false;

    for (size_t i = 0; i < p->count; i++) {
        entry_t *e = &p->entries[i];
        if (!e->was_lead && !e->was_into)
            continue;
        if (lf_event_rename(&e->ev, e->was_lead, e->was_into))
            return LF_ERR_NOMEM;
        free(e->was_lead);
        free(e->was_into);
        e->was_lead = e->was_into = NULL;
        any = true;
    }
    return !any || relist_leads(f) ? LF_OK : LF_ERR_NOMEM;
}

/* Erase ids @p orig (sorted) as @p pseud (pairs by index) in the tables
 * and in the batch's entries. */
static lf_err_t rewrite_erased(flush_t *f, const lf_ids_t *orig,
                               const lf_ids_t *pseud)
{
    lf_err_t err;

    if (!known_keys_sql())
        return nomem(f);
    if ((err = lf_identity_erase(f->conn, f->p->schema,
                                 (const char *const *)orig->v,
                                 (const char *const *)pseud->v, orig->n,
                                 known_keys_sql(), f->errstr, f->errstr_size)))
        return err;
    return forget_in_batch(f, orig, pseud);
}

/* Erase the components that need it (an erased event, or a merge that
 * joined an erased person); @p map gets original -> pseudonym. */
static lf_err_t erase_components(flush_t *f, seeds_t *s, const lf_ids_t *erased,
                                 lf_ids_t *orig, lf_ids_t *pseud)
{
    lf_projector_t *p = f->p;
    char buf[LF_PSEUDONYM_LEN + 1];
    lf_err_t err = erased_events_among(f, s);

    if (!err && to_erase(s, erased, orig))
        err = nomem(f);
    if (err || !orig->n)
        return err;
    lf_ids_sort(orig);
    if (!p->ps)
        return lf_seterr(LF_ERR_CONFIG, f->errstr, f->errstr_size,
                         "%s: an erased person is merged here but no "
                         "pseudonym key is configured: set %s",
                         p->schema, LF_CONF_PSEUDONYM_KEY_FILE);
    for (size_t i = 0; i < orig->n; i++) {
        lf_pseudonym_of(p->ps, 0, orig->v[i], strlen(orig->v[i]), buf);
        if (lf_ids_add(pseud, buf))
            return nomem(f);
    }
    return rewrite_erased(f, orig, pseud);
}

/* The id @p id is stored under now: its pseudonym if just erased. */
static const char *now_as(const lf_ids_t *orig, const lf_ids_t *pseud,
                          const char *id)
{
    size_t at = index_of(orig, id);
    return at < orig->n && !strcmp(orig->v[at], id) ? pseud->v[at] : id;
}

/* The erased_leads rows component @p c hits, into @p hits; its original
 * ids that are erased already, into @p orig, and the pseudonyms they are
 * erased under, into @p pseud (pairs by index; orig comes out sorted
 * because c->ids is, which now_as() and forget_in_batch() rely on). */
static lf_err_t erased_late(flush_t *f, const lf_component_t *c, lf_ids_t *hits,
                            lf_ids_t *orig, lf_ids_t *pseud)
{
    lf_projector_t *p = f->p;
    char buf[LF_PSEUDONYM_LEN + 1];
    lf_err_t err = erased_among(f, &c->ids, hits);

    for (size_t i = 0; !err && p->ps && hits->n && i < c->ids.n; i++) {
        const char *id = c->ids.v[i];
        if (!lf_pseudonym_is(id) && erased_as(p->ps, hits, id, strlen(id), buf))
            err = lf_ids_add(orig, id) || lf_ids_add(pseud, buf) ? nomem(f)
                                                                 : LF_OK;
    }
    return err;
}

/* Seed component @p c again with its ids as stored now. */
static lf_err_t reseed(lf_component_t *c, const lf_ids_t *orig,
                       const lf_ids_t *pseud)
{
    lf_component_t nc = {0};
    lf_err_t err = LF_OK;

    for (size_t i = 0; !err && i < c->ids.n; i++)
        err = lf_ids_add(&nc.ids, now_as(orig, pseud, c->ids.v[i]));
    lf_component_free(c);
    *c = nc;
    return err;
}

/* The component read again under its locks, and what it grew by locked,
 * until it holds still. The read came before the locks: a settle may have
 * waited for a writer that has since committed a merge of it (B into C
 * while A into B waited), and writing the component as read would delete
 * that writer's merge rows (a rolling-restart test lost merges so). */
static lf_err_t regrown(flush_t *f, lf_component_t *c, bool *got)
{
    for (;;) {
        size_t ids = c->ids.n, merges = c->n;
        lf_err_t err = lf_identity_component(f->conn, f->p->schema, c,
                                             f->errstr, f->errstr_size);
        if (err || (c->ids.n == ids && c->n == merges))
            return err;
        if ((err = try_lock_more(f, c->ids.v, c->ids.n, got)) || !*got)
            return err;
    }
}

/* Grow the seeds to their whole component and lock it (*got false:
 * another writer holds some of it). An original id in it that is erased
 * already is rewritten to its pseudonym first, and the component grown
 * again from there: one writer stored a merged event naming the id while
 * another erased its person, neither seeing the other's rows, and this is
 * the first component to see both. If the grown component is then held
 * by another writer, it waits in identity_pending with the rewrite done
 * (the rewrite only replaces rows still under the original id). @p hits
 * gets the erased_leads rows the final component hits. */
static lf_err_t whole_component(flush_t *f, seeds_t *s, bool *got,
                                lf_ids_t *hits)
{
    lf_projector_t *p = f->p;
    lf_err_t err;

    for (;;) {
        lf_ids_t orig = {0}, pseud = {0};
        lf_ids_free(hits);
        if ((err = lf_identity_component(f->conn, p->schema, &s->c, f->errstr,
                                         f->errstr_size)) ||
            (err = try_lock_more(f, s->c.ids.v, s->c.ids.n, got)) || !*got ||
            (err = regrown(f, &s->c, got)) || !*got)
            return err;
        err = erased_late(f, &s->c, hits, &orig, &pseud);
        if (!err && orig.n)
            err = rewrite_erased(f, &orig, &pseud);
        if (!err && orig.n && reseed(&s->c, &orig, &pseud))
            err = nomem(f);
        bool again = orig.n > 0;
        lf_ids_free(&orig);
        lf_ids_free(&pseud);
        if (err || !again)
            return err;
    }
}

static lf_err_t settled(flush_t *f, const seeds_t *s);

/* The batch's merge components: merges written, people erased, and
 * every person of them to recompute. */
static lf_err_t components(flush_t *f, seeds_t *s)
{
    lf_projector_t *p = f->p;
    lf_merge_counts_t counts = {0};
    lf_ids_t orig = {0}, pseud = {0}, hits = {0};
    const char **roots = NULL;
    bool got;
    lf_err_t err = whole_component(f, s, &got, &hits);

    if (!err && !got)
        err = defer_component(f, &s->c);
    if (err || !got)
        goto out;
    if (lf_identity_merge_rule(&s->c)) {
        err = nomem(f);
        goto out;
    }
    if ((err = lf_identity_write_merges(f->conn, p->schema, &s->c, &counts,
                                        f->errstr, f->errstr_size)))
        goto out;
    f->st.merges += counts.merges;
    f->st.merge_anomalies += counts.anomalies;
    if ((err = erase_components(f, s, &hits, &orig, &pseud)))
        goto out;
    roots = malloc((s->c.ids.n + 1) * sizeof(*roots));
    if (!roots || !lf_identity_roots(&s->c, roots))
        err = LF_ERR_NOMEM;
    for (size_t i = 0; !err && i < s->c.ids.n; i++) {
        const char *id = s->c.ids.v[i];
        const char *root = roots[i];
        err =
            lf_ids_add(&f->forced, now_as(&orig, &pseud, root)) ||
                    lf_ids_add(&s->now, now_as(&orig, &pseud, id)) ||
                    (strcmp(root, id) &&
                     (lf_ids_add(&f->cleared, now_as(&orig, &pseud, id)) ||
                      lf_ids_add(&f->cleared_of, now_as(&orig, &pseud, root))))
                ? LF_ERR_NOMEM
                : LF_OK;
    }
    if (err)
        err = nomem(f);
    if (!err)
        err = settled(f, s);
out:
    free(roots);
    lf_ids_free(&orig);
    lf_ids_free(&pseud);
    lf_ids_free(&hits);
    return err;
}

/* A component worked out: every erased event of its leads in
 * SCHEMA.erasures (under the pseudonym), and its leads no longer wait. */
static lf_err_t settled(flush_t *f, const seeds_t *s)
{
    lf_projector_t *p = f->p;
    PGresult *res = NULL;
    char sql[SQL_MAX];
    lf_err_t err;

    lf_buf_reset(&p->arr);
    if (lf_pg_text_array(&p->arr, (const char *const *)s->now.v, s->now.n))
        return nomem(f);
    sql_text(p, sql, NULL,
             "INSERT INTO {schema}.erasures (event_id, pseudonym, "
             "request_id, erased_at) SELECT event_id, lead_id, "
             "payload ->> 'request_id', occurred_at FROM {schema}.events "
             "WHERE type = 'erased' AND lead_id = ANY($1::text[]) "
             "ON CONFLICT DO NOTHING");
    if ((err = run(f, sql, "recording erasures", 1, p->arr.data, NULL, &res)))
        return err;
    f->st.erasures += strtoull(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    lf_buf_reset(&p->arr);
    if (lf_pg_text_array(&p->arr, (const char *const *)s->c.ids.v, s->c.ids.n))
        return nomem(f);
    /* Rows another writer has taken (pending_seeds) are left to it: it
     * works the component out again or leaves them for later, which
     * changes nothing once this one is worked out; waiting for its
     * transaction here would make the two writers take turns. */
    sql_text(p, sql, NULL,
             "DELETE FROM {schema}.identity_pending WHERE ctid IN "
             "(" PENDING_FREE ")");
    return run(f, sql, "clearing waiting merges", 1, p->arr.data, NULL, NULL);
}

/* The persons whose voids may change: those of the batch's voided events,
 * and, for the batch's events that a stored void names (a stage event it
 * now voids, or another that makes its anomaly say why), the void's
 * person and the event's. */
static lf_err_t void_persons(flush_t *f, const seeds_t *s)
{
    lf_projector_t *p = f->p;
    lf_buf_t ids = {0};
    PGresult *res = NULL;
    char sql[SQL_MAX];
    lf_err_t err;

    if (!f->new_ids.n && !s->voids.n)
        return LF_OK;
    lf_buf_reset(&p->arr);
    if (lf_pg_text_array(&ids, (const char *const *)f->new_ids.v,
                         f->new_ids.n) ||
        lf_pg_text_array(&p->arr, (const char *const *)s->voids.v,
                         s->voids.n)) {
        lf_buf_free(&ids);
        return nomem(f);
    }
    sql_text(p, sql, NULL,
             "WITH t AS (SELECT v.lead_id AS vl, v.payload ->> "
             "'voided_event_id' AS tid FROM {schema}.events AS v WHERE "
             "v.type = 'voided' AND v.payload ->> 'voided_event_id' = "
             "ANY($1::text[])) "
             "SELECT DISTINCT coalesce(m.surviving_lead_id, x.l) FROM "
             "(SELECT vl FROM t UNION SELECT e.lead_id FROM t JOIN "
             "{schema}.events AS e ON e.event_id = t.tid UNION "
             "SELECT unnest($2::text[])) AS x(l) "
             "LEFT JOIN {schema}.merges AS m ON m.lead_id = x.l");
    err = run(f, sql, "finding voids", 2, (const char *)ids.data, p->arr.data,
              &res);
    lf_buf_free(&ids);
    for (int r = 0; !err && r < PQntuples(res); r++)
        if (lf_ids_add(&f->forced, PQgetvalue(res, r, 0)))
            err = nomem(f);
    PQclear(res);
    return err;
}

/* The persons of void anomalies that say the target was not received
 * although it is stored: another writer stored the target while this
 * void's batch was in flight, neither seeing the other's row. */
#define STALE_VOIDS                                                            \
    "SELECT DISTINCT coalesce(m.surviving_lead_id, a.lead_id), a.lead_id "     \
    "FROM {schema}.anomalies AS a "                                            \
    "JOIN {schema}.events AS v ON v.event_id = a.event_id "                    \
    "JOIN {schema}.events AS t ON t.event_id = v.payload ->> "                 \
    "'voided_event_id' LEFT JOIN {schema}.merges AS m ON "                     \
    "m.lead_id = a.lead_id WHERE a.kind = 'void' AND "                         \
    "a.reason LIKE 'voided event % not received'"

/* While settling: the persons of stale void anomalies to recompute, and
 * the anomaly's lead cleared when it is no longer a person (its rows
 * are read and rewritten only as a recomputed lead's). */
static lf_err_t stale_voids(flush_t *f)
{
    PGresult *res = NULL;
    char sql[SQL_MAX];
    lf_err_t err;

    sql_text(f->p, sql, NULL, STALE_VOIDS);
    if ((err = run(f, sql, "finding voids", 0, NULL, NULL, &res)))
        return err;
    for (int r = 0; !err && r < PQntuples(res); r++) {
        const char *person = PQgetvalue(res, r, 0),
                   *lead = PQgetvalue(res, r, 1);
        if (lf_ids_add(&f->forced, person) ||
            (strcmp(person, lead) && (lf_ids_add(&f->cleared, lead) ||
                                      lf_ids_add(&f->cleared_of, person))))
            err = nomem(f);
    }
    PQclear(res);
    return err;
}

/* Step: what the batch's merged, erased and voided events change, before
 * the funnel runs: merges written, people erased, and the persons whose
 * events changed (f->forced) listed for a full recompute. */
static lf_err_t identity(flush_t *f)
{
    seeds_t s = {0};
    lf_err_t err = gather_seeds(f, &s) ? nomem(f) : LF_OK;

    if (!err)
        err = pending_seeds(f, &s);
    if (!err && s.c.ids.n)
        err = components(f, &s);
    if (!err)
        err = void_persons(f, &s);
    if (!err && f->p->settling)
        err = stale_voids(f);
    lf_ids_sort(&f->forced);
    lf_ids_sort(&f->cleared);
    lf_ids_sort(&f->cleared_of);
    if (!err && f->forced.n)
        err = lock_more(f, f->forced.v, f->forced.n);
    seeds_free(&s);
    return err;
}

/* p->def_sha: the sha256 of the definition's canonical form, as
 * SCHEMA.definition records it (lf_defstore.c). */
static bool definition_sha(lf_projector_t *p)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    char *canon;

    if (p->def_sha[0])
        return true;
    if (!(canon = lf_definition_canonical(p->def)))
        return false;
    bool ok = EVP_Digest(canon, strlen(canon), md, &len, EVP_sha256(), NULL) &&
              len == 32;
    free(canon);
    for (unsigned int i = 0; ok && i < len; i++)
        snprintf(p->def_sha + 2 * i, 3, "%02x", md[i]);
    return ok;
}

/* Step: the tables still record this projector's definition. A promote of
 * a rebuild under other rules replaces them under a running projector,
 * whose offsets they may match: its batches would mix two rule sets in
 * one set of tables. It stops instead, nothing written. Tables that
 * record none (made before definitions were recorded, or by a test) have
 * nothing to compare. */
static lf_err_t same_definition(flush_t *f)
{
    lf_projector_t *p = f->p;
    PGresult *res = NULL;
    char sql[SQL_MAX];
    lf_err_t err;

    if (!definition_sha(p))
        return nomem(f);
    sql_text(p, sql, NULL,
             "SELECT name, version, sha256 FROM {schema}.definition");
    if ((err = run(f, sql, "checking the definition", 0, NULL, NULL, &res)))
        return err;
    if (PQntuples(res) && strcmp(PQgetvalue(res, 0, 2), p->def_sha))
        err = lf_seterr(
            LF_ERR_CONFIG, f->errstr, f->errstr_size,
            "the tables of schema %s now record definition \"%s\" version %s "
            "(sha256 %.12s), not this projector's \"%s\" version %lld "
            "(sha256 %.12s): they were replaced under it (a promote?). One "
            "set of tables never mixes two rule sets: restart it with the "
            "recorded definition's file (-X funnel.definition=FILE)",
            p->schema, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
            PQgetvalue(res, 0, 2), p->def->name, (long long)p->def->version,
            p->def_sha);
    PQclear(res);
    return err;
}

lf_err_t lf_projector_check_definition(lf_projector_t *p, PGconn *conn,
                                       char *errstr, size_t errstr_size)
{
    flush_t f = {
        .p = p, .conn = conn, .errstr = errstr, .errstr_size = errstr_size};
    return same_definition(&f);
}

/* Step: the caller's own writes (lf_projector_before_commit()). */
static lf_err_t caller_hook(flush_t *f)
{
    if (!f->p->hook)
        return LF_OK;
    return f->p->hook(f->p->hook_arg, f->conn, f->errstr, f->errstr_size);
}

/* The steps of a flush inside its transaction, in order. Each one owns
 * what it asks the server (its PGresult is cleared on every path) and
 * either leaves the transaction usable or fails. */
typedef lf_err_t (*step_t)(flush_t *f);

/* clang-format off */
static const step_t flush_steps[] = {
    lock_leads,
    same_definition,
    erased_in,
    store_events,
    record_conflicts,
    identity,
    derive,
    stage,
    merge_leads,
    merge_visits,
    merge_anomalies,
    store_dead_letters,
    store_offsets,
    caller_hook,
    resolve_reread, /* after a retry's own marks (its hook) */
};
/* clang-format on */

/* The batch in one transaction: BEGIN, the steps, COMMIT. A step that
 * fails is rolled back here (a failed COMMIT has rolled back already). */
static lf_err_t write_batch(flush_t *f)
{
    lf_err_t err;

    if ((err = run(f, "BEGIN", "BEGIN", 0, NULL, NULL, NULL)))
        return err;
    for (size_t i = 0; i < sizeof(flush_steps) / sizeof(*flush_steps); i++)
        if ((err = flush_steps[i](f))) {
            if (PQstatus(f->conn) == CONNECTION_OK)
                PQclear(PQexec(f->conn, "ROLLBACK"));
            return err;
        }
    return run(f, "COMMIT", "COMMIT", 0, NULL, NULL, NULL);
}

/* Committed: account, hand the offsets back, empty the batch. */
static void committed_batch(flush_t *f,
                            rd_kafka_topic_partition_list_t **committed)
{
    lf_projector_t *p = f->p;

    p->expect_new = f->direct;
    p->stats.messages += p->count;
    p->stats.events_new += f->st.events_new;
    p->stats.duplicates += f->st.duplicates;
    p->stats.conflicts += f->st.conflicts;
    p->stats.dead_letters += f->st.dead_letters;
    p->stats.anomalies += f->st.anomalies;
    p->stats.recomputed += f->st.recomputed;
    p->stats.merges += f->st.merges;
    p->stats.voids += f->st.voids;
    p->stats.erasures += f->st.erasures;
    p->stats.merge_anomalies += f->st.merge_anomalies;
    p->stats.void_anomalies += f->st.void_anomalies;
    p->stats.batches++;
    for (int t = 0; t < LF_EV__COUNT; t++)
        p->stats.by_type[t] += f->st.by_type[t];
    if (committed) {
        *committed = rd_kafka_topic_partition_list_new((int)p->off_count);
        for (size_t i = 0; i < p->off_count; i++)
            rd_kafka_topic_partition_list_add(
                *committed, p->topics[p->offs[i].topic], p->offs[i].partition)
                ->offset = p->offs[i].next;
    }
    lf_projector_discard(p);
}

/* Free what the flush allocated. The next batch may be a while (or
 * flushed by another writer, with this projector filling meanwhile): keep
 * small buffers, not batch-sized ones (with two writers, four projectors
 * kept ~6 MiB). */
static void flush_free(flush_t *f)
{
    lf_projector_t *p = f->p;

    if (p->copy.cap > BUF_KEEP)
        lf_buf_free(&p->copy);
    if (p->arr.cap > BUF_KEEP)
        lf_buf_free(&p->arr);
    lf_buf_free(&f->b.leads);
    lf_buf_free(&f->b.visits);
    lf_buf_free(&f->b.anomalies);
    lf_buf_free(&f->b.leads_new);
    lf_buf_free(&f->b.visits_new);
    lf_buf_free(&f->b.anomalies_new);
    free(f->ev_idx);
    free(f->leads);
    free(f->recomputed);
    lf_ids_free(&f->locks);
    lf_ids_free(&f->forced);
    lf_ids_free(&f->cleared);
    lf_ids_free(&f->cleared_of);
    lf_ids_free(&f->pool);
    lf_ids_free(&f->new_ids);
}

lf_err_t lf_projector_flush(lf_projector_t *p, PGconn *conn,
                            rd_kafka_topic_partition_list_t **committed,
                            char *errstr, size_t errstr_size)
{
    flush_t f = {
        .p = p, .conn = conn, .errstr = errstr, .errstr_size = errstr_size};
    lf_err_t err;

    if (committed)
        *committed = NULL;
    if (!p->count)
        return LF_OK;
    if ((err = ensure_temp(&f)))
        return err;
    if (!(err = list_batch(&f)) && !(err = write_batch(&f)))
        committed_batch(&f, committed);
    else if (restore_erased(&f))
        err = nomem(&f);
    flush_free(&f);
    return err;
}

lf_err_t lf_projector_settle(lf_projector_t *p, PGconn *conn, bool *more,
                             char *errstr, size_t errstr_size)
{
    flush_t f = {
        .p = p, .conn = conn, .errstr = errstr, .errstr_size = errstr_size};
    PGresult *res = NULL;
    char sql[SQL_MAX];
    bool stale;
    lf_err_t err;

    *more = false;
    if (p->count)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "settling with a batch in hand");
    /* Stale voids are recomputed once: what else could be settled later
     * is only what waits in identity_pending. */
    sql_text(p, sql, NULL,
             "SELECT EXISTS (SELECT 1 FROM {schema}.identity_pending), "
             "EXISTS (" STALE_VOIDS ")");
    if ((err = run(&f, sql, "reading waiting merges", 0, NULL, NULL, &res)))
        return err;
    *more = !strcmp(PQgetvalue(res, 0, 0), "t");
    stale = !strcmp(PQgetvalue(res, 0, 1), "t");
    PQclear(res);
    if (!*more && !stale)
        return LF_OK;
    if ((err = ensure_temp(&f)))
        return err;
    p->settling = true;
    if (!(err = list_batch(&f)) && !(err = write_batch(&f)))
        committed_batch(&f, NULL);
    p->settling = false;
    flush_free(&f);
    return err;
}

lf_err_t lf_projector_settle_all(lf_projector_t *p, PGconn *conn, char *errstr,
                                 size_t errstr_size)
{
    bool more = true;
    lf_err_t err = LF_OK;

    /* Leads another transaction picked up are skipped: it clears them at
     * its commit, so wait a little between rounds. */
    for (int round = 0; more && round < 600; round++) {
        if (round)
            nanosleep(&(struct timespec){0, 50 * 1000000L}, NULL);
        if ((err = lf_projector_settle(p, conn, &more, errstr, errstr_size)))
            return err;
    }
    return more ? lf_seterr(LF_ERR_TEMPORARY, errstr, errstr_size,
                            "merges still waiting after 30 s")
                : LF_OK;
}

lf_err_t lf_projector_load_offsets(lf_projector_t *p, PGconn *conn,
                                   rd_kafka_topic_partition_list_t *parts,
                                   char *errstr, size_t errstr_size)
{
    flush_t f = {
        .p = p, .conn = conn, .errstr = errstr, .errstr_size = errstr_size};
    PGresult *res = NULL;
    char sql[SQL_MAX];
    lf_err_t err;

    for (int i = 0; i < parts->cnt; i++)
        parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
    if (!p->group_id)
        return LF_OK;
    sql_text(p, sql, NULL,
             "SELECT topic, partition, next_offset FROM {schema}.offsets "
             "WHERE group_id = $1");
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
