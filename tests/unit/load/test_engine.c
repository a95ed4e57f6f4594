/*
 * tests/unit/load/test_engine.c — the load generator's engine
 * (tests/load/engine.c) driven end to end against a small JSON-RPC server
 * run by this test on 127.0.0.1 (a port chosen at run time). The server
 * speaks WebSocket and Streamable HTTP, reads ids with cJSON (not with the
 * code under test), counts what it saw, and can misbehave on purpose: wrong
 * ids, JSON-RPC errors. Assertions are on counts, never on timings.
 */
#include "tests/load/engine.h"
#include "tests/load/opts.h"
#include "tests/load/report.h"
#include "tests/support/wsframe.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

enum { SRV_OK = 0, SRV_BADID, SRV_ERROR, SRV_SSE };

#define MAXCLI 512

struct client {
    int fd;
    int ws; /* 1 after the upgrade */
    char *buf;
    size_t len, cap;
};

struct srv {
    int lfd;
    int port;
    int mode;
    pthread_t th;
    atomic_int stop;
    atomic_int calls;      /* tools/list and tools/call seen */
    atomic_int inits;      /* initialize seen */
    atomic_int accepted;   /* connections accepted */
    atomic_int no_session; /* HTTP calls without the session header */
    struct client cli[MAXCLI];
};

static void cli_close(struct client *c)
{
    close(c->fd);
    free(c->buf);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

static int send_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            poll(&pf, 1, 1000);
            continue;
        }
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The reply to one request (NULL for a notification); malloc'd. */
static char *answer(struct srv *s, const char *msg, size_t n)
{
    cJSON *j = cJSON_ParseWithLength(msg, n);
    cr_assert_not_null(j, "the load generator sent bad JSON: %.*s", (int)n, msg);
    const cJSON *id = cJSON_GetObjectItem(j, "id");
    const cJSON *m = cJSON_GetObjectItem(j, "method");
    cr_assert(cJSON_IsString(m), "no method in %.*s", (int)n, msg);
    char *out = NULL;
    if (id) {
        cr_assert(cJSON_IsNumber(id));
        long long v = (long long)id->valuedouble;
        int call = strcmp(m->valuestring, "initialize") != 0;
        if (call)
            atomic_fetch_add(&s->calls, 1);
        else
            atomic_fetch_add(&s->inits, 1);
        out = malloc(256);
        cr_assert_not_null(out);
        if (call && s->mode == SRV_ERROR)
            snprintf(out, 256,
                     "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"error\":{\"code\":-32601,\"message\":"
                     "\"no\"}}",
                     v);
        else if (call && s->mode == SRV_BADID && v % 2 == 0)
            snprintf(out, 256, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{}}", v + 1000);
        else if (!call)
            snprintf(out, 256,
                     "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"protocolVersion\":"
                     "\"2025-06-18\",\"capabilities\":{}}}",
                     v);
        else
            snprintf(out, 256,
                     "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"tools\":[{\"name\":"
                     "\"a \\\"}\\\" b\"}]}}",
                     v);
    }
    cJSON_Delete(j);
    return out;
}

static int ws_upgrade(struct client *c, size_t hl)
{
    char key[64], acc[29];
    cr_assert_eq(mb_wsframe_header_value(c->buf, hl, "Sec-WebSocket-Key", key, sizeof(key)), 0);
    cr_assert_eq(mb_wsframe_accept_token(key, acc), 0);
    char resp[256];
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
                     "Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     acc);
    c->ws = 1;
    return send_all(c->fd, resp, (size_t)n);
}

