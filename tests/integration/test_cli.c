/*
 * tests/integration/test_cli.c — the mcp-bridge command line as an operator
 * uses it: -t (configuration ok / FILE:LINE:COL errors), -v, -h, usage errors,
 * -s stop|reload|quit|reopen through the pid file, -p, and starting as a
 * daemon (without -g) that reports success only once it serves.
 *
 * Each test has its own temporary directory and, where it runs the daemon, its
 * own port and shm file; teardown() stops everything it started.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/daemon.h"
#include "tests/support/daemon_assert.h"
#include "tests/support/net.h"
#include "tests/support/testutil.h"
#include "tests/support/wsclient.h"

#define RUN_MS 10000

static struct mb_test_daemon *gw;
static pid_t detached_pid; /* a daemonized master, not our child */

static void teardown(void)
{
    if (detached_pid > 0) {
        /* Not in our process group: stop it and its workers by pid. */
        struct mb_test_shm s = {0};
        if (gw)
            mb_test_shm_read(gw, &s);
        kill(detached_pid, SIGKILL);
        for (size_t i = 0; i < s.n; i++)
            if (s.w[i].pid > 0 && mb_test_pid_alive(s.w[i].pid))
                kill(s.w[i].pid, SIGKILL);
        mb_test_shm_clear(&s);
        detached_pid = 0;
    }
    mb_test_daemon_free(&gw);
}

#define CLI_TEST(name) Test(cli, name, .fini = teardown, .timeout = 40)

static char bin[PATH_MAX];

/* Runs mcp-bridge with args (NULL-terminated); returns its exit status and
 * its combined output in *out (caller frees). */
