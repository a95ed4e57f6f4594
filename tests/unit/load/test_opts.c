/*
 * tests/unit/load/test_opts.c — mcp-bridge-load's command line
 * (tests/load/opts.c): URLs, modes and their conflicts, and the request it
 * renders for --method, --call and --body.
 */
#include "tests/load/opts.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int parse(struct mb_load_opts *o, char *err, const char *const *args)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)"mcp-bridge-load";
    while (args[argc - 1]) {
        argv[argc] = (char *)args[argc - 1];
        argc++;
    }
    argv[argc] = NULL;
    return mb_load_opts_parse(argc, argv, 4, o, err, 512);
}

static void render(const struct mb_load_opts *o, int64_t id, char *out)
{
    long n = mb_load_opts_render(o, id, out, 4096);
    cr_assert_gt(n, 0);
    out[n] = '\0';
}

Test(opts, defaults_send_the_k6_message)
{
    struct mb_load_opts o;
    char err[512], out[4096];
    const char *a[] = {"ws://127.0.0.1:8080/mcp", NULL};
    cr_assert_eq(parse(&o, err, a), MB_LOAD_OPTS_OK, "%s", err);
    cr_expect_eq(o.transport, MB_LOAD_WS);
    cr_expect_str_eq(o.host, "127.0.0.1");
    cr_expect_str_eq(o.port, "8080");
    cr_expect_str_eq(o.path, "/mcp");
    cr_expect_str_eq(o.hostport, "127.0.0.1:8080");
    cr_expect_eq(o.mode, MB_LOAD_MODE_CLOSED);
    cr_expect_eq(o.threads, 4);
    cr_expect_eq(o.duration_ns, 10000000000ull);
    render(&o, 1, out);
    cr_expect_str_eq(out, "{\"jsonrpc\":\"2.0\",\"method\":\"tools/list\",\"id\":1}");
    const int64_t ids[] = {0, 9, 10, -7, 1000000007, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char want[128];
        snprintf(want, sizeof(want), "{\"jsonrpc\":\"2.0\",\"method\":\"tools/list\",\"id\":%lld}",
                 (long long)ids[i]);
        render(&o, ids[i], out);
        cr_expect_str_eq(out, want);
    }
    mb_load_opts_free(&o);
}

Test(opts, call_escapes_the_name_and_embeds_the_arguments)
{
    struct mb_load_opts o;
    char err[512], out[4096];
    const char *a[] = {"--call",      "ec\"ho",
                       "--args",      "{ \"message\" : \"hi\" }",
                       "--url",       "http://[::1]:9/x",
                       "--processes", "2",
                       "--rate",      "100",
                       NULL};
    cr_assert_eq(parse(&o, err, a), MB_LOAD_OPTS_OK, "%s", err);
    cr_expect_eq(o.transport, MB_LOAD_HTTP);
    cr_expect_str_eq(o.host, "::1");
    cr_expect_eq(o.mode, MB_LOAD_MODE_OPEN);
    cr_expect_eq(o.threads, 2, "CPUs divided by processes");
    render(&o, 123456789012345, out);
    cJSON *j = cJSON_Parse(out);
    cr_assert_not_null(j, "%s", out);
    cr_expect_str_eq(cJSON_GetObjectItem(j, "method")->valuestring, "tools/call");
    cJSON *p = cJSON_GetObjectItem(j, "params");
    cr_expect_str_eq(cJSON_GetObjectItem(p, "name")->valuestring, "ec\"ho");
    cr_expect_str_eq(
        cJSON_GetObjectItem(cJSON_GetObjectItem(p, "arguments"), "message")->valuestring, "hi");
    cr_expect_not_null(strstr(out, "\"id\":123456789012345}"), "id written as an integer: %s", out);
    cJSON_Delete(j);
    mb_load_opts_free(&o);
}

