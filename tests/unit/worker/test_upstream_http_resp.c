/*
 * tests/unit/worker/test_upstream_http_resp.c — the HTTP response reader and
 * SSE parser of the Streamable HTTP upstream: framing by Content-Length,
 * chunked and end of connection, every byte split, 1xx skipped, headers the
 * transport needs, SSE line endings, multi-line data, comments, other event
 * types, limits, and what belongs to the next response.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "common/errors.h"
#include "worker/upstream_http_resp.h"

struct got {
    int headers;
    int nevents;
    char events[8][256];
    int nbodies;
    char body[1024];
};

static void on_headers(void *arg)
{
    ((struct got *)arg)->headers++;
}

static void on_event(void *arg, const char *d, size_t n)
{
    struct got *g = arg;
    cr_assert_lt(g->nevents, 8);
    cr_assert_lt(n, sizeof(g->events[0]));
    memcpy(g->events[g->nevents], d, n);
    g->events[g->nevents][n] = '\0';
    g->nevents++;
}

static void on_body(void *arg, const char *d, size_t n)
{
    struct got *g = arg;
    cr_assert_lt(n, sizeof(g->body));
    memcpy(g->body, d, n);
    g->body[n] = '\0';
    g->nbodies++;
}

static const struct mb_http_resp_cb cb = {on_headers, on_event, on_body};

/* Feeds text in pieces of step bytes; returns the last status and the bytes used. */
static int feed(struct mb_http_resp *r, const char *text, size_t step, struct got *g, size_t *total)
{
    size_t n = strlen(text), off = 0;
    int rc = MB_AGAIN;

    *total = 0;
    while (off < n) {
        size_t k = n - off < step ? n - off : step, used = 0;
        rc = mb_http_resp_feed(r, text + off, k, &used, &cb, g);
        *total += used;
        if (rc != MB_AGAIN)
            return rc;
        cr_assert_eq(used, k);
        off += k;
    }
    return rc;
}

static const char *json_resp = "HTTP/1.1 200 OK\r\n"
                               "Content-Type: application/json\r\n"
                               "Mcp-Session-Id: abc-123\r\n"
                               "Content-Length: 28\r\n"
                               "\r\n"
                               "{\"jsonrpc\":\"2.0\",\"id\":1,\"r\"}";

Test(http_resp, json_by_length_every_split)
{
    for (size_t step = 1; step <= strlen(json_resp); step++) {
        struct mb_http_resp r;
        struct got g = {0};
        size_t used;
        mb_http_resp_init(&r, 1 << 20);
        cr_assert_eq(feed(&r, json_resp, step, &g, &used), MB_OK, "step %zu: %s", step, r.error);
        cr_expect_eq(used, strlen(json_resp));
        cr_expect_eq(r.status, 200);
        cr_expect(r.json);
        cr_expect_not(r.sse);
        cr_expect(r.keep_alive);
        cr_expect(r.has_session);
        cr_expect_str_eq(r.session_id, "abc-123");
        cr_expect_eq(g.headers, 1);
        cr_expect_eq(g.nbodies, 1);
        cr_expect_str_eq(g.body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"r\"}");
        mb_http_resp_free(&r);
    }
}

Test(http_resp, leaves_the_next_response_alone)
{
    char two[1024];
    struct mb_http_resp r;
    struct got g = {0};
    size_t used = 0;

    snprintf(two, sizeof(two), "%sHTTP/1.1 202 Accepted\r\n\r\n", json_resp);
    mb_http_resp_init(&r, 1 << 20);
    cr_assert_eq(mb_http_resp_feed(&r, two, strlen(two), &used, &cb, &g), MB_OK);
    cr_expect_eq(used, strlen(json_resp));
    mb_http_resp_reset(&r);
    cr_expect_not(r.has_session);
    /* 202 without Content-Length and without a body: HTTP says the body runs to
     * the end of the connection, so it completes at EOF and is not reusable. */
    cr_assert_eq(mb_http_resp_feed(&r, two + used, strlen(two) - used, &used, &cb, &g), MB_AGAIN);
    cr_expect_eq(r.status, 202);
    cr_expect_not(r.keep_alive);
    cr_expect_eq(mb_http_resp_eof(&r, &cb, &g), MB_OK);
    cr_expect_eq(g.nbodies, 2);
    mb_http_resp_free(&r);
}

