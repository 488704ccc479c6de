/* lf_definition.c: parse and check a funnel definition (JSON, jansson) into
 * the tables the state machine reads, and write its canonical form. */
#include "lf_definition.h"

#include "lf_embedded.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

/* The event types that take a rule: scored..disqualified. captured is the
 * way in, and the identity types declared after disqualified (merged,
 * voided, erased) never reach the funnel: loops over rules stop at
 * LF_EV_DISQUALIFIED, never at LF_EV__COUNT. */
#define FIRST_RULE LF_EV_SCORED
#define LAST_RULE  LF_EV_DISQUALIFIED

/* Parsing state: the error goes to errstr, prefixed with the JSON path. */
typedef struct parse_s {
    char *errstr;
    size_t errstr_size;
} parse_t;

static lf_definition_t *fail(parse_t *p, const char *path, const char *fmt,
                             const char *a)
{
    char what[256];
    snprintf(what, sizeof(what), fmt, a ? a : "");
    lf_seterr(LF_ERR_INVALID, p->errstr, p->errstr_size, "%s: %s", path, what);
    return NULL;
}

/* Reject a key of @p obj not in the NULL-terminated @p allowed. */
static bool only_keys(parse_t *p, const char *path, json_t *obj,
                      const char *const *allowed)
{
    const char *key;
    json_t *v;
    char where[128];

    json_object_foreach(obj, key, v)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = !strcmp(key, *a);
        if (!ok) {
            snprintf(where, sizeof(where), "%s", path);
            fail(p, where, "unknown key \"%.100s\"", key);
            return false;
        }
    }
    return true;
}

/* @p obj's member @p key, which must exist. */
static json_t *need(parse_t *p, const char *path, json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        fail(p, path, "missing key \"%s\"", key);
    return v;
}

static lf_stage_t parse_stage(parse_t *p, const char *path, json_t *v)
{
    lf_stage_t st;
    if (!json_is_string(v)) {
        fail(p, path, "expected a stage name (a string)%s", NULL);
        return LF_ST_NONE;
    }
    if ((st = lf_stage_parse(json_string_value(v))) == LF_ST_NONE)
        fail(p, path,
             "unknown stage \"%.80s\" (one of captured, "
             "marketing_qualified, handed_off, sales_accepted, "
             "sales_qualified, won, lost, nurture, disqualified)",
             json_string_value(v));
    return st;
}

/* An array of stage names into a set; @p may_be_empty for new_cycle. */
static bool parse_stages(parse_t *p, const char *path, json_t *arr,
                         bool may_be_empty, unsigned *set)
{
    char where[160];
    size_t i;
    json_t *v;

    *set = 0;
    if (!json_is_array(arr)) {
        fail(p, path, "expected an array of stage names%s", NULL);
        return false;
    }
    if (!may_be_empty && json_array_size(arr) == 0) {
        fail(p, path, "empty: a rule moves leads from at least one stage%s",
             NULL);
        return false;
    }
    json_array_foreach(arr, i, v)
    {
        snprintf(where, sizeof(where), "%s[%zu]", path, i);
        lf_stage_t st = parse_stage(p, where, v);
        if (st == LF_ST_NONE)
            return false;
        if (*set & LF_STAGE_BIT(st)) {
            fail(p, where, "stage \"%s\" is listed twice", lf_stage_name(st));
            return false;
        }
        *set |= LF_STAGE_BIT(st);
    }
    return true;
}

static bool parse_event(parse_t *p, const char *path, json_t *v,
                        lf_event_type_t *type)
{
    int t;
    if (!json_is_string(v)) {
        fail(p, path, "expected an event type (a string)%s", NULL);
        return false;
    }
    t = lf_event_type_parse(json_string_value(v));
    if (t == LF_EV_CAPTURED) {
        fail(p, path,
             "a rule for captured: captured on an unknown lead is the one "
             "way in and takes no rule%s",
             NULL);
        return false;
    }
    if (t < FIRST_RULE || t > LAST_RULE) {
        fail(p, path,
             "unknown event \"%.80s\" (one of scored, handed_off, accepted, "
             "recycled, qualified, won, lost, disqualified)",
             json_string_value(v));
        return false;
    }
    *type = (lf_event_type_t)t;
    return true;
}

