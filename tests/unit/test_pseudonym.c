/* test_pseudonym.c: keyed pseudonyms and their key ring (lf_pseudonym). */
#include "lf_pseudonym.h"

#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A key of @p n bytes, k[i] = (a * i + b) mod 256, into @p k. */
static void make_key(unsigned char *k, size_t n, unsigned a, unsigned b)
{
    for (size_t i = 0; i < n; i++)
        k[i] = (unsigned char)((a * i + b) & 255);
}

/* What the pseudonym must be: OpenSSL's one-shot HMAC(), formatted. */
static void reference(const unsigned char *key, size_t klen, const void *id,
                      size_t n, char *out)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    cr_assert_not_null(HMAC(EVP_sha256(), key, (int)klen, id, n, mac, &len));
    strcpy(out, LF_PSEUDONYM_PREFIX);
    for (size_t i = 0; i < 16; i++)
        sprintf(out + strlen(out), "%02x", mac[i]);
}

Test(pseudonym, equals_openssl_hmac)
{
    static const size_t klens[] = {1, 20, 32, 63, 64, 65, 100, 128};
    unsigned char key[128], id[300];
    char got[LF_PSEUDONYM_LEN + 1], want[LF_PSEUDONYM_LEN + 1];

    make_key(id, sizeof(id), 13, 5);
    for (size_t i = 0; i < sizeof(klens) / sizeof(*klens); i++) {
        make_key(key, klens[i], 7, (unsigned)i);
        lf_pseudonym_t *ps = lf_pseudonym_new(key, klens[i]);
        cr_assert_not_null(ps);
        /* ids around SHA-256's block and padding boundaries, and long */
        for (size_t n = 0; n <= sizeof(id); n += n < 130 ? 1 : 17) {
            lf_pseudonym_of(ps, 0, id, n, got);
            reference(key, klens[i], id, n, want);
            cr_assert_str_eq(got, want, "key of %zu bytes, id of %zu", klens[i],
                             n);
            cr_assert(lf_pseudonym_is(got));
        }
        lf_pseudonym_destroy(ps);
    }
}

/* Vectors from python3's hmac, independently of OpenSSL:
 *   k = bytes((a * i + b) & 255 for i in range(n))
 *   hmac.new(k, id, hashlib.sha256).hexdigest()[:32] */
Test(pseudonym, equals_python_hmac)
{
    static const struct {
        size_t n;
        unsigned a, b;
        const char *id, *want;
    } v[] = {
        {32, 1, 1, "", "462476a897ddfdbd40d1420e08a5bcfe"},
        {32, 1, 1, "L-000001", "68f2dbea871823c51eec0e79b3819aa0"},
        {32, 1, 1, "Zo\xc3\xab \"x\"\t\\N", "aee3998b063c670270cece7599a64e60"},
        {64, 7, 3, "L-000001", "bebbf50c039065a02bc2d4bf0032652b"},
        {64, 7, 3, "Zo\xc3\xab \"x\"\t\\N", "ba53421fdd786eda952e7369073116d3"},
        {65, 5, 1, "", "5b5fcb09474bfffac181368b0e4e0660"},
        {65, 5, 1, "L-000001", "b849086cb6126157f517dd9adca90c22"},
        {128, 11, 9, "L-000001", "1e20189494a6c8926a8667e8dedf706e"},
        {128, 11, 9, "Zo\xc3\xab \"x\"\t\\N",
         "7b827939a1c826e17c5d914b627535d3"},
    };
    unsigned char key[128];
    char got[LF_PSEUDONYM_LEN + 1];

    for (size_t i = 0; i < sizeof(v) / sizeof(*v); i++) {
        make_key(key, v[i].n, v[i].a, v[i].b);
        lf_pseudonym_t *ps = lf_pseudonym_new(key, v[i].n);
        cr_assert_not_null(ps);
        lf_pseudonym_of(ps, 0, v[i].id, strlen(v[i].id), got);
        cr_expect_str_eq(got + strlen(LF_PSEUDONYM_PREFIX), v[i].want,
                         "vector %zu", i);
        lf_pseudonym_destroy(ps);
    }
}

