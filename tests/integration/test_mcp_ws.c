/*
 * tests/integration/test_mcp_ws.c — MCP over WebSocket against the real
 * daemon: the initialize → initialized → ping → tools/list session, protocol
 * version negotiation, the implicit session, the `mcp` subprotocol on every
 * configured path, JSON-RPC errors with ids echoed byte for byte, close codes
 * 1003 (binary) and 1009 (oversize) without harm to other clients, many
 * requests in flight on one connection, and GET /healthz.
 *
 * Every test starts its own daemon (own port, temp dir, shm file) because
 * Criterion runs tests in parallel; teardown() stops it even when an
 * assertion failed.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/daemon.h"
#include "tests/support/daemon_assert.h"
#include "tests/support/net.h"
#include "tests/support/testutil.h"
#include "tests/support/wsclient.h"

#define IO_MS 5000 /* one request/response, generously */

static struct mb_test_daemon *gw;
static struct mb_wsclient *clients[16];
static size_t nclients;

static void teardown(void)
{
    for (size_t i = 0; i < nclients; i++)
        mb_wsclient_free(&clients[i]);
    nclients = 0;
    mb_test_daemon_free(&gw);
}

#define WS_TEST(name) Test(mcp_ws, name, .fini = teardown, .timeout = 40)

static void start(const struct mb_test_conf *conf)
{
    mb_test_must_start(&gw, conf);
}

static void finish(void)
{
    mb_test_must_finish(gw);
}

static struct mb_wsclient *ws_open(const char *path, const char *subprotocol)
{
    char err[256];
    struct mb_wsclient *c = NULL;
    cr_assert_lt(nclients, sizeof(clients) / sizeof(clients[0]));
    int rc = mb_wsclient_connect(&c, gw->port, path, subprotocol, IO_MS, err, sizeof(err));
    cr_assert_eq(rc, 0, "WebSocket connect to %s: %s", path, err);
    clients[nclients++] = c;
    return c;
}

/* Sends one request and returns the parsed reply; *raw (optional) receives a
 * copy of the reply's text. */
static cJSON *rpc(struct mb_wsclient *c, const char *req, char **raw)
{
    struct mb_wsmsg m;
    int rc = mb_wsclient_call(c, req, &m, IO_MS);
    cr_assert_eq(rc, 0, "no reply to %s: %s", req, strerror(-rc));
    cr_assert_eq(m.opcode, MB_WS_OP_TEXT, "reply to %s: opcode %d (close code %d)", req, m.opcode,
                 m.close_code);
    cJSON *j = cJSON_Parse(m.data);
    cr_assert_not_null(j, "reply to %s is not JSON: %s", req, m.data);
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(j, "jsonrpc");
    cr_assert(cJSON_IsString(ver) && strcmp(ver->valuestring, "2.0") == 0,
              "reply without \"jsonrpc\":\"2.0\": %s", m.data);
    if (raw)
        *raw = strdup(m.data);
    return j;
}

static const cJSON *member(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

/* The reply is a success with this id (compared as raw text) and an object result. */
static const cJSON *expect_result(const cJSON *reply, const char *raw, const char *raw_id)
{
    char id[128];
    cr_assert_eq(mb_test_json_raw(raw, "id", id, sizeof(id)), 0, "no id in %s", raw);
    cr_assert_str_eq(id, raw_id, "id not echoed: %s", raw);
    cr_assert_null(member(reply, "error"), "unexpected error: %s", raw);
    const cJSON *res = member(reply, "result");
    cr_assert(cJSON_IsObject(res), "result is not an object: %s", raw);
    return res;
}

/* The reply is an error with code and this raw id; returns nothing. */
static void expect_error(const char *req, int code, const char *raw_id, struct mb_wsclient *c)
{
    char *raw = NULL, id[128];
    cJSON *j = rpc(c, req, &raw);
    const cJSON *err = member(j, "error");
    cr_assert(cJSON_IsObject(err), "request %s: no error object in %s", req, raw);
    cr_assert_null(member(j, "result"), "request %s: both error and result: %s", req, raw);
    const cJSON *jc = member(err, "code"), *jm = member(err, "message");
    cr_assert(cJSON_IsNumber(jc), "request %s: error without a numeric code: %s", req, raw);
    cr_assert_eq(jc->valueint, code, "request %s: error code %d, expected %d: %s", req,
                 jc->valueint, code, raw);
    cr_assert(cJSON_IsString(jm) && jm->valuestring[0], "request %s: error without a message: %s",
              req, raw);
    cr_assert_eq(mb_test_json_raw(raw, "id", id, sizeof(id)), 0, "request %s: no id in %s", req,
                 raw);
    cr_assert_str_eq(id, raw_id, "request %s: id %s, expected %s", req, id, raw_id);
    free(raw);
    cJSON_Delete(j);
}

static void expect_ping(struct mb_wsclient *c, int id)
{
    char req[128], want[32], *raw = NULL;
    snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"ping\"}", id);
    snprintf(want, sizeof(want), "%d", id);
    cJSON *j = rpc(c, req, &raw);
    const cJSON *res = expect_result(j, raw, want);
    cr_assert_null(res->child, "ping result is not empty: %s", raw);
    free(raw);
    cJSON_Delete(j);
}

