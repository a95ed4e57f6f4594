/*
 * tests/integration/test_metrics.c — the metrics endpoint of the real daemon
 * (worker/metrics.c, issue 7): /healthz, /readyz, 404/405, the exposition
 * checked by `promtool check metrics`, request counters that move with
 * requests made on connections spread over both workers and that equal the
 * counters of `mcp-bridge-shm --json`, whichever worker answers the scrape,
 * per-method histograms, connection gauges, reloads counted ok/failed, and
 * the backend label of mcp_gateway_requests_total: the backend that answered
 * a request, or "gateway" for what the gateway answered itself.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/ops_daemon.h"
#include "tests/support/daemon.h"
#include "tests/support/daemon_assert.h"
#include "tests/support/net.h"
#include "tests/support/testutil.h"
#include "tests/support/wsclient.h"

#define IO_MS   5000
#define NCONN   12
#define BODY_SZ 65536

static struct mb_test_daemon *gw;
static uint16_t mport;
static struct mb_wsclient *conns[NCONN];
static char body[BODY_SZ];

static void teardown(void)
{
    for (size_t i = 0; i < NCONN; i++)
        mb_wsclient_free(&conns[i]);
    mb_test_daemon_free(&gw);
}

#define METRICS_TEST(name) Test(metrics, name, .fini = teardown, .timeout = 60)

static int get(const char *path)
{
    int status = 0;
    int rc = mb_test_http_get(mport, path, &status, body, sizeof(body), IO_MS);
    cr_assert_eq(rc, 0, "GET %s on the metrics port: %s", path, strerror(-rc));
    return status;
}

/* The value of one sample line "name{labels} value" (labels exactly as
 * rendered, NULL for none) in text; -1 when absent. */
static double sample_in(const char *text, const char *name, const char *labels)
{
    char key[512];
    if (labels)
        snprintf(key, sizeof(key), "\n%s{%s} ", name, labels);
    else
        snprintf(key, sizeof(key), "\n%s ", name);
    const char *p = strstr(text, key);
    return p ? strtod(p + strlen(key), NULL) : -1;
}

/* The sum of the samples of family name in text whose labels contain
 * `with` (NULL: all of them). */
static double family_sum(const char *text, const char *name, const char *with)
{
    char key[256];
    snprintf(key, sizeof(key), "\n%s{", name);
    double sum = 0;
    for (const char *p = strstr(text, key); p != NULL; p = strstr(p + 1, key)) {
        const char *end = strchr(p + strlen(key), '}');
        cr_assert_not_null(end, "unterminated labels in %s", text);
        size_t n = (size_t)(end - p);
        char line[512];
        cr_assert_lt(n, sizeof(line));
        memcpy(line, p, n);
        line[n] = '\0';
        if (with == NULL || strstr(line, with) != NULL)
            sum += strtod(end + 1, NULL);
    }
    return sum;
}

static double scrape(const char *name, const char *labels)
{
    cr_assert_eq(get("/metrics"), 200, "%s", body);
    return sample_in(body, name, labels);
}

static void call(struct mb_wsclient *c, const char *req)
{
    struct mb_wsmsg m;
    cr_assert_eq(mb_wsclient_call(c, req, &m, IO_MS), 0, "no reply to %s", req);
    cr_assert_eq(m.opcode, MB_WS_OP_TEXT);
}

METRICS_TEST(health_ready_and_errors)
{
    struct mb_test_conf conf = {.workers = 2};
    ops_start(&gw, &conf, &mport, NULL);
    cr_expect_eq(get("/healthz"), 200);
    cr_expect_eq(get("/readyz"), 200);
    cr_expect(strstr(body, "ready") != NULL, "%s", body);
    cr_expect_eq(get("/nope"), 404);

    /* POST is refused with 405 and the connection closed. */
    int fd = mb_test_tcp_connect(mport, IO_MS);
    cr_assert_geq(fd, 0);
    const char *req = "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi";
    cr_assert_eq(mb_test_send_all(fd, req, strlen(req), IO_MS), 0);
    char buf[1024] = "";
    long n = mb_test_recv_some(fd, buf, sizeof(buf) - 1, IO_MS);
    close(fd);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    cr_expect(strncmp(buf, "HTTP/1.1 405", 12) == 0, "%s", buf);

    /* The client port answers /readyz too. */
    int status = 0;
    cr_assert_eq(mb_test_http_get(gw->port, "/readyz", &status, body, sizeof(body), IO_MS), 0);
    cr_expect_eq(status, 200);
    /* A scrape is not a client connection: only the /readyz on the client
     * port (and the runner's probe before it) counted. */
    double before = scrape("mcp_gateway_connections_accepted_total", NULL);
    cr_assert_eq(mb_test_http_get(gw->port, "/healthz", &status, body, sizeof(body), IO_MS), 0);
    for (int i = 0; i < 3; i++)
        get("/healthz");
    cr_expect_eq(scrape("mcp_gateway_connections_accepted_total", NULL), before + 1, "%s", body);
    cr_expect_geq(sample_in(body, "mcp_gateway_connections_total", "transport=\"http\""), 2);
    mb_test_must_finish(gw);
}

