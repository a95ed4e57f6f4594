/*
 * tests/unit/worker/test_mcp.c — the MCP methods the gateway answers itself:
 * initialize and version negotiation, implicit sessions, ping, tools/list,
 * tools/call without tools, unknown methods, invalid params, and that
 * notifications and client responses get no reply.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "worker/mcp.h"

static struct mb_mcp_session sess;
static struct mb_buf out;

static void setup(void)
{
    mb_mcp_session_init(&sess);
    memset(&out, 0, sizeof(out));
}

static void teardown(void)
{
    mb_buf_free(&out);
}

TestSuite(mcp, .init = setup, .fini = teardown);

/* Sends one message; returns the reply as parsed JSON (NULL when none). */
static cJSON *send_msg(const char *text, struct mb_mcp_outcome *res)
{
    struct mb_mcp_outcome tmp;
    if (res == NULL)
        res = &tmp;
    mb_buf_reset(&out);
    cr_assert_eq(mb_mcp_handle(&sess, text, strlen(text), &out, res), 0);
    cr_assert_eq(res->replied, out.len > 0);
    if (!res->replied)
        return NULL;
    cJSON *j = cJSON_Parse(mb_buf_cstr(&out));
    cr_assert_not_null(j, "reply is not JSON: %s", mb_buf_cstr(&out));
    cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(j, "jsonrpc")->valuestring, "2.0");
    return j;
}

static const cJSON *result_of(const cJSON *j)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "result");
    cr_assert_not_null(r, "no result in %s", mb_buf_cstr(&out));
    return r;
}

static int error_code(const cJSON *j)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    cr_assert_not_null(e, "no error in %s", mb_buf_cstr(&out));
    return cJSON_GetObjectItemCaseSensitive(e, "code")->valueint;
}

static const char *negotiated(const char *asked)
{
    char msg[256];
    snprintf(msg, sizeof(msg),
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
             "\"protocolVersion\":\"%s\",\"capabilities\":{},"
             "\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}",
             asked);
    mb_mcp_session_init(&sess);
    cJSON *j = send_msg(msg, NULL);
    static char v[64];
    snprintf(v, sizeof(v), "%s",
             cJSON_GetObjectItemCaseSensitive(result_of(j), "protocolVersion")->valuestring);
    cJSON_Delete(j);
    return v;
}

Test(mcp, initialize_negotiates_known_versions)
{
    cr_expect_str_eq(negotiated("2025-11-25"), "2025-11-25");
    cr_expect_str_eq(negotiated("2025-06-18"), "2025-06-18");
    cr_expect_str_eq(negotiated("2025-03-26"), "2025-03-26");
}

Test(mcp, initialize_answers_unknown_version_with_latest)
{
    cr_expect_str_eq(negotiated("2024-11-05"), "2025-11-25");
    cr_expect_str_eq(negotiated("1999-01-01"), "2025-11-25");
    cr_expect_str_eq(negotiated(""), "2025-11-25");
    cr_expect_str_eq(mb_mcp_negotiate("2030-01-01"), mb_mcp_versions[0]);
}

Test(mcp, initialize_result_shape)
{
    struct mb_mcp_outcome res;
    cJSON *j = send_msg("{\"jsonrpc\":\"2.0\",\"id\":\"init-1\",\"method\":\"initialize\","
                        "\"params\":{\"protocolVersion\":\"2025-06-18\"}}",
                        &res);
    cr_expect_eq(res.kind, MB_JSONRPC_REQUEST);
    cr_expect_eq(res.error, 0);
    cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(j, "id")->valuestring, "init-1");
    const cJSON *r = result_of(j);
    const cJSON *caps = cJSON_GetObjectItemCaseSensitive(r, "capabilities");
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(caps, "tools");
    cr_expect(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(tools, "listChanged")));
    /* only what the gateway supports */
    cr_expect_eq(cJSON_GetArraySize(caps), 1);
    const cJSON *info = cJSON_GetObjectItemCaseSensitive(r, "serverInfo");
    cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(info, "name")->valuestring, "mcp-bridge");
    cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(info, "version")->valuestring, MB_VERSION);
    cr_expect(sess.initialized);
    cr_expect(!sess.implicit);
    cJSON_Delete(j);
}

Test(mcp, initialize_bad_params)
{
    cJSON *j = send_msg("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}", NULL);
    cr_expect_eq(error_code(j), -32602);
    cJSON_Delete(j);
    j = send_msg("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":[]}", NULL);
    cr_expect_eq(error_code(j), -32602);
    cJSON_Delete(j);
    j = send_msg("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\","
                 "\"params\":{\"protocolVersion\":20250618}}",
                 NULL);
    cr_expect_eq(error_code(j), -32602);
    cJSON_Delete(j);
    cr_expect(!sess.initialized);
}

Test(mcp, second_initialize_is_rejected)
{
    const char *init = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\","
                       "\"params\":{\"protocolVersion\":\"2025-03-26\"}}";
    cJSON_Delete(send_msg(init, NULL));
    cJSON *j = send_msg(init, NULL);
    cr_expect_eq(error_code(j), -32600);
    cJSON_Delete(j);
}

