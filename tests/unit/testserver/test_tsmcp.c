/*
 * tests/unit/testserver/test_tsmcp.c — the test server's MCP logic through
 * mb_tsmcp_handle(): replies are captured from a channel and parsed with
 * cJSON (ids are compared on the raw text, which cJSON would round).
 */
#include "tests/testserver/tsmcp.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXMSG 64

struct cap {
    struct mb_tsmcp_chan ch; /* first */
    int n;
    enum mb_tsmcp_kind kind[MAXMSG];
    char *msg[MAXMSG];
};

static struct ev_loop *loop;
static struct mb_tsmcp *ts;
static struct mb_tsmcp_session sess;
static struct cap out;

static void cap_send(struct mb_tsmcp_chan *ch, enum mb_tsmcp_kind kind, const char *msg, size_t len)
{
    struct cap *c = (struct cap *)ch;
    cr_assert_lt(c->n, MAXMSG);
    c->kind[c->n] = kind;
    c->msg[c->n] = strndup(msg, len);
    c->n++;
}

static void cap_open(struct cap *c, int broadcast)
{
    memset(c, 0, sizeof(*c));
    c->ch.send = cap_send;
    c->ch.broadcast = broadcast;
    mb_tsmcp_chan_open(ts, &c->ch);
}

static void cap_clear(struct cap *c)
{
    for (int i = 0; i < c->n; i++)
        free(c->msg[i]);
    c->n = 0;
}

static void start(const char *name, unsigned tools, unsigned page)
{
    struct mb_tsmcp_opts o = {.name = name, .extra_tools = tools, .page_size = page};
    loop = ev_loop_new(EVFLAG_AUTO);
    cr_assert_not_null(loop);
    ts = mb_tsmcp_new(&o, loop);
    cr_assert_not_null(ts);
    mb_tsmcp_session_open(&sess);
    cap_open(&out, 1);
}

static void setup(void)
{
    start(NULL, 0, 0);
}

static void teardown(void)
{
    mb_tsmcp_chan_close(ts, &out.ch);
    mb_tsmcp_session_close(ts, &sess);
    cap_clear(&out);
    mb_tsmcp_free(&ts);
    cr_expect_null(ts, "free NULLs the pointer");
    ev_loop_destroy(loop);
}

static enum mb_tsmcp_result send_msg(const char *msg)
{
    return mb_tsmcp_handle(ts, &sess, &out.ch, msg, strlen(msg));
}

/* Sends one request and returns its only reply, parsed. */
static cJSON *call(const char *msg)
{
    cap_clear(&out);
    cr_assert_eq(send_msg(msg), MB_TSMCP_REQUEST, "%s", msg);
    cr_assert_eq(out.n, 1, "one reply to %s", msg);
    cr_assert_eq(out.kind[0], MB_TSMCP_REPLY);
    cJSON *j = cJSON_Parse(out.msg[0]);
    cr_assert_not_null(j, "reply is JSON: %s", out.msg[0]);
    return j;
}

static char *tool_call_msg(const char *id, const char *name, const char *args)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf),
             "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"tools/call\",\"params\":{\"name\":\"%s\","
             "\"arguments\":%s}}",
             id, name, args);
    return buf;
}

static int error_code(cJSON *j)
{
    cJSON *e = cJSON_GetObjectItem(j, "error");
    cr_assert_not_null(e, "an error reply: %s", cJSON_PrintUnformatted(j));
    return cJSON_GetObjectItem(e, "code")->valueint;
}

static const char *text_of(cJSON *j)
{
    cJSON *r = cJSON_GetObjectItem(j, "result");
    cr_assert_not_null(r, "a result");
    cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "content"), 0);
    cr_assert_not_null(c, "result has content");
    cr_assert_str_eq(cJSON_GetObjectItem(c, "type")->valuestring, "text");
    return cJSON_GetObjectItem(c, "text")->valuestring;
}

static int is_error_result(cJSON *j)
{
    return cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), "isError"));
}

