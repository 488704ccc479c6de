/* leadflow-gen: a synthetic, realistic and deterministic funnel workload:
 * the lifecycle events of N leads as JSON lines, or straight to Kafka. The
 * model (journeys, rates and their sources, faults) is lf_workload; this
 * is its command line and its two outputs. */

#include "lf_cli.h"
#include "lf_codec.h"
#include "lf_common.h"
#include "lf_conf.h"
#include "lf_event.h"
#include "lf_log.h"
#include "lf_producer.h"
#include "lf_time.h"
#include "lf_workload.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "leadflow-gen"

#define HOUR_MS (3600.0 * 1000.0)
#define DAY_MS  (24 * HOUR_MS)

/* ---------------------------------------------------------------------------
 * Output.
 */

/* Every line of @p w to @p fp, until a signal. @returns an exit code. */
static int write_json(lf_workload_t *w, FILE *fp)
{
    lf_buf_t line = {0};
    int rc = LF_EX_OK;

    size_t i;

    for (i = 0; i < lf_workload_count(w) && !lf_cli_signals; i++) {
        if (lf_workload_line(w, i, &line)) {
            fprintf(stderr, PROG ": out of memory\n");
            rc = LF_EX_SOFTWARE;
            break;
        }
        fwrite(line.data ? line.data : "", 1, line.len, fp);
        putc('\n', fp);
    }
    lf_buf_free(&line);
    /* A stopped run's output is a prefix of the workload: not "done". */
    if (rc == LF_EX_OK && i < lf_workload_count(w)) {
        fprintf(stderr,
                PROG ": stopped by a signal after %zu of %zu lines: the "
                     "output is incomplete\n",
                i, lf_workload_count(w));
        rc = LF_EX_TEMPFAIL;
    }
    if (rc == LF_EX_OK && (fflush(fp) || ferror(fp))) {
        fprintf(stderr, PROG ": write error: %s\n", strerror(errno));
        rc = LF_EX_IOERR;
    }
    return rc;
}

/* To -o FILE or stdout, fully buffered. @returns an exit code. */
static int write_output(lf_workload_t *w, const char *output)
{
    static char iobuf[1 << 16];
    FILE *fp = stdout;
    int rc;

    if (output && !(fp = fopen(output, "w"))) {
        fprintf(stderr, PROG ": %s: %s\n", output, strerror(errno));
        return LF_EX_IOERR;
    }
    setvbuf(fp, iobuf, _IOFBF, sizeof(iobuf));
    rc = write_json(w, fp);
    if (output && fclose(fp) && rc == LF_EX_OK)
        rc = LF_EX_IOERR;
    return rc;
}

typedef struct produce_stats_s {
    int64_t failed_retriable, failed_permanent;
    char first_reason[256];
    int64_t *lat; /* delivery latencies in us, for the summary */
    size_t nlat, caplat;
    int64_t t0; /* monotonic ms */
} produce_stats_t;

static void on_delivery(const lf_delivery_t *dr, void *opaque)
{
    produce_stats_t *st = opaque;
    if (!dr->err) {
        if (st->nlat < st->caplat)
            st->lat[st->nlat++] = dr->latency_us;
        return;
    }
    if (lf_producer_err_retriable(dr->err))
        st->failed_retriable++;
    else
        st->failed_permanent++;
    if (!st->first_reason[0])
        snprintf(st->first_reason, sizeof(st->first_reason), "%s", dr->reason);
}

/* Hand every event to the producer until a signal or an error.
 * @p sent is how many were handed over. @returns an exit code. */
static int produce_events(lf_workload_t *w, lf_producer_t *p, size_t *sent)
{
    char errstr[512], q[600];
    size_t i;
    int rc = LF_EX_OK;

    for (i = 0; i < lf_workload_count(w) && !lf_cli_signals; i++) {
        const lf_event_t *ev = lf_workload_event(w, i);
        lf_err_t err = lf_producer_emit(p, ev, errstr, sizeof(errstr));
        if (err == LF_ERR_TEMPORARY)
            break;
        if (err) {
            LF_LOG(LF_LOG_ERR, "msg=%s lead_id=%s",
                   lf_log_quote(errstr, q, sizeof(q)), ev->lead_id);
            rc = err == LF_ERR_INVALID ? LF_EX_SOFTWARE : LF_EX_UNAVAILABLE;
            break;
        }
    }
    *sent = i;
    return rc;
}

