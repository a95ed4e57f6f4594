/*
 * worker/upstream_ws.c — the WebSocket transport (worker/upstream.h): one
 * persistent lws client connection per worker to the backend, subprotocol
 * `mcp`, one JSON-RPC message per text frame, every message the core sends
 * multiplexed on it (the core rewrites ids, so answers in any order are
 * matched there).
 *
 * Endpoints. The connection goes to one endpoint at a time, chosen by
 * smooth weighted round robin at each (re)connect, so a backend listed with
 * several URLs fails over to the next one. One connection, not one per
 * endpoint: the MCP session (the core's handshake) lives on the connection,
 * and the core runs one handshake per backend.
 *
 * States. UP when the WebSocket handshake completes; DOWN when the connection
 * closes or cannot be made (reported once per outage, with the reason). It
 * reconnects by itself: 100 ms after a failure, doubling up to 5 s, back to
 * 100 ms once a connection has stayed up 10 s. Messages queued for a
 * connection that is lost are dropped: the core fails what it sent on DOWN.
 *
 * Frames. Each queued message is written with LWS_PRE headroom from the
 * writeable callback, one per callback; received fragments are gathered up to
 * 64 MiB. A binary frame is a protocol violation: the message is dropped and
 * logged. backends[].headers go on the upgrade request; TCP keep-alive probes
 * every connection_pool.keep_alive.
 *
 * close(): the connection's opaque pointer is cleared and it is closed at
 * once; the queue and timers are freed. The vhost goes with the lws context.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libwebsockets.h>

#include "common/errors.h"
#include "common/log.h"
#include "conf/conf.h"
#include "worker/buf.h"
#include "worker/pool.h"
#include "worker/upstream.h"
#include "worker/upstream_common.h"
#include "worker/worker.h"

#define PROTOCOL_NAME  "mb-upstream-ws"
#define MAX_MSG        (64u * 1024 * 1024)
#define MAX_QUEUED     (256u * 1024 * 1024) /* bytes waiting to be written */
#define STABLE_S       10.0
#define RX_BUFFER_SIZE 65536

struct wmsg {
    struct wmsg *next;
    size_t len;
    unsigned char buf[]; /* LWS_PRE headroom, then the message */
};

struct ws_up {
    struct mb_upstream *u;
    struct lws_vhost *vh;
    struct lws *wsi;
    bool up;
    bool down_reported;
    bool connecting;
    int ep; /* the endpoint of the current connection */
    struct mb_pool_host *wrr;
    struct mb_pool_host **hosts;
    struct mb_pool wrr_pool; /* only for the weighted choice */
    double backoff;
    double up_at;
    ev_timer retry_t;
    struct wmsg *head, *tail;
    size_t queued;
    struct mb_buf tx;  /* LWS_PRE + the message being written now (reused) */
    bool write_failed; /* a direct write failed: the writeable callback closes */
    struct mb_buf rx;
    bool rx_bad; /* the message being received is dropped */
    char why[160];
};

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len);

static const struct lws_protocols protocols[] = {
    {PROTOCOL_NAME, callback, 0, RX_BUFFER_SIZE, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void drop_queue(struct ws_up *s)
{
    struct wmsg *m = s->head, *next;
    for (; m; m = next) {
        next = m->next;
        free(m);
    }
    s->head = s->tail = NULL;
    s->queued = 0;
}

static void schedule_connect(struct ws_up *s)
{
    struct ev_loop *loop = s->u->loop;
    if (s->up_at > 0 && ev_now(loop) - s->up_at >= STABLE_S)
        s->backoff = MB_UPSTREAM_BACKOFF_MIN_S;
    s->up_at = 0;
    mb_upstream_retry_arm(loop, &s->retry_t, &s->backoff);
}

/* The connection is gone or could not be made. */
static void lost(struct ws_up *s, const char *why)
{
    s->wsi = NULL;
    s->connecting = false;
    drop_queue(s);
    mb_buf_reset(&s->rx);
    s->rx_bad = false;
    snprintf(s->why, sizeof(s->why), "%s", why);
    bool was_up = s->up;
    s->up = false;
    schedule_connect(s);
    if (was_up || !s->down_reported) {
        s->down_reported = true;
        mb_log_warn("backend %s: %s: %s (reconnecting)", s->u->bconf->name,
                    s->u->bconf->endpoints[s->ep].url, why);
        s->u->ev->on_state(s->u->owner, MB_UPSTREAM_DOWN, s->why);
    }
}

static void connect_now(struct ws_up *s)
{
    const struct mb_conf_endpoint *e;
    struct lws_client_connect_info i;
    char host[300];

    s->ep = mb_pool_pick(s->hosts, NULL, s->u->bconf->nendpoints);
    e = &s->u->bconf->endpoints[s->ep];
    bool v6 = strchr(e->host, ':') != NULL;
    if (e->port == 80)
        snprintf(host, sizeof(host), "%s%s%s", v6 ? "[" : "", e->host, v6 ? "]" : "");
    else
        snprintf(host, sizeof(host), "%s%s%s:%u", v6 ? "[" : "", e->host, v6 ? "]" : "", e->port);
    memset(&i, 0, sizeof(i));
    i.context = s->u->w->ctx;
    i.vhost = s->vh;
    i.address = e->address;
    i.port = e->port;
    i.path = e->path;
    i.host = host;
    i.origin = host;
    i.protocol = "mcp";
    i.local_protocol_name = PROTOCOL_NAME;
    i.opaque_user_data = s;
    s->connecting = true;
    s->why[0] = '\0';
    struct lws *wsi = lws_client_connect_via_info(&i);
    if (wsi == NULL) {
        /* Failed at once; lws may or may not have called back already. */
        if (s->connecting) {
            char why[200];
            snprintf(why, sizeof(why), "connect to %s:%u: %s", e->address, e->port,
                     s->why[0] ? s->why : "failed");
            lost(s, why);
        }
        return;
    }
    if (s->connecting)
        s->wsi = wsi;
    s->u->w->kick_lws = true;
    mb_worker_kick_lws(s->u->w);
}

static void on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct ws_up *s = t->data;
    if (s->wsi == NULL && !s->connecting)
        connect_now(s);
}

static void set_keepalive(struct ws_up *s, struct lws *wsi)
{
    mb_msec_t ka = s->u->conf->connection_pool.keep_alive;
    int fd = (int)lws_get_socket_fd(wsi), on = 1;
    if (fd < 0 || ka <= 0)
        return;
    int secs = (int)((ka + 999) / 1000);
    if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) == -1 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &secs, sizeof(secs)) == -1 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &secs, sizeof(secs)) == -1)
        mb_log_debug("backend %s: TCP keep-alive: %s", s->u->bconf->name, strerror(errno));
}

