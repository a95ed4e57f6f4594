/*
 * tests/unit/shm/test_successor.c — what a successor region takes over from
 * its predecessor on a reload that changes the region's shape
 * (mb_shm_create_successor in shm/shm.c, mb_ratelimit_copy in
 * shm/ratelimit.c, mb_counters_carry in shm/counters.c): live buckets are
 * copied and rehashed into the new capacity, a smaller table keeps the most
 * restrictive buckets (latest TAT) and counts the drops, expired buckets are
 * not carried, the hash seed is kept; counter totals (not gauges) go into
 * the new master row, and the old workers' later counts are added once when
 * the old region retires, so totals never go backwards or count twice.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/time.h"
#include "shm/counters.h"
#include "shm/ratelimit.h"
#include "shm/shm.h"
#include "tests/unit/shm/shm_test_util.h"

#define SEC 1000000000ull

/* A table on the heap (no region), seeded like a region's. */
static struct mb_ratelimit heap_table(uint32_t capacity, uint64_t seed0)
{
    struct mb_ratelimit rl = {0};
    rl.nslots = mb_ratelimit_slots_for(capacity);
    rl.slots = calloc(rl.nslots, sizeof(*rl.slots));
    cr_assert_not_null(rl.slots);
    rl.capacity = capacity;
    rl.owner = MB_RL_OWNER_NONE;
    rl.seed[0] = seed0;
    rl.seed[1] = ~seed0;
    return rl;
}

static struct mb_rl_key key_of(const struct mb_ratelimit *rl, int i)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "client-%d", i);
    return mb_ratelimit_key(rl, buf, (size_t)n);
}

/* The TAT of key in a table, 0 when absent (scans every slot: independent of
 * the probe rules under test). */
static uint64_t tat_of(const struct mb_ratelimit *rl, struct mb_rl_key k)
{
    uint64_t found = 0;
    int copies = 0;
    for (uint64_t i = 0; i < rl->nslots; i++) {
        const struct mb_shm_rl_slot *s = &rl->slots[i];
        if (s->tat != 0 && s->key_lo == k.lo && s->key_hi == k.hi) {
            found = s->tat;
            copies++;
        }
    }
    cr_assert_leq(copies, 1, "a key is carried once");
    return found;
}

/* Key i gets i + 1 admitted requests at now with T = 1 s: TAT = now + (i+1) s. */
static void fill(struct mb_ratelimit *rl, int n, uint64_t now)
{
    uint64_t retry;
    for (int i = 0; i < n; i++)
        for (int r = 0; r <= i; r++)
            cr_assert_eq(mb_ratelimit_take(rl, key_of(rl, i), now, SEC, 1000 * SEC, &retry),
                         MB_RATELIMIT_ALLOW);
}

Test(successor, copy_rehashes_every_live_bucket)
{
    const uint64_t now = 5000 * SEC;
    struct mb_ratelimit src = heap_table(64, 42), dst = heap_table(1024, 42);
    fill(&src, 40, now);
    /* An expired bucket (TAT in the past) carries nothing and is left out. */
    uint64_t retry;
    cr_assert_eq(mb_ratelimit_take(&src, key_of(&src, 999), now - 100 * SEC, SEC, 0, &retry),
                 MB_RATELIMIT_ALLOW);
    uint64_t copied = 0, dropped = 0;
    cr_assert_eq(mb_ratelimit_copy(&dst, &src, now, &copied, &dropped), 0);
    cr_expect_eq(copied, 40);
    cr_expect_eq(dropped, 0);
    cr_expect_eq(tat_of(&dst, key_of(&dst, 999)), 0, "the expired bucket is not carried");
    for (int i = 0; i < 40; i++) {
        struct mb_rl_key k = key_of(&dst, i);
        cr_expect_eq(tat_of(&dst, k), now + (uint64_t)(i + 1) * SEC, "key %d keeps its TAT", i);
        /* Reachable from its home in the new geometry: with burst 1 (tau 0)
         * a carried bucket rejects, a fresh one would admit. */
        cr_expect_eq(mb_ratelimit_take(&dst, k, now, SEC, 0, &retry), MB_RATELIMIT_DENY,
                     "key %d found in the new table", i);
        cr_expect_eq(retry, (uint64_t)(i + 1) * SEC);
    }
    free(src.slots);
    free(dst.slots);
}

