/*
 * worker/metrics.c — request accounting, the Prometheus exposition and the
 * admin endpoint (see metrics.h).
 *
 * Families exported, and where each number comes from (shm/counters.h rows
 * summed over every worker row and the master row, the worker table, the
 * header, and /proc). A family whose feature is not built is not exported:
 * a series that cannot move would only mislead (issue 7). Rate-limit
 * counters appear once rate_limit.enabled can be true; the access-log drop
 * counter when an access log is configured.
 *
 *   mcp_gateway_requests_total{method,backend,status}   request matrix; only
 *       combinations that happened are listed (a client picks the method,
 *       the label set stays bounded by shm/counters.h's MB_METHODS);
 *       backend is the configured name of the backend that answered the
 *       request or failed it (timeout, unavailable: outcome.backend_stat),
 *       counted in that backend's record of the backend stats section
 *       (method x status, shared by all workers: a backend dimension in
 *       every per-worker row would multiply the rows by the backend count);
 *       or "gateway" for what the gateway answered itself (initialize,
 *       ping, merged lists, rate-limited and invalid requests, and answers
 *       from the response cache), counted in the worker's row. Each request
 *       is in exactly one of the two, so summing over backend gives every
 *       answered request. A backend without a record (section full) counts
 *       under "gateway".
 *   mcp_gateway_request_duration_seconds{method}        per-method histograms
 *   mcp_gateway_requests_in_flight                      REQUESTS_IN_FLIGHT
 *   mcp_gateway_connections_active{transport}           websocket, http, and
 *       pending (accepted, no request yet): they add up to every open one
 *   mcp_gateway_connections_total{transport}            websocket, http
 *   mcp_gateway_connections_accepted_total              CONNECTIONS_TOTAL
 *   mcp_gateway_jsonrpc_messages_total                  REQUESTS_TOTAL
 *   mcp_gateway_websocket_messages_total{direction}     WS_MESSAGES_IN/OUT
 *   mcp_gateway_client_bytes_total{direction}           BYTES_IN/OUT
 *   mcp_gateway_protocol_errors_total{kind}             REQUEST_ERRORS_*
 *   mcp_gateway_rate_limited_total, ..._rate_limit_table_full_total
 *   mcp_gateway_access_log_dropped_total
 *   backend and cache families: worker/metrics_backends.c
 *   mcp_gateway_worker_restarts_total                   WORKER_RESTARTS
 *   mcp_gateway_reloads_total{result}                   RELOADS, RELOADS_FAILED
 *   mcp_gateway_workers{state}                          worker table
 *   mcp_gateway_config_generation                       header generation
 *   mcp_gateway_build_info{version}                     1
 *   process_resident_memory_bytes, process_cpu_seconds_total,
 *   process_open_fds        summed over the master and every live worker
 *   process_start_time_seconds   the master's start: a sum of start times
 *       means nothing, and the master's start is when the gateway started
 *
 * The admin HTTP server is a second lws vhost in the worker's context; its
 * sockets are accepted here (the same reasons as accept.c) and adopted into
 * that vhost. A response is built whole in a per-connection buffer (a
 * scrape is a few kilobytes) and written in chunks from the writeable
 * callback, so a slow scraper never blocks the loop.
 */
#include "worker/metrics.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/log.h"
#include "conf/conf.h"
#include "shm/shm.h"
#include "worker/accesslog.h"
#include "worker/conn.h"
#include "worker/jsonrpc.h"
#include "worker/mcp.h"
#include "worker/metrics_backends.h"
#include "worker/worker.h"

#define CHUNK     16384 /* bytes per writeable callback */
#define TYPE_TEXT "text/plain; charset=utf-8"
#define TYPE_PROM "text/plain; version=0.0.4; charset=utf-8"

/* ------------------------------------------------------------------ accounting */

enum mb_method mb_metrics_method_of(const char *name)
{
    return name == NULL ? MB_METHOD_INVALID : mb_jsonrpc_method_of(name, strlen(name));
}

