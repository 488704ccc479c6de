/* lf_cli.c: the shared command-line options (lf_cli.h). */
#include "lf_cli.h"

#include "lf_codec.h"
#include "lf_pg.h"
#include "lf_producer.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lf_err_t lf_cli_init(lf_cli_t *cli, int argc)
{
    memset(cli, 0, sizeof(*cli));
    cli->set = calloc(argc > 0 ? (size_t)argc : 1, sizeof(*cli->set));
    return cli->set ? LF_OK : LF_ERR_NOMEM;
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

bool lf_cli_x(lf_cli_t *cli, const char *arg)
{
    if (!strcmp(arg, "dump")) {
        cli->dump = true;
        return true;
    }
    if (!strchr(arg, '='))
        return false;
    lf_cli_add(cli, NULL, arg);
    return true;
}

int lf_cli_apply(const lf_cli_t *cli, lf_conf_t *conf, char *errstr,
                 size_t errstr_size)
{
    lf_conf_load_env(conf);
    if (cli->config &&
        lf_conf_load_file(conf, cli->config, errstr, errstr_size))
        return LF_EX_CONFIG;
    for (size_t i = 0; i < cli->n; i++) {
        const lf_cli_setting_t *s = &cli->set[i];
        if (s->key ? lf_conf_set(conf, s->key, s->value, errstr, errstr_size)
                   : lf_conf_set_kv(conf, s->value, errstr, errstr_size))
            return LF_EX_USAGE;
    }
    return 0;
}

int lf_cli_producer_conf(const lf_cli_t *cli, const char *prog,
                         lf_conf_t **out, char *errstr, size_t errstr_size)
{
    lf_conf_t *conf = lf_conf_new();
    int rc;

    *out = NULL;
    if (!conf) {
        snprintf(errstr, errstr_size, "out of memory");
        return LF_EX_SOFTWARE;
    }
    if ((rc = lf_cli_apply(cli, conf, errstr, errstr_size))) {
        lf_conf_destroy(conf);
        return rc;
    }
    if (lf_conf_default(conf, "bootstrap.servers", "localhost:9092") ||
        lf_conf_default(conf, "client.id", prog) ||
        lf_producer_conf_defaults(conf)) {
        lf_conf_destroy(conf);
        snprintf(errstr, errstr_size, "out of memory");
        return LF_EX_SOFTWARE;
    }
    *out = conf;
    return 0;
}

int lf_cli_main(int argc, char **argv,
                int (*run)(int argc, char **argv, lf_cli_t *cli))
{
    lf_cli_t cli;
    int rc;

    if (lf_cli_init(&cli, argc)) {
        fprintf(stderr, "%s: out of memory\n", argc > 0 ? argv[0] : "leadflow");
        return LF_EX_SOFTWARE;
    }
    rc = run(argc, argv, &cli);
    lf_cli_free(&cli);
    return rc;
}

void lf_cli_version(const char *prog)
{
    printf("%s %s (librdkafka %s, avro-c %s, libpq %s)\n", prog, LF_VERSION,
           rd_kafka_version_str(), lf_avro_version(), lf_pg_version());
}
