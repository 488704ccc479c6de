/* lf_cli.h: the command line of every leadflow program, written once: the
 * shared options, --help and usage errors, --version, the settings they
 * give (-X over -c FILE over the LEADFLOW_* environment, lf_conf.h) and the
 * signals that stop a program.
 *
 * A program describes its command line in an lf_cli_spec_t (which shared
 * options it takes, its own options and their help) and fills its own
 * config struct from a callback; lf_cli_parse() does the rest, as kcat's
 * one usage() and one getopt loop do. Nothing here exits: lf_cli_parse()
 * says whether to run, stop (help, version) or stop on a usage error, and
 * main() chooses the exit code. */
#ifndef LF_CLI_H
#define LF_CLI_H

#include "lf_common.h"
#include "lf_conf.h"

#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* The shared options a program takes (-h and -V it always takes). */
#define LF_CLI_BROKERS 0x01u /**< -b, --brokers LIST: bootstrap.servers */
#define LF_CLI_TOPIC   0x02u /**< -t, --topic NAME: LF_CONF_TOPIC */
#define LF_CLI_GROUP   0x04u /**< -g, --group ID: group.id */
#define LF_CLI_DB      0x08u /**< -d, --db CONNINFO: LF_CONF_DB */
#define LF_CLI_CONF    0x10u /**< -X key=value, -X dump, -c FILE */
#define LF_CLI_VERBOSE 0x20u /**< -v, -q: lf_log_level up or down */

/**
 * One of a program's own options, for its config struct @p cfg: @p opt is
 * the getopt value (the short letter, or the long option's val), @p arg its
 * argument or NULL. @returns LF_OK, or LF_ERR_INVALID with the reason in
 * errstr ("--batch 0: expected 1..100000"), which becomes a usage error.
 */
typedef lf_err_t (*lf_cli_own_fn)(void *cfg, int opt, const char *arg,
                                  char *errstr, size_t errstr_size);

/** A program's command line (or one command's, for leadflow-replay). */
typedef struct lf_cli_spec_s {
    const char *prog;      /**< "leadflow-report": messages and --version */
    const char *synopsis;  /**< after "Usage: ": "leadflow-report [options]",
                                then lines saying what it does */
    unsigned shared;       /**< the LF_CLI_* options it takes */
    const char *own_help;  /**< help lines of its own options, or NULL */
    const char *notes;     /**< after the options: secrets, exit codes */
    const char *shortopts; /**< its own, getopt syntax, or NULL */
    const struct option *longopts; /**< its own, {0}-terminated, or NULL */
    lf_cli_own_fn own;             /**< called for each of its own options */
    int max_args; /**< positional arguments it accepts (-1: any) */
} lf_cli_spec_t;

/** A setting from the command line, applied in command-line order. */
typedef struct lf_cli_setting_s {
    const char *key;   /**< NULL: value is a -X "key=value" */
    const char *value; /**< points into argv */
} lf_cli_setting_t;

/** What lf_cli_parse() read. Strings point into argv. */
typedef struct lf_cli_s {
    const lf_cli_spec_t *spec;
    lf_cli_setting_t *set; /**< -b -t -g -d -X, in command-line order */
    size_t n;
    const char *config; /**< -c FILE, or NULL */
    bool dump;          /**< -X dump */
    char **args;        /**< positional arguments */
    int nargs;
} lf_cli_t;

/** The setting name of @p s (its option's key, or the text before a -X
 *  argument's '=') in @p buf, or NULL when that is no plain setting name
 *  (lf_conf_plain_key(): then it may be anything, a URL with a password
 *  too, and is not to be printed). */
const char *lf_cli_setting_key(const lf_cli_setting_t *s, char *buf,
                               size_t size);

/** What main() should do after lf_cli_parse(). */
typedef enum lf_cli_next_e {
    LF_CLI_RUN = 0, /**< go on */
    LF_CLI_DONE,    /**< --help or --version was printed: exit 0 */
    LF_CLI_USAGE,   /**< a usage error was printed (reason, usage): exit 64 */
} lf_cli_next_t;

