/* test_json.c: the flat JSON mapping and the contract checks (lf_json,
 * lf_event): every validation error names its field, derived event ids. */
#include "lf_json.h"
#include "lf_json_int.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One valid event of every type; tests mutate them. */
#define ENV(type)                                                              \
    "\"event_id\":\"e-1\",\"lead_id\":\"L-1\",\"type\":\"" type "\","          \
    "\"occurred_at\":\"2026-03-01T09:30:00.250Z\",\"source\":\"crm\","         \
    "\"actor\":\"rule-1\""

static const char *base[] = {
    "{" ENV("captured") ",\"channel\":\"paid\",\"campaign\":\"spring\","
                        "\"attributes\":{\"utm\":\"x\"}}",
    "{" ENV("scored") ",\"score\":80,\"threshold\":50,\"model\":\"m1\"}",
    "{" ENV("handed_off") ",\"owner\":\"rep-7\",\"sla_hours\":24}",
    "{" ENV("accepted") ",\"owner\":\"rep-7\"}",
    "{" ENV("recycled") ",\"reason\":\"no_budget\",\"note\":\"q3\"}",
    "{" ENV("qualified") ",\"opportunity_id\":\"O-1\",\"amount_minor\":100,"
                         "\"currency\":\"EUR\"}",
    "{" ENV("won") ",\"amount_minor\":100,\"currency\":\"EUR\"}",
    "{" ENV("lost") ",\"reason\":\"price\"}",
    "{" ENV("disqualified") ",\"reason\":\"spam\"}",
    "{" ENV("merged") ",\"into_lead_id\":\"L-9\"}",
    "{" ENV("voided") ",\"voided_event_id\":"
                      "\"0b7e2d3c-1f4a-4c5b-8d6e-7f8091a2b3c4\","
                      "\"reason\":\"entered twice\"}",
    "{" ENV("erased") ",\"request_id\":\"DSR-1\"}",
};

/* base[type] with @p key set to the JSON text @p value (NULL: deleted).
 * Returns a string to free(). */
static char *mutate(lf_event_type_t type, const char *key, const char *value)
{
    json_error_t jerr;
    json_t *obj = json_loads(base[type], 0, &jerr);
    char *out;

    cr_assert_not_null(obj, "base %d: %s", type, jerr.text);
    if (!value) {
        json_object_del(obj, key);
    } else {
        json_t *v = json_loads(value, JSON_DECODE_ANY, &jerr);
        cr_assert_not_null(v, "value %s: %s", value, jerr.text);
        json_object_set_new(obj, key, v);
    }
    out = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    return out;
}

/* Parse @p text: must fail with LF_ERR_INVALID and an errstr containing
 * each non-NULL needle. */
static void expect_error(const char *what, const char *text, size_t len,
                         const char *n1, const char *n2)
{
    lf_event_t ev;
    char err[512] = "";
    lf_err_t rc = lf_json_parse_event(text, len, &ev, err, sizeof(err));

    cr_expect_eq(rc, LF_ERR_INVALID, "%s: accepted: %s", what, text);
    cr_expect(n1 == NULL || strstr(err, n1) != NULL,
              "%s: error \"%s\" lacks %s", what, err, n1);
    cr_expect(n2 == NULL || strstr(err, n2) != NULL,
              "%s: error \"%s\" lacks %s", what, err, n2);
    /* a failed parse leaves the event cleared */
    cr_expect_null(ev.event_id, "%s: event not cleared", what);
    cr_expect_null(ev.lead_id, "%s: event not cleared", what);
}

static void expect_error_s(const char *what, const char *text, const char *n1,
                           const char *n2)
{
    expect_error(what, text, strlen(text), n1, n2);
}

typedef struct mut_case_s {
    lf_event_type_t type;
    const char *key;
    const char *value; /* JSON text; NULL deletes the key */
    const char *n1, *n2;
} mut_case_t;

static void run_mut_cases(const mut_case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const mut_case_t *c = &cases[i];
        char what[160];
        char *text = mutate(c->type, c->key, c->value);
        snprintf(what, sizeof(what), "%s %s=%s", lf_event_type_name(c->type),
                 c->key, c->value ? c->value : "(deleted)");
        expect_error_s(what, text, c->n1, c->n2);
        free(text);
    }
}

#define RUN(cases) run_mut_cases(cases, sizeof(cases) / sizeof(cases[0]))

static void parse_ok(const char *text, lf_event_t *ev)
{
    char err[512] = "";
    cr_assert_eq(lf_json_parse_event(text, strlen(text), ev, err, sizeof(err)),
                 LF_OK, "rejected: %s\n  %s", err, text);
}

Test(json, every_base_event_is_valid)
{
    for (int t = 0; t < LF_EV__COUNT; t++) {
        lf_event_t ev;
        parse_ok(base[t], &ev);
        cr_expect_eq(ev.type, (lf_event_type_t)t);
        cr_expect_str_eq(ev.lead_id, "L-1");
        cr_expect_eq(ev.occurred_at, INT64_C(1772357400250));
        lf_event_clear(&ev);
    }
}

