/* test_registry.c: the schema registry client (lf_registry): its parsing of
 * untrusted answers, its settings, and the codec reading other versions of
 * LeadEvent through it (schemas preloaded in its cache: no HTTP here; the
 * REST calls are tested against a stand-in server in
 * tests/integration/test_registry.sh). */
#include "lf_codec.h"
#include "lf_codec_int.h"
#include "lf_embedded.h"
#include "lf_registry.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- lf_registry_parse_id ------------------------------------------- */

typedef struct id_case_s {
    const char *body;
    int32_t id;       /* expected id, 0: rejected */
    const char *want; /* a phrase of the error */
} id_case_t;

static const id_case_t id_cases[] = {
    {"{\"id\":1}", 1, NULL},
    {"{\"id\": 2147483647}", 2147483647, NULL},
    {" {\"subject\":\"t-value\",\"id\":42,\"version\":3,\"schema\":\"x\"} ", 42,
     NULL},
    {"{\"id\":0}", 0, "positive 32-bit"},
    {"{\"id\":-5}", 0, "positive 32-bit"},
    {"{\"id\":2147483648}", 0, "positive 32-bit"},
    {"{\"id\":99999999999999999999999}", 0, "not JSON"},
    {"{\"id\":\"7\"}", 0, "positive 32-bit"},
    {"{\"id\":7.0}", 0, "positive 32-bit"},
    {"{\"id\":null}", 0, "positive 32-bit"},
    {"{}", 0, "positive 32-bit"},
    {"[1]", 0, "not a JSON object"},
    {"7", 0, "not JSON"},
    {"", 0, "not JSON"},
    {"<html>502 Bad Gateway</html>", 0, "not JSON"},
    {"{\"id\":1,\"id\":2}", 0, "not JSON"}, /* duplicate keys refused */
    {"{\"id\":1", 0, "not JSON"},
};

Test(registry, parse_id_table)
{
    for (size_t i = 0; i < sizeof(id_cases) / sizeof(id_cases[0]); i++) {
        const id_case_t *c = &id_cases[i];
        char err[256] = "";
        int32_t id = -1;
        lf_err_t rc = lf_registry_parse_id(c->body, strlen(c->body), &id, err,
                                           sizeof(err));
        if (c->id) {
            cr_expect_eq(rc, LF_OK, "case %zu %s: %s", i, c->body, err);
            cr_expect_eq(id, c->id, "case %zu: id %d", i, id);
        } else {
            cr_expect_eq(rc, LF_ERR_INVALID, "case %zu %s: accepted", i,
                         c->body);
            cr_expect(strstr(err, c->want) != NULL, "case %zu: \"%s\"", i, err);
            cr_expect_eq(id, -1, "case %zu: id written on failure", i);
        }
    }
}

Test(registry, parse_id_does_not_read_past_len)
{
    /* Not NUL-terminated; the length cuts the digits. */
    const char body[] = {'{', '"', 'i', 'd', '"', ':', '1', '2', '}', '9'};
    int32_t id = 0;
    char err[256];
    cr_expect_eq(lf_registry_parse_id(body, 9, &id, err, sizeof(err)), LF_OK,
                 "%s", err);
    cr_expect_eq(id, 12);
    cr_expect_eq(lf_registry_parse_id(body, 8, &id, err, sizeof(err)),
                 LF_ERR_INVALID);
    cr_expect_eq(lf_registry_parse_id(NULL, 0, &id, err, sizeof(err)),
                 LF_ERR_INVALID);
    /* A NUL inside a string of the body. */
    const char nul[] = "{\"i\0d\":1}";
    cr_expect_eq(
        lf_registry_parse_id(nul, sizeof(nul) - 1, &id, err, sizeof(err)),
        LF_ERR_INVALID);
}

/* ---- lf_registry_parse_schema --------------------------------------- */

typedef struct schema_case_s {
    const char *body;
    const char *schema; /* expected, NULL: rejected */
    const char *want;
} schema_case_t;

static const schema_case_t schema_cases[] = {
    {"{\"schema\":\"\\\"string\\\"\"}", "\"string\"", NULL},
    {"{\"schema\":\"{\\\"type\\\":\\\"record\\\"}\",\"schemaType\":\"AVRO\","
     "\"references\":[]}",
     "{\"type\":\"record\"}", NULL},
    {"{\"schema\":\"x\",\"schemaType\":null,\"references\":null}", "x", NULL},
    {"{\"schema\":\"\\u00e9\"}", "\xc3\xa9", NULL},
    {"{\"schema\":\"x\",\"schemaType\":\"PROTOBUF\"}", NULL,
     "schemaType PROTOBUF: only Avro"},
    {"{\"schema\":\"x\",\"schemaType\":\"JSON\"}", NULL, "only Avro"},
    {"{\"schema\":\"x\",\"schemaType\":3}", NULL, "(not a string)"},
    {"{\"schema\":\"x\",\"references\":[{\"name\":\"a\",\"subject\":\"b\","
     "\"version\":1}]}",
     NULL, "schema references"},
    {"{\"schema\":\"x\",\"references\":{}}", NULL, "schema references"},
    {"{\"schema\":\"\"}", NULL, "non-empty string"},
    {"{\"schema\":{\"type\":\"string\"}}", NULL, "non-empty string"},
    {"{\"schema\":null}", NULL, "non-empty string"},
    {"{\"schemas\":\"x\"}", NULL, "non-empty string"},
    {"{\"schema\":\"a\\u0000b\"}", NULL, "not JSON"}, /* NUL refused */
    {"{\"schema\":\"\\ud800\"}", NULL, "not JSON"},   /* lone surrogate */
    {"{\"schema\":\"\xff\"}", NULL, "not JSON"},      /* not UTF-8 */
    {"[\"schema\"]", NULL, "not a JSON object"},
    {"null", NULL, "not JSON"},
};

