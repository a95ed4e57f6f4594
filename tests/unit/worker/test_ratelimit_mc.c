/*
 * tests/unit/worker/test_ratelimit_mc.c — worker/ratelimit_mc.c against a
 * real memcached started on a free loopback port: the GCRA arithmetic of a
 * lease with a fake clock (burst, partial grant, retry, refill with time),
 * leases from two clients sharing one bucket, the helper thread's queue and
 * eventfd, and what an unreachable server looks like.
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <string.h>

#include "common/errors.h"
#include "conf/conf.h"
#include "tests/integration/memcached_proc.h"
#include "worker/ratelimit_mc.h"

#define S 1000000000ull

static struct mb_test_memcached mcd;
static struct mb_conf *conf;

static void setup(void)
{
    int rc = mb_test_memcached_start(&mcd, 0);
    cr_assert_eq(rc, 0, "memcached did not start: %s", strerror(-rc));
    char yaml[256], err[512] = "";
    snprintf(yaml, sizeof(yaml),
             "rate_limit:\n  storage: memcached\n  memcached:\n"
             "    servers: [\"127.0.0.1:%u\"]\n    pool_size: 4\n    timeout: 500ms\n",
             mcd.port);
    cr_assert_eq(mb_conf_load_string("t.yaml", yaml, &conf, err, sizeof(err)), MB_OK, "%s", err);
}

static void teardown(void)
{
    mb_conf_free(&conf);
    mb_test_memcached_stop(&mcd);
}

static memcached_st *client(void)
{
    char err[256];
    memcached_st *mc = mb_ratelimit_mc_client(&conf->rate_limit, err, sizeof(err));
    cr_assert_not_null(mc, "%s", err);
    return mc;
}

Test(ratelimit_mc, key_is_the_same_everywhere)
{
    char a[39], b[39];
    mb_ratelimit_mc_key("default\0p:1.2.3.4", 17, a);
    mb_ratelimit_mc_key("default\0p:1.2.3.4", 17, b);
    cr_expect_str_eq(a, b);
    cr_expect_eq(strlen(a), 38);
    cr_expect_eq(strncmp(a, "mb:rl:", 6), 0);
    mb_ratelimit_mc_key("default\0p:1.2.3.5", 17, b);
    cr_expect_str_neq(a, b);
}

Test(ratelimit_mc, parse_server)
{
    char host[64];
    uint16_t port;
    cr_expect_eq(mb_ratelimit_mc_parse_server("127.0.0.1:11211", host, sizeof(host), &port), 0);
    cr_expect_str_eq(host, "127.0.0.1");
    cr_expect_eq(port, 11211);
    cr_expect_eq(mb_ratelimit_mc_parse_server("[::1]:7", host, sizeof(host), &port), 0);
    cr_expect_str_eq(host, "::1");
    cr_expect_eq(mb_ratelimit_mc_parse_server("::1:7", host, sizeof(host), &port), MB_ERR);
    cr_expect_eq(mb_ratelimit_mc_parse_server("h:0", host, sizeof(host), &port), MB_ERR);
    cr_expect_eq(mb_ratelimit_mc_parse_server("h", host, sizeof(host), &port), MB_ERR);
}

/* rate 10/s (T = 100 ms), burst 5 (tau = 400 ms). */
#define T   (S / 10)
#define TAU (4 * T)

Test(ratelimit_mc, lease_is_gcra, .init = setup, .fini = teardown)
{
    memcached_st *mc = client();
    char err[256] = "";
    uint32_t g;
    uint64_t retry;
    uint64_t t0 = 1000 * S; /* a fake CLOCK_REALTIME */
    const char *key = "mb:rl:test-gcra";

    /* A full bucket grants the burst, not more. */
    cr_assert_eq(mb_ratelimit_mc_lease(mc, key, 3, T, TAU, t0, &g, &retry, err, sizeof(err)), MB_OK,
                 "%s", err);
    cr_expect_eq(g, 3);
    cr_expect_eq(retry, 0);
    cr_assert_eq(mb_ratelimit_mc_lease(mc, key, 3, T, TAU, t0, &g, &retry, err, sizeof(err)), MB_OK,
                 "%s", err);
    cr_expect_eq(g, 2, "5 = burst");
    cr_expect_eq(retry, T, "the next token in one interval");
    cr_assert_eq(
        mb_ratelimit_mc_lease(mc, key, 1, T, TAU, t0 + T / 2, &g, &retry, err, sizeof(err)), MB_OK);
    cr_expect_eq(g, 0);
    cr_expect_eq(retry, T / 2);
    /* 1.05 s later: 10 intervals have passed, but the bucket holds 5. */
    cr_assert_eq(mb_ratelimit_mc_lease(mc, key, 100, T, TAU, t0 + 15 * T + T / 2, &g, &retry, err,
                                       sizeof(err)),
                 MB_OK);
    cr_expect_eq(g, 5, "capped at the burst after a long idle");
    memcached_free(mc);
}

