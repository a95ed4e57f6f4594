/*
 * conf/conf.c — loads gateway.yaml into one struct mb_conf generation.
 *
 * The file is parsed with libyaml into a document (a node tree that keeps the
 * start mark of every node), then walked against the key table of
 * conf/keys.c: each mapping key is looked up by its path, checked for "not
 * supported yet", and its value converted by its type into the field the
 * table points at. Nothing here knows individual keys; what a key is lives in
 * its table row.
 *
 * Order of work, so that every field is valid even when a key is absent:
 *   1. every field gets its default (for an unsupported key with an "off"
 *      value, that value: see conf/keys.c);
 *   2. the document is walked; a list of mappings replaces its default
 *      entries, and each new entry first gets its element defaults;
 *   3. per-key checks (duplicates, paths) run right after their value.
 * The first error stops the load; the half-built generation is freed.
 *
 * Errors are one line, "FILE:LINE:COLUMN: key.path: message", with the 1-based
 * position of the node at fault: the key for unknown, duplicate and
 * unsupported keys, the value for bad values, a list entry for a check on
 * that entry. Syntax errors use libyaml's problem mark and read
 * "FILE:LINE:COLUMN: syntax error: ...".
 *
 * ${ENV} is expanded in every scalar value (not in keys), before conversion,
 * so `port: ${PORT}` works as well as `secret: ${JWT_SECRET}`.
 *
 * Aliases are resolved by libyaml into shared nodes. The walk only follows
 * the table, so its depth is bounded; its breadth is bounded by the list
 * limits of the table and a cap on visited nodes, so an alias bomb fails
 * instead of eating memory.
 */
#include "conf/conf.h"

#include "common/errors.h"
#include "conf/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define PATH_LEN    512
#define MSG_LEN     512
#define MAX_VISITS  200000
#define MAX_FILE    (16u << 20)
#define QUOTE_CHARS 48 /* of a bad value shown in a message */

struct loader {
    const char *name; /* the file as named in messages */
    const char *text;
    size_t len;
    yaml_document_t *doc;
    char *err;
    size_t errlen;
    unsigned long visits;
    char dpath[PATH_LEN]; /* as shown: "server.listen[0].port" */
    char tpath[PATH_LEN]; /* as in the table: "server.listen[].port" */
    bool overflow;        /* a path did not fit: nothing can match it */
};

/* ---------------------------------------------------------------- messages */
static int fail(struct loader *ld, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct loader *ld, yaml_mark_t m, const char *fmt, ...)
{
    char msg[MSG_LEN];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (ld->err != NULL && ld->errlen > 0) {
        if (ld->dpath[0] != '\0')
            snprintf(ld->err, ld->errlen, "%s:%zu:%zu: %s: %s", ld->name, m.line + 1, m.column + 1,
                     ld->dpath, msg);
        else
            snprintf(ld->err, ld->errlen, "%s:%zu:%zu: %s", ld->name, m.line + 1, m.column + 1,
                     msg);
    }
    return MB_ERR;
}

/* A value as shown in a message: quoted, escaped onto one line, truncated. */
static void quote(const char *s, char *buf, size_t buflen)
{
    size_t o = 0, i;

    buf[o++] = '"';
    for (i = 0; s[i] != '\0' && i < QUOTE_CHARS && o + 6 < buflen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(buf + o, buflen - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    if (s[i] != '\0' && o + 5 < buflen) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
}

static const char *scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static bool is_null(const yaml_node_t *n)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};

    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
        if (strcmp(scalar(n), nulls[i]) == 0)
            return true;
    return false;
}

