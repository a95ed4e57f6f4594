/*
 * worker/upstream.h — the transport contract between the backend core
 * (worker/backend.c: handshake, ids, timeouts, routing) and one connection to
 * one backend MCP server (worker/upstream_stdio.c; http and websocket follow
 * the same contract). The core never knows the transport; a transport never
 * reads or rewrites JSON-RPC beyond what its wire needs.
 *
 * Lifetime. Each worker creates its upstreams after fork, one per configured
 * backend, on the worker's own libev loop (w->loop; the worker's lws context
 * is w->ctx for transports built on lws client connections). The core fills
 * the common fields of struct mb_upstream, calls the transport's init
 * function (mb_upstream_<transport>_init, which sets ops and impl), then
 * ops->start(). When the worker exits, after its event loop has ended and
 * before the lws context is destroyed, the core calls ops->close(); the
 * upstream is freed by the core afterwards.
 *
 * The contract a transport implements
 *
 *   int start(u)   Begin connecting (or spawning). Never blocks: no DNS (the
 *                  loader resolved endpoint host names, conf/conf.h
 *                  mb_conf_endpoint.address), no waiting for the peer.
 *                  Returns 0, or MB_ERR when the backend can never work in
 *                  this worker (logged). Success is reported later through
 *                  on_state(UP).
 *   int send(u, msg, len)
 *                  Queue one complete JSON-RPC message (text, no trailing
 *                  newline, not NUL-terminated; copied before returning).
 *                  Never blocks. Returns 0, MB_AGAIN when not UP (the core
 *                  only sends while UP, so this is a race it handles), or
 *                  MB_ERR (out of memory). Messages may be answered in any
 *                  order: the core matches responses by id.
 *   void close(u)  Final and synchronous: release everything (sockets,
 *                  timers, children) within a bounded time (stdio: at most
 *                  about two seconds: close stdin, TERM, KILL). No callback
 *                  may run during or after it.
 *
 * The events a transport reports (u->ev, with u->owner as first argument)
 *
 *   on_state(owner, UP, NULL)    The peer can take messages now. The core
 *                  then runs its MCP handshake: the first message it sends
 *                  after every UP is `initialize`, followed by
 *                  `notifications/initialized` once answered.
 *   on_state(owner, DOWN, why)   The connection is lost or could not be
 *                  made. Everything sent and not yet answered is lost: the
 *                  core fails those requests with -32010 itself. The
 *                  transport retries on its own, with backoff (start at
 *                  about 100 ms, double, cap at a few seconds, reset after a
 *                  connection that stayed up), and reports UP again. why is
 *                  a short text for logs and error data ("exited with
 *                  status 1", "connect: connection refused").
 *   on_message(owner, msg, len)  One complete message from the backend
 *                  (response, notification, or server-to-client request),
 *                  valid only during the call. Transports deliver whatever
 *                  they read; the core validates it (a message that is not
 *                  JSON-RPC is logged as a protocol violation and dropped)
 *                  and returns false for such a message, true otherwise (so
 *                  true means msg is well-formed JSON: the transport may
 *                  then read its members without validating). A
 *                  transport whose messages answer its own exchanges
 *                  (Streamable HTTP) fails that exchange then, so the
 *                  request gets -32011 at once instead of waiting for its
 *                  timeout; it need not validate bodies itself. Messages
 *                  that arrive before the initialize reply are delivered
 *                  too.
 *   on_send_failed(owner, msg, len, why, not_jsonrpc)
 *                  Optional, for transports where each message is its own
 *                  exchange (Streamable HTTP): a message given to send() got
 *                  no usable answer. The core answers the request inside msg
 *                  (if it is one) naming why: -32011 (upstream protocol
 *                  violation) when not_jsonrpc, the answer being something
 *                  on_message refused; -32010 (backend unavailable)
 *                  otherwise (HTTP 5xx, the connection dropped before the
 *                  response, no session). Transports with one long-lived stream report DOWN
 *                  instead.
 *
 * Callbacks may be made from any libev/lws callback of the worker's loop,
 * never from inside send() or start() (queue and report on the next loop
 * iteration instead), so the core never re-enters itself.
 *
 * Notes for the Streamable HTTP transport: it owns Mcp-Session-Id and
 * MCP-Protocol-Version. It learns the session id from the response to the
 * `initialize` the core sends first after UP, and the version from that
 * response's result; it keeps a copy of that initialize (and the
 * notifications/initialized that follows) to replay when the server answers
 * 404 for the session, then retries the failed message once — without
 * reporting DOWN. Server messages on SSE streams (responses, progress,
 * server-to-client requests) go to on_message one by one. backends[].headers
 * go on every request; nothing from the client (its Authorization) ever does.
 */
#ifndef MB_WORKER_UPSTREAM_H
#define MB_WORKER_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>

struct mb_conf;
struct mb_conf_backend;
struct mb_worker;
struct mb_upstream;

enum mb_upstream_state {
    MB_UPSTREAM_DOWN = 0,
    MB_UPSTREAM_UP = 1,
};

struct mb_upstream_events {
    void (*on_state)(void *owner, enum mb_upstream_state st, const char *why);
    bool (*on_message)(void *owner, const char *msg, size_t len);
    void (*on_send_failed)(void *owner, const char *msg, size_t len, const char *why,
                           bool not_jsonrpc);
};

struct mb_upstream_ops {
    const char *name; /* "stdio", "http", "websocket" */
    int (*start)(struct mb_upstream *u);
    int (*send)(struct mb_upstream *u, const char *msg, size_t len);
    void (*close)(struct mb_upstream *u);
};

struct mb_upstream {
    /* Set by the core before init. */
    const struct mb_conf *conf;          /* the generation the worker runs */
    const struct mb_conf_backend *bconf; /* this backend's entry in it */
    struct mb_worker *w;                 /* w->loop, w->ctx */
    struct ev_loop *loop;
    const struct mb_upstream_events *ev;
    void *owner;
    /* Set by the transport's init. */
    const struct mb_upstream_ops *ops;
    void *impl;
};

/* Transport constructors: set u->ops and u->impl. Return 0 or MB_ERR. */
int mb_upstream_stdio_init(struct mb_upstream *u);
int mb_upstream_http_init(struct mb_upstream *u); /* worker/upstream_http.c */
int mb_upstream_ws_init(struct mb_upstream *u);   /* worker/upstream_ws.c */

#endif
