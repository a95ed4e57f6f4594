/*
 * tests/unit/shm/test_dump.c — the mcp-bridge-shm tool (shm/dump.c), run as
 * a program on regions made by the test: its --json output, text output,
 * filters, --watch rates, and refusals (missing file, other layout major).
 * The tool is found at $MB_BUILD_DIR/mcp-bridge-shm (default build/).
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/time.h"
#include "shm/counters.h"
#include "shm/shm.h"
#include "tests/unit/shm/shm_test_util.h"

struct run {
    int status; /* exit status, or -1 if it did not exit normally */
    char out[65536];
    char err[4096];
};

static void slurp(int fd, char *buf, size_t len)
{
    size_t n = 0;
    ssize_t r;
    lseek(fd, 0, SEEK_SET);
    while (n + 1 < len && (r = read(fd, buf + n, len - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
}

/* Runs the tool with argv (NULL-terminated, without argv[0]), bounded to 20 s. */
static void run_tool(struct run *r, const char *const *args)
{
    const char *dir = getenv("MB_BUILD_DIR") ? getenv("MB_BUILD_DIR") : "build";
    char tool[512];
    snprintf(tool, sizeof(tool), "%s/mcp-bridge-shm", dir);
    cr_assert_eq(access(tool, X_OK), 0, "%s not built (set MB_BUILD_DIR)", tool);
    const char *argv[16] = {tool};
    for (int i = 0; args[i] && i < 14; i++)
        argv[i + 1] = args[i];

    FILE *out = tmpfile(), *err = tmpfile();
    cr_assert(out && err);
    pid_t pid = shm_test_fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        dup2(fileno(out), 1);
        dup2(fileno(err), 2);
        execv(tool, (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    for (int waited_ms = 0;; waited_ms += 10) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (waited_ms > 20000) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            cr_assert_fail("%s did not finish in 20 s", tool);
        }
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    r->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    slurp(fileno(out), r->out, sizeof(r->out));
    slurp(fileno(err), r->err, sizeof(r->err));
    fclose(out);
    fclose(err);
}

/* A region as a gateway with two running workers would leave it. */
static struct mb_shm *make_region(const char *path, int32_t *pids)
{
    struct mb_shm *s = shm_test_create(path, 6);
    mb_shm_set_generation(s, 3);
    for (uint32_t slot = 0; slot < 2; slot++) {
        int i = mb_shm_worker_alloc(s, slot, 3);
        cr_assert_eq(i, (int)slot);
        mb_shm_worker_started(s, (uint32_t)i, pids[slot]);
        mb_shm_worker_set_state(s, (uint32_t)i, MB_WORKER_RUNNING);
        for (int c = 0; c < (int)slot + 2; c++) {
            mb_shm_worker_conn_add(s, (uint32_t)i, 1);
            mb_counters_add(s, (uint32_t)i, MB_CTR_CONNECTIONS_TOTAL, 1);
            mb_counters_add(s, (uint32_t)i, MB_CTR_CONNECTIONS_ACTIVE, 1);
        }
        mb_counters_add(s, (uint32_t)i, MB_CTR_REQUESTS_TOTAL, 1000 * (slot + 1));
        mb_counters_add(s, (uint32_t)i, MB_CTR_REQUEST_ERRORS_PARSE_ERROR, 4);
        for (int k = 0; k < 10; k++)
            mb_counters_observe(s, (uint32_t)i, MB_HIST_REQUEST_DURATION, 2000000); /* 2 ms */
    }
    mb_shm_worker_reaped(s, 1, 9, false); /* slot 1 died... */
    mb_shm_worker_respawn(s, 1);          /* ...and came back */
    mb_shm_worker_started(s, 1, pids[2]);
    mb_counters_add(s, mb_counters_master_row(s), MB_CTR_RELOADS, 2);
    mb_shm_publish(s);
    return s;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsNumber(v), "%s is a number", key);
    return v->valuedouble;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsString(v), "%s is a string", key);
    return v->valuestring;
}

Test(dump, json_shows_header_workers_counters_histograms, .timeout = 60)
{
    char path[128];
    shm_test_path(path, sizeof(path), "dumpjson");
    int32_t pids[3] = {111, 222, 333};
    struct mb_shm *s = make_region(path, pids);

    struct run r;
    run_tool(&r, (const char *[]){"--json", path, NULL});
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cJSON *root = cJSON_Parse(r.out);
    cr_assert_not_null(root, "output is JSON: %s", r.out);

    const cJSON *h = cJSON_GetObjectItemCaseSensitive(root, "header");
    cr_assert(cJSON_IsObject(h));
    cr_expect_eq(num(h, "layout_major"), MB_SHM_LAYOUT_MAJOR);
    cr_expect_eq(num(h, "generation"), 3);
    cr_expect_eq(num(h, "master_pid"), getpid());
    cr_expect_str_eq(str(h, "state"), "ready");
    cr_expect_eq(num(h, "size"), (double)s->hdr->total_size);

    const cJSON *ws = cJSON_GetObjectItemCaseSensitive(root, "workers");
    cr_assert(cJSON_IsArray(ws));
    cr_assert_eq(cJSON_GetArraySize(ws), 2, "only records in use");
    const cJSON *w0 = cJSON_GetArrayItem(ws, 0), *w1 = cJSON_GetArrayItem(ws, 1);
    cr_expect_eq(num(w0, "slot"), 0);
    cr_expect_eq(num(w0, "pid"), 111);
    cr_expect_eq(num(w0, "generation"), 3);
    cr_expect_str_eq(str(w0, "state"), "running");
    cr_expect_eq(num(w0, "restarts"), 0);
    cr_expect_eq(num(w0, "connections"), 2);
    cr_expect_eq(num(w1, "slot"), 1);
    cr_expect_eq(num(w1, "pid"), 333);
    cr_expect_str_eq(str(w1, "state"), "starting");
    cr_expect_eq(num(w1, "restarts"), 1);
    cr_expect_eq(num(w1, "connections"), 0);
    cr_expect_eq(num(w1, "last_exit_status"), 9);

    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(root, "counters");
    cr_assert(cJSON_IsObject(cs));
    cr_expect_eq(cJSON_GetArraySize(cs), MB_CTR__COUNT, "every counter listed");
    cr_expect_eq(num(cs, "requests_total"), 3000, "live row + folded row");
    cr_expect_eq(num(cs, "request_errors.parse_error"), 8);
    cr_expect_eq(num(cs, "connections_total"), 5);
    cr_expect_eq(num(cs, "connections_active"), 2, "the dead worker's gauge is gone");
    cr_expect_eq(num(cs, "reloads"), 2);
    cr_expect_eq(num(cs, "worker_restarts"), 1);
    cr_expect(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "rates")));

    const cJSON *hs = cJSON_GetObjectItemCaseSensitive(root, "histograms");
    const cJSON *rd = cJSON_GetObjectItemCaseSensitive(hs, "request_duration");
    cr_assert(cJSON_IsObject(rd));
    cr_expect_eq(num(rd, "count"), 20);
    cr_expect_float_eq(num(rd, "mean_ms"), 2.0, 1e-9);
    double p50 = num(rd, "p50_ms");
    cr_expect(p50 > 1.0 && p50 <= 2.5, "p50 %g in the (1, 2.5] ms bucket", p50);
    const cJSON *bs = cJSON_GetObjectItemCaseSensitive(rd, "buckets");
    cr_assert_eq(cJSON_GetArraySize(bs), MB_HIST_NBUCKETS + 1);
    cr_expect_eq(num(cJSON_GetArrayItem(bs, 1), "count"), 0, "le 1 ms");
    cr_expect_eq(num(cJSON_GetArrayItem(bs, 2), "count"), 20, "le 2.5 ms, cumulative");
    cr_expect_str_eq(str(cJSON_GetArrayItem(bs, MB_HIST_NBUCKETS), "le_ms"), "+Inf");

    cJSON_Delete(root);
    mb_shm_close(&s);
    unlink(path);
}

