/*
 * tests/unit/shm/test_backends.c — the backend stats section (shm/backends.h,
 * layout.h §7): claiming records by name, the up mask and its repair when the
 * master reaps a worker, request outcomes and the EWMA, per-worker gauges,
 * records claimed by several processes at once ending on one record, and
 * the per-record request matrix by method and status.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/backends.h"
#include "shm/shm.h"
#include "shm_test_util.h"

static struct mb_shm *make(char *path, size_t len, uint32_t workers, uint32_t backends)
{
    shm_test_path(path, len, "bstats");
    struct mb_shm_params p = {.worker_capacity = workers, .backend_capacity = backends};
    struct mb_shm *shm = NULL;
    char err[256] = "";
    cr_assert_eq(mb_shm_create(path, &p, &shm, err, sizeof(err)), 0, "%s", err);
    return shm;
}

static const struct mb_bstats_snap *find(const struct mb_bstats_snap *s, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s[i].name, name) == 0)
            return &s[i];
    return NULL;
}

Test(bstats, absent_without_capacity)
{
    char path[128];
    struct mb_shm *shm = make(path, sizeof(path), 4, 0);
    struct mb_bstats v;
    cr_expect_neq(mb_bstats_open(shm, &v), 0);
    cr_expect_eq(mb_bstats_claim(&v, "a", "x", 0), -1);
    mb_bstats_outcome(&v, 0, MB_BSTATS_OK, 5); /* harmless */
    mb_shm_close(&shm);
    unlink(path);
}

Test(bstats, claim_by_name_and_endpoint)
{
    char path[128];
    struct mb_shm *shm = make(path, sizeof(path), 70, 3);
    struct mb_bstats v;
    cr_assert_eq(mb_bstats_open(shm, &v), 0);
    cr_expect_eq(v.nworkers, 70);
    cr_expect_eq(v.mask_words, 2);
    int a = mb_bstats_claim(&v, "alpha", "stdio:ts", 0);
    int b = mb_bstats_claim(&v, "beta", "http://127.0.0.1:1/mcp", 1);
    cr_expect_geq(a, 0);
    cr_expect_geq(b, 0);
    cr_expect_neq(a, b);
    cr_expect_eq(mb_bstats_claim(&v, "alpha", "stdio:ts", 5), a, "same name, same record");
    int a2 = mb_bstats_claim(&v, "alpha", "stdio:other", 5);
    cr_expect_geq(a2, 0);
    cr_expect_neq(a2, a, "a changed endpoint takes a new record");
    cr_expect_eq(mb_bstats_claim(&v, "gamma", "x", 0), -1, "full");

    /* A reader attached read-only sees the names. */
    struct mb_shm *ro = NULL;
    char err[256];
    cr_assert_eq(mb_shm_attach(path, &ro, err, sizeof(err)), 0, "%s", err);
    struct mb_bstats rv;
    cr_assert_eq(mb_bstats_open(ro, &rv), 0);
    struct mb_bstats_snap s[8];
    size_t n = mb_bstats_snapshot(&rv, s, 8);
    cr_expect_eq(n, 3);
    cr_expect_str_eq(s[0].name, "alpha");
    cr_expect_str_eq(s[0].endpoint, "stdio:ts");
    cr_expect_str_eq(s[1].endpoint, "http://127.0.0.1:1/mcp");
    mb_shm_close(&ro);
    mb_shm_close(&shm);
    unlink(path);
}

