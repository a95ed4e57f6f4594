/*
 * tests/unit/shm/test_ratelimit.c — the rate-limit table (shm/ratelimit.c):
 * GCRA arithmetic (burst, steady rate, long idle, clock edges, agreement with
 * a reference model), insert and reclaim in the open-addressing table,
 * repair of a slot left claimed by a dead process, and multi-process stress
 * with fork: one bucket hammered by 8 processes admits exactly what GCRA
 * allows, 8 processes inserting distinct keys never lose or duplicate one, and
 * a process killed mid-loop leaves a table the others keep using.
 */
#include <criterion/criterion.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/time.h"
#include "shm/ratelimit.h"
#include "shm/shm.h"
#include "tests/unit/shm/shm_test_util.h"

#define MS      1000000ull
#define SEC     1000000000ull
#define HOUR    (3600 * SEC)
#define BASE_NS (1000 * SEC) /* an arbitrary "now" */

static struct mb_shm *make(char *path, size_t len, const char *tag, uint32_t rl_capacity)
{
    shm_test_path(path, len, tag);
    struct mb_shm *s = shm_test_create_rl(path, 16, rl_capacity);
    cr_assert_not_null(s->ratelimit.slots);
    return s;
}

static void drop(struct mb_shm **s, const char *path)
{
    mb_shm_close(s);
    unlink(path);
}

static int take(struct mb_shm *s, struct mb_rl_key k, uint64_t now, uint64_t T, uint64_t tau,
                uint64_t *retry)
{
    uint64_t r;
    int rc = mb_ratelimit_take(&s->ratelimit, k, now, T, tau, retry ? retry : &r);
    return rc;
}

Test(ratelimit, params)
{
    uint64_t T, tau;
    cr_assert_eq(mb_ratelimit_params(1000, 5, &T, &tau), 0);
    cr_expect_eq(T, 1 * MS);
    cr_expect_eq(tau, 4 * MS);
    cr_assert_eq(mb_ratelimit_params(10000, 2000, &T, &tau), 0);
    cr_expect_eq(T, 100000);
    cr_expect_eq(tau, 100000ull * 1999);
    cr_assert_eq(mb_ratelimit_params(3, 1, &T, &tau), 0);
    cr_expect_eq(T, 333333333);
    cr_expect_eq(tau, 0);
    cr_assert_eq(mb_ratelimit_params(1e12, 1, &T, &tau), 0);
    cr_expect_eq(T, 1, "never below the clock's grain");
    cr_expect_eq(mb_ratelimit_params(0, 5, &T, &tau), MB_ERR);
    cr_expect_eq(mb_ratelimit_params(-1, 5, &T, &tau), MB_ERR);
    cr_expect_eq(mb_ratelimit_params(10, 0, &T, &tau), MB_ERR);
    cr_expect_eq(mb_ratelimit_slots_for(65536), 131072);
    cr_expect_eq(mb_ratelimit_slots_for(65537), 262144);
    cr_expect_eq(mb_ratelimit_slots_for(1), 16);
}

Test(ratelimit, burst_then_rate)
{
    char path[128];
    struct mb_shm *s = make(path, sizeof(path), "burst", 64);
    uint64_t T = 1 * MS, tau = 4 * MS, retry; /* 1000/s, burst 5 */
    struct mb_rl_key k = mb_ratelimit_key(&s->ratelimit, "client-a", 8);

    for (int i = 0; i < 5; i++) {
        cr_expect_eq(take(s, k, BASE_NS, T, tau, &retry), MB_RATELIMIT_ALLOW, "burst %d", i);
        cr_expect_eq(retry, 0);
    }
    cr_expect_eq(take(s, k, BASE_NS, T, tau, &retry), MB_RATELIMIT_DENY);
    cr_expect_eq(retry, T, "one more after one period");
    cr_expect_eq(take(s, k, BASE_NS + T / 2, T, tau, &retry), MB_RATELIMIT_DENY);
    cr_expect_eq(retry, T / 2);
    cr_expect_eq(take(s, k, BASE_NS + T, T, tau, &retry), MB_RATELIMIT_ALLOW);
    cr_expect_eq(take(s, k, BASE_NS + T, T, tau, &retry), MB_RATELIMIT_DENY);
    cr_expect_eq(retry, T);

    /* Another key has its own budget. */
    struct mb_rl_key other = mb_ratelimit_key(&s->ratelimit, "client-b", 8);
    cr_expect(other.lo != k.lo || other.hi != k.hi);
    cr_expect_eq(take(s, other, BASE_NS, T, tau, NULL), MB_RATELIMIT_ALLOW);
    drop(&s, path);
}

