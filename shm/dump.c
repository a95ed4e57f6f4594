/*
 * shm/dump.c — mcp-bridge-shm, the read-only viewer of the shared-memory
 * region (what varnishstat is to Varnish). It maps the region PROT_READ, so it
 * can never disturb a running gateway, and it works as well on a region left
 * behind by a stopped one.
 *
 * Output: the header, the worker records in use, every counter (total and
 * rate per second), the latency histograms as percentiles, and the
 * rate-limit table's occupancy and busiest keys, and per shared cache its
 * entries, bytes, hit ratio and evictions, and per backend (layout.h §7) the
 * workers that have it up, request outcomes, EWMA latency, requests in flight
 * and pool connections; as text, or as one JSON object (--json) whose
 * top-level names (header, workers, counters, rates, histograms, ratelimit,
 * caches, backends) are a contract with the tests and with operators'
 * scripts. --watch refreshes; the rate is then over the refresh interval,
 * otherwise the average since the region was created. When the gateway
 * replaces its region (the file at PATH is a new inode), --watch follows it.
 *
 * Exit status: 0 ok, 1 the region cannot be read (missing, another layout
 * major, damaged), 2 usage or configuration error.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/time.h"
#include "conf/conf.h"
#include "shm/backends.h"
#include "shm/counters.h"
#include "shm/shm.h"

/* X(long name, short, has_arg, ARG, help): generates getopt's tables and --help. */
#define DUMP_OPTIONS(X)                                                                            \
    X("json", 'j', no_argument, NULL, "print one JSON object (one per line with --watch)")         \
    X("filter", 'f', required_argument, "PATTERN",                                                 \
      "show only counters and histograms whose name matches the glob PATTERN (repeatable)")        \
    X("watch", 'w', required_argument, "SECONDS",                                                  \
      "refresh every SECONDS; rates over the interval")                                            \
    X("count", 'n', required_argument, "N", "with --watch, stop after N refreshes (0 = never)")    \
    X("config", 'c', required_argument, "FILE", "find the region at shm.path of a gateway config") \
    X("version", 'V', no_argument, NULL, "print the version and exit")                             \
    X("help", 'h', no_argument, NULL, "print this help and exit")

static const struct option long_options[] = {
#define MB_X_(name, sh, has, arg, help) {name, has, NULL, sh},
    DUMP_OPTIONS(MB_X_)
#undef MB_X_
        {NULL, 0, NULL, 0}};

static void usage(FILE *f)
{
    fprintf(f, "usage: mcp-bridge-shm [options] [PATH]\n"
               "Prints the shared-memory region of mcp-bridge (default " MB_SHM_DEFAULT_PATH ").\n"
               "options:\n");
    char left[64];
#define MB_X_(name, sh, has, arg, help)                                                            \
    snprintf(left, sizeof(left), "-%c, --%s%s%s", sh, name, arg ? " " : "", arg ? arg : "");       \
    fprintf(f, "  %-22s %s\n", left, help);
    DUMP_OPTIONS(MB_X_)
#undef MB_X_
}

static void build_optstring(char *buf, size_t len)
{
    size_t n = 0;
    for (const struct option *o = long_options; o->name != NULL && n + 3 < len; o++) {
        buf[n++] = (char)o->val;
        if (o->has_arg == required_argument)
            buf[n++] = ':';
    }
    buf[n] = '\0';
}

/* ---------------------------------------------------------------- snapshot */

struct snap {
    uint64_t mono_ns;
    uint64_t ctr[MB_CTR__COUNT];
    size_t nctr;
    struct mb_shm_hist hist[MB_HIST__COUNT];
    size_t nhist;
};

static void take(const struct mb_shm *shm, struct snap *s)
{
    s->mono_ns = mb_time_mono_ns();
    s->nctr = mb_counters_snapshot(shm, s->ctr, MB_CTR__COUNT);
    s->nhist = mb_counters_hist_snapshot(shm, s->hist, MB_HIST__COUNT);
}

struct view {
    const char *path;
    int json;
    int watching;
    char **filters;
    size_t nfilters;
};

static int shown(const struct view *v, const char *name)
{
    if (v->nfilters == 0)
        return 1;
    for (size_t i = 0; i < v->nfilters; i++)
        if (fnmatch(v->filters[i], name, 0) == 0)
            return 1;
    return 0;
}