/* Handles what is buffered; returns -1 to close the client. */
static int serve(struct srv *s, struct client *c)
{
    for (;;) {
        if (!c->ws) {
            char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
            if (!end)
                return 0;
            size_t hl = (size_t)(end - c->buf) + 4;
            if (strncmp(c->buf, "GET ", 4) == 0) {
                if (ws_upgrade(c, hl) != 0)
                    return -1;
                memmove(c->buf, c->buf + hl, c->len - hl);
                c->len -= hl;
                continue;
            }
            char *cl = strcasestr(c->buf, "Content-Length:");
            cr_assert(cl && cl < end, "POST without Content-Length");
            size_t blen = strtoul(cl + 15, NULL, 10);
            if (c->len < hl + blen)
                return 0;
            char *sess = strcasestr(c->buf, "Mcp-Session-Id:");
            int has_session = sess && sess < end;
            char *rep = answer(s, c->buf + hl, blen);
            char head[512];
            if (!rep) {
                int n = snprintf(head, sizeof(head),
                                 "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
                if (send_all(c->fd, head, (size_t)n))
                    return -1;
            } else {
                int is_init = strstr(rep, "protocolVersion") != NULL;
                if (!is_init && !has_session)
                    atomic_fetch_add(&s->no_session, 1);
                const char *sh = is_init ? "Mcp-Session-Id: sess-1\r\n" : "";
                int n;
                if (s->mode == SRV_SSE) {
                    char ev[512];
                    int el = snprintf(ev, sizeof(ev),
                                      "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":"
                                      "\"notifications/progress\",\"params\":{}}\r\n\r\n"
                                      "event: message\r\ndata: %s\r\n\r\n",
                                      rep);
                    n = snprintf(head, sizeof(head),
                                 "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n%s"
                                 "Transfer-Encoding: chunked\r\n\r\n%x\r\n",
                                 sh, el);
                    if (send_all(c->fd, head, (size_t)n) || send_all(c->fd, ev, (size_t)el) ||
                        send_all(c->fd, "\r\n0\r\n\r\n", 7))
                        return -1;
                } else {
                    n = snprintf(head, sizeof(head),
                                 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%s"
                                 "Content-Length: %zu\r\n\r\n",
                                 sh, strlen(rep));
                    if (send_all(c->fd, head, (size_t)n) || send_all(c->fd, rep, strlen(rep)))
                        return -1;
                }
                free(rep);
            }
            memmove(c->buf, c->buf + hl + blen, c->len - hl - blen);
            c->len -= hl + blen;
            continue;
        }
        struct mb_wsframe f;
        long r = mb_wsframe_parse((uint8_t *)c->buf, c->len, &f);
        if (r == 0)
            return 0;
        cr_assert_gt(r, 0, "the load generator sent a bad frame");
        cr_assert(f.masked, "client frames must be masked");
        mb_wsframe_unmask((uint8_t *)f.payload, (size_t)f.len, f.mask, 0);
        if (f.opcode == MB_WS_OP_CLOSE) {
            uint8_t out[8];
            long n = mb_wsframe_encode(out, sizeof(out), 1, MB_WS_OP_CLOSE, f.payload,
                                       f.len >= 2 ? 2 : 0, 0, 0);
            send_all(c->fd, out, (size_t)n);
            return -1; /* the server closes the TCP connection first */
        }
        if (f.opcode == MB_WS_OP_PING) {
            uint8_t out[140];
            long n = mb_wsframe_encode(out, sizeof(out), 1, MB_WS_OP_PONG, f.payload, (size_t)f.len,
                                       0, 0);
            if (send_all(c->fd, out, (size_t)n))
                return -1;
        } else if (f.opcode == MB_WS_OP_TEXT) {
            char *rep = answer(s, (const char *)f.payload, (size_t)f.len);
            if (rep) {
                uint8_t out[512];
                long n =
                    mb_wsframe_encode(out, sizeof(out), 1, MB_WS_OP_TEXT, rep, strlen(rep), 0, 0);
                free(rep);
                if (send_all(c->fd, out, (size_t)n))
                    return -1;
            }
        }
        memmove(c->buf, c->buf + r, c->len - (size_t)r);
        c->len -= (size_t)r;
    }
}

static void *srv_main(void *arg)
{
    struct srv *s = arg;
    static __thread struct pollfd pf[MAXCLI + 1];
    while (!atomic_load(&s->stop)) {
        int n = 0;
        pf[n++] = (struct pollfd){.fd = s->lfd, .events = POLLIN};
        for (int i = 0; i < MAXCLI; i++)
            pf[n++] = (struct pollfd){.fd = s->cli[i].fd, .events = POLLIN};
        if (poll(pf, (nfds_t)n, 50) <= 0)
            continue;
        if (pf[0].revents & POLLIN) {
            int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK);
            int slot = -1;
            for (int i = 0; fd >= 0 && i < MAXCLI; i++)
                if (s->cli[i].fd < 0) {
                    slot = i;
                    break;
                }
            if (fd >= 0 && slot < 0)
                close(fd);
            else if (fd >= 0) {
                s->cli[slot].fd = fd;
                atomic_fetch_add(&s->accepted, 1);
            }
        }
        for (int i = 0; i < MAXCLI; i++) {
            struct client *c = &s->cli[i];
            if (c->fd < 0 || !pf[i + 1].revents)
                continue;
            if (c->cap - c->len < 65536) {
                c->cap = c->cap ? c->cap * 2 : 131072;
                c->buf = realloc(c->buf, c->cap);
                cr_assert_not_null(c->buf);
            }
            ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
            if (r < 0 && errno == EAGAIN)
                continue;
            if (r <= 0) {
                cli_close(c);
                continue;
            }
            c->len += (size_t)r;
            c->buf[c->len] = '\0';
            if (serve(s, c) != 0)
                cli_close(c);
        }
    }
    for (int i = 0; i < MAXCLI; i++)
        if (s->cli[i].fd >= 0)
            cli_close(&s->cli[i]);
    return NULL;
}