Test(ratelimit, steady_rate_and_long_idle)
{
    char path[128];
    struct mb_shm *s = make(path, sizeof(path), "steady", 64);
    uint64_t T = 10 * MS, tau = 0, retry; /* 100/s, burst 1 */
    struct mb_rl_key k = {.lo = 7, .hi = 99};

    for (uint64_t i = 0; i < 1000; i++)
        cr_assert_eq(take(s, k, BASE_NS + i * T, T, tau, NULL), MB_RATELIMIT_ALLOW,
                     "request %lu exactly on the rate", (unsigned long)i);
    uint64_t last = BASE_NS + 999 * T;
    cr_expect_eq(take(s, k, last + T - 1, T, tau, &retry), MB_RATELIMIT_DENY);
    cr_expect_eq(retry, 1);

    /* After an hour idle the bucket is full again: burst, not more. */
    uint64_t tau5 = 4 * T; /* burst 5 with the same rate */
    uint64_t later = last + HOUR;
    for (int i = 0; i < 5; i++)
        cr_expect_eq(take(s, k, later, T, tau5, NULL), MB_RATELIMIT_ALLOW);
    cr_expect_eq(take(s, k, later, T, tau5, &retry), MB_RATELIMIT_DENY);
    cr_expect_eq(retry, T);
    drop(&s, path);
}

/* The textbook virtual-scheduling GCRA, one bucket in plain variables. */
struct ref {
    uint64_t tat;
    int used;
};
static int ref_take(struct ref *r, uint64_t now, uint64_t T, uint64_t tau, uint64_t *retry)
{
    uint64_t tat = r->used && r->tat > now ? r->tat : now;
    if (tat - now > tau) {
        *retry = tat - now - tau;
        return MB_RATELIMIT_DENY;
    }
    r->tat = tat + T;
    r->used = 1;
    *retry = 0;
    return MB_RATELIMIT_ALLOW;
}

Test(ratelimit, agrees_with_reference_model)
{
    char path[128];
    struct mb_shm *s = make(path, sizeof(path), "ref", 256);
    const uint64_t Ts[3] = {1 * MS, 333333, 50 * MS};
    const uint64_t bursts[3] = {1, 7, 100};
    uint64_t seed = 12345;
    int allowed = 0, denied = 0;
    for (int c = 0; c < 3; c++) {
        struct mb_rl_key k = {.lo = 1000 + (uint64_t)c, .hi = 42};
        struct ref r = {0, 0};
        uint64_t T = Ts[c], tau = T * (bursts[c] - 1), now = BASE_NS;
        for (int i = 0; i < 50000; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            now += (seed >> 33) % (3 * T / (i % 1000 < 500 ? 4 : 1) + 1); /* bursts, then calm */
            uint64_t want_retry, got_retry;
            int want = ref_take(&r, now, T, tau, &want_retry);
            int got = take(s, k, now, T, tau, &got_retry);
            cr_assert_eq(got, want, "key %d request %d at %lu", c, i, (unsigned long)now);
            cr_assert_eq(got_retry, want_retry, "retry_after of request %d", i);
            if (got == MB_RATELIMIT_ALLOW)
                allowed++;
            else
                denied++;
        }
    }
    cr_expect(allowed > 1000 && denied > 1000, "both outcomes exercised (%d/%d)", allowed, denied);
    drop(&s, path);
}