/* Seconds the rates are computed over, and the baseline; prev NULL = since
 * the region's birth (baseline zero). */
static double rate_of(const struct snap *cur, const struct snap *prev, size_t i, double interval)
{
    uint64_t base = prev ? prev->ctr[i] : 0;
    if (interval <= 0 || cur->ctr[i] < base)
        return 0;
    return (double)(cur->ctr[i] - base) / interval;
}

static int master_alive(int32_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

static void fmt_age(char *buf, size_t len, double s)
{
    if (s < 0)
        s = 0;
    uint64_t t = (uint64_t)s;
    if (s < 60)
        snprintf(buf, len, "%.1fs", s);
    else if (t < 3600)
        snprintf(buf, len, "%um%02us", (unsigned)(t / 60), (unsigned)(t % 60));
    else if (t < 86400)
        snprintf(buf, len, "%uh%02um", (unsigned)(t / 3600), (unsigned)(t / 60 % 60));
    else
        snprintf(buf, len, "%ud%02uh", (unsigned)(t / 86400), (unsigned)(t / 3600 % 24));
}

static void fmt_iso(char *buf, size_t len, uint64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void fmt_exit(char *buf, size_t len, int32_t st)
{
    if (st == -1)
        snprintf(buf, len, "-");
    else if (WIFEXITED(st))
        snprintf(buf, len, "exit %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, len, "signal %d", WTERMSIG(st));
    else
        snprintf(buf, len, "status %d", st);
}

static void fmt_ms(char *buf, size_t len, double ms)
{
    if (ms < 0)
        snprintf(buf, len, "-");
    else if (isinf(ms))
        snprintf(buf, len, ">%gs", (double)mb_counters_hist_bounds_us[MB_HIST_NBUCKETS - 1] / 1e6);
    else if (ms < 1000)
        snprintf(buf, len, "%.2fms", ms);
    else
        snprintf(buf, len, "%.2fs", ms / 1000);
}

/* Time since the region was created, in seconds (for rates since birth). */
static double region_age(const struct mb_shm *shm, uint64_t now_ms)
{
    const struct mb_shm_header *h = shm->hdr;
    uint64_t end = __atomic_load_n(&h->retired_ms, __ATOMIC_RELAXED);
    if (end == 0)
        end = now_ms;
    return end > h->birth_ms ? (double)(end - h->birth_ms) / 1000.0 : 0;
}

static struct mb_shm_worker load_worker(const struct mb_shm *shm, uint32_t i)
{
    const struct mb_shm_worker *src = &shm->workers[i];
    struct mb_shm_worker w;
    memset(&w, 0, sizeof(w));
    w.state = __atomic_load_n(&src->state, __ATOMIC_ACQUIRE);
    w.pid = __atomic_load_n(&src->pid, __ATOMIC_RELAXED);
    w.slot = __atomic_load_n(&src->slot, __ATOMIC_RELAXED);
    w.restarts = __atomic_load_n(&src->restarts, __ATOMIC_RELAXED);
    w.generation = __atomic_load_n(&src->generation, __ATOMIC_RELAXED);
    w.start_ms = __atomic_load_n(&src->start_ms, __ATOMIC_RELAXED);
    w.heartbeat_ms = __atomic_load_n(&src->heartbeat_ms, __ATOMIC_RELAXED);
    w.last_exit_status = __atomic_load_n(&src->last_exit_status, __ATOMIC_RELAXED);
    w.connections = __atomic_load_n(&src->connections, __ATOMIC_RELAXED);
    return w;
}

#define BUSIEST 10

static void fmt_key(char *buf, size_t len, const struct mb_rl_key *k)
{
    snprintf(buf, len, "%016llx%016llx", (unsigned long long)k->hi, (unsigned long long)k->lo);
}

static void print_ratelimit_text(const struct mb_shm *shm)
{
    const struct mb_ratelimit *rl = &shm->ratelimit;
    if (rl->slots == NULL) {
        printf("\nRATE LIMIT\n(no rate-limit table in this region)\n");
        return;
    }
    uint64_t now = mb_time_mono_ns();
    struct mb_ratelimit_stats st;
    struct mb_ratelimit_entry top[BUSIEST];
    mb_ratelimit_stats(rl, now, &st);
    size_t n = mb_ratelimit_busiest(rl, now, top, BUSIEST);
    printf("\nRATE LIMIT\ncapacity %llu buckets in %llu slots: %llu live (%.1f%% of capacity), "
           "%llu expired, %llu claimed, %llu never used\n",
           (unsigned long long)st.capacity, (unsigned long long)st.slots,
           (unsigned long long)st.live,
           st.capacity ? 100.0 * (double)st.live / (double)st.capacity : 0.0,
           (unsigned long long)st.expired, (unsigned long long)st.claimed,
           (unsigned long long)st.empty);
    if (n > 0)
        printf("%-32s %12s\n", "busiest keys (hash)", "backlog");
    for (size_t i = 0; i < n; i++) {
        char key[40], b[24];
        fmt_key(key, sizeof(key), &top[i].key);
        fmt_ms(b, sizeof(b), (double)top[i].backlog_ns / 1e6);
        printf("%-32s %12s\n", key, b);
    }
}

static void add_ratelimit_json(cJSON *root, const struct mb_shm *shm)
{
    const struct mb_ratelimit *rl = &shm->ratelimit;
    if (rl->slots == NULL) {
        cJSON_AddNullToObject(root, "ratelimit");
        return;
    }
    uint64_t now = mb_time_mono_ns();
    struct mb_ratelimit_stats st;
    struct mb_ratelimit_entry top[BUSIEST];
    mb_ratelimit_stats(rl, now, &st);
    size_t n = mb_ratelimit_busiest(rl, now, top, BUSIEST);
    cJSON *o = cJSON_AddObjectToObject(root, "ratelimit");
    cJSON_AddNumberToObject(o, "capacity", (double)st.capacity);
    cJSON_AddNumberToObject(o, "slots", (double)st.slots);
    cJSON_AddNumberToObject(o, "live", (double)st.live);
    cJSON_AddNumberToObject(o, "expired", (double)st.expired);
    cJSON_AddNumberToObject(o, "claimed", (double)st.claimed);
    cJSON_AddNumberToObject(o, "empty", (double)st.empty);
    cJSON *bs = cJSON_AddArrayToObject(o, "busiest");
    for (size_t i = 0; i < n; i++) {
        char key[40];
        fmt_key(key, sizeof(key), &top[i].key);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "key", key);
        cJSON_AddNumberToObject(e, "backlog_ms", (double)top[i].backlog_ns / 1e6);
        cJSON_AddItemToArray(bs, e);
    }
}

/* ---------------------------------------------------------------- caches */

/* Hit ratio of a cache from the summed counters; -1 before any lookup. */
static double hit_ratio(const struct snap *cur, uint32_t id)
{
    size_t h = mb_counters_cache_id(MB_CACHE_STAT_HITS, id);
    size_t m = mb_counters_cache_id(MB_CACHE_STAT_MISSES, id);
    if (h >= cur->nctr || m >= cur->nctr || cur->ctr[h] + cur->ctr[m] == 0)
        return -1;
    return (double)cur->ctr[h] / (double)(cur->ctr[h] + cur->ctr[m]);
}

static uint64_t cache_ctr(const struct snap *cur, enum mb_cache_stat st, uint32_t id)
{
    size_t i = mb_counters_cache_id(st, id);
    return i < cur->nctr ? cur->ctr[i] : 0;
}

static void print_caches_text(const struct mb_shm *shm, const struct snap *cur)
{
    uint64_t now = mb_time_mono_ms();
    printf("\nCACHES\n%-10s %8s %8s %12s %12s %10s %10s %10s %8s\n", "cache", "entries", "slots",
           "bytes", "arena", "hit_ratio", "evictions", "stores", "leases");
    int any = 0;
    for (uint32_t i = 0; i < MB_CACHE_KINDS; i++) {
        const struct mb_cache *c = &shm->caches[i];
        if (c->hdr == NULL)
            continue;
        any = 1;
        struct mb_cache_stats st;
        mb_cache_stats(c, now, &st);
        double r = hit_ratio(cur, i);
        char ratio[16];
        if (r < 0)
            snprintf(ratio, sizeof(ratio), "-");
        else
            snprintf(ratio, sizeof(ratio), "%.1f%%", 100.0 * r);
        printf("%-10s %8llu %8llu %12llu %12llu %10s %10llu %10llu %8llu\n", mb_cache_name(i),
               (unsigned long long)st.entries, (unsigned long long)st.slots,
               (unsigned long long)st.bytes, (unsigned long long)st.arena, ratio,
               (unsigned long long)cache_ctr(cur, MB_CACHE_STAT_EVICTIONS, i),
               (unsigned long long)cache_ctr(cur, MB_CACHE_STAT_STORES, i),
               (unsigned long long)st.leases);
    }
    if (!any)
        printf("(no caches in this region: caching is off)\n");
}

static void add_caches_json(cJSON *root, const struct mb_shm *shm, const struct snap *cur)
{
    uint64_t now = mb_time_mono_ms();
    cJSON *o = cJSON_AddObjectToObject(root, "caches");
    for (uint32_t i = 0; i < MB_CACHE_KINDS; i++) {
        const struct mb_cache *c = &shm->caches[i];
        if (c->hdr == NULL)
            continue;
        struct mb_cache_stats st;
        mb_cache_stats(c, now, &st);
        cJSON *e = cJSON_AddObjectToObject(o, mb_cache_name(i));
        cJSON_AddNumberToObject(e, "entries", (double)st.entries);
        cJSON_AddNumberToObject(e, "bytes", (double)st.bytes);
        cJSON_AddNumberToObject(e, "slots", (double)st.slots);
        cJSON_AddNumberToObject(e, "arena_bytes", (double)st.arena);
        cJSON_AddNumberToObject(e, "max_entry_bytes", (double)st.max_entry);
        cJSON_AddNumberToObject(e, "leases", (double)st.leases);
        cJSON_AddNumberToObject(e, "writing", (double)st.writing);
        cJSON_AddNumberToObject(e, "stale", (double)st.stale);
        double r = hit_ratio(cur, i);
        if (r < 0)
            cJSON_AddNullToObject(e, "hit_ratio");
        else
            cJSON_AddNumberToObject(e, "hit_ratio", r);
        cJSON_AddNumberToObject(e, "hits", (double)cache_ctr(cur, MB_CACHE_STAT_HITS, i));
        cJSON_AddNumberToObject(e, "misses", (double)cache_ctr(cur, MB_CACHE_STAT_MISSES, i));
        cJSON_AddNumberToObject(e, "stores", (double)cache_ctr(cur, MB_CACHE_STAT_STORES, i));
        cJSON_AddNumberToObject(e, "evictions", (double)cache_ctr(cur, MB_CACHE_STAT_EVICTIONS, i));
        cJSON_AddNumberToObject(e, "invalidations",
                                (double)cache_ctr(cur, MB_CACHE_STAT_INVALIDATIONS, i));
        cJSON_AddNumberToObject(e, "oversize", (double)cache_ctr(cur, MB_CACHE_STAT_OVERSIZE, i));
    }
}

/* ---------------------------------------------------------------- text */

/* ---------------------------------------------------------------- backends */

#define MAX_BACKEND_ROWS 1024

static size_t backend_rows(const struct mb_shm *shm, struct mb_bstats_snap **rows)
{
    struct mb_bstats v;
    *rows = NULL;
    if (mb_bstats_open(shm, &v) != 0)
        return 0;
    *rows = calloc(MAX_BACKEND_ROWS, sizeof(**rows));
    return *rows ? mb_bstats_snapshot(&v, *rows, MAX_BACKEND_ROWS) : 0;
}

static void print_backends_text(const struct mb_shm *shm)
{
    struct mb_bstats_snap *b;
    size_t n = backend_rows(shm, &b);
    printf("\nBACKENDS\n%-16s %3s %8s %8s %8s %8s %10s %8s %6s %6s  %s\n", "backend", "up", "ok",
           "error", "timeout", "unavail", "latency", "inflight", "active", "idle", "endpoint");
    for (size_t i = 0; i < n; i++) {
        char lat[32];
        fmt_ms(lat, sizeof(lat), (double)b[i].latency_us / 1000.0);
        printf("%-16s %3u %8llu %8llu %8llu %8llu %10s %8llu %6llu %6llu  %s\n", b[i].name,
               b[i].up_workers, (unsigned long long)b[i].requests[MB_BSTATS_OK],
               (unsigned long long)b[i].requests[MB_BSTATS_ERROR],
               (unsigned long long)b[i].requests[MB_BSTATS_TIMEOUT],
               (unsigned long long)b[i].requests[MB_BSTATS_UNAVAILABLE], lat,
               (unsigned long long)b[i].in_flight, (unsigned long long)b[i].conns_active,
               (unsigned long long)b[i].conns_idle, b[i].endpoint);
    }
    if (n == 0)
        printf("(no backend has reported yet)\n");
    free(b);
}

static void add_backends_json(cJSON *root, const struct mb_shm *shm)
{
    struct mb_bstats_snap *b;
    size_t n = backend_rows(shm, &b);
    cJSON *a = cJSON_AddArrayToObject(root, "backends");
    for (size_t i = 0; i < n && a != NULL; i++) {
        cJSON *e = cJSON_CreateObject();
        if (e == NULL)
            break;
        cJSON_AddItemToArray(a, e);
        cJSON_AddStringToObject(e, "backend", b[i].name);
        cJSON_AddStringToObject(e, "endpoint", b[i].endpoint);
        cJSON_AddNumberToObject(e, "up", b[i].up_workers);
        cJSON *r = cJSON_AddObjectToObject(e, "requests");
        for (int k = 0; k < MB_SHM_BACKEND_STATUSES; k++)
            cJSON_AddNumberToObject(r, mb_bstats_status_name(k), (double)b[i].requests[k]);
        cJSON_AddNumberToObject(e, "latency_ms", (double)b[i].latency_us / 1000.0);
        cJSON_AddNumberToObject(e, "in_flight", (double)b[i].in_flight);
        cJSON *c = cJSON_AddObjectToObject(e, "connections");
        cJSON_AddNumberToObject(c, "active", (double)b[i].conns_active);
        cJSON_AddNumberToObject(c, "idle", (double)b[i].conns_idle);
        cJSON_AddNumberToObject(e, "changed_ms", (double)b[i].changed_ms);
    }
    free(b);
}

static void print_text(const struct view *v, const struct mb_shm *shm, const struct snap *cur,
                       const struct snap *prev)
{
    const struct mb_shm_header *h = shm->hdr;
    uint64_t now = mb_time_wall_ms();
    char born[32], age[32], a2[32], ex[32];
    uint32_t state = __atomic_load_n(&h->state, __ATOMIC_ACQUIRE);

    fmt_iso(born, sizeof(born), h->birth_ms);
    fmt_age(age, sizeof(age), region_age(shm, now));
    printf("region     %s (layout %u.%u, %llu bytes)\n", v->path, (unsigned)h->layout_major,
           (unsigned)h->layout_minor, (unsigned long long)h->total_size);
    printf("state      %s, generation %llu\n", mb_shm_state_name(state),
           (unsigned long long)__atomic_load_n(&h->generation, __ATOMIC_ACQUIRE));
    printf("master     pid %d (%s), born %s, %s %s\n", (int)h->master_pid,
           master_alive(h->master_pid) ? "running" : "gone", born,
           state == MB_SHM_RETIRED ? "lived" : "up", age);

    printf("\nWORKERS\n%4s %5s %8s %5s %-9s %8s %7s %8s %10s %s\n", "rec", "slot", "pid", "gen",
           "state", "restarts", "conns", "uptime", "heartbeat", "last_exit");
    int any = 0;
    for (uint32_t i = 0; i < shm->worker_capacity; i++) {
        struct mb_shm_worker w = load_worker(shm, i);
        if (w.state == MB_WORKER_FREE)
            continue;
        any = 1;
        if (w.start_ms && w.state != MB_WORKER_EXITED)
            fmt_age(age, sizeof(age), (double)(now - w.start_ms) / 1000.0);
        else
            snprintf(age, sizeof(age), "-");
        if (w.heartbeat_ms && w.state != MB_WORKER_EXITED)
            fmt_age(a2, sizeof(a2), (double)(now - w.heartbeat_ms) / 1000.0);
        else
            snprintf(a2, sizeof(a2), "-");
        fmt_exit(ex, sizeof(ex), w.last_exit_status);
        printf("%4u %5u %8d %5llu %-9s %8u %7llu %8s %10s %s\n", i, w.slot, (int)w.pid,
               (unsigned long long)w.generation, mb_shm_worker_state_name(w.state), w.restarts,
               (unsigned long long)w.connections, age, a2, ex);
    }
    if (!any)
        printf("(no worker records in use)\n");

    double interval = prev ? (double)(cur->mono_ns - prev->mono_ns) / 1e9 : region_age(shm, now);
    printf("\nCOUNTERS (rate per second %s %.1fs)\n%-34s %16s %12s\n",
           prev ? "over the last" : "since the region was created,", interval, "name", "total",
           "rate/s");
    for (size_t i = 0; i < cur->nctr; i++) {
        const struct mb_counter_info *ci = &mb_counters_info[i];
        if (!shown(v, ci->name))
            continue;
        if (ci->type == MB_CTR_GAUGE)
            printf("%-34s %16lld %12s\n", ci->name, (long long)(int64_t)cur->ctr[i], "-");
        else
            printf("%-34s %16llu %12.2f\n", ci->name, (unsigned long long)cur->ctr[i],
                   rate_of(cur, prev, i, interval));
    }

    printf("\nHISTOGRAMS\n%-24s %10s %10s %10s %10s %10s\n", "name", "count", "mean", "p50", "p90",
           "p99");
    for (size_t i = 0; i < cur->nhist; i++) {
        const struct mb_shm_hist *hs = &cur->hist[i];
        if (!shown(v, mb_counters_hist_info[i].name))
            continue;
        char mean[24], p50[24], p90[24], p99[24];
        fmt_ms(mean, sizeof(mean), hs->count ? (double)hs->sum_ns / 1e6 / (double)hs->count : -1);
        fmt_ms(p50, sizeof(p50), mb_counters_hist_quantile(hs, 0.50));
        fmt_ms(p90, sizeof(p90), mb_counters_hist_quantile(hs, 0.90));
        fmt_ms(p99, sizeof(p99), mb_counters_hist_quantile(hs, 0.99));
        printf("%-24s %10llu %10s %10s %10s %10s\n", mb_counters_hist_info[i].name,
               (unsigned long long)hs->count, mean, p50, p90, p99);
    }
    print_ratelimit_text(shm);
    print_caches_text(shm, cur);
    print_backends_text(shm);
}

/* ---------------------------------------------------------------- JSON */

static void add_quantile(cJSON *o, const char *key, const struct mb_shm_hist *h, double q)
{
    double v = mb_counters_hist_quantile(h, q);
    if (v < 0)
        cJSON_AddNullToObject(o, key);
    else /* above the last bound: the last bound, as Prometheus reports it */
        cJSON_AddNumberToObject(
            o, key, isinf(v) ? (double)mb_counters_hist_bounds_us[MB_HIST_NBUCKETS - 1] / 1e3 : v);
}

static cJSON *build_json(const struct view *v, const struct mb_shm *shm, const struct snap *cur,
                         const struct snap *prev)
{
    const struct mb_shm_header *h = shm->hdr;
    uint64_t now = mb_time_wall_ms();
    cJSON *root = cJSON_CreateObject();

    cJSON *hd = cJSON_AddObjectToObject(root, "header");
    cJSON_AddStringToObject(hd, "path", v->path);
    cJSON_AddNumberToObject(hd, "layout_major", h->layout_major);
    cJSON_AddNumberToObject(hd, "layout_minor", h->layout_minor);
    cJSON_AddNumberToObject(hd, "size", (double)h->total_size);
    cJSON_AddStringToObject(hd, "state",
                            mb_shm_state_name(__atomic_load_n(&h->state, __ATOMIC_ACQUIRE)));
    cJSON_AddNumberToObject(hd, "generation",
                            (double)__atomic_load_n(&h->generation, __ATOMIC_ACQUIRE));
    cJSON_AddNumberToObject(hd, "master_pid", h->master_pid);
    cJSON_AddBoolToObject(hd, "master_alive", master_alive(h->master_pid));
    cJSON_AddNumberToObject(hd, "birth_ms", (double)h->birth_ms);
    cJSON_AddNumberToObject(hd, "retired_ms",
                            (double)__atomic_load_n(&h->retired_ms, __ATOMIC_RELAXED));
    cJSON_AddNumberToObject(hd, "age_s", region_age(shm, now));
    cJSON_AddNumberToObject(hd, "worker_capacity", shm->worker_capacity);

    cJSON *ws = cJSON_AddArrayToObject(root, "workers");
    for (uint32_t i = 0; i < shm->worker_capacity; i++) {
        struct mb_shm_worker w = load_worker(shm, i);
        if (w.state == MB_WORKER_FREE)
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", i);
        cJSON_AddNumberToObject(o, "slot", w.slot);
        cJSON_AddNumberToObject(o, "pid", w.pid);
        cJSON_AddNumberToObject(o, "generation", (double)w.generation);
        cJSON_AddStringToObject(o, "state", mb_shm_worker_state_name(w.state));
        cJSON_AddNumberToObject(o, "restarts", w.restarts);
        cJSON_AddNumberToObject(o, "connections", (double)w.connections);
        cJSON_AddNumberToObject(o, "start_ms", (double)w.start_ms);
        cJSON_AddNumberToObject(o, "heartbeat_ms", (double)w.heartbeat_ms);
        cJSON_AddNumberToObject(o, "last_exit_status", w.last_exit_status);
        cJSON_AddItemToArray(ws, o);
    }

    double interval = prev ? (double)(cur->mono_ns - prev->mono_ns) / 1e9 : region_age(shm, now);
    cJSON *cs = cJSON_AddObjectToObject(root, "counters");
    cJSON *rs = cJSON_AddObjectToObject(root, "rates");
    for (size_t i = 0; i < cur->nctr; i++) {
        const struct mb_counter_info *ci = &mb_counters_info[i];
        if (!shown(v, ci->name))
            continue;
        if (ci->type == MB_CTR_GAUGE) {
            cJSON_AddNumberToObject(cs, ci->name, (double)(int64_t)cur->ctr[i]);
        } else {
            cJSON_AddNumberToObject(cs, ci->name, (double)cur->ctr[i]);
            cJSON_AddNumberToObject(rs, ci->name, rate_of(cur, prev, i, interval));
        }
    }
    cJSON_AddNumberToObject(root, "rate_interval_s", interval);

    cJSON *hs = cJSON_AddObjectToObject(root, "histograms");
    for (size_t i = 0; i < cur->nhist; i++) {
        const struct mb_shm_hist *hi = &cur->hist[i];
        if (!shown(v, mb_counters_hist_info[i].name))
            continue;
        cJSON *o = cJSON_AddObjectToObject(hs, mb_counters_hist_info[i].name);
        cJSON_AddNumberToObject(o, "count", (double)hi->count);
        cJSON_AddNumberToObject(o, "sum_s", (double)hi->sum_ns / 1e9);
        if (hi->count)
            cJSON_AddNumberToObject(o, "mean_ms", (double)hi->sum_ns / 1e6 / (double)hi->count);
        else
            cJSON_AddNullToObject(o, "mean_ms");
        add_quantile(o, "p50_ms", hi, 0.50);
        add_quantile(o, "p90_ms", hi, 0.90);
        add_quantile(o, "p99_ms", hi, 0.99);
        cJSON *bs = cJSON_AddArrayToObject(o, "buckets"); /* cumulative, like Prometheus */
        uint64_t cum = 0;
        for (unsigned b = 0; b < MB_HIST_NBUCKETS; b++) {
            cum += hi->bucket[b];
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "le_ms", (double)mb_counters_hist_bounds_us[b] / 1e3);
            cJSON_AddNumberToObject(e, "count", (double)cum);
            cJSON_AddItemToArray(bs, e);
        }
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "le_ms", "+Inf");
        cJSON_AddNumberToObject(e, "count", (double)hi->count);
        cJSON_AddItemToArray(bs, e);
    }
    add_ratelimit_json(root, shm);
    add_caches_json(root, shm, cur);
    add_backends_json(root, shm);
    return root;
}