/* Flush: each 5 s report progress; on a signal wait 10 s more at most,
 * then give up on the rest (each counts as failed). */
static void flush_events(lf_producer_t *p)
{
    int64_t emitted, delivered, failed, last = lf_now_mono_ms();
    int64_t deadline = lf_cli_signals ? last + 10000 : INT64_MAX;

    while (lf_producer_flush(p, 1000) != LF_OK) {
        lf_producer_counts(p, &emitted, &delivered, &failed);
        if (lf_now_mono_ms() - last >= 5000) {
            LF_LOG(LF_LOG_NOTICE,
                   "msg=\"waiting for deliveries\" in_flight=%lld "
                   "delivered=%lld failed=%lld",
                   (long long)lf_producer_inflight(p), (long long)delivered,
                   (long long)failed);
            last = lf_now_mono_ms();
        }
        if (lf_cli_signals && deadline == INT64_MAX)
            deadline = lf_now_mono_ms() + 10000;
        if (lf_now_mono_ms() >= deadline) {
            lf_producer_purge(p, 5000);
            break;
        }
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The summary line, and the first failure's reason. @returns the number
 * of events that failed. */
static int64_t produce_summary(lf_producer_t *p, produce_stats_t *st, size_t n)
{
    int64_t emitted, delivered, failed;
    double secs = (double)(lf_now_mono_ms() - st->t0) / 1000.0;
    char q[600];

    lf_producer_counts(p, &emitted, &delivered, &failed);
    if (st->nlat)
        qsort(st->lat, st->nlat, sizeof(int64_t), cmp_i64);
    LF_LOG(LF_LOG_NOTICE,
           "msg=\"summary\" events=%zu sent=%lld delivered=%lld failed=%lld "
           "elapsed_s=%.3f events_per_s=%.0f latency_p50_ms=%.1f "
           "latency_p99_ms=%.1f topic=%s",
           n, (long long)emitted, (long long)delivered, (long long)failed, secs,
           secs > 0 ? (double)delivered / secs : 0.0,
           st->nlat ? (double)st->lat[st->nlat / 2] / 1000.0 : 0.0,
           st->nlat ? (double)st->lat[st->nlat * 99 / 100] / 1000.0 : 0.0,
           lf_producer_topic(p));
    if (st->first_reason[0])
        LF_LOG(LF_LOG_ERR, "msg=\"first failure\" reason=%s",
               lf_log_quote(st->first_reason, q, sizeof(q)));
    return failed;
}

/* Every event to Kafka through lf_producer. @returns an exit code. */
static int produce_all(lf_workload_t *w, const lf_conf_t *conf)
{
    produce_stats_t st = {.t0 = lf_now_mono_ms()};
    size_t n = lf_workload_count(w), sent = 0;
    char errstr[512];
    lf_producer_t *p;
    int64_t failed;
    lf_err_t err;
    int rc;

    if ((err = lf_producer_create_stoppable(conf, &lf_cli_signals, &p, errstr,
                                            sizeof(errstr)))) {
        fprintf(stderr, PROG ": %s\n", errstr);
        return err == LF_ERR_TEMPORARY ? LF_EX_TEMPFAIL : LF_EX_CONFIG;
    }
    st.caplat = n;
    if (!(st.lat = malloc((n ? n : 1) * sizeof(int64_t)))) {
        lf_producer_destroy(p);
        fprintf(stderr, PROG ": out of memory\n");
        return LF_EX_SOFTWARE;
    }
    lf_producer_set_delivery_cb(p, on_delivery, &st);
    rc = produce_events(w, p, &sent);
    flush_events(p);
    failed = produce_summary(p, &st, n);
    free(st.lat);
    lf_producer_destroy(p);
    if (rc == LF_EX_OK && (failed || sent < n))
        rc = st.failed_permanent ? LF_EX_UNAVAILABLE : LF_EX_TEMPFAIL;
    return rc;
}

/* ---------------------------------------------------------------------------
 * Command line.
 */

/* What the command line asks for. */
typedef struct gen_cfg_s {
    lf_workload_opts_t wl;
    const char *output; /* -o FILE, or NULL: stdout */
    bool produce;
} gen_cfg_t;

enum {
    OPT_START = 256,
    OPT_DAYS,
    OPT_NO_CUTOFF,
    OPT_PREFIX,
    OPT_THRESHOLD,
    OPT_SLA,
    OPT_DEAL,
    OPT_RATE,
    OPT_DELAY,
    OPT_DUP,
    OPT_SHUFFLE,
    OPT_LATE,
    OPT_BAD,
    OPT_ANOM,
    OPT_ACCOUNTS,
    OPT_MERGES,
    OPT_VOIDS,
    OPT_ERASURES,
    OPT_PRODUCE
};

static bool parse_prob(const char *s, double *out)
{
    char *end;
    double v;
    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0.0 && v <= 1.0))
        return false;
    *out = v;
    return true;
}

