/*
 * tests/unit/conf/test_examples.c — every configuration shipped in conf/
 * loads, and the default one (conf/gateway.yaml) is what `make run` needs:
 * loopback only, no root (relative pid file), no external service.
 * Runs from the repository root.
 */
#include "common/errors.h"
#include "common/log.h"
#include "conf/conf.h"

#include <criterion/criterion.h>
#include <glob.h>
#include <string.h>

Test(examples, every_conf_yaml_loads)
{
    glob_t g;
    cr_assert_eq(glob("conf/*.yaml", 0, NULL, &g), 0, "no conf/*.yaml (run from the repo root)");
    cr_expect_geq(g.gl_pathc, 1);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        struct mb_conf *c = NULL;
        char err[512] = "";
        cr_expect_eq(mb_conf_load(g.gl_pathv[i], &c, err, sizeof(err)), MB_OK, "%s", err);
        mb_conf_free(&c);
    }
    globfree(&g);
}

Test(examples, default_config_runs_unprivileged_on_loopback)
{
    struct mb_conf *c = NULL;
    char err[512] = "";
    cr_assert_eq(mb_conf_load("conf/gateway.yaml", &c, err, sizeof(err)), MB_OK, "%s", err);
    cr_expect(c->workers_auto);
    cr_expect_str_eq(c->pid_file, "build/mcp-bridge.pid");
    cr_expect_str_eq(c->shm.path, "/dev/shm/mcp-bridge");
    cr_expect_eq(c->logging.level, MB_LOG_INFO);
    cr_expect_str_eq(c->logging.error_log, "stderr");
    cr_assert_eq(c->server.nlisten, 1);
    cr_expect_str_eq(c->server.listen[0].address, "127.0.0.1");
    cr_expect_eq(c->server.listen[0].port, 8443);
    cr_expect_eq(c->server.max_message_size, 1048576);
    /* The demo backend: the test server over stdio, built by make. */
    cr_assert_eq(c->nbackends, 1);
    cr_expect_str_eq(c->backends[0].name, "demo");
    cr_expect_eq(c->backends[0].transport, MB_TRANSPORT_STDIO);
    cr_assert_geq(c->backends[0].command.n, 2);
    cr_expect_str_eq(c->backends[0].command.v[0], "./build/mcp-bridge-testserver");
    cr_expect_str_eq(c->backends[0].command.v[1], "--stdio");
    cr_expect(c->rate_limit.enabled, "the contract's default limits apply");
    cr_expect(c->metrics.enabled, "make run shows /metrics");
    cr_expect_str_eq(c->metrics.address, "127.0.0.1", "the admin listener stays on loopback");
    cr_expect_eq(c->metrics.port, 9090);
    mb_conf_free(&c);
}
