/*
 * worker/ratelimit_lease.c — local lease budgets for storage: memcached
 * (contract in ratelimit_lease.h). Single-threaded: only the worker's event
 * loop touches the table.
 */
#include "worker/ratelimit_lease.h"

#include <stdlib.h>
#include <string.h>

#include "common/errors.h"

int mb_ratelimit_lease_init(struct mb_ratelimit_lease *t, uint32_t capacity, uint32_t lease,
                            uint32_t credit)
{
    uint64_t slots = MB_RL_LEASE_PROBE;
    while (slots < capacity)
        slots <<= 1;
    memset(t, 0, sizeof(*t));
    t->e = calloc(slots, sizeof(*t->e));
    if (t->e == NULL)
        return MB_ERR;
    t->mask = slots - 1;
    t->lease = lease > 0 ? lease : 1;
    t->credit = credit < 1 ? 1 : credit > t->lease ? t->lease : credit;
    return MB_OK;
}

void mb_ratelimit_lease_free(struct mb_ratelimit_lease *t)
{
    free(t->e);
    t->e = NULL;
}

static bool is_free(const struct mb_rl_lease_entry *e)
{
    return e->key_lo == 0 && e->key_hi == 0;
}

static bool same(const struct mb_rl_lease_entry *e, struct mb_rl_key k)
{
    return e->key_lo == k.lo && e->key_hi == k.hi;
}

/* A key of all zeroes would read as a free slot; nudge it (a 1 in 2^128
 * event that must still not corrupt the table). */
static struct mb_rl_key norm(struct mb_rl_key k)
{
    if (k.lo == 0 && k.hi == 0)
        k.hi = 1;
    return k;
}

static struct mb_rl_lease_entry *find(const struct mb_ratelimit_lease *t, struct mb_rl_key k)
{
    for (uint64_t i = 0; i < MB_RL_LEASE_PROBE; i++) {
        struct mb_rl_lease_entry *e = &t->e[(k.lo + i) & t->mask];
        if (same(e, k))
            return e;
    }
    return NULL;
}

/* The entry of k, created when missing: in the first free slot of the probe
 * window, else over the least recently used one (its budget is forgotten:
 * leased tokens are lost to the shared budget, a debt is forgiven; both are
 * within the per-worker bounds of the header). */
static struct mb_rl_lease_entry *get(struct mb_ratelimit_lease *t, struct mb_rl_key k)
{
    struct mb_rl_lease_entry *victim = NULL;
    for (uint64_t i = 0; i < MB_RL_LEASE_PROBE; i++) {
        struct mb_rl_lease_entry *e = &t->e[(k.lo + i) & t->mask];
        if (same(e, k))
            return e;
        if (victim == NULL || (!is_free(victim) && (is_free(e) || e->last_ns < victim->last_ns)))
            victim = e;
    }
    memset(victim, 0, sizeof(*victim));
    victim->key_lo = k.lo;
    victim->key_hi = k.hi;
    return victim;
}

int mb_ratelimit_lease_take(struct mb_ratelimit_lease *t, struct mb_rl_key key, uint64_t now_ns,
                            uint64_t hold_ns, uint64_t *retry_ns, uint32_t *want)
{
    struct mb_rl_lease_entry *e = get(t, norm(key));
    int rc;

    *want = 0;
    *retry_ns = 0;
    e->last_ns = now_ns;
    if (e->tokens > 0 && now_ns - e->granted_ns > hold_ns)
        e->tokens = 0; /* a stale lease: see the header */
    if (e->tokens > 0) {
        e->tokens--;
        rc = MB_RATELIMIT_ALLOW;
    } else if (now_ns < e->denied_until_ns) {
        /* The shared budget said it is empty: no credit, no round trip. */
        *retry_ns = e->denied_until_ns - now_ns;
        return MB_RATELIMIT_DENY;
    } else if (e->tokens > -(int64_t)t->credit) {
        e->tokens--;
        rc = MB_RATELIMIT_ALLOW;
    } else {
        *retry_ns = MB_RL_LEASE_PENDING_RETRY_NS;
        rc = MB_RATELIMIT_DENY;
    }
    if (!e->pending && e->tokens <= (int64_t)(t->lease / 2)) {
        *want = (uint32_t)((int64_t)t->lease - e->tokens);
        e->pending = 1;
    }
    return rc;
}

void mb_ratelimit_lease_granted(struct mb_ratelimit_lease *t, struct mb_rl_key key, uint32_t asked,
                                uint32_t granted, uint64_t retry_ns, uint64_t now_ns)
{
    struct mb_rl_lease_entry *e = find(t, norm(key));
    if (e == NULL)
        return;
    e->pending = 0;
    if (granted > 0)
        e->granted_ns = now_ns;
    e->tokens += granted;
    if (granted < asked)
        e->denied_until_ns = now_ns + (retry_ns > 0 ? retry_ns : 1);
    else
        e->denied_until_ns = 0;
}

void mb_ratelimit_lease_failed(struct mb_ratelimit_lease *t, struct mb_rl_key key)
{
    struct mb_rl_lease_entry *e = find(t, norm(key));
    if (e != NULL)
        e->pending = 0;
}

const struct mb_rl_lease_entry *mb_ratelimit_lease_find(const struct mb_ratelimit_lease *t,
                                                        struct mb_rl_key key)
{
    return find(t, norm(key));
}
