/*
 * worker/upstream_common.h — what the network upstream transports
 * (upstream_http.c, upstream_ws.c) do the same way: refusing endpoints they
 * cannot serve, creating their lws client vhost on the worker's context,
 * and the retry timer's exponential backoff. One copy, so the two
 * transports cannot drift apart on these.
 */
#ifndef MB_WORKER_UPSTREAM_COMMON_H
#define MB_WORKER_UPSTREAM_COMMON_H

#include <ev.h>
#include <libwebsockets.h>

#include "conf/conf.h"
#include "worker/upstream.h"

/* Reconnection backoff: the first retry after MIN, doubling up to MAX. */
#define MB_UPSTREAM_BACKOFF_MIN_S 0.1
#define MB_UPSTREAM_BACKOFF_MAX_S 5.0

/* 0, or MB_ERR for a backend without endpoints or with a TLS one (logged):
 * TLS upstreams are not supported yet. */
int mb_upstream_endpoints_check(const struct mb_conf_backend *b);

/* The client vhost "upstream-<backend>" with protocols on u's worker
 * context, or NULL (logged). */
struct lws_vhost *mb_upstream_vhost_create(struct mb_upstream *u,
                                           const struct lws_protocols *protocols);

/* Arms the one-shot timer t for *backoff seconds, then doubles *backoff
 * (capped at MB_UPSTREAM_BACKOFF_MAX_S) for the next failure. */
void mb_upstream_retry_arm(struct ev_loop *loop, ev_timer *t, double *backoff);

#endif
