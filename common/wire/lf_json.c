/* lf_json.c: JSON lines <-> LeadEvent, one table of payload fields per
 * event type: a single-pass reader for plain lines, jansson for the rest
 * and for every error message, and a direct writer for dumps and the
 * payload column. */
#include "lf_json.h"
#include "lf_json_int.h"

#include "lf_time.h"
#include "lf_uuid.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum kind_e { K_STR, K_OPT_STR, K_INT, K_LONG, K_REASON, K_MAP } kind_t;

typedef struct pfield_s {
    const char *name;
    size_t len; /* strlen(name) */
    kind_t kind;
    size_t off; /* offset in lf_event_t */
} pfield_t;

#define PF(n, k, member)                                                       \
    {                                                                          \
        n, sizeof(n) - 1, k, offsetof(lf_event_t, member)                      \
    }
#define PF_END                                                                 \
    {                                                                          \
        NULL, 0, K_STR, 0                                                      \
    }

/* Each type's payload fields, in the order of its Avro record. */
static const pfield_t payload_fields[LF_EV__COUNT][4] = {
    [LF_EV_CAPTURED] = {PF("channel", K_STR, u.captured.channel),
                        PF("campaign", K_OPT_STR, u.captured.campaign),
                        PF("attributes", K_MAP, u.captured.attrs), PF_END},
    [LF_EV_SCORED] = {PF("score", K_INT, u.scored.score),
                      PF("threshold", K_INT, u.scored.threshold),
                      PF("model", K_STR, u.scored.model), PF_END},
    [LF_EV_HANDED_OFF] = {PF("owner", K_STR, u.handed_off.owner),
                          PF("sla_hours", K_INT, u.handed_off.sla_hours),
                          PF_END},
    [LF_EV_ACCEPTED] = {PF("owner", K_STR, u.accepted.owner), PF_END},
    [LF_EV_RECYCLED] = {PF("reason", K_REASON, u.recycled.reason),
                        PF("note", K_OPT_STR, u.recycled.note), PF_END},
    [LF_EV_QUALIFIED] = {PF("opportunity_id", K_STR,
                            u.qualified.opportunity_id),
                         PF("amount_minor", K_LONG, u.qualified.amount_minor),
                         PF("currency", K_STR, u.qualified.currency), PF_END},
    [LF_EV_WON] = {PF("amount_minor", K_LONG, u.won.amount_minor),
                   PF("currency", K_STR, u.won.currency), PF_END},
    [LF_EV_LOST] = {PF("reason", K_STR, u.lost.reason), PF_END},
    [LF_EV_DISQUALIFIED] = {PF("reason", K_STR, u.disqualified.reason), PF_END},
    [LF_EV_MERGED] = {PF("into_lead_id", K_STR, u.merged.into_lead_id), PF_END},
    [LF_EV_VOIDED] = {PF("voided_event_id", K_STR, u.voided.voided_event_id),
                      PF("reason", K_STR, u.voided.reason), PF_END},
    [LF_EV_ERASED] = {PF("request_id", K_STR, u.erased.request_id), PF_END},
};

static const char *envelope_keys[] = {"event_id",    "lead_id", "type",
                                      "occurred_at", "source",  "actor",
                                      "account_id",  NULL};

static lf_err_t finish_event(lf_event_t *ev, char *errstr, size_t errstr_size);

/* Set while lf_json_parse_stored() parses: payload strings may be null
 * (an erased person's reason) and nothing is validated again. */
static _Thread_local bool stored_read;

#define INVALID(...) lf_seterr(LF_ERR_INVALID, errstr, errstr_size, __VA_ARGS__)

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number with a fraction or an exponent";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* A string field: copied (jansson already checked UTF-8 and refused NUL). */
static lf_err_t take_str(json_t *obj, const char *name, bool optional,
                         char **out, char *errstr, size_t errstr_size)
{
    json_t *v = json_object_get(obj, name);

    if (!v || json_is_null(v)) {
        if (optional)
            return LF_OK;
        return INVALID("missing required field \"%s\"", name);
    }
    if (!json_is_string(v))
        return INVALID("field \"%s\": expected a string, got %s", name,
                       json_kind(v));
    if (!(*out = strndup(json_string_value(v), json_string_length(v))))
        return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
    return LF_OK;
}

static lf_err_t take_int(json_t *obj, const char *name, int64_t min,
                         int64_t max, int64_t *out, char *errstr,
                         size_t errstr_size)
{
    json_t *v = json_object_get(obj, name);

    if (!v)
        return INVALID("missing required field \"%s\"", name);
    if (!json_is_integer(v)) {
        if (json_is_string(v))
            return INVALID("field \"%s\": expected an integer, got \"%.40s\"",
                           name, json_string_value(v));
        return INVALID("field \"%s\": expected an integer, got %s", name,
                       json_kind(v));
    }
    *out = json_integer_value(v);
    if (*out < min || *out > max)
        return INVALID("field \"%s\": %lld is out of range %lld..%lld", name,
                       (long long)*out, (long long)min, (long long)max);
    return LF_OK;
}

