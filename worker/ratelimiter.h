/*
 * worker/ratelimiter.h — the rate-limit step of the request path (DESIGN
 * §3: after parsing, before routing): which rule applies, which bucket it
 * draws from, and the decision, against the shm table (storage: shm) or a
 * local lease of the budget in memcached (storage: memcached). The scheme is
 * specified at the top of worker/ratelimiter.c.
 *
 * Use, per JSON-RPC request (notifications and responses are not limited:
 * they get no reply that could say so):
 *
 *     struct mb_ratelimit_verdict v;
 *     mb_ratelimiter_check(w, principal, ip, tool, &v);
 *     if (v.limited)
 *         mb_ratelimiter_write_error(out, id, id_len, &v);   // and do not route
 *
 * A rejected request is answered with JSON-RPC error MB_RATELIMIT_CODE
 * (-32029), message "rate limit exceeded" and data {"retry_after_ms": N,
 * "limit": R, "burst": B} (R and B of the rule that applied); the
 * connection stays open. HTTP transports also answer 429 with Retry-After
 * (mb_ratelimiter_retry_after_s).
 */
#ifndef MB_WORKER_RATELIMITER_H
#define MB_WORKER_RATELIMITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker/buf.h"

#define MB_RATELIMIT_CODE    (-32029)
#define MB_RATELIMIT_MESSAGE "rate limit exceeded"

struct mb_worker;
struct mb_conn;
struct mb_jsonrpc_msg;
struct mb_mcp_outcome;

struct mb_ratelimit_verdict {
    bool limited;
    uint64_t retry_after_ms; /* limited: when one more request would pass (>= 1) */
    double limit;            /* requests_per_sec of the rule that applied */
    uint32_t burst;
};

/*
 * Decides one request. principal: who is calling (the client's IP address
 * until authentication exists); ip: the client's IP address; tool: the
 * tools/call name, NULL for other methods. Fills *v (limited = false when
 * rate limiting is off). Counts `ratelimited` for a rejection. Never blocks.
 * The first call in a worker process sets the module up (rules, the shm
 * table's owner, and for storage: memcached the client and its thread).
 */
void mb_ratelimiter_check(struct mb_worker *w, const char *principal, const char *ip,
                          const char *tool, struct mb_ratelimit_verdict *v);

/*
 * The request path's step (router.c, right before a request is routed):
 * decides request m of connection c with the client's address as principal
 * and ip and, for tools/call, params.name as the tool. Returns MB_DECLINED
 * when the request may go on; otherwise the -32029 reply is in out, res
 * says so (replied, error), and the caller returns 0 (or MB_ERR when memory
 * ran out writing it).
 */
int mb_ratelimiter_request(struct mb_worker *w, struct mb_conn *c, const struct mb_jsonrpc_msg *m,
                           struct mb_buf *out, struct mb_mcp_outcome *res);

/* Appends the -32029 error reply for request id (raw text) to out.
 * Returns 0, or MB_ERR when memory ran out (out unchanged). */
int mb_ratelimiter_write_error(struct mb_buf *out, const char *id, size_t id_len,
                               const struct mb_ratelimit_verdict *v);

/* Whole seconds for an HTTP Retry-After header (rounded up, >= 1). */
static inline uint64_t mb_ratelimiter_retry_after_s(const struct mb_ratelimit_verdict *v)
{
    return v->retry_after_ms == 0 ? 1 : (v->retry_after_ms + 999) / 1000;
}

#endif
