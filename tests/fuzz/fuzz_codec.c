/* fuzz_codec.c: libFuzzer target for the Kafka value decoder
 * (lf_codec_decode): Confluent framing around Avro binary, untrusted bytes
 * from the topic. Whatever the input, decoding must not crash, leak or read
 * out of bounds; an input that decodes must encode again and decode to the
 * same event (the codec is its own inverse on everything it accepts), and
 * the direct writer and avro-c's must write the same bytes for it. Both
 * readers must give the same answer on every input: the same event, or
 * the same error. */
#include "lf_codec.h"
#include "lf_codec_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lf_codec_t *codec;

static void fuzz_cleanup(void)
{
    lf_codec_destroy(codec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char errstr[512];
    lf_event_t ev, again;
    lf_buf_t out = {0};

    if (!codec) {
        if (!(codec = lf_codec_new(errstr, sizeof(errstr)))) {
            fprintf(stderr, "lf_codec_new: %s\n", errstr);
            abort();
        }
        atexit(fuzz_cleanup);
    }
    lf_event_init(&ev);
    lf_err_t rc = lf_codec_decode(codec, data, size, &ev, errstr,
                                  sizeof(errstr));
    {
        char referr[512];
        lf_event_t ref;
        lf_err_t refrc = lf_codec_decode_generic(codec, data, size, &ref,
                                                 referr, sizeof(referr));
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
        if (rc == LF_OK && !lf_event_equal(&ev, &ref)) {
            fprintf(stderr, "direct and avro-c readers differ\n");
            abort();
        }
        if (refrc == LF_OK)
            lf_event_clear(&ref);
    }
    if (rc != LF_OK)
        return 0; /* rejected with a reason: fine */

    /* Accepted: the round trip must hold. */
    if (lf_codec_encode(codec, &ev, LF_SCHEMA_ID_V1, &out, errstr,
                        sizeof(errstr)) != LF_OK) {
        fprintf(stderr, "decoded event does not encode: %s\n", errstr);
        abort();
    }
    {
        lf_buf_t ref = {0};
        if (lf_codec_encode_generic(codec, &ev, LF_SCHEMA_ID_V1, &ref, errstr,
                                    sizeof(errstr)) != LF_OK ||
            ref.len != out.len || memcmp(ref.data, out.data, out.len)) {
            fprintf(stderr, "direct and avro-c writers differ\n");
            abort();
        }
        lf_buf_free(&ref);
    }
    lf_event_init(&again);
    if (lf_codec_decode(codec, out.data, out.len, &again, errstr,
                        sizeof(errstr)) != LF_OK) {
        fprintf(stderr, "re-encoded event does not decode: %s\n", errstr);
        abort();
    }
    if (!lf_event_equal(&ev, &again)) {
        fprintf(stderr, "round trip changed the event\n");
        abort();
    }
    lf_event_clear(&again);
    lf_event_clear(&ev);
    lf_buf_free(&out);
    return 0;
}