static bool parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

#define BAD_ARG(...) lf_seterr(LF_ERR_INVALID, errstr, errstr_size, __VA_ARGS__)

/* The options that are a number in a range. */
static lf_err_t number_opt(gen_cfg_t *cfg, int opt, const char *val,
                           char *errstr, size_t errstr_size)
{
    lf_workload_opts_t *o = &cfg->wl;
    char *end;
    long v;

    switch (opt) {
    case 'n':
        if (!parse_long(val, 0, LF_WORKLOAD_MAX_LEADS, &v))
            return BAD_ARG("--leads: \"%s\" is not a number of leads "
                           "(0..50000000)",
                           val);
        o->leads = (uint32_t)v;
        return LF_OK;
    case 's':
        errno = 0;
        o->seed = strtoull(val, &end, 0);
        if (errno || end == val || *end || *val == '-')
            return BAD_ARG("--seed: \"%s\" is not a number", val);
        return LF_OK;
    case OPT_DAYS:
        if (!parse_long(val, 1, 3650, &v))
            return BAD_ARG("--days: \"%s\" is not 1..3650", val);
        o->days = (int)v;
        return LF_OK;
    case OPT_THRESHOLD:
        if (!parse_long(val, 10, 1000, &v))
            return BAD_ARG("--threshold: \"%s\" is not 10..1000", val);
        o->threshold = (int)v;
        return LF_OK;
    case OPT_SLA:
        if (!parse_long(val, 0, 10000, &v))
            return BAD_ARG("--sla-hours: \"%s\" is not 0..10000", val);
        o->sla_hours = (int)v;
        return LF_OK;
    case OPT_DEAL:
        o->deal_size = strtod(val, &end);
        if (end == val || *end || !(o->deal_size >= 1) || o->deal_size > 1e9)
            return BAD_ARG("--deal-size: \"%s\" is not 1..1e9", val);
        return LF_OK;
    case OPT_ACCOUNTS:
        if (!parse_long(val, 0, LF_WORKLOAD_MAX_LEADS, &v))
            return BAD_ARG("--accounts: \"%s\" is not a number of accounts "
                           "(0..50000000)",
                           val);
        o->accounts = (uint32_t)v;
        return LF_OK;
    default: /* OPT_SHUFFLE */
        if (!parse_long(val, 0, 100000000, &o->shuffle))
            return BAD_ARG("--shuffle: \"%s\" is not a window size", val);
        return LF_OK;
    }
}

