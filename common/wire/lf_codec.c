/* lf_codec.c: framed Avro for LeadEvent: direct v1 and v2 writer and
 * reader, and avro-c (behind a schema-driven bounds check) as their
 * reference and for every other writer schema, read by field name. */
#include "lf_codec.h"
#include "lf_codec_int.h"

#include "lf_embedded.h"
#include "lf_json.h"

#include <avro.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef LF_AVRO_VERSION
#define LF_AVRO_VERSION "unknown"
#endif

/* Field indexes of the v1 and v2 records, in schema order (the wire
 * order); v1 has no account_id, so its payload is at F_ACCOUNT_ID. */
enum {
    F_EVENT_ID,
    F_LEAD_ID,
    F_TYPE,
    F_OCCURRED_AT,
    F_SOURCE,
    F_ACTOR,
    F_ACCOUNT_ID
};
#define F_PAYLOAD(version) ((version) == 1 ? F_ACCOUNT_ID : F_ACCOUNT_ID + 1)

/* A writer schema (a pinned one, or one met through the registry), and how
 * we read it. */
typedef struct writer_s {
    int32_t id;
    char *refused; /* why this id cannot be read (final), or NULL */
    avro_schema_t schema;
    int version;               /* equal to published v1 or v2, or 0 */
    avro_value_iface_t *iface; /* generic class of the writer's schema */
    avro_value_t wval;         /* the datum as written */
} writer_t;

/* Writer schemas kept per codec; when full, all are dropped and met again
 * (ids come from hostile messages, memory must stay bounded). */
#define WRITERS_MAX 64

struct lf_codec_s {
    avro_schema_t schema;    /* v2 */
    avro_schema_t schema_v1; /* v1, to write v1 */
    int known;   /* the contract version this reader knows (2; tests: 1) */
    int version; /* the contract version encode writes (1 or 2) */
    avro_value_iface_t *iface[2]; /* v1, v2 */
    avro_value_t enc[2];          /* reused for every generic encode */
    writer_t pinned[2];           /* ids 1 and 2 without a registry */
    avro_reader_t reader;
    avro_writer_t writer;
    lf_registry_t *reg;     /* borrowed or own_reg; NULL: pinned ids */
    lf_registry_t *own_reg; /* lf_codec_from_conf()'s, freed with c */
    writer_t writers[WRITERS_MAX];
    int nwriters, last; /* last: the writer of the previous decode */
};

static void writers_clear(lf_codec_t *c);
static void writer_free(writer_t *w);
static lf_err_t writer_prepare(lf_codec_t *c, writer_t *w, int32_t id,
                               const char *json);

const char *lf_avro_version(void)
{
    return LF_AVRO_VERSION;
}

/* Parse @p json (a published schema) into *@p s. */
static bool parse_schema(const char *json, const char *file, avro_schema_t *s,
                         char *errstr, size_t errstr_size)
{
    if (!avro_schema_from_json_length(json, strlen(json), s))
        return true;
    *s = NULL;
    lf_seterr(LF_ERR_INVALID, errstr, errstr_size, "%s: %s", file,
              avro_strerror());
    return false;
}

/* The codec of a reader that knows contract version @p known. */
static lf_codec_t *codec_new(int known, char *errstr, size_t errstr_size)
{
    lf_codec_t *c = calloc(1, sizeof(*c));
    static const char empty[1];

    if (!c) {
        lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    c->known = known;
    c->version = LF_CONTRACT_LATEST;
    if (!parse_schema(lf_embedded_avsc_v2, "lead_event.v2.avsc", &c->schema,
                      errstr, errstr_size) ||
        !parse_schema(lf_embedded_avsc_v1, "lead_event.v1.avsc", &c->schema_v1,
                      errstr, errstr_size)) {
        lf_codec_destroy(c);
        return NULL;
    }
    if (!(c->iface[0] = avro_generic_class_from_schema(c->schema_v1)) ||
        !(c->iface[1] = avro_generic_class_from_schema(c->schema)) ||
        avro_generic_value_new(c->iface[0], &c->enc[0]) ||
        avro_generic_value_new(c->iface[1], &c->enc[1]) ||
        writer_prepare(c, &c->pinned[0], LF_SCHEMA_ID_V1,
                       lf_embedded_avsc_v1) ||
        writer_prepare(c, &c->pinned[1], LF_SCHEMA_ID_V2,
                       lf_embedded_avsc_v2) ||
        !(c->reader = avro_reader_memory(empty, 0)) ||
        !(c->writer = avro_writer_memory(empty, 0))) {
        lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "avro-c: %s",
                  avro_strerror());
        lf_codec_destroy(c);
        return NULL;
    }
    return c;
}

lf_codec_t *lf_codec_new(char *errstr, size_t errstr_size)
{
    return codec_new(LF_CONTRACT_LATEST, errstr, errstr_size);
}

lf_codec_t *lf_codec_new_reader_v1(char *errstr, size_t errstr_size)
{
    return codec_new(1, errstr, errstr_size);
}

lf_err_t lf_codec_set_contract(lf_codec_t *c, int version, char *errstr,
                               size_t errstr_size)
{
    if (version < 1 || version > LF_CONTRACT_LATEST)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "contract.version: %d is not a published contract "
                         "version (1 or %d)",
                         version, LF_CONTRACT_LATEST);
    c->version = version;
    return LF_OK;
}

int lf_codec_contract(const lf_codec_t *c)
{
    return c->version;
}

void lf_codec_destroy(lf_codec_t *c)
{
    if (!c)
        return;
    writers_clear(c);
    for (int i = 0; i < 2; i++) {
        writer_free(&c->pinned[i]);
        if (c->enc[i].self)
            avro_value_decref(&c->enc[i]);
        if (c->iface[i])
            avro_value_iface_decref(c->iface[i]);
    }
    if (c->reader)
        avro_reader_free(c->reader);
    if (c->writer)
        avro_writer_free(c->writer);
    if (c->schema)
        avro_schema_decref(c->schema);
    if (c->schema_v1)
        avro_schema_decref(c->schema_v1);
    lf_registry_destroy(c->own_reg);
    free(c);
}

/* contract.version from @p conf into @p c (unset: the latest). */
static lf_err_t contract_from_conf(lf_codec_t *c, const lf_conf_t *conf,
                                   char *errstr, size_t errstr_size)
{
    const char *v = lf_conf_get(conf, LF_CONF_CONTRACT_VERSION);

    if (!v)
        return LF_OK;
    if ((strcmp(v, "1") && strcmp(v, "2")) ||
        lf_codec_set_contract(c, v[0] - '0', NULL, 0))
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "configuration \"%s\": \"%.40s\" is not a "
                         "published contract version (1 or 2)",
                         LF_CONF_CONTRACT_VERSION, v);
    return LF_OK;
}

lf_err_t lf_codec_from_conf(const lf_conf_t *conf, lf_codec_t **out,
                            char *errstr, size_t errstr_size)
{
    lf_codec_t *c;

    *out = NULL;
    if (!(c = lf_codec_new(errstr, errstr_size)))
        return LF_ERR_NOMEM;
    if (contract_from_conf(c, conf, errstr, errstr_size)) {
        lf_codec_destroy(c);
        return LF_ERR_INVALID;
    }
    if (lf_registry_configured(conf)) {
        if (!(c->own_reg = lf_registry_new(conf, errstr, errstr_size))) {
            lf_codec_destroy(c);
            return LF_ERR_INVALID;
        }
        c->reg = c->own_reg;
    }
    *out = c;
    return LF_OK;
}

/* ---- the bounds check ------------------------------------------------- */

#define WALK_MAX_DEPTH 32
#define WALK_MAX_ITEMS (1 << 20) /* items in one array or map */
/* Items that take no byte (nulls, empty records) beyond one per byte of
 * the body: a few at the end of a message are valid Avro. */
#define WALK_ITEM_SLACK 4096
/* Values a message may hold: a budget for the work of reading it, the
 * walk's and avro-c's, which a record of many nulls makes large at no
 * byte's cost (2 per byte of the body, and this many more). */
#define WALK_NODE_SLACK 100000
#define WALK_MAX_NAMES  (2 * WALK_MAX_DEPTH + 2)

/* The field path is a stack of names joined only when an error is written:
 * formatting it for every field cost a third of a decode. */
typedef struct walk_s {
    const uint8_t *p, *end;
    const char *names[WALK_MAX_NAMES];
    int nnames;
    char *errstr;
    size_t errstr_size;
    int depth;
    /* Items the arrays and maps of the whole datum may still hold: one per
     * byte of the body. An item may take no byte (a null, an empty record),
     * so the per-block bound alone let nested arrays claim the bytes left
     * again at each level: quadratic in the message, 1.8 GB for 32 KB. */
    int64_t items_left;
    int64_t nodes_left; /* values still allowed (WALK_NODE_SLACK) */
} walk_t;

static lf_err_t walk_fail(walk_t *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static lf_err_t walk_fail(walk_t *w, const char *fmt, ...)
{
    char why[160], path[192];
    size_t used = 0;
    va_list ap;

    path[0] = '\0';
    for (int i = 0; i < w->nnames && i < WALK_MAX_NAMES; i++) {
        int n = snprintf(path + used, sizeof(path) - used, "%s%s", i ? "." : "",
                         w->names[i]);
        if (n < 0 || (size_t)n >= sizeof(path) - used)
            break;
        used += (size_t)n;
    }
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    return lf_seterr(LF_ERR_INVALID, w->errstr, w->errstr_size,
                     "Avro body: field \"%s\": %s", path, why);
}

/* Read a zig-zag varint of at most 10 bytes (5 for an int). */
static lf_err_t walk_varint(walk_t *w, int64_t *out, bool is_int)
{
    uint64_t v = 0;
    int maxb = is_int ? 5 : 10;

    for (int i = 0;; i++) {
        if (w->p >= w->end)
            return walk_fail(w, "truncated inside a number");
        if (i == maxb)
            return walk_fail(w, "varint longer than %d bytes", maxb);
        uint8_t b = *w->p++;
        /* The 10th byte holds bit 63 only: more would be dropped, and a
         * damaged number read as another (avro-c keeps the low bit). */
        if (i == 9 && b > 1)
            return walk_fail(w, "varint wider than 64 bits");
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80))
            break;
    }
    int64_t s = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
    if (is_int && (s < INT32_MIN || s > INT32_MAX))
        return walk_fail(w, "int %lld out of 32-bit range", (long long)s);
    *out = s;
    return LF_OK;
}

