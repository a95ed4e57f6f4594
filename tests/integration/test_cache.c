/*
 * tests/integration/test_cache.c — the shared caches through the real
 * daemon with 2 workers and one WebSocket backend (the test server --ws,
 * one process behind both workers, so its `counter` tool proves what
 * reached it):
 *   - 1,000 tools/list over 40 connections spread across both workers,
 *     sent concurrently, reach the backend once (discovery cache, single
 *     flight in a worker, shm lease across workers);
 *   - list_changed from the backend makes the next tools/list fetch again;
 *   - a tool in cache_tools called 100 times with the same arguments (key
 *     order and white space varied) reaches the backend once, and 100 times
 *     with different arguments; isError results are never cached;
 *   - tools that are not cacheable are never cached, annotated tools only
 *     with caching.response_cache.cache_annotated;
 *   - two client addresses (127.0.0.1, 127.0.0.2) never share an entry;
 *   - caching.enabled: false turns everything off;
 *   - mcp-bridge-shm --json shows the caches with entries and hit ratio.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/integration/upstream_peer.h"
#include "tests/support/daemon.h"
#include "tests/support/net.h"
#include "tests/support/testutil.h"
#include "tests/support/ws_assert.h"
#include "tests/support/wsclient.h"

#define IO_MS    8000
#define NCLIENTS 40

static struct mb_test_daemon *gw;
static struct mb_wsclient *cl[NCLIENTS + 2];
static struct peer srv;

static void teardown(void)
{
    for (size_t i = 0; i < sizeof(cl) / sizeof(cl[0]); i++)
        mb_wsclient_free(&cl[i]);
    mb_test_daemon_free(&gw);
    peer_stop(&srv);
    mb_test_tcp_set_source(NULL);
}

#define CACHE_TEST(name) Test(cache, name, .fini = teardown, .timeout = 90)

static void start(const char *caching, const char *cache_tools)
{
    char tail[512];
    snprintf(tail, sizeof(tail), "    cache_tools: %s\n", cache_tools ? cache_tools : "[]");
    peer_gateway_start(&srv, "--ws", &gw, 2, caching, tail);
}

static void finish(void)
{
    for (size_t i = 0; i < sizeof(cl) / sizeof(cl[0]); i++)
        mb_wsclient_free(&cl[i]);
    mb_test_must_finish_within(gw, 8000);
}

static struct mb_wsclient *open_client(size_t i)
{
    char err[256];
    cr_assert_eq(mb_wsclient_connect(&cl[i], gw->port, "/", NULL, IO_MS, err, sizeof(err)), 0, "%s",
                 err);
    return cl[i];
}

/* The next message that is a response (notifications are skipped). */
static cJSON *recv_response(struct mb_wsclient *c, char **raw)
{
    return mb_test_ws_recv(c, true, IO_MS, raw);
}

static cJSON *call(struct mb_wsclient *c, const char *req, char **raw)
{
    return mb_test_ws_call(c, req, true, IO_MS, raw);
}

/* The backend's count of methods[name] or tools[name]. */
static int counted(struct mb_wsclient *c, const char *section, const char *name)
{
    return mb_test_ws_counted(c, "counter", section, name, true, IO_MS);
}

static void echo_expect(struct mb_wsclient *c, const char *args_json, const char *want)
{
    char req[512], *raw = NULL;
    snprintf(req, sizeof(req),
             "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":"
             "\"echo\",\"arguments\":%s}}",
             args_json);
    cJSON *j = call(c, req, &raw);
    const char *t = mb_test_text_of(j);
    cr_assert(t != NULL && strcmp(t, want) == 0, "echo %s answered %s", args_json, raw);
    free(raw);
    cJSON_Delete(j);
}

/* The dump's caches object (caller frees the root). */
static cJSON *dump_json(cJSON **root)
{
    char tool[PATH_MAX], *out = NULL;
    int status;
    mb_test_bin_path(tool, sizeof(tool), "mcp-bridge-shm");
    char *argv[] = {tool, "--json", gw->shm_path, NULL};
    cr_assert_eq(mb_test_run(argv, 10000, &status, &out), 0);
    *root = cJSON_Parse(out);
    cr_assert_not_null(*root, "%s", out);
    free(out);
    return (cJSON *)mb_test_get(*root, "caches");
}

