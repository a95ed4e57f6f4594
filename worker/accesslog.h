/*
 * worker/accesslog.h — the access log (logging.access_log): one JSON object
 * per answered request, on one line.
 *
 *   {"time":"2026-11-27T09:30:00.123Z","worker":0,"transport":"websocket",
 *    "principal":"127.0.0.1","client":"127.0.0.1:53122","method":"tools/call",
 *    "backend":"gateway","tool":"echo","status":"error","code":-32602,
 *    "duration_ms":0.081,"bytes_in":97,"bytes_out":112}
 *
 *   time        the loop's wall clock when the answer was queued (UTC, ms)
 *   worker      the worker slot
 *   transport   "websocket" or "http"
 *   principal   who made the request: the client's address until
 *               authentication exists, then the authenticated principal
 *   client      the peer address and port
 *   method      the JSON-RPC method as sent (at most 63 bytes; null for a
 *               message that was not a request)
 *   backend     who answered: the backend's configured name (at most 127
 *               bytes) for an answer from a backend or from its cached
 *               results, including the gateway's errors about that backend
 *               (timeout, unavailable); "gateway" when the gateway answered
 *               on its own (initialize, ping, lists merged over backends,
 *               unknown names, rate limiting)
 *   tool        tools/call: params.name (at most 127 bytes), else null
 *   status      "ok" or "error"; code: the JSON-RPC error code (0 for ok)
 *   duration_ms time from the request's arrival to the queued answer
 *   bytes_in    bytes of the request message; bytes_out of the answer
 * Strings are JSON-escaped; bytes that are not valid UTF-8 are copied as
 * they came (the log says what the client sent).
 *
 * Never blocking the loop for long: lines go into a 64 KiB buffer that is
 * written with write(2) on an O_APPEND descriptor when the next line would
 * not fit, and by a timer at most one second after the first unwritten line;
 * every write carries whole lines, so processes sharing the file never
 * interleave inside a line. A line that cannot be written (disk full, file
 * gone) is counted in access_log_dropped and the worker goes on.
 * mb_accesslog_reopen() (USR1, `mcp-bridge -s reopen`) writes what is
 * buffered to the old file and opens the path again, for logrotate.
 */
#ifndef MB_WORKER_ACCESSLOG_H
#define MB_WORKER_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

struct mb_worker;
struct mb_conn;
struct mb_mcp_outcome;

#define MB_ACCESSLOG_BUF (64 * 1024)

/* Opens logging.access_log when it is set (w->accesslog stays NULL when it
 * is off). A file that cannot be opened is logged; the worker runs without
 * an access log until a reopen succeeds. Returns 0. */
int mb_accesslog_open(struct mb_worker *w, int slot);
void mb_accesslog_request(struct mb_worker *w, struct mb_conn *c, const struct mb_mcp_outcome *res,
                          size_t bytes_in, size_t bytes_out, uint64_t duration_ns);
/* Writes what is buffered. */
void mb_accesslog_flush(struct mb_worker *w);
/* Flushes, then opens the path again. Returns 0 or -errno. */
int mb_accesslog_reopen(struct mb_worker *w);
/* Flushes and releases everything; w->accesslog becomes NULL. */
void mb_accesslog_close(struct mb_worker *w);

#endif
