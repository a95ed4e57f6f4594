/*
 * tests/testserver/tshttp.c — see tshttp.h. Streamable HTTP, as the MCP
 * transport spec (2025-06-18, 2025-11-25) says, over a minimal HTTP/1.1
 * server on libev:
 *
 *   - POST /mcp carries one JSON-RPC message, Content-Type application/json
 *     (else 415) and a Content-Length (else 411, and the connection closes:
 *     chunked request bodies are not read).
 *   - initialize without Mcp-Session-Id creates a session, whose id comes back
 *     in the Mcp-Session-Id header; every other message must carry it (400
 *     without, 404 for an unknown or ended one). DELETE /mcp ends it (200).
 *   - MCP-Protocol-Version, when present, must be a version we speak (400).
 *   - A notification or a response is answered 202 with no body; an invalid
 *     message 400 with the JSON-RPC error; a request 200 with its reply as
 *     application/json — or as text/event-stream when the request's Accept
 *     lists text/event-stream and something is sent before the reply
 *     (progress, tools/list_changed). The SSE response has no length and
 *     closes the connection when done.
 *   - GET /mcp (the server-to-client stream) is not offered: 405, which the
 *     spec allows. Other paths: 404.
 *   - A request cancelled (notifications/cancelled, DELETE) before its reply
 *     gets a -32800 error if its response has not started, else its stream
 *     simply ends.
 * Origin is not checked: the server only listens on loopback for tests.
 *
 * Connections: keep-alive unless the client says `Connection: close` or
 * speaks HTTP/1.0. Requests are parsed from a per-connection input buffer
 * one at a time; while one is being answered (a `sleep` can take minutes)
 * the next is left in the buffer, so pipelined requests are answered in
 * order. Responses are appended to an output buffer and written when the
 * socket is writable; past QUEUE_HIGH unwritten bytes, or IN_HIGH unparsed
 * bytes behind a pending request, the connection stops reading, so a client
 * that never reads cannot grow our memory. A malformed request head gets a
 * 400 and the connection closes (the byte stream can no longer be framed).
 */
#include "tests/testserver/tshttp.h"

#include "common/errors.h"
#include "common/log.h"
#include "tests/testserver/tsbuf.h"
#include "tests/testserver/tsmcp.h"
#include "tests/testserver/tsnet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#define QUEUE_HIGH   (8u << 20)
#define IN_HIGH      (1u << 20)
#define READ_CHUNK   (64u << 10)
#define MAX_HEAD     (64u << 10)
#define SESS_BUCKETS 16384
#define SID_LEN      32

struct http_session {
    struct mb_tsmcp_session s;
    char id[SID_LEN + 1];
    struct http_session *hnext;         /* hash bucket */
    struct http_session *older, *newer; /* creation order, for eviction */
};

struct conn;

struct mb_tshttp {
    struct mb_tsmcp *ts;
    struct ev_loop *loop;
    int fd;
    int port;
    ev_io accept_w;
    struct conn *conns;
    struct http_session *buckets[SESS_BUCKETS];
    struct http_session *oldest, *newest;
    size_t nsessions;
};

/* What the parser keeps of one request head. */
struct req {
    int method; /* M_* */
    int is_mcp; /* path is /mcp (query ignored) */
    int keep_alive;
    long long clen; /* -1: no Content-Length */
    int chunked;    /* a Transfer-Encoding header was present */
    int expect_continue;
    int sse_ok; /* Accept lists text/event-stream */
    char ct[128];
    int pv_len; /* -1 absent, -2 too long */
    char pv[64];
    int sid_len; /* -1 absent, -2 too long */
    char sid[SID_LEN + 8];
};

enum { M_OTHER, M_POST, M_DELETE };

