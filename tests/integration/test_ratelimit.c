/*
 * tests/integration/test_ratelimit.c — rate limiting with storage: shm
 * against the real daemon: one client on connections served by two
 * different workers has one budget (GCRA admits burst + rate * elapsed, not
 * twice the burst), rejected requests carry -32029 with retry_after_ms and
 * the connection stays usable, a reload keeps the bucket — also one that
 * changes rate_limit.capacity, which builds a new region: the bucket is
 * carried into it, mcp-bridge-shm shows the new capacity, no counter goes
 * backwards, the old workers exit and the old region is retired — and
 * mcp-bridge-shm counts the rejections.
 *
 * The bounds come from the GCRA arithmetic: a fresh bucket of rate R and
 * burst B admits at most B + floor(R * e) requests in e seconds, plus at
 * most one when two workers insert the same new key at the same instant
 * (shm/ratelimit.c); two separate budgets would admit at least 2B.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <string.h>

#include "tests/integration/ratelimit_client.h"
#include "tests/support/daemon_assert.h"

static struct mb_test_daemon *gw;
static struct mb_wsclient *conns[32];
static size_t nconns;

static void teardown(void)
{
    for (size_t i = 0; i < nconns; i++)
        mb_wsclient_free(&conns[i]);
    nconns = 0;
    mb_test_daemon_free(&gw);
}

/* The whole `mcp-bridge-shm --json` of d (the caller deletes it). */
static cJSON *dump_json(const struct mb_test_daemon *d)
{
    char bin[PATH_MAX], *out = NULL;
    int st;
    mb_test_bin_path(bin, sizeof(bin), "mcp-bridge-shm");
    char *argv[] = {bin, "--json", (char *)d->shm_path, NULL};
    cr_assert_eq(mb_test_run(argv, 10000, &st, &out), 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "mcp-bridge-shm: %s", out);
    cJSON *j = cJSON_Parse(out);
    cr_assert_not_null(j, "mcp-bridge-shm --json: %s", out);
    free(out);
    return j;
}

/* Sum of the counters (not gauges: those are the keys of "rates") of a dump;
 * every counter of `before` must be <= its value in `after` when both given. */
static double counters_sum(const cJSON *dump, const cJSON *before)
{
    const cJSON *rates = cJSON_GetObjectItemCaseSensitive(dump, "rates");
    const cJSON *ctrs = cJSON_GetObjectItemCaseSensitive(dump, "counters");
    const cJSON *bctrs = before ? cJSON_GetObjectItemCaseSensitive(before, "counters") : NULL;
    double sum = 0;
    int n = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, rates)
    {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(ctrs, r->string);
        cr_assert(cJSON_IsNumber(v), "counter %s", r->string);
        sum += v->valuedouble;
        n++;
        if (bctrs) {
            const cJSON *b = cJSON_GetObjectItemCaseSensitive(bctrs, r->string);
            cr_assert(cJSON_IsNumber(b), "counter %s before", r->string);
            cr_expect_leq(b->valuedouble, v->valuedouble, "counter %s went backwards", r->string);
        }
    }
    cr_assert_gt(n, 10, "the dump lists counters");
    return sum;
}

static double ratelimit_capacity(const cJSON *dump)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(dump, "ratelimit"), "capacity");
    cr_assert(cJSON_IsNumber(c), "no ratelimit.capacity in the dump");
    return c->valuedouble;
}

/* Waits (bounded) until no process pid exists any more. */
static bool gone(pid_t pid, int timeout_ms)
{
    int64_t deadline = mb_test_now_ms() + timeout_ms;
    while (kill(pid, 0) == 0 || errno != ESRCH) {
        if (mb_test_now_ms() >= deadline)
            return false;
        mb_test_sleep_ms(50);
    }
    return true;
}