/* Contract v2: each check names its field. */
Test(json, contract_v2_fields)
{
    static const mut_case_t cases[] = {
        {LF_EV_LOST, "account_id", "\"\"", "field \"account_id\"", "empty"},
        {LF_EV_LOST, "account_id", "7", "field \"account_id\"", NULL},
        {LF_EV_CAPTURED, "account_id",
         "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
         "field \"account_id\"", NULL},
        {LF_EV_MERGED, "into_lead_id", NULL,
         "missing required field \"into_lead_id\"", NULL},
        {LF_EV_MERGED, "into_lead_id", "\"L-1\"", "field \"into_lead_id\"",
         NULL},
        {LF_EV_MERGED, "into_lead_id", "\"\"", "field \"into_lead_id\"", NULL},
        {LF_EV_VOIDED, "voided_event_id", "\"\"", "field \"voided_event_id\"",
         "empty"},
        {LF_EV_VOIDED, "voided_event_id",
         "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
         "field \"voided_event_id\"", NULL},
        {LF_EV_VOIDED, "voided_event_id", NULL,
         "missing required field \"voided_event_id\"", NULL},
        {LF_EV_VOIDED, "reason", "\"\"", "field \"reason\"", NULL},
        {LF_EV_VOIDED, "reason", NULL, "missing required field \"reason\"",
         NULL},
        {LF_EV_ERASED, "request_id", "\"\"", "field \"request_id\"", NULL},
        {LF_EV_ERASED, "request_id", NULL,
         "missing required field \"request_id\"", NULL},
        {LF_EV_ERASED, "reason", "\"x\"", "reason", NULL},
        {LF_EV_LOST, "into_lead_id", "\"L-9\"", "into_lead_id", NULL},
    };
    lf_event_t ev;
    lf_buf_t out = {0};

    RUN(cases);
    /* account_id on every type, and the writer writes it back */
    for (int t = 0; t < LF_EV__COUNT; t++) {
        char *text = mutate((lf_event_type_t)t, "account_id", "\"ACME\"");
        parse_ok(text, &ev);
        cr_expect_str_eq(ev.account_id, "ACME");
        lf_buf_reset(&out);
        cr_assert_eq(lf_json_format_event(&ev, &out), LF_OK);
        cr_expect(strstr(out.data, "\"actor\":\"rule-1\",\"account_id\":"
                                   "\"ACME\","),
                  "%s", out.data);
        lf_event_clear(&ev);
        free(text);
    }
    /* A void names any event id the contract takes, a producer's own
     * ids as well as UUIDs. */
    char *own = mutate(LF_EV_VOIDED, "voided_event_id", "\"e-1\"");
    parse_ok(own, &ev);
    cr_expect_str_eq(ev.u.voided.voided_event_id, "e-1");
    lf_event_clear(&ev);
    free(own);
    parse_ok(base[LF_EV_VOIDED], &ev);
    lf_buf_reset(&out);
    cr_assert_eq(lf_json_format_event(&ev, &out), LF_OK);
    cr_expect(strstr(out.data, "\"voided_event_id\":\"0b7e2d3c-1f4a-4c5b-"
                               "8d6e-7f8091a2b3c4\",\"reason\":\"entered "
                               "twice\"}"),
              "%s", out.data);
    lf_event_clear(&ev);
    lf_buf_free(&out);
}

Test(json, missing_required_field)
{
    static const mut_case_t cases[] = {
        {LF_EV_CAPTURED, "lead_id", NULL, "missing required field \"lead_id\"",
         NULL},
        {LF_EV_CAPTURED, "type", NULL, "missing required field \"type\"", NULL},
        {LF_EV_CAPTURED, "occurred_at", NULL,
         "missing required field \"occurred_at\"", NULL},
        {LF_EV_CAPTURED, "source", NULL, "missing required field \"source\"",
         NULL},
        {LF_EV_CAPTURED, "channel", NULL, "missing required field \"channel\"",
         NULL},
        {LF_EV_SCORED, "score", NULL, "missing required field \"score\"", NULL},
        {LF_EV_SCORED, "threshold", NULL,
         "missing required field \"threshold\"", NULL},
        {LF_EV_SCORED, "model", NULL, "missing required field \"model\"", NULL},
        {LF_EV_HANDED_OFF, "owner", NULL, "missing required field \"owner\"",
         NULL},
        {LF_EV_HANDED_OFF, "sla_hours", NULL,
         "missing required field \"sla_hours\"", NULL},
        {LF_EV_ACCEPTED, "owner", NULL, "missing required field \"owner\"",
         NULL},
        {LF_EV_RECYCLED, "reason", NULL, "missing required field \"reason\"",
         NULL},
        {LF_EV_QUALIFIED, "opportunity_id", NULL,
         "missing required field \"opportunity_id\"", NULL},
        {LF_EV_QUALIFIED, "amount_minor", NULL,
         "missing required field \"amount_minor\"", NULL},
        {LF_EV_QUALIFIED, "currency", NULL,
         "missing required field \"currency\"", NULL},
        {LF_EV_WON, "amount_minor", NULL,
         "missing required field \"amount_minor\"", NULL},
        {LF_EV_WON, "currency", NULL, "missing required field \"currency\"",
         NULL},
        {LF_EV_LOST, "reason", NULL, "missing required field \"reason\"", NULL},
        {LF_EV_DISQUALIFIED, "reason", NULL,
         "missing required field \"reason\"", NULL},
        /* null is absence for a required string */
        {LF_EV_LOST, "source", "null", "missing required field \"source\"",
         NULL},
    };
    RUN(cases);
}

