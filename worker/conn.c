/*
 * worker/conn.c — per-connection state, the active and closing lists, the
 * output queue and the 1 s sweep (see conn.h).
 */
#include "worker/conn.h"

#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "common/log.h"
#include "conf/conf.h"
#include "shm/shm.h"

/* The largest WebSocket frame header a server writes (64-bit length). */
#define FRAME_HDR_MAX 10

/*
 * Queued replies live in blocks recycled through a free list instead of a
 * malloc and a free per reply (~400 instructions for a 2 KB tools/list
 * reply, most of glibc's large-chunk path). A block holds up to OUT_BLOCK
 * bytes; a longer reply gets a block of its own size, freed after it is
 * written. At most OUT_SPARE_MAX blocks wait on the list (about 270 KB): as
 * many as one loop iteration typically queues, so a burst is absorbed and
 * idle connections hold nothing. The list is per process (the worker is one
 * thread; conn.c runs only on its loop) and is never released: it is
 * reachable memory of bounded size, like the worker's scratch buffers.
 */
#define OUT_BLOCK     4096
#define OUT_SPARE_MAX 64

static struct mb_outmsg *spare;
static size_t nspare;

/* The memory a queued reply of len bytes takes: back-pressure counts this,
 * so a flood of short replies cannot pin 4 KB each beyond MB_CONN_OUT_HIGH. */
static size_t block_size(size_t len)
{
    return len <= OUT_BLOCK ? OUT_BLOCK : len;
}

static struct mb_outmsg *block_get(size_t len)
{
    struct mb_outmsg *m;
    if (len <= OUT_BLOCK && spare != NULL) {
        m = spare;
        spare = m->next;
        nspare--;
        return m;
    }
    return malloc(sizeof(*m) + LWS_PRE + block_size(len));
}

static void block_put(struct mb_outmsg *m)
{
    if (m->len > OUT_BLOCK || nspare >= OUT_SPARE_MAX) {
        free(m);
        return;
    }
    m->next = spare;
    spare = m;
    nspare++;
}

static void list_unlink(struct mb_conn_list *l, struct mb_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        l->tail = c->prev;
    c->prev = c->next = NULL;
}

static void list_append(struct mb_conn_list *l, struct mb_conn *c)
{
    c->prev = l->tail;
    c->next = NULL;
    if (l->tail)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
}

static struct mb_conn_list *list_of(struct mb_conn *c)
{
    return c->closing ? &c->w->closing : &c->w->active;
}

struct mb_conn *mb_conn_new(struct mb_worker *w, struct lws *wsi)
{
    struct mb_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->w = w;
    c->wsi = wsi;
    lws_get_peer_simple(wsi, c->peer, sizeof(c->peer));
    c->last_active_ms = mb_worker_now_ms(w);
    mb_mcp_session_init(&c->session);
    c->session.router = w->router;
    c->session.conn = c;
    c->session.log_names = w->accesslog != NULL;
    list_append(&w->active, c);
    w->nconns++;
    lws_set_opaque_user_data(wsi, c);
    mb_shm_worker_conn_add(w->shm, w->index, 1);
    mb_worker_count(w, MB_CTR_CONNECTIONS_TOTAL, 1);
    mb_worker_count(w, MB_CTR_CONNECTIONS_ACTIVE, 1);
    return c;
}

void mb_conn_free(struct mb_conn **cp)
{
    struct mb_conn *c = *cp;
    if (c == NULL)
        return;
    struct mb_worker *w = c->w;
    if (w->router)
        mb_router_client_gone(w->router, c);
    struct mb_outmsg *m = c->out_head;
    while (m != NULL) {
        struct mb_outmsg *next = m->next;
        block_put(m);
        m = next;
    }
    mb_buf_free(&c->rx);
    if (c->flush_queued)
        for (struct mb_conn **pp = &w->flush_head; *pp != NULL; pp = &(*pp)->flush_next)
            if (*pp == c) {
                *pp = c->flush_next;
                break;
            }
    lws_set_opaque_user_data(c->wsi, NULL);
    list_unlink(list_of(c), c);
    w->nconns--;
    mb_shm_worker_conn_add(w->shm, w->index, -1);
    mb_worker_count(w, MB_CTR_CONNECTIONS_ACTIVE, -1);
    free(c);
    *cp = NULL;
    mb_drain_conn_gone(w);
}

void mb_conn_touch(struct mb_conn *c)
{
    c->last_active_ms = mb_worker_now_ms(c->w);
    if (c->closing || c->w->active.tail == c)
        return;
    list_unlink(&c->w->active, c);
    list_append(&c->w->active, c);
}

void mb_conn_pong(struct mb_conn *c)
{
    c->pong_wait = false;
}

int mb_conn_enqueue(struct mb_conn *c, const char *data, size_t len)
{
    struct iovec v = {(void *)data, len};
    return mb_conn_enqueuev(c, &v, 1);
}

