/*
 * tests/support/ws_assert.h — one JSON-RPC exchange over the test
 * WebSocket client, and the small cJSON look-ups every integration test
 * makes on a reply, as Criterion assertions (header only, like
 * daemon_assert.h: the support library itself does not depend on
 * Criterion). Shared by the integration tests that drive the daemon as an
 * MCP client, so the reading of a reply is written once.
 *
 * mb_test_ws_recv() fails the test unless the next message arrives within
 * io_ms, is a text frame and parses as JSON. With skip_notes it passes over
 * notifications (messages without an id, at most 100 of them) to the next
 * response; without it the very next message is the answer, so a stray
 * notification fails a test that does not expect one.
 */
#ifndef MB_TESTS_WS_ASSERT_H
#define MB_TESTS_WS_ASSERT_H

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/wsclient.h"

static inline const cJSON *mb_test_get(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

/* The text of a tools/call result's first content item, or NULL. */
static inline const char *mb_test_text_of(const cJSON *reply)
{
    const cJSON *content = mb_test_get(mb_test_get(reply, "result"), "content");
    const cJSON *t = mb_test_get(cJSON_GetArrayItem(content, 0), "text");
    return cJSON_IsString(t) ? t->valuestring : NULL;
}

/* The error code of a reply; 0 when it is not an error. */
static inline int mb_test_error_code(const cJSON *reply)
{
    const cJSON *code = mb_test_get(mb_test_get(reply, "error"), "code");
    return cJSON_IsNumber(code) ? code->valueint : 0;
}

/* Whether a tools/list reply lists a tool called name. */
static inline bool mb_test_has_tool(const cJSON *list, const char *name)
{
    const cJSON *t;
    cJSON_ArrayForEach(t, mb_test_get(mb_test_get(list, "result"), "tools"))
    {
        const cJSON *n = mb_test_get(t, "name");
        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
            return true;
    }
    return false;
}

/* The next message (or, with skip_notes, the next response) parsed; its
 * text into *raw when raw is not NULL (caller frees both). */
static inline cJSON *mb_test_ws_recv(struct mb_wsclient *c, bool skip_notes, int io_ms, char **raw)
{
    for (int i = 0; i < 100; i++) {
        struct mb_wsmsg m;
        int rc = mb_wsclient_recv(c, &m, io_ms);
        cr_assert_eq(rc, 0, "no message: %s", strerror(-rc));
        cr_assert_eq(m.opcode, MB_WS_OP_TEXT, "opcode %d (close %d)", m.opcode, m.close_code);
        cJSON *j = cJSON_Parse(m.data);
        cr_assert_not_null(j, "not JSON: %s", m.data);
        if (skip_notes && mb_test_get(j, "id") == NULL) {
            cJSON_Delete(j);
            continue;
        }
        if (raw)
            *raw = strdup(m.data);
        return j;
    }
    cr_assert_fail("no response among 100 messages");
    return NULL;
}

/* Sends req and returns its answer as mb_test_ws_recv() reads it. */
static inline cJSON *mb_test_ws_call(struct mb_wsclient *c, const char *req, bool skip_notes,
                                     int io_ms, char **raw)
{
    cr_assert_eq(mb_wsclient_send_text(c, req, io_ms), 0);
    return mb_test_ws_recv(c, skip_notes, io_ms, raw);
}

/* The test server's own count of methods[name] or tools[name], asked with
 * its counter tool (named counter_tool as the gateway lists it). */
static inline int mb_test_ws_counted(struct mb_wsclient *c, const char *counter_tool,
                                     const char *section, const char *name, bool skip_notes,
                                     int io_ms)
{
    char req[256], *raw = NULL;
    snprintf(req, sizeof(req),
             "{\"jsonrpc\":\"2.0\",\"id\":900,\"method\":\"tools/call\",\"params\":{\"name\":"
             "\"%s\",\"arguments\":{}}}",
             counter_tool);
    cJSON *j = mb_test_ws_call(c, req, skip_notes, io_ms, &raw);
    const cJSON *sc = mb_test_get(mb_test_get(j, "result"), "structuredContent");
    cr_assert(cJSON_IsObject(sc), "counter without structuredContent: %s", raw);
    const cJSON *n = mb_test_get(mb_test_get(sc, section), name);
    int v = cJSON_IsNumber(n) ? n->valueint : 0;
    free(raw);
    cJSON_Delete(j);
    return v;
}

#endif
