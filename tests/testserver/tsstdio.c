/*
 * tests/testserver/tsstdio.c — see tsstdio.h.
 *
 * Input: one read(2) per readiness event (so a blocking stdin, a tty or a
 * regular file never stalls the loop), split on '\n'; "\r\n" and blank lines
 * are tolerated. Output: replies are appended to one buffer; replies made
 * while a read batch is being handled are written together at the end of the
 * batch (one write for many pipelined requests), others at once. out_fd is
 * made non-blocking when it is a pipe or socket, and a write that would block
 * leaves the rest to a write watcher while reading goes on, so a client that
 * writes all its requests before reading any replies cannot deadlock us.
 */
#include "tests/testserver/tsstdio.h"

#include "common/errors.h"
#include "common/log.h"
#include "tests/testserver/tsbuf.h"
#include "tests/testserver/tsmcp.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_CHUNK (256u << 10)

struct mb_tsstdio {
    struct mb_tsmcp_chan ch; /* first: send() gets it back as the transport */
    struct mb_tsmcp_session session;
    struct mb_tsmcp *ts;
    struct ev_loop *loop;
    ev_io rd, wr;
    int in_fd, out_fd;
    struct mb_tsbuf in, out;
    int eof;      /* input ended */
    int in_batch; /* handling a read batch: defer writing to its end */
    int skipping; /* discarding the rest of an oversized line */
    int done;     /* on_done was called */
    void (*on_done)(void *arg);
    void *arg;
};

static void finish(struct mb_tsstdio *s)
{
    if (s->done)
        return;
    s->done = 1;
    ev_io_stop(s->loop, &s->rd);
    ev_io_stop(s->loop, &s->wr);
    s->on_done(s->arg);
}

static void maybe_finish(struct mb_tsstdio *s)
{
    if (s->eof && s->ch.ops == NULL && s->out.len == 0)
        finish(s);
}

static void flush(struct mb_tsstdio *s)
{
    size_t off = 0;
    while (off < s->out.len) {
        ssize_t n = write(s->out_fd, s->out.data + off, s->out.len - off);
        if (n >= 0) {
            off += (size_t)n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
        mb_log_error("writing to stdout: %s; stopping", strerror(errno));
        s->out.len = 0;
        finish(s);
        return;
    }
    mb_tsbuf_consume(&s->out, off);
    if (s->out.len != 0)
        ev_io_start(s->loop, &s->wr);
    else
        ev_io_stop(s->loop, &s->wr);
    maybe_finish(s);
}

static void chan_send(struct mb_tsmcp_chan *ch, enum mb_tsmcp_kind kind, const char *msg,
                      size_t len)
{
    struct mb_tsstdio *s = (struct mb_tsstdio *)ch;
    if (kind == MB_TSMCP_ABORT || s->done)
        return;
    mb_tsbuf_reserve(&s->out, len + 1);
    mb_tsbuf_add(&s->out, msg, len);
    mb_tsbuf_add(&s->out, "\n", 1);
    if (s->out.failed) {
        mb_log_error("out of memory queueing %zu bytes for stdout; stopping", len);
        s->out.len = 0;
        finish(s);
        return;
    }
    if (!s->in_batch && !ev_is_active(&s->wr))
        flush(s);
}

static void handle_line(struct mb_tsstdio *s, const char *p, size_t n)
{
    if (n > 0 && p[n - 1] == '\r')
        n--;
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    if (i == n)
        return; /* blank line */
    mb_tsmcp_handle(s->ts, &s->session, &s->ch, p, n);
}

static void too_long(struct mb_tsstdio *s)
{
    static const char msg[] = "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,"
                              "\"message\":\"Parse error: message longer than 64 MiB\"}}";
    mb_log_warn("stdin line longer than %u bytes skipped", MB_TSSTDIO_MAX_LINE);
    chan_send(&s->ch, MB_TSMCP_REPLY, msg, sizeof(msg) - 1);
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    struct mb_tsstdio *s = w->data;
    if (mb_tsbuf_reserve(&s->in, READ_CHUNK) != 0) {
        mb_log_error("out of memory reading stdin; stopping");
        finish(s);
        return;
    }
    ssize_t n = read(s->in_fd, s->in.data + s->in.len, READ_CHUNK);
    if (n == -1 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0) {
        if (n == -1)
            mb_log_error("reading stdin: %s", strerror(errno));
        s->eof = 1;
        ev_io_stop(loop, &s->rd);
        /* A last line without '\n' still counts. */
        if (s->in.len != 0 && !s->skipping) {
            s->in_batch = 1;
            handle_line(s, s->in.data, s->in.len);
            s->in_batch = 0;
        }
        s->in.len = 0;
        flush(s);
        return;
    }
    size_t old = s->in.len;
    s->in.len += (size_t)n;
    s->in_batch = 1;
    size_t start = 0;
    const char *scan = s->in.data + old;
    const char *end = s->in.data + s->in.len;
    const char *nl;
    while (!s->done && (nl = memchr(scan, '\n', (size_t)(end - scan))) != NULL) {
        size_t pos = (size_t)(nl - s->in.data);
        if (s->skipping)
            s->skipping = 0;
        else
            handle_line(s, s->in.data + start, pos - start);
        start = pos + 1;
        scan = nl + 1;
    }
    mb_tsbuf_consume(&s->in, start);
    if (s->in.len > MB_TSSTDIO_MAX_LINE) {
        if (!s->skipping)
            too_long(s);
        s->skipping = 1;
        s->in.len = 0;
    }
    s->in_batch = 0;
    if (!s->done && !ev_is_active(&s->wr))
        flush(s);
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents)
{
    flush(w->data);
}

int mb_tsstdio_start(struct mb_tsstdio **sp, struct mb_tsmcp *ts, struct ev_loop *loop, int in_fd,
                     int out_fd, void (*on_done)(void *arg), void *arg)
{
    struct stat st;
    struct mb_tsstdio *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->ts = ts;
    s->loop = loop;
    s->in_fd = in_fd;
    s->out_fd = out_fd;
    s->on_done = on_done;
    s->arg = arg;
    s->ch.send = chan_send;
    s->ch.broadcast = 1;
    mb_tsmcp_chan_open(ts, &s->ch);
    mb_tsmcp_session_open(&s->session);
    if (fstat(out_fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
        int fl = fcntl(out_fd, F_GETFL);
        if (fl == -1 || fcntl(out_fd, F_SETFL, fl | O_NONBLOCK) == -1)
            mb_log_warn("making stdout non-blocking: %s", strerror(errno));
    }
    ev_io_init(&s->rd, on_read, in_fd, EV_READ);
    ev_io_init(&s->wr, on_write, out_fd, EV_WRITE);
    s->rd.data = s;
    s->wr.data = s;
    ev_io_start(loop, &s->rd);
    *sp = s;
    return MB_OK;
}

void mb_tsstdio_free(struct mb_tsstdio **sp)
{
    struct mb_tsstdio *s = *sp;
    if (s == NULL)
        return;
    ev_io_stop(s->loop, &s->rd);
    ev_io_stop(s->loop, &s->wr);
    s->done = 1; /* no more output */
    mb_tsmcp_chan_close(s->ts, &s->ch);
    mb_tsmcp_session_close(s->ts, &s->session);
    mb_tsbuf_free(&s->in);
    mb_tsbuf_free(&s->out);
    free(s);
    *sp = NULL;
}
