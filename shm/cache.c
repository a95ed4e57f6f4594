/*
 * shm/cache.c — the shared caches: slots with seqlock versions over a ring
 * arena, without locks (contract in cache.h, byte format in layout.h §6).
 *
 * THE ALGORITHM
 *
 * Every slot has one 64-bit word `ver`: 0 never used, even = stable (the
 * sequence number of its last write times 2), odd = being written. A write
 * of a slot is:
 *
 *   claim    CAS(ver, seen_even, 1 | owner << 1 | next_seq << 17): the
 *            writer's record index goes into the very word it claims with,
 *            so a process killed at any later instruction is known by the
 *            slot itself;
 *   reserve  CAS on the arena's `head` (a logical byte position that only
 *            grows) for len bytes rounded up to 8; a reservation that would
 *            cross the end of the arena starts at physical offset 0 (the
 *            skipped tail is wasted until the next round);
 *   fill     key, pos, len, expiry, flags, the value bytes and their hash;
 *   publish  a release store of next_seq << 1 (even: stable again). If the
 *            arena went round while the writer was filling (head > pos +
 *            arena_size), it publishes an empty slot instead.
 *
 * A read of a slot is a seqlock read: load ver (acquire; odd: retry, at most
 * READ_TRIES times, then give up on that slot), read the fields, copy the
 * value out of the arena, then (acquire fence) load ver and head again.
 * The copy is good only if ver did not change, head <= pos + arena_size
 * (no later reservation reached the value's bytes: reservations are
 * contiguous, so everything up to head may have been written), and the
 * value's hash matches `sum`. The hash catches the one case the two others
 * cannot: a writer that reserved long ago, was descheduled while the whole
 * arena went round, and wakes up to write its late bytes over a newer
 * value. A reader therefore never blocks and never returns a torn value.
 * mb_cache_same is the same read without the bytes: for a caller holding
 * a copy it verified earlier, an unchanged even version of the same slot
 * (still unexpired and in the arena) means that copy is still the value.
 *
 * Lookup probes from home = key.lo % nslots, at most MB_CACHE_PROBE slots,
 * and stops at a never-used slot. A store takes, in the probe window, the
 * slot already holding the key, else the first unusable one (never used,
 * deleted, expired, overwritten in the arena), else the live entry with the
 * oldest value (smallest pos: first in, first out, the order in which the
 * ring would overwrite it anyway), which counts as an eviction. Slots being
 * written are skipped. Since a store never goes past the first never-used
 * slot and slots never become unused again, a stored key always lies before
 * the first never-used slot of its window. nslots is the configured maximum
 * of entries, so the cache can never hold more.
 *
 * Two processes storing the same new key at once may leave two copies;
 * lookups take the first good one, deletions remove all.
 *
 * Leases (stampede control): the lease of key K is an entry of key
 * lease(K) (K with a fixed bit pattern mixed in) with flags LEASE and no
 * bytes. lease_take looks for a live lease, stores its own if none, and
 * then looks again: when it sees another live copy (another process did the
 * same at the same moment) it removes its own and reports "held". So at
 * most one process believes it holds a lease; when two race, both may back
 * off, and the one that retries first wins.
 *
 * Crash safety: a process killed between claim and publish leaves its slot
 * odd, naming its record. Readers skip it after bounded retries (a miss);
 * writers skip it. The master, after reaping the pid, turns it into an empty
 * stable slot with mb_cache_repair(). Killed anywhere else, it leaves
 * nothing behind but wasted arena bytes.
 */
#include "shm/cache.h"

#include <string.h>

#include "common/errors.h"
#include "shm/counters.h"
#include "shm/shm.h"

#define F_EMPTY 0u
#define F_VALUE 1u
#define F_LEASE 2u

#define OWNER_SHIFT 1
#define SEQ_SHIFT   17
#define SEQ_MASK    ((1ull << (64 - SEQ_SHIFT)) - 1)
/* Retries of one slot seen odd or changing under a reader. */
#define READ_TRIES 64
/* Claims lost to other writers before a store gives up (each loss is
 * another process's progress). */