static lf_err_t take_map(json_t *obj, lf_event_t *ev, char *errstr,
                         size_t errstr_size)
{
    json_t *v = json_object_get(obj, "attributes"), *val;
    const char *key;
    size_t n, i = 0;

    if (!v || json_is_null(v))
        return LF_OK;
    if (!json_is_object(v))
        return INVALID("field \"attributes\": expected an object of strings, "
                       "got %s",
                       json_kind(v));
    n = json_object_size(v);
    if (n > LF_ATTRS_MAX)
        return INVALID("field \"attributes\": %zu entries, more than the %d "
                       "allowed",
                       n, LF_ATTRS_MAX);
    if (n && !(ev->u.captured.attrs = calloc(n, sizeof(lf_attr_t))))
        return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
    json_object_foreach(v, key, val)
    {
        if (!json_is_string(val))
            return INVALID("field \"attributes\": value of \"%.64s\" must be "
                           "a string, got %s",
                           key, json_kind(val));
        ev->u.captured.attr_count = i + 1;
        if (!(ev->u.captured.attrs[i].key = strdup(key)) ||
            !(ev->u.captured.attrs[i].value =
                  strndup(json_string_value(val), json_string_length(val))))
            return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size,
                             "out of memory");
        if (strlen(key) == 0)
            return INVALID("field \"attributes\": empty key");
        i++;
    }
    lf_event_sort_attrs(ev);
    return LF_OK;
}

static const pfield_t *find_pfield(int type, const char *key)
{
    for (const pfield_t *f = payload_fields[type]; f->name; f++)
        if (!strcmp(f->name, key))
            return f;
    return NULL;
}

/* Every key must be an envelope field, this type's payload field or _kafka;
 * a payload field of another type gets a sentence saying whose it is. */
static lf_err_t check_keys(json_t *obj, int type, char *errstr,
                           size_t errstr_size)
{
    const char *key;
    json_t *v;

    json_object_foreach(obj, key, v)
    {
        bool ok = !strcmp(key, "_kafka") || find_pfield(type, key);
        for (const char **e = envelope_keys; !ok && *e; e++)
            ok = !strcmp(key, *e);
        if (ok)
            continue;
        for (int t = 0; t < LF_EV__COUNT; t++)
            if (find_pfield(t, key))
                return INVALID("field \"%s\" belongs to %s events, not to a "
                               "%s event",
                               key, lf_event_type_name(t),
                               lf_event_type_name(type));
        if (!strcmp(key, "_extra") || !strcmp(key, "_payload_extra"))
            return INVALID("field \"%s\": fields of a newer contract "
                           "version (as leadflow-replay dump shows them), "
                           "which this contract cannot carry: send the "
                           "event with a producer of that version",
                           key);
        return INVALID("unknown field \"%.64s\"", key);
    }
    return LF_OK;
}

/* The payload fields of ev->type from @p obj, by the type's table. */
static lf_err_t parse_payload(json_t *obj, lf_event_t *ev, char *errstr,
                              size_t errstr_size)
{
    lf_err_t err = LF_OK;
    int64_t n;

    for (const pfield_t *f = payload_fields[ev->type]; f->name; f++) {
        char *base = (char *)ev + f->off;
        switch (f->kind) {
        case K_STR:
        case K_OPT_STR:
            err = take_str(obj, f->name, f->kind == K_OPT_STR || stored_read,
                           (char **)base, errstr, errstr_size);
            break;
        case K_INT:
            if (!(err = take_int(obj, f->name, INT32_MIN, INT32_MAX, &n, errstr,
                                 errstr_size)))
                *(int32_t *)base = (int32_t)n;
            break;
        case K_LONG:
            err = take_int(obj, f->name, INT64_MIN, INT64_MAX, (int64_t *)base,
                           errstr, errstr_size);
            break;
        case K_REASON: {
            char *s = NULL;
            int r;
            if ((err = take_str(obj, f->name, false, &s, errstr, errstr_size)))
                break;
            r = lf_recycle_reason_parse(s);
            if (r < 0)
                err = INVALID("field \"reason\": unknown recycle reason "
                              "\"%.40s\" (one of not_ready, no_budget, "
                              "no_authority, no_need, no_response, "
                              "bad_timing, other)",
                              s);
            else
                *(lf_recycle_reason_t *)base = (lf_recycle_reason_t)r;
            free(s);
            break;
        }
        case K_MAP:
            err = take_map(obj, ev, errstr, errstr_size);
            break;
        }
        if (err)
            return err;
    }
    return LF_OK;
}

