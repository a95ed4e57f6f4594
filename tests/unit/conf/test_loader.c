/*
 * tests/unit/conf/test_loader.c — conf/conf.c: a valid file with every
 * supported key set, the defaults of an empty file, the "not supported yet"
 * rule, and each class of error with its exact "FILE:LINE:COL: key: message".
 */
#include "common/errors.h"
#include "common/log.h"
#include "conf/conf.h"
#include "conf/keys.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct mb_conf *load_ok(const char *text)
{
    struct mb_conf *c = NULL;
    char err[512] = "";
    int rc = mb_conf_load_string("t.yaml", text, &c, err, sizeof(err));
    cr_assert_eq(rc, MB_OK, "load failed: %s\n--- file:\n%s", err, text);
    cr_assert_not_null(c);
    return c;
}

static void load_fails(const char *text, const char *want)
{
    struct mb_conf *c = (struct mb_conf *)0x1;
    char err[512] = "";
    int rc = mb_conf_load_string("t.yaml", text, &c, err, sizeof(err));
    cr_expect_eq(rc, MB_ERR, "should fail with: %s\n--- file:\n%s", want, text);
    cr_expect_null(c, "out must be NULL on failure");
    cr_expect_str_eq(err, want, "\n got: %s\nwant: %s\n--- file:\n%s", err, want, text);
    cr_expect_null(strchr(err, '\n'), "an error is one line");
}

static uint32_t online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return (uint32_t)(n < 1 ? 1 : n > 128 ? 128 : n);
}

/* ---------------------------------------------------------------- valid files */
Test(loader, every_supported_key_set)
{
    const char *text = "workers: 3\n"
                       "pid_file: /tmp/mb-test.pid\n"
                       "shm:\n"
                       "  path: /dev/shm/mb-test\n"
                       "logging:\n"
                       "  level: debug\n"
                       "  error_log: /tmp/mb-test.log\n"
                       "  access_log: off\n"
                       "server:\n"
                       "  listen:\n"
                       "    - address: 127.0.0.2\n"
                       "      port: 18443\n"
                       "    - address: \"::1\"\n"
                       "      port: 18444\n"
                       "    - port: 18445\n"
                       "  paths: [/ws, /api/mcp]\n"
                       "  read_buffer_size: 4KiB\n"
                       "  write_buffer_size: 16KB\n"
                       "  websocket:\n"
                       "    read_buffer_size: 1024\n"
                       "    write_buffer_size: 2KiB\n"
                       "    ping_interval: 1m30s\n"
                       "  max_message_size: 64KiB\n"
                       "  max_connections: 1234\n"
                       "  idle_timeout: 2h\n"
                       "  shutdown_timeout: 250ms\n"
                       "  allowed_origins: []\n"
                       "  allowed_hosts: []\n"
                       "resources:\n"
                       "  cpu_affinity: true\n";
    struct mb_conf *c = load_ok(text);

    cr_expect_str_eq(c->file, "t.yaml");
    cr_expect_eq(c->workers, 3);
    cr_expect_eq(c->workers_auto, false);
    cr_expect_str_eq(c->pid_file, "/tmp/mb-test.pid");
    cr_expect_str_eq(c->shm.path, "/dev/shm/mb-test");
    cr_expect_eq(c->logging.level, MB_LOG_DEBUG);
    cr_expect_str_eq(c->logging.error_log, "/tmp/mb-test.log");
    cr_expect_null(c->logging.access_log);
    cr_assert_eq(c->server.nlisten, 3);
    cr_expect_str_eq(c->server.listen[0].address, "127.0.0.2");
    cr_expect_eq(c->server.listen[0].port, 18443);
    cr_expect_str_eq(c->server.listen[1].address, "::1");
    cr_expect_eq(c->server.listen[1].port, 18444);
    cr_expect_str_eq(c->server.listen[2].address, "127.0.0.1", "element default address");
    cr_expect_eq(c->server.listen[2].port, 18445);
    for (size_t i = 0; i < 3; i++)
        cr_expect_eq(c->server.listen[i].tls.enabled, false);
    cr_assert_eq(c->server.paths.n, 2);
    cr_expect_str_eq(c->server.paths.v[0], "/ws");
    cr_expect_str_eq(c->server.paths.v[1], "/api/mcp");
    cr_expect_eq(c->server.read_buffer_size, 4096);
    cr_expect_eq(c->server.write_buffer_size, 16000);
    cr_expect_eq(c->server.websocket.read_buffer_size, 1024);
    cr_expect_eq(c->server.websocket.write_buffer_size, 2048);
    cr_expect_eq(c->server.websocket.ping_interval, 90000);
    cr_expect_eq(c->server.max_message_size, 65536);
    cr_expect_eq(c->server.max_connections, 1234);
    cr_expect_eq(c->server.idle_timeout, 7200000);
    cr_expect_eq(c->server.shutdown_timeout, 250);
    cr_expect_eq(c->server.allowed_origins.n, 0);
    cr_expect_eq(c->server.allowed_hosts.n, 0);
    cr_expect_eq(c->resources.cpu_affinity, true);
    mb_conf_free(&c);
    cr_expect_null(c, "mb_conf_free clears the caller's pointer");
}

