/* lf_registry.h: a client of the Confluent Schema Registry REST API
 * (libcurl): register our schema under a subject, fetch schemas by id, and
 * cache them, with basic auth, TLS and timeouts from schema.registry.*. */
#ifndef LF_REGISTRY_H
#define LF_REGISTRY_H

#include "lf_common.h"
#include "lf_conf.h"

#include <stdbool.h>
#include <stdint.h>

/* The settings (leadflow's own keys: never passed to librdkafka).
 * schema.registry.url takes one URL, or several separated by commas (tried
 * in turn when one is unreachable). */
#define LF_CONF_SR_URL       "schema.registry.url"
#define LF_CONF_SR_USER_INFO "schema.registry.basic.auth.user.info"
#define LF_CONF_SR_CA        "schema.registry.ssl.ca.location"
#define LF_CONF_SR_CERT      "schema.registry.ssl.certificate.location"
#define LF_CONF_SR_KEY       "schema.registry.ssl.key.location"
#define LF_CONF_SR_KEY_PASS  "schema.registry.ssl.key.password"
#define LF_CONF_SR_VERIFY    "schema.registry.enable.ssl.certificate.verification"
#define LF_CONF_SR_TIMEOUT   "schema.registry.request.timeout.ms"
#define LF_CONF_SR_AUTO_REG  "schema.registry.auto.register.schemas"
#define LF_CONF_SR_RETRY     "schema.registry.retry.timeout.ms"

/* Defaults and limits. */
#define LF_REGISTRY_TIMEOUT_MS       10000     /**< per request */
#define LF_REGISTRY_RETRY_TIMEOUT_MS 60000     /**< producer's retry budget */
#define LF_REGISTRY_BODY_MAX         (1 << 20) /**< larger answers refused */

typedef struct lf_registry_s lf_registry_t;

/** True when @p conf names a registry (schema.registry.url is set and not
 *  empty): without one, the pinned ids of schemas/avro/ are used. */
bool lf_registry_configured(const lf_conf_t *conf);

/**
 * A client for the registry named by schema.registry.url, with the other
 * schema.registry.* settings: basic.auth.user.info (user:password),
 * ssl.ca.location, ssl.certificate.location, ssl.key.location,
 * ssl.key.password, enable.ssl.certificate.verification (default true),
 * request.timeout.ms (default 10000), auto.register.schemas (default true),
 * retry.timeout.ms (default 60000, read by producers). @p conf is not kept.
 * No request is made here.
 * @returns a client to free with lf_registry_destroy(), or NULL with the
 * reason in errstr (no URL, a URL that is not http(s), an unknown
 * schema.registry.* key, a bad value).
 * Thread-safe: requests are made one at a time.
 */
lf_registry_t *lf_registry_new(const lf_conf_t *conf, char *errstr,
                               size_t errstr_size);

/** NULL-safe. */
void lf_registry_destroy(lf_registry_t *reg);

/** The first URL with any credentials masked, for messages. Owned by
 *  @p reg. */
const char *lf_registry_url(const lf_registry_t *reg);

/** schema.registry.auto.register.schemas: true when producers register
 *  their schema, false when they only look it up. */
bool lf_registry_auto_register(const lf_registry_t *reg);

/** schema.registry.retry.timeout.ms: how long a producer keeps retrying an
 *  unreachable registry before it gives up. */
int64_t lf_registry_retry_timeout_ms(const lf_registry_t *reg);

/**
 * Register @p schema_json (Avro) under @p subject (POST
 * /subjects/{subject}/versions); *@p id receives the id the registry gives
 * it, the existing one if the schema is already registered. When
 * @p register_it is false, only look it up (POST /subjects/{subject}), for
 * registries where producers may not register. The id is cached with the
 * schema.
 * @returns LF_OK; LF_ERR_TEMPORARY when asking again later may succeed
 * (unreachable, timed out, HTTP 5xx, 408 or 429); LF_ERR_INVALID when the
 * registry refused (401, 403, 404 not registered, 409 incompatible, 422
 * invalid, a TLS certificate rejected) or answered something that is not a
 * registry's answer; LF_ERR_NOMEM. errstr names the URL, the HTTP status
 * and the registry's own message.
 */