Test(dump, filter_and_text_output, .timeout = 60)
{
    char path[128];
    shm_test_path(path, sizeof(path), "dumptext");
    int32_t pids[3] = {4711, 4712, 4713};
    struct mb_shm *s = make_region(path, pids);
    mb_shm_retire(s); /* as a stopped gateway leaves it */

    struct run r;
    run_tool(&r, (const char *[]){"--json", "-f", "request_errors.*", path, NULL});
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cJSON *root = cJSON_Parse(r.out);
    cr_assert_not_null(root);
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(root, "counters");
    cr_expect_eq(cJSON_GetArraySize(cs), 5, "the five request_errors kinds");
    cr_expect_null(cJSON_GetObjectItemCaseSensitive(cs, "requests_total"));
    cr_expect_str_eq(str(cJSON_GetObjectItemCaseSensitive(root, "header"), "state"), "retired");
    cJSON_Delete(root);

    run_tool(&r, (const char *[]){path, NULL});
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_expect(strstr(r.out, "state      retired, generation 3") != NULL, "%s", r.out);
    cr_expect(strstr(r.out, "4711") != NULL, "worker pid shown");
    cr_expect(strstr(r.out, "running") != NULL);
    cr_expect(strstr(r.out, "signal 9") != NULL, "last exit of the respawned record");
    cr_expect(strstr(r.out, "requests_total") != NULL);
    cr_expect(strstr(r.out, "request_duration") != NULL);
    mb_shm_close(&s);
    unlink(path);
}