Test(json, optional_fields_may_be_missing_or_null)
{
    static const struct {
        lf_event_type_t type;
        const char *key, *value;
    } cases[] = {
        {LF_EV_CAPTURED, "event_id", NULL},
        {LF_EV_CAPTURED, "actor", NULL},
        {LF_EV_CAPTURED, "actor", "null"},
        {LF_EV_CAPTURED, "campaign", NULL},
        {LF_EV_CAPTURED, "campaign", "null"},
        {LF_EV_CAPTURED, "attributes", NULL},
        {LF_EV_CAPTURED, "attributes", "{}"},
        {LF_EV_CAPTURED, "attributes", "null"},
        {LF_EV_RECYCLED, "note", NULL},
        {LF_EV_RECYCLED, "note", "null"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        lf_event_t ev;
        char *text = mutate(cases[i].type, cases[i].key, cases[i].value);
        parse_ok(text, &ev);
        if (!strcmp(cases[i].key, "actor"))
            cr_expect_null(ev.actor);
        if (!strcmp(cases[i].key, "campaign"))
            cr_expect_null(ev.u.captured.campaign);
        if (!strcmp(cases[i].key, "attributes"))
            cr_expect_eq(ev.u.captured.attr_count, 0);
        if (!strcmp(cases[i].key, "note"))
            cr_expect_null(ev.u.recycled.note);
        lf_event_clear(&ev);
        free(text);
    }
}

Test(json, unknown_key)
{
    static const mut_case_t cases[] = {
        {LF_EV_SCORED, "colour", "\"red\"", "unknown field \"colour\"", NULL},
        {LF_EV_CAPTURED, "Lead_id", "\"L\"", "unknown field \"Lead_id\"", NULL},
        {LF_EV_WON, "kafka", "{}", "unknown field \"kafka\"", NULL},
    };
    RUN(cases);
}

Test(json, wrong_type)
{
    static const mut_case_t cases[] = {
        {LF_EV_SCORED, "score", "\"high\"", "field \"score\"", "\"high\""},
        {LF_EV_SCORED, "threshold", "1.5", "field \"threshold\"", "integer"},
        {LF_EV_SCORED, "lead_id", "17", "field \"lead_id\"", "string"},
        {LF_EV_SCORED, "event_id", "{}", "field \"event_id\"", "string"},
        {LF_EV_SCORED, "source", "[\"crm\"]", "field \"source\"", "string"},
        {LF_EV_SCORED, "actor", "5", "field \"actor\"", "string"},
        {LF_EV_SCORED, "type", "3", "field \"type\"", "string"},
        {LF_EV_SCORED, "model", "true", "field \"model\"", "string"},
        {LF_EV_SCORED, "occurred_at", "true", "field \"occurred_at\"", NULL},
        {LF_EV_SCORED, "occurred_at", "1.5", "field \"occurred_at\"", NULL},
        {LF_EV_SCORED, "occurred_at", "\"yesterday\"", "field \"occurred_at\"",
         "RFC 3339"},
        {LF_EV_CAPTURED, "attributes", "[]", "field \"attributes\"", NULL},
        {LF_EV_CAPTURED, "attributes", "{\"a\":1}", "field \"attributes\"",
         "\"a\""},
        {LF_EV_CAPTURED, "campaign", "[]", "field \"campaign\"", NULL},
        {LF_EV_HANDED_OFF, "sla_hours", "true", "field \"sla_hours\"", NULL},
        {LF_EV_RECYCLED, "reason", "3", "field \"reason\"", NULL},
        {LF_EV_RECYCLED, "note", "false", "field \"note\"", NULL},
        {LF_EV_QUALIFIED, "amount_minor", "\"100\"", "field \"amount_minor\"",
         NULL},
        {LF_EV_WON, "currency", "978", "field \"currency\"", NULL},
        /* enumerations: unknown symbols */
        {LF_EV_SCORED, "type", "\"bought\"", "field \"type\"", "\"bought\""},
        {LF_EV_SCORED, "type", "\"SCORED\"", "field \"type\"", NULL},
        {LF_EV_RECYCLED, "reason", "\"because\"", "field \"reason\"",
         "\"because\""},
        {LF_EV_RECYCLED, "reason", "\"NO_BUDGET\"", "field \"reason\"", NULL},
        /* integers beyond the Avro int */
        {LF_EV_SCORED, "score", "2147483648", "field \"score\"", "range"},
        {LF_EV_HANDED_OFF, "sla_hours", "4294967296", "field \"sla_hours\"",
         "range"},
    };
    RUN(cases);
}

Test(json, not_an_object_or_not_json)
{
    expect_error_s("array", "[1,2]", "JSON object", NULL);
    expect_error_s("string", "\"x\"", "invalid JSON", NULL);
    expect_error_s("truncated", "{\"lead_id\":", "invalid JSON", NULL);
    expect_error_s("empty", "", "invalid JSON", NULL);
    expect_error_s("two objects", "{} {}", "invalid JSON", NULL);
}

/* Text after a whole object belongs to no field: the reason names none
 * (it named the object's last key). */
Test(json, trailing_text_names_no_field)
{
    lf_event_t ev;
    char err[512] = "";
    const char *text = "{\"lead_id\":\"L-1\",\"type\":\"captured\","
                       "\"occurred_at\":0,\"source\":\"s\",\"channel\":"
                       "\"web\"} x";

    cr_assert_eq(lf_json_parse_event(text, strlen(text), &ev, err, sizeof(err)),
                 LF_ERR_INVALID);
    cr_expect(strstr(err, "end of file expected") && !strstr(err, "field"),
              "%s", err);
}

/* A line cut short after a whole field: the field is not to blame (it
 * was named, as the last key before the end). */
Test(json, line_cut_short_names_no_field)
{
    lf_event_t ev;
    char err[512] = "";
    const char *text = "{\"lead_id\":\"E-2\",\"type\":\"captured\"";

    cr_assert_eq(lf_json_parse_event(text, strlen(text), &ev, err, sizeof(err)),
                 LF_ERR_INVALID);
    cr_expect(strstr(err, "'}' expected near end of file") &&
                  !strstr(err, "field"),
              "%s", err);
}

Test(json, duplicate_key)
{
    const char *text = "{\"event_id\":\"e-1\",\"lead_id\":\"L-1\",\"lead_id\":"
                       "\"L-2\",\"type\":\"accepted\",\"occurred_at\":0,"
                       "\"source\":\"crm\",\"owner\":\"o\"}";
    expect_error_s("duplicate lead_id", text, "\"lead_id\"", "duplicate");
}

Test(json, payload_field_of_another_type)
{
    static const mut_case_t cases[] = {
        {LF_EV_SCORED, "owner", "\"rep-7\"", "field \"owner\"", "handed_off"},
        {LF_EV_CAPTURED, "score", "5", "field \"score\"", "scored"},
        {LF_EV_WON, "channel", "\"paid\"", "field \"channel\"", "captured"},
        {LF_EV_ACCEPTED, "sla_hours", "5", "field \"sla_hours\"", "accepted"},
        {LF_EV_LOST, "note", "\"n\"", "field \"note\"", "recycled"},
        {LF_EV_WON, "opportunity_id", "\"O\"", "field \"opportunity_id\"",
         "qualified"},
        {LF_EV_ACCEPTED, "reason", "\"x\"", "field \"reason\"", "accepted"},
    };
    RUN(cases);
}

static char *repeat(const char *unit, int n)
{
    size_t ul = strlen(unit);
    char *s = malloc(ul * (size_t)n + 3);
    s[0] = '"';
    for (int i = 0; i < n; i++)
        memcpy(s + 1 + ul * (size_t)i, unit, ul);
    strcpy(s + 1 + ul * (size_t)n, "\"");
    return s;
}

Test(json, lead_id_length)
{
    static const mut_case_t cases[] = {
        {LF_EV_ACCEPTED, "lead_id", "\"\"", "field \"lead_id\"", "empty"},
    };
    RUN(cases);

    /* 128 bytes pass, 129 fail, counting bytes of UTF-8, not characters */
    static const struct {
        const char *unit;
        int n;
        bool ok;
    } len_cases[] = {
        {"x", 128, true},
        {"x", 129, false},
        {"\xf0\x9f\x98\x80", 32, true}, /* 32 emoji = 128 bytes */
        {"\xe2\x82\xac", 43, false},    /* 43 euro signs = 129 bytes */
        {"x", 1, true},
    };
    for (size_t i = 0; i < sizeof(len_cases) / sizeof(len_cases[0]); i++) {
        char *v = repeat(len_cases[i].unit, len_cases[i].n);
        char *text = mutate(LF_EV_ACCEPTED, "lead_id", v);
        if (len_cases[i].ok) {
            lf_event_t ev;
            parse_ok(text, &ev);
            cr_expect_eq(strlen(ev.lead_id),
                         strlen(len_cases[i].unit) * (size_t)len_cases[i].n);
            lf_event_clear(&ev);
        } else {
            expect_error_s("long lead_id", text, "field \"lead_id\"", "129");
        }
        free(text);
        free(v);
    }
}

Test(json, negative_numbers)
{
    static const mut_case_t cases[] = {
        {LF_EV_SCORED, "score", "-1", "field \"score\"", "negative"},
        {LF_EV_SCORED, "threshold", "-1", "field \"threshold\"", "negative"},
        {LF_EV_SCORED, "score", "-2147483648", "field \"score\"", "negative"},
        {LF_EV_HANDED_OFF, "sla_hours", "-24", "field \"sla_hours\"",
         "negative"},
        {LF_EV_QUALIFIED, "amount_minor", "-1", "field \"amount_minor\"",
         "negative"},
        {LF_EV_WON, "amount_minor", "-100", "field \"amount_minor\"",
         "negative"},
        {LF_EV_WON, "amount_minor", "-9223372036854775808",
         "field \"amount_minor\"", "negative"},
    };
    RUN(cases);
}

Test(json, currency_not_iso4217)
{
    static const char *bad[] = {
        "\"usd\"", "\"US\"",  "\"USDX\"", "\"U$D\"",
        "\"\"",    "\"Eur\"", "\"E1R\"",  "\"\xe2\x82\xac\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const mut_case_t cases[] = {
            {LF_EV_QUALIFIED, "currency", bad[i], "field \"currency\"",
             "ISO 4217"},
            {LF_EV_WON, "currency", bad[i], "field \"currency\"", "ISO 4217"},
        };
        RUN(cases);
    }
}

