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
 * tools always, the rest when a backend announced it). Backends finish their
 * own handshake a little after the worker starts, and a client that
 * initializes in that window must not be told "tools only" for its whole
 * session. So while a configured backend of the worker is still starting
 * (its process or connection is up, its initialize not answered), the
 * router holds the reply (mb_router_initialize) until no backend is
 * starting any more (ready, or failed) or min(routing.request_timeout, 5 s)
 * has passed, and then answers with what is ready (mb_mcp_initialize_reply).
 * A backend that is down (not starting) is not waited for. When a backend
 * becomes ready after a session was answered, the router sends that session
 * notifications/tools/list_changed, and prompts/ or resources/list_changed
 * when the session was given that capability and the backend has it (a
 * capability the session was not given cannot be added later: MCP fixes
 * capabilities at initialize). Sessions that never sent initialize get no
 * such notification from this rule (they negotiated nothing).
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
#include <stdint.h>

#include "worker/buf.h"
#include "worker/jsonrpc.h"

/* Protocol versions the gateway speaks, newest first, NULL-terminated. */
extern const char *const mb_mcp_versions[];

struct mb_router;
struct mb_conn;

/* Capabilities beyond tools that a session was given (caps_sent). */
#define MB_MCP_CAP_PROMPTS   1u
#define MB_MCP_CAP_RESOURCES 2u

struct mb_mcp_session {
    struct mb_router *router; /* NULL: no backends (unit tests); see below */
    struct mb_conn *conn;     /* the connection, for replies that come later */
    uint64_t arrival_ns;      /* set by the transport: when the message being handled
                                 arrived (mb_time_mono_ns); 0 = unknown, take now */
    uint64_t ready_seq;       /* the router's ready sequence when initialize was answered */
    int version;              /* index in mb_mcp_versions; -1 before any request */
    unsigned caps_sent;       /* MB_MCP_CAP_* in the initialize reply */
    bool initialized;         /* an initialize was received (answered or held) */
    bool init_held;           /* its reply waits for backends still starting */
    bool ready;               /* notifications/initialized was received */
    bool implicit;            /* the session was opened by a request before initialize */
    bool log_names;           /* outcomes carry method_name and tool: the access log is on */
};

/* What one message turned out to be, for counters. */
struct mb_mcp_outcome {
    enum mb_jsonrpc_kind kind;
    bool replied; /* a reply was appended to out (false too when the router took
                     the request: its reply comes later) */
    int error;    /* 0, or the JSON-RPC error code that was answered */
    /* For metrics and the access log (metrics.c mb_metrics_note). */
    int method;           /* enum mb_method: the bounded label */
    char method_name[64]; /* as sent, truncated; "" when not a request, or when
                             the session does not log names (log_names) */
    char tool[128];       /* tools/call: params.name, truncated; else "" (likewise) */
    const char *backend;  /* the backend whose answer this is (its configured name);
                             NULL when the gateway answered itself */
    int backend_stat;     /* mcp_gateway_requests_total: 1 + the backend stats record
                             (metrics_backends.h) of the backend that answered or
                             failed the request; 0 counts it under backend="gateway"
                             (answered by the gateway itself, including from the
                             response cache even though backend names the source) */
};

void mb_mcp_session_init(struct mb_mcp_session *s);
/* The version to answer a client that asked for requested (never NULL). */
const char *mb_mcp_negotiate(const char *requested);
/* Handles one message (text, len bytes). Returns 0, or MB_ERR when memory ran
 * out (out is then unchanged and the caller should drop the connection). */
int mb_mcp_handle(struct mb_mcp_session *s, const char *text, size_t len, struct mb_buf *out,
                  struct mb_mcp_outcome *res);
/* Appends the reply to an initialize with raw id (id_len bytes) for s (whose
 * version is negotiated): the router's capabilities now, recorded in
 * s->caps_sent and s->ready_seq. Returns 0 or MB_ERR (out unchanged). */
int mb_mcp_initialize_reply(struct mb_mcp_session *s, const char *id, size_t id_len,
                            struct mb_buf *out);

#endif
