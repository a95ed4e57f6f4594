/*
 * tests/load/floor.c — see floor.h. One thread per --threads, each with its
 * own listening socket on the same port (SO_REUSEPORT: the kernel spreads
 * connections, as it does over the gateway's workers) and its own epoll
 * loop, level-triggered. A connection reads once per readiness event, turns
 * every complete frame in its buffer into a reply, and sends the replies of
 * that read with one send(); what the socket does not take waits for
 * EPOLLOUT, and nothing more is read until it is gone.
 */
#include "tests/load/floor.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/load/reply.h"
#include "tests/support/wsframe.h"

#define IN_CAP   (64 * 1024) /* a request is small; a bigger frame closes the connection */
#define HEAD_MAX 8192

struct floor_conn {
    int fd;
    int open; /* the handshake is done */
    size_t in_len;
    char *out;
    size_t out_len, out_off, out_cap;
    char in[IN_CAP];
};

struct floor_thread {
    pthread_t tid;
    int lfd, ep;
    const char *result;
    size_t result_len;
    volatile sig_atomic_t *stop;
};

int mb_load_floor_reply(const char *msg, size_t n, const char *result, size_t result_len, char *out,
                        size_t cap, size_t *used)
{
    struct mb_load_reply r;
    if (mb_load_reply_parse(msg, n, &r) != 0 || !r.has_method || r.id_text == NULL ||
        r.id_kind == MB_LOAD_ID_NULL)
        return 0;
    static const char pre[] = "{\"jsonrpc\":\"2.0\",\"id\":", mid[] = ",\"result\":";
    size_t body = sizeof(pre) - 1 + r.id_text_len + sizeof(mid) - 1 + result_len + 1;
    size_t hl = body < 126 ? 2 : body <= 0xffff ? 4 : 10;
    if (cap - *used < hl + body)
        return -1;
    unsigned char *h = (unsigned char *)out + *used;
    h[0] = 0x81; /* FIN, text */
    if (hl == 2) {
        h[1] = (unsigned char)body;
    } else if (hl == 4) {
        h[1] = 126;
        h[2] = (unsigned char)(body >> 8);
        h[3] = (unsigned char)body;
    } else {
        h[1] = 127;
        for (int k = 0; k < 8; k++)
            h[2 + k] = (unsigned char)((uint64_t)body >> (56 - 8 * k));
    }
    char *p = out + *used + hl;
    memcpy(p, pre, sizeof(pre) - 1);
    p += sizeof(pre) - 1;
    memcpy(p, r.id_text, r.id_text_len);
    p += r.id_text_len;
    memcpy(p, mid, sizeof(mid) - 1);
    p += sizeof(mid) - 1;
    memcpy(p, result, result_len);
    p += result_len;
    *p = '}';
    *used += hl + body;
    return 1;
}

static void conn_close(struct floor_thread *t, struct floor_conn *c)
{
    epoll_ctl(t->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->out);
    free(c);
}

/* Room for at least need more bytes of output. */
static int out_reserve(struct floor_conn *c, size_t need)
{
    if (c->out_cap - c->out_len >= need)
        return 0;
    size_t cap = c->out_cap ? c->out_cap : 16384;
    while (cap - c->out_len < need)
        cap *= 2;
    char *p = realloc(c->out, cap);
    if (p == NULL)
        return -1;
    c->out = p;
    c->out_cap = cap;
    return 0;
}

/* Sends what is queued. Returns 0 when all went, 1 when the socket is full
 * (EPOLLOUT armed), -1 when the connection is gone. */
static int conn_flush(struct floor_thread *t, struct floor_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
            epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &ev);
            return 1;
        }
        if (w <= 0)
            return -1;
        c->out_off += (size_t)w;
    }
    c->out_len = c->out_off = 0;
    return 0;
}

/* The opening handshake, once the head is complete: 101 with the accept
 * token for the client's key, or 400 and close. Returns bytes consumed, 0
 * when the head is incomplete, -1 to close. */
