/* test_codec.c: the framed Avro codec (lf_codec): JSON -> event -> Avro ->
 * event -> JSON round trips for every type, exact wire bytes, and the
 * decoder against hand-made hostile bytes. */
#include "lf_codec.h"
#include "lf_codec_int.h"
#include "lf_json.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lf_codec_t *codec;

static void setup(void)
{
    char err[256] = "";
    codec = lf_codec_new(err, sizeof(err));
    cr_assert_not_null(codec, "lf_codec_new: %s", err);
}

static void teardown(void)
{
    lf_codec_destroy(codec);
    codec = NULL;
}

TestSuite(avro, .init = setup, .fini = teardown);

static void parse_ok(const char *text, lf_event_t *ev)
{
    char err[512] = "";
    cr_assert_eq(lf_json_parse_event(text, strlen(text), ev, err, sizeof(err)),
                 LF_OK, "rejected: %s\n  %s", err, text);
}

/* The pinned id of the contract version the codec writes. */
static int32_t writer_id(void)
{
    return lf_codec_contract(codec) == 1 ? LF_SCHEMA_ID_V1 : LF_SCHEMA_ID_V2;
}

/* Encode with the direct writer, and check avro-c's generic writer makes
 * the same bytes: every test that encodes compares the two. */
static void encode_ok(const lf_event_t *ev, lf_buf_t *out)
{
    char err[512] = "";
    lf_buf_t ref = {0};

    cr_assert_eq(lf_codec_encode(codec, ev, writer_id(), out, err, sizeof(err)),
                 LF_OK, "encode: %s", err);
    cr_assert_eq(
        lf_codec_encode_generic(codec, ev, writer_id(), &ref, err, sizeof(err)),
        LF_OK, "encode with avro-c: %s", err);
    cr_assert_eq(out->len, ref.len, "direct %zu bytes, avro-c %zu", out->len,
                 ref.len);
    for (size_t i = 0; i < ref.len; i++)
        cr_assert_eq(out->data[i], ref.data[i],
                     "byte %zu: direct 0x%02x, avro-c 0x%02x", i,
                     (unsigned char)out->data[i], (unsigned char)ref.data[i]);
    lf_buf_free(&ref);
}

/* Decode, and check avro-c's reader makes the same event of it: every
 * test that decodes compares the two readers. */
static void decode_ok(const void *data, size_t len, lf_event_t *ev)
{
    char err[512] = "";
    lf_event_t ref;

    cr_assert_eq(lf_codec_decode(codec, data, len, ev, err, sizeof(err)), LF_OK,
                 "decode: %s", err);
    cr_assert_eq(
        lf_codec_decode_generic(codec, data, len, &ref, err, sizeof(err)),
        LF_OK, "decode with avro-c: %s", err);
    cr_assert(lf_event_equal(ev, &ref), "direct and avro-c readers differ");
    lf_event_clear(&ref);
}

/* The same, and the message must take the direct reader. */
static void decode_direct_ok(const void *data, size_t len, lf_event_t *ev)
{
    char err[512] = "";
    lf_event_t d;

    decode_ok(data, len, ev);
    cr_assert_eq(lf_codec_decode_direct(codec, data, len, &d, err, sizeof(err)),
                 LF_OK, "direct reader declined: %s", err);
    cr_assert(lf_event_equal(ev, &d));
    lf_event_clear(&d);
}

/* Both readers give the same answer: the same event, or the same error.
 * @returns lf_codec_decode()'s. */
static lf_err_t decode_same(const void *data, size_t len)
{
    char err[512] = "", ref[512] = "";
    lf_event_t ev, gev;
    lf_err_t rc = lf_codec_decode(codec, data, len, &ev, err, sizeof(err));
    lf_err_t grc =
        lf_codec_decode_generic(codec, data, len, &gev, ref, sizeof(ref));

    cr_assert_eq(rc, grc, "decode %d (%s), avro-c %d (%s)", rc, err, grc, ref);
    if (rc == LF_OK) {
        cr_assert(lf_event_equal(&ev, &gev), "direct and avro-c differ");
        lf_event_clear(&ev);
        lf_event_clear(&gev);
    } else {
        cr_assert_str_eq(err, ref);
    }
    return rc;
}

/* The message is left to avro-c: the direct reader declines it. */
static void expect_declined(const void *data, size_t len)
{
    char err[512] = "";
    lf_event_t d;

    cr_assert_eq(lf_codec_decode_direct(codec, data, len, &d, err, sizeof(err)),
                 LF_ERR_INVALID);
    cr_assert_str_eq(err, "not read by the direct reader");
}

/* JSON text of @p ev, to free(). */
static char *to_json(const lf_event_t *ev)
{
    lf_buf_t out = {0};
    cr_assert_eq(lf_json_format_event(ev, &out), LF_OK);
    return out.data;
}

/* ---- round trips ------------------------------------------------------- */

typedef struct rt_case_s {
    const char *in;  /* JSON line as a producer sends it */
    const char *out; /* the JSON we write back, after the trip over Avro */
} rt_case_t;

