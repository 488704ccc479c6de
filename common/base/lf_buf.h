/* lf_buf.h: a growable byte buffer (messages, JSON lines, COPY data). */
#ifndef LF_BUF_H
#define LF_BUF_H

#include "lf_common.h"

#include <stddef.h>

/** Bytes data[0..len), capacity cap. Zero-initialise ({0}) to start empty;
 *  lf_buf_free() releases it. Data is always NUL-terminated past len when
 *  cap > 0, so text can be used as a C string. */
typedef struct lf_buf_s {
    char *data;
    size_t len;
    size_t cap;
} lf_buf_t;

/** Make room for @p extra more bytes. @returns LF_OK or LF_ERR_NOMEM. */
lf_err_t lf_buf_reserve(lf_buf_t *b, size_t extra);
lf_err_t lf_buf_append(lf_buf_t *b, const void *data, size_t len);
lf_err_t lf_buf_puts(lf_buf_t *b, const char *s);
lf_err_t lf_buf_printf(lf_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/** Forget the contents, keep the memory. */
void lf_buf_reset(lf_buf_t *b);
/** Release the memory. NULL-safe. */
void lf_buf_free(lf_buf_t *b);

#endif
