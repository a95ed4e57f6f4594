/*
 * tests/unit/shm/test_cache_stress.c — the shared cache under several
 * processes (fork): writers churn a small cache (few slots, a small ring,
 * so values are overwritten and evicted all the time) while readers check
 * every value they get against its own checksum and the key it was asked
 * for: zero torn or foreign values. A writer stopped in the middle of a
 * store and killed leaves one odd slot that does not wedge anything and is
 * repaired by mb_shm_worker_reaped; writers killed at random moments leave
 * a cache that stays fully usable after repair.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/time.h"
#include "shm/cache.h"
#include "tests/unit/shm/shm_test_util.h"
#include "shm/shm.h"
#include "tests/unit/shm/cache_test_util.h"

#define NKEYS   200
#define MAXVAL  3000
#define WRITERS 3
#define READERS 3
#define RUN_MS  1500
#define TTL_MS  60000

static char path[256];
static struct mb_shm *shm;

static void fini(void)
{
    mb_shm_close(&shm);
    unlink(path);
}

static struct mb_cache_key key_of(struct mb_cache *c, uint32_t k)
{
    char s[16];
    int n = snprintf(s, sizeof(s), "k%u", k);
    return mb_cache_key(c, s, (size_t)n);
}

static uint64_t fnv(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* A value: key (4), length (4), pseudo-random bytes, then a checksum (8) of
 * everything before it. */
static size_t make_value(unsigned char *buf, uint32_t key, uint64_t *rng)
{
    *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
    size_t len = 16 + (size_t)((*rng >> 33) % (MAXVAL - 16));
    memcpy(buf, &key, 4);
    uint32_t l32 = (uint32_t)len;
    memcpy(buf + 4, &l32, 4);
    for (size_t i = 8; i < len - 8; i++) {
        *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
        buf[i] = (unsigned char)(*rng >> 56);
    }
    uint64_t h = fnv(buf, len - 8);
    memcpy(buf + len - 8, &h, 8);
    return len;
}

/* 0 ok, 1 wrong (torn, foreign key, bad length). */
static int check_value(const unsigned char *buf, size_t len, uint32_t key)
{
    uint32_t k, l;
    uint64_t h;
    if (len < 16)
        return 1;
    memcpy(&k, buf, 4);
    memcpy(&l, buf + 4, 4);
    memcpy(&h, buf + len - 8, 8);
    return k != key || l != len || h != fnv(buf, len - 8);
}

struct result {
    uint64_t reads, hits, bad, stores;
};

static void writer(struct mb_cache *c, uint32_t owner, uint64_t seed, uint64_t until,
                   struct result *res)
{
    unsigned char buf[MAXVAL];
    mb_cache_set_owner(c, owner);
    uint64_t rng = seed;
    while (mb_time_mono_ms() < until) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t k = (uint32_t)((rng >> 33) % NKEYS);
        size_t len = make_value(buf, k, &rng);
        if (mb_cache_put(c, key_of(c, k), buf, len, TTL_MS, mb_time_mono_ms()) == 0)
            __atomic_add_fetch(&res->stores, 1, __ATOMIC_RELAXED);
        if ((rng >> 20) % 50 == 0)
            mb_cache_del(c, key_of(c, k));
    }
}

static void reader(struct mb_cache *c, uint32_t owner, uint64_t seed, uint64_t until,
                   struct result *res)
{
    unsigned char buf[MAXVAL];
    mb_cache_set_owner(c, owner);
    uint64_t rng = seed;
    while (mb_time_mono_ms() < until) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t k = (uint32_t)((rng >> 33) % NKEYS);
        size_t len = 0;
        int rc = mb_cache_get(c, key_of(c, k), mb_time_mono_ms(), buf, sizeof(buf), &len);
        __atomic_add_fetch(&res->reads, 1, __ATOMIC_RELAXED);
        if (rc == 0) {
            __atomic_add_fetch(&res->hits, 1, __ATOMIC_RELAXED);
            if (check_value(buf, len, k))
                __atomic_add_fetch(&res->bad, 1, __ATOMIC_RELAXED);
        }
    }
}