/* What a node is, for "got ...". */
static const char *describe(const yaml_node_t *n, char *buf, size_t buflen)
{
    if (n->type == YAML_SEQUENCE_NODE)
        return "a list";
    if (n->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (is_null(n))
        return "nothing";
    quote(scalar(n), buf, buflen);
    return buf;
}

/* What a key expects, for "expected ...". */
static const char *expected(const struct mb_conf_key *k, char *buf, size_t buflen)
{
    switch (k->type) {
    case MB_CONF_BOOL:
        return "true or false";
    case MB_CONF_INT:
        return "an integer";
    case MB_CONF_NUMBER:
        return "a number";
    case MB_CONF_SIZE:
        return "a size";
    case MB_CONF_DURATION:
        return "a duration (e.g. 250ms, 30s, 5m, 1h30m)";
    case MB_CONF_STRING:
        return "a string";
    case MB_CONF_HEX:
        return "a hexadecimal string";
    case MB_CONF_ENUM:
    case MB_CONF_WORD: {
        size_t o = (size_t)snprintf(buf, buflen, "one of");
        for (size_t i = 0; k->words[i] != NULL && o < buflen; i++)
            o += (size_t)snprintf(buf + o, buflen - o, "%s %s", i ? "," : "", k->words[i]);
        return buf;
    }
    case MB_CONF_STRLIST:
        return "a list of strings";
    case MB_CONF_MAP:
        return "a mapping of strings";
    case MB_CONF_SECTION:
        return "a mapping";
    case MB_CONF_LIST:
        return "a list of mappings";
    }
    return "?";
}

static void range_msg(const struct mb_conf_key *k, const char *got, char *msg, size_t msglen)
{
    if (k->min != NULL && k->max != NULL)
        snprintf(msg, msglen, "must be between %s and %s, got %s", k->min, k->max, got);
    else if (k->min != NULL)
        snprintf(msg, msglen, "must be at least %s, got %s", k->min, got);
    else if (k->max != NULL)
        snprintf(msg, msglen, "must be at most %s, got %s", k->max, got);
    else
        snprintf(msg, msglen, "out of range, got %s", got);
}

/* ---------------------------------------------------------------- conversions */
static int parse_bool(const char *s, bool *out)
{
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        *out = true;
    else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        *out = false;
    else
        return MB_ERR;
    return MB_OK;
}

/* Optional '-', decimal digits, no overflow. */
static int parse_int(const char *s, int64_t *out)
{
    bool neg = (*s == '-');
    uint64_t v = 0;

    if (neg)
        s++;
    if (*s == '\0')
        return MB_ERR;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9' || v > ((uint64_t)INT64_MAX - 9) / 10)
            return MB_ERR;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = neg ? -(int64_t)v : (int64_t)v;
    return MB_OK;
}

/* Plain decimal notation only: strtod would also take "inf", "nan", hex. */
static int parse_number(const char *s, double *out)
{
    char *end;

    if (*s == '\0' || strspn(s, "0123456789.eE+-") != strlen(s))
        return MB_ERR;
    errno = 0;
    *out = strtod(s, &end);
    return (*end != '\0' || errno != 0) ? MB_ERR : MB_OK;
}

static void store_uint(void *field, size_t width, uint64_t v)
{
    switch (width) {
    case 1: {
        uint8_t x = (uint8_t)v;
        memcpy(field, &x, 1);
        break;
    }
    case 2: {
        uint16_t x = (uint16_t)v;
        memcpy(field, &x, 2);
        break;
    }
    case 4: {
        uint32_t x = (uint32_t)v;
        memcpy(field, &x, 4);
        break;
    }
    default:
        memcpy(field, &v, 8);
        break;
    }
}

static int set_string(char **f, const char *text, char *msg, size_t msglen)
{
    char *dup = strdup(text);

    if (dup == NULL) {
        snprintf(msg, msglen, "out of memory");
        return MB_ERR;
    }
    free(*f);
    *f = dup;
    return MB_OK;
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

/* Converts one scalar text into the key's field. Shared by defaults and the
 * file, so a default is held to the same rules as a value in a file. */
static int set_scalar(const struct mb_conf_key *k, void *base, const char *text, char *msg,
                      size_t msglen)
{
    void *field = (char *)base + k->offset;
    char got[QUOTE_CHARS + 16], what[256];

    if (k->conv != NULL)
        return k->conv(k, base, text, msg, msglen);
    quote(text, got, sizeof(got));
    switch (k->type) {
    case MB_CONF_BOOL: {
        bool b;
        if (parse_bool(text, &b) != MB_OK)
            goto expected;
        store_uint(field, k->width, b);
        return MB_OK;
    }
    case MB_CONF_INT: {
        int64_t v, lo = 0, hi = INT64_MAX;
        if (parse_int(text, &v) != MB_OK)
            goto expected;
        if ((k->min != NULL && parse_int(k->min, &lo) == MB_OK && v < lo) ||
            (k->max != NULL && parse_int(k->max, &hi) == MB_OK && v > hi) || v < 0)
            goto range;
        store_uint(field, k->width, (uint64_t)v);
        return MB_OK;
    }
    case MB_CONF_NUMBER: {
        double v, lo, hi;
        if (parse_number(text, &v) != MB_OK)
            goto expected;
        if ((k->min != NULL && parse_number(k->min, &lo) == MB_OK && v < lo) ||
            (k->max != NULL && parse_number(k->max, &hi) == MB_OK && v > hi))
            goto range;
        memcpy(field, &v, sizeof(v));
        return MB_OK;
    }
    case MB_CONF_SIZE: {
        uint64_t v, lo, hi;
        if (mb_conf_parse_size(text, &v) != MB_OK)
            goto expected;
        if ((k->min != NULL && mb_conf_parse_size(k->min, &lo) == MB_OK && v < lo) ||
            (k->max != NULL && mb_conf_parse_size(k->max, &hi) == MB_OK && v > hi))
            goto range;
        store_uint(field, k->width, v);
        return MB_OK;
    }
    case MB_CONF_DURATION: {
        mb_msec_t v, lo, hi;
        if (mb_conf_parse_duration(text, &v) != MB_OK)
            goto expected;
        if ((k->min != NULL && mb_conf_parse_duration(k->min, &lo) == MB_OK && v < lo) ||
            (k->max != NULL && mb_conf_parse_duration(k->max, &hi) == MB_OK && v > hi))
            goto range;
        memcpy(field, &v, sizeof(v));
        return MB_OK;
    }
    case MB_CONF_STRING: {
        size_t n = strlen(text);
        if (k->min != NULL && n < strtoul(k->min, NULL, 10)) {
            if (strcmp(k->min, "1") == 0)
                snprintf(msg, msglen, "must not be empty");
            else
                snprintf(msg, msglen, "must be at least %s characters long", k->min);
            return MB_ERR;
        }
        if (k->max != NULL && n > strtoul(k->max, NULL, 10)) {
            snprintf(msg, msglen, "must be at most %s characters long", k->max);
            return MB_ERR;
        }
        return set_string((char **)field, text, msg, msglen);
    }
    case MB_CONF_HEX: {
        uint8_t bytes[64];
        if (k->width > sizeof(bytes) || strlen(text) != 2 * k->width) {
            snprintf(msg, msglen, "expected %zu hexadecimal digits", 2 * k->width);
            return MB_ERR;
        }
        for (size_t i = 0; i < k->width; i++) {
            int hi = hexval(text[2 * i]), lo = hexval(text[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                snprintf(msg, msglen, "expected %zu hexadecimal digits", 2 * k->width);
                return MB_ERR;
            }
            bytes[i] = (uint8_t)(hi << 4 | lo);
        }
        memcpy(field, bytes, k->width);
        return MB_OK;
    }
    case MB_CONF_ENUM:
    case MB_CONF_WORD:
        for (size_t i = 0; k->words[i] != NULL; i++) {
            if (strcmp(text, k->words[i]) != 0)
                continue;
            if (k->type == MB_CONF_WORD)
                return set_string((char **)field, text, msg, msglen);
            store_uint(field, k->width, i);
            return MB_OK;
        }
        goto expected;
    default:
        break;
    }
    snprintf(msg, msglen, "internal error: %s is not a scalar key", k->path);
    return MB_ERR;

expected:
    snprintf(msg, msglen, "expected %s, got %s", expected(k, what, sizeof(what)), got);
    return MB_ERR;
range:
    range_msg(k, got, msg, msglen);
    return MB_ERR;
}

/* ---------------------------------------------------------------- defaults and freeing */
/* Whether k lives directly in the struct of prefix ("" = struct mb_conf,
 * "server.listen[]" = struct mb_conf_listen), not in a nested list. */
static bool belongs(const struct mb_conf_key *k, const char *prefix)
{
    size_t n = strlen(prefix);
    const char *rest = k->path;

    if (n > 0) {
        if (strncmp(k->path, prefix, n) != 0 || k->path[n] != '.')
            return false;
        rest = k->path + n + 1;
    }
    return strstr(rest, "[]") == NULL;
}

static void free_strv(struct mb_conf_strv *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->v[i]);
    free(v->v);
    v->v = NULL;
    v->n = 0;
}

static void free_kv(struct mb_conf_kv *kv)
{
    for (size_t i = 0; i < kv->n; i++) {
        free(kv->keys[i]);
        free(kv->values[i]);
    }
    free(kv->keys);
    free(kv->values);
    kv->keys = kv->values = NULL;
    kv->n = 0;
}

static void free_base(const char *prefix, void *base);

static void free_list(const struct mb_conf_key *k, void *base)
{
    char **arrp = (char **)((char *)base + k->offset);
    size_t *countp = (size_t *)((char *)base + k->count_offset);
    char prefix[PATH_LEN];

    snprintf(prefix, sizeof(prefix), "%s[]", k->path);
    for (size_t i = 0; *arrp != NULL && i < *countp; i++)
        free_base(prefix, *arrp + i * k->elem_size);
    free(*arrp);
    *arrp = NULL;
    *countp = 0;
}

static void free_base(const char *prefix, void *base)
{
    for (size_t i = 0; i < mb_conf_keys_count(); i++) {
        const struct mb_conf_key *k = mb_conf_key_at(i);
        void *field = (char *)base + k->offset;

        if (!belongs(k, prefix))
            continue;
        switch (k->type) {
        case MB_CONF_STRING:
        case MB_CONF_WORD:
            free(*(char **)field);
            *(char **)field = NULL;
            break;
        case MB_CONF_STRLIST:
            free_strv(field);
            break;
        case MB_CONF_MAP:
            free_kv(field);
            break;
        case MB_CONF_LIST:
            free_list(k, base);
            break;
        default:
            break;
        }
    }
}

/* A default list in the table's flow syntax: [a, "b"]. Items hold no commas. */
static int default_strv(const char *def, struct mb_conf_strv *v)
{
    const char *p = def + 1;

    free_strv(v);
    while (*p != ']' && *p != '\0') {
        size_t n;
        char **nv;

        p += strspn(p, " ");
        n = strcspn(p, ",]");
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if (n >= 2 && p[0] == '"' && p[n - 1] == '"') {
            p++;
            n -= 2;
        }
        nv = realloc(v->v, (v->n + 1) * sizeof(*nv));
        if (nv == NULL)
            return MB_ERR;
        v->v = nv;
        if ((v->v[v->n] = strndup(p, n)) == NULL)
            return MB_ERR;
        v->n++;
        p += strcspn(p, ",]");
        if (*p == ',')
            p++;
    }
    return MB_OK;
}

static int alloc_list(const struct mb_conf_key *k, void *base, size_t n)
{
    char **arrp = (char **)((char *)base + k->offset);
    size_t *countp = (size_t *)((char *)base + k->count_offset);

    free_list(k, base);
    if (n == 0)
        return MB_OK;
    *arrp = calloc(n, k->elem_size);
    if (*arrp == NULL)
        return MB_ERR;
    *countp = n; /* zeroed entries are safe to free */
    return MB_OK;
}

/* Gives every field of the struct at base (the struct of prefix) its default. */
static int apply_defaults(const char *prefix, void *base, char *msg, size_t msglen)
{
    for (size_t i = 0; i < mb_conf_keys_count(); i++) {
        const struct mb_conf_key *k = mb_conf_key_at(i);
        const char *v = (!k->supported && k->off != NULL) ? k->off : k->def;
        char sub[MSG_LEN];

        if (!belongs(k, prefix) || v == NULL)
            continue;
        switch (k->type) {
        case MB_CONF_SECTION:
        case MB_CONF_MAP:
            break;
        case MB_CONF_STRLIST:
            if (default_strv(v, (struct mb_conf_strv *)((char *)base + k->offset)) != MB_OK) {
                snprintf(msg, msglen, "out of memory");
                return MB_ERR;
            }
            break;
        case MB_CONF_LIST: {
            /* A non-empty default list is one entry of element defaults. */
            char eprefix[PATH_LEN];
            if (strcmp(v, "[]") == 0)
                break;
            if (alloc_list(k, base, 1) != MB_OK) {
                snprintf(msg, msglen, "out of memory");
                return MB_ERR;
            }
            snprintf(eprefix, sizeof(eprefix), "%s[]", k->path);
            if (apply_defaults(eprefix, *(char **)((char *)base + k->offset), msg, msglen) != MB_OK)
                return MB_ERR;
            break;
        }
        default:
            if (strcmp(v, "\"\"") == 0)
                v = "";
            if (set_scalar(k, base, v, sub, sizeof(sub)) != MB_OK) {
                snprintf(msg, msglen, "internal error: default of %.100s: %.300s", k->path, sub);
                return MB_ERR;
            }
            break;
        }
    }
    return MB_OK;
}

/* ---------------------------------------------------------------- the walk */
/* Appends sep+seg to a path; returns the old length to restore. */
static size_t push(struct loader *ld, char *path, const char *sep, const char *seg)
{
    size_t n = strlen(path);
    int w = snprintf(path + n, PATH_LEN - n, "%s%s", n > 0 ? sep : "", seg);

    if (w < 0 || (size_t)w >= PATH_LEN - n)
        ld->overflow = true;
    return n;
}

static void pop(struct loader *ld, char *path, size_t n)
{
    path[n] = '\0';
    if (path == ld->tpath)
        ld->overflow = false;
}

static size_t push_index(struct loader *ld, size_t i)
{
    char seg[32];
    size_t n = strlen(ld->dpath);

    snprintf(seg, sizeof(seg), "[%zu]", i);
    push(ld, ld->dpath, "", seg);
    return n;
}

static yaml_node_t *node_at(struct loader *ld, int index)
{
    return yaml_document_get_node(ld->doc, index);
}

static size_t seq_len(const yaml_node_t *n)
{
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static size_t map_len(const yaml_node_t *n)
{
    return (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
}

static int visit(struct loader *ld, const yaml_node_t *n)
{
    if (++ld->visits > MAX_VISITS)
        return fail(ld, n->start_mark, "too many values (an alias loop?)");
    return MB_OK;
}

/* A scalar's text with ${ENV} expanded, or an error at the node. */
static int value_text(struct loader *ld, const char *what, const yaml_node_t *n, char **out)
{
    char msg[MSG_LEN], got[QUOTE_CHARS + 16];

    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return fail(ld, n->start_mark, "expected %s, got %s", what, describe(n, got, sizeof(got)));
    if (strlen(scalar(n)) != n->data.scalar.length)
        return fail(ld, n->start_mark, "contains a NUL character");
    if (mb_conf_expand_env(scalar(n), out, msg, sizeof(msg)) != MB_OK)
        return fail(ld, n->start_mark, "%s", msg);
    return MB_OK;
}

static int count_ok(struct loader *ld, const struct mb_conf_key *k, const yaml_node_t *n,
                    size_t count)
{
    unsigned long lo = k->min ? strtoul(k->min, NULL, 10) : 0;
    unsigned long hi = k->max ? strtoul(k->max, NULL, 10) : (unsigned long)-1;

    if (count < lo)
        return fail(ld, n->start_mark, "must have at least %lu %s", lo,
                    lo == 1 ? "entry" : "entries");
    if (count > hi)
        return fail(ld, n->start_mark, "must have at most %lu entries, got %zu", hi, count);
    return MB_OK;
}

static int decode_scalar(struct loader *ld, const struct mb_conf_key *k, const yaml_node_t *n,
                         void *base)
{
    char msg[MSG_LEN], what[256], *text;
    int rc;

    if (value_text(ld, expected(k, what, sizeof(what)), n, &text) != MB_OK)
        return MB_ERR;
    rc = set_scalar(k, base, text, msg, sizeof(msg));
    free(text);
    return rc == MB_OK ? MB_OK : fail(ld, n->start_mark, "%s", msg);
}

static int decode_strlist(struct loader *ld, const struct mb_conf_key *k, const yaml_node_t *n,
                          void *base)
{
    struct mb_conf_strv nv = {0}, *field = (struct mb_conf_strv *)((char *)base + k->offset);
    char what[256], got[QUOTE_CHARS + 16];
    size_t count;

    if (n->type != YAML_SEQUENCE_NODE)
        return fail(ld, n->start_mark, "expected %s, got %s", expected(k, what, sizeof(what)),
                    describe(n, got, sizeof(got)));
    count = seq_len(n);
    if (count_ok(ld, k, n, count) != MB_OK)
        return MB_ERR;
    nv.v = calloc(count ? count : 1, sizeof(*nv.v));
    if (nv.v == NULL)
        return fail(ld, n->start_mark, "out of memory");
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *item = node_at(ld, n->data.sequence.items.start[i]);
        size_t dl = push_index(ld, i);
        int rc = visit(ld, item);

        if (rc == MB_OK)
            rc = value_text(ld, "a string", item, &nv.v[i]);
        pop(ld, ld->dpath, dl);
        if (rc != MB_OK) {
            free_strv(&nv);
            return MB_ERR;
        }
        nv.n = i + 1;
    }
    free_strv(field);
    *field = nv;
    return MB_OK;
}

static int decode_map(struct loader *ld, const struct mb_conf_key *k, const yaml_node_t *n,
                      void *base)
{
    struct mb_conf_kv kv = {0}, *field = (struct mb_conf_kv *)((char *)base + k->offset);
    char what[256], got[QUOTE_CHARS + 16];
    size_t count;

    if (is_null(n)) {
        free_kv(field);
        return MB_OK;
    }
    if (n->type != YAML_MAPPING_NODE)
        return fail(ld, n->start_mark, "expected %s, got %s", expected(k, what, sizeof(what)),
                    describe(n, got, sizeof(got)));
    count = map_len(n);
    if (count_ok(ld, k, n, count) != MB_OK)
        return MB_ERR;
    kv.keys = calloc(count ? count : 1, sizeof(char *));
    kv.values = calloc(count ? count : 1, sizeof(char *));
    if (kv.keys == NULL || kv.values == NULL) {
        free_kv(&kv);
        return fail(ld, n->start_mark, "out of memory");
    }
    for (size_t i = 0; i < count; i++) {
        const yaml_node_pair_t *pair = &n->data.mapping.pairs.start[i];
        const yaml_node_t *kn = node_at(ld, pair->key), *vn = node_at(ld, pair->value);
        int rc = visit(ld, kn);
        size_t dl;

        if (rc == MB_OK && (kn->type != YAML_SCALAR_NODE || is_null(kn)))
            rc = fail(ld, kn->start_mark, "expected a string key, got %s",
                      describe(kn, got, sizeof(got)));
        if (rc != MB_OK) {
            free_kv(&kv);
            return MB_ERR;
        }
        dl = push(ld, ld->dpath, ".", scalar(kn));
        for (size_t j = 0; j < i && rc == MB_OK; j++)
            if (strcmp(kv.keys[j], scalar(kn)) == 0)
                rc = fail(ld, kn->start_mark, "duplicate key");
        if (rc == MB_OK && (kv.keys[i] = strdup(scalar(kn))) == NULL)
            rc = fail(ld, kn->start_mark, "out of memory");
        kv.n = i + 1; /* keys[i] is set (or NULL): free_kv may see it */
        if (rc == MB_OK)
            rc = value_text(ld, "a string", vn, &kv.values[i]);
        pop(ld, ld->dpath, dl);
        if (rc != MB_OK) {
            free_kv(&kv);
            return MB_ERR;
        }
    }
    free_kv(field);
    *field = kv;
    return MB_OK;
}

static int walk_mapping(struct loader *ld, const yaml_node_t *n, void *base);

static int decode_list(struct loader *ld, const struct mb_conf_key *k, const yaml_node_t *n,
                       void *base)
{
    char what[256], got[QUOTE_CHARS + 16], msg[MSG_LEN];
    size_t count, tl;
    char *arr;

    if (n->type != YAML_SEQUENCE_NODE)
        return fail(ld, n->start_mark, "expected %s, got %s", expected(k, what, sizeof(what)),
                    describe(n, got, sizeof(got)));
    count = seq_len(n);
    if (count_ok(ld, k, n, count) != MB_OK)
        return MB_ERR;
    /* The file's list replaces the default entries (server.listen). */
    if (alloc_list(k, base, count) != MB_OK)
        return fail(ld, n->start_mark, "out of memory");
    arr = *(char **)((char *)base + k->offset);
    tl = push(ld, ld->tpath, "", "[]");
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *item = node_at(ld, n->data.sequence.items.start[i]);
        void *elem = arr + i * k->elem_size;
        size_t dl = push_index(ld, i);
        int rc = visit(ld, item);

        if (rc == MB_OK && apply_defaults(ld->tpath, elem, msg, sizeof(msg)) != MB_OK)
            rc = fail(ld, item->start_mark, "%s", msg);
        if (rc == MB_OK && item->type != YAML_MAPPING_NODE)
            rc = fail(ld, item->start_mark, "expected a mapping, got %s",
                      describe(item, got, sizeof(got)));
        if (rc == MB_OK)
            rc = walk_mapping(ld, item, elem);
        pop(ld, ld->dpath, dl);
        if (rc != MB_OK) {
            pop(ld, ld->tpath, tl);
            return MB_ERR;
        }
    }
    pop(ld, ld->tpath, tl);
    return MB_OK;
}

/* Whether a value given to an unsupported key is its "off" value. */
static bool is_off(const struct mb_conf_key *k, const yaml_node_t *n)
{
    bool a, b;

    if (k->off == NULL)
        return false;
    switch (k->type) {
    case MB_CONF_SECTION:
        return true; /* entered: its keys decide */
    case MB_CONF_STRLIST:
    case MB_CONF_LIST:
        return n->type == YAML_SEQUENCE_NODE && seq_len(n) == 0;
    case MB_CONF_MAP:
        return n->type == YAML_MAPPING_NODE && map_len(n) == 0;
    case MB_CONF_BOOL:
        return n->type == YAML_SCALAR_NODE && parse_bool(scalar(n), &a) == MB_OK &&
               parse_bool(k->off, &b) == MB_OK && a == b;
    default:
        return n->type == YAML_SCALAR_NODE && strcmp(scalar(n), k->off) == 0;
    }
}

static int run_check(struct loader *ld, const struct mb_conf_key *k, const yaml_node_t *n,
                     void *base)
{
    char msg[MSG_LEN];
    long index = -1;
    yaml_mark_t mark = n->start_mark;
    size_t dl;
    int rc;

    if (k->check == NULL || k->check(k, base, ld->dpath, &index, msg, sizeof(msg)) == MB_OK)
        return MB_OK;
    dl = strlen(ld->dpath);
    if (index >= 0 && n->type == YAML_SEQUENCE_NODE && (size_t)index < seq_len(n)) {
        mark = node_at(ld, n->data.sequence.items.start[index])->start_mark;
        push_index(ld, (size_t)index);
    }
    rc = fail(ld, mark, "%s", msg);
    pop(ld, ld->dpath, dl);
    return rc;
}

static int decode(struct loader *ld, const struct mb_conf_key *k, const yaml_node_t *n, void *base)
{
    int rc;

    if (visit(ld, n) != MB_OK)
        return MB_ERR;
    switch (k->type) {
    case MB_CONF_SECTION:
        if (k->presence)
            *(bool *)((char *)base + k->offset) = true;
        rc = walk_mapping(ld, n, base);
        break;
    case MB_CONF_LIST:
        rc = decode_list(ld, k, n, base);
        break;
    case MB_CONF_STRLIST:
        rc = decode_strlist(ld, k, n, base);
        break;
    case MB_CONF_MAP:
        rc = decode_map(ld, k, n, base);
        break;
    default:
        rc = decode_scalar(ld, k, n, base);
        break;
    }
    return rc == MB_OK ? run_check(ld, k, n, base) : rc;
}

/* The key of a mapping entry named name, or NULL. */
static const yaml_node_t *find_key(struct loader *ld, const yaml_node_t *n, const char *name)
{
    for (size_t i = 0; i < map_len(n); i++) {
        const yaml_node_t *kn = node_at(ld, n->data.mapping.pairs.start[i].key);
        if (kn->type == YAML_SCALAR_NODE && strcmp(scalar(kn), name) == 0)
            return kn;
    }
    return NULL;
}

/* Walks a mapping whose table path is ld->tpath into the struct at base. */
static int walk_mapping(struct loader *ld, const yaml_node_t *n, void *base)
{
    char got[QUOTE_CHARS + 16];
    size_t plen = strlen(ld->tpath);

    if (is_null(n)) /* "section:" with nothing under it */
        goto required;
    if (n->type != YAML_MAPPING_NODE)
        return fail(ld, n->start_mark, "expected a mapping, got %s", describe(n, got, sizeof(got)));
    for (size_t i = 0; i < map_len(n); i++) {
        const yaml_node_pair_t *pair = &n->data.mapping.pairs.start[i];
        const yaml_node_t *kn = node_at(ld, pair->key), *vn = node_at(ld, pair->value);
        const struct mb_conf_key *k;
        size_t dl, tl;
        int rc = MB_OK;

        if (kn->type != YAML_SCALAR_NODE)
            return fail(ld, kn->start_mark, "expected a key name, got %s",
                        describe(kn, got, sizeof(got)));
        dl = push(ld, ld->dpath, ".", scalar(kn));
        tl = push(ld, ld->tpath, ".", scalar(kn));
        for (size_t j = 0; j < i && rc == MB_OK; j++) {
            const yaml_node_t *prev = node_at(ld, n->data.mapping.pairs.start[j].key);
            if (prev->type == YAML_SCALAR_NODE && strcmp(scalar(prev), scalar(kn)) == 0)
                rc = fail(ld, kn->start_mark, "duplicate key (first at line %zu)",
                          prev->start_mark.line + 1);
        }
        k = ld->overflow ? NULL : mb_conf_key_find(ld->tpath);
        if (rc == MB_OK && k == NULL)
            rc = fail(ld, kn->start_mark, "unknown key");
        if (rc == MB_OK && !k->supported && !is_off(k, vn))
            rc = fail(ld, kn->start_mark, "not supported yet");
        if (rc == MB_OK)
            rc = decode(ld, k, vn, base);
        pop(ld, ld->tpath, tl);
        pop(ld, ld->dpath, dl);
        if (rc != MB_OK)
            return MB_ERR;
    }

required:
    /* Keys that every entry of a list must give (backends[].name). */
    for (size_t i = 0; i < mb_conf_keys_count(); i++) {
        const struct mb_conf_key *k = mb_conf_key_at(i);
        const char *name = k->path + plen + 1;

        if (!k->required || strncmp(k->path, ld->tpath, plen) != 0 || k->path[plen] != '.' ||
            strchr(name, '.') != NULL)
            continue;
        if (n->type != YAML_MAPPING_NODE || find_key(ld, n, name) == NULL)
            return fail(ld, n->start_mark, "missing required key \"%s\"", name);
    }
    return MB_OK;
}

/* ---------------------------------------------------------------- loading */
static int syntax_error(struct loader *ld, const yaml_parser_t *p)
{
    yaml_mark_t m = p->problem_mark;

    if (p->error == YAML_READER_ERROR) {
        /* The reader reports a byte offset, not a mark. */
        m.line = m.column = 0;
        for (size_t i = 0; i < p->problem_offset && i < ld->len; i++) {
            if (ld->text[i] == '\n') {
                m.line++;
                m.column = 0;
            } else {
                m.column++;
            }
        }
    }
    if (p->error == YAML_MEMORY_ERROR)
        return fail(ld, m, "out of memory while parsing");
    if (p->context != NULL)
        return fail(ld, m, "syntax error: %s (%s at line %zu)", p->problem ? p->problem : "unknown",
                    p->context, p->context_mark.line + 1);
    return fail(ld, m, "syntax error: %s", p->problem ? p->problem : "unknown");
}

/* Values of backends that depend on other sections, settled once the whole
 * file is read (routing: may come after backends): an unset
 * backends[].request_timeout is routing.request_timeout. */
static void resolve_backends(struct mb_conf *conf)
{
    for (size_t i = 0; i < conf->nbackends; i++)
        if (conf->backends[i].request_timeout == 0)
            conf->backends[i].request_timeout = conf->routing.request_timeout;
}

static bool is_wildcard(const char *address)
{
    return strcmp(address, "0.0.0.0") == 0 || strcmp(address, "::") == 0;
}

/* The metrics endpoint needs a socket of its own: with SO_REUSEPORT a
 * metrics socket on a client listener's address and port would bind, and the
 * kernel would spread client connections over both. A wildcard address
 * overlaps every address of its port. Checked once the whole file is read
 * (server may come after metrics); the error points at metrics.listen, or at
 * server.listen when metrics only has its defaults. */
static int check_metrics_listen(struct loader *ld, const yaml_node_t *root,
                                const struct mb_conf *conf)
{
    if (!conf->metrics.enabled)
        return MB_OK;
    for (size_t i = 0; i < conf->server.nlisten; i++) {
        const struct mb_conf_listen *l = &conf->server.listen[i];
        if (l->port != conf->metrics.port)
            continue;
        if (strcmp(l->address, conf->metrics.address) != 0 && !is_wildcard(l->address) &&
            !is_wildcard(conf->metrics.address))
            continue;
        const yaml_node_t *at = root ? find_key(ld, root, "metrics") : NULL;
        if (at == NULL && root != NULL)
            at = find_key(ld, root, "server");
        yaml_mark_t m = at ? at->start_mark : (yaml_mark_t){0};
        snprintf(ld->dpath, sizeof(ld->dpath), "metrics.listen");
        return fail(ld, m,
                    "%s:%u is also server.listen[%zu] (%s:%u): the metrics endpoint needs "
                    "an address and port of its own",
                    conf->metrics.address, conf->metrics.port, i, l->address, l->port);
    }
    return MB_OK;
}

static int load(const char *name, const char *text, size_t len, struct mb_conf **out, char *err,
                size_t errlen)
{
    struct loader ld = {.name = name, .text = text, .len = len, .err = err, .errlen = errlen};
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    bool have_parser = false, have_doc = false;
    struct mb_conf *conf;
    yaml_node_t *root;
    char msg[MSG_LEN];
    yaml_mark_t start = {0};

    *out = NULL;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    conf = calloc(1, sizeof(*conf));
    if (conf == NULL || (conf->file = strdup(name)) == NULL) {
        fail(&ld, start, "out of memory");
        goto fail;
    }
    if (apply_defaults("", conf, msg, sizeof(msg)) != MB_OK) {
        fail(&ld, start, "%s", msg);
        goto fail;
    }
    if (!yaml_parser_initialize(&parser)) {
        fail(&ld, start, "out of memory");
        goto fail;
    }
    have_parser = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        syntax_error(&ld, &parser);
        goto fail;
    }
    have_doc = true;
    ld.doc = &doc;
    root = yaml_document_get_root_node(&doc);
    if (root != NULL && walk_mapping(&ld, root, conf) != MB_OK)
        goto fail;
    if (root != NULL) {
        /* Only one document: a second one would be silently ignored. */
        if (!yaml_parser_load(&parser, &extra)) {
            syntax_error(&ld, &parser);
            goto fail;
        }
        root = yaml_document_get_root_node(&extra);
        if (root != NULL)
            fail(&ld, root->start_mark, "only one YAML document is allowed in a file");
        yaml_document_delete(&extra);
        if (root != NULL)
            goto fail;
    }
    if (check_metrics_listen(&ld, yaml_document_get_root_node(&doc), conf) != MB_OK)
        goto fail;
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    resolve_backends(conf);
    *out = conf;
    return MB_OK;

fail:
    if (have_doc)
        yaml_document_delete(&doc);
    if (have_parser)
        yaml_parser_delete(&parser);
    mb_conf_free(&conf);
    return MB_ERR;
}

int mb_conf_load_string(const char *name, const char *text, struct mb_conf **out, char *err,
                        size_t errlen)
{
    return load(name, text, strlen(text), out, err, errlen);
}

static int io_fail(const char *path, const char *why, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s: cannot read: %s", path, why);
    return MB_ERR;
}

int mb_conf_load(const char *path, struct mb_conf **out, char *err, size_t errlen)
{
    struct stat st;
    char *text = NULL;
    size_t len = 0;
    int fd, rc;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        goto io_error;
    if (fstat(fd, &st) == -1)
        goto io_error;
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return io_fail(path, "not a regular file", err, errlen);
    }
    if (st.st_size > (off_t)MAX_FILE) {
        close(fd);
        return io_fail(path, "larger than 16 MiB", err, errlen);
    }
    text = malloc((size_t)st.st_size + 1);
    if (text == NULL)
        goto io_error;
    while (len < (size_t)st.st_size) {
        ssize_t n = read(fd, text + len, (size_t)st.st_size - len);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1)
            goto io_error;
        if (n == 0)
            break; /* the file shrank: parse what is there */
        len += (size_t)n;
    }
    text[len] = '\0';
    close(fd);
    rc = load(path, text, len, out, err, errlen);
    free(text);
    return rc;

io_error:
    rc = io_fail(path, strerror(errno), err, errlen);
    if (fd != -1)
        close(fd);
    free(text);
    return rc;
}

void mb_conf_free(struct mb_conf **confp)
{
    struct mb_conf *conf = *confp;

    if (conf == NULL)
        return;
    /* Fields derived from endpoint URLs (conf/keys.c check_backends) are
     * not keys of the table, so free_base does not know them. */
    for (size_t i = 0; conf->backends != NULL && i < conf->nbackends; i++) {
        struct mb_conf_backend *b = &conf->backends[i];
        for (size_t e = 0; b->endpoints != NULL && e < b->nendpoints; e++) {
            free(b->endpoints[e].host);
            free(b->endpoints[e].address);
            free(b->endpoints[e].path);
        }
    }
    free_base("", conf);
    free(conf->file);
    free(conf);
    *confp = NULL;
}