static lf_err_t parse_obj(json_t *obj, lf_event_t *ev, char *errstr,
                          size_t errstr_size)
{
    json_t *v;
    int type;
    lf_err_t err;

    if (!json_is_object(obj))
        return INVALID("expected a JSON object, got %s", json_kind(obj));
    v = json_object_get(obj, "type");
    if (!v)
        return INVALID("missing required field \"type\"");
    if (!json_is_string(v))
        return INVALID("field \"type\": expected a string, got %s",
                       json_kind(v));
    if ((type = lf_event_type_parse(json_string_value(v))) < 0)
        return INVALID("field \"type\": unknown event type \"%.40s\" (one of "
                       "captured, scored, handed_off, accepted, recycled, "
                       "qualified, won, lost, disqualified, merged, "
                       "voided, erased)",
                       json_string_value(v));
    ev->type = (lf_event_type_t)type;
    if ((err = check_keys(obj, type, errstr, errstr_size)) ||
        (err = take_str(obj, "event_id", true, &ev->event_id, errstr,
                        errstr_size)) ||
        (err = take_str(obj, "lead_id", false, &ev->lead_id, errstr,
                        errstr_size)))
        return err;

    v = json_object_get(obj, "occurred_at");
    if (!v)
        return INVALID("missing required field \"occurred_at\"");
    if (json_is_string(v)) {
        char why[160];
        if (lf_time_parse(json_string_value(v), 0, &ev->occurred_at, why,
                          sizeof(why)))
            return INVALID("field \"occurred_at\": %s", why);
    } else if (json_is_integer(v)) {
        ev->occurred_at = json_integer_value(v);
    } else {
        return INVALID("field \"occurred_at\": expected an RFC 3339 string or "
                       "epoch milliseconds, got %s",
                       json_kind(v));
    }
    if ((err = take_str(obj, "source", false, &ev->source, errstr,
                        errstr_size)) ||
        (err = take_str(obj, "actor", true, &ev->actor, errstr, errstr_size)) ||
        (err = take_str(obj, "account_id", true, &ev->account_id, errstr,
                        errstr_size)))
        return err;

    if ((err = parse_payload(obj, ev, errstr, errstr_size)))
        return err;
    return finish_event(ev, errstr, errstr_size);
}

/* The last step of both paths: validate the contract, and derive the
 * event_id of an event sent without one. */
static lf_err_t finish_event(lf_event_t *ev, char *errstr, size_t errstr_size)
{
    lf_err_t err;

    if (!ev->event_id) {
        /* Validate first with a placeholder id so the derived one is made
         * only from a valid event. */
        char id[LF_UUID_STRLEN + 1];
        lf_buf_t canon = {0};
        ev->event_id = "-";
        err = lf_event_validate(ev, errstr, errstr_size);
        ev->event_id = NULL;
        if (err)
            return err;
        if (lf_json_format_event(ev, &canon))
            return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size,
                             "out of memory");
        lf_uuid_v5(canon.data, canon.len, id);
        lf_buf_free(&canon);
        if (!(ev->event_id = strdup(id)))
            return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size,
                             "out of memory");
        return LF_OK;
    }
    return stored_read ? LF_OK : lf_event_validate(ev, errstr, errstr_size);
}

/* The top-level key whose member holds byte @p pos of @p text, into key
 * (raw, "" if none): jansson's own errors (invalid UTF-8, \u0000, too big
 * integers) name a column and a value, and ours must name the field. */
static void key_at(const char *text, size_t len, size_t pos, char *key,
                   size_t size)
{
    int depth = 0;
    bool in_str = false, esc = false, is_key = false, want_key = false;
    size_t start = 0;

    key[0] = '\0';
    for (size_t i = 0; i < len && i <= pos; i++) {
        char c = text[i];
        if (in_str) {
            if (esc)
                esc = false;
            else if (c == '\\')
                esc = true;
            else if (c == '"')
                in_str = false;
            if (is_key && (!in_str || i == pos)) {
                size_t n = i - start < size - 1 ? i - start : size - 1;
                memcpy(key, text + start, n);
                key[n] = '\0';
            }
            continue;
        }
        if (c == '"') {
            in_str = true;
            start = i + 1;
            is_key = depth == 1 && want_key;
            want_key = false;
        } else if (c == '{' || c == '[') {
            want_key = ++depth == 1 && c == '{';
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == ',' && depth == 1) {
            want_key = true;
        }
    }
}

/* ---- The fast path ----
 * Almost every line is plain: one flat object, known keys once each,
 * strings with at most the short escapes, small integers. fast_parse()
 * reads those in one pass, without a jansson tree (a tenth of the
 * instructions: BENCHMARKS.md), and gives up on anything else, valid or
 * not: then lf_json_parse_event() runs the jansson path, which gives every
 * error its sentence. So the fast path never words an error, and an event
 * it accepts is the one the jansson path would build (tests/fuzz/fuzz_json.c
 * checks both paths on every input; test_json.c on a corpus). */