TestSuite(tsmcp, .init = setup, .fini = teardown);

Test(tsmcp, initialize_negotiates_the_version)
{
    cJSON *j = call("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
                    "\"protocolVersion\":\"2025-03-26\",\"capabilities\":{}}}");
    cJSON *r = cJSON_GetObjectItem(j, "result");
    cr_expect_str_eq(cJSON_GetObjectItem(r, "protocolVersion")->valuestring, "2025-03-26");
    cr_expect_str_eq(sess.protocol, "2025-03-26");
    cr_expect_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "serverInfo"), "name")->valuestring,
                     "mcp-bridge-testserver");
    cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(r, "capabilities"), "tools"), "listChanged")));
    cJSON_Delete(j);
    j = call("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"initialize\",\"params\":{"
             "\"protocolVersion\":\"2024-11-05\"}}");
    cr_expect_str_eq(
        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), "protocolVersion")->valuestring,
        "2025-11-25", "an unknown version gets the latest");
    cJSON_Delete(j);
}

Test(tsmcp, ids_come_back_byte_for_byte)
{
    const char *ids[] = {
        "9007199254740993", "1000000000000000",          "123456789012345678901234567890",
        "-0.5e10",          "\"str \\\"q\\\" \\u00e9\"", "0"};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char req[512], want[512];
        snprintf(req, sizeof(req), "{\"id\" : %s ,\"jsonrpc\":\"2.0\",\"method\":\"ping\"}",
                 ids[i]);
        snprintf(want, sizeof(want), "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{}}", ids[i]);
        cJSON_Delete(call(req));
        cr_expect_str_eq(out.msg[0], want);
    }
}

Test(tsmcp, echo_returns_the_message)
{
    cJSON_Delete(call(tool_call_msg("7", "echo", "{\"message\":\"h\\u00e9llo \\\"x\\\"\\n\"}")));
    cr_expect_str_eq(out.msg[0], "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[{\"type\":"
                                 "\"text\",\"text\":\"h\\u00e9llo \\\"x\\\"\\n\"}]}}");
    cJSON *j = call(tool_call_msg("8", "echo", "{}"));
    cr_expect(is_error_result(j), "echo without message is a tool error");
    cJSON_Delete(j);
}

Test(tsmcp, protocol_errors)
{
    struct {
        const char *msg;
        int code;
        enum mb_tsmcp_result res;
        const char *id;
    } cases[] = {
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":", -32700, MB_TSMCP_INVALID, NULL},
        {"not json", -32700, MB_TSMCP_INVALID, NULL},
        {"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", -32600, MB_TSMCP_INVALID, NULL},
        {"42", -32600, MB_TSMCP_INVALID, NULL},
        {"{\"id\":3,\"method\":\"ping\"}", -32600, MB_TSMCP_INVALID, "3"},
        {"{\"jsonrpc\":\"1.0\",\"id\":3,\"method\":\"ping\"}", -32600, MB_TSMCP_INVALID, "3"},
        {"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}", -32600, MB_TSMCP_INVALID, NULL},
        {"{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"ping\"}", -32600, MB_TSMCP_INVALID, NULL},
        {"{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":5}", -32600, MB_TSMCP_INVALID, "4"},
        {"{\"jsonrpc\":\"2.0\",\"id\":4}", -32600, MB_TSMCP_INVALID, "4"},
        {"{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"ping\",\"params\":[1]}", -32600,
         MB_TSMCP_INVALID, "5"},
        {"{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"no/such\"}", -32601, MB_TSMCP_REQUEST, "6"},
        {"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"nope\"}}",
         -32602, MB_TSMCP_REQUEST, "7"},
        {"{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\",\"params\":{}}", -32602,
         MB_TSMCP_REQUEST, "8"},
        {"{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
         "\"arguments\":[]}}",
         -32602, MB_TSMCP_REQUEST, "9"},
        {"{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"notifications/initialized\"}", -32600,
         MB_TSMCP_REQUEST, "10"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cap_clear(&out);
        cr_expect_eq(send_msg(cases[i].msg), cases[i].res, "result for %s", cases[i].msg);
        cr_assert_eq(out.n, 1, "one reply for %s", cases[i].msg);
        cJSON *j = cJSON_Parse(out.msg[0]);
        cr_assert_not_null(j);
        cr_expect_eq(error_code(j), cases[i].code, "code for %s", cases[i].msg);
        cJSON *id = cJSON_GetObjectItem(j, "id");
        if (cases[i].id == NULL)
            cr_expect(cJSON_IsNull(id), "id null for %s", cases[i].msg);
        else
            cr_expect_eq(id->valuedouble, atof(cases[i].id), "id for %s", cases[i].msg);
        cJSON_Delete(j);
    }
}

