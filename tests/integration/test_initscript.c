/*
 * tests/integration/test_initscript.c — scripts/mcp-bridge.init driven for
 * real, as an operator would: DAEMON, CONF and PIDFILE point at the build
 * and a temporary configuration. status 3 before start, start, status 0,
 * reload with a good file (a new generation serves) and with a broken one
 * (refused, the gateway keeps running the old generation), restart refused
 * on a broken file, configtest, stop, status 3, and status 1 for a pid file
 * whose process is gone.
 *
 * The daemon started by the script detaches (it is not the test's child), so
 * teardown stops it by the pid in its pid file.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/daemon.h"
#include "tests/support/net.h"
#include "tests/support/testutil.h"

static struct mb_test_daemon *d;
static pid_t started;

static void teardown(void)
{
    if (started > 0 && mb_test_pid_alive(started)) {
        kill(started, SIGTERM);
        for (int i = 0; i < 100 && mb_test_pid_alive(started); i++)
            mb_test_sleep_ms(50);
        if (mb_test_pid_alive(started))
            kill(started, SIGKILL);
    }
    started = 0;
    mb_test_daemon_free(&d);
}

/* Runs `mcp-bridge.init ACTION`; returns its exit status, *out its output. */
static int init(const char *action, char **out)
{
    char daemon[PATH_MAX], env_daemon[PATH_MAX + 8], env_conf[PATH_MAX + 8], env_pid[PATH_MAX + 8];
    mb_test_bin_path(daemon, sizeof(daemon), "mcp-bridge");
    snprintf(env_daemon, sizeof(env_daemon), "DAEMON=%s", daemon);
    snprintf(env_conf, sizeof(env_conf), "CONF=%s", d->conf_path);
    snprintf(env_pid, sizeof(env_pid), "PIDFILE=%s", d->pid_path);
    char *argv[] = {"/usr/bin/env",    env_daemon,
                    env_conf,          env_pid,
                    "STOP_TIMEOUT=10", "DEFAULTS=/nonexistent",
                    "/bin/sh",         "scripts/mcp-bridge.init",
                    (char *)action,    NULL};
    int status = -1;
    char *output = NULL;
    cr_assert_eq(mb_test_run(argv, 30000, &status, &output), 0, "init %s did not finish", action);
    cr_assert(WIFEXITED(status), "init %s: wait status %d", action, status);
    if (out)
        *out = output;
    else
        free(output);
    return WEXITSTATUS(status);
}

static pid_t pid_from_file(void)
{
    char *t = mb_test_read_file(d->pid_path, NULL);
    pid_t pid = t ? (pid_t)strtol(t, NULL, 10) : 0;
    free(t);
    return pid;
}

Test(initscript, lifecycle, .fini = teardown, .timeout = 90)
{
    struct mb_test_conf conf = {.workers = 2};
    struct mb_test_shm s;
    char *out = NULL;
    cr_assert_eq(mb_test_daemon_new(&d, &conf), 0);

    cr_expect_eq(init("status", NULL), 3, "not running yet: LSB status 3");

    cr_assert_eq(init("start", &out), 0, "start: %s", out);
    free(out);
    started = pid_from_file();
    cr_assert_gt(started, 0, "start wrote no pid file");
    cr_assert(mb_test_pid_alive(started));
    cr_assert_eq(mb_test_shm_wait_running(d, 2, 1, &s, 10000), 0);
    mb_test_shm_clear(&s);
    cr_expect_eq(init("status", NULL), 0);
    cr_expect_eq(init("start", NULL), 0, "start when running is not an error");

    /* reload, good file: one worker now, generation 2. */
    conf.workers = 1;
    cr_assert_eq(mb_test_daemon_write_conf(d, &conf), 0);
    cr_expect_eq(init("configtest", NULL), 0);
    cr_assert_eq(init("reload", &out), 0, "reload: %s", out);
    free(out);
    cr_expect_eq(mb_test_shm_wait_running(d, 1, 2, &s, 10000), 0, "generation 2 never ran");
    mb_test_shm_clear(&s);

    /* reload, broken file: refused, still running generation 2. */
    cr_assert_eq(mb_test_daemon_write_conf_text(d, "workers: [1\n"), 0);
    cr_expect_eq(init("configtest", NULL), 1);
    cr_expect_neq(init("reload", &out), 0, "a broken file must not be reloaded");
    cr_expect(strstr(out, "not reloading") != NULL, "%s", out);
    free(out);
    cr_expect_neq(init("restart", &out), 0, "a broken file must not restart");
    free(out);
    cr_expect_neq(init("force-reload", NULL), 0);
    mb_test_sleep_ms(300);
    cr_expect(mb_test_pid_alive(started), "the gateway died on a refused reload");
    cr_expect_eq(pid_from_file(), started);
    cr_expect_eq(init("status", NULL), 0);
    cr_expect_eq(mb_test_shm_wait_running(d, 1, 2, &s, 5000), 0, "generation 2 must still serve");
    cr_expect_eq(mb_test_tcp_connect(d->port, 2000) >= 0, true);
    mb_test_shm_clear(&s);
    char *log = mb_test_daemon_log(d);
    int reloads = 0;
    for (const char *p = log; (p = strstr(p, "reloading ")) != NULL; p++)
        reloads++;
    cr_expect_eq(reloads, 1, "only the good file reached the daemon:\n%s", log);
    free(log);

    /* stop */
    cr_assert_eq(mb_test_daemon_write_conf(d, &conf), 0);
    cr_assert_eq(init("stop", &out), 0, "stop: %s", out);
    free(out);
    cr_expect(!mb_test_pid_alive(started), "stop returned while the master lives");
    cr_expect_eq(init("status", NULL), 3);
    cr_expect_eq(init("stop", NULL), 0, "stop when stopped is not an error");

    /* A pid file whose process is gone: LSB status 1. */
    cr_assert_eq(mb_test_write_file(d->pid_path, "2147483000\n"), 0);
    cr_expect_eq(init("status", NULL), 1);
    unlink(d->pid_path);
}
