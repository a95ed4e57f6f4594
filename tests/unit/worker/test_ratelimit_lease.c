/*
 * tests/unit/worker/test_ratelimit_lease.c — worker/ratelimit_lease.c with
 * a fake clock: spending leased tokens, refill ahead at half a lease, credit
 * before the first grant and its repayment, "empty until" answers, stale
 * leases, eviction.
 */
#include <criterion/criterion.h>

#include "common/errors.h"
#include "worker/ratelimit_lease.h"

#define MS      1000000ull
#define HOLD_NS (1000 * MS)

static struct mb_ratelimit_lease t;
static const struct mb_rl_key K = {0x1234, 0x5678};

static void fini(void)
{
    mb_ratelimit_lease_free(&t);
}

static int take(uint64_t now, uint64_t *retry, uint32_t *want)
{
    return mb_ratelimit_lease_take(&t, K, now, HOLD_NS, retry, want);
}

Test(ratelimit_lease, credit_then_grant_repays_the_debt, .fini = fini)
{
    cr_assert_eq(mb_ratelimit_lease_init(&t, 64, 10, 3), MB_OK);
    uint64_t retry;
    uint32_t want;
    /* A new bucket: admitted on credit, and a refill of a lease is asked. */
    cr_expect_eq(take(1, &retry, &want), MB_RATELIMIT_ALLOW);
    cr_expect_eq(want, 11, "a full lease plus the debt of 1");
    cr_expect_eq(take(2, &retry, &want), MB_RATELIMIT_ALLOW);
    cr_expect_eq(want, 0, "a refill is already pending");
    cr_expect_eq(take(3, &retry, &want), MB_RATELIMIT_ALLOW);
    /* credit 3 used up: rejected briefly while the refill is in flight. */
    cr_expect_eq(take(4, &retry, &want), MB_RATELIMIT_DENY);
    cr_expect_eq(retry, MB_RL_LEASE_PENDING_RETRY_NS);
    cr_expect_eq(mb_ratelimit_lease_find(&t, K)->tokens, -3);
    mb_ratelimit_lease_granted(&t, K, 11, 11, 0, 5);
    cr_expect_eq(mb_ratelimit_lease_find(&t, K)->tokens, 8, "11 granted - 3 owed");
    /* 8 tokens: spend 3 without asking (8 -> 5 = half a lease: ask). */
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(take(6, &retry, &want), MB_RATELIMIT_ALLOW);
        cr_expect_eq(want, 0);
    }
    cr_expect_eq(take(6, &retry, &want), MB_RATELIMIT_ALLOW);
    cr_expect_eq(want, 5, "refill ahead at half a lease: 10 - 5");
}

Test(ratelimit_lease, empty_shared_budget_rejects_locally_until_told, .fini = fini)
{
    cr_assert_eq(mb_ratelimit_lease_init(&t, 64, 4, 1), MB_OK);
    uint64_t retry;
    uint32_t want;
    cr_expect_eq(take(0, &retry, &want), MB_RATELIMIT_ALLOW); /* on credit */
    cr_assert_eq(want, 5);
    /* The shared budget had 3 tokens: it is empty for another 40 ms. */
    mb_ratelimit_lease_granted(&t, K, 5, 3, 40 * MS, 10 * MS);
    cr_expect_eq(mb_ratelimit_lease_find(&t, K)->tokens, 2);
    cr_expect_eq(take(11 * MS, &retry, &want), MB_RATELIMIT_ALLOW);
    int asks = want > 0; /* 1 token left <= half a lease: a refill is asked */
    cr_expect_eq(take(11 * MS, &retry, &want), MB_RATELIMIT_ALLOW);
    asks += want > 0;
    cr_expect_eq(asks, 1);
    /* No tokens, no credit while the budget is known to be empty, and no
     * round trip either. */
    for (int i = 0; i < 5; i++) {
        cr_expect_eq(take(20 * MS, &retry, &want), MB_RATELIMIT_DENY);
        cr_expect_eq(retry, 30 * MS, "until 50 ms");
        asks += want > 0;
    }
    cr_expect_eq(asks, 1, "only the refill asked when the lease ran low");
    mb_ratelimit_lease_failed(&t, K);
    /* After that instant, credit applies again and a refill is asked. */
    cr_expect_eq(take(51 * MS, &retry, &want), MB_RATELIMIT_ALLOW);
    cr_expect_gt(want, 0);
}

