/*
 * tests/unit/worker/test_pool.c — the connection pool's bookkeeping: the
 * per-host cap, keep-or-close by the idle limits (per host and worker-wide),
 * most-recently-used reuse, least-recently-used expiry, and the smooth
 * weighted round robin over endpoints.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "worker/pool.h"

static struct mb_pool_limits lim(unsigned max_conns, unsigned idle_host, unsigned idle_all,
                                 unsigned timeout)
{
    struct mb_pool_limits l = {.enabled = true,
                               .max_conns_per_host = max_conns,
                               .max_idle_conns_per_host = idle_host,
                               .max_idle_conns = idle_all,
                               .idle_timeout_ms = timeout};
    return l;
}

Test(pool, cap_per_host_counts_every_state)
{
    struct mb_pool p;
    struct mb_pool_host h;
    struct mb_pool_conn c[3];
    struct mb_pool_limits l = lim(2, 10, 10, 0);

    mb_pool_init(&p, &l);
    mb_pool_host_init(&h, &p, 1);
    cr_assert(mb_pool_can_open(&h));
    mb_pool_add(&h, &c[0]);
    cr_assert(mb_pool_can_open(&h));
    mb_pool_add(&h, &c[1]);
    cr_expect_not(mb_pool_can_open(&h), "two connecting ones fill a cap of 2");
    mb_pool_connected(&c[0]);
    cr_expect_eq(h.nbusy, 1);
    cr_expect(mb_pool_release(&c[0], 5));
    cr_expect_eq(h.nidle, 1);
    cr_expect_not(mb_pool_can_open(&h), "idle ones count too");
    mb_pool_remove(&c[1]);
    cr_expect(mb_pool_can_open(&h));
    mb_pool_add(&h, &c[2]);
    cr_expect_eq(h.nconns, 2);
    mb_pool_remove(&c[0]);
    mb_pool_remove(&c[2]);
    cr_expect_eq(h.nconns, 0);
    cr_expect_eq(h.nidle, 0);
    cr_expect_eq(p.nidle, 0);
}

Test(pool, reuse_most_recent_expire_least_recent)
{
    struct mb_pool p;
    struct mb_pool_host h;
    struct mb_pool_conn c[3];
    struct mb_pool_limits l = lim(10, 10, 10, 100);

    mb_pool_init(&p, &l);
    mb_pool_host_init(&h, &p, 1);
    for (int i = 0; i < 3; i++) {
        mb_pool_add(&h, &c[i]);
        mb_pool_connected(&c[i]);
    }
    cr_expect(mb_pool_release(&c[0], 10));
    cr_expect(mb_pool_release(&c[1], 20));
    cr_expect(mb_pool_release(&c[2], 30));
    cr_expect_eq(mb_pool_next_expiry(&h), 110);
    cr_expect_null(mb_pool_expired(&h, 109));
    cr_expect_eq(mb_pool_expired(&h, 110), &c[0]);
    mb_pool_remove(&c[0]);
    cr_expect_eq(mb_pool_next_expiry(&h), 120);

    struct mb_pool_conn *t = mb_pool_take_idle(&h);
    cr_expect_eq(t, &c[2], "the warmest connection is reused");
    cr_expect_eq(t->uses, 2);
    cr_expect_eq(t->state, MB_POOL_BUSY);
    cr_expect_eq(h.nidle, 1);
    cr_expect_eq(mb_pool_take_idle(&h), &c[1]);
    cr_expect_null(mb_pool_take_idle(&h));
    cr_expect_eq(mb_pool_next_expiry(&h), 0);
    cr_expect_eq(h.nbusy, 2);
}

Test(pool, idle_limits_per_host_and_worker)
{
    struct mb_pool p;
    struct mb_pool_host a, b;
    struct mb_pool_conn ca[3], cb[3];
    struct mb_pool_limits l = lim(10, 2, 3, 0);

    mb_pool_init(&p, &l);
    mb_pool_host_init(&a, &p, 1);
    mb_pool_host_init(&b, &p, 1);
    for (int i = 0; i < 3; i++) {
        mb_pool_add(&a, &ca[i]);
        mb_pool_connected(&ca[i]);
        mb_pool_add(&b, &cb[i]);
        mb_pool_connected(&cb[i]);
    }
    cr_expect(mb_pool_release(&ca[0], 1));
    cr_expect(mb_pool_release(&ca[1], 1));
    cr_expect_not(mb_pool_release(&ca[2], 1), "max_idle_conns_per_host 2");
    cr_expect(mb_pool_release(&cb[0], 1));
    cr_expect_not(mb_pool_release(&cb[1], 1), "max_idle_conns 3 across hosts");
    cr_expect_eq(p.nidle, 3);
    mb_pool_remove(&ca[2]);
    mb_pool_remove(&cb[1]);
    cr_expect_eq(a.nconns, 2);
    cr_expect_eq(b.nconns, 2);
    /* Using one frees room for another. */
    cr_expect_eq(mb_pool_take_idle(&a), &ca[1]);
    cr_expect(mb_pool_release(&cb[2], 2));
    cr_expect_eq(p.nidle, 3);
}

Test(pool, disabled_keeps_nothing)
{
    struct mb_pool p;
    struct mb_pool_host h;
    struct mb_pool_conn c;
    struct mb_pool_limits l = lim(10, 10, 10, 0);

    l.enabled = false;
    mb_pool_init(&p, &l);
    mb_pool_host_init(&h, &p, 1);
    mb_pool_add(&h, &c);
    mb_pool_connected(&c);
    cr_expect_not(mb_pool_release(&c, 1));
    mb_pool_remove(&c);
    cr_expect_eq(h.nconns, 0);
    cr_expect_eq(h.nbusy, 0);
}

Test(pool, weighted_round_robin)
{
    struct mb_pool p;
    struct mb_pool_host h[3];
    struct mb_pool_host *hp[3] = {&h[0], &h[1], &h[2]};
    struct mb_pool_limits l = lim(1, 1, 1, 0);
    int count[3] = {0}, seq[7];

    mb_pool_init(&p, &l);
    mb_pool_host_init(&h[0], &p, 5);
    mb_pool_host_init(&h[1], &p, 1);
    mb_pool_host_init(&h[2], &p, 1);
    for (int i = 0; i < 700; i++) {
        int k = mb_pool_pick(hp, NULL, 3);
        cr_assert(k >= 0 && k < 3);
        count[k]++;
        if (i < 7)
            seq[i] = k;
    }
    cr_expect_eq(count[0], 500);
    cr_expect_eq(count[1], 100);
    cr_expect_eq(count[2], 100);
    /* Smooth: the heavy host is interleaved, not picked five times in a row. */
    int expect[7] = {0, 0, 1, 0, 2, 0, 0};
    for (int i = 0; i < 7; i++)
        cr_expect_eq(seq[i], expect[i], "pick %d: %d", i, seq[i]);

    bool usable[3] = {false, true, false};
    for (int i = 0; i < 5; i++)
        cr_expect_eq(mb_pool_pick(hp, usable, 3), 1);
    usable[1] = false;
    cr_expect_eq(mb_pool_pick(hp, usable, 3), -1);
}
