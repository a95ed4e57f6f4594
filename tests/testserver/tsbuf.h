/*
 * tests/testserver/tsbuf.h — the test server's growable byte buffer.
 *
 * Every reply the test server writes is assembled by appending raw JSON text
 * to one of these (no cJSON printing on the hot path). Growth doubles the
 * capacity; an allocation failure is remembered in `failed` and turns later
 * appends into no-ops, so a caller checks once at the end instead of after
 * every append.
 */
#ifndef MB_TS_TSBUF_H
#define MB_TS_TSBUF_H

#include <stdarg.h>
#include <stddef.h>

struct mb_tsbuf {
    char *data;
    size_t len;
    size_t cap;
    int failed; /* an append could not allocate; data is incomplete */
};

void mb_tsbuf_init(struct mb_tsbuf *b);
void mb_tsbuf_free(struct mb_tsbuf *b);
/* Empties the buffer but keeps its memory for the next message. */
void mb_tsbuf_reset(struct mb_tsbuf *b);
/* Makes room for `n` more bytes; returns 0 or -ENOMEM. */
int mb_tsbuf_reserve(struct mb_tsbuf *b, size_t n);
void mb_tsbuf_add(struct mb_tsbuf *b, const void *p, size_t n);
void mb_tsbuf_adds(struct mb_tsbuf *b, const char *s);
void mb_tsbuf_addf(struct mb_tsbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mb_tsbuf_addu(struct mb_tsbuf *b, unsigned long long v);
/* Appends `s` (n bytes, any content) as a quoted, escaped JSON string. */
void mb_tsbuf_add_jstr(struct mb_tsbuf *b, const char *s, size_t n);
/* Drops the first n bytes (they were written out). */
void mb_tsbuf_consume(struct mb_tsbuf *b, size_t n);

#endif
