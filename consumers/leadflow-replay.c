/* leadflow-replay: on-call tools over the event stream and the funnel model:
 * rewind the projector's offsets, rebuild the model into another schema
 * (from Kafka or from funnel.events) with the projector's own code, diff it
 * against the live one, promote it atomically, retry dead letters, and
 * dump decoded events as JSON lines that leadflow-emit accepts.
 *
 * Each command is a parse_X() (lf_cli_parse() with the command's own
 * lf_cli_spec_t) and a run_X() that returns an lf_err_t, logging what
 * failed; main() picks the command and the exit code. */
#include "lf_catalog.h"
#include "lf_cli.h"
#include "lf_codec.h"
#include "lf_conf.h"
#include "lf_deadletter.h"
#include "lf_definition.h"
#include "lf_defstore.h"
#include "lf_diff.h"
#include "lf_event.h"
#include "lf_json.h"
#include "lf_log.h"
#include "lf_pg.h"
#include "lf_producer.h"
#include "lf_progress.h"
#include "lf_projector.h"
#include "lf_promote.h"
#include "lf_pseudonym.h"
#include "lf_rebuild.h"
#include "lf_rewind.h"
#include "lf_time.h"
#include "lf_topic.h"
#include "lf_uuid.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROG             "leadflow-replay"
#define KAFKA_TIMEOUT_MS 10000
#define OID_INT4         23 /* pg_type.h: int4 */

/* ---- usage ------------------------------------------------------------ */

/* The one option every command takes besides lf_cli's shared ones. */
#define PROGRESS_HELP                                                          \
    "      --progress MODE    auto (a bar on a terminal, lines otherwise), "   \
    "bar,\n"                                                                   \
    "                         lines or none (default auto)\n"

#define SECRETS_NOTE                                                           \
    "Secrets never go on the command line: put the PostgreSQL password in\n"   \
    "~/.pgpass or PGPASSFILE, or in the -c file (chmod 600) with Kafka's\n"    \
    "(sasl.password); -X dump masks them.\n"

#define EXIT_NOTE                                                              \
    "Exit codes: 0 done (diff: equal), 1 diff: the schemas differ, 64 "        \
    "usage,\n"                                                                 \
    "  65 bad data (no such schema, topic, partition, dead letter or lead;\n"  \
    "  a group without stored offsets for the topic (rewind); no funnel,\n"    \
    "  or an older one, in the database; a promote precondition; a stored\n"   \
    "  event that no longer parses), 69 Kafka or PostgreSQL unavailable\n"     \
    "  (erase: not delivered; or the group cannot be checked), 70 internal\n"  \
    "  error, 74 output not written, 75 try again later (the group has\n"      \
    "  members, a lock timed out, the connection broke, the schema\n"          \
    "  registry did not answer, interrupted), 77 the database role lacks a\n"  \
    "  privilege (rebuild, promote: run as the owner of schema funnel),\n"     \
    "  78 bad configuration.\n"

#define GROUP_CHECK_HELP                                                       \
    "      --no-group-check   do not ask Kafka whether the group has members " \
    "(for\n"                                                                   \
    "                         brokers without DescribeGroups, like the dev "   \
    "broker):\n"                                                               \
    "                         you make sure every projector of the group is "  \
    "stopped\n"                                                                \
    "      --lock-timeout S   wait at most S seconds for locks (default 30,\n" \
    "                         1..3600; a signal ends the wait: exit 75)\n"

#define REWIND_SYNOPSIS                                                        \
    "leadflow-replay rewind --to TIME | --to-offset P:O[,P:O...] "             \
    "[--dry-run]\n"                                                            \
    "                       [--no-group-check] [--lock-timeout S]\n"           \
    "  Move the projector group's stored offsets (funnel.offsets) back so "    \
    "the\n"                                                                    \
    "  projector re-reads from there; idempotence keeps the tables as they "   \
    "are\n"                                                                    \
    "  unless the code changed."
#define REWIND_HELP                                                            \
    "      --to TIME          the first message at or after TIME (RFC 3339 "   \
    "or\n"                                                                     \
    "                         YYYY-MM-DD) per partition, from Kafka (offsets " \
    "for\n"                                                                    \
    "                         times; if the broker cannot look times up, a "   \
    "binary\n"                                                                 \
    "                         search over message timestamps)\n"               \
    "      --to-offset P:O,...  explicit offsets (O a number or "              \
    "\"beginning\");\n"                                                        \
    "                         other partitions are left alone\n"               \
    "      --dry-run          print per partition the current offset, the "    \
    "new one\n"                                                                \
    "                         and the messages to re-read; change "            \
    "nothing\n" GROUP_CHECK_HELP
#define REWIND_NOTE                                                            \
    "A rewind only moves offsets back, never forward (that would skip "        \
    "messages),\n"                                                             \
    "and never creates one (without a stored offset the projector starts at "  \
    "the\n"                                                                    \
    "beginning anyway). leadflow-project reads funnel.offsets when it is\n"    \
    "assigned partitions; a running one would resume from the rewound ones "   \
    "at its\n"                                                                 \
    "next batch or within 2 s when idle, with batches in hand dropped:\n"      \
    "so rewind refuses (exit 75) while the group has members, locks\n"         \
    "funnel.offsets while it writes (a projector starting meanwhile waits "    \
    "and\n"                                                                    \
    "reads the new offsets), and the projector must be started after it.\n"

#define REBUILD_SYNOPSIS                                                       \
    "leadflow-replay rebuild --into SCHEMA [--from-kafka | --from-db] "        \
    "[--replace]\n"                                                            \
    "                        [--lock-timeout S] [--batch N]\n"                 \
    "                        [--order lead|time|none]\n"                       \
    "                        [--definition FILE]\n"                            \
    "  Build the whole funnel model from scratch into SCHEMA (same tables as " \
    "funnel)\n"                                                                \
    "  with the projector's own code (and its schema registry, if any)."
#define REBUILD_HELP                                                           \
    "      --into SCHEMA      the schema to build (not funnel)\n"              \
    "      --from-kafka       from the topic, every partition from its "       \
    "beginning\n"                                                              \
    "                         to the end it had at the start (the default); "  \
    "dead\n"                                                                   \
    "                         letters come from the topic too; the offsets "   \
    "reached\n"                                                                \
    "                         are stored for the group (-g) in "               \
    "SCHEMA.offsets\n"                                                         \
    "      --from-db          from funnel.events, in one snapshot that also "  \
    "gives\n"                                                                  \
    "                         the dead letters, the conflict and key "         \
    "anomalies\n"                                                              \
    "                         and the offsets of exactly those events\n"       \
    "      --replace          drop SCHEMA first if an earlier rebuild made "   \
    "it\n"                                                                     \
    "      --lock-timeout S   wait at most S seconds for the sessions "        \
    "reading "                                                                 \
    "the\n"                                                                    \
    "                         SCHEMA --replace drops (default 30)\n"           \
    "      --batch N          events per transaction (default 5000;\n"         \
    "                         1..1000000)\n"                                   \
    "      --order ORDER      --from-db reading order: lead (default; each "   \
    "lead\n"                                                                   \
    "                         in one batch), time, none (as stored). The "     \
    "result\n"                                                                 \
    "                         does not depend on it.\n"                        \
    "      --definition FILE  build under the funnel definition in FILE (a "   \
    "what-if:\n"                                                               \
    "                         docs/definition.md) and record it in "           \
    "SCHEMA.definition;\n"                                                     \
    "                         default: the one recorded in funnel.definition " \
    "(else\n"                                                                  \
    "                         the embedded default)\n"
#define REBUILD_NOTE                                                           \
    "Then: diff --against SCHEMA [--summary], and promote SCHEMA.\n"

#define DIFF_SYNOPSIS                                                          \
    "leadflow-replay diff --against SCHEMA [--base SCHEMA] [--limit N] "       \
    "[--summary]\n"                                                            \
    "  Compare the model in SCHEMA with funnel (or --base): rows and "         \
    "checksum per\n"                                                           \
    "  table, then the first N differing leads with their differing rows "     \
    "and\n"                                                                    \
    "  columns."
#define DIFF_HELP                                                              \
    "      --against SCHEMA   the schema to compare (or the one argument)\n"   \
    "      --base SCHEMA      the schema to compare it with (default "         \
    "funnel)\n"                                                                \
    "      --limit N          differing leads shown (default 10; 1..10000)\n"  \
    "      --summary          then the numbers both teams look at, side by "   \
    "side with\n"                                                              \
    "                         the change: each schema's definition, leads "    \
    "per current\n"                                                            \
    "                         stage, step-by-step conversion, median hours "   \
    "in stage,\n"                                                              \
    "                         anomalies (as the views compute them)\n"
#define DIFF_NOTE                                                              \
    "Wall-clock columns (received_at, updated_at, detected_at), the Kafka\n"   \
    "coordinates of events and resolved dead letters are not compared.\n"      \
    "Exit 0: equal; 1: they differ (like diff(1)).\n"

#define PROMOTE_SYNOPSIS                                                       \
    "leadflow-replay promote SCHEMA [--no-group-check] [--lock-timeout S]\n"   \
    "  Swap the rebuilt SCHEMA in as funnel in one transaction: funnel "       \
    "becomes\n"                                                                \
    "  funnel_old_YYYYMMDDHHMMSS (UTC; _2, _3... when taken); funnel's "       \
    "functions\n"                                                              \
    "  and views are re-created"                                               \
    " in the new funnel, owners and privileges carried\n"                      \
    "  over. Readers see the old model or the new, never a mix."
#define PROMOTE_HELP GROUP_CHECK_HELP
#define PROMOTE_NOTE                                                           \
    "The new funnel keeps its own funnel.offsets, those of the events it "     \
    "was\n"                                                                    \
    "built from: taking the old ones would skip what the projector wrote "     \
    "after\n"                                                                  \
    "the rebuild read its events. So the projector must be stopped during "    \
    "the\n"                                                                    \
    "promote (as for rewind: checked in Kafka unless --no-group-check) and\n"  \
    "started after it; it re-reads what came after the rebuild. Refuses "      \
    "(exit 65)\n"                                                              \
    "unless SCHEMA is a complete rebuild (or an older funnel_old_*) with the " \
    "same\n"                                                                   \
    "tables, columns and migrations, and funnel holds nothing it cannot "      \
    "carry\n"                                                                  \
    "over. Undo: promote the funnel_old_* schema.\n"                           \
    "The locks are taken in short attempts (half of deadlock_timeout each) "   \
    "that\n"                                                                   \
    "give way to readers, so no reader ever gets a deadlock error; under "     \
    "constant\n"                                                               \
    "heavy reading it may need a longer --lock-timeout (default 30 s) or a "   \
    "quieter\n"                                                                \
    "moment (exit 75).\n"

#define DEAD_SYNOPSIS                                                          \
    "leadflow-replay dead-letters list [--since TIME] [--all]\n"               \
    "leadflow-replay dead-letters retry --id N[,N...]... | --all [--dry-run] " \
    "[--note TEXT]\n"                                                          \
    "  list: the open dead letters (--all: resolved ones too), received "      \
    "since TIME,\n"                                                            \
    "        tab-separated under a header\n"                                   \
    "  retry: decode again with the current code (and the schema registry, "   \
    "if any);\n"                                                               \
    "        apply those that pass (with their original topic, partition and " \
    "offset)\n"                                                                \
    "        and mark them resolved (when, and why: the event and --note); "   \
    "those\n"                                                                  \
    "        still failing keep their row with the new error. Applying twice " \
    "changes\n"                                                                \
    "        nothing."
#define DEAD_HELP                                                              \
    "      --since TIME       list: only letters received since TIME\n"        \
    "      --all              list: resolved letters too; retry: every open "  \
    "one\n"                                                                    \
    "      --id N[,N...]      retry: these letters (repeatable)\n"             \
    "      --dry-run          retry: say what would be applied; write "        \
    "nothing\n"                                                                \
    "      --note TEXT        retry: added to the resolution of applied "      \
    "letters\n"

#define DUMP_SYNOPSIS                                                          \
    "leadflow-replay dump [--from TIME] [--to TIME] [--lead ID]... "           \
    "[--partition P]...\n"                                                     \
    "  The decoded events of the topic, from the beginning to its end at the " \
    "start,\n"                                                                 \
    "  as JSON lines in the emit format with \"_kafka\":{topic, partition, "   \
    "offset}\n"                                                                \
    "  added (leadflow-emit ignores it: a dump is valid emit input). Fields\n" \
    "  a newer writer sent that this contract does not know are shown as\n"    \
    "  \"_extra\" (envelope) and \"_payload_extra\"; emit refuses such a "     \
    "line\n"                                                                   \
    "  rather than send the event without them."
#define DUMP_HELP                                                              \
    "      --from TIME        events that occurred at or after TIME\n"         \
    "      --to TIME          events that occurred before TIME\n"              \
    "      --lead ID          events of lead ID (repeatable)\n"                \
    "      --partition P      messages of partition P (repeatable)\n"
#define DUMP_NOTE "Undecodable messages are counted and logged, not printed.\n"

#define ERASE_SYNOPSIS                                                         \
    "leadflow-replay erase --lead ID --request REF [--actor NAME] [--at "      \
    "TIME]\n"                                                                  \
    "                      [--dry-run]\n"                                      \
    "  Publish the erased event for lead ID (a privacy request received by "   \
    "ticket):\n"                                                               \
    "  the projector then erases the person (every lead merged with it) "      \
    "from the\n"                                                               \
    "  database (docs/security.md)."
#define ERASE_HELP                                                             \
    "      --lead ID          the lead to erase\n"                             \
    "      --request REF      the privacy request's reference (the ticket)\n"  \
    "      --actor NAME       who erases (default $USER)\n"                    \
    "      --at TIME          occurred_at (RFC 3339; default now)\n"           \
    "      --dry-run          print the event as a JSON line; send nothing\n"
