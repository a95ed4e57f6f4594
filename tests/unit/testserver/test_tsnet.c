/*
 * tests/unit/testserver/test_tsnet.c — the Streamable HTTP and WebSocket
 * transports, seen by a raw socket client. The server runs in a forked
 * child on 127.0.0.1 with kernel-chosen ports, and is stopped by pid with
 * SIGTERM (it must exit 0).
 */
#include "tests/testserver/tsmcp.h"
#include "tests/testserver/tsnet.h"

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
static int http_port, ws_port;

static void serve(int fd)
{
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    struct mb_tsmcp_opts o = {0};
    struct mb_tsmcp *ts = mb_tsmcp_new(&o, loop);
    struct mb_tsnet *net = NULL;
    struct mb_tsnet_opts no = {.host = NULL, .http_port = 0, .ws_port = 0};
    ev_signal term;
    if (ts == NULL || mb_tsnet_start(&net, ts, loop, &no) != 0)
        _exit(3);
    dprintf(fd, "%d %d\n", mb_tsnet_http_port(net), mb_tsnet_ws_port(net));
    close(fd);
    ev_signal_init(&term, ts_child_on_term, SIGTERM);
    ev_signal_start(loop, &term);
    ev_run(loop, 0);
    mb_tsnet_free(&net);
    mb_tsmcp_free(&ts);
    _exit(0);
}

static void start_server(void)
{
    char buf[64];
    child = ts_child_start(serve, buf, sizeof(buf));
    cr_assert_eq(sscanf(buf, "%d %d", &http_port, &ws_port), 2, "ports line: %s", buf);
    cr_assert(http_port > 0 && ws_port > 0 && http_port != ws_port);
}

static void stop_server(void)
{
    ts_child_stop(&child);
}

TestSuite(tsnet, .init = start_server, .fini = stop_server, .timeout = 30);

static void send_all(int fd, const void *p, size_t n)
{
    cr_assert_eq(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

struct resp {
    int status;
    char head[4096];
    char body[65536];
};

/* One HTTP exchange on a new connection; extra is more header lines. */
static void http(struct resp *r, const char *method, const char *path, const char *extra,
                 const char *body)
{
    static char buf[sizeof(r->head) + sizeof(r->body)];
    char req[8192];
    int fd = ts_child_dial(http_port);
    int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s", method, path,
                     extra ? extra : "");
    if (body != NULL)
        n += snprintf(req + n, sizeof(req) - (size_t)n, "Content-Length: %zu\r\n\r\n%s",
                      strlen(body), body);
    else
        n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
    send_all(fd, req, (size_t)n);
    size_t have = 0;
    long clen = -1;
    char *eoh = NULL;
    for (;;) {
        ssize_t k = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
        if (k <= 0)
            break;
        have += (size_t)k;
        buf[have] = '\0';
        if (eoh == NULL && (eoh = strstr(buf, "\r\n\r\n")) != NULL) {
            char *cl = strcasestr(buf, "content-length:");
            if (cl != NULL && cl < eoh)
                clen = atol(cl + 15);
        }
        if (eoh != NULL && clen >= 0 && have >= (size_t)(eoh + 4 - buf) + (size_t)clen)
            break;
    }
    close(fd);
    cr_assert_not_null(eoh, "a complete response head: %s", buf);
    *eoh = '\0';
    cr_assert_lt(strlen(buf), sizeof(r->head));
    cr_assert_lt(strlen(eoh + 4), sizeof(r->body));
    memcpy(r->head, buf, strlen(buf) + 1);
    memcpy(r->body, eoh + 4, strlen(eoh + 4) + 1);
    cr_assert_eq(sscanf(buf, "HTTP/1.1 %d", &r->status), 1);
}

#define JSON_CT     "Content-Type: application/json\r\n"
#define BOTH_ACCEPT "Accept: application/json, text/event-stream\r\n"

static void header_value(const struct resp *r, const char *name, char *out, size_t cap)
{
    const char *h = strcasestr(r->head, name);
    out[0] = '\0';
    if (h == NULL)
        return;
    h += strlen(name);
    while (*h == ' ')
        h++;
    size_t n = strcspn(h, "\r\n");
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), h);
}

static void initialize(char sid[64])
{
    struct resp r;
    http(&r, "POST", "/mcp", JSON_CT BOTH_ACCEPT,
         "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
         "\"protocolVersion\":\"2025-06-18\"}}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_expect(strstr(r.body, "\"protocolVersion\":\"2025-06-18\"") != NULL);
    header_value(&r, "mcp-session-id:", sid, 64);
    cr_assert_eq(strlen(sid), 32u, "a session id is issued: %s", r.head);
}

