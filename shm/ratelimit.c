/*
 * shm/ratelimit.c — GCRA buckets in an open-addressing table shared by all
 * processes, without locks (contract in ratelimit.h, slot format in layout.h
 * §5).
 *
 * THE ALGORITHM
 *
 * A bucket is one 64-bit word, the theoretical arrival time (TAT) of the next
 * request. With T = 1/rate and tau = T * (burst - 1), a request at `now` is
 * rejected if now < tat - tau, and otherwise moves tat to max(tat, now) + T.
 * A TAT in the past carries no information (the bucket is full), so an
 * expired slot is as good as an empty one and can be taken by any key: the
 * table needs no deletion and no sweeper.
 *
 * The `tat` word is also the slot's state (0 empty, bit 63 claimed, else a
 * TAT), and every change of it is one compare-and-swap (CAS):
 *
 *   take(key): probe from home = key.lo & mask, at most MB_RL_MAX_PROBE slots,
 *   stopping at the first empty slot. For each slot:
 *     - claimed with the fingerprint of our key: another process is inserting
 *       (probably) our key; wait until it publishes (bounded: a claimer
 *       killed mid-insert never will, until the master repairs the slot),
 *       then look again. Claimed for another fingerprint: skip.
 *     - a TAT: read the key and re-read the word (a seqlock read: if the word
 *       changed, the key may be torn; look again). Our key: decide; an admit
 *       is CAS(tat, old, max(old, now) + T), and a failed CAS means another
 *       process decided first: look again. A reject writes nothing. Another
 *       key with an expired TAT: remember the first such slot.
 *   Not found: take the first remembered expired slot, or the empty slot that
 *   ended the probe, with CAS(tat, seen, CLAIMED | owner | fingerprint);
 *   write the key; publish with a release store of now + T (a new bucket
 *   admits). A failed claim CAS means the chain changed: probe again.
 *
 * Why it is safe:
 *   - An admit or a claim succeeds only on the exact word it decided on, so
 *     no decision is lost and none is taken twice: N processes hammering one
 *     bucket admit exactly what GCRA allows.
 *   - A live key (TAT in the future) is never overwritten: only expired or
 *     empty words can be claimed. Keys never move, and slots never become
 *     empty again, so a key stays reachable from its home.
 *   - A process killed between claim and publish leaves the slot claimed,
 *     naming its worker record: other keys skip it; the master, after reaping
 *     the pid, turns it into a tombstone (TAT 1, in the past, key 0) with
 *     mb_ratelimit_repair(). Killed anywhere else, it leaves no trace.
 *   - Two processes inserting the same new key at the same moment can end up
 *     with two slots when their probes saw different expired slots; lookups
 *     always stop at the first copy, so the later one is orphaned and
 *     expires. The cost is at most one extra admitted request, once.
 */
#include "shm/ratelimit.h"

#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "common/time.h"

#define CLAIM_BIT   (1ull << 63)
#define OWNER_SHIFT 47
#define FP_MASK     ((1ull << OWNER_SHIFT) - 1)
#define TAT_MAX     (CLAIM_BIT - 1)
#define TOMBSTONE   1ull
/* A claim is a few stores long; only a preempted or dead claimer is slower. */
#define CLAIM_WAIT_NS (50ull * 1000 * 1000)
/* Probes restarted because the chain changed under us; each restart means
 * another process made progress, so this only bounds pathological cases. */
#define MAX_RESTARTS 100000

static int is_claim(uint64_t w)
{
    return (w & CLAIM_BIT) != 0;
}