#define ERASE_NOTE                                                             \
    "The event goes through leadflow-emit's producer (contract v2, key = "     \
    "the lead\n"                                                               \
    "id, acks=all). Its event_id is derived from the lead and the request "    \
    "alone,\n"                                                                 \
    "so running the command again publishes the same event, which the "        \
    "projector\n"                                                              \
    "keeps once (give --at the occurred_at printed by the first run to make "  \
    "the\n"                                                                    \
    "second an exact duplicate rather than a 'conflict' anomaly). Prints "     \
    "event_id,\n"                                                              \
    "occurred_at, topic, partition and offset. Waits message.timeout.ms "      \
    "(default\n"                                                               \
    "30000 here) for the broker, then exits 69. The topic keeps the "          \
    "original\n"                                                               \
    "messages until its retention removes them (docs/security.md).\n"

#define EXPLAIN_SYNOPSIS                                                       \
    "leadflow-replay explain --lead ID [--json]\n"                             \
    "  Why is this lead in this stage? Who it is (merged into which lead, "    \
    "erased),\n"                                                               \
    "  every event of the person (the surviving lead and every lead merged "   \
    "into it)\n"                                                               \
    "  in the order the projector applies them, each marked (voided, "         \
    "whether a\n"                                                              \
    "  merge or void counts, anomalies), then the stage history they give."
#define EXPLAIN_HELP                                                           \
    "      --lead ID          the lead (or an erased lead's pseudonym)\n"      \
    "      --json             the same as one JSON object\n"
#define EXPLAIN_NOTE                                                           \
    "Reads funnel only, in one snapshot. An erased lead's id is in no table: " \
    "with\n"                                                                   \
    "the pseudonym key (-X pseudonym.key.file=PATH, as the projector's) ID "   \
    "is\n"                                                                     \
    "recognised and its pseudonym explained. A lead without events exits "     \
    "65.\n"

#define SHARED_OPTS                                                            \
    (LF_CLI_BROKERS | LF_CLI_TOPIC | LF_CLI_GROUP | LF_CLI_DB | LF_CLI_CONF |  \
     LF_CLI_VERBOSE)

/* A subcommand's command line (lf_cli_spec_t NAME_spec): its word after
 * PROG, its NAME_SYNOPSIS and NAME_HELP texts, its notes, its NAME_opts
 * and own_NAME, how many arguments it takes (-1: any); every one shares
 * SHARED_OPTS and --progress. */
#define SUBCOMMAND(name, word, NAME, notes_, args)                             \
    static const lf_cli_spec_t name##_spec = {                                 \
        .prog = PROG " " word,                                                 \
        .synopsis = NAME##_SYNOPSIS,                                           \
        .shared = SHARED_OPTS,                                                 \
        .own_help = NAME##_HELP PROGRESS_HELP,                                 \
        .notes = notes_,                                                       \
        .longopts = name##_opts,                                               \
        .own = own_##name,                                                     \
        .max_args = args,                                                      \
    }

/* getopt values of the long-only options (short letters are free for
 * lf_cli's shared ones). */
enum {
    OPT_PROGRESS = 256,
    OPT_NO_GROUP_CHECK,
    OPT_LOCK_TIMEOUT,
    OPT_TO,
    OPT_TO_OFFSET,
    OPT_DRY_RUN,
    OPT_INTO,
    OPT_FROM_KAFKA,
    OPT_FROM_DB,
    OPT_REPLACE,
    OPT_BATCH,
    OPT_ORDER,
    OPT_AGAINST,
    OPT_BASE,
    OPT_LIMIT,
    OPT_SINCE,
    OPT_ALL,
    OPT_ID,
    OPT_NOTE,
    OPT_FROM,
    OPT_LEAD,
    OPT_PARTITION,
    OPT_DEFINITION,
    OPT_SUMMARY,
    OPT_REQUEST,
    OPT_ACTOR,
    OPT_AT,
    OPT_JSON,
};

#define LONG_PROGRESS                                                          \
    {                                                                          \
        "progress", required_argument, NULL, OPT_PROGRESS                      \
    }
#define LONG_GROUP_CHECK                                                       \
    {"no-group-check", no_argument, NULL, OPT_NO_GROUP_CHECK},                 \
    {                                                                          \
        "lock-timeout", required_argument, NULL, OPT_LOCK_TIMEOUT              \
    }

/* ---- the commands' settings -------------------------------------------- */

typedef struct rewind_cfg_s {
    const char *to, *to_offset;
    int64_t to_ms;
    bool dry_run;
} rewind_cfg_t;

typedef struct rebuild_cfg_s {
    const char *into;
    const char *definition; /* --definition FILE, or NULL */
    bool from_db, from_kafka, replace, order_given;
    int batch;
    lf_rebuild_order_t order;
} rebuild_cfg_t;

typedef struct diff_cfg_s {
    const char *against, *base;
    int limit;
    bool summary; /* --summary */
} diff_cfg_t;

typedef struct dead_cfg_s {
    bool list, all, dry_run;
    const char *note, *since_arg;
    int64_t since;
    int64_t *ids;
    size_t nids, cap;
} dead_cfg_t;

typedef struct dump_cfg_s {
    int64_t from, to;
    char **leads; /* sorted before the run, for bsearch */
    int nleads;
    int32_t *wanted; /* --partition */
    int nwanted;
} dump_cfg_t;

typedef struct erase_cfg_s {
    const char *lead, *request, *actor, *at_arg;
    int64_t at;
    bool dry_run;
    lf_event_t ev; /* built by parse_erase() */
} erase_cfg_t;

typedef struct explain_cfg_s {
    const char *lead;
    bool json;
} explain_cfg_t;

/* A command's failure that is the settings' fault rather than the data's:
 * main() exits 64 or 78 instead of the lf_err_t's code. */
typedef enum blame_e { BLAME_DATA, BLAME_USAGE, BLAME_CONFIG } blame_t;

/* Everything a command works with. */
typedef struct app_s {
    lf_cli_t cli; /* the command's parsed command line */
    lf_conf_t *conf;
    const char *topic, *group, *conninfo; /* from conf */
    PGconn *conn;
    rd_kafka_t *rk;
    lf_progress_mode_t progress;
    bool no_group_check;
    int lock_timeout_ms;
    blame_t blame;
    bool differ;   /* diff: the schemas differ (exit 1) */
    bool producer; /* erase: the settings are a producer's */
    union {
        rewind_cfg_t rewind;
        rebuild_cfg_t rebuild;
        diff_cfg_t diff;
        const char *promote; /* the schema */
        dead_cfg_t dead;
        dump_cfg_t dump;
        erase_cfg_t erase;
        explain_cfg_t explain;
    } u;
} app_t;

/* The options several commands share: --progress, --no-group-check and
 * --lock-timeout. */
static lf_err_t own_common(app_t *app, int opt, const char *arg, char *errstr,
                           size_t errstr_size)
{
    char *end;
    long v;
    int m;

    switch (opt) {
    case OPT_PROGRESS:
        if ((m = lf_progress_mode_parse(arg)) < 0)
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "--progress %s: expected auto, bar, lines or "
                             "none",
                             arg);
        app->progress = (lf_progress_mode_t)m;
        return LF_OK;
    case OPT_NO_GROUP_CHECK:
        app->no_group_check = true;
        return LF_OK;
    case OPT_LOCK_TIMEOUT:
        v = strtol(arg, &end, 10);
        if (end == arg || *end || v < 1 || v > 3600)
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "--lock-timeout %s: expected 1..3600 seconds",
                             arg);
        app->lock_timeout_ms = (int)v * 1000;
        return LF_OK;
    default:
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size, "bad option");
    }
}

/* A number in [lo, hi] for option @p name, or LF_ERR_INVALID. */
static lf_err_t parse_int(const char *name, const char *arg, long lo, long hi,
                          int *out, char *errstr, size_t errstr_size)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(arg, &end, 10);
    if (end == arg || *end || errno || v < lo || v > hi)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "%s %s: expected %ld..%ld", name, arg, lo, hi);
    *out = (int)v;
    return LF_OK;
}

/* ---- what every command does ------------------------------------------- */

/* Log what failed and why; @returns @p err. */
static lf_err_t fail(lf_err_t err, const char *what, const char *errstr)
{
    char q[2200];
    LF_LOG(LF_LOG_ERR, "msg=\"%s\" error=%s", what,
           lf_log_quote(errstr, q, sizeof(q)));
    return err;
}

/* Replay's defaults for what the settings leave unset. erase produces (as
 * leadflow-emit does, with a wait for the broker an on-call engineer
 * sits through); the others consume and query. */
static lf_err_t defaults(app_t *app)
{
    lf_conf_t *conf = app->conf;

    if (lf_conf_default(conf, "bootstrap.servers", "localhost:9092") ||
        lf_conf_default(conf, LF_CONF_TOPIC, LF_CONF_DEFAULT_TOPIC))
        return LF_ERR_NOMEM;
    if (app->producer)
        return lf_conf_default(conf, "client.id", PROG) ||
                       lf_conf_default(conf, "message.timeout.ms", "30000") ||
                       lf_producer_conf_defaults(conf)
                   ? LF_ERR_NOMEM
                   : LF_OK;
    /* The topic reader's prefetch, bounded as the projector's
     * (BENCHMARKS.md, "rebuild --from-kafka's memory"). */
    if (lf_conf_default(conf, "group.id", "leadflow-projector") ||
        lf_conf_default(conf, LF_CONF_DB, "") ||
        lf_conf_default(conf, "queued.min.messages", "5000") ||
        lf_conf_default(conf, "queued.max.messages.kbytes", "16384"))
        return LF_ERR_NOMEM;
    return LF_OK;
}

/* The settings: environment, -c FILE, -X and the shorthands in
 * command-line order, then replay's defaults. Errors are printed. */
static lf_err_t settings(app_t *app)
{
    char errstr[1024];
    lf_err_t err;

    if (!(app->conf = lf_conf_new())) {
        fprintf(stderr, PROG ": out of memory\n");
        return LF_ERR_NOMEM;
    }
    if ((err = lf_cli_conf(&app->cli, app->conf, errstr, sizeof(errstr)))) {
        fprintf(stderr, PROG ": %s%s\n", err == LF_ERR_INVALID ? "-X " : "",
                errstr);
        app->blame = err == LF_ERR_INVALID ? BLAME_USAGE : BLAME_CONFIG;
        return err;
    }
    if (defaults(app)) {
        fprintf(stderr, PROG ": out of memory\n");
        return LF_ERR_NOMEM;
    }
    app->topic = lf_conf_get(app->conf, LF_CONF_TOPIC);
    app->group = lf_conf_get(app->conf, "group.id");
    app->conninfo = lf_conf_get(app->conf, LF_CONF_DB);
    return LF_OK;
}

/* Connect, and make sure the database holds a funnel this build knows:
 * every command reads it, and a wrong -d or an older schema would
 * otherwise end in some statement's "relation does not exist". */
static lf_err_t connect_db(app_t *app)
{
    char errstr[1024];
    lf_err_t err;

    if ((err = lf_pg_conninfo_check(app->conninfo, errstr, sizeof(errstr)))) {
        app->blame = BLAME_CONFIG;
        return fail(err, "bad -d (db)", errstr);
    }
    if (!(app->conn = lf_pg_connect(app->conninfo, errstr, sizeof(errstr))))
        return fail(LF_ERR_PG, "cannot reach PostgreSQL", errstr);
    if ((err = lf_pg_check_migrated(app->conn, errstr, sizeof(errstr))))
        return fail(err, "no funnel to work on", errstr);
    return LF_OK;
}

static lf_err_t connect_kafka(app_t *app)
{
    char errstr[1024];

    if (!(app->rk = lf_topic_consumer_new(app->conf, errstr, sizeof(errstr)))) {
        app->blame = BLAME_CONFIG;
        return fail(LF_ERR_INVALID, "bad Kafka configuration", errstr);
    }
    return LF_OK;
}

/* The decoder of the live projector: the schema registry of the
 * configuration, if any. */
static lf_err_t new_codec(app_t *app, lf_codec_t **codec)
{
    char errstr[1024];
    lf_err_t err = lf_codec_from_conf(app->conf, codec, errstr, sizeof(errstr));

    if (err == LF_ERR_INVALID)
        app->blame = BLAME_CONFIG;
    return err ? fail(err, "bad contract or schema registry configuration",
                      errstr)
               : LF_OK;
}

/* Sleep @p ms unless a signal came. */
static void nap(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    if (!lf_cli_signals)
        nanosleep(&ts, NULL);
}

/* Called with the locks held by rewind and promote: a running projector
 * would undo a rewind at its next batch and would skip, in a promoted
 * model, what it consumed since the rebuild. A signal that came while
 * they waited for the locks stops them here, before they change
 * anything. */