static const rt_case_t rt_cases[] = {
    /* captured: multi-byte and emoji, every escape, a map, \u escapes in
     * input come out as raw UTF-8, \/ as / */
    {"{\"event_id\":\"e-\xc3\xbc-1\",\"lead_id\":\"L-\xc3\xbcn\xc3\xaf-"
     "\xf0\x9f\x98\x80\",\"type\":\"captured\",\"occurred_at\":"
     "\"2026-03-01T09:30:00.250Z\",\"source\":\"web-forms\",\"actor\":"
     "\"rule \\\"a\\\" \\\\ b\",\"channel\":\"paid\\tsearch\\nline\\r\","
     "\"campaign\":\"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \\u00e9\\/x\","
     "\"attributes\":{\"z\":\"1\",\"a\":\"ctl\\u0001\\u001f\\b\\f\","
     "\"utm_source\":\"\\ud83d\\ude00\",\"k\\\"ey\":\"\"}}",
     "{\"event_id\":\"e-\xc3\xbc-1\",\"lead_id\":\"L-\xc3\xbcn\xc3\xaf-"
     "\xf0\x9f\x98\x80\",\"type\":\"captured\",\"occurred_at\":"
     "\"2026-03-01T09:30:00.250Z\",\"source\":\"web-forms\",\"actor\":"
     "\"rule \\\"a\\\" \\\\ b\",\"channel\":\"paid\\tsearch\\nline\\r\","
     "\"campaign\":\"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xc3\xa9/x\","
     "\"attributes\":{\"a\":\"ctl\\u0001\\u001f\\u0008\\u000c\","
     "\"k\\\"ey\":\"\",\"utm_source\":\"\xf0\x9f\x98\x80\",\"z\":\"1\"}}"},
    /* captured: nulls and an empty map are omitted; epoch 0 */
    {"{\"event_id\":\"e2\",\"lead_id\":\"L\",\"type\":\"captured\","
     "\"occurred_at\":0,\"source\":\"s\",\"actor\":null,\"channel\":\"c\","
     "\"campaign\":null,\"attributes\":{}}",
     "{\"event_id\":\"e2\",\"lead_id\":\"L\",\"type\":\"captured\","
     "\"occurred_at\":\"1970-01-01T00:00:00.000Z\",\"source\":\"s\","
     "\"channel\":\"c\"}"},
    /* scored: INT32_MAX, epoch-ms integer input */
    {"{\"event_id\":\"e3\",\"lead_id\":\"L\",\"type\":\"scored\","
     "\"occurred_at\":1772357400250,\"source\":\"marketo\",\"score\":"
     "2147483647,\"threshold\":0,\"model\":\"m\\u00fc\"}",
     "{\"event_id\":\"e3\",\"lead_id\":\"L\",\"type\":\"scored\","
     "\"occurred_at\":\"2026-03-01T09:30:00.250Z\",\"source\":\"marketo\","
     "\"score\":2147483647,\"threshold\":0,\"model\":\"m\xc3\xbc\"}"},
    {"{\"event_id\":\"e4\",\"lead_id\":\"L\",\"type\":\"scored\","
     "\"occurred_at\":1,\"source\":\"marketo\",\"actor\":\"\",\"score\":0,"
     "\"threshold\":2147483647,\"model\":\"\"}",
     "{\"event_id\":\"e4\",\"lead_id\":\"L\",\"type\":\"scored\","
     "\"occurred_at\":\"1970-01-01T00:00:00.001Z\",\"source\":\"marketo\","
     "\"actor\":\"\",\"score\":0,\"threshold\":2147483647,\"model\":\"\"}"},
    /* handed_off: an offset converted to Z */
    {"{\"event_id\":\"e5\",\"lead_id\":\"L\",\"type\":\"handed_off\","
     "\"occurred_at\":\"2026-03-01T15:00:00.250+05:30\",\"source\":\"crm\","
     "\"owner\":\"rep \xf0\x9f\x98\x80\",\"sla_hours\":0}",
     "{\"event_id\":\"e5\",\"lead_id\":\"L\",\"type\":\"handed_off\","
     "\"occurred_at\":\"2026-03-01T09:30:00.250Z\",\"source\":\"crm\","
     "\"owner\":\"rep \xf0\x9f\x98\x80\",\"sla_hours\":0}"},
    {"{\"event_id\":\"e6\",\"lead_id\":\"L\",\"type\":\"handed_off\","
     "\"occurred_at\":\"2024-02-29T23:59:59.999Z\",\"source\":\"crm\","
     "\"owner\":\"o\",\"sla_hours\":2147483647}",
     "{\"event_id\":\"e6\",\"lead_id\":\"L\",\"type\":\"handed_off\","
     "\"occurred_at\":\"2024-02-29T23:59:59.999Z\",\"source\":\"crm\","
     "\"owner\":\"o\",\"sla_hours\":2147483647}"},
    /* accepted: a negative offset across a month end */
    {"{\"event_id\":\"e7\",\"lead_id\":\"L\",\"type\":\"accepted\","
     "\"occurred_at\":\"2026-02-28T20:00:00-08:00\",\"source\":\"crm\","
     "\"actor\":\"u-1\",\"owner\":\"o\"}",
     "{\"event_id\":\"e7\",\"lead_id\":\"L\",\"type\":\"accepted\","
     "\"occurred_at\":\"2026-03-01T04:00:00.000Z\",\"source\":\"crm\","
     "\"actor\":\"u-1\",\"owner\":\"o\"}"},
    /* recycled: a note with escapes; and with a null note */
    {"{\"event_id\":\"e8\",\"lead_id\":\"L\",\"type\":\"recycled\","
     "\"occurred_at\":0,\"source\":\"crm\",\"reason\":\"no_budget\","
     "\"note\":\"a\\\"b\\\\c\\td\\u0007\"}",
     "{\"event_id\":\"e8\",\"lead_id\":\"L\",\"type\":\"recycled\","
     "\"occurred_at\":\"1970-01-01T00:00:00.000Z\",\"source\":\"crm\","
     "\"reason\":\"no_budget\",\"note\":\"a\\\"b\\\\c\\td\\u0007\"}"},
    {"{\"event_id\":\"e9\",\"lead_id\":\"L\",\"type\":\"recycled\","
     "\"occurred_at\":0,\"source\":\"crm\",\"reason\":\"other\","
     "\"note\":null}",
     "{\"event_id\":\"e9\",\"lead_id\":\"L\",\"type\":\"recycled\","
     "\"occurred_at\":\"1970-01-01T00:00:00.000Z\",\"source\":\"crm\","
     "\"reason\":\"other\"}"},
    /* qualified: INT64_MAX, the last instant */
    {"{\"event_id\":\"e10\",\"lead_id\":\"L\",\"type\":\"qualified\","
     "\"occurred_at\":\"9999-12-31T23:59:59.999Z\",\"source\":\"sfdc\","
     "\"opportunity_id\":\"O-\xe2\x82\xac\",\"amount_minor\":"
     "9223372036854775807,\"currency\":\"EUR\"}",
     "{\"event_id\":\"e10\",\"lead_id\":\"L\",\"type\":\"qualified\","
     "\"occurred_at\":\"9999-12-31T23:59:59.999Z\",\"source\":\"sfdc\","
     "\"opportunity_id\":\"O-\xe2\x82\xac\",\"amount_minor\":"
     "9223372036854775807,\"currency\":\"EUR\"}"},
    {"{\"event_id\":\"e11\",\"lead_id\":\"L\",\"type\":\"qualified\","
     "\"occurred_at\":0,\"source\":\"sfdc\",\"opportunity_id\":\"O\","
     "\"amount_minor\":0,\"currency\":\"USD\"}",
     "{\"event_id\":\"e11\",\"lead_id\":\"L\",\"type\":\"qualified\","
     "\"occurred_at\":\"1970-01-01T00:00:00.000Z\",\"source\":\"sfdc\","
     "\"opportunity_id\":\"O\",\"amount_minor\":0,\"currency\":\"USD\"}"},
    /* won */
    {"{\"event_id\":\"e12\",\"lead_id\":\"L\",\"type\":\"won\","
     "\"occurred_at\":253402300799999,\"source\":\"sfdc\",\"amount_minor\":"
     "9223372036854775807,\"currency\":\"JPY\"}",
     "{\"event_id\":\"e12\",\"lead_id\":\"L\",\"type\":\"won\","
     "\"occurred_at\":\"9999-12-31T23:59:59.999Z\",\"source\":\"sfdc\","
     "\"amount_minor\":9223372036854775807,\"currency\":\"JPY\"}"},
    {"{\"event_id\":\"e13\",\"lead_id\":\"L\",\"type\":\"won\","
     "\"occurred_at\":0,\"source\":\"sfdc\",\"amount_minor\":0,"
     "\"currency\":\"USD\"}",
     "{\"event_id\":\"e13\",\"lead_id\":\"L\",\"type\":\"won\","
     "\"occurred_at\":\"1970-01-01T00:00:00.000Z\",\"source\":\"sfdc\","
     "\"amount_minor\":0,\"currency\":\"USD\"}"},
    /* lost, disqualified */
    {"{\"event_id\":\"e14\",\"lead_id\":\"L\",\"type\":\"lost\","
     "\"occurred_at\":0,\"source\":\"sfdc\",\"reason\":"
     "\"\xe4\xbe\xa1\xe6\xa0\xbc\"}",
     "{\"event_id\":\"e14\",\"lead_id\":\"L\",\"type\":\"lost\","
     "\"occurred_at\":\"1970-01-01T00:00:00.000Z\",\"source\":\"sfdc\","
     "\"reason\":\"\xe4\xbe\xa1\xe6\xa0\xbc\"}"},
    {"{\"event_id\":\"e15\",\"lead_id\":\"L\",\"type\":\"disqualified\","
     "\"occurred_at\":0,\"source\":\"sfdc\",\"actor\":\"\\u001b[31m\","
     "\"reason\":\"spam\\r\\n\"}",
     "{\"event_id\":\"e15\",\"lead_id\":\"L\",\"type\":\"disqualified\","
     "\"occurred_at\":\"1970-01-01T00:00:00.000Z\",\"source\":\"sfdc\","
     "\"actor\":\"\\u001b[31m\",\"reason\":\"spam\\r\\n\"}"},
    /* contract v2: account_id on any type; merged, voided, erased */
    {"{\"event_id\":\"e16\",\"lead_id\":\"L\",\"type\":\"won\","
     "\"occurred_at\":0,\"source\":\"sfdc\",\"account_id\":\"ACME \\u00e9\","
     "\"amount_minor\":5,\"currency\":\"USD\"}",
     "{\"event_id\":\"e16\",\"lead_id\":\"L\",\"type\":\"won\","
     "\"occurred_at\":\"1970-01-01T00:00:00.000Z\",\"source\":\"sfdc\","
     "\"account_id\":\"ACME "
     "\xc3\xa9\",\"amount_minor\":5,\"currency\":\"USD\"}"},
    {"{\"event_id\":\"e17\",\"lead_id\":\"L\",\"type\":\"merged\","
     "\"occurred_at\":0,\"source\":\"crm\",\"actor\":\"dedup\","
     "\"account_id\":null,\"into_lead_id\":\"L-9\"}",
     "{\"event_id\":\"e17\",\"lead_id\":\"L\",\"type\":\"merged\","
     "\"occurred_at\":\"1970-01-01T00:00:00.000Z\",\"source\":\"crm\","
     "\"actor\":\"dedup\",\"into_lead_id\":\"L-9\"}"},
    {"{\"event_id\":\"e18\",\"lead_id\":\"L\",\"type\":\"voided\","
     "\"occurred_at\":0,\"source\":\"crm\",\"account_id\":\"A\","
     "\"voided_event_id\":\"0b7e2d3c-1f4a-4c5b-8d6e-7f8091a2b3c4\","
     "\"reason\":\"typo\"}",
     "{\"event_id\":\"e18\",\"lead_id\":\"L\",\"type\":\"voided\","
     "\"occurred_at\":\"1970-01-01T00:00:00.000Z\",\"source\":\"crm\","
     "\"account_id\":\"A\","
     "\"voided_event_id\":\"0b7e2d3c-1f4a-4c5b-8d6e-7f8091a2b3c4\","
     "\"reason\":\"typo\"}"},
    {"{\"event_id\":\"e19\",\"lead_id\":\"L\",\"type\":\"erased\","
     "\"occurred_at\":0,\"source\":\"privacy\",\"request_id\":\"DSR-7\"}",
     "{\"event_id\":\"e19\",\"lead_id\":\"L\",\"type\":\"erased\","
     "\"occurred_at\":\"1970-01-01T00:00:00.000Z\",\"source\":\"privacy\","
     "\"request_id\":\"DSR-7\"}"},
};

