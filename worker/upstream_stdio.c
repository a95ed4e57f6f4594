/*
 * worker/upstream_stdio.c — the stdio transport (upstream.h): one child
 * process per worker per backend, newline-delimited JSON on its stdin and
 * stdout, its stderr lines logged with the backend's name.
 *
 * Supervision. The child is spawned from a zero-delay timer after start()
 * (never inside start, per the contract) and reported UP at once: a pipe
 * takes messages before the program has read them. It is DOWN when its
 * stdout ends, a write fails, or it exits; the worker then reaps it (SIGCHLD
 * through one ev_signal watcher shared by all stdio upstreams of the worker:
 * ev_child only works on libev's default loop, and the worker's loop is not
 * that one), reads what it had still written, and spawns it again after a
 * backoff: 100 ms, doubling up to 5 s, back to 100 ms once a child stayed up
 * for 10 s. A child whose stdout closed but that does not exit is sent TERM.
 *
 * The child: stdin, stdout and stderr are pipes; cwd and env from the
 * config (env adds to the worker's environment); signal dispositions and
 * mask back to defaults (the worker ignores SIGPIPE and SIGHUP, and ignored
 * signals survive exec); PR_SET_PDEATHSIG TERM, so a worker killed with
 * SIGKILL does not leave it behind. It stays in the worker's process group.
 *
 * close(): close stdin (a well-behaved server exits at end of input), wait
 * up to 1 s, TERM, wait up to 1 s, KILL, reap. It runs after the event loop
 * ended, so it polls waitpid instead of waiting on the loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/log.h"
#include "conf/conf.h"
#include "worker/buf.h"
#include "worker/upstream.h"

#define BACKOFF_MIN_S   0.1
#define BACKOFF_MAX_S   5.0
#define STABLE_S        10.0
#define MAX_LINE        (64u * 1024 * 1024) /* a line longer than this is a broken peer */
#define STDERR_LINE_MAX 4096

struct stdio_up {
    struct mb_upstream *u;
    struct stdio_up *next; /* in the worker's list of stdio upstreams */
    pid_t pid;             /* 0 = no child */
    int in_fd, out_fd, err_fd;
    ev_io in_w, out_w, err_w;
    ev_timer spawn_t;
    struct mb_buf rbuf, ebuf, wbuf;
    size_t woff;
    double backoff;
    double up_at;
    bool up;
    bool exited; /* reaped; status holds the wait status */
    int status;
    bool closing;
};

/* All stdio upstreams of this process, for the SIGCHLD watcher. */
static struct stdio_up *all;
static ev_signal sigchld;
static struct ev_loop *sigchld_loop;

static void close_fd(struct ev_loop *loop, ev_io *w, int *fd)
{
    if (*fd < 0)
        return;
    ev_io_stop(loop, w);
    close(*fd);
    *fd = -1;
}

static void describe_status(int status, char *buf, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(buf, cap, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, cap, "killed by signal %d", WTERMSIG(status));
    else
        snprintf(buf, cap, "ended (wait status %d)", status);
}

static void deliver_lines(struct stdio_up *s)
{
    size_t start = 0;
    struct mb_buf *b = &s->rbuf;
    for (;;) {
        char *nl = memchr(b->data + start, '\n', b->len - start);
        if (nl == NULL)
            break;
        size_t end = (size_t)(nl - b->data), n = end - start;
        while (n > 0 && (b->data[start + n - 1] == '\r' || b->data[start + n - 1] == ' '))
            n--;
        if (n > 0 && s->u->ev->on_message)
            s->u->ev->on_message(s->u->owner, b->data + start, n);
        start = end + 1;
        if (s->out_fd < 0 && s->pid == 0)
            break; /* the callback closed us */
    }
    if (start > 0) {
        memmove(b->data, b->data + start, b->len - start);
        b->len -= start;
    }
}

static void schedule_spawn(struct stdio_up *s, double delay)
{
    ev_timer_stop(s->u->loop, &s->spawn_t);
    ev_timer_set(&s->spawn_t, delay, 0.);
    ev_timer_start(s->u->loop, &s->spawn_t);
}