/* RFC 4231's test cases 1 and 2 (keys shorter than 32 bytes: tools and
 * tests may use them; lf_pseudonym_from_conf refuses them). */
Test(pseudonym, rfc4231)
{
    unsigned char k1[20];
    char got[LF_PSEUDONYM_LEN + 1];
    lf_pseudonym_t *ps;

    memset(k1, 0x0b, sizeof(k1));
    cr_assert_not_null(ps = lf_pseudonym_new(k1, sizeof(k1)));
    lf_pseudonym_of(ps, 0, "Hi There", 8, got);
    cr_expect_str_eq(got, "erased:b0344c61d8db38535ca8afceaf0bf12b");
    lf_pseudonym_destroy(ps);
    cr_assert_not_null(ps = lf_pseudonym_new("Jefe", 4));
    lf_pseudonym_of(ps, 0, "what do ya want for nothing?", 28, got);
    cr_expect_str_eq(got, "erased:5bdcc146bf60754e6a042426089575c7");
    lf_pseudonym_destroy(ps);
}

Test(pseudonym, old_keys)
{
    unsigned char a[32], b[32];
    char pa[LF_PSEUDONYM_LEN + 1], pb[LF_PSEUDONYM_LEN + 1];
    char want[LF_PSEUDONYM_LEN + 1];
    lf_pseudonym_t *ps;

    make_key(a, sizeof(a), 3, 1);
    make_key(b, sizeof(b), 5, 2);
    cr_assert_not_null(ps = lf_pseudonym_new(a, sizeof(a)));
    cr_assert(lf_pseudonym_add_old(ps, b, sizeof(b)));
    cr_expect_eq(lf_pseudonym_keys(ps), 2);
    lf_pseudonym_of(ps, 0, "L-1", 3, pa);
    lf_pseudonym_of(ps, 1, "L-1", 3, pb);
    reference(a, sizeof(a), "L-1", 3, want);
    cr_expect_str_eq(pa, want);
    reference(b, sizeof(b), "L-1", 3, want);
    cr_expect_str_eq(pb, want);
    cr_expect_str_neq(pa, pb);
    /* refused: an empty key, one over 128 bytes, a ninth key */
    cr_expect_not(lf_pseudonym_add_old(ps, a, 0));
    cr_expect_not(lf_pseudonym_add_old(ps, a, 129));
    for (int i = 2; i < 8; i++)
        cr_expect(lf_pseudonym_add_old(ps, a, sizeof(a)));
    cr_expect_not(lf_pseudonym_add_old(ps, a, sizeof(a)));
    cr_expect_eq(lf_pseudonym_keys(ps), 8);
    lf_pseudonym_destroy(ps);
    lf_pseudonym_destroy(NULL);
    cr_expect_eq(lf_pseudonym_keys(NULL), 0);
}

Test(pseudonym, is)
{
    cr_expect(lf_pseudonym_is("erased:0123456789abcdef0123456789abcdef"));
    cr_expect_not(lf_pseudonym_is("erased:0123456789ABCDEF0123456789abcdef"));
    cr_expect_not(lf_pseudonym_is("erased:0123456789abcdef0123456789abcde"));
    cr_expect_not(lf_pseudonym_is("erased:0123456789abcdef0123456789abcdefa"));
    cr_expect_not(lf_pseudonym_is("erased:0123456789abcdeg0123456789abcdef"));
    cr_expect_not(lf_pseudonym_is("L-000001"));
    cr_expect_not(lf_pseudonym_is(""));
}

/* Several writer threads share one key ring. */
typedef struct {
    const lf_pseudonym_t *ps;
    int bad;
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    char id[32], got[LF_PSEUDONYM_LEN + 1], again[LF_PSEUDONYM_LEN + 1];

    for (int i = 0; i < 2000; i++) {
        int n = snprintf(id, sizeof(id), "L-%06d", i % 97);
        lf_pseudonym_of(w->ps, 0, id, (size_t)n, got);
        lf_pseudonym_of(w->ps, 0, id, (size_t)n, again);
        w->bad += strcmp(got, again) != 0;
    }
    return NULL;
}

