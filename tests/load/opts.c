/*
 * tests/load/opts.c — see opts.h. Every option is checked here, so the engine
 * can trust what it is given; a bad value names the option and the value.
 *
 * The request is built once: --method M gives {"jsonrpc":"2.0","method":"M",
 * "id":N} (with the id last, so the default is exactly the k6 script's
 * message), --call builds params with cJSON (which escapes the tool name and
 * normalises --args), and --body is the caller's template split at {{id}}.
 */
#include "tests/load/opts.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#ifndef MB_VERSION
#define MB_VERSION "dev"
#endif

const char *mb_load_opts_mode_name(int mode)
{
    switch (mode) {
    case MB_LOAD_MODE_OPEN:
        return "open";
    case MB_LOAD_MODE_IDLE:
        return "idle";
    case MB_LOAD_MODE_STAGES:
        return "stages";
    case MB_LOAD_MODE_FLOOR:
        return "floor";
    default:
        return "closed";
    }
}

void mb_load_opts_usage(FILE *out, const char *prog)
{
    fprintf(out,
            "usage: %s [options] URL\n"
            "Load generator for MCP gateways: JSON-RPC over WebSocket or Streamable HTTP.\n"
            "Modes: closed loop (default), open loop (--rate), idle connections (--idle),\n"
            "k6-style ramping virtual users (--stages); --floor serves instead. TIME is a number "
            "with an optional\n"
            "unit ms, s (default), m or h. Exit status: 0 ok, 1 nothing succeeded or\n"
            "the run failed, 2 usage.\n\n",
            prog);
#define MB_LOAD_OPT_HELP(id, name, arg, meta, help)                                                \
    fprintf(out, "  --%s%s%s\n      %s\n", name, arg ? " " : "", arg ? meta : "", help);
    MB_LOAD_OPTIONS(MB_LOAD_OPT_HELP)
#undef MB_LOAD_OPT_HELP
    fprintf(out, "\nReport: requests/s (successful replies in the measured window), latency\n"
                 "percentiles from a log-linear histogram (within 0.4%%), errors by kind:\n"
                 "connect, handshake (WebSocket upgrade or initialize failed), timeout, closed\n"
                 "(connections the server closed), lost (requests in flight on them), bad_id,\n"
                 "bad_reply, http status, JSON-RPC error code. Errors are counted over the whole\n"
                 "run, warm-up included.\n");
}

