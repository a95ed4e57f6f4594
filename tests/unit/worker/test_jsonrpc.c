/*
 * tests/unit/worker/test_jsonrpc.c — JSON-RPC classification (every error
 * class), raw ids echoed byte for byte, the plain (cJSON-free) path against
 * the cJSON reference, and the reply writers.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
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
    cr_assert_not_null(mb_jsonrpc_params(&m));
    cr_expect(cJSON_IsObject(mb_jsonrpc_params(&m)));
    cr_expect_eq(m.method_id, MB_METHOD_TOOLS_LIST);
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
    cr_expect_null(mb_jsonrpc_params(&m));
    cr_expect_eq(m.method_id, MB_METHOD_OTHER);
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

/* Both classifications of text must say the same in every field a caller
 * reads; returns whether the plain path decided it (no cJSON fallback). */
static bool same_as_reference(const char *text, size_t len)
{
    struct mb_jsonrpc_msg a, b;
    mb_jsonrpc_parse(text, len, &a);
    mb_jsonrpc_parse_cjson(text, len, &b);
    bool plain = a.plain;
    cr_expect_eq(a.kind, b.kind, "%.*s: kind %d vs %d", (int)len, text, a.kind, b.kind);
    cr_expect_eq(a.error, b.error, "%.*s: error %d vs %d", (int)len, text, a.error, b.error);
    cr_expect((a.error_msg == NULL && b.error_msg == NULL) ||
                  (a.error_msg && b.error_msg && strcmp(a.error_msg, b.error_msg) == 0),
              "%.*s: %s vs %s", (int)len, text, a.error_msg, b.error_msg);
    cr_expect(a.id_len == b.id_len && memcmp(a.id, b.id, a.id_len) == 0, "%.*s: id %.*s vs %.*s",
              (int)len, text, (int)a.id_len, a.id, (int)b.id_len, b.id);
    cr_expect((a.method == NULL && b.method == NULL) ||
                  (a.method && b.method && strcmp(a.method, b.method) == 0),
              "%.*s: method %s vs %s", (int)len, text, a.method, b.method);
    cr_expect_eq(a.method_id, b.method_id, "%.*s: method_id", (int)len, text);
    /* the params members found in the parse pass are those a walk finds */
    static const char *const pn[] = {"name", "_meta", "arguments", "uri", "cursor"};
    for (size_t i = 0; a.plain && i < sizeof(pn) / sizeof(pn[0]); i++) {
        struct mb_json_raw got, want = {NULL, 0};
        int rc = mb_jsonrpc_param_raw(&a, pn[i], &got);
        int wrc = a.params_raw.p
                      ? mb_json_members(a.params_raw.p, a.params_raw.len, &pn[i], 1, &want)
                      : 0;
        cr_expect(rc == wrc && got.p == want.p && got.len == want.len, "%.*s: params.%s", (int)len,
                  text, pn[i]);
    }
    const cJSON *pa = mb_jsonrpc_params(&a), *pb = mb_jsonrpc_params(&b);
    char *ta = pa ? cJSON_PrintUnformatted(pa) : NULL, *tb = pb ? cJSON_PrintUnformatted(pb) : NULL;
    cr_expect((ta == NULL && tb == NULL) || (ta && tb && strcmp(ta, tb) == 0),
              "%.*s: params %s vs %s", (int)len, text, ta, tb);
    free(ta);
    free(tb);
    mb_jsonrpc_msg_release(&a);
    mb_jsonrpc_msg_release(&b);
    return plain;
}

static const char *const corpus[] = {
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}",
    "{\"jsonrpc\":\"2.0\",\"id\":\"a-1\",\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
    "\"arguments\":{\"message\":\"hello\",\"n\":[1,2.5,-3e2,true,false,null]}}}",
    " {\"method\":\"notifications/initialized\",\"jsonrpc\":\"2.0\"}\r\n",
    "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}",
    "{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-1,\"message\":\"x\"}}",
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"ping\",\"method\":\"x\"}",
    "{\"jsonrpc\":\"2.0\",\"\\u0069d\":5,\"method\":\"ping\"}",
    "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools\\/list\"}",
    "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"\\u0070ing\"}",
    "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"ping\",\"params\":{\"s\":\"\\ud800\"}}",
    "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"ping\",\"params\":{\"s\":\"a\\n\\\"b\\\\\"}}",
    "{\"jsonrpc\":\"2.0\",\"id\":01,\"method\":\"ping\"}",
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"x\":01}}",
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"x\":"
    "1234567890123456789012345678901234567890123456789012345678901234567890}}",
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"x\":"
    "123456789012345678901234567890123456789012345678901234567890123}}",
    "{\"jsonrpc\":\"2.0\",\"id\":\"a\\u00e9\",\"method\":\"ping\"}",
    "{\"jsonrpc\":\"2.0\",\"id\":\"a\x01\",\"method\":\"ping\"}",
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":\"x\x02\"}",
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"} x",
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\x0b",
    "\xef\xbb\xbf{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}",
    "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]",
    "[]",
    "42",
    "\"x\"",
    "null",
    "{}",
    "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}",
    "{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"ping\"}",
    "{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"ping\"}",
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":null}",
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":{}}",
    "{\"jsonrpc\":2.0,\"id\":1,\"method\":\"ping\"}",
    "{\"jsonrpc\":\"2.0 \",\"id\":1,\"method\":\"ping\"}",
    "{\"id\":1,\"method\":\"ping\"}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"resources/templates/list\",\"id\":-0.5e+3}",
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"other\"}",
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\"}",
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":[1,2]}",
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":null}",
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"a\":{\"b\":[[[[{}]]]]}}}",
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"result\":1}",
    "{\"jsonrpc\":\"2.0\",\"result\":1,\"error\":1}",
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",",
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"\"x\":1}",
    "",
    "   ",
};

