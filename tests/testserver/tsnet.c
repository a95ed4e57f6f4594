/*
 * tests/testserver/tsnet.c — see tsnet.h.
 *
 * WebSocket runs on one lws context with the libev event library on the
 * caller's loop (foreign loop: the caller owns signals and shutdown), one
 * vhost bound to 127.0.0.1 unless told otherwise. Streamable HTTP is served
 * by tshttp.c on the same loop, without lws (see tshttp.h for why).
 *
 * WebSocket: each connection is one session and one broadcast channel.
 * Replies are framed by us into one buffer and written in the writeable
 * callback in batches (see ws_writeable); past QUEUE_HIGH queued bytes the
 * connection stops reading until the queue drains below QUEUE_LOW, so a
 * client that never reads cannot grow our memory. A binary frame closes the
 * connection with 1003, a message over MB_TSNET_MAX_MESSAGE with 1009.
 */
#include "tests/testserver/tsnet.h"

#include "common/errors.h"
#include "common/log.h"
#include "tests/testserver/tsbuf.h"
#include "tests/testserver/tshttp.h"
#include "tests/testserver/tsmcp.h"

#include <errno.h>
#include <ev.h>
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>

#define QUEUE_HIGH  (8u << 20)
#define QUEUE_LOW   (1u << 20)
#define WRITE_CHUNK (256u << 10)

struct mb_tsnet {
    struct mb_tsmcp *ts;
    struct lws_context *ctx;
    struct mb_tshttp *http;
    int http_port, ws_port;
};

/* ------------------------------------------------------------ WebSocket */

struct ws_conn {
    struct mb_tsmcp_chan ch; /* first: send() gets it back */
    struct mb_tsmcp_session session;
    struct mb_tsnet *net;
    struct lws *wsi;
    struct mb_tsbuf rx;
    struct mb_tsbuf out; /* whole frames, ready to write from out_off */
    size_t out_off;
    int open;
    int paused;
};

/* Total size (header + payload) of the unmasked frame we wrote at p. */
static size_t frame_size(const unsigned char *p)
{
    size_t len = p[1] & 127;
    if (len < 126)
        return 2 + len;
    if (len == 126)
        return 4 + ((size_t)p[2] << 8 | p[3]);
    len = 0;
    for (int i = 2; i < 10; i++)
        len = len << 8 | p[i];
    return 10 + len;
}

static void ws_send(struct mb_tsmcp_chan *ch, enum mb_tsmcp_kind kind, const char *msg, size_t len)
{
    struct ws_conn *c = (struct ws_conn *)ch;
    unsigned char h[10];
    size_t hn;
    if (kind == MB_TSMCP_ABORT)
        return;
    if (c->out_off != 0 && c->out_off >= c->out.len / 2) { /* compact */
        mb_tsbuf_consume(&c->out, c->out_off);
        c->out_off = 0;
    }
    h[0] = 0x81; /* FIN, text */
    if (len < 126) {
        h[1] = (unsigned char)len;
        hn = 2;
    } else if (len < 65536) {
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        hn = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
        hn = 10;
    }
    size_t old = c->out.len;
    mb_tsbuf_add(&c->out, h, hn);
    mb_tsbuf_add(&c->out, msg, len);
    if (c->out.failed) {
        mb_log_error("out of memory queueing a WebSocket message; dropped");
        c->out.failed = 0;
        c->out.len = old;
        return;
    }
    if (!c->paused && c->out.len - c->out_off > QUEUE_HIGH) {
        lws_rx_flow_control(c->wsi, 0);
        c->paused = 1;
    }
    lws_callback_on_writable(c->wsi);
}

/* Writes queued frames, whole frames only and about WRITE_CHUNK at a time,
 * with one lws_write(LWS_WRITE_RAW): one send(2) for many replies instead
 * of one per reply. lws keeps any unsent tail and sends it before anything
 * else (its own pongs and close frames included), so frames stay whole. */
static int ws_writeable(struct ws_conn *c)
{
    size_t end = c->out_off;
    while (end < c->out.len) {
        size_t fs = frame_size((unsigned char *)c->out.data + end);
        if (end != c->out_off && end - c->out_off + fs > WRITE_CHUNK)
            break;
        end += fs;
    }
    size_t n = end - c->out_off;
    if (n != 0 &&
        lws_write(c->wsi, (unsigned char *)c->out.data + c->out_off, n, LWS_WRITE_RAW) < (int)n)
        return -1;
    c->out_off = end;
    if (c->out_off == c->out.len) {
        c->out_off = 0;
        c->out.len = 0;
    } else {
        lws_callback_on_writable(c->wsi);
    }
    if (c->paused && c->out.len - c->out_off < QUEUE_LOW) {
        lws_rx_flow_control(c->wsi, 1);
        c->paused = 0;
    }
    return 0;
}

static void ws_cleanup(struct ws_conn *c)
{
    if (!c->open)
        return;
    mb_tsmcp_chan_close(c->net->ts, &c->ch);
    mb_tsmcp_session_close(c->net->ts, &c->session);
    mb_tsbuf_free(&c->out);
    mb_tsbuf_free(&c->rx);
    c->open = 0;
}

