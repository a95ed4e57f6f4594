/*
 * conf/keys.h — the table of every configuration key (CONVENTIONS rule 12).
 *
 * conf/keys.c declares each key path of gateway.yaml once: its type, the
 * contract's default, its limits, a one-line meaning, whether its feature is
 * built yet, and where its value lives in struct mb_conf. The loader
 * (conf/conf.c) is driven by this table, the man page is checked against it
 * (tests/unit/conf/test_manpage.c), and a later feature turns itself on by
 * flipping the `supported` bit of its keys.
 *
 * Paths: sections are joined with '.', and a list of mappings adds "[]", e.g.
 * "backends[].endpoints[].url". In error messages the "[]" carries the
 * index of the offending entry: "backends[2].endpoints[0].url".
 */
#ifndef MB_CONF_KEYS_H
#define MB_CONF_KEYS_H

#include <stdbool.h>
#include <stddef.h>

enum mb_conf_type {
    MB_CONF_BOOL,     /* true | false */
    MB_CONF_INT,      /* decimal integer */
    MB_CONF_NUMBER,   /* decimal number (may have a fraction) */
    MB_CONF_SIZE,     /* bytes: 8192, 1MB, 512MiB (conf/values.c) */
    MB_CONF_DURATION, /* milliseconds: 250ms, 30s, 5m, 1h30m (conf/values.c) */
    MB_CONF_STRING,   /* a string (char *) */
    MB_CONF_ENUM,     /* one of .words, stored as its index (the C enum value) */
    MB_CONF_WORD,     /* one of .words, stored as the word itself (char *) */
    MB_CONF_STRLIST,  /* a list of strings (struct mb_conf_strv) */
    MB_CONF_MAP,      /* string keys to string values (struct mb_conf_kv) */
    MB_CONF_SECTION,  /* a mapping of further keys; stores nothing itself */
    MB_CONF_LIST,     /* a list of mappings: an array of element structs */
    MB_CONF_HEX,      /* hexadecimal digits into a byte array of .width bytes */
};

struct mb_conf_key;

/* A conversion that replaces the type's own (e.g. workers: "auto", listen
 * addresses: resolved to numeric). Writes into base at k->offset (and may
 * write neighbouring fields); on error returns MB_ERR with a message (no
 * position, no key path) in msg. */
typedef int (*mb_conf_conv_fn)(const struct mb_conf_key *k, void *base, const char *text, char *msg,
                               size_t msglen);
/* A check of a whole value after it was read from the file (duplicates in a
 * list, paths starting with '/'). base is the struct holding the key, dpath
 * the key's path as shown in messages. On error returns MB_ERR, the message in
 * msg, and in *index the list entry at fault (-1 = the value as a whole). */
typedef int (*mb_conf_check_fn)(const struct mb_conf_key *k, const void *base, const char *dpath,
                                long *index, char *msg, size_t msglen);

struct mb_conf_key {
    const char *path;
    enum mb_conf_type type;
    /* The contract's default in YAML syntax; NULL = none (the field stays
     * zero/NULL). A LIST whose default is not "[]" starts with one element
     * holding its element defaults (server.listen). */
    const char *def;
    /* Limits in the key's own syntax (so they read well in messages and the
     * man page): values for INT/NUMBER/SIZE/DURATION, length for STRING,
     * entry counts for STRLIST/MAP/LIST. NULL = unbounded. */
    const char *min;
    const char *max;
    const char *const *words; /* ENUM, WORD: allowed words, NULL-terminated */
    /* For a key whose feature is not built: the one value a file may still
     * give it, which leaves the feature off ("false" for enabled flags, "[]"
     * for lists, "off"). Such a key holds this value instead of its default,
     * so `enabled` reads false. A SECTION with .off set is entered and its
     * keys decide; without .off, its mere presence is rejected. */
    const char *off;
    const char *doc;        /* one line: what it means */
    unsigned supported : 1; /* its feature is built (see conf/keys.c) */
    unsigned required : 1;  /* must appear in every entry of its list */
    unsigned presence : 1;  /* SECTION: a bool at .offset records that it was given */
    /* Where the value lives: in struct mb_conf for keys outside lists, else
     * in the element struct of the innermost list. */
    size_t offset;
    size_t width;           /* sizeof the field */
    size_t count_offset;    /* LIST: the size_t count beside the array */
    size_t elem_size;       /* LIST: sizeof one element */
    mb_conf_conv_fn conv;   /* NULL = the type's own conversion */
    mb_conf_check_fn check; /* NULL = none */
};

size_t mb_conf_keys_count(void);
const struct mb_conf_key *mb_conf_key_at(size_t i);
/* By table path ("server.listen[].port"); NULL if there is no such key. */
const struct mb_conf_key *mb_conf_key_find(const char *path);
/* "bool", "integer", "size", ... as the man page spells them. */
const char *mb_conf_type_name(enum mb_conf_type type);
/* Turns a key's feature on or off for this process. The daemon never calls
 * it: a feature is turned on for good by flipping its bit in conf/keys.c.
 * Tests use it to exercise the loader on keys whose feature is not built.
 * Returns 0, or MB_ERR for an unknown path. */
int mb_conf_key_set_supported(const char *path, bool on);

#endif
