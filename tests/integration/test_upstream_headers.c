/*
 * tests/integration/test_upstream_headers.c — issue 3's "headers from the
 * config go upstream; the client's own credentials never do", through the
 * real daemon, for the Streamable HTTP and the WebSocket upstreams.
 *
 * The backend is a stub MCP server inside this test (a listener on a port the
 * kernel picks, one thread per accepted connection) that records every byte
 * the gateway sends it: each HTTP request (head and body), or the WebSocket
 * upgrade request and each text message. It answers initialize, tools/list
 * and tools/call with fixed JSON carrying the request's id byte for byte,
 * anything else with an empty result (and, over HTTP, with a body that is no
 * JSON-RPC message when the call's message asks for one). Recording raw bytes, not parsed
 * headers, is the point: a leaked credential is found wherever the gateway
 * would put it (a header of any name, the body, the upgrade path).
 *
 * The client talks to the gateway with a raw WebSocket handshake (wsframe.h)
 * because it must carry its own `Authorization: Bearer client-secret-123`
 * and a cookie with the same secret, which the shared wsclient cannot add.
 * The configured header value comes from ${MB_HDR_TEST_TOKEN}, set in the
 * test process before the daemon starts (daemon.c execs it with this
 * process's environment), so the expansion is proved end to end.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/support/daemon.h"
#include "tests/support/net.h"
#include "tests/support/testutil.h"
#include "tests/support/wsframe.h"

#define IO_MS         8000
#define ENV_NAME      "MB_HDR_TEST_TOKEN"
#define ENV_VALUE     "tok-from-env-789"
#define CLIENT_SECRET "client-secret-123"
#define MAX_RECS      256
#define MAX_CONNS     32

/* ---------------------------------------------------------------- the stub */

/* One thing the gateway sent: an HTTP request (head with its body), the
 * WebSocket upgrade request (head, body NULL) or one WebSocket text message
 * (head NULL, body). */
struct rec {
    char *head;
    char *body;
};

struct stub {
    int lfd;
    int port;
    bool ws;
    volatile bool stop;
    pthread_t acceptor;
    bool started;
    pthread_mutex_t mu;
    struct rec recs[MAX_RECS];
    size_t nrecs;
    pthread_t conn_thr[MAX_CONNS];
    int conn_fd[MAX_CONNS];
    size_t nconns;
};

struct conn_arg {
    struct stub *s;
    int fd;
};

static void record(struct stub *s, const char *head, size_t hlen, const char *body, size_t blen)
{
    pthread_mutex_lock(&s->mu);
    if (s->nrecs < MAX_RECS) {
        struct rec *r = &s->recs[s->nrecs++];
        r->head = head ? strndup(head, hlen) : NULL;
        r->body = body ? strndup(body, blen) : NULL;
    }
    pthread_mutex_unlock(&s->mu);
}

/* The JSON-RPC answer to body, or NULL for a notification or a response. */
static char *answer_for(const char *body)
{
    char id[256], method[128], *out = NULL;
    if (mb_test_json_raw(body, "id", id, sizeof(id)) != 0 ||
        mb_test_json_raw(body, "method", method, sizeof(method)) != 0)
        return NULL;
    /* Answers that are no JSON-RPC message, on request (HTTP only). */
    if (strstr(body, "\"message\":\"answer-garbage\""))
        return strdup("this is not json");
    if (strstr(body, "\"message\":\"answer-not-jsonrpc\""))
        return strdup("{\"hello\":1}");
    const char *result = "{}";
    char init[512];
    if (strcmp(method, "\"initialize\"") == 0) {
        /* The version the gateway asked for, so it accepts the answer. */
        char ver[32] = "2025-06-18";
        const char *v = strstr(body, "\"protocolVersion\":\"");
        if (v)
            sscanf(v + 19, "%31[^\"]", ver);
        snprintf(init, sizeof(init),
                 "{\"protocolVersion\":\"%s\",\"capabilities\":{\"tools\":{}},"
                 "\"serverInfo\":{\"name\":\"stub\",\"version\":\"1\"}}",
                 ver);
        result = init;
    } else if (strcmp(method, "\"tools/list\"") == 0) {
        result = "{\"tools\":[{\"name\":\"echo\",\"description\":\"stub echo\","
                 "\"inputSchema\":{\"type\":\"object\"}}]}";
    } else if (strcmp(method, "\"tools/call\"") == 0) {
        result = "{\"content\":[{\"type\":\"text\",\"text\":\"stub answer\"}]}";
    }
    if (asprintf(&out, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":%s}", id, result) < 0)
        return NULL;
    return out;
}

