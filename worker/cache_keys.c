/*
 * worker/cache_keys.c — cache keys and cacheability (see cache_keys.h).
 *
 * Canonical JSON is written from the cJSON tree the client parse already
 * made: members sorted with a small insertion sort per object (arguments
 * are small), strings through mb_buf_append_json_string, numbers printed by
 * cJSON (so 1.0 and 1 are one key: cJSON keeps numbers as doubles).
 */
#include "worker/cache_keys.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "conf/conf.h"
#include "worker/jsonscan.h"

#define MAX_DEPTH 128
#define LIT(b, s) mb_buf_append((b), (s), sizeof(s) - 1)

static int canon(const cJSON *v, struct mb_buf *out, int depth)
{
    if (depth > MAX_DEPTH)
        return MB_ERR;
    if (cJSON_IsObject(v)) {
        size_t n = 0, i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, v) n++;
        const cJSON **m = n ? malloc(n * sizeof(*m)) : NULL;
        if (n && m == NULL)
            return MB_ERR;
        cJSON_ArrayForEach(it, v)
        {
            size_t j = i++;
            while (j > 0 && strcmp(m[j - 1]->string, it->string) > 0) {
                m[j] = m[j - 1];
                j--;
            }
            m[j] = it;
        }
        int rc = LIT(out, "{");
        for (i = 0; rc == 0 && i < n; i++) {
            if (i > 0)
                rc = LIT(out, ",");
            if (rc == 0)
                rc = mb_buf_append_json_string(out, m[i]->string, strlen(m[i]->string));
            if (rc == 0)
                rc = LIT(out, ":");
            if (rc == 0)
                rc = canon(m[i], out, depth + 1);
        }
        free(m);
        return rc ? rc : LIT(out, "}");
    }
    if (cJSON_IsArray(v)) {
        int rc = LIT(out, "[");
        const cJSON *it;
        bool first = true;
        cJSON_ArrayForEach(it, v)
        {
            if (rc == 0 && !first)
                rc = LIT(out, ",");
            first = false;
            if (rc == 0)
                rc = canon(it, out, depth + 1);
        }
        return rc ? rc : LIT(out, "]");
    }
    if (cJSON_IsString(v))
        return mb_buf_append_json_string(out, v->valuestring, strlen(v->valuestring));
    if (cJSON_IsTrue(v))
        return LIT(out, "true");
    if (cJSON_IsFalse(v))
        return LIT(out, "false");
    if (cJSON_IsNull(v))
        return LIT(out, "null");
    if (cJSON_IsNumber(v)) {
        char *s = cJSON_PrintUnformatted(v);
        if (s == NULL)
            return MB_ERR;
        int rc = mb_buf_append_str(out, s);
        free(s);
        return rc;
    }
    if (cJSON_IsRaw(v))
        return mb_buf_append_str(out, v->valuestring);
    return MB_ERR;
}

int mb_cachekey_canonical(const cJSON *v, struct mb_buf *out)
{
    size_t mark = out->len;
    int rc = v == NULL ? LIT(out, "{}") : canon(v, out, 0);
    if (rc != 0)
        out->len = mark;
    return rc;
}

/*
 * Raw text that already is its canonical form, so the key can be built
 * from the bytes the client sent without a cJSON tree: no white space
 * outside strings, strings without escapes, numbers that cJSON prints back
 * the same (it prints "%1.15g": integers of at most 15 digits), and object keys in the
 * order canon() sorts them into (strcmp, equal keys stay in place).
 * Returns the byte after the value, or NULL when the text is not
 * canonical. The text must be valid JSON (the caller validated it).
 */
