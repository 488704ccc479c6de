/* lf_event.c: the LeadEvent model, its names and its contract checks. */
#include "lf_event.h"

#include <stdlib.h>
#include <string.h>

static const char *type_names[LF_EV__COUNT] = {
    "captured", "scored", "handed_off",   "accepted", "recycled", "qualified",
    "won",      "lost",   "disqualified", "merged",   "voided",   "erased"};
static const char *type_symbols[LF_EV__COUNT] = {
    "CAPTURED", "SCORED", "HANDED_OFF",   "ACCEPTED", "RECYCLED", "QUALIFIED",
    "WON",      "LOST",   "DISQUALIFIED", "MERGED",   "VOIDED",   "ERASED"};
static const char *reason_names[LF_RR__COUNT] = {
    "not_ready",   "no_budget",  "no_authority", "no_need",
    "no_response", "bad_timing", "other"};
static const char *reason_symbols[LF_RR__COUNT] = {
    "NOT_READY",   "NO_BUDGET",  "NO_AUTHORITY", "NO_NEED",
    "NO_RESPONSE", "BAD_TIMING", "OTHER"};

const char *lf_event_type_name(lf_event_type_t type)
{
    return (unsigned)type < LF_EV__COUNT ? type_names[type] : "?";
}

const char *lf_event_type_symbol(lf_event_type_t type)
{
    return (unsigned)type < LF_EV__COUNT ? type_symbols[type] : "?";
}

int lf_event_type_parse(const char *name)
{
    for (int i = 0; i < LF_EV__COUNT; i++)
        if (!strcmp(name, type_names[i]))
            return i;
    return -1;
}

const char *lf_recycle_reason_name(lf_recycle_reason_t reason)
{
    return (unsigned)reason < LF_RR__COUNT ? reason_names[reason] : "?";
}

const char *lf_recycle_reason_symbol(lf_recycle_reason_t reason)
{
    return (unsigned)reason < LF_RR__COUNT ? reason_symbols[reason] : "?";
}

int lf_recycle_reason_parse(const char *name)
{
    for (int i = 0; i < LF_RR__COUNT; i++)
        if (!strcmp(name, reason_names[i]))
            return i;
    return -1;
}

/* The string fields of an event, named as in the schema: one list that
 * clear, copy, validate and equal all walk, so a new field is added once. */
#define LF_MAX_STRFIELDS 10
typedef struct strfield_s {
    const char *name;
    char **ptr;
    bool optional;
    size_t max; /* bytes */
} strfield_t;

static int event_strfields(const lf_event_t *cev, strfield_t *f)
{
    lf_event_t *ev = (lf_event_t *)cev;
    int n = 0;

#define F(nm, p, opt)      (f[n++] = (strfield_t){nm, &(p), opt, LF_STRING_MAX})
#define ID(nm, p, opt, mx) (f[n++] = (strfield_t){nm, &(p), opt, mx})
    ID("event_id", ev->event_id, false, LF_EVENT_ID_MAX);
    ID("lead_id", ev->lead_id, false, LF_LEAD_ID_MAX);
    F("source", ev->source, false);
    F("actor", ev->actor, true);
    ID("account_id", ev->account_id, true, LF_LEAD_ID_MAX);
    ID("extra", ev->extra, true, LF_EXTRA_MAX);
    ID("payload_extra", ev->payload_extra, true, LF_EXTRA_MAX);
    switch (ev->type) {
    case LF_EV_CAPTURED:
        F("channel", ev->u.captured.channel, false);
        F("campaign", ev->u.captured.campaign, true);
        break;
    case LF_EV_SCORED:
        F("model", ev->u.scored.model, false);
        break;
    case LF_EV_HANDED_OFF:
        F("owner", ev->u.handed_off.owner, false);
        break;
    case LF_EV_ACCEPTED:
        F("owner", ev->u.accepted.owner, false);
        break;
    case LF_EV_RECYCLED:
        F("note", ev->u.recycled.note, true);
        break;
    case LF_EV_QUALIFIED:
        F("opportunity_id", ev->u.qualified.opportunity_id, false);
        F("currency", ev->u.qualified.currency, false);
        break;
    case LF_EV_WON:
        F("currency", ev->u.won.currency, false);
        break;
    case LF_EV_LOST:
        F("reason", ev->u.lost.reason, false);
        break;
    case LF_EV_DISQUALIFIED:
        F("reason", ev->u.disqualified.reason, false);
        break;
    case LF_EV_MERGED:
        ID("into_lead_id", ev->u.merged.into_lead_id, false, LF_LEAD_ID_MAX);
        break;
    case LF_EV_VOIDED:
        ID("voided_event_id", ev->u.voided.voided_event_id, false,
           LF_EVENT_ID_MAX);
        F("reason", ev->u.voided.reason, false);
        break;
    case LF_EV_ERASED:
        F("request_id", ev->u.erased.request_id, false);
        break;
    default:
        break;
    }
#undef F
#undef ID
    return n;
}