static struct srv *srv_start(int mode)
{
    struct srv *s = calloc(1, sizeof(*s));
    cr_assert_not_null(s);
    s->mode = mode;
    for (int i = 0; i < MAXCLI; i++)
        s->cli[i].fd = -1;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    cr_assert_eq(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(s->lfd, 512), 0);
    cr_assert_eq(getsockname(s->lfd, (struct sockaddr *)&a, &al), 0);
    s->port = ntohs(a.sin_port);
    cr_assert_eq(pthread_create(&s->th, NULL, srv_main, s), 0);
    return s;
}

static void srv_stop(struct srv *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->th, NULL);
    close(s->lfd);
    free(s);
}

static volatile sig_atomic_t no_stop;

/* Parses args (URL built from scheme and the port) and runs the engine. */
static void run(struct mb_load_result *r, const char *scheme, int port, const char *const *args,
                volatile sig_atomic_t *stop)
{
    char url[128];
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d/mcp", scheme, port);
    char *argv[40];
    int argc = 0;
    argv[argc++] = (char *)"mcp-bridge-load";
    for (; args[argc - 1]; argc++)
        argv[argc] = (char *)args[argc - 1];
    argv[argc++] = url;
    argv[argc] = NULL;
    struct mb_load_opts o;
    char err[512];
    cr_assert_eq(mb_load_opts_parse(argc, argv, 2, &o, err, sizeof(err)), MB_LOAD_OPTS_OK, "%s",
                 err);
    cr_assert_eq(mb_load_engine_run(&o, 0, stop ? stop : &no_stop, r, err, sizeof(err)), 0, "%s",
                 err);
    mb_load_opts_free(&o);
}

static uint64_t failed(const struct mb_load_result *r)
{
    return mb_load_result_failed(r) + r->errors[MB_LOAD_ERR_CONNECT] +
           r->errors[MB_LOAD_ERR_HANDSHAKE] + r->errors[MB_LOAD_ERR_CLOSED];
}

static struct mb_load_result *new_result(void)
{
    struct mb_load_result *r = malloc(sizeof(*r));
    cr_assert_not_null(r);
    return r;
}

TestSuite(engine, .timeout = 60);

Test(engine, websocket_closed_loop_counts_every_request_exactly)
{
    struct srv *s = srv_start(SRV_OK);
    struct mb_load_result *r = new_result();
    const char *args[] = {"--requests", "3000", "--connections", "8",  "--pipeline", "4", "--init",
                          "--threads",  "2",    "--max-time",    "30", NULL};
    run(r, "ws", s->port, args, NULL);
    cr_expect_eq(r->requests, 3000);
    cr_expect_eq(r->latency.count, 3000);
    cr_expect_eq(failed(r), 0, "errors in a clean run");
    cr_expect_eq(atomic_load(&s->calls), 3000, "the server saw a different number of calls");
    cr_expect_eq(atomic_load(&s->inits), 8, "one initialize per connection");
    cr_expect_eq(r->conns_opened, 8);
    cr_expect_gt(r->window_ns, 0);
    cr_expect_gt(r->rps, 0);
    srv_stop(s);
    free(r);
}

Test(engine, wrong_ids_are_counted_as_bad_id)
{
    struct srv *s = srv_start(SRV_BADID);
    struct mb_load_result *r = new_result();
    const char *args[] = {"--requests", "400", "--connections", "1", "--threads", "1", "--max-time",
                          "30",         NULL};
    run(r, "ws", s->port, args, NULL);
    /* ids run 1..400 on the one connection and the server mangles the even ones */
    cr_expect_eq(r->errors[MB_LOAD_ERR_BAD_ID], 200);
    cr_expect_eq(r->requests, 200);
    cr_expect_eq(r->errors[MB_LOAD_ERR_TIMEOUT], 0);
    srv_stop(s);
    free(r);
}

Test(engine, jsonrpc_errors_are_counted_by_code)
{
    struct srv *s = srv_start(SRV_ERROR);
    struct mb_load_result *r = new_result();
    const char *args[] = {
        "--requests", "100",    "--connections",        "2",          "--threads", "1", "--call",
        "echo",       "--args", "{\"message\":\"hi\"}", "--max-time", "30",        NULL};
    run(r, "ws", s->port, args, NULL);
    cr_expect_eq(r->requests, 0);
    cr_expect_eq(r->errors[MB_LOAD_ERR_JSONRPC], 100);
    cr_assert_eq(r->jsonrpc_codes.used, 1);
    cr_expect_eq(r->jsonrpc_codes.code[0], -32601);
    cr_expect_eq(r->jsonrpc_codes.n[0], 100);
    srv_stop(s);
    free(r);
}

