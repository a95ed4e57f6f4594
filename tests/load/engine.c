/*
 * tests/load/engine.c — see engine.h. This file owns the connection state
 * machine and the per-thread event loops.
 *
 * A connection (struct conn) belongs to one thread for its whole life and is
 * reused across reconnects (c->gen counts them, so a handler that closed its
 * connection can tell). States:
 *
 *   OFF ─▶ CONNECTING ─▶ (ws) WS_HS ─▶ [INIT ─▶ (http) INIT_NOTIFY] ─▶ READY
 *                                    └▶ (idle) PING ─▶ IDLE
 *   READY ─(stages: reply)▶ CLOSING ─(server's EOF)▶ OFF
 *
 * Reading: one recv per readiness event (level-triggered) into the thread's
 * scratch buffer; only an incomplete message is copied into the connection's
 * own buffer, so idle connections cost no buffer at all. Writing: straight to
 * the socket; what does not fit waits in the connection's buffer for EPOLLOUT.
 *
 * Timing: a request's latency is reply time minus its intended send time. In
 * the closed loop that is when it was sent; in the open loop it is its slot
 * in the schedule (t0 + k / rate), so a request that waited for a free
 * connection is charged for the wait — no coordinated omission.
 */
#include "tests/load/engine.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/time.h"
#include "tests/load/http.h"
#include "tests/load/reply.h"
#include "tests/support/wsframe.h"

#ifndef MB_VERSION
#define MB_VERSION "dev"
#endif

#define NS_PER_S        1000000000ull
#define NS_PER_MS       1000000ull
#define SCRATCH_SIZE    (256 * 1024)
#define MAX_MESSAGE     (64u * 1024 * 1024) /* larger replies are a bad reply */
#define RECONNECT_DELAY (100 * NS_PER_MS)   /* after an error, so a dead server is not spun on */
#define SWEEP_INTERVAL  (20 * NS_PER_MS)    /* timeout checks */
#define TICK_INTERVAL   (5 * NS_PER_MS)     /* stages: re-read the schedule */
#define MAX_WAIT        (10 * NS_PER_MS)    /* a loop always wakes this often */
#define CLOSING_WAIT    (2 * NS_PER_S)      /* stages: wait this long for the server's close */
#define HANDSHAKE_MAX   16384

enum cstate {
    C_OFF = 0,
    C_WAIT,
    C_CONNECTING,
    C_WS_HS,
    C_INIT,
    C_INIT_NOTIFY,
    C_READY,
    C_PING,
    C_IDLE,
    C_CLOSING,
    C_DONE
};

struct thr;

struct conn {
    int fd;
    uint8_t state;
    uint8_t in_free;    /* has an entry on the thread's free stack (open loop) */
    uint8_t want_out;   /* EPOLLOUT is armed */
    uint8_t settled;    /* counted once in engine.settled */
    uint8_t connecting; /* counted in thr.connecting */
    uint8_t vu_busy;    /* stages: this VU slot is running iterations */
    uint8_t iter_ok;    /* stages: this iteration got its reply */
    uint8_t notify_due; /* HTTP: notifications/initialized not yet acknowledged */
    uint8_t last_resp;  /* HTTP: the server closes after this response: send nothing more */
    uint32_t idx;
    uint32_t gen;
    int64_t next_id;
    uint64_t deadline; /* ns; 0 = none */
    uint64_t t_start;  /* connect start (a VU iteration's start) */
    uint64_t not_before;
    struct conn *next_pending;
    struct mb_load_inflight fl;
    uint8_t *rbuf;
    size_t rlen, rcap;
    uint8_t *wbuf;
    size_t wlen, wcap;
    uint8_t *frag; /* a fragmented WebSocket message being put together */
    size_t flen, fcap;
    char *session;  /* Mcp-Session-Id (HTTP) */
    char *pversion; /* negotiated protocol version (HTTP header) */
    char key[25];
};

struct engine {
    const struct mb_load_opts *o;
    struct sockaddr_storage dst;
    socklen_t dstlen;
    volatile sig_atomic_t *stop;
    int proc;
    int nthreads;
    uint32_t nworkers; /* threads over all processes */
    uint32_t conns;    /* this process's connections (or idle connections) */
    uint64_t requests; /* this process's share of --requests */
    uint64_t start;
    uint64_t open_deadline;
    _Atomic uint64_t t0; /* 0 until every connection opened or failed */
    _Atomic uint64_t claimed;
    _Atomic uint32_t settled;
    _Atomic uint32_t vus, vus_max;
    _Atomic uint64_t last_reply;
    _Atomic int interrupted;
};

struct thr {
    struct engine *e;
    int index;
    uint32_t worker;
    int epfd;
    pthread_t tid;
    struct conn *conns;
    uint32_t nconns;
    struct conn **freestk;
    uint32_t nfree;
    struct conn *pend_head, *pend_tail;
    uint32_t connecting;
    uint64_t inflight_calls;
    uint64_t rng;
    uint32_t src_rr;
    int started;       /* has seen t0 */
    struct conn *cork; /* writes to it are gathered until its read is processed */
    /* open loop */
    uint64_t sched_start;
    double interval;
    uint64_t issued;
    /* stages */
    uint32_t share;
    uint64_t next_tick;
    uint64_t next_sweep;
    uint8_t *scratch;
    char *tmp; /* a rendered request body */
    size_t tmpcap;
    uint8_t *out; /* a framed request */
    size_t outcap;
    char *sse; /* an SSE event's data */
    size_t ssecap;
    struct mb_load_result res;
};

/* ------------------------------------------------------------------ time */

static uint64_t engine_t0(struct engine *e)
{
    return atomic_load_explicit(&e->t0, memory_order_acquire);
}

static uint64_t measure_start(struct engine *e)
{
    return engine_t0(e) + (e->o->mode <= MB_LOAD_MODE_OPEN ? e->o->warmup_ns : 0);
}

/* The end of the measured window, or 0 when only --requests ends it. */
static uint64_t measure_end(struct engine *e)
{
    uint64_t t0 = engine_t0(e);
    if (!t0)
        return 0;
    switch (e->o->mode) {
    case MB_LOAD_MODE_IDLE:
        return t0 + e->o->hold_ns;
    case MB_LOAD_MODE_STAGES:
        return t0 + mb_load_stages_total_ns(&e->o->stages);
    default:
        return e->o->duration_ns ? measure_start(e) + e->o->duration_ns : 0;
    }
}

static uint64_t hard_deadline(struct engine *e)
{
    const struct mb_load_opts *o = e->o;
    uint64_t t0 = engine_t0(e);
    if (!t0)
        return e->open_deadline + NS_PER_S;
    switch (o->mode) {
    case MB_LOAD_MODE_IDLE:
        return t0 + o->hold_ns;
    case MB_LOAD_MODE_STAGES:
        return t0 + mb_load_stages_total_ns(&o->stages) + o->timeout_ns + CLOSING_WAIT;
    default: {
        uint64_t me = measure_end(e);
        return me ? me : measure_start(e) + o->max_time_ns;
    }
    }
}

