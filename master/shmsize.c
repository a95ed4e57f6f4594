/*
 * master/shmsize.c — shm geometry from the configuration (see shmsize.h).
 *
 * Decisions written down here (also in gateway.yaml(5)):
 *   - No cache is laid out when caching.enabled is false, so the switch
 *     costs no memory; switching it on (like any size change) makes a
 *     reload build a new region whose caches start empty (master/cycle.c).
 *     The per-cache `enabled` keys do not change the region, so a reload
 *     toggles them and keeps every entry.
 *   - Slots = the configured max_size (entries), so the entry count can
 *     never exceed it; the discovery cache, which has no max_size, gets 16
 *     slots per backend (4 lists plus their leases, twice over), at least 64.
 *   - Arena bytes (values): response cache max_size x 1 KiB, at least 4 x
 *     max_entry_size, at most 1 GiB; auth cache max_size x 256 B (a
 *     principal and its scopes), at least 64 KiB; discovery cache 4 x
 *     server.max_message_size between 1 MiB and 256 MiB. A value may take
 *     at most half the arena (the ring must hold two), so a max_entry_size
 *     above that is lowered to it.
 *   - Backend stats (shm/backends.h): 2 records per configured backend,
 *     rounded up to a multiple of 64 (at least 64, at most 1024), so a
 *     reload that adds or renames a few backends finds free records in the
 *     same region, and a gateway without backends can gain some by reload.
 */
#include "master/shmsize.h"

#include "conf/conf.h"

#define KiB 1024ull
#define MiB (1024ull * 1024)
#define GiB (1024ull * 1024 * 1024)

static uint64_t clamp(uint64_t v, uint64_t lo, uint64_t hi)
{
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    return (v + 7) & ~7ull;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

void mb_shmsize_params(const struct mb_conf *conf, uint32_t worker_capacity,
                       struct mb_shm_params *p)
{
    const struct mb_conf_caching *c = &conf->caching;
    p->worker_capacity = worker_capacity;
    p->ratelimit_capacity = conf->rate_limit.capacity;
    for (int i = 0; i < MB_CACHE_KINDS; i++)
        p->caches[i] = (struct mb_cache_size){0};
    uint64_t nb = ((uint64_t)conf->nbackends * 2 + 63) / 64 * 64;
    p->backend_capacity = (uint32_t)(nb < 64 ? 64 : nb > 1024 ? 1024 : nb);
    if (!c->enabled)
        return;

    uint64_t n = conf->nbackends * 16;
    struct mb_cache_size *d = &p->caches[MB_CACHE_DISCOVERY];
    d->slots = (uint32_t)(n < 64 ? 64 : n > MB_CACHE_MAX_SLOTS ? MB_CACHE_MAX_SLOTS : n);
    d->arena = clamp(4 * conf->server.max_message_size, MiB, 256 * MiB);
    d->max_entry = d->arena / 2;

    struct mb_cache_size *r = &p->caches[MB_CACHE_RESPONSE];
    r->slots = c->response_cache.max_size;
    r->arena = clamp((uint64_t)c->response_cache.max_size * KiB,
                     4 * min_u64(c->response_cache.max_entry_size, GiB), GiB);
    r->max_entry = min_u64(c->response_cache.max_entry_size, r->arena / 2);

    struct mb_cache_size *a = &p->caches[MB_CACHE_AUTH];
    a->slots = c->auth_cache.max_size;
    a->arena = clamp((uint64_t)c->auth_cache.max_size * 256, 64 * KiB, GiB);
    a->max_entry = min_u64(4 * KiB, a->arena / 2);
}
