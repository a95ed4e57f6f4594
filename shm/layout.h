/*
 * shm/layout.h — the byte layout of the shared-memory region. This is a file
 * format: tools built from another version read it, so every incompatible
 * change bumps MB_SHM_LAYOUT_MAJOR and a compatible addition bumps the minor.
 *
 * (Prose specification of the whole region: to be completed by the shm module
 * owner — header, section directory, worker table, counters, histograms,
 * rate-limit table, cache, backend stats.)
 *
 * All integers are fixed width, little-endian (the host's; the region never
 * leaves the machine), naturally aligned, with explicit padding. Fields that
 * change while the gateway runs are read and written with __atomic builtins.
 */
#ifndef MB_SHM_LAYOUT_H
#define MB_SHM_LAYOUT_H

#include <stdint.h>

#define MB_SHM_MAGIC        0x4d42524447534d31ull /* "MBRDGSM1" */
#define MB_SHM_LAYOUT_MAJOR 1
#define MB_SHM_LAYOUT_MINOR 0

enum mb_shm_state { MB_SHM_INITIALIZING = 0, MB_SHM_READY = 1, MB_SHM_RETIRED = 2 };

enum mb_shm_worker_state {
    MB_WORKER_FREE = 0,     /* record unused */
    MB_WORKER_STARTING = 1, /* forked, not accepting yet */
    MB_WORKER_RUNNING = 2,  /* accepting */
    MB_WORKER_DRAINING = 3, /* told to stop: not accepting, finishing in-flight work */
    MB_WORKER_EXITED = 4    /* reaped; waiting for respawn */
};

struct mb_shm_worker {
    uint32_t state;      /* enum mb_shm_worker_state */
    int32_t pid;
    uint32_t slot;
    uint32_t restarts;   /* respawns of this slot in this generation */
    uint64_t generation; /* config generation the worker serves */
    uint64_t start_ms;   /* wall clock */
    uint64_t heartbeat_ms;
    int32_t last_exit_status; /* wait status of the previous process in this record, -1 none */
    uint32_t _pad0;
    uint64_t connections; /* open client connections */
    uint8_t _pad1[8];
};
_Static_assert(sizeof(struct mb_shm_worker) == 64, "worker record is one cache line");

#endif
