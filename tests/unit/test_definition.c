/* test_definition.c: the funnel definition file: the embedded default is
 * today's rules, every error of a bad file names its JSON path and what is
 * wrong, the canonical form ignores order and spacing, and rules other than
 * today's (thresholds by model, otherwise, new_cycle) apply as written. */
#include "lf_definition.h"
#include "lf_embedded.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The default file with the first @p from replaced by @p to. */
static char *edited(const char *from, const char *to)
{
    const char *s = lf_embedded_funnel_default, *at = strstr(s, from);
    cr_assert(at, "\"%s\" is not in the default file", from);
    size_t n = strlen(s) - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
    return out;
}

static lf_definition_t *parse_edited(const char *from, const char *to,
                                     char *errstr, size_t size)
{
    char *text = edited(from, to);
    lf_definition_t *def =
        lf_definition_parse(text, strlen(text), errstr, size);
    free(text);
    return def;
}

Test(definition, default_is_todays_rules)
{
    const lf_definition_t *def = lf_definition_default();
    cr_assert_not_null(def);
    cr_assert_str_eq(def->name, "default");
    cr_assert_eq(def->version, 1);
    cr_assert_str_eq(lf_definition_label(def, LF_ST_MARKETING_QUALIFIED),
                     "MQL");
    cr_assert_str_eq(lf_definition_label(def, LF_ST_WON), "won");
    cr_assert(def->qualify_other.use_event);
    cr_assert_eq(def->model_count, 0);
    cr_assert_eq(def->rules[LF_EV_WON].from,
                 LF_STAGE_BIT(LF_ST_SALES_QUALIFIED));
    cr_assert_eq(def->rules[LF_EV_WON].to, LF_ST_WON);
    cr_assert_eq(def->rules[LF_EV_SCORED].otherwise, LF_OTHERWISE_TOUCH);
    cr_assert_eq(def->rules[LF_EV_LOST].otherwise, LF_OTHERWISE_ANOMALY);
    cr_assert_eq(def->cycle_from, LF_STAGE_BIT(LF_ST_NURTURE));
    cr_assert_eq(def->cycle_to, LF_STAGE_BIT(LF_ST_MARKETING_QUALIFIED) |
                                    LF_STAGE_BIT(LF_ST_HANDED_OFF));
}

/* The canonical form parses back to itself and ignores order and spaces. */
Test(definition, canonical_form)
{
    char errstr[256];
    const lf_definition_t *def = lf_definition_default();
    char *c = lf_definition_canonical(def);
    lf_definition_t *back =
        lf_definition_parse(c, strlen(c), errstr, sizeof(errstr));
    cr_assert_not_null(back, "%s", errstr);
    char *c2 = lf_definition_canonical(back);
    cr_assert_str_eq(c, c2);
    lf_definition_t *shuffled =
        parse_edited("[\"captured\", \"nurture\"]",
                     "[ \"nurture\",\"captured\" ]", errstr, sizeof(errstr));
    cr_assert_not_null(shuffled, "%s", errstr);
    char *c3 = lf_definition_canonical(shuffled);
    cr_assert_str_eq(c, c3);
    free(c);
    free(c2);
    free(c3);
    lf_definition_destroy(back);
    lf_definition_destroy(shuffled);
}

typedef struct bad_s {
    const char *from, *to; /* the edit to the default file */
    const char *error;     /* what the message must contain */
} bad_t;

