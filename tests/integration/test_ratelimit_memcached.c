/*
 * tests/integration/test_ratelimit_memcached.c — rate_limit.storage:
 * memcached against a real memcached (started by the test on a free
 * loopback port, stopped by pid): two gateways with two workers each admit
 * together what one budget allows, within one lease per worker, and
 * mcp-bridge-shm shows each gateway's counters; memcached stopped mid-test
 * falls back per on_error (allow: the gateway's own shm limits; deny:
 * -32029), logged once, and a restarted memcached is picked up again
 * without any operator action.
 *
 * Bounds (worker/ratelimiter.c, ratelimit_mc.c): tokens leased from the
 * shared GCRA bucket in e seconds are at most B + floor(R * e); a worker
 * admits at most min(lease, burst) requests more than it leased (credit),
 * and holds at most one lease unspent. With W workers in all:
 *     B - W * lease  <=  admitted  <=  B + floor(R * e) + W * credit
 * while two separate budgets would admit at least 2B.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tests/integration/memcached_proc.h"
#include "tests/integration/ratelimit_client.h"
#include "tests/support/daemon_assert.h"

static struct mb_test_memcached mcd;
static struct mb_test_daemon *gw[2];
static struct mb_wsclient *conns[64];
static size_t nconns;

static void teardown(void)
{
    for (size_t i = 0; i < nconns; i++)
        mb_wsclient_free(&conns[i]);
    nconns = 0;
    mb_test_daemon_free(&gw[0]);
    mb_test_daemon_free(&gw[1]);
    mb_test_memcached_stop(&mcd);
}

static void start_memcached(uint16_t port)
{
    int rc = mb_test_memcached_start(&mcd, port);
    cr_assert_eq(rc, 0, "memcached did not start: %s", strerror(-rc));
}

static struct mb_wsclient *open_conn(struct mb_test_daemon *d)
{
    char err[256];
    cr_assert_lt(nconns, sizeof(conns) / sizeof(conns[0]));
    cr_assert_eq(
        mb_wsclient_connect(&conns[nconns], d->port, "/", NULL, RL_IO_MS, err, sizeof(err)), 0,
        "%s", err);
    return conns[nconns++];
}

Test(ratelimit_memcached, two_gateways_share_one_budget, .fini = teardown, .timeout = 90)
{
    const double R = 5;
    const long B = 40, L = 4, W = 4, credit = 4;
    char extra[512];
    start_memcached(0);
    snprintf(extra, sizeof(extra),
             "rate_limit:\n  requests_per_sec: 5\n  burst: 40\n  storage: memcached\n"
             "  memcached:\n    servers: [\"127.0.0.1:%u\"]\n    lease: 4\n    timeout: 1s\n",
             mcd.port);
    struct mb_test_conf conf = {.workers = 2, .extra = extra};
    mb_test_must_start(&gw[0], &conf);
    mb_test_must_start(&gw[1], &conf);

    struct mb_wsclient *w[4];
    for (int g = 0; g < 2; g++) {
        size_t nspare = 0;
        rl_connect_each_worker(gw[g], 2, &w[2 * g], conns + nconns, &nspare,
                               sizeof(conns) / sizeof(conns[0]) - nconns);
        nconns += nspare;
    }
    for (int i = 0; i < 4; i++)
        conns[nconns++] = w[i];

    /* 160 requests round robin over the four workers: each gateway sees
     * 80 = 2B. */
    long admitted = 0, rejected = 0;
    int64_t t0 = mb_test_now_ms();
    for (int i = 0; i < 160; i++) {
        struct rl_answer a = rl_call(w[i % 4], i + 1);
        if (a.admitted) {
            admitted++;
        } else {
            rejected++;
            cr_expect_float_eq(a.limit, R, 1e-9);
            cr_expect_eq(a.burst, B);
        }
    }
    double e = (double)(mb_test_now_ms() - t0) / 1000.0;
    long hi = B + (long)floor(R * e) + W * credit;
    cr_log_info("admitted %ld, rejected %ld in %.3f s; bounds [%ld, %ld]", admitted, rejected, e,
                B - W * L, hi);
    cr_assert_lt(hi, 2 * B, "too slow (%.2f s) for the bound to tell one budget from two", e);
    cr_expect_leq(admitted, hi, "%ld admitted in %.2f s: more than one budget allows", admitted, e);
    cr_expect_geq(admitted, B - W * L, "%ld admitted: less than the budget minus the leases",
                  admitted);

    /* Each gateway's own region shows its share. */
    double r0 = rl_counter(gw[0], "ratelimited"), r1 = rl_counter(gw[1], "ratelimited");
    cr_expect_eq(r0 + r1, (double)rejected);
    cr_expect_gt(rl_counter(gw[0], "ratelimit_memcached_refills"), 0);
    cr_expect_gt(rl_counter(gw[1], "ratelimit_memcached_refills"), 0);
    cr_expect_eq(rl_counter(gw[0], "ratelimit_memcached_errors"), 0);
    cr_expect_eq(rl_counter(gw[1], "ratelimit_fallback"), 0);
    mb_test_must_finish(gw[0]);
    mb_test_must_finish(gw[1]);
}

