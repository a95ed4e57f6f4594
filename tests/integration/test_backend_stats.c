/*
 * tests/integration/test_backend_stats.c — per-backend statistics through
 * the real daemon (shm backend stats section, /metrics, /readyz,
 * mcp-bridge-shm --json), and issue 3's "Done when": three backends, one per
 * transport, seen through one WebSocket.
 *
 * Backends are the test server: stdio (a child of each worker), and --http
 * 0 / --ws 0 started here (the port read from its "listening ws PORT"
 * line), each with --name X so tool names differ; every process is stopped
 * by pid.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/ops_daemon.h"
#include "tests/integration/upstream_peer.h"
#include "tests/support/daemon.h"
#include "tests/support/net.h"
#include "tests/support/testutil.h"
#include "tests/support/wsclient.h"

#define IO_MS   8000
#define BODY_SZ 131072

static struct mb_test_daemon *gw;
static uint16_t mport;
static struct mb_wsclient *client;
static struct peer httpsrv, wssrv;
static char body[BODY_SZ];

static void teardown(void)
{
    mb_wsclient_free(&client);
    mb_test_daemon_free(&gw);
    peer_kill(&httpsrv);
    peer_kill(&wssrv);
}

#define BS_TEST(name) Test(backend_stats, name, .fini = teardown, .timeout = 90)

static void start(const char *backends, int workers)
{
    struct mb_test_conf conf = {.workers = workers, .extra = backends};
    ops_start(&gw, &conf, &mport, NULL);
    char err[256];
    cr_assert_eq(mb_wsclient_connect(&client, gw->port, "/", NULL, IO_MS, err, sizeof(err)), 0,
                 "%s", err);
}

static int get(const char *path)
{
    int status = 0;
    int rc = mb_test_http_get(mport, path, &status, body, sizeof(body), IO_MS);
    cr_assert_eq(rc, 0, "GET %s on port %u: %s\n--- log:\n%s", path, (unsigned)mport, strerror(-rc),
                 mb_test_daemon_log(gw));
    return status;
}

/* The value of "name{labels} v" in the last /metrics body; -1 absent. */
static double sample(const char *name, const char *labels)
{
    char key[512];
    snprintf(key, sizeof(key), "\n%s{%s} ", name, labels);
    const char *p = strstr(body, key);
    return p ? strtod(p + strlen(key), NULL) : -1;
}

/* Polls /metrics until the sample equals want (bounded). */
static bool wait_sample(const char *name, const char *labels, double want)
{
    for (int i = 0; i < 200; i++) {
        if (get("/metrics") == 200 && sample(name, labels) == want)
            return true;
        mb_test_sleep_ms(50);
    }
    return false;
}

static cJSON *call(const char *req)
{
    cr_assert_eq(mb_wsclient_send_text(client, req, IO_MS), 0);
    struct mb_wsmsg m;
    for (;;) {
        int rc = mb_wsclient_recv(client, &m, IO_MS);
        cr_assert_eq(rc, 0, "no answer to %s: %s", req, strerror(-rc));
        cJSON *j = cJSON_Parse(m.data);
        cr_assert_not_null(j, "not JSON: %s", m.data);
        if (cJSON_GetObjectItemCaseSensitive(j, "id") != NULL)
            return j;
        cJSON_Delete(j); /* a notification (list_changed ...) */
    }
}

