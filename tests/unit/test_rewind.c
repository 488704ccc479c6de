/* test_rewind.c: the rewind rules and the --to-offset syntax (lf_rewind). */
#include "lf_rewind.h"

#include <criterion/criterion.h>
#include <string.h>

/* One partition: watermarks, stored offset, target; what the plan does. */
typedef struct plan_case_s {
    const char *what;
    int64_t low, high, current, target;
    int64_t next; /* expected stored offset afterwards (-1: none) */
    bool changed;
    bool clamped;
    const char *note; /* substring of the note, or NULL for none */
} plan_case_t;

static const plan_case_t plan_cases[] = {
    {"back", 0, 100, 80, 50, 50, true, false, NULL},
    {"back to the beginning", 0, 100, 80, 0, 0, true, false, NULL},
    {"same offset", 0, 100, 80, 80, 80, false, false, "already"},
    {"forward is refused", 0, 100, 80, 90, 80, false, false,
     "never moves "
     "forward"},
    {"past the end", 0, 100, 80, 1000, 80, false, false, "already"},
    {"time after the last message: high watermark", 0, 100, 100, 100, 100,
     false, false, "already"},
    {"below the retained log: low watermark", 40, 100, 80, 10, 40, true, true,
     NULL},
    {"not asked", 0, 100, 80, -1, 80, false, false, "not asked"},
    {"no stored offset: never created", 0, 100, -1, 50, -1, false, false,
     "from the beginning anyway"},
};

Test(rewind, plan)
{
    for (size_t i = 0; i < sizeof(plan_cases) / sizeof(*plan_cases); i++) {
        const plan_case_t *c = &plan_cases[i];
        lf_rewind_t r = {.partition = 0,
                         .low = c->low,
                         .high = c->high,
                         .current = c->current,
                         .target = c->target};
        int changed = lf_rewind_plan(&r, 1);
        cr_expect_eq(changed, c->changed ? 1 : 0, "%s: changed", c->what);
        cr_expect_eq(r.next, c->next, "%s: next %lld", c->what,
                     (long long)r.next);
        cr_expect_eq(r.clamped, c->clamped, "%s: clamped", c->what);
        if (c->note)
            cr_expect(r.note && strstr(r.note, c->note), "%s: note \"%s\"",
                      c->what, r.note ? r.note : "(none)");
        else
            cr_expect_null(r.note, "%s: note \"%s\"", c->what, r.note);
    }
}

Test(rewind, plan_counts_partitions)
{
    lf_rewind_t rows[3] = {
        {.partition = 0, .low = 0, .high = 10, .current = 10, .target = 5},
        {.partition = 1, .low = 0, .high = 10, .current = 10, .target = 10},
        {.partition = 2, .low = 0, .high = 10, .current = 7, .target = 0},
    };
    cr_expect_eq(lf_rewind_plan(rows, 3), 2);
    cr_expect_eq(rows[0].next, 5);
    cr_expect_eq(rows[1].next, 10);
    cr_expect_eq(rows[2].next, 0);
}

static void fresh(lf_rewind_t *rows, int n)
{
    for (int i = 0; i < n; i++)
        rows[i] = (lf_rewind_t){.partition = i,
                                .low = 10 * i,
                                .high = 1000,
                                .target = -1,
                                .current = -1,
                                .next = -1};
}

Test(rewind, parse_offsets)
{
    lf_rewind_t rows[4];
    char err[256];

    fresh(rows, 4);
    cr_assert_eq(
        lf_rewind_parse_offsets("0:5,2:beginning", rows, 4, err, sizeof(err)),
        LF_OK, "%s", err);
    cr_expect_eq(rows[0].target, 5);
    cr_expect_eq(rows[1].target, -1);
    cr_expect_eq(rows[2].target, 20, "beginning is the low watermark");
    cr_expect_eq(rows[3].target, -1);
}

typedef struct bad_case_s {
    const char *in;
    const char *why;
} bad_case_t;

static const bad_case_t bad_cases[] = {
    {"", "empty"},
    {"0", "PARTITION:OFFSET"},
    {"0:", "not an offset"},
    {"0:-1", "not an offset"},
    {"0:x", "not an offset"},
    {"x:1", "not a partition"},
    {"-1:1", "not a partition"},
    {"0:1,,1:2", "bad item"},
    {"0:1,", NULL}, /* a trailing comma is harmless */
    {"7:1", "no partition 7"},
    {"0:1,0:2", "given twice"},
    {"0:99999999999999999999", "not an offset"},
};

Test(rewind, parse_offsets_errors)
{
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(*bad_cases); i++) {
        lf_rewind_t rows[4];
        char err[256] = "";
        fresh(rows, 4);
        lf_err_t e =
            lf_rewind_parse_offsets(bad_cases[i].in, rows, 4, err, sizeof(err));
        if (!bad_cases[i].why) {
            cr_expect_eq(e, LF_OK, "\"%s\": %s", bad_cases[i].in, err);
            continue;
        }
        cr_expect_eq(e, LF_ERR_INVALID, "\"%s\" accepted", bad_cases[i].in);
        cr_expect(strstr(err, bad_cases[i].why), "\"%s\": \"%s\" lacks \"%s\"",
                  bad_cases[i].in, err, bad_cases[i].why);
    }
}
