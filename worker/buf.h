/*
 * worker/buf.h — a growable byte buffer for building replies.
 *
 * Replies are built by appending (splicing raw ids and fixed JSON text)
 * instead of building cJSON trees and printing them: DESIGN §9 measured cJSON
 * and malloc as most of the cost of a message. A buffer is reused across
 * messages (mb_buf_reset keeps the allocation), so building a reply usually
 * allocates nothing.
 *
 * Every append returns 0, or MB_ERR when memory ran out; after a failed
 * append the buffer still holds what it held before that call.
 */
#ifndef MB_WORKER_BUF_H
#define MB_WORKER_BUF_H

#include <stddef.h>
#include <stdint.h>

struct mb_buf {
    char *data; /* not NUL-terminated unless mb_buf_cstr() was called */
    size_t len;
    size_t cap;
};

/* Makes room for extra more bytes. */
int mb_buf_reserve(struct mb_buf *b, size_t extra);
int mb_buf_append(struct mb_buf *b, const void *p, size_t n);
int mb_buf_append_str(struct mb_buf *b, const char *s);
/* Appends s (n bytes) as a quoted JSON string, escaping what JSON requires
 * (quote, backslash, control characters). Bytes >= 0x80 are copied as is. */
int mb_buf_append_json_string(struct mb_buf *b, const char *s, size_t n);
/* Appends a decimal integer. */
int mb_buf_append_int(struct mb_buf *b, long long v);
/* Writes v in decimal to dst (at least 20 bytes; no NUL) and returns the
 * length. */
size_t mb_buf_format_u64(char *dst, uint64_t v);
/* NUL-terminates the content (not counted in len) and returns data. */
const char *mb_buf_cstr(struct mb_buf *b);
/* Empties the buffer, keeping its memory. */
void mb_buf_reset(struct mb_buf *b);
/* Releases the memory; the buffer is empty and reusable afterwards. */
void mb_buf_free(struct mb_buf *b);

#endif
