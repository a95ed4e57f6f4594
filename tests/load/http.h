/*
 * tests/load/http.h — the client side of Streamable HTTP that the load
 * generator needs: writing a POST, reading a response head, de-chunking a
 * body, and splitting a text/event-stream body into its events.
 *
 * A response is handled once it is complete (the head, then a body framed by
 * Content-Length, by chunked encoding, or — with neither — by the end of the
 * connection). Replies are small, so waiting for the whole body costs nothing
 * and keeps every parser a pure function of a buffer.
 */
#ifndef MB_TESTS_LOAD_HTTP_H
#define MB_TESTS_LOAD_HTTP_H

#include <stddef.h>
#include <stdint.h>

#define MB_LOAD_SESSION_MAX 256

struct mb_load_http_resp {
    int status;
    int64_t content_length; /* -1 when absent */
    int chunked;
    int close; /* the server closes after this response */
    int sse;   /* Content-Type text/event-stream */
    int has_session;
    char session_id[MB_LOAD_SESSION_MAX];
};

/* Parses a response head at buf. Returns its length (through the blank line)
 * when complete, 0 when more bytes are needed, -1 when malformed (or a header
 * line longer than the limits). */
long mb_load_http_parse_head(const char *buf, size_t len, struct mb_load_http_resp *r);

/* Whether a response of this status has no body whatever its headers say. */
int mb_load_http_bodyless(int status);

/* Decodes a chunked body at buf in place: returns the bytes the encoded body
 * took (through the last chunk and trailers) with the decoded bytes in
 * buf[0 .. *out_len), 0 when incomplete (buf untouched), -1 when malformed. */
long mb_load_http_dechunk(char *buf, size_t len, size_t *out_len);

/* Iterates the events of an event stream. *pos is the read position (start
 * at 0). Returns 1 with an event's data fields joined by '\n' in data[0..*dlen)
 * (events without data are skipped), 0 when no complete event remains, -1 when
 * an event's data does not fit in cap. */
int mb_load_sse_next(const char *buf, size_t len, size_t *pos, char *data, size_t cap,
                     size_t *dlen);

/* Writes a POST of body into out. session may be NULL or "", protocol_version
 * may be NULL; extra_headers is a run of complete "Name: value\r\n" lines (or
 * ""). Returns the length, or -1 when out is too small. */
long mb_load_http_request(char *out, size_t cap, const char *path, const char *host,
                          const char *session, const char *protocol_version,
                          const char *extra_headers, const char *body, size_t body_len);

#endif
