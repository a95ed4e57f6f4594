/*
 * tests/unit/load/test_floor.c — the floor responder (tests/load/floor.h):
 * the reply it builds for one request, and the responder itself on a port
 * the kernel picks, driven by the test WebSocket client (handshake, ids
 * echoed as sent, notifications unanswered, ping/pong, close) and by the
 * load engine (every reply matched by id).
 */
#include "tests/load/floor.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/load/engine.h"
#include "tests/load/opts.h"
#include "tests/load/report.h"
#include "tests/support/wsclient.h"

static const char result[] = "{\"tools\":[{\"name\":\"echo\"}]}";

/* The payload of the one frame at out (unmasked server frame). */
static const char *payload_of(const char *out, size_t len, size_t *plen)
{
    struct mb_wsframe f;
    long used = mb_wsframe_parse((const uint8_t *)out, len, &f);
    cr_assert_eq(used, (long)len, "one whole frame expected");
    cr_assert_eq(f.opcode, MB_WS_OP_TEXT);
    cr_assert(f.fin);
    cr_assert_not(f.masked);
    *plen = f.len;
    return (const char *)f.payload;
}

Test(floor, reply_echoes_the_id_as_sent)
{
    char out[512];
    const char *ids[] = {"7", "\"a\\\"b\"", "-12", "1.5"};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char req[128], want[256];
        snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"method\":\"tools/list\",\"id\":%s}",
                 ids[i]);
        size_t used = 0, plen;
        cr_assert_eq(
            mb_load_floor_reply(req, strlen(req), result, strlen(result), out, sizeof(out), &used),
            1, "%s", req);
        const char *p = payload_of(out, used, &plen);
        snprintf(want, sizeof(want), "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":%s}", ids[i],
                 result);
        cr_expect_eq(plen, strlen(want));
        cr_expect(memcmp(p, want, plen) == 0, "got %.*s", (int)plen, p);
    }
}

Test(floor, no_reply_to_what_is_not_a_request)
{
    char out[512];
    const char *msgs[] = {
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", /* notification */
        "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}",                   /* a response */
        "{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"id\":null}",             /* id null */
        "not json",
    };
    for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
        size_t used = 0;
        cr_expect_eq(mb_load_floor_reply(msgs[i], strlen(msgs[i]), result, strlen(result), out,
                                         sizeof(out), &used),
                     0, "%s", msgs[i]);
        cr_expect_eq(used, 0);
    }
}

