/*
 * shm/layout.h — the byte layout of the shared-memory region. This is a file
 * format: tools built from another version read it, so every incompatible
 * change bumps MB_SHM_LAYOUT_MAJOR and a compatible addition bumps the minor.
 * This file holds types and constants only; shm/shm.c implements it.
 *
 * THE REGION
 *
 * One regular file (default /dev/shm/mcp-bridge), mode 0600, created by the
 * master and mapped MAP_SHARED before it forks, so every worker inherits the
 * same mapping. Tools (mcp-bridge-shm) map it PROT_READ and never write. The
 * file is written whole into a temporary file in the same directory and
 * renamed over the old path, so a reader opening the path sees either the old
 * region or the new one, never a half-sized file. A region whose gateway
 * stopped stays on disk (state RETIRED, or READY if the master was killed)
 * and can still be read.
 *
 * Region generations. A reload keeps the region when the new configuration
 * gives it the same shape (the same section directory), so rate-limit
 * buckets, cache entries and backend stats survive it. A reload that changes
 * a size (rate_limit.capacity, caching.*, the backend count) builds a
 * successor: a new region, written whole in a temporary file and renamed
 * over the path like the first one, whose master row starts with the old
 * region's counter and histogram totals (gauges excepted), whose rate-limit
 * table holds a copy of every live bucket (rehashed; when the new table is
 * smaller, the latest TATs are kept), with the old region's hash_seed, and
 * whose caches, backend stats and worker table start empty. The new
 * generation's workers map the successor; the old workers keep the old
 * mapping (its file is gone from the directory) until they exit, and what
 * they count meanwhile is added to the successor's master row when the last
 * of them is reaped; then the old region is marked RETIRED and unmapped.
 * A reader that opened the old file before the rename keeps reading it; it
 * sees state RETIRED once the old workers are gone. The protocol is
 * specified at the top of master/cycle.c.
 *
 * All integers are fixed width in host byte order (the region never leaves
 * the machine), naturally aligned, with explicit padding. Every section
 * starts on a 64-byte boundary. Fields that change while the gateway runs are
 * read and written with __atomic builtins; everything else is written once,
 * before the header's state becomes READY.
 *
 * 1. HEADER (offset 0, 640 bytes, struct mb_shm_header)
 *
 *   magic            MB_SHM_MAGIC; anything else is not a region.
 *   layout_major     readers refuse a region of another major.
 *   layout_minor     a reader of the same major and a lower minor reads what
 *                    it knows and ignores the rest.
 *   header_size      sizeof(struct mb_shm_header) of the writer.
 *   total_size       bytes of the region (= the file size).
 *   generation       config generation being served (master, atomic).
 *   master_pid       pid of the master that created the region.
 *   state            INITIALIZING -> READY -> RETIRED. The master stores
 *                    READY with release semantics once every section is laid
 *                    out, and RETIRED when it stops, or when a region it
 *                    replaced has lost its last worker; readers load it with
 *                    acquire semantics.
 *   birth_ms         wall clock (ms since the epoch) at creation.
 *   retired_ms       wall clock at retirement, 0 before.
 *   worker_capacity  records in the worker table.
 *   nsections        entries used in the section directory.
 *   fold_seq         sequence lock around the master's folding of a dead
 *                    worker's counters (see 3): odd while folding.
 *   hash_seed        128 random bits drawn at creation; the key of the hash
 *                    that turns rate-limit keys into slot keys (see 5), so
 *                    clients cannot choose colliding keys.
 *   sections[16]     the section directory: {type, entry_size, offset,
 *                    count, items}. A reader finds a section by type, never
 *                    by assuming an offset. entry_size is the stride between
 *                    entries; items is a per-type count (see below).
 *
 *   Section types: 1 workers, 2 counters, 3 histograms, 4 rate-limit table,
 *   5 cache, 6 backend stats. A type a reader does not know is skipped.
 *
 * 2. WORKER TABLE (type 1; entry_size 64; count = worker_capacity)
 *
 *   One struct mb_shm_worker per record, one cache line each. The master
 *   alone allocates, fills and frees records (state FREE <-> STARTING) and
 *   records pid, start time, restarts and exit status; the worker in the
 *   record alone writes state RUNNING/DRAINING, heartbeat_ms and
 *   connections. Every field is a single aligned word read and written with
 *   __atomic builtins, so no record is ever torn and nothing needs repair when
 *   a worker dies mid-write; the master resets connections when it reaps the
 *   pid. A record index stays with a worker slot across respawns; a reload
 *   allocates new records for the new generation, and the old ones are freed
 *   when the old workers exit. Any process that writes counters (workers, the
 *   checker) owns a record.
 *
 * 3. COUNTERS (type 2; count = worker_capacity + 1 rows; items = counters per
 *    row; entry_size = items * 8 rounded up to 64)
 *
 *   Row i (i < worker_capacity) belongs to the process in worker record i and
 *   is written only by it: plain load + store of each uint64 (no locked
 *   instruction is needed with one writer; __atomic relaxed accesses keep
 *   readers from seeing torn words). The last row, index worker_capacity, is
 *   the MASTER ROW: written only by the master, it holds the master's own
 *   counters (reloads, worker_restarts) and everything folded from workers
 *   that exited. The value of a counter is the sum over all rows.
 *
 *   When the master reaps a worker (mb_shm_worker_reaped), it adds the dead
 *   worker's counters into the master row and zeroes the row, inside the
 *   fold_seq sequence lock (odd while folding); gauges are zeroed, not
 *   folded, because what they measured died with the process. A reader that
 *   sums rows retries when fold_seq changed under it, so a total never goes
 *   backwards and never counts a folded row twice. The next worker in the
 *   record starts from a zero row.
 *
 *   The order of counters is shm/counters.h's X-macro table; counters are
 *   only ever appended within a major, so a reader of an older minor reads
 *   the first `items` counters it knows by index.
 *
 * 4. HISTOGRAMS (type 3; count = worker_capacity + 1 rows, same owners and
 *    folding as counters; items = histograms per row; entry_size = items *
 *    128)
 *
 *   Each histogram is struct mb_shm_hist: count, sum_ns and 14 bucket counts
 *   whose upper bounds are 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000,
 *   2500, 5000 and 10000 ms (MB_HIST_BOUNDS_US). Buckets are not cumulative:
 *   an observation increments only the first bucket whose bound is >= the
 *   value; one above 10 s increments no bucket, so the +Inf bucket is count
 *   minus the sum of buckets. The writer updates count, then sum_ns, then the
 *   bucket with a release store; readers load the buckets (acquire) before
 *   count, so the count they see is never smaller than the buckets' sum.
 *
 * 5. RATE-LIMIT TABLE (type 4; entry_size 32; count = slots, a power of two
 *    >= 2 * items; items = the configured capacity in buckets; absent when the
 *    capacity is 0)
 *
 *   struct mb_shm_rl_slot: a 128-bit key hash and one 64-bit word, `tat`,
 *   that is both the bucket (GCRA's theoretical arrival time, nanoseconds of
 *   CLOCK_MONOTONIC) and the slot's state:
 *     0                 empty: never used; ends a probe sequence.
 *     bit 63 set        claimed: a process is writing a new key into the
 *                       slot; bits 47..62 name the claimer (its worker
 *                       record), bits 0..46 are the low 47 bits of the
 *                       new key's hi half (its fingerprint).
 *     otherwise         the TAT of the key in the slot. A TAT in the past
 *                       (<= now, or 1 = tombstone) is an empty bucket: the
 *                       slot may be taken by any key.
 *   Keys are found by linear probing from key.lo & (slots - 1), at most
 *   MB_RL_MAX_PROBE slots. Every change of `tat` is one compare-and-swap, and
 *   a key changes only while its slot is claimed. The algorithm, and why a
 *   process killed at any instruction leaves a usable table, is specified at
 *   the top of shm/ratelimit.c.
 * 6. CACHES (type 5; one section per cache; entry_size 1, count = the bytes
 *    of the cache's area; items = the cache id: 0 discovery, 1 response,
 *    2 auth; absent when caching is off)
 *
 *   A cache area is a header, an index of slots and a value arena:
 *
 *     struct mb_shm_cache_hdr (128 bytes)  id, nslots, arena_size,
 *                      max_entry, and `head` (atomic, on its own cache line):
 *                      the arena's write position as a 64-bit byte count
 *                      that only grows (the "logical" position).
 *     nslots x struct mb_shm_cache_slot (64 bytes, one cache line each)
 *     arena_size bytes of values.
 *
 *   A slot: `ver` (the seqlock word), the 128-bit key hash, `pos` (logical
 *   arena position of the value), `len`, `expires_ms` (CLOCK_MONOTONIC ms,
 *   the same clock in every process), `flags` (0 empty or deleted, 1 value,
 *   2 lease), `stored_ms`, and `sum`, a 64-bit hash of the value bytes.
 *   `ver` is 0 for a slot never used (it ends a probe sequence: slots never
 *   become 0 again), even and > 0 for a stable slot (the write sequence
 *   number times 2), odd while a process writes the slot: then bits 1..16
 *   name the writer (its worker record) and bits 17..63 the sequence number
 *   the writer will publish. Every other field changes only while `ver` is
 *   odd.
 *
 *   A value lives at physical offset pos % arena_size and never wraps (a
 *   reservation that would cross the end starts at offset 0 instead). A
 *   writer reserves space by compare-and-swap on `head`, so the arena is
 *   written as a ring: a value is overwritten exactly when head > pos +
 *   arena_size, which every reader checks after copying the value out.
 *   Keys are found by linear probing from key.lo % nslots, at most
 *   MB_CACHE_PROBE slots; nslots is the configured max_size, so the number
 *   of entries can never exceed it. The algorithm (readers copy out and
 *   re-check `ver`, `head` and `sum`; writers claim with CAS; leases;
 *   eviction of the oldest entry in the probe window) and its crash safety
 *   are specified at the top of shm/cache.c.
 *
 * 7. BACKEND STATS (type 6; count = records, fixed for the region's life;
 *    items = worker_capacity; entry_size = sizeof(struct mb_shm_backend)
 *    + the up mask + items per-worker cells + (from minor 3) the request
 *    matrix, rounded up to 64; absent in a region of minor 1)
 *
 *   One record per configured backend (a stdio backend is one endpoint; a
 *   backend with several URLs is one record whose endpoint label lists them
 *   — the backend core does not know which URL answered). A record:
 *
 *     state          atomic: 0 free; bit 63 set = being claimed, bits 0..31
 *                    name the claimer's worker record; 1 = published. Name
 *                    and endpoint are written only while claimed and never
 *                    change once published.
 *     changed_ms     wall clock of the last up/down change of any worker.
 *     requests[4]    requests that got an outcome at this backend, by status:
 *                    ok (a result), error (a JSON-RPC error or a protocol
 *                    violation), timeout, unavailable (down, or the
 *                    connection was lost). Atomic add: every worker writes.
 *     latency_us     EWMA (alpha 1/8) of the time from sending a request to
 *                    its answer, microseconds; updated with a CAS loop.
 *     name[64]       backends[].name, NUL-terminated.
 *     endpoint[192]  the endpoint label: the URL(s) for http and websocket,
 *                    "stdio:" + command[0] for stdio; truncated.
 *     up[]           ceil(items / 64) words: bit i set while worker record i
 *                    has a ready (handshaken) upstream to this backend. Set
 *                    with atomic OR, cleared with atomic AND; the master
 *                    clears a dead worker's bit when it reaps it.
 *     cells[items]   struct mb_shm_backend_cell per worker record: requests
 *                    in flight, pool connections active and idle. Written
 *                    only by the worker in that record (relaxed load +
 *                    store); zeroed by the master on reap (gauges die with
 *                    the process). A reader sums the cells.
 *     methods        (minor 3) struct mb_shm_backend_methods: client
 *                    requests this backend answered (or failed), by method
 *                    and outcome — the index sets of the per-row request
 *                    matrix of §3 (shm/counters.h MB_METHODS,
 *                    MB_REQ_STATUSES), method-major. Atomic add: every
 *                    worker writes, nothing is ever repaired. A request is
 *                    counted either here or in its worker's row, never in
 *                    both, so the two sum to all answered requests. It sits
 *                    after the cells so a minor-2 reader, which finds the
 *                    mask and cells at the same offsets, just ignores it; a
 *                    reader knows it is there when entry_size holds it.
 *
 *   Claiming (worker, at start, by name): scan the records in order; a
 *   published record with the same name and endpoint is the backend's; a
 *   free one is claimed by CAS 0 -> claimed, filled, published (release);
 *   a record being claimed is waited for (bounded), so two workers starting
 *   together end on one record. A reload that keeps a backend's name and
 *   endpoint keeps its record (and its counters); a new or changed backend
 *   takes a free record; records of removed backends stay (their counters
 *   keep their last values, up drops to 0). When every record is taken, the
 *   backend goes unrecorded (logged). The master frees records a dead
 *   claimer left half-claimed. Readers sum records with the same name and
 *   endpoint, should a bounded wait ever have produced two.
 */
