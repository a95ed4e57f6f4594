/*
 * worker/jsonrpc.c — JSON-RPC 2.0 message classification and reply writing
 * (see jsonrpc.h for the decisions).
 *
 * Two ways to the same answer. The plain path (parse_plain) validates with
 * jsonscan.c and reads the raw top-level members; it only takes text that
 * cJSON would read identically (mb_json_valid_members, plain), where a raw key
 * comparison is a decoded one. Everything else goes to the cJSON path
 * (mb_jsonrpc_parse_cjson): cJSON parses and validates the message; a
 * second, tiny scanner then walks the top-level object of the same (now
 * known to be valid) text to find the bytes of the id member. cJSON keeps
 * object members in text order, so "the k-th member" is the same member for
 * both, including with duplicate keys (the first "id" wins for both) and
 * escaped keys ("\u0069d"). Both paths fill a struct fields and let
 * decide() classify, so the rules exist once.
 */
#include "worker/jsonrpc.h"

#include <string.h>

#include "common/errors.h"

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* p points at '"'; returns the byte after the closing quote, or NULL. */
static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

static const char *skip_value(const char *p, const char *end)
{
    if (p >= end)
        return NULL;
    if (*p == '"')
        return skip_string(p, end);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < end) {
            if (*p == '"') {
                p = skip_string(p, end);
                if (p == NULL)
                    return NULL;
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if (*p == '}' || *p == ']') {
                if (--depth == 0)
                    return p + 1;
            }
            p++;
        }
        return NULL;
    }
    while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' &&
           *p != '\n' && *p != '\r')
        p++;
    return p;
}

/* Finds the raw text of the index-th member value of the object in text. */
static int find_member(const char *text, size_t len, int index, const char **vstart, size_t *vlen)
{
    const char *p = text, *end = text + len;
    p = skip_ws(p, end);
    if (p >= end || *p != '{')
        return MB_ERR;
    p++;
    for (int i = 0;; i++) {
        p = skip_ws(p, end);
        if (p >= end || *p != '"')
            return MB_ERR;
        p = skip_string(p, end);
        if (p == NULL)
            return MB_ERR;
        p = skip_ws(p, end);
        if (p >= end || *p != ':')
            return MB_ERR;
        p = skip_ws(p + 1, end);
        const char *v = p;
        p = skip_value(p, end);
        if (p == NULL)
            return MB_ERR;
        if (i == index) {
            *vstart = v;
            *vlen = (size_t)(p - v);
            return 0;
        }
        p = skip_ws(p, end);
        if (p >= end || *p != ',')
            return MB_ERR;
        p++;
    }
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The strict JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int strict_number(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i >= n)
        return 0;
    if (s[i] == '0')
        i++;
    else if (is_digit(s[i]))
        while (i < n && is_digit(s[i]))
            i++;
    else
        return 0;
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || !is_digit(s[i]))
            return 0;
        while (i < n && is_digit(s[i]))
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= n || !is_digit(s[i]))
            return 0;
        while (i < n && is_digit(s[i]))
            i++;
    }
    return i == n;
}

/* A string id is echoed verbatim, so it must be valid JSON text on its own. */
static int clean_string(const char *s, size_t n)
{
    if (n < 2 || s[0] != '"' || s[n - 1] != '"')
        return 0;
    for (size_t i = 1; i + 1 < n; i++)
        if ((unsigned char)s[i] < 0x20)
            return 0;
    return 1;
}

static int invalid(struct mb_jsonrpc_msg *m, int code, const char *msg)
{
    m->kind = MB_JSONRPC_INVALID;
    m->error = code;
    m->error_msg = msg;
    return 0;
}

/* What the classification needs to know about the top-level members. */
enum field_type { F_ABSENT, F_STRING, F_NUMBER, F_NULL, F_OTHER };
struct fields {
    bool jsonrpc_ok; /* "jsonrpc" is the string "2.0" */
    enum field_type id, method;
    bool result, error;
};

static void reset(struct mb_jsonrpc_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->id = "null";
    m->id_len = 4;
    m->method_id = MB_METHOD_INVALID;
}

/* The rules of jsonrpc.h, in the order the errors take precedence. */
static int decide(struct mb_jsonrpc_msg *m, const struct fields *f)
{
    if (!f->jsonrpc_ok)
        return invalid(m, MB_JSONRPC_INVALID_REQUEST,
                       "Invalid Request: \"jsonrpc\" must be \"2.0\"");
    if (f->id == F_OTHER)
        return invalid(m, MB_JSONRPC_INVALID_REQUEST,
                       "Invalid Request: \"id\" must be a string or a number");
    if (f->id == F_NULL)
        return invalid(m, MB_JSONRPC_INVALID_REQUEST, "Invalid Request: \"id\" must not be null");
    if (f->method != F_ABSENT) {
        if (f->method != F_STRING)
            return invalid(m, MB_JSONRPC_INVALID_REQUEST,
                           "Invalid Request: \"method\" must be a string");
        m->kind = f->id != F_ABSENT ? MB_JSONRPC_REQUEST : MB_JSONRPC_NOTIFICATION;
        return 0;
    }
    if (f->id != F_ABSENT && f->result != f->error) {
        m->kind = MB_JSONRPC_RESPONSE;
        return 0;
    }
    return invalid(m, MB_JSONRPC_INVALID_REQUEST, "Invalid Request: \"method\" is missing");
}

