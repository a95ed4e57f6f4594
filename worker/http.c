/*
 * worker/http.c — plain HTTP requests on the client listeners, and the
 * decision whether an Upgrade request may become a WebSocket.
 *
 *   GET|HEAD /healthz           200 "ok\n" (any other method: 405)
 *   GET|HEAD /readyz            200 "ready\n", or 503 "not ready: <why>\n"
 *                               (metrics.h says what ready means); the
 *                               metrics endpoint answers both as well
 *   Upgrade: websocket on one of server.paths   becomes a WebSocket (ws.c)
 *   Upgrade: websocket elsewhere                404
 *   Upgrade: websocket offering only subprotocols other than "mcp"   400
 *   GET on one of server.paths, no upgrade      426 Upgrade Required
 *   any other method on server.paths            501 Not Implemented
 *   anything else                               404
 *
 * 501, not 405, for POST/DELETE on server.paths: the method is right for
 * that path (Streamable HTTP uses it) and will be served once that transport
 * exists (a later issue); 405 would tell the client the path never accepts
 * it. GET without an upgrade is answered 426 because on these paths it can
 * only mean a WebSocket client that forgot the handshake headers.
 *
 * Responses are small and written at once. While the worker drains, they go
 * out without a Content-Length and with "connection: close", so lws closes
 * the connection after the response instead of keeping it alive.
 */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "conf/conf.h"
#include "worker/conn.h"
#include "worker/metrics.h"
#include "worker/worker.h"

static bool is_mcp_path(const struct mb_worker *w, const char *path)
{
    const struct mb_conf_strv *p = &w->conf->server.paths;
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->v[i], path) == 0)
            return true;
    return false;
}

/* Writes a whole response; returns 0 or -1 (the connection failed). */
static int write_response(struct mb_worker *w, struct lws *wsi, unsigned status, const char *body,
                          const char *hname, const char *hvalue, bool head_only)
{
    unsigned char buf[LWS_PRE + 1024];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
    size_t blen = strlen(body);
    lws_filepos_t clen =
        w->phase == MB_PHASE_RUNNING ? (lws_filepos_t)blen : LWS_ILLEGAL_HTTP_CONTENT_LEN;

    if (lws_add_http_common_headers(wsi, status, "text/plain; charset=utf-8", clen, &p, end))
        return -1;
    if (hname != NULL &&
        lws_add_http_header_by_name(wsi, (const unsigned char *)hname,
                                    (const unsigned char *)hvalue, (int)strlen(hvalue), &p, end))
        return -1;
    if (lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    if (!head_only) {
        unsigned char body_buf[LWS_PRE + 512];
        if (blen > sizeof(body_buf) - LWS_PRE)
            return -1;
        memcpy(body_buf + LWS_PRE, body, blen);
        if (lws_write(wsi, body_buf + LWS_PRE, blen, LWS_WRITE_HTTP_FINAL) != (int)blen)
            return -1;
    }
    return 0;
}

/* A response to an ordinary request; returns what the lws callback returns. */
static int respond(struct mb_worker *w, struct lws *wsi, unsigned status, const char *body,
                   const char *hname, const char *hvalue, bool head_only)
{
    if (write_response(w, wsi, status, body, hname, hvalue, head_only) != 0)
        return -1;
    /* Nonzero means lws should close: no keep-alive (or draining). */
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

int mb_http_request(struct mb_worker *w, struct mb_conn *c, struct lws *wsi, const char *path)
{
    char *uri;
    int ulen;
    int meth = lws_http_get_uri_and_method(wsi, &uri, &ulen);
    bool head = meth == LWSHUMETH_HEAD;

    mb_conn_touch(c);
    mb_metrics_conn_http(w, c);
    if (path == NULL)
        path = "";
    if (strcmp(path, "/readyz") == 0) {
        const char *why;
        char text[256];
        if (meth != LWSHUMETH_GET && !head)
            return respond(w, wsi, 405, "method not allowed: /readyz answers GET and HEAD\n",
                           "allow:", "GET, HEAD", false);
        bool ready = mb_metrics_ready(w, &why);
        snprintf(text, sizeof(text), ready ? "ready\n" : "not ready: %s\n", why);
        return respond(w, wsi, ready ? 200 : 503, text, NULL, NULL, head);
    }
    if (strcmp(path, "/healthz") == 0) {
        if (meth == LWSHUMETH_GET || head)
            return respond(w, wsi, 200, "ok\n", NULL, NULL, head);
        return respond(w, wsi, 405, "method not allowed: /healthz answers GET and HEAD\n",
                       "allow:", "GET, HEAD", false);
    }
    if (is_mcp_path(w, path)) {
        if (meth == LWSHUMETH_GET || head)
            return respond(w, wsi, 426,
                           "this endpoint speaks MCP over WebSocket: send a WebSocket upgrade\n",
                           "upgrade:", "websocket", head);
        return respond(w, wsi, 501,
                       "Streamable HTTP is not supported yet: connect with a WebSocket\n", NULL,
                       NULL, false);
    }
    return respond(w, wsi, 404, "not found\n", NULL, NULL, head);
}

/* True when the client offers no subprotocol, or offers one lws will pick
 * (ws.c: "mcp", or the default protocol's name). */
static bool subprotocol_ok(struct mb_worker *w, struct lws *wsi)
{
    char list[256];
    int n = lws_hdr_copy(wsi, list, sizeof(list), WSI_TOKEN_PROTOCOL);
    if (n <= 0)
        return n == 0 || lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL) == 0;
    char *save = NULL;
    for (char *t = strtok_r(list, ", \t", &save); t != NULL; t = strtok_r(NULL, ", \t", &save))
        for (int i = 0; w->protocols[i].name != NULL; i++)
            if (strcmp(t, w->protocols[i].name) == 0)
                return true;
    return false;
}

int mb_http_confirm_upgrade(struct mb_worker *w, struct lws *wsi)
{
    char path[512];
    int n = lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI);
    const char *why;
    unsigned status;

    if (n <= 0 || !is_mcp_path(w, path)) {
        status = 404;
        why = "not found: no WebSocket endpoint on this path\n";
    } else if (!subprotocol_ok(w, wsi)) {
        /* lws would just hang up; say why instead. */
        status = 400;
        why = "unsupported WebSocket subprotocol: offer \"mcp\" or none\n";
    } else {
        return 0;
    }
    /* Returning >0 tells lws we answered the request ourselves (it then
     * completes the transaction). */
    if (write_response(w, wsi, status, why, NULL, NULL, false) != 0)
        return -1;
    return 1;
}
