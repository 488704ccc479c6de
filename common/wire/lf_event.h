/* lf_event.h: the LeadEvent model (schema leadflow.LeadEvent v2) and its
 * contract validation, shared by the JSON mapping, the Avro codec, the
 * producers and the projector. */
#ifndef LF_EVENT_H
#define LF_EVENT_H

#include "lf_common.h"

#include <stdbool.h>
#include <stdint.h>

/** Event types, in the order of the Avro enum EventType and of the payload
 *  union branches (the wire depends on this order). */
typedef enum lf_event_type_e {
    LF_EV_CAPTURED = 0,
    LF_EV_SCORED,
    LF_EV_HANDED_OFF,
    LF_EV_ACCEPTED,
    LF_EV_RECYCLED,
    LF_EV_QUALIFIED,
    LF_EV_WON,
    LF_EV_LOST,
    LF_EV_DISQUALIFIED,
    LF_EV_MERGED, /**< v2: the lead is the same person as into_lead_id */
    LF_EV_VOIDED, /**< v2: voided_event_id should never have happened */
    LF_EV_ERASED, /**< v2: forget the person (a privacy request) */
    LF_EV__COUNT
} lf_event_type_t;

/** The event types contract v1 has (its EventType symbols). */
#define LF_EV_V1_COUNT (LF_EV_DISQUALIFIED + 1)

/** True for the identity events (merged, voided, erased): they move no
 *  stage themselves. */
#define LF_EV_IS_IDENTITY(t) ((t) >= LF_EV_MERGED && (t) < LF_EV__COUNT)

/** Recycle reasons, in the order of the Avro enum RecycleReason. */
typedef enum lf_recycle_reason_e {
    LF_RR_NOT_READY = 0,
    LF_RR_NO_BUDGET,
    LF_RR_NO_AUTHORITY,
    LF_RR_NO_NEED,
    LF_RR_NO_RESPONSE,
    LF_RR_BAD_TIMING,
    LF_RR_OTHER,
    LF_RR__COUNT
} lf_recycle_reason_t;

#define LF_LEAD_ID_MAX  128       /**< bytes of UTF-8 */
#define LF_EVENT_ID_MAX 128       /**< bytes */
#define LF_STRING_MAX   (1 << 16) /**< any other string field, bytes */
/** extra and payload_extra, bytes of JSON: the fields a newer writer sent
 *  may be many strings of LF_STRING_MAX each (and bytes grow by base64):
 *  room for any message within Kafka's default 1 MB and its escapes. */
#define LF_EXTRA_MAX (1 << 22)
#define LF_ATTRS_MAX 256 /**< entries in Captured.attributes */
/** 9999-12-31T23:59:59.999Z: the last instant RFC 3339 can write. */
#define LF_TIME_MAX_MS INT64_C(253402300799999)

typedef struct lf_attr_s {
    char *key;
    char *value;
} lf_attr_t;

/**
 * One lead lifecycle event. Every string is NUL-terminated, heap-allocated
 * and owned by the event: lf_event_clear() frees them all. Optional strings
 * (actor, account_id, campaign, note, extra, payload_extra) are NULL when
 * absent. Only the payload member of
 * the union that matches @c type is meaningful.
 *
 * A string is either its own allocation or lies inside @c strbuf, one
 * allocation holding several (the JSON parser's fast path and the Avro
 * decoder: one malloc per event instead of one per string). lf_event_clear()
 * tells them apart, so a field may be replaced by a new allocation at any time;
 * never free() a field by hand.
 */
typedef struct lf_event_s {
    char *event_id;
    char *lead_id;
    lf_event_type_t type;
    int64_t occurred_at; /**< ms since the epoch, UTC */
    char *source;
    char *actor;
    char *account_id; /**< v2: the company the lead belongs to, or NULL */
    union {
        struct {
            char *channel;
            char *campaign;
            lf_attr_t *attrs; /**< sorted by key, keys unique */
            size_t attr_count;
        } captured;
        struct {
            int32_t score;
            int32_t threshold;
            char *model;
        } scored;
        struct {
            char *owner;
            int32_t sla_hours;
        } handed_off;
        struct {
            char *owner;
        } accepted;
        struct {
            lf_recycle_reason_t reason;
            char *note;
        } recycled;
        struct {
            char *opportunity_id;
            int64_t amount_minor;
            char *currency;
        } qualified;
        struct {
            int64_t amount_minor;
            char *currency;
        } won;
        struct {
            char *reason;
        } lost;
        struct {
            char *reason;
        } disqualified;
        struct {
            char *into_lead_id; /**< the lead it is merged into */
        } merged;
        struct {
            char *voided_event_id; /**< a UUID */
            char *reason;
        } voided;
        struct {
            char *request_id; /**< the privacy request's reference */
        } erased;
    } u;
    /** Fields a newer writer sent that this reader does not know, as the
     *  text of a JSON object ({"name": value, ...}), or NULL when none:
     *  envelope fields in @c extra, payload fields in @c payload_extra.
     *  Kept so that nothing a writer sends is lost before the code learns
     *  it (funnel.events.extra, and merged into funnel.events.payload). */
    char *extra;
    char *payload_extra;
    char *strbuf;       /**< NULL, or strings of this event, back to back */
    size_t strbuf_size; /**< bytes of strbuf */
} lf_event_t;