static void expect_empty_tools(struct mb_wsclient *c, int id)
{
    char req[128], want[32], *raw = NULL;
    snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/list\"}", id);
    snprintf(want, sizeof(want), "%d", id);
    cJSON *j = rpc(c, req, &raw);
    const cJSON *res = expect_result(j, raw, want);
    const cJSON *tools = member(res, "tools");
    cr_assert(cJSON_IsArray(tools), "tools/list without a tools array: %s", raw);
    cr_assert_eq(cJSON_GetArraySize(tools), 0, "tools/list not empty: %s", raw);
    free(raw);
    cJSON_Delete(j);
}

/* Sends initialize offering version; asserts the answer and returns it. */
static void expect_initialize(struct mb_wsclient *c, const char *version, const char *expected)
{
    char req[512], *raw = NULL;
    snprintf(req, sizeof(req),
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
             "\"protocolVersion\":\"%s\",\"capabilities\":{},"
             "\"clientInfo\":{\"name\":\"integration-test\",\"version\":\"1.0\"}}}",
             version);
    cJSON *j = rpc(c, req, &raw);
    const cJSON *res = expect_result(j, raw, "1");
    const cJSON *pv = member(res, "protocolVersion");
    cr_assert(cJSON_IsString(pv), "initialize without protocolVersion: %s", raw);
    cr_assert_str_eq(pv->valuestring, expected, "offered %s: %s", version, raw);
    cr_assert(cJSON_IsObject(member(res, "capabilities")), "no capabilities object: %s", raw);
    const cJSON *si = member(res, "serverInfo");
    cr_assert(cJSON_IsObject(si), "no serverInfo: %s", raw);
    const cJSON *name = member(si, "name"), *ver = member(si, "version");
    cr_assert(cJSON_IsString(name) && strcmp(name->valuestring, "mcp-bridge") == 0,
              "serverInfo.name: %s", raw);
    cr_assert(cJSON_IsString(ver) && ver->valuestring[0], "serverInfo.version: %s", raw);
    free(raw);
    cJSON_Delete(j);
}

/* Waits for the next message and asserts it is a close frame with code. */
static void expect_close(struct mb_wsclient *c, int code, const char *what)
{
    struct mb_wsmsg m;
    int rc = mb_wsclient_recv(c, &m, IO_MS);
    cr_assert_eq(rc, 0, "%s: no close frame (%s)", what, strerror(-rc));
    cr_assert_eq(m.opcode, MB_WS_OP_CLOSE, "%s: got opcode %d (%.*s) instead of a close", what,
                 m.opcode, (int)(m.len > 200 ? 200 : m.len), m.data);
    cr_assert_eq(m.close_code, code, "%s: close code %d, expected %d", what, m.close_code, code);
}

WS_TEST(session_initialize_initialized_ping_tools_list)
{
    start(NULL);
    struct mb_wsclient *c = ws_open("/", "mcp");
    expect_initialize(c, "2025-11-25", "2025-11-25");
    /* A notification gets no reply: the next message must be the ping's. */
    cr_assert_eq(mb_wsclient_send_text(c,
                                       "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/"
                                       "initialized\"}",
                                       IO_MS),
                 0);
    expect_ping(c, 2);
    expect_empty_tools(c, 3);
    cr_assert_eq(mb_wsclient_close(c, 1000, IO_MS), 0);
    finish();
}

