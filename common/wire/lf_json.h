/* lf_json.h: the flat JSON mapping of a LeadEvent (one event per line):
 * envelope fields plus that type's payload fields at top level. The input of
 * leadflow-emit and the output of dumps. */
#ifndef LF_JSON_H
#define LF_JSON_H

#include "lf_buf.h"
#include "lf_event.h"

/** Maximum bytes in one JSON line. */
#define LF_JSON_LINE_MAX (8 << 20)

/**
 * Parse one JSON object into @p ev (initialised or cleared by the caller; on
 * success the caller frees it with lf_event_clear()). Strict: unknown keys,
 * payload fields of another type, wrong JSON types, duplicate keys and every
 * contract violation of lf_event_validate() are errors. The key "_kafka"
 * (added by dumps) is ignored. Without "event_id", one is derived: a v5 UUID
 * of the event's canonical JSON, so the same event sent twice gets one id.
 * @returns LF_OK, or LF_ERR_INVALID with a sentence naming the field
 * (ev is then cleared). Plain lines (flat, known keys, short escapes, small
 * integers) are read by a single-pass reader; anything else, and every
 * error, goes through jansson.
 */
lf_err_t lf_json_parse_event(const char *text, size_t len, lf_event_t *ev,
                             char *errstr, size_t errstr_size);

/**
 * As lf_json_parse_event(), for an event read back from SCHEMA.events
 * (stored after it was validated): a payload string may be null (the
 * reason of an erased person's lost or disqualified event), and the
 * contract is not checked again.
 */
lf_err_t lf_json_parse_stored(const char *text, size_t len, lf_event_t *ev,
                              char *errstr, size_t errstr_size);

/**
 * Append @p ev as one compact JSON object (no newline) to @p out, keys in
 * schema order, optional fields omitted when null or empty.
 * @returns LF_OK or LF_ERR_NOMEM.
 */
lf_err_t lf_json_format_event(const lf_event_t *ev, lf_buf_t *out);

/** Append only the payload fields of @p ev as one JSON object ("{}" for a
 *  payload whose fields are all absent): the funnel.events payload column.
 *  @returns LF_OK or LF_ERR_NOMEM. */
lf_err_t lf_json_format_payload(const lf_event_t *ev, lf_buf_t *out);

/** Append @p s as a JSON string literal (with quotes) to @p out. */
lf_err_t lf_json_append_string(lf_buf_t *out, const char *s, size_t len);

/**
 * avro-c reads a schema with jansson's default flags, which refuse
 * "\u0000" in a string, and the Avro spec writes a default of a bytes or
 * fixed field as a string of code points 0-255: a later contract with
 * "default": "\u0000" is a valid schema avro-c cannot read. A writer's
 * defaults never matter for reading what it wrote (they fill fields a
 * reader has and the writer lacks), so a writer schema can be read without
 * the defaults that hold a NUL.
 * @returns @p json without those defaults (the caller frees it), or NULL
 * when it is not JSON, has no such default, or memory ran out.
 */
char *lf_json_schema_without_nul_defaults(const char *json);

#endif
