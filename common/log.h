/*
 * common/log.h — the error log shared by the master, the workers and tools.
 *
 * One line per event: "2026-11-27T09:30:00.123Z [error] worker 1: what: why".
 * Every process writes whole lines with one write(2) to the same file (opened
 * O_APPEND), so lines of different processes never interleave. Before
 * mb_log_open() the log is stderr at level info. mb_log_reopen() reopens the
 * file after rotation (USR1).
 */
#ifndef MB_COMMON_LOG_H
#define MB_COMMON_LOG_H

#include <stdarg.h>

enum mb_log_level { MB_LOG_ERROR = 0, MB_LOG_WARN = 1, MB_LOG_INFO = 2, MB_LOG_DEBUG = 3 };

/* path NULL or "stderr" logs to stderr. Returns 0, or -errno (the old log
 * stays in use). */
int mb_log_open(const char *path, int level);
int mb_log_reopen(void);
void mb_log_set_level(int level);
int mb_log_level(void);
/* Parses "error|warn|info|debug"; returns the level or -1. */
int mb_log_level_parse(const char *name);
const char *mb_log_level_name(int level);
/* Names this process on every line: ("master", -1) or ("worker", 3). */
void mb_log_set_role(const char *role, int slot);
/* The fd lines go to, e.g. to dup2 onto stderr after daemonizing. */
int mb_log_fd(void);

void mb_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mb_logv(int level, const char *fmt, va_list ap);

#define mb_log_error(...) mb_log(MB_LOG_ERROR, __VA_ARGS__)
#define mb_log_warn(...)  mb_log(MB_LOG_WARN, __VA_ARGS__)
#define mb_log_info(...)  mb_log(MB_LOG_INFO, __VA_ARGS__)
#define mb_log_debug(...)                                                                          \
    do {                                                                                           \
        if (mb_log_level() >= MB_LOG_DEBUG)                                                        \
            mb_log(MB_LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)

#endif
