/*
 * tests/unit/worker/test_jsonrpc.c — JSON-RPC classification (every error
 * class), raw ids echoed byte for byte, and the reply writers.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "worker/jsonrpc.h"

static struct mb_jsonrpc_msg parse(const char *text)
{
    struct mb_jsonrpc_msg m;
    cr_assert_eq(mb_jsonrpc_parse(text, strlen(text), &m), 0);
    return m;
}

static void expect_invalid(const char *text, int code, const char *id)
{
    struct mb_jsonrpc_msg m = parse(text);
    cr_expect_eq(m.kind, MB_JSONRPC_INVALID, "%s: kind %d", text, m.kind);
    cr_expect_eq(m.error, code, "%s: code %d, want %d", text, m.error, code);
    cr_expect_eq(m.id_len, strlen(id), "%s: id %.*s", text, (int)m.id_len, m.id);
    cr_expect(strncmp(m.id, id, m.id_len) == 0, "%s: id %.*s, want %s", text, (int)m.id_len, m.id,
              id);
    mb_jsonrpc_msg_release(&m);
}

static void expect_raw_id(const char *text, const char *id)
{
    struct mb_jsonrpc_msg m = parse(text);
    cr_expect_eq(m.kind, MB_JSONRPC_REQUEST, "%s", text);
    cr_expect_eq(m.id_len, strlen(id), "%s: got %.*s", text, (int)m.id_len, m.id);
    cr_expect(strncmp(m.id, id, m.id_len) == 0, "%s: got %.*s", text, (int)m.id_len, m.id);
    mb_jsonrpc_msg_release(&m);
}

Test(jsonrpc, request_fields)
{
    struct mb_jsonrpc_msg m = parse("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/list\","
                                    "\"params\":{\"cursor\":\"x\"}}");
    cr_assert_eq(m.kind, MB_JSONRPC_REQUEST);
    cr_expect_str_eq(m.method, "tools/list");
    cr_assert_not_null(m.params);
    cr_expect(cJSON_IsObject(m.params));
    cr_expect_eq(m.id_len, 1);
    cr_expect_eq(m.id[0], '7');
    mb_jsonrpc_msg_release(&m);
    cr_expect_null(m.root);
}

Test(jsonrpc, notification_has_no_id)
{
    struct mb_jsonrpc_msg m =
        parse("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    cr_expect_eq(m.kind, MB_JSONRPC_NOTIFICATION);
    cr_expect_str_eq(m.method, "notifications/initialized");
    cr_expect_null(m.params);
    mb_jsonrpc_msg_release(&m);
}

Test(jsonrpc, client_response_is_accepted)
{
    struct mb_jsonrpc_msg m = parse("{\"jsonrpc\":\"2.0\",\"id\":\"s-1\",\"result\":{}}");
    cr_expect_eq(m.kind, MB_JSONRPC_RESPONSE);
    mb_jsonrpc_msg_release(&m);
    m = parse("{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-1,\"message\":\"no\"}}");
    cr_expect_eq(m.kind, MB_JSONRPC_RESPONSE);
    mb_jsonrpc_msg_release(&m);
    /* both result and error, or neither: not a valid response */
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":1,\"error\":{}}", -32600, "3");
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":3}", -32600, "3");
    /* a result without an id is not a response either */
    expect_invalid("{\"jsonrpc\":\"2.0\",\"result\":1}", -32600, "null");
}

Test(jsonrpc, raw_ids_verbatim)
{
    expect_raw_id("{\"jsonrpc\":\"2.0\",\"id\":1000000000000000,\"method\":\"ping\"}",
                  "1000000000000000");
    expect_raw_id("{\"jsonrpc\":\"2.0\",\"id\":9007199254740993,\"method\":\"ping\"}",
                  "9007199254740993");
    expect_raw_id("{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"method\":\"ping\"}", "\"abc\"");
    expect_raw_id("{\"jsonrpc\":\"2.0\",\"id\":-1,\"method\":\"ping\"}", "-1");
    expect_raw_id("{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}", "1.5");
    expect_raw_id("{\"jsonrpc\":\"2.0\",\"id\":2e3,\"method\":\"ping\"}", "2e3");
    expect_raw_id("{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"ping\"}", "0");
    /* escapes inside a string id stay as sent */
    expect_raw_id("{\"jsonrpc\":\"2.0\",\"id\":\"a\\\"b\\u00e9\",\"method\":\"ping\"}",
                  "\"a\\\"b\\u00e9\"");
}

Test(jsonrpc, raw_id_found_in_any_position)
{
    /* id last, after nested values holding braces, brackets and quotes */
    expect_raw_id("{ \"method\" : \"ping\", \"params\": {\"a\":[1,{\"}\":\"]\"}],\"b\":\"\\\"{\"},"
                  "\"jsonrpc\":\"2.0\" ,\n\t\"id\" :  42 }",
                  "42");
    /* a key that merely contains "id" is not the id */
    expect_raw_id("{\"jsonrpc\":\"2.0\",\"xid\":1,\"id\":2,\"method\":\"ping\"}", "2");
    /* escaped key spelling of "id": cJSON decodes it, the scanner follows */
    expect_raw_id("{\"jsonrpc\":\"2.0\",\"\\u0069d\":5,\"method\":\"ping\"}", "5");
    /* duplicate id keys: the first one wins */
    expect_raw_id("{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"ping\"}", "1");
}

