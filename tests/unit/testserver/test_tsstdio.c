/*
 * tests/unit/testserver/test_tsstdio.c — the stdio transport over pipes:
 * line splitting, the end of input, and that pending requests are answered
 * before on_done fires.
 */
#include "tests/testserver/tsmcp.h"
#include "tests/testserver/tsstdio.h"

#include <criterion/criterion.h>
#include <ev.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int done_calls;

static void on_done(void *arg)
{
    done_calls++;
    ev_break(arg, EVBREAK_ALL);
}

/* Feeds `input` to a stdio transport, closes it, runs the loop until the
 * transport is done and returns what it wrote (static buffer). */
static const char *run(const char *input)
{
    static char outbuf[65536];
    int in[2], out[2];
    struct mb_tsmcp_opts o = {0};
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct mb_tsmcp *ts = mb_tsmcp_new(&o, loop);
    struct mb_tsstdio *s = NULL;
    cr_assert_not_null(ts);
    cr_assert_eq(pipe(in), 0);
    cr_assert_eq(pipe(out), 0);
    cr_assert_eq(mb_tsstdio_start(&s, ts, loop, in[0], out[1], on_done, loop), 0);
    cr_assert_eq(write(in[1], input, strlen(input)), (ssize_t)strlen(input));
    close(in[1]);
    done_calls = 0;
    ev_run(loop, 0);
    cr_expect_eq(done_calls, 1, "on_done once");
    cr_expect_eq(mb_tsmcp_pending(ts), 0u, "everything answered before on_done");
    mb_tsstdio_free(&s);
    cr_expect_null(s);
    mb_tsmcp_free(&ts);
    ev_loop_destroy(loop);
    close(out[1]);
    size_t n = 0;
    ssize_t k;
    while ((k = read(out[0], outbuf + n, sizeof(outbuf) - 1 - n)) > 0)
        n += (size_t)k;
    outbuf[n] = '\0';
    close(in[0]);
    close(out[0]);
    return outbuf;
}

Test(tsstdio, one_reply_line_per_request_line)
{
    const char *o = run("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n"
                        "\n"
                        "   \r\n"
                        "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}\r\n"
                        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n"
                        "{oops\n"
                        "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}");
    cr_expect_str_eq(o, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n"
                        "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\n"
                        "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":"
                        "\"Parse error: expected a string key\"}}\n"
                        "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}\n");
}

Test(tsstdio, end_of_input_waits_for_pending_requests)
{
    const char *o = run("{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"method\":\"tools/call\",\"params\":{"
                        "\"name\":\"sleep\",\"arguments\":{\"ms\":20}}}\n"
                        "{\"jsonrpc\":\"2.0\",\"id\":\"e\",\"method\":\"tools/call\",\"params\":{"
                        "\"name\":\"echo\",\"arguments\":{\"message\":\"x\"}}}\n");
    const char *e = strstr(o, "\"id\":\"e\"");
    const char *s = strstr(o, "\"id\":\"s\"");
    cr_assert_not_null(e, "%s", o);
    cr_assert_not_null(s, "the sleep was answered before exit: %s", o);
    cr_expect_lt(e, s, "the echo did not wait for the sleep");
}

Test(tsstdio, empty_input_ends_at_once)
{
    cr_expect_str_eq(run(""), "");
}
