/*
 * tests/unit/shm/test_counters.c — counters and histograms (shm/counters.c):
 * the X-macro table, histogram buckets and quantiles, folding a reaped
 * worker's row into the master row (totals never go backwards, even for a
 * reader racing the fold), and increments from several processes at once.
 */
#include <criterion/criterion.h>
#include <time.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/counters.h"
#include "shm/shm.h"
#include "tests/unit/shm/shm_test_util.h"

Test(counters, table_names_are_unique_and_consistent)
{
    for (int i = 0; i < MB_CTR__COUNT; i++) {
        const struct mb_counter_info *a = &mb_counters_info[i];
        cr_assert_not_null(a->name);
        cr_expect_gt(strlen(a->help), 0, "%s has help", a->name);
        char want[128];
        if (a->kind)
            snprintf(want, sizeof(want), "%s.%s", a->family, a->kind);
        else
            snprintf(want, sizeof(want), "%s", a->family);
        cr_expect_str_eq(a->name, want, "name is family[.kind]");
        for (int j = 0; j < i; j++)
            cr_expect_str_neq(a->name, mb_counters_info[j].name);
    }
    cr_expect_eq(mb_counters_info[MB_CTR_CONNECTIONS_ACTIVE].type, MB_CTR_GAUGE);
    cr_expect_eq(mb_counters_info[MB_CTR_REQUESTS_TOTAL].type, MB_CTR_COUNTER);
    cr_expect_str_eq(mb_counters_info[MB_CTR_REQUEST_ERRORS_OVERSIZE].kind, "oversize");
}

Test(counters, histogram_buckets_and_quantiles)
{
    cr_expect_eq(mb_counters_hist_bucket(0), 0);
    cr_expect_eq(mb_counters_hist_bucket(500000), 0, "a bound belongs to its bucket (le)");
    cr_expect_eq(mb_counters_hist_bucket(500001), 1);
    cr_expect_eq(mb_counters_hist_bucket(3000000), 3);
    cr_expect_eq(mb_counters_hist_bucket(10000000000ull), MB_HIST_NBUCKETS - 1);
    cr_expect_eq(mb_counters_hist_bucket(10000000001ull), MB_HIST_NBUCKETS);

    char path[128];
    shm_test_path(path, sizeof(path), "hist");
    struct mb_shm *s = shm_test_create(path, 2);
    struct mb_shm_hist h;
    mb_counters_hist_snapshot(s, &h, 1);
    cr_expect_eq(mb_counters_hist_quantile(&h, 0.5), -1, "empty");

    for (int i = 0; i < 50; i++)
        mb_counters_observe(s, 0, MB_HIST_REQUEST_DURATION, 300000); /* 0.3 ms */
    for (int i = 0; i < 50; i++)
        mb_counters_observe(s, 1, MB_HIST_REQUEST_DURATION, 3000000); /* 3 ms */
    mb_counters_hist_snapshot(s, &h, 1);
    cr_expect_eq(h.count, 100);
    cr_expect_eq(h.sum_ns, 50ull * 300000 + 50ull * 3000000);
    cr_expect_eq(h.bucket[0], 50);
    cr_expect_eq(h.bucket[3], 50);
    cr_expect_float_eq(mb_counters_hist_quantile(&h, 0.5), 0.5, 1e-9);
    cr_expect_float_eq(mb_counters_hist_quantile(&h, 0.9), 4.5, 1e-9);
    cr_expect_float_eq(mb_counters_hist_quantile(&h, 0.25), 0.25, 1e-9);

    mb_counters_observe(s, 0, MB_HIST_REQUEST_DURATION, 20000000000ull); /* 20 s */
    mb_counters_hist_snapshot(s, &h, 1);
    cr_expect_eq(h.count, 101);
    cr_expect(isinf(mb_counters_hist_quantile(&h, 1.0)), "above the last bound");
    mb_shm_close(&s);
    unlink(path);
}

