/*
 * worker/ratelimit_lease.h — a worker's local budgets under
 * `rate_limit.storage: memcached`: tokens leased from the shared budget in
 * memcached, spent locally without a round trip. The accounting only: no
 * I/O and no clock of its own (callers pass `now`), so it is unit-tested with
 * a fake clock (tests/unit/worker/test_ratelimit_lease.c). The memcached side
 * is worker/ratelimit_mc.c; the scheme as a whole is described at the top of
 * worker/ratelimiter.c.
 *
 * One entry per bucket key, in an open-addressing table of fixed capacity
 * (least recently used entry of a probe window evicted when it is full). An
 * entry holds a signed token count:
 *   tokens > 0    leased tokens not spent yet: a request takes one and is
 *                 admitted;
 *   tokens <= 0   nothing leased: a request is admitted on credit while
 *                 tokens > -credit (the debt is repaid from the next grant),
 *                 unless the shared budget said "empty until T"
 *                 (denied_until), and rejected otherwise.
 * Refill ahead: when a take leaves tokens <= lease / 2 and no refill is in
 * flight for the key, take() asks the caller to request `want = lease -
 * tokens` tokens (a full lease plus any debt). The caller hands the request
 * to memcached and reports back with granted() or failed(). Leased tokens
 * not spent within hold_ns of their grant are dropped, so an idle worker
 * cannot hoard a lease into a later burst.
 *
 * Bounds this gives, per worker and key: at most `lease` tokens taken from
 * the shared budget and not (yet) spent, and at most `credit` requests
 * admitted that the shared budget has not paid for (credit <= lease).
 */
#ifndef MB_WORKER_RATELIMIT_LEASE_H
#define MB_WORKER_RATELIMIT_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "shm/ratelimit.h"

/* How long a request should wait when it was rejected only because a
 * refill is in flight (a memcached round trip is ~70 µs, DESIGN §9). */
#define MB_RL_LEASE_PENDING_RETRY_NS (1000ull * 1000)
/* Slots probed from a key's home. */
#define MB_RL_LEASE_PROBE 16

struct mb_rl_lease_entry {
    uint64_t key_lo, key_hi; /* 0, 0 = free */
    int64_t tokens;
    uint64_t granted_ns;      /* when the last grant arrived */
    uint64_t denied_until_ns; /* the shared budget is empty until then */
    uint64_t last_ns;         /* last take (LRU eviction) */
    uint32_t pending;         /* a refill is in flight */
    uint32_t _pad;
};

struct mb_ratelimit_lease {
    struct mb_rl_lease_entry *e;
    uint64_t mask; /* slots - 1 */
    uint32_t lease;
    uint32_t credit;
};

/* Sizes the table for capacity keys (slots: a power of two >= capacity).
 * credit is clamped to [1, lease]. Returns 0 or MB_ERR (out of memory). */
int mb_ratelimit_lease_init(struct mb_ratelimit_lease *t, uint32_t capacity, uint32_t lease,
                            uint32_t credit);
void mb_ratelimit_lease_free(struct mb_ratelimit_lease *t);

/*
 * One request for key at now_ns. Returns MB_RATELIMIT_ALLOW or
 * MB_RATELIMIT_DENY (*retry_ns = how long to wait). When *want > 0 the caller
 * must request that many tokens from the shared budget and report with
 * mb_ratelimit_lease_granted() or mb_ratelimit_lease_failed() (the entry is
 * marked pending until then). hold_ns: how long leased tokens stay usable.
 */
int mb_ratelimit_lease_take(struct mb_ratelimit_lease *t, struct mb_rl_key key, uint64_t now_ns,
                            uint64_t hold_ns, uint64_t *retry_ns, uint32_t *want);
/* A refill for key came back: granted of the asked tokens; when granted <
 * asked, retry_ns is how long until the shared budget has a token again. A
 * key no longer in the table (evicted) is ignored. */
void mb_ratelimit_lease_granted(struct mb_ratelimit_lease *t, struct mb_rl_key key, uint32_t asked,
                                uint32_t granted, uint64_t retry_ns, uint64_t now_ns);
/* A refill for key could not be made (queue full, memcached error). */
void mb_ratelimit_lease_failed(struct mb_ratelimit_lease *t, struct mb_rl_key key);
/* The entry of key, or NULL (tests, debugging). */
const struct mb_rl_lease_entry *mb_ratelimit_lease_find(const struct mb_ratelimit_lease *t,
                                                        struct mb_rl_key key);

#endif