void lf_event_init(lf_event_t *ev)
{
    memset(ev, 0, sizeof(*ev));
}

/* Free @p s unless it lies in ev->strbuf (freed once, with the event). */
static void free_str(const lf_event_t *ev, char *s)
{
    uintptr_t a = (uintptr_t)s, b = (uintptr_t)ev->strbuf;
    if (!ev->strbuf || a < b || a >= b + ev->strbuf_size)
        free(s);
}

void lf_event_clear(lf_event_t *ev)
{
    strfield_t f[LF_MAX_STRFIELDS] = {{0}};
    int n;

    if (!ev)
        return;
    n = event_strfields(ev, f);
    for (int i = 0; i < n; i++)
        free_str(ev, *f[i].ptr);
    if (ev->type == LF_EV_CAPTURED) {
        for (size_t i = 0; i < ev->u.captured.attr_count; i++) {
            free_str(ev, ev->u.captured.attrs[i].key);
            free_str(ev, ev->u.captured.attrs[i].value);
        }
        free(ev->u.captured.attrs);
    }
    free(ev->strbuf);
    memset(ev, 0, sizeof(*ev));
}

/* *@p field := a copy of @p value (NULL: none), freeing what it held. */
static bool replace_str(lf_event_t *ev, char **field, const char *value)
{
    char *v = value ? strdup(value) : NULL;

    if (value && !v)
        return false;
    free_str(ev, *field);
    *field = v;
    return true;
}

static bool word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9');
}

/* Where @p from stands in @p s as a word of its own, from @p at on: no
 * ASCII letter or digit right before or after it (the erasure's SQL has
 * the same rule). */
static const char *find_word(const char *s, const char *at, const char *from)
{
    size_t nf = strlen(from);

    for (; (at = strstr(at, from)); at++)
        if ((at == s || !word_char(at[-1])) && !word_char(at[nf]))
            return at;
    return NULL;
}

char *lf_event_replace_words(const char *s, const char *from, const char *to)
{
    size_t nf = strlen(from), nt = strlen(to), n = 0;
    const char *at, *rest = s;
    char *out, *w;

    if (!nf)
        return strdup(s);
    for (at = s; (at = find_word(s, at, from)); at += nf)
        n++;
    if (!(out = malloc(strlen(s) + n * nt + 1)))
        return NULL;
    for (w = out; (at = find_word(s, rest, from)); rest = at + nf) {
        memcpy(w, rest, (size_t)(at - rest));
        w += at - rest;
        memcpy(w, to, nt);
        w += nt;
    }
    strcpy(w, rest);
    return out;
}

/* An erased event's request reference that quotes the lead id (as a word
 * of its own: lead 42's "PRIV-4242" stays) quotes its pseudonym instead. */
static bool forget_in_request(lf_event_t *ev, const char *pseudonym)
{
    const char *r0 = ev->u.erased.request_id;
    char *r;

    if (ev->type != LF_EV_ERASED || !r0 || !*ev->lead_id ||
        !find_word(r0, r0, ev->lead_id))
        return true;
    if (!(r = lf_event_replace_words(r0, ev->lead_id, pseudonym)))
        return false;
    free_str(ev, ev->u.erased.request_id);
    ev->u.erased.request_id = r;
    return true;
}