#define CLAIM_TRIES 32
/* Mixed into a key to name its lease. */
#define LEASE_LO 0x6c65617365ull
#define LEASE_HI 0x9e3779b97f4a7c15ull

static const char *const names[MB_CACHE_KINDS] = {"discovery", "response", "auth"};

const char *mb_cache_name(uint32_t id)
{
    return id < MB_CACHE_KINDS ? names[id] : "unknown";
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void count(struct mb_cache *c, enum mb_cache_stat st, uint64_t n)
{
    if (c->shm == NULL || c->owner >= c->shm->worker_capacity || c->id >= MB_CACHE_KINDS)
        return;
    mb_counters_add(c->shm, c->owner, mb_counters_cache_id(st, c->id), (int64_t)n);
}

/* ---------------------------------------------------------------- geometry */

static uint64_t align8(uint64_t v)
{
    return (v + 7) & ~7ull;
}

bool mb_cache_size_valid(const struct mb_cache_size *sz)
{
    return sz->slots >= 1 && sz->slots <= MB_CACHE_MAX_SLOTS && sz->arena >= MB_CACHE_MIN_ARENA &&
           sz->arena <= MB_CACHE_MAX_ARENA && sz->arena % 8 == 0 && sz->max_entry >= 1 &&
           sz->max_entry <= sz->arena / 2;
}

uint64_t mb_cache_area_bytes(const struct mb_cache_size *sz)
{
    return sizeof(struct mb_shm_cache_hdr) +
           (uint64_t)sz->slots * sizeof(struct mb_shm_cache_slot) + sz->arena;
}

void mb_cache_format(void *area, uint32_t id, const struct mb_cache_size *sz)
{
    struct mb_shm_cache_hdr *h = area;
    h->id = id;
    h->nslots = sz->slots;
    h->arena_size = sz->arena;
    h->max_entry = sz->max_entry;
    h->head = 0;
    __atomic_store_n(&h->magic, MB_SHM_CACHE_MAGIC, __ATOMIC_RELEASE);
}

int mb_cache_bind(struct mb_cache *c, void *area, uint64_t len, struct mb_shm *shm,
                  const uint64_t seed[2])
{
    struct mb_shm_cache_hdr *h = area;
    memset(c, 0, sizeof(*c));
    c->owner = MB_CACHE_OWNER_NONE;
    if (len < sizeof(*h) || __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != MB_SHM_CACHE_MAGIC)
        return MB_ERR;
    struct mb_cache_size sz = {
        .slots = h->nslots, .arena = h->arena_size, .max_entry = h->max_entry};
    if (!mb_cache_size_valid(&sz) || mb_cache_area_bytes(&sz) > len || h->id >= MB_CACHE_KINDS)
        return MB_ERR;
    c->hdr = h;
    c->slots = (struct mb_shm_cache_slot *)((char *)area + sizeof(*h));
    c->arena = (unsigned char *)(c->slots + sz.slots);
    c->id = h->id;
    c->nslots = sz.slots;
    c->arena_size = sz.arena;
    c->max_entry = sz.max_entry;
    c->shm = shm;
    c->seed[0] = seed[0] ^ 0x5ca1ab1e0ddba11ull;
    c->seed[1] = seed[1] ^ ((uint64_t)h->id << 56);
    return 0;
}

void mb_cache_set_owner(struct mb_cache *c, uint32_t worker_index)
{
    c->owner = worker_index < MB_CACHE_OWNER_NONE ? worker_index : MB_CACHE_OWNER_NONE;
}

/* ---------------------------------------------------------------- hashing */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static uint64_t rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

/* Two 64-bit lanes over 8-byte words; the length and the seed feed both. */
static void hash128(const uint64_t seed[2], const void *data, size_t len, uint64_t *lo,
                    uint64_t *hi)
{
    const unsigned char *p = data;
    uint64_t a = seed[0] ^ mix(len + 0x51ed27ull), b = seed[1] ^ rotl(mix(len), 21);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        p += 8;
        len -= 8;
        a = rotl(a ^ (w * 0x9e3779b97f4a7c15ull), 27) * 0xc2b2ae3d27d4eb4full + b;
        b = rotl(b + w, 31) * 0x165667b19e3779f9ull ^ a;
    }
    if (len > 0) {
        uint64_t w = 0;
        memcpy(&w, p, len);
        a = rotl(a ^ (w * 0x9e3779b97f4a7c15ull), 27) * 0xc2b2ae3d27d4eb4full + b;
        b = rotl(b + w, 31) * 0x165667b19e3779f9ull ^ a;
    }
    *lo = mix(a ^ rotl(b, 17));
    *hi = mix(b + rotl(a, 43));
}

