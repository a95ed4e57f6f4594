/*
 * worker/metrics_backends.c — per-backend statistics: the worker's writes
 * into the region's backend stats section, and their exposition (see
 * metrics_backends.h; the section is specified in shm/layout.h §7).
 *
 * A worker process maps one region for its whole life, so its view of the
 * section is opened once and kept here; a region without the section (an
 * older layout) leaves every call a no-op.
 *
 * Families exported (all from shm, so any worker gives the same answer):
 *   mcp_gateway_requests_total{method,backend,status}: the backend="<name>"
 *       rows (metrics.c writes the family head and the "gateway" rows)
 *   mcp_gateway_backend_up{backend,endpoint}        1 while at least one
 *       worker has a ready upstream to it
 *   mcp_gateway_backend_requests_total{backend,endpoint,status}  ok, error,
 *       timeout, unavailable
 *   mcp_gateway_backend_latency_seconds{backend,endpoint}  EWMA of answered
 *       requests (0 before the first answer)
 *   mcp_gateway_upstream_connections{backend,state}  active, idle: the
 *       Streamable HTTP pools, summed over workers (http backends only: the
 *       other transports hold one connection or a child)
 *   mcp_gateway_cache_requests_total{cache,result}   hit, miss: only with
 *       caching.enabled, and only for the caches switched on (the auth
 *       cache also needs auth.enabled)
 * Circuit breaker and health-check families are not exported: those
 * features are not built.
 */
#include "worker/metrics_backends.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/time.h"
#include "conf/conf.h"
#include "shm/backends.h"
#include "shm/counters.h"
#include "shm/shm.h"
#include "worker/pool.h"
#include "worker/router.h"
#include "worker/upstream.h"
#include "worker/worker.h"

#define MAX_ROWS 1024

static struct {
    const struct mb_shm *shm;
    struct mb_bstats v;
    int *recs; /* by index in the worker's backends[]: the record, -1 none */
    size_t nrecs;
} view;

static const struct mb_bstats *view_of(const struct mb_shm *shm)
{
    if (shm == NULL)
        return NULL;
    if (view.shm != shm) {
        view.shm = shm;
        mb_bstats_open(shm, &view.v);
    }
    return view.v.base != NULL ? &view.v : NULL;
}

/* The endpoint label: stdio:<command[0]>, or the URL(s) joined by ','. */
static void endpoint_label(const struct mb_conf_backend *b, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    if (b->transport == MB_TRANSPORT_STDIO) {
        snprintf(buf, cap, "stdio:%s", b->command.n > 0 ? b->command.v[0] : "");
        return;
    }
    for (size_t i = 0; i < b->nendpoints && n + 1 < cap; i++) {
        int k = snprintf(buf + n, cap - n, "%s%s", i ? "," : "", b->endpoints[i].url);
        if (k < 0)
            break;
        n += (size_t)k;
    }
}

int mb_metrics_backend_attach(struct mb_worker *w, const struct mb_conf_backend *b)
{
    const struct mb_bstats *v = view_of(w->shm);
    if (v == NULL)
        return -1;
    char ep[MB_SHM_BACKEND_ENDPOINT];
    endpoint_label(b, ep, sizeof(ep));
    int rec = mb_bstats_claim(v, b->name, ep, w->index);
    size_t i = (size_t)(b - w->conf->backends);
    if (b >= w->conf->backends && i < w->conf->nbackends) {
        if (view.recs == NULL) {
            view.recs = malloc(w->conf->nbackends * sizeof(int));
            view.nrecs = view.recs ? w->conf->nbackends : 0;
            for (size_t k = 0; k < view.nrecs; k++)
                view.recs[k] = -1;
        }
        if (i < view.nrecs)
            view.recs[i] = rec;
    }
    if (rec < 0)
        mb_log_warn("backend %s: no free backend stats record in shm (restart to resize): its "
                    "statistics are not kept",
                    b->name);
    return rec;
}