Test(ratelimit_lease, stale_lease_is_dropped, .fini = fini)
{
    cr_assert_eq(mb_ratelimit_lease_init(&t, 64, 10, 1), MB_OK);
    uint64_t retry;
    uint32_t want;
    take(0, &retry, &want);
    mb_ratelimit_lease_granted(&t, K, want, want, 0, 0);
    cr_expect_eq(mb_ratelimit_lease_find(&t, K)->tokens, 10);
    /* Idle for longer than the hold: the tokens are gone, a new lease is
     * asked, the request goes on credit. */
    cr_expect_eq(take(HOLD_NS + 1, &retry, &want), MB_RATELIMIT_ALLOW);
    cr_expect_eq(mb_ratelimit_lease_find(&t, K)->tokens, -1);
    cr_expect_eq(want, 11);
}

Test(ratelimit_lease, failed_refill_can_be_asked_again, .fini = fini)
{
    cr_assert_eq(mb_ratelimit_lease_init(&t, 64, 2, 2), MB_OK);
    uint64_t retry;
    uint32_t want;
    take(0, &retry, &want);
    cr_assert_gt(want, 0);
    mb_ratelimit_lease_failed(&t, K);
    take(1, &retry, &want);
    cr_expect_gt(want, 0, "not pending any more");
}

Test(ratelimit_lease, admitted_never_exceeds_granted_plus_credit, .fini = fini)
{
    /* Whatever the interleaving of grants, admissions without a grant are
     * bounded by the credit, and leased tokens held by the worker by the
     * lease: the per-worker bound of the scheme. */
    const uint32_t lease = 7, credit = 5;
    cr_assert_eq(mb_ratelimit_lease_init(&t, 64, lease, credit), MB_OK);
    uint64_t retry, now = 0;
    uint32_t want, pending = 0;
    uint64_t admitted = 0, granted = 0;
    for (int i = 0; i < 10000; i++) {
        now += MS;
        if (take(now, &retry, &want) == MB_RATELIMIT_ALLOW)
            admitted++;
        if (want)
            pending = want;
        /* Every third step the shared budget answers with 0..want tokens. */
        if (pending && i % 3 == 0) {
            uint32_t g = (uint32_t)(i % (int)(pending + 1));
            mb_ratelimit_lease_granted(&t, K, pending, g, g < pending ? 2 * MS : 0, now);
            granted += g;
            pending = 0;
        }
        cr_assert_leq(admitted, granted + credit, "step %d", i);
        cr_assert_leq(mb_ratelimit_lease_find(&t, K)->tokens, (int64_t)lease + credit);
    }
    cr_expect_gt(admitted, 1000, "and it does admit");
}

Test(ratelimit_lease, eviction_keeps_the_table_usable, .fini = fini)
{
    cr_assert_eq(mb_ratelimit_lease_init(&t, 16, 4, 1), MB_OK);
    uint64_t retry;
    uint32_t want;
    /* 100 keys all homed on the same slot: the probe window holds 16; the
     * least recently used ones are evicted, the newest are found. */
    for (uint64_t i = 0; i < 100; i++) {
        struct mb_rl_key k = {0, i + 1};
        cr_expect_eq(mb_ratelimit_lease_take(&t, k, i, HOLD_NS, &retry, &want), MB_RATELIMIT_ALLOW);
    }
    cr_expect_not_null(mb_ratelimit_lease_find(&t, (struct mb_rl_key){0, 100}));
    cr_expect_null(mb_ratelimit_lease_find(&t, (struct mb_rl_key){0, 1}));
    /* A grant for an evicted key is ignored. */
    mb_ratelimit_lease_granted(&t, (struct mb_rl_key){0, 1}, 5, 5, 0, 200);
    cr_expect_null(mb_ratelimit_lease_find(&t, (struct mb_rl_key){0, 1}));
}