/** Zero an event so lf_event_clear() is safe on it. */
void lf_event_init(lf_event_t *ev);

/** Free every string the event owns and zero it. NULL-safe. */
void lf_event_clear(lf_event_t *ev);

/** Deep copy @p src into @p dst (which must be initialised or cleared).
 *  @returns LF_OK or LF_ERR_NOMEM (dst is then cleared). */
lf_err_t lf_event_copy(lf_event_t *dst, const lf_event_t *src);

/** "captured", "handed_off", ...: the JSON and SQL name. Static string;
 *  "?" for an out-of-range value. */
const char *lf_event_type_name(lf_event_type_t type);
/** "CAPTURED", ...: the Avro symbol. Static string. */
const char *lf_event_type_symbol(lf_event_type_t type);
/** The type named @p name (lower-case JSON name); -1 if none. */
int lf_event_type_parse(const char *name);

/** "no_budget", ...: the JSON name. Static string. */
const char *lf_recycle_reason_name(lf_recycle_reason_t reason);
const char *lf_recycle_reason_symbol(lf_recycle_reason_t reason);
/** The reason named @p name (lower-case); -1 if none. */
int lf_recycle_reason_parse(const char *name);

/**
 * Check the contract that Avro's types cannot express: lead_id 1..128 bytes,
 * every string valid UTF-8 without NUL, event_id non-empty, score, threshold
 * and sla_hours not negative, amounts not negative, currency three upper-case
 * letters, occurred_at within 1970..9999; account_id 1..128 bytes when
 * present; into_lead_id 1..128 bytes and not the event's own lead_id;
 * voided_event_id non-empty (any event id: a producer's own ids are voided
 * as UUIDs are); a void's reason and request_id not empty.
 * @returns LF_OK, or LF_ERR_INVALID with a sentence naming the field.
 */
lf_err_t lf_event_validate(const lf_event_t *ev, char *errstr,
                           size_t errstr_size);

/** True if @p s[0..len) is valid UTF-8 (no overlongs, no surrogates). */
bool lf_utf8_valid(const char *s, size_t len);

/** Does @p s start with a C1 control, U+0080..U+009F (two bytes in UTF-8;
 *  U+009B is a CSI to some terminals)? @p s[1] is read only when s[0] is
 *  0xC2. */
static inline bool lf_utf8_is_c1(const char *s)
{
    return (unsigned char)s[0] == 0xC2 && (unsigned char)s[1] >= 0x80 &&
           (unsigned char)s[1] <= 0x9F;
}

/** Sort captured attributes by key; @returns false if two keys are equal. */
bool lf_event_sort_attrs(lf_event_t *ev);

/** True if @p a and @p b carry the same content, field by field. */
bool lf_event_equal(const lf_event_t *a, const lf_event_t *b);

/** The reason an erased person's voided event keeps: the contract
 *  requires one, and the free text it had may be personal. */
#define LF_EVENT_ERASED_REASON "(erased)"

/**
 * @p s with @p from replaced by @p to wherever it stands as a word of its
 * own (no ASCII letter or digit right before or after it: lead 42's
 * "PRIV-4242" stays), freshly allocated (free() it); NULL when out of
 * memory. The erasure's SQL (lf_identity.c) has the same rule.
 */
char *lf_event_replace_words(const char *s, const char *from, const char *to);

/**
 * Forget what identifies a person in @p ev (an erased person's event):
 * with @p lead_pseudonym, lead_id becomes it and the personal fields go
 * (captured attributes, the recycled note, the free-text reason of lost
 * and disqualified, a void's reason, which becomes
 * LF_EVENT_ERASED_REASON, and the fields a newer writer sent, extra and
 * payload_extra, which may be anything; an erased event's request_id
 * quoting the lead id quotes the pseudonym); with @p into_pseudonym, a merged
 * event's into_lead_id becomes it. NULL leaves that part as it is.
 * @returns LF_OK or LF_ERR_NOMEM (the event stays valid to clear).
 */
lf_err_t lf_event_forget(lf_event_t *ev, const char *lead_pseudonym,
                         const char *into_pseudonym);

/**
 * Set @p ev's lead_id to @p lead_id and, of a merged event, into_lead_id
 * to @p into_lead_id; NULL leaves that one as it is. Nothing else
 * changes (a batch that failed puts back the ids lf_event_forget()
 * replaced, so that its retry erases the same ids again).
 * @returns LF_OK or LF_ERR_NOMEM (the event stays valid to clear).
 */
lf_err_t lf_event_rename(lf_event_t *ev, const char *lead_id,
                         const char *into_lead_id);

#endif
