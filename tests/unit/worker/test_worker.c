/*
 * tests/unit/worker/test_worker.c — one real worker process (mb_worker_main
 * in a forked child) on a listening socket this test creates on 127.0.0.1
 * (port chosen by the kernel), driven by the test WebSocket client: healthz
 * and HTTP errors, subprotocol echo, the MCP handshake, close codes 1003 and
 * 1009, fragments, and both stops (QUIT drains with 1001 and still answers a
 * request sent right after the QUIT; TERM exits at once). The worker's shm
 * record is checked through the mapping the child inherits. Every child is
 * killed by pid in the fini, and every wait is bounded.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/process.h"
#include "conf/conf.h"
#include "shm/counters.h"
#include "shm/shm.h"
#include "tests/support/net.h"
#include "tests/support/testutil.h"
#include "tests/support/wsclient.h"

static struct {
    pid_t pid;
    int lfd;
    uint16_t port;
    struct mb_conf *conf;
    struct mb_shm *shm;
    int index;
    char dir[64];
    char shm_path[128];
} t;

static void start_worker(const char *extra_server_yaml)
{
    char yaml[1024], err[512];

    t.pid = -1;
    t.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cr_assert(t.lfd >= 0);
    int one = 1;
    setsockopt(t.lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(t.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(t.lfd, 128), 0);
    socklen_t al = sizeof(a);
    getsockname(t.lfd, (struct sockaddr *)&a, &al);
    t.port = ntohs(a.sin_port);

    snprintf(yaml, sizeof(yaml),
             "workers: 1\n"
             "server:\n"
             "  listen:\n"
             "    - address: 127.0.0.1\n"
             "      port: %u\n"
             "  max_message_size: 4096\n"
             "%s",
             t.port, extra_server_yaml ? extra_server_yaml : "");
    cr_assert_eq(mb_conf_load_string("test.yaml", yaml, &t.conf, err, sizeof(err)), 0, "%s", err);

    snprintf(t.dir, sizeof(t.dir), "/tmp/mb-test-worker-XXXXXX");
    cr_assert_not_null(mkdtemp(t.dir));
    snprintf(t.shm_path, sizeof(t.shm_path), "%s/shm", t.dir);
    struct mb_shm_params p = {.worker_capacity = 4};
    cr_assert_eq(mb_shm_create(t.shm_path, &p, &t.shm, err, sizeof(err)), 0, "%s", err);
    mb_shm_publish(t.shm);
    t.index = mb_shm_worker_alloc(t.shm, 0, 1);
    cr_assert(t.index >= 0);

    t.pid = fork();
    cr_assert(t.pid >= 0);
    if (t.pid == 0) {
        struct mb_worker_args args = {.conf = t.conf,
                                      .shm = t.shm,
                                      .slot = 0,
                                      .generation = 1,
                                      .worker_index = (uint32_t)t.index,
                                      .listen_fds = &t.lfd,
                                      .nlisten = 1};
        _exit(mb_worker_main(&args));
    }
    mb_shm_worker_started(t.shm, (uint32_t)t.index, t.pid);
}

static bool worker_running(void *arg)
{
    (void)arg;
    return __atomic_load_n(&mb_shm_worker_at(t.shm, (uint32_t)t.index)->state, __ATOMIC_ACQUIRE) ==
           MB_WORKER_RUNNING;
}

static void setup_default(void)
{
    start_worker(NULL);
    cr_assert_eq(mb_test_wait_until(worker_running, NULL, 5000, 10), 0, "worker never ran");
}

static void teardown(void)
{
    if (t.pid > 0) {
        kill(t.pid, SIGKILL);
        waitpid(t.pid, NULL, 0);
    }
    if (t.lfd >= 0)
        close(t.lfd);
    mb_shm_close(&t.shm);
    unlink(t.shm_path);
    rmdir(t.dir);
    mb_conf_free(&t.conf);
}

/* Waits (bounded) for the worker to exit; returns its exit status. */
static int wait_exit(int timeout_ms)
{
    int64_t end = mb_test_now_ms() + timeout_ms;
    int st;
    while (mb_test_now_ms() < end) {
        pid_t r = waitpid(t.pid, &st, WNOHANG);
        if (r == t.pid) {
            t.pid = -1;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        mb_test_sleep_ms(20);
    }
    return -1;
}

static struct mb_wsclient *ws_open(const char *path, const char *proto)
{
    struct mb_wsclient *c = NULL;
    char err[256] = "";
    int rc = mb_wsclient_connect(&c, t.port, path, proto, 3000, err, sizeof(err));
    cr_assert_eq(rc, 0, "connect %s: %d %s", path, rc, err);
    return c;
}

static void call(struct mb_wsclient *c, const char *req, struct mb_wsmsg *m)
{
    int rc = mb_wsclient_call(c, req, m, 3000);
    cr_assert_eq(rc, 0, "call %s: %d", req, rc);
    cr_assert_eq(m->opcode, MB_WS_OP_TEXT, "reply opcode %d", m->opcode);
}

TestSuite(worker, .init = setup_default, .fini = teardown, .timeout = 30);

Test(worker, healthz_and_http_errors)
{
    int status;
    char body[256];
    cr_assert_eq(mb_test_http_get(t.port, "/healthz", &status, body, sizeof(body), 3000), 0);
    cr_expect_eq(status, 200);
    cr_expect_str_eq(body, "ok\n");
    cr_assert_eq(mb_test_http_get(t.port, "/nowhere", &status, body, sizeof(body), 3000), 0);
    cr_expect_eq(status, 404);
    /* a WebSocket path without the upgrade */
    cr_assert_eq(mb_test_http_get(t.port, "/mcp", &status, body, sizeof(body), 3000), 0);
    cr_expect_eq(status, 426);
}

Test(worker, upgrade_refused_off_paths_and_for_foreign_subprotocols)
{
    struct mb_wsclient *c = NULL;
    char err[256] = "";
    cr_expect_eq(mb_wsclient_connect(&c, t.port, "/other", NULL, 3000, err, sizeof(err)), -EPROTO);
    cr_expect(strstr(err, "404") != NULL, "%s", err);
    cr_expect_eq(mb_wsclient_connect(&c, t.port, "/mcp", "graphql-ws", 3000, err, sizeof(err)),
                 -EPROTO);
    cr_expect(strstr(err, "400") != NULL, "%s", err);
}

Test(worker, subprotocol_echoed_when_offered)
{
    struct mb_wsclient *c = ws_open("/", "mcp");
    cr_expect_str_eq(mb_wsclient_protocol(c), "mcp");
    mb_wsclient_free(&c);
    c = ws_open("/mcp", NULL);
    cr_expect_str_eq(mb_wsclient_protocol(c), "");
    mb_wsclient_free(&c);
}

Test(worker, mcp_handshake_and_raw_ids)
{
    struct mb_wsclient *c = ws_open("/mcp", "mcp");
    struct mb_wsmsg m;
    char raw[64];

    /* a request before initialize: implicit session */
    call(c, "{\"jsonrpc\":\"2.0\",\"id\":1000000000000000,\"method\":\"tools/list\"}", &m);
    cr_assert_eq(mb_test_json_raw(m.data, "id", raw, sizeof(raw)), 0);
    cr_expect_str_eq(raw, "1000000000000000");
    cr_expect(strstr(m.data, "\"tools\":[]") != NULL, "%s", m.data);

    call(c,
         "{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"method\":\"initialize\",\"params\":{"
         "\"protocolVersion\":\"2025-03-26\",\"capabilities\":{},"
         "\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}",
         &m);
    cr_assert_eq(mb_test_json_raw(m.data, "id", raw, sizeof(raw)), 0);
    cr_expect_str_eq(raw, "\"abc\"");
    cr_expect(strstr(m.data, "\"protocolVersion\":\"2025-03-26\"") != NULL, "%s", m.data);

    cr_assert_eq(mb_wsclient_send_text(c,
                                       "{\"jsonrpc\":\"2.0\",\"method\":"
                                       "\"notifications/initialized\"}",
                                       3000),
                 0);
    call(c, "{\"jsonrpc\":\"2.0\",\"id\":9007199254740993,\"method\":\"ping\"}", &m);
    cr_assert_eq(mb_test_json_raw(m.data, "id", raw, sizeof(raw)), 0);
    cr_expect_str_eq(raw, "9007199254740993", "the notification got a reply, or the id changed");

    call(c, "{\"jsonrpc\":", &m);
    cr_expect(strstr(m.data, "-32700") != NULL, "%s", m.data);
    call(c, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"no/such\"}", &m);
    cr_expect(strstr(m.data, "-32601") != NULL, "%s", m.data);
    mb_wsclient_free(&c);
}

Test(worker, many_requests_in_flight)
{
    struct mb_wsclient *c = ws_open("/", NULL);
    char req[96];
    for (int i = 0; i < 200; i++) {
        snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"ping\"}", i);
        cr_assert_eq(mb_wsclient_send_text(c, req, 3000), 0);
    }
    for (int i = 0; i < 200; i++) {
        struct mb_wsmsg m;
        char raw[32], want[32];
        cr_assert_eq(mb_wsclient_recv(c, &m, 3000), 0, "reply %d", i);
        cr_assert_eq(mb_test_json_raw(m.data, "id", raw, sizeof(raw)), 0);
        snprintf(want, sizeof(want), "%d", i);
        cr_assert_str_eq(raw, want, "replies come back in order");
    }
    mb_wsclient_free(&c);
}