struct mb_cache_key mb_cache_key(const struct mb_cache *c, const void *data, size_t len)
{
    struct mb_cache_key k;
    hash128(c->seed, data, len, &k.lo, &k.hi);
    return k;
}

uint64_t mb_cache_sum(const void *data, size_t len)
{
    static const uint64_t seed[2] = {0x243f6a8885a308d3ull, 0x13198a2e03707344ull};
    uint64_t lo, hi;
    hash128(seed, data, len, &lo, &hi);
    return lo ^ hi;
}

static struct mb_cache_key lease_key(struct mb_cache_key k)
{
    struct mb_cache_key l = {.lo = mix(k.lo ^ LEASE_LO), .hi = k.hi ^ LEASE_HI};
    return l;
}

/* ---------------------------------------------------------------- slots */

/* A consistent copy of a stable slot's fields (seqlock read); 0, or MB_AGAIN
 * when the slot stayed odd or kept changing (*ver then holds what was seen). */
struct snap {
    uint64_t ver, key_lo, key_hi, pos, expires_ms, stored_ms, sum;
    uint32_t len, flags;
};

static int read_slot(const struct mb_shm_cache_slot *s, struct snap *o)
{
    for (int t = 0; t < READ_TRIES; t++) {
        uint64_t v = __atomic_load_n(&s->ver, __ATOMIC_ACQUIRE);
        if (v & 1) {
            cpu_relax();
            o->ver = v;
            continue;
        }
        o->ver = v;
        o->key_lo = __atomic_load_n(&s->key_lo, __ATOMIC_RELAXED);
        o->key_hi = __atomic_load_n(&s->key_hi, __ATOMIC_RELAXED);
        o->pos = __atomic_load_n(&s->pos, __ATOMIC_RELAXED);
        o->expires_ms = __atomic_load_n(&s->expires_ms, __ATOMIC_RELAXED);
        o->len = __atomic_load_n(&s->len, __ATOMIC_RELAXED);
        o->flags = __atomic_load_n(&s->flags, __ATOMIC_RELAXED);
        o->stored_ms = __atomic_load_n(&s->stored_ms, __ATOMIC_RELAXED);
        o->sum = __atomic_load_n(&s->sum, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&s->ver, __ATOMIC_RELAXED) == v)
            return 0;
    }
    return MB_AGAIN;
}

static uint64_t head_of(const struct mb_cache *c)
{
    return __atomic_load_n(&c->hdr->head, __ATOMIC_ACQUIRE);
}

/* The value's bytes are still in the arena (no reservation reached them). */
static bool in_arena(const struct mb_cache *c, uint64_t pos, uint64_t head)
{
    return head <= pos + c->arena_size;
}

static bool usable(const struct mb_cache *c, const struct snap *s, uint64_t now, uint64_t head)
{
    if (s->ver == 0 || s->flags == F_EMPTY || s->expires_ms <= now)
        return false;
    return s->flags == F_LEASE || in_arena(c, s->pos, head);
}

static uint64_t writing_word(uint32_t owner, uint64_t next_seq)
{
    return 1ull | ((uint64_t)(owner & 0xffff) << OWNER_SHIFT) |
           ((next_seq & SEQ_MASK) << SEQ_SHIFT);
}

