/* lf_cli.h: the command-line options every program shares. -b, -t, -g, -d
 * and -X key=value are settings, applied in command-line order over -c FILE,
 * which is applied over the LEADFLOW_* environment (lf_conf.h); -X dump asks
 * for the effective settings. --version prints the same line everywhere.
 * A program's own options stay in its getopt loop. */
#ifndef LF_CLI_H
#define LF_CLI_H

#include "lf_common.h"
#include "lf_conf.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct lf_cli_setting_s {
    const char *key;   /**< NULL: value is a -X "key=value" */
    const char *value; /**< points into argv */
} lf_cli_setting_t;

typedef struct lf_cli_s {
    lf_cli_setting_t *set; /**< in command-line order */
    size_t n;
    const char *config; /**< -c FILE, or NULL */
    bool dump;          /**< -X dump */
} lf_cli_t;

/** Room for every setting @p argc arguments can hold.
 *  @returns LF_OK or LF_ERR_NOMEM. */
lf_err_t lf_cli_init(lf_cli_t *cli, int argc);
/** NULL-safe; the strings belong to argv. */
void lf_cli_free(lf_cli_t *cli);

/** A shorthand flag: -b is "bootstrap.servers", -t LF_CONF_TOPIC, ... */
void lf_cli_add(lf_cli_t *cli, const char *key, const char *value);

/** -X @p arg: "dump", or a key=value setting. @returns false if @p arg is
 *  neither (the caller reports the usage error). */
bool lf_cli_x(lf_cli_t *cli, const char *arg);

/**
 * Apply to @p conf, in order: the LEADFLOW_* environment, -c FILE, then the
 * settings in command-line order. @returns 0, LF_EX_CONFIG when the file
 * cannot be used, or LF_EX_USAGE when a setting is malformed; errstr then
 * says why.
 */
int lf_cli_apply(const lf_cli_t *cli, lf_conf_t *conf, char *errstr,
                 size_t errstr_size);

/**
 * A producer's configuration (leadflow-emit, leadflow-gen): a new conf with
 * lf_cli_apply(), then the defaults bootstrap.servers=localhost:9092,
 * client.id=@p prog and lf_producer_conf_defaults(). On success *out is
 * the caller's to lf_conf_destroy(). @returns 0, or LF_EX_CONFIG /
 * LF_EX_USAGE as lf_cli_apply() (errstr says why), or LF_EX_SOFTWARE when
 * out of memory.
 */
int lf_cli_producer_conf(const lf_cli_t *cli, const char *prog,
                         lf_conf_t **out, char *errstr, size_t errstr_size);

/** A program's main(): room for the shared options, @p run, then free.
 *  @returns run's status, or LF_EX_SOFTWARE when out of memory. */
int lf_cli_main(int argc, char **argv,
                int (*run)(int argc, char **argv, lf_cli_t *cli));

/** --version: "PROG VERSION (librdkafka V, avro-c V, libpq V)" on stdout. */
void lf_cli_version(const char *prog);

#endif
