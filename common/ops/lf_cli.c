/* lf_cli.c: the command line every program shares (lf_cli.h). */
#include "lf_cli.h"
#include "lf_pseudonym.h"

#include "lf_codec.h"
#include "lf_log.h"
#include "lf_pg.h"
#include "lf_producer.h"
#include "lf_registry.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

volatile sig_atomic_t lf_cli_signals;

/* Every key leadflow itself reads (lf_conf_check()). */
static const char *const known_keys[] = {
    LF_CONF_TOPIC,
    LF_CONF_DB,
    LF_CONF_METRICS,
    LF_CONF_DEFINITION,
    LF_CONF_CONTRACT_VERSION,
    LF_CONF_PSEUDONYM_KEY,
    LF_CONF_PSEUDONYM_KEY_FILE,
    LF_CONF_SR_URL,
    LF_CONF_SR_USER_INFO,
    LF_CONF_SR_CA,
    LF_CONF_SR_CERT,
    LF_CONF_SR_KEY,
    LF_CONF_SR_KEY_PASS,
    LF_CONF_SR_VERIFY,
    LF_CONF_SR_TIMEOUT,
    LF_CONF_SR_AUTO_REG,
    LF_CONF_SR_RETRY,
    NULL,
};

/* The program lf_cli_parse() last parsed for: lf_cli_exit_code() names
 * it. */
static const char *last_prog = "leadflow";

/* The shared options: flag, getopt letter, long name, whether it takes an
 * argument, the setting it gives (NULL: handled in shared_opt()) and its
 * help line. */
/* clang-format off */
static const struct shared_opt_s {
    unsigned flag;
    int letter;
    const char *name;
    int has_arg;
    const char *key;
    const char *help;
} shared_opts[] = {
    {LF_CLI_BROKERS, 'b', "brokers", required_argument, "bootstrap.servers",
     "  -b, --brokers LIST     Kafka bootstrap servers (default "
     "$LEADFLOW_BROKERS,\n                         then localhost:9092)\n"},
    {LF_CLI_TOPIC,   't', "topic",   required_argument, LF_CONF_TOPIC,
     "  -t, --topic NAME       topic (default $LEADFLOW_TOPIC, then "
     "lead-events)\n"},
    {LF_CLI_GROUP,   'g', "group",   required_argument, "group.id",
     "  -g, --group ID         consumer group (default $LEADFLOW_GROUP, "
     "then\n                         leadflow-projector)\n"},
    {LF_CLI_DB,      'd', "db",      required_argument, LF_CONF_DB,
     "  -d, --db CONNINFO      libpq conninfo or URI (default $LEADFLOW_DB, "
     "then\n                         libpq's PG* environment)\n"},
    {LF_CLI_CONF,    'X', NULL,      required_argument, NULL,
     "  -X key=value           a setting (librdkafka's or leadflow's), over "
     "-c and\n                         $LEADFLOW_*; -X dump prints the "
     "effective settings\n                         (secrets masked) and "
     "exits\n"},
    {LF_CLI_CONF,    'c', "config",  required_argument, NULL,
     "  -c, --config FILE      key=value configuration file (# comments)\n"},
    {LF_CLI_VERBOSE, 'v', "verbose", no_argument,       NULL,
     "  -v, --verbose          more logging (repeatable)\n"},
    {LF_CLI_VERBOSE, 'q', "quiet",   no_argument,       NULL,
     "  -q, --quiet            less logging\n"},
    {0,              'h', "help",    no_argument,       NULL,
     "  -h, --help             this help\n"},
    {0,              'V', "version", no_argument,       NULL,
     "  -V, --version          versions of leadflow and its libraries\n"},
};
/* clang-format on */
#define N_SHARED (sizeof(shared_opts) / sizeof(shared_opts[0]))

static bool takes(const lf_cli_spec_t *spec, const struct shared_opt_s *o)
{
    return !o->flag || (spec->shared & o->flag);
}

