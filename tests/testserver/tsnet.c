/*
 * tests/testserver/tsnet.c — see tsnet.h.
 *
 * One lws context with the libev event library on the caller's loop
 * (foreign loop: the caller owns signals and shutdown), and one vhost per
 * listener, bound to 127.0.0.1 unless told otherwise.
 *
 * Streamable HTTP, as the MCP transport spec (2025-06-18, 2025-11-25) says:
 *   - POST /mcp carries one JSON-RPC message, Content-Type application/json
 *     (else 415) and a Content-Length (else 411; lws 4.1 cannot read chunked
 *     request bodies).
 *   - initialize without Mcp-Session-Id creates a session, whose id comes back
 *     in the Mcp-Session-Id header; every other message must carry it (400
 *     without, 404 for an unknown or ended one). DELETE /mcp ends it (200).
 *   - MCP-Protocol-Version, when present, must be a version we speak (400).
 *   - A notification or a response is answered 202 with no body; an invalid
 *     message 400 with the JSON-RPC error; a request 200 with its reply as
 *     application/json — or as text/event-stream when the request's Accept
 *     lists text/event-stream and something is sent before the reply
 *     (progress, tools/list_changed). The SSE response has no length and
 *     closes the connection when done (lws ends length-less h1 bodies so).
 *   - GET /mcp (the server-to-client stream) is not offered: 405, which the
 *     spec allows. Other paths: 404.
 *   - A request cancelled (notifications/cancelled, DELETE) before its reply
 *     gets a -32800 error if its response has not started, else its stream
 *     simply ends.
 * Origin is not checked: the server only listens on loopback for tests.
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
#include "tests/testserver/tsmcp.h"

#include <errno.h>
#include <ev.h>
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#define QUEUE_HIGH   (8u << 20)
#define QUEUE_LOW    (1u << 20)
#define WRITE_CHUNK  (256u << 10)
#define SESS_BUCKETS 16384
#define SID_LEN      32

struct http_session {
    struct mb_tsmcp_session s;
    char id[SID_LEN + 1];
    struct http_session *hnext;         /* hash bucket */
    struct http_session *older, *newer; /* creation order, for eviction */
};

struct mb_tsnet {
    struct mb_tsmcp *ts;
    struct lws_context *ctx;
    int http_port, ws_port;
    struct http_session *buckets[SESS_BUCKETS];
    struct http_session *oldest, *newest;
    size_t nsessions;
};

/* ------------------------------------------------------------ sessions */

static unsigned sid_hash(const char *id)
{
    unsigned h = 2166136261u;
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return h % SESS_BUCKETS;
}

static struct http_session *sess_find(struct mb_tsnet *n, const char *id)
{
    for (struct http_session *s = n->buckets[sid_hash(id)]; s != NULL; s = s->hnext)
        if (strcmp(s->id, id) == 0)
            return s;
    return NULL;
}

static void sess_end(struct mb_tsnet *n, struct http_session *s)
{
    struct http_session **pp = &n->buckets[sid_hash(s->id)];
    while (*pp != s)
        pp = &(*pp)->hnext;
    *pp = s->hnext;
    if (s->older != NULL)
        s->older->newer = s->newer;
    else
        n->oldest = s->newer;
    if (s->newer != NULL)
        s->newer->older = s->older;
    else
        n->newest = s->older;
    n->nsessions--;
    mb_tsmcp_session_close(n->ts, &s->s);
    free(s);
}

