/*
 * worker/worker.c — the worker process: mb_worker_main() (common/process.h).
 *
 * Order of start-up, and why:
 *   1. Signal dispositions first (HUP and PIPE ignored, everything the master
 *      may have set reset), then close every inherited descriptor the worker
 *      does not need (other slots' sockets, the master's files).
 *   2. Raise the soft RLIMIT_NOFILE to the hard limit before lws sizes its fd
 *      tables, and log how many connections that allows (DESIGN §9).
 *   3. Create the libev loop (epoll) and only then the lws context, on the
 *      libev event-lib plugin with this loop as a foreign loop: a context
 *      made before fork would share its wake-up eventfd with the siblings,
 *      and a foreign loop leaves signals and shutdown to the worker, not lws.
 *      The context has no listener (CONTEXT_PORT_NO_LISTEN_SERVER); accept.c
 *      feeds it.
 *   4. Watch the listening sockets, set the shm record RUNNING, run.
 *
 * Signals (ev_signal watchers on the worker's loop): QUIT graceful stop
 * (drain.c), TERM and INT fast stop, USR1 reopen the log. A 1 s timer beats
 * the heartbeat in shm and runs the connection sweep (pings, idle timeout).
 *
 * Exit status: 0 when told to stop, 1 when the worker cannot start or run
 * (the master respawns it), 2 for a configuration it can never serve.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/log.h"
#include "common/process.h"
#include "conf/conf.h"
#include "shm/shm.h"
#include "worker/accesslog.h"
#include "worker/conn.h"
#include "worker/metrics.h"
#include "worker/worker.h"

/* Descriptors a worker needs besides its connections: listening sockets are
 * counted separately; this covers epoll, the signal pipe, lws's eventfd, the
 * log and a margin for what later issues add (upstreams, memcached). */
#define FD_RESERVE 64

static bool lws_started;

/* lws logs client mistakes (a malformed upgrade, a bad frame) as errors;
 * once the context runs, they go to debug so a client cannot flood the log.
 * Before that, an lws error is a real start-up problem. */
static void lws_log_line(int level, const char *line)
{
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    int mine = !lws_started && level == LLL_ERR ? MB_LOG_ERROR : MB_LOG_DEBUG;
    if (mine == MB_LOG_DEBUG && mb_log_level() < MB_LOG_DEBUG)
        return;
    mb_log(mine, "lws: %.*s", (int)n, line);
}

void mb_worker_stop(struct mb_worker *w)
{
    w->phase = MB_PHASE_STOPPED;
    ev_break(w->loop, EVBREAK_ALL);
}

void mb_worker_kick_lws(struct mb_worker *w)
{
    if (!w->kick_lws || w->ctx == NULL)
        return;
    w->kick_lws = false;
    lws_cancel_service(w->ctx);
}

static int setup_signals(void)
{
    static const int reset[] = {SIGCHLD, SIGUSR2, SIGWINCH, SIGALRM,
                                SIGTERM, SIGINT,  SIGQUIT,  SIGUSR1};
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGHUP, &sa, NULL) == -1 || sigaction(SIGPIPE, &sa, NULL) == -1)
        return -errno;
    sa.sa_handler = SIG_DFL;
    for (size_t i = 0; i < sizeof(reset) / sizeof(reset[0]); i++)
        if (sigaction(reset[i], &sa, NULL) == -1)
            return -errno;
    return 0;
}

static bool is_listen_fd(const struct mb_worker_args *a, int fd)
{
    for (size_t i = 0; i < a->nlisten; i++)
        if (a->listen_fds[i] == fd)
            return true;
    return fd == a->metrics_fd;
}

/* Closes what the worker inherited and does not use. */
static void close_inherited(const struct mb_worker_args *a)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) {
        mb_log_warn("listing inherited descriptors: %s (left open)", strerror(errno));
        return;
    }
    int dfd = dirfd(d), keep_log = mb_log_fd();
    int close_list[256], n = 0;
    struct dirent *e;
    /* Collect first, close after: closing while reading the directory
     * would change what it lists. */
    while ((e = readdir(d)) != NULL && n < (int)(sizeof(close_list) / sizeof(close_list[0]))) {
        char *endp;
        long fd = strtol(e->d_name, &endp, 10);
        if (*endp != '\0' || e->d_name[0] == '\0' || fd <= 2 || fd == dfd || fd == keep_log ||
            is_listen_fd(a, (int)fd))
            continue;
        close_list[n++] = (int)fd;
    }
    closedir(d);
    for (int i = 0; i < n; i++)
        close(close_list[i]);
}

