/*
 * shm/shm.h — the shared-memory region: create (master), attach (workers
 * inherit the master's mapping; tools attach read-only), and the worker table.
 * The byte layout is specified in shm/layout.h.
 *
 * Writers: the master alone writes the header and allocates/frees worker
 * records; a worker writes only its own record's live fields (state,
 * heartbeat, connections) and its own counter row.
 */
#ifndef MB_SHM_SHM_H
#define MB_SHM_SHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/layout.h"

struct mb_shm {
    void *base;
    size_t size;
    int readonly;
    char *path;
    struct mb_shm_header *hdr;
    struct mb_shm_worker *workers; /* hdr->worker_capacity records */
};

/* What decides the region's shape; derived from the config by the master. */
struct mb_shm_params {
    uint32_t worker_capacity; /* records in the worker table (>= 2 * workers + 2) */
};

/* Master: creates (or replaces) the file at path with mode 0600, maps it
 * MAP_SHARED, initialises the header (state INITIALIZING, then READY when
 * mb_shm_publish() is called). */
int mb_shm_create(const char *path, const struct mb_shm_params *p, struct mb_shm **out, char *err,
                  size_t errlen);
/* Marks the region READY (release store): readers may trust it. */
void mb_shm_publish(struct mb_shm *shm);
/* Marks the region RETIRED (the gateway stopped, or a newer region replaced it). */
void mb_shm_retire(struct mb_shm *shm);
/* Tools: maps an existing region read-only (PROT_READ) and checks magic and
 * layout major; on a mismatch returns MB_ERR with a clear message in err. */
int mb_shm_attach(const char *path, struct mb_shm **out, char *err, size_t errlen);
/* Unmaps (does not unlink) and frees; sets *shmp = NULL. */
void mb_shm_close(struct mb_shm **shmp);

/* Master: the config generation now being served. */
void mb_shm_set_generation(struct mb_shm *shm, uint64_t generation);

/* Master: takes a FREE worker record and fills it (state STARTING, restarts 0);
 * returns its index or -1 when the table is full. */
int mb_shm_worker_alloc(struct mb_shm *shm, uint32_t slot, uint64_t generation);
/* Master: the record of a respawned worker (same index): state STARTING,
 * restarts + 1, new pid filled by mb_shm_worker_started(). */
void mb_shm_worker_respawn(struct mb_shm *shm, uint32_t index);
/* Master: after fork, the child's pid and start time. */
void mb_shm_worker_started(struct mb_shm *shm, uint32_t index, int32_t pid);
/* Master: after waitpid(); records the exit status and repairs what the dead
 * process may have left half-written. free=true returns the record to FREE
 * (the slot is not respawned); otherwise it stays for mb_shm_worker_respawn(). */
void mb_shm_worker_reaped(struct mb_shm *shm, uint32_t index, int wait_status, bool free_record);

/* Worker: its own record's live fields. */
void mb_shm_worker_set_state(struct mb_shm *shm, uint32_t index, uint32_t state);
void mb_shm_worker_heartbeat(struct mb_shm *shm, uint32_t index);
void mb_shm_worker_conn_add(struct mb_shm *shm, uint32_t index, int64_t delta);

static inline struct mb_shm_worker *mb_shm_worker_at(struct mb_shm *shm, uint32_t index)
{
    return &shm->workers[index];
}

const char *mb_shm_worker_state_name(uint32_t state);

#endif
