/*
 * shm/shm.c — creating, attaching and closing the shared-memory region, and
 * the worker table (see shm.h for the contract, layout.h for the format).
 *
 * The master builds the whole region in a temporary file next to the target
 * path (mode 0600, blocks reserved with posix_fallocate so that a full tmpfs
 * fails here and not as a SIGBUS in a worker later), maps it, lays out the
 * header and the section directory, and renames it over the path. Attaching
 * maps the file read-only and checks everything a reader relies on before
 * trusting an offset: magic, layout major, sizes, and that every section lies
 * inside the file.
 */
#include "shm/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/time.h"
#include "shm/backends.h"
#include "shm/counters.h"

static uint64_t align_up(uint64_t v)
{
    return (v + MB_SHM_ALIGN - 1) & ~(uint64_t)(MB_SHM_ALIGN - 1);
}

static void add_section(struct mb_shm_header *h, uint64_t *off, uint32_t type, uint32_t entry_size,
                        uint64_t count, uint32_t items)
{
    struct mb_shm_section *s = &h->sections[h->nsections++];
    s->type = type;
    s->entry_size = entry_size;
    s->offset = *off;
    s->count = count;
    s->items = items;
    *off = align_up(*off + (uint64_t)entry_size * count);
}

/* Fills the header's sizes and section directory for params; returns the
 * region size. The order of sections is free (readers look them up by type). */
static uint64_t plan_layout(struct mb_shm_header *h, const struct mb_shm_params *p)
{
    uint64_t off = sizeof(*h);
    uint32_t rows = p->worker_capacity + 1;
    h->worker_capacity = p->worker_capacity;
    add_section(h, &off, MB_SHM_SEC_WORKERS, sizeof(struct mb_shm_worker), p->worker_capacity, 0);
    add_section(h, &off, MB_SHM_SEC_COUNTERS, align_up(MB_CTR__COUNT * sizeof(uint64_t)), rows,
                MB_CTR__COUNT);
    add_section(h, &off, MB_SHM_SEC_HISTOGRAMS, MB_HIST__COUNT * sizeof(struct mb_shm_hist), rows,
                MB_HIST__COUNT);
    if (p->ratelimit_capacity > 0)
        add_section(h, &off, MB_SHM_SEC_RATELIMIT, sizeof(struct mb_shm_rl_slot),
                    mb_ratelimit_slots_for(p->ratelimit_capacity), p->ratelimit_capacity);
    for (uint32_t i = 0; i < MB_CACHE_KINDS; i++)
        if (p->caches[i].slots > 0)
            add_section(h, &off, MB_SHM_SEC_CACHE, 1, mb_cache_area_bytes(&p->caches[i]), i);
    if (p->backend_capacity > 0)
        add_section(h, &off, MB_SHM_SEC_BACKENDS, mb_bstats_entry_size(p->worker_capacity),
                    p->backend_capacity, p->worker_capacity);
    return off;
}

/* 128 unpredictable bits; the clock and pid only if the kernel has none. */
static void fill_seed(uint64_t seed[2])
{
    if (getrandom(seed, 2 * sizeof(uint64_t), GRND_NONBLOCK) == 2 * sizeof(uint64_t))
        return;
    seed[0] = mb_time_mono_ns() ^ ((uint64_t)getpid() << 32);
    seed[1] = mb_time_wall_ms() * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)seed;
}

bool mb_shm_same_shape(const struct mb_shm *shm, const struct mb_shm_params *p)
{
    struct mb_shm_header plan;
    memset(&plan, 0, sizeof(plan));
    uint64_t size = plan_layout(&plan, p);
    return size == shm->hdr->total_size && plan.nsections == shm->hdr->nsections &&
           memcmp(plan.sections, shm->hdr->sections, sizeof(plan.sections)) == 0;
}

const struct mb_shm_section *mb_shm_section_find(const struct mb_shm *shm, uint32_t type)
{
    for (uint32_t i = 0; i < shm->hdr->nsections && i < MB_SHM_MAX_SECTIONS; i++)
        if (shm->hdr->sections[i].type == type)
            return &shm->hdr->sections[i];
    return NULL;
}

/* Frees a handle (not its mapping); NULL is fine. */
static void handle_free(struct mb_shm *shm)
{
    if (shm != NULL) {
        free(shm->path);
        free(shm);
    }
}

/* Points the struct's shortcuts at the sections; 0, or MB_ERR when a section
 * the gateway always creates is missing or malformed. */