/* Raises the soft fd limit and returns how many connections fit. */
static uint32_t fd_capacity(size_t nlisten)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
        mb_log_warn("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
        return 1024 - FD_RESERVE;
    }
    rlim_t before = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
            mb_log_warn("raising the fd limit from %llu to %llu: %s", (unsigned long long)before,
                        (unsigned long long)rl.rlim_max, strerror(errno));
            rl.rlim_cur = before;
        }
    }
    rlim_t cur = rl.rlim_cur == RLIM_INFINITY ? 1u << 20 : rl.rlim_cur;
    rlim_t room = cur > FD_RESERVE + nlisten ? cur - FD_RESERVE - nlisten : 0;
    if (room > UINT32_MAX)
        room = UINT32_MAX;
    mb_log_info("fd limit %llu (hard %llu): room for %llu client connections in this worker",
                (unsigned long long)cur, (unsigned long long)rl.rlim_max, (unsigned long long)room);
    return (uint32_t)room;
}

static void on_signal(struct ev_loop *loop, ev_signal *s, int revents)
{
    struct mb_worker *w = s->data;
    switch (s->signum) {
    case SIGQUIT:
        mb_drain_start(w);
        break;
    case SIGTERM:
    case SIGINT:
        mb_log_info("fast stop (signal %d): closing %u connections", s->signum, w->nconns);
        mb_worker_stop(w);
        break;
    case SIGUSR1: {
        int rc = mb_log_reopen();
        if (rc != 0)
            mb_log_error("reopening the log: %s (kept the old one)", strerror(-rc));
        mb_accesslog_reopen(w); /* logs its own failure */
        break;
    }
    default:
        break;
    }
}

/* Replies queued during this loop iteration go out before it waits
 * (conn.h "Output"). */
static void on_flush(struct ev_loop *loop, ev_prepare *p, int revents)
{
    struct mb_worker *w = p->data;
    if (w->flush_head != NULL)
        mb_conn_flush(w);
}

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct mb_worker *w = t->data;
    mb_shm_worker_heartbeat(w->shm, w->index);
    mb_conn_sweep(w, mb_worker_now_ms(w));
    mb_worker_kick_lws(w);
}

static void start_signal(struct mb_worker *w, ev_signal *s, int signum)
{
    ev_signal_init(s, on_signal, signum);
    s->data = w;
    ev_signal_start(w->loop, s);
}

static int create_lws(struct mb_worker *w)
{
    const struct mb_conf_server *sv = &w->conf->server;
    struct lws_context_creation_info info;
    void *foreign[1] = {w->loop};

    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_line);
    mb_ws_protocols_init(w);
    w->tx_batch = (size_t)sv->websocket.write_buffer_size;

    /* lws's keep-alive ("validity") timers stay off: each would be one more
     * entry in lws's sorted timer list per connection (conn.h says why that
     * hurts). conn.c sends the pings of server.websocket.ping_interval. */
    memset(&w->retry, 0, sizeof(w->retry));

    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_LIBEV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
                   LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_SKIP_SERVER_CANONICAL_NAME;
    info.foreign_loops = foreign;
    info.user = w;
    info.count_threads = 1;
    /* The per-thread buffer lws reads HTTP into and builds HTTP output in:
     * the HTTP side of server.read_buffer_size / write_buffer_size. lws needs
     * at least 4 KiB there for request headers. */
    uint64_t serv =
        sv->read_buffer_size > sv->write_buffer_size ? sv->read_buffer_size : sv->write_buffer_size;
    if (serv < 4096)
        serv = 4096;
    if (serv > 16u * 1024 * 1024)
        serv = 16u * 1024 * 1024;
    info.pt_serv_buf_size = (unsigned int)serv;
    w->ctx = lws_create_context(&info);
    if (w->ctx == NULL) {
        mb_log_error("creating the lws context (libev plugin %s) failed",
                     "libwebsockets-evlib_ev.so");
        return MB_ERR;
    }

    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.vhost_name = "mcp-bridge";
    info.protocols = w->protocols;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_SKIP_SERVER_CANONICAL_NAME;
    info.retry_and_idle_policy = &w->retry;
    /* HTTP keep-alive connections idle this long are closed by lws. */
    mb_msec_t ka = (sv->idle_timeout + 999) / 1000;
    info.keepalive_timeout = ka > 0 && ka < 1000000 ? (int)ka : 300;
    w->vh = lws_create_vhost(w->ctx, &info);
    if (w->vh == NULL) {
        mb_log_error("creating the lws vhost failed");
        return MB_ERR;
    }
    lws_started = true;
    return 0;
}