/* The child is gone (reaped) and its output read: report and respawn. */
static void finish_child(struct stdio_up *s, const char *why)
{
    struct ev_loop *loop = s->u->loop;
    close_fd(loop, &s->in_w, &s->in_fd);
    close_fd(loop, &s->out_w, &s->out_fd);
    close_fd(loop, &s->err_w, &s->err_fd);
    mb_buf_reset(&s->rbuf);
    mb_buf_reset(&s->wbuf);
    s->woff = 0;
    s->pid = 0;
    if (ev_now(loop) - s->up_at >= STABLE_S)
        s->backoff = BACKOFF_MIN_S;
    mb_log_warn("backend %s: child %s; restarting in %.0f ms", s->u->bconf->name, why,
                s->backoff * 1000);
    double delay = s->backoff;
    s->backoff = s->backoff * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : s->backoff * 2;
    if (!s->closing)
        schedule_spawn(s, delay);
    if (s->up) {
        s->up = false;
        s->u->ev->on_state(s->u->owner, MB_UPSTREAM_DOWN, why);
    }
}

/* The peer can no longer be talked to (stdout ended, a write failed): tell
 * the core now, and make sure the child goes away so it can be respawned. */
static void lost(struct stdio_up *s, const char *why)
{
    struct ev_loop *loop = s->u->loop;
    close_fd(loop, &s->in_w, &s->in_fd);
    close_fd(loop, &s->out_w, &s->out_fd);
    if (s->pid > 0 && !s->exited)
        kill(s->pid, SIGTERM);
    if (s->up) {
        s->up = false;
        s->u->ev->on_state(s->u->owner, MB_UPSTREAM_DOWN, why);
    }
}

static void read_out(struct stdio_up *s)
{
    for (;;) {
        if (mb_buf_reserve(&s->rbuf, 65536) != 0) {
            lost(s, "out of memory reading its output");
            return;
        }
        ssize_t n = read(s->out_fd, s->rbuf.data + s->rbuf.len, s->rbuf.cap - s->rbuf.len - 1);
        if (n > 0) {
            s->rbuf.len += (size_t)n;
            deliver_lines(s);
            if (s->out_fd < 0)
                return;
            if (s->rbuf.len > MAX_LINE) {
                mb_log_error("backend %s: a line longer than %u bytes: dropping the child",
                             s->u->bconf->name, MAX_LINE);
                lost(s, "protocol violation: line too long");
                return;
            }
            continue;
        }
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && errno == EAGAIN)
            return;
        /* End of output, or a read error. */
        lost(s, n == 0 ? "closed its stdout" : strerror(errno));
        return;
    }
}

static void on_out(struct ev_loop *loop, ev_io *w, int revents)
{
    read_out(w->data);
}

static void log_err_lines(struct stdio_up *s, bool flush)
{
    struct mb_buf *b = &s->ebuf;
    size_t start = 0;
    for (;;) {
        char *nl = memchr(b->data + start, '\n', b->len - start);
        size_t end = nl ? (size_t)(nl - b->data) : b->len;
        if (nl == NULL && !flush && end - start < STDERR_LINE_MAX)
            break;
        if (end > start)
            mb_log_info("backend %s: %.*s", s->u->bconf->name, (int)(end - start), b->data + start);
        start = nl ? end + 1 : end;
        if (start >= b->len)
            break;
    }
    memmove(b->data, b->data + start, b->len - start);
    b->len -= start;
}

static void on_err(struct ev_loop *loop, ev_io *w, int revents)
{
    struct stdio_up *s = w->data;
    char tmp[4096];
    ssize_t n = read(s->err_fd, tmp, sizeof(tmp));
    if (n > 0) {
        if (mb_buf_append(&s->ebuf, tmp, (size_t)n) == 0)
            log_err_lines(s, false);
        return;
    }
    if (n == -1 && (errno == EINTR || errno == EAGAIN))
        return;
    log_err_lines(s, true);
    close_fd(loop, &s->err_w, &s->err_fd);
}

