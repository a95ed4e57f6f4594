/*
 * tests/testserver/tsmcp.c — see tsmcp.h. The MCP methods and tools of the
 * test server.
 *
 * Methods and tools are each declared once in a table below (TS_METHODS,
 * TS_TOOLS); the table gives the dispatch, the tools/list entries and the
 * names the `counter` tool reports. Replies are built as text in one scratch
 * buffer per server (ts->out), with the request's raw id and, for `echo`, the
 * raw message string spliced in, and handed to the channel, which copies.
 *
 * Counting: every message received counts in "total"; valid requests and
 * notifications count under their method name in "methods"; tools/call counts
 * the tool name as called in "tools"; responses from the client count in
 * "responses", invalid messages in "invalid". Unknown method and tool names
 * are counted too, in a table of at most OTHER_MAX names (the rest as
 * "(other)"), so a client cannot grow memory without bound.
 *
 * Tool names: with --name X the tools are X_echo, X_sleep, ... (underscore,
 * because some LLM APIs reject '.' in function names). The tool `list_changed`
 * toggles an extra tool `dynamic` in tools/list, so a client can see that the
 * list really changed, and notifies every broadcast channel.
 */
#include "tests/testserver/tsmcp.h"

#include "common/log.h"
#include "tests/testserver/tsbuf.h"
#include "tests/testserver/tsjson.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef MB_VERSION
#define MB_VERSION "0"
#endif

#define OTHER_MAX      256
#define OTHER_NAME_MAX 64
#define NAME_MAX_LEN   64
#define MAX_SLEEP_MS   600000ll
#define MAX_BIG_BYTES  (64ll << 20)
#define MAX_STEPS      100000ll
#define MAX_STEP_MS    60000ll

/* JSON-RPC and MCP error codes. */
#define E_PARSE     (-32700)
#define E_INVALID   (-32600)
#define E_NOMETHOD  (-32601)
#define E_PARAMS    (-32602)
#define E_APP       (-32000)
#define E_NORES     (-32002)
#define E_CANCELLED (-32800)

struct req;
typedef void (*method_fn)(struct req *r);
typedef void (*tool_fn)(struct req *r, struct mb_tsjson args);

/* -------------------------------------------------------------- tables */

/* X(enum, name, handler, is_notification) */
#define TS_METHODS(X)                                                                              \
    X(INITIALIZE, "initialize", m_initialize, 0)                                                   \
    X(PING, "ping", m_ping, 0)                                                                     \
    X(TOOLS_LIST, "tools/list", m_tools_list, 0)                                                   \
    X(TOOLS_CALL, "tools/call", m_tools_call, 0)                                                   \
    X(PROMPTS_LIST, "prompts/list", m_prompts_list, 0)                                             \
    X(PROMPTS_GET, "prompts/get", m_prompts_get, 0)                                                \
    X(RES_LIST, "resources/list", m_resources_list, 0)                                             \
    X(RES_READ, "resources/read", m_resources_read, 0)                                             \
    X(RES_TEMPLATES, "resources/templates/list", m_templates_list, 0)                              \
    X(SET_LEVEL, "logging/setLevel", m_set_level, 0)                                               \
    X(N_INITIALIZED, "notifications/initialized", m_initialized, 1)                                \
    X(N_CANCELLED, "notifications/cancelled", m_cancelled, 1)                                      \
    X(N_ROOTS, "notifications/roots/list_changed", m_ignore, 1)                                    \
    X(N_PROGRESS, "notifications/progress", m_ignore, 1)

#define SCHEMA(props, req) "{\"type\":\"object\",\"properties\":{" props "}" req "}"
#define INT_PROP(n, d)     "\"" n "\":{\"type\":\"integer\",\"minimum\":0,\"description\":\"" d "\"}"
#define ANN_RO             "{\"readOnlyHint\":true,\"idempotentHint\":true,\"openWorldHint\":false}"
#define ANN_RW             "{\"readOnlyHint\":false,\"openWorldHint\":false}"

/* X(enum, name, handler, description, inputSchema, annotations) */
#define TS_TOOLS(X)                                                                                \
    X(ECHO, "echo", t_echo, "Returns its message as text.",                                        \
      SCHEMA("\"message\":{\"type\":\"string\",\"description\":\"Text to return\"}",               \
             ",\"required\":[\"message\"]"),                                                       \
      ANN_RO)                                                                                      \
    X(SLEEP, "sleep", t_sleep, "Answers after ms milliseconds without blocking other requests.",   \
      SCHEMA(INT_PROP("ms", "How long to wait, at most 600000"), ",\"required\":[\"ms\"]"),        \
      ANN_RO)                                                                                      \
    X(BIG, "big", t_big, "Returns a text of the given number of bytes.",                           \
      SCHEMA(INT_PROP("bytes", "Size of the text, at most 67108864"),                              \
             ",\"required\":[\"bytes\"]"),                                                         \
      ANN_RO)                                                                                      \
    X(FAIL, "fail", t_fail,                                                                        \
      "Fails: mode \\\"error\\\" gives a JSON-RPC error, anything else a result with isError.",    \
      SCHEMA("\"mode\":{\"type\":\"string\",\"enum\":[\"error\",\"result\"]}", ""), ANN_RO)        \
    X(PROGRESS, "progress", t_progress,                                                            \
      "Sends steps notifications/progress (with the request's progressToken), ms apart, then "     \
      "returns.",                                                                                  \
      SCHEMA(INT_PROP("steps", "Number of notifications, default 3") "," INT_PROP(                 \
                 "ms", "Delay before each notification, default 0"),                               \
             ""),                                                                                  \
      ANN_RO)                                                                                      \
    X(COUNTER, "counter", t_counter,                                                               \
      "Returns how many messages of each method and calls of each tool this process has seen; "    \
      "reset=true zeroes the counts after reporting.",                                             \
      SCHEMA("\"reset\":{\"type\":\"boolean\"}", ""), ANN_RW)                                      \
    X(LIST_CHANGED, "list_changed", t_list_changed,                                                \
      "Toggles the tool dynamic and sends notifications/tools/list_changed.", SCHEMA("", ""),      \
      ANN_RW)

enum method_id {
#define X(e, n, f, notif) M_##e,
    TS_METHODS(X)
#undef X
        M_COUNT
};