static int bind_sections(struct mb_shm *shm, char *err, size_t errlen)
{
    const struct mb_shm_section *w = mb_shm_section_find(shm, MB_SHM_SEC_WORKERS);
    const struct mb_shm_section *c = mb_shm_section_find(shm, MB_SHM_SEC_COUNTERS);
    const struct mb_shm_section *h = mb_shm_section_find(shm, MB_SHM_SEC_HISTOGRAMS);
    if (w == NULL || c == NULL || h == NULL) {
        snprintf(err, errlen, "%s: a required section is missing", shm->path);
        return MB_ERR;
    }
    uint32_t cap = shm->hdr->worker_capacity;
    if (w->entry_size != sizeof(struct mb_shm_worker) || w->count != cap ||
        c->count != (uint64_t)cap + 1 || c->entry_size % sizeof(uint64_t) != 0 ||
        (uint64_t)c->items * sizeof(uint64_t) > c->entry_size || h->count != (uint64_t)cap + 1 ||
        h->entry_size % sizeof(struct mb_shm_hist) != 0 ||
        (uint64_t)h->items * sizeof(struct mb_shm_hist) > h->entry_size) {
        snprintf(err, errlen, "%s: malformed worker, counter or histogram section", shm->path);
        return MB_ERR;
    }
    char *base = shm->base;
    shm->worker_capacity = cap;
    shm->workers = (struct mb_shm_worker *)(base + w->offset);
    shm->nrows = cap + 1;
    shm->counters = (uint64_t *)(base + c->offset);
    shm->counter_stride = c->entry_size / sizeof(uint64_t);
    shm->ncounters = c->items;
    shm->hists = (struct mb_shm_hist *)(base + h->offset);
    shm->hist_stride = h->entry_size / sizeof(struct mb_shm_hist);
    shm->nhists = h->items;

    const struct mb_shm_section *rl = mb_shm_section_find(shm, MB_SHM_SEC_RATELIMIT);
    memset(&shm->ratelimit, 0, sizeof(shm->ratelimit));
    shm->ratelimit.owner = MB_RL_OWNER_NONE;
    shm->ratelimit.seed[0] = shm->hdr->hash_seed[0];
    shm->ratelimit.seed[1] = shm->hdr->hash_seed[1];
    if (rl != NULL) {
        if (rl->entry_size != sizeof(struct mb_shm_rl_slot) || rl->count < 16 ||
            (rl->count & (rl->count - 1)) != 0) {
            snprintf(err, errlen, "%s: malformed rate-limit section", shm->path);
            return MB_ERR;
        }
        shm->ratelimit.slots = (struct mb_shm_rl_slot *)(base + rl->offset);
        shm->ratelimit.nslots = rl->count;
        shm->ratelimit.capacity = rl->items;
    }
    for (uint32_t i = 0; i < MB_CACHE_KINDS; i++) {
        memset(&shm->caches[i], 0, sizeof(shm->caches[i]));
        shm->caches[i].owner = MB_CACHE_OWNER_NONE;
    }
    for (uint32_t i = 0; i < shm->hdr->nsections && i < MB_SHM_MAX_SECTIONS; i++) {
        const struct mb_shm_section *cs = &shm->hdr->sections[i];
        if (cs->type != MB_SHM_SEC_CACHE)
            continue;
        struct mb_cache tmp;
        if (cs->entry_size != 1 || cs->items >= MB_CACHE_KINDS ||
            mb_cache_bind(&tmp, base + cs->offset, cs->count, shm, shm->hdr->hash_seed) != 0 ||
            tmp.id != cs->items) {
            snprintf(err, errlen, "%s: malformed cache section", shm->path);
            return MB_ERR;
        }
        shm->caches[cs->items] = tmp;
    }
    return 0;
}

/* A handle on the mapping at base (size bytes) of path, its sections bound.
 * Returns 0 with *out, or MB_ERR with a message (nothing left allocated). */
static int handle_new(struct mb_shm **out, const char *path, void *base, size_t size, int readonly,
                      char *err, size_t errlen)
{
    struct mb_shm *shm = calloc(1, sizeof(*shm));
    if (shm == NULL || (shm->path = strdup(path)) == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        free(shm);
        return MB_ERR;
    }
    shm->base = base;
    shm->size = size;
    shm->readonly = readonly;
    shm->hdr = base;
    if (bind_sections(shm, err, errlen) != 0) {
        handle_free(shm);
        return MB_ERR;
    }
    *out = shm;
    return 0;
}