WS_TEST(protocol_version_negotiation)
{
    static const char *const cases[][2] = {
        {"2025-11-25", "2025-11-25"},    {"2025-06-18", "2025-06-18"}, {"2025-03-26", "2025-03-26"},
        {"2024-01-01", "2025-11-25"}, /* unknown: the server answers with its latest */
        {"not-a-version", "2025-11-25"},
    };
    start(NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mb_wsclient *c = ws_open("/mcp", NULL);
        expect_initialize(c, cases[i][0], cases[i][1]);
        expect_ping(c, 2);
    }
    finish();
}

WS_TEST(request_before_initialize_is_served_in_an_implicit_session)
{
    start(NULL);
    struct mb_wsclient *c = ws_open("/", NULL);
    expect_empty_tools(c, 7);
    expect_ping(c, 8);
    /* initialize afterwards is still answered normally. */
    expect_initialize(c, "2025-06-18", "2025-06-18");
    finish();
}

WS_TEST(subprotocol_mcp_echoed_and_optional_on_every_path)
{
    static const char *const paths[] = {"/", "/mcp"};
    start(NULL);
    for (size_t i = 0; i < 2; i++) {
        struct mb_wsclient *with = ws_open(paths[i], "mcp");
        cr_assert_str_eq(mb_wsclient_protocol(with), "mcp", "path %s: subprotocol not echoed",
                         paths[i]);
        expect_initialize(with, "2025-11-25", "2025-11-25");
        expect_ping(with, 2);

        struct mb_wsclient *without = ws_open(paths[i], NULL);
        cr_assert_str_eq(mb_wsclient_protocol(without), "",
                         "path %s: a subprotocol selected that was not offered", paths[i]);
        expect_initialize(without, "2025-11-25", "2025-11-25");
        expect_empty_tools(without, 2);
    }
    finish();
}

WS_TEST(websocket_upgrade_on_a_path_not_configured_is_refused)
{
    start(NULL);
    char err[256];
    struct mb_wsclient *c = NULL;
    int rc = mb_wsclient_connect(&c, gw->port, "/not-an-mcp-path", NULL, IO_MS, err, sizeof(err));
    if (rc == 0)
        mb_wsclient_free(&c);
    cr_assert_neq(rc, 0, "the upgrade on /not-an-mcp-path succeeded");
    /* ...and the listener still serves the configured paths. */
    expect_ping(ws_open("/mcp", NULL), 1);
    finish();
}

WS_TEST(malformed_json_gets_parse_error_with_id_null)
{
    start(NULL);
    struct mb_wsclient *c = ws_open("/", NULL);
    expect_error("{\"jsonrpc\":\"2.0\",\"id\":1,", -32700, "null", c);
    expect_error("not json at all", -32700, "null", c);
    expect_error("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"} trailing", -32700, "null", c);
    /* The session survives bad input. */
    expect_ping(c, 3);
    finish();
}

WS_TEST(invalid_requests_get_invalid_request)
{
    start(NULL);
    struct mb_wsclient *c = ws_open("/", NULL);
    expect_error("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":5}", -32600, "7", c);
    expect_error("{\"id\":8,\"method\":\"ping\"}", -32600, "8", c);
    expect_error("{\"jsonrpc\":\"1.0\",\"id\":\"v1\",\"method\":\"ping\"}", -32600, "\"v1\"", c);
    expect_error("{\"jsonrpc\":\"2.0\",\"id\":9}", -32600, "9", c);
    expect_error("42", -32600, "null", c);
    expect_error("\"ping\"", -32600, "null", c);
    expect_ping(c, 10);
    finish();
}

WS_TEST(unknown_method_gets_method_not_found_and_unknown_notification_nothing)
{
    start(NULL);
    struct mb_wsclient *c = ws_open("/mcp", "mcp");
    expect_initialize(c, "2025-11-25", "2025-11-25");
    expect_error("{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"no/such/method\"}", -32601, "11", c);
    expect_error("{\"jsonrpc\":\"2.0\",\"id\":\"x-12\",\"method\":\"tools/frobnicate\","
                 "\"params\":{}}",
                 -32601, "\"x-12\"", c);
    /* A notification of an unknown method is dropped silently (JSON-RPC 2.0:
     * notifications are never answered); the next reply is the ping's. */
    cr_assert_eq(
        mb_wsclient_send_text(c, "{\"jsonrpc\":\"2.0\",\"method\":\"no/such/note\"}", IO_MS), 0);
    expect_ping(c, 13);
    finish();
}