static void round_trip(const char *in, const char *want)
{
    lf_event_t ev1, ev2, ev3;
    lf_buf_t wire = {0}, wire2 = {0};
    char *j1, *j2;

    parse_ok(in, &ev1);
    j1 = to_json(&ev1);
    cr_expect_str_eq(j1, want, "JSON before Avro:\n got  %s\n want %s", j1,
                     want);
    encode_ok(&ev1, &wire);
    cr_assert_geq(wire.len, LF_FRAME_HEADER);
    cr_expect_eq(memcmp(wire.data, "\0\0\0\0\2", 5), 0,
                 "frame header is not 00 00 00 00 02 (contract v2)");
    decode_direct_ok(wire.data, wire.len, &ev2);
    cr_expect(lf_event_equal(&ev1, &ev2), "decoded event differs: %s", in);
    j2 = to_json(&ev2);
    cr_expect_str_eq(j2, want, "JSON after Avro:\n got  %s\n want %s", j2,
                     want);
    /* encoding is deterministic */
    encode_ok(&ev2, &wire2);
    cr_expect(wire.len == wire2.len && !memcmp(wire.data, wire2.data, wire.len),
              "re-encoding changed the bytes");
    /* our output parses back to the same event */
    parse_ok(j2, &ev3);
    cr_expect(lf_event_equal(&ev1, &ev3), "output JSON reparsed differs");
    lf_event_clear(&ev1);
    lf_event_clear(&ev2);
    lf_event_clear(&ev3);
    lf_buf_free(&wire);
    lf_buf_free(&wire2);
    free(j1);
    free(j2);
}

Test(avro, round_trip_every_type)
{
    bool seen[LF_EV__COUNT] = {0};

    for (size_t i = 0; i < sizeof(rt_cases) / sizeof(rt_cases[0]); i++) {
        lf_event_t ev;
        parse_ok(rt_cases[i].in, &ev);
        seen[ev.type] = true;
        lf_event_clear(&ev);
        round_trip(rt_cases[i].in, rt_cases[i].out);
    }
    for (int t = 0; t < LF_EV__COUNT; t++)
        cr_expect(seen[t], "no round trip case for %s",
                  lf_event_type_name((lf_event_type_t)t));
}

Test(avro, round_trip_field_values)
{
    lf_event_t ev, back;
    lf_buf_t wire = {0};

    parse_ok(rt_cases[0].in, &ev);
    encode_ok(&ev, &wire);
    decode_ok(wire.data, wire.len, &back);
    cr_expect_str_eq(back.lead_id, "L-\xc3\xbcn\xc3\xaf-\xf0\x9f\x98\x80");
    cr_expect_str_eq(back.actor, "rule \"a\" \\ b");
    cr_expect_str_eq(back.u.captured.channel, "paid\tsearch\nline\r");
    cr_expect_eq(back.occurred_at, INT64_C(1772357400250));
    cr_assert_eq(back.u.captured.attr_count, 4);
    cr_expect_str_eq(back.u.captured.attrs[0].key, "a");
    cr_expect_str_eq(back.u.captured.attrs[0].value, "ctl\x01\x1f\b\f");
    cr_expect_str_eq(back.u.captured.attrs[1].key, "k\"ey");
    cr_expect_str_eq(back.u.captured.attrs[1].value, "");
    cr_expect_str_eq(back.u.captured.attrs[2].value, "\xf0\x9f\x98\x80");
    lf_event_clear(&ev);
    lf_event_clear(&back);

    parse_ok(rt_cases[9].in, &ev);
    encode_ok(&ev, &wire);
    decode_ok(wire.data, wire.len, &back);
    cr_expect_eq(back.type, LF_EV_QUALIFIED);
    cr_expect_eq(back.u.qualified.amount_minor, INT64_MAX);
    cr_expect_eq(back.occurred_at, LF_TIME_MAX_MS);
    cr_expect_str_eq(back.u.qualified.currency, "EUR");
    lf_event_clear(&ev);
    lf_event_clear(&back);
    lf_buf_free(&wire);
}

/* Limits: the largest allowed strings and maps survive the trip. */
Test(avro, round_trip_limits)
{
    lf_event_t ev, back;
    lf_buf_t wire = {0};
    char lead[LF_LEAD_ID_MAX + 1];

    lf_event_init(&ev);
    memset(lead, 'x', LF_LEAD_ID_MAX);
    lead[LF_LEAD_ID_MAX] = '\0';
    ev.type = LF_EV_CAPTURED;
    ev.event_id = strdup("e");
    ev.lead_id = strdup(lead);
    ev.source = strdup("s");
    ev.u.captured.channel = malloc(LF_STRING_MAX + 1);
    memset(ev.u.captured.channel, 'c', LF_STRING_MAX);
    ev.u.captured.channel[LF_STRING_MAX] = '\0';
    ev.u.captured.attrs = calloc(LF_ATTRS_MAX, sizeof(lf_attr_t));
    ev.u.captured.attr_count = LF_ATTRS_MAX;
    for (int i = 0; i < LF_ATTRS_MAX; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%03d", i);
        ev.u.captured.attrs[i].key = strdup(k);
        ev.u.captured.attrs[i].value = strdup(k + 1);
    }
    cr_assert_eq(lf_event_validate(&ev, NULL, 0), LF_OK);
    encode_ok(&ev, &wire);
    decode_direct_ok(wire.data, wire.len, &back);
    cr_expect(lf_event_equal(&ev, &back));
    cr_expect_eq(back.u.captured.attr_count, LF_ATTRS_MAX);
    cr_expect_eq(strlen(back.u.captured.channel), LF_STRING_MAX);
    lf_event_clear(&back);
    lf_event_clear(&ev);
    lf_buf_free(&wire);
}

/* The direct writer and avro-c's on the values where varints change
 * length or sign: every event type, extreme longs and ints, every recycle
 * reason, strings of 0, 63, 64, 127, 128 and 8192 bytes. encode_ok()
 * compares the bytes. */
Test(avro, direct_writer_matches_avro_c)
{
    static const int64_t longs[] = {
        0,         1,         -1,        63,
        64,        -64,       -65,       127,
        128,       8191,      8192,      INT32_MAX,
        INT32_MIN, INT64_MAX, INT64_MIN, LF_TIME_MAX_MS};
    static const size_t lens[] = {0, 1, 63, 64, 127, 128, 8192};
    lf_buf_t wire = {0};
    char *big = malloc(8193);

    memset(big, 'b', 8192);
    for (size_t i = 0; i < 2 * sizeof(longs) / sizeof(*longs); i++) {
        /* each value once written as contract v1, once as v2 */
        int version = i % 2 ? 1 : 2;
        lf_codec_set_contract(codec, version, NULL, 0);
        for (int t = 0; t < (version == 1 ? LF_EV_V1_COUNT : LF_EV__COUNT);
             t++) {
            size_t n = lens[i % (sizeof(lens) / sizeof(*lens))];
            lf_event_t ev;
            lf_attr_t attrs[2] = {{"a", big}, {"b", ""}};
            lf_event_init(&ev);
            big[n] = '\0';
            ev.type = (lf_event_type_t)t;
            ev.event_id = big;
            ev.lead_id = "L";
            ev.occurred_at = longs[i / 2];
            ev.source = big;
            ev.actor = i % 4 > 1 ? big : NULL;
            ev.account_id = version == 2 && i % 3 ? big : NULL;
            switch (ev.type) {
            case LF_EV_CAPTURED:
                ev.u.captured.channel = big;
                ev.u.captured.campaign = i % 3 ? NULL : "c";
                ev.u.captured.attrs = attrs;
                ev.u.captured.attr_count = i % 3;
                break;
            case LF_EV_SCORED:
                ev.u.scored.score = (int32_t)longs[i / 2];
                ev.u.scored.threshold = -(int32_t)(longs[i / 2] & 0x7fffffff);
                ev.u.scored.model = big;
                break;
            case LF_EV_HANDED_OFF:
                ev.u.handed_off.owner = big;
                ev.u.handed_off.sla_hours = (int32_t)longs[i / 2];
                break;
            case LF_EV_ACCEPTED:
                ev.u.accepted.owner = big;
                break;
            case LF_EV_RECYCLED:
                ev.u.recycled.reason = (lf_recycle_reason_t)(i % LF_RR__COUNT);
                ev.u.recycled.note = i % 2 ? NULL : big;
                break;
            case LF_EV_QUALIFIED:
                ev.u.qualified.opportunity_id = big;
                ev.u.qualified.amount_minor = longs[i / 2];
                ev.u.qualified.currency = "EUR";
                break;
            case LF_EV_WON:
                ev.u.won.amount_minor = longs[i / 2];
                ev.u.won.currency = big;
                break;
            case LF_EV_LOST:
                ev.u.lost.reason = big;
                break;
            case LF_EV_MERGED:
                ev.u.merged.into_lead_id = big;
                break;
            case LF_EV_VOIDED:
                ev.u.voided.voided_event_id = "V";
                ev.u.voided.reason = big;
                break;
            case LF_EV_ERASED:
                ev.u.erased.request_id = big;
                break;
            default:
                ev.u.disqualified.reason = big;
                break;
            }
            encode_ok(&ev, &wire); /* the strings are not the event's */
            decode_same(wire.data, wire.len);
            big[n] = 'b';
        }
    }
    lf_buf_free(&wire);
    free(big);
}