Test(worker, fragmented_message_is_reassembled)
{
    struct mb_wsclient *c = ws_open("/", NULL);
    const char *a = "{\"jsonrpc\":\"2.0\",\"id\":", *b = "77,\"method\":\"ping\"}";
    cr_assert_eq(mb_wsclient_send_frame(c, 0, MB_WS_OP_TEXT, a, strlen(a), 3000), 0);
    cr_assert_eq(mb_wsclient_send_frame(c, 1, MB_WS_OP_CONT, b, strlen(b), 3000), 0);
    struct mb_wsmsg m;
    cr_assert_eq(mb_wsclient_recv(c, &m, 3000), 0);
    cr_expect_str_eq(m.data, "{\"jsonrpc\":\"2.0\",\"id\":77,\"result\":{}}");
    mb_wsclient_free(&c);
}

Test(worker, binary_frame_closes_1003)
{
    struct mb_wsclient *c = ws_open("/", NULL);
    cr_assert_eq(mb_wsclient_send(c, MB_WS_OP_BINARY, "\x01\x02", 2, 3000), 0);
    struct mb_wsmsg m;
    cr_assert_eq(mb_wsclient_recv(c, &m, 3000), 0);
    cr_expect_eq(m.opcode, MB_WS_OP_CLOSE);
    cr_expect_eq(m.close_code, 1003);
    mb_wsclient_free(&c);
}

