/* lf_progress.h: the progress of a long command on stderr: a redrawn bar on
 * a terminal (done/total, rate, ETA), periodic key=value lines otherwise. */
#ifndef LF_PROGRESS_H
#define LF_PROGRESS_H

#include "lf_common.h"

#include <stdint.h>

/** How progress is shown. AUTO: a bar when stderr is a terminal (and TERM
 *  is not "dumb"), lines otherwise; nothing below log level info (-q). */
typedef enum lf_progress_mode_e {
    LF_PROGRESS_AUTO = 0,
    LF_PROGRESS_BAR,
    LF_PROGRESS_LINES,
    LF_PROGRESS_NONE
} lf_progress_mode_t;

/** Seconds between two plain lines. */
#define LF_PROGRESS_LINE_INTERVAL_MS 5000
/** Shortest time between two redraws of the bar. */
#define LF_PROGRESS_BAR_INTERVAL_MS 100

typedef struct lf_progress_s lf_progress_t;

/**
 * Start showing the progress of @p what ("rebuild", "dump", ...; copied)
 * counted in @p unit ("events", "messages"; copied) out of @p total (0:
 * unknown, then no percentage and no ETA).
 * @returns a reporter to end with lf_progress_destroy(), or NULL if out of
 * memory (callers may pass NULL to every other call: it does nothing).
 */
lf_progress_t *lf_progress_new(const char *what, const char *unit,
                               uint64_t total, lf_progress_mode_t mode);

/** Change the total (it became known, or the estimate moved). */
void lf_progress_set_total(lf_progress_t *pr, uint64_t total);

/** Report @p done units so far. Cheap: draws only when it is time. */
void lf_progress_update(lf_progress_t *pr, uint64_t done);

/** Draw the final state and end the bar's line, so the summary that
 *  follows starts on a fresh line. Idempotent. */
void lf_progress_finish(lf_progress_t *pr);

/** Finish (if not done) and free. NULL-safe. */
void lf_progress_destroy(lf_progress_t *pr);

/** "auto", "bar", "lines" or "none". @returns the mode or -1. */
int lf_progress_mode_parse(const char *s);

/**
 * Format one bar line ("rebuild [=====>    ]  45.2% 45210/100000 events
 * 12345/s ETA 0:04") fitting @p width columns into @p buf. Pure, for
 * tests. @returns @p buf.
 */
char *lf_progress_format(char *buf, size_t size, const char *what,
                         const char *unit, uint64_t done, uint64_t total,
                         int64_t elapsed_ms, int width);

/** Format @p seconds as "0:04", "12:34" or "3:02:01" into @p buf (>= 16
 *  bytes); negative: "?". @returns buf. */
char *lf_progress_format_eta(int64_t seconds, char *buf, size_t size);

#endif
