/*
 * tests/load/report.c — see report.h. The JSON report is built with cJSON so
 * that every string (the URL, the request description) is escaped correctly.
 */
#include "tests/load/report.h"

#include <cjson/cJSON.h>
#include <string.h>

static const char *const err_names[] = {
#define MB_LOAD_ERR_NAME(id, name, what) name,
    MB_LOAD_ERRORS(MB_LOAD_ERR_NAME)
#undef MB_LOAD_ERR_NAME
};

const char *mb_load_err_name(int kind)
{
    return kind >= 0 && kind < MB_LOAD_ERR_COUNT ? err_names[kind] : "?";
}

void mb_load_result_init(struct mb_load_result *r)
{
    memset(r, 0, sizeof(*r));
    mb_load_histogram_init(&r->latency);
    mb_load_histogram_init(&r->iteration);
}

void mb_load_codes_add(struct mb_load_codes *c, int64_t code, uint64_t n)
{
    for (uint32_t i = 0; i < c->used; i++) {
        if (c->code[i] == code) {
            c->n[i] += n;
            return;
        }
    }
    if (c->used == MB_LOAD_CODES) {
        c->other += n;
        return;
    }
    c->code[c->used] = code;
    c->n[c->used++] = n;
}

static void codes_merge(struct mb_load_codes *dst, const struct mb_load_codes *src)
{
    for (uint32_t i = 0; i < src->used; i++)
        mb_load_codes_add(dst, src->code[i], src->n[i]);
    dst->other += src->other;
}

void mb_load_result_merge(struct mb_load_result *dst, const struct mb_load_result *src)
{
    dst->requests += src->requests;
    dst->replies += src->replies;
    for (int i = 0; i < MB_LOAD_ERR_COUNT; i++)
        dst->errors[i] += src->errors[i];
    codes_merge(&dst->jsonrpc_codes, &src->jsonrpc_codes);
    codes_merge(&dst->http_codes, &src->http_codes);
    dst->server_msgs += src->server_msgs;
    dst->conns_opened += src->conns_opened;
    dst->inflight_end += src->inflight_end;
    dst->backlog_end += src->backlog_end;
    dst->iterations += src->iterations;
    dst->idle_open += src->idle_open;
    dst->max_vus += src->max_vus;
    if (src->window_ns > dst->window_ns)
        dst->window_ns = src->window_ns;
    if (src->open_ns > dst->open_ns)
        dst->open_ns = src->open_ns;
    dst->rps += src->rps;
    dst->interrupted |= src->interrupted;
    mb_load_histogram_merge(&dst->latency, &src->latency);
    mb_load_histogram_merge(&dst->iteration, &src->iteration);
}

uint64_t mb_load_result_failed(const struct mb_load_result *r)
{
    return r->errors[MB_LOAD_ERR_TIMEOUT] + r->errors[MB_LOAD_ERR_LOST] +
           r->errors[MB_LOAD_ERR_BAD_ID] + r->errors[MB_LOAD_ERR_BAD_REPLY] +
           r->errors[MB_LOAD_ERR_HTTP] + r->errors[MB_LOAD_ERR_JSONRPC];
}

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static void text_codes(FILE *out, const char *what, const struct mb_load_codes *c)
{
    for (uint32_t i = 0; i < c->used; i++)
        fprintf(out, "    %s %lld: %llu\n", what, (long long)c->code[i],
                (unsigned long long)c->n[i]);
    if (c->other)
        fprintf(out, "    %s (other codes): %llu\n", what, (unsigned long long)c->other);
}

static void text_hist(FILE *out, const char *name, const struct mb_load_histogram *h)
{
    if (h->count == 0) {
        fprintf(out, "  %s: no samples\n", name);
        return;
    }
    fprintf(out,
            "  %s ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f  (n=%llu)\n",
            name, ms(mb_load_histogram_percentile(h, 50)), ms(mb_load_histogram_percentile(h, 90)),
            ms(mb_load_histogram_percentile(h, 99)), ms(mb_load_histogram_percentile(h, 99.9)),
            ms(h->max), mb_load_histogram_mean(h) / 1e6, (unsigned long long)h->count);
}

