/*
 * worker/router.c — backends, their handshakes, and the routing of messages
 * between clients and backends (see router.h for the rules and error codes).
 *
 * Requests at backends ("pending"): each has the gateway id it was sent
 * with (worker/idmap.h), sits in its backend's list in send order (all
 * requests to one backend share one timeout, so that order is also deadline
 * order and one ev_timer per backend serves them all), and, when a client
 * owns it, in that client's list (for cancellation and disconnects). A
 * request to a backend that is not ready keeps its message until it can be
 * sent. Kinds: FORWARD (a client request, the answer goes back spliced),
 * PART (one page of a fanned-out list), INIT (the gateway's initialize),
 * IGNORE (logging/setLevel fan-out: the answer is dropped).
 *
 * Accounting (metrics.h): a request the router takes carries a struct acct
 * from the moment it is taken (REQUESTS_IN_FLIGHT +1) until its reply is
 * queued (counted, timed from the message's arrival, access-logged with the
 * backend that answered) or it is abandoned (client gone or cancelled: the
 * gauge only). FORWARD requests, fan-outs (one per list request, not per
 * part) and held initializes carry one.
 *
 * Hot path: a routed request costs the client parse (mcp.c), one raw scan
 * for the name and progress token, and one splice; a response costs one
 * validation pass, one member scan and one splice. cJSON is used only for
 * lists, the handshake, and requests whose keys are written with escapes.
 */
#include "worker/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "common/log.h"
#include "common/time.h"
#include "conf/conf.h"
#include "shm/cache.h"
#include "worker/aggregate.h"
#include "worker/cache_flight.h"
#include "worker/cache_keys.h"
#include "worker/conn.h"
#include "worker/idmap.h"
#include "worker/jsonscan.h"
#include "worker/mcp.h"
#include "worker/metrics_backends.h"
#include "worker/metrics.h"
#include "worker/ratelimiter.h"
#include "worker/upstream.h"
#include "worker/worker.h"

#define LIT(b, s) mb_buf_append((b), (s), sizeof(s) - 1)

/* The protocol version the gateway asks its backends for. */
#define UPSTREAM_VERSION "2025-11-25"

enum backend_state { B_STARTING, B_READY, B_DOWN, B_CLOSED };
enum pending_kind { P_FORWARD, P_PART, P_INIT, P_IGNORE };

/* The longest an initialize waits for backends still starting (mcp.h). */
#define INIT_HOLD_MAX_MS 5000

struct fanout;

/*
 * Accounting of a request the router takes (metrics.h): when its reply is
 * queued, one entry in the request matrix, the latency histograms and the
 * access log, timed from the message's arrival; REQUESTS_IN_FLIGHT is +1
 * from acct_start until the reply or until the request is abandoned (the
 * client left or cancelled it).
 */
struct acct {
    bool on;         /* started and not ended */
    int method;      /* enum mb_method */
    uint64_t t0_ns;  /* arrival (mb_time_mono_ns) */
    size_t bytes_in; /* the request message */
    char *tool;      /* tools/call params.name, kept only for the access log */
};

struct mb_pending {
    uint64_t gid;
    enum pending_kind kind;
    bool sent;
    struct backend *b;
    struct mb_pending *bprev, *bnext;
    struct mb_conn *client; /* NULL: nobody waits (INIT, IGNORE, or the client left) */
    struct mb_pending *cprev, *cnext;
    uint64_t deadline_ms;
    char *msg; /* the upstream message while not sent */
    size_t msg_len;
    char *cid; /* the client's raw id: cid_inline when it fits */
    size_t cid_len;
    char cid_inline[24];
    char *ctok; /* the client's raw progress token, or NULL */
    size_t ctok_len;
    struct fanout *fan; /* PART */
    /* Caches (see "caches" below). parked: waits for a fetch of the same
     * thing (single flight) and is not sent unless that fetch fails. */
    bool parked;
    bool cache_store;         /* FORWARD: store a cacheable result */
    bool cache_private;       /* ... also under the caller's scope (the tool is cacheable) */
    struct mb_flight *flight; /* FORWARD: the flight this request leads */
    struct mb_cache_key kpriv, kpub;
    bool uri_prefix;     /* FORWARD resources/read with prefixes: contents[].uri get them */
    struct acct acct;    /* FORWARD */
    uint64_t bs_sent_ns; /* backend stats: when sent (metrics_backends.h) */
    int bs_outcome;      /* ... and the outcome, MB_BACKEND_OUTCOME_NONE until known */
};

struct fanout {
    struct mb_router *r;
    struct mb_conn *client; /* NULL once it left or cancelled */
    char *cid;
    size_t cid_len;
    struct mb_merge merge;
    size_t outstanding; /* parts not answered */
    size_t asked, answered;
    struct mb_flight **lead; /* per backend: the discovery flight it leads, or NULL */
    bool memo_ok;            /* every part so far came straight from the discovery cache */
    struct mb_buf memo_in;   /* ... and these were the cached writes (see list_memo) */
    struct acct acct;
};

/* An initialize whose reply waits for backends still starting (mcp.h). */
struct held_init {
    struct held_init *next;
    struct mb_conn *client;
    uint64_t deadline_ms;
    struct acct acct;
    size_t id_len;
    char id[]; /* the client's raw id */
};

/* A server-to-client request forwarded to a client. */
struct mb_s2c {
    uint64_t n; /* the client sees the id "mb-s2c-N" */
    struct backend *b;
    struct mb_conn *client;
    struct mb_s2c *next; /* in the client's list */
    size_t raw_len;
    char raw_id[]; /* the backend's own id */
};

struct backend {
    struct mb_router *r;
    size_t index;
    const struct mb_conf_backend *conf;
    struct mb_upstream up;
    enum backend_state state;
    char why[160]; /* why it is not ready */
    cJSON *caps;   /* the capabilities it announced */
    struct mb_pending *head, *tail;
    ev_timer timer;
    cJSON *learned[MB_LIST_KINDS]; /* names it listed last (routing without prefixes) */
    uint64_t confhash;             /* of its configuration: part of its cache keys */
    bool was_ready;                /* it was READY before: a reconnection invalidates */
    cJSON *annotated;              /* tools it declared readOnly + idempotent; NULL unknown */
    struct mb_cache_key dkey[MB_LIST_KINDS]; /* its discovery cache keys, once computed */
    unsigned dkey_have;                      /* bit k: dkey[k] is computed */
    uint64_t ready_seq;                      /* r->ready_seq when it last became ready */
    int bstat;                               /* its backend stats record, -1 none */
};

/*
 * The last merged list of each kind, memoized. A list request answered from
 * the discovery cache used to parse every backend's cached list with cJSON,
 * merge, prefix and print it again: ~250,000 instructions per tools/list
 * for the test server's seven tools, almost all of a request's cost. The
 * merged body is a function of which backends are asked, the bytes of
 * their cached lists, and the configuration; its side effects (learned
 * names, annotations) are a function of the same bytes. So the memo keeps
 * the inputs (per asked backend: its index and which cache write its list
 * came from, mb_cache_stamp) next to the body, and a request for which
 * every one of those writes is still the live value (mb_cache_same: a
 * version check, without copying and re-hashing the ~1 KB list), for
 * exactly the same backends, gets the body with its id spliced in. The
 * cache is still consulted every time (TTL, invalidation and other workers'
 * writes behave as before); only the parse/merge/print is skipped. epoch
 * guards the side effects: whatever else changes learned names or
 * annotations bumps r->list_epoch and so retires the memo.
 */
struct list_memo {
    bool valid;
    uint64_t epoch;
    struct mb_buf in;   /* per asked backend: size_t index, struct mb_cache_stamp */
    struct mb_buf body; /* the merged result object */
};

struct mb_router {
    struct mb_worker *w;
    const struct mb_conf *conf;
    struct backend *b;
    size_t n;
    const char **names;
    bool prefix;
    struct mb_idmap ids;
    uint64_t s2c_next;
    struct mb_buf out;            /* scratch for messages being built */
    bool disc_on, resp_on;        /* caching.* and the region has the cache */
    struct mb_flights flights;    /* single flight (cache_flight.h) */
    ev_timer poll;                /* while fetches of other workers are awaited */
    struct mb_buf cval;           /* scratch: a value copied out of a cache */
    struct mb_buf canon;          /* scratch: canonical arguments of a response key */
    struct mb_cache_stamp cstamp; /* the cache write cval came from */
    uint64_t list_epoch;          /* bumped when learned names or annotations change */
    struct list_memo memo[MB_LIST_KINDS];
    uint64_t ready_seq;     /* +1 each time a backend becomes ready */
    struct held_init *held; /* initialize replies waiting, oldest (first deadline) first */
    ev_timer held_timer;
    bool closed; /* mb_router_close ran: no timer is armed again */
    /* Freed pendings kept for reuse (a calloc and a free per routed request
     * otherwise), at most PENDING_SPARE_MAX; linked through bnext. */
    struct mb_pending *spare;
    size_t nspare;
};

#define PENDING_SPARE_MAX 64

static uint64_t now_ms(const struct mb_router *r)
{
    return mb_worker_now_ms(r->w);
}

/* Returns true when the message (n pieces) was queued. */
static bool send_to_client_v(struct mb_conn *c, const struct iovec *v, size_t n)
{
    if (c == NULL || c->closing)
        return false;
    if (mb_conn_enqueuev(c, v, n) != 0) {
        mb_log_error("out of memory queueing a reply: closing the connection");
        mb_conn_close(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
        return false;
    }
    mb_conn_touch(c);
    return true;
}

/* Returns true when msg was queued. */
static bool send_to_client(struct mb_conn *c, const char *msg, size_t len)
{
    struct iovec v = {(void *)msg, len};
    return send_to_client_v(c, &v, 1);
}

/* A request from client c (bytes_in bytes, res from mb_metrics_note) is
 * taken: it is in flight until acct_end. */
static void acct_start(struct mb_router *r, struct acct *a, struct mb_conn *c, size_t bytes_in,
                       const struct mb_mcp_outcome *res)
{
    a->on = true;
    a->method = res->method;
    a->t0_ns = c->session.arrival_ns ? c->session.arrival_ns : mb_time_mono_ns();
    a->bytes_in = bytes_in;
    a->tool = NULL;
    if (r->w->accesslog != NULL && res->tool[0] != '\0')
        a->tool = strdup(res->tool); /* out of memory: logged without it */
    mb_worker_count(r->w, MB_CTR_REQUESTS_IN_FLIGHT, 1);
}

/* The request is over: answered with bytes_out bytes queued to c (counted,
 * error = its JSON-RPC error code or 0, b = the backend that answered or
 * failed it, NULL for the gateway), or abandoned (answered false: only the
 * gauge moves). */
static void acct_end(struct mb_router *r, struct acct *a, struct mb_conn *c, bool answered,
                     size_t bytes_out, int error, const struct backend *b)
{
    if (!a->on)
        return;
    struct mb_worker *w = r->w;
    a->on = false;
    mb_worker_count(w, MB_CTR_REQUESTS_IN_FLIGHT, -1);
    if (answered) {
        struct mb_mcp_outcome res;
        uint64_t ns = mb_time_mono_ns() - a->t0_ns;
        res.kind = MB_JSONRPC_REQUEST;
        res.replied = true;
        res.error = error;
        res.method = a->method;
        if (w->accesslog != NULL) /* the names' only reader */
            mb_metrics_set_names(&res, mb_counters_method_name((enum mb_method)a->method),
                                 a->tool ? a->tool : "");
        else
            res.method_name[0] = res.tool[0] = '\0';
        res.backend = b ? b->conf->name : NULL;
        res.backend_stat = b ? b->bstat + 1 : 0; /* bstat -1: no record, "gateway" */
        mb_counters_observe(w->shm, w->index, MB_HIST_REQUEST_DURATION, ns);
        mb_metrics_request_done(w, c, &res, a->bytes_in, bytes_out, ns);
    }
    free(a->tool);
    a->tool = NULL;
}

/* Queues the reply of a request (n pieces) to its client and accounts for it. */
static void answer_v(struct mb_router *r, struct mb_conn *c, struct acct *a, const struct iovec *v,
                     size_t n, int error, const struct backend *b)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += v[i].iov_len;
    bool queued = send_to_client_v(c, v, n);
    acct_end(r, a, c, queued, len, error, b);
}