METRICS_TEST(promtool_accepts_the_exposition)
{
    struct mb_test_conf conf = {.workers = 2};
    char log[PATH_MAX];
    ops_start(&gw, &conf, &mport, NULL);
    /* Some traffic, so histograms and the request matrix have series. */
    char err[256];
    cr_assert_eq(mb_wsclient_connect(&conns[0], gw->port, "/mcp", "mcp", IO_MS, err, sizeof(err)),
                 0, "%s", err);
    call(conns[0], "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
    call(conns[0], "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"nope\"}");
    call(conns[0], "not json");
    cr_assert_eq(get("/metrics"), 200);
    snprintf(log, sizeof(log), "%s/metrics.txt", gw->dir);
    cr_assert_eq(mb_test_write_file(log, body), 0);

    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        mb_test_must_finish(gw);
        cr_skip_test("promtool is not installed (Debian package prometheus, scripts/deps.sh): "
                     "the exposition was not checked");
    }
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s'", log);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    int status = -1;
    char *out = NULL;
    cr_assert_eq(mb_test_run(argv, 20000, &status, &out), 0);
    cr_expect_eq(status, 0, "promtool check metrics:\n%s\n--- exposition:\n%s", out, body);
    free(out);
    /* Every family has HELP and TYPE (promtool also checks this). */
    for (const char *p = strstr(body, "# TYPE "); p; p = strstr(p + 1, "# TYPE ")) {
        char fam[128];
        cr_assert_eq(sscanf(p, "# TYPE %127s", fam), 1);
        char help[160];
        snprintf(help, sizeof(help), "# HELP %s ", fam);
        cr_expect(strstr(body, help) != NULL, "%s has no HELP", fam);
    }
    mb_test_must_finish(gw);
}