uint64_t mb_load_engine_bound_ns(const struct mb_load_opts *o)
{
    uint64_t b = o->open_timeout_ns + 2 * NS_PER_S;
    switch (o->mode) {
    case MB_LOAD_MODE_IDLE:
        return b + o->hold_ns;
    case MB_LOAD_MODE_STAGES:
        return mb_load_stages_total_ns(&o->stages) + o->timeout_ns + CLOSING_WAIT + 2 * NS_PER_S;
    default:
        return b + o->warmup_ns + (o->duration_ns ? o->duration_ns : o->max_time_ns);
    }
}

/* ------------------------------------------------------------------ buffers */

static int buf_reserve(uint8_t **b, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 4096;
    while (n < need)
        n *= 2;
    uint8_t *nb = realloc(*b, n);
    if (!nb)
        return -1;
    *b = nb;
    *cap = n;
    return 0;
}

static uint32_t rng_next(struct thr *t)
{
    /* xorshift64: mask keys only need to differ, not to be secret */
    t->rng ^= t->rng << 13;
    t->rng ^= t->rng >> 7;
    t->rng ^= t->rng << 17;
    return (uint32_t)(t->rng >> 16);
}

/* ------------------------------------------------------------------ epoll */

static void set_events(struct thr *t, struct conn *c, int out)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (out ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(t->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->want_out = (uint8_t)out;
}

/* ------------------------------------------------------------------ closing */

static void settle(struct thr *t, struct conn *c)
{
    if (!c->settled) {
        c->settled = 1;
        atomic_fetch_add(&t->e->settled, 1);
    }
    if (c->connecting) {
        c->connecting = 0;
        t->connecting--;
    }
}

/* Closes the socket and drops the connection's buffers. keep_session keeps
 * the HTTP session (Mcp-Session-Id is not tied to a TCP connection), so a
 * keep-alive connection the server ended is replaced without a new
 * initialize. */
static void conn_close_ex(struct thr *t, struct conn *c, int reset, int keep_session)
{
    if (c->fd >= 0) {
        if (reset) {
            struct linger lg = {1, 0};
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        close(c->fd);
        c->fd = -1;
    }
    if (c->connecting) {
        c->connecting = 0;
        t->connecting--;
    }
    t->inflight_calls -= mb_load_inflight_count(&c->fl, MB_LOAD_REQ_CALL);
    c->fl.n = 0;
    free(c->rbuf);
    free(c->wbuf);
    free(c->frag);
    c->rbuf = c->wbuf = c->frag = NULL;
    if (!keep_session) {
        free(c->session);
        free(c->pversion);
        c->session = c->pversion = NULL;
    }
    c->rlen = c->rcap = c->wlen = c->wcap = c->flen = c->fcap = 0;
    c->want_out = 0;
    c->last_resp = 0;
    c->deadline = 0;
    c->gen++;
    c->state = C_OFF;
}

static void conn_close(struct thr *t, struct conn *c, int reset)
{
    conn_close_ex(t, c, reset, 0);
}

static void pending_push(struct thr *t, struct conn *c, uint64_t not_before)
{
    c->state = C_WAIT;
    c->not_before = not_before;
    c->next_pending = NULL;
    if (t->pend_tail)
        t->pend_tail->next_pending = c;
    else
        t->pend_head = c;
    t->pend_tail = c;
}

static int stopping(struct thr *t)
{
    return *t->e->stop != 0;
}

/* A VU's iteration is over: run another if the schedule still wants this
 * slot, else let the slot go dormant. */
static void vu_end(struct thr *t, struct conn *c, uint64_t delay)
{
    uint64_t now = mb_time_mono_ns();
    if (c->iter_ok) {
        t->res.iterations++;
        mb_load_histogram_record(&t->res.iteration, now - c->t_start);
        c->iter_ok = 0;
    }
    conn_close(t, c, 0);
    if (!stopping(t) && c->idx < t->share && now < measure_end(t->e)) {
        pending_push(t, c, now + delay);
        return;
    }
    c->vu_busy = 0;
    atomic_fetch_sub(&t->e->vus, 1);
}

/* Ends a connection that failed: conn_kind (or -1) counts once, each
 * request in flight counts as calls_kind. Then it is retried, as the mode
 * says. */
static void conn_fail(struct thr *t, struct conn *c, int conn_kind, int calls_kind)
{
    if (conn_kind >= 0)
        t->res.errors[conn_kind]++;
    t->res.errors[calls_kind] += mb_load_inflight_count(&c->fl, MB_LOAD_REQ_CALL);
    int mode = t->e->o->mode;
    if (mode == MB_LOAD_MODE_STAGES) {
        c->iter_ok = 0;
        vu_end(t, c, RECONNECT_DELAY);
        return;
    }
    settle(t, c);
    conn_close(t, c, 0);
    if (mode == MB_LOAD_MODE_IDLE) {
        c->state = C_DONE;
        return;
    }
    if (!stopping(t))
        pending_push(t, c, mb_time_mono_ns() + RECONNECT_DELAY);
}

/* ------------------------------------------------------------------ writing */

/* Sends, or queues what the socket does not take. Returns 0, or -1 when the
 * connection is broken (the caller fails it). */
static int conn_write(struct thr *t, struct conn *c, const void *p, size_t n)
{
    if (c->wlen || t->cork == c) {
        if (buf_reserve(&c->wbuf, &c->wcap, c->wlen + n))
            return -1;
        memcpy(c->wbuf + c->wlen, p, n);
        c->wlen += n;
        return 0;
    }
    ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
    if (w == (ssize_t)n)
        return 0;
    if (w < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        w = 0;
    }
    if (buf_reserve(&c->wbuf, &c->wcap, n - (size_t)w))
        return -1;
    memcpy(c->wbuf, (const uint8_t *)p + w, n - (size_t)w);
    c->wlen = n - (size_t)w;
    set_events(t, c, 1);
    return 0;
}

static int conn_flush(struct thr *t, struct conn *c)
{
    if (c->wlen) {
        ssize_t w = send(c->fd, c->wbuf, c->wlen, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -1;
            w = 0;
        }
        memmove(c->wbuf, c->wbuf + w, c->wlen - (size_t)w);
        c->wlen -= (size_t)w;
    }
    if ((c->wlen > 0) != c->want_out)
        set_events(t, c, c->wlen > 0);
    return 0;
}

/* Frames (WebSocket) or wraps in a POST (HTTP) one JSON-RPC message. */
static int send_message(struct thr *t, struct conn *c, const char *msg, size_t n)
{
    const struct mb_load_opts *o = t->e->o;
    long len;
    if (o->transport == MB_LOAD_WS)
        len = mb_wsframe_encode(t->out, t->outcap, 1, MB_WS_OP_TEXT, msg, n, 1, rng_next(t));
    else
        len = mb_load_http_request((char *)t->out, t->outcap, o->path, o->hostport, c->session,
                                   c->pversion, o->extra_headers, msg, n);
    if (len < 0)
        return -1;
    return conn_write(t, c, t->out, (size_t)len);
}

static int send_ws_control(struct thr *t, struct conn *c, int opcode, const void *p, size_t n)
{
    uint8_t f[256];
    long len = mb_wsframe_encode(f, sizeof(f), 1, opcode, p, n, 1, rng_next(t));
    return len < 0 ? -1 : conn_write(t, c, f, (size_t)len);
}

/* ------------------------------------------------------------------ requests */

static void update_deadline(struct thr *t, struct conn *c)
{
    uint64_t oldest = mb_load_inflight_oldest_sent(&c->fl);
    c->deadline = oldest ? oldest + t->e->o->timeout_ns : 0;
}

/* May this thread send one more measured request now? In --requests mode a
 * request after the warm-up must claim one of the process's share. */
static int may_send(struct thr *t, uint64_t now)
{
    struct engine *e = t->e;
    if (stopping(t) || !t->started)
        return 0;
    uint64_t me = measure_end(e);
    if (me && now >= me)
        return 0;
    if (e->o->requests && now >= measure_start(e)) {
        if (atomic_fetch_add(&e->claimed, 1) >= e->requests)
            return 0;
    }
    return 1;
}

static int send_request(struct thr *t, struct conn *c, uint64_t intended, uint64_t now)
{
    const struct mb_load_opts *o = t->e->o;
    struct mb_load_pending p = {
        .id = c->next_id++, .intended_ns = intended, .sent_ns = now, .kind = MB_LOAD_REQ_CALL};
    long n = mb_load_opts_render(o, p.id, t->tmp, t->tmpcap);
    if (n < 0 || mb_load_inflight_add(&c->fl, &p) != 0)
        return -1;
    t->inflight_calls++;
    if (!c->deadline)
        c->deadline = now + o->timeout_ns;
    return send_message(t, c, t->tmp, (size_t)n);
}

static void free_push(struct thr *t, struct conn *c)
{
    if (c->in_free || c->state != C_READY || c->last_resp)
        return;
    c->in_free = 1;
    t->freestk[t->nfree++] = c;
}

static struct conn *free_pop(struct thr *t)
{
    while (t->nfree) {
        struct conn *c = t->freestk[--t->nfree];
        c->in_free = 0;
        if (c->state == C_READY &&
            mb_load_inflight_count(&c->fl, MB_LOAD_REQ_CALL) < t->e->o->pipeline)
            return c;
    }
    return NULL;
}

/* Closed loop: keep --pipeline requests in flight. */
static void fill_pipeline(struct thr *t, struct conn *c)
{
    uint64_t now = mb_time_mono_ns();
    uint32_t gen = c->gen;
    while (c->gen == gen && c->state == C_READY && !c->last_resp &&
           mb_load_inflight_count(&c->fl, MB_LOAD_REQ_CALL) < t->e->o->pipeline &&
           may_send(t, now)) {
        if (send_request(t, c, now, now) != 0) {
            conn_fail(t, c, MB_LOAD_ERR_CLOSED, MB_LOAD_ERR_LOST);
            return;
        }
    }
}

static void conn_ready(struct thr *t, struct conn *c)
{
    c->state = C_READY;
    update_deadline(t, c);
    settle(t, c);
    if (!t->started)
        return; /* the kick at t0 starts it */
    if (t->e->o->mode == MB_LOAD_MODE_OPEN)
        free_push(t, c);
    else if (t->e->o->mode == MB_LOAD_MODE_CLOSED)
        fill_pipeline(t, c);
}

static void send_init(struct thr *t, struct conn *c)
{
    const struct mb_load_opts *o = t->e->o;
    uint64_t now = mb_time_mono_ns();
    struct mb_load_pending p = {
        .id = c->next_id++, .intended_ns = now, .sent_ns = now, .kind = MB_LOAD_REQ_INIT};
    int n = snprintf(t->tmp, t->tmpcap,
                     "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"initialize\",\"params\":{"
                     "\"protocolVersion\":\"%s\",\"capabilities\":{},\"clientInfo\":{\"name\":"
                     "\"mcp-bridge-load\",\"version\":\"%s\"}}}",
                     (long long)p.id, o->protocol_version, MB_VERSION);
    c->state = C_INIT;
    c->deadline = now + o->timeout_ns;
    if (n < 0 || (size_t)n >= t->tmpcap || mb_load_inflight_add(&c->fl, &p) != 0 ||
        send_message(t, c, t->tmp, (size_t)n) != 0)
        conn_fail(t, c, MB_LOAD_ERR_HANDSHAKE, MB_LOAD_ERR_LOST);
}

static const char initialized_note[] =
    "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";

/* HTTP: the notification is a POST of its own, answered with 202. */
static void send_notify(struct thr *t, struct conn *c)
{
    uint64_t now = mb_time_mono_ns();
    struct mb_load_pending p = {
        .id = -1, .intended_ns = now, .sent_ns = now, .kind = MB_LOAD_REQ_NOTIFY};
    c->state = C_INIT_NOTIFY;
    c->notify_due = 1;
    c->deadline = now + t->e->o->timeout_ns;
    if (mb_load_inflight_add(&c->fl, &p) != 0 ||
        send_message(t, c, initialized_note, sizeof(initialized_note) - 1) != 0)
        conn_fail(t, c, MB_LOAD_ERR_HANDSHAKE, MB_LOAD_ERR_LOST);
}

static void init_done(struct thr *t, struct conn *c, const char *msg, size_t n)
{
    cJSON *j = cJSON_ParseWithLength(msg, n);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "result"),
                                                      "protocolVersion");
    if (cJSON_IsString(v) && !strpbrk(v->valuestring, "\r\n") && strlen(v->valuestring) < 64) {
        free(c->pversion);
        c->pversion = strdup(v->valuestring);
    }
    cJSON_Delete(j);
    if (t->e->o->transport == MB_LOAD_HTTP) {
        send_notify(t, c);
        return;
    }
    if (send_message(t, c, initialized_note, sizeof(initialized_note) - 1) != 0) {
        conn_fail(t, c, MB_LOAD_ERR_CLOSED, MB_LOAD_ERR_LOST);
        return;
    }
    conn_ready(t, c);
}