/* Queues the reply msg of a request to its client and accounts for it. */
static void answer(struct mb_router *r, struct mb_conn *c, struct acct *a, const char *msg,
                   size_t len, int error, const struct backend *b)
{
    struct iovec v = {(void *)msg, len};
    answer_v(r, c, a, &v, 1, error, b);
}

/* A resources/read result with every contents[].uri made "<backend>+<uri>"
 * (DESIGN §4: the client sees prefixed URIs, as resources/list shows them).
 * Returns malloc'd text, or NULL when nothing was changed or memory ran out
 * (the result then goes out as the backend sent it). */
static char *prefix_contents(const struct backend *b, const char *result, size_t len)
{
    cJSON *res = cJSON_ParseWithLength(result, len), *item;
    struct mb_buf u = {0};
    bool changed = false;
    char *text = NULL;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(res, "contents"))
    {
        const cJSON *uri = cJSON_GetObjectItemCaseSensitive(item, "uri");
        cJSON *nu;
        if (!cJSON_IsString(uri))
            continue;
        mb_buf_reset(&u);
        if (mb_buf_append_str(&u, b->conf->name) || LIT(&u, MB_URI_SEPARATOR) ||
            mb_buf_append_str(&u, uri->valuestring) || mb_buf_append(&u, "", 1) ||
            (nu = cJSON_CreateString(u.data)) == NULL)
            goto done;
        cJSON_ReplaceItemInObjectCaseSensitive(item, "uri", nu); /* keeps its place */
        changed = true;
    }
    if (changed)
        text = cJSON_PrintUnformatted(res);
done:
    mb_buf_free(&u);
    cJSON_Delete(res);
    return text;
}

/* {"backend":"NAME","reason":"..."} or with timeout_ms. */
static int error_data(struct mb_buf *d, const struct backend *b, const char *reason,
                      long long timeout_ms)
{
    mb_buf_reset(d);
    if (LIT(d, "{\"backend\":") ||
        mb_buf_append_json_string(d, b->conf->name, strlen(b->conf->name)))
        return MB_ERR;
    if (reason && (LIT(d, ",\"reason\":") || mb_buf_append_json_string(d, reason, strlen(reason))))
        return MB_ERR;
    if (timeout_ms >= 0 && (LIT(d, ",\"timeout_ms\":") || mb_buf_append_int(d, timeout_ms)))
        return MB_ERR;
    return LIT(d, "}");
}

static void flight_abort(struct mb_router *r, struct mb_flight *fl);
static void disc_lead_failed(struct mb_pending *p);
static void held_release(struct mb_router *r);
static void notify_ready(struct mb_router *r, struct backend *b);

/* ---------------------------------------------------------------- pending */
static void arm(struct backend *b)
{
    struct ev_loop *loop = b->r->w->loop;
    ev_timer_stop(loop, &b->timer);
    if (b->head == NULL || b->state == B_CLOSED)
        return;
    uint64_t now = now_ms(b->r);
    double in = b->head->deadline_ms > now ? (double)(b->head->deadline_ms - now) / 1000. : 0.;
    ev_timer_set(&b->timer, in + 0.001, 0.);
    ev_timer_start(loop, &b->timer);
}

static struct mb_pending *pending_new(struct backend *b, enum pending_kind kind,
                                      struct mb_conn *client)
{
    struct mb_router *r = b->r;
    struct mb_pending *p = r->spare;
    if (p != NULL) {
        r->spare = p->bnext;
        r->nspare--;
        memset(p, 0, sizeof(*p));
    } else if ((p = calloc(1, sizeof(*p))) == NULL) {
        return NULL;
    }
    p->gid = mb_idmap_next(&r->ids);
    if (mb_idmap_put(&r->ids, p->gid, p) != 0) {
        free(p);
        return NULL;
    }
    p->kind = kind;
    p->b = b;
    p->deadline_ms = now_ms(r) + (uint64_t)b->conf->request_timeout;
    p->bprev = b->tail;
    if (b->tail)
        b->tail->bnext = p;
    else
        b->head = p;
    b->tail = p;
    if (b->head == p)
        arm(b);
    if (client) {
        struct mb_router_client *rc = &client->route;
        p->client = client;
        p->cnext = rc->head;
        if (rc->head)
            rc->head->cprev = p;
        rc->head = p;
        rc->inflight++;
    }
    return p;
}

static void detach_client(struct mb_pending *p)
{
    if (p->client == NULL)
        return;
    struct mb_router_client *rc = &p->client->route;
    if (p->cprev)
        p->cprev->cnext = p->cnext;
    else
        rc->head = p->cnext;
    if (p->cnext)
        p->cnext->cprev = p->cprev;
    p->cprev = p->cnext = NULL;
    rc->inflight--;
    p->client = NULL;
}

static void pending_free(struct mb_pending *p)
{
    struct backend *b = p->b;
    bool was_head = b->head == p;
    if (p->flight != NULL) {
        struct mb_flight *fl = p->flight;
        p->flight = NULL;
        flight_abort(b->r, fl);
    }
    mb_idmap_del(&b->r->ids, p->gid);
    if (p->bprev)
        p->bprev->bnext = p->bnext;
    else
        b->head = p->bnext;
    if (p->bnext)
        p->bnext->bprev = p->bprev;
    else
        b->tail = p->bprev;
    mb_metrics_backend_done(b->r->w, b->bstat, p->sent, p->bs_sent_ns, p->bs_outcome);
    if (p->acct.on)
        acct_end(b->r, &p->acct, p->client, false, 0, 0, NULL);
    detach_client(p);
    free(p->msg);
    if (p->cid != p->cid_inline)
        free(p->cid);
    free(p->ctok);
    struct mb_router *r = b->r;
    if (r->nspare < PENDING_SPARE_MAX) {
        p->bnext = r->spare;
        r->spare = p;
        r->nspare++;
    } else {
        free(p);
    }
    if (was_head)
        arm(b);
}

/* Sends msg for p when p may go now (not parked, backend ready); returns
 * whether it went. MB_AGAIN from the transport: the DOWN report is on its
 * way, and the caller keeps the message queued. */
static bool pending_send(struct mb_pending *p, const char *msg, size_t len)
{
    struct backend *b = p->b;
    if (p->sent || p->parked || b->state != B_READY || b->up.ops->send(&b->up, msg, len) != 0)
        return false;
    p->sent = true;
    p->bs_sent_ns = mb_metrics_backend_sent(b->r->w, b->bstat);
    return true;
}

/* Sends what p holds if the backend is ready; keeps it queued otherwise. */
static void pending_try_send(struct mb_pending *p)
{
    if (p->msg == NULL || !pending_send(p, p->msg, p->msg_len))
        return;
    free(p->msg);
    p->msg = NULL;
}

/* p's message, built in scratch (send copies it): sent now when it can
 * go, else p keeps a copy until it can (pending_try_send). Saves the
 * malloc and free of every routed request's upstream text. */
static int pending_send_now(struct mb_pending *p, const char *msg, size_t len)
{
    if (pending_send(p, msg, len))
        return 0;
    if ((p->msg = malloc(len ? len : 1)) == NULL)
        return MB_ERR;
    memcpy(p->msg, msg, len);
    p->msg_len = len;
    return 0;
}

static void send_cancel(struct backend *b, uint64_t gid, const char *reason)
{
    struct mb_buf *o = &b->r->out;
    if (b->state != B_READY)
        return;
    mb_buf_reset(o);
    if (LIT(o, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":"
               "{\"requestId\":") ||
        mb_buf_append_int(o, (long long)gid) || LIT(o, ",\"reason\":") ||
        mb_buf_append_json_string(o, reason, strlen(reason)) || LIT(o, "}}"))
        return;
    b->up.ops->send(&b->up, o->data, o->len);
}

static void fan_part_done(struct fanout *f);

/* Answers the owner of p with an error and forgets p. */
static void pending_fail(struct mb_pending *p, int code, const char *msg, const char *reason,
                         long long timeout_ms)
{
    struct backend *b = p->b;
    struct mb_buf data = {0}, *o = &b->r->out;
    p->bs_outcome = mb_metrics_backend_outcome(true, code);
    switch (p->kind) {
    case P_FORWARD:
        if (p->client && error_data(&data, b, reason, timeout_ms) == 0) {
            mb_buf_reset(o);
            if (mb_jsonrpc_write_error_data(o, p->cid, p->cid_len, code, msg, data.data,
                                            data.len) == 0)
                answer(b->r, p->client, &p->acct, o->data, o->len, code, b);
        }
        break;
    case P_PART:
        mb_log_warn("backend %s: %s left out of the merged list: %s%s%s", b->conf->name,
                    mb_list_method(p->fan->merge.kind), msg, reason ? ": " : "",
                    reason ? reason : "");
        mb_merge_drop(&p->fan->merge, b->index);
        disc_lead_failed(p);
        break;
    case P_INIT:
    case P_IGNORE:
        break;
    }
    mb_buf_free(&data);
    struct fanout *f = p->kind == P_PART ? p->fan : NULL;
    pending_free(p);
    if (f)
        fan_part_done(f);
}

static void fail_queued(struct backend *b);

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct backend *b = t->data;
    uint64_t now = now_ms(b->r);
    while (b->head && b->head->deadline_ms <= now) {
        struct mb_pending *p = b->head;
        if (p->sent || p->parked) {
            if (p->sent)
                send_cancel(b, p->gid, "timed out at the gateway");
            mb_log_warn("backend %s: request %llu timed out after %lld ms", b->conf->name,
                        (unsigned long long)p->gid, (long long)b->conf->request_timeout);
            bool init = p->kind == P_INIT;
            pending_fail(p, MB_ERR_BACKEND_TIMEOUT, "Request timed out: the backend did not answer",
                         NULL, (long long)b->conf->request_timeout);
            if (init) {
                snprintf(b->why, sizeof(b->why), "initialize timed out");
                b->state = B_DOWN;
                fail_queued(b);
                held_release(b->r);
            }
        } else {
            pending_fail(p, MB_ERR_BACKEND_UNAVAILABLE, "Backend unavailable", b->why, -1);
        }
    }
    arm(b);
}

/* ---------------------------------------------------------------- fan-out */
static void fan_free(struct fanout *f)
{
    if (f->acct.on)
        acct_end(f->r, &f->acct, f->client, false, 0, 0, NULL);
    for (size_t i = 0; f->lead != NULL && i < f->r->n; i++)
        if (f->lead[i] != NULL) {
            struct mb_flight *fl = f->lead[i];
            f->lead[i] = NULL;
            flight_abort(f->r, fl);
        }
    free(f->lead);
    mb_buf_free(&f->memo_in);
    mb_merge_free(&f->merge);
    free(f->cid);
    free(f);
}

/* f merged lists that all came from the discovery cache: remember the
 * inputs and the body (res is taken over and left empty). */
static void memo_store(struct mb_router *r, struct fanout *f, struct mb_buf *res)
{
    struct list_memo *mm = &r->memo[f->merge.kind];
    struct mb_buf t;
    t = mm->in, mm->in = f->memo_in, f->memo_in = t;
    t = mm->body, mm->body = *res, *res = t;
    mb_buf_reset(&f->memo_in);
    mb_buf_reset(res);
    mm->epoch = r->list_epoch;
    mm->valid = true;
}

static void memo_note(struct fanout *f, size_t bi, const struct mb_cache_stamp *st)
{
    if (f->memo_ok && (mb_buf_append(&f->memo_in, &bi, sizeof(bi)) != 0 ||
                       mb_buf_append(&f->memo_in, st, sizeof(*st)) != 0))
        f->memo_ok = false;
}