Test(counters, fold_on_reap_keeps_totals)
{
    char path[128];
    shm_test_path(path, sizeof(path), "fold");
    struct mb_shm *s = shm_test_create(path, 4);
    uint32_t m = mb_counters_master_row(s);
    cr_expect_eq(m, 4);

    int a = mb_shm_worker_alloc(s, 0, 1), b = mb_shm_worker_alloc(s, 1, 1);
    mb_counters_add(s, (uint32_t)a, MB_CTR_REQUESTS_TOTAL, 100);
    mb_counters_add(s, (uint32_t)b, MB_CTR_REQUESTS_TOTAL, 23);
    mb_counters_add(s, (uint32_t)a, MB_CTR_CONNECTIONS_ACTIVE, 3);
    mb_counters_add(s, m, MB_CTR_RELOADS, 1);
    mb_counters_observe(s, (uint32_t)a, MB_HIST_REQUEST_DURATION, 1000000);
    cr_expect_eq(mb_counters_sum(s, MB_CTR_REQUESTS_TOTAL), 123);
    cr_expect_eq(mb_counters_sum(s, MB_CTR_CONNECTIONS_ACTIVE), 3);

    mb_shm_worker_reaped(s, (uint32_t)a, 0, false);
    cr_expect_eq(mb_counters_sum(s, MB_CTR_REQUESTS_TOTAL), 123, "total unchanged by the fold");
    cr_expect_eq(mb_counters_sum(s, MB_CTR_CONNECTIONS_ACTIVE), 0, "gauge not folded");
    cr_expect_eq(mb_counters_sum(s, MB_CTR_RELOADS), 1);
    cr_expect_eq(mb_counters_row(s, (uint32_t)a)[MB_CTR_REQUESTS_TOTAL], 0, "row zeroed");
    cr_expect_eq(mb_counters_row(s, m)[MB_CTR_REQUESTS_TOTAL], 100, "moved to the master row");
    struct mb_shm_hist h;
    mb_counters_hist_snapshot(s, &h, 1);
    cr_expect_eq(h.count, 1);
    cr_expect_eq(mb_counters_hist_row(s, (uint32_t)a)->count, 0);
    cr_expect_eq(mb_counters_hist_row(s, m)->bucket[1], 1);

    /* The respawned worker counts from zero; totals keep growing. */
    mb_shm_worker_respawn(s, (uint32_t)a);
    mb_counters_add(s, (uint32_t)a, MB_CTR_REQUESTS_TOTAL, 7);
    cr_expect_eq(mb_counters_sum(s, MB_CTR_REQUESTS_TOTAL), 130);
    cr_expect_eq(s->hdr->fold_seq % 2, 0);
    cr_expect_eq(s->hdr->fold_seq, 2, "one fold, one sequence round");
    mb_shm_close(&s);
    unlink(path);
}

/* Children each own one row and increment it; the parent reads sums while
 * they run (never decreasing), then reaps them and folds: the final total is
 * exact. */
Test(counters, multi_process_increments_sum_exactly, .timeout = 60)
{
    enum { NPROC = 8, N = 200000 };
    char path[128];
    shm_test_path(path, sizeof(path), "mp");
    struct mb_shm *s = shm_test_create(path, NPROC);
    pid_t pids[NPROC];
    int idx[NPROC];
    for (int i = 0; i < NPROC; i++) {
        idx[i] = mb_shm_worker_alloc(s, (uint32_t)i, 1);
        cr_assert_geq(idx[i], 0);
        pids[i] = shm_test_fork();
        cr_assert_neq(pids[i], -1);
        if (pids[i] == 0) {
            for (int k = 0; k < N; k++) {
                mb_counters_add(s, (uint32_t)idx[i], MB_CTR_REQUESTS_TOTAL, 1);
                mb_counters_add(s, (uint32_t)idx[i], MB_CTR_BYTES_IN, i + 1);
                if (k % 100 == 0)
                    mb_counters_observe(s, (uint32_t)idx[i], MB_HIST_REQUEST_DURATION,
                                        (uint64_t)k * 1000);
            }
            _exit(0);
        }
        mb_shm_worker_started(s, (uint32_t)idx[i], pids[i]);
    }
    uint64_t last = 0;
    for (int round = 0; round < 2000; round++) {
        uint64_t v = mb_counters_sum(s, MB_CTR_REQUESTS_TOTAL);
        cr_assert_geq(v, last, "total went backwards: %lu after %lu", (unsigned long)v,
                      (unsigned long)last);
        last = v;
        struct mb_shm_hist h;
        mb_counters_hist_snapshot(s, &h, 1);
        uint64_t in_buckets = 0;
        for (int b = 0; b < MB_HIST_NBUCKETS; b++)
            in_buckets += h.bucket[b];
        cr_assert_geq(h.count, in_buckets, "count never below the buckets' sum");
    }
    for (int i = 0; i < NPROC; i++) {
        int status;
        cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        mb_shm_worker_reaped(s, (uint32_t)idx[i], status, true);
        /* the reaped ones are complete; the others may still be counting */
        uint64_t v = mb_counters_sum(s, MB_CTR_REQUESTS_TOTAL);
        cr_assert_geq(v, (uint64_t)(i + 1) * N);
        cr_assert_geq(v, last);
        last = v;
    }
    cr_expect_eq(mb_counters_sum(s, MB_CTR_REQUESTS_TOTAL), (uint64_t)NPROC * N);
    uint64_t bytes = 0;
    for (int i = 0; i < NPROC; i++)
        bytes += (uint64_t)(i + 1) * N;
    cr_expect_eq(mb_counters_sum(s, MB_CTR_BYTES_IN), bytes);
    struct mb_shm_hist h;
    mb_counters_hist_snapshot(s, &h, 1);
    cr_expect_eq(h.count, (uint64_t)NPROC * (N / 100));
    mb_shm_close(&s);
    unlink(path);
}