Test(jsonrpc, parse_errors)
{
    expect_invalid("{\"jsonrpc\":\"2.0\",", -32700, "null");
    expect_invalid("not json", -32700, "null");
    expect_invalid("", -32700, "null");
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"} trailing", -32700, "null");
    /* cJSON accepts these numbers; they are not JSON and the id is echoed */
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":01,\"method\":\"ping\"}", -32700, "null");
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1.,\"method\":\"ping\"}", -32700, "null");
    /* a raw control character inside a string id */
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":\"a\x01\",\"method\":\"ping\"}", -32700, "null");
}

Test(jsonrpc, trailing_whitespace_is_fine)
{
    struct mb_jsonrpc_msg m = parse("  {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"} \r\n");
    cr_expect_eq(m.kind, MB_JSONRPC_REQUEST);
    mb_jsonrpc_msg_release(&m);
}

Test(jsonrpc, invalid_requests)
{
    /* jsonrpc missing, wrong value, wrong type: the id is still echoed */
    expect_invalid("{\"id\":1,\"method\":\"ping\"}", -32600, "1");
    expect_invalid("{\"jsonrpc\":\"1.0\",\"id\":\"x\",\"method\":\"ping\"}", -32600, "\"x\"");
    expect_invalid("{\"jsonrpc\":2.0,\"id\":1,\"method\":\"ping\"}", -32600, "1");
    /* method not a string */
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":5}", -32600, "1");
    expect_invalid("{\"jsonrpc\":\"2.0\",\"method\":null}", -32600, "null");
    /* id of a wrong type: answered with id null */
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":{\"a\":1},\"method\":\"ping\"}", -32600, "null");
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"ping\"}", -32600, "null");
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"ping\"}", -32600, "null");
    /* id null: MCP forbids it */
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}", -32600, "null");
    /* not an object */
    expect_invalid("42", -32600, "null");
    expect_invalid("\"ping\"", -32600, "null");
    expect_invalid("null", -32600, "null");
    /* batches are rejected as a whole */
    expect_invalid("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", -32600, "null");
    expect_invalid("[]", -32600, "null");
}

Test(jsonrpc, batch_error_names_batching)
{
    struct mb_jsonrpc_msg m = parse("[1,2]");
    cr_assert_eq(m.kind, MB_JSONRPC_INVALID);
    cr_expect(strstr(m.error_msg, "batch") != NULL, "%s", m.error_msg);
    mb_jsonrpc_msg_release(&m);
}

Test(jsonrpc, keys_are_case_sensitive)
{
    /* "ID" and "Method" are not the members JSON-RPC defines */
    expect_invalid("{\"jsonrpc\":\"2.0\",\"ID\":1,\"Method\":\"ping\"}", -32600, "null");
}

Test(jsonrpc, write_result)
{
    struct mb_buf b = {0};
    cr_assert_eq(mb_jsonrpc_write_result(&b, "1000000000000000", 16, "{}", 2), 0);
    cr_expect_str_eq(mb_buf_cstr(&b),
                     "{\"jsonrpc\":\"2.0\",\"id\":1000000000000000,\"result\":{}}");
    mb_buf_free(&b);
}

Test(jsonrpc, write_error_escapes_detail)
{
    struct mb_buf b = {0};
    const char detail[] = "a\"b\\c\nd";
    cr_assert_eq(mb_jsonrpc_write_error(&b, "\"abc\"", 5, -32601, "Method not found", detail,
                                        strlen(detail)),
                 0);
    cr_expect_str_eq(mb_buf_cstr(&b),
                     "{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"error\":{\"code\":-32601,"
                     "\"message\":\"Method not found: a\\\"b\\\\c\\nd\"}}");
    /* and the result is JSON that says what we meant */
    cJSON *j = cJSON_Parse(mb_buf_cstr(&b));
    cr_assert_not_null(j);
    cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(e, "message")->valuestring,
                     "Method not found: a\"b\\c\nd");
    cJSON_Delete(j);
    mb_buf_free(&b);
}

Test(jsonrpc, write_error_without_detail)
{
    struct mb_buf b = {0};
    cr_assert_eq(mb_jsonrpc_write_error(&b, "null", 4, -32700, "Parse error", NULL, 0), 0);
    cr_expect_str_eq(mb_buf_cstr(&b), "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,"
                                      "\"message\":\"Parse error\"}}");
    mb_buf_free(&b);
}

Test(buf, json_string_escapes_controls)
{
    struct mb_buf b = {0};
    cr_assert_eq(mb_buf_append_json_string(&b, "\x01\t\xc3\xa9", 4), 0);
    cr_expect_str_eq(mb_buf_cstr(&b), "\"\\u0001\\t\xc3\xa9\"");
    mb_buf_reset(&b);
    cr_expect_eq(b.len, 0);
    cr_assert_eq(mb_buf_append_int(&b, -32768), 0);
    cr_expect_str_eq(mb_buf_cstr(&b), "-32768");
    mb_buf_free(&b);
}
