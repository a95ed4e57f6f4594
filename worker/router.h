/*
 * worker/router.h — the backends of one worker and the routing of MCP
 * messages between its clients and them (DESIGN §3, §4).
 *
 * One router per worker, made after fork (mb_router_new): one backend per
 * configured entry, each with its upstream (worker/upstream.h), its own MCP
 * handshake with the server, the capabilities the server announced, and the
 * requests sent to it and not answered yet.
 *
 * Client → backend (mb_router_request, called by mcp.c after parsing; the
 * one place where a request is routed, so a rate limit or an auth check goes
 * right before the call to route_request() in router.c):
 *   tools/list, prompts/list, resources/list, resources/templates/list
 *       fanned out to every backend that is up or starting, upstream pages
 *       drained, merged (worker/aggregate.h); a backend that is down
 *       (restarting after a crash) is left out rather than stall the list.
 *   tools/call, prompts/get (params.name), resources/read,
 *   resources/subscribe, resources/unsubscribe (params.uri),
 *   completion/complete (params.ref.name or params.ref.uri)
 *       to the owning backend, prefix stripped. Unknown name: -32602 whose
 *       data is {"name": ...} or {"uri": ...}. A backend that is down gets
 *       the request when it is back, within its request_timeout.
 *   logging/setLevel  sent to every backend; answered {} at once.
 *   notifications/cancelled  only to the backend that owns the request
 *       (with the gateway's id); the request is then forgotten.
 *   responses to server-to-client requests go back to their backend with
 *       the backend's own id.
 *
 * Backend → client:
 *   responses: the client's raw id spliced back, byte for byte;
 *   notifications/progress: to the client that owns the progress token
 *       (upstream tokens are the gateway id of the request, so no table);
 *   notifications/message: to clients of this worker that set a log level;
 *   notifications/{tools,prompts,resources}/list_changed: to every client
 *       session of this worker; and, from the gateway, to sessions answered
 *       before a backend became ready (mcp.h);
 *   notifications/resources/updated: to clients that subscribed (URI
 *       prefixed);
 *   resources/read results: every contents[].uri prefixed like the URIs
 *       resources/list shows ("<backend>+<uri>"), also when answered from
 *       the response cache (which keeps the backend's own text);
 *   sampling/createMessage, elicitation/create, roots/list: to the client of
 *       the newest request in flight on that backend (a shared upstream
 *       session cannot tell more), with the id "mb-s2c-N"; ping is answered
 *       by the gateway; without any client, roots/list gets {"roots":[]} and
 *       the others -32603.
 *
 * Errors the gateway itself answers (data always names the backend):
 *   -32010 backend unavailable  {"backend","reason"}: down, restarting, its
 *          handshake failed, or the connection was lost with the request in
 *          flight
 *   -32001 request timeout      {"backend","timeout_ms"}: no answer within
 *          backends[].request_timeout (default routing.request_timeout);
 *          the request is cancelled upstream
 *   -32011 upstream protocol violation {"backend","reason"}: the answer was
 *          not a JSON-RPC response (no result or error, a bad list)
 *   -32602 unknown tool / prompt / resource {"name"|"uri"}
 * -32001 is the code the MCP TypeScript SDK uses for a request timeout;
 * -32002 is left alone because MCP uses it for "resource not found".
 */
#ifndef MB_WORKER_ROUTER_H
#define MB_WORKER_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker/buf.h"
#include "worker/jsonrpc.h"

#define MB_ERR_BACKEND_UNAVAILABLE (-32010)
#define MB_ERR_BACKEND_TIMEOUT     (-32001)
#define MB_ERR_UPSTREAM_PROTOCOL   (-32011)

struct mb_worker;
struct mb_conn;
struct mb_router;
struct mb_pending;
struct mb_s2c;
struct mb_mcp_outcome;

/* What a client connection carries for the router (embedded in mb_conn). */
struct mb_router_client {
    struct mb_pending *head; /* its requests waiting for backends */
    struct mb_s2c *s2c;      /* server-to-client requests waiting for its answer */
    uint32_t inflight;       /* requests at backends: they count for the drain */
    bool logging;            /* it sent logging/setLevel */
    bool subscribed;         /* it subscribed to a resource */
};

/* Makes the backends of w->conf and starts their upstreams. */
int mb_router_new(struct mb_worker *w, struct mb_router **out);
/* Closes every upstream (synchronous, bounded; see upstream.h). Clients may
 * still go away afterwards (mb_router_client_gone): nothing is sent then. */
void mb_router_close(struct mb_router *r);
void mb_router_free(struct mb_router **rp);

/* A client request the gateway does not answer itself. Either replies at
 * once into out (res->replied) or takes the request (the reply comes later
 * through mb_conn_enqueue). Returns 0, MB_DECLINED for a method it does not
 * route (the caller answers -32601), or MB_ERR (out of memory). */
int mb_router_request(struct mb_router *r, struct mb_conn *c, const struct mb_jsonrpc_msg *m,
                      const char *text, size_t len, struct mb_buf *out, struct mb_mcp_outcome *res);
/* A client notification (cancelled, roots/list_changed, ...). */
void mb_router_notification(struct mb_router *r, struct mb_conn *c, const struct mb_jsonrpc_msg *m,
                            const char *text, size_t len);
/* A client response to a server-to-client request. */
void mb_router_response(struct mb_router *r, struct mb_conn *c, const struct mb_jsonrpc_msg *m,
                        const char *text, size_t len);
/* Appends the capabilities object answered to a client's initialize: the
 * union of what the backends announced (tools always); *sent (when not
 * NULL) gets the MB_MCP_CAP_* bits announced. */
int mb_router_capabilities(const struct mb_router *r, struct mb_buf *out, unsigned *sent);
/* Counts backends becoming ready (a session answered at sequence N has
 * not heard of a backend that became ready at N+1 or later). */
uint64_t mb_router_ready_seq(const struct mb_router *r);
/* A client's initialize (mcp.c, after validating it and negotiating the
 * version): while some backend of this worker is still starting, the reply
 * is held (returns 0, res->replied false) until none is, or
 * min(routing.request_timeout, 5 s) passed; it is then built by
 * mb_mcp_initialize_reply and queued. MB_DECLINED: answer now (mcp.h). */
int mb_router_initialize(struct mb_router *r, struct mb_conn *c, const struct mb_jsonrpc_msg *m,
                         size_t len, struct mb_mcp_outcome *res);
/* The client is going away: its requests are cancelled upstream and their
 * late answers dropped; its pending server-to-client requests are answered
 * with an error to their backends. */
void mb_router_client_gone(struct mb_router *r, struct mb_conn *c);

#endif
