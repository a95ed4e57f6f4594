/*
 * tests/load/opts.h — the command line of mcp-bridge-load, and the request
 * it sends, prepared once from the options.
 *
 * Options are declared once in MB_LOAD_OPTIONS (CONVENTIONS rule 12): the
 * table generates the getopt_long array and --help.
 */
#ifndef MB_TESTS_LOAD_OPTS_H
#define MB_TESTS_LOAD_OPTS_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "tests/load/stages.h"

/* X(id, long name, takes an argument, metavar, help) */
#define MB_LOAD_OPTIONS(X)                                                                         \
    X(URL, "url", 1, "URL",                                                                        \
      "target: ws://HOST:PORT/PATH (WebSocket, one JSON-RPC message per text frame) or "           \
      "http://HOST:PORT/PATH (Streamable HTTP POST). Also accepted as the first argument.")        \
    X(THREADS, "threads", 1, "N",                                                                  \
      "threads, each with its own epoll loop (default: online CPUs, "                              \
      "divided by --processes)")                                                                   \
    X(CONNECTIONS, "connections", 1, "C", "connections for the request modes (default 50)")        \
    X(DURATION, "duration", 1, "TIME",                                                             \
      "how long to measure, after the warm-up (default 10s; with --requests alone: until done)")   \
    X(REQUESTS, "requests", 1, "N", "stop after N measured replies (over all connections)")        \
    X(WARMUP, "warmup", 1, "TIME", "run this long before measuring (default 0)")                   \
    X(PIPELINE, "pipeline", 1, "K",                                                                \
      "requests in flight per connection (default 1; on HTTP this is HTTP/1.1 pipelining)")        \
    X(RATE, "rate", 1, "R",                                                                        \
      "open loop: R requests/s in total, sent at their scheduled times on free connections; "      \
      "latency counts from the scheduled time (no coordinated omission). Default: closed loop")    \
    X(INIT, "init", 0, NULL,                                                                       \
      "on each connection, initialize + notifications/initialized before the requests")            \
    X(PROTOCOL, "protocol-version", 1, "V",                                                        \
      "protocolVersion sent in initialize (default "                                               \
      "2025-06-18)")                                                                               \
    X(METHOD, "method", 1, "NAME", "request method without params (default tools/list)")           \
    X(CALL, "call", 1, "TOOL", "send tools/call of TOOL (with --args)")                            \
    X(ARGS, "args", 1, "JSON", "arguments object for --call (default {})")                         \
    X(BODY, "body", 1, "TEMPLATE",                                                                 \
      "send this raw JSON-RPC request; the text {{id}} (exactly once) is replaced by the id")      \
    X(HEADER, "header", 1, "'NAME: VALUE'",                                                        \
      "extra header on the HTTP requests and the WebSocket handshake (repeatable, up to 16)")      \
    X(SUBPROTOCOL, "subprotocol", 1, "P", "offer this WebSocket subprotocol (e.g. mcp)")           \
    X(TIMEOUT, "timeout", 1, "TIME",                                                               \
      "a request without a reply, or a connect/handshake, fails after this (default 10s)")         \
    X(SOURCE_IPS, "source-ips", 1, "A,B,...",                                                      \
      "bind connections round-robin to these local addresses (127.0.0.2, ...): each gives "        \
      "another ~28k loopback ports")                                                               \
    X(PROCESSES, "processes", 1, "P",                                                              \
      "fork P copies, each with 1/P of the connections, VUs and rate, and merge their results "    \
      "(each process has its own file descriptor limit)")                                          \
    X(CONNECT_BURST, "connect-burst", 1, "N",                                                      \
      "at most N connections being opened at once per thread (default 64)")                        \
    X(IDLE, "idle", 1, "C",                                                                        \
      "idle mode: open C WebSocket connections (handshake done), hold them, report how many "      \
      "stay open")                                                                                 \
    X(HOLD, "hold", 1, "TIME", "idle mode: how long to hold once all are open (default 10s)")      \
    X(OPEN_TIMEOUT, "open-timeout", 1, "TIME",                                                     \
      "idle mode: stop opening after this and hold what is open (default 120s)")                   \
    X(PING, "ping", 0, NULL, "idle mode: send one ping per connection and wait for the pong")      \
    X(STAGES, "stages", 1, "T:D,...",                                                              \
      "k6 scenario: virtual users ramp linearly to each stage's target T over its duration D; "    \
      "each VU opens a WebSocket, sends tools/list id 1, waits for the reply, closes, repeats "    \
      "(e.g. \"100:60,1000:180,0:60\")")                                                           \
    X(MAX_TIME, "max-time", 1, "TIME",                                                             \
      "hard cap on the run when only --requests bounds it (default 600s)")                         \
    X(FLOOR, "floor", 1, "PORT",                                                                   \
      "no load: serve as the floor responder on 127.0.0.1:PORT (0: any free port, printed), "      \
      "answering every WebSocket request with a fixed result, the cheapest server possible: "      \
      "the machine's ceiling for the bench (--threads sets its threads)")                          \
    X(FLOOR_RESULT, "floor-result", 1, "FILE",                                                     \
      "--floor: the JSON value every reply carries as result (default {})")                        \
    X(JSON, "json", 0, NULL, "print the result as one JSON object on stdout")                      \
    X(HELP, "help", 0, NULL, "show this help")

