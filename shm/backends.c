/*
 * shm/backends.c — the backend stats section (layout.h §7, backends.h).
 *
 * Why this shape: the up state is one bit per worker record rather than a
 * shared count, so the master can take back exactly a dead worker's part
 * (atomic AND of its bit) without knowing what it had; the gauges are
 * per-worker cells with a single writer for the same reason (and so an
 * update is a plain store, not a locked instruction). Request outcomes, the
 * request matrix by method and status, and the EWMA are shared words every
 * worker updates atomically (a backend's requests are spread over all
 * workers, and a per-worker matrix would cost 1 KiB per worker per
 * backend): a counter
 * never needs repair, and a half-finished CAS loop leaves the previous
 * value, which is a valid EWMA.
 */
#include "shm/backends.h"

#include <sched.h>
#include <string.h>

#include "common/errors.h"
#include "common/time.h"
#include "shm/counters.h"
#include "shm/shm.h"

_Static_assert(MB_SHM_BACKEND_METHODS == MB_METHOD__COUNT,
               "the backend request matrix has the per-row matrix's methods");
_Static_assert(MB_SHM_BACKEND_REQ_STATUSES == MB_REQ__COUNT,
               "the backend request matrix has the per-row matrix's statuses");

#define CLAIM_WAIT_SPINS 100000 /* sched_yield rounds before a claim is presumed dead */
#define EWMA_SHIFT       3      /* alpha = 1/8 */

static uint32_t mask_words(uint32_t nworkers)
{
    return (nworkers + 63) / 64;
}

/* Bytes up to the end of the cells: what a minor-2 record holds (and where
 * the request matrix starts). */
static uint64_t base_size(uint32_t worker_capacity)
{
    return sizeof(struct mb_shm_backend) + (uint64_t)mask_words(worker_capacity) * 8 +
           (uint64_t)worker_capacity * sizeof(struct mb_shm_backend_cell);
}

static uint64_t align64(uint64_t n)
{
    return (n + MB_SHM_ALIGN - 1) & ~(uint64_t)(MB_SHM_ALIGN - 1);
}

uint32_t mb_bstats_entry_size(uint32_t worker_capacity)
{
    return (uint32_t)align64(base_size(worker_capacity) + sizeof(struct mb_shm_backend_methods));
}

int mb_bstats_open(const struct mb_shm *shm, struct mb_bstats *v)
{
    memset(v, 0, sizeof(*v));
    const struct mb_shm_section *s = mb_shm_section_find(shm, MB_SHM_SEC_BACKENDS);
    /* A region of minor 2 has records without the request matrix: still
     * readable, the matrix is just absent. */
    if (s == NULL || s->items == 0 || s->entry_size < align64(base_size(s->items)) ||
        s->count > UINT32_MAX)
        return MB_ERR;
    v->has_methods = s->entry_size >= base_size(s->items) + sizeof(struct mb_shm_backend_methods);
    v->base = (char *)shm->base + s->offset;
    v->count = (uint32_t)s->count;
    v->stride = s->entry_size;
    v->nworkers = s->items;
    v->mask_words = mask_words(s->items);
    return MB_OK;
}

static struct mb_shm_backend *rec_at(const struct mb_bstats *v, int rec)
{
    return (struct mb_shm_backend *)(v->base + (size_t)rec * v->stride);
}

static uint64_t *mask_of(struct mb_shm_backend *r)
{
    return (uint64_t *)(r + 1);
}

static struct mb_shm_backend_cell *cells_of(const struct mb_bstats *v, struct mb_shm_backend *r)
{
    return (struct mb_shm_backend_cell *)(mask_of(r) + v->mask_words);
}

static struct mb_shm_backend_methods *methods_of(const struct mb_bstats *v,
                                                 struct mb_shm_backend *r)
{
    return (struct mb_shm_backend_methods *)(cells_of(v, r) + v->nworkers);
}

static bool valid(const struct mb_bstats *v, int rec)
{
    return v != NULL && v->base != NULL && rec >= 0 && (uint32_t)rec < v->count;
}

