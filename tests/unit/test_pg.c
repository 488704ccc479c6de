/* test_pg.c: the COPY text-format writers (no server needed). */
#include "lf_pg.h"

#include <criterion/criterion.h>
#include <stdint.h>

Test(pg, copy_int_edges)
{
    lf_buf_t b = {0};
    cr_assert_eq(lf_pg_copy_int(&b, 0, false), LF_OK);
    cr_assert_eq(lf_pg_copy_int(&b, -1, false), LF_OK);
    cr_assert_eq(lf_pg_copy_int(&b, 1234567890123, false), LF_OK);
    cr_assert_eq(lf_pg_copy_int(&b, INT64_MAX, false), LF_OK);
    cr_assert_eq(lf_pg_copy_int(&b, INT64_MIN, true), LF_OK);
    cr_expect_str_eq(b.data, "0\t-1\t1234567890123\t9223372036854775807\t"
                             "-9223372036854775808\n");
    lf_buf_free(&b);
}

Test(pg, copy_str_escapes_and_null)
{
    lf_buf_t b = {0};
    cr_assert_eq(lf_pg_copy_str(&b, "a\tb\nc\\d\re\\.", false), LF_OK);
    cr_assert_eq(lf_pg_copy_str(&b, NULL, false), LF_OK);
    cr_assert_eq(lf_pg_copy_ts(&b, 0, false), LF_OK);
    cr_assert_eq(lf_pg_copy_ts(&b, INT64_MIN, true), LF_OK);
    cr_expect_str_eq(b.data, "a\\tb\\nc\\\\d\\re\\\\.\t\\N\t"
                             "1970-01-01T00:00:00.000Z\t\\N\n");
    lf_buf_free(&b);
}

Test(pg, copy_bytea_hex)
{
    lf_buf_t b = {0};
    cr_assert_eq(lf_pg_copy_bytea(&b, "\x00\xff\x10", 3, false), LF_OK);
    cr_assert_eq(lf_pg_copy_bytea(&b, NULL, 0, true), LF_OK);
    cr_expect_str_eq(b.data, "\\\\x00ff10\t\\N\n");
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