/* Every section inside the region and aligned, without overflow. */
static int check_sections(const struct mb_shm_header *h, uint64_t size)
{
    if (h->nsections > MB_SHM_MAX_SECTIONS)
        return MB_ERR;
    for (uint32_t i = 0; i < h->nsections; i++) {
        const struct mb_shm_section *s = &h->sections[i];
        if (s->type == 0)
            continue;
        if (s->offset < sizeof(*h) || s->offset > size || s->offset % MB_SHM_ALIGN != 0)
            return MB_ERR;
        if (s->entry_size != 0 && s->count > (size - s->offset) / s->entry_size)
            return MB_ERR;
    }
    return 0;
}

/* Fills a region's tables from its predecessor (mb_shm_create_successor),
 * before anybody can see it. */
static int inherit(struct mb_shm *shm, const struct mb_shm *prev, struct mb_shm_carry *carry,
                   char *err, size_t errlen)
{
    mb_counters_totals(prev, carry->totals);
    mb_counters_carry(shm, carry->totals, NULL);
    if (mb_ratelimit_copy(&shm->ratelimit, &prev->ratelimit, mb_time_mono_ns(),
                          &carry->buckets_copied, &carry->buckets_dropped) != 0) {
        snprintf(err, errlen, "%s: copying the rate-limit buckets: out of memory", shm->path);
        return MB_ERR;
    }
    return 0;
}

static int create_region(const char *path, const struct mb_shm_params *p, const struct mb_shm *prev,
                         struct mb_shm_carry *carry, struct mb_shm **out, char *err, size_t errlen)
{
    struct mb_shm *shm = NULL;
    char *tmp = NULL;
    int fd = -1;
    void *base = MAP_FAILED;
    struct mb_shm_header plan;

    *out = NULL;
    if (p->worker_capacity < 1 || p->worker_capacity > MB_SHM_MAX_WORKER_RECORDS) {
        snprintf(err, errlen, "%s: worker table capacity %u out of range 1..%u", path,
                 p->worker_capacity, MB_SHM_MAX_WORKER_RECORDS);
        return MB_ERR;
    }
    for (uint32_t i = 0; i < MB_CACHE_KINDS; i++)
        if (p->caches[i].slots > 0 && !mb_cache_size_valid(&p->caches[i])) {
            snprintf(err, errlen, "%s: %s cache size out of range (%u slots, %llu bytes)", path,
                     mb_cache_name(i), p->caches[i].slots, (unsigned long long)p->caches[i].arena);
            return MB_ERR;
        }
    if (p->ratelimit_capacity > MB_RL_MAX_CAPACITY) {
        snprintf(err, errlen, "%s: rate-limit capacity %u over the maximum %u", path,
                 p->ratelimit_capacity, MB_RL_MAX_CAPACITY);
        return MB_ERR;
    }
    memset(&plan, 0, sizeof(plan));
    uint64_t size = plan_layout(&plan, p);

    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path + 1) : 0;
    if (asprintf(&tmp, "%.*s.%s.XXXXXX", dirlen, path, slash ? slash + 1 : path) == -1) {
        tmp = NULL;
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd == -1) {
        snprintf(err, errlen, "%s: cannot create a temporary file %s: %s", path, tmp,
                 strerror(errno));
        free(tmp);
        tmp = NULL;
        goto fail;
    }
    if (fchmod(fd, 0600) == -1) {
        snprintf(err, errlen, "%s: fchmod 0600: %s", tmp, strerror(errno));
        goto fail;
    }
    if (ftruncate(fd, (off_t)size) == -1) {
        snprintf(err, errlen, "%s: ftruncate to %llu bytes: %s", tmp, (unsigned long long)size,
                 strerror(errno));
        goto fail;
    }
    int rc = posix_fallocate(fd, 0, (off_t)size);
    if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL) {
        snprintf(err, errlen, "%s: reserving %llu bytes: %s", tmp, (unsigned long long)size,
                 strerror(rc));
        goto fail;
    }
    base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        snprintf(err, errlen, "%s: mmap %llu bytes: %s", tmp, (unsigned long long)size,
                 strerror(errno));
        goto fail;
    }

    /* The file is new and zero-filled: every record is FREE, every row 0. */
    struct mb_shm_header *h = base;
    memcpy(h, &plan, sizeof(plan));
    h->magic = MB_SHM_MAGIC;
    h->layout_major = MB_SHM_LAYOUT_MAJOR;
    h->layout_minor = MB_SHM_LAYOUT_MINOR;
    h->header_size = sizeof(*h);
    h->total_size = size;
    h->master_pid = (int32_t)getpid();
    h->birth_ms = mb_time_wall_ms();
    /* A successor keeps the seed: its copied buckets must be found under
     * the keys the new workers compute for the same clients. */
    if (prev != NULL)
        memcpy(h->hash_seed, prev->hdr->hash_seed, sizeof(h->hash_seed));
    else
        fill_seed(h->hash_seed);
    for (uint32_t i = 0; i < h->nsections; i++)
        if (h->sections[i].type == MB_SHM_SEC_CACHE)
            mb_cache_format((char *)base + h->sections[i].offset, h->sections[i].items,
                            &p->caches[h->sections[i].items]);
    __atomic_store_n(&h->state, MB_SHM_INITIALIZING, __ATOMIC_RELEASE);

    if (handle_new(&shm, path, base, size, 0, err, errlen) != 0)
        goto fail;
    for (uint32_t i = 0; i < shm->worker_capacity; i++)
        shm->workers[i].last_exit_status = -1;
    if (prev != NULL && inherit(shm, prev, carry, err, errlen) != 0)
        goto fail;

    if (rename(tmp, path) == -1) {
        snprintf(err, errlen, "%s: rename from %s: %s", path, tmp, strerror(errno));
        goto fail;
    }
    free(tmp);
    close(fd);
    *out = shm;
    return 0;

