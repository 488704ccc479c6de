/* lf_codec.h: the Kafka value codec: Confluent framing (0x00, schema id as
 * big-endian int32) around the Avro binary encoding of leadflow.LeadEvent,
 * through avro-c. Decoding treats its input as hostile: every length, count
 * and union index is bound-checked against the schema before avro-c sees the
 * bytes (avro-c 1.11 mallocs negative lengths and trusts union indexes). */
#ifndef LF_CODEC_H
#define LF_CODEC_H

#include "lf_buf.h"
#include "lf_common.h"
#include "lf_event.h"
#include "lf_registry.h"

#define LF_SCHEMA_ID_V1 1 /**< pinned id of lead_event.v1.avsc */
#define LF_SCHEMA_ID_V2 2 /**< pinned id of lead_event.v2.avsc */
/** The newest published contract version: what producers write unless
 *  told otherwise (contract.version). */
#define LF_CONTRACT_LATEST 2
/** The configuration key that picks the contract version producers write. */
#define LF_CONF_CONTRACT_VERSION "contract.version"
#define LF_FRAME_HEADER          5 /**< magic byte + schema id */
#define LF_MAGIC                 0x00

/** A codec: the parsed schema and reusable avro-c values. Not thread-safe:
 *  one per thread. */
typedef struct lf_codec_s lf_codec_t;

/** Parse the embedded schemas (v1, v2): a codec that reads every
 *  published version and any later one (lf_codec_decode()) and writes
 *  LF_CONTRACT_LATEST. @returns a codec to free with lf_codec_destroy(),
 *  or NULL with the reason in errstr. */
lf_codec_t *lf_codec_new(char *errstr, size_t errstr_size);

/**
 * Write contract version @p version (1 or 2) from now on: lf_codec_encode()
 * writes that body, lf_codec_writer_id() registers that schema. Contract
 * v1 cannot carry account_id nor the merged, voided and erased events:
 * encoding one is refused (never written with the field dropped).
 * @returns LF_OK, or LF_ERR_INVALID for an unpublished version.
 */
lf_err_t lf_codec_set_contract(lf_codec_t *c, int version, char *errstr,
                               size_t errstr_size);

/** The contract version @p c writes. */
int lf_codec_contract(const lf_codec_t *c);

/** Whether the contract version @p c writes can carry @p ev (v1: no
 *  account_id, no merged, voided or erased event): what lf_codec_encode()
 *  checks first, for a dry run. @returns LF_OK, or LF_ERR_INVALID with the
 *  reason ("field \"account_id\": contract v1 cannot carry it; ..."). */
lf_err_t lf_codec_can_carry(const lf_codec_t *c, const lf_event_t *ev,
                            char *errstr, size_t errstr_size);

/**
 * The decoder (and encoder) a program builds from its configuration: the
 * one way to get a codec that reads what the live projector reads. It
 * writes the contract version of contract.version (1 or 2; unset: the
 * latest). When
 * @p conf names a schema registry (schema.registry.url and the other
 * schema.registry.* keys, lf_registry.h), the codec resolves schema ids
 * through a registry client it owns; otherwise it uses the pinned ids.
 * No request is made here. @p conf is not kept. On success *@p out is the
 * caller's to free with lf_codec_destroy(), which also frees the registry
 * client (other codecs may borrow it through lf_codec_registry() and
 * lf_codec_set_registry() as long as this one lives).
 * @returns LF_OK; LF_ERR_INVALID when the schema.registry.* settings are
 * unusable or contract.version is not 1 or 2 (errstr says which);
 * LF_ERR_NOMEM.
 */
lf_err_t lf_codec_from_conf(const lf_conf_t *conf, lf_codec_t **out,
                            char *errstr, size_t errstr_size);

/** Free a codec, and the registry client it owns (lf_codec_from_conf()).
 *  NULL-safe. */
void lf_codec_destroy(lf_codec_t *c);

