/*
 * tests/unit/conf/test_metrics_conf.c — the metrics and logging.access_log
 * keys (issue 7): values read into struct mb_conf, and the checks that keep
 * the metrics endpoint on a socket of its own (conf/conf.c
 * check_metrics_listen) and off the endpoint's fixed paths (conf/keys.c
 * check_metrics_path).
 */
#include "common/errors.h"
#include "conf/conf.h"

#include <criterion/criterion.h>
#include <string.h>

static struct mb_conf *load_ok(const char *text)
{
    struct mb_conf *c = NULL;
    char err[512] = "";
    cr_assert_eq(mb_conf_load_string("t.yaml", text, &c, err, sizeof(err)), MB_OK,
                 "load failed: %s\n--- file:\n%s", err, text);
    return c;
}

static void load_fails(const char *text, const char *want)
{
    struct mb_conf *c = NULL;
    char err[512] = "";
    cr_expect_eq(mb_conf_load_string("t.yaml", text, &c, err, sizeof(err)), MB_ERR,
                 "should fail: %s", text);
    cr_expect_null(c);
    cr_expect_str_eq(err, want, "\n got: %s\nwant: %s", err, want);
}

Test(metrics_conf, values_are_read)
{
    struct mb_conf *c = load_ok("metrics:\n"
                                "  enabled: true\n"
                                "  listen: {address: 127.0.0.2, port: 9191}\n"
                                "  path: /prom\n"
                                "logging:\n"
                                "  access_log: /tmp/a.log\n");
    cr_expect(c->metrics.enabled);
    cr_expect_str_eq(c->metrics.address, "127.0.0.2");
    cr_expect_eq(c->metrics.port, 9191);
    cr_expect_str_eq(c->metrics.path, "/prom");
    cr_expect_str_eq(c->logging.access_log, "/tmp/a.log");
    mb_conf_free(&c);

    c = load_ok("logging: {access_log: off}\nmetrics: {enabled: false}\n");
    cr_expect_null(c->logging.access_log);
    cr_expect_not(c->metrics.enabled);
    mb_conf_free(&c);
}

Test(metrics_conf, listen_must_not_be_a_client_listener)
{
    load_fails("server:\n"
               "  listen:\n"
               "    - {address: 127.0.0.1, port: 9300}\n"
               "metrics:\n"
               "  listen: {address: 127.0.0.1, port: 9300}\n",
               "t.yaml:4:1: metrics.listen: 127.0.0.1:9300 is also server.listen[0] "
               "(127.0.0.1:9300): the metrics endpoint needs an address and port of its own");
    /* Defaults only: the error points at server, where the clash was made. */
    load_fails("server:\n"
               "  listen:\n"
               "    - {address: 127.0.0.1, port: 9090}\n",
               "t.yaml:1:1: metrics.listen: 127.0.0.1:9090 is also server.listen[0] "
               "(127.0.0.1:9090): the metrics endpoint needs an address and port of its own");
    /* A wildcard overlaps every address of its port. */
    load_fails("server:\n"
               "  listen:\n"
               "    - {address: 0.0.0.0, port: 9301}\n"
               "metrics: {listen: {address: 127.0.0.1, port: 9301}}\n",
               "t.yaml:4:1: metrics.listen: 127.0.0.1:9301 is also server.listen[0] "
               "(0.0.0.0:9301): the metrics endpoint needs an address and port of its own");
    /* Off: no socket, no clash. Another address: no clash. */
    mb_conf_free(&(struct mb_conf *){load_ok("server: {listen: [{address: 127.0.0.1, port: "
                                             "9090}]}\nmetrics: {enabled: false}\n")});
    mb_conf_free(
        &(struct mb_conf *){load_ok("server: {listen: [{address: 127.0.0.1, port: "
                                    "9090}]}\nmetrics: {listen: {address: 127.0.0.2}}\n")});
}

Test(metrics_conf, path_is_absolute_and_not_a_fixed_one)
{
    load_fails("metrics: {path: /healthz}\n",
               "t.yaml:1:17: metrics.path: \"/healthz\" is served by the metrics endpoint itself");
    load_fails("metrics: {path: /readyz}\n",
               "t.yaml:1:17: metrics.path: \"/readyz\" is served by the metrics endpoint itself");
    load_fails("metrics: {path: m}\n", "t.yaml:1:17: metrics.path: must start with \"/\"");
}

Test(metrics_conf, access_log_must_not_be_empty)
{
    load_fails("logging: {access_log: \"\"}\n",
               "t.yaml:1:23: logging.access_log: must not be empty (use off)");
}