static const struct shared_opt_s *shared_find(const lf_cli_spec_t *spec,
                                              int letter)
{
    for (size_t i = 0; i < N_SHARED; i++)
        if (shared_opts[i].letter == letter && takes(spec, &shared_opts[i]))
            return &shared_opts[i];
    return NULL;
}

void lf_cli_usage(const lf_cli_t *cli, FILE *fp)
{
    const lf_cli_spec_t *spec = cli->spec;

    fprintf(fp, "Usage: %s\n\n", spec->synopsis);
    for (size_t i = 0; i < N_SHARED; i++)
        if (takes(spec, &shared_opts[i]) && shared_opts[i].letter != 'h' &&
            shared_opts[i].letter != 'V')
            fputs(shared_opts[i].help, fp);
    if (spec->own_help)
        fputs(spec->own_help, fp);
    fputs(shared_find(spec, 'h')->help, fp);
    fputs(shared_find(spec, 'V')->help, fp);
    if (spec->notes)
        fprintf(fp, "\n%s", spec->notes);
}

lf_cli_next_t lf_cli_usage_error(const lf_cli_t *cli, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", cli->spec->prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n\n", stderr);
    lf_cli_usage(cli, stderr);
    return LF_CLI_USAGE;
}

/* getopt's short and long option tables: the shared options @p spec takes,
 * then its own. @returns false when out of memory. */
static bool build_tables(const lf_cli_spec_t *spec, char **shortopts,
                         struct option **longopts)
{
    size_t nown = 0, k = 0;
    size_t own_len = spec->shortopts ? strlen(spec->shortopts) : 0;
    char *s;

    while (spec->longopts && spec->longopts[nown].name)
        nown++;
    *shortopts = s = malloc(2 * N_SHARED + own_len + 2);
    *longopts = calloc(N_SHARED + nown + 1, sizeof(**longopts));
    if (!s || !*longopts)
        return false;
    *s++ = ':'; /* a missing argument is ':', reported by us */
    for (size_t i = 0; i < N_SHARED; i++) {
        const struct shared_opt_s *o = &shared_opts[i];
        if (!takes(spec, o))
            continue;
        *s++ = (char)o->letter;
        if (o->has_arg)
            *s++ = ':';
        if (o->name)
            (*longopts)[k++] =
                (struct option){o->name, o->has_arg, NULL, o->letter};
    }
    memcpy(s, spec->shortopts ? spec->shortopts : "", own_len + 1);
    for (size_t i = 0; i < nown; i++)
        (*longopts)[k++] = spec->longopts[i];
    return true;
}

/* The long name of getopt value @p opt, for messages ("--batch" or "-n"). */
static void opt_name(const struct option *longopts, int opt, char *buf,
                     size_t size)
{
    for (const struct option *o = longopts; o->name; o++)
        if (o->val == opt && !o->flag) {
            snprintf(buf, size, "--%s", o->name);
            return;
        }
    snprintf(buf, size, "-%c", opt > 0 && opt < 128 ? opt : '?');
}

/* A shared option. @returns LF_CLI_RUN to go on. */
static lf_cli_next_t shared_opt(lf_cli_t *cli, const struct shared_opt_s *o,
                                const char *arg)
{
    if (o->key) {
        lf_cli_add(cli, o->key, arg);
        return LF_CLI_RUN;
    }
    switch (o->letter) {
    case 'X':
        if (!strcmp(arg, "dump"))
            cli->dump = true;
        else if (!strncmp(arg, LF_CONF_PSEUDONYM_KEY "=",
                          sizeof(LF_CONF_PSEUDONYM_KEY)))
            return lf_cli_usage_error(
                cli,
                "-X %s: the pseudonym key is never given on the "
                "command line (others can read it in ps): put it in "
                "the file that %s names",
                LF_CONF_PSEUDONYM_KEY, LF_CONF_PSEUDONYM_KEY_FILE);
        else if (strchr(arg, '='))
            lf_cli_add(cli, NULL, arg);
        else
            return lf_cli_usage_error(
                cli, "-X \"%s\": expected key=value or dump", arg);
        return LF_CLI_RUN;
    case 'c':
        cli->config = arg;
        return LF_CLI_RUN;
    case 'v':
        lf_log_level++;
        return LF_CLI_RUN;
    case 'q':
        lf_log_level--;
        return LF_CLI_RUN;
    case 'h':
        lf_cli_usage(cli, stdout);
        return LF_CLI_DONE;
    default: { /* 'V': the program, not the command ("leadflow-replay") */
        char prog[64];
        snprintf(prog, sizeof(prog), "%.*s", (int)strcspn(cli->spec->prog, " "),
                 cli->spec->prog);
        lf_cli_version(prog);
        return LF_CLI_DONE;
    }
    }
}

