/*
 * tests/unit/worker/test_jsonscan.c — the raw JSON scanner of the routing
 * path: strict validation, member lookup (first wins, nested paths, values
 * kept byte for byte), integer ids, and splicing several edits.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "common/errors.h"
#include "worker/jsonscan.h"

static bool valid(const char *s)
{
    return mb_json_valid(s, strlen(s));
}

Test(jsonscan, validation_is_strict)
{
    cr_expect(valid("{\"a\":[1,-2.5e3,true,false,null,\"x\\u00e9\\n\"],\"b\":{}}"));
    cr_expect(valid(" 0 "));
    const char *bad[] = {"",        "{",     "{\"a\":1,}",       "[1,]",  "01",  "1.",
                         "\"\\x\"", "{a:1}", "\"raw\ncontrol\"", "[1] 2", "tru", "{\"a\" 1}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_not(valid(bad[i]), "accepted %s", bad[i]);
    char deep[400];
    memset(deep, '[', 200);
    memset(deep + 200, ']', 200);
    cr_expect_not(mb_json_valid(deep, 400), "nesting is bounded");
}

Test(jsonscan, members_and_paths)
{
    const char *t = "{\"id\":1000000000000000,\"method\":\"tools/call\",\"id\":2,"
                    "\"params\":{\"name\":\"a__b\",\"_meta\":{\"progressToken\":\"t\\\"q\"}}}";
    struct mb_json_raw r;
    cr_assert_eq(mb_json_member(t, strlen(t), "id", &r), 0);
    cr_expect_eq(r.len, 16);
    cr_expect_eq(memcmp(r.p, "1000000000000000", 16), 0, "the first id, byte for byte");
    uint64_t v;
    cr_expect(mb_json_raw_uint(r, &v));
    cr_expect_eq(v, 1000000000000000ull);
    static const char *const tok[] = {"params", "_meta", "progressToken", NULL};
    cr_assert_eq(mb_json_path(t, strlen(t), tok, &r), 0);
    cr_expect_eq(r.len, 6);
    cr_expect_eq(memcmp(r.p, "\"t\\\"q\"", 6), 0);
    char buf[32];
    cr_expect_eq(mb_json_raw_plain_string(r, buf, sizeof(buf)), -1, "escapes are left to cJSON");
    static const char *const nm[] = {"params", "name", NULL};
    cr_assert_eq(mb_json_path(t, strlen(t), nm, &r), 0);
    cr_expect_eq(mb_json_raw_plain_string(r, buf, sizeof(buf)), 4);
    cr_expect_str_eq(buf, "a__b");
    cr_expect_eq(mb_json_member(t, strlen(t), "nope", &r), MB_DECLINED);
    cr_expect_null(r.p);
    cr_expect_eq(mb_json_member("[1]", 3, "id", &r), MB_DECLINED);
    struct mb_json_raw s = {"\"7\"", 3}, neg = {"-1", 2};
    cr_expect_not(mb_json_raw_uint(s, &v));
    cr_expect_not(mb_json_raw_uint(neg, &v));
}

Test(jsonscan, splice_applies_edits_in_any_order)
{
    const char *t = "{\"id\":\"abc\",\"params\":{\"name\":\"x__y\"}}";
    struct mb_json_raw id, name;
    static const char *const nm[] = {"params", "name", NULL};
    cr_assert_eq(mb_json_member(t, strlen(t), "id", &id), 0);
    cr_assert_eq(mb_json_path(t, strlen(t), nm, &name), 0);
    struct mb_json_edit e[2] = {{name.p, name.len, "\"y\"", 3}, {id.p, id.len, "42", 2}};
    struct mb_buf out = {0};
    cr_assert_eq(mb_json_splice(&out, t, strlen(t), e, 2), 0);
    cr_expect_str_eq(mb_buf_cstr(&out), "{\"id\":42,\"params\":{\"name\":\"y\"}}");
    mb_buf_free(&out);
    /* the same as pieces: text, replacement, text, replacement, text */
    struct iovec v[5];
    cr_assert_eq(mb_json_splice_parts(t, strlen(t), e, 2, v), 5);
    char joined[128];
    size_t n = 0;
    for (size_t i = 0; i < 5; i++) {
        memcpy(joined + n, v[i].iov_base, v[i].iov_len);
        n += v[i].iov_len;
    }
    joined[n] = '\0';
    cr_expect_str_eq(joined, "{\"id\":42,\"params\":{\"name\":\"y\"}}");
    /* overlapping edits and edits outside the text are refused */
    struct mb_json_edit bad[2] = {{id.p, id.len + 2, "1", 1}, {id.p + 1, 1, "2", 1}};
    cr_expect_eq(mb_json_splice_parts(t, strlen(t), bad, 2, v), 0);
    struct mb_json_edit outside = {t + strlen(t), 1, "x", 1};
    cr_expect_eq(mb_json_splice_parts(t, strlen(t), &outside, 1, v), 0);
    cr_expect_eq(mb_json_splice(&out, t, strlen(t), bad, 2), MB_ERR);
    cr_expect_eq(out.len, 0);
    mb_buf_free(&out);
}