/* The probabilities: the fault knobs and the contract v2 events. */
static lf_err_t prob_opt(gen_cfg_t *cfg, int opt, const char *val, char *errstr,
                         size_t errstr_size)
{
    static const int opts[] = {OPT_DUP,    OPT_LATE,  OPT_BAD,     OPT_ANOM,
                               OPT_MERGES, OPT_VOIDS, OPT_ERASURES};
    static const char *names[] = {"--duplicates", "--late",   "--bad",
                                  "--anomalies",  "--merges", "--voids",
                                  "--erasures"};
    double *p[] = {&cfg->wl.duplicates, &cfg->wl.late,   &cfg->wl.bad,
                   &cfg->wl.anomalies,  &cfg->wl.merges, &cfg->wl.voids,
                   &cfg->wl.erasures};
    int k = 0;

    while (opts[k] != opt)
        k++;
    if (!parse_prob(val, p[k]))
        return BAD_ARG("%s: \"%s\" is not 0..1", names[k], val);
    return LF_OK;
}

static lf_err_t own_opt(void *arg, int opt, const char *val, char *errstr,
                        size_t errstr_size)
{
    gen_cfg_t *cfg = arg;
    char why[400];

    switch (opt) {
    case OPT_START:
        if (lf_time_parse(val, 1, &cfg->wl.start, NULL, 0) || cfg->wl.start < 0)
            return BAD_ARG("--start: \"%s\" is not a date after 1970", val);
        return LF_OK;
    case OPT_NO_CUTOFF:
        cfg->wl.cutoff = false;
        return LF_OK;
    case OPT_PREFIX:
        if (strlen(val) > 40)
            return BAD_ARG("--prefix: \"%s\" is longer than 40 bytes", val);
        cfg->wl.prefix = val;
        return LF_OK;
    case OPT_RATE:
    case OPT_DELAY:
        if ((opt == OPT_RATE ? lf_workload_set_rate : lf_workload_set_delay)(
                &cfg->wl, val, why, sizeof(why)))
            return BAD_ARG("%s: %s", opt == OPT_RATE ? "--rate" : "--delay",
                           why);
        return LF_OK;
    case OPT_DUP:
    case OPT_LATE:
    case OPT_BAD:
    case OPT_ANOM:
    case OPT_MERGES:
    case OPT_VOIDS:
    case OPT_ERASURES:
        return prob_opt(cfg, opt, val, errstr, errstr_size);
    case 'o':
        cfg->output = val;
        return LF_OK;
    case OPT_PRODUCE:
        cfg->produce = true;
        return LF_OK;
    default:
        return number_opt(cfg, opt, val, errstr, errstr_size);
    }
}

static const struct option longopts[] = {
    {"leads", required_argument, NULL, 'n'},
    {"seed", required_argument, NULL, 's'},
    {"start", required_argument, NULL, OPT_START},
    {"days", required_argument, NULL, OPT_DAYS},
    {"no-cutoff", no_argument, NULL, OPT_NO_CUTOFF},
    {"prefix", required_argument, NULL, OPT_PREFIX},
    {"threshold", required_argument, NULL, OPT_THRESHOLD},
    {"sla-hours", required_argument, NULL, OPT_SLA},
    {"deal-size", required_argument, NULL, OPT_DEAL},
    {"rate", required_argument, NULL, OPT_RATE},
    {"delay", required_argument, NULL, OPT_DELAY},
    {"duplicates", required_argument, NULL, OPT_DUP},
    {"shuffle", required_argument, NULL, OPT_SHUFFLE},
    {"late", required_argument, NULL, OPT_LATE},
    {"bad", required_argument, NULL, OPT_BAD},
    {"anomalies", required_argument, NULL, OPT_ANOM},
    {"accounts", required_argument, NULL, OPT_ACCOUNTS},
    {"merges", required_argument, NULL, OPT_MERGES},
    {"voids", required_argument, NULL, OPT_VOIDS},
    {"erasures", required_argument, NULL, OPT_ERASURES},
    {"output", required_argument, NULL, 'o'},
    {"produce", no_argument, NULL, OPT_PRODUCE},
    {NULL, 0, NULL, 0}};

/* The notes hold the rates and delays tables: filled by notes_text()
 * before the usage can be printed. */
static char notes[8192];