/* Both writers refuse what they cannot write, with a reason. */
Test(avro, direct_writer_refuses_incomplete_events)
{
    lf_event_t ev;
    lf_buf_t wire = {0};
    char err[256] = "";

    lf_event_init(&ev);
    ev.type = LF_EV_LOST;
    ev.event_id = "e";
    ev.lead_id = "L";
    ev.source = "s";
    cr_assert_eq(lf_codec_encode(codec, &ev, 1, &wire, err, sizeof(err)),
                 LF_ERR_INVALID);
    cr_assert_str_eq(err, "missing required field \"reason\"");
    ev.type = (lf_event_type_t)42;
    cr_assert_eq(lf_codec_encode(codec, &ev, 1, &wire, err, sizeof(err)),
                 LF_ERR_INVALID);
    cr_assert_str_eq(err, "field \"type\": unknown event type 42");
    ev.type = LF_EV_RECYCLED;
    ev.u.recycled.reason = (lf_recycle_reason_t)9;
    cr_assert_eq(lf_codec_encode(codec, &ev, 1, &wire, err, sizeof(err)),
                 LF_ERR_INVALID);
    cr_assert_str_eq(err, "field \"reason\": unknown recycle reason 9");
    lf_buf_free(&wire);
}

/* One codec is reused: nothing of one event may leak into the next. */
Test(avro, codec_reuse_does_not_leak_state)
{
    static const char *seq[] = {
        "{\"event_id\":\"a\",\"lead_id\":\"L\",\"type\":\"captured\","
        "\"occurred_at\":0,\"source\":\"s\",\"actor\":\"x\",\"channel\":\"c\","
        "\"campaign\":\"k\",\"attributes\":{\"a\":\"1\",\"b\":\"2\"}}",
        "{\"event_id\":\"b\",\"lead_id\":\"L\",\"type\":\"captured\","
        "\"occurred_at\":0,\"source\":\"s\",\"channel\":\"c\","
        "\"attributes\":{\"c\":\"3\"}}",
        "{\"event_id\":\"c\",\"lead_id\":\"L\",\"type\":\"scored\","
        "\"occurred_at\":0,\"source\":\"s\",\"score\":1,\"threshold\":2,"
        "\"model\":\"m\"}",
        "{\"event_id\":\"d\",\"lead_id\":\"L\",\"type\":\"captured\","
        "\"occurred_at\":0,\"source\":\"s\",\"channel\":\"c\"}",
    };
    for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
        lf_event_t ev, back;
        lf_buf_t wire = {0};
        char *a, *b;
        parse_ok(seq[i], &ev);
        encode_ok(&ev, &wire);
        decode_ok(wire.data, wire.len, &back);
        a = to_json(&ev);
        b = to_json(&back);
        cr_expect_str_eq(b, a, "event %zu", i);
        free(a);
        free(b);
        lf_event_clear(&ev);
        lf_event_clear(&back);
        lf_buf_free(&wire);
    }
}

/* ---- exact bytes --------------------------------------------------------- */

typedef struct raw_s {
    uint8_t b[8192];
    size_t n;
} raw_t;

static void r_byte(raw_t *r, uint8_t v)
{
    cr_assert_lt(r->n, sizeof(r->b));
    r->b[r->n++] = v;
}

static void r_bytes(raw_t *r, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        r_byte(r, ((const uint8_t *)p)[i]);
}

/* Avro long: zig-zag, then base-128 little-endian varint. */
static void r_long(raw_t *r, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (z > 0x7f) {
        r_byte(r, (uint8_t)((z & 0x7f) | 0x80));
        z >>= 7;
    }
    r_byte(r, (uint8_t)z);
}

static void r_strn(raw_t *r, const char *s, size_t n)
{
    r_long(r, (int64_t)n);
    r_bytes(r, s, n);
}

static void r_str(raw_t *r, const char *s)
{
    r_strn(r, s, strlen(s));
}

static void r_header(raw_t *r, uint8_t magic, uint32_t id)
{
    r->n = 0;
    r_byte(r, magic);
    r_byte(r, (uint8_t)(id >> 24));
    r_byte(r, (uint8_t)(id >> 16));
    r_byte(r, (uint8_t)(id >> 8));
    r_byte(r, (uint8_t)id);
}

/* Header and envelope: event_id "e", lead_id "L", @p type, occurred_at 0,
 * source "s", actor null. The payload follows. */
static void r_envelope(raw_t *r, int64_t type)
{
    r_header(r, 0, 1);
    r_str(r, "e");
    r_str(r, "L");
    r_long(r, type);
    r_long(r, 0);
    r_str(r, "s");
    r_long(r, 0); /* actor: null */
}

/* A Captured event up to its attributes map: channel "c", campaign null. */
static void r_captured_head(raw_t *r)
{
    r_envelope(r, LF_EV_CAPTURED);
    r_long(r, LF_EV_CAPTURED); /* payload branch */
    r_str(r, "c");
    r_long(r, 0); /* campaign: null */
}

/* One map entry. */
static void r_pair(raw_t *r, const char *key, const char *value)
{
    r_str(r, key);
    r_str(r, value);
}

/* A valid Accepted event, built by hand. */
static void r_accepted(raw_t *r)
{
    r_envelope(r, LF_EV_ACCEPTED);
    r_long(r, LF_EV_ACCEPTED); /* payload branch */
    r_str(r, "o");
}

Test(avro, exact_wire_bytes)
{
    static const uint8_t want[] = {
        0x00, 0x00, 0x00, 0x00, 0x01, /* magic, schema id 1 */
        0x02, 'e',  0x02, 'L',        /* event_id, lead_id */
        0x06,                         /* type ACCEPTED = 3 */
        0x00,                         /* occurred_at 0 */
        0x02, 's',                    /* source */
        0x02, 0x02, 'u',              /* actor: branch 1, "u" */
        0x06, 0x02, 'o',              /* payload branch 3, owner "o" */
    };
    lf_event_t ev;
    lf_buf_t wire = {0};

    /* the bytes of contract v1 (contract.version=1) */
    lf_codec_set_contract(codec, 1, NULL, 0);
    parse_ok("{\"event_id\":\"e\",\"lead_id\":\"L\",\"type\":\"accepted\","
             "\"occurred_at\":0,\"source\":\"s\",\"actor\":\"u\","
             "\"owner\":\"o\"}",
             &ev);
    encode_ok(&ev, &wire);
    cr_assert_eq(wire.len, sizeof(want));
    cr_expect_eq(memcmp(wire.data, want, sizeof(want)), 0);
    lf_event_clear(&ev);

    /* a negative long and a multi-byte varint: 1772357400250 ms, score 64 */
    static const uint8_t want2[] = {
        0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 'e',  0x02,
        'L',  0x02, 0xf4, 0xda, 0xdd, 0x8b, 0x95, 0x67, /* 1772357400250 */
        0x02, 's',  0x00, 0x02, 0x80, 0x01,             /* score 64 */
        0x02,                                           /* threshold 1 */
        0x02, 'm'};
    parse_ok("{\"event_id\":\"e\",\"lead_id\":\"L\",\"type\":\"scored\","
             "\"occurred_at\":1772357400250,\"source\":\"s\",\"score\":64,"
             "\"threshold\":1,\"model\":\"m\"}",
             &ev);
    encode_ok(&ev, &wire);
    cr_assert_eq(wire.len, sizeof(want2));
    cr_expect_eq(memcmp(wire.data, want2, sizeof(want2)), 0);
    lf_event_clear(&ev);

    /* the schema id is written big-endian */
    parse_ok("{\"event_id\":\"e\",\"lead_id\":\"L\",\"type\":\"lost\","
             "\"occurred_at\":0,\"source\":\"s\",\"reason\":\"r\"}",
             &ev);
    char err[256];
    cr_assert_eq(
        lf_codec_encode(codec, &ev, 0x01020304, &wire, err, sizeof(err)),
        LF_OK);
    cr_expect_eq(memcmp(wire.data, "\x00\x01\x02\x03\x04", 5), 0);
    lf_event_clear(&ev);
    lf_buf_free(&wire);
}

