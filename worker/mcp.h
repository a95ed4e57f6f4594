/*
 * worker/mcp.h — the MCP methods the gateway answers itself, and the
 * per-session state they need. One call handles one complete client message
 * (a WebSocket text frame) and appends the reply, if any, to a buffer.
 *
 * Answered here (DESIGN §4, issue 2):
 *   initialize                 negotiates the protocol version (below) and
 *                              answers with the gateway's capabilities
 *   notifications/initialized  marks the session ready; no reply
 *   ping                       {}
 * Everything else goes to the router (worker/router.h) when the session has
 * one: lists, calls, notifications such as cancelled, and the client's
 * answers to server-to-client requests; a method the router does not route
 * gets -32601. Without a router (no worker around it), tools/list answers
 * {"tools":[]} (any cursor is unknown, -32602) and tools/call -32602
 * "Unknown tool"; other requests -32601; notifications are ignored.
 *
 * initialize answers the capabilities of the router (mb_router_capabilities:
 * tools always, the rest when a backend announced it).
 *
 * Sessions: a WebSocket connection is one session. A request that arrives
 * before initialize opens an implicit session at the newest version (load
 * testers send tools/list first); a later initialize is still accepted once.
 * A second initialize on one session is -32600.
 *
 * Version negotiation: the client's protocolVersion is echoed when the
 * gateway speaks it (mb_mcp_versions); any other string gets the newest.
 */
#ifndef MB_WORKER_MCP_H
#define MB_WORKER_MCP_H

#include <stdbool.h>
#include <stddef.h>

#include "worker/buf.h"
#include "worker/jsonrpc.h"

/* Protocol versions the gateway speaks, newest first, NULL-terminated. */
extern const char *const mb_mcp_versions[];

struct mb_router;
struct mb_conn;

struct mb_mcp_session {
    struct mb_router *router; /* NULL: no backends (unit tests); see below */
    struct mb_conn *conn;     /* the connection, for replies that come later */
    int version;              /* index in mb_mcp_versions; -1 before any request */
    bool initialized;         /* an initialize was answered */
    bool ready;               /* notifications/initialized was received */
    bool implicit;            /* the session was opened by a request before initialize */
};

/* What one message turned out to be, for counters. */
struct mb_mcp_outcome {
    enum mb_jsonrpc_kind kind;
    bool replied; /* a reply was appended to out (false too when the router took
                     the request: its reply comes later) */
    int error;    /* 0, or the JSON-RPC error code that was answered */
    /* For metrics and the access log (metrics.c mb_metrics_note). */
    int method;           /* enum mb_method: the bounded label */
    char method_name[64]; /* as sent, truncated; "" when not a request */
    char tool[128];       /* tools/call: params.name, truncated; else "" */
};

void mb_mcp_session_init(struct mb_mcp_session *s);
/* The version to answer a client that asked for requested (never NULL). */
const char *mb_mcp_negotiate(const char *requested);
/* Handles one message (text, len bytes). Returns 0, or MB_ERR when memory ran
 * out (out is then unchanged and the caller should drop the connection). */
int mb_mcp_handle(struct mb_mcp_session *s, const char *text, size_t len, struct mb_buf *out,
                  struct mb_mcp_outcome *res);

#endif