fail:
    handle_free(shm);
    if (base != MAP_FAILED)
        munmap(base, size);
    if (fd != -1)
        close(fd);
    if (tmp != NULL) {
        unlink(tmp);
        free(tmp);
    }
    return MB_ERR;
}

int mb_shm_create(const char *path, const struct mb_shm_params *p, struct mb_shm **out, char *err,
                  size_t errlen)
{
    return create_region(path, p, NULL, NULL, out, err, errlen);
}

int mb_shm_create_successor(const struct mb_shm *prev, const struct mb_shm_params *p,
                            struct mb_shm_carry *carry, struct mb_shm **out, char *err,
                            size_t errlen)
{
    carry->buckets_copied = carry->buckets_dropped = 0;
    return create_region(prev->path, p, prev, carry, out, err, errlen);
}

void mb_shm_publish(struct mb_shm *shm)
{
    __atomic_store_n(&shm->hdr->state, MB_SHM_READY, __ATOMIC_RELEASE);
}

void mb_shm_retire(struct mb_shm *shm)
{
    __atomic_store_n(&shm->hdr->retired_ms, mb_time_wall_ms(), __ATOMIC_RELAXED);
    __atomic_store_n(&shm->hdr->state, MB_SHM_RETIRED, __ATOMIC_RELEASE);
}

int mb_shm_attach(const char *path, struct mb_shm **out, char *err, size_t errlen)
{
    struct mb_shm *shm = NULL;
    void *base = MAP_FAILED;
    size_t size = 0;
    struct stat st;

    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        if (errno == ENOENT)
            snprintf(err, errlen,
                     "%s: no such file (is the gateway running? the region is at shm.path of "
                     "its config)",
                     path);
        else
            snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return MB_ERR;
    }
    if (fstat(fd, &st) == -1) {
        snprintf(err, errlen, "%s: fstat: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < sizeof(struct mb_shm_header)) {
        snprintf(err, errlen, "%s: not an mcp-bridge shm region (%s)", path,
                 S_ISREG(st.st_mode) ? "too small" : "not a regular file");
        goto fail;
    }
    size = (size_t)st.st_size;
    base = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
        goto fail;
    }
    const struct mb_shm_header *h = base;
    if (h->magic != MB_SHM_MAGIC) {
        snprintf(err, errlen, "%s: not an mcp-bridge shm region (bad magic)", path);
        goto fail;
    }
    if (h->layout_major != MB_SHM_LAYOUT_MAJOR) {
        snprintf(err, errlen, "%s: shm layout major %u, this tool reads %u", path,
                 (unsigned)h->layout_major, (unsigned)MB_SHM_LAYOUT_MAJOR);
        goto fail;
    }
    if (h->total_size > size || h->header_size < sizeof(*h) ||
        check_sections(h, h->total_size) != 0) {
        snprintf(err, errlen, "%s: damaged shm region (sizes or section directory out of range)",
                 path);
        goto fail;
    }
    if (handle_new(&shm, path, base, size, 1, err, errlen) != 0)
        goto fail;
    close(fd);
    *out = shm;
    return 0;

fail:
    handle_free(shm);
    if (base != MAP_FAILED)
        munmap(base, size);
    close(fd);
    return MB_ERR;
}

void mb_shm_close(struct mb_shm **shmp)
{
    struct mb_shm *shm = *shmp;
    if (shm == NULL)
        return;
    munmap(shm->base, shm->size);
    free(shm->path);
    free(shm);
    *shmp = NULL;
}