static lf_err_t group_check(void *arg, char *errstr, size_t errstr_size)
{
    app_t *app = arg;
    char state[64], e[512];
    int members = 0;

    if (lf_cli_signals)
        return lf_seterr(LF_ERR_TEMPORARY, errstr, errstr_size,
                         "interrupted while waiting for the locks: nothing "
                         "changed");
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

static void warn_no_group_check(const app_t *app)
{
    LF_LOG(LF_LOG_WARNING,
           "msg=\"not checking that the group has no members: every "
           "leadflow-project of the group must be stopped\" group=%s",
           app->group);
}

/* ---- rewind ----------------------------------------------------------- */

static lf_err_t own_rewind(void *arg, int opt, const char *val, char *errstr,
                           size_t errstr_size)
{
    app_t *app = arg;
    rewind_cfg_t *cfg = &app->u.rewind;

    switch (opt) {
    case OPT_TO:
        cfg->to = val;
        return LF_OK;
    case OPT_TO_OFFSET:
        cfg->to_offset = val;
        return LF_OK;
    case OPT_DRY_RUN:
        cfg->dry_run = true;
        return LF_OK;
    default:
        return own_common(app, opt, val, errstr, errstr_size);
    }
}

static const struct option rewind_opts[] = {
    {"to", required_argument, NULL, OPT_TO},
    {"to-offset", required_argument, NULL, OPT_TO_OFFSET},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    LONG_GROUP_CHECK,
    LONG_PROGRESS,
    {NULL, 0, NULL, 0}};

SUBCOMMAND(rewind, "rewind", REWIND, REWIND_NOTE "\n" SECRETS_NOTE, 0);

static lf_cli_next_t parse_rewind(app_t *app, int argc, char **argv)
{
    rewind_cfg_t *cfg = &app->u.rewind;
    lf_cli_next_t next = lf_cli_parse(&app->cli, &rewind_spec, app, argc, argv);
    char errstr[512];

    if (next != LF_CLI_RUN || app->cli.dump)
        return next;
    if (!!cfg->to == !!cfg->to_offset)
        return lf_cli_usage_error(&app->cli,
                                  "give one of --to TIME and --to-offset P:O");
    if (cfg->to &&
        lf_time_parse(cfg->to, 1, &cfg->to_ms, errstr, sizeof(errstr)))
        return lf_cli_usage_error(&app->cli, "--to %s: %s", cfg->to, errstr);
    if (cfg->to_offset && lf_rewind_parse_offsets(cfg->to_offset, NULL, 0,
                                                  errstr, sizeof(errstr)))
        return lf_cli_usage_error(&app->cli, "%s", errstr);
    return LF_CLI_RUN;
}

/* The rows of the plan: one per partition, targets from --to-offset or
 * from Kafka's offsets for --to. *@p rows is the caller's to free(). */
static lf_err_t rewind_plan(app_t *app, const lf_topic_part_t *parts, int count,
                            lf_rewind_t **rows)
{
    const rewind_cfg_t *cfg = &app->u.rewind;
    int64_t *offs = calloc((size_t)count + 1, sizeof(*offs));
    bool *searched = calloc((size_t)count + 1, sizeof(*searched));
    char errstr[1024];
    lf_err_t err = LF_OK;

    if (!(*rows = calloc((size_t)count + 1, sizeof(**rows))) || !offs ||
        !searched) {
        err = fail(LF_ERR_NOMEM, "cannot start", "out of memory");
        goto out;
    }
    for (int i = 0; i < count; i++)
        (*rows)[i] = (lf_rewind_t){.partition = parts[i].partition,
                                   .low = parts[i].low,
                                   .high = parts[i].high,
                                   .target = -1,
                                   .current = -1,
                                   .next = -1};
    if (cfg->to_offset && lf_rewind_parse_offsets(cfg->to_offset, *rows, count,
                                                  errstr, sizeof(errstr))) {
        err = LF_ERR_INVALID;
        if (strstr(errstr, "has no partition")) /* data, as dump has it */
            fail(err, "no such partition", errstr);
        else {
            lf_cli_usage_error(&app->cli, "%s", errstr);
            app->blame = BLAME_USAGE;
        }
    } else if (cfg->to && (err = lf_topic_offsets_for_time(
                               app->rk, app->topic, parts, count, cfg->to_ms,
                               KAFKA_TIMEOUT_MS, offs, searched, errstr,
                               sizeof(errstr)))) {
        fail(err, "cannot look up offsets for the time", errstr);
    }
    for (int i = 0; cfg->to && !err && i < count; i++) {
        (*rows)[i].target = offs[i];
        (*rows)[i].searched = searched[i];
    }
out:
    free(offs);
    free(searched);
    return err;
}

/* The note column of a plan row. */
static void rewind_note(const lf_rewind_t *r, char *note, size_t size)
{
    snprintf(note, size, "%s%s%s%s%s", r->note ? r->note : "",
             r->note && (r->clamped || r->searched) ? "; " : "",
             r->clamped ? "target below the oldest retained message" : "",
             r->clamped && r->searched ? "; " : "",
             r->searched ? "found by message timestamps" : "");
}

/* The plan (or what was done) on stdout, then the summary. */
/* Does any partition have a stored offset? None: a group or topic that
 * never ran (most likely a typo), which a rewind cannot apply to. */
static bool stored_any(const lf_rewind_t *rows, int count)
{
    for (int i = 0; i < count; i++)
        if (rows[i].current >= 0)
            return true;
    return false;
}

static void rewind_print(const app_t *app, const lf_rewind_t *rows, int count,
                         int changed)
{
    const rewind_cfg_t *cfg = &app->u.rewind;
    char ts[40], note[256];
    int64_t reread = 0;

    printf("%s group=%s topic=%s%s%s\n",
           cfg->dry_run ? "rewind plan (dry run, nothing written):"
                        : "rewound:",
           app->group, app->topic, cfg->to ? " to=" : "",
           cfg->to ? lf_time_format(cfg->to_ms, ts, sizeof(ts)) : "");
    printf("partition\tcurrent\tnew\tre-read\tnote\n");
    for (int i = 0; i < count; i++) {
        const lf_rewind_t *r = &rows[i];
        int64_t n =
            r->next >= 0 && r->current > r->next ? r->current - r->next : 0;
        char cur[24] = "-", nxt[24] = "-";
        reread += n;
        if (r->current >= 0)
            snprintf(cur, sizeof(cur), "%" PRId64, r->current);
        if (r->next >= 0)
            snprintf(nxt, sizeof(nxt), "%" PRId64, r->next);
        rewind_note(r, note, sizeof(note));
        printf("%d\t%s\t%s\t%" PRId64 "\t%s\n", (int)r->partition, cur, nxt, n,
               note);
    }
    fflush(stdout);
    LF_LOG(LF_LOG_NOTICE,
           "msg=summary command=rewind dry_run=%s group=%s topic=%s "
           "partitions=%d changed=%d messages_to_reread=%" PRId64,
           cfg->dry_run ? "yes" : "no", app->group, app->topic, count, changed,
           reread);
    if (!cfg->dry_run && changed)
        LF_LOG(LF_LOG_NOTICE,
               "msg=\"now start the projectors of the group: they read "
               "funnel.offsets when partitions are assigned\" group=%s",
               app->group);
}

static lf_err_t run_rewind(app_t *app)
{
    const rewind_cfg_t *cfg = &app->u.rewind;
    char errstr[1024];
    lf_topic_part_t *parts = NULL;
    lf_rewind_t *rows = NULL;
    int count = 0, changed = 0;
    lf_err_t err;

    if ((err = connect_db(app)) || (err = connect_kafka(app)))
        return err;
    if ((err = lf_topic_partitions(app->rk, app->topic, KAFKA_TIMEOUT_MS,
                                   &parts, &count, errstr, sizeof(errstr))))
        return fail(err, "cannot read the topic", errstr);
    if ((err = rewind_plan(app, parts, count, &rows)))
        goto out;
    if (!cfg->dry_run && app->no_group_check)
        warn_no_group_check(app);
    /* Fail fast without locks; checked again under the lock. */
    if ((!cfg->dry_run && (err = group_check(app, errstr, sizeof(errstr)))) ||
        (err = lf_rewind_run(app->conn, app->group, app->topic, rows, count,
                             !cfg->dry_run, app->lock_timeout_ms, group_check,
                             app, &changed, errstr, sizeof(errstr)))) {
        fail(err,
             changed < 0 ? "rewind not confirmed: it may have been done (see "
                           "the stored offsets with the same command and "
                           "--dry-run before running it again)"
                         : "rewind not done",
             errstr);
        goto out;
    }
    if (!stored_any(rows, count)) {
        err = fail(LF_ERR_INVALID, "nothing to rewind",
                   "the group has no stored offset for the topic (a typo in "
                   "-g or -t? the stored ones: SELECT DISTINCT group_id, "
                   "topic FROM funnel.offsets)");
        goto out;
    }
    rewind_print(app, rows, count, changed);
out:
    free(rows);
    free(parts);
    return err;
}

/* ---- rebuild ---------------------------------------------------------- */

static lf_err_t own_rebuild(void *arg, int opt, const char *val, char *errstr,
                            size_t errstr_size)
{
    app_t *app = arg;
    rebuild_cfg_t *cfg = &app->u.rebuild;
    int order;

    switch (opt) {
    case OPT_INTO:
        cfg->into = val;
        return LF_OK;
    case OPT_FROM_KAFKA:
        cfg->from_kafka = true;
        return LF_OK;
    case OPT_FROM_DB:
        cfg->from_db = true;
        return LF_OK;
    case OPT_REPLACE:
        cfg->replace = true;
        return LF_OK;
    case OPT_DEFINITION:
        cfg->definition = val;
        return LF_OK;
    case OPT_BATCH:
        return parse_int("--batch", val, 1, 1000000, &cfg->batch, errstr,
                         errstr_size);
    case OPT_ORDER:
        if ((order = lf_rebuild_order_parse(val)) < 0)
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "--order %s: expected lead, time or none", val);
        cfg->order = (lf_rebuild_order_t)order;
        cfg->order_given = true;
        return LF_OK;
    default:
        return own_common(app, opt, val, errstr, errstr_size);
    }
}

static const struct option rebuild_opts[] = {
    {"into", required_argument, NULL, OPT_INTO},
    {"from-kafka", no_argument, NULL, OPT_FROM_KAFKA},
    {"from-db", no_argument, NULL, OPT_FROM_DB},
    {"replace", no_argument, NULL, OPT_REPLACE},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"order", required_argument, NULL, OPT_ORDER},
    {"definition", required_argument, NULL, OPT_DEFINITION},
    {"lock-timeout", required_argument, NULL, OPT_LOCK_TIMEOUT},
    LONG_PROGRESS,
    {NULL, 0, NULL, 0}};

SUBCOMMAND(rebuild, "rebuild", REBUILD, REBUILD_NOTE "\n" SECRETS_NOTE, 0);

static lf_cli_next_t parse_rebuild(app_t *app, int argc, char **argv)
{
    rebuild_cfg_t *cfg = &app->u.rebuild;
    lf_cli_next_t next;
    char errstr[512];

    cfg->batch = 5000;
    cfg->order = LF_REBUILD_ORDER_LEAD;
    if ((next = lf_cli_parse(&app->cli, &rebuild_spec, app, argc, argv)) ||
        app->cli.dump) /* -X dump needs nothing else */
        return next;
    if (!cfg->into)
        return lf_cli_usage_error(&app->cli, "--into SCHEMA is required");
    if (cfg->from_db && cfg->from_kafka)
        return lf_cli_usage_error(&app->cli,
                                  "give one of --from-kafka and --from-db");
    if (cfg->order_given && !cfg->from_db)
        return lf_cli_usage_error(&app->cli,
                                  "--order is for --from-db (from Kafka the "
                                  "partitions are read as they come)");
    if (lf_catalog_check_name(NULL, cfg->into, errstr, sizeof(errstr)))
        return lf_cli_usage_error(&app->cli, "--into: %s", errstr);
    return LF_CLI_RUN;
}

/* What a rebuild works with. */
typedef struct rebuild_s {
    lf_projector_t *p;
    lf_progress_t *pr;
    lf_rebuild_source_t *src;     /* --from-db */
    lf_definition_t *def;         /* --definition or the recorded one */
    const lf_definition_t *rules; /* def, or the embedded default */
    lf_topic_reader_t *reader;    /* --from-kafka */
    lf_pseudonym_t *ps;           /* pseudonym.key.file, or NULL */
    uint64_t done;                /* events or messages read */
    uint64_t copied[3]; /* --from-db: dead letters, anomalies, offsets */
} rebuild_t;

/* After a reconnect: does the twin still hold every event and dead letter
 * this rebuild committed? A failover to an asynchronous standby may have
 * lost the last commits; going on would finish a rebuild with holes that
 * nothing reports. More than committed is fine: a COMMIT whose answer was
 * lost did commit, and the retried batch is then all duplicates. */
static lf_err_t rebuild_intact(app_t *app, lf_projector_t *p, char *errstr,
                               size_t errstr_size)
{
    const lf_projector_stats_t *st = lf_projector_stats(p);
    long long have, want = (long long)(st->events_new + st->dead_letters);
    PGresult *res = NULL;
    char sql[400];
    lf_err_t err;

    /* The name passed lf_catalog_check_name(): safe between quotes. */
    snprintf(sql, sizeof(sql),
             "SELECT (SELECT count(*) FROM \"%s\".events) + "
             "(SELECT count(*) FROM \"%s\".dead_letters)",
             app->u.rebuild.into, app->u.rebuild.into);
    if ((err = lf_pg_query(app->conn, sql, 0, NULL, "counting the rebuilt rows",
                           &res, errstr, errstr_size)))
        return err;
    have = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if (have >= want)
        return LF_OK;
    return lf_seterr(LF_ERR_TEMPORARY, errstr, errstr_size,
                     "after reconnecting, schema %s holds %lld of the %lld "
                     "events and dead letters this rebuild committed (a "
                     "failover to a standby that missed the last commits?): "
                     "run the rebuild again",
                     app->u.rebuild.into, have, want);
}

/* Write the batch, reconnecting and retrying a few times on connection
 * trouble. A new connection may reach a database that lost earlier
 * batches: rebuild_intact() checks that first. */
