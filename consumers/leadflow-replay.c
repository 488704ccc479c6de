/* leadflow-replay: on-call tools over the event stream and the funnel model:
 * rewind the projector's offsets, rebuild the model into another schema
 * (from Kafka or from funnel.events) with the projector's own code, diff it
 * against the live one, promote it atomically, retry dead letters, and
 * dump decoded events as JSON lines that leadflow-emit accepts. */
#include "lf_codec.h"
#include "lf_cli.h"
#include "lf_conf.h"
#include "lf_deadletter.h"
#include "lf_json.h"
#include "lf_log.h"
#include "lf_pg.h"
#include "lf_progress.h"
#include "lf_projector.h"
#include "lf_rewind.h"
#include "lf_topic.h"
#include "lf_catalog.h"
#include "lf_diff.h"
#include "lf_promote.h"
#include "lf_rebuild.h"
#include "lf_time.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROG             "leadflow-replay"
#define KAFKA_TIMEOUT_MS 10000

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* ---- usage ------------------------------------------------------------ */

static const char *usage_common =
    "Common options (every command):\n"
    "  -b, --brokers LIST     bootstrap servers (default $LEADFLOW_BROKERS, "
    "then\n"
    "                         localhost:9092)\n"
    "  -t, --topic NAME       topic (default lead-events)\n"
    "  -g, --group ID         the projector's consumer group, whose offsets "
    "are in\n"
    "                         funnel.offsets (default leadflow-projector)\n"
    "  -d, --db CONNINFO      libpq conninfo or URI (default: libpq's PG* "
    "environment)\n"
    "  -X key=value           a setting (leadflow's or librdkafka's); -X "
    "dump prints\n"
    "                         the effective settings and exits\n"
    "  -c, --config FILE      key=value settings file\n"
    "      --progress MODE    auto (a bar on a terminal, lines otherwise), "
    "bar, lines\n"
    "                         or none (default auto)\n"
    "  -v, --verbose / -q, --quiet   more / less logging\n"
    "  -h, --help             help (of the command, after it)\n"
    "  -V, --version          versions of leadflow and its libraries\n"
    "\n"
    "Secrets never go on the command line: put the PostgreSQL password in\n"
    "~/.pgpass or PGPASSFILE, or in the -c file (chmod 600) with Kafka's\n"
    "(sasl.password); -X dump masks them.\n";

static const char *usage_rewind =
    "leadflow-replay rewind --to TIME | --to-offset P:O[,P:O...] "
    "[--dry-run]\n"
    "                       [--no-group-check] [--lock-timeout S]\n"
    "  Move the projector group's stored offsets (funnel.offsets) back so "
    "the\n"
    "  projector re-reads from there; idempotence keeps the tables as they "
    "are\n"
    "  unless the code changed.\n"
    "  --to TIME              the first message at or after TIME (RFC 3339 "
    "or\n"
    "                         YYYY-MM-DD) per partition, from Kafka "
    "(offsets for\n"
    "                         times; if the broker cannot look times up, a "
    "binary\n"
    "                         search over message timestamps)\n"
    "  --to-offset P:O,...    explicit offsets (O a number or \"beginning\"); "
    "other\n"
    "                         partitions are left alone\n"
    "  --dry-run              print per partition the current offset, the "
    "new one\n"
    "                         and the messages to re-read; change nothing\n"
    "  A rewind only moves offsets back, never forward (that would skip "
    "messages),\n"
    "  and never creates one (without a stored offset the projector starts "
    "at the\n"
    "  beginning anyway). leadflow-project reads funnel.offsets only when it "
    "is\n"
    "  assigned partitions, and a running one overwrites them at its next "
    "batch:\n"
    "  so rewind refuses (exit 75) while the group has members, locks\n"
    "  funnel.offsets while it writes (a projector starting meanwhile waits "
    "and\n"
    "  reads the new offsets), and the projector must be started after it.\n"
    "  --no-group-check       do not ask Kafka whether the group has members "
    "(for\n"
    "                         brokers without DescribeGroups, like the dev "
    "broker):\n"
    "                         you make sure every projector of the group is "
    "stopped\n"
    "  --lock-timeout S       wait at most S seconds for locks (default "
    "30)\n";

static const char *usage_rebuild =
    "leadflow-replay rebuild --into SCHEMA [--from-kafka | --from-db] "
    "[--replace]\n"
    "                        [--batch N] [--order lead|time|none]\n"
    "  Build the whole funnel model from scratch into SCHEMA (same tables as "
    "funnel)\n"
    "  with the projector's own code.\n"
    "  --from-kafka           from the topic, every partition from its "
    "beginning to\n"
    "                         the end it had at the start (the default); "
    "dead\n"
    "                         letters come from the topic too; the offsets "
    "reached\n"
    "                         are stored for the group (-g) in "
    "SCHEMA.offsets\n"
    "  --from-db              from funnel.events, in one snapshot that also "
    "gives\n"
    "                         the dead letters, the conflict and key "
    "anomalies and\n"
    "                         the offsets of exactly those events\n"
    "  --replace              drop SCHEMA first if it exists\n"
    "  --batch N              events per transaction (default 5000)\n"
    "  --order ORDER          --from-db reading order: lead (default; each "
    "lead in\n"
    "                         one batch), time, none (as stored). The result "
    "does\n"
    "                         not depend on it.\n"
    "  Then: diff --against SCHEMA, and promote SCHEMA.\n";

static const char *usage_diff =
    "leadflow-replay diff --against SCHEMA [--base SCHEMA] [--limit N]\n"
    "  Compare the model in SCHEMA with funnel (or --base): rows and "
    "checksum per\n"
    "  table, then the first N (default 10) differing leads with their "
    "differing\n"
    "  rows and columns. Wall-clock columns (received_at, updated_at, "
    "detected_at),\n"
    "  the Kafka coordinates of events and resolved dead letters are not "
    "compared.\n"
    "  Exit 0: equal; 1: they differ (like diff(1)).\n";

static const char *usage_promote =
    "leadflow-replay promote SCHEMA [--no-group-check] [--lock-timeout S]\n"
    "  Swap the rebuilt SCHEMA in as funnel in one transaction: funnel "
    "becomes\n"
    "  funnel_old_YYYYMMDDHHMMSS (UTC); funnel's functions and views are "
    "re-created\n"
    "  in the new funnel, owners and privileges carried over. Readers see "
    "the old\n"
    "  model or the new, never a mix. The new funnel keeps its own "
    "funnel.offsets,\n"
    "  those of the events it was built from: taking the old ones would "
    "skip what\n"
    "  the projector wrote after the rebuild read its events. So the "
    "projector must\n"
    "  be stopped during the promote (as for rewind: checked in Kafka "
    "unless\n"
    "  --no-group-check) and started after it; it re-reads what came after "
    "the\n"
    "  rebuild. Refuses (exit 65) unless SCHEMA is a complete rebuild (or an "
    "older\n"
    "  funnel_old_*) with the same tables, columns and migrations, and "
    "funnel holds\n"
    "  nothing it cannot carry over. Undo: promote the funnel_old_* "
    "schema.\n"
    "  The locks are taken in short attempts (half of deadlock_timeout "
    "each) that\n"
    "  give way to readers, so no reader ever gets a deadlock error; under "
    "constant\n"
    "  heavy reading it may need a longer --lock-timeout (default 30 s) or "
    "a quieter\n"
    "  moment (exit 75).\n";

