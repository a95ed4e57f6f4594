/*
 * worker/upstream_http.c — the Streamable HTTP transport (worker/upstream.h):
 * each message the core sends is one POST, on a pooled keep-alive
 * connection, to one endpoint of the backend.
 *
 * Connections. lws raw client connections on the worker's lws context (one
 * client vhost per upstream), speaking HTTP/1.1 written here: lws's own HTTP
 * client either opens a connection per request or, with LCCSCF_PIPELINE,
 * queues every request behind one connection (DESIGN §9). Owning the framing
 * makes the pool exact: per endpoint at most connection_pool.max_conns_per_host
 * connections, each carrying one exchange at a time (no pipelining), idle
 * ones reused most-recent-first and closed after idle_conn_timeout (or
 * keep_alive_timeout, the smaller), at most max_idle_conns_per_host idle per
 * endpoint and max_idle_conns idle in the whole worker (worker/pool.c keeps
 * those counts). A message that finds no free connection and no room for a
 * new one waits in a FIFO queue (at most QUEUE_MAX; beyond that it fails at
 * once) until a connection frees. Connections get TCP keep-alive probes every
 * connection_pool.keep_alive. Addresses were resolved at config load.
 *
 * Endpoints. Several per backend; each message goes to the next one by
 * smooth weighted round robin over the reachable endpoints that can take it
 * now (routing.strategy and health checks are issue 3's routing work, not
 * built here: every strategy behaves as weighted round robin).
 *
 * UP / DOWN. start() opens one connection to every endpoint. The upstream
 * is UP as soon as one connection succeeds (that connection stays in the
 * pool and carries the core's initialize). An endpoint whose connection
 * attempt fails is unreachable until a probe succeeds (probes: 100 ms,
 * doubling up to 5 s, back to 100 ms on success); when every endpoint is
 * unreachable the upstream reports DOWN (why = the last connect error), drops
 * what it holds (the core fails what it sent) and reports UP again after the
 * next successful probe. A connection closed by the peer while idle, an HTTP
 * error or a broken response do not change the state: the message gets
 * on_send_failed instead.
 *
 * Sessions (per endpoint: each endpoint is its own server). The core's
 * initialize goes to one endpoint; its Mcp-Session-Id and negotiated
 * protocolVersion are kept for that endpoint, and the initialize and the
 * notifications/initialized that follows are saved. Every later message to
 * that endpoint carries Mcp-Session-Id and MCP-Protocol-Version. Another
 * endpoint, the first time it is picked, and any endpoint that answers 404
 * to a message carrying its session id, gets the saved pair replayed (their
 * answers are swallowed: the core already has its handshake) while the
 * messages for it wait; the message that met the 404 is then sent once more,
 * and a second 404 fails it. Responses the core sends to server-to-client
 * requests go back to the endpoint that asked.
 *
 * Answers. application/json: the body is one message for on_message.
 * text/event-stream: every event's data goes to on_message as it arrives
 * (progress before the result). 202 (or an empty 2xx) is the answer to a
 * notification or a response. A request that gets no message back, an HTTP
 * status other than 2xx, a body that is neither, a connection closed before
 * the end of the answer, or no response headers within
 * connection_pool.response_header_timeout (raised to the backend's
 * request_timeout for requests: a JSON answer's headers come only with the
 * result) are reported with on_send_failed. A reused keep-alive connection
 * that closes before any answer byte (the server timed it out while idle) is
 * retried once on a fresh connection.
 *
 * Never sent upstream: anything from the client's HTTP request. Sent: the
 * config's backends[].headers on every request.
 *
 * close(): the opaque pointers of every lws connection are cleared (their
 * late callbacks find nothing and close them), the connections are told to
 * close, and everything is freed. The vhost goes with the lws context.
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
#include "worker/jsonscan.h"
#include "worker/metrics_backends.h"
#include "worker/pool.h"
#include "worker/upstream.h"
#include "worker/upstream_common.h"
#include "worker/upstream_http_msg.h"
#include "worker/upstream_http_resp.h"
#include "worker/worker.h"

#define PROTOCOL_NAME "mb-upstream-http"
#define MAX_MSG       (64u * 1024 * 1024)
#define QUEUE_MAX     4096
#define S2C_SLOTS     64
#define ID_MAX        64

enum xkind { X_CORE, X_REPLAY_INIT, X_REPLAY_INITIALIZED };
enum sess_state { SESS_NONE, SESS_INITING, SESS_READY };

struct http_up;
struct http_ep;

/* One message and its exchange. */
struct xchg {
    struct xchg *next;
    enum xkind kind;
    bool is_init;        /* the core's initialize */
    bool is_initialized; /* the core's notifications/initialized */
    bool is_request;     /* has a method and an id: needs a message back */
    bool retried_404;
    bool retried_stale;
    bool not_jsonrpc; /* failed: the answer was no JSON-RPC message (-32011) */
    int ep;           /* pinned endpoint, or -1 */
    size_t delivered;
    size_t len;
    char msg[];
};

struct xqueue {
    struct xchg *head, *tail;
    size_t n;
};

struct hconn {
    struct mb_pool_conn pc; /* first: the pool hands this back */
    struct http_up *h;
    struct http_ep *ep;
    struct lws *wsi;
    struct xchg *x; /* the exchange on it, or NULL (probe, idle) */
    struct mb_http_resp resp;
    struct mb_buf out;
    bool connected;
    bool got_bytes;
    bool sent_session;
    bool in_connect; /* inside lws_client_connect_via_info */
    bool failed_sync;
    bool write_failed; /* the request could not be written: close */
    bool not_jsonrpc;  /* why says the answer was no JSON-RPC message */
    bool rearm;        /* headers came: the timer runs for the rest */
    uint64_t sess_gen;
    mb_msec_t timeout_ms; /* of the running timer */
    char why[96];
    ev_timer timer;
    struct hconn *prev, *next; /* every connection of the upstream */
};

struct http_ep {
    struct http_up *h;
    size_t index;
    const struct mb_conf_endpoint *conf;
    struct mb_pool_host host;
    char hosthdr[300];
    bool ok;      /* the last connection attempt succeeded */
    bool probing; /* a probe is connecting */
    double backoff;
    ev_timer retry_t;
    struct mb_buf head; /* the request line and the headers every POST carries */
    enum sess_state sess;
    bool has_session;
    char session_id[MB_HTTP_RESP_SESSION_MAX];
    char version[40];
    uint64_t sess_gen;
    struct xqueue parked; /* waiting for this endpoint's session */
};

