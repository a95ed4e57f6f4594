/*
 * worker/jsonrpc.c — JSON-RPC 2.0 message classification and reply writing
 * (see jsonrpc.h for the decisions).
 *
 * cJSON parses and validates the message; a second, tiny scanner then walks
 * the top-level object of the same (now known to be valid) text to find the
 * bytes of the id member. cJSON keeps object members in text order, so "the
 * k-th member" is the same member for both, including with duplicate keys
 * (the first "id" wins for both) and escaped keys ("\u0069d").
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

int mb_jsonrpc_parse(const char *text, size_t len, struct mb_jsonrpc_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->id = "null";
    m->id_len = 4;

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
    for (const cJSON *c = m->root->child; c != NULL; c = c->next, i++) {
        const char *k = c->string;
        if (k == NULL)
            continue;
        if (jsonrpc == NULL && strcmp(k, "jsonrpc") == 0)
            jsonrpc = c;
        else if (method == NULL && strcmp(k, "method") == 0)
            method = c;
        else if (m->params == NULL && strcmp(k, "params") == 0)
            m->params = c;
        else if (id == NULL && strcmp(k, "id") == 0) {
            id = c;
            id_index = i;
        } else if (result == NULL && strcmp(k, "result") == 0)
            result = c;
        else if (error == NULL && strcmp(k, "error") == 0)
            error = c;
    }

    int id_bad_type = 0;
    if (id != NULL && (cJSON_IsString(id) || cJSON_IsNumber(id))) {
        const char *raw;
        size_t raw_len;
        if (find_member(text, len, id_index, &raw, &raw_len) != 0)
            return invalid(m, MB_JSONRPC_INTERNAL_ERROR, "Internal error: cannot locate the id");
        if (cJSON_IsNumber(id) ? !strict_number(raw, raw_len) : !clean_string(raw, raw_len))
            return invalid(m, MB_JSONRPC_PARSE_ERROR, "Parse error: malformed id");
        m->id = raw;
        m->id_len = raw_len;
    } else if (id != NULL && !cJSON_IsNull(id)) {
        id_bad_type = 1;
    }

    if (!cJSON_IsString(jsonrpc) || strcmp(jsonrpc->valuestring, "2.0") != 0)
        return invalid(m, MB_JSONRPC_INVALID_REQUEST,
                       "Invalid Request: \"jsonrpc\" must be \"2.0\"");
    if (id_bad_type)
        return invalid(m, MB_JSONRPC_INVALID_REQUEST,
                       "Invalid Request: \"id\" must be a string or a number");
    if (cJSON_IsNull(id))
        return invalid(m, MB_JSONRPC_INVALID_REQUEST, "Invalid Request: \"id\" must not be null");

    if (method != NULL) {
        if (!cJSON_IsString(method))
            return invalid(m, MB_JSONRPC_INVALID_REQUEST,
                           "Invalid Request: \"method\" must be a string");
        m->method = method->valuestring;
        m->kind = id != NULL ? MB_JSONRPC_REQUEST : MB_JSONRPC_NOTIFICATION;
        return 0;
    }
    if (id != NULL && (result != NULL) != (error != NULL)) {
        m->kind = MB_JSONRPC_RESPONSE;
        return 0;
    }
    return invalid(m, MB_JSONRPC_INVALID_REQUEST, "Invalid Request: \"method\" is missing");
}

void mb_jsonrpc_msg_release(struct mb_jsonrpc_msg *m)
{
    cJSON_Delete(m->root);
    m->root = NULL;
    m->method = NULL;
    m->params = NULL;
}

#define LIT(b, s) mb_buf_append((b), (s), sizeof(s) - 1)

int mb_jsonrpc_write_result(struct mb_buf *out, const char *id, size_t id_len, const char *result,
                            size_t result_len)
{
    size_t mark = out->len;
    if (mb_buf_reserve(out, id_len + result_len + 40) != 0)
        return MB_ERR;
    if (LIT(out, "{\"jsonrpc\":\"2.0\",\"id\":") || mb_buf_append(out, id, id_len) ||
        LIT(out, ",\"result\":") || mb_buf_append(out, result, result_len) || LIT(out, "}")) {
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