static struct http_session *sess_new(struct mb_tsnet *n)
{
    unsigned char rnd[SID_LEN / 2];
    static const char hex[] = "0123456789abcdef";
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        mb_log_error("getrandom for a session id: %s", strerror(errno));
        return NULL;
    }
    struct http_session *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof(rnd); i++) {
        s->id[2 * i] = hex[rnd[i] >> 4];
        s->id[2 * i + 1] = hex[rnd[i] & 15];
    }
    if (n->nsessions >= MB_TSNET_MAX_SESSIONS)
        sess_end(n, n->oldest);
    mb_tsmcp_session_open(&s->s);
    unsigned b = sid_hash(s->id);
    s->hnext = n->buckets[b];
    n->buckets[b] = s;
    s->older = n->newest;
    if (n->newest != NULL)
        n->newest->newer = s;
    else
        n->oldest = s;
    n->newest = s;
    n->nsessions++;
    return s;
}

/* ------------------------------------------------------------ HTTP */

/* Per-transaction state: lws frees and re-creates it between keep-alive
 * requests (DROP_PROTOCOL / BIND_PROTOCOL). */
struct http_conn {
    struct mb_tsmcp_chan ch; /* first: send() gets it back */
    struct mb_tsnet *net;
    struct lws *wsi;
    struct mb_tsbuf body;
    struct mb_tsbuf out; /* LWS_PRE bytes of headroom, then what to write next */
    int inited;
    int chan_open;
    int too_large;
    int status;
    int sse_ok; /* the request's Accept lists text/event-stream */
    int sse;    /* the response is an event stream */
    int json;   /* the body is application/json */
    int allow;  /* add Allow: POST, DELETE (405) */
    int final;  /* out holds the end of the response */
    int headers_sent;
    int finished; /* transaction completed */
    char new_sid[SID_LEN + 1];
};

static void out_reset(struct http_conn *c)
{
    mb_tsbuf_reset(&c->out);
    mb_tsbuf_reserve(&c->out, LWS_PRE + 256);
    if (!c->out.failed)
        c->out.len = LWS_PRE;
}

static void http_cleanup(struct http_conn *c)
{
    if (!c->inited)
        return;
    if (c->chan_open)
        mb_tsmcp_chan_close(c->net->ts, &c->ch);
    mb_tsbuf_free(&c->body);
    mb_tsbuf_free(&c->out);
    memset(c, 0, sizeof(*c));
}

static void http_finish(struct http_conn *c, int status)
{
    c->status = status;
    c->final = 1;
    lws_callback_on_writable(c->wsi);
}

/* A transport-level error: JSON-RPC error body with a null id. */
static void http_error(struct http_conn *c, int status, int code, const char *msg)
{
    out_reset(c);
    mb_tsbuf_addf(&c->out,
                  "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":%d,\"message\":", code);
    mb_tsbuf_add_jstr(&c->out, msg, strlen(msg));
    mb_tsbuf_adds(&c->out, "}}");
    c->json = 1;
    http_finish(c, status);
}

static void http_send(struct mb_tsmcp_chan *ch, enum mb_tsmcp_kind kind, const char *msg,
                      size_t len)
{
    struct http_conn *c = (struct http_conn *)ch;
    if (c->final)
        return;
    if (kind == MB_TSMCP_NOTIFY) {
        if (!c->sse_ok)
            return; /* nowhere to put it: no GET stream, JSON-only client */
        c->sse = 1;
        c->status = 200;
    }
    if (c->sse) {
        if (kind != MB_TSMCP_ABORT) {
            mb_tsbuf_add(&c->out, "event: message\ndata: ", 21);
            mb_tsbuf_add(&c->out, msg, len);
            mb_tsbuf_add(&c->out, "\n\n", 2);
        }
    } else {
        mb_tsbuf_add(&c->out, msg, len);
        c->json = 1;
        c->status = 200;
    }
    if (kind != MB_TSMCP_NOTIFY)
        c->final = 1;
    lws_callback_on_writable(c->wsi);
}

static int hdr_custom(struct lws *wsi, const char *name, char *buf, int cap)
{
    int n = lws_hdr_custom_length(wsi, name, (int)strlen(name));
    if (n < 0)
        return -1; /* absent */
    if (n >= cap)
        return -2; /* too long to be valid */
    if (lws_hdr_custom_copy(wsi, buf, cap, name, (int)strlen(name)) < 0)
        return -2;
    return n;
}

