/*
 * tests/integration/test_accesslog.c — logging.access_log of the real daemon
 * (worker/accesslog.c): one valid JSON object per answered request with the
 * documented fields, written within the flush interval without a stop, and
 * reopened on USR1 after logrotate-style renaming, with nothing lost.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/integration/ops_daemon.h"
#include "tests/support/daemon.h"
#include "tests/support/daemon_assert.h"
#include "tests/support/net.h"
#include "tests/support/testutil.h"
#include "tests/support/wsclient.h"

#define IO_MS 5000

static struct mb_test_daemon *gw;
static struct mb_wsclient *ws;
static char path[PATH_MAX];

static void teardown(void)
{
    mb_wsclient_free(&ws);
    mb_test_daemon_free(&gw);
}

static void call(const char *req)
{
    struct mb_wsmsg m;
    cr_assert_eq(mb_wsclient_call(ws, req, &m, IO_MS), 0, "no reply to %s", req);
}

static size_t count_lines(const char *file)
{
    char *text = mb_test_read_file(file, NULL);
    size_t n = 0;
    for (const char *p = text; p && *p; p++)
        n += *p == '\n';
    free(text);
    return n;
}

struct wait_lines {
    const char *file;
    size_t n;
};

static bool has_lines(void *arg)
{
    struct wait_lines *w = arg;
    return count_lines(w->file) >= w->n;
}

static void wait_lines(const char *file, size_t n)
{
    struct wait_lines w = {file, n};
    /* The buffer is written at least once a second. */
    cr_assert_eq(mb_test_wait_until(has_lines, &w, 5000, 50), 0, "%s has %zu lines, want %zu", file,
                 count_lines(file), n);
}

static const cJSON *field(const cJSON *o, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    cr_assert_not_null(f, "a line without \"%s\"", name);
    return f;
}

Test(accesslog, one_json_object_per_request, .fini = teardown, .timeout = 40)
{
    struct mb_test_conf conf = {.workers = 2};
    uint16_t mport;
    char err[256];
    char dir[] = "/tmp/mb-accesslog-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/access.log", dir);
    ops_start(&gw, &conf, &mport, path);

    cr_assert_eq(mb_wsclient_connect(&ws, gw->port, "/mcp", "mcp", IO_MS, err, sizeof(err)), 0,
                 "%s", err);
    call("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
    call("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/"
         "call\",\"params\":{\"name\":\"a\\\"b\"}}");
    call("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"x\\ny\"}");
    call("][");
    /* A notification is not a request: no line. */
    mb_wsclient_send_text(ws, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}",
                          IO_MS);
    call("{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\"}");
    wait_lines(path, 5);

    char *text = mb_test_read_file(path, NULL);
    cr_assert_not_null(text);
    const char *want_method[] = {"ping", "tools/call", "x\ny", NULL, "ping"};
    const char *want_status[] = {"ok", "error", "error", "error", "ok"};
    const int want_code[] = {0, -32602, -32601, -32700, 0};
    size_t i = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save), i++) {
        cr_assert_lt(i, 5, "more lines than requests: %s", line);
        cJSON *o = cJSON_Parse(line);
        cr_assert(cJSON_IsObject(o), "not a JSON object: %s", line);
        const cJSON *t = field(o, "time");
        cr_expect(cJSON_IsString(t) && strlen(t->valuestring) == 24 && t->valuestring[23] == 'Z',
                  "time: %s", line);
        cr_expect_str_eq(field(o, "transport")->valuestring, "websocket");
        cr_expect_str_eq(field(o, "principal")->valuestring, "127.0.0.1");
        cr_expect(strncmp(field(o, "client")->valuestring, "127.0.0.1:", 10) == 0);
        const cJSON *m = field(o, "method");
        if (want_method[i])
            cr_expect(cJSON_IsString(m) && strcmp(m->valuestring, want_method[i]) == 0, "%s", line);
        else
            cr_expect(cJSON_IsNull(m), "%s", line);
        cr_expect_str_eq(field(o, "backend")->valuestring, "gateway");
        const cJSON *tool = field(o, "tool");
        if (i == 1)
            cr_expect(cJSON_IsString(tool) && strcmp(tool->valuestring, "a\"b") == 0, "%s", line);
        else
            cr_expect(cJSON_IsNull(tool), "%s", line);
        cr_expect_str_eq(field(o, "status")->valuestring, want_status[i], "%s", line);
        cr_expect_eq(field(o, "code")->valueint, want_code[i], "%s", line);
        cr_expect(cJSON_IsNumber(field(o, "duration_ms")) &&
                  field(o, "duration_ms")->valuedouble >= 0);
        cr_expect_gt(field(o, "bytes_in")->valuedouble, 0);
        cr_expect_gt(field(o, "bytes_out")->valuedouble, 0);
        cr_expect(cJSON_IsNumber(field(o, "worker")));
        cJSON_Delete(o);
    }
    cr_expect_eq(i, 5);
    free(text);
    mb_test_must_finish(gw);
    remove(path);
    rmdir(dir);
}

