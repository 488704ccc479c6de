/* test_pg.c: the binary COPY writer and the text[] literal (no server
 * needed; test_project and the other integration tests load these rows
 * into a real PostgreSQL). */
#include "lf_pg.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

/* The bytes of PostgreSQL's binary COPY format, spelled out. */
static const char header[] = "PGCOPY\n\377\r\n\0" /* signature */
                             "\0\0\0\0"           /* flags */
                             "\0\0\0\0";          /* extension length */

Test(pg, bin_row_bytes)
{
    lf_buf_t b = {0};
    static const char row[] =
        "\0\x09"                              /* 9 fields */
        "\0\0\0\x03" "a\tb"                   /* text, no escaping */
        "\xff\xff\xff\xff"                    /* NULL text */
        "\0\0\0\x04" "\xff\xff\xff\xfe"       /* int4 -2 */
        "\0\0\0\x08" "\0\0\x01\x1f\x71\xfb\x04\xcb" /* int8 1234567890123 */
        "\0\0\0\x08" "\0\0\0\0\0\0\0\0"       /* 2000-01-01: 0 us */
        "\0\0\0\x08" "\xff\xfc\xa2\xfe\xc4\xc8\x20\x00" /* 1970: -946684800 s */
        "\xff\xff\xff\xff"                    /* NULL timestamp */
        "\0\0\0\x03" "\x01{}"                 /* jsonb: version 1 */
        "\0\0\0\x02" "\x00\xff";              /* bytea */
    size_t hl = sizeof(header) - 1, rl = sizeof(row) - 1;

    cr_assert_eq(lf_pg_bin_row(&b, 9), LF_OK);
    cr_assert_eq(lf_pg_bin_text(&b, "a\tb"), LF_OK);
    cr_assert_eq(lf_pg_bin_text(&b, NULL), LF_OK);
    cr_assert_eq(lf_pg_bin_int4(&b, -2), LF_OK);
    cr_assert_eq(lf_pg_bin_int8(&b, INT64_C(1234567890123)), LF_OK);
    cr_assert_eq(lf_pg_bin_ts(&b, INT64_C(946684800000)), LF_OK);
    cr_assert_eq(lf_pg_bin_ts(&b, 0), LF_OK);
    cr_assert_eq(lf_pg_bin_ts(&b, INT64_MIN), LF_OK);
    cr_assert_eq(lf_pg_bin_jsonb(&b, "{}", 2), LF_OK);
    cr_assert_eq(lf_pg_bin_bytea(&b, "\x00\xff", 2), LF_OK);
    cr_assert_eq(b.len, hl + rl);
    cr_expect_eq(memcmp(b.data, header, hl), 0, "file header");
    cr_expect_eq(memcmp(b.data + hl, row, rl), 0, "row");

    /* A second row has no header; the trailer is a field count of -1. */
    cr_assert_eq(lf_pg_bin_row(&b, 1), LF_OK);
    cr_assert_eq(lf_pg_bin_null(&b), LF_OK);
    cr_assert_eq(lf_pg_bin_end(&b), LF_OK);
    cr_assert_eq(b.len, hl + rl + 2 + 4 + 2);
    cr_expect_eq(memcmp(b.data + hl + rl, "\0\x01\xff\xff\xff\xff\xff\xff", 8),
                 0, "second row and trailer");
    cr_expect_eq(b.data[b.len], '\0', "still NUL-terminated");
    lf_buf_free(&b);
}

Test(pg, text_array_quotes)
{
    lf_buf_t b = {0};
    const char *items[] = {"a", "b\"c", "d\\e", ""};
    cr_assert_eq(lf_pg_text_array(&b, items, 4), LF_OK);
    cr_expect_str_eq(b.data, "{\"a\",\"b\\\"c\",\"d\\\\e\",\"\"}");
    lf_buf_free(&b);
}