static void http_post(struct http_conn *c)
{
    struct lws *wsi = c->wsi;
    struct mb_tsnet *net = c->net;
    char ct[128], pv[64], sid[SID_LEN + 8], accept[1024];
    if (c->too_large) {
        http_error(c, 413, -32600, "Payload Too Large: message over 64 MiB");
        return;
    }
    int n = lws_hdr_copy(wsi, ct, sizeof(ct), WSI_TOKEN_HTTP_CONTENT_TYPE);
    if (n < 16 || strncasecmp(ct, "application/json", 16) != 0 ||
        (ct[16] != '\0' && ct[16] != ';' && ct[16] != ' ')) {
        http_error(c, 415, -32600, "Unsupported Media Type: Content-Type must be application/json");
        return;
    }
    n = hdr_custom(wsi, "mcp-protocol-version:", pv, sizeof(pv));
    if (n == -2 || (n >= 0 && !mb_tsmcp_version_supported(pv, (size_t)n))) {
        http_error(c, 400, -32600, "Bad Request: unsupported MCP-Protocol-Version");
        return;
    }
    if (lws_hdr_copy(wsi, accept, sizeof(accept), WSI_TOKEN_HTTP_ACCEPT) > 0)
        c->sse_ok = strstr(accept, "text/event-stream") != NULL;
    struct http_session *s;
    n = hdr_custom(wsi, "mcp-session-id:", sid, sizeof(sid));
    if (n >= 0) {
        if ((s = sess_find(net, sid)) == NULL) {
            http_error(c, 404, -32001, "Session not found");
            return;
        }
    } else if (n == -2) {
        http_error(c, 404, -32001, "Session not found");
        return;
    } else if (!mb_tsmcp_is_initialize(c->body.data ? c->body.data : "", c->body.len)) {
        http_error(c, 400, -32600, "Bad Request: Mcp-Session-Id header is required");
        return;
    } else if ((s = sess_new(net)) == NULL) {
        http_error(c, 503, -32603, "Service Unavailable: cannot create a session");
        return;
    } else {
        memcpy(c->new_sid, s->id, sizeof(c->new_sid));
    }
    c->ch.send = http_send;
    c->ch.broadcast = 0;
    mb_tsmcp_chan_open(net->ts, &c->ch);
    c->chan_open = 1;
    out_reset(c);
    /* A request may wait (sleep) far longer than lws's own timeouts. */
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    switch (
        mb_tsmcp_handle(net->ts, &s->s, &c->ch, c->body.data ? c->body.data : "", c->body.len)) {
    case MB_TSMCP_ACCEPTED:
        out_reset(c);
        http_finish(c, 202);
        break;
    case MB_TSMCP_INVALID:
        c->status = 400;
        break;
    case MB_TSMCP_REQUEST:
        break;
    }
}