static int print_json(const struct view *v, const struct mb_shm *shm, const struct snap *cur,
                      const struct snap *prev)
{
    cJSON *root = build_json(v, shm, cur, prev);
    char *s = v->watching ? cJSON_PrintUnformatted(root) : cJSON_Print(root);
    cJSON_Delete(root);
    if (s == NULL) {
        fprintf(stderr, "mcp-bridge-shm: out of memory\n");
        return MB_ERR;
    }
    puts(s);
    cJSON_free(s);
    return 0;
}

/* ---------------------------------------------------------------- main */

static int attach(const char *path, struct mb_shm **shm, struct stat *st)
{
    char err[512];
    if (mb_shm_attach(path, shm, err, sizeof(err)) != 0) {
        fprintf(stderr, "mcp-bridge-shm: %s\n", err);
        return MB_ERR;
    }
    if (stat(path, st) == -1)
        memset(st, 0, sizeof(*st));
    return 0;
}

/* The file at path is another region than the one mapped (the gateway
 * replaced it, or restarted). */
static int replaced(const char *path, const struct stat *old)
{
    struct stat st;
    return stat(path, &st) == 0 && (st.st_ino != old->st_ino || st.st_dev != old->st_dev);
}

static int parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !(d > 0) || d > 86400)
        return MB_ERR;
    *out = d;
    return 0;
}