/**
 * Resolve schema ids through the schema registry @p reg instead of the
 * pinned ids (NULL: back to the pinned ids). With a registry every id is
 * the registry's, ids 1 and 2 included: an id not met before is fetched
 * and cached, a schema equal to v1 or v2 is read as that version, and any
 * other version of leadflow.LeadEvent is read field by field by name (see
 * lf_codec_decode()). The codec borrows @p reg: it must outlive the codec,
 * or be unset first.
 */
void lf_codec_set_registry(lf_codec_t *c, lf_registry_t *reg);

/** The registry client @p c resolves ids through (owned or borrowed), or
 *  NULL for the pinned ids. Owned by whoever gave it to the codec. */
lf_registry_t *lf_codec_registry(const lf_codec_t *c);

/**
 * The schema id to frame values with for @p topic. Without a registry
 * the pinned id of the contract version @p c writes (LF_SCHEMA_ID_V2, or
 * LF_SCHEMA_ID_V1). With one, the id of that writer schema under subject
 * "<topic>-value": first the registry is asked whether the subject
 * accepts it (POST /compatibility/subjects/{subject}/versions/latest),
 * then it is registered (POST /subjects/{subject}/versions), or only
 * looked up when schema.registry.auto.register.schemas=false. One attempt,
 * no retry: call it once, before producing, and keep the id.
 * @returns LF_OK; LF_ERR_TEMPORARY (registry unreachable, timed out, 5xx:
 * retry later); LF_ERR_INVALID (refused: credentials, an incompatible
 * schema (errstr names the subject and the registry's reason), TLS);
 * LF_ERR_NOMEM. errstr names the URL and HTTP status.
 */
lf_err_t lf_codec_writer_id(lf_codec_t *c, const char *topic, int32_t *id,
                            char *errstr, size_t errstr_size);

/**
 * Encode @p ev (which should have passed lf_event_validate()) as a framed
 * Kafka value with @p schema_id, the body in the contract version @p c
 * writes (lf_codec_set_contract()), replacing the contents of @p out.
 * @returns LF_OK, or an error with the reason in errstr: LF_ERR_INVALID
 * for an event that version cannot carry ("field \"account_id\": contract
 * v1 cannot carry it; ...").
 */
lf_err_t lf_codec_encode(lf_codec_t *c, const lf_event_t *ev, int32_t schema_id,
                         lf_buf_t *out, char *errstr, size_t errstr_size);

/**
 * Decode a framed Kafka value into @p ev (initialised or cleared by the
 * caller; on success the caller owns its strings and frees them with
 * lf_event_clear()). Checks the magic byte, that the schema id is known,
 * every length and index against the writer's schema, no trailing bytes,
 * that the payload branch matches the type, and the contract
 * (lf_event_validate()). A body written with v1 or v2 is read directly;
 * whatever that reader declines, and every other writer schema, goes
 * through avro-c, which decides: the result and the error are the same
 * either way. avro-c's path maps the writer's fields to the model by name
 * (so a field may move, and enum symbols are matched by name); the fields
 * this reader does not know are kept as the text of a JSON object in
 * ev->extra (envelope) and ev->payload_extra (payload): strings, numbers,
 * booleans and null as themselves, an enum as its symbol, a union as its
 * branch's value, records and maps as objects, arrays as arrays, bytes
 * and fixed as base64 strings, a float that is not finite as "NaN",
 * "Infinity" or "-Infinity". An event type symbol or payload union branch
 * this reader does not know is refused: "schema id N: field \"type\":
 * event type symbol MERGED is not one this reader knows".
 * @returns LF_OK; LF_ERR_INVALID with a sentence naming the problem (an
 * unknown id names the id and the registry's answer); LF_ERR_TEMPORARY
 * only with a registry, when the id is not cached and the registry could
 * not be asked (unreachable, timed out, 5xx, refused our credentials):
 * nothing is known about the message, decode it again later. ev is
 * cleared on any error.
 */
lf_err_t lf_codec_decode(lf_codec_t *c, const void *data, size_t len,
                         lf_event_t *ev, char *errstr, size_t errstr_size);

/** The avro-c version string, for --version. */
const char *lf_avro_version(void);

#endif