static int flush_out(struct stdio_up *s)
{
    while (s->woff < s->wbuf.len) {
        ssize_t n = write(s->in_fd, s->wbuf.data + s->woff, s->wbuf.len - s->woff);
        if (n > 0) {
            s->woff += (size_t)n;
            continue;
        }
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && errno == EAGAIN) {
            ev_io_start(s->u->loop, &s->in_w);
            return 0;
        }
        return -1;
    }
    mb_buf_reset(&s->wbuf);
    s->woff = 0;
    ev_io_stop(s->u->loop, &s->in_w);
    return 0;
}

static void on_in(struct ev_loop *loop, ev_io *w, int revents)
{
    struct stdio_up *s = w->data;
    if (flush_out(s) != 0)
        lost(s, "writing to its stdin failed");
}

static void reap(struct stdio_up *s)
{
    int status;
    if (s->pid <= 0 || s->exited)
        return;
    pid_t r = waitpid(s->pid, &status, WNOHANG);
    if (r != s->pid)
        return;
    s->exited = true;
    s->status = status;
    /* What it wrote before it died is still in the pipe. */
    if (s->out_fd >= 0)
        read_out(s);
    if (s->err_fd >= 0) {
        on_err(s->u->loop, &s->err_w, 0);
        log_err_lines(s, true);
    }
    char why[96];
    describe_status(status, why, sizeof(why));
    finish_child(s, why);
}

static void on_sigchld(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct stdio_up *next;
    for (struct stdio_up *s = all; s != NULL; s = next) {
        next = s->next;
        reap(s);
    }
}

static void child_exec(const struct mb_conf_backend *b, int in_r, int out_w, int err_w)
{
    struct sigaction sa;
    sigset_t none;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &sa, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (dup2(in_r, 0) == -1 || dup2(out_w, 1) == -1 || dup2(err_w, 2) == -1)
        _exit(127);
    if (b->cwd && chdir(b->cwd) == -1) {
        dprintf(2, "chdir %s: %s\n", b->cwd, strerror(errno));
        _exit(127);
    }
    for (size_t i = 0; i < b->env.n; i++)
        setenv(b->env.keys[i], b->env.values[i], 1);
    char *argv[b->command.n + 1];
    for (size_t i = 0; i < b->command.n; i++)
        argv[i] = b->command.v[i];
    argv[b->command.n] = NULL;
    execvp(argv[0], argv);
    dprintf(2, "cannot run %s: %s\n", b->command.v[0], strerror(errno));
    _exit(127);
}

static void spawn(struct stdio_up *s)
{
    const struct mb_conf_backend *b = s->u->bconf;
    struct ev_loop *loop = s->u->loop;
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};

    if (pipe2(in, O_CLOEXEC) == -1 || pipe2(out, O_CLOEXEC) == -1 || pipe2(err, O_CLOEXEC) == -1)
        goto fail;
    pid_t pid = fork();
    if (pid == -1)
        goto fail;
    if (pid == 0)
        child_exec(b, in[0], out[1], err[1]);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    s->pid = pid;
    s->exited = false;
    s->in_fd = in[1];
    s->out_fd = out[0];
    s->err_fd = err[0];
    fcntl(s->in_fd, F_SETFL, O_NONBLOCK);
    fcntl(s->out_fd, F_SETFL, O_NONBLOCK);
    fcntl(s->err_fd, F_SETFL, O_NONBLOCK);
    ev_io_init(&s->in_w, on_in, s->in_fd, EV_WRITE);
    ev_io_init(&s->out_w, on_out, s->out_fd, EV_READ);
    ev_io_init(&s->err_w, on_err, s->err_fd, EV_READ);
    s->in_w.data = s->out_w.data = s->err_w.data = s;
    ev_io_start(loop, &s->out_w);
    ev_io_start(loop, &s->err_w);
    s->up = true;
    s->up_at = ev_now(loop);
    mb_log_info("backend %s: started %s (pid %d)", b->name, b->command.v[0], (int)pid);
    s->u->ev->on_state(s->u->owner, MB_UPSTREAM_UP, NULL);
    return;