WS_TEST(ids_are_echoed_byte_for_byte)
{
    /* cJSON turns 1000000000000000 into 1e+15 and 9007199254740993 into
     * ...992 when it goes through a double: only the raw text is right. */
    static const char *const ids[] = {
        "1000000000000000", "9007199254740993", "\"abc\"", "-7", "\"a\\\"b\"", "0"};
    start(NULL);
    struct mb_wsclient *c = ws_open("/", NULL);
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char req[256], *raw = NULL;
        snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"ping\"}", ids[i]);
        cJSON *j = rpc(c, req, &raw);
        expect_result(j, raw, ids[i]);
        free(raw);
        cJSON_Delete(j);

        snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"tools/list\"}",
                 ids[i]);
        j = rpc(c, req, &raw);
        expect_result(j, raw, ids[i]);
        free(raw);
        cJSON_Delete(j);

        snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"nope\"}", ids[i]);
        expect_error(req, -32601, ids[i], c);
        snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":[]}", ids[i]);
        expect_error(req, -32600, ids[i], c);
    }
    finish();
}

WS_TEST(binary_frame_is_closed_with_1003)
{
    start(NULL);
    struct mb_wsclient *other = ws_open("/", NULL);
    expect_ping(other, 1);
    struct mb_wsclient *c = ws_open("/", NULL);
    static const char ping[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}";
    cr_assert_eq(mb_wsclient_send(c, MB_WS_OP_BINARY, ping, sizeof(ping) - 1, IO_MS), 0);
    expect_close(c, 1003, "binary frame");
    expect_ping(other, 2);
    finish();
}

static char *big_ping(int id, size_t total)
{
    char head[64];
    int hl =
        snprintf(head, sizeof(head),
                 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"ping\",\"params\":{\"pad\":\"", id);
    const char tail[] = "\"}}";
    cr_assert_gt(total, (size_t)hl + sizeof(tail));
    char *s = malloc(total + 1);
    cr_assert_not_null(s);
    memcpy(s, head, (size_t)hl);
    memset(s + hl, 'x', total - (size_t)hl - (sizeof(tail) - 1));
    memcpy(s + total - (sizeof(tail) - 1), tail, sizeof(tail));
    cr_assert_eq(strlen(s), total);
    return s;
}

WS_TEST(oversize_message_is_closed_with_1009_and_others_are_unaffected)
{
    struct mb_test_conf conf = {.max_message_size = "4096"};
    start(&conf);
    struct mb_wsclient *other = ws_open("/", "mcp");
    expect_initialize(other, "2025-11-25", "2025-11-25");

    /* Just under the limit: served. */
    char *fits = big_ping(2, 4000);
    char *raw = NULL;
    cJSON *j = rpc(other, fits, &raw);
    expect_result(j, raw, "2");
    free(raw);
    cJSON_Delete(j);
    free(fits);

    /* One frame over the limit. */
    struct mb_wsclient *big = ws_open("/", "mcp");
    char *over = big_ping(3, 5000);
    int rc = mb_wsclient_send_text(big, over, IO_MS);
    cr_assert(rc == 0 || rc == -EPIPE || rc == -ECONNRESET, "send: %s", strerror(-rc));
    expect_close(big, 1009, "5000-byte message with max_message_size 4096");

    /* Over the limit only once reassembled: three 2000-byte fragments. */
    struct mb_wsclient *frag = ws_open("/mcp", NULL);
    over[5000 - 3] = '\0'; /* the bytes do not matter, the size does */
    cr_assert_eq(mb_wsclient_send_frame(frag, 0, MB_WS_OP_TEXT, over, 2000, IO_MS), 0);
    rc = mb_wsclient_send_frame(frag, 0, MB_WS_OP_CONT, over + 2000, 2000, IO_MS);
    if (rc == 0)
        rc = mb_wsclient_send_frame(frag, 1, MB_WS_OP_CONT, over + 4000, 900, IO_MS);
    cr_assert(rc == 0 || rc == -EPIPE || rc == -ECONNRESET, "send: %s", strerror(-rc));
    expect_close(frag, 1009, "4900 bytes in three fragments with max_message_size 4096");
    free(over);

    /* The other connection, and new ones, still work. */
    expect_ping(other, 4);
    expect_empty_tools(other, 5);
    expect_ping(ws_open("/", NULL), 6);
    finish();
}

