/*
 * worker/ratelimit_mc.h — the memcached side of `rate_limit.storage:
 * memcached`: the shared GCRA budget kept in memcached, and the per-worker
 * helper thread that talks to it so the event loop never waits on a round
 * trip (DESIGN §9: ~70 µs, blocking, per libmemcached call).
 *
 * The loop submits refill jobs (a bucket, how many tokens it wants, its
 * GCRA parameters) into a bounded queue; the thread runs them one after
 * another with its own libmemcached client (binary protocol, consistent
 * hashing over rate_limit.memcached.servers) and puts the answers on a
 * second queue, then writes the eventfd the loop watches. The loop collects
 * answers when the eventfd is readable. The thread never logs and never
 * touches shm or the loop's data: everything it needs is in the job.
 *
 * The scheme (the value stored in memcached, and why it admits what one
 * budget allows) is specified at the top of worker/ratelimit_mc.c.
 */
#ifndef MB_WORKER_RATELIMIT_MC_H
#define MB_WORKER_RATELIMIT_MC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libmemcached/memcached.h>

#include "conf/conf.h"
#include "shm/ratelimit.h"
#include "worker/ratelimit_rules.h"

struct mb_ratelimit_mc_job {
    /* in */
    struct mb_rl_key key; /* the loop's key for the bucket (ratelimit_lease) */
    char name[MB_RATELIMIT_KEY_MAX];
    size_t name_len; /* the bucket name (ratelimit_rules.h) */
    uint32_t want;
    uint64_t T_ns, tau_ns;
    bool probe; /* the loop's marker, carried through unchanged */
    /* out */
    int status; /* MB_OK: granted/retry_ns are the answer; MB_ERR: see err */
    uint32_t granted;
    uint64_t retry_ns; /* granted < want: time until the budget has a token */
    char err[160];
};

struct mb_ratelimit_mc;

/* Worker, after fork: a client for c->memcached (nothing is connected yet:
 * libmemcached connects on first use, in the thread), the queues of
 * c->memcached.pool_size jobs, the eventfd and the thread. Returns 0, or
 * MB_ERR with the reason in err. */
int mb_ratelimit_mc_new(const struct mb_conf_rate_limit *c, struct mb_ratelimit_mc **out, char *err,
                        size_t errlen);
/* Stops the thread (it finishes the round trip it is in, bounded by
 * memcached.timeout) and frees everything; sets *mp = NULL. */
void mb_ratelimit_mc_free(struct mb_ratelimit_mc **mp);
/* The eventfd that becomes readable when answers are waiting. */
int mb_ratelimit_mc_fd(const struct mb_ratelimit_mc *m);
/* Queues a job. Returns 0, or MB_AGAIN when pool_size jobs are already in
 * flight (queued, running, or answered and not collected). */
int mb_ratelimit_mc_submit(struct mb_ratelimit_mc *m, const struct mb_ratelimit_mc_job *job);
/* Moves up to n answers into out; returns how many. Never blocks. */
size_t mb_ratelimit_mc_collect(struct mb_ratelimit_mc *m, struct mb_ratelimit_mc_job *out,
                               size_t n);

/* Parses "host:port" or "[v6]:port" (port 1..65535). Returns 0 or MB_ERR. */
int mb_ratelimit_mc_parse_server(const char *s, char *host, size_t hostcap, uint16_t *port);
/* A libmemcached client configured as the thread's is (binary protocol,
 * ketama, CAS, timeouts); exported for tests. Returns NULL with err set. */
memcached_st *mb_ratelimit_mc_client(const struct mb_conf_rate_limit *c, char *err, size_t errlen);
/* The memcached key of a bucket name: "mb:rl:" and 32 hex digits of its
 * SHA-256 (the same on every gateway, unlike the region-seeded table key).
 * out needs 39 bytes. */
void mb_ratelimit_mc_key(const char *name, size_t len, char out[39]);
/* One lease, synchronously (what the thread runs per job): takes up to want
 * tokens from the bucket at key at now_ns (CLOCK_REALTIME). Returns 0 with
 * *granted and *retry_ns, or MB_ERR with the reason in err. */
int mb_ratelimit_mc_lease(memcached_st *mc, const char *key, uint32_t want, uint64_t T_ns,
                          uint64_t tau_ns, uint64_t now_ns, uint32_t *granted, uint64_t *retry_ns,
                          char *err, size_t errlen);

#endif