static int parse_url(struct mb_load_opts *o, const char *url, char *err, size_t errlen)
{
    const char *rest;
    const char *def_port;
    if (strncmp(url, "ws://", 5) == 0) {
        o->transport = MB_LOAD_WS;
        rest = url + 5;
        def_port = "80";
    } else if (strncmp(url, "http://", 7) == 0) {
        o->transport = MB_LOAD_HTTP;
        rest = url + 7;
        def_port = "80";
    } else if (strncmp(url, "wss://", 6) == 0 || strncmp(url, "https://", 8) == 0) {
        snprintf(err, errlen, "%s: TLS targets are not supported yet (use ws:// or http://)", url);
        return -1;
    } else {
        snprintf(err, errlen, "%s: the URL must start with ws:// or http://", url);
        return -1;
    }
    if (strlen(url) >= sizeof(o->url)) {
        snprintf(err, errlen, "URL too long");
        return -1;
    }
    snprintf(o->url, sizeof(o->url), "%s", url);
    const char *slash = strchr(rest, '/');
    size_t auth_len = slash ? (size_t)(slash - rest) : strlen(rest);
    snprintf(o->path, sizeof(o->path), "%s", slash ? slash : "/");
    if (auth_len == 0 || auth_len >= sizeof(o->hostport) - 1) {
        snprintf(err, errlen, "%s: no host in the URL", url);
        return -1;
    }
    memcpy(o->hostport, rest, auth_len);
    o->hostport[auth_len] = '\0';
    const char *hp = o->hostport;
    const char *port = NULL;
    size_t hl;
    if (hp[0] == '[') {
        const char *close = strchr(hp, ']');
        if (!close) {
            snprintf(err, errlen, "%s: unterminated [address]", url);
            return -1;
        }
        hl = (size_t)(close - hp - 1);
        memcpy(o->host, hp + 1, hl);
        if (close[1] == ':')
            port = close + 2;
        else if (close[1]) {
            snprintf(err, errlen, "%s: junk after ]", url);
            return -1;
        }
    } else {
        const char *colon = strchr(hp, ':');
        hl = colon ? (size_t)(colon - hp) : strlen(hp);
        memcpy(o->host, hp, hl);
        if (colon)
            port = colon + 1;
    }
    o->host[hl] = '\0';
    if (hl == 0) {
        snprintf(err, errlen, "%s: no host in the URL", url);
        return -1;
    }
    if (port) {
        char *end;
        unsigned long p = strtoul(port, &end, 10);
        if (*port == '\0' || *end || p == 0 || p > 65535) {
            snprintf(err, errlen, "%s: bad port \"%s\"", url, port);
            return -1;
        }
        snprintf(o->port, sizeof(o->port), "%lu", p);
    } else {
        snprintf(o->port, sizeof(o->port), "%s", def_port);
    }
    return 0;
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*s == '-' || *s == '\0')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_sources(struct mb_load_opts *o, const char *list, char *err, size_t errlen)
{
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t l = comma ? (size_t)(comma - p) : strlen(p);
        char a[64];
        if (l == 0 || l >= sizeof(a)) {
            snprintf(err, errlen, "--source-ips: bad address list \"%s\"", list);
            return -1;
        }
        if (o->nsources == MB_LOAD_MAX_SOURCES) {
            snprintf(err, errlen, "--source-ips: at most %d addresses", MB_LOAD_MAX_SOURCES);
            return -1;
        }
        memcpy(a, p, l);
        a[l] = '\0';
        struct sockaddr_storage *ss = &o->sources[o->nsources];
        memset(ss, 0, sizeof(*ss));
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        if (inet_pton(AF_INET, a, &s4->sin_addr) == 1) {
            s4->sin_family = AF_INET;
        } else if (inet_pton(AF_INET6, a, &s6->sin6_addr) == 1) {
            s6->sin6_family = AF_INET6;
        } else {
            snprintf(err, errlen, "--source-ips: \"%s\" is not an IP address", a);
            return -1;
        }
        o->nsources++;
        p += l;
        if (*p == ',')
            p++;
    }
    return 0;
}

static int set_template(struct mb_load_opts *o, const char *prefix, size_t pl, const char *suffix)
{
    o->req_prefix = strndup(prefix, pl);
    o->req_suffix = strdup(suffix);
    if (!o->req_prefix || !o->req_suffix)
        return -1;
    o->req_prefix_len = pl;
    o->req_suffix_len = strlen(suffix);
    return 0;
}

static int valid_method(const char *m)
{
    if (!*m)
        return 0;
    for (; *m; m++)
        if (*m == '"' || *m == '\\' || (unsigned char)*m < 0x20)
            return 0;
    return 1;
}

static int build_request(struct mb_load_opts *o, const char *method, const char *call,
                         const char *args, const char *body, char *err, size_t errlen)
{
    int rc = -1;
    cJSON *params = NULL, *a = NULL;
    char *ptext = NULL;
    if (body) {
        const char *mark = strstr(body, "{{id}}");
        if (!mark || strstr(mark + 6, "{{id}}")) {
            snprintf(err, errlen, "--body: the template must contain {{id}} exactly once");
            return -1;
        }
        if (set_template(o, body, (size_t)(mark - body), mark + 6) != 0)
            goto nomem;
        char probe[65536];
        long n = mb_load_opts_render(o, 1, probe, sizeof(probe) - 1);
        if (n < 0) {
            snprintf(err, errlen, "--body: the template is over 64 KiB");
            return -1;
        }
        probe[n] = '\0';
        cJSON *j = cJSON_Parse(probe);
        int is_obj = cJSON_IsObject(j);
        cJSON_Delete(j);
        if (!is_obj) {
            snprintf(err, errlen, "--body: with {{id}} = 1 the template is not a JSON object");
            return -1;
        }
        snprintf(o->request_desc, sizeof(o->request_desc), "body");
        return 0;
    }
    if (call) {
        a = cJSON_Parse(args ? args : "{}");
        if (!cJSON_IsObject(a)) {
            snprintf(err, errlen, "--args: not a JSON object: %s", args);
            goto out;
        }
        params = cJSON_CreateObject();
        if (!params || !cJSON_AddStringToObject(params, "name", call))
            goto nomem;
        cJSON_AddItemToObject(params, "arguments", a);
        a = NULL;
        ptext = cJSON_PrintUnformatted(params);
        if (!ptext)
            goto nomem;
        size_t need = strlen(ptext) + 96;
        char *pre = malloc(need);
        if (!pre)
            goto nomem;
        int pl =
            snprintf(pre, need,
                     "{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"params\":%s,\"id\":", ptext);
        int ok = set_template(o, pre, (size_t)pl, "}");
        free(pre);
        if (ok != 0)
            goto nomem;
        snprintf(o->request_desc, sizeof(o->request_desc), "tools/call %.128s", call);
        rc = 0;
        goto out;
    }
    if (!valid_method(method)) {
        snprintf(err, errlen, "--method: bad method name \"%s\"", method);
        return -1;
    }
    char pre[512];
    int pl = snprintf(pre, sizeof(pre), "{\"jsonrpc\":\"2.0\",\"method\":\"%s\",\"id\":", method);
    if (pl < 0 || (size_t)pl >= sizeof(pre)) {
        snprintf(err, errlen, "--method: name too long");
        return -1;
    }
    if (set_template(o, pre, (size_t)pl, "}") != 0)
        goto nomem;
    snprintf(o->request_desc, sizeof(o->request_desc), "%.150s", method);
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
out:
    cJSON_Delete(a);
    cJSON_Delete(params);
    free(ptext);
    return rc;
}

