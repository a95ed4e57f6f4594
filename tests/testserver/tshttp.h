/*
 * tests/testserver/tshttp.h — the test server's Streamable HTTP transport:
 * a small HTTP/1.1 server on the caller's libev loop (no libwebsockets).
 *
 * It exists apart from the WebSocket transport because libwebsockets 4.1.6
 * cannot serve HTTP/1.1 pipelining: a request with a body whose headers
 * were read together with the previous request is fed to the parser twice
 * (lws_http_action() re-reads its buffered bytes as the body) and then loops
 * forever without returning to the event loop. Here every connection keeps
 * its own input buffer and answers pipelined requests one after another, in
 * order.
 */
#ifndef MB_TS_TSHTTP_H
#define MB_TS_TSHTTP_H

struct ev_loop;
struct mb_tsmcp;
struct mb_tshttp;

/* Listens on host:port (port 0: any free port). Returns 0, or a negative
 * status after logging why. */
int mb_tshttp_start(struct mb_tshttp **hp, struct mb_tsmcp *ts, struct ev_loop *loop,
                    const char *host, int port);
/* The bound port. */
int mb_tshttp_port(const struct mb_tshttp *h);
/* Closes every connection (pending requests are dropped), ends every
 * session and frees. */
void mb_tshttp_free(struct mb_tshttp **hp);

#endif