Test(tsmcp, notifications_and_responses_get_nothing)
{
    const char *msgs[] = {
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/whatever\",\"params\":{}}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"ping\"}", /* a request without id: nobody to answer */
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}",
        "{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":1,\"message\":\"x\"}}",
    };
    for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
        cap_clear(&out);
        cr_expect_eq(send_msg(msgs[i]), MB_TSMCP_ACCEPTED, "%s", msgs[i]);
        cr_expect_eq(out.n, 0, "no output for %s", msgs[i]);
    }
    cr_expect(sess.initialized);
}

Test(tsmcp, fail_big_and_unknown)
{
    cJSON *j = call(tool_call_msg("1", "fail", "{\"mode\":\"error\"}"));
    cr_expect_eq(error_code(j), -32000);
    cJSON_Delete(j);
    j = call(tool_call_msg("2", "fail", "{\"mode\":\"result\"}"));
    cr_expect(is_error_result(j));
    cJSON_Delete(j);
    j = call(tool_call_msg("3", "big", "{\"bytes\":100000}"));
    const char *t = text_of(j);
    cr_expect_eq(strlen(t), 100000u);
    cr_expect_eq(t[0], 'a');
    cr_expect_eq(t[26], 'a');
    cr_expect_eq(t[99999], 'a' + 99999 % 26);
    cJSON_Delete(j);
    j = call(tool_call_msg("4", "big", "{\"bytes\":-1}"));
    cr_expect(is_error_result(j), "negative size is a tool error");
    cJSON_Delete(j);
    j = call(tool_call_msg("5", "sleep", "{\"ms\":\"soon\"}"));
    cr_expect(is_error_result(j));
    cJSON_Delete(j);
}

Test(tsmcp, progress_sends_notifications_with_the_token)
{
    cap_clear(&out);
    send_msg("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
             "\"progress\",\"arguments\":{\"steps\":3},\"_meta\":{\"progressToken\":\"tok-1\"}}}");
    cr_assert_eq(out.n, 4);
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(out.kind[i], MB_TSMCP_NOTIFY);
        cJSON *j = cJSON_Parse(out.msg[i]);
        cr_expect_str_eq(cJSON_GetObjectItem(j, "method")->valuestring, "notifications/progress");
        cJSON *p = cJSON_GetObjectItem(j, "params");
        cr_expect_str_eq(cJSON_GetObjectItem(p, "progressToken")->valuestring, "tok-1");
        cr_expect_eq(cJSON_GetObjectItem(p, "progress")->valueint, i + 1);
        cr_expect_eq(cJSON_GetObjectItem(p, "total")->valueint, 3);
        cJSON_Delete(j);
    }
    cr_expect_eq(out.kind[3], MB_TSMCP_REPLY);
    cJSON *j = call(tool_call_msg("2", "progress", "{\"steps\":5}"));
    cr_expect_str_eq(text_of(j), "progress: 5 steps", "no token: just the result");
    cJSON_Delete(j);
}