enum tool_id {
#define X(e, n, f, d, s, a) T_##e,
    TS_TOOLS(X)
#undef X
        T_COUNT
};

#define X(e, n, f, notif) static void f(struct req *r);
TS_METHODS(X)
#undef X
#define X(e, n, f, d, s, a) static void f(struct req *r, struct mb_tsjson args);
TS_TOOLS(X)
#undef X

static const struct {
    const char *name;
    size_t len;
    method_fn fn;
    int notification;
} methods[M_COUNT] = {
#define X(e, n, f, notif) [M_##e] = {n, sizeof(n) - 1, f, notif},
    TS_METHODS(X)
#undef X
};

static const struct {
    const char *name;
    tool_fn fn;
    const char *description;
    const char *schema;
    const char *annotations;
} tools[T_COUNT] = {
#define X(e, n, f, d, s, a) [T_##e] = {n, f, d, s, a},
    TS_TOOLS(X)
#undef X
};

static const char *const versions[] = MB_TSMCP_VERSIONS;
static const char *const log_levels[] = {"debug", "info",     "notice", "warning",
                                         "error", "critical", "alert",  "emergency"};

/* -------------------------------------------------------------- state */

struct counted {
    char name[OTHER_NAME_MAX];
    uint64_t n;
};

struct mb_tsmcp_op {
    ev_timer timer;
    struct mb_tsmcp *ts;
    struct mb_tsmcp_chan *ch;
    struct mb_tsmcp_session *s;
    struct mb_tsmcp_op *cnext, **cprevp; /* in ch->ops */
    struct mb_tsmcp_op *snext, **sprevp; /* in s->ops */
    int tool;                            /* T_SLEEP or T_PROGRESS */
    long long step, steps, arg;          /* progress state; sleep: arg = ms */
    char *token;                         /* raw progressToken, or NULL */
    size_t token_n;
    size_t id_n;
    char id[]; /* raw request id */
};

struct mb_tsmcp {
    struct ev_loop *loop;
    char name[NAME_MAX_LEN + 1];   /* serverInfo.name */
    char prefix[NAME_MAX_LEN + 2]; /* "X_" or "" */
    size_t prefix_n;
    unsigned extra_tools;
    unsigned page_size;
    int dynamic; /* the tool `dynamic` is listed */

    struct mb_tsbuf out;        /* the message being built */
    struct mb_tsbuf aux;        /* a second buffer (counter JSON, tool list entries) */
    struct mb_tsbuf *tool_json; /* tools/list entry of each builtin tool */
    struct mb_tsbuf dynamic_json;
    struct mb_tsmcp_chan *broadcast; /* channels with broadcast set */
    size_t pending;

    uint64_t total, invalid, responses;
    uint64_t method_n[M_COUNT];
    uint64_t tool_n[T_COUNT];
    uint64_t dynamic_n;
    uint64_t *extra_n; /* per extra tool */
    struct counted other_methods[OTHER_MAX + 1], other_tools[OTHER_MAX + 1];
    size_t nother_methods, nother_tools;
};

/* One message being handled. */
struct req {
    struct mb_tsmcp *ts;
    struct mb_tsmcp_session *s;
    struct mb_tsmcp_chan *ch;
    struct mb_tsjson id;     /* raw id; n == 0 for a notification */
    struct mb_tsjson params; /* n == 0 when absent */
};

/* -------------------------------------------------------------- replies */

static void send_out(struct mb_tsmcp *ts, struct mb_tsmcp_chan *ch, enum mb_tsmcp_kind kind)
{
    if (ts->out.failed) {
        mb_log_error("out of memory building a reply; dropped");
        mb_tsbuf_reset(&ts->out);
        return;
    }
    ch->send(ch, kind, ts->out.data, ts->out.len);
    mb_tsbuf_reset(&ts->out);
}

static void begin_result(struct mb_tsmcp *ts, const char *id, size_t id_n)
{
    mb_tsbuf_reset(&ts->out);
    mb_tsbuf_add(&ts->out, "{\"jsonrpc\":\"2.0\",\"id\":", 22);
    mb_tsbuf_add(&ts->out, id, id_n);
    mb_tsbuf_add(&ts->out, ",\"result\":", 10);
}

static void end_result(struct mb_tsmcp *ts, struct mb_tsmcp_chan *ch)
{
    mb_tsbuf_add(&ts->out, "}", 1);
    send_out(ts, ch, MB_TSMCP_REPLY);
}

/* Builds an error response in ts->out; id NULL means `null`. data is raw
 * JSON or NULL. */
static void build_error(struct mb_tsmcp *ts, const char *id, size_t id_n, int code, const char *msg,
                        const char *data, size_t data_n)
{
    mb_tsbuf_reset(&ts->out);
    mb_tsbuf_add(&ts->out, "{\"jsonrpc\":\"2.0\",\"id\":", 22);
    if (id != NULL)
        mb_tsbuf_add(&ts->out, id, id_n);
    else
        mb_tsbuf_add(&ts->out, "null", 4);
    mb_tsbuf_addf(&ts->out, ",\"error\":{\"code\":%d,\"message\":", code);
    mb_tsbuf_add_jstr(&ts->out, msg, strlen(msg));
    if (data != NULL) {
        mb_tsbuf_add(&ts->out, ",\"data\":", 8);
        mb_tsbuf_add(&ts->out, data, data_n);
    }
    mb_tsbuf_add(&ts->out, "}}", 2);
}

static void reply_error(struct req *r, int code, const char *msg)
{
    build_error(r->ts, r->id.p, r->id.n, code, msg, NULL, 0);
    send_out(r->ts, r->ch, MB_TSMCP_REPLY);
}

/* A tool result with one text content; text is a raw JSON string token. */
static void reply_text_raw(struct req *r, const char *text, size_t n, int is_error)
{
    struct mb_tsmcp *ts = r->ts;
    begin_result(ts, r->id.p, r->id.n);
    mb_tsbuf_add(&ts->out, "{\"content\":[{\"type\":\"text\",\"text\":", 34);
    mb_tsbuf_add(&ts->out, text, n);
    mb_tsbuf_adds(&ts->out, is_error ? "}],\"isError\":true}" : "}]}");
    end_result(ts, r->ch);
}

