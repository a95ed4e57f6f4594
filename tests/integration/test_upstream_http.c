/*
 * tests/integration/test_upstream_http.c — the Streamable HTTP upstream
 * through the real daemon: the test server (--http PORT, started by the test
 * on a port the kernel picks) behind one worker, driven by a WebSocket
 * client. tools/list and tools/call; parallel sleeps on parallel pooled
 * connections (counted on the peer's side from /proc/net/tcp: as many as
 * calls in flight, capped by max_conns_per_host, reused by the next round);
 * a session lost by a restarted server re-initialized without an error; a
 * dead backend answered with -32010 naming it, and recovery when it
 * returns; progress notifications over SSE reaching the caller; a bad
 * header config refused by -t.
 */
#define UPSTREAM_MODE "--http"
#include "tests/integration/upstream_fixture.h"

#define UH_TEST(name) Test(upstream_http, name, .fini = teardown, .timeout = 60)

UH_TEST(tools_list_and_call)
{
    list_and_call("over http");
}

/* Sends n sleeps of ms at once, counts the peer's connections while they
 * run, and collects all n answers. Returns the connections seen. */
static int parallel_sleeps(int n, int ms, int first_id)
{
    char req[256];
    int64_t t0 = mb_test_now_ms();
    for (int i = 0; i < n; i++) {
        snprintf(req, sizeof(req),
                 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":"
                 "\"sleep\",\"arguments\":{\"ms\":%d}}}",
                 first_id + i, ms);
        cr_assert_eq(mb_wsclient_send_text(client, req, IO_MS), 0);
    }
    mb_test_sleep_ms(ms / 2);
    int conns = peer_established(&srv);
    bool seen[64] = {false};
    for (int i = 0; i < n; i++) {
        char *raw = NULL;
        cJSON *j = recv_json(&raw);
        const cJSON *id = mb_test_get(j, "id");
        cr_assert(cJSON_IsNumber(id) && id->valueint >= first_id && id->valueint < first_id + n,
                  "%s", raw);
        cr_assert(mb_test_text_of(j) && strstr(mb_test_text_of(j), "slept") != NULL, "%s", raw);
        seen[id->valueint - first_id] = true;
        free(raw);
        cJSON_Delete(j);
    }
    for (int i = 0; i < n; i++)
        cr_assert(seen[i], "no answer to %d", first_id + i);
    /* A logical bound, not a performance target: one connection would need
     * n * ms in a row. */
    int64_t took = mb_test_now_ms() - t0;
    cr_expect_lt(took, (int64_t)n * ms, "%d sleeps of %d ms took %lld ms", n, ms, (long long)took);
    return conns;
}

UH_TEST(parallel_calls_use_parallel_pooled_connections)
{
    start("connection_pool: {max_conns_per_host: 8, max_idle_conns_per_host: 8}\n");
    char *raw = NULL;
    cJSON *j = echo(1, "warm", &raw); /* handshake done */
    free(raw);
    cJSON_Delete(j);
    int conns = parallel_sleeps(8, 800, 10);
    cr_expect_eq(conns, 8, "connections while 8 calls ran: %d", conns);
    /* The next round reuses them: still 8, not 8 more. */
    conns = parallel_sleeps(8, 800, 30);
    cr_expect_eq(conns, 8, "connections in the second round: %d", conns);
    cr_expect_eq(counted("tools", "sleep"), 16);
    cr_expect_eq(peer_established(&srv), 8, "idle connections kept");
    finish();
}

UH_TEST(max_conns_per_host_caps_and_queues)
{
    start("connection_pool: {max_conns_per_host: 3}\n");
    char *raw = NULL;
    cJSON *j = echo(1, "warm", &raw);
    free(raw);
    cJSON_Delete(j);
    int conns = parallel_sleeps(7, 600, 10);
    cr_expect_eq(conns, 3, "connections with max_conns_per_host 3: %d", conns);
    cr_expect_eq(counted("tools", "sleep"), 7);
    finish();
}

UH_TEST(idle_connections_expire)
{
    start("connection_pool: {idle_conn_timeout: 1s, max_conns_per_host: 4}\n");
    char *raw = NULL;
    cJSON *j = echo(1, "x", &raw);
    free(raw);
    cJSON_Delete(j);
    cr_expect_geq(peer_established(&srv), 1);
    /* The sweep runs every second: gone within about 2 s of going idle. */
    int64_t deadline = mb_test_now_ms() + 5000;
    while (peer_established(&srv) > 0 && mb_test_now_ms() < deadline)
        mb_test_sleep_ms(100);
    cr_expect_eq(peer_established(&srv), 0);
    /* And a new one is opened for the next call. */
    j = echo(2, "again", &raw);
    cr_expect_str_eq(mb_test_text_of(j) ? mb_test_text_of(j) : "", "again", "%s", raw);
    free(raw);
    cJSON_Delete(j);
    finish();
}

UH_TEST(pool_disabled_one_connection_per_request)
{
    start("connection_pool: {enabled: false}\n");
    char *raw = NULL;
    for (int i = 0; i < 3; i++) {
        cJSON *j = echo(1 + i, "no pool", &raw);
        cr_expect_str_eq(mb_test_text_of(j) ? mb_test_text_of(j) : "", "no pool", "%s", raw);
        free(raw);
        cJSON_Delete(j);
    }
    mb_test_sleep_ms(200);
    cr_expect_eq(peer_established(&srv), 0, "no connection is kept");
    finish();
}