struct s2c_slot {
    int ep;
    uint8_t len;
    char id[ID_MAX];
};

struct http_up {
    struct mb_upstream *u;
    struct lws_vhost *vh;
    struct http_ep *eps;
    size_t neps;
    struct mb_pool_host **hosts;
    bool *usable;
    bool up;
    bool down_reported; /* DOWN was reported for this outage */
    bool started;
    struct xqueue q;      /* waiting for a connection */
    struct xqueue failed; /* on_send_failed to report from the kick */
    char **fail_why;      /* parallel to failed, by order */
    ev_timer kick;
    ev_timer sweep;
    struct hconn *all;
    char *saved_init;
    size_t saved_init_len;
    char *saved_inited;
    size_t saved_inited_len;
    int core_ep;
    mb_msec_t header_timeout_ms;
    mb_msec_t request_timeout_ms;
    struct s2c_slot s2c[S2C_SLOTS];
    size_t s2c_next;
    char down_why[128];
};

/* The worker's pool limits and idle count: max_idle_conns spans every
 * endpoint of every backend of this worker. */
static struct mb_pool pool;
static bool pool_ready;

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len);

static const struct lws_protocols protocols[] = {
    {PROTOCOL_NAME, callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---------------------------------------------------------------- queues */
static void q_push(struct xqueue *q, struct xchg *x)
{
    x->next = NULL;
    if (q->tail)
        q->tail->next = x;
    else
        q->head = x;
    q->tail = x;
    q->n++;
}

static void q_push_front(struct xqueue *q, struct xchg *x)
{
    x->next = q->head;
    q->head = x;
    if (q->tail == NULL)
        q->tail = x;
    q->n++;
}

static struct xchg *q_pop(struct xqueue *q)
{
    struct xchg *x = q->head;
    if (x == NULL)
        return NULL;
    q->head = x->next;
    if (q->head == NULL)
        q->tail = NULL;
    q->n--;
    x->next = NULL;
    return x;
}

/* Moves all of from to the front of to, keeping their order. */
static void q_prepend_all(struct xqueue *to, struct xqueue *from)
{
    if (from->head == NULL)
        return;
    from->tail->next = to->head;
    if (to->tail == NULL)
        to->tail = from->tail;
    to->head = from->head;
    to->n += from->n;
    from->head = from->tail = NULL;
    from->n = 0;
}

static void q_free(struct xqueue *q)
{
    struct xchg *x;
    while ((x = q_pop(q)) != NULL)
        free(x);
}

static struct xchg *xchg_new(const char *msg, size_t len, enum xkind kind, int ep)
{
    /* malloc, not calloc: glibc's calloc skips its per-thread cache. */
    struct xchg *x = malloc(sizeof(*x) + len + 1);
    if (x == NULL)
        return NULL;
    memset(x, 0, sizeof(*x));
    x->kind = kind;
    x->ep = ep;
    x->len = len;
    memcpy(x->msg, msg, len);
    x->msg[len] = '\0';
    return x;
}

/* ---------------------------------------------------------------- events */
static void kick(struct http_up *h)
{
    if (!ev_is_active(&h->kick)) {
        ev_timer_set(&h->kick, 0., 0.);
        ev_timer_start(h->u->loop, &h->kick);
    }
}

/* Reports x as failed from the next loop iteration (never from inside a
 * call the core made). */
static void fail_later(struct http_up *h, struct xchg *x, const char *why)
{
    if (x->kind != X_CORE) {
        free(x);
        return;
    }
    char **w = realloc(h->fail_why, (h->failed.n + 1) * sizeof(*w));
    char *copy = strdup(why);
    if (w == NULL || copy == NULL) {
        free(copy);
        if (w)
            h->fail_why = w;
        mb_log_error("backend %s: out of memory reporting a failed message", h->u->bconf->name);
        free(x);
        return;
    }
    h->fail_why = w;
    h->fail_why[h->failed.n] = copy;
    q_push(&h->failed, x);
    kick(h);
}

static void drop_failures(struct http_up *h)
{
    struct xchg *x;
    size_t i = 0;
    while ((x = q_pop(&h->failed)) != NULL) {
        free(h->fail_why[i++]);
        free(x);
    }
    free(h->fail_why);
    h->fail_why = NULL;
}

static void report_failures(struct http_up *h)
{
    struct xqueue f = h->failed;
    char **why = h->fail_why;
    size_t i = 0;
    struct xchg *x;

    h->failed = (struct xqueue){0};
    h->fail_why = NULL;
    while ((x = q_pop(&f)) != NULL) {
        mb_log_warn("backend %s: message failed: %s", h->u->bconf->name, why[i]);
        if (h->u->ev->on_send_failed)
            h->u->ev->on_send_failed(h->u->owner, x->msg, x->len, why[i], x->not_jsonrpc);
        free(why[i]);
        free(x);
        i++;
    }
    free(why);
}

/* ---------------------------------------------------------------- connections */
static void conn_free(struct hconn *c)
{
    struct http_up *h = c->h;
    ev_timer_stop(h->u->loop, &c->timer);
    mb_metrics_upstream_conn(h->u, c->pc.host != NULL ? (int)c->pc.state : -1, -1);
    mb_pool_remove(&c->pc);
    if (c->prev)
        c->prev->next = c->next;
    else
        h->all = c->next;
    if (c->next)
        c->next->prev = c->prev;
    mb_http_resp_free(&c->resp);
    mb_buf_free(&c->out);
    free(c->x);
    free(c);
}

/* Closes c. own_cb: we are inside c's own lws callback, which then returns
 * -1 to let lws close it; otherwise the wsi is closed now, its callbacks
 * finding no opaque pointer. */
static void conn_close(struct hconn *c, bool own_cb)
{
    struct lws *wsi = c->wsi;
    if (wsi != NULL) {
        lws_set_opaque_user_data(wsi, NULL);
        c->wsi = NULL;
        if (!own_cb)
            lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
    }
    conn_free(c);
}

static void arm_conn_timer(struct hconn *c, mb_msec_t ms)
{
    struct ev_loop *loop = c->h->u->loop;
    ev_timer_stop(loop, &c->timer);
    c->timeout_ms = ms;
    if (ms <= 0)
        return;
    ev_timer_set(&c->timer, (double)ms / 1000., 0.);
    ev_timer_start(loop, &c->timer);
}

static void set_keepalive(struct hconn *c)
{
    mb_msec_t ka = c->h->u->conf->connection_pool.keep_alive;
    int fd = (int)lws_get_socket_fd(c->wsi), on = 1;
    if (fd < 0 || ka <= 0)
        return;
    int secs = (int)((ka + 999) / 1000);
    if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) == -1 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &secs, sizeof(secs)) == -1 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &secs, sizeof(secs)) == -1)
        mb_log_debug("backend %s: TCP keep-alive: %s", c->h->u->bconf->name, strerror(errno));
}

