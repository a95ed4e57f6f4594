/*
 * worker/metrics_backends.h — per-backend statistics of a worker, kept in the
 * region's backend stats section (shm/backends.h, layout.h §7), and their
 * Prometheus families and readiness test for /metrics and /readyz.
 *
 * The router calls these at the few places where a backend's state changes
 * or one of its requests starts or ends; upstream_http.c reports its pool's
 * connections. Every call is cheap (one or two atomic words) and does nothing
 * when the backend has no record (region without the section, or full).
 */
#ifndef MB_WORKER_METRICS_BACKENDS_H
#define MB_WORKER_METRICS_BACKENDS_H

#include <stdbool.h>
#include <stdint.h>

#include "worker/buf.h"

struct mb_worker;
struct mb_shm;
struct mb_conf;
struct mb_conf_backend;

/* Outcome of a backend request as the router knows it: 0 none yet (the
 * client left, nothing is counted), else enum mb_bstats_status + 1. */
#define MB_BACKEND_OUTCOME_NONE 0

/* The backend's record (claimed when new) or -1. Logged when full. */
int mb_metrics_backend_attach(struct mb_worker *w, const struct mb_conf_backend *b);
/* The worker's upstream to rec is ready (handshake answered) or not. */
void mb_metrics_backend_up(struct mb_worker *w, int rec, bool up);
/* A request was handed to the upstream: in flight +1; returns the time
 * (mb_time_mono_ns) to give to mb_metrics_backend_done. */
uint64_t mb_metrics_backend_sent(struct mb_worker *w, int rec);
/* A request of rec is forgotten: in flight -1 when it was sent; counted
 * under outcome (unless NONE), with its latency when answered. */
void mb_metrics_backend_done(struct mb_worker *w, int rec, bool sent, uint64_t sent_ns,
                             int outcome);
/* The outcome for a response (is_error: it carried "error") or for a
 * gateway error code (-32001 timeout, -32010 unavailable, others error). */
int mb_metrics_backend_outcome(bool is_error, int gateway_code);
/* A client request answered (or failed) by rec's backend, for
 * mcp_gateway_requests_total{backend="<name>"}: method enum mb_method,
 * status enum mb_req_status. false when not counted (no record, or a
 * region without the request matrix): the caller counts it as the
 * gateway's. */
bool mb_metrics_backend_request(struct mb_worker *w, int rec, int method, int status);
/* /metrics: the backend="<name>" rows of mcp_gateway_requests_total (the
 * family's HELP and TYPE are the caller's), zero rows left out. */
int mb_metrics_render_backend_requests(struct mb_shm *shm, struct mb_buf *out);
/* Pool connections of rec in this worker: active and idle deltas. */
void mb_metrics_backend_conns(struct mb_worker *w, int rec, int64_t d_active, int64_t d_idle);
/* upstream_http.c: a pool connection of u moved from state `from` to `to`
 * (enum mb_pool_state, or -1 for none: opened / gone). CONNECTING and BUSY
 * count as active, IDLE as idle. */
struct mb_upstream;
void mb_metrics_upstream_conn(const struct mb_upstream *u, int from, int to);

/* /metrics: mcp_gateway_backend_up, _backend_requests_total,
 * _backend_latency_seconds, _upstream_connections (http backends only), and
 * mcp_gateway_cache_requests_total when caching is on. ctr: the summed
 * counters. */
int mb_metrics_render_backends(struct mb_shm *shm, const struct mb_conf *conf, const uint64_t *ctr,
                               struct mb_buf *out);
/* /readyz: false with "no backend is up" when backends are configured and
 * no worker has any of them up. */
bool mb_metrics_backends_ready(struct mb_shm *shm, const struct mb_conf *conf, const char **why);

#endif
