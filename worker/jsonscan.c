/*
 * worker/jsonscan.c — strict JSON validation, raw member lookup and splicing
 * (see jsonscan.h). A recursive-descent validator over the bytes, with a
 * depth limit so a hostile backend cannot exhaust the stack.
 */
#include "worker/jsonscan.h"

#include <string.h>

#include "common/errors.h"

#define MAX_DEPTH 128

struct scan {
    const char *p, *end;
    bool plain; /* mb_json_valid_members plain: no \u escapes, no number over 63 bytes */
};

static void ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

/* cJSON 1.7 reads at most 63 bytes of a number and then fails on the rest. */
#define PLAIN_NUMBER_MAX 63

static bool hexdig(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The next byte of a string body that needs a look (quote, backslash,
 * control character) at or after p, or end. Eight bytes per step where the
 * machine is little-endian: a byte-wise test per character was a tenth of
 * a tools/call. The bit tricks flag a byte equal to '"' or '\\' (x ^ c has
 * a zero byte) or below 0x20; the lowest flag is always exact (a false flag
 * can only sit above a true one), so its position is the first such byte. */
static const char *string_stop(const char *p, const char *end)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    while (end - p >= 8) {
        uint64_t x, q, b;
        memcpy(&x, p, 8);
        q = x ^ (ones * '"');
        b = x ^ (ones * '\\');
        uint64_t m = (((q - ones) & ~q) | ((b - ones) & ~b) | ((x - ones * 0x20) & ~x)) & highs;
        if (m != 0)
            return p + (__builtin_ctzll(m) >> 3);
        p += 8;
    }
#endif
    while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
        p++;
    return p;
}

static bool v_string(struct scan *s)
{
    s->p++; /* the opening quote */
    for (;;) {
        s->p = string_stop(s->p, s->end);
        if (s->p >= s->end)
            return false;
        unsigned char c = (unsigned char)*s->p++;
        if (c == '"')
            return true;
        if (c < 0x20)
            return false;
        /* a backslash */
        if (s->p >= s->end)
            return false;
        c = (unsigned char)*s->p++;
        if (c == 'u') {
            if (s->plain)
                return false;
            if (s->end - s->p < 4 || !hexdig(s->p[0]) || !hexdig(s->p[1]) || !hexdig(s->p[2]) ||
                !hexdig(s->p[3]))
                return false;
            s->p += 4;
        } else if (!strchr("\"\\/bfnrt", c) || c == '\0') {
            return false;
        }
    }
}

static bool v_number_body(struct scan *s)
{
    if (s->p < s->end && *s->p == '-')
        s->p++;
    if (s->p >= s->end)
        return false;
    if (*s->p == '0')
        s->p++;
    else if (digit(*s->p))
        while (s->p < s->end && digit(*s->p))
            s->p++;
    else
        return false;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (s->p >= s->end || !digit(*s->p))
            return false;
        while (s->p < s->end && digit(*s->p))
            s->p++;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (s->p >= s->end || !digit(*s->p))
            return false;
        while (s->p < s->end && digit(*s->p))
            s->p++;
    }
    return true;
}

static bool v_number(struct scan *s)
{
    const char *start = s->p;
    if (!v_number_body(s))
        return false;
    return !s->plain || s->p - start <= PLAIN_NUMBER_MAX;
}

static bool literal(struct scan *s, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return false;
    s->p += n;
    return true;
}