Test(http_resp, chunked_with_extensions_and_trailers)
{
    const char *t = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                    "Content-Type: application/json; charset=utf-8\r\n\r\n"
                    "5;x=y\r\nhello\r\n"
                    "7\r\n, world\r\n"
                    "0\r\nX-Trailer: 1\r\n\r\n";
    for (size_t step = 1; step <= strlen(t); step++) {
        struct mb_http_resp r;
        struct got g = {0};
        size_t used;
        mb_http_resp_init(&r, 1 << 20);
        cr_assert_eq(feed(&r, t, step, &g, &used), MB_OK, "step %zu: %s", step, r.error);
        cr_expect_eq(used, strlen(t));
        cr_expect(r.json);
        cr_expect_str_eq(g.body, "hello, world");
        mb_http_resp_free(&r);
    }
}

Test(http_resp, sse_events_as_they_come)
{
    const char *t = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    "Connection: close\r\n\r\n"
                    ": a comment\n"
                    "event: message\r\n"
                    "data: {\"a\":1}\r\n\r\n"
                    "data:{\"b\":\r"
                    "data: 2}\r\r"
                    "event: other\ndata: dropped\n\n"
                    "id: 7\nretry: 10\ndata: last\n\n"
                    "data: unterminated";
    for (size_t step = 1; step <= strlen(t); step++) {
        struct mb_http_resp r;
        struct got g = {0};
        size_t used;
        mb_http_resp_init(&r, 1 << 20);
        cr_assert_eq(feed(&r, t, step, &g, &used), MB_AGAIN, "step %zu: %s", step, r.error);
        cr_expect(r.sse);
        cr_expect_not(r.keep_alive);
        cr_assert_eq(g.nevents, 3, "step %zu: %d events", step, g.nevents);
        cr_expect_str_eq(g.events[0], "{\"a\":1}");
        cr_expect_str_eq(g.events[1], "{\"b\":\n2}");
        cr_expect_str_eq(g.events[2], "last");
        cr_expect_eq(mb_http_resp_eof(&r, &cb, &g), MB_OK);
        cr_expect_eq(g.nevents, 3);
        cr_expect_eq(g.nbodies, 0);
        mb_http_resp_free(&r);
    }
}

Test(http_resp, sse_crlf_split_between_reads)
{
    struct mb_http_resp r;
    struct got g = {0};
    size_t used;
    const char *h = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n";

    mb_http_resp_init(&r, 1 << 20);
    cr_assert_eq(mb_http_resp_feed(&r, h, strlen(h), &used, &cb, &g), MB_AGAIN);
    /* "data: x\r" | "\n\r" | "\n" : CR LF CR LF across chunk boundaries */
    const char *c = "8\r\ndata: x\r\r\n2\r\n\n\r\r\n1\r\n\n\r\n0\r\n\r\n";
    cr_assert_eq(mb_http_resp_feed(&r, c, strlen(c), &used, &cb, &g), MB_OK, "%s", r.error);
    cr_expect_eq(g.nevents, 1);
    cr_expect_str_eq(g.events[0], "x");
    mb_http_resp_free(&r);
}

Test(http_resp, interim_100_is_skipped)
{
    const char *t = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n"
                    "\r\nno!";
    struct mb_http_resp r;
    struct got g = {0};
    size_t used;

    mb_http_resp_init(&r, 1 << 20);
    cr_assert_eq(feed(&r, t, 5, &g, &used), MB_OK, "%s", r.error);
    cr_expect_eq(r.status, 404);
    cr_expect_eq(g.headers, 1);
    cr_expect_str_eq(g.body, "no!");
    mb_http_resp_free(&r);
}

Test(http_resp, http10_closes_and_body_runs_to_eof)
{
    const char *t = "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"x\":1}";
    struct mb_http_resp r;
    struct got g = {0};
    size_t used;

    mb_http_resp_init(&r, 1 << 20);
    cr_assert_eq(feed(&r, t, 3, &g, &used), MB_AGAIN);
    cr_expect_not(r.keep_alive);
    cr_assert_eq(mb_http_resp_eof(&r, &cb, &g), MB_OK);
    cr_expect_str_eq(g.body, "{\"x\":1}");
    mb_http_resp_free(&r);
}

