/*
 * tests/unit/worker/test_upstream_http_msg.c — the method / id lookup of the
 * Streamable HTTP transport against the validating mb_json_member on a
 * corpus where the backwards read of the last member could go wrong: ids
 * of every kind at the end, "id" inside params or inside a string, escaped
 * quotes and backslashes before the end, white space everywhere, duplicate
 * members, responses, notifications, and values that are not objects.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "worker/jsonscan.h"
#include "worker/upstream_http_msg.h"

static const char *const corpus[] = {
    "{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"params\":{\"name\":\"echo\"},\"id\":1}",
    "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/list\"}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"tools/list\",\"id\":\"a\\\"b\"}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"id\":\"a\\\\\"}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"id\":\"\\\\\\\"\"}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"id\":-1.5e+3}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"id\":null}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"id\":true}",
    " { \"method\" : \"x\" , \"id\" : 12 } \n",
    "{\"method\":\"x\",\"params\":{\"id\":1}}",
    "{\"method\":\"x\",\"params\":[{\"id\":1}]}",
    "{\"method\":\"x\",\"params\":{\"a\":\",\\\"id\\\":1\"}}",
    "{\"method\":\"x\",\"note\":\",\\\"id\\\":1\"}",
    "{\"method\":\"x\",\"note\":\"{\\\"id\\\":1\"}",
    "{\"method\":\"x\",\"xid\":1}",
    "{\"method\":\"x\",\"a\\\"id\":1}",
    "{\"method\":\"x\",\"id\":{\"k\":1}}",
    "{\"method\":\"x\",\"id\":[1]}",
    "{\"method\":\"notifications/initialized\"}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1}}",
    "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}",
    "{\"jsonrpc\":\"2.0\",\"result\":{\"id\":2},\"id\":3}",
    "{\"id\":1}",
    "{\"id\":1,\"method\":\"a\",\"method\":\"b\",\"id\":2}",
    "{}",
    "[{\"method\":\"x\",\"id\":1}]",
    "\"id\"",
    "12",
    "{\"method\":\"x\",\"s\":\"}\",\"id\":\"}\"}",
    "{\"method\":\"x\",\"id\":\"\"}",
    "{\"method\":\"x\",\"p\":\"\\\\\",\"id\":5}",
};

Test(upstream_http_msg, agrees_with_the_validating_lookup)
{
    for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++) {
        const char *m = corpus[i];
        size_t n = strlen(m);
        cr_assert(mb_json_valid(m, n), "corpus entry %zu is not JSON: %s", i, m);
        struct mb_json_raw want_method, want_id, method;
        bool has_id = true;
        mb_json_member(m, n, "method", &want_method);
        mb_json_member(m, n, "id", &want_id);
        mb_upstream_http_classify(m, n, &method, &has_id);
        cr_assert_eq(has_id, want_id.p != NULL, "id of %s: %d", m, has_id);
        cr_assert_eq(method.p, want_method.p, "method of %s", m);
        cr_assert_eq(method.len, want_method.len, "method length of %s", m);
    }
}

Test(upstream_http_msg, a_request_with_the_id_last_is_a_request)
{
    const char *m = "{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"params\":"
                    "{\"name\":\"echo\",\"arguments\":{\"id\":\"no\"}},\"id\":42}";
    struct mb_json_raw method;
    bool has_id = false;
    mb_upstream_http_classify(m, strlen(m), &method, &has_id);
    cr_assert(has_id);
    cr_assert_eq(method.len, strlen("\"tools/call\""));
    cr_assert_eq(memcmp(method.p, "\"tools/call\"", method.len), 0);
}

Test(upstream_http_msg, compact_method_read_directly_and_escapes_left_to_the_walk)
{
    static const char *const cases[] = {
        "{\"jsonrpc\":\"2.0\",\"method\":\"tools/list\",\"id\":1}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"a\\\"b\",\"id\":1}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"\",\"id\":1}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"a\\\\\",\"id\":1}",
        "{\"jsonrpc\":\"2.0\",\"method\":1,\"id\":1}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"method\":\"y\",\"id\":1}",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *m = cases[i];
        size_t n = strlen(m);
        struct mb_json_raw want, got;
        bool has_id = false;
        cr_assert(mb_json_valid(m, n), "%s", m);
        mb_json_member(m, n, "method", &want);
        mb_upstream_http_classify(m, n, &got, &has_id);
        cr_assert(has_id, "%s", m);
        cr_assert_eq(got.len, want.len, "%s: %zu", m, got.len);
        cr_assert_eq(got.p, want.p, "%s", m);
    }
}
