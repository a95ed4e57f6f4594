/*
 * tests/unit/conf/test_keys.c — conf/keys.c: the key table is consistent, its
 * defaults are the contract's (../shared/gateway.contract.yaml, loaded with
 * every feature switched on), and the rows of features not built yet already
 * decode into the right fields, so turning a feature on is flipping bits.
 *
 * Criterion runs each test in its own process, so a test that switches
 * features on with mb_conf_key_set_supported() affects only itself.
 */
#include "common/errors.h"
#include "common/log.h"
#include "conf/conf.h"
#include "conf/keys.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void enable_all(void)
{
    for (size_t i = 0; i < mb_conf_keys_count(); i++)
        cr_assert_eq(mb_conf_key_set_supported(mb_conf_key_at(i)->path, true), MB_OK);
}

static struct mb_conf *load_ok(const char *text)
{
    struct mb_conf *c = NULL;
    char err[512] = "";
    cr_assert_eq(mb_conf_load_string("t.yaml", text, &c, err, sizeof(err)), MB_OK, "%s", err);
    return c;
}

static void load_fails(const char *text, const char *want)
{
    struct mb_conf *c = NULL;
    char err[512] = "";
    cr_expect_eq(mb_conf_load_string("t.yaml", text, &c, err, sizeof(err)), MB_ERR);
    cr_expect_str_eq(err, want, "\n got: %s\nwant: %s", err, want);
}

/* The path of the section or list a key sits in ("" at the top). */
static void parent_of(const char *path, char *out, size_t len)
{
    snprintf(out, len, "%s", path);
    char *dot = strrchr(out, '.');
    if (dot == NULL) {
        out[0] = '\0';
        return;
    }
    *dot = '\0';
    size_t n = strlen(out);
    if (n >= 2 && strcmp(out + n - 2, "[]") == 0)
        out[n - 2] = '\0';
}

Test(keys, table_is_consistent)
{
    size_t n = mb_conf_keys_count();
    cr_assert_gt(n, 100, "the contract has well over 100 keys");
    cr_expect_null(mb_conf_key_at(n));
    for (size_t i = 0; i < n; i++) {
        const struct mb_conf_key *k = mb_conf_key_at(i);
        char parent[256];

        cr_expect_eq(mb_conf_key_find(k->path), k, "%s: duplicate path", k->path);
        cr_expect(k->doc != NULL && k->doc[0] != '\0', "%s: no meaning", k->path);
        cr_expect_str_neq(mb_conf_type_name(k->type), "?", "%s", k->path);
        parent_of(k->path, parent, sizeof(parent));
        if (parent[0] != '\0') {
            const struct mb_conf_key *p = mb_conf_key_find(parent);
            cr_expect_not_null(p, "%s: no row for its parent %s", k->path, parent);
            if (p != NULL) {
                cr_expect(p->type == MB_CONF_SECTION || p->type == MB_CONF_LIST, "%s", k->path);
                /* A supported key under an unsupported parent is unreachable,
                 * unless the parent is entered for its "off" value. */
                cr_expect(!k->supported || p->supported || p->off != NULL,
                          "%s is supported but %s is not", k->path, p->path);
            }
        }
        if (k->type == MB_CONF_ENUM || k->type == MB_CONF_WORD)
            cr_expect_not_null(k->words, "%s: an enum without words", k->path);
        if (k->type == MB_CONF_INT)
            cr_expect_not_null(k->min, "%s: integers need a lower limit", k->path);
        if (k->type == MB_CONF_SIZE) {
            uint64_t v;
            cr_expect(k->min == NULL || mb_conf_parse_size(k->min, &v) == MB_OK, "%s", k->path);
            cr_expect(k->max == NULL || mb_conf_parse_size(k->max, &v) == MB_OK, "%s", k->path);
        }
        if (k->type == MB_CONF_DURATION) {
            mb_msec_t v;
            cr_expect(k->min == NULL || mb_conf_parse_duration(k->min, &v) == MB_OK, "%s", k->path);
            cr_expect(k->max == NULL || mb_conf_parse_duration(k->max, &v) == MB_OK, "%s", k->path);
        }
        if (k->type == MB_CONF_LIST)
            cr_expect_gt(k->elem_size, 0, "%s", k->path);
        if (k->required)
            cr_expect_not_null(strstr(k->path, "[]."),
                               "%s: only list entries have required "
                               "keys",
                               k->path);
        if (k->supported)
            cr_expect_null(k->off, "%s: a supported key has no off value", k->path);
    }
    cr_expect_eq(mb_conf_key_set_supported("no.such.key", true), MB_ERR);
}

