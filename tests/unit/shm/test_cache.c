/*
 * tests/unit/shm/test_cache.c — the shared caches (shm/cache.c) in one
 * process: store and lookup, TTL expiry, replacing a key, eviction order
 * (oldest value first, by slots and by arena space), oversize entries,
 * deletion, leases, a buffer too small, the repair of a slot left half
 * written by a dead process, counters per cache, a read-only attach, and
 * mb_cache_same against the write a lookup stamped.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/errors.h"
#include "shm/cache.h"
#include "shm/shm.h"
#include "tests/unit/shm/cache_test_util.h"

#define NOW 1000000ull

static char path[256];
static struct mb_shm *shm;

static void fini(void)
{
    mb_shm_close(&shm);
    unlink(path);
}

static struct mb_cache *setup(uint32_t slots, uint64_t arena, uint64_t max_entry)
{
    shm = cache_test_region(path, sizeof(path), "cache", slots, arena, max_entry);
    struct mb_cache *c = &shm->caches[MB_CACHE_RESPONSE];
    mb_cache_set_owner(c, 1);
    return c;
}

static struct mb_cache_key key_of(struct mb_cache *c, int i)
{
    char k[32];
    int n = snprintf(k, sizeof(k), "key-%d", i);
    return mb_cache_key(c, k, (size_t)n);
}

/* Looks key i up; returns the value as a string ("" on a miss). */
static const char *lookup(struct mb_cache *c, int i, uint64_t now)
{
    static char buf[8192];
    size_t len = 0;
    int rc = mb_cache_get(c, key_of(c, i), now, buf, sizeof(buf) - 1, &len);
    if (rc != 0)
        return "";
    buf[len] = '\0';
    return buf;
}

static void store(struct mb_cache *c, int i, const char *v, uint64_t ttl, uint64_t now)
{
    cr_assert_eq(mb_cache_put(c, key_of(c, i), v, strlen(v), ttl, now), 0, "store key %d", i);
}

Test(cache, store_and_lookup, .fini = fini)
{
    struct mb_cache *c = setup(64, 65536, 4096);
    cr_expect_str_empty(lookup(c, 1, NOW));
    store(c, 1, "one", 1000, NOW);
    store(c, 2, "two", 1000, NOW);
    cr_expect_str_eq(lookup(c, 1, NOW), "one");
    cr_expect_str_eq(lookup(c, 2, NOW), "two");
    cr_expect_str_empty(lookup(c, 3, NOW));
    cr_expect_eq(cache_test_ctr(shm, MB_CACHE_STAT_HITS, MB_CACHE_RESPONSE), 2);
    cr_expect_eq(cache_test_ctr(shm, MB_CACHE_STAT_MISSES, MB_CACHE_RESPONSE), 2);
    cr_expect_eq(cache_test_ctr(shm, MB_CACHE_STAT_STORES, MB_CACHE_RESPONSE), 2);
    cr_expect_eq(cache_test_ctr(shm, MB_CACHE_STAT_STORED_BYTES, MB_CACHE_RESPONSE), 6);
    /* Counted per cache: the others saw nothing. */
    cr_expect_eq(cache_test_ctr(shm, MB_CACHE_STAT_HITS, MB_CACHE_DISCOVERY), 0);
    cr_expect_eq(cache_test_ctr(shm, MB_CACHE_STAT_STORES, MB_CACHE_AUTH), 0);
    /* The same key in another cache is another entry. */
    struct mb_cache *a = &shm->caches[MB_CACHE_AUTH];
    char buf[16];
    size_t len;
    cr_expect_eq(mb_cache_get(a, key_of(c, 1), NOW, buf, sizeof(buf), &len), MB_DECLINED);
    struct mb_cache_stats st;
    mb_cache_stats(c, NOW, &st);
    cr_expect_eq(st.entries, 2);
    cr_expect_eq(st.bytes, 6);
    cr_expect_eq(st.slots, 64);
}

Test(cache, ttl_expiry, .fini = fini)
{
    struct mb_cache *c = setup(64, 65536, 4096);
    store(c, 1, "short", 100, NOW);
    store(c, 2, "long", 10000, NOW);
    cr_expect_str_eq(lookup(c, 1, NOW + 99), "short");
    cr_expect_str_empty(lookup(c, 1, NOW + 100), "expired exactly at now + ttl");
    cr_expect_str_eq(lookup(c, 2, NOW + 100), "long");
    struct mb_cache_stats st;
    mb_cache_stats(c, NOW + 100, &st);
    cr_expect_eq(st.entries, 1);
    cr_expect_eq(st.stale, 1);
    /* A TTL of 0 stores nothing. */
    cr_expect_eq(mb_cache_put(c, key_of(c, 3), "x", 1, 0, NOW), MB_DECLINED);
    cr_expect_str_empty(lookup(c, 3, NOW));
}