/* clang-format off */
static bad_t bad_files[] = {
    {"\"name\": \"default\",", "", "(root): missing key \"name\""},
    {"\"name\": \"default\"", "\"name\": \"\"", "name: expected a non-empty string"},
    {"\"version\": 1", "\"version\": 0", "version: expected an integer >= 1"},
    {"\"version\": 1", "\"version\": \"1\"", "version: expected an integer >= 1"},
    {"\"version\": 1", "\"version\": 1, \"owner\": \"x\"", "(root): unknown key \"owner\""},
    {"\"labels\": {", "\"labels\": {\"mql\": \"x\", ", "labels.mql: unknown stage \"mql\""},
    {"\"MQL\"", "\"\"", "labels.marketing_qualified: expected a non-empty string"},
    {"\"MQL\"", "\"M\\nQL\"", "labels.marketing_qualified: expected a non-empty string without control characters"},
    {"\"name\": \"default\"", "\"name\": \"a\\tb\"", "name: expected a non-empty string without control characters"},
    {"\"name\": \"default\"", "\"name\": \"a\\u0085b\"", "name: expected a non-empty string without control characters"},
    {"\"MQL\"", "\"M\\u009fQL\"", "labels.marketing_qualified: expected a non-empty string without control characters"},
    {"{\"threshold\": \"event\"}", "{\"threshold\": {\"a\\nb\": 70}}", "qualify.threshold: a model name is a non-empty string without control characters"},
    {"{\"threshold\": \"event\"}", "{\"threshold\": {\"\": 70}}", "qualify.threshold: a model name is a non-empty string without control characters"},
    {"{\"threshold\": \"event\"}", "{\"threshold\": 1e12}", "qualify.threshold: bad threshold: 1000000000000 is beyond any score"},
    {"{\"threshold\": \"event\"}", "{\"threshold\": \"high\"}", "qualify.threshold: bad threshold"},
    {"{\"threshold\": \"event\"}", "{\"threshold\": 99999999999}", "qualify.threshold: bad threshold"},
    {"{\"threshold\": \"event\"}", "{\"threshold\": -1e300}", "qualify.threshold: bad threshold"},
    {"{\"threshold\": \"event\"}", "{\"threshold\": -5}", "qualify.threshold: bad threshold: -5 is negative"},
    {"{\"threshold\": \"event\"}", "{\"threshold\": {\"a\": -1.5}}", "qualify.threshold[\"a\"]: bad threshold: -1.5 is negative"},
    {"{\"threshold\": \"event\"}", "{\"threshold\": {\"fit-v2\": null, \"*\": 50}}", "qualify.threshold[\"fit-v2\"]: bad threshold"},
    {"{\"threshold\": \"event\"}", "{\"treshold\": 70}", "qualify: unknown key \"treshold\""},
    {"{\"threshold\": \"event\"}", "{}", "qualify: missing key \"threshold\""},
    {"\"event\": \"scored\"", "\"event\": \"score\"", "rules[0].event: unknown event \"score\""},
    {"\"event\": \"scored\"", "\"event\": \"merged\"", "rules[0].event: unknown event \"merged\""},
    {"\"event\": \"scored\"", "\"event\": \"captured\"", "rules[0].event: a rule for captured"},
    {"\"event\": \"accepted\"", "\"event\": \"handed_off\"", "rules[2].event: repeated rule: event \"handed_off\""},
    {"{\"event\": \"won\",", "{\"event\": \"won\", \"why\": 1,", "rules[5]: unknown key \"why\""},
    {"{\"event\": \"won\",          \"from\": [\"sales_qualified\"], \"to\": \"won\", \"otherwise\": \"anomaly\"},", "", "rules: missing rule for event \"won\""},
    {"\"from\": [\"handed_off\"]", "\"from\": []", "rules[2].from: empty"},
    {"\"from\": [\"handed_off\"]", "\"from\": \"handed_off\"", "rules[2].from: expected an array"},
    {"\"from\": [\"handed_off\"]", "\"from\": [\"handed_off\", \"handed_off\"]", "rules[2].from[1]: stage \"handed_off\" is listed twice"},
    {"\"from\": [\"handed_off\"]", "\"from\": [\"SAL\"]", "rules[2].from[0]: unknown stage \"SAL\""},
    {"\"to\": \"won\"", "\"to\": \"closed\"", "rules[5].to: unknown stage \"closed\""},
    {"\"to\": \"won\", \"otherwise\": \"anomaly\"", "\"to\": \"won\"", "rules[5]: missing key \"otherwise\""},
    {"\"to\": \"won\", \"otherwise\": \"anomaly\"", "\"to\": \"won\", \"otherwise\": \"ignore\"", "rules[5].otherwise: expected \"touch\" or \"anomaly\""},
    {"\"rules\": [", "\"rules\": [1, ", "rules[0]: expected an object"},
    {"\"new_cycle\": {\"from\": [\"nurture\"],", "\"new_cycle\": {", "new_cycle: missing key \"from\""},
    {"\"to\": [\"marketing_qualified\", \"handed_off\"]", "\"to\": [\"lead\"]", "new_cycle.to[0]: unknown stage \"lead\""},
    {"\"version\": 1,", "\"version\": 1, \"version\": 2,", "duplicate object key"},
    {"\"name\"", "name", "line 2 column"},
};
/* clang-format on */

/* One loop, not a parameterized test: the table holds pointers to string
 * literals, which do not survive Criterion's re-executed workers. */
Test(definition, bad_files)
{
    for (size_t i = 0; i < sizeof(bad_files) / sizeof(bad_files[0]); i++) {
        const bad_t *bad = &bad_files[i];
        char errstr[512] = "";
        lf_definition_t *def =
            parse_edited(bad->from, bad->to, errstr, sizeof(errstr));
        cr_assert_null(def, "accepted a file that should fail with %s",
                       bad->error);
        cr_assert(strstr(errstr, bad->error), "error \"%s\" lacks \"%s\"",
                  errstr, bad->error);
    }
}