/* The one-pass lookup must agree with mb_json_member on every member of
 * every valid object, including values with escapes, nested brackets inside
 * strings, numbers and literals at the end of the object, and white space. */
Test(jsonscan, members_agree_with_member)
{
    static const char *const texts[] = {
        "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[{\"type\":\"text\",\"text\":"
        "\"a}]\\\"{[\"}],\"isError\":false}}",
        " { \"error\" : { \"code\" : -32601 , \"message\" : \"x\\\\\" } , \"id\" : \"q\" ,"
        " \"jsonrpc\" : \"2.0\" } ",
        "{\"id\":1e5,\"id\":2,\"method\":null,\"result\":true,\"error\":-0.5E+3}",
        "{\"a\":[[],{},[{\"b\":[1,2,{\"c\":\"]\"}]}]],\"id\":false}",
        "{}",
        "{\"k\\\"ey\":1,\"id\":[\"\\u0041\"]}",
    };
    static const char *const names[] = {"jsonrpc", "id", "method", "result", "error", "a", "nope"};
    enum { N = sizeof(names) / sizeof(names[0]) };
    for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
        size_t len = strlen(texts[t]);
        cr_assert(mb_json_valid(texts[t], len), "test text %zu is valid", t);
        struct mb_json_raw out[N], both[N];
        cr_assert_eq(mb_json_members(texts[t], len, names, N, out), 0);
        /* the validating pass finds exactly the same */
        cr_assert_eq(mb_json_valid_members(texts[t], len, false, names, N, both, NULL), 0);
        for (size_t i = 0; i < N; i++)
            cr_expect(both[i].p == out[i].p && both[i].len == out[i].len,
                      "text %zu member %s: valid_members differs", t, names[i]);
        for (size_t i = 0; i < N; i++) {
            struct mb_json_raw one;
            int rc = mb_json_member(texts[t], len, names[i], &one);
            cr_expect_eq(out[i].p, one.p, "text %zu member %s: same start", t, names[i]);
            cr_expect_eq(out[i].len, one.len, "text %zu member %s: same length", t, names[i]);
            cr_expect_eq(rc == 0, out[i].p != NULL);
        }
    }
    struct mb_json_raw out[2];
    static const char *const two[] = {"id", "x"};
    cr_expect_eq(mb_json_members("[1,2]", 5, two, 2, out), MB_DECLINED, "not an object");
    cr_expect_null(out[0].p);
    cr_expect_eq(mb_json_members("\"s\"", 3, two, 2, out), MB_DECLINED);
    /* Truncated text (a caller's mistake) is declined, never read past. */
    const char *cut = "{\"id\":1,\"x\":\"abc";
    cr_expect_eq(mb_json_members(cut, strlen(cut), two, 2, out), MB_DECLINED);
    cr_expect_null(out[0].p, "nothing half-found is returned");
    const char *esc = "{\"x\":\"ab\\";
    cr_expect_eq(mb_json_members(esc, strlen(esc), two, 2, out), MB_DECLINED);
    /* The first member of a name wins. */
    const char *dup = "{\"id\":1,\"id\":2}";
    cr_assert_eq(mb_json_members(dup, strlen(dup), two, 2, out), 0);
    cr_expect_eq(out[0].len, 1);
    cr_expect_eq(*out[0].p, '1');
    cr_expect_null(out[1].p);
}