Test(ratelimit, two_workers_share_one_budget, .fini = teardown, .timeout = 60)
{
    const double R = 2;
    const long B = 10;
    struct mb_test_conf conf = {.workers = 2,
                                .extra = "rate_limit:\n  requests_per_sec: 2\n  burst: 10\n"};
    mb_test_must_start(&gw, &conf);
    struct mb_wsclient *w[2];
    size_t nspare = 0;
    rl_connect_each_worker(gw, 2, w, conns + 2, &nspare, 24);
    conns[0] = w[0];
    conns[1] = w[1];
    nconns = 2 + nspare;

    /* 40 requests, alternating between the two workers: each worker sees
     * 20 >= 2B, so separate budgets would admit >= 20. */
    long admitted = 0, rejected = 0, max_retry = 0;
    int64_t t0 = mb_test_now_ms();
    for (int i = 0; i < 40; i++) {
        struct rl_answer a = rl_call(w[i % 2], i + 1);
        if (a.admitted) {
            admitted++;
            continue;
        }
        rejected++;
        cr_expect_float_eq(a.limit, R, 1e-9);
        cr_expect_eq(a.burst, B);
        /* The bucket is at most one interval (500 ms) from a free token. */
        cr_expect_leq(a.retry_after_ms, 500);
        if (a.retry_after_ms > max_retry)
            max_retry = a.retry_after_ms;
    }
    double e = (double)(mb_test_now_ms() - t0) / 1000.0;
    cr_log_info("admitted %ld, rejected %ld in %.3f s", admitted, rejected, e);
    cr_assert_lt(e, 4.0, "too slow for the bound to tell one budget from two (%.2f s)", e);
    cr_expect_geq(admitted, B, "the burst is admitted");
    cr_expect_leq(admitted, B + (long)floor(R * e) + 1,
                  "%ld admitted in %.2f s: more than one budget allows", admitted, e);
    cr_expect_gt(rejected, 0);

    /* The connections stay open; waiting retry_after_ms is enough. */
    mb_test_sleep_ms((int)max_retry + 50);
    cr_expect(rl_call(w[0], 100).admitted, "admitted after waiting retry_after_ms");
    cr_expect_eq(rl_counter(gw, "ratelimited"), (double)rejected);
    cr_expect_eq(rl_counter(gw, "requests.tools/list.rate_limited"), (double)rejected);
    mb_test_must_finish(gw);
}