static int run_cli(char **out, const char *const *args)
{
    const char *argv[16];
    size_t n = 0;
    mb_test_bin_path(bin, sizeof(bin), "mcp-bridge");
    argv[n++] = bin;
    for (size_t i = 0; args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    int status = 0;
    int rc = mb_test_run((char *const *)argv, RUN_MS, &status, out);
    cr_assert_eq(rc, 0, "%s did not finish: %s", bin, strerror(-rc));
    cr_assert(WIFEXITED(status), "%s died with signal %d", bin,
              WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    if (!*out)
        *out = strdup("");
    return WEXITSTATUS(status);
}

static void new_daemon(const struct mb_test_conf *conf)
{
    int rc = mb_test_daemon_new(&gw, conf);
    cr_assert_eq(rc, 0, "preparing a daemon: %s", strerror(-rc));
}

static void start(const struct mb_test_conf *conf)
{
    mb_test_must_start(&gw, conf);
}

static void finish(void)
{
    mb_test_must_finish(gw);
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

CLI_TEST(check_good_configuration)
{
    new_daemon(NULL);
    char *out;
    int st = run_cli(&out, (const char *[]){"-t", "-c", gw->conf_path, NULL});
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    cr_assert_not_null(strstr(out, "configuration ok"), "output: %s", out);
    free(out);
}

/* "PATH:LINE:COL: " at the start of some line of out; returns COL or -1. */
static int error_column(const char *out, const char *path, int line)
{
    char prefix[PATH_MAX + 32];
    snprintf(prefix, sizeof(prefix), "%s:%d:", path, line);
    for (const char *p = strstr(out, prefix); p; p = strstr(p + 1, prefix)) {
        if (p != out && p[-1] != '\n' && p[-1] != ' ')
            continue;
        char *end;
        long col = strtol(p + strlen(prefix), &end, 10);
        if (end != p + strlen(prefix) && end[0] == ':' && end[1] == ' ')
            return (int)col;
    }
    return -1;
}

CLI_TEST(check_bad_value_names_file_line_column_and_key)
{
    new_daemon(NULL);
    cr_assert_eq(mb_test_daemon_write_conf_text(gw, "workers: 1\n"
                                                    "server:\n"
                                                    "  max_message_size: big\n"),
                 0);
    char *out;
    int st = run_cli(&out, (const char *[]){"-t", "-c", gw->conf_path, NULL});
    cr_assert_eq(st, 1, "exit %d: %s", st, out);
    /* The position of the offending value ("big" starts at column 21). */
    cr_assert_eq(error_column(out, gw->conf_path, 3), 21, "no \"%s:3:21: \" in: %s", gw->conf_path,
                 out);
    cr_assert_not_null(strstr(out, "server.max_message_size"), "key path missing: %s", out);
    cr_assert_null(strstr(out, "configuration ok"), "output: %s", out);
    free(out);
}

CLI_TEST(check_unknown_key_names_file_line_column)
{
    new_daemon(NULL);
    cr_assert_eq(mb_test_daemon_write_conf_text(gw, "workers: 1\n"
                                                    "server:\n"
                                                    "  paths: [/]\n"
                                                    "  listen_typo: 1\n"),
                 0);
    char *out;
    int st = run_cli(&out, (const char *[]){"-t", "-c", gw->conf_path, NULL});
    cr_assert_eq(st, 1, "exit %d: %s", st, out);
    cr_assert_eq(error_column(out, gw->conf_path, 4), 3, "no \"%s:4:3: \" in: %s", gw->conf_path,
                 out);
    cr_assert_not_null(strstr(out, "listen_typo"), "the unknown key is not named: %s", out);
    free(out);
}

CLI_TEST(check_missing_file_fails)
{
    new_daemon(NULL);
    char missing[PATH_MAX];
    snprintf(missing, sizeof(missing), "%s/does-not-exist.yaml", gw->dir);
    char *out;
    int st = run_cli(&out, (const char *[]){"-t", "-c", missing, NULL});
    cr_assert_eq(st, 1, "exit %d: %s", st, out);
    cr_assert_not_null(strstr(out, missing), "the file is not named: %s", out);
    free(out);
}

CLI_TEST(version_help_and_usage_errors)
{
    char *out;
    int st = run_cli(&out, (const char *[]){"-v", NULL});
    cr_assert_eq(st, 0, "-v exit %d: %s", st, out);
    cr_assert_not_null(strstr(out, MB_VERSION), "-v does not print %s: %s", MB_VERSION, out);
    free(out);

    st = run_cli(&out, (const char *[]){"-h", NULL});
    cr_assert_eq(st, 0, "-h exit %d: %s", st, out);
    cr_assert(strstr(out, "usage") || strstr(out, "Usage"), "-h: %s", out);
    for (const char *const *o = (const char *[]){"-c", "-t", "-g", "-p", "-s", NULL}; *o; o++)
        cr_assert_not_null(strstr(out, *o), "-h does not document %s: %s", *o, out);
    free(out);

    st = run_cli(&out, (const char *[]){"-Z", NULL});
    cr_assert_eq(st, 2, "unknown option: exit %d: %s", st, out);
    free(out);

    st = run_cli(&out, (const char *[]){"--no-such-option", NULL});
    cr_assert_eq(st, 2, "unknown long option: exit %d: %s", st, out);
    free(out);

    st = run_cli(&out, (const char *[]){"-s", "frobnicate", NULL});
    cr_assert_eq(st, 2, "-s frobnicate: exit %d: %s", st, out);
    free(out);

    st = run_cli(&out, (const char *[]){"-c", NULL});
    cr_assert_eq(st, 2, "-c without a file: exit %d: %s", st, out);
    free(out);
}

CLI_TEST(signal_without_a_running_master_fails)
{
    new_daemon(NULL);
    char *out;
    int st = run_cli(&out, (const char *[]){"-c", gw->conf_path, "-s", "stop", NULL});
    cr_assert_eq(st, 1, "exit %d: %s", st, out);
    cr_assert_neq(out[0], '\0', "no message");
    free(out);
}

CLI_TEST(signal_stop_stops_the_running_master)
{
    start(NULL);
    cr_assert(file_exists(gw->pid_path), "no pid file %s", gw->pid_path);
    char *pidtext = mb_test_read_file(gw->pid_path, NULL);
    cr_assert_not_null(pidtext);
    cr_assert_eq(atoi(pidtext), gw->pid, "pid file says %s, master is %d", pidtext, gw->pid);
    free(pidtext);

    char *out;
    int st = run_cli(&out, (const char *[]){"-c", gw->conf_path, "-s", "stop", NULL});
    cr_assert_eq(st, 0, "-s stop: exit %d: %s", st, out);
    free(out);
    cr_assert_eq(mb_test_daemon_wait_exit(gw, 5000), 0, "the master did not stop");
    cr_assert(WIFEXITED(gw->status) && WEXITSTATUS(gw->status) == 0, "master wait status %#x",
              gw->status);
    cr_assert(!file_exists(gw->pid_path), "pid file left behind");
    finish();
}

static bool all_new(const struct mb_test_shm *s, const pid_t *old, size_t nold)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->w[i].state, "running") != 0)
            continue;
        for (size_t k = 0; k < nold; k++)
            if (s->w[i].pid == old[k])
                return false;
    }
    return true;
}

CLI_TEST(signal_reload_starts_new_workers)
{
    start(NULL);
    struct mb_test_shm s;
    cr_assert_eq(mb_test_shm_wait_running(gw, 2, 0, &s, 5000), 0, "dump: %s", s.raw);
    struct mb_test_worker run[2];
    mb_test_shm_running(&s, run, 2);
    pid_t old[2] = {run[0].pid, run[1].pid};
    uint64_t gen = run[0].generation;
    mb_test_shm_clear(&s);

    char *out;
    int st = run_cli(&out, (const char *[]){"-c", gw->conf_path, "-s", "reload", NULL});
    cr_assert_eq(st, 0, "-s reload: exit %d: %s", st, out);
    free(out);
    int rc = mb_test_shm_wait_running(gw, 2, gen + 1, &s, 8000);
    cr_assert_eq(rc, 0, "no generation %llu of 2 running workers: %s", (unsigned long long)gen + 1,
                 s.raw);
    cr_assert(all_new(&s, old, 2), "a running worker kept its pid: %s", s.raw);
    mb_test_shm_clear(&s);
    cr_assert_eq(gw->pid > 0 && mb_test_pid_alive(gw->pid), true, "the master went away");
    finish();
    /* The master still knows where its pid file is after a reload. */
    cr_assert(!file_exists(gw->pid_path), "pid file left behind after reload and stop");
}

