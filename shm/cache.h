/*
 * shm/cache.h — the shared caches of the region (DESIGN §2): an index of
 * slots with seqlock versions over a ring arena, one area per cache
 * (discovery, response, auth), shared by every worker without locks. The
 * byte format is layout.h §6; the algorithm and its crash safety are
 * specified at the top of shm/cache.c.
 *
 * How a process uses one:
 *
 *   after fork, once:  mb_cache_set_owner(c, worker_index);
 *   key:               k = mb_cache_key(c, bytes, len);
 *   lookup:            rc = mb_cache_get(c, k, now_ms, buf, cap, &len);
 *                        0 hit (len bytes copied into buf), MB_DECLINED
 *                        miss, MB_AGAIN buf too small (len = the size)
 *   store:             mb_cache_put(c, k, value, len, ttl_ms, now_ms);
 *   invalidate:        mb_cache_del(c, k);
 *   stampede control:  mb_cache_lease_take(c, k, ttl_ms, now_ms) == 1 means
 *                      "you fetch"; others wait for the value (polling
 *                      mb_cache_get) while mb_cache_leased() is true, and
 *                      the fetcher ends with mb_cache_lease_drop().
 *
 * now_ms is CLOCK_MONOTONIC in milliseconds (mb_time_mono_ms()), the same
 * clock in every process. Nothing here blocks or sleeps: a reader that meets
 * a slot being written retries a bounded number of times and then treats it
 * as a miss. Hits, misses, stores, evictions, invalidations and entries too
 * large are counted in the owner's counter row (shm/counters.h,
 * cache_<stat>.<cache>).
 */
#ifndef MB_SHM_CACHE_H
#define MB_SHM_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/layout.h"

enum mb_cache_id { MB_CACHE_DISCOVERY = 0, MB_CACHE_RESPONSE = 1, MB_CACHE_AUTH = 2 };
#define MB_CACHE_KINDS 3

/* Slots probed from a key's home. */
#define MB_CACHE_PROBE 8
/* Owner of writes made by a process without a worker record (never repaired). */
#define MB_CACHE_OWNER_NONE 0xffffu
/* Limits of one cache's geometry. */
#define MB_CACHE_MAX_SLOTS (1u << 27)
#define MB_CACHE_MAX_ARENA (1ull << 34)
#define MB_CACHE_MIN_ARENA 4096u

struct mb_shm;

struct mb_cache_key {
    uint64_t lo; /* picks the home slot */
    uint64_t hi;
};

/* The shape of one cache, decided by the master from the config. */
struct mb_cache_size {
    uint32_t slots;     /* maximum entries; 0 = no such cache */
    uint64_t arena;     /* bytes of values */
    uint64_t max_entry; /* larger values are not stored (<= arena / 2) */
};

/* A process's handle on one cache; lives in struct mb_shm (shm->caches[id]),
 * so each process has its own copy after fork. hdr == NULL: no such cache. */
struct mb_cache {
    struct mb_shm_cache_hdr *hdr;
    struct mb_shm_cache_slot *slots;
    unsigned char *arena;
    uint32_t id;
    uint32_t nslots;
    uint64_t arena_size;
    uint64_t max_entry;
    uint32_t owner;     /* this process's worker record, or MB_CACHE_OWNER_NONE */
    struct mb_shm *shm; /* for the counters; NULL = not counted */
    uint64_t seed[2];
};

/* The name of a cache id ("discovery", "response", "auth"). */
const char *mb_cache_name(uint32_t id);

/* Bytes of the area of a cache of this size (header + slots + arena), and
 * whether the size is valid (slots 1..MB_CACHE_MAX_SLOTS, arena
 * MB_CACHE_MIN_ARENA..MB_CACHE_MAX_ARENA, 1 <= max_entry <= arena / 2). */
uint64_t mb_cache_area_bytes(const struct mb_cache_size *sz);
bool mb_cache_size_valid(const struct mb_cache_size *sz);
/* Master, at creation: writes the header of a zero-filled area. */
void mb_cache_format(void *area, uint32_t id, const struct mb_cache_size *sz);
/* Binds a handle to an area of len bytes; 0, or MB_ERR when the area is
 * malformed (a reader must not trust its offsets then). */
int mb_cache_bind(struct mb_cache *c, void *area, uint64_t len, struct mb_shm *shm,
                  const uint64_t seed[2]);