void mb_metrics_backend_up(struct mb_worker *w, int rec, bool up)
{
    mb_bstats_set_up(view_of(w->shm), rec, w->index, up);
}

uint64_t mb_metrics_backend_sent(struct mb_worker *w, int rec)
{
    mb_bstats_gauge_add(view_of(w->shm), rec, w->index, MB_BSTATS_IN_FLIGHT, 1);
    return mb_time_mono_ns();
}

void mb_metrics_backend_done(struct mb_worker *w, int rec, bool sent, uint64_t sent_ns, int outcome)
{
    const struct mb_bstats *v = view_of(w->shm);
    if (v == NULL || rec < 0)
        return;
    if (sent)
        mb_bstats_gauge_add(v, rec, w->index, MB_BSTATS_IN_FLIGHT, -1);
    if (outcome == MB_BACKEND_OUTCOME_NONE)
        return;
    uint64_t us = 0;
    if (sent && sent_ns != 0) {
        uint64_t now = mb_time_mono_ns();
        us = now > sent_ns ? (now - sent_ns + 999) / 1000 : 1;
    }
    mb_bstats_outcome(v, rec, (enum mb_bstats_status)(outcome - 1), us);
}

int mb_metrics_backend_outcome(bool is_error, int gateway_code)
{
    if (gateway_code == MB_ERR_BACKEND_TIMEOUT)
        return MB_BSTATS_TIMEOUT + 1;
    if (gateway_code == MB_ERR_BACKEND_UNAVAILABLE)
        return MB_BSTATS_UNAVAILABLE + 1;
    if (is_error || gateway_code != 0)
        return MB_BSTATS_ERROR + 1;
    return MB_BSTATS_OK + 1;
}

bool mb_metrics_backend_request(struct mb_worker *w, int rec, int method, int status)
{
    return mb_bstats_request(view_of(w->shm), rec, (unsigned)method, (unsigned)status);
}

void mb_metrics_backend_conns(struct mb_worker *w, int rec, int64_t d_active, int64_t d_idle)
{
    const struct mb_bstats *v = view_of(w->shm);
    if (d_active != 0)
        mb_bstats_gauge_add(v, rec, w->index, MB_BSTATS_CONNS_ACTIVE, d_active);
    if (d_idle != 0)
        mb_bstats_gauge_add(v, rec, w->index, MB_BSTATS_CONNS_IDLE, d_idle);
}

void mb_metrics_upstream_conn(const struct mb_upstream *u, int from, int to)
{
    size_t i = (size_t)(u->bconf - u->conf->backends);
    if (u->bconf < u->conf->backends || i >= view.nrecs || view.recs[i] < 0)
        return;
    int64_t da = 0, di = 0;
    if (from >= 0)
        *(from == MB_POOL_IDLE ? &di : &da) -= 1;
    if (to >= 0)
        *(to == MB_POOL_IDLE ? &di : &da) += 1;
    mb_metrics_backend_conns(u->w, view.recs[i], da, di);
}

/* ------------------------------------------------------------------ exposition */

/* A Prometheus label value: backslash, double quote and newline escaped. */
static void esc(char *dst, size_t cap, const char *src)
{
    size_t n = 0;
    for (; *src != '\0' && n + 3 < cap; src++) {
        if (*src == '\\' || *src == '"') {
            dst[n++] = '\\';
            dst[n++] = *src;
        } else if (*src == '\n') {
            dst[n++] = '\\';
            dst[n++] = 'n';
        } else {
            dst[n++] = *src;
        }
    }
    dst[n] = '\0';
}