Test(definition, not_an_object_nor_json)
{
    char errstr[256];
    cr_assert_null(lf_definition_parse("[]", 2, errstr, sizeof(errstr)));
    cr_assert_str_eq(errstr, "(root): expected an object");
    cr_assert_null(lf_definition_parse("", 0, errstr, sizeof(errstr)));
    cr_assert(strstr(errstr, "not valid JSON"), "%s", errstr);
}

Test(definition, load_names_the_file)
{
    char errstr[512];
    char path[] = "/tmp/test_definition_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fputs("{\"name\": \"x\"}", f);
    fclose(f);
    cr_assert_null(lf_definition_load(path, errstr, sizeof(errstr)));
    cr_assert(strstr(errstr, path) && strstr(errstr, "missing key \"version\""),
              "%s", errstr);
    unlink(path);
    cr_assert_null(lf_definition_load(path, errstr, sizeof(errstr)));
    cr_assert(strstr(errstr, "No such file"), "%s", errstr);
}

/* A huge file (or an endless one: /dev/zero, not tried here, took 24 GB
 * before the limit) is refused unread past the limit; a file of the
 * limit's size is read (and parsed). */
Test(definition, load_refuses_a_file_too_large)
{
    char errstr[512], path[] = "/tmp/test_definition_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");

    for (int i = 0; i < LF_DEFINITION_FILE_MAX; i++)
        fputc(' ', f);
    fclose(f);
    cr_assert_null(lf_definition_load(path, errstr, sizeof(errstr)));
    cr_expect(strstr(errstr, path) && !strstr(errstr, "larger than"), "%s",
              errstr);
    f = fopen(path, "a");
    fputc(' ', f);
    fclose(f);
    cr_assert_null(lf_definition_load(path, errstr, sizeof(errstr)));
    cr_expect(strstr(errstr, "larger than 1048576 bytes"), "%s", errstr);
    unlink(path);
}

/* A file saved with a UTF-8 byte order mark reads as the same file. */
Test(definition, load_skips_a_byte_order_mark)
{
    char errstr[512], path[] = "/tmp/test_definition_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fputs("\xef\xbb\xbf", f);
    fputs(lf_embedded_funnel_default, f);
    fclose(f);
    lf_definition_t *def = lf_definition_load(path, errstr, sizeof(errstr));
    unlink(path);
    cr_assert_not_null(def, "%s", errstr);
    char *a = lf_definition_canonical(def),
         *b = lf_definition_canonical(lf_definition_default());
    cr_expect_str_eq(a, b);
    free(a);
    free(b);
    lf_definition_destroy(def);
}

Test(definition, thresholds_by_model)
{
    char errstr[256];
    lf_definition_t *def = parse_edited(
        "{\"threshold\": \"event\"}",
        "{\"threshold\": {\"fit-v2\": 70, \"a\": \"event\", \"*\": 50}}",
        errstr, sizeof(errstr));
    cr_assert_not_null(def, "%s", errstr);
    cr_assert_eq(lf_definition_threshold(def, "fit-v2", 10), 70);
    cr_assert_eq(lf_definition_threshold(def, "a", 10), 10);
    cr_assert_eq(lf_definition_threshold(def, "other", 10), 50);
    cr_assert_eq(lf_definition_threshold(def, NULL, 10), 50);
    char *c = lf_definition_canonical(def);
    cr_assert(strstr(c, "\"threshold\":{\"*\":50,\"a\":\"event\","
                        "\"fit-v2\":70}"),
              "%s", c);
    free(c);
    lf_definition_destroy(def);
    /* A fraction means its ceiling (scores are integers); without "*" the
     * models not listed take the event's own threshold. */
    def = parse_edited("{\"threshold\": \"event\"}",
                       "{\"threshold\": {\"fit-v2\": 70.5}}", errstr,
                       sizeof(errstr));
    cr_assert_not_null(def, "%s", errstr);
    cr_assert_eq(lf_definition_threshold(def, "fit-v2", 10), 71);
    cr_assert_eq(lf_definition_threshold(def, "other", 10), 10);
    cr_assert_eq(lf_definition_threshold(def, NULL, 33), 33);
    lf_definition_destroy(def);
    def = parse_edited("{\"threshold\": \"event\"}", "{\"threshold\": 70.0}",
                       errstr, sizeof(errstr));
    cr_assert_not_null(def, "%s", errstr);
    cr_assert_eq(lf_definition_threshold(def, "x", 10), 70);
    lf_definition_destroy(def);
}