static int is_expired(uint64_t w, uint64_t now)
{
    return w == TOMBSTONE || (w != 0 && !is_claim(w) && w <= now);
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > TAT_MAX - b ? TAT_MAX : a + b;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

uint64_t mb_ratelimit_slots_for(uint32_t capacity)
{
    uint64_t n = 16;
    while (n < 2 * (uint64_t)capacity)
        n <<= 1;
    return n;
}

void mb_ratelimit_set_owner(struct mb_ratelimit *rl, uint32_t worker_index)
{
    rl->owner = worker_index < MB_RL_OWNER_NONE ? worker_index : MB_RL_OWNER_NONE;
}

int mb_ratelimit_params(double requests_per_sec, uint32_t burst, uint64_t *T_ns, uint64_t *tau_ns)
{
    if (!(requests_per_sec > 0) || burst == 0)
        return MB_ERR;
    double t = 1e9 / requests_per_sec;
    if (t < 1)
        t = 1; /* over 10^9 per second: one nanosecond, the clock's grain */
    if (t > (double)(TAT_MAX / 2))
        t = (double)(TAT_MAX / 2);
    *T_ns = (uint64_t)(t + 0.5);
    double tau = (double)*T_ns * (double)(burst - 1);
    *tau_ns = tau > (double)(TAT_MAX / 2) ? TAT_MAX / 2 : (uint64_t)tau;
    return 0;
}

/* ---------------------------------------------------------------- key hash */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 31;
    x *= 0x9e3779b97f4a7c15ull;
    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 32;
    return x;
}

static uint64_t rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

struct mb_rl_key mb_ratelimit_key(const struct mb_ratelimit *rl, const void *data, size_t len)
{
    /* Two lanes over 8-byte words; each word and the length feed both, and
     * the seed makes the result unpredictable to clients. */
    const unsigned char *p = data;
    uint64_t a = rl->seed[0] ^ mix(len + 1), b = rl->seed[1] ^ rotl(mix(len), 17);
    while (len > 0) {
        uint64_t w = 0;
        size_t n = len < 8 ? len : 8;
        memcpy(&w, p, n);
        p += n;
        len -= n;
        a = mix(a ^ w) + b;
        b = rotl(b ^ mix(w + 0x632be59bd9b4e019ull), 23) * 0x94d049bb133111ebull;
    }
    struct mb_rl_key k = {.lo = mix(a ^ rotl(b, 29)), .hi = mix(b + rotl(a, 41))};
    return k;
}

/* ---------------------------------------------------------------- take */

/* Waits until the claimed word changes; 1 if it did, 0 after CLAIM_WAIT_NS. */
static int wait_claim(const struct mb_shm_rl_slot *s, uint64_t w)
{
    uint64_t deadline = 0;
    for (unsigned i = 0;; i++) {
        if (__atomic_load_n(&s->tat, __ATOMIC_ACQUIRE) != w)
            return 1;
        if (i < 256) {
            cpu_relax();
            continue;
        }
        uint64_t now = mb_time_mono_ns();
        if (deadline == 0)
            deadline = now + CLAIM_WAIT_NS;
        else if (now >= deadline)
            return 0;
        sched_yield(); /* let a preempted claimer finish */
    }
}