int main(int argc, char **argv)
{
    struct view v = {.path = MB_SHM_DEFAULT_PATH};
    double watch = 0;
    long count = 0;
    const char *config = NULL;
    char *conf_path = NULL;
    char optstring[64];
    int rc = MB_EXIT_ERROR, c;

    v.filters = calloc((size_t)argc, sizeof(char *));
    if (v.filters == NULL)
        return MB_EXIT_ERROR;
    build_optstring(optstring, sizeof(optstring));
    while ((c = getopt_long(argc, argv, optstring, long_options, NULL)) != -1) {
        switch (c) {
        case 'j':
            v.json = 1;
            break;
        case 'f':
            v.filters[v.nfilters++] = optarg;
            break;
        case 'w':
            if (parse_seconds(optarg, &watch) != 0) {
                fprintf(stderr,
                        "mcp-bridge-shm: --watch: expected seconds (0 < s <= 86400), "
                        "got \"%s\"\n",
                        optarg);
                goto usage_error;
            }
            break;
        case 'n': {
            char *end;
            errno = 0;
            count = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end != '\0' || count < 0) {
                fprintf(stderr, "mcp-bridge-shm: --count: expected a number >= 0, got \"%s\"\n",
                        optarg);
                goto usage_error;
            }
            break;
        }
        case 'c':
            config = optarg;
            break;
        case 'V':
            printf("mcp-bridge-shm %s (shm layout %d.%d)\n", MB_VERSION, MB_SHM_LAYOUT_MAJOR,
                   MB_SHM_LAYOUT_MINOR);
            free(v.filters);
            return MB_EXIT_OK;
        case 'h':
            usage(stdout);
            free(v.filters);
            return MB_EXIT_OK;
        default:
            goto usage_error;
        }
    }
    if (argc - optind > 1 || (config != NULL && argc - optind == 1)) {
        fprintf(stderr, "mcp-bridge-shm: give either -c FILE or one PATH\n");
        goto usage_error;
    }
    if (argc - optind == 1)
        v.path = argv[optind];
    if (config != NULL) {
        struct mb_conf *conf = NULL;
        char err[1024];
        if (mb_conf_load(config, &conf, err, sizeof(err)) != 0) {
            fprintf(stderr, "mcp-bridge-shm: %s\n", err);
            free(v.filters);
            return MB_EXIT_FATAL;
        }
        conf_path = strdup(conf->shm.path);
        mb_conf_free(&conf);
        if (conf_path == NULL)
            goto out;
        v.path = conf_path;
    }
    v.watching = watch > 0;

    struct mb_shm *shm = NULL;
    struct stat st;
    if (attach(v.path, &shm, &st) != 0)
        goto out;
    struct snap snaps[2], *cur = &snaps[0], *prev = NULL;
    int tty = isatty(STDOUT_FILENO);
    for (long iter = 1;; iter++) {
        take(shm, cur);
        if (v.json) {
            if (print_json(&v, shm, cur, prev) != 0)
                break;
        } else {
            if (v.watching && tty)
                fputs("\033[H\033[J", stdout); /* refresh in place */
            else if (iter > 1)
                putchar('\n');
            print_text(&v, shm, cur, prev);
        }
        fflush(stdout);
        if (!v.watching || (count > 0 && iter >= count)) {
            rc = MB_EXIT_OK;
            break;
        }
        struct timespec ts = {(time_t)watch, (long)((watch - (double)(time_t)watch) * 1e9)};
        while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
            ;
        if (replaced(v.path, &st)) {
            struct mb_shm *fresh = NULL;
            struct stat nst;
            if (attach(v.path, &fresh, &nst) == 0) {
                mb_shm_close(&shm);
                shm = fresh;
                st = nst;
                prev = NULL; /* another region: no interval to compare */
                continue;
            }
        }
        prev = cur;
        cur = cur == &snaps[0] ? &snaps[1] : &snaps[0];
    }
    mb_shm_close(&shm);
out:
    free(conf_path);
    free(v.filters);
    return rc;

usage_error:
    usage(stderr);
    free(v.filters);
    return MB_EXIT_FATAL;
}