static void dispatch(struct http_up *h);
static void on_conn_timer(struct ev_loop *loop, ev_timer *t, int revents);
static void ep_failed(struct http_ep *ep, const char *why);
static void start_exchange(struct hconn *c, struct xchg *x);

/* Opens a connection to ep carrying x (NULL: a probe). Returns 0, or MB_ERR
 * when it failed at once (x has been requeued or dropped, ep marked). */
static int conn_open(struct http_ep *ep, struct xchg *x)
{
    struct http_up *h = ep->h;
    struct hconn *c = calloc(1, sizeof(*c));
    struct lws_client_connect_info i;

    if (c == NULL) {
        if (x)
            fail_later(h, x, "out of memory");
        return MB_ERR;
    }
    c->h = h;
    c->ep = ep;
    c->x = x;
    mb_http_resp_init(&c->resp, MAX_MSG);
    ev_timer_init(&c->timer, on_conn_timer, 0., 0.);
    c->timer.data = c;
    mb_pool_add(&ep->host, &c->pc);
    mb_metrics_upstream_conn(h->u, -1, MB_POOL_CONNECTING);
    c->next = h->all;
    if (h->all)
        h->all->prev = c;
    h->all = c;
    if (x == NULL)
        ep->probing = true;

    memset(&i, 0, sizeof(i));
    i.context = h->u->w->ctx;
    i.vhost = h->vh;
    i.address = ep->conf->address;
    i.port = ep->conf->port;
    i.host = ep->hosthdr;
    i.origin = ep->hosthdr;
    i.path = ep->conf->path;
    i.method = "RAW";
    i.local_protocol_name = PROTOCOL_NAME;
    i.opaque_user_data = c;
    i.pwsi = &c->wsi;
    c->in_connect = true;
    struct lws *wsi = lws_client_connect_via_info(&i);
    c->in_connect = false;
    if (wsi == NULL || c->failed_sync) {
        char why[128];
        snprintf(why, sizeof(why), "connect to %s:%u: %s", ep->conf->address, ep->conf->port,
                 c->why[0] ? c->why : "failed");
        if (wsi != NULL)
            lws_set_opaque_user_data(wsi, NULL);
        c->wsi = NULL;
        struct xchg *cx = c->x;
        c->x = NULL;
        if (x == NULL)
            ep->probing = false;
        conn_free(c);
        if (cx)
            q_push_front(&h->q, cx);
        ep_failed(ep, why);
        return MB_ERR;
    }
    c->wsi = wsi;
    arm_conn_timer(c, h->header_timeout_ms);
    /* lws armed its connect timer outside its service: let it see it. */
    h->u->w->kick_lws = true;
    mb_worker_kick_lws(h->u->w);
    return 0;
}

/* ---------------------------------------------------------------- endpoints */
static void go_down(struct http_up *h, const char *why)
{
    if (!h->up && h->down_reported)
        return;
    h->up = false;
    h->down_reported = true;
    snprintf(h->down_why, sizeof(h->down_why), "%s", why);
    /* What was sent is lost: the core fails it itself on DOWN. */
    q_free(&h->q);
    for (size_t i = 0; i < h->neps; i++) {
        q_free(&h->eps[i].parked);
        h->eps[i].sess = SESS_NONE;
        h->eps[i].has_session = false;
        h->eps[i].version[0] = '\0';
        h->eps[i].sess_gen++;
    }
    struct hconn *c = h->all, *next;
    for (; c; c = next) {
        next = c->next;
        if (c->x != NULL)
            conn_close(c, false);
    }
    drop_failures(h);
    h->core_ep = -1;
    mb_log_warn("backend %s: down: %s", h->u->bconf->name, why);
    h->u->ev->on_state(h->u->owner, MB_UPSTREAM_DOWN, why);
}

static void ep_schedule_probe(struct http_ep *ep);

/* Every endpoint is treated as unreachable until a probe succeeds. */
static void restart(struct http_up *h, const char *why)
{
    go_down(h, why);
    for (size_t i = 0; i < h->neps; i++) {
        struct http_ep *ep = &h->eps[i];
        ep->ok = false;
        if (!ep->probing && !ev_is_active(&ep->retry_t))
            ep_schedule_probe(ep);
    }
}

static void ep_schedule_probe(struct http_ep *ep)
{
    struct ev_loop *loop = ep->h->u->loop;
    mb_upstream_retry_arm(loop, &ep->retry_t, &ep->backoff);
}

static void ep_failed(struct http_ep *ep, const char *why)
{
    struct http_up *h = ep->h;
    bool was_ok = ep->ok;
    ep->ok = false;
    if (was_ok || !ev_is_active(&ep->retry_t)) {
        if (was_ok)
            mb_log_warn("backend %s: endpoint %s unreachable: %s", h->u->bconf->name, ep->conf->url,
                        why);
        if (!ep->probing)
            ep_schedule_probe(ep);
    }
    bool any = false;
    for (size_t i = 0; i < h->neps; i++)
        any |= h->eps[i].ok;
    if (!any)
        go_down(h, why);
    else
        kick(h);
}

static void ep_reachable(struct http_ep *ep)
{
    struct http_up *h = ep->h;
    ep->backoff = MB_UPSTREAM_BACKOFF_MIN_S;
    ev_timer_stop(h->u->loop, &ep->retry_t);
    if (!ep->ok && h->up)
        mb_log_info("backend %s: endpoint %s reachable again", h->u->bconf->name, ep->conf->url);
    ep->ok = true;
    if (!h->up) {
        h->up = true;
        h->down_reported = false;
        mb_log_info("backend %s: up (%s)", h->u->bconf->name, ep->conf->url);
        h->u->ev->on_state(h->u->owner, MB_UPSTREAM_UP, NULL);
    }
}

