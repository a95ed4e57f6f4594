/*
 * tests/integration/test_reload.c — SIGHUP against the real daemon:
 *   - a valid new configuration while a client opens a new connection for
 *     every request: no request fails, a new generation of workers takes
 *     over (new pids in the shm dump), the old workers are gone within
 *     shutdown_timeout, and the new value is in force;
 *   - a broken configuration: the error is logged with file:line:column and
 *     the old workers keep serving, untouched;
 *   - a WebSocket open across a reload is closed by its old worker with 1001.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/daemon.h"
#include "tests/support/daemon_assert.h"
#include "tests/support/testutil.h"
#include "tests/support/wsclient.h"

#define IO_MS 5000

static struct mb_test_daemon *gw;

static void teardown(void)
{
    mb_test_daemon_free(&gw);
}

#define RELOAD_TEST(name) Test(reload, name, .fini = teardown, .timeout = 60)

static void start(const struct mb_test_conf *conf)
{
    mb_test_must_start(&gw, conf);
}

static void finish(void)
{
    mb_test_must_finish(gw);
}

/* The running workers of the current dump: pids into pids[], returns gen. */
static uint64_t running_workers(size_t n, pid_t *pids)
{
    struct mb_test_shm s;
    int rc = mb_test_shm_wait_running(gw, n, 0, &s, 5000);
    cr_assert_eq(rc, 0, "not %zu running workers: %s", n, s.raw ? s.raw : "(no dump)");
    struct mb_test_worker run[MB_TEST_MAX_WORKERS];
    mb_test_shm_running(&s, run, MB_TEST_MAX_WORKERS);
    uint64_t gen = run[0].generation;
    for (size_t i = 0; i < n; i++) {
        pids[i] = run[i].pid;
        cr_assert_eq(run[i].generation, gen, "mixed generations: %s", s.raw);
    }
    mb_test_shm_clear(&s);
    return gen;
}

/* One request on a new connection: connect, ping, reply, close. Returns 0 or
 * -errno, with what failed in err. */
static int ping_once(uint16_t port, long id, char *err, size_t errlen)
{
    struct mb_wsclient *c = NULL;
    int rc = mb_wsclient_connect(&c, port, id % 2 ? "/" : "/mcp", "mcp", 3000, err, errlen);
    if (rc)
        return rc;
    char req[96], want[32], got[32];
    struct mb_wsmsg m;
    snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"ping\"}", id);
    rc = mb_wsclient_call(c, req, &m, 3000);
    if (rc) {
        snprintf(err, errlen, "request %ld: %s", id, strerror(-rc));
        goto out;
    }
    if (m.opcode != MB_WS_OP_TEXT) {
        snprintf(err, errlen, "request %ld: opcode %d, close code %d", id, m.opcode, m.close_code);
        rc = -EPROTO;
        goto out;
    }
    snprintf(want, sizeof(want), "%ld", id);
    if (mb_test_json_raw(m.data, "id", got, sizeof(got)) != 0 || strcmp(got, want) != 0 ||
        !strstr(m.data, "\"result\"")) {
        snprintf(err, errlen, "request %ld: reply %.200s", id, m.data);
        rc = -EPROTO;
        goto out;
    }
    mb_wsclient_close(c, 1000, 1000);
out:
    mb_wsclient_free(&c);
    return rc;
}

struct stream {
    uint16_t port;
    atomic_bool stop;
    long ok, failed;
    char first_error[256];
};

static void *stream_main(void *arg)
{
    struct stream *st = arg;
    long id = 1;
    while (!atomic_load(&st->stop)) {
        char err[256] = "";
        if (ping_once(st->port, id++, err, sizeof(err)) == 0) {
            st->ok++;
        } else {
            if (st->failed++ == 0)
                snprintf(st->first_error, sizeof(st->first_error), "%s", err);
        }
        /* Steady, not flat out: every request leaves a TIME_WAIT entry, and
         * loopback has ~28k ephemeral ports for the whole test suite. */
        mb_test_sleep_ms(2);
    }
    return NULL;
}

static bool pid_gone(void *arg)
{
    return !mb_test_pid_alive(*(pid_t *)arg);
}

/* A message of total bytes that is a valid ping. */
static char *big_ping(size_t total)
{
    static const char head[] =
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"pad\":\"";
    static const char tail[] = "\"}}";
    char *s = malloc(total + 1);
    cr_assert_not_null(s);
    memcpy(s, head, sizeof(head) - 1);
    memset(s + sizeof(head) - 1, 'x', total - (sizeof(head) - 1) - (sizeof(tail) - 1));
    memcpy(s + total - (sizeof(tail) - 1), tail, sizeof(tail));
    return s;
}

/* Sends a 5000-byte ping on a new connection; returns the reply opcode and
 * the close code (0 when a text reply came). */