static lf_err_t walk_skip(walk_t *w, int64_t n, const char *what)
{
    if (n < 0)
        return walk_fail(w, "%s length %lld is negative", what, (long long)n);
    if (n > w->end - w->p)
        return walk_fail(
            w, "truncated: %s length %lld exceeds the %lld bytes left", what,
            (long long)n, (long long)(w->end - w->p));
    w->p += n;
    return LF_OK;
}

static void path_push(walk_t *w, const char *name)
{
    if (w->nnames < WALK_MAX_NAMES)
        w->names[w->nnames] = name;
    w->nnames++;
}

static lf_err_t walk_datum(walk_t *w, avro_schema_t s);

/* A map's key as the wire has it. */
typedef struct wkey_s {
    const uint8_t *p;
    int64_t len;
} wkey_t;

static int wkey_cmp(const void *a, const void *b)
{
    const wkey_t *x = a, *y = b;
    int c = memcmp(x->p, y->p, (size_t)(x->len < y->len ? x->len : y->len));
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Is a key of the map repeated? avro-c would keep the last entry and drop
 * the others without a word (the JSON lines refuse a repeated key too). */
static lf_err_t walk_map_keys(walk_t *w, wkey_t *keys, size_t n)
{
    qsort(keys, n, sizeof(*keys), wkey_cmp);
    for (size_t i = 1; i < n; i++)
        if (!wkey_cmp(&keys[i - 1], &keys[i]))
            return walk_fail(w,
                             "a map key is repeated (%zu entries): each "
                             "key may appear once",
                             n);
    return LF_OK;
}

static lf_err_t walk_blocks_in(walk_t *w, avro_schema_t items, bool is_map,
                               wkey_t **keys, size_t *nkeys);

static lf_err_t walk_blocks(walk_t *w, avro_schema_t items, bool is_map)
{
    wkey_t *keys = NULL;
    size_t nkeys = 0;
    lf_err_t err = walk_blocks_in(w, items, is_map, &keys, &nkeys);

    if (!err && nkeys > 1)
        err = walk_map_keys(w, keys, nkeys);
    free(keys);
    return err;
}

static lf_err_t walk_blocks_in(walk_t *w, avro_schema_t items, bool is_map,
                               wkey_t **keys, size_t *nkeys)
{
    int64_t total = 0, count, bytes;
    size_t cap = 0;
    lf_err_t err;

    for (;;) {
        if ((err = walk_varint(w, &count, false)))
            return err;
        if (count == 0)
            return LF_OK;
        if (count < 0) {
            if (count == INT64_MIN)
                return walk_fail(w, "block count out of range");
            count = -count;
            /* The block's byte size: checked, then the items are walked. */
            if ((err = walk_varint(w, &bytes, false)))
                return err;
            if (bytes < 0 || bytes > w->end - w->p)
                return walk_fail(w, "block size %lld out of range",
                                 (long long)bytes);
        }
        if (count > WALK_MAX_ITEMS - total ||
            count > w->end - w->p + WALK_ITEM_SLACK)
            return walk_fail(w, "block count %lld exceeds the bytes left",
                             (long long)count);
        if (count > w->items_left)
            return walk_fail(w,
                             "block count %lld: the arrays and maps hold "
                             "more items than the body has bytes",
                             (long long)count);
        w->items_left -= count;
        total += count;
        for (int64_t i = 0; i < count; i++) {
            if (is_map) {
                int64_t klen;
                const uint8_t *key;
                if ((err = walk_varint(w, &klen, false)))
                    return err;
                key = w->p;
                if ((err = walk_skip(w, klen, "map key")))
                    return err;
                /* avro-c hands map keys out as C strings: a NUL would cut
                 * one short without a word, and two keys could merge. */
                if (memchr(key, '\0', (size_t)klen))
                    return walk_fail(w, "map key contains a NUL byte");
                if (*nkeys == cap) {
                    size_t ncap = cap ? 2 * cap : 16;
                    wkey_t *nk = realloc(*keys, ncap * sizeof(*nk));
                    if (!nk)
                        return lf_seterr(LF_ERR_NOMEM, w->errstr,
                                         w->errstr_size, "out of memory");
                    *keys = nk;
                    cap = ncap;
                }
                (*keys)[(*nkeys)++] = (wkey_t){key, klen};
            }
            if ((err = walk_datum(w, items)))
                return err;
        }
    }
}

static lf_err_t walk_datum(walk_t *w, avro_schema_t s);

/* A union: the branch index in range, then the branch's datum. */
static lf_err_t walk_union(walk_t *w, avro_schema_t s)
{
    int64_t n = (int64_t)avro_schema_union_size(s), v = 0;
    avro_schema_t b;
    lf_err_t err;

    if ((err = walk_varint(w, &v, false)))
        return err;
    if (v < 0 || v >= n)
        return walk_fail(w, "union branch %lld out of range (%lld branches)",
                         (long long)v, (long long)n);
    b = avro_schema_union_branch(s, (int)v);
    path_push(w, avro_schema_type_name(b));
    err = walk_datum(w, b);
    w->nnames--;
    return err;
}

static lf_err_t walk_datum(walk_t *w, avro_schema_t s)
{
    int64_t v = 0;
    lf_err_t err = LF_OK;

    if (++w->depth > WALK_MAX_DEPTH)
        return walk_fail(w, "nested deeper than %d", WALK_MAX_DEPTH);
    if (--w->nodes_left < 0)
        return walk_fail(w,
                         "more values than a message may hold (2 per byte of "
                         "the body, and %d more)",
                         WALK_NODE_SLACK);
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        break;
    case AVRO_BOOLEAN:
        if (w->p >= w->end)
            err = walk_fail(w, "truncated boolean");
        else if (*w->p > 1)
            err = walk_fail(w, "boolean byte %u is not 0 or 1", *w->p);
        else
            w->p++;
        break;
    case AVRO_INT32:
        err = walk_varint(w, &v, true);
        break;
    case AVRO_INT64:
        err = walk_varint(w, &v, false);
        break;
    case AVRO_FLOAT:
        err = walk_skip(w, 4, "float");
        break;
    case AVRO_DOUBLE:
        err = walk_skip(w, 8, "double");
        break;
    case AVRO_STRING:
    case AVRO_BYTES:
        if (!(err = walk_varint(w, &v, false)))
            err = walk_skip(w, v, "string");
        break;
    case AVRO_FIXED:
        err = walk_skip(w, avro_schema_fixed_size(s), "fixed");
        break;
    case AVRO_ENUM:
        if (!(err = walk_varint(w, &v, true)) &&
            (v < 0 || v >= avro_schema_enum_number_of_symbols(s)))
            err =
                walk_fail(w, "enum index %lld out of range (%d symbols)",
                          (long long)v, avro_schema_enum_number_of_symbols(s));
        break;
    case AVRO_ARRAY:
        err = walk_blocks(w, avro_schema_array_items(s), false);
        break;
    case AVRO_MAP:
        err = walk_blocks(w, avro_schema_map_values(s), true);
        break;
    case AVRO_UNION:
        err = walk_union(w, s);
        break;
    case AVRO_RECORD:
        for (size_t i = 0; i < avro_schema_record_size(s) && !err; i++) {
            path_push(w, avro_schema_record_field_name(s, (int)i));
            err =
                walk_datum(w, avro_schema_record_field_get_by_index(s, (int)i));
            w->nnames--;
        }
        break;
    case AVRO_LINK:
        err = walk_datum(w, avro_schema_link_target(s));
        break;
    default:
        err = walk_fail(w, "unsupported schema type");
    }
    w->depth--;
    return err;
}

lf_err_t lf_avro_check(void *schema, const void *data, size_t len, char *errstr,
                       size_t errstr_size)
{
    walk_t w = {.p = data,
                .end = (const uint8_t *)data + len,
                .errstr = errstr,
                .errstr_size = errstr_size,
                .items_left = (int64_t)len + WALK_ITEM_SLACK,
                .nodes_left = 2 * (int64_t)len + WALK_NODE_SLACK};
    lf_err_t err;

    if ((err = walk_datum(&w, schema)))
        return err;
    if (w.p != w.end)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "Avro body: %lld trailing bytes after the record",
                         (long long)(w.end - w.p));
    return LF_OK;
}

/* ---- encode ----------------------------------------------------------- */

#define CHECK(call)                                                            \
    do {                                                                       \
        if (call)                                                              \
            goto avro_fail;                                                    \
    } while (0)

static int set_str(avro_value_t *rec, int idx, const char *s)
{
    avro_value_t f;
    if (avro_value_get_by_index(rec, idx, &f, NULL))
        return -1;
    return avro_value_set_string(&f, s);
}

static int set_opt_str(avro_value_t *rec, int idx, const char *s)
{
    avro_value_t f, b;
    if (avro_value_get_by_index(rec, idx, &f, NULL) ||
        avro_value_set_branch(&f, s ? 1 : 0, &b))
        return -1;
    return s ? avro_value_set_string(&b, s) : avro_value_set_null(&b);
}

static int set_int(avro_value_t *rec, int idx, int32_t v)
{
    avro_value_t f;
    if (avro_value_get_by_index(rec, idx, &f, NULL))
        return -1;
    return avro_value_set_int(&f, v);
}

static int set_long(avro_value_t *rec, int idx, int64_t v)
{
    avro_value_t f;
    if (avro_value_get_by_index(rec, idx, &f, NULL))
        return -1;
    return avro_value_set_long(&f, v);
}

static int set_enum(avro_value_t *rec, int idx, int v)
{
    avro_value_t f;
    if (avro_value_get_by_index(rec, idx, &f, NULL))
        return -1;
    return avro_value_set_enum(&f, v);
}

/* ---- the v1 and v2 writer, by hand ----
 * Producers write v2, or v1 on request. avro-c's generic value writer costs
 * ~8,700 instructions per event (BENCHMARKS.md: cost, producer side), most of
 * it in setting, sizing and walking the value; the binary encoding of this one
 * record is simple enough to write directly, in about a tenth of that.
 * lf_codec_encode_generic() is the avro-c writer, kept as the reference:
 * test_codec compares the bytes of both for every type and edge, and
 * fuzz_json for every event it parses. */