/* Claims a stable slot seen as ver; returns the even word to publish, or 0. */
static uint64_t claim(struct mb_cache *c, struct mb_shm_cache_slot *s, uint64_t ver)
{
    uint64_t next = ((ver >> 1) + 1) & SEQ_MASK;
    if (next == 0)
        next = 1; /* 0 is "never used" */
    uint64_t w = writing_word(c->owner, next);
    if (!__atomic_compare_exchange_n(&s->ver, &ver, w, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
        return 0;
    /* Readers must see the claim before any field or byte changes. */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    return next << 1;
}

static void publish_empty(struct mb_shm_cache_slot *s, uint64_t next_ver)
{
    __atomic_store_n(&s->flags, F_EMPTY, __ATOMIC_RELAXED);
    __atomic_store_n(&s->expires_ms, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->len, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->ver, next_ver, __ATOMIC_RELEASE);
}

/* Empties a stable slot whose snapshot is s (a dead or deleted entry);
 * true when this call did it (so it is counted once). */
static bool retire(struct mb_cache *c, struct mb_shm_cache_slot *slot, const struct snap *s)
{
    uint64_t next = claim(c, slot, s->ver);
    if (next == 0)
        return false;
    publish_empty(slot, next);
    return true;
}

/* ---------------------------------------------------------------- get */

static bool key_eq(const struct snap *s, struct mb_cache_key k)
{
    return s->key_lo == k.lo && s->key_hi == k.hi;
}

int mb_cache_get(struct mb_cache *c, struct mb_cache_key key, uint64_t now_ms, void *buf,
                 size_t cap, size_t *len)
{
    struct mb_cache_stamp st;
    return mb_cache_get_stamped(c, key, now_ms, buf, cap, len, &st);
}

int mb_cache_get_stamped(struct mb_cache *c, struct mb_cache_key key, uint64_t now_ms, void *buf,
                         size_t cap, size_t *len, struct mb_cache_stamp *stamp)
{
    *len = 0;
    stamp->ver = 0;
    stamp->slot = 0;
    if (c->hdr == NULL)
        return MB_ERR;
    unsigned probe = c->nslots < MB_CACHE_PROBE ? c->nslots : MB_CACHE_PROBE;
    uint64_t home = key.lo % c->nslots;
    for (unsigned i = 0; i < probe; i++) {
        struct mb_shm_cache_slot *slot = &c->slots[(home + i) % c->nslots];
        for (int t = 0; t < READ_TRIES; t++) {
            struct snap s;
            if (read_slot(slot, &s) != 0)
                break; /* stuck odd: treat as not ours */
            if (s.ver == 0)
                goto miss; /* the end of the probe sequence */
            if (!key_eq(&s, key) || s.flags != F_VALUE)
                break;
            if (s.expires_ms <= now_ms)
                break; /* a newer copy may follow */
            if (s.len > cap) {
                *len = s.len;
                return MB_AGAIN;
            }
            uint64_t off = s.pos % c->arena_size;
            if (off + s.len > c->arena_size)
                break; /* cannot be: a torn snapshot; look no further here */
            memcpy(buf, c->arena + off, s.len);
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            uint64_t v2 = __atomic_load_n(&slot->ver, __ATOMIC_RELAXED);
            uint64_t head = head_of(c);
            if (v2 != s.ver)
                continue; /* rewritten while we copied: read it again */
            if (!in_arena(c, s.pos, head)) {
                if (retire(c, slot, &s))
                    count(c, MB_CACHE_STAT_EVICTIONS, 1);
                break;
            }
            if (mb_cache_sum(buf, s.len) != s.sum)
                break; /* overwritten by a writer that woke up late */
            *len = s.len;
            stamp->ver = s.ver;
            stamp->slot = (uint32_t)((home + i) % c->nslots);
            count(c, MB_CACHE_STAT_HITS, 1);
            return 0;
        }
    }
miss:
    count(c, MB_CACHE_STAT_MISSES, 1);
    return MB_DECLINED;
}

/* The metadata half of a lookup: the same probe and the same seqlock
 * snapshot of each slot as mb_cache_get, but the first live copy of key is
 * only compared with the stamp. A slot's version changes with every claim
 * (store, delete, expiry clean-up, repair), so an unchanged even version
 * means the very write the stamp names; the arena check still applies
 * because the ring may have gone round since. Conservative: whatever
 * mb_cache_get would have to look past (a copy it would skip) makes this a
 * "no", and the caller takes the long way. */
int mb_cache_same(struct mb_cache *c, struct mb_cache_key key, uint64_t now_ms,
                  const struct mb_cache_stamp *stamp)
{
    if (c->hdr == NULL || stamp->ver == 0 || stamp->slot >= c->nslots)
        return MB_DECLINED;
    unsigned probe = c->nslots < MB_CACHE_PROBE ? c->nslots : MB_CACHE_PROBE;
    uint64_t home = key.lo % c->nslots;
    for (unsigned i = 0; i < probe; i++) {
        uint32_t idx = (uint32_t)((home + i) % c->nslots);
        struct snap s;
        if (read_slot(&c->slots[idx], &s) != 0)
            continue; /* stuck odd: not ours, as in mb_cache_get */
        if (s.ver == 0)
            return MB_DECLINED; /* the end of the probe sequence */
        if (!key_eq(&s, key) || s.flags != F_VALUE || s.expires_ms <= now_ms)
            continue;
        if (idx != stamp->slot || s.ver != stamp->ver || !in_arena(c, s.pos, head_of(c)))
            return MB_DECLINED;
        count(c, MB_CACHE_STAT_HITS, 1);
        return 0;
    }
    return MB_DECLINED;
}

/* ---------------------------------------------------------------- put */

/* Reserves n bytes (n <= arena / 2) in the ring; returns the logical
 * position. */
static uint64_t reserve(struct mb_cache *c, uint64_t n)
{
    uint64_t h = __atomic_load_n(&c->hdr->head, __ATOMIC_RELAXED), start;
    do {
        uint64_t off = h % c->arena_size;
        start = off + n > c->arena_size ? h + (c->arena_size - off) : h;
    } while (!__atomic_compare_exchange_n(&c->hdr->head, &h, start + n, true, __ATOMIC_ACQ_REL,
                                          __ATOMIC_RELAXED));
    return start;
}

/* Picks and claims the slot for key (see the top of the file). */
static struct mb_shm_cache_slot *take_slot(struct mb_cache *c, struct mb_cache_key key,
                                           uint64_t now, uint64_t *next_ver, bool *evicted)
{
    unsigned probe = c->nslots < MB_CACHE_PROBE ? c->nslots : MB_CACHE_PROBE;
    uint64_t home = key.lo % c->nslots;
    for (int attempt = 0; attempt < CLAIM_TRIES; attempt++) {
        struct mb_shm_cache_slot *same = NULL, *free_slot = NULL, *oldest = NULL;
        struct snap same_s = {0}, free_s = {0}, oldest_s = {0};
        uint64_t head = head_of(c);
        for (unsigned i = 0; i < probe; i++) {
            struct mb_shm_cache_slot *slot = &c->slots[(home + i) % c->nslots];
            struct snap s;
            if (read_slot(slot, &s) != 0)
                continue; /* being written by someone else */
            if (s.ver == 0) {
                if (free_slot == NULL) {
                    free_slot = slot;
                    free_s = s;
                }
                break;
            }
            if (key_eq(&s, key) && s.flags != F_EMPTY) {
                same = slot;
                same_s = s;
                break;
            }
            if (!usable(c, &s, now, head)) {
                if (free_slot == NULL) {
                    free_slot = slot;
                    free_s = s;
                }
                continue;
            }
            if (oldest == NULL || s.pos < oldest_s.pos) {
                oldest = slot;
                oldest_s = s;
            }
        }
        struct mb_shm_cache_slot *slot = same ? same : free_slot ? free_slot : oldest;
        const struct snap *s = same ? &same_s : free_slot ? &free_s : &oldest_s;
        if (slot == NULL)
            return NULL; /* every slot in reach is being written */
        uint64_t next = claim(c, slot, s->ver);
        if (next == 0)
            continue;
        *next_ver = next;
        *evicted = slot == oldest && same == NULL && free_slot == NULL;
        return slot;
    }
    return NULL;
}

void *mb_cache_put_begin(struct mb_cache *c, struct mb_cache_key key, size_t len, uint64_t ttl_ms,
                         uint64_t now_ms, struct mb_cache_write *w, int *rc)
{
    memset(w, 0, sizeof(*w));
    if (c->hdr == NULL) {
        *rc = MB_ERR;
        return NULL;
    }
    if (len > c->max_entry) {
        count(c, MB_CACHE_STAT_OVERSIZE, 1);
        *rc = MB_DECLINED;
        return NULL;
    }
    if (ttl_ms == 0) {
        *rc = MB_DECLINED;
        return NULL;
    }
    uint64_t next;
    bool evicted;
    struct mb_shm_cache_slot *slot = take_slot(c, key, now_ms, &next, &evicted);
    if (slot == NULL) {
        *rc = MB_AGAIN;
        return NULL;
    }
    uint64_t pos = reserve(c, align8(len ? len : 1));
    __atomic_store_n(&slot->key_lo, key.lo, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->key_hi, key.hi, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->pos, pos, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->len, (uint32_t)len, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->expires_ms, now_ms + ttl_ms, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->stored_ms, now_ms, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->flags, F_VALUE, __ATOMIC_RELAXED);
    w->c = c;
    w->slot = slot;
    w->next_ver = next;
    w->evicted = evicted;
    *rc = 0;
    return c->arena + pos % c->arena_size;
}

void mb_cache_put_commit(struct mb_cache_write *w, uint64_t sum)
{
    struct mb_cache *c = w->c;
    struct mb_shm_cache_slot *slot = w->slot;
    uint64_t pos = __atomic_load_n(&slot->pos, __ATOMIC_RELAXED);
    uint32_t len = __atomic_load_n(&slot->len, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->sum, sum, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (!in_arena(c, pos, head_of(c))) {
        /* The ring went round while we wrote: our bytes may be someone
         * else's by now. */
        publish_empty(slot, w->next_ver);
        return;
    }
    __atomic_store_n(&slot->ver, w->next_ver, __ATOMIC_RELEASE);
    if (w->evicted)
        count(c, MB_CACHE_STAT_EVICTIONS, 1);
    count(c, MB_CACHE_STAT_STORES, 1);
    count(c, MB_CACHE_STAT_STORED_BYTES, len);
}

int mb_cache_put(struct mb_cache *c, struct mb_cache_key key, const void *val, size_t len,
                 uint64_t ttl_ms, uint64_t now_ms)
{
    struct mb_cache_write w;
    int rc;
    uint64_t sum = mb_cache_sum(val, len);
    void *dst = mb_cache_put_begin(c, key, len, ttl_ms, now_ms, &w, &rc);
    if (dst == NULL)
        return rc;
    memcpy(dst, val, len);
    mb_cache_put_commit(&w, sum);
    return 0;
}

/* ---------------------------------------------------------------- delete, leases */

static int del_key(struct mb_cache *c, struct mb_cache_key key, struct mb_shm_cache_slot *except)
{
    int n = 0;
    if (c->hdr == NULL)
        return 0;
    unsigned probe = c->nslots < MB_CACHE_PROBE ? c->nslots : MB_CACHE_PROBE;
    uint64_t home = key.lo % c->nslots;
    for (unsigned i = 0; i < probe; i++) {
        struct mb_shm_cache_slot *slot = &c->slots[(home + i) % c->nslots];
        for (int t = 0; t < CLAIM_TRIES; t++) {
            struct snap s;
            if (read_slot(slot, &s) != 0)
                break;
            if (s.ver == 0)
                return n;
            if (slot == except || !key_eq(&s, key) || s.flags == F_EMPTY)
                break;
            if (retire(c, slot, &s)) {
                n++;
                break;
            }
        }
    }
    return n;
}

int mb_cache_del(struct mb_cache *c, struct mb_cache_key key)
{
    int n = del_key(c, key, NULL);
    del_key(c, lease_key(key), NULL);
    if (n > 0)
        count(c, MB_CACHE_STAT_INVALIDATIONS, (uint64_t)n);
    return n;
}

/* A live copy of key (a lease) in the window other than except. */
static bool find_live(struct mb_cache *c, struct mb_cache_key key, uint64_t now,
                      const struct mb_shm_cache_slot *except)
{
    unsigned probe = c->nslots < MB_CACHE_PROBE ? c->nslots : MB_CACHE_PROBE;
    uint64_t home = key.lo % c->nslots, head = head_of(c);
    for (unsigned i = 0; i < probe; i++) {
        struct mb_shm_cache_slot *slot = &c->slots[(home + i) % c->nslots];
        struct snap s;
        if (slot == except)
            continue;
        if (read_slot(slot, &s) != 0) {
            /* Being written: possibly a competitor's lease; assume so. */
            if (((s.ver >> OWNER_SHIFT) & 0xffff) != c->owner)
                return true;
            continue;
        }
        if (s.ver == 0)
            return false;
        if (key_eq(&s, key) && usable(c, &s, now, head))
            return true;
    }
    return false;
}

bool mb_cache_leased(struct mb_cache *c, struct mb_cache_key key, uint64_t now_ms)
{
    if (c->hdr == NULL)
        return false;
    return find_live(c, lease_key(key), now_ms, NULL);
}

int mb_cache_lease_take(struct mb_cache *c, struct mb_cache_key key, uint64_t ttl_ms,
                        uint64_t now_ms)
{
    if (c->hdr == NULL)
        return MB_ERR;
    struct mb_cache_key lk = lease_key(key);
    if (find_live(c, lk, now_ms, NULL))
        return 0;
    uint64_t next;
    bool evicted;
    struct mb_shm_cache_slot *slot = take_slot(c, lk, now_ms, &next, &evicted);
    if (slot == NULL)
        return MB_AGAIN;
    __atomic_store_n(&slot->key_lo, lk.lo, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->key_hi, lk.hi, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->pos, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->len, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->expires_ms, now_ms + (ttl_ms ? ttl_ms : 1), __ATOMIC_RELAXED);
    __atomic_store_n(&slot->stored_ms, now_ms, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->sum, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->flags, F_LEASE, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->ver, next, __ATOMIC_SEQ_CST);
    /* Dekker: our publication before our look at the others'. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (evicted)
        count(c, MB_CACHE_STAT_EVICTIONS, 1);
    /* Another process may have published its lease at the same moment. */
    if (find_live(c, lk, now_ms, slot)) {
        del_key(c, lk, NULL);
        return 0;
    }
    return 1;
}

void mb_cache_lease_drop(struct mb_cache *c, struct mb_cache_key key)
{
    del_key(c, lease_key(key), NULL);
}

/* ---------------------------------------------------------------- master and readers */

uint64_t mb_cache_repair(struct mb_cache *c, uint32_t worker_index)
{
    uint64_t n = 0;
    if (c->hdr == NULL || worker_index >= MB_CACHE_OWNER_NONE)
        return 0;
    for (uint32_t i = 0; i < c->nslots; i++) {
        struct mb_shm_cache_slot *s = &c->slots[i];
        uint64_t w = __atomic_load_n(&s->ver, __ATOMIC_ACQUIRE);
        if (!(w & 1) || ((w >> OWNER_SHIFT) & 0xffff) != worker_index)
            continue;
        /* The writer is dead: nobody else writes a claimed slot. */
        uint64_t next = (w >> SEQ_SHIFT) & SEQ_MASK;
        if (next == 0)
            next = 1;
        __atomic_store_n(&s->flags, F_EMPTY, __ATOMIC_RELAXED);
        __atomic_store_n(&s->expires_ms, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&s->len, 0, __ATOMIC_RELAXED);
        if (__atomic_compare_exchange_n(&s->ver, &w, next << 1, false, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED))
            n++;
    }
    return n;
}

void mb_cache_stats(const struct mb_cache *c, uint64_t now_ms, struct mb_cache_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (c->hdr == NULL)
        return;
    st->slots = c->nslots;
    st->arena = c->arena_size;
    st->max_entry = c->max_entry;
    uint64_t head = head_of(c);
    for (uint32_t i = 0; i < c->nslots; i++) {
        struct snap s;
        if (read_slot(&c->slots[i], &s) != 0) {
            st->writing++;
            continue;
        }
        if (s.ver == 0)
            st->empty++;
        else if (!usable(c, &s, now_ms, head))
            st->stale++;
        else if (s.flags == F_LEASE)
            st->leases++;
        else {
            st->entries++;
            st->bytes += s.len;
        }
    }
}
