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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *fp)
{
    fputs("Usage: leadflow-report [options]\n"
          "Report the lead funnel from the views in schema funnel.\n"
          "\n"
          "  -d, --db CONNINFO   libpq conninfo or URI (default: $LEADFLOW_DB, "
          "then\n"
          "                      libpq's PG* environment); a role granted\n"
          "                      leadflow_analyst is enough\n"
          "  -c, --config FILE   key=value configuration file (db=...)\n"
          "  -X key=value        a setting, over -c and $LEADFLOW_*; -X dump "
          "prints the\n"
          "                      effective settings (secrets masked) and "
          "exits\n"
          "      --from DATE     only leads captured on or after DATE\n"
          "                      (YYYY-MM-DD, UTC)\n"
          "      --to DATE       only leads captured on or before DATE\n"
          "      --channel C     only leads captured in channel C\n"
          "  -f, --format FMT    stdout: text (default, for a terminal), csv, "
          "json or html\n"
          "      --html FILE     also write the HTML page (inline SVG charts, "
          "no external\n"
          "                      assets) to FILE\n"
          "  -v, --verbose       more logging (repeatable)\n"
          "  -q, --quiet         less logging\n"
          "  -h, --help          this help\n"
          "  -V, --version       versions of leadflow and libpq\n"
          "\n"
          "Secrets never go on the command line: put the password in "
          "~/.pgpass or\n"
          "PGPASSFILE, or in the -c file (chmod 600).\n"
          "\n"
          "Every number is a value of a view in schema funnel (stage_counts, "
          "conversion,\n"
          "time_in_stage, handoff_sla_by_owner, recycle_reasons, cohorts,\n"
          "source_performance), filtered by its *_filtered function, all "
          "read in one\n"
          "snapshot. CSV rows are section,key,key2,metric,value; the HTML "
          "page carries\n"
          "the same five in the data-section, data-key, data-key2, "
          "data-metric and\n"
          "data-value attributes of each number.\n"
          "\n"
          "Exit codes: 0 done, 64 usage, 69 PostgreSQL unreachable or the "
          "views missing\n"
          "  or unreadable, 70 internal error, 74 cannot write the output,\n"
          "  78 bad configuration.\n",
          fp);
}

static int usage_error(const char *fmt, const char *arg)
{
    fputs("leadflow-report: ", stderr);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    usage(stderr);
    return LF_EX_USAGE;
}

/* Write the HTML page next to @p path and rename it into place, so a
 * reader (a browser, a web server) never sees half a page. */
static int write_html_file(const lf_report_t *rep, const char *path)
{
    size_t n = strlen(path) + 8;
    char *tmp = malloc(n), errstr[512];
    mode_t mask;
    FILE *fp = NULL;
    int fd, rc = 0;

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
    if (fchmod(fd, 0666 & ~mask) || !(fp = fdopen(fd, "w"))) {
        fprintf(stderr, "leadflow-report: %s: %s\n", tmp, strerror(errno));
        close(fd);
        rc = LF_EX_IOERR;
    } else if (lf_report_write(rep, LF_REPORT_HTML, fp, errstr,
                               sizeof(errstr))) {
        fprintf(stderr, "leadflow-report: %s: %s\n", path, errstr);
        rc = LF_EX_IOERR;
    }
    if (fp && fclose(fp) && !rc) {
        fprintf(stderr, "leadflow-report: %s: %s\n", path, strerror(errno));
        rc = LF_EX_IOERR;
    }
    if (!rc && rename(tmp, path)) {
        fprintf(stderr, "leadflow-report: %s: %s\n", path, strerror(errno));
        rc = LF_EX_IOERR;
    }
    if (rc)
        unlink(tmp);
    else
        LF_LOG(LF_LOG_INFO, "msg=\"HTML report written\" path=%s", path);
    free(tmp);
    return rc;
}