static const char *canonical_end(const char *p, const char *end, int depth)
{
    if (p >= end || depth > MAX_DEPTH)
        return NULL;
    if (*p == '"') {
        for (p++; p < end && *p != '"'; p++)
            if (*p == '\\')
                return NULL;
        return p < end ? p + 1 : NULL;
    }
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        const char *prev = NULL;
        size_t prev_len = 0;
        if (++p < end && *p == close)
            return p + 1;
        for (;;) {
            if (close == '}') {
                const char *k = p + 1, *ke = canonical_end(p, end, depth + 1);
                if (ke == NULL || ke >= end || *ke != ':')
                    return NULL;
                size_t klen = (size_t)(ke - 1 - k), n = klen < prev_len ? klen : prev_len;
                int cmp = prev ? memcmp(prev, k, n) : -1;
                if (cmp > 0 || (cmp == 0 && prev && prev_len > klen))
                    return NULL;
                prev = k;
                prev_len = klen;
                p = ke + 1;
            }
            if ((p = canonical_end(p, end, depth + 1)) == NULL || p >= end)
                return NULL;
            if (*p == close)
                return p + 1;
            if (*p++ != ',')
                return NULL;
        }
    }
    const char *start = p;
    if (*p == '-')
        p++;
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    size_t digits = (size_t)(p - start) - (*start == '-');
    if (digits > 0) {
        if (digits > 15 || (p < end && (*p == '.' || *p == 'e' || *p == 'E')))
            return NULL;
        return p;
    }
    for (const char *w = "true\0false\0null\0"; *w; w += strlen(w) + 1)
        if ((size_t)(end - start) >= strlen(w) && memcmp(start, w, strlen(w)) == 0)
            return start + strlen(w);
    return NULL;
}

int mb_cachekey_canonical_raw(const char *text, size_t len, struct mb_buf *out)
{
    if (text == NULL)
        return mb_cachekey_canonical(NULL, out);
    if (canonical_end(text, text + len, 0) != text + len)
        return MB_DECLINED;
    return mb_buf_append(out, text, len);
}

/* FNV-1a over a field, with its length so fields cannot run into each other. */
static uint64_t feed(uint64_t h, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    for (size_t i = 0; i < sizeof(n); i++)
        h = (h ^ ((n >> (8 * i)) & 0xff)) * 0x100000001b3ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

uint64_t mb_cachekey_backend_hash(const struct mb_conf_backend *b)
{
    uint64_t h = 0xcbf29ce484222325ull;
    char t[32];
    h = feed(h, b->name);
    snprintf(t, sizeof(t), "%d/%d", (int)b->transport, (int)b->session);
    h = feed(h, t);
    for (size_t i = 0; i < b->command.n; i++)
        h = feed(h, b->command.v[i]);
    h = feed(h, "\x01");
    for (size_t i = 0; i < b->env.n; i++) {
        h = feed(h, b->env.keys[i]);
        h = feed(h, b->env.values[i]);
    }
    h = feed(h, b->cwd);
    for (size_t i = 0; i < b->nendpoints; i++)
        h = feed(h, b->endpoints[i].url);
    h = feed(h, "\x02");
    for (size_t i = 0; i < b->headers.n; i++) {
        h = feed(h, b->headers.keys[i]);
        h = feed(h, b->headers.values[i]);
    }
    return h;
}

struct mb_cache_key mb_cachekey_discovery(const struct mb_cache *c, const char *backend,
                                          uint64_t confhash, const char *method)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf), "d%c%s%c%016llx%c%s", 0, backend, 0,
                     (unsigned long long)confhash, 0, method);
    if (n < 0 || (size_t)n >= sizeof(buf))
        n = sizeof(buf) - 1; /* names are short (conf limits them); never reached */
    return mb_cache_key(c, buf, (size_t)n);
}

/* Copies n bytes to *p and advances it. */
static void put(char **p, const void *s, size_t n)
{
    memcpy(*p, s, n);
    *p += n;
}