Test(ratelimit, reload_keeps_the_bucket, .fini = teardown, .timeout = 60)
{
    /* rate 0.1/s: a fresh bucket would admit at once; the kept one not for
     * another ~10 s. */
    struct mb_test_conf conf = {.workers = 2,
                                .extra = "rate_limit:\n  requests_per_sec: 0.1\n  burst: 3\n"};
    mb_test_must_start(&gw, &conf);
    char err[256];
    cr_assert_eq(mb_wsclient_connect(&conns[0], gw->port, "/", NULL, RL_IO_MS, err, sizeof(err)), 0,
                 "%s", err);
    nconns = 1;
    for (int i = 0; i < 3; i++)
        cr_assert(rl_call(conns[0], i + 1).admitted, "request %d within the burst", i + 1);
    struct rl_answer a = rl_call(conns[0], 4);
    cr_assert_not(a.admitted);
    cr_expect_gt(a.retry_after_ms, 5000, "about one interval (10 s) away");

    /* Same file: generation 2 takes over; the old connection is closed by
     * the draining worker, so use a new one. */
    struct mb_test_shm s = {0};
    cr_assert_eq(mb_test_daemon_signal(gw, SIGHUP), 0);
    cr_assert_eq(mb_test_shm_wait_running(gw, 2, 2, &s, 15000), 0, "%s", s.raw ? s.raw : "");
    mb_test_shm_clear(&s);
    cr_assert_eq(mb_wsclient_connect(&conns[1], gw->port, "/", NULL, RL_IO_MS, err, sizeof(err)), 0,
                 "%s", err);
    nconns = 2;
    cr_expect_not(rl_call(conns[1], 5).admitted, "a reload must not hand out a fresh budget");

    /* A new capacity (65536 -> 4096): a new region, the bucket carried. */
    cJSON *before = dump_json(gw);
    cr_expect_eq(ratelimit_capacity(before), 65536);
    double sum_before = counters_sum(before, NULL);
    struct mb_test_worker old[8];
    cr_assert_eq(mb_test_shm_wait_running(gw, 2, 2, &s, 15000), 0, "%s", s.raw ? s.raw : "");
    size_t nold = mb_test_shm_running(&s, old, 8);
    mb_test_shm_clear(&s);
    conf.extra = "rate_limit:\n  requests_per_sec: 0.1\n  burst: 3\n  capacity: 4096\n";
    cr_assert_eq(mb_test_daemon_write_conf(gw, &conf), 0);
    cr_assert_eq(mb_test_daemon_signal(gw, SIGHUP), 0);
    cr_assert_eq(mb_test_shm_wait_running(gw, 2, 3, &s, 15000), 0, "%s", s.raw ? s.raw : "");
    mb_test_shm_clear(&s);
    cr_assert_eq(mb_wsclient_connect(&conns[2], gw->port, "/", NULL, RL_IO_MS, err, sizeof(err)), 0,
                 "%s", err);
    nconns = 3;
    a = rl_call(conns[2], 6);
    cr_expect_not(a.admitted, "the bucket must be carried into the new region");
    cr_expect_gt(a.retry_after_ms, 1000, "the carried bucket, not a fresh one");
    cr_expect(mb_test_daemon_log_contains(gw, "1 rate-limit buckets carried, 0 dropped"));
    cr_expect_not(mb_test_daemon_log_contains(gw, "until a restart"));

    cJSON *after = dump_json(gw);
    cr_expect_eq(ratelimit_capacity(after), 4096, "the dump shows the new region");
    double sum_after = counters_sum(after, before);
    cr_expect_leq(sum_before, sum_after, "counters went backwards: %.0f -> %.0f", sum_before,
                  sum_after);
    cJSON_Delete(after);

    /* The old workers drain and exit (shutdown_timeout 3 s + 2 s at most);
     * then the old region is retired with what they counted meanwhile. */
    cr_assert_eq(nold, 2);
    for (size_t i = 0; i < nold; i++)
        cr_expect(gone(old[i].pid, 10000), "old worker %d still alive", (int)old[i].pid);
    for (int i = 0; i < 100 && !mb_test_daemon_log_contains(gw, "old shm region retired"); i++)
        mb_test_sleep_ms(50);
    cr_expect(mb_test_daemon_log_contains(gw, "old shm region retired"));
    after = dump_json(gw);
    cr_expect_leq(sum_before, counters_sum(after, before));
    cJSON_Delete(after);
    cJSON_Delete(before);

    /* Still serving, still limited, on a fresh connection. */
    cr_assert_eq(mb_wsclient_connect(&conns[3], gw->port, "/", NULL, RL_IO_MS, err, sizeof(err)), 0,
                 "%s", err);
    nconns = 4;
    cr_expect_not(rl_call(conns[3], 7).admitted);
    cr_expect_geq(rl_counter(gw, "ratelimited"), 4);
    mb_test_must_finish(gw);
}

Test(ratelimit, overrides_apply_by_tool, .fini = teardown, .timeout = 60)
{
    /* tools/list names no tool, so a tool override leaves it on the default;
     * a principal override for 127.0.0.* applies. */
    struct mb_test_conf conf = {
        .workers = 1,
        .extra = "rate_limit:\n  requests_per_sec: 0.1\n  burst: 50\n  overrides:\n"
                 "    - {tool: \"x__*\", requests_per_sec: 0.1, burst: 1}\n"
                 "    - {principal: \"127.0.0.*\", requests_per_sec: 0.1, burst: 2}\n"};
    mb_test_must_start(&gw, &conf);
    char err[256];
    cr_assert_eq(mb_wsclient_connect(&conns[0], gw->port, "/", NULL, RL_IO_MS, err, sizeof(err)), 0,
                 "%s", err);
    nconns = 1;
    cr_expect(rl_call(conns[0], 1).admitted);
    cr_expect(rl_call(conns[0], 2).admitted);
    struct rl_answer a = rl_call(conns[0], 3);
    cr_expect_not(a.admitted, "the principal override's burst of 2");
    cr_expect_eq(a.burst, 2);
    mb_test_must_finish(gw);
}