/* The method is known (a string): its label, once. */
static void set_method(struct mb_jsonrpc_msg *m, const char *name, size_t len)
{
    m->method = name;
    if (m->kind == MB_JSONRPC_REQUEST || m->kind == MB_JSONRPC_NOTIFICATION)
        m->method_id = mb_jsonrpc_method_of(name, len);
}

static enum field_type raw_type(struct mb_json_raw v)
{
    if (v.p == NULL)
        return F_ABSENT;
    switch (v.p[0]) {
    case '"':
        return F_STRING;
    case 'n':
        return F_NULL;
    case '-':
        return F_NUMBER;
    default:
        return v.p[0] >= '0' && v.p[0] <= '9' ? F_NUMBER : F_OTHER;
    }
}

/* The params members the request path reads (metrics' tool label, route_one's
 * target, token and arguments, a list's cursor): found by one walk on the first
 * lookup and kept in m, instead of one walk per lookup. */
static const char *const param_names[MB_JSONRPC_PARAM_CACHE] = {"name", "_meta", "arguments", "uri",
                                                                "cursor"};

/* The plain path (see the top of the file). Returns MB_DECLINED, m reset,
 * when the cJSON path must decide. */
static int parse_plain(const char *text, size_t len, struct mb_jsonrpc_msg *m)
{
    static const char *const names[] = {"jsonrpc", "method", "params", "id", "result", "error"};
    struct mb_json_raw v[6];
    struct fields f;

    /* params' common members are found in the same pass (param_raw). */
    struct mb_json_nest nest = {2, param_names, MB_JSONRPC_PARAM_CACHE, m->pcache, false};
    int rc = mb_json_valid_members(text, len, true, names, 6, v, &nest);
    if (rc == MB_ERR) /* not plain JSON: cJSON decides */
        return MB_DECLINED;
    if (rc == MB_DECLINED) {
        if (*skip_ws(text, text + len) == '[') /* valid: a value follows */
            return invalid(
                m, MB_JSONRPC_INVALID_REQUEST,
                "Invalid Request: batches are not supported (removed in MCP 2025-06-18)");
        return invalid(m, MB_JSONRPC_INVALID_REQUEST,
                       "Invalid Request: a message must be a JSON object");
    }
    f.jsonrpc_ok = v[0].len == 5 && memcmp(v[0].p, "\"2.0\"", 5) == 0;
    f.method = raw_type(v[1]);
    f.id = raw_type(v[3]);
    f.result = v[4].p != NULL;
    f.error = v[5].p != NULL;
    long mlen = 0;
    if (f.method == F_STRING &&
        (mlen = mb_json_raw_plain_string(v[1], m->method_buf, sizeof(m->method_buf))) < 0) {
        reset(m); /* escapes or too long: decoded by cJSON */
        return MB_DECLINED;
    }
    if (f.id == F_STRING || f.id == F_NUMBER) {
        m->id = v[3].p;
        m->id_len = v[3].len;
    }
    m->plain = true;
    m->params_raw = v[2];
    m->pcache_done = nest.found; /* else param_raw walks (params absent: nothing to walk) */
    m->pcache_rc = 0;
    decide(m, &f);
    if (m->kind == MB_JSONRPC_REQUEST || m->kind == MB_JSONRPC_NOTIFICATION)
        set_method(m, m->method_buf, (size_t)mlen);
    return 0;
}

int mb_jsonrpc_parse(const char *text, size_t len, struct mb_jsonrpc_msg *m)
{
    reset(m);
    if (parse_plain(text, len, m) == 0)
        return 0;
    return mb_jsonrpc_parse_cjson(text, len, m);
}

static enum field_type tree_type(const cJSON *c)
{
    return c == NULL           ? F_ABSENT
           : cJSON_IsString(c) ? F_STRING
           : cJSON_IsNumber(c) ? F_NUMBER
           : cJSON_IsNull(c)   ? F_NULL
                               : F_OTHER;
}