Test(bstats, up_mask_and_reap_repair)
{
    char path[128];
    struct mb_shm *shm = make(path, sizeof(path), 130, 4);
    struct mb_bstats v;
    cr_assert_eq(mb_bstats_open(shm, &v), 0);
    int a = mb_bstats_claim(&v, "a", "e", 0);
    int b = mb_bstats_claim(&v, "b", "e", 0);
    int w0 = mb_shm_worker_alloc(shm, 0, 1);
    int w1 = mb_shm_worker_alloc(shm, 1, 1);
    cr_assert(w0 >= 0 && w1 >= 0);
    mb_bstats_set_up(&v, a, (uint32_t)w0, true);
    mb_bstats_set_up(&v, a, (uint32_t)w1, true);
    mb_bstats_set_up(&v, a, 129, true); /* a bit in the third word */
    mb_bstats_set_up(&v, b, (uint32_t)w1, true);
    mb_bstats_set_up(&v, a, 130, true); /* out of range: ignored */
    mb_bstats_gauge_add(&v, a, (uint32_t)w1, MB_BSTATS_IN_FLIGHT, 3);
    mb_bstats_gauge_add(&v, a, (uint32_t)w0, MB_BSTATS_IN_FLIGHT, 2);
    mb_bstats_gauge_add(&v, b, (uint32_t)w1, MB_BSTATS_CONNS_IDLE, 4);
    mb_bstats_gauge_add(&v, b, (uint32_t)w1, MB_BSTATS_CONNS_ACTIVE, 1);
    mb_bstats_outcome(&v, a, MB_BSTATS_OK, 100);

    struct mb_bstats_snap s[4];
    cr_assert_eq(mb_bstats_snapshot(&v, s, 4), 2);
    cr_expect_eq(find(s, 2, "a")->up_workers, 3);
    cr_expect_eq(find(s, 2, "a")->in_flight, 5);
    cr_expect_eq(find(s, 2, "b")->up_workers, 1);
    cr_expect_eq(find(s, 2, "b")->conns_idle, 4);
    cr_expect_eq(find(s, 2, "b")->conns_active, 1);

    /* Worker 1 dies: its up bits and its gauges go, counters stay. */
    mb_shm_worker_reaped(shm, (uint32_t)w1, SIGKILL, false);
    cr_assert_eq(mb_bstats_snapshot(&v, s, 4), 2);
    cr_expect_eq(find(s, 2, "a")->up_workers, 2);
    cr_expect_eq(find(s, 2, "a")->in_flight, 2);
    cr_expect_eq(find(s, 2, "a")->requests[MB_BSTATS_OK], 1);
    cr_expect_eq(find(s, 2, "b")->up_workers, 0);
    cr_expect_eq(find(s, 2, "b")->conns_idle, 0);
    cr_expect_eq(find(s, 2, "b")->conns_active, 0);

    mb_bstats_set_up(&v, a, (uint32_t)w0, false);
    mb_bstats_set_up(&v, a, 129, false);
    cr_assert_eq(mb_bstats_snapshot(&v, s, 4), 2);
    cr_expect_eq(find(s, 2, "a")->up_workers, 0);
    cr_expect_gt(find(s, 2, "a")->changed_ms, 0);
    /* Gauges never go below zero. */
    mb_bstats_gauge_add(&v, a, (uint32_t)w0, MB_BSTATS_IN_FLIGHT, -5);
    cr_assert_eq(mb_bstats_snapshot(&v, s, 4), 2);
    cr_expect_eq(find(s, 2, "a")->in_flight, 0);
    mb_shm_close(&shm);
    unlink(path);
}

Test(bstats, reap_frees_a_half_claimed_record)
{
    char path[128];
    struct mb_shm *shm = make(path, sizeof(path), 8, 2);
    struct mb_bstats v;
    cr_assert_eq(mb_bstats_open(shm, &v), 0);
    /* A claimer (worker record 3) died between claim and publish. */
    struct mb_shm_backend *r = (struct mb_shm_backend *)v.base;
    r->state = MB_SHM_BACKEND_CLAIMED | 3;
    snprintf(r->name, sizeof(r->name), "half");
    mb_shm_backends_repair(shm, 3);
    cr_expect_eq(r->state, 0);
    cr_expect_eq(mb_bstats_claim(&v, "next", "e", 1), 0, "the freed record is taken again");
    struct mb_bstats_snap s[2];
    cr_assert_eq(mb_bstats_snapshot(&v, s, 2), 1);
    cr_expect_str_eq(s[0].name, "next");
    mb_shm_close(&shm);
    unlink(path);
}

