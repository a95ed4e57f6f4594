/*
 * tests/unit/worker/test_cache_keys.c — worker/cache_keys.c: canonical
 * JSON (key order and white space do not matter, everything else does),
 * response keys (backend, method, name, arguments, scope each change the
 * key), the backend configuration hash, what a result allows (isError,
 * cacheScope public with ttlMs), cache_tools globs and tool annotations.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/errors.h"
#include "conf/conf.h"
#include "shm/shm.h"
#include "worker/cache_keys.h"

static char *canon(const char *json)
{
    cJSON *v = cJSON_Parse(json);
    cr_assert_not_null(v, "%s", json);
    struct mb_buf b = {0};
    cr_assert_eq(mb_cachekey_canonical(v, &b), 0);
    cJSON_Delete(v);
    char *s = strndup(b.data, b.len);
    mb_buf_free(&b);
    return s;
}

Test(cache_keys, canonical_ignores_key_order_and_white_space)
{
    char *a = canon("{\"b\":1,\"a\":{\"y\":[1,2,{\"q\":true,\"p\":null}],\"x\":\"s\"}}");
    char *b = canon(" { \"a\" : { \"x\" : \"s\" , \"y\" : [ 1 , 2 , {\"p\":null,\"q\":true} ] } ,"
                    "\n\"b\" : 1 } ");
    cr_expect_str_eq(a, b);
    cr_expect_str_eq(a, "{\"a\":{\"x\":\"s\",\"y\":[1,2,{\"p\":null,\"q\":true}]},\"b\":1}");
    free(a);
    free(b);
    /* Array order, values and strings do matter. */
    a = canon("{\"a\":[1,2]}");
    b = canon("{\"a\":[2,1]}");
    cr_expect_str_neq(a, b);
    free(a);
    free(b);
    a = canon("{\"a\":\"x\\\"y\"}");
    cr_expect_str_eq(a, "{\"a\":\"x\\\"y\"}");
    free(a);
    struct mb_buf e = {0};
    cr_expect_eq(mb_cachekey_canonical(NULL, &e), 0);
    cr_expect_eq(e.len, 2);
    mb_buf_free(&e);
}

static char path[256];
static struct mb_shm *shm;

static void fini(void)
{
    mb_shm_close(&shm);
    unlink(path);
}

/* The raw shortcut takes text only when it is byte for byte what the tree
 * canonicalizes to (it may decline canonical text it does not prove, such as
 * fractions: the tree path handles those). */
Test(cache_keys, canonical_raw_only_when_already_canonical)
{
    static const char *const texts[] = {
        "{\"a\":1,\"b\":[true,false,null,\"x y\"],\"c\":{}}",
        "{\"b\":1,\"a\":2}",
        "{\"a\": 1}",
        "{\"a\":\"\\n\"}",
        "{\"a\":1.5}",
        "{\"a\":1e2}",
        "{\"a\":-0}",
        "{\"a\":1234567890}",
        "{\"a\":1234567890123456}",
        "{\"a\":-123456789}",
        "{\"ab\":1,\"a\":2}",
        "{\"a\":1,\"ab\":2}",
        "{\"a\":1,\"a\":2}",
        "{\"m\":{\"z\":1,\"y\":2}}",
        "[]",
        "{\"message\":\"hello\"}",
    };
    int taken = 0;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        struct mb_buf raw = {0}, tree = {0};
        cJSON *v = cJSON_Parse(texts[i]);
        cr_assert_not_null(v, "%s", texts[i]);
        cr_assert_eq(mb_cachekey_canonical(v, &tree), 0);
        int rc = mb_cachekey_canonical_raw(texts[i], strlen(texts[i]), &raw);
        if (rc == 0) {
            taken++;
            cr_expect(raw.len == tree.len && memcmp(raw.data, tree.data, raw.len) == 0,
                      "%s: raw %.*s, tree %.*s", texts[i], (int)raw.len, raw.data, (int)tree.len,
                      tree.data);
        } else {
            cr_expect_eq(rc, MB_DECLINED, "%s", texts[i]);
            cr_expect_eq(raw.len, 0);
        }
        mb_buf_free(&raw);
        mb_buf_free(&tree);
        cJSON_Delete(v);
    }
    cr_expect_eq(taken, 8);
    struct mb_buf none = {0};
    cr_expect_eq(mb_cachekey_canonical_raw(NULL, 0, &none), 0);
    cr_expect(none.len == 2 && memcmp(none.data, "{}", 2) == 0);
    mb_buf_free(&none);
}

