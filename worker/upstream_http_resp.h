/*
 * worker/upstream_http_resp.h — an incremental HTTP/1.1 response reader for
 * the Streamable HTTP upstream transport (worker/upstream_http.c), free of
 * sockets so it can be unit tested byte by byte.
 *
 * It reads the status line and headers (keeping what the transport needs:
 * status, Content-Type, Mcp-Session-Id, Connection, the body's framing),
 * then the body framed by Content-Length, chunked transfer coding, or the
 * end of the connection. A body of type text/event-stream is parsed as
 * Server-Sent Events as it arrives: each event's data (its data: lines
 * joined by "\n") goes to on_event as soon as the blank line ending the event
 * is read, so progress notifications are not held back until the response
 * ends. Any other body is collected and handed to on_body once complete.
 * Interim 1xx responses are skipped.
 *
 * Limits: the headers at most 64 KiB, a collected body or one event at most
 * max_body bytes; beyond them the response is an error.
 */
#ifndef MB_WORKER_UPSTREAM_HTTP_RESP_H
#define MB_WORKER_UPSTREAM_HTTP_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker/buf.h"

#define MB_HTTP_RESP_MAX_HEADERS (64u * 1024)
#define MB_HTTP_RESP_SESSION_MAX 256

struct mb_http_resp_cb {
    /* The headers are complete (status, sse, session id are set). Optional. */
    void (*on_headers)(void *arg);
    /* One SSE event's data (event type absent or "message"). */
    void (*on_event)(void *arg, const char *data, size_t len);
    /* The whole body of a response that is not an event stream (may be
     * empty), once complete. */
    void (*on_body)(void *arg, const char *data, size_t len);
};

struct mb_http_resp {
    /* mb_http_resp_reset zeroes everything before `line` (a new response
     * on a kept connection costs no more than that): scalars go here. */
    int state;
    int status;
    bool headers_done;
    bool sse;        /* Content-Type: text/event-stream */
    bool json;       /* Content-Type: application/json */
    bool keep_alive; /* the connection can take another request afterwards */
    bool chunked;
    bool has_length;
    bool has_session;
    bool sse_cr;          /* the last byte was a CR ending a line */
    bool sse_have_data;   /* a data: field was seen in this event */
    bool sse_other_event; /* event: names a type other than "message" */
    uint64_t remaining;   /* of the Content-Length body, or of the current chunk */
    size_t header_bytes;
    uint64_t body_bytes; /* body bytes read (after chunk decoding) */
    size_t max_body;     /* kept by reset */
    /* Buffers (reset keeps their memory), then the strings (reset
     * empties them). */
    struct mb_buf line; /* a header, status or chunk-size line being read */
    struct mb_buf body; /* the collected body */
    struct mb_buf sse_line;
    struct mb_buf sse_data;
    char session_id[MB_HTTP_RESP_SESSION_MAX];
    char error[128]; /* why MB_ERR was returned */
};

void mb_http_resp_init(struct mb_http_resp *r, size_t max_body);
/* Ready for the next response on the same connection (keeps the memory). */
void mb_http_resp_reset(struct mb_http_resp *r);
void mb_http_resp_free(struct mb_http_resp *r);

/*
 * Reads n bytes. Returns MB_AGAIN when the response needs more, MB_OK when it
 * is complete (*used = the bytes of p that belonged to it; anything after
 * them is not part of this response), or MB_ERR with r->error set. Callbacks
 * run from inside; they must not reset or free r.
 */
int mb_http_resp_feed(struct mb_http_resp *r, const char *p, size_t n, size_t *used,
                      const struct mb_http_resp_cb *cb, void *arg);
/* The connection ended. Returns MB_OK when that completes the response (a
 * body delimited by the end of the connection), else MB_ERR. */
int mb_http_resp_eof(struct mb_http_resp *r, const struct mb_http_resp_cb *cb, void *arg);

#endif
