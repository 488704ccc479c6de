/* lf_definition.h: the funnel definition, the teams' agreement as data: a
 * JSON file (schemas/funnel/default.json is today's) parsed and checked into
 * the compact tables lf_funnel_apply() reads. */
#ifndef LF_DEFINITION_H
#define LF_DEFINITION_H

#include "lf_buf.h"
#include "lf_event.h"
#include "lf_funnel.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/** The bit of stage @p st in a set of stages (lf_rule_t.from, new_cycle). */
#define LF_STAGE_BIT(st) (1u << (st))

/** What an event does to a lead in a stage outside its rule's `from`. */
typedef enum lf_otherwise_e {
    LF_OTHERWISE_TOUCH,   /**< a valid event that changes no stage */
    LF_OTHERWISE_ANOMALY, /**< stored, listed in funnel.anomalies */
} lf_otherwise_t;

/** One rule: a lead in a stage of `from` enters `to`. */
typedef struct lf_rule_s {
    unsigned from; /**< LF_STAGE_BIT() set; never empty in a rule */
    lf_stage_t to;
    lf_otherwise_t otherwise;
} lf_rule_t;

/** A score threshold: the event's own, or a fixed value. */
typedef struct lf_threshold_s {
    bool use_event; /**< "event": the scored event's threshold */
    int32_t value;  /**< when !use_event */
} lf_threshold_t;

/** qualify.threshold for one named model. */
typedef struct lf_model_threshold_s {
    char *model;
    lf_threshold_t threshold;
} lf_model_threshold_t;

/**
 * A checked definition. Every field is filled by lf_definition_parse();
 * strings and arrays are owned by the definition and freed by
 * lf_definition_destroy().
 */
typedef struct lf_definition_s {
    char *name;
    int64_t version;
    char *labels[LF_ST__COUNT]; /**< display names; NULL: none given */
    /** Indexed by event type, scored..disqualified; captured's (index 0)
     *  is unused: captured is never a rule. */
    lf_rule_t rules[LF_EV_DISQUALIFIED + 1];
    lf_threshold_t qualify_other; /**< the only threshold, or "*" */
    lf_model_threshold_t *models; /**< by model, sorted by name; may be NULL */
    size_t model_count;
    unsigned cycle_from, cycle_to; /**< new_cycle, LF_STAGE_BIT() sets */
} lf_definition_t;

/**
 * Parse and check the definition in @p json (@p len bytes, not necessarily
 * NUL-terminated; any bytes are safe). Errors name the JSON path and what
 * is wrong, e.g. `rules[2].from[0]: unknown stage "mql"`.
 * @returns a definition to free with lf_definition_destroy(), or NULL with
 * the reason in errstr.
 */
lf_definition_t *lf_definition_parse(const char *json, size_t len, char *errstr,
                                     size_t errstr_size);

/** A definition file's largest size: the default is 3 KiB; anything this
 *  large (/dev/zero, a log named by mistake) is refused unread. */
#define LF_DEFINITION_FILE_MAX (1 << 20)

/** lf_definition_parse() of the file at @p path (at most
 *  LF_DEFINITION_FILE_MAX bytes); errors start with the path.
 *  @returns as lf_definition_parse(). */
lf_definition_t *lf_definition_load(const char *path, char *errstr,
                                    size_t errstr_size);

/**
 * The embedded default (schemas/funnel/default.json as built), parsed once
 * on first use (thread-safe). Static: never destroy it.
 * @returns the definition, or NULL if it could not be parsed (out of
 * memory; the unit tests check the file itself).
 */
const lf_definition_t *lf_definition_default(void);

/** Free @p def and everything it owns. NULL-safe; not the default. */
void lf_definition_destroy(lf_definition_t *def);

/**
 * The canonical form of @p def: compact JSON with sorted keys, `from` sets
 * in stage order, rules in event order. Two files with the same rules, in
 * any order or spacing, have the same canonical form: it is what the
 * database records and hashes (funnel.definition).
 * @returns a NUL-terminated string to free(), or NULL when out of memory.
 */
char *lf_definition_canonical(const lf_definition_t *def);

/** The threshold a score of model @p model (may be NULL) must reach, given
 *  the event's own @p event_threshold. */
static inline int32_t lf_definition_threshold(const lf_definition_t *def,
                                              const char *model,
                                              int32_t event_threshold)
{
    const lf_threshold_t *t = &def->qualify_other;
    for (size_t i = 0; model && i < def->model_count; i++)
        if (!strcmp(def->models[i].model, model)) {
            t = &def->models[i].threshold;
            break;
        }
    return t->use_event ? event_threshold : t->value;
}

/** The label of @p st ("MQL"), or its stage name if it has none. Static. */
const char *lf_definition_label(const lf_definition_t *def, lf_stage_t st);

/** Human-readable form of the rules (for --help and docs), appended. */
void lf_definition_describe(const lf_definition_t *def, lf_buf_t *out);

#endif
