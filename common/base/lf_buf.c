/* lf_buf.c: growable byte buffer, doubling. */
#include "lf_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lf_err_t lf_buf_reserve(lf_buf_t *b, size_t extra)
{
    size_t need = b->len + extra + 1, cap = b->cap ? b->cap : 256;
    char *p;

    if (need < b->len)
        return LF_ERR_NOMEM;
    if (need <= b->cap)
        return LF_OK;
    while (cap < need)
        cap *= 2;
    if (!(p = realloc(b->data, cap)))
        return LF_ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return LF_OK;
}

lf_err_t lf_buf_append(lf_buf_t *b, const void *data, size_t len)
{
    if (lf_buf_reserve(b, len))
        return LF_ERR_NOMEM;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return LF_OK;
}

lf_err_t lf_buf_puts(lf_buf_t *b, const char *s)
{
    return lf_buf_append(b, s, strlen(s));
}

lf_err_t lf_buf_printf(lf_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || lf_buf_reserve(b, (size_t)n))
        return LF_ERR_NOMEM;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return LF_OK;
}

void lf_buf_reset(lf_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void lf_buf_free(lf_buf_t *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