static void expect_defaults(const struct mb_conf *c)
{
    cr_expect_eq(c->workers, online_cpus());
    cr_expect_eq(c->workers_auto, true);
    cr_expect_str_eq(c->pid_file, "/run/mcp-bridge.pid");
    cr_expect_str_eq(c->shm.path, "/dev/shm/mcp-bridge");
    cr_expect_eq(c->logging.level, MB_LOG_INFO);
    cr_expect_str_eq(c->logging.error_log, "stderr");
    cr_expect_null(c->logging.access_log);
    cr_assert_eq(c->server.nlisten, 1);
    cr_expect_str_eq(c->server.listen[0].address, "127.0.0.1");
    cr_expect_eq(c->server.listen[0].port, 8443);
    cr_expect_eq(c->server.listen[0].tls.enabled, false);
    cr_assert_eq(c->server.paths.n, 2);
    cr_expect_str_eq(c->server.paths.v[0], "/");
    cr_expect_str_eq(c->server.paths.v[1], "/mcp");
    cr_expect_eq(c->server.read_buffer_size, 8192);
    cr_expect_eq(c->server.write_buffer_size, 8192);
    cr_expect_eq(c->server.websocket.read_buffer_size, 8192);
    cr_expect_eq(c->server.websocket.write_buffer_size, 8192);
    cr_expect_eq(c->server.websocket.ping_interval, 30000);
    cr_expect_eq(c->server.max_message_size, 1048576);
    cr_expect_eq(c->server.max_connections, 50000);
    cr_expect_eq(c->server.idle_timeout, 300000);
    cr_expect_eq(c->server.shutdown_timeout, 30000);
    cr_expect_eq(c->server.allowed_origins.n, 0);
    cr_expect_eq(c->server.allowed_hosts.n, 0);
    cr_expect_eq(c->nbackends, 0);
    cr_expect_null(c->backends);
    cr_expect_eq(c->resources.cpu_affinity, false);
    cr_expect_eq(c->resources.memory_limit, 512ull << 20);
}

Test(loader, defaults_when_empty)
{
    static const char *const empties[] = {"",      "\n",  "# nothing but a comment\n",
                                          "---\n", "~\n", "{}\n"};
    for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
        struct mb_conf *c = load_ok(empties[i]);
        expect_defaults(c);
        mb_conf_free(&c);
    }
}

/* Features not built read as off, whatever the contract's default; every
 * other field of theirs holds the contract's default. */
