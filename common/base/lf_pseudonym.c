/* lf_pseudonym.c: keyed pseudonyms for erased lead ids (lf_pseudonym.h). */
#include "lf_pseudonym.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_MIN 32  /* bytes */
#define KEY_MAX 128 /* bytes */
#define KEYS    8   /* the current key and older ones */
#define BLOCK   64  /* SHA-256's block, HMAC's padded key */
#define MAC     32  /* SHA-256's output */

/* A key, and HMAC's two keyed states computed once: SHA-256 after the
 * block (key ^ ipad), and after (key ^ opad). A pseudonym then costs two
 * copies of them and two short hashes, where HMAC() fetches the digest,
 * allocates its contexts and hashes both padded blocks again on every
 * call (~5 times the time). The states are never written after
 * key_prepare(): several threads may read them at once. Owned. */
typedef struct key_s {
    unsigned char b[KEY_MAX];
    size_t n;
    EVP_MD_CTX *inner, *outer; /* NULL until prepared */
} key_t_;

struct lf_pseudonym_s {
    key_t_ keys[KEYS];
    size_t n;
};

/* SHA-256 of @p pad (BLOCK bytes) into *@p ctx (made if NULL). */
static bool keyed_state(EVP_MD_CTX **ctx, const unsigned char *pad)
{
    if (!*ctx && !(*ctx = EVP_MD_CTX_new()))
        return false;
    return EVP_DigestInit_ex2(*ctx, EVP_sha256(), NULL) &&
           EVP_DigestUpdate(*ctx, pad, BLOCK);
}

/* HMAC's keyed states of @p k (RFC 2104: a key longer than the block is
 * hashed first, a shorter one padded with zeros). @returns false when out
 * of memory (then @p k is not usable). */
static bool key_prepare(key_t_ *k)
{
    unsigned char k0[BLOCK] = {0}, pad[BLOCK];
    unsigned int len;
    bool ok = true;

    if (k->n > BLOCK)
        ok = EVP_Digest(k->b, k->n, k0, &len, EVP_sha256(), NULL);
    else
        memcpy(k0, k->b, k->n);
    for (size_t i = 0; i < BLOCK; i++)
        pad[i] = k0[i] ^ 0x36;
    ok = ok && keyed_state(&k->inner, pad);
    for (size_t i = 0; i < BLOCK; i++)
        pad[i] = k0[i] ^ 0x5c;
    ok = ok && keyed_state(&k->outer, pad);
    OPENSSL_cleanse(k0, sizeof(k0));
    OPENSSL_cleanse(pad, sizeof(pad));
    return ok;
}

/* HMAC-SHA-256 of @p id (@p n bytes) under @p k into @p mac, from its
 * keyed states. @returns false when out of memory. */
static bool key_mac(const key_t_ *k, const void *id, size_t n,
                    unsigned char *mac)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char h[MAC];
    unsigned int len;
    bool ok =
        c && EVP_MD_CTX_copy_ex(c, k->inner) && EVP_DigestUpdate(c, id, n) &&
        EVP_DigestFinal_ex(c, h, &len) && EVP_MD_CTX_copy_ex(c, k->outer) &&
        EVP_DigestUpdate(c, h, sizeof(h)) && EVP_DigestFinal_ex(c, mac, &len);

    EVP_MD_CTX_free(c);
    OPENSSL_cleanse(h, sizeof(h));
    return ok;
}

lf_pseudonym_t *lf_pseudonym_new(const void *key, size_t len)
{
    lf_pseudonym_t *ps = calloc(1, sizeof(*ps));

    if (ps && !lf_pseudonym_add_old(ps, key, len)) {
        free(ps);
        return NULL;
    }
    return ps;
}

bool lf_pseudonym_add_old(lf_pseudonym_t *ps, const void *key, size_t len)
{
    if (ps->n == KEYS || !len || len > KEY_MAX)
        return false;
    memcpy(ps->keys[ps->n].b, key, len);
    ps->keys[ps->n].n = len;
    if (!key_prepare(&ps->keys[ps->n]))
        return false;
    ps->n++;
    return true;
}

void lf_pseudonym_destroy(lf_pseudonym_t *ps)
{
    if (!ps)
        return;
    for (size_t i = 0; i < KEYS; i++) {
        EVP_MD_CTX_free(ps->keys[i].inner);
        EVP_MD_CTX_free(ps->keys[i].outer);
    }
    OPENSSL_cleanse(ps, sizeof(*ps));
    free(ps);
}

size_t lf_pseudonym_keys(const lf_pseudonym_t *ps)
{
    return ps ? ps->n : 0;
}

void lf_pseudonym_of(const lf_pseudonym_t *ps, size_t k, const void *id,
                     size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    size_t at = sizeof(LF_PSEUDONYM_PREFIX) - 1;

    memcpy(out, LF_PSEUDONYM_PREFIX, at);
    if (!key_mac(&ps->keys[k], id, n, mac)) /* no memory: the slow way */
        HMAC(EVP_sha256(), ps->keys[k].b, (int)ps->keys[k].n,
             (const unsigned char *)id, n, mac, &len);
    for (size_t i = 0; i < 16; i++) {
        out[at++] = hex[mac[i] >> 4];
        out[at++] = hex[mac[i] & 15];
    }
    out[at] = '\0';
}