Test(ratelimit_mc, two_clients_share_one_bucket, .init = setup, .fini = teardown)
{
    memcached_st *a = client(), *b = client();
    char err[256] = "";
    uint32_t g, total = 0;
    uint64_t retry, t0 = 2000 * S;
    const char *key = "mb:rl:test-shared";
    /* Alternating leases of 2 at one instant: together exactly the burst. */
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(
            mb_ratelimit_mc_lease(i % 2 ? a : b, key, 2, T, TAU, t0, &g, &retry, err, sizeof(err)),
            MB_OK, "%s", err);
        total += g;
    }
    cr_expect_eq(total, 5);
    /* 2 s on: burst again (5), and 0 more at that instant. */
    total = 0;
    for (int i = 0; i < 10; i++) {
        mb_ratelimit_mc_lease(i % 2 ? a : b, key, 2, T, TAU, t0 + 2 * S, &g, &retry, err,
                              sizeof(err));
        total += g;
    }
    cr_expect_eq(total, 5);
    memcached_free(a);
    memcached_free(b);
}

Test(ratelimit_mc, thread_answers_through_the_eventfd, .init = setup, .fini = teardown)
{
    struct mb_ratelimit_mc *m = NULL;
    char err[256] = "";
    cr_assert_eq(mb_ratelimit_mc_new(&conf->rate_limit, &m, err, sizeof(err)), MB_OK, "%s", err);
    struct mb_ratelimit_mc_job j;
    memset(&j, 0, sizeof(j));
    j.key = (struct mb_rl_key){1, 2};
    memcpy(j.name, "thread-test", 11);
    j.name_len = 11;
    j.want = 3;
    j.T_ns = S; /* 1/s, burst 2 */
    j.tau_ns = S;
    for (int i = 0; i < 4; i++)
        cr_assert_eq(mb_ratelimit_mc_submit(m, &j), MB_OK);
    cr_expect_eq(mb_ratelimit_mc_submit(m, &j), MB_AGAIN, "pool_size 4 in flight");
    struct mb_ratelimit_mc_job out[8];
    size_t got = 0;
    uint32_t granted = 0;
    int64_t deadline = mb_test_now_ms() + 5000;
    while (got < 4 && mb_test_now_ms() < deadline) {
        struct pollfd p = {.fd = mb_ratelimit_mc_fd(m), .events = POLLIN};
        poll(&p, 1, 100);
        size_t n = mb_ratelimit_mc_collect(m, out, 8);
        for (size_t i = 0; i < n; i++) {
            cr_expect_eq(out[i].status, MB_OK, "%s", out[i].err);
            cr_expect_eq(out[i].key.hi, 2, "the loop's key comes back");
            granted += out[i].granted;
        }
        got += n;
    }
    cr_expect_eq(got, 4);
    cr_expect_eq(granted, 2, "burst 2 shared by the four leases");
    cr_expect_eq(mb_ratelimit_mc_submit(m, &j), MB_OK, "room again after collecting");
    mb_ratelimit_mc_free(&m);
    cr_expect_null(m);
}

Test(ratelimit_mc, unreachable_server_is_an_error, .init = setup, .fini = teardown)
{
    memcached_st *mc = client();
    mb_test_memcached_stop(&mcd);
    char err[256] = "";
    uint32_t g = 99;
    uint64_t retry;
    cr_expect_eq(
        mb_ratelimit_mc_lease(mc, "mb:rl:x", 1, T, TAU, 1000 * S, &g, &retry, err, sizeof(err)),
        MB_ERR);
    cr_expect_eq(g, 0);
    cr_expect_neq(err[0], '\0', "says why");
    memcached_free(mc);
}