void mb_shm_set_generation(struct mb_shm *shm, uint64_t generation)
{
    __atomic_store_n(&shm->hdr->generation, generation, __ATOMIC_RELEASE);
}

/* ---------------------------------------------------------------- worker table */

int mb_shm_worker_alloc(struct mb_shm *shm, uint32_t slot, uint64_t generation)
{
    for (uint32_t i = 0; i < shm->worker_capacity; i++) {
        struct mb_shm_worker *w = &shm->workers[i];
        if (__atomic_load_n(&w->state, __ATOMIC_ACQUIRE) != MB_WORKER_FREE)
            continue;
        __atomic_store_n(&w->pid, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&w->slot, slot, __ATOMIC_RELAXED);
        __atomic_store_n(&w->restarts, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&w->generation, generation, __ATOMIC_RELAXED);
        __atomic_store_n(&w->start_ms, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&w->heartbeat_ms, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&w->last_exit_status, -1, __ATOMIC_RELAXED);
        __atomic_store_n(&w->connections, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&w->state, MB_WORKER_STARTING, __ATOMIC_RELEASE);
        return (int)i;
    }
    return -1;
}

void mb_shm_worker_respawn(struct mb_shm *shm, uint32_t index)
{
    struct mb_shm_worker *w = &shm->workers[index];
    __atomic_store_n(&w->pid, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&w->restarts, __atomic_load_n(&w->restarts, __ATOMIC_RELAXED) + 1,
                     __ATOMIC_RELAXED);
    __atomic_store_n(&w->start_ms, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&w->heartbeat_ms, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&w->connections, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&w->state, MB_WORKER_STARTING, __ATOMIC_RELEASE);
    mb_counters_add(shm, mb_counters_master_row(shm), MB_CTR_WORKER_RESTARTS, 1);
}

void mb_shm_worker_started(struct mb_shm *shm, uint32_t index, int32_t pid)
{
    struct mb_shm_worker *w = &shm->workers[index];
    uint64_t now = mb_time_wall_ms();
    __atomic_store_n(&w->start_ms, now, __ATOMIC_RELAXED);
    __atomic_store_n(&w->heartbeat_ms, now, __ATOMIC_RELAXED);
    __atomic_store_n(&w->pid, pid, __ATOMIC_RELEASE);
}

void mb_shm_worker_reaped(struct mb_shm *shm, uint32_t index, int wait_status, bool free_record)
{
    struct mb_shm_worker *w = &shm->workers[index];
    __atomic_store_n(&w->last_exit_status, (int32_t)wait_status, __ATOMIC_RELAXED);
    __atomic_store_n(&w->connections, 0, __ATOMIC_RELAXED);
    mb_counters_fold(shm, index);
    mb_ratelimit_repair(&shm->ratelimit, index);
    for (uint32_t i = 0; i < MB_CACHE_KINDS; i++)
        mb_cache_repair(&shm->caches[i], index);
    mb_shm_backends_repair(shm, index);
    __atomic_store_n(&w->state, free_record ? MB_WORKER_FREE : MB_WORKER_EXITED, __ATOMIC_RELEASE);
}

void mb_shm_worker_set_state(struct mb_shm *shm, uint32_t index, uint32_t state)
{
    __atomic_store_n(&shm->workers[index].state, state, __ATOMIC_RELEASE);
}

void mb_shm_worker_heartbeat(struct mb_shm *shm, uint32_t index)
{
    __atomic_store_n(&shm->workers[index].heartbeat_ms, mb_time_wall_ms(), __ATOMIC_RELAXED);
}

void mb_shm_worker_conn_add(struct mb_shm *shm, uint32_t index, int64_t delta)
{
    struct mb_shm_worker *w = &shm->workers[index];
    __atomic_store_n(&w->connections,
                     __atomic_load_n(&w->connections, __ATOMIC_RELAXED) + (uint64_t)delta,
                     __ATOMIC_RELAXED);
}

const char *mb_shm_worker_state_name(uint32_t state)
{
    switch (state) {
    case MB_WORKER_FREE:
        return "free";
    case MB_WORKER_STARTING:
        return "starting";
    case MB_WORKER_RUNNING:
        return "running";
    case MB_WORKER_DRAINING:
        return "draining";
    case MB_WORKER_EXITED:
        return "exited";
    }
    return "unknown";
}

const char *mb_shm_state_name(uint32_t state)
{
    switch (state) {
    case MB_SHM_INITIALIZING:
        return "initializing";
    case MB_SHM_READY:
        return "ready";
    case MB_SHM_RETIRED:
        return "retired";
    }
    return "unknown";
}