static const char *usage_dead =
    "leadflow-replay dead-letters list [--since TIME] [--all]\n"
    "leadflow-replay dead-letters retry --id N[,N...]... | --all [--dry-run] "
    "[--note TEXT]\n"
    "  list: the open dead letters (--all: resolved ones too), received "
    "since TIME,\n"
    "        tab-separated under a header\n"
    "  retry: decode again with the current code; apply those that pass "
    "(with their\n"
    "        original topic, partition and offset) and mark them resolved "
    "(when, and\n"
    "        why: the event and --note); those still failing keep their row "
    "with the\n"
    "        new error. Applying twice changes nothing.\n";

static const char *usage_dump =
    "leadflow-replay dump [--from TIME] [--to TIME] [--lead ID]... "
    "[--partition P]...\n"
    "  The decoded events of the topic, from the beginning to its end at the "
    "start,\n"
    "  as JSON lines in the emit format with \"_kafka\":{topic, partition, "
    "offset}\n"
    "  added (leadflow-emit ignores it: a dump is valid emit input). "
    "Filters:\n"
    "  --from/--to on the event's occurred_at (from inclusive, to "
    "exclusive),\n"
    "  --lead (repeatable), --partition (repeatable). Undecodable messages "
    "are\n"
    "  counted and logged, not printed.\n";

static void usage(FILE *fp)
{
    fprintf(fp,
            "Usage: leadflow-replay COMMAND [options]\n"
            "On-call replay of the lead event stream and the funnel model.\n"
            "\nCommands:\n\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n"
            "Exit codes: 0 done (diff: equal), 1 diff: the schemas differ, "
            "64 usage,\n"
            "  65 bad data (no such schema, topic or dead letter; a promote "
            "precondition;\n"
            "  a stored event that no longer parses), 69 Kafka or PostgreSQL "
            "unavailable\n"
            "  (or the group cannot be checked), 70 internal error, 74 output "
            "not written,\n"
            "  75 try again later (the group has members, a lock timed out, "
            "the connection\n"
            "  broke, interrupted), 78 bad configuration.\n",
            usage_rewind, usage_rebuild, usage_diff, usage_promote, usage_dead,
            usage_dump, usage_common);
}

/* ---- common options and configuration --------------------------------- */

typedef struct app_s {
    const char *cmd;
    const char *cmd_usage;
    lf_conf_t *conf;
    lf_cli_t cli; /* -b -t -g -d -X -c */
    lf_progress_mode_t progress;
    const char *topic, *group, *conninfo;
    PGconn *conn;
    rd_kafka_t *rk;
    bool no_group_check;
    int lock_timeout_ms;
} app_t;

#define COMMON_OPTS "b:t:g:d:X:c:vqhV"
#define COMMON_LONG                                                            \
    {"brokers", required_argument, NULL, 'b'},                                 \
        {"topic", required_argument, NULL, 't'},                               \
        {"group", required_argument, NULL, 'g'},                               \
        {"db", required_argument, NULL, 'd'},                                  \
        {"config", required_argument, NULL, 'c'},                              \
        {"progress", required_argument, NULL, 'P'},                            \
        {"verbose", no_argument, NULL, 'v'},                                   \
        {"quiet", no_argument, NULL, 'q'}, {"help", no_argument, NULL, 'h'},   \
    {                                                                          \
        "version", no_argument, NULL, 'V'                                      \
    }