static bool v_value(struct scan *s, int depth)
{
    ws(s);
    if (s->p >= s->end)
        return false;
    switch (*s->p) {
    case '"':
        return v_string(s);
    case 't':
        return literal(s, "true");
    case 'f':
        return literal(s, "false");
    case 'n':
        return literal(s, "null");
    case '{':
    case '[': {
        char close = *s->p == '{' ? '}' : ']';
        bool obj = close == '}';
        if (depth >= MAX_DEPTH)
            return false;
        s->p++;
        ws(s);
        if (s->p < s->end && *s->p == close) {
            s->p++;
            return true;
        }
        for (;;) {
            if (obj) {
                ws(s);
                if (s->p >= s->end || *s->p != '"' || !v_string(s))
                    return false;
                ws(s);
                if (s->p >= s->end || *s->p != ':')
                    return false;
                s->p++;
            }
            if (!v_value(s, depth + 1))
                return false;
            ws(s);
            if (s->p >= s->end)
                return false;
            if (*s->p == ',') {
                s->p++;
                continue;
            }
            if (*s->p != close)
                return false;
            s->p++;
            return true;
        }
    }
    default:
        return v_number(s);
    }
}

bool mb_json_valid(const char *text, size_t len)
{
    struct scan s = {text, text + len, false};
    if (!v_value(&s, 0))
        return false;
    ws(&s);
    return s.p == s.end;
}

/* Skips one value of text already known to be valid. */
static const char *skip(const char *p, const char *end)
{
    struct scan s = {p, end, false};
    return v_value(&s, 0) ? s.p : NULL;
}

int mb_json_member(const char *text, size_t len, const char *key, struct mb_json_raw *out)
{
    struct scan s = {text, text + len, false};
    size_t klen = strlen(key);

    out->p = NULL;
    out->len = 0;
    ws(&s);
    if (s.p >= s.end || *s.p != '{')
        return MB_DECLINED;
    s.p++;
    for (;;) {
        ws(&s);
        if (s.p >= s.end || *s.p != '"')
            return MB_DECLINED;
        const char *k = s.p + 1;
        if (!v_string(&s))
            return MB_DECLINED;
        bool match = (size_t)(s.p - 1 - k) == klen && memcmp(k, key, klen) == 0;
        ws(&s);
        if (s.p >= s.end || *s.p != ':')
            return MB_DECLINED;
        s.p++;
        ws(&s);
        const char *v = s.p;
        const char *e = skip(s.p, s.end);
        if (e == NULL)
            return MB_DECLINED;
        if (match) {
            out->p = v;
            out->len = (size_t)(e - v);
            return 0;
        }
        s.p = e;
        ws(&s);
        if (s.p >= s.end || *s.p != ',')
            return MB_DECLINED;
        s.p++;
    }
}

/* Skips one value of text that passed mb_json_valid, without validating
 * it again: strings end at the first unescaped quote, containers at the
 * matching bracket, scalars at the next delimiter. Bounds are still checked
 * so a caller's mistake cannot read past end. */
/* Just past the closing quote of a string whose body starts at p: memchr
 * to each quote (most of a message's bytes are string bodies), which is
 * escaped when an odd run of backslashes precedes it. */
static const char *string_end(const char *p, const char *end)
{
    const char *start = p;
    for (;;) {
        const char *q = memchr(p, '"', (size_t)(end - p));
        if (q == NULL)
            return NULL;
        size_t bs = 0;
        while (q - bs > start && q[-1 - (ptrdiff_t)bs] == '\\')
            bs++;
        if (bs % 2 == 0)
            return q + 1;
        p = q + 1;
    }
}

static const char *skip_valid(const char *p, const char *end)
{
    if (p >= end)
        return NULL;
    if (*p != '"' && *p != '{' && *p != '[') {
        while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' &&
               *p != '\n' && *p != '\r')
            p++;
        return p;
    }
    size_t depth = 0;
    while (p < end) {
        char c = *p++;
        if (c == '"') {
            if ((p = string_end(p, end)) == NULL)
                return NULL;
            if (depth == 0)
                return p;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth == 0)
                return p;
        }
    }
    return NULL;
}

/* The byte lengths of the names a member pass looks for, computed once per
 * pass instead of once per member and name (strlen was a tenth of a
 * tools/call's scanning). */
#define MEMBERS_MAX 8

static bool name_match(const char *k, size_t klen, const char *name, size_t nlen)
{
    return nlen == klen && (klen == 0 || (k[0] == name[0] && memcmp(k, name, klen) == 0));
}

