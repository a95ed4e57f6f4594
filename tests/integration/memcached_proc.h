/*
 * tests/integration/memcached_proc.h — a real memcached for the rate-limit
 * tests (header only, static functions): started on 127.0.0.1 and a port
 * chosen at run time (`memcached -l 127.0.0.1 -p PORT -U 0`), waited for
 * until it accepts, and stopped by its pid (SIGTERM, bounded wait, SIGKILL).
 * It runs in the test's process group, so a test that dies takes it along
 * only if Criterion kills the group; a Criterion timeout is the bound.
 */
#ifndef MB_TESTS_MEMCACHED_PROC_H
#define MB_TESTS_MEMCACHED_PROC_H

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/net.h"
#include "tests/support/server.h"
#include "tests/support/testutil.h"

struct mb_test_memcached {
    pid_t pid;
    uint16_t port;
};

/* Starts memcached on port (0 = a free one). Returns 0 or -errno. */
static inline int mb_test_memcached_start(struct mb_test_memcached *m, uint16_t port)
{
    char p[16];
    m->port = port ? port : (uint16_t)mb_test_free_port();
    snprintf(p, sizeof(p), "%u", m->port);
    char *argv[] = {"memcached", "-l", "127.0.0.1", "-p", p,   "-U",
                    "0",         "-u", "root",      "-t", "1", NULL};
    pid_t pid = mb_test_server_start(argv, m->port, NULL, 5000);
    m->pid = pid > 0 ? pid : 0;
    return pid > 0 ? 0 : (int)pid;
}

/* Stops it by pid: SIGTERM, up to 3 s, then SIGKILL; reaps it. */
static inline void mb_test_memcached_stop(struct mb_test_memcached *m)
{
    mb_test_server_stop(&m->pid, 3000);
}

#endif