static const struct mb_cache *cache(void)
{
    struct mb_shm_params p = {.worker_capacity = 2};
    p.caches[MB_CACHE_RESPONSE] = (struct mb_cache_size){16, 4096, 1024};
    snprintf(path, sizeof(path), "/tmp/mb-cachekeys-%d", (int)getpid());
    char err[256];
    cr_assert_eq(mb_shm_create(path, &p, &shm, err, sizeof(err)), 0, "%s", err);
    return &shm->caches[MB_CACHE_RESPONSE];
}

static struct mb_cache_key rkey(const struct mb_cache *c, const char *backend, const char *method,
                                const char *name, const char *args, const char *scope)
{
    cJSON *a = args ? cJSON_Parse(args) : NULL;
    struct mb_cache_key k;
    struct mb_buf t = {0};
    cr_assert_eq(mb_cachekey_canonical(a, &t), 0);
    cr_assert_eq(mb_cachekey_response(c, backend, 7, method, name, t.data, t.len, scope, &k), 0);
    mb_buf_free(&t);
    cJSON_Delete(a);
    return k;
}

static bool same(struct mb_cache_key a, struct mb_cache_key b)
{
    return a.lo == b.lo && a.hi == b.hi;
}

Test(cache_keys, response_key_parts, .fini = fini)
{
    const struct mb_cache *c = cache();
    struct mb_cache_key k = rkey(c, "b", "tools/call", "echo", "{\"m\":1,\"n\":2}", "127.0.0.1");
    cr_expect(same(k, rkey(c, "b", "tools/call", "echo", "{ \"n\":2, \"m\":1 }", "127.0.0.1")));
    cr_expect_not(same(k, rkey(c, "b2", "tools/call", "echo", "{\"m\":1,\"n\":2}", "127.0.0.1")));
    cr_expect_not(
        same(k, rkey(c, "b", "resources/read", "echo", "{\"m\":1,\"n\":2}", "127.0.0.1")));
    cr_expect_not(same(k, rkey(c, "b", "tools/call", "echo2", "{\"m\":1,\"n\":2}", "127.0.0.1")));
    cr_expect_not(same(k, rkey(c, "b", "tools/call", "echo", "{\"m\":1,\"n\":3}", "127.0.0.1")));
    cr_expect_not(same(k, rkey(c, "b", "tools/call", "echo", "{\"m\":1,\"n\":2}", "127.0.0.2")));
    cr_expect_not(same(k, rkey(c, "b", "tools/call", "echo", "{\"m\":1,\"n\":2}", "")));
    /* Field boundaries: "ab"+"c" is not "a"+"bc". */
    cr_expect_not(same(rkey(c, "ab", "tools/call", "c", NULL, ""),
                       rkey(c, "a", "tools/call", "bc", NULL, "")));
    /* The layout of cache_keys.h, byte for byte (confhash in 16 hex digits). */
    char bytes[128];
    int n = snprintf(bytes, sizeof(bytes), "r%cb%c%016llx%ctools/call%cecho%c{}%c10.0.0.1", 0, 0,
                     0xdeadbeef0badf00dULL, 0, 0, 0, 0);
    struct mb_cache_key kl;
    cr_assert_eq(mb_cachekey_response(c, "b", 0xdeadbeef0badf00dULL, "tools/call", "echo", "{}", 2,
                                      "10.0.0.1", &kl),
                 0);
    cr_expect(same(mb_cache_key(c, bytes, (size_t)n), kl));
    struct mb_cache_key d1 = mb_cachekey_discovery(c, "b", 7, "tools/list");
    cr_expect_not(same(d1, mb_cachekey_discovery(c, "b", 8, "tools/list")), "config hash");
    cr_expect_not(same(d1, mb_cachekey_discovery(c, "b", 7, "prompts/list")));
}

Test(cache_keys, backend_hash_follows_the_config)
{
    char *cmd1[] = {"srv", "--stdio"}, *cmd2[] = {"srv", "--stdio", "--tools", "3"};
    struct mb_conf_backend a = {.name = "b", .cwd = ".", .command = {cmd1, 2}};
    struct mb_conf_backend b = a;
    cr_expect_eq(mb_cachekey_backend_hash(&a), mb_cachekey_backend_hash(&b));
    b.command = (struct mb_conf_strv){cmd2, 4};
    cr_expect_neq(mb_cachekey_backend_hash(&a), mb_cachekey_backend_hash(&b));
    b = a;
    b.transport = MB_TRANSPORT_HTTP;
    cr_expect_neq(mb_cachekey_backend_hash(&a), mb_cachekey_backend_hash(&b));
}

