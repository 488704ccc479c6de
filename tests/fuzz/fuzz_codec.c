/* fuzz_codec.c: libFuzzer target for the Kafka value decoder
 * (lf_codec_decode): Confluent framing around Avro binary, untrusted bytes
 * from the topic. Whatever the input, decoding must not crash, leak or read
 * out of bounds; an input that decodes must encode again and decode to the
 * same event (the codec is its own inverse on everything it accepts), and
 * the direct writer and avro-c's must write the same bytes for it. Both
 * readers must give the same answer on every input: the same event, or
 * the same error.
 *
 * Three readers see each input: the pinned ids (1: v1, 2: v2, read
 * directly); a registry whose cache holds ids 1 and 2 and two later
 * writers, so that the generic reader by field name runs on what the
 * fuzzer makes of them (3: v2 plus fields of every Avro kind, a new event
 * type and payload branch; 4: v2 with its envelope fields in another
 * order); and a reader that knows contract v1 only. The registry's URL
 * refuses connections: an id outside 1..4 is not given to it. */
#include "lf_codec.h"
#include "lf_codec_int.h"
#include "lf_conf.h"
#include "lf_embedded.h"
#include "lf_registry.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lf_codec_t *codec, *reg_codec, *v1_codec;
static lf_registry_t *reg;

/* The envelope field and Captured field of writer 3, and its new type. */
static const char v3_tenant[] =
    "{\"name\":\"tenant\",\"default\":null,\"type\":[\"null\",{\"type\":"
    "\"record\",\"name\":\"Tenant\",\"fields\":[{\"name\":\"region\","
    "\"type\":\"string\"},{\"name\":\"weight\",\"type\":\"double\"},"
    "{\"name\":\"ratio\",\"type\":\"float\"},{\"name\":\"tags\",\"type\":"
    "{\"type\":\"array\",\"items\":\"string\"}},{\"name\":\"blob\",\"type\":"
    "\"bytes\"},{\"name\":\"hash\",\"type\":{\"type\":\"fixed\",\"name\":"
    "\"H4\",\"size\":4}},{\"name\":\"on\",\"type\":\"boolean\"},{\"name\":"
    "\"tier\",\"type\":{\"type\":\"enum\",\"name\":\"Tier\",\"symbols\":"
    "[\"GOLD\",\"SILVER\"]}},{\"name\":\"counts\",\"type\":{\"type\":\"map\","
    "\"values\":\"long\"}}]}]}";
static const char v3_landing[] =
    "{\"name\":\"landing_page\",\"type\":\"string\",\"default\":\"\"}";
static const char v3_nurtured[] =
    "{\"type\":\"record\",\"name\":\"Nurtured\",\"fields\":[{\"name\":"
    "\"track\",\"type\":\"string\"}]}";

static json_t *named(json_t *fields, const char *name)
{
    size_t i;
    json_t *f;

    json_array_foreach(fields, i, f)
    {
        if (!strcmp(json_string_value(json_object_get(f, "name")), name))
            return f;
    }
    abort();
}

/* Writer 3 (@p which 3) or 4, made from the embedded v2: to free(). */
static char *writer_text(int which)
{
    json_t *s = json_loads(lf_embedded_avsc_v2, 0, NULL), *fields, *payload;

    if (!s)
        abort();
    fields = json_object_get(s, "fields");
    payload = json_object_get(named(fields, "payload"), "type");
    if (which == 3) {
        json_t *type = json_object_get(named(fields, "type"), "type");
        json_array_insert_new(fields, 7, json_loads(v3_tenant, 0, NULL));
        json_array_append_new(
            json_object_get(json_array_get(payload, 0), "fields"),
            json_loads(v3_landing, 0, NULL));
        json_array_append_new(json_object_get(type, "symbols"),
                              json_string("NURTURED"));
        json_array_append_new(payload, json_loads(v3_nurtured, 0, NULL));
    } else {
        /* the envelope in reverse order: payload first, event_id last */
        json_t *rev = json_array();
        for (size_t i = json_array_size(fields); i-- > 0;)
            json_array_append(rev, json_array_get(fields, i));
        json_object_set_new(s, "fields", rev);
    }
    char *text = json_dumps(s, JSON_COMPACT);
    json_decref(s);
    return text;
}

static void fuzz_cleanup(void)
{
    lf_codec_destroy(codec);
    lf_codec_destroy(reg_codec);
    lf_codec_destroy(v1_codec);
    lf_registry_destroy(reg);
}