int mb_cachekey_response(const struct mb_cache *c, const char *backend, uint64_t confhash,
                         const char *method, const char *name, const char *args, size_t args_len,
                         const char *scope, struct mb_cache_key *out)
{
    /* The key's bytes in a stack buffer when they fit (they nearly always
     * do): the malloc, the appends and the free were a third of the cost. */
    size_t lb = strlen(backend), lm = strlen(method), ln = strlen(name), ls = strlen(scope);
    size_t total = 2 + lb + 1 + 17 + lm + 1 + ln + 1 + args_len + 1 + ls;
    char stack[1024], *buf = total <= sizeof(stack) ? stack : malloc(total), *p = buf;
    if (buf == NULL)
        return MB_ERR;
    put(&p, "r", 2);
    put(&p, backend, lb + 1);
    /* "%016llx" by hand: snprintf was ~900 instructions per tools/call. */
    for (int i = 0; i < 16; i++)
        *p++ = "0123456789abcdef"[(confhash >> (60 - 4 * i)) & 15];
    *p++ = '\0';
    put(&p, method, lm + 1);
    put(&p, name, ln + 1);
    put(&p, args, args_len);
    *p++ = '\0';
    put(&p, scope, ls);
    *out = mb_cache_key(c, buf, (size_t)(p - buf));
    if (buf != stack)
        free(buf);
    return 0;
}

const char *const mb_cachekey_result_names[MB_CACHEKEY_RESULT_MEMBERS] = {"isError", "cacheScope",
                                                                          "ttlMs"};

enum mb_cachekey_verdict mb_cachekey_result_of(const struct mb_json_raw *m, uint64_t *ttl_ms)
{
    uint64_t t;
    *ttl_ms = 0;
    if (m == NULL)
        return MB_CACHEKEY_PRIVATE;
    struct mb_json_raw v = m[0], scope = m[1], ttl = m[2];
    if (v.len == 4 && memcmp(v.p, "true", 4) == 0)
        return MB_CACHEKEY_NEVER;
    if (scope.len == 8 && memcmp(scope.p, "\"public\"", 8) == 0 && ttl.p != NULL &&
        mb_json_raw_uint(ttl, &t) && t > 0) {
        *ttl_ms = t;
        return MB_CACHEKEY_PUBLIC;
    }
    return MB_CACHEKEY_PRIVATE;
}

enum mb_cachekey_verdict mb_cachekey_result(const char *result, size_t len, uint64_t *ttl_ms)
{
    /* One pass over the result for the three members (it is part of a
     * message already validated). */
    struct mb_json_raw m[MB_CACHEKEY_RESULT_MEMBERS];
    bool object =
        mb_json_members(result, len, mb_cachekey_result_names, MB_CACHEKEY_RESULT_MEMBERS, m) == 0;
    return mb_cachekey_result_of(object ? m : NULL, ttl_ms);
}

bool mb_cachekey_listed(const struct mb_conf_strv *cache_tools, const char *name)
{
    for (size_t i = 0; i < cache_tools->n; i++)
        if (fnmatch(cache_tools->v[i], name, 0) == 0)
            return true;
    return false;
}

cJSON *mb_cachekey_annotated(const cJSON *tools)
{
    cJSON *out = cJSON_CreateArray();
    const cJSON *t;
    if (out == NULL)
        return NULL;
    cJSON_ArrayForEach(t, tools)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(t, "name");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(t, "annotations");
        if (!cJSON_IsString(name) ||
            !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "readOnlyHint")) ||
            !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "idempotentHint")))
            continue;
        cJSON *s = cJSON_CreateString(name->valuestring);
        if (s == NULL) {
            cJSON_Delete(out);
            return NULL;
        }
        cJSON_AddItemToArray(out, s);
    }
    return out;
}

bool mb_cachekey_has(const cJSON *names, const char *name)
{
    const cJSON *s;
    cJSON_ArrayForEach(s, names) if (cJSON_IsString(s) &&
                                     strcmp(s->valuestring, name) == 0) return true;
    return false;
}