static void on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct http_ep *ep = t->data;
    if (ep->ok || ep->probing)
        return;
    if (!mb_pool_can_open(&ep->host)) {
        ep_schedule_probe(ep);
        return;
    }
    conn_open(ep, NULL);
}

/* ---------------------------------------------------------------- sessions */
static void learn_version(struct http_ep *ep, const char *msg, size_t len)
{
    static const char *const path[] = {"result", "protocolVersion", NULL};
    struct mb_json_raw v;
    if (!mb_json_valid(msg, len) || mb_json_path(msg, len, path, &v) != 0)
        return;
    if (mb_json_raw_plain_string(v, ep->version, sizeof(ep->version)) < 0)
        ep->version[0] = '\0';
    /* Only visible ASCII goes into a header. */
    for (char *p = ep->version; *p; p++)
        if (*p < 0x21 || *p > 0x7e) {
            ep->version[0] = '\0';
            break;
        }
}

/* Starts replaying the saved handshake on ep (its session is gone or was
 * never made). Returns MB_ERR when there is nothing to replay. */
static int start_replay(struct http_ep *ep)
{
    struct http_up *h = ep->h;
    if (ep->sess == SESS_INITING)
        return 0;
    if (h->saved_init == NULL)
        return MB_ERR;
    struct xchg *x = xchg_new(h->saved_init, h->saved_init_len, X_REPLAY_INIT, (int)ep->index);
    if (x == NULL)
        return MB_ERR;
    ep->sess = SESS_INITING;
    ep->has_session = false;
    ep->version[0] = '\0';
    ep->sess_gen++;
    q_push_front(&h->q, x);
    return 0;
}

/* The replay on ep failed: whatever waited for it fails too. */
static void replay_failed(struct http_ep *ep, const char *why)
{
    struct http_up *h = ep->h;
    char msg[200];
    struct xchg *x;
    snprintf(msg, sizeof(msg), "re-initializing the upstream session failed: %s", why);
    ep->sess = SESS_NONE;
    while ((x = q_pop(&ep->parked)) != NULL)
        fail_later(h, x, msg);
}

static void session_ready(struct http_ep *ep)
{
    ep->sess = SESS_READY;
    q_prepend_all(&ep->h->q, &ep->parked);
    kick(ep->h);
}

/* ---------------------------------------------------------------- exchanges */
static int append_header(struct mb_buf *o, const char *name, const char *value)
{
    return mb_buf_append_str(o, name) | mb_buf_append(o, ": ", 2) | mb_buf_append_str(o, value) |
           mb_buf_append(o, "\r\n", 2);
}

/* What is the same in every POST to ep, built once (the header lines were
 * 60% of start_exchange's instructions when appended per request): the
 * request line, Host, the content types, Connection: close without a pool
 * and the config's backends[].headers. The per-request lines follow it. */
static int build_head(struct http_up *h, struct http_ep *ep)
{
    const struct mb_conf_backend *b = h->u->bconf;
    struct mb_buf *o = &ep->head;

    int rc = mb_buf_append_str(o, "POST ") | mb_buf_append_str(o, ep->conf->path) |
             mb_buf_append_str(o, " HTTP/1.1\r\n") | append_header(o, "Host", ep->hosthdr) |
             append_header(o, "Content-Type", "application/json") |
             append_header(o, "Accept", "application/json, text/event-stream");
    if (!h->u->conf->connection_pool.enabled)
        rc |= append_header(o, "Connection", "close");
    for (size_t i = 0; i < b->headers.n; i++)
        rc |= append_header(o, b->headers.keys[i], b->headers.values[i]);
    rc |= mb_buf_append(o, "Content-Length: ", 16);
    return rc != 0 ? MB_ERR : 0;
}

