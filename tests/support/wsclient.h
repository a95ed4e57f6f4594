/*
 * tests/support/wsclient.h — a small blocking WebSocket client for the
 * integration tests, on a plain TCP socket to 127.0.0.1 and the wsframe codec.
 * Every call takes a timeout in milliseconds and never waits longer.
 *
 * Receiving answers pings with pongs, skips pongs, reassembles fragmented
 * messages and reports a close frame as a message of its own (opcode
 * MB_WS_OP_CLOSE with its status code), after which the client echoes the
 * close as RFC 6455 asks. Errors are -errno: -ETIMEDOUT (nothing in time),
 * -ECONNRESET (the peer went away without a close frame), -EPROTO (bytes that
 * are not WebSocket), -ENOTCONN (the connection is already closed).
 */
#ifndef MB_TESTS_WSCLIENT_H
#define MB_TESTS_WSCLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "tests/support/wsframe.h"

struct mb_wsclient;

struct mb_wsmsg {
    int opcode;       /* MB_WS_OP_TEXT, MB_WS_OP_BINARY or MB_WS_OP_CLOSE */
    const char *data; /* payload, NUL-terminated; owned by the client, valid until
                         the next receive (for a close: the reason) */
    size_t len;
    int close_code; /* for MB_WS_OP_CLOSE: the status, 1005 when the frame had none */
};

/*
 * Connects to ws://127.0.0.1:port<path>, offering subprotocol when not NULL.
 * On success *out owns the client. On failure returns -errno (-EPROTO when the
 * server answered without switching protocols) and, when err is not NULL,
 * writes what happened into it (the server's status line if it answered).
 */
int mb_wsclient_connect(struct mb_wsclient **out, uint16_t port, const char *path,
                        const char *subprotocol, int timeout_ms, char *err, size_t errlen);
/* The subprotocol the server selected, "" when none. */
const char *mb_wsclient_protocol(const struct mb_wsclient *c);
/* The socket, e.g. to shut it down under the client in a test. */
int mb_wsclient_fd(const struct mb_wsclient *c);

/* One frame (fin set) with opcode and payload; text uses strlen. */
int mb_wsclient_send(struct mb_wsclient *c, int opcode, const void *payload, size_t len,
                     int timeout_ms);
int mb_wsclient_send_text(struct mb_wsclient *c, const char *text, int timeout_ms);
/* Any frame, e.g. one fragment of a message. */
int mb_wsclient_send_frame(struct mb_wsclient *c, int fin, int opcode, const void *payload,
                           size_t len, int timeout_ms);
/* Bytes exactly as given, bypassing framing. */
int mb_wsclient_send_raw(struct mb_wsclient *c, const void *bytes, size_t len, int timeout_ms);

/* Waits for the next data message or close frame. Returns 0 and fills *msg. */
int mb_wsclient_recv(struct mb_wsclient *c, struct mb_wsmsg *msg, int timeout_ms);
/* Sends text and waits for the next message: the usual request/response. */
int mb_wsclient_call(struct mb_wsclient *c, const char *text, struct mb_wsmsg *reply,
                     int timeout_ms);

/* Sends a close frame with code (0 = none) unless one was sent, then waits
 * (bounded) for the server's close frame or the end of the stream. */
int mb_wsclient_close(struct mb_wsclient *c, int code, int timeout_ms);
/* Closes the socket and frees; sets *cp to NULL. */
void mb_wsclient_free(struct mb_wsclient **cp);

#endif