Test(cache_stress, churning_writers_never_show_readers_a_torn_value, .fini = fini, .timeout = 60)
{
    /* 32 slots and a 16 KiB ring for 200 keys of up to 3 KB: constant
     * eviction by slots and by arena space. */
    shm = cache_test_region(path, sizeof(path), "cstress", 32, 16384, 4096);
    struct mb_cache *c = &shm->caches[MB_CACHE_RESPONSE];
    struct result *res =
        mmap(NULL, sizeof(*res), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(res, MAP_FAILED);
    memset(res, 0, sizeof(*res));
    uint64_t until = mb_time_mono_ms() + RUN_MS;
    pid_t pids[WRITERS + READERS];
    for (int i = 0; i < WRITERS + READERS; i++) {
        pids[i] = shm_test_fork();
        cr_assert_neq(pids[i], -1);
        if (pids[i] == 0) {
            if (i < WRITERS)
                writer(c, (uint32_t)i, 0x1234 + (uint64_t)i * 7919, until, res);
            else
                reader(c, (uint32_t)i, 0x9876 + (uint64_t)i * 104729, until, res);
            _exit(0);
        }
    }
    for (int i = 0; i < WRITERS + READERS; i++) {
        int st;
        cr_assert_eq(waitpid(pids[i], &st, 0), pids[i]);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d status %d", i, st);
    }
    cr_expect_eq(res->bad, 0, "%llu torn or foreign values in %llu hits",
                 (unsigned long long)res->bad, (unsigned long long)res->hits);
    cr_expect_gt(res->hits, 100, "the test must exercise hits (got %llu of %llu reads)",
                 (unsigned long long)res->hits, (unsigned long long)res->reads);
    cr_expect_gt(res->stores, 100);
    cr_expect_gt(cache_test_ctr(shm, MB_CACHE_STAT_EVICTIONS, MB_CACHE_RESPONSE), 0,
                 "the churn should evict");
    struct mb_cache_stats st;
    mb_cache_stats(c, mb_time_mono_ms(), &st);
    cr_expect_eq(st.writing, 0, "no slot left odd by writers that finished");
    cr_expect_leq(st.entries, 32);
    munmap(res, sizeof(*res));
}

/* A writer stopped between claim and publish, then killed: its slot is odd
 * and names it; readers miss it without waiting, writers work around it,
 * and the master's repair (on reaping) frees it. */
Test(cache_stress, writer_killed_mid_store_does_not_wedge_a_slot, .fini = fini, .timeout = 30)
{
    shm = cache_test_region(path, sizeof(path), "ckill", 8, 65536, 4096);
    struct mb_cache *c = &shm->caches[MB_CACHE_DISCOVERY];
    mb_cache_set_owner(c, 0);
    struct mb_cache_key k = key_of(c, 1);
    cr_assert_eq(mb_cache_put(c, k, "old", 3, TTL_MS, mb_time_mono_ms()), 0);
    pid_t pid = shm_test_fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        mb_cache_set_owner(c, 5);
        struct mb_cache_write w;
        int rc;
        void *dst = mb_cache_put_begin(c, k, 3, TTL_MS, mb_time_mono_ms(), &w, &rc);
        if (dst == NULL)
            _exit(3);
        memcpy(dst, "new", 3);
        raise(SIGSTOP); /* mid-store */
        mb_cache_put_commit(&w, mb_cache_sum("new", 3));
        _exit(0);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, WUNTRACED), pid);
    cr_assert(WIFSTOPPED(st), "the writer should be stopped mid-store (status %d)", st);
    kill(pid, SIGKILL);
    cr_assert_eq(waitpid(pid, &st, 0), pid);

    struct mb_cache_stats s;
    mb_cache_stats(c, mb_time_mono_ms(), &s);
    cr_expect_eq(s.writing, 1);
    char buf[16];
    size_t len;
    uint64_t t0 = mb_time_mono_ms();
    cr_expect_eq(mb_cache_get(c, k, mb_time_mono_ms(), buf, sizeof(buf), &len), MB_DECLINED);
    cr_expect_lt(mb_time_mono_ms() - t0, 1000, "a reader must not wait for a dead writer");
    /* The key can still be stored (in another slot) and read. */
    cr_expect_eq(mb_cache_put(c, k, "alt", 3, TTL_MS, mb_time_mono_ms()), 0);
    cr_expect_eq(mb_cache_get(c, k, mb_time_mono_ms(), buf, sizeof(buf), &len), 0);
    cr_expect_eq(memcmp(buf, "alt", 3), 0);

    mb_shm_worker_reaped(shm, 5, st, true);
    mb_cache_stats(c, mb_time_mono_ms(), &s);
    cr_expect_eq(s.writing, 0, "repair should free the dead writer's slot");
    /* Every slot is usable again: fill all 8. */
    for (uint32_t i = 100; i < 108; i++)
        cr_expect_eq(mb_cache_put(c, key_of(c, i), "v", 1, TTL_MS, mb_time_mono_ms()), 0);
    mb_cache_stats(c, mb_time_mono_ms(), &s);
    cr_expect_eq(s.entries, 8);
}

/* Writers killed at random moments, over and over: after each repair no
 * slot is odd, and every value read is intact. */
Test(cache_stress, writers_killed_at_random_leave_a_usable_cache, .fini = fini, .timeout = 60)
{
    shm = cache_test_region(path, sizeof(path), "crand", 32, 16384, 4096);
    struct mb_cache *c = &shm->caches[MB_CACHE_AUTH];
    mb_cache_set_owner(c, 0);
    uint64_t rng = 42;
    for (int round = 0; round < 20; round++) {
        pid_t pid = shm_test_fork();
        cr_assert_neq(pid, -1);
        if (pid == 0) {
            struct result dummy;
            writer(c, 7, 0x5555 + (uint64_t)round, mb_time_mono_ms() + 10000, &dummy);
            _exit(0);
        }
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        struct timespec ts = {0, (long)(2000000 + (rng >> 40) % 20000000)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        mb_shm_worker_reaped(shm, 7, st, true);
        struct mb_cache_stats s;
        mb_cache_stats(c, mb_time_mono_ms(), &s);
        cr_assert_eq(s.writing, 0, "round %d: a slot stayed odd after repair", round);
        unsigned char buf[MAXVAL];
        for (uint32_t k = 0; k < NKEYS; k++) {
            size_t len;
            if (mb_cache_get(c, key_of(c, k), mb_time_mono_ms(), buf, sizeof(buf), &len) == 0)
                cr_assert_eq(check_value(buf, len, k), 0, "round %d key %u torn", round, k);
        }
    }
    unsigned char buf[MAXVAL];
    uint64_t r2 = 1;
    size_t len = make_value(buf, 3, &r2);
    cr_expect_eq(mb_cache_put(c, key_of(c, 3), buf, len, TTL_MS, mb_time_mono_ms()), 0);
}
