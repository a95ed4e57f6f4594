/*
 * worker/pool.h — the bookkeeping of the upstream connection pool
 * (connection_pool in gateway.yaml), free of sockets so it can be unit
 * tested: which connections exist per endpoint ("host"), which are idle,
 * whether a new one may be opened, whether a freed one is kept idle or
 * closed, which idle ones have expired, and which endpoint of a backend
 * takes the next request (smooth weighted round robin).
 *
 * One struct mb_pool per worker process holds the limits and the worker-wide
 * idle count (max_idle_conns counts all endpoints of all backends); one
 * struct mb_pool_host per endpoint holds its connections. The transport
 * (worker/upstream_http.c) embeds struct mb_pool_conn in its connection and
 * owns the sockets; the pool only links and counts.
 *
 * A connection is in exactly one state: CONNECTING (counted, not usable),
 * BUSY (one exchange on it: never two, there is no pipelining) or IDLE (in
 * the host's idle list, most recently used first, so the warmest connection
 * is reused and the coldest expires first).
 */
#ifndef MB_WORKER_POOL_H
#define MB_WORKER_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mb_pool_state { MB_POOL_CONNECTING = 0, MB_POOL_BUSY = 1, MB_POOL_IDLE = 2 };

struct mb_pool;
struct mb_pool_host;

struct mb_pool_conn {
    struct mb_pool_conn *prev, *next; /* in the host's idle list while IDLE */
    struct mb_pool_host *host;        /* NULL when not in a pool */
    enum mb_pool_state state;
    uint64_t idle_since_ms;
    uint32_t uses; /* exchanges started on it; > 1 means it was reused */
};

struct mb_pool_host {
    struct mb_pool *pool;
    struct mb_pool_conn *idle_head, *idle_tail; /* head = most recently used */
    uint32_t nconns;                            /* every state */
    uint32_t nidle;
    uint32_t nbusy;
    /* Smooth weighted round robin (mb_pool_pick). */
    uint32_t weight;
    int64_t current;
};

struct mb_pool_limits {
    bool enabled;                     /* false: never keep a connection idle */
    uint32_t max_conns_per_host;      /* >= 1 */
    uint32_t max_idle_conns_per_host; /* 0 = keep none */
    uint32_t max_idle_conns;          /* all hosts of the pool */
    uint64_t idle_timeout_ms;         /* 0 = idle connections never expire */
};

struct mb_pool {
    struct mb_pool_limits lim;
    uint32_t nidle; /* all hosts */
};

void mb_pool_init(struct mb_pool *p, const struct mb_pool_limits *lim);
void mb_pool_host_init(struct mb_pool_host *h, struct mb_pool *p, uint32_t weight);

/* The most recently used idle connection of h, now BUSY, or NULL. */
struct mb_pool_conn *mb_pool_take_idle(struct mb_pool_host *h);
/* Whether h may open one more connection (max_conns_per_host). */
bool mb_pool_can_open(const struct mb_pool_host *h);
/* Adds a new connection to h, CONNECTING. Call only when mb_pool_can_open. */
void mb_pool_add(struct mb_pool_host *h, struct mb_pool_conn *c);
/* A CONNECTING connection is up and takes its first exchange: BUSY. */
void mb_pool_connected(struct mb_pool_conn *c);
/* A BUSY connection finished its exchange and can take another. Returns
 * true when it is kept (IDLE now); false when the limits say close it (the
 * caller closes it and calls mb_pool_remove). */
bool mb_pool_release(struct mb_pool_conn *c, uint64_t now_ms);
/* The connection is gone (closed by either side, failed to connect). */
void mb_pool_remove(struct mb_pool_conn *c);
/* The least recently used idle connection of h that has been idle for the
 * idle timeout or longer at now_ms, or NULL. The caller closes it and calls
 * mb_pool_remove. */
struct mb_pool_conn *mb_pool_expired(struct mb_pool_host *h, uint64_t now_ms);
/* When the next idle connection of h expires (ms), or 0 when none will. */
uint64_t mb_pool_next_expiry(const struct mb_pool_host *h);

/* Smooth weighted round robin over the hosts whose usable[i] is true
 * (usable NULL = all): every candidate gains its weight, the highest
 * current value wins and loses the candidates' total. Over a cycle each
 * host is picked in proportion to its weight, interleaved. Returns the
 * index, or -1 when no host is usable. */
int mb_pool_pick(struct mb_pool_host *const *hosts, const bool *usable, size_t n);

#endif
