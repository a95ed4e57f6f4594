/*
 * tests/integration/test_backends.c — backends behind one WebSocket endpoint,
 * through the real daemon: the test server (build/mcp-bridge-testserver
 * --stdio --name X) as one or two stdio backends. Merged and prefixed
 * tools/list, calls answered by the right backend (the `counter` tool proves
 * which backend received what), progress notifications reaching the caller,
 * a slow backend not delaying another, a killed backend child giving clean
 * -32010 errors and coming back, unknown tools (-32602 with data), timeouts
 * (-32001), and a client that leaves with a request in flight (cancelled
 * upstream). Every test uses one worker, so "the backend child" is one
 * process, found as the child of the worker (pgrep -P).
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/daemon.h"
#include "tests/support/testutil.h"
#include "tests/support/daemon_assert.h"
#include "tests/support/ws_assert.h"
#include "tests/support/wsclient.h"

#define IO_MS 5000

static struct mb_test_daemon *gw;
static struct mb_wsclient *clients[8];
static size_t nclients;

static void teardown(void)
{
    for (size_t i = 0; i < nclients; i++)
        mb_wsclient_free(&clients[i]);
    nclients = 0;
    mb_test_daemon_free(&gw);
}

#define BK_TEST(name) Test(backends, name, .fini = teardown, .timeout = 40)

/* Starts the daemon with one worker and the given backends section (YAML
 * text where %s is the test server's path, used for every backend). */
static void start(const char *backends_fmt, const char *routing)
{
    char srv[4096], extra[8192];
    mb_test_bin_path(srv, sizeof(srv), "mcp-bridge-testserver");
    char body[6144];
    snprintf(body, sizeof(body), backends_fmt, srv, srv);
    snprintf(extra, sizeof(extra), "backends:\n%s%s", body, routing ? routing : "");
    struct mb_test_conf conf = {.workers = 1, .extra = extra};
    mb_test_must_start(&gw, &conf);
}

static const char TWO[] = "  - {name: a, transport: stdio, command: [\"%s\", --stdio, --name, A]}\n"
                          "  - {name: b, transport: stdio, command: [\"%s\", --stdio, --name, B],"
                          " request_timeout: 700ms}\n";
static const char ONE[] =
    "  - {name: solo, transport: stdio, command: [\"%s\", --stdio, --name, S]}\n";

static void finish(void)
{
    mb_test_must_finish_within(gw, 8000);
}

static struct mb_wsclient *ws_open(void)
{
    char err[256];
    struct mb_wsclient *c = NULL;
    cr_assert_lt(nclients, sizeof(clients) / sizeof(clients[0]));
    cr_assert_eq(mb_wsclient_connect(&c, gw->port, "/", NULL, IO_MS, err, sizeof(err)), 0, "%s",
                 err);
    clients[nclients++] = c;
    return c;
}

/* The next message, which must be the answer (no notification skipped). */
static cJSON *recv_json(struct mb_wsclient *c, char **raw)
{
    return mb_test_ws_recv(c, false, IO_MS, raw);
}

static cJSON *call(struct mb_wsclient *c, const char *req, char **raw)
{
    return mb_test_ws_call(c, req, false, IO_MS, raw);
}