#ifndef MB_SHM_LAYOUT_H
#define MB_SHM_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define MB_SHM_MAGIC        0x4d42524447534d31ull /* "MBRDGSM1" */
#define MB_SHM_LAYOUT_MAJOR 1
#define MB_SHM_LAYOUT_MINOR 3

#define MB_SHM_ALIGN        64 /* every section starts on a cache line */
#define MB_SHM_MAX_SECTIONS 16

enum mb_shm_state { MB_SHM_INITIALIZING = 0, MB_SHM_READY = 1, MB_SHM_RETIRED = 2 };

enum mb_shm_section_type {
    MB_SHM_SEC_WORKERS = 1,
    MB_SHM_SEC_COUNTERS = 2,
    MB_SHM_SEC_HISTOGRAMS = 3,
    MB_SHM_SEC_RATELIMIT = 4,
    MB_SHM_SEC_CACHE = 5,
    MB_SHM_SEC_BACKENDS = 6
};

struct mb_shm_section {
    uint32_t type; /* enum mb_shm_section_type; 0 = unused entry */
    uint32_t entry_size;
    uint64_t offset; /* from the start of the region */
    uint64_t count;  /* entries */
    uint32_t items;  /* per type: counters or histograms per row; else 0 */
    uint32_t _pad0;
};
_Static_assert(sizeof(struct mb_shm_section) == 32, "section directory entry");