/* A usage error: the reason, the command's usage, 64. */
static int usage_error(const app_t *app, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int usage_error(const app_t *app, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, PROG " %s: ", app->cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n\nUsage: %s\n%s", app->cmd_usage, usage_common);
    return LF_EX_USAGE;
}

/* Handle a common option. @returns -1 if @p opt is not one, else 0 to go
 * on or an exit code + 1000 to exit with. */
static int common_opt(app_t *app, int opt, const char *arg)
{
    static const char *keys[128] = {['b'] = "bootstrap.servers",
                                    ['t'] = LF_CONF_TOPIC,
                                    ['g'] = "group.id",
                                    ['d'] = LF_CONF_DB};
    int m;

    switch (opt) {
    case 'b':
    case 't':
    case 'g':
    case 'd':
        lf_cli_add(&app->cli, keys[opt], arg);
        return 0;
    case 'X':
        if (!lf_cli_x(&app->cli, arg))
            return 1000 + usage_error(app,
                                      "-X \"%s\": expected key=value or "
                                      "dump",
                                      arg);
        return 0;
    case 'c':
        app->cli.config = arg;
        return 0;
    case 'P':
        if ((m = lf_progress_mode_parse(arg)) < 0)
            return 1000 + usage_error(app,
                                      "--progress %s: expected auto, "
                                      "bar, lines or none",
                                      arg);
        app->progress = (lf_progress_mode_t)m;
        return 0;
    case 'v':
        lf_log_level++;
        return 0;
    case 'q':
        lf_log_level--;
        return 0;
    case 'h':
        printf("Usage: %s\n%s", app->cmd_usage, usage_common);
        return 1000 + LF_EX_OK;
    case 'V':
        lf_cli_version(PROG);
        return 1000 + LF_EX_OK;
    case '?':
    case ':':
        fprintf(stderr, "\nUsage: %s\n%s", app->cmd_usage, usage_common);
        return 1000 + LF_EX_USAGE;
    default:
        return -1;
    }
}

/* Settings in order: environment, -c FILE, -X and shorthands, defaults.
 * @returns 0 to go on, or an exit code + 1000. */
static int finish_conf(app_t *app)
{
    char errstr[1024];
    int rc = lf_cli_apply(&app->cli, app->conf, errstr, sizeof(errstr));

    if (rc) {
        fprintf(stderr, PROG ": %s%s\n", rc == LF_EX_USAGE ? "-X " : "",
                errstr);
        return 1000 + rc;
    }
    lf_conf_default(app->conf, "bootstrap.servers", "localhost:9092");
    lf_conf_default(app->conf, LF_CONF_TOPIC, LF_CONF_DEFAULT_TOPIC);
    lf_conf_default(app->conf, "group.id", "leadflow-projector");
    lf_conf_default(app->conf, LF_CONF_DB, "");
    if (app->cli.dump) {
        lf_conf_dump(app->conf, stdout);
        return 1000 + LF_EX_OK;
    }
    app->topic = lf_conf_get(app->conf, LF_CONF_TOPIC);
    app->group = lf_conf_get(app->conf, "group.id");
    app->conninfo = lf_conf_get(app->conf, LF_CONF_DB);
    return 0;
}

static int connect_db(app_t *app)
{
    char errstr[1024], q[1100];

    if (!(app->conn = lf_pg_connect(app->conninfo, errstr, sizeof(errstr)))) {
        LF_LOG(LF_LOG_ERR, "msg=\"cannot reach PostgreSQL\" error=%s",
               lf_log_quote(errstr, q, sizeof(q)));
        return LF_EX_UNAVAILABLE;
    }
    return 0;
}

static int connect_kafka(app_t *app)
{
    char errstr[1024], q[1100];

    if (!(app->rk =
              lf_topic_consumer_new(app->conf, errstr, sizeof(errstr)))) {
        LF_LOG(LF_LOG_ERR, "msg=\"bad Kafka configuration\" error=%s",
               lf_log_quote(errstr, q, sizeof(q)));
        return LF_EX_CONFIG;
    }
    return 0;
}

/* The exit code for an error of the common modules. */
static int exit_for(lf_err_t err)
{
    switch (err) {
    case LF_OK:
        return LF_EX_OK;
    case LF_ERR_INVALID:
        return LF_EX_DATAERR;
    case LF_ERR_TEMPORARY:
        return LF_EX_TEMPFAIL;
    case LF_ERR_KAFKA:
    case LF_ERR_PG:
        return LF_EX_UNAVAILABLE;
    case LF_ERR_IO:
        return LF_EX_IOERR;
    default:
        return LF_EX_SOFTWARE;
    }
}

static int fail_with(lf_err_t err, const char *what, const char *errstr)
{
    char q[1200];
    LF_LOG(LF_LOG_ERR, "msg=\"%s\" error=%s", what,
           lf_log_quote(errstr, q, sizeof(q)));
    return exit_for(err);
}

/* Called with the locks held by rewind and promote: a running projector
 * would undo a rewind at its next batch and would skip, in a promoted
 * model, what it consumed since the rebuild. */
static lf_err_t group_check(void *arg, char *errstr, size_t errstr_size)
{
    app_t *app = arg;
    char state[64], e[512];
    int members = 0;

    if (app->no_group_check)
        return LF_OK;
    if (lf_topic_group_members(app->rk, app->group, KAFKA_TIMEOUT_MS, &members,
                                state, sizeof(state), e, sizeof(e)))
        return lf_seterr(LF_ERR_KAFKA, errstr, errstr_size,
                         "%s; cannot tell whether projectors of group %s are "
                         "running: stop them all and run again with "
                         "--no-group-check",
                         e, app->group);
    if (members > 0)
        return lf_seterr(LF_ERR_TEMPORARY, errstr, errstr_size,
                         "group %s has %d member(s) (state %s): stop every "
                         "leadflow-project of the group first",
                         app->group, members, state);
    return LF_OK;
}

/* ---- rewind ----------------------------------------------------------- */

static int cmd_rewind(app_t *app, int argc, char **argv)
{
    static const struct option opts[] = {
        COMMON_LONG,
        {"to", required_argument, NULL, 'T'},
        {"to-offset", required_argument, NULL, 'O'},
        {"dry-run", no_argument, NULL, 'n'},
        {"no-group-check", no_argument, NULL, 'G'},
        {"lock-timeout", required_argument, NULL, 'L'},
        {NULL, 0, NULL, 0}};
    const char *to = NULL, *to_offset = NULL;
    bool dry_run = false;
    char errstr[1024], ts[40];
    lf_topic_part_t *parts = NULL;
    lf_rewind_t *rows = NULL;
    int count = 0, changed = 0, opt, rc;
    int64_t to_ms = 0, reread = 0;
    lf_err_t err;

    while ((opt = getopt_long(argc, argv, COMMON_OPTS, opts, NULL)) != -1) {
        char *end;
        if ((rc = common_opt(app, opt, optarg)) >= 0) {
            if (rc >= 1000)
                return rc - 1000;
            continue;
        }
        switch (opt) {
        case 'T':
            to = optarg;
            break;
        case 'O':
            to_offset = optarg;
            break;
        case 'n':
            dry_run = true;
            break;
        case 'G':
            app->no_group_check = true;
            break;
        case 'L':
            app->lock_timeout_ms = (int)strtol(optarg, &end, 10) * 1000;
            if (*end || app->lock_timeout_ms < 1000 ||
                app->lock_timeout_ms > 3600000)
                return usage_error(app,
                                   "--lock-timeout %s: expected 1..3600 "
                                   "seconds",
                                   optarg);
            break;
        }
    }
    if (optind < argc)
        return usage_error(app, "unexpected argument \"%s\"", argv[optind]);
    if (!!to == !!to_offset)
        return usage_error(app, "give one of --to TIME and --to-offset P:O");
    if (to && lf_time_parse(to, 1, &to_ms, errstr, sizeof(errstr)))
        return usage_error(app, "--to %s: %s", to, errstr);
    if ((rc = finish_conf(app)))
        return rc - 1000;
    if ((rc = connect_db(app)) || (rc = connect_kafka(app)))
        return rc;
    if ((err = lf_topic_partitions(app->rk, app->topic, KAFKA_TIMEOUT_MS,
                                    &parts, &count, errstr, sizeof(errstr))))
        return fail_with(err, "cannot read the topic", errstr);
    if (!(rows = calloc((size_t)count + 1, sizeof(*rows)))) {
        free(parts);
        return LF_EX_SOFTWARE;
    }
    for (int i = 0; i < count; i++)
        rows[i] = (lf_rewind_t){.partition = parts[i].partition,
                                .low = parts[i].low,
                                .high = parts[i].high,
                                .target = -1,
                                .current = -1,
                                .next = -1};
    if (to_offset && lf_rewind_parse_offsets(to_offset, rows, count, errstr,
                                             sizeof(errstr))) {
        rc = usage_error(app, "%s", errstr);
        goto out;
    }
    if (to) {
        int64_t *offs = calloc((size_t)count + 1, sizeof(*offs));
        bool *searched = calloc((size_t)count + 1, sizeof(*searched));
        if (!offs || !searched) {
            free(offs);
            free(searched);
            rc = LF_EX_SOFTWARE;
            goto out;
        }
        err = lf_topic_offsets_for_time(app->rk, app->topic, parts, count,
                                         to_ms, KAFKA_TIMEOUT_MS, offs,
                                         searched, errstr, sizeof(errstr));
        for (int i = 0; !err && i < count; i++) {
            rows[i].target = offs[i];
            rows[i].searched = searched[i];
        }
        free(offs);
        free(searched);
        if (err) {
            rc = fail_with(err, "cannot look up offsets for the time", errstr);
            goto out;
        }
    }
    if (!dry_run && app->no_group_check)
        LF_LOG(LF_LOG_WARNING,
               "msg=\"not checking that the group has no members: every "
               "leadflow-project of the group must be stopped\" group=%s",
               app->group);
    /* Fail fast without locks; checked again under the lock. */
    if (!dry_run && (err = group_check(app, errstr, sizeof(errstr)))) {
        rc = fail_with(err, "rewind not done", errstr);
        goto out;
    }
    err = lf_rewind_run(app->conn, app->group, app->topic, rows, count,
                        !dry_run, app->lock_timeout_ms, group_check, app,
                        &changed, errstr, sizeof(errstr));
    if (err) {
        rc = fail_with(err, "rewind not done", errstr);
        goto out;
    }
    printf("%s group=%s topic=%s%s%s\n",
           dry_run ? "rewind plan (dry run, nothing written):" : "rewound:",
           app->group, app->topic, to ? " to=" : "",
           to ? lf_time_format(to_ms, ts, sizeof(ts)) : "");
    printf("partition\tcurrent\tnew\tre-read\tnote\n");
    for (int i = 0; i < count; i++) {
        lf_rewind_t *r = &rows[i];
        int64_t n =
            r->next >= 0 && r->current > r->next ? r->current - r->next : 0;
        char cur[24] = "-", nxt[24] = "-";
        reread += n;
        if (r->current >= 0)
            snprintf(cur, sizeof(cur), "%" PRId64, r->current);
        if (r->next >= 0)
            snprintf(nxt, sizeof(nxt), "%" PRId64, r->next);
        char note[256];
        snprintf(note, sizeof(note), "%s%s%s%s%s", r->note ? r->note : "",
                 r->note && (r->clamped || r->searched) ? "; " : "",
                 r->clamped ? "target below the oldest retained message" : "",
                 r->clamped && r->searched ? "; " : "",
                 r->searched ? "found by message timestamps" : "");
        printf("%d\t%s\t%s\t%" PRId64 "\t%s\n", (int)r->partition, cur, nxt, n,
               note);
    }
    fflush(stdout);
    LF_LOG(LF_LOG_NOTICE,
           "msg=summary command=rewind dry_run=%s group=%s topic=%s "
           "partitions=%d changed=%d messages_to_reread=%" PRId64,
           dry_run ? "yes" : "no", app->group, app->topic, count, changed,
           reread);
    if (!dry_run && changed)
        LF_LOG(LF_LOG_NOTICE,
               "msg=\"now start the projectors of the group: they read "
               "funnel.offsets when partitions are assigned\" group=%s",
               app->group);
    rc = LF_EX_OK;
out:
    free(rows);
    free(parts);
    return rc;
}

/* ---- rebuild ---------------------------------------------------------- */

/* Write the batch, reconnecting and retrying a few times on connection
 * trouble. */
static lf_err_t flush_retry(app_t *app, lf_projector_t *p, char *errstr,
                            size_t errstr_size)
{
    lf_err_t err = LF_OK;

    for (int attempt = 0; attempt < 6 && !stop; attempt++) {
        if (attempt) {
            long ms = 200L << (attempt < 4 ? attempt : 4); /* to 3.2 s */
            struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            if (PQstatus(app->conn) != CONNECTION_OK) {
                PQfinish(app->conn);
                lf_projector_conn_reset(p);
                if (!(app->conn =
                          lf_pg_connect(app->conninfo, errstr, errstr_size)))
                    continue;
            }
        }
        err = lf_projector_flush(p, app->conn, NULL, errstr, errstr_size);
        if (err != LF_ERR_TEMPORARY)
            return err;
        LF_LOG(LF_LOG_WARNING,
               "msg=\"batch not written, retrying\" "
               "attempt=%d",
               attempt + 1);
    }
    return err ? err : LF_ERR_TEMPORARY;
}

static int cmd_rebuild(app_t *app, int argc, char **argv)
{
    static const struct option opts[] = {
        COMMON_LONG,
        {"into", required_argument, NULL, 'I'},
        {"from-kafka", no_argument, NULL, 'K'},
        {"from-db", no_argument, NULL, 'D'},
        {"replace", no_argument, NULL, 'R'},
        {"batch", required_argument, NULL, 'B'},
        {"order", required_argument, NULL, 'O'},
        {NULL, 0, NULL, 0}};
    const char *into = NULL;
    bool from_db = false, from_kafka = false, replace = false;
    int batch = 5000, order = LF_REBUILD_ORDER_LEAD, opt, rc = 0;
    char errstr[1024], summary[512];
    lf_projector_t *p = NULL;
    lf_progress_t *pr = NULL;
    lf_rebuild_source_t *src = NULL;
    lf_topic_reader_t *reader = NULL;
    lf_topic_part_t *parts = NULL;
    int count = 0;
    uint64_t done = 0, copied[3] = {0, 0, 0};
    int64_t started = lf_now_mono_ms();
    lf_err_t err;

    while ((opt = getopt_long(argc, argv, COMMON_OPTS, opts, NULL)) != -1) {
        char *end;
        if ((rc = common_opt(app, opt, optarg)) >= 0) {
            if (rc >= 1000)
                return rc - 1000;
            continue;
        }
        switch (opt) {
        case 'I':
            into = optarg;
            break;
        case 'K':
            from_kafka = true;
            break;
        case 'D':
            from_db = true;
            break;
        case 'R':
            replace = true;
            break;
        case 'B':
            batch = (int)strtol(optarg, &end, 10);
            if (*end || batch < 1 || batch > 1000000)
                return usage_error(app, "--batch %s: expected 1..1000000",
                                   optarg);
            break;
        case 'O':
            if ((order = lf_rebuild_order_parse(optarg)) < 0)
                return usage_error(app,
                                   "--order %s: expected lead, time or "
                                   "none",
                                   optarg);
            break;
        }
    }
    if (optind < argc)
        return usage_error(app, "unexpected argument \"%s\"", argv[optind]);
    if (!into)
        return usage_error(app, "--into SCHEMA is required");
    if (from_db && from_kafka)
        return usage_error(app, "give one of --from-kafka and --from-db");
    if (lf_catalog_check_name(NULL, into, errstr, sizeof(errstr)))
        return usage_error(app, "--into: %s", errstr);
    if ((rc = finish_conf(app)))
        return rc - 1000;
    if ((rc = connect_db(app)))
        return rc;
    const char *how = from_db ? "from-db" : "from-kafka";

    /* Kafka first, so a broker problem is found before a schema is made. */
    if (!from_db) {
        if ((rc = connect_kafka(app)))
            return rc;
        if ((err =
                 lf_topic_partitions(app->rk, app->topic, KAFKA_TIMEOUT_MS,
                                      &parts, &count, errstr, sizeof(errstr))))
            return fail_with(err, "cannot read the topic", errstr);
    } else if (!(src = lf_rebuild_source_open(app->conninfo, (lf_rebuild_order_t)order,
                                        errstr, sizeof(errstr)))) {
        return fail_with(LF_ERR_PG, "cannot read funnel.events", errstr);
    }
    if ((err = lf_rebuild_create(app->conn, into, replace, how, errstr,
                                     sizeof(errstr)))) {
        rc = fail_with(err, "cannot create the schema", errstr);
        goto out;
    }
    /* From Kafka the offsets reached are the group's in the new model; from
     * the database they are copied with the snapshot. */
    if (!(p = lf_projector_new(into, from_db ? NULL : app->group, errstr,
                               sizeof(errstr)))) {
        rc = fail_with(LF_ERR_NOMEM, "cannot start", errstr);
        goto out;
    }
    LF_LOG(LF_LOG_INFO, "msg=\"rebuilding\" into=%s source=%s topic=%s", into,
           how, app->topic);
    if (from_db) {
        pr = lf_progress_new("rebuild", "events", lf_rebuild_source_total(src),
                             app->progress);
        for (;;) {
            size_t added;
            if (stop) {
                err = LF_ERR_TEMPORARY;
                snprintf(errstr, sizeof(errstr), "interrupted");
                break;
            }
            if ((err = lf_rebuild_source_next(src, p, (size_t)batch, &added, errstr,
                                        sizeof(errstr))) ||
                !added)
                break;
            if ((err = flush_retry(app, p, errstr, sizeof(errstr))))
                break;
            done += added;
            lf_progress_update(pr, done);
        }
        if (!err)
            err = lf_rebuild_source_copy_rest(src, app->conn, into, copied, errstr,
                                        sizeof(errstr));
    } else {
        if (!(reader = lf_topic_reader_new(app->rk, app->topic, parts, count, errstr,
                                     sizeof(errstr)))) {
            rc = fail_with(LF_ERR_KAFKA, "cannot read the topic", errstr);
            goto out;
        }
        pr = lf_progress_new("rebuild", "messages", lf_topic_reader_total(reader),
                             app->progress);
        err = LF_OK;
        while (!err && !lf_topic_reader_done(reader)) {
            rd_kafka_message_t *rkm;
            if (stop) {
                err = LF_ERR_TEMPORARY;
                snprintf(errstr, sizeof(errstr), "interrupted");
                break;
            }
            bool idle = true;
            if ((rkm = lf_topic_reader_next(reader, 100))) {
                err = lf_projector_add_message(p, rkm);
                rd_kafka_message_destroy(rkm);
                if (err) {
                    snprintf(errstr, sizeof(errstr), "out of memory");
                    break;
                }
                done++;
                idle = false;
            }
            /* Full, or nothing more right now: write. */
            if (lf_projector_full(p, (size_t)batch) ||
                (lf_projector_pending(p) && (idle || lf_topic_reader_done(reader)))) {
                err = flush_retry(app, p, errstr, sizeof(errstr));
                lf_progress_update(pr, done);
            }
        }
        if (!err && lf_projector_pending(p))
            err = flush_retry(app, p, errstr, sizeof(errstr));
    }
    lf_progress_update(pr, done);
    lf_progress_finish(pr);
    if (err) {
        rc = fail_with(err,
                       "rebuild stopped; the schema is marked "
                       "incomplete (run again with --replace)",
                       errstr);
        goto out;
    }
    {
        const lf_projector_stats_t *s = lf_projector_stats(p);
        char rows[256];
        if ((err = lf_rebuild_counts(app->conn, into, rows, sizeof(rows), errstr,
                                    sizeof(errstr)))) {
            rc = fail_with(err, "cannot count the rows", errstr);
            goto out;
        }
        snprintf(summary, sizeof(summary), "%s=%" PRIu64 " %s",
                 from_db ? "events_read" : "messages_read", done, rows);
        if ((err = lf_rebuild_complete(app->conn, into, how, summary,
                                           errstr, sizeof(errstr)))) {
            rc = fail_with(err, "cannot mark the rebuild complete", errstr);
            goto out;
        }
        LF_LOG(LF_LOG_NOTICE,
               "msg=summary command=rebuild into=%s source=%s %s "
               "batches=%" PRIu64 " duplicates=%" PRIu64
               " leads_recomputed=%" PRIu64 " copied_dead_letters=%" PRIu64
               " copied_anomalies=%" PRIu64 " copied_offsets=%" PRIu64
               " elapsed_s=%.1f",
               into, how, summary, s->batches, s->duplicates, s->recomputed,
               copied[0], copied[1], copied[2],
               (double)(lf_now_mono_ms() - started) / 1000.0);
        LF_LOG(LF_LOG_NOTICE,
               "msg=\"next: leadflow-replay diff --against %s; then, with "
               "the projectors stopped, leadflow-replay promote %s\"",
               into, into);
    }
    rc = LF_EX_OK;
out:
    lf_progress_destroy(pr);
    lf_topic_reader_destroy(reader);
    lf_rebuild_source_close(src);
    lf_projector_destroy(p);
    free(parts);
    return rc;
}

/* ---- diff ------------------------------------------------------------- */

static int cmd_diff(app_t *app, int argc, char **argv)
{
    static const struct option opts[] = {
        COMMON_LONG,
        {"against", required_argument, NULL, 'A'},
        {"base", required_argument, NULL, 'S'},
        {"limit", required_argument, NULL, 'N'},
        {NULL, 0, NULL, 0}};
    const char *against = NULL, *base = LF_SCHEMA_LIVE;
    int limit = 10, opt, rc;
    char errstr[1024];
    lf_diff_t d;
    lf_err_t err;

    while ((opt = getopt_long(argc, argv, COMMON_OPTS, opts, NULL)) != -1) {
        char *end;
        if ((rc = common_opt(app, opt, optarg)) >= 0) {
            if (rc >= 1000)
                return rc - 1000;
            continue;
        }
        switch (opt) {
        case 'A':
            against = optarg;
            break;
        case 'S':
            base = optarg;
            break;
        case 'N':
            limit = (int)strtol(optarg, &end, 10);
            if (*end || limit < 1 || limit > 10000)
                return usage_error(app, "--limit %s: expected 1..10000",
                                   optarg);
            break;
        }
    }
    if (optind < argc && !against)
        against = argv[optind++];
    if (optind < argc)
        return usage_error(app, "unexpected argument \"%s\"", argv[optind]);
    if (!against)
        return usage_error(app, "--against SCHEMA is required");
    if ((rc = finish_conf(app)))
        return rc - 1000;
    if ((rc = connect_db(app)))
        return rc;
    if ((err = lf_diff_compare(app->conn, base, against, limit, &d, errstr,
                              sizeof(errstr))))
        return fail_with(err, "cannot compare", errstr);
    printf("%-14s %12s %12s  %-16s %-16s %s\n", "table", base, against,
           "checksum", "checksum", "result");
    int differing = 0;
    for (int t = 0; t < LF_DIFF_TABLES; t++) {
        const lf_diff_table_t *dt = &d.tables[t];
        differing += dt->differs;
        printf("%-14s %12lld %12lld  %-16s %-16s %s\n", dt->table, dt->rows_a,
               dt->rows_b, dt->sum_a, dt->sum_b,
               dt->differs ? "DIFFERS" : "same");
    }
    if (d.row_count) {
        const char *prev = NULL;
        printf("\nfirst differing leads (%zu):\n", d.leads);
        for (size_t i = 0; i < d.row_count; i++) {
            const lf_diff_row_t *r = &d.rows[i];
            if (!r->lead) {
                if (!prev || *prev) {
                    printf("differing dead letters:\n");
                    prev = "";
                }
                printf("  %s\n", r->text);
                continue;
            }
            if (!prev || strcmp(prev, r->lead))
                printf("lead %s\n", r->lead);
            prev = r->lead;
            printf("  %s\n", r->text);
        }
    }
    if (fflush(stdout) == EOF) {
        lf_diff_free(&d);
        return LF_EX_IOERR;
    }
    LF_LOG(LF_LOG_NOTICE,
           "msg=summary command=diff base=%s against=%s tables=%d "
           "differing_tables=%d leads_shown=%zu result=%s",
           base, against, LF_DIFF_TABLES, differing, d.leads,
           d.differs ? "differ" : "equal");
    rc = d.differs ? 1 : LF_EX_OK;
    lf_diff_free(&d);
    return rc;
}

/* ---- promote ------------------------------------------------------------ */

static int cmd_promote(app_t *app, int argc, char **argv)
{
    static const struct option opts[] = {
        COMMON_LONG,
        {"no-group-check", no_argument, NULL, 'G'},
        {"lock-timeout", required_argument, NULL, 'L'},
        {NULL, 0, NULL, 0}};
    const char *from;
    int opt, rc;
    char errstr[2048];
    lf_promote_t rep;
    lf_err_t err;

    while ((opt = getopt_long(argc, argv, COMMON_OPTS, opts, NULL)) != -1) {
        char *end;
        if ((rc = common_opt(app, opt, optarg)) >= 0) {
            if (rc >= 1000)
                return rc - 1000;
            continue;
        }
        switch (opt) {
        case 'G':
            app->no_group_check = true;
            break;
        case 'L':
            app->lock_timeout_ms = (int)strtol(optarg, &end, 10) * 1000;
            if (*end || app->lock_timeout_ms < 1000 ||
                app->lock_timeout_ms > 3600000)
                return usage_error(app,
                                   "--lock-timeout %s: expected 1..3600 "
                                   "seconds",
                                   optarg);
            break;
        }
    }
    if (optind + 1 != argc)
        return usage_error(app, optind < argc ? "one SCHEMA only"
                                              : "SCHEMA is required");
    from = argv[optind];
    if (lf_catalog_check_name(NULL, from, errstr, sizeof(errstr)))
        return usage_error(app, "%s", errstr);
    if ((rc = finish_conf(app)))
        return rc - 1000;
    if ((rc = connect_db(app)))
        return rc;
    if (app->no_group_check)
        LF_LOG(LF_LOG_WARNING,
               "msg=\"not checking that the group has no members: every "
               "leadflow-project of the group must be stopped\" group=%s",
               app->group);
    else if ((rc = connect_kafka(app)))
        return rc;
    /* Fail fast without locks (readers wait while promote holds them);
     * checked again under the locks. */
    if ((err = group_check(app, errstr, sizeof(errstr))))
        return fail_with(err, "promote not done, nothing changed", errstr);
    err = lf_promote_swap(app->conn, from, app->lock_timeout_ms, group_check,
                            app, &rep, errstr, sizeof(errstr));
    if (err) {
        lf_promote_free(&rep);
        return fail_with(err, "promote not done, nothing changed", errstr);
    }
    printf("promoted: %s is now funnel; the previous funnel is %s\n", from,
           rep.old_name);
    printf("tables=%d functions_recreated=%d views_recreated=%d "
           "owners_changed=%d privileges_granted=%d\n",
           rep.tables, rep.functions, rep.views, rep.owners, rep.grants);
    if (rep.offsets.len)
        printf("stored offsets that differ from the old funnel's (the "
               "projector resumes from new):\n%s",
               rep.offsets.data);
    else
        printf("stored offsets: the same as the old funnel's\n");
    fflush(stdout);
    LF_LOG(LF_LOG_NOTICE,
           "msg=summary command=promote schema=%s old=%s tables=%d views=%d "
           "grants=%d",
           from, rep.old_name, rep.tables, rep.views, rep.grants);
    LF_LOG(LF_LOG_NOTICE,
           "msg=\"now start the projectors: they resume from the new "
           "funnel.offsets\" undo=\"leadflow-replay promote %s\"",
           rep.old_name);
    lf_promote_free(&rep);
    return LF_EX_OK;
}

/* ---- dead letters ------------------------------------------------------- */

/* Parse "N" or "N,N,..." into ids. */
static bool parse_ids(const char *s, int64_t **ids, size_t *n, size_t *cap)
{
    while (*s) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end == s || v < 1 || errno || (*end && *end != ','))
            return false;
        if (*n == *cap) {
            size_t c = *cap ? *cap * 2 : 16;
            int64_t *m = realloc(*ids, c * sizeof(*m));
            if (!m)
                return false;
            *ids = m;
            *cap = c;
        }
        (*ids)[(*n)++] = v;
        s = *end ? end + 1 : end;
    }
    return true;
}