Test(ratelimit, clock_edges)
{
    char path[128];
    struct mb_shm *s = make(path, sizeof(path), "edges", 64);
    uint64_t T = 1 * MS, tau = 1 * MS, retry;
    struct mb_rl_key k0 = {.lo = 1, .hi = 1}, kmax = {.lo = 2, .hi = 2}, kb = {.lo = 3, .hi = 3};

    /* now = 0: the first instant of the clock works like any other */
    cr_expect_eq(take(s, k0, 0, T, tau, NULL), MB_RATELIMIT_ALLOW);
    cr_expect_eq(take(s, k0, 0, T, tau, NULL), MB_RATELIMIT_ALLOW);
    cr_expect_eq(take(s, k0, 0, T, tau, &retry), MB_RATELIMIT_DENY);
    cr_expect_eq(retry, T);

    /* The far end: TATs saturate instead of wrapping into the past. */
    for (int i = 0; i < 5; i++)
        cr_expect_neq(take(s, kmax, UINT64_MAX - (uint64_t)i, T, tau, NULL), MB_ERR);
    struct mb_ratelimit_stats st;
    mb_ratelimit_stats(&s->ratelimit, UINT64_MAX / 4, &st);
    cr_expect_eq(st.live, 1, "kmax is live: its TAT did not wrap into the past");
    cr_expect_eq(st.expired, 1, "k0");
    cr_expect_eq(st.claimed, 0);

    /* A clock that steps back: denied, and told how long to wait. */
    cr_expect_eq(take(s, kb, BASE_NS, T, tau, NULL), MB_RATELIMIT_ALLOW);
    cr_expect_eq(take(s, kb, BASE_NS - 10 * MS, T, tau, &retry), MB_RATELIMIT_DENY);
    cr_expect_eq(retry, 10 * MS, "tat - tau - now = (BASE+T) - T - (BASE-10ms)");

    /* Bad calls. */
    cr_expect_eq(take(s, kb, BASE_NS, 0, tau, NULL), MB_ERR, "T = 0");
    struct mb_ratelimit none = {0};
    cr_expect_eq(mb_ratelimit_take(&none, kb, BASE_NS, T, tau, &retry), MB_ERR, "no table");
    drop(&s, path);
}

Test(ratelimit, rejected_request_writes_nothing)
{
    char path[128];
    struct mb_shm *s = make(path, sizeof(path), "nowrite", 64);
    uint64_t T = 1 * MS, tau = 0;
    struct mb_rl_key k = {.lo = 5, .hi = 5};
    cr_assert_eq(take(s, k, BASE_NS, T, tau, NULL), MB_RATELIMIT_ALLOW);
    size_t bytes = s->ratelimit.nslots * sizeof(struct mb_shm_rl_slot);
    void *before = malloc(bytes);
    memcpy(before, s->ratelimit.slots, bytes);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(take(s, k, BASE_NS + (uint64_t)i, T, tau, NULL), MB_RATELIMIT_DENY);
    cr_expect_eq(memcmp(before, s->ratelimit.slots, bytes), 0);
    free(before);
    drop(&s, path);
}

Test(ratelimit, insert_until_full_and_reclaim_expired)
{
    char path[128];
    struct mb_shm *s = make(path, sizeof(path), "reclaim", 8); /* 16 slots */
    cr_assert_eq(s->ratelimit.nslots, 16);
    uint64_t T = HOUR, tau = 0;
    struct mb_ratelimit_stats st;

    /* 16 keys with the same home slot: linear probing fills the table. */
    for (uint64_t i = 0; i < 16; i++)
        cr_assert_eq(take(s, (struct mb_rl_key){.lo = 3, .hi = 100 + i}, BASE_NS, T, tau, NULL),
                     MB_RATELIMIT_ALLOW);
    mb_ratelimit_stats(&s->ratelimit, BASE_NS, &st);
    cr_expect_eq(st.live, 16);
    cr_expect_eq(st.empty, 0);
    cr_expect_eq(take(s, (struct mb_rl_key){.lo = 3, .hi = 999}, BASE_NS, T, tau, NULL), MB_AGAIN,
                 "full: no bucket");
    /* Every key is still found (denied: its bucket is live), none duplicated. */
    for (uint64_t i = 0; i < 16; i++)
        cr_expect_eq(take(s, (struct mb_rl_key){.lo = 3, .hi = 100 + i}, BASE_NS, T, tau, NULL),
                     MB_RATELIMIT_DENY);

    /* Two hours later every TAT is in the past: all slots are reusable. */
    uint64_t later = BASE_NS + 2 * HOUR;
    mb_ratelimit_stats(&s->ratelimit, later, &st);
    cr_expect_eq(st.expired, 16);
    cr_expect_eq(st.live, 0);
    for (uint64_t i = 0; i < 16; i++)
        cr_assert_eq(take(s, (struct mb_rl_key){.lo = i, .hi = 500 + i}, later, T, tau, NULL),
                     MB_RATELIMIT_ALLOW, "reclaimed for key %lu", (unsigned long)i);
    mb_ratelimit_stats(&s->ratelimit, later, &st);
    cr_expect_eq(st.live, 16);
    cr_expect_eq(take(s, (struct mb_rl_key){.lo = 3, .hi = 100}, later, T, tau, NULL), MB_AGAIN,
                 "the old key lost its expired slot, and the table is full again");
    drop(&s, path);
}