UH_TEST(session_lost_by_restart_is_reinitialized)
{
    start(NULL);
    char *raw = NULL;
    cJSON *j = echo(1, "before", &raw);
    cr_assert_str_eq(mb_test_text_of(j) ? mb_test_text_of(j) : "", "before", "%s", raw);
    free(raw);
    cJSON_Delete(j);

    /* Same port, new process: its sessions are gone, so the next call meets
     * 404 and the gateway replays its handshake. */
    int port = srv.port;
    peer_stop(&srv);
    peer_start(&srv, "--http", port);
    j = echo(2, "after", &raw);
    cr_expect_str_eq(mb_test_text_of(j) ? mb_test_text_of(j) : "", "after", "%s", raw);
    free(raw);
    cJSON_Delete(j);
    cr_expect_eq(counted("methods", "initialize"), 1, "one replayed initialize");
    cr_expect_eq(counted("methods", "notifications/initialized"), 1);
    cr_expect_eq(counted("tools", "echo"), 1, "the call reached the new server once");
    cr_expect(mb_test_daemon_log_contains(gw, "re-initializing"));
    finish();
}

UH_TEST(dead_backend_errors_then_recovers)
{
    start(NULL);
    char *raw = NULL;
    cJSON *j = echo(1, "alive", &raw);
    free(raw);
    cJSON_Delete(j);
    int port = srv.port;
    peer_stop(&srv);

    /* Every call gets a clean error naming the backend while it is gone. */
    for (int i = 0; i < 2; i++)
        expect_backend_down(10 + i);

    restart_until_back(port);
    finish();
}

UH_TEST(progress_over_sse_reaches_the_caller)
{
    start(NULL);
    cr_assert_eq(mb_wsclient_send_text(
                     client,
                     "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":"
                     "\"progress\",\"arguments\":{\"steps\":3,\"ms\":50},\"_meta\":{"
                     "\"progressToken\":\"tok-1\"}}}",
                     IO_MS),
                 0);
    int progress = 0;
    for (;;) {
        char *raw = NULL;
        cJSON *j = recv_json(&raw);
        const cJSON *m = mb_test_get(j, "method");
        if (cJSON_IsString(m)) {
            cr_expect_str_eq(m->valuestring, "notifications/progress", "%s", raw);
            const cJSON *tok = mb_test_get(mb_test_get(j, "params"), "progressToken");
            cr_expect(cJSON_IsString(tok) && strcmp(tok->valuestring, "tok-1") == 0, "%s", raw);
            progress++;
            free(raw);
            cJSON_Delete(j);
            continue;
        }
        cr_expect_eq(mb_test_get(j, "id")->valueint, 5, "%s", raw);
        cr_expect_not_null(mb_test_get(j, "result"), "%s", raw);
        free(raw);
        cJSON_Delete(j);
        break;
    }
    cr_expect_eq(progress, 3);
    finish();
}

UH_TEST(endpoints_weighted_each_with_its_own_session)
{
    struct peer second = {0};
    char extra[2048];
    peer_start(&srv, "--http", 0);
    peer_start(&second, "--http", 0);
    snprintf(extra, sizeof(extra),
             "backends:\n"
             "  - name: h\n"
             "    transport: http\n"
             "    endpoints:\n"
             "      - {url: \"http://127.0.0.1:%d/mcp\", weight: 1}\n"
             "      - {url: \"http://127.0.0.1:%d/mcp\", weight: 3}\n",
             srv.port, second.port);
    struct mb_test_conf conf = {.workers = 1, .extra = extra};
    int rc = mb_test_daemon_start(&gw, &conf);
    if (rc) {
        peer_stop(&second);
        cr_assert_fail("daemon did not start: %s", strerror(-rc));
    }
    char err[256], *raw = NULL;
    cr_assert_eq(mb_wsclient_connect(&client, gw->port, "/", NULL, IO_MS, err, sizeof(err)), 0,
                 "%s", err);
    for (int i = 0; i < 8; i++) {
        cJSON *j = echo(1 + i, "rr", &raw);
        cr_expect_str_eq(mb_test_text_of(j) ? mb_test_text_of(j) : "", "rr", "%s", raw);
        free(raw);
        cJSON_Delete(j);
    }
    /* Smooth weighted round robin over 1:3: exactly 2 and 6 of 8 in a row. */
    int a = peer_counted(&srv, "tools", "echo"), b = peer_counted(&second, "tools", "echo");
    /* Each endpoint got one handshake from the gateway (plus the test's own). */
    int ia = peer_counted(&srv, "methods", "initialize");
    int ib = peer_counted(&second, "methods", "initialize");
    peer_stop(&second);
    cr_expect_eq(a, 2, "weight 1 endpoint got %d of 8", a);
    cr_expect_eq(b, 6, "weight 3 endpoint got %d of 8", b);
    cr_expect_eq(ia, 1 + 2, "initialize at the first endpoint: %d", ia);
    cr_expect_eq(ib, 1 + 2, "initialize at the second endpoint: %d", ib);
    finish();
}

Test(upstream_http, config_checks, .timeout = 30)
{
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        {"backends: [{name: h, transport: http, endpoints: [{url: \"https://127.0.0.1:1/mcp\"}]}]",
         "not supported yet"},
        {"backends: [{name: h, transport: http, endpoints: [{url: \"http://127.0.0.1:1/\"}], "
         "headers: {\"Mcp-Session-Id\": x}}]",
         "set by the gateway"},
        {"backends: [{name: h, transport: http, endpoints: [{url: \"http://127.0.0.1:1/\"}], "
         "headers: {\"Bad Name\": x}}]",
         "not a valid header name"},
        {"connection_pool: {max_conns_per_host: 0}", "connection_pool.max_conns_per_host"},
        {"connection_pool: {tls_handshake_timeout: 5s}", "not supported yet"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_config_refused(i, cases[i].yaml, cases[i].want);
}