static void reply_text(struct req *r, const char *text, int is_error)
{
    struct mb_tsmcp *ts = r->ts;
    mb_tsbuf_reset(&ts->aux);
    mb_tsbuf_add_jstr(&ts->aux, text, strlen(text));
    if (ts->aux.failed) {
        mb_log_error("out of memory building a reply; dropped");
        return;
    }
    reply_text_raw(r, ts->aux.data, ts->aux.len, is_error);
}

/* -------------------------------------------------------------- counting */

static void count_other(struct counted *tab, size_t *n, const char *name)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(tab[i].name, name) == 0) {
            tab[i].n++;
            return;
        }
    }
    if (*n < OTHER_MAX && strlen(name) < OTHER_NAME_MAX) {
        snprintf(tab[*n].name, OTHER_NAME_MAX, "%s", name);
        tab[(*n)++].n = 1;
        return;
    }
    /* The last slot, OTHER_MAX, collects everything that does not fit. */
    snprintf(tab[OTHER_MAX].name, OTHER_NAME_MAX, "(other)");
    tab[OTHER_MAX].n++;
}

static void counter_json(struct mb_tsmcp *ts, struct mb_tsbuf *b)
{
    mb_tsbuf_adds(b, "{\"total\":");
    mb_tsbuf_addu(b, ts->total);
    mb_tsbuf_adds(b, ",\"invalid\":");
    mb_tsbuf_addu(b, ts->invalid);
    mb_tsbuf_adds(b, ",\"responses\":");
    mb_tsbuf_addu(b, ts->responses);
    mb_tsbuf_adds(b, ",\"methods\":{");
    const char *sep = "";
    for (int i = 0; i < M_COUNT; i++) {
        if (ts->method_n[i] == 0)
            continue;
        mb_tsbuf_addf(b, "%s\"%s\":", sep, methods[i].name);
        mb_tsbuf_addu(b, ts->method_n[i]);
        sep = ",";
    }
    for (size_t i = 0; i <= OTHER_MAX; i++) {
        if (ts->other_methods[i].n == 0)
            continue;
        mb_tsbuf_adds(b, sep);
        mb_tsbuf_add_jstr(b, ts->other_methods[i].name, strlen(ts->other_methods[i].name));
        mb_tsbuf_add(b, ":", 1);
        mb_tsbuf_addu(b, ts->other_methods[i].n);
        sep = ",";
    }
    mb_tsbuf_adds(b, "},\"tools\":{");
    sep = "";
    for (int i = 0; i < T_COUNT; i++) {
        if (ts->tool_n[i] == 0)
            continue;
        mb_tsbuf_addf(b, "%s\"%s%s\":", sep, ts->prefix, tools[i].name);
        mb_tsbuf_addu(b, ts->tool_n[i]);
        sep = ",";
    }
    if (ts->dynamic_n != 0) {
        mb_tsbuf_addf(b, "%s\"%sdynamic\":", sep, ts->prefix);
        mb_tsbuf_addu(b, ts->dynamic_n);
        sep = ",";
    }
    for (unsigned i = 0; i < ts->extra_tools; i++) {
        if (ts->extra_n[i] == 0)
            continue;
        mb_tsbuf_addf(b, "%s\"%stool_%u\":", sep, ts->prefix, i);
        mb_tsbuf_addu(b, ts->extra_n[i]);
        sep = ",";
    }
    for (size_t i = 0; i <= OTHER_MAX; i++) {
        if (ts->other_tools[i].n == 0)
            continue;
        mb_tsbuf_adds(b, sep);
        mb_tsbuf_add_jstr(b, ts->other_tools[i].name, strlen(ts->other_tools[i].name));
        mb_tsbuf_add(b, ":", 1);
        mb_tsbuf_addu(b, ts->other_tools[i].n);
        sep = ",";
    }
    mb_tsbuf_adds(b, "}}");
}

static void counter_reset(struct mb_tsmcp *ts)
{
    ts->total = ts->invalid = ts->responses = 0;
    memset(ts->method_n, 0, sizeof(ts->method_n));
    memset(ts->tool_n, 0, sizeof(ts->tool_n));
    ts->dynamic_n = 0;
    if (ts->extra_tools)
        memset(ts->extra_n, 0, ts->extra_tools * sizeof(*ts->extra_n));
    memset(ts->other_methods, 0, sizeof(ts->other_methods));
    memset(ts->other_tools, 0, sizeof(ts->other_tools));
    ts->nother_methods = ts->nother_tools = 0;
}

/* -------------------------------------------------------------- pending */

static void op_unlink(struct mb_tsmcp_op *op)
{
    ev_timer_stop(op->ts->loop, &op->timer);
    if ((*op->cprevp = op->cnext) != NULL)
        op->cnext->cprevp = op->cprevp;
    if ((*op->sprevp = op->snext) != NULL)
        op->snext->sprevp = op->sprevp;
    op->ts->pending--;
}

static void op_free(struct mb_tsmcp_op *op)
{
    free(op->token);
    free(op);
}

/* Drops op; with `abort`, its channel learns that no reply will come. */
static void op_cancel(struct mb_tsmcp_op *op, int abort)
{
    struct mb_tsmcp *ts = op->ts;
    struct mb_tsmcp_chan *ch = op->ch;
    op_unlink(op);
    if (abort) {
        build_error(ts, op->id, op->id_n, E_CANCELLED, "Request cancelled", NULL, 0);
        send_out(ts, ch, MB_TSMCP_ABORT);
    }
    op_free(op);
}

static void send_progress(struct mb_tsmcp *ts, struct mb_tsmcp_chan *ch, const char *token,
                          size_t token_n, long long step, long long steps)
{
    mb_tsbuf_reset(&ts->out);
    mb_tsbuf_adds(&ts->out,
                  "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{"
                  "\"progressToken\":");
    mb_tsbuf_add(&ts->out, token, token_n);
    mb_tsbuf_addf(&ts->out, ",\"progress\":%lld,\"total\":%lld,\"message\":\"step %lld of %lld\"}}",
                  step, steps, step, steps);
    send_out(ts, ch, MB_TSMCP_NOTIFY);
}

static void progress_done(struct mb_tsmcp *ts, struct mb_tsmcp_chan *ch, const char *id,
                          size_t id_n, long long steps)
{
    begin_result(ts, id, id_n);
    mb_tsbuf_addf(&ts->out, "{\"content\":[{\"type\":\"text\",\"text\":\"progress: %lld steps\"}]}",
                  steps);
    end_result(ts, ch);
}