/* Where the payload's strings start in enc_strs_t (after event_id,
 * lead_id, source, actor, account_id). */
#define ES_PAYLOAD 5

/* Room for a long (zig-zag varint) and for a string's length. */
#define VARINT_MAX 10

static char *put_long(char *p, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);

    while (z > 0x7f) {
        *p++ = (char)((z & 0x7f) | 0x80);
        z >>= 7;
    }
    *p++ = (char)z;
    return p;
}

static char *put_str(char *p, const char *s, size_t len)
{
    p = put_long(p, (int64_t)len);
    memcpy(p, s, len);
    return p + len;
}

/* A union [null, string]: branch 0 for NULL. */
static char *put_opt_str(char *p, const char *s, size_t len)
{
    if (!s)
        return put_long(p, 0);
    p = put_long(p, 1);
    return put_str(p, s, len);
}

/* The strings of a record, in wire order, with their lengths (NULL where
 * an optional one is absent), and the bytes the encoding may need. */
typedef struct enc_strs_s {
    const char *str[8];
    size_t len[8];
    size_t need;
} enc_strs_t;

/* Collect @p ev's strings into @p es (the envelope's in es->str[0..4],
 * the payload's from ES_PAYLOAD); required ones must be there. */
static lf_err_t enc_strings(const lf_event_t *ev, enc_strs_t *es, char *errstr,
                            size_t errstr_size)
{
    const char *names[8] = {0};
    int ns = 0;

#define REQ(name, s) (names[ns] = name, es->str[ns++] = (s))
#define OPT(name, s) (names[ns] = NULL, es->str[ns++] = (s))
    REQ("event_id", ev->event_id);
    REQ("lead_id", ev->lead_id);
    REQ("source", ev->source);
    OPT("actor", ev->actor);
    OPT("account_id", ev->account_id);
    switch (ev->type) {
    case LF_EV_CAPTURED:
        REQ("channel", ev->u.captured.channel);
        OPT("campaign", ev->u.captured.campaign);
        break;
    case LF_EV_SCORED:
        REQ("model", ev->u.scored.model);
        break;
    case LF_EV_HANDED_OFF:
        REQ("owner", ev->u.handed_off.owner);
        break;
    case LF_EV_ACCEPTED:
        REQ("owner", ev->u.accepted.owner);
        break;
    case LF_EV_RECYCLED:
        if ((unsigned)ev->u.recycled.reason >= LF_RR__COUNT)
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "field \"reason\": unknown recycle reason %d",
                             ev->u.recycled.reason);
        OPT("note", ev->u.recycled.note);
        break;
    case LF_EV_QUALIFIED:
        REQ("opportunity_id", ev->u.qualified.opportunity_id);
        REQ("currency", ev->u.qualified.currency);
        break;
    case LF_EV_WON:
        REQ("currency", ev->u.won.currency);
        break;
    case LF_EV_LOST:
        REQ("reason", ev->u.lost.reason);
        break;
    case LF_EV_DISQUALIFIED:
        REQ("reason", ev->u.disqualified.reason);
        break;
    case LF_EV_MERGED:
        REQ("into_lead_id", ev->u.merged.into_lead_id);
        break;
    case LF_EV_VOIDED:
        REQ("voided_event_id", ev->u.voided.voided_event_id);
        REQ("reason", ev->u.voided.reason);
        break;
    case LF_EV_ERASED:
        REQ("request_id", ev->u.erased.request_id);
        break;
    default:
        break;
    }
#undef REQ
#undef OPT
    es->need = LF_FRAME_HEADER + 8 * VARINT_MAX;
    for (int i = 0; i < ns; i++) {
        if (!es->str[i]) {
            if (names[i])
                return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                                 "missing required field \"%s\"", names[i]);
            continue;
        }
        es->len[i] = strlen(es->str[i]);
        es->need += es->len[i] + VARINT_MAX;
    }
    return LF_OK;
}

/* The attributes of a captured event: complete, and their size. */
static lf_err_t enc_attrs(const lf_event_t *ev, enc_strs_t *es, char *errstr,
                          size_t errstr_size)
{
    for (size_t i = 0; i < ev->u.captured.attr_count; i++) {
        const lf_attr_t *a = &ev->u.captured.attrs[i];
        if (!a->key || !a->value)
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "field \"attributes\": entry %zu "
                             "incomplete",
                             i);
        es->need += strlen(a->key) + strlen(a->value) + 2 * VARINT_MAX;
    }
    return LF_OK;
}

/* The payload record of @p ev's type; es->str[ES_PAYLOAD..] are its
 * strings. */
static char *put_payload(char *p, const lf_event_t *ev, const enc_strs_t *es)
{
    const char *const *str = es->str + ES_PAYLOAD - 4;
    const size_t *len = es->len + ES_PAYLOAD - 4;

    switch (ev->type) {
    case LF_EV_CAPTURED: {
        size_t n = ev->u.captured.attr_count;
        p = put_str(p, str[4], len[4]);
        p = put_opt_str(p, str[5], len[5]);
        if (n) { /* one block of n entries, then the empty block */
            p = put_long(p, (int64_t)n);
            for (size_t i = 0; i < n; i++) {
                const lf_attr_t *a = &ev->u.captured.attrs[i];
                p = put_str(p, a->key, strlen(a->key));
                p = put_str(p, a->value, strlen(a->value));
            }
        }
        return put_long(p, 0);
    }
    case LF_EV_SCORED:
        p = put_long(p, ev->u.scored.score);
        p = put_long(p, ev->u.scored.threshold);
        return put_str(p, str[4], len[4]);
    case LF_EV_HANDED_OFF:
        p = put_str(p, str[4], len[4]);
        return put_long(p, ev->u.handed_off.sla_hours);
    case LF_EV_RECYCLED:
        p = put_long(p, ev->u.recycled.reason);
        return put_opt_str(p, str[4], len[4]);
    case LF_EV_QUALIFIED:
        p = put_str(p, str[4], len[4]);
        p = put_long(p, ev->u.qualified.amount_minor);
        return put_str(p, str[5], len[5]);
    case LF_EV_WON:
        p = put_long(p, ev->u.won.amount_minor);
        return put_str(p, str[4], len[4]);
    case LF_EV_VOIDED:
        p = put_str(p, str[4], len[4]);
        return put_str(p, str[5], len[5]);
    default: /* accepted, lost, disqualified, merged, erased: one string */
        return put_str(p, str[4], len[4]);
    }
}

/* What every encode checks first: a known type, and an event that the
 * contract version @p version can carry (v1 has neither account_id nor
 * the identity events: never write one with a field dropped). */
static lf_err_t enc_check(const lf_event_t *ev, int version, char *errstr,
                          size_t errstr_size)
{
    if ((unsigned)ev->type >= LF_EV__COUNT)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "field \"type\": unknown event type %d", ev->type);
    if (version >= 2)
        return LF_OK;
    if (ev->account_id)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "field \"account_id\": contract v1 cannot carry it; "
                         "remove it or write contract v2 "
                         "(contract.version=2)");
    if (ev->type >= LF_EV_V1_COUNT)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "field \"type\": contract v1 cannot carry %s "
                         "events; write contract v2 (contract.version=2)",
                         lf_event_type_name(ev->type));
    return LF_OK;
}

lf_err_t lf_codec_can_carry(const lf_codec_t *c, const lf_event_t *ev,
                            char *errstr, size_t errstr_size)
{
    return enc_check(ev, c->version, errstr, errstr_size);
}

lf_err_t lf_codec_encode(lf_codec_t *c, const lf_event_t *ev, int32_t schema_id,
                         lf_buf_t *out, char *errstr, size_t errstr_size)
{
    enc_strs_t es = {{0}, {0}, 0};
    lf_err_t err;
    char *p;

    if ((err = enc_check(ev, c->version, errstr, errstr_size)) ||
        (err = enc_strings(ev, &es, errstr, errstr_size)) ||
        (ev->type == LF_EV_CAPTURED &&
         (err = enc_attrs(ev, &es, errstr, errstr_size))))
        return err;
    lf_buf_reset(out);
    if (lf_buf_reserve(out, es.need))
        return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
    p = out->data;
    *p++ = LF_MAGIC;
    *p++ = (char)((uint32_t)schema_id >> 24);
    *p++ = (char)((uint32_t)schema_id >> 16);
    *p++ = (char)((uint32_t)schema_id >> 8);
    *p++ = (char)schema_id;
    p = put_str(p, es.str[0], es.len[0]);     /* event_id */
    p = put_str(p, es.str[1], es.len[1]);     /* lead_id */
    p = put_long(p, ev->type);                /* type */
    p = put_long(p, ev->occurred_at);         /* occurred_at */
    p = put_str(p, es.str[2], es.len[2]);     /* source */
    p = put_opt_str(p, es.str[3], es.len[3]); /* actor */
    if (c->version >= 2)
        p = put_opt_str(p, es.str[4], es.len[4]); /* account_id */
    p = put_long(p, ev->type); /* payload: branches in type order */
    p = put_payload(p, ev, &es);
    out->len = (size_t)(p - out->data);
    return LF_OK;
}

/* The payload record @p p (the branch of ev->type) from @p ev.
 * @returns 0, or non-zero when avro-c failed (avro_strerror()). */