Test(cache, replace_keeps_one_entry, .fini = fini)
{
    struct mb_cache *c = setup(64, 65536, 4096);
    store(c, 7, "first", 1000, NOW);
    store(c, 7, "second", 1000, NOW + 1);
    cr_expect_str_eq(lookup(c, 7, NOW + 2), "second");
    struct mb_cache_stats st;
    mb_cache_stats(c, NOW + 2, &st);
    cr_expect_eq(st.entries, 1);
    cr_expect_eq(cache_test_ctr(shm, MB_CACHE_STAT_EVICTIONS, MB_CACHE_RESPONSE), 0);
}

/* With 8 slots, one probe window covers the whole table: the ninth key
 * pushes out the oldest value, and only it. */
Test(cache, eviction_by_slots_takes_the_oldest, .fini = fini)
{
    struct mb_cache *c = setup(8, 65536, 4096);
    for (int i = 0; i < 8; i++) {
        char v[16];
        snprintf(v, sizeof(v), "v%d", i);
        store(c, i, v, 100000, NOW + (uint64_t)i);
    }
    for (int i = 0; i < 8; i++)
        cr_assert_str_neq(lookup(c, i, NOW + 10), "", "key %d lost before the table was full", i);
    store(c, 100, "newest", 100000, NOW + 20);
    cr_expect_str_empty(lookup(c, 0, NOW + 21), "the oldest value should have gone");
    for (int i = 1; i < 8; i++)
        cr_expect_str_neq(lookup(c, i, NOW + 21), "", "key %d evicted instead of the oldest", i);
    cr_expect_str_eq(lookup(c, 100, NOW + 21), "newest");
    cr_expect_eq(cache_test_ctr(shm, MB_CACHE_STAT_EVICTIONS, MB_CACHE_RESPONSE), 1);
    store(c, 101, "next", 100000, NOW + 22);
    cr_expect_str_empty(lookup(c, 1, NOW + 23), "then the second oldest");
    cr_expect_str_neq(lookup(c, 2, NOW + 23), "");
    struct mb_cache_stats st;
    mb_cache_stats(c, NOW + 23, &st);
    cr_expect_eq(st.entries, 8, "never more entries than slots");
}

/* A ring of 4096 bytes holds four 1000-byte values; the fifth overwrites the
 * first one's bytes, which a lookup detects as a miss. */
Test(cache, eviction_by_arena_space, .fini = fini)
{
    struct mb_cache *c = setup(64, 4096, 2048);
    char v[1001];
    for (int i = 0; i < 5; i++) {
        memset(v, 'a' + i, 1000);
        v[1000] = '\0';
        store(c, i, v, 100000, NOW);
    }
    cr_expect_str_empty(lookup(c, 0, NOW), "overwritten bytes served");
    for (int i = 1; i < 5; i++) {
        const char *got = lookup(c, i, NOW);
        cr_expect_eq(strlen(got), 1000, "key %d", i);
        cr_expect_eq(got[0], 'a' + i);
        cr_expect_eq(got[999], 'a' + i);
    }
    cr_expect_eq(cache_test_ctr(shm, MB_CACHE_STAT_EVICTIONS, MB_CACHE_RESPONSE), 1);
}

Test(cache, oversize_entries_are_not_stored, .fini = fini)
{
    struct mb_cache *c = setup(64, 65536, 100);
    char v[102];
    memset(v, 'x', sizeof(v));
    cr_expect_eq(mb_cache_put(c, key_of(c, 1), v, 101, 1000, NOW), MB_DECLINED);
    cr_expect_str_empty(lookup(c, 1, NOW));
    cr_expect_eq(mb_cache_put(c, key_of(c, 2), v, 100, 1000, NOW), 0, "max_entry itself fits");
    cr_expect_eq(strlen(lookup(c, 2, NOW)), 100);
    cr_expect_eq(cache_test_ctr(shm, MB_CACHE_STAT_OVERSIZE, MB_CACHE_RESPONSE), 1);
    cr_expect_eq(cache_test_ctr(shm, MB_CACHE_STAT_STORES, MB_CACHE_RESPONSE), 1);
}

Test(cache, small_buffer_reports_the_size, .fini = fini)
{
    struct mb_cache *c = setup(64, 65536, 4096);
    store(c, 1, "0123456789", 1000, NOW);
    char buf[4];
    size_t len = 0;
    cr_expect_eq(mb_cache_get(c, key_of(c, 1), NOW, buf, sizeof(buf), &len), MB_AGAIN);
    cr_expect_eq(len, 10);
}