static lf_err_t flush_retry(app_t *app, lf_projector_t *p, char *errstr,
                            size_t errstr_size)
{
    lf_err_t err = LF_OK;

    for (int attempt = 0; attempt < 6 && !lf_cli_signals; attempt++) {
        if (attempt) {
            nap(200L << (attempt < 4 ? attempt : 4)); /* to 3.2 s */
            if (PQstatus(app->conn) != CONNECTION_OK) {
                PQfinish(app->conn);
                lf_projector_conn_reset(p);
                if (!(app->conn =
                          lf_pg_connect(app->conninfo, errstr, errstr_size)))
                    continue;
                if ((err = rebuild_intact(app, p, errstr, errstr_size)))
                    return err;
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

static lf_err_t interrupted(char *errstr, size_t errstr_size)
{
    return lf_seterr(LF_ERR_TEMPORARY, errstr, errstr_size, "interrupted");
}

static lf_err_t rebuild_from_db(app_t *app, rebuild_t *rb, char *errstr,
                                size_t errstr_size)
{
    const rebuild_cfg_t *cfg = &app->u.rebuild;
    lf_err_t err;
    size_t added;

    rb->pr = lf_progress_new("rebuild", "events",
                             lf_rebuild_source_total(rb->src), app->progress);
    for (;;) {
        if (lf_cli_signals)
            return interrupted(errstr, errstr_size);
        if ((err = lf_rebuild_source_next(rb->src, rb->p, (size_t)cfg->batch,
                                          &added, errstr, errstr_size)) ||
            !added)
            break;
        if ((err = flush_retry(app, rb->p, errstr, errstr_size)))
            return err;
        rb->done += added;
        lf_progress_update(rb->pr, rb->done);
    }
    return err ? err
               : lf_rebuild_source_copy_rest(rb->src, app->conn, cfg->into,
                                             rb->copied, errstr, errstr_size);
}

/* Add @p rkm to the batch; while the schema registry cannot be asked
 * about its schema id, wait and offer it again, as the live projector
 * does (nothing is dead-lettered for an outage). */
static lf_err_t add_message(lf_projector_t *p, const rd_kafka_message_t *rkm,
                            char *errstr, size_t errstr_size)
{
    lf_err_t err;

    while ((err = lf_projector_add_message(p, rkm)) == LF_ERR_TEMPORARY &&
           !lf_cli_signals)
        nap(1000);
    if (err == LF_ERR_TEMPORARY)
        return interrupted(errstr, errstr_size);
    if (err)
        return lf_seterr(err, errstr, errstr_size, "out of memory");
    return LF_OK;
}

static lf_err_t rebuild_from_kafka(app_t *app, rebuild_t *rb, char *errstr,
                                   size_t errstr_size)
{
    size_t batch = (size_t)app->u.rebuild.batch;
    lf_topic_reader_t *reader = rb->reader;
    lf_err_t err = LF_OK;

    rb->pr = lf_progress_new("rebuild", "messages",
                             lf_topic_reader_total(reader), app->progress);
    while (!err && !lf_topic_reader_done(reader)) {
        rd_kafka_message_t *rkm;
        bool idle = true;
        if (lf_cli_signals) {
            err = interrupted(errstr, errstr_size);
            break;
        }
        if ((rkm = lf_topic_reader_next(reader, 100))) {
            err = add_message(rb->p, rkm, errstr, errstr_size);
            rd_kafka_message_destroy(rkm);
            if (err)
                break;
            rb->done++;
            idle = false;
        }
        /* Full, or nothing more right now: write. */
        if (lf_projector_full(rb->p, batch) ||
            (lf_projector_pending(rb->p) &&
             (idle || lf_topic_reader_done(reader)))) {
            err = flush_retry(app, rb->p, errstr, errstr_size);
            lf_progress_update(rb->pr, rb->done);
        }
    }
    if (!err && lf_projector_pending(rb->p))
        err = flush_retry(app, rb->p, errstr, errstr_size);
    return err;
}

/* The source: Kafka first, so a broker problem is found before a schema
 * is made; or one snapshot of funnel.events. */
static lf_err_t rebuild_open(app_t *app, rebuild_t *rb)
{
    char errstr[1024];
    lf_topic_part_t *parts = NULL;
    int count = 0;
    lf_err_t err;

    if (app->u.rebuild.from_db) {
        if (!(rb->src = lf_rebuild_source_open(
                  app->conninfo, app->u.rebuild.order, errstr, sizeof(errstr))))
            return fail(LF_ERR_PG, "cannot read funnel.events", errstr);
        return LF_OK;
    }
    if ((err = connect_kafka(app)))
        return err;
    if ((err = lf_topic_partitions(app->rk, app->topic, KAFKA_TIMEOUT_MS,
                                   &parts, &count, errstr, sizeof(errstr))))
        return fail(err, "cannot read the topic", errstr);
    if (!(rb->reader = lf_topic_reader_new(app->rk, app->topic, parts, count,
                                           errstr, sizeof(errstr))))
        err = fail(LF_ERR_KAFKA, "cannot read the topic", errstr);
    free(parts);
    return err;
}

/* Count the rows, mark the schema complete, and say what was done. */
static lf_err_t rebuild_finish(app_t *app, rebuild_t *rb, const char *how,
                               int64_t started)
{
    const rebuild_cfg_t *cfg = &app->u.rebuild;
    const lf_projector_stats_t *s = lf_projector_stats(rb->p);
    char errstr[1024], rows[256], summary[512];
    lf_err_t err;

    if ((err = lf_rebuild_counts(app->conn, cfg->into, rows, sizeof(rows),
                                 errstr, sizeof(errstr))))
        return fail(err, "cannot count the rows", errstr);
    snprintf(summary, sizeof(summary), "%s=%" PRIu64 " %s",
             cfg->from_db ? "events_read" : "messages_read", rb->done, rows);
    if ((err = lf_rebuild_complete(app->conn, cfg->into, how, summary, errstr,
                                   sizeof(errstr))))
        return fail(err, "cannot mark the rebuild complete", errstr);
    LF_LOG(LF_LOG_NOTICE,
           "msg=summary command=rebuild into=%s source=%s %s "
           "batches=%" PRIu64 " duplicates=%" PRIu64
           " leads_recomputed=%" PRIu64 " copied_dead_letters=%" PRIu64
           " copied_anomalies=%" PRIu64 " copied_offsets=%" PRIu64
           " elapsed_s=%.1f",
           cfg->into, how, summary, s->batches, s->duplicates, s->recomputed,
           rb->copied[0], rb->copied[1], rb->copied[2],
           (double)(lf_now_mono_ms() - started) / 1000.0);
    LF_LOG(LF_LOG_NOTICE,
           "msg=\"next: leadflow-replay diff --against %s%s; then, with "
           "the projectors stopped, leadflow-replay promote %s\"",
           cfg->into, cfg->definition ? " --summary" : "", cfg->into);
    return LF_OK;
}

/* The rules to build under: --definition FILE, else those recorded in
 * funnel.definition (a rebuild reproduces the live model), else the
 * embedded default. A bad file is the configuration's fault (exit 78). */
static lf_err_t rebuild_definition(app_t *app, rebuild_t *rb)
{
    const char *file = app->u.rebuild.definition;
    char errstr[1024];
    lf_err_t err;

    if (file) {
        if ((rb->rules = rb->def =
                 lf_definition_load(file, errstr, sizeof(errstr))))
            return LF_OK;
        app->blame = BLAME_CONFIG;
        return fail(LF_ERR_INVALID, "bad --definition", errstr);
    }
    /* The projector's setting, in a shared -c file or -X: not this
     * command's way to choose the rules, said so rather than ignored. */
    const char *set = lf_conf_get(app->conf, LF_CONF_DEFINITION);
    if (set && *set) {
        char q[600];
        LF_LOG(LF_LOG_WARNING,
               "msg=\"funnel.definition is leadflow-project's setting and is "
               "not used here: the rebuild follows funnel.definition's "
               "recorded rules; give --definition FILE to build under "
               "others\" file=%s",
               lf_log_quote(set, q, sizeof(q)));
    }
    if ((err = lf_defstore_load(app->conn, LF_SCHEMA_LIVE, &rb->def, errstr,
                                sizeof(errstr))))
        return fail(err, "cannot read funnel.definition", errstr);
    if (!(rb->rules = rb->def ? rb->def : lf_definition_default()))
        return fail(LF_ERR_NOMEM, "cannot start", "out of memory");
    return LF_OK;
}

/* Without a pseudonym key, a database whose funnel has erased people is
 * refused before the schema is made: the rebuild would meet their
 * erasures and stop (78 either way, but nothing left to --replace). */
static lf_err_t rebuild_needs_no_key(app_t *app)
{
    const char *param = NULL;
    PGresult *res = NULL;
    char errstr[1024];
    bool erased;
    lf_err_t err;

    if ((err = lf_pg_query(
             app->conn, "SELECT EXISTS (SELECT 1 FROM funnel.erased_leads)", 0,
             &param, "checking erasures", &res, errstr, sizeof(errstr))))
        return fail(err, "cannot start", errstr);
    erased = !strcmp(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    if (!erased)
        return LF_OK;
    app->blame = BLAME_CONFIG;
    snprintf(errstr, sizeof(errstr),
             "people are erased in funnel but no pseudonym key is "
             "configured: set %s (docs/security.md)",
             LF_CONF_PSEUDONYM_KEY_FILE);
    return fail(LF_ERR_CONFIG, "bad pseudonym key", errstr);
}

/* The projector that writes into the new schema, decoding as the live one
 * does (its schema registry, if any). From Kafka the offsets reached are
 * the group's in the new model; from the database they are copied with
 * the snapshot. */
static lf_err_t rebuild_projector(app_t *app, rebuild_t *rb)
{
    const rebuild_cfg_t *cfg = &app->u.rebuild;
    char errstr[1024];
    lf_err_t err;

    if (!(rb->p = lf_projector_new(cfg->into, cfg->from_db ? NULL : app->group,
                                   errstr, sizeof(errstr))))
        return fail(LF_ERR_NOMEM, "cannot start", errstr);
    lf_projector_use_definition(rb->p, rb->rules);
    if ((err = lf_projector_use_registry(rb->p, app->conf, errstr,
                                         sizeof(errstr)))) {
        app->blame = err == LF_ERR_INVALID ? BLAME_CONFIG : BLAME_DATA;
        return fail(err, "bad schema registry configuration", errstr);
    }
    if ((err = lf_pseudonym_from_conf(app->conf, &rb->ps, errstr,
                                      sizeof(errstr)))) {
        app->blame = BLAME_CONFIG;
        return fail(err, "bad pseudonym key", errstr);
    }
    lf_projector_use_pseudonyms(rb->p, rb->ps);
    return rb->ps ? LF_OK : rebuild_needs_no_key(app);
}

static lf_err_t run_rebuild(app_t *app)
{
    const rebuild_cfg_t *cfg = &app->u.rebuild;
    const char *how = cfg->from_db ? "from-db" : "from-kafka";
    int64_t started = lf_now_mono_ms();
    rebuild_t rb = {0};
    char errstr[1024];
    lf_err_t err;

    /* A bad --definition file is refused before anything is reached, a
     * bad registry or key setting before the schema is made. */
    if ((cfg->definition && (err = rebuild_definition(app, &rb))) ||
        (err = connect_db(app)) ||
        (!cfg->definition && (err = rebuild_definition(app, &rb))) ||
        (err = rebuild_open(app, &rb)) || (err = rebuild_projector(app, &rb)))
        goto out;
    if ((err = lf_rebuild_create(app->conn, cfg->into, cfg->replace,
                                 app->lock_timeout_ms, &lf_cli_signals, how,
                                 errstr, sizeof(errstr))) ||
        (err = lf_defstore_record(app->conn, cfg->into, rb.rules, errstr,
                                  sizeof(errstr)))) {
        fail(err, "cannot create the schema", errstr);
        goto out;
    }
    LF_LOG(LF_LOG_INFO, "msg=\"rebuilding\" into=%s source=%s topic=%s",
           cfg->into, how, app->topic);
    err = cfg->from_db ? rebuild_from_db(app, &rb, errstr, sizeof(errstr))
                       : rebuild_from_kafka(app, &rb, errstr, sizeof(errstr));
    lf_progress_update(rb.pr, rb.done);
    lf_progress_finish(rb.pr);
    if (!err) /* merges left waiting: none here (one writer), but sure */
        err = lf_projector_settle_all(rb.p, app->conn, errstr, sizeof(errstr));
    if (err)
        fail(err,
             "rebuild stopped; the schema is marked incomplete (run again "
             "with --replace)",
             errstr);
    else
        err = rebuild_finish(app, &rb, how, started);
out:
    lf_progress_destroy(rb.pr);
    lf_topic_reader_destroy(rb.reader);
    lf_rebuild_source_close(rb.src);
    lf_projector_destroy(rb.p);
    lf_pseudonym_destroy(rb.ps);
    lf_definition_destroy(rb.def);
    return err;
}

/* ---- diff ------------------------------------------------------------- */

static lf_err_t own_diff(void *arg, int opt, const char *val, char *errstr,
                         size_t errstr_size)
{
    app_t *app = arg;
    diff_cfg_t *cfg = &app->u.diff;

    switch (opt) {
    case OPT_AGAINST:
        cfg->against = val;
        return LF_OK;
    case OPT_BASE:
        cfg->base = val;
        return LF_OK;
    case OPT_LIMIT:
        return parse_int("--limit", val, 1, 10000, &cfg->limit, errstr,
                         errstr_size);
    case OPT_SUMMARY:
        cfg->summary = true;
        return LF_OK;
    default:
        return own_common(app, opt, val, errstr, errstr_size);
    }
}

static const struct option diff_opts[] = {
    {"against", required_argument, NULL, OPT_AGAINST},
    {"base", required_argument, NULL, OPT_BASE},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"summary", no_argument, NULL, OPT_SUMMARY},
    LONG_PROGRESS,
    {NULL, 0, NULL, 0}};

SUBCOMMAND(diff, "diff", DIFF, DIFF_NOTE "\n" SECRETS_NOTE, -1);

static lf_cli_next_t parse_diff(app_t *app, int argc, char **argv)
{
    diff_cfg_t *cfg = &app->u.diff;
    char errstr[256];
    lf_cli_next_t next;
    int i = 0;

    cfg->base = LF_SCHEMA_LIVE;
    cfg->limit = 10;
    if ((next = lf_cli_parse(&app->cli, &diff_spec, app, argc, argv)) ||
        app->cli.dump) /* -X dump needs nothing else */
        return next;
    if (i < app->cli.nargs && !cfg->against)
        cfg->against = app->cli.args[i++];
    if (i < app->cli.nargs)
        return lf_cli_usage_error(&app->cli, "unexpected argument \"%s\"",
                                  app->cli.args[i]);
    if (!cfg->against)
        return lf_cli_usage_error(&app->cli, "--against SCHEMA is required");
    /* A name no schema can have is a typo, as rebuild and promote say. */
    for (int s = 0; s < 2; s++) {
        const char *name = s ? cfg->base : cfg->against;
        if (strcmp(name, LF_SCHEMA_LIVE) &&
            lf_catalog_check_name(NULL, name, errstr, sizeof(errstr)))
            return lf_cli_usage_error(&app->cli, "%s", errstr);
    }
    return LF_CLI_RUN;
}

/* The differing leads' rows, then the differing rows of no lead (dead
 * letters, erasures, erased leads: each names its table). */
static void diff_print_rows(const lf_diff_t *d)
{
    const char *prev = NULL;

    printf("\nfirst differing leads (%zu):\n", d->leads);
    for (size_t i = 0; i < d->row_count; i++) {
        const lf_diff_row_t *r = &d->rows[i];
        if (!r->lead) {
            if (!prev || *prev) {
                printf("differing rows of no lead:\n");
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

/* --summary: what the what-if would change in the numbers. */
static lf_err_t diff_print_summary(app_t *app)
{
    const diff_cfg_t *cfg = &app->u.diff;
    char errstr[1024];
    lf_buf_t out = {0};
    lf_err_t err;

    err = lf_diff_summary(app->conn, cfg->base, cfg->against, &out, errstr,
                          sizeof(errstr));
    if (!err)
        printf("\n%s", out.data ? out.data : "");
    lf_buf_free(&out);
    return err ? fail(err, "cannot summarise", errstr) : LF_OK;
}

static lf_err_t run_diff(app_t *app)
{
    const diff_cfg_t *cfg = &app->u.diff;
    char errstr[1024];
    int differing = 0;
    lf_diff_t d;
    lf_err_t err;

    if ((err = connect_db(app)))
        return err;
    if ((err = lf_diff_compare(app->conn, cfg->base, cfg->against, cfg->limit,
                               &d, errstr, sizeof(errstr))))
        return fail(err, "cannot compare", errstr);
    printf("%-14s %12s %12s  %-16s %-16s %s\n", "table", cfg->base,
           cfg->against, "checksum", "checksum", "result");
    for (int t = 0; t < LF_DIFF_TABLES; t++) {
        const lf_diff_table_t *dt = &d.tables[t];
        differing += dt->differs;
        printf("%-14s %12lld %12lld  %-16s %-16s %s\n", dt->table, dt->rows_a,
               dt->rows_b, dt->sum_a, dt->sum_b,
               dt->differs ? "DIFFERS" : "same");
    }
    if (d.row_count)
        diff_print_rows(&d);
    if (cfg->summary && (err = diff_print_summary(app))) {
        lf_diff_free(&d);
        return err;
    }
    if (fflush(stdout) == EOF) {
        lf_diff_free(&d);
        return LF_ERR_IO;
    }
    LF_LOG(LF_LOG_NOTICE,
           "msg=summary command=diff base=%s against=%s tables=%d "
           "differing_tables=%d leads_shown=%zu result=%s",
           cfg->base, cfg->against, LF_DIFF_TABLES, differing, d.leads,
           d.differs ? "differ" : "equal");
    app->differ = d.differs;
    lf_diff_free(&d);
    return LF_OK;
}

/* ---- promote ------------------------------------------------------------ */

static lf_err_t own_promote(void *arg, int opt, const char *val, char *errstr,
                            size_t errstr_size)
{
    return own_common(arg, opt, val, errstr, errstr_size);
}

static const struct option promote_opts[] = {
    LONG_GROUP_CHECK, LONG_PROGRESS, {NULL, 0, NULL, 0}};

SUBCOMMAND(promote, "promote", PROMOTE, PROMOTE_NOTE "\n" SECRETS_NOTE, -1);

static lf_cli_next_t parse_promote(app_t *app, int argc, char **argv)
{
    lf_cli_next_t next;
    char errstr[512];

    if ((next = lf_cli_parse(&app->cli, &promote_spec, app, argc, argv)) ||
        app->cli.dump) /* -X dump needs nothing else */
        return next;
    if (app->cli.nargs != 1)
        return lf_cli_usage_error(&app->cli, app->cli.nargs
                                                 ? "one SCHEMA only"
                                                 : "SCHEMA is required");
    app->u.promote = app->cli.args[0];
    if (lf_catalog_check_name(NULL, app->u.promote, errstr, sizeof(errstr)))
        return lf_cli_usage_error(&app->cli, "%s", errstr);
    return LF_CLI_RUN;
}

/* The definition the promoted tables record, and whether the projectors
 * need another file to start (docs/definition.md, step 6). Nothing when
 * it cannot be read: the promote is done either way. */
static void promote_print_definition(PGconn *conn, const char *old_name)
{
    char sql[512], *old = PQescapeIdentifier(conn, old_name, strlen(old_name));
    PGresult *res;

    if (!old)
        return;
    snprintf(sql, sizeof(sql),
             "SELECT n.name, n.version, n.sha256, o.sha256 IS NOT DISTINCT "
             "FROM n.sha256 FROM funnel.definition n LEFT JOIN %s.definition "
             "o ON true",
             old);
    PQfreemem(old);
    res = PQexec(conn, sql);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        printf("definition: \"%s\" version %s (sha256 %.12s), %s\n",
               PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
               PQgetvalue(res, 0, 2),
               *PQgetvalue(res, 0, 3) == 't'
                   ? "the same as the old funnel's"
                   : "not the old funnel's: start the projectors with its "
                     "file (-X funnel.definition=FILE)");
    PQclear(res);
}

static void promote_print(PGconn *conn, const char *from,
                          const lf_promote_t *rep)
{
    printf("promoted: %s is now funnel; the previous funnel is %s\n", from,
           rep->old_name);
    printf("tables=%d functions_recreated=%d views_recreated=%d "
           "owners_changed=%d privileges_granted=%d\n",
           rep->tables, rep->functions, rep->views, rep->owners, rep->grants);
    if (rep->offsets.len)
        printf("stored offsets that differ from the old funnel's (the "
               "projector resumes from new):\n%s",
               rep->offsets.data);
    else
        printf("stored offsets: the same as the old funnel's\n");
    promote_print_definition(conn, rep->old_name);
    fflush(stdout);
    LF_LOG(LF_LOG_NOTICE,
           "msg=summary command=promote schema=%s old=%s tables=%d views=%d "
           "grants=%d",
           from, rep->old_name, rep->tables, rep->views, rep->grants);
    LF_LOG(LF_LOG_NOTICE,
           "msg=\"now start the projectors: they resume from the new "
           "funnel.offsets\" undo=\"leadflow-replay promote %s\"",
           rep->old_name);
}

static lf_err_t run_promote(app_t *app)
{
    const char *from = app->u.promote;
    char errstr[2048];
    lf_promote_t rep;
    lf_err_t err;

    if ((err = connect_db(app)))
        return err;
    if (app->no_group_check)
        warn_no_group_check(app);
    else if ((err = connect_kafka(app)))
        return err;
    /* Fail fast without locks (readers wait while promote holds them);
     * checked again under the locks. */
    if ((err = group_check(app, errstr, sizeof(errstr))))
        return fail(err, "promote not done, nothing changed", errstr);
    err = lf_promote_swap(app->conn, from, app->lock_timeout_ms, group_check,
                          app, &rep, errstr, sizeof(errstr));
    if (err && rep.in_doubt)
        fail(err,
             "promote not confirmed: it may have been done (if the schema is "
             "gone, funnel is the rebuilt model; else run it again)",
             errstr);
    else if (err)
        fail(err, "promote not done, nothing changed", errstr);
    else
        promote_print(app->conn, from, &rep);
    lf_promote_free(&rep);
    return err;
}

/* ---- dead letters ------------------------------------------------------- */

/* Parse "N" or "N,N,..." into the ids. */
static bool parse_ids(const char *s, dead_cfg_t *cfg)
{
    while (*s) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end == s || v < 1 || errno || (*end && *end != ','))
            return false;
        if (cfg->nids == cfg->cap) {
            size_t c = cfg->cap ? cfg->cap * 2 : 16;
            int64_t *m = realloc(cfg->ids, c * sizeof(*m));
            if (!m)
                return false;
            cfg->ids = m;
            cfg->cap = c;
        }
        cfg->ids[cfg->nids++] = v;
        s = *end ? end + 1 : end;
    }
    return true;
}

static lf_err_t own_dead(void *arg, int opt, const char *val, char *errstr,
                         size_t errstr_size)
{
    app_t *app = arg;
    dead_cfg_t *cfg = &app->u.dead;
    char why[256];

    switch (opt) {
    case OPT_SINCE:
        cfg->since_arg = val;
        if (lf_time_parse(val, 1, &cfg->since, why, sizeof(why)))
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "--since %s: %s", val, why);
        return LF_OK;
    case OPT_ALL:
        cfg->all = true;
        return LF_OK;
    case OPT_ID:
        if (!parse_ids(val, cfg))
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "--id %s: expected ids (N or N,N,...)", val);
        return LF_OK;
    case OPT_DRY_RUN:
        cfg->dry_run = true;
        return LF_OK;
    case OPT_NOTE:
        cfg->note = val;
        return LF_OK;
    default:
        return own_common(app, opt, val, errstr, errstr_size);
    }
}

static const struct option dead_opts[] = {
    {"since", required_argument, NULL, OPT_SINCE},
    {"all", no_argument, NULL, OPT_ALL},
    {"id", required_argument, NULL, OPT_ID},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"note", required_argument, NULL, OPT_NOTE},
    LONG_PROGRESS,
    {NULL, 0, NULL, 0}};

SUBCOMMAND(dead, "dead-letters", DEAD, SECRETS_NOTE, -1);

static lf_cli_next_t parse_dead(app_t *app, int argc, char **argv)
{
    dead_cfg_t *cfg = &app->u.dead;
    const lf_cli_t *cli = &app->cli;
    const char *sub;
    lf_cli_next_t next;

    cfg->since = INT64_MIN;
    if ((next = lf_cli_parse(&app->cli, &dead_spec, app, argc, argv)) ||
        app->cli.dump) /* -X dump needs nothing else */
        return next;
    /* The subcommand: the first argument that is not an option. */
    sub = cli->nargs ? cli->args[0] : NULL;
    if (!sub || (strcmp(sub, "list") && strcmp(sub, "retry")))
        return lf_cli_usage_error(cli,
                                  sub ? "unknown subcommand \"%s\": expected "
                                        "list or retry"
                                      : "expected list or retry%s",
                                  sub ? sub : "");
    cfg->list = !strcmp(sub, "list");
    if (cli->nargs > 1)
        return lf_cli_usage_error(cli, "unexpected argument \"%s\"",
                                  cli->args[1]);
    if (cfg->list && (cfg->dry_run || cfg->note || cfg->nids))
        return lf_cli_usage_error(cli,
                                  "--id, --dry-run and --note are for retry");
    if (!cfg->list && cfg->since_arg)
        return lf_cli_usage_error(cli, "--since is for list");
    if (!cfg->list && cfg->nids && cfg->all)
        return lf_cli_usage_error(cli, "retry: give --id N... or --all, not "
                                       "both");
    if (!cfg->list && !cfg->nids && !cfg->all)
        return lf_cli_usage_error(cli, "retry: give --id N... or --all");
    return LF_CLI_RUN;
}

static lf_err_t run_dead_list(app_t *app)
{
    const dead_cfg_t *cfg = &app->u.dead;
    uint64_t shown = 0, open = 0;
    char errstr[1024];
    lf_err_t err;

    if ((err = lf_deadletter_list(app->conn, cfg->since, cfg->all, stdout,
                                  &shown, &open, errstr, sizeof(errstr))))
        return fail(err, "cannot list dead letters", errstr);
    if (fflush(stdout) == EOF)
        return LF_ERR_IO;
    LF_LOG(LF_LOG_NOTICE,
           "msg=summary command=\"dead-letters list\" shown=%" PRIu64
           " open=%" PRIu64 " resolved=%" PRIu64,
           shown, open, shown - open);
    return LF_OK;
}

static lf_err_t run_dead_retry(app_t *app)
{
    const dead_cfg_t *cfg = &app->u.dead;
    lf_progress_t *pr =
        lf_progress_new("retry", "dead letters", 0, app->progress);
    char errstr[1024];
    lf_retry_counts_t st;
    lf_err_t err;

    err = lf_deadletter_retry(app->conn, app->conf, cfg->ids, cfg->nids,
                              cfg->dry_run, cfg->note, stdout, pr, &st, errstr,
                              sizeof(errstr));
    lf_progress_destroy(pr);
    fflush(stdout);
    if (err == LF_ERR_INVALID) { /* the settings: the data is not read */
        app->blame = BLAME_CONFIG;
        return fail(err, "bad configuration", errstr);
    }
    if (err) /* "run it again" only where a later run can succeed */
        return fail(err,
                    err == LF_ERR_TEMPORARY
                        ? "retry stopped (letters already marked keep their "
                          "marks; run it again)"
                        : "retry stopped (letters already marked keep their "
                          "marks)",
                    errstr);
    LF_LOG(LF_LOG_NOTICE,
           "msg=summary command=\"dead-letters retry\" dry_run=%s "
           "selected=%" PRIu64 " applied=%" PRIu64 " new_events=%" PRIu64
           " duplicates=%" PRIu64 " conflicts=%" PRIu64
           " still_failing=%" PRIu64 " already_resolved=%" PRIu64
           " missing=%" PRIu64,
           cfg->dry_run ? "yes" : "no", st.selected, st.applied, st.events_new,
           st.duplicates, st.conflicts, st.still_failing, st.already_resolved,
           st.missing);
    return st.missing ? LF_ERR_INVALID : LF_OK;
}

static lf_err_t run_dead(app_t *app)
{
    lf_err_t err = connect_db(app);

    if (err)
        return err;
    return app->u.dead.list ? run_dead_list(app) : run_dead_retry(app);
}

/* ---- dump --------------------------------------------------------------- */

static int by_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static lf_err_t own_dump(void *arg, int opt, const char *val, char *errstr,
                         size_t errstr_size)
{
    app_t *app = arg;
    dump_cfg_t *cfg = &app->u.dump;
    char why[256], *end;
    long v;

    switch (opt) {
    case OPT_FROM:
    case OPT_TO:
        if (lf_time_parse(val, 1, opt == OPT_FROM ? &cfg->from : &cfg->to, why,
                          sizeof(why)))
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size, "--%s %s: %s",
                             opt == OPT_FROM ? "from" : "to", val, why);
        return LF_OK;
    case OPT_LEAD:
        cfg->leads[cfg->nleads++] = (char *)val;
        return LF_OK;
    case OPT_PARTITION:
        errno = 0;
        v = strtol(val, &end, 10);
        if (end == val || *end || v < 0 || v > INT32_MAX)
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "--partition %s: expected a partition number",
                             val);
        cfg->wanted[cfg->nwanted++] = (int32_t)v;
        return LF_OK;
    default:
        return own_common(app, opt, val, errstr, errstr_size);
    }
}

static const struct option dump_opts[] = {
    {"from", required_argument, NULL, OPT_FROM},
    {"to", required_argument, NULL, OPT_TO},
    {"lead", required_argument, NULL, OPT_LEAD},
    {"partition", required_argument, NULL, OPT_PARTITION},
    LONG_PROGRESS,
    {NULL, 0, NULL, 0}};

SUBCOMMAND(dump, "dump", DUMP, DUMP_NOTE "\n" SECRETS_NOTE, 0);

static lf_cli_next_t parse_dump(app_t *app, int argc, char **argv)
{
    dump_cfg_t *cfg = &app->u.dump;
    lf_cli_next_t next;

    cfg->from = INT64_MIN;
    cfg->to = INT64_MAX;
    /* Each --lead and --partition is one of argv's words. */
    cfg->leads = calloc((size_t)argc + 1, sizeof(*cfg->leads));
    cfg->wanted = calloc((size_t)argc + 1, sizeof(*cfg->wanted));
    if (!cfg->leads || !cfg->wanted) {
        lf_cli_t cli = {.spec = &dump_spec};
        return lf_cli_usage_error(&cli, "out of memory");
    }
    if ((next = lf_cli_parse(&app->cli, &dump_spec, app, argc, argv)) ||
        app->cli.dump) /* -X dump needs nothing else */
        return next;
    if (cfg->from != INT64_MIN && cfg->to != INT64_MAX && cfg->from >= cfg->to)
        return lf_cli_usage_error(&app->cli, "--from must be before --to");
    qsort(cfg->leads, (size_t)cfg->nleads, sizeof(*cfg->leads), by_str);
    return LF_CLI_RUN;
}

/* What a dump counts. */
typedef struct dump_count_s {
    uint64_t read, written, filtered, undecodable;
} dump_count_t;

/* The partitions asked for (all without --partition) into @p sel, which
 * has room for @p count. */
static lf_err_t dump_select(app_t *app, const lf_topic_part_t *parts, int count,
                            lf_topic_part_t *sel, int *nsel)
{
    const dump_cfg_t *cfg = &app->u.dump;

    *nsel = 0;
    for (int i = 0; i < count; i++) {
        bool want = !cfg->nwanted;
        for (int k = 0; k < cfg->nwanted; k++)
            want |= cfg->wanted[k] == parts[i].partition;
        if (want)
            sel[(*nsel)++] = parts[i];
    }
    for (int k = 0; k < cfg->nwanted; k++) {
        bool found = false;
        for (int i = 0; i < count; i++)
            found |= cfg->wanted[k] == parts[i].partition;
        if (!found) {
            LF_LOG(LF_LOG_ERR,
                   "msg=\"no such partition\" topic=%s "
                   "partition=%d partitions=%d",
                   app->topic, (int)cfg->wanted[k], count);
            return LF_ERR_INVALID;
        }
    }
    return LF_OK;
}

/* Whether @p ev passes the filters. */
static bool dump_wanted(const dump_cfg_t *cfg, const lf_event_t *ev)
{
    return ev->occurred_at >= cfg->from && ev->occurred_at < cfg->to &&
           (!cfg->nleads ||
            bsearch(&ev->lead_id, cfg->leads, (size_t)cfg->nleads,
                    sizeof(*cfg->leads), by_str));
}

/* One event as an emit line with, before the closing brace, the fields a
 * newer writer sent that this contract does not know ("_extra": envelope,
 * "_payload_extra": payload; emit refuses them rather than drop them) and
 * "_kafka". */
static lf_err_t dump_write(const app_t *app, const lf_event_t *ev,
                           const rd_kafka_message_t *rkm, lf_buf_t *line)
{
    lf_buf_reset(line);
    if (lf_json_format_event(ev, line) || !line->len)
        return LF_ERR_NOMEM;
    line->len--; /* the '}' */
    if ((ev->extra && lf_buf_printf(line, ",\"_extra\":%s", ev->extra)) ||
        (ev->payload_extra &&
         lf_buf_printf(line, ",\"_payload_extra\":%s", ev->payload_extra)) ||
        lf_buf_puts(line, ",\"_kafka\":{\"topic\":") ||
        lf_json_append_string(line, app->topic, strlen(app->topic)) ||
        lf_buf_printf(line, ",\"partition\":%d,\"offset\":%" PRId64 "}}\n",
                      (int)rkm->partition, rkm->offset))
        return LF_ERR_NOMEM;
    return fwrite(line->data, 1, line->len, stdout) == line->len ? LF_OK
                                                                 : LF_ERR_IO;
}

/* Decode @p rkm; while the schema registry cannot be asked about its
 * schema id, wait and decode it again (an outage is not a bad message).
 * @returns as lf_codec_decode(), LF_ERR_TEMPORARY only when interrupted. */
static lf_err_t dump_decode(const app_t *app, lf_codec_t *codec,
                            const rd_kafka_message_t *rkm, lf_event_t *ev,
                            char *why, size_t why_size)
{
    char q[600];
    lf_err_t err;

    while ((err = lf_codec_decode(codec, rkm->payload, rkm->len, ev, why,
                                  why_size)) == LF_ERR_TEMPORARY &&
           !lf_cli_signals) {
        LF_LOG(LF_LOG_WARNING,
               "msg=\"message held: schema registry unavailable, retrying\" "
               "topic=%s partition=%d offset=%" PRId64 " error=%s",
               app->topic, (int)rkm->partition, rkm->offset,
               lf_log_quote(why, q, sizeof(q)));
        nap(1000);
    }
    return err;
}

/* Decode, filter and print one message. */
static lf_err_t dump_one(const app_t *app, lf_codec_t *codec,
                         const rd_kafka_message_t *rkm, lf_buf_t *line,
                         dump_count_t *n)
{
    char why[512], q[600];
    lf_event_t ev;
    lf_err_t err = LF_OK;

    n->read++;
    lf_event_init(&ev);
    if ((err = dump_decode(app, codec, rkm, &ev, why, sizeof(why))) ==
        LF_ERR_TEMPORARY)
        return err;
    if (err) {
        /* A few by name; a flood of them is counted in the summary. */
        if (++n->undecodable <= 10)
            LF_LOG(LF_LOG_WARNING,
                   "msg=\"undecodable message skipped%s\" topic=%s "
                   "partition=%d offset=%" PRId64 " error=%s",
                   n->undecodable == 10 ? " (no more of these logged)" : "",
                   app->topic, (int)rkm->partition, rkm->offset,
                   lf_log_quote(why, q, sizeof(q)));
        err = LF_OK;
    } else if (!dump_wanted(&app->u.dump, &ev)) {
        n->filtered++;
    } else {
        err = dump_write(app, &ev, rkm, line);
        n->written++;
    }
    lf_event_clear(&ev);
    return err;
}

/* Every message of @p reader until its end, a signal or an error. */
static lf_err_t dump_loop(const app_t *app, lf_codec_t *codec,
                          lf_topic_reader_t *reader, dump_count_t *n)
{
    lf_progress_t *pr = lf_progress_new(
        "dump", "messages", lf_topic_reader_total(reader), app->progress);
    lf_buf_t line = {0};
    lf_err_t err = LF_OK;
    char q[300];

    while (!err && !lf_topic_reader_done(reader) && !lf_cli_signals) {
        rd_kafka_message_t *rkm = lf_topic_reader_next(reader, 100);
        if (!rkm)
            continue;
        err = dump_one(app, codec, rkm, &line, n);
        rd_kafka_message_destroy(rkm);
        lf_progress_update(pr, n->read);
    }
    lf_progress_update(pr, n->read);
    lf_progress_finish(pr);
    lf_progress_destroy(pr);
    lf_buf_free(&line);
    if (fflush(stdout) == EOF && !err)
        err = LF_ERR_IO;
    if (err == LF_ERR_IO)
        LF_LOG(LF_LOG_ERR, "msg=\"cannot write the dump\" error=%s",
               lf_log_quote(strerror(errno), q, sizeof(q)));
    return !err && lf_cli_signals ? LF_ERR_TEMPORARY : err;
}

/* Start reading the selected partitions. */
static lf_err_t dump_open(app_t *app, lf_topic_part_t **sel, int *nsel,
                          lf_topic_reader_t **reader)
{
    char errstr[1024];
    lf_topic_part_t *parts = NULL;
    int count = 0;
    lf_err_t err;

    if ((err = lf_topic_partitions(app->rk, app->topic, KAFKA_TIMEOUT_MS,
                                   &parts, &count, errstr, sizeof(errstr))))
        return fail(err, "cannot read the topic", errstr);
    if (!(*sel = calloc((size_t)count + 1, sizeof(**sel))))
        err = fail(LF_ERR_NOMEM, "cannot start", "out of memory");
    else if (!(err = dump_select(app, parts, count, *sel, nsel)) &&
             !(*reader = lf_topic_reader_new(app->rk, app->topic, *sel, *nsel,
                                             errstr, sizeof(errstr))))
        err = fail(LF_ERR_KAFKA, "cannot read the topic", errstr);
    free(parts);
    return err;
}

static lf_err_t run_dump(app_t *app)
{
    int64_t started = lf_now_mono_ms();
    lf_topic_reader_t *reader = NULL;
    lf_codec_t *codec = NULL;
    lf_topic_part_t *sel = NULL;
    dump_count_t n = {0};
    int nsel = 0;
    lf_err_t err;

    if ((err = connect_kafka(app)) || (err = new_codec(app, &codec)) ||
        (err = dump_open(app, &sel, &nsel, &reader)))
        goto out;
    err = dump_loop(app, codec, reader, &n);
    LF_LOG(LF_LOG_NOTICE,
           "msg=summary command=dump topic=%s partitions=%d read=%" PRIu64
           " written=%" PRIu64 " filtered_out=%" PRIu64 " undecodable=%" PRIu64
           " complete=%s elapsed_s=%.1f",
           app->topic, nsel, n.read, n.written, n.filtered, n.undecodable,
           lf_topic_reader_done(reader) ? "yes" : "no",
           (double)(lf_now_mono_ms() - started) / 1000.0);
out:
    lf_topic_reader_destroy(reader);
    lf_codec_destroy(codec);
    free(sel);
    return err;
}

/* ---- erase -------------------------------------------------------------- */

static lf_err_t own_erase(void *arg, int opt, const char *val, char *errstr,
                          size_t errstr_size)
{
    app_t *app = arg;
    erase_cfg_t *cfg = &app->u.erase;
    char why[256];

    switch (opt) {
    case OPT_LEAD:
        cfg->lead = val;
        return LF_OK;
    case OPT_REQUEST:
        cfg->request = val;
        return LF_OK;
    case OPT_ACTOR:
        cfg->actor = val;
        return LF_OK;
    case OPT_AT:
        cfg->at_arg = val;
        if (lf_time_parse(val, 0, &cfg->at, why, sizeof(why)))
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size, "--at %s: %s",
                             val, why);
        return LF_OK;
    case OPT_DRY_RUN:
        cfg->dry_run = true;
        return LF_OK;
    default:
        return own_common(app, opt, val, errstr, errstr_size);
    }
}

