/*
 * tests/unit/shm/shm_test_util.h — helpers shared by the shm unit tests: a
 * unique region path per test (tests run in parallel processes) that is
 * removed again, and a region created with a given worker capacity.
 */
#ifndef MB_TESTS_UNIT_SHM_UTIL_H
#define MB_TESTS_UNIT_SHM_UTIL_H

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "shm/shm.h"

/* fork() for the multi-process tests: the child dies with the test process
 * (a test that times out or crashes leaves no spinning child behind). */
static inline pid_t shm_test_fork(void)
{
    pid_t pid = fork();
    if (pid == 0)
        prctl(PR_SET_PDEATHSIG, SIGKILL);
    return pid;
}

static inline void shm_test_path(char *buf, size_t len, const char *tag)
{
    static int n;
    snprintf(buf, len, "/tmp/mb-shm-test-%s-%d-%d", tag, (int)getpid(), n++);
}

static inline struct mb_shm *shm_test_create_rl(const char *path, uint32_t capacity,
                                                uint32_t rl_capacity)
{
    struct mb_shm_params p = {.worker_capacity = capacity, .ratelimit_capacity = rl_capacity};
    struct mb_shm *shm = NULL;
    char err[256] = "";
    int rc = mb_shm_create(path, &p, &shm, err, sizeof(err));
    cr_assert_eq(rc, 0, "mb_shm_create: %s", err);
    cr_assert_not_null(shm);
    return shm;
}

static inline struct mb_shm *shm_test_create(const char *path, uint32_t capacity)
{
    return shm_test_create_rl(path, capacity, 0);
}

#endif
