/*
 * worker/ratelimiter.c — the rate-limit decision of a worker (contract in
 * ratelimiter.h).
 *
 * THE SCHEME
 *
 * Every request is charged to one bucket: the first matching rule
 * (worker/ratelimit_rules.h: overrides by principal and tool glob, then the
 * default) and the counted thing (`key`: principal, ip or global). The
 * bucket's name is hashed with the region's seed into a table key.
 *
 * storage: shm — the bucket is a GCRA word in the shm table
 * (shm/ratelimit.c): one compare-and-swap per decision, shared by every
 * worker of the gateway, so a client whose connections land on different
 * workers has exactly one budget. A table with no room for a new bucket
 * (MB_AGAIN; the table is sized by rate_limit.capacity and kept at most half
 * full) admits the request and counts `ratelimit_table_full`: a full table
 * must not take the whole gateway down.
 *
 * storage: memcached — the budget is shared by several gateways through
 * memcached, and the request path never waits for it:
 *   - Each worker keeps a local lease per bucket (worker/ratelimit_lease.c):
 *     tokens taken from the shared budget in batches of `lease`, spent
 *     locally. A request that finds a token is decided with no round trip.
 *   - When a bucket's lease runs low (half a lease left), the worker asks its
 *     helper thread (worker/ratelimit_mc.c) for a full lease; the answer
 *     comes back through an eventfd the event loop watches, and is added to
 *     the bucket. The shared budget is a GCRA TAT in memcached, leased with
 *     gets + cas (the exact arithmetic is at the top of ratelimit_mc.c).
 *   - Policy when the lease is empty and a refill is in flight (the first
 *     requests of a new client, or a client faster than one lease per round
 *     trip): the request is admitted on credit while the bucket's debt is
 *     under min(lease, burst); the debt is repaid from the next grant.
 *     Beyond that it is rejected with retry_after_ms = 1 (a round trip is
 *     ~70 µs). When the shared budget answered "empty for another N ms",
 *     requests are rejected locally with that retry_after_ms and no round
 *     trip, until then.
 *   - So N gateways x W workers together admit what one budget allows,
 *     within one lease per worker (unspent tokens below, credit above).
 *   - memcached unreachable (a round trip failed: refused, timed out, a
 *     server marked dead): the worker marks memcached down, counts
 *     `ratelimit_memcached_errors`, and logs it once. While down, every
 *     decision counts `ratelimit_fallback` and follows on_error: `allow`
 *     decides on the shm bucket of the same name (the limits become
 *     per-gateway instead of shared), `deny` rejects with retry_after_ms =
 *     the time to the next probe. At most once a second a request sends a
 *     probe lease; its success marks memcached up again (logged once):
 *     recovery needs no operator.
 *
 * The module's state is per process (one worker per process) and is set up
 * by the first decision, after fork, so the libmemcached client and its
 * thread belong to the worker that uses them. The helper thread is never
 * stopped: it dies with the process, and only ever touches its own queues
 * and eventfd, so it outlives the event loop harmlessly.
 */
#include "worker/ratelimiter.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/errors.h"
#include "common/log.h"
#include "common/time.h"
#include "conf/conf.h"
#include "shm/counters.h"
#include "shm/ratelimit.h"
#include "shm/shm.h"
#include "worker/conn.h"
#include "worker/jsonrpc.h"
#include "worker/mcp.h"
#include "worker/ratelimit_lease.h"
#include "worker/ratelimit_mc.h"
#include "worker/ratelimit_rules.h"
#include "worker/worker.h"

#define PROBE_INTERVAL_NS (1000ull * 1000 * 1000)
#define MIN_HOLD_NS       (1000ull * 1000 * 1000)
#define COLLECT_BATCH     32

enum { UNSET = 0, READY, BROKEN };

static struct {
    int state;
    struct mb_worker *w;
    const struct mb_conf_rate_limit *c;
    struct mb_ratelimit_rules rules;
    /* storage: memcached */
    struct mb_ratelimit_lease lease;
    struct mb_ratelimit_mc *mc;
    ev_io io;
    bool down;
    bool probe_inflight;
    uint64_t next_probe_ns;
} S;

static void set_down(bool down, const char *why)
{
    if (down == S.down)
        return;
    S.down = down;
    if (down)
        mb_log_error("rate_limit: memcached unreachable (%s): %s until it answers again", why,
                     S.c->memcached.on_error_allow ? "limiting on this gateway's shm buckets"
                                                   : "rejecting requests (on_error: deny)");
    else
        mb_log_info("rate_limit: memcached answers again: shared limits resume");
}

