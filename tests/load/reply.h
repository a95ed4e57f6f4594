/*
 * tests/load/reply.h — recognising JSON-RPC replies and matching them to the
 * requests a connection has in flight.
 *
 * The load generator reads every reply, so it does not build a cJSON tree per
 * message: mb_load_reply_parse() walks the top-level object once and keeps
 * only what matching needs (the id, whether there is a result, an error and
 * its code, or a method — which makes it a server notification or request,
 * not a reply). Nested values are skipped without recursion.
 *
 * Each connection keeps its in-flight requests in a small ordered table
 * (struct mb_load_inflight, capacity = pipeline depth + 2 for the initialize
 * request and the initialized notification). WebSocket replies may come in
 * any order and are matched by id; HTTP/1.1 answers in order, so the HTTP
 * side takes the oldest entry.
 */
#ifndef MB_TESTS_LOAD_REPLY_H
#define MB_TESTS_LOAD_REPLY_H

#include <stddef.h>
#include <stdint.h>

enum mb_load_id_kind {
    MB_LOAD_ID_NONE = 0, /* no "id" member */
    MB_LOAD_ID_INT,      /* an integer that fits in int64 */
    MB_LOAD_ID_NULL,
    MB_LOAD_ID_OTHER /* a string, a fraction, a huge number, ... */
};

struct mb_load_reply {
    int id_kind;
    int64_t id;
    const char *id_text; /* the id's raw JSON text in the parsed message (NULL: none) */
    size_t id_text_len;
    int has_result;
    int has_error;
    int has_code;
    int64_t error_code;
    int has_method;
};

/* Parses one JSON text (a WebSocket message, an HTTP body, an SSE data field).
 * Returns 0, or -1 when it is not a well-formed JSON object. */
int mb_load_reply_parse(const char *p, size_t n, struct mb_load_reply *r);

enum mb_load_req_kind {
    MB_LOAD_REQ_CALL = 0, /* the measured request */
    MB_LOAD_REQ_INIT,     /* initialize */
    MB_LOAD_REQ_NOTIFY    /* notifications/initialized (HTTP only: it gets a 202) */
};

struct mb_load_pending {
    int64_t id;           /* -1 for a notification */
    uint64_t intended_ns; /* when it should have been sent (open loop); = sent_ns otherwise */
    uint64_t sent_ns;
    int kind;
};

struct mb_load_inflight {
    struct mb_load_pending *e;
    uint32_t n, cap;
};

/* Allocates room for cap entries. Returns 0 or -ENOMEM. */
int mb_load_inflight_init(struct mb_load_inflight *f, uint32_t cap);
void mb_load_inflight_free(struct mb_load_inflight *f);
/* Appends; returns 0, or -1 when full. */
int mb_load_inflight_add(struct mb_load_inflight *f, const struct mb_load_pending *p);
/* Removes the entry with this id (any position); 0 found, -1 not. */
int mb_load_inflight_take(struct mb_load_inflight *f, int64_t id, struct mb_load_pending *out);
/* Removes the oldest entry; 0, or -1 when empty. */
int mb_load_inflight_take_oldest(struct mb_load_inflight *f, struct mb_load_pending *out);
/* Counts entries of a kind. */
uint32_t mb_load_inflight_count(const struct mb_load_inflight *f, int kind);
/* The earliest sent_ns, or 0 when empty. */
uint64_t mb_load_inflight_oldest_sent(const struct mb_load_inflight *f);

enum mb_load_match {
    MB_LOAD_MATCH_OK = 0,  /* a result for a request in flight (taken into *out) */
    MB_LOAD_MATCH_ERROR,   /* a JSON-RPC error for a request in flight (taken; *code set) */
    MB_LOAD_MATCH_BAD_ID,  /* a reply whose id is missing or not in flight: the oldest
                              request is taken into *out, presuming it was this
                              one; out->kind is -1 when nothing was in flight */
    MB_LOAD_MATCH_INVALID, /* not JSON, not an object, or neither result nor error */
    MB_LOAD_MATCH_SERVER   /* a server notification or request: nothing taken */
};

/* Classifies one message against the table. An error reply with id null (the
 * server could not read the request) is matched to the oldest request and
 * counted as an error with its code, not as a bad id. */
int mb_load_reply_match(struct mb_load_inflight *f, const char *msg, size_t n,
                        struct mb_load_pending *out, int64_t *code);

#endif