CACHE_TEST(tools_list_over_many_connections_reaches_the_backend_once)
{
    start(NULL, NULL);
    for (size_t i = 0; i < NCLIENTS; i++)
        open_client(i);
    /* Both workers hold some of the connections. */
    struct mb_test_shm s;
    cr_assert_eq(mb_test_shm_read(gw, &s), 0);
    int busy = 0;
    for (size_t i = 0; i < s.n; i++)
        if (strcmp(s.w[i].state, "running") == 0 && s.w[i].connections > 0)
            busy++;
    mb_test_shm_clear(&s);
    cr_assert_eq(busy, 2, "connections should be spread over both workers");

    /* 25 rounds of 40 concurrent tools/list: 1,000 in all. */
    for (int round = 0; round < 25; round++) {
        for (size_t i = 0; i < NCLIENTS; i++) {
            char req[128];
            snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/list\"}",
                     round * 100 + (int)i);
            cr_assert_eq(mb_wsclient_send_text(cl[i], req, IO_MS), 0);
        }
        for (size_t i = 0; i < NCLIENTS; i++) {
            char *raw = NULL;
            cJSON *j = recv_response(cl[i], &raw);
            cr_assert(mb_test_has_tool(j, "echo") && mb_test_has_tool(j, "counter"), "round %d: %s",
                      round, raw);
            free(raw);
            cJSON_Delete(j);
        }
    }
    int fetched = counted(cl[0], "methods", "tools/list");
    if (fetched != 1) {
        /* Say why: a reconnection of the upstream (it invalidates the list)
         * or a lease that could not be taken shows in the log. */
        char *log = mb_test_daemon_log(gw);
        cr_expect_eq(fetched, 1,
                     "1,000 tools/list should reach the backend once, reached it %d "
                     "times; error log:\n%s",
                     fetched, log ? log : "");
        free(log);
    }

    cJSON *root;
    const cJSON *caches = dump_json(&root);
    const cJSON *d = mb_test_get(caches, "discovery");
    cr_assert(cJSON_IsObject(d), "no discovery cache in the dump");
    cr_expect_geq(mb_test_get(d, "entries")->valuedouble, 1);
    /* Rounds 2..25 are hits; in round 1 all but one request waited for
     * the single fetch (single flight) instead. */
    cr_expect_geq(mb_test_get(d, "hits")->valuedouble, 960);
    cr_expect_gt(mb_test_get(d, "hit_ratio")->valuedouble, 0.9);
    cr_expect(cJSON_IsObject(mb_test_get(caches, "response")) &&
              cJSON_IsObject(mb_test_get(caches, "auth")));
    cJSON_Delete(root);
    finish();
}

CACHE_TEST(list_changed_makes_the_next_list_fetch_again)
{
    start(NULL, NULL);
    struct mb_wsclient *c = open_client(0);
    cJSON *j = call(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}", NULL);
    cr_assert_not(mb_test_has_tool(j, "dynamic"));
    cJSON_Delete(j);
    j = call(c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}", NULL);
    cJSON_Delete(j);
    cr_assert_eq(counted(c, "methods", "tools/list"), 1);
    j = call(c,
             "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":"
             "\"list_changed\",\"arguments\":{}}}",
             NULL);
    cJSON_Delete(j);
    char *raw = NULL;
    j = call(c, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/list\"}", &raw);
    cr_expect(mb_test_has_tool(j, "dynamic"), "a stale list after list_changed: %s", raw);
    free(raw);
    cJSON_Delete(j);
    cr_expect_eq(counted(c, "methods", "tools/list"), 2);
    finish();
}