Test(tsmcp, progress_with_an_interval_uses_the_loop)
{
    cap_clear(&out);
    send_msg("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
             "\"progress\",\"arguments\":{\"steps\":2,\"ms\":5},\"_meta\":{\"progressToken\":7}}}");
    cr_expect_eq(out.n, 0, "nothing before the first interval");
    cr_expect_eq(mb_tsmcp_pending(ts), 1u);
    ev_run(loop, 0);
    cr_assert_eq(out.n, 3);
    cr_expect(strstr(out.msg[0], "\"progressToken\":7,\"progress\":1") != NULL, "%s", out.msg[0]);
    cr_expect(strstr(out.msg[1], "\"progress\":2") != NULL);
    cr_expect_eq(out.kind[2], MB_TSMCP_REPLY);
    cr_expect_eq(mb_tsmcp_pending(ts), 0u);
}

Test(tsmcp, sleep_does_not_block_other_requests)
{
    cap_clear(&out);
    /* The sleep's timer counts from the loop's notion of now: refreshed here
     * and read before the request, so a slow machine (a sanitizer build under
     * load) between the request and the run cannot make the wait look short. */
    ev_now_update(loop);
    ev_tstamp t0 = ev_now(loop);
    cr_expect_eq(send_msg(tool_call_msg("\"slow\"", "sleep", "{\"ms\":30}")), MB_TSMCP_REQUEST);
    cr_expect_eq(out.n, 0, "the sleep answers later");
    send_msg(tool_call_msg("\"fast\"", "echo", "{\"message\":\"m\"}"));
    cr_assert_eq(out.n, 1);
    cr_expect(strstr(out.msg[0], "\"id\":\"fast\"") != NULL);
    ev_run(loop, 0);
    cr_expect_geq(ev_time() - t0, 0.025, "the loop waited for the timer");
    cr_assert_eq(out.n, 2);
    cr_expect_str_eq(out.msg[1], "{\"jsonrpc\":\"2.0\",\"id\":\"slow\",\"result\":{\"content\":[{"
                                 "\"type\":\"text\",\"text\":\"slept 30 ms\"}]}}");
}

Test(tsmcp, cancelled_requests_are_not_answered)
{
    cap_clear(&out);
    send_msg(tool_call_msg("11", "sleep", "{\"ms\":10000}"));
    send_msg(tool_call_msg("12", "sleep", "{\"ms\":10}"));
    cr_expect_eq(mb_tsmcp_pending(ts), 2u);
    cr_expect_eq(send_msg("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{"
                          "\"requestId\":11,\"reason\":\"test\"}}"),
                 MB_TSMCP_ACCEPTED);
    cr_expect_eq(mb_tsmcp_pending(ts), 1u);
    cr_assert_eq(out.n, 1);
    cr_expect_eq(out.kind[0], MB_TSMCP_ABORT, "the channel learns no reply will come");
    cr_expect(strstr(out.msg[0], "-32800") != NULL);
    ev_run(loop, 0); /* returns quickly: the 10 s timer is gone */
    cr_assert_eq(out.n, 2);
    cr_expect(strstr(out.msg[1], "\"id\":12,") != NULL);
}

Test(tsmcp, closing_a_channel_or_session_drops_pending_requests)
{
    struct cap other;
    cap_open(&other, 0);
    mb_tsmcp_handle(ts, &sess, &other.ch, tool_call_msg("1", "sleep", "{\"ms\":10000}"),
                    strlen(tool_call_msg("1", "sleep", "{\"ms\":10000}")));
    cr_expect_eq(mb_tsmcp_pending(ts), 1u);
    mb_tsmcp_chan_close(ts, &other.ch);
    cr_expect_eq(mb_tsmcp_pending(ts), 0u);
    cr_expect_eq(other.n, 0, "a closed channel gets nothing");
    cap_clear(&other);

    cap_open(&other, 0);
    struct mb_tsmcp_session s2;
    mb_tsmcp_session_open(&s2);
    const char *m = tool_call_msg("2", "sleep", "{\"ms\":10000}");
    mb_tsmcp_handle(ts, &s2, &other.ch, m, strlen(m));
    mb_tsmcp_session_close(ts, &s2);
    cr_expect_eq(mb_tsmcp_pending(ts), 0u);
    cr_assert_eq(other.n, 1);
    cr_expect_eq(other.kind[0], MB_TSMCP_ABORT);
    mb_tsmcp_chan_close(ts, &other.ch);
    cap_clear(&other);
    ev_run(loop, 0);
}

