/*
 * worker/accesslog.c — the access log's buffer, formatting, timer and
 * reopen (see accesslog.h for the line format and the rules).
 */
#include "worker/accesslog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/log.h"
#include "conf/conf.h"
#include "worker/conn.h"
#include "worker/mcp.h"
#include "worker/worker.h"

#define FLUSH_S 1.0
#define LINE_MAX_BYTES                                                                             \
    2048 /* method 63 + tool 127 bytes, escaped at most 6x, backend 127, plus the rest */

struct mb_accesslog {
    int fd; /* -1 while the file cannot be opened */
    int slot;
    char *path;
    ev_timer flush;
    time_t stamp_sec; /* the second stamp[] was formatted for */
    char stamp[32];   /* "2026-11-27T09:30:00" */
    size_t len;
    char buf[MB_ACCESSLOG_BUF];
};

static int open_file(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

static size_t count_lines(const char *p, size_t n)
{
    size_t lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += p[i] == '\n';
    return lines;
}

/* Writes the buffer: whole lines per write(2). What cannot be written is
 * dropped and counted, so a full disk never grows memory or stalls. */
static void flush(struct mb_worker *w, struct mb_accesslog *al)
{
    size_t off = 0;
    while (off < al->len && al->fd != -1) {
        ssize_t n = write(al->fd, al->buf + off, al->len - off);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0) {
            static uint64_t last_log_ms;
            uint64_t now = mb_worker_now_ms(w);
            if (now - last_log_ms >= 10000) {
                last_log_ms = now;
                mb_log_error("writing the access log %s: %s (dropping lines)", al->path,
                             n == 0 ? "nothing written" : strerror(errno));
            }
            break;
        }
        off += (size_t)n;
    }
    if (off < al->len)
        mb_worker_count(w, MB_CTR_ACCESS_LOG_DROPPED,
                        (int64_t)count_lines(al->buf + off, al->len - off));
    al->len = 0;
    ev_timer_stop(w->loop, &al->flush);
}

static void on_flush_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct mb_worker *w = t->data;
    if (w->accesslog != NULL)
        flush(w, w->accesslog);
}

int mb_accesslog_open(struct mb_worker *w, int slot)
{
    const char *path = w->conf->logging.access_log;
    if (path == NULL)
        return MB_OK;
    struct mb_accesslog *al = malloc(sizeof(*al));
    if (al == NULL || (al->path = strdup(path)) == NULL) {
        free(al);
        mb_log_error("access log %s: out of memory: running without it", path);
        return MB_OK;
    }
    al->slot = slot;
    al->len = 0;
    al->stamp_sec = (time_t)-1;
    al->fd = open_file(path);
    if (al->fd == -1)
        mb_log_error("opening the access log %s: %s (lines are dropped until a reopen works)", path,
                     strerror(errno));
    ev_timer_init(&al->flush, on_flush_timer, FLUSH_S, 0.);
    al->flush.data = w;
    w->accesslog = al;
    return MB_OK;
}

void mb_accesslog_flush(struct mb_worker *w)
{
    if (w->accesslog != NULL)
        flush(w, w->accesslog);
}

int mb_accesslog_reopen(struct mb_worker *w)
{
    struct mb_accesslog *al = w->accesslog;
    if (al == NULL)
        return 0;
    flush(w, al);
    int fd = open_file(al->path);
    if (fd == -1) {
        int e = errno;
        mb_log_error("reopening the access log %s: %s (kept the old one)", al->path, strerror(e));
        return -e;
    }
    if (al->fd != -1)
        close(al->fd);
    al->fd = fd;
    return 0;
}

void mb_accesslog_close(struct mb_worker *w)
{
    struct mb_accesslog *al = w->accesslog;
    if (al == NULL)
        return;
    flush(w, al);
    if (al->fd != -1)
        close(al->fd);
    free(al->path);
    free(al);
    w->accesslog = NULL;
}

/* ------------------------------------------------------------------ formatting */

struct line {
    char *p;
    size_t len, cap;
};

static void put(struct line *l, const char *s, size_t n)
{
    if (l->len + n > l->cap)
        n = l->cap - l->len;
    memcpy(l->p + l->len, s, n);
    l->len += n;
}

