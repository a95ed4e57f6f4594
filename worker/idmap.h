/*
 * worker/idmap.h — gateway-owned request ids and the table from id to the
 * request waiting for its answer.
 *
 * Every message the gateway sends to a backend as a request carries an id
 * the gateway chose: a decimal integer from one per-worker counter
 * (mb_idmap_next), never reused in the life of the worker, so a late answer
 * to a request that was cancelled, timed out or whose client left finds
 * nothing and is dropped. The client's own id (any JSON string or number) is
 * kept with the request as raw text and spliced back into the answer.
 *
 * The table is open addressing with linear probing and backward-shift
 * deletion (no tombstones), kept at most half full; ids are consecutive, so
 * a multiplicative hash spreads them evenly.
 */
#ifndef MB_WORKER_IDMAP_H
#define MB_WORKER_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct mb_idmap_slot {
    uint64_t id; /* 0 = empty */
    void *value;
};

struct mb_idmap {
    struct mb_idmap_slot *slots;
    size_t cap; /* a power of two */
    size_t count;
    uint64_t last; /* the last id handed out */
};

/* A new id (1, 2, 3, ...; ids stay below 2^53 so they survive a double). */
static inline uint64_t mb_idmap_next(struct mb_idmap *m)
{
    return ++m->last;
}
/* Adds id -> value (id != 0, not present). Returns 0 or MB_ERR (memory). */
int mb_idmap_put(struct mb_idmap *m, uint64_t id, void *value);
/* The value of id, or NULL. */
void *mb_idmap_get(const struct mb_idmap *m, uint64_t id);
/* Removes id; returns its value, or NULL when it was not there. */
void *mb_idmap_del(struct mb_idmap *m, uint64_t id);
void mb_idmap_free(struct mb_idmap *m);

#endif
