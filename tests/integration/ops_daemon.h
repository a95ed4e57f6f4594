/*
 * tests/integration/ops_daemon.h — starting the daemon with the metrics
 * endpoint and the access log on, for the operations tests (test_metrics.c,
 * test_accesslog.c). Header only, like tests/support/daemon_assert.h.
 *
 * tests/support/daemon.c writes `metrics: {enabled: false}` so parallel
 * daemons do not fight over port 9090; these helpers replace that block with
 * one on a port chosen at run time, and append what the test adds.
 */
#ifndef MB_TESTS_OPS_DAEMON_H
#define MB_TESTS_OPS_DAEMON_H

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/daemon.h"
#include "tests/support/net.h"
#include "tests/support/testutil.h"

#define OPS_METRICS_OFF "metrics:\n  enabled: false\n"

/* The generated config with metrics on metrics_port (0 = leave them off)
 * and extra_logging appended under logging: (NULL = nothing). malloc'd. */
static inline char *ops_conf_text(struct mb_test_daemon *d, const struct mb_test_conf *conf,
                                  uint16_t metrics_port, const char *access_log)
{
    char *base = mb_test_daemon_conf_text(d, conf);
    cr_assert_not_null(base);
    char *off = strstr(base, OPS_METRICS_OFF);
    cr_assert_not_null(off, "the generated config no longer says metrics: enabled: false");
    char metrics[256], logging[PATH_MAX + 64];
    if (metrics_port)
        snprintf(metrics, sizeof(metrics),
                 "metrics:\n  enabled: true\n  listen: {address: 127.0.0.1, port: %u}\n"
                 "  path: /metrics\n",
                 (unsigned)metrics_port);
    else
        snprintf(metrics, sizeof(metrics), "%s", OPS_METRICS_OFF);
    /* The logging section is generated with level and error_log; the access
     * log goes right after its header line. */
    char *lg = strstr(base, "logging:\n");
    cr_assert_not_null(lg);
    snprintf(logging, sizeof(logging), "logging:\n  access_log: %s\n",
             access_log ? access_log : "off");
    size_t n = strlen(base) + strlen(metrics) + strlen(logging) + 1;
    char *out = malloc(n);
    cr_assert_not_null(out);
    size_t a = (size_t)(lg - base), b = (size_t)(off - base);
    cr_assert_lt(a, b, "logging comes before metrics in the generated config");
    snprintf(out, n, "%.*s%s%.*s%s%s", (int)a, base, logging, (int)(b - a - strlen("logging:\n")),
             lg + strlen("logging:\n"), metrics, off + strlen(OPS_METRICS_OFF));
    free(base);
    return out;
}

/* Starts a daemon of conf with metrics on a free port (*metrics_port) and
 * the access log at access_log (NULL = off); waits for its workers. */
static inline void ops_start(struct mb_test_daemon **d, const struct mb_test_conf *conf,
                             uint16_t *metrics_port, const char *access_log)
{
    cr_assert_eq(mb_test_daemon_new(d, conf), 0);
    int p = mb_test_free_port();
    cr_assert_gt(p, 0);
    *metrics_port = (uint16_t)p;
    char *text = ops_conf_text(*d, conf, *metrics_port, access_log);
    cr_assert_eq(mb_test_daemon_write_conf_text(*d, text), 0);
    free(text);
    int rc = mb_test_daemon_spawn(*d, NULL, 10000);
    if (rc == 0) {
        struct mb_test_shm s;
        rc = mb_test_shm_wait_running(*d, (size_t)(conf && conf->workers ? conf->workers : 2), 0,
                                      &s, 10000);
        mb_test_shm_clear(&s);
    }
    if (rc) {
        char *out = mb_test_daemon_output(*d), *log = mb_test_daemon_log(*d);
        cr_assert_fail("daemon did not start: %s\n--- output:\n%s\n--- log:\n%s", strerror(-rc),
                       out, log);
    }
}

/* `mcp-bridge-shm --json` of the daemon, parsed. */
static inline cJSON *ops_shm_json(const struct mb_test_daemon *d)
{
    char bin[PATH_MAX];
    mb_test_bin_path(bin, sizeof(bin), "mcp-bridge-shm");
    char *argv[] = {bin, "--json", (char *)d->shm_path, NULL};
    int status = -1;
    char *out = NULL;
    cr_assert_eq(mb_test_run(argv, 10000, &status, &out), 0);
    cr_assert_eq(status, 0, "mcp-bridge-shm failed: %s", out);
    cJSON *j = cJSON_Parse(out);
    cr_assert_not_null(j, "mcp-bridge-shm --json is not JSON: %s", out);
    free(out);
    return j;
}

static inline double ops_shm_counter(const cJSON *dump, const char *name)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(dump, "counters");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, name);
    cr_assert(cJSON_IsNumber(v), "the dump has no counter %s", name);
    return v->valuedouble;
}

#endif