struct mb_shm_header {
    uint64_t magic;
    uint16_t layout_major;
    uint16_t layout_minor;
    uint32_t header_size;
    uint64_t total_size;
    uint64_t generation; /* atomic */
    int32_t master_pid;
    uint32_t state; /* enum mb_shm_state; atomic, release/acquire */
    uint64_t birth_ms;
    uint64_t retired_ms; /* atomic */
    uint32_t worker_capacity;
    uint32_t nsections;
    uint64_t fold_seq;     /* atomic; odd while the master folds a row */
    uint64_t hash_seed[2]; /* random at creation; keys the rate-limit key hash */
    uint8_t _reserved[40];
    struct mb_shm_section sections[MB_SHM_MAX_SECTIONS];
};
_Static_assert(offsetof(struct mb_shm_header, layout_major) == 8, "header layout");
_Static_assert(offsetof(struct mb_shm_header, total_size) == 16, "header layout");
_Static_assert(offsetof(struct mb_shm_header, generation) == 24, "header layout");
_Static_assert(offsetof(struct mb_shm_header, state) == 36, "header layout");
_Static_assert(offsetof(struct mb_shm_header, birth_ms) == 40, "header layout");
_Static_assert(offsetof(struct mb_shm_header, worker_capacity) == 56, "header layout");
_Static_assert(offsetof(struct mb_shm_header, fold_seq) == 64, "header layout");
_Static_assert(offsetof(struct mb_shm_header, hash_seed) == 72, "header layout");
_Static_assert(offsetof(struct mb_shm_header, sections) == 128, "header layout");
_Static_assert(sizeof(struct mb_shm_header) == 640, "header size");
_Static_assert(sizeof(struct mb_shm_header) % MB_SHM_ALIGN == 0, "header keeps sections aligned");

