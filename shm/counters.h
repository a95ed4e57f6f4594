/*
 * shm/counters.h — the gateway's counters and latency histograms, declared
 * once here (CONVENTIONS rule 12): the X-macro tables below generate the enum
 * ids, the names and help texts that the dump tool prints and /metrics
 * exports. Storage is the region's counter and histogram rows (layout.h §3,
 * §4).
 *
 * Which row does a process write? The row with the index of its worker-table
 * record (struct mb_worker_args.worker_index); the master writes the master
 * row (mb_counters_master_row()). A row has exactly one writer, so an
 * increment is a relaxed load and store, not a locked instruction. When the
 * master reaps a worker, mb_shm_worker_reaped() folds that row into the master
 * row, so sums never go backwards.
 *
 * To add a counter or histogram: append a line at the END of its table (the
 * order is the layout; appending is a minor change, anything else a major).
 * The request matrix (MB_REQUEST_COUNTERS_) and the per-method histograms
 * are blocks of such rows: a new method or status changes every row after
 * it, so it goes with a major bump; a new single counter goes after them.
 */
#ifndef MB_SHM_COUNTERS_H
#define MB_SHM_COUNTERS_H

#include <stddef.h>
#include <stdint.h>

#include "shm/layout.h"
#include "shm/shm.h"

enum mb_counter_type { MB_CTR_COUNTER = 0, MB_CTR_GAUGE = 1 };

/*
 * Requests by method and outcome: a fixed matrix, so the label values of
 * /metrics are bounded whatever clients send (a method name is client data:
 * anything not listed here counts as "other", a message that is not a valid
 * request as "invalid"). X(A, ID, name) with A passed through.
 */
#define MB_METHODS(X, A)                                                                           \
    X(A, INITIALIZE, "initialize")                                                                 \
    X(A, PING, "ping")                                                                             \
    X(A, TOOLS_LIST, "tools/list")                                                                 \
    X(A, TOOLS_CALL, "tools/call")                                                                 \
    X(A, RESOURCES_LIST, "resources/list")                                                         \
    X(A, RESOURCES_TEMPLATES_LIST, "resources/templates/list")                                     \
    X(A, RESOURCES_READ, "resources/read")                                                         \
    X(A, RESOURCES_SUBSCRIBE, "resources/subscribe")                                               \
    X(A, RESOURCES_UNSUBSCRIBE, "resources/unsubscribe")                                           \
    X(A, PROMPTS_LIST, "prompts/list")                                                             \
    X(A, PROMPTS_GET, "prompts/get")                                                               \
    X(A, COMPLETION_COMPLETE, "completion/complete")                                               \
    X(A, LOGGING_SET_LEVEL, "logging/setLevel")                                                    \
    X(A, SERVER_DISCOVER, "server/discover")                                                       \
    X(A, OTHER, "other")                                                                           \
    X(A, INVALID, "invalid")

/* The outcome of one answered request: "ok" or the class of its JSON-RPC
 * error. X(A, M, mname, ID, name, code) with A, M, mname passed through;
 * code is the JSON-RPC error code (0 for ok and for "error", any other code). */
#define MB_REQ_STATUSES(X, A, M, MN)                                                               \
    X(A, M, MN, OK, "ok", 0)                                                                       \
    X(A, M, MN, PARSE_ERROR, "parse_error", -32700)                                                \
    X(A, M, MN, INVALID_REQUEST, "invalid_request", -32600)                                        \
    X(A, M, MN, METHOD_NOT_FOUND, "method_not_found", -32601)                                      \
    X(A, M, MN, INVALID_PARAMS, "invalid_params", -32602)                                          \
    X(A, M, MN, INTERNAL_ERROR, "internal_error", -32603)                                          \
    X(A, M, MN, RATE_LIMITED, "rate_limited", -32029)                                              \
    X(A, M, MN, ERROR, "error", 0)

enum mb_method {
#define MB_X_(a, id, name) MB_METHOD_##id,
    MB_METHODS(MB_X_, _)
#undef MB_X_
        MB_METHOD__COUNT
};

enum mb_req_status {
#define MB_X_(a, m, mn, id, name, code) MB_REQ_##id,
    MB_REQ_STATUSES(MB_X_, _, _, _)
#undef MB_X_
        MB_REQ__COUNT
};

