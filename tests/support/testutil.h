/*
 * tests/support/testutil.h — small helpers every integration test needs:
 * monotonic time, waiting for a condition with a deadline, reading a file,
 * telling a live process from a dead (or zombie) one, running a command with
 * bounded time and captured output, and extracting one member of a JSON
 * object as the raw text that was sent (ids must be compared byte for byte,
 * never through a double).
 */
#ifndef MB_TESTS_TESTUTIL_H
#define MB_TESTS_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t mb_test_now_ms(void);
void mb_test_sleep_ms(int ms);

/* Calls cond(arg) every interval_ms until it returns true or timeout_ms has
 * passed. Returns 0 when the condition held, -ETIMEDOUT otherwise (the
 * condition is evaluated one last time at the deadline). */
int mb_test_wait_until(bool (*cond)(void *arg), void *arg, int timeout_ms, int interval_ms);

/* Reads a whole file into a NUL-terminated malloc'd buffer (*lenp may be
 * NULL). Returns NULL with errno set when it cannot. */
char *mb_test_read_file(const char *path, size_t *lenp);
/* Writes text to path (truncating). Returns 0 or -errno. */
int mb_test_write_file(const char *path, const char *text);

/* True when pid names a process that runs (a zombie counts as dead: it has
 * exited and only waits to be reaped). */
bool mb_test_pid_alive(pid_t pid);

/*
 * Runs argv[0] (a path) with argv, stdin from /dev/null and stdout+stderr
 * captured together into a malloc'd NUL-terminated *output (may be NULL to
 * discard). Waits at most timeout_ms, then kills it with SIGKILL. *status
 * receives the wait status. Returns 0 when the command ran and exited (or was
 * killed: check *status), -ETIMEDOUT when it had to be killed, or -errno.
 */
int mb_test_run(char *const argv[], int timeout_ms, int *status, char **output);

/*
 * Finds member key in the top-level JSON object text and copies its value as
 * the raw bytes that appear in text (e.g. `1000000000000000`, `"abc"`,
 * `{"a":1}`), without surrounding whitespace. Returns 0, -ENOENT when the
 * object has no such member, -EINVAL when text is not an object it can scan,
 * -ENOSPC when out is too small.
 */
int mb_test_json_raw(const char *text, const char *key, char *out, size_t cap);

#endif