Test(ratelimit, reclaim_keeps_the_rest_of_the_chain)
{
    char path[128];
    struct mb_shm *s = make(path, sizeof(path), "chain", 8);
    struct mb_ratelimit_stats st;
    /* key 0 expires after 1 s; keys 1..5, same home, live for an hour */
    cr_assert_eq(take(s, (struct mb_rl_key){.lo = 9, .hi = 0}, BASE_NS, SEC, 0, NULL),
                 MB_RATELIMIT_ALLOW);
    for (uint64_t i = 1; i <= 5; i++)
        cr_assert_eq(take(s, (struct mb_rl_key){.lo = 9, .hi = i}, BASE_NS, HOUR, 0, NULL),
                     MB_RATELIMIT_ALLOW);
    uint64_t now = BASE_NS + 2 * SEC;
    cr_assert_eq(take(s, (struct mb_rl_key){.lo = 9, .hi = 6}, now, HOUR, 0, NULL),
                 MB_RATELIMIT_ALLOW);
    mb_ratelimit_stats(&s->ratelimit, now, &st);
    cr_expect_eq(st.live, 6, "key 6 took key 0's slot");
    cr_expect_eq(st.expired, 0);
    cr_expect_eq(st.empty, 16 - 6);
    for (uint64_t i = 1; i <= 6; i++)
        cr_expect_eq(take(s, (struct mb_rl_key){.lo = 9, .hi = i}, now, HOUR, 0, NULL),
                     MB_RATELIMIT_DENY, "key %lu still found with its bucket", (unsigned long)i);

    struct mb_ratelimit_entry top[3];
    size_t n = mb_ratelimit_busiest(&s->ratelimit, now, top, 3);
    cr_expect_eq(n, 3);
    cr_expect_eq(top[0].key.hi, 6, "the newest bucket has the largest backlog");
    cr_expect_eq(top[0].backlog_ns, HOUR);
    cr_expect(top[1].backlog_ns >= top[2].backlog_ns);
    drop(&s, path);
}

/* A slot claimed by a process that died mid-insert: the key's other users
 * wait (bounded) and go on; reaping the process repairs the slot. */
Test(ratelimit, slot_claimed_by_a_dead_process_is_repaired)
{
    char path[128];
    struct mb_shm *s = make(path, sizeof(path), "repair", 8);
    struct mb_rl_key k = {.lo = 4, .hi = 0xabcdef};
    uint32_t dead = 3;
    int idx = -1;
    for (uint32_t i = 0; i <= dead; i++)
        idx = mb_shm_worker_alloc(s, i, 1);
    cr_assert_eq(idx, (int)dead);
    /* The claim word as layout.h §5 specifies it. */
    struct mb_shm_rl_slot *home = &s->ratelimit.slots[k.lo & (s->ratelimit.nslots - 1)];
    home->tat = (1ull << 63) | ((uint64_t)dead << 47) | (k.hi & ((1ull << 47) - 1));

    mb_ratelimit_set_owner(&s->ratelimit, 0);
    uint64_t t0 = mb_time_mono_ns();
    cr_expect_eq(take(s, k, BASE_NS, HOUR, 0, NULL), MB_RATELIMIT_ALLOW);
    cr_expect_geq(mb_time_mono_ns() - t0, 40 * MS, "waited for the claimer first");
    struct mb_ratelimit_stats st;
    mb_ratelimit_stats(&s->ratelimit, BASE_NS, &st);
    cr_expect_eq(st.claimed, 1);
    cr_expect_eq(st.live, 1);
    /* Other keys are not slowed down by the claim. */
    t0 = mb_time_mono_ns();
    cr_expect_eq(take(s, (struct mb_rl_key){.lo = 4, .hi = 1}, BASE_NS, HOUR, 0, NULL),
                 MB_RATELIMIT_ALLOW);
    cr_expect_lt(mb_time_mono_ns() - t0, 40 * MS);

    cr_expect_eq(mb_ratelimit_repair(&s->ratelimit, 2), 0, "not that process's claim");
    mb_shm_worker_reaped(s, dead, SIGKILL, true); /* what the master does */
    mb_ratelimit_stats(&s->ratelimit, BASE_NS, &st);
    cr_expect_eq(st.claimed, 0);
    cr_expect_eq(st.expired, 1, "a tombstone");
    cr_expect_eq(take(s, k, BASE_NS, HOUR, 0, NULL), MB_RATELIMIT_DENY, "k kept its bucket");
    cr_expect_eq(take(s, (struct mb_rl_key){.lo = 4, .hi = 2}, BASE_NS, HOUR, 0, NULL),
                 MB_RATELIMIT_ALLOW);
    mb_ratelimit_stats(&s->ratelimit, BASE_NS, &st);
    cr_expect_eq(st.expired, 0, "the tombstone was reused");
    cr_expect_eq(st.live, 3);
    drop(&s, path);
}

