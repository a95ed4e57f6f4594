/*
 * worker/cache_auth.c — verified tokens in the shm auth cache (see
 * cache_auth.h).
 *
 * Value format (host byte order, the region never leaves the machine):
 *   "MBA1"  digest[32]  expires_wall_ms (u64)  plen (u16) principal
 *   slen (u16) scopes
 * The cache key is the first 16 bytes of the digest run through the
 * region's keyed hash; the full digest in the value makes a hit depend on
 * all 256 bits.
 */
#include "worker/cache_auth.h"

#include <openssl/evp.h>
#include <string.h>

#include "common/errors.h"

#define MAGIC   "MBA1"
#define HDR_LEN (4 + 32 + 8)

static int digest(const char *token, size_t len, unsigned char out[32])
{
    unsigned int n = 0;
    return EVP_Digest(token, len, out, &n, EVP_sha256(), NULL) == 1 && n == 32 ? 0 : MB_ERR;
}

static struct mb_cache_key key_of(const struct mb_cache *c, const unsigned char d[32])
{
    return mb_cache_key(c, d, 32);
}

int mb_cacheauth_put(struct mb_cache *c, const char *token, size_t len, const char *principal,
                     const char *scopes, uint64_t expires_wall_ms, uint64_t ttl_ms,
                     uint64_t now_mono_ms, uint64_t now_wall_ms)
{
    unsigned char d[32], buf[HDR_LEN + 4 + MB_CACHEAUTH_PRINCIPAL_MAX + MB_CACHEAUTH_SCOPES_MAX];
    size_t plen = strlen(principal), slen = scopes ? strlen(scopes) : 0;
    if (plen >= MB_CACHEAUTH_PRINCIPAL_MAX || slen >= MB_CACHEAUTH_SCOPES_MAX)
        return MB_DECLINED;
    if (expires_wall_ms != 0) {
        if (expires_wall_ms <= now_wall_ms)
            return MB_DECLINED;
        if (expires_wall_ms - now_wall_ms < ttl_ms)
            ttl_ms = expires_wall_ms - now_wall_ms;
    }
    if (digest(token, len, d) != 0)
        return MB_ERR;
    size_t n = 0;
    uint16_t l16;
    memcpy(buf, MAGIC, 4);
    memcpy(buf + 4, d, 32);
    memcpy(buf + 36, &expires_wall_ms, 8);
    n = HDR_LEN;
    l16 = (uint16_t)plen;
    memcpy(buf + n, &l16, 2);
    memcpy(buf + n + 2, principal, plen);
    n += 2 + plen;
    l16 = (uint16_t)slen;
    memcpy(buf + n, &l16, 2);
    if (slen)
        memcpy(buf + n + 2, scopes, slen);
    n += 2 + slen;
    return mb_cache_put(c, key_of(c, d), buf, n, ttl_ms, now_mono_ms);
}

int mb_cacheauth_get(struct mb_cache *c, const char *token, size_t len, uint64_t now_mono_ms,
                     uint64_t now_wall_ms, struct mb_cacheauth_entry *out)
{
    unsigned char d[32], buf[HDR_LEN + 4 + MB_CACHEAUTH_PRINCIPAL_MAX + MB_CACHEAUTH_SCOPES_MAX];
    size_t n = 0;
    if (digest(token, len, d) != 0 ||
        mb_cache_get(c, key_of(c, d), now_mono_ms, buf, sizeof(buf), &n) != 0)
        return MB_DECLINED;
    uint16_t plen, slen;
    if (n < HDR_LEN + 4 || memcmp(buf, MAGIC, 4) != 0 || memcmp(buf + 4, d, 32) != 0)
        return MB_DECLINED;
    memcpy(&out->expires_wall_ms, buf + 36, 8);
    memcpy(&plen, buf + HDR_LEN, 2);
    if (plen >= MB_CACHEAUTH_PRINCIPAL_MAX || HDR_LEN + 4 + (size_t)plen > n)
        return MB_DECLINED;
    memcpy(&slen, buf + HDR_LEN + 2 + plen, 2);
    if (slen >= MB_CACHEAUTH_SCOPES_MAX || HDR_LEN + 4 + (size_t)plen + slen != n)
        return MB_DECLINED;
    if (out->expires_wall_ms != 0 && out->expires_wall_ms <= now_wall_ms)
        return MB_DECLINED;
    memcpy(out->principal, buf + HDR_LEN + 2, plen);
    out->principal[plen] = '\0';
    memcpy(out->scopes, buf + HDR_LEN + 4 + plen, slen);
    out->scopes[slen] = '\0';
    return 0;
}

void mb_cacheauth_forget(struct mb_cache *c, const char *token, size_t len)
{
    unsigned char d[32];
    if (digest(token, len, d) == 0)
        mb_cache_del(c, key_of(c, d));
}