static int set_payload(avro_value_t *p, const lf_event_t *ev)
{
#define TRY(x)                                                                 \
    do {                                                                       \
        if (x)                                                                 \
            return -1;                                                         \
    } while (0)
    switch (ev->type) {
    case LF_EV_CAPTURED: {
        avro_value_t map, elem;
        TRY(set_str(p, 0, ev->u.captured.channel));
        TRY(set_opt_str(p, 1, ev->u.captured.campaign));
        TRY(avro_value_get_by_index(p, 2, &map, NULL));
        for (size_t i = 0; i < ev->u.captured.attr_count; i++) {
            TRY(avro_value_add(&map, ev->u.captured.attrs[i].key, &elem, NULL,
                               NULL));
            TRY(avro_value_set_string(&elem, ev->u.captured.attrs[i].value));
        }
        break;
    }
    case LF_EV_SCORED:
        TRY(set_int(p, 0, ev->u.scored.score));
        TRY(set_int(p, 1, ev->u.scored.threshold));
        TRY(set_str(p, 2, ev->u.scored.model));
        break;
    case LF_EV_HANDED_OFF:
        TRY(set_str(p, 0, ev->u.handed_off.owner));
        TRY(set_int(p, 1, ev->u.handed_off.sla_hours));
        break;
    case LF_EV_ACCEPTED:
        TRY(set_str(p, 0, ev->u.accepted.owner));
        break;
    case LF_EV_RECYCLED:
        TRY(set_enum(p, 0, ev->u.recycled.reason));
        TRY(set_opt_str(p, 1, ev->u.recycled.note));
        break;
    case LF_EV_QUALIFIED:
        TRY(set_str(p, 0, ev->u.qualified.opportunity_id));
        TRY(set_long(p, 1, ev->u.qualified.amount_minor));
        TRY(set_str(p, 2, ev->u.qualified.currency));
        break;
    case LF_EV_WON:
        TRY(set_long(p, 0, ev->u.won.amount_minor));
        TRY(set_str(p, 1, ev->u.won.currency));
        break;
    case LF_EV_LOST:
        TRY(set_str(p, 0, ev->u.lost.reason));
        break;
    case LF_EV_DISQUALIFIED:
        TRY(set_str(p, 0, ev->u.disqualified.reason));
        break;
    case LF_EV_MERGED:
        TRY(set_str(p, 0, ev->u.merged.into_lead_id));
        break;
    case LF_EV_VOIDED:
        TRY(set_str(p, 0, ev->u.voided.voided_event_id));
        TRY(set_str(p, 1, ev->u.voided.reason));
        break;
    case LF_EV_ERASED:
        TRY(set_str(p, 0, ev->u.erased.request_id));
        break;
    default:
        break;
    }
    return 0;
#undef TRY
}

lf_err_t lf_codec_encode_generic(lf_codec_t *c, const lf_event_t *ev,
                                 int32_t schema_id, lf_buf_t *out, char *errstr,
                                 size_t errstr_size)
{
    avro_value_t *rec = &c->enc[c->version >= 2], f, p;
    size_t size;
    lf_err_t err;

    if ((err = enc_check(ev, c->version, errstr, errstr_size)))
        return err;
    CHECK(avro_value_reset(rec));
    CHECK(set_str(rec, F_EVENT_ID, ev->event_id));
    CHECK(set_str(rec, F_LEAD_ID, ev->lead_id));
    CHECK(set_enum(rec, F_TYPE, ev->type));
    CHECK(set_long(rec, F_OCCURRED_AT, ev->occurred_at));
    CHECK(set_str(rec, F_SOURCE, ev->source));
    CHECK(set_opt_str(rec, F_ACTOR, ev->actor));
    if (c->version >= 2)
        CHECK(set_opt_str(rec, F_ACCOUNT_ID, ev->account_id));
    CHECK(avro_value_get_by_index(rec, F_PAYLOAD(c->version), &f, NULL));
    /* The payload branches are in EventType order. */
    CHECK(avro_value_set_branch(&f, ev->type, &p));
    CHECK(set_payload(&p, ev));
    CHECK(avro_value_sizeof(rec, &size));
    lf_buf_reset(out);
    if (lf_buf_reserve(out, LF_FRAME_HEADER + size))
        return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
    out->data[0] = LF_MAGIC;
    out->data[1] = (char)((uint32_t)schema_id >> 24);
    out->data[2] = (char)((uint32_t)schema_id >> 16);
    out->data[3] = (char)((uint32_t)schema_id >> 8);
    out->data[4] = (char)schema_id;
    avro_writer_memory_set_dest(c->writer, out->data + LF_FRAME_HEADER,
                                (int64_t)size);
    CHECK(avro_value_write(c->writer, rec));
    out->len = LF_FRAME_HEADER + size;
    return LF_OK;
avro_fail:
    return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                     "encoding event %s: %s",
                     ev->event_id ? ev->event_id : "(no id)", avro_strerror());
}

/* ---- writer schemas from the registry --------------------------------- */

static void writer_free(writer_t *w)
{
    if (w->wval.self)
        avro_value_decref(&w->wval);
    if (w->iface)
        avro_value_iface_decref(w->iface);
    if (w->schema)
        avro_schema_decref(w->schema);
    free(w->refused);
    memset(w, 0, sizeof(*w));
}

static void writers_clear(lf_codec_t *c)
{
    for (int i = 0; i < c->nwriters; i++)
        writer_free(&c->writers[i]);
    c->nwriters = 0;
    c->last = 0;
}

void lf_codec_set_registry(lf_codec_t *c, lf_registry_t *reg)
{
    writers_clear(c);
    c->reg = reg;
}

lf_registry_t *lf_codec_registry(const lf_codec_t *c)
{
    return c->reg;
}

lf_err_t lf_codec_writer_id(lf_codec_t *c, const char *topic, int32_t *id,
                            char *errstr, size_t errstr_size)
{
    char subject[512];

    const char *avsc =
        c->version == 1 ? lf_embedded_avsc_v1 : lf_embedded_avsc_v2;
    lf_err_t err;

    if (!c->reg) {
        *id = c->version == 1 ? LF_SCHEMA_ID_V1 : LF_SCHEMA_ID_V2;
        return LF_OK;
    }
    /* Confluent's default TopicNameStrategy. Ask first whether the subject
     * accepts our schema: a producer that the registry would refuse stops
     * before it sends anything. */
    snprintf(subject, sizeof(subject), "%s-value", topic);
    if ((err = lf_registry_check_compatible(c->reg, subject, avsc, errstr,
                                            errstr_size)))
        return err;
    return lf_registry_register(c->reg, subject, avsc,
                                lf_registry_auto_register(c->reg), id, errstr,
                                errstr_size);
}

/* A registry's writer schema that avro-c cannot make a value of: a record
 * that contains itself with no union, array or map between (a value of it
 * never ends: avro-c recurses until the stack overflows), or a fixed
 * larger than any message (avro-c allocates it whole, and keeps it). */
#define WRITER_FIXED_MAX (1L << 20)
#define WRITER_DEPTH_MAX 4096
#define WRITER_NODES_MAX 200000

typedef struct makeable_s {
    avro_schema_t stack[WRITER_DEPTH_MAX]; /* records being walked */
    int bounds[WRITER_DEPTH_MAX];          /* unions, arrays, maps above each */
    int depth;
    long nodes; /* bounds the walk: links may share subtrees */
    /* Bytes of the fixed fields avro-c allocates with the writer's value:
     * those under no union, array or map, each occurrence. */
    long long fixed_total;
    char why[300];
} makeable_t;

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Two fields of one name in record @p s: both are read, the last wins, and
 * the other value would be lost without a word. Sorted, not compared in
 * pairs: a record may have many fields. */
static bool fields_distinct(makeable_t *m, avro_schema_t s)
{
    size_t n = avro_schema_record_size(s);
    const char **names = n > 1 ? malloc(n * sizeof(*names)) : NULL;
    bool ok = true;

    if (n < 2)
        return true;
    if (!names) {
        snprintf(m->why, sizeof(m->why), "out of memory");
        return false;
    }
    for (size_t i = 0; i < n; i++)
        names[i] = avro_schema_record_field_name(s, (int)i);
    qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 1; ok && i < n; i++)
        if (!strcmp(names[i - 1], names[i])) {
            snprintf(m->why, sizeof(m->why),
                     "record %.64s has two fields named %.64s",
                     avro_schema_name(s), names[i]);
            ok = false;
        }
    free(names);
    return ok;
}

/* Can a value of @p s be made, under @p bounds unions, arrays and maps?
 * false with m->why when not. */
static bool writer_makeable(makeable_t *m, avro_schema_t s, int bounds)
{
    if (++m->nodes > WRITER_NODES_MAX) {
        snprintf(m->why, sizeof(m->why), "more than %d types to walk",
                 WRITER_NODES_MAX);
        return false;
    }
    switch (avro_typeof(s)) {
    case AVRO_LINK: {
        avro_schema_t t = avro_schema_link_target(s);
        for (int i = m->depth - 1; i >= 0; i--)
            if (m->stack[i] == t) {
                if (m->bounds[i] != bounds)
                    return true; /* may end: an option, a list */
                snprintf(m->why, sizeof(m->why),
                         "record %.64s contains itself with no union, array "
                         "or map between: a value of it would never end",
                         avro_schema_name(t));
                return false;
            }
        return writer_makeable(m, t, bounds);
    }
    case AVRO_RECORD:
        if (m->depth == WRITER_DEPTH_MAX) {
            snprintf(m->why, sizeof(m->why), "records nested more than %d deep",
                     WRITER_DEPTH_MAX);
            return false;
        }
        if (!fields_distinct(m, s))
            return false;
        m->stack[m->depth] = s;
        m->bounds[m->depth++] = bounds;
        for (size_t i = 0; i < avro_schema_record_size(s); i++)
            if (!writer_makeable(
                    m, avro_schema_record_field_get_by_index(s, (int)i),
                    bounds))
                return false;
        m->depth--;
        return true;
    case AVRO_UNION:
        for (size_t i = 0; i < avro_schema_union_size(s); i++)
            if (!writer_makeable(m, avro_schema_union_branch(s, (int)i),
                                 bounds + 1))
                return false;
        return true;
    case AVRO_ARRAY:
        return writer_makeable(m, avro_schema_array_items(s), bounds + 1);
    case AVRO_MAP:
        return writer_makeable(m, avro_schema_map_values(s), bounds + 1);
    case AVRO_FIXED:
        if (avro_schema_fixed_size(s) > 0 &&
            avro_schema_fixed_size(s) <= WRITER_FIXED_MAX) {
            if (!bounds && (m->fixed_total += avro_schema_fixed_size(s)) >
                               WRITER_FIXED_MAX) {
                snprintf(m->why, sizeof(m->why),
                         "fixed fields of more than %ld bytes in all, beyond "
                         "any message",
                         WRITER_FIXED_MAX);
                return false;
            }
            return true;
        }
        /* avro-c makes no value of a fixed of 0 bytes: every message
         * would fail, each with an allocation error. */
        snprintf(m->why, sizeof(m->why),
                 avro_schema_fixed_size(s) > 0
                     ? "fixed %.64s of %lld bytes, beyond any message (at "
                       "most %ld)"
                     : "fixed %.64s of %lld bytes, which the reader cannot "
                       "make a value of (1 to %ld)",
                 avro_schema_name(s), (long long)avro_schema_fixed_size(s),
                 WRITER_FIXED_MAX);
        return false;
    default:
        return true;
    }
}