/* Exactly the features issue 2 built are on; anything else is a deliberate
 * change that must come with its feature. */
Test(keys, supported_set_is_the_foundation)
{
    static const char *const built[] = {"workers",
                                        "pid_file",
                                        "shm",
                                        "shm.path",
                                        "logging",
                                        "logging.level",
                                        "logging.error_log",
                                        "logging.access_log",
                                        "metrics",
                                        "metrics.enabled",
                                        "metrics.listen",
                                        "metrics.listen.address",
                                        "metrics.listen.port",
                                        "metrics.path",
                                        "server",
                                        "server.listen",
                                        "server.listen[].address",
                                        "server.listen[].port",
                                        "server.paths",
                                        "server.read_buffer_size",
                                        "server.write_buffer_size",
                                        "server.websocket",
                                        "server.websocket.read_buffer_size",
                                        "server.websocket.write_buffer_size",
                                        "server.websocket.ping_interval",
                                        "server.max_message_size",
                                        "server.max_connections",
                                        "server.idle_timeout",
                                        "server.shutdown_timeout",
                                        "resources",
                                        "resources.cpu_affinity",
                                        "rate_limit",
                                        "rate_limit.enabled",
                                        "rate_limit.algorithm",
                                        "rate_limit.requests_per_sec",
                                        "rate_limit.burst",
                                        "rate_limit.key",
                                        "rate_limit.capacity",
                                        "rate_limit.storage",
                                        "rate_limit.memcached",
                                        "rate_limit.memcached.servers",
                                        "rate_limit.memcached.pool_size",
                                        "rate_limit.memcached.timeout",
                                        "rate_limit.memcached.lease",
                                        "rate_limit.memcached.on_error",
                                        "rate_limit.overrides",
                                        "rate_limit.overrides[].principal",
                                        "rate_limit.overrides[].tool",
                                        "rate_limit.overrides[].requests_per_sec",
                                        "rate_limit.overrides[].burst",
                                        "backends",
                                        "backends[].name",
                                        "backends[].transport",
                                        "backends[].command",
                                        "backends[].env",
                                        "backends[].cwd",
                                        "backends[].request_timeout",
                                        "backends[].endpoints",
                                        "backends[].endpoints[].url",
                                        "backends[].endpoints[].weight",
                                        "backends[].headers",
                                        "connection_pool",
                                        "connection_pool.enabled",
                                        "connection_pool.max_idle_conns",
                                        "connection_pool.max_conns_per_host",
                                        "connection_pool.max_idle_conns_per_host",
                                        "connection_pool.idle_conn_timeout",
                                        "connection_pool.response_header_timeout",
                                        "connection_pool.keep_alive",
                                        "connection_pool.keep_alive_timeout",
                                        "routing",
                                        "routing.prefix",
                                        "routing.separator",
                                        "routing.request_timeout",
                                        "backends[].cache_tools",
                                        "caching",
                                        "caching.enabled",
                                        "caching.response_cache",
                                        "caching.response_cache.enabled",
                                        "caching.response_cache.ttl",
                                        "caching.response_cache.max_size",
                                        "caching.response_cache.max_entry_size",
                                        "caching.response_cache.cache_annotated",
                                        "caching.discovery_cache",
                                        "caching.discovery_cache.enabled",
                                        "caching.discovery_cache.ttl",
                                        "caching.auth_cache",
                                        "caching.auth_cache.enabled",
                                        "caching.auth_cache.ttl",
                                        "caching.auth_cache.max_size"};
    size_t on = 0;
    for (size_t i = 0; i < mb_conf_keys_count(); i++)
        on += mb_conf_key_at(i)->supported;
    cr_expect_eq(on, sizeof(built) / sizeof(built[0]));
    for (size_t i = 0; i < sizeof(built) / sizeof(built[0]); i++) {
        const struct mb_conf_key *k = mb_conf_key_find(built[i]);
        cr_assert_not_null(k, "%s", built[i]);
        cr_expect(k->supported, "%s should be supported", built[i]);
    }
}