Test(mcp, initialized_notification_gets_no_reply)
{
    struct mb_mcp_outcome res;
    cr_expect_null(
        send_msg("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", &res));
    cr_expect_eq(res.kind, MB_JSONRPC_NOTIFICATION);
    cr_expect(sess.ready);
    /* unknown notifications are ignored, also without a reply */
    cr_expect_null(send_msg("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/whatever\"}", &res));
}

Test(mcp, client_response_gets_no_reply)
{
    struct mb_mcp_outcome res;
    cr_expect_null(send_msg("{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{}}", &res));
    cr_expect_eq(res.kind, MB_JSONRPC_RESPONSE);
}

Test(mcp, ping)
{
    cJSON *j = send_msg("{\"jsonrpc\":\"2.0\",\"id\":1000000000000000,\"method\":\"ping\"}", NULL);
    const cJSON *r = result_of(j);
    cr_expect(cJSON_IsObject(r));
    cr_expect_eq(cJSON_GetArraySize(r), 0);
    /* the id comes back byte for byte, not as 1e+15 */
    cr_expect(strstr(mb_buf_cstr(&out), "\"id\":1000000000000000,") != NULL, "%s",
              mb_buf_cstr(&out));
    cJSON_Delete(j);
    j = send_msg("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\",\"params\":\"x\"}", NULL);
    cr_expect_eq(error_code(j), -32602);
    cJSON_Delete(j);
}

Test(mcp, request_before_initialize_opens_implicit_session)
{
    cJSON *j = send_msg("{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"tools/list\"}", NULL);
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(result_of(j), "tools");
    cr_expect(cJSON_IsArray(tools));
    cr_expect_eq(cJSON_GetArraySize(tools), 0);
    cr_expect(sess.implicit);
    cr_expect(!sess.initialized);
    cJSON_Delete(j);
    /* an initialize is still accepted once after that */
    j = send_msg("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"initialize\","
                 "\"params\":{\"protocolVersion\":\"2025-03-26\"}}",
                 NULL);
    cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(result_of(j), "protocolVersion")->valuestring,
                     "2025-03-26");
    cJSON_Delete(j);
}

Test(mcp, tools_list_params)
{
    cJSON *j =
        send_msg("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{}}", NULL);
    result_of(j);
    cJSON_Delete(j);
    j = send_msg("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":[1]}", NULL);
    cr_expect_eq(error_code(j), -32602);
    cJSON_Delete(j);
    j = send_msg("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\","
                 "\"params\":{\"cursor\":5}}",
                 NULL);
    cr_expect_eq(error_code(j), -32602);
    cJSON_Delete(j);
    j = send_msg("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\","
                 "\"params\":{\"cursor\":\"never-issued\"}}",
                 NULL);
    cr_expect_eq(error_code(j), -32602);
    cJSON_Delete(j);
}

Test(mcp, tools_call_unknown_tool)
{
    struct mb_mcp_outcome res;
    cJSON *j = send_msg("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\","
                        "\"params\":{\"name\":\"demo__echo\",\"arguments\":{}}}",
                        &res);
    cr_expect_eq(error_code(j), -32602);
    cr_expect_eq(res.error, -32602);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    cr_expect(strstr(cJSON_GetObjectItemCaseSensitive(e, "message")->valuestring, "demo__echo"));
    cJSON_Delete(j);
    j = send_msg("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{}}", NULL);
    cr_expect_eq(error_code(j), -32602);
    cJSON_Delete(j);
}

Test(mcp, unknown_method)
{
    struct mb_mcp_outcome res;
    cJSON *j = send_msg("{\"jsonrpc\":\"2.0\",\"id\":\"q\",\"method\":\"prompts/list\"}", &res);
    cr_expect_eq(error_code(j), -32601);
    cr_expect_eq(res.error, -32601);
    cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(j, "id")->valuestring, "q");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    cr_expect(strstr(cJSON_GetObjectItemCaseSensitive(e, "message")->valuestring, "prompts/list"));
    cJSON_Delete(j);
}

Test(mcp, errors_echo_raw_ids)
{
    const char *ids[] = {"1000000000000000", "9007199254740993", "\"abc\"", "-1", "1.5"};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char msg[128], want[64];
        snprintf(msg, sizeof(msg), "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"nope\"}", ids[i]);
        snprintf(want, sizeof(want), "\"id\":%s,", ids[i]);
        cJSON *j = send_msg(msg, NULL);
        cr_expect_eq(error_code(j), -32601);
        cr_expect(strstr(mb_buf_cstr(&out), want) != NULL, "want %s in %s", want,
                  mb_buf_cstr(&out));
        cJSON_Delete(j);
    }
}

Test(mcp, malformed_and_invalid_messages)
{
    struct mb_mcp_outcome res;
    cJSON *j = send_msg("{\"jsonrpc\":", &res);
    cr_expect_eq(error_code(j), -32700);
    cr_expect_eq(res.kind, MB_JSONRPC_INVALID);
    cr_expect(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "id")));
    cJSON_Delete(j);
    j = send_msg("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}", NULL);
    cr_expect_eq(error_code(j), -32600);
    cr_expect(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "id")));
    cJSON_Delete(j);
    /* an invalid notification still gets an error, with id null */
    j = send_msg("{\"jsonrpc\":\"2.0\",\"method\":7}", NULL);
    cr_expect_eq(error_code(j), -32600);
    cJSON_Delete(j);
    j = send_msg("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", NULL);
    cr_expect_eq(error_code(j), -32600);
    cJSON_Delete(j);
}
