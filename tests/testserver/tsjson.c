/*
 * tests/testserver/tsjson.c — see tsjson.h.
 *
 * validate() is a recursive-descent checker of the RFC 8259 grammar with a
 * depth limit (so hostile nesting cannot exhaust the stack). Lookups after
 * validation use skip(), which trusts the text and only tracks strings and
 * brackets, so finding a key costs one pass over the bytes before it.
 */
#include "tests/testserver/tsjson.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* p points at '"'. Returns the byte after the closing quote, or NULL. */
static const char *check_string(const char *p, const char *end, const char **why)
{
    p++;
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p + 1;
        if (c < 0x20) {
            *why = "control character in string";
            return NULL;
        }
        if (c != '\\') {
            p++;
            continue;
        }
        if (++p >= end)
            break;
        switch (*p) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            p++;
            break;
        case 'u':
            if (end - p < 5 || hexval(p[1]) < 0 || hexval(p[2]) < 0 || hexval(p[3]) < 0 ||
                hexval(p[4]) < 0) {
                *why = "bad \\u escape";
                return NULL;
            }
            p += 5;
            break;
        default:
            *why = "bad escape in string";
            return NULL;
        }
    }
    *why = "unterminated string";
    return NULL;
}

static const char *check_number(const char *p, const char *end, const char **why)
{
    if (p < end && *p == '-')
        p++;
    if (p < end && *p == '0') {
        p++;
    } else if (p < end && *p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    } else {
        goto bad;
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9')
            goto bad;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            goto bad;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    return p;
bad:
    *why = "bad number";
    return NULL;
}

static const char *check_value(const char *p, const char *end, int depth, const char **why)
{
    p = ws(p, end);
    if (p >= end) {
        *why = "unexpected end of input";
        return NULL;
    }
    switch (*p) {
    case '"':
        return check_string(p, end, why);
    case '{':
    case '[': {
        char close = *p == '{' ? '}' : ']';
        int obj = *p == '{';
        if (depth >= MB_TSJSON_MAX_DEPTH) {
            *why = "nesting too deep";
            return NULL;
        }
        p = ws(p + 1, end);
        if (p < end && *p == close)
            return p + 1;
        for (;;) {
            if (obj) {
                p = ws(p, end);
                if (p >= end || *p != '"') {
                    *why = "expected a string key";
                    return NULL;
                }
                if ((p = check_string(p, end, why)) == NULL)
                    return NULL;
                p = ws(p, end);
                if (p >= end || *p != ':') {
                    *why = "expected ':'";
                    return NULL;
                }
                p++;
            }
            if ((p = check_value(p, end, depth + 1, why)) == NULL)
                return NULL;
            p = ws(p, end);
            if (p < end && *p == ',') {
                p++;
                continue;
            }
            if (p < end && *p == close)
                return p + 1;
            *why = obj ? "expected ',' or '}'" : "expected ',' or ']'";
            return NULL;
        }
    }
    case 't':
        if (end - p >= 4 && memcmp(p, "true", 4) == 0)
            return p + 4;
        break;
    case 'f':
        if (end - p >= 5 && memcmp(p, "false", 5) == 0)
            return p + 5;
        break;
    case 'n':
        if (end - p >= 4 && memcmp(p, "null", 4) == 0)
            return p + 4;
        break;
    default:
        if (*p == '-' || (*p >= '0' && *p <= '9'))
            return check_number(p, end, why);
    }
    *why = "unexpected character";
    return NULL;
}

int mb_tsjson_validate(const char *p, size_t n, struct mb_tsjson *root, const char **why)
{
    const char *dummy;
    if (why == NULL)
        why = &dummy;
    const char *end = p + n;
    const char *s = ws(p, end);
    const char *e = check_value(s, end, 0, why);
    if (e == NULL)
        return -1;
    if (ws(e, end) != end) {
        *why = "trailing data after the value";
        return -1;
    }
    root->p = s;
    root->n = (size_t)(e - s);
    return 0;
}

enum mb_tsjson_type mb_tsjson_type(struct mb_tsjson v)
{
    if (v.n == 0)
        return MB_TSJSON_INVALID;
    switch (v.p[0]) {
    case '{':
        return MB_TSJSON_OBJECT;
    case '[':
        return MB_TSJSON_ARRAY;
    case '"':
        return MB_TSJSON_STRING;
    case 't':
        return MB_TSJSON_TRUE;
    case 'f':
        return MB_TSJSON_FALSE;
    case 'n':
        return MB_TSJSON_NULL;
    default:
        return MB_TSJSON_NUMBER;
    }
}

/* Skips one value of validated text starting at p (no leading whitespace). */
static const char *skip(const char *p, const char *end)
{
    if (*p == '"') {
        for (p++; p < end; p++) {
            if (*p == '\\')
                p++;
            else if (*p == '"')
                return p + 1;
        }
        return end;
    }
    if (*p == '{' || *p == '[') {
        int depth = 0;
        for (; p < end; p++) {
            if (*p == '"') {
                p = skip(p, end) - 1;
            } else if (*p == '{' || *p == '[') {
                depth++;
            } else if (*p == '}' || *p == ']') {
                if (--depth == 0)
                    return p + 1;
            }
        }
        return end;
    }
    while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' &&
           *p != '\n' && *p != '\r')
        p++;
    return p;
}