static bool send_all(int fd, const void *p, size_t n)
{
    return mb_test_send_all(fd, p, n, IO_MS) == 0;
}

/* Reads until buf holds "\r\n\r\n" (returns the head's length) or the peer
 * goes away (returns 0). */
static size_t read_head(int fd, char *buf, size_t cap, size_t *len)
{
    for (;;) {
        buf[*len] = '\0';
        char *e = strstr(buf, "\r\n\r\n");
        if (e)
            return (size_t)(e + 4 - buf);
        if (*len + 1 >= cap)
            return 0;
        long r = mb_test_recv_some(fd, buf + *len, cap - 1 - *len, 30000);
        if (r <= 0)
            return 0;
        *len += (size_t)r;
    }
}

static void serve_http(struct stub *s, int fd)
{
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    while (buf && !s->stop) {
        size_t hl = read_head(fd, buf, cap, &len);
        if (hl == 0)
            break;
        size_t clen = 0;
        char *cl = strcasestr(buf, "\r\ncontent-length:");
        if (cl && cl < buf + hl)
            clen = strtoul(cl + 17, NULL, 10);
        if (hl + clen >= cap)
            break;
        while (len < hl + clen) {
            long r = mb_test_recv_some(fd, buf + len, cap - 1 - len, 30000);
            if (r <= 0)
                goto done;
            len += (size_t)r;
        }
        char *body = strndup(buf + hl, clen);
        record(s, buf, hl, body, clen);
        char *ans = answer_for(body);
        char resp[8192];
        int n;
        if (ans)
            n = snprintf(resp, sizeof(resp),
                         "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         "Mcp-Session-Id: stub-session\r\nContent-Length: %zu\r\n\r\n%s",
                         strlen(ans), ans);
        else
            n = snprintf(resp, sizeof(resp), "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
        free(ans);
        free(body);
        if (n <= 0 || (size_t)n >= sizeof(resp) || !send_all(fd, resp, (size_t)n))
            break;
        memmove(buf, buf + hl + clen, len - hl - clen);
        len -= hl + clen;
    }
done:
    free(buf);
}

static bool ws_send(int fd, int opcode, const char *p, size_t n)
{
    uint8_t frame[16384];
    long fl = mb_wsframe_encode(frame, sizeof(frame), 1, opcode, p, n, 0, 0);
    return fl > 0 && send_all(fd, frame, (size_t)fl);
}

static void serve_ws(struct stub *s, int fd)
{
    size_t cap = 1 << 20, len = 0;
    uint8_t *buf = malloc(cap);
    if (buf == NULL)
        return;
    size_t hl = read_head(fd, (char *)buf, cap, &len);
    if (hl == 0)
        goto done;
    record(s, (char *)buf, hl, NULL, 0);
    char key[128], proto[16] = "", acc[29];
    if (mb_wsframe_header_value((char *)buf, hl, "Sec-WebSocket-Key", key, sizeof(key)) != 0 ||
        mb_wsframe_accept_token(key, acc) != 0)
        goto done;
    const char *pr = strcasestr((char *)buf, "\r\nsec-websocket-protocol:");
    if (pr && strstr(pr, "mcp"))
        strcpy(proto, "mcp");
    char resp[512];
    int n =
        snprintf(resp, sizeof(resp),
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
                 acc, proto[0] ? "Sec-WebSocket-Protocol: " : "", proto, proto[0] ? "\r\n" : "");
    if (!send_all(fd, resp, (size_t)n))
        goto done;
    memmove(buf, buf + hl, len - hl);
    len -= hl;
    while (!s->stop) {
        struct mb_wsframe f;
        long used = mb_wsframe_parse(buf, len, &f);
        if (used < 0)
            break;
        if (used == 0) {
            if (len + 1 >= cap)
                break;
            long r = mb_test_recv_some(fd, buf + len, cap - 1 - len, 30000);
            if (r <= 0)
                break;
            len += (size_t)r;
            continue;
        }
        uint8_t *p = (uint8_t *)f.payload;
        if (f.masked)
            mb_wsframe_unmask(p, f.len, f.mask, 0);
        if (f.opcode == MB_WS_OP_TEXT) {
            char *body = strndup((char *)p, f.len);
            record(s, NULL, 0, body, f.len);
            char *ans = answer_for(body);
            free(body);
            bool ok = ans == NULL || ws_send(fd, MB_WS_OP_TEXT, ans, strlen(ans));
            free(ans);
            if (!ok)
                break;
        } else if (f.opcode == MB_WS_OP_PING) {
            ws_send(fd, MB_WS_OP_PONG, (char *)p, f.len);
        } else if (f.opcode == MB_WS_OP_CLOSE) {
            ws_send(fd, MB_WS_OP_CLOSE, "\x03\xe8", 2);
            break;
        }
        memmove(buf, buf + used, len - (size_t)used);
        len -= (size_t)used;
    }
done:
    free(buf);
}

static void *conn_main(void *arg)
{
    struct conn_arg *a = arg;
    if (a->s->ws)
        serve_ws(a->s, a->fd);
    else
        serve_http(a->s, a->fd);
    free(a);
    return NULL;
}

static void *accept_main(void *arg)
{
    struct stub *s = arg;
    while (!s->stop) {
        struct pollfd pfd = {s->lfd, POLLIN, 0};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        pthread_mutex_lock(&s->mu);
        struct conn_arg *a = malloc(sizeof(*a));
        if (s->nconns >= MAX_CONNS || a == NULL) {
            pthread_mutex_unlock(&s->mu);
            free(a);
            close(fd);
            continue;
        }
        a->s = s;
        a->fd = fd;
        s->conn_fd[s->nconns] = fd;
        if (pthread_create(&s->conn_thr[s->nconns], NULL, conn_main, a) == 0)
            s->nconns++;
        else {
            free(a);
            close(fd);
        }
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

static void stub_start(struct stub *s, bool ws)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    s->ws = ws;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(s->lfd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    cr_assert_eq(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0, "bind: %s", strerror(errno));
    cr_assert_eq(listen(s->lfd, 64), 0);
    cr_assert_eq(getsockname(s->lfd, (struct sockaddr *)&a, &al), 0);
    s->port = ntohs(a.sin_port);
    cr_assert_eq(pthread_create(&s->acceptor, NULL, accept_main, s), 0);
    s->started = true;
}

static void stub_stop(struct stub *s)
{
    if (!s->started)
        return;
    s->stop = true;
    pthread_join(s->acceptor, NULL);
    /* Connection threads block in recv: shutting the socket down wakes them. */
    for (size_t i = 0; i < s->nconns; i++)
        shutdown(s->conn_fd[i], SHUT_RDWR);
    for (size_t i = 0; i < s->nconns; i++) {
        pthread_join(s->conn_thr[i], NULL);
        close(s->conn_fd[i]);
    }
    close(s->lfd);
    for (size_t i = 0; i < s->nrecs; i++) {
        free(s->recs[i].head);
        free(s->recs[i].body);
    }
    s->started = false;
}

/* How many records there are, and how many of them are request heads. */
static size_t stub_count(struct stub *s, size_t *heads)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->nrecs, h = 0;
    for (size_t i = 0; i < n; i++)
        h += s->recs[i].head != NULL;
    pthread_mutex_unlock(&s->mu);
    if (heads)
        *heads = h;
    return n;
}

/* Everything recorded, one string, for failure messages and leak checks. */
static char *stub_dump(struct stub *s)
{
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->nrecs; i++)
        fprintf(f, "---- %zu\n%s%s\n", i, s->recs[i].head ? s->recs[i].head : "",
                s->recs[i].body ? s->recs[i].body : "");
    pthread_mutex_unlock(&s->mu);
    fclose(f);
    return out;
}

/* True when head has a header line "name: value" (name case-insensitive,
 * value exact). */
static bool has_header(const char *head, const char *name, const char *value)
{
    size_t nl = strlen(name);
    for (const char *l = strstr(head, "\r\n"); l; l = strstr(l + 2, "\r\n")) {
        const char *h = l + 2;
        if (strncasecmp(h, name, nl) != 0 || h[nl] != ':')
            continue;
        const char *v = h + nl + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        const char *e = strstr(v, "\r\n");
        if (e && (size_t)(e - v) == strlen(value) && strncmp(v, value, strlen(value)) == 0)
            return true;
    }
    return false;
}

/* How many header lines named name the head has. */
static int count_header(const char *head, const char *name)
{
    size_t nl = strlen(name);
    int n = 0;
    for (const char *l = strstr(head, "\r\n"); l; l = strstr(l + 2, "\r\n"))
        if (strncasecmp(l + 2, name, nl) == 0 && l[2 + nl] == ':')
            n++;
    return n;
}

/* ------------------------------------------------------- the raw WS client */

struct raw_client {
    int fd;
    uint8_t buf[1 << 16];
    size_t len;
};

/* Connects to the gateway with the client's own credentials on the upgrade. */
static void client_connect(struct raw_client *c, uint16_t port)
{
    char key[25], req[2048], head[4096];
    mb_wsframe_make_key(key);
    int n = mb_wsframe_handshake_request(req, sizeof(req), "127.0.0.1", "/", key, NULL);
    cr_assert_gt(n, 4);
    /* The request ends with an empty line: put the credentials before it. */
    req[n - 2] = '\0';
    strcat(req, "Authorization: Bearer " CLIENT_SECRET "\r\n"
                "Cookie: sid=" CLIENT_SECRET "\r\n"
                "X-Client-Token: " CLIENT_SECRET "\r\n\r\n");
    c->fd = mb_test_tcp_connect(port, IO_MS);
    cr_assert_geq(c->fd, 0);
    cr_assert_eq(mb_test_send_all(c->fd, req, strlen(req), IO_MS), 0);
    size_t len = 0;
    char *e = NULL;
    head[0] = '\0';
    while ((e = strstr(head, "\r\n\r\n")) == NULL) {
        long r = mb_test_recv_some(c->fd, head + len, sizeof(head) - 1 - len, IO_MS);
        cr_assert_gt(r, 0, "the gateway closed during the handshake");
        len += (size_t)r;
        head[len] = '\0';
    }
    size_t hl = (size_t)(e + 4 - head);
    cr_assert_eq(mb_wsframe_handshake_check(head, hl, key, NULL, 0), 0, "handshake: %s", head);
    c->len = len - hl;
    memcpy(c->buf, head + hl, c->len);
}

/* Sends text and returns the next text message (malloc'd). */
static char *client_call(struct raw_client *c, const char *text)
{
    uint8_t frame[4096];
    long fl = mb_wsframe_encode(frame, sizeof(frame), 1, MB_WS_OP_TEXT, text, strlen(text), 1,
                                0x1234abcdu);
    cr_assert_gt(fl, 0);
    cr_assert_eq(mb_test_send_all(c->fd, frame, (size_t)fl, IO_MS), 0);
    for (;;) {
        struct mb_wsframe f;
        long used = mb_wsframe_parse(c->buf, c->len, &f);
        cr_assert_geq(used, 0, "bad frame from the gateway");
        if (used == 0) {
            long r = mb_test_recv_some(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, IO_MS);
            cr_assert_gt(r, 0, "no answer from the gateway");
            c->len += (size_t)r;
            continue;
        }
        char *msg = f.opcode == MB_WS_OP_TEXT ? strndup((const char *)f.payload, f.len) : NULL;
        memmove(c->buf, c->buf + used, c->len - (size_t)used);
        c->len -= (size_t)used;
        if (msg)
            return msg;
    }
}

/* ---------------------------------------------------------------- tests */

static struct mb_test_daemon *gw;
static struct stub stub;
static struct raw_client cl = {.fd = -1};

static void teardown(void)
{
    if (cl.fd >= 0)
        close(cl.fd);
    cl.fd = -1;
    mb_test_daemon_free(&gw);
    stub_stop(&stub);
}

#define HDR_TEST(name) Test(upstream_headers, name, .fini = teardown, .timeout = 60)

/* Starts the stub and the gateway in front of it with transport and the
 * given headers flow map, then connects the client and calls echo through
 * the gateway. Returns the gateway's answer (malloc'd). */
static char *run(bool ws, const char *headers)
{
    char extra[1024];
    cr_assert_eq(setenv(ENV_NAME, ENV_VALUE, 1), 0);
    stub_start(&stub, ws);
    snprintf(extra, sizeof(extra),
             "backends:\n"
             "  - name: b\n"
             "    transport: %s\n"
             "    endpoints: [{url: \"%s://127.0.0.1:%d/%s\"}]\n"
             "    headers: %s\n"
             "    request_timeout: 3s\n",
             ws ? "websocket" : "http", ws ? "ws" : "http", stub.port, ws ? "" : "mcp", headers);
    struct mb_test_conf conf = {.workers = 1, .extra = extra};
    int rc = mb_test_daemon_start(&gw, &conf);
    if (rc) {
        char *out = gw ? mb_test_daemon_output(gw) : NULL;
        cr_assert_fail("daemon did not start: %s\n%s", strerror(-rc), out ? out : "");
    }
    client_connect(&cl, gw->port);
    return client_call(&cl, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{"
                            "\"name\":\"echo\",\"arguments\":{\"message\":\"marker-42\"}}}");
}

static void finish(void)
{
    char why[4096];
    close(cl.fd);
    cl.fd = -1;
    cr_assert_eq(mb_test_daemon_finish(gw, 8000, why, sizeof(why)), 0, "%s", why);
}

/* The checks shared by both transports: the call went through the stub, the
 * client's secret appears nowhere in what the stub received, and every
 * request head (HTTP: each request; WS: the upgrade) has exactly the
 * configured headers. want_auth is the configured Authorization value or
 * NULL when none is configured. */
static void check(const char *answer, const char *want_auth)
{
    cr_assert(strstr(answer, "stub answer") && strstr(answer, "\"id\":7"),
              "the call was not answered by the stub: %s", answer);
    char *all = stub_dump(&stub);
    cr_assert(strstr(all, "marker-42"), "the stub never saw the call:\n%s", all);
    cr_expect(strstr(all, CLIENT_SECRET) == NULL, "the client's secret went upstream:\n%s", all);
    cr_expect(strstr(all, "${") == NULL, "an unexpanded ${} went upstream:\n%s", all);
    size_t heads = 0;
    pthread_mutex_lock(&stub.mu);
    for (size_t i = 0; i < stub.nrecs; i++) {
        const char *h = stub.recs[i].head;
        if (h == NULL)
            continue;
        heads++;
        cr_expect(has_header(h, "X-Backend-Token", ENV_VALUE), "request %zu without the token:\n%s",
                  i, h);
        cr_expect(has_header(h, "X-Team", "infra"), "request %zu without X-Team:\n%s", i, h);
        cr_expect(count_header(h, "Cookie") == 0, "request %zu with a cookie:\n%s", i, h);
        cr_expect(count_header(h, "X-Client-Token") == 0, "request %zu:\n%s", i, h);
        if (want_auth) {
            cr_expect(count_header(h, "Authorization") == 1 &&
                          has_header(h, "Authorization", want_auth),
                      "request %zu: want only the configured Authorization:\n%s", i, h);
        } else {
            cr_expect(count_header(h, "Authorization") == 0,
                      "request %zu with an Authorization header:\n%s", i, h);
        }
    }
    pthread_mutex_unlock(&stub.mu);
    cr_expect_geq(heads, 1, "nothing recorded:\n%s", all);
    free(all);
}

HDR_TEST(http_sends_config_headers_not_client_credentials)
{
    char *answer = run(false, "{X-Backend-Token: \"${" ENV_NAME "}\", X-Team: infra}");
    check(answer, NULL);
    /* initialize, notifications/initialized and the call at least: every one
     * of them was checked above. */
    size_t n = stub_count(&stub, NULL);
    cr_expect_geq(n, 3, "only %zu upstream requests", n);
    free(answer);
    finish();
}

HDR_TEST(http_configured_authorization_is_the_only_one)
{
    char *answer = run(false, "{X-Backend-Token: \"${" ENV_NAME "}\", X-Team: infra, "
                              "Authorization: \"Bearer backend-cred-456\"}");
    check(answer, "Bearer backend-cred-456");
    free(answer);
    finish();
}

/* A backend answering a request with something that is not JSON-RPC (not
 * JSON at all, or JSON without "jsonrpc") gets the request answered with
 * -32011 at once, not left to its 3 s timeout (-32001); the backend keeps
 * serving the next call. */
HDR_TEST(http_answer_that_is_not_jsonrpc_is_a_protocol_error)
{
    char *answer = run(false, "{X-Team: infra}");
    cr_assert(strstr(answer, "stub answer"), "%s", answer);
    free(answer);
    const char *bad[] = {"answer-garbage", "answer-not-jsonrpc"};
    for (size_t i = 0; i < 2; i++) {
        char req[256];
        snprintf(req, sizeof(req),
                 "{\"jsonrpc\":\"2.0\",\"id\":%zu,\"method\":\"tools/call\",\"params\":{"
                 "\"name\":\"echo\",\"arguments\":{\"message\":\"%s\"}}}",
                 20 + i, bad[i]);
        /* -32011 is the answer itself: a wait for the 3 s timeout would
         * have given -32001. */
        answer = client_call(&cl, req);
        cr_expect(strstr(answer, "\"code\":-32011") != NULL, "%s: %s", bad[i], answer);
        free(answer);
    }
    answer = client_call(&cl, "{\"jsonrpc\":\"2.0\",\"id\":30,\"method\":\"tools/call\","
                              "\"params\":{\"name\":\"echo\",\"arguments\":{\"message\":\"x\"}}}");
    cr_expect(strstr(answer, "stub answer") && strstr(answer, "\"id\":30"), "%s", answer);
    free(answer);
    finish();
}

HDR_TEST(ws_upgrade_sends_config_headers_not_client_credentials)
{
    char *answer = run(true, "{X-Backend-Token: \"${" ENV_NAME "}\", X-Team: infra}");
    check(answer, NULL);
    /* One upgrade request for the whole worker, the rest are messages. */
    size_t heads = 0;
    stub_count(&stub, &heads);
    cr_expect_eq(heads, 1, "%zu upgrade requests", heads);
    free(answer);
    finish();
}

HDR_TEST(ws_configured_authorization_is_the_only_one)
{
    char *answer = run(true, "{X-Backend-Token: \"${" ENV_NAME "}\", X-Team: infra, "
                             "Authorization: \"Bearer backend-cred-456\"}");
    check(answer, "Bearer backend-cred-456");
    free(answer);
    finish();
}