Test(bstats, outcomes_and_ewma)
{
    char path[128];
    struct mb_shm *shm = make(path, sizeof(path), 4, 2);
    struct mb_bstats v;
    cr_assert_eq(mb_bstats_open(shm, &v), 0);
    int a = mb_bstats_claim(&v, "a", "e", 0);
    mb_bstats_outcome(&v, a, MB_BSTATS_OK, 800);
    struct mb_bstats_snap s[1];
    mb_bstats_snapshot(&v, s, 1);
    cr_expect_eq(s[0].latency_us, 800, "the first answer seeds the average");
    mb_bstats_outcome(&v, a, MB_BSTATS_ERROR, 1600);
    mb_bstats_snapshot(&v, s, 1);
    cr_expect_eq(s[0].latency_us, 900, "moves 1/8 of the way up");
    mb_bstats_outcome(&v, a, MB_BSTATS_OK, 100);
    mb_bstats_snapshot(&v, s, 1);
    cr_expect_eq(s[0].latency_us, 800, "and 1/8 of the way down");
    /* Timeouts and unavailable carry no latency. */
    mb_bstats_outcome(&v, a, MB_BSTATS_TIMEOUT, 100000);
    mb_bstats_outcome(&v, a, MB_BSTATS_UNAVAILABLE, 100000);
    mb_bstats_outcome(&v, a, MB_BSTATS_UNAVAILABLE, 0);
    mb_bstats_snapshot(&v, s, 1);
    cr_expect_eq(s[0].latency_us, 800);
    cr_expect_eq(s[0].requests[MB_BSTATS_OK], 2);
    cr_expect_eq(s[0].requests[MB_BSTATS_ERROR], 1);
    cr_expect_eq(s[0].requests[MB_BSTATS_TIMEOUT], 1);
    cr_expect_eq(s[0].requests[MB_BSTATS_UNAVAILABLE], 2);
    /* Converges toward a steady latency. */
    for (int i = 0; i < 200; i++)
        mb_bstats_outcome(&v, a, MB_BSTATS_OK, 5000);
    mb_bstats_snapshot(&v, s, 1);
    cr_expect_eq(s[0].latency_us, 5000);
    cr_expect_str_eq(mb_bstats_status_name(MB_BSTATS_TIMEOUT), "timeout");
    mb_shm_close(&shm);
    unlink(path);
}

/* Processes claiming the same names at once end on one record per name,
 * and their concurrent outcomes are all counted. */