static void on_answers(struct ev_loop *loop, ev_io *io, int revents)
{
    struct mb_ratelimit_mc_job jobs[COLLECT_BATCH];
    size_t n;
    do {
        n = mb_ratelimit_mc_collect(S.mc, jobs, COLLECT_BATCH);
        uint64_t now = mb_time_mono_ns();
        for (size_t i = 0; i < n; i++) {
            struct mb_ratelimit_mc_job *j = &jobs[i];
            if (j->probe)
                S.probe_inflight = false;
            if (j->status != MB_OK) {
                mb_worker_count(S.w, MB_CTR_RATELIMIT_MEMCACHED_ERRORS, 1);
                mb_ratelimit_lease_failed(&S.lease, j->key);
                set_down(true, j->err);
            } else {
                mb_worker_count(S.w, MB_CTR_RATELIMIT_MEMCACHED_REFILLS, 1);
                mb_ratelimit_lease_granted(&S.lease, j->key, j->want, j->granted, j->retry_ns, now);
                set_down(false, NULL);
            }
        }
    } while (n == COLLECT_BATCH);
}

static int setup(struct mb_worker *w)
{
    char err[256];
    S.w = w;
    S.c = &w->conf->rate_limit;
    mb_ratelimit_set_owner(&w->shm->ratelimit, w->index);
    if (mb_ratelimit_rules_build(S.c, &S.rules) != MB_OK) {
        mb_log_error("rate_limit: building the rules failed (out of memory): not limiting");
        return MB_ERR;
    }
    if (w->shm->ratelimit.slots == NULL)
        mb_log_warn("rate_limit: the shm region has no rate-limit table: not limiting locally");
    if (S.c->storage != MB_RL_STORAGE_MEMCACHED)
        return MB_OK;
    uint32_t credit = S.c->memcached.lease < S.c->burst ? S.c->memcached.lease : S.c->burst;
    if (mb_ratelimit_lease_init(&S.lease, S.c->capacity, S.c->memcached.lease, credit) != MB_OK) {
        mb_log_error("rate_limit: out of memory for the lease table: not limiting");
        return MB_ERR;
    }
    if (mb_ratelimit_mc_new(S.c, &S.mc, err, sizeof(err)) != MB_OK) {
        /* Treated as memcached being down from the start: on_error decides. */
        S.down = true;
        mb_log_error("rate_limit: memcached client: %s: %s", err,
                     S.c->memcached.on_error_allow ? "limiting on this gateway's shm buckets"
                                                   : "rejecting requests (on_error: deny)");
        return MB_OK;
    }
    ev_io_init(&S.io, on_answers, mb_ratelimit_mc_fd(S.mc), EV_READ);
    ev_io_start(w->loop, &S.io);
    /* The watcher must not keep the loop alive when the worker stops. */
    ev_unref(w->loop);
    return MB_OK;
}

static void fill(struct mb_ratelimit_verdict *v, const struct mb_ratelimit_rule *r, int rc,
                 uint64_t retry_ns)
{
    v->limit = r->requests_per_sec;
    v->burst = r->burst;
    v->limited = rc == MB_RATELIMIT_DENY;
    v->retry_after_ms = v->limited ? (retry_ns + 999999) / 1000000 : 0;
    if (v->limited && v->retry_after_ms == 0)
        v->retry_after_ms = 1;
}

static int take_shm(const struct mb_ratelimit_rule *r, struct mb_rl_key k, uint64_t now,
                    uint64_t *retry_ns)
{
    struct mb_ratelimit *rl = &S.w->shm->ratelimit;
    if (rl->slots == NULL)
        return MB_RATELIMIT_ALLOW;
    int rc = mb_ratelimit_take(rl, k, now, r->T_ns, r->tau_ns, retry_ns);
    if (rc == MB_RATELIMIT_ALLOW || rc == MB_RATELIMIT_DENY)
        return rc;
    mb_worker_count(S.w, MB_CTR_RATELIMIT_TABLE_FULL, 1);
    return MB_RATELIMIT_ALLOW;
}

static void submit(const struct mb_ratelimit_rule *r, struct mb_rl_key k, const char *name,
                   size_t len, uint32_t want)
{
    struct mb_ratelimit_mc_job j;
    j.key = k;
    memcpy(j.name, name, len);
    j.name_len = len;
    j.want = want;
    j.T_ns = r->T_ns;
    j.tau_ns = r->tau_ns;
    j.probe = false;
    if (S.mc == NULL || mb_ratelimit_mc_submit(S.mc, &j) != MB_OK)
        mb_ratelimit_lease_failed(&S.lease, k);
}

/* storage: memcached while memcached is down: on_error decides; at most one
 * probe a second finds out when it is back. */
