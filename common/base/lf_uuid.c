/* lf_uuid.c: SHA-1 (FIPS 180-4) and RFC 4122 UUIDs v4 and v5. */
#include "lf_uuid.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

/* leadflow's UUID namespace: a v4 UUID chosen once; never change it, or every
 * derived event_id changes and re-sent files duplicate their events. */
static const uint8_t lf_namespace[16] = {0x6b, 0x3e, 0x1f, 0x52, 0x9c, 0x4d,
                                         0x4a, 0x8e, 0xb2, 0x17, 0x5e, 0x90,
                                         0x0d, 0x61, 0xc8, 0x3a};

typedef struct sha1_s {
    uint32_t h[5];
    uint64_t len;
    uint8_t buf[64];
    size_t used;
} sha1_t;

static uint32_t rol(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(sha1_t *c, const uint8_t *p)
{
    uint32_t w[80], a = c->h[0], b = c->h[1], d3 = c->h[2], d = c->h[3],
                    e = c->h[4];

    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20)
            f = (b & d3) | (~b & d), k = 0x5a827999;
        else if (i < 40)
            f = b ^ d3 ^ d, k = 0x6ed9eba1;
        else if (i < 60)
            f = (b & d3) | (b & d) | (d3 & d), k = 0x8f1bbcdc;
        else
            f = b ^ d3 ^ d, k = 0xca62c1d6;
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d, d = d3, d3 = rol(b, 30), b = a, a = t;
    }
    c->h[0] += a, c->h[1] += b, c->h[2] += d3, c->h[3] += d, c->h[4] += e;
}

static void sha1_update(sha1_t *c, const uint8_t *p, size_t n)
{
    c->len += n;
    while (n > 0) {
        size_t take = 64 - c->used < n ? 64 - c->used : n;
        memcpy(c->buf + c->used, p, take);
        c->used += take, p += take, n -= take;
        if (c->used == 64) {
            sha1_block(c, c->buf);
            c->used = 0;
        }
    }
}

static void sha1_init(sha1_t *c)
{
    static const uint32_t h0[5] = {0x67452301, 0xefcdab89, 0x98badcfe,
                                   0x10325476, 0xc3d2e1f0};
    memcpy(c->h, h0, sizeof(h0));
    c->len = 0;
    c->used = 0;
}

static void sha1_final(sha1_t *c, uint8_t out[20])
{
    uint64_t bits = c->len * 8;
    uint8_t pad = 0x80, zero = 0, lenb[8];

    sha1_update(c, &pad, 1);
    while (c->used != 56)
        sha1_update(c, &zero, 1);
    for (int i = 0; i < 8; i++)
        lenb[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha1_update(c, lenb, 8);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++)
            out[4 * i + j] = (uint8_t)(c->h[i] >> (24 - 8 * j));
}

void lf_sha1(const void *data, size_t len, uint8_t out[20])
{
    sha1_t c;
    sha1_init(&c);
    sha1_update(&c, data, len);
    sha1_final(&c, out);
}

static void uuid_format(const uint8_t u[16], char out[37])
{
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10],
             u[11], u[12], u[13], u[14], u[15]);
}

void lf_uuid_v5(const void *name, size_t len, char out[37])
{
    sha1_t c;
    uint8_t h[20];

    sha1_init(&c);
    sha1_update(&c, lf_namespace, 16);
    sha1_update(&c, name, len);
    sha1_final(&c, h);
    h[6] = (h[6] & 0x0f) | 0x50;
    h[8] = (h[8] & 0x3f) | 0x80;
    uuid_format(h, out);
}

void lf_uuid_v4(char out[37])
{
    uint8_t u[16];
    size_t got = 0;

    while (got < sizeof(u)) {
        ssize_t r = getrandom(u + got, sizeof(u) - got, 0);
        if (r > 0)
            got += (size_t)r;
    }
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    uuid_format(u, out);
}
