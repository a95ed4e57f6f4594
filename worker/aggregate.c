/*
 * worker/aggregate.c — prefixing, un-prefixing and list merging (see
 * aggregate.h). Merging uses cJSON: lists are not the hot path (a client
 * lists once, then calls many times) and items must be edited one by one.
 */
#include "worker/aggregate.h"

#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "common/log.h"

/* A backend answering more pages than this is looping on its cursor. */
#define MAX_PAGES 10000

static const struct {
    const char *method, *key, *field;
    enum mb_method id;
} kinds[MB_LIST_KINDS] = {
    {"tools/list", "tools", "name", MB_METHOD_TOOLS_LIST},
    {"prompts/list", "prompts", "name", MB_METHOD_PROMPTS_LIST},
    {"resources/list", "resources", "uri", MB_METHOD_RESOURCES_LIST},
    {"resources/templates/list", "resourceTemplates", "uriTemplate",
     MB_METHOD_RESOURCES_TEMPLATES_LIST},
};

const char *mb_list_method(enum mb_list_kind k)
{
    return kinds[k].method;
}

const char *mb_list_key(enum mb_list_kind k)
{
    return kinds[k].key;
}

const char *mb_list_field(enum mb_list_kind k)
{
    return kinds[k].field;
}

int mb_list_kind_of(enum mb_method method)
{
    for (int i = 0; i < MB_LIST_KINDS; i++)
        if (kinds[i].id == method)
            return i;
    return -1;
}

int mb_names_prefix(struct mb_buf *out, const char *backend, const char *sep, const char *name,
                    size_t name_len)
{
    size_t mark = out->len;
    if (mb_buf_append_str(out, backend) || mb_buf_append_str(out, sep) ||
        mb_buf_append(out, name, name_len)) {
        out->len = mark;
        return MB_ERR;
    }
    return 0;
}

long mb_names_owner(const char *const *names, size_t n, const char *sep, const char *s, size_t len,
                    const char **rest)
{
    size_t seplen = strlen(sep), best_len = 0;
    long best = -1;
    for (size_t i = 0; i < n; i++) {
        size_t bl = strlen(names[i]);
        if (bl + seplen > len || bl < best_len || memcmp(s, names[i], bl) != 0 ||
            memcmp(s + bl, sep, seplen) != 0)
            continue;
        best = (long)i;
        best_len = bl;
    }
    if (best >= 0)
        *rest = s + best_len + seplen;
    return best;
}

int mb_merge_init(struct mb_merge *m, enum mb_list_kind kind, size_t nbackends)
{
    memset(m, 0, sizeof(*m));
    m->kind = kind;
    m->n = nbackends;
    m->items = calloc(nbackends ? nbackends : 1, sizeof(*m->items));
    return m->items ? 0 : MB_ERR;
}

int mb_merge_page(struct mb_merge *m, size_t bi, const char *result, size_t len, char **cursor)
{
    *cursor = NULL;
    if (bi >= m->n || ++m->pages > MAX_PAGES)
        return MB_ERR;
    cJSON *r = cJSON_ParseWithLength(result, len);
    if (!cJSON_IsObject(r))
        goto fail;
    cJSON *arr = cJSON_DetachItemFromObjectCaseSensitive(r, kinds[m->kind].key);
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(arr);
        goto fail;
    }
    const cJSON *next = cJSON_GetObjectItemCaseSensitive(r, "nextCursor");
    if (next != NULL && !cJSON_IsNull(next) && !cJSON_IsString(next)) {
        cJSON_Delete(arr);
        goto fail;
    }
    if (m->items[bi] == NULL) {
        m->items[bi] = arr;
    } else {
        cJSON *it;
        while ((it = arr->child) != NULL)
            cJSON_AddItemToArray(m->items[bi], cJSON_DetachItemViaPointer(arr, it));
        cJSON_Delete(arr);
    }
    if (cJSON_IsString(next) && next->valuestring[0] != '\0') {
        *cursor = strdup(next->valuestring);
        if (*cursor == NULL)
            goto fail;
    }
    cJSON_Delete(r);
    return 0;