Test(registry, parse_schema_table)
{
    for (size_t i = 0; i < sizeof(schema_cases) / sizeof(schema_cases[0]);
         i++) {
        const schema_case_t *c = &schema_cases[i];
        char err[256] = "", *schema = (char *)"untouched";
        lf_err_t rc = lf_registry_parse_schema(c->body, strlen(c->body),
                                               &schema, err, sizeof(err));
        if (c->schema) {
            cr_expect_eq(rc, LF_OK, "case %zu %s: %s", i, c->body, err);
            if (rc == LF_OK)
                cr_expect_str_eq(schema, c->schema, "case %zu", i);
            free(rc == LF_OK ? schema : NULL);
        } else {
            cr_expect_eq(rc, LF_ERR_INVALID, "case %zu %s: accepted", i,
                         c->body);
            cr_expect_null(schema, "case %zu: schema left set", i);
            cr_expect(strstr(err, c->want) != NULL, "case %zu: \"%s\"", i, err);
        }
    }
}

Test(registry, parse_schema_deep_nesting_does_not_crash)
{
    /* jansson limits the depth; whatever it says, no crash and no leak. */
    size_t n = 100000;
    char *body = malloc(2 * n + 1), *schema = NULL, err[256];
    memset(body, '[', n);
    memset(body + n, ']', n);
    body[2 * n] = '\0';
    cr_expect_eq(
        lf_registry_parse_schema(body, 2 * n, &schema, err, sizeof(err)),
        LF_ERR_INVALID);
    cr_expect_null(schema);
    free(body);
}

/* ---- lf_registry_parse_error ---------------------------------------- */

Test(registry, parse_error)
{
    char buf[400];
    const char *b;

    b = "{\"error_code\":40403,\"message\":\"Schema 42 not found\"}";
    lf_registry_parse_error(b, strlen(b), buf, sizeof(buf));
    cr_expect_str_eq(buf, "error_code 40403: Schema 42 not found");
    b = "{\"message\":\"no code\"}";
    lf_registry_parse_error(b, strlen(b), buf, sizeof(buf));
    cr_expect_str_eq(buf, "no code");
    /* control characters (log injection) are replaced */
    b = "{\"error_code\":1,\"message\":\"a\\nlevel=crit\\u001b[31m\"}";
    lf_registry_parse_error(b, strlen(b), buf, sizeof(buf));
    cr_expect_str_eq(buf, "error_code 1: a?level=crit?[31m");
    /* not JSON: an excerpt, also cleaned */
    b = "<html>\r\n<h1>502</h1>";
    lf_registry_parse_error(b, strlen(b), buf, sizeof(buf));
    cr_expect_str_eq(buf, "<html>?"
                          "?<h1>502</h1>"); /* not a trigraph */
    /* long bodies are cut */
    char big[5000];
    memset(big, 'x', sizeof(big));
    lf_registry_parse_error(big, sizeof(big), buf, sizeof(buf));
    cr_expect_eq(strlen(buf), 203, "%zu", strlen(buf));
    cr_expect(strstr(buf, "...") != NULL);
    /* a NUL in the body, an empty body, a tiny buffer */
    lf_registry_parse_error("a\0b", 3, buf, sizeof(buf));
    cr_expect_str_eq(buf, "a?b");
    lf_registry_parse_error(NULL, 0, buf, sizeof(buf));
    cr_expect_str_eq(buf, "");
    char tiny[4];
    b = "{\"message\":\"a long message\"}";
    lf_registry_parse_error(b, strlen(b), tiny, sizeof(tiny));
    cr_expect_str_eq(tiny, "a l");
}

Test(registry, redact_url)
{
    char buf[256];

    lf_registry_redact_url("https://user:pw@sr.example:8081/x", buf,
                           sizeof(buf));
    cr_expect_str_eq(buf, "https://***@sr.example:8081/x");
    lf_registry_redact_url("http://sr:8081/schemas/ids/1", buf, sizeof(buf));
    cr_expect_str_eq(buf, "http://sr:8081/schemas/ids/1");
    /* an @ in the path is not a credential */
    lf_registry_redact_url("http://sr/a@b", buf, sizeof(buf));
    cr_expect_str_eq(buf, "http://sr/a@b");
    lf_registry_redact_url("no-scheme", buf, sizeof(buf));
    cr_expect_str_eq(buf, "no-scheme");
}

/* ---- settings ------------------------------------------------------- */

static lf_registry_t *reg_from(const char *const *kv, char *err,
                               size_t err_size)
{
    lf_conf_t *conf = lf_conf_new();
    lf_registry_t *reg;

    for (; *kv; kv++)
        cr_assert_eq(lf_conf_set_kv(conf, *kv, err, err_size), LF_OK);
    reg = lf_registry_new(conf, err, err_size);
    lf_conf_destroy(conf);
    return reg;
}