static void fuzz_init(void)
{
    char errstr[512];
    lf_conf_t *conf = lf_conf_new();
    char *w3 = writer_text(3), *w4 = writer_text(4);

    if (!conf ||
        lf_conf_set(conf, LF_CONF_SR_URL, "http://127.0.0.1:1", errstr,
                    sizeof(errstr)) ||
        !(reg = lf_registry_new(conf, errstr, sizeof(errstr))) ||
        lf_registry_cache_put(reg, 1, lf_embedded_avsc_v1) ||
        lf_registry_cache_put(reg, 2, lf_embedded_avsc_v2) ||
        lf_registry_cache_put(reg, 3, w3) ||
        lf_registry_cache_put(reg, 4, w4) ||
        !(codec = lf_codec_new(errstr, sizeof(errstr))) ||
        !(reg_codec = lf_codec_new(errstr, sizeof(errstr))) ||
        !(v1_codec = lf_codec_new_reader_v1(errstr, sizeof(errstr)))) {
        fprintf(stderr, "fuzz_codec: %s\n", errstr);
        abort();
    }
    lf_codec_set_registry(reg_codec, reg);
    lf_codec_set_contract(v1_codec, 1, NULL, 0); /* for lf_codec_can_carry */
    lf_conf_destroy(conf);
    free(w3);
    free(w4);
    atexit(fuzz_cleanup);
}

/* Decode with @p c through both readers: they must agree. @returns the
 * answer, with *@p ev filled on LF_OK. */
static lf_err_t decode_both(lf_codec_t *c, const uint8_t *data, size_t size,
                            lf_event_t *ev)
{
    char errstr[512], referr[512];
    lf_event_t ref;
    lf_err_t rc = lf_codec_decode(c, data, size, ev, errstr, sizeof(errstr));
    lf_err_t refrc =
        lf_codec_decode_generic(c, data, size, &ref, referr, sizeof(referr));

    if (refrc != rc) {
        fprintf(stderr, "readers differ: %d (%s), avro-c %d (%s)\n", rc,
                rc ? errstr : "", refrc, refrc ? referr : "");
        abort();
    }
    if (rc != LF_OK && strcmp(errstr, referr)) {
        fprintf(stderr, "errors differ: \"%s\", avro-c \"%s\"\n", errstr,
                referr);
        abort();
    }
    if (rc == LF_OK && !lf_event_equal(ev, &ref)) {
        fprintf(stderr, "direct and avro-c readers differ\n");
        abort();
    }
    if (refrc == LF_OK)
        lf_event_clear(&ref);
    return rc;
}

/* Encode @p ev as contract @p version with both writers (same bytes),
 * decode it again: the same event. */
static void round_trip(const lf_event_t *ev, int version)
{
    char errstr[512];
    lf_buf_t out = {0}, ref = {0};
    lf_event_t again;
    int32_t id = version == 1 ? LF_SCHEMA_ID_V1 : LF_SCHEMA_ID_V2;

    lf_codec_set_contract(codec, version, NULL, 0);
    if (lf_codec_encode(codec, ev, id, &out, errstr, sizeof(errstr))) {
        fprintf(stderr, "decoded event does not encode: %s\n", errstr);
        abort();
    }
    if (lf_codec_encode_generic(codec, ev, id, &ref, errstr, sizeof(errstr)) ||
        ref.len != out.len || memcmp(ref.data, out.data, out.len)) {
        fprintf(stderr, "direct and avro-c writers differ\n");
        abort();
    }
    if (lf_codec_decode(codec, out.data, out.len, &again, errstr,
                        sizeof(errstr)) != LF_OK) {
        fprintf(stderr, "re-encoded event does not decode: %s\n", errstr);
        abort();
    }
    if (!lf_event_equal(ev, &again)) {
        fprintf(stderr, "round trip changed the event\n");
        abort();
    }
    lf_event_clear(&again);
    lf_buf_free(&out);
    lf_buf_free(&ref);
    lf_codec_set_contract(codec, LF_CONTRACT_LATEST, NULL, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lf_event_t ev;
    uint32_t id = size >= 5
                      ? (uint32_t)data[1] << 24 | (uint32_t)data[2] << 16 |
                            (uint32_t)data[3] << 8 | data[4]
                      : 0;

    if (!codec)
        fuzz_init();
    if (decode_both(codec, data, size, &ev) == LF_OK) {
        round_trip(&ev, 2);
        if (lf_codec_can_carry(v1_codec, &ev, NULL, 0) == LF_OK)
            round_trip(&ev, 1);
        lf_event_clear(&ev);
    }
    if (decode_both(v1_codec, data, size, &ev) == LF_OK)
        lf_event_clear(&ev);
    if (id < 1 || id > 4)
        return 0; /* the registry would be asked: a connection refused */
    if (decode_both(reg_codec, data, size, &ev) == LF_OK) {
        /* what a later writer sent beyond v2 is not written again */
        if (!ev.extra && !ev.payload_extra)
            round_trip(&ev, 2);
        lf_event_clear(&ev);
    }
    return 0;
}
