/*
 * worker/buf.c — see buf.h. Growth doubles the capacity (at least 256 bytes)
 * so a stream of appends costs amortised O(1) per byte.
 */
#include "worker/buf.h"

#include <stdlib.h>
#include <string.h>

#include "common/errors.h"

int mb_buf_reserve(struct mb_buf *b, size_t extra)
{
    if (b->cap - b->len > extra)
        return 0;
    if (extra > ((size_t)-1) / 4 - b->len)
        return MB_ERR;
    size_t need = b->len + extra + 1; /* +1 keeps room for mb_buf_cstr's NUL */
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return MB_ERR;
    b->data = p;
    b->cap = cap;
    return 0;
}

int mb_buf_append(struct mb_buf *b, const void *p, size_t n)
{
    if (mb_buf_reserve(b, n) != 0)
        return MB_ERR;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int mb_buf_append_str(struct mb_buf *b, const char *s)
{
    return mb_buf_append(b, s, strlen(s));
}

int mb_buf_append_json_string(struct mb_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    /* Worst case every byte becomes \u00XX (6 bytes), plus the quotes. */
    if (n > ((size_t)-1) / 8 || mb_buf_reserve(b, n * 6 + 2) != 0)
        return MB_ERR;
    char *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c >= 0x20) {
            *o++ = (char)c;
        } else if (c == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else if (c == '\r') {
            *o++ = '\\';
            *o++ = 'r';
        } else if (c == '\t') {
            *o++ = '\\';
            *o++ = 't';
        } else {
            memcpy(o, "\\u00", 4);
            o[4] = hex[c >> 4];
            o[5] = hex[c & 15];
            o += 6;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    return 0;
}

size_t mb_buf_format_u64(char *dst, uint64_t v)
{
    /* Digits from the end: snprintf("%llu") cost ~700 instructions per
     * request id on the hot path. */
    char tmp[20];
    size_t n = 0;
    do {
        tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    memcpy(dst, tmp + sizeof(tmp) - n, n);
    return n;
}

int mb_buf_append_int(struct mb_buf *b, long long v)
{
    char tmp[21];
    size_t n = 0;
    /* The magnitude as unsigned, so LLONG_MIN has no overflow. */
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    if (v < 0)
        tmp[n++] = '-';
    n += mb_buf_format_u64(tmp + n, u);
    return mb_buf_append(b, tmp, n);
}

const char *mb_buf_cstr(struct mb_buf *b)
{
    if (mb_buf_reserve(b, 0) != 0)
        return NULL;
    b->data[b->len] = '\0';
    return b->data;
}

void mb_buf_reset(struct mb_buf *b)
{
    b->len = 0;
}

void mb_buf_free(struct mb_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}
