/*
 * tests/unit/load/test_reply.c — recognising JSON-RPC replies and matching
 * them to the requests in flight (tests/load/reply.c).
 */
#include "tests/load/reply.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static int parse(const char *s, struct mb_load_reply *r)
{
    return mb_load_reply_parse(s, strlen(s), r);
}

Test(reply, reads_id_result_error_and_method)
{
    struct mb_load_reply r;
    cr_assert_eq(parse("{\"jsonrpc\":\"2.0\",\"id\":42,\"result\":{\"tools\":[]}}", &r), 0);
    cr_expect_eq(r.id_kind, MB_LOAD_ID_INT);
    cr_expect_eq(r.id, 42);
    cr_expect(r.has_result);
    cr_expect_not(r.has_error);

    cr_assert_eq(parse(" { \"error\" : {\"message\":\"x\",\"code\" : -32601} , \"id\" : 7 } ", &r),
                 0);
    cr_expect(r.has_error);
    cr_expect(r.has_code);
    cr_expect_eq(r.error_code, -32601);
    cr_expect_eq(r.id, 7);

    cr_assert_eq(
        parse("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}", &r), 0);
    cr_expect(r.has_method);
    cr_expect_eq(r.id_kind, MB_LOAD_ID_NONE);

    cr_assert_eq(parse("{\"id\":\"abc\",\"result\":1}", &r), 0);
    cr_expect_eq(r.id_kind, MB_LOAD_ID_OTHER);
    cr_assert_eq(parse("{\"id\":null,\"error\":{\"code\":-32700}}", &r), 0);
    cr_expect_eq(r.id_kind, MB_LOAD_ID_NULL);
    cr_assert_eq(parse("{\"id\":1.5,\"result\":1}", &r), 0);
    cr_expect_eq(r.id_kind, MB_LOAD_ID_OTHER);
    cr_assert_eq(parse("{\"id\":99999999999999999999,\"result\":1}", &r), 0);
    cr_expect_eq(r.id_kind, MB_LOAD_ID_OTHER, "an id past int64 is not an int");
    cr_assert_eq(parse("{\"id\":9223372036854775807,\"result\":1}", &r), 0);
    cr_expect_eq(r.id_kind, MB_LOAD_ID_INT);
    cr_expect_eq(r.id, INT64_MAX);
}

Test(reply, nested_values_are_skipped_whatever_they_contain)
{
    struct mb_load_reply r;
    /* brackets, quotes and "id" keys inside strings and nested objects must
     * not be taken for the top-level ones */
    const char *s =
        "{\"result\":{\"id\":5,\"text\":\"a \\\"quoted\\\" }] {[ \\\\\",\"arr\":[1,[2,{\"x\""
        ":\"y\"}],true,false,null,-1.5e3]},\"jsonrpc\":\"2.0\",\"id\":3}";
    cr_assert_eq(parse(s, &r), 0);
    cr_expect_eq(r.id, 3);
    cr_expect(r.has_result);
}

/* The container skip looks at sixteen bytes at a time: escapes, quotes and
 * brackets must be seen right wherever a block boundary falls. */
