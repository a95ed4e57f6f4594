/*
 * tests/testserver/main.c — mcp-bridge-testserver: command line, the libev
 * loop, signals. The MCP logic is in tsmcp.c, the transports in tsstdio.c
 * and tsnet.c (kept out of this file so unit tests can link them).
 *
 * With --http/--ws and port 0 the kernel picks a free port; the server then
 * prints "listening http PORT" / "listening ws PORT" on stdout (one line
 * each, flushed) so a test can read the ports. SIGTERM and SIGINT stop it
 * (exit 0); in --stdio mode so does the end of stdin, once every request
 * received has been answered. Exit 2 on a usage error, 1 on a runtime error.
 */
#include "common/errors.h"
#include "common/log.h"
#include "tests/testserver/tsmcp.h"
#include "tests/testserver/tsnet.h"
#include "tests/testserver/tsstdio.h"

#include <ev.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* X(long name, argument name or NULL, help) — the one list of options. */
#define TS_OPTIONS(X)                                                                              \
    X("stdio", NULL, "serve newline-delimited JSON-RPC on stdin/stdout (logs on stderr)")          \
    X("http", "PORT", "serve MCP Streamable HTTP on POST /mcp (0 = any free port)")                \
    X("ws", "PORT", "serve MCP over WebSocket on any path (0 = any free port)")                    \
    X("host", "ADDR", "address to bind for --http/--ws (default 127.0.0.1)")                       \
    X("name", "X", "serverInfo.name, and tool names become X_echo, X_sleep, ...")                  \
    X("tools", "N", "add N tools tool_0 .. tool_<N-1> to make tools/list large")                   \
    X("page-size", "N", "paginate tools/list, N tools per page")                                   \
    X("log-level", "LEVEL", "error, warn, info (default) or debug")                                \
    X("help", NULL, "print this help and exit")

static const struct {
    const char *name;
    const char *arg;
    const char *help;
} opt_table[] = {
#define X(name, arg, help) {name, arg, help},
    TS_OPTIONS(X)
#undef X
};
#define NOPTS ((int)(sizeof(opt_table) / sizeof(opt_table[0])))

static void usage(FILE *f)
{
    fprintf(f, "usage: mcp-bridge-testserver (--stdio | [--http PORT] [--ws PORT]) [options]\n"
               "A fast MCP server for tests and benchmarks. Tools: echo, sleep, big, fail,\n"
               "progress, counter, list_changed (+ dynamic, tool_N).\n\n");
    for (int i = 0; i < NOPTS; i++) {
        char left[40];
        snprintf(left, sizeof(left), "--%s%s%s", opt_table[i].name, opt_table[i].arg ? " " : "",
                 opt_table[i].arg ? opt_table[i].arg : "");
        fprintf(f, "  %-18s %s\n", left, opt_table[i].help);
    }
}

static int parse_uint(const char *opt, const char *s, long max, long *out)
{
    char *e;
    long v = strtol(s, &e, 10);
    if (*s == '\0' || *e != '\0' || v < 0 || v > max) {
        fprintf(stderr, "mcp-bridge-testserver: --%s %s: expected an integer from 0 to %ld\n", opt,
                s, max);
        return -1;
    }
    *out = v;
    return 0;
}

struct args {
    int stdio;
    long http, ws, tools, page_size;
    const char *host, *name;
    int log_level;
};