#define FAST_MEMBERS 16 /* more members: the jansson path */
#define FAST_ATTRS   32 /* more attributes: the jansson path */

typedef enum fkind_e { FV_STR, FV_INT, FV_NULL, FV_ATTRS } fkind_t;

typedef struct fmember_s {
    const char *key; /* decoded, NUL-terminated, in the scratch buffer */
    size_t klen;
    fkind_t kind;
    const char *s; /* FV_STR: decoded, NUL-terminated, in the scratch */
    size_t slen;
    int64_t i; /* FV_INT */
} fmember_t;

typedef struct fast_s {
    const char *p, *end;
    char *scratch; /* the decoded strings, each NUL-terminated */
    char *out;     /* next free byte of the scratch buffer */
    fmember_t m[FAST_MEMBERS];
    int n;
    const char *akey[FAST_ATTRS], *aval[FAST_ATTRS]; /* attributes */
    size_t alen[FAST_ATTRS];
    int na;
} fast_t;

static void fast_ws(fast_t *f)
{
    while (f->p < f->end &&
           (*f->p == ' ' || *f->p == '\t' || *f->p == '\n' || *f->p == '\r'))
        f->p++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Bytes that end a run of plain string bytes: controls, '"' and '\\'. */
static const unsigned char fast_stop[256] = {
    [0] = 1,  [1] = 1,  [2] = 1,  [3] = 1,  [4] = 1,   [5] = 1,    [6] = 1,
    [7] = 1,  [8] = 1,  [9] = 1,  [10] = 1, [11] = 1,  [12] = 1,   [13] = 1,
    [14] = 1, [15] = 1, [16] = 1, [17] = 1, [18] = 1,  [19] = 1,   [20] = 1,
    [21] = 1, [22] = 1, [23] = 1, [24] = 1, [25] = 1,  [26] = 1,   [27] = 1,
    [28] = 1, [29] = 1, [30] = 1, [31] = 1, ['"'] = 1, ['\\'] = 1,
};

/* What a one-letter escape stands for (0: not one). */
static const char fast_escape[256] = {
    ['"'] = '"',  ['\\'] = '\\', ['/'] = '/',  ['b'] = '\b',
    ['f'] = '\f', ['n'] = '\n',  ['r'] = '\r', ['t'] = '\t',
};

/* A \uXXXX escape at @p q (its backslash) as UTF-8 at *@p o. Gives up on
 * \u0000 and surrogates (jansson's cases). */
static bool fast_u(const char *q, const char *end, char **o)
{
    int cp = 0;

    if (end - q < 6)
        return false;
    for (int k = 2; k < 6; k++) {
        int h = hexval(q[k]);
        if (h < 0)
            return false;
        cp = cp << 4 | h;
    }
    if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
        return false;
    if (cp < 0x80) {
        *(*o)++ = (char)cp;
    } else if (cp < 0x800) {
        *(*o)++ = (char)(0xC0 | cp >> 6);
        *(*o)++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *(*o)++ = (char)(0xE0 | cp >> 12);
        *(*o)++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *(*o)++ = (char)(0x80 | (cp & 0x3F));
    }
    return true;
}

/* A string at f->p (the opening quote), decoded into the scratch buffer.
 * Gives up on control characters, \u0000 and surrogates (jansson's cases). */
static bool fast_str(fast_t *f, const char **s, size_t *len)
{
    char *o = f->out;

    if (f->p >= f->end || *f->p != '"')
        return false;
    f->p++;
    *s = o;
    for (;;) {
        const char *q = f->p;
        /* the run of plain bytes up to a quote, backslash or control */
        while (q < f->end && !fast_stop[(unsigned char)*q])
            q++;
        memcpy(o, f->p, (size_t)(q - f->p));
        o += q - f->p;
        f->p = q;
        if (q >= f->end || (unsigned char)*q < 0x20)
            return false;
        if (*q == '"')
            break;
        if (q + 1 >= f->end)
            return false;
        if (q[1] == 'u') {
            if (!fast_u(q, f->end, &o))
                return false;
            f->p = q + 6;
        } else if (fast_escape[(unsigned char)q[1]]) {
            *o++ = fast_escape[(unsigned char)q[1]];
            f->p = q + 2;
        } else {
            return false;
        }
    }
    f->p++; /* the closing quote */
    *len = (size_t)(o - *s);
    *o++ = '\0';
    f->out = o;
    return true;
}

/* An integer of at most 18 digits (no fraction, no exponent: those are
 * jansson's reals, and larger ones may not fit). */
static bool fast_int(fast_t *f, int64_t *v)
{
    bool neg = false;
    int digits = 0;
    int64_t x = 0;

    if (f->p < f->end && *f->p == '-') {
        neg = true;
        f->p++;
    }
    if (f->p < f->end && *f->p == '0' && f->p + 1 < f->end && f->p[1] >= '0' &&
        f->p[1] <= '9')
        return false; /* a leading zero */
    while (f->p < f->end && *f->p >= '0' && *f->p <= '9') {
        if (++digits > 18)
            return false;
        x = x * 10 + (*f->p++ - '0');
    }
    if (!digits)
        return false;
    if (f->p < f->end && (*f->p == '.' || *f->p == 'e' || *f->p == 'E'))
        return false;
    *v = neg ? -x : x;
    return true;
}

/* The attributes object: string values only. */
static bool fast_attrs(fast_t *f)
{
    f->p++; /* '{' */
    fast_ws(f);
    if (f->p < f->end && *f->p == '}') {
        f->p++;
        return true;
    }
    for (;;) {
        size_t klen;
        if (f->na == FAST_ATTRS)
            return false;
        fast_ws(f);
        if (!fast_str(f, &f->akey[f->na], &klen) || !klen)
            return false;
        fast_ws(f);
        if (f->p >= f->end || *f->p++ != ':')
            return false;
        fast_ws(f);
        if (!fast_str(f, &f->aval[f->na], &f->alen[f->na]))
            return false;
        f->na++;
        fast_ws(f);
        if (f->p >= f->end)
            return false;
        if (*f->p == '}') {
            f->p++;
            return true;
        }
        if (*f->p++ != ',')
            return false;
    }
}

/* The top-level object into f->m; false if it is not in the plain form. */
static bool fast_scan(fast_t *f)
{
    fast_ws(f);
    if (f->p >= f->end || *f->p++ != '{')
        return false;
    fast_ws(f);
    if (f->p < f->end && *f->p == '}')
        return false; /* {}: the jansson path words the error */
    for (;;) {
        fmember_t *m;
        if (f->n == FAST_MEMBERS)
            return false;
        m = &f->m[f->n++];
        fast_ws(f);
        if (!fast_str(f, &m->key, &m->klen))
            return false;
        fast_ws(f);
        if (f->p >= f->end || *f->p++ != ':')
            return false;
        fast_ws(f);
        if (f->p >= f->end)
            return false;
        if (*f->p == '"') {
            m->kind = FV_STR;
            if (!fast_str(f, &m->s, &m->slen))
                return false;
        } else if (*f->p == '-' || (*f->p >= '0' && *f->p <= '9')) {
            m->kind = FV_INT;
            if (!fast_int(f, &m->i))
                return false;
        } else if (f->end - f->p >= 4 && !memcmp(f->p, "null", 4)) {
            m->kind = FV_NULL;
            f->p += 4;
        } else if (*f->p == '{' && !strcmp(m->key, "attributes")) {
            m->kind = FV_ATTRS;
            if (!fast_attrs(f))
                return false;
        } else {
            return false;
        }
        fast_ws(f);
        if (f->p >= f->end)
            return false;
        if (*f->p == '}') {
            f->p++;
            break;
        }
        if (*f->p++ != ',')
            return false;
    }
    fast_ws(f);
    return f->p == f->end;
}

static const struct {
    const char *name;
    size_t len;
} fast_envelope[] = {{"event_id", 8},     {"lead_id", 7}, {"type", 4},
                     {"occurred_at", 11}, {"source", 6},  {"actor", 5},
                     {"account_id", 10}};
enum {
    FE_EVENT_ID,
    FE_LEAD_ID,
    FE_TYPE,
    FE_OCCURRED_AT,
    FE_SOURCE,
    FE_ACTOR,
    FE_ACCOUNT_ID,
    FE__COUNT
};

/* Where a decoded string of the scratch buffer lives in ev->strbuf, its
 * copy. */
static char *fast_own(const fast_t *f, const lf_event_t *ev, const char *s)
{
    return ev->strbuf + (s - f->scratch);
}

/* A string member into *out; absent or null only if optional. */
static bool fast_take_str(const fast_t *f, const lf_event_t *ev,
                          const fmember_t *m, bool optional, char **out)
{
    if (!m || m->kind == FV_NULL)
        return optional;
    if (m->kind != FV_STR)
        return false;
    *out = fast_own(f, ev, m->s);
    return true;
}

static bool fast_take_int(const fmember_t *m, int64_t min, int64_t max,
                          int64_t *out)
{
    if (!m || m->kind != FV_INT || m->i < min || m->i > max)
        return false;
    *out = m->i;
    return true;
}

/* The payload members of @p f into @p ev by the type's table @p pfs;
 * @p slot[k] is the member of pfs[k], or NULL. */
static bool fast_fill_payload(const fast_t *f, lf_event_t *ev,
                              const pfield_t *pfs, const fmember_t **slot)
{
    int64_t n;

    for (int k = 0; pfs[k].name; k++) {
        const pfield_t *pf = &pfs[k];
        char *base = (char *)ev + pf->off;
        const fmember_t *m = slot[k];
        switch (pf->kind) {
        case K_STR:
        case K_OPT_STR:
            if (!fast_take_str(f, ev, m, pf->kind == K_OPT_STR || stored_read,
                               (char **)base))
                return false;
            break;
        case K_INT:
            if (!fast_take_int(m, INT32_MIN, INT32_MAX, &n))
                return false;
            *(int32_t *)base = (int32_t)n;
            break;
        case K_LONG:
            if (!fast_take_int(m, INT64_MIN, INT64_MAX, (int64_t *)base))
                return false;
            break;
        case K_REASON: {
            int r;
            if (!m || m->kind != FV_STR ||
                (r = lf_recycle_reason_parse(m->s)) < 0)
                return false;
            *(lf_recycle_reason_t *)base = (lf_recycle_reason_t)r;
            break;
        }
        case K_MAP:
            if (m && m->kind != FV_ATTRS && m->kind != FV_NULL)
                return false;
            if (!m || m->kind == FV_NULL || !f->na)
                break;
            if (!(ev->u.captured.attrs =
                      calloc((size_t)f->na, sizeof(lf_attr_t))))
                return false;
            for (int j = 0; j < f->na; j++) {
                lf_attr_t *a = &ev->u.captured.attrs[j];
                ev->u.captured.attr_count = (size_t)j + 1;
                a->key = fast_own(f, ev, f->akey[j]);
                a->value = fast_own(f, ev, f->aval[j]);
            }
            if (!lf_event_sort_attrs(ev))
                return false; /* a duplicate attribute key */
            break;
        }
    }
    return true;
}

static bool fast_fill(const fast_t *f, lf_event_t *ev)
{
    /* each member in its slot: the envelope's, then this type's payload
     * fields in table order; a key twice, unknown, of another type or
     * _kafka: the jansson path */
    const fmember_t *slot[FE__COUNT + 4] = {0}, *m;
    const pfield_t *pfs;
    int type = -1;

    for (int j = 0; j < f->n; j++)
        if (f->m[j].klen == 4 && !memcmp(f->m[j].key, "type", 4)) {
            if (f->m[j].kind != FV_STR ||
                (type = lf_event_type_parse(f->m[j].s)) < 0)
                return false;
            break;
        }
    if (type < 0)
        return false;
    ev->type = (lf_event_type_t)type;
    pfs = payload_fields[type];
    for (int j = 0; j < f->n; j++) {
        const fmember_t *mj = &f->m[j];
        int id = -1;
        for (int e = 0; id < 0 && e < FE__COUNT; e++)
            if (mj->klen == fast_envelope[e].len &&
                !memcmp(mj->key, fast_envelope[e].name, mj->klen))
                id = e;
        for (int k = 0; id < 0 && pfs[k].name; k++)
            if (mj->klen == pfs[k].len &&
                !memcmp(mj->key, pfs[k].name, mj->klen))
                id = FE__COUNT + k;
        if (id < 0 || slot[id])
            return false;
        slot[id] = mj;
    }

    if (!fast_take_str(f, ev, slot[FE_EVENT_ID], true, &ev->event_id) ||
        !fast_take_str(f, ev, slot[FE_LEAD_ID], false, &ev->lead_id))
        return false;
    if (!(m = slot[FE_OCCURRED_AT]))
        return false;
    if (m->kind == FV_STR) {
        char why[160];
        if (lf_time_parse(m->s, 0, &ev->occurred_at, why, sizeof(why)))
            return false;
    } else if (m->kind == FV_INT) {
        ev->occurred_at = m->i;
    } else {
        return false;
    }
    if (!fast_take_str(f, ev, slot[FE_SOURCE], false, &ev->source) ||
        !fast_take_str(f, ev, slot[FE_ACTOR], true, &ev->actor) ||
        !fast_take_str(f, ev, slot[FE_ACCOUNT_ID], true, &ev->account_id))
        return false;

    return fast_fill_payload(f, ev, pfs, slot + FE__COUNT);
}

/* True if @p text was read into @p ev as a valid event; false (ev cleared)
 * if the jansson path must decide. */
static bool fast_parse(const char *text, size_t len, lf_event_t *ev)
{
    char stackbuf[2048], *scratch = stackbuf;
    fast_t f;
    char why[8];
    bool ok;

    if (!lf_utf8_valid(text, len))
        return false;
    /* decoded strings are never longer than their text, plus a NUL each */
    if (len + 1 > sizeof(stackbuf) && !(scratch = malloc(len + 1)))
        return false;
    f.p = text;
    f.end = text + len;
    f.scratch = f.out = scratch;
    f.n = f.na = 0;
    ok = fast_scan(&f);
    if (ok) {
        /* the event's strings: one copy of the scratch buffer */
        size_t used = (size_t)(f.out - scratch);
        ok = (ev->strbuf = malloc(used ? used : 1)) != NULL;
        if (ok) {
            memcpy(ev->strbuf, scratch, used);
            ev->strbuf_size = used;
        }
    }
    ok = ok && fast_fill(&f, ev) && finish_event(ev, why, sizeof(why)) == LF_OK;
    if (scratch != stackbuf)
        free(scratch);
    if (!ok)
        lf_event_clear(ev);
    return ok;
}

_Thread_local uint64_t lf_json_fast_lines;

lf_err_t lf_json_parse_event(const char *text, size_t len, lf_event_t *ev,
                             char *errstr, size_t errstr_size)
{
    lf_event_init(ev);
    if (len <= LF_JSON_LINE_MAX && fast_parse(text, len, ev)) {
        lf_json_fast_lines++;
        return LF_OK;
    }
    return lf_json_parse_event_jansson(text, len, ev, errstr, errstr_size);
}

lf_err_t lf_json_parse_stored(const char *text, size_t len, lf_event_t *ev,
                              char *errstr, size_t errstr_size)
{
    lf_err_t err;

    stored_read = true;
    err = lf_json_parse_event(text, len, ev, errstr, errstr_size);
    stored_read = false;
    return err;
}

lf_err_t lf_json_parse_event_jansson(const char *text, size_t len,
                                     lf_event_t *ev, char *errstr,
                                     size_t errstr_size)
{
    json_error_t jerr;
    json_t *obj;
    lf_err_t err;

    lf_event_init(ev);
    if (len > LF_JSON_LINE_MAX)
        return INVALID("line of %zu bytes, more than the %d allowed", len,
                       LF_JSON_LINE_MAX);
    obj = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj && len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
        return INVALID("a UTF-8 byte order mark (EF BB BF) before the "
                       "object; only the start of a file may carry one");
    if (!obj) {
        char key[72];
        const char *what =
            lf_utf8_valid(text, len) ? "invalid JSON" : "not valid UTF-8";
        key_at(text, len, jerr.position > 0 ? (size_t)jerr.position : 0, key,
               sizeof(key));
        /* Text after the object belongs to no field of it, nor does the
         * end of a line cut short (the last field may be whole). */
        if (key[0] && !strstr(jerr.text, "end of file expected") &&
            !(jerr.position >= 0 && (size_t)jerr.position >= len))
            return INVALID("field \"%s\": %s at column %d: %s", key, what,
                           jerr.column, jerr.text);
        return INVALID("%s at column %d: %s", what, jerr.column, jerr.text);
    }
    err = parse_obj(obj, ev, errstr, errstr_size);
    json_decref(obj);
    if (err)
        lf_event_clear(ev);
    return err;
}

lf_err_t lf_json_append_string(lf_buf_t *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char *p;

    /* Written in place: at most 6 bytes per input byte (\u00XX), quotes. */
    if (len > (SIZE_MAX - 3) / 6 || lf_buf_reserve(out, 6 * len + 2))
        return LF_ERR_NOMEM;
    p = out->data + out->len;
    *p++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c >= 0x20 && c != '"' && c != '\\') {
            *p++ = (char)c;
            continue;
        }
        *p++ = '\\';
        switch (c) {
        case '"':
            *p++ = '"';
            break;
        case '\\':
            *p++ = '\\';
            break;
        case '\n':
            *p++ = 'n';
            break;
        case '\r':
            *p++ = 'r';
            break;
        case '\t':
            *p++ = 't';
            break;
        default:
            *p++ = 'u', *p++ = '0', *p++ = '0';
            *p++ = hex[c >> 4], *p++ = hex[c & 15];
        }
    }
    *p++ = '"';
    *p = '\0';
    out->len = (size_t)(p - out->data);
    return LF_OK;
}