static void fan_part_done(struct fanout *f)
{
    struct mb_router *r = f->r;
    if (--f->outstanding > 0)
        return;
    if (f->client != NULL) {
        struct mb_buf *o = &r->out, res = {0};
        cJSON *learned[r->n ? r->n : 1];
        memset(learned, 0, sizeof(learned));
        mb_buf_reset(o);
        if (f->asked > 0 && f->answered == 0) {
            static const char data[] = "{\"backends\":\"none answered\"}";
            if (mb_jsonrpc_write_error_data(o, f->cid, f->cid_len, MB_ERR_BACKEND_UNAVAILABLE,
                                            "Backend unavailable: no backend answered", data,
                                            sizeof(data) - 1) == 0)
                answer(r, f->client, &f->acct, o->data, o->len, MB_ERR_BACKEND_UNAVAILABLE, NULL);
        } else if (mb_merge_finish(&f->merge, r->names, r->conf->routing.separator, r->prefix, &res,
                                   learned) == 0 &&
                   mb_jsonrpc_write_result(o, f->cid, f->cid_len, res.data, res.len) == 0) {
            answer(r, f->client, &f->acct, o->data, o->len, 0, NULL);
            for (size_t i = 0; i < r->n; i++) {
                if (learned[i] == NULL)
                    continue;
                cJSON_Delete(r->b[i].learned[f->merge.kind]);
                r->b[i].learned[f->merge.kind] = learned[i];
                r->list_epoch++;
            }
            if (f->memo_ok && f->asked > 0 && f->answered == f->asked)
                memo_store(r, f, &res);
        } else {
            for (size_t i = 0; i < r->n; i++)
                cJSON_Delete(learned[i]);
            mb_log_error("out of memory merging a list");
        }
        mb_buf_free(&res);
    }
    fan_free(f);
}

/* Frees p without an answer to its client; a fan-out part lets the rest of
 * its fan-out finish without one. */
static void drop_pending(struct mb_pending *p)
{
    if (p->kind == P_PART) {
        struct fanout *f = p->fan;
        f->client = NULL;
        pending_free(p);
        fan_part_done(f);
    } else {
        pending_free(p);
    }
}

/* The client no longer waits for p (it cancelled, or it left): tell the
 * backend if the request went out, and forget p. */
static void abandon(struct mb_pending *p, const char *why)
{
    if (p->sent)
        send_cancel(p->b, p->gid, why);
    drop_pending(p);
}

/* Sends one list request (page cursor, or the first when NULL) to b. */
/* Makes the pending list request, message built, not sent. */
static struct mb_pending *fan_part(struct fanout *f, struct backend *b, const char *cursor)
{
    struct mb_pending *p = pending_new(b, P_PART, f->client);
    if (p == NULL)
        return NULL;
    p->fan = f;
    struct mb_buf o = {0};
    if (LIT(&o, "{\"jsonrpc\":\"2.0\",\"id\":") || mb_buf_append_int(&o, (long long)p->gid) ||
        LIT(&o, ",\"method\":\"") || mb_buf_append_str(&o, mb_list_method(f->merge.kind)) ||
        LIT(&o, "\"") ||
        (cursor && (LIT(&o, ",\"params\":{\"cursor\":") ||
                    mb_buf_append_json_string(&o, cursor, strlen(cursor)) || LIT(&o, "}"))) ||
        LIT(&o, "}")) {
        mb_buf_free(&o);
        pending_free(p);
        return NULL;
    }
    p->msg = o.data;
    p->msg_len = o.len;
    f->outstanding++;
    return p;
}

static int fan_ask(struct fanout *f, struct backend *b, const char *cursor)
{
    struct mb_pending *p = fan_part(f, b, cursor);
    if (p == NULL)
        return MB_ERR;
    pending_try_send(p);
    return 0;
}

/* ---------------------------------------------------------------- caches */
/*
 * The shared caches on the request path (DESIGN §2, §4 "Caching rules"):
 *
 * Discovery: each backend's drained list of each kind is kept in the shm
 * discovery cache under (backend, its config hash, method); a fan-out takes
 * a backend's list from there when it can and asks the backend otherwise,
 * storing what it drained. Invalidated when the backend says list_changed,
 * when its connection goes down or comes back, and (through the config
 * hash) on a reload that changed it. The cache holds backend lists as the
 * backend sent them; prefixing and merging (and, with authentication,
 * filtering per caller) happen after it, in fan_part_done, so one entry
 * serves every caller.
 *
 * Responses: tools/call and resources/read of a backend. Cacheable when the
 * name matches the backend's cache_tools (globs), or (tools/call) the tool
 * declared readOnlyHint and idempotentHint and
 * caching.response_cache.cache_annotated is on; stored under the caller's
 * scope (the client's IP address until authentication exists), unless the
 * result says cacheScope "public" with ttlMs, which stores it for every
 * caller for min(ttlMs, ttl). isError results and errors are never stored.
 *
 * Stampede control: the first miss for a key in a worker fetches and
 * becomes the flight's leader; later misses park (a pending that is not
 * sent) and are answered with the leader's value. Across workers the leader
 * also holds the key's shm lease; a worker that finds the lease taken parks
 * its requests on a "remote" flight and polls (every POLL_MS) until the
 * value appears, or the lease is gone without a value, in which case it
 * takes the lease and fetches itself. A leader that fails (error, isError,
 * timeout, client gone) lets its waiters go to the backend themselves.
 */
#define POLL_MS      2
#define LEASE_MAX_MS 5000ull

static struct mb_cache *cache_of(struct mb_router *r, uint32_t id)
{
    return &r->w->shm->caches[id];
}

static uint64_t lease_ms(const struct backend *b)
{
    uint64_t t = (uint64_t)b->conf->request_timeout;
    return t < LEASE_MAX_MS ? t : LEASE_MAX_MS;
}

/* Copies key's value into r->cval; 0 on a hit. */
static int cache_lookup(struct mb_router *r, struct mb_cache *c, struct mb_cache_key key)
{
    size_t len = 0;
    mb_buf_reset(&r->cval);
    for (int i = 0; i < 2; i++) {
        int rc = mb_cache_get_stamped(c, key, mb_time_mono_ms(), r->cval.data, r->cval.cap, &len,
                                      &r->cstamp);
        if (rc == 0) {
            r->cval.len = len;
            return 0;
        }
        if (rc != MB_AGAIN || mb_buf_reserve(&r->cval, len) != 0)
            return MB_DECLINED;
    }
    return MB_DECLINED;
}

static void poll_start(struct mb_router *r)
{
    if (!ev_is_active(&r->poll))
        ev_timer_start(r->w->loop, &r->poll);
}

/* Remembers which tools of b are annotated cacheable (from a tools array). */
static void note_annotated(struct backend *b, const cJSON *tools)
{
    cJSON *names = mb_cachekey_annotated(tools);
    if (names == NULL)
        return;
    cJSON_Delete(b->annotated);
    b->annotated = names;
    b->r->list_epoch++;
}

static void flight_end(struct mb_router *r, struct mb_flight *fl)
{
    if (!fl->remote)
        mb_cache_lease_drop(cache_of(r, fl->cache), fl->key);
    mb_flights_remove(&r->flights, fl);
}

/* The fetch failed or its leader went away: every waiter asks the backend
 * itself. */
static void flight_abort(struct mb_router *r, struct mb_flight *fl)
{
    for (size_t i = 0; i < fl->nwaiters; i++) {
        struct mb_pending *p = mb_idmap_get(&r->ids, fl->waiters[i]);
        if (p == NULL || !p->parked)
            continue;
        p->parked = false;
        pending_try_send(p);
    }
    flight_end(r, fl);
}

/* The fetch succeeded with value: every waiter gets it. */
static void flight_complete(struct mb_router *r, struct mb_flight *fl, const char *value,
                            size_t len)
{
    for (size_t i = 0; i < fl->nwaiters; i++) {
        struct mb_pending *p = mb_idmap_get(&r->ids, fl->waiters[i]);
        if (p == NULL || !p->parked)
            continue;
        if (p->kind == P_PART) {
            struct fanout *f = p->fan;
            char *cursor = NULL;
            if (mb_merge_page(&f->merge, p->b->index, value, len, &cursor) == 0)
                f->answered++;
            else
                mb_merge_drop(&f->merge, p->b->index);
            free(cursor);
            pending_free(p);
            fan_part_done(f);
        } else {
            struct mb_buf *o = &r->out;
            char *pv = p->uri_prefix ? prefix_contents(p->b, value, len) : NULL;
            mb_buf_reset(o);
            if (p->client && mb_jsonrpc_write_result(o, p->cid, p->cid_len, pv ? pv : value,
                                                     pv ? strlen(pv) : len) == 0)
                answer(r, p->client, &p->acct, o->data, o->len, 0, p->b);
            free(pv);
            pending_free(p);
        }
    }
    flight_end(r, fl);
}

/* A remote flight: has the other worker's fetch ended? */
static void poll_one(struct mb_flight *fl, void *arg)
{
    struct mb_router *r = arg;
    struct mb_cache *c = cache_of(r, fl->cache);
    if (mb_cache_leased(c, fl->key, mb_time_mono_ms()))
        return;
    if (cache_lookup(r, c, fl->key) == 0) {
        struct mb_buf v = r->cval; /* flight_complete may look values up again */
        r->cval = (struct mb_buf){0};
        flight_complete(r, fl, v.data, v.len);
        mb_buf_free(&r->cval);
        r->cval = v;
        return;
    }
    /* Gone without a value (failed, or its worker died): fetch here. */
    if (mb_cache_lease_take(c, fl->key, lease_ms(&r->b[fl->backend]), mb_time_mono_ms()) == 0)
        return;
    mb_flights_set_remote(&r->flights, fl, false);
    for (size_t i = 0; i < fl->nwaiters; i++) {
        struct mb_pending *p = mb_idmap_get(&r->ids, fl->waiters[i]);
        if (p == NULL || !p->parked)
            continue;
        if (p->kind == P_PART) {
            struct fanout *f = p->fan;
            if (f->lead == NULL && (f->lead = calloc(r->n, sizeof(*f->lead))) == NULL)
                continue;
            f->lead[p->b->index] = fl;
            fl->leader = f;
        } else {
            p->flight = fl;
            fl->leader_gid = p->gid;
        }
        fl->waiters[i] = 0;
        p->parked = false;
        pending_try_send(p);
        return;
    }
    flight_end(r, fl); /* nobody waits any more */
}

static void on_poll(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct mb_router *r = t->data;
    mb_flights_each_remote(&r->flights, poll_one, r);
    if (r->flights.remote == 0)
        ev_timer_stop(loop, t);
}

/* ------------------------------------------------ discovery */

/* The key depends only on things fixed for the router's life (the cache's
 * seed, the backend's name and config hash, the method): computed once. */
static struct mb_cache_key disc_key(struct mb_router *r, struct backend *b, int kind)
{
    if (!(b->dkey_have & (1u << kind))) {
        b->dkey[kind] = mb_cachekey_discovery(cache_of(r, MB_CACHE_DISCOVERY), b->conf->name,
                                              b->confhash, mb_list_method((enum mb_list_kind)kind));
        b->dkey_have |= 1u << kind;
    }
    return b->dkey[kind];
}

/* Asks backend b for f's list: from the cache, by joining a fetch in
 * flight, or from the backend. */
static int disc_ask(struct fanout *f, struct backend *b)
{
    struct mb_router *r = f->r;
    int kind = (int)f->merge.kind;
    if (!r->disc_on) {
        f->memo_ok = false;
        return fan_ask(f, b, NULL);
    }
    struct mb_cache *c = cache_of(r, MB_CACHE_DISCOVERY);
    struct mb_cache_key key = disc_key(r, b, kind);
    if (cache_lookup(r, c, key) == 0) {
        char *cursor = NULL;
        int rc = mb_merge_page(&f->merge, b->index, r->cval.data, r->cval.len, &cursor);
        free(cursor);
        if (rc == 0) {
            memo_note(f, b->index, &r->cstamp);
            if (kind == MB_LIST_TOOLS)
                note_annotated(b, f->merge.items[b->index]);
            f->answered++;
            return 0;
        }
        mb_merge_drop(&f->merge, b->index); /* unreadable: fetch it again */
    }
    f->memo_ok = false;
    struct mb_flight *fl = mb_flights_find(&r->flights, MB_CACHE_DISCOVERY, key);
    if (fl == NULL) {
        int lease = mb_cache_lease_take(c, key, lease_ms(b), mb_time_mono_ms());
        if (f->lead == NULL && (f->lead = calloc(r->n, sizeof(*f->lead))) == NULL)
            return fan_ask(f, b, NULL);
        if ((fl = mb_flights_add(&r->flights, MB_CACHE_DISCOVERY, key)) == NULL) {
            if (lease == 1)
                mb_cache_lease_drop(c, key);
            return fan_ask(f, b, NULL);
        }
        fl->backend = b->index;
        fl->kind = kind;
        if (lease != 0) {
            fl->leader = f;
            f->lead[b->index] = fl;
            return fan_ask(f, b, NULL);
        }
        mb_flights_set_remote(&r->flights, fl, true);
        poll_start(r);
    }
    struct mb_pending *p = fan_part(f, b, NULL);
    if (p == NULL)
        return MB_ERR;
    p->parked = true;
    if (mb_flights_wait(fl, p->gid) != 0) {
        p->parked = false;
        pending_try_send(p);
    }
    return 0;
}

