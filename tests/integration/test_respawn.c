/*
 * tests/integration/test_respawn.c — the master's supervision and stop
 * signals against the real daemon: a worker killed with SIGKILL comes back
 * in the same slot (restarts = 1) while the port keeps answering; SIGQUIT
 * stops gracefully (sessions closed with 1001, exit 0, pid file removed);
 * SIGTERM and SIGINT stop fast (well before shutdown_timeout).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "tests/support/daemon.h"
#include "tests/support/daemon_assert.h"
#include "tests/support/testutil.h"
#include "tests/support/wsclient.h"

#define IO_MS 5000

static struct mb_test_daemon *gw;
static struct mb_wsclient *session;

static void teardown(void)
{
    mb_wsclient_free(&session);
    mb_test_daemon_free(&gw);
}

#define RESPAWN_TEST(name) Test(respawn, name, .fini = teardown, .timeout = 60)

static void start(const struct mb_test_conf *conf)
{
    mb_test_must_start(&gw, conf);
}

static void finish(void)
{
    mb_test_must_finish(gw);
}

/* One request on a new connection; 0 or -errno with the reason in err. */
static int ping_once(long id, char *err, size_t errlen)
{
    struct mb_wsclient *c = NULL;
    int rc = mb_wsclient_connect(&c, gw->port, "/", NULL, 4000, err, errlen);
    if (rc)
        return rc;
    char req[96], want[32], got[32];
    struct mb_wsmsg m;
    snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"ping\"}", id);
    snprintf(want, sizeof(want), "%ld", id);
    rc = mb_wsclient_call(c, req, &m, 4000);
    if (rc)
        snprintf(err, errlen, "request %ld: %s", id, strerror(-rc));
    else if (m.opcode != MB_WS_OP_TEXT || mb_test_json_raw(m.data, "id", got, sizeof(got)) != 0 ||
             strcmp(got, want) != 0) {
        snprintf(err, errlen, "request %ld: opcode %d close %d reply %.200s", id, m.opcode,
                 m.close_code, m.data);
        rc = -EPROTO;
    }
    mb_wsclient_free(&c);
    return rc;
}

/* The running record of slot, or NULL. */
static const struct mb_test_worker *running_in_slot(const struct mb_test_shm *s, int slot)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->w[i].slot == slot && !strcmp(s->w[i].state, "running"))
            return &s->w[i];
    return NULL;
}