/* Stages: the reply is in; close the WebSocket as a client should (close
 * frame, then wait for the server to close the TCP connection, which leaves
 * TIME_WAIT on the server's side rather than eating our ports). */
static void stage_close(struct thr *t, struct conn *c)
{
    static const uint8_t code[2] = {0x03, 0xe8}; /* 1000 normal closure */
    c->state = C_CLOSING;
    c->deadline = mb_time_mono_ns() +
                  (t->e->o->timeout_ns < CLOSING_WAIT ? t->e->o->timeout_ns : CLOSING_WAIT);
    if (send_ws_control(t, c, MB_WS_OP_CLOSE, code, sizeof(code)) != 0) {
        conn_close(t, c, 1);
        vu_end(t, c, 0);
    }
}

/* What follows a finished request (ok or not). */
static void after_call(struct thr *t, struct conn *c)
{
    update_deadline(t, c);
    switch (t->e->o->mode) {
    case MB_LOAD_MODE_STAGES:
        stage_close(t, c);
        break;
    case MB_LOAD_MODE_OPEN:
        free_push(t, c);
        break;
    default:
        fill_pipeline(t, c);
        break;
    }
}

static void record_ok(struct thr *t, const struct mb_load_pending *p, uint64_t now)
{
    struct engine *e = t->e;
    t->res.replies++;
    uint64_t ms = measure_start(e), me = measure_end(e);
    if (p->intended_ns < ms || (me && now > me))
        return;
    t->res.requests++;
    mb_load_histogram_record(&t->res.latency, now - p->intended_ns);
    uint64_t last = atomic_load_explicit(&e->last_reply, memory_order_relaxed);
    while (now > last && !atomic_compare_exchange_weak(&e->last_reply, &last, now))
        ;
}