/* Parse and prepare the writer schema @p json of @p id into @p w; a
 * schema we cannot read is recorded in w->refused, not returned. */
static lf_err_t writer_prepare(lf_codec_t *c, writer_t *w, int32_t id,
                               const char *json)
{
    char why[400];
    const char *ns;

    w->id = id;
    if (avro_schema_from_json_length(json, strlen(json), &w->schema)) {
        char *bare = lf_json_schema_without_nul_defaults(json);
        snprintf(why, sizeof(why),
                 "schema id %ld from the registry is not a valid Avro "
                 "schema: %s",
                 (long)id, avro_strerror());
        bool unread = !bare || avro_schema_from_json_length(bare, strlen(bare),
                                                            &w->schema);
        free(bare);
        if (unread) {
            w->schema = NULL;
            goto refuse;
        }
    }
    ns = avro_typeof(w->schema) == AVRO_RECORD
             ? avro_schema_namespace(w->schema)
             : NULL;
    if (avro_typeof(w->schema) != AVRO_RECORD ||
        strcmp(avro_schema_name(w->schema), "LeadEvent") || !ns ||
        strcmp(ns, "leadflow")) {
        snprintf(why, sizeof(why),
                 "schema id %ld from the registry is %s %s%s%.64s, not a "
                 "leadflow.LeadEvent",
                 (long)id,
                 avro_typeof(w->schema) == AVRO_RECORD
                     ? "record"
                     : avro_schema_type_name(w->schema),
                 ns && *ns ? ns : "", ns && *ns ? "." : "",
                 avro_typeof(w->schema) == AVRO_RECORD
                     ? avro_schema_name(w->schema)
                     : "");
        goto refuse;
    }
    makeable_t *m = calloc(1, sizeof(*m));
    if (!m)
        return LF_ERR_NOMEM;
    bool makeable = writer_makeable(m, w->schema, 0);
    if (!makeable)
        snprintf(why, sizeof(why),
                 "schema id %ld from the registry cannot be read: %s", (long)id,
                 m->why);
    free(m);
    if (!makeable)
        goto refuse;
    if (c->schema_v1 && avro_schema_equal(w->schema, c->schema_v1))
        w->version = 1;
    else if (c->schema && avro_schema_equal(w->schema, c->schema))
        w->version = 2;
    /* Enums are read by symbol name and records by field name, so a
     * writer may reorder symbols and fields: avro-c's resolver (which maps
     * enums by position) is not used. */
    if (!(w->iface = avro_generic_class_from_schema(w->schema)) ||
        avro_generic_value_new(w->iface, &w->wval))
        return LF_ERR_NOMEM;
    return LF_OK;

refuse:
    return (w->refused = strdup(why)) ? LF_OK : LF_ERR_NOMEM;
}

/* The writer of schema @p id: cached, or fetched from the registry. */
static lf_err_t writer_get(lf_codec_t *c, int32_t id, writer_t **out,
                           char *errstr, size_t errstr_size)
{
    char *json = NULL;
    writer_t *w;
    lf_err_t err;

    if (c->last < c->nwriters && c->writers[c->last].id == id) {
        *out = &c->writers[c->last];
        return LF_OK;
    }
    for (int i = 0; i < c->nwriters; i++)
        if (c->writers[i].id == id) {
            c->last = i;
            *out = &c->writers[i];
            return LF_OK;
        }
    /* Unknown ids, and registries that are away, are not cached here: the
     * registry remembers its "not found" answers for a while itself. */
    if ((err =
             lf_registry_schema_by_id(c->reg, id, &json, errstr, errstr_size)))
        return err;
    if (c->nwriters == WRITERS_MAX)
        writers_clear(c);
    w = &c->writers[c->nwriters];
    err = writer_prepare(c, w, id, json);
    free(json);
    if (err) {
        writer_free(w);
        return lf_seterr(err, errstr, errstr_size, "out of memory");
    }
    c->last = c->nwriters++;
    *out = w;
    return LF_OK;
}

/* ---- decode ----------------------------------------------------------- */

typedef struct dec_s {
    char *errstr;
    size_t errstr_size;
    lf_err_t err;
    lf_event_t *ev;  /* its strbuf: where the strings go while they fit */
    size_t used;     /* bytes of ev->strbuf taken */
    int32_t id;      /* the writer's schema id, for messages */
    int known_types; /* event types this reader knows */
} dec_t;

/* The event type whose Avro symbol is @p sym, or -1. */
static int type_symbol_parse(const char *sym)
{
    for (int t = 0; t < LF_EV__COUNT; t++)
        if (!strcmp(lf_event_type_symbol((lf_event_type_t)t), sym))
            return t;
    return -1;
}

/* The recycle reason whose Avro symbol is @p sym, or -1. */
static int reason_symbol_parse(const char *sym)
{
    for (int r = 0; r < LF_RR__COUNT; r++)
        if (!strcmp(lf_recycle_reason_symbol((lf_recycle_reason_t)r), sym))
            return r;
    return -1;
}

/* Room for @p size bytes in the event's strbuf, or its own allocation
 * (a string from the reader schema's defaults need not fit): one malloc
 * per event instead of one per string (lf_event_clear frees each string
 * outside strbuf on its own). */
static char *str_room(dec_t *d, size_t size)
{
    lf_event_t *ev = d->ev;
    if (ev->strbuf && ev->strbuf_size - d->used >= size) {
        char *p = ev->strbuf + d->used;
        d->used += size;
        return p;
    }
    return malloc(size);
}

/* Copy the string value @p v out of avro-c, refusing an embedded NUL (avro-c
 * strings are NUL-terminated, so one inside would silently cut it short). */
static char *copy_str(dec_t *d, avro_value_t *v, const char *name)
{
    const char *s;
    size_t size;
    char *copy;

    if (avro_value_get_string(v, &s, &size) || size == 0) {
        d->err = lf_seterr(LF_ERR_INVALID, d->errstr, d->errstr_size,
                           "field \"%s\": unreadable string", name);
        return NULL;
    }
    if (memchr(s, '\0', size - 1)) {
        d->err = lf_seterr(LF_ERR_INVALID, d->errstr, d->errstr_size,
                           "field \"%s\": contains a NUL byte", name);
        return NULL;
    }
    if (!(copy = str_room(d, size))) {
        d->err =
            lf_seterr(LF_ERR_NOMEM, d->errstr, d->errstr_size, "out of memory");
        return NULL;
    }
    memcpy(copy, s, size);
    return copy;
}

/* ---- the generic reader: any writer schema, by field name ----
 * avro-c reads the body as the writer wrote it; each field goes to the
 * model by its name (a field's position may change between versions, and
 * avro-c's resolver would map enums by position and drop the fields the
 * reader lacks). What this reader does not know is kept as JSON text in
 * ev->extra and ev->payload_extra, so that nothing a writer sends is lost:
 * strings, numbers, booleans and null (within a record, map or array; a
 * field that is null is left out) as themselves, enums as their
 * symbol, a union as its branch's value, records and maps as objects,
 * arrays as arrays, bytes and fixed as base64 strings (JSON cannot hold
 * raw bytes, and PostgreSQL's jsonb refuses \u0000), a float that is not
 * finite as the string "NaN", "Infinity" or "-Infinity". */

typedef enum { C_STR, C_OPT_STR, C_INT, C_LONG, C_REASON, C_MAP } ckind_t;

typedef struct cfield_s {
    const char *name;
    ckind_t kind;
    size_t off; /* in lf_event_t */
} cfield_t;

#define CF(n, k, member)                                                       \
    {                                                                          \
        n, k, offsetof(lf_event_t, member)                                     \
    }

/* Each type's payload fields by name, and its record's name. */
/* clang-format off */
static const cfield_t payload_fields[LF_EV__COUNT][4] = {
    [LF_EV_CAPTURED] = {CF("channel", C_STR, u.captured.channel),
                        CF("campaign", C_OPT_STR, u.captured.campaign),
                        CF("attributes", C_MAP, u.captured.attrs)},
    [LF_EV_SCORED] = {CF("score", C_INT, u.scored.score),
                      CF("threshold", C_INT, u.scored.threshold),
                      CF("model", C_STR, u.scored.model)},
    [LF_EV_HANDED_OFF] = {CF("owner", C_STR, u.handed_off.owner),
                          CF("sla_hours", C_INT, u.handed_off.sla_hours)},
    [LF_EV_ACCEPTED] = {CF("owner", C_STR, u.accepted.owner)},
    [LF_EV_RECYCLED] = {CF("reason", C_REASON, u.recycled.reason),
                        CF("note", C_OPT_STR, u.recycled.note)},
    [LF_EV_QUALIFIED] = {CF("opportunity_id", C_STR, u.qualified.opportunity_id),
                         CF("amount_minor", C_LONG, u.qualified.amount_minor),
                         CF("currency", C_STR, u.qualified.currency)},
    [LF_EV_WON] = {CF("amount_minor", C_LONG, u.won.amount_minor),
                   CF("currency", C_STR, u.won.currency)},
    [LF_EV_LOST] = {CF("reason", C_STR, u.lost.reason)},
    [LF_EV_DISQUALIFIED] = {CF("reason", C_STR, u.disqualified.reason)},
    [LF_EV_MERGED] = {CF("into_lead_id", C_STR, u.merged.into_lead_id)},
    [LF_EV_VOIDED] = {CF("voided_event_id", C_STR, u.voided.voided_event_id),
                      CF("reason", C_STR, u.voided.reason)},
    [LF_EV_ERASED] = {CF("request_id", C_STR, u.erased.request_id)},
};
static const char *const payload_record[LF_EV__COUNT] = {
    "Captured", "Scored", "HandedOff", "Accepted", "Recycled", "Qualified",
    "Won", "Lost", "Disqualified", "Merged", "Voided", "Erased"};
/* clang-format on */