Test(jsonrpc, plain_path_agrees_with_cjson)
{
    size_t plain = 0;
    for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++)
        plain += same_as_reference(corpus[i], strlen(corpus[i]));
    /* both paths must really be exercised */
    cr_expect_gt(plain, 20);
    cr_expect_lt(plain, sizeof(corpus) / sizeof(corpus[0]));
    /* a method longer than the plain path copies: cJSON decides */
    char big[400];
    int n = snprintf(big, sizeof(big), "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%0300d\"}", 0);
    cr_expect(!same_as_reference(big, (size_t)n));
}

Test(jsonrpc, plain_path_agrees_with_cjson_on_mutations)
{
    /* Every corpus entry with bytes replaced, deleted and duplicated at
     * pseudo-random places (fixed seed): broken text must be judged alike
     * too. Replacement bytes come from JSON's own punctuation. */
    static const char alphabet[] = "{}[]\":,\\u0123456789.-+eE tfnrl\x01\x7f\xc3";
    unsigned seed = 12345;
    char buf[512];
    for (int round = 0; round < 40; round++)
        for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++) {
            size_t len = strlen(corpus[i]);
            if (len == 0 || len + 2 > sizeof(buf))
                continue;
            memcpy(buf, corpus[i], len);
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % len;
            seed = seed * 1103515245u + 12345u;
            char c = alphabet[(seed >> 8) % (sizeof(alphabet) - 1)];
            switch (round % 3) {
            case 0:
                buf[at] = c;
                break;
            case 1:
                memmove(buf + at, buf + at + 1, len - at - 1);
                len--;
                break;
            default:
                memmove(buf + at + 1, buf + at, len - at);
                len++;
                break;
            }
            same_as_reference(buf, len);
        }
}

Test(jsonrpc, method_labels)
{
    cr_expect_eq(mb_jsonrpc_method_of("tools/call", 10), MB_METHOD_TOOLS_CALL);
    cr_expect_eq(mb_jsonrpc_method_of("tools/calls", 11), MB_METHOD_OTHER);
    cr_expect_eq(mb_jsonrpc_method_of("tools/cal", 9), MB_METHOD_OTHER);
    cr_expect_eq(mb_jsonrpc_method_of("resources/templates/list", 24),
                 MB_METHOD_RESOURCES_TEMPLATES_LIST);
    cr_expect_eq(mb_jsonrpc_method_of("other", 5), MB_METHOD_OTHER);
    cr_expect_eq(mb_jsonrpc_method_of("invalid", 7), MB_METHOD_OTHER);
    cr_expect_eq(mb_jsonrpc_method_of("", 0), MB_METHOD_OTHER);
    struct mb_jsonrpc_msg m = parse("{\"jsonrpc\":\"2.0\",\"id\":1}");
    cr_expect_eq(m.method_id, MB_METHOD_INVALID);
    mb_jsonrpc_msg_release(&m);
}

Test(jsonrpc, params_raw_members)
{
    struct mb_jsonrpc_msg m =
        parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"e\","
              "\"arguments\":{\"name\":\"inner\"},\"name\":\"second\"}}");
    struct mb_json_raw v;
    cr_assert(m.plain);
    cr_expect_eq(mb_jsonrpc_param_raw(&m, "name", &v), 0);
    cr_expect(v.len == 3 && memcmp(v.p, "\"e\"", 3) == 0, "%.*s", (int)v.len, v.p);
    cr_expect_eq(mb_jsonrpc_param_raw(&m, "cursor", &v), 0);
    cr_expect_null(v.p);
    mb_jsonrpc_msg_release(&m);
    /* no params: nothing, and no tree */
    m = parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
    cr_expect_eq(mb_jsonrpc_param_raw(&m, "cursor", &v), 0);
    cr_expect_null(v.p);
    cr_expect_null(mb_jsonrpc_params(&m));
    mb_jsonrpc_msg_release(&m);
    /* keys written with \\u escapes: raw lookups decline, the tree decides */
    m = parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"n\\u0061me\":"
              "\"e\"}}");
    cr_expect(!m.plain);
    cr_expect_eq(mb_jsonrpc_param_raw(&m, "name", &v), MB_DECLINED);
    cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(mb_jsonrpc_params(&m), "name")->valuestring,
                     "e");
    mb_jsonrpc_msg_release(&m);
    /* params not an object: declined */
    m = parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":[1]}");
    cr_expect_eq(mb_jsonrpc_param_raw(&m, "name", &v), MB_DECLINED);
    mb_jsonrpc_msg_release(&m);
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

Test(buf, integers_as_printf_writes_them)
{
    static const long long v[] = {
        0, 1, -1, 9, 10, 99, 100, -32700, 9007199254740993LL, LLONG_MAX, LLONG_MIN};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        struct mb_buf b = {0};
        char want[32];
        snprintf(want, sizeof(want), "%lld", v[i]);
        cr_assert_eq(mb_buf_append_int(&b, v[i]), 0);
        cr_expect_str_eq(mb_buf_cstr(&b), want);
        mb_buf_free(&b);
    }
    static const uint64_t u[] = {0, 7, 10, 18446744073709551615ULL, 1000000000000000000ULL};
    for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++) {
        char got[24], want[24];
        size_t n = mb_buf_format_u64(got, u[i]);
        got[n] = '\0';
        snprintf(want, sizeof(want), "%llu", (unsigned long long)u[i]);
        cr_expect_str_eq(got, want);
    }
}