static lf_cli_spec_t spec = {
    .prog = PROG,
    .synopsis = PROG
    " [--leads N] [--seed S] [--start DATE] [--days D]\n"
    "                    [--rate NAME=P]... [--delay NAME=DURATION]...\n"
    "                    [--duplicates P] [--shuffle W] [--late P]\n"
    "                    [--bad P] [--anomalies P] [--accounts N]\n"
    "                    [--merges P] [--voids P] [--erasures P] [-o FILE]\n"
    "       " PROG " ... --produce [-b BROKERS] [-t TOPIC]\n"
    "                    [-X key=value]... [-c FILE]\n"
    "       " PROG " --help | --version\n"
    "\n"
    "Writes the lifecycle events of N synthetic leads moving through\n"
    "the funnel, as JSON lines in time order (the input of\n"
    "leadflow-emit), or produces them straight to Kafka with\n"
    "--produce. The same flags and seed give the same output, byte\n"
    "for byte.\n"
    "\n"
    "Settings (used by --produce; checked always):",
    .shared = LF_CLI_BROKERS | LF_CLI_TOPIC | LF_CLI_CONF | LF_CLI_VERBOSE,
    .own_help =
        "\n"
        "Workload:\n"
        "  -n, --leads N          leads to generate (default 1000;\n"
        "                         0..50000000)\n"
        "  -s, --seed S           PRNG seed (default 1)\n"
        "      --start DATE       first capture, RFC 3339 or YYYY-MM-DD\n"
        "                         (default 2026-01-01)\n"
        "      --days D           captures spread over D days (default 90;\n"
        "                         1..3650)\n"
        "      --no-cutoff        let every journey finish; by default\n"
        "                         events after the window are dropped (a\n"
        "                         snapshot with open leads)\n"
        "      --prefix P         lead ids are P000001... (default L-)\n"
        "      --threshold T      MQL score threshold (default 60; 10..1000)\n"
        "      --sla-hours H      handoff SLA in hours (default 24) [4]\n"
        "      --deal-size A      median deal in major units (default "
        "12000;\n"
        "                         1..1e9)\n"
        "      --rate NAME=P      change a rate (table below)\n"
        "      --delay NAME=D     change a mean delay: 90s, 30m, 4h, 7d\n"
        "\n"
        "Faults (for tests):\n"
        "      --duplicates P     re-send each event with probability P\n"
        "                         (same event_id, up to 15 min later)\n"
        "      --shuffle W        shuffle arrival order in windows of W\n"
        "      --late P           deliver an event 1-7 days after its\n"
        "                         occurred_at with probability P\n"
        "      --bad P            after an event, a malformed line with\n"
        "                         probability P (13 kinds: truncated JSON,\n"
        "                         missing or empty or long or non-string\n"
        "                         lead_id, unknown type, bad timestamp,\n"
        "                         unknown field, negative number, bad\n"
        "                         currency, invalid UTF-8, not an object,\n"
        "                         another type's field); JSON output\n"
        "                         only, not with --produce\n"
        "      --anomalies P      per lead, an event the state machine\n"
        "                         refuses (default 0)\n"
        "\n"
        "Contract v2 (all off by default; with -X contract.version=1,\n"
        "--produce refuses them):\n"
        "      --accounts N       the leads belong to N accounts, several\n"
        "                         each: every event carries account_id\n"
        "                         ACC-000001... (default 0: none)\n"
        "      --merges P         per lead, a merged event into another\n"
        "                         lead after its last event\n"
        "      --voids P          per event, a voided event naming it\n"
        "                         (minutes to 3 days later); a voided\n"
        "                         capture or handoff makes the lead's\n"
        "                         later events state anomalies\n"
        "      --erasures P       per lead, an erased event (a privacy\n"
        "                         request) after its last event\n"
        "\n"
        "Output:\n"
        "  -o, --output FILE      write to FILE instead of stdout\n"
        "      --produce          produce to Kafka through lf_producer\n"
        "\n",
    .notes = notes,
    .shortopts = "n:s:o:",
    .longopts = longopts,
    .own = own_opt,
    .max_args = 0,
};