Test(tsnet, http_session_lifecycle)
{
    struct resp r;
    char sid[64], hdr[256];
    const char *ping = "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}";
    initialize(sid);
    http(&r, "POST", "/mcp", JSON_CT, ping);
    cr_expect_eq(r.status, 400, "no session header");
    http(&r, "POST", "/mcp", JSON_CT "Mcp-Session-Id: 0123456789abcdef0123456789abcdef\r\n", ping);
    cr_expect_eq(r.status, 404, "unknown session");
    snprintf(hdr, sizeof(hdr), JSON_CT "Mcp-Session-Id: %s\r\nMCP-Protocol-Version: 2025-06-18\r\n",
             sid);
    http(&r, "POST", "/mcp", hdr, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    cr_expect_eq(r.status, 202);
    cr_expect_str_eq(r.body, "");
    http(&r, "POST", "/mcp", hdr, ping);
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(r.body, "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}");
    char ct[64];
    header_value(&r, "content-type:", ct, sizeof(ct));
    cr_expect_str_eq(ct, "application/json");
    snprintf(hdr, sizeof(hdr), "Mcp-Session-Id: %s\r\n", sid);
    http(&r, "DELETE", "/mcp", hdr, NULL);
    cr_expect_eq(r.status, 200);
    snprintf(hdr, sizeof(hdr), JSON_CT "Mcp-Session-Id: %s\r\n", sid);
    http(&r, "POST", "/mcp", hdr, ping);
    cr_expect_eq(r.status, 404, "the session has ended");
}

Test(tsnet, http_errors)
{
    struct resp r;
    char sid[64], hdr[256];
    initialize(sid);
    snprintf(hdr, sizeof(hdr), "Content-Type: text/plain\r\nMcp-Session-Id: %s\r\n", sid);
    http(&r, "POST", "/mcp", hdr, "{}");
    cr_expect_eq(r.status, 415);
    snprintf(hdr, sizeof(hdr), JSON_CT "Mcp-Session-Id: %s\r\nMCP-Protocol-Version: 1999-01-01\r\n",
             sid);
    http(&r, "POST", "/mcp", hdr, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}");
    cr_expect_eq(r.status, 400);
    snprintf(hdr, sizeof(hdr), JSON_CT "Mcp-Session-Id: %s\r\n", sid);
    http(&r, "POST", "/mcp", hdr, "{\"jsonrpc\":");
    cr_expect_eq(r.status, 400);
    cr_expect(strstr(r.body, "-32700") != NULL, "%s", r.body);
    http(&r, "GET", "/mcp", "Accept: text/event-stream\r\n", NULL);
    cr_expect_eq(r.status, 405);
    header_value(&r, "allow:", hdr, sizeof(hdr));
    cr_expect_str_eq(hdr, "POST, DELETE");
    http(&r, "POST", "/other", JSON_CT, "{}");
    cr_expect_eq(r.status, 404);
}

Test(tsnet, http_progress_streams_as_sse_when_accepted)
{
    struct resp r;
    char sid[64], hdr[256], ct[64];
    const char *req =
        "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":"
        "\"progress\",\"arguments\":{\"steps\":2,\"ms\":10},\"_meta\":{"
        "\"progressToken\":\"pt\"}}}";
    initialize(sid);
    snprintf(hdr, sizeof(hdr), JSON_CT BOTH_ACCEPT "Mcp-Session-Id: %s\r\n", sid);
    http(&r, "POST", "/mcp", hdr, req);
    cr_expect_eq(r.status, 200);
    header_value(&r, "content-type:", ct, sizeof(ct));
    cr_expect_str_eq(ct, "text/event-stream");
    const char *p1 =
        strstr(r.body, "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"");
    cr_assert_not_null(p1, "%s", r.body);
    const char *p2 = strstr(p1 + 1, "\"progress\":2");
    const char *res = strstr(r.body, "data: {\"jsonrpc\":\"2.0\",\"id\":5,\"result\"");
    cr_assert_not_null(p2);
    cr_assert_not_null(res);
    cr_expect_lt(p2, res, "notifications come before the result");

    snprintf(hdr, sizeof(hdr), JSON_CT "Accept: application/json\r\nMcp-Session-Id: %s\r\n", sid);
    http(&r, "POST", "/mcp", hdr, req);
    header_value(&r, "content-type:", ct, sizeof(ct));
    cr_expect_str_eq(ct, "application/json", "a JSON-only client gets just the result");
    cr_expect(strncmp(r.body, "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\"", 31) == 0, "%s", r.body);
}

/* ------------------------------------------------------------ WebSocket */

static int ws_open(const char *protocol_line, char *head, size_t cap)
{
    int fd = ts_child_dial(ws_port);
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET /any/path HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     protocol_line);
    send_all(fd, req, (size_t)n);
    size_t have = 0;
    /* Read byte by byte up to the end of the head so no frame byte is lost. */
    while (have + 1 < cap) {
        cr_assert_eq(recv(fd, head + have, 1, 0), 1, "handshake response");
        have++;
        head[have] = '\0';
        if (have >= 4 && memcmp(head + have - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    cr_assert(strncmp(head, "HTTP/1.1 101", 12) == 0, "%s", head);
    cr_assert(strcasestr(head, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != NULL, "accept key: %s", head);
    return fd;
}

static void ws_send_frame(int fd, int opcode, const char *p, size_t n)
{
    unsigned char f[4096];
    const unsigned char mask[4] = {0x11, 0x22, 0x33, 0x44};
    size_t h = 0;
    cr_assert_lt(n, sizeof(f) - 8);
    f[h++] = (unsigned char)(0x80 | opcode);
    if (n < 126) {
        f[h++] = (unsigned char)(0x80 | n);
    } else {
        f[h++] = 0x80 | 126;
        f[h++] = (unsigned char)(n >> 8);
        f[h++] = (unsigned char)n;
    }
    memcpy(f + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        f[h + i] = (unsigned char)p[i] ^ mask[i & 3];
    send_all(fd, f, h + n);
}

static void recv_exact(int fd, void *p, size_t n)
{
    size_t have = 0;
    while (have < n) {
        ssize_t k = recv(fd, (char *)p + have, n - have, 0);
        cr_assert_gt(k, 0, "frame bytes");
        have += (size_t)k;
    }
}

/* Reads one unfragmented frame; returns its opcode. */
static int ws_recv_frame(int fd, char *out, size_t cap, size_t *len)
{
    unsigned char h[8];
    recv_exact(fd, h, 2);
    cr_assert_eq(h[1] & 0x80, 0, "server frames are not masked");
    cr_assert(h[0] & 0x80, "FIN set: one message per frame");
    size_t n = h[1] & 127;
    if (n == 126) {
        recv_exact(fd, h + 2, 2);
        n = (size_t)h[2] << 8 | h[3];
    }
    cr_assert_lt(n, cap);
    recv_exact(fd, out, n);
    out[n] = '\0';
    *len = n;
    return h[0] & 15;
}

Test(tsnet, websocket_echoes_subprotocol_and_answers)
{
    char head[2048], msg[4096];
    size_t n;
    int fd = ws_open("Sec-WebSocket-Protocol: mcp\r\n", head, sizeof(head));
    cr_expect(strcasestr(head, "sec-websocket-protocol: mcp") != NULL, "%s", head);
    const char *req = "{\"jsonrpc\":\"2.0\",\"id\":9007199254740993,\"method\":\"tools/call\","
                      "\"params\":{\"name\":\"echo\",\"arguments\":{\"message\":\"over ws\"}}}";
    ws_send_frame(fd, 1, req, strlen(req));
    cr_assert_eq(ws_recv_frame(fd, msg, sizeof(msg), &n), 1, "a text frame");
    cr_expect_str_eq(msg, "{\"jsonrpc\":\"2.0\",\"id\":9007199254740993,\"result\":{\"content\":[{"
                          "\"type\":\"text\",\"text\":\"over ws\"}]}}");
    /* Two requests in a row: the slow one does not hold back the fast one. */
    const char *slow = "{\"jsonrpc\":\"2.0\",\"id\":\"slow\",\"method\":\"tools/call\",\"params\":{"
                       "\"name\":\"sleep\",\"arguments\":{\"ms\":200}}}";
    const char *fast = "{\"jsonrpc\":\"2.0\",\"id\":\"fast\",\"method\":\"ping\"}";
    ws_send_frame(fd, 1, slow, strlen(slow));
    ws_send_frame(fd, 1, fast, strlen(fast));
    ws_recv_frame(fd, msg, sizeof(msg), &n);
    cr_expect(strstr(msg, "\"id\":\"fast\"") != NULL, "%s", msg);
    ws_recv_frame(fd, msg, sizeof(msg), &n);
    cr_expect(strstr(msg, "\"id\":\"slow\"") != NULL, "%s", msg);
    close(fd);
}

Test(tsnet, websocket_without_subprotocol_and_binary_frames)
{
    char head[2048], msg[256];
    size_t n;
    int fd = ws_open("", head, sizeof(head));
    cr_expect(strcasestr(head, "sec-websocket-protocol") == NULL, "nothing to echo: %s", head);
    ws_send_frame(fd, 2, "\x01\x02", 2);
    cr_assert_eq(ws_recv_frame(fd, msg, sizeof(msg), &n), 8, "a close frame");
    cr_assert_geq(n, 2u);
    cr_expect_eq(((unsigned char)msg[0] << 8) | (unsigned char)msg[1], 1003);
    close(fd);
}

/* HTTP/1.1 pipelining: two POSTs in one send get two responses, and the
 * server still stops on SIGTERM (libwebsockets 4.1.6's HTTP server spun in
 * lws_http_action() here; see tshttp.h). */
Test(tsnet, http_pipelined_posts_are_both_answered)
{
    const char *body = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
                       "\"protocolVersion\":\"2025-06-18\"}}";
    char one[1024], buf[8192];
    int n = snprintf(one, sizeof(one),
                     "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n" JSON_CT
                     "Content-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    char two[2048];
    memcpy(two, one, (size_t)n);
    memcpy(two + n, one, (size_t)n);
    int fd = ts_child_dial(http_port);
    send_all(fd, two, 2 * (size_t)n);
    size_t have = 0;
    int responses = 0;
    while (responses < 2) {
        ssize_t k = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
        if (k <= 0)
            break;
        have += (size_t)k;
        buf[have] = '\0';
        responses = 0;
        for (const char *p = buf; (p = strstr(p, "\"serverInfo\"")) != NULL; p++)
            responses++;
    }
    close(fd);
    cr_expect_eq(responses, 2, "both pipelined requests are answered: %s", buf);
}
