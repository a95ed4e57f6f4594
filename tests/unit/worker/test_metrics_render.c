/*
 * tests/unit/worker/test_metrics_render.c — worker/metrics.c without a
 * daemon: the bounded method label, the status of a JSON-RPC error code, and
 * the exposition rendered from a region whose rows were written by "workers"
 * and the master row (sums over rows, only the request series that happened,
 * cumulative histogram buckets, families gated on their feature, promtool).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/errors.h"
#include "conf/conf.h"
#include "shm/counters.h"
#include "shm/shm.h"
#include "worker/jsonrpc.h"
#include "worker/mcp.h"
#include "worker/metrics.h"

Test(metrics_render, method_and_status_labels_are_bounded)
{
    cr_expect_eq(mb_metrics_method_of("tools/call"), MB_METHOD_TOOLS_CALL);
    cr_expect_eq(mb_metrics_method_of("initialize"), MB_METHOD_INITIALIZE);
    cr_expect_eq(mb_metrics_method_of("x\"}\n"), MB_METHOD_OTHER, "client text never a label");
    cr_expect_eq(mb_metrics_method_of("other"), MB_METHOD_OTHER);
    cr_expect_eq(mb_metrics_method_of("invalid"), MB_METHOD_OTHER);
    cr_expect_eq(mb_metrics_method_of(NULL), MB_METHOD_INVALID);
    cr_expect_eq(mb_counters_status_of(0), MB_REQ_OK);
    cr_expect_eq(mb_counters_status_of(-32602), MB_REQ_INVALID_PARAMS);
    cr_expect_eq(mb_counters_status_of(-32029), MB_REQ_RATE_LIMITED);
    cr_expect_eq(mb_counters_status_of(-32000), MB_REQ_ERROR);
    cr_expect_str_eq(mb_counters_method_name(MB_METHOD_RESOURCES_TEMPLATES_LIST),
                     "resources/templates/list");
}

Test(metrics_render, note_fills_method_and_tool)
{
    struct mb_mcp_outcome res;
    struct mb_jsonrpc_msg m;
    const char *t = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
                    "\"params\":{\"name\":\"search\"}}";
    memset(&res, 0, sizeof(res));
    mb_jsonrpc_parse(t, strlen(t), &m);
    mb_metrics_note(&res, &m, true);
    cr_expect_eq(res.method, MB_METHOD_TOOLS_CALL);
    cr_expect_str_eq(res.method_name, "tools/call");
    cr_expect_str_eq(res.tool, "search");
    /* without the access log: the label only */
    mb_metrics_note(&res, &m, false);
    mb_jsonrpc_msg_release(&m);
    cr_expect_eq(res.method, MB_METHOD_TOOLS_CALL);
    cr_expect_str_eq(res.method_name, "");
    cr_expect_str_eq(res.tool, "");

    const char *bad = "not json";
    mb_jsonrpc_parse(bad, strlen(bad), &m);
    mb_metrics_note(&res, &m, true);
    mb_jsonrpc_msg_release(&m);
    cr_expect_eq(res.method, MB_METHOD_INVALID);
    cr_expect_str_eq(res.method_name, "");
    cr_expect_str_eq(res.tool, "");
}

Test(metrics_render, set_names_truncates_to_the_arrays)
{
    struct mb_mcp_outcome res;
    char long_tool[300];
    memset(long_tool, 'x', sizeof(long_tool) - 1);
    long_tool[sizeof(long_tool) - 1] = '\0';
    memset(&res, 0x55, sizeof(res));
    mb_metrics_set_names(&res, "tools/call", long_tool);
    cr_expect_str_eq(res.method_name, "tools/call");
    cr_expect_eq(strlen(res.tool), sizeof(res.tool) - 1);
    cr_expect_eq(memcmp(res.tool, long_tool, sizeof(res.tool) - 1), 0);
    mb_metrics_set_names(&res, "", "");
    cr_expect_str_eq(res.method_name, "");
    cr_expect_str_eq(res.tool, "");
}

static double value(const char *text, const char *series)
{
    char key[512];
    snprintf(key, sizeof(key), "\n%s ", series);
    const char *p = strstr(text, key);
    return p ? strtod(p + strlen(key), NULL) : -1;
}