lf_err_t lf_event_forget(lf_event_t *ev, const char *lead_pseudonym,
                         const char *into_pseudonym)
{
    bool ok = true;

    if (into_pseudonym && ev->type == LF_EV_MERGED)
        ok = replace_str(ev, &ev->u.merged.into_lead_id, into_pseudonym);
    if (!lead_pseudonym)
        return ok ? LF_OK : LF_ERR_NOMEM;
    ok = ok && forget_in_request(ev, lead_pseudonym) &&
         replace_str(ev, &ev->lead_id, lead_pseudonym) &&
         replace_str(ev, &ev->extra, NULL) &&
         replace_str(ev, &ev->payload_extra, NULL);
    switch (ev->type) {
    case LF_EV_CAPTURED:
        for (size_t i = 0; i < ev->u.captured.attr_count; i++) {
            free_str(ev, ev->u.captured.attrs[i].key);
            free_str(ev, ev->u.captured.attrs[i].value);
        }
        free(ev->u.captured.attrs);
        ev->u.captured.attrs = NULL;
        ev->u.captured.attr_count = 0;
        break;
    case LF_EV_RECYCLED:
        ok = ok && replace_str(ev, &ev->u.recycled.note, NULL);
        break;
    case LF_EV_LOST:
        ok = ok && replace_str(ev, &ev->u.lost.reason, NULL);
        break;
    case LF_EV_DISQUALIFIED:
        ok = ok && replace_str(ev, &ev->u.disqualified.reason, NULL);
        break;
    case LF_EV_VOIDED: /* required: a mark instead of the free text */
        ok =
            ok && replace_str(ev, &ev->u.voided.reason, LF_EVENT_ERASED_REASON);
        break;
    default:
        break;
    }
    return ok ? LF_OK : LF_ERR_NOMEM;
}

lf_err_t lf_event_rename(lf_event_t *ev, const char *lead_id,
                         const char *into_lead_id)
{
    bool ok = !lead_id || replace_str(ev, &ev->lead_id, lead_id);

    if (ok && into_lead_id && ev->type == LF_EV_MERGED)
        ok = replace_str(ev, &ev->u.merged.into_lead_id, into_lead_id);
    return ok ? LF_OK : LF_ERR_NOMEM;
}

lf_err_t lf_event_copy(lf_event_t *dst, const lf_event_t *src)
{
    strfield_t df[LF_MAX_STRFIELDS] = {{0}}, sf[LF_MAX_STRFIELDS] = {{0}};
    int n;

    *dst = *src;
    dst->strbuf = NULL; /* every string copied on its own */
    dst->strbuf_size = 0;
    n = event_strfields(src, sf);
    event_strfields(dst, df);
    for (int i = 0; i < n; i++)
        *df[i].ptr = NULL;
    if (src->type == LF_EV_CAPTURED) {
        dst->u.captured.attrs = NULL;
        dst->u.captured.attr_count = 0;
    }
    for (int i = 0; i < n; i++)
        if (*sf[i].ptr && !(*df[i].ptr = strdup(*sf[i].ptr)))
            goto nomem;
    if (src->type == LF_EV_CAPTURED && src->u.captured.attr_count) {
        size_t c = src->u.captured.attr_count;
        dst->u.captured.attrs = calloc(c, sizeof(lf_attr_t));
        if (!dst->u.captured.attrs)
            goto nomem;
        dst->u.captured.attr_count = c;
        for (size_t i = 0; i < c; i++) {
            lf_attr_t *d = &dst->u.captured.attrs[i];
            d->key = strdup(src->u.captured.attrs[i].key);
            d->value = strdup(src->u.captured.attrs[i].value);
            if (!d->key || !d->value)
                goto nomem;
        }
    }
    return LF_OK;
nomem:
    lf_event_clear(dst);
    return LF_ERR_NOMEM;
}

bool lf_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    while (i < len) {
        unsigned c;
        size_t n;
        uint32_t cp;

        /* ASCII, the common case, eight bytes at a time */
        while (len - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & UINT64_C(0x8080808080808080))
                break;
            i += 8;
        }
        if (i == len)
            break;
        c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

static int attr_cmp(const void *a, const void *b)
{
    return strcmp(((const lf_attr_t *)a)->key, ((const lf_attr_t *)b)->key);
}

bool lf_event_sort_attrs(lf_event_t *ev)
{
    lf_attr_t *a = ev->u.captured.attrs;
    size_t n = ev->u.captured.attr_count;

    if (ev->type != LF_EV_CAPTURED || n < 2)
        return true;
    qsort(a, n, sizeof(*a), attr_cmp);
    for (size_t i = 1; i < n; i++)
        if (!strcmp(a[i - 1].key, a[i].key))
            return false;
    return true;
}