static void initialize(void)
{
    cJSON *r = call("{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
                    "\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{"
                    "\"name\":\"t\",\"version\":\"1\"}}}");
    cr_assert_not_null(cJSON_GetObjectItemCaseSensitive(r, "result"));
    cJSON_Delete(r);
    cr_assert_eq(
        mb_wsclient_send_text(
            client, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", IO_MS),
        0);
}

/* tools/call name {"message":"hi"}: the reply's result (owned by *keep). */
static const cJSON *tool(const char *name, int id, cJSON **keep)
{
    char req[512];
    snprintf(req, sizeof(req),
             "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":"
             "\"%s\",\"arguments\":{\"message\":\"hi\"}}}",
             id, name);
    *keep = call(req);
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(*keep, "result");
    cr_assert_not_null(res, "%s failed: %s", name, cJSON_PrintUnformatted(*keep));
    return res;
}

static char yaml[8192];

static const char *stdio_backend(const char *name, const char *tsname)
{
    static char buf[PATH_MAX + 256];
    char bin[PATH_MAX];
    mb_test_bin_path(bin, sizeof(bin), "mcp-bridge-testserver");
    snprintf(buf, sizeof(buf),
             "  - {name: %s, transport: stdio, command: [\"%s\", --stdio, --name, %s]}\n", name,
             bin, tsname);
    return buf;
}

BS_TEST(up_requests_and_readiness_per_backend)
{
    peer_start_named(&wssrv, "--ws", 0, "W");
    snprintf(yaml, sizeof(yaml),
             "backends:\n%s"
             "  - name: ws\n    transport: websocket\n"
             "    endpoints: [{url: \"ws://127.0.0.1:%d/\"}]\n    request_timeout: 3s\n",
             stdio_backend("st", "S"), wssrv.port);
    start(yaml, 2);
    char ws_ep[128];
    snprintf(ws_ep, sizeof(ws_ep), "backend=\"ws\",endpoint=\"ws://127.0.0.1:%d/\"", wssrv.port);
    char st_ep[PATH_MAX + 64], bin[PATH_MAX];
    mb_test_bin_path(bin, sizeof(bin), "mcp-bridge-testserver");
    snprintf(st_ep, sizeof(st_ep), "backend=\"st\",endpoint=\"stdio:%s\"", bin);

    cr_assert(wait_sample("mcp_gateway_backend_up", ws_ep, 1), "ws never up:\n%s", body);
    cr_assert(wait_sample("mcp_gateway_backend_up", st_ep, 1), "stdio never up:\n%s", body);
    cr_expect_eq(get("/readyz"), 200, "%s", body);

    initialize();
    cJSON *k;
    for (int i = 0; i < 3; i++) {
        tool("ws__W_echo", 10 + i, &k);
        cJSON_Delete(k);
    }
    tool("st__S_echo", 20, &k);
    cJSON_Delete(k);

    char lab[PATH_MAX + 128];
    snprintf(lab, sizeof(lab), "%s,status=\"ok\"", ws_ep);
    cr_assert(get("/metrics") == 200);
    /* The ws backend got its 3 calls (plus whatever tools/list the gateway
     * asked for discovery); the stdio one 1 call, and so on. */
    double ws_ok = sample("mcp_gateway_backend_requests_total", lab);
    snprintf(lab, sizeof(lab), "%s,status=\"ok\"", st_ep);
    double st_ok = sample("mcp_gateway_backend_requests_total", lab);
    cr_expect_geq(ws_ok, 3, "ws ok %g\n%s", ws_ok, body);
    cr_expect_geq(st_ok, 1, "stdio ok %g\n%s", st_ok, body);
    cr_expect_geq(ws_ok - st_ok, 2, "per backend: ws %g, stdio %g", ws_ok, st_ok);
    cr_expect_gt(sample("mcp_gateway_backend_latency_seconds", ws_ep), 0, "%s", body);

    /* The same numbers in mcp-bridge-shm --json. */
    cJSON *dump = ops_shm_json(gw);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(dump, "backends");
    cr_assert(cJSON_IsArray(arr));
    bool seen = false;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "backend");
        if (!cJSON_IsString(nm) || strcmp(nm->valuestring, "ws") != 0)
            continue;
        seen = true;
        const cJSON *ok =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(e, "requests"), "ok");
        cr_expect_geq(ok->valuedouble, ws_ok);
        cr_expect_eq(cJSON_GetObjectItemCaseSensitive(e, "up")->valueint, 2, "both workers");
        cr_expect(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(e, "connections")));
        cr_expect(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(e, "latency_ms")));
        cr_expect(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(e, "in_flight")));
    }
    cr_expect(seen, "no ws backend in the dump");
    cJSON_Delete(dump);

    /* The ws backend dies: up 0, a call to it is unavailable, /readyz stays
     * 200 while the stdio backend is up. */
    peer_kill(&wssrv);
    cr_assert(wait_sample("mcp_gateway_backend_up", ws_ep, 0), "ws still up:\n%s", body);
    cr_expect_eq(sample("mcp_gateway_backend_up", st_ep), 1);
    cr_expect_eq(get("/readyz"), 200, "%s", body);
    cJSON *r = call("{\"jsonrpc\":\"2.0\",\"id\":30,\"method\":\"tools/call\",\"params\":{"
                    "\"name\":\"ws__W_echo\",\"arguments\":{\"message\":\"x\"}}}");
    cJSON_Delete(r);
    snprintf(lab, sizeof(lab), "%s,status=\"unavailable\"", ws_ep);
    cr_assert(get("/metrics") == 200);
    /* The call waited for the restart within request_timeout and failed. */
    cr_expect_geq(sample("mcp_gateway_backend_requests_total", lab), 1, "%s", body);

    /* promtool accepts the exposition with the backend families. */
    char path[PATH_MAX], cmd[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/metrics.txt", gw->dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(body, f);
    fclose(f);
    if (system("command -v promtool >/dev/null 2>&1") == 0) {
        snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s' >/dev/null 2>&1", path);
        cr_expect_eq(system(cmd), 0, "promtool check metrics failed on:\n%s", body);
    } else {
        cr_log_warn("promtool not installed: exposition not checked");
    }
}