Test(jsonscan, path_parsed_agrees_with_path)
{
    const char *t =
        "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"arguments\":"
        "{\"s\":\"}{\\\"\",\"_meta\":1},\"name\":\"b__echo\",\"_meta\":{\"x\":[],"
        "\"progressToken\":\"tok\"}}}";
    static const char *const p1[] = {"params", "name", NULL};
    static const char *const p2[] = {"params", "_meta", "progressToken", NULL};
    static const char *const p3[] = {"params", "arguments", "_meta", NULL};
    static const char *const p4[] = {"params", "nope", NULL};
    static const char *const p5[] = {"id", "x", NULL};
    const char *const *paths[] = {p1, p2, p3, p4, p5};
    size_t len = strlen(t);
    cr_assert(mb_json_valid(t, len));
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct mb_json_raw a, b;
        int ra = mb_json_path(t, len, paths[i], &a);
        int rb = mb_json_path_parsed(t, len, paths[i], &b);
        cr_expect_eq(ra, rb, "path %zu", i);
        cr_expect_eq(a.p, b.p, "path %zu", i);
        cr_expect_eq(a.len, b.len, "path %zu", i);
    }
    struct mb_json_raw r;
    cr_assert_eq(mb_json_path_parsed(t, len, p2, &r), 0);
    cr_expect_eq(r.len, 5);
    cr_expect_eq(memcmp(r.p, "\"tok\"", 5), 0);
    cr_expect_eq(mb_json_path_parsed(t, len, p4, &r), MB_DECLINED);
    cr_expect_null(r.p);
}

/* Valid in plain mode (the object test aside: MB_DECLINED is a valid non-object). */
static bool plain_ok(const char *t)
{
    struct mb_json_raw out[1];
    static const char *const one[] = {"a"};
    return mb_json_valid_members(t, strlen(t), true, one, 1, out, NULL) != MB_ERR;
}

Test(jsonscan, valid_plain_is_valid_without_unicode_escapes_or_long_numbers)
{
    static const char *const yes[] = {
        "{\"a\":\"x\\n\\\"\\/\"}", "[1,-2.5e3,true,null]",
        "123456789012345678901234567890123456789012345678901234567890123"};
    static const char *const no[] = {
        "{\"a\":\"\\u0041\"}", "{\"\\u0061\":1}",
        "1234567890123456789012345678901234567890123456789012345678901234", "{\"a\":01}",
        "{\"a\":\"\x01\"}"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        cr_expect(plain_ok(yes[i]), "%s", yes[i]);
        cr_expect(mb_json_valid(yes[i], strlen(yes[i])), "%s", yes[i]);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        cr_expect(!plain_ok(no[i]), "%s", no[i]);
    /* the first two and the long number are still JSON */
    for (size_t i = 0; i < 3; i++)
        cr_expect(mb_json_valid(no[i], strlen(no[i])), "%s", no[i]);
}

Test(jsonscan, valid_members_is_valid_then_members)
{
    static const char *const two[] = {"id", "x"};
    struct mb_json_raw out[2];
    static const char *const bad[] = {
        "{\"id\":1",        "{\"id\":01}", "{\"id\":1} x", "{\"id\":1,}",
        "{\"id\" 1}",       "{id:1}",      "[1,]",         "",
        "{\"id\":\"\x01\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_expect_eq(mb_json_valid_members(bad[i], strlen(bad[i]), false, two, 2, out, NULL),
                     MB_ERR, "%s", bad[i]);
        cr_expect(!mb_json_valid(bad[i], strlen(bad[i])), "%s", bad[i]);
        cr_expect_null(out[0].p);
    }
    static const char *const other[] = {"[1,{\"id\":2}]", "\"s\"", " 12 ", "null"};
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
        cr_expect_eq(mb_json_valid_members(other[i], strlen(other[i]), false, two, 2, out, NULL),
                     MB_DECLINED, "%s", other[i]);
    /* plain: \u escapes anywhere make it invalid for this pass */
    const char *u = "{\"id\":1,\"x\":{\"y\":\"\\u0041\"}}";
    cr_expect_eq(mb_json_valid_members(u, strlen(u), false, two, 2, out, NULL), 0);
    cr_expect_eq(mb_json_valid_members(u, strlen(u), true, two, 2, out, NULL), MB_ERR);
    /* unterminated deep nesting */
    char deep[300];
    memset(deep, '[', 200);
    deep[0] = '{';
    memcpy(deep + 1, "\"id\":", 5);
    memset(deep + 6, '[', 194);
    cr_expect_eq(mb_json_valid_members(deep, 200, false, two, 2, out, NULL), MB_ERR);
}

