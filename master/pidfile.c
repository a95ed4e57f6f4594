/*
 * master/pidfile.c — see pidfile.h. The file holds the decimal pid and a
 * newline, as init scripts expect.
 */
#include "master/pidfile.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/errors.h"

pid_t mb_pidfile_read(const char *path, char *err, size_t errlen)
{
    char buf[32];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        snprintf(err, errlen, "pid file %s: %s", path, strerror(errno));
        return MB_ERR;
    }
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        snprintf(err, errlen, "pid file %s: empty", path);
        return MB_ERR;
    }
    buf[n] = '\0';
    char *end;
    long pid = strtol(buf, &end, 10);
    if (pid <= 0 || (*end != '\n' && *end != '\0')) {
        snprintf(err, errlen, "pid file %s: not a pid: \"%.*s\"", path, (int)strcspn(buf, "\n"),
                 buf);
        return MB_ERR;
    }
    return (pid_t)pid;
}

int mb_pidfile_write(const char *path, char *err, size_t errlen)
{
    char tmp[4096], buf[32];
    pid_t old = mb_pidfile_read(path, tmp, sizeof(tmp));
    if (old > 0 && old != getpid() && kill(old, 0) == 0) {
        snprintf(err, errlen, "pid file %s: mcp-bridge is already running as pid %d", path,
                 (int)old);
        return MB_ERR;
    }
    snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd == -1) {
        snprintf(err, errlen, "pid file %s: %s", tmp, strerror(errno));
        return MB_ERR;
    }
    int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    int ok = write(fd, buf, n) == n;
    ok = (close(fd) == 0) && ok;
    if (!ok || rename(tmp, path) == -1) {
        snprintf(err, errlen, "pid file %s: %s", path, strerror(errno));
        unlink(tmp);
        return MB_ERR;
    }
    return MB_OK;
}

void mb_pidfile_remove(const char *path)
{
    char err[256];
    if (mb_pidfile_read(path, err, sizeof(err)) == getpid())
        unlink(path);
}
