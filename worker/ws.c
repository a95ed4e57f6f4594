/*
 * worker/ws.c — the lws protocol callback of the client-facing vhost:
 * connection lifecycle, WebSocket messages, and the hand-off of plain HTTP
 * requests to http.c.
 *
 * Protocols: lws picks the protocol of a WebSocket from the client's
 * Sec-WebSocket-Protocol list, and when the client offers none it uses the
 * vhost's protocol 0. So protocol 0 ("mcp-bridge") serves plain HTTP and
 * WebSockets opened without a subprotocol, and protocol 1 is "mcp", which lws
 * echoes in the handshake when the client offers it. Both share this
 * callback and the server.websocket buffer sizes (rx_buffer_size is the lws
 * receive buffer, tx_packet_size the most lws hands to one send()). A client
 * that offers only subprotocols we do not speak is refused by lws.
 *
 * Messages: one JSON-RPC message per text message. Fragments are
 * reassembled in the connection's rx buffer (a message that arrives whole in
 * one lws callback is parsed in place, without a copy). A binary frame
 * closes with 1003; a message longer than server.max_message_size closes
 * with 1009 as soon as its announced length passes the limit, so at most the
 * limit is ever buffered.
 */
#include <string.h>

#include "common/log.h"
#include "common/time.h"
#include "conf/conf.h"
#include "worker/conn.h"
#include "worker/metrics.h"
#include "worker/worker.h"

/* A reassembly buffer larger than this is released after its message, so a
 * single large message does not pin memory on an idle connection. */
#define RX_KEEP_BYTES (64 * 1024)

static void count_error(struct mb_worker *w, int code)
{
    switch (code) {
    case MB_JSONRPC_PARSE_ERROR:
        mb_worker_count(w, MB_CTR_REQUEST_ERRORS_PARSE_ERROR, 1);
        break;
    case MB_JSONRPC_INVALID_REQUEST:
        mb_worker_count(w, MB_CTR_REQUEST_ERRORS_INVALID_REQUEST, 1);
        break;
    case MB_JSONRPC_METHOD_NOT_FOUND:
        mb_worker_count(w, MB_CTR_REQUEST_ERRORS_METHOD_NOT_FOUND, 1);
        break;
    default:
        break;
    }
}

static int on_message(struct mb_conn *c, const char *text, size_t len)
{
    struct mb_worker *w = c->w;
    struct mb_mcp_outcome res;
    uint64_t t0 = mb_time_mono_ns();

    mb_worker_count(w, MB_CTR_WS_MESSAGES_IN, 1);
    mb_worker_count(w, MB_CTR_REQUESTS_TOTAL, 1);
    mb_buf_reset(&w->reply);
    mb_worker_count(w, MB_CTR_REQUESTS_IN_FLIGHT, 1);
    c->session.arrival_ns = t0; /* a request answered later is timed from here (router.c) */
    int rc = mb_mcp_handle(&c->session, text, len, &w->reply, &res);
    mb_worker_count(w, MB_CTR_REQUESTS_IN_FLIGHT, -1);
    if (rc != 0) {
        mb_log_error("out of memory building a reply: closing the connection");
        return -1;
    }
    if (res.error)
        count_error(w, res.error);
    if (res.replied && mb_conn_enqueue(c, w->reply.data, w->reply.len) != 0) {
        mb_log_error("out of memory queueing a reply: closing the connection");
        return -1;
    }
    if (res.replied) {
        uint64_t ns = mb_time_mono_ns() - t0;
        mb_counters_observe(w->shm, w->index, MB_HIST_REQUEST_DURATION, ns);
        mb_metrics_request_done(w, c, &res, len, w->reply.len, ns);
    }
    mb_conn_touch(c);
    return 0;
}

static int close_with(struct lws *wsi, enum lws_close_status code, const char *reason)
{
    lws_close_reason(wsi, code, (unsigned char *)reason, strlen(reason));
    return -1;
}

static int on_receive(struct mb_conn *c, struct lws *wsi, const char *in, size_t len)
{
    struct mb_worker *w = c->w;

    if (lws_frame_is_binary(wsi)) {
        mb_worker_count(w, MB_CTR_REQUEST_ERRORS_BINARY_FRAME, 1);
        return close_with(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
                          "binary frames are not accepted: send JSON-RPC as text");
    }
    mb_worker_count(w, MB_CTR_BYTES_IN, (int64_t)len);
    uint64_t announced = (uint64_t)c->rx.len + len + lws_remaining_packet_payload(wsi);
    if (announced > w->conf->server.max_message_size) {
        mb_worker_count(w, MB_CTR_REQUEST_ERRORS_OVERSIZE, 1);
        mb_buf_free(&c->rx);
        return close_with(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                          "message exceeds server.max_message_size");
    }
    if (lws_is_final_fragment(wsi) && c->rx.len == 0)
        return on_message(c, in, len);
    if (mb_buf_append(&c->rx, in, len) != 0) {
        mb_log_error("out of memory reassembling a message: closing the connection");
        return -1;
    }
    if (!lws_is_final_fragment(wsi))
        return 0;
    int rc = on_message(c, c->rx.data, c->rx.len);
    if (c->rx.cap > RX_KEEP_BYTES)
        mb_buf_free(&c->rx);
    else
        mb_buf_reset(&c->rx);
    return rc;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    if (wsi == NULL)
        return 0;
    struct mb_worker *w = lws_context_user(lws_get_context(wsi));
    struct mb_conn *c = lws_get_opaque_user_data(wsi);

    switch (reason) {
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
        /* Failing here makes lws close the socket. */
        return mb_conn_new(w, wsi) ? 0 : -1;
    case LWS_CALLBACK_WSI_DESTROY:
        if (c)
            mb_metrics_conn_gone(w, c);
        mb_conn_free(&c);
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return mb_http_confirm_upgrade(w, wsi);
    case LWS_CALLBACK_HTTP:
        return c ? mb_http_request(w, c, wsi, in) : -1;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return c && c->closing ? -1 : 0;
    case LWS_CALLBACK_ESTABLISHED:
        if (c == NULL)
            return -1;
        c->is_ws = true;
        mb_metrics_conn_ws(w, c);
        mb_conn_touch(c);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        return c ? on_receive(c, wsi, in, len) : -1;
    case LWS_CALLBACK_RECEIVE_PONG:
        if (c)
            mb_conn_pong(c);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return c ? mb_conn_writeable(c) : -1;
    default:
        return 0;
    }
}

void mb_ws_protocols_init(struct mb_worker *w)
{
    size_t rx = (size_t)w->conf->server.websocket.read_buffer_size;
    size_t tx = (size_t)w->conf->server.websocket.write_buffer_size;

    memset(w->protocols, 0, sizeof(w->protocols));
    w->protocols[0].name = "mcp-bridge";
    w->protocols[1].name = "mcp";
    for (int i = 0; i < 2; i++) {
        w->protocols[i].callback = callback;
        w->protocols[i].rx_buffer_size = rx;
        w->protocols[i].tx_packet_size = tx;
        w->protocols[i].id = (unsigned)i;
    }
}