Test(accesslog, usr1_reopens_after_a_rename, .fini = teardown, .timeout = 40)
{
    struct mb_test_conf conf = {.workers = 2};
    uint16_t mport;
    char err[256], rotated[PATH_MAX + 8];
    char dir[] = "/tmp/mb-accesslog-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/access.log", dir);
    snprintf(rotated, sizeof(rotated), "%s.1", path);
    ops_start(&gw, &conf, &mport, path);
    cr_assert_eq(mb_wsclient_connect(&ws, gw->port, "/", NULL, IO_MS, err, sizeof(err)), 0, "%s",
                 err);
    for (int i = 0; i < 3; i++)
        call("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
    wait_lines(path, 3);

    /* logrotate: rename, then USR1 (as `mcp-bridge -s reopen` sends). */
    cr_assert_eq(rename(path, rotated), 0);
    call("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}"); /* before the reopen */
    cr_assert_eq(mb_test_daemon_signal(gw, SIGUSR1), 0);
    /* The worker reopens when it handles the signal; wait for the new file. */
    struct stat st;
    int64_t deadline = mb_test_now_ms() + 5000;
    while (stat(path, &st) != 0 && mb_test_now_ms() < deadline)
        mb_test_sleep_ms(20);
    cr_assert_eq(stat(path, &st), 0, "USR1 did not reopen %s", path);
    /* The other worker may reopen a little later; both get there. */
    mb_test_sleep_ms(200);
    for (int i = 0; i < 2; i++)
        call("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}");
    wait_lines(path, 2);
    wait_lines(rotated, 4);
    cr_expect_eq(count_lines(rotated), 4, "the lines before the reopen stay in the old file");
    cr_expect_eq(count_lines(path), 2, "the lines after it go to the new file");
    mb_test_must_finish(gw);
    remove(path);
    remove(rotated);
    rmdir(dir);
}

/* A tools/call answered by a backend (the test server over stdio) is logged
 * when its reply is queued, naming the backend and the tool; so is the
 * backend's error, the gateway's timeout about that backend, and a merged
 * list (answered by the gateway). */
Test(accesslog, backend_answers_name_backend_and_tool, .fini = teardown, .timeout = 40)
{
    char srv[PATH_MAX], extra[PATH_MAX + 256], err[256];
    uint16_t mport;
    mb_test_bin_path(srv, sizeof(srv), "mcp-bridge-testserver");
    snprintf(extra, sizeof(extra),
             "backends:\n  - {name: solo, transport: stdio, request_timeout: 500ms,"
             " command: [\"%s\", --stdio, --name, S]}\n",
             srv);
    struct mb_test_conf conf = {.workers = 1, .extra = extra};
    char dir[] = "/tmp/mb-accesslog-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/access.log", dir);
    ops_start(&gw, &conf, &mport, path);
    cr_assert_eq(mb_wsclient_connect(&ws, gw->port, "/mcp", "mcp", IO_MS, err, sizeof(err)), 0,
                 "%s", err);
    call("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":"
         "{\"name\":\"S_echo\",\"arguments\":{\"message\":\"hi\"}}}");
    call("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/"
         "call\",\"params\":{\"name\":\"S_nope\"}}");
    call("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":"
         "{\"name\":\"S_sleep\",\"arguments\":{\"ms\":2000}}}");
    call("{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/list\"}");
    wait_lines(path, 4);

    char *text = mb_test_read_file(path, NULL);
    cr_assert_not_null(text);
    const char *want_backend[] = {"solo", "solo", "solo", "gateway"};
    const char *want_tool[] = {"S_echo", "S_nope", "S_sleep", NULL};
    const char *want_method[] = {"tools/call", "tools/call", "tools/call", "tools/list"};
    const int want_code[] = {0, -32602, -32001, 0};
    size_t i = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save), i++) {
        cr_assert_lt(i, 4, "more lines than requests: %s", line);
        cJSON *o = cJSON_Parse(line);
        cr_assert(cJSON_IsObject(o), "not a JSON object: %s", line);
        cr_expect_str_eq(field(o, "method")->valuestring, want_method[i], "%s", line);
        cr_expect_str_eq(field(o, "backend")->valuestring, want_backend[i], "%s", line);
        const cJSON *tool = field(o, "tool");
        if (want_tool[i])
            cr_expect(cJSON_IsString(tool) && strcmp(tool->valuestring, want_tool[i]) == 0, "%s",
                      line);
        else
            cr_expect(cJSON_IsNull(tool), "%s", line);
        cr_expect_eq(field(o, "code")->valueint, want_code[i], "%s", line);
        cr_expect_str_eq(field(o, "status")->valuestring, want_code[i] ? "error" : "ok", "%s",
                         line);
        cr_expect_gt(field(o, "bytes_in")->valuedouble, 0);
        cr_expect_gt(field(o, "bytes_out")->valuedouble, 0);
        if (i == 2) /* timed out after the backend's 500ms */
            cr_expect_geq(field(o, "duration_ms")->valuedouble, 450, "%s", line);
        cJSON_Delete(o);
    }
    cr_expect_eq(i, 4);
    free(text);
    mb_test_must_finish(gw);
    remove(path);
    rmdir(dir);
}
