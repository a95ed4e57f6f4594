/*
 * shm/backends.h — the backend stats section of the region (layout.h §7):
 * one record per configured backend, found by name, with its up mask (which
 * worker records have it ready), request outcomes, EWMA latency, and
 * per-worker gauges (in flight, pool connections). Workers write; the master
 * repairs a dead worker's part on reap; /metrics and mcp-bridge-shm read.
 * Each record also counts the client requests its backend answered, by
 * method and outcome (the backend="<name>" rows of
 * mcp_gateway_requests_total).
 *
 * No function here blocks or takes a lock except mb_bstats_claim, which may
 * wait a bounded time for another process finishing a claim.
 */
#ifndef MB_SHM_BACKENDS_H
#define MB_SHM_BACKENDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/layout.h"

struct mb_shm;

enum mb_bstats_status {
    MB_BSTATS_OK = 0,
    MB_BSTATS_ERROR = 1,
    MB_BSTATS_TIMEOUT = 2,
    MB_BSTATS_UNAVAILABLE = 3,
};

enum mb_bstats_gauge { MB_BSTATS_IN_FLIGHT, MB_BSTATS_CONNS_ACTIVE, MB_BSTATS_CONNS_IDLE };

/* A process's view of the section (plain values: copy freely). */
struct mb_bstats {
    char *base;          /* NULL: the region has no backend stats */
    uint32_t count;      /* records */
    uint32_t stride;     /* bytes per record */
    uint32_t nworkers;   /* worker records: bits in the mask, cells */
    uint32_t mask_words; /* uint64_t words of the up mask */
    bool has_methods;    /* records carry the request matrix (minor >= 3) */
};

/* A record read out, summed over duplicates (see layout.h §7). */
struct mb_bstats_snap {
    char name[MB_SHM_BACKEND_NAME];
    char endpoint[MB_SHM_BACKEND_ENDPOINT];
    uint32_t up_workers; /* worker records whose upstream is ready */
    uint64_t requests[MB_SHM_BACKEND_STATUSES];
    uint64_t latency_us;
    uint64_t in_flight, conns_active, conns_idle;
    uint64_t changed_ms;
};

/* Client requests of one backend name by method and outcome, summed over
 * its records (mb_bstats_methods_snapshot). */
struct mb_bstats_methods {
    char name[MB_SHM_BACKEND_NAME];
    uint64_t n[MB_SHM_BACKEND_METHODS][MB_SHM_BACKEND_REQ_STATUSES];
};

/* Bytes of one record for a worker table of worker_capacity records. */
uint32_t mb_bstats_entry_size(uint32_t worker_capacity);
/* Fills v from shm's section; 0, or MB_ERR (v->base NULL) when the region
 * has none or it is malformed. */
int mb_bstats_open(const struct mb_shm *shm, struct mb_bstats *v);

/* Worker: the record of backend `name` with this endpoint label (claimed
 * when new; owner = the caller's worker record). Returns its index, or -1
 * when the section is absent or full. Labels longer than the fields are
 * truncated. */
int mb_bstats_claim(const struct mb_bstats *v, const char *name, const char *endpoint,
                    uint32_t owner);
/* Worker: its upstream to record rec became ready (up) or not. */
void mb_bstats_set_up(const struct mb_bstats *v, int rec, uint32_t worker, bool up);
/* Any worker: one request outcome; latency_us is folded into the EWMA when
 * the backend answered (ok, error) and latency_us > 0. */
void mb_bstats_outcome(const struct mb_bstats *v, int rec, enum mb_bstats_status st,
                       uint64_t latency_us);
/* Any worker: one client request answered by record rec's backend, with
 * method (enum mb_method) and status (enum mb_req_status). Returns false,
 * counting nothing, when rec is invalid, the indices are out of range, or
 * the region's records have no request matrix. */
bool mb_bstats_request(const struct mb_bstats *v, int rec, unsigned method, unsigned status);
/* Worker: its own gauge cell += delta. */
void mb_bstats_gauge_add(const struct mb_bstats *v, int rec, uint32_t worker,
                         enum mb_bstats_gauge g, int64_t delta);
/* Master, on reap: clears worker's up bits and zeroes its cells in every
 * record, and frees records it left half-claimed. */
void mb_bstats_repair(const struct mb_bstats *v, uint32_t worker);
/* Master, through mb_shm_worker_reaped: the same on the region's section. */
void mb_shm_backends_repair(struct mb_shm *shm, uint32_t worker);

/* Readers: published records, summed by (name, endpoint), in record order,
 * at most max; returns how many were written. */
size_t mb_bstats_snapshot(const struct mb_bstats *v, struct mb_bstats_snap *out, size_t max);

/* Readers: the request matrices of published records, summed by name (an
 * endpoint change leaves a backend two records), in record order, at most
 * max; returns how many were written (0 without the matrix). */
size_t mb_bstats_methods_snapshot(const struct mb_bstats *v, struct mb_bstats_methods *out,
                                  size_t max);

/* "ok", "error", "timeout", "unavailable". */
const char *mb_bstats_status_name(int st);

#endif