static int cmd_dead_letters(app_t *app, int argc, char **argv)
{
    static const struct option opts[] = {
        COMMON_LONG,
        {"since", required_argument, NULL, 'S'},
        {"all", no_argument, NULL, 'A'},
        {"id", required_argument, NULL, 'I'},
        {"dry-run", no_argument, NULL, 'n'},
        {"note", required_argument, NULL, 'N'},
        {NULL, 0, NULL, 0}};
    const char *sub, *note = NULL, *since_arg = NULL;
    bool all = false, dry_run = false, list;
    int64_t since = INT64_MIN, *ids = NULL;
    size_t nids = 0, cap = 0;
    char errstr[1024];
    int opt, rc;
    lf_err_t err;

    while ((opt = getopt_long(argc, argv, COMMON_OPTS, opts, NULL)) != -1) {
        if ((rc = common_opt(app, opt, optarg)) >= 0) {
            if (rc >= 1000) {
                free(ids);
                return rc - 1000;
            }
            continue;
        }
        switch (opt) {
        case 'S':
            since_arg = optarg;
            if (lf_time_parse(optarg, 1, &since, errstr, sizeof(errstr))) {
                free(ids);
                return usage_error(app, "--since %s: %s", optarg, errstr);
            }
            break;
        case 'A':
            all = true;
            break;
        case 'I':
            if (!parse_ids(optarg, &ids, &nids, &cap)) {
                free(ids);
                return usage_error(app,
                                   "--id %s: expected ids (N or "
                                   "N,N,...)",
                                   optarg);
            }
            break;
        case 'n':
            dry_run = true;
            break;
        case 'N':
            note = optarg;
            break;
        }
    }
    /* The subcommand: the first argument that is not an option (getopt
     * moved it to the end). */
    sub = optind < argc ? argv[optind++] : NULL;
    if (!sub || (strcmp(sub, "list") && strcmp(sub, "retry"))) {
        free(ids);
        return usage_error(app,
                           sub ? "unknown subcommand \"%s\": expected "
                                 "list or retry"
                               : "expected list or retry%s",
                           sub ? sub : "");
    }
    list = !strcmp(sub, "list");
    if (optind < argc) {
        free(ids);
        return usage_error(app, "unexpected argument \"%s\"", argv[optind]);
    }
    if (list && (dry_run || note || nids)) {
        free(ids);
        return usage_error(app, "--id, --dry-run and --note are for retry");
    }
    if (!list && since_arg) {
        free(ids);
        return usage_error(app, "--since is for list");
    }
    if (!list && !!nids == all) {
        free(ids);
        return usage_error(app, "retry: give --id N... or --all");
    }
    if ((rc = finish_conf(app))) {
        free(ids);
        return rc - 1000;
    }
    if ((rc = connect_db(app))) {
        free(ids);
        return rc;
    }
    if (list) {
        uint64_t shown = 0, open = 0;
        err = lf_deadletter_list(app->conn, since, all, stdout, &shown, &open,
                                 errstr, sizeof(errstr));
        if (err)
            return fail_with(err, "cannot list dead letters", errstr);
        if (fflush(stdout) == EOF)
            return LF_EX_IOERR;
        LF_LOG(LF_LOG_NOTICE,
               "msg=summary command=\"dead-letters list\" shown=%" PRIu64
               " open=%" PRIu64 " resolved=%" PRIu64,
               shown, open, shown - open);
        return LF_EX_OK;
    }
    lf_retry_counts_t st;
    lf_progress_t *pr =
        lf_progress_new("retry", "dead letters", 0, app->progress);
    err = lf_deadletter_retry(app->conn, ids, nids, dry_run, note, stdout, pr,
                              &st, errstr, sizeof(errstr));
    lf_progress_destroy(pr);
    free(ids);
    fflush(stdout);
    if (err)
        return fail_with(err,
                         "retry stopped (letters already marked keep "
                         "their marks; run it again)",
                         errstr);
    LF_LOG(LF_LOG_NOTICE,
           "msg=summary command=\"dead-letters retry\" dry_run=%s "
           "selected=%" PRIu64 " applied=%" PRIu64 " new_events=%" PRIu64
           " duplicates=%" PRIu64 " still_failing=%" PRIu64
           " already_resolved=%" PRIu64 " missing=%" PRIu64,
           dry_run ? "yes" : "no", st.selected, st.applied, st.events_new,
           st.duplicates, st.still_failing, st.already_resolved, st.missing);
    return st.missing ? LF_EX_DATAERR : LF_EX_OK;
}