Test(worker, oversize_message_closes_1009)
{
    struct mb_wsclient *c = ws_open("/", NULL);
    char big[5000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cr_assert_eq(mb_wsclient_send_text(c, big, 3000), 0);
    struct mb_wsmsg m;
    cr_assert_eq(mb_wsclient_recv(c, &m, 3000), 0);
    cr_expect_eq(m.opcode, MB_WS_OP_CLOSE);
    cr_expect_eq(m.close_code, 1009);
    mb_wsclient_free(&c);
    /* the limit is on the message, not the frame: fragments add up */
    c = ws_open("/", NULL);
    cr_assert_eq(mb_wsclient_send_frame(c, 0, MB_WS_OP_TEXT, big, 3000, 3000), 0);
    cr_assert_eq(mb_wsclient_send_frame(c, 1, MB_WS_OP_CONT, big, 3000, 3000), 0);
    cr_assert_eq(mb_wsclient_recv(c, &m, 3000), 0);
    cr_expect_eq(m.close_code, 1009);
    mb_wsclient_free(&c);
}

Test(worker, shm_record_counts_connections)
{
    struct mb_shm_worker *rec = mb_shm_worker_at(t.shm, (uint32_t)t.index);
    struct mb_wsclient *c = ws_open("/", NULL);
    struct mb_wsmsg m;
    call(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}", &m);
    cr_expect_eq(__atomic_load_n(&rec->connections, __ATOMIC_ACQUIRE), 1);
    cr_expect(__atomic_load_n(&rec->heartbeat_ms, __ATOMIC_ACQUIRE) > 0);
    cr_expect(mb_counters_sum(t.shm, MB_CTR_WS_MESSAGES_IN) >= 1);
    mb_wsclient_free(&c);
}

Test(worker, quit_drains_with_1001_and_answers_late_requests)
{
    struct mb_wsclient *idle = ws_open("/", NULL);
    struct mb_wsclient *fresh = ws_open("/mcp", "mcp");
    struct mb_wsmsg m;

    cr_assert_eq(kill(t.pid, SIGQUIT), 0);
    /* a request sent after the QUIT on a connection accepted before it is
     * still answered */
    call(fresh, "{\"jsonrpc\":\"2.0\",\"id\":\"late\",\"method\":\"ping\"}", &m);
    cr_expect_str_eq(m.data, "{\"jsonrpc\":\"2.0\",\"id\":\"late\",\"result\":{}}");
    /* then both go quiet and are closed with 1001 */
    cr_assert_eq(mb_wsclient_recv(idle, &m, 5000), 0);
    cr_expect_eq(m.opcode, MB_WS_OP_CLOSE);
    cr_expect_eq(m.close_code, 1001);
    cr_assert_eq(mb_wsclient_recv(fresh, &m, 5000), 0);
    cr_expect_eq(m.close_code, 1001);
    cr_expect_eq(
        __atomic_load_n(&mb_shm_worker_at(t.shm, (uint32_t)t.index)->state, __ATOMIC_ACQUIRE),
        MB_WORKER_DRAINING);
    mb_wsclient_free(&idle);
    mb_wsclient_free(&fresh);
    cr_expect_eq(wait_exit(5000), 0);
    /* it stopped accepting: its copy of the socket is closed, ours remains,
     * so a new connection waits in the backlog unanswered */
    int fd = mb_test_tcp_connect(t.port, 1000);
    cr_assert(fd >= 0);
    char buf[16];
    cr_expect_eq(mb_test_recv_some(fd, buf, sizeof(buf), 300), -ETIMEDOUT);
    close(fd);
}

Test(worker, term_stops_at_once)
{
    struct mb_wsclient *c = ws_open("/", NULL);
    int64_t t0 = mb_test_now_ms();
    cr_assert_eq(kill(t.pid, SIGTERM), 0);
    cr_expect_eq(wait_exit(5000), 0);
    /* no drain: the open connection did not hold it (1 s quiet period) */
    cr_expect(mb_test_now_ms() - t0 < 900, "took %lld ms", (long long)(mb_test_now_ms() - t0));
    mb_wsclient_free(&c);
}

static void setup_short_timeouts(void)
{
    start_worker("  shutdown_timeout: 1s\n");
    cr_assert_eq(mb_test_wait_until(worker_running, NULL, 5000, 10), 0, "worker never ran");
}

Test(worker_timeout, busy_connection_is_closed_at_shutdown_timeout, .init = setup_short_timeouts,
     .fini = teardown, .timeout = 30)
{
    struct mb_wsclient *c = ws_open("/", NULL);
    struct mb_wsmsg m;
    cr_assert_eq(kill(t.pid, SIGQUIT), 0);
    /* keep it busy: the quiet period never comes, the timeout does */
    int got_close = 0;
    for (int i = 0; i < 100 && !got_close; i++) {
        if (mb_wsclient_send_text(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}", 1000) !=
            0)
            break;
        if (mb_wsclient_recv(c, &m, 1000) != 0)
            break;
        got_close = m.opcode == MB_WS_OP_CLOSE;
        mb_test_sleep_ms(100);
    }
    cr_expect(got_close, "no close frame");
    cr_expect_eq(m.close_code, 1001);
    cr_expect_eq(wait_exit(5000), 0);
    mb_wsclient_free(&c);
}

Test(worker, pipelined_replies_of_both_frame_length_classes)
{
    /* Replies queued together are framed together by the worker: short
     * (<126 bytes, 7-bit length) and medium (16-bit length) frames must each
     * come back intact and in order. The method name is echoed in the error. */
    struct mb_wsclient *c = ws_open("/", NULL);
    static const size_t name_len[] = {5, 300, 3000, 70, 1000};
    char *req = malloc(4096), *name = malloc(4000);
    cr_assert(req && name);
    for (size_t i = 0; i < sizeof(name_len) / sizeof(name_len[0]); i++) {
        memset(name, 'm', name_len[i]);
        name[name_len[i]] = '\0';
        snprintf(req, 4096, "{\"jsonrpc\":\"2.0\",\"id\":%zu,\"method\":\"%s\"}", i, name);
        cr_assert_eq(mb_wsclient_send_text(c, req, 3000), 0);
    }
    for (size_t i = 0; i < sizeof(name_len) / sizeof(name_len[0]); i++) {
        struct mb_wsmsg m;
        char raw[16], want[16];
        cr_assert_eq(mb_wsclient_recv(c, &m, 3000), 0, "reply %zu", i);
        cr_assert_eq(m.opcode, MB_WS_OP_TEXT);
        cr_assert_eq(mb_test_json_raw(m.data, "id", raw, sizeof(raw)), 0);
        snprintf(want, sizeof(want), "%zu", i);
        cr_expect_str_eq(raw, want);
        cr_expect(strstr(m.data, "-32601") != NULL);
        cr_expect(m.len > name_len[i], "reply %zu is %zu bytes", i, m.len);
    }
    free(req);
    free(name);
    mb_wsclient_free(&c);
}
