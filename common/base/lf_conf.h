/* lf_conf.h: one key=value configuration namespace. Precedence, lowest
 * first: built-in defaults, LEADFLOW_* environment, -c FILE, -X key=value
 * (and the shorthand flags -b -t -g -d, which are -X in disguise). Keys that
 * are not leadflow's own go unchanged to librdkafka. */
#ifndef LF_CONF_H
#define LF_CONF_H

#include "lf_common.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdio.h>

/* leadflow's own keys. */
#define LF_CONF_TOPIC         "topic" /**< Kafka topic, default lead-events */
#define LF_CONF_DB            "db"    /**< libpq conninfo or URI */
#define LF_CONF_METRICS       "metrics.listen" /**< HOST:PORT of /metrics */
#define LF_CONF_DEFAULT_TOPIC "lead-events"
/** The funnel definition file (default: the embedded default.json) */
#define LF_CONF_DEFINITION "funnel.definition"

typedef struct lf_conf_s lf_conf_t;

/** An empty configuration; free with lf_conf_destroy(). NULL if no memory. */
lf_conf_t *lf_conf_new(void);
/** NULL-safe. */
void lf_conf_destroy(lf_conf_t *conf);

/** Set (or replace) @p key. Copies both strings. */
lf_err_t lf_conf_set(lf_conf_t *conf, const char *key, const char *value,
                     char *errstr, size_t errstr_size);
/** Set from "key=value" (a -X argument). */
lf_err_t lf_conf_set_kv(lf_conf_t *conf, const char *kv, char *errstr,
                        size_t errstr_size);
/** Set only if @p key is not set yet (a program default). */
lf_err_t lf_conf_default(lf_conf_t *conf, const char *key, const char *value);
/** The value of @p key, or NULL. Owned by conf. */
const char *lf_conf_get(const lf_conf_t *conf, const char *key);

/** The longest line of a -c file, newline not counted. */
#define LF_CONF_LINE_MAX 65536

/**
 * Read a key=value file: '#' starts a comment line, blank lines ignored,
 * whitespace around key and value trimmed. A line longer than
 * LF_CONF_LINE_MAX or holding a NUL byte is an error. Warns (on stderr) if the
 * file holds a secret (a key with "password", "secret", "sasl" or "key" in its
 * name, or "db" with password=) and others can read it.
 * @returns LF_OK, or an error naming the file and line.
 */
lf_err_t lf_conf_load_file(lf_conf_t *conf, const char *path, char *errstr,
                           size_t errstr_size);

/** Import the environment: LEADFLOW_BROKERS -> bootstrap.servers,
 *  LEADFLOW_TOPIC -> topic, LEADFLOW_GROUP -> group.id, LEADFLOW_DB -> db,
 *  and any other LEADFLOW_A_B -> a.b (lower-cased). */
void lf_conf_load_env(lf_conf_t *conf);

/** True for keys leadflow itself reads (never passed to librdkafka). */
bool lf_conf_is_ours(const char *key);

/** True for keys whose values must never be printed. */
bool lf_conf_is_secret(const char *key);

/** True when setting @p key = @p val carries a secret itself (a password,
 *  a secret, a registry's user info, a private key, a URL with a password;
 *  for db, a password in the conninfo): what must not be on a command
 *  line. Narrower than lf_conf_is_secret(): sasl.username is no secret. */
bool lf_conf_holds_secret(const char *key, const char *val);

/** True when @p key is a plain setting name, fit to be printed in a log
 *  line (letters, digits, '.', '_', '-'; 1 to 64 of them). */
bool lf_conf_plain_key(const char *key);

/**
 * Refuse a key lf_conf_is_ours() claims that is not in @p known (the
 * NULL-terminated list of the keys leadflow reads, which the modules that
 * read them define): a typo there would otherwise be ignored; and an empty
 * topic or bootstrap.servers (an unset variable in -t "$T").
 * @returns LF_OK, or LF_ERR_CONFIG naming the key.
 */
lf_err_t lf_conf_check(const lf_conf_t *conf, const char *const *known,
                       char *errstr, size_t errstr_size);

/**
 * A librdkafka configuration holding every key that is not ours, with the
 * log callback routed to lf_log. @returns a conf the caller passes to
 * rd_kafka_new() (which takes it) or destroys, or NULL with the reason
 * (librdkafka's, naming the key) in errstr.
 */
rd_kafka_conf_t *lf_conf_to_rdkafka(const lf_conf_t *conf, char *errstr,
                                    size_t errstr_size);

/** Print every key=value, in key order, secrets masked ("***"), and the
 *  user information of every URL in a value (user:password, before the
 *  host's '@') as "***". */
void lf_conf_dump(const lf_conf_t *conf, FILE *fp);

#endif