Test(keys, flipping_a_bit_turns_a_key_on)
{
    load_fails("auth:\n  enabled: true\n", "t.yaml:2:3: auth.enabled: not supported yet");
    cr_assert_eq(mb_conf_key_set_supported("auth.enabled", true), MB_OK);
    struct mb_conf *c = load_ok("auth:\n  enabled: true\n");
    cr_expect(c->auth.enabled);
    mb_conf_free(&c);
    /* Only that key: its neighbours in the section stay refused. */
    load_fails("auth:\n  enabled: true\n  policies: [{allow: [x]}]\n",
               "t.yaml:3:3: auth.policies: not supported yet");
    load_fails("routing:\n  health_check_interval: 5s\n",
               "t.yaml:2:3: routing.health_check_interval: not supported yet");
}

/* Compares field by field, through the table, two configurations' values of
 * every key outside lists. */
static void expect_same_values(const struct mb_conf *a, const struct mb_conf *b)
{
    for (size_t i = 0; i < mb_conf_keys_count(); i++) {
        const struct mb_conf_key *k = mb_conf_key_at(i);
        const char *fa = (const char *)a + k->offset, *fb = (const char *)b + k->offset;

        if (strstr(k->path, "[]") != NULL)
            continue;
        switch (k->type) {
        case MB_CONF_SECTION:
        case MB_CONF_MAP:
            break;
        case MB_CONF_LIST:
            if (strcmp(k->path, "backends") != 0)
                cr_expect_eq(*(const size_t *)((const char *)a + k->count_offset),
                             *(const size_t *)((const char *)b + k->count_offset), "%s", k->path);
            break;
        case MB_CONF_STRING:
        case MB_CONF_WORD: {
            const char *sa = *(char *const *)fa, *sb = *(char *const *)fb;
            cr_expect((sa == NULL && sb == NULL) || (sa && sb && strcmp(sa, sb) == 0),
                      "%s: \"%s\" vs \"%s\"", k->path, sa ? sa : "(null)", sb ? sb : "(null)");
            break;
        }
        case MB_CONF_STRLIST: {
            const struct mb_conf_strv *va = (const void *)fa, *vb = (const void *)fb;
            cr_expect_eq(va->n, vb->n, "%s", k->path);
            for (size_t j = 0; j < va->n && j < vb->n; j++)
                cr_expect_str_eq(va->v[j], vb->v[j], "%s[%zu]", k->path, j);
            break;
        }
        default:
            cr_expect_eq(memcmp(fa, fb, k->width), 0, "%s differs", k->path);
            break;
        }
    }
}

Test(keys, defaults_are_the_contracts)
{
    const char *path = "../shared/gateway.contract.yaml";
    if (access(path, R_OK) != 0)
        cr_skip_test("%s not found (run from the repository root)", path);
    enable_all();

    struct mb_conf *contract = NULL, *defaults = load_ok("");
    char err[512] = "";
    cr_assert_eq(mb_conf_load(path, &contract, err, sizeof(err)), MB_OK, "%s", err);
    expect_same_values(contract, defaults);
    cr_expect_eq(defaults->rate_limit.enabled, true, "switched on: the contract's default");
    cr_expect_eq(defaults->metrics.enabled, true);
    cr_expect_eq(defaults->connection_pool.enabled, true);

    /* Its backends are examples; they decode all the same. */
    cr_assert_eq(contract->nbackends, 2);
    const struct mb_conf_backend *demo = &contract->backends[0], *remote = &contract->backends[1];
    cr_expect_str_eq(demo->name, "demo");
    cr_expect_eq(demo->transport, MB_TRANSPORT_STDIO);
    cr_assert_eq(demo->command.n, 2);
    cr_expect_str_eq(demo->command.v[0], "./build/mcp-bridge-testserver");
    cr_expect_str_eq(demo->command.v[1], "--stdio");
    cr_expect_str_eq(demo->cwd, ".");
    cr_expect_eq(demo->env.n, 0);
    cr_expect_str_eq(remote->name, "remote");
    cr_expect_eq(remote->transport, MB_TRANSPORT_HTTP);
    cr_assert_eq(remote->nendpoints, 1);
    cr_expect_str_eq(remote->endpoints[0].url, "http://127.0.0.1:3001/mcp");
    cr_expect_eq(remote->endpoints[0].weight, 1);
    cr_expect_eq(remote->tls.verify, true);
    cr_expect_str_eq(remote->tls.ca_file, "");
    cr_expect_eq(remote->request_timeout, 60000);
    cr_expect_eq(remote->session, MB_SESSION_SHARED);
    cr_expect_eq(remote->health_check.method, MB_HEALTH_PING);
    mb_conf_free(&contract);
    mb_conf_free(&defaults);
}

