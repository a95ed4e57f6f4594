/*
 * worker/jsonrpc.h — JSON-RPC 2.0 framing: classify one client message and
 * write replies. Pure functions (no I/O, no globals), unit-tested on their own.
 *
 * Ids are raw text. cJSON stores numbers as doubles, so 1000000000000000
 * would come back as 1e+15 and 9007199254740993 would lose a digit; instead
 * the parser finds the id's bytes in the input and replies splice them back
 * verbatim (strings keep their quotes and escapes). An id must be a string
 * or a number; a number must follow the strict JSON grammar (cJSON itself
 * accepts "01" or "1."), and a string must not hold raw control characters,
 * because the id is echoed and the echo must be valid JSON.
 *
 * Decisions (DESIGN §4 and the MCP specification):
 *   - Batches (a JSON array) are rejected with one -32600 error, id null:
 *     MCP 2025-06-18 removed batching, and a 2025-03-26 client sends single
 *     messages unless it chooses to batch. Supporting batches would multiply
 *     the work one frame can cause; one clear error is the safer answer.
 *   - id null is rejected (-32600): MCP says a request id MUST NOT be null.
 *   - A fractional or exponent number id (1.5, 1e3) is accepted and echoed as
 *     sent: JSON-RPC only says numbers SHOULD NOT have fractional parts.
 *   - An invalid message always gets an error reply (id null when its id is
 *     absent or unusable), even without an id: JSON-RPC answers invalid
 *     Requests with id null. Only a valid notification gets no reply.
 *   - A message without "method" but with an id and exactly one of "result"
 *     or "error" is a response to a server-to-client request: accepted
 *     silently (it will be routed to a backend later).
 *   - params, when present, is not checked here: each method checks it and
 *     answers -32602 (mcp.c), so a wrong params type is "Invalid params".
 *   - Duplicate keys: the first member of a name wins. Keys are compared as
 *     decoded text: "\u0069d" is the id.
 *   - Anything after the one JSON value but white space is a parse error.
 *
 * How (speed; none of this changes an answer): the common message is
 * decided without cJSON. One mb_json_valid_members pass (jsonscan.h, plain)
 * checks the strict grammar and that the text is what cJSON reads the same
 * way (no \u escape, no number over 63 bytes), and finds the raw jsonrpc,
 * method, params, id, result and error; the method is
 * copied out when it is a string without escapes of under 128 bytes. Every
 * other message (invalid JSON, \u escapes, non-strict numbers, an escaped
 * or long method) is decided by mb_jsonrpc_parse_cjson, the cJSON
 * reference, exactly as before; tests/unit/worker/test_jsonrpc.c checks
 * that both agree on a corpus and its mutations. params is parsed into a
 * cJSON tree only when a consumer asks (mb_jsonrpc_params): a tools/list
 * without params builds no tree at all.
 */
#ifndef MB_WORKER_JSONRPC_H
#define MB_WORKER_JSONRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#include <cjson/cJSON.h>

#include "shm/counters.h"
#include "worker/buf.h"
#include "worker/jsonscan.h"

#define MB_JSONRPC_PARSE_ERROR      (-32700)
#define MB_JSONRPC_INVALID_REQUEST  (-32600)
#define MB_JSONRPC_METHOD_NOT_FOUND (-32601)
#define MB_JSONRPC_INVALID_PARAMS   (-32602)
#define MB_JSONRPC_INTERNAL_ERROR   (-32603)

enum mb_jsonrpc_kind {
    MB_JSONRPC_REQUEST,      /* method + id: needs exactly one reply */
    MB_JSONRPC_NOTIFICATION, /* method, no id: no reply */
    MB_JSONRPC_RESPONSE,     /* id + result/error from the client */
    MB_JSONRPC_INVALID       /* answer with error/error_msg and id */
};

/* The longest method name decided without cJSON (the longest MCP method is
 * 36 bytes); a longer one takes the cJSON path. */
#define MB_JSONRPC_METHOD_MAX 128
/* How many params members one walk finds for mb_jsonrpc_param_raw. */
#define MB_JSONRPC_PARAM_CACHE 5

