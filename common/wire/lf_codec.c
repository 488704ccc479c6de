/* lf_codec.c: framed Avro for LeadEvent: direct v1 writer and reader, and
 * avro-c (behind a schema-driven bounds check) as their reference and for
 * every other writer schema. */
#include "lf_codec.h"
#include "lf_codec_int.h"

#include "lf_embedded.h"

#include <avro.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef LF_AVRO_VERSION
#define LF_AVRO_VERSION "unknown"
#endif

/* Field indexes of the v1 record, in schema order (the wire order). */
enum {
    F_EVENT_ID,
    F_LEAD_ID,
    F_TYPE,
    F_OCCURRED_AT,
    F_SOURCE,
    F_ACTOR,
    F_PAYLOAD
};

/* A writer schema met through the registry, and how we read it. */
typedef struct writer_s {
    int32_t id;
    char *refused; /* why this id cannot be read (final), or NULL */
    avro_schema_t schema;
    bool same;                    /* equal to v1: read straight into c->dec */
    avro_value_iface_t *iface;    /* generic class of the writer's schema */
    avro_value_t wval;            /* the datum as written */
    avro_value_iface_t *resolver; /* avro_resolved_reader, writer -> v1 */
    avro_value_t rval;            /* wval seen through v1 */
} writer_t;

/* Writer schemas kept per codec; when full, all are dropped and met again
 * (ids come from hostile messages, memory must stay bounded). */
#define WRITERS_MAX 64

struct lf_codec_s {
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t enc; /* reused for every encode */
    avro_value_t dec; /* reused for every decode */
    avro_reader_t reader;
    avro_writer_t writer;
    lf_registry_t *reg; /* borrowed or own_reg; NULL: pinned ids */
    lf_registry_t *own_reg; /* lf_codec_from_conf()'s, freed with c */
    writer_t writers[WRITERS_MAX];
    int nwriters, last; /* last: the writer of the previous decode */
};

static void writers_clear(lf_codec_t *c);

const char *lf_avro_version(void)
{
    return LF_AVRO_VERSION;
}

lf_codec_t *lf_codec_new(char *errstr, size_t errstr_size)
{
    lf_codec_t *c = calloc(1, sizeof(*c));
    static const char empty[1];

    if (!c) {
        lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (avro_schema_from_json_length(lf_embedded_avsc_v1,
                                     strlen(lf_embedded_avsc_v1), &c->schema)) {
        lf_seterr(LF_ERR_INVALID, errstr, errstr_size, "lead_event.v1.avsc: %s",
                  avro_strerror());
        free(c);
        return NULL;
    }
    if (!(c->iface = avro_generic_class_from_schema(c->schema)) ||
        avro_generic_value_new(c->iface, &c->enc) ||
        avro_generic_value_new(c->iface, &c->dec) ||
        !(c->reader = avro_reader_memory(empty, 0)) ||
        !(c->writer = avro_writer_memory(empty, 0))) {
        lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "avro-c: %s",
                  avro_strerror());
        lf_codec_destroy(c);
        return NULL;
    }
    return c;
}

void lf_codec_destroy(lf_codec_t *c)
{
    if (!c)
        return;
    writers_clear(c);
    if (c->enc.self)
        avro_value_decref(&c->enc);
    if (c->dec.self)
        avro_value_decref(&c->dec);
    if (c->iface)
        avro_value_iface_decref(c->iface);
    if (c->reader)
        avro_reader_free(c->reader);
    if (c->writer)
        avro_writer_free(c->writer);
    if (c->schema)
        avro_schema_decref(c->schema);
    lf_registry_destroy(c->own_reg);
    free(c);
}