int mb_conn_enqueuev(struct mb_conn *c, const struct iovec *v, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += v[i].iov_len;
    struct mb_outmsg *m = block_get(len);
    if (m == NULL)
        return MB_ERR;
    m->next = NULL;
    m->len = len;
    unsigned char *o = m->buf + LWS_PRE;
    for (size_t i = 0; i < n; i++) {
        memcpy(o, v[i].iov_base, v[i].iov_len);
        o += v[i].iov_len;
    }
    bool was_empty = c->out_head == NULL;
    if (c->out_tail)
        c->out_tail->next = m;
    else
        c->out_head = m;
    c->out_tail = m;
    c->out_bytes += block_size(len);
    if (!c->rx_paused && c->out_bytes > MB_CONN_OUT_HIGH) {
        /* The client sends faster than it reads: stop reading from it. */
        lws_rx_flow_control(c->wsi, 0);
        c->rx_paused = true;
    }
    /* A non-empty queue already has a flush or a writeable callback coming
     * (both ask again while messages remain). */
    if (!was_empty)
        return 0;
    if (c->is_ws && !c->closing) {
        if (!c->flush_queued) {
            c->flush_queued = true;
            c->flush_next = c->w->flush_head;
            c->w->flush_head = c;
        }
    } else {
        lws_callback_on_writable(c->wsi);
    }
    return 0;
}

static void pop(struct mb_conn *c)
{
    struct mb_outmsg *m = c->out_head;
    c->out_head = m->next;
    if (c->out_head == NULL)
        c->out_tail = NULL;
    c->out_bytes -= block_size(m->len);
    mb_worker_count(c->w, MB_CTR_WS_MESSAGES_OUT, 1);
    mb_worker_count(c->w, MB_CTR_BYTES_OUT, (int64_t)m->len);
    block_put(m);
}

