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
    pid_t pid = fork();
    if (pid == -1)
        return -errno;
    if (pid == 0) {
        /* Dies with the test process, whatever happens to it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execlp("memcached", "memcached", "-l", "127.0.0.1", "-p", p, "-U", "0", "-u", "root", "-t",
               "1", (char *)NULL);
        _exit(127);
    }
    m->pid = pid;
    int64_t deadline = mb_test_now_ms() + 5000;
    while (mb_test_now_ms() < deadline) {
        int fd = mb_test_tcp_connect(m->port, 200);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            m->pid = 0;
            return -ECHILD;
        }
        mb_test_sleep_ms(20);
    }
    return -ETIMEDOUT;
}

/* Stops it by pid: SIGTERM, up to 3 s, then SIGKILL; reaps it. */
static inline void mb_test_memcached_stop(struct mb_test_memcached *m)
{
    if (m->pid <= 0)
        return;
    kill(m->pid, SIGTERM);
    for (int i = 0; i < 300; i++) {
        if (waitpid(m->pid, NULL, WNOHANG) == m->pid) {
            m->pid = 0;
            return;
        }
        mb_test_sleep_ms(10);
    }
    kill(m->pid, SIGKILL);
    waitpid(m->pid, NULL, 0);
    m->pid = 0;
}

#endif
