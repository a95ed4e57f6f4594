/*
 * tests/integration/ratelimit_client.h — what the rate-limit integration
 * tests share (header only, static functions): WebSocket connections pinned
 * to a known worker (found through the shm dump), one request answered as
 * admitted or rejected with its -32029 data checked, and counters read from
 * `mcp-bridge-shm --json`.
 */
#ifndef MB_TESTS_RATELIMIT_CLIENT_H
#define MB_TESTS_RATELIMIT_CLIENT_H

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "tests/support/daemon.h"
#include "tests/support/testutil.h"
#include "tests/support/wsclient.h"

#define RL_IO_MS 5000

/* Connections open on a gateway, by worker pid, from its shm dump. */
static inline uint64_t rl_conns_of(const struct mb_test_daemon *d, pid_t pid)
{
    struct mb_test_shm s;
    memset(&s, 0, sizeof(s));
    cr_assert_eq(mb_test_shm_read(d, &s), 0);
    const struct mb_test_worker *w = mb_test_shm_find_pid(&s, pid);
    uint64_t n = w ? w->connections : 0;
    mb_test_shm_clear(&s);
    return n;
}

/*
 * Opens WebSocket connections to d until one lands on each of the n running
 * workers (at most 24 tries); out[i] is a connection served by worker i
 * (slot order of the dump). Extra connections are kept open in spare (the
 * caller frees them). Fails the test when some worker never gets one.
 */
static inline void rl_connect_each_worker(const struct mb_test_daemon *d, size_t n,
                                          struct mb_wsclient **out, struct mb_wsclient **spare,
                                          size_t *nspare, size_t spare_cap)
{
    struct mb_test_shm s;
    struct mb_test_worker run[8];
    memset(&s, 0, sizeof(s));
    cr_assert_eq(mb_test_shm_wait_running(d, n, 0, &s, 10000), 0);
    size_t nrun = mb_test_shm_running(&s, run, 8);
    mb_test_shm_clear(&s);
    cr_assert_eq(nrun, n);
    for (size_t i = 0; i < n; i++)
        out[i] = NULL;
    size_t found = 0;
    for (int tries = 0; tries < 24 && found < n; tries++) {
        uint64_t before[8];
        for (size_t i = 0; i < n; i++)
            before[i] = rl_conns_of(d, run[i].pid);
        struct mb_wsclient *c = NULL;
        char err[256];
        cr_assert_eq(mb_wsclient_connect(&c, d->port, "/", NULL, RL_IO_MS, err, sizeof(err)), 0,
                     "%s", err);
        /* The worker counts the connection when it adopts it: wait for it. */
        ssize_t owner = -1;
        for (int k = 0; k < 200 && owner < 0; k++) {
            for (size_t i = 0; i < n; i++)
                if (rl_conns_of(d, run[i].pid) > before[i])
                    owner = (ssize_t)i;
            if (owner < 0)
                mb_test_sleep_ms(10);
        }
        cr_assert_geq(owner, 0, "no worker counted the new connection");
        if (out[owner] == NULL) {
            out[owner] = c;
            found++;
        } else {
            cr_assert_lt(*nspare, spare_cap);
            spare[(*nspare)++] = c;
        }
    }
    cr_assert_eq(found, n, "connections did not reach every worker");
}

struct rl_answer {
    bool admitted;
    long retry_after_ms; /* rejected: data.retry_after_ms */
    double limit;
    long burst;
};

/* Sends tools/list with id and classifies the answer: a result is admitted;
 * anything else must be the -32029 rejection with its data. */
static inline struct rl_answer rl_call(struct mb_wsclient *c, int id)
{
    char req[128];
    struct mb_wsmsg m;
    struct rl_answer a = {0};
    snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/list\"}", id);
    int rc = mb_wsclient_call(c, req, &m, RL_IO_MS);
    cr_assert_eq(rc, 0, "no answer to %s: %s", req, strerror(-rc));
    cr_assert_eq(m.opcode, MB_WS_OP_TEXT, "answer to %s: opcode %d, close %d", req, m.opcode,
                 m.close_code);
    cJSON *j = cJSON_Parse(m.data);
    cr_assert_not_null(j, "not JSON: %s", m.data);
    const cJSON *jid = cJSON_GetObjectItemCaseSensitive(j, "id");
    cr_assert(cJSON_IsNumber(jid) && jid->valueint == id, "id not echoed: %s", m.data);
    if (cJSON_GetObjectItemCaseSensitive(j, "result") != NULL) {
        a.admitted = true;
    } else {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(e, "data");
        cr_assert(cJSON_IsNumber(code) && code->valueint == -32029, "not -32029: %s", m.data);
        cr_assert(cJSON_IsString(msg) && strcmp(msg->valuestring, "rate limit exceeded") == 0, "%s",
                  m.data);
        const cJSON *ra = cJSON_GetObjectItemCaseSensitive(data, "retry_after_ms");
        const cJSON *lim = cJSON_GetObjectItemCaseSensitive(data, "limit");
        const cJSON *bu = cJSON_GetObjectItemCaseSensitive(data, "burst");
        cr_assert(cJSON_IsNumber(ra) && cJSON_IsNumber(lim) && cJSON_IsNumber(bu), "data: %s",
                  m.data);
        a.retry_after_ms = (long)ra->valuedouble;
        a.limit = lim->valuedouble;
        a.burst = (long)bu->valuedouble;
        cr_assert_geq(a.retry_after_ms, 1, "%s", m.data);
    }
    cJSON_Delete(j);
    return a;
}

/* A counter's total from `mcp-bridge-shm --json` of d. */
static inline double rl_counter(const struct mb_test_daemon *d, const char *name)
{
    char bin[PATH_MAX], *out = NULL;
    int st;
    mb_test_bin_path(bin, sizeof(bin), "mcp-bridge-shm");
    char *argv[] = {bin, "--json", (char *)d->shm_path, NULL};
    cr_assert_eq(mb_test_run(argv, 10000, &st, &out), 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "mcp-bridge-shm: %s", out);
    cJSON *j = cJSON_Parse(out);
    cr_assert_not_null(j, "mcp-bridge-shm --json: %s", out);
    const cJSON *v =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "counters"), name);
    cr_assert(cJSON_IsNumber(v), "no counter %s in %s", name, out);
    double r = v->valuedouble;
    cJSON_Delete(j);
    free(out);
    return r;
}

/* How many times needle occurs in the daemon's error log. */
static inline int rl_log_count(const struct mb_test_daemon *d, const char *needle)
{
    char *log = mb_test_daemon_log(d);
    int n = 0;
    for (const char *p = log; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(log);
    return n;
}

#endif