fail:
    mb_log_error("backend %s: cannot start %s: %s", b->name, b->command.v[0], strerror(errno));
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (out[i] >= 0)
            close(out[i]);
        if (err[i] >= 0)
            close(err[i]);
    }
    double delay = s->backoff;
    s->backoff = s->backoff * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : s->backoff * 2;
    schedule_spawn(s, delay);
}

static void on_spawn(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct stdio_up *s = t->data;
    if (s->pid > 0) /* the old child is not reaped yet: try again soon */
        schedule_spawn(s, BACKOFF_MIN_S);
    else
        spawn(s);
}

static int st_start(struct mb_upstream *u)
{
    struct stdio_up *s = u->impl;
    if (sigchld_loop == NULL) {
        ev_signal_init(&sigchld, on_sigchld, SIGCHLD);
        ev_signal_start(u->loop, &sigchld);
        sigchld_loop = u->loop;
    }
    schedule_spawn(s, 0.);
    return 0;
}

static int st_send(struct mb_upstream *u, const char *msg, size_t len)
{
    struct stdio_up *s = u->impl;
    if (!s->up || s->in_fd < 0)
        return MB_AGAIN;
    bool idle = s->wbuf.len == 0;
    if (mb_buf_reserve(&s->wbuf, len + 1) != 0)
        return MB_ERR;
    mb_buf_append(&s->wbuf, msg, len);
    mb_buf_append(&s->wbuf, "\n", 1);
    /* Writing now is cheap and keeps latency low; a full pipe waits for
     * the write watcher. A failure is reported from the loop, not here. */
    if (idle && flush_out(s) != 0)
        ev_io_start(u->loop, &s->in_w);
    return 0;
}

static bool wait_exit(struct stdio_up *s, int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        int status;
        pid_t r = waitpid(s->pid, &status, WNOHANG);
        if (r == s->pid || (r == -1 && errno == ECHILD))
            return true;
        usleep(10000);
    }
    return false;
}

static void st_close(struct mb_upstream *u)
{
    struct stdio_up *s = u->impl;
    struct ev_loop *loop = u->loop;
    s->closing = true;
    ev_timer_stop(loop, &s->spawn_t);
    close_fd(loop, &s->in_w, &s->in_fd);
    if (s->pid > 0 && !s->exited) {
        if (!wait_exit(s, 1000)) {
            kill(s->pid, SIGTERM);
            if (!wait_exit(s, 1000)) {
                mb_log_warn("backend %s: child %d ignored TERM: killing it", u->bconf->name,
                            (int)s->pid);
                kill(s->pid, SIGKILL);
                waitpid(s->pid, NULL, 0);
            }
        }
    }
    if (s->err_fd >= 0) {
        on_err(loop, &s->err_w, 0);
        log_err_lines(s, true);
    }
    close_fd(loop, &s->out_w, &s->out_fd);
    close_fd(loop, &s->err_w, &s->err_fd);
    for (struct stdio_up **pp = &all; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    if (all == NULL && sigchld_loop != NULL) {
        ev_signal_stop(sigchld_loop, &sigchld);
        sigchld_loop = NULL;
    }
    mb_buf_free(&s->rbuf);
    mb_buf_free(&s->ebuf);
    mb_buf_free(&s->wbuf);
    free(s);
    u->impl = NULL;
}

static const struct mb_upstream_ops stdio_ops = {
    .name = "stdio", .start = st_start, .send = st_send, .close = st_close};

int mb_upstream_stdio_init(struct mb_upstream *u)
{
    const struct mb_conf_backend *b = u->bconf;
    if (b->command.n == 0)
        return MB_ERR;
    struct stdio_up *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return MB_ERR;
    s->u = u;
    s->in_fd = s->out_fd = s->err_fd = -1;
    s->backoff = BACKOFF_MIN_S;
    ev_timer_init(&s->spawn_t, on_spawn, 0., 0.);
    s->spawn_t.data = s;
    s->next = all;
    all = s;
    u->ops = &stdio_ops;
    u->impl = s;
    return 0;
}