static void copy_trunc(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void mb_metrics_set_names(struct mb_mcp_outcome *res, const char *method, const char *tool)
{
    copy_trunc(res->method_name, sizeof(res->method_name), method);
    copy_trunc(res->tool, sizeof(res->tool), tool);
}

void mb_metrics_note(struct mb_mcp_outcome *res, const struct mb_jsonrpc_msg *m, bool names)
{
    bool request = m->kind == MB_JSONRPC_REQUEST || m->kind == MB_JSONRPC_NOTIFICATION;
    res->method = m->method_id; /* classified once by the parse */
    res->method_name[0] = '\0';
    res->tool[0] = '\0';
    if (!request || !names)
        return;
    copy_trunc(res->method_name, sizeof(res->method_name), m->method);
    if (res->method == MB_METHOD_TOOLS_CALL) {
        const char *name = mb_jsonrpc_param_str(m, "name", res->tool, sizeof(res->tool));
        if (name != NULL && name != res->tool)
            copy_trunc(res->tool, sizeof(res->tool), name);
    }
}

void mb_metrics_request_done(struct mb_worker *w, struct mb_conn *c,
                             const struct mb_mcp_outcome *res, size_t bytes_in, size_t bytes_out,
                             uint64_t duration_ns)
{
    enum mb_method m = (enum mb_method)res->method;
    if ((unsigned)m >= MB_METHOD__COUNT)
        m = MB_METHOD_OTHER;
    enum mb_req_status st = mb_counters_status_of(res->error);
    /* Exactly one of the two matrices: the backend's record (shared by all
     * workers) when a backend answered or failed the request, else this
     * worker's row (backend="gateway"). */
    if (res->backend_stat <= 0 || !mb_metrics_backend_request(w, res->backend_stat - 1, m, st))
        mb_worker_count(w, mb_counters_request_id(m, st), 1);
    mb_counters_observe(w->shm, w->index, mb_counters_method_hist(m), duration_ns);
    if (w->accesslog != NULL)
        mb_accesslog_request(w, c, res, bytes_in, bytes_out, duration_ns);
}

void mb_metrics_conn_ws(struct mb_worker *w, struct mb_conn *c)
{
    if (c->is_http) /* a keep-alive HTTP connection upgraded: it moves */
        mb_worker_count(w, MB_CTR_CONNECTIONS_HTTP_ACTIVE, -1);
    mb_worker_count(w, MB_CTR_CONNECTIONS_WS_TOTAL, 1);
    mb_worker_count(w, MB_CTR_CONNECTIONS_WS_ACTIVE, 1);
}

void mb_metrics_conn_http(struct mb_worker *w, struct mb_conn *c)
{
    if (c->is_http || c->is_ws)
        return;
    c->is_http = true;
    mb_worker_count(w, MB_CTR_CONNECTIONS_HTTP_TOTAL, 1);
    mb_worker_count(w, MB_CTR_CONNECTIONS_HTTP_ACTIVE, 1);
}

void mb_metrics_conn_gone(struct mb_worker *w, struct mb_conn *c)
{
    if (c->is_ws)
        mb_worker_count(w, MB_CTR_CONNECTIONS_WS_ACTIVE, -1);
    else if (c->is_http)
        mb_worker_count(w, MB_CTR_CONNECTIONS_HTTP_ACTIVE, -1);
}

bool mb_metrics_ready(const struct mb_worker *w, const char **why)
{
    if (w->phase != MB_PHASE_RUNNING) {
        *why = "draining: this worker is stopping";
        return false;
    }
    if (__atomic_load_n(&w->shm->hdr->state, __ATOMIC_ACQUIRE) != MB_SHM_READY) {
        *why = "the shared-memory region is not published";
        return false;
    }
    *why = NULL;
    if (!mb_metrics_backends_ready(w->shm, w->conf, why))
        return false;
    return true;
}

/* ------------------------------------------------------------------ exposition */

static int appendf(struct mb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int appendf(struct mb_buf *b, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return MB_ERR;
    return mb_buf_append(b, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static int family(struct mb_buf *b, const char *name, const char *type, const char *help)
{
    return appendf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int sample(struct mb_buf *b, const char *name, const char *labels, double v)
{
    if (labels != NULL && labels[0] != '\0')
        return appendf(b, "%s{%s} %.17g\n", name, labels, v);
    return appendf(b, "%s %.17g\n", name, v);
}

static int one(struct mb_buf *b, const char *name, const char *type, const char *help, double v)
{
    return family(b, name, type, help) || sample(b, name, NULL, v);
}

/* Counters of one process from /proc. */
struct proc_stat {
    double cpu_s;
    double rss_bytes;
    double open_fds;
    double start_ticks;
};

static int read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return 0;
}

static int proc_read(int pid, struct proc_stat *st)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if (read_small(path, buf, sizeof(buf)) != 0)
        return -1;
    /* The command may hold spaces and parentheses: fields start after the
     * last ')'. Field 3 is the state; utime is 14, stime 15, starttime 22,
     * rss (pages) 24. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return -1;
    unsigned long long v[32] = {0};
    int field = 3;
    for (p = strtok(p + 2, " "); p != NULL && field < 32; p = strtok(NULL, " "), field++)
        v[field] = strtoull(p, NULL, 10);
    if (field <= 24)
        return -1;
    long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    /* cutime and cstime (16, 17) hold the reaped children: for the master,
     * the workers that exited, so the sum does not drop when one does. */
    st->cpu_s = (double)(v[14] + v[15] + v[16] + v[17]) / (double)(tck > 0 ? tck : 100);
    st->start_ticks = (double)v[22];
    st->rss_bytes = (double)v[24] * (double)(page > 0 ? page : 4096);

    snprintf(path, sizeof(path), "/proc/%d/fd", pid);
    DIR *d = opendir(path);
    st->open_fds = 0;
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.')
                st->open_fds++;
        closedir(d);
    }
    return 0;
}

static double boot_time_s(void)
{
    char buf[8192];
    if (read_small("/proc/stat", buf, sizeof(buf)) != 0)
        return 0;
    const char *p = strstr(buf, "\nbtime ");
    return p ? strtod(p + 7, NULL) : 0;
}

static int render_process(struct mb_shm *shm, struct mb_buf *b)
{
    struct proc_stat sum = {0}, st;
    double start_s = (double)shm->hdr->birth_ms / 1000.0;
    int master = shm->hdr->master_pid;

    if (master > 0 && proc_read(master, &st) == 0) {
        sum = st;
        double bt = boot_time_s();
        long tck = sysconf(_SC_CLK_TCK);
        if (bt > 0)
            start_s = bt + st.start_ticks / (double)(tck > 0 ? tck : 100);
    }
    for (uint32_t i = 0; i < shm->worker_capacity; i++) {
        const struct mb_shm_worker *wr = &shm->workers[i];
        uint32_t state = __atomic_load_n(&wr->state, __ATOMIC_ACQUIRE);
        int pid = __atomic_load_n(&wr->pid, __ATOMIC_RELAXED);
        if (pid <= 0 || pid == master ||
            (state != MB_WORKER_STARTING && state != MB_WORKER_RUNNING &&
             state != MB_WORKER_DRAINING))
            continue;
        if (proc_read(pid, &st) != 0)
            continue; /* exited meanwhile */
        sum.cpu_s += st.cpu_s;
        sum.rss_bytes += st.rss_bytes;
        sum.open_fds += st.open_fds;
    }
    return one(b, "process_resident_memory_bytes", "gauge",
               "Resident memory of the master and its workers, summed.", sum.rss_bytes) ||
           one(b, "process_cpu_seconds_total", "counter",
               "User and system CPU time of the master and its workers (live and exited), summed.",
               sum.cpu_s) ||
           one(b, "process_open_fds", "gauge",
               "Open file descriptors of the master and its workers, summed.", sum.open_fds) ||
           one(b, "process_start_time_seconds", "gauge",
               "Start time of the master process since the epoch, in seconds.", start_s);
}

static int render_requests(struct mb_shm *shm, const uint64_t *ctr, const struct mb_shm_hist *hist,
                           struct mb_buf *b)
{
    char labels[256];
    if (family(b, "mcp_gateway_requests_total", "counter",
               "MCP requests answered, by method, backend (the backend that answered or "
               "failed it, or gateway) and outcome (ok or the JSON-RPC error class)."))
        return MB_ERR;
    for (int m = 0; m < MB_METHOD__COUNT; m++) {
        for (int s = 0; s < MB_REQ__COUNT; s++) {
            uint64_t v = ctr[mb_counters_request_id((enum mb_method)m, (enum mb_req_status)s)];
            if (v == 0)
                continue;
            snprintf(labels, sizeof(labels), "method=\"%s\",backend=\"gateway\",status=\"%s\"",
                     mb_counters_method_name((enum mb_method)m),
                     mb_counters_status_name((enum mb_req_status)s));
            if (sample(b, "mcp_gateway_requests_total", labels, (double)v))
                return MB_ERR;
        }
    }
    if (mb_metrics_render_backend_requests(shm, b) != 0)
        return MB_ERR;
    static const char *hname = "mcp_gateway_request_duration_seconds";
    if (family(b, hname, "histogram",
               "Time from a request's arrival to the gateway's answer, by method."))
        return MB_ERR;
    for (int m = 0; m < MB_METHOD__COUNT; m++) {
        const struct mb_shm_hist *h = &hist[mb_counters_method_hist((enum mb_method)m)];
        const char *mn = mb_counters_method_name((enum mb_method)m);
        if (h->count == 0)
            continue;
        uint64_t cum = 0;
        for (unsigned i = 0; i < MB_HIST_NBUCKETS; i++) {
            cum += h->bucket[i];
            if (appendf(b, "%s_bucket{method=\"%s\",le=\"%g\"} %llu\n", hname, mn,
                        (double)mb_counters_hist_bounds_us[i] / 1e6, (unsigned long long)cum))
                return MB_ERR;
        }
        /* count is loaded after the buckets, so it is never below their sum */
        if (appendf(b, "%s_bucket{method=\"%s\",le=\"+Inf\"} %llu\n", hname, mn,
                    (unsigned long long)(h->count > cum ? h->count : cum)) ||
            appendf(b, "%s_sum{method=\"%s\"} %.9f\n", hname, mn, (double)h->sum_ns / 1e9) ||
            appendf(b, "%s_count{method=\"%s\"} %llu\n", hname, mn,
                    (unsigned long long)(h->count > cum ? h->count : cum)))
            return MB_ERR;
    }
    return MB_OK;
}

static double gauge(const uint64_t *ctr, enum mb_counter id)
{
    return (double)(int64_t)ctr[id];
}

static int render_connections(const uint64_t *ctr, struct mb_buf *b)
{
    double ws = gauge(ctr, MB_CTR_CONNECTIONS_WS_ACTIVE);
    double http = gauge(ctr, MB_CTR_CONNECTIONS_HTTP_ACTIVE);
    double pending = gauge(ctr, MB_CTR_CONNECTIONS_ACTIVE) - ws - http;
    const char *act = "mcp_gateway_connections_active", *tot = "mcp_gateway_connections_total";
    return family(b, act, "gauge",
                  "Client connections open now, by transport (pending: accepted, no request "
                  "yet).") ||
           sample(b, act, "transport=\"websocket\"", ws) ||
           sample(b, act, "transport=\"http\"", http) ||
           sample(b, act, "transport=\"pending\"", pending > 0 ? pending : 0) ||
           family(b, tot, "counter",
                  "Client connections by transport, counted at their first request.") ||
           sample(b, tot, "transport=\"websocket\"", (double)ctr[MB_CTR_CONNECTIONS_WS_TOTAL]) ||
           sample(b, tot, "transport=\"http\"", (double)ctr[MB_CTR_CONNECTIONS_HTTP_TOTAL]) ||
           one(b, "mcp_gateway_connections_accepted_total", "counter",
               "Client connections accepted (any transport, also those closed before a request).",
               (double)ctr[MB_CTR_CONNECTIONS_TOTAL]);
}

static int render_traffic(const uint64_t *ctr, struct mb_buf *b)
{
    const char *wm = "mcp_gateway_websocket_messages_total", *cb = "mcp_gateway_client_bytes_total",
               *pe = "mcp_gateway_protocol_errors_total";
    return one(b, "mcp_gateway_requests_in_flight", "gauge",
               "Client requests received and not answered yet.",
               gauge(ctr, MB_CTR_REQUESTS_IN_FLIGHT)) ||
           one(b, "mcp_gateway_jsonrpc_messages_total", "counter",
               "JSON-RPC messages received from clients (requests, notifications, responses, "
               "invalid).",
               (double)ctr[MB_CTR_REQUESTS_TOTAL]) ||
           family(b, wm, "counter", "WebSocket messages, by direction.") ||
           sample(b, wm, "direction=\"in\"", (double)ctr[MB_CTR_WS_MESSAGES_IN]) ||
           sample(b, wm, "direction=\"out\"", (double)ctr[MB_CTR_WS_MESSAGES_OUT]) ||
           family(b, cb, "counter",
                  "Message payload bytes exchanged with clients, by direction.") ||
           sample(b, cb, "direction=\"in\"", (double)ctr[MB_CTR_BYTES_IN]) ||
           sample(b, cb, "direction=\"out\"", (double)ctr[MB_CTR_BYTES_OUT]) ||
           family(b, pe, "counter",
                  "Client messages refused before any method ran, by kind (oversize and "
                  "binary_frame close the connection).") ||
           sample(b, pe, "kind=\"parse_error\"", (double)ctr[MB_CTR_REQUEST_ERRORS_PARSE_ERROR]) ||
           sample(b, pe, "kind=\"invalid_request\"",
                  (double)ctr[MB_CTR_REQUEST_ERRORS_INVALID_REQUEST]) ||
           sample(b, pe, "kind=\"method_not_found\"",
                  (double)ctr[MB_CTR_REQUEST_ERRORS_METHOD_NOT_FOUND]) ||
           sample(b, pe, "kind=\"oversize\"", (double)ctr[MB_CTR_REQUEST_ERRORS_OVERSIZE]) ||
           sample(b, pe, "kind=\"binary_frame\"", (double)ctr[MB_CTR_REQUEST_ERRORS_BINARY_FRAME]);
}

static int render_ops(struct mb_shm *shm, const struct mb_conf *conf, const uint64_t *ctr,
                      uint64_t generation, struct mb_buf *b)
{
    const char *rl = "mcp_gateway_reloads_total", *wk = "mcp_gateway_workers";
    double by_state[MB_WORKER_EXITED + 1] = {0};
    for (uint32_t i = 0; i < shm->worker_capacity; i++) {
        uint32_t s = __atomic_load_n(&shm->workers[i].state, __ATOMIC_ACQUIRE);
        if (s <= MB_WORKER_EXITED)
            by_state[s]++;
    }
    if (one(b, "mcp_gateway_worker_restarts_total", "counter",
            "Worker processes respawned after they died.", (double)ctr[MB_CTR_WORKER_RESTARTS]) ||
        family(b, rl, "counter",
               "Configuration reloads (SIGHUP), by result: ok took effect, failed kept the "
               "running configuration.") ||
        sample(b, rl, "result=\"ok\"", (double)ctr[MB_CTR_RELOADS]) ||
        sample(b, rl, "result=\"failed\"", (double)ctr[MB_CTR_RELOADS_FAILED]) ||
        family(b, wk, "gauge", "Worker processes in the shared worker table, by state."))
        return MB_ERR;
    for (uint32_t s = MB_WORKER_STARTING; s <= MB_WORKER_EXITED; s++) {
        char labels[64];
        snprintf(labels, sizeof(labels), "state=\"%s\"", mb_shm_worker_state_name(s));
        if (sample(b, wk, labels, by_state[s]))
            return MB_ERR;
    }
    if (one(b, "mcp_gateway_config_generation", "gauge",
            "Configuration generation being served (1 at start, +1 per successful reload).",
            (double)generation) ||
        family(b, "mcp_gateway_build_info", "gauge", "The gateway's version; the value is 1.") ||
        sample(b, "mcp_gateway_build_info", "version=\"" MB_VERSION "\"", 1))
        return MB_ERR;
    /* Only what can move with this configuration. */
    if (conf->rate_limit.enabled &&
        (one(b, "mcp_gateway_rate_limited_total", "counter", "Requests rejected by the rate limit.",
             (double)ctr[MB_CTR_RATELIMITED]) ||
         one(b, "mcp_gateway_rate_limit_table_full_total", "counter",
             "Rate-limit decisions made without a bucket because the table was full.",
             (double)ctr[MB_CTR_RATELIMIT_TABLE_FULL])))
        return MB_ERR;
    if (conf->logging.access_log != NULL &&
        one(b, "mcp_gateway_access_log_dropped_total", "counter",
            "Access log lines lost because the log could not be written.",
            (double)ctr[MB_CTR_ACCESS_LOG_DROPPED]))
        return MB_ERR;
    return MB_OK;
}

int mb_metrics_render(struct mb_shm *shm, const struct mb_conf *conf, struct mb_buf *out)
{
    uint64_t ctr[MB_CTR__COUNT];
    struct mb_shm_hist hist[MB_HIST__COUNT];
    /* The generation first: the master counts a reload before it publishes
     * the new generation (release), so a scrape that shows generation N+1
     * also shows the reload that made it. */
    uint64_t generation = __atomic_load_n(&shm->hdr->generation, __ATOMIC_ACQUIRE);
    mb_counters_snapshot(shm, ctr, MB_CTR__COUNT);
    mb_counters_hist_snapshot(shm, hist, MB_HIST__COUNT);
    if (render_requests(shm, ctr, hist, out) || render_connections(ctr, out) ||
        render_traffic(ctr, out) || render_ops(shm, conf, ctr, generation, out) ||
        mb_metrics_render_backends(shm, conf, ctr, out) || render_process(shm, out))
        return MB_ERR;
    return MB_OK;
}

/* ------------------------------------------------------------------ admin endpoint */

struct mb_metrics {
    struct mb_worker *w;
    struct lws_vhost *vh;
    struct lws_protocols protocols[2];
    ev_io io;
    ev_timer pause; /* accepting paused after EMFILE/ENFILE */
    int fd;         /* -1 once closed */
    unsigned nconns;
    uint64_t last_reject_log_ms;
};

/* One scrape connection. body holds LWS_PRE bytes of headroom, then the
 * response body; sent counts body bytes written. */
struct admin_conn {
    struct mb_buf body;
    size_t sent;
};

static int send_headers(struct lws *wsi, unsigned status, const char *type, size_t len,
                        const char *hname, const char *hvalue)
{
    unsigned char buf[LWS_PRE + 512];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
    if (lws_add_http_common_headers(wsi, status, type, (lws_filepos_t)len, &p, end))
        return -1;
    if (hname != NULL &&
        lws_add_http_header_by_name(wsi, (const unsigned char *)hname,
                                    (const unsigned char *)hvalue, (int)strlen(hvalue), &p, end))
        return -1;
    return lws_finalize_write_http_header(wsi, start, &p, end) ? -1 : 0;
}

/* Starts a response: headers now, the body from the writeable callback. */
static int respond(struct lws *wsi, struct admin_conn *ac, unsigned status, const char *type,
                   bool head, const char *hname, const char *hvalue)
{
    size_t len = ac->body.len - LWS_PRE;
    if (send_headers(wsi, status, type, len, hname, hvalue) != 0)
        return -1;
    if (head || len == 0)
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    ac->sent = 0;
    lws_callback_on_writable(wsi);
    return 0;
}

static int set_body(struct admin_conn *ac, const char *text)
{
    mb_buf_reset(&ac->body);
    if (mb_buf_reserve(&ac->body, LWS_PRE + strlen(text)) != 0)
        return MB_ERR;
    ac->body.len = LWS_PRE;
    return mb_buf_append_str(&ac->body, text);
}

static int on_http(struct mb_metrics *mt, struct lws *wsi, struct admin_conn *ac, const char *path)
{
    char *uri;
    int ulen;
    int meth = lws_http_get_uri_and_method(wsi, &uri, &ulen);
    bool head = meth == LWSHUMETH_HEAD;
    const struct mb_conf *conf = mt->w->conf;
    const char *why;

    if (path == NULL)
        path = "";
    bool known = strcmp(path, conf->metrics.path) == 0 || strcmp(path, "/healthz") == 0 ||
                 strcmp(path, "/readyz") == 0;
    if (!known) {
        if (set_body(ac, "not found: this endpoint serves the metrics path, /healthz and "
                         "/readyz\n"))
            return -1;
        return respond(wsi, ac, 404, TYPE_TEXT, head, NULL, NULL);
    }
    if (meth != LWSHUMETH_GET && !head) {
        if (set_body(ac, "method not allowed: GET or HEAD\n"))
            return -1;
        /* A request body may follow: close rather than parse it as a request. */
        if (send_headers(wsi, 405, TYPE_TEXT, ac->body.len - LWS_PRE, "allow:", "GET, HEAD"))
            return -1;
        lws_write(wsi, (unsigned char *)ac->body.data + LWS_PRE, ac->body.len - LWS_PRE,
                  LWS_WRITE_HTTP_FINAL);
        return -1;
    }
    if (strcmp(path, "/healthz") == 0) {
        if (set_body(ac, "ok\n"))
            return -1;
        return respond(wsi, ac, 200, TYPE_TEXT, head, NULL, NULL);
    }
    if (strcmp(path, "/readyz") == 0) {
        bool ready = mb_metrics_ready(mt->w, &why);
        char text[256];
        snprintf(text, sizeof(text), ready ? "ready\n" : "not ready: %s\n", why);
        if (set_body(ac, text))
            return -1;
        return respond(wsi, ac, ready ? 200 : 503, TYPE_TEXT, head, NULL, NULL);
    }
    mb_buf_reset(&ac->body);
    if (mb_buf_reserve(&ac->body, LWS_PRE + 16384) != 0)
        return -1;
    ac->body.len = LWS_PRE;
    if (mb_metrics_render(mt->w->shm, conf, &ac->body) != 0) {
        mb_log_error("rendering /metrics: out of memory");
        return -1;
    }
    return respond(wsi, ac, 200, TYPE_PROM, head, NULL, NULL);
}

static int on_writeable(struct lws *wsi, struct admin_conn *ac)
{
    size_t total = ac->body.len - LWS_PRE;
    size_t n = total - ac->sent;
    if (n == 0)
        return 0;
    if (n > CHUNK)
        n = CHUNK;
    bool last = ac->sent + n == total;
    /* The LWS_PRE bytes before the chunk are headroom or already sent. */
    unsigned char *p = (unsigned char *)ac->body.data + LWS_PRE + ac->sent;
    if (lws_write(wsi, p, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
        return -1;
    ac->sent += n;
    if (!last) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    mb_buf_free(&ac->body); /* a keep-alive scraper holds no body between scrapes */
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int admin_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                          size_t len)
{
    if (wsi == NULL)
        return 0;
    struct mb_worker *w = lws_context_user(lws_get_context(wsi));
    struct mb_metrics *mt = w->metrics;
    struct admin_conn *ac = lws_get_opaque_user_data(wsi);

    switch (reason) {
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
        ac = calloc(1, sizeof(*ac));
        if (ac == NULL)
            return -1;
        lws_set_opaque_user_data(wsi, ac);
        if (mt)
            mt->nconns++;
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        if (ac != NULL) {
            mb_buf_free(&ac->body);
            free(ac);
            lws_set_opaque_user_data(wsi, NULL);
            if (mt && mt->nconns > 0)
                mt->nconns--;
        }
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return -1; /* no WebSocket on the admin endpoint */
    case LWS_CALLBACK_HTTP:
        return ac && mt ? on_http(mt, wsi, ac, in) : -1;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return ac ? on_writeable(wsi, ac) : -1;
    default:
        return 0;
    }
}

static void on_admin_readable(struct ev_loop *loop, ev_io *io, int revents)
{
    struct mb_metrics *mt = io->data;
    for (int i = 0; i < 16; i++) {
        int fd = accept4(mt->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                mb_log_error("accept on the metrics listener: %s", strerror(errno));
                /* Out of descriptors: the client listeners pause the same
                 * way; here a readable socket we cannot drain would spin. */
                ev_io_stop(loop, io);
                ev_timer_start(loop, &mt->pause);
            }
            return;
        }
        if (mt->nconns >= MB_METRICS_MAX_CONNS) {
            close(fd);
            uint64_t now = mb_worker_now_ms(mt->w);
            if (now - mt->last_reject_log_ms >= 1000) {
                mt->last_reject_log_ms = now;
                mb_log_warn("metrics endpoint: %u scrape connections open: refusing more",
                            mt->nconns);
            }
            continue;
        }
        lws_sock_file_fd_type d;
        d.sockfd = fd;
        if (lws_adopt_descriptor_vhost(mt->vh, LWS_ADOPT_SOCKET | LWS_ADOPT_HTTP, d, NULL, NULL) ==
            NULL)
            mb_log_warn("lws could not adopt a metrics connection");
    }
}

static void on_pause_end(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct mb_metrics *mt = t->data;
    if (mt->fd != -1)
        ev_io_start(loop, &mt->io);
}

int mb_metrics_start(struct mb_worker *w, int fd)
{
    if (fd < 0)
        return MB_OK;
    /* A caller that left metrics_fd zero-initialised did not mean stdin. */
    int acc = 0;
    socklen_t alen = sizeof(acc);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &alen) == -1 || !acc) {
        mb_log_warn("metrics endpoint off: descriptor %d is not a listening socket", fd);
        return MB_OK;
    }
    struct mb_metrics *mt = calloc(1, sizeof(*mt));
    if (mt == NULL) {
        mb_log_error("starting the metrics endpoint: out of memory");
        return MB_ERR;
    }
    mt->w = w;
    mt->fd = fd;
    mt->protocols[0].name = "mcp-bridge-admin";
    mt->protocols[0].callback = admin_callback;
    mt->protocols[0].rx_buffer_size = 0;

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    /* Not CONTEXT_PORT_NO_LISTEN_SERVER like the client vhost: lws rebinds
     * an HTTP request to the first vhost whose listen port equals its own
     * vhost's (Host-based vhost selection), which would hand scrapes to the
     * client vhost. A port value of its own (NO_LISTEN: no socket either)
     * keeps them here. */
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.vhost_name = "mcp-bridge-admin";
    info.protocols = mt->protocols;
    info.options = LWS_SERVER_OPTION_SKIP_SERVER_CANONICAL_NAME;
    info.keepalive_timeout = 30; /* idle scrape connections are closed by lws */
    mt->vh = lws_create_vhost(w->ctx, &info);
    if (mt->vh == NULL) {
        mb_log_error("creating the lws vhost of the metrics endpoint failed");
        free(mt);
        return MB_ERR;
    }
    w->metrics = mt;
    ev_io_init(&mt->io, on_admin_readable, fd, EV_READ);
    mt->io.data = mt;
    ev_timer_init(&mt->pause, on_pause_end, 0.1, 0.);
    mt->pause.data = mt;
    ev_io_start(w->loop, &mt->io);
    return MB_OK;
}

void mb_metrics_stop_accepting(struct mb_worker *w)
{
    struct mb_metrics *mt = w->metrics;
    if (mt == NULL || mt->fd == -1)
        return;
    ev_io_stop(w->loop, &mt->io);
    ev_timer_stop(w->loop, &mt->pause);
    if (close(mt->fd) == -1)
        mb_log_warn("closing the metrics listener: %s", strerror(errno));
    mt->fd = -1;
}

void mb_metrics_free(struct mb_worker *w)
{
    if (w->metrics == NULL)
        return;
    if (w->loop != NULL)
        mb_metrics_stop_accepting(w);
    free(w->metrics);
    w->metrics = NULL;
}
