/*
 * tests/testserver/tsjson.h — a validating JSON scanner that works on the
 * raw text of a message instead of building a tree.
 *
 * The test server answers most requests by splicing pieces of the request
 * (the id, the echo message) into the reply byte for byte. cJSON would turn
 * an id such as 9007199254740993 into a double and lose it, and building and
 * printing a tree costs most of the CPU per message (DESIGN §9). So a message
 * is validated once with mb_tsjson_validate() (RFC 8259 grammar, nesting
 * limited to MB_TSJSON_MAX_DEPTH), and members are then found by key with
 * mb_tsjson_get(), which returns the exact text of the member's value.
 * Functions other than validate assume their span came from validated text.
 * Duplicate keys: the first one wins.
 */
#ifndef MB_TS_TSJSON_H
#define MB_TS_TSJSON_H

#include <stddef.h>

#define MB_TSJSON_MAX_DEPTH 64

/* The raw text of one JSON value, e.g. `"abc"`, `12`, `{...}`. */
struct mb_tsjson {
    const char *p;
    size_t n;
};

enum mb_tsjson_type {
    MB_TSJSON_INVALID = 0,
    MB_TSJSON_OBJECT,
    MB_TSJSON_ARRAY,
    MB_TSJSON_STRING,
    MB_TSJSON_NUMBER,
    MB_TSJSON_TRUE,
    MB_TSJSON_FALSE,
    MB_TSJSON_NULL,
};

/* Validates a whole document (one value with optional surrounding
 * whitespace). On success stores the value's span in *root and returns 0;
 * returns -1 on a syntax error, with a short reason in *why. */
int mb_tsjson_validate(const char *p, size_t n, struct mb_tsjson *root, const char **why);
enum mb_tsjson_type mb_tsjson_type(struct mb_tsjson v);
/* Finds member `key` of object `obj`; returns 0 and its value, or -1 when
 * obj is not an object or has no such member. */
int mb_tsjson_get(struct mb_tsjson obj, const char *key, struct mb_tsjson *out);
/* Iterates over an array: start with *pos = 0; returns 0 and the next
 * element, or -1 at the end. */
int mb_tsjson_next(struct mb_tsjson arr, size_t *pos, struct mb_tsjson *out);
/* Decodes string `v` into out (NUL-terminated, at most cap-1 bytes). Returns
 * the decoded length, or -1 if v is not a string, does not fit, contains an
 * escaped NUL, or a lone surrogate. */
int mb_tsjson_str(struct mb_tsjson v, char *out, size_t cap);
/* True when v is a string whose decoded value equals `lit`. */
int mb_tsjson_streq(struct mb_tsjson v, const char *lit);
/* Reads a number that is an integer (12, 12.0 and 1.2e1 all are) within
 * [min, max] into *out; returns 0, or -1 if v is not such a number. */
int mb_tsjson_int(struct mb_tsjson v, long long min, long long max, long long *out);

#endif