/* The matrix as rows of MB_COUNTERS: "requests.<method>.<status>". */
#define MB_REQ_BY_STATUS_(X, M, MN, S, SN, code)                                                   \
    X(REQ_##M##_##S, "requests." MN "." SN, MB_CTR_COUNTER, "requests", MN "." SN,                 \
      "Requests answered, by method and outcome.")
#define MB_REQ_BY_METHOD_(X, M, MN) MB_REQ_STATUSES(MB_REQ_BY_STATUS_, X, M, MN)
#define MB_REQUEST_COUNTERS_(X)     MB_METHODS(MB_REQ_BY_METHOD_, X)
/* One latency histogram per method: "request_duration.<method>". */
#define MB_HIST_BY_METHOD_(X, M, MN)                                                               \
    X(DURATION_##M, "request_duration." MN, "Time to answer a request, by method.")

/*
 * The shared caches (shm/cache.h): one counter per statistic and cache,
 * "cache_<stat>.<cache>", a block generated stat-major, cache-minor like the
 * request matrix (a new cache or statistic is a major change).
 */
#define MB_CACHE_NAMES(X, A, S, SN, H)                                                             \
    X(A, S, SN, H, DISCOVERY, "discovery")                                                         \
    X(A, S, SN, H, RESPONSE, "response")                                                           \
    X(A, S, SN, H, AUTH, "auth")
#define MB_CACHE_STATS(X, A)                                                                       \
    X(A, HITS, "hits", "Lookups answered from a shared cache, by cache.")                          \
    X(A, MISSES, "misses", "Lookups that found nothing usable (absent, expired, overwritten).")    \
    X(A, STORES, "stores", "Entries written into a shared cache.")                                 \
    X(A, STORED_BYTES, "stored_bytes", "Bytes of the entries written into a shared cache.")        \
    X(A, EVICTIONS, "evictions", "Live entries pushed out by newer ones (slots or arena space).")  \
    X(A, INVALIDATIONS, "invalidations", "Entries removed because their source changed.")          \
    X(A, OVERSIZE, "oversize", "Entries not stored: larger than the cache's max entry size.")

enum mb_cache_stat {
#define MB_X_(a, id, name, help) MB_CACHE_STAT_##id,
    MB_CACHE_STATS(MB_X_, _)
#undef MB_X_
        MB_CACHE_STAT__COUNT
};

#define MB_CACHE_ROW_(X, S, SN, H, C, CN)                                                          \
    X(CACHE_##S##_##C, "cache_" SN "." CN, MB_CTR_COUNTER, "cache_" SN, CN, H)
#define MB_CACHE_BY_STAT_(X, S, SN, H) MB_CACHE_NAMES(MB_CACHE_ROW_, X, S, SN, H)
#define MB_CACHE_COUNTERS_(X)          MB_CACHE_STATS(MB_CACHE_BY_STAT_, X)

/*
 * X(ID, name, type, family, kind, help)
 *   name    the key in the dump tool and its JSON ("family" or "family.kind")
 *   family  the metric family (/metrics: mcp_bridge_<family>)
 *   kind    the value of the family's "kind" label, or NULL
 * Written by: workers unless marked (master).
 */
#define MB_COUNTERS(X)                                                                             \
    X(CONNECTIONS_TOTAL, "connections_total", MB_CTR_COUNTER, "connections_total", NULL,           \
      "Client connections accepted.")                                                              \
    X(CONNECTIONS_ACTIVE, "connections_active", MB_CTR_GAUGE, "connections_active", NULL,          \
      "Client connections open now.")                                                              \
    X(WS_MESSAGES_IN, "ws_messages_in", MB_CTR_COUNTER, "ws_messages_in", NULL,                    \
      "WebSocket messages received from clients.")                                                 \
    X(WS_MESSAGES_OUT, "ws_messages_out", MB_CTR_COUNTER, "ws_messages_out", NULL,                 \
      "WebSocket messages sent to clients.")                                                       \
    X(REQUESTS_TOTAL, "requests_total", MB_CTR_COUNTER, "requests_total", NULL,                    \
      "JSON-RPC messages received from clients.")                                                  \
    X(REQUEST_ERRORS_PARSE_ERROR, "request_errors.parse_error", MB_CTR_COUNTER, "request_errors",  \
      "parse_error", "Client messages that were not JSON (-32700).")                               \
    X(REQUEST_ERRORS_INVALID_REQUEST, "request_errors.invalid_request", MB_CTR_COUNTER,            \
      "request_errors", "invalid_request", "Client messages that were not JSON-RPC (-32600).")     \
    X(REQUEST_ERRORS_METHOD_NOT_FOUND, "request_errors.method_not_found", MB_CTR_COUNTER,          \
      "request_errors", "method_not_found", "Requests for an unknown method (-32601).")            \
    X(REQUEST_ERRORS_OVERSIZE, "request_errors.oversize", MB_CTR_COUNTER, "request_errors",        \
      "oversize", "Client messages over server.max_message_size (close 1009).")                    \
    X(REQUEST_ERRORS_BINARY_FRAME, "request_errors.binary_frame", MB_CTR_COUNTER,                  \
      "request_errors", "binary_frame", "Binary WebSocket frames from clients (close 1003).")      \
    X(BYTES_IN, "bytes_in", MB_CTR_COUNTER, "bytes_in", NULL,                                      \
      "Payload bytes received from clients.")                                                      \
    X(BYTES_OUT, "bytes_out", MB_CTR_COUNTER, "bytes_out", NULL, "Payload bytes sent to clients.") \
    X(RELOADS, "reloads", MB_CTR_COUNTER, "reloads", NULL,                                         \
      "Configuration reloads that took effect (master).")                                          \
    X(WORKER_RESTARTS, "worker_restarts", MB_CTR_COUNTER, "worker_restarts", NULL,                 \
      "Worker processes respawned after they died (master).")                                      \
    X(RATELIMITED, "ratelimited", MB_CTR_COUNTER, "ratelimited", NULL,                             \
      "Requests rejected by the rate limit (-32029).")                                             \
    X(RATELIMIT_TABLE_FULL, "ratelimit_table_full", MB_CTR_COUNTER, "ratelimit_table_full", NULL,  \
      "Rate-limit decisions made without a bucket because the table was full.")                    \
    X(REQUESTS_IN_FLIGHT, "requests_in_flight", MB_CTR_GAUGE, "requests_in_flight", NULL,          \
      "Client requests received and not answered yet.")                                            \
    X(CONNECTIONS_WS_TOTAL, "connections_ws_total", MB_CTR_COUNTER, "connections_ws_total", NULL,  \
      "Client connections that completed a WebSocket handshake.")                                  \
    X(CONNECTIONS_WS_ACTIVE, "connections_ws_active", MB_CTR_GAUGE, "connections_ws_active", NULL, \
      "WebSocket client connections open now.")                                                    \
    X(CONNECTIONS_HTTP_TOTAL, "connections_http_total", MB_CTR_COUNTER, "connections_http_total",  \
      NULL, "Client connections whose first request was plain HTTP.")                              \
    X(CONNECTIONS_HTTP_ACTIVE, "connections_http_active", MB_CTR_GAUGE, "connections_http_active", \
      NULL, "Plain HTTP client connections open now.")                                             \
    X(RELOADS_FAILED, "reloads_failed", MB_CTR_COUNTER, "reloads_failed", NULL,                    \
      "Configuration reloads refused: bad file or sockets that could not be opened (master).")     \
    X(ACCESS_LOG_DROPPED, "access_log_dropped", MB_CTR_COUNTER, "access_log_dropped", NULL,        \
      "Access log lines lost because the log could not be written.")                               \
    MB_REQUEST_COUNTERS_(X)                                                                        \
    X(RATELIMIT_MEMCACHED_REFILLS, "ratelimit_memcached_refills", MB_CTR_COUNTER,                  \
      "ratelimit_memcached_refills", NULL,                                                         \
      "Round trips to memcached that leased rate-limit tokens (storage: memcached).")              \
    X(RATELIMIT_MEMCACHED_ERRORS, "ratelimit_memcached_errors", MB_CTR_COUNTER,                    \
      "ratelimit_memcached_errors", NULL,                                                          \
      "Round trips to memcached that failed (unreachable, timeout, bad reply).")                   \
    X(RATELIMIT_FALLBACK, "ratelimit_fallback", MB_CTR_COUNTER, "ratelimit_fallback", NULL,        \
      "Rate-limit decisions made while memcached was unreachable "                                 \
      "(rate_limit.memcached.on_error).")                                                          \
    MB_CACHE_COUNTERS_(X)

/* X(ID, name, help): latency histograms in the buckets of layout.h §4. */
#define MB_HISTOGRAMS(X)                                                                           \
    X(REQUEST_DURATION, "request_duration",                                                        \
      "Time from a client request's arrival to the gateway's reply.")                              \
    MB_METHODS(MB_HIST_BY_METHOD_, X)

enum mb_counter {
#define MB_X_(id, name, type, family, kind, help) MB_CTR_##id,
    MB_COUNTERS(MB_X_)
#undef MB_X_
        MB_CTR__COUNT
};

enum mb_hist {
#define MB_X_(id, name, help) MB_HIST_##id,
    MB_HISTOGRAMS(MB_X_)
#undef MB_X_
        MB_HIST__COUNT
};

struct mb_counter_info {
    const char *name;
    enum mb_counter_type type;
    const char *family;
    const char *kind;
    const char *help;
};
struct mb_hist_info {
    const char *name;
    const char *help;
};
extern const struct mb_counter_info mb_counters_info[MB_CTR__COUNT];
extern const struct mb_hist_info mb_counters_hist_info[MB_HIST__COUNT];
/* Upper bounds of the finite buckets, in microseconds. */
extern const uint64_t mb_counters_hist_bounds_us[MB_HIST_NBUCKETS];

/* The counter of (method, status) and the histogram of a method: the
 * matrix rows are generated method-major, status-minor, in one block. */
_Static_assert(MB_CTR_REQ_INVALID_ERROR - MB_CTR_REQ_INITIALIZE_OK + 1 ==
                   MB_METHOD__COUNT * MB_REQ__COUNT,
               "the request matrix is contiguous");
_Static_assert(MB_HIST_DURATION_INVALID - MB_HIST_DURATION_INITIALIZE + 1 == MB_METHOD__COUNT,
               "the per-method histograms are contiguous");
static inline enum mb_counter mb_counters_request_id(enum mb_method m, enum mb_req_status s)
{
    return (enum mb_counter)(MB_CTR_REQ_INITIALIZE_OK + (int)m * MB_REQ__COUNT + (int)s);
}
_Static_assert(MB_CTR_CACHE_OVERSIZE_AUTH - MB_CTR_CACHE_HITS_DISCOVERY + 1 ==
                   MB_CACHE_STAT__COUNT * 3,
               "the cache counters are contiguous");
/* The counter of a statistic of a cache (0 discovery, 1 response, 2 auth). */
static inline enum mb_counter mb_counters_cache_id(enum mb_cache_stat s, uint32_t cache)
{
    return (enum mb_counter)(MB_CTR_CACHE_HITS_DISCOVERY + (int)s * 3 + (int)cache);
}
static inline enum mb_hist mb_counters_method_hist(enum mb_method m)
{
    return (enum mb_hist)(MB_HIST_DURATION_INITIALIZE + (int)m);
}
static inline const char *mb_counters_method_name(enum mb_method m)
{
    switch (m) {
#define MB_X_(a, id, name)                                                                         \
    case MB_METHOD_##id:                                                                           \
        return name;
        MB_METHODS(MB_X_, _)
#undef MB_X_
    default:
        return "other";
    }
}
static inline const char *mb_counters_status_name(enum mb_req_status s)
{
    switch (s) {
#define MB_X_(a, m, mn, id, name, code)                                                            \
    case MB_REQ_##id:                                                                              \
        return name;
        MB_REQ_STATUSES(MB_X_, _, _, _)
#undef MB_X_
    default:
        return "error";
    }
}
/* The status of an answer with JSON-RPC error code (0 = a result). */
static inline enum mb_req_status mb_counters_status_of(int code)
{
    if (code == 0)
        return MB_REQ_OK;
#define MB_X_(a, m, mn, id, name, c)                                                               \
    if ((c) != 0 && code == (c))                                                                   \
        return MB_REQ_##id;
    MB_REQ_STATUSES(MB_X_, _, _, _)
#undef MB_X_
    return MB_REQ_ERROR;
}

static inline uint32_t mb_counters_master_row(const struct mb_shm *shm)
{
    return shm->nrows - 1;
}

static inline uint64_t *mb_counters_row(struct mb_shm *shm, uint32_t row)
{
    return shm->counters + (size_t)row * shm->counter_stride;
}

static inline struct mb_shm_hist *mb_counters_hist_row(struct mb_shm *shm, uint32_t row)
{
    return shm->hists + (size_t)row * shm->hist_stride;
}

/* Adds delta (negative for a gauge going down) to a counter of the caller's
 * own row. Single writer per row: no locked instruction. */
static inline void mb_counters_add(struct mb_shm *shm, uint32_t row, enum mb_counter id,
                                   int64_t delta)
{
    uint64_t *p = mb_counters_row(shm, row) + id;
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + (uint64_t)delta, __ATOMIC_RELAXED);
}

/* Index of the bucket a value falls in; MB_HIST_NBUCKETS = above the last. */
static inline unsigned mb_counters_hist_bucket(uint64_t ns)
{
    unsigned i = 0;
    while (i < MB_HIST_NBUCKETS && ns > mb_counters_hist_bounds_us[i] * 1000u)
        i++;
    return i;
}

/* Records one observation (nanoseconds) in a histogram of the caller's own
 * row. count, then sum, then the bucket with release (layout.h §4). */
static inline void mb_counters_observe(struct mb_shm *shm, uint32_t row, enum mb_hist id,
                                       uint64_t ns)
{
    struct mb_shm_hist *h = mb_counters_hist_row(shm, row) + id;
    __atomic_store_n(&h->count, __atomic_load_n(&h->count, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
    __atomic_store_n(&h->sum_ns, __atomic_load_n(&h->sum_ns, __ATOMIC_RELAXED) + ns,
                     __ATOMIC_RELAXED);
    unsigned b = mb_counters_hist_bucket(ns);
    if (b < MB_HIST_NBUCKETS)
        __atomic_store_n(&h->bucket[b], __atomic_load_n(&h->bucket[b], __ATOMIC_RELAXED) + 1,
                         __ATOMIC_RELEASE);
}

/* Readers: sums every row (workers and master row) into out[0..n), consistent
 * with respect to folding (retries while the master folds). Returns how many
 * counters were filled: min(n, counters in the region); the rest of out is
 * zeroed. A gauge's sum is an int64_t stored in the uint64_t. */
size_t mb_counters_snapshot(const struct mb_shm *shm, uint64_t *out, size_t n);
/* One counter's sum; 0 for a counter the region does not hold. */
uint64_t mb_counters_sum(const struct mb_shm *shm, enum mb_counter id);
/* Readers: the same for histograms; returns how many were filled. */
size_t mb_counters_hist_snapshot(const struct mb_shm *shm, struct mb_shm_hist *out, size_t n);
/* The q-quantile (0 < q <= 1) of a histogram in milliseconds, interpolated
 * linearly inside its bucket (like Prometheus' histogram_quantile). Returns
 * -1 for an empty histogram and INFINITY when it falls above the last bound. */
double mb_counters_hist_quantile(const struct mb_shm_hist *h, double q);

/* Master (through mb_shm_worker_reaped): folds a dead worker's rows into the
 * master row and zeroes them, inside the header's fold_seq sequence lock. */
void mb_counters_fold(struct mb_shm *shm, uint32_t row);

/*
 * Carrying totals from one region to its successor (a reload that changes the
 * region's shape, master/cycle.c). When the successor is built, the old
 * region's totals T0 are added to the new master row; when the old region's
 * last worker is reaped, its totals T1 (all folded by then) minus T0 are added
 * to the region current at that moment. So every event is counted once in the
 * current region, late or not at all never: totals never go backwards.
 * Gauges are not carried (what they measure lives in the old workers and
 * ends with them).
 */
struct mb_counters_totals {
    uint64_t ctr[MB_CTR__COUNT];
    struct mb_shm_hist hist[MB_HIST__COUNT];
};
/* The totals of a region now (every row, master row included). */
void mb_counters_totals(const struct mb_shm *shm, struct mb_counters_totals *t);
/* Master: adds now - since (since NULL: now) of every counter, not gauge, and
 * every histogram to dst's master row, inside dst's fold_seq. A counter that
 * is smaller in now than in since (cannot happen unless a region was damaged)
 * adds nothing. */
void mb_counters_carry(struct mb_shm *dst, const struct mb_counters_totals *now,
                       const struct mb_counters_totals *since);

#endif
