/*
 * worker/conn.h — one client connection as the worker sees it: activity
 * time, the output queue, fragment reassembly, keep-alive pings and the MCP
 * session.
 *
 * A connection is created when lws has adopted an accepted socket
 * (LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED) and freed when lws destroys
 * the wsi (LWS_CALLBACK_WSI_DESTROY); it hangs off the wsi as its opaque user
 * data, which survives lws's protocol switch at the WebSocket upgrade.
 *
 * Output: replies are queued in order. A WebSocket whose queue was empty is
 * put on the worker's flush list, and mb_conn_flush() writes its queue
 * directly once per loop iteration, right before the loop waits (an
 * ev_prepare watcher): everything the iteration produced for it (pipelined
 * requests, several backend answers) goes out in one write, without asking
 * lws for a writeable callback first. That request used to cost, per reply,
 * two epoll_ctl calls (POLLOUT on, then off) and one more loop iteration; in
 * a closed loop the socket is nearly always writable, and when it is not,
 * lws keeps the unsent rest itself (lws_partial_buffered) and the worker
 * falls back to LWS_CALLBACK_SERVER_WRITEABLE, one lws_write() per
 * callback, until the queue is empty; so a slow reader never blocks the
 * loop and no reply is dropped. Closes, pings and plain HTTP connections
 * always go through the writeable callback. When several replies are queued, that one write
 * carries as many whole frames as fit in server.websocket.write_buffer_size
 * (conn.c write_batch): one send() per batch instead of one per reply. When a client lets more than
 * MB_CONN_OUT_HIGH bytes pile up (bytes of queue memory: replies sit in recycled 4 KB blocks,
 * conn.c), the worker stops reading from it (lws rx flow control) until the queue is back under
 * MB_CONN_OUT_LOW: back-pressure instead of unbounded memory or dropped replies.
 *
 * Timers without lws timers: lws 4.1.6 keeps every timer of a thread in one
 * sorted linked list, so arming one costs a walk over the others; with 10,000
 * connections a per-connection keep-alive timer made connection set-up and
 * mass closes quadratic (measured: seconds of CPU for 10k connections). So
 * lws's keep-alive ("validity") timers stay off, and the worker keeps two
 * lists instead: active connections, least recently active first, and
 * closing connections, oldest close first. Moving to the end of a list is
 * O(1), and the 1 s sweep walks only the old ends:
 *   - server.websocket.ping_interval: a WebSocket silent that long gets a
 *     ping; one that has not answered the previous ping within another
 *     interval is dropped (dead peer);
 *   - server.idle_timeout: a connection with no message in either direction
 *     for that long is closed (WebSocket: 1001 "idle timeout");
 *   - a requested close that has not completed within MB_CONN_CLOSE_GRACE_MS
 *     (the client does not read) is killed.
 * Closes started by the sweep or the drain are limited per tick
 * (MB_CONN_CLOSE_BUDGET) because each one arms lws's close-handshake timer.
 */
#ifndef MB_WORKER_CONN_H
#define MB_WORKER_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "worker/buf.h"
#include "worker/mcp.h"
#include "worker/router.h"
#include "worker/worker.h"

#define MB_CONN_OUT_HIGH       (1024 * 1024)
#define MB_CONN_OUT_LOW        (256 * 1024)
#define MB_CONN_CLOSE_GRACE_MS 3000
#define MB_CONN_CLOSE_BUDGET   500

struct mb_outmsg {
    struct mb_outmsg *next;
    size_t len;
    unsigned char buf[]; /* LWS_PRE bytes of headroom, then len bytes */
};

struct mb_conn {
    struct mb_conn *prev, *next; /* in w->active or w->closing */
    struct mb_worker *w;
    struct lws *wsi;
    /* The client's address as lws_get_peer_simple gives it, read once when
     * the connection is adopted ("" when unknown): the cache scope and the
     * rate-limit principal of every request, without a getpeername each. */
    char peer[48];
    uint64_t last_active_ms; /* last message received or fully sent */
    uint64_t ping_ms;        /* when the last ping was sent; 0 = never */
    uint64_t close_ms;       /* when the close was requested */
    bool is_ws;              /* the WebSocket handshake completed */
    bool is_http;            /* its first request was plain HTTP (metrics.c counts it) */
    bool closing;            /* a close was requested (mb_conn_close) */
    bool killed;             /* the close grace ran out: lws was told to drop it */
    bool ping_due;           /* a ping waits for the next writeable callback */
    bool pong_wait;          /* a ping was sent and not answered yet */
    bool rx_paused;          /* reading stopped by back-pressure */
    bool flush_queued;       /* on w->flush_head */
    bool write_failed;       /* a direct write failed: the writeable callback closes */
    uint16_t close_code;
    const char *close_reason;
    struct mb_outmsg *out_head, *out_tail;
    struct mb_conn *flush_next; /* on w->flush_head */
    size_t out_bytes;           /* queue memory (conn.c block_size), for back-pressure */
    struct mb_buf rx;           /* fragments of the message being received */
    struct mb_mcp_session session;
    struct mb_router_client route; /* requests at backends (router.c) */
};

/* Creates the state of a just-adopted wsi and links it as its opaque data. */
struct mb_conn *mb_conn_new(struct mb_worker *w, struct lws *wsi);
/* Releases it (the wsi is going away); sets *cp = NULL. */
void mb_conn_free(struct mb_conn **cp);
/* Marks the connection active now. */
void mb_conn_touch(struct mb_conn *c);
/* A pong arrived. */
void mb_conn_pong(struct mb_conn *c);
/* Queues a copy of one text message; it is written by mb_conn_flush() or
 * from a writeable callback (see above). Returns 0, or MB_ERR when memory
 * ran out. */
int mb_conn_enqueue(struct mb_conn *c, const char *data, size_t len);
/* The same for a message made of n pieces, copied in order straight into
 * the queue: a reply assembled from fixed text, an id and a stored body is
 * not built in a buffer first (router.c's memoized lists: one 2 KB copy
 * less per tools/list). */
int mb_conn_enqueuev(struct mb_conn *c, const struct iovec *v, size_t n);
/* Writes the queues of the connections on the flush list (the worker's
 * ev_prepare watcher calls it once per loop iteration). */
void mb_conn_flush(struct mb_worker *w);
/* LWS_CALLBACK_SERVER_WRITEABLE: performs a requested close, or sends a due
 * ping, or writes one queued message. Returns what the callback returns. */
int mb_conn_writeable(struct mb_conn *c);
/* Closes the connection soon: a WebSocket with a close frame (code, reason)
 * from its next writeable callback, dropping replies still queued; a plain
 * HTTP connection at once. Moves it to the closing list. A caller outside an
 * lws callback calls mb_worker_kick_lws() after its closes. */
void mb_conn_close(struct mb_conn *c, uint16_t code, const char *reason);
/* The 1 s sweep: pings, idle timeout, overdue closes (see above). */
void mb_conn_sweep(struct mb_worker *w, uint64_t now);
/* True when nothing is queued for the client and no request of it waits
 * for a backend (the drain closes only such connections). */
static inline bool mb_conn_idle_out(const struct mb_conn *c)
{
    return c->out_head == NULL && c->route.inflight == 0;
}

#endif