/* The getopt loop over @p argv with the built tables. */
static lf_cli_next_t parse_loop(lf_cli_t *cli, void *cfg, int argc, char **argv,
                                const char *shortopts,
                                const struct option *longopts)
{
    const lf_cli_spec_t *spec = cli->spec;
    char errstr[512], name[64];
    int opt;

    while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        const struct shared_opt_s *o = shared_find(spec, opt);
        lf_cli_next_t next;

        if (opt == '?')
            return lf_cli_usage_error(cli, "unknown option \"%s\"",
                                      argv[optind - 1]);
        if (opt == ':') {
            opt_name(longopts, optopt, name, sizeof(name));
            return lf_cli_usage_error(cli, "%s needs an argument",
                                      optopt ? name : argv[optind - 1]);
        }
        if (o) {
            if ((next = shared_opt(cli, o, optarg)) != LF_CLI_RUN)
                return next;
            continue;
        }
        if (!spec->own ||
            spec->own(cfg, opt, optarg, errstr, sizeof(errstr)) != LF_OK)
            return lf_cli_usage_error(cli, "%s",
                                      spec->own ? errstr : "bad option");
    }
    cli->args = argv + optind;
    cli->nargs = argc - optind;
    if (spec->max_args >= 0 && cli->nargs > spec->max_args)
        return lf_cli_usage_error(cli, "unexpected argument \"%s\"",
                                  cli->args[spec->max_args]);
    return LF_CLI_RUN;
}

lf_cli_next_t lf_cli_parse(lf_cli_t *cli, const lf_cli_spec_t *spec, void *cfg,
                           int argc, char **argv)
{
    char *shortopts = NULL;
    struct option *longopts = NULL;
    lf_cli_next_t next;

    memset(cli, 0, sizeof(*cli));
    cli->spec = spec;
    last_prog = spec->prog;
    cli->set = calloc(argc > 0 ? (size_t)argc : 1, sizeof(*cli->set));
    if (!cli->set || !build_tables(spec, &shortopts, &longopts)) {
        next = lf_cli_usage_error(cli, "out of memory");
    } else {
        opterr = 0; /* our messages, with the usage */
        optind = 1; /* replay parses a command's argv after the name */
        next = parse_loop(cli, cfg, argc, argv, shortopts, longopts);
    }
    free(shortopts);
    free(longopts);
    return next;
}

int lf_cli_exit_code(lf_cli_next_t next)
{
    if (next != LF_CLI_DONE)
        return LF_EX_USAGE;
    return lf_cli_stdout_lost(last_prog) ? LF_EX_IOERR : LF_EX_OK;
}

bool lf_cli_stdout_lost(const char *prog)
{
    int e;

    errno = 0;
    if (fflush(stdout) != EOF && !ferror(stdout))
        return false;
    e = errno;
    fprintf(stderr, "%s: cannot write to standard output%s%s\n", prog,
            e ? ": " : "", e ? strerror(e) : "");
    return true;
}

int lf_cli_dump(const lf_cli_t *cli, const lf_conf_t *conf)
{
    lf_conf_dump(conf, stdout);
    return lf_cli_stdout_lost(cli->spec->prog) ? LF_EX_IOERR : LF_EX_OK;
}