static long handshake(struct floor_conn *c)
{
    const char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (end == NULL)
        return c->in_len > HEAD_MAX ? -1 : 0;
    size_t head = (size_t)(end + 4 - c->in);
    char key[64], accept[29];
    if (mb_wsframe_header_value(c->in, head, "Sec-WebSocket-Key", key, sizeof(key)) != 0 ||
        mb_wsframe_accept_token(key, accept) != 0) {
        static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                                  "Connection: close\r\n\r\n";
        (void)!send(c->fd, bad, sizeof(bad) - 1, MSG_NOSIGNAL);
        return -1;
    }
    char resp[256];
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    if (out_reserve(c, (size_t)n) != 0)
        return -1;
    memcpy(c->out + c->out_len, resp, (size_t)n);
    c->out_len += (size_t)n;
    c->open = 1;
    return (long)head;
}

/* Turns the complete frames in c->in into output. Returns bytes consumed, or
 * -1 to close (a protocol error, a close frame, no memory). */
static long frames(struct floor_thread *t, struct floor_conn *c, size_t from)
{
    size_t off = from;
    for (;;) {
        struct mb_wsframe f;
        long used = mb_wsframe_parse((const uint8_t *)c->in + off, c->in_len - off, &f);
        if (used == 0)
            break;
        if (used < 0 || !f.masked)
            return -1;
        uint8_t *pl = (uint8_t *)c->in + off + (size_t)used - f.len;
        mb_wsframe_unmask(pl, f.len, f.mask, 0);
        if (f.opcode == MB_WS_OP_TEXT && f.fin) {
            for (;;) {
                size_t at = c->out_len;
                int rc = mb_load_floor_reply((const char *)pl, f.len, t->result, t->result_len,
                                             c->out, c->out_cap, &at);
                if (rc >= 0) {
                    c->out_len = at;
                    break;
                }
                if (out_reserve(c, t->result_len + f.len + 64) != 0)
                    return -1;
            }
        } else if (f.opcode == MB_WS_OP_PING || f.opcode == MB_WS_OP_CLOSE) {
            if (out_reserve(c, 2 + f.len) != 0)
                return -1;
            long w = mb_wsframe_encode((uint8_t *)c->out + c->out_len, c->out_cap - c->out_len, 1,
                                       f.opcode == MB_WS_OP_PING ? MB_WS_OP_PONG : MB_WS_OP_CLOSE,
                                       pl, f.len, 0, 0);
            if (w < 0)
                return -1;
            c->out_len += (size_t)w;
            if (f.opcode == MB_WS_OP_CLOSE) {
                conn_flush(t, c);
                return -1;
            }
        }
        off += (size_t)used;
    }
    return (long)(off - from);
}

/* One read and what it makes. Returns -1 when the connection is to close. */
static int on_readable(struct floor_thread *t, struct floor_conn *c)
{
    if (c->in_len == sizeof(c->in))
        return -1; /* a frame bigger than the buffer: not what this serves */
    ssize_t r = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (r <= 0)
        return -1;
    c->in_len += (size_t)r;
    size_t consumed = 0;
    if (!c->open) {
        long h = handshake(c);
        if (h <= 0)
            return (int)h;
        consumed = (size_t)h;
    }
    long f = frames(t, c, consumed);
    if (f < 0)
        return -1;
    consumed += (size_t)f;
    memmove(c->in, c->in + consumed, c->in_len - consumed);
    c->in_len -= consumed;
    return conn_flush(t, c) < 0 ? -1 : 0;
}