enum mb_shm_worker_state {
    MB_WORKER_FREE = 0,     /* record unused */
    MB_WORKER_STARTING = 1, /* forked, not accepting yet */
    MB_WORKER_RUNNING = 2,  /* accepting */
    MB_WORKER_DRAINING = 3, /* told to stop: not accepting, finishing in-flight work */
    MB_WORKER_EXITED = 4    /* reaped; waiting for respawn */
};

struct mb_shm_worker {
    uint32_t state; /* enum mb_shm_worker_state */
    int32_t pid;
    uint32_t slot;
    uint32_t restarts;   /* respawns of this slot in this generation */
    uint64_t generation; /* config generation the worker serves */
    uint64_t start_ms;   /* wall clock */
    uint64_t heartbeat_ms;
    int32_t last_exit_status; /* wait status of the previous process in this record, -1 none */
    uint32_t _pad0;
    uint64_t connections; /* open client connections */
    uint8_t _pad1[8];
};
_Static_assert(sizeof(struct mb_shm_worker) == 64, "worker record is one cache line");
_Static_assert(offsetof(struct mb_shm_worker, generation) == 16, "worker layout");
_Static_assert(offsetof(struct mb_shm_worker, last_exit_status) == 40, "worker layout");
_Static_assert(offsetof(struct mb_shm_worker, connections) == 48, "worker layout");

/* Histogram bucket upper bounds in microseconds (Prometheus "le" values are
 * these / 1e6 seconds). Part of the layout: changing them bumps the major. */
#define MB_HIST_NBUCKETS 14
#define MB_HIST_BOUNDS_US                                                                          \
    {                                                                                              \
        500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,      \
            5000000, 10000000                                                                      \
    }

struct mb_shm_hist {
    uint64_t count;  /* observations, including those above the last bound */
    uint64_t sum_ns; /* sum of observed values */
    uint64_t bucket[MB_HIST_NBUCKETS];
};
_Static_assert(sizeof(struct mb_shm_hist) == 128, "histogram is two cache lines");