long mb_load_opts_render(const struct mb_load_opts *o, int64_t id, char *out, size_t cap)
{
    /* Digits by hand: a snprintf per request was a visible share of the load
     * generator's own CPU. */
    char num[24], *d = num + sizeof(num);
    uint64_t u = id < 0 ? (uint64_t)0 - (uint64_t)id : (uint64_t)id;
    do {
        *--d = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (id < 0)
        *--d = '-';
    int nl = (int)(num + sizeof(num) - d);
    memmove(num, d, (size_t)nl);
    size_t total = o->req_prefix_len + (size_t)nl + o->req_suffix_len;
    if (total > cap)
        return -1;
    memcpy(out, o->req_prefix, o->req_prefix_len);
    memcpy(out + o->req_prefix_len, num, (size_t)nl);
    memcpy(out + o->req_prefix_len + nl, o->req_suffix, o->req_suffix_len);
    return (long)total;
}

void mb_load_opts_free(struct mb_load_opts *o)
{
    free(o->req_prefix);
    free(o->req_suffix);
    o->req_prefix = o->req_suffix = NULL;
}

#define BAD(...)                                                                                   \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        goto fail;                                                                                 \
    } while (0)

int mb_load_opts_parse(int argc, char **argv, int ncpu, struct mb_load_opts *o, char *err,
                       size_t errlen)
{
    static const struct option longopts[] = {
#define MB_LOAD_OPT_LONG(id, name, arg, meta, help)                                                \
    {name, arg ? required_argument : no_argument, NULL, MB_LOAD_OPT_##id + 256},
        MB_LOAD_OPTIONS(MB_LOAD_OPT_LONG)
#undef MB_LOAD_OPT_LONG
            {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof(*o));
    o->connections = 50;
    o->pipeline = 1;
    o->timeout_ns = 10ull * 1000000000ull;
    o->hold_ns = 10ull * 1000000000ull;
    o->open_timeout_ns = 120ull * 1000000000ull;
    o->max_time_ns = 600ull * 1000000000ull;
    o->connect_burst = 64;
    o->processes = 1;
    o->floor_port = -1;
    snprintf(o->protocol_version, sizeof(o->protocol_version), "2025-06-18");
    const char *url = NULL, *method = NULL, *call = NULL, *args = NULL, *body = NULL;
    int have_duration = 0, have_connections = 0, nheaders = 0;
    uint64_t v;
    optind = 1;
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, "", longopts, NULL);
        if (c == -1)
            break;
        if (c == '?' || c == ':')
            BAD("%s: unknown option or missing value (see --help)", argv[optind - 1]);
        const char *a = optarg;
        switch (c - 256) {
        case MB_LOAD_OPT_URL:
            url = a;
            break;
        case MB_LOAD_OPT_THREADS:
            if (parse_u64(a, 1, 256, &v))
                BAD("--threads: want 1..256, got \"%s\"", a);
            o->threads = (int)v;
            break;
        case MB_LOAD_OPT_CONNECTIONS:
            if (parse_u64(a, 1, 10000000, &v))
                BAD("--connections: want 1..10000000, got \"%s\"", a);
            o->connections = (uint32_t)v;
            have_connections = 1;
            break;
        case MB_LOAD_OPT_DURATION:
            if (mb_load_duration_parse(a, &o->duration_ns) || o->duration_ns == 0)
                BAD("--duration: bad time \"%s\"", a);
            have_duration = 1;
            break;
        case MB_LOAD_OPT_REQUESTS:
            if (parse_u64(a, 1, UINT64_MAX / 2, &o->requests))
                BAD("--requests: bad count \"%s\"", a);
            break;
        case MB_LOAD_OPT_WARMUP:
            if (mb_load_duration_parse(a, &o->warmup_ns))
                BAD("--warmup: bad time \"%s\"", a);
            break;
        case MB_LOAD_OPT_PIPELINE:
            if (parse_u64(a, 1, 1024, &v))
                BAD("--pipeline: want 1..1024, got \"%s\"", a);
            o->pipeline = (uint32_t)v;
            break;
        case MB_LOAD_OPT_RATE: {
            char *end;
            o->rate = strtod(a, &end);
            if (end == a || *end || !(o->rate > 0) || o->rate > 1e8)
                BAD("--rate: want requests/s > 0, got \"%s\"", a);
            break;
        }
        case MB_LOAD_OPT_INIT:
            o->init = 1;
            break;
        case MB_LOAD_OPT_PROTOCOL:
            if (!valid_method(a) || strlen(a) >= sizeof(o->protocol_version))
                BAD("--protocol-version: bad value \"%s\"", a);
            snprintf(o->protocol_version, sizeof(o->protocol_version), "%s", a);
            break;
        case MB_LOAD_OPT_METHOD:
            method = a;
            break;
        case MB_LOAD_OPT_CALL:
            call = a;
            break;
        case MB_LOAD_OPT_ARGS:
            args = a;
            break;
        case MB_LOAD_OPT_BODY:
            body = a;
            break;
        case MB_LOAD_OPT_HEADER: {
            const char *colon = strchr(a, ':');
            size_t used = strlen(o->extra_headers);
            if (!colon || colon == a || strpbrk(a, "\r\n"))
                BAD("--header: want 'Name: value', got \"%s\"", a);
            if (++nheaders > MB_LOAD_MAX_HEADERS || used + strlen(a) + 3 > sizeof(o->extra_headers))
                BAD("--header: too many or too long headers");
            snprintf(o->extra_headers + used, sizeof(o->extra_headers) - used, "%s\r\n", a);
            break;
        }
        case MB_LOAD_OPT_SUBPROTOCOL:
            if (!*a || strpbrk(a, "\r\n") || strlen(a) >= sizeof(o->subprotocol))
                BAD("--subprotocol: bad value \"%s\"", a);
            snprintf(o->subprotocol, sizeof(o->subprotocol), "%s", a);
            break;
        case MB_LOAD_OPT_TIMEOUT:
            if (mb_load_duration_parse(a, &o->timeout_ns) || o->timeout_ns < 1000000)
                BAD("--timeout: bad time \"%s\" (at least 1ms)", a);
            break;
        case MB_LOAD_OPT_SOURCE_IPS:
            if (parse_sources(o, a, err, errlen))
                goto fail;
            break;
        case MB_LOAD_OPT_PROCESSES:
            if (parse_u64(a, 1, 64, &v))
                BAD("--processes: want 1..64, got \"%s\"", a);
            o->processes = (int)v;
            break;
        case MB_LOAD_OPT_CONNECT_BURST:
            if (parse_u64(a, 1, 100000, &v))
                BAD("--connect-burst: want 1..100000, got \"%s\"", a);
            o->connect_burst = (uint32_t)v;
            break;
        case MB_LOAD_OPT_IDLE:
            if (parse_u64(a, 1, 10000000, &v))
                BAD("--idle: want 1..10000000, got \"%s\"", a);
            o->idle = (uint32_t)v;
            break;
        case MB_LOAD_OPT_HOLD:
            if (mb_load_duration_parse(a, &o->hold_ns))
                BAD("--hold: bad time \"%s\"", a);
            break;
        case MB_LOAD_OPT_OPEN_TIMEOUT:
            if (mb_load_duration_parse(a, &o->open_timeout_ns) || o->open_timeout_ns == 0)
                BAD("--open-timeout: bad time \"%s\"", a);
            break;
        case MB_LOAD_OPT_PING:
            o->ping = 1;
            break;
        case MB_LOAD_OPT_STAGES:
            if (mb_load_stages_parse(a, &o->stages, err, errlen))
                goto fail;
            if (mb_load_stages_total_ns(&o->stages) == 0)
                BAD("--stages: the schedule lasts no time");
            break;
        case MB_LOAD_OPT_MAX_TIME:
            if (mb_load_duration_parse(a, &o->max_time_ns) || o->max_time_ns == 0)
                BAD("--max-time: bad time \"%s\"", a);
            break;
        case MB_LOAD_OPT_FLOOR:
            if (parse_u64(a, 0, 65535, &v))
                BAD("--floor: want a port 0..65535, got \"%s\"", a);
            o->floor_port = (int)v;
            break;
        case MB_LOAD_OPT_FLOOR_RESULT:
            o->floor_result = a;
            break;
        case MB_LOAD_OPT_JSON:
            o->json = 1;
            break;
        case MB_LOAD_OPT_HELP:
            return MB_LOAD_OPTS_HELP;
        default:
            BAD("internal: unhandled option");
        }
    }
    if (optind < argc) {
        if (url || optind + 1 < argc)
            BAD("unexpected argument \"%s\"", argv[url ? optind : optind + 1]);
        url = argv[optind];
    }
    if (o->floor_port >= 0) {
        /* The responder takes only --threads and --floor-result. */
        if (url || o->idle || o->stages.n || o->rate > 0 || have_duration || o->requests ||
            have_connections || method || call || body || o->init || o->processes > 1)
            BAD("--floor serves, it sends no load: only --threads and --floor-result go with it");
        o->mode = MB_LOAD_MODE_FLOOR;
        if (o->threads == 0)
            o->threads = ncpu;
        return MB_LOAD_OPTS_OK;
    }
    if (o->floor_result)
        BAD("--floor-result goes with --floor");
    if (!url)
        BAD("no target URL (ws://HOST:PORT/PATH or http://HOST:PORT/PATH)");
    if (parse_url(o, url, err, errlen))
        goto fail;

    int modes = (o->idle > 0) + (o->stages.n > 0) + (o->rate > 0);
    if (modes > 1)
        BAD("--idle, --stages and --rate are separate modes: pick one");
    o->mode = o->idle       ? MB_LOAD_MODE_IDLE
              : o->stages.n ? MB_LOAD_MODE_STAGES
              : o->rate > 0 ? MB_LOAD_MODE_OPEN
                            : MB_LOAD_MODE_CLOSED;
    if ((o->mode == MB_LOAD_MODE_IDLE || o->mode == MB_LOAD_MODE_STAGES) &&
        o->transport != MB_LOAD_WS)
        BAD("--%s needs a ws:// target", o->mode == MB_LOAD_MODE_IDLE ? "idle" : "stages");
    if (o->ping && o->mode != MB_LOAD_MODE_IDLE)
        BAD("--ping is for --idle");
    if ((o->mode == MB_LOAD_MODE_IDLE || o->mode == MB_LOAD_MODE_STAGES) &&
        (have_duration || o->requests || have_connections || o->pipeline > 1 || o->warmup_ns))
        BAD("--duration, --requests, --connections, --pipeline and --warmup do not apply to "
            "--%s",
            o->mode == MB_LOAD_MODE_IDLE ? "idle" : "stages");
    if (o->mode == MB_LOAD_MODE_OPEN && o->requests)
        BAD("--requests does not apply to --rate (the rate and --duration set the count)");
    if (!!method + !!call + !!body > 1)
        BAD("--method, --call and --body are exclusive");
    if (args && !call)
        BAD("--args goes with --call");
    if (o->mode == MB_LOAD_MODE_STAGES && o->init)
        BAD("--init does not apply to --stages (each VU sends tools/list id 1, as the k6 script "
            "does)");
    if (!have_duration)
        o->duration_ns = o->requests ? 0 : 10ull * 1000000000ull;
    if ((uint64_t)o->processes > o->connections && o->mode <= MB_LOAD_MODE_OPEN)
        BAD("--processes %d is more than --connections %u", o->processes, o->connections);
    if (o->threads == 0) {
        o->threads = ncpu / o->processes;
        if (o->threads < 1)
            o->threads = 1;
    }
    if (build_request(o, method ? method : "tools/list", call, args, body, err, errlen))
        goto fail;
    return MB_LOAD_OPTS_OK;
fail:
    mb_load_opts_free(o);
    return MB_LOAD_OPTS_ERROR;
}
