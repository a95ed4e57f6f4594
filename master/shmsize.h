/*
 * master/shmsize.h — how big the shared region's tables are, from the
 * configuration: the one place where caching.* sizes become shm geometry
 * (mb_shm_params), used at start and, at reload, to detect a change that
 * needs a new region (master/cycle.c).
 */
#ifndef MB_MASTER_SHMSIZE_H
#define MB_MASTER_SHMSIZE_H

#include <stdint.h>

#include "shm/shm.h"

struct mb_conf;

/* Fills p->ratelimit_capacity and p->caches[] from conf (worker_capacity is
 * the caller's). */
void mb_shmsize_params(const struct mb_conf *conf, uint32_t worker_capacity,
                       struct mb_shm_params *p);

#endif