/* ---- dump --------------------------------------------------------------- */

static int by_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmd_dump(app_t *app, int argc, char **argv)
{
    static const struct option opts[] = {
        COMMON_LONG,
        {"from", required_argument, NULL, 'F'},
        {"to", required_argument, NULL, 'T'},
        {"lead", required_argument, NULL, 'l'},
        {"partition", required_argument, NULL, 'p'},
        {NULL, 0, NULL, 0}};
    int64_t from = INT64_MIN, to = INT64_MAX;
    char **leads = calloc((size_t)argc + 1, sizeof(char *));
    int32_t *wanted = calloc((size_t)argc + 1, sizeof(int32_t));
    int nleads = 0, nwanted = 0, opt, rc = 0, count = 0, nsel = 0;
    char errstr[1024], q[1100];
    lf_topic_part_t *parts = NULL, *sel = NULL;
    lf_topic_reader_t *reader = NULL;
    lf_codec_t *codec = NULL;
    lf_progress_t *pr = NULL;
    lf_buf_t line = {0};
    uint64_t read = 0, written = 0, filtered = 0, undecodable = 0;
    int64_t started = lf_now_mono_ms();
    lf_err_t err;

    if (!leads || !wanted) {
        rc = LF_EX_SOFTWARE;
        goto out;
    }
    while ((opt = getopt_long(argc, argv, COMMON_OPTS, opts, NULL)) != -1) {
        char *end;
        long v;
        if ((rc = common_opt(app, opt, optarg)) >= 0) {
            if (rc >= 1000) {
                rc -= 1000;
                goto out;
            }
            continue;
        }
        switch (opt) {
        case 'F':
        case 'T':
            if (lf_time_parse(optarg, 1, opt == 'F' ? &from : &to, errstr,
                              sizeof(errstr))) {
                rc = usage_error(app, "--%s %s: %s", opt == 'F' ? "from" : "to",
                                 optarg, errstr);
                goto out;
            }
            break;
        case 'l':
            leads[nleads++] = optarg;
            break;
        case 'p':
            errno = 0;
            v = strtol(optarg, &end, 10);
            if (end == optarg || *end || v < 0 || v > INT32_MAX) {
                rc = usage_error(app,
                                 "--partition %s: expected a partition "
                                 "number",
                                 optarg);
                goto out;
            }
            wanted[nwanted++] = (int32_t)v;
            break;
        }
    }
    if (optind < argc) {
        rc = usage_error(app, "unexpected argument \"%s\"", argv[optind]);
        goto out;
    }
    if (from != INT64_MIN && to != INT64_MAX && from >= to) {
        rc = usage_error(app, "--from must be before --to");
        goto out;
    }
    qsort(leads, (size_t)nleads, sizeof(*leads), by_str);
    if ((rc = finish_conf(app))) {
        rc -= 1000;
        goto out;
    }
    if ((rc = connect_kafka(app)))
        goto out;
    if (!(codec = lf_codec_new(errstr, sizeof(errstr)))) {
        rc = fail_with(LF_ERR_NOMEM, "cannot start", errstr);
        goto out;
    }
    if ((err = lf_topic_partitions(app->rk, app->topic, KAFKA_TIMEOUT_MS,
                                    &parts, &count, errstr, sizeof(errstr)))) {
        rc = fail_with(err, "cannot read the topic", errstr);
        goto out;
    }
    if (!(sel = calloc((size_t)count + 1, sizeof(*sel)))) {
        rc = LF_EX_SOFTWARE;
        goto out;
    }
    for (int i = 0; i < count; i++) {
        bool want = !nwanted;
        for (int k = 0; k < nwanted; k++)
            want |= wanted[k] == parts[i].partition;
        if (want)
            sel[nsel++] = parts[i];
    }
    for (int k = 0; k < nwanted; k++) {
        bool found = false;
        for (int i = 0; i < count; i++)
            found |= wanted[k] == parts[i].partition;
        if (!found) {
            LF_LOG(LF_LOG_ERR,
                   "msg=\"no such partition\" topic=%s "
                   "partition=%d partitions=%d",
                   app->topic, (int)wanted[k], count);
            rc = LF_EX_DATAERR;
            goto out;
        }
    }
    if (!(reader = lf_topic_reader_new(app->rk, app->topic, sel, nsel, errstr,
                                 sizeof(errstr)))) {
        rc = fail_with(LF_ERR_KAFKA, "cannot read the topic", errstr);
        goto out;
    }
    pr = lf_progress_new("dump", "messages", lf_topic_reader_total(reader),
                         app->progress);
    while (!lf_topic_reader_done(reader) && !stop) {
        rd_kafka_message_t *rkm = lf_topic_reader_next(reader, 100);
        lf_event_t ev;
        char why[512];

        if (!rkm)
            continue;
        read++;
        lf_event_init(&ev);
        if (lf_codec_decode(codec, rkm->payload, rkm->len, &ev, why,
                            sizeof(why))) {
            /* A few by name; a flood of them is counted in the summary. */
            if (++undecodable <= 10)
                LF_LOG(LF_LOG_WARNING,
                       "msg=\"undecodable message skipped%s\" topic=%s "
                       "partition=%d offset=%" PRId64 " error=%s",
                       undecodable == 10 ? " (no more of these logged)" : "",
                       app->topic, (int)rkm->partition, rkm->offset,
                       lf_log_quote(why, q, sizeof(q)));
        } else if (ev.occurred_at < from || ev.occurred_at >= to ||
                   (nleads && !bsearch(&ev.lead_id, leads, (size_t)nleads,
                                       sizeof(*leads), by_str))) {
            filtered++;
        } else {
            /* The emit format, with "_kafka" before the closing brace. */
            lf_buf_reset(&line);
            if (lf_json_format_event(&ev, &line) || !line.len) {
                rc = LF_EX_SOFTWARE;
            } else {
                line.len--; /* the '}' */
                if (lf_buf_puts(&line, ",\"_kafka\":{\"topic\":") ||
                    lf_json_append_string(&line, app->topic,
                                          strlen(app->topic)) ||
                    lf_buf_printf(
                        &line, ",\"partition\":%d,\"offset\":%" PRId64 "}}\n",
                        (int)rkm->partition, rkm->offset))
                    rc = LF_EX_SOFTWARE;
                else if (fwrite(line.data, 1, line.len, stdout) != line.len)
                    rc = LF_EX_IOERR;
                written++;
            }
        }
        lf_event_clear(&ev);
        rd_kafka_message_destroy(rkm);
        lf_progress_update(pr, read);
        if (rc)
            break;
    }
    lf_progress_update(pr, read);
    lf_progress_finish(pr);
    if (fflush(stdout) == EOF && !rc)
        rc = LF_EX_IOERR;
    if (rc == LF_EX_IOERR)
        LF_LOG(LF_LOG_ERR, "msg=\"cannot write the dump\" error=%s",
               lf_log_quote(strerror(errno), q, sizeof(q)));
    if (!rc && stop)
        rc = LF_EX_TEMPFAIL;
    LF_LOG(LF_LOG_NOTICE,
           "msg=summary command=dump topic=%s partitions=%d read=%" PRIu64
           " written=%" PRIu64 " filtered_out=%" PRIu64 " undecodable=%" PRIu64
           " complete=%s elapsed_s=%.1f",
           app->topic, nsel, read, written, filtered, undecodable,
           reader && lf_topic_reader_done(reader) ? "yes" : "no",
           (double)(lf_now_mono_ms() - started) / 1000.0);
out:
    lf_progress_destroy(pr);
    lf_topic_reader_destroy(reader);
    lf_codec_destroy(codec);
    lf_buf_free(&line);
    free(sel);
    free(parts);
    free(leads);
    free(wanted);
    return rc;
}