static int line(struct mb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int line(struct mb_buf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    return mb_buf_append(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static int family(struct mb_buf *b, const char *name, const char *type, const char *help)
{
    return line(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const struct mb_conf_backend *conf_backend(const struct mb_conf *conf, const char *name)
{
    for (size_t i = 0; i < conf->nbackends; i++)
        if (strcmp(conf->backends[i].name, name) == 0)
            return &conf->backends[i];
    return NULL;
}

static int render_cache(const struct mb_conf *conf, const uint64_t *ctr, struct mb_buf *out)
{
    const struct mb_conf_caching *c = &conf->caching;
    bool on[MB_CACHE_KINDS] = {0};
    on[MB_CACHE_DISCOVERY] = c->discovery_cache.enabled;
    on[MB_CACHE_RESPONSE] = c->response_cache.enabled;
    on[MB_CACHE_AUTH] = c->auth_cache.enabled && conf->auth.enabled;
    static const char *name = "mcp_gateway_cache_requests_total";
    if (!c->enabled || !(on[0] || on[1] || on[2]))
        return 0;
    if (family(out, name, "counter", "Shared cache lookups, by cache and result (hit or miss)."))
        return -1;
    for (uint32_t i = 0; i < MB_CACHE_KINDS; i++) {
        if (!on[i])
            continue;
        if (line(out, "%s{cache=\"%s\",result=\"hit\"} %llu\n", name, mb_cache_name(i),
                 (unsigned long long)ctr[mb_counters_cache_id(MB_CACHE_STAT_HITS, i)]) ||
            line(out, "%s{cache=\"%s\",result=\"miss\"} %llu\n", name, mb_cache_name(i),
                 (unsigned long long)ctr[mb_counters_cache_id(MB_CACHE_STAT_MISSES, i)]))
            return -1;
    }
    return 0;
}

struct conns_row {
    const char *name;
    uint64_t active, idle;
};

static int render_rows(const struct mb_conf *conf, const struct mb_bstats_snap *s, size_t n,
                       struct mb_buf *out)
{
    static const char *up = "mcp_gateway_backend_up", *rq = "mcp_gateway_backend_requests_total",
                      *lat = "mcp_gateway_backend_latency_seconds",
                      *uc = "mcp_gateway_upstream_connections";
    char be[2 * MB_SHM_BACKEND_NAME], ep[2 * MB_SHM_BACKEND_ENDPOINT];
    if (family(out, up, "gauge",
               "1 while at least one worker has a ready (handshaken) upstream to the backend."))
        return -1;
    for (size_t i = 0; i < n; i++) {
        esc(be, sizeof(be), s[i].name);
        esc(ep, sizeof(ep), s[i].endpoint);
        if (line(out, "%s{backend=\"%s\",endpoint=\"%s\"} %d\n", up, be, ep,
                 s[i].up_workers > 0 ? 1 : 0))
            return -1;
    }
    if (family(out, rq, "counter",
               "Requests sent to a backend (or failed before it), by outcome: ok, error "
               "(JSON-RPC error or protocol violation), timeout, unavailable."))
        return -1;
    for (size_t i = 0; i < n; i++) {
        esc(be, sizeof(be), s[i].name);
        esc(ep, sizeof(ep), s[i].endpoint);
        for (int k = 0; k < MB_SHM_BACKEND_STATUSES; k++)
            if (line(out, "%s{backend=\"%s\",endpoint=\"%s\",status=\"%s\"} %llu\n", rq, be, ep,
                     mb_bstats_status_name(k), (unsigned long long)s[i].requests[k]))
                return -1;
    }
    if (family(out, lat, "gauge",
               "Exponentially weighted moving average (alpha 1/8) of the backend's answer "
               "time, in seconds."))
        return -1;
    for (size_t i = 0; i < n; i++) {
        esc(be, sizeof(be), s[i].name);
        esc(ep, sizeof(ep), s[i].endpoint);
        if (line(out, "%s{backend=\"%s\",endpoint=\"%s\"} %.6f\n", lat, be, ep,
                 (double)s[i].latency_us / 1e6))
            return -1;
    }
    /* Pools: http backends of the running configuration, by name. */
    struct conns_row rows[64];
    size_t nr = 0;
    for (size_t i = 0; i < n; i++) {
        const struct mb_conf_backend *cb = conf_backend(conf, s[i].name);
        if (cb == NULL || cb->transport != MB_TRANSPORT_HTTP)
            continue;
        size_t k = 0;
        while (k < nr && strcmp(rows[k].name, s[i].name) != 0)
            k++;
        if (k == nr) {
            if (nr == sizeof(rows) / sizeof(rows[0]))
                continue;
            rows[nr++] = (struct conns_row){.name = s[i].name};
        }
        rows[k].active += s[i].conns_active;
        rows[k].idle += s[i].conns_idle;
    }
    if (nr == 0)
        return 0;
    if (family(out, uc, "gauge",
               "Streamable HTTP pool connections to a backend, by state (active: carrying an "
               "exchange; idle: kept alive for reuse), summed over workers."))
        return -1;
    for (size_t k = 0; k < nr; k++) {
        esc(be, sizeof(be), rows[k].name);
        if (line(out, "%s{backend=\"%s\",state=\"active\"} %llu\n", uc, be,
                 (unsigned long long)rows[k].active) ||
            line(out, "%s{backend=\"%s\",state=\"idle\"} %llu\n", uc, be,
                 (unsigned long long)rows[k].idle))
            return -1;
    }
    return 0;
}

int mb_metrics_render_backends(struct mb_shm *shm, const struct mb_conf *conf, const uint64_t *ctr,
                               struct mb_buf *out)
{
    if (render_cache(conf, ctr, out) != 0)
        return -1;
    struct mb_bstats v;
    if (mb_bstats_open(shm, &v) != 0)
        return 0;
    struct mb_bstats_snap *s = calloc(MAX_ROWS, sizeof(*s));
    if (s == NULL)
        return -1;
    size_t n = mb_bstats_snapshot(&v, s, MAX_ROWS);
    int rc = n > 0 ? render_rows(conf, s, n, out) : 0;
    free(s);
    return rc;
}

int mb_metrics_render_backend_requests(struct mb_shm *shm, struct mb_buf *out)
{
    struct mb_bstats v;
    if (mb_bstats_open(shm, &v) != 0 || !v.has_methods || v.count == 0)
        return 0;
    struct mb_bstats_methods *s = calloc(v.count, sizeof(*s));
    if (s == NULL)
        return -1;
    size_t n = mb_bstats_methods_snapshot(&v, s, v.count);
    char be[2 * MB_SHM_BACKEND_NAME];
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        esc(be, sizeof(be), s[i].name);
        for (int m = 0; m < MB_METHOD__COUNT && rc == 0; m++)
            for (int k = 0; k < MB_REQ__COUNT && rc == 0; k++)
                if (s[i].n[m][k] != 0)
                    rc = line(out,
                              "mcp_gateway_requests_total{method=\"%s\",backend=\"%s\","
                              "status=\"%s\"} %llu\n",
                              mb_counters_method_name((enum mb_method)m), be,
                              mb_counters_status_name((enum mb_req_status)k),
                              (unsigned long long)s[i].n[m][k]);
    }
    free(s);
    return rc;
}

bool mb_metrics_backends_ready(struct mb_shm *shm, const struct mb_conf *conf, const char **why)
{
    struct mb_bstats v;
    if (conf->nbackends == 0 || mb_bstats_open(shm, &v) != 0)
        return true;
    struct mb_bstats_snap *s = calloc(MAX_ROWS, sizeof(*s));
    if (s == NULL)
        return true; /* cannot tell: do not take the gateway out of rotation */
    size_t n = mb_bstats_snapshot(&v, s, MAX_ROWS);
    bool any = false;
    for (size_t i = 0; i < n && !any; i++)
        any = s[i].up_workers > 0 && conf_backend(conf, s[i].name) != NULL;
    free(s);
    if (!any)
        *why = "no backend is up";
    return any;
}