Test(loader, unsupported_features_read_off)
{
    struct mb_conf *c = load_ok("");

    cr_expect_eq(c->connection_pool.enabled, true, "built: the contract's default");
    cr_expect_eq(c->connection_pool.max_idle_conns, 1000);
    cr_expect_eq(c->connection_pool.idle_conn_timeout, 90000);
    cr_expect_eq(c->rate_limit.enabled, true, "built: the contract's default");
    cr_expect_str_eq(c->rate_limit.algorithm, "token_bucket");
    cr_expect_float_eq(c->rate_limit.requests_per_sec, 10000.0, 1e-9);
    cr_expect_eq(c->rate_limit.burst, 2000);
    cr_expect_eq(c->rate_limit.key, MB_RL_KEY_PRINCIPAL);
    cr_expect_eq(c->rate_limit.capacity, 65536);
    cr_expect_eq(c->rate_limit.storage, MB_RL_STORAGE_SHM);
    cr_assert_eq(c->rate_limit.memcached.servers.n, 1);
    cr_expect_str_eq(c->rate_limit.memcached.servers.v[0], "127.0.0.1:11211");
    cr_expect_eq(c->rate_limit.memcached.pool_size, 50);
    cr_expect_eq(c->rate_limit.memcached.timeout, 50);
    cr_expect_eq(c->rate_limit.memcached.lease, 100);
    cr_expect_eq(c->rate_limit.memcached.on_error_allow, true);
    cr_expect_eq(c->rate_limit.noverrides, 0);
    cr_expect_eq(c->caching.enabled, true);
    cr_expect_eq(c->caching.response_cache.enabled, true);
    cr_expect_eq(c->caching.response_cache.ttl, 60000);
    cr_expect_eq(c->caching.response_cache.max_size, 10000);
    cr_expect_eq(c->caching.response_cache.max_entry_size, 256000);
    cr_expect_eq(c->caching.discovery_cache.enabled, true);
    cr_expect_eq(c->caching.discovery_cache.ttl, 300000);
    cr_expect_eq(c->caching.auth_cache.enabled, true);
    cr_expect_eq(c->caching.auth_cache.max_size, 50000);
    cr_expect_eq(c->routing.strategy, MB_STRATEGY_LEAST_RESPONSE_TIME);
    cr_expect_eq(c->routing.prefix, MB_PREFIX_AUTO);
    cr_expect_str_eq(c->routing.separator, "__");
    cr_expect_eq(c->routing.request_timeout, 60000);
    cr_expect_eq(c->routing.backend_limits.max_conns, 1000);
    cr_expect_eq(c->routing.health_check_interval, 30000);
    cr_expect_eq(c->routing.health_check_timeout, 5000);
    cr_expect_eq(c->routing.healthy_threshold, 2);
    cr_expect_eq(c->routing.unhealthy_threshold, 3);
    cr_expect_eq(c->routing.circuit_breaker.failure_threshold, 5);
    cr_expect_eq(c->routing.circuit_breaker.cooldown, 10000);
    cr_expect_eq(c->routing.retries.max, 2);
    cr_expect_float_eq(c->routing.retries.budget_ratio, 0.1, 1e-12);
    cr_expect_eq(c->auth.enabled, false);
    cr_expect_eq(c->auth.nproviders, 0);
    cr_expect_eq(c->auth.npolicies, 0);
    cr_expect_str_eq(c->sessions.key_file, "");
    cr_expect_eq(c->sessions.ttl, 24 * 3600 * 1000);
    cr_expect_eq(c->metrics.enabled, true, "metrics are built (issue 7): the default applies");
    cr_expect_str_eq(c->metrics.address, "127.0.0.1");
    cr_expect_eq(c->metrics.port, 9090);
    cr_expect_str_eq(c->metrics.path, "/metrics");
    mb_conf_free(&c);
}

Test(loader, off_values_of_unsupported_features_are_accepted)
{
    struct mb_conf *c = load_ok("logging: {access_log: off}\n"
                                "server: {allowed_origins: [], allowed_hosts: []}\n"
                                "connection_pool: {enabled: false}\n"
                                "backends: []\n"
                                "rate_limit: {enabled: false, overrides: []}\n"
                                "caching:\n"
                                "  enabled: false\n"
                                "  response_cache: {enabled: false}\n"
                                "  discovery_cache: {enabled: false}\n"
                                "  auth_cache: {enabled: False}\n"
                                "routing: {}\n"
                                "auth: {enabled: false, providers: [], policies: [],"
                                " resource_metadata: {}}\n"
                                "sessions: {}\n"
                                "metrics: {enabled: false}\n");
    cr_expect_eq(c->rate_limit.enabled, false);
    cr_expect_eq(c->metrics.enabled, false);
    cr_expect_eq(c->caching.auth_cache.enabled, false);
    cr_expect_eq(c->nbackends, 0);
    mb_conf_free(&c);
}

Test(loader, env_in_values)
{
    setenv("MB_T_PORT", "18080", 1);
    setenv("MB_T_DIR", "/tmp/mbt", 1);
    struct mb_conf *c = load_ok("pid_file: ${MB_T_DIR}/gw.pid\n"
                                "server:\n"
                                "  listen:\n"
                                "    - port: ${MB_T_PORT}\n"
                                "  paths: [\"${MB_T_DIR}\"]\n");
    cr_expect_str_eq(c->pid_file, "/tmp/mbt/gw.pid");
    cr_expect_eq(c->server.listen[0].port, 18080);
    cr_expect_str_eq(c->server.paths.v[0], "/tmp/mbt");
    mb_conf_free(&c);
}

