/*
 * worker/drain.c — graceful stop (SIGQUIT from the master: reload, or
 * `mcp-bridge -s quit`).
 *
 * The drain protocol
 *
 *   1. Stop accepting. The worker stops watching its listening sockets and
 *      closes its copies of them; the master keeps the sockets open, so
 *      connections still queued there are accepted by the next generation.
 *      The worker's shm record goes to DRAINING.
 *
 *   2. Let every open connection finish, then close it. Every 100 ms the
 *      worker walks its connections from the least recently active one and
 *      closes each connection that is quiet: nothing queued for it and
 *      nothing received from or sent to it for DRAIN_QUIET_MS (1 s).
 *        - A WebSocket is closed with 1001 "going away".
 *        - A plain HTTP connection is closed (one that sends a request
 *          before that gets its response with "connection: close").
 *      The quiet period is what makes a reload lose nothing: a client that
 *      connected just before the QUIT and has not sent its request yet, or
 *      that has one in flight, is not cut off; a client that keeps sending
 *      keeps its connection until shutdown_timeout. "In flight" means a
 *      reply queued for the client or a request of the client still waiting
 *      at a backend (conn.h mb_conn_idle_out: router.c counts them), so a
 *      reload never cuts off a slow tools/call.
 *
 *   3. Exit 0 as soon as no connection is left.
 *
 *   4. If server.shutdown_timeout passes first, the remaining connections are
 *      told to close (WebSockets with 1001, dropping what is still queued;
 *      at most MB_CONN_CLOSE_BUDGET of them, see close_all), the worker waits
 *      FINAL_GRACE_MS more for the close frames to go out, then leaves the
 *      loop; lws_context_destroy() closes what is left and the worker exits 0.
 *
 *   Closes are started at most MB_CONN_CLOSE_BUDGET per 100 ms tick (conn.h
 *   says why), so 10,000 quiet connections take about two seconds to close.
 *
 * SIGTERM/SIGINT (fast stop) skip all of this: mb_worker_stop() leaves the
 * loop at once. A QUIT during a drain changes nothing; a TERM during a drain
 * stops at once.
 */
#include "common/log.h"
#include "conf/conf.h"
#include "shm/shm.h"
#include "worker/conn.h"
#include "worker/metrics.h"
#include "worker/worker.h"

#define DRAIN_QUIET_MS 1000
#define DRAIN_TICK_S   0.1
#define FINAL_GRACE_MS 500

/* Each close arms lws's close-handshake timer, and arming a timer walks the
 * others (conn.h): closing a few hundred per tick keeps a drain of 10,000
 * connections linear. */
static void close_quiet(struct mb_worker *w, uint64_t now)
{
    int budget = MB_CONN_CLOSE_BUDGET;
    struct mb_conn *next;
    for (struct mb_conn *c = w->active.head;
         c != NULL && c->last_active_ms + DRAIN_QUIET_MS <= now && budget > 0; c = next) {
        next = c->next; /* mb_conn_close moves c to the closing list */
        if (mb_conn_idle_out(c)) {
            mb_conn_close(c, LWS_CLOSE_STATUS_GOINGAWAY, "going away");
            budget--;
        }
    }
}

/* shutdown_timeout: the first MB_CONN_CLOSE_BUDGET connections get a 1001,
 * lws_context_destroy() drops the rest when the loop ends. */
static void close_all(struct mb_worker *w)
{
    int budget = MB_CONN_CLOSE_BUDGET;
    struct mb_conn *next;
    for (struct mb_conn *c = w->active.head; c != NULL && budget-- > 0; c = next) {
        next = c->next;
        mb_conn_close(c, LWS_CLOSE_STATUS_GOINGAWAY, "going away");
    }
}

static void on_drain_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct mb_worker *w = t->data;
    uint64_t now = mb_worker_now_ms(w);

    if (w->nconns == 0) {
        mb_worker_stop(w);
        return;
    }
    if (w->phase == MB_PHASE_DRAINING && now >= w->drain_deadline_ms) {
        mb_log_warn("shutdown_timeout expired with %u connections open: closing them", w->nconns);
        w->phase = MB_PHASE_CLOSING;
        w->drain_deadline_ms = now + FINAL_GRACE_MS;
        close_all(w);
        mb_worker_kick_lws(w);
        return;
    }
    if (w->phase == MB_PHASE_CLOSING) {
        if (now >= w->drain_deadline_ms)
            mb_worker_stop(w);
        return;
    }
    close_quiet(w, now);
    mb_worker_kick_lws(w);
}

void mb_drain_start(struct mb_worker *w)
{
    if (w->phase != MB_PHASE_RUNNING)
        return;
    w->phase = MB_PHASE_DRAINING;
    mb_accept_close(w);
    mb_metrics_stop_accepting(w); /* the next generation answers scrapes */
    mb_shm_worker_set_state(w->shm, w->index, MB_WORKER_DRAINING);
    mb_log_info("graceful stop: draining %u connections (shutdown_timeout %lld ms)", w->nconns,
                (long long)w->conf->server.shutdown_timeout);
    if (w->nconns == 0) {
        mb_worker_stop(w);
        return;
    }
    w->drain_deadline_ms = mb_worker_now_ms(w) + (uint64_t)w->conf->server.shutdown_timeout;
    ev_timer_init(&w->drain_timer, on_drain_tick, DRAIN_TICK_S, DRAIN_TICK_S);
    w->drain_timer.data = w;
    ev_timer_start(w->loop, &w->drain_timer);
}

void mb_drain_conn_gone(struct mb_worker *w)
{
    if ((w->phase == MB_PHASE_DRAINING || w->phase == MB_PHASE_CLOSING) && w->nconns == 0)
        mb_worker_stop(w);
}