/* Strings are scanned eight bytes at a time: a quote, backslash or control
 * character must be seen at every position of a word, after UTF-8 bytes. */
Test(jsonscan, string_specials_at_every_offset)
{
    for (size_t at = 0; at < 24; at++) {
        char t[64];
        size_t n = 0;
        t[n++] = '"';
        for (size_t i = 0; i < 26; i++)
            t[n++] = i % 3 == 0 ? (char)0xc3 : i % 3 == 1 ? (char)0xa9 : 'x';
        t[n++] = '"';
        size_t len = n;
        char *body = t + 1 + at;
        body[0] = '\x1f';
        cr_expect(!mb_json_valid(t, len), "control at %zu", at);
        body[0] = '"'; /* ends the string early: the rest is garbage */
        cr_expect(!mb_json_valid(t, len), "quote at %zu", at);
        body[0] = '\\';
        body[1] = 'n';
        cr_expect(mb_json_valid(t, len), "escape at %zu", at);
        body[1] = 'x';
        cr_expect(!mb_json_valid(t, len), "bad escape at %zu", at);
        body[1] = '"';
        cr_expect(mb_json_valid(t, len), "escaped quote at %zu", at);
        body[0] = 0x7f; /* DEL and high bytes are ordinary */
        body[1] = (char)0x80;
        cr_expect(mb_json_valid(t, len), "DEL at %zu", at);
    }
}

/* The nested walk finds in params what mb_json_members finds there, and
 * takes the first params only when it is an object. */
Test(jsonscan, valid_members_nested_equals_members_of_the_value)
{
    static const char *const top[] = {"id", "params"};
    static const char *const inner[] = {"name", "_meta", "arguments"};
    static const char *const texts[] = {
        "{\"id\":1,\"params\":{\"name\":\"e\",\"arguments\":{\"name\":2},\"name\":\"dup\"}}",
        "{\"params\":{},\"id\":1}",
        "{\"params\":[{\"name\":1}],\"id\":1}",
        "{\"params\":{\"_meta\":{\"progressToken\":3}},\"params\":{\"name\":\"second\"}}",
        " { \"params\" : { \"name\" : \"s p\" } } ",
    };
    for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
        struct mb_json_raw out[2], in[3], want[3];
        struct mb_json_nest nest = {1, inner, 3, in, false};
        size_t len = strlen(texts[t]);
        cr_assert_eq(mb_json_valid_members(texts[t], len, false, top, 2, out, &nest), 0, "%zu", t);
        bool object = out[1].p != NULL && out[1].p[0] == '{';
        cr_expect_eq(nest.found, object, "text %zu", t);
        if (!object)
            continue;
        cr_assert_eq(mb_json_members(out[1].p, out[1].len, inner, 3, want), 0);
        for (size_t i = 0; i < 3; i++)
            cr_expect(in[i].p == want[i].p && in[i].len == want[i].len, "text %zu member %s", t,
                      inner[i]);
    }
    /* invalid inside the nested object: the whole text is invalid */
    const char *bad = "{\"params\":{\"name\":01}}";
    struct mb_json_raw out[2], in[3];
    struct mb_json_nest nest = {1, inner, 3, in, false};
    cr_expect_eq(mb_json_valid_members(bad, strlen(bad), false, top, 2, out, &nest), MB_ERR);
    cr_expect(!nest.found);
}
