/* leadflow-report: the funnel in numbers and charts, from the same views the
 * analysts query: a terminal summary, CSV or JSON for scripts, and one
 * self-contained HTML page with inline SVG charts. */
#include "lf_cli.h"
#include "lf_conf.h"
#include "lf_log.h"
#include "lf_pg.h"
#include "lf_report.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What the command line asks for. */
typedef struct report_cfg_s {
    lf_report_filter_t filter;
    lf_report_format_t fmt;
    const char *html; /* --html FILE, or NULL */
} report_cfg_t;

enum { OPT_FROM = 256, OPT_TO, OPT_CHANNEL, OPT_HTML };

static lf_err_t own_opt(void *arg, int opt, const char *val, char *errstr,
                        size_t errstr_size)
{
    report_cfg_t *cfg = arg;
    char why[256];

    switch (opt) {
    case OPT_FROM:
    case OPT_TO:
        if (lf_report_check_date(val, why, sizeof(why)))
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size, "%s %s",
                             opt == OPT_FROM ? "--from" : "--to", why);
        *(opt == OPT_FROM ? &cfg->filter.from : &cfg->filter.to) = val;
        return LF_OK;
    case OPT_CHANNEL:
        if (!*val)
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "--channel: expected a channel name");
        cfg->filter.channel = val;
        return LF_OK;
    case 'f':
        if (lf_report_parse_format(val, &cfg->fmt))
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "--format %s: expected text, csv, json or html",
                             val);
        return LF_OK;
    default: /* OPT_HTML */
        if (!*val)
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "--html: expected a file name");
        cfg->html = val;
        return LF_OK;
    }
}

static const struct option longopts[] = {
    {"from", required_argument, NULL, OPT_FROM},
    {"to", required_argument, NULL, OPT_TO},
    {"channel", required_argument, NULL, OPT_CHANNEL},
    {"format", required_argument, NULL, 'f'},
    {"html", required_argument, NULL, OPT_HTML},
    {NULL, 0, NULL, 0}};

static const lf_cli_spec_t spec = {
    .prog = "leadflow-report",
    .synopsis = "leadflow-report [options]\n"
                "Report the lead funnel from the views in schema funnel.",
    .shared = LF_CLI_DB | LF_CLI_CONF | LF_CLI_VERBOSE,
    .own_help =
        "      --from DATE        only leads captured on or after DATE\n"
        "                         (YYYY-MM-DD, UTC)\n"
        "      --to DATE          only leads captured on or before DATE\n"
        "      --channel C        only leads captured in channel C\n"
        "  -f, --format FMT       stdout: text (default, for a terminal), "
        "csv, json\n"
        "                         or html\n"
        "      --html FILE        also write the HTML page (inline SVG "
        "charts, no\n"
        "                         external assets) to FILE\n",
    .notes =
        "A role granted leadflow_analyst is enough for -d.\n"
        "Secrets never go on the command line: put the password in "
        "~/.pgpass or\n"
        "PGPASSFILE, or in the -c file (chmod 600).\n"
        "\n"
        "Every number is a value of a view in schema funnel (stage_counts, "
        "conversion,\n"
        "time_in_stage, handoff_sla_by_owner, recycle_reasons, cohorts,\n"
        "source_performance, accounts, pipeline, flows, score_outcomes,\n"
        "close_reasons, open_sla_breaches, recycle_response, roi,\n"
        "identity_summary), filtered by its *_filtered function, all read in "
        "one\nsnapshot. CSV rows are section,key,key2,metric,value; the "
        "HTML page carries\nthe same five in the data-section, data-key, "
        "data-key2, data-metric and\ndata-value attributes of each "
        "number.\n"
        "\n"
        "Exit codes: 0 done, 64 usage, 69 PostgreSQL unreachable or the "
        "views missing\n"
        "  or unreadable, 70 internal error, 74 cannot write the output,\n"
        "  78 bad configuration (a setting, a conninfo libpq cannot parse or\n"
        "     whose values it refuses).\n",
    .shortopts = "f:",
    .longopts = longopts,
    .own = own_opt,
    .max_args = 0,
};

