/*
 * tests/unit/load/test_http.c — the load generator's Streamable HTTP client
 * side (tests/load/http.c): response heads, chunked bodies, event streams, and
 * the request it writes.
 */
#include "tests/load/http.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long head(const char *s, struct mb_load_http_resp *r)
{
    return mb_load_http_parse_head(s, strlen(s), r);
}

Test(http, head_of_a_json_response)
{
    struct mb_load_http_resp r;
    const char *s = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length:  42 \r\n"
                    "MCP-SESSION-ID: abc-123\r\n\r\n{...";
    long n = head(s, &r);
    cr_assert_eq(n, (long)(strstr(s, "{...") - s));
    cr_expect_eq(r.status, 200);
    cr_expect_eq(r.content_length, 42);
    cr_expect_not(r.chunked);
    cr_expect_not(r.close);
    cr_expect_not(r.sse);
    cr_expect(r.has_session);
    cr_expect_str_eq(r.session_id, "abc-123");
}

Test(http, head_of_an_event_stream_and_connection_rules)
{
    struct mb_load_http_resp r;
    cr_assert_gt(head("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
                      "Transfer-Encoding: gzip, chunked\r\nContent-Length: 10\r\n"
                      "Connection: keep-alive, close\r\n\r\n",
                      &r),
                 0);
    cr_expect(r.sse);
    cr_expect(r.chunked);
    cr_expect_eq(r.content_length, -1, "chunked wins over Content-Length");
    cr_expect(r.close);
    cr_assert_gt(head("HTTP/1.0 202 Accepted\r\nContent-Length: 0\r\n\r\n", &r), 0);
    cr_expect_eq(r.status, 202);
    cr_expect(r.close, "HTTP/1.0 closes unless it says keep-alive");
    cr_assert_gt(head("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n", &r), 0);
    cr_expect_not(r.close);
    cr_assert_gt(head("HTTP/1.1 404 Not Found\n\n", &r), 0, "bare LF lines");
    cr_expect_eq(r.status, 404);
    cr_expect(mb_load_http_bodyless(204));
    cr_expect(mb_load_http_bodyless(304));
    cr_expect(mb_load_http_bodyless(100));
    cr_expect_not(mb_load_http_bodyless(202));
}

Test(http, incomplete_head_needs_more_and_every_prefix_is_incomplete)
{
    struct mb_load_http_resp r;
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
    size_t len = strlen(s);
    for (size_t i = 0; i < len; i++)
        cr_expect_eq(mb_load_http_parse_head(s, i, &r), 0, "prefix of %zu bytes", i);
    cr_expect_eq(mb_load_http_parse_head(s, len, &r), (long)len);
}