/* A reader racing many folds never sees a total go down or count a folded row
 * twice (the fold_seq sequence lock). The parent folds for as long as it takes
 * the reader to sum 200000 times, or 5 s (a sanitizer build on a busy
 * machine is much slower, and a reader may retry while folds keep coming),
 * so both really run at the same time; the reader must have summed at least
 * MIN_READS times for the race to count. */
Test(counters, reader_racing_folds_sees_monotonic_totals, .timeout = 60)
{
    enum { READS = 200000, MIN_READS = 100, MAX_FOLDS = 20000000, CAP = 4 };
    char path[128];
    shm_test_path(path, sizeof(path), "race");
    struct mb_shm *s = shm_test_create(path, CAP);
    /* [0] reader's sums so far, [1] parent is done */
    uint64_t *sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq((void *)sh, MAP_FAILED);

    pid_t reader = shm_test_fork();
    cr_assert_neq(reader, -1);
    if (reader == 0) {
        uint64_t last = 0;
        for (uint64_t n = 1; !__atomic_load_n(&sh[1], __ATOMIC_ACQUIRE); n++) {
            uint64_t v = mb_counters_sum(s, MB_CTR_REQUESTS_TOTAL);
            if (v < last)
                _exit(1);
            last = v;
            __atomic_store_n(&sh[0], n, __ATOMIC_RELEASE);
        }
        _exit(0);
    }
    /* The parent plays every worker in turn (each one dead before its fold). */
    uint32_t folds = 0;
    while (__atomic_load_n(&sh[0], __ATOMIC_ACQUIRE) == 0)
        ;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (__atomic_load_n(&sh[0], __ATOMIC_ACQUIRE) < READS && folds < MAX_FOLDS) {
        mb_counters_add(s, folds % CAP, MB_CTR_REQUESTS_TOTAL, 1);
        mb_counters_fold(s, folds % CAP);
        folds++;
        if ((folds & 1023) == 0) {
            /* A reader retries while folds keep coming; a short gap now and
             * then lets a slow (sanitizer) reader finish a sum at all. */
            struct timespec gap = {0, 20000};
            nanosleep(&gap, NULL);
            clock_gettime(CLOCK_MONOTONIC, &t);
            if (t.tv_sec - t0.tv_sec >= 5)
                break;
        }
    }
    uint64_t reads = __atomic_load_n(&sh[0], __ATOMIC_ACQUIRE);
    __atomic_store_n(&sh[1], 1, __ATOMIC_RELEASE);
    int status;
    cr_assert_eq(waitpid(reader, &status, 0), reader);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "reader saw a total go backwards");
    cr_expect_geq(reads, MIN_READS, "the reader summed only %llu times during %u folds",
                  (unsigned long long)reads, folds);
    cr_expect_eq(mb_counters_sum(s, MB_CTR_REQUESTS_TOTAL), folds);
    munmap(sh, 4096);
    mb_shm_close(&s);
    unlink(path);
}