/* Records the member k (klen bytes) with value [v, e) if it is one of the
 * names still missing; returns how many names it filled (duplicates in
 * names all get it). */
static size_t record(const char *k, size_t klen, const char *v, const char *e,
                     const char *const *names, const size_t *lens, size_t n,
                     struct mb_json_raw *out)
{
    size_t got = 0;
    for (size_t i = 0; i < n; i++)
        if (out[i].p == NULL && name_match(k, klen, names[i], lens[i])) {
            out[i].p = v;
            out[i].len = (size_t)(e - v);
            got++;
        }
    return got;
}

static void clear(struct mb_json_raw *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (struct mb_json_raw){NULL, 0};
}

/* The members of the object whose '{' s->p is at, recorded in out. check:
 * validate keys and values on the way (v_string, v_value); otherwise the
 * text is known well-formed, values are skipped by bracket matching, and
 * the walk stops once every name is found. Returns false on malformed
 * text; s->p is then anywhere. */
static bool walk_members(struct scan *s, bool check, int depth, const char *const *names, size_t n,
                         struct mb_json_raw *out, struct mb_json_nest *nest)
{
    size_t left = n, lens[MEMBERS_MAX];
    for (size_t i = 0; i < n; i++)
        lens[i] = strlen(names[i]);
    s->p++;
    ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return true;
    }
    for (;;) {
        ws(s);
        if (s->p >= s->end || *s->p != '"')
            return false;
        const char *k = s->p + 1;
        if (check ? !v_string(s) : (s->p = skip_valid(s->p, s->end)) == NULL)
            return false;
        size_t klen = (size_t)(s->p - 1 - k);
        ws(s);
        if (s->p >= s->end || *s->p != ':')
            return false;
        s->p++;
        ws(s);
        const char *v = s->p;
        if (nest != NULL && s->p < s->end && *s->p == '{' && out[nest->index].p == NULL &&
            name_match(k, klen, names[nest->index], lens[nest->index])) {
            /* The first member of the nested name, an object: validated by
             * walking its members (as v_value would, one level deeper). */
            if (depth + 1 >= MAX_DEPTH ||
                !walk_members(s, true, depth + 1, nest->names, nest->n, nest->out, NULL))
                return false;
            nest->found = true;
        } else if (check ? !v_value(s, depth + 1) : (s->p = skip_valid(s->p, s->end)) == NULL) {
            return false;
        }
        left -= record(k, klen, v, s->p, names, lens, n, out);
        if (left == 0 && !check)
            return true;
        ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p >= s->end || *s->p != '}')
            return false;
        s->p++;
        return true;
    }
}

int mb_json_members(const char *text, size_t len, const char *const *names, size_t n,
                    struct mb_json_raw *out)
{
    struct scan s = {text, text + len, false};

    if (n > MEMBERS_MAX) /* callers ask for a handful; a longer list in two calls */
        return MB_ERR;
    clear(out, n);
    ws(&s);
    if (s.p >= s.end || *s.p != '{')
        return MB_DECLINED;
    if (walk_members(&s, false, 0, names, n, out, NULL))
        return 0;
    clear(out, n);
    return MB_DECLINED;
}

int mb_json_valid_members(const char *text, size_t len, bool plain, const char *const *names,
                          size_t n, struct mb_json_raw *out, struct mb_json_nest *nest)
{
    struct scan s = {text, text + len, plain};

    if (n > MEMBERS_MAX || (nest != NULL && (nest->n > MEMBERS_MAX || nest->index >= n)))
        return MB_ERR;
    clear(out, n);
    if (nest != NULL) {
        clear(nest->out, nest->n);
        nest->found = false;
    }
    ws(&s);
    if (s.p >= s.end || *s.p != '{') {
        /* Valid or not, it is no object. */
        if (!v_value(&s, 0))
            return MB_ERR;
        ws(&s);
        return s.p == s.end ? MB_DECLINED : MB_ERR;
    }
    /* The top-level object as v_value walks it (depth 0), recording the
     * members it passes: one pass validates and finds. */
    if (walk_members(&s, true, 0, names, n, out, nest)) {
        ws(&s);
        if (s.p == s.end)
            return 0;
    }
    clear(out, n);
    if (nest != NULL) {
        clear(nest->out, nest->n);
        nest->found = false;
    }
    return MB_ERR;
}

