/*
 * tests/load/reply.c — see reply.h. The scanner is a strict JSON walker for
 * the top level (object, string keys, values) that remembers the members a
 * reply is matched on and skips every other value by counting brackets
 * outside strings. It never reads past n and never recurses.
 */
#include "tests/load/reply.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

struct scan {
    const char *p, *end;
};

static void skip_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

/* At a '"': moves past the closing quote. Sets *start and *len to the raw
 * contents (escapes not decoded). Replies are mostly string bytes, so the
 * closing quote is found with memchr: a quote is escaped when an odd run of
 * backslashes precedes it. (Control characters inside strings are not
 * rejected: this is a reply matcher, not a validator.) */
static int scan_string(struct scan *s, const char **start, size_t *len)
{
    if (s->p >= s->end || *s->p != '"')
        return -1;
    const char *b = s->p + 1, *q = b;
    for (;;) {
        const char *e = memchr(q, '"', (size_t)(s->end - q));
        if (!e)
            return -1;
        const char *bs = e;
        while (bs > b && bs[-1] == '\\')
            bs--;
        if (((e - bs) & 1) == 0) {
            if (start) {
                *start = b;
                *len = (size_t)(e - b);
            }
            s->p = e + 1;
            return 0;
        }
        q = e + 1;
    }
}

/* A number or a literal: the run of characters up to a delimiter. */
static int scan_atom(struct scan *s, const char **start, size_t *len)
{
    const char *b = s->p;
    while (s->p < s->end) {
        char c = *s->p;
        if (c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r')
            break;
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-' || c == '+' ||
              c == '.' || c == 'E'))
            return -1;
        s->p++;
    }
    if (s->p == b)
        return -1;
    *start = b;
    *len = (size_t)(s->p - b);
    if (*len == 4 && (memcmp(b, "true", 4) == 0 || memcmp(b, "null", 4) == 0))
        return 0;
    if (*len == 5 && memcmp(b, "false", 5) == 0)
        return 0;
    if (b[0] == '-' || (b[0] >= '0' && b[0] <= '9'))
        return 0;
    return -1;
}

/* The bytes that matter when skipping a container, 64 at a time, as bit
 * masks: quotes, backslashes and the four brackets. A tools/list reply is a
 * few kilobytes with a structural byte every eight or so; comparing sixteen
 * bytes per instruction and then visiting only the brackets outside strings
 * is what keeps the load generator's share of a 2-core machine small (byte
 * by byte, this skip was a quarter of its CPU). */
#define BLOCK 64

struct masks {
    uint64_t quote, escape, bracket;
};

#ifdef __SSE2__
/* Sixteen bytes. Brackets take two compares: OR-ing 0x20 turns '[' into '{'
 * and ']' into '}', and nothing else into either. */
static inline void masks16(const char *p, unsigned shift, struct masks *m)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i lower = _mm_or_si128(v, _mm_set1_epi8(0x20));
    uint64_t q = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')));
    uint64_t e = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
    uint64_t b = (unsigned)_mm_movemask_epi8(_mm_or_si128(
        _mm_cmpeq_epi8(lower, _mm_set1_epi8('{')), _mm_cmpeq_epi8(lower, _mm_set1_epi8('}'))));
    m->quote |= q << shift;
    m->escape |= e << shift;
    m->bracket |= b << shift;
}
#endif

static struct masks block_masks(const char *p, size_t n)
{
    struct masks m = {0, 0, 0};
    size_t i = 0;
#ifdef __SSE2__
    if (n >= BLOCK) {
        masks16(p, 0, &m);
        masks16(p + 16, 16, &m);
        masks16(p + 32, 32, &m);
        masks16(p + 48, 48, &m);
        return m;
    }
    for (; i + 16 <= n; i += 16)
        masks16(p + i, (unsigned)i, &m);
#endif
    for (; i < n && i < BLOCK; i++) {
        char c = p[i];
        if (c == '"')
            m.quote |= 1ull << i;
        else if (c == '\\')
            m.escape |= 1ull << i;
        else if (c == '{' || c == '}' || c == '[' || c == ']')
            m.bracket |= 1ull << i;
    }
    return m;
}

/* Bit i set when an odd number of the quote bits are at or below i: with no
 * escapes about, exactly the bytes inside a string (for a string that opened
 * in this block). Bit 63 is the parity of the whole block. */
static uint64_t inside_quotes(uint64_t q)
{
    q ^= q << 1;
    q ^= q << 2;
    q ^= q << 4;
    q ^= q << 8;
    q ^= q << 16;
    q ^= q << 32;
    return q;
}

/* One bracket outside strings, on a stack of 64 levels as bits (plenty for a
 * reply; deeper input is rejected). Returns 1 when it closed the outermost
 * container, 0 to go on, -1 when brackets do not pair. */
static inline int bracket(char c, uint64_t *stack, int *depth)
{
    if (c == '{' || c == '[') {
        if (*depth == 64)
            return -1;
        *stack = (*stack << 1) | (c == '{');
        ++*depth;
        return 0;
    }
    if (*depth == 0 || (int)(*stack & 1) != (c == '}'))
        return -1;
    *stack >>= 1;
    return --*depth == 0;
}

