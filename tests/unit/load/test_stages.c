/*
 * tests/unit/load/test_stages.c — the k6-style stage schedule
 * (tests/load/stages.c): parsing, linear interpolation between targets,
 * jumps, the end, and how VUs are shared among workers.
 */
#include "tests/load/stages.h"

#include <criterion/criterion.h>

#define S 1000000000ull

Test(stages, parses_the_tutorial_schedule)
{
    struct mb_load_stages st;
    char err[256];
    cr_assert_eq(mb_load_stages_parse("100:60,1000:3m,0:1m", &st, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(st.n, 3);
    cr_expect_eq(st.s[0].target, 100);
    cr_expect_eq(st.s[0].duration_ns, 60 * S);
    cr_expect_eq(st.s[1].target, 1000);
    cr_expect_eq(st.s[1].duration_ns, 180 * S);
    cr_expect_eq(st.s[2].target, 0);
    cr_expect_eq(mb_load_stages_total_ns(&st), 300 * S);
    cr_expect_eq(mb_load_stages_max(&st), 1000);
}

Test(stages, rejects_bad_schedules_with_a_message)
{
    struct mb_load_stages st;
    const char *bad[] = {"",        "100",    "100:",  ":60",         "x:60",
                         "100:60,", "100:6x", "-1:60", "100:60,,0:1", "100:-5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        cr_expect_eq(mb_load_stages_parse(bad[i], &st, err, sizeof(err)), -1, "accepted \"%s\"",
                     bad[i]);
        cr_expect_neq(err[0], '\0', "no message for \"%s\"", bad[i]);
    }
}

Test(stages, vus_ramp_linearly_between_targets)
{
    struct mb_load_stages st;
    char err[256];
    cr_assert_eq(mb_load_stages_parse("100:60,1000:180,0:60", &st, err, sizeof(err)), 0);
    cr_expect_eq(mb_load_stages_vus(&st, 0), 0);
    cr_expect_eq(mb_load_stages_vus(&st, 30 * S), 50);
    cr_expect_eq(mb_load_stages_vus(&st, 6 * S), 10);
    cr_expect_eq(mb_load_stages_vus(&st, 60 * S), 100, "a stage ends at its target");
    cr_expect_eq(mb_load_stages_vus(&st, 150 * S), 550);
    cr_expect_eq(mb_load_stages_vus(&st, 240 * S), 1000);
    cr_expect_eq(mb_load_stages_vus(&st, 270 * S), 500);
    cr_expect_eq(mb_load_stages_vus(&st, 299 * S), 17); /* 1000/60 rounded */
    cr_expect_eq(mb_load_stages_vus(&st, 300 * S), 0);
    cr_expect_eq(mb_load_stages_vus(&st, 1000 * S), 0, "nothing after the end");
    /* monotone on a ramp up */
    uint32_t prev = 0;
    for (uint64_t t = 0; t < 60 * S; t += S / 10) {
        uint32_t v = mb_load_stages_vus(&st, t);
        cr_assert_geq(v, prev);
        prev = v;
    }
}

Test(stages, zero_duration_jumps_and_flat_stages_hold)
{
    struct mb_load_stages st;
    char err[256];
    cr_assert_eq(mb_load_stages_parse("50:0,50:10,10:500ms", &st, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(mb_load_stages_vus(&st, 0), 50);
    cr_expect_eq(mb_load_stages_vus(&st, 5 * S), 50);
    cr_expect_eq(mb_load_stages_vus(&st, 10 * S + S / 4), 30);
    cr_expect_eq(mb_load_stages_total_ns(&st), 10 * S + S / 2);
}

Test(stages, shares_add_up_to_the_total)
{
    for (uint32_t total = 0; total < 200; total += 7) {
        for (uint32_t n = 1; n <= 9; n++) {
            uint32_t sum = 0, max = 0, min = UINT32_MAX;
            for (uint32_t w = 0; w < n; w++) {
                uint32_t s = mb_load_stages_share(total, n, w);
                sum += s;
                max = s > max ? s : max;
                min = s < min ? s : min;
            }
            cr_expect_eq(sum, total, "total %u over %u", total, n);
            cr_expect_leq(max - min, 1, "uneven split of %u over %u", total, n);
            /* growing the total never shrinks a worker's share */
            for (uint32_t w = 0; w < n; w++)
                cr_expect_geq(mb_load_stages_share(total + 1, n, w),
                              mb_load_stages_share(total, n, w));
        }
    }
    cr_expect_eq(mb_load_stages_share(5, 0, 0), 0);
    cr_expect_eq(mb_load_stages_share(5, 2, 2), 0);
}

Test(stages, durations_take_units)
{
    uint64_t ns;
    cr_assert_eq(mb_load_duration_parse("2", &ns), 0);
    cr_expect_eq(ns, 2 * S);
    cr_assert_eq(mb_load_duration_parse("1.5s", &ns), 0);
    cr_expect_eq(ns, 1500000000ull);
    cr_assert_eq(mb_load_duration_parse("250ms", &ns), 0);
    cr_expect_eq(ns, 250000000ull);
    cr_assert_eq(mb_load_duration_parse("2m", &ns), 0);
    cr_expect_eq(ns, 120 * S);
    cr_assert_eq(mb_load_duration_parse("1h", &ns), 0);
    cr_expect_eq(ns, 3600 * S);
    const char *bad[] = {"", "s", "-1", "1x", "1 s", " 1", "nan", "1e30"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(mb_load_duration_parse(bad[i], &ns), -1, "accepted \"%s\"", bad[i]);
}