/* f has drained b's list: store it, and answer whoever waits for it. */
static void disc_done(struct fanout *f, struct backend *b)
{
    struct mb_router *r = f->r;
    int kind = (int)f->merge.kind;
    cJSON *items = f->merge.items[b->index];
    struct mb_flight *fl = f->lead ? f->lead[b->index] : NULL;
    if (f->lead)
        f->lead[b->index] = NULL;
    if (kind == MB_LIST_TOOLS && items != NULL)
        note_annotated(b, items);
    char *text = NULL;
    if (r->disc_on && items != NULL) {
        cJSON *o = cJSON_CreateObject();
        if (o != NULL &&
            cJSON_AddItemReferenceToObject(o, mb_list_key((enum mb_list_kind)kind), items))
            text = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (text != NULL)
            mb_cache_put(cache_of(r, MB_CACHE_DISCOVERY), disc_key(r, b, kind), text, strlen(text),
                         (uint64_t)r->conf->caching.discovery_cache.ttl, mb_time_mono_ms());
    }
    if (fl != NULL) {
        if (text != NULL)
            flight_complete(r, fl, text, strlen(text));
        else
            flight_abort(r, fl);
    }
    free(text);
}

/* A part of a fan-out failed: if it was fetching for others, they fetch
 * themselves. */
static void disc_lead_failed(struct mb_pending *p)
{
    struct fanout *f = p->fan;
    if (f == NULL || f->lead == NULL || f->lead[p->b->index] == NULL)
        return;
    struct mb_flight *fl = f->lead[p->b->index];
    f->lead[p->b->index] = NULL;
    flight_abort(f->r, fl);
}

/* Forgets what b listed (kind -1: everything). */
static void disc_invalidate(struct backend *b, int kind)
{
    struct mb_router *r = b->r;
    if (!r->disc_on)
        return;
    for (int k = 0; k < MB_LIST_KINDS; k++)
        if (kind < 0 || k == kind)
            mb_cache_del(cache_of(r, MB_CACHE_DISCOVERY), disc_key(r, b, k));
}

/* The lists a notifications/<x>/list_changed concerns. */
static void disc_changed(struct backend *b, const char *method)
{
    if (strcmp(method, "notifications/tools/list_changed") == 0) {
        disc_invalidate(b, MB_LIST_TOOLS);
    } else if (strcmp(method, "notifications/prompts/list_changed") == 0) {
        disc_invalidate(b, MB_LIST_PROMPTS);
    } else if (strcmp(method, "notifications/resources/list_changed") == 0) {
        disc_invalidate(b, MB_LIST_RESOURCES);
        disc_invalidate(b, MB_LIST_TEMPLATES);
    }
}

/* ------------------------------------------------ responses */

struct target {
    const char *name;            /* decoded; NULL: not a string */
    struct mb_json_raw raw_name; /* its raw text in the message; NULL: not found raw */
    struct mb_json_raw raw_tok;  /* params._meta.progressToken raw */
    bool has_tok;                /* the message has a progress token */
    bool args_raw;               /* args is the raw arguments ({NULL, 0}: none) */
    struct mb_json_raw args;
    const cJSON *args_tree; /* !args_raw: params.arguments from the tree */
    char buf[256];          /* name, when decoded from the raw text */
};

struct resp_plan {
    bool active;
    bool private_ok;
    struct mb_cache_key kpriv, kpub;
};

/* Whether tool name of b is cacheable by its annotations; learns them from
 * the discovery cache when this worker has not listed b's tools yet. */
static bool annotated_cacheable(struct mb_router *r, struct backend *b, const char *name)
{
    if (b->annotated == NULL && r->disc_on &&
        cache_lookup(r, cache_of(r, MB_CACHE_DISCOVERY), disc_key(r, b, MB_LIST_TOOLS)) == 0) {
        cJSON *res = cJSON_ParseWithLength(r->cval.data, r->cval.len);
        note_annotated(b, cJSON_GetObjectItemCaseSensitive(res, "tools"));
        cJSON_Delete(res);
    }
    return mb_cachekey_has(b->annotated, name);
}

/* Before a tools/call or resources/read goes to b: answers it from the
 * response cache (returns what route_one returns), or fills plan and returns
 * MB_DECLINED. */
static int resp_lookup(struct mb_router *r, struct mb_conn *c, const struct mb_jsonrpc_msg *m,
                       struct backend *b, const char *name, const struct target *t,
                       struct mb_buf *out, struct mb_mcp_outcome *res, struct resp_plan *plan)
{
    memset(plan, 0, sizeof(*plan));
    bool call = m->method_id == MB_METHOD_TOOLS_CALL;
    if (!r->resp_on || (!call && m->method_id != MB_METHOD_RESOURCES_READ))
        return MB_DECLINED;
    const struct mb_conf_caching *cc = &r->conf->caching;
    /* The arguments' canonical text, once for both keys: the client's own
     * bytes when they already are canonical, else printed from the tree. */
    struct mb_buf *args = &r->canon;
    mb_buf_reset(args);
    int arc = !call         ? mb_cachekey_canonical(NULL, args)
              : t->args_raw ? mb_cachekey_canonical_raw(t->args.p, t->args.len, args)
                            : MB_DECLINED;
    if (arc == MB_DECLINED)
        arc = mb_cachekey_canonical(
            t->args_raw ? cJSON_GetObjectItemCaseSensitive(mb_jsonrpc_params(m), "arguments")
                        : t->args_tree,
            args);
    if (arc != 0)
        return MB_DECLINED; /* out of memory: just not cached */
    plan->private_ok =
        mb_cachekey_listed(&b->conf->cache_tools, name) ||
        (call && cc->response_cache.cache_annotated && annotated_cacheable(r, b, name));
    /* The caller's authorization scope: its address until authentication
     * exists (then: the principal). */
    const char *scope = c->peer;
    struct mb_cache *rc = cache_of(r, MB_CACHE_RESPONSE);
    if (mb_cachekey_response(rc, b->conf->name, b->confhash, m->method, name, args->data, args->len,
                             "", &plan->kpub) != 0 ||
        (plan->private_ok && mb_cachekey_response(rc, b->conf->name, b->confhash, m->method, name,
                                                  args->data, args->len, scope, &plan->kpriv) != 0))
        return MB_DECLINED; /* out of memory: just not cached */
    if (cache_lookup(r, rc, plan->kpub) == 0 ||
        (plan->private_ok && cache_lookup(r, rc, plan->kpriv) == 0)) {
        char *pv = !call && r->prefix ? prefix_contents(b, r->cval.data, r->cval.len) : NULL;
        res->replied = true;
        res->backend = b->conf->name; /* the access log names the source; */
        res->backend_stat = 0;        /* metrics: answered by the gateway (from its cache) */
        int wrc = mb_jsonrpc_write_result(out, m->id, m->id_len, pv ? pv : r->cval.data,
                                          pv ? strlen(pv) : r->cval.len);
        free(pv);
        return wrc;
    }
    plan->active = true;
    return MB_DECLINED;
}

/* p is about to be sent: it stores its result, leads a flight, or waits
 * for the flight of the same key. */
static void resp_attach(struct mb_router *r, struct mb_pending *p, const struct resp_plan *plan)
{
    if (!plan->active)
        return;
    p->cache_store = true;
    p->cache_private = plan->private_ok;
    p->kpriv = plan->kpriv;
    p->kpub = plan->kpub;
    if (!plan->private_ok)
        return; /* only a public result could be stored: no flight to share */
    struct mb_flight *fl = mb_flights_find(&r->flights, MB_CACHE_RESPONSE, plan->kpriv);
    if (fl == NULL) {
        struct mb_cache *c = cache_of(r, MB_CACHE_RESPONSE);
        int lease = mb_cache_lease_take(c, plan->kpriv, lease_ms(p->b), mb_time_mono_ms());
        if ((fl = mb_flights_add(&r->flights, MB_CACHE_RESPONSE, plan->kpriv)) == NULL) {
            if (lease == 1)
                mb_cache_lease_drop(c, plan->kpriv);
            return;
        }
        fl->backend = p->b->index;
        if (lease != 0) {
            fl->leader_gid = p->gid;
            p->flight = fl;
            return;
        }
        mb_flights_set_remote(&r->flights, fl, true);
        poll_start(r);
    }
    if (mb_flights_wait(fl, p->gid) == 0)
        p->parked = true;
}

/* A response to p arrived (its result member, if any): store a cacheable result, and settle the
 * flight p leads. */
static void resp_done(struct mb_pending *p, struct mb_json_raw result,
                      const struct mb_json_raw *rmem)
{
    struct mb_router *r = p->b->r;
    struct mb_flight *fl = p->flight;
    bool stored = false;
    p->flight = NULL;
    if (p->cache_store && result.p != NULL) {
        uint64_t ttl = (uint64_t)r->conf->caching.response_cache.ttl, pub_ttl;
        struct mb_cache *c = cache_of(r, MB_CACHE_RESPONSE);
        enum mb_cachekey_verdict v = rmem ? mb_cachekey_result_of(rmem, &pub_ttl)
                                          : mb_cachekey_result(result.p, result.len, &pub_ttl);
        uint64_t now = mb_time_mono_ms();
        if (v == MB_CACHEKEY_PUBLIC)
            stored = mb_cache_put(c, p->kpub, result.p, result.len, pub_ttl < ttl ? pub_ttl : ttl,
                                  now) == 0;
        else if (v == MB_CACHEKEY_PRIVATE && p->cache_private)
            stored = mb_cache_put(c, p->kpriv, result.p, result.len, ttl, now) == 0;
    }
    if (fl != NULL) {
        if (stored)
            flight_complete(r, fl, result.p, result.len);
        else
            flight_abort(r, fl);
    }
}

static const char *const cap_of_kind[MB_LIST_KINDS] = {"tools", "prompts", "resources",
                                                       "resources"};

/* Whether a list fan-out asks backend b. */
static bool fan_wants(const struct backend *b, enum mb_list_kind kind)
{
    if (b->state == B_DOWN || b->state == B_CLOSED)
        return false;
    return b->state != B_READY || cJSON_GetObjectItemCaseSensitive(b->caps, cap_of_kind[kind]);
}

/* Answers a list request from r->memo[kind] when every backend it would ask
 * still has the memo's input as its live discovery cache value (see
 * list_memo).
 * Returns 0 when answered, MB_DECLINED otherwise. */
static int memo_reply(struct mb_router *r, struct mb_conn *c, const struct mb_jsonrpc_msg *m,
                      enum mb_list_kind kind, size_t len_in, const struct mb_mcp_outcome *res)
{
    struct list_memo *mm = &r->memo[kind];
    if (!r->disc_on || !mm->valid || mm->epoch != r->list_epoch)
        return MB_DECLINED;
    struct mb_cache *cache = cache_of(r, MB_CACHE_DISCOVERY);
    const char *p = mm->in.data, *end = p + mm->in.len;
    uint64_t now = mb_time_mono_ms();
    size_t bi;
    struct mb_cache_stamp st;
    for (size_t i = 0; i < r->n; i++) {
        struct backend *b = &r->b[i];
        if (!fan_wants(b, kind))
            continue;
        if ((size_t)(end - p) < sizeof(bi) + sizeof(st))
            return MB_DECLINED;
        memcpy(&bi, p, sizeof(bi));
        memcpy(&st, p + sizeof(bi), sizeof(st));
        p += sizeof(bi) + sizeof(st);
        if (bi != i || mb_cache_same(cache, disc_key(r, b, (int)kind), now, &st) != 0)
            return MB_DECLINED;
    }
    if (p != end)
        return MB_DECLINED;
    /* The reply goes from its pieces straight into the client's queue. */
    struct iovec v[MB_JSONRPC_RESULT_PARTS];
    mb_jsonrpc_result_parts(v, m->id, m->id_len, mm->body.data, mm->body.len);
    struct acct a;
    acct_start(r, &a, c, len_in, res);
    answer_v(r, c, &a, v, MB_JSONRPC_RESULT_PARTS, 0, NULL);
    return 0;
}

