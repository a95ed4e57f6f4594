/*
 * tests/unit/testserver/test_tsjson.c — the test server's raw JSON scanner:
 * what it accepts and rejects, and that lookups return the exact text.
 */
#include "tests/testserver/tsjson.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static int valid(const char *s)
{
    struct mb_tsjson root;
    return mb_tsjson_validate(s, strlen(s), &root, NULL) == 0;
}

static struct mb_tsjson doc(const char *s)
{
    struct mb_tsjson root;
    const char *why = NULL;
    cr_assert_eq(mb_tsjson_validate(s, strlen(s), &root, &why), 0, "%s: %s", s, why);
    return root;
}

static int span_is(struct mb_tsjson v, const char *text)
{
    return v.n == strlen(text) && memcmp(v.p, text, v.n) == 0;
}

Test(tsjson, accepts_valid_documents)
{
    const char *ok[] = {"{}",
                        "[]",
                        " {\"a\" : [1, -2.5e+3, true, false, null, \"x\"]} ",
                        "0",
                        "\"\\u00e9\\n\\\"\"",
                        "-0.0E-1",
                        "{\"a\":{\"b\":{\"c\":[[]]}}}"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        cr_expect(valid(ok[i]), "should accept %s", ok[i]);
}

Test(tsjson, rejects_invalid_documents)
{
    const char *bad[] = {
        "",    "{",     "{\"a\":1,}", "[1,]",          "01",        "1.",        ".5",
        "+1",  "\"abc", "\"a\\x\"",   "\"\\u12\"",     "{a:1}",     "{\"a\" 1}", "[1 2]",
        "tru", "{} {}", "nul",        "\"tab\there\"", "{\"a\":1]", "-"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect(!valid(bad[i]), "should reject [%s]", bad[i]);
}

Test(tsjson, limits_nesting_depth)
{
    char deep[2 * (MB_TSJSON_MAX_DEPTH + 2) + 1];
    size_t d = MB_TSJSON_MAX_DEPTH;
    memset(deep, '[', d);
    memset(deep + d, ']', d);
    deep[2 * d] = '\0';
    cr_expect(valid(deep), "depth %zu is allowed", d);
    d = MB_TSJSON_MAX_DEPTH + 1;
    memset(deep, '[', d);
    memset(deep + d, ']', d);
    deep[2 * d] = '\0';
    cr_expect(!valid(deep), "depth %zu is refused", d);
}

Test(tsjson, get_returns_raw_member_text)
{
    struct mb_tsjson root = doc("{\"jsonrpc\":\"2.0\", \"id\" : 9007199254740993 ,"
                                "\"params\":{\"a\":[1,{\"id\":2}],\"s\":\"x\\\"y\"}}");
    struct mb_tsjson v, p;
    cr_assert_eq(mb_tsjson_get(root, "id", &v), 0);
    cr_expect(span_is(v, "9007199254740993"));
    cr_assert_eq(mb_tsjson_get(root, "params", &p), 0);
    cr_assert_eq(mb_tsjson_type(p), MB_TSJSON_OBJECT);
    cr_assert_eq(mb_tsjson_get(p, "s", &v), 0);
    cr_expect(span_is(v, "\"x\\\"y\""));
    cr_assert_eq(mb_tsjson_get(p, "a", &v), 0);
    cr_expect(span_is(v, "[1,{\"id\":2}]"));
    cr_expect_neq(mb_tsjson_get(p, "id", &v), 0, "a nested id is not a member of params");
    cr_expect_neq(mb_tsjson_get(root, "missing", &v), 0);
    cr_expect_neq(mb_tsjson_get(v, "x", &v), 0, "not an object");
}

Test(tsjson, get_first_duplicate_and_escaped_keys)
{
    struct mb_tsjson root = doc("{\"a\":1,\"a\":2,\"\\u0069d\":\"e\"}");
    struct mb_tsjson v;
    cr_assert_eq(mb_tsjson_get(root, "a", &v), 0);
    cr_expect(span_is(v, "1"));
    cr_assert_eq(mb_tsjson_get(root, "id", &v), 0, "an escaped key matches its decoded name");
    cr_expect(span_is(v, "\"e\""));
}

Test(tsjson, next_iterates_arrays)
{
    struct mb_tsjson arr = doc("[ 1 , \"two\" , [3] , {\"f\":4} ]"), v;
    const char *want[] = {"1", "\"two\"", "[3]", "{\"f\":4}"};
    size_t pos = 0, i = 0;
    while (mb_tsjson_next(arr, &pos, &v) == 0) {
        cr_assert_lt(i, 4u);
        cr_expect(span_is(v, want[i]), "element %zu", i);
        i++;
    }
    cr_expect_eq(i, 4u);
    pos = 0;
    cr_expect_neq(mb_tsjson_next(doc("[]"), &pos, &v), 0);
}

Test(tsjson, str_decodes_escapes)
{
    char out[64];
    cr_expect_eq(mb_tsjson_str(doc("\"a\\n\\t\\/\\\\\\\"b\""), out, sizeof(out)), 7);
    cr_expect_str_eq(out, "a\n\t/\\\"b");
    cr_expect_eq(mb_tsjson_str(doc("\"\\u00e9\\ud83d\\ude00\""), out, sizeof(out)), 6);
    cr_expect_str_eq(out, "\xc3\xa9\xf0\x9f\x98\x80");
    cr_expect_eq(mb_tsjson_str(doc("\"\\ud83d\""), out, sizeof(out)), -1, "lone high surrogate");
    cr_expect_eq(mb_tsjson_str(doc("\"\\ude00\""), out, sizeof(out)), -1, "lone low surrogate");
    cr_expect_eq(mb_tsjson_str(doc("\"a\\u0000b\""), out, sizeof(out)), -1, "escaped NUL");
    cr_expect_eq(mb_tsjson_str(doc("\"abcdef\""), out, 6), -1, "does not fit");
    cr_expect_eq(mb_tsjson_str(doc("\"abcde\""), out, 6), 5);
    cr_expect_eq(mb_tsjson_str(doc("12"), out, sizeof(out)), -1, "not a string");
    cr_expect(mb_tsjson_streq(doc("\"t\\u006fols/list\""), "tools/list"));
    cr_expect(!mb_tsjson_streq(doc("\"tools/lis\""), "tools/list"));
}

Test(tsjson, int_reads_integral_numbers_in_range)
{
    long long v = 0;
    cr_expect_eq(mb_tsjson_int(doc("12"), 0, 100, &v), 0);
    cr_expect_eq(v, 12);
    cr_expect_eq(mb_tsjson_int(doc("1.2e1"), 0, 100, &v), 0);
    cr_expect_eq(v, 12);
    cr_expect_eq(mb_tsjson_int(doc("-3.0"), -5, 100, &v), 0);
    cr_expect_eq(v, -3);
    cr_expect_eq(mb_tsjson_int(doc("1.5"), 0, 100, &v), -1);
    cr_expect_eq(mb_tsjson_int(doc("101"), 0, 100, &v), -1);
    cr_expect_eq(mb_tsjson_int(doc("-1"), 0, 100, &v), -1);
    cr_expect_eq(mb_tsjson_int(doc("99999999999999999999999"), 0, 100, &v), -1);
    cr_expect_eq(mb_tsjson_int(doc("\"5\""), 0, 100, &v), -1);
}