/* ---------------------------------------------------------------- multi-process */

enum { NPROC = 8, READY = 500, GO = 501 }; /* READY, GO: barrier words in the shared page */

static uint64_t *shared_page(void)
{
    uint64_t *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq((void *)p, MAP_FAILED);
    return p;
}

/* The child waits at a barrier, so that all of them start together and really
 * overlap (a fork takes longer than a short loop). */
static pid_t spawn(int i, void (*fn)(struct mb_shm *, int, uint64_t *), struct mb_shm *s,
                   uint64_t *shared)
{
    pid_t pid = shm_test_fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        mb_ratelimit_set_owner(&s->ratelimit, (uint32_t)i);
        __atomic_add_fetch(&shared[READY], 1, __ATOMIC_ACQ_REL);
        while (!__atomic_load_n(&shared[GO], __ATOMIC_ACQUIRE))
            sched_yield();
        fn(s, i, shared);
        _exit(0);
    }
    return pid;
}

static void start_all(uint64_t *shared, uint64_t n)
{
    while (__atomic_load_n(&shared[READY], __ATOMIC_ACQUIRE) < n)
        sched_yield();
    __atomic_store_n(&shared[GO], 1, __ATOMIC_RELEASE);
}

static void wait_all(pid_t *pids, int n)
{
    for (int i = 0; i < n; i++) {
        int status;
        cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d failed (status %d)", i,
                  status);
    }
}

#define HOT_T     (1 * MS)
#define HOT_BURST 1000
#define HOT_N     50000

/* shared[i] = admissions of child i on the limited key, shared[NPROC + i] on
 * the key whose burst admits everything */
static void hammer(struct mb_shm *s, int i, uint64_t *shared)
{
    struct mb_rl_key k = {.lo = 77, .hi = 77}, all = {.lo = 78, .hi = 78};
    uint64_t tau = HOT_T * (HOT_BURST - 1), tau_all = HOT_T * (NPROC * HOT_N - 1), n = 0, m = 0;
    for (int r = 0; r < HOT_N; r++) {
        /* first half at BASE, then 100 periods later */
        uint64_t now = r < HOT_N / 2 ? BASE_NS : BASE_NS + 100 * HOT_T, retry;
        int rc = mb_ratelimit_take(&s->ratelimit, k, now, HOT_T, tau, &retry);
        if (rc == MB_RATELIMIT_ALLOW)
            n++;
        else if (rc != MB_RATELIMIT_DENY)
            _exit(3);
        if (mb_ratelimit_take(&s->ratelimit, all, BASE_NS, HOT_T, tau_all, &retry) ==
            MB_RATELIMIT_ALLOW)
            m++;
    }
    shared[i] = n;
    shared[NPROC + i] = m;
}

Test(ratelimit, eight_processes_on_one_bucket_admit_exactly_gcra, .timeout = 120)
{
    char path[128];
    struct mb_shm *s = make(path, sizeof(path), "hammer", 1024);
    uint64_t *shared = shared_page();
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++)
        pids[i] = spawn(i, hammer, s, shared);
    start_all(shared, NPROC);
    wait_all(pids, NPROC);
    uint64_t total = 0, total_all = 0;
    for (int i = 0; i < NPROC; i++) {
        total += shared[i];
        total_all += shared[NPROC + i];
    }
    /* A full bucket of HOT_BURST at BASE, then 100 periods' worth: the
     * bucket was never idle (a child reaches the later clock only after
     * HOT_N/2 requests at BASE, which exhaust the burst). */
    cr_expect_eq(total, HOT_BURST + 100, "admitted %lu", (unsigned long)total);
    /* and the bucket's TAT accounts for every admission: BASE + total * T */
    struct mb_ratelimit_entry top[2];
    cr_assert_eq(mb_ratelimit_busiest(&s->ratelimit, BASE_NS, top, 2), 2);
    cr_expect_eq(top[1].key.lo, 77);
    cr_expect_eq(top[1].backlog_ns, total * HOT_T);
    /* Under full contention every admission still moved the TAT by exactly T:
     * no decision was lost to a concurrent one. */
    cr_expect_eq(total_all, NPROC * HOT_N);
    cr_expect_eq(top[0].key.lo, 78);
    cr_expect_eq(top[0].backlog_ns, total_all * HOT_T, "TAT lost %lu admissions",
                 (unsigned long)(total_all - top[0].backlog_ns / HOT_T));
    munmap(shared, 4096);
    drop(&s, path);
}