Test(keys, every_row_decodes_into_its_field)
{
    enable_all();
    setenv("MB_T_SECRET", "s3cr3t", 1);
    struct mb_conf *c = load_ok(
        "logging: {access_log: /tmp/access.log}\n"
        "server:\n"
        "  listen:\n"
        "    - port: 8443\n"
        "      tls:\n"
        "        cert_file: cert.pem\n"
        "        key_file: key.pem\n"
        "        min_version: \"1.3\"\n"
        "        client_ca_file: ca.pem\n"
        "        client_auth: require\n"
        "  allowed_origins: [https://a.example]\n"
        "  allowed_hosts: [a.example, b.example]\n"
        "connection_pool:\n"
        "  enabled: true\n"
        "  max_idle_conns: 11\n"
        "  max_conns_per_host: 12\n"
        "  max_idle_conns_per_host: 13\n"
        "  idle_conn_timeout: 14s\n"
        "  response_header_timeout: 15s\n"
        "  tls_handshake_timeout: 16s\n"
        "  keep_alive: 17s\n"
        "  keep_alive_timeout: 18s\n"
        "backends:\n"
        "  - name: local_1\n"
        "    transport: stdio\n"
        "    command: [/bin/server, --flag]\n"
        "    env: {A: \"1\", B: \"${MB_T_SECRET}\"}\n"
        "    cwd: /srv\n"
        "    cache_tools: [search]\n"
        "  - name: remote-2\n"
        "    transport: websocket\n"
        "    endpoints:\n"
        "      - url: ws://127.0.0.1:1/mcp\n"
        "      - {url: ws://127.0.0.1:2/mcp, weight: 7}\n"
        "    headers: {Authorization: \"Bearer ${MB_T_SECRET}\"}\n"
        "    tls: {ca_file: ca.pem, verify: false, server_name: srv}\n"
        "    request_timeout: 5s\n"
        "    session: per_client\n"
        "    health_check: {method: http_get, path: /health}\n"
        "rate_limit:\n"
        "  enabled: true\n"
        "  algorithm: token_bucket\n"
        "  requests_per_sec: 2.5\n"
        "  burst: 3\n"
        "  key: ip\n"
        "  capacity: 1024\n"
        "  storage: memcached\n"
        "  memcached:\n"
        "    servers: [\"10.0.0.1:11211\", \"10.0.0.2:11211\"]\n"
        "    pool_size: 4\n"
        "    timeout: 20ms\n"
        "    lease: 7\n"
        "    on_error: deny\n"
        "  overrides:\n"
        "    - {principal: \"ci-*\", tool: \"demo__*\", requests_per_sec: 10, burst: 20}\n"
        "    - {requests_per_sec: 0.5, burst: 1}\n"
        "caching:\n"
        "  enabled: true\n"
        "  response_cache: {enabled: true, ttl: 1s, max_size: 2, max_entry_size: 1KiB,"
        " cache_annotated: true}\n"
        "  discovery_cache: {enabled: true, ttl: 3s}\n"
        "  auth_cache: {enabled: true, ttl: 4s, max_size: 5}\n"
        "routing:\n"
        "  strategy: session_hash\n"
        "  prefix: never\n"
        "  separator: \"::\"\n"
        "  request_timeout: 9s\n"
        "  backend_limits: {max_conns: 21, max_idle_conns: 22}\n"
        "  health_check_interval: 23s\n"
        "  health_check_timeout: 24ms\n"
        "  healthy_threshold: 25\n"
        "  unhealthy_threshold: 26\n"
        "  circuit_breaker: {failure_threshold: 27, cooldown: 28s, half_open_requests: 29}\n"
        "  retries: {max: 3, budget_ratio: 0.25}\n"
        "auth:\n"
        "  enabled: true\n"
        "  providers:\n"
        "    - type: api_key\n"
        "      keys:\n"
        "        - name: alice\n"
        "          sha256: "
        "\"00ff10203040506070808090a0b0c0d0e0f0aabbccddeeff0123456789ABCDEF\"\n"
        "    - type: jwt\n"
        "      issuer: https://issuer.example\n"
        "      audience: mcp-bridge\n"
        "      algorithms: [RS256, ES256]\n"
        "      jwks_file: /etc/jwks.json\n"
        "      key_file: /etc/key.pem\n"
        "      secret: ${MB_T_SECRET}\n"
        "      principal_claim: email\n"
        "      scopes_claim: scp\n"
        "      leeway: 1m\n"
        "    - type: oauth2_introspection\n"
        "      url: https://issuer.example/introspect\n"
        "      client_id: gw\n"
        "      client_secret: ${MB_T_SECRET}\n"
        "  resource_metadata:\n"
        "    resource: https://gw.example\n"
        "    authorization_servers: [https://issuer.example]\n"
        "    scopes_supported: [mcp:read, mcp:write]\n"
        "  policies:\n"
        "    - principals: [alice, \"scope:mcp:read\"]\n"
        "      allow: [\"demo__*\"]\n"
        "      deny: [\"demo__delete_*\"]\n"
        "sessions: {key_file: /etc/session.key, ttl: 2h}\n"
        "metrics:\n"
        "  enabled: true\n"
        "  listen: {address: \"::1\", port: 9191}\n"
        "  path: /m\n"
        "resources: {memory_limit: 2GiB}\n");

    cr_expect_str_eq(c->logging.access_log, "/tmp/access.log");
    const struct mb_conf_tls *tls = &c->server.listen[0].tls;
    cr_expect(tls->enabled);
    cr_expect_str_eq(tls->cert_file, "cert.pem");
    cr_expect_str_eq(tls->key_file, "key.pem");
    cr_expect_str_eq(tls->min_version, "1.3");
    cr_expect_str_eq(tls->client_ca_file, "ca.pem");
    cr_expect_eq(tls->client_auth, MB_CLIENT_AUTH_REQUIRE);
    cr_expect_eq(c->server.allowed_origins.n, 1);
    cr_expect_str_eq(c->server.allowed_hosts.v[1], "b.example");

    cr_expect(c->connection_pool.enabled);
    cr_expect_eq(c->connection_pool.max_idle_conns, 11);
    cr_expect_eq(c->connection_pool.max_conns_per_host, 12);
    cr_expect_eq(c->connection_pool.max_idle_conns_per_host, 13);
    cr_expect_eq(c->connection_pool.idle_conn_timeout, 14000);
    cr_expect_eq(c->connection_pool.response_header_timeout, 15000);
    cr_expect_eq(c->connection_pool.tls_handshake_timeout, 16000);
    cr_expect_eq(c->connection_pool.keep_alive, 17000);
    cr_expect_eq(c->connection_pool.keep_alive_timeout, 18000);

    cr_assert_eq(c->nbackends, 2);
    const struct mb_conf_backend *b0 = &c->backends[0], *b1 = &c->backends[1];
    cr_expect_str_eq(b0->name, "local_1");
    cr_expect_eq(b0->transport, MB_TRANSPORT_STDIO);
    cr_expect_str_eq(b0->command.v[1], "--flag");
    cr_assert_eq(b0->env.n, 2);
    cr_expect_str_eq(b0->env.keys[1], "B");
    cr_expect_str_eq(b0->env.values[1], "s3cr3t");
    cr_expect_str_eq(b0->cwd, "/srv");
    cr_expect_str_eq(b0->cache_tools.v[0], "search");
    cr_expect_eq(b0->nendpoints, 0);
    cr_expect(b0->tls.verify, "element default");
    cr_expect_eq(b0->request_timeout, 9000, "element default: routing.request_timeout");
    cr_expect_str_eq(b1->name, "remote-2");
    cr_expect_eq(b1->transport, MB_TRANSPORT_WEBSOCKET);
    cr_assert_eq(b1->nendpoints, 2);
    cr_expect_str_eq(b1->endpoints[0].url, "ws://127.0.0.1:1/mcp");
    cr_expect_eq(b1->endpoints[0].weight, 1);
    cr_expect_eq(b1->endpoints[1].weight, 7);
    cr_expect_str_eq(b1->headers.keys[0], "Authorization");
    cr_expect_str_eq(b1->headers.values[0], "Bearer s3cr3t");
    cr_expect_str_eq(b1->tls.ca_file, "ca.pem");
    cr_expect_not(b1->tls.verify);
    cr_expect_str_eq(b1->tls.server_name, "srv");
    cr_expect_eq(b1->request_timeout, 5000);
    cr_expect_eq(b1->session, MB_SESSION_PER_CLIENT);
    cr_expect_eq(b1->health_check.method, MB_HEALTH_HTTP_GET);
    cr_expect_str_eq(b1->health_check.path, "/health");

    const struct mb_conf_rate_limit *rl = &c->rate_limit;
    cr_expect(rl->enabled);
    cr_expect_str_eq(rl->algorithm, "token_bucket");
    cr_expect_float_eq(rl->requests_per_sec, 2.5, 1e-12);
    cr_expect_eq(rl->burst, 3);
    cr_expect_eq(rl->key, MB_RL_KEY_IP);
    cr_expect_eq(rl->capacity, 1024);
    cr_expect_eq(rl->storage, MB_RL_STORAGE_MEMCACHED);
    cr_assert_eq(rl->memcached.servers.n, 2);
    cr_expect_str_eq(rl->memcached.servers.v[1], "10.0.0.2:11211");
    cr_expect_eq(rl->memcached.pool_size, 4);
    cr_expect_eq(rl->memcached.timeout, 20);
    cr_expect_eq(rl->memcached.lease, 7);
    cr_expect_not(rl->memcached.on_error_allow);
    cr_assert_eq(rl->noverrides, 2);
    cr_expect_str_eq(rl->overrides[0].principal, "ci-*");
    cr_expect_str_eq(rl->overrides[0].tool, "demo__*");
    cr_expect_float_eq(rl->overrides[0].requests_per_sec, 10.0, 1e-12);
    cr_expect_eq(rl->overrides[0].burst, 20);
    cr_expect_null(rl->overrides[1].principal, "absent = any");
    cr_expect_float_eq(rl->overrides[1].requests_per_sec, 0.5, 1e-12);

    cr_expect(c->caching.enabled);
    cr_expect_eq(c->caching.response_cache.ttl, 1000);
    cr_expect_eq(c->caching.response_cache.max_size, 2);
    cr_expect_eq(c->caching.response_cache.max_entry_size, 1024);
    cr_expect(c->caching.response_cache.cache_annotated);
    cr_expect_eq(c->caching.discovery_cache.ttl, 3000);
    cr_expect_eq(c->caching.auth_cache.ttl, 4000);
    cr_expect_eq(c->caching.auth_cache.max_size, 5);

    const struct mb_conf_routing *r = &c->routing;
    cr_expect_eq(r->strategy, MB_STRATEGY_SESSION_HASH);
    cr_expect_eq(r->prefix, MB_PREFIX_NEVER);
    cr_expect_str_eq(r->separator, "::");
    cr_expect_eq(r->request_timeout, 9000);
    cr_expect_eq(r->backend_limits.max_conns, 21);
    cr_expect_eq(r->backend_limits.max_idle_conns, 22);
    cr_expect_eq(r->health_check_interval, 23000);
    cr_expect_eq(r->health_check_timeout, 24);
    cr_expect_eq(r->healthy_threshold, 25);
    cr_expect_eq(r->unhealthy_threshold, 26);
    cr_expect_eq(r->circuit_breaker.failure_threshold, 27);
    cr_expect_eq(r->circuit_breaker.cooldown, 28000);
    cr_expect_eq(r->circuit_breaker.half_open_requests, 29);
    cr_expect_eq(r->retries.max, 3);
    cr_expect_float_eq(r->retries.budget_ratio, 0.25, 1e-12);

    const struct mb_conf_auth *a = &c->auth;
    cr_expect(a->enabled);
    cr_assert_eq(a->nproviders, 3);
    cr_expect_eq(a->providers[0].type, MB_AUTH_API_KEY);
    cr_assert_eq(a->providers[0].nkeys, 1);
    cr_expect_str_eq(a->providers[0].keys[0].name, "alice");
    cr_expect_eq(a->providers[0].keys[0].sha256[0], 0x00);
    cr_expect_eq(a->providers[0].keys[0].sha256[1], 0xff);
    cr_expect_eq(a->providers[0].keys[0].sha256[31], 0xef);
    const struct mb_conf_auth_provider *jwt = &a->providers[1];
    cr_expect_eq(jwt->type, MB_AUTH_JWT);
    cr_expect_str_eq(jwt->issuer, "https://issuer.example");
    cr_expect_str_eq(jwt->audience, "mcp-bridge");
    cr_expect_str_eq(jwt->algorithms.v[1], "ES256");
    cr_expect_str_eq(jwt->jwks_file, "/etc/jwks.json");
    cr_expect_str_eq(jwt->key_file, "/etc/key.pem");
    cr_expect_str_eq(jwt->secret, "s3cr3t");
    cr_expect_str_eq(jwt->principal_claim, "email");
    cr_expect_str_eq(jwt->scopes_claim, "scp");
    cr_expect_eq(jwt->leeway, 60000);
    cr_expect_eq(a->providers[2].type, MB_AUTH_OAUTH2_INTROSPECTION);
    cr_expect_str_eq(a->providers[2].url, "https://issuer.example/introspect");
    cr_expect_str_eq(a->providers[2].client_id, "gw");
    cr_expect_str_eq(a->providers[2].client_secret, "s3cr3t");
    cr_expect_str_eq(a->providers[2].principal_claim, "sub", "element default");
    cr_expect_str_eq(a->resource_metadata.resource, "https://gw.example");
    cr_expect_str_eq(a->resource_metadata.authorization_servers.v[0], "https://issuer.example");
    cr_expect_str_eq(a->resource_metadata.scopes_supported.v[1], "mcp:write");
    cr_assert_eq(a->npolicies, 1);
    cr_expect_str_eq(a->policies[0].principals.v[1], "scope:mcp:read");
    cr_expect_str_eq(a->policies[0].allow.v[0], "demo__*");
    cr_expect_str_eq(a->policies[0].deny.v[0], "demo__delete_*");

    cr_expect_str_eq(c->sessions.key_file, "/etc/session.key");
    cr_expect_eq(c->sessions.ttl, 7200000);
    cr_expect(c->metrics.enabled);
    cr_expect_str_eq(c->metrics.address, "::1");
    cr_expect_eq(c->metrics.port, 9191);
    cr_expect_str_eq(c->metrics.path, "/m");
    cr_expect_eq(c->resources.memory_limit, 2ull << 30);
    mb_conf_free(&c);
}