struct conn {
    struct mb_tsmcp_chan ch; /* first: send() gets it back */
    struct mb_tshttp *h;
    struct conn *next, **prevp;
    int fd;
    ev_io rw, ww;
    struct mb_tsbuf in; /* unparsed input from in_off */
    size_t in_off;
    struct mb_tsbuf out; /* unwritten output from out_off */
    size_t out_off;
    struct mb_tsbuf reply; /* a JSON reply produced inside handle(), sent after */
    struct req r;          /* the request being answered */
    size_t need;           /* head + body bytes of that request, once known */
    int busy;              /* a request is being answered */
    int chan_open;
    int in_dispatch; /* inside mb_tsmcp_handle() */
    int final;       /* the request's last bytes are in out */
    int sse;         /* its response is an event stream */
    int continued;   /* 100 Continue sent for it */
    int close_after; /* close once out is written */
    int read_eof;
    char new_sid[SID_LEN + 1];
};

/* ------------------------------------------------------------ sessions */

static unsigned sid_hash(const char *id)
{
    unsigned h = 2166136261u;
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return h % SESS_BUCKETS;
}

static struct http_session *sess_find(struct mb_tshttp *h, const char *id)
{
    for (struct http_session *s = h->buckets[sid_hash(id)]; s != NULL; s = s->hnext)
        if (strcmp(s->id, id) == 0)
            return s;
    return NULL;
}

static void sess_end(struct mb_tshttp *h, struct http_session *s)
{
    struct http_session **pp = &h->buckets[sid_hash(s->id)];
    while (*pp != s)
        pp = &(*pp)->hnext;
    *pp = s->hnext;
    if (s->older != NULL)
        s->older->newer = s->newer;
    else
        h->oldest = s->newer;
    if (s->newer != NULL)
        s->newer->older = s->older;
    else
        h->newest = s->older;
    h->nsessions--;
    mb_tsmcp_session_close(h->ts, &s->s);
    free(s);
}

static struct http_session *sess_new(struct mb_tshttp *h)
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
    if (h->nsessions >= MB_TSNET_MAX_SESSIONS)
        sess_end(h, h->oldest);
    mb_tsmcp_session_open(&s->s);
    unsigned b = sid_hash(s->id);
    s->hnext = h->buckets[b];
    h->buckets[b] = s;
    s->older = h->newest;
    if (h->newest != NULL)
        h->newest->newer = s;
    else
        h->oldest = s;
    h->newest = s;
    h->nsessions++;
    return s;
}

/* ------------------------------------------------------------ output */

static const char *reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 411:
        return "Length Required";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    default:
        return "Service Unavailable";
    }
}

static size_t out_pending(const struct conn *c)
{
    return c->out.len - c->out_off;
}

static void update_watchers(struct conn *c)
{
    struct ev_loop *loop = c->h->loop;
    int want_read = !c->read_eof && !(c->close_after && c->final) && out_pending(c) < QUEUE_HIGH &&
                    (!c->busy || c->in.len - c->in_off < IN_HIGH);
    if (want_read && !ev_is_active(&c->rw))
        ev_io_start(loop, &c->rw);
    else if (!want_read && ev_is_active(&c->rw))
        ev_io_stop(loop, &c->rw);
    if (out_pending(c) != 0 && !ev_is_active(&c->ww))
        ev_io_start(loop, &c->ww);
    else if (out_pending(c) == 0 && ev_is_active(&c->ww))
        ev_io_stop(loop, &c->ww);
}

/* Status line and headers; clen < 0 means no Content-Length (an event
 * stream, ended by closing the connection). */
static void put_head(struct conn *c, int status, const char *ctype, long long clen)
{
    struct mb_tsbuf *o = &c->out;
    if (c->out_off != 0 && c->out_off >= o->len / 2) { /* compact */
        mb_tsbuf_consume(o, c->out_off);
        c->out_off = 0;
    }
    mb_tsbuf_addf(o, "HTTP/1.1 %d %s\r\n", status, reason(status));
    if (ctype != NULL)
        mb_tsbuf_addf(o, "Content-Type: %s\r\n", ctype);
    if (clen >= 0)
        mb_tsbuf_addf(o, "Content-Length: %lld\r\n", clen);
    else
        mb_tsbuf_adds(o, "Cache-Control: no-cache\r\n");
    if (c->new_sid[0] != '\0')
        mb_tsbuf_addf(o, "Mcp-Session-Id: %s\r\n", c->new_sid);
    if (status == 405)
        mb_tsbuf_adds(o, "Allow: POST, DELETE\r\n");
    if (!c->r.keep_alive || clen < 0)
        c->close_after = 1;
    if (c->close_after)
        mb_tsbuf_adds(o, "Connection: close\r\n");
    mb_tsbuf_adds(o, "\r\n");
}