/* One JSON-RPC message from the server. Returns 0, or -1 when the connection
 * was closed on the way (the caller must not touch its buffers). */
static int on_message(struct thr *t, struct conn *c, const char *msg, size_t n)
{
    struct mb_load_pending p;
    int64_t code = 0;
    uint32_t gen = c->gen;
    int m = mb_load_reply_match(&c->fl, msg, n, &p, &code);
    uint64_t now = mb_time_mono_ns();
    switch (m) {
    case MB_LOAD_MATCH_SERVER:
        t->res.server_msgs++;
        return 0;
    case MB_LOAD_MATCH_INVALID:
        t->res.errors[MB_LOAD_ERR_BAD_REPLY]++;
        return 0;
    case MB_LOAD_MATCH_BAD_ID:
        t->res.errors[MB_LOAD_ERR_BAD_ID]++;
        if (p.kind < 0)
            return 0;
        break;
    case MB_LOAD_MATCH_ERROR:
        if (p.kind != MB_LOAD_REQ_INIT) {
            t->res.errors[MB_LOAD_ERR_JSONRPC]++;
            mb_load_codes_add(&t->res.jsonrpc_codes, code, 1);
            t->res.replies++;
        }
        break;
    default:
        break;
    }
    if (p.kind == MB_LOAD_REQ_INIT) {
        if (m == MB_LOAD_MATCH_OK)
            init_done(t, c, msg, n);
        else
            conn_fail(t, c, MB_LOAD_ERR_HANDSHAKE, MB_LOAD_ERR_LOST);
        return c->gen == gen ? 0 : -1;
    }
    t->inflight_calls--;
    if (m == MB_LOAD_MATCH_OK) {
        record_ok(t, &p, now);
        if (t->e->o->mode == MB_LOAD_MODE_STAGES)
            c->iter_ok = 1;
    }
    after_call(t, c);
    return c->gen == gen ? 0 : -1;
}

/* ------------------------------------------------------------------ WebSocket */

static void ws_open(struct thr *t, struct conn *c)
{
    const struct mb_load_opts *o = t->e->o;
    t->res.conns_opened++;
    if (c->connecting) {
        c->connecting = 0;
        t->connecting--;
    }
    if (o->mode == MB_LOAD_MODE_IDLE) {
        if (o->ping) {
            c->state = C_PING;
            c->deadline = mb_time_mono_ns() + o->timeout_ns;
            if (send_ws_control(t, c, MB_WS_OP_PING, "mb", 2) != 0)
                conn_fail(t, c, MB_LOAD_ERR_CLOSED, MB_LOAD_ERR_LOST);
            return;
        }
        c->state = C_IDLE;
        c->deadline = 0;
        settle(t, c);
        return;
    }
    if (o->mode == MB_LOAD_MODE_STAGES) {
        uint64_t now = mb_time_mono_ns();
        c->state = C_READY;
        if (send_request(t, c, now, now) != 0)
            conn_fail(t, c, MB_LOAD_ERR_CLOSED, MB_LOAD_ERR_LOST);
        return;
    }
    if (o->init)
        send_init(t, c);
    else
        conn_ready(t, c);
}

static int ws_text(struct thr *t, struct conn *c, const struct mb_wsframe *f)
{
    if (f->opcode == MB_WS_OP_TEXT && f->fin && c->flen == 0)
        return on_message(t, c, (const char *)f->payload, (size_t)f->len);
    if (f->opcode == MB_WS_OP_TEXT && c->flen) {
        t->res.errors[MB_LOAD_ERR_BAD_REPLY]++; /* a new message inside a fragmented one */
        c->flen = 0;
    }
    if (f->opcode == MB_WS_OP_CONT && c->fcap == 0) {
        t->res.errors[MB_LOAD_ERR_BAD_REPLY]++; /* a continuation of nothing */
        return 0;
    }
    if (c->flen + f->len > MAX_MESSAGE || buf_reserve(&c->frag, &c->fcap, c->flen + f->len + 1)) {
        conn_fail(t, c, MB_LOAD_ERR_CLOSED, MB_LOAD_ERR_LOST);
        return -1;
    }
    memcpy(c->frag + c->flen, f->payload, (size_t)f->len);
    c->flen += (size_t)f->len;
    if (!f->fin)
        return 0;
    size_t n = c->flen;
    c->flen = 0;
    int rc = on_message(t, c, (const char *)c->frag, n);
    if (rc == 0) {
        free(c->frag);
        c->frag = NULL;
        c->fcap = 0;
    }
    return rc;
}

/* Consumes what it can of buf; returns the bytes consumed, or -1 when the
 * connection was closed. */
static long process_ws(struct thr *t, struct conn *c, uint8_t *buf, size_t len)
{
    size_t off = 0;
    uint32_t gen = c->gen;
    if (c->state == C_WS_HS) {
        const uint8_t *end = memmem(buf, len, "\r\n\r\n", 4);
        if (!end) {
            if (len > HANDSHAKE_MAX) {
                conn_fail(t, c, MB_LOAD_ERR_HANDSHAKE, MB_LOAD_ERR_LOST);
                return -1;
            }
            return 0;
        }
        size_t hl = (size_t)(end - buf) + 4;
        char proto[128];
        if (mb_wsframe_handshake_check((const char *)buf, hl, c->key, proto, sizeof(proto)) != 0) {
            conn_fail(t, c, MB_LOAD_ERR_HANDSHAKE, MB_LOAD_ERR_LOST);
            return -1;
        }
        off = hl;
        ws_open(t, c);
        if (c->gen != gen)
            return -1;
    }
    while (off < len) {
        struct mb_wsframe f;
        long r = mb_wsframe_parse(buf + off, len - off, &f);
        if (r == 0) {
            if (len - off > MAX_MESSAGE + 16) {
                conn_fail(t, c, MB_LOAD_ERR_CLOSED, MB_LOAD_ERR_LOST);
                return -1;
            }
            break;
        }
        if (r < 0) {
            t->res.errors[MB_LOAD_ERR_BAD_REPLY]++;
            conn_fail(t, c, MB_LOAD_ERR_CLOSED, MB_LOAD_ERR_LOST);
            return -1;
        }
        off += (size_t)r;
        if (f.masked) /* servers must not mask; read it anyway */
            mb_wsframe_unmask((uint8_t *)f.payload, (size_t)f.len, f.mask, 0);
        int rc = 0;
        switch (f.opcode) {
        case MB_WS_OP_TEXT:
        case MB_WS_OP_CONT:
            if (c->state == C_CLOSING)
                break; /* a late message while closing: ignore */
            rc = ws_text(t, c, &f);
            break;
        case MB_WS_OP_BINARY:
            t->res.errors[MB_LOAD_ERR_BAD_REPLY]++;
            break;
        case MB_WS_OP_PING:
            if (send_ws_control(t, c, MB_WS_OP_PONG, f.payload, (size_t)f.len) != 0) {
                conn_fail(t, c, MB_LOAD_ERR_CLOSED, MB_LOAD_ERR_LOST);
                rc = -1;
            }
            break;
        case MB_WS_OP_PONG:
            if (c->state == C_PING) {
                c->state = C_IDLE;
                c->deadline = 0;
                settle(t, c);
            }
            break;
        case MB_WS_OP_CLOSE:
            if (c->state == C_CLOSING)
                break; /* the server's answer; its EOF follows */
            conn_fail(t, c, MB_LOAD_ERR_CLOSED, MB_LOAD_ERR_LOST);
            rc = -1;
            break;
        default:
            t->res.errors[MB_LOAD_ERR_BAD_REPLY]++;
            conn_fail(t, c, MB_LOAD_ERR_CLOSED, MB_LOAD_ERR_LOST);
            rc = -1;
            break;
        }
        if (rc != 0 || c->gen != gen)
            return -1;
    }
    return (long)off;
}