Test(pseudonym, threads)
{
    unsigned char key[32];
    char want[LF_PSEUDONYM_LEN + 1], got[LF_PSEUDONYM_LEN + 1];
    pthread_t t[4];
    worker_t w[4];
    lf_pseudonym_t *ps;

    make_key(key, sizeof(key), 9, 4);
    cr_assert_not_null(ps = lf_pseudonym_new(key, sizeof(key)));
    for (int i = 0; i < 4; i++) {
        w[i] = (worker_t){ps, 0};
        cr_assert_eq(pthread_create(&t[i], NULL, worker, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        cr_expect_eq(w[i].bad, 0);
    }
    reference(key, sizeof(key), "L-000042", 8, want);
    lf_pseudonym_of(ps, 0, "L-000042", 8, got);
    cr_expect_str_eq(got, want);
    lf_pseudonym_destroy(ps);
}

/* ---- the key ring from the configuration -------------------------------- */

static lf_conf_t *conf;
static char path[64];

static void conf_setup(void)
{
    int fd;

    cr_assert_not_null(conf = lf_conf_new());
    strcpy(path, "/tmp/lf-test-pseudonym.XXXXXX");
    cr_assert_geq(fd = mkstemp(path), 0);
    close(fd);
}

static void conf_teardown(void)
{
    lf_conf_destroy(conf);
    unlink(path);
}

TestSuite(pseudonym_conf, .init = conf_setup, .fini = conf_teardown);

#define KEY_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY_B "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f"

/* Write @p text to the key file, mode @p mode, and name it in conf. */
static void key_file(const char *text, mode_t mode)
{
    FILE *fp = fopen(path, "w");
    char err[256];

    cr_assert_not_null(fp);
    fputs(text, fp);
    fclose(fp);
    cr_assert_eq(chmod(path, mode), 0);
    cr_assert_eq(
        lf_conf_set(conf, LF_CONF_PSEUDONYM_KEY_FILE, path, err, sizeof(err)),
        LF_OK);
}

/* The pseudonym of "L-1" under hex key @p hex (64 digits). */
static void under(const char *hex, char *out)
{
    unsigned char k[32];

    for (int i = 0; i < 32; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        k[i] = (unsigned char)v;
    }
    reference(k, sizeof(k), "L-1", 3, out);
}

Test(pseudonym_conf, none_configured)
{
    lf_pseudonym_t *ps = (lf_pseudonym_t *)1;
    char err[256] = "";

    cr_expect_eq(lf_pseudonym_from_conf(conf, &ps, err, sizeof(err)), LF_OK);
    cr_expect_null(ps);
}

Test(pseudonym_conf, two_keys_and_comments)
{
    char err[256] = "", got[LF_PSEUDONYM_LEN + 1], want[LF_PSEUDONYM_LEN + 1];
    lf_pseudonym_t *ps = NULL;

    key_file("# the current key first\n\n  " KEY_A "  \n"
             "   # rotated on 2026-12-01\n" KEY_B "\n",
             0600);
    cr_assert_eq(lf_pseudonym_from_conf(conf, &ps, err, sizeof(err)), LF_OK,
                 "%s", err);
    cr_assert_not_null(ps);
    cr_expect_eq(lf_pseudonym_keys(ps), 2);
    lf_pseudonym_of(ps, 0, "L-1", 3, got);
    under(KEY_A, want);
    cr_expect_str_eq(got, want, "the first key is the current one");
    lf_pseudonym_of(ps, 1, "L-1", 3, got);
    under(KEY_B, want);
    cr_expect_str_eq(got, want, "the second key is an old one");
    lf_pseudonym_destroy(ps);
}

Test(pseudonym_conf, readable_by_others)
{
    char err[256] = "";
    lf_pseudonym_t *ps = NULL;

    key_file(KEY_A "\n", 0644);
    cr_expect_eq(lf_pseudonym_from_conf(conf, &ps, err, sizeof(err)),
                 LF_ERR_INVALID);
    cr_expect_null(ps);
    cr_expect(strstr(err, "can be read by others"), "%s", err);
    cr_expect(strstr(err, "chmod 600"), "%s", err);
    cr_expect(strstr(err, path), "%s", err);
    key_file(KEY_A "\n", 0640);
    cr_expect_eq(lf_pseudonym_from_conf(conf, &ps, err, sizeof(err)),
                 LF_ERR_INVALID);
    key_file(KEY_A "\n", 0400);
    cr_expect_eq(lf_pseudonym_from_conf(conf, &ps, err, sizeof(err)), LF_OK,
                 "%s", err);
    lf_pseudonym_destroy(ps);
}

/* Root can read a file of another user's: the key must be this user's. */
Test(pseudonym_conf, another_users_file)
{
    char err[256] = "";
    lf_pseudonym_t *ps = NULL;

    if (geteuid() != 0)
        cr_skip_test("needs root to give the file away");
    key_file(KEY_A "\n", 0600);
    cr_assert_eq(chown(path, 65534, (gid_t)-1), 0);
    cr_expect_eq(lf_pseudonym_from_conf(conf, &ps, err, sizeof(err)),
                 LF_ERR_INVALID);
    cr_expect_null(ps);
    cr_expect(strstr(err, "belongs to uid 65534"), "%s", err);
    cr_expect(strstr(err, "run as its owner"), "%s", err);
    cr_assert_eq(chown(path, 0, (gid_t)-1), 0);
    cr_expect_eq(lf_pseudonym_from_conf(conf, &ps, err, sizeof(err)), LF_OK,
                 "%s", err);
    lf_pseudonym_destroy(ps);
}

/* Each bad key file, refused with its reason, and never the key in it. */
Test(pseudonym_conf, bad_keys)
{
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e\n",
         "line 1: a key is shorter than 32 bytes"},
        {KEY_A "0\n", "odd number of hex digits"},
        {"# only a comment\n\n", "holds no key"},
        {KEY_A
         "\n"
         "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
         "line 2: a key holds a character that is not a hex digit"},
    };
    char err[256];
    lf_pseudonym_t *ps;

    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        ps = NULL;
        err[0] = '\0';
        key_file(bad[i].text, 0600);
        cr_expect_eq(lf_pseudonym_from_conf(conf, &ps, err, sizeof(err)),
                     LF_ERR_INVALID, "case %zu", i);
        cr_expect_null(ps);
        cr_expect(strstr(err, bad[i].why), "case %zu: %s", i, err);
        cr_expect_null(strstr(err, "0102030405"), "case %zu: %s", i, err);
    }
}