static void put_response(struct conn *c, int status, const char *body, size_t len)
{
    put_head(c, status, len != 0 ? "application/json" : NULL, (long long)len);
    if (len != 0)
        mb_tsbuf_add(&c->out, body, len);
    c->final = 1;
}

/* A transport-level error: JSON-RPC error body with a null id. */
static void put_error(struct conn *c, int status, int code, const char *msg)
{
    struct mb_tsbuf b;
    mb_tsbuf_init(&b);
    mb_tsbuf_addf(&b, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":%d,\"message\":", code);
    mb_tsbuf_add_jstr(&b, msg, strlen(msg));
    mb_tsbuf_adds(&b, "}}");
    put_response(c, status, b.data, b.len);
    mb_tsbuf_free(&b);
}

static void http_send(struct mb_tsmcp_chan *ch, enum mb_tsmcp_kind kind, const char *msg,
                      size_t len)
{
    struct conn *c = (struct conn *)ch;
    if (c->final)
        return;
    if (kind == MB_TSMCP_NOTIFY && !c->sse) {
        if (!c->r.sse_ok)
            return; /* nowhere to put it: no GET stream, JSON-only client */
        put_head(c, 200, "text/event-stream", -1);
        c->sse = 1;
    }
    if (c->sse) {
        if (kind != MB_TSMCP_ABORT) {
            mb_tsbuf_add(&c->out, "event: message\ndata: ", 21);
            mb_tsbuf_add(&c->out, msg, len);
            mb_tsbuf_add(&c->out, "\n\n", 2);
        }
        if (kind != MB_TSMCP_NOTIFY)
            c->final = 1;
    } else if (c->in_dispatch) {
        /* The status (200, or 400 for an invalid message) is known when
         * handle() returns. */
        mb_tsbuf_add(&c->reply, msg, len);
        return;
    } else {
        put_response(c, 200, msg, len);
    }
    /* Called from a timer: write when the socket allows. */
    if (!c->in_dispatch)
        update_watchers(c);
}

/* ------------------------------------------------------------ requests */

static void conn_close(struct conn *c);
static void process(struct conn *c);

static void finish_request(struct conn *c)
{
    if (c->chan_open)
        mb_tsmcp_chan_close(c->h->ts, &c->ch);
    c->chan_open = 0;
    c->in_off += c->need;
    if (c->in_off == c->in.len) {
        c->in.len = 0;
        c->in_off = 0;
    } else if (c->in_off >= c->in.len / 2) {
        mb_tsbuf_consume(&c->in, c->in_off);
        c->in_off = 0;
    }
    c->need = 0;
    c->busy = c->final = c->sse = c->continued = 0;
    c->new_sid[0] = '\0';
    mb_tsbuf_reset(&c->reply);
}

static void handle_post(struct conn *c, const char *body, size_t blen)
{
    struct mb_tshttp *h = c->h;
    const struct req *r = &c->r;
    const char *ct = r->ct;
    size_t ctn = strlen(ct);
    if (ctn < 16 || strncasecmp(ct, "application/json", 16) != 0 ||
        (ct[16] != '\0' && ct[16] != ';' && ct[16] != ' ')) {
        put_error(c, 415, -32600, "Unsupported Media Type: Content-Type must be application/json");
        return;
    }
    if (r->pv_len == -2 ||
        (r->pv_len >= 0 && !mb_tsmcp_version_supported(r->pv, (size_t)r->pv_len))) {
        put_error(c, 400, -32600, "Bad Request: unsupported MCP-Protocol-Version");
        return;
    }
    struct http_session *s;
    if (r->sid_len >= 0) {
        if ((s = sess_find(h, r->sid)) == NULL) {
            put_error(c, 404, -32001, "Session not found");
            return;
        }
    } else if (r->sid_len == -2) {
        put_error(c, 404, -32001, "Session not found");
        return;
    } else if (!mb_tsmcp_is_initialize(body, blen)) {
        put_error(c, 400, -32600, "Bad Request: Mcp-Session-Id header is required");
        return;
    } else if ((s = sess_new(h)) == NULL) {
        put_error(c, 503, -32603, "Service Unavailable: cannot create a session");
        return;
    } else {
        memcpy(c->new_sid, s->id, sizeof(c->new_sid));
    }
    c->ch.send = http_send;
    c->ch.broadcast = 0;
    mb_tsmcp_chan_open(h->ts, &c->ch);
    c->chan_open = 1;
    c->in_dispatch = 1;
    enum mb_tsmcp_result res = mb_tsmcp_handle(h->ts, &s->s, &c->ch, body, blen);
    c->in_dispatch = 0;
    if (c->final)
        return; /* an event stream that already ended */
    if (res == MB_TSMCP_ACCEPTED)
        put_response(c, 202, NULL, 0);
    else if (c->reply.len != 0 || res == MB_TSMCP_INVALID)
        put_response(c, res == MB_TSMCP_INVALID ? 400 : 200, c->reply.data, c->reply.len);
    /* else: answered later, from a timer */
}

