/**
 * @file lf_identity.h
 * Merged leads and erased people in a funnel schema: the merge rule, a
 * lead's merge component, and the statements that write merges and erase a
 * person. The projector runs them inside its batch transaction, under the
 * locks of the leads involved (docs/analysts.md, "Identity").
 *
 * The merge rule: take a component's merged events in (occurred_at,
 * event_id) order; one counts unless its lead already has a merge that
 * counts (the same target: a duplicate that changes nothing; another
 * target: an anomaly) or it would close a cycle (an anomaly; a lead merged
 * into itself is one). Each lead is then merged into at most one other,
 * and the end of its chain is its surviving lead.
 */
#ifndef LF_IDENTITY_H
#define LF_IDENTITY_H

/** What an erasure appends to a dead letter's error once it removed the
 *  letter's key and value (the error stays: it says why it was dead). */
#define LF_ERASED_NOTE " [erased: key and value removed]"

/* The reason of a key anomaly whose Kafka key was an erased person's. */
#define LF_KEY_ERASED_NOTE "Kafka key differs from lead_id (the key was erased)"

/* In a conflict anomaly's reason, after "event_id reused with different
 * content": the copy differs from the stored event only in fields an
 * erasure removes, so the person's erasure deletes the anomaly. */
#define LF_CONFLICT_ERASABLE ", only in fields an erasure removes,"

/* In SQL: a regular expression matching lead id u.o where it stands as a
 * word of its own: no ASCII letter or digit right before or after it, as
 * lf_event_forget() has it (the id's regular-expression characters
 * escaped). */
#define LF_SQL_ID_AS_WORD                                                      \
    "'(?<![A-Za-z0-9])' || regexp_replace(u.o, '([.^$*+?(){}|[\\]\\\\])', "    \
    "'\\\\\\1', 'g') || '(?![A-Za-z0-9])'"

#include "lf_buf.h"
#include "lf_common.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

/** A set of strings (copies owned by the set); sorted and unique after
 *  lf_ids_sort(). */
typedef struct lf_ids_s {
    char **v;
    size_t n, cap;
} lf_ids_t;

lf_err_t lf_ids_add(lf_ids_t *s, const char *id);
void lf_ids_sort(lf_ids_t *s);
/** Is @p id in @p s (sorted)? */
bool lf_ids_has(const lf_ids_t *s, const char *id);
void lf_ids_free(lf_ids_t *s);

typedef enum lf_merge_verdict_e {
    LF_MERGE_COUNTS = 0,
    LF_MERGE_DUPLICATE,    /**< its lead is merged into the same target */
    LF_MERGE_OTHER_TARGET, /**< its lead is merged into another lead */
    LF_MERGE_CYCLE         /**< it would close a cycle of merges */
} lf_merge_verdict_t;

/** A stored merged event and what the rule made of it. */
typedef struct lf_merge_s {
    char *event_id, *lead_id, *into_lead_id; /* owned */
    int64_t occurred_at;                     /* ms since the epoch */
    lf_merge_verdict_t verdict;
    const char *by; /**< LF_MERGE_OTHER_TARGET: the merge that counts */
} lf_merge_t;

/** One or more merge components: their lead ids and merged events. */
typedef struct lf_component_s {
    lf_ids_t ids;
    lf_merge_t *m;
    size_t n, cap;
} lf_component_t;

void lf_component_free(lf_component_t *c);

/** Add a merged event (strings copied). @returns LF_OK or LF_ERR_NOMEM. */
lf_err_t lf_component_add(lf_component_t *c, const char *event_id,
                          const char *lead_id, const char *into_lead_id,
                          int64_t occurred_at);

/**
 * Grow c->ids (the seeds) to their whole merge components in
 * SCHEMA.events: every lead connected to one of them by a merged event,
 * counted or not, in either direction; c->m gets those merged events.
 */
lf_err_t lf_identity_component(PGconn *conn, const char *schema,
                               lf_component_t *c, char *errstr,
                               size_t errstr_size);

/** Apply the merge rule to c->m (sorted into rule order, verdicts set). */
lf_err_t lf_identity_merge_rule(lf_component_t *c);

/** The surviving lead of @p id under c's counted merges (@p id itself
 *  when it is merged into nothing); after lf_identity_merge_rule(). */
const char *lf_identity_root(const lf_component_t *c, const char *id);

/** The surviving lead of every id in c->ids, in @p out (c->ids.n
 *  pointers into c->ids); after lf_identity_merge_rule(). @returns false
 *  when out of memory. */
bool lf_identity_roots(const lf_component_t *c, const char **out);

/** What writing a component's merges changed. */
typedef struct lf_merge_counts_s {
    uint64_t merges;    /**< counted merges that were not counted before */
    uint64_t anomalies; /**< merge anomalies not listed before */
} lf_merge_counts_t;

/**
 * Make SCHEMA.merges and the 'merge' anomalies say what the rule made of
 * component @p c (after lf_identity_merge_rule()); move every anomaly of
 * its leads to their surviving lead, and delete the leads and
 * stage_history rows of its merged leads (their events count for the
 * surviving lead, which the caller recomputes).
 */
lf_err_t lf_identity_write_merges(PGconn *conn, const char *schema,
                                  const lf_component_t *c,
                                  lf_merge_counts_t *counts, char *errstr,
                                  size_t errstr_size);

/**
 * Erase lead ids @p orig[0..n) in SCHEMA: each becomes @p pseud[i] in
 * every table, the personal fields of their events go (@p known_keys: an
 * SQL expression of `type` giving the payload keys the reader knows, as
 * text[]; other keys go too), their leads and stage_history rows are
 * deleted (the caller recomputes their surviving leads), and their dead
 * letters lose key and value. The pseudonyms join SCHEMA.erased_leads;
 * the original ids leave SCHEMA.identity_pending.
 */
lf_err_t lf_identity_erase(PGconn *conn, const char *schema,
                           const char *const *orig, const char *const *pseud,
                           size_t n, const char *known_keys, char *errstr,
                           size_t errstr_size);

#endif