CACHE_TEST(cacheable_tool_reaches_the_backend_once_per_argument_set)
{
    start(NULL, "[echo, fail]");
    for (size_t i = 0; i < 10; i++)
        open_client(i);
    static const char *const same[] = {
        "{\"message\":\"same\",\"n\":1}",
        "{\"n\":1,\"message\":\"same\"}",
        "{ \"n\" : 1 ,\n \"message\" : \"same\" }",
    };
    for (int k = 0; k < 100; k++)
        echo_expect(cl[k % 10], same[k % 3], "same");
    cr_expect_eq(counted(cl[0], "tools", "echo"), 1,
                 "100 identical calls (key order, white space varied) should reach it once");
    for (int k = 0; k < 100; k++) {
        char args[64], want[32];
        snprintf(want, sizeof(want), "m%d", k);
        snprintf(args, sizeof(args), "{\"message\":\"%s\"}", want);
        echo_expect(cl[k % 10], args, want);
    }
    cr_expect_eq(counted(cl[0], "tools", "echo"), 101);
    /* isError results are never cached, even for a listed tool. */
    for (int k = 0; k < 3; k++) {
        cJSON *j = call(cl[0],
                        "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{"
                        "\"name\":\"fail\",\"arguments\":{\"mode\":\"result\"}}}",
                        NULL);
        cr_assert(cJSON_IsTrue(mb_test_get(mb_test_get(j, "result"), "isError")));
        cJSON_Delete(j);
    }
    cr_expect_eq(counted(cl[0], "tools", "fail"), 3);
    finish();
}

CACHE_TEST(tools_that_are_not_cacheable_are_never_cached)
{
    start(NULL, "[echo]");
    struct mb_wsclient *c = open_client(0);
    /* counter counts its own calls: each one must reach it. */
    for (int k = 1; k <= 5; k++)
        cr_expect_eq(counted(c, "tools", "counter"), k);
    /* sleep is annotated read-only and idempotent, but cache_annotated is
     * off by default. */
    for (int k = 0; k < 3; k++) {
        cJSON *j = call(c,
                        "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{"
                        "\"name\":\"sleep\",\"arguments\":{\"ms\":0}}}",
                        NULL);
        cJSON_Delete(j);
    }
    cr_expect_eq(counted(c, "tools", "sleep"), 3);
    finish();
}

CACHE_TEST(annotated_tools_are_cached_with_cache_annotated)
{
    start("caching:\n  response_cache:\n    cache_annotated: true\n", NULL);
    struct mb_wsclient *c = open_client(0);
    cJSON *j = call(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}", NULL);
    cJSON_Delete(j);
    for (int k = 0; k < 3; k++) {
        j = call(c,
                 "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{"
                 "\"name\":\"sleep\",\"arguments\":{\"ms\":0}}}",
                 NULL);
        cJSON_Delete(j);
    }
    cr_expect_eq(counted(c, "tools", "sleep"), 1);
    for (int k = 1; k <= 3; k++) /* not annotated: never */
        cr_expect_eq(counted(c, "tools", "counter"), k + 1);
    finish();
}

CACHE_TEST(two_client_addresses_never_share_private_entries)
{
    start(NULL, "[echo]");
    struct mb_wsclient *a = open_client(0);
    cr_assert_eq(mb_test_tcp_set_source("127.0.0.2"), 0);
    struct mb_wsclient *b = open_client(1);
    mb_test_tcp_set_source(NULL);
    echo_expect(a, "{\"message\":\"p\"}", "p");
    echo_expect(b, "{\"message\":\"p\"}", "p");
    cr_expect_eq(counted(a, "tools", "echo"), 2, "the second address was served the first's entry");
    echo_expect(a, "{\"message\":\"p\"}", "p");
    echo_expect(b, "{\"message\":\"p\"}", "p");
    cr_expect_eq(counted(a, "tools", "echo"), 2, "each address should hit its own entry");
    /* Another connection from the first address shares its entries. */
    struct mb_wsclient *a2 = open_client(2);
    echo_expect(a2, "{\"message\":\"p\"}", "p");
    cr_expect_eq(counted(a, "tools", "echo"), 2);
    finish();
}

CACHE_TEST(caching_disabled_turns_everything_off)
{
    start("caching:\n  enabled: false\n", "[echo]");
    struct mb_wsclient *c = open_client(0);
    for (int k = 0; k < 3; k++) {
        cJSON *j = call(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}", NULL);
        cJSON_Delete(j);
        echo_expect(c, "{\"message\":\"x\"}", "x");
    }
    cr_expect_eq(counted(c, "methods", "tools/list"), 3);
    cr_expect_eq(counted(c, "tools", "echo"), 3);
    cJSON *root;
    const cJSON *caches = dump_json(&root);
    cr_expect(cJSON_IsObject(caches) && cJSON_GetArraySize(caches) == 0,
              "no cache should be laid out");
    cJSON_Delete(root);
    finish();
}