static void handle_delete(struct conn *c)
{
    struct http_session *s = c->r.sid_len >= 0 ? sess_find(c->h, c->r.sid) : NULL;
    if (c->r.sid_len == -1)
        put_error(c, 400, -32600, "Bad Request: Mcp-Session-Id header is required");
    else if (s == NULL)
        put_error(c, 404, -32001, "Session not found");
    else {
        sess_end(c->h, s);
        put_response(c, 200, NULL, 0);
    }
}

/* Copies a header value into dst (cap bytes with the NUL); returns its
 * length, or -2 when it does not fit. */
static int copy_value(char *dst, size_t cap, const char *v, size_t n)
{
    if (n >= cap)
        return -2;
    memcpy(dst, v, n);
    dst[n] = '\0';
    return (int)n;
}

static int name_is(const char *name, size_t n, const char *want)
{
    return n == strlen(want) && strncasecmp(name, want, n) == 0;
}

/* Parses the head p[0..hlen) (it ends with an empty line). Returns 0, or -1
 * when it is not HTTP/1.x. */
static int parse_head(struct req *r, const char *p, size_t hlen)
{
    const char *end = p + hlen;
    const char *eol = memchr(p, '\n', hlen);
    memset(r, 0, sizeof(*r));
    r->clen = -1;
    r->pv_len = r->sid_len = -1;
    /* request line: METHOD SP target SP HTTP/1.x */
    const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
    if (sp1 == NULL)
        return -1;
    const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
    if (sp2 == NULL || eol - sp2 < 9 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0)
        return -1;
    size_t mlen = (size_t)(sp1 - p);
    r->method = mlen == 4 && memcmp(p, "POST", 4) == 0     ? M_POST
                : mlen == 6 && memcmp(p, "DELETE", 6) == 0 ? M_DELETE
                                                           : M_OTHER;
    size_t tlen = strcspn(sp1 + 1, "? ");
    r->is_mcp = tlen == 4 && memcmp(sp1 + 1, "/mcp", 4) == 0;
    r->keep_alive = sp2[8] == '1';
    for (p = eol + 1; p < end; p = eol + 1) {
        eol = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)(eol - p);
        if (n > 0 && p[n - 1] == '\r')
            n--;
        if (n == 0)
            break;
        const char *colon = memchr(p, ':', n);
        if (colon == NULL || colon == p)
            return -1;
        size_t nl = (size_t)(colon - p);
        const char *v = colon + 1, *ve = p + n;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t vl = (size_t)(ve - v);
        if (name_is(p, nl, "content-length")) {
            char num[24];
            char *e;
            if (r->clen != -1 || copy_value(num, sizeof(num), v, vl) <= 0 ||
                strspn(num, "0123456789") != vl)
                return -1;
            errno = 0;
            r->clen = strtoll(num, &e, 10);
            if (errno != 0)
                return -1;
        } else if (name_is(p, nl, "transfer-encoding")) {
            r->chunked = 1;
        } else if (name_is(p, nl, "content-type")) {
            if (copy_value(r->ct, sizeof(r->ct), v, vl) < 0)
                r->ct[0] = '\0';
        } else if (name_is(p, nl, "accept")) {
            if (memmem(v, vl, "text/event-stream", 17) != NULL)
                r->sse_ok = 1;
        } else if (name_is(p, nl, "mcp-session-id")) {
            r->sid_len = copy_value(r->sid, sizeof(r->sid), v, vl);
        } else if (name_is(p, nl, "mcp-protocol-version")) {
            r->pv_len = copy_value(r->pv, sizeof(r->pv), v, vl);
        } else if (name_is(p, nl, "connection")) {
            if (memmem(v, vl, "close", 5) != NULL)
                r->keep_alive = 0;
            else if (strncasecmp(v, "keep-alive", 10) == 0)
                r->keep_alive = 1;
        } else if (name_is(p, nl, "expect")) {
            r->expect_continue = vl == 12 && strncasecmp(v, "100-continue", 12) == 0;
        }
    }
    return 0;
}

