/*
 * tests/unit/shm/cache_test_util.h — a region with shared caches of a given
 * geometry for the cache unit tests (test_cache.c, test_cache_stress.c),
 * and the sums of their counters.
 */
#ifndef MB_TESTS_UNIT_SHM_CACHE_UTIL_H
#define MB_TESTS_UNIT_SHM_CACHE_UTIL_H

#include <criterion/criterion.h>
#include <unistd.h>

#include "shm/cache.h"
#include "shm/counters.h"
#include "shm/shm.h"
#include "tests/unit/shm/shm_test_util.h"

/* A region of 16 worker records with one cache of each kind, all of the
 * same geometry. */
static inline struct mb_shm *cache_test_region(char *path, size_t len, const char *tag,
                                               uint32_t slots, uint64_t arena, uint64_t max_entry)
{
    struct mb_shm_params p = {.worker_capacity = 16};
    for (int i = 0; i < MB_CACHE_KINDS; i++)
        p.caches[i] =
            (struct mb_cache_size){.slots = slots, .arena = arena, .max_entry = max_entry};
    shm_test_path(path, len, tag);
    struct mb_shm *shm = NULL;
    char err[256] = "";
    cr_assert_eq(mb_shm_create(path, &p, &shm, err, sizeof(err)), 0, "mb_shm_create: %s", err);
    for (int i = 0; i < MB_CACHE_KINDS; i++)
        cr_assert_not_null(shm->caches[i].hdr, "cache %d not laid out", i);
    return shm;
}

static inline uint64_t cache_test_ctr(const struct mb_shm *shm, enum mb_cache_stat st, uint32_t id)
{
    return mb_counters_sum(shm, mb_counters_cache_id(st, id));
}

#endif