Test(cache_keys, result_verdicts)
{
    uint64_t ttl;
    const char *ok = "{\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}";
    cr_expect_eq(mb_cachekey_result(ok, strlen(ok), &ttl), MB_CACHEKEY_PRIVATE);
    const char *err = "{\"content\":[],\"isError\":true}";
    cr_expect_eq(mb_cachekey_result(err, strlen(err), &ttl), MB_CACHEKEY_NEVER);
    const char *noerr = "{\"content\":[],\"isError\":false}";
    cr_expect_eq(mb_cachekey_result(noerr, strlen(noerr), &ttl), MB_CACHEKEY_PRIVATE);
    /* A 2026-07-28 reply marked public with a TTL. */
    const char *pub = "{\"contents\":[],\"ttlMs\":5000,\"cacheScope\":\"public\"}";
    cr_expect_eq(mb_cachekey_result(pub, strlen(pub), &ttl), MB_CACHEKEY_PUBLIC);
    cr_expect_eq(ttl, 5000);
    const char *pub0 = "{\"contents\":[],\"ttlMs\":0,\"cacheScope\":\"public\"}";
    cr_expect_eq(mb_cachekey_result(pub0, strlen(pub0), &ttl), MB_CACHEKEY_PRIVATE,
                 "ttlMs 0 is immediately stale");
    const char *priv = "{\"contents\":[],\"ttlMs\":5000,\"cacheScope\":\"private\"}";
    cr_expect_eq(mb_cachekey_result(priv, strlen(priv), &ttl), MB_CACHEKEY_PRIVATE);
    const char *puberr = "{\"isError\":true,\"ttlMs\":5000,\"cacheScope\":\"public\"}";
    cr_expect_eq(mb_cachekey_result(puberr, strlen(puberr), &ttl), MB_CACHEKEY_NEVER);
    /* The same verdicts from members found while validating the message
     * around the result (router.c's single pass). */
    const char *all[] = {ok, err, noerr, pub, pub0, priv, puberr, "[1]", "\"s\""};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        char msg[256];
        snprintf(msg, sizeof(msg), "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":%s}", all[i]);
        static const char *const top[] = {"result"};
        struct mb_json_raw res, m[MB_CACHEKEY_RESULT_MEMBERS];
        struct mb_json_nest nest = {0, mb_cachekey_result_names, MB_CACHEKEY_RESULT_MEMBERS, m,
                                    false};
        cr_assert_eq(mb_json_valid_members(msg, strlen(msg), false, top, 1, &res, &nest), 0);
        uint64_t t1, t2;
        cr_expect_eq(mb_cachekey_result_of(nest.found ? m : NULL, &t1),
                     mb_cachekey_result(all[i], strlen(all[i]), &t2), "%s", all[i]);
        cr_expect_eq(t1, t2, "%s", all[i]);
    }
}

Test(cache_keys, cache_tools_globs_and_annotations)
{
    char *v[] = {"echo", "get_*", "test://static/*"};
    struct mb_conf_strv tools = {v, 3};
    cr_expect(mb_cachekey_listed(&tools, "echo"));
    cr_expect(mb_cachekey_listed(&tools, "get_weather"));
    cr_expect(mb_cachekey_listed(&tools, "test://static/a"));
    cr_expect_not(mb_cachekey_listed(&tools, "echo2"));
    cr_expect_not(mb_cachekey_listed(&tools, "set_x"));
    cJSON *list = cJSON_Parse(
        "[{\"name\":\"a\",\"annotations\":{\"readOnlyHint\":true,\"idempotentHint\":true}},"
        "{\"name\":\"b\",\"annotations\":{\"readOnlyHint\":true}},"
        "{\"name\":\"c\"},"
        "{\"name\":\"d\",\"annotations\":{\"readOnlyHint\":true,\"idempotentHint\":false}}]");
    cJSON *names = mb_cachekey_annotated(list);
    cr_assert_not_null(names);
    cr_expect_eq(cJSON_GetArraySize(names), 1);
    cr_expect(mb_cachekey_has(names, "a"));
    cr_expect_not(mb_cachekey_has(names, "b"));
    cr_expect_not(mb_cachekey_has(NULL, "a"));
    cJSON_Delete(names);
    cJSON_Delete(list);
}