RESPAWN_TEST(killed_worker_is_respawned_in_its_slot_while_the_port_answers)
{
    struct mb_test_conf conf = {.workers = 2};
    start(&conf);
    struct mb_test_shm s;
    cr_assert_eq(mb_test_shm_wait_running(gw, 2, 0, &s, 5000), 0, "dump: %s", s.raw);
    const struct mb_test_worker *w0 = running_in_slot(&s, 0), *w1 = running_in_slot(&s, 1);
    cr_assert(w0 && w1, "slots 0 and 1 not both running: %s", s.raw);
    cr_assert_eq(w0->restarts, 0, "%s", s.raw);
    pid_t victim = w0->pid, bystander = w1->pid;
    mb_test_shm_clear(&s);

    cr_assert_eq(kill(victim, SIGKILL), 0, "kill -9 %d: %s", victim, strerror(errno));
    int64_t deadline = mb_test_now_ms() + 10000;
    long id = 1, failed = 0;
    char first[256] = "";
    const struct mb_test_worker *nw = NULL;
    /* Keep asking while the master notices and respawns. */
    for (;;) {
        char err[256] = "";
        if (ping_once(id++, err, sizeof(err)) != 0 && failed++ == 0)
            snprintf(first, sizeof(first), "%s", err);
        mb_test_shm_clear(&s);
        if (mb_test_shm_read(gw, &s) == 0) {
            nw = running_in_slot(&s, 0);
            if (nw && nw->pid != victim)
                break;
        }
        cr_assert_lt(mb_test_now_ms(), deadline, "slot 0 not respawned within 10 s: %s",
                     s.raw ? s.raw : "(no dump)");
    }
    cr_assert_eq(failed, 0, "%ld of %ld requests failed while the worker was down; first: %s",
                 failed, id - 1, first);
    cr_assert_neq(nw->pid, victim);
    cr_assert_eq(nw->restarts, 1, "slot 0 restarts %u, expected 1: %s", nw->restarts, s.raw);
    const struct mb_test_worker *other = running_in_slot(&s, 1);
    cr_assert(other && other->pid == bystander && other->restarts == 0, "slot 1 was disturbed: %s",
              s.raw);
    mb_test_shm_clear(&s);
    cr_assert(!mb_test_pid_alive(victim), "the killed worker %d is still there", victim);

    for (long i = 0; i < 20; i++) {
        char err[256] = "";
        cr_assert_eq(ping_once(1000 + i, err, sizeof(err)), 0, "after the respawn: %s", err);
    }
    finish();
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void open_session(void)
{
    char err[256];
    int rc = mb_wsclient_connect(&session, gw->port, "/mcp", "mcp", IO_MS, err, sizeof(err));
    cr_assert_eq(rc, 0, "connect: %s", err);
    struct mb_wsmsg m;
    rc = mb_wsclient_call(session, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}", &m, IO_MS);
    cr_assert(rc == 0 && m.opcode == MB_WS_OP_TEXT, "ping: rc %d", rc);
}

static bool group_gone(void *arg)
{
    (void)arg;
    return !mb_test_daemon_group_alive(gw);
}

RESPAWN_TEST(sigquit_stops_gracefully)
{
    struct mb_test_conf conf = {.workers = 2, .shutdown_timeout = "3s"};
    start(&conf);
    cr_assert(file_exists(gw->pid_path), "no pid file");
    open_session();
    cr_assert_eq(mb_test_daemon_signal(gw, SIGQUIT), 0);

    struct mb_wsmsg m;
    int rc = mb_wsclient_recv(session, &m, 3000 + 2000);
    cr_assert_eq(rc, 0, "no close frame on graceful stop: %s", strerror(-rc));
    cr_assert_eq(m.opcode, MB_WS_OP_CLOSE, "opcode %d instead of a close", m.opcode);
    cr_assert_eq(m.close_code, 1001, "close code %d, expected 1001", m.close_code);

    cr_assert_eq(mb_test_daemon_wait_exit(gw, 3000 + 3000), 0, "the master did not exit");
    cr_assert(WIFEXITED(gw->status) && WEXITSTATUS(gw->status) == 0, "master wait status %#x",
              gw->status);
    cr_assert(!file_exists(gw->pid_path), "pid file left behind");
    cr_assert_eq(mb_test_wait_until(group_gone, NULL, 2000, 20), 0, "workers outlived the master");
    finish();
}

static void fast_stop(int sig)
{
    /* A long shutdown_timeout: a fast stop must not wait for it. */
    struct mb_test_conf conf = {.workers = 2, .shutdown_timeout = "30s"};
    start(&conf);
    open_session();
    int64_t t0 = mb_test_now_ms();
    cr_assert_eq(mb_test_daemon_signal(gw, sig), 0);
    cr_assert_eq(mb_test_daemon_wait_exit(gw, 5000), 0,
                 "the master did not exit within 5 s of signal %d", sig);
    cr_assert(WIFEXITED(gw->status) && WEXITSTATUS(gw->status) == 0,
              "master wait status %#x after signal %d", gw->status, sig);
    cr_assert(!file_exists(gw->pid_path), "pid file left behind");
    cr_assert_eq(mb_test_wait_until(group_gone, NULL, 2000, 20), 0, "workers outlived the master");

    /* The session ended with the workers (a close frame or a reset). */
    struct mb_wsmsg m;
    int rc = mb_wsclient_recv(session, &m, 1000);
    cr_assert(rc == -ECONNRESET || (rc == 0 && m.opcode == MB_WS_OP_CLOSE),
              "session still open after the stop: rc %d opcode %d", rc, m.opcode);
    cr_log_info("signal %d: stopped in %lld ms", sig, (long long)(mb_test_now_ms() - t0));
}

RESPAWN_TEST(sigterm_stops_fast)
{
    fast_stop(SIGTERM);
    finish();
}

RESPAWN_TEST(sigint_stops_fast)
{
    fast_stop(SIGINT);
    finish();
}
