/* lf_progress.c: a progress bar on a terminal, periodic lines elsewhere. */
#include "lf_progress.h"

#include "lf_log.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

struct lf_progress_s {
    char *what, *unit;
    uint64_t total, done;
    lf_progress_mode_t mode; /* BAR, LINES or NONE once resolved */
    int64_t started, last_draw;
    bool drawn, finished;
};

int lf_progress_mode_parse(const char *s)
{
    static const char *names[] = {"auto", "bar", "lines", "none"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

lf_progress_t *lf_progress_new(const char *what, const char *unit,
                               uint64_t total, lf_progress_mode_t mode)
{
    lf_progress_t *pr = calloc(1, sizeof(*pr));

    if (!pr || !(pr->what = strdup(what)) || !(pr->unit = strdup(unit))) {
        if (pr)
            free(pr->what);
        free(pr);
        return NULL;
    }
    if (mode == LF_PROGRESS_AUTO) {
        const char *term = getenv("TERM");
        mode = isatty(STDERR_FILENO) && term && strcmp(term, "dumb")
                   ? LF_PROGRESS_BAR
                   : LF_PROGRESS_LINES;
    }
    /* -q silences progress like any other info line. */
    if (lf_log_level < LF_LOG_INFO)
        mode = LF_PROGRESS_NONE;
    pr->mode = mode;
    pr->total = total;
    pr->started = pr->last_draw = lf_now_mono_ms();
    return pr;
}

void lf_progress_set_total(lf_progress_t *pr, uint64_t total)
{
    if (pr)
        pr->total = total;
}

char *lf_progress_format_eta(int64_t s, char *buf, size_t size)
{
    if (s < 0)
        snprintf(buf, size, "?");
    else if (s < 3600)
        snprintf(buf, size, "%d:%02d", (int)(s / 60), (int)(s % 60));
    else
        snprintf(buf, size, "%" PRId64 ":%02d:%02d", s / 3600,
                 (int)(s / 60 % 60), (int)(s % 60));
    return buf;
}

/* Units per second so far; 0 before the first tenth of a second. */
static double rate_of(uint64_t done, int64_t elapsed_ms)
{
    return elapsed_ms >= 100 ? (double)done * 1000.0 / (double)elapsed_ms : 0.0;
}

/* Seconds left at the average rate so far, -1 when unknown. */
static int64_t eta_of(uint64_t done, uint64_t total, double rate)
{
    if (!total || rate <= 0.0)
        return -1;
    if (done >= total)
        return 0;
    return (int64_t)((double)(total - done) / rate + 0.5);
}

char *lf_progress_format(char *buf, size_t size, const char *what,
                         const char *unit, uint64_t done, uint64_t total,
                         int64_t elapsed_ms, int width)
{
    char tail[160], eta[32];
    double rate = rate_of(done, elapsed_ms);
    int n;

    if (total) {
        double pct =
            done >= total ? 100.0 : 100.0 * (double)done / (double)total;
        snprintf(tail, sizeof(tail),
                 " %5.1f%% %" PRIu64 "/%" PRIu64 " %s %.0f/s ETA %s", pct, done,
                 total, unit, rate,
                 lf_progress_format_eta(eta_of(done, total, rate), eta,
                                        sizeof(eta)));
    } else {
        snprintf(tail, sizeof(tail), " %" PRIu64 " %s %.0f/s", done, unit,
                 rate);
    }
    n = snprintf(buf, size, "%s ", what);
    if (n < 0 || (size_t)n >= size)
        return buf;
    /* The bar takes what the words leave, between 10 and 40 columns. */
    int bar = width - n - (int)strlen(tail) - 2;
    if (bar > 40)
        bar = 40;
    if (total && bar >= 10 && (size_t)n + (size_t)bar + 3 < size) {
        int fill = done >= total
                       ? bar
                       : (int)((double)bar * (double)done / (double)total);
        buf[n++] = '[';
        for (int i = 0; i < bar; i++)
            buf[n++] = i < fill ? '=' : (i == fill ? '>' : ' ');
        buf[n++] = ']';
        buf[n] = '\0';
    }
    snprintf(buf + n, size - (size_t)n, "%s", tail);
    return buf;
}

static int term_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    return 80;
}

static void draw(lf_progress_t *pr, int64_t now)
{
    int64_t elapsed = now - pr->started;

    pr->last_draw = now;
    if (pr->mode == LF_PROGRESS_BAR) {
        char line[512];
        int width = term_width();
        size_t n;
        lf_progress_format(line + 1, sizeof(line) - 8, pr->what, pr->unit,
                           pr->done, pr->total, elapsed, width - 1);
        line[0] = '\r';
        n = strlen(line);
        /* Clear what a longer previous line left behind. */
        memcpy(line + n, "\033[K", 4);
        if (write(STDERR_FILENO, line, n + 3) < 0) {
            /* a progress bar that cannot be drawn is not an error */
        }
        pr->drawn = true;
    } else if (pr->mode == LF_PROGRESS_LINES) {
        char eta[32];
        double rate = rate_of(pr->done, elapsed);
        LF_LOG(LF_LOG_INFO,
               "msg=progress what=%s done=%" PRIu64 " total=%" PRIu64
               " unit=%s rate_per_s=%.0f eta=%s",
               pr->what, pr->done, pr->total, pr->unit, rate,
               lf_progress_format_eta(eta_of(pr->done, pr->total, rate), eta,
                                      sizeof(eta)));
    }
}

void lf_progress_update(lf_progress_t *pr, uint64_t done)
{
    int64_t now;

    if (!pr || pr->mode == LF_PROGRESS_NONE || pr->finished)
        return;
    pr->done = done;
    now = lf_now_mono_ms();
    if (now - pr->last_draw >= (pr->mode == LF_PROGRESS_BAR
                                    ? LF_PROGRESS_BAR_INTERVAL_MS
                                    : LF_PROGRESS_LINE_INTERVAL_MS))
        draw(pr, now);
}

void lf_progress_finish(lf_progress_t *pr)
{
    if (!pr || pr->finished)
        return;
    pr->finished = true;
    /* Lines: the summary line says the rest. Bar: show the end state. */
    if (pr->mode == LF_PROGRESS_BAR) {
        draw(pr, lf_now_mono_ms());
        if (write(STDERR_FILENO, "\n", 1) < 0) {
            /* nothing to do */
        }
    }
}

void lf_progress_destroy(lf_progress_t *pr)
{
    if (!pr)
        return;
    lf_progress_finish(pr);
    free(pr->what);
    free(pr->unit);
    free(pr);
}