static void puts_(struct line *l, const char *s)
{
    put(l, s, strlen(s));
}

static void putf(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct line *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->p + l->len, l->cap - l->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        l->len += (size_t)n < l->cap - l->len ? (size_t)n : l->cap - l->len - 1;
}

/* A JSON string, or null for an empty one. */
static void put_json(struct line *l, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    if (s == NULL || s[0] == '\0') {
        puts_(l, "null");
        return;
    }
    put(l, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char e[6];
        if (*p == '"' || *p == '\\') {
            e[0] = '\\';
            e[1] = (char)*p;
            put(l, e, 2);
        } else if (*p < 0x20) {
            memcpy(e, "\\u00", 4);
            e[4] = hex[*p >> 4];
            e[5] = hex[*p & 15];
            put(l, e, 6);
        } else {
            put(l, (const char *)p, 1);
        }
    }
    put(l, "\"", 1);
}

/* The peer's address ("principal" until authentication exists) and
 * address:port. One getpeername() per logged request: cheaper than keeping
 * ~50 bytes on every connection for a log that is usually off. */
static void peer(struct mb_conn *c, char *ip, size_t iplen, char *both, size_t bothlen)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int fd = c ? lws_get_socket_fd(c->wsi) : -1;
    snprintf(ip, iplen, "%s", "");
    snprintf(both, bothlen, "%s", "");
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) == -1)
        return;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, (socklen_t)iplen);
        snprintf(both, bothlen, "%s:%u", ip, ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, (socklen_t)iplen);
        snprintf(both, bothlen, "[%s]:%u", ip, ntohs(a->sin6_port));
    }
}

void mb_accesslog_request(struct mb_worker *w, struct mb_conn *c, const struct mb_mcp_outcome *res,
                          size_t bytes_in, size_t bytes_out, uint64_t duration_ns)
{
    struct mb_accesslog *al = w->accesslog;
    if (al == NULL)
        return;
    double now = ev_now(w->loop);
    time_t sec = (time_t)now;
    if (sec != al->stamp_sec) {
        struct tm tm;
        gmtime_r(&sec, &tm);
        strftime(al->stamp, sizeof(al->stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        al->stamp_sec = sec;
    }
    char ip[INET6_ADDRSTRLEN], client[INET6_ADDRSTRLEN + 10];
    peer(c, ip, sizeof(ip), client, sizeof(client));

    if (al->len + LINE_MAX_BYTES > sizeof(al->buf))
        flush(w, al);
    struct line l = {al->buf + al->len, 0, LINE_MAX_BYTES};
    int ms = (int)((now - (double)sec) * 1000.0);
    putf(&l, "{\"time\":\"%s.%03dZ\",\"worker\":%d,\"transport\":\"%s\",\"principal\":", al->stamp,
         ms < 0     ? 0
         : ms > 999 ? 999
                    : ms,
         al->slot, c && c->is_ws ? "websocket" : "http");
    put_json(&l, ip);
    puts_(&l, ",\"client\":");
    put_json(&l, client);
    puts_(&l, ",\"method\":");
    put_json(&l, res->method_name);
    /* Backend names are [A-Za-z0-9_-]+ (conf) but of any length: at most 127. */
    char backend[128];
    snprintf(backend, sizeof(backend), "%s", res->backend ? res->backend : "gateway");
    puts_(&l, ",\"backend\":");
    put_json(&l, backend);
    puts_(&l, ",\"tool\":");
    put_json(&l, res->tool);
    putf(&l,
         ",\"status\":\"%s\",\"code\":%d,\"duration_ms\":%.3f,\"bytes_in\":%zu,\"bytes_out\":%zu}",
         res->error ? "error" : "ok", res->error, (double)duration_ns / 1e6, bytes_in, bytes_out);
    if (l.len >= l.cap) /* cannot happen with the bounded fields; never write a torn line */
        return;
    l.p[l.len++] = '\n';
    al->len += l.len;
    if (!ev_is_active(&al->flush))
        ev_timer_start(w->loop, &al->flush);
}
