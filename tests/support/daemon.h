/*
 * tests/support/daemon.h — runs the real mcp-bridge for an integration test.
 *
 * Each daemon gets its own port (chosen at run time), its own temporary
 * directory (gateway.yaml, the pid file, the error log, the master's
 * stdout/stderr) and its own shm file in /dev/shm, so Criterion can run tests
 * in parallel. The binary is $MB_BUILD_DIR/mcp-bridge (default build/).
 *
 * Nothing outlives the test: the master runs in a process group of its own
 * (its workers inherit it), and a small guard process, forked beside it,
 * kills that group with SIGKILL and removes the files as soon as the test
 * process goes away without having stopped the daemon (a crash, a Criterion
 * timeout). mb_test_daemon_free() stops everything in order: SIGTERM, a
 * bounded wait, SIGKILL, reap.
 */
#ifndef MB_TESTS_DAEMON_H
#define MB_TESTS_DAEMON_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* What the generated gateway.yaml says; NULL/0 fields take the default. */
struct mb_test_conf {
    int workers;                  /* default 2 */
    const char *max_message_size; /* default "1MB" */
    const char *shutdown_timeout; /* default "3s" */
    const char *log_level;        /* default "info" */
    const char *extra;            /* YAML appended at top level, verbatim */
};

struct mb_test_daemon {
    pid_t pid;   /* the master, a child of the test; 0 once reaped */
    pid_t pgid;  /* its process group (its pid), kept after it was reaped */
    int status;  /* its wait status once reaped */
    pid_t guard; /* the guard process */
    int guard_fd;
    uint16_t port;
    char bin_dir[PATH_MAX]; /* $MB_BUILD_DIR */
    char dir[64];           /* the temporary directory, /tmp/mb-integ-XXXXXX */
    char conf_path[PATH_MAX];
    char pid_path[PATH_MAX];
    char log_path[PATH_MAX]; /* logging.error_log */
    char out_path[PATH_MAX]; /* the master's stdout and stderr */
    char shm_path[PATH_MAX];
};

/* Prepares paths, a free port and the temporary directory, and writes
 * gateway.yaml from conf; does not start anything. Returns 0 or -errno. */
int mb_test_daemon_new(struct mb_test_daemon **out, const struct mb_test_conf *conf);
/* (Re)writes gateway.yaml from conf (same port, paths) / with text verbatim. */
int mb_test_daemon_write_conf(struct mb_test_daemon *d, const struct mb_test_conf *conf);
int mb_test_daemon_write_conf_text(struct mb_test_daemon *d, const char *text);
/* The generated YAML for conf (malloc'd), e.g. to build a variant of it. */
char *mb_test_daemon_conf_text(const struct mb_test_daemon *d, const struct mb_test_conf *conf);

/*
 * Spawns `mcp-bridge -g -c gateway.yaml [extra_args...]` (extra_args may be
 * NULL; NULL-terminated) and waits until the port accepts a TCP connection,
 * at most timeout_ms. Returns 0, or -errno (-ECHILD when the master exited
 * first; its output is in out_path).
 */
int mb_test_daemon_spawn(struct mb_test_daemon *d, const char *const *extra_args, int timeout_ms);
/* mb_test_daemon_new + mb_test_daemon_spawn (10 s) + waiting until the shm
 * dump shows conf->workers running workers (10 s). */
int mb_test_daemon_start(struct mb_test_daemon **out, const struct mb_test_conf *conf);

/* kill(master, sig). Returns 0 or -errno. */
int mb_test_daemon_signal(struct mb_test_daemon *d, int sig);
/* Waits until the master exits by itself, at most timeout_ms; stores the wait
 * status in d->status. Returns 0, or -ETIMEDOUT. */
int mb_test_daemon_wait_exit(struct mb_test_daemon *d, int timeout_ms);
/* Fast stop: SIGTERM, wait up to timeout_ms, then SIGKILL; kills whatever is
 * left of the process group. Returns 0 when it exited on the TERM in time. */
int mb_test_daemon_stop(struct mb_test_daemon *d, int timeout_ms);
/*
 * The end of a test that ran the daemon: stops it (SIGTERM, at most
 * timeout_ms) unless it already exited, then checks that the master exited 0
 * and that nothing in the master's output (where every process's stderr
 * goes) is a sanitizer report. Returns 0, or -1 with what was wrong in why.
 * This is how ASan/UBSan findings in the daemon fail the suite.
 */
int mb_test_daemon_finish(struct mb_test_daemon *d, int timeout_ms, char *why, size_t cap);
/* The first sanitizer report line in the master's output (malloc'd), or NULL. */
char *mb_test_daemon_sanitizer_report(const struct mb_test_daemon *d);
/* True while any process of the daemon's group (master or worker) lives,
 * even after the master was reaped. */
bool mb_test_daemon_group_alive(const struct mb_test_daemon *d);
/* Stops (if needed), removes the temporary files and the shm file, reaps the
 * guard, frees; sets *dp to NULL. Safe on NULL. */
void mb_test_daemon_free(struct mb_test_daemon **dp);

/* The error log / the master's output (malloc'd, "" when absent). */
char *mb_test_daemon_log(const struct mb_test_daemon *d);
char *mb_test_daemon_output(const struct mb_test_daemon *d);
/* True when the error log or the master's output contains needle. */
bool mb_test_daemon_log_contains(const struct mb_test_daemon *d, const char *needle);

/* A path to a program in $MB_BUILD_DIR ("mcp-bridge", "mcp-bridge-shm"). */
void mb_test_bin_path(char *out, size_t cap, const char *program);

/* ---------------------------------------------------------------- shm dump */
#define MB_TEST_MAX_WORKERS 64

struct mb_test_worker {
    int slot;
    pid_t pid;
    uint64_t generation;
    char state[16]; /* lower case, as the dump prints it ("running", ...) */
    unsigned restarts;
    uint64_t connections;
};

struct mb_test_shm {
    size_t n;
    struct mb_test_worker w[MB_TEST_MAX_WORKERS];
    char *raw; /* the dump tool's output, for failure messages */
};

/* Runs `mcp-bridge-shm --json SHM_PATH` and parses its workers array.
 * Returns 0, or -errno (-EPROTO when the output is not the expected JSON). */
int mb_test_shm_read(const struct mb_test_daemon *d, struct mb_test_shm *s);
void mb_test_shm_clear(struct mb_test_shm *s);
/* Records in state "running", copied into out (at most cap). Returns the count. */
size_t mb_test_shm_running(const struct mb_test_shm *s, struct mb_test_worker *out, size_t cap);
/* The record holding pid, or NULL. */
const struct mb_test_worker *mb_test_shm_find_pid(const struct mb_test_shm *s, pid_t pid);
/* Waits until exactly n records are "running" (all of generation gen when
 * gen != 0). Fills s with the last dump read. Returns 0 or -ETIMEDOUT. */
int mb_test_shm_wait_running(const struct mb_test_daemon *d, size_t n, uint64_t gen,
                             struct mb_test_shm *s, int timeout_ms);

#endif