/* One message as one text frame; lws frames it. */
static int write_one(struct mb_conn *c)
{
    struct mb_outmsg *m = c->out_head;
    /* lws sends what the socket takes and keeps the rest itself; a short
     * count means the connection failed. */
    int n = lws_write(c->wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
    if (n < 0 || (size_t)n < m->len)
        return -1;
    pop(c);
    return 1;
}

/* Appends a server-to-client text frame header (RFC 6455 5.2: FIN, opcode
 * 1, no mask) for len payload bytes; returns its size. */
static size_t frame_header(unsigned char *p, size_t len)
{
    p[0] = 0x81;
    if (len < 126) {
        p[1] = (unsigned char)len;
        return 2;
    }
    if (len <= 0xffff) {
        p[1] = 126;
        p[2] = (unsigned char)(len >> 8);
        p[3] = (unsigned char)len;
        return 4;
    }
    p[1] = 127;
    for (int i = 0; i < 8; i++)
        p[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

/* Several queued messages framed into one buffer of at most tx_batch bytes
 * and handed to lws as one write. With many requests in flight per
 * connection this turns one send() per reply into one per batch: the worker
 * was spending three quarters of its time in the kernel sending replies one
 * by one. lws passes LWS_WRITE_HTTP bytes through unframed on a WebSocket;
 * the frames are complete and the connection has no extension (no
 * permessage-deflate), so they are exactly what lws would have written. */
static int write_batch(struct mb_conn *c)
{
    struct mb_buf *b = &c->w->tx_scratch;
    int count = 0;

    mb_buf_reset(b);
    if (mb_buf_reserve(b, LWS_PRE + c->w->tx_batch) != 0)
        return write_one(c);
    b->len = LWS_PRE;
    for (struct mb_outmsg *m = c->out_head; m != NULL; m = m->next) {
        if (b->len - LWS_PRE + FRAME_HDR_MAX + m->len > c->w->tx_batch)
            break;
        b->len += frame_header((unsigned char *)b->data + b->len, m->len);
        memcpy(b->data + b->len, m->buf + LWS_PRE, m->len);
        b->len += m->len;
        count++;
    }
    size_t n = b->len - LWS_PRE;
    int w = lws_write(c->wsi, (unsigned char *)b->data + LWS_PRE, n, LWS_WRITE_HTTP);
    if (w < 0 || (size_t)w < n)
        return -1;
    for (int i = 0; i < count; i++)
        pop(c);
    return count;
}

/* Writes the head of the queue (several messages in one write when they
 * fit in tx_batch). Returns -1 when the connection failed. */
static int write_queued(struct mb_conn *c)
{
    struct mb_outmsg *m = c->out_head;
    int sent = m->next != NULL && m->len + m->next->len + 2 * FRAME_HDR_MAX <= c->w->tx_batch
                   ? write_batch(c)
                   : write_one(c);
    if (sent < 0)
        return -1;
    mb_conn_touch(c);
    if (c->rx_paused && c->out_bytes <= MB_CONN_OUT_LOW) {
        lws_rx_flow_control(c->wsi, 1);
        c->rx_paused = false;
    }
    return 0;
}

int mb_conn_writeable(struct mb_conn *c)
{
    if (c->closing) {
        if (c->is_ws)
            lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
                             (unsigned char *)c->close_reason, strlen(c->close_reason));
        return -1;
    }
    if (c->ping_due) {
        /* lws 4.1.6 does not report an empty pong to the callback, so the
         * ping carries a payload for the client to echo. */
        unsigned char ping[LWS_PRE + 4];
        memcpy(ping + LWS_PRE, "mbpk", 4);
        c->ping_due = false;
        if (lws_write(c->wsi, ping + LWS_PRE, 4, LWS_WRITE_PING) < 0)
            return -1;
        if (c->out_head)
            lws_callback_on_writable(c->wsi);
        return 0;
    }
    if (c->write_failed)
        return -1;
    if (c->out_head == NULL)
        return 0;
    if (write_queued(c) < 0)
        return -1;
    if (c->out_head)
        lws_callback_on_writable(c->wsi);
    return 0;
}

void mb_conn_flush(struct mb_worker *w)
{
    struct mb_conn *c;
    while ((c = w->flush_head) != NULL) {
        w->flush_head = c->flush_next;
        c->flush_next = NULL;
        c->flush_queued = false;
        if (c->out_head == NULL || c->closing)
            continue; /* a close drops the queue from its writeable callback */
        /* lws still holds part of an earlier write: it calls back when that
         * is out, and the queue follows from there. */
        if (lws_partial_buffered(c->wsi)) {
            lws_callback_on_writable(c->wsi);
            continue;
        }
        if (write_queued(c) < 0) {
            /* Closing from here would run lws's close outside its service;
             * the writeable callback returns -1 instead. */
            c->write_failed = true;
            lws_callback_on_writable(c->wsi);
            continue;
        }
        if (c->out_head)
            lws_callback_on_writable(c->wsi);
    }
}

static void kill_now(struct mb_conn *c)
{
    /* LWS_TO_KILL_ASYNC arms a timer due now: it goes to the front of lws's
     * timer list, so it costs nothing to insert. The libev plugin only looks
     * at its timer list after lws handled an event, so a timer armed from
     * the worker's own timer must be followed by a wake-up of lws
     * (mb_worker_kick_lws). */
    c->killed = true;
    c->w->kick_lws = true;
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

void mb_conn_close(struct mb_conn *c, uint16_t code, const char *reason)
{
    if (c->closing)
        return;
    struct mb_worker *w = c->w;
    list_unlink(&w->active, c);
    c->closing = true;
    c->close_ms = mb_worker_now_ms(w);
    c->close_code = code;
    c->close_reason = reason;
    list_append(&w->closing, c);
    if (c->is_ws)
        lws_callback_on_writable(c->wsi); /* the close frame goes out from there */
    else
        kill_now(c); /* lws does not call back an idle keep-alive connection */
}

void mb_conn_sweep(struct mb_worker *w, uint64_t now)
{
    const struct mb_conf_server *sv = &w->conf->server;
    uint64_t idle = sv->idle_timeout > 0 ? (uint64_t)sv->idle_timeout : 0;
    uint64_t ping = sv->websocket.ping_interval > 0 ? (uint64_t)sv->websocket.ping_interval : 0;
    uint64_t first = idle && ping ? (idle < ping ? idle : ping) : (idle ? idle : ping);
    int budget = MB_CONN_CLOSE_BUDGET;

    /* Closes that did not complete: the client does not read. */
    for (struct mb_conn *c = w->closing.head; c && c->close_ms + MB_CONN_CLOSE_GRACE_MS <= now;
         c = c->next)
        if (!c->killed)
            kill_now(c);

    if (first == 0)
        return;
    struct mb_conn *next;
    for (struct mb_conn *c = w->active.head; c && c->last_active_ms + first <= now; c = next) {
        next = c->next; /* mb_conn_close moves c to the closing list */
        uint64_t silent = now - c->last_active_ms;
        if (idle && silent >= idle) {
            if (budget-- > 0)
                mb_conn_close(c, LWS_CLOSE_STATUS_GOINGAWAY, "idle timeout");
            continue;
        }
        if (!ping || !c->is_ws)
            continue;
        if (c->pong_wait && now - c->ping_ms >= ping) {
            mb_log_debug("no pong within %llu ms: dropping the connection",
                         (unsigned long long)ping);
            if (budget-- > 0)
                mb_conn_close(c, LWS_CLOSE_STATUS_GOINGAWAY, "no pong");
            continue;
        }
        if (!c->pong_wait &&
            now - (c->ping_ms > c->last_active_ms ? c->ping_ms : c->last_active_ms) >= ping) {
            c->ping_ms = now;
            c->pong_wait = true;
            c->ping_due = true;
            lws_callback_on_writable(c->wsi);
        }
    }
}