/* Frame headers of 2, 4 and 10 bytes, and -1 (nothing written) without room. */
Test(floor, reply_lengths_and_room)
{
    static char big[70000], out[71000];
    const char *req = "{\"method\":\"m\",\"id\":1}";
    const size_t sizes[] = {10, 100, 200, 65000, 69000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        memset(big, 'x', sizes[i]);
        big[0] = '"';
        big[sizes[i] - 1] = '"';
        size_t used = 0, plen;
        cr_assert_eq(mb_load_floor_reply(req, strlen(req), big, sizes[i], out, sizeof(out), &used),
                     1);
        payload_of(out, used, &plen);
        cr_expect_eq(plen, sizes[i] + strlen("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":}"));
        size_t small = 5;
        cr_expect_eq(mb_load_floor_reply(req, strlen(req), big, sizes[i], out, used - 1, &small),
                     -1);
        cr_expect_eq(small, 5, "nothing written without room");
    }
}

struct served {
    volatile sig_atomic_t stop;
    struct mb_load_floor *fl;
    int port;
};

static void serve(struct served *s, const char *result_file)
{
    char *argv[] = {"load", "--floor", "0", "--threads", "2", NULL, NULL, NULL};
    if (result_file) {
        argv[5] = "--floor-result";
        argv[6] = (char *)result_file;
    }
    struct mb_load_opts o;
    char err[256];
    int argc = result_file ? 7 : 5;
    cr_assert_eq(mb_load_opts_parse(argc, argv, 2, &o, err, sizeof(err)), MB_LOAD_OPTS_OK, "%s",
                 err);
    cr_assert_eq(o.mode, MB_LOAD_MODE_FLOOR);
    s->stop = 0;
    cr_assert_eq(mb_load_floor_start(&o, &s->stop, &s->fl, &s->port, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_gt(s->port, 0);
    mb_load_opts_free(&o);
}

static void unserve(struct served *s)
{
    s->stop = 1;
    mb_load_floor_wait(s->fl);
}

Test(floor, serves_websocket_clients, .timeout = 20)
{
    char path[] = "/tmp/mb-floor-result-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "  %s\n", result);
    fclose(f);
    struct served s;
    serve(&s, path);
    unlink(path);

    struct mb_wsclient *c;
    char err[256];
    cr_assert_eq(mb_wsclient_connect(&c, (uint16_t)s.port, "/", NULL, 5000, err, sizeof(err)), 0,
                 "%s", err);
    struct mb_wsmsg m;
    cr_assert_eq(mb_wsclient_call(
                     c, "{\"jsonrpc\":\"2.0\",\"method\":\"tools/list\",\"id\":\"x1\"}", &m, 5000),
                 0);
    char want[256];
    snprintf(want, sizeof(want), "{\"jsonrpc\":\"2.0\",\"id\":\"x1\",\"result\":%s}", result);
    cr_expect_str_eq(m.data, want);
    /* a notification gets nothing: the next reply is the next request's */
    cr_assert_eq(
        mb_wsclient_send_text(c, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\"}", 5000), 0);
    cr_assert_eq(mb_wsclient_send(c, MB_WS_OP_PING, "hi", 2, 5000), 0);
    cr_assert_eq(
        mb_wsclient_call(c, "{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":2}", &m, 5000), 0);
    cr_expect(strstr(m.data, "\"id\":2,") != NULL, "got %s", m.data);
    cr_expect_eq(mb_wsclient_close(c, 1000, 5000), 0);
    mb_wsclient_free(&c);
    unserve(&s);
}

/* The load engine against the floor: every reply matched by its id. */
Test(floor, load_engine_gets_every_reply, .timeout = 30)
{
    struct served s;
    serve(&s, NULL);
    char url[64];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/", s.port);
    char *argv[] = {"load", "--connections", "8", "--requests", "2000", url, NULL};
    struct mb_load_opts o;
    char err[256];
    cr_assert_eq(mb_load_opts_parse(6, argv, 2, &o, err, sizeof(err)), MB_LOAD_OPTS_OK, "%s", err);
    static struct mb_load_result r;
    volatile sig_atomic_t no_stop = 0;
    cr_assert_eq(mb_load_engine_run(&o, 0, &no_stop, &r, err, sizeof(err)), 0, "%s", err);
    mb_load_opts_free(&o);
    cr_expect_geq(r.requests, 2000);
    cr_expect_eq(mb_load_result_failed(&r), 0);
    cr_expect_eq(r.errors[MB_LOAD_ERR_CLOSED], 0);
    cr_expect_eq(r.conns_opened, 8);
    unserve(&s);
}

Test(floor, options_are_checked)
{
    struct mb_load_opts o;
    char err[256];
    char *with_url[] = {"load", "--floor", "0", "ws://127.0.0.1:1/", NULL};
    cr_expect_eq(mb_load_opts_parse(4, with_url, 2, &o, err, sizeof(err)), MB_LOAD_OPTS_ERROR);
    cr_expect(strstr(err, "--floor") != NULL, "%s", err);
    char *bad_port[] = {"load", "--floor", "70000", NULL};
    cr_expect_eq(mb_load_opts_parse(3, bad_port, 2, &o, err, sizeof(err)), MB_LOAD_OPTS_ERROR);
    char *result_alone[] = {"load", "--floor-result", "x.json", "ws://127.0.0.1:1/", NULL};
    cr_expect_eq(mb_load_opts_parse(4, result_alone, 2, &o, err, sizeof(err)), MB_LOAD_OPTS_ERROR);
    cr_expect(strstr(err, "--floor-result goes with --floor") != NULL, "%s", err);

    char path[] = "/tmp/mb-floor-bad-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "{\"a\":", 5), 5);
    close(fd);
    char *bad_result[] = {"load", "--floor", "0", "--floor-result", path, NULL};
    cr_assert_eq(mb_load_opts_parse(5, bad_result, 2, &o, err, sizeof(err)), MB_LOAD_OPTS_OK);
    volatile sig_atomic_t stop = 0;
    struct mb_load_floor *fl;
    int port;
    cr_expect_eq(mb_load_floor_start(&o, &stop, &fl, &port, err, sizeof(err)), -1);
    cr_expect(strstr(err, "not one JSON value") != NULL, "%s", err);
    mb_load_opts_free(&o);
    unlink(path);
}