/* Worker, after fork: writes carry its record index (crash repair) and its
 * counter row counts them. */
void mb_cache_set_owner(struct mb_cache *c, uint32_t worker_index);

/* The key of some bytes: 128 bits keyed by the region's random seed. */
struct mb_cache_key mb_cache_key(const struct mb_cache *c, const void *data, size_t len);

int mb_cache_get(struct mb_cache *c, struct mb_cache_key key, uint64_t now_ms, void *buf,
                 size_t cap, size_t *len);

/* Which write a value came from: its slot and the slot's version then. */
struct mb_cache_stamp {
    uint64_t ver; /* 0: no value */
    uint32_t slot;
};
/* mb_cache_get that also names the write of the value returned (*stamp is
 * cleared unless it returns 0). */
int mb_cache_get_stamped(struct mb_cache *c, struct mb_cache_key key, uint64_t now_ms, void *buf,
                         size_t cap, size_t *len, struct mb_cache_stamp *stamp);
/* Whether a lookup of key at now_ms would still get the value of the write
 * named by stamp, without copying or re-hashing its bytes: 0 (counted as a
 * hit) when the first live copy of key is that write, still stable,
 * unexpired and in the arena; MB_DECLINED otherwise (replaced, deleted,
 * expired, evicted, being written, or no cache). For a caller that kept
 * its own verified copy of the bytes (the worker's list memo): it never
 * reads the arena, so it cannot see a torn value. */
int mb_cache_same(struct mb_cache *c, struct mb_cache_key key, uint64_t now_ms,
                  const struct mb_cache_stamp *stamp);

/* Stores a copy of len bytes for ttl_ms. Returns 0, MB_DECLINED (len over
 * max_entry, or ttl 0: counted as oversize when too large), MB_AGAIN (every
 * slot in reach is being written by another process), MB_ERR (no cache). */
int mb_cache_put(struct mb_cache *c, struct mb_cache_key key, const void *val, size_t len,
                 uint64_t ttl_ms, uint64_t now_ms);

/* The two halves of mb_cache_put, for callers that build the value in
 * place: begin claims a slot and reserves len bytes and returns where to
 * write them (NULL with *rc set as mb_cache_put would return); commit
 * publishes. sum must be mb_cache_sum() of the bytes written. A process
 * that dies in between leaves the slot odd until mb_cache_repair(). */
struct mb_cache_write {
    struct mb_cache *c;
    struct mb_shm_cache_slot *slot;
    uint64_t next_ver;
    bool evicted;
};
void *mb_cache_put_begin(struct mb_cache *c, struct mb_cache_key key, size_t len, uint64_t ttl_ms,
                         uint64_t now_ms, struct mb_cache_write *w, int *rc);
void mb_cache_put_commit(struct mb_cache_write *w, uint64_t sum);
uint64_t mb_cache_sum(const void *data, size_t len);

/* Removes every copy of key (and its lease). Returns how many entries. */
int mb_cache_del(struct mb_cache *c, struct mb_cache_key key);

/* Stampede control across processes: 1 = the caller holds the lease of key
 * for ttl_ms and should fetch; 0 = another process holds it (or the value
 * is there); MB_AGAIN when no slot could be had (the caller fetches). */
int mb_cache_lease_take(struct mb_cache *c, struct mb_cache_key key, uint64_t ttl_ms,
                        uint64_t now_ms);
bool mb_cache_leased(struct mb_cache *c, struct mb_cache_key key, uint64_t now_ms);
void mb_cache_lease_drop(struct mb_cache *c, struct mb_cache_key key);

/* Master, after reaping the process with this worker record: slots it left
 * odd (killed mid-store) become empty. Returns how many. */
uint64_t mb_cache_repair(struct mb_cache *c, uint32_t worker_index);

/* Readers (dump tool, tests): slot states at now_ms. */
struct mb_cache_stats {
    uint64_t slots;
    uint64_t arena;
    uint64_t max_entry;
    uint64_t entries; /* live values */
    uint64_t bytes;   /* their bytes */
    uint64_t leases;  /* live leases */
    uint64_t writing; /* slots being written (or left by a dead writer) */
    uint64_t stale;   /* expired, overwritten in the arena, or deleted */
    uint64_t empty;   /* never used */
};
void mb_cache_stats(const struct mb_cache *c, uint64_t now_ms, struct mb_cache_stats *st);

#endif