Test(successor, smaller_table_keeps_the_most_restrictive)
{
    const uint64_t now = 5000 * SEC;
    struct mb_ratelimit src = heap_table(256, 7), dst = heap_table(16, 7);
    fill(&src, 100, now);
    uint64_t copied = 0, dropped = 0;
    cr_assert_eq(mb_ratelimit_copy(&dst, &src, now, &copied, &dropped), 0);
    cr_expect_eq(copied, 16, "the new capacity");
    cr_expect_eq(dropped, 84, "the rest is counted");
    /* Key i has TAT now + (i+1) s: the 16 latest are keys 84..99. */
    for (int i = 0; i < 100; i++) {
        uint64_t t = tat_of(&dst, key_of(&dst, i));
        if (i >= 84)
            cr_expect_eq(t, now + (uint64_t)(i + 1) * SEC, "key %d (restrictive) kept", i);
        else
            cr_expect_eq(t, 0, "key %d (less restrictive) dropped", i);
    }
    free(src.slots);
    free(dst.slots);
}

Test(successor, copy_refuses_another_seed_and_handles_no_table)
{
    const uint64_t now = 5000 * SEC;
    struct mb_ratelimit src = heap_table(64, 1), dst = heap_table(64, 2), none = {0};
    fill(&src, 3, now);
    uint64_t copied = 9, dropped = 9;
    cr_expect_eq(mb_ratelimit_copy(&dst, &src, now, &copied, &dropped), MB_ERR);
    cr_expect_eq(copied, 0);
    cr_expect_eq(tat_of(&dst, key_of(&src, 0)), 0, "dst unchanged");
    /* A successor without a table (capacity 0) drops every live bucket. */
    cr_expect_eq(mb_ratelimit_copy(&none, &src, now, &copied, &dropped), 0);
    cr_expect_eq(copied, 0);
    cr_expect_eq(dropped, 3);
    free(src.slots);
    free(dst.slots);
}