Test(engine, http_sse_with_session)
{
    struct srv *s = srv_start(SRV_SSE);
    struct mb_load_result *r = new_result();
    const char *args[] = {"--requests", "500", "--connections", "4",  "--pipeline", "2", "--init",
                          "--threads",  "1",   "--max-time",    "30", NULL};
    run(r, "http", s->port, args, NULL);
    cr_expect_eq(r->requests, 500);
    cr_expect_eq(failed(r), 0);
    cr_expect_eq(atomic_load(&s->no_session), 0, "calls went without Mcp-Session-Id");
    cr_expect_eq(atomic_load(&s->inits), 4);
    cr_expect_eq(r->server_msgs, 504, "the progress event in each stream (4 are initialize)");
    srv_stop(s);
    free(r);
}

Test(engine, http_json_without_init)
{
    struct srv *s = srv_start(SRV_OK);
    struct mb_load_result *r = new_result();
    const char *args[] = {"--requests", "300", "--connections", "3", "--threads", "2", "--max-time",
                          "30",         NULL};
    run(r, "http", s->port, args, NULL);
    cr_expect_eq(r->requests, 300);
    cr_expect_eq(failed(r), 0);
    cr_expect_eq(atomic_load(&s->inits), 0);
    srv_stop(s);
    free(r);
}

Test(engine, open_loop_accounts_for_every_scheduled_request)
{
    struct srv *s = srv_start(SRV_OK);
    struct mb_load_result *r = new_result();
    const char *args[] = {"--rate", "2000",      "--duration", "500ms", "--connections",
                          "8",      "--threads", "1",          NULL};
    run(r, "ws", s->port, args, NULL);
    /* 2000/s for 0.5 s is 1000 slots (+1 for the one at time zero); each was
     * answered, is still in flight, failed, or was never sent */
    uint64_t all = r->requests + r->inflight_end + r->backlog_end + failed(r);
    cr_expect(all >= 999 && all <= 1002, "scheduled %llu", (unsigned long long)all);
    cr_expect_eq(failed(r), 0);
    srv_stop(s);
    free(r);
}

Test(engine, stages_open_a_connection_per_iteration)
{
    struct srv *s = srv_start(SRV_OK);
    struct mb_load_result *r = new_result();
    const char *args[] = {"--stages", "6:300ms,6:200ms,0:200ms", "--threads", "2", NULL};
    run(r, "ws", s->port, args, NULL);
    cr_expect_gt(r->iterations, 0);
    cr_expect_eq(failed(r), 0);
    cr_expect_eq(r->iterations, r->latency.count);
    cr_expect_eq(r->iterations, r->iteration.count);
    cr_expect_eq((uint64_t)atomic_load(&s->accepted), r->iterations,
                 "every iteration is one connection");
    cr_expect_eq((uint64_t)atomic_load(&s->calls), r->iterations);
    cr_expect_leq(r->max_vus, 6);
    cr_expect_gt(r->max_vus, 0);
    srv_stop(s);
    free(r);
}

Test(engine, idle_connections_are_held_and_counted)
{
    struct srv *s = srv_start(SRV_OK);
    struct mb_load_result *r = new_result();
    const char *args[] = {"--idle", "100", "--hold", "200ms", "--ping", "--threads", "2", NULL};
    run(r, "ws", s->port, args, NULL);
    cr_expect_eq(r->idle_open, 100);
    cr_expect_eq(r->conns_opened, 100);
    cr_expect_eq(failed(r), 0);
    srv_stop(s);
    free(r);
}

Test(engine, refused_connections_are_connect_errors)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd); /* nothing listens there now */
    struct mb_load_result *r = new_result();
    const char *args[] = {"--duration", "300ms", "--connections", "2", "--threads", "1", NULL};
    run(r, "ws", ntohs(a.sin_port), args, NULL);
    cr_expect_geq(r->errors[MB_LOAD_ERR_CONNECT], 2);
    cr_expect_eq(r->requests, 0);
    free(r);
}

static volatile sig_atomic_t stop_flag;

static void *stopper(void *arg)
{
    (void)arg;
    usleep(300000);
    stop_flag = 1;
    return NULL;
}

Test(engine, a_stop_request_ends_the_run_early)
{
    struct srv *s = srv_start(SRV_OK);
    struct mb_load_result *r = new_result();
    pthread_t th;
    stop_flag = 0;
    cr_assert_eq(pthread_create(&th, NULL, stopper, NULL), 0);
    const char *args[] = {"--duration", "1h", "--connections", "2", "--threads", "1", NULL};
    run(r, "ws", s->port, args, &stop_flag);
    pthread_join(th, NULL);
    cr_expect(r->interrupted);
    cr_expect_gt(r->requests, 0);
    srv_stop(s);
    free(r);
}