/* Raw bytes that are not UTF-8 inside a JSON string: the error must name
 * the field the bytes are in. Built by hand: jansson would not write them. */
Test(json, invalid_utf8)
{
#define CAP(fields) "{\"type\":\"captured\",\"occurred_at\":0," fields "}"
    static const struct {
        const char *field;
        const char *text;
    } cases[] = {
        /* never valid */
        {"lead_id", CAP("\"lead_id\":\"L-\xff\",\"source\":\"s\","
                        "\"channel\":\"c\"")},
        /* overlong '/' */
        {"source", CAP("\"lead_id\":\"L\",\"source\":\"\xc0\xaf\","
                       "\"channel\":\"c\"")},
        /* UTF-16 surrogate */
        {"channel", CAP("\"lead_id\":\"L\",\"source\":\"s\","
                        "\"channel\":\"a\xed\xa0\x80z\"")},
        /* truncated sequence */
        {"campaign", CAP("\"lead_id\":\"L\",\"source\":\"s\","
                         "\"channel\":\"c\",\"campaign\":\"\xe2\x82\"")},
        /* beyond U+10FFFF */
        {"actor", CAP("\"lead_id\":\"L\",\"source\":\"s\",\"actor\":"
                      "\"\xf4\x90\x80\x80\",\"channel\":\"c\"")},
        /* bare continuation byte in a map value */
        {"attributes",
         CAP("\"lead_id\":\"L\",\"source\":\"s\","
             "\"channel\":\"c\",\"attributes\":{\"k\":\"\x80\"}")},
    };
#undef CAP
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char want[64];
        snprintf(want, sizeof(want), "field \"%s\"", cases[i].field);
        expect_error(cases[i].field, cases[i].text, strlen(cases[i].text), want,
                     "UTF-8");
    }
}

Test(json, nul_in_string)
{
    const char *text = "{\"lead_id\":\"L\\u0000x\",\"type\":\"accepted\","
                       "\"occurred_at\":0,\"source\":\"s\",\"owner\":\"o\"}";
    expect_error_s("\\u0000 in lead_id", text, "\"lead_id\"", NULL);
}

Test(json, timestamps_out_of_range)
{
    static const mut_case_t cases[] = {
        {LF_EV_ACCEPTED, "occurred_at", "\"1969-12-31T23:59:59.999Z\"",
         "field \"occurred_at\"", "1970"},
        {LF_EV_ACCEPTED, "occurred_at", "-1", "field \"occurred_at\"", "1970"},
        {LF_EV_ACCEPTED, "occurred_at", "\"1970-01-01T05:00:00+05:01\"",
         "field \"occurred_at\"", "1970"},
        {LF_EV_ACCEPTED, "occurred_at", "\"0000-01-01T00:00:00Z\"",
         "field \"occurred_at\"", NULL},
        {LF_EV_ACCEPTED, "occurred_at", "253402300800000",
         "field \"occurred_at\"", "9999"},
        {LF_EV_ACCEPTED, "occurred_at", "\"9999-12-31T23:59:59.999-00:01\"",
         "field \"occurred_at\"", "9999"},
        {LF_EV_ACCEPTED, "occurred_at", "\"10000-01-01T00:00:00Z\"",
         "field \"occurred_at\"", NULL},
        {LF_EV_ACCEPTED, "occurred_at", "9223372036854775807",
         "field \"occurred_at\"", NULL},
    };
    RUN(cases);

    /* both ends of the range are accepted */
    static const struct {
        const char *v;
        int64_t ms;
    } ok[] = {{"0", 0},
              {"\"1970-01-01T00:00:00Z\"", 0},
              {"\"1970-01-01T05:30:00+05:30\"", 0},
              {"253402300799999", INT64_C(253402300799999)},
              {"\"9999-12-31T23:59:59.999Z\"", INT64_C(253402300799999)}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        lf_event_t ev;
        char *text = mutate(LF_EV_ACCEPTED, "occurred_at", ok[i].v);
        parse_ok(text, &ev);
        cr_expect_eq(ev.occurred_at, ok[i].ms, "%s", ok[i].v);
        lf_event_clear(&ev);
        free(text);
    }
}