int mb_jsonrpc_parse_cjson(const char *text, size_t len, struct mb_jsonrpc_msg *m)
{
    reset(m);
    m->params_parsed = true; /* params_tree is a node of root (or absent) */

    const char *parse_end = NULL;
    m->root = cJSON_ParseWithLengthOpts(text, len, &parse_end, 0);
    if (m->root == NULL)
        return invalid(m, MB_JSONRPC_PARSE_ERROR, "Parse error");
    /* cJSON stops after the first value; anything but whitespace after it
     * means the text is not one JSON value. */
    if (parse_end == NULL || skip_ws(parse_end, text + len) != text + len)
        return invalid(m, MB_JSONRPC_PARSE_ERROR, "Parse error: trailing data after the message");
    if (cJSON_IsArray(m->root))
        return invalid(m, MB_JSONRPC_INVALID_REQUEST,
                       "Invalid Request: batches are not supported (removed in MCP 2025-06-18)");
    if (!cJSON_IsObject(m->root))
        return invalid(m, MB_JSONRPC_INVALID_REQUEST,
                       "Invalid Request: a message must be a JSON object");

    const cJSON *jsonrpc = NULL, *method = NULL, *id = NULL, *result = NULL, *error = NULL;
    int id_index = -1, i = 0;
    for (cJSON *c = m->root->child; c != NULL; c = c->next, i++) {
        const char *k = c->string;
        if (k == NULL)
            continue;
        if (jsonrpc == NULL && strcmp(k, "jsonrpc") == 0)
            jsonrpc = c;
        else if (method == NULL && strcmp(k, "method") == 0)
            method = c;
        else if (m->params_tree == NULL && strcmp(k, "params") == 0)
            m->params_tree = c;
        else if (id == NULL && strcmp(k, "id") == 0) {
            id = c;
            id_index = i;
        } else if (result == NULL && strcmp(k, "result") == 0)
            result = c;
        else if (error == NULL && strcmp(k, "error") == 0)
            error = c;
    }

    struct fields f = {
        .jsonrpc_ok = cJSON_IsString(jsonrpc) && strcmp(jsonrpc->valuestring, "2.0") == 0,
        .id = tree_type(id),
        .method = tree_type(method),
        .result = result != NULL,
        .error = error != NULL,
    };
    if (f.id == F_STRING || f.id == F_NUMBER) {
        const char *raw;
        size_t raw_len;
        if (find_member(text, len, id_index, &raw, &raw_len) != 0)
            return invalid(m, MB_JSONRPC_INTERNAL_ERROR, "Internal error: cannot locate the id");
        if (f.id == F_NUMBER ? !strict_number(raw, raw_len) : !clean_string(raw, raw_len))
            return invalid(m, MB_JSONRPC_PARSE_ERROR, "Parse error: malformed id");
        m->id = raw;
        m->id_len = raw_len;
    }
    decide(m, &f);
    if (m->kind == MB_JSONRPC_REQUEST || m->kind == MB_JSONRPC_NOTIFICATION)
        set_method(m, method->valuestring, strlen(method->valuestring));
    return 0;
}

const cJSON *mb_jsonrpc_params(const struct mb_jsonrpc_msg *m)
{
    if (!m->params_parsed) {
        /* The cache described in jsonrpc.h: m is never a const object. */
        struct mb_jsonrpc_msg *w = (struct mb_jsonrpc_msg *)m;
        w->params_parsed = true;
        if (m->params_raw.p != NULL)
            w->params_tree = cJSON_ParseWithLength(m->params_raw.p, m->params_raw.len);
    }
    return m->params_tree;
}

int mb_jsonrpc_param_raw(const struct mb_jsonrpc_msg *m, const char *name, struct mb_json_raw *out)
{
    out->p = NULL;
    out->len = 0;
    if (!m->plain)
        return MB_DECLINED;
    if (m->params_raw.p == NULL)
        return 0;
    for (size_t i = 0; i < MB_JSONRPC_PARAM_CACHE; i++) {
        if (strcmp(name, param_names[i]) != 0)
            continue;
        if (!m->pcache_done) {
            /* The cache described in jsonrpc.h: m is never a const object. */
            struct mb_jsonrpc_msg *w = (struct mb_jsonrpc_msg *)m;
            w->pcache_done = true;
            w->pcache_rc = mb_json_members(m->params_raw.p, m->params_raw.len, param_names,
                                           MB_JSONRPC_PARAM_CACHE, w->pcache);
        }
        *out = m->pcache[i];
        return m->pcache_rc;
    }
    return mb_json_members(m->params_raw.p, m->params_raw.len, &name, 1, out);
}

bool mb_jsonrpc_params_ok(const struct mb_jsonrpc_msg *m)
{
    if (m->plain)
        return m->params_raw.p == NULL || m->params_raw.p[0] == '{';
    const cJSON *p = mb_jsonrpc_params(m);
    return p == NULL || cJSON_IsObject(p);
}