static const struct option erase_opts[] = {
    {"lead", required_argument, NULL, OPT_LEAD},
    {"request", required_argument, NULL, OPT_REQUEST},
    {"actor", required_argument, NULL, OPT_ACTOR},
    {"at", required_argument, NULL, OPT_AT},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    LONG_PROGRESS,
    {NULL, 0, NULL, 0}};

SUBCOMMAND(erase, "erase", ERASE, ERASE_NOTE "\n" SECRETS_NOTE, 0);

/* The erased event the command line asks for, into cfg->ev. Its event_id
 * is derived from the lead and the request alone: a second run for the
 * same request publishes the same event, which the projector keeps once.
 * NUL separates the parts (neither can hold one: they come from argv). */
static lf_err_t erase_event(erase_cfg_t *cfg, char *errstr, size_t errstr_size)
{
    const char *actor = cfg->actor ? cfg->actor : getenv("USER");
    char id[LF_UUID_STRLEN + 1];
    lf_event_t *ev = &cfg->ev;
    lf_buf_t name = {0};
    bool ok;

    ok = !lf_buf_append(&name, "erased", 7) &&
         !lf_buf_append(&name, cfg->lead, strlen(cfg->lead) + 1) &&
         !lf_buf_puts(&name, cfg->request);
    if (ok)
        lf_uuid_v5(name.data, name.len, id);
    lf_buf_free(&name);
    lf_event_init(ev);
    ev->type = LF_EV_ERASED;
    ev->occurred_at = cfg->at_arg ? cfg->at : lf_now_ms();
    if (!ok || !(ev->event_id = strdup(id)) ||
        !(ev->lead_id = strdup(cfg->lead)) || !(ev->source = strdup(PROG)) ||
        (actor && *actor && !(ev->actor = strdup(actor))) ||
        !(ev->u.erased.request_id = strdup(cfg->request)))
        return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
    return lf_event_validate(ev, errstr, errstr_size);
}