/* Lists every tool following nextCursor; returns how many pages. */
static int list_all(char names[][32], int *count)
{
    char cursor[32] = "";
    int pages = 0;
    *count = 0;
    for (;;) {
        char req[256];
        if (cursor[0])
            snprintf(req, sizeof(req),
                     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{"
                     "\"cursor\":\"%s\"}}",
                     cursor);
        else
            snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
        cJSON *j = call(req);
        cJSON *r = cJSON_GetObjectItem(j, "result"), *t;
        pages++;
        cJSON_ArrayForEach(t, cJSON_GetObjectItem(r, "tools"))
        {
            cr_assert(cJSON_IsObject(cJSON_GetObjectItem(t, "inputSchema")));
            snprintf(names[(*count)++], 32, "%s", cJSON_GetObjectItem(t, "name")->valuestring);
        }
        cJSON *nc = cJSON_GetObjectItem(r, "nextCursor");
        if (nc == NULL) {
            cJSON_Delete(j);
            return pages;
        }
        snprintf(cursor, sizeof(cursor), "%s", nc->valuestring);
        cJSON_Delete(j);
        cr_assert_lt(pages, 100);
    }
}

Test(tsmcp_pages, tools_list_paginates, .fini = teardown)
{
    static char names[64][32];
    int n;
    start(NULL, 25, 10);
    cr_expect_eq(list_all(names, &n), 4, "7 builtin + 25 extra tools in pages of 10");
    cr_expect_eq(n, 32);
    cr_expect_str_eq(names[0], "echo");
    cr_expect_str_eq(names[7], "tool_0");
    cr_expect_str_eq(names[31], "tool_24");
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++)
            cr_expect_str_neq(names[a], names[b]);
    cJSON *j = call("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":{"
                    "\"cursor\":\"bogus\"}}");
    cr_expect_eq(error_code(j), -32602);
    cJSON_Delete(j);
    j = call("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":{"
             "\"cursor\":\"999\"}}");
    cr_expect_eq(error_code(j), -32602);
    cJSON_Delete(j);
}

Test(tsmcp_pages, name_prefixes_tools, .fini = teardown)
{
    static char names[64][32];
    int n;
    start("alpha", 3, 0);
    cr_expect_eq(list_all(names, &n), 1);
    cr_expect_eq(n, 10);
    for (int i = 0; i < n; i++)
        cr_expect_eq(strncmp(names[i], "alpha_", 6), 0, "%s is prefixed", names[i]);
    cJSON *j = call(tool_call_msg("1", "alpha_echo", "{\"message\":\"m\"}"));
    cr_expect_str_eq(text_of(j), "m");
    cJSON_Delete(j);
    j = call(tool_call_msg("2", "echo", "{\"message\":\"m\"}"));
    cr_expect_eq(error_code(j), -32602, "the unprefixed name is unknown");
    cJSON_Delete(j);
    j = call(tool_call_msg("3", "alpha_tool_2", "{\"value\":\"v\"}"));
    cr_expect_str_eq(text_of(j), "alpha_tool_2: v");
    cJSON_Delete(j);
    j = call(tool_call_msg("4", "alpha_tool_3", "{}"));
    cr_expect_eq(error_code(j), -32602, "tool_3 does not exist with --tools 3");
    cJSON_Delete(j);
    j = call(tool_call_msg("5", "alpha_tool_01", "{}"));
    cr_expect_eq(error_code(j), -32602, "no leading zeros");
    cJSON_Delete(j);
    j = call("{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"initialize\",\"params\":{}}");
    cr_expect_str_eq(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), "serverInfo"),
                            "name")
            ->valuestring,
        "alpha");
    cJSON_Delete(j);
}