int mb_json_path(const char *text, size_t len, const char *const *keys, struct mb_json_raw *out)
{
    struct mb_json_raw cur = {text, len};
    for (size_t i = 0; keys[i] != NULL; i++)
        if (mb_json_member(cur.p, cur.len, keys[i], &cur) != 0) {
            out->p = NULL;
            out->len = 0;
            return MB_DECLINED;
        }
    *out = cur;
    return 0;
}

int mb_json_path_parsed(const char *text, size_t len, const char *const *keys,
                        struct mb_json_raw *out)
{
    struct mb_json_raw cur = {text, len}, next;
    for (size_t i = 0; keys[i] != NULL; i++) {
        if (mb_json_members(cur.p, cur.len, &keys[i], 1, &next) != 0 || next.p == NULL) {
            out->p = NULL;
            out->len = 0;
            return MB_DECLINED;
        }
        cur = next;
    }
    *out = cur;
    return 0;
}

bool mb_json_raw_uint(struct mb_json_raw raw, uint64_t *v)
{
    uint64_t x = 0;
    if (raw.p == NULL || raw.len == 0 || raw.len > 16 || (raw.p[0] == '0' && raw.len > 1))
        return false;
    for (size_t i = 0; i < raw.len; i++) {
        if (!digit(raw.p[i]))
            return false;
        x = x * 10 + (uint64_t)(raw.p[i] - '0');
    }
    *v = x;
    return true;
}

long mb_json_raw_plain_string(struct mb_json_raw raw, char *buf, size_t cap)
{
    if (raw.p == NULL || raw.len < 2 || raw.p[0] != '"' || raw.p[raw.len - 1] != '"')
        return -1;
    size_t n = raw.len - 2;
    if (n + 1 > cap || memchr(raw.p + 1, '\\', n) != NULL)
        return -1;
    memcpy(buf, raw.p + 1, n);
    buf[n] = '\0';
    return (long)n;
}

size_t mb_json_splice_parts(const char *text, size_t len, struct mb_json_edit *edits, size_t n,
                            struct iovec *v)
{
    /* Insertion sort: there are at most a handful of edits. */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && edits[j].at < edits[j - 1].at; j--) {
            struct mb_json_edit t = edits[j];
            edits[j] = edits[j - 1];
            edits[j - 1] = t;
        }
    const char *p = text, *end = text + len;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (edits[i].at < p || edits[i].at + edits[i].len > end)
            return 0;
        v[k++] = (struct iovec){(void *)p, (size_t)(edits[i].at - p)};
        v[k++] = (struct iovec){(void *)edits[i].with, edits[i].with_len};
        p = edits[i].at + edits[i].len;
    }
    v[k++] = (struct iovec){(void *)p, (size_t)(end - p)};
    return k;
}

int mb_json_splice(struct mb_buf *out, const char *text, size_t len, struct mb_json_edit *edits,
                   size_t n)
{
    struct iovec v[2 * MB_JSON_SPLICE_MAX + 1];
    size_t mark = out->len;
    size_t k = n <= MB_JSON_SPLICE_MAX ? mb_json_splice_parts(text, len, edits, n, v) : 0;
    if (k == 0)
        return MB_ERR;
    for (size_t i = 0; i < k; i++)
        if (mb_buf_append(out, v[i].iov_base, v[i].iov_len) != 0) {
            out->len = mark;
            return MB_ERR;
        }
    return 0;
}