static int fan_out(struct mb_router *r, struct mb_conn *c, const struct mb_jsonrpc_msg *m,
                   enum mb_list_kind kind, size_t len, struct mb_buf *out,
                   struct mb_mcp_outcome *res)
{
    if (memo_reply(r, c, m, kind, len, res) == 0) {
        res->replied = false; /* sent through the connection's queue, as below */
        return 0;
    }
    struct fanout *f = calloc(1, sizeof(*f));
    if (f == NULL || mb_merge_init(&f->merge, kind, r->n) != 0 ||
        (f->cid = malloc(m->id_len)) == NULL) {
        if (f)
            fan_free(f);
        return MB_ERR;
    }
    memcpy(f->cid, m->id, m->id_len);
    f->cid_len = m->id_len;
    f->r = r;
    f->client = c;
    f->outstanding = 1; /* held while asking, so no part finishes it early */
    f->memo_ok = true;
    acct_start(r, &f->acct, c, len, res);
    for (size_t i = 0; i < r->n; i++) {
        struct backend *b = &r->b[i];
        if (!fan_wants(b, kind))
            continue;
        if (disc_ask(f, b) != 0) {
            mb_log_error("out of memory fanning out %s", m->method);
            f->memo_ok = false;
            continue;
        }
        f->asked++;
    }
    res->replied = false;
    fan_part_done(f); /* drops the hold: replies now when nothing was asked */
    return 0;
}

static void fan_page(struct mb_pending *p, const char *msg, size_t len, struct mb_json_raw result,
                     struct mb_json_raw error)
{
    struct fanout *f = p->fan;
    struct backend *b = p->b;
    if (error.p != NULL) {
        /* A backend without this list (-32601) simply has nothing to add. */
        struct mb_json_raw code;
        mb_json_member(error.p, error.len, "code", &code);
        bool not_found = code.p && code.len == 6 && memcmp(code.p, "-32601", 6) == 0;
        if (not_found) {
            f->answered++;
            pending_free(p);
            fan_part_done(f);
        } else {
            pending_fail(p, MB_ERR_UPSTREAM_PROTOCOL, "the backend answered with an error", NULL,
                         -1);
        }
        return;
    }
    char *cursor = NULL;
    if (mb_merge_page(&f->merge, b->index, result.p, result.len, &cursor) != 0) {
        pending_fail(p, MB_ERR_UPSTREAM_PROTOCOL, "upstream protocol violation",
                     "not a list result", -1);
        return;
    }
    if (cursor != NULL) {
        int rc = fan_ask(f, b, cursor);
        free(cursor);
        if (rc != 0) {
            mb_merge_drop(&f->merge, b->index);
            disc_lead_failed(p);
        }
    } else {
        f->answered++;
        disc_done(f, b);
    }
    pending_free(p);
    fan_part_done(f);
}

/* ---------------------------------------------------------------- backends */
static void send_initialize(struct backend *b)
{
    struct mb_pending *p = pending_new(b, P_INIT, NULL);
    struct mb_buf o = {0};
    if (p == NULL)
        goto oom;
    if (LIT(&o, "{\"jsonrpc\":\"2.0\",\"id\":") || mb_buf_append_int(&o, (long long)p->gid) ||
        LIT(&o,
            ",\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"" UPSTREAM_VERSION
            "\",\"capabilities\":{\"roots\":{\"listChanged\":true},\"sampling\":{},"
            "\"elicitation\":{}},\"clientInfo\":{\"name\":\"mcp-bridge\",\"version\":\"" MB_VERSION
            "\"}}}"))
        goto oom;
    if (b->up.ops->send(&b->up, o.data, o.len) != 0)
        goto oom;
    p->sent = true;
    p->bs_sent_ns = mb_metrics_backend_sent(b->r->w, b->bstat);
    mb_buf_free(&o);
    return;
oom:
    mb_buf_free(&o);
    if (p)
        pending_free(p);
    snprintf(b->why, sizeof(b->why), "could not send initialize");
    b->state = B_DOWN;
}

static void fail_queued(struct backend *b)
{
    struct mb_pending *p = b->head, *next;
    for (; p; p = next) {
        next = p->bnext;
        if (!p->sent)
            pending_fail(p, MB_ERR_BACKEND_UNAVAILABLE, "Backend unavailable", b->why, -1);
    }
}

static void on_init_reply(struct mb_pending *p, struct mb_json_raw result, struct mb_json_raw error)
{
    struct backend *b = p->b;
    pending_free(p);
    cJSON *res = result.p ? cJSON_ParseWithLength(result.p, result.len) : NULL;
    cJSON *caps = cJSON_GetObjectItemCaseSensitive(res, "capabilities");
    if (!cJSON_IsObject(caps)) {
        snprintf(b->why, sizeof(b->why), "initialize %s",
                 error.p ? "was answered with an error" : "answer has no capabilities");
        mb_log_error("backend %s: %s", b->conf->name, b->why);
        cJSON_Delete(res);
        b->state = B_DOWN;
        fail_queued(b);
        held_release(b->r);
        return;
    }
    cJSON_Delete(b->caps);
    b->caps = cJSON_DetachItemViaPointer(res, caps);
    const cJSON *si = cJSON_GetObjectItemCaseSensitive(res, "serverInfo");
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(si, "name");
    const cJSON *pv = cJSON_GetObjectItemCaseSensitive(res, "protocolVersion");
    mb_log_info("backend %s: ready (server %s, protocol %s)", b->conf->name,
                cJSON_IsString(nm) ? nm->valuestring : "?",
                cJSON_IsString(pv) ? pv->valuestring : "?");
    cJSON_Delete(res);
    static const char initialized[] =
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";
    b->up.ops->send(&b->up, initialized, sizeof(initialized) - 1);
    b->state = B_READY;
    mb_metrics_backend_up(b->r->w, b->bstat, true);
    b->was_ready = true;
    b->why[0] = '\0';
    struct mb_pending *q = b->head, *next;
    for (; q; q = next) {
        next = q->bnext;
        pending_try_send(q);
    }
    b->ready_seq = ++b->r->ready_seq;
    notify_ready(b->r, b);
    held_release(b->r);
}

static void on_state(void *owner, enum mb_upstream_state st, const char *why)
{
    struct backend *b = owner;
    if (b->state == B_CLOSED)
        return;
    mb_metrics_backend_up(b->r->w, b->bstat, false); /* ready again after the handshake */
    /* Its lists may have changed while the connection was down. */
    if (st != MB_UPSTREAM_UP || b->was_ready)
        disc_invalidate(b, -1);
    if (st == MB_UPSTREAM_UP) {
        b->state = B_STARTING;
        snprintf(b->why, sizeof(b->why), "starting");
        send_initialize(b);
        return;
    }
    b->state = B_DOWN;
    snprintf(b->why, sizeof(b->why), "%s", why ? why : "connection lost");
    /* Sent requests are lost with the connection; queued ones wait for the
     * restart within their timeout. */
    struct mb_pending *p = b->head, *next;
    for (; p; p = next) {
        next = p->bnext;
        if (p->sent)
            pending_fail(p, MB_ERR_BACKEND_UNAVAILABLE, "Backend unavailable", b->why, -1);
    }
    /* A dead backend's server-to-client requests cannot be answered. */
    held_release(b->r);
}

/* Splices the client's id into a backend response and sends it on. */
static void forward_response(struct mb_pending *p, const char *msg, size_t len,
                             struct mb_json_raw id, struct mb_json_raw result,
                             struct mb_json_raw error, const struct mb_json_raw *rmem)
{
    if (p->cache_store || p->flight != NULL)
        resp_done(p, result, rmem);
    struct mb_json_edit e[2] = {{id.p, id.len, p->cid, p->cid_len}};
    size_t ne = 1;
    char *pv = p->uri_prefix && result.p ? prefix_contents(p->b, result.p, result.len) : NULL;
    if (pv != NULL)
        e[ne++] = (struct mb_json_edit){result.p, result.len, pv, strlen(pv)};
    int code = 0;
    if (error.p != NULL) {
        /* The backend's error code, for the request's status; a code that
         * is not a number counts as an internal error. */
        struct mb_json_raw c;
        char num[16];
        code = MB_JSONRPC_INTERNAL_ERROR;
        if (mb_json_member(error.p, error.len, "code", &c) == 0 && c.len < sizeof(num)) {
            memcpy(num, c.p, c.len);
            num[c.len] = '\0';
            char *end;
            long v = strtol(num, &end, 10);
            if (end != num && *end == '\0' && v != 0 && v >= -2147483647L && v <= 2147483647L)
                code = (int)v;
        }
    }
    /* The spliced pieces go straight into the client's queue. */
    struct iovec v[2 * 2 + 1];
    size_t nv = p->client ? mb_json_splice_parts(msg, len, e, ne, v) : 0;
    if (nv > 0)
        answer_v(p->b->r, p->client, &p->acct, v, nv, code, p->b);
    free(pv);
    pending_free(p);
}

/* result and error are the message's members (NULL when absent), found by
 * on_message's single pass. */
static void on_response(struct backend *b, const char *msg, size_t len, struct mb_json_raw id,
                        struct mb_json_raw result, struct mb_json_raw error,
                        const struct mb_json_raw *rmem)
{
    uint64_t gid;
    struct mb_pending *p = mb_json_raw_uint(id, &gid) ? mb_idmap_get(&b->r->ids, gid) : NULL;
    if (p == NULL || p->b != b) {
        mb_log_debug("backend %s: answer to unknown or finished request %.*s dropped",
                     b->conf->name, (int)(id.len > 40 ? 40 : id.len), id.p);
        return;
    }
    if ((result.p == NULL) == (error.p == NULL)) {
        mb_log_warn("backend %s: protocol violation: a response without exactly one of result "
                    "and error",
                    b->conf->name);
        if (p->kind == P_INIT) {
            on_init_reply(p, (struct mb_json_raw){0}, (struct mb_json_raw){0});
            return;
        }
        pending_fail(p, MB_ERR_UPSTREAM_PROTOCOL, "Upstream protocol violation",
                     "response without exactly one of result and error", -1);
        return;
    }
    p->bs_outcome = mb_metrics_backend_outcome(error.p != NULL, 0);
    switch (p->kind) {
    case P_INIT:
        on_init_reply(p, result, error);
        break;
    case P_FORWARD:
        forward_response(p, msg, len, id, result, error, rmem);
        break;
    case P_PART:
        fan_page(p, msg, len, result, error);
        break;
    case P_IGNORE:
        pending_free(p);
        break;
    }
}

/* Every open client session of the worker. */
static void broadcast(struct mb_router *r, const char *msg, size_t len, int filter)
{
    for (struct mb_conn *c = r->w->active.head; c != NULL; c = c->next) {
        if (!c->is_ws || (filter == 1 && !c->route.logging) ||
            (filter == 2 && !c->route.subscribed))
            continue;
        send_to_client(c, msg, len);
    }
}

static void on_progress(struct backend *b, const char *msg, size_t len)
{
    static const char *const path[] = {"params", "progressToken", NULL};
    struct mb_json_raw tok;
    uint64_t gid;
    if (mb_json_path_parsed(msg, len, path, &tok) != 0 || !mb_json_raw_uint(tok, &gid))
        return;
    struct mb_pending *p = mb_idmap_get(&b->r->ids, gid);
    if (p == NULL || p->b != b || p->client == NULL || p->ctok == NULL)
        return;
    struct mb_json_edit e = {tok.p, tok.len, p->ctok, p->ctok_len};
    struct mb_buf *o = &b->r->out;
    mb_buf_reset(o);
    if (mb_json_splice(o, msg, len, &e, 1) == 0)
        send_to_client(p->client, o->data, o->len);
}