/* ---- derived event ids ------------------------------------------------ */

static char *derive(const char *text)
{
    lf_event_t ev;
    char *id;
    parse_ok(text, &ev);
    id = strdup(ev.event_id);
    lf_event_clear(&ev);
    return id;
}

#define ACC_A                                                                  \
    "{\"lead_id\":\"L-1\",\"type\":\"accepted\",\"occurred_at\":"              \
    "\"2026-03-01T09:30:00.250Z\",\"source\":\"crm\",\"owner\":\"rep-7\"}"

Test(json, derived_event_id_is_v5_and_pinned)
{
    char *id = derive(ACC_A);

    cr_expect_eq(strlen(id), 36);
    cr_expect_eq(id[14], '5', "%s is not a v5 UUID", id);
    cr_expect(strchr("89ab", id[19]) != NULL, "%s: bad variant", id);
    /* Python: uuid5(UUID("6b3e1f52-9c4d-4a8e-b217-5e900d61c83a"), the
     * canonical JSON). Pinned: a change here re-keys every re-sent event. */
    cr_expect_str_eq(id, "e4ba033d-d1cc-5091-9430-5788e3b79232");
    free(id);
}

Test(json, derived_event_id_ignores_key_order_and_form)
{
    static const char *same[] = {
        ACC_A,
        "{\"owner\":\"rep-7\",\"source\":\"crm\",\"occurred_at\":"
        "\"2026-03-01T09:30:00.250Z\",\"type\":\"accepted\",\"lead_id\":"
        "\"L-1\"}",
        /* the same instant as epoch ms and with an offset */
        "{\"lead_id\":\"L-1\",\"type\":\"accepted\",\"occurred_at\":"
        "1772357400250,\"source\":\"crm\",\"owner\":\"rep-7\"}",
        "{\"lead_id\":\"L-1\",\"type\":\"accepted\",\"occurred_at\":"
        "\"2026-03-01T11:30:00.250+02:00\",\"source\":\"crm\",\"owner\":"
        "\"rep-7\",\"actor\":null}",
        /* dumps add _kafka: ignored, also for the id */
        "{\"_kafka\":{\"topic\":\"lead-events\",\"partition\":3,\"offset\":17},"
        "\"lead_id\":\"L-1\",\"type\":\"accepted\",\"occurred_at\":"
        "\"2026-03-01T09:30:00.250Z\",\"source\":\"crm\",\"owner\":\"rep-7\"}",
        /* the same text with whitespace */
        " { \"lead_id\" : \"L-1\" , \"type\":\"accepted\",\"occurred_at\":"
        "\"2026-03-01T09:30:00.250Z\",\"source\":\"crm\",\"owner\":"
        "\"rep\\u002d7\"}\n",
    };
    char *want = derive(same[0]);
    for (size_t i = 1; i < sizeof(same) / sizeof(same[0]); i++) {
        char *id = derive(same[i]);
        cr_expect_str_eq(id, want, "variant %zu: %s", i, same[i]);
        free(id);
    }
    free(want);
}

Test(json, derived_event_id_changes_with_content)
{
    static const char *changed[] = {
        /* owner */
        "{\"lead_id\":\"L-1\",\"type\":\"accepted\",\"occurred_at\":"
        "\"2026-03-01T09:30:00.250Z\",\"source\":\"crm\",\"owner\":\"rep-8\"}",
        /* one millisecond later */
        "{\"lead_id\":\"L-1\",\"type\":\"accepted\",\"occurred_at\":"
        "\"2026-03-01T09:30:00.251Z\",\"source\":\"crm\",\"owner\":\"rep-7\"}",
        /* lead */
        "{\"lead_id\":\"L-2\",\"type\":\"accepted\",\"occurred_at\":"
        "\"2026-03-01T09:30:00.250Z\",\"source\":\"crm\",\"owner\":\"rep-7\"}",
        /* an actor appears */
        "{\"lead_id\":\"L-1\",\"type\":\"accepted\",\"occurred_at\":"
        "\"2026-03-01T09:30:00.250Z\",\"source\":\"crm\",\"owner\":\"rep-7\","
        "\"actor\":\"u\"}",
    };
    char *want = derive(ACC_A);
    for (size_t i = 0; i < sizeof(changed) / sizeof(changed[0]); i++) {
        char *id = derive(changed[i]);
        cr_expect_str_neq(id, want, "variant %zu kept the id: %s", i,
                          changed[i]);
        free(id);
    }
    free(want);
}

Test(json, derived_event_id_attributes)
{
    char *a = derive("{\"lead_id\":\"L\",\"type\":\"captured\",\"occurred_at\""
                     ":0,\"source\":\"s\",\"channel\":\"c\",\"attributes\":{"
                     "\"a\":\"1\",\"b\":\"2\"}}");
    char *b = derive("{\"lead_id\":\"L\",\"type\":\"captured\",\"occurred_at\""
                     ":0,\"source\":\"s\",\"channel\":\"c\",\"attributes\":{"
                     "\"b\":\"2\",\"a\":\"1\"}}");
    char *c = derive("{\"lead_id\":\"L\",\"type\":\"captured\",\"occurred_at\""
                     ":0,\"source\":\"s\",\"channel\":\"c\",\"attributes\":{"
                     "\"a\":\"1\",\"b\":\"3\"}}");
    cr_expect_str_eq(a, b);
    cr_expect_str_neq(a, c);
    free(a);
    free(b);
    free(c);
}

Test(json, explicit_event_id_is_kept)
{
    lf_event_t ev;
    parse_ok("{\"event_id\":\"6f1c0000-0000-4000-8000-000000000001\","
             "\"lead_id\":\"L\",\"type\":\"lost\",\"occurred_at\":0,"
             "\"source\":\"s\",\"reason\":\"r\"}",
             &ev);
    cr_expect_str_eq(ev.event_id, "6f1c0000-0000-4000-8000-000000000001");
    lf_event_clear(&ev);
    expect_error_s("empty event_id",
                   "{\"event_id\":\"\",\"lead_id\":\"L\",\"type\":\"lost\","
                   "\"occurred_at\":0,\"source\":\"s\",\"reason\":\"r\"}",
                   "field \"event_id\"", NULL);
}