Test(dump, watch_rates_over_the_interval, .timeout = 60)
{
    char path[128];
    shm_test_path(path, sizeof(path), "dumpwatch");
    int32_t pids[3] = {1, 2, 3};
    struct mb_shm *s = make_region(path, pids);

    /* A child keeps counting while the tool samples twice, 0.5 s apart. */
    pid_t pid = shm_test_fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        for (int i = 0; i < 400; i++) {
            mb_counters_add(s, 0, MB_CTR_BYTES_OUT, 1000);
            struct timespec ts = {0, 5 * 1000000};
            nanosleep(&ts, NULL);
        }
        _exit(0);
    }
    struct run r;
    run_tool(&r, (const char *[]){"--json", "--watch", "0.5", "-n", "2", path, NULL});
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);

    char *nl = strchr(r.out, '\n');
    cr_assert_not_null(nl, "two lines");
    *nl = '\0';
    cJSON *first = cJSON_Parse(r.out), *second = cJSON_Parse(nl + 1);
    cr_assert(first && second, "each line is one JSON object");
    double b1 = num(cJSON_GetObjectItemCaseSensitive(first, "counters"), "bytes_out");
    double b2 = num(cJSON_GetObjectItemCaseSensitive(second, "counters"), "bytes_out");
    double interval = num(second, "rate_interval_s");
    double rate = num(cJSON_GetObjectItemCaseSensitive(second, "rates"), "bytes_out");
    cr_expect_gt(b2, b1, "counting went on between the samples");
    cr_expect(interval >= 0.5 && interval < 10, "interval %g", interval);
    cr_expect_float_eq(rate, (b2 - b1) / interval, 1e-6 * rate + 1e-9);
    cJSON_Delete(first);
    cJSON_Delete(second);
    mb_shm_close(&s);
    unlink(path);
}

Test(dump, refuses_missing_file_and_other_major, .timeout = 60)
{
    char path[128];
    shm_test_path(path, sizeof(path), "dumpbad");
    struct run r;
    run_tool(&r, (const char *[]){"--json", path, NULL});
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "no such file") != NULL, "%s", r.err);
    cr_expect_eq(r.out[0], '\0', "nothing on stdout");

    struct mb_shm *s = shm_test_create(path, 2);
    mb_shm_close(&s);
    int fd = open(path, O_WRONLY);
    uint16_t major = 9;
    cr_assert_eq(pwrite(fd, &major, 2, offsetof(struct mb_shm_header, layout_major)), 2);
    close(fd);
    run_tool(&r, (const char *[]){path, NULL});
    cr_expect_eq(r.status, 1);
    char want[256];
    snprintf(want, sizeof(want), "%s: shm layout major 9, this tool reads %d", path,
             MB_SHM_LAYOUT_MAJOR);
    cr_expect(strstr(r.err, want) != NULL, "stderr: %s", r.err);

    run_tool(&r, (const char *[]){"--watch", "soon", path, NULL});
    cr_expect_eq(r.status, 2, "usage error");
    unlink(path);
}