METRICS_TEST(counters_move_on_every_worker_and_match_the_dump)
{
    struct mb_test_conf conf = {.workers = 2};
    char err[256];
    ops_start(&gw, &conf, &mport, NULL);

    /* Enough connections that SO_REUSEPORT spreads them over both workers. */
    for (int i = 0; i < NCONN; i++)
        cr_assert_eq(
            mb_wsclient_connect(&conns[i], gw->port, "/mcp", "mcp", IO_MS, err, sizeof(err)), 0,
            "%s", err);
    struct mb_test_shm s;
    cr_assert_eq(mb_test_shm_read(gw, &s), 0);
    size_t busy = 0;
    for (size_t i = 0; i < s.n; i++)
        busy += strcmp(s.w[i].state, "running") == 0 && s.w[i].connections > 0;
    mb_test_shm_clear(&s);
    cr_assert_eq(busy, 2, "the %d connections did not land on both workers", NCONN);

    for (int i = 0; i < NCONN; i++) {
        call(conns[i], "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
        call(conns[i], "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}");
        call(conns[i], "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"initialize\",\"params\":"
                       "{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},"
                       "\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}");
    }
    call(conns[0], "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\","
                   "\"params\":{\"name\":\"x\"}}");
    call(conns[1], "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"no/such\"}");
    call(conns[1], "{oops");

    const char *ping = "method=\"ping\",backend=\"gateway\",status=\"ok\"";
    /* Several scrapes land on either worker: each one has the totals. */
    for (int i = 0; i < 6; i++) {
        cr_expect_eq(scrape("mcp_gateway_requests_total", ping), 2 * NCONN, "%s", body);
        cr_expect_eq(sample_in(body, "mcp_gateway_requests_total",
                               "method=\"initialize\",backend=\"gateway\",status=\"ok\""),
                     NCONN, "%s", body);
        cr_expect_eq(sample_in(body, "mcp_gateway_requests_total",
                               "method=\"tools/call\",backend=\"gateway\",status=\"invalid_"
                               "params\""),
                     1, "%s", body);
        cr_expect_eq(sample_in(body, "mcp_gateway_requests_total",
                               "method=\"other\",backend=\"gateway\",status=\"method_not_found\""),
                     1);
        cr_expect_eq(sample_in(body, "mcp_gateway_requests_total",
                               "method=\"invalid\",backend=\"gateway\",status=\"parse_error\""),
                     1);
        cr_expect_eq(
            sample_in(body, "mcp_gateway_request_duration_seconds_count", "method=\"ping\""),
            2 * NCONN);
        /* No backend configured: every request is the gateway's. */
        cr_expect_eq(family_sum(body, "mcp_gateway_requests_total", NULL), 3 * NCONN + 3, "%s",
                     body);
        cr_expect_eq(family_sum(body, "mcp_gateway_requests_total", "backend=\"gateway\""),
                     3 * NCONN + 3, "%s", body);
        cr_expect_eq(sample_in(body, "mcp_gateway_request_duration_seconds_bucket",
                               "method=\"ping\",le=\"+Inf\""),
                     2 * NCONN);
        cr_expect_eq(sample_in(body, "mcp_gateway_connections_active", "transport=\"websocket\""),
                     NCONN);
        cr_expect_eq(sample_in(body, "mcp_gateway_connections_total", "transport=\"websocket\""),
                     NCONN);
        cr_expect_eq(sample_in(body, "mcp_gateway_workers", "state=\"running\""), 2);
        cr_expect_gt(sample_in(body, "process_resident_memory_bytes", NULL), 0);
        cr_expect_gt(sample_in(body, "process_open_fds", NULL), 0);
    }

    /* The same numbers as the dump tool's. */
    cJSON *dump = ops_shm_json(gw);
    cr_expect_eq(ops_shm_counter(dump, "requests.ping.ok"), 2 * NCONN);
    cr_expect_eq(ops_shm_counter(dump, "requests.initialize.ok"), NCONN);
    cr_expect_eq(ops_shm_counter(dump, "requests.invalid.parse_error"), 1);
    cr_expect_eq(ops_shm_counter(dump, "connections_ws_total"), NCONN);
    double total = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(dump, "counters"))
    {
        if (strncmp(c->string, "requests.", 9) == 0)
            total += c->valuedouble;
    }
    cr_expect_eq(total, 3 * NCONN + 3, "every answered request is in the matrix once");
    cJSON_Delete(dump);

    /* Closing connections moves the gauge down. */
    for (int i = 0; i < NCONN; i++)
        mb_wsclient_close(conns[i], 1000, IO_MS);
    for (int i = 0; i < NCONN; i++)
        mb_wsclient_free(&conns[i]);
    int64_t deadline = mb_test_now_ms() + 5000;
    while (scrape("mcp_gateway_connections_active", "transport=\"websocket\"") != 0 &&
           mb_test_now_ms() < deadline)
        mb_test_sleep_ms(50);
    cr_expect_eq(sample_in(body, "mcp_gateway_connections_active", "transport=\"websocket\""), 0);
    mb_test_must_finish(gw);
}

static bool generation_is(void *arg)
{
    double want = *(double *)arg;
    int status = 0;
    if (mb_test_http_get(mport, "/metrics", &status, body, sizeof(body), IO_MS) != 0 ||
        status != 200)
        return false;
    return sample_in(body, "mcp_gateway_config_generation", NULL) == want;
}