static void copy_label(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* The label as it would be stored, for comparing with a record. */
static bool same_labels(const struct mb_shm_backend *r, const char *name, const char *endpoint)
{
    char n[MB_SHM_BACKEND_NAME], e[MB_SHM_BACKEND_ENDPOINT];
    copy_label(n, sizeof(n), name);
    copy_label(e, sizeof(e), endpoint);
    return strncmp(r->name, n, sizeof(n)) == 0 && strncmp(r->endpoint, e, sizeof(e)) == 0;
}

int mb_bstats_claim(const struct mb_bstats *v, const char *name, const char *endpoint,
                    uint32_t owner)
{
    if (v == NULL || v->base == NULL)
        return -1;
    for (uint32_t i = 0; i < v->count; i++) {
        struct mb_shm_backend *r = rec_at(v, (int)i);
        unsigned spins = 0;
        for (;;) {
            uint64_t st = __atomic_load_n(&r->state, __ATOMIC_ACQUIRE);
            if (st == MB_SHM_BACKEND_PUBLISHED) {
                if (same_labels(r, name, endpoint))
                    return (int)i;
                break;
            }
            if (st == 0) {
                uint64_t want = MB_SHM_BACKEND_CLAIMED | owner;
                if (!__atomic_compare_exchange_n(&r->state, &st, want, false, __ATOMIC_ACQ_REL,
                                                 __ATOMIC_ACQUIRE))
                    continue; /* someone else claimed it: look again */
                copy_label(r->name, sizeof(r->name), name);
                copy_label(r->endpoint, sizeof(r->endpoint), endpoint);
                __atomic_store_n(&r->changed_ms, mb_time_wall_ms(), __ATOMIC_RELAXED);
                __atomic_store_n(&r->state, MB_SHM_BACKEND_PUBLISHED, __ATOMIC_RELEASE);
                return (int)i;
            }
            /* Being claimed: the claimer writes two strings and publishes;
             * wait, unless it seems dead (the master frees it on reap). */
            if (++spins > CLAIM_WAIT_SPINS)
                break;
            sched_yield();
        }
    }
    return -1;
}

void mb_bstats_set_up(const struct mb_bstats *v, int rec, uint32_t worker, bool up)
{
    if (!valid(v, rec) || worker >= v->nworkers)
        return;
    struct mb_shm_backend *r = rec_at(v, rec);
    uint64_t *word = &mask_of(r)[worker / 64], bit = 1ull << (worker % 64);
    uint64_t old = up ? __atomic_fetch_or(word, bit, __ATOMIC_RELEASE)
                      : __atomic_fetch_and(word, ~bit, __ATOMIC_RELEASE);
    if (((old & bit) != 0) != up)
        __atomic_store_n(&r->changed_ms, mb_time_wall_ms(), __ATOMIC_RELAXED);
}

void mb_bstats_outcome(const struct mb_bstats *v, int rec, enum mb_bstats_status st,
                       uint64_t latency_us)
{
    if (!valid(v, rec) || (unsigned)st >= MB_SHM_BACKEND_STATUSES)
        return;
    struct mb_shm_backend *r = rec_at(v, rec);
    __atomic_fetch_add(&r->requests[st], 1, __ATOMIC_RELAXED);
    if ((st != MB_BSTATS_OK && st != MB_BSTATS_ERROR) || latency_us == 0)
        return;
    uint64_t old = __atomic_load_n(&r->latency_us, __ATOMIC_RELAXED), next;
    do {
        /* The first answer seeds the average; afterwards each one moves
         * it by 1/8 of the difference (rounded toward the new value). */
        if (old == 0)
            next = latency_us;
        else if (latency_us >= old)
            next = old + ((latency_us - old + (1u << EWMA_SHIFT) - 1) >> EWMA_SHIFT);
        else
            next = old - ((old - latency_us) >> EWMA_SHIFT);
        if (next == 0)
            next = 1;
    } while (!__atomic_compare_exchange_n(&r->latency_us, &old, next, true, __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED));
}

bool mb_bstats_request(const struct mb_bstats *v, int rec, unsigned method, unsigned status)
{
    if (!valid(v, rec) || !v->has_methods || method >= MB_SHM_BACKEND_METHODS ||
        status >= MB_SHM_BACKEND_REQ_STATUSES)
        return false;
    __atomic_fetch_add(&methods_of(v, rec_at(v, rec))->n[method][status], 1, __ATOMIC_RELAXED);
    return true;
}

void mb_bstats_gauge_add(const struct mb_bstats *v, int rec, uint32_t worker,
                         enum mb_bstats_gauge g, int64_t delta)
{
    if (!valid(v, rec) || worker >= v->nworkers)
        return;
    struct mb_shm_backend_cell *c = &cells_of(v, rec_at(v, rec))[worker];
    uint32_t *f = g == MB_BSTATS_IN_FLIGHT      ? &c->in_flight
                  : g == MB_BSTATS_CONNS_ACTIVE ? &c->conns_active
                                                : &c->conns_idle;
    uint32_t cur = __atomic_load_n(f, __ATOMIC_RELAXED);
    int64_t next = (int64_t)cur + delta;
    __atomic_store_n(f, (uint32_t)(next < 0 ? 0 : next), __ATOMIC_RELAXED);
}

void mb_bstats_repair(const struct mb_bstats *v, uint32_t worker)
{
    if (v == NULL || v->base == NULL || worker >= v->nworkers)
        return;
    for (uint32_t i = 0; i < v->count; i++) {
        struct mb_shm_backend *r = rec_at(v, (int)i);
        uint64_t st = __atomic_load_n(&r->state, __ATOMIC_ACQUIRE);
        if (st == (MB_SHM_BACKEND_CLAIMED | worker)) {
            /* Died between claim and publish: the record was never used. */
            memset(r->name, 0, sizeof(r->name));
            memset(r->endpoint, 0, sizeof(r->endpoint));
            __atomic_store_n(&r->state, 0, __ATOMIC_RELEASE);
            continue;
        }
        if (st != MB_SHM_BACKEND_PUBLISHED)
            continue;
        mb_bstats_set_up(v, (int)i, worker, false);
        struct mb_shm_backend_cell *c = &cells_of(v, r)[worker];
        __atomic_store_n(&c->in_flight, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&c->conns_active, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&c->conns_idle, 0, __ATOMIC_RELAXED);
    }
}

void mb_shm_backends_repair(struct mb_shm *shm, uint32_t worker)
{
    struct mb_bstats v;
    if (mb_bstats_open(shm, &v) == MB_OK)
        mb_bstats_repair(&v, worker);
}

static void add_record(const struct mb_bstats *v, struct mb_shm_backend *r,
                       struct mb_bstats_snap *s)
{
    const uint64_t *mask = mask_of(r);
    for (uint32_t w = 0; w < v->mask_words; w++)
        s->up_workers +=
            (uint32_t)__builtin_popcountll(__atomic_load_n(&mask[w], __ATOMIC_ACQUIRE));
    for (int k = 0; k < MB_SHM_BACKEND_STATUSES; k++)
        s->requests[k] += __atomic_load_n(&r->requests[k], __ATOMIC_RELAXED);
    uint64_t lat = __atomic_load_n(&r->latency_us, __ATOMIC_RELAXED);
    if (lat > s->latency_us)
        s->latency_us = lat;
    const struct mb_shm_backend_cell *c = cells_of(v, r);
    for (uint32_t w = 0; w < v->nworkers; w++) {
        s->in_flight += __atomic_load_n(&c[w].in_flight, __ATOMIC_RELAXED);
        s->conns_active += __atomic_load_n(&c[w].conns_active, __ATOMIC_RELAXED);
        s->conns_idle += __atomic_load_n(&c[w].conns_idle, __ATOMIC_RELAXED);
    }
    uint64_t ch = __atomic_load_n(&r->changed_ms, __ATOMIC_RELAXED);
    if (ch > s->changed_ms)
        s->changed_ms = ch;
}

size_t mb_bstats_snapshot(const struct mb_bstats *v, struct mb_bstats_snap *out, size_t max)
{
    size_t n = 0;
    if (v == NULL || v->base == NULL)
        return 0;
    for (uint32_t i = 0; i < v->count; i++) {
        struct mb_shm_backend *r = rec_at(v, (int)i);
        if (__atomic_load_n(&r->state, __ATOMIC_ACQUIRE) != MB_SHM_BACKEND_PUBLISHED)
            continue;
        size_t k = 0;
        for (; k < n; k++)
            if (strncmp(out[k].name, r->name, MB_SHM_BACKEND_NAME) == 0 &&
                strncmp(out[k].endpoint, r->endpoint, MB_SHM_BACKEND_ENDPOINT) == 0)
                break;
        if (k == n) {
            if (n == max)
                continue;
            memset(&out[n], 0, sizeof(out[n]));
            memcpy(out[n].name, r->name, sizeof(out[n].name));
            out[n].name[sizeof(out[n].name) - 1] = '\0';
            memcpy(out[n].endpoint, r->endpoint, sizeof(out[n].endpoint));
            out[n].endpoint[sizeof(out[n].endpoint) - 1] = '\0';
            n++;
        }
        add_record(v, r, &out[k]);
    }
    return n;
}

size_t mb_bstats_methods_snapshot(const struct mb_bstats *v, struct mb_bstats_methods *out,
                                  size_t max)
{
    size_t n = 0;
    if (v == NULL || v->base == NULL || !v->has_methods)
        return 0;
    for (uint32_t i = 0; i < v->count; i++) {
        struct mb_shm_backend *r = rec_at(v, (int)i);
        if (__atomic_load_n(&r->state, __ATOMIC_ACQUIRE) != MB_SHM_BACKEND_PUBLISHED)
            continue;
        size_t k = 0;
        for (; k < n; k++)
            if (strncmp(out[k].name, r->name, MB_SHM_BACKEND_NAME) == 0)
                break;
        if (k == n) {
            if (n == max)
                continue;
            memset(&out[n], 0, sizeof(out[n]));
            memcpy(out[n].name, r->name, sizeof(out[n].name));
            out[n].name[sizeof(out[n].name) - 1] = '\0';
            n++;
        }
        const struct mb_shm_backend_methods *m = methods_of(v, r);
        for (int a = 0; a < MB_SHM_BACKEND_METHODS; a++)
            for (int b = 0; b < MB_SHM_BACKEND_REQ_STATUSES; b++)
                out[k].n[a][b] += __atomic_load_n(&m->n[a][b], __ATOMIC_RELAXED);
    }
    return n;
}

const char *mb_bstats_status_name(int st)
{
    static const char *const names[MB_SHM_BACKEND_STATUSES] = {"ok", "error", "timeout",
                                                               "unavailable"};
    return (unsigned)st < MB_SHM_BACKEND_STATUSES ? names[st] : "unknown";
}
