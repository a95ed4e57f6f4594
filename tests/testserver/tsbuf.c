/*
 * tests/testserver/tsbuf.c — see tsbuf.h. Plain byte buffer with sticky
 * allocation failure.
 */
#include "tests/testserver/tsbuf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mb_tsbuf_init(struct mb_tsbuf *b)
{
    memset(b, 0, sizeof(*b));
}

void mb_tsbuf_free(struct mb_tsbuf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

void mb_tsbuf_reset(struct mb_tsbuf *b)
{
    b->len = 0;
    b->failed = 0;
}

int mb_tsbuf_reserve(struct mb_tsbuf *b, size_t n)
{
    if (b->failed)
        return -ENOMEM;
    if (b->cap - b->len >= n + 1) /* +1 keeps room for a terminating NUL */
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n + 1) {
        if (cap > ((size_t)-1) / 2)
            goto fail;
        cap *= 2;
    }
    char *d = realloc(b->data, cap);
    if (d == NULL)
        goto fail;
    b->data = d;
    b->cap = cap;
    return 0;
fail:
    b->failed = 1;
    return -ENOMEM;
}

void mb_tsbuf_add(struct mb_tsbuf *b, const void *p, size_t n)
{
    if (mb_tsbuf_reserve(b, n) != 0)
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void mb_tsbuf_adds(struct mb_tsbuf *b, const char *s)
{
    mb_tsbuf_add(b, s, strlen(s));
}

void mb_tsbuf_addf(struct mb_tsbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || mb_tsbuf_reserve(b, (size_t)n) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void mb_tsbuf_addu(struct mb_tsbuf *b, unsigned long long v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    mb_tsbuf_add(b, tmp + i, sizeof(tmp) - i);
}

void mb_tsbuf_add_jstr(struct mb_tsbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    /* Worst case every byte becomes \u00XX. */
    if (n > ((size_t)-1) / 6 - 2 || mb_tsbuf_reserve(b, n * 6 + 2) != 0) {
        b->failed = 1;
        return;
    }
    char *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '\n':
            *o++ = 'n';
            break;
        case '\r':
            *o++ = 'r';
            break;
        case '\t':
            *o++ = 't';
            break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
}

void mb_tsbuf_consume(struct mb_tsbuf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}