/* Appends "<n>\r\n" (the buffer has room reserved). */
static void put_length(struct mb_buf *o, size_t n)
{
    char d[24];
    size_t k = 0;
    do {
        d[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    while (k > 0)
        o->data[o->len++] = d[--k];
    o->data[o->len++] = '\r';
    o->data[o->len++] = '\n';
}

static void put(struct mb_buf *o, const void *p, size_t n)
{
    memcpy(o->data + o->len, p, n);
    o->len += n;
}

static void start_exchange(struct hconn *c, struct xchg *x)
{
    struct http_up *h = c->h;
    struct http_ep *ep = c->ep;
    struct mb_buf *o = &c->out;
    bool fresh_session = x->is_init || x->kind == X_REPLAY_INIT;
    static const char sid[] = "Mcp-Session-Id: ", pv[] = "MCP-Protocol-Version: ";

    c->x = x;
    c->got_bytes = false;
    c->rearm = false;
    if (x->is_init) { /* the core's own handshake goes to this endpoint */
        ep->sess = SESS_INITING;
        h->core_ep = (int)ep->index;
    }
    c->sess_gen = ep->sess_gen;
    c->sent_session = !fresh_session && ep->has_session;
    bool send_version = !fresh_session && ep->version[0];
    size_t sid_len = c->sent_session ? strlen(ep->session_id) : 0;
    size_t pv_len = send_version ? strlen(ep->version) : 0;
    mb_http_resp_reset(&c->resp);
    mb_buf_reset(o);
    /* One reservation for the whole request, then plain copies. */
    if (mb_buf_reserve(o, ep->head.len + 24 + sizeof(sid) + sid_len + sizeof(pv) + pv_len + 6 +
                              x->len) != 0) {
        c->x = NULL;
        fail_later(h, x, "out of memory");
        conn_close(c, false);
        return;
    }
    put(o, ep->head.data, ep->head.len);
    put_length(o, x->len);
    if (c->sent_session) {
        put(o, sid, sizeof(sid) - 1);
        put(o, ep->session_id, sid_len);
        put(o, "\r\n", 2);
    }
    if (send_version) {
        put(o, pv, sizeof(pv) - 1);
        put(o, ep->version, pv_len);
        put(o, "\r\n", 2);
    }
    put(o, "\r\n", 2);
    put(o, x->msg, x->len);
    mb_log_debug("backend %s: POST %zu bytes to %s%s", h->u->bconf->name, x->len, ep->conf->url,
                 c->pc.uses > 1 ? " (reused connection)" : "");
    arm_conn_timer(c, x->is_request ? h->request_timeout_ms : h->header_timeout_ms);
    /* Written now, not from a writeable callback: asking lws for one costs
     * two epoll_ctl calls per request (POLLOUT on, then off) on a socket
     * that is nearly always writable. lws sends what the socket takes and
     * keeps the rest itself, asking for POLLOUT only then. A failed write
     * cannot close the connection from here (we may be outside lws's
     * service): the writeable callback returns -1 and the close path
     * (on_closed) decides the exchange's fate, as before. */
    if (lws_write(c->wsi, (unsigned char *)o->data, o->len, LWS_WRITE_RAW) < 0) {
        snprintf(c->why, sizeof(c->why), "writing the request failed");
        c->write_failed = true;
        lws_callback_on_writable(c->wsi);
    }
    mb_buf_reset(o);
}

/* Picks an endpoint that can take x now and gives x a connection. Returns
 * true when x was placed (or disposed of), false when it must wait. */
static bool place(struct http_up *h, struct xchg *x)
{
    int k = x->ep;
    if (k >= 0) {
        struct http_ep *ep = &h->eps[k];
        if (!ep->ok) {
            /* A handshake replay, the core's initialized or a response to a
             * server request: they belong to that endpoint's session. */
            if (x->kind != X_CORE)
                replay_failed(ep, "the endpoint is unreachable");
            fail_later(h, x, "the endpoint it belongs to is unreachable");
            return true;
        }
        if (ep->host.nidle == 0 && !mb_pool_can_open(&ep->host))
            return false;
    } else {
        for (size_t i = 0; i < h->neps; i++) {
            struct http_ep *ep = &h->eps[i];
            h->usable[i] = ep->ok && (ep->host.nidle > 0 || mb_pool_can_open(&ep->host));
        }
        k = mb_pool_pick(h->hosts, h->usable, h->neps);
        if (k < 0)
            return false;
    }
    struct http_ep *ep = &h->eps[k];

    /* A core message other than initialize needs the endpoint's session. */
    if (x->kind == X_CORE && !x->is_init && ep->sess != SESS_READY) {
        if (ep->sess == SESS_NONE && start_replay(ep) != 0) {
            fail_later(h, x, "no upstream session (initialize was never answered)");
            return true;
        }
        x->ep = k;
        q_push(&ep->parked, x);
        return true;
    }
    struct mb_pool_conn *pc = mb_pool_take_idle(&ep->host);
    if (pc != NULL) {
        mb_metrics_upstream_conn(h->u, MB_POOL_IDLE, MB_POOL_BUSY);
        start_exchange((struct hconn *)pc, x);
        return true;
    }
    conn_open(ep, x);
    return true;
}

static void dispatch(struct http_up *h)
{
    while (h->up && h->q.head != NULL) {
        struct xchg *x = q_pop(&h->q);
        if (!place(h, x)) {
            q_push_front(&h->q, x);
            break;
        }
    }
}

static void on_kick(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct http_up *h = t->data;
    report_failures(h);
    dispatch(h);
}

/* Remembers which endpoint sent a server-to-client request, so the core's
 * response goes back to it. Called once the core accepted msg: it has
 * validated it, so one member pass finds method and id. */
static void note_s2c(struct http_up *h, struct http_ep *ep, const char *msg, size_t len)
{
    static const char *const names[] = {"method", "id"};
    struct mb_json_raw mem[2];
    if (h->neps < 2 || mb_json_members(msg, len, names, 2, mem) != 0 || mem[0].p == NULL ||
        mem[1].p == NULL || mem[1].len > ID_MAX)
        return;
    struct mb_json_raw id = mem[1];
    struct s2c_slot *s = &h->s2c[h->s2c_next++ % S2C_SLOTS];
    s->ep = (int)ep->index;
    s->len = (uint8_t)id.len;
    memcpy(s->id, id.p, id.len);
}

static int s2c_endpoint(struct http_up *h, const char *msg, size_t len)
{
    struct mb_json_raw id;
    if (mb_json_member(msg, len, "id", &id) || id.len > ID_MAX)
        return -1;
    for (size_t i = 0; i < S2C_SLOTS; i++)
        if (h->s2c[i].len == id.len && memcmp(h->s2c[i].id, id.p, id.len) == 0)
            return h->s2c[i].ep;
    return -1;
}

/* ---------------------------------------------------------------- answers */
/* Hands one answer message to the core. Returns false when it is not a
 * JSON-RPC message: the exchange then fails with c->why (-32011 for the
 * request) instead of leaving the request to its timeout. The core
 * validates what it is given (upstream.h), so bodies are not validated here
 * as well; a replayed handshake's answers, which the core never sees, are. */
static bool deliver(struct hconn *c, const char *msg, size_t len)
{
    struct xchg *x = c->x;
    if (x == NULL || len == 0)
        return true;
    if (x->kind != X_CORE) {
        /* a replayed handshake: the core has its answers already */
        if (!mb_json_valid(msg, len))
            return false;
        if (x->kind == X_REPLAY_INIT)
            learn_version(c->ep, msg, len);
        x->delivered++;
        return true;
    }
    if (x->is_init)
        learn_version(c->ep, msg, len);
    if (!c->h->u->ev->on_message(c->h->u->owner, msg, len))
        return false;
    note_s2c(c->h, c->ep, msg, len);
    x->delivered++;
    return true;
}

static void not_jsonrpc(struct hconn *c)
{
    snprintf(c->why, sizeof(c->why), "the backend answered with something that is not JSON-RPC");
    c->not_jsonrpc = true;
}

static void on_headers(void *arg)
{
    struct hconn *c = arg;
    struct xchg *x = c->x;
    struct http_ep *ep = c->ep;
    const struct mb_http_resp *r = &c->resp;

    /* Headers are in: the rest may stream as long as the request runs
     * (re-armed by on_rx only when the answer did not end in the same
     * read, as a JSON answer usually does). */
    c->rearm = true;
    if (x && (x->is_init || x->kind == X_REPLAY_INIT) && r->status / 100 == 2) {
        ep->has_session = r->has_session;
        if (r->has_session)
            memcpy(ep->session_id, r->session_id, sizeof(ep->session_id));
    }
}

static void on_event(void *arg, const char *data, size_t len)
{
    struct hconn *c = arg;
    if (c->resp.status / 100 == 2 && !deliver(c, data, len))
        not_jsonrpc(c);
}

static void on_body(void *arg, const char *data, size_t len)
{
    struct hconn *c = arg;
    struct xchg *x = c->x;
    if (c->resp.status / 100 != 2 || len == 0 || x == NULL)
        return;
    if (!deliver(c, data, len))
        not_jsonrpc(c);
}

static const struct mb_http_resp_cb resp_cb = {on_headers, on_event, on_body};

/* The answer to c's exchange is complete (or the exchange failed with why).
 * Decides the exchange's fate; returns true when c can be kept. */
static bool finish_exchange(struct hconn *c, const char *why)
{
    struct http_up *h = c->h;
    struct http_ep *ep = c->ep;
    struct xchg *x = c->x;
    int status = c->resp.status;
    char buf[160];

    c->x = NULL;
    ev_timer_stop(h->u->loop, &c->timer);
    if (x == NULL)
        return why == NULL;
    if (why == NULL && c->why[0]) {
        why = c->why;
        x->not_jsonrpc = c->not_jsonrpc;
    }

    if (why == NULL && status == 404 && c->sent_session && x->kind == X_CORE) {
        if (x->retried_404) {
            fail_later(h, x, "the upstream session was not found (HTTP 404) after re-initializing");
        } else {
            x->retried_404 = true;
            if (c->sess_gen == ep->sess_gen) {
                mb_log_info("backend %s: session at %s expired (HTTP 404): re-initializing",
                            h->u->bconf->name, ep->conf->url);
                ep->sess = SESS_NONE;
                ep->has_session = false;
            }
            if (ep->sess == SESS_NONE && start_replay(ep) != 0) {
                fail_later(h, x, "the upstream session expired and cannot be re-initialized");
            } else if (ep->sess == SESS_READY) {
                q_push_front(&h->q, x);
            } else {
                x->next = NULL;
                q_push_front(&ep->parked, x);
            }
            kick(h);
        }
        return c->resp.keep_alive;
    }
    if (why == NULL && status / 100 != 2) {
        snprintf(buf, sizeof(buf), "HTTP %d from %s", status, ep->conf->url);
        why = buf;
    }
    if (why == NULL && x->is_request && x->delivered == 0) {
        snprintf(buf, sizeof(buf), "HTTP %d with no message in answer to a request", status);
        why = buf;
    }
    if (why == NULL && !c->resp.sse && !c->resp.json && c->resp.body_bytes > 0 &&
        x->delivered == 0) {
        snprintf(buf, sizeof(buf), "an answer that is neither JSON nor an event stream");
        why = buf;
    }

    switch (x->kind) {
    case X_CORE:
        if (why != NULL && x->is_init) {
            /* The handshake failed: DOWN, then UP again after a probe, so
             * the core runs it again (the core fails its initialize). */
            char down[200];
            snprintf(down, sizeof(down), "initialize failed: %s", why);
            free(x);
            restart(h, down);
        } else if (why != NULL) {
            fail_later(h, x, why);
        } else {
            if (x->is_init)
                session_ready(ep);
            free(x);
        }
        break;
    case X_REPLAY_INIT:
        if (why != NULL) {
            replay_failed(ep, why);
        } else {
            const char *note = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";
            const char *m = h->saved_inited ? h->saved_inited : note;
            size_t n = h->saved_inited ? h->saved_inited_len : strlen(note);
            struct xchg *y = xchg_new(m, n, X_REPLAY_INITIALIZED, (int)ep->index);
            if (y == NULL) {
                replay_failed(ep, "out of memory");
            } else {
                mb_log_info("backend %s: new session at %s", h->u->bconf->name, ep->conf->url);
                q_push_front(&h->q, y);
                kick(h);
            }
        }
        free(x);
        break;
    case X_REPLAY_INITIALIZED:
        if (why != NULL)
            replay_failed(ep, why);
        else
            session_ready(ep);
        free(x);
        break;
    }
    c->why[0] = '\0';
    c->not_jsonrpc = false;
    return c->resp.keep_alive;
}

/* c's exchange is over; keep c idle, or close it. */
static void conn_done(struct hconn *c, bool keep, bool own_cb)
{
    struct http_up *h = c->h;
    if (keep && c->wsi != NULL && mb_pool_release(&c->pc, mb_worker_now_ms(h->u->w))) {
        mb_metrics_upstream_conn(h->u, MB_POOL_BUSY, MB_POOL_IDLE);
        if (!ev_is_active(&h->sweep)) {
            ev_timer_set(&h->sweep, 1., 1.);
            ev_timer_start(h->u->loop, &h->sweep);
        }
    } else {
        conn_close(c, own_cb);
    }
    kick(h);
}

static void on_conn_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct hconn *c = t->data;
    struct http_up *h = c->h;
    char why[128];

    if (!c->connected) {
        snprintf(why, sizeof(why), "connect to %s:%u: timed out", c->ep->conf->address,
                 c->ep->conf->port);
        struct xchg *x = c->x;
        struct http_ep *ep = c->ep;
        c->x = NULL;
        if (x == NULL)
            ep->probing = false;
        conn_close(c, false);
        if (x)
            q_push_front(&h->q, x);
        ep_failed(ep, why);
        return;
    }
    snprintf(why, sizeof(why), "no %s from %s within %lld ms",
             c->resp.headers_done ? "further answer" : "response headers", c->ep->conf->url,
             (long long)c->timeout_ms);
    finish_exchange(c, why);
    conn_close(c, false);
}

/* Idle connections past their time are closed. */
static void on_sweep(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct http_up *h = t->data;
    uint64_t now = mb_worker_now_ms(h->u->w);
    bool any = false;
    for (size_t i = 0; i < h->neps; i++) {
        struct mb_pool_conn *pc;
        while ((pc = mb_pool_expired(&h->eps[i].host, now)) != NULL)
            conn_close((struct hconn *)pc, false);
        any |= h->eps[i].host.nidle > 0;
    }
    if (!any)
        ev_timer_stop(loop, t);
}

/* ---------------------------------------------------------------- lws */
static int on_rx(struct hconn *c, const char *in, size_t len)
{
    size_t used = 0;
    if (c->x == NULL) {
        /* Bytes on an idle connection: nothing was asked. */
        mb_log_debug("backend %s: unexpected bytes on an idle connection", c->h->u->bconf->name);
        conn_close(c, true);
        return -1;
    }
    c->got_bytes = true;
    int rc = mb_http_resp_feed(&c->resp, in, len, &used, &resp_cb, c);
    if (rc == MB_AGAIN) {
        if (c->rearm) {
            struct http_up *h = c->h;
            c->rearm = false;
            arm_conn_timer(c, h->request_timeout_ms > h->header_timeout_ms ? h->request_timeout_ms
                                                                           : h->header_timeout_ms);
        }
        return 0;
    }
    if (rc == MB_ERR) {
        char why[200];
        snprintf(why, sizeof(why), "bad HTTP answer from %s: %s", c->ep->conf->url, c->resp.error);
        finish_exchange(c, why);
        conn_close(c, true);
        return -1;
    }
    bool keep = finish_exchange(c, NULL) && used == len;
    if (!keep) {
        conn_done(c, false, true);
        return -1;
    }
    conn_done(c, true, true);
    return 0;
}

static int on_closed(struct hconn *c)
{
    struct http_up *h = c->h;
    struct xchg *x = c->x;

    if (!c->connected) { /* a connection that never came up */
        char why[160];
        struct http_ep *ep = c->ep;
        snprintf(why, sizeof(why), "connect to %s:%u: %s", ep->conf->address, ep->conf->port,
                 c->why[0] ? c->why : "failed");
        c->x = NULL;
        if (x == NULL)
            ep->probing = false;
        c->wsi = NULL;
        conn_free(c);
        if (x)
            q_push_front(&h->q, x);
        ep_failed(ep, why);
        return 0;
    }
    if (x != NULL) {
        if (!c->got_bytes && c->pc.uses > 1 && !x->retried_stale) {
            /* A keep-alive connection the server had closed while idle. */
            x->retried_stale = true;
            c->x = NULL;
            q_push_front(&h->q, x);
            kick(h);
        } else if (mb_http_resp_eof(&c->resp, &resp_cb, c) == MB_OK) {
            finish_exchange(c, NULL);
        } else {
            char why[200];
            snprintf(why, sizeof(why), "%s (%s)", c->resp.error, c->ep->conf->url);
            finish_exchange(c, why);
        }
    }
    c->wsi = NULL;
    conn_free(c);
    kick(h);
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct hconn *c = lws_get_opaque_user_data(wsi);

    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (c == NULL)
            return 0;
        snprintf(c->why, sizeof(c->why), "%s", in ? (const char *)in : "connection failed");
        lws_set_opaque_user_data(wsi, NULL);
        if (c->in_connect) { /* conn_open handles it when lws returns */
            c->failed_sync = true;
            return 0;
        }
        c->connected = false;
        return on_closed(c);
    case LWS_CALLBACK_RAW_CONNECTED:
        if (c == NULL)
            return -1;
        c->connected = true;
        c->wsi = wsi;
        if (c->x == NULL)
            c->ep->probing = false;
        set_keepalive(c);
        mb_pool_connected(&c->pc);
        ep_reachable(c->ep);
        if (c->wsi == NULL || lws_get_opaque_user_data(wsi) != c)
            return -1; /* going up made the core close us (cannot happen today) */
        if (c->x != NULL) {
            struct xchg *x = c->x;
            c->x = NULL;
            start_exchange(c, x);
        } else {
            conn_done(c, true, true);
            if (lws_get_opaque_user_data(wsi) == NULL)
                return -1;
        }
        return 0;
    case LWS_CALLBACK_RAW_WRITEABLE:
        if (c == NULL)
            return -1;
        /* Only a failed write in start_exchange asks for this callback
         * (lws drains a partly sent request itself). */
        return c->write_failed ? -1 : 0;
    case LWS_CALLBACK_RAW_RX:
        if (c == NULL)
            return -1;
        return on_rx(c, in, len);
    case LWS_CALLBACK_RAW_CLOSE:
        if (c == NULL)
            return 0;
        lws_set_opaque_user_data(wsi, NULL);
        return on_closed(c);
    default:
        break;
    }
    return 0;
}

