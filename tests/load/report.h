/*
 * tests/load/report.h — what a run measured, and how it is printed.
 *
 * Each engine thread fills its own struct mb_load_result; the run merges the
 * threads' results, and with --processes the parent merges the children's
 * (they send the struct whole through a pipe: same binary, same layout).
 * Error kinds are declared once in MB_LOAD_ERRORS and generate the counters'
 * names in both the text and the JSON report.
 */
#ifndef MB_TESTS_LOAD_REPORT_H
#define MB_TESTS_LOAD_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "tests/load/histogram.h"
#include "tests/load/opts.h"

/* X(id, name, what it counts) */
#define MB_LOAD_ERRORS(X)                                                                          \
    X(CONNECT, "connect", "connection attempts that failed or timed out")                          \
    X(HANDSHAKE, "handshake", "WebSocket upgrades or initialize exchanges that failed")            \
    X(TIMEOUT, "timeout", "requests without a reply within --timeout")                             \
    X(CLOSED, "closed", "connections closed by the server or broken by a protocol error")          \
    X(LOST, "lost", "requests in flight on a connection that closed")                              \
    X(BAD_ID, "bad_id", "replies whose id was missing or not one in flight")                       \
    X(BAD_REPLY, "bad_reply", "messages that were not JSON-RPC replies, or missing replies")       \
    X(HTTP, "http_status", "HTTP responses with a status other than 2xx")                          \
    X(JSONRPC, "jsonrpc", "JSON-RPC error replies")

enum mb_load_err {
#define MB_LOAD_ERR_ENUM(id, name, what) MB_LOAD_ERR_##id,
    MB_LOAD_ERRORS(MB_LOAD_ERR_ENUM)
#undef MB_LOAD_ERR_ENUM
        MB_LOAD_ERR_COUNT
};

#define MB_LOAD_CODES 16

/* Counts per code (JSON-RPC error code, HTTP status); codes past the table's
 * size go to other. */
struct mb_load_codes {
    int64_t code[MB_LOAD_CODES];
    uint64_t n[MB_LOAD_CODES];
    uint32_t used;
    uint64_t other;
};

struct mb_load_result {
    uint64_t requests; /* successful replies recorded in the window */
    uint64_t replies;  /* every reply matched to a request, in or out of the window */
    uint64_t errors[MB_LOAD_ERR_COUNT];
    struct mb_load_codes jsonrpc_codes;
    struct mb_load_codes http_codes;
    uint64_t server_msgs;  /* notifications/requests from the server (not replies) */
    uint64_t conns_opened; /* connections that completed their handshake */
    uint64_t inflight_end; /* requests still in flight when the run ended */
    uint64_t backlog_end;  /* open loop: scheduled requests never sent (no free connection) */
    uint64_t iterations;   /* stages: VU iterations completed (reply received) */
    uint64_t idle_open;    /* idle: connections open at the end */
    uint64_t max_vus;      /* stages: the most VUs running at once (summed over threads) */
    uint64_t window_ns;    /* the measured window */
    uint64_t open_ns;      /* idle: how long opening took */
    double rps;            /* requests / window; summed over processes */
    int interrupted;       /* SIGINT/SIGTERM ended it early */
    struct mb_load_histogram latency;   /* ns, successful replies in the window */
    struct mb_load_histogram iteration; /* stages: ns per whole VU iteration */
};

void mb_load_result_init(struct mb_load_result *r);
void mb_load_codes_add(struct mb_load_codes *c, int64_t code, uint64_t n);
/* Adds src into dst. rps and counters add up; window and open time take the
 * larger; histograms merge. */
void mb_load_result_merge(struct mb_load_result *dst, const struct mb_load_result *src);
/* Requests that failed: timeout + lost + bad_id + bad_reply + http + jsonrpc. */
uint64_t mb_load_result_failed(const struct mb_load_result *r);
const char *mb_load_err_name(int kind);

void mb_load_report_text(FILE *out, const struct mb_load_opts *o, const struct mb_load_result *r);
/* One JSON object and a newline. Returns 0, or -1 when out of memory. */
int mb_load_report_json(FILE *out, const struct mb_load_opts *o, const struct mb_load_result *r);

#endif