/* ---- main --------------------------------------------------------------- */

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(app_t *, int, char **);
        const char **usage;
    } cmds[] = {
        {"rewind", cmd_rewind, &usage_rewind},
        {"rebuild", cmd_rebuild, &usage_rebuild},
        {"diff", cmd_diff, &usage_diff},
        {"promote", cmd_promote, &usage_promote},
        {"dead-letters", cmd_dead_letters, &usage_dead},
        {"dump", cmd_dump, &usage_dump},
    };
    app_t app = {.lock_timeout_ms = 30000, .progress = LF_PROGRESS_AUTO};
    int rc = -1;

    lf_log_init("replay");
    if (argc < 2) {
        fprintf(stderr, PROG ": a command is required\n\n");
        usage(stderr);
        return LF_EX_USAGE;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "help")) {
        usage(stdout);
        return LF_EX_OK;
    }
    if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
        lf_cli_version(PROG);
        return LF_EX_OK;
    }
    app.conf = lf_conf_new();
    if (!app.conf || lf_cli_init(&app.cli, argc)) {
        fprintf(stderr, PROG ": out of memory\n");
        lf_conf_destroy(app.conf);
        return LF_EX_SOFTWARE;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (!strcmp(argv[1], cmds[i].name)) {
            app.cmd = cmds[i].name;
            app.cmd_usage = *cmds[i].usage;
            /* The command's own argv: getopt starts after the name. */
            rc = cmds[i].run(&app, argc - 1, argv + 1);
            break;
        }
    if (rc < 0) {
        fprintf(stderr, PROG ": unknown command \"%s\"\n\n", argv[1]);
        usage(stderr);
        rc = LF_EX_USAGE;
    }
    if (app.rk) {
        rd_kafka_consumer_close(app.rk);
        rd_kafka_destroy(app.rk);
    }
    PQfinish(app.conn);
    lf_conf_destroy(app.conf);
    lf_cli_free(&app.cli);
    return rc;
}