void mb_load_report_text(FILE *out, const struct mb_load_opts *o, const struct mb_load_result *r)
{
    fprintf(out, "target %s  mode %s  request %s  threads %d x processes %d%s\n", o->url,
            mb_load_opts_mode_name(o->mode), o->request_desc, o->threads, o->processes,
            r->interrupted ? "  (interrupted)" : "");
    switch (o->mode) {
    case MB_LOAD_MODE_IDLE:
        fprintf(out, "  idle connections: %llu open of %u wanted (opening took %.2f s)\n",
                (unsigned long long)r->idle_open, o->idle, (double)r->open_ns / 1e9);
        break;
    case MB_LOAD_MODE_STAGES:
        fprintf(out, "  iterations: %llu  iterations/s %.1f  max VUs %llu  over %.2f s\n",
                (unsigned long long)r->iterations, r->rps, (unsigned long long)r->max_vus,
                (double)r->window_ns / 1e9);
        text_hist(out, "request latency", &r->latency);
        text_hist(out, "iteration", &r->iteration);
        break;
    default:
        fprintf(out, "  connections %u  pipeline %u%s  init %s\n", o->connections, o->pipeline,
                o->mode == MB_LOAD_MODE_OPEN ? "  (open loop)" : "", o->init ? "yes" : "no");
        if (o->mode == MB_LOAD_MODE_OPEN)
            fprintf(out, "  rate wanted %.1f/s; never sent (no free connection) %llu\n", o->rate,
                    (unsigned long long)r->backlog_end);
        fprintf(out, "  requests: %llu in %.2f s = %.1f requests/s\n",
                (unsigned long long)r->requests, (double)r->window_ns / 1e9, r->rps);
        text_hist(out, "latency", &r->latency);
        break;
    }
    fprintf(out, "  errors: %llu failed requests\n", (unsigned long long)mb_load_result_failed(r));
    for (int i = 0; i < MB_LOAD_ERR_COUNT; i++)
        if (r->errors[i])
            fprintf(out, "    %s: %llu\n", err_names[i], (unsigned long long)r->errors[i]);
    text_codes(out, "jsonrpc", &r->jsonrpc_codes);
    text_codes(out, "http", &r->http_codes);
    if (r->server_msgs)
        fprintf(out, "  server notifications/requests received: %llu\n",
                (unsigned long long)r->server_msgs);
}

static cJSON *json_hist(const struct mb_load_histogram *h)
{
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return NULL;
    cJSON_AddNumberToObject(j, "p50", ms(mb_load_histogram_percentile(h, 50)));
    cJSON_AddNumberToObject(j, "p90", ms(mb_load_histogram_percentile(h, 90)));
    cJSON_AddNumberToObject(j, "p99", ms(mb_load_histogram_percentile(h, 99)));
    cJSON_AddNumberToObject(j, "p999", ms(mb_load_histogram_percentile(h, 99.9)));
    cJSON_AddNumberToObject(j, "max", ms(h->max));
    cJSON_AddNumberToObject(j, "mean", mb_load_histogram_mean(h) / 1e6);
    cJSON_AddNumberToObject(j, "min", h->count ? ms(h->min) : 0);
    cJSON_AddNumberToObject(j, "count", (double)h->count);
    return j;
}

static cJSON *json_codes(const struct mb_load_codes *c)
{
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return NULL;
    for (uint32_t i = 0; i < c->used; i++) {
        char k[24];
        snprintf(k, sizeof(k), "%lld", (long long)c->code[i]);
        cJSON_AddNumberToObject(j, k, (double)c->n[i]);
    }
    if (c->other)
        cJSON_AddNumberToObject(j, "other", (double)c->other);
    return j;
}