Test(reply, skipping_is_right_at_every_block_boundary)
{
    struct mb_load_reply r;
    char buf[1024];
    for (int pad = 0; pad < 140; pad++) {
        char fill[160];
        memset(fill, 'a', (size_t)pad);
        fill[pad] = '\0';
        snprintf(buf, sizeof(buf),
                 "{\"result\":{\"t\":\"%s\\\\\\\"}]\\\\\",\"u\":[{\"%s\":\"\\\\\\\"}\"}],\"id\":7},"
                 "\"id\":%d}",
                 fill, fill, pad);
        cr_assert_eq(parse(buf, &r), 0, "pad %d: %s", pad, buf);
        cr_expect_eq(r.id, pad, "pad %d: the nested id was taken", pad);
        cr_expect(r.has_result);
        /* the same text cut anywhere inside the result is not a reply */
        size_t n = strlen(buf);
        for (size_t cut = 12; cut < n - 8; cut += 7)
            cr_expect_neq(mb_load_reply_parse(buf, cut, &r), 0, "pad %d cut %zu accepted", pad,
                          cut);
        /* brackets inside strings, no escapes anywhere near */
        snprintf(buf, sizeof(buf),
                 "{\"result\":{\"t\":\"%s}]{[\",\"%s\":[\"]\",{\"}\":\"[\"}],\"id\":7},\"id\":%d}",
                 fill, fill, pad);
        cr_assert_eq(parse(buf, &r), 0, "pad %d: %s", pad, buf);
        cr_expect_eq(r.id, pad, "pad %d: %s", pad, buf);
        n = strlen(buf);
        for (size_t cut = 12; cut < n - 8; cut += 5)
            cr_expect_neq(mb_load_reply_parse(buf, cut, &r), 0, "pad %d cut %zu accepted", pad,
                          cut);
        snprintf(buf, sizeof(buf), "{\"result\":{\"t\":\"%s]\"]},\"id\":1}", fill);
        cr_expect_neq(parse(buf, &r), 0, "pad %d: %s accepted", pad, buf);
        /* an unpaired bracket after the escapes is still caught */
        snprintf(buf, sizeof(buf), "{\"result\":{\"t\":\"%s\\\\\\\"\"]},\"id\":1}", fill);
        cr_expect_neq(parse(buf, &r), 0, "pad %d: %s accepted", pad, buf);
    }
}

Test(reply, rejects_what_is_not_one_json_object)
{
    struct mb_load_reply r;
    const char *bad[] = {
        "",
        "[]",
        "{\"id\":1,\"result\":{}",       /* truncated */
        "{\"id\":1,\"result\":{}} x",    /* trailing junk */
        "{\"id\":1,\"result\":{]}",      /* mismatched brackets */
        "{\"id\":1 \"result\":2}",       /* missing comma */
        "{\"id\":1,\"result\":\"abc}",   /* unterminated string */
        "{id:1}",                        /* unquoted key */
        "{\"id\":1,\"result\":tru}",     /* bad literal */
        "{\"id\":1,\"result\":\"x\\\"}", /* escaped closing quote */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(parse(bad[i], &r), -1, "accepted: %s", bad[i]);
}

static void add(struct mb_load_inflight *f, int64_t id, int kind)
{
    struct mb_load_pending p = {
        .id = id, .intended_ns = (uint64_t)id * 10, .sent_ns = (uint64_t)id * 10 + 1, .kind = kind};
    cr_assert_eq(mb_load_inflight_add(f, &p), 0);
}

static int match(struct mb_load_inflight *f, const char *s, struct mb_load_pending *p,
                 int64_t *code)
{
    return mb_load_reply_match(f, s, strlen(s), p, code);
}

Test(reply, matches_by_id_in_any_order)
{
    struct mb_load_inflight f;
    struct mb_load_pending p;
    int64_t code = 0;
    cr_assert_eq(mb_load_inflight_init(&f, 4), 0);
    add(&f, 1, MB_LOAD_REQ_CALL);
    add(&f, 2, MB_LOAD_REQ_CALL);
    add(&f, 3, MB_LOAD_REQ_CALL);
    cr_expect_eq(mb_load_inflight_oldest_sent(&f), 11);
    cr_expect_eq(match(&f, "{\"id\":2,\"result\":{}}", &p, &code), MB_LOAD_MATCH_OK);
    cr_expect_eq(p.id, 2);
    cr_expect_eq(p.intended_ns, 20);
    cr_expect_eq(f.n, 2);
    cr_expect_eq(match(&f, "{\"id\":3,\"error\":{\"code\":-32000,\"message\":\"m\"}}", &p, &code),
                 MB_LOAD_MATCH_ERROR);
    cr_expect_eq(p.id, 3);
    cr_expect_eq(code, -32000);
    cr_expect_eq(match(&f, "{\"id\":1,\"result\":null}", &p, &code), MB_LOAD_MATCH_OK);
    cr_expect_eq(f.n, 0);
    cr_expect_eq(mb_load_inflight_oldest_sent(&f), 0);
    mb_load_inflight_free(&f);
}

Test(reply, wrong_or_missing_id_is_a_bad_id_and_takes_the_oldest)
{
    struct mb_load_inflight f;
    struct mb_load_pending p;
    int64_t code = 0;
    cr_assert_eq(mb_load_inflight_init(&f, 4), 0);
    add(&f, 5, MB_LOAD_REQ_CALL);
    add(&f, 6, MB_LOAD_REQ_CALL);
    cr_expect_eq(match(&f, "{\"id\":77,\"result\":{}}", &p, &code), MB_LOAD_MATCH_BAD_ID);
    cr_expect_eq(p.id, 5, "the oldest request is presumed answered");
    cr_expect_eq(match(&f, "{\"result\":{}}", &p, &code), MB_LOAD_MATCH_BAD_ID);
    cr_expect_eq(p.id, 6);
    cr_expect_eq(match(&f, "{\"id\":\"6\",\"result\":{}}", &p, &code), MB_LOAD_MATCH_BAD_ID);
    cr_expect_eq(p.kind, -1, "nothing in flight");
    /* a reply to an id already answered is a bad id too */
    add(&f, 8, MB_LOAD_REQ_CALL);
    cr_expect_eq(match(&f, "{\"id\":8,\"result\":1}", &p, &code), MB_LOAD_MATCH_OK);
    cr_expect_eq(match(&f, "{\"id\":8,\"result\":1}", &p, &code), MB_LOAD_MATCH_BAD_ID);
    mb_load_inflight_free(&f);
}

Test(reply, null_id_error_goes_to_the_oldest_request_with_its_code)
{
    struct mb_load_inflight f;
    struct mb_load_pending p;
    int64_t code = 0;
    cr_assert_eq(mb_load_inflight_init(&f, 4), 0);
    add(&f, -1, MB_LOAD_REQ_NOTIFY); /* notifications get no reply: skipped */
    add(&f, 9, MB_LOAD_REQ_CALL);
    cr_expect_eq(
        match(&f, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700}}", &p, &code),
        MB_LOAD_MATCH_ERROR);
    cr_expect_eq(p.id, 9);
    cr_expect_eq(code, -32700);
    cr_expect_eq(f.n, 1);
    cr_expect_eq(f.e[0].kind, MB_LOAD_REQ_NOTIFY);
    mb_load_inflight_free(&f);
}

