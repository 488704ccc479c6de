/* lf_log.h: one logging macro, syslog levels, one key=value line per event
 * on stderr: "ts=... level=info comp=project msg="..." key=value ...". */
#ifndef LF_LOG_H
#define LF_LOG_H

#include <librdkafka/rdkafka.h>

enum {
    LF_LOG_EMERG = 0,
    LF_LOG_ALERT,
    LF_LOG_CRIT,
    LF_LOG_ERR,
    LF_LOG_WARNING,
    LF_LOG_NOTICE,
    LF_LOG_INFO,
    LF_LOG_DEBUG
};

/** The current level: lines above it are dropped. Default LF_LOG_INFO;
 *  each -v adds one, each -q removes one. */
extern int lf_log_level;

/** Name the program's component ("emit", "project", ...) in every line. */
void lf_log_init(const char *component);

/**
 * Write one line: level, time, component, then @p fmt which should be
 * key=value pairs (a human sentence goes in msg="..."). Thread-safe (one
 * write(2) per line). Use the LF_LOG macro.
 */
void lf_log_write(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define LF_LOG(level, ...)                                                     \
    do {                                                                       \
        if ((level) <= lf_log_level)                                           \
            lf_log_write((level), __VA_ARGS__);                                \
    } while (0)

/** librdkafka's log_cb: routes its logs through LF_LOG. Runs on librdkafka's
 *  threads, so it calls nothing of librdkafka's. */
void lf_log_rdkafka(const rd_kafka_t *rk, int level, const char *fac,
                    const char *buf);

/** Write @p s quoted for a key=value line (quotes, backslashes and control
 *  characters escaped) into buf. @returns buf. */
char *lf_log_quote(const char *s, char *buf, size_t size);

#endif
