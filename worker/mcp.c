/*
 * worker/mcp.c — method dispatch for the MCP methods the gateway answers
 * itself (see mcp.h). Replies are spliced from fixed text and the raw id
 * (jsonrpc.c); cJSON is only used to read the request.
 */
#include "worker/mcp.h"

#include <string.h>

#include "common/errors.h"
#include "worker/router.h"
#include "worker/metrics.h"

const char *const mb_mcp_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", NULL};

#define LIT(b, s) mb_buf_append((b), (s), sizeof(s) - 1)

struct call {
    struct mb_mcp_session *s;
    const struct mb_jsonrpc_msg *m;
    struct mb_buf *out;
    struct mb_mcp_outcome *res;
    const char *text;
    size_t len;
};

void mb_mcp_session_init(struct mb_mcp_session *s)
{
    memset(s, 0, sizeof(*s));
    s->version = -1;
}

static int version_index(const char *v)
{
    for (int i = 0; mb_mcp_versions[i] != NULL; i++)
        if (strcmp(v, mb_mcp_versions[i]) == 0)
            return i;
    return -1;
}

const char *mb_mcp_negotiate(const char *requested)
{
    int i = version_index(requested);
    return mb_mcp_versions[i < 0 ? 0 : i];
}

static int reply_result(struct call *c, const char *json, size_t n)
{
    c->res->replied = true;
    return mb_jsonrpc_write_result(c->out, c->m->id, c->m->id_len, json, n);
}

static int reply_error(struct call *c, int code, const char *msg, const char *detail)
{
    c->res->replied = true;
    c->res->error = code;
    return mb_jsonrpc_write_error(c->out, c->m->id, c->m->id_len, code, msg, detail,
                                  detail ? strlen(detail) : 0);
}

/* params must be absent or an object for every MCP method. */
static int params_ok(struct call *c)
{
    return mb_jsonrpc_params_ok(c->m);
}

static const cJSON *param(struct call *c, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(mb_jsonrpc_params(c->m), name);
}

int mb_mcp_initialize_reply(struct mb_mcp_session *s, const char *id, size_t id_len,
                            struct mb_buf *o)
{
    size_t mark = o->len;
    unsigned caps = 0;
    /* Only capabilities the gateway really has: tools, whose list changes
     * when backends come and go, and what its backends announced. */
    if (LIT(o, "{\"jsonrpc\":\"2.0\",\"id\":") || mb_buf_append(o, id, id_len) ||
        LIT(o, ",\"result\":{\"protocolVersion\":\"") ||
        mb_buf_append_str(o, mb_mcp_versions[s->version < 0 ? 0 : s->version]) ||
        LIT(o, "\",\"capabilities\":") ||
        (s->router ? mb_router_capabilities(s->router, o, &caps)
                   : LIT(o, "{\"tools\":{\"listChanged\":true}}")) ||
        LIT(o, ",\"serverInfo\":{\"name\":\"mcp-bridge\",\"version\":\"" MB_VERSION "\"}}}")) {
        o->len = mark;
        return MB_ERR;
    }
    s->caps_sent = caps;
    s->ready_seq = s->router ? mb_router_ready_seq(s->router) : 0;
    return 0;
}

static int do_initialize(struct call *c)
{
    if (c->s->initialized)
        return reply_error(c, MB_JSONRPC_INVALID_REQUEST,
                           "Invalid Request: initialize was already received on this session",
                           NULL);
    if (!cJSON_IsObject(mb_jsonrpc_params(c->m)))
        return reply_error(c, MB_JSONRPC_INVALID_PARAMS,
                           "Invalid params: initialize needs an object with protocolVersion", NULL);
    const cJSON *pv = param(c, "protocolVersion");
    if (!cJSON_IsString(pv))
        return reply_error(c, MB_JSONRPC_INVALID_PARAMS,
                           "Invalid params: protocolVersion must be a string", NULL);
    int v = version_index(pv->valuestring);
    c->s->version = v < 0 ? 0 : v;
    c->s->initialized = true;
    /* Backends still in their handshake: the router answers later (mcp.h). */
    if (c->s->router && c->s->conn) {
        int rc = mb_router_initialize(c->s->router, c->s->conn, c->m, c->len, c->res);
        if (rc != MB_DECLINED)
            return rc;
    }
    if (mb_mcp_initialize_reply(c->s, c->m->id, c->m->id_len, c->out) != 0)
        return MB_ERR;
    c->res->replied = true;
    return 0;
}

static int do_ping(struct call *c)
{
    if (!params_ok(c))
        return reply_error(c, MB_JSONRPC_INVALID_PARAMS, "Invalid params: params must be an object",
                           NULL);
    return reply_result(c, "{}", 2);
}