struct mb_jsonrpc_msg {
    enum mb_jsonrpc_kind kind;
    const char *method;       /* REQUEST, NOTIFICATION: NUL-terminated, in m or its tree */
    enum mb_method method_id; /* REQUEST, NOTIFICATION: the method's bounded label,
                                 classified once (MB_METHOD_OTHER for any other name);
                                 otherwise MB_METHOD_INVALID */
    const char *id;           /* raw id text, pointing into the input; "null" when none */
    size_t id_len;
    int error;             /* INVALID: the error code to answer with */
    const char *error_msg; /* INVALID: static text for the error message */
    /* Private to jsonrpc.c: read params with mb_jsonrpc_params. */
    struct mb_json_raw params_raw; /* the raw params value; {NULL, 0} when absent */
    bool plain;                    /* decided without cJSON (plain text, jsonscan.h) */
    bool params_parsed;            /* params_tree is final */
    cJSON *root;                   /* the whole message, on the cJSON path only */
    cJSON *params_tree;            /* params: a node of root, or parsed on first use */
    bool pcache_done;              /* pcache holds the common params members (jsonrpc.c) */
    int pcache_rc;
    struct mb_json_raw pcache[MB_JSONRPC_PARAM_CACHE];
    char method_buf[MB_JSONRPC_METHOD_MAX];
};

/* Classifies text (len bytes, need not be NUL-terminated). Always fills *m;
 * returns 0. The input must outlive m (m->id and params point into it). */
int mb_jsonrpc_parse(const char *text, size_t len, struct mb_jsonrpc_msg *m);
/* The same decided with cJSON for every message: the reference the fast
 * path falls back to (exported for the tests that compare the two). */
int mb_jsonrpc_parse_cjson(const char *text, size_t len, struct mb_jsonrpc_msg *m);
/* params as a cJSON tree (NULL when absent; also when memory ran out, so
 * the method answers "Invalid params" rather than crash). Parsed on the
 * first call and kept in m: m is logically const (the tree is a cache of
 * text m already holds), which is why a const message may be passed. */
const cJSON *mb_jsonrpc_params(const struct mb_jsonrpc_msg *m);
/* params is absent or an object (without building the tree when m->plain). */
bool mb_jsonrpc_params_ok(const struct mb_jsonrpc_msg *m);
/* params member name when it is a string: decoded and NUL-terminated, in
 * buf (cap bytes) when the raw text is a plain string that fits, else in the
 * params tree. NULL when params is not an object, or the member is absent or
 * not a string. */
const char *mb_jsonrpc_param_str(const struct mb_jsonrpc_msg *m, const char *name, char *buf,
                                 size_t cap);
/* The raw text of params member name, for a message decided without cJSON
 * (m->plain: its keys are their raw bytes). Returns 0 and fills *out ({NULL,
 * 0} when params or the member is absent), or MB_DECLINED when raw lookups
 * cannot be trusted (not m->plain, or params is not an object): use the
 * tree then. The members the request path reads (name, _meta, arguments,
 * uri, cursor) come from one walk of params, kept in m (like the tree). */
int mb_jsonrpc_param_raw(const struct mb_jsonrpc_msg *m, const char *name, struct mb_json_raw *out);
/* The bounded label of a method name (len bytes): one of shm/counters.h's
 * MB_METHODS, MB_METHOD_OTHER for any other name. */
enum mb_method mb_jsonrpc_method_of(const char *name, size_t len);
/* Frees what mb_jsonrpc_parse allocated; m can be parsed into again. */
void mb_jsonrpc_msg_release(struct mb_jsonrpc_msg *m);

/* The pieces of {"jsonrpc":"2.0","id":ID,"result":RESULT} (RESULT is JSON
 * text) in v[0..4], for a writer that copies them where they go. */
#define MB_JSONRPC_RESULT_PARTS 5
void mb_jsonrpc_result_parts(struct iovec v[MB_JSONRPC_RESULT_PARTS], const char *id, size_t id_len,
                             const char *result, size_t result_len);
/* Appends {"jsonrpc":"2.0","id":ID,"result":RESULT} where RESULT is JSON text. */
int mb_jsonrpc_write_result(struct mb_buf *out, const char *id, size_t id_len, const char *result,
                            size_t result_len);
/* Appends {"jsonrpc":"2.0","id":ID,"error":{"code":CODE,"message":MSG}};
 * the message is msg, followed by ": " and detail (detail_len bytes) when
 * detail is not NULL. Both are escaped. */
int mb_jsonrpc_write_error(struct mb_buf *out, const char *id, size_t id_len, int code,
                           const char *msg, const char *detail, size_t detail_len);

/* The same with "data":DATA in the error object (DATA is JSON text). */
int mb_jsonrpc_write_error_data(struct mb_buf *out, const char *id, size_t id_len, int code,
                                const char *msg, const char *data, size_t data_len);

#endif