lf_err_t lf_codec_from_conf(const lf_conf_t *conf, lf_codec_t **out,
                            char *errstr, size_t errstr_size)
{
    lf_codec_t *c;

    *out = NULL;
    if (!(c = lf_codec_new(errstr, errstr_size)))
        return LF_ERR_NOMEM;
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
#define WALK_MAX_NAMES (2 * WALK_MAX_DEPTH + 2)

/* The field path is a stack of names joined only when an error is written:
 * formatting it for every field cost a third of a decode. */
typedef struct walk_s {
    const uint8_t *p, *end;
    const char *names[WALK_MAX_NAMES];
    int nnames;
    char *errstr;
    size_t errstr_size;
    int depth;
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

static lf_err_t walk_blocks(walk_t *w, avro_schema_t items, bool is_map)
{
    int64_t total = 0, count, bytes;
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
        if (count > WALK_MAX_ITEMS - total || count > w->end - w->p)
            return walk_fail(w, "block count %lld exceeds the bytes left",
                             (long long)count);
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
                .errstr_size = errstr_size};
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

/* ---- the v1 writer, by hand ----
 * Producers always write v1. avro-c's generic value writer costs ~8,700
 * instructions per event (BENCHMARKS.md: cost, producer side), most of it
 * in setting, sizing and walking the value; the binary encoding of this one
 * record is simple enough to write directly, in about a tenth of that.
 * lf_codec_encode_generic() is the avro-c writer, kept as the reference:
 * test_codec compares the bytes of both for every type and edge, and
 * fuzz_json for every event it parses. */

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

/* Collect @p ev's strings into @p es; required ones must be there. */
static lf_err_t enc_strings(const lf_event_t *ev, enc_strs_t *es,
                            char *errstr, size_t errstr_size)
{
    const char *names[8] = {0};
    int ns = 0;

#define REQ(name, s) (names[ns] = name, es->str[ns++] = (s))
#define OPT(name, s) (names[ns] = NULL, es->str[ns++] = (s))
    REQ("event_id", ev->event_id);
    REQ("lead_id", ev->lead_id);
    REQ("source", ev->source);
    OPT("actor", ev->actor);
    switch (ev->type) {
    case LF_EV_CAPTURED:
        REQ("channel", ev->u.captured.channel);
        OPT("campaign", ev->u.captured.campaign);
        break;
    case LF_EV_SCORED: REQ("model", ev->u.scored.model); break;
    case LF_EV_HANDED_OFF: REQ("owner", ev->u.handed_off.owner); break;
    case LF_EV_ACCEPTED: REQ("owner", ev->u.accepted.owner); break;
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
    case LF_EV_WON: REQ("currency", ev->u.won.currency); break;
    case LF_EV_LOST: REQ("reason", ev->u.lost.reason); break;
    case LF_EV_DISQUALIFIED: REQ("reason", ev->u.disqualified.reason); break;
    default: break;
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

/* The payload record of @p ev's type; es->str[4..] are its strings. */
static char *put_payload(char *p, const lf_event_t *ev, const enc_strs_t *es)
{
    const char *const *str = es->str;
    const size_t *len = es->len;

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
    default: /* accepted, lost, disqualified: one string */
        return put_str(p, str[4], len[4]);
    }
}

lf_err_t lf_codec_encode(lf_codec_t *c, const lf_event_t *ev, int32_t schema_id,
                         lf_buf_t *out, char *errstr, size_t errstr_size)
{
    enc_strs_t es = {{0}, {0}, 0};
    lf_err_t err;
    char *p;

    (void)c;
    if ((unsigned)ev->type >= LF_EV__COUNT)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "field \"type\": unknown event type %d", ev->type);
    if ((err = enc_strings(ev, &es, errstr, errstr_size)) ||
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
    default:
        break;
    }
    return 0;
#undef TRY
}

lf_err_t lf_codec_encode_generic(lf_codec_t *c, const lf_event_t *ev,
                                 int32_t schema_id, lf_buf_t *out,
                                 char *errstr, size_t errstr_size)
{
    avro_value_t *rec = &c->enc, f, p;
    size_t size;

    if ((unsigned)ev->type >= LF_EV__COUNT)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "field \"type\": unknown event type %d", ev->type);
    CHECK(avro_value_reset(rec));
    CHECK(set_str(rec, F_EVENT_ID, ev->event_id));
    CHECK(set_str(rec, F_LEAD_ID, ev->lead_id));
    CHECK(set_enum(rec, F_TYPE, ev->type));
    CHECK(set_long(rec, F_OCCURRED_AT, ev->occurred_at));
    CHECK(set_str(rec, F_SOURCE, ev->source));
    CHECK(set_opt_str(rec, F_ACTOR, ev->actor));
    CHECK(avro_value_get_by_index(rec, F_PAYLOAD, &f, NULL));
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
    if (w->rval.self)
        avro_value_decref(&w->rval);
    if (w->resolver)
        avro_value_iface_decref(w->resolver);
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

    if (!c->reg) {
        *id = LF_SCHEMA_ID_V1;
        return LF_OK;
    }
    /* Confluent's default TopicNameStrategy. */
    snprintf(subject, sizeof(subject), "%s-value", topic);
    return lf_registry_register(c->reg, subject, lf_embedded_avsc_v1,
                                lf_registry_auto_register(c->reg), id, errstr,
                                errstr_size);
}

/* The enum named @p name in schema @p s, or NULL. */
static avro_schema_t find_enum(avro_schema_t s, const char *name, int depth)
{
    avro_schema_t hit = NULL;

    if (depth > WALK_MAX_DEPTH)
        return NULL;
    switch (avro_typeof(s)) {
    case AVRO_ENUM:
        return strcmp(avro_schema_name(s), name) ? NULL : s;
    case AVRO_RECORD:
        for (size_t i = 0; !hit && i < avro_schema_record_size(s); i++)
            hit = find_enum(avro_schema_record_field_get_by_index(s, (int)i),
                            name, depth + 1);
        return hit;
    case AVRO_UNION:
        for (size_t i = 0; !hit && i < avro_schema_union_size(s); i++)
            hit =
                find_enum(avro_schema_union_branch(s, (int)i), name, depth + 1);
        return hit;
    case AVRO_ARRAY:
        return find_enum(avro_schema_array_items(s), name, depth + 1);
    case AVRO_MAP:
        return find_enum(avro_schema_map_values(s), name, depth + 1);
    default: /* links lead back to a schema already walked */
        return NULL;
    }
}

/*
 * avro-c matches an enum by its name only and hands the writer's index to
 * the reader unchanged: a writer whose symbols were reordered would be read
 * as other symbols without a word. Refuse a writer schema unless each of
 * its enums lists ours first, in our order (appended symbols are fine: an
 * index past ours is refused per message). @returns true if compatible.
 */
static bool enums_compatible(avro_schema_t w, avro_schema_t r, int depth,
                             char *why, size_t why_size)
{
    bool ok = true;

    if (depth > WALK_MAX_DEPTH)
        return true;
    switch (avro_typeof(w)) {
    case AVRO_ENUM: {
        avro_schema_t ours = find_enum(r, avro_schema_name(w), 0);
        int nw = avro_schema_enum_number_of_symbols(w);
        int nr = ours ? avro_schema_enum_number_of_symbols(ours) : 0;
        for (int i = 0; i < nw && i < nr; i++) {
            const char *sw = avro_schema_enum_get(w, i);
            const char *sr = avro_schema_enum_get(ours, i);
            if (strcmp(sw, sr)) {
                snprintf(why, why_size,
                         "enum %s: symbol %d is %.40s in the writer's "
                         "schema and %s in ours, and avro-c maps enums by "
                         "position",
                         avro_schema_name(w), i, sw, sr);
                return false;
            }
        }
        return true;
    }
    case AVRO_RECORD:
        for (size_t i = 0; ok && i < avro_schema_record_size(w); i++)
            ok = enums_compatible(
                avro_schema_record_field_get_by_index(w, (int)i), r, depth + 1,
                why, why_size);
        return ok;
    case AVRO_UNION:
        for (size_t i = 0; ok && i < avro_schema_union_size(w); i++)
            ok = enums_compatible(avro_schema_union_branch(w, (int)i), r,
                                  depth + 1, why, why_size);
        return ok;
    case AVRO_ARRAY:
        return enums_compatible(avro_schema_array_items(w), r, depth + 1, why,
                                why_size);
    case AVRO_MAP:
        return enums_compatible(avro_schema_map_values(w), r, depth + 1, why,
                                why_size);
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
        w->schema = NULL;
        snprintf(why, sizeof(why),
                 "schema id %ld from the registry is not a valid Avro "
                 "schema: %s",
                 (long)id, avro_strerror());
        goto refuse;
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
    if (avro_schema_equal(w->schema, c->schema)) {
        w->same = true;
        return LF_OK;
    }
    if (!enums_compatible(w->schema, c->schema, 0, why, sizeof(why)))
        goto refuse_prefixed;
    if (!(w->resolver = avro_resolved_reader_new(w->schema, c->schema))) {
        snprintf(why, sizeof(why), "%s", avro_strerror());
        goto refuse_prefixed;
    }
    if (!(w->iface = avro_generic_class_from_schema(w->schema)) ||
        avro_generic_value_new(w->iface, &w->wval) ||
        avro_resolved_reader_new_value(w->resolver, &w->rval))
        return LF_ERR_NOMEM;
    avro_resolved_reader_set_source(&w->rval, &w->wval);
    return LF_OK;

refuse_prefixed : {
    char full[sizeof(why) + 100];
    snprintf(full, sizeof(full),
             "schema id %ld from the registry cannot be read as "
             "leadflow.LeadEvent v1: %s",
             (long)id, why);
    return (w->refused = strdup(full)) ? LF_OK : LF_ERR_NOMEM;
}
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
    lf_event_t *ev; /* its strbuf: where the strings go while they fit */
    size_t used;    /* bytes of ev->strbuf taken */
} dec_t;

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

static char *get_str(dec_t *d, avro_value_t *rec, int idx, const char *name)
{
    avro_value_t f;

    if (d->err)
        return NULL;
    if (avro_value_get_by_index(rec, idx, &f, NULL)) {
        d->err = lf_seterr(LF_ERR_INVALID, d->errstr, d->errstr_size,
                           "field \"%s\": missing", name);
        return NULL;
    }
    return copy_str(d, &f, name);
}

static char *get_opt_str(dec_t *d, avro_value_t *rec, int idx, const char *name)
{
    avro_value_t f, b;
    int disc;

    if (d->err)
        return NULL;
    if (avro_value_get_by_index(rec, idx, &f, NULL) ||
        avro_value_get_discriminant(&f, &disc) ||
        avro_value_get_current_branch(&f, &b)) {
        d->err = lf_seterr(LF_ERR_INVALID, d->errstr, d->errstr_size,
                           "field \"%s\": unreadable union", name);
        return NULL;
    }
    return disc == 0 ? NULL : copy_str(d, &b, name);
}

static int64_t get_num(dec_t *d, avro_value_t *rec, int idx)
{
    avro_value_t f;
    int32_t i32;
    int64_t i64;
    int e;

    if (d->err || avro_value_get_by_index(rec, idx, &f, NULL))
        return 0;
    switch (avro_value_get_type(&f)) {
    case AVRO_INT32:
        return avro_value_get_int(&f, &i32) ? 0 : i32;
    case AVRO_INT64:
        return avro_value_get_long(&f, &i64) ? 0 : i64;
    case AVRO_ENUM:
        return avro_value_get_enum(&f, &e) ? 0 : e;
    default:
        return 0;
    }
}

/* The payload of a captured event, from its record @p p. */
static lf_err_t extract_captured(dec_t *d, avro_value_t *p)
{
    avro_value_t map, elem;
    size_t n;

    d->ev->u.captured.channel = get_str(d, p, 0, "channel");
    d->ev->u.captured.campaign = get_opt_str(d, p, 1, "campaign");
    if (d->err)
        return d->err;
    if (avro_value_get_by_index(p, 2, &map, NULL) ||
        avro_value_get_size(&map, &n))
        return lf_seterr(LF_ERR_INVALID, d->errstr, d->errstr_size,
                         "field \"attributes\": unreadable map");
    if (n > LF_ATTRS_MAX)
        return lf_seterr(LF_ERR_INVALID, d->errstr, d->errstr_size,
                         "field \"attributes\": %zu entries, more than "
                         "the %d allowed",
                         n, LF_ATTRS_MAX);
    if (n && !(d->ev->u.captured.attrs = calloc(n, sizeof(lf_attr_t))))
        return lf_seterr(LF_ERR_NOMEM, d->errstr, d->errstr_size,
                         "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *key;
        if (avro_value_get_by_index(&map, i, &elem, &key))
            return lf_seterr(LF_ERR_INVALID, d->errstr, d->errstr_size,
                             "field \"attributes\": unreadable entry");
        d->ev->u.captured.attr_count = i + 1;
        size_t klen = strlen(key) + 1;
        if (!(d->ev->u.captured.attrs[i].key = str_room(d, klen)))
            return lf_seterr(LF_ERR_NOMEM, d->errstr, d->errstr_size,
                             "out of memory");
        memcpy(d->ev->u.captured.attrs[i].key, key, klen);
        d->ev->u.captured.attrs[i].value = copy_str(d, &elem, "attributes");
        if (d->err)
            return d->err;
    }
    /* Avro maps are unordered; our model keeps keys sorted. Avro map
     * keys may repeat on the wire, a map cannot: avro-c keeps the last. */
    lf_event_sort_attrs(d->ev);
    return d->err;
}

/* The payload of d->ev's type, from its record @p p. */
static lf_err_t extract_payload(dec_t *d, avro_value_t *p)
{
    switch (d->ev->type) {
    case LF_EV_CAPTURED:
        return extract_captured(d, p);
    case LF_EV_SCORED:
        d->ev->u.scored.score = (int32_t)get_num(d, p, 0);
        d->ev->u.scored.threshold = (int32_t)get_num(d, p, 1);
        d->ev->u.scored.model = get_str(d, p, 2, "model");
        break;
    case LF_EV_HANDED_OFF:
        d->ev->u.handed_off.owner = get_str(d, p, 0, "owner");
        d->ev->u.handed_off.sla_hours = (int32_t)get_num(d, p, 1);
        break;
    case LF_EV_ACCEPTED:
        d->ev->u.accepted.owner = get_str(d, p, 0, "owner");
        break;
    case LF_EV_RECYCLED:
        d->ev->u.recycled.reason = (lf_recycle_reason_t)get_num(d, p, 0);
        if ((unsigned)d->ev->u.recycled.reason >= LF_RR__COUNT && !d->err)
            d->err = lf_seterr(LF_ERR_INVALID, d->errstr, d->errstr_size,
                              "field \"reason\": recycle reason %d of the "
                              "writer's schema is not one this reader (v1) "
                              "knows",
                              (int)d->ev->u.recycled.reason);
        d->ev->u.recycled.note = get_opt_str(d, p, 1, "note");
        break;
    case LF_EV_QUALIFIED:
        d->ev->u.qualified.opportunity_id = get_str(d, p, 0, "opportunity_id");
        d->ev->u.qualified.amount_minor = get_num(d, p, 1);
        d->ev->u.qualified.currency = get_str(d, p, 2, "currency");
        break;
    case LF_EV_WON:
        d->ev->u.won.amount_minor = get_num(d, p, 0);
        d->ev->u.won.currency = get_str(d, p, 1, "currency");
        break;
    case LF_EV_LOST:
        d->ev->u.lost.reason = get_str(d, p, 0, "reason");
        break;
    case LF_EV_DISQUALIFIED:
        d->ev->u.disqualified.reason = get_str(d, p, 0, "reason");
        break;
    default:
        break;
    }
    return d->err;
}

/* Fill @p ev from @p rec, a v1 LeadEvent (read as v1, or a newer or older
 * version seen through a resolver). */
static lf_err_t extract(avro_value_t *rec, lf_event_t *ev, size_t strbuf_size,
                        char *errstr, size_t errstr_size)
{
    dec_t d = {errstr, errstr_size, LF_OK, ev, 0};
    avro_value_t f, p;
    int disc;

    /* The message's strings with their NULs fit in its own length: each
     * has a length prefix of at least one byte. Without it, one
     * allocation per string. */
    if ((ev->strbuf = malloc(strbuf_size ? strbuf_size : 1)))
        ev->strbuf_size = strbuf_size;

    ev->event_id = get_str(&d, rec, F_EVENT_ID, "event_id");
    ev->lead_id = get_str(&d, rec, F_LEAD_ID, "lead_id");
    ev->type = (lf_event_type_t)get_num(&d, rec, F_TYPE);
    if ((unsigned)ev->type >= LF_EV__COUNT) {
        /* Only a newer writer can get here (v1's indexes are checked). */
        int t = ev->type;
        ev->type = LF_EV_CAPTURED; /* nothing of the payload was set */
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "field \"type\": event type %d of the writer's "
                         "schema is not one this reader (v1) knows",
                         t);
    }
    ev->occurred_at = get_num(&d, rec, F_OCCURRED_AT);
    ev->source = get_str(&d, rec, F_SOURCE, "source");
    ev->actor = get_opt_str(&d, rec, F_ACTOR, "actor");
    if (d.err)
        return d.err;
    if (avro_value_get_by_index(rec, F_PAYLOAD, &f, NULL) ||
        avro_value_get_discriminant(&f, &disc) ||
        avro_value_get_current_branch(&f, &p))
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "field \"payload\": unreadable union (%s)",
                         avro_strerror());
    if (disc != (int)ev->type) {
        /* The payload union is in EventType order; so is the symbol list. */
        lf_event_type_t t = ev->type;
        ev->type = LF_EV_CAPTURED; /* nothing of the payload was set */
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "field \"payload\": a %s payload on a %s event",
                         lf_event_type_symbol((lf_event_type_t)disc),
                         lf_event_type_symbol(t));
    }
    return extract_payload(&d, &p);
}