METRICS_TEST(reloads_are_counted_ok_and_failed)
{
    struct mb_test_conf conf = {.workers = 2};
    ops_start(&gw, &conf, &mport, NULL);
    cr_expect_eq(scrape("mcp_gateway_reloads_total", "result=\"ok\""), 0);
    cr_expect_eq(sample_in(body, "mcp_gateway_config_generation", NULL), 1);

    /* A broken file: refused, counted, the old generation still answers. */
    char *good = mb_test_read_file(gw->conf_path, NULL);
    cr_assert_not_null(good);
    cr_assert_eq(mb_test_daemon_write_conf_text(gw, "workers: [broken\n"), 0);
    cr_assert_eq(mb_test_daemon_signal(gw, SIGHUP), 0);
    int64_t deadline = mb_test_now_ms() + 5000;
    while (scrape("mcp_gateway_reloads_total", "result=\"failed\"") != 1 &&
           mb_test_now_ms() < deadline)
        mb_test_sleep_ms(50);
    cr_expect_eq(sample_in(body, "mcp_gateway_reloads_total", "result=\"failed\""), 1, "%s", body);
    cr_expect_eq(sample_in(body, "mcp_gateway_config_generation", NULL), 1);

    /* A good file: generation 2 serves the same metrics port. */
    cr_assert_eq(mb_test_daemon_write_conf_text(gw, good), 0);
    free(good);
    cr_assert_eq(mb_test_daemon_signal(gw, SIGHUP), 0);
    double two = 2;
    cr_expect_eq(mb_test_wait_until(generation_is, &two, 10000, 50), 0,
                 "generation 2 never showed on /metrics:\n%s", body);
    cr_expect_eq(sample_in(body, "mcp_gateway_reloads_total", "result=\"ok\""), 1);
    cr_expect_eq(sample_in(body, "mcp_gateway_reloads_total", "result=\"failed\""), 1);
    cJSON *dump = ops_shm_json(gw);
    cr_expect_eq(ops_shm_counter(dump, "reloads"), 1);
    cr_expect_eq(ops_shm_counter(dump, "reloads_failed"), 1);
    cJSON_Delete(dump);
    mb_test_must_finish(gw);
}

/* Requests answered later by a backend (the test server over stdio): counted
 * in the matrix under the backend's name (its record in shm, not the
 * worker's row) and in the per-method histogram when the reply is queued,
 * and in requests_in_flight while they wait at the backend. What the gateway
 * answers itself (initialize, the merged lists) stays under "gateway". */