Test(pseudonym_conf, missing_file)
{
    char err[256] = "";
    lf_pseudonym_t *ps = NULL;

    unlink(path);
    cr_assert_eq(
        lf_conf_set(conf, LF_CONF_PSEUDONYM_KEY_FILE, path, err, sizeof(err)),
        LF_OK);
    cr_expect_eq(lf_pseudonym_from_conf(conf, &ps, err, sizeof(err)),
                 LF_ERR_IO);
    cr_expect(strstr(err, path), "%s", err);
}

/* pseudonym.key (a -c file, the environment) comes first, then the file's
 * keys. */
Test(pseudonym_conf, hex_key_and_file)
{
    char err[256] = "", got[LF_PSEUDONYM_LEN + 1], want[LF_PSEUDONYM_LEN + 1];
    lf_pseudonym_t *ps = NULL;

    cr_assert_eq(
        lf_conf_set(conf, LF_CONF_PSEUDONYM_KEY, KEY_B, err, sizeof(err)),
        LF_OK);
    key_file(KEY_A "\n", 0600);
    cr_assert_eq(lf_pseudonym_from_conf(conf, &ps, err, sizeof(err)), LF_OK,
                 "%s", err);
    cr_expect_eq(lf_pseudonym_keys(ps), 2);
    lf_pseudonym_of(ps, 0, "L-1", 3, got);
    under(KEY_B, want);
    cr_expect_str_eq(got, want);
    lf_pseudonym_destroy(ps);
    cr_assert_eq(
        lf_conf_set(conf, LF_CONF_PSEUDONYM_KEY, "abcd", err, sizeof(err)),
        LF_OK);
    cr_expect_eq(lf_pseudonym_from_conf(conf, &ps, err, sizeof(err)),
                 LF_ERR_INVALID);
    cr_expect(strstr(err, LF_CONF_PSEUDONYM_KEY ": a key is shorter"), "%s",
              err);
}
