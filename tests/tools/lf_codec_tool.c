/* lf_codec_tool.c: a test helper exposing the codec on stdin/stdout, so
 * tests in other languages (python3-avro interop) can drive it.
 *
 *   lf_codec_tool [-X key=value]... encode   JSON lines in, one framed Avro
 *                          value per line out as lower-case hex (contract
 *                          v2 with the pinned id 2; -X contract.version=1:
 *                          v1 with id 1)
 *   lf_codec_tool [-X key=value]... decode   hex lines in, JSON lines out
 *   lf_codec_tool [-X key=value]... decode-extra   hex lines in, lines of
 *                          {"event": <the JSON line>, "extra": {...} or
 *                          null, "payload_extra": {...} or null}: the
 *                          fields a later writer sent that we do not know
 *
 * -X schema.registry.url=URL (and the other schema.registry.* keys) reads
 * ids through a schema registry, as the projector does.
 *
 * A line that fails gives "error: <reason>" in its place, so output line N
 * always answers input line N (blank lines are skipped). Exit 0 if every line
 * succeeded, 65 if some failed, 64 on a usage error. */
#include "lf_codec.h"
#include "lf_conf.h"
#include "lf_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *fp)
{
    fprintf(fp, "usage: lf_codec_tool [-X key=value]... "
                "encode|decode|decode-extra < lines\n"
                "  encode: JSON event lines -> hex framed Avro lines\n"
                "  decode: hex framed Avro lines -> JSON event lines\n"
                "  decode-extra: the same as {\"event\":...,\"extra\":...,"
                "\"payload_extra\":...}\n"
                "  -X contract.version=1|2, -X schema.registry.url=URL\n"
                "A failed line prints \"error: <reason>\".\n"
                "exit: 0 all lines ok, 65 some line failed, 64 usage\n");
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode @p len hex digits of @p s into @p out. @returns false if not hex. */
static bool unhex(const char *s, size_t len, lf_buf_t *out)
{
    lf_buf_reset(out);
    if (len % 2 || lf_buf_reserve(out, len / 2))
        return false;
    for (size_t i = 0; i < len; i += 2) {
        int hi = hexval((unsigned char)s[i]),
            lo = hexval((unsigned char)s[i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out->data[out->len++] = (char)(hi << 4 | lo);
    }
    return true;
}

typedef enum { ENCODE, DECODE, DECODE_EXTRA } mode_t_;

/* Print @p ev as JSON, with its unknown fields in DECODE_EXTRA. */
static bool print_event(const lf_event_t *ev, mode_t_ mode, lf_buf_t *buf)
{
    lf_buf_reset(buf);
    if (lf_json_format_event(ev, buf))
        return false;
    if (mode == DECODE_EXTRA)
        printf("{\"event\":%s,\"extra\":%s,\"payload_extra\":%s}\n", buf->data,
               ev->extra ? ev->extra : "null",
               ev->payload_extra ? ev->payload_extra : "null");
    else
        printf("%s\n", buf->data);
    return true;
}

/* One input line; @returns true on success. The answer goes to stdout. */
static bool do_line(lf_codec_t *codec, mode_t_ mode, const char *line,
                    size_t len, lf_buf_t *buf)
{
    char err[512];
    lf_event_t ev;

    if (mode == ENCODE) {
        int32_t id =
            lf_codec_contract(codec) == 1 ? LF_SCHEMA_ID_V1 : LF_SCHEMA_ID_V2;
        if (lf_json_parse_event(line, len, &ev, err, sizeof(err)))
            goto fail;
        lf_err_t rc = lf_codec_encode(codec, &ev, id, buf, err, sizeof(err));
        lf_event_clear(&ev);
        if (rc)
            goto fail;
        for (size_t i = 0; i < buf->len; i++)
            printf("%02x", (unsigned char)buf->data[i]);
        putchar('\n');
        return true;
    }
    if (!unhex(line, len, buf)) {
        snprintf(err, sizeof(err), "input is not an even number of hex digits");
        goto fail;
    }
    if (lf_codec_decode(codec, buf->data, buf->len, &ev, err, sizeof(err)))
        goto fail;
    if (!print_event(&ev, mode, buf)) {
        lf_event_clear(&ev);
        snprintf(err, sizeof(err), "out of memory");
        goto fail;
    }
    lf_event_clear(&ev);
    return true;
fail:
    printf("error: %s\n", err);
    return false;
}

/* The codec of the -X settings in argv[1..argc-2]; NULL on error (said). */
static lf_codec_t *codec_from_args(int argc, char **argv)
{
    char err[512];
    lf_conf_t *conf = lf_conf_new();
    lf_codec_t *codec = NULL;

    if (!conf)
        return NULL;
    for (int i = 1; i + 1 < argc; i += 2)
        if (strcmp(argv[i], "-X") ||
            lf_conf_set_kv(conf, argv[i + 1], err, sizeof(err))) {
            fprintf(stderr, "lf_codec_tool: bad option %s\n", argv[i]);
            usage(stderr);
            lf_conf_destroy(conf);
            return NULL;
        }
    if (lf_codec_from_conf(conf, &codec, err, sizeof(err)))
        fprintf(stderr, "lf_codec_tool: %s\n", err);
    lf_conf_destroy(conf);
    return codec;
}

int main(int argc, char **argv)
{
    char *line = NULL;
    const char *cmd = argc > 1 ? argv[argc - 1] : "";
    size_t cap = 0;
    ssize_t n;
    lf_buf_t buf = {0};
    lf_codec_t *codec;
    mode_t_ mode;
    bool all_ok = true;

    if (argc == 2 && !strcmp(argv[1], "--help")) {
        usage(stdout);
        return LF_EX_OK;
    }
    if (!strcmp(cmd, "encode"))
        mode = ENCODE;
    else if (!strcmp(cmd, "decode"))
        mode = DECODE;
    else if (!strcmp(cmd, "decode-extra"))
        mode = DECODE_EXTRA;
    else {
        fprintf(stderr, "lf_codec_tool: expected encode, decode or "
                        "decode-extra last\n");
        usage(stderr);
        return LF_EX_USAGE;
    }
    if (argc % 2 || !(codec = codec_from_args(argc, argv)))
        return LF_EX_USAGE;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        size_t len = (size_t)n;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (!len)
            continue;
        if (!do_line(codec, mode, line, len, &buf))
            all_ok = false;
        fflush(stdout);
    }
    free(line);
    lf_buf_free(&buf);
    lf_codec_destroy(codec);
    return all_ok ? LF_EX_OK : LF_EX_DATAERR;
}