static void op_fire(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mb_tsmcp_op *op = (struct mb_tsmcp_op *)w;
    struct mb_tsmcp *ts = op->ts;
    (void)loop;
    (void)revents;
    if (op->tool == T_PROGRESS) {
        op->step++;
        if (op->token != NULL)
            send_progress(ts, op->ch, op->token, op->token_n, op->step, op->steps);
        if (op->step < op->steps)
            return; /* the repeating timer fires again */
        op_unlink(op);
        progress_done(ts, op->ch, op->id, op->id_n, op->steps);
    } else {
        op_unlink(op);
        begin_result(ts, op->id, op->id_n);
        mb_tsbuf_addf(&ts->out, "{\"content\":[{\"type\":\"text\",\"text\":\"slept %lld ms\"}]}",
                      op->arg);
        end_result(ts, op->ch);
    }
    op_free(op);
}

static struct mb_tsmcp_op *op_start(struct req *r, int tool, double after, double repeat)
{
    struct mb_tsmcp_op *op = calloc(1, sizeof(*op) + r->id.n);
    if (op == NULL)
        return NULL;
    op->ts = r->ts;
    op->ch = r->ch;
    op->s = r->s;
    op->tool = tool;
    op->id_n = r->id.n;
    memcpy(op->id, r->id.p, r->id.n);
    if ((op->cnext = r->ch->ops) != NULL)
        op->cnext->cprevp = &op->cnext;
    r->ch->ops = op;
    op->cprevp = &r->ch->ops;
    if ((op->snext = r->s->ops) != NULL)
        op->snext->sprevp = &op->snext;
    r->s->ops = op;
    op->sprevp = &r->s->ops;
    r->ts->pending++;
    ev_timer_init(&op->timer, op_fire, after, repeat);
    ev_timer_start(r->ts->loop, &op->timer);
    return op;
}

/* -------------------------------------------------------------- tools */

static int arg_int(struct mb_tsjson args, const char *key, long long min, long long max,
                   long long dflt, long long *out)
{
    struct mb_tsjson v;
    if (mb_tsjson_get(args, key, &v) != 0) {
        *out = dflt;
        return dflt < 0 ? -1 : 0;
    }
    return mb_tsjson_int(v, min, max, out);
}

static void t_echo(struct req *r, struct mb_tsjson args)
{
    struct mb_tsjson msg;
    if (mb_tsjson_get(args, "message", &msg) != 0 || mb_tsjson_type(msg) != MB_TSJSON_STRING) {
        reply_text(r, "echo: argument message (a string) is required", 1);
        return;
    }
    reply_text_raw(r, msg.p, msg.n, 0);
}

static void t_sleep(struct req *r, struct mb_tsjson args)
{
    long long ms;
    if (arg_int(args, "ms", 0, MAX_SLEEP_MS, -1, &ms) != 0) {
        reply_text(r, "sleep: argument ms must be an integer from 0 to 600000", 1);
        return;
    }
    if (ms == 0) {
        reply_text(r, "slept 0 ms", 0);
        return;
    }
    struct mb_tsmcp_op *op = op_start(r, T_SLEEP, (double)ms / 1000.0, 0.0);
    if (op == NULL) {
        reply_error(r, E_APP, "out of memory");
        return;
    }
    op->arg = ms;
}

static void t_big(struct req *r, struct mb_tsjson args)
{
    long long bytes;
    if (arg_int(args, "bytes", 0, MAX_BIG_BYTES, -1, &bytes) != 0) {
        reply_text(r, "big: argument bytes must be an integer from 0 to 67108864", 1);
        return;
    }
    struct mb_tsmcp *ts = r->ts;
    begin_result(ts, r->id.p, r->id.n);
    mb_tsbuf_add(&ts->out, "{\"content\":[{\"type\":\"text\",\"text\":\"", 35);
    if (mb_tsbuf_reserve(&ts->out, (size_t)bytes + 8) == 0) {
        /* A repeating alphabet, so a client can check that nothing was lost. */
        char *o = ts->out.data + ts->out.len;
        for (long long i = 0; i < bytes; i++)
            o[i] = (char)('a' + i % 26);
        ts->out.len += (size_t)bytes;
    }
    mb_tsbuf_add(&ts->out, "\"}]}", 4);
    end_result(ts, r->ch);
}

static void t_fail(struct req *r, struct mb_tsjson args)
{
    struct mb_tsjson mode;
    if (mb_tsjson_get(args, "mode", &mode) == 0 && mb_tsjson_streq(mode, "error")) {
        build_error(r->ts, r->id.p, r->id.n, E_APP, "fail: requested error", "{\"tool\":\"fail\"}",
                    15);
        send_out(r->ts, r->ch, MB_TSMCP_REPLY);
        return;
    }
    reply_text(r, "fail: requested failure", 1);
}

static void t_progress(struct req *r, struct mb_tsjson args)
{
    long long steps, ms;
    if (arg_int(args, "steps", 0, MAX_STEPS, 3, &steps) != 0 ||
        arg_int(args, "ms", 0, MAX_STEP_MS, 0, &ms) != 0) {
        reply_text(r, "progress: steps must be 0..100000 and ms 0..60000", 1);
        return;
    }
    struct mb_tsjson meta, token = {NULL, 0};
    if (mb_tsjson_get(r->params, "_meta", &meta) == 0 &&
        mb_tsjson_get(meta, "progressToken", &token) == 0 &&
        mb_tsjson_type(token) != MB_TSJSON_STRING && mb_tsjson_type(token) != MB_TSJSON_NUMBER)
        token.n = 0;
    if (ms == 0 || steps == 0) {
        for (long long i = 1; token.n != 0 && i <= steps; i++)
            send_progress(r->ts, r->ch, token.p, token.n, i, steps);
        progress_done(r->ts, r->ch, r->id.p, r->id.n, steps);
        return;
    }
    char *tok = NULL;
    if (token.n != 0 && (tok = malloc(token.n)) == NULL)
        goto oom;
    struct mb_tsmcp_op *op = op_start(r, T_PROGRESS, (double)ms / 1000.0, (double)ms / 1000.0);
    if (op == NULL)
        goto oom;
    if (tok != NULL)
        memcpy(tok, token.p, token.n);
    op->token = tok;
    op->token_n = token.n;
    op->steps = steps;
    return;
oom:
    free(tok);
    reply_error(r, E_APP, "out of memory");
}