METRICS_TEST(backend_requests_are_counted_and_in_flight)
{
    char srv[PATH_MAX], extra[PATH_MAX + 256], err[256];
    mb_test_bin_path(srv, sizeof(srv), "mcp-bridge-testserver");
    snprintf(extra, sizeof(extra),
             "backends:\n  - {name: solo, transport: stdio, command: [\"%s\", --stdio, --name, "
             "S]}\n",
             srv);
    struct mb_test_conf conf = {.workers = 1, .extra = extra};
    ops_start(&gw, &conf, &mport, NULL);
    cr_assert_eq(mb_wsclient_connect(&conns[0], gw->port, "/mcp", "mcp", IO_MS, err, sizeof(err)),
                 0, "%s", err);
    struct mb_wsclient *c = conns[0];
    call(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"
            "{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},"
            "\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}");
    call(c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":"
            "{\"name\":\"S_echo\",\"arguments\":{\"message\":\"hi\"}}}");
    call(c, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/list\"}");
    call(c, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"prompts/list\"}");
    /* The backend's own error (no such tool there) keeps its code. */
    call(c, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":"
            "{\"name\":\"S_nope\"}}");

    /* A call that sleeps at the backend is in flight until it is answered. */
    cr_assert_eq(mb_wsclient_send_text(c,
                                       "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\","
                                       "\"params\":{\"name\":\"S_sleep\",\"arguments\":{"
                                       "\"ms\":1500}}}",
                                       IO_MS),
                 0);
    mb_test_sleep_ms(300);
    cr_expect_eq(scrape("mcp_gateway_requests_in_flight", NULL), 1, "%s", body);
    struct mb_wsmsg m;
    cr_assert_eq(mb_wsclient_recv(c, &m, IO_MS), 0);
    cr_assert(strstr(m.data, "slept 1500 ms") != NULL, "%s", m.data);
    cr_expect_eq(scrape("mcp_gateway_requests_in_flight", NULL), 0, "%s", body);

    const char *ok = "method=\"tools/call\",backend=\"solo\",status=\"ok\"";
    cr_expect_eq(sample_in(body, "mcp_gateway_requests_total", ok), 2, "%s", body);
    cr_expect_eq(sample_in(body, "mcp_gateway_requests_total",
                           "method=\"tools/call\",backend=\"solo\",status=\"invalid_params\""),
                 1, "%s", body);
    /* Not also under "gateway": absent, not even a zero row. */
    cr_expect_eq(sample_in(body, "mcp_gateway_requests_total",
                           "method=\"tools/call\",backend=\"gateway\",status=\"ok\""),
                 -1, "%s", body);
    cr_expect_eq(sample_in(body, "mcp_gateway_requests_total",
                           "method=\"tools/call\",backend=\"gateway\",status=\"invalid_params\""),
                 -1, "%s", body);
    /* Every answered request once: 1 initialize, 3 calls, 2 lists. */
    cr_expect_eq(family_sum(body, "mcp_gateway_requests_total", NULL), 6, "%s", body);
    cr_expect_eq(family_sum(body, "mcp_gateway_requests_total", "backend=\"solo\""), 3, "%s", body);
    cr_expect_eq(family_sum(body, "mcp_gateway_requests_total", "backend=\"gateway\""), 3, "%s",
                 body);
    /* HELP and TYPE once for the family, whichever matrix a row is from. */
    const char *head = strstr(body, "# TYPE mcp_gateway_requests_total ");
    cr_assert_not_null(head);
    cr_expect_null(strstr(head + 1, "# TYPE mcp_gateway_requests_total "), "%s", body);
    cr_expect_eq(sample_in(body, "mcp_gateway_requests_total",
                           "method=\"tools/list\",backend=\"gateway\",status=\"ok\""),
                 1, "%s", body);
    cr_expect_eq(sample_in(body, "mcp_gateway_requests_total",
                           "method=\"prompts/list\",backend=\"gateway\",status=\"ok\""),
                 1, "%s", body);
    cr_expect_eq(sample_in(body, "mcp_gateway_requests_total",
                           "method=\"initialize\",backend=\"gateway\",status=\"ok\""),
                 1, "%s", body);
    cr_expect_eq(
        sample_in(body, "mcp_gateway_request_duration_seconds_count", "method=\"tools/call\""), 3,
        "%s", body);
    /* The sleep is in the tools/call histogram: its sum is at least 1.5 s. */
    cr_expect_geq(
        sample_in(body, "mcp_gateway_request_duration_seconds_sum", "method=\"tools/call\""), 1.5,
        "%s", body);
    cJSON *dump = ops_shm_json(gw);
    /* The worker's row has none of the backend's answers. */
    cr_expect_eq(ops_shm_counter(dump, "requests.tools/call.ok"), 0);
    cr_expect_eq(ops_shm_counter(dump, "requests.initialize.ok"), 1);
    cr_expect_eq(ops_shm_counter(dump, "requests_in_flight"), 0);
    cJSON_Delete(dump);

    /* A client that leaves with a call at the backend takes it out of the
     * gauge without counting an answer. */
    cr_assert_eq(mb_wsclient_send_text(c,
                                       "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\","
                                       "\"params\":{\"name\":\"S_sleep\",\"arguments\":{"
                                       "\"ms\":3000}}}",
                                       IO_MS),
                 0);
    mb_test_sleep_ms(200);
    cr_expect_eq(scrape("mcp_gateway_requests_in_flight", NULL), 1, "%s", body);
    mb_wsclient_free(&conns[0]);
    int64_t deadline = mb_test_now_ms() + 5000;
    while (scrape("mcp_gateway_requests_in_flight", NULL) != 0 && mb_test_now_ms() < deadline)
        mb_test_sleep_ms(50);
    cr_expect_eq(sample_in(body, "mcp_gateway_requests_in_flight", NULL), 0, "%s", body);
    cr_expect_eq(sample_in(body, "mcp_gateway_requests_total", ok), 2, "%s", body);
    cr_expect_eq(family_sum(body, "mcp_gateway_requests_total", NULL), 6, "%s", body);

    /* promtool still accepts the exposition with these series. */
    if (system("command -v promtool >/dev/null 2>&1") == 0) {
        char log[PATH_MAX], cmd[PATH_MAX + 64];
        snprintf(log, sizeof(log), "%s/metrics.txt", gw->dir);
        cr_assert_eq(mb_test_write_file(log, body), 0);
        snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s'", log);
        char *argv[] = {"/bin/sh", "-c", cmd, NULL};
        int status = -1;
        char *out = NULL;
        cr_assert_eq(mb_test_run(argv, 20000, &status, &out), 0);
        cr_expect_eq(status, 0, "promtool check metrics:\n%s\n--- exposition:\n%s", out, body);
        free(out);
    }
    mb_test_must_finish(gw);
}