static lf_cli_next_t parse_erase(app_t *app, int argc, char **argv)
{
    erase_cfg_t *cfg = &app->u.erase;
    lf_cli_next_t next;
    char errstr[512];
    lf_err_t err;

    app->producer = true;
    if ((next = lf_cli_parse(&app->cli, &erase_spec, app, argc, argv)) ||
        app->cli.dump) /* -X dump needs nothing else */
        return next;
    if (!cfg->lead)
        return lf_cli_usage_error(&app->cli, "--lead ID is required");
    if (!cfg->request)
        return lf_cli_usage_error(&app->cli, "--request REF is required (the "
                                             "privacy request's reference)");
    if ((err = erase_event(cfg, errstr, sizeof(errstr))))
        return err == LF_ERR_NOMEM
                   ? lf_cli_usage_error(&app->cli, "out of memory")
                   : lf_cli_usage_error(&app->cli, "%s", errstr);
    return LF_CLI_RUN;
}

/* The one delivery report of the erased event. */
typedef struct erase_dr_s {
    bool reported, delivered;
    char reason[512];
    int32_t partition;
    int64_t offset;
} erase_dr_t;

static void erase_delivered(const lf_delivery_t *dr, void *opaque)
{
    erase_dr_t *out = opaque;

    out->reported = true;
    out->delivered = !dr->err;
    out->partition = dr->partition;
    out->offset = dr->offset;
    snprintf(out->reason, sizeof(out->reason), "%s",
             dr->reason ? dr->reason : rd_kafka_err2str(dr->err));
}

