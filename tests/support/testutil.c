/*
 * tests/support/testutil.c — see testutil.h. Everything here is bounded in
 * time: a test that waits for something that never happens fails with a
 * timeout instead of hanging the suite.
 */
#include "tests/support/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int64_t mb_test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mb_test_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

int mb_test_wait_until(bool (*cond)(void *arg), void *arg, int timeout_ms, int interval_ms)
{
    int64_t deadline = mb_test_now_ms() + timeout_ms;
    for (;;) {
        if (cond(arg))
            return 0;
        int64_t left = deadline - mb_test_now_ms();
        if (left <= 0)
            return cond(arg) ? 0 : -ETIMEDOUT;
        mb_test_sleep_ms(left < interval_ms ? (int)left : interval_ms);
    }
}

char *mb_test_read_file(const char *path, size_t *lenp)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        goto fail;
    for (;;) {
        if (cap - len < 2) {
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                goto fail;
            buf = nb;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f))
        goto fail;
    fclose(f);
    buf[len] = '\0';
    if (lenp)
        *lenp = len;
    return buf;
fail:
    free(buf);
    fclose(f);
    return NULL;
}

int mb_test_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    size_t len = strlen(text);
    int rc = fwrite(text, 1, len, f) == len ? 0 : -EIO;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    return rc;
}

bool mb_test_pid_alive(pid_t pid)
{
    if (pid <= 0 || kill(pid, 0) == -1)
        return false;
    /* kill(pid, 0) succeeds on a zombie; /proc tells its state. The state is
     * the field after the parenthesised command name, which may contain
     * spaces or parentheses itself, hence the last ')'. */
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return errno != ENOENT;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    char *rp = strrchr(buf, ')');
    if (!rp || rp[1] != ' ')
        return true;
    return rp[2] != 'Z' && rp[2] != 'X';
}

int mb_test_run(char *const argv[], int timeout_ms, int *status, char **output)
{
    int pfd[2];
    if (output)
        *output = NULL;
    if (pipe2(pfd, O_CLOEXEC) == -1)
        return -errno;
    pid_t pid = fork();
    if (pid == -1) {
        int e = errno;
        close(pfd[0]);
        close(pfd[1]);
        return -e;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull != -1)
            dup2(devnull, 0);
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        close_range(3, ~0U, 0);
        execv(argv[0], argv);
        dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(pfd[1]);

    int64_t deadline = mb_test_now_ms() + timeout_ms;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    bool timed_out = false, eof = false;
    while (!eof) {
        int64_t left = deadline - mb_test_now_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        int r = poll(&p, 1, (int)left);
        if (r == -1 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        if (buf && cap - len < 1024) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
            } else {
                buf = nb;
                cap *= 2;
            }
        }
        char sink[1024];
        ssize_t n = buf ? read(pfd[0], buf + len, cap - len - 1) : read(pfd[0], sink, sizeof(sink));
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0)
            eof = true;
        else if (buf)
            len += (size_t)n;
    }
    close(pfd[0]);

    /* The output ended (or time ran out); the process may still be running. */
    int st = 0;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            break;
        if (w == -1 && errno != EINTR)
            break;
        if (timed_out || mb_test_now_ms() >= deadline) {
            timed_out = true;
            kill(pid, SIGKILL);
            while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
                ;
            break;
        }
        mb_test_sleep_ms(5);
    }
    if (status)
        *status = st;
    if (buf)
        buf[len] = '\0';
    if (output)
        *output = buf;
    else
        free(buf);
    return timed_out ? -ETIMEDOUT : 0;
}

/* ------------------------------------------------------------ raw JSON */

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    return p;
}

/* p at '"': returns the byte after the closing quote, or NULL. */
static const char *skip_string(const char *p)
{
    for (p++; *p; p++) {
        if (*p == '\\') {
            if (!p[1])
                return NULL;
            p++;
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return NULL;
}

/* p at the first byte of a value: returns the byte after it, or NULL. */
static const char *skip_value(const char *p)
{
    if (*p == '"')
        return skip_string(p);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (*p) {
            if (*p == '"') {
                p = skip_string(p);
                if (!p)
                    return NULL;
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if (*p == '}' || *p == ']') {
                if (--depth == 0)
                    return p + 1;
            }
            p++;
        }
        return NULL;
    }
    const char *s = p;
    while (*p && !strchr(",}] \t\r\n", *p))
        p++;
    return p == s ? NULL : p;
}

int mb_test_json_raw(const char *text, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    const char *p = skip_ws(text);
    if (*p != '{')
        return -EINVAL;
    p = skip_ws(p + 1);
    if (*p == '}')
        return -ENOENT;
    for (;;) {
        if (*p != '"')
            return -EINVAL;
        const char *ks = p + 1, *ke = skip_string(p);
        if (!ke)
            return -EINVAL;
        /* Keys are compared as written; the keys tests look up need no escapes. */
        bool match = (size_t)(ke - 1 - ks) == klen && memcmp(ks, key, klen) == 0;
        p = skip_ws(ke);
        if (*p != ':')
            return -EINVAL;
        p = skip_ws(p + 1);
        const char *vs = p, *ve = skip_value(p);
        if (!ve)
            return -EINVAL;
        if (match) {
            size_t vl = (size_t)(ve - vs);
            if (vl + 1 > cap)
                return -ENOSPC;
            memcpy(out, vs, vl);
            out[vl] = '\0';
            return 0;
        }
        p = skip_ws(ve);
        if (*p == '}')
            return -ENOENT;
        if (*p != ',')
            return -EINVAL;
        p = skip_ws(p + 1);
    }
}