Test(cache, delete_removes_every_copy, .fini = fini)
{
    struct mb_cache *c = setup(64, 65536, 4096);
    store(c, 1, "one", 1000, NOW);
    store(c, 2, "two", 1000, NOW);
    cr_expect_eq(mb_cache_del(c, key_of(c, 1)), 1);
    cr_expect_str_empty(lookup(c, 1, NOW));
    cr_expect_str_eq(lookup(c, 2, NOW), "two");
    cr_expect_eq(mb_cache_del(c, key_of(c, 1)), 0);
    cr_expect_eq(cache_test_ctr(shm, MB_CACHE_STAT_INVALIDATIONS, MB_CACHE_RESPONSE), 1);
    store(c, 1, "again", 1000, NOW);
    cr_expect_str_eq(lookup(c, 1, NOW), "again");
}

Test(cache, leases, .fini = fini)
{
    struct mb_cache *c = setup(64, 65536, 4096);
    struct mb_cache_key k = key_of(c, 5);
    cr_expect_not(mb_cache_leased(c, k, NOW));
    cr_expect_eq(mb_cache_lease_take(c, k, 500, NOW), 1);
    cr_expect(mb_cache_leased(c, k, NOW));
    cr_expect_eq(mb_cache_lease_take(c, k, 500, NOW + 1), 0, "a held lease is not taken twice");
    cr_expect_str_empty(lookup(c, 5, NOW), "a lease is not a value");
    /* It expires by itself (a fetcher that died). */
    cr_expect_not(mb_cache_leased(c, k, NOW + 500));
    cr_expect_eq(mb_cache_lease_take(c, k, 500, NOW + 500), 1);
    mb_cache_lease_drop(c, k);
    cr_expect_not(mb_cache_leased(c, k, NOW + 501));
    /* Leases are not counted as stores or lookups. */
    cr_expect_eq(cache_test_ctr(shm, MB_CACHE_STAT_STORES, MB_CACHE_RESPONSE), 0);
    cr_expect_eq(cache_test_ctr(shm, MB_CACHE_STAT_HITS, MB_CACHE_RESPONSE), 0);
}

/* A writer that died between claim and publish: the slot stays odd and is
 * skipped (a miss, other keys still stored), until the master repairs it. */
Test(cache, repair_after_a_dead_writer, .fini = fini)
{
    struct mb_cache *c = setup(8, 65536, 4096);
    store(c, 1, "before", 100000, NOW);
    struct mb_cache dead = *c;
    mb_cache_set_owner(&dead, 3);
    struct mb_cache_write w;
    int rc;
    void *dst = mb_cache_put_begin(&dead, key_of(c, 1), 5, 100000, NOW, &w, &rc);
    cr_assert_not_null(dst);
    memcpy(dst, "after", 5); /* ... and never commits */
    struct mb_cache_stats st;
    mb_cache_stats(c, NOW, &st);
    cr_expect_eq(st.writing, 1);
    cr_expect_str_empty(lookup(c, 1, NOW), "a half-written slot is a miss, not a wait");
    for (int i = 10; i < 17; i++)
        store(c, i, "other", 100000, NOW + 1); /* the others still work */
    cr_expect_eq(mb_cache_repair(c, 2), 0, "repair only touches the dead owner's slots");
    mb_shm_worker_reaped(shm, 3, 9, true); /* what the master does */
    mb_cache_stats(c, NOW + 2, &st);
    cr_expect_eq(st.writing, 0);
    store(c, 1, "fresh", 100000, NOW + 3);
    cr_expect_str_eq(lookup(c, 1, NOW + 3), "fresh");
}

Test(cache, attach_read_only_sees_the_caches, .fini = fini)
{
    struct mb_cache *c = setup(64, 65536, 4096);
    store(c, 1, "one", 100000, NOW);
    struct mb_shm *ro = NULL;
    char err[256];
    cr_assert_eq(mb_shm_attach(path, &ro, err, sizeof(err)), 0, "%s", err);
    for (int i = 0; i < MB_CACHE_KINDS; i++) {
        cr_assert_not_null(ro->caches[i].hdr);
        cr_expect_eq(ro->caches[i].id, (uint32_t)i);
    }
    struct mb_cache_stats st;
    mb_cache_stats(&ro->caches[MB_CACHE_RESPONSE], NOW, &st);
    cr_expect_eq(st.entries, 1);
    cr_expect_eq(st.arena, 65536);
    mb_shm_close(&ro);
}

Test(cache, no_caches_when_not_sized)
{
    char p[256];
    shm_test_path(p, sizeof(p), "nocache");
    struct mb_shm *s = shm_test_create(p, 4);
    for (int i = 0; i < MB_CACHE_KINDS; i++)
        cr_expect_null(s->caches[i].hdr);
    char buf[8];
    size_t len;
    struct mb_cache_key k = {1, 2};
    cr_expect_eq(mb_cache_get(&s->caches[0], k, NOW, buf, sizeof(buf), &len), MB_ERR);
    cr_expect_eq(mb_cache_put(&s->caches[0], k, "x", 1, 10, NOW), MB_ERR);
    mb_shm_close(&s);
    unlink(p);
}