Test(successor, region_carries_buckets_seed_and_counter_totals)
{
    char path[128];
    shm_test_path(path, sizeof(path), "succ");
    struct mb_shm *a = shm_test_create_rl(path, 4, 64);
    mb_shm_publish(a);
    uint64_t now = mb_time_mono_ns(), retry;
    struct mb_rl_key k = mb_ratelimit_key(&a->ratelimit, "10.0.0.1", 8);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(mb_ratelimit_take(&a->ratelimit, k, now, 3600 * SEC, 2 * 3600 * SEC, &retry),
                     MB_RATELIMIT_ALLOW);
    cr_assert_eq(mb_ratelimit_take(&a->ratelimit, k, now, 3600 * SEC, 2 * 3600 * SEC, &retry),
                 MB_RATELIMIT_DENY);

    /* Worker rows, the master row, a gauge and a histogram in the old region. */
    mb_counters_add(a, 0, MB_CTR_REQUESTS_TOTAL, 10);
    mb_counters_add(a, 1, MB_CTR_REQUESTS_TOTAL, 5);
    mb_counters_add(a, mb_counters_master_row(a), MB_CTR_RELOADS, 2);
    mb_counters_add(a, 0, MB_CTR_CONNECTIONS_ACTIVE, 4);
    mb_counters_observe(a, 1, MB_HIST_REQUEST_DURATION, 2000000);

    struct mb_counters_totals *t0 = malloc(sizeof(*t0));
    cr_assert_not_null(t0);
    struct mb_shm_carry carry = {.totals = t0};
    struct mb_shm_params p = {.worker_capacity = 4, .ratelimit_capacity = 4096};
    struct mb_shm *b = NULL;
    char err[256] = "";
    cr_assert_eq(mb_shm_create_successor(a, &p, &carry, &b, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(carry.buckets_copied, 1);
    cr_expect_eq(carry.buckets_dropped, 0);
    cr_expect_eq(memcmp(a->hdr->hash_seed, b->hdr->hash_seed, sizeof(a->hdr->hash_seed)), 0,
                 "the seed is kept, so clients hash to the same keys");
    cr_expect_eq(b->ratelimit.capacity, 4096);
    cr_expect_eq(mb_ratelimit_take(&b->ratelimit, mb_ratelimit_key(&b->ratelimit, "10.0.0.1", 8),
                                   mb_time_mono_ns(), 3600 * SEC, 2 * 3600 * SEC, &retry),
                 MB_RATELIMIT_DENY, "the exhausted bucket is carried");

    /* Totals now in b's master row; the gauge is not carried. */
    cr_expect_eq(t0->ctr[MB_CTR_REQUESTS_TOTAL], 15);
    cr_expect_eq(mb_counters_sum(b, MB_CTR_REQUESTS_TOTAL), 15);
    cr_expect_eq(mb_counters_sum(b, MB_CTR_RELOADS), 2);
    cr_expect_eq(mb_counters_sum(b, MB_CTR_CONNECTIONS_ACTIVE), 0);
    struct mb_shm_hist h;
    mb_counters_hist_snapshot(b, &h, 1);
    cr_expect_eq(h.count, 1);
    cr_expect_eq(h.sum_ns, 2000000);
    cr_expect_eq(h.bucket[mb_counters_hist_bucket(2000000)], 1);

    /* The path is b's now; a still works for the processes that map it. */
    struct mb_shm *seen = NULL;
    cr_assert_eq(mb_shm_attach(path, &seen, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(seen->ratelimit.capacity, 4096);
    mb_shm_close(&seen);

    /* The old workers go on counting in a, and a new worker counts in b. */
    mb_counters_add(a, 0, MB_CTR_REQUESTS_TOTAL, 7);
    mb_counters_observe(a, 0, MB_HIST_REQUEST_DURATION, 2000000);
    mb_counters_add(b, 0, MB_CTR_REQUESTS_TOTAL, 100);
    cr_expect_eq(mb_counters_sum(b, MB_CTR_REQUESTS_TOTAL), 115, "not yet carried");
    /* They exit (folded), and a retires: the delta since t0 goes into b. */
    mb_shm_worker_reaped(a, 0, 0, true);
    mb_shm_worker_reaped(a, 1, 0, true);
    struct mb_counters_totals *t1 = malloc(sizeof(*t1));
    cr_assert_not_null(t1);
    mb_counters_totals(a, t1);
    cr_expect_eq(t1->ctr[MB_CTR_REQUESTS_TOTAL], 22);
    mb_counters_carry(b, t1, t0);
    cr_expect_eq(mb_counters_sum(b, MB_CTR_REQUESTS_TOTAL), 122, "15 + 7 from a, 100 in b");
    cr_expect_eq(mb_counters_sum(b, MB_CTR_RELOADS), 2, "the master's own counts once");
    mb_counters_hist_snapshot(b, &h, 1);
    cr_expect_eq(h.count, 2);
    /* A counter smaller than at the copy (a damaged region) adds nothing. */
    t1->ctr[MB_CTR_RELOADS] = 0;
    mb_counters_carry(b, t1, t0);
    cr_expect_eq(mb_counters_sum(b, MB_CTR_RELOADS), 2);

    free(t0);
    free(t1);
    mb_shm_retire(a);
    mb_shm_close(&a);
    mb_shm_close(&b);
    unlink(path);
}

Test(successor, smaller_region_and_caches_start_empty)
{
    char path[128];
    shm_test_path(path, sizeof(path), "succ-small");
    struct mb_shm *a = shm_test_create_rl(path, 4, 1024);
    uint64_t now = mb_time_mono_ns(), retry;
    for (int i = 0; i < 40; i++)
        cr_assert_eq(mb_ratelimit_take(&a->ratelimit, key_of(&a->ratelimit, i), now,
                                       (uint64_t)(i + 1) * 3600 * SEC, 0, &retry),
                     MB_RATELIMIT_ALLOW);
    struct mb_counters_totals t0;
    struct mb_shm_carry carry = {.totals = &t0};
    struct mb_shm_params p = {.worker_capacity = 4, .ratelimit_capacity = 16};
    struct mb_shm *b = NULL;
    char err[256] = "";
    cr_assert_eq(mb_shm_create_successor(a, &p, &carry, &b, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(carry.buckets_copied, 16);
    cr_expect_eq(carry.buckets_dropped, 24);
    struct mb_ratelimit_stats st;
    mb_ratelimit_stats(&b->ratelimit, mb_time_mono_ns(), &st);
    cr_expect_eq(st.live, 16);
    /* The kept ones are the 16 with the latest TAT: keys 24..39. */
    for (int i = 0; i < 40; i++)
        cr_expect_eq(tat_of(&b->ratelimit, key_of(&b->ratelimit, i)) != 0, i >= 24, "key %d", i);
    for (uint32_t i = 0; i < MB_CACHE_KINDS; i++)
        cr_expect_null(b->caches[i].hdr, "no cache configured, none laid out");
    mb_shm_close(&a);
    mb_shm_close(&b);
    unlink(path);
}