/* Sends requests on c every 100 ms until the log holds needle (10 s at
 * most); returns the next request id. */
static int poke_until_logged(struct mb_test_daemon *d, struct mb_wsclient *c, int id,
                             const char *needle)
{
    for (int i = 0; i < 100 && !mb_test_daemon_log_contains(d, needle); i++) {
        rl_call(c, id++);
        mb_test_sleep_ms(100);
    }
    cr_assert(mb_test_daemon_log_contains(d, needle), "the log never said \"%s\"", needle);
    return id;
}

Test(ratelimit_memcached, unreachable_allow_falls_back_to_local_limits, .fini = teardown,
     .timeout = 90)
{
    char extra[512];
    start_memcached(0);
    uint16_t port = mcd.port;
    snprintf(extra, sizeof(extra),
             "rate_limit:\n  requests_per_sec: 0.1\n  burst: 5\n  storage: memcached\n"
             "  memcached:\n    servers: [\"127.0.0.1:%u\"]\n    lease: 2\n    timeout: 200ms\n"
             "    on_error: allow\n",
             port);
    struct mb_test_conf conf = {.workers = 1, .extra = extra};
    mb_test_must_start(&gw[0], &conf);
    struct mb_wsclient *c = open_conn(gw[0]);

    /* Exhaust the shared budget. One token per 10 s: a slow run (a sanitizer
     * build on a busy machine) cannot refill it while it is being spent. */
    int id = 1;
    for (; id <= 12; id++)
        rl_call(c, id);
    cr_expect_not(rl_call(c, id++).admitted, "the shared budget is spent");

    mb_test_memcached_stop(&mcd);
    id = poke_until_logged(gw[0], c, id, "memcached unreachable");
    /* Local limits now: the gateway's own shm bucket of the same name, never
     * used while memcached answered, so a burst passes again; and it is
     * still a limit. */
    long admitted = 0;
    int64_t t0 = mb_test_now_ms();
    for (int i = 0; i < 12; i++)
        admitted += rl_call(c, id++).admitted;
    double e = (double)(mb_test_now_ms() - t0) / 1000.0;
    cr_expect_geq(admitted, 1, "on_error: allow admits on local limits");
    cr_expect_leq(admitted, 5 + (long)floor(e * 0.1) + 1, "local limits still limit");
    cr_expect_geq(rl_counter(gw[0], "ratelimit_memcached_errors"), 1);
    cr_expect_geq(rl_counter(gw[0], "ratelimit_fallback"), 12);
    cr_expect_eq(rl_log_count(gw[0], "memcached unreachable"), 1, "logged once per transition");

    /* memcached comes back on the same port: a probe finds it. */
    start_memcached(port);
    poke_until_logged(gw[0], c, id, "memcached answers again");
    cr_expect_eq(rl_log_count(gw[0], "memcached answers again"), 1);
    cr_expect_eq(rl_log_count(gw[0], "memcached unreachable"), 1);
    mb_test_must_finish(gw[0]);
}

Test(ratelimit_memcached, unreachable_deny_rejects_then_recovers, .fini = teardown, .timeout = 90)
{
    char extra[512];
    start_memcached(0);
    uint16_t port = mcd.port;
    snprintf(extra, sizeof(extra),
             "rate_limit:\n  requests_per_sec: 100\n  burst: 100\n  storage: memcached\n"
             "  memcached:\n    servers: [\"127.0.0.1:%u\"]\n    lease: 2\n    timeout: 200ms\n"
             "    on_error: deny\n",
             port);
    struct mb_test_conf conf = {.workers = 1, .extra = extra};
    mb_test_must_start(&gw[0], &conf);
    struct mb_wsclient *c = open_conn(gw[0]);
    cr_expect(rl_call(c, 1).admitted);

    mb_test_memcached_stop(&mcd);
    int id = poke_until_logged(gw[0], c, 2, "memcached unreachable");
    for (int i = 0; i < 5; i++) {
        struct rl_answer a = rl_call(c, id++);
        cr_expect_not(a.admitted, "on_error: deny rejects while memcached is down");
        cr_expect_leq(a.retry_after_ms, 1000, "until the next probe");
    }
    cr_expect_geq(rl_counter(gw[0], "ratelimit_fallback"), 5);

    start_memcached(port);
    bool back = false;
    for (int i = 0; i < 100 && !back; i++) {
        back = rl_call(c, id++).admitted;
        if (!back)
            mb_test_sleep_ms(100);
    }
    cr_expect(back, "admitted again once memcached answers");
    cr_expect_eq(rl_log_count(gw[0], "memcached answers again"), 1);
    mb_test_must_finish(gw[0]);
}
