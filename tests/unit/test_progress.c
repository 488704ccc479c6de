/* test_progress.c: the progress bar's text (lf_progress). */
#include "lf_progress.h"

#include <criterion/criterion.h>
#include <string.h>

typedef struct eta_case_s {
    int64_t s;
    const char *out;
} eta_case_t;

static const eta_case_t eta_cases[] = {
    {-1, "?"},          {0, "0:00"},
    {4, "0:04"},        {59, "0:59"},
    {60, "1:00"},       {754, "12:34"},
    {3599, "59:59"},    {3600, "1:00:00"},
    {10921, "3:02:01"}, {360000, "100:00:00"},
};

Test(progress, eta)
{
    char buf[32];
    for (size_t i = 0; i < sizeof(eta_cases) / sizeof(*eta_cases); i++)
        cr_expect_str_eq(
            lf_progress_format_eta(eta_cases[i].s, buf, sizeof(buf)),
            eta_cases[i].out, "eta %lld", (long long)eta_cases[i].s);
}

Test(progress, bar_with_total)
{
    char buf[256];
    /* 45210 of 100000 in 10 s: 4521/s, 54790 left: 12 s. */
    lf_progress_format(buf, sizeof(buf), "rebuild", "events", 45210, 100000,
                       10000, 80);
    cr_expect(strstr(buf, "rebuild [") == buf, "%s", buf);
    cr_expect(strstr(buf, " 45.2% 45210/100000 events 4521/s ETA 0:12"), "%s",
              buf);
    cr_expect(strlen(buf) <= 80, "%zu columns: %s", strlen(buf), buf);
    /* The bar is filled in proportion (11 of 25 columns, then '>'). */
    const char *open = strchr(buf, '['), *close = strchr(buf, ']');
    cr_assert(open && close && close > open);
    int width = (int)(close - open - 1), fill = 0;
    for (const char *c = open + 1; c < close && *c == '='; c++)
        fill++;
    cr_expect_eq(fill, (int)(width * 0.4521), "fill %d of %d", fill, width);
    cr_expect_eq(open[1 + fill], '>');
}

Test(progress, bar_done_and_unknown)
{
    char buf[256];
    lf_progress_format(buf, sizeof(buf), "dump", "messages", 7, 7, 1000, 80);
    cr_expect(strstr(buf, "100.0% 7/7 messages 7/s ETA 0:00"), "%s", buf);
    cr_expect(!strchr(buf, '>'), "a full bar has no head: %s", buf);
    /* Total unknown: no bar, no percentage, no ETA. */
    lf_progress_format(buf, sizeof(buf), "retry", "dead letters", 12, 0, 2000,
                       80);
    cr_expect_str_eq(buf, "retry  12 dead letters 6/s");
    /* Before a tenth of a second there is no rate: ETA unknown. */
    lf_progress_format(buf, sizeof(buf), "x", "u", 1, 10, 50, 80);
    cr_expect(strstr(buf, "0/s ETA ?"), "%s", buf);
}

Test(progress, narrow_terminal_drops_the_bar)
{
    char buf[256];
    lf_progress_format(buf, sizeof(buf), "rebuild", "events", 1, 2, 1000, 40);
    cr_expect(!strchr(buf, '['), "%s", buf);
    cr_expect(strstr(buf, "50.0% 1/2 events"), "%s", buf);
}

Test(progress, small_buffer_is_safe)
{
    char buf[12];
    lf_progress_format(buf, sizeof(buf), "rebuild", "events", 5, 10, 1000, 80);
    cr_expect_eq(strlen(buf), sizeof(buf) - 1);
}

Test(progress, modes)
{
    cr_expect_eq(lf_progress_mode_parse("auto"), LF_PROGRESS_AUTO);
    cr_expect_eq(lf_progress_mode_parse("bar"), LF_PROGRESS_BAR);
    cr_expect_eq(lf_progress_mode_parse("lines"), LF_PROGRESS_LINES);
    cr_expect_eq(lf_progress_mode_parse("none"), LF_PROGRESS_NONE);
    cr_expect_eq(lf_progress_mode_parse("sometimes"), -1);
    /* NULL reporter: every call is a no-op. */
    lf_progress_update(NULL, 1);
    lf_progress_set_total(NULL, 1);
    lf_progress_finish(NULL);
    lf_progress_destroy(NULL);
}