/* --dry-run: the event as one emit line; nothing is sent. */
static lf_err_t erase_print(const lf_event_t *ev)
{
    lf_buf_t line = {0};
    lf_err_t err = lf_json_format_event(ev, &line);

    if (!err)
        err = lf_buf_puts(&line, "\n");
    if (!err && (fwrite(line.data, 1, line.len, stdout) != line.len ||
                 fflush(stdout) == EOF))
        err = LF_ERR_IO;
    lf_buf_free(&line);
    return err;
}

/* Send the event and wait for its delivery report; a signal gives up on
 * it (it may still reach the topic: running again is harmless). */
static lf_err_t erase_send(app_t *app, lf_producer_t *p, erase_dr_t *dr)
{
    char errstr[1024];
    lf_err_t err;

    lf_producer_set_delivery_cb(p, erase_delivered, dr);
    lf_producer_set_interrupt(p, &lf_cli_signals);
    if ((err = lf_producer_emit(p, &app->u.erase.ev, errstr, sizeof(errstr))))
        return fail(err == LF_ERR_INVALID ? LF_ERR_INVALID : LF_ERR_KAFKA,
                    "the erased event was not sent", errstr);
    while (lf_producer_flush(p, 500) == LF_ERR_TEMPORARY && !lf_cli_signals)
        ;
    if (!dr->reported)
        lf_producer_purge(p, 5000);
    if (dr->delivered)
        return LF_OK;
    if (lf_cli_signals)
        return fail(LF_ERR_TEMPORARY,
                    "interrupted: the erased event may or may not be in the "
                    "topic; run the same command again",
                    "interrupted");
    return fail(LF_ERR_KAFKA,
                "the erased event was not delivered; run the same command "
                "again (it publishes the same event)",
                dr->reason);
}

static lf_err_t run_erase(app_t *app)
{
    const lf_event_t *ev = &app->u.erase.ev;
    lf_producer_t *p = NULL;
    erase_dr_t dr = {0};
    char errstr[1024], ts[40];
    const char *cv;
    lf_err_t err;

    if (app->u.erase.dry_run)
        return erase_print(ev);
    /* Erased events exist from contract v2 on: a contract.version=1
     * shared with producers of older topics must not stop a privacy
     * request. */
    cv = lf_conf_get(app->conf, LF_CONF_CONTRACT_VERSION);
    if (cv && strcmp(cv, "2")) {
        LF_LOG(LF_LOG_NOTICE,
               "msg=\"erased events are contract v2: %s=%s not used\"",
               LF_CONF_CONTRACT_VERSION, cv);
        if (lf_conf_set(app->conf, LF_CONF_CONTRACT_VERSION, "2", errstr,
                        sizeof(errstr)))
            return fail(LF_ERR_NOMEM, "cannot start the producer", errstr);
    }
    if ((err = lf_producer_create(app->conf, &p, errstr, sizeof(errstr)))) {
        if (err == LF_ERR_INVALID)
            app->blame = BLAME_CONFIG;
        return fail(err, "cannot start the producer", errstr);
    }
    if (!(err = erase_send(app, p, &dr))) {
        printf("published erased event_id=%s lead_id=%s occurred_at=%s "
               "topic=%s partition=%d offset=%" PRId64 "\n",
               ev->event_id, ev->lead_id,
               lf_time_format(ev->occurred_at, ts, sizeof(ts)),
               lf_producer_topic(p), (int)dr.partition, dr.offset);
        if (fflush(stdout) == EOF)
            err = LF_ERR_IO;
        LF_LOG(LF_LOG_NOTICE,
               "msg=summary command=erase event_id=%s topic=%s "
               "partition=%d offset=%" PRId64,
               ev->event_id, lf_producer_topic(p), (int)dr.partition,
               dr.offset);
    }
    lf_producer_destroy(p);
    return err;
}

/* ---- explain ------------------------------------------------------------ */

static lf_err_t own_explain(void *arg, int opt, const char *val, char *errstr,
                            size_t errstr_size)
{
    app_t *app = arg;
    explain_cfg_t *cfg = &app->u.explain;

    switch (opt) {
    case OPT_LEAD:
        cfg->lead = val;
        return LF_OK;
    case OPT_JSON:
        cfg->json = true;
        return LF_OK;
    default:
        return own_common(app, opt, val, errstr, errstr_size);
    }
}

static const struct option explain_opts[] = {
    {"lead", required_argument, NULL, OPT_LEAD},
    {"json", no_argument, NULL, OPT_JSON},
    LONG_PROGRESS,
    {NULL, 0, NULL, 0}};

SUBCOMMAND(explain, "explain", EXPLAIN, EXPLAIN_NOTE "\n" SECRETS_NOTE, 0);

static lf_cli_next_t parse_explain(app_t *app, int argc, char **argv)
{
    lf_cli_next_t next;

    if ((next = lf_cli_parse(&app->cli, &explain_spec, app, argc, argv)) ||
        app->cli.dump) /* -X dump needs nothing else */
        return next;
    if (!app->u.explain.lead)
        return lf_cli_usage_error(&app->cli, "--lead ID is required");
    return LF_CLI_RUN;
}

/* A timestamp column as RFC 3339 in UTC, milliseconds (as events carry). */
#define TS(col)                                                                \
    "to_char(" col " AT TIME ZONE 'UTC', "                                     \
    "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* The person of surviving lead $1: it and every lead merged into it. */
#define PERSON                                                                 \
    "WITH person AS (SELECT $1::text AS lead_id UNION "                        \
    "SELECT lead_id FROM funnel.merges WHERE surviving_lead_id = $1::text) "

/* Each event's mark: voided (by whom, why), whether a merged or voided
 * event counts (else the anomaly's reason), its state anomalies and
 * conflicts (its event_id sent again with other content: never applied).
 * A merge that does not count without an anomaly repeats the merge that
 * counts. */
#define EVENT_MARK                                                             \
    "nullif(concat_ws('; ', "                                                  \
    "CASE WHEN v.event_id IS NOT NULL THEN "                                   \
    "  format('voided by %s (%s)', v.voided_by, v.reason) END, "               \
    "CASE WHEN e.type = 'merged' THEN CASE WHEN m.event_id IS NOT NULL "       \
    "  THEN format('merge: counts (into %s)', e.payload->>'into_lead_id') "    \
    "  ELSE format('merge: does not count (%s)', coalesce(an.merge, "          \
    "    'a repeat of the merge that counts')) END END, "                      \
    "CASE WHEN e.type = 'voided' THEN CASE WHEN tv.event_id IS NULL "          \
    "  THEN format('void: does not count (%s)', coalesce(an.void, "            \
    "    'no anomaly recorded')) "                                             \
    "  WHEN tv.voided_by = e.event_id "                                        \
    "  THEN format('void: counts (voids %s)', tv.event_id) "                   \
    "  ELSE format('void: counts (voids %s, voided first by %s)', "            \
    "    tv.event_id, tv.voided_by) END END, "                                 \
    "CASE WHEN e.type = 'erased' THEN "                                        \
    "  format('erasure (request %s)', e.payload->>'request_id') END, "         \
    "an.state), '')"

/* The sections of an explanation, each one query of surviving lead $1. */
enum { X_LEADS, X_ERASURES, X_LEAD, X_EVENTS, X_HISTORY, X__COUNT };

/* clang-format off */
static const char *const explain_sql[X__COUNT] = {
    [X_LEADS] = PERSON "SELECT lead_id FROM person "
                       "ORDER BY lead_id <> $1::text, lead_id COLLATE \"C\"",
    [X_ERASURES] = PERSON "SELECT r.request_id, "
    TS("r.erased_at") " AS erased_at, r.event_id "
    "FROM funnel.erasures r JOIN person p ON p.lead_id = r.pseudonym "
    "ORDER BY r.erased_at, r.event_id COLLATE \"C\"",
    [X_LEAD] = "SELECT stage, cycle, " TS("stage_entered_at") " AS "
               "stage_entered_at FROM funnel.leads WHERE lead_id = $1::text",
    [X_EVENTS] = PERSON "SELECT " TS("e.occurred_at") " AS occurred_at, "
    "e.event_id, e.lead_id, e.type, " EVENT_MARK " AS mark "
    "FROM funnel.events e JOIN person p USING (lead_id) "
    "LEFT JOIN funnel.voided_events v ON v.event_id = e.event_id "
    "LEFT JOIN funnel.merges m ON m.event_id = e.event_id "
    "LEFT JOIN funnel.voided_events tv ON e.type = 'voided' "
    "  AND tv.event_id = e.payload->>'voided_event_id' "
    "  AND tv.surviving_lead_id = $1::text "
    "LEFT JOIN LATERAL (SELECT "
    "  string_agg(a.reason, '; ' ORDER BY a.reason) "
    "    FILTER (WHERE a.kind = 'merge') AS merge, "
    "  string_agg(a.reason, '; ' ORDER BY a.reason) "
    "    FILTER (WHERE a.kind = 'void') AS void, "
    "  string_agg(CASE a.kind WHEN 'state' THEN 'anomaly: ' "
    "    ELSE 'conflict: ' END || a.reason, '; ' ORDER BY a.kind DESC, "
    "    a.reason) "
    "    FILTER (WHERE a.kind IN ('state', 'conflict')) AS state "
    "  FROM funnel.anomalies a WHERE a.event_id = e.event_id) an ON true "
    "ORDER BY e.occurred_at, e.event_id COLLATE \"C\"",
    [X_HISTORY] = "SELECT visit, cycle, stage, " TS("entered_at") " AS "
    "entered_at, " TS("exited_at") " AS exited_at, entered_by, exit_reason "
    "FROM funnel.stage_history WHERE lead_id = $1::text ORDER BY visit",
};

/* The merge that counts of lead $1, if it was merged. */
static const char merge_sql[] =
    "SELECT into_lead_id, surviving_lead_id, " TS("merged_at") " AS merged_at, "
    "event_id FROM funnel.merges WHERE lead_id = $1::text";
/* clang-format on */

/* What explain found; the results are cleared by explain_free(). */
typedef struct explain_s {
    char pseudonym[LF_PSEUDONYM_LEN + 1]; /* "" unless the lead was erased */
    bool keyed;                           /* a pseudonym key is configured */
    const char *id;        /* the lead explained: --lead or its pseudonym */
    PGresult *merge;       /* its funnel.merges row, if it was merged */
    const char *surviving; /* in merge, or id */
    PGresult *res[X__COUNT];
} explain_t;

static void explain_free(explain_t *x)
{
    PQclear(x->merge);
    for (int i = 0; i < X__COUNT; i++)
        PQclear(x->res[i]);
}

/* Was --lead erased? Its pseudonym under any key of the ring (an older
 * key made the pseudonyms of people erased before a rotation) is then in
 * funnel.erased_leads, and x->id becomes it. */
static lf_err_t explain_erased(app_t *app, const lf_pseudonym_t *ps,
                               explain_t *x, char *errstr, size_t errstr_size)
{
    const char *lead = app->u.explain.lead;
    const char *params[1] = {x->pseudonym};
    PGresult *res = NULL;
    lf_err_t err = LF_OK;

    for (size_t k = 0; !err && k < lf_pseudonym_keys(ps); k++) {
        lf_pseudonym_of(ps, k, lead, strlen(lead), x->pseudonym);
        if ((err = lf_pg_query(app->conn,
                               "SELECT 1 FROM funnel.erased_leads "
                               "WHERE pseudonym = $1::text",
                               1, params, "reading funnel.erased_leads", &res,
                               errstr, errstr_size)))
            break;
        if (PQntuples(res)) {
            x->id = x->pseudonym;
            PQclear(res);
            return LF_OK;
        }
        PQclear(res);
    }
    x->pseudonym[0] = '\0';
    return err;
}

/* Was the person explained erased: asked by its original id (explained
 * through its pseudonym), or by a pseudonym funnel.erasures records? */
static bool explained_erased(const explain_t *x)
{
    return x->pseudonym[0] || PQntuples(x->res[X_ERASURES]) > 0;
}

/* The lead to explain (--lead, or its pseudonym if it was erased) and its
 * surviving lead (itself unless funnel.merges says it was merged). */
static lf_err_t explain_resolve(app_t *app, explain_t *x, char *errstr,
                                size_t errstr_size)
{
    lf_pseudonym_t *ps = NULL;
    const char *params[1];
    lf_err_t err;

    x->id = app->u.explain.lead;
    if ((err = lf_pseudonym_from_conf(app->conf, &ps, errstr, errstr_size))) {
        app->blame = err == LF_ERR_NOMEM ? BLAME_DATA : BLAME_CONFIG;
        return err;
    }
    x->keyed = ps != NULL;
    if (ps && !lf_pseudonym_is(x->id))
        err = explain_erased(app, ps, x, errstr, errstr_size);
    lf_pseudonym_destroy(ps);
    params[0] = x->id;
    if (err || (err = lf_pg_query(app->conn, merge_sql, 1, params,
                                  "reading funnel.merges", &x->merge, errstr,
                                  errstr_size)))
        return err;
    x->surviving = PQntuples(x->merge) ? PQgetvalue(x->merge, 0, 1) : x->id;
    return LF_OK;
}