static int http_writeable(struct http_conn *c)
{
    struct lws *wsi = c->wsi;
    if (c->finished)
        return 0;
    if (c->out.failed) {
        mb_log_error("out of memory building an HTTP response; closing");
        return -1;
    }
    size_t blen = c->out.len > LWS_PRE ? c->out.len - LWS_PRE : 0;
    if (!c->headers_sent) {
        unsigned char hb[LWS_PRE + 512], *start = hb + LWS_PRE, *p = start;
        unsigned char *end = hb + sizeof(hb) - 1;
        const char *ctype = c->sse ? "text/event-stream" : c->json ? "application/json" : NULL;
        lws_filepos_t clen = c->sse ? LWS_ILLEGAL_HTTP_CONTENT_LEN : (lws_filepos_t)blen;
        if (!c->sse && !c->final)
            return 0; /* a JSON reply is written whole */
        if (lws_add_http_common_headers(wsi, (unsigned)c->status, ctype, clen, &p, end))
            return -1;
        if (c->sse && lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                                  (const unsigned char *)"no-cache", 8, &p, end))
            return -1;
        if (c->new_sid[0] != '\0' &&
            lws_add_http_header_by_name(wsi, (const unsigned char *)"mcp-session-id:",
                                        (const unsigned char *)c->new_sid, SID_LEN, &p, end))
            return -1;
        if (c->allow &&
            lws_add_http_header_by_name(wsi, (const unsigned char *)"allow:",
                                        (const unsigned char *)"POST, DELETE", 12, &p, end))
            return -1;
        if (lws_finalize_write_http_header(wsi, start, &p, end))
            return -1;
        c->headers_sent = 1;
    }
    if (blen != 0) {
        enum lws_write_protocol wp = c->final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP;
        if (lws_write(wsi, (unsigned char *)c->out.data + LWS_PRE, blen, wp) < (int)blen)
            return -1;
        out_reset(c);
    }
    if (!c->final)
        return 0;
    c->finished = 1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
    struct http_conn *c = user;
    struct mb_tsnet *net = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_HTTP: {
        http_cleanup(c);
        c->inited = 1;
        c->net = net;
        c->wsi = wsi;
        out_reset(c);
        const char *uri = NULL;
        int ulen = 0;
        int meth = lws_http_get_uri_and_method(wsi, (char **)&uri, &ulen);
        if (ulen != 4 || memcmp(uri, "/mcp", 4) != 0) {
            http_error(c, 404, -32600, "Not Found: the MCP endpoint is /mcp");
            return 0;
        }
        if (meth == LWSHUMETH_POST) {
            if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0) {
                /* lws would wait for 100 MB of body: answer and close. */
                lws_return_http_status(wsi, 411, NULL);
                return -1;
            }
            return 0; /* handled at LWS_CALLBACK_HTTP_BODY_COMPLETION */
        }
        if (meth == LWSHUMETH_DELETE) {
            char sid[SID_LEN + 8];
            int n = hdr_custom(wsi, "mcp-session-id:", sid, sizeof(sid));
            struct http_session *s = n >= 0 ? sess_find(net, sid) : NULL;
            if (n == -1)
                http_error(c, 400, -32600, "Bad Request: Mcp-Session-Id header is required");
            else if (s == NULL)
                http_error(c, 404, -32001, "Session not found");
            else {
                sess_end(net, s);
                http_finish(c, 200);
            }
            return 0;
        }
        c->allow = 1;
        http_error(c, 405, -32600, "Method Not Allowed: use POST (GET streams are not offered)");
        return 0;
    }
    case LWS_CALLBACK_HTTP_BODY:
        if (!c->inited || c->final || c->too_large)
            return 0;
        if (c->body.len + len > MB_TSNET_MAX_MESSAGE) {
            c->too_large = 1;
            mb_tsbuf_free(&c->body);
            return 0;
        }
        mb_tsbuf_add(&c->body, in, len);
        if (c->body.failed) {
            mb_log_error("out of memory reading an HTTP body; closing");
            return -1;
        }
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (c->inited && !c->final)
            http_post(c);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!c->inited)
            return 0;
        return http_writeable(c);
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        http_cleanup(c);
        return 0;
    default:
        return 0;
    }
}

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

static const struct lws_protocols http_protocols[] = {
    {.name = "http",
     .callback = http_cb,
     .per_session_data_size = sizeof(struct http_conn),
     .rx_buffer_size = 65536},
    {0},
};

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
    if (opts->http_port >= 0 &&
        add_vhost(n, "http", host, opts->http_port, http_protocols, &n->http_port) != 0)
        goto fail;
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
    if (n->ctx != NULL)
        lws_context_destroy(n->ctx); /* closes connections: their channels close */
    while (n->oldest != NULL)
        sess_end(n, n->oldest);
    free(n);
    *np = NULL;
}
