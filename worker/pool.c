/*
 * worker/pool.c — the upstream connection pool's bookkeeping (pool.h):
 * counts and idle lists per endpoint, the keep-or-close decision, idle
 * expiry, and the weighted endpoint choice. No sockets, no clocks of its
 * own: the transport passes the loop's time in.
 */
#include "worker/pool.h"

#include <assert.h>
#include <string.h>

void mb_pool_init(struct mb_pool *p, const struct mb_pool_limits *lim)
{
    memset(p, 0, sizeof(*p));
    p->lim = *lim;
    if (p->lim.max_conns_per_host == 0)
        p->lim.max_conns_per_host = 1;
}

void mb_pool_host_init(struct mb_pool_host *h, struct mb_pool *p, uint32_t weight)
{
    memset(h, 0, sizeof(*h));
    h->pool = p;
    h->weight = weight > 0 ? weight : 1;
}

static void unlink_idle(struct mb_pool_conn *c)
{
    struct mb_pool_host *h = c->host;

    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        h->idle_head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    else
        h->idle_tail = c->prev;
    c->prev = c->next = NULL;
    h->nidle--;
    h->pool->nidle--;
}

struct mb_pool_conn *mb_pool_take_idle(struct mb_pool_host *h)
{
    struct mb_pool_conn *c = h->idle_head;

    if (c == NULL)
        return NULL;
    unlink_idle(c);
    c->state = MB_POOL_BUSY;
    c->uses++;
    h->nbusy++;
    return c;
}

bool mb_pool_can_open(const struct mb_pool_host *h)
{
    return h->nconns < h->pool->lim.max_conns_per_host;
}

void mb_pool_add(struct mb_pool_host *h, struct mb_pool_conn *c)
{
    memset(c, 0, sizeof(*c));
    c->host = h;
    c->state = MB_POOL_CONNECTING;
    h->nconns++;
}

void mb_pool_connected(struct mb_pool_conn *c)
{
    assert(c->state == MB_POOL_CONNECTING);
    c->state = MB_POOL_BUSY;
    c->uses = 1;
    c->host->nbusy++;
}

bool mb_pool_release(struct mb_pool_conn *c, uint64_t now_ms)
{
    struct mb_pool_host *h = c->host;
    const struct mb_pool_limits *lim = &h->pool->lim;

    assert(c->state == MB_POOL_BUSY);
    if (!lim->enabled || h->nidle >= lim->max_idle_conns_per_host ||
        h->pool->nidle >= lim->max_idle_conns)
        return false;
    h->nbusy--;
    c->state = MB_POOL_IDLE;
    c->idle_since_ms = now_ms;
    c->prev = NULL;
    c->next = h->idle_head;
    if (h->idle_head != NULL)
        h->idle_head->prev = c;
    else
        h->idle_tail = c;
    h->idle_head = c;
    h->nidle++;
    h->pool->nidle++;
    return true;
}

void mb_pool_remove(struct mb_pool_conn *c)
{
    struct mb_pool_host *h = c->host;

    if (h == NULL)
        return;
    if (c->state == MB_POOL_IDLE)
        unlink_idle(c);
    else if (c->state == MB_POOL_BUSY)
        h->nbusy--;
    h->nconns--;
    c->host = NULL;
}

struct mb_pool_conn *mb_pool_expired(struct mb_pool_host *h, uint64_t now_ms)
{
    struct mb_pool_conn *c = h->idle_tail;
    uint64_t t = h->pool->lim.idle_timeout_ms;

    if (c == NULL || t == 0 || now_ms < c->idle_since_ms + t)
        return NULL;
    return c;
}

uint64_t mb_pool_next_expiry(const struct mb_pool_host *h)
{
    uint64_t t = h->pool->lim.idle_timeout_ms;

    if (h->idle_tail == NULL || t == 0)
        return 0;
    return h->idle_tail->idle_since_ms + t;
}

int mb_pool_pick(struct mb_pool_host *const *hosts, const bool *usable, size_t n)
{
    int64_t total = 0;
    int best = -1;

    for (size_t i = 0; i < n; i++) {
        if (usable != NULL && !usable[i])
            continue;
        hosts[i]->current += hosts[i]->weight;
        total += hosts[i]->weight;
        if (best < 0 || hosts[i]->current > hosts[best]->current)
            best = (int)i;
    }
    if (best >= 0)
        hosts[best]->current -= total;
    return best;
}