bool lf_pseudonym_is(const char *id)
{
    size_t p = sizeof(LF_PSEUDONYM_PREFIX) - 1;

    if (strncmp(id, LF_PSEUDONYM_PREFIX, p) || strlen(id) != LF_PSEUDONYM_LEN)
        return false;
    for (const char *s = id + p; *s; s++)
        if (!isxdigit((unsigned char)*s) || isupper((unsigned char)*s))
            return false;
    return true;
}

static int unhex(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* One key's hex digits (spaces around trimmed) into @p k. @returns an
 * error message or NULL. */
static const char *parse_key(const char *s, key_t_ *k)
{
    size_t n;

    while (isspace((unsigned char)*s))
        s++;
    n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (n % 2)
        return "a key has an odd number of hex digits";
    if (n / 2 < KEY_MIN)
        return "a key is shorter than 32 bytes (64 hex digits)";
    if (n / 2 > KEY_MAX)
        return "a key is longer than 128 bytes";
    for (size_t i = 0; i < n; i += 2) {
        int hi = unhex(s[i]), lo = unhex(s[i + 1]);
        if (hi < 0 || lo < 0)
            return "a key holds a character that is not a hex digit";
        k->b[i / 2] = (unsigned char)(hi << 4 | lo);
    }
    k->n = n / 2;
    return NULL;
}

/* The keys of file @p path into @p ps. */
static lf_err_t load_file(lf_pseudonym_t *ps, const char *path, char *errstr,
                          size_t errstr_size)
{
    FILE *fp = fopen(path, "r");
    char line[4 * KEY_MAX];
    struct stat st;
    int lineno = 0;
    lf_err_t err = LF_OK;

    if (!fp)
        return lf_seterr(LF_ERR_IO, errstr, errstr_size,
                         "pseudonym key file %s: %s", path, strerror(errno));
    if (fstat(fileno(fp), &st)) {
        int e = errno;
        fclose(fp);
        return lf_seterr(LF_ERR_IO, errstr, errstr_size,
                         "pseudonym key file %s: %s", path, strerror(e));
    }
    if (st.st_mode & 0077) {
        fclose(fp);
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "pseudonym key file %s can be read by others "
                         "than its owner (mode %03o): chmod 600 it",
                         path, (unsigned)(st.st_mode & 0777));
    }
    /* Root reads anyone's file: a key that is another user's is one this
     * service was not given. */
    if (st.st_uid != geteuid()) {
        fclose(fp);
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "pseudonym key file %s belongs to uid %u, not to "
                         "the user this runs as (uid %u): run as its owner, "
                         "the projector's user",
                         path, (unsigned)st.st_uid, (unsigned)geteuid());
    }
    while (!err && fgets(line, sizeof(line), fp)) {
        const char *s = line, *why;
        lineno++;
        while (isspace((unsigned char)*s))
            s++;
        if (!*s || *s == '#')
            continue;
        if (ps->n == KEYS)
            err = lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                            "pseudonym key file %s: more than %d keys", path,
                            KEYS);
        else if ((why = parse_key(s, &ps->keys[ps->n])))
            err = lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                            "pseudonym key file %s line %d: %s", path, lineno,
                            why);
        else if (!key_prepare(&ps->keys[ps->n]))
            err = lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
        else
            ps->n++;
    }
    OPENSSL_cleanse(line, sizeof(line));
    fclose(fp);
    if (!err && !ps->n)
        err = lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                        "pseudonym key file %s holds no key", path);
    return err;
}

lf_err_t lf_pseudonym_from_conf(const lf_conf_t *conf, lf_pseudonym_t **out,
                                char *errstr, size_t errstr_size)
{
    const char *file = lf_conf_get(conf, LF_CONF_PSEUDONYM_KEY_FILE);
    const char *hexkey = lf_conf_get(conf, LF_CONF_PSEUDONYM_KEY);
    lf_pseudonym_t *ps;
    const char *why;
    lf_err_t err = LF_OK;

    *out = NULL;
    if ((!file || !*file) && (!hexkey || !*hexkey))
        return LF_OK;
    if (!(ps = calloc(1, sizeof(*ps))))
        return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
    if (hexkey && *hexkey) {
        if ((why = parse_key(hexkey, &ps->keys[0])))
            err = lf_seterr(LF_ERR_INVALID, errstr, errstr_size, "%s: %s",
                            LF_CONF_PSEUDONYM_KEY, why);
        else if (!key_prepare(&ps->keys[0]))
            err = lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
        else
            ps->n = 1;
    }
    if (!err && file && *file)
        err = load_file(ps, file, errstr, errstr_size);
    if (err) {
        lf_pseudonym_destroy(ps);
        return err;
    }
    *out = ps;
    return LF_OK;
}
