/* test_uuid.c: SHA-1 against FIPS 180 vectors, UUID v4 and v5 (lf_uuid). */
#include "lf_uuid.h"

#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void hex(const uint8_t *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

typedef struct sha_case_s {
    const char *name;
    char fill; /* when non-zero: data is len bytes of this character */
    size_t len;
    const char *data;
    const char *digest;
} sha_case_t;

static const sha_case_t sha_cases[] = {
    /* FIPS 180-2 appendix A vectors */
    {"abc", 0, 3, "abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
    {"empty", 0, 0, "", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
    {"two blocks", 0, 56,
     "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
    {"million a", 'a', 1000000, NULL,
     "34aa973cd4c4daa4f61eeb2bdbad27316534016f"},
    /* padding boundaries: 55 fits one block, 56 and 63 need two, 64 is one
     * full block plus a padding block */
    {"55 a", 'a', 55, NULL, "c1c8bbdc22796e28c0e15163d20899b65621d65a"},
    {"56 a", 'a', 56, NULL, "c2db330f6083854c99d4b5bfb6e8f29f201be699"},
    {"63 a", 'a', 63, NULL, "03f09f5b158a7a8cdad920bddc29b81c18a551f5"},
    {"64 a", 'a', 64, NULL, "0098ba824b5c16427bd7a1122a5a442a25ec644d"},
};

Test(uuid, sha1_vectors)
{
    for (size_t i = 0; i < sizeof(sha_cases) / sizeof(sha_cases[0]); i++) {
        const sha_case_t *c = &sha_cases[i];
        uint8_t d[20];
        char h[41];
        char *data = NULL;

        if (c->fill) {
            data = malloc(c->len);
            cr_assert_not_null(data);
            memset(data, c->fill, c->len);
        }
        lf_sha1(c->fill ? data : c->data, c->len, d);
        hex(d, sizeof(d), h);
        cr_expect_str_eq(h, c->digest, "SHA-1 of %s: %s", c->name, h);
        free(data);
    }
}

/* 8-4-4-4-12 lower-case hex digits. */
static void expect_uuid_shape(const char *u, char version)
{
    cr_assert_eq(strlen(u), LF_UUID_STRLEN, "\"%s\" is not 36 chars", u);
    for (int i = 0; i < LF_UUID_STRLEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            cr_expect_eq(u[i], '-', "\"%s\": no dash at %d", u, i);
        else
            cr_expect(isxdigit((unsigned char)u[i]) &&
                          !isupper((unsigned char)u[i]),
                      "\"%s\": char %d is not lower-case hex", u, i);
    }
    cr_expect_eq(u[14], version, "\"%s\": version nibble %c, expected %c", u,
                 u[14], version);
    cr_expect(strchr("89ab", u[19]) != NULL,
              "\"%s\": variant nibble %c is not RFC 4122 (8-b)", u, u[19]);
}

Test(uuid, v4_format_and_randomness)
{
    char a[37], b[37];

    for (int i = 0; i < 200; i++) {
        lf_uuid_v4(a);
        expect_uuid_shape(a, '4');
    }
    lf_uuid_v4(a);
    lf_uuid_v4(b);
    cr_expect_str_neq(a, b, "two v4 UUIDs are equal: %s", a);
}

/* Expected values from Python: uuid.uuid5(UUID("6b3e1f52-9c4d-4a8e-b217-
 * 5e900d61c83a"), name). The namespace must never change: derived event ids
 * depend on it. */
Test(uuid, v5_vectors)
{
    char u[37];

    lf_uuid_v5("abc", 3, u);
    expect_uuid_shape(u, '5');
    cr_expect_str_eq(u, "18a1c90d-ad04-5deb-9b47-08eead7190c1");
    lf_uuid_v5("", 0, u);
    expect_uuid_shape(u, '5');
    cr_expect_str_eq(u, "56a5d61b-fc6d-5063-bba2-4e50ea5880f7");
}

Test(uuid, v5_deterministic_and_distinct)
{
    char a[37], b[37], c[37];

    lf_uuid_v5("lead L-1", 8, a);
    lf_uuid_v5("lead L-1", 8, b);
    lf_uuid_v5("lead L-2", 8, c);
    cr_expect_str_eq(a, b);
    cr_expect_str_neq(a, c);
    /* length counts, not NUL termination */
    lf_uuid_v5("lead L-1", 7, c);
    cr_expect_str_neq(a, c);
}
