/* lf_common.h: error codes, exit codes and small helpers every module uses. */
#ifndef LF_COMMON_H
#define LF_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifndef LF_VERSION
#define LF_VERSION "0.1.0"
#endif

/** Result of a function that can fail; LF_OK == 0. The sentence explaining a
 *  failure goes to the caller's errstr buffer. */
typedef enum lf_err_e {
    LF_OK = 0,
    LF_ERR_INVALID,   /**< input violates the contract (bad data) */
    LF_ERR_NOMEM,     /**< out of memory */
    LF_ERR_IO,        /**< file or system call failed */
    LF_ERR_KAFKA,     /**< librdkafka failed */
    LF_ERR_PG,        /**< PostgreSQL failed */
    LF_ERR_TEMPORARY, /**< worth retrying later */
    LF_ERR_STALE,     /**< the database is not where the caller believed
                           (stored offsets moved or lost): re-read the
                           stored offsets, do not retry as is */
    LF_ERR_CONFIG,    /**< the configuration cannot do this (an erasure
                           without a pseudonym key): stop, nothing written;
                           it goes through once configured */
} lf_err_t;

/* sysexits(3) codes, listed in every program's --help. */
#define LF_EX_OK          0
#define LF_EX_USAGE       64
#define LF_EX_DATAERR     65
#define LF_EX_UNAVAILABLE 69
#define LF_EX_SOFTWARE    70
#define LF_EX_IOERR       74
#define LF_EX_TEMPFAIL    75
#define LF_EX_NOPERM      77
#define LF_EX_CONFIG      78

/** snprintf into errstr if errstr is not NULL; returns err for chaining. */
lf_err_t lf_seterr(lf_err_t err, char *errstr, size_t errstr_size,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/** Milliseconds on the monotonic clock. */
int64_t lf_now_mono_ms(void);

/** Milliseconds since the epoch on the wall clock. */
int64_t lf_now_ms(void);

#endif