Test(avro, hand_built_message_decodes)
{
    raw_t r;
    lf_event_t ev;

    r_accepted(&r);
    decode_direct_ok(r.b, r.n, &ev);
    cr_expect_eq(ev.type, LF_EV_ACCEPTED);
    cr_expect_str_eq(ev.event_id, "e");
    cr_expect_str_eq(ev.lead_id, "L");
    cr_expect_str_eq(ev.source, "s");
    cr_expect_null(ev.actor);
    cr_expect_str_eq(ev.u.accepted.owner, "o");
    lf_event_clear(&ev);
}

/* Maps in the block form with a byte size (negative count), and split over
 * several blocks, are valid Avro that other writers produce. */
static void expect_reject(const char *what, const void *data, size_t len,
                          const char *n1, const char *n2);

/* A key written twice (the wire can say it, a map cannot hold it): avro-c
 * would keep the later value and drop the other without a word, which the
 * JSON lines refuse too ("duplicate object key"): refused, with the
 * reason, in one block or across blocks. */
Test(avro, map_repeated_key_is_refused)
{
    raw_t r;
    lf_event_t ev;
    static const char nul_value[] = {'x', '\0', 'y'};

    r_captured_head(&r);
    r_long(&r, 3);
    r_str(&r, "k");
    r_long(&r, 3); /* "x\0y": replaced below */
    memcpy(r.b + r.n, nul_value, 3);
    r.n += 3;
    r_pair(&r, "j", "1");
    r_pair(&r, "k", "2");
    r_long(&r, 0);
    expect_reject("a repeated map key", r.b, r.n, "a map key is repeated",
                  "attributes");
    /* the same key in two blocks */
    r_captured_head(&r);
    r_long(&r, 1);
    r_pair(&r, "k", "1");
    r_long(&r, 1);
    r_pair(&r, "k", "1");
    r_long(&r, 0);
    expect_reject("a map key repeated across blocks", r.b, r.n,
                  "a map key is repeated", "attributes");
    /* distinct keys in two blocks still read */
    r_captured_head(&r);
    r_long(&r, 1);
    r_pair(&r, "k", "1");
    r_long(&r, 1);
    r_pair(&r, "ka", "1");
    r_long(&r, 0);
    decode_ok(r.b, r.n, &ev);
    cr_expect_eq(ev.u.captured.attr_count, 2);
    lf_event_clear(&ev);
}

/* An empty attribute key, which the JSON lines refuse, is refused from
 * Kafka too (both readers), so it cannot get in by another producer. */
Test(avro, map_empty_key_is_refused)
{
    raw_t r;
    char err[512] = "";
    lf_event_t ev;

    r_captured_head(&r);
    r_long(&r, 1);
    r_pair(&r, "", "v");
    r_long(&r, 0);
    cr_expect_eq(decode_same(r.b, r.n), LF_ERR_INVALID);
    cr_expect_eq(lf_codec_decode(codec, r.b, r.n, &ev, err, sizeof(err)),
                 LF_ERR_INVALID);
    cr_expect(strstr(err, "field \"attributes\": empty key"), "%s", err);
}

Test(avro, map_block_forms_decode)
{
    raw_t r;
    lf_event_t ev;

    r_captured_head(&r);
    r_long(&r, -2); /* two entries, then their byte size */
    r_long(&r, 8);
    r_pair(&r, "b", "2");
    r_pair(&r, "a", "1");
    r_long(&r, 1); /* a second block of one */
    r_pair(&r, "c", "3");
    r_long(&r, 0);
    expect_declined(r.b, r.n); /* the sized-block form is avro-c's */
    decode_ok(r.b, r.n, &ev);
    cr_assert_eq(ev.u.captured.attr_count, 3);
    cr_expect_str_eq(ev.u.captured.attrs[0].key, "a");
    cr_expect_str_eq(ev.u.captured.attrs[0].value, "1");
    cr_expect_str_eq(ev.u.captured.attrs[1].key, "b");
    cr_expect_str_eq(ev.u.captured.attrs[2].key, "c");
    cr_expect_str_eq(ev.u.captured.attrs[2].value, "3");
    lf_event_clear(&ev);
}

/* ---- the decoder against hostile bytes -------------------------------- */

static void expect_reject(const char *what, const void *data, size_t len,
                          const char *n1, const char *n2)
{
    lf_event_t ev, gev;
    char err[512] = "", ref[512] = "";
    lf_err_t rc = lf_codec_decode(codec, data, len, &ev, err, sizeof(err));
    lf_err_t grc =
        lf_codec_decode_generic(codec, data, len, &gev, ref, sizeof(ref));

    /* Whichever reader decided, the answer is avro-c's. */
    cr_expect_eq(grc, rc, "%s: avro-c's reader answers otherwise", what);
    cr_expect_str_eq(err, ref, "%s: errors differ", what);
    if (grc == LF_OK)
        lf_event_clear(&gev);
    cr_expect_eq(rc, LF_ERR_INVALID, "%s: accepted", what);
    cr_expect_neq(err[0], '\0', "%s: no reason given", what);
    cr_expect(n1 == NULL || strstr(err, n1) != NULL,
              "%s: error \"%s\" lacks \"%s\"", what, err, n1);
    cr_expect(n2 == NULL || strstr(err, n2) != NULL,
              "%s: error \"%s\" lacks \"%s\"", what, err, n2);
    cr_expect(ev.event_id == NULL && ev.lead_id == NULL && ev.source == NULL,
              "%s: event not cleared", what);
    if (rc == LF_OK)
        lf_event_clear(&ev);
}

Test(avro, reject_empty)
{
    expect_reject("empty", "", 0, "empty", NULL);
    expect_reject("NULL", NULL, 0, "empty", NULL);
}

Test(avro, reject_bad_magic)
{
    raw_t r;

    r_accepted(&r);
    r.b[0] = 0x01;
    expect_reject("magic 1", r.b, r.n, "magic", "0x01");
    /* a JSON line sent to the topic by mistake */
    expect_reject("JSON", "{\"lead_id\":\"L\"}", 15, "magic", "0x7b");
    expect_reject("one byte", "\x05", 1, "magic", NULL);
}

Test(avro, reject_unknown_schema_id)
{
    static const uint32_t ids[] = {0, 3, 256, 0x01000001, 0xffffffff};
    raw_t r;

    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char want[64];
        r_accepted(&r);
        r.b[1] = (uint8_t)(ids[i] >> 24);
        r.b[2] = (uint8_t)(ids[i] >> 16);
        r.b[3] = (uint8_t)(ids[i] >> 8);
        r.b[4] = (uint8_t)ids[i];
        snprintf(want, sizeof(want), "schema id %d", (int32_t)ids[i]);
        expect_reject(want, r.b, r.n, want, NULL);
    }
}

Test(avro, reject_short_header)
{
    expect_reject("header 1", "\0", 1, "header", NULL);
    expect_reject("header 4", "\0\0\0\1", 4, "header", NULL);
    /* header only, no body */
    expect_reject("header 5", "\0\0\0\0\1", 5, "truncated", NULL);
}

/* Every prefix of a valid message is rejected, without a crash (run under
 * ASan/UBSan too), for a message of every type. */
Test(avro, reject_truncated_at_every_byte)
{
    for (size_t i = 0; i < sizeof(rt_cases) / sizeof(rt_cases[0]); i++) {
        lf_event_t ev;
        lf_buf_t wire = {0};
        parse_ok(rt_cases[i].in, &ev);
        encode_ok(&ev, &wire);
        lf_event_clear(&ev);
        for (size_t len = 0; len < wire.len; len++) {
            /* a copy of exactly len bytes, so ASan sees any over-read */
            uint8_t *cut = malloc(len ? len : 1);
            char what[64];
            memcpy(cut, wire.data, len);
            snprintf(what, sizeof(what), "case %zu cut at %zu/%zu", i, len,
                     wire.len);
            expect_reject(what, cut, len, NULL, NULL);
            free(cut);
        }
        lf_buf_free(&wire);
    }
}

Test(avro, reject_trailing_garbage)
{
    raw_t r;

    r_accepted(&r);
    r_byte(&r, 0x00);
    expect_reject("one trailing byte", r.b, r.n, "trailing", "1 ");
    r_accepted(&r);
    for (int i = 0; i < 100; i++)
        r_byte(&r, 0xff);
    expect_reject("100 trailing bytes", r.b, r.n, "trailing", "100");
    /* two messages glued together */
    r_accepted(&r);
    size_t n = r.n;
    r_bytes(&r, r.b, n);
    expect_reject("two messages", r.b, r.n, "trailing", NULL);
}

