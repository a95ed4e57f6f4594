/*
 * tests/unit/worker/test_cache_auth.c — worker/cache_auth.c: verified
 * tokens in the shm auth cache: principal and scopes back for the same
 * token, nothing for another one, the token's own expiry and the cache TTL
 * honoured, forgetting, and the token's bytes never stored in the region.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/errors.h"
#include "shm/shm.h"
#include "worker/cache_auth.h"

#define MONO 5000000ull
#define WALL 1700000000000ull

static char path[256];
static struct mb_shm *shm;

static void fini(void)
{
    mb_shm_close(&shm);
    unlink(path);
}

static struct mb_cache *cache(void)
{
    struct mb_shm_params p = {.worker_capacity = 2};
    p.caches[MB_CACHE_AUTH] = (struct mb_cache_size){64, 65536, 4096};
    snprintf(path, sizeof(path), "/tmp/mb-cacheauth-%d", (int)getpid());
    char err[256];
    cr_assert_eq(mb_shm_create(path, &p, &shm, err, sizeof(err)), 0, "%s", err);
    return &shm->caches[MB_CACHE_AUTH];
}

static const char TOKEN[] = "eyJhbGciOiJIUzI1NiJ9.secret-token-bytes-XYZZY";

Test(cache_auth, store_and_find, .fini = fini)
{
    struct mb_cache *c = cache();
    cr_assert_eq(mb_cacheauth_put(c, TOKEN, strlen(TOKEN), "alice", "mcp:read mcp:write", 0, 60000,
                                  MONO, WALL),
                 0);
    struct mb_cacheauth_entry e;
    cr_assert_eq(mb_cacheauth_get(c, TOKEN, strlen(TOKEN), MONO + 1, WALL, &e), 0);
    cr_expect_str_eq(e.principal, "alice");
    cr_expect_str_eq(e.scopes, "mcp:read mcp:write");
    cr_expect_eq(e.expires_wall_ms, 0);
    cr_expect_eq(mb_cacheauth_get(c, "other", 5, MONO + 1, WALL, &e), MB_DECLINED);
    cr_expect_eq(mb_cacheauth_get(c, TOKEN, strlen(TOKEN) - 1, MONO + 1, WALL, &e), MB_DECLINED);
    /* The cache TTL. */
    cr_expect_eq(mb_cacheauth_get(c, TOKEN, strlen(TOKEN), MONO + 60000, WALL, &e), MB_DECLINED);
}

Test(cache_auth, token_expiry_caps_the_ttl, .fini = fini)
{
    struct mb_cache *c = cache();
    struct mb_cacheauth_entry e;
    cr_assert_eq(
        mb_cacheauth_put(c, TOKEN, strlen(TOKEN), "bob", "", WALL + 1000, 60000, MONO, WALL), 0);
    cr_expect_eq(mb_cacheauth_get(c, TOKEN, strlen(TOKEN), MONO + 999, WALL + 999, &e), 0);
    cr_expect_eq(e.expires_wall_ms, WALL + 1000);
    cr_expect_str_empty(e.scopes);
    cr_expect_eq(mb_cacheauth_get(c, TOKEN, strlen(TOKEN), MONO + 1000, WALL + 1000, &e),
                 MB_DECLINED);
    /* An expired token is not stored at all. */
    cr_expect_eq(mb_cacheauth_put(c, "t2", 2, "bob", "", WALL, 60000, MONO, WALL), MB_DECLINED);
}

Test(cache_auth, forget, .fini = fini)
{
    struct mb_cache *c = cache();
    struct mb_cacheauth_entry e;
    cr_assert_eq(mb_cacheauth_put(c, TOKEN, strlen(TOKEN), "alice", "s", 0, 60000, MONO, WALL), 0);
    mb_cacheauth_forget(c, TOKEN, strlen(TOKEN));
    cr_expect_eq(mb_cacheauth_get(c, TOKEN, strlen(TOKEN), MONO, WALL, &e), MB_DECLINED);
}

Test(cache_auth, the_token_is_never_stored, .fini = fini)
{
    struct mb_cache *c = cache();
    cr_assert_eq(mb_cacheauth_put(c, TOKEN, strlen(TOKEN), "alice", "s", 0, 60000, MONO, WALL), 0);
    cr_expect_null(memmem(shm->base, shm->size, "XYZZY", 5), "token bytes found in the region");
    cr_expect_not_null(memmem(shm->base, shm->size, "alice", 5));
}

Test(cache_auth, too_long_is_refused, .fini = fini)
{
    struct mb_cache *c = cache();
    char big[MB_CACHEAUTH_PRINCIPAL_MAX + 1];
    memset(big, 'p', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cr_expect_eq(mb_cacheauth_put(c, TOKEN, strlen(TOKEN), big, "", 0, 60000, MONO, WALL),
                 MB_DECLINED);
}
