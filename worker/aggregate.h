/*
 * worker/aggregate.h — names across backends: prefixing and un-prefixing,
 * and merging the pages of tools/list, prompts/list, resources/list and
 * resources/templates/list answered by several backends into one list
 * (DESIGN §4). Pure functions over text and cJSON; no I/O.
 *
 * Prefixes. A tool or prompt `echo` of backend `demo` is shown as
 * `demo<separator>echo` (routing.separator, default "__"); a resource URI or
 * URI template `test://x` as `demo+test://x` ("+" is fixed: it cannot start
 * a URI scheme, so the split is never ambiguous). Un-prefixing picks the
 * backend whose name plus separator starts the given name; when backend
 * names nest ("a" and "a__b"), the longest match wins.
 *
 * Merging. Each backend's pages are kept apart and concatenated in
 * configuration order, so the merged order is stable. Upstream pagination is
 * drained by the caller (mb_merge_page hands back nextCursor); the merged list
 * is one page with no nextCursor. Without prefixes (routing.prefix never, or
 * auto with one backend), a name seen twice keeps its first backend's item and
 * the later one is dropped and reported (the first backend wins).
 */
#ifndef MB_WORKER_AGGREGATE_H
#define MB_WORKER_AGGREGATE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "shm/counters.h"
#include "worker/buf.h"

#define MB_URI_SEPARATOR "+"

enum mb_list_kind { MB_LIST_TOOLS, MB_LIST_PROMPTS, MB_LIST_RESOURCES, MB_LIST_TEMPLATES };
#define MB_LIST_KINDS 4

/* The method, the result's array member and the item's name member. */
const char *mb_list_method(enum mb_list_kind k);
const char *mb_list_key(enum mb_list_kind k);
const char *mb_list_field(enum mb_list_kind k);
/* The kind of a list method (its label, classified by the parse), or -1. */
int mb_list_kind_of(enum mb_method method);

/* Appends backend+sep+name. */
int mb_names_prefix(struct mb_buf *out, const char *backend, const char *sep, const char *name,
                    size_t name_len);
/* The backend (index into names[0..n)) whose "<name><sep>" starts s (len
 * bytes); *rest points after the separator. Returns the index or -1. */
long mb_names_owner(const char *const *names, size_t n, const char *sep, const char *s, size_t len,
                    const char **rest);

struct mb_merge {
    enum mb_list_kind kind;
    size_t n;
    cJSON **items; /* one array per backend; NULL = no answer (left out) */
    size_t pages;  /* pages taken so far, all backends */
};

int mb_merge_init(struct mb_merge *m, enum mb_list_kind kind, size_t nbackends);
/* Takes one page (the raw "result" object text) of backend bi. On success
 * *cursor is NULL, or the nextCursor to ask for next (malloc'd). Returns 0, or
 * MB_ERR when the result is not a list of this kind (a protocol violation:
 * the caller drops that backend, see mb_merge_drop). */
int mb_merge_page(struct mb_merge *m, size_t bi, const char *result, size_t len, char **cursor);
/* Leaves backend bi out of the merged list (it failed). */
void mb_merge_drop(struct mb_merge *m, size_t bi);
/* Writes {"<key>":[...]} with every item's name (or URI) prefixed when
 * prefix is true. When learned is not NULL, learned[bi] receives the
 * un-prefixed names kept for backend bi (a cJSON array of strings, owned by
 * the caller). Collisions without prefixes are logged with the names. */
int mb_merge_finish(struct mb_merge *m, const char *const *names, const char *sep, bool prefix,
                    struct mb_buf *out, cJSON **learned);
void mb_merge_free(struct mb_merge *m);

#endif
