/*
 * tests/testserver/tsstdio.h — the test server's stdio transport:
 * newline-delimited JSON-RPC on two file descriptors (stdin/stdout), one
 * session and one channel for the whole stream, driven by a libev loop.
 */
#ifndef MB_TS_TSSTDIO_H
#define MB_TS_TSSTDIO_H

struct ev_loop;
struct mb_tsmcp;
struct mb_tsstdio;

/* Largest message accepted on one line; a longer line is answered with a
 * -32700 error and skipped. */
#define MB_TSSTDIO_MAX_LINE (64u << 20)

/* Starts reading in_fd and writing out_fd. on_done(arg) is called once, from
 * the loop, when the input has ended (EOF or a read error), every request has
 * been answered and all output is written — or when out_fd fails (EPIPE).
 * Returns 0 or a negative status. */
int mb_tsstdio_start(struct mb_tsstdio **sp, struct mb_tsmcp *ts, struct ev_loop *loop, int in_fd,
                     int out_fd, void (*on_done)(void *arg), void *arg);
/* Stops the watchers, drops requests still pending and frees; *sp = NULL. */
void mb_tsstdio_free(struct mb_tsstdio **sp);

#endif