Test(avro, reject_union_index_out_of_range)
{
    raw_t r;

    /* payload branch 9 of 9 */
    r_envelope(&r, LF_EV_ACCEPTED);
    r_long(&r, 9);
    r_str(&r, "o");
    expect_reject("payload branch 9", r.b, r.n, "out of range", "payload");
    /* payload branch -1 */
    r_envelope(&r, LF_EV_ACCEPTED);
    r_long(&r, -1);
    r_str(&r, "o");
    expect_reject("payload branch -1", r.b, r.n, "out of range", "payload");
    /* payload branch 2^40 */
    r_envelope(&r, LF_EV_ACCEPTED);
    r_long(&r, INT64_C(1) << 40);
    r_str(&r, "o");
    expect_reject("payload branch 2^40", r.b, r.n, "out of range", "payload");
    /* actor branch 2 of 2 */
    r_header(&r, 0, 1);
    r_str(&r, "e");
    r_str(&r, "L");
    r_long(&r, LF_EV_ACCEPTED);
    r_long(&r, 0);
    r_str(&r, "s");
    r_long(&r, 2);
    r_str(&r, "a");
    r_long(&r, LF_EV_ACCEPTED);
    r_str(&r, "o");
    expect_reject("actor branch 2", r.b, r.n, "out of range", "actor");
    /* campaign branch 5, inside the payload */
    r_envelope(&r, LF_EV_CAPTURED);
    r_long(&r, LF_EV_CAPTURED);
    r_str(&r, "c");
    r_long(&r, 5);
    r_long(&r, 0);
    expect_reject("campaign branch 5", r.b, r.n, "out of range", "campaign");
}

Test(avro, reject_negative_lengths)
{
    raw_t r;

    /* event_id length -1 */
    r_header(&r, 0, 1);
    r_long(&r, -1);
    r_str(&r, "rest");
    expect_reject("event_id -1", r.b, r.n, "negative", "event_id");
    /* the most negative length */
    r_header(&r, 0, 1);
    r_long(&r, INT64_MIN);
    expect_reject("event_id INT64_MIN", r.b, r.n, "negative", "event_id");
    /* owner length -5, deeper in */
    r_envelope(&r, LF_EV_ACCEPTED);
    r_long(&r, LF_EV_ACCEPTED);
    r_long(&r, -5);
    r_bytes(&r, "ooooo", 5);
    expect_reject("owner -5", r.b, r.n, "negative", "owner");
    /* a map key of length -3 */
    r_captured_head(&r);
    r_long(&r, 1);
    r_long(&r, -3);
    r_str(&r, "v");
    r_long(&r, 0);
    expect_reject("map key -3", r.b, r.n, "negative", "attributes");
    /* a map value of length -2 */
    r_captured_head(&r);
    r_long(&r, 1);
    r_str(&r, "k");
    r_long(&r, -2);
    r_long(&r, 0);
    expect_reject("map value -2", r.b, r.n, "negative", "attributes");
    /* a negative block count whose byte size is negative */
    r_captured_head(&r);
    r_long(&r, -1);
    r_long(&r, -4);
    r_str(&r, "k");
    r_str(&r, "v");
    r_long(&r, 0);
    expect_reject("block size -4", r.b, r.n, "out of range", "attributes");
}

Test(avro, reject_huge_lengths)
{
    raw_t r;

    r_header(&r, 0, 1);
    r_str(&r, "e");
    r_long(&r, INT64_C(1) << 40);
    r_str(&r, "L");
    expect_reject("lead_id 2^40", r.b, r.n, "exceeds", "lead_id");
    r_header(&r, 0, 1);
    r_long(&r, INT64_MAX);
    expect_reject("event_id INT64_MAX", r.b, r.n, "exceeds", "event_id");
    /* one byte more than is left */
    r_header(&r, 0, 1);
    r_long(&r, 4);
    r_bytes(&r, "abc", 3);
    expect_reject("event_id 4 of 3", r.b, r.n, "exceeds", "event_id");
    /* a map of 2^50 entries */
    r_captured_head(&r);
    r_long(&r, INT64_C(1) << 50);
    r_str(&r, "k");
    r_str(&r, "v");
    r_long(&r, 0);
    expect_reject("map count 2^50", r.b, r.n, "exceeds", "attributes");
    /* the most negative block count */
    r_captured_head(&r);
    r_long(&r, INT64_MIN);
    r_long(&r, 0);
    expect_reject("map count INT64_MIN", r.b, r.n, "out of range",
                  "attributes");
    /* a varint that never ends */
    r_header(&r, 0, 1);
    for (int i = 0; i < 11; i++)
        r_byte(&r, 0xff);
    r_byte(&r, 0x01);
    expect_reject("11-byte varint", r.b, r.n, "varint", "event_id");
    /* an int beyond 32 bits */
    r_envelope(&r, LF_EV_SCORED);
    r_long(&r, LF_EV_SCORED);
    r_long(&r, INT64_C(1) << 32);
    r_long(&r, 1);
    r_str(&r, "m");
    expect_reject("score 2^32", r.b, r.n, "32-bit", "score");
    /* more than the model allows in a map: 257 entries */
    r_captured_head(&r);
    r_long(&r, LF_ATTRS_MAX + 1);
    for (int i = 0; i <= LF_ATTRS_MAX; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        r_str(&r, k);
        r_str(&r, "");
    }
    r_long(&r, 0);
    expect_reject("257 attributes", r.b, r.n, "attributes", "257");
}

Test(avro, reject_enum_out_of_range)
{
    raw_t r;

    r_envelope(&r, 9);
    r_long(&r, 3);
    r_str(&r, "o");
    expect_reject("type 9", r.b, r.n, "out of range", "type");
    r_envelope(&r, -1);
    r_long(&r, 3);
    r_str(&r, "o");
    expect_reject("type -1", r.b, r.n, "out of range", "type");
    r_envelope(&r, LF_EV_RECYCLED);
    r_long(&r, LF_EV_RECYCLED);
    r_long(&r, 7);
    r_long(&r, 0);
    expect_reject("reason 7", r.b, r.n, "out of range", "reason");
}

/* Encodings other writers may use, longer than they need be: both readers
 * take them, to the same event, and the direct one reads them itself. */
Test(avro, unusual_encodings_read_directly)
{
    raw_t r;
    lf_event_t ev;
    static const uint8_t zero5[] = {0x80, 0x80, 0x80, 0x80, 0x00};
    static const uint8_t min64[] = {0xff, 0xff, 0xff, 0xff, 0xff,
                                    0xff, 0xff, 0xff, 0xff, 0x01};

    /* A 5-byte int 0 (score), a 2-byte type and branch. */
    r_header(&r, 0, 1);
    r_str(&r, "e");
    r_str(&r, "L");
    r_byte(&r, 0x82); /* type 1 (scored) in two bytes */
    r_byte(&r, 0x00);
    r_long(&r, 0);
    r_str(&r, "s");
    r_long(&r, 0);
    r_byte(&r, 0x82); /* payload branch 1 in two bytes */
    r_byte(&r, 0x00);
    r_bytes(&r, zero5, sizeof(zero5)); /* score */
    r_long(&r, 50);
    r_str(&r, "m");
    decode_direct_ok(r.b, r.n, &ev);
    cr_expect_eq(ev.type, LF_EV_SCORED);
    cr_expect_eq(ev.u.scored.score, 0);
    lf_event_clear(&ev);

    /* The widest long: INT64_MIN in ten bytes, the last one 0x01. */
    r_envelope(&r, LF_EV_WON);
    r_long(&r, LF_EV_WON);
    r_bytes(&r, min64, sizeof(min64));
    r_str(&r, "EUR");
    decode_same(r.b, r.n); /* a negative amount: the contract decides */

    /* Attributes in two positive blocks, a one-byte key, 256 entries (an
     * empty key is refused: map_empty_key_is_refused). */
    r_captured_head(&r);
    r_long(&r, 1);
    r_pair(&r, "0", "short key");
    r_long(&r, LF_ATTRS_MAX - 1);
    for (int i = 1; i < LF_ATTRS_MAX; i++) {
        char k[8];
        snprintf(k, sizeof(k), "k%03d", i);
        r_pair(&r, k, "v");
    }
    r_long(&r, 0);
    decode_direct_ok(r.b, r.n, &ev);
    cr_assert_eq(ev.u.captured.attr_count, LF_ATTRS_MAX);
    cr_expect_str_eq(ev.u.captured.attrs[0].key, "0");
    cr_expect_str_eq(ev.u.captured.attrs[0].value, "short key");
    lf_event_clear(&ev);
}

/* Numbers wider than their type: refused by both readers, with the same
 * words, never read as another number. */