/* Skips an object or array at s->p by bracket counting outside strings (an
 * escaped byte inside a string is passed over). A block without backslashes
 * (nearly all of them) finds its brackets outside strings from the quote bits
 * alone; a block with one walks its structural bytes in order. */
static int skip_container(struct scan *s)
{
    uint64_t stack = 0;
    int depth = 0, in_string = 0, r;
    const char *escaped_until = s->p; /* bytes before this were escaped */
    for (const char *blk = s->p; blk < s->end; blk += BLOCK) {
        struct masks m = block_masks(blk, (size_t)(s->end - blk));
        if (m.escape == 0 && escaped_until <= blk) {
            uint64_t inside = inside_quotes(m.quote) ^ (in_string ? ~0ull : 0);
            uint64_t outside = m.bracket & ~inside;
            in_string = (int)(inside >> 63);
            while (outside) {
                const char *c = blk + __builtin_ctzll(outside);
                outside &= outside - 1;
                if ((r = bracket(*c, &stack, &depth)) != 0) {
                    s->p = c + 1;
                    return r > 0 ? 0 : -1;
                }
            }
            continue;
        }
        uint64_t mask = m.quote | m.escape | m.bracket;
        while (mask) {
            const char *c = blk + __builtin_ctzll(mask);
            mask &= mask - 1;
            if (c < escaped_until)
                continue;
            if (*c == '"') {
                in_string = !in_string;
            } else if (*c == '\\') {
                if (in_string)
                    escaped_until = c + 2;
            } else if (!in_string && (r = bracket(*c, &stack, &depth)) != 0) {
                s->p = c + 1;
                return r > 0 ? 0 : -1;
            }
        }
    }
    return -1;
}

/* Skips any value. */
static int skip_value(struct scan *s)
{
    skip_ws(s);
    if (s->p >= s->end)
        return -1;
    if (*s->p == '"')
        return scan_string(s, NULL, NULL);
    if (*s->p == '{' || *s->p == '[')
        return skip_container(s);
    const char *b;
    size_t l;
    return scan_atom(s, &b, &l);
}

