/*
 * worker/cache_auth.h — the auth cache (caching.auth_cache): verified
 * credentials kept in the shm auth cache (shm/cache.h) so that a token
 * checked by one worker is not checked again by another until the entry's
 * TTL ends. The key is the SHA-256 of the token; the value holds that
 * digest (checked on every hit), the principal, its scopes and the token's
 * own expiry. The token itself is never stored.
 *
 * Built for the authentication issue, which calls it; the TTL of an entry is
 * min(caching.auth_cache.ttl, the time left before the token expires).
 */
#ifndef MB_WORKER_CACHE_AUTH_H
#define MB_WORKER_CACHE_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "shm/cache.h"

#define MB_CACHEAUTH_PRINCIPAL_MAX 256
#define MB_CACHEAUTH_SCOPES_MAX    2048

struct mb_cacheauth_entry {
    char principal[MB_CACHEAUTH_PRINCIPAL_MAX];
    char scopes[MB_CACHEAUTH_SCOPES_MAX]; /* space-separated, as in OAuth */
    uint64_t expires_wall_ms;             /* the token's expiry; 0 = none */
};

/*
 * Stores a verified token. now_mono_ms: CLOCK_MONOTONIC ms (the cache's
 * clock); now_wall_ms: wall clock ms (the token's). Returns 0, MB_DECLINED
 * (the token already expired, or principal/scopes too long), MB_AGAIN (no
 * slot) or MB_ERR (no cache, out of memory).
 */
int mb_cacheauth_put(struct mb_cache *c, const char *token, size_t len, const char *principal,
                     const char *scopes, uint64_t expires_wall_ms, uint64_t ttl_ms,
                     uint64_t now_mono_ms, uint64_t now_wall_ms);
/* Looks a token up: 0 and *out filled, or MB_DECLINED (unknown, expired,
 * or the token's own expiry passed). */
int mb_cacheauth_get(struct mb_cache *c, const char *token, size_t len, uint64_t now_mono_ms,
                     uint64_t now_wall_ms, struct mb_cacheauth_entry *out);
/* Forgets a token (revoked). */
void mb_cacheauth_forget(struct mb_cache *c, const char *token, size_t len);

#endif