static int run(int argc, char **argv, lf_cli_t *cli)
{
    enum { OPT_FROM = 256, OPT_TO, OPT_CHANNEL, OPT_HTML };
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},
        {"config", required_argument, NULL, 'c'},
        {"from", required_argument, NULL, OPT_FROM},
        {"to", required_argument, NULL, OPT_TO},
        {"channel", required_argument, NULL, OPT_CHANNEL},
        {"format", required_argument, NULL, 'f'},
        {"html", required_argument, NULL, OPT_HTML},
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    lf_report_filter_t filter = {NULL, NULL, NULL};
    lf_report_format_t fmt = LF_REPORT_TEXT;
    const char *db = NULL, *html = NULL;
    lf_conf_t *conf = NULL;
    lf_report_t *rep = NULL;
    PGconn *conn = NULL;
    char errstr[1024], q[1100];
    int opt, rc = 0;

    lf_log_init("report");
    while ((opt = getopt_long(argc, argv, "d:c:f:X:vqhV", opts, NULL)) != -1) {
        switch (opt) {
        case 'X':
            if (!lf_cli_x(cli, optarg)) {
                rc = usage_error("-X \"%s\": expected key=value or dump",
                                 optarg);
                goto out;
            }
            break;
        case 'd':
            db = optarg;
            break;
        case 'c':
            cli->config = optarg;
            break;
        case OPT_FROM:
        case OPT_TO:
            if (lf_report_check_date(optarg, errstr, sizeof(errstr)))
                return usage_error(opt == OPT_FROM ? "--from %s" : "--to %s",
                                   errstr);
            *(opt == OPT_FROM ? &filter.from : &filter.to) = optarg;
            break;
        case OPT_CHANNEL:
            if (!*optarg)
                return usage_error("--channel%s: expected a channel name", "");
            filter.channel = optarg;
            break;
        case 'f':
            if (lf_report_parse_format(optarg, &fmt))
                return usage_error("--format %s: expected text, csv, json "
                                   "or html",
                                   optarg);
            break;
        case OPT_HTML:
            if (!*optarg)
                return usage_error("--html%s: expected a file name", "");
            html = optarg;
            break;
        case 'v':
            lf_log_level++;
            break;
        case 'q':
            lf_log_level--;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            lf_cli_version("leadflow-report");
            goto out;
        default:
            usage(stderr);
            return LF_EX_USAGE;
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument \"%s\"", argv[optind]);
    /* Both are YYYY-MM-DD, so text order is date order. */
    if (filter.from && filter.to && strcmp(filter.from, filter.to) > 0)
        return usage_error("--from is after --to%s: no date can match", "");

    /* -d over -X over -c FILE over $LEADFLOW_DB over libpq's PG*
     * environment. */
    if (!(conf = lf_conf_new())) {
        fprintf(stderr, "leadflow-report: out of memory\n");
        return LF_EX_SOFTWARE;
    }
    if ((rc = lf_cli_apply(cli, conf, errstr, sizeof(errstr)))) {
        fprintf(stderr, "leadflow-report: %s%s\n",
                rc == LF_EX_USAGE ? "-X " : "", errstr);
        goto out;
    }
    if (db && lf_conf_set(conf, LF_CONF_DB, db, errstr, sizeof(errstr))) {
        fprintf(stderr, "leadflow-report: %s\n", errstr);
        rc = LF_EX_SOFTWARE;
        goto out;
    }
    if (cli->dump) {
        lf_conf_dump(conf, stdout);
        goto out;
    }

    conn = lf_pg_connect(lf_conf_get(conf, LF_CONF_DB), errstr, sizeof(errstr));
    if (!conn) {
        fprintf(stderr, "leadflow-report: %s\n", errstr);
        rc = LF_EX_UNAVAILABLE;
        goto out;
    }
    rep = lf_report_fetch(conn, &filter, errstr, sizeof(errstr));
    if (!rep) {
        fprintf(stderr, "leadflow-report: %s\n", errstr);
        rc = LF_EX_UNAVAILABLE;
        goto out;
    }
    LF_LOG(LF_LOG_DEBUG, "msg=\"report read\" from=%s to=%s channel=%s",
           filter.from ? filter.from : "-", filter.to ? filter.to : "-",
           filter.channel ? lf_log_quote(filter.channel, q, sizeof(q)) : "-");
    if (lf_report_write(rep, fmt, stdout, errstr, sizeof(errstr))) {
        fprintf(stderr, "leadflow-report: stdout: %s\n", errstr);
        rc = LF_EX_IOERR;
        goto out;
    }
    if (html)
        rc = write_html_file(rep, html);
out:
    lf_report_destroy(rep);
    PQfinish(conn);
    lf_conf_destroy(conf);
    return rc;
}

int main(int argc, char **argv)
{
    return lf_cli_main(argc, argv, run);
}