/* ---- the v1 reader, by hand ----
 * Every producer we know writes v1, and avro-c's generic reader (bounds
 * check, avro_value_read, copying the value out) costs ~15,500
 * instructions per event, a quarter of the projector's own CPU in a
 * drain, when the two cores are the bound (BENCHMARKS.md). This reads a
 * v1 body straight into the event. It accepts only what it is sure of:
 * on anything unusual (a NUL in a string, a map in the sized-block form or
 * with a key twice, an index out of range, a varint with bits past 64,
 * truncation, trailing bytes) it declines, and the avro-c path decides,
 * with its own messages. So every message decodes to what avro-c makes of
 * it, and errors read the same: test_codec checks both readers agree on
 * every message it has, fuzz_codec on every input. */

typedef struct rd_s {
    const uint8_t *p, *end;
    char *out;       /* the event's strbuf, where the strings go */
    size_t room;     /* bytes left there */
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

    if (!rd_long(r, &v) || r->p - start > 5 || v < INT32_MIN ||
        v > INT32_MAX)
        return false;
    *out = (int32_t)v;
    return true;
}

static bool rd_str(rd_t *r, char **out)
{
    int64_t n;

    if (!rd_long(r, &n) || n < 0 || n > r->end - r->p ||
        (size_t)n >= r->room || memchr(r->p, '\0', (size_t)n))
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

/* @returns true with ev filled (strings in ev->strbuf), or false: not
 * read here, ev to clear. */
static bool decode_v1(const uint8_t *data, size_t len, lf_event_t *ev)
{
    rd_t r = {data, data + len, NULL, 0};
    int32_t type, i32;
    int64_t branch;

    /* A string's length prefix is at least one byte: the strings with
     * their NULs fit in the body's length. */
    if (!(ev->strbuf = malloc(len ? len : 1)))
        return false;
    ev->strbuf_size = len ? len : 1;
    r.out = ev->strbuf;
    r.room = ev->strbuf_size;

    if (!rd_str(&r, &ev->event_id) || !rd_str(&r, &ev->lead_id) ||
        !rd_int(&r, &type) || type < 0 || type >= LF_EV__COUNT ||
        !rd_long(&r, &ev->occurred_at) || !rd_str(&r, &ev->source) ||
        !rd_opt_str(&r, &ev->actor) || !rd_long(&r, &branch) ||
        branch != type)
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
        return false;
    }
    return r.p == r.end;
}