/* Fill @p cfg and @p cli from argv. */
static lf_cli_next_t parse(int argc, char **argv, lf_cli_t *cli,
                           report_cfg_t *cfg)
{
    lf_cli_next_t next = lf_cli_parse(cli, &spec, cfg, argc, argv);

    /* Both are YYYY-MM-DD, so text order is date order. */
    if (next == LF_CLI_RUN && cfg->filter.from && cfg->filter.to &&
        strcmp(cfg->filter.from, cfg->filter.to) > 0)
        return lf_cli_usage_error(cli, "--from is after --to: no date can "
                                       "match");
    return next;
}

/* Write the page to @p fp and close it; failures named by @p path.
 * @returns an exit code. */
static int put_page(const lf_report_t *rep, FILE *fp, const char *path)
{
    char errstr[512];
    int rc = 0;

    if (lf_report_write(rep, LF_REPORT_HTML, fp, errstr, sizeof(errstr))) {
        fprintf(stderr, "leadflow-report: %s: %s\n", path, errstr);
        rc = LF_EX_IOERR;
    }
    if (fclose(fp) && !rc) {
        fprintf(stderr, "leadflow-report: %s: %s\n", path, strerror(errno));
        rc = LF_EX_IOERR;
    }
    return rc;
}

/* Write the page into @p path as it is (a device, a pipe, a link to
 * nothing yet: there is no file to rename over). */
static int write_html_direct(const lf_report_t *rep, const char *path)
{
    FILE *fp = fopen(path, "w");

    if (!fp) {
        fprintf(stderr, "leadflow-report: %s: %s\n", path, strerror(errno));
        return LF_EX_IOERR;
    }
    return put_page(rep, fp, path);
}

/* Write the page next to @p path, a regular file or none, and rename it
 * into place, so a reader (a browser, a web server) never sees half a
 * page. The file keeps @p mode when it had one (-1: a new file's). */
static int write_html_renamed(const lf_report_t *rep, const char *path,
                              long mode)
{
    size_t n = strlen(path) + 8;
    char *tmp = malloc(n);
    mode_t mask;
    FILE *fp = NULL;
    int fd, rc;

    if (!tmp)
        return LF_EX_SOFTWARE;
    snprintf(tmp, n, "%s.XXXXXX", path);
    if ((fd = mkstemp(tmp)) < 0) {
        fprintf(stderr, "leadflow-report: %s: %s\n", path, strerror(errno));
        free(tmp);
        return LF_EX_IOERR;
    }
    /* mkstemp makes it 0600; a report is as readable as any new file. */
    mask = umask(0);
    umask(mask);
    if (fchmod(fd, mode >= 0 ? (mode_t)mode : 0666 & ~mask) ||
        !(fp = fdopen(fd, "w"))) {
        fprintf(stderr, "leadflow-report: %s: %s\n", tmp, strerror(errno));
        close(fd);
        rc = LF_EX_IOERR;
    } else {
        rc = put_page(rep, fp, path);
    }
    if (!rc && rename(tmp, path)) {
        fprintf(stderr, "leadflow-report: %s: %s\n", path, strerror(errno));
        rc = LF_EX_IOERR;
    }
    if (rc)
        unlink(tmp);
    free(tmp);
    return rc;
}

/* Write the HTML page to @p path: a regular file (or a new one) is
 * replaced whole, through a symbolic link the file it names; anything
 * else (a device, a FIFO, a link to nothing yet) is written into. */
static int write_html_file(const lf_report_t *rep, const char *path)
{
    struct stat st, lst;
    bool exists = !stat(path, &st),
         link = !lstat(path, &lst) && S_ISLNK(lst.st_mode);
    long mode = exists ? (long)(st.st_mode & 07777) : -1;
    char *real = NULL;
    int rc;

    if ((exists && !S_ISREG(st.st_mode)) || (link && !exists)) {
        rc = write_html_direct(rep, path);
    } else if (link && !(real = realpath(path, NULL))) {
        fprintf(stderr, "leadflow-report: %s: %s\n", path, strerror(errno));
        rc = LF_EX_IOERR;
    } else {
        rc = write_html_renamed(rep, real ? real : path, mode);
    }
    free(real);
    if (!rc)
        LF_LOG(LF_LOG_INFO, "msg=\"HTML report written\" path=%s", path);
    return rc;
}

