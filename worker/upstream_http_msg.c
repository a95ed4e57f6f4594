/*
 * worker/upstream_http_msg.c — the method / id lookup of the Streamable
 * HTTP transport (upstream_http_msg.h).
 *
 * One mb_json_members pass stops once it has what it looks for, so "method"
 * near the front of a message is cheap; but an "id" after "params" (where
 * most clients put it, and the core keeps their order) costs a walk over
 * the whole params. So the last member is read backwards first: in valid
 * JSON the last non-space byte closes the top-level object, and the member
 * just before it is a top-level one. And a message that starts the way most
 * clients write one, {"jsonrpc":"2.0","method":"...", has its method read
 * off directly. Two mb_json_member walks, each
 * validating the whole message, were 6% of a tools/call's instructions.
 */
#include "worker/upstream_http_msg.h"

#include <string.h>

static const char *back_ws(const char *t, const char *p)
{
    while (p > t && (p[-1] == ' ' || p[-1] == '\t' || p[-1] == '\n' || p[-1] == '\r'))
        p--;
    return p;
}

/* A byte of a number, true, false or null. */
static bool literal_byte(char c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' ||
           c == 't' || c == 'r' || c == 'u' || c == 'f' || c == 'a' || c == 'l' || c == 's' ||
           c == 'n';
}

/* The method of a message written compactly with "jsonrpc" first, as most
 * clients write it: {"jsonrpc":"2.0","method":"<no escapes>". Returns false
 * for any other shape (the caller then walks the members). */
static bool compact_method(const char *t, size_t n, struct mb_json_raw *method)
{
    static const char head[] = "{\"jsonrpc\":\"2.0\",\"method\":\"";
    const size_t hl = sizeof(head) - 1;
    if (n <= hl || memcmp(t, head, hl) != 0)
        return false;
    const char *q = memchr(t + hl, '"', n - hl);
    if (q == NULL || memchr(t + hl, '\\', (size_t)(q - (t + hl))) != NULL)
        return false;
    method->p = t + hl - 1;
    method->len = (size_t)(q + 1 - method->p);
    return true;
}

/* Whether the last member of the object t is "id" with a string, number or
 * literal value (an id is never an object or array). false means only "not
 * seen here". */
static bool last_member_is_id(const char *t, size_t n)
{
    const char *p = back_ws(t, t + n);
    if (p == t || p[-1] != '}')
        return false;
    p = back_ws(t, p - 1);
    if (p == t)
        return false;
    if (p[-1] == '"') { /* back to the string's opening quote */
        p--;
        for (;;) {
            const char *q = memrchr(t, '"', (size_t)(p - t));
            if (q == NULL)
                return false;
            size_t bs = 0; /* an odd run of backslashes escapes it */
            while (q - bs > t && q[-1 - (ptrdiff_t)bs] == '\\')
                bs++;
            p = q;
            if (bs % 2 == 0)
                break;
        }
    } else {
        const char *v = p;
        while (p > t && literal_byte(p[-1]))
            p--;
        if (p == v)
            return false;
    }
    p = back_ws(t, p);
    if (p == t || p[-1] != ':')
        return false;
    p = back_ws(t, p - 1);
    if (p - t < 4 || memcmp(p - 4, "\"id\"", 4) != 0)
        return false;
    p = back_ws(t, p - 4);
    return p > t && (p[-1] == ',' || p[-1] == '{');
}

void mb_upstream_http_classify(const char *msg, size_t len, struct mb_json_raw *method,
                               bool *has_id)
{
    static const char *const names[] = {"method", "id"};
    struct mb_json_raw m[2];
    bool id_last = last_member_is_id(msg, len);

    if (id_last && compact_method(msg, len, method)) {
        *has_id = true;
        return;
    }
    mb_json_members(msg, len, names, id_last ? 1 : 2, m);
    *method = m[0];
    *has_id = id_last || m[1].p != NULL;
}