static void t_counter(struct req *r, struct mb_tsjson args)
{
    struct mb_tsmcp *ts = r->ts;
    struct mb_tsjson reset;
    struct mb_tsbuf json;
    mb_tsbuf_init(&json);
    counter_json(ts, &json);
    mb_tsbuf_reset(&ts->aux);
    mb_tsbuf_add_jstr(&ts->aux, json.data, json.len);
    begin_result(ts, r->id.p, r->id.n);
    mb_tsbuf_add(&ts->out, "{\"content\":[{\"type\":\"text\",\"text\":", 34);
    mb_tsbuf_add(&ts->out, ts->aux.data, ts->aux.len);
    mb_tsbuf_add(&ts->out, "}],\"structuredContent\":", 23);
    mb_tsbuf_add(&ts->out, json.data, json.len);
    mb_tsbuf_add(&ts->out, "}", 1);
    if (json.failed || ts->aux.failed)
        ts->out.failed = 1;
    mb_tsbuf_free(&json);
    end_result(ts, r->ch);
    if (mb_tsjson_get(args, "reset", &reset) == 0 && mb_tsjson_type(reset) == MB_TSJSON_TRUE)
        counter_reset(ts);
}

static void t_list_changed(struct req *r, struct mb_tsjson args)
{
    struct mb_tsmcp *ts = r->ts;
    static const char note[] =
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}";
    ts->dynamic = !ts->dynamic;
    for (struct mb_tsmcp_chan *ch = ts->broadcast; ch != NULL; ch = ch->bnext)
        ch->send(ch, MB_TSMCP_NOTIFY, note, sizeof(note) - 1);
    if (!r->ch->broadcast)
        r->ch->send(r->ch, MB_TSMCP_NOTIFY, note, sizeof(note) - 1);
    reply_text(r, ts->dynamic ? "tools changed: dynamic added" : "tools changed: dynamic removed",
               0);
}

static void t_dynamic(struct req *r, struct mb_tsjson args)
{
    reply_text(r, "dynamic", 0);
}

/* tool_<i>: "tool_<i>: <value>" when value is a string, else "tool_<i>". */
static void t_extra(struct req *r, struct mb_tsjson args, unsigned i)
{
    struct mb_tsmcp *ts = r->ts;
    struct mb_tsjson v;
    mb_tsbuf_reset(&ts->aux);
    if (mb_tsjson_get(args, "value", &v) == 0 && mb_tsjson_type(v) == MB_TSJSON_STRING) {
        /* Splice: the prefix has no character that needs escaping. */
        mb_tsbuf_addf(&ts->aux, "\"%stool_%u: ", ts->prefix, i);
        mb_tsbuf_add(&ts->aux, v.p + 1, v.n - 1);
    } else {
        mb_tsbuf_addf(&ts->aux, "\"%stool_%u\"", ts->prefix, i);
    }
    if (ts->aux.failed)
        return;
    reply_text_raw(r, ts->aux.data, ts->aux.len, 0);
}

/* -------------------------------------------------------------- methods */

static void m_ignore(struct req *r) {}

static void m_initialized(struct req *r)
{
    r->s->initialized = 1;
}

static void m_cancelled(struct req *r)
{
    struct mb_tsjson rid;
    if (mb_tsjson_get(r->params, "requestId", &rid) != 0)
        return;
    for (struct mb_tsmcp_op *op = r->s->ops; op != NULL; op = op->snext) {
        if (op->id_n == rid.n && memcmp(op->id, rid.p, rid.n) == 0) {
            op_cancel(op, 1);
            return;
        }
    }
}

static void m_initialize(struct req *r)
{
    struct mb_tsmcp *ts = r->ts;
    struct mb_tsjson pv;
    const char *version = versions[0];
    if (mb_tsjson_get(r->params, "protocolVersion", &pv) == 0 &&
        mb_tsjson_type(pv) == MB_TSJSON_STRING) {
        for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++)
            if (mb_tsjson_streq(pv, versions[i]))
                version = versions[i];
    }
    snprintf(r->s->protocol, sizeof(r->s->protocol), "%s", version);
    begin_result(ts, r->id.p, r->id.n);
    mb_tsbuf_addf(&ts->out,
                  "{\"protocolVersion\":\"%s\",\"capabilities\":{\"tools\":{\"listChanged\":true},"
                  "\"prompts\":{\"listChanged\":false},\"resources\":{\"subscribe\":false,"
                  "\"listChanged\":false},\"logging\":{}},\"serverInfo\":{\"name\":\"%s\","
                  "\"version\":\"%s\"}}",
                  version, ts->name, MB_VERSION);
    end_result(ts, r->ch);
}

static void m_ping(struct req *r)
{
    begin_result(r->ts, r->id.p, r->id.n);
    mb_tsbuf_add(&r->ts->out, "{}", 2);
    end_result(r->ts, r->ch);
}

static void tool_entry(struct mb_tsmcp *ts, struct mb_tsbuf *b, size_t i)
{
    if (i < T_COUNT) {
        mb_tsbuf_add(b, ts->tool_json[i].data, ts->tool_json[i].len);
        return;
    }
    i -= T_COUNT;
    if (ts->dynamic) {
        if (i == 0) {
            mb_tsbuf_add(b, ts->dynamic_json.data, ts->dynamic_json.len);
            return;
        }
        i--;
    }
    mb_tsbuf_addf(b,
                  "{\"name\":\"%stool_%zu\",\"description\":\"Extra tool %zu (--tools): returns "
                  "its value.\",\"inputSchema\":{\"type\":\"object\",\"properties\":{\"value\":{"
                  "\"type\":\"string\",\"description\":\"Any text\"}}},\"annotations\":" ANN_RO "}",
                  ts->prefix, i, i);
}