/* The envelope fields, in the order they are read (type before payload). */
enum {
    E_EVENT_ID,
    E_LEAD_ID,
    E_TYPE,
    E_OCCURRED_AT,
    E_SOURCE,
    E_ACTOR,
    E_ACCOUNT_ID,
    E_PAYLOAD,
    E__COUNT
};
static const char *const envelope_names[E__COUNT] = {
    "event_id", "lead_id", "type",       "occurred_at",
    "source",   "actor",   "account_id", "payload"};

static lf_err_t dec_fail(dec_t *d, lf_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static lf_err_t dec_fail(dec_t *d, lf_err_t err, const char *fmt, ...)
{
    va_list ap;

    if (d->err)
        return d->err;
    va_start(ap, fmt);
    vsnprintf(d->errstr, d->errstr_size, fmt, ap);
    va_end(ap);
    return d->err = err;
}

/* @p v, or the current branch of the union @p v into @p tmp. */
static avro_value_t *unwrap(avro_value_t *v, avro_value_t *tmp)
{
    if (avro_value_get_type(v) != AVRO_UNION)
        return v;
    if (avro_value_get_current_branch(v, tmp))
        return NULL;
    return tmp;
}

/* A string field: @p optional ones may be null. */
static char *take_str(dec_t *d, avro_value_t *v, const char *name,
                      bool optional)
{
    avro_value_t b;

    if (d->err)
        return NULL;
    if (!(v = unwrap(v, &b))) {
        dec_fail(d, LF_ERR_INVALID, "field \"%s\": unreadable union", name);
        return NULL;
    }
    if (optional && avro_value_get_type(v) == AVRO_NULL)
        return NULL;
    if (avro_value_get_type(v) != AVRO_STRING) {
        dec_fail(d, LF_ERR_INVALID,
                 "schema id %ld: field \"%s\": %s, expected a string",
                 (long)d->id, name,
                 avro_schema_type_name(avro_value_get_schema(v)));
        return NULL;
    }
    return copy_str(d, v, name);
}

/* An int (@p is_int) or long field; an int widens to a long. */
static int64_t take_num(dec_t *d, avro_value_t *v, const char *name,
                        bool is_int)
{
    avro_value_t b;
    int32_t i32;
    int64_t i64;

    if (d->err || !(v = unwrap(v, &b)))
        return 0;
    if (avro_value_get_type(v) == AVRO_INT32 && !avro_value_get_int(v, &i32))
        return i32;
    if (!is_int && avro_value_get_type(v) == AVRO_INT64 &&
        !avro_value_get_long(v, &i64))
        return i64;
    dec_fail(d, LF_ERR_INVALID, "schema id %ld: field \"%s\": %s, expected %s",
             (long)d->id, name, avro_schema_type_name(avro_value_get_schema(v)),
             is_int ? "an int" : "a long");
    return 0;
}

/* The symbol of the enum value @p v, or NULL (d->err set). */
static const char *take_symbol(dec_t *d, avro_value_t *v, const char *name)
{
    avro_value_t b;
    const char *sym;
    int idx;

    if (d->err)
        return NULL;
    if (!(v = unwrap(v, &b)) || avro_value_get_type(v) != AVRO_ENUM ||
        avro_value_get_enum(v, &idx) ||
        !(sym = avro_schema_enum_get(avro_value_get_schema(v), idx))) {
        dec_fail(d, LF_ERR_INVALID, "schema id %ld: field \"%s\": not an enum",
                 (long)d->id, name);
        return NULL;
    }
    return sym;
}

/* Captured.attributes from the map @p v (an absent map stays empty). */
static lf_err_t take_attrs(dec_t *d, avro_value_t *v)
{
    avro_value_t b, elem;
    size_t n;

    if (d->err)
        return d->err;
    if (!(v = unwrap(v, &b)) || avro_value_get_type(v) != AVRO_MAP ||
        avro_value_get_size(v, &n))
        return dec_fail(d, LF_ERR_INVALID,
                        "field \"attributes\": unreadable map");
    if (n > LF_ATTRS_MAX)
        return dec_fail(d, LF_ERR_INVALID,
                        "field \"attributes\": %zu entries, more than "
                        "the %d allowed",
                        n, LF_ATTRS_MAX);
    if (n && !(d->ev->u.captured.attrs = calloc(n, sizeof(lf_attr_t))))
        return dec_fail(d, LF_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *key;
        lf_attr_t *a = &d->ev->u.captured.attrs[i];
        if (avro_value_get_by_index(v, i, &elem, &key))
            return dec_fail(d, LF_ERR_INVALID,
                            "field \"attributes\": unreadable entry");
        d->ev->u.captured.attr_count = i + 1;
        size_t klen = strlen(key) + 1;
        if (!(a->key = str_room(d, klen)))
            return dec_fail(d, LF_ERR_NOMEM, "out of memory");
        memcpy(a->key, key, klen);
        a->value = take_str(d, &elem, "attributes", false);
        if (d->err)
            return d->err;
    }
    /* Avro maps are unordered; our model keeps keys sorted. Avro map
     * keys may repeat on the wire, a map cannot: avro-c keeps the last. */
    lf_event_sort_attrs(d->ev);
    return d->err;
}

/* ---- fields this reader does not know, as JSON ---- */

static lf_err_t json_value(dec_t *d, lf_buf_t *b, avro_value_t *v,
                           const char *name);

static lf_err_t json_base64(lf_buf_t *b, const uint8_t *s, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char q[4];

    if (lf_buf_append(b, "\"", 1))
        return LF_ERR_NOMEM;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t x = (uint32_t)s[i] << 16 |
                     (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) |
                     (i + 2 < n ? s[i + 2] : 0);
        q[0] = tab[x >> 18 & 63];
        q[1] = tab[x >> 12 & 63];
        q[2] = i + 1 < n ? tab[x >> 6 & 63] : '=';
        q[3] = i + 2 < n ? tab[x & 63] : '=';
        if (lf_buf_append(b, q, 4))
            return LF_ERR_NOMEM;
    }
    return lf_buf_append(b, "\"", 1) ? LF_ERR_NOMEM : LF_OK;
}

/* A string as JSON: valid UTF-8 without NUL (what jsonb can hold). */
static lf_err_t json_string(dec_t *d, lf_buf_t *b, const char *s, size_t n,
                            const char *name)
{
    if (memchr(s, '\0', n) || !lf_utf8_valid(s, n))
        return dec_fail(d, LF_ERR_INVALID,
                        "field \"%s\": not valid UTF-8 without NUL", name);
    return lf_json_append_string(b, s, n)
               ? dec_fail(d, LF_ERR_NOMEM, "out of memory")
               : LF_OK;
}

static lf_err_t json_double(lf_buf_t *b, double x)
{
    char num[40];

    if (x != x)
        snprintf(num, sizeof(num), "\"NaN\"");
    else if (x > 1.7976931348623157e308 || x < -1.7976931348623157e308)
        snprintf(num, sizeof(num), "\"%sInfinity\"", x < 0 ? "-" : "");
    else
        snprintf(num, sizeof(num), "%.17g", x);
    return lf_buf_append(b, num, strlen(num)) ? LF_ERR_NOMEM : LF_OK;
}

/* A record or map as an object, an array as an array. */
static lf_err_t json_compound(dec_t *d, lf_buf_t *b, avro_value_t *v,
                              bool keyed)
{
    avro_value_t elem;
    size_t n;
    const char *key;

    if (avro_value_get_size(v, &n) || lf_buf_append(b, keyed ? "{" : "[", 1))
        return dec_fail(d, LF_ERR_NOMEM, "unreadable value");
    for (size_t i = 0; i < n && !d->err; i++) {
        if (avro_value_get_by_index(v, i, &elem, &key) ||
            (i && lf_buf_append(b, ",", 1)))
            return dec_fail(d, LF_ERR_NOMEM, "unreadable value");
        if (keyed && (json_string(d, b, key, strlen(key), key) ||
                      lf_buf_append(b, ":", 1)))
            return dec_fail(d, LF_ERR_NOMEM, "out of memory");
        json_value(d, b, &elem, keyed ? key : "[]");
    }
    if (!d->err && lf_buf_append(b, keyed ? "}" : "]", 1))
        return dec_fail(d, LF_ERR_NOMEM, "out of memory");
    return d->err;
}

static lf_err_t json_value(dec_t *d, lf_buf_t *b, avro_value_t *v,
                           const char *name)
{
    avro_value_t br;
    const void *p = NULL;
    const char *s;
    size_t n = 0;
    char num[32];
    int32_t i32, e;
    int64_t i64;
    float f;
    double x;
    int bl;

    switch (avro_value_get_type(v)) {
    case AVRO_NULL:
        return lf_buf_append(b, "null", 4) ? LF_ERR_NOMEM : LF_OK;
    case AVRO_BOOLEAN:
        avro_value_get_boolean(v, &bl);
        return lf_buf_append(b, bl ? "true" : "false", bl ? 4 : 5)
                   ? LF_ERR_NOMEM
                   : LF_OK;
    case AVRO_INT32:
        avro_value_get_int(v, &i32);
        snprintf(num, sizeof(num), "%ld", (long)i32);
        return lf_buf_append(b, num, strlen(num)) ? LF_ERR_NOMEM : LF_OK;
    case AVRO_INT64:
        avro_value_get_long(v, &i64);
        snprintf(num, sizeof(num), "%lld", (long long)i64);
        return lf_buf_append(b, num, strlen(num)) ? LF_ERR_NOMEM : LF_OK;
    case AVRO_FLOAT:
        avro_value_get_float(v, &f);
        return json_double(b, f);
    case AVRO_DOUBLE:
        avro_value_get_double(v, &x);
        return json_double(b, x);
    case AVRO_STRING:
        avro_value_get_string(v, &s, &n);
        return json_string(d, b, s, n ? n - 1 : 0, name);
    case AVRO_BYTES:
        avro_value_get_bytes(v, &p, &n);
        return json_base64(b, p, n);
    case AVRO_FIXED:
        avro_value_get_fixed(v, &p, &n);
        return json_base64(b, p, n);
    case AVRO_ENUM:
        avro_value_get_enum(v, &e);
        s = avro_schema_enum_get(avro_value_get_schema(v), e);
        return json_string(d, b, s ? s : "", s ? strlen(s) : 0, name);
    case AVRO_UNION:
        if (avro_value_get_current_branch(v, &br))
            return dec_fail(d, LF_ERR_INVALID, "field \"%s\": unreadable union",
                            name);
        return json_value(d, b, &br, name);
    case AVRO_RECORD:
    case AVRO_MAP:
        return json_compound(d, b, v, true);
    case AVRO_ARRAY:
        return json_compound(d, b, v, false);
    default:
        return dec_fail(d, LF_ERR_INVALID, "field \"%s\": unreadable value",
                        name);
    }
}

