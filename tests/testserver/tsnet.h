/*
 * tests/testserver/tsnet.h — the test server's network transports, both
 * driven by the caller's libev loop:
 *
 *   - Streamable HTTP (MCP 2025-06-18 / 2025-11-25) on POST/DELETE /mcp,
 *     served by tshttp.c (plain HTTP/1.1 with keep-alive and pipelining);
 *   - WebSocket on any path, subprotocol "mcp" echoed when offered, one
 *     JSON-RPC message per text frame, on a libwebsockets context.
 */
#ifndef MB_TS_TSNET_H
#define MB_TS_TSNET_H

struct ev_loop;
struct mb_tsmcp;
struct mb_tsnet;

/* Largest message accepted: an HTTP body (413 beyond) or a WebSocket
 * message (close 1009 beyond). */
#define MB_TSNET_MAX_MESSAGE (64u << 20)
/* Streamable HTTP sessions kept; the oldest is ended to make room. */
#define MB_TSNET_MAX_SESSIONS 65536

struct mb_tsnet_opts {
    const char *host; /* address to bind; NULL = 127.0.0.1 */
    int http_port;    /* -1 = no HTTP listener; 0 = any free port */
    int ws_port;      /* -1 = no WebSocket listener; 0 = any free port */
};

/* Creates the listeners. Returns 0, or a negative status after logging why. */
int mb_tsnet_start(struct mb_tsnet **np, struct mb_tsmcp *ts, struct ev_loop *loop,
                   const struct mb_tsnet_opts *opts);
/* The bound ports (useful with port 0), or -1 when not listening. */
int mb_tsnet_http_port(const struct mb_tsnet *n);
int mb_tsnet_ws_port(const struct mb_tsnet *n);
/* Closes every connection (pending requests are dropped) and frees. */
void mb_tsnet_free(struct mb_tsnet **np);

#endif