static void m_tools_list(struct req *r)
{
    struct mb_tsmcp *ts = r->ts;
    size_t total = T_COUNT + (ts->dynamic ? 1 : 0) + ts->extra_tools;
    size_t start = 0, end = total;
    struct mb_tsjson cursor;
    if (mb_tsjson_get(r->params, "cursor", &cursor) == 0 &&
        mb_tsjson_type(cursor) != MB_TSJSON_NULL) {
        char tmp[24], *e;
        if (mb_tsjson_str(cursor, tmp, sizeof(tmp)) <= 0 || tmp[0] < '0' || tmp[0] > '9') {
            reply_error(r, E_PARAMS, "Invalid cursor");
            return;
        }
        unsigned long long v = strtoull(tmp, &e, 10);
        if (*e != '\0' || v > total) {
            reply_error(r, E_PARAMS, "Invalid cursor");
            return;
        }
        start = (size_t)v;
    }
    if (ts->page_size != 0 && total - start > ts->page_size)
        end = start + ts->page_size;
    begin_result(ts, r->id.p, r->id.n);
    mb_tsbuf_add(&ts->out, "{\"tools\":[", 10);
    for (size_t i = start; i < end; i++) {
        if (i != start)
            mb_tsbuf_add(&ts->out, ",", 1);
        tool_entry(ts, &ts->out, i);
    }
    mb_tsbuf_add(&ts->out, "]", 1);
    if (end < total)
        mb_tsbuf_addf(&ts->out, ",\"nextCursor\":\"%zu\"", end);
    mb_tsbuf_add(&ts->out, "}", 1);
    end_result(ts, r->ch);
}

static void m_tools_call(struct req *r)
{
    struct mb_tsmcp *ts = r->ts;
    struct mb_tsjson name, args = {"{}", 2};
    char buf[160];
    if (mb_tsjson_get(r->params, "name", &name) != 0 || mb_tsjson_type(name) != MB_TSJSON_STRING) {
        reply_error(r, E_PARAMS, "tools/call: params.name (a string) is required");
        return;
    }
    if (mb_tsjson_get(r->params, "arguments", &args) == 0 &&
        mb_tsjson_type(args) != MB_TSJSON_OBJECT) {
        if (mb_tsjson_type(args) != MB_TSJSON_NULL) {
            reply_error(r, E_PARAMS, "tools/call: params.arguments must be an object");
            return;
        }
        args = (struct mb_tsjson){"{}", 2};
    }
    int n = mb_tsjson_str(name, buf, sizeof(buf));
    if (n < 0)
        goto unknown;
    const char *base = buf;
    if (ts->prefix_n != 0) {
        if ((size_t)n < ts->prefix_n || memcmp(buf, ts->prefix, ts->prefix_n) != 0)
            goto unknown;
        base += ts->prefix_n;
    }
    for (int i = 0; i < T_COUNT; i++) {
        if (strcmp(base, tools[i].name) == 0) {
            ts->tool_n[i]++;
            tools[i].fn(r, args);
            return;
        }
    }
    if (ts->dynamic && strcmp(base, "dynamic") == 0) {
        ts->dynamic_n++;
        t_dynamic(r, args);
        return;
    }
    if (strncmp(base, "tool_", 5) == 0 && base[5] >= '0' && base[5] <= '9' &&
        (base[5] != '0' || base[6] == '\0')) {
        char *e;
        unsigned long v = strtoul(base + 5, &e, 10);
        if (*e == '\0' && v < ts->extra_tools) {
            ts->extra_n[v]++;
            t_extra(r, args, (unsigned)v);
            return;
        }
    }
unknown:
    count_other(ts->other_tools, &ts->nother_tools, n < 0 ? "(unreadable)" : buf);
    mb_tsbuf_reset(&ts->aux);
    mb_tsbuf_add(&ts->aux, "{\"name\":", 8);
    mb_tsbuf_add(&ts->aux, name.p, name.n);
    mb_tsbuf_add(&ts->aux, "}", 1);
    build_error(ts, r->id.p, r->id.n, E_PARAMS, "Unknown tool", ts->aux.data, ts->aux.len);
    send_out(ts, r->ch, MB_TSMCP_REPLY);
}

static void m_prompts_list(struct req *r)
{
    begin_result(r->ts, r->id.p, r->id.n);
    mb_tsbuf_adds(&r->ts->out,
                  "{\"prompts\":[{\"name\":\"greeting\",\"description\":\"A greeting for "
                  "someone\",\"arguments\":[{\"name\":\"name\",\"description\":\"Who to greet "
                  "(default: world)\",\"required\":false}]}]}");
    end_result(r->ts, r->ch);
}

static void m_prompts_get(struct req *r)
{
    struct mb_tsmcp *ts = r->ts;
    struct mb_tsjson name, args, who;
    char buf[1024] = "world";
    if (mb_tsjson_get(r->params, "name", &name) != 0 || !mb_tsjson_streq(name, "greeting")) {
        reply_error(r, E_PARAMS, "Unknown prompt");
        return;
    }
    if (mb_tsjson_get(r->params, "arguments", &args) == 0 &&
        mb_tsjson_get(args, "name", &who) == 0 && mb_tsjson_str(who, buf, sizeof(buf)) < 0) {
        reply_error(r, E_PARAMS, "prompts/get: argument name must be a string under 1024 bytes");
        return;
    }
    mb_tsbuf_reset(&ts->aux);
    mb_tsbuf_addf(&ts->aux, "Hello, %s!", buf);
    struct mb_tsbuf text;
    mb_tsbuf_init(&text);
    mb_tsbuf_add_jstr(&text, ts->aux.data, ts->aux.len);
    begin_result(ts, r->id.p, r->id.n);
    mb_tsbuf_adds(&ts->out, "{\"description\":\"A greeting\",\"messages\":[{\"role\":\"user\","
                            "\"content\":{\"type\":\"text\",\"text\":");
    mb_tsbuf_add(&ts->out, text.data, text.len);
    mb_tsbuf_adds(&ts->out, "}}]}");
    mb_tsbuf_free(&text);
    end_result(ts, r->ch);
}

static void m_resources_list(struct req *r)
{
    begin_result(r->ts, r->id.p, r->id.n);
    mb_tsbuf_adds(&r->ts->out,
                  "{\"resources\":[{\"uri\":\"test://hello\",\"name\":\"hello\","
                  "\"description\":\"A fixed greeting\",\"mimeType\":\"text/plain\"}]}");
    end_result(r->ts, r->ch);
}