fail:
    cJSON_Delete(r);
    return MB_ERR;
}

void mb_merge_drop(struct mb_merge *m, size_t bi)
{
    if (bi < m->n) {
        cJSON_Delete(m->items[bi]);
        m->items[bi] = NULL;
    }
}

/* Whether name is already kept by an earlier backend (without prefixes). */
static long seen_before(cJSON **learned, size_t upto, const char *name)
{
    for (size_t b = 0; b < upto; b++) {
        const cJSON *s;
        cJSON_ArrayForEach(s, learned[b]) if (strcmp(s->valuestring, name) == 0) return (long)b;
    }
    return -1;
}

int mb_merge_finish(struct mb_merge *m, const char *const *names, const char *sep, bool prefix,
                    struct mb_buf *out, cJSON **learned)
{
    const char *field = kinds[m->kind].field;
    const char *s = m->kind >= MB_LIST_RESOURCES ? MB_URI_SEPARATOR : sep;
    cJSON *res = cJSON_CreateObject(), *all = cJSON_AddArrayToObject(res, kinds[m->kind].key);
    cJSON *tmp[m->n ? m->n : 1];
    struct mb_buf name = {0};
    int rc = MB_ERR;

    memset(tmp, 0, sizeof(tmp));
    if (res == NULL || all == NULL)
        goto out;
    for (size_t b = 0; b < m->n; b++) {
        if ((tmp[b] = cJSON_CreateArray()) == NULL)
            goto out;
        cJSON *it;
        while (m->items[b] != NULL && (it = m->items[b]->child) != NULL) {
            cJSON_DetachItemViaPointer(m->items[b], it);
            cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, field);
            if (!cJSON_IsObject(it) || !cJSON_IsString(nm)) {
                mb_log_warn("backend %s: a %s item without a string \"%s\": left out", names[b],
                            kinds[m->kind].method, field);
                cJSON_Delete(it);
                continue;
            }
            if (!prefix) {
                long first = seen_before(tmp, b, nm->valuestring);
                if (first >= 0) {
                    mb_log_warn("%s: \"%s\" of backend %s is hidden by backend %s (routing.prefix "
                                "never: the first backend wins)",
                                kinds[m->kind].method, nm->valuestring, names[b], names[first]);
                    cJSON_Delete(it);
                    continue;
                }
            }
            cJSON *orig = cJSON_CreateString(nm->valuestring);
            if (orig == NULL) {
                cJSON_Delete(it);
                goto out;
            }
            cJSON_AddItemToArray(tmp[b], orig);
            if (prefix) {
                mb_buf_reset(&name);
                if (mb_names_prefix(&name, names[b], s, nm->valuestring, strlen(nm->valuestring)) ||
                    mb_buf_cstr(&name) == NULL ||
                    !cJSON_ReplaceItemInObjectCaseSensitive(it, field,
                                                            cJSON_CreateString(name.data))) {
                    cJSON_Delete(it);
                    goto out;
                }
            }
            cJSON_AddItemToArray(all, it);
        }
    }
    char *text = cJSON_PrintUnformatted(res);
    if (text == NULL)
        goto out;
    rc = mb_buf_append_str(out, text);
    free(text);
    if (rc == 0 && learned != NULL)
        for (size_t b = 0; b < m->n; b++) {
            learned[b] = tmp[b];
            tmp[b] = NULL;
        }
out:
    for (size_t b = 0; b < m->n; b++)
        cJSON_Delete(tmp[b]);
    cJSON_Delete(res);
    mb_buf_free(&name);
    return rc;
}

void mb_merge_free(struct mb_merge *m)
{
    for (size_t b = 0; b < m->n; b++)
        cJSON_Delete(m->items[b]);
    free(m->items);
    m->items = NULL;
    m->n = 0;
}