Test(registry, settings)
{
    char err[512];
    lf_registry_t *reg;
    lf_conf_t *conf = lf_conf_new();

    cr_expect(!lf_registry_configured(conf));
    lf_conf_set(conf, LF_CONF_SR_URL, "", err, sizeof(err));
    cr_expect(!lf_registry_configured(conf), "an empty URL is no registry");
    lf_conf_destroy(conf);

    reg = reg_from((const char *[]){"schema.registry.url= https://u:p@a:1/ , "
                                    "http://b:2//",
                                    NULL},
                   err, sizeof(err));
    cr_assert_not_null(reg, "%s", err);
    cr_expect_str_eq(lf_registry_url(reg), "https://***@a:1");
    cr_expect(lf_registry_auto_register(reg));
    cr_expect_eq(lf_registry_retry_timeout_ms(reg),
                 LF_REGISTRY_RETRY_TIMEOUT_MS);
    lf_registry_destroy(reg);

    reg = reg_from(
        (const char *[]){"schema.registry.url=http://a",
                         "schema.registry.auto.register.schemas=false",
                         "schema.registry.retry.timeout.ms=1500", NULL},
        err, sizeof(err));
    cr_assert_not_null(reg, "%s", err);
    cr_expect(!lf_registry_auto_register(reg));
    cr_expect_eq(lf_registry_retry_timeout_ms(reg), 1500);
    lf_registry_destroy(reg);

    static const struct {
        const char *kv, *want;
    } bad[] = {
        {"schema.registry.url=ftp://a", "not an http:// or https:// URL"},
        {"schema.registry.url=a:8081", "not an http:// or https:// URL"},
        {"schema.registry.url= , ", "no URL"},
        {"schema.registry.basic.auth.user.info=nocolon", "user:password"},
        {"schema.registry.enable.ssl.certificate.verification=maybe",
         "not true or false"},
        {"schema.registry.request.timeout.ms=0", "milliseconds"},
        {"schema.registry.request.timeout.ms=10s", "milliseconds"},
        {"schema.registry.retry.timeout.ms=-1", "milliseconds"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *url = strncmp(bad[i].kv, "schema.registry.url=", 20)
                              ? "schema.registry.url=http://a"
                              : bad[i].kv;
        reg =
            reg_from((const char *[]){url, bad[i].kv, NULL}, err, sizeof(err));
        cr_expect_null(reg, "%s accepted", bad[i].kv);
        cr_expect(strstr(err, bad[i].want) != NULL, "%s: \"%s\"", bad[i].kv,
                  err);
        lf_registry_destroy(reg);
    }
    /* the password never shows in an error */
    reg = reg_from(
        (const char *[]){"schema.registry.url=ftp://u:hunter2@a", NULL}, err,
        sizeof(err));
    cr_expect_null(reg);
    cr_expect(strstr(err, "hunter2") == NULL, "%s", err);
}

/* ---- the codec through a registry ------------------------------------ */

/* Writer schemas, made from the embedded v1 so they track it. */
enum {
    ID_V1 = 100,
    ID_V2,
    ID_REORDERED,
    ID_OTHER,
    ID_BROKEN,
    ID_NEWTYPE,
    ID_V3,
    ID_V3_NUL,
    ID_SELF,       /* v2 with a field of its own type: never ends */
    ID_SELF_OPT,   /* ... or of ["null", its own type]: may end */
    ID_HUGE_FIXED, /* v2 with a fixed of 2 GiB */
    ID_NESTED,     /* v2 with an array of arrays of null */
    ID_DUP_FIELD,  /* v2 with a second field named event_id */
    ID_FIXED0,     /* v2 with a fixed of 0 bytes */
    ID_FIXED_SUM,  /* v2 with two fixed of 1 MiB */
    ID_NULL_ROWS   /* v2 with an array of records of 64 nulls, a string */
};

/* The embedded v2 with @p field (JSON) appended, as text to free(). */
static char *v2_with(const char *field)
{
    json_error_t jerr;
    json_t *s = json_loads(lf_embedded_avsc_v2, 0, &jerr);
    json_t *f = json_loads(field, 0, &jerr);
    cr_assert(s && f, "%s", jerr.text);
    json_array_append_new(json_object_get(s, "fields"), f);
    char *out = json_dumps(s, 0);
    json_decref(s);
    return out;
}

static json_t *v1_json(void)
{
    json_error_t jerr;
    json_t *s = json_loads(lf_embedded_avsc_v1, 0, &jerr);
    cr_assert_not_null(s, "%s", jerr.text);
    return s;
}

static json_t *field(json_t *record, const char *name)
{
    json_t *fields = json_object_get(record, "fields"), *f;
    size_t i;
    json_array_foreach(fields, i, f)
    {
        if (!strcmp(json_string_value(json_object_get(f, "name")), name))
            return f;
    }
    cr_assert_fail("no field %s", name);
    return NULL;
}

static json_t *opt_string(const char *name)
{
    return json_pack("{s:s,s:[s,s],s:n}", "name", name, "type", "null",
                     "string", "default");
}

/* v2: v1 plus correlation_id (after source, so not at the end) and
 * Captured.landing_page, both optional: tests/data/lead_event.v1x.avsc. */
static char *v2_text(void)
{
    json_t *s = v1_json();
    json_t *payload = json_object_get(field(s, "payload"), "type");
    json_array_insert_new(json_object_get(s, "fields"), 5,
                          opt_string("correlation_id"));
    json_array_append_new(json_object_get(json_array_get(payload, 0), "fields"),
                          opt_string("landing_page"));
    char *t = json_dumps(s, 0);
    json_decref(s);
    return t;
}

/* RecycleReason with its first two symbols swapped. */
static char *reordered_text(void)
{
    json_t *s = v1_json();
    json_t *payload = json_object_get(field(s, "payload"), "type");
    json_t *rec = json_array_get(payload, 4); /* Recycled */
    json_t *syms = json_object_get(
        json_object_get(field(rec, "reason"), "type"), "symbols");
    json_t *a = json_incref(json_array_get(syms, 0));
    json_array_set(syms, 0, json_array_get(syms, 1));
    json_array_set_new(syms, 1, a);
    char *t = json_dumps(s, 0);
    json_decref(s);
    return t;
}

/* v1 plus an event type NURTURED (appended) with its payload branch. */
static char *newtype_text(void)
{
    json_t *s = v1_json();
    json_t *syms =
        json_object_get(json_object_get(field(s, "type"), "type"), "symbols");
    json_array_append_new(syms, json_string("NURTURED"));
    json_array_append_new(json_object_get(field(s, "payload"), "type"),
                          json_pack("{s:s,s:s,s:[{s:s,s:s}]}", "type", "record",
                                    "name", "Nurtured", "fields", "name",
                                    "track", "type", "string"));
    char *t = json_dumps(s, 0);
    json_decref(s);
    return t;
}

/* A later contract: the published v2 plus an envelope field "tenant" of
 * every Avro kind, after account_id, and Captured.landing_page. */
static char *v3_text(void)
{
    json_error_t jerr;
    json_t *s = json_loads(lf_embedded_avsc_v2, 0, &jerr), *tenant;
    cr_assert_not_null(s, "%s", jerr.text);
    json_t *payload = json_object_get(field(s, "payload"), "type");
    tenant = json_loads(
        "{\"name\":\"tenant\",\"type\":{\"type\":\"record\",\"name\":"
        "\"Tenant\",\"fields\":[{\"name\":\"region\",\"type\":\"string\"},"
        "{\"name\":\"weight\",\"type\":\"double\"},{\"name\":\"tags\","
        "\"type\":{\"type\":\"array\",\"items\":\"string\"}},{\"name\":"
        "\"blob\",\"type\":\"bytes\"},{\"name\":\"on\",\"type\":\"boolean\"},"
        "{\"name\":\"tier\",\"type\":{\"type\":\"enum\",\"name\":\"Tier\","
        "\"symbols\":[\"GOLD\",\"SILVER\"]}},{\"name\":\"n\",\"type\":"
        "[\"null\",\"long\"]},{\"name\":\"m\",\"type\":{\"type\":\"map\","
        "\"values\":\"int\"}}]}}",
        0, &jerr);
    cr_assert_not_null(tenant, "%s", jerr.text);
    json_array_insert_new(json_object_get(s, "fields"), 7, tenant);
    json_array_append_new(
        json_object_get(json_array_get(payload, 0), "fields"),
        json_pack("{s:s,s:s}", "name", "landing_page", "type", "string"));
    char *out = json_dumps(s, 0);
    json_decref(s);
    return out;
}

/* A later contract whose new fields have defaults with a NUL: the Avro
 * spec writes bytes and fixed defaults as strings of code points 0-255,
 * so "\u0000" is an ordinary default there (python3-avro reads it; avro-c
 * alone would not). Appended after payload: a bytes and a fixed(2). */
static char *v3_nul_text(void)
{
    json_error_t jerr;
    json_t *s = json_loads(lf_embedded_avsc_v2, 0, &jerr), *f;
    cr_assert_not_null(s, "%s", jerr.text);
    f = json_loads("[{\"name\":\"blob\",\"type\":\"bytes\",\"default\":"
                   "\"\\u0000\"},{\"name\":\"fx\",\"type\":{\"type\":"
                   "\"fixed\",\"name\":\"Two\",\"size\":2},\"default\":"
                   "\"\\u0000\\u0000\"}]",
                   JSON_ALLOW_NUL, &jerr);
    cr_assert_not_null(f, "%s", jerr.text);
    json_array_extend(json_object_get(s, "fields"), f);
    json_decref(f);
    char *out = json_dumps(s, 0);
    json_decref(s);
    cr_assert(strstr(out, "\\u0000"), "%s", out);
    return out;
}

static lf_registry_t *reg;
static lf_codec_t *codec;

static void codec_setup(void)
{
    char err[512];
    char *v2 = v2_text(), *ro = reordered_text(), *nt = newtype_text();
    char *v3 = v3_text();

    /* Port 1 refuses connections: any request would fail fast, so a
     * decode that works used the cache. */
    reg = reg_from((const char *[]){"schema.registry.url=http://127.0.0.1:1",
                                    "schema.registry.request.timeout.ms=2000",
                                    NULL},
                   err, sizeof(err));
    cr_assert_not_null(reg, "%s", err);
    cr_assert_eq(lf_registry_cache_put(reg, ID_V1, lf_embedded_avsc_v1), 0);
    cr_assert_eq(lf_registry_cache_put(reg, ID_V2, v2), 0);
    cr_assert_eq(lf_registry_cache_put(reg, ID_REORDERED, ro), 0);
    cr_assert_eq(
        lf_registry_cache_put(reg, ID_OTHER,
                              "{\"type\":\"record\",\"name\":\"Other\","
                              "\"namespace\":\"acme\",\"fields\":[]}"),
        0);
    cr_assert_eq(lf_registry_cache_put(reg, ID_BROKEN, "{\"type\":\"nope\"}"),
                 0);
    cr_assert_eq(lf_registry_cache_put(reg, ID_NEWTYPE, nt), 0);
    cr_assert_eq(lf_registry_cache_put(reg, ID_V3, v3), 0);
    free(v3);
    v3 = v3_nul_text();
    cr_assert_eq(lf_registry_cache_put(reg, ID_V3_NUL, v3), 0);
    free(v3);
    static const struct {
        int id;
        const char *field;
    } hostile[] = {
        {ID_SELF, "{\"name\":\"next\",\"type\":\"leadflow.LeadEvent\"}"},
        {ID_SELF_OPT, "{\"name\":\"next\",\"type\":[\"null\","
                      "\"leadflow.LeadEvent\"],\"default\":null}"},
        {ID_HUGE_FIXED, "{\"name\":\"fx\",\"type\":{\"type\":\"fixed\","
                        "\"name\":\"FX\",\"size\":2147483648}}"},
        {ID_NESTED, "{\"name\":\"nest\",\"type\":{\"type\":\"array\","
                    "\"items\":{\"type\":\"array\",\"items\":\"null\"}}}"},
        {ID_DUP_FIELD, "{\"name\":\"event_id\",\"type\":\"string\"}"},
        {ID_FIXED0, "{\"name\":\"f0\",\"type\":{\"type\":\"fixed\","
                    "\"name\":\"F0\",\"size\":0}}"},
    };
    for (size_t i = 0; i < sizeof(hostile) / sizeof(*hostile); i++) {
        v3 = v2_with(hostile[i].field);
        cr_assert_eq(lf_registry_cache_put(reg, hostile[i].id, v3), 0);
        free(v3);
    }
    v3 = v2_with("{\"name\":\"fx2\",\"type\":{\"type\":\"record\",\"name\":"
                 "\"FX2\",\"fields\":[{\"name\":\"a\",\"type\":{\"type\":"
                 "\"fixed\",\"name\":\"FA\",\"size\":1048576}},{\"name\":"
                 "\"b\",\"type\":\"FA\"}]}}");
    cr_assert_eq(lf_registry_cache_put(reg, ID_FIXED_SUM, v3), 0);
    free(v3);
    char rows[4096];
    int n = snprintf(rows, sizeof(rows),
                     "{\"name\":\"w\",\"type\":{\"type\":\"record\","
                     "\"name\":\"W\",\"fields\":[{\"name\":\"zs\",\"type\":"
                     "{\"type\":\"array\",\"items\":{\"type\":\"record\","
                     "\"name\":\"R64\",\"fields\":[");
    for (int i = 0; i < 64; i++)
        n +=
            snprintf(rows + n, sizeof(rows) - (size_t)n,
                     "%s{\"name\":\"f%d\",\"type\":\"null\"}", i ? "," : "", i);
    snprintf(rows + n, sizeof(rows) - (size_t)n,
             "]}}},{\"name\":\"pad\",\"type\":\"string\"}]}}");
    v3 = v2_with(rows);
    cr_assert_eq(lf_registry_cache_put(reg, ID_NULL_ROWS, v3), 0);
    free(v3);
    free(v2);
    free(ro);
    free(nt);
    codec = lf_codec_new(err, sizeof(err));
    cr_assert_not_null(codec, "%s", err);
    lf_codec_set_registry(codec, reg);
}

static void codec_teardown(void)
{
    lf_codec_destroy(codec);
    lf_registry_destroy(reg);
}

/* Hand-built Avro, as another producer would write it. */
typedef struct raw_s {
    uint8_t b[1 << 18];
    size_t n;
} raw_t;

static void r_long(raw_t *r, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    do {
        r->b[r->n++] = (uint8_t)((z & 0x7f) | (z > 0x7f ? 0x80 : 0));
        z >>= 7;
    } while (z);
}

static void r_str(raw_t *r, const char *s)
{
    r_long(r, (int64_t)strlen(s));
    memcpy(r->b + r->n, s, strlen(s));
    r->n += strlen(s);
}

static void r_opt(raw_t *r, const char *s)
{
    r_long(r, s ? 1 : 0);
    if (s)
        r_str(r, s);
}

static void r_header(raw_t *r, int32_t id)
{
    r->n = 0;
    r->b[r->n++] = 0;
    for (int i = 3; i >= 0; i--)
        r->b[r->n++] = (uint8_t)((uint32_t)id >> (8 * i));
}

/* The envelope up to the payload's branch; v2 has correlation_id. */
static void r_envelope(raw_t *r, int32_t id, int64_t type, bool v2)
{
    r_header(r, id);
    r_str(r, "e-1");
    r_str(r, "L-1");
    r_long(r, type);
    r_long(r, 1767225600000); /* 2026-01-01 */
    r_str(r, "crm");
    if (v2)
        r_opt(r, "req-77");
    r_opt(r, "rule-9");
    r_long(r, type); /* payload branch */
}

/* Decode, and check avro-c's reader alone gives the same answer (the
 * direct reader takes the registry's copy of v1). */
static lf_err_t decode(const raw_t *r, lf_event_t *ev, char *err, size_t n)
{
    char ref[512] = "";
    lf_event_t gev;
    lf_err_t rc = lf_codec_decode(codec, r->b, r->n, ev, err, n);
    lf_err_t grc =
        lf_codec_decode_generic(codec, r->b, r->n, &gev, ref, sizeof(ref));

    cr_assert_eq(rc, grc, "decode %d (%s), avro-c %d (%s)", rc, rc ? err : "",
                 grc, grc ? ref : "");
    if (rc == LF_OK) {
        cr_assert(lf_event_equal(ev, &gev), "direct and avro-c differ");
        lf_event_clear(&gev);
    } else if (err) {
        cr_assert_str_eq(err, ref);
    }
    return rc;
}

TestSuite(codec_registry, .init = codec_setup, .fini = codec_teardown);

Test(codec_registry, v2_writer_read_as_v1)
{
    raw_t r;
    lf_event_t ev;
    char err[512] = "";

    /* captured, with v2's landing_page after the map */
    r_envelope(&r, ID_V2, 0, true);
    r_str(&r, "paid_search");
    r_opt(&r, "spring");
    r_long(&r, 1); /* one map entry */
    r_str(&r, "country");
    r_str(&r, "NL");
    r_long(&r, 0);
    r_opt(&r, "/pricing");
    cr_assert_eq(decode(&r, &ev, err, sizeof(err)), LF_OK, "%s", err);
    cr_expect_str_eq(ev.event_id, "e-1");
    cr_expect_str_eq(ev.source, "crm");
    cr_expect_str_eq(ev.actor, "rule-9"); /* after the skipped v2 field */
    cr_expect_eq(ev.type, LF_EV_CAPTURED);
    cr_expect_eq(ev.occurred_at, 1767225600000);
    cr_expect_str_eq(ev.u.captured.channel, "paid_search");
    cr_expect_str_eq(ev.u.captured.campaign, "spring");
    cr_assert_eq(ev.u.captured.attr_count, 1);
    cr_expect_str_eq(ev.u.captured.attrs[0].key, "country");
    cr_expect_str_eq(ev.u.captured.attrs[0].value, "NL");
    /* the fields this reader does not know are kept */
    cr_expect_str_eq(ev.extra, "{\"correlation_id\":\"req-77\"}");
    cr_expect_str_eq(ev.payload_extra, "{\"landing_page\":\"/pricing\"}");
    lf_event_clear(&ev);

    /* recycled: an enum and an optional string through the resolver */
    r_envelope(&r, ID_V2, 4, true);
    r_long(&r, 5); /* BAD_TIMING */
    r_opt(&r, NULL);
    cr_assert_eq(decode(&r, &ev, err, sizeof(err)), LF_OK, "%s", err);
    cr_expect_eq(ev.type, LF_EV_RECYCLED);
    cr_expect_eq(ev.u.recycled.reason, 5);
    cr_expect_null(ev.u.recycled.note);
    lf_event_clear(&ev);

    /* won, then v1 and v2 alternating: each id keeps its own reader */
    for (int i = 0; i < 4; i++) {
        bool v2 = i % 2;
        r_envelope(&r, v2 ? ID_V2 : ID_V1, 6, v2);
        r_long(&r, 1234500 + i);
        r_str(&r, "EUR");
        cr_assert_eq(decode(&r, &ev, err, sizeof(err)), LF_OK, "%d: %s", i,
                     err);
        cr_expect_eq(ev.u.won.amount_minor, 1234500 + i);
        cr_expect_str_eq(ev.u.won.currency, "EUR");
        lf_event_clear(&ev);
    }
}

/* A newer writer's optional field left null is the field not sent: the
 * same event from a writer without it and from one with it reads the
 * same (a re-send across an upgrade is a duplicate, not a conflict). */
Test(codec_registry, null_unknown_fields_are_left_out)
{
    static raw_t r;
    lf_event_t ev, old;
    char err[512] = "";

    r.n = 0;
    r_header(&r, ID_V2);
    r_str(&r, "e-1");
    r_str(&r, "L-1");
    r_long(&r, 0);
    r_long(&r, 1767225600000);
    r_str(&r, "crm");
    r_opt(&r, NULL); /* correlation_id */
    r_opt(&r, "rule-9");
    r_long(&r, 0);
    r_str(&r, "paid_search");
    r_opt(&r, NULL);
    r_long(&r, 0);
    r_opt(&r, NULL); /* landing_page */
    cr_assert_eq(decode(&r, &ev, err, sizeof(err)), LF_OK, "%s", err);
    cr_expect_null(ev.extra, "%s", ev.extra);
    cr_expect_null(ev.payload_extra, "%s", ev.payload_extra);
    r_envelope(&r, ID_V1, 0, false);
    r_str(&r, "paid_search");
    r_opt(&r, NULL);
    r_long(&r, 0);
    cr_assert_eq(decode(&r, &old, err, sizeof(err)), LF_OK, "%s", err);
    cr_expect(lf_event_equal(&ev, &old));
    lf_event_clear(&ev);
    lf_event_clear(&old);
}

/* The fields a newer writer sent may add up to more than one string's
 * 64 KiB: kept whole (up to LF_EXTRA_MAX), by both readers. */
Test(codec_registry, large_unknown_fields_are_kept)
{
    static raw_t r;
    static char big[100001];
    lf_event_t ev;
    char err[512] = "";

    memset(big, 'x', sizeof(big) - 1);
    r_envelope(&r, ID_V2, 0, true);
    r_str(&r, "paid_search");
    r_opt(&r, NULL);
    r_long(&r, 0); /* no attributes */
    r_opt(&r, big);
    cr_assert_eq(decode(&r, &ev, err, sizeof(err)), LF_OK, "%s", err);
    cr_assert_not_null(ev.payload_extra);
    cr_expect_eq(strlen(ev.payload_extra),
                 strlen("{\"landing_page\":\"\"}") + sizeof(big) - 1);
    lf_event_clear(&ev);
}

Test(codec_registry, bounds_check_walks_the_writer_schema)
{
    raw_t r;
    lf_event_t ev;
    char err[512] = "";

    /* A negative length in v2's correlation_id: v1's schema would read
     * those bytes as the actor. */
    r_envelope(&r, ID_V2, 3, false);
    r.n -= 9; /* back to after source: actor (8 bytes) + branch (1) */
    r_long(&r, 1);
    r_long(&r, -3);
    cr_expect_eq(decode(&r, &ev, err, sizeof(err)), LF_ERR_INVALID);
    cr_expect(strstr(err, "correlation_id") && strstr(err, "negative"), "%s",
              err);

    /* v2 bytes framed with the v1 id: refused by the v1 walk */
    r_envelope(&r, ID_V1, 3, true);
    r_str(&r, "owner-1");
    cr_expect_eq(decode(&r, &ev, err, sizeof(err)), LF_ERR_INVALID);

    /* every truncation of a valid v2 message is refused, none crashes */
    r_envelope(&r, ID_V2, 1, true);
    r_long(&r, 70);
    r_long(&r, 60);
    r_str(&r, "m");
    cr_assert_eq(decode(&r, &ev, err, sizeof(err)), LF_OK, "%s", err);
    lf_event_clear(&ev);
    for (size_t n = 5; n < r.n; n++) {
        raw_t t = r;
        t.n = n;
        cr_expect_eq(decode(&t, &ev, err, sizeof(err)), LF_ERR_INVALID,
                     "truncated at %zu accepted", n);
    }
    /* a union index out of range in v2's field */
    r_envelope(&r, ID_V2, 3, false);
    r.n -= 9;
    r_long(&r, 2);
    cr_expect_eq(decode(&r, &ev, err, sizeof(err)), LF_ERR_INVALID);
    cr_expect(strstr(err, "union branch 2 out of range"), "%s", err);
}

Test(codec_registry, writer_schemas_we_cannot_read)
{
    raw_t r;
    lf_event_t ev;
    char err[512] = "";

    /* enums are read by symbol name: a writer that reordered them is
     * read as it meant (its symbol 0 is NO_BUDGET) */
    r_envelope(&r, ID_REORDERED, 4, false);
    r_long(&r, 0);
    r_opt(&r, NULL);
    cr_expect_eq(decode(&r, &ev, err, sizeof(err)), LF_OK, "%s", err);
    cr_expect_eq(ev.u.recycled.reason, LF_RR_NO_BUDGET);
    lf_event_clear(&ev);

    r_header(&r, ID_OTHER);
    cr_expect_eq(decode(&r, &ev, err, sizeof(err)), LF_ERR_INVALID);
    cr_expect(strstr(err, "schema id 103") &&
                  strstr(err, "record acme.Other, not a leadflow.LeadEvent"),
              "%s", err);

    r_header(&r, ID_BROKEN);
    r_long(&r, 0);
    cr_expect_eq(decode(&r, &ev, err, sizeof(err)), LF_ERR_INVALID);
    cr_expect(strstr(err, "schema id 104") &&
                  strstr(err, "not a valid Avro schema"),
              "%s", err);

    /* a newer writer's event type this reader does not know */
    r_envelope(&r, ID_NEWTYPE, 9, false);
    r_str(&r, "webinar");
    cr_expect_eq(decode(&r, &ev, err, sizeof(err)), LF_ERR_INVALID);
    cr_expect(strstr(err, "schema id 105") && strstr(err, "NURTURED") &&
                  strstr(err, "not one this reader knows"),
              "%s", err);
    /* ... while its known types still read */
    r_envelope(&r, ID_NEWTYPE, 7, false);
    r_str(&r, "no budget");
    cr_expect_eq(decode(&r, &ev, err, sizeof(err)), LF_OK, "%s", err);
    lf_event_clear(&ev);

    r_envelope(&r, -7, 7, false);
    cr_expect_eq(decode(&r, &ev, err, sizeof(err)), LF_ERR_INVALID);
    cr_expect(strstr(err, "registry ids are positive"), "%s", err);

    /* A record that contains itself with nothing between: avro-c would
     * recurse until the stack overflows making a value of it (found by a
     * hostile-registry test); a fixed of 2 GiB, which it would allocate
     * whole. Both refused by the schema, before any value. */
    r_envelope(&r, ID_SELF, 7, false);
    cr_expect_eq(decode(&r, &ev, err, sizeof(err)), LF_ERR_INVALID);
    cr_expect(strstr(err, "schema id 108 from the registry cannot be read: "
                          "record LeadEvent contains itself"),
              "%s", err);
    r_envelope(&r, ID_HUGE_FIXED, 7, false);
    cr_expect_eq(decode(&r, &ev, err, sizeof(err)), LF_ERR_INVALID);
    cr_expect(strstr(err, "fixed FX of 2147483648 bytes, beyond any message"),
              "%s", err);
    /* Two fields of one name: the first value would be lost unsaid. */
    r_envelope(&r, ID_DUP_FIELD, 7, false);
    cr_expect_eq(decode(&r, &ev, err, sizeof(err)), LF_ERR_INVALID);
    cr_expect(strstr(err, "record LeadEvent has two fields named event_id"),
              "%s", err);
    /* A fixed of 0 bytes, of which avro-c makes no value */
    r_envelope(&r, ID_FIXED0, 7, false);
    cr_expect_eq(decode(&r, &ev, err, sizeof(err)), LF_ERR_INVALID);
    cr_expect(strstr(err, "fixed F0 of 0 bytes"), "%s", err);
    /* Through a union it may end: read (the null branch) */
    r_envelope(&r, ID_SELF_OPT, 4, true);
    r_long(&r, 5); /* BAD_TIMING */
    r_opt(&r, NULL);
    r_long(&r, 0); /* next: null */
    cr_expect_eq(decode(&r, &ev, err, sizeof(err)), LF_OK, "%s", err);
    lf_event_clear(&ev);
}

/* Items that take no byte (null) in arrays nested in arrays: each inner
 * array could claim as many items as there were bytes left, so 2.6 KB made
 * 400,000 items, read into 2 MB of extra (a hostile-input review; 32 KB
 * took 1.8 GB). The arrays and maps of a message now hold at most one item
 * per byte of it, all together. */
Test(codec_registry, nested_empty_items_are_bounded_by_the_message)
{
    raw_t r;
    lf_event_t ev;
    char err[512] = "";

    r_envelope(&r, ID_NESTED, 4, true);
    r_long(&r, 5); /* BAD_TIMING */
    r_opt(&r, NULL);
    r_long(&r, 1000); /* the outer array's one block */
    for (int i = 0; i < 1000; i++) {
        r_long(&r, i < 400 ? 1000 : 1); /* an inner block of nulls */
        r_long(&r, 0);
    }
    r_long(&r, 0);
    cr_expect_eq(decode(&r, &ev, err, sizeof(err)), LF_ERR_INVALID);
    cr_expect(strstr(err, "more items than the body has bytes") &&
                  strstr(err, "nest"),
              "%s", err);
    /* a few nulls, as a writer may send them, still read */
    r_envelope(&r, ID_NESTED, 4, true);
    r_long(&r, 5);
    r_opt(&r, NULL);
    r_long(&r, 2);
    r_long(&r, 3);
    r_long(&r, 0);
    r_long(&r, 0);
    r_long(&r, 0);
    cr_expect_eq(decode(&r, &ev, err, sizeof(err)), LF_OK, "%s", err);
    cr_expect(ev.extra && strstr(ev.extra, "[[null,null,null],[]]"), "%s",
              ev.extra ? ev.extra : "(no extra)");
    lf_event_clear(&ev);
}

/* The work of reading a message is bounded by its bytes: 4,000 records
 * of 64 nulls take no byte but are 260,000 values, read into 3.6 MB of
 * extra (a fuzzing helper: 8 KB took 2 GB and 8 s). So is what avro-c
 * allocates with a writer: fixed fields of 2 MiB in all, each under the
 * limit, were allocated whole (10 GB from a 4.6 KB schema). Valid Avro
 * still reads: three nulls in the last bytes of a message. */
Test(codec_registry, the_work_of_a_message_is_bounded_by_its_bytes)
{
    raw_t r;
    lf_event_t ev;
    char err[512] = "";

    r_envelope(&r, ID_NULL_ROWS, 4, true);
    r_long(&r, 5); /* BAD_TIMING */
    r_opt(&r, NULL);
    r_long(&r, 4000); /* records of nulls: no byte each */
    r_long(&r, 0);
    char pad[4001];
    memset(pad, 'x', 4000);
    pad[4000] = '\0';
    r_str(&r, pad);
    cr_expect_eq(decode(&r, &ev, err, sizeof(err)), LF_ERR_INVALID);
    cr_expect(strstr(err, "more values than a message may hold"), "%s", err);

    r_envelope(&r, ID_FIXED_SUM, 7, false);
    cr_expect_eq(decode(&r, &ev, err, sizeof(err)), LF_ERR_INVALID);
    cr_expect(strstr(err, "fixed fields of more than 1048576 bytes in all"),
              "%s", err);

    r_envelope(&r, ID_NESTED, 4, true);
    r_long(&r, 5);
    r_opt(&r, NULL);
    r_long(&r, 1);
    r_long(&r, 3); /* three nulls, two bytes left */
    r_long(&r, 0);
    r_long(&r, 0);
    cr_expect_eq(decode(&r, &ev, err, sizeof(err)), LF_OK, "%s", err);
    cr_expect(ev.extra && strstr(ev.extra, "[[null,null,null]]"), "%s",
              ev.extra ? ev.extra : "(no extra)");
    lf_event_clear(&ev);
}

Test(codec_registry, unreachable_registry_is_temporary)
{
    raw_t r;
    lf_event_t ev;
    char err[512] = "";

    r_envelope(&r, 4242, 7, false);
    r_str(&r, "no budget");
    cr_expect_eq(decode(&r, &ev, err, sizeof(err)), LF_ERR_TEMPORARY);
    cr_expect(strstr(err, "http://127.0.0.1:1/schemas/ids/4242"), "%s", err);
    cr_expect_null(ev.event_id);
    /* and registering our schema fails the same way, naming the URL */
    int32_t id = 0;
    cr_expect_eq(
        lf_codec_writer_id(codec, "lead-events", &id, err, sizeof(err)),
        LF_ERR_TEMPORARY);
    cr_expect(strstr(err, "127.0.0.1:1/compatibility/subjects/"
                          "lead-events-value/versions/latest"),
              "%s", err);
}

Test(codec_registry, without_a_registry_ids_are_pinned)
{
    raw_t r;
    lf_event_t ev;
    char err[512] = "";
    int32_t id = 0;

    lf_codec_set_registry(codec, NULL);
    cr_expect_eq(lf_codec_writer_id(codec, "t", &id, err, sizeof(err)), LF_OK);
    cr_expect_eq(id, LF_SCHEMA_ID_V2);
    cr_expect_eq(lf_codec_set_contract(codec, 1, err, sizeof(err)), LF_OK);
    cr_expect_eq(lf_codec_writer_id(codec, "t", &id, err, sizeof(err)), LF_OK);
    cr_expect_eq(id, LF_SCHEMA_ID_V1);
    r_envelope(&r, ID_V1, 7, false);
    r_str(&r, "no budget");
    cr_expect_eq(decode(&r, &ev, err, sizeof(err)), LF_ERR_INVALID);
    cr_expect(strstr(err, "unknown schema id 100 (known: 1, 2; no schema "
                          "registry is set to ask: schema.registry.url)"),
              "%s", err);
    r_envelope(&r, LF_SCHEMA_ID_V1, 7, false);
    r_str(&r, "no budget");
    cr_expect_eq(decode(&r, &ev, err, sizeof(err)), LF_OK, "%s", err);
    lf_event_clear(&ev);
}

/* The envelope of a captured event as v2 writes it, up to account_id:
 * e-1 of lead L-1 at 2026-01-01, source crm, no actor. */
static void r_v2_head(raw_t *r, int id, const char *account)
{
    r_header(r, id);
    r_str(r, "e-1");
    r_str(r, "L-1");
    r_long(r, 0); /* CAPTURED */
    r_long(r, 1767225600000);
    r_str(r, "crm");
    r_opt(r, NULL); /* actor */
    r_opt(r, account);
}

/* A later writer (v2 plus fields of every Avro kind): every field this
 * reader does not know is kept as JSON, the rest read by name. */
Test(codec_registry, v3_fields_kept_as_json)
{
    static const uint8_t blob[] = {0x00, 0xff, 'a'};
    raw_t r;
    lf_event_t ev;
    char err[512] = "";

    r_v2_head(&r, ID_V3, "ACME");
    /* tenant */
    r_str(&r, "eu \"west\"");
    memcpy(r.b + r.n, "\x00\x00\x00\x00\x00\x00\xf8\x3f", 8); /* 1.5 */
    r.n += 8;
    r_long(&r, 2);
    r_str(&r, "a");
    r_str(&r, "b");
    r_long(&r, 0);
    r_long(&r, sizeof(blob));
    memcpy(r.b + r.n, blob, sizeof(blob));
    r.n += sizeof(blob);
    r.b[r.n++] = 1; /* on */
    r_long(&r, 1);  /* SILVER */
    r_long(&r, 1);  /* n: long */
    r_long(&r, -7);
    r_long(&r, 1); /* m: one entry */
    r_str(&r, "k");
    r_long(&r, 3);
    r_long(&r, 0);
    r_long(&r, 0); /* payload: Captured */
    r_str(&r, "paid");
    r_opt(&r, NULL);
    r_long(&r, 0);    /* no attributes */
    r_str(&r, "/lp"); /* landing_page */
    cr_assert_eq(decode(&r, &ev, err, sizeof(err)), LF_OK, "%s", err);
    cr_expect_str_eq(ev.account_id, "ACME");
    cr_expect_null(ev.actor);
    cr_expect_str_eq(ev.u.captured.channel, "paid");
    cr_expect_str_eq(ev.extra,
                     "{\"tenant\":{\"region\":\"eu \\\"west\\\"\","
                     "\"weight\":1.5,\"tags\":[\"a\",\"b\"],\"blob\":\"AP9h\","
                     "\"on\":true,\"tier\":\"SILVER\",\"n\":-7,"
                     "\"m\":{\"k\":3}}}");
    cr_expect_str_eq(ev.payload_extra, "{\"landing_page\":\"/lp\"}");
    lf_event_clear(&ev);
}

/* A later writer whose new fields default to "\u0000": read, the new
 * fields kept, as any other later writer's. */
Test(codec_registry, v3_with_nul_defaults_is_read)
{
    raw_t r;
    lf_event_t ev;
    char err[512] = "";

    r_v2_head(&r, ID_V3_NUL, NULL);
    r_long(&r, 0); /* payload: Captured */
    r_str(&r, "paid");
    r_opt(&r, NULL);
    r_long(&r, 0); /* no attributes */
    r_long(&r, 1); /* blob */
    r.b[r.n++] = 0;
    r.b[r.n++] = 'x'; /* fx */
    r.b[r.n++] = 'y';
    cr_assert_eq(decode(&r, &ev, err, sizeof(err)), LF_OK, "%s", err);
    cr_expect_str_eq(ev.u.captured.channel, "paid");
    cr_expect_str_eq(ev.extra, "{\"blob\":\"AA==\",\"fx\":\"eHk=\"}");
    lf_event_clear(&ev);
}

/* ---- lf_registry_parse_compat ----------------------------------------- */

Test(registry, parse_compat_table)
{
    static const struct {
        const char *body;
        int ok;           /* 1 compatible, 0 not, -1 refused answer */
        const char *want; /* a phrase of the reason */
    } cases[] = {
        {"{\"is_compatible\":true}", 1, ""},
        {"{\"is_compatible\":false}", 0, ""},
        {"{\"is_compatible\":false,\"messages\":[\"a\",\"b\\u0007\"]}", 0,
         "a; b?"},
        {"{\"is_compatible\":false,\"messages\":[7,\"x\"]}", 0, "x"},
        {"{\"is_compatible\":\"false\"}", -1, "is_compatible"},
        {"{}", -1, "is_compatible"},
        {"[true]", -1, "not a JSON object"},
        {"<html>", -1, "not JSON"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char why[256] = "";
        bool ok = false;
        lf_err_t rc = lf_registry_parse_compat(
            cases[i].body, strlen(cases[i].body), &ok, why, sizeof(why));
        if (cases[i].ok < 0) {
            cr_expect_eq(rc, LF_ERR_INVALID, "case %zu accepted", i);
        } else {
            cr_expect_eq(rc, LF_OK, "case %zu: %s", i, why);
            cr_expect_eq(ok, cases[i].ok == 1, "case %zu", i);
        }
        cr_expect(strstr(why, cases[i].want), "case %zu: \"%s\"", i, why);
    }
}