const char *mb_jsonrpc_param_str(const struct mb_jsonrpc_msg *m, const char *name, char *buf,
                                 size_t cap)
{
    struct mb_json_raw v;
    if (mb_jsonrpc_param_raw(m, name, &v) == 0) {
        if (v.p == NULL || v.p[0] != '"')
            return NULL;
        if (mb_json_raw_plain_string(v, buf, cap) >= 0)
            return buf;
    }
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(mb_jsonrpc_params(m), name);
    return cJSON_IsString(s) ? s->valuestring : NULL;
}

static const struct {
    const char *name;
    size_t len;
} method_names[] = {
#define MB_X_(a, id, name) {name, sizeof(name) - 1},
    MB_METHODS(MB_X_, _)
#undef MB_X_
};

enum mb_method mb_jsonrpc_method_of(const char *name, size_t len)
{
    /* "other" and "invalid" are labels, never method names. */
    for (int i = 0; i < MB_METHOD_OTHER; i++)
        if (method_names[i].len == len && memcmp(name, method_names[i].name, len) == 0)
            return (enum mb_method)i;
    return MB_METHOD_OTHER;
}

void mb_jsonrpc_msg_release(struct mb_jsonrpc_msg *m)
{
    if (m->root != NULL)
        cJSON_Delete(m->root); /* params_tree is inside it */
    else
        cJSON_Delete(m->params_tree);
    m->root = NULL;
    m->params_tree = NULL;
    m->params_parsed = false;
    m->params_raw = (struct mb_json_raw){NULL, 0};
    m->plain = false;
    m->pcache_done = false;
    m->method = NULL;
}

#define LIT(b, s) mb_buf_append((b), (s), sizeof(s) - 1)

void mb_jsonrpc_result_parts(struct iovec v[MB_JSONRPC_RESULT_PARTS], const char *id, size_t id_len,
                             const char *result, size_t result_len)
{
    static const char head[] = "{\"jsonrpc\":\"2.0\",\"id\":", mid[] = ",\"result\":";
    v[0] = (struct iovec){(void *)head, sizeof(head) - 1};
    v[1] = (struct iovec){(void *)id, id_len};
    v[2] = (struct iovec){(void *)mid, sizeof(mid) - 1};
    v[3] = (struct iovec){(void *)result, result_len};
    v[4] = (struct iovec){(void *)"}", 1};
}

int mb_jsonrpc_write_result(struct mb_buf *out, const char *id, size_t id_len, const char *result,
                            size_t result_len)
{
    struct iovec v[MB_JSONRPC_RESULT_PARTS];
    size_t mark = out->len;
    mb_jsonrpc_result_parts(v, id, id_len, result, result_len);
    if (mb_buf_reserve(out, id_len + result_len + 40) != 0)
        return MB_ERR;
    for (size_t i = 0; i < MB_JSONRPC_RESULT_PARTS; i++)
        if (mb_buf_append(out, v[i].iov_base, v[i].iov_len) != 0) {
            out->len = mark;
            return MB_ERR;
        }
    return 0;
}

int mb_jsonrpc_write_error(struct mb_buf *out, const char *id, size_t id_len, int code,
                           const char *msg, const char *detail, size_t detail_len)
{
    size_t mark = out->len;
    if (LIT(out, "{\"jsonrpc\":\"2.0\",\"id\":") || mb_buf_append(out, id, id_len) ||
        LIT(out, ",\"error\":{\"code\":") || mb_buf_append_int(out, code) ||
        LIT(out, ",\"message\":"))
        goto fail;
    if (detail == NULL) {
        if (mb_buf_append_json_string(out, msg, strlen(msg)))
            goto fail;
    } else {
        /* One JSON string built from two pieces: escape each, then drop the
         * closing quote of the first and the opening quote of the second. */
        if (mb_buf_append_json_string(out, msg, strlen(msg)))
            goto fail;
        out->len--;
        if (LIT(out, ": "))
            goto fail;
        size_t open_quote = out->len;
        if (mb_buf_append_json_string(out, detail, detail_len))
            goto fail;
        memmove(out->data + open_quote, out->data + open_quote + 1, out->len - open_quote - 1);
        out->len--;
    }
    if (LIT(out, "}}"))
        goto fail;
    return 0;
fail:
    out->len = mark;
    return MB_ERR;
}

int mb_jsonrpc_write_error_data(struct mb_buf *out, const char *id, size_t id_len, int code,
                                const char *msg, const char *data, size_t data_len)
{
    size_t mark = out->len;
    if (mb_jsonrpc_write_error(out, id, id_len, code, msg, NULL, 0) != 0)
        return MB_ERR;
    /* Reopen the error object: drop its "}}" and append the data. */
    out->len -= 2;
    if (LIT(out, ",\"data\":") || mb_buf_append(out, data, data_len) || LIT(out, "}}")) {
        out->len = mark;
        return MB_ERR;
    }
    return 0;
}