static void on_resource_updated(struct backend *b, const char *msg, size_t len)
{
    static const char *const path[] = {"params", "uri", NULL};
    struct mb_json_raw uri;
    struct mb_router *r = b->r;
    if (!r->prefix) {
        broadcast(r, msg, len, 2);
        return;
    }
    if (mb_json_path_parsed(msg, len, path, &uri) != 0 || uri.len < 2 || uri.p[0] != '"')
        return;
    /* "<backend>+" goes right after the opening quote. */
    struct mb_buf pre = {0};
    if (LIT(&pre, "\"") || mb_buf_append_str(&pre, b->conf->name) || LIT(&pre, MB_URI_SEPARATOR)) {
        mb_buf_free(&pre);
        return;
    }
    struct mb_json_edit e = {uri.p, 1, pre.data, pre.len};
    struct mb_buf o = {0};
    if (mb_json_splice(&o, msg, len, &e, 1) == 0)
        broadcast(r, o.data, o.len, 2);
    mb_buf_free(&o);
    mb_buf_free(&pre);
}

static void reply_upstream_error(struct backend *b, struct mb_json_raw id, int code,
                                 const char *message)
{
    struct mb_buf o = {0};
    if (mb_jsonrpc_write_error(&o, id.p, id.len, code, message, NULL, 0) == 0 &&
        b->state == B_READY)
        b->up.ops->send(&b->up, o.data, o.len);
    mb_buf_free(&o);
}

static void on_server_request(struct backend *b, const char *msg, size_t len, const char *method,
                              struct mb_json_raw id)
{
    struct mb_router *r = b->r;
    if (strcmp(method, "ping") == 0) {
        struct mb_buf o = {0};
        if (mb_jsonrpc_write_result(&o, id.p, id.len, "{}", 2) == 0)
            b->up.ops->send(&b->up, o.data, o.len);
        mb_buf_free(&o);
        return;
    }
    /* The client of the newest request in flight on this backend. */
    struct mb_conn *owner = NULL;
    for (struct mb_pending *p = b->tail; p && owner == NULL; p = p->bprev)
        if (p->sent && p->kind == P_FORWARD && p->client)
            owner = p->client;
    if (owner == NULL) {
        if (strcmp(method, "roots/list") == 0) {
            struct mb_buf o = {0};
            if (mb_jsonrpc_write_result(&o, id.p, id.len, "{\"roots\":[]}", 12) == 0)
                b->up.ops->send(&b->up, o.data, o.len);
            mb_buf_free(&o);
        } else {
            reply_upstream_error(b, id, MB_JSONRPC_INTERNAL_ERROR,
                                 "no client request in flight to serve this request");
        }
        return;
    }
    struct mb_s2c *s = malloc(sizeof(*s) + id.len);
    if (s == NULL)
        return;
    s->n = ++r->s2c_next;
    s->b = b;
    s->client = owner;
    s->raw_len = id.len;
    memcpy(s->raw_id, id.p, id.len);
    s->next = owner->route.s2c;
    owner->route.s2c = s;
    char cid[40];
    int n = snprintf(cid, sizeof(cid), "\"mb-s2c-%llu\"", (unsigned long long)s->n);
    struct mb_json_edit e = {id.p, id.len, cid, (size_t)n};
    struct mb_buf *o = &r->out;
    mb_buf_reset(o);
    if (mb_json_splice(o, msg, len, &e, 1) == 0)
        send_to_client(owner, o->data, o->len);
}

static bool on_message(void *owner, const char *msg, size_t len)
{
    struct backend *b = owner;
    /* The message is validated and its top-level members are found in one
     * pass (not one walk per member: that was most of a tools/call's
     * instructions; nor a validation and then a member walk). */
    static const char *const names[] = {"jsonrpc", "id", "method", "result", "error"};
    struct mb_json_raw mem[5];
    char name[96];

    /* result's members for the response cache come in the same pass. */
    struct mb_json_raw rmem[MB_CACHEKEY_RESULT_MEMBERS];
    struct mb_json_nest nest = {3, mb_cachekey_result_names, MB_CACHEKEY_RESULT_MEMBERS, rmem,
                                false};
    if (mb_json_valid_members(msg, len, false, names, 5, mem, &nest) != 0 || mem[0].p == NULL) {
        mb_log_warn("backend %s: protocol violation: not a JSON-RPC message: %.*s", b->conf->name,
                    (int)(len > 120 ? 120 : len), msg);
        return false;
    }
    /* Validated first, so that true always means a well-formed message
     * (the HTTP transport reads members of what was accepted). */
    if (b->state == B_CLOSED)
        return true;
    struct mb_json_raw id = mem[1], method = mem[2];
    if (method.p == NULL) {
        if (id.p != NULL)
            on_response(b, msg, len, id, mem[3], mem[4], nest.found ? rmem : NULL);
        return true;
    }
    if (mb_json_raw_plain_string(method, name, sizeof(name)) < 0)
        return true;
    if (id.p != NULL) {
        on_server_request(b, msg, len, name, id);
        return true;
    }
    if (strcmp(name, "notifications/progress") == 0)
        on_progress(b, msg, len);
    else if (strncmp(name, "notifications/", 14) == 0 &&
             strlen(name) > 13 + sizeof("/list_changed") &&
             strcmp(name + strlen(name) - 13, "/list_changed") == 0) {
        disc_changed(b, name);
        broadcast(b->r, msg, len, 0);
    } else if (strcmp(name, "notifications/message") == 0)
        broadcast(b->r, msg, len, 1);
    else if (strcmp(name, "notifications/resources/updated") == 0)
        on_resource_updated(b, msg, len);
    else
        mb_log_debug("backend %s: notification %s not forwarded", b->conf->name, name);
    return true;
}

/* A message the transport could not deliver (Streamable HTTP: every message
 * is its own exchange, so a failure there is not a lost connection): the
 * request inside it, if it is one, fails now with why. */
static void on_send_failed(void *owner, const char *msg, size_t len, const char *why,
                           bool not_jsonrpc)
{
    struct backend *b = owner;
    struct mb_json_raw id, method;
    uint64_t gid;

    if (b->state == B_CLOSED || mb_json_member(msg, len, "method", &method) != 0 ||
        mb_json_member(msg, len, "id", &id) != 0 || !mb_json_raw_uint(id, &gid))
        return;
    struct mb_pending *p = mb_idmap_get(&b->r->ids, gid);
    if (p == NULL || p->b != b)
        return;
    if (not_jsonrpc)
        pending_fail(p, MB_ERR_UPSTREAM_PROTOCOL, "Upstream protocol violation", why, -1);
    else
        pending_fail(p, MB_ERR_BACKEND_UNAVAILABLE, "Backend unavailable", why, -1);
}

static const struct mb_upstream_events events = {
    .on_state = on_state, .on_message = on_message, .on_send_failed = on_send_failed};

/* ---------------------------------------------------------------- client side */
/* The backend that owns name (len bytes) of a kind, and the name it knows. */
static struct backend *owner_of(struct mb_router *r, enum mb_list_kind kind, const char *name,
                                size_t len, const char **rest)
{
    if (r->n == 0)
        return NULL;
    if (r->prefix) {
        const char *sep = kind >= MB_LIST_RESOURCES ? MB_URI_SEPARATOR : r->conf->routing.separator;
        long i = mb_names_owner(r->names, r->n, sep, name, len, rest);
        return i < 0 ? NULL : &r->b[i];
    }
    *rest = name;
    if (r->n == 1)
        return &r->b[0];
    /* Without prefixes: the backend that listed it (first wins). */
    for (size_t i = 0; i < r->n; i++) {
        const cJSON *s;
        cJSON_ArrayForEach(s, r->b[i].learned[kind]) if (strlen(s->valuestring) == len &&
                                                         memcmp(s->valuestring, name, len) ==
                                                             0) return &r->b[i];
    }
    return NULL;
}

static int reply_unknown(const struct mb_jsonrpc_msg *m, struct mb_buf *out,
                         struct mb_mcp_outcome *res, const char *what, const char *field,
                         const char *name)
{
    struct mb_buf d = {0};
    char msg[64];
    int rc = MB_ERR;
    snprintf(msg, sizeof(msg), "Unknown %s", what);
    if (LIT(&d, "{\"") == 0 && mb_buf_append_str(&d, field) == 0 && LIT(&d, "\":") == 0 &&
        mb_buf_append_json_string(&d, name, strlen(name)) == 0 && LIT(&d, "}") == 0)
        rc = mb_jsonrpc_write_error_data(out, m->id, m->id_len, MB_JSONRPC_INVALID_PARAMS, msg,
                                         d.data, d.len);
    mb_buf_free(&d);
    res->replied = rc == 0;
    res->error = MB_JSONRPC_INVALID_PARAMS;
    return rc;
}

static int reply_invalid(const struct mb_jsonrpc_msg *m, struct mb_buf *out,
                         struct mb_mcp_outcome *res, const char *msg)
{
    res->replied = true;
    res->error = MB_JSONRPC_INVALID_PARAMS;
    return mb_jsonrpc_write_error(out, m->id, m->id_len, MB_JSONRPC_INVALID_PARAMS, msg, NULL, 0);
}

/* The upstream text of a routed request, through a cJSON tree of text (slow path:
 * keys written with escapes, so the raw scan did not find them). */
static int build_slow(const char *text, size_t len, uint64_t gid, const char *const *npath,
                      const char *newname, struct mb_buf *o)
{
    cJSON *copy = cJSON_ParseWithLength(text, len);
    int rc = MB_ERR;
    if (copy == NULL)
        return MB_ERR;
    cJSON_ReplaceItemInObjectCaseSensitive(copy, "id", cJSON_CreateNumber((double)gid));
    cJSON *node = copy;
    for (size_t i = 0; npath[i + 1] != NULL && node; i++)
        node = cJSON_GetObjectItemCaseSensitive(node, npath[i]);
    size_t last = 0;
    while (npath[last + 1] != NULL)
        last++;
    if (node && newname)
        cJSON_ReplaceItemInObjectCaseSensitive(node, npath[last], cJSON_CreateString(newname));
    cJSON *meta =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(copy, "params"), "_meta");
    if (cJSON_GetObjectItemCaseSensitive(meta, "progressToken"))
        cJSON_ReplaceItemInObjectCaseSensitive(meta, "progressToken",
                                               cJSON_CreateNumber((double)gid));
    char *printed = cJSON_PrintUnformatted(copy);
    if (printed) {
        rc = mb_buf_append_str(o, printed);
        free(printed);
    }
    cJSON_Delete(copy);
    return rc;
}

/*
 * What route_one needs from params: the target name and where it stands,
 * the progress token, the arguments. A message decided without cJSON (m->plain:
 * keys are their raw bytes) with a two-level target path gets them from the
 * raw params members (mb_jsonrpc_param_raw: one walk per message, shared with
 * the metrics label) and one walk over _meta when it is there; anything else
 * from the tree and from raw path walks of the text.
 */

