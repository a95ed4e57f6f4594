/*
 * tests/support/daemon_assert.h — the start and the end of every
 * integration test that runs the daemon, as Criterion assertions (header
 * only: the support library itself does not depend on Criterion).
 *
 * mb_test_must_start() starts a daemon or fails the test with the master's
 * output and error log. mb_test_must_finish() stops it and fails unless the
 * master exited 0 on SIGTERM with no sanitizer report in its output — this is
 * what makes `make asan` catch memory errors in the daemon.
 */
#ifndef MB_TESTS_DAEMON_ASSERT_H
#define MB_TESTS_DAEMON_ASSERT_H

#include <criterion/criterion.h>
#include <string.h>

#include "tests/support/daemon.h"

static inline void mb_test_must_start(struct mb_test_daemon **gw, const struct mb_test_conf *conf)
{
    int rc = mb_test_daemon_start(gw, conf);
    if (rc) {
        char *out = *gw ? mb_test_daemon_output(*gw) : NULL;
        char *log = *gw ? mb_test_daemon_log(*gw) : NULL;
        cr_assert_fail("daemon did not start: %s\n--- output:\n%s\n--- error log:\n%s",
                       strerror(-rc), out ? out : "", log ? log : "");
    }
}

/* As mb_test_must_finish(), allowing the master ms to exit (tests whose
 * backends take longer to wind down give it more). */
static inline void mb_test_must_finish_within(struct mb_test_daemon *gw, int ms)
{
    char why[4096];
    cr_assert_eq(mb_test_daemon_finish(gw, ms, why, sizeof(why)), 0, "%s", why);
}

static inline void mb_test_must_finish(struct mb_test_daemon *gw)
{
    mb_test_must_finish_within(gw, 5000);
}

#endif