static bool parse_otherwise(parse_t *p, const char *path, json_t *v,
                            lf_otherwise_t *o)
{
    const char *s = json_string_value(v);
    if (s && !strcmp(s, "touch"))
        *o = LF_OTHERWISE_TOUCH;
    else if (s && !strcmp(s, "anomaly"))
        *o = LF_OTHERWISE_ANOMALY;
    else {
        fail(p, path, "expected \"touch\" or \"anomaly\"%s", NULL);
        return false;
    }
    return true;
}

/* One element of "rules" into def->rules; @p seen marks the events done. */
static bool parse_rule(parse_t *p, size_t i, json_t *r, lf_definition_t *def,
                       unsigned *seen)
{
    static const char *const keys[] = {"event", "from", "to", "otherwise",
                                       NULL};
    char path[64], where[96];
    lf_event_type_t type;
    lf_rule_t rule;
    json_t *ev, *from, *to, *oth;

    snprintf(path, sizeof(path), "rules[%zu]", i);
    if (!json_is_object(r)) {
        fail(p, path, "expected an object%s", NULL);
        return false;
    }
    if (!only_keys(p, path, r, keys) || !(ev = need(p, path, r, "event")) ||
        !(from = need(p, path, r, "from")) || !(to = need(p, path, r, "to")) ||
        !(oth = need(p, path, r, "otherwise")))
        return false;
    snprintf(where, sizeof(where), "%s.event", path);
    if (!parse_event(p, where, ev, &type))
        return false;
    if (*seen & (1u << type)) {
        fail(p, where, "repeated rule: event \"%s\" has a rule already",
             lf_event_type_name(type));
        return false;
    }
    snprintf(where, sizeof(where), "%s.from", path);
    if (!parse_stages(p, where, from, false, &rule.from))
        return false;
    snprintf(where, sizeof(where), "%s.to", path);
    if ((rule.to = parse_stage(p, where, to)) == LF_ST_NONE)
        return false;
    snprintf(where, sizeof(where), "%s.otherwise", path);
    if (!parse_otherwise(p, where, oth, &rule.otherwise))
        return false;
    *seen |= 1u << type;
    def->rules[type] = rule;
    return true;
}

static bool parse_rules(parse_t *p, json_t *arr, lf_definition_t *def)
{
    unsigned seen = 0;
    size_t i;
    json_t *r;

    if (!json_is_array(arr)) {
        fail(p, "rules", "expected an array of rules%s", NULL);
        return false;
    }
    json_array_foreach(arr, i, r)
    {
        if (!parse_rule(p, i, r, def, &seen))
            return false;
    }
    for (int t = FIRST_RULE; t <= LAST_RULE; t++)
        if (!(seen & (1u << t))) {
            fail(p, "rules",
                 "missing rule for event \"%s\" (every event "
                 "but captured takes exactly one)",
                 lf_event_type_name((lf_event_type_t)t));
            return false;
        }
    return true;
}

/* "event" or a number. Scores are integers, so score >= 70.5 is score >=
 * 71: a fraction is kept as the integer it means (its ceiling). */
static bool parse_threshold(parse_t *p, const char *path, json_t *v,
                            lf_threshold_t *t)
{
    const char *s = json_string_value(v);
    double d = json_is_number(v) ? ceil(json_number_value(v)) : NAN;

    if (s && !strcmp(s, "event")) {
        t->use_event = true;
        t->value = 0;
        return true;
    }
    if (d >= 0 && d <= INT32_MAX) { /* false for NaN */
        t->use_event = false;
        t->value = (int32_t)d;
        return true;
    }
    if (d < 0 || d > INT32_MAX) {
        char num[40];
        snprintf(num, sizeof(num), "%.17g", json_number_value(v));
        fail(p, path,
             d < 0 ? "bad threshold: %s is negative (scores are 0 or more)"
                   : "bad threshold: %s is beyond any score (at most "
                     "2147483647)",
             num);
        return false;
    }
    fail(p, path,
         "bad threshold: expected \"event\", a score or an object from "
         "model name to either (with \"*\" for the other models)%s",
         NULL);
    return false;
}

static int model_cmp(const void *a, const void *b)
{
    return strcmp(((const lf_model_threshold_t *)a)->model,
                  ((const lf_model_threshold_t *)b)->model);
}

/* qualify.threshold as an object: model name -> threshold, "*" for the
 * models not listed (without it, they take the event's own threshold). */
static bool no_controls(const char *t, size_t n);

