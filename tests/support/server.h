/*
 * tests/support/server.h — a third-party server for a test (memcached,
 * prometheus, ...): started as a child that dies with the test process
 * whatever happens to it (PR_SET_PDEATHSIG), ready once its loopback port
 * accepts, stopped by pid.
 */
#ifndef MB_TESTS_SERVER_H
#define MB_TESTS_SERVER_H

#include <stdint.h>
#include <sys/types.h>

/* Runs argv (argv[0] looked up in PATH) with stdin from /dev/null and
 * stdout+stderr appended to log_path (NULL = /dev/null), then waits at most
 * timeout_ms until 127.0.0.1:port accepts a connection. Returns the pid, or
 * -ECHILD when the server exited first, -ETIMEDOUT (it is then stopped), or
 * another -errno. */
pid_t mb_test_server_start(char *const argv[], uint16_t port, const char *log_path, int timeout_ms);
/* SIGTERM, up to grace_ms, then SIGKILL; reaps; sets *pid to 0. Safe on 0. */
void mb_test_server_stop(pid_t *pid, int grace_ms);

#endif