static lf_err_t check_string(const char *name, const char *s, size_t max,
                             char *errstr, size_t errstr_size)
{
    size_t len = strlen(s);

    if (len > max)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "field \"%s\": %zu bytes, more than the %zu allowed",
                         name, len, max);
    if (!lf_utf8_valid(s, len))
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "field \"%s\": not valid UTF-8", name);
    return LF_OK;
}

static lf_err_t check_currency(const char *c, char *errstr, size_t errstr_size)
{
    if (strlen(c) != 3 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' ||
        c[1] > 'Z' || c[2] < 'A' || c[2] > 'Z')
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "field \"currency\": \"%.16s\" is not an ISO 4217 "
                         "code (three upper-case letters)",
                         c);
    return LF_OK;
}

#define INVALID(...) lf_seterr(LF_ERR_INVALID, errstr, errstr_size, __VA_ARGS__)

/* The strings every event type has, and their bounds. */
static lf_err_t check_strings(const lf_event_t *ev, char *errstr,
                              size_t errstr_size)
{
    strfield_t f[LF_MAX_STRFIELDS] = {{0}};
    int n = event_strfields(ev, f);
    lf_err_t err;

    for (int i = 0; i < n; i++) {
        const char *s = *f[i].ptr;
        if (!s) {
            if (f[i].optional)
                continue;
            return INVALID("missing required field \"%s\"", f[i].name);
        }
        if ((err = check_string(f[i].name, s, f[i].max, errstr, errstr_size)))
            return err;
    }
    if (!ev->lead_id[0])
        return INVALID("field \"lead_id\": empty; a lead id has 1 to %d bytes",
                       LF_LEAD_ID_MAX);
    if (!ev->event_id[0])
        return INVALID("field \"event_id\": empty");
    if (ev->account_id && !ev->account_id[0])
        return INVALID("field \"account_id\": empty; an account id has 1 to "
                       "%d bytes",
                       LF_LEAD_ID_MAX);
    return LF_OK;
}

/* The identity events' payloads. */
static lf_err_t check_identity(const lf_event_t *ev, char *errstr,
                               size_t errstr_size)
{
    switch (ev->type) {
    case LF_EV_MERGED:
        if (!ev->u.merged.into_lead_id[0])
            return INVALID("field \"into_lead_id\": empty; a lead id has 1 "
                           "to %d bytes",
                           LF_LEAD_ID_MAX);
        if (!strcmp(ev->u.merged.into_lead_id, ev->lead_id))
            return INVALID("field \"into_lead_id\": \"%.128s\" is the "
                           "event's own lead_id: a lead is not merged into "
                           "itself",
                           ev->lead_id);
        return LF_OK;
    case LF_EV_VOIDED:
        /* Any event id the contract takes: a producer's own ids are
         * voided as its UUIDs are. */
        if (!ev->u.voided.voided_event_id[0])
            return INVALID("field \"voided_event_id\": empty; name the "
                           "event_id of the event to void");
        if (!ev->u.voided.reason[0])
            return INVALID("field \"reason\": empty; say why the event is "
                           "voided");
        return LF_OK;
    default: /* LF_EV_ERASED */
        if (!ev->u.erased.request_id[0])
            return INVALID("field \"request_id\": empty; give the privacy "
                           "request's reference");
        return LF_OK;
    }
}

/* A captured event's attributes: bounded, complete, keys sorted and
 * unique. */
static lf_err_t check_attributes(const lf_event_t *ev, char *errstr,
                                 size_t errstr_size)
{
    lf_err_t err;

    if (ev->u.captured.attr_count > LF_ATTRS_MAX)
        return INVALID("field \"attributes\": %zu entries, more than "
                       "the %d allowed",
                       ev->u.captured.attr_count, LF_ATTRS_MAX);
    for (size_t i = 0; i < ev->u.captured.attr_count; i++) {
        const lf_attr_t *a = &ev->u.captured.attrs[i];
        if (!a->key || !a->value)
            return INVALID("field \"attributes\": entry %zu incomplete", i);
        /* As the JSON lines refuse it: what one producer cannot send,
         * another must not get in (and a stored event must read back). */
        if (!*a->key)
            return INVALID("field \"attributes\": empty key");
        if ((err = check_string("attributes", a->key, LF_STRING_MAX, errstr,
                                errstr_size)) ||
            (err = check_string("attributes", a->value, LF_STRING_MAX, errstr,
                                errstr_size)))
            return err;
        if (i > 0 && strcmp(ev->u.captured.attrs[i - 1].key, a->key) >= 0)
            return INVALID("field \"attributes\": key \"%.64s\" repeated "
                           "or out of order",
                           a->key);
    }
    return LF_OK;
}