/* ------------------------------------------------------------------ HTTP */

/* One complete response: match it to the oldest request in flight. */
static int http_response(struct thr *t, struct conn *c, const struct mb_load_http_resp *r,
                         const char *body, size_t blen)
{
    uint32_t gen = c->gen;
    if (c->fl.n == 0) {
        t->res.errors[MB_LOAD_ERR_BAD_REPLY]++; /* unsolicited */
        return 0;
    }
    struct mb_load_pending head = c->fl.e[0];
    int ok = r->status >= 200 && r->status < 300;
    if (head.kind == MB_LOAD_REQ_NOTIFY) {
        mb_load_inflight_take_oldest(&c->fl, NULL);
        if (!ok) {
            conn_fail(t, c, MB_LOAD_ERR_HANDSHAKE, MB_LOAD_ERR_LOST);
            return -1;
        }
        c->notify_due = 0;
        conn_ready(t, c);
        return c->gen == gen ? 0 : -1;
    }
    if (!ok) {
        mb_load_inflight_take_oldest(&c->fl, NULL);
        if (head.kind == MB_LOAD_REQ_INIT) {
            conn_fail(t, c, MB_LOAD_ERR_HANDSHAKE, MB_LOAD_ERR_LOST);
            return -1;
        }
        t->res.errors[MB_LOAD_ERR_HTTP]++;
        mb_load_codes_add(&t->res.http_codes, r->status, 1);
        t->inflight_calls--;
        if (r->status == 404 && c->session) {
            /* The session is gone (the spec's signal): start a new one on
             * a new connection; what else was in flight is lost. */
            t->res.errors[MB_LOAD_ERR_LOST] += mb_load_inflight_count(&c->fl, MB_LOAD_REQ_CALL);
            conn_close(t, c, 0);
            if (!stopping(t))
                pending_push(t, c, mb_time_mono_ns());
            return -1;
        }
        after_call(t, c);
        return c->gen == gen ? 0 : -1;
    }
    if (head.kind == MB_LOAD_REQ_INIT && r->has_session) {
        free(c->session);
        c->session = strdup(r->session_id);
    }
    if (r->sse) {
        size_t pos = 0, dlen;
        if (buf_reserve((uint8_t **)&t->sse, &t->ssecap, blen + 1)) {
            conn_fail(t, c, MB_LOAD_ERR_CLOSED, MB_LOAD_ERR_LOST);
            return -1;
        }
        while (mb_load_sse_next(body, blen, &pos, t->sse, t->ssecap, &dlen) == 1) {
            if (on_message(t, c, t->sse, dlen) != 0)
                return -1;
        }
    } else if (blen > 0) {
        if (on_message(t, c, body, blen) != 0)
            return -1;
    }
    /* The response is over: its request must have had its reply in it. */
    struct mb_load_pending left;
    if (mb_load_inflight_take(&c->fl, head.id, &left) == 0) {
        t->res.errors[MB_LOAD_ERR_BAD_REPLY]++;
        if (left.kind == MB_LOAD_REQ_INIT) {
            conn_fail(t, c, MB_LOAD_ERR_HANDSHAKE, MB_LOAD_ERR_LOST);
            return -1;
        }
        t->inflight_calls--;
        after_call(t, c);
    }
    return c->gen == gen ? 0 : -1;
}

static long process_http(struct thr *t, struct conn *c, uint8_t *buf, size_t len, int eof)
{
    size_t off = 0;
    uint32_t gen = c->gen;
    while (off < len) {
        struct mb_load_http_resp r;
        char *p = (char *)buf + off;
        size_t avail = len - off;
        long hl = mb_load_http_parse_head(p, avail, &r);
        if (hl == 0)
            break;
        if (hl < 0) {
            t->res.errors[MB_LOAD_ERR_BAD_REPLY]++;
            conn_fail(t, c, MB_LOAD_ERR_CLOSED, MB_LOAD_ERR_LOST);
            return -1;
        }
        size_t total, blen = 0;
        char *body = p + hl;
        if (mb_load_http_bodyless(r.status) || r.content_length == 0) {
            total = (size_t)hl;
        } else if (r.chunked) {
            long used = mb_load_http_dechunk(body, avail - (size_t)hl, &blen);
            if (used == 0)
                break;
            if (used < 0) {
                t->res.errors[MB_LOAD_ERR_BAD_REPLY]++;
                conn_fail(t, c, MB_LOAD_ERR_CLOSED, MB_LOAD_ERR_LOST);
                return -1;
            }
            total = (size_t)hl + (size_t)used;
        } else if (r.content_length > 0) {
            if (avail - (size_t)hl < (size_t)r.content_length)
                break;
            blen = (size_t)r.content_length;
            total = (size_t)hl + blen;
        } else {
            if (!eof) /* the body ends when the server closes */
                break;
            blen = avail - (size_t)hl;
            total = avail;
            r.close = 1;
        }
        off += total;
        if (r.status < 200)
            continue; /* an interim response */
        c->last_resp = (uint8_t)r.close;
        if (http_response(t, c, &r, body, blen) != 0 || c->gen != gen)
            return -1;
        if (r.close) {
            /* A normal end of a keep-alive connection: open another at once.
             * Pipelined requests behind this response are lost. */
            t->res.errors[MB_LOAD_ERR_LOST] += mb_load_inflight_count(&c->fl, MB_LOAD_REQ_CALL);
            conn_close_ex(t, c, 0,
                          c->session && (c->state == C_READY || c->state == C_INIT_NOTIFY));
            if (!stopping(t))
                pending_push(t, c, mb_time_mono_ns());
            return -1;
        }
    }
    if (len - off > MAX_MESSAGE) {
        t->res.errors[MB_LOAD_ERR_BAD_REPLY]++;
        conn_fail(t, c, MB_LOAD_ERR_CLOSED, MB_LOAD_ERR_LOST);
        return -1;
    }
    return (long)off;
}

/* ------------------------------------------------------------------ events */

static void on_eof(struct thr *t, struct conn *c)
{
    if (c->state == C_CLOSING) {
        conn_close(t, c, 0);
        vu_end(t, c, 0);
        return;
    }
    if (t->e->o->transport == MB_LOAD_HTTP && c->rlen && c->state != C_CONNECTING) {
        uint32_t gen = c->gen;
        process_http(t, c, c->rbuf, c->rlen, 1);
        if (c->gen != gen)
            return;
    }
    conn_fail(t, c, MB_LOAD_ERR_CLOSED, MB_LOAD_ERR_LOST);
}