Test(http_resp, errors)
{
    static const char *const bad[] = {
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "garbage\r\n\r\n",
        "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\naXX\r\n",
        "HTTP/1.1 200 OK\r\nMcp-Session-Id: a b\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", /* over max_body 64 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct mb_http_resp r;
        struct got g = {0};
        size_t used;
        mb_http_resp_init(&r, 64);
        cr_expect_eq(mb_http_resp_feed(&r, bad[i], strlen(bad[i]), &used, &cb, &g), MB_ERR,
                     "accepted: %s", bad[i]);
        cr_expect_neq(r.error[0], '\0');
        mb_http_resp_free(&r);
    }
}

Test(http_resp, eof_before_the_end_is_an_error)
{
    struct mb_http_resp r;
    struct got g = {0};
    size_t used;

    mb_http_resp_init(&r, 1 << 20);
    cr_assert_eq(mb_http_resp_feed(&r, "HTTP/1.1 200 OK\r\nContent-", 26, &used, &cb, &g),
                 MB_AGAIN);
    cr_expect_eq(mb_http_resp_eof(&r, &cb, &g), MB_ERR);
    cr_expect(strstr(r.error, "before the response headers") != NULL, "%s", r.error);
    mb_http_resp_reset(&r);
    const char *t = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
    cr_assert_eq(mb_http_resp_feed(&r, t, strlen(t), &used, &cb, &g), MB_AGAIN);
    cr_expect_eq(mb_http_resp_eof(&r, &cb, &g), MB_ERR);
    cr_expect(strstr(r.error, "middle of the body") != NULL, "%s", r.error);
    cr_expect_eq(g.nbodies, 0);
    mb_http_resp_free(&r);
}

Test(http_resp, headers_over_64k_rejected)
{
    struct mb_http_resp r;
    struct got g = {0};
    size_t used;
    static char big[70 * 1024];
    int rc = MB_AGAIN;

    memset(big, 'a', sizeof(big));
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
    mb_http_resp_init(&r, 1 << 20);
    for (size_t off = 0; off < sizeof(big) && rc == MB_AGAIN; off += 4096)
        rc = mb_http_resp_feed(&r, big + off, 4096, &used, &cb, &g);
    cr_expect_eq(rc, MB_ERR);
    mb_http_resp_free(&r);
}

Test(http_resp, reset_clears_everything_of_the_last_response)
{
    struct mb_http_resp r;
    struct got g = {0};
    size_t used = 0;
    const char *sse = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                      "Mcp-Session-Id: s-1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\ndata:";
    const char *bad = "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n";

    mb_http_resp_init(&r, 1 << 20);
    /* Stopped in the middle of a chunk of an event stream. */
    cr_assert_eq(mb_http_resp_feed(&r, sse, strlen(sse), &used, &cb, &g), MB_AGAIN);
    cr_assert(r.sse && r.chunked && r.has_session && r.body_bytes > 0);
    mb_http_resp_reset(&r);
    cr_expect_eq(r.state, 0);
    cr_expect_not(r.sse || r.chunked || r.has_session || r.headers_done || r.sse_have_data);
    cr_expect_eq(r.body_bytes, 0);
    cr_expect_eq(r.remaining, 0);
    cr_expect_str_eq(r.session_id, "");
    cr_expect_eq(r.max_body, 1 << 20);
    /* An error, then a good response on the same reader. */
    cr_assert_eq(mb_http_resp_feed(&r, bad, strlen(bad), &used, &cb, &g), MB_ERR);
    cr_assert_neq(r.error[0], '\0');
    mb_http_resp_reset(&r);
    cr_expect_str_eq(r.error, "");
    cr_assert_eq(mb_http_resp_feed(&r, json_resp, strlen(json_resp), &used, &cb, &g), MB_OK);
    cr_expect_str_eq(g.body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"r\"}");
    cr_expect_str_eq(r.session_id, "abc-123");
    cr_expect_eq(r.body_bytes, 28);
    mb_http_resp_free(&r);
}
