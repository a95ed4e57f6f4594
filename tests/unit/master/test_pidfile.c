/*
 * tests/unit/master/test_pidfile.c — master/pidfile.c: write, read back,
 * refuse a live pid, take over a stale one, remove only our own.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "master/pidfile.h"

static char dir[64];
static char path[128];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/mb-pidfile-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/mcp-bridge.pid", dir);
}

static void teardown(void)
{
    unlink(path);
    rmdir(dir);
}

static void put(const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

TestSuite(pidfile, .init = setup, .fini = teardown);

Test(pidfile, write_then_read_gives_our_pid)
{
    char err[256];
    cr_assert_eq(mb_pidfile_write(path, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(mb_pidfile_read(path, err, sizeof(err)), getpid());
}

Test(pidfile, refuses_when_another_live_process_owns_it)
{
    char err[256], text[32];
    pid_t child = fork();
    if (child == 0) {
        pause();
        _exit(0);
    }
    snprintf(text, sizeof(text), "%d\n", (int)child);
    put(text);
    int rc = mb_pidfile_write(path, err, sizeof(err));
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    cr_assert_lt(rc, 0);
    cr_assert(strstr(err, "already running") != NULL, "%s", err);
}

Test(pidfile, takes_over_a_stale_pid)
{
    char err[256], text[32];
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    waitpid(child, NULL, 0);
    snprintf(text, sizeof(text), "%d\n", (int)child);
    put(text);
    cr_assert_eq(mb_pidfile_write(path, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(mb_pidfile_read(path, err, sizeof(err)), getpid());
}

Test(pidfile, garbage_is_an_error_that_quotes_it)
{
    char err[256];
    put("12abc\n");
    cr_assert_lt(mb_pidfile_read(path, err, sizeof(err)), 0);
    cr_assert(strstr(err, "12abc") != NULL, "%s", err);
}

Test(pidfile, remove_leaves_a_foreign_file)
{
    char err[256];
    put("1\n");
    mb_pidfile_remove(path);
    cr_assert_eq(mb_pidfile_read(path, err, sizeof(err)), 1);
    cr_assert_eq(mb_pidfile_write(path, err, sizeof(err)), -1000 /* MB_ERR: pid 1 is alive */);
    put("");
    cr_assert_eq(mb_pidfile_write(path, err, sizeof(err)), 0, "%s", err);
    mb_pidfile_remove(path);
    cr_assert_eq(access(path, F_OK), -1);
}