static int add_headers(struct ws_up *s, struct lws *wsi, unsigned char **p, unsigned char *end)
{
    const struct mb_conf_kv *h = &s->u->bconf->headers;
    for (size_t i = 0; i < h->n; i++) {
        char name[256];
        snprintf(name, sizeof(name), "%s:", h->keys[i]);
        if (lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                        (const unsigned char *)h->values[i],
                                        (int)strlen(h->values[i]), p, end) != 0) {
            mb_log_error("backend %s: headers do not fit in the upgrade request",
                         s->u->bconf->name);
            return -1;
        }
    }
    return 0;
}

static int on_receive(struct ws_up *s, struct lws *wsi, const char *in, size_t len)
{
    if (lws_frame_is_binary(wsi))
        s->rx_bad = true;
    if (!s->rx_bad) {
        if (s->rx.len + len > MAX_MSG) {
            mb_log_error("backend %s: a message over %u bytes: dropping the connection",
                         s->u->bconf->name, MAX_MSG);
            return -1;
        }
        if (mb_buf_append(&s->rx, in, len) != 0) {
            mb_log_error("backend %s: out of memory receiving a message", s->u->bconf->name);
            return -1;
        }
    }
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) > 0)
        return 0;
    if (s->rx_bad)
        mb_log_warn("backend %s: protocol violation: a binary frame (dropped)", s->u->bconf->name);
    else if (s->rx.len > 0)
        s->u->ev->on_message(s->u->owner, s->rx.data, s->rx.len);
    mb_buf_reset(&s->rx);
    s->rx_bad = false;
    return 0;
}

static int on_writeable(struct ws_up *s, struct lws *wsi)
{
    if (s->write_failed)
        return -1;
    struct wmsg *m = s->head;
    if (m == NULL)
        return 0;
    s->head = m->next;
    if (s->head == NULL)
        s->tail = NULL;
    s->queued -= m->len;
    int n = lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
    free(m);
    if (n < 0) {
        snprintf(s->why, sizeof(s->why), "writing to the backend failed");
        return -1;
    }
    if (s->head != NULL)
        lws_callback_on_writable(wsi);
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct ws_up *s = lws_get_opaque_user_data(wsi);

    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        if (s == NULL)
            return -1;
        return add_headers(s, wsi, (unsigned char **)in, *(unsigned char **)in + len);
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
        if (s == NULL)
            return 0;
        lws_set_opaque_user_data(wsi, NULL);
        const struct mb_conf_endpoint *e = &s->u->bconf->endpoints[s->ep];
        char why[200];
        snprintf(why, sizeof(why), "connect to %s:%u: %s", e->address, e->port,
                 in ? (const char *)in : "failed");
        snprintf(s->why, sizeof(s->why), "%s", in ? (const char *)in : "failed");
        lost(s, why);
        return 0;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (s == NULL)
            return -1;
        s->wsi = wsi;
        s->connecting = false;
        s->up = true;
        s->write_failed = false;
        s->down_reported = false;
        s->up_at = ev_now(s->u->loop);
        set_keepalive(s, wsi);
        mb_log_info("backend %s: connected to %s", s->u->bconf->name,
                    s->u->bconf->endpoints[s->ep].url);
        s->u->ev->on_state(s->u->owner, MB_UPSTREAM_UP, NULL);
        if (s->head != NULL && s->wsi == wsi)
            lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (s == NULL)
            return -1;
        return on_receive(s, wsi, in, len);
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (s == NULL)
            return -1;
        return on_writeable(s, wsi);
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (s == NULL)
            return 0;
        lws_set_opaque_user_data(wsi, NULL);
        lost(s, s->why[0] ? s->why : "the connection closed");
        return 0;
    default:
        break;
    }
    return 0;
}