Test(tsmcp_pages, bad_names_are_refused, .fini = teardown)
{
    start(NULL, 0, 0);
    struct mb_tsmcp_opts o = {.name = "has space"};
    cr_expect_null(mb_tsmcp_new(&o, loop));
    cr_expect(!mb_tsmcp_name_valid(""));
    cr_expect(!mb_tsmcp_name_valid("a/b"));
    cr_expect(mb_tsmcp_name_valid("A-b.c_9"));
}

static double counted(cJSON *sc, const char *group, const char *name)
{
    cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(sc, group), name);
    return v ? v->valuedouble : 0;
}

Test(tsmcp, counter_reports_what_arrived)
{
    for (int i = 0; i < 3; i++)
        cJSON_Delete(call(tool_call_msg("1", "echo", "{\"message\":\"m\"}")));
    cJSON_Delete(call("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}"));
    cJSON_Delete(call("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"what/ever\"}"));
    cJSON_Delete(call(tool_call_msg("1", "ghost", "{}")));
    send_msg("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    send_msg("{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{}}");
    cr_expect_eq(send_msg("garbage"), MB_TSMCP_INVALID);
    cJSON *j = call(tool_call_msg("2", "counter", "{}"));
    cJSON *sc = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), "structuredContent");
    cr_assert_not_null(sc);
    cJSON *fromtext = cJSON_Parse(text_of(j));
    cr_expect(cJSON_Compare(sc, fromtext, 1), "text and structuredContent agree");
    cJSON_Delete(fromtext);
    cr_expect_eq(counted(sc, "methods", "tools/call"), 5);
    cr_expect_eq(counted(sc, "methods", "ping"), 1);
    cr_expect_eq(counted(sc, "methods", "what/ever"), 1);
    cr_expect_eq(counted(sc, "methods", "notifications/initialized"), 1);
    cr_expect_eq(counted(sc, "tools", "echo"), 3);
    cr_expect_eq(counted(sc, "tools", "counter"), 1, "the counter call counts itself");
    cr_expect_eq(counted(sc, "tools", "ghost"), 1);
    cr_expect_eq(cJSON_GetObjectItem(sc, "total")->valueint, 10);
    cr_expect_eq(cJSON_GetObjectItem(sc, "invalid")->valueint, 1);
    cr_expect_eq(cJSON_GetObjectItem(sc, "responses")->valueint, 1);
    cJSON_Delete(j);

    cJSON_Delete(call(tool_call_msg("3", "counter", "{\"reset\":true}")));
    j = call(tool_call_msg("4", "counter", "{}"));
    sc = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), "structuredContent");
    cr_expect_eq(cJSON_GetObjectItem(sc, "total")->valueint, 1, "reset, then only this call");
    cr_expect_eq(counted(sc, "tools", "echo"), 0);
    cr_expect_eq(counted(sc, "tools", "counter"), 1);
    cJSON_Delete(j);
}

Test(tsmcp, counter_table_of_unknown_names_is_bounded)
{
    char m[128];
    for (int i = 0; i < 300; i++) {
        snprintf(m, sizeof(m), "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"m%d\"}", i, i);
        cJSON_Delete(call(m));
    }
    cJSON *j = call(tool_call_msg("2", "counter", "{}"));
    cJSON *sc = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), "structuredContent");
    cr_expect_eq(counted(sc, "methods", "m0"), 1);
    cr_expect_eq(counted(sc, "methods", "m255"), 1);
    cr_expect_eq(counted(sc, "methods", "m256"), 0);
    cr_expect_eq(counted(sc, "methods", "(other)"), 44);
    cJSON_Delete(j);
}