Test(avro, reject_overlong_numbers)
{
    raw_t r;
    static const uint8_t int6[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    static const uint8_t wide64[] = {0x80, 0x80, 0x80, 0x80, 0x80,
                                     0x80, 0x80, 0x80, 0x80, 0x02};

    r_envelope(&r, LF_EV_SCORED);
    r_long(&r, LF_EV_SCORED);
    r_bytes(&r, int6, sizeof(int6)); /* score: a 6-byte int */
    r_long(&r, 50);
    r_str(&r, "m");
    expect_reject("6-byte int", r.b, r.n, "longer than 5 bytes", "score");

    r_envelope(&r, LF_EV_WON);
    r_long(&r, LF_EV_WON);
    r_bytes(&r, wide64, sizeof(wide64)); /* amount: bit 64 set, rest 0 */
    r_str(&r, "EUR");
    expect_reject("65-bit long", r.b, r.n, "wider than 64 bits",
                  "amount_minor");
}

Test(avro, reject_payload_not_matching_type)
{
    raw_t r;

    /* a SCORED event carrying an Accepted payload: well-formed Avro */
    r_envelope(&r, LF_EV_SCORED);
    r_long(&r, LF_EV_ACCEPTED);
    r_str(&r, "o");
    expect_reject("scored/accepted", r.b, r.n, "payload", "ACCEPTED");
    /* LOST and DISQUALIFIED have the same shape: only the branch differs */
    r_envelope(&r, LF_EV_LOST);
    r_long(&r, LF_EV_DISQUALIFIED);
    r_str(&r, "r");
    expect_reject("lost/disqualified", r.b, r.n, "payload", "DISQUALIFIED");
}

Test(avro, reject_nul_inside_string)
{
    raw_t r;

    r_header(&r, 0, 1);
    r_str(&r, "e");
    r_strn(&r, "L\0x", 3);
    r_long(&r, LF_EV_ACCEPTED);
    r_long(&r, 0);
    r_str(&r, "s");
    r_long(&r, 0);
    r_long(&r, LF_EV_ACCEPTED);
    r_str(&r, "o");
    expect_reject("NUL in lead_id", r.b, r.n, "NUL", "lead_id");

    r_envelope(&r, LF_EV_ACCEPTED);
    r_long(&r, LF_EV_ACCEPTED);
    r_strn(&r, "o\0", 2);
    expect_reject("NUL at the end of owner", r.b, r.n, "NUL", "owner");

    r_captured_head(&r);
    r_long(&r, 1);
    r_str(&r, "k");
    r_strn(&r, "v\0v", 3);
    r_long(&r, 0);
    expect_reject("NUL in a map value", r.b, r.n, "NUL", "attributes");

    /* a NUL in a map key would silently cut the key short */
    r_captured_head(&r);
    r_long(&r, 1);
    r_strn(&r, "k\0hidden", 8);
    r_str(&r, "v");
    r_long(&r, 0);
    expect_reject("NUL in a map key", r.b, r.n, "NUL", "attributes");
}

Test(avro, reject_invalid_utf8_inside_string)
{
    raw_t r;

    r_header(&r, 0, 1);
    r_str(&r, "e");
    r_str(&r, "L");
    r_long(&r, LF_EV_ACCEPTED);
    r_long(&r, 0);
    r_str(&r, "s\xff");
    r_long(&r, 0);
    r_long(&r, LF_EV_ACCEPTED);
    r_str(&r, "o");
    expect_reject("0xff in source", r.b, r.n, "UTF-8", "source");

    r_envelope(&r, LF_EV_LOST);
    r_long(&r, LF_EV_LOST);
    r_str(&r, "\xed\xa0\x80");
    expect_reject("surrogate in reason", r.b, r.n, "UTF-8", "reason");

    r_captured_head(&r);
    r_long(&r, 1);
    r_str(&r, "k\xc0\xaf");
    r_str(&r, "v");
    r_long(&r, 0);
    expect_reject("overlong in a map key", r.b, r.n, "UTF-8", "attributes");
}

/* The contract is checked after decoding too: Avro's types cannot say
 * "not negative" or "three letters". */
Test(avro, reject_contract_violations)
{
    raw_t r;
    char lead[LF_LEAD_ID_MAX + 2];

    r_header(&r, 0, 1);
    r_str(&r, "e");
    r_str(&r, "");
    r_long(&r, LF_EV_ACCEPTED);
    r_long(&r, 0);
    r_str(&r, "s");
    r_long(&r, 0);
    r_long(&r, LF_EV_ACCEPTED);
    r_str(&r, "o");
    expect_reject("empty lead_id", r.b, r.n, "\"lead_id\"", "empty");

    memset(lead, 'x', LF_LEAD_ID_MAX + 1);
    lead[LF_LEAD_ID_MAX + 1] = '\0';
    r_header(&r, 0, 1);
    r_str(&r, "e");
    r_str(&r, lead);
    r_long(&r, LF_EV_ACCEPTED);
    r_long(&r, 0);
    r_str(&r, "s");
    r_long(&r, 0);
    r_long(&r, LF_EV_ACCEPTED);
    r_str(&r, "o");
    expect_reject("129-byte lead_id", r.b, r.n, "\"lead_id\"", "129");

    r_header(&r, 0, 1);
    r_str(&r, "");
    r_str(&r, "L");
    r_long(&r, LF_EV_ACCEPTED);
    r_long(&r, 0);
    r_str(&r, "s");
    r_long(&r, 0);
    r_long(&r, LF_EV_ACCEPTED);
    r_str(&r, "o");
    expect_reject("empty event_id", r.b, r.n, "\"event_id\"", NULL);

    r_header(&r, 0, 1);
    r_str(&r, "e");
    r_str(&r, "L");
    r_long(&r, LF_EV_ACCEPTED);
    r_long(&r, -1);
    r_str(&r, "s");
    r_long(&r, 0);
    r_long(&r, LF_EV_ACCEPTED);
    r_str(&r, "o");
    expect_reject("occurred_at -1", r.b, r.n, "\"occurred_at\"", NULL);

    r_header(&r, 0, 1);
    r_str(&r, "e");
    r_str(&r, "L");
    r_long(&r, LF_EV_ACCEPTED);
    r_long(&r, LF_TIME_MAX_MS + 1);
    r_str(&r, "s");
    r_long(&r, 0);
    r_long(&r, LF_EV_ACCEPTED);
    r_str(&r, "o");
    expect_reject("occurred_at after 9999", r.b, r.n, "\"occurred_at\"", NULL);

    r_envelope(&r, LF_EV_SCORED);
    r_long(&r, LF_EV_SCORED);
    r_long(&r, -1);
    r_long(&r, 0);
    r_str(&r, "m");
    expect_reject("score -1", r.b, r.n, "\"score\"", "negative");

    r_envelope(&r, LF_EV_HANDED_OFF);
    r_long(&r, LF_EV_HANDED_OFF);
    r_str(&r, "o");
    r_long(&r, -1);
    expect_reject("sla_hours -1", r.b, r.n, "\"sla_hours\"", "negative");

    r_envelope(&r, LF_EV_WON);
    r_long(&r, LF_EV_WON);
    r_long(&r, -1);
    r_str(&r, "EUR");
    expect_reject("amount -1", r.b, r.n, "\"amount_minor\"", "negative");

    r_envelope(&r, LF_EV_QUALIFIED);
    r_long(&r, LF_EV_QUALIFIED);
    r_str(&r, "O");
    r_long(&r, 1);
    r_str(&r, "eur");
    expect_reject("currency eur", r.b, r.n, "\"currency\"", NULL);
}

/* Random corruption of valid messages: the decoder either rejects with a
 * reason or returns an event that passes validation and re-encodes to
 * bytes that decode to the same event. Deterministic (fixed seed). */
Test(avro, random_corruption_never_crashes)
{
    uint64_t seed = 0x9e3779b97f4a7c15u;
    int accepted = 0, rejected = 0;

    for (size_t i = 0; i < sizeof(rt_cases) / sizeof(rt_cases[0]); i++) {
        lf_event_t ev;
        lf_buf_t wire = {0};
        parse_ok(rt_cases[i].in, &ev);
        encode_ok(&ev, &wire);
        lf_event_clear(&ev);
        for (int iter = 0; iter < 2000; iter++) {
            uint8_t *m = malloc(wire.len);
            char err[512] = "";
            memcpy(m, wire.data, wire.len);
            int flips = 1 + (int)(seed % 3);
            for (int f = 0; f < flips; f++) {
                seed = seed * 6364136223846793005u + 1442695040888963407u;
                size_t pos = LF_FRAME_HEADER + (size_t)(seed >> 33) %
                                                   (wire.len - LF_FRAME_HEADER);
                m[pos] = (uint8_t)(seed >> 17);
            }
            decode_same(m, wire.len);
            if (lf_codec_decode(codec, m, wire.len, &ev, err, sizeof(err)) ==
                LF_OK) {
                lf_event_t again;
                lf_buf_t re = {0};
                accepted++;
                cr_expect_eq(lf_event_validate(&ev, err, sizeof(err)), LF_OK,
                             "%s", err);
                encode_ok(&ev, &re);
                decode_ok(re.data, re.len, &again);
                cr_expect(lf_event_equal(&ev, &again));
                lf_event_clear(&again);
                lf_event_clear(&ev);
                lf_buf_free(&re);
            } else {
                rejected++;
                cr_expect_neq(err[0], '\0');
            }
            free(m);
        }
        lf_buf_free(&wire);
    }
    cr_expect_gt(rejected, 0);
    cr_log_info("random corruption: %d accepted, %d rejected", accepted,
                rejected);
}

/* ---- contract v2 ---------------------------------------------------- */

/* A v2 envelope (schema id 2) up to the payload's branch. */
static void r_envelope_v2(raw_t *r, int64_t type, const char *account)
{
    r_header(r, 0, LF_SCHEMA_ID_V2);
    r_str(r, "e");
    r_str(r, "L");
    r_long(r, type);
    r_long(r, 0);
    r_str(r, "s");
    r_long(r, 0); /* actor: null */
    r_long(r, account ? 1 : 0);
    if (account)
        r_str(r, account);
    r_long(r, type); /* payload branch */
}

Test(avro, exact_wire_bytes_v2)
{
    static const uint8_t want[] = {
        0x00, 0x00, 0x00, 0x00, 0x02, /* magic, schema id 2 */
        0x02, 'e',  0x02, 'L',        /* event_id, lead_id */
        0x12,                         /* type MERGED = 9 */
        0x00,                         /* occurred_at 0 */
        0x02, 's',                    /* source */
        0x00,                         /* actor: null */
        0x02, 0x02, 'A',              /* account_id: branch 1, "A" */
        0x12, 0x04, 'L',  '9',        /* payload branch 9, into "L9" */
    };
    lf_event_t ev, back;
    lf_buf_t wire = {0};

    parse_ok("{\"event_id\":\"e\",\"lead_id\":\"L\",\"type\":\"merged\","
             "\"occurred_at\":0,\"source\":\"s\",\"account_id\":\"A\","
             "\"into_lead_id\":\"L9\"}",
             &ev);
    encode_ok(&ev, &wire);
    cr_assert_eq(wire.len, sizeof(want));
    cr_expect_eq(memcmp(wire.data, want, sizeof(want)), 0);
    decode_direct_ok(wire.data, wire.len, &back);
    cr_expect(lf_event_equal(&ev, &back));
    cr_expect_null(back.extra);
    cr_expect_null(back.payload_extra);
    lf_event_clear(&back);
    lf_event_clear(&ev);
    lf_buf_free(&wire);
}

/* contract.version=1: what v1 cannot carry is refused, with the reason,
 * by both writers; never written with the field dropped. */
Test(avro, contract_v1_refuses_what_it_cannot_carry)
{
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"{\"lead_id\":\"L\",\"type\":\"accepted\",\"occurred_at\":0,"
         "\"source\":\"s\",\"account_id\":\"A\",\"owner\":\"o\"}",
         "field \"account_id\": contract v1 cannot carry it; "},
        {"{\"lead_id\":\"L\",\"type\":\"merged\",\"occurred_at\":0,"
         "\"source\":\"s\",\"into_lead_id\":\"L9\"}",
         "field \"type\": contract v1 cannot carry merged events"},
        {"{\"lead_id\":\"L\",\"type\":\"voided\",\"occurred_at\":0,"
         "\"source\":\"s\",\"voided_event_id\":"
         "\"0b7e2d3c-1f4a-4c5b-8d6e-7f8091a2b3c4\",\"reason\":\"r\"}",
         "field \"type\": contract v1 cannot carry voided events"},
        {"{\"lead_id\":\"L\",\"type\":\"erased\",\"occurred_at\":0,"
         "\"source\":\"s\",\"request_id\":\"R\"}",
         "field \"type\": contract v1 cannot carry erased events"},
    };
    lf_buf_t wire = {0};
    char err[256];

    cr_assert_eq(lf_codec_set_contract(codec, 1, err, sizeof(err)), LF_OK);
    cr_expect_eq(lf_codec_set_contract(codec, 3, err, sizeof(err)),
                 LF_ERR_INVALID);
    cr_expect(strstr(err, "contract.version"), "%s", err);
    cr_assert_eq(lf_codec_contract(codec), 1);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        lf_event_t ev;
        parse_ok(cases[i].json, &ev);
        err[0] = '\0';
        cr_expect_eq(lf_codec_encode(codec, &ev, 1, &wire, err, sizeof(err)),
                     LF_ERR_INVALID, "case %zu written", i);
        cr_expect(strstr(err, cases[i].want), "case %zu: %s", i, err);
        err[0] = '\0';
        cr_expect_eq(
            lf_codec_encode_generic(codec, &ev, 1, &wire, err, sizeof(err)),
            LF_ERR_INVALID, "case %zu written by avro-c", i);
        cr_expect(strstr(err, cases[i].want), "case %zu: %s", i, err);
        lf_event_clear(&ev);
    }
    lf_buf_free(&wire);
}

