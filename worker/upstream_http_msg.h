/*
 * worker/upstream_http_msg.h — what the Streamable HTTP transport
 * (worker/upstream_http.c) reads of a message the core gives it: its
 * method and whether it has an id (a request needs a message back; a
 * notification or a response gets 202). Separate so it can be unit tested
 * against the validating lookups.
 */
#ifndef MB_WORKER_UPSTREAM_HTTP_MSG_H
#define MB_WORKER_UPSTREAM_HTTP_MSG_H

#include <stdbool.h>
#include <stddef.h>

#include "worker/jsonscan.h"

/* msg must be one valid JSON value (the core sends only JSON it validated
 * or built). *method gets the raw value of the top-level member "method"
 * ({NULL, 0} when absent or msg is not an object), *has_id whether a
 * top-level "id" exists: the same answers as mb_json_member, without
 * validating again and without walking past the members needed. */
void mb_upstream_http_classify(const char *msg, size_t len, struct mb_json_raw *method,
                               bool *has_id);

#endif
