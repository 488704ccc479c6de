/* lf_log.c: key=value log lines on stderr. */
#include "lf_log.h"

#include "lf_common.h"
#include "lf_time.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int lf_log_level = LF_LOG_INFO;
static const char *log_component = "leadflow";

static const char *level_names[] = {"emerg",   "alert",  "crit", "error",
                                    "warning", "notice", "info", "debug"};

void lf_log_init(const char *component)
{
    log_component = component;
}

void lf_log_write(int level, const char *fmt, ...)
{
    char line[4096], ts[40];
    va_list ap;
    int n;

    if (level < 0)
        level = 0;
    if (level > LF_LOG_DEBUG)
        level = LF_LOG_DEBUG;
    n = snprintf(line, sizeof(line), "ts=%s level=%s comp=%s ",
                 lf_time_format(lf_now_ms(), ts, sizeof(ts)),
                 level_names[level], log_component);
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    /* One write(2) so lines from several threads never interleave. */
    if (write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* nowhere left to report it */
    }
}

char *lf_log_quote(const char *s, char *buf, size_t size)
{
    size_t o = 0;

    if (size < 3) {
        if (size)
            buf[0] = '\0';
        return buf;
    }
    buf[o++] = '"';
    for (; *s && o + 3 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20) {
            buf[o++] = '\\';
            buf[o++] = c == '\n' ? 'n' : c == '\t' ? 't' : '?';
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

void lf_log_rdkafka(const rd_kafka_t *rk, int level, const char *fac,
                    const char *msg)
{
    char q[1024];
    (void)rk; /* no librdkafka calls here: this runs on its threads */
    LF_LOG(level, "src=rdkafka fac=%s msg=%s", fac,
           lf_log_quote(msg, q, sizeof(q)));
}