int mb_worker_main(const struct mb_worker_args *args)
{
    struct mb_worker *w = calloc(1, sizeof(*w));
    int status = MB_EXIT_ERROR;
    if (w == NULL) {
        mb_log_error("worker start: out of memory");
        return MB_EXIT_ERROR;
    }
    w->conf = args->conf;
    w->shm = args->shm;
    w->index = args->worker_index;
    mb_log_set_role("worker", args->slot);

    int rc = setup_signals();
    if (rc != 0) {
        mb_log_error("setting signal dispositions: %s", strerror(-rc));
        goto out;
    }
    close_inherited(args);

    for (size_t i = 0; i < w->conf->server.nlisten; i++)
        if (w->conf->server.listen[i].tls.enabled) {
            mb_log_error("server.listen[%zu].tls: TLS listeners are not supported yet", i);
            status = MB_EXIT_FATAL;
            goto out;
        }
    if (args->nlisten != w->conf->server.nlisten)
        mb_log_warn("got %zu listening sockets for %zu listeners", args->nlisten,
                    w->conf->server.nlisten);

    uint32_t room = fd_capacity(args->nlisten);
    w->max_conns = w->conf->server.max_connections;
    if (w->max_conns > room) {
        mb_log_warn("server.max_connections %u is more than the fd limit allows: %u per worker",
                    w->max_conns, room);
        w->max_conns = room;
    }

    w->loop = ev_loop_new(EVBACKEND_EPOLL);
    if (w->loop == NULL) {
        mb_log_error("creating the event loop (libev, epoll) failed");
        goto out;
    }
    start_signal(w, &w->sig_quit, SIGQUIT);
    start_signal(w, &w->sig_term, SIGTERM);
    start_signal(w, &w->sig_int, SIGINT);
    start_signal(w, &w->sig_usr1, SIGUSR1);
    /* The master may fork with signals blocked; the watchers need them. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    if (create_lws(w) != 0)
        goto out;
    /* Backends before clients: their children are forked before the
     * worker holds any client socket. */
    if (mb_router_new(w, &w->router) != 0) {
        mb_log_error("starting the backends failed");
        goto out;
    }
    if (mb_accept_start(w, args->listen_fds, args->nlisten) != 0)
        goto out;
    mb_accesslog_open(w, args->slot);
    if (mb_metrics_start(w, args->metrics_fd) != 0)
        goto out;

    ev_timer_init(&w->tick, on_tick, 1., 1.);
    w->tick.data = w;
    ev_timer_start(w->loop, &w->tick);
    ev_prepare_init(&w->flush, on_flush);
    w->flush.data = w;
    ev_prepare_start(w->loop, &w->flush);

    mb_shm_worker_set_state(w->shm, w->index, MB_WORKER_RUNNING);
    mb_shm_worker_heartbeat(w->shm, w->index);
    mb_log_info("serving %zu listeners, generation %llu, up to %u connections", args->nlisten,
                (unsigned long long)args->generation, w->max_conns);

    ev_run(w->loop, 0);

    if (w->phase != MB_PHASE_STOPPED)
        mb_log_error("event loop ended unexpectedly");
    else
        status = MB_EXIT_OK;

out:
    if (w->loop) {
        if (w->listeners)
            mb_accept_close(w);
        w->phase = MB_PHASE_STOPPED;
        /* Upstreams first (stdio children get end of input, then TERM),
         * while the clients still exist; their requests are then dropped
         * without sending anything. */
        mb_router_close(w->router);
        if (w->ctx) {
            /* Closes every remaining connection (WSI_DESTROY frees them). */
            lws_context_destroy(w->ctx);
            w->ctx = NULL;
        }
        mb_metrics_free(w);
        mb_accesslog_close(w);
        ev_timer_stop(w->loop, &w->tick);
        ev_prepare_stop(w->loop, &w->flush);
        ev_timer_stop(w->loop, &w->drain_timer);
        mb_router_free(&w->router);
        ev_loop_destroy(w->loop);
    }
    mb_log_info("exiting with status %d", status);
    mb_buf_free(&w->reply);
    mb_buf_free(&w->tx_scratch);
    free(w->listeners);
    free(w);
    return status;
}