static void m_templates_list(struct req *r)
{
    begin_result(r->ts, r->id.p, r->id.n);
    mb_tsbuf_adds(&r->ts->out,
                  "{\"resourceTemplates\":[{\"uriTemplate\":\"test://echo/{text}\",\"name\":"
                  "\"echo\",\"description\":\"Reading test://echo/X returns X\",\"mimeType\":"
                  "\"text/plain\"}]}");
    end_result(r->ts, r->ch);
}

static void m_resources_read(struct req *r)
{
    struct mb_tsmcp *ts = r->ts;
    struct mb_tsjson uri;
    char buf[4096];
    int n;
    if (mb_tsjson_get(r->params, "uri", &uri) != 0 ||
        (n = mb_tsjson_str(uri, buf, sizeof(buf))) < 0) {
        reply_error(r, E_PARAMS, "resources/read: params.uri (a string) is required");
        return;
    }
    const char *text;
    char hello[128];
    if (strcmp(buf, "test://hello") == 0) {
        snprintf(hello, sizeof(hello), "Hello from %s", ts->name);
        text = hello;
    } else if (strncmp(buf, "test://echo/", 12) == 0) {
        text = buf + 12;
    } else {
        mb_tsbuf_reset(&ts->aux);
        mb_tsbuf_add(&ts->aux, "{\"uri\":", 7);
        mb_tsbuf_add(&ts->aux, uri.p, uri.n);
        mb_tsbuf_add(&ts->aux, "}", 1);
        build_error(ts, r->id.p, r->id.n, E_NORES, "Resource not found", ts->aux.data, ts->aux.len);
        send_out(ts, r->ch, MB_TSMCP_REPLY);
        return;
    }
    mb_tsbuf_reset(&ts->aux);
    mb_tsbuf_add_jstr(&ts->aux, text, strlen(text));
    begin_result(ts, r->id.p, r->id.n);
    mb_tsbuf_add(&ts->out, "{\"contents\":[{\"uri\":", 20);
    mb_tsbuf_add(&ts->out, uri.p, uri.n);
    mb_tsbuf_adds(&ts->out, ",\"mimeType\":\"text/plain\",\"text\":");
    mb_tsbuf_add(&ts->out, ts->aux.data, ts->aux.len);
    mb_tsbuf_adds(&ts->out, "}]}");
    end_result(ts, r->ch);
}

static void m_set_level(struct req *r)
{
    struct mb_tsjson level;
    if (mb_tsjson_get(r->params, "level", &level) == 0) {
        for (int i = 0; i < (int)(sizeof(log_levels) / sizeof(log_levels[0])); i++) {
            if (mb_tsjson_streq(level, log_levels[i])) {
                r->s->log_level = i;
                m_ping(r); /* the same empty result */
                return;
            }
        }
    }
    reply_error(r, E_PARAMS, "logging/setLevel: params.level must be an MCP logging level");
}

/* -------------------------------------------------------------- dispatch */

static enum mb_tsmcp_result invalid(struct req *r, const char *id, size_t id_n, int code,
                                    const char *msg)
{
    r->ts->invalid++;
    build_error(r->ts, id, id_n, code, msg, NULL, 0);
    send_out(r->ts, r->ch, MB_TSMCP_REPLY);
    return MB_TSMCP_INVALID;
}

enum mb_tsmcp_result mb_tsmcp_handle(struct mb_tsmcp *ts, struct mb_tsmcp_session *s,
                                     struct mb_tsmcp_chan *ch, const char *msg, size_t len)
{
    struct req r = {.ts = ts, .s = s, .ch = ch};
    struct mb_tsjson root, v, method;
    const char *why = NULL;
    ts->total++;
    if (mb_tsjson_validate(msg, len, &root, &why) != 0) {
        char text[96];
        snprintf(text, sizeof(text), "Parse error: %s", why);
        return invalid(&r, NULL, 0, E_PARSE, text);
    }
    if (mb_tsjson_type(root) != MB_TSJSON_OBJECT)
        return invalid(&r, NULL, 0, E_INVALID,
                       mb_tsjson_type(root) == MB_TSJSON_ARRAY
                           ? "Invalid Request: JSON-RPC batches are not supported"
                           : "Invalid Request: not a JSON object");
    int has_id = mb_tsjson_get(root, "id", &r.id) == 0;
    if (has_id && mb_tsjson_type(r.id) != MB_TSJSON_STRING &&
        mb_tsjson_type(r.id) != MB_TSJSON_NUMBER)
        return invalid(&r, NULL, 0, E_INVALID, "Invalid Request: id must be a string or a number");
    if (mb_tsjson_get(root, "jsonrpc", &v) != 0 || !mb_tsjson_streq(v, "2.0"))
        return invalid(&r, r.id.p, r.id.n, E_INVALID, "Invalid Request: jsonrpc must be \"2.0\"");
    if (mb_tsjson_get(root, "method", &method) != 0) {
        if (has_id &&
            (mb_tsjson_get(root, "result", &v) == 0 || mb_tsjson_get(root, "error", &v) == 0)) {
            ts->responses++; /* we send no requests; a response is accepted and dropped */
            return MB_TSMCP_ACCEPTED;
        }
        return invalid(&r, r.id.p, r.id.n, E_INVALID, "Invalid Request: no method");
    }
    if (mb_tsjson_type(method) != MB_TSJSON_STRING)
        return invalid(&r, r.id.p, r.id.n, E_INVALID, "Invalid Request: method must be a string");
    if (mb_tsjson_get(root, "params", &r.params) == 0 &&
        mb_tsjson_type(r.params) != MB_TSJSON_OBJECT) {
        if (mb_tsjson_type(r.params) != MB_TSJSON_NULL) {
            if (!has_id)
                return MB_TSMCP_ACCEPTED;
            return invalid(&r, r.id.p, r.id.n, E_INVALID,
                           "Invalid Request: params must be an object");
        }
        r.params.n = 0;
    }
    int m;
    for (m = 0; m < M_COUNT; m++) {
        if (method.n == methods[m].len + 2 &&
            memcmp(method.p + 1, methods[m].name, methods[m].len) == 0)
            break;
    }
    if (m == M_COUNT && memchr(method.p, '\\', method.n) != NULL) {
        for (m = 0; m < M_COUNT; m++)
            if (mb_tsjson_streq(method, methods[m].name))
                break;
    }
    if (m == M_COUNT) {
        char name[OTHER_NAME_MAX];
        count_other(ts->other_methods, &ts->nother_methods,
                    mb_tsjson_str(method, name, sizeof(name)) < 0 ? "(unreadable)" : name);
        if (!has_id)
            return MB_TSMCP_ACCEPTED; /* unknown notifications are ignored */
        mb_tsbuf_reset(&ts->aux);
        mb_tsbuf_add(&ts->aux, "{\"method\":", 10);
        mb_tsbuf_add(&ts->aux, method.p, method.n);
        mb_tsbuf_add(&ts->aux, "}", 1);
        build_error(ts, r.id.p, r.id.n, E_NOMETHOD, "Method not found", ts->aux.data, ts->aux.len);
        send_out(ts, ch, MB_TSMCP_REPLY);
        return MB_TSMCP_REQUEST;
    }
    ts->method_n[m]++;
    if (methods[m].notification) {
        if (has_id) {
            reply_error(&r, E_INVALID, "Invalid Request: a notification must not have an id");
            return MB_TSMCP_REQUEST;
        }
        methods[m].fn(&r);
        return MB_TSMCP_ACCEPTED;
    }
    if (!has_id)
        return MB_TSMCP_ACCEPTED; /* a request sent as a notification: nobody to answer */
    methods[m].fn(&r);
    return MB_TSMCP_REQUEST;
}