int mb_ratelimit_take(struct mb_ratelimit *rl, struct mb_rl_key key, uint64_t now_ns, uint64_t T_ns,
                      uint64_t tau_ns, uint64_t *retry_after_ns)
{
    *retry_after_ns = 0;
    if (rl->slots == NULL || T_ns == 0)
        return MB_ERR;
    uint64_t now = now_ns > TAT_MAX ? TAT_MAX : now_ns;
    uint64_t mask = rl->nslots - 1, fp = key.hi & FP_MASK;
    unsigned probe = rl->nslots < MB_RL_MAX_PROBE ? (unsigned)rl->nslots : MB_RL_MAX_PROBE;
    uint64_t claim = CLAIM_BIT | ((uint64_t)(rl->owner & 0xffff) << OWNER_SHIFT) | fp;

    for (int restart = 0; restart < MAX_RESTARTS; restart++) {
        struct mb_shm_rl_slot *cand = NULL;
        uint64_t cand_w = 0;
        unsigned i;
        for (i = 0; i < probe; i++) {
            struct mb_shm_rl_slot *s = &rl->slots[(key.lo + i) & mask];
            uint64_t w;
        again:
            w = __atomic_load_n(&s->tat, __ATOMIC_ACQUIRE);
            if (w == 0) {
                if (cand == NULL) {
                    cand = s;
                    cand_w = 0;
                }
                break; /* the end of the probe sequence: the key is not here */
            }
            if (is_claim(w)) {
                if ((w & FP_MASK) == fp && wait_claim(s, w))
                    goto again;
                continue;
            }
            uint64_t lo = __atomic_load_n(&s->key_lo, __ATOMIC_RELAXED);
            uint64_t hi = __atomic_load_n(&s->key_hi, __ATOMIC_RELAXED);
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (__atomic_load_n(&s->tat, __ATOMIC_RELAXED) != w)
                goto again; /* the key may be torn */
            if (lo == key.lo && hi == key.hi) {
                uint64_t base = is_expired(w, now) ? now : w;
                if (base > now && base - now > tau_ns) {
                    *retry_after_ns = base - now - tau_ns;
                    return MB_RATELIMIT_DENY;
                }
                if (__atomic_compare_exchange_n(&s->tat, &w, sat_add(base, T_ns), false,
                                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                    return MB_RATELIMIT_ALLOW;
                goto again;
            }
            if (cand == NULL && is_expired(w, now)) {
                cand = s;
                cand_w = w;
            }
        }
        if (cand == NULL)
            return MB_AGAIN; /* every slot in reach holds a live bucket */
        /* A new bucket is full: admit, and publish tat = now + T. */
        if (!__atomic_compare_exchange_n(&cand->tat, &cand_w, claim, false, __ATOMIC_ACQ_REL,
                                         __ATOMIC_RELAXED))
            continue;
        /* Readers must see the claim before any byte of the new key. */
        __atomic_thread_fence(__ATOMIC_RELEASE);
        __atomic_store_n(&cand->key_lo, key.lo, __ATOMIC_RELAXED);
        __atomic_store_n(&cand->key_hi, key.hi, __ATOMIC_RELAXED);
        __atomic_store_n(&cand->tat, sat_add(now, T_ns), __ATOMIC_RELEASE);
        return MB_RATELIMIT_ALLOW;
    }
    return MB_AGAIN;
}

/* ---------------------------------------------------------------- master and readers */

uint64_t mb_ratelimit_repair(struct mb_ratelimit *rl, uint32_t worker_index)
{
    uint64_t n = 0;
    if (rl->slots == NULL || worker_index >= MB_RL_OWNER_NONE)
        return 0;
    for (uint64_t i = 0; i < rl->nslots; i++) {
        struct mb_shm_rl_slot *s = &rl->slots[i];
        uint64_t w = __atomic_load_n(&s->tat, __ATOMIC_ACQUIRE);
        if (!is_claim(w) || ((w >> OWNER_SHIFT) & 0xffff) != worker_index)
            continue;
        /* The claimer is dead: nobody else writes a claimed slot. */
        __atomic_store_n(&s->key_lo, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&s->key_hi, 0, __ATOMIC_RELAXED);
        if (__atomic_compare_exchange_n(&s->tat, &w, TOMBSTONE, false, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED))
            n++;
    }
    return n;
}

struct carried {
    uint64_t lo, hi, tat;
};

static int later_first(const void *a, const void *b)
{
    uint64_t x = ((const struct carried *)a)->tat, y = ((const struct carried *)b)->tat;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* One consistent {key, TAT} of a live slot (the seqlock read of take());
 * 0 when the slot holds no live bucket. */
static int read_live(const struct mb_shm_rl_slot *s, uint64_t now, struct carried *out)
{
    for (;;) {
        uint64_t w = __atomic_load_n(&s->tat, __ATOMIC_ACQUIRE);
        if (w == 0 || is_claim(w) || is_expired(w, now))
            return 0;
        out->lo = __atomic_load_n(&s->key_lo, __ATOMIC_RELAXED);
        out->hi = __atomic_load_n(&s->key_hi, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&s->tat, __ATOMIC_RELAXED) == w) {
            out->tat = w;
            return 1;
        }
    }
}

int mb_ratelimit_copy(struct mb_ratelimit *dst, const struct mb_ratelimit *src, uint64_t now_ns,
                      uint64_t *copied, uint64_t *dropped)
{
    *copied = *dropped = 0;
    if (src->slots == NULL)
        return 0;
    if (dst->slots != NULL && (dst->seed[0] != src->seed[0] || dst->seed[1] != src->seed[1]))
        return MB_ERR; /* the same client would hash to another key */
    uint64_t now = now_ns > TAT_MAX ? TAT_MAX : now_ns, n = 0;
    for (uint64_t i = 0; i < src->nslots; i++) {
        uint64_t w = __atomic_load_n(&src->slots[i].tat, __ATOMIC_RELAXED);
        n += w != 0 && !is_claim(w) && !is_expired(w, now);
    }
    if (n == 0)
        return 0;
    /* Workers may have made more buckets live since the count: those are
     * left behind like any bucket written after its read. */
    struct carried *v = malloc(n * sizeof(*v));
    if (v == NULL)
        return MB_ERR;
    uint64_t k = 0;
    for (uint64_t i = 0; i < src->nslots && k < n; i++)
        k += (uint64_t)read_live(&src->slots[i], now, &v[k]);
    if (dst->slots == NULL) {
        *dropped = k;
        free(v);
        return 0;
    }
    qsort(v, k, sizeof(*v), later_first);
    uint64_t mask = dst->nslots - 1;
    unsigned probe = dst->nslots < MB_RL_MAX_PROBE ? (unsigned)dst->nslots : MB_RL_MAX_PROBE;
    for (uint64_t j = 0; j < k; j++) {
        struct mb_shm_rl_slot *free_slot = NULL;
        bool dup = false;
        for (unsigned i = 0; i < probe && !dup; i++) {
            struct mb_shm_rl_slot *s = &dst->slots[(v[j].lo + i) & mask];
            if (s->tat == 0) {
                free_slot = s;
                break;
            }
            dup = s->key_lo == v[j].lo && s->key_hi == v[j].hi;
        }
        if (dup)
            continue; /* an earlier copy had the later TAT */
        if (free_slot == NULL || *copied >= dst->capacity) {
            (*dropped)++;
            continue;
        }
        /* Nobody maps dst yet; the release store only keeps the format's
         * rule that a TAT is published after its key. */
        __atomic_store_n(&free_slot->key_lo, v[j].lo, __ATOMIC_RELAXED);
        __atomic_store_n(&free_slot->key_hi, v[j].hi, __ATOMIC_RELAXED);
        __atomic_store_n(&free_slot->tat, v[j].tat, __ATOMIC_RELEASE);
        (*copied)++;
    }
    free(v);
    return 0;
}

void mb_ratelimit_stats(const struct mb_ratelimit *rl, uint64_t now_ns,
                        struct mb_ratelimit_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (rl->slots == NULL)
        return;
    st->slots = rl->nslots;
    st->capacity = rl->capacity;
    for (uint64_t i = 0; i < rl->nslots; i++) {
        uint64_t w = __atomic_load_n(&rl->slots[i].tat, __ATOMIC_RELAXED);
        if (w == 0)
            st->empty++;
        else if (is_claim(w))
            st->claimed++;
        else if (is_expired(w, now_ns))
            st->expired++;
        else
            st->live++;
    }
}

size_t mb_ratelimit_busiest(const struct mb_ratelimit *rl, uint64_t now_ns,
                            struct mb_ratelimit_entry *out, size_t n)
{
    size_t have = 0;
    if (rl->slots == NULL || n == 0)
        return 0;
    for (uint64_t i = 0; i < rl->nslots; i++) {
        const struct mb_shm_rl_slot *s = &rl->slots[i];
        uint64_t w = __atomic_load_n(&s->tat, __ATOMIC_ACQUIRE);
        if (w == 0 || is_claim(w) || is_expired(w, now_ns))
            continue;
        struct mb_ratelimit_entry e = {
            .key = {__atomic_load_n(&s->key_lo, __ATOMIC_RELAXED),
                    __atomic_load_n(&s->key_hi, __ATOMIC_RELAXED)},
            .backlog_ns = w - now_ns,
        };
        /* insertion into the sorted top n */
        size_t j = have < n ? have++ : n;
        while (j > 0 && out[j - 1].backlog_ns < e.backlog_ns) {
            if (j < n)
                out[j] = out[j - 1];
            j--;
        }
        if (j < n)
            out[j] = e;
    }
    return have;
}
