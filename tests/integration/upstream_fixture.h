/*
 * tests/integration/upstream_fixture.h — the fixture shared by
 * test_upstream_http.c and test_upstream_ws.c: one test server peer
 * (UPSTREAM_MODE, "--http" or "--ws", defined before the include) as the one
 * backend of a one-worker daemon, and one WebSocket client of the gateway.
 * Header only and included by exactly one test file each: it defines the
 * file's state (gw, client, srv) and its helpers, so both tests read alike.
 *
 * Replies are read strictly: the next message must be the answer (no
 * notification is skipped unless a test reads them itself).
 */
#ifndef MB_TESTS_UPSTREAM_FIXTURE_H
#define MB_TESTS_UPSTREAM_FIXTURE_H

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/integration/upstream_peer.h"
#include "tests/support/daemon.h"
#include "tests/support/daemon_assert.h"
#include "tests/support/testutil.h"
#include "tests/support/ws_assert.h"
#include "tests/support/wsclient.h"

#ifndef UPSTREAM_MODE
#error "define UPSTREAM_MODE (\"--http\" or \"--ws\") before including upstream_fixture.h"
#endif

#define IO_MS 8000

static struct mb_test_daemon *gw;
static struct mb_wsclient *client;
static struct peer srv;

static inline void teardown(void)
{
    mb_wsclient_free(&client);
    mb_test_daemon_free(&gw);
    peer_stop(&srv);
}

/* The peer, then the daemon (pool: extra config before the backends), then
 * the client. */
static inline void start(const char *pool)
{
    peer_gateway_start(&srv, UPSTREAM_MODE, &gw, 1, pool,
                       "    headers: {X-Backend-Token: secret}\n"
                       "    request_timeout: 3s\n");
    char err[256];
    cr_assert_eq(mb_wsclient_connect(&client, gw->port, "/", NULL, IO_MS, err, sizeof(err)), 0,
                 "%s", err);
}

static inline void finish(void)
{
    mb_wsclient_free(&client);
    mb_test_must_finish_within(gw, 8000);
}

/* The next message, which must be the answer (no notification skipped). */
static inline cJSON *recv_json(char **raw)
{
    return mb_test_ws_recv(client, false, IO_MS, raw);
}

static inline cJSON *call(const char *req, char **raw)
{
    return mb_test_ws_call(client, req, false, IO_MS, raw);
}

/* Calls echo with message and returns the reply (caller frees). */
static inline cJSON *echo(int id, const char *message, char **raw)
{
    char req[512];
    snprintf(req, sizeof(req),
             "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":"
             "\"echo\",\"arguments\":{\"message\":\"%s\"}}}",
             id, message);
    return call(req, raw);
}

/* The backend's count of methods[name] or tools[name]. */
static inline int counted(const char *section, const char *name)
{
    return mb_test_ws_counted(client, "counter", section, name, false, IO_MS);
}

/* A call while the backend is down: error -32010 naming the backend ("h"
 * for the HTTP peer, "w" for the WebSocket one). */
static inline void expect_backend_down(int id)
{
    char *raw = NULL;
    const char *name = strcmp(UPSTREAM_MODE, "--ws") == 0 ? "w" : "h";
    cJSON *j = echo(id, "dead", &raw);
    cr_expect_eq(mb_test_error_code(j), -32010, "%s", raw);
    const cJSON *b = mb_test_get(mb_test_get(mb_test_get(j, "error"), "data"), "backend");
    cr_expect(cJSON_IsString(b) && strcmp(b->valuestring, name) == 0, "%s", raw);
    free(raw);
    cJSON_Delete(j);
}

/* Restarts the peer on port and expects echo to work again within 15 s. */
static inline void restart_until_back(int port)
{
    char *raw = NULL;
    bool ok = false;
    peer_start(&srv, UPSTREAM_MODE, port);
    int64_t deadline = mb_test_now_ms() + 15000;
    for (int id = 100; !ok && mb_test_now_ms() < deadline; id++) {
        cJSON *j = echo(id, "back", &raw);
        ok = mb_test_text_of(j) && strcmp(mb_test_text_of(j), "back") == 0;
        free(raw);
        cJSON_Delete(j);
        if (!ok)
            mb_test_sleep_ms(200);
    }
    cr_expect(ok, "the backend did not come back");
}

/* `mcp-bridge -t` refuses the extra config yaml (exit status 1) with want
 * in its output; i is the case's number, for the messages. */
static inline void expect_config_refused(size_t i, const char *yaml, const char *want)
{
    struct mb_test_daemon *d = NULL;
    struct mb_test_conf conf = {.workers = 1, .extra = yaml};
    cr_assert_eq(mb_test_daemon_new(&d, &conf), 0);
    char bin[PATH_MAX], *out = NULL;
    int status;
    mb_test_bin_path(bin, sizeof(bin), "mcp-bridge");
    char *argv[] = {bin, "-t", "-c", d->conf_path, NULL};
    cr_assert_eq(mb_test_run(argv, 10000, &status, &out), 0);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 1, "case %zu: status %d: %s", i, status,
              out ? out : "");
    cr_expect(out && strstr(out, want), "case %zu: want \"%s\" in: %s", i, want, out ? out : "");
    free(out);
    mb_test_daemon_free(&d);
}

/* tools/list lists echo; echo answers message; the backend saw one echo
 * and one initialize — one handshake for the whole worker, not one per
 * call. */
static inline void list_and_call(const char *message)
{
    start(NULL);
    char *raw = NULL;
    cJSON *j = call("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}", &raw);
    cr_assert(mb_test_has_tool(j, "echo"), "echo not listed: %s", raw);
    free(raw);
    cJSON_Delete(j);
    j = echo(2, message, &raw);
    cr_assert_str_eq(mb_test_text_of(j) ? mb_test_text_of(j) : "", message, "%s", raw);
    free(raw);
    cJSON_Delete(j);
    cr_expect_eq(counted("tools", "echo"), 1);
    cr_expect_eq(counted("methods", "initialize"), 1);
    finish();
}

#endif