enum mb_load_opt_id {
#define MB_LOAD_OPT_ENUM(id, name, arg, meta, help) MB_LOAD_OPT_##id,
    MB_LOAD_OPTIONS(MB_LOAD_OPT_ENUM)
#undef MB_LOAD_OPT_ENUM
        MB_LOAD_OPT_COUNT
};

enum mb_load_mode {
    MB_LOAD_MODE_CLOSED = 0,
    MB_LOAD_MODE_OPEN,
    MB_LOAD_MODE_IDLE,
    MB_LOAD_MODE_STAGES,
    MB_LOAD_MODE_FLOOR /* no load: the floor responder (floor.h) */
};
enum mb_load_transport { MB_LOAD_WS = 0, MB_LOAD_HTTP };

#define MB_LOAD_MAX_HEADERS 16
#define MB_LOAD_MAX_SOURCES 64

struct mb_load_opts {
    int mode;
    int transport;
    char url[1024];
    char host[256]; /* as written in the URL (brackets stripped) */
    char port[8];
    char hostport[300]; /* for the Host header */
    char path[1024];
    int threads;
    int processes;
    uint32_t connections;
    uint32_t pipeline;
    double rate;
    uint64_t duration_ns; /* 0 = none (only with --requests) */
    uint64_t warmup_ns;
    uint64_t requests;
    uint64_t timeout_ns;
    uint64_t hold_ns;
    uint64_t open_timeout_ns;
    uint64_t max_time_ns;
    uint32_t connect_burst;
    uint32_t idle;
    int ping;
    int init;
    int json;
    char protocol_version[64];
    char request_desc[160];   /* what is sent, for the report: "tools/list", "tools/call echo" */
    char extra_headers[4096]; /* "Name: value\r\n" lines */
    char subprotocol[128];
    struct sockaddr_storage sources[MB_LOAD_MAX_SOURCES];
    int nsources;
    struct mb_load_stages stages;
    int floor_port;           /* --floor; -1 when not serving */
    const char *floor_result; /* --floor-result (argv), NULL: {} */
    /* The request, split around its id: prefix + id + suffix. */
    char *req_prefix;
    char *req_suffix;
    size_t req_prefix_len, req_suffix_len;
};

enum { MB_LOAD_OPTS_OK = 0, MB_LOAD_OPTS_HELP = 1, MB_LOAD_OPTS_ERROR = -1 };

/* Parses argv into o (which it initialises). ncpu is the default thread count.
 * Returns MB_LOAD_OPTS_OK, MB_LOAD_OPTS_HELP (--help: nothing else done), or
 * MB_LOAD_OPTS_ERROR with a message in err. */
int mb_load_opts_parse(int argc, char **argv, int ncpu, struct mb_load_opts *o, char *err,
                       size_t errlen);
void mb_load_opts_free(struct mb_load_opts *o);
void mb_load_opts_usage(FILE *out, const char *prog);
/* Writes the request with this id into out; returns its length or -1 when
 * it does not fit. */
long mb_load_opts_render(const struct mb_load_opts *o, int64_t id, char *out, size_t cap);
/* The mode's name for reports: closed, open, idle, stages. */
const char *mb_load_opts_mode_name(int mode);

#endif