static int big_message(int *close_code)
{
    struct mb_wsclient *c = NULL;
    char err[256];
    int rc = mb_wsclient_connect(&c, gw->port, "/", NULL, IO_MS, err, sizeof(err));
    cr_assert_eq(rc, 0, "connect: %s", err);
    char *msg = big_ping(5000);
    struct mb_wsmsg m;
    rc = mb_wsclient_send_text(c, msg, IO_MS);
    cr_assert(rc == 0 || rc == -EPIPE || rc == -ECONNRESET, "send: %s", strerror(-rc));
    rc = mb_wsclient_recv(c, &m, IO_MS);
    free(msg);
    cr_assert_eq(rc, 0, "no answer to a 5000-byte message: %s", strerror(-rc));
    *close_code = m.close_code;
    int op = m.opcode;
    mb_wsclient_free(&c);
    return op;
}

RELOAD_TEST(reload_under_a_stream_of_new_connections_loses_nothing)
{
    struct mb_test_conf conf = {.workers = 2, .shutdown_timeout = "3s", .max_message_size = "1MB"};
    start(&conf);
    pid_t old[2];
    uint64_t gen = running_workers(2, old);
    int code = 0;
    cr_assert_eq(big_message(&code), MB_WS_OP_TEXT, "5000 bytes refused (close %d) under 1MB",
                 code);

    struct stream st = {.port = gw->port};
    atomic_init(&st.stop, false);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, stream_main, &st), 0);
    mb_test_sleep_ms(1000);

    conf.max_message_size = "4096";
    int rc = mb_test_daemon_write_conf(gw, &conf);
    if (rc == 0)
        rc = mb_test_daemon_signal(gw, SIGHUP);
    int64_t hup_at = mb_test_now_ms();
    mb_test_sleep_ms(2000);
    atomic_store(&st.stop, true);
    pthread_join(th, NULL);
    cr_assert_eq(rc, 0, "reload: %s", strerror(-rc));

    cr_assert_eq(st.failed, 0, "%ld of %ld requests failed across the reload; first: %s", st.failed,
                 st.failed + st.ok, st.first_error);
    cr_assert_geq(st.ok, 20, "only %ld requests in 3 s: the stream did not run", st.ok);
    cr_log_info("%ld requests on new connections across the reload, none failed", st.ok);

    /* A new generation of workers with new pids... */
    struct mb_test_shm s;
    rc = mb_test_shm_wait_running(gw, 2, gen + 1, &s, 5000);
    cr_assert_eq(rc, 0, "no 2 running workers of generation %llu: %s", (unsigned long long)gen + 1,
                 s.raw ? s.raw : "(no dump)");
    for (size_t i = 0; i < s.n; i++)
        if (!strcmp(s.w[i].state, "running"))
            cr_assert(s.w[i].pid != old[0] && s.w[i].pid != old[1],
                      "running worker %d is an old one: %s", s.w[i].pid, s.raw);
    mb_test_shm_clear(&s);

    /* ...and the old ones gone within shutdown_timeout (3 s) of the HUP. */
    for (int i = 0; i < 2; i++) {
        int left = (int)(hup_at + 3000 + 500 - mb_test_now_ms());
        cr_assert_eq(mb_test_wait_until(pid_gone, &old[i], left > 0 ? left : 0, 20), 0,
                     "old worker %d still alive %lld ms after the reload", old[i],
                     (long long)(mb_test_now_ms() - hup_at));
    }
    cr_assert_eq(mb_test_shm_read(gw, &s), 0, "dump: %s", s.raw ? s.raw : "");
    for (int i = 0; i < 2; i++) {
        const struct mb_test_worker *w = mb_test_shm_find_pid(&s, old[i]);
        cr_assert(!w || !strcmp(w->state, "exited") || !strcmp(w->state, "free"),
                  "old worker %d still listed as %s: %s", old[i], w ? w->state : "", s.raw);
    }
    mb_test_shm_clear(&s);

    /* The new configuration is in force. */
    cr_assert_eq(big_message(&code), MB_WS_OP_CLOSE,
                 "a 5000-byte message was served after reloading with max_message_size 4096");
    cr_assert_eq(code, 1009);
    finish();
}

/* The line of text on which needle starts (1-based). */
static int line_of(const char *text, const char *needle)
{
    const char *p = strstr(text, needle);
    cr_assert_not_null(p);
    int line = 1;
    for (const char *q = text; q < p; q++)
        line += *q == '\n';
    return line;
}