static void on_readable(struct thr *t, struct conn *c)
{
    uint8_t *buf;
    ssize_t n;
    if (c->rlen == 0) {
        buf = t->scratch;
        n = recv(c->fd, buf, SCRATCH_SIZE, 0);
    } else {
        if (buf_reserve(&c->rbuf, &c->rcap, c->rlen + SCRATCH_SIZE / 4)) {
            conn_fail(t, c, MB_LOAD_ERR_CLOSED, MB_LOAD_ERR_LOST);
            return;
        }
        buf = c->rbuf;
        n = recv(c->fd, buf + c->rlen, c->rcap - c->rlen, 0);
    }
    if (n == 0) {
        on_eof(t, c);
        return;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        if (c->state == C_CLOSING) {
            conn_close(t, c, 0);
            vu_end(t, c, 0);
            return;
        }
        conn_fail(t, c, MB_LOAD_ERR_CLOSED, MB_LOAD_ERR_LOST);
        return;
    }
    size_t len = buf == t->scratch ? (size_t)n : c->rlen + (size_t)n;
    /* The requests this read's replies trigger leave in one send. */
    t->cork = c;
    long used = t->e->o->transport == MB_LOAD_WS ? process_ws(t, c, buf, len)
                                                 : process_http(t, c, buf, len, 0);
    t->cork = NULL;
    if (used < 0)
        return; /* closed: its buffers are gone */
    if (c->wlen && !c->want_out && conn_flush(t, c) != 0) {
        conn_fail(t, c, MB_LOAD_ERR_CLOSED, MB_LOAD_ERR_LOST);
        return;
    }
    size_t left = len - (size_t)used;
    if (buf == t->scratch) {
        if (left) {
            if (buf_reserve(&c->rbuf, &c->rcap, left)) {
                conn_fail(t, c, MB_LOAD_ERR_CLOSED, MB_LOAD_ERR_LOST);
                return;
            }
            memcpy(c->rbuf, buf + used, left);
        }
    } else if (used) {
        memmove(c->rbuf, c->rbuf + used, left);
    }
    c->rlen = left;
    if (!left && c->rcap > SCRATCH_SIZE) {
        free(c->rbuf);
        c->rbuf = NULL;
        c->rcap = 0;
    }
}

static void on_connected(struct thr *t, struct conn *c)
{
    const struct mb_load_opts *o = t->e->o;
    if (o->transport == MB_LOAD_HTTP) {
        set_events(t, c, 0);
        t->res.conns_opened++;
        if (c->connecting) {
            c->connecting = 0;
            t->connecting--;
        }
        if (o->init && !c->session)
            send_init(t, c);
        else if (o->init && c->notify_due)
            send_notify(t, c);
        else
            conn_ready(t, c);
        return;
    }
    mb_wsframe_make_key(c->key);
    char *req = (char *)t->out;
    int n = mb_wsframe_handshake_request(req, t->outcap, o->hostport, o->path, c->key,
                                         o->subprotocol[0] ? o->subprotocol : NULL);
    size_t xl = strlen(o->extra_headers);
    if (n < 0 || (size_t)n + xl >= t->outcap) {
        conn_fail(t, c, MB_LOAD_ERR_HANDSHAKE, MB_LOAD_ERR_LOST);
        return;
    }
    /* splice the extra headers in before the blank line */
    memcpy(req + n - 2, o->extra_headers, xl);
    memcpy(req + n - 2 + xl, "\r\n", 2);
    set_events(t, c, 0);
    c->state = C_WS_HS;
    c->deadline = mb_time_mono_ns() + o->timeout_ns;
    if (conn_write(t, c, req, (size_t)n + xl) != 0)
        conn_fail(t, c, MB_LOAD_ERR_CONNECT, MB_LOAD_ERR_LOST);
}

static void on_event(struct thr *t, struct conn *c, uint32_t ev)
{
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) == -1)
            err = errno;
        if (err) {
            conn_fail(t, c, MB_LOAD_ERR_CONNECT, MB_LOAD_ERR_LOST);
            return;
        }
        if (ev & (EPOLLOUT | EPOLLIN))
            on_connected(t, c);
        return;
    }
    uint32_t gen = c->gen;
    if ((ev & EPOLLOUT) && c->wlen) {
        if (conn_flush(t, c) != 0) {
            conn_fail(t, c, MB_LOAD_ERR_CLOSED, MB_LOAD_ERR_LOST);
            return;
        }
    }
    if (c->gen == gen && c->fd >= 0 && (ev & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)))
        on_readable(t, c);
}

/* Opens a socket and starts connecting. */
static void conn_begin(struct thr *t, struct conn *c, uint64_t now)
{
    struct engine *e = t->e;
    const struct mb_load_opts *o = e->o;
    c->t_start = now;
    c->next_id = 1;
    c->iter_ok = 0;
    int fd = socket(e->dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        static atomic_int told;
        if (!atomic_exchange(&told, 1))
            fprintf(stderr, "mcp-bridge-load: socket: %s (further failures counted as connect)\n",
                    strerror(errno));
        conn_fail(t, c, MB_LOAD_ERR_CONNECT, MB_LOAD_ERR_LOST);
        return;
    }
    c->fd = fd;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (o->nsources) {
        const struct sockaddr_storage *src = &o->sources[t->src_rr++ % (uint32_t)o->nsources];
        /* Let connect() pick the port for the whole 4-tuple, so each source
         * address offers the full ephemeral range per destination. */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        socklen_t sl =
            src->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        if (bind(fd, (const struct sockaddr *)src, sl) == -1) {
            conn_fail(t, c, MB_LOAD_ERR_CONNECT, MB_LOAD_ERR_LOST);
            return;
        }
    }
    c->state = C_CONNECTING;
    c->connecting = 1;
    t->connecting++;
    c->deadline = now + o->timeout_ns;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
        conn_fail(t, c, MB_LOAD_ERR_CONNECT, MB_LOAD_ERR_LOST);
        return;
    }
    if (connect(fd, (const struct sockaddr *)&e->dst, e->dstlen) == -1 && errno != EINPROGRESS) {
        conn_fail(t, c, MB_LOAD_ERR_CONNECT, MB_LOAD_ERR_LOST);
        return;
    }
}

/* ------------------------------------------------------------------ the loop */

static void start_pending(struct thr *t, uint64_t now)
{
    while (t->pend_head && t->connecting < t->e->o->connect_burst &&
           t->pend_head->not_before <= now) {
        struct conn *c = t->pend_head;
        t->pend_head = c->next_pending;
        if (!t->pend_head)
            t->pend_tail = NULL;
        c->state = C_OFF;
        conn_begin(t, c, now);
    }
}

static void sweep(struct thr *t, uint64_t now)
{
    for (uint32_t i = 0; i < t->nconns; i++) {
        struct conn *c = &t->conns[i];
        if (!c->deadline || now < c->deadline || c->fd < 0)
            continue;
        switch (c->state) {
        case C_CONNECTING:
            conn_fail(t, c, MB_LOAD_ERR_CONNECT, MB_LOAD_ERR_LOST);
            break;
        case C_WS_HS:
        case C_INIT:
        case C_INIT_NOTIFY:
            conn_fail(t, c, MB_LOAD_ERR_HANDSHAKE, MB_LOAD_ERR_LOST);
            break;
        case C_PING:
            conn_fail(t, c, MB_LOAD_ERR_TIMEOUT, MB_LOAD_ERR_LOST);
            break;
        case C_CLOSING:
            conn_close(t, c, 1);
            vu_end(t, c, 0);
            break;
        default:
            conn_fail(t, c, -1, MB_LOAD_ERR_TIMEOUT);
            break;
        }
    }
}