Test(bstats, concurrent_claims_and_counts)
{
    char path[128];
    struct mb_shm *shm = make(path, sizeof(path), 16, 8);
    struct mb_bstats v;
    cr_assert_eq(mb_bstats_open(shm, &v), 0);
    enum { PROCS = 6, N = 20000 };
    pid_t pids[PROCS];
    for (int i = 0; i < PROCS; i++) {
        pids[i] = shm_test_fork();
        cr_assert_neq(pids[i], -1);
        if (pids[i] == 0) {
            int x = mb_bstats_claim(&v, "x", "e", (uint32_t)i);
            int y = mb_bstats_claim(&v, "y", "e", (uint32_t)i);
            if (x < 0 || y < 0)
                _exit(1);
            mb_bstats_set_up(&v, x, (uint32_t)i, true);
            for (int k = 0; k < N; k++) {
                mb_bstats_outcome(&v, x, MB_BSTATS_OK, 10 + (uint64_t)(k % 7));
                mb_bstats_outcome(&v, y, MB_BSTATS_ERROR, 0);
            }
            _exit(0);
        }
    }
    for (int i = 0; i < PROCS; i++) {
        int st;
        cr_assert_eq(waitpid(pids[i], &st, 0), pids[i]);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    struct mb_bstats_snap s[8];
    size_t n = mb_bstats_snapshot(&v, s, 8);
    cr_expect_eq(n, 2, "one record per name");
    const struct mb_bstats_snap *x = find(s, n, "x");
    cr_assert_not_null(x);
    cr_expect_eq(x->requests[MB_BSTATS_OK], (uint64_t)PROCS * N);
    cr_expect_eq(x->up_workers, PROCS);
    cr_expect(x->latency_us >= 10 && x->latency_us <= 16, "EWMA %llu within the observed range",
              (unsigned long long)x->latency_us);
    cr_expect_eq(find(s, n, "y")->requests[MB_BSTATS_ERROR], (uint64_t)PROCS * N);
    mb_shm_close(&shm);
    unlink(path);
}

/* The request matrix (layout.h §7, minor 3): counted per record, summed by
 * name over records (an endpoint change makes a second one), after the
 * per-worker cells without overlapping them, bad indices refused. */
Test(bstats, request_matrix_by_method_and_status)
{
    char path[128];
    struct mb_shm *shm = make(path, sizeof(path), 70, 4);
    struct mb_bstats v;
    cr_assert_eq(mb_bstats_open(shm, &v), 0);
    cr_expect(v.has_methods);
    int a = mb_bstats_claim(&v, "alpha", "stdio:ts", 0);
    int a2 = mb_bstats_claim(&v, "alpha", "stdio:other", 1);
    int b = mb_bstats_claim(&v, "beta", "http://127.0.0.1:1/mcp", 1);
    cr_assert(a >= 0 && a2 >= 0 && b >= 0);

    /* The last worker's cells sit right before the matrix. */
    mb_bstats_gauge_add(&v, a, 69, MB_BSTATS_CONNS_IDLE, 7);
    cr_expect(mb_bstats_request(&v, a, 3, 0));
    cr_expect(mb_bstats_request(&v, a, 3, 0));
    cr_expect(mb_bstats_request(&v, a2, 3, 0));
    cr_expect(mb_bstats_request(&v, a, 3, 4));
    cr_expect(mb_bstats_request(&v, b, 15, 7));
    cr_expect_not(mb_bstats_request(&v, a, MB_SHM_BACKEND_METHODS, 0));
    cr_expect_not(mb_bstats_request(&v, a, 0, MB_SHM_BACKEND_REQ_STATUSES));
    cr_expect_not(mb_bstats_request(&v, 4, 0, 0));
    cr_expect_not(mb_bstats_request(&v, -1, 0, 0));

    struct mb_bstats_methods m[4];
    size_t n = mb_bstats_methods_snapshot(&v, m, 4);
    cr_assert_eq(n, 2, "alpha's two records are one name");
    cr_expect_str_eq(m[0].name, "alpha");
    cr_expect_eq(m[0].n[3][0], 3);
    cr_expect_eq(m[0].n[3][4], 1);
    cr_expect_str_eq(m[1].name, "beta");
    cr_expect_eq(m[1].n[15][7], 1);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        for (int x = 0; x < MB_SHM_BACKEND_METHODS; x++)
            for (int y = 0; y < MB_SHM_BACKEND_REQ_STATUSES; y++)
                total += m[i].n[x][y];
    cr_expect_eq(total, 5, "every counted request once, nothing else");
    cr_expect_eq(mb_bstats_methods_snapshot(&v, m, 1), 1, "at most max");

    struct mb_bstats_snap s[4];
    size_t ns = mb_bstats_snapshot(&v, s, 4);
    const struct mb_bstats_snap *sa = find(s, ns, "alpha");
    cr_assert_not_null(sa);
    cr_expect_eq(sa->conns_idle, 7, "the matrix did not overwrite the cells");
    cr_expect_eq(sa->requests[MB_BSTATS_OK], 0, "the outcome counters are separate");
    mb_shm_close(&shm);
    unlink(path);
}