static int wu_start(struct mb_upstream *u)
{
    struct ws_up *s = u->impl;

    s->vh = mb_upstream_vhost_create(u, protocols);
    if (s->vh == NULL)
        return MB_ERR;
    ev_timer_set(&s->retry_t, 0., 0.);
    ev_timer_start(u->loop, &s->retry_t);
    return 0;
}

static int wu_send(struct mb_upstream *u, const char *msg, size_t len)
{
    struct ws_up *s = u->impl;
    if (!s->up || s->wsi == NULL)
        return MB_AGAIN;
    if (s->queued + len > MAX_QUEUED)
        return MB_ERR;
    /* Nothing waiting and lws holds no partial write: the message goes now.
     * Asking lws for a writeable callback instead cost two epoll_ctl calls
     * per request (POLLOUT on, then off) on a socket that is nearly always
     * writable; lws sends what the socket takes and keeps the rest itself,
     * asking for POLLOUT only then. A failed write cannot close the
     * connection from here (this may run outside lws's service): the
     * writeable callback returns -1 and the close path reports it. */
    if (s->head == NULL && !s->write_failed && !lws_partial_buffered(s->wsi)) {
        mb_buf_reset(&s->tx);
        if (mb_buf_reserve(&s->tx, LWS_PRE + len) != 0)
            return MB_ERR;
        memcpy(s->tx.data + LWS_PRE, msg, len);
        int n = lws_write(s->wsi, (unsigned char *)s->tx.data + LWS_PRE, len, LWS_WRITE_TEXT);
        if (n < 0 || (size_t)n < len) {
            snprintf(s->why, sizeof(s->why), "writing to the backend failed");
            s->write_failed = true;
            lws_callback_on_writable(s->wsi);
        }
        return 0;
    }
    struct wmsg *m = malloc(sizeof(*m) + LWS_PRE + len);
    if (m == NULL)
        return MB_ERR;
    m->next = NULL;
    m->len = len;
    memcpy(m->buf + LWS_PRE, msg, len);
    if (s->tail)
        s->tail->next = m;
    else
        s->head = m;
    s->tail = m;
    s->queued += len;
    lws_callback_on_writable(s->wsi);
    return 0;
}

static void wu_close(struct mb_upstream *u)
{
    struct ws_up *s = u->impl;
    if (s == NULL)
        return;
    ev_timer_stop(u->loop, &s->retry_t);
    if (s->wsi != NULL) {
        struct lws *wsi = s->wsi;
        s->wsi = NULL;
        lws_set_opaque_user_data(wsi, NULL);
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
    }
    drop_queue(s);
    mb_buf_free(&s->tx);
    mb_buf_free(&s->rx);
    free(s->wrr);
    free(s->hosts);
    free(s);
    u->impl = NULL;
}

static const struct mb_upstream_ops ws_ops = {
    .name = "websocket", .start = wu_start, .send = wu_send, .close = wu_close};

int mb_upstream_ws_init(struct mb_upstream *u)
{
    const struct mb_conf_backend *b = u->bconf;
    if (mb_upstream_endpoints_check(b) != 0)
        return MB_ERR;
    struct ws_up *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return MB_ERR;
    s->wrr = calloc(b->nendpoints, sizeof(*s->wrr));
    s->hosts = calloc(b->nendpoints, sizeof(*s->hosts));
    if (s->wrr == NULL || s->hosts == NULL) {
        free(s->wrr);
        free(s->hosts);
        free(s);
        return MB_ERR;
    }
    struct mb_pool_limits lim = {.enabled = false, .max_conns_per_host = 1};
    mb_pool_init(&s->wrr_pool, &lim);
    for (size_t i = 0; i < b->nendpoints; i++) {
        mb_pool_host_init(&s->wrr[i], &s->wrr_pool, b->endpoints[i].weight);
        s->hosts[i] = &s->wrr[i];
    }
    s->u = u;
    s->backoff = MB_UPSTREAM_BACKOFF_MIN_S;
    ev_timer_init(&s->retry_t, on_retry, 0., 0.);
    s->retry_t.data = s;
    u->ops = &ws_ops;
    u->impl = s;
    return 0;
}
