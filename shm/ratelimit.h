/*
 * shm/ratelimit.h — the rate-limit table in the shared region: one GCRA
 * bucket per key, shared by every worker, decided with one compare-and-swap
 * (DESIGN §2). The slot format is layout.h §5; the algorithm and its crash
 * safety are specified at the top of shm/ratelimit.c.
 *
 * How a worker uses it:
 *
 *   after fork, once:   mb_ratelimit_set_owner(&shm->ratelimit, worker_index);
 *   per rule, at load:  mb_ratelimit_params(requests_per_sec, burst, &T, &tau);
 *   per request:        key = mb_ratelimit_key(&shm->ratelimit, bytes, len);
 *                       rc = mb_ratelimit_take(&shm->ratelimit, key,
 *                                              mb_time_mono_ns(), T, tau, &retry);
 *     MB_RATELIMIT_ALLOW  serve the request
 *     MB_RATELIMIT_DENY   reject; retry is when one more request would pass
 *     MB_AGAIN            no bucket could be had (table full): the caller's
 *                         policy decides (count ratelimit_table_full)
 *
 * The key bytes should name the rule as well as the client (e.g.
 * "rule-id\0principal") when overrides give the same client different
 * budgets, since the bucket does not remember its rate.
 */
#ifndef MB_SHM_RATELIMIT_H
#define MB_SHM_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "shm/layout.h"

/* Slots probed from a key's home before the table counts as full. */
#define MB_RL_MAX_PROBE 64
/* Largest configurable capacity (buckets): 2^24 buckets = 1 GiB of slots. */
#define MB_RL_MAX_CAPACITY (1u << 24)
/* Owner of claims made by a process without a worker record (never repaired). */
#define MB_RL_OWNER_NONE 0xffffu

enum { MB_RATELIMIT_ALLOW = 0, MB_RATELIMIT_DENY = 1 };

struct mb_rl_key {
    uint64_t lo; /* picks the home slot */
    uint64_t hi; /* fingerprint while a slot is claimed */
};

/* A process's handle on the table; lives in struct mb_shm (shm->ratelimit),
 * so each process has its own copy after fork. slots == NULL: no table. */
struct mb_ratelimit {
    struct mb_shm_rl_slot *slots;
    uint64_t nslots; /* a power of two */
    uint32_t capacity;
    uint32_t owner; /* this process's worker record, or MB_RL_OWNER_NONE */
    uint64_t seed[2];
};

/* Slots for a capacity: a power of two >= 2 * capacity (at most half full). */
uint64_t mb_ratelimit_slots_for(uint32_t capacity);

/* Worker, after fork: claims made by this process carry its record index, so
 * that the master can repair them if the process dies mid-claim. */
void mb_ratelimit_set_owner(struct mb_ratelimit *rl, uint32_t worker_index);

/* GCRA parameters from a rate and a burst: T = 1/rate, tau = T * (burst - 1).
 * Returns 0, or MB_ERR when rate is not > 0 or burst is 0. */
int mb_ratelimit_params(double requests_per_sec, uint32_t burst, uint64_t *T_ns, uint64_t *tau_ns);

/* The table key of some bytes: a 128-bit hash keyed by the region's random
 * seed (clients cannot aim at one slot). */
struct mb_rl_key mb_ratelimit_key(const struct mb_ratelimit *rl, const void *data, size_t len);

/*
 * One GCRA decision for key at now_ns (CLOCK_MONOTONIC, the same clock in
 * every process): reject if now < tat - tau; else tat = max(tat, now) + T.
 * Returns MB_RATELIMIT_ALLOW (*retry_after_ns = 0), MB_RATELIMIT_DENY
 * (*retry_after_ns = time until a request would be allowed; nothing was
 * written), MB_AGAIN (no free slot within MB_RL_MAX_PROBE of the key's home),
 * or MB_ERR (no table, or T_ns == 0). Never blocks, except for a bounded wait
 * (at most 50 ms) when another process is at that moment inserting the very
 * same key.
 */
int mb_ratelimit_take(struct mb_ratelimit *rl, struct mb_rl_key key, uint64_t now_ns, uint64_t T_ns,
                      uint64_t tau_ns, uint64_t *retry_after_ns);

/* Master, after reaping the process with this worker record: turns slots it
 * left claimed (killed mid-insert) into tombstones. Returns how many. */
uint64_t mb_ratelimit_repair(struct mb_ratelimit *rl, uint32_t worker_index);

/* Master, building a successor region (a reload that changes the capacity):
 * copies every live bucket of src (key hash and a TAT after now_ns) into dst,
 * a table nobody uses yet whose keys hash with the same seed, rehashed into
 * dst's geometry. dst keeps at most its capacity in buckets (at most half
 * full) and MB_RL_MAX_PROBE slots from each home; when they do not all fit,
 * the buckets with the latest TAT, the most restrictive, are kept and the
 * others counted in *dropped. A key found twice in src (two slots, see
 * ratelimit.c) is carried once, with its later TAT. src may be written by its
 * workers meanwhile: a bucket is read as one consistent {key, TAT} pair, and
 * what they write after it was read stays behind. Returns 0, or MB_ERR (out
 * of memory, or the seeds differ) with dst unchanged. */
int mb_ratelimit_copy(struct mb_ratelimit *dst, const struct mb_ratelimit *src, uint64_t now_ns,
                      uint64_t *copied, uint64_t *dropped);

/* Readers (dump tool, /metrics): slot states at now_ns. */
struct mb_ratelimit_stats {
    uint64_t slots;
    uint64_t capacity;
    uint64_t live;    /* a bucket with a TAT in the future: a client being limited */
    uint64_t expired; /* a TAT in the past: reusable by any key */
    uint64_t claimed; /* a key being written right now (or by a dead process) */
    uint64_t empty;   /* never used */
};
void mb_ratelimit_stats(const struct mb_ratelimit *rl, uint64_t now_ns,
                        struct mb_ratelimit_stats *st);

/* The n live buckets with the largest backlog (tat - now: how far ahead of
 * its rate the key is), largest first. Returns how many were found. */
struct mb_ratelimit_entry {
    struct mb_rl_key key;
    uint64_t backlog_ns;
};
size_t mb_ratelimit_busiest(const struct mb_ratelimit *rl, uint64_t now_ns,
                            struct mb_ratelimit_entry *out, size_t n);

#endif
