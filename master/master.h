/*
 * master/master.h — the master cycle (master/cycle.c): spawn, watch, respawn,
 * reload and stop the workers.
 */
#ifndef MB_MASTER_MASTER_H
#define MB_MASTER_MASTER_H

#include "master/listen.h"

struct mb_conf;
struct mb_shm;

struct mb_master_opts {
    const char *conf_path; /* absolute: reloads read it again */
    int ready_fd;          /* written once the first workers run (daemon start-up), or -1 */
};

/* Runs the master until it is told to stop. Takes ownership of conf and
 * socks (the first generation) and of shm: a reload may replace the region
 * (master/cycle.c), and every region is unmapped before it returns (the
 * current one left RETIRED on disk). Returns the process exit status. */
int mb_master_run(const struct mb_master_opts *opts, struct mb_conf *conf,
                  struct mb_listen_set *socks, struct mb_shm *shm);

#endif