#define KEYS_PER_PROC 1000

static struct mb_rl_key proc_key(struct mb_shm *s, int p, int k)
{
    char name[32];
    int n = snprintf(name, sizeof(name), "proc%d-key%d", p, k);
    return mb_ratelimit_key(&s->ratelimit, name, (size_t)n);
}

static void insert_distinct(struct mb_shm *s, int p, uint64_t *shared)
{
    for (int k = 0; k < KEYS_PER_PROC; k++)
        if (take(s, proc_key(s, p, k), BASE_NS, HOUR, 0, NULL) != MB_RATELIMIT_ALLOW)
            _exit(4); /* a new key is always admitted */
    for (int k = 0; k < KEYS_PER_PROC; k++)
        if (take(s, proc_key(s, p, k), BASE_NS, HOUR, 0, NULL) != MB_RATELIMIT_DENY)
            _exit(5); /* and found again: its bucket is empty */
}

Test(ratelimit, eight_processes_insert_distinct_keys_none_lost_or_duplicated, .timeout = 120)
{
    char path[128];
    struct mb_shm *s = make(path, sizeof(path), "distinct", NPROC * KEYS_PER_PROC * 2);
    uint64_t *shared = shared_page();
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++)
        pids[i] = spawn(i, insert_distinct, s, shared);
    start_all(shared, NPROC);
    wait_all(pids, NPROC);
    munmap(shared, 4096);
    struct mb_ratelimit_stats st;
    mb_ratelimit_stats(&s->ratelimit, BASE_NS, &st);
    cr_expect_eq(st.claimed, 0);
    cr_expect_eq(st.live, NPROC * KEYS_PER_PROC, "one slot per key");
    for (int p = 0; p < NPROC; p++)
        for (int k = 0; k < KEYS_PER_PROC; k++)
            cr_assert_eq(take(s, proc_key(s, p, k), BASE_NS, HOUR, 0, NULL), MB_RATELIMIT_DENY,
                         "key %d of process %d lost", k, p);
    mb_ratelimit_stats(&s->ratelimit, BASE_NS, &st);
    cr_expect_eq(st.live, NPROC * KEYS_PER_PROC, "no key inserted twice");
    drop(&s, path);
}

/* All 8 processes insert 2 keys each into one 16-slot chain (every key has
 * the same home), round after round; each round's keys expire before the
 * next, so every round races on reclaiming the same slots. */
#define ROUNDS 300
#define ARRIVE 0 /* shared words: barrier arrivals, and a failed child */
#define ABORT  1

static void fail(uint64_t *shared, int code)
{
    __atomic_store_n(&shared[ABORT], 1, __ATOMIC_RELEASE);
    _exit(code);
}

static void barrier(uint64_t *shared, uint64_t gen)
{
    __atomic_add_fetch(&shared[ARRIVE], 1, __ATOMIC_ACQ_REL);
    while (__atomic_load_n(&shared[ARRIVE], __ATOMIC_ACQUIRE) < gen * NPROC)
        if (__atomic_load_n(&shared[ABORT], __ATOMIC_ACQUIRE))
            _exit(9); /* another child failed: do not wait for it */
        else
            sched_yield();
}

static void contend(struct mb_shm *s, int p, uint64_t *shared)
{
    for (uint64_t r = 0; r < ROUNDS; r++) {
        uint64_t now = BASE_NS + r * 2 * HOUR;
        struct mb_rl_key a = {.lo = 11, .hi = r << 8 | (uint64_t)p << 1};
        struct mb_rl_key b = {.lo = 11, .hi = r << 8 | (uint64_t)p << 1 | 1};
        if (take(s, a, now, HOUR, 0, NULL) != MB_RATELIMIT_ALLOW ||
            take(s, b, now, HOUR, 0, NULL) != MB_RATELIMIT_ALLOW)
            fail(shared, 7);
        barrier(shared, 2 * r + 1);
        if (take(s, a, now, HOUR, 0, NULL) != MB_RATELIMIT_DENY ||
            take(s, b, now, HOUR, 0, NULL) != MB_RATELIMIT_DENY)
            fail(shared, 8);
        barrier(shared, 2 * r + 2);
    }
}