static void read_target(const struct mb_jsonrpc_msg *m, const char *text, size_t len,
                        const char *const *npath, struct target *t)
{
    memset(t, 0, sizeof(*t));
    struct mb_json_raw rname, rmeta, rargs;
    if (npath[2] == NULL && mb_jsonrpc_param_raw(m, npath[1], &rname) == 0 &&
        mb_jsonrpc_param_raw(m, "_meta", &rmeta) == 0 &&
        mb_jsonrpc_param_raw(m, "arguments", &rargs) == 0) {
        static const char *const tok[] = {"progressToken"};
        t->raw_name = rname;
        if (rmeta.p != NULL)
            mb_json_members(rmeta.p, rmeta.len, tok, 1, &t->raw_tok); /* not an object: none */
        t->has_tok = t->raw_tok.p != NULL;
        t->args_raw = true;
        t->args = rargs;
        if (rname.p != NULL && rname.p[0] == '"') {
            if (mb_json_raw_plain_string(rname, t->buf, sizeof(t->buf)) >= 0)
                t->name = t->buf;
            else { /* escapes or long: cJSON decodes it */
                const cJSON *n = cJSON_GetObjectItemCaseSensitive(mb_jsonrpc_params(m), npath[1]);
                t->name = cJSON_IsString(n) ? n->valuestring : NULL;
            }
        }
        return;
    }
    static const char *const tok_path[] = {"params", "_meta", "progressToken", NULL};
    const cJSON *params = mb_jsonrpc_params(m), *node = params; /* npath[0] is "params" */
    for (size_t i = 1; npath[i] && node; i++)
        node = cJSON_GetObjectItemCaseSensitive(node, npath[i]);
    t->name = cJSON_IsString(node) ? node->valuestring : NULL;
    /* text is the request the parse validated: well-formed. */
    mb_json_path_parsed(text, len, npath, &t->raw_name);
    mb_json_path_parsed(text, len, tok_path, &t->raw_tok);
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(params, "_meta");
    t->has_tok = cJSON_GetObjectItemCaseSensitive(meta, "progressToken") != NULL;
    t->args_tree = cJSON_GetObjectItemCaseSensitive(params, "arguments");
}

/* Routes a request naming one target to its backend. */
static int route_one(struct mb_router *r, struct mb_conn *c, const struct mb_jsonrpc_msg *m,
                     const char *text, size_t len, enum mb_list_kind kind, const char *const *npath,
                     struct mb_buf *out, struct mb_mcp_outcome *res)
{
    const char *what = kind == MB_LIST_TOOLS     ? "tool"
                       : kind == MB_LIST_PROMPTS ? "prompt"
                                                 : "resource";
    const char *field = npath[2] ? npath[2] : npath[1];
    struct target t;
    read_target(m, text, len, npath, &t);
    if (m->method_id == MB_METHOD_TOOLS_CALL &&
        (t.args_raw ? t.args.p != NULL && t.args.p[0] != '{'
                    : t.args_tree != NULL && !cJSON_IsObject(t.args_tree)))
        return reply_invalid(m, out, res, "Invalid params: arguments must be an object");
    if (t.name == NULL) {
        char msg[96];
        snprintf(msg, sizeof(msg), "Invalid params: %s must be a string",
                 npath[2] ? "params.ref.name or params.ref.uri" : field);
        return reply_invalid(m, out, res, msg);
    }
    const char *name = t.name, *rest = NULL;
    struct backend *b = owner_of(r, kind, name, strlen(name), &rest);
    if (b == NULL)
        return reply_unknown(m, out, res, what, field, name);
    struct resp_plan plan;
    int crc = resp_lookup(r, c, m, b, rest, &t, out, res, &plan);
    if (crc != MB_DECLINED)
        return crc;

    struct mb_pending *p = pending_new(b, P_FORWARD, c);
    if (p == NULL)
        return MB_ERR;
    acct_start(r, &p->acct, c, len, res);
    p->uri_prefix = r->prefix && m->method_id == MB_METHOD_RESOURCES_READ;
    p->cid = m->id_len <= sizeof(p->cid_inline) ? p->cid_inline : malloc(m->id_len);
    if (p->cid == NULL)
        goto oom;
    memcpy(p->cid, m->id, m->id_len);
    p->cid_len = m->id_len;

    struct mb_json_raw raw_name = t.raw_name, raw_tok = t.raw_tok;
    bool strip = rest != name, has_tok = t.has_tok;
    if (has_tok && raw_tok.p) {
        if ((p->ctok = malloc(raw_tok.len)) == NULL)
            goto oom;
        memcpy(p->ctok, raw_tok.p, raw_tok.len);
        p->ctok_len = raw_tok.len;
    }

    /* Built in scratch: pending_send_now copies it only if it cannot go now. */
    struct mb_buf *o = &r->out;
    mb_buf_reset(o);
    if ((strip && raw_name.p == NULL) || (has_tok && raw_tok.p == NULL)) {
        if (build_slow(text, len, p->gid, npath, strip ? rest : NULL, o) != 0)
            goto oom;
    } else {
        char gid[24], *nm = NULL;
        size_t gl = mb_buf_format_u64(gid, p->gid);
        struct mb_json_edit e[3];
        size_t ne = 0;
        struct mb_buf nb = {0};
        e[ne++] = (struct mb_json_edit){m->id, m->id_len, gid, gl};
        if (strip) {
            if (mb_buf_append_json_string(&nb, rest, strlen(rest)) != 0)
                goto oom;
            nm = nb.data;
            e[ne++] = (struct mb_json_edit){raw_name.p, raw_name.len, nm, nb.len};
        }
        if (has_tok)
            e[ne++] = (struct mb_json_edit){raw_tok.p, raw_tok.len, gid, gl};
        int rc = mb_json_splice(o, text, len, e, ne);
        mb_buf_free(&nb);
        if (rc != 0)
            goto oom;
    }
    if (m->method_id == MB_METHOD_RESOURCES_SUBSCRIBE)
        c->route.subscribed = true;
    resp_attach(r, p, &plan);
    if (pending_send_now(p, o->data, o->len) != 0)
        goto oom;
    res->replied = false;
    return 0;
oom:
    pending_free(p);
    return MB_ERR;
}

/* logging/setLevel: to every backend, answered at once. */
static int set_level(struct mb_router *r, struct mb_conn *c, const struct mb_jsonrpc_msg *m,
                     const char *text, size_t len, struct mb_buf *out, struct mb_mcp_outcome *res)
{
    const cJSON *lvl = cJSON_GetObjectItemCaseSensitive(mb_jsonrpc_params(m), "level");
    if (!cJSON_IsString(lvl))
        return reply_invalid(m, out, res, "Invalid params: level must be a string");
    for (size_t i = 0; i < r->n; i++) {
        struct backend *b = &r->b[i];
        if (b->state == B_DOWN || b->state == B_CLOSED)
            continue;
        struct mb_pending *p = pending_new(b, P_IGNORE, NULL);
        if (p == NULL)
            return MB_ERR;
        char gid[24];
        size_t gl = mb_buf_format_u64(gid, p->gid);
        struct mb_json_edit e = {m->id, m->id_len, gid, gl};
        struct mb_buf o = {0};
        if (mb_json_splice(&o, text, len, &e, 1) != 0) {
            pending_free(p);
            return MB_ERR;
        }
        p->msg = o.data;
        p->msg_len = o.len;
        pending_try_send(p);
    }
    c->route.logging = true;
    res->replied = true;
    return mb_jsonrpc_write_result(out, m->id, m->id_len, "{}", 2);
}

/*
 * route_request — the one place a client request is routed. Anything that
 * must run on every routed request (rate limiting, authorization of the
 * target) goes right before the call to it in mb_router_request.
 */
static int route_request(struct mb_router *r, struct mb_conn *c, const struct mb_jsonrpc_msg *m,
                         const char *text, size_t len, struct mb_buf *out,
                         struct mb_mcp_outcome *res)
{
    static const char *const p_name[] = {"params", "name", NULL};
    static const char *const p_uri[] = {"params", "uri", NULL};
    static const char *const p_ref_name[] = {"params", "ref", "name", NULL};
    static const char *const p_ref_uri[] = {"params", "ref", "uri", NULL};

    if (!mb_jsonrpc_params_ok(m))
        return reply_invalid(m, out, res, "Invalid params: params must be an object");
    int kind = mb_list_kind_of(m->method_id);
    if (kind >= 0) {
        struct mb_json_raw cur;
        bool has_cursor, cursor_string;
        if (mb_jsonrpc_param_raw(m, "cursor", &cur) == 0) {
            has_cursor = cur.p != NULL;
            cursor_string = has_cursor && cur.p[0] == '"';
        } else {
            const cJSON *cursor = cJSON_GetObjectItemCaseSensitive(mb_jsonrpc_params(m), "cursor");
            has_cursor = cursor != NULL;
            cursor_string = cJSON_IsString(cursor);
        }
        if (has_cursor && !cursor_string)
            return reply_invalid(m, out, res, "Invalid params: cursor must be a string");
        /* The merged list is always one page: no cursor was handed out. */
        if (has_cursor)
            return reply_invalid(m, out, res, "Invalid params: unknown cursor");
        return fan_out(r, c, m, (enum mb_list_kind)kind, len, out, res);
    }
    switch (m->method_id) {
    case MB_METHOD_TOOLS_CALL: /* route_one checks arguments first */
        return route_one(r, c, m, text, len, MB_LIST_TOOLS, p_name, out, res);
    case MB_METHOD_PROMPTS_GET:
        return route_one(r, c, m, text, len, MB_LIST_PROMPTS, p_name, out, res);
    case MB_METHOD_RESOURCES_READ:
    case MB_METHOD_RESOURCES_SUBSCRIBE:
    case MB_METHOD_RESOURCES_UNSUBSCRIBE:
        return route_one(r, c, m, text, len, MB_LIST_RESOURCES, p_uri, out, res);
    case MB_METHOD_COMPLETION_COMPLETE: {
        const cJSON *ref = cJSON_GetObjectItemCaseSensitive(mb_jsonrpc_params(m), "ref");
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(ref, "type");
        if (!cJSON_IsString(type))
            return reply_invalid(m, out, res, "Invalid params: params.ref.type must be a string");
        if (strcmp(type->valuestring, "ref/prompt") == 0)
            return route_one(r, c, m, text, len, MB_LIST_PROMPTS, p_ref_name, out, res);
        if (strcmp(type->valuestring, "ref/resource") == 0)
            return route_one(r, c, m, text, len, MB_LIST_RESOURCES, p_ref_uri, out, res);
        return reply_invalid(m, out, res,
                             "Invalid params: params.ref.type must be ref/prompt or ref/resource");
    }
    case MB_METHOD_LOGGING_SET_LEVEL:
        return set_level(r, c, m, text, len, out, res);
    default:
        break;
    }
    return MB_DECLINED;
}

int mb_router_request(struct mb_router *r, struct mb_conn *c, const struct mb_jsonrpc_msg *m,
                      const char *text, size_t len, struct mb_buf *out, struct mb_mcp_outcome *res)
{
    /* Rate limit (DESIGN §3): a rejected request is answered -32029 here. */
    int rc = mb_ratelimiter_request(r->w, c, m, out, res);
    if (rc != MB_DECLINED)
        return rc;
    return route_request(r, c, m, text, len, out, res);
}

void mb_router_notification(struct mb_router *r, struct mb_conn *c, const struct mb_jsonrpc_msg *m,
                            const char *text, size_t len)
{
    static const char *const rid_path[] = {"params", "requestId", NULL};
    struct mb_json_raw rid;
    if (strcmp(m->method, "notifications/cancelled") != 0)
        return; /* roots/list_changed and the like: nothing upstream tracks them yet */
    if (mb_json_path(text, len, rid_path, &rid) != 0)
        return;
    struct mb_pending *p = c->route.head, *next;
    for (; p; p = next) {
        next = p->cnext;
        if (p->cid_len != rid.len || memcmp(p->cid, rid.p, rid.len) != 0) {
            if (!(p->kind == P_PART && p->fan->cid_len == rid.len &&
                  memcmp(p->fan->cid, rid.p, rid.len) == 0))
                continue;
        }
        abandon(p, "cancelled by the client");
    }
}

void mb_router_response(struct mb_router *r, struct mb_conn *c, const struct mb_jsonrpc_msg *m,
                        const char *text, size_t len)
{
    unsigned long long n;
    int used = 0;
    if (sscanf(m->id, "\"mb-s2c-%llu\"%n", &n, &used) != 1 || (size_t)used != m->id_len)
        return;
    for (struct mb_s2c **pp = &c->route.s2c; *pp; pp = &(*pp)->next) {
        struct mb_s2c *s = *pp;
        if (s->n != n)
            continue;
        *pp = s->next;
        struct backend *b = s->b;
        struct mb_json_edit e = {m->id, m->id_len, s->raw_id, s->raw_len};
        struct mb_buf *o = &r->out;
        mb_buf_reset(o);
        if (b->state == B_READY && mb_json_splice(o, text, len, &e, 1) == 0)
            b->up.ops->send(&b->up, o->data, o->len);
        free(s);
        return;
    }
}