static int take_down(const struct mb_ratelimit_rule *r, struct mb_rl_key k, const char *name,
                     size_t len, uint64_t now, uint64_t *retry_ns)
{
    mb_worker_count(S.w, MB_CTR_RATELIMIT_FALLBACK, 1);
    if (S.mc != NULL && !S.probe_inflight && now >= S.next_probe_ns) {
        struct mb_ratelimit_mc_job j;
        S.next_probe_ns = now + PROBE_INTERVAL_NS;
        j.key = k;
        memcpy(j.name, name, len);
        j.name_len = len;
        j.want = 1;
        j.T_ns = r->T_ns;
        j.tau_ns = r->tau_ns;
        j.probe = true;
        /* A probe is a real lease of one token: on success it is credited
         * to the bucket's lease if the worker has one. */
        if (mb_ratelimit_mc_submit(S.mc, &j) == MB_OK)
            S.probe_inflight = true;
    }
    if (S.c->memcached.on_error_allow)
        return take_shm(r, k, now, retry_ns);
    *retry_ns = S.next_probe_ns > now ? S.next_probe_ns - now : 1;
    return MB_RATELIMIT_DENY;
}

void mb_ratelimiter_check(struct mb_worker *w, const char *principal, const char *ip,
                          const char *tool, struct mb_ratelimit_verdict *v)
{
    memset(v, 0, sizeof(*v));
    if (!w->conf->rate_limit.enabled)
        return;
    if (S.state == UNSET)
        S.state = setup(w) == MB_OK ? READY : BROKEN;
    if (S.state != READY)
        return;

    const struct mb_ratelimit_rule *r = mb_ratelimit_rules_match(&S.rules, principal, tool);
    char name[MB_RATELIMIT_KEY_MAX];
    size_t len = mb_ratelimit_rules_key(&S.rules, r, principal, ip, name, sizeof(name));
    struct mb_rl_key k = mb_ratelimit_key(&w->shm->ratelimit, name, len);
    uint64_t now = mb_time_mono_ns(), retry_ns = 0;
    int rc;

    if (S.c->storage != MB_RL_STORAGE_MEMCACHED) {
        rc = take_shm(r, k, now, &retry_ns);
    } else if (S.down) {
        rc = take_down(r, k, name, len, now, &retry_ns);
    } else {
        uint32_t want = 0;
        uint64_t hold = r->tau_ns + r->T_ns;
        rc = mb_ratelimit_lease_take(&S.lease, k, now, hold > MIN_HOLD_NS ? hold : MIN_HOLD_NS,
                                     &retry_ns, &want);
        if (want > 0)
            submit(r, k, name, len, want);
    }
    fill(v, r, rc, retry_ns);
    if (v->limited)
        mb_worker_count(w, MB_CTR_RATELIMITED, 1);
}

int mb_ratelimiter_write_error(struct mb_buf *out, const char *id, size_t id_len,
                               const struct mb_ratelimit_verdict *v)
{
    char data[160];
    size_t mark = out->len;
    int n = snprintf(data, sizeof(data),
                     ",\"data\":{\"retry_after_ms\":%" PRIu64 ",\"limit\":%.15g,\"burst\":%" PRIu32
                     "}}}",
                     v->retry_after_ms, v->limit, v->burst);
    if (mb_buf_append_str(out, "{\"jsonrpc\":\"2.0\",\"id\":") != 0 ||
        mb_buf_append(out, id, id_len) != 0 ||
        mb_buf_append_str(out, ",\"error\":{\"code\":-32029,\"message\":\"" MB_RATELIMIT_MESSAGE
                               "\"") != 0 ||
        mb_buf_append(out, data, (size_t)n) != 0) {
        out->len = mark;
        return MB_ERR;
    }
    return MB_OK;
}

int mb_ratelimiter_request(struct mb_worker *w, struct mb_conn *c, const struct mb_jsonrpc_msg *m,
                           struct mb_buf *out, struct mb_mcp_outcome *res)
{
    struct mb_ratelimit_verdict v;
    const char *tool = NULL;
    const char *peer = "";

    if (!w->conf->rate_limit.enabled)
        return MB_DECLINED;
    if (m->method_id == MB_METHOD_TOOLS_CALL) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(mb_jsonrpc_params(m), "name");
        if (cJSON_IsString(name))
            tool = name->valuestring;
    }
    /* The principal is the client's address until authentication exists
     * (read once when the connection was adopted; no DNS). */
    if (c != NULL)
        peer = c->peer;
    mb_ratelimiter_check(w, peer, peer, tool, &v);
    if (!v.limited)
        return MB_DECLINED;
    res->replied = true;
    res->error = MB_RATELIMIT_CODE;
    return mb_ratelimiter_write_error(out, m->id, m->id_len, &v);
}