/* The settings: -d and -X in command-line order, over -c FILE, over
 * $LEADFLOW_DB, over libpq's PG* environment. @returns 0, or the exit code
 * of a failure, printed. *conf is the caller's to lf_conf_destroy(). */
static int settings(const lf_cli_t *cli, lf_conf_t **conf)
{
    char errstr[1024];
    lf_err_t err;

    if (!(*conf = lf_conf_new())) {
        fprintf(stderr, "leadflow-report: out of memory\n");
        return LF_EX_SOFTWARE;
    }
    if ((err = lf_cli_conf(cli, *conf, errstr, sizeof(errstr))))
        return lf_cli_conf_failed(cli, err, errstr);
    /* The report reads db only: a -X of anything else (a typo, a Kafka
     * setting) changes nothing, so say so. (-c files and LEADFLOW_* are
     * shared with the other programs: their other keys are expected.) */
    for (size_t i = 0; i < cli->n; i++) {
        char buf[72];
        const char *k = lf_cli_setting_key(&cli->set[i], buf, sizeof(buf));
        if (cli->set[i].key || (k && !strcmp(k, LF_CONF_DB)))
            continue; /* -d */
        if (k)
            LF_LOG(LF_LOG_WARNING,
                   "msg=\"a setting leadflow-report does not read: ignored "
                   "(it reads db only)\" key=%s",
                   k);
        else /* not shown: it may be a URL with a password */
            LF_LOG(LF_LOG_WARNING,
                   "msg=\"a -X argument whose key is no setting name: "
                   "ignored (leadflow-report reads db only)\"");
    }
    return 0;
}

/* Read the views and write the report. @returns an exit code. */
static int run(const lf_conf_t *conf, const report_cfg_t *cfg)
{
    lf_report_t *rep = NULL;
    PGconn *conn;
    char errstr[1024], q[1100];
    int rc = LF_EX_OK;

    if (lf_pg_conninfo_check(lf_conf_get(conf, LF_CONF_DB), errstr,
                             sizeof(errstr))) {
        fprintf(stderr, "leadflow-report: db: %s\n", errstr);
        return LF_EX_CONFIG;
    }
    conn = lf_pg_connect(lf_conf_get(conf, LF_CONF_DB), errstr, sizeof(errstr));
    if (!conn ||
        !(rep = lf_report_fetch(conn, &cfg->filter, errstr, sizeof(errstr)))) {
        fprintf(stderr, "leadflow-report: %s\n", errstr);
        PQfinish(conn);
        return LF_EX_UNAVAILABLE;
    }
    LF_LOG(LF_LOG_DEBUG, "msg=\"report read\" from=%s to=%s channel=%s",
           cfg->filter.from ? cfg->filter.from : "-",
           cfg->filter.to ? cfg->filter.to : "-",
           cfg->filter.channel ? lf_log_quote(cfg->filter.channel, q, sizeof(q))
                               : "-");
    if (lf_report_write(rep, cfg->fmt, stdout, errstr, sizeof(errstr))) {
        fprintf(stderr, "leadflow-report: stdout: %s\n", errstr);
        rc = LF_EX_IOERR;
    } else if (cfg->html) {
        rc = write_html_file(rep, cfg->html);
    }
    lf_report_destroy(rep);
    PQfinish(conn);
    return rc;
}

int main(int argc, char **argv)
{
    report_cfg_t cfg = {.fmt = LF_REPORT_TEXT};
    lf_conf_t *conf = NULL;
    lf_cli_next_t next;
    lf_cli_t cli;
    int rc;

    lf_log_init("report");
    if ((next = parse(argc, argv, &cli, &cfg)) != LF_CLI_RUN)
        rc = lf_cli_exit_code(next);
    else if (!(rc = settings(&cli, &conf)) && cli.dump)
        rc = lf_cli_dump(&cli, conf);
    else if (!rc)
        rc = run(conf, &cfg);
    lf_conf_destroy(conf);
    lf_cli_free(&cli);
    return rc;
}
