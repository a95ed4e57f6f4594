/*
 * tests/support/wsframe.h — a small client-side WebSocket (RFC 6455) codec for
 * the test client and the load generator: the opening handshake request and
 * its check (and the server side's accept token, for the load generator's
 * --floor responder), frame encoding (client frames are masked) and frame parsing.
 * It never allocates; callers own every buffer.
 */
#ifndef MB_TESTS_WSFRAME_H
#define MB_TESTS_WSFRAME_H

#include <stddef.h>
#include <stdint.h>

enum {
    MB_WS_OP_CONT = 0x0,
    MB_WS_OP_TEXT = 0x1,
    MB_WS_OP_BINARY = 0x2,
    MB_WS_OP_CLOSE = 0x8,
    MB_WS_OP_PING = 0x9,
    MB_WS_OP_PONG = 0xA
};

struct mb_wsframe {
    int fin;
    int opcode;
    int masked;
    uint8_t mask[4];
    const uint8_t *payload; /* points into the parsed buffer (still masked if masked) */
    uint64_t len;
};

/* Writes a handshake request for ws://host/path into out. key must be the
 * 24-character base64 key (see mb_wsframe_make_key). subprotocol may be NULL.
 * Returns the length, or -1 when out is too small. */
int mb_wsframe_handshake_request(char *out, size_t cap, const char *host, const char *path,
                                 const char *key, const char *subprotocol);
/* Fills key[25] with a fresh random base64 key. */
void mb_wsframe_make_key(char key[25]);
/* Sec-WebSocket-Accept for key: base64(SHA-1(key + the RFC 6455 GUID)), 28
 * characters and a NUL. Returns 0, or -1 when key is implausibly long. */
int mb_wsframe_accept_token(const char *key, char out[29]);
/* Finds header name (case-insensitive) in a request or response head of len
 * bytes and copies its value, trimmed, into val. Returns 0, or -1 when the
 * header is missing or its value does not fit in cap. */
int mb_wsframe_header_value(const char *head, size_t len, const char *name, char *val, size_t cap);
/* Checks a complete response head (up to and including "\r\n\r\n"): status
 * 101 and the right Sec-WebSocket-Accept for key. Returns 0 or -1. When
 * protocol is not NULL it receives the Sec-WebSocket-Protocol value ("" if none). */
int mb_wsframe_handshake_check(const char *head, size_t len, const char *key, char *protocol,
                               size_t protocol_cap);

/* Encodes one frame. mask != 0 masks the payload with mask_key (clients must).
 * Returns the frame length, or -1 when out is too small. */
long mb_wsframe_encode(uint8_t *out, size_t cap, int fin, int opcode, const void *payload,
                       size_t len, int mask, uint32_t mask_key);
/* Parses one frame at buf. Returns the bytes it takes (header + payload) when a
 * whole frame is there, 0 when more bytes are needed, -1 on a protocol error
 * (reserved bits, a control frame over 125 bytes or fragmented, a 64-bit
 * length with the top bit set). */
long mb_wsframe_parse(const uint8_t *buf, size_t len, struct mb_wsframe *f);
/* Unmasks (or masks) len bytes in place, starting at payload offset off. */
void mb_wsframe_unmask(uint8_t *p, size_t len, const uint8_t mask[4], size_t off);

#endif