/* Open loop: send every request whose time has come, on free connections. */
static void dispatch(struct thr *t, uint64_t now)
{
    if (now < t->sched_start)
        return;
    uint64_t me = measure_end(t->e);
    uint64_t until = me && now > me ? me : now;
    uint64_t due = (uint64_t)((double)(until - t->sched_start) / t->interval) + 1;
    while (t->issued < due && !stopping(t)) {
        struct conn *c = free_pop(t);
        if (!c)
            return;
        uint64_t intended = t->sched_start + (uint64_t)((double)t->issued * t->interval);
        t->issued++;
        if (send_request(t, c, intended, now) != 0) {
            conn_fail(t, c, MB_LOAD_ERR_CLOSED, MB_LOAD_ERR_LOST);
            continue;
        }
        if (mb_load_inflight_count(&c->fl, MB_LOAD_REQ_CALL) < t->e->o->pipeline)
            free_push(t, c);
    }
}

static void stage_tick(struct thr *t, uint64_t now)
{
    struct engine *e = t->e;
    uint64_t t0 = engine_t0(e);
    uint32_t total = mb_load_stages_vus(&e->o->stages, now - t0);
    t->share = mb_load_stages_share(total, e->nworkers, t->worker);
    if (stopping(t))
        return;
    for (uint32_t i = 0; i < t->share && i < t->nconns; i++) {
        struct conn *c = &t->conns[i];
        if (c->vu_busy)
            continue;
        c->vu_busy = 1;
        uint32_t v = atomic_fetch_add(&e->vus, 1) + 1;
        uint32_t m = atomic_load(&e->vus_max);
        while (v > m && !atomic_compare_exchange_weak(&e->vus_max, &m, v))
            ;
        pending_push(t, c, now);
    }
}

/* Sets t0 once every connection has opened or failed (or the opening time
 * is up); the first thread to see it wins. */
static void check_start(struct thr *t, uint64_t now)
{
    struct engine *e = t->e;
    if (engine_t0(e) == 0 && (atomic_load(&e->settled) >= e->conns || now >= e->open_deadline)) {
        uint64_t zero = 0;
        if (atomic_compare_exchange_strong(&e->t0, &zero, now) && e->o->mode == MB_LOAD_MODE_IDLE)
            fprintf(stderr,
                    "mcp-bridge-load: idle: process %d: %u connections settled, holding for "
                    "%.1f s\n",
                    e->proc, atomic_load(&e->settled), (double)e->o->hold_ns / 1e9);
    }
    uint64_t t0 = engine_t0(e);
    if (!t0 || t->started)
        return;
    t->started = 1;
    if (e->o->mode == MB_LOAD_MODE_OPEN) {
        t->sched_start = t0 + (uint64_t)(t->interval * t->worker / e->nworkers);
        for (uint32_t i = 0; i < t->nconns; i++)
            free_push(t, &t->conns[i]);
    } else if (e->o->mode == MB_LOAD_MODE_CLOSED) {
        for (uint32_t i = 0; i < t->nconns; i++)
            if (t->conns[i].state == C_READY)
                fill_pipeline(t, &t->conns[i]);
    }
}

static int thread_done(struct thr *t, uint64_t now)
{
    struct engine *e = t->e;
    if (!t->started)
        return 0;
    uint64_t me = measure_end(e);
    switch (e->o->mode) {
    case MB_LOAD_MODE_STAGES:
        if (now < me)
            return 0;
        for (uint32_t i = 0; i < t->nconns; i++)
            if (t->conns[i].vu_busy)
                return 0;
        return 1;
    case MB_LOAD_MODE_IDLE:
        return now >= me;
    default:
        if (me && now >= me)
            return 1;
        return e->o->requests && atomic_load(&e->claimed) >= e->requests && t->inflight_calls == 0;
    }
}

static int loop_wait(struct thr *t, struct epoll_event *evs, int nev, uint64_t now, uint64_t wake)
{
    uint64_t d = wake > now ? wake - now : 0;
    struct timespec ts = {.tv_sec = (time_t)(d / NS_PER_S), .tv_nsec = (long)(d % NS_PER_S)};
    static atomic_int no_pwait2;
    if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
        int n = epoll_pwait2(t->epfd, evs, nev, &ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        atomic_store(&no_pwait2, 1);
    }
    return epoll_wait(t->epfd, evs, nev, (int)((d + NS_PER_MS - 1) / NS_PER_MS));
}

static void thread_finish(struct thr *t, uint64_t now)
{
    static const uint8_t going_away[2] = {0x03, 0xe9}; /* 1001 */
    const struct mb_load_opts *o = t->e->o;
    for (uint32_t i = 0; i < t->nconns; i++) {
        struct conn *c = &t->conns[i];
        if (c->state == C_IDLE)
            t->res.idle_open++;
        t->res.inflight_end += mb_load_inflight_count(&c->fl, MB_LOAD_REQ_CALL);
        if (c->fd >= 0 && o->transport == MB_LOAD_WS &&
            (c->state == C_READY || c->state == C_IDLE || c->state == C_INIT))
            send_ws_control(t, c, MB_WS_OP_CLOSE, going_away, sizeof(going_away));
        conn_close(t, c, 0);
    }
    if (o->mode == MB_LOAD_MODE_OPEN && t->started) {
        uint64_t me = measure_end(t->e);
        uint64_t until = me && now > me ? me : now;
        if (until >= t->sched_start) {
            uint64_t due = (uint64_t)((double)(until - t->sched_start) / t->interval) + 1;
            t->res.backlog_end = due > t->issued ? due - t->issued : 0;
        }
    }
}

static void *thread_main(void *arg)
{
    struct thr *t = arg;
    struct engine *e = t->e;
    struct epoll_event evs[256];
    uint64_t now = mb_time_mono_ns();
    if (e->o->mode != MB_LOAD_MODE_STAGES)
        for (uint32_t i = 0; i < t->nconns; i++)
            pending_push(t, &t->conns[i], now);
    for (;;) {
        now = mb_time_mono_ns();
        if (stopping(t)) {
            atomic_store(&e->interrupted, 1);
            break;
        }
        if (e->o->mode != MB_LOAD_MODE_STAGES)
            check_start(t, now);
        if (thread_done(t, now) || now >= hard_deadline(e))
            break;
        start_pending(t, now);
        if (e->o->mode == MB_LOAD_MODE_OPEN && t->started)
            dispatch(t, now);
        if (e->o->mode == MB_LOAD_MODE_STAGES && now >= t->next_tick) {
            stage_tick(t, now);
            t->next_tick = now + TICK_INTERVAL;
        }
        if (now >= t->next_sweep) {
            sweep(t, now);
            t->next_sweep = now + SWEEP_INTERVAL;
        }
        uint64_t wake = now + MAX_WAIT;
        if (t->next_sweep < wake)
            wake = t->next_sweep;
        if (e->o->mode == MB_LOAD_MODE_OPEN && t->started && t->nfree) {
            uint64_t next = t->sched_start + (uint64_t)((double)t->issued * t->interval);
            if (next < wake)
                wake = next;
        }
        if (t->pend_head && t->connecting < e->o->connect_burst && t->pend_head->not_before < wake)
            wake = t->pend_head->not_before;
        uint64_t me = measure_end(e);
        if (me && me > now && me < wake)
            wake = me;
        int n = loop_wait(t, evs, 256, now, wake);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "mcp-bridge-load: epoll_wait: %s\n", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++)
            on_event(t, evs[i].data.ptr, evs[i].events);
    }
    thread_finish(t, mb_time_mono_ns());
    return NULL;
}