CLI_TEST(signal_quit_stops_gracefully)
{
    start(NULL);
    char *out;
    int st = run_cli(&out, (const char *[]){"-c", gw->conf_path, "-s", "quit", NULL});
    cr_assert_eq(st, 0, "-s quit: exit %d: %s", st, out);
    free(out);
    cr_assert_eq(mb_test_daemon_wait_exit(gw, 8000), 0, "the master did not stop");
    cr_assert(WIFEXITED(gw->status) && WEXITSTATUS(gw->status) == 0, "master wait status %#x",
              gw->status);
    cr_assert(!file_exists(gw->pid_path), "pid file left behind");
    finish();
}

static bool log_file_has_content(void *arg)
{
    struct stat st;
    return stat((const char *)arg, &st) == 0 && st.st_size > 0;
}

CLI_TEST(signal_reopen_reopens_the_error_log)
{
    start(NULL);
    char rotated[PATH_MAX + 8];
    snprintf(rotated, sizeof(rotated), "%s.1", gw->log_path);
    cr_assert_eq(rename(gw->log_path, rotated), 0, "rename: %s", strerror(errno));
    char *out;
    int st = run_cli(&out, (const char *[]){"-c", gw->conf_path, "-s", "reopen", NULL});
    cr_assert_eq(st, 0, "-s reopen: exit %d: %s", st, out);
    free(out);
    /* The master reopens by name; a reload then writes lines into the new file. */
    mb_test_sleep_ms(300);
    st = run_cli(&out, (const char *[]){"-c", gw->conf_path, "-s", "reload", NULL});
    cr_assert_eq(st, 0, "-s reload: exit %d: %s", st, out);
    free(out);
    cr_assert_eq(mb_test_wait_until(log_file_has_content, gw->log_path, 5000, 50), 0,
                 "nothing was written to a new %s after reopen", gw->log_path);
    finish();
}

CLI_TEST(pid_option_overrides_pid_file)
{
    new_daemon(NULL);
    char alt[PATH_MAX];
    snprintf(alt, sizeof(alt), "%s/other.pid", gw->dir);
    int rc = mb_test_daemon_spawn(gw, (const char *[]){"-p", alt, NULL}, 10000);
    cr_assert_eq(rc, 0, "daemon with -p did not start: %s", strerror(-rc));
    char *pidtext = NULL;
    for (int i = 0; i < 100 && !pidtext; i++) {
        pidtext = mb_test_read_file(alt, NULL);
        if (!pidtext)
            mb_test_sleep_ms(20);
    }
    cr_assert_not_null(pidtext, "no pid file at %s", alt);
    cr_assert_eq(atoi(pidtext), gw->pid, "%s says %s, master is %d", alt, pidtext, gw->pid);
    free(pidtext);
    cr_assert(!file_exists(gw->pid_path), "pid_file from the config written despite -p");

    char *out;
    int st = run_cli(&out, (const char *[]){"-c", gw->conf_path, "-p", alt, "-s", "stop", NULL});
    cr_assert_eq(st, 0, "-p ... -s stop: exit %d: %s", st, out);
    free(out);
    cr_assert_eq(mb_test_daemon_wait_exit(gw, 5000), 0, "the master did not stop");
    cr_assert(!file_exists(alt), "pid file %s left behind", alt);
    finish();
}

CLI_TEST(without_foreground_it_detaches_once_serving)
{
    new_daemon(NULL);
    char *out;
    int st = run_cli(&out, (const char *[]){"-c", gw->conf_path, NULL});
    char *pidtext = mb_test_read_file(gw->pid_path, NULL);
    if (pidtext)
        detached_pid = atoi(pidtext);
    free(pidtext);
    cr_assert_eq(st, 0, "starting as a daemon: exit %d: %s", st, out);
    free(out);
    cr_assert_gt(detached_pid, 0, "no pid file after the start returned");
    cr_assert(mb_test_pid_alive(detached_pid), "the daemon %d is not running", detached_pid);
    /* It serves right away: the start command returned only once it did. */
    struct mb_wsclient *c = NULL;
    char err[256];
    int rc = mb_wsclient_connect(&c, gw->port, "/", NULL, 5000, err, sizeof(err));
    cr_assert_eq(rc, 0, "connect: %s", err);
    struct mb_wsmsg m;
    rc = mb_wsclient_call(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}", &m, 5000);
    mb_wsclient_free(&c);
    cr_assert(rc == 0 && m.opcode == MB_WS_OP_TEXT, "ping: rc %d opcode %d", rc, m.opcode);

    st = run_cli(&out, (const char *[]){"-c", gw->conf_path, "-s", "stop", NULL});
    cr_assert_eq(st, 0, "-s stop: exit %d: %s", st, out);
    free(out);
    int64_t deadline = mb_test_now_ms() + 5000;
    while (mb_test_pid_alive(detached_pid) && mb_test_now_ms() < deadline)
        mb_test_sleep_ms(20);
    cr_assert(!mb_test_pid_alive(detached_pid), "the detached master did not stop");
    detached_pid = 0;
}