Test(cache, sizes_are_checked)
{
    struct mb_cache_size ok = {.slots = 8, .arena = 4096, .max_entry = 2048};
    cr_expect(mb_cache_size_valid(&ok));
    struct mb_cache_size big_entry = {.slots = 8, .arena = 4096, .max_entry = 2049};
    cr_expect_not(mb_cache_size_valid(&big_entry));
    struct mb_cache_size small = {.slots = 8, .arena = 1024, .max_entry = 16};
    cr_expect_not(mb_cache_size_valid(&small));
    struct mb_shm_params p = {.worker_capacity = 4};
    p.caches[1] = big_entry;
    struct mb_shm *s = NULL;
    char err[256] = "", pp[256];
    shm_test_path(pp, sizeof(pp), "badsize");
    cr_expect_eq(mb_shm_create(pp, &p, &s, err, sizeof(err)), MB_ERR);
    cr_expect(strstr(err, "response cache") != NULL, "%s", err);
}

/* mb_cache_same: yes while the stamped write is the live value, no once it
 * is replaced (even by the same bytes), deleted, expired, evicted from the
 * arena, or asked about another key; a yes counts as a hit. */
Test(cache, same_follows_the_stamped_write, .fini = fini)
{
    struct mb_cache *c = setup(64, 4096, 2048);
    char buf[2048];
    size_t len = 0;
    struct mb_cache_stamp st, st2;
    cr_expect_eq(mb_cache_get_stamped(c, key_of(c, 1), NOW, buf, sizeof(buf), &len, &st),
                 MB_DECLINED);
    cr_expect_eq(st.ver, 0, "a miss names no write");
    cr_expect_eq(mb_cache_same(c, key_of(c, 1), NOW, &st), MB_DECLINED);
    store(c, 1, "one", 1000, NOW);
    cr_assert_eq(mb_cache_get_stamped(c, key_of(c, 1), NOW, buf, sizeof(buf), &len, &st), 0);
    cr_expect_eq(len, 3);
    cr_expect_neq(st.ver, 0);
    uint64_t hits = cache_test_ctr(shm, MB_CACHE_STAT_HITS, MB_CACHE_RESPONSE);
    cr_expect_eq(mb_cache_same(c, key_of(c, 1), NOW + 1, &st), 0);
    cr_expect_eq(cache_test_ctr(shm, MB_CACHE_STAT_HITS, MB_CACHE_RESPONSE), hits + 1);
    cr_expect_eq(mb_cache_same(c, key_of(c, 2), NOW + 1, &st), MB_DECLINED, "another key");
    cr_expect_eq(mb_cache_same(c, key_of(c, 1), NOW + 1000, &st), MB_DECLINED, "expired");
    /* Replaced by identical bytes: another write, so no. */
    store(c, 1, "one", 1000, NOW + 2);
    cr_expect_eq(mb_cache_same(c, key_of(c, 1), NOW + 3, &st), MB_DECLINED, "replaced");
    cr_assert_eq(mb_cache_get_stamped(c, key_of(c, 1), NOW + 3, buf, sizeof(buf), &len, &st2), 0);
    cr_expect(st2.ver != st.ver || st2.slot != st.slot);
    cr_expect_eq(mb_cache_same(c, key_of(c, 1), NOW + 3, &st2), 0);
    cr_expect_eq(mb_cache_del(c, key_of(c, 1)), 1);
    cr_expect_eq(mb_cache_same(c, key_of(c, 1), NOW + 3, &st2), MB_DECLINED, "deleted");
    /* The ring going round over the value's bytes: no (4096 bytes hold
     * four 1000-byte values). */
    char v[1001];
    memset(v, 'x', 1000);
    v[1000] = '\0';
    store(c, 5, v, 100000, NOW);
    cr_assert_eq(mb_cache_get_stamped(c, key_of(c, 5), NOW, buf, sizeof(buf), &len, &st), 0);
    cr_expect_eq(mb_cache_same(c, key_of(c, 5), NOW, &st), 0);
    for (int i = 6; i < 10; i++)
        store(c, i, v, 100000, NOW);
    cr_expect_eq(mb_cache_same(c, key_of(c, 5), NOW, &st), MB_DECLINED, "bytes overwritten");
    /* A stamp naming a slot outside the table is refused, not followed. */
    struct mb_cache_stamp bad = {.ver = 2, .slot = 1u << 30};
    cr_expect_eq(mb_cache_same(c, key_of(c, 6), NOW, &bad), MB_DECLINED);
}