Test(json, kafka_key_ignored)
{
    lf_event_t ev;
    lf_buf_t out = {0};
    parse_ok("{\"_kafka\":{\"partition\":1,\"offset\":5,\"key\":\"L\"},"
             "\"event_id\":\"e\",\"lead_id\":\"L\",\"type\":\"lost\","
             "\"occurred_at\":0,\"source\":\"s\",\"reason\":\"r\"}",
             &ev);
    cr_assert_eq(lf_json_format_event(&ev, &out), LF_OK);
    cr_expect_str_eq(out.data,
                     "{\"event_id\":\"e\",\"lead_id\":\"L\",\"type\":\"lost\","
                     "\"occurred_at\":\"1970-01-01T00:00:00.000Z\","
                     "\"source\":\"s\",\"reason\":\"r\"}");
    lf_buf_free(&out);
    lf_event_clear(&ev);
}

/* ---- formatting ------------------------------------------------------- */

Test(json, append_string_escapes)
{
    static const struct {
        const char *in;
        size_t len;
        const char *out;
    } cases[] = {
        {"plain", 5, "\"plain\""},
        {"", 0, "\"\""},
        {"q\"b\\", 4, "\"q\\\"b\\\\\""},
        {"t\tn\nr\r", 6, "\"t\\tn\\nr\\r\""},
        {"\x01\x1f\x7f", 3, "\"\\u0001\\u001f\x7f\""},
        {"\b\f", 2, "\"\\u0008\\u000c\""},
        {"/", 1, "\"/\""},
        {"\xc3\xa9\xf0\x9f\x98\x80", 6, "\"\xc3\xa9\xf0\x9f\x98\x80\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        lf_buf_t out = {0};
        cr_assert_eq(lf_json_append_string(&out, cases[i].in, cases[i].len),
                     LF_OK);
        cr_expect_str_eq(out.data, cases[i].out, "case %zu: %s", i, out.data);
        lf_buf_free(&out);
    }
}

Test(json, format_schema_order_and_omissions)
{
    lf_event_t ev;
    lf_buf_t out = {0};

    parse_ok("{\"attributes\":{},\"campaign\":null,\"channel\":\"web\","
             "\"actor\":null,\"source\":\"forms\",\"occurred_at\":1,"
             "\"type\":\"captured\",\"lead_id\":\"L\",\"event_id\":\"e\"}",
             &ev);
    cr_assert_eq(lf_json_format_event(&ev, &out), LF_OK);
    cr_expect_str_eq(out.data,
                     "{\"event_id\":\"e\",\"lead_id\":\"L\",\"type\":"
                     "\"captured\",\"occurred_at\":\"1970-01-01T00:00:00.001Z\""
                     ",\"source\":\"forms\",\"channel\":\"web\"}");
    lf_buf_free(&out);
    lf_event_clear(&ev);
}

Test(json, every_recycle_reason)
{
    for (int r = 0; r < LF_RR__COUNT; r++) {
        char v[40], *text;
        lf_event_t ev;
        lf_buf_t out = {0};
        snprintf(v, sizeof(v), "\"%s\"",
                 lf_recycle_reason_name((lf_recycle_reason_t)r));
        text = mutate(LF_EV_RECYCLED, "reason", v);
        parse_ok(text, &ev);
        cr_expect_eq(ev.u.recycled.reason, (lf_recycle_reason_t)r);
        lf_json_format_event(&ev, &out);
        cr_expect(strstr(out.data, v) != NULL, "%s not in %s", v, out.data);
        lf_buf_free(&out);
        lf_event_clear(&ev);
        free(text);
    }
    cr_expect_str_eq(lf_recycle_reason_name(LF_RR_NO_BUDGET), "no_budget");
    cr_expect_str_eq(lf_recycle_reason_symbol(LF_RR_NO_BUDGET), "NO_BUDGET");
    cr_expect_eq(lf_recycle_reason_parse("bad_timing"), LF_RR_BAD_TIMING);
    cr_expect_eq(lf_recycle_reason_parse("BAD_TIMING"), -1);
    cr_expect_str_eq(lf_event_type_name(LF_EV_HANDED_OFF), "handed_off");
    cr_expect_str_eq(lf_event_type_symbol(LF_EV_HANDED_OFF), "HANDED_OFF");
    cr_expect_str_eq(lf_event_type_name((lf_event_type_t)99), "?");
}

/* ---- lf_event_validate on events built in C --------------------------- */

Test(json, validate_model_directly)
{
    lf_event_t ev;
    char err[256];

    lf_event_init(&ev);
    ev.type = LF_EV_ACCEPTED;
    ev.event_id = "e";
    ev.lead_id = "L";
    ev.source = "s";
    ev.u.accepted.owner = "o";
    cr_expect_eq(lf_event_validate(&ev, err, sizeof(err)), LF_OK, "%s", err);

    ev.u.accepted.owner = "o\xff";
    cr_expect_eq(lf_event_validate(&ev, err, sizeof(err)), LF_ERR_INVALID);
    cr_expect(strstr(err, "\"owner\"") && strstr(err, "UTF-8"), "%s", err);
    ev.u.accepted.owner = NULL;
    cr_expect_eq(lf_event_validate(&ev, err, sizeof(err)), LF_ERR_INVALID);
    cr_expect(strstr(err, "\"owner\""), "%s", err);
    ev.u.accepted.owner = "o";

    ev.type = (lf_event_type_t)LF_EV__COUNT;
    cr_expect_eq(lf_event_validate(&ev, err, sizeof(err)), LF_ERR_INVALID);
    cr_expect(strstr(err, "\"type\""), "%s", err);
    /* no lf_event_clear: the strings are literals */
}

Test(json, utf8_validator)
{
    static const struct {
        const char *s;
        bool ok;
    } cases[] = {
        {"", true},
        {"ascii", true},
        {"\xc2\x80", true},
        {"\xdf\xbf", true},
        {"\xe0\xa0\x80", true},
        {"\xef\xbf\xbf", true},
        {"\xf0\x90\x80\x80", true},
        {"\xf4\x8f\xbf\xbf", true},
        {"\x80", false},
        {"\xc1\xbf", false},         /* overlong */
        {"\xe0\x9f\xbf", false},     /* overlong */
        {"\xf0\x8f\xbf\xbf", false}, /* overlong */
        {"\xed\xa0\x80", false},     /* surrogate */
        {"\xf4\x90\x80\x80", false}, /* > U+10FFFF */
        {"\xf5\x80\x80\x80", false},
        {"\xe2\x82", false},
        {"\xc3", false},
        {"\xc3(", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_expect_eq(lf_utf8_valid(cases[i].s, strlen(cases[i].s)), cases[i].ok,
                     "case %zu", i);
}

/* Both paths on @p text: the same event, or the same error. */
static void expect_paths_agree(const char *text)
{
    lf_event_t a, b;
    char ea[512] = "", eb[512] = "";
    size_t len = strlen(text);
    lf_err_t ra = lf_json_parse_event(text, len, &a, ea, sizeof(ea));
    lf_err_t rb = lf_json_parse_event_jansson(text, len, &b, eb, sizeof(eb));

    cr_assert_eq(ra, rb, "%s: fast path %d (%s), jansson %d (%s)", text, ra, ea,
                 rb, eb);
    if (ra)
        cr_assert_str_eq(ea, eb, "%s: different errors", text);
    else
        cr_assert(lf_event_equal(&a, &b), "%s: different events", text);
    lf_event_clear(&a);
    lf_event_clear(&b);
}

/* Lines on the edges of the fast path (lf_json.c): what it reads itself
 * and what it must leave to jansson. Each line: the same outcome both ways. */
Test(json, fast_path_agrees_with_jansson)
{
    static const char *env = "\"lead_id\":\"L-1\",\"occurred_at\":"
                             "\"2026-03-01T09:30:00Z\",\"source\":\"crm\"";
    static const char *tails[] = {
        /* plain, whitespace, escapes */
        "\"type\":\"lost\",\"reason\":\"price\"}",
        "\"type\" : \"lost\" ,\r\n\t\"reason\":\"price\" } \n",
        "\"type\":\"lost\",\"reason\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"}",
        "\"type\":\"lost\",\"reason\":\"\\u00e9\\u20AC\\u0041\\u001f\"}",
        "\"type\":\"lost\",\"reason\":\"\\ud83d\\ude00\"}",
        "\"type\":\"lost\",\"reason\":\"\\ud83d\"}",
        "\"type\":\"lost\",\"reason\":\"\\u0000\"}",
        "\"type\":\"lost\",\"reason\":\"\\u00g0\"}",
        "\"type\":\"lost\",\"reason\":\"\\x\"}",
        "\"type\":\"lost\",\"reason\":\"tab\there\"}",
        "\"type\":\"lost\",\"reason\":\"caf\xc3\xa9\"}",
        "\"type\":\"lost\",\"reason\":\"bad \xc3\"}",
        "\"type\":\"lost\",\"reason\":\"\"}",
        "\"type\":\"lost\",\"reason\":\"price\"",
        "\"type\":\"lost\",\"reason\":\"price}",
        "\"type\":\"lost\",\"reason\":\"price\"}x",
        "\"type\":\"lost\",\"reason\":\"price\"}}",
        "\"type\":\"lost\",\"reason\":\"price\",}",
        /* integers */
        "\"type\":\"won\",\"amount_minor\":0,\"currency\":\"EUR\"}",
        "\"type\":\"won\",\"amount_minor\":-0,\"currency\":\"EUR\"}",
        "\"type\":\"won\",\"amount_minor\":-5,\"currency\":\"EUR\"}",
        "\"type\":\"won\",\"amount_minor\":012,\"currency\":\"EUR\"}",
        "\"type\":\"won\",\"amount_minor\":1.0,\"currency\":\"EUR\"}",
        "\"type\":\"won\",\"amount_minor\":1e3,\"currency\":\"EUR\"}",
        "\"type\":\"won\",\"amount_minor\":-,\"currency\":\"EUR\"}",
        "\"type\":\"won\",\"amount_minor\":999999999999999999,"
        "\"currency\":\"EUR\"}",
        "\"type\":\"won\",\"amount_minor\":9223372036854775807,"
        "\"currency\":\"EUR\"}",
        "\"type\":\"won\",\"amount_minor\":9223372036854775808,"
        "\"currency\":\"EUR\"}",
        "\"type\":\"won\",\"amount_minor\":\"100\",\"currency\":\"EUR\"}",
        "\"type\":\"scored\",\"score\":2147483648,\"threshold\":1,"
        "\"model\":\"m\"}",
        "\"type\":\"scored\",\"score\":-1,\"threshold\":1,\"model\":\"m\"}",
        "\"type\":\"scored\",\"score\":null,\"threshold\":1,\"model\":\"m\"}",
        /* null, absent, other JSON types */
        "\"type\":\"recycled\",\"reason\":\"no_budget\",\"note\":null}",
        "\"type\":\"recycled\",\"reason\":\"no_budget\"}",
        "\"type\":\"recycled\",\"reason\":\"broke\"}",
        "\"type\":\"recycled\",\"reason\":null}",
        "\"type\":\"lost\",\"reason\":\"price\",\"actor\":null}",
        "\"type\":\"lost\",\"reason\":\"price\",\"actor\":true}",
        "\"type\":\"lost\",\"reason\":[\"price\"]}",
        "\"type\":\"lost\",\"reason\":nul}",
        "\"type\":\"lost\",\"reason\":nullx}",
        "\"type\":\"looted\",\"reason\":\"price\"}",
        "\"type\":7,\"reason\":\"price\"}",
        "\"reason\":\"price\"}",
        /* keys */
        "\"type\":\"lost\",\"reason\":\"price\",\"reason\":\"fit\"}",
        "\"type\":\"lost\",\"reason\":\"price\",\"reas\\u006fn\":\"fit\"}",
        "\"type\":\"lost\",\"reason\":\"price\",\"colour\":\"red\"}",
        "\"type\":\"lost\",\"reason\":\"price\",\"owner\":\"rep\"}",
        "\"type\":\"lost\",\"reason\":\"price\",\"_kafka\":{\"offset\":1}}",
        "\"type\":\"lost\",\"reason\":\"price\",\"event_id\":\"e-9\"}",
        "\"type\":\"lost\",\"reason\":\"price\",\"event_id\":null}",
        "\"type\":\"lost\",\"reason\":\"price\",\"event_id\":\"\"}",
        /* attributes */
        "\"type\":\"captured\",\"channel\":\"paid\",\"attributes\":{}}",
        "\"type\":\"captured\",\"channel\":\"paid\",\"attributes\":null}",
        "\"type\":\"captured\",\"channel\":\"paid\",\"attributes\":"
        "{\"b\":\"2\",\"a\":\"1\",\"c\\n\":\"3\"}}",
        "\"type\":\"captured\",\"channel\":\"paid\",\"attributes\":"
        "{\"a\":\"1\",\"a\":\"2\"}}",
        "\"type\":\"captured\",\"channel\":\"paid\",\"attributes\":"
        "{\"\":\"1\"}}",
        "\"type\":\"captured\",\"channel\":\"paid\",\"attributes\":"
        "{\"a\":1}}",
        "\"type\":\"captured\",\"channel\":\"paid\",\"attributes\":"
        "{\"a\":{\"b\":\"c\"}}}",
        "\"type\":\"captured\",\"channel\":\"paid\",\"attributes\":\"x\"}",
        "\"type\":\"captured\",\"channel\":\"paid\",\"campaign\":null}",
        /* contract v2: account_id, the identity events */
        "\"type\":\"lost\",\"reason\":\"price\",\"account_id\":\"A-1\"}",
        "\"type\":\"lost\",\"reason\":\"price\",\"account_id\":null}",
        "\"type\":\"lost\",\"reason\":\"price\",\"account_id\":\"\"}",
        "\"type\":\"lost\",\"reason\":\"price\",\"account_id\":7}",
        "\"type\":\"merged\",\"into_lead_id\":\"L-9\"}",
        "\"type\":\"merged\",\"into_lead_id\":\"L-1\"}",
        "\"type\":\"merged\",\"into_lead_id\":\"\"}",
        "\"type\":\"merged\"}",
        "\"type\":\"voided\",\"voided_event_id\":"
        "\"0b7e2d3c-1f4a-4c5b-8d6e-7f8091a2b3c4\",\"reason\":\"dup\"}",
        "\"type\":\"voided\",\"voided_event_id\":\"nope\",\"reason\":\"x\"}",
        "\"type\":\"voided\",\"voided_event_id\":"
        "\"0b7e2d3c-1f4a-4c5b-8d6e-7f8091a2b3c4\",\"reason\":\"\"}",
        "\"type\":\"erased\",\"request_id\":\"DSR-1\"}",
        "\"type\":\"erased\",\"request_id\":\"\"}",
        "\"type\":\"erased\",\"request_id\":\"R\",\"reason\":\"x\"}",
    };
    char line[1024];

    for (size_t i = 0; i < sizeof(tails) / sizeof(*tails); i++) {
        /* with the envelope first, and with an id-less event last */
        snprintf(line, sizeof(line), "{%s,%s", env, tails[i]);
        expect_paths_agree(line);
        snprintf(line, sizeof(line), "{\"event_id\":\"e-1\",%s,%s", env,
                 tails[i]);
        expect_paths_agree(line);
    }
    /* many attributes: past the fast path's 32, and past the limit */
    for (int n = 30; n <= 260; n += 230) {
        int o = snprintf(line, sizeof(line),
                         "{%s,\"type\":\"captured\",\"channel\":\"c\","
                         "\"attributes\":{",
                         env);
        char *big = malloc(16384);
        memcpy(big, line, (size_t)o);
        for (int k = 0; k < n; k++)
            o += sprintf(big + o, "%s\"k%d\":\"v\"", k ? "," : "", k);
        strcpy(big + o, "}}");
        expect_paths_agree(big);
        free(big);
    }
    for (size_t i = 0; i < sizeof(base) / sizeof(*base); i++)
        expect_paths_agree(base[i]);
    expect_paths_agree("");
    expect_paths_agree("{}");
    expect_paths_agree("[]");
    expect_paths_agree("\xef\xbb\xbf{}");
}

/* Plain lines take the single-pass reader: every base event, lines with
 * whitespace and escapes, without event_id. Lines it leaves to jansson
 * (the "_kafka" key of dumps, an error) do not.
 * If the fast path declined everything, the other tests would still pass:
 * this one would not. */
Test(json, plain_lines_take_the_fast_path)
{
    static const struct {
        const char *text;
        bool fast;
    } cases[] = {
        {"{\"lead_id\":\"L-1\",\"type\":\"lost\",\"occurred_at\":"
         "\"2026-03-01T09:30:00Z\",\"source\":\"crm\",\"reason\":\"price\"}",
         true},
        {"{ \"lead_id\" : \"L-1\", \"type\":\"lost\",\"occurred_at\":"
         "\"2026-03-01T09:30:00Z\",\"source\":\"c\\\"rm\",\"reason\":\"p\"}\n",
         true},
        {"{\"lead_id\":\"L-1\",\"type\":\"lost\",\"occurred_at\":"
         "\"2026-03-01T09:30:00Z\",\"source\":\"\\u00e9\",\"reason\":\"p\"}",
         true},
        {"{\"lead_id\":\"L-1\",\"type\":\"lost\",\"occurred_at\":"
         "\"2026-03-01T09:30:00Z\",\"source\":\"crm\",\"reason\":\"p\","
         "\"_kafka\":{\"topic\":\"t\",\"partition\":0,\"offset\":1}}",
         false},
        {"{\"lead_id\":\"L-1\",\"type\":\"lost\"}", false},
    };
    char err[512];
    lf_event_t ev;

    for (size_t t = 0; t < sizeof(base) / sizeof(base[0]); t++) {
        uint64_t before = lf_json_fast_lines;
        cr_assert_eq(lf_json_parse_event(base[t], strlen(base[t]), &ev, err,
                                         sizeof(err)),
                     LF_OK, "base %zu: %s", t, err);
        cr_expect_eq(lf_json_fast_lines, before + 1,
                     "base %zu did not take the fast path", t);
        lf_event_clear(&ev);
    }
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t before = lf_json_fast_lines;
        lf_err_t rc = lf_json_parse_event(cases[i].text, strlen(cases[i].text),
                                          &ev, err, sizeof(err));
        cr_expect_eq(rc == LF_OK, i < 4, "case %zu: %s", i, err);
        cr_expect_eq(lf_json_fast_lines - before, cases[i].fast ? 1u : 0u,
                     "case %zu: fast path %s", i,
                     cases[i].fast ? "not taken" : "taken");
        lf_event_clear(&ev);
    }
}