static const char *error_data_str(const cJSON *reply, const char *key)
{
    const cJSON *v = mb_test_get(mb_test_get(mb_test_get(reply, "error"), "data"), key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The backend's count (its tool counter_tool) of methods[name] or tools[name]. */
static int counted(struct mb_wsclient *c, const char *counter_tool, const char *section,
                   const char *name)
{
    return mb_test_ws_counted(c, counter_tool, section, name, false, IO_MS);
}

/* The pid of the worker's only child (the stdio backend, one per test). */
static pid_t backend_child(void)
{
    struct mb_test_shm s;
    struct mb_test_worker run[4];
    cr_assert_eq(mb_test_shm_read(gw, &s), 0);
    size_t n = mb_test_shm_running(&s, run, 4);
    mb_test_shm_clear(&s);
    cr_assert_eq(n, 1);
    char ppid[32], *out = NULL;
    snprintf(ppid, sizeof(ppid), "%d", (int)run[0].pid);
    char *argv[] = {"/usr/bin/pgrep", "-P", ppid, NULL};
    int status;
    cr_assert_eq(mb_test_run(argv, 5000, &status, &out), 0);
    pid_t pid = out ? (pid_t)strtol(out, NULL, 10) : 0;
    cr_assert_gt(pid, 0, "no child of worker %s: %s", ppid, out ? out : "");
    free(out);
    return pid;
}

BK_TEST(two_backends_tools_list_is_merged_and_prefixed)
{
    start(TWO, NULL);
    struct mb_wsclient *c = ws_open();
    char *raw = NULL;
    cJSON *j = call(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}", &raw);
    cr_assert(mb_test_has_tool(j, "a__A_echo") && mb_test_has_tool(j, "b__B_echo") &&
                  mb_test_has_tool(j, "b__B_sleep"),
              "%s", raw);
    cr_assert(!mb_test_has_tool(j, "A_echo") && !mb_test_has_tool(j, "echo"),
              "unprefixed names: %s", raw);
    free(raw);
    cJSON_Delete(j);
    finish();
}

BK_TEST(one_backend_with_prefix_auto_keeps_names)
{
    start(ONE, NULL);
    struct mb_wsclient *c = ws_open();
    char *raw = NULL;
    cJSON *j = call(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}", &raw);
    cr_assert(mb_test_has_tool(j, "S_echo") && !mb_test_has_tool(j, "solo__S_echo"), "%s", raw);
    cJSON_Delete(j);
    free(raw);
    j = call(c,
             "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":"
             "\"S_echo\",\"arguments\":{\"message\":\"plain\"}}}",
             &raw);
    cr_assert_str_eq(mb_test_text_of(j) ? mb_test_text_of(j) : "", "plain", "%s", raw);
    cJSON_Delete(j);
    free(raw);
    finish();
}

BK_TEST(prefix_always_with_one_backend)
{
    start(ONE, "routing: {prefix: always}\n");
    struct mb_wsclient *c = ws_open();
    char *raw = NULL;
    cJSON *j = call(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}", &raw);
    cr_assert(mb_test_has_tool(j, "solo__S_echo"), "%s", raw);
    cJSON_Delete(j);
    free(raw);
    finish();
}

BK_TEST(calls_reach_the_owning_backend_with_ids_kept)
{
    start(TWO, NULL);
    struct mb_wsclient *c = ws_open();
    char *raw = NULL, id[64];
    cJSON *j = call(c,
                    "{\"jsonrpc\":\"2.0\",\"id\":9007199254740993,\"method\":\"tools/call\","
                    "\"params\":{\"name\":\"b__B_echo\",\"arguments\":{\"message\":\"to b\"}}}",
                    &raw);
    cr_assert_eq(mb_test_json_raw(raw, "id", id, sizeof(id)), 0);
    cr_assert_str_eq(id, "9007199254740993", "%s", raw);
    cr_assert_str_eq(mb_test_text_of(j) ? mb_test_text_of(j) : "", "to b", "%s", raw);
    cJSON_Delete(j);
    free(raw);
    /* Only b saw the echo; a saw none. */
    cr_expect_eq(counted(c, "b__B_counter", "tools", "B_echo"), 1);
    cr_expect_eq(counted(c, "a__A_counter", "tools", "A_echo"), 0);
    finish();
}

BK_TEST(progress_notifications_reach_the_caller)
{
    start(TWO, NULL);
    struct mb_wsclient *c = ws_open();
    cr_assert_eq(mb_wsclient_send_text(c,
                                       "{\"jsonrpc\":\"2.0\",\"id\":\"p1\",\"method\":\"tools/"
                                       "call\",\"params\":{\"name\":\"a__A_progress\","
                                       "\"arguments\":{\"steps\":3},\"_meta\":{"
                                       "\"progressToken\":\"my-token\"}}}",
                                       IO_MS),
                 0);
    int progress = 0;
    for (;;) {
        char *raw = NULL;
        cJSON *j = recv_json(c, &raw);
        const cJSON *method = mb_test_get(j, "method");
        if (cJSON_IsString(method)) {
            cr_assert_str_eq(method->valuestring, "notifications/progress", "%s", raw);
            const cJSON *tok = mb_test_get(mb_test_get(j, "params"), "progressToken");
            cr_assert(cJSON_IsString(tok) && strcmp(tok->valuestring, "my-token") == 0,
                      "the client's token was not restored: %s", raw);
            progress++;
        } else {
            cr_assert_str_eq(mb_test_text_of(j) ? mb_test_text_of(j) : "", "progress: 3 steps",
                             "%s", raw);
            cJSON_Delete(j);
            free(raw);
            break;
        }
        cJSON_Delete(j);
        free(raw);
    }
    cr_assert_eq(progress, 3);
    finish();
}

BK_TEST(a_slow_backend_does_not_delay_another)
{
    start(TWO, "routing: {request_timeout: 10s}\n");
    /* b's own timeout is 700ms: give it a sleep shorter than that. */
    struct mb_wsclient *c = ws_open();
    cr_assert_eq(mb_wsclient_send_text(c,
                                       "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
                                       "\"params\":{\"name\":\"a__A_sleep\",\"arguments\":{"
                                       "\"ms\":2000}}}",
                                       IO_MS),
                 0);
    cr_assert_eq(mb_wsclient_send_text(c,
                                       "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\","
                                       "\"params\":{\"name\":\"b__B_echo\",\"arguments\":{"
                                       "\"message\":\"quick\"}}}",
                                       IO_MS),
                 0);
    char *raw = NULL;
    cJSON *first = recv_json(c, &raw);
    cr_assert_eq(mb_test_get(first, "id")->valueint, 2, "the echo did not come first: %s", raw);
    cr_assert_str_eq(mb_test_text_of(first), "quick");
    cJSON_Delete(first);
    free(raw);
    cJSON *second = recv_json(c, &raw);
    cr_assert_eq(mb_test_get(second, "id")->valueint, 1, "%s", raw);
    cr_assert_str_eq(mb_test_text_of(second), "slept 2000 ms", "%s", raw);
    cJSON_Delete(second);
    free(raw);
    finish();
}

BK_TEST(unknown_tool_is_invalid_params_naming_it)
{
    start(TWO, NULL);
    struct mb_wsclient *c = ws_open();
    char *raw = NULL;
    cJSON *j = call(c,
                    "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{"
                    "\"name\":\"nobody__echo\"}}",
                    &raw);
    cr_assert_eq(mb_test_error_code(j), -32602, "%s", raw);
    cr_assert_str_eq(error_data_str(j, "name") ? error_data_str(j, "name") : "", "nobody__echo",
                     "%s", raw);
    cJSON_Delete(j);
    free(raw);
    j = call(c,
             "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"resources/read\",\"params\":{"
             "\"uri\":\"test://hello\"}}",
             &raw);
    cr_assert_eq(mb_test_error_code(j), -32602, "an unprefixed URI with two backends: %s", raw);
    cJSON_Delete(j);
    free(raw);
    j = call(c,
             "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"resources/read\",\"params\":{"
             "\"uri\":\"b+test://echo/xyz\"}}",
             &raw);
    const cJSON *contents = mb_test_get(mb_test_get(j, "result"), "contents");
    const cJSON *t = mb_test_get(cJSON_GetArrayItem(contents, 0), "text");
    cr_assert(cJSON_IsString(t) && strcmp(t->valuestring, "xyz") == 0, "%s", raw);
    cJSON_Delete(j);
    free(raw);
    finish();
}

BK_TEST(timeout_gives_minus_32001_naming_the_backend)
{
    start(TWO, NULL);
    struct mb_wsclient *c = ws_open();
    char *raw = NULL;
    cJSON *j = call(c,
                    "{\"jsonrpc\":\"2.0\",\"id\":\"slow\",\"method\":\"tools/call\",\"params\":{"
                    "\"name\":\"b__B_sleep\",\"arguments\":{\"ms\":3000}}}",
                    &raw);
    cr_assert_eq(mb_test_error_code(j), -32001, "%s", raw);
    cr_assert_str_eq(error_data_str(j, "backend") ? error_data_str(j, "backend") : "", "b", "%s",
                     raw);
    cJSON_Delete(j);
    free(raw);
    /* The timed-out request was cancelled upstream. */
    cr_expect_geq(counted(c, "b__B_counter", "methods", "notifications/cancelled"), 1);
    finish();
}

static bool echo_works(void *arg)
{
    struct mb_wsclient *c = arg;
    struct mb_wsmsg m;
    if (mb_wsclient_call(c,
                         "{\"jsonrpc\":\"2.0\",\"id\":50,\"method\":\"tools/call\",\"params\":{"
                         "\"name\":\"S_echo\",\"arguments\":{\"message\":\"back\"}}}",
                         &m, IO_MS) != 0)
        return false;
    return strstr(m.data, "\"result\"") != NULL && strstr(m.data, "back") != NULL;
}

BK_TEST(killed_backend_gives_clean_errors_and_recovers)
{
    start(ONE, NULL);
    struct mb_wsclient *c = ws_open();
    cr_assert(echo_works(c));
    pid_t child = backend_child();
    cr_assert_eq(mb_wsclient_send_text(c,
                                       "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\","
                                       "\"params\":{\"name\":\"S_sleep\",\"arguments\":{"
                                       "\"ms\":5000}}}",
                                       IO_MS),
                 0);
    mb_test_sleep_ms(200);
    cr_assert_eq(kill(child, SIGKILL), 0);
    char *raw = NULL;
    cJSON *j = recv_json(c, &raw);
    cr_assert_eq(mb_test_error_code(j), -32010, "%s", raw);
    cr_assert_str_eq(error_data_str(j, "backend") ? error_data_str(j, "backend") : "", "solo", "%s",
                     raw);
    cr_assert_not_null(error_data_str(j, "reason"), "%s", raw);
    cJSON_Delete(j);
    free(raw);
    /* The worker restarts it; calls work again (new ones wait for it). */
    cr_assert_eq(mb_test_wait_until(echo_works, c, 10000, 100), 0, "the backend did not recover");
    pid_t again = backend_child();
    cr_assert_neq(again, child);
    cr_assert(mb_test_daemon_log_contains(gw, "backend solo: child killed by signal 9"));
    finish();
}

BK_TEST(client_leaving_cancels_its_requests_upstream)
{
    start(ONE, NULL);
    struct mb_wsclient *c = ws_open();
    cr_assert_eq(mb_wsclient_send_text(c,
                                       "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
                                       "\"params\":{\"name\":\"S_sleep\",\"arguments\":{"
                                       "\"ms\":1500}}}",
                                       IO_MS),
                 0);
    mb_test_sleep_ms(100);
    mb_wsclient_free(&clients[--nclients]);
    struct mb_wsclient *d = ws_open();
    cr_assert(echo_works(d));
    cr_expect_geq(counted(d, "S_counter", "methods", "notifications/cancelled"), 1);
    /* The late answer to the cancelled request goes nowhere; this session
     * only sees its own replies. */
    mb_test_sleep_ms(1600);
    cr_assert(echo_works(d));
    finish();
}

BK_TEST(initialize_merges_backend_capabilities)
{
    start(TWO, NULL);
    struct mb_wsclient *c = ws_open();
    /* A list waits for backends still in their handshake. */
    char *raw = NULL;
    cJSON *j = call(c, "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"tools/list\"}", &raw);
    cr_assert(mb_test_has_tool(j, "a__A_echo") && mb_test_has_tool(j, "b__B_echo"), "%s", raw);
    cJSON_Delete(j);
    free(raw);
    j = call(c,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
             "\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{"
             "\"name\":\"t\",\"version\":\"1\"}}}",
             &raw);
    const cJSON *caps = mb_test_get(mb_test_get(j, "result"), "capabilities");
    cr_assert(cJSON_IsObject(mb_test_get(caps, "tools")), "%s", raw);
    cr_assert(cJSON_IsObject(mb_test_get(caps, "prompts")), "the test server has prompts: %s", raw);
    cr_assert(cJSON_IsObject(mb_test_get(caps, "resources")), "the test server has resources: %s",
              raw);
    cJSON_Delete(j);
    free(raw);
    finish();
}

/* A backend whose process takes a second before it speaks (the test server
 * behind `sleep 1`): its handshake ends well after the worker started. */
static const char SLOW_START[] =
    "  - {name: slow, transport: stdio, request_timeout: 10s,\n"
    "     command: [sh, -c, \"sleep 1; exec '%s' --stdio --name S\"]}\n";

static const char INIT_REQ[] =
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
    "\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{"
    "\"name\":\"t\",\"version\":\"1\"}}}";

BK_TEST(initialize_waits_for_a_backend_still_starting)
{
    start(SLOW_START, NULL);
    /* At once: the backend is still asleep, so its capabilities are not
     * known yet; the reply waits for its handshake (mcp.h). */
    struct mb_wsclient *c = ws_open();
    char *raw = NULL;
    int64_t t0 = mb_test_now_ms();
    cJSON *j = call(c, INIT_REQ, &raw);
    const cJSON *caps = mb_test_get(mb_test_get(j, "result"), "capabilities");
    cr_assert(cJSON_IsObject(mb_test_get(caps, "tools")), "%s", raw);
    cr_assert(cJSON_IsObject(mb_test_get(caps, "prompts")), "prompts missing: %s", raw);
    cr_assert(cJSON_IsObject(mb_test_get(caps, "resources")), "resources missing: %s", raw);
    cr_assert_lt(mb_test_now_ms() - t0, 4500, "the hold outlived its bound");
    cJSON_Delete(j);
    free(raw);
    /* A second initialize on the session is still refused. */
    j = call(c, INIT_REQ, &raw);
    cr_assert_eq(mb_test_error_code(j), -32600, "%s", raw);
    cJSON_Delete(j);
    free(raw);
    /* Once ready, a new session is answered at once with the same. */
    struct mb_wsclient *d = ws_open();
    j = call(d, INIT_REQ, &raw);
    cr_assert(cJSON_IsObject(
                  mb_test_get(mb_test_get(mb_test_get(j, "result"), "capabilities"), "prompts")),
              "%s", raw);
    cJSON_Delete(j);
    free(raw);
    finish();
}

BK_TEST(a_backend_ready_after_the_bound_sends_list_changed)
{
    /* The hold is bounded by routing.request_timeout (300ms) here; the
     * backend's own timeout is long enough for its slow start. */
    start(SLOW_START, "routing: {request_timeout: 300ms}\n");
    struct mb_wsclient *c = ws_open();
    char *raw = NULL;
    cJSON *j = call(c, INIT_REQ, &raw);
    const cJSON *caps = mb_test_get(mb_test_get(j, "result"), "capabilities");
    cr_assert(cJSON_IsObject(mb_test_get(caps, "tools")), "%s", raw);
    cr_assert_null(mb_test_get(caps, "prompts"), "answered after the backend was ready? %s", raw);
    cJSON_Delete(j);
    free(raw);
    /* The backend becomes ready about a second later: the session hears that
     * the tool list changed, and then sees the backend's tools. */
    j = recv_json(c, &raw);
    const cJSON *m = mb_test_get(j, "method");
    cr_assert(cJSON_IsString(m) && strcmp(m->valuestring, "notifications/tools/list_changed") == 0,
              "%s", raw);
    cr_assert_null(mb_test_get(j, "id"), "%s", raw);
    cJSON_Delete(j);
    free(raw);
    j = call(c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}", &raw);
    cr_assert(mb_test_has_tool(j, "S_echo"), "%s", raw);
    cJSON_Delete(j);
    free(raw);
    finish();
}

/* The first content's uri of a resources/read reply. */
static const char *content_uri(const cJSON *reply)
{
    const cJSON *u = mb_test_get(
        cJSON_GetArrayItem(mb_test_get(mb_test_get(reply, "result"), "contents"), 0), "uri");
    return cJSON_IsString(u) ? u->valuestring : NULL;
}

BK_TEST(resources_read_returns_prefixed_uris)
{
    /* b caches its echo resources: the second read comes from the response
     * cache, and must be prefixed the same way. */
    start("  - {name: a, transport: stdio, command: [\"%s\", --stdio, --name, A]}\n"
          "  - {name: b, transport: stdio, command: [\"%s\", --stdio, --name, B],"
          " cache_tools: [\"test://echo/*\"]}\n",
          NULL);
    struct mb_wsclient *c = ws_open();
    for (int i = 0; i < 2; i++) {
        char *raw = NULL;
        cJSON *j = call(c,
                        "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"resources/read\",\"params\":{"
                        "\"uri\":\"b+test://echo/xyz\"}}",
                        &raw);
        const char *u = content_uri(j);
        cr_assert_str_eq(u ? u : "", "b+test://echo/xyz", "read %d: %s", i, raw);
        cJSON_Delete(j);
        free(raw);
    }
    /* The backend saw the unprefixed URI once: the second read was cached. */
    cr_expect_eq(counted(c, "b__B_counter", "methods", "resources/read"), 1);
    /* resources/list shows the same prefixed URIs a read gives back. */
    char *raw = NULL;
    cJSON *j = call(c, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"resources/list\"}", &raw);
    cr_assert(strstr(raw, "\"b+test://hello\"") != NULL, "%s", raw);
    cJSON_Delete(j);
    free(raw);
    finish();
}

/* The client parse reads common requests without cJSON (worker/jsonrpc.h);
 * a request that spells keys or values with \u escapes takes the cJSON path.
 * Both must route and reject alike: the same echo, the same errors, the
 * prefix stripped from an escaped name, the token restored. */
BK_TEST(routed_requests_read_alike_with_or_without_escapes)
{
    start(TWO, NULL);
    struct mb_wsclient *c = ws_open();
    static const char *const echo[] = {
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/"
        "call\",\"params\":{\"name\":\"b__B_echo\","
        "\"arguments\":{\"message\":\"hi\"}}}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"n\\u0061me\":"
        "\"b__B_\\u0065cho\",\"arguments\":{\"message\":\"hi\"}}}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools\\/"
        "call\",\"params\":{\"name\":\"b__B_echo\","
        "\"arguments\":{ \"message\" : \"hi\" }}}",
    };
    for (size_t i = 0; i < sizeof(echo) / sizeof(echo[0]); i++) {
        char *raw = NULL;
        cJSON *j = call(c, echo[i], &raw);
        cr_expect_str_eq(mb_test_text_of(j) ? mb_test_text_of(j) : "", "hi", "%s -> %s", echo[i],
                         raw);
        cJSON_Delete(j);
        free(raw);
    }
    cr_expect_eq(counted(c, "b__B_counter", "tools", "B_echo"), 3);
    static const struct {
        const char *req, *msg;
    } bad[] = {
        {"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/"
         "call\",\"params\":{\"name\":\"b__B_echo\","
         "\"arguments\":\"x\"}}",
         "Invalid params: arguments must be an object"},
        {"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/"
         "call\",\"params\":{\"name\":\"b__B_echo\","
         "\"\\u0061rguments\":[1]}}",
         "Invalid params: arguments must be an object"},
        {"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":5}}",
         "Invalid params: name must be a string"},
        {"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"nam\\u0065\":5}}",
         "Invalid params: name must be a string"},
        {"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":[1]}",
         "Invalid params: params must be an object"},
        {"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":{\"cursor\":\"x\"}}",
         "Invalid params: unknown cursor"},
        {"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":{\"cursor\":5}}",
         "Invalid params: cursor must be a string"},
        {"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":{\"\\u0063ursor\":5}}",
         "Invalid params: cursor must be a string"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *raw = NULL;
        cJSON *j = call(c, bad[i].req, &raw);
        const cJSON *msg = mb_test_get(mb_test_get(j, "error"), "message");
        cr_expect_eq(mb_test_error_code(j), -32602, "%s -> %s", bad[i].req, raw);
        cr_expect(cJSON_IsString(msg) && strcmp(msg->valuestring, bad[i].msg) == 0, "%s -> %s",
                  bad[i].req, raw);
        cJSON_Delete(j);
        free(raw);
    }
    /* a progress token in a request that takes the cJSON path */
    cr_assert_eq(mb_wsclient_send_text(c,
                                       "{\"jsonrpc\":\"2.0\",\"id\":\"p\",\"method\":\"tools/"
                                       "call\",\"params\":{\"name\":\"a__A_progress\","
                                       "\"arguments\":{\"steps\":1,\"x\":\"\\u00e9\"},\"_meta\":{"
                                       "\"progressToken\":7}}}",
                                       IO_MS),
                 0);
    for (;;) {
        char *raw = NULL;
        cJSON *j = recv_json(c, &raw);
        const cJSON *method = mb_test_get(j, "method");
        bool note = cJSON_IsString(method);
        if (note) {
            const cJSON *tok = mb_test_get(mb_test_get(j, "params"), "progressToken");
            cr_expect(cJSON_IsNumber(tok) && tok->valueint == 7, "token not restored: %s", raw);
        } else {
            cr_expect_str_eq(mb_test_text_of(j) ? mb_test_text_of(j) : "", "progress: 1 steps",
                             "%s", raw);
        }
        cJSON_Delete(j);
        free(raw);
        if (!note)
            break;
    }
    finish();
}