/* Rate-limit table slot (§5). 32 bytes: two slots per cache line, and the key
 * 16-byte aligned. */
struct mb_shm_rl_slot {
    uint64_t key_lo;
    uint64_t key_hi;
    uint64_t tat; /* atomic: 0 empty, bit 63 claimed, else TAT in ns */
    uint64_t _pad0;
};
_Static_assert(sizeof(struct mb_shm_rl_slot) == 32, "rate-limit slot");
_Static_assert(offsetof(struct mb_shm_rl_slot, tat) == 16, "rate-limit slot layout");

/* Cache area header (§6). 128 bytes: the read-only geometry on the first
 * cache line, the writers' hot `head` alone on the second. */
#define MB_SHM_CACHE_MAGIC 0x4d42434143484531ull /* "MBCACHE1" */
struct mb_shm_cache_hdr {
    uint64_t magic;
    uint32_t id;     /* 0 discovery, 1 response, 2 auth */
    uint32_t nslots; /* = the configured maximum of entries */
    uint64_t arena_size;
    uint64_t max_entry; /* larger values are not stored */
    uint8_t _pad0[32];
    uint64_t head; /* atomic: logical write position in the arena */
    uint8_t _pad1[56];
};
_Static_assert(sizeof(struct mb_shm_cache_hdr) == 128, "cache header");
_Static_assert(offsetof(struct mb_shm_cache_hdr, head) == 64, "cache head on its own line");

/* Cache slot (§6): one cache line. */
struct mb_shm_cache_slot {
    uint64_t ver; /* atomic seqlock word: 0 never used, even stable, odd being written */
    uint64_t key_lo;
    uint64_t key_hi;
    uint64_t pos; /* logical arena position of the value */
    uint64_t expires_ms;
    uint32_t len;
    uint32_t flags; /* 0 empty/deleted, 1 value, 2 lease */
    uint64_t stored_ms;
    uint64_t sum; /* hash of the value bytes */
};
_Static_assert(sizeof(struct mb_shm_cache_slot) == 64, "cache slot is one cache line");
_Static_assert(offsetof(struct mb_shm_cache_slot, len) == 40, "cache slot layout");

/* Backend stats record (§7): the fixed part; the up mask and the per-worker
 * cells follow it within the entry. */
#define MB_SHM_BACKEND_NAME      64
#define MB_SHM_BACKEND_ENDPOINT  192
#define MB_SHM_BACKEND_STATUSES  4 /* ok, error, timeout, unavailable */
#define MB_SHM_BACKEND_CLAIMED   (1ull << 63)
#define MB_SHM_BACKEND_PUBLISHED 1ull
struct mb_shm_backend {
    uint64_t state;                             /* atomic: 0 free, CLAIMED | claimer, PUBLISHED */
    uint64_t changed_ms;                        /* atomic */
    uint64_t requests[MB_SHM_BACKEND_STATUSES]; /* atomic add */
    uint64_t latency_us;                        /* atomic, CAS: EWMA */
    uint64_t _pad0;
    char name[MB_SHM_BACKEND_NAME];
    char endpoint[MB_SHM_BACKEND_ENDPOINT];
    /* uint64_t up[(items + 63) / 64]; struct mb_shm_backend_cell cells[items];
     * struct mb_shm_backend_methods methods; (minor 3) */
};
_Static_assert(sizeof(struct mb_shm_backend) == 320, "backend record fixed part");
_Static_assert(offsetof(struct mb_shm_backend, name) == 64, "backend record layout");

struct mb_shm_backend_cell {
    uint32_t in_flight;
    uint32_t conns_active;
    uint32_t conns_idle;
    uint32_t _pad0;
};
_Static_assert(sizeof(struct mb_shm_backend_cell) == 16, "backend cell");

/* Requests by method and outcome (§7, minor 3); the sizes are those of
 * shm/counters.h's enums (checked in shm/backends.c). */
#define MB_SHM_BACKEND_METHODS      16
#define MB_SHM_BACKEND_REQ_STATUSES 8
struct mb_shm_backend_methods {
    uint64_t n[MB_SHM_BACKEND_METHODS][MB_SHM_BACKEND_REQ_STATUSES]; /* atomic add */
};
_Static_assert(sizeof(struct mb_shm_backend_methods) == 1024, "backend request matrix");
_Static_assert(sizeof(struct mb_shm_backend) % 8 == 0 &&
                   sizeof(struct mb_shm_backend_cell) % 8 == 0,
               "the request matrix after the cells is 8-byte aligned");

#endif