/* Answers as many complete requests as the input holds, in order, stopping
 * at one that is answered later. */
static void process(struct conn *c)
{
    while (!c->busy && !(c->close_after && c->final) && out_pending(c) < QUEUE_HIGH) {
        size_t have = c->in.len - c->in_off;
        if (have == 0)
            break;
        const char *p = c->in.data + c->in_off;
        const char *eoh = memmem(p, have, "\r\n\r\n", 4);
        if (eoh == NULL) {
            if (have > MAX_HEAD) {
                c->r.keep_alive = 0;
                put_error(c, 400, -32600, "Bad Request: request head over 64 KiB");
            }
            break;
        }
        size_t hlen = (size_t)(eoh + 4 - p);
        if (parse_head(&c->r, p, hlen) != 0) {
            c->r.keep_alive = 0;
            put_error(c, 400, -32600, "Bad Request: malformed HTTP/1.1 request head");
            break;
        }
        if (c->r.chunked || (c->r.method == M_POST && c->r.clen < 0)) {
            c->r.keep_alive = 0; /* the body cannot be framed: stop here */
            put_error(c, 411, -32600, "Length Required: send the body with a Content-Length");
            break;
        }
        size_t clen = c->r.clen > 0 ? (size_t)c->r.clen : 0;
        if (c->r.clen > (long long)MB_TSNET_MAX_MESSAGE) {
            c->r.keep_alive = 0;
            put_error(c, 413, -32600, "Payload Too Large: message over 64 MiB");
            break;
        }
        if (have < hlen + clen) {
            if (c->r.expect_continue && !c->continued) {
                mb_tsbuf_adds(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
                c->continued = 1;
            }
            break; /* the body is on its way */
        }
        c->need = hlen + clen;
        c->busy = 1;
        if (!c->r.is_mcp)
            put_error(c, 404, -32600, "Not Found: the MCP endpoint is /mcp");
        else if (c->r.method == M_POST)
            handle_post(c, p + hlen, clen);
        else if (c->r.method == M_DELETE)
            handle_delete(c);
        else
            put_error(c, 405, -32600, "Method Not Allowed: use POST (GET streams are not offered)");
        if (c->final && !c->close_after)
            finish_request(c);
    }
    update_watchers(c);
}

/* ------------------------------------------------------------ sockets */

static void conn_close(struct conn *c)
{
    struct ev_loop *loop = c->h->loop;
    ev_io_stop(loop, &c->rw);
    ev_io_stop(loop, &c->ww);
    close(c->fd);
    if (c->chan_open)
        mb_tsmcp_chan_close(c->h->ts, &c->ch);
    *c->prevp = c->next;
    if (c->next != NULL)
        c->next->prevp = c->prevp;
    mb_tsbuf_free(&c->in);
    mb_tsbuf_free(&c->out);
    mb_tsbuf_free(&c->reply);
    free(c);
}

/* Writes what is queued; returns -1 when the connection was closed. */
static int flush(struct conn *c)
{
    while (out_pending(c) != 0) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, out_pending(c), MSG_NOSIGNAL);
        if (n == -1) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR)
                continue;
            mb_log_debug("HTTP connection: send: %s", strerror(errno));
            conn_close(c);
            return -1;
        }
        c->out_off += (size_t)n;
    }
    if (c->out_off == c->out.len)
        c->out.len = c->out_off = 0;
    if (c->out.failed) {
        mb_log_error("out of memory building an HTTP response; closing");
        conn_close(c);
        return -1;
    }
    return 0;
}