RELOAD_TEST(reload_with_a_broken_file_keeps_serving_unchanged)
{
    struct mb_test_conf conf = {.workers = 2, .shutdown_timeout = "3s"};
    start(&conf);
    pid_t old[2];
    uint64_t gen = running_workers(2, old);

    struct mb_test_conf bad = conf;
    bad.max_message_size = "big";
    char *text = mb_test_daemon_conf_text(gw, &bad);
    cr_assert_not_null(text);
    int line = line_of(text, "max_message_size");
    cr_assert_eq(mb_test_daemon_write_conf_text(gw, text), 0);
    free(text);
    cr_assert_eq(mb_test_daemon_signal(gw, SIGHUP), 0);

    char where[PATH_MAX + 32];
    snprintf(where, sizeof(where), "%s:%d:", gw->conf_path, line);
    int64_t deadline = mb_test_now_ms() + 5000;
    while (!mb_test_daemon_log_contains(gw, where) && mb_test_now_ms() < deadline)
        mb_test_sleep_ms(50);
    char *log = mb_test_daemon_log(gw);
    cr_assert(mb_test_daemon_log_contains(gw, where), "no \"%s\" error logged:\n%s", where, log);
    cr_assert(strstr(log, "max_message_size") != NULL, "the key is not named:\n%s", log);
    free(log);

    /* Still serving, on the same workers. */
    for (long i = 1; i <= 10; i++) {
        char err[256] = "";
        cr_assert_eq(ping_once(gw->port, i, err, sizeof(err)), 0, "after the failed reload: %s",
                     err);
    }
    pid_t now[2];
    cr_assert_eq(running_workers(2, now), gen, "the generation changed");
    cr_assert((now[0] == old[0] && now[1] == old[1]) || (now[0] == old[1] && now[1] == old[0]),
              "workers changed: %d %d -> %d %d", old[0], old[1], now[0], now[1]);
    cr_assert(mb_test_pid_alive(gw->pid), "the master died");

    /* A correct file afterwards reloads normally. */
    cr_assert_eq(mb_test_daemon_write_conf(gw, &conf), 0);
    cr_assert_eq(mb_test_daemon_signal(gw, SIGHUP), 0);
    struct mb_test_shm s;
    int rc = mb_test_shm_wait_running(gw, 2, gen + 1, &s, 8000);
    cr_assert_eq(rc, 0, "a good reload after a bad one did not happen: %s",
                 s.raw ? s.raw : "(no dump)");
    mb_test_shm_clear(&s);
    finish();
}

RELOAD_TEST(websocket_open_across_a_reload_is_closed_with_1001)
{
    struct mb_test_conf conf = {.workers = 2, .shutdown_timeout = "2s"};
    start(&conf);
    pid_t old[2];
    running_workers(2, old);

    /* Several sessions, so that whichever worker they landed on, each is
     * closed by its own old worker. */
    enum { N = 4 };
    struct mb_wsclient *c[N] = {0};
    char err[256];
    for (int i = 0; i < N; i++) {
        cr_assert_eq(mb_wsclient_connect(&c[i], gw->port, "/mcp", "mcp", IO_MS, err, sizeof(err)),
                     0, "connect: %s", err);
        struct mb_wsmsg m;
        int rc =
            mb_wsclient_call(c[i], "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}", &m, IO_MS);
        cr_assert(rc == 0 && m.opcode == MB_WS_OP_TEXT, "ping before the reload: rc %d", rc);
    }
    cr_assert_eq(mb_test_daemon_signal(gw, SIGHUP), 0);
    int64_t hup_at = mb_test_now_ms();
    for (int i = 0; i < N; i++) {
        struct mb_wsmsg m;
        int left = (int)(hup_at + 2000 + 2000 - mb_test_now_ms());
        int rc = mb_wsclient_recv(c[i], &m, left > 0 ? left : 0);
        int op = m.opcode, code = m.close_code;
        mb_wsclient_free(&c[i]);
        cr_assert_eq(rc, 0, "session %d: no close frame after the reload: %s", i, strerror(-rc));
        cr_assert_eq(op, MB_WS_OP_CLOSE, "session %d: opcode %d instead of a close", i, op);
        cr_assert_eq(code, 1001, "session %d: close code %d, expected 1001 (going away)", i, code);
    }
    /* New sessions are served by the new generation. */
    cr_assert_eq(ping_once(gw->port, 99, err, sizeof(err)), 0, "after the reload: %s", err);
    finish();
}

RELOAD_TEST(reload_can_change_the_number_of_workers)
{
    struct mb_test_conf conf = {.workers = 2, .shutdown_timeout = "2s"};
    start(&conf);
    pid_t old[2];
    uint64_t gen = running_workers(2, old);
    static const int counts[] = {3, 1};
    for (size_t k = 0; k < 2; k++) {
        conf.workers = counts[k];
        cr_assert_eq(mb_test_daemon_write_conf(gw, &conf), 0);
        cr_assert_eq(mb_test_daemon_signal(gw, SIGHUP), 0);
        gen++;
        struct mb_test_shm s;
        int rc = mb_test_shm_wait_running(gw, (size_t)counts[k], gen, &s, 8000);
        cr_assert_eq(rc, 0, "not %d running workers of generation %llu after the reload: %s",
                     counts[k], (unsigned long long)gen, s.raw ? s.raw : "(no dump)");
        /* One per slot 0..n-1. */
        bool slot_seen[8] = {0};
        for (size_t i = 0; i < s.n; i++) {
            if (strcmp(s.w[i].state, "running") != 0)
                continue;
            cr_assert(s.w[i].slot >= 0 && s.w[i].slot < counts[k] && !slot_seen[s.w[i].slot],
                      "bad slot %d: %s", s.w[i].slot, s.raw);
            slot_seen[s.w[i].slot] = true;
        }
        mb_test_shm_clear(&s);
        for (long i = 1; i <= 5; i++) {
            char err[256] = "";
            cr_assert_eq(ping_once(gw->port, i, err, sizeof(err)), 0, "with %d workers: %s",
                         counts[k], err);
        }
    }
    finish();
}
