/*
 * worker/metrics.h — what the worker counts for operators, and the admin
 * endpoint that exports it (issue 7).
 *
 * Counting. Every answered request goes through mb_metrics_request_done():
 * one counter of a request matrix (method x status: the worker's row of
 * shm/counters.h when the gateway answered, the answering backend's record
 * of shm/backends.h otherwise), the
 * method's latency histogram and, when configured, one access-log line
 * (worker/accesslog.h). A request the gateway answers while handling the
 * message is counted by ws.c right after the reply is built; a request the
 * router takes (worker/router.c: calls to backends, merged lists, an
 * initialize held for starting backends) is counted by the router when its
 * reply, or the gateway's error about it (timeout, backend unavailable), is
 * queued, timed from the message's arrival (mb_mcp_session.arrival_ns).
 * REQUESTS_IN_FLIGHT covers both: ws.c raises it around the handling of a
 * message, the router from taking a request until its reply is queued or the
 * client goes away (a request the client cancelled or abandoned is not
 * counted as answered). The transport of a
 * connection is decided by its first request: mb_metrics_conn_ws() at the
 * WebSocket handshake, mb_metrics_conn_http() at the first plain HTTP
 * request, mb_metrics_conn_gone() when the connection is freed.
 *
 * The admin endpoint. The master opens one SO_REUSEPORT socket per worker
 * slot for metrics.listen (master/listen.h) and the worker serves plain
 * HTTP on it through a second lws vhost, like the client listeners:
 *   GET|HEAD metrics.path   Prometheus text format 0.0.4, from shm: every
 *                           worker sums the same rows, so any worker gives
 *                           the same totals
 *   GET|HEAD /healthz       200 "ok": the process answers
 *   GET|HEAD /readyz        200 "ready", or 503 with the reason (below)
 *   other paths             404; other methods 405
 * Scrape connections are not client connections: they are not counted in
 * the connection counters and have their own small limit per worker
 * (MB_METRICS_MAX_CONNS). On a graceful stop the worker closes its copy of
 * the socket, like the client listeners, so the next generation answers.
 *
 * Readiness (/readyz): ready means this worker would serve a request now:
 * the configuration was loaded (a worker runs only with a valid one), the
 * shared region is published (READY) and the worker is RUNNING, not
 * draining. When backends exist, "at least one backend healthy" is added
 * here (mb_metrics_ready), and the reason names what is missing.
 */
#ifndef MB_WORKER_METRICS_H
#define MB_WORKER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/counters.h"
#include "worker/buf.h"

struct mb_conf;
struct mb_shm;
struct mb_worker;
struct mb_conn;
struct mb_mcp_outcome;
struct mb_jsonrpc_msg;

#define MB_METRICS_MAX_CONNS 64

/* The bounded method label of a method name (NULL = not a request). */
enum mb_method mb_metrics_method_of(const char *name);
/* Fills the outcome's method, and with names its method_name and tool
 * (their only reader is the access log: without it they stay "", and the
 * copies and the params lookup are saved), from a parsed message (mcp.c
 * calls it once per message). */
void mb_metrics_note(struct mb_mcp_outcome *res, const struct mb_jsonrpc_msg *m, bool names);

/* Sets the outcome's method_name and tool (both truncated to their arrays:
 * a bounded copy, no formatting; for replies the router builds later). */
void mb_metrics_set_names(struct mb_mcp_outcome *res, const char *method, const char *tool);

/* A request was answered (res->replied): counters, histogram, access log. */
void mb_metrics_request_done(struct mb_worker *w, struct mb_conn *c,
                             const struct mb_mcp_outcome *res, size_t bytes_in, size_t bytes_out,
                             uint64_t duration_ns);
void mb_metrics_conn_ws(struct mb_worker *w, struct mb_conn *c);
void mb_metrics_conn_http(struct mb_worker *w, struct mb_conn *c);
void mb_metrics_conn_gone(struct mb_worker *w, struct mb_conn *c);

/* True when the worker is ready; otherwise *why says what is missing. */
bool mb_metrics_ready(const struct mb_worker *w, const char **why);

/* The admin endpoint: starts serving on fd (nothing when fd is -1). Call
 * after the lws context exists. Returns 0 or MB_ERR. */
int mb_metrics_start(struct mb_worker *w, int fd);
/* Stops accepting and closes the worker's copy of the socket (drain). */
void mb_metrics_stop_accepting(struct mb_worker *w);
/* Releases the endpoint's state (after the lws context is destroyed). */
void mb_metrics_free(struct mb_worker *w);

/* Appends the whole exposition (text format 0.0.4) for the region and the
 * configuration it serves. Pure apart from reading shm and /proc; exported
 * for unit tests. Returns 0 or MB_ERR (out of memory). */
int mb_metrics_render(struct mb_shm *shm, const struct mb_conf *conf, struct mb_buf *out);

#endif