/* "  name          value  help..." wrapped at 79 columns. */
static void help_row(FILE *fp, const char *name, const char *value,
                     const char *help)
{
    int col = fprintf(fp, "  %-13s %-5s ", name, value);
    const int indent = col;

    for (bool first = true; *help; first = false) {
        size_t w = strcspn(help, " ");
        if (!first && col + 1 + (int)w > 79)
            col = fprintf(fp, "\n%*s", indent, "") - 1;
        else if (!first)
            col += fprintf(fp, " ");
        col += fprintf(fp, "%.*s", (int)w, help);
        help += w;
        while (*help == ' ')
            help++;
    }
    fputc('\n', fp);
}

/* The notes: where secrets go, the rates and delays tables from
 * lf_workload with their sources, the exit codes. */
static void notes_text(void)
{
    FILE *fp = fmemopen(notes, sizeof(notes), "w");
    char b[32];

    if (!fp)
        return;
    fputs("Secrets never go on the command line: put sasl.password and\n"
          "schema.registry.basic.auth.user.info in the -c file (chmod 600)\n"
          "or in LEADFLOW_* variables.\n"
          "\n"
          "Rates (probabilities; defaults illustrative, see [n]):\n",
          fp);
    for (int i = 0; i < LF_WL_RATE_COUNT; i++) {
        snprintf(b, sizeof(b), "%.2f", lf_workload_rates[i].value);
        help_row(fp, lf_workload_rates[i].name, b, lf_workload_rates[i].help);
    }
    fputs("Each 0..1; handoff-disq + accept, sql + sal-lost and win +\n"
          "sql-recycle (the ways out of one stage) each at most 1.\n",
          fp);
    fputs("\nDelays (means):\n", fp);
    for (int i = 0; i < LF_WL_DELAY_COUNT; i++) {
        double v = lf_workload_delays[i].value;
        if (v >= 2 * DAY_MS)
            snprintf(b, sizeof(b), "%gd", v / DAY_MS);
        else
            snprintf(b, sizeof(b), "%gh", v / HOUR_MS);
        help_row(fp, lf_workload_delays[i].name, b, lf_workload_delays[i].help);
    }
    fputs(
        "\n"
        "Sources (illustrative defaults inside published ranges):\n"
        "  [1] b2blead.io, \"B2B Conversion Rate ... and Benchmarks\" (2026):\n"
        "      lead->MQL 20-40 %, MQL->SQL 30-60 % (here accept x sql =\n"
        "      0.385), opportunity->won 20-30 % for mid-market B2B.\n"
        "  [2] Oldroyd, McElheran, Elkington, \"The Short Life of Online\n"
        "      Sales Leads\", Harvard Business Review, March 2011: 37 % of\n"
        "      firms answered within an hour, 16 % in 1-24 h, 24 % later;\n"
        "      average 42 hours.\n"
        "  [3] B2B sales cycles of 1-6 months (roundups citing Zippia).\n"
        "  [4] common practice: MQL follow-up within a working day.\n"
        "\n"
        "Exit status:\n"
        "  0   done (with --produce: every event delivered)\n"
        "  64  usage error\n"
        "  69  --produce: delivery failed for a reason that will repeat\n"
        "  70  internal error\n"
        "  74  output could not be written\n"
        "  75  stopped by SIGINT or SIGTERM (the output is incomplete), or\n"
        "      --produce: delivery failed (broker unreachable, timed out),\n"
        "      or the schema registry stayed unreachable; running again\n"
        "      re-sends the same event ids\n"
        "  78  bad configuration\n",
        fp);
    fclose(fp);
}