/* After a write, a request answered from a timer may be complete: move on
 * to the next pipelined one, or close when told to. */
static void after_write(struct conn *c)
{
    if (c->busy && c->final && !c->close_after)
        finish_request(c);
    if (!c->busy && c->in.len > c->in_off) {
        process(c);
        if (flush(c) != 0)
            return;
    }
    if (out_pending(c) == 0 && ((c->close_after && c->final) || (c->read_eof && !c->busy))) {
        conn_close(c);
        return;
    }
    update_watchers(c);
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = w->data;
    if (flush(c) != 0)
        return;
    after_write(c);
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = w->data;
    if (mb_tsbuf_reserve(&c->in, READ_CHUNK) != 0) {
        mb_log_error("out of memory reading an HTTP request; closing");
        conn_close(c);
        return;
    }
    ssize_t n = recv(c->fd, c->in.data + c->in.len, READ_CHUNK, 0);
    if (n == -1) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        conn_close(c);
        return;
    }
    if (n == 0)
        c->read_eof = 1;
    c->in.len += (size_t)n;
    process(c);
    if (flush(c) != 0)
        return;
    after_write(c);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    struct mb_tshttp *h = w->data;
    for (int i = 0; i < 64; i++) {
        int fd = accept4(h->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                mb_log_warn("accept on the HTTP port: %s", strerror(errno));
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct conn *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            mb_log_error("out of memory accepting an HTTP connection");
            close(fd);
            continue;
        }
        c->h = h;
        c->fd = fd;
        ev_io_init(&c->rw, on_read, fd, EV_READ);
        ev_io_init(&c->ww, on_write, fd, EV_WRITE);
        c->rw.data = c->ww.data = c;
        c->next = h->conns;
        if (h->conns != NULL)
            h->conns->prevp = &c->next;
        c->prevp = &h->conns;
        h->conns = c;
        ev_io_start(loop, &c->rw);
    }
}

int mb_tshttp_start(struct mb_tshttp **hp, struct mb_tsmcp *ts, struct ev_loop *loop,
                    const char *host, int port)
{
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_PASSIVE, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    char ps[16];
    int one = 1;
    struct mb_tshttp *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return -ENOMEM;
    h->ts = ts;
    h->loop = loop;
    h->fd = -1;
    snprintf(ps, sizeof(ps), "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &ai);
    if (rc != 0) {
        mb_log_error("HTTP listener on %s: %s", host, gai_strerror(rc));
        goto fail;
    }
    h->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (h->fd == -1) {
        mb_log_error("HTTP listener: socket: %s", strerror(errno));
        goto fail;
    }
    setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(h->fd, ai->ai_addr, ai->ai_addrlen) == -1 || listen(h->fd, 4096) == -1) {
        mb_log_error("cannot listen for http on %s port %d: %s", host, port, strerror(errno));
        goto fail;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(h->fd, (struct sockaddr *)&ss, &sl) == -1) {
        mb_log_error("HTTP listener: getsockname: %s", strerror(errno));
        goto fail;
    }
    h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    freeaddrinfo(ai);
    ev_io_init(&h->accept_w, on_accept, h->fd, EV_READ);
    h->accept_w.data = h;
    ev_io_start(loop, &h->accept_w);
    *hp = h;
    return MB_OK;
fail:
    if (ai != NULL)
        freeaddrinfo(ai);
    mb_tshttp_free(&h);
    return MB_ERR;
}

int mb_tshttp_port(const struct mb_tshttp *h)
{
    return h->port;
}

void mb_tshttp_free(struct mb_tshttp **hp)
{
    struct mb_tshttp *h = *hp;
    if (h == NULL)
        return;
    while (h->conns != NULL)
        conn_close(h->conns);
    while (h->oldest != NULL)
        sess_end(h, h->oldest);
    if (h->fd != -1) {
        ev_io_stop(h->loop, &h->accept_w);
        close(h->fd);
    }
    free(h);
    *hp = NULL;
}
