/*
 * common/errors.h — status codes every module returns (CONVENTIONS rule 4):
 * 0 ok, a negative MB_* value, or -errno. Exit statuses of the processes
 * (rule 10) live here too, because the master interprets the workers'.
 */
#ifndef MB_COMMON_ERRORS_H
#define MB_COMMON_ERRORS_H

#define MB_OK       0
#define MB_ERR      (-1000) /* failed; the reason was logged or put in an error buffer */
#define MB_AGAIN    (-1001) /* not now; try again later (would block, not ready) */
#define MB_DECLINED (-1002) /* not mine to handle */

#define MB_EXIT_OK    0 /* normal exit */
#define MB_EXIT_ERROR 1 /* runtime error: a worker exiting with it is respawned */
#define MB_EXIT_FATAL 2 /* usage or fatal config: a worker exiting with it is not respawned */

#endif
