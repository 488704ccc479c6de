/* fuzz_json.c: libFuzzer target for the JSON line parser
 * (lf_json_parse_event), leadflow-emit's input, and the RFC 3339 parser
 * behind occurred_at (lf_time_parse). Whatever the line, parsing must not
 * crash, leak or overflow; the fast path and the jansson path must agree
 * (the same event, or the same error); an event that parses must encode to
 * the same Avro bytes with the direct writer and avro-c's; a line that
 * parses must format to
 * JSON that parses to the same event; a timestamp that parses must format to
 * one that parses to the same instant. */
#include "lf_codec.h"
#include "lf_codec_int.h"
#include "lf_json.h"
#include "lf_json_int.h"
#include "lf_time.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check_time(const uint8_t *data, size_t size)
{
    char s[80], errstr[256], back[48];
    int64_t ms, ms2;

    /* Any int64 formats (the C API passes unvalidated events). */
    if (size >= sizeof(ms)) {
        memcpy(&ms, data, sizeof(ms));
        lf_time_format(ms, back, sizeof(back));
    }

    if (size >= sizeof(s) || memchr(data, '\0', size))
        return;
    memcpy(s, data, size);
    s[size] = '\0';
    for (int allow_date = 0; allow_date < 2; allow_date++) {
        if (lf_time_parse(s, allow_date, &ms, errstr, sizeof(errstr)) != LF_OK)
            continue;
        /* Only instants a LeadEvent can carry must round-trip: the
         * contract bounds occurred_at (lf_event_validate). */
        if (ms < 0 || ms > LF_TIME_MAX_MS)
            continue;
        lf_time_format(ms, back, sizeof(back));
        if (lf_time_parse(back, 0, &ms2, errstr, sizeof(errstr)) != LF_OK ||
            ms2 != ms) {
            fprintf(stderr,
                    "time \"%s\" -> %lld -> \"%s\" does not parse "
                    "back\n",
                    s, (long long)ms, back);
            abort();
        }
    }
}

static lf_codec_t *codec;

static void fuzz_cleanup(void)
{
    lf_codec_destroy(codec);
}

/* The direct Avro writer and avro-c's write the same bytes of contract
 * @p version, and both readers (the direct one, and avro-c's by field
 * name) read them back to the same event. */
static void check_codec(const lf_event_t *ev, int version)
{
    char errstr[256];
    lf_buf_t a = {0}, b = {0};
    lf_event_t back, gback;
    lf_err_t ra, rb;
    int32_t id = version == 1 ? LF_SCHEMA_ID_V1 : LF_SCHEMA_ID_V2;

    lf_codec_set_contract(codec, version, NULL, 0);
    ra = lf_codec_encode(codec, ev, id, &a, errstr, sizeof(errstr));
    rb = lf_codec_encode_generic(codec, ev, id, &b, errstr, sizeof(errstr));
    if (ra || rb || a.len != b.len || memcmp(a.data, b.data, a.len)) {
        fprintf(stderr, "v%d: direct and avro-c writers differ (%d, %d)\n",
                version, ra, rb);
        abort();
    }
    if (lf_codec_decode(codec, a.data, a.len, &back, errstr, sizeof(errstr)) ||
        lf_codec_decode_generic(codec, a.data, a.len, &gback, errstr,
                                sizeof(errstr)) ||
        !lf_event_equal(ev, &back) || !lf_event_equal(ev, &gback)) {
        fprintf(stderr, "v%d: the event does not read back: %s\n", version,
                errstr);
        abort();
    }
    lf_event_clear(&back);
    lf_event_clear(&gback);
    lf_buf_free(&a);
    lf_buf_free(&b);
}

/* Contract v2 always; v1 when it can carry the event (else it says why). */
static void check_encoders(const lf_event_t *ev)
{
    char errstr[256];

    if (!codec) {
        if (!(codec = lf_codec_new(errstr, sizeof(errstr)))) {
            fprintf(stderr, "lf_codec_new: %s\n", errstr);
            abort();
        }
        atexit(fuzz_cleanup);
    }
    check_codec(ev, 2);
    lf_codec_set_contract(codec, 1, NULL, 0);
    if (lf_codec_can_carry(codec, ev, errstr, sizeof(errstr)) == LF_OK)
        check_codec(ev, 1);
    else if (!strstr(errstr, "contract v1 cannot carry"))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char errstr[512], errstr2[512];
    lf_event_t ev, again, slow;
    lf_buf_t out = {0};
    lf_err_t rc, rc2;

    check_time(data, size);
    lf_event_init(&ev);
    rc = lf_json_parse_event((const char *)data, size, &ev, errstr,
                             sizeof(errstr));
    rc2 = lf_json_parse_event_jansson((const char *)data, size, &slow, errstr2,
                                      sizeof(errstr2));
    if (rc != rc2 || (rc && strcmp(errstr, errstr2)) ||
        (!rc && !lf_event_equal(&ev, &slow))) {
        fprintf(stderr,
                "fast and jansson paths disagree: %d \"%s\" vs %d \"%s\"\n", rc,
                rc ? errstr : "", rc2, rc2 ? errstr2 : "");
        abort();
    }
    lf_event_clear(&slow);
    if (rc != LF_OK) {
        if (!errstr[0]) {
            fprintf(stderr, "rejected without a reason\n");
            abort();
        }
        return 0;
    }
    check_encoders(&ev);
    if (lf_json_format_event(&ev, &out) != LF_OK)
        abort();
    lf_event_init(&again);
    if (lf_json_parse_event(out.data, out.len, &again, errstr,
                            sizeof(errstr)) != LF_OK) {
        fprintf(stderr, "formatted event does not parse: %s\n%.*s\n", errstr,
                (int)out.len, out.data);
        abort();
    }
    if (!lf_event_equal(&ev, &again)) {
        fprintf(stderr, "JSON round trip changed the event\n");
        abort();
    }
    lf_event_clear(&again);
    lf_event_clear(&ev);
    lf_buf_free(&out);
    return 0;
}