Test(opts, body_template_replaces_the_id)
{
    struct mb_load_opts o;
    char err[512], out[4096];
    const char *a[] = {"--body", "{\"jsonrpc\":\"2.0\",\"id\":{{id}},\"method\":\"ping\"}",
                       "ws://h/", NULL};
    cr_assert_eq(parse(&o, err, a), MB_LOAD_OPTS_OK, "%s", err);
    cr_expect_str_eq(o.port, "80");
    render(&o, 42, out);
    cr_expect_str_eq(out, "{\"jsonrpc\":\"2.0\",\"id\":42,\"method\":\"ping\"}");
    mb_load_opts_free(&o);
}

Test(opts, bad_command_lines_are_refused_with_a_message)
{
    const char *const bad[][8] = {
        {NULL},
        {"ftp://x/", NULL},
        {"wss://x/", NULL},
        {"ws://x:0/", NULL},
        {"ws://:80/", NULL},
        {"ws://x/", "--idle", "5", "--rate", "10", NULL},
        {"http://x/", "--idle", "5", NULL},
        {"http://x/", "--stages", "5:1", NULL},
        {"ws://x/", "--stages", "5:1", "--connections", "3", NULL},
        {"ws://x/", "--call", "a", "--method", "b", NULL},
        {"ws://x/", "--args", "{}", NULL},
        {"ws://x/", "--call", "a", "--args", "[1]", NULL},
        {"ws://x/", "--body", "{\"id\":1}", NULL},
        {"ws://x/", "--body", "{\"id\":{{id}},{{id}}}", NULL},
        {"ws://x/", "--body", "not json {{id}}", NULL},
        {"ws://x/", "--pipeline", "0", NULL},
        {"ws://x/", "--duration", "soon", NULL},
        {"ws://x/", "--source-ips", "127.0.0.1,nope", NULL},
        {"ws://x/", "--header", "NoColon", NULL},
        {"ws://x/", "--ping", NULL},
        {"ws://x/", "--bogus", NULL},
        {"ws://x/", "ws://y/", NULL},
        {"ws://x/", "--connections", "2", "--processes", "3", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct mb_load_opts o;
        char err[512] = "";
        cr_expect_eq(parse(&o, err, bad[i]), MB_LOAD_OPTS_ERROR, "accepted case %zu", i);
        cr_expect_neq(err[0], '\0', "no message for case %zu", i);
    }
}

Test(opts, modes_and_their_settings)
{
    struct mb_load_opts o;
    char err[512];
    const char *idle[] = {"--idle", "1000", "--hold", "30s", "--ping", "ws://x:1/", NULL};
    cr_assert_eq(parse(&o, err, idle), MB_LOAD_OPTS_OK, "%s", err);
    cr_expect_eq(o.mode, MB_LOAD_MODE_IDLE);
    cr_expect_eq(o.idle, 1000);
    cr_expect_eq(o.hold_ns, 30000000000ull);
    mb_load_opts_free(&o);
    const char *st[] = {"--stages", "100:60,1000:180,0:60", "ws://x:1/", NULL};
    cr_assert_eq(parse(&o, err, st), MB_LOAD_OPTS_OK, "%s", err);
    cr_expect_eq(o.mode, MB_LOAD_MODE_STAGES);
    cr_expect_eq(o.stages.n, 3);
    mb_load_opts_free(&o);
    const char *rq[] = {
        "--requests",          "10",        "--header", "Authorization: Bearer x", "--source-ips",
        "127.0.0.2,127.0.0.3", "ws://x:1/", NULL};
    cr_assert_eq(parse(&o, err, rq), MB_LOAD_OPTS_OK, "%s", err);
    cr_expect_eq(o.duration_ns, 0, "--requests alone: no duration");
    cr_expect_eq(o.nsources, 2);
    cr_expect_str_eq(o.extra_headers, "Authorization: Bearer x\r\n");
    mb_load_opts_free(&o);
    const char *help[] = {"--help", NULL};
    cr_expect_eq(parse(&o, err, help), MB_LOAD_OPTS_HELP);
}