Test(http, malformed_heads_are_rejected)
{
    struct mb_load_http_resp r;
    const char *bad[] = {
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 abc OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "SSH-2.0-OpenSSH\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(head(bad[i], &r), -1, "accepted: %s", bad[i]);
    char *huge = malloc(70000);
    cr_assert_not_null(huge);
    memset(huge, 'a', 70000);
    memcpy(huge, "HTTP/1.1 200 OK\r\nX: ", 20);
    cr_expect_eq(mb_load_http_parse_head(huge, 70000, &r), -1, "an endless head is an error");
    free(huge);
}

Test(http, dechunks_in_place_and_waits_for_the_end)
{
    const char enc[] = "5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
    size_t total = strlen(enc) - 4;
    char buf[128];
    size_t out;
    /* every cut short of the end: incomplete, and the buffer is not touched */
    for (size_t cut = 0; cut < total; cut++) {
        memcpy(buf, enc, sizeof(enc));
        cr_expect_eq(mb_load_http_dechunk(buf, cut, &out), 0, "cut at %zu", cut);
        cr_expect_eq(memcmp(buf, enc, sizeof(enc)), 0, "modified at cut %zu", cut);
    }
    memcpy(buf, enc, sizeof(enc));
    cr_assert_eq(mb_load_http_dechunk(buf, strlen(enc), &out), (long)total);
    cr_expect_eq(out, 12);
    cr_expect_eq(memcmp(buf, "hello, world", 12), 0);
    char lf[] = "3\nabc\n0\n\n";
    cr_assert_eq(mb_load_http_dechunk(lf, strlen(lf), &out), (long)strlen(lf));
    cr_expect_eq(out, 3);
    cr_expect_eq(memcmp(lf, "abc", 3), 0);
}

Test(http, malformed_chunks_are_rejected)
{
    const char *bad[] = {"zz\r\nab\r\n0\r\n\r\n", "2\r\nabX\r\n0\r\n\r\n", "1234567890abcdef0\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char buf[64];
        size_t out;
        snprintf(buf, sizeof(buf), "%s", bad[i]);
        cr_expect_eq(mb_load_http_dechunk(buf, strlen(buf), &out), -1, "accepted: %s", bad[i]);
    }
}

Test(http, event_stream_yields_each_events_data)
{
    const char *s = ": comment\r\n\r\nevent: message\r\nid: 1\r\ndata: {\"a\":1}\r\n\r\n"
                    "event: ping\n\n"
                    "data:{\"b\":\ndata: 2}\n\n"
                    "data: unterminated";
    size_t pos = 0, dl;
    char data[64];
    size_t len = strlen(s);
    cr_assert_eq(mb_load_sse_next(s, len, &pos, data, sizeof(data), &dl), 1);
    cr_expect_eq(dl, 7);
    cr_expect_eq(memcmp(data, "{\"a\":1}", 7), 0);
    cr_assert_eq(mb_load_sse_next(s, len, &pos, data, sizeof(data), &dl), 1,
                 "an event without data is skipped");
    cr_expect_eq(dl, 8);
    cr_expect_eq(memcmp(data, "{\"b\":\n2}", 8), 0, "data lines join with a newline");
    cr_expect_eq(mb_load_sse_next(s, len, &pos, data, sizeof(data), &dl), 0,
                 "an unterminated event is not delivered");
    cr_expect_eq(mb_load_sse_next(s, len, &pos, data, sizeof(data), &dl), 0);
}

Test(http, event_stream_data_over_the_buffer_is_an_error)
{
    const char *s = "data: 0123456789\n\n";
    size_t pos = 0, dl;
    char data[8];
    cr_expect_eq(mb_load_sse_next(s, strlen(s), &pos, data, sizeof(data), &dl), -1);
}

Test(http, writes_a_streamable_http_post)
{
    char out[1024];
    const char *body = "{\"jsonrpc\":\"2.0\",\"method\":\"tools/list\",\"id\":1}";
    long n = mb_load_http_request(out, sizeof(out), "/mcp", "127.0.0.1:8080", "s-1", "2025-06-18",
                                  "Authorization: Bearer t\r\n", body, strlen(body));
    cr_assert_gt(n, 0);
    out[n] = '\0';
    cr_expect(strncmp(out, "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n", 42) == 0, "%s", out);
    cr_expect_not_null(strstr(out, "\r\nContent-Type: application/json\r\n"));
    cr_expect_not_null(strstr(out, "\r\nAccept: application/json, text/event-stream\r\n"));
    cr_expect_not_null(strstr(out, "\r\nContent-Length: 46\r\n"));
    cr_expect_not_null(strstr(out, "\r\nMcp-Session-Id: s-1\r\n"));
    cr_expect_not_null(strstr(out, "\r\nMCP-Protocol-Version: 2025-06-18\r\n"));
    cr_expect_not_null(strstr(out, "\r\nAuthorization: Bearer t\r\n\r\n{\"jsonrpc\""));
    cr_expect_eq(strcmp(out + n - strlen(body), body), 0);
    n = mb_load_http_request(out, sizeof(out), "/", "h", NULL, NULL, "", body, strlen(body));
    out[n] = '\0';
    cr_expect_null(strstr(out, "Mcp-Session-Id"), "no session header without a session");
    cr_expect_eq(mb_load_http_request(out, 60, "/", "h", NULL, NULL, "", body, strlen(body)), -1);
}
