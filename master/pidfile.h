/*
 * master/pidfile.h — the pid file: written by the running master, read by
 * `mcp-bridge -s SIGNAL` and init scripts, removed on exit.
 */
#ifndef MB_MASTER_PIDFILE_H
#define MB_MASTER_PIDFILE_H

#include <sys/types.h>

/* Writes getpid() to path (via a temp file and rename). Refuses with MB_ERR
 * and a message in err when the file names a process that is alive. */
int mb_pidfile_write(const char *path, char *err, size_t errlen);
/* Reads the pid; returns it (> 0) or MB_ERR with err filled. */
pid_t mb_pidfile_read(const char *path, char *err, size_t errlen);
/* Removes path if it still holds our pid. */
void mb_pidfile_remove(const char *path);

#endif