/* Every section, in one snapshot: the projector may be writing. */
static lf_err_t explain_query(app_t *app, explain_t *x, char *errstr,
                              size_t errstr_size)
{
    lf_err_t err;

    if ((err = lf_pg_exec(app->conn,
                          "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                          "starting a snapshot", errstr, errstr_size)) ||
        (err = explain_resolve(app, x, errstr, errstr_size)))
        return err;
    for (int i = 0; !err && i < X__COUNT; i++) {
        const char *params[1] = {x->surviving};
        err = lf_pg_query(app->conn, explain_sql[i], 1, params,
                          "reading the lead's events and history", &x->res[i],
                          errstr, errstr_size);
    }
    if (!err)
        err = lf_pg_exec(app->conn, "COMMIT", "ending the snapshot", errstr,
                         errstr_size);
    return err;
}

/* @p s for a terminal: tabs and line breaks become spaces, so a free-text
 * reason cannot break the columns; other control characters (C0, DEL and
 * C1: a producer's terminal escapes) become '?'. */
static void put_term(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (lf_utf8_is_c1(s)) {
            putchar('?');
            s++;
        } else if (c == '\t' || c == '\n' || c == '\r')
            putchar(' ');
        else
            putchar(c < 0x20 || c == 0x7f ? '?' : c);
    }
}

/* One value of a tab-separated line (put_term()); NULL is "-". */
static void put_cell(const PGresult *res, int r, int c)
{
    put_term(PQgetisnull(res, r, c) ? "-" : PQgetvalue(res, r, c));
}

/* The rows under a header of the column names, tab-separated. */
static void print_table(const PGresult *res)
{
    for (int c = 0; c < PQnfields(res); c++)
        printf("%s%s", c ? "\t" : "", PQfname(res, c));
    putchar('\n');
    for (int r = 0; r < PQntuples(res); r++) {
        for (int c = 0; c < PQnfields(res); c++) {
            if (c)
                putchar('\t');
            put_cell(res, r, c);
        }
        putchar('\n');
    }
}

/* Who the lead is: merged, erased, the person's leads, where it stands. */
static void explain_print_head(const app_t *app, const explain_t *x)
{
    const PGresult *leads = x->res[X_LEADS], *er = x->res[X_ERASURES];
    const PGresult *lead = x->res[X_LEAD];

    /* (ids and references are a producer's text: put_term()) */
    fputs("lead ", stdout);
    put_term(app->u.explain.lead);
    putchar('\n');
    if (x->pseudonym[0])
        printf("  erased: explaining its pseudonym %s (the original id is "
               "not in the database)\n",
               x->pseudonym);
    if (PQntuples(x->merge)) {
        fputs("  merged into ", stdout);
        put_term(PQgetvalue(x->merge, 0, 0));
        fputs(" by ", stdout);
        put_term(PQgetvalue(x->merge, 0, 3));
        printf(" at %s; its surviving lead is ", PQgetvalue(x->merge, 0, 2));
        put_term(x->surviving);
        putchar('\n');
    }
    fputs("surviving lead ", stdout);
    put_term(x->surviving);
    fputs("\n  leads of the person:", stdout);
    for (int r = 0; r < PQntuples(leads); r++) {
        putchar(' ');
        put_term(PQgetvalue(leads, r, 0));
    }
    putchar('\n');
    for (int r = 0; r < PQntuples(er); r++) {
        fputs("  erased by request ", stdout);
        put_term(PQgetvalue(er, r, 0));
        printf(" at %s (event ", PQgetvalue(er, r, 1));
        put_term(PQgetvalue(er, r, 2));
        fputs(")\n", stdout);
    }
    if (PQntuples(lead))
        printf("  stage %s, cycle %s, since %s\n", PQgetvalue(lead, 0, 0),
               PQgetvalue(lead, 0, 1), PQgetvalue(lead, 0, 2));
    else
        printf("  no row in funnel.leads (never captured, or every capture "
               "voided)\n");
}

static void explain_print(const app_t *app, const explain_t *x)
{
    explain_print_head(app, x);
    printf("\nevents in the order applied (occurred_at, event_id):\n");
    print_table(x->res[X_EVENTS]);
    fputs("\nstage history of ", stdout);
    put_term(x->surviving);
    fputs(":\n", stdout);
    print_table(x->res[X_HISTORY]);
}

/* One cell as JSON: integers as numbers, NULL as null. */
static json_t *cell_json(const PGresult *res, int r, int c)
{
    if (PQgetisnull(res, r, c))
        return json_null();
    if (PQftype(res, c) == OID_INT4)
        return json_integer(strtoll(PQgetvalue(res, r, c), NULL, 10));
    return json_string(PQgetvalue(res, r, c));
}

/* The rows of @p res as an array of objects (@p first: the first row's
 * object, or null). NULL when out of memory. */
static json_t *rows_json(const PGresult *res, bool first)
{
    json_t *a = json_array();

    for (int r = 0; a && r < PQntuples(res); r++) {
        json_t *o = json_object();
        for (int c = 0; o && c < PQnfields(res); c++)
            if (json_object_set_new(o, PQfname(res, c), cell_json(res, r, c)))
                json_decref(o), o = NULL;
        if (!o || json_array_append_new(a, o))
            json_decref(a), a = NULL;
    }
    if (first && a) {
        json_t *o = json_incref(json_array_get(a, 0));
        json_decref(a);
        return o ? o : json_null();
    }
    return a;
}

/* The same as explain_print(), as one JSON object. */
static lf_err_t explain_print_json(const app_t *app, const explain_t *x)
{
    json_t *leads = json_array(), *o;
    int rc;

    for (int r = 0; leads && r < PQntuples(x->res[X_LEADS]); r++)
        json_array_append_new(leads,
                              json_string(PQgetvalue(x->res[X_LEADS], r, 0)));
    o = json_pack("{s:s, s:o, s:s, s:o, s:s, s:o, s:o, s:o, s:o, s:o}",
                  "lead_id", app->u.explain.lead, "erased",
                  json_boolean(explained_erased(x)), "explained_lead_id", x->id,
                  "merged", rows_json(x->merge, true), "surviving_lead_id",
                  x->surviving, "leads", leads, "erasures",
                  rows_json(x->res[X_ERASURES], false), "lead",
                  rows_json(x->res[X_LEAD], true), "events",
                  rows_json(x->res[X_EVENTS], false), "stage_history",
                  rows_json(x->res[X_HISTORY], false));
    if (!o)
        return LF_ERR_NOMEM;
    rc = json_dumpf(o, stdout, JSON_PRESERVE_ORDER | JSON_INDENT(2));
    json_decref(o);
    return rc || putchar('\n') == EOF ? LF_ERR_IO : LF_OK;
}

static lf_err_t run_explain(app_t *app)
{
    const char *lead = app->u.explain.lead;
    explain_t x = {0};
    char errstr[1024];
    lf_err_t err;

    if ((err = connect_db(app)))
        return err;
    if ((err = explain_query(app, &x, errstr, sizeof(errstr)))) {
        fail(err, "cannot explain the lead", errstr);
    } else if (!PQntuples(x.res[X_EVENTS])) {
        snprintf(errstr, sizeof(errstr),
                 "lead %s has no events in funnel.events%s", lead,
                 x.keyed ? " (if it was erased, it was with another key "
                           "than -X pseudonym.key.file's: give the "
                           "projector's)"
                         : " (if it was erased, its events are under its "
                           "pseudonym: give the key with -X "
                           "pseudonym.key.file=PATH)");
        err = fail(LF_ERR_INVALID, "no such lead", errstr);
    } else {
        err = app->u.explain.json ? explain_print_json(app, &x)
                                  : (explain_print(app, &x), LF_OK);
        if (fflush(stdout) == EOF && !err)
            err = LF_ERR_IO;
        LF_LOG(LF_LOG_NOTICE,
               "msg=summary command=explain events=%d visits=%d erased=%s",
               PQntuples(x.res[X_EVENTS]), PQntuples(x.res[X_HISTORY]),
               explained_erased(&x) ? "yes" : "no");
    }
    explain_free(&x);
    return err;
}

/* ---- main --------------------------------------------------------------- */

typedef struct cmd_s {
    const char *name;
    const lf_cli_spec_t *spec;
    lf_cli_next_t (*parse)(app_t *app, int argc, char **argv);
    lf_err_t (*run)(app_t *app);
} cmd_t;

static const cmd_t cmds[] = {
    {"rewind", &rewind_spec, parse_rewind, run_rewind},
    {"rebuild", &rebuild_spec, parse_rebuild, run_rebuild},
    {"diff", &diff_spec, parse_diff, run_diff},
    {"promote", &promote_spec, parse_promote, run_promote},
    {"dead-letters", &dead_spec, parse_dead, run_dead},
    {"dump", &dump_spec, parse_dump, run_dump},
    {"erase", &erase_spec, parse_erase, run_erase},
    {"explain", &explain_spec, parse_explain, run_explain},
};
#define N_CMDS (sizeof(cmds) / sizeof(cmds[0]))

/* The whole program's usage: every command (synopsis, options, notes; the
 * specs are the one description), then the shared options. */
static void usage(FILE *fp)
{
    static const char *const helps[N_CMDS] = {
        REWIND_HELP, REBUILD_HELP, DIFF_HELP,  PROMOTE_HELP,
        DEAD_HELP,   DUMP_HELP,    ERASE_HELP, EXPLAIN_HELP};
    static const char *const notes[N_CMDS] = {
        REWIND_NOTE, REBUILD_NOTE, DIFF_NOTE,  PROMOTE_NOTE,
        "",          DUMP_NOTE,    ERASE_NOTE, EXPLAIN_NOTE};
    lf_buf_t syn = {0};
    lf_cli_spec_t spec = {.prog = PROG,
                          .shared = SHARED_OPTS,
                          .own_help = PROGRESS_HELP,
                          .notes = SECRETS_NOTE "\n" EXIT_NOTE};
    lf_cli_t cli = {.spec = &spec};

    lf_buf_puts(&syn, PROG " COMMAND [options]\n"
                           "On-call replay of the lead event stream and the "
                           "funnel model.\n\nCommands:\n");
    for (size_t i = 0; i < N_CMDS; i++)
        lf_buf_printf(&syn, "\n%s\n%s%s%s", cmds[i].spec->synopsis, helps[i],
                      *notes[i] ? "\n" : "", notes[i]);
    lf_buf_puts(&syn, "\nOptions of every command (-h after a command: its "
                      "help):");
    spec.synopsis = syn.data ? syn.data : PROG " COMMAND [options]";
    lf_cli_usage(&cli, fp);
    lf_buf_free(&syn);
}

/* The command argv[1] names. @returns LF_CLI_RUN with *cmd set, or
 * LF_CLI_DONE (--help, --version) or LF_CLI_USAGE, printed. */
static lf_cli_next_t pick_command(int argc, char **argv, const cmd_t **cmd)
{
    const char *name = argc > 1 ? argv[1] : NULL;

    if (!name) {
        fprintf(stderr, PROG ": a command is required\n\n");
        usage(stderr);
        return LF_CLI_USAGE;
    }
    if (!strcmp(name, "-h") || !strcmp(name, "--help") ||
        !strcmp(name, "help")) {
        usage(stdout);
        return LF_CLI_DONE;
    }
    if (!strcmp(name, "-V") || !strcmp(name, "--version")) {
        lf_cli_version(PROG);
        return LF_CLI_DONE;
    }
    for (size_t i = 0; i < N_CMDS; i++)
        if (!strcmp(name, cmds[i].name)) {
            *cmd = &cmds[i];
            return LF_CLI_RUN;
        }
    if (*name == '-')
        fprintf(stderr,
                PROG ": %s: a command comes first (the shared options, "
                     "-X dump too, follow it)\n\n",
                name);
    else
        fprintf(stderr, PROG ": unknown command \"%s\"\n\n", name);
    usage(stderr);
    return LF_CLI_USAGE;
}

/* The exit code of a command that ran (sysexits, listed in --help). */
static int exit_code(const app_t *app, lf_err_t err)
{
    if (!err)
        return app->differ ? 1 : LF_EX_OK;
    if (app->blame == BLAME_USAGE)
        return LF_EX_USAGE;
    if (app->blame == BLAME_CONFIG)
        return LF_EX_CONFIG;
    switch (err) {
    case LF_ERR_INVALID:
        return LF_EX_DATAERR;
    case LF_ERR_TEMPORARY:
        return LF_EX_TEMPFAIL;
    case LF_ERR_PG:
        /* Not "unavailable": the server answered, the role may not. */
        if (!strcmp(lf_pg_last_sqlstate(), "42501")) {
            LF_LOG(LF_LOG_ERR,
                   "msg=\"the database role lacks a privilege for this\" "
                   "hint=\"rebuild and promote create, rename and drop "
                   "schemas: run them as the role that owns schema funnel "
                   "(the one that applied the migrations); the other "
                   "commands need leadflow_projector\"");
            return LF_EX_NOPERM;
        }
        return LF_EX_UNAVAILABLE;
    case LF_ERR_KAFKA:
        return LF_EX_UNAVAILABLE;
    case LF_ERR_IO:
        return LF_EX_IOERR;
    case LF_ERR_CONFIG:
        return LF_EX_CONFIG;
    default:
        return LF_EX_SOFTWARE;
    }
}

static void app_close(app_t *app, const cmd_t *cmd)
{
    if (app->rk) {
        rd_kafka_consumer_close(app->rk);
        rd_kafka_destroy(app->rk);
    }
    PQfinish(app->conn);
    lf_conf_destroy(app->conf);
    lf_cli_free(&app->cli);
    if (cmd && cmd->run == run_dead)
        free(app->u.dead.ids);
    if (cmd && cmd->run == run_dump) {
        free(app->u.dump.leads);
        free(app->u.dump.wanted);
    }
    if (cmd && cmd->run == run_erase)
        lf_event_clear(&app->u.erase.ev);
}

int main(int argc, char **argv)
{
    app_t app = {.lock_timeout_ms = 30000, .progress = LF_PROGRESS_AUTO};
    const cmd_t *cmd = NULL;
    lf_cli_next_t next;
    lf_err_t err = LF_OK;
    int rc;

    lf_log_init("replay");
    /* A closed pipe (dump | head) is a write error: exit 74, said. */
    lf_cli_catch_signals(true);
    lf_pg_set_stop(&lf_cli_signals); /* a signal ends a wait for locks */
    if ((next = pick_command(argc, argv, &cmd)) == LF_CLI_RUN)
        /* The command's own argv: getopt starts after the name. */
        next = cmd->parse(&app, argc - 1, argv + 1);
    if (next == LF_CLI_RUN && !(err = settings(&app))) {
        if (app.cli.dump)
            lf_conf_dump(app.conf, stdout);
        else
            err = cmd->run(&app);
        /* The commands that print a report (rewind and retry with
         * --dry-run, diff, explain, list, dump) end with exit 74 when it
         * was not written, whatever they did before. */
        if ((!err || err == LF_ERR_IO) && lf_cli_stdout_lost(PROG))
            err = LF_ERR_IO;
    }
    if (next == LF_CLI_DONE)
        rc = lf_cli_stdout_lost(PROG) ? LF_EX_IOERR : LF_EX_OK;
    else if (next == LF_CLI_USAGE)
        rc = LF_EX_USAGE;
    else
        rc = exit_code(&app, err);
    app_close(&app, cmd);
    return rc;
}
