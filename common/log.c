/*
 * common/log.c — see log.h. Lines are formatted into a stack buffer and
 * written with a single write(2); a line longer than the buffer is cut and
 * ends with "...". Writing never retries for long: a full pipe or disk loses
 * the line rather than stalling an event loop.
 */
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int log_fd = 2;
static int log_level = MB_LOG_INFO;
static char log_path[4096];
static char log_role[32] = "mcp-bridge";
static int log_slot = -1;

static const char *level_names[] = {"error", "warn", "info", "debug"};

static int open_path(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    return fd == -1 ? -errno : fd;
}

int mb_log_open(const char *path, int level)
{
    log_level = level;
    if (path == NULL || strcmp(path, "stderr") == 0) {
        if (log_fd != 2)
            close(log_fd);
        log_fd = 2;
        log_path[0] = '\0';
        return 0;
    }
    int fd = open_path(path);
    if (fd < 0)
        return fd;
    if (log_fd != 2)
        close(log_fd);
    log_fd = fd;
    snprintf(log_path, sizeof(log_path), "%s", path);
    return 0;
}

int mb_log_reopen(void)
{
    if (log_path[0] == '\0')
        return 0;
    int fd = open_path(log_path);
    if (fd < 0)
        return fd;
    if (log_fd != 2)
        close(log_fd);
    log_fd = fd;
    return 0;
}

void mb_log_set_level(int level)
{
    log_level = level;
}

int mb_log_level(void)
{
    return log_level;
}

int mb_log_fd(void)
{
    return log_fd;
}

int mb_log_level_parse(const char *name)
{
    for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

const char *mb_log_level_name(int level)
{
    if (level < 0 || level > MB_LOG_DEBUG)
        return "?";
    return level_names[level];
}

void mb_log_set_role(const char *role, int slot)
{
    snprintf(log_role, sizeof(log_role), "%s", role);
    log_slot = slot;
}

void mb_logv(int level, const char *fmt, va_list ap)
{
    if (level > log_level)
        return;
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ [%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000), mb_log_level_name(level));
    if (log_slot >= 0)
        n += snprintf(line + n, sizeof(line) - n, "%s %d: ", log_role, log_slot);
    else
        n += snprintf(line + n, sizeof(line) - n, "%s: ", log_role);
    int m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    if (m < 0)
        m = 0;
    n += m;
    if (n >= (int)sizeof(line) - 1) {
        n = sizeof(line) - 1;
        memcpy(line + n - 4, "...", 3);
        n -= 1;
    }
    line[n++] = '\n';
    ssize_t w;
    do {
        w = write(log_fd, line, n);
    } while (w == -1 && errno == EINTR);
}

void mb_log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mb_logv(level, fmt, ap);
    va_end(ap);
}
