/*
 * worker/cache_flight.h — single flight inside one worker: the fetches of
 * cacheable things (a backend's list, a cacheable call) in progress, by
 * cache key, each with the requests waiting for its outcome (by the gateway
 * id of their parked request, so a waiter that went away in the meantime is
 * simply not found). Across workers the shm lease does the same job
 * (shm/cache.h mb_cache_lease_take); a flight whose fetch runs in another
 * worker is "remote" and is polled (the router's poll timer).
 *
 * Plain bookkeeping: no I/O, no shm; the router decides what a completion
 * means.
 */
#ifndef MB_WORKER_CACHE_FLIGHT_H
#define MB_WORKER_CACHE_FLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/cache.h"

#define MB_FLIGHT_BUCKETS 1024

struct mb_flight {
    struct mb_cache_key key;
    uint32_t cache;      /* enum mb_cache_id */
    bool remote;         /* the fetch runs in another worker (we hold no lease) */
    size_t backend;      /* index of the backend fetched from */
    int kind;            /* discovery: enum mb_list_kind; response: -1 */
    void *leader;        /* discovery: the fan-out fetching; NULL when remote */
    uint64_t leader_gid; /* response: the request fetching; 0 when remote */
    uint64_t *waiters;   /* gateway ids of parked requests */
    size_t nwaiters, cap;
    struct mb_flight *next; /* in its bucket */
};

struct mb_flights {
    struct mb_flight *bucket[MB_FLIGHT_BUCKETS];
    size_t count;
    size_t remote; /* how many are remote (the poll timer runs while > 0) */
};

struct mb_flight *mb_flights_find(struct mb_flights *fl, uint32_t cache, struct mb_cache_key key);
/* A new flight (not remote); NULL on out of memory. */
struct mb_flight *mb_flights_add(struct mb_flights *fl, uint32_t cache, struct mb_cache_key key);
/* Marks a flight remote or local, keeping fl->remote right. */
void mb_flights_set_remote(struct mb_flights *fl, struct mb_flight *f, bool remote);
/* Adds a waiter; 0 or MB_ERR. */
int mb_flights_wait(struct mb_flight *f, uint64_t gid);
/* Unlinks and frees f. */
void mb_flights_remove(struct mb_flights *fl, struct mb_flight *f);
/* Calls fn for every remote flight (fn may remove the flight it is given). */
void mb_flights_each_remote(struct mb_flights *fl, void (*fn)(struct mb_flight *f, void *arg),
                            void *arg);
/* Frees every flight. */
void mb_flights_clear(struct mb_flights *fl);

#endif