/* ---------------------------------------------------------------- contract */
static int hu_start(struct mb_upstream *u)
{
    struct http_up *h = u->impl;

    h->vh = mb_upstream_vhost_create(u, protocols);
    if (h->vh == NULL)
        return MB_ERR;
    h->started = true;
    /* Probes go out from the loop, never from inside start(). */
    for (size_t i = 0; i < h->neps; i++) {
        ev_timer_set(&h->eps[i].retry_t, 0., 0.);
        ev_timer_start(u->loop, &h->eps[i].retry_t);
    }
    return 0;
}

static int classify(struct http_up *h, struct xchg *x)
{
    struct mb_json_raw method;
    bool has_id;
    char name[64];
    mb_upstream_http_classify(x->msg, x->len, &method, &has_id);
    if (method.p == NULL) {
        /* A response to a server-to-client request: back where it came from. */
        int ep = s2c_endpoint(h, x->msg, x->len);
        x->ep = ep >= 0 ? ep : h->core_ep;
        return 0;
    }
    x->is_request = has_id;
    if (mb_json_raw_plain_string(method, name, sizeof(name)) < 0)
        return 0;
    if (strcmp(name, "initialize") == 0 && x->is_request) {
        char *copy = malloc(x->len);
        if (copy == NULL)
            return MB_ERR;
        memcpy(copy, x->msg, x->len);
        free(h->saved_init);
        h->saved_init = copy;
        h->saved_init_len = x->len;
        free(h->saved_inited);
        h->saved_inited = NULL;
        x->is_init = true;
        /* A new handshake: every endpoint's session is from the old one. */
        for (size_t i = 0; i < h->neps; i++) {
            struct http_ep *ep = &h->eps[i];
            struct xchg *p;
            while ((p = q_pop(&ep->parked)) != NULL)
                fail_later(h, p, "superseded by a new initialize");
            ep->sess = SESS_NONE;
            ep->has_session = false;
            ep->version[0] = '\0';
            ep->sess_gen++;
        }
    } else if (strcmp(name, "notifications/initialized") == 0) {
        char *copy = malloc(x->len);
        if (copy == NULL)
            return MB_ERR;
        memcpy(copy, x->msg, x->len);
        free(h->saved_inited);
        h->saved_inited = copy;
        h->saved_inited_len = x->len;
        x->is_initialized = true;
        x->ep = h->core_ep;
    }
    return 0;
}