/* ,"key": (no comma after an opening brace). Keys are our field names:
 * nothing to escape. */
static lf_err_t put_key(lf_buf_t *out, const char *key)
{
    size_t n = strlen(key);
    char *p;

    if (lf_buf_reserve(out, n + 4))
        return LF_ERR_NOMEM;
    p = out->data + out->len;
    if (out->len && p[-1] != '{')
        *p++ = ',';
    *p++ = '"';
    memcpy(p, key, n);
    p += n;
    *p++ = '"';
    *p++ = ':';
    *p = '\0';
    out->len = (size_t)(p - out->data);
    return LF_OK;
}

static lf_err_t put_num(lf_buf_t *out, const char *key, int64_t v)
{
    char digits[24], *end = digits + sizeof(digits), *q = end;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

    do
        *--q = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *--q = '-';
    if (put_key(out, key) || lf_buf_append(out, q, (size_t)(end - q)))
        return LF_ERR_NOMEM;
    return LF_OK;
}

static lf_err_t put_str(lf_buf_t *out, const char *key, const char *s)
{
    if (!s)
        return LF_OK;
    if (put_key(out, key))
        return LF_ERR_NOMEM;
    return lf_json_append_string(out, s, strlen(s));
}

/* Append this type's payload fields as "k":v pairs (no braces). */
static lf_err_t put_payload(const lf_event_t *ev, lf_buf_t *out)
{
    lf_err_t err = LF_OK;

    if ((unsigned)ev->type >= LF_EV__COUNT)
        return LF_OK;
    for (const pfield_t *f = payload_fields[ev->type]; f->name && !err; f++) {
        const char *base = (const char *)ev + f->off;
        switch (f->kind) {
        case K_STR:
        case K_OPT_STR:
            err = put_str(out, f->name, *(char *const *)base);
            break;
        case K_INT:
            err = put_num(out, f->name, *(const int32_t *)base);
            break;
        case K_LONG:
            err = put_num(out, f->name, *(const int64_t *)base);
            break;
        case K_REASON:
            err = put_str(
                out, f->name,
                lf_recycle_reason_name(*(const lf_recycle_reason_t *)base));
            break;
        case K_MAP:
            if (!ev->u.captured.attr_count)
                break;
            err = put_key(out, f->name) || lf_buf_append(out, "{", 1);
            for (size_t i = 0; i < ev->u.captured.attr_count && !err; i++) {
                const lf_attr_t *a = &ev->u.captured.attrs[i];
                err = (i && lf_buf_append(out, ",", 1)) ||
                      lf_json_append_string(out, a->key, strlen(a->key)) ||
                      lf_buf_append(out, ":", 1) ||
                      lf_json_append_string(out, a->value, strlen(a->value));
            }
            err = err || lf_buf_append(out, "}", 1);
            break;
        }
    }
    return err ? LF_ERR_NOMEM : LF_OK;
}