/* -------------------------------------------------------------- lifecycle */

int mb_tsmcp_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > NAME_MAX_LEN)
        return 0;
    return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

int mb_tsmcp_version_supported(const char *v, size_t n)
{
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++)
        if (strlen(versions[i]) == n && memcmp(versions[i], v, n) == 0)
            return 1;
    return 0;
}

int mb_tsmcp_is_initialize(const char *msg, size_t len)
{
    struct mb_tsjson root, method, id;
    if (mb_tsjson_validate(msg, len, &root, NULL) != 0)
        return 0;
    return mb_tsjson_get(root, "method", &method) == 0 && mb_tsjson_streq(method, "initialize") &&
           mb_tsjson_get(root, "id", &id) == 0;
}

size_t mb_tsmcp_pending(const struct mb_tsmcp *ts)
{
    return ts->pending;
}

void mb_tsmcp_chan_open(struct mb_tsmcp *ts, struct mb_tsmcp_chan *ch)
{
    ch->ops = NULL;
    ch->bnext = NULL;
    ch->bprevp = NULL;
    if (!ch->broadcast)
        return;
    if ((ch->bnext = ts->broadcast) != NULL)
        ch->bnext->bprevp = &ch->bnext;
    ts->broadcast = ch;
    ch->bprevp = &ts->broadcast;
}

void mb_tsmcp_chan_close(struct mb_tsmcp *ts, struct mb_tsmcp_chan *ch)
{
    while (ch->ops != NULL)
        op_cancel(ch->ops, 0);
    if (ch->bprevp != NULL) {
        if ((*ch->bprevp = ch->bnext) != NULL)
            ch->bnext->bprevp = ch->bprevp;
        ch->bprevp = NULL;
        ch->bnext = NULL;
    }
}

void mb_tsmcp_session_open(struct mb_tsmcp_session *s)
{
    memset(s, 0, sizeof(*s));
    s->log_level = 1; /* info */
}

void mb_tsmcp_session_close(struct mb_tsmcp *ts, struct mb_tsmcp_session *s)
{
    while (s->ops != NULL)
        op_cancel(s->ops, 1);
}

struct mb_tsmcp *mb_tsmcp_new(const struct mb_tsmcp_opts *opts, struct ev_loop *loop)
{
    struct mb_tsmcp *ts = calloc(1, sizeof(*ts));
    if (ts == NULL)
        goto oom;
    ts->loop = loop;
    if (opts->name != NULL) {
        if (!mb_tsmcp_name_valid(opts->name)) {
            mb_log_error("--name %s: must be 1 to 64 of [A-Za-z0-9_.-]", opts->name);
            goto fail;
        }
        snprintf(ts->name, sizeof(ts->name), "%s", opts->name);
        snprintf(ts->prefix, sizeof(ts->prefix), "%s_", opts->name);
        ts->prefix_n = strlen(ts->prefix);
    } else {
        snprintf(ts->name, sizeof(ts->name), "mcp-bridge-testserver");
    }
    ts->extra_tools = opts->extra_tools;
    ts->page_size = opts->page_size;
    if (ts->extra_tools != 0 &&
        (ts->extra_n = calloc(ts->extra_tools, sizeof(*ts->extra_n))) == NULL)
        goto oom;
    if ((ts->tool_json = calloc(T_COUNT, sizeof(*ts->tool_json))) == NULL)
        goto oom;
    for (int i = 0; i < T_COUNT; i++) {
        struct mb_tsbuf *b = &ts->tool_json[i];
        mb_tsbuf_addf(b,
                      "{\"name\":\"%s%s\",\"description\":\"%s\",\"inputSchema\":%s,"
                      "\"annotations\":%s}",
                      ts->prefix, tools[i].name, tools[i].description, tools[i].schema,
                      tools[i].annotations);
        if (b->failed)
            goto oom;
    }
    mb_tsbuf_addf(
        &ts->dynamic_json,
        "{\"name\":\"%sdynamic\",\"description\":\"Present after an odd number of "
        "list_changed calls.\",\"inputSchema\":{\"type\":\"object\"},\"annotations\":" ANN_RO "}",
        ts->prefix);
    if (ts->dynamic_json.failed)
        goto oom;
    return ts;
oom:
    mb_log_error("out of memory creating the server");
fail:
    mb_tsmcp_free(&ts);
    return NULL;
}

void mb_tsmcp_free(struct mb_tsmcp **tsp)
{
    struct mb_tsmcp *ts = *tsp;
    if (ts == NULL)
        return;
    /* Pending operations hang off channels and sessions the transports own;
     * each is also counted in ts->pending. Transports close their channels
     * before freeing the server, so nothing should be left here. */
    if (ts->tool_json != NULL)
        for (int i = 0; i < T_COUNT; i++)
            mb_tsbuf_free(&ts->tool_json[i]);
    free(ts->tool_json);
    mb_tsbuf_free(&ts->dynamic_json);
    mb_tsbuf_free(&ts->out);
    mb_tsbuf_free(&ts->aux);
    free(ts->extra_n);
    free(ts);
    *tsp = NULL;
}