int lf_cli_conf_failed(const lf_cli_t *cli, lf_err_t err, const char *errstr)
{
    if (err == LF_ERR_INVALID) {
        lf_cli_usage_error(cli, "-X: %s", errstr);
        return LF_EX_USAGE;
    }
    fprintf(stderr, "%s: %s\n", cli->spec->prog, errstr);
    return err == LF_ERR_NOMEM ? LF_EX_SOFTWARE : LF_EX_CONFIG;
}

void lf_cli_free(lf_cli_t *cli)
{
    if (!cli)
        return;
    free(cli->set);
    memset(cli, 0, sizeof(*cli));
}

void lf_cli_add(lf_cli_t *cli, const char *key, const char *value)
{
    /* one entry per option argument: argc bounds them */
    cli->set[cli->n].key = key;
    cli->set[cli->n++].value = value;
}

const char *lf_cli_setting_key(const lf_cli_setting_t *s, char *buf,
                               size_t size)
{
    size_t n = s->key ? strlen(s->key) : strcspn(s->value, "=");

    if (n >= size)
        return NULL;
    memcpy(buf, s->key ? s->key : s->value, n);
    buf[n] = '\0';
    return lf_conf_plain_key(buf) ? buf : NULL;
}

/* A password, a secret, a registry's user info or a URL with a password
 * (-X, or -d) works, but others can read it (ps, the shell's history):
 * say where it belongs, naming the setting, never its value (nor a key
 * that is no setting name: it may be a URL that holds the secret). */
static void warn_secret(const lf_cli_setting_t *s)
{
    char buf[72];
    const char *k = lf_cli_setting_key(s, buf, sizeof(buf));
    const char *eq = s->key ? NULL : strchr(s->value, '=');

    /* Without a plain name the whole argument is what may hold one. */
    if (lf_conf_holds_secret(k ? k : "", k && eq ? eq + 1 : s->value))
        LF_LOG(LF_LOG_WARNING,
               "msg=\"a secret on the command line: others can read it (ps, "
               "the shell's history); put it in the -c file (mode 600)%s\" "
               "key=%s",
               k && !strcmp(k, LF_CONF_DB) ? " or in ~/.pgpass" : "",
               k ? k : "unnamed");
}

lf_err_t lf_cli_conf(const lf_cli_t *cli, lf_conf_t *conf, char *errstr,
                     size_t errstr_size)
{
    for (size_t i = 0; i < cli->n; i++)
        warn_secret(&cli->set[i]);
    lf_conf_load_env(conf);
    if (cli->config &&
        lf_conf_load_file(conf, cli->config, errstr, errstr_size))
        return LF_ERR_IO;
    for (size_t i = 0; i < cli->n; i++) {
        const lf_cli_setting_t *s = &cli->set[i];
        if (s->key ? lf_conf_set(conf, s->key, s->value, errstr, errstr_size)
                   : lf_conf_set_kv(conf, s->value, errstr, errstr_size))
            return LF_ERR_INVALID;
    }
    return lf_conf_check(conf, known_keys, errstr, errstr_size);
}

lf_err_t lf_cli_producer_conf(const lf_cli_t *cli, lf_conf_t **out,
                              char *errstr, size_t errstr_size)
{
    lf_conf_t *conf = lf_conf_new();
    lf_err_t err;

    *out = NULL;
    if (!conf)
        return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
    if ((err = lf_cli_conf(cli, conf, errstr, errstr_size))) {
        lf_conf_destroy(conf);
        return err;
    }
    if (lf_conf_default(conf, "bootstrap.servers", "localhost:9092") ||
        lf_conf_default(conf, "client.id", cli->spec->prog) ||
        lf_producer_conf_defaults(conf)) {
        lf_conf_destroy(conf);
        return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
    }
    *out = conf;
    return LF_OK;
}

void lf_cli_version(const char *prog)
{
    printf("%s %s (librdkafka %s, avro-c %s, libpq %s)\n", prog, LF_VERSION,
           rd_kafka_version_str(), lf_avro_version(), lf_pg_version());
}

static void on_signal(int sig)
{
    (void)sig;
    lf_cli_signals++;
}

void lf_cli_catch_signals(bool ignore_pipe)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (ignore_pipe) {
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
}