lf_err_t lf_json_format_event(const lf_event_t *ev, lf_buf_t *out)
{
    char ts[40];

    if (lf_buf_append(out, "{", 1) || put_str(out, "event_id", ev->event_id) ||
        put_str(out, "lead_id", ev->lead_id) ||
        put_str(out, "type", lf_event_type_name(ev->type)) ||
        put_str(out, "occurred_at",
                lf_time_format(ev->occurred_at, ts, sizeof(ts))) ||
        put_str(out, "source", ev->source) ||
        put_str(out, "actor", ev->actor) ||
        put_str(out, "account_id", ev->account_id) || put_payload(ev, out) ||
        lf_buf_append(out, "}", 1))
        return LF_ERR_NOMEM;
    return LF_OK;
}

lf_err_t lf_json_format_payload(const lf_event_t *ev, lf_buf_t *out)
{
    if (lf_buf_append(out, "{", 1) || put_payload(ev, out) ||
        lf_buf_append(out, "}", 1))
        return LF_ERR_NOMEM;
    return LF_OK;
}

/* ---- Avro schemas that avro-c cannot read as they are ---------------- */

/* Does @p v hold a string with a NUL in it, at any depth? */
static bool holds_nul(const json_t *v)
{
    const char *k;
    json_t *m;
    size_t i;

    if (json_is_string(v))
        return memchr(json_string_value(v), '\0', json_string_length(v));
    if (json_is_array(v)) {
        json_array_foreach(v, i, m)
        {
            if (holds_nul(m))
                return true;
        }
    }
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, m)
        {
            if (holds_nul(m))
                return true;
        }
    }
    return false;
}

/* Drop every "default" of @p v that holds a NUL. @returns how many. */
static size_t drop_nul_defaults(json_t *v)
{
    const char *k;
    json_t *m, *d;
    size_t i, n = 0;

    if (json_is_array(v)) {
        json_array_foreach(v, i, m)
        {
            n += drop_nul_defaults(m);
        }
    }
    if (!json_is_object(v))
        return n;
    if ((d = json_object_get(v, "default")) && holds_nul(d)) {
        json_object_del(v, "default");
        n++;
    }
    json_object_foreach(v, k, m)
    {
        n += drop_nul_defaults(m);
    }
    return n;
}

/* See lf_json.h. */
char *lf_json_schema_without_nul_defaults(const char *json)
{
    json_error_t jerr;
    json_t *root = json_loads(json, JSON_ALLOW_NUL, &jerr);
    char *out = NULL;

    if (root && drop_nul_defaults(root))
        out = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return out;
}