Test(keys, list_entry_rules)
{
    enable_all();
    load_fails("backends:\n  - transport: stdio\n",
               "t.yaml:2:5: backends[0]: missing required key \"name\"");
    load_fails("backends:\n  - {name: a, transport: http, endpoints: [{weight: 2}]}\n",
               "t.yaml:2:44: backends[0].endpoints[0]: missing required key \"url\"");
    load_fails("backends:\n  - {name: \"a b\", transport: stdio}\n",
               "t.yaml:2:12: backends[0].name: must match [A-Za-z0-9_-]+, got \"a b\"");
    load_fails("backends:\n  - {name: gateway, transport: stdio, command: [x]}\n",
               "t.yaml:2:12: backends[0].name: \"gateway\" is reserved (it names the gateway "
               "itself in metrics)");
    load_fails("backends:\n"
               "  - {name: a, transport: stdio}\n"
               "  - {name: b, transport: stdio}\n"
               "  - {name: a, transport: http}\n",
               "t.yaml:4:5: backends[2]: duplicate backend name \"a\" (also backends[0])");
    load_fails("backends:\n  - {name: a, transport: grpc}\n",
               "t.yaml:2:26: backends[0].transport: expected one of stdio, http, websocket, got "
               "\"grpc\"");
    load_fails("backends:\n  - {name: a, transport: stdio, env: {A: 1, A: 2}}\n",
               "t.yaml:2:45: backends[0].env.A: duplicate key");
    load_fails("auth:\n  providers:\n    - type: api_key\n      keys: [{name: a, sha256: abc}]\n",
               "t.yaml:4:32: auth.providers[0].keys[0].sha256: expected 64 hexadecimal digits");
    load_fails("metrics: {path: metrics}\n", "t.yaml:1:17: metrics.path: must start with \"/\"");
    load_fails("routing:\n  retries: {budget_ratio: 1.5}\n",
               "t.yaml:2:27: routing.retries.budget_ratio: must be between 0 and 1, got \"1.5\"");
    load_fails("routing:\n  retries: {budget_ratio: nan}\n",
               "t.yaml:2:27: routing.retries.budget_ratio: expected a number, got \"nan\"");
    load_fails("rate_limit:\n  burst: 0\n",
               "t.yaml:2:10: rate_limit.burst: must be between 1 and 1000000000, got \"0\"");
}