/* ------------------------------------------------------------------ setup */

static int resolve(struct engine *e, char *err, size_t errlen)
{
    const struct mb_load_opts *o = e->o;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    int rc = getaddrinfo(o->host, o->port, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "%s: cannot resolve %s: %s", o->url, o->host, gai_strerror(rc));
        return -1;
    }
    memcpy(&e->dst, ai->ai_addr, ai->ai_addrlen);
    e->dstlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    for (int i = 0; i < o->nsources; i++) {
        if (o->sources[i].ss_family != e->dst.ss_family) {
            snprintf(err, errlen, "--source-ips: address %d is not of the target's family", i + 1);
            return -1;
        }
    }
    return 0;
}

static void thr_free(struct thr *t)
{
    for (uint32_t i = 0; t->conns && i < t->nconns; i++)
        mb_load_inflight_free(&t->conns[i].fl);
    free(t->conns);
    free(t->freestk);
    free(t->scratch);
    free(t->tmp);
    free(t->out);
    free(t->sse);
    if (t->epfd >= 0)
        close(t->epfd);
}

static int thr_setup(struct engine *e, struct thr *t, int index, uint32_t nconns, char *err,
                     size_t errlen)
{
    const struct mb_load_opts *o = e->o;
    memset(t, 0, sizeof(*t));
    t->e = e;
    t->index = index;
    t->worker = (uint32_t)(e->proc * e->nthreads + index);
    t->epfd = epoll_create1(EPOLL_CLOEXEC);
    t->nconns = nconns;
    t->rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)t->worker << 32) ^ mb_time_mono_ns();
    if (t->rng == 0)
        t->rng = 1;
    t->tmpcap = o->req_prefix_len + o->req_suffix_len + 1024;
    t->outcap = t->tmpcap + sizeof(o->extra_headers) + 2048;
    t->conns = calloc(nconns ? nconns : 1, sizeof(*t->conns));
    t->freestk = calloc(nconns ? nconns : 1, sizeof(*t->freestk));
    t->scratch = malloc(SCRATCH_SIZE);
    t->tmp = malloc(t->tmpcap);
    t->out = malloc(t->outcap);
    if (t->epfd == -1 || !t->conns || !t->freestk || !t->scratch || !t->tmp || !t->out) {
        snprintf(err, errlen, "thread setup: %s",
                 t->epfd == -1 ? strerror(errno) : "out of memory");
        return -1;
    }
    for (uint32_t i = 0; i < nconns; i++) {
        struct conn *c = &t->conns[i];
        c->fd = -1;
        c->idx = i;
        if (mb_load_inflight_init(&c->fl, o->pipeline + 2) != 0) {
            snprintf(err, errlen, "out of memory for %u connections", nconns);
            return -1;
        }
    }
    if (o->mode == MB_LOAD_MODE_OPEN)
        t->interval = 1e9 / (o->rate / (double)e->nworkers);
    mb_load_result_init(&t->res);
    return 0;
}

int mb_load_engine_run(const struct mb_load_opts *o, int proc_index, volatile sig_atomic_t *stop,
                       struct mb_load_result *out, char *err, size_t errlen)
{
    int rc = -1, nstarted = 0;
    struct engine *e = calloc(1, sizeof(*e));
    struct thr *thr = NULL;
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    e->o = o;
    e->stop = stop;
    e->proc = proc_index;
    e->nthreads = o->threads;
    e->nworkers = (uint32_t)(o->threads * o->processes);
    if (resolve(e, err, errlen) != 0)
        goto out;
    uint32_t P = (uint32_t)o->processes, p = (uint32_t)proc_index;
    if (o->mode == MB_LOAD_MODE_IDLE)
        e->conns = mb_load_stages_share(o->idle, P, p);
    else if (o->mode != MB_LOAD_MODE_STAGES)
        e->conns = mb_load_stages_share(o->connections, P, p);
    if (o->requests)
        e->requests = o->requests / P + (p < o->requests % P ? 1 : 0);
    thr = calloc((size_t)o->threads, sizeof(*thr));
    if (!thr) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (int i = 0; i < o->threads; i++)
        thr[i].epfd = -1;
    for (int i = 0; i < o->threads; i++) {
        uint32_t n;
        if (o->mode == MB_LOAD_MODE_STAGES)
            n = mb_load_stages_share(mb_load_stages_max(&o->stages), e->nworkers,
                                     (uint32_t)(proc_index * o->threads + i));
        else
            n = mb_load_stages_share(e->conns, (uint32_t)o->threads, (uint32_t)i);
        if (thr_setup(e, &thr[i], i, n, err, errlen) != 0)
            goto out;
    }
    e->start = mb_time_mono_ns();
    e->open_deadline = e->start + o->open_timeout_ns;
    if (o->mode == MB_LOAD_MODE_STAGES) {
        atomic_store(&e->t0, e->start);
        for (int i = 0; i < o->threads; i++)
            thr[i].started = 1;
    }
    for (; nstarted < o->threads; nstarted++) {
        int prc = pthread_create(&thr[nstarted].tid, NULL, thread_main, &thr[nstarted]);
        if (prc != 0) {
            snprintf(err, errlen, "pthread_create: %s", strerror(prc));
            *stop = 1; /* end the threads already running */
            goto out;
        }
    }
    for (int i = 0; i < nstarted; i++)
        pthread_join(thr[i].tid, NULL);
    nstarted = 0;
    uint64_t end = mb_time_mono_ns();
    mb_load_result_init(out);
    for (int i = 0; i < o->threads; i++)
        mb_load_result_merge(out, &thr[i].res);
    out->interrupted = atomic_load(&e->interrupted);
    out->max_vus = atomic_load(&e->vus_max);
    uint64_t t0 = engine_t0(e);
    if (o->mode == MB_LOAD_MODE_IDLE) {
        out->open_ns = (t0 ? t0 : end) - e->start;
        out->window_ns = t0 && end > t0 ? end - t0 : 0;
    } else if (o->mode == MB_LOAD_MODE_STAGES) {
        out->window_ns = end - t0;
        out->rps = out->window_ns ? (double)out->iterations * 1e9 / (double)out->window_ns : 0;
    } else if (t0) {
        uint64_t ms = measure_start(e), me = measure_end(e);
        uint64_t last = atomic_load(&e->last_reply);
        uint64_t stop_at = me && end > me ? me : end;
        if (o->requests && (!me || last < me) && atomic_load(&e->claimed) >= e->requests)
            stop_at = last; /* done when the last reply came */
        out->window_ns = stop_at > ms ? stop_at - ms : 0;
        out->rps = out->window_ns ? (double)out->requests * 1e9 / (double)out->window_ns : 0;
    }
    rc = 0;
out:
    for (int i = 0; i < nstarted; i++)
        pthread_join(thr[i].tid, NULL);
    for (int i = 0; thr && i < o->threads; i++)
        thr_free(&thr[i]);
    free(thr);
    free(e);
    return rc;
}
