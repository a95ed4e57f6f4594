/*
 * worker/cache_flight.c — the single-flight table (see cache_flight.h): a
 * chained hash on the 128-bit cache key, which is already uniformly
 * distributed, so its low bits pick the bucket.
 */
#include "worker/cache_flight.h"

#include <stdlib.h>
#include <string.h>

#include "common/errors.h"

static size_t bucket_of(struct mb_cache_key key)
{
    return (size_t)(key.lo % MB_FLIGHT_BUCKETS);
}

struct mb_flight *mb_flights_find(struct mb_flights *fl, uint32_t cache, struct mb_cache_key key)
{
    for (struct mb_flight *f = fl->bucket[bucket_of(key)]; f; f = f->next)
        if (f->cache == cache && f->key.lo == key.lo && f->key.hi == key.hi)
            return f;
    return NULL;
}

struct mb_flight *mb_flights_add(struct mb_flights *fl, uint32_t cache, struct mb_cache_key key)
{
    struct mb_flight *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->key = key;
    f->cache = cache;
    f->kind = -1;
    size_t b = bucket_of(key);
    f->next = fl->bucket[b];
    fl->bucket[b] = f;
    fl->count++;
    return f;
}

void mb_flights_set_remote(struct mb_flights *fl, struct mb_flight *f, bool remote)
{
    if (f->remote == remote)
        return;
    f->remote = remote;
    if (remote)
        fl->remote++;
    else
        fl->remote--;
}

int mb_flights_wait(struct mb_flight *f, uint64_t gid)
{
    if (f->nwaiters == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 4;
        uint64_t *w = realloc(f->waiters, cap * sizeof(*w));
        if (w == NULL)
            return MB_ERR;
        f->waiters = w;
        f->cap = cap;
    }
    f->waiters[f->nwaiters++] = gid;
    return 0;
}

void mb_flights_remove(struct mb_flights *fl, struct mb_flight *f)
{
    for (struct mb_flight **pp = &fl->bucket[bucket_of(f->key)]; *pp; pp = &(*pp)->next) {
        if (*pp != f)
            continue;
        *pp = f->next;
        fl->count--;
        if (f->remote)
            fl->remote--;
        free(f->waiters);
        free(f);
        return;
    }
}

void mb_flights_each_remote(struct mb_flights *fl, void (*fn)(struct mb_flight *f, void *arg),
                            void *arg)
{
    for (size_t b = 0; b < MB_FLIGHT_BUCKETS && fl->remote > 0; b++) {
        struct mb_flight *f = fl->bucket[b], *next;
        for (; f; f = next) {
            next = f->next;
            if (f->remote)
                fn(f, arg);
        }
    }
}

void mb_flights_clear(struct mb_flights *fl)
{
    for (size_t b = 0; b < MB_FLIGHT_BUCKETS; b++) {
        struct mb_flight *f = fl->bucket[b], *next;
        for (; f; f = next) {
            next = f->next;
            free(f->waiters);
            free(f);
        }
        fl->bucket[b] = NULL;
    }
    fl->count = fl->remote = 0;
}
