/*
 * tests/unit/testserver/test_tshttp.c — the test server's HTTP/1.1 framing:
 * pipelined requests (several in one send, answered in order even when the
 * first one is slow), requests split across sends, Connection: close and
 * Expect: 100-continue. The server runs in a forked child on 127.0.0.1 with
 * a kernel-chosen port and must stop on SIGTERM with exit status 0; with
 * libwebsockets 4.1.6's HTTP server, two POSTs in one send left it spinning
 * in lws_http_action() and deaf to SIGTERM.
 */
#include "tests/testserver/tshttp.h"
#include "tests/testserver/tsmcp.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <ev.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/unit/testserver/ts_child.h"

static pid_t child = -1;
static int port;

static void serve(int fd)
{
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    struct mb_tsmcp_opts o = {0};
    struct mb_tsmcp *ts = mb_tsmcp_new(&o, loop);
    struct mb_tshttp *h = NULL;
    ev_signal term;
    if (ts == NULL || mb_tshttp_start(&h, ts, loop, "127.0.0.1", 0) != 0)
        _exit(3);
    dprintf(fd, "%d\n", mb_tshttp_port(h));
    close(fd);
    ev_signal_init(&term, ts_child_on_term, SIGTERM);
    ev_signal_start(loop, &term);
    ev_run(loop, 0);
    mb_tshttp_free(&h);
    mb_tsmcp_free(&ts);
    _exit(0);
}

static void start_server(void)
{
    char buf[32];
    child = ts_child_start(serve, buf, sizeof(buf));
    cr_assert_eq(sscanf(buf, "%d", &port), 1, "port line: %s", buf);
}

static void stop_server(void)
{
    ts_child_stop(&child);
}

TestSuite(tshttp, .init = start_server, .fini = stop_server, .timeout = 30);

static int dial(void)
{
    return ts_child_dial(port);
}

