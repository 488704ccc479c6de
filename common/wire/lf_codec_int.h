/* lf_codec_int.h: the codec's entry points for tests, the fuzzer and the
 * benchmark: each of its two readers and writers alone, and the bounds
 * check. Not installed; programs use lf_codec.h. */
#ifndef LF_CODEC_INT_H
#define LF_CODEC_INT_H

#include "lf_codec.h"

/**
 * A codec that reads as a reader of contract v1 would, for tests (the
 * dead-letter retry after an upgrade): it knows the v1 model only, so in
 * a v2 body account_id is an unknown field (kept in ev->extra) and a
 * merged, voided or erased event is refused naming the schema id and the
 * symbol. It still has the v2 schema's text for pinned id 2, as a reader
 * would from the registry. Free with lf_codec_destroy().
 */
lf_codec_t *lf_codec_new_reader_v1(char *errstr, size_t errstr_size);

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
 * against, and what decides every message that reader declines (the
 * v1 and v2 bodies read by field name, as any other writer's). Same
 * contract as lf_codec_decode(); slower. For tests.
 */
lf_err_t lf_codec_decode_generic(lf_codec_t *c, const void *data, size_t len,
                                 lf_event_t *ev, char *errstr,
                                 size_t errstr_size);

/**
 * lf_codec_decode() through the direct v1 and v2 reader alone:
 * LF_ERR_INVALID "not read by the direct reader" for a message it declines
 * (another writer schema, or anything it leaves to avro-c). For tests, to
 * show which messages take the fast path.
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