/* The common case placed at once, from inside send(): one endpoint, its
 * session ready, an idle connection, nothing queued before the message.
 * Nothing on this path calls back into the core (start_exchange reports
 * its failures from the kick), and it saves the kick's extra loop
 * iteration (an epoll_wait per request while the worker is not saturated)
 * and its timer. Everything else goes through the queue and place(); with
 * one endpoint, place()'s weighted pick is always that endpoint and leaves
 * no state behind, so skipping it changes nothing. */
static bool send_now(struct http_up *h, struct xchg *x)
{
    struct http_ep *ep = &h->eps[0];
    if (h->neps != 1 || h->q.head != NULL || x->ep >= 0 || x->is_init || !ep->ok ||
        ep->sess != SESS_READY)
        return false;
    struct mb_pool_conn *pc = mb_pool_take_idle(&ep->host);
    if (pc == NULL)
        return false;
    mb_metrics_upstream_conn(h->u, MB_POOL_IDLE, MB_POOL_BUSY);
    start_exchange((struct hconn *)pc, x);
    return true;
}

static int hu_send(struct mb_upstream *u, const char *msg, size_t len)
{
    struct http_up *h = u->impl;
    if (!h->up)
        return MB_AGAIN;
    struct xchg *x = xchg_new(msg, len, X_CORE, -1);
    if (x == NULL)
        return MB_ERR;
    if (classify(h, x) != 0) {
        free(x);
        return MB_ERR;
    }
    if (send_now(h, x))
        return 0;
    if (h->q.n >= QUEUE_MAX) {
        fail_later(h, x, "too many messages waiting for an upstream connection");
        return 0;
    }
    q_push(&h->q, x);
    kick(h);
    return 0;
}

