/*
 * worker/jsonscan.h — allocation-free JSON scanning for the routing hot path.
 *
 * The gateway forwards most messages between clients and backends with only
 * an id, a name or a progress token changed (DESIGN §9: cJSON and malloc
 * dominate the cost of a message). So instead of parsing into a tree and
 * printing it again, it validates the text once (mb_json_valid), finds the
 * raw bytes of the members it needs (mb_json_member), and splices
 * replacements in (mb_json_splice). Raw member values keep their exact text
 * (ids stay byte for byte).
 *
 * Member lookup compares keys as raw bytes: a key written with escapes
 * ("\u0069d") is not found, and callers fall back to the cJSON path then.
 * The first member of a name wins, as in cJSON.
 */
#ifndef MB_WORKER_JSONSCAN_H
#define MB_WORKER_JSONSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "worker/buf.h"

/* A raw slice of a text. */
struct mb_json_raw {
    const char *p; /* NULL when absent */
    size_t len;
};

/* True when text is exactly one JSON value (strict RFC 8259 grammar,
 * surrounding white space allowed), nested at most 128 deep. */
bool mb_json_valid(const char *text, size_t len);
/* The raw value of member key in the object text (which must be valid JSON).
 * Returns 0 and fills *out, or MB_DECLINED when text is not an object or
 * has no such member (*out is then {NULL, 0}). */
int mb_json_member(const char *text, size_t len, const char *key, struct mb_json_raw *out);
/* One pass over the members of the object text, which must already be
 * known well-formed: it passed mb_json_valid, or cJSON parsed all of it (the
 * values are skipped by bracket and quote matching, not validated again): out[i] gets the raw value
 * of names[i]
 * ({NULL, 0} when absent; the first member of a name wins, keys compared as
 * raw bytes like mb_json_member). Returns 0, or MB_DECLINED (all out
 * cleared) when text is not an object. For the response path, where one
 * backend message is otherwise walked once per member it needs. At most 8
 * names (MB_ERR beyond). */
int mb_json_members(const char *text, size_t len, const char *const *names, size_t n,
                    struct mb_json_raw *out);
/* One level deeper in the same pass: the members of names[index] (its first
 * occurrence, when it is an object) are recorded too. */
struct mb_json_nest {
    size_t index;             /* which of the top-level names */
    const char *const *names; /* its members to find (at most 8) */
    size_t n;
    struct mb_json_raw *out; /* n slots */
    bool found;              /* set: that member was an object and was walked */
};
/* mb_json_valid and mb_json_members in one pass (and, with nest, the
 * members of one nested object; NULL: none): returns 0 when text is
 * valid and an object (out filled), MB_DECLINED when it is valid but not an
 * object, MB_ERR when it is not valid (out cleared both times). For
 * messages that are validated and then read.
 * plain: valid also means no \u escape in any string and no number longer
 * than 63 bytes. Such text is text cJSON 1.7 parses, to a tree whose keys
 * are the raw key bytes (only \u can spell a key in other bytes that
 * matter: the other escapes decode to quote, backslash, slash or controls).
 * jsonrpc.c uses it to decide a client message without cJSON; anything
 * else goes to cJSON as before. */
int mb_json_valid_members(const char *text, size_t len, bool plain, const char *const *names,
                          size_t n, struct mb_json_raw *out, struct mb_json_nest *nest);
/* Follows a path of member names ("params", "_meta", "progressToken",
 * NULL-terminated) through nested objects. */
int mb_json_path(const char *text, size_t len, const char *const *keys, struct mb_json_raw *out);
/* mb_json_path for text known well-formed (as for mb_json_members): one
 * mb_json_members pass per level instead of a validating walk. */
int mb_json_path_parsed(const char *text, size_t len, const char *const *keys,
                        struct mb_json_raw *out);
/* True when raw is a JSON integer in 0..2^53 and stores it in *v. */
bool mb_json_raw_uint(struct mb_json_raw raw, uint64_t *v);
/* Decodes a raw JSON string without escapes into buf (cap bytes with the
 * NUL); returns its length, or -1 when raw is not such a string or too long.
 * Strings with escapes are left to cJSON. */
long mb_json_raw_plain_string(struct mb_json_raw raw, char *buf, size_t cap);

/* One replacement: the bytes [at, at+len) of the source become with/with_len. */
struct mb_json_edit {
    const char *at;
    size_t len;
    const char *with;
    size_t with_len;
};
/* The most edits one splice takes. */
#define MB_JSON_SPLICE_MAX 8
/* Appends text to out with the edits applied. Edits point into text, must
 * not overlap and may come in any order (they are sorted here). At most
 * MB_JSON_SPLICE_MAX edits (MB_ERR beyond). */
int mb_json_splice(struct mb_buf *out, const char *text, size_t len, struct mb_json_edit *edits,
                   size_t n);
/* The same as 2n+1 pieces in v (which has room for them), for a writer that
 * copies them where they go (the client's queue) instead of into a buffer
 * first. Returns the number of pieces, or 0 when an edit lies outside text
 * or overlaps another. */
size_t mb_json_splice_parts(const char *text, size_t len, struct mb_json_edit *edits, size_t n,
                            struct iovec *v);

#endif