Test(reply, server_messages_and_garbage_take_nothing)
{
    struct mb_load_inflight f;
    struct mb_load_pending p;
    int64_t code = 0;
    cr_assert_eq(mb_load_inflight_init(&f, 4), 0);
    add(&f, 1, MB_LOAD_REQ_CALL);
    cr_expect_eq(match(&f, "{\"method\":\"notifications/message\",\"params\":{}}", &p, &code),
                 MB_LOAD_MATCH_SERVER);
    cr_expect_eq(match(&f, "{\"id\":1,\"method\":\"roots/list\"}", &p, &code), MB_LOAD_MATCH_SERVER,
                 "a server request with the same id is not a reply");
    cr_expect_eq(match(&f, "{\"id\":1}", &p, &code), MB_LOAD_MATCH_INVALID);
    cr_expect_eq(match(&f, "{\"id\":1,\"result\":1,\"error\":{}}", &p, &code),
                 MB_LOAD_MATCH_INVALID);
    cr_expect_eq(match(&f, "not json", &p, &code), MB_LOAD_MATCH_INVALID);
    cr_expect_eq(f.n, 1);
    mb_load_inflight_free(&f);
}

Test(reply, table_is_bounded_and_ordered)
{
    struct mb_load_inflight f;
    struct mb_load_pending p;
    cr_assert_eq(mb_load_inflight_init(&f, 2), 0);
    add(&f, 1, MB_LOAD_REQ_INIT);
    add(&f, 2, MB_LOAD_REQ_CALL);
    struct mb_load_pending extra = {.id = 3};
    cr_expect_eq(mb_load_inflight_add(&f, &extra), -1);
    cr_expect_eq(mb_load_inflight_count(&f, MB_LOAD_REQ_CALL), 1);
    cr_expect_eq(mb_load_inflight_count(&f, MB_LOAD_REQ_INIT), 1);
    cr_expect_eq(mb_load_inflight_take_oldest(&f, &p), 0);
    cr_expect_eq(p.id, 1);
    cr_expect_eq(mb_load_inflight_take(&f, 1, &p), -1);
    cr_expect_eq(mb_load_inflight_take(&f, 2, &p), 0);
    cr_expect_eq(mb_load_inflight_take_oldest(&f, &p), -1);
    mb_load_inflight_free(&f);
}