/* Is @p v null (or a union whose branch is null)? */
static bool is_null(avro_value_t *v)
{
    avro_value_t branch;

    if (avro_value_get_type(v) == AVRO_UNION) {
        if (avro_value_get_current_branch(v, &branch))
            return false;
        v = &branch;
    }
    return avro_value_get_type(v) == AVRO_NULL;
}

/* Add the field @p name = @p v to the JSON object being built in @p b.
 * A field that is null is left out: an optional field a writer leaves at
 * its default is the field not sent, so the same event sent again by a
 * writer that added one is the same event (not a conflict). */
static lf_err_t extra_add(dec_t *d, lf_buf_t *b, const char *name,
                          avro_value_t *v)
{
    if (is_null(v))
        return LF_OK;
    if (lf_buf_append(b, b->len ? "," : "{", 1) ||
        json_string(d, b, name, strlen(name), name) || lf_buf_append(b, ":", 1))
        return dec_fail(d, LF_ERR_NOMEM, "out of memory");
    return json_value(d, b, v, name);
}

/* The object built in @p b as the event's own string (NULL if empty). */
static char *extra_take(dec_t *d, lf_buf_t *b)
{
    char *s;

    if (d->err || !b->len)
        return NULL;
    if (lf_buf_append(b, "}", 1) || !(s = malloc(b->len + 1))) {
        dec_fail(d, LF_ERR_NOMEM, "out of memory");
        return NULL;
    }
    memcpy(s, b->data, b->len);
    s[b->len] = '\0';
    return s;
}

/* One known payload field @p cf from @p v into d->ev. */
static void take_field(dec_t *d, const cfield_t *cf, avro_value_t *v)
{
    char *base = (char *)d->ev + cf->off;
    const char *sym;
    int r;

    switch (cf->kind) {
    case C_STR:
    case C_OPT_STR:
        *(char **)base = take_str(d, v, cf->name, cf->kind == C_OPT_STR);
        break;
    case C_INT:
        *(int32_t *)base = (int32_t)take_num(d, v, cf->name, true);
        break;
    case C_LONG:
        *(int64_t *)base = take_num(d, v, cf->name, false);
        break;
    case C_REASON:
        if (!(sym = take_symbol(d, v, cf->name)))
            break;
        if ((r = reason_symbol_parse(sym)) < 0)
            dec_fail(d, LF_ERR_INVALID,
                     "schema id %ld: field \"%s\": recycle reason symbol "
                     "%.64s is not one this reader knows",
                     (long)d->id, cf->name, sym);
        else
            *(lf_recycle_reason_t *)base = (lf_recycle_reason_t)r;
        break;
    case C_MAP:
        take_attrs(d, v);
        break;
    }
}

/* The payload record @p p of d->ev's type, by field name. */
static lf_err_t take_payload(dec_t *d, avro_value_t *p, lf_buf_t *extra)
{
    const cfield_t *fs = payload_fields[d->ev->type];
    bool seen[4] = {0};
    avro_value_t f;
    const char *name;
    size_t n;

    if (avro_value_get_size(p, &n))
        return dec_fail(d, LF_ERR_INVALID, "field \"payload\": unreadable");
    for (size_t i = 0; i < n && !d->err; i++) {
        int k = 0;
        if (avro_value_get_by_index(p, i, &f, &name))
            return dec_fail(d, LF_ERR_INVALID, "field \"payload\": unreadable");
        while (k < 4 && fs[k].name && strcmp(fs[k].name, name))
            k++;
        if (k < 4 && fs[k].name) {
            seen[k] = true;
            take_field(d, &fs[k], &f);
        } else {
            extra_add(d, extra, name, &f);
        }
    }
    for (int k = 0; k < 4 && fs[k].name && !d->err; k++)
        if (!seen[k] && fs[k].kind != C_OPT_STR && fs[k].kind != C_MAP)
            dec_fail(d, LF_ERR_INVALID,
                     "schema id %ld: missing required field \"%s\"",
                     (long)d->id, fs[k].name);
    return d->err;
}

/* The type from the enum @p v and the payload from the union @p u, each
 * by name: a symbol or branch this reader does not know is refused, with
 * the schema id and the name (a newer writer's event; a reader that
 * learns it can apply it later). */
static lf_err_t take_typed_payload(dec_t *d, avro_value_t *v, avro_value_t *u,
                                   lf_buf_t *extra)
{
    const char *sym = take_symbol(d, v, "type"), *rec;
    avro_value_t p;
    int t, bt;

    if (!sym)
        return d->err;
    t = type_symbol_parse(sym);
    if (t < 0 || t >= d->known_types)
        return dec_fail(d, LF_ERR_INVALID,
                        "schema id %ld: field \"type\": event type symbol "
                        "%.64s is not one this reader knows",
                        (long)d->id, sym);
    if (avro_value_get_type(u) != AVRO_UNION ||
        avro_value_get_current_branch(u, &p) ||
        avro_value_get_type(&p) != AVRO_RECORD)
        return dec_fail(d, LF_ERR_INVALID,
                        "field \"payload\": unreadable union (%s)",
                        avro_strerror());
    rec = avro_schema_name(avro_value_get_schema(&p));
    for (bt = 0; bt < d->known_types && strcmp(payload_record[bt], rec); bt++)
        ;
    if (bt == d->known_types)
        return dec_fail(d, LF_ERR_INVALID,
                        "schema id %ld: field \"payload\": union branch "
                        "%.64s is not one this reader knows",
                        (long)d->id, rec);
    if (bt != t)
        return dec_fail(d, LF_ERR_INVALID,
                        "field \"payload\": a %s payload on a %s event",
                        lf_event_type_symbol((lf_event_type_t)bt),
                        lf_event_type_symbol((lf_event_type_t)t));
    d->ev->type = (lf_event_type_t)t;
    return take_payload(d, &p, extra);
}

/* Fill d->ev from @p rec, a LeadEvent as its writer wrote it. */
static lf_err_t take_event(dec_t *d, avro_value_t *rec, lf_buf_t *extra,
                           lf_buf_t *pextra)
{
    avro_value_t f[E__COUNT];
    bool have[E__COUNT] = {0};
    const char *name;
    avro_value_t v;
    size_t n;
    lf_event_t *ev = d->ev;

    if (avro_value_get_size(rec, &n))
        return dec_fail(d, LF_ERR_INVALID, "Avro body: unreadable record");
    for (size_t i = 0; i < n && !d->err; i++) {
        int k = 0;
        if (avro_value_get_by_index(rec, i, &v, &name))
            return dec_fail(d, LF_ERR_INVALID, "Avro body: unreadable record");
        while (k < E__COUNT && strcmp(envelope_names[k], name))
            k++;
        if (k == E_ACCOUNT_ID && d->known_types < LF_EV__COUNT)
            k = E__COUNT; /* a v1 reader: account_id is a newer field */
        if (k < E__COUNT) {
            f[k] = v;
            have[k] = true;
        } else {
            extra_add(d, extra, name, &v);
        }
    }
    for (int k = 0; k < E__COUNT && !d->err; k++)
        if (!have[k] && k != E_ACTOR && k != E_ACCOUNT_ID)
            return dec_fail(d, LF_ERR_INVALID,
                            "schema id %ld: missing required field \"%s\"",
                            (long)d->id, envelope_names[k]);
    ev->event_id = take_str(d, &f[E_EVENT_ID], "event_id", false);
    ev->lead_id = take_str(d, &f[E_LEAD_ID], "lead_id", false);
    ev->occurred_at = take_num(d, &f[E_OCCURRED_AT], "occurred_at", false);
    ev->source = take_str(d, &f[E_SOURCE], "source", false);
    if (have[E_ACTOR])
        ev->actor = take_str(d, &f[E_ACTOR], "actor", true);
    if (have[E_ACCOUNT_ID])
        ev->account_id = take_str(d, &f[E_ACCOUNT_ID], "account_id", true);
    if (d->err)
        return d->err;
    return take_typed_payload(d, &f[E_TYPE], &f[E_PAYLOAD], pextra);
}

/* Fill @p ev from @p rec, the datum of writer @p w, by field name. */
static lf_err_t extract(lf_codec_t *c, writer_t *w, avro_value_t *rec,
                        lf_event_t *ev, size_t strbuf_size, char *errstr,
                        size_t errstr_size)
{
    dec_t d = {errstr,
               errstr_size,
               LF_OK,
               ev,
               0,
               w->id,
               c->known >= 2 ? LF_EV__COUNT : LF_EV_V1_COUNT};
    lf_buf_t extra = {0}, pextra = {0};

    /* The message's strings with their NULs fit in its own length: each
     * has a length prefix of at least one byte. Without it, one
     * allocation per string. */
    if ((ev->strbuf = malloc(strbuf_size ? strbuf_size : 1)))
        ev->strbuf_size = strbuf_size;
    take_event(&d, rec, &extra, &pextra);
    ev->extra = extra_take(&d, &extra);
    ev->payload_extra = extra_take(&d, &pextra);
    lf_buf_free(&extra);
    lf_buf_free(&pextra);
    if (d.err && ev->type >= LF_EV__COUNT)
        ev->type = LF_EV_CAPTURED;
    return d.err;
}

/* ---- the v1 and v2 reader, by hand ----
 * Every producer we know writes v1 or v2, and avro-c's generic reader (bounds
 * check, avro_value_read, copying the value out) costs ~15,500
 * instructions per event, a quarter of the projector's own CPU in a
 * drain, when the two cores are the bound (BENCHMARKS.md). This reads a
 * v1 or v2 body (they differ in account_id and three event types) straight
 * into the event. It accepts only what it is sure of:
 * on anything unusual (a NUL in a string, a map in the sized-block form or
 * with a key twice, an index out of range, a varint with bits past 64,
 * truncation, trailing bytes) it declines, and the avro-c path decides,
 * with its own messages. So every message decodes to what avro-c makes of
 * it, and errors read the same: test_codec checks both readers agree on
 * every message it has, fuzz_codec on every input. */