int mb_router_capabilities(const struct mb_router *r, struct mb_buf *out, unsigned *sent)
{
    bool prompts = false, resources = false, logging = false, completions = false,
         subscribe = false;
    for (size_t i = 0; r && i < r->n; i++) {
        const cJSON *caps = r->b[i].caps;
        prompts |= cJSON_GetObjectItemCaseSensitive(caps, "prompts") != NULL;
        const cJSON *res = cJSON_GetObjectItemCaseSensitive(caps, "resources");
        resources |= res != NULL;
        subscribe |= cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "subscribe"));
        logging |= cJSON_GetObjectItemCaseSensitive(caps, "logging") != NULL;
        completions |= cJSON_GetObjectItemCaseSensitive(caps, "completions") != NULL;
    }
    if (LIT(out, "{\"tools\":{\"listChanged\":true}"))
        return MB_ERR;
    if (prompts && LIT(out, ",\"prompts\":{\"listChanged\":true}"))
        return MB_ERR;
    if (resources &&
        (subscribe ? LIT(out, ",\"resources\":{\"listChanged\":true,\"subscribe\":true}")
                   : LIT(out, ",\"resources\":{\"listChanged\":true}")))
        return MB_ERR;
    if (logging && LIT(out, ",\"logging\":{}"))
        return MB_ERR;
    if (completions && LIT(out, ",\"completions\":{}"))
        return MB_ERR;
    if (sent != NULL)
        *sent = (prompts ? MB_MCP_CAP_PROMPTS : 0u) | (resources ? MB_MCP_CAP_RESOURCES : 0u);
    return LIT(out, "}");
}

uint64_t mb_router_ready_seq(const struct mb_router *r)
{
    return r->ready_seq;
}

/* ------------------------------------------------ initialize held for backends */

static bool any_starting(const struct mb_router *r)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->b[i].state == B_STARTING)
            return true;
    return false;
}

static void held_arm(struct mb_router *r)
{
    struct ev_loop *loop = r->w->loop;
    ev_timer_stop(loop, &r->held_timer);
    if (r->held == NULL || r->closed)
        return;
    uint64_t now = now_ms(r);
    double in = r->held->deadline_ms > now ? (double)(r->held->deadline_ms - now) / 1000. : 0.;
    ev_timer_set(&r->held_timer, in + 0.001, 0.);
    ev_timer_start(loop, &r->held_timer);
}

/* Unlinks h and answers it with the capabilities ready now (answer false:
 * its client is going away, nothing is sent). */
static void held_finish(struct mb_router *r, struct held_init *h, bool reply)
{
    struct held_init **pp = &r->held;
    while (*pp != h)
        pp = &(*pp)->next;
    *pp = h->next;
    struct mb_conn *c = h->client;
    c->session.init_held = false;
    c->route.inflight--;
    struct mb_buf *o = &r->out;
    mb_buf_reset(o);
    if (reply && mb_mcp_initialize_reply(&c->session, h->id, h->id_len, o) == 0)
        answer(r, c, &h->acct, o->data, o->len, 0, NULL);
    else if (reply)
        mb_log_error("out of memory answering an initialize");
    acct_end(r, &h->acct, c, false, 0, 0, NULL); /* nothing when answered */
    free(h);
}

/* Answers the held initializes once no backend is starting any more. */
static void held_release(struct mb_router *r)
{
    if (r->held == NULL || any_starting(r))
        return;
    while (r->held != NULL)
        held_finish(r, r->held, true);
    held_arm(r);
}

static void on_held_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct mb_router *r = t->data;
    uint64_t now = now_ms(r);
    while (r->held != NULL && r->held->deadline_ms <= now)
        held_finish(r, r->held, true);
    held_arm(r);
}

int mb_router_initialize(struct mb_router *r, struct mb_conn *c, const struct mb_jsonrpc_msg *m,
                         size_t len, struct mb_mcp_outcome *res)
{
    if (!any_starting(r))
        return MB_DECLINED;
    struct held_init *h = malloc(sizeof(*h) + m->id_len);
    if (h == NULL)
        return MB_DECLINED; /* answered at once with what is ready */
    uint64_t wait = (uint64_t)r->conf->routing.request_timeout;
    if (wait > INIT_HOLD_MAX_MS)
        wait = INIT_HOLD_MAX_MS;
    h->next = NULL;
    h->client = c;
    h->deadline_ms = now_ms(r) + wait;
    h->id_len = m->id_len;
    memcpy(h->id, m->id, m->id_len);
    memset(&h->acct, 0, sizeof(h->acct));
    acct_start(r, &h->acct, c, len, res);
    /* Every hold waits the same time: appending keeps deadline order. */
    struct held_init **pp = &r->held;
    while (*pp != NULL)
        pp = &(*pp)->next;
    *pp = h;
    c->route.inflight++; /* the drain waits for the reply */
    c->session.init_held = true;
    if (r->held == h)
        held_arm(r);
    res->replied = false;
    return 0;
}

/* b became ready: sessions answered before that learn of its lists. */
static void notify_ready(struct mb_router *r, struct backend *b)
{
    static const char tools[] =
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}";
    static const char prompts[] =
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/prompts/list_changed\"}";
    static const char resources[] =
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/resources/list_changed\"}";
    bool has_t = cJSON_GetObjectItemCaseSensitive(b->caps, "tools") != NULL;
    bool has_p = cJSON_GetObjectItemCaseSensitive(b->caps, "prompts") != NULL;
    bool has_r = cJSON_GetObjectItemCaseSensitive(b->caps, "resources") != NULL;
    for (struct mb_conn *c = r->w->active.head; c != NULL; c = c->next) {
        const struct mb_mcp_session *s = &c->session;
        if (!c->is_ws || !s->initialized || s->init_held || s->ready_seq >= b->ready_seq)
            continue;
        bool sent_p = s->caps_sent & MB_MCP_CAP_PROMPTS,
             sent_r = s->caps_sent & MB_MCP_CAP_RESOURCES;
        /* tools were always negotiated: the one list_changed every session
         * takes, also when what b adds is a capability it was not given. */
        if (has_t || (has_p && !sent_p) || (has_r && !sent_r))
            send_to_client(c, tools, sizeof(tools) - 1);
        if (has_p && sent_p)
            send_to_client(c, prompts, sizeof(prompts) - 1);
        if (has_r && sent_r)
            send_to_client(c, resources, sizeof(resources) - 1);
    }
}

void mb_router_client_gone(struct mb_router *r, struct mb_conn *c)
{
    for (struct held_init *h = r->held, *next; h != NULL; h = next) {
        next = h->next;
        if (h->client == c)
            held_finish(r, h, false);
    }
    held_arm(r);
    struct mb_pending *p;
    while ((p = c->route.head) != NULL) {
        abandon(p, "the client disconnected");
    }
    struct mb_s2c *s;
    while ((s = c->route.s2c) != NULL) {
        c->route.s2c = s->next;
        reply_upstream_error(s->b, (struct mb_json_raw){s->raw_id, s->raw_len},
                             MB_JSONRPC_INTERNAL_ERROR, "the client disconnected");
        free(s);
    }
}

/* ---------------------------------------------------------------- life */
int mb_router_new(struct mb_worker *w, struct mb_router **out)
{
    const struct mb_conf *conf = w->conf;
    struct mb_router *r = calloc(1, sizeof(*r));
    *out = NULL;
    if (r == NULL)
        return MB_ERR;
    r->w = w;
    r->conf = conf;
    r->n = conf->nbackends;
    r->b = calloc(r->n ? r->n : 1, sizeof(*r->b));
    r->names = calloc(r->n ? r->n : 1, sizeof(*r->names));
    if (r->b == NULL || r->names == NULL)
        goto fail;
    /* Caches: this process's writes carry its worker record (crash repair). */
    for (uint32_t i = 0; i < MB_CACHE_KINDS; i++)
        mb_cache_set_owner(&w->shm->caches[i], w->index);
    r->disc_on = conf->caching.enabled && conf->caching.discovery_cache.enabled &&
                 w->shm->caches[MB_CACHE_DISCOVERY].hdr != NULL;
    r->resp_on = conf->caching.enabled && conf->caching.response_cache.enabled &&
                 w->shm->caches[MB_CACHE_RESPONSE].hdr != NULL;
    ev_timer_init(&r->poll, on_poll, POLL_MS / 1000., POLL_MS / 1000.);
    r->poll.data = r;
    ev_timer_init(&r->held_timer, on_held_timer, 1., 0.);
    r->held_timer.data = r;
    r->prefix = conf->routing.prefix == MB_PREFIX_ALWAYS ||
                (conf->routing.prefix == MB_PREFIX_AUTO && r->n > 1);
    for (size_t i = 0; i < r->n; i++) {
        struct backend *b = &r->b[i];
        b->r = r;
        b->index = i;
        b->conf = &conf->backends[i];
        b->bstat = mb_metrics_backend_attach(w, b->conf);
        b->confhash = mb_cachekey_backend_hash(b->conf);
        b->state = B_STARTING;
        snprintf(b->why, sizeof(b->why), "starting");
        r->names[i] = b->conf->name;
        ev_timer_init(&b->timer, on_timer, 1., 0.);
        b->timer.data = b;
        b->up.conf = conf;
        b->up.bconf = b->conf;
        b->up.w = w;
        b->up.loop = w->loop;
        b->up.ev = &events;
        b->up.owner = b;
        int rc = MB_ERR;
        switch (b->conf->transport) {
        case MB_TRANSPORT_STDIO:
            rc = mb_upstream_stdio_init(&b->up);
            break;
        case MB_TRANSPORT_HTTP:
            rc = mb_upstream_http_init(&b->up);
            break;
        case MB_TRANSPORT_WEBSOCKET:
            rc = mb_upstream_ws_init(&b->up);
            break;
        default:
            mb_log_error("backend %s: transport not built", b->conf->name);
            break;
        }
        if (rc != 0) {
            b->state = B_CLOSED;
            goto fail;
        }
    }
    for (size_t i = 0; i < r->n; i++)
        if (r->b[i].up.ops->start(&r->b[i].up) != 0) {
            r->b[i].state = B_DOWN;
            snprintf(r->b[i].why, sizeof(r->b[i].why), "could not be started");
        }
    *out = r;
    return 0;
fail:
    mb_router_close(r);
    mb_router_free(&r);
    return MB_ERR;
}

void mb_router_close(struct mb_router *r)
{
    if (r != NULL) {
        r->closed = true;
        ev_timer_stop(r->w->loop, &r->poll);
        ev_timer_stop(r->w->loop, &r->held_timer);
    }
    for (size_t i = 0; r && i < r->n; i++) {
        struct backend *b = &r->b[i];
        ev_timer_stop(r->w->loop, &b->timer);
        if (b->up.ops && b->up.impl)
            b->up.ops->close(&b->up);
        b->state = B_CLOSED;
    }
}

void mb_router_free(struct mb_router **rp)
{
    struct mb_router *r = *rp;
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++) {
        struct backend *b = &r->b[i];
        while (b->head)
            drop_pending(b->head);
        cJSON_Delete(b->caps);
        for (int k = 0; k < MB_LIST_KINDS; k++)
            cJSON_Delete(b->learned[k]);
    }
    while (r->held != NULL)
        held_finish(r, r->held, false);
    for (size_t i = 0; i < r->n; i++)
        cJSON_Delete(r->b[i].annotated);
    for (int k = 0; k < MB_LIST_KINDS; k++) {
        mb_buf_free(&r->memo[k].in);
        mb_buf_free(&r->memo[k].body);
    }
    mb_flights_clear(&r->flights);
    mb_buf_free(&r->cval);
    mb_buf_free(&r->canon);
    while (r->spare != NULL) {
        struct mb_pending *p = r->spare;
        r->spare = p->bnext;
        free(p);
    }
    mb_idmap_free(&r->ids);
    mb_buf_free(&r->out);
    free(r->b);
    free(r->names);
    free(r);
    *rp = NULL;
}