lf_err_t lf_registry_register(lf_registry_t *reg, const char *subject,
                              const char *schema_json, bool register_it,
                              int32_t *id, char *errstr, size_t errstr_size);

/**
 * Ask whether @p subject accepts @p schema_json as its next version (POST
 * /compatibility/subjects/{subject}/versions/latest?verbose=true), before
 * registering it: a producer the registry would refuse stops before it
 * sends anything. A subject with nothing registered yet accepts anything.
 * @returns LF_OK when compatible; LF_ERR_INVALID when not ("schema
 * registry URL: subject \"S\" does not accept this schema: <the
 * registry's reason>") or when the registry refused the question (401,
 * 403, 422); LF_ERR_TEMPORARY as lf_registry_register(); LF_ERR_NOMEM.
 */
lf_err_t lf_registry_check_compatible(lf_registry_t *reg, const char *subject,
                                      const char *schema_json, char *errstr,
                                      size_t errstr_size);

/**
 * The schema with id @p id (GET /schemas/ids/{id}), from the cache when it
 * was fetched before. *@p schema_json receives a copy to free() with free().
 * Made for consumers, so the classification is theirs: only an answer about
 * the id itself is final.
 * @returns LF_OK; LF_ERR_INVALID when the registry answered that the id
 * does not exist (HTTP 404 with its error_code 40403), or that it is not a
 * plain Avro schema (another schemaType, or schema references): such
 * answers are remembered for a minute, so a stream of such messages does
 * not become a stream of requests;
 * LF_ERR_TEMPORARY for anything else (unreachable, timed out, HTTP 5xx,
 * 401/403 until the credentials are fixed, a malformed answer);
 * LF_ERR_NOMEM.
 */
lf_err_t lf_registry_schema_by_id(lf_registry_t *reg, int32_t id,
                                  char **schema_json, char *errstr,
                                  size_t errstr_size);

/** Put a schema in the id cache as if fetched (preloading; tests).
 *  @returns LF_OK or LF_ERR_NOMEM. */
lf_err_t lf_registry_cache_put(lf_registry_t *reg, int32_t id,
                               const char *schema_json);

/* ---- the response parsers, exposed for the unit tests ---------------- */

/** Parse a register or lookup answer {"id": N, ...} from @p body[0..len)
 *  (untrusted: any bytes). @returns LF_OK with *@p id > 0, or
 *  LF_ERR_INVALID saying what is wrong with the body. */
lf_err_t lf_registry_parse_id(const char *body, size_t len, int32_t *id,
                              char *errstr, size_t errstr_size);

/** Parse a compatibility answer {"is_compatible": false, "messages":
 *  [...]} (untrusted): *@p compatible, and the messages joined by "; "
 *  into @p reason ("" if none). @returns LF_OK, or LF_ERR_INVALID with
 *  what is wrong with the body in @p reason. */
lf_err_t lf_registry_parse_compat(const char *body, size_t len,
                                  bool *compatible, char *reason,
                                  size_t reason_size);

/** Parse a schema answer {"schema": "...", "schemaType": "AVRO",
 *  "references": []} (untrusted). *@p schema_json receives the schema text
 *  (free() it). @returns LF_OK, or LF_ERR_INVALID saying what is wrong. */
lf_err_t lf_registry_parse_schema(const char *body, size_t len,
                                  char **schema_json, char *errstr,
                                  size_t errstr_size);

/** The registry's explanation in an error body {"error_code": 40403,
 *  "message": "..."} as "error_code 40403: ...", or else a printable
 *  excerpt of the body, or "" if it is empty; always NUL-terminated in
 *  @p buf, control characters replaced. */
void lf_registry_parse_error(const char *body, size_t len, char *buf,
                             size_t size);

/** @p url with any user:password@ replaced by ***@, into @p buf. */
void lf_registry_redact_url(const char *url, char *buf, size_t size);

#endif
