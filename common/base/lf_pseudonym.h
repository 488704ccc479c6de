/**
 * @file lf_pseudonym.h
 * Keyed pseudonyms for erased lead ids: "erased:" and the first 128 bits of
 * HMAC-SHA-256(key, lead id) in hex. Stable under one key, and not
 * reversible by hashing guesses without the key (docs/security.md).
 *
 * The key ring comes from the configuration: pseudonym.key.file names a
 * file (mode 0600 or stricter: readable by the projector's user only) with
 * one key per line, each 64 or more hex digits (32 bytes or more); '#'
 * lines and blank lines are ignored. The first key makes new pseudonyms;
 * the others are older keys still recognised, so that rotating adds a line
 * at the top and erased people stay erased. pseudonym.key (hex) may stand
 * in a -c file or the environment (LEADFLOW_PSEUDONYM_KEY), never on the
 * command line.
 */
#ifndef LF_PSEUDONYM_H
#define LF_PSEUDONYM_H

#include <stdbool.h>
#include <stddef.h>

#include "lf_common.h"
#include "lf_conf.h"

#define LF_PSEUDONYM_PREFIX        "erased:"
#define LF_PSEUDONYM_LEN           (sizeof(LF_PSEUDONYM_PREFIX) - 1 + 32)
#define LF_CONF_PSEUDONYM_KEY      "pseudonym.key"
#define LF_CONF_PSEUDONYM_KEY_FILE "pseudonym.key.file"

typedef struct lf_pseudonym_s lf_pseudonym_t;

/**
 * The key ring the configuration names, in *@p out (NULL when it names
 * none: then nothing can be erased). @returns LF_OK; LF_ERR_IO when the
 * file cannot be read; LF_ERR_INVALID when it is readable by others, holds
 * no key, or a key is not hex or shorter than 32 bytes (the reason, never
 * the key, in errstr).
 */
lf_err_t lf_pseudonym_from_conf(const lf_conf_t *conf, lf_pseudonym_t **out,
                                char *errstr, size_t errstr_size);

/** A key ring of one key (tests, tools). NULL when out of memory. */
lf_pseudonym_t *lf_pseudonym_new(const void *key, size_t len);

/** Add an older key, still recognised (tests). @returns false on no memory. */
bool lf_pseudonym_add_old(lf_pseudonym_t *ps, const void *key, size_t len);

void lf_pseudonym_destroy(lf_pseudonym_t *ps);

/** How many keys the ring holds (the current one first). */
size_t lf_pseudonym_keys(const lf_pseudonym_t *ps);

/**
 * The pseudonym of @p id (@p n bytes) under key @p k of the ring (0: the
 * current one) into @p out (LF_PSEUDONYM_LEN + 1 bytes, NUL-terminated).
 */
void lf_pseudonym_of(const lf_pseudonym_t *ps, size_t k, const void *id,
                     size_t n, char *out);

/** Is @p id shaped like a pseudonym (the prefix and 32 lower-case hex)? */
bool lf_pseudonym_is(const char *id);

#endif