/* The numbers and enums of each payload. */
static lf_err_t check_payload(const lf_event_t *ev, char *errstr,
                              size_t errstr_size)
{
    switch (ev->type) {
    case LF_EV_CAPTURED:
        return check_attributes(ev, errstr, errstr_size);
    case LF_EV_SCORED:
        if (ev->u.scored.score < 0)
            return INVALID("field \"score\": %d is negative",
                           ev->u.scored.score);
        if (ev->u.scored.threshold < 0)
            return INVALID("field \"threshold\": %d is negative",
                           ev->u.scored.threshold);
        return LF_OK;
    case LF_EV_HANDED_OFF:
        if (ev->u.handed_off.sla_hours < 0)
            return INVALID("field \"sla_hours\": %d is negative",
                           ev->u.handed_off.sla_hours);
        return LF_OK;
    case LF_EV_RECYCLED:
        if ((unsigned)ev->u.recycled.reason >= LF_RR__COUNT)
            return INVALID("field \"reason\": unknown recycle reason %d",
                           ev->u.recycled.reason);
        return LF_OK;
    case LF_EV_QUALIFIED:
        if (ev->u.qualified.amount_minor < 0)
            return INVALID("field \"amount_minor\": %lld is negative",
                           (long long)ev->u.qualified.amount_minor);
        return check_currency(ev->u.qualified.currency, errstr, errstr_size);
    case LF_EV_WON:
        if (ev->u.won.amount_minor < 0)
            return INVALID("field \"amount_minor\": %lld is negative",
                           (long long)ev->u.won.amount_minor);
        return check_currency(ev->u.won.currency, errstr, errstr_size);
    case LF_EV_MERGED:
    case LF_EV_VOIDED:
    case LF_EV_ERASED:
        return check_identity(ev, errstr, errstr_size);
    default:
        return LF_OK;
    }
}

lf_err_t lf_event_validate(const lf_event_t *ev, char *errstr,
                           size_t errstr_size)
{
    lf_err_t err;

    if ((unsigned)ev->type >= LF_EV__COUNT)
        return INVALID("field \"type\": unknown event type %d", ev->type);
    if ((err = check_strings(ev, errstr, errstr_size)))
        return err;
    if (ev->occurred_at < 0 || ev->occurred_at > LF_TIME_MAX_MS)
        return INVALID("field \"occurred_at\": %lld ms is outside "
                       "1970-01-01..9999-12-31",
                       (long long)ev->occurred_at);
    return check_payload(ev, errstr, errstr_size);
}

static bool str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

bool lf_event_equal(const lf_event_t *a, const lf_event_t *b)
{
    strfield_t fa[LF_MAX_STRFIELDS] = {{0}}, fb[LF_MAX_STRFIELDS] = {{0}};
    int n;

    if (a->type != b->type || a->occurred_at != b->occurred_at)
        return false;
    n = event_strfields(a, fa);
    event_strfields(b, fb);
    for (int i = 0; i < n; i++)
        if (!str_eq(*fa[i].ptr, *fb[i].ptr))
            return false;
    switch (a->type) {
    case LF_EV_CAPTURED:
        if (a->u.captured.attr_count != b->u.captured.attr_count)
            return false;
        for (size_t i = 0; i < a->u.captured.attr_count; i++)
            if (!str_eq(a->u.captured.attrs[i].key,
                        b->u.captured.attrs[i].key) ||
                !str_eq(a->u.captured.attrs[i].value,
                        b->u.captured.attrs[i].value))
                return false;
        return true;
    case LF_EV_SCORED:
        return a->u.scored.score == b->u.scored.score &&
               a->u.scored.threshold == b->u.scored.threshold;
    case LF_EV_HANDED_OFF:
        return a->u.handed_off.sla_hours == b->u.handed_off.sla_hours;
    case LF_EV_RECYCLED:
        return a->u.recycled.reason == b->u.recycled.reason;
    case LF_EV_QUALIFIED:
        return a->u.qualified.amount_minor == b->u.qualified.amount_minor;
    case LF_EV_WON:
        return a->u.won.amount_minor == b->u.won.amount_minor;
    default:
        return true;
    }
}
