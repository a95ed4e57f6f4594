/*
 * tests/unit/worker/test_idmap.c — gateway ids and the id table: ids are
 * consecutive and never reused, lookups find what was put, deletion keeps
 * every other entry reachable (backward shift), growth keeps them all.
 */
#include <criterion/criterion.h>
#include <stdint.h>

#include "common/errors.h"
#include "worker/idmap.h"

Test(idmap, ids_are_new_every_time)
{
    struct mb_idmap m = {0};
    uint64_t a = mb_idmap_next(&m), b = mb_idmap_next(&m);
    cr_expect_eq(a, 1);
    cr_expect_eq(b, 2);
    mb_idmap_free(&m);
}

Test(idmap, put_get_del)
{
    struct mb_idmap m = {0};
    int x, y;
    cr_assert_eq(mb_idmap_put(&m, 5, &x), 0);
    cr_assert_eq(mb_idmap_put(&m, 6, &y), 0);
    cr_expect_eq(mb_idmap_put(&m, 5, &y), MB_ERR, "a duplicate id is refused");
    cr_expect_eq(mb_idmap_put(&m, 0, &y), MB_ERR, "0 is never an id");
    cr_expect_eq(mb_idmap_get(&m, 5), &x);
    cr_expect_eq(mb_idmap_get(&m, 6), &y);
    cr_expect_null(mb_idmap_get(&m, 7));
    cr_expect_eq(mb_idmap_del(&m, 5), &x);
    cr_expect_null(mb_idmap_get(&m, 5), "a late answer finds nothing");
    cr_expect_null(mb_idmap_del(&m, 5));
    cr_expect_eq(mb_idmap_get(&m, 6), &y);
    cr_expect_eq(m.count, 1);
    mb_idmap_free(&m);
}

Test(idmap, many_entries_survive_growth_and_deletes)
{
    struct mb_idmap m = {0};
    enum { N = 20000 };
    static char vals[N + 1];
    for (uint64_t i = 1; i <= N; i++)
        cr_assert_eq(mb_idmap_put(&m, i, &vals[i]), 0);
    /* Delete every third one, in an order that crosses probe runs. */
    for (uint64_t i = 3; i <= N; i += 3)
        cr_assert_eq(mb_idmap_del(&m, i), &vals[i]);
    for (uint64_t i = 1; i <= N; i++) {
        if (i % 3 == 0)
            cr_assert_null(mb_idmap_get(&m, i), "%llu was deleted", (unsigned long long)i);
        else
            cr_assert_eq(mb_idmap_get(&m, i), &vals[i], "%llu lost", (unsigned long long)i);
    }
    cr_expect_eq(m.count, N - N / 3);
    cr_expect_leq(m.count * 2, m.cap, "kept at most half full");
    mb_idmap_free(&m);
}
