/*
 * tests/testserver/tsmcp.h — the test server's MCP logic, independent of any
 * transport: one JSON-RPC message in, zero or more messages out.
 *
 * A transport (stdio, WebSocket, Streamable HTTP) owns two kinds of objects
 * and hands them to mb_tsmcp_handle() with every message:
 *
 *   - a session (struct mb_tsmcp_session): what the client negotiated and the
 *     requests it has in flight, so that notifications/cancelled can find
 *     them. stdio and WebSocket have one per connection; HTTP one per
 *     Mcp-Session-Id.
 *   - a channel (struct mb_tsmcp_chan): where the messages that answer a
 *     request go (progress notifications, then the reply). stdio and
 *     WebSocket have one per connection; HTTP one per POST.
 *
 * Replies to most requests are sent on the channel before handle() returns.
 * `sleep` and `progress` with an interval answer later from a libev timer on
 * the loop given to mb_tsmcp_new(), which is how a slow request never delays
 * another. A channel that goes away must be closed with mb_tsmcp_chan_close()
 * (its pending requests are dropped silently); a session that ends with
 * mb_tsmcp_session_close() (its pending requests' channels get
 * MB_TSMCP_ABORT).
 *
 * Ids are spliced into replies byte for byte as the client wrote them.
 */
#ifndef MB_TS_TSMCP_H
#define MB_TS_TSMCP_H

#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct mb_tsmcp;
struct mb_tsmcp_op;

/* Protocol revisions the server speaks; initialize answers with the client's
 * version when listed here, otherwise with the first (latest). */
#define MB_TSMCP_VERSIONS                                                                          \
    {                                                                                              \
        "2025-11-25", "2025-06-18", "2025-03-26"                                                   \
    }

struct mb_tsmcp_opts {
    /* serverInfo.name, and tools are named "<name>_echo" etc. NULL: name
     * "mcp-bridge-testserver" and unprefixed tools. Must match
     * [A-Za-z0-9_.-]{1,64} (see mb_tsmcp_name_valid). */
    const char *name;
    unsigned extra_tools; /* adds tool_0 .. tool_<N-1> */
    unsigned page_size;   /* tools/list page size; 0 = everything in one page */
};

enum mb_tsmcp_kind {
    MB_TSMCP_NOTIFY, /* a notification related to a request (progress) */
    MB_TSMCP_REPLY,  /* the response that completes a request */
    /* The request will get no response (cancelled, or its session ended).
     * msg is a -32800 error response a transport may send if it must answer
     * something (an HTTP POST that has not started its body); stdio and
     * WebSocket ignore it, as the MCP cancellation rules ask. */
    MB_TSMCP_ABORT,
};

struct mb_tsmcp_chan {
    /* Set by the transport before mb_tsmcp_chan_open(). send() must copy the
     * message; it must not call back into mb_tsmcp. */
    void (*send)(struct mb_tsmcp_chan *ch, enum mb_tsmcp_kind kind, const char *msg, size_t len);
    /* Non-zero: the channel also receives notifications that belong to no
     * request (notifications/tools/list_changed), like a WebSocket. */
    int broadcast;
    /* Owned by mb_tsmcp. */
    struct mb_tsmcp_chan *bnext, **bprevp;
    struct mb_tsmcp_op *ops;
};

struct mb_tsmcp_session {
    /* Owned by mb_tsmcp. */
    struct mb_tsmcp_op *ops;
    int initialized;   /* notifications/initialized seen */
    int log_level;     /* index into the MCP logging levels, set by logging/setLevel */
    char protocol[16]; /* negotiated protocol version, "" before initialize */
};

enum mb_tsmcp_result {
    MB_TSMCP_REQUEST = 0,  /* a request: its reply is (or will be) sent on the channel */
    MB_TSMCP_ACCEPTED = 1, /* a notification or a response: nothing will be sent */
    MB_TSMCP_INVALID = 2,  /* not valid JSON-RPC: an error reply was sent on the channel */
};

/* Returns NULL (and logs why) on allocation failure or bad options. */
struct mb_tsmcp *mb_tsmcp_new(const struct mb_tsmcp_opts *opts, struct ev_loop *loop);
/* Drops every pending request silently. */
void mb_tsmcp_free(struct mb_tsmcp **tsp);

void mb_tsmcp_chan_open(struct mb_tsmcp *ts, struct mb_tsmcp_chan *ch);
void mb_tsmcp_chan_close(struct mb_tsmcp *ts, struct mb_tsmcp_chan *ch);
void mb_tsmcp_session_open(struct mb_tsmcp_session *s);
void mb_tsmcp_session_close(struct mb_tsmcp *ts, struct mb_tsmcp_session *s);

/* Handles one JSON-RPC message (without framing). */
enum mb_tsmcp_result mb_tsmcp_handle(struct mb_tsmcp *ts, struct mb_tsmcp_session *s,
                                     struct mb_tsmcp_chan *ch, const char *msg, size_t len);

/* Requests answered later that are still pending, over all sessions. */
size_t mb_tsmcp_pending(const struct mb_tsmcp *ts);
/* True when msg is a valid JSON-RPC request whose method is "initialize". */
int mb_tsmcp_is_initialize(const char *msg, size_t len);
/* True when v (n bytes) is one of MB_TSMCP_VERSIONS. */
int mb_tsmcp_version_supported(const char *v, size_t n);
/* True when name is usable as --name: [A-Za-z0-9_.-]{1,64}. */
int mb_tsmcp_name_valid(const char *name);

#endif