static void send_all(int fd, const char *p, size_t n)
{
    cr_assert_eq(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Appends one POST /mcp to req; sid may be NULL. */
static void add_post(char *req, size_t cap, const char *sid, const char *extra, const char *body)
{
    size_t n = strlen(req);
    snprintf(req + n, cap - n,
             "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
             "%s%s%s%sContent-Length: %zu\r\n\r\n%s",
             sid ? "Mcp-Session-Id: " : "", sid ? sid : "", sid ? "\r\n" : "", extra ? extra : "",
             strlen(body), body);
}

struct resp {
    int status;
    char sid[64];
    char body[8192];
};

/* Reads exactly one response with a Content-Length from fd (a byte at a
 * time for the head, so the next response stays in the socket). Returns 0,
 * or -1 at end of stream. */
static int read_resp(int fd, struct resp *r)
{
    char head[4096];
    size_t n = 0;
    memset(r, 0, sizeof(*r));
    while (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0) {
        cr_assert_lt(n, sizeof(head) - 1);
        ssize_t k = recv(fd, head + n, 1, 0);
        if (k == 0 && n == 0)
            return -1;
        cr_assert_eq(k, 1, "a response arrives within 5 s (got %zu bytes: %.*s)", n, (int)n, head);
        n++;
    }
    head[n] = '\0';
    cr_assert_eq(sscanf(head, "HTTP/1.1 %d", &r->status), 1, "%s", head);
    if (r->status == 100)
        return 0;
    const char *cl = strcasestr(head, "\r\ncontent-length:");
    cr_assert_not_null(cl, "%s", head);
    size_t len = (size_t)atol(cl + 17);
    cr_assert_lt(len, sizeof(r->body));
    for (size_t have = 0; have < len;) {
        ssize_t k = recv(fd, r->body + have, len - have, 0);
        cr_assert_gt(k, 0, "the body arrives");
        have += (size_t)k;
    }
    const char *s = strcasestr(head, "\r\nmcp-session-id: ");
    if (s != NULL)
        snprintf(r->sid, sizeof(r->sid), "%.*s", (int)strcspn(s + 18, "\r"), s + 18);
    return 0;
}

#define INIT_BODY                                                                                  \
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"     \
    "\"2025-06-18\"}}"

Test(tshttp, two_posts_in_one_send_are_both_answered)
{
    char req[4096] = "";
    struct resp a, b;
    int fd = dial();
    add_post(req, sizeof(req), NULL, NULL, INIT_BODY);
    add_post(req, sizeof(req), NULL, NULL, INIT_BODY);
    send_all(fd, req, strlen(req));
    cr_assert_eq(read_resp(fd, &a), 0);
    cr_assert_eq(read_resp(fd, &b), 0);
    cr_expect_eq(a.status, 200);
    cr_expect_eq(b.status, 200);
    cr_expect_eq(strlen(a.sid), 32u);
    cr_expect_eq(strlen(b.sid), 32u);
    cr_expect_str_neq(a.sid, b.sid, "each initialize makes its own session");
    /* The connection is still usable afterwards. */
    req[0] = '\0';
    add_post(req, sizeof(req), a.sid, NULL, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"}");
    send_all(fd, req, strlen(req));
    cr_assert_eq(read_resp(fd, &a), 0);
    cr_expect_str_eq(a.body, "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}");
    close(fd);
}

Test(tshttp, pipelined_replies_keep_request_order)
{
    char req[8192] = "";
    struct resp r;
    int fd = dial();
    add_post(req, sizeof(req), NULL, NULL, INIT_BODY);
    send_all(fd, req, strlen(req));
    cr_assert_eq(read_resp(fd, &r), 0);
    char sid[64];
    memcpy(sid, r.sid, sizeof(sid));
    req[0] = '\0';
    add_post(req, sizeof(req), sid, NULL,
             "{\"jsonrpc\":\"2.0\",\"id\":\"slow\",\"method\":\"tools/call\",\"params\":{"
             "\"name\":\"sleep\",\"arguments\":{\"ms\":150}}}");
    add_post(req, sizeof(req), sid, NULL,
             "{\"jsonrpc\":\"2.0\",\"id\":\"fast\",\"method\":\"ping\"}");
    add_post(req, sizeof(req), sid, NULL, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\"}");
    add_post(req, sizeof(req), NULL, NULL, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}");
    send_all(fd, req, strlen(req));
    cr_assert_eq(read_resp(fd, &r), 0);
    cr_expect_eq(r.status, 200);
    cr_expect(strstr(r.body, "\"id\":\"slow\"") != NULL, "first the slow one: %s", r.body);
    cr_assert_eq(read_resp(fd, &r), 0);
    cr_expect(strstr(r.body, "\"id\":\"fast\"") != NULL, "then the fast one: %s", r.body);
    cr_assert_eq(read_resp(fd, &r), 0);
    cr_expect_eq(r.status, 202, "a notification");
    cr_assert_eq(read_resp(fd, &r), 0);
    cr_expect_eq(r.status, 400, "no session header: %s", r.body);
    close(fd);
}

Test(tshttp, request_split_across_sends)
{
    char req[4096] = "";
    struct resp r;
    int fd = dial();
    add_post(req, sizeof(req), NULL, NULL, INIT_BODY);
    size_t n = strlen(req);
    for (size_t i = 0; i < n; i += 7) {
        send_all(fd, req + i, n - i < 7 ? n - i : 7);
        usleep(1000);
    }
    cr_assert_eq(read_resp(fd, &r), 0);
    cr_expect_eq(r.status, 200);
    cr_expect(strstr(r.body, "\"protocolVersion\":\"2025-06-18\"") != NULL, "%s", r.body);
    close(fd);
}

Test(tshttp, connection_close_and_expect_continue)
{
    char req[4096] = "";
    struct resp r;
    int fd = dial();
    add_post(req, sizeof(req), NULL, "Connection: close\r\n", INIT_BODY);
    add_post(req, sizeof(req), NULL, NULL, INIT_BODY);
    send_all(fd, req, strlen(req));
    cr_assert_eq(read_resp(fd, &r), 0);
    cr_expect_eq(r.status, 200);
    cr_expect_eq(read_resp(fd, &r), -1, "the connection closes after the response");
    close(fd);

    /* The head first; the body only after 100 Continue. */
    fd = dial();
    req[0] = '\0';
    add_post(req, sizeof(req), NULL, "Expect: 100-continue\r\n", INIT_BODY);
    size_t head = (size_t)(strstr(req, "\r\n\r\n") + 4 - req);
    send_all(fd, req, head);
    cr_assert_eq(read_resp(fd, &r), 0);
    cr_expect_eq(r.status, 100);
    send_all(fd, req + head, strlen(req) - head);
    cr_assert_eq(read_resp(fd, &r), 0);
    cr_expect_eq(r.status, 200);
    close(fd);
}

Test(tshttp, malformed_head_gets_400_and_close)
{
    struct resp r;
    int fd = dial();
    const char *bad = "POST /mcp\r\nContent-Length: 2\r\n\r\n{}";
    send_all(fd, bad, strlen(bad));
    cr_assert_eq(read_resp(fd, &r), 0);
    cr_expect_eq(r.status, 400);
    cr_expect_eq(read_resp(fd, &r), -1, "then the connection closes");
    close(fd);
}
