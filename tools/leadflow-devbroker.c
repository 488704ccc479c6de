/* leadflow-devbroker: a Kafka-protocol broker for development and tests, built
 * on librdkafka's mock cluster, with fault injection commands read on stdin. */

/*
 * There is no Kafka broker packaged for Debian, so the dev stack uses the mock
 * cluster that ships inside librdkafka (rdkafka_mock.h): real Kafka protocol on
 * loopback TCP, good enough for kcat, librdkafka and kafka-python clients,
 * including consumer groups, offset commits and the idempotent producer.
 *
 * Protocol on stdout: the first line is the bootstrap.servers list. After
 * that, every command line read on stdin gets exactly one answer line that
 * starts with "ok" or "error: ", flushed at once, so a controlling script can
 * write a command and read one line back. Diagnostics go to stderr only.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getopt_long, sigaction, strcasecmp, strtok_r */
#endif

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lf_cli.h"
#include "lf_common.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define PROG "leadflow-devbroker"

#define DEFAULT_TOPIC      "lead-events"
#define DEFAULT_PARTITIONS 4
#define MAX_BROKERS        32
#define MAX_PARTITIONS     10000
#define MAX_TOPICS         64
#define MAX_ERROR_COUNT    100000
#define MAX_RTT_MS         600000
#define TOPIC_NAME_MAX     249 /* Kafka's own limit */
#define LINE_MAX_          1024
#define MAX_TOKENS         8
#define POLL_MS            200

/* ---------------------------------------------------------------------------
 * Logging: one line per event on stderr, key=value, like the other programs.
 */

static int debug_enabled;