static bool parse_by_model(parse_t *p, json_t *obj, lf_definition_t *def)
{
    char where[160];
    const char *key;
    json_t *v;
    size_t n = json_object_size(obj);

    def->qualify_other = (lf_threshold_t){.use_event = true, .value = 0};
    if (n && !(def->models = calloc(n, sizeof(*def->models)))) {
        fail(p, "qualify.threshold", "out of memory%s", NULL);
        return false;
    }
    json_object_foreach(obj, key, v)
    {
        lf_threshold_t t;
        snprintf(where, sizeof(where), "qualify.threshold[\"%.100s\"]", key);
        if (!*key || !no_controls(key, strlen(key))) {
            fail(p, "qualify.threshold",
                 "a model name is a non-empty string without control "
                 "characters%s",
                 NULL);
            return false;
        }
        if (!parse_threshold(p, where, v, &t))
            return false;
        if (!strcmp(key, "*")) {
            def->qualify_other = t;
            continue;
        }
        lf_model_threshold_t *m = &def->models[def->model_count];
        if (!(m->model = strdup(key))) {
            fail(p, where, "out of memory%s", NULL);
            return false;
        }
        m->threshold = t;
        def->model_count++;
    }
    if (def->model_count > 1)
        qsort(def->models, def->model_count, sizeof(*def->models), model_cmp);
    return true;
}

static bool parse_qualify(parse_t *p, json_t *q, lf_definition_t *def)
{
    static const char *const keys[] = {"threshold", NULL};
    json_t *t;

    if (!json_is_object(q)) {
        fail(p, "qualify", "expected an object%s", NULL);
        return false;
    }
    if (!only_keys(p, "qualify", q, keys) ||
        !(t = need(p, "qualify", q, "threshold")))
        return false;
    if (json_is_object(t))
        return parse_by_model(p, t, def);
    return parse_threshold(p, "qualify.threshold", t, &def->qualify_other);
}

static bool parse_new_cycle(parse_t *p, json_t *c, lf_definition_t *def)
{
    static const char *const keys[] = {"from", "to", NULL};
    json_t *from, *to;

    if (!json_is_object(c)) {
        fail(p, "new_cycle", "expected an object%s", NULL);
        return false;
    }
    return only_keys(p, "new_cycle", c, keys) &&
           (from = need(p, "new_cycle", c, "from")) &&
           (to = need(p, "new_cycle", c, "to")) &&
           parse_stages(p, "new_cycle.from", from, true, &def->cycle_from) &&
           parse_stages(p, "new_cycle.to", to, true, &def->cycle_to);
}

/* Are the @p n bytes at @p t (UTF-8) free of control characters: C0,
 * DEL and C1 (U+0080-U+009F, "next line" among them)? */
static bool no_controls(const char *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c < 0x20 || c == 0x7f ||
            (c == 0xc2 && i + 1 < n && (unsigned char)t[i + 1] >= 0x80 &&
             (unsigned char)t[i + 1] <= 0x9f))
            return false;
    }
    return true;
}

/* Is @p v a non-empty string without control characters? A name or a
 * label is shown on a terminal and in one-line messages. */
static bool display_string(const json_t *v)
{
    const char *t = json_string_value(v);
    size_t n = json_string_length(v);

    return t && n && no_controls(t, n);
}

static bool parse_labels(parse_t *p, json_t *l, lf_definition_t *def)
{
    char where[160];
    const char *key;
    json_t *v;

    if (!json_is_object(l)) {
        fail(p, "labels", "expected an object from stage to label%s", NULL);
        return false;
    }
    json_object_foreach(l, key, v)
    {
        snprintf(where, sizeof(where), "labels.%.100s", key);
        lf_stage_t st = lf_stage_parse(key);
        if (st == LF_ST_NONE) {
            fail(p, where, "unknown stage \"%.80s\"", key);
            return false;
        }
        if (!display_string(v)) {
            fail(p, where,
                 "expected a non-empty string without control "
                 "characters%s",
                 NULL);
            return false;
        }
        if (!(def->labels[st] = strdup(json_string_value(v)))) {
            fail(p, where, "out of memory%s", NULL);
            return false;
        }
    }
    return true;
}