typedef enum { READ_ANY, READ_AVRO_C, READ_DIRECT } reader_t;

static lf_err_t decode(lf_codec_t *c, const void *data, size_t len,
                       lf_event_t *ev, reader_t how, char *errstr,
                       size_t errstr_size)
{
    const uint8_t *b = data;
    avro_schema_t schema = c->schema; /* the writer's */
    avro_value_t *dest = &c->dec;     /* read into, as the writer wrote */
    avro_value_t *rec = &c->dec;      /* the same seen as v1 */
    writer_t *w = NULL;
    lf_err_t err;
    int32_t id;

    lf_event_init(ev);
    if (len == 0 || !data)
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
        if (id != LF_SCHEMA_ID_V1)
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "framing: unknown schema id %d (known: %d)", id,
                             LF_SCHEMA_ID_V1);
    } else if (id <= 0) {
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "framing: schema id %d: registry ids are positive",
                         id);
    } else {
        if ((err = writer_get(c, id, &w, errstr, errstr_size)))
            return err;
        if (w->refused)
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size, "%s",
                             w->refused);
        if (!w->same) {
            schema = w->schema;
            dest = &w->wval;
            rec = &w->rval;
        }
    }
    if (how != READ_AVRO_C && schema == c->schema) {
        if (decode_v1(b + LF_FRAME_HEADER, len - LF_FRAME_HEADER, ev)) {
            /* What avro-c would have made of it: the same check follows. */
            if ((err = lf_event_validate(ev, errstr, errstr_size)))
                lf_event_clear(ev);
            return err;
        }
        lf_event_clear(ev);
    }
    if (how == READ_DIRECT)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "not read by the direct v1 reader");
    /* The bounds check walks the writer's schema: that is what the bytes
     * follow, and what avro-c's reader will trust. */
    if ((err = lf_avro_check(schema, b + LF_FRAME_HEADER, len - LF_FRAME_HEADER,
                             errstr, errstr_size)))
        return err;
    avro_reader_memory_set_source(c->reader, (const char *)b + LF_FRAME_HEADER,
                                  (int64_t)(len - LF_FRAME_HEADER));
    /* Resetting a resolved value resets the writer's value it wraps. */
    if (avro_value_reset(rec) || avro_value_read(c->reader, dest))
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size, "Avro body: %s",
                         avro_strerror());
    if ((err = extract(rec, ev, len - LF_FRAME_HEADER, errstr, errstr_size)) ||
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