Test(tsmcp, list_changed_notifies_and_changes_the_list)
{
    struct cap ws2, http;
    cap_open(&ws2, 1);
    cap_open(&http, 0);
    const char *m = tool_call_msg("1", "list_changed", "{}");
    mb_tsmcp_handle(ts, &sess, &http.ch, m, strlen(m));
    cr_assert_eq(http.n, 2, "the calling channel gets the notification, then the reply");
    cr_expect_eq(http.kind[0], MB_TSMCP_NOTIFY);
    cr_expect_str_eq(http.msg[0],
                     "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}");
    cr_expect_eq(http.kind[1], MB_TSMCP_REPLY);
    cr_expect_eq(ws2.n, 1, "every broadcast channel is notified");
    cr_expect_eq(out.n, 1);
    cJSON *j = call("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}");
    cr_expect(strstr(out.msg[0], "\"name\":\"dynamic\"") != NULL, "dynamic is now listed");
    cJSON_Delete(j);
    j = call(tool_call_msg("3", "dynamic", "{}"));
    cr_expect_str_eq(text_of(j), "dynamic");
    cJSON_Delete(j);
    mb_tsmcp_chan_close(ts, &ws2.ch);
    mb_tsmcp_chan_close(ts, &http.ch);
    cap_clear(&ws2);
    cap_clear(&http);
    cap_clear(&out);
    send_msg(tool_call_msg("4", "list_changed", "{}"));
    cr_expect_eq(ws2.n, 0, "a closed channel is no longer notified");
    j = call("{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/list\"}");
    cr_expect(strstr(out.msg[0], "\"name\":\"dynamic\"") == NULL, "toggled off again");
    cJSON_Delete(j);
}

Test(tsmcp, prompts_resources_and_logging)
{
    cJSON *j = call("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"prompts/list\"}");
    cr_expect_str_eq(
        cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), "prompts"), 0)
            ->child->valuestring,
        "greeting");
    cJSON_Delete(j);
    j = call("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"prompts/get\",\"params\":{\"name\":"
             "\"greeting\",\"arguments\":{\"name\":\"Ada \\\"L\\\"\"}}}");
    cJSON *msg =
        cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), "messages"), 0);
    cr_expect_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(msg, "content"), "text")->valuestring,
                     "Hello, Ada \"L\"!");
    cJSON_Delete(j);
    j = call(
        "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"prompts/get\",\"params\":{\"name\":\"x\"}}");
    cr_expect_eq(error_code(j), -32602);
    cJSON_Delete(j);
    j = call("{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"resources/read\",\"params\":{\"uri\":"
             "\"test://hello\"}}");
    cJSON *c =
        cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), "contents"), 0);
    cr_expect_str_eq(cJSON_GetObjectItem(c, "uri")->valuestring, "test://hello");
    cr_expect_str_eq(cJSON_GetObjectItem(c, "text")->valuestring,
                     "Hello from mcp-bridge-testserver");
    cJSON_Delete(j);
    j = call("{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"resources/read\",\"params\":{\"uri\":"
             "\"test://echo/a b\"}}");
    c = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), "contents"), 0);
    cr_expect_str_eq(cJSON_GetObjectItem(c, "text")->valuestring, "a b");
    cJSON_Delete(j);
    j = call("{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"resources/read\",\"params\":{\"uri\":"
             "\"test://nope\"}}");
    cr_expect_eq(error_code(j), -32002);
    cJSON_Delete(j);
    j = call("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"resources/list\"}");
    cr_expect(strstr(out.msg[0], "\"uri\":\"test://hello\"") != NULL);
    cJSON_Delete(j);
    j = call("{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"resources/templates/list\"}");
    cr_expect(strstr(out.msg[0], "\"uriTemplate\":\"test://echo/{text}\"") != NULL);
    cJSON_Delete(j);
    j = call("{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"logging/setLevel\",\"params\":{\"level\":"
             "\"error\"}}");
    cr_expect_not_null(cJSON_GetObjectItem(j, "result"));
    cr_expect_eq(sess.log_level, 4);
    cJSON_Delete(j);
    j = call("{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"logging/setLevel\",\"params\":{\"level\":"
             "\"loud\"}}");
    cr_expect_eq(error_code(j), -32602);
    cJSON_Delete(j);
}
