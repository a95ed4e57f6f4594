/*
 * shm/shm.h — the shared-memory region: create (master), attach (workers
 * inherit the master's mapping; tools attach read-only), and the worker table.
 * The byte layout is specified in shm/layout.h; counters and histograms are in
 * shm/counters.h.
 *
 * Writers: the master alone writes the header and allocates/frees worker
 * records; a worker writes only its own record's live fields (state,
 * heartbeat, connections) and its own counter row. None of these functions
 * blocks or takes a lock, so a process may die anywhere in them.
 */
#ifndef MB_SHM_SHM_H
#define MB_SHM_SHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/cache.h"
#include "shm/layout.h"
#include "shm/ratelimit.h"

struct mb_shm {
    void *base;
    size_t size;
    int readonly;
    char *path;
    struct mb_shm_header *hdr;
    struct mb_shm_worker *workers; /* hdr->worker_capacity records */
    uint32_t worker_capacity;
    /* Counter and histogram rows (layout.h §3, §4): nrows = worker_capacity + 1,
     * the last one the master row. ncounters/nhists are what the region holds
     * (a region of an older minor may hold fewer than this build knows). */
    uint32_t nrows;
    uint64_t *counters;
    uint32_t counter_stride; /* uint64_t words per row */
    uint32_t ncounters;
    struct mb_shm_hist *hists;
    uint32_t hist_stride; /* struct mb_shm_hist per row */
    uint32_t nhists;
    /* The rate-limit table (ratelimit.h); .slots == NULL when the region has
     * none. Per-process: a worker sets its owner after fork. */
    struct mb_ratelimit ratelimit;
    /* The shared caches (cache.h), by enum mb_cache_id; .hdr == NULL when the
     * region has none. Per-process, like ratelimit. */
    struct mb_cache caches[MB_CACHE_KINDS];
};

/* What decides the region's shape; derived from the config by the master. */
struct mb_shm_params {
    uint32_t worker_capacity;    /* records in the worker table (>= 2 * workers + 2) */
    uint32_t ratelimit_capacity; /* rate-limit buckets (rate_limit.capacity); 0 = no table */
    /* The shared caches by enum mb_cache_id; slots 0 = none (caching off). */
    struct mb_cache_size caches[MB_CACHE_KINDS];
    uint32_t backend_capacity; /* backend stats records (shm/backends.h); 0 = none */
};

#define MB_SHM_DEFAULT_PATH       "/dev/shm/mcp-bridge"
#define MB_SHM_MAX_WORKER_RECORDS 4096

/* Master: creates (or replaces) the file at path with mode 0600, maps it
 * MAP_SHARED, initialises the header (state INITIALIZING, then READY when
 * mb_shm_publish() is called). The region is built in a temporary file in the
 * same directory and renamed over path, so a reader never sees a partial
 * file; a region already mapped by running processes stays valid for them.
 * Returns 0, or MB_ERR with "what: why" in err. */
int mb_shm_create(const char *path, const struct mb_shm_params *p, struct mb_shm **out, char *err,
                  size_t errlen);
/* What a successor region took over from its predecessor. */
struct mb_counters_totals;
struct mb_shm_carry {
    /* Caller-allocated; filled with the predecessor's totals at the moment
     * they were carried, for mb_counters_carry() when it retires. */
    struct mb_counters_totals *totals;
    uint64_t buckets_copied;  /* live rate-limit buckets now in the successor */
    uint64_t buckets_dropped; /* live buckets that did not fit (smaller table) */
};

/* Master, on a reload that changes the region's shape (layout.h, "region
 * generations"): creates a region of params like mb_shm_create(), at prev's
 * path and with prev's hash seed, and before renaming it over the path fills
 * it from prev: prev's counter and histogram totals (gauges excepted) go into
 * the new master row, and every live rate-limit bucket is copied
 * (mb_ratelimit_copy). Caches start empty and the worker table free. prev
 * stays mapped and usable by the processes that use it. Returns 0, or MB_ERR
 * with "what: why" in err (nothing replaced). */
int mb_shm_create_successor(const struct mb_shm *prev, const struct mb_shm_params *p,
                            struct mb_shm_carry *carry, struct mb_shm **out, char *err,
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

/* Master, on reload: true when a region of params would have the same shape
 * as shm, so the running region (buckets, caches, backend stats) is kept;
 * otherwise a successor is built (mb_shm_create_successor). */
bool mb_shm_same_shape(const struct mb_shm *shm, const struct mb_shm_params *p);

/* Master: the config generation now being served. */
void mb_shm_set_generation(struct mb_shm *shm, uint64_t generation);

/* Master: takes a FREE worker record and fills it (state STARTING, restarts 0);
 * returns its index or -1 when the table is full. */
int mb_shm_worker_alloc(struct mb_shm *shm, uint32_t slot, uint64_t generation);
/* Master: the record of a respawned worker (same index): state STARTING,
 * restarts + 1, new pid filled by mb_shm_worker_started(). Also counts one
 * worker_restarts in the master row (the master does not count it itself). */
void mb_shm_worker_respawn(struct mb_shm *shm, uint32_t index);
/* Master: after fork, the child's pid and start time. */
void mb_shm_worker_started(struct mb_shm *shm, uint32_t index, int32_t pid);
/* Master: after waitpid(); records the exit status and repairs what the dead
 * process may have left half-written. free=true returns the record to FREE
 * (the slot is not respawned); otherwise it stays for mb_shm_worker_respawn().
 * The dead worker's counter and histogram rows are folded into the master row
 * and zeroed (gauges are zeroed, not folded), so totals never go backwards and
 * the next process in the record starts from zero. Rate-limit slots the
 * process left half-inserted and cache slots it left half-written are
 * repaired. Also used for a record whose fork
 * failed (wait_status -1). */
void mb_shm_worker_reaped(struct mb_shm *shm, uint32_t index, int wait_status, bool free_record);

/* Worker: its own record's live fields. state is RUNNING or DRAINING
 * (release store). heartbeat stores the wall clock in ms. */
void mb_shm_worker_set_state(struct mb_shm *shm, uint32_t index, uint32_t state);
void mb_shm_worker_heartbeat(struct mb_shm *shm, uint32_t index);
/* Worker: a client connection opened (+1) or closed (-1): the record's
 * connections field only. The connections_total and connections_active
 * counters are the worker's to count (mb_counters_add). */
void mb_shm_worker_conn_add(struct mb_shm *shm, uint32_t index, int64_t delta);

static inline struct mb_shm_worker *mb_shm_worker_at(struct mb_shm *shm, uint32_t index)
{
    return &shm->workers[index];
}

/* "free", "starting", "running", "draining", "exited" ("unknown" otherwise). */
const char *mb_shm_worker_state_name(uint32_t state);
/* "initializing", "ready", "retired" ("unknown" otherwise). */
const char *mb_shm_state_name(uint32_t state);
/* The section of a type, or NULL. */
const struct mb_shm_section *mb_shm_section_find(const struct mb_shm *shm, uint32_t type);

#endif