Test(loader, host_names_are_resolved_to_numeric)
{
    struct mb_conf *c = load_ok("server: {listen: [{address: localhost, port: 9}]}\n");
    const char *a = c->server.listen[0].address;
    cr_expect(strcmp(a, "127.0.0.1") == 0 || strcmp(a, "::1") == 0, "localhost -> %s", a);
    mb_conf_free(&c);
}

Test(loader, workers_auto_and_number)
{
    struct mb_conf *c = load_ok("workers: auto\n");
    cr_expect_eq(c->workers, online_cpus());
    cr_expect(c->workers_auto);
    mb_conf_free(&c);
    c = load_ok("workers: 128\n");
    cr_expect_eq(c->workers, 128);
    cr_expect_not(c->workers_auto);
    mb_conf_free(&c);
}

Test(loader, aliases_are_followed)
{
    struct mb_conf *c = load_ok("server:\n"
                                "  idle_timeout: &t 45s\n"
                                "  shutdown_timeout: *t\n");
    cr_expect_eq(c->server.shutdown_timeout, 45000);
    mb_conf_free(&c);
}

Test(loader, from_a_file)
{
    char path[] = "/tmp/mb-conf-test-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_neq(fd, -1);
    const char *text = "workers: 2\nserver:\n  max_connections: lots\n";
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);

    struct mb_conf *c = NULL;
    char err[512], want[512];
    cr_expect_eq(mb_conf_load(path, &c, err, sizeof(err)), MB_ERR);
    snprintf(want, sizeof(want),
             "%s:3:20: server.max_connections: expected an integer, got \"lots\"", path);
    cr_expect_str_eq(err, want);

    fd = open(path, O_WRONLY | O_TRUNC);
    cr_assert_neq(fd, -1);
    cr_assert_eq(write(fd, "workers: 2\n", 11), 11);
    close(fd);
    cr_assert_eq(mb_conf_load(path, &c, err, sizeof(err)), MB_OK, "%s", err);
    cr_expect_str_eq(c->file, path);
    cr_expect_eq(c->workers, 2);
    mb_conf_free(&c);
    unlink(path);

    cr_expect_eq(mb_conf_load("/nonexistent/gw.yaml", &c, err, sizeof(err)), MB_ERR);
    cr_expect_null(c);
    cr_expect_str_eq(err, "/nonexistent/gw.yaml: cannot read: No such file or directory");
    cr_expect_eq(mb_conf_load("/tmp", &c, err, sizeof(err)), MB_ERR);
    cr_expect_str_eq(err, "/tmp: cannot read: not a regular file");
}

/* ---------------------------------------------------------------- errors */
Test(errors, unknown_key)
{
    load_fails("server:\n  foo: 1\n", "t.yaml:2:3: server.foo: unknown key");
    load_fails("workers: 2\nbackend: []\n", "t.yaml:2:1: backend: unknown key");
    load_fails("server:\n  websocket:\n    ping: 1s\n",
               "t.yaml:3:5: server.websocket.ping: unknown key");
    load_fails("server:\n  listen:\n    - port: 1\n      host: a\n",
               "t.yaml:4:7: server.listen[0].host: unknown key");
}

Test(errors, wrong_type)
{
    load_fails("server:\n  max_connections: [1, 2]\n",
               "t.yaml:2:20: server.max_connections: expected an integer, got a list");
    load_fails("server: 5\n", "t.yaml:1:9: server: expected a mapping, got \"5\"");
    load_fails("resources:\n  cpu_affinity: yes\n",
               "t.yaml:2:17: resources.cpu_affinity: expected true or false, got \"yes\"");
    load_fails("server:\n  paths: /mcp\n",
               "t.yaml:2:10: server.paths: expected a list of strings, got \"/mcp\"");
    load_fails("server:\n  paths: [/a, [/b]]\n",
               "t.yaml:2:15: server.paths[1]: expected a string, got a list");
    load_fails("server:\n  listen: {port: 1}\n",
               "t.yaml:2:11: server.listen: expected a list of mappings, got a mapping");
    load_fails("server:\n  listen: [{port: 1}, 5]\n",
               "t.yaml:2:23: server.listen[1]: expected a mapping, got \"5\"");
    load_fails("pid_file:\n", "t.yaml:1:10: pid_file: expected a string, got nothing");
    load_fails("pid_file: \"\"\n", "t.yaml:1:11: pid_file: must not be empty");
    load_fails("- a\n- b\n", "t.yaml:1:1: expected a mapping, got a list");
    load_fails("[a]: 1\n", "t.yaml:1:1: expected a key name, got a list");
}

