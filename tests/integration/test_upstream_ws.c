/*
 * tests/integration/test_upstream_ws.c — the WebSocket upstream through the
 * real daemon: the test server (--ws PORT, started by the test on a port the
 * kernel picks) behind one worker, driven by a WebSocket client. tools/list
 * and tools/call; many calls multiplexed on one upstream connection (counted
 * on the peer's side from /proc/net/tcp) answered in about one call's time;
 * a dead backend answered with -32010 naming it, reconnection with backoff
 * when it returns (same port), and a fresh handshake on the new connection;
 * progress notifications reaching the caller; big requests back to back
 * (partly written, then queued) arriving whole; ws:// required.
 */
#define UPSTREAM_MODE "--ws"
#include "tests/integration/upstream_fixture.h"

#define UW_TEST(name) Test(upstream_ws, name, .fini = teardown, .timeout = 60)

UW_TEST(tools_list_and_call)
{
    list_and_call("over ws");
}

UW_TEST(calls_are_multiplexed_on_one_connection)
{
    start(NULL);
    char *raw = NULL, req[256];
    cJSON *j = echo(1, "warm", &raw);
    free(raw);
    cJSON_Delete(j);
    int64_t t0 = mb_test_now_ms();
    for (int i = 0; i < 6; i++) {
        snprintf(req, sizeof(req),
                 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":"
                 "\"sleep\",\"arguments\":{\"ms\":700}}}",
                 10 + i);
        cr_assert_eq(mb_wsclient_send_text(client, req, IO_MS), 0);
    }
    mb_test_sleep_ms(300);
    cr_expect_eq(peer_established(&srv), 1, "one upstream connection carries them all");
    for (int i = 0; i < 6; i++) {
        j = recv_json(&raw);
        cr_expect(mb_test_text_of(j) && strstr(mb_test_text_of(j), "slept") != NULL, "%s", raw);
        free(raw);
        cJSON_Delete(j);
    }
    int64_t took = mb_test_now_ms() - t0;
    cr_expect_lt(took, 6 * 700, "6 sleeps of 700 ms took %lld ms: not concurrent", (long long)took);
    cr_expect_eq(counted("tools", "sleep"), 6);
    finish();
}

/* Requests of 900 KB sent back to back: the first is written straight to
 * the upstream socket (more than it takes at once, so lws keeps the rest),
 * the next ones queue behind it; each comes back whole and in its own reply. */
UW_TEST(big_requests_back_to_back_arrive_whole)
{
    start(NULL);
    enum { N = 6, SIZE = 900 * 1024 };
    static char req[SIZE + 256];
    for (int i = 0; i < N; i++) {
        int n = snprintf(req, sizeof(req),
                         "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{"
                         "\"name\":\"echo\",\"arguments\":{\"message\":\"",
                         100 + i);
        memset(req + n, 'a' + i, SIZE);
        snprintf(req + n + SIZE, sizeof(req) - (size_t)n - SIZE, "\"}}}");
        cr_assert_eq(mb_wsclient_send_text(client, req, IO_MS), 0);
    }
    for (int i = 0; i < N; i++) {
        char *raw = NULL;
        cJSON *j = recv_json(&raw);
        const cJSON *id = mb_test_get(j, "id");
        cr_assert(cJSON_IsNumber(id), "%.200s", raw);
        int k = (int)id->valuedouble - 100;
        cr_assert(k >= 0 && k < N, "%.200s", raw);
        const char *text = mb_test_text_of(j);
        cr_assert_not_null(text, "%.200s", raw);
        cr_expect_eq(strlen(text), (size_t)SIZE, "reply %d: %zu bytes", k, strlen(text));
        cr_expect(strspn(text, (char[]){(char)('a' + k), 0}) == SIZE, "reply %d is not its message",
                  k);
        free(raw);
        cJSON_Delete(j);
    }
    finish();
}

UW_TEST(dead_backend_errors_then_reconnects)
{
    start(NULL);
    char *raw = NULL;
    cJSON *j = echo(1, "alive", &raw);
    free(raw);
    cJSON_Delete(j);
    int port = srv.port;
    peer_stop(&srv);
    mb_test_sleep_ms(200);

    expect_backend_down(10);

    restart_until_back(port);
    /* The new connection ran its own handshake with the new server. */
    cr_expect_eq(counted("methods", "initialize"), 1);
    cr_expect(mb_test_daemon_log_contains(gw, "reconnecting"));
    finish();
}

UW_TEST(progress_reaches_the_caller)
{
    start(NULL);
    cr_assert_eq(mb_wsclient_send_text(
                     client,
                     "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":"
                     "\"progress\",\"arguments\":{\"steps\":3},\"_meta\":{"
                     "\"progressToken\":7}}}",
                     IO_MS),
                 0);
    int progress = 0;
    for (;;) {
        char *raw = NULL;
        cJSON *j = recv_json(&raw);
        if (cJSON_IsString(mb_test_get(j, "method"))) {
            const cJSON *tok = mb_test_get(mb_test_get(j, "params"), "progressToken");
            cr_expect(cJSON_IsNumber(tok) && tok->valueint == 7, "%s", raw);
            progress++;
            free(raw);
            cJSON_Delete(j);
            continue;
        }
        cr_expect_not_null(mb_test_get(j, "result"), "%s", raw);
        free(raw);
        cJSON_Delete(j);
        break;
    }
    cr_expect_eq(progress, 3);
    finish();
}

Test(upstream_ws, needs_ws_urls, .timeout = 30)
{
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        {"backends: [{name: w, transport: websocket, endpoints: [{url: \"http://127.0.0.1:1/\"}]}]",
         "needs ws://"},
        {"backends: [{name: w, transport: websocket, endpoints: [{url: \"wss://127.0.0.1:1/\"}]}]",
         "not supported yet"},
        {"backends: [{name: w, transport: websocket, endpoints: [{url: \"ws://127.0.0.1:1/\"}], "
         "headers: {\"Sec-WebSocket-Protocol\": x}}]",
         "set by the gateway"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_config_refused(i, cases[i].yaml, cases[i].want);
}