static int do_tools_list(struct call *c)
{
    if (!params_ok(c))
        return reply_error(c, MB_JSONRPC_INVALID_PARAMS, "Invalid params: params must be an object",
                           NULL);
    const cJSON *cursor = param(c, "cursor");
    if (cursor != NULL && !cJSON_IsString(cursor))
        return reply_error(c, MB_JSONRPC_INVALID_PARAMS, "Invalid params: cursor must be a string",
                           NULL);
    /* The gateway never hands out a cursor yet, so any cursor is unknown. */
    if (cursor != NULL)
        return reply_error(c, MB_JSONRPC_INVALID_PARAMS, "Invalid params: unknown cursor", NULL);
    static const char empty[] = "{\"tools\":[]}";
    return reply_result(c, empty, sizeof(empty) - 1);
}

static int do_tools_call(struct call *c)
{
    if (!cJSON_IsObject(mb_jsonrpc_params(c->m)))
        return reply_error(c, MB_JSONRPC_INVALID_PARAMS,
                           "Invalid params: tools/call needs an object with name", NULL);
    const cJSON *name = param(c, "name");
    if (!cJSON_IsString(name))
        return reply_error(c, MB_JSONRPC_INVALID_PARAMS, "Invalid params: name must be a string",
                           NULL);
    const cJSON *args = param(c, "arguments");
    if (args != NULL && !cJSON_IsObject(args))
        return reply_error(c, MB_JSONRPC_INVALID_PARAMS,
                           "Invalid params: arguments must be an object", NULL);
    /* No backend is configured yet, so no tool exists (DESIGN §4: unknown
     * names get -32602). */
    return reply_error(c, MB_JSONRPC_INVALID_PARAMS, "Unknown tool", name->valuestring);
}

static void implicit_session(struct call *c)
{
    if (!c->s->initialized && c->s->version < 0) {
        /* A request before initialize opens an implicit session. */
        c->s->version = 0;
        c->s->implicit = true;
    }
}

static int handle_request(struct call *c)
{
    /* initialize and ping are answered here; with a router, everything
     * else goes to it (tools/list and tools/call to the backends). */
    switch (c->m->method_id) {
    case MB_METHOD_INITIALIZE:
        return do_initialize(c);
    case MB_METHOD_PING:
        implicit_session(c);
        return do_ping(c);
    case MB_METHOD_TOOLS_LIST:
        implicit_session(c);
        if (c->s->router == NULL)
            return do_tools_list(c);
        break;
    case MB_METHOD_TOOLS_CALL:
        implicit_session(c);
        if (c->s->router == NULL)
            return do_tools_call(c);
        break;
    default:
        break;
    }
    if (c->s->router) {
        implicit_session(c);
        int rc = mb_router_request(c->s->router, c->s->conn, c->m, c->text, c->len, c->out, c->res);
        if (rc != MB_DECLINED)
            return rc;
    }
    return reply_error(c, MB_JSONRPC_METHOD_NOT_FOUND, "Method not found", c->m->method);
}

static void handle_notification(struct call *c)
{
    if (strcmp(c->m->method, "notifications/initialized") == 0)
        c->s->ready = true;
    else if (c->s->router)
        mb_router_notification(c->s->router, c->s->conn, c->m, c->text, c->len);
    /* Without a router there is nobody to tell; a notification never gets
     * a reply, so ignoring it is all the gateway can do. */
}

int mb_mcp_handle(struct mb_mcp_session *s, const char *text, size_t len, struct mb_buf *out,
                  struct mb_mcp_outcome *res)
{
    struct mb_jsonrpc_msg m;
    struct call c = {s, &m, out, res, text, len};
    int rc = 0;

    memset(res, 0, sizeof(*res));
    mb_jsonrpc_parse(text, len, &m);
    res->kind = m.kind;
    mb_metrics_note(res, &m, s->log_names);
    switch (m.kind) {
    case MB_JSONRPC_REQUEST:
        rc = handle_request(&c);
        break;
    case MB_JSONRPC_NOTIFICATION:
        handle_notification(&c);
        break;
    case MB_JSONRPC_RESPONSE:
        /* Answers to server-to-client requests go back to their backend. */
        if (s->router)
            mb_router_response(s->router, s->conn, &m, text, len);
        break;
    case MB_JSONRPC_INVALID:
        rc = reply_error(&c, m.error, m.error_msg, NULL);
        break;
    }
    mb_jsonrpc_msg_release(&m);
    if (rc != 0) {
        res->replied = false;
        res->error = 0;
    }
    return rc;
}