static bool parse_head(parse_t *p, json_t *root, lf_definition_t *def)
{
    json_t *name, *version;

    if (!(name = need(p, "(root)", root, "name")) ||
        !(version = need(p, "(root)", root, "version")))
        return false;
    if (!display_string(name)) {
        fail(p, "name",
             "expected a non-empty string without control characters%s", NULL);
        return false;
    }
    if (!json_is_integer(version) || json_integer_value(version) < 1) {
        fail(p, "version", "expected an integer >= 1%s", NULL);
        return false;
    }
    def->version = json_integer_value(version);
    if (!(def->name = strdup(json_string_value(name)))) {
        fail(p, "name", "out of memory%s", NULL);
        return false;
    }
    return true;
}

static bool parse_root(parse_t *p, json_t *root, lf_definition_t *def)
{
    static const char *const keys[] = {
        "name", "version", "labels", "qualify", "rules", "new_cycle", NULL};
    json_t *v, *rules, *qualify, *cycle;

    if (!json_is_object(root)) {
        fail(p, "(root)", "expected an object%s", NULL);
        return false;
    }
    if (!only_keys(p, "(root)", root, keys) || !parse_head(p, root, def) ||
        !(qualify = need(p, "(root)", root, "qualify")) ||
        !(rules = need(p, "(root)", root, "rules")) ||
        !(cycle = need(p, "(root)", root, "new_cycle")))
        return false;
    if ((v = json_object_get(root, "labels")) && !parse_labels(p, v, def))
        return false;
    return parse_qualify(p, qualify, def) && parse_rules(p, rules, def) &&
           parse_new_cycle(p, cycle, def);
}

lf_definition_t *lf_definition_parse(const char *json, size_t len, char *errstr,
                                     size_t errstr_size)
{
    parse_t p = {errstr, errstr_size};
    json_error_t jerr;
    json_t *root;
    lf_definition_t *def;

    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                  "line %d column %d: not valid JSON: %s", jerr.line,
                  jerr.column, jerr.text);
        return NULL;
    }
    if (!(def = calloc(1, sizeof(*def)))) {
        json_decref(root);
        lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    def->qualify_other.use_event = true;
    if (!parse_root(&p, root, def)) {
        lf_definition_destroy(def);
        def = NULL;
    }
    json_decref(root);
    return def;
}

lf_definition_t *lf_definition_load(const char *path, char *errstr,
                                    size_t errstr_size)
{
    lf_buf_t text = {0};
    char buf[4096], why[512];
    size_t n;
    lf_definition_t *def = NULL;
    FILE *f = fopen(path, "rb");

    if (!f) {
        lf_seterr(LF_ERR_IO, errstr, errstr_size, "%s: %s", path,
                  strerror(errno));
        return NULL;
    }
    bool too_big = false;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        if ((too_big = text.len + n > LF_DEFINITION_FILE_MAX) ||
            lf_buf_append(&text, buf, n)) {
            n = (size_t)-1;
            break;
        }
    /* A file saved with a UTF-8 byte order mark (as editors on Windows
     * write it) reads as if it had none. */
    size_t skip =
        text.len >= 3 && !memcmp(text.data, "\xef\xbb\xbf", 3) ? 3 : 0;
    if (too_big)
        lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                  "%s: larger than %d bytes: not a definition file", path,
                  LF_DEFINITION_FILE_MAX);
    else if (ferror(f) || n == (size_t)-1)
        lf_seterr(LF_ERR_IO, errstr, errstr_size, "%s: cannot read it", path);
    else if (!(def = lf_definition_parse(text.data ? text.data + skip : "",
                                         text.len - skip, why, sizeof(why))))
        lf_seterr(LF_ERR_INVALID, errstr, errstr_size, "%s: %s", path, why);
    fclose(f);
    lf_buf_free(&text);
    return def;
}

static lf_definition_t *default_def;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;
/* default_def once parsed: lf_funnel_apply() asks for it per event, and an
 * acquire load is cheaper than pthread_once()'s call. */
static _Atomic(const lf_definition_t *) default_ready;

static void default_init(void)
{
    const char *s = lf_embedded_funnel_default;
    default_def = lf_definition_parse(s, strlen(s), NULL, 0);
    atomic_store_explicit(&default_ready, default_def, memory_order_release);
}

const lf_definition_t *lf_definition_default(void)
{
    const lf_definition_t *def =
        atomic_load_explicit(&default_ready, memory_order_acquire);
    if (def)
        return def;
    pthread_once(&default_once, default_init);
    return default_def;
}