/* Returns 0 to run, 1 after --help, -1 on a usage error (already reported). */
static int parse_args(int argc, char **argv, struct args *a)
{
    struct option lopts[NOPTS + 1];
    memset(lopts, 0, sizeof(lopts));
    for (int i = 0; i < NOPTS; i++) {
        lopts[i].name = opt_table[i].name;
        lopts[i].has_arg = opt_table[i].arg ? required_argument : no_argument;
        lopts[i].val = 256 + i;
    }
    memset(a, 0, sizeof(*a));
    a->http = a->ws = -1;
    a->log_level = MB_LOG_INFO;
    int c, idx;
    while ((c = getopt_long(argc, argv, "h", lopts, &idx)) != -1) {
        if (c == 'h')
            return usage(stdout), 1;
        if (c < 256)
            return usage(stderr), -1;
        const char *name = opt_table[c - 256].name;
        int rc = 0;
        if (strcmp(name, "stdio") == 0)
            a->stdio = 1;
        else if (strcmp(name, "http") == 0)
            rc = parse_uint(name, optarg, 65535, &a->http);
        else if (strcmp(name, "ws") == 0)
            rc = parse_uint(name, optarg, 65535, &a->ws);
        else if (strcmp(name, "host") == 0)
            a->host = optarg;
        else if (strcmp(name, "name") == 0)
            a->name = optarg;
        else if (strcmp(name, "tools") == 0)
            rc = parse_uint(name, optarg, 1000000, &a->tools);
        else if (strcmp(name, "page-size") == 0)
            rc = parse_uint(name, optarg, 1000000, &a->page_size);
        else if (strcmp(name, "log-level") == 0) {
            if ((a->log_level = mb_log_level_parse(optarg)) < 0) {
                fprintf(stderr, "mcp-bridge-testserver: --log-level %s: unknown level\n", optarg);
                rc = -1;
            }
        } else if (strcmp(name, "help") == 0)
            return usage(stdout), 1;
        if (rc != 0)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "mcp-bridge-testserver: unexpected argument %s\n", argv[optind]);
        return -1;
    }
    if (a->stdio == (a->http >= 0 || a->ws >= 0)) {
        fprintf(stderr, "mcp-bridge-testserver: give either --stdio or --http/--ws\n");
        usage(stderr);
        return -1;
    }
    if (a->name != NULL && !mb_tsmcp_name_valid(a->name)) {
        fprintf(stderr, "mcp-bridge-testserver: --name %s: must be 1 to 64 of [A-Za-z0-9_.-]\n",
                a->name);
        return -1;
    }
    return 0;
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    mb_log_info("signal %d, stopping", w->signum);
    ev_break(loop, EVBREAK_ALL);
}

static void on_stdio_done(void *arg)
{
    ev_break(arg, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    struct args a;
    struct mb_tsmcp *ts = NULL;
    struct mb_tsstdio *sio = NULL;
    struct mb_tsnet *net = NULL;
    ev_signal sigterm, sigint;
    int status = MB_EXIT_ERROR;

    int rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc > 0 ? MB_EXIT_OK : MB_EXIT_FATAL;
    mb_log_set_role("testserver", -1);
    mb_log_open(NULL, a.log_level);
    signal(SIGPIPE, SIG_IGN);

    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    if (loop == NULL) {
        mb_log_error("cannot create the libev loop");
        return MB_EXIT_ERROR;
    }
    ev_signal_init(&sigterm, on_signal, SIGTERM);
    ev_signal_init(&sigint, on_signal, SIGINT);
    ev_signal_start(loop, &sigterm);
    ev_signal_start(loop, &sigint);

    struct mb_tsmcp_opts mo = {
        .name = a.name, .extra_tools = (unsigned)a.tools, .page_size = (unsigned)a.page_size};
    if ((ts = mb_tsmcp_new(&mo, loop)) == NULL)
        goto out;
    if (a.stdio) {
        if (mb_tsstdio_start(&sio, ts, loop, 0, 1, on_stdio_done, loop) != 0) {
            mb_log_error("cannot start the stdio transport");
            goto out;
        }
        mb_log_info("serving MCP on stdio");
    } else {
        struct mb_tsnet_opts no = {.host = a.host, .http_port = (int)a.http, .ws_port = (int)a.ws};
        if (mb_tsnet_start(&net, ts, loop, &no) != 0)
            goto out;
        if (mb_tsnet_http_port(net) >= 0)
            printf("listening http %d\n", mb_tsnet_http_port(net));
        if (mb_tsnet_ws_port(net) >= 0)
            printf("listening ws %d\n", mb_tsnet_ws_port(net));
        fflush(stdout);
    }
    ev_run(loop, 0);
    status = MB_EXIT_OK;
out:
    mb_tsstdio_free(&sio);
    mb_tsnet_free(&net);
    mb_tsmcp_free(&ts);
    ev_signal_stop(loop, &sigterm);
    ev_signal_stop(loop, &sigint);
    return status;
}