int mb_tsjson_get(struct mb_tsjson obj, const char *key, struct mb_tsjson *out)
{
    if (mb_tsjson_type(obj) != MB_TSJSON_OBJECT)
        return -1;
    size_t klen = strlen(key);
    const char *end = obj.p + obj.n;
    const char *p = ws(obj.p + 1, end);
    while (p < end && *p == '"') {
        const char *ks = p;
        const char *ke = skip(p, end);
        p = ws(ke, end) + 1; /* past ':' */
        p = ws(p, end);
        const char *ve = skip(p, end);
        int match;
        if ((size_t)(ke - ks) == klen + 2 && memcmp(ks + 1, key, klen) == 0)
            match = 1;
        else if (memchr(ks, '\\', (size_t)(ke - ks)) != NULL)
            match = mb_tsjson_streq((struct mb_tsjson){ks, (size_t)(ke - ks)}, key);
        else
            match = 0;
        if (match) {
            out->p = p;
            out->n = (size_t)(ve - p);
            return 0;
        }
        p = ws(ve, end);
        if (p < end && *p == ',')
            p = ws(p + 1, end);
        else
            break;
    }
    return -1;
}

int mb_tsjson_next(struct mb_tsjson arr, size_t *pos, struct mb_tsjson *out)
{
    if (mb_tsjson_type(arr) != MB_TSJSON_ARRAY)
        return -1;
    const char *end = arr.p + arr.n;
    const char *p = ws(arr.p + (*pos == 0 ? 1 : *pos), end);
    if (p < end && *p == ',')
        p = ws(p + 1, end);
    if (p >= end || *p == ']')
        return -1;
    const char *e = skip(p, end);
    out->p = p;
    out->n = (size_t)(e - p);
    *pos = (size_t)(e - arr.p);
    return 0;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static uint32_t hex4(const char *p)
{
    return (uint32_t)(hexval(p[0]) << 12 | hexval(p[1]) << 8 | hexval(p[2]) << 4 | hexval(p[3]));
}

int mb_tsjson_str(struct mb_tsjson v, char *out, size_t cap)
{
    if (mb_tsjson_type(v) != MB_TSJSON_STRING || v.n < 2 || cap == 0)
        return -1;
    const char *p = v.p + 1, *end = v.p + v.n - 1;
    size_t o = 0;
    while (p < end) {
        char tmp[4];
        size_t k = 1;
        if (*p != '\\') {
            tmp[0] = *p++;
        } else {
            p++;
            switch (*p) {
            case 'b':
                tmp[0] = '\b';
                break;
            case 'f':
                tmp[0] = '\f';
                break;
            case 'n':
                tmp[0] = '\n';
                break;
            case 'r':
                tmp[0] = '\r';
                break;
            case 't':
                tmp[0] = '\t';
                break;
            case 'u': {
                uint32_t cp = hex4(p + 1);
                p += 4;
                if (cp >= 0xdc00 && cp <= 0xdfff)
                    return -1;
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    if (end - p < 7 || p[1] != '\\' || p[2] != 'u')
                        return -1;
                    uint32_t lo = hex4(p + 3);
                    if (lo < 0xdc00 || lo > 0xdfff)
                        return -1;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    p += 6;
                }
                if (cp == 0)
                    return -1;
                k = put_utf8(tmp, cp);
                break;
            }
            default: /* '"', '\\', '/' */
                tmp[0] = *p;
            }
            p++;
        }
        if (o + k >= cap)
            return -1;
        memcpy(out + o, tmp, k);
        o += k;
    }
    out[o] = '\0';
    return (int)o;
}

int mb_tsjson_streq(struct mb_tsjson v, const char *lit)
{
    size_t n = strlen(lit);
    if (mb_tsjson_type(v) != MB_TSJSON_STRING)
        return 0;
    if (v.n == n + 2 && memcmp(v.p + 1, lit, n) == 0)
        return 1;
    if (memchr(v.p, '\\', v.n) == NULL)
        return 0;
    char tmp[256];
    if (n >= sizeof(tmp))
        return 0;
    int k = mb_tsjson_str(v, tmp, sizeof(tmp));
    return k >= 0 && (size_t)k == n && memcmp(tmp, lit, n) == 0;
}

int mb_tsjson_int(struct mb_tsjson v, long long min, long long max, long long *out)
{
    if (mb_tsjson_type(v) != MB_TSJSON_NUMBER || v.n >= 64)
        return -1;
    char tmp[64];
    memcpy(tmp, v.p, v.n);
    tmp[v.n] = '\0';
    if (strpbrk(tmp, ".eE") == NULL) {
        char *e;
        long long x = strtoll(tmp, &e, 10);
        if (*e != '\0' || x < min || x > max)
            return -1;
        *out = x;
        return 0;
    }
    double d = strtod(tmp, NULL);
    if (!isfinite(d) || d != floor(d) || d < (double)min || d > (double)max)
        return -1;
    *out = (long long)d;
    return 0;
}