static void hu_close(struct mb_upstream *u)
{
    struct http_up *h = u->impl;
    struct ev_loop *loop = u->loop;

    if (h == NULL)
        return;
    ev_timer_stop(loop, &h->kick);
    ev_timer_stop(loop, &h->sweep);
    while (h->all)
        conn_close(h->all, false);
    for (size_t i = 0; i < h->neps; i++) {
        ev_timer_stop(loop, &h->eps[i].retry_t);
        q_free(&h->eps[i].parked);
        mb_buf_free(&h->eps[i].head);
    }
    q_free(&h->q);
    drop_failures(h);
    free(h->saved_init);
    free(h->saved_inited);
    free(h->eps);
    free(h->hosts);
    free(h->usable);
    free(h);
    u->impl = NULL;
}

static const struct mb_upstream_ops http_ops = {
    .name = "http", .start = hu_start, .send = hu_send, .close = hu_close};

int mb_upstream_http_init(struct mb_upstream *u)
{
    const struct mb_conf_backend *b = u->bconf;
    const struct mb_conf_connection_pool *cp = &u->conf->connection_pool;

    if (mb_upstream_endpoints_check(b) != 0)
        return MB_ERR;
    if (!pool_ready) {
        mb_msec_t idle = cp->idle_conn_timeout;
        if (cp->keep_alive_timeout > 0 && (idle == 0 || cp->keep_alive_timeout < idle))
            idle = cp->keep_alive_timeout;
        struct mb_pool_limits lim = {
            .enabled = cp->enabled,
            .max_conns_per_host = cp->max_conns_per_host,
            .max_idle_conns_per_host = cp->max_idle_conns_per_host,
            .max_idle_conns = cp->max_idle_conns,
            .idle_timeout_ms = (uint64_t)idle,
        };
        mb_pool_init(&pool, &lim);
        pool_ready = true;
    }
    struct http_up *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return MB_ERR;
    h->u = u;
    h->neps = b->nendpoints;
    h->core_ep = -1;
    h->eps = calloc(h->neps, sizeof(*h->eps));
    h->hosts = calloc(h->neps, sizeof(*h->hosts));
    h->usable = calloc(h->neps, sizeof(*h->usable));
    if (h->eps == NULL || h->hosts == NULL || h->usable == NULL) {
        free(h->eps);
        free(h->hosts);
        free(h->usable);
        free(h);
        return MB_ERR;
    }
    h->header_timeout_ms = cp->response_header_timeout;
    h->request_timeout_ms = b->request_timeout > cp->response_header_timeout
                                ? b->request_timeout + 1000
                                : cp->response_header_timeout;
    for (size_t i = 0; i < h->neps; i++) {
        struct http_ep *ep = &h->eps[i];
        const struct mb_conf_endpoint *e = &b->endpoints[i];
        bool v6 = strchr(e->host, ':') != NULL;
        ep->h = h;
        ep->index = i;
        ep->conf = e;
        ep->backoff = MB_UPSTREAM_BACKOFF_MIN_S;
        mb_pool_host_init(&ep->host, &pool, e->weight);
        h->hosts[i] = &ep->host;
        if (e->port == 80)
            snprintf(ep->hosthdr, sizeof(ep->hosthdr), "%s%s%s", v6 ? "[" : "", e->host,
                     v6 ? "]" : "");
        else
            snprintf(ep->hosthdr, sizeof(ep->hosthdr), "%s%s%s:%u", v6 ? "[" : "", e->host,
                     v6 ? "]" : "", e->port);
        ev_timer_init(&ep->retry_t, on_retry, 0., 0.);
        ep->retry_t.data = ep;
        if (build_head(h, ep) != 0) {
            for (size_t j = 0; j <= i; j++)
                mb_buf_free(&h->eps[j].head);
            free(h->eps);
            free(h->hosts);
            free(h->usable);
            free(h);
            return MB_ERR;
        }
    }
    ev_timer_init(&h->kick, on_kick, 0., 0.);
    h->kick.data = h;
    ev_timer_init(&h->sweep, on_sweep, 1., 1.);
    h->sweep.data = h;
    u->ops = &http_ops;
    u->impl = h;
    return 0;
}