/**
 * Parse @p argv (argv[0] is the program or command name) by @p spec: the
 * shared options into @p cli, the program's own through spec->own(@p cfg).
 * --help prints the usage to stdout; a usage error prints "prog: reason"
 * and the usage to stderr. @p spec must outlive @p cli. Free @p cli with
 * lf_cli_free() whatever this returns.
 * @returns LF_CLI_RUN, LF_CLI_DONE or LF_CLI_USAGE (out of memory is
 * reported as a usage error's reason: nothing ran).
 */
lf_cli_next_t lf_cli_parse(lf_cli_t *cli, const lf_cli_spec_t *spec, void *cfg,
                           int argc, char **argv);

/** NULL-safe; the strings belong to argv. */
void lf_cli_free(lf_cli_t *cli);

/**
 * The exit code main() returns when lf_cli_parse() did not say run:
 * @returns LF_EX_OK after --help or --version (LF_EX_IOERR, said, when
 * standard output lost them), LF_EX_USAGE after a usage error (already
 * printed).
 */
int lf_cli_exit_code(lf_cli_next_t next);

/**
 * Did standard output lose anything printed to it (a full disk, a closed
 * pipe)? Flushes it; when it did, says "prog: cannot write to standard
 * output: reason" on stderr.
 */
bool lf_cli_stdout_lost(const char *prog);

/** -X dump: the settings of @p conf on standard output (lf_conf_dump()).
 *  @returns LF_EX_OK, or LF_EX_IOERR when they were not written (said). */
int lf_cli_dump(const lf_cli_t *cli, const lf_conf_t *conf);

/**
 * Report a failure of lf_cli_conf() or lf_cli_producer_conf() on stderr
 * and give main() its exit code: a malformed setting is a usage error
 * ("prog: -X: reason" and the usage; LF_EX_USAGE), a -c file that cannot
 * be used LF_EX_CONFIG, out of memory LF_EX_SOFTWARE.
 */
int lf_cli_conf_failed(const lf_cli_t *cli, lf_err_t err, const char *errstr);

/** The usage of cli->spec: synopsis, the shared and own options, notes. */
void lf_cli_usage(const lf_cli_t *cli, FILE *fp);

/**
 * A usage error found after parsing (two options that contradict): "prog:
 * reason" and the usage on stderr. @returns LF_CLI_USAGE.
 */
lf_cli_next_t lf_cli_usage_error(const lf_cli_t *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** A shared setting added by hand (a default the program computes). */
void lf_cli_add(lf_cli_t *cli, const char *key, const char *value);

/**
 * Apply to @p conf, in order: the LEADFLOW_* environment, -c FILE, then the
 * settings in command-line order.
 * @returns LF_OK; LF_ERR_IO when the file cannot be used; LF_ERR_INVALID
 * when a setting is malformed. errstr says which and why.
 */
lf_err_t lf_cli_conf(const lf_cli_t *cli, lf_conf_t *conf, char *errstr,
                     size_t errstr_size);

/**
 * A producer's configuration (leadflow-emit, leadflow-gen): a new conf
 * with lf_cli_conf(), then the defaults bootstrap.servers=localhost:9092,
 * client.id=spec->prog and lf_producer_conf_defaults(). On success *out is
 * the caller's to lf_conf_destroy().
 * @returns as lf_cli_conf(), or LF_ERR_NOMEM.
 */
lf_err_t lf_cli_producer_conf(const lf_cli_t *cli, lf_conf_t **out,
                              char *errstr, size_t errstr_size);

/** --version: "PROG VERSION (librdkafka V, avro-c V, libpq V)" on stdout. */
void lf_cli_version(const char *prog);

/** SIGINT and SIGTERM received so far (set by lf_cli_catch_signals()'s
 *  handler). A loop stops at the first; some stop harder at the second. */
extern volatile sig_atomic_t lf_cli_signals;

/**
 * Count SIGINT and SIGTERM in lf_cli_signals instead of dying. No
 * SA_RESTART: a blocking read or poll returns EINTR, so a program blocked
 * on its input sees the signal. With @p ignore_pipe, SIGPIPE is ignored:
 * writes to a closed socket or pipe fail with EPIPE instead.
 */
void lf_cli_catch_signals(bool ignore_pipe);

#endif
