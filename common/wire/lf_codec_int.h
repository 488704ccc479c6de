/* lf_codec_int.h: the codec's entry points for tests, the fuzzer and the
 * benchmark: each of its two readers and writers alone, and the bounds
 * check. Not installed; programs use lf_codec.h. */
#ifndef LF_CODEC_INT_H
#define LF_CODEC_INT_H

#include "lf_codec.h"

/**
 * The same bytes as lf_codec_encode(), written through avro-c's generic
 * value API instead of directly: the reference the direct writer is tested
 * against. Slower; for tests.
 */
lf_err_t lf_codec_encode_generic(lf_codec_t *c, const lf_event_t *ev,
                                 int32_t schema_id, lf_buf_t *out, char *errstr,
                                 size_t errstr_size);

/**
 * lf_codec_decode() through avro-c alone (bounds check, generic reader,
 * schema resolution): the reference the direct v1 reader is tested
 * against, and what decides every message that reader declines. Same
 * contract as lf_codec_decode(); slower. For tests.
 */
lf_err_t lf_codec_decode_generic(lf_codec_t *c, const void *data, size_t len,
                                 lf_event_t *ev, char *errstr,
                                 size_t errstr_size);

/**
 * lf_codec_decode() through the direct v1 reader alone: LF_ERR_INVALID
 * "not read by the direct v1 reader" for a message it declines (another
 * writer schema, or anything it leaves to avro-c). For tests, to show
 * which messages take the fast path.
 */
lf_err_t lf_codec_decode_direct(lf_codec_t *c, const void *data, size_t len,
                                lf_event_t *ev, char *errstr,
                                size_t errstr_size);

/**
 * Check that @p data[0..len) is exactly one well-formed Avro binary datum of
 * the avro-c schema @p schema: no negative or oversized length, no count or
 * index out of range, no truncation, no trailing bytes. Exposed for tests
 * and the fuzzer.
 * @returns LF_OK or LF_ERR_INVALID with the field path in errstr.
 */
lf_err_t lf_avro_check(void *schema, const void *data, size_t len, char *errstr,
                       size_t errstr_size);

#endif