static int parse_int(const char *b, size_t l, int64_t *out)
{
    if (l == 0 || l > 19)
        return -1;
    size_t i = 0;
    int neg = 0;
    if (b[0] == '-') {
        neg = 1;
        i = 1;
        if (l == 1)
            return -1;
    }
    if (b[i] == '0' && l > i + 1)
        return -1;
    uint64_t v = 0; /* 19 digits fit in uint64; the sign range is checked after */
    for (; i < l; i++) {
        if (b[i] < '0' || b[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(b[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return -1;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

static int key_is(const char *k, size_t kl, const char *want)
{
    size_t wl = strlen(want);
    return kl == wl && memcmp(k, want, wl) == 0;
}

/* Walks an object's members, calling member() on each with the scanner at
 * the value; member() must consume the value. */
static int walk_object(struct scan *s, int (*member)(struct scan *, const char *, size_t, void *),
                       void *arg)
{
    skip_ws(s);
    if (s->p >= s->end || *s->p != '{')
        return -1;
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return 0;
    }
    for (;;) {
        const char *k;
        size_t kl;
        skip_ws(s);
        if (scan_string(s, &k, &kl) != 0)
            return -1;
        skip_ws(s);
        if (s->p >= s->end || *s->p != ':')
            return -1;
        s->p++;
        skip_ws(s);
        if (member(s, k, kl, arg) != 0)
            return -1;
        skip_ws(s);
        if (s->p >= s->end)
            return -1;
        if (*s->p == ',') {
            s->p++;
            continue;
        }
        if (*s->p == '}') {
            s->p++;
            return 0;
        }
        return -1;
    }
}

static int error_member(struct scan *s, const char *k, size_t kl, void *arg)
{
    struct mb_load_reply *r = arg;
    if (key_is(k, kl, "code") && s->p < s->end && *s->p != '"' && *s->p != '{' && *s->p != '[') {
        const char *b;
        size_t l;
        if (scan_atom(s, &b, &l) != 0)
            return -1;
        if (parse_int(b, l, &r->error_code) == 0)
            r->has_code = 1;
        return 0;
    }
    return skip_value(s);
}

/* The id member: its kind, and its value when it is an integer. */
static int id_member(struct scan *s, struct mb_load_reply *r)
{
    if (s->p < s->end && *s->p == '"') {
        r->id_kind = MB_LOAD_ID_OTHER;
        return scan_string(s, NULL, NULL);
    }
    if (s->p < s->end && (*s->p == '{' || *s->p == '[')) {
        r->id_kind = MB_LOAD_ID_OTHER;
        return skip_value(s);
    }
    const char *b;
    size_t l;
    if (scan_atom(s, &b, &l) != 0)
        return -1;
    if (l == 4 && memcmp(b, "null", 4) == 0)
        r->id_kind = MB_LOAD_ID_NULL;
    else if (parse_int(b, l, &r->id) == 0)
        r->id_kind = MB_LOAD_ID_INT;
    else
        r->id_kind = MB_LOAD_ID_OTHER;
    return 0;
}

static int top_member(struct scan *s, const char *k, size_t kl, void *arg)
{
    struct mb_load_reply *r = arg;
    if (key_is(k, kl, "id")) {
        const char *v = s->p;
        int rc = id_member(s, r);
        r->id_text = v;
        r->id_text_len = (size_t)(s->p - v);
        return rc;
    }
    if (key_is(k, kl, "error")) {
        r->has_error = 1;
        if (s->p < s->end && *s->p == '{')
            return walk_object(s, error_member, r);
        return skip_value(s);
    }
    if (key_is(k, kl, "result"))
        r->has_result = 1;
    else if (key_is(k, kl, "method"))
        r->has_method = 1;
    return skip_value(s);
}

int mb_load_reply_parse(const char *p, size_t n, struct mb_load_reply *r)
{
    memset(r, 0, sizeof(*r));
    struct scan s = {p, p + n};
    if (walk_object(&s, top_member, r) != 0)
        return -1;
    skip_ws(&s);
    return s.p == s.end ? 0 : -1;
}

int mb_load_inflight_init(struct mb_load_inflight *f, uint32_t cap)
{
    f->e = calloc(cap, sizeof(*f->e));
    f->n = 0;
    f->cap = f->e ? cap : 0;
    return f->e ? 0 : -ENOMEM;
}

void mb_load_inflight_free(struct mb_load_inflight *f)
{
    free(f->e);
    f->e = NULL;
    f->n = f->cap = 0;
}

int mb_load_inflight_add(struct mb_load_inflight *f, const struct mb_load_pending *p)
{
    if (f->n == f->cap)
        return -1;
    f->e[f->n++] = *p;
    return 0;
}

static void remove_at(struct mb_load_inflight *f, uint32_t i, struct mb_load_pending *out)
{
    if (out)
        *out = f->e[i];
    memmove(&f->e[i], &f->e[i + 1], (f->n - i - 1) * sizeof(*f->e));
    f->n--;
}

int mb_load_inflight_take(struct mb_load_inflight *f, int64_t id, struct mb_load_pending *out)
{
    for (uint32_t i = 0; i < f->n; i++) {
        if (f->e[i].id == id && f->e[i].kind != MB_LOAD_REQ_NOTIFY) {
            remove_at(f, i, out);
            return 0;
        }
    }
    return -1;
}

int mb_load_inflight_take_oldest(struct mb_load_inflight *f, struct mb_load_pending *out)
{
    if (f->n == 0)
        return -1;
    remove_at(f, 0, out);
    return 0;
}

uint32_t mb_load_inflight_count(const struct mb_load_inflight *f, int kind)
{
    uint32_t c = 0;
    for (uint32_t i = 0; i < f->n; i++)
        c += f->e[i].kind == kind;
    return c;
}

uint64_t mb_load_inflight_oldest_sent(const struct mb_load_inflight *f)
{
    uint64_t m = 0;
    for (uint32_t i = 0; i < f->n; i++)
        if (m == 0 || f->e[i].sent_ns < m)
            m = f->e[i].sent_ns;
    return m;
}

/* The oldest entry that expects a reply (notifications get none on WebSocket). */
static int take_oldest_request(struct mb_load_inflight *f, struct mb_load_pending *out)
{
    for (uint32_t i = 0; i < f->n; i++) {
        if (f->e[i].kind != MB_LOAD_REQ_NOTIFY) {
            remove_at(f, i, out);
            return 0;
        }
    }
    return -1;
}

int mb_load_reply_match(struct mb_load_inflight *f, const char *msg, size_t n,
                        struct mb_load_pending *out, int64_t *code)
{
    struct mb_load_reply r;
    if (mb_load_reply_parse(msg, n, &r) != 0)
        return MB_LOAD_MATCH_INVALID;
    if (r.has_method)
        return MB_LOAD_MATCH_SERVER;
    if (r.has_result == r.has_error)
        return MB_LOAD_MATCH_INVALID;
    if (r.has_error && r.id_kind == MB_LOAD_ID_NULL) {
        *code = r.has_code ? r.error_code : 0;
        return take_oldest_request(f, out) == 0 ? MB_LOAD_MATCH_ERROR : MB_LOAD_MATCH_BAD_ID;
    }
    if (r.id_kind != MB_LOAD_ID_INT || mb_load_inflight_take(f, r.id, out) != 0) {
        if (take_oldest_request(f, out) != 0)
            out->kind = -1;
        return MB_LOAD_MATCH_BAD_ID;
    }
    if (r.has_error) {
        *code = r.has_code ? r.error_code : 0;
        return MB_LOAD_MATCH_ERROR;
    }
    return MB_LOAD_MATCH_OK;
}