WS_TEST(one_hundred_requests_in_flight_on_one_connection)
{
    enum { N = 100 };
    start(NULL);
    struct mb_wsclient *c = ws_open("/", NULL);
    for (int i = 1; i <= N; i++) {
        char req[128];
        snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"%s\"}", i,
                 i % 2 ? "ping" : "tools/list");
        cr_assert_eq(mb_wsclient_send_text(c, req, IO_MS), 0);
    }
    int seen[N + 1] = {0};
    for (int k = 0; k < N; k++) {
        struct mb_wsmsg m;
        int rc = mb_wsclient_recv(c, &m, IO_MS);
        cr_assert_eq(rc, 0, "reply %d of %d: %s", k + 1, N, strerror(-rc));
        cr_assert_eq(m.opcode, MB_WS_OP_TEXT, "reply %d: opcode %d close %d", k + 1, m.opcode,
                     m.close_code);
        char id[32];
        cr_assert_eq(mb_test_json_raw(m.data, "id", id, sizeof(id)), 0, "no id: %s", m.data);
        char *end;
        long v = strtol(id, &end, 10);
        cr_assert(*end == '\0' && v >= 1 && v <= N, "unexpected id %s: %s", id, m.data);
        cr_assert_eq(seen[v], 0, "id %ld answered twice", v);
        seen[v] = 1;
        cJSON *j = cJSON_Parse(m.data);
        cr_assert_not_null(j);
        const cJSON *res = member(j, "result");
        cr_assert(cJSON_IsObject(res), "no result: %s", m.data);
        if (v % 2 == 0)
            cr_assert(cJSON_IsArray(member(res, "tools")), "tools/list %ld: %s", v, m.data);
        cJSON_Delete(j);
    }
    expect_ping(c, N + 1);
    finish();
}

WS_TEST(healthz_answers_200)
{
    start(NULL);
    int status = 0;
    char body[256];
    int rc = mb_test_http_get(gw->port, "/healthz", &status, body, sizeof(body), IO_MS);
    cr_assert_eq(rc, 0, "GET /healthz: %s", strerror(-rc));
    cr_assert_eq(status, 200, "GET /healthz: status %d", status);
    /* Several times in a row, whichever worker takes the connection. */
    for (int i = 0; i < 5; i++) {
        rc = mb_test_http_get(gw->port, "/healthz", &status, NULL, 0, IO_MS);
        cr_assert(rc == 0 && status == 200, "GET /healthz #%d: rc %d status %d", i, rc, status);
    }
    finish();
}

static bool connections_total_is(void *arg)
{
    uint64_t want = *(uint64_t *)arg, sum = 0;
    struct mb_test_shm s;
    if (mb_test_shm_read(gw, &s) != 0) {
        mb_test_shm_clear(&s);
        return false;
    }
    for (size_t i = 0; i < s.n; i++)
        if (!strcmp(s.w[i].state, "running"))
            sum += s.w[i].connections;
    mb_test_shm_clear(&s);
    return sum == want;
}

WS_TEST(shm_dump_counts_open_connections)
{
    start(NULL);
    uint64_t want = 0;
    cr_assert_eq(mb_test_wait_until(connections_total_is, &want, 3000, 20), 0,
                 "connections not 0 at start");
    struct mb_wsclient *c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = ws_open(i % 2 ? "/" : "/mcp", NULL);
        expect_ping(c[i], i + 1); /* accepted and served, so surely counted */
    }
    want = 3;
    cr_assert_eq(mb_test_wait_until(connections_total_is, &want, 3000, 20), 0,
                 "the running workers' connections do not add up to 3");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(mb_wsclient_close(c[i], 1000, IO_MS), 0);
    want = 0;
    cr_assert_eq(mb_test_wait_until(connections_total_is, &want, 3000, 20), 0,
                 "connections not back to 0 after the clients closed");
    finish();
}