static void on_accept(struct floor_thread *t)
{
    for (;;) {
        int fd = accept4(t->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct floor_conn *c = calloc(1, sizeof(*c));
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (c == NULL || epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
    }
}

static void *thread_main(void *arg)
{
    struct floor_thread *t = arg;
    struct epoll_event evs[256];
    while (!*t->stop) {
        int n = epoll_wait(t->ep, evs, 256, 200);
        for (int i = 0; i < n; i++) {
            struct floor_conn *c = evs[i].data.ptr;
            if (c == NULL) {
                on_accept(t);
                continue;
            }
            int rc;
            if (evs[i].events & EPOLLOUT) {
                rc = conn_flush(t, c);
                if (rc == 0) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            } else {
                rc = on_readable(t, c);
            }
            if (rc < 0)
                conn_close(t, c);
        }
    }
    return NULL;
}

/* A listening socket on 127.0.0.1:port with SO_REUSEPORT. */
static int listen_on(int port, int *bound, char *err, size_t errlen)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 4096) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
        snprintf(err, errlen, "--floor: cannot listen on 127.0.0.1:%d: %s", port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *bound = ntohs(a.sin_port);
    return fd;
}

/* The result file: one JSON value, surrounding whitespace dropped. */
static char *read_result(const char *path, size_t *len, char *err, size_t errlen)
{
    if (path == NULL || !*path) {
        *len = 2;
        return strdup("{}");
    }
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "--floor-result %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    while (buf && (n == 0 || n < cap)) {
        size_t r = fread(buf + n, 1, cap - n, f);
        if (r == 0)
            break;
        n += r;
    }
    fclose(f);
    while (buf && n && (buf[n - 1] == '\n' || buf[n - 1] == ' ' || buf[n - 1] == '\r'))
        n--;
    size_t lead = 0;
    while (buf && lead < n && (buf[lead] == '\n' || buf[lead] == ' ' || buf[lead] == '\r'))
        lead++;
    if (lead) {
        memmove(buf, buf + lead, n - lead);
        n -= lead;
    }
    /* A whole JSON value, checked by wrapping it as a reply. */
    char *probe = buf ? malloc(n + 32) : NULL;
    struct mb_load_reply r;
    int ok = 0;
    if (probe && n > 0 && n < cap) {
        int k = snprintf(probe, n + 32, "{\"id\":1,\"result\":");
        memcpy(probe + k, buf, n);
        probe[k + n] = '}';
        ok = mb_load_reply_parse(probe, (size_t)k + n + 1, &r) == 0 && r.has_result;
    }
    free(probe);
    if (!ok) {
        snprintf(err, errlen, "--floor-result %s: not one JSON value under 64 KB", path);
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

struct mb_load_floor {
    struct floor_thread *ts;
    int started;
    char *result;
};

int mb_load_floor_start(const struct mb_load_opts *o, volatile sig_atomic_t *stop,
                        struct mb_load_floor **out, int *port, char *err, size_t errlen)
{
    struct mb_load_floor *fl = calloc(1, sizeof(*fl));
    size_t rlen = 0;
    if (fl == NULL || (fl->result = read_result(o->floor_result, &rlen, err, errlen)) == NULL) {
        free(fl);
        return -1;
    }
    int nt = o->threads > 0 ? o->threads : 1;
    *port = o->floor_port;
    fl->ts = calloc((size_t)nt, sizeof(*fl->ts));
    if (fl->ts == NULL)
        goto fail;
    for (int i = 0; i < nt; i++) {
        struct floor_thread *t = &fl->ts[i];
        t->result = fl->result;
        t->result_len = rlen;
        t->stop = stop;
        t->ep = epoll_create1(EPOLL_CLOEXEC);
        t->lfd = listen_on(*port, port, err, errlen);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        if (t->ep < 0 || t->lfd < 0 || epoll_ctl(t->ep, EPOLL_CTL_ADD, t->lfd, &ev) != 0 ||
            pthread_create(&t->tid, NULL, thread_main, t) != 0) {
            if (t->lfd >= 0) {
                snprintf(err, errlen, "--floor: cannot start thread %d", i);
                close(t->lfd);
            }
            if (t->ep >= 0)
                close(t->ep);
            goto fail;
        }
        fl->started++;
    }
    *out = fl;
    return 0;
fail:
    *stop = 1;
    mb_load_floor_wait(fl);
    return -1;
}

void mb_load_floor_wait(struct mb_load_floor *fl)
{
    for (int i = 0; i < fl->started; i++) {
        pthread_join(fl->ts[i].tid, NULL);
        close(fl->ts[i].lfd);
        close(fl->ts[i].ep);
    }
    free(fl->ts);
    free(fl->result);
    free(fl);
}