Test(errors, bad_size)
{
    load_fails("server:\n  max_message_size: big\n",
               "t.yaml:2:21: server.max_message_size: expected a size, got \"big\"");
    load_fails("server:\n  max_message_size: 1mb\n",
               "t.yaml:2:21: server.max_message_size: expected a size, got \"1mb\"");
    load_fails("server:\n  read_buffer_size: 8\n",
               "t.yaml:2:21: server.read_buffer_size: must be between 256 and 16MiB, got \"8\"");
    load_fails("server:\n  websocket:\n    write_buffer_size: 99999999999999999999\n",
               "t.yaml:3:24: server.websocket.write_buffer_size: expected a size, got "
               "\"99999999999999999999\"");
}

Test(errors, bad_duration)
{
    load_fails("server:\n  idle_timeout: 30\n",
               "t.yaml:2:17: server.idle_timeout: expected a duration (e.g. 250ms, 30s, 5m, "
               "1h30m), got \"30\"");
    load_fails("server:\n  shutdown_timeout: 25h\n",
               "t.yaml:2:21: server.shutdown_timeout: must be between 0 and 24h, got \"25h\"");
}

Test(errors, bad_enum)
{
    load_fails("logging:\n  level: verbose\n",
               "t.yaml:2:10: logging.level: expected one of error, warn, info, debug, got "
               "\"verbose\"");
}

Test(errors, bad_workers)
{
    load_fails("workers: 0\n", "t.yaml:1:10: workers: must be between 1 and 128, got \"0\"");
    load_fails("workers: 129\n", "t.yaml:1:10: workers: must be between 1 and 128, got \"129\"");
    load_fails("workers: many\n",
               "t.yaml:1:10: workers: expected an integer or auto, got \"many\"");
}

Test(errors, duplicate_key)
{
    load_fails("workers: 2\nserver:\n  idle_timeout: 1s\n  idle_timeout: 2s\n",
               "t.yaml:4:3: server.idle_timeout: duplicate key (first at line 3)");
    load_fails("workers: 2\nworkers: 3\n", "t.yaml:2:1: workers: duplicate key (first at line 1)");
}

Test(errors, yaml_syntax)
{
    load_fails("server: {max_connections: 1\n",
               "t.yaml:2:1: syntax error: did not find expected ',' or '}' (while parsing a flow "
               "mapping at line 1)");
    load_fails("a: b: c\n", "t.yaml:1:5: syntax error: mapping values are not allowed in this "
                            "context");
    load_fails("server:\n\tlisten: []\n", "t.yaml:2:1: syntax error: found character that "
                                          "cannot start any token (while scanning for the next "
                                          "token at line 2)");
    load_fails("workers: *nope\n", "t.yaml:1:10: syntax error: found undefined alias");
    load_fails("workers: \xff\n", "t.yaml:1:10: syntax error: invalid leading UTF-8 octet");
    load_fails("workers: 2\n---\nworkers: 3\n",
               "t.yaml:3:1: only one YAML document is allowed in a file");
}

Test(errors, not_supported_yet)
{
    load_fails("backends:\n  - {name: demo, transport: stdio, command: [x], session: shared}\n",
               "t.yaml:2:50: backends[0].session: not supported yet");
    load_fails("server:\n  allowed_origins: [https://a.example]\n",
               "t.yaml:2:3: server.allowed_origins: not supported yet");
    load_fails("server:\n  listen:\n    - port: 8443\n      tls: {cert_file: c.pem}\n",
               "t.yaml:4:7: server.listen[0].tls: not supported yet");
    load_fails("resources:\n  memory_limit: 1GiB\n",
               "t.yaml:2:3: resources.memory_limit: not supported yet");
    load_fails("auth:\n  policies: [{allow: [\"*\"]}]\n",
               "t.yaml:2:3: auth.policies: not supported yet");
    load_fails("sessions:\n  ttl: 1h\n", "t.yaml:2:3: sessions.ttl: not supported yet");
    load_fails("routing:\n  strategy: round_robin\n",
               "t.yaml:2:3: routing.strategy: not supported yet");
    load_fails("connection_pool:\n  tls_handshake_timeout: 5s\n",
               "t.yaml:2:3: connection_pool.tls_handshake_timeout: not supported yet");
    load_fails("routing:\n  health_check_interval: 5s\n",
               "t.yaml:2:3: routing.health_check_interval: not supported yet");
}