Test(dump, finds_the_region_through_the_config, .timeout = 60)
{
    char path[128], conf[160];
    shm_test_path(path, sizeof(path), "dumpconf");
    snprintf(conf, sizeof(conf), "%s.yaml", path);
    int32_t pids[3] = {5, 6, 7};
    struct mb_shm *s = make_region(path, pids);
    FILE *f = fopen(conf, "w");
    cr_assert_not_null(f);
    fprintf(f, "shm:\n  path: %s\n", path);
    fclose(f);

    struct run r;
    run_tool(&r, (const char *[]){"-j", "-c", conf, NULL});
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cJSON *root = cJSON_Parse(r.out);
    cr_assert_not_null(root);
    cr_expect_str_eq(str(cJSON_GetObjectItemCaseSensitive(root, "header"), "path"), path);
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "workers")), 2);
    cJSON_Delete(root);

    /* A broken config is a configuration error (2), with the loader's message. */
    f = fopen(conf, "w");
    cr_assert_not_null(f);
    fprintf(f, "shm:\n  no_such_key: 1\n");
    fclose(f);
    run_tool(&r, (const char *[]){"-c", conf, NULL});
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, conf) != NULL, "the message names the file: %s", r.err);
    unlink(conf);
    mb_shm_close(&s);
    unlink(path);
}

Test(dump, ratelimit_occupancy_and_busiest_keys, .timeout = 60)
{
    char path[128];
    shm_test_path(path, sizeof(path), "dumprl");
    struct mb_shm *s = shm_test_create_rl(path, 4, 100);
    mb_shm_publish(s);
    uint64_t now = mb_time_mono_ns(), retry, hour = 3600ull * 1000000000ull;
    const char *names[3] = {"alice", "bob", "carol"};
    for (int i = 0; i < 3; i++) {
        struct mb_rl_key k = mb_ratelimit_key(&s->ratelimit, names[i], strlen(names[i]));
        for (int j = 0; j <= i; j++) /* carol is the busiest: 3 hours ahead */
            cr_assert_eq(mb_ratelimit_take(&s->ratelimit, k, now, hour, 10 * hour, &retry),
                         MB_RATELIMIT_ALLOW);
    }
    struct run r;
    run_tool(&r, (const char *[]){"--json", path, NULL});
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cJSON *root = cJSON_Parse(r.out);
    cr_assert_not_null(root);
    const cJSON *rl = cJSON_GetObjectItemCaseSensitive(root, "ratelimit");
    cr_assert(cJSON_IsObject(rl), "%s", r.out);
    cr_expect_eq(num(rl, "capacity"), 100);
    cr_expect_eq(num(rl, "slots"), 256);
    cr_expect_eq(num(rl, "live"), 3);
    cr_expect_eq(num(rl, "expired"), 0);
    cr_expect_eq(num(rl, "claimed"), 0);
    cr_expect_eq(num(rl, "empty"), 253);
    const cJSON *top = cJSON_GetObjectItemCaseSensitive(rl, "busiest");
    cr_assert_eq(cJSON_GetArraySize(top), 3);
    double b0 = num(cJSON_GetArrayItem(top, 0), "backlog_ms");
    double b2 = num(cJSON_GetArrayItem(top, 2), "backlog_ms");
    cr_expect(b0 > 3 * 3600e3 - 60e3 && b0 <= 3 * 3600e3, "carol: 3 h ahead, got %g ms", b0);
    cr_expect(b2 > 3600e3 - 60e3 && b2 <= 3600e3, "alice: 1 h ahead, got %g ms", b2);
    struct mb_rl_key carol = mb_ratelimit_key(&s->ratelimit, "carol", 5);
    char want[40];
    snprintf(want, sizeof(want), "%016llx%016llx", (unsigned long long)carol.hi,
             (unsigned long long)carol.lo);
    cr_expect_str_eq(str(cJSON_GetArrayItem(top, 0), "key"), want);
    cJSON_Delete(root);

    run_tool(&r, (const char *[]){path, NULL});
    cr_assert_eq(r.status, 0);
    cr_expect(strstr(r.out, "3 live") != NULL, "%s", r.out);
    cr_expect(strstr(r.out, want) != NULL);
    mb_shm_close(&s);
    unlink(path);

    /* A region without a table says so. */
    s = shm_test_create(path, 2);
    run_tool(&r, (const char *[]){"--json", path, NULL});
    root = cJSON_Parse(r.out);
    cr_assert_not_null(root);
    cr_expect(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(root, "ratelimit")));
    cJSON_Delete(root);
    mb_shm_close(&s);
    unlink(path);
}