/* v1 bodies still read (pinned id 1), by both readers. */
Test(avro, reads_v1_and_v2_bodies)
{
    lf_event_t ev1, ev2;
    lf_buf_t w1 = {0}, w2 = {0};

    parse_ok(rt_cases[0].in, &ev1);
    lf_codec_set_contract(codec, 1, NULL, 0);
    encode_ok(&ev1, &w1);
    lf_codec_set_contract(codec, 2, NULL, 0);
    encode_ok(&ev1, &w2);
    cr_expect_eq(w2.len, w1.len + 1, "v2 adds one byte: account_id null");
    lf_event_clear(&ev1);
    decode_direct_ok(w1.data, w1.len, &ev1);
    decode_direct_ok(w2.data, w2.len, &ev2);
    cr_expect(lf_event_equal(&ev1, &ev2));
    lf_event_clear(&ev1);
    lf_event_clear(&ev2);
    lf_buf_free(&w1);
    lf_buf_free(&w2);
}

/* A reader that knows contract v1 only (before an upgrade): v2's
 * account_id is kept as an unknown field; an event type symbol or a
 * payload branch it does not know is refused, naming the schema id and
 * the symbol. */
Test(avro, v1_reader_refuses_unknown_symbol_and_branch)
{
    char err[512] = "";
    lf_codec_t *old = lf_codec_new_reader_v1(err, sizeof(err));
    lf_event_t ev;
    raw_t r;

    cr_assert_not_null(old, "%s", err);
    /* an accepted event with an account: read, account in extra */
    r_envelope_v2(&r, LF_EV_ACCEPTED, "ACME");
    r_str(&r, "o");
    cr_assert_eq(lf_codec_decode(old, r.b, r.n, &ev, err, sizeof(err)), LF_OK,
                 "%s", err);
    cr_expect_null(ev.account_id);
    cr_expect_str_eq(ev.extra, "{\"account_id\":\"ACME\"}");
    lf_event_clear(&ev);
    /* the same for a reader of v2: account_id is known */
    cr_assert_eq(lf_codec_decode(codec, r.b, r.n, &ev, err, sizeof(err)), LF_OK,
                 "%s", err);
    cr_expect_str_eq(ev.account_id, "ACME");
    cr_expect_null(ev.extra);
    lf_event_clear(&ev);

    /* MERGED: an enum symbol v1 does not have */
    r_envelope_v2(&r, LF_EV_MERGED, NULL);
    r_str(&r, "L9");
    cr_expect_eq(lf_codec_decode(old, r.b, r.n, &ev, err, sizeof(err)),
                 LF_ERR_INVALID);
    cr_expect_str_eq(err, "schema id 2: field \"type\": event type symbol "
                          "MERGED is not one this reader knows");
    cr_expect_null(ev.event_id);
    cr_expect_eq(lf_codec_decode(codec, r.b, r.n, &ev, err, sizeof(err)), LF_OK,
                 "%s", err);
    lf_event_clear(&ev);

    /* a CAPTURED event with an Erased payload: a branch v1 does not have */
    r_envelope_v2(&r, LF_EV_CAPTURED, NULL);
    r.n--;
    r_long(&r, LF_EV_ERASED);
    r_str(&r, "R");
    cr_expect_eq(lf_codec_decode(old, r.b, r.n, &ev, err, sizeof(err)),
                 LF_ERR_INVALID);
    cr_expect_str_eq(err, "schema id 2: field \"payload\": union branch "
                          "Erased is not one this reader knows");
    /* a reader that knows both: the usual mismatch */
    cr_expect_eq(decode_same(r.b, r.n), LF_ERR_INVALID);
    lf_codec_destroy(old);
}

/* A v2 body whose account_id is not [null, string]'s: declined by the
 * direct reader, and avro-c's answer. */
Test(avro, v2_hostile_account_branch)
{
    raw_t r;

    r_envelope_v2(&r, LF_EV_ACCEPTED, NULL);
    r.n -= 2;
    r_long(&r, 2); /* account_id branch 2 */
    r_long(&r, LF_EV_ACCEPTED);
    r_str(&r, "o");
    expect_declined(r.b, r.n);
    expect_reject("account branch", r.b, r.n, "account_id",
                  "union branch 2 out of range");
    /* an account_id too long for the contract */
    char big[LF_LEAD_ID_MAX + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    r_envelope_v2(&r, LF_EV_ACCEPTED, big);
    r_str(&r, "o");
    expect_reject("long account", r.b, r.n, "account_id", NULL);
}