Test(ratelimit, eight_processes_racing_for_one_full_chain, .timeout = 120)
{
    char path[128];
    struct mb_shm *s = make(path, sizeof(path), "contend", 8); /* 16 slots */
    uint64_t *shared = shared_page();
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++)
        pids[i] = spawn(i, contend, s, shared);
    start_all(shared, NPROC);
    wait_all(pids, NPROC);
    struct mb_ratelimit_stats st;
    mb_ratelimit_stats(&s->ratelimit, BASE_NS + (ROUNDS - 1) * 2 * HOUR, &st);
    cr_expect_eq(st.live, 16);
    cr_expect_eq(st.claimed, 0);
    munmap(shared, 4096);
    drop(&s, path);
}

/* shared[0] = stop flag, shared[1 + i] = iterations of child i */
static void churn(struct mb_shm *s, int i, uint64_t *shared)
{
    struct mb_rl_key hot = {.lo = 5, .hi = 5};
    for (uint64_t n = 0; !__atomic_load_n(&shared[0], __ATOMIC_ACQUIRE); n++) {
        uint64_t now = mb_time_mono_ns(), retry;
        struct mb_rl_key k = {.lo = n * 2654435761u + (uint64_t)i, .hi = ((uint64_t)i << 32) | n};
        int a = mb_ratelimit_take(&s->ratelimit, k, now, 10000, 0, &retry);
        int b = mb_ratelimit_take(&s->ratelimit, hot, now, 1000, 100000, &retry);
        if (a == MB_ERR || b == MB_ERR)
            _exit(6);
        __atomic_store_n(&shared[1 + i], n + 1, __ATOMIC_RELAXED);
    }
}

Test(ratelimit, sigkill_mid_loop_leaves_a_usable_table, .timeout = 120)
{
    char path[128];
    struct mb_shm *s = make(path, sizeof(path), "kill", 4096);
    for (uint32_t i = 0; i < 4; i++)
        cr_assert_eq(mb_shm_worker_alloc(s, i, 1), (int)i);
    uint64_t *shared = shared_page();
    pid_t pids[4];
    for (int i = 0; i < 4; i++)
        pids[i] = spawn(i, churn, s, shared);
    start_all(shared, 4);

    struct timespec ts = {0, 100 * 1000000};
    nanosleep(&ts, NULL);
    kill(pids[0], SIGKILL);
    int status;
    cr_assert_eq(waitpid(pids[0], &status, 0), pids[0]);
    cr_expect(WIFSIGNALED(status));
    mb_shm_worker_reaped(s, 0, status, true); /* the master's repair */

    uint64_t before[4];
    for (int i = 1; i < 4; i++)
        before[i] = __atomic_load_n(&shared[1 + i], __ATOMIC_RELAXED);
    nanosleep(&ts, NULL);
    __atomic_store_n(&shared[0], 1, __ATOMIC_RELEASE);
    wait_all(pids + 1, 3);
    for (int i = 1; i < 4; i++)
        cr_expect_gt(shared[1 + i], before[i], "process %d kept working after the kill", i);

    struct mb_ratelimit_stats st;
    mb_ratelimit_stats(&s->ratelimit, mb_time_mono_ns(), &st);
    cr_expect_eq(st.claimed, 0, "no slot left claimed");
    cr_expect_eq(st.live + st.expired + st.empty, st.slots);
    /* Still usable: a fresh key gets its burst, exactly. */
    struct mb_rl_key k = {.lo = 123456, .hi = 654321};
    uint64_t now = mb_time_mono_ns();
    for (int i = 0; i < 3; i++)
        cr_expect_eq(take(s, k, now, HOUR, 2 * HOUR, NULL), MB_RATELIMIT_ALLOW);
    cr_expect_eq(take(s, k, now, HOUR, 2 * HOUR, NULL), MB_RATELIMIT_DENY);
    munmap(shared, 4096);
    drop(&s, path);
}
