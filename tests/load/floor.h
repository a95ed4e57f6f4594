/*
 * tests/load/floor.h — `mcp-bridge-load --floor PORT`: the machine's ceiling
 * for the bench's WebSocket request scenarios.
 *
 * A gateway on loopback can be no cheaper than a server that does nothing
 * but take a WebSocket frame and write a reply: the kernel's TCP work for
 * one request and one reply on both sides, and the load generator's own
 * share of the cores, are paid whatever the server does. The floor
 * responder is that server: per thread one SO_REUSEPORT listening socket
 * and an epoll loop; it accepts any WebSocket handshake, and answers every
 * text frame carrying a JSON-RPC request with
 *   {"jsonrpc":"2.0","id":<the request's id>,"result":<RESULT>}
 * where RESULT is fixed (--floor-result FILE, default {}). It parses nothing
 * of the request but its top-level id, keeps no session, and writes each
 * batch of replies with one send. Pings get pongs, a close frame is echoed.
 * `make bench` runs it beside the gateway scenarios (floor_ws_*), so that
 * "how far from the ceiling" is measured in the same run, not guessed.
 */
#ifndef MB_TESTS_LOAD_FLOOR_H
#define MB_TESTS_LOAD_FLOOR_H

#include <signal.h>
#include <stddef.h>

#include "tests/load/opts.h"

struct mb_load_floor;

/* Starts serving on 127.0.0.1:o->floor_port (0: a port the kernel picks)
 * with o->threads threads, which run until *stop is set. Returns 0 once every
 * thread listens, with the port in *port; or -1 with a message in err (the
 * port taken, the result file unreadable or not one JSON value). */
int mb_load_floor_start(const struct mb_load_opts *o, volatile sig_atomic_t *stop,
                        struct mb_load_floor **out, int *port, char *err, size_t errlen);
/* Waits for the threads (after *stop was set) and frees everything. */
void mb_load_floor_wait(struct mb_load_floor *fl);

/* Builds the reply to one request message (msg, n bytes): the id is taken
 * from the request's top level (an integer or a string, copied as sent).
 * Appends a WebSocket text frame to out (cap bytes at out + *used). Returns 1
 * when a reply was written, 0 when the message is no request (no id, a
 * notification), -1 when out is too small. */
int mb_load_floor_reply(const char *msg, size_t n, const char *result, size_t result_len, char *out,
                        size_t cap, size_t *used);

#endif