Test(errors, missing_env_var)
{
    unsetenv("MB_T_NOPE");
    load_fails("pid_file: ${MB_T_NOPE}/x.pid\n",
               "t.yaml:1:11: pid_file: environment variable MB_T_NOPE is not set");
    load_fails("server:\n  listen:\n    - port: \"${MB_T_NOPE\"\n",
               "t.yaml:3:13: server.listen[0].port: unterminated \"${\" (write \"$${\" for a "
               "literal \"${\")");
}

Test(errors, bad_port)
{
    load_fails("server:\n  listen:\n    - port: 70000\n",
               "t.yaml:3:13: server.listen[0].port: must be between 1 and 65535, got \"70000\"");
    load_fails("server:\n  listen:\n    - port: 0\n",
               "t.yaml:3:13: server.listen[0].port: must be between 1 and 65535, got \"0\"");
    load_fails("server:\n  listen:\n    - port: -1\n",
               "t.yaml:3:13: server.listen[0].port: must be between 1 and 65535, got \"-1\"");
    load_fails("server:\n  listen:\n    - port: http\n",
               "t.yaml:3:13: server.listen[0].port: expected an integer, got \"http\"");
}

Test(errors, bad_listen)
{
    load_fails("server:\n  listen: []\n", "t.yaml:2:11: server.listen: must have at least 1 entry");
    load_fails("server:\n  listen:\n    - address: 300.1.1.1\n",
               "t.yaml:3:16: server.listen[0].address: not a valid IP address: \"300.1.1.1\"");
    load_fails("server:\n  listen:\n    - address: \"1::2::3\"\n",
               "t.yaml:3:16: server.listen[0].address: not a valid IP address: \"1::2::3\"");
}

Test(errors, duplicate_listener)
{
    load_fails("server:\n"
               "  listen:\n"
               "    - address: 127.0.0.1\n"
               "      port: 9000\n"
               "    - address: 127.0.0.1\n"
               "      port: 9001\n"
               "    - port: 9000\n",
               "t.yaml:7:7: server.listen[2]: duplicate listener 127.0.0.1:9000 (also "
               "server.listen[0])");
    /* Compared in canonical form: "0:0::1" is "::1". */
    load_fails("server:\n"
               "  listen:\n"
               "    - {address: \"::1\", port: 9000}\n"
               "    - {address: \"0:0::1\", port: 9000}\n",
               "t.yaml:4:7: server.listen[1]: duplicate listener [::1]:9000 (also "
               "server.listen[0])");
}

Test(errors, bad_paths)
{
    load_fails("server:\n  paths: [/a, b]\n",
               "t.yaml:2:15: server.paths[1]: must start with \"/\", got \"b\"");
    load_fails("server:\n  paths: [/a, /b, /a]\n",
               "t.yaml:2:19: server.paths[2]: duplicate path \"/a\" (also server.paths[0])");
    load_fails("server:\n  paths: []\n", "t.yaml:2:10: server.paths: must have at least 1 entry");
}

Test(errors, values_are_quoted_on_one_line)
{
    load_fails("server:\n  max_message_size: \"a\\nb\\\"c\"\n",
               "t.yaml:2:21: server.max_message_size: expected a size, got \"a\\x0ab\\\"c\"");
    load_fails("server:\n  max_message_size: "
               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
               "t.yaml:2:21: server.max_message_size: expected a size, got "
               "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\"");
}

Test(errors, alias_bomb_is_bounded)
{
    /* Aliases let a small file name many entries; the table's cap on list
     * entries bounds what the loader allocates. */
    char buf[4096];
    size_t o = (size_t)snprintf(buf, sizeof(buf), "server:\n  listen:\n");
    o += (size_t)snprintf(buf + o, sizeof(buf) - o, "    - &e {port: 1}\n");
    for (int i = 0; i < 70; i++)
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, "    - *e\n");
    load_fails(buf, "t.yaml:3:5: server.listen: must have at most 64 entries, got 71");
}

Test(errors, error_buffer_may_be_small_or_null)
{
    struct mb_conf *c = NULL;
    char err[8];
    cr_expect_eq(mb_conf_load_string("t.yaml", "foo: 1\n", &c, err, sizeof(err)), MB_ERR);
    cr_expect_str_eq(err, "t.yaml:");
    cr_expect_eq(mb_conf_load_string("t.yaml", "foo: 1\n", &c, NULL, 0), MB_ERR);
    cr_expect_null(c);
}
