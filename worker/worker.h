/*
 * worker/worker.h — the state of one worker process, shared by the files of
 * worker/ (not by anything outside it; the public entry point is
 * mb_worker_main() in common/process.h).
 *
 * Who owns what: worker.c the process (loop, signals, lws context, the 1 s
 * tick); accept.c the inherited listening sockets; conn.c the per-connection
 * state and output queues; ws.c the lws protocol callback (WebSocket
 * messages); http.c plain HTTP requests; drain.c graceful stop; metrics.c
 * request accounting and the admin endpoint (/metrics, /readyz);
 * accesslog.c the access log.
 */
#ifndef MB_WORKER_WORKER_H
#define MB_WORKER_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <libwebsockets.h>

#include "shm/counters.h"
#include "worker/buf.h"

struct mb_conf;
struct mb_shm;
struct mb_conn;
struct mb_worker;
struct mb_metrics;
struct mb_accesslog;

struct mb_conn_list {
    struct mb_conn *head, *tail;
};

struct mb_listener {
    ev_io io;
    int fd; /* -1 once closed */
    struct mb_worker *w;
};

enum mb_worker_phase {
    MB_PHASE_RUNNING = 0,  /* accepting */
    MB_PHASE_DRAINING = 1, /* QUIT: not accepting, closing connections as they go quiet */
    MB_PHASE_CLOSING = 2,  /* shutdown_timeout expired: every connection was told to close */
    MB_PHASE_STOPPED = 3   /* the loop is leaving */
};

struct mb_worker {
    const struct mb_conf *conf;
    struct mb_shm *shm;
    uint32_t index; /* worker record and counter row */

    struct ev_loop *loop;
    struct lws_context *ctx;
    struct lws_vhost *vh;
    struct lws_protocols protocols[3];
    lws_retry_bo_t retry; /* keeps lws's own per-connection keep-alive timers off */

    struct mb_listener *listeners;
    size_t nlisten;
    ev_timer accept_pause; /* accepting paused after EMFILE/ENFILE */
    uint32_t max_conns;    /* server.max_connections, capped by the fd limit */
    uint64_t rejected;     /* connections closed at accept: over max_conns */

    /* Every open connection is in exactly one list (conn.c): active, least
     * recently active first, or closing, oldest close first. */
    struct mb_conn_list active;
    struct mb_conn_list closing;
    uint32_t nconns;

    ev_timer tick; /* 1 s: heartbeat, WebSocket pings, idle timeout */
    ev_signal sig_quit, sig_term, sig_int, sig_usr1;

    enum mb_worker_phase phase;
    ev_timer drain_timer;
    uint64_t drain_deadline_ms; /* DRAINING: shutdown_timeout; CLOSING: last grace */

    struct mb_router *router; /* the backends (router.c) */

    bool kick_lws;              /* lws timers were armed outside an lws callback */
    struct mb_buf reply;        /* scratch: the reply being built */
    struct mb_buf tx_scratch;   /* scratch: replies framed together (conn.c) */
    size_t tx_batch;            /* most bytes framed into one write: websocket.write_buffer_size */
    ev_prepare flush;           /* before the loop waits: write what was queued (conn.c) */
    struct mb_conn *flush_head; /* connections whose queue was empty when a reply came */

    struct mb_metrics *metrics;     /* the admin endpoint (metrics.c); NULL when off */
    struct mb_accesslog *accesslog; /* accesslog.c; NULL when logging.access_log is off */
};

/* The loop's cached time in milliseconds (cheap: no system call). */
static inline uint64_t mb_worker_now_ms(const struct mb_worker *w)
{
    return (uint64_t)(ev_now(w->loop) * 1000.0);
}

/* Adds to a counter of this worker's own row in shm. */
static inline void mb_worker_count(struct mb_worker *w, enum mb_counter id, int64_t delta)
{
    mb_counters_add(w->shm, w->index, id, delta);
}

/* Wakes lws when kick_lws is set, so it services timers armed from the
 * worker's own watchers (conn.c kill_now). */
void mb_worker_kick_lws(struct mb_worker *w);

/* Leaves the event loop; mb_worker_main() then closes what is left. */
void mb_worker_stop(struct mb_worker *w);

/* accept.c */
int mb_accept_start(struct mb_worker *w, const int *fds, size_t n);
/* Stops watching and closes this worker's copies of the listening sockets
 * (the master keeps its own, so the next generation still accepts on them). */
void mb_accept_close(struct mb_worker *w);

/* ws.c: fills w->protocols for the vhost. */
void mb_ws_protocols_init(struct mb_worker *w);

/* http.c: the callback reasons of a plain HTTP request; return what the lws
 * callback returns. */
int mb_http_request(struct mb_worker *w, struct mb_conn *c, struct lws *wsi, const char *path);
int mb_http_confirm_upgrade(struct mb_worker *w, struct lws *wsi);

/* drain.c */
void mb_drain_start(struct mb_worker *w);
/* A connection went away (called by conn.c); ends the drain when none is left. */
void mb_drain_conn_gone(struct mb_worker *w);

#endif
