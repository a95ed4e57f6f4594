/*
 * tests/integration/test_prometheus.c — issue 7's "Done when", as an
 * operator would see it: a real Prometheus server (Debian's prometheus
 * package, the one that brings promtool) scrapes the gateway's /metrics every
 * second while a client makes requests, and the tutorial's two queries return
 * data through Prometheus' own HTTP API:
 *
 *   rate(mcp_gateway_requests_total[1m])
 *   histogram_quantile(0.99, rate(mcp_gateway_request_duration_seconds_bucket[5m]))
 *
 * Prometheus runs on 127.0.0.1 on a port chosen at run time, with its TSDB in
 * a temporary directory, and is stopped by pid.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/ops_daemon.h"
#include "tests/support/daemon.h"
#include "tests/support/daemon_assert.h"
#include "tests/support/net.h"
#include "tests/support/server.h"
#include "tests/support/testutil.h"
#include "tests/support/wsclient.h"

#define IO_MS 5000

static struct mb_test_daemon *gw;
static struct mb_wsclient *ws;
static pid_t prom;
static char tsdb[64];
static char body[262144];

static void teardown(void)
{
    mb_test_server_stop(&prom, 5000);
    mb_wsclient_free(&ws);
    mb_test_daemon_free(&gw);
    if (tsdb[0]) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tsdb);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tsdb);
    }
}

/* Percent-encodes a PromQL query for a URL query string. */
static void urlencode(const char *in, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *in && n + 4 < cap; in++) {
        unsigned char ch = (unsigned char)*in;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            strchr("-_.~", ch)) {
            out[n++] = (char)ch;
        } else {
            out[n++] = '%';
            out[n++] = hex[ch >> 4];
            out[n++] = hex[ch & 15];
        }
    }
    out[n] = '\0';
}

/* Runs an instant query; returns how many series have a finite value > 0. */
static int finite_positive_series(uint16_t port, const char *query)
{
    char enc[512], path[640];
    urlencode(query, enc, sizeof(enc));
    snprintf(path, sizeof(path), "/api/v1/query?query=%s", enc);
    int status = 0;
    if (mb_test_http_get(port, path, &status, body, sizeof(body), IO_MS) != 0 || status != 200)
        return -1;
    cJSON *root = cJSON_Parse(body);
    cr_assert_not_null(root, "not JSON from Prometheus: %s", body);
    const cJSON *st = cJSON_GetObjectItem(root, "status");
    cr_assert(cJSON_IsString(st) && strcmp(st->valuestring, "success") == 0, "%s", body);
    const cJSON *res = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "data"), "result");
    int good = 0;
    const cJSON *series;
    cJSON_ArrayForEach(series, res)
    {
        /* "value": [ <time>, "<number as a string>" ] */
        const cJSON *v = cJSON_GetArrayItem(cJSON_GetObjectItem(series, "value"), 1);
        if (cJSON_IsString(v)) {
            double d = strtod(v->valuestring, NULL);
            if (isfinite(d) && d > 0)
                good++;
        }
    }
    cJSON_Delete(root);
    return good;
}

Test(prometheus, tutorial_queries_return_data, .fini = teardown, .timeout = 90)
{
    struct mb_test_conf conf = {.workers = 2};
    uint16_t mport;
    ops_start(&gw, &conf, &mport, NULL);

    /* Prometheus scraping the gateway every second. */
    snprintf(tsdb, sizeof(tsdb), "/tmp/mb-prom-XXXXXX");
    cr_assert_not_null(mkdtemp(tsdb));
    char cfg[128], flag_cfg[160], flag_db[128], flag_listen[64], logp[128], yaml[512];
    snprintf(cfg, sizeof(cfg), "%s/prometheus.yml", tsdb);
    snprintf(yaml, sizeof(yaml),
             "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
             "scrape_configs:\n"
             "  - job_name: mcp-bridge\n"
             "    static_configs: [{targets: [\"127.0.0.1:%u\"]}]\n",
             (unsigned)mport);
    cr_assert_eq(mb_test_write_file(cfg, yaml), 0);
    int pport = mb_test_free_port();
    cr_assert_gt(pport, 0);
    snprintf(flag_cfg, sizeof(flag_cfg), "--config.file=%s", cfg);
    snprintf(flag_db, sizeof(flag_db), "--storage.tsdb.path=%s/data", tsdb);
    snprintf(flag_listen, sizeof(flag_listen), "--web.listen-address=127.0.0.1:%d", pport);
    snprintf(logp, sizeof(logp), "%s/prometheus.log", tsdb);
    char *argv[] = {"prometheus", flag_cfg, flag_db, flag_listen, NULL};
    prom = mb_test_server_start(argv, (uint16_t)pport, logp, 30000);
    if (prom < 0) {
        char *log = mb_test_read_file(logp, NULL);
        cr_assert_fail("prometheus did not start (%s):\n%s", strerror((int)-prom), log ? log : "");
    }

    /* Requests for Prometheus to see: a few every 100 ms over several
     * scrapes, so rate() has at least two samples that differ. */
    char err[256] = "";
    int rc = mb_wsclient_connect(&ws, gw->port, "/mcp", "mcp", IO_MS, err, sizeof(err));
    cr_assert_eq(rc, 0, "ws connect: %s %s", strerror(-rc), err);
    const char *queries[2] = {
        "rate(mcp_gateway_requests_total[1m])",
        "histogram_quantile(0.99, rate(mcp_gateway_request_duration_seconds_bucket[5m]))",
    };
    int found[2] = {0, 0};
    int64_t deadline = mb_test_now_ms() + 45000;
    for (int id = 1; mb_test_now_ms() < deadline && (found[0] <= 0 || found[1] <= 0); id++) {
        char req[128];
        struct mb_wsmsg m;
        for (int k = 0; k < 5; k++) {
            snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"ping\"}",
                     id * 10 + k);
            cr_assert_eq(mb_wsclient_call(ws, req, &m, IO_MS), 0, "no reply to %s", req);
        }
        mb_test_sleep_ms(100);
        if (id % 10 == 0)
            for (int q = 0; q < 2; q++)
                found[q] = finite_positive_series((uint16_t)pport, queries[q]);
    }
    cr_expect_gt(found[0], 0, "%s returned no positive series; last answer:\n%s", queries[0], body);
    cr_expect_gt(found[1], 0, "%s returned no finite series; last answer:\n%s", queries[1], body);
    mb_test_must_finish(gw);
}