int mb_load_report_json(FILE *out, const struct mb_load_opts *o, const struct mb_load_result *r)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *sc = cJSON_AddObjectToObject(j, "scenario");
    cJSON *er = NULL;
    char *text = NULL;
    if (!j || !sc)
        goto fail;
    cJSON_AddStringToObject(sc, "url", o->url);
    cJSON_AddStringToObject(sc, "transport", o->transport == MB_LOAD_WS ? "websocket" : "http");
    cJSON_AddStringToObject(sc, "mode", mb_load_opts_mode_name(o->mode));
    cJSON_AddStringToObject(sc, "request", o->request_desc);
    cJSON_AddNumberToObject(sc, "threads", o->threads);
    cJSON_AddNumberToObject(sc, "processes", o->processes);
    if (o->mode <= MB_LOAD_MODE_OPEN) {
        cJSON_AddNumberToObject(sc, "connections", o->connections);
        cJSON_AddNumberToObject(sc, "pipeline", o->pipeline);
        cJSON_AddBoolToObject(sc, "init", o->init);
        cJSON_AddNumberToObject(sc, "duration_s", (double)o->duration_ns / 1e9);
        cJSON_AddNumberToObject(sc, "warmup_s", (double)o->warmup_ns / 1e9);
        if (o->requests)
            cJSON_AddNumberToObject(sc, "requests", (double)o->requests);
        if (o->mode == MB_LOAD_MODE_OPEN)
            cJSON_AddNumberToObject(sc, "rate", o->rate);
    } else if (o->mode == MB_LOAD_MODE_IDLE) {
        cJSON_AddNumberToObject(sc, "idle", o->idle);
        cJSON_AddNumberToObject(sc, "hold_s", (double)o->hold_ns / 1e9);
        cJSON_AddBoolToObject(sc, "ping", o->ping);
    } else {
        cJSON *st = cJSON_AddArrayToObject(sc, "stages");
        for (int i = 0; st && i < o->stages.n; i++) {
            cJSON *s = cJSON_CreateObject();
            if (!s)
                goto fail;
            cJSON_AddNumberToObject(s, "target", o->stages.s[i].target);
            cJSON_AddNumberToObject(s, "duration_s", (double)o->stages.s[i].duration_ns / 1e9);
            cJSON_AddItemToArray(st, s);
        }
    }
    cJSON_AddNumberToObject(sc, "timeout_s", (double)o->timeout_ns / 1e9);
    cJSON_AddNumberToObject(j, "requests", (double)r->requests);
    cJSON_AddNumberToObject(j, "duration_s", (double)r->window_ns / 1e9);
    cJSON_AddNumberToObject(j, "rps", r->rps);
    cJSON_AddItemToObject(j, "latency_ms", json_hist(&r->latency));
    er = cJSON_AddObjectToObject(j, "errors");
    if (!er)
        goto fail;
    cJSON_AddNumberToObject(er, "failed_requests", (double)mb_load_result_failed(r));
    for (int i = 0; i < MB_LOAD_ERR_COUNT; i++) {
        if (i == MB_LOAD_ERR_HTTP || i == MB_LOAD_ERR_JSONRPC)
            continue;
        cJSON_AddNumberToObject(er, err_names[i], (double)r->errors[i]);
    }
    cJSON_AddItemToObject(er, "http_status", json_codes(&r->http_codes));
    cJSON_AddItemToObject(er, "jsonrpc", json_codes(&r->jsonrpc_codes));
    cJSON_AddNumberToObject(j, "replies", (double)r->replies);
    cJSON_AddNumberToObject(j, "connections_opened", (double)r->conns_opened);
    cJSON_AddNumberToObject(j, "inflight_at_end", (double)r->inflight_end);
    cJSON_AddNumberToObject(j, "server_messages", (double)r->server_msgs);
    if (o->mode == MB_LOAD_MODE_OPEN)
        cJSON_AddNumberToObject(j, "unsent", (double)r->backlog_end);
    if (o->mode == MB_LOAD_MODE_IDLE) {
        cJSON *id = cJSON_AddObjectToObject(j, "idle");
        if (!id)
            goto fail;
        cJSON_AddNumberToObject(id, "wanted", o->idle);
        cJSON_AddNumberToObject(id, "open", (double)r->idle_open);
        cJSON_AddNumberToObject(id, "open_time_s", (double)r->open_ns / 1e9);
    }
    if (o->mode == MB_LOAD_MODE_STAGES) {
        cJSON *st = cJSON_AddObjectToObject(j, "stages");
        if (!st)
            goto fail;
        cJSON_AddNumberToObject(st, "iterations", (double)r->iterations);
        cJSON_AddNumberToObject(st, "iterations_per_s", r->rps);
        cJSON_AddNumberToObject(st, "max_vus", (double)r->max_vus);
        cJSON_AddItemToObject(st, "iteration_ms", json_hist(&r->iteration));
    }
    cJSON_AddBoolToObject(j, "interrupted", r->interrupted);
    text = cJSON_PrintUnformatted(j);
    if (!text)
        goto fail;
    fprintf(out, "%s\n", text);
    cJSON_free(text);
    cJSON_Delete(j);
    return 0;
fail:
    cJSON_Delete(j);
    return -1;
}