static int ws_close(struct lws *wsi, enum lws_close_status status, const char *why)
{
    mb_log_debug("closing a WebSocket: %s", why);
    lws_close_reason(wsi, status, (unsigned char *)why, strlen(why));
    return -1;
}

static int ws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                 size_t len)
{
    struct ws_conn *c = user;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        memset(c, 0, sizeof(*c));
        c->net = lws_context_user(lws_get_context(wsi));
        c->wsi = wsi;
        c->ch.send = ws_send;
        c->ch.broadcast = 1;
        mb_tsmcp_chan_open(c->net->ts, &c->ch);
        mb_tsmcp_session_open(&c->session);
        c->open = 1;
        return 0;
    case LWS_CALLBACK_RECEIVE: {
        if (!c->open)
            return -1;
        if (lws_frame_is_binary(wsi))
            return ws_close(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
                            "binary frames are not supported");
        int final = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
        if (c->rx.len == 0 && final) { /* the usual case: no copy */
            mb_tsmcp_handle(c->net->ts, &c->session, &c->ch, in, len);
            return 0;
        }
        if (c->rx.len + len > MB_TSNET_MAX_MESSAGE)
            return ws_close(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message over 64 MiB");
        mb_tsbuf_add(&c->rx, in, len);
        if (c->rx.failed)
            return ws_close(wsi, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
        if (final) {
            mb_tsmcp_handle(c->net->ts, &c->session, &c->ch, c->rx.data, c->rx.len);
            mb_tsbuf_reset(&c->rx);
        }
        return 0;
    }
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return c->open ? ws_writeable(c) : 0;
    case LWS_CALLBACK_HTTP:
        /* A plain HTTP request on the WebSocket port. */
        if (lws_return_http_status(wsi, 426, "this port speaks WebSocket only"))
            return -1;
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    case LWS_CALLBACK_CLOSED:
        ws_cleanup(c);
        return 0;
    default:
        return 0;
    }
}

/* ------------------------------------------------------------ context */

/* Named "mcp" so that lws echoes the subprotocol when a client offers it;
 * being first, it also serves clients that offer none. */
static const struct lws_protocols ws_protocols[] = {
    {.name = "mcp",
     .callback = ws_cb,
     .per_session_data_size = sizeof(struct ws_conn),
     .rx_buffer_size = 65536},
    {0},
};

static void lws_to_log(int level, const char *line)
{
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    mb_log(level == LLL_ERR ? MB_LOG_ERROR : MB_LOG_WARN, "lws: %.*s", (int)n, line);
}

static int add_vhost(struct mb_tsnet *n, const char *name, const char *host, int port,
                     const struct lws_protocols *protocols, int *bound)
{
    struct lws_context_creation_info vi;
    memset(&vi, 0, sizeof(vi));
    vi.vhost_name = name;
    vi.port = port;
    vi.iface = host;
    vi.protocols = protocols;
    vi.keepalive_timeout = 60;
    vi.timeout_secs = 60;
    if (strchr(host, ':') == NULL)
        vi.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    struct lws_vhost *vh = lws_create_vhost(n->ctx, &vi);
    if (vh == NULL) {
        mb_log_error("cannot listen for %s on %s port %d", name, host, port);
        return MB_ERR;
    }
    *bound = lws_get_vhost_listen_port(vh);
    return MB_OK;
}

int mb_tsnet_start(struct mb_tsnet **np, struct mb_tsmcp *ts, struct ev_loop *loop,
                   const struct mb_tsnet_opts *opts)
{
    const char *host = opts->host ? opts->host : "127.0.0.1";
    void *foreign[1] = {loop};
    struct lws_context_creation_info info;
    struct mb_tsnet *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return -ENOMEM;
    n->ts = ts;
    n->http_port = n->ws_port = -1;
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_to_log);
    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_LIBEV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    info.foreign_loops = foreign;
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.user = n;
    info.max_http_header_pool = 1024;
    n->ctx = lws_create_context(&info);
    if (n->ctx == NULL) {
        mb_log_error("cannot create the libwebsockets context (libev plugin?)");
        goto fail;
    }
    if (opts->http_port >= 0) {
        if (mb_tshttp_start(&n->http, ts, loop, host, opts->http_port) != 0)
            goto fail;
        n->http_port = mb_tshttp_port(n->http);
    }
    if (opts->ws_port >= 0 &&
        add_vhost(n, "ws", host, opts->ws_port, ws_protocols, &n->ws_port) != 0)
        goto fail;
    *np = n;
    return MB_OK;
fail:
    mb_tsnet_free(&n);
    return MB_ERR;
}

int mb_tsnet_http_port(const struct mb_tsnet *n)
{
    return n->http_port;
}

int mb_tsnet_ws_port(const struct mb_tsnet *n)
{
    return n->ws_port;
}

void mb_tsnet_free(struct mb_tsnet **np)
{
    struct mb_tsnet *n = *np;
    if (n == NULL)
        return;
    mb_tshttp_free(&n->http);
    if (n->ctx != NULL)
        lws_context_destroy(n->ctx); /* closes connections: their channels close */
    free(n);
    *np = NULL;
}