Test(metrics_render, sums_rows_and_gates_families)
{
    char dir[] = "/tmp/mb-metrics-XXXXXX", path[64], err[256];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/shm", dir);
    struct mb_shm *shm = NULL;
    struct mb_shm_params p = {.worker_capacity = 4};
    cr_assert_eq(mb_shm_create(path, &p, &shm, err, sizeof(err)), 0, "%s", err);
    mb_shm_publish(shm);
    struct mb_conf *conf = NULL;
    cr_assert_eq(mb_conf_load_string("t.yaml", "workers: 1\nrate_limit: {enabled: false}\n", &conf,
                                     err, sizeof(err)),
                 0, "%s", err);

    enum mb_counter ping_ok = mb_counters_request_id(MB_METHOD_PING, MB_REQ_OK);
    mb_counters_add(shm, 0, ping_ok, 3);
    mb_counters_add(shm, 1, ping_ok, 4);
    mb_counters_add(shm, mb_counters_master_row(shm), ping_ok, 5); /* folded from a dead one */
    mb_counters_add(shm, 1, MB_CTR_RELOADS_FAILED, 0);
    mb_counters_add(shm, mb_counters_master_row(shm), MB_CTR_RELOADS_FAILED, 2);
    mb_counters_observe(shm, 0, mb_counters_method_hist(MB_METHOD_PING), 300000);  /* 0.3 ms */
    mb_counters_observe(shm, 1, mb_counters_method_hist(MB_METHOD_PING), 3000000); /* 3 ms */
    mb_counters_observe(shm, 1, mb_counters_method_hist(MB_METHOD_PING), 20e9);    /* 20 s */
    mb_counters_add(shm, 0, MB_CTR_CONNECTIONS_ACTIVE, 5);
    mb_counters_add(shm, 0, MB_CTR_CONNECTIONS_WS_ACTIVE, 3);
    mb_counters_add(shm, 1, MB_CTR_CONNECTIONS_HTTP_ACTIVE, 1);

    struct mb_buf b = {0};
    cr_assert_eq(mb_metrics_render(shm, conf, &b), 0);
    const char *t = mb_buf_cstr(&b);
    cr_expect_eq(value(t, "mcp_gateway_requests_total{method=\"ping\",backend=\"gateway\","
                          "status=\"ok\"}"),
                 12, "%s", t);
    cr_expect_null(strstr(t, "method=\"tools/list\""), "no series for what never happened");
    cr_expect_eq(value(t, "mcp_gateway_reloads_total{result=\"failed\"}"), 2);
    cr_expect_eq(value(t, "mcp_gateway_request_duration_seconds_bucket{method=\"ping\",le="
                          "\"0.0005\"}"),
                 1);
    cr_expect_eq(value(t, "mcp_gateway_request_duration_seconds_bucket{method=\"ping\",le="
                          "\"0.005\"}"),
                 2, "buckets are cumulative");
    cr_expect_eq(value(t, "mcp_gateway_request_duration_seconds_bucket{method=\"ping\",le="
                          "\"+Inf\"}"),
                 3, "above the last bound only in +Inf");
    cr_expect_eq(value(t, "mcp_gateway_request_duration_seconds_count{method=\"ping\"}"), 3);
    cr_expect_eq(value(t, "mcp_gateway_connections_active{transport=\"pending\"}"), 1);
    cr_expect_eq(value(t, "mcp_gateway_build_info{version=\"" MB_VERSION "\"}"), 1);
    /* Features that are off export nothing that cannot move. */
    cr_expect_null(strstr(t, "mcp_gateway_rate_limited_total"));
    cr_expect_null(strstr(t, "mcp_gateway_access_log_dropped_total"));

    /* With them on, they are there. */
    struct mb_conf *on = NULL;
    cr_assert_eq(mb_conf_load_string("t.yaml",
                                     "workers: 1\nrate_limit: {enabled: true}\n"
                                     "logging: {access_log: /tmp/x.log}\n",
                                     &on, err, sizeof(err)),
                 0, "%s", err);
    mb_buf_reset(&b);
    cr_assert_eq(mb_metrics_render(shm, on, &b), 0);
    t = mb_buf_cstr(&b);
    cr_expect_eq(value(t, "mcp_gateway_rate_limited_total"), 0, "%s", t);
    cr_expect_eq(value(t, "mcp_gateway_access_log_dropped_total"), 0);
    mb_conf_free(&on);

    char file[96];
    snprintf(file, sizeof(file), "%s/m.txt", dir);
    FILE *f = fopen(file, "w");
    cr_assert_not_null(f);
    fputs(t, f);
    fclose(f);
    if (system("command -v promtool >/dev/null 2>&1") == 0) {
        char cmd[160];
        snprintf(cmd, sizeof(cmd), "promtool check metrics < %s >/dev/null 2>&1", file);
        cr_expect_eq(system(cmd), 0, "promtool rejects:\n%s", t);
    }
    unlink(file);
    mb_buf_free(&b);
    mb_conf_free(&conf);
    mb_shm_close(&shm);
    unlink(path);
    rmdir(dir);
}
