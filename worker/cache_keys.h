/*
 * worker/cache_keys.h — what the worker caches and under which key (DESIGN
 * §4 "Caching rules"), as pure functions: canonical JSON of arguments, the
 * hash of a backend's configuration, the discovery and response keys, what a
 * result says about being cached, and which tools are cacheable. No I/O;
 * the router (worker/router.c) calls these around the shm caches
 * (shm/cache.h).
 *
 * Keys (the bytes hashed into a 128-bit cache key by mb_cache_key):
 *   discovery  "d" NUL backend NUL confhash NUL method
 *   response   "r" NUL backend NUL confhash NUL method NUL name NUL
 *              canonical(arguments) NUL scope
 * confhash covers everything in the backend's configuration that can change
 * what it serves, so a reload that changes a backend never reads the old
 * generation's entries. scope is the caller's authorization scope: the
 * client's IP address until authentication exists (then the principal), and
 * "" for results the backend marked cacheScope public.
 */
#ifndef MB_WORKER_CACHE_KEYS_H
#define MB_WORKER_CACHE_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "shm/cache.h"
#include "worker/buf.h"
#include "worker/jsonscan.h"

struct mb_conf_backend;
struct mb_conf_strv;

/* Appends the canonical text of v: object members sorted by key (bytes),
 * no white space, strings re-escaped, numbers as cJSON prints them; so key
 * order and white space do not matter. NULL appends "{}" (no arguments).
 * Returns 0 or MB_ERR (out of memory, nesting deeper than 128). */
int mb_cachekey_canonical(const cJSON *v, struct mb_buf *out);

/* Appends raw JSON text (valid, e.g. a client's arguments) when it already
 * is its canonical form (mb_cachekey_canonical would print the same bytes;
 * NULL text: "{}"); returns MB_DECLINED, out unchanged, when it is not (key
 * order, white space, escapes, other numbers): the caller canonicalizes a
 * tree then. 0 or MB_ERR otherwise. */
int mb_cachekey_canonical_raw(const char *text, size_t len, struct mb_buf *out);

/* A hash of the backend's configuration (name, transport, command, env,
 * cwd, endpoints, headers, session). */
uint64_t mb_cachekey_backend_hash(const struct mb_conf_backend *b);

struct mb_cache_key mb_cachekey_discovery(const struct mb_cache *c, const char *backend,
                                          uint64_t confhash, const char *method);
/* args is the canonical text of the arguments (mb_cachekey_canonical or
 * _raw), args_len bytes. Returns 0 or MB_ERR (out of memory). */
int mb_cachekey_response(const struct mb_cache *c, const char *backend, uint64_t confhash,
                         const char *method, const char *name, const char *args, size_t args_len,
                         const char *scope, struct mb_cache_key *out);

/* What a result object (raw JSON text) allows. */
enum mb_cachekey_verdict {
    MB_CACHEKEY_NEVER = 0,   /* isError: never cached */
    MB_CACHEKEY_PRIVATE = 1, /* cacheable in the caller's scope if the tool is */
    MB_CACHEKEY_PUBLIC = 2   /* cacheScope "public" with ttlMs > 0: for everyone */
};
/* result must be valid JSON (the result member of a validated message).
 * *ttl_ms receives ttlMs for PUBLIC. */
enum mb_cachekey_verdict mb_cachekey_result(const char *result, size_t len, uint64_t *ttl_ms);
/* The result members the verdict reads, in this order; and the verdict from
 * them when a validating pass already found them (router.c finds them while
 * it validates the backend's message: jsonscan.h struct mb_json_nest). m is
 * NULL when the result is not an object. */
#define MB_CACHEKEY_RESULT_MEMBERS 3
extern const char *const mb_cachekey_result_names[MB_CACHEKEY_RESULT_MEMBERS];
enum mb_cachekey_verdict mb_cachekey_result_of(const struct mb_json_raw *m, uint64_t *ttl_ms);

/* name matches an entry (fnmatch glob) of a backend's cache_tools. */
bool mb_cachekey_listed(const struct mb_conf_strv *cache_tools, const char *name);
/* The names of the tools in a tools array whose annotations say both
 * readOnlyHint and idempotentHint (a cJSON array of strings; NULL on
 * out of memory). */
cJSON *mb_cachekey_annotated(const cJSON *tools);
bool mb_cachekey_has(const cJSON *names, const char *name);

#endif