static void logmsg(const char *level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void logmsg(const char *level, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, PROG ": level=%s ", level);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Copies s into out (always terminated) for use inside a quoted key=value
 * field: '"' and '\\' are escaped, control characters become '?'.
 * Returns out. */
static const char *esc(const char *s, char *out, size_t size)
{
    size_t of = 0;

    for (; *s && of + 3 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            out[of++] = '\\';
        out[of++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    out[of] = '\0';
    return out;
}

/* librdkafka calls this from its own threads (the mock cluster thread among
 * them): it must not call back into librdkafka, and only writes stderr. */
static void on_rdkafka_log(const rd_kafka_t *rk, int level, const char *fac,
                           const char *buf)
{
    static const char *const names[] = {"emerg",   "alert",  "crit", "err",
                                        "warning", "notice", "info", "debug"};
    char ebuf[1024];

    (void)rk;
    /* The handle only hosts the cluster and has no bootstrap.servers on
     * purpose (see main()); librdkafka's warning about it is noise. */
    if (!strcmp(fac, "CONFWARN") && strstr(buf, "bootstrap.servers"))
        return;
    if (level < 0 || level > 7)
        level = 7;
    fprintf(stderr, PROG ": level=%s src=librdkafka fac=%s msg=\"%s\"\n",
            names[level], fac, esc(buf, ebuf, sizeof(ebuf)));
}

/* ---------------------------------------------------------------------------
 * Parsing helpers.
 */

/* Parses all of s as a base-10 integer within [min, max] into *out.
 * Returns 0 on success, -1 (and leaves *out alone) otherwise. */
static int parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    if (!s || !*s)
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Checks a topic name against Kafka's rules (1..249 of [A-Za-z0-9._-], not
 * "." or ".."): the mock would accept anything, a real cluster would not, and
 * the dev stack should not let a name through that fails in production.
 * Returns 0 if valid, else -1 with a sentence in errstr. */
static int topic_name_check(const char *name, char *errstr, size_t errstr_size)
{
    size_t len = strlen(name);
    const char *p;

    if (len == 0 || len > TOPIC_NAME_MAX) {
        snprintf(errstr, errstr_size,
                 "topic name must be 1 to %d characters long, got %zu",
                 TOPIC_NAME_MAX, len);
        return -1;
    }
    if (!strcmp(name, ".") || !strcmp(name, "..")) {
        snprintf(errstr, errstr_size, "topic name \"%s\" is not allowed", name);
        return -1;
    }
    for (p = name; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' ||
              *p == '-')) {
            snprintf(errstr, errstr_size,
                     "topic name \"%s\": character '%c' is not allowed "
                     "(use letters, digits, '.', '_' and '-')",
                     name, *p);
            return -1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Kafka API keys and error names for the "error" command.
 */

struct api_key {
    const char *name;
    int16_t key;
    int injectable; /* does the 2.0.2 mock handler consult the error stack? */
};

/* Only the APIs the librdkafka 2.0.2 mock cluster implements. Its Metadata
 * handler never pops the error stack (see rdkafka_mock_handlers.c), so an
 * error pushed for Metadata would sit there forever: we refuse it instead. */
static const struct api_key api_keys[] = {
    {"Produce", 0, 1},          {"Fetch", 1, 1},
    {"ListOffsets", 2, 1},      {"Metadata", 3, 0},
    {"OffsetCommit", 8, 1},     {"OffsetFetch", 9, 1},
    {"FindCoordinator", 10, 1}, {"JoinGroup", 11, 1},
    {"Heartbeat", 12, 1},       {"LeaveGroup", 13, 1},
    {"SyncGroup", 14, 1},       {"ApiVersions", 18, 1},
    {"InitProducerId", 22, 1},  {"AddPartitionsToTxn", 24, 1},
    {"AddOffsetsToTxn", 25, 1}, {"EndTxn", 26, 1},
    {"TxnOffsetCommit", 28, 1},
};

#define API_KEY_CNT (sizeof(api_keys) / sizeof(api_keys[0]))

/* Finds an API by name (case-insensitive) or numeric key.
 * Returns the table entry or NULL. */
static const struct api_key *api_key_find(const char *name)
{
    size_t i;
    long num;
    int by_num = parse_long(name, 0, INT16_MAX, &num) == 0;

    for (i = 0; i < API_KEY_CNT; i++) {
        if (by_num ? api_keys[i].key == num
                   : !strcasecmp(api_keys[i].name, name))
            return &api_keys[i];
    }
    if (!by_num && !strcasecmp(name, "ApiVersion")) /* librdkafka's name */
        return api_key_find("ApiVersions");
    return NULL;
}

/* Writes "Produce, Fetch, ..." into buf. */
static void api_key_list(char *buf, size_t size, int injectable_only)
{
    size_t i, of = 0;

    buf[0] = '\0';
    for (i = 0; i < API_KEY_CNT && of < size; i++) {
        int r;
        if (injectable_only && !api_keys[i].injectable)
            continue;
        r = snprintf(buf + of, size - of, "%s%s", of ? ", " : "",
                     api_keys[i].name);
        if (r < 0)
            break;
        of += (size_t)r;
    }
}

/* Maps an error name to its code: "REQUEST_TIMED_OUT",
 * "RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT", "request_timed_out", "_TRANSPORT",
 * "TRANSPORT" or a number. An exact name wins over one whose leading '_'
 * was dropped; no two names in librdkafka 2.0.2 collide once it is dropped.
 * Returns 0 and sets *errp, or -1 if the name is unknown. */
static int err_lookup(const char *name, rd_kafka_resp_err_t *errp)
{
    const struct rd_kafka_err_desc *descs;
    size_t cnt, i;
    const char *want = name;
    long num;
    int pass;

    rd_kafka_get_err_descs(&descs, &cnt);

    if (!parse_long(name, INT16_MIN, INT16_MAX, &num)) {
        for (i = 0; i < cnt; i++) {
            if (descs[i].name && descs[i].code == (rd_kafka_resp_err_t)num) {
                *errp = descs[i].code;
                return 0;
            }
        }
        return -1;
    }

    if (!strncasecmp(want, "RD_KAFKA_RESP_ERR_", 18))
        want += 18;

    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < cnt; i++) {
            const char *have = descs[i].name;
            const char *w = want;
            if (!have)
                continue;
            if (pass == 1) {
                if (*have == '_')
                    have++;
                if (*w == '_')
                    w++;
            }
            if (!strcasecmp(have, w)) {
                *errp = descs[i].code;
                return 0;
            }
        }
    }
    return -1;
}

/* ---------------------------------------------------------------------------
 * Commands read on stdin. Each handler returns 0 for "ok" or -1 with the
 * reason in errstr; "help" may fill okmsg to say more than "ok".
 */

struct ctx {
    rd_kafka_mock_cluster_t *mcluster;
    int broker_cnt;
};

typedef int(cmd_fn_t)(struct ctx *ctx, int argc, char **argv, char *okmsg,
                      size_t okmsg_size, char *errstr, size_t errstr_size);

struct cmd {
    const char *name;
    int argc; /* arguments after the name */
    const char *args;
    const char *help;
    cmd_fn_t *fn;
};

/* Defined after the command table, which needs the handlers first. */
static void cmd_list(char *buf, size_t size);

/* Parses a broker id: 1..broker_cnt, or "all"/-1 for every broker when
 * allow_all. Returns 0 or -1 with errstr filled. */
static int broker_parse(const struct ctx *ctx, const char *s, int allow_all,
                        int32_t *idp, char *errstr, size_t errstr_size)
{
    long id;

    if (allow_all && (!strcasecmp(s, "all") || !strcmp(s, "-1"))) {
        *idp = -1;
        return 0;
    }
    if (parse_long(s, 1, ctx->broker_cnt, &id)) {
        snprintf(errstr, errstr_size,
                 "broker \"%s\": expected a broker id from 1 to %d%s", s,
                 ctx->broker_cnt, allow_all ? " or \"all\"" : "");
        return -1;
    }
    *idp = (int32_t)id;
    return 0;
}

static int cmd_ping(struct ctx *ctx, int argc, char **argv, char *okmsg,
                    size_t okmsg_size, char *errstr, size_t errstr_size)
{
    (void)ctx, (void)argc, (void)argv, (void)okmsg, (void)okmsg_size;
    (void)errstr, (void)errstr_size;
    return 0;
}

/* The answer stays on one line, like every other answer, so that a script
 * reading one line per command never gets out of step. */
static int cmd_help(struct ctx *ctx, int argc, char **argv, char *okmsg,
                    size_t okmsg_size, char *errstr, size_t errstr_size)
{
    (void)ctx, (void)argc, (void)argv, (void)errstr, (void)errstr_size;
    cmd_list(okmsg, okmsg_size);
    return 0;
}

static int set_updown(struct ctx *ctx, char **argv, int up, char *errstr,
                      size_t errstr_size)
{
    int32_t id;
    rd_kafka_resp_err_t err;

    if (broker_parse(ctx, argv[1], 1, &id, errstr, errstr_size))
        return -1;
    err = up ? rd_kafka_mock_broker_set_up(ctx->mcluster, id)
             : rd_kafka_mock_broker_set_down(ctx->mcluster, id);
    if (err) {
        snprintf(errstr, errstr_size, "broker %s: %s", argv[1],
                 rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

static int cmd_down(struct ctx *ctx, int argc, char **argv, char *okmsg,
                    size_t okmsg_size, char *errstr, size_t errstr_size)
{
    (void)argc, (void)okmsg, (void)okmsg_size;
    return set_updown(ctx, argv, 0, errstr, errstr_size);
}

static int cmd_up(struct ctx *ctx, int argc, char **argv, char *okmsg,
                  size_t okmsg_size, char *errstr, size_t errstr_size)
{
    (void)argc, (void)okmsg, (void)okmsg_size;
    return set_updown(ctx, argv, 1, errstr, errstr_size);
}

static int cmd_rtt(struct ctx *ctx, int argc, char **argv, char *okmsg,
                   size_t okmsg_size, char *errstr, size_t errstr_size)
{
    int32_t id;
    long ms;
    rd_kafka_resp_err_t err;

    (void)argc, (void)okmsg, (void)okmsg_size;
    if (broker_parse(ctx, argv[1], 1, &id, errstr, errstr_size))
        return -1;
    if (parse_long(argv[2], 0, MAX_RTT_MS, &ms)) {
        snprintf(errstr, errstr_size,
                 "rtt \"%s\": expected milliseconds from 0 to %d", argv[2],
                 MAX_RTT_MS);
        return -1;
    }
    err = rd_kafka_mock_broker_set_rtt(ctx->mcluster, id, (int)ms);
    if (err) {
        snprintf(errstr, errstr_size, "broker %s: %s", argv[1],
                 rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

/* Looks up the API argument of "error" and "clear". */
static const struct api_key *api_arg(const char *s, char *errstr,
                                     size_t errstr_size)
{
    const struct api_key *api = api_key_find(s);
    char list[512];

    if (!api) {
        api_key_list(list, sizeof(list), 1);
        snprintf(errstr, errstr_size,
                 "unknown or unsupported API \"%s\" (the mock serves: %s)", s,
                 list);
        return NULL;
    }
    if (!api->injectable) {
        snprintf(errstr, errstr_size,
                 "%s: librdkafka %s's mock cluster never injects errors "
                 "into %s responses",
                 api->name, rd_kafka_version_str(), api->name);
        return NULL;
    }
    return api;
}

/* The errors go on the cluster-wide stack of that API: the next COUNT
 * requests of that type, to whichever broker, get the error. */
static int cmd_error(struct ctx *ctx, int argc, char **argv, char *okmsg,
                     size_t okmsg_size, char *errstr, size_t errstr_size)
{
    const struct api_key *api;
    long cnt, i;
    rd_kafka_resp_err_t err, *errs;

    (void)argc, (void)okmsg, (void)okmsg_size;
    if (!(api = api_arg(argv[1], errstr, errstr_size)))
        return -1;
    if (parse_long(argv[2], 1, MAX_ERROR_COUNT, &cnt)) {
        snprintf(errstr, errstr_size,
                 "count \"%s\": expected an integer from 1 to %d", argv[2],
                 MAX_ERROR_COUNT);
        return -1;
    }
    if (err_lookup(argv[3], &err)) {
        snprintf(errstr, errstr_size,
                 "unknown error name \"%s\" (use a librdkafka name such as "
                 "REQUEST_TIMED_OUT or NOT_LEADER_FOR_PARTITION)",
                 argv[3]);
        return -1;
    }
    /* Negative codes are librdkafka-internal: written on the wire they mean
     * nothing to a client. The mock gives _TRANSPORT a meaning of its own:
     * it closes the connection instead of answering. */
    if (err < 0 && err != RD_KAFKA_RESP_ERR__TRANSPORT) {
        snprintf(errstr, errstr_size,
                 "%s is a client-side librdkafka error that no broker sends "
                 "(only _TRANSPORT, which drops the connection, is allowed)",
                 rd_kafka_err2name(err));
        return -1;
    }

    if (!(errs = malloc((size_t)cnt * sizeof(*errs)))) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    for (i = 0; i < cnt; i++)
        errs[i] = err;
    rd_kafka_mock_push_request_errors_array(ctx->mcluster, api->key,
                                            (size_t)cnt, errs);
    free(errs);
    return 0;
}

static int cmd_clear(struct ctx *ctx, int argc, char **argv, char *okmsg,
                     size_t okmsg_size, char *errstr, size_t errstr_size)
{
    const struct api_key *api;

    (void)argc, (void)okmsg, (void)okmsg_size;
    if (!(api = api_arg(argv[1], errstr, errstr_size)))
        return -1;
    rd_kafka_mock_clear_request_errors(ctx->mcluster, api->key);
    return 0;
}

/* Creates topic name with partition_cnt partitions.
 * The replication factor passed is 1, but librdkafka 2.0.2's mock ignores it:
 * every partition gets min(3, brokers) replicas and a random leader, and data
 * lives on the leader only. Returns 0 or -1 with errstr filled. */
static int topic_create(rd_kafka_mock_cluster_t *mcluster, const char *name,
                        long partition_cnt, char *errstr, size_t errstr_size)
{
    rd_kafka_resp_err_t err;

    if (topic_name_check(name, errstr, errstr_size))
        return -1;
    err = rd_kafka_mock_topic_create(mcluster, name, (int)partition_cnt, 1);
    if (err) {
        snprintf(errstr, errstr_size, "topic \"%s\": %s", name,
                 rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

static int cmd_topic(struct ctx *ctx, int argc, char **argv, char *okmsg,
                     size_t okmsg_size, char *errstr, size_t errstr_size)
{
    long parts;

    (void)argc, (void)okmsg, (void)okmsg_size;
    if (parse_long(argv[2], 1, MAX_PARTITIONS, &parts)) {
        snprintf(errstr, errstr_size,
                 "partitions \"%s\": expected an integer from 1 to %d", argv[2],
                 MAX_PARTITIONS);
        return -1;
    }
    return topic_create(ctx->mcluster, argv[1], parts, errstr, errstr_size);
}

/* Help texts fit in 80 columns next to the 22-column synopsis. */
static const struct cmd cmds[] = {
    {"ping", 0, "", "answer ok (liveness check)", cmd_ping},
    {"help", 0, "", "list the commands, on one line", cmd_help},
    {"down", 1, "B", "stop broker B (1..N or all); its port is kept", cmd_down},
    {"up", 1, "B", "restart broker B (1..N or all)", cmd_up},
    {"rtt", 2, "B MS", "delay each response of broker B by MS ms", cmd_rtt},
    {"error", 3, "API COUNT ERR", "fail the next COUNT API requests with ERR",
     cmd_error},
    {"clear", 1, "API", "drop the errors still queued for API", cmd_clear},
    {"topic", 2, "NAME PARTITIONS", "create topic NAME", cmd_topic},
};

static const size_t cmd_cnt = sizeof(cmds) / sizeof(cmds[0]);

/* Writes "commands: ping; help; down B; ..." into buf. */
static void cmd_list(char *buf, size_t size)
{
    size_t i, of;
    int r;

    r = snprintf(buf, size, "commands:");
    of = r > 0 ? (size_t)r : 0;
    for (i = 0; i < cmd_cnt && of < size; i++) {
        r = snprintf(buf + of, size - of, "%s %s%s%s", i ? ";" : "",
                     cmds[i].name, *cmds[i].args ? " " : "", cmds[i].args);
        if (r < 0)
            break;
        of += (size_t)r;
    }
}

/* Writes one answer line to stdout and flushes it. Returns -1 if stdout is
 * gone, which ends the program: nobody is listening any more. */
static int answer(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int answer(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    return fflush(stdout) == 0 && !ferror(stdout) ? 0 : -1;
}

/* Runs one command line (modified in place). Blank lines and lines starting
 * with '#' get no answer. Returns -1 if the answer could not be written. */
static int run_line(struct ctx *ctx, char *line)
{
    char *argv[MAX_TOKENS + 1];
    char *save = NULL, *tok;
    int argc = 0;
    size_t i;
    char okmsg[1024] = "";
    char errstr[1024] = "";
    char ebuf[1100];

    for (tok = strtok_r(line, " \t\r\n", &save); tok;
         tok = strtok_r(NULL, " \t\r\n", &save)) {
        if (argc == MAX_TOKENS) {
            logmsg("warning",
                   "cmd=%s result=error reason=\"too many "
                   "arguments\"",
                   esc(argv[0], ebuf, sizeof(ebuf)));
            return answer("error: too many arguments");
        }
        argv[argc++] = tok;
    }
    argv[argc] = NULL;
    if (argc == 0 || argv[0][0] == '#')
        return 0;

    for (i = 0; i < cmd_cnt; i++) {
        if (!strcasecmp(argv[0], cmds[i].name))
            break;
    }
    if (i == cmd_cnt) {
        logmsg("warning", "cmd=\"%s\" result=error reason=\"unknown command\"",
               esc(argv[0], ebuf, sizeof(ebuf)));
        return answer("error: unknown command \"%s\" (try help)", argv[0]);
    }
    if (argc - 1 != cmds[i].argc) {
        logmsg("warning", "cmd=%s result=error reason=\"wrong arguments\"",
               cmds[i].name);
        return answer("error: usage: %s%s%s", cmds[i].name,
                      *cmds[i].args ? " " : "", cmds[i].args);
    }
    if (cmds[i].fn(ctx, argc, argv, okmsg, sizeof(okmsg), errstr,
                   sizeof(errstr))) {
        logmsg("warning", "cmd=%s result=error reason=\"%s\"", cmds[i].name,
               esc(errstr, ebuf, sizeof(ebuf)));
        return answer("error: %s", errstr);
    }
    if (strcmp(cmds[i].name, "ping") && strcmp(cmds[i].name, "help")) {
        /* Rebuild the command for the log: strtok_r cut it into tokens. */
        char buf[256];
        size_t of = 0;
        int a;
        for (a = 0; a < argc && of < sizeof(buf); a++) {
            int r = snprintf(buf + of, sizeof(buf) - of, "%s%s", a ? " " : "",
                             argv[a]);
            if (r < 0)
                break;
            of += (size_t)r;
        }
        logmsg("info", "cmd=\"%s\" result=ok", esc(buf, ebuf, sizeof(ebuf)));
    }
    return *okmsg ? answer("ok %s", okmsg) : answer("ok");
}

/* ---------------------------------------------------------------------------
 * The stdin reader: read(2) on a poll(2)ed fd rather than stdio, so that a
 * half-written line never blocks the signal check.
 */

struct linebuf {
    char buf[LINE_MAX_ + 1];
    size_t len;
    int overflow; /* discarding the rest of a line that was too long */
};

/* Feeds n bytes to the line buffer and runs each complete line.
 * Returns -1 if an answer could not be written. */
static int feed(struct ctx *ctx, struct linebuf *lb, const char *data, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        char c = data[i];
        if (c == '\n') {
            if (lb->overflow) {
                lb->overflow = 0;
                lb->len = 0;
                logmsg("warning", "result=error reason=\"line too long\"");
                if (answer("error: line longer than %d bytes", LINE_MAX_))
                    return -1;
                continue;
            }
            lb->buf[lb->len] = '\0';
            lb->len = 0;
            if (run_line(ctx, lb->buf))
                return -1;
        } else if (!lb->overflow) {
            if (lb->len == LINE_MAX_)
                lb->overflow = 1;
            else
                lb->buf[lb->len++] = c;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Command line.
 */

struct topic_arg {
    char name[TOPIC_NAME_MAX + 1];
    long partitions;
};

/* What the command line asks for. */
typedef struct broker_cfg_s {
    struct topic_arg topics[MAX_TOPICS];
    int topic_cnt;
    long broker_cnt;
    int use_stdin;
    int debug;
} broker_cfg_t;

/* Parses "NAME:PARTITIONS" into *ta. @returns LF_OK, or LF_ERR_INVALID with
 * the reason in errstr. */
static lf_err_t topic_arg_parse(const char *arg, struct topic_arg *ta,
                                char *errstr, size_t errstr_size)
{
    const char *colon = strrchr(arg, ':');
    char why[512];
    size_t len;

    if (!colon)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "--topic \"%s\": expected NAME:PARTITIONS", arg);
    len = (size_t)(colon - arg);
    if (len > TOPIC_NAME_MAX)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "--topic \"%s\": topic name longer than %d "
                         "characters",
                         arg, TOPIC_NAME_MAX);
    memcpy(ta->name, arg, len);
    ta->name[len] = '\0';
    if (topic_name_check(ta->name, why, sizeof(why)))
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "--topic \"%s\": %s", arg, why);
    if (parse_long(colon + 1, 1, MAX_PARTITIONS, &ta->partitions))
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "--topic \"%s\": partitions must be an integer from "
                         "1 to %d",
                         arg, MAX_PARTITIONS);
    return LF_OK;
}

static lf_err_t own_opt(void *arg, int opt, const char *val, char *errstr,
                        size_t errstr_size)
{
    broker_cfg_t *cfg = arg;

    switch (opt) {
    case 'b':
        if (parse_long(val, 1, MAX_BROKERS, &cfg->broker_cnt))
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "--brokers \"%s\": expected an integer from 1 "
                             "to %d",
                             val, MAX_BROKERS);
        return LF_OK;
    case 't':
        if (cfg->topic_cnt == MAX_TOPICS)
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "at most %d --topic options", MAX_TOPICS);
        return topic_arg_parse(val, &cfg->topics[cfg->topic_cnt++], errstr,
                               errstr_size);
    case 'n':
        cfg->use_stdin = 0;
        return LF_OK;
    default: /* 'd' */
        cfg->debug = 1;
        return LF_OK;
    }
}

static const struct option longopts[] = {
    {"brokers", required_argument, NULL, 'b'},
    {"topic", required_argument, NULL, 't'},
    {"no-stdin", no_argument, NULL, 'n'},
    {"debug", no_argument, NULL, 'd'},
    {NULL, 0, NULL, 0},
};

/* The help text takes numbers from the code and the command table: filled
 * by help_text() before the usage can be printed. */
static char own_help[1024], notes[6144];

/* -b, -t and -d are this program's own (broker count, topic layout, mock
 * debug), not the shared options of the same letters. */
static lf_cli_spec_t spec = {
    .prog = PROG,
    .synopsis = PROG
    " [--brokers N] [--topic NAME:PARTITIONS]...\n"
    "                          [--no-stdin] [--debug]\n"
    "       " PROG " --help | --version\n"
    "\n"
    "A Kafka-protocol cluster for development and tests: librdkafka's "
    "mock\n"
    "cluster, served on random 127.0.0.1 ports. The first line on stdout\n"
    "is the bootstrap.servers list (e.g. "
    "127.0.0.1:34567,127.0.0.1:40001).\n"
    "Diagnostics go to stderr.",
    .shared = 0,
    .own_help = own_help,
    .notes = notes,
    .shortopts = "b:t:nd",
    .longopts = longopts,
    .own = own_opt,
    .max_args = 0,
};

/* The commands, one line each, from the command table. */
static void commands_help(FILE *fp)
{
    for (size_t i = 0; i < cmd_cnt; i++) {
        char left[64];
        snprintf(left, sizeof(left), "%s %s", cmds[i].name, cmds[i].args);
        fprintf(fp, "  %-22s %s\n", left, cmds[i].help);
    }
}

static void help_text(void)
{
    FILE *fp;

    snprintf(own_help, sizeof(own_help),
             "  -b, --brokers N        number of brokers, 1 to %d (default "
             "1)\n"
             "  -t, --topic NAME:PARTITIONS\n"
             "                         create a topic before serving; may be\n"
             "                         repeated (default: " DEFAULT_TOPIC
             ":%d)\n"
             "  -n, --no-stdin         ignore stdin; serve until SIGTERM or "
             "SIGINT\n"
             "  -d, --debug            log librdkafka's mock debug messages\n",
             MAX_BROKERS, DEFAULT_PARTITIONS);
    if (!(fp = fmemopen(notes, sizeof(notes), "w")))
        return;
    fputs("Without --no-stdin it serves until SIGTERM, SIGINT or end of file "
          "on\n"
          "stdin, and reads one command per line on stdin. Every command "
          "gets\n"
          "exactly one answer line on stdout, \"ok...\" or \"error: "
          "REASON\".\n"
          "Blank lines and lines starting with '#' get no answer.\n"
          "\n"
          "Commands:\n",
          fp);
    commands_help(fp);
    fputs(
        "B is a broker id. API is a Kafka API name (Produce, Fetch, "
        "ListOffsets,\n"
        "OffsetCommit, OffsetFetch, FindCoordinator, JoinGroup, SyncGroup,\n"
        "Heartbeat, LeaveGroup, InitProducerId, ApiVersions, "
        "AddPartitionsToTxn,\n"
        "AddOffsetsToTxn, EndTxn, TxnOffsetCommit) or its number. ERR is a\n"
        "librdkafka error name (REQUEST_TIMED_OUT, with or without\n"
        "RD_KAFKA_RESP_ERR_, any case) or a number; _TRANSPORT makes the "
        "broker\n"
        "drop the connection instead of answering. Errors are queued per API\n"
        "for the whole cluster and used by whichever broker gets the request.\n"
        "\n"
        "Limits of the mock cluster (librdkafka 2.0.2):\n"
        "  - in memory only; everything is gone when it stops;\n"
        "  - each partition keeps only its newest 5 MiB or 100,000 message\n"
        "    sets and silently drops older ones: give topics enough "
        "partitions,\n"
        "    compress (lz4) and consume while producing large streams;\n"
        "  - topics not created here are auto-created with 4 partitions on "
        "the\n"
        "    first Metadata request that names them; no admin CreateTopics;\n"
        "  - a broker that is down keeps leading its partitions (no leader\n"
        "    election): clients wait or time out until it is up again;\n"
        "  - when the last member of a consumer group leaves, the next one to\n"
        "    join waits session.timeout.ms - 1 s (44 s by default) for its\n"
        "    assignment: use a short session.timeout.ms (6000) in tests;\n"
        "  - no TLS or SASL; errors cannot be injected into Metadata.\n"
        "\n"
        "Exit status:\n"
        "  0   stopped by SIGTERM, SIGINT or end of stdin\n"
        "  64  usage error\n"
        "  69  the mock cluster could not be started\n"
        "  74  stdin could not be read or stdout could not be written\n",
        fp);
    fclose(fp);
}

/* Fill @p cfg and @p cli from argv; without -t, the default topic. */
static lf_cli_next_t parse(int argc, char **argv, lf_cli_t *cli,
                           broker_cfg_t *cfg)
{
    lf_cli_next_t next;

    help_text();
    if ((next = lf_cli_parse(cli, &spec, cfg, argc, argv)) != LF_CLI_RUN)
        return next;
    if (cfg->topic_cnt == 0) {
        snprintf(cfg->topics[0].name, sizeof(cfg->topics[0].name), "%s",
                 DEFAULT_TOPIC);
        cfg->topics[0].partitions = DEFAULT_PARTITIONS;
        cfg->topic_cnt = 1;
    }
    return LF_CLI_RUN;
}

/* ---------------------------------------------------------------------------
 * The cluster.
 */

/* A librdkafka handle hosting a mock cluster of @p cfg->broker_cnt brokers
 * with @p cfg's topics in *rkp and ctx->mcluster. @returns LF_OK, or
 * LF_ERR_KAFKA, logged; on error nothing is left to destroy. */
static lf_err_t cluster_start(const broker_cfg_t *cfg, struct ctx *ctx,
                              rd_kafka_t **rkp)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    sigset_t block, old;
    char errstr[512];

    /* The mock cluster's thread is created by the calling thread and
     * inherits its signal mask: block SIGINT/SIGTERM while librdkafka
     * starts threads so that only this thread sees them and its poll()
     * gets EINTR. */
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    /* The handle only hosts the cluster: no bootstrap.servers, so it never
     * becomes a client of its own brokers (test.mock.num.brokers would). */
    rd_kafka_conf_set_log_cb(conf, on_rdkafka_log);
    if (cfg->debug && rd_kafka_conf_set(conf, "debug", "mock", errstr,
                                        sizeof(errstr)) != RD_KAFKA_CONF_OK)
        logmsg("warning", "msg=\"debug=mock not supported: %s\"", errstr);
    *rkp = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!*rkp) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        rd_kafka_conf_destroy(conf);
        logmsg("err", "msg=\"cannot create librdkafka handle: %s\"", errstr);
        return LF_ERR_KAFKA;
    }
    ctx->broker_cnt = (int)cfg->broker_cnt;
    ctx->mcluster = rd_kafka_mock_cluster_new(*rkp, (int)cfg->broker_cnt);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!ctx->mcluster) {
        logmsg("err", "msg=\"cannot start the mock cluster (see the "
                      "librdkafka messages above)\"");
        rd_kafka_destroy(*rkp);
        return LF_ERR_KAFKA;
    }
    return LF_OK;
}

/* Create @p cfg's topics. @returns LF_OK or LF_ERR_KAFKA, logged. */
static lf_err_t topics_create(const broker_cfg_t *cfg, struct ctx *ctx)
{
    char errstr[512];

    for (int i = 0; i < cfg->topic_cnt; i++) {
        if (topic_create(ctx->mcluster, cfg->topics[i].name,
                         cfg->topics[i].partitions, errstr, sizeof(errstr))) {
            logmsg("err", "msg=\"%s\"", errstr);
            return LF_ERR_KAFKA;
        }
        logmsg("info", "topic=%s partitions=%ld", cfg->topics[i].name,
               cfg->topics[i].partitions);
    }
    return LF_OK;
}

/* Serve commands from stdin (or nothing, without it) until a signal or
 * end of stdin. @returns LF_OK, or LF_ERR_IO (stdin unreadable, stdout
 * unwritable), logged. */
static lf_err_t serve(struct ctx *ctx, int use_stdin)
{
    struct linebuf lb = {.len = 0};

    while (!lf_cli_signals) {
        struct pollfd pfd = {.fd = use_stdin ? STDIN_FILENO : -1,
                             .events = POLLIN};
        char data[4096];
        ssize_t n;
        int r = poll(&pfd, 1, POLL_MS);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            logmsg("err", "msg=\"poll: %s\"", strerror(errno));
            return LF_ERR_IO;
        }
        if (r == 0)
            continue;
        n = read(STDIN_FILENO, data, sizeof(data));
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0) {
            logmsg("err", "msg=\"reading stdin: %s\"", strerror(errno));
            return LF_ERR_IO;
        }
        if (n == 0) {
            /* A last line without '\n' still counts. */
            if (feed(ctx, &lb, "\n", lb.len || lb.overflow ? 1 : 0))
                return LF_ERR_IO;
            logmsg("info", "msg=\"end of stdin, stopping\"");
            return LF_OK;
        }
        if (feed(ctx, &lb, data, (size_t)n)) {
            logmsg("err", "msg=\"cannot write to stdout: %s\"",
                   strerror(errno));
            return LF_ERR_IO;
        }
    }
    logmsg("info", "msg=\"signal received, stopping\"");
    return LF_OK;
}

/* Start the cluster, say where it is, serve. @returns an exit code. */
static int run(const broker_cfg_t *cfg)
{
    struct ctx ctx = {0};
    rd_kafka_t *rk;
    int rc = LF_EX_OK;

    debug_enabled = cfg->debug;
    /* No SA_RESTART: poll() must return EINTR. A reader of stdout that
     * went away must not kill the cluster silently: SIGPIPE is ignored, a
     * failed write is reported and ends the program with 74 instead. */
    lf_cli_catch_signals(true);
    if (cluster_start(cfg, &ctx, &rk))
        return LF_EX_UNAVAILABLE;
    if (topics_create(cfg, &ctx)) {
        rc = LF_EX_UNAVAILABLE;
    } else if (answer("%s", rd_kafka_mock_cluster_bootstraps(ctx.mcluster))) {
        /* Topics exist before anyone learns the address: a client that
         * reads this line never sees a topic with the auto-created
         * default layout. */
        logmsg("err", "msg=\"cannot write to stdout: %s\"", strerror(errno));
        rc = LF_EX_IOERR;
    } else {
        logmsg("info", "bootstrap.servers=%s brokers=%ld stdin=%s",
               rd_kafka_mock_cluster_bootstraps(ctx.mcluster), cfg->broker_cnt,
               cfg->use_stdin ? "commands" : "ignored");
        if (serve(&ctx, cfg->use_stdin))
            rc = LF_EX_IOERR;
    }
    /* The cluster belongs to rk's internals: destroy it first. */
    rd_kafka_mock_cluster_destroy(ctx.mcluster);
    rd_kafka_destroy(rk);
    return rc;
}

int main(int argc, char **argv)
{
    broker_cfg_t cfg = {.broker_cnt = 1, .use_stdin = 1};
    lf_cli_t cli;
    int rc;

    switch (parse(argc, argv, &cli, &cfg)) {
    case LF_CLI_DONE:
        rc = LF_EX_OK;
        break;
    case LF_CLI_USAGE:
        rc = LF_EX_USAGE;
        break;
    default:
        rc = run(&cfg);
    }
    lf_cli_free(&cli);
    return rc;
}