typedef struct rd_s {
    const uint8_t *p, *end;
    char *out;   /* the event's strbuf, where the strings go */
    size_t room; /* bytes left there */
} rd_t;

static bool rd_long(rd_t *r, int64_t *out)
{
    uint64_t v = 0;

    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p == r->end)
            return false;
        uint8_t b = *r->p++;
        if (shift == 63 && b > 1)
            return false; /* bits past 64 */
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            return true;
        }
    }
    return false;
}

static bool rd_int(rd_t *r, int32_t *out)
{
    int64_t v;
    const uint8_t *start = r->p;

    if (!rd_long(r, &v) || r->p - start > 5 || v < INT32_MIN || v > INT32_MAX)
        return false;
    *out = (int32_t)v;
    return true;
}

static bool rd_str(rd_t *r, char **out)
{
    int64_t n;

    if (!rd_long(r, &n) || n < 0 || n > r->end - r->p || (size_t)n >= r->room ||
        memchr(r->p, '\0', (size_t)n))
        return false;
    memcpy(r->out, r->p, (size_t)n);
    r->out[n] = '\0';
    *out = r->out;
    r->out += n + 1;
    r->room -= (size_t)n + 1;
    r->p += n;
    return true;
}

/* A union [null, string]. */
static bool rd_opt_str(rd_t *r, char **out)
{
    int64_t b;

    if (!rd_long(r, &b) || (b != 0 && b != 1))
        return false;
    *out = NULL;
    return b == 0 || rd_str(r, out);
}

/* Captured.attributes: blocks of count entries (count > 0), then 0. */
static bool rd_attrs(rd_t *r, lf_event_t *ev)
{
    lf_attr_t a[LF_ATTRS_MAX];
    size_t n = 0;
    int64_t count;

    while (rd_long(r, &count)) {
        if (count == 0) {
            if (!n)
                return true;
            if (!(ev->u.captured.attrs = malloc(n * sizeof(*a))))
                return false;
            memcpy(ev->u.captured.attrs, a, n * sizeof(*a));
            ev->u.captured.attr_count = n;
            /* Avro maps are unordered; our model keeps keys sorted and
             * unique (a repeated key is avro-c's to resolve). */
            return lf_event_sort_attrs(ev);
        }
        if (count < 0 || count > (int64_t)(LF_ATTRS_MAX - n))
            return false;
        for (int64_t i = 0; i < count; i++, n++)
            if (!rd_str(r, &a[n].key) || !rd_str(r, &a[n].value))
                return false;
    }
    return false;
}

/* The payload of the identity events (v2). */
static bool rd_identity(rd_t *r, lf_event_t *ev)
{
    switch (ev->type) {
    case LF_EV_MERGED:
        return rd_str(r, &ev->u.merged.into_lead_id);
    case LF_EV_VOIDED:
        return rd_str(r, &ev->u.voided.voided_event_id) &&
               rd_str(r, &ev->u.voided.reason);
    case LF_EV_ERASED:
        return rd_str(r, &ev->u.erased.request_id);
    default:
        return false;
    }
}

/* A body written with the published contract @p version (1 or 2).
 * @returns true with ev filled (strings in ev->strbuf), or false: not
 * read here, ev to clear. */
static bool decode_direct_body(const uint8_t *data, size_t len, int version,
                               lf_event_t *ev)
{
    rd_t r = {data, data + len, NULL, 0};
    int32_t type, i32;
    int64_t branch;
    int ntypes = version >= 2 ? LF_EV__COUNT : LF_EV_V1_COUNT;

    /* A string's length prefix is at least one byte: the strings with
     * their NULs fit in the body's length. */
    if (!(ev->strbuf = malloc(len ? len : 1)))
        return false;
    ev->strbuf_size = len ? len : 1;
    r.out = ev->strbuf;
    r.room = ev->strbuf_size;

    if (!rd_str(&r, &ev->event_id) || !rd_str(&r, &ev->lead_id) ||
        !rd_int(&r, &type) || type < 0 || type >= ntypes ||
        !rd_long(&r, &ev->occurred_at) || !rd_str(&r, &ev->source) ||
        !rd_opt_str(&r, &ev->actor) ||
        (version >= 2 && !rd_opt_str(&r, &ev->account_id)) ||
        !rd_long(&r, &branch) || branch != type)
        return false;
    ev->type = (lf_event_type_t)type;
    switch (ev->type) {
    case LF_EV_CAPTURED:
        if (!rd_str(&r, &ev->u.captured.channel) ||
            !rd_opt_str(&r, &ev->u.captured.campaign) || !rd_attrs(&r, ev))
            return false;
        break;
    case LF_EV_SCORED:
        if (!rd_int(&r, &ev->u.scored.score) ||
            !rd_int(&r, &ev->u.scored.threshold) ||
            !rd_str(&r, &ev->u.scored.model))
            return false;
        break;
    case LF_EV_HANDED_OFF:
        if (!rd_str(&r, &ev->u.handed_off.owner) ||
            !rd_int(&r, &ev->u.handed_off.sla_hours))
            return false;
        break;
    case LF_EV_ACCEPTED:
        if (!rd_str(&r, &ev->u.accepted.owner))
            return false;
        break;
    case LF_EV_RECYCLED:
        if (!rd_int(&r, &i32) || i32 < 0 || i32 >= LF_RR__COUNT)
            return false;
        ev->u.recycled.reason = (lf_recycle_reason_t)i32;
        if (!rd_opt_str(&r, &ev->u.recycled.note))
            return false;
        break;
    case LF_EV_QUALIFIED:
        if (!rd_str(&r, &ev->u.qualified.opportunity_id) ||
            !rd_long(&r, &ev->u.qualified.amount_minor) ||
            !rd_str(&r, &ev->u.qualified.currency))
            return false;
        break;
    case LF_EV_WON:
        if (!rd_long(&r, &ev->u.won.amount_minor) ||
            !rd_str(&r, &ev->u.won.currency))
            return false;
        break;
    case LF_EV_LOST:
        if (!rd_str(&r, &ev->u.lost.reason))
            return false;
        break;
    case LF_EV_DISQUALIFIED:
        if (!rd_str(&r, &ev->u.disqualified.reason))
            return false;
        break;
    default:
        if (!rd_identity(&r, ev))
            return false;
    }
    return r.p == r.end;
}

typedef enum { READ_ANY, READ_AVRO_C, READ_DIRECT } reader_t;

/* The writer of frame @p b: pinned, or through the registry. */
static lf_err_t frame_writer(lf_codec_t *c, const uint8_t *b, size_t len,
                             writer_t **w, char *errstr, size_t errstr_size)
{
    int32_t id;
    lf_err_t err;

    if (len == 0 || !b)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "empty message: expected a framed Avro LeadEvent");
    if (b[0] != LF_MAGIC)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "framing: magic byte 0x%02x, expected 0x00", b[0]);
    if (len < LF_FRAME_HEADER)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "framing: %zu bytes, shorter than the 5-byte header",
                         len);
    id = (int32_t)((uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 |
                   (uint32_t)b[3] << 8 | b[4]);
    if (!c->reg) {
        if (id != LF_SCHEMA_ID_V1 && id != LF_SCHEMA_ID_V2)
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "framing: unknown schema id %d (known: %d, %d; "
                             "no schema registry is set to ask: "
                             "schema.registry.url)",
                             id, LF_SCHEMA_ID_V1, LF_SCHEMA_ID_V2);
        *w = &c->pinned[id - LF_SCHEMA_ID_V1];
        return LF_OK;
    }
    if (id <= 0)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "framing: schema id %d: registry ids are positive",
                         id);
    if ((err = writer_get(c, id, w, errstr, errstr_size)))
        return err;
    if ((*w)->refused)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size, "%s",
                         (*w)->refused);
    return LF_OK;
}

static lf_err_t decode(lf_codec_t *c, const void *data, size_t len,
                       lf_event_t *ev, reader_t how, char *errstr,
                       size_t errstr_size)
{
    const uint8_t *b = data, *body;
    size_t blen;
    writer_t *w = NULL;
    lf_err_t err;

    lf_event_init(ev);
    if ((err = frame_writer(c, b, len, &w, errstr, errstr_size)))
        return err;
    body = b + LF_FRAME_HEADER;
    blen = len - LF_FRAME_HEADER;
    /* The direct reader reads the published versions this reader knows;
     * a newer one goes by name, so its new fields are kept. */
    if (how != READ_AVRO_C && w->version && w->version <= c->known) {
        if (decode_direct_body(body, blen, w->version, ev)) {
            /* What avro-c would have made of it: the same check follows. */
            if ((err = lf_event_validate(ev, errstr, errstr_size)))
                lf_event_clear(ev);
            return err;
        }
        lf_event_clear(ev);
    }
    if (how == READ_DIRECT)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "not read by the direct reader");
    /* The bounds check walks the writer's schema: that is what the bytes
     * follow, and what avro-c's reader will trust. */
    if ((err = lf_avro_check(w->schema, body, blen, errstr, errstr_size)))
        return err;
    avro_reader_memory_set_source(c->reader, (const char *)body, (int64_t)blen);
    if (avro_value_reset(&w->wval) || avro_value_read(c->reader, &w->wval))
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size, "Avro body: %s",
                         avro_strerror());
    if ((err = extract(c, w, &w->wval, ev, blen, errstr, errstr_size)) ||
        (err = lf_event_validate(ev, errstr, errstr_size))) {
        lf_event_clear(ev);
        return err;
    }
    return LF_OK;
}

lf_err_t lf_codec_decode(lf_codec_t *c, const void *data, size_t len,
                         lf_event_t *ev, char *errstr, size_t errstr_size)
{
    return decode(c, data, len, ev, READ_ANY, errstr, errstr_size);
}

lf_err_t lf_codec_decode_generic(lf_codec_t *c, const void *data, size_t len,
                                 lf_event_t *ev, char *errstr,
                                 size_t errstr_size)
{
    return decode(c, data, len, ev, READ_AVRO_C, errstr, errstr_size);
}

lf_err_t lf_codec_decode_direct(lf_codec_t *c, const void *data, size_t len,
                                lf_event_t *ev, char *errstr,
                                size_t errstr_size)
{
    return decode(c, data, len, ev, READ_DIRECT, errstr, errstr_size);
}
