/* lf_codec_tool.c: a test helper exposing the codec on stdin/stdout, so
 * tests in other languages (python3-avro interop) can drive it.
 *
 *   lf_codec_tool encode   JSON lines in, one framed Avro value per line out
 *                          as lower-case hex
 *   lf_codec_tool decode   hex lines in, JSON lines out
 *
 * A line that fails gives "error: <reason>" in its place, so output line N
 * always answers input line N (blank lines are skipped). Exit 0 if every line
 * succeeded, 65 if some failed, 64 on a usage error. */
#include "lf_codec.h"
#include "lf_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *fp)
{
    fprintf(fp, "usage: lf_codec_tool encode|decode < lines\n"
                "  encode: JSON event lines -> hex framed Avro lines\n"
                "  decode: hex framed Avro lines -> JSON event lines\n"
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

/* One input line; @returns true on success. The answer goes to stdout. */
static bool do_line(lf_codec_t *codec, bool encode, const char *line,
                    size_t len, lf_buf_t *buf)
{
    char err[512];
    lf_event_t ev;

    if (encode) {
        if (lf_json_parse_event(line, len, &ev, err, sizeof(err)))
            goto fail;
        lf_err_t rc =
            lf_codec_encode(codec, &ev, LF_SCHEMA_ID_V1, buf, err, sizeof(err));
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
    lf_buf_reset(buf);
    if (lf_json_format_event(&ev, buf)) {
        lf_event_clear(&ev);
        snprintf(err, sizeof(err), "out of memory");
        goto fail;
    }
    lf_event_clear(&ev);
    printf("%s\n", buf->data);
    return true;
fail:
    printf("error: %s\n", err);
    return false;
}

int main(int argc, char **argv)
{
    char err[256], *line = NULL;
    size_t cap = 0;
    ssize_t n;
    lf_buf_t buf = {0};
    lf_codec_t *codec;
    bool encode, all_ok = true;

    if (argc == 2 && !strcmp(argv[1], "--help")) {
        usage(stdout);
        return LF_EX_OK;
    }
    if (argc != 2 || (strcmp(argv[1], "encode") && strcmp(argv[1], "decode"))) {
        fprintf(stderr, "lf_codec_tool: expected one argument, encode or "
                        "decode\n");
        usage(stderr);
        return LF_EX_USAGE;
    }
    encode = !strcmp(argv[1], "encode");
    if (!(codec = lf_codec_new(err, sizeof(err)))) {
        fprintf(stderr, "lf_codec_tool: %s\n", err);
        return LF_EX_SOFTWARE;
    }
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        size_t len = (size_t)n;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (!len)
            continue;
        if (!do_line(codec, encode, line, len, &buf))
            all_ok = false;
        fflush(stdout);
    }
    free(line);
    lf_buf_free(&buf);
    lf_codec_destroy(codec);
    return all_ok ? LF_EX_OK : LF_EX_DATAERR;
}
