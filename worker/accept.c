/*
 * worker/accept.c — accepting on the listening sockets this worker inherited.
 *
 * lws 4.1.6 cannot be handed an already-listening socket (DESIGN §9), so the
 * worker watches each one with its own ev_io on the loop it shares with lws,
 * accepts, and gives every new socket to lws with
 * lws_adopt_descriptor_vhost(LWS_ADOPT_SOCKET | LWS_ADOPT_HTTP |
 * LWS_ADOPT_ALLOW_SSL). The sockets are SO_REUSEPORT and owned by the master:
 * closing the worker's copy (graceful stop) leaves them listening for the
 * next generation, so no queued connection is lost.
 *
 * Limits: a connection beyond the per-worker limit (server.max_connections,
 * capped by what the fd limit allows) is accepted and closed at once rather
 * than left to time out in the backlog; it is counted and logged (at most
 * one line per second). When the process or the system is out of
 * descriptors, accepting pauses for 100 ms instead of spinning on a
 * readable socket it cannot accept from.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/log.h"
#include "worker/worker.h"

/* Accepts per readiness callback, so a flood of new connections cannot
 * starve the connections already open (the watcher fires again). */
#define ACCEPT_BATCH 256
#define PAUSE_S      0.1

static void pause_accepting(struct mb_worker *w)
{
    for (size_t i = 0; i < w->nlisten; i++)
        ev_io_stop(w->loop, &w->listeners[i].io);
    ev_timer_set(&w->accept_pause, PAUSE_S, 0.);
    ev_timer_start(w->loop, &w->accept_pause);
}

static void on_pause_end(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct mb_worker *w = t->data;
    if (w->phase != MB_PHASE_RUNNING)
        return;
    for (size_t i = 0; i < w->nlisten; i++)
        if (w->listeners[i].fd != -1)
            ev_io_start(loop, &w->listeners[i].io);
}

static void reject(struct mb_worker *w, int fd)
{
    static uint64_t last_log_ms;
    close(fd);
    w->rejected++;
    uint64_t now = mb_worker_now_ms(w);
    if (now - last_log_ms >= 1000) {
        last_log_ms = now;
        mb_log_warn("connection limit reached (%u open, limit %u): closed new connections, "
                    "%llu so far",
                    w->nconns, w->max_conns, (unsigned long long)w->rejected);
    }
}

static void adopt(struct mb_worker *w, int fd)
{
    /* Small request/response messages: do not let Nagle hold a reply back
     * waiting for the client's delayed ACK. Failure only costs latency. */
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    lws_sock_file_fd_type d;
    d.sockfd = fd;
    /* On failure lws has closed the socket (and freed its state). */
    if (lws_adopt_descriptor_vhost(w->vh, LWS_ADOPT_SOCKET | LWS_ADOPT_HTTP | LWS_ADOPT_ALLOW_SSL,
                                   d, NULL, NULL) == NULL)
        mb_log_warn("lws could not adopt an accepted connection");
}

static void on_readable(struct ev_loop *loop, ev_io *io, int revents)
{
    struct mb_listener *l = (struct mb_listener *)io;
    struct mb_worker *w = l->w;

    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            switch (errno) {
            case EINTR:
            case ECONNABORTED:
            case EPROTO:
                continue;
            case EAGAIN:
#if EWOULDBLOCK != EAGAIN
            case EWOULDBLOCK:
#endif
                return;
            case EMFILE:
            case ENFILE:
            case ENOBUFS:
            case ENOMEM:
                mb_log_error("accept on listener %d: %s: pausing accepts for 100 ms",
                             (int)(l - w->listeners), strerror(errno));
                pause_accepting(w);
                return;
            default:
                mb_log_error("accept on listener %d: %s", (int)(l - w->listeners), strerror(errno));
                pause_accepting(w);
                return;
            }
        }
        if (w->nconns >= w->max_conns)
            reject(w, fd);
        else
            adopt(w, fd);
    }
}

int mb_accept_start(struct mb_worker *w, const int *fds, size_t n)
{
    w->listeners = calloc(n ? n : 1, sizeof(*w->listeners));
    if (w->listeners == NULL) {
        mb_log_error("starting listeners: out of memory");
        return MB_ERR;
    }
    w->nlisten = n;
    ev_timer_init(&w->accept_pause, on_pause_end, PAUSE_S, 0.);
    w->accept_pause.data = w;
    for (size_t i = 0; i < n; i++) {
        struct mb_listener *l = &w->listeners[i];
        l->fd = fds[i];
        l->w = w;
        ev_io_init(&l->io, on_readable, l->fd, EV_READ);
        ev_io_start(w->loop, &l->io);
    }
    return 0;
}

void mb_accept_close(struct mb_worker *w)
{
    ev_timer_stop(w->loop, &w->accept_pause);
    for (size_t i = 0; i < w->nlisten; i++) {
        struct mb_listener *l = &w->listeners[i];
        if (l->fd == -1)
            continue;
        ev_io_stop(w->loop, &l->io);
        if (close(l->fd) == -1)
            mb_log_warn("closing listener %zu: %s", i, strerror(errno));
        l->fd = -1;
    }
}