void lf_definition_destroy(lf_definition_t *def)
{
    if (!def)
        return;
    free(def->name);
    for (int i = 0; i < LF_ST__COUNT; i++)
        free(def->labels[i]);
    for (size_t i = 0; i < def->model_count; i++)
        free(def->models[i].model);
    free(def->models);
    free(def);
}

/* A set of stages as a JSON array in stage order; NULL when out of memory. */
static json_t *stages_json(unsigned set)
{
    json_t *arr = json_array();
    for (int s = 1; arr && s < LF_ST__COUNT; s++)
        if ((set & LF_STAGE_BIT(s)) &&
            json_array_append_new(arr, json_string(lf_stage_name(s)))) {
            json_decref(arr);
            return NULL;
        }
    return arr;
}

static json_t *threshold_json(const lf_threshold_t *t)
{
    return t->use_event ? json_string("event") : json_integer(t->value);
}

static json_t *qualify_json(const lf_definition_t *def)
{
    json_t *th;

    if (!def->model_count)
        th = threshold_json(&def->qualify_other);
    else {
        th = json_object();
        for (size_t i = 0; th && i < def->model_count; i++)
            json_object_set_new(th, def->models[i].model,
                                threshold_json(&def->models[i].threshold));
        if (th)
            json_object_set_new(th, "*", threshold_json(&def->qualify_other));
    }
    return json_pack("{s:o}", "threshold", th);
}

static json_t *rules_json(const lf_definition_t *def)
{
    json_t *arr = json_array();
    for (int t = FIRST_RULE; arr && t <= LAST_RULE; t++) {
        const lf_rule_t *r = &def->rules[t];
        json_t *rule = json_pack(
            "{s:s, s:o, s:s, s:s}", "event",
            lf_event_type_name((lf_event_type_t)t), "from",
            stages_json(r->from), "to", lf_stage_name(r->to), "otherwise",
            r->otherwise == LF_OTHERWISE_TOUCH ? "touch" : "anomaly");
        if (!rule || json_array_append_new(arr, rule)) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

char *lf_definition_canonical(const lf_definition_t *def)
{
    json_t *labels = json_object(), *root;
    char *s;

    for (int st = 1; labels && st < LF_ST__COUNT; st++)
        if (def->labels[st])
            json_object_set_new(labels, lf_stage_name(st),
                                json_string(def->labels[st]));
    root = json_pack(
        "{s:s, s:I, s:o, s:o, s:o, s:{s:o, s:o}}", "name", def->name, "version",
        (json_int_t)def->version, "labels", labels, "qualify",
        qualify_json(def), "rules", rules_json(def), "new_cycle", "from",
        stages_json(def->cycle_from), "to", stages_json(def->cycle_to));
    if (!root)
        return NULL;
    s = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(root);
    return s;
}

const char *lf_definition_label(const lf_definition_t *def, lf_stage_t st)
{
    if ((unsigned)st < LF_ST__COUNT && def->labels[st])
        return def->labels[st];
    return lf_stage_name(st);
}

static void describe_set(lf_buf_t *out, unsigned set)
{
    bool first = true;
    for (int s = 1; s < LF_ST__COUNT; s++)
        if (set & LF_STAGE_BIT(s)) {
            lf_buf_printf(out, "%s%s", first ? "" : ", ", lf_stage_name(s));
            first = false;
        }
    if (first)
        lf_buf_puts(out, "(none)");
}

void lf_definition_describe(const lf_definition_t *def, lf_buf_t *out)
{
    lf_buf_printf(out, "  definition %s version %lld\n", def->name,
                  (long long)def->version);
    lf_buf_puts(out, "  captured      unknown lead -> captured "
                     "(a known lead: a touch)\n");
    for (int e = FIRST_RULE; e <= LAST_RULE; e++) {
        const lf_rule_t *r = &def->rules[e];
        lf_buf_printf(out, "  %-13s ", lf_event_type_name((lf_event_type_t)e));
        describe_set(out, r->from);
        lf_buf_printf(out, " -> %s%s (otherwise: %s)\n", lf_stage_name(r->to),
                      e == LF_EV_SCORED ? " if score >= threshold" : "",
                      r->otherwise == LF_OTHERWISE_TOUCH ? "no stage change"
                                                         : "anomaly");
    }
    lf_buf_puts(out, "  new cycle     from ");
    describe_set(out, def->cycle_from);
    lf_buf_puts(out, " to ");
    describe_set(out, def->cycle_to);
    lf_buf_puts(out, "\n");
}