BS_TEST(readyz_503_when_no_backend_is_up)
{
    int port = mb_test_free_port(); /* nothing listens there */
    snprintf(yaml, sizeof(yaml),
             "backends:\n  - name: gone\n    transport: websocket\n"
             "    endpoints: [{url: \"ws://127.0.0.1:%d/\"}]\n",
             port);
    start(yaml, 1);
    cr_expect_eq(get("/readyz"), 503, "%s", body);
    cr_expect(strstr(body, "no backend is up") != NULL, "%s", body);
}

/* Issue 3, "Done when": three backends on three transports through one
 * WebSocket; every call answered by the right backend. */
BS_TEST(three_transports_through_one_websocket)
{
    peer_start_named(&httpsrv, "--http", 0, "H");
    peer_start_named(&wssrv, "--ws", 0, "W");
    snprintf(yaml, sizeof(yaml),
             "backends:\n%s"
             "  - name: hb\n    transport: http\n"
             "    endpoints: [{url: \"http://127.0.0.1:%d/mcp\"}]\n"
             "  - name: wb\n    transport: websocket\n"
             "    endpoints: [{url: \"ws://127.0.0.1:%d/\"}]\n",
             stdio_backend("sb", "S"), httpsrv.port, wssrv.port);
    start(yaml, 1);
    initialize();

    cJSON *list = call("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
    const cJSON *tools =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(list, "result"), "tools");
    cr_assert(cJSON_IsArray(tools), "%s", cJSON_PrintUnformatted(list));
    const char *want[] = {"sb__S_counter", "hb__H_counter", "wb__W_counter",
                          "sb__S_echo",    "hb__H_echo",    "wb__W_echo"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        bool found = false;
        const cJSON *t;
        cJSON_ArrayForEach(t, tools)
        {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(t, "name");
            found |= cJSON_IsString(nm) && strcmp(nm->valuestring, want[i]) == 0;
        }
        cr_expect(found, "tools/list lacks %s: %s", want[i], cJSON_PrintUnformatted(tools));
    }
    cJSON_Delete(list);

    /* Each backend's counter counts only the calls that reached it: call
     * echo on each a different number of times, then read each counter. */
    static const struct {
        const char *prefix, *server;
        int echoes;
    } b[] = {{"sb__", "S_", 1}, {"hb__", "H_", 2}, {"wb__", "W_", 3}};
    int id = 100;
    for (size_t i = 0; i < 3; i++)
        for (int k = 0; k < b[i].echoes; k++) {
            char name[64];
            snprintf(name, sizeof(name), "%s%secho", b[i].prefix, b[i].server);
            cJSON *keep;
            tool(name, id++, &keep);
            cJSON_Delete(keep);
        }
    for (size_t i = 0; i < 3; i++) {
        char name[64], echo[64], counter[64];
        snprintf(name, sizeof(name), "%s%scounter", b[i].prefix, b[i].server);
        snprintf(echo, sizeof(echo), "%secho", b[i].server);
        snprintf(counter, sizeof(counter), "%scounter", b[i].server);
        cJSON *keep;
        const cJSON *res = tool(name, id++, &keep);
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(res, "structuredContent");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(sc, "tools");
        cr_assert(cJSON_IsObject(t), "%s", cJSON_PrintUnformatted(keep));
        const cJSON *ne = cJSON_GetObjectItemCaseSensitive(t, echo);
        cr_expect(cJSON_IsNumber(ne) && ne->valueint == b[i].echoes,
                  "backend %s saw %d echo calls, expected %d: %s", b[i].prefix,
                  cJSON_IsNumber(ne) ? ne->valueint : -1, b[i].echoes, cJSON_PrintUnformatted(t));
        /* Its own counter call reached it, and no other server's tool did. */
        const cJSON *nc = cJSON_GetObjectItemCaseSensitive(t, counter);
        cr_expect(cJSON_IsNumber(nc) && nc->valueint == 1);
        cr_expect_eq(cJSON_GetArraySize(t), 2, "only its own tools: %s", cJSON_PrintUnformatted(t));
        cJSON_Delete(keep);
    }

    /* The three backends in /metrics, and the http pool's connections. */
    cr_assert_eq(get("/metrics"), 200);
    char lab[128];
    snprintf(lab, sizeof(lab), "backend=\"hb\",endpoint=\"http://127.0.0.1:%d/mcp\"", httpsrv.port);
    cr_expect_eq(sample("mcp_gateway_backend_up", lab), 1, "%s", body);
    double act = sample("mcp_gateway_upstream_connections", "backend=\"hb\",state=\"active\"");
    double idle = sample("mcp_gateway_upstream_connections", "backend=\"hb\",state=\"idle\"");
    cr_expect_geq(act + idle, 1, "the http pool holds a connection: %s", body);
}