/* Fill @p cfg and @p cli from argv; the options that exclude each other. */
static lf_cli_next_t parse(int argc, char **argv, lf_cli_t *cli, gen_cfg_t *cfg)
{
    char errstr[512];
    lf_cli_next_t next;

    notes_text();
    lf_workload_defaults(&cfg->wl);
    if ((next = lf_cli_parse(cli, &spec, cfg, argc, argv)) != LF_CLI_RUN)
        return next;
    if (cfg->wl.start + cfg->wl.days * DAY_MS >
        253402300799999.0 - 10 * 3650 * DAY_MS)
        return lf_cli_usage_error(cli, "--start and --days reach past year "
                                       "9999");
    /* every other option was checked when it was read: only the rates
     * that share a coin are left */
    if (lf_workload_check(&cfg->wl, errstr, sizeof(errstr)))
        return lf_cli_usage_error(cli, "--rate: %s", errstr);
    if (cfg->produce && cfg->wl.bad > 0)
        return lf_cli_usage_error(cli, "--bad writes malformed JSON lines; "
                                       "it cannot be combined with "
                                       "--produce");
    if (cfg->produce && cfg->output)
        return lf_cli_usage_error(cli, "--output and --produce exclude each "
                                       "other");
    return LF_CLI_RUN;
}

/* Whether contract.version is one, and with --produce, whether the version
 * written can carry what the contract v2 knobs ask for. @returns false
 * (said) if not. */
static bool contract_fits(const gen_cfg_t *cfg, const lf_conf_t *conf)
{
    const char *v = lf_conf_get(conf, LF_CONF_CONTRACT_VERSION);
    const lf_workload_opts_t *o = &cfg->wl;

    if (v && strcmp(v, "1") && strcmp(v, "2")) { /* checked without too */
        fprintf(stderr,
                PROG ": contract.version=%s: the contract versions are 1 and "
                     "2\n",
                v);
        return false;
    }
    if (!cfg->produce || !v || strcmp(v, "1") ||
        !(o->accounts || o->merges > 0 || o->voids > 0 || o->erasures > 0))
        return true;
    fprintf(stderr,
            PROG ": contract.version=1 cannot carry what --accounts, "
                 "--merges, --voids and --erasures make (account_id, "
                 "merged, voided and erased events): write contract v2\n");
    return false;
}

/* Generate, then write or produce. @returns an exit code. */
static int run(const gen_cfg_t *cfg, const lf_conf_t *conf)
{
    lf_workload_t *w;
    char errstr[512];
    int rc;

    lf_cli_catch_signals(false);
    if (!contract_fits(cfg, conf))
        return LF_EX_CONFIG;
    if (lf_workload_new(&cfg->wl, &w, errstr, sizeof(errstr))) {
        fprintf(stderr, PROG ": %s\n", errstr);
        return LF_EX_SOFTWARE;
    }
    if (lf_cli_signals) {
        fprintf(stderr, PROG ": stopped by a signal before any output\n");
        lf_workload_destroy(w);
        return LF_EX_TEMPFAIL;
    }
    LF_LOG(LF_LOG_INFO, "msg=\"generated\" leads=%u events=%zu seed=%llu",
           cfg->wl.leads, lf_workload_count(w),
           (unsigned long long)cfg->wl.seed);
    rc = cfg->produce ? produce_all(w, conf) : write_output(w, cfg->output);
    lf_workload_destroy(w);
    return rc;
}

int main(int argc, char **argv)
{
    gen_cfg_t cfg = {.produce = false};
    lf_conf_t *conf = NULL;
    char errstr[512];
    lf_cli_next_t next;
    lf_cli_t cli;
    lf_err_t err;
    int rc;

    lf_log_init("gen");
    /* The settings only matter to --produce and -X dump, but are checked
     * always: a typo (a missing -c file, an unknown key) is never ignored,
     * whatever the output. */
    if ((next = parse(argc, argv, &cli, &cfg)) != LF_CLI_RUN)
        rc = lf_cli_exit_code(next);
    else if ((err = lf_cli_producer_conf(&cli, &conf, errstr, sizeof(errstr))))
        rc = lf_cli_conf_failed(&cli, err, errstr);
    else if (cli.dump)
        rc = lf_cli_dump(&cli, conf);
    else
        rc = run(&cfg, conf);
    lf_conf_destroy(conf);
    lf_cli_free(&cli);
    return rc;
}
