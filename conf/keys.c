/*
 * conf/keys.c — every key of gateway.yaml, declared once.
 *
 * One row per key path of ../shared/gateway.contract.yaml (plus the keys a
 * feature added, marked "added"): type, the contract's default, limits, a
 * one-line meaning, and where the value lives in struct mb_conf (conf/conf.h).
 * The loader in conf/conf.c knows nothing about individual keys except
 * through this table and the few conversion/check hooks below.
 *
 * HOW A FEATURE IS TURNED ON ("not supported yet")
 *
 * Each row carries one bit, `supported` (the ON macro). A key whose bit is 0
 * belongs to a feature that is not built yet, and the loader rejects any file
 * that sets it, with "<key.path>: not supported yet" at the key's position —
 * nothing in the file is ever silently ignored (CONVENTIONS rule 15). The one
 * exception is the value that keeps the feature off, declared in the row's
 * OFF(...): `enabled: false`, an empty list `[]`, `access_log: off`. A file
 * that says only that is accepted, and the struct then holds that "off"
 * value instead of the contract's default, so for example
 * conf->rate_limit.enabled reads false while rate limiting is not built, even
 * though the contract's default is true. Every other field of an unsupported
 * feature keeps the contract's default, so code written against the struct
 * sees the values the finished feature will see.
 *
 * Sections (SECTION rows) with an OFF(...) are entered and their keys decide
 * one by one; a section without one (server.listen[].tls) is rejected as soon
 * as it appears, because its presence alone would turn the feature on.
 *
 * When a feature lands, its issue flips ON for the rows it implements (the
 * list and all the element keys it reads: for backends, "backends",
 * "backends[].name", ...), removes OFF(...) where the default should apply
 * again, drops "(not supported yet)" from man/gateway.yaml.5, and adds the
 * cross-key validation it needs to conf/conf.c. Tests can flip bits at run
 * time with mb_conf_key_set_supported() to exercise rows of features not yet
 * built; the daemon never does.
 *
 * Decisions written down here:
 *   - Limits are chosen to catch typos, not to tune: buffers 256 B..16 MiB,
 *     max_message_size 1 KiB..1 GiB, workers 1..128 (the shm worker table),
 *     max_connections 1..1,000,000, durations at most 24h (7 days for
 *     sessions.ttl), listeners at most 64 per file.
 *   - Durations of 0 mean "off" where that makes sense (ping_interval,
 *     idle_timeout) and "do not wait" for shutdown_timeout.
 *   - Listen addresses are resolved at load and stored numeric (DESIGN §9:
 *     nothing blocks on DNS later). A name that looks like an IPv4 address
 *     ("300.1.1.1") is an error, not a DNS lookup.
 *   - caching.response_cache.cache_annotated (added; conf.h had the field):
 *     whether tool annotations alone make a result cacheable. Default false,
 *     because annotations come from backends, which the operator may not
 *     control.
 *   - rate_limit.overrides[]: principal and tool default to "any" (NULL);
 *     requests_per_sec and burst are required.
 *   - The index of a row in an ENUM's word list is the C enum value; the
 *     _Static_asserts below keep conf.h and the words in step.
 */
#include "conf/keys.h"

#include "common/errors.h"
#include "conf/conf.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---------------------------------------------------------------- words */
static const char *const w_level[] = {"error", "warn", "info", "debug", NULL};
static const char *const w_tls_version[] = {"1.2", "1.3", NULL};
static const char *const w_client_auth[] = {"none", "optional", "require", NULL};
static const char *const w_transport[] = {"stdio", "http", "websocket", NULL};
static const char *const w_session[] = {"shared", "per_client", NULL};
static const char *const w_health[] = {"ping", "http_get", NULL};
static const char *const w_algorithm[] = {"token_bucket", NULL};
static const char *const w_rl_key[] = {"principal", "ip", "global", NULL};
static const char *const w_storage[] = {"shm", "memcached", NULL};
static const char *const w_on_error[] = {"deny", "allow", NULL}; /* index = on_error_allow */
static const char *const w_strategy[] = {"round_robin", "least_connections", "least_response_time",
                                         "random_two",  "weighted",          "session_hash",
                                         NULL};
static const char *const w_prefix[] = {"auto", "always", "never", NULL};
static const char *const w_auth_type[] = {"api_key", "jwt", "oauth2_introspection", NULL};

_Static_assert(MB_CLIENT_AUTH_REQUIRE == 2, "w_client_auth order");
_Static_assert(MB_TRANSPORT_WEBSOCKET == 2, "w_transport order");
_Static_assert(MB_SESSION_PER_CLIENT == 1, "w_session order");
_Static_assert(MB_HEALTH_HTTP_GET == 1, "w_health order");
_Static_assert(MB_RL_KEY_GLOBAL == 2, "w_rl_key order");
_Static_assert(MB_RL_STORAGE_MEMCACHED == 1, "w_storage order");
_Static_assert(MB_STRATEGY_SESSION_HASH == 5, "w_strategy order");
_Static_assert(MB_PREFIX_NEVER == 2, "w_prefix order");
_Static_assert(MB_AUTH_OAUTH2_INTROSPECTION == 2, "w_auth_type order");
_Static_assert(sizeof(enum mb_conf_strategy) == sizeof(int), "enums are stored as int");

/* ---------------------------------------------------------------- hooks */
static char **str_field(const struct mb_conf_key *k, void *base)
{
    return (char **)((char *)base + k->offset);
}

static int set_str(const struct mb_conf_key *k, void *base, const char *text, char *msg,
                   size_t msglen)
{
    char **f = str_field(k, base);
    char *dup = text != NULL ? strdup(text) : NULL;

    if (text != NULL && dup == NULL) {
        snprintf(msg, msglen, "out of memory");
        return MB_ERR;
    }
    free(*f);
    *f = dup;
    return MB_OK;
}

/* workers: auto | 1..128. "auto" counts the CPUs online now, like nginx's
 * worker_processes auto; the result is clamped to the table's limits. */
static int conv_workers(const struct mb_conf_key *k, void *base, const char *text, char *msg,
                        size_t msglen)
{
    struct mb_conf *c = base;
    long lo = strtol(k->min, NULL, 10), hi = strtol(k->max, NULL, 10);
    char *end;
    long v;

    if (strcmp(text, "auto") == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c->workers = (uint32_t)(n < lo ? lo : n > hi ? hi : n);
        c->workers_auto = true;
        return MB_OK;
    }
    if (text[0] < '0' || text[0] > '9') {
        snprintf(msg, msglen, "expected an integer or auto, got \"%.40s\"", text);
        return MB_ERR;
    }
    v = strtol(text, &end, 10);
    if (*end != '\0') {
        snprintf(msg, msglen, "expected an integer or auto, got \"%.40s\"", text);
        return MB_ERR;
    }
    if (v < lo || v > hi) {
        snprintf(msg, msglen, "must be between %s and %s, got \"%.40s\"", k->min, k->max, text);
        return MB_ERR;
    }
    c->workers = (uint32_t)v;
    c->workers_auto = false;
    return MB_OK;
}

/* logging.access_log: "off" is NULL in the struct. */
static int conv_access_log(const struct mb_conf_key *k, void *base, const char *text, char *msg,
                           size_t msglen)
{
    if (text[0] == '\0') {
        snprintf(msg, msglen, "must not be empty (use off)");
        return MB_ERR;
    }
    return set_str(k, base, strcmp(text, "off") == 0 ? NULL : text, msg, msglen);
}

/* A listen address: numeric IPv4/IPv6, or a host name resolved now (the
 * first address getaddrinfo returns) and stored in numeric form, so the
 * master binds without DNS and duplicate checks compare canonical text. */
static int conv_address(const struct mb_conf_key *k, void *base, const char *text, char *msg,
                        size_t msglen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char host[NI_MAXHOST];
    int rc;

    if (text[0] == '\0') {
        snprintf(msg, msglen, "must not be empty");
        return MB_ERR;
    }
    hints.ai_flags = AI_NUMERICHOST;
    rc = getaddrinfo(text, NULL, &hints, &res);
    if (rc != 0) {
        if (strspn(text, "0123456789.") == strlen(text) || strchr(text, ':') != NULL) {
            snprintf(msg, msglen, "not a valid IP address: \"%.60s\"", text);
            return MB_ERR;
        }
        hints.ai_flags = 0;
        rc = getaddrinfo(text, NULL, &hints, &res);
        if (rc != 0) {
            snprintf(msg, msglen, "cannot resolve \"%.60s\": %s", text, gai_strerror(rc));
            return MB_ERR;
        }
    }
    rc = getnameinfo(res->ai_addr, res->ai_addrlen, host, sizeof(host), NULL, 0, NI_NUMERICHOST);
    freeaddrinfo(res);
    if (rc != 0) {
        snprintf(msg, msglen, "cannot resolve \"%.60s\": %s", text, gai_strerror(rc));
        return MB_ERR;
    }
    return set_str(k, base, host, msg, msglen);
}

/* Backend names become tool-name prefixes ("<name>__tool"), so they are
 * restricted to characters that survive in every client. */
static int conv_backend_name(const struct mb_conf_key *k, void *base, const char *text, char *msg,
                             size_t msglen)
{
    size_t n = strlen(text);

    if (n == 0 ||
        strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") != n) {
        snprintf(msg, msglen, "must match [A-Za-z0-9_-]+, got \"%.40s\"", text);
        return MB_ERR;
    }
    /* "gateway" labels what the gateway answers itself in /metrics and the
     * access log; a backend of that name would be indistinguishable. */
    if (strcmp(text, "gateway") == 0) {
        snprintf(msg, msglen, "\"gateway\" is reserved (it names the gateway itself in metrics)");
        return MB_ERR;
    }
    return set_str(k, base, text, msg, msglen);
}

/* Two listeners on the same address and port cannot both bind. */
static int check_listen(const struct mb_conf_key *k, const void *base, const char *dpath,
                        long *index, char *msg, size_t msglen)
{
    const struct mb_conf *c = base;

    for (size_t i = 0; i < c->server.nlisten; i++) {
        for (size_t j = 0; j < i; j++) {
            const struct mb_conf_listen *a = &c->server.listen[i], *b = &c->server.listen[j];
            if (a->port == b->port && strcmp(a->address, b->address) == 0) {
                int v6 = strchr(a->address, ':') != NULL;
                *index = (long)i;
                snprintf(msg, msglen, "duplicate listener %s%s%s:%u (also %s[%zu])", v6 ? "[" : "",
                         a->address, v6 ? "]" : "", a->port, dpath, j);
                return MB_ERR;
            }
        }
    }
    return MB_OK;
}

/* server.paths: absolute, unique (a duplicate is almost certainly a typo). */
static int check_paths(const struct mb_conf_key *k, const void *base, const char *dpath,
                       long *index, char *msg, size_t msglen)
{
    const struct mb_conf_strv *v = (const struct mb_conf_strv *)((const char *)base + k->offset);

    for (size_t i = 0; i < v->n; i++) {
        *index = (long)i;
        if (v->v[i][0] != '/') {
            snprintf(msg, msglen, "must start with \"/\", got \"%.60s\"", v->v[i]);
            return MB_ERR;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(v->v[i], v->v[j]) == 0) {
                snprintf(msg, msglen, "duplicate path \"%.60s\" (also %s[%zu])", v->v[i], dpath, j);
                return MB_ERR;
            }
        }
    }
    return MB_OK;
}

/* A single path string (metrics.path). */
static int check_abs_path(const struct mb_conf_key *k, const void *base, const char *dpath,
                          long *index, char *msg, size_t msglen)
{
    const char *s = *(char *const *)((const char *)base + k->offset);

    *index = -1;
    if (s == NULL || s[0] != '/') {
        snprintf(msg, msglen, "must start with \"/\"");
        return MB_ERR;
    }
    return MB_OK;
}

/* Splits an endpoint URL into the derived fields of struct mb_conf_endpoint
 * and resolves its host (DESIGN §9: nothing resolves names in the event
 * loop). want_ws selects ws:// and wss:// (transport websocket) over http://
 * and https:// (transport http). */
static int parse_endpoint(struct mb_conf_endpoint *e, bool want_ws, char *msg, size_t msglen)
{
    static const struct {
        const char *scheme;
        bool ws, tls;
        uint16_t port;
    } schemes[] = {{"http://", false, false, 80},
                   {"https://", false, true, 443},
                   {"ws://", true, false, 80},
                   {"wss://", true, true, 443}};
    const char *u = e->url, *p = NULL, *host, *host_end, *after;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char hostbuf[256], numeric[NI_MAXHOST];
    unsigned long port = 0;
    int rc;

    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        size_t n = strlen(schemes[i].scheme);
        if (strncmp(u, schemes[i].scheme, n) != 0)
            continue;
        if (schemes[i].ws != want_ws) {
            snprintf(msg, msglen, "url \"%.80s\": transport %s needs %s", u,
                     want_ws ? "websocket" : "http",
                     want_ws ? "ws:// or wss://" : "http:// or https://");
            return MB_ERR;
        }
        if (schemes[i].tls) {
            snprintf(msg, msglen, "url \"%.80s\": TLS to backends (%s) is not supported yet", u,
                     schemes[i].scheme);
            return MB_ERR;
        }
        p = u + n;
        e->tls = schemes[i].tls;
        port = schemes[i].port;
        break;
    }
    if (p == NULL) {
        snprintf(msg, msglen, "url \"%.80s\": expected %s", u,
                 want_ws ? "ws://HOST[:PORT]/PATH or wss://..."
                         : "http://HOST[:PORT]/PATH or "
                           "https://...");
        return MB_ERR;
    }
    host = p;
    if (*p == '[') {
        host = p + 1;
        host_end = strchr(host, ']');
        if (host_end == NULL) {
            snprintf(msg, msglen, "url \"%.80s\": unterminated [IPv6 address]", u);
            return MB_ERR;
        }
        after = host_end + 1;
    } else {
        host_end = host + strcspn(host, ":/?#");
        after = host_end;
    }
    if (host_end == host || (size_t)(host_end - host) >= sizeof(hostbuf) ||
        memchr(host, '@', (size_t)(host_end - host)) != NULL) {
        snprintf(msg, msglen, "url \"%.80s\": missing or invalid host", u);
        return MB_ERR;
    }
    memcpy(hostbuf, host, (size_t)(host_end - host));
    hostbuf[host_end - host] = '\0';
    if (*after == ':') {
        char *end;
        if (after[1] < '0' || after[1] > '9') {
            snprintf(msg, msglen, "url \"%.80s\": invalid port", u);
            return MB_ERR;
        }
        port = strtoul(after + 1, &end, 10);
        if (port < 1 || port > 65535 || (*end != '\0' && *end != '/' && *end != '?')) {
            snprintf(msg, msglen, "url \"%.80s\": invalid port", u);
            return MB_ERR;
        }
        after = end;
    }
    if (*after != '\0' && *after != '/' && *after != '?') {
        snprintf(msg, msglen, "url \"%.80s\": unexpected \"%.20s\" after the host", u, after);
        return MB_ERR;
    }
    if (strchr(after, '#') != NULL || strpbrk(after, " \t\r\n") != NULL) {
        snprintf(msg, msglen, "url \"%.80s\": a fragment or white space in the path", u);
        return MB_ERR;
    }

    hints.ai_flags = AI_NUMERICHOST;
    rc = getaddrinfo(hostbuf, NULL, &hints, &res);
    if (rc != 0) {
        hints.ai_flags = 0;
        rc = getaddrinfo(hostbuf, NULL, &hints, &res);
    }
    if (rc == 0) {
        rc = getnameinfo(res->ai_addr, res->ai_addrlen, numeric, sizeof(numeric), NULL, 0,
                         NI_NUMERICHOST);
        freeaddrinfo(res);
    }
    if (rc != 0) {
        snprintf(msg, msglen, "url \"%.80s\": cannot resolve \"%.60s\": %s", u, hostbuf,
                 gai_strerror(rc));
        return MB_ERR;
    }
    free(e->host);
    free(e->address);
    free(e->path);
    e->host = strdup(hostbuf);
    e->address = strdup(numeric);
    e->path = *after == '/' ? strdup(after) : NULL;
    if (e->path == NULL && *after != '/') {
        /* "http://h" and "http://h?q" have the path "/" (plus the query). */
        size_t n = strlen(after);
        e->path = malloc(n + 2);
        if (e->path != NULL) {
            e->path[0] = '/';
            memcpy(e->path + 1, after, n + 1);
        }
    }
    e->port = (uint16_t)port;
    if (e->host == NULL || e->address == NULL || e->path == NULL) {
        snprintf(msg, msglen, "out of memory");
        return MB_ERR;
    }
    return MB_OK;
}

/* Whether the http and websocket transports are built: their endpoint keys
 * are switched on (see "HOW A FEATURE IS TURNED ON" above). */
static bool endpoints_supported(void)
{
    const struct mb_conf_key *k = mb_conf_key_find("backends[].endpoints");
    return k != NULL && k->supported;
}

/* Names unique; per transport, the keys it needs and no keys of another:
 * stdio needs a command and takes no endpoints; http and websocket need
 * endpoints with URLs of their scheme (resolved here) and take no command. */
/* metrics.path: absolute, and not one of the endpoint's fixed paths. */
static int check_metrics_path(const struct mb_conf_key *k, const void *base, const char *dpath,
                              long *index, char *msg, size_t msglen)
{
    const char *s = *(char *const *)((const char *)base + k->offset);

    if (check_abs_path(k, base, dpath, index, msg, msglen) != MB_OK)
        return MB_ERR;
    if (strcmp(s, "/healthz") == 0 || strcmp(s, "/readyz") == 0) {
        snprintf(msg, msglen, "\"%s\" is served by the metrics endpoint itself", s);
        return MB_ERR;
    }
    return MB_OK;
}

static int check_backends(const struct mb_conf_key *k, const void *base, const char *dpath,
                          long *index, char *msg, size_t msglen)
{
    const struct mb_conf *c = base;

    for (size_t i = 0; i < c->nbackends; i++) {
        for (size_t j = 0; j < i; j++) {
            if (strcmp(c->backends[i].name, c->backends[j].name) == 0) {
                *index = (long)i;
                snprintf(msg, msglen, "duplicate backend name \"%s\" (also %s[%zu])",
                         c->backends[i].name, dpath, j);
                return MB_ERR;
            }
        }
    }
    for (size_t i = 0; i < c->nbackends; i++) {
        struct mb_conf_backend *b = &c->backends[i];
        *index = (long)i;
        if (b->transport == MB_TRANSPORT_STDIO) {
            if (b->command.n == 0 || b->command.v[0][0] == '\0') {
                snprintf(msg, msglen, "transport stdio needs command: [program, args...]");
                return MB_ERR;
            }
            if (b->nendpoints > 0) {
                snprintf(msg, msglen, "transport stdio takes command, not endpoints");
                return MB_ERR;
            }
            continue;
        }
        const char *t = b->transport == MB_TRANSPORT_HTTP ? "http" : "websocket";
        if (!endpoints_supported()) {
            snprintf(msg, msglen, "transport %s: not supported yet", t);
            return MB_ERR;
        }
        if (b->command.n > 0) {
            snprintf(msg, msglen, "transport %s takes endpoints, not command", t);
            return MB_ERR;
        }
        if (b->nendpoints == 0) {
            snprintf(msg, msglen, "transport %s needs endpoints: [{url: ...}]", t);
            return MB_ERR;
        }
        for (size_t e = 0; e < b->nendpoints; e++) {
            char sub[400];
            if (parse_endpoint(&b->endpoints[e], b->transport == MB_TRANSPORT_WEBSOCKET, sub,
                               sizeof(sub)) != MB_OK) {
                snprintf(msg, msglen, "endpoints[%zu]: %s", e, sub);
                return MB_ERR;
            }
        }
    }
    return MB_OK;
}

/* backends[].headers go on every upstream request as written: names must be
 * HTTP tokens and values free of control characters (no header injection),
 * and the headers the transports own (framing, session, WebSocket upgrade)
 * cannot be replaced. */
static int check_headers(const struct mb_conf_key *k, const void *base, const char *dpath,
                         long *index, char *msg, size_t msglen)
{
    static const char *const owned[] = {"host",
                                        "content-type",
                                        "content-length",
                                        "transfer-encoding",
                                        "connection",
                                        "accept",
                                        "mcp-session-id",
                                        "mcp-protocol-version",
                                        "upgrade",
                                        "sec-websocket-key",
                                        "sec-websocket-version",
                                        "sec-websocket-protocol",
                                        "sec-websocket-extensions",
                                        "origin",
                                        "keep-alive",
                                        "te",
                                        NULL};
    const struct mb_conf_kv *h = (const struct mb_conf_kv *)((const char *)base + k->offset);

    *index = -1;
    for (size_t i = 0; i < h->n; i++) {
        const char *n = h->keys[i], *v = h->values[i];
        size_t len = strlen(n);
        if (len == 0 || len > 200 ||
            strspn(n, "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvw"
                      "xyz") != len) {
            snprintf(msg, msglen, "\"%.60s\": not a valid header name", n);
            return MB_ERR;
        }
        for (size_t j = 0; owned[j]; j++)
            if (strcasecmp(n, owned[j]) == 0) {
                snprintf(msg, msglen, "\"%s\" is set by the gateway and cannot be configured", n);
                return MB_ERR;
            }
        for (const char *p = v; *p; p++)
            if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f) {
                snprintf(msg, msglen, "\"%.60s\": the value has a control character", n);
                return MB_ERR;
            }
        if (strlen(v) > 8000) {
            snprintf(msg, msglen, "\"%.60s\": the value is longer than 8000 bytes", n);
            return MB_ERR;
        }
    }
    return MB_OK;
}

/* routing.separator joins backend and name in tool names: printable ASCII,
 * no white space, no character of JSON escaping. */
/* cache_tools: names or globs, none empty. */
static int check_cache_tools(const struct mb_conf_key *k, const void *base, const char *dpath,
                             long *index, char *msg, size_t msglen)
{
    const struct mb_conf_strv *v = (const struct mb_conf_strv *)((const char *)base + k->offset);
    for (size_t i = 0; i < v->n; i++)
        if (v->v[i][0] == '\0') {
            *index = (long)i;
            snprintf(msg, msglen, "a tool name (or glob) cannot be empty");
            return MB_ERR;
        }
    return 0;
}

static int check_separator(const struct mb_conf_key *k, const void *base, const char *dpath,
                           long *index, char *msg, size_t msglen)
{
    const char *s = *(char *const *)((const char *)base + k->offset);

    *index = -1;
    for (const char *p = s; p && *p; p++) {
        if (*p <= ' ' || *p >= 0x7f || *p == '"' || *p == '\\') {
            snprintf(msg, msglen, "must be printable ASCII without space, quote or backslash");
            return MB_ERR;
        }
    }
    return MB_OK;
}

/* rate_limit.memcached.servers: each "host:port" or "[v6]:port" (libmemcached
 * resolves the host in the worker's helper thread, off the event loop). */
static int check_rl_servers(const struct mb_conf_key *k, const void *base, const char *dpath,
                            long *index, char *msg, size_t msglen)
{
    const struct mb_conf_strv *v = (const void *)((const char *)base + k->offset);
    for (size_t i = 0; i < v->n; i++) {
        const char *s = v->v[i], *colon = strrchr(s, ':');
        size_t hostlen = colon ? (size_t)(colon - s) : 0;
        char *end = NULL;
        unsigned long port =
            colon && colon[1] >= '0' && colon[1] <= '9' ? strtoul(colon + 1, &end, 10) : 0;
        bool v6 = s[0] == '[';
        bool ok = colon != NULL && end != NULL && *end == '\0' && port >= 1 && port <= 65535 &&
                  hostlen > (v6 ? 2u : 0u) && hostlen < 256 && strpbrk(s, " \t/") == NULL &&
                  (v6 ? s[hostlen - 1] == ']' : memchr(s, ':', hostlen) == NULL);
        if (!ok) {
            *index = (long)i;
            snprintf(msg, msglen, "expected host:port (or [IPv6]:port), got \"%.80s\"", s);
            return MB_ERR;
        }
    }
    return MB_OK;
}

/* ---------------------------------------------------------------- the table */
#define K(p, t)          .path = (p), .type = MB_CONF_##t
#define AT(base, member) .offset = offsetof(base, member), .width = sizeof(((base *)0)->member)
#define LIST_AT(base, member, count, elem)                                                         \
    AT(base, member), .count_offset = offsetof(base, count), .elem_size = sizeof(elem)
#define ON       .supported = 1
#define OFF(v)   .supported = 0, .off = (v)
#define NOT_YET  .supported = 0
#define REQUIRED .required = 1

typedef struct mb_conf ROOT;
typedef struct mb_conf_listen LISTEN;
typedef struct mb_conf_backend BACKEND;
typedef struct mb_conf_endpoint ENDPOINT;
typedef struct mb_conf_rl_override OVERRIDE;
typedef struct mb_conf_auth_provider PROVIDER;
typedef struct mb_conf_api_key APIKEY;
typedef struct mb_conf_policy POLICY;

static struct mb_conf_key keys[] = {
    /* ------------------------------------------------ processes */
    {K("workers", INT), AT(ROOT, workers), .def = "auto", .min = "1", .max = "128",
     .conv = conv_workers, ON, .doc = "worker processes; auto = one per online CPU"},
    {K("pid_file", STRING), AT(ROOT, pid_file), .def = "/run/mcp-bridge.pid", .min = "1", ON,
     .doc = "file holding the master's pid (mcp-bridge -s finds the master through it)"},
    {K("shm", SECTION), ON, .doc = "the shared-memory region"},
    {K("shm.path", STRING), AT(ROOT, shm.path), .def = "/dev/shm/mcp-bridge", .min = "1", ON,
     .doc = "the region file, created with mode 0600"},

    /* ------------------------------------------------ logging */
    {K("logging", SECTION), ON, .doc = "error and access logs"},
    {K("logging.level", ENUM), AT(ROOT, logging.level), .def = "info", .words = w_level, ON,
     .doc = "least severe level written to the error log"},
    {K("logging.error_log", STRING), AT(ROOT, logging.error_log), .def = "stderr", .min = "1", ON,
     .doc = "stderr, or a file path (appended to, reopened on USR1)"},
    {K("logging.access_log", STRING), AT(ROOT, logging.access_log), .def = "off",
     .conv = conv_access_log, ON, .doc = "off, or a file path: one JSON object per request"},

    /* ------------------------------------------------ server */
    {K("server", SECTION), ON, .doc = "client-facing listeners, buffers and limits"},
    {K("server.listen", LIST), LIST_AT(ROOT, server.listen, server.nlisten, LISTEN),
     .def = "[{address: 127.0.0.1, port: 8443}]", .min = "1", .max = "64", .check = check_listen,
     ON, .doc = "the addresses and ports to accept clients on; one or more"},
    {K("server.listen[].address", STRING), AT(LISTEN, address), .def = "127.0.0.1",
     .conv = conv_address, ON, .doc = "numeric IPv4/IPv6 address, or a host name resolved at load"},
    {K("server.listen[].port", INT), AT(LISTEN, port), .def = "8443", .min = "1", .max = "65535",
     ON, .doc = "TCP port"},
    {K("server.listen[].tls", SECTION), AT(LISTEN, tls.enabled), .presence = 1, NOT_YET,
     .doc = "serve wss:// and https:// on this listener"},
    {K("server.listen[].tls.cert_file", STRING), AT(LISTEN, tls.cert_file), .min = "1", NOT_YET,
     .doc = "PEM certificate chain"},
    {K("server.listen[].tls.key_file", STRING), AT(LISTEN, tls.key_file), .min = "1", NOT_YET,
     .doc = "PEM private key"},
    {K("server.listen[].tls.min_version", WORD), AT(LISTEN, tls.min_version), .def = "1.2",
     .words = w_tls_version, NOT_YET, .doc = "oldest TLS version accepted"},
    {K("server.listen[].tls.client_ca_file", STRING), AT(LISTEN, tls.client_ca_file), .min = "1",
     NOT_YET, .doc = "CA bundle for client certificates (mTLS)"},
    {K("server.listen[].tls.client_auth", ENUM), AT(LISTEN, tls.client_auth), .def = "none",
     .words = w_client_auth, NOT_YET, .doc = "whether clients must present a certificate"},
    {K("server.paths", STRLIST), AT(ROOT, server.paths), .def = "[/, /mcp]", .min = "1",
     .max = "64", .check = check_paths, ON,
     .doc = "HTTP paths serving WebSocket upgrades and Streamable HTTP"},
    {K("server.read_buffer_size", SIZE), AT(ROOT, server.read_buffer_size), .def = "8192",
     .min = "256", .max = "16MiB", ON, .doc = "bytes read from a client socket at a time"},
    {K("server.write_buffer_size", SIZE), AT(ROOT, server.write_buffer_size), .def = "8192",
     .min = "256", .max = "16MiB", ON, .doc = "bytes written to a client socket at a time"},
    {K("server.websocket", SECTION), ON, .doc = "WebSocket connections"},
    {K("server.websocket.read_buffer_size", SIZE), AT(ROOT, server.websocket.read_buffer_size),
     .def = "8192", .min = "256", .max = "16MiB", ON,
     .doc = "receive buffer per WebSocket connection (the main memory cost of idle ones)"},
    {K("server.websocket.write_buffer_size", SIZE), AT(ROOT, server.websocket.write_buffer_size),
     .def = "8192", .min = "256", .max = "16MiB", ON,
     .doc = "largest chunk sent per write on a WebSocket connection"},
    {K("server.websocket.ping_interval", DURATION), AT(ROOT, server.websocket.ping_interval),
     .def = "30s", .min = "0", .max = "24h", ON,
     .doc = "idle time before the gateway pings a client; 0 = never"},
    {K("server.max_message_size", SIZE), AT(ROOT, server.max_message_size), .def = "1048576",
     .min = "1KiB", .max = "1GiB", ON,
     .doc = "largest JSON-RPC message accepted (WebSocket: close 1009; HTTP: 413)"},
    {K("server.max_connections", INT), AT(ROOT, server.max_connections), .def = "50000", .min = "1",
     .max = "1000000", ON, .doc = "client connections open at once, all workers"},
    {K("server.idle_timeout", DURATION), AT(ROOT, server.idle_timeout), .def = "300s", .min = "0",
     .max = "24h", ON, .doc = "a connection silent this long is closed; 0 = never"},
    {K("server.shutdown_timeout", DURATION), AT(ROOT, server.shutdown_timeout), .def = "30s",
     .min = "0", .max = "24h", ON, .doc = "how long old workers drain on reload or graceful stop"},
    {K("server.allowed_origins", STRLIST), AT(ROOT, server.allowed_origins), .def = "[]", OFF("[]"),
     .doc = "Streamable HTTP Origin allow-list; empty = same host only"},
    {K("server.allowed_hosts", STRLIST), AT(ROOT, server.allowed_hosts), .def = "[]", OFF("[]"),
     .doc = "Host header allow-list; empty = the listen addresses"},

    /* ------------------------------------------------ connection_pool */
    {K("connection_pool", SECTION), ON,
     .doc = "upstream keep-alive connections (http backends), per worker and backend endpoint"},
    {K("connection_pool.enabled", BOOL), AT(ROOT, connection_pool.enabled), .def = "true", ON,
     .doc = "keep connections open between requests; false = one connection per request"},
    {K("connection_pool.max_idle_conns", INT), AT(ROOT, connection_pool.max_idle_conns),
     .def = "1000", .min = "0", .max = "1000000", ON,
     .doc = "idle connections kept by one worker, all endpoints together"},
    {K("connection_pool.max_conns_per_host", INT), AT(ROOT, connection_pool.max_conns_per_host),
     .def = "500", .min = "1", .max = "1000000", ON,
     .doc = "connections one worker opens to one endpoint (requests in parallel); more wait"},
    {K("connection_pool.max_idle_conns_per_host", INT),
     AT(ROOT, connection_pool.max_idle_conns_per_host), .def = "100", .min = "0", .max = "1000000",
     ON, .doc = "idle connections kept per endpoint"},
    {K("connection_pool.idle_conn_timeout", DURATION), AT(ROOT, connection_pool.idle_conn_timeout),
     .def = "90s", .min = "0", .max = "24h", ON,
     .doc = "an idle pooled connection is closed after this; 0 = never"},
    {K("connection_pool.response_header_timeout", DURATION),
     AT(ROOT, connection_pool.response_header_timeout), .def = "10s", .min = "0", .max = "24h", ON,
     .doc = "wait for a connection and for response headers (requests: at least request_timeout)"},
    {K("connection_pool.tls_handshake_timeout", DURATION),
     AT(ROOT, connection_pool.tls_handshake_timeout), .def = "10s", .min = "0", .max = "24h",
     NOT_YET, .doc = "wait for a backend's TLS handshake"},
    {K("connection_pool.keep_alive", DURATION), AT(ROOT, connection_pool.keep_alive), .def = "30s",
     .min = "0", .max = "24h", ON,
     .doc = "TCP keep-alive probe interval on upstream connections; 0 = off"},
    {K("connection_pool.keep_alive_timeout", DURATION),
     AT(ROOT, connection_pool.keep_alive_timeout), .def = "30s", .min = "0", .max = "24h", ON,
     .doc = "how long a keep-alive connection may stay unused (the smaller of this and "
            "idle_conn_timeout applies); 0 = no limit"},

    /* ------------------------------------------------ backends */
    {K("backends", LIST), LIST_AT(ROOT, backends, nbackends, BACKEND), .def = "[]", .max = "1024",
     .check = check_backends, ON, .doc = "the MCP servers behind the gateway"},
    {K("backends[].name", STRING), AT(BACKEND, name), .conv = conv_backend_name, REQUIRED, ON,
     .doc = "[A-Za-z0-9_-]+, unique, not \"gateway\"; the prefix of its tool names"},
    {K("backends[].transport", ENUM), AT(BACKEND, transport), .words = w_transport, REQUIRED, ON,
     .doc = "how the gateway talks to it"},
    {K("backends[].command", STRLIST), AT(BACKEND, command), .def = "[]", .max = "1024", ON,
     .doc = "stdio: program and arguments, started per worker"},
    {K("backends[].env", MAP), AT(BACKEND, env), .def = "{}", .max = "1024", ON,
     .doc = "stdio: extra environment variables"},
    {K("backends[].cwd", STRING), AT(BACKEND, cwd), .def = ".", .min = "1", ON,
     .doc = "stdio: working directory"},
    {K("backends[].endpoints", LIST), LIST_AT(BACKEND, endpoints, nendpoints, ENDPOINT),
     .def = "[]", .max = "1024", ON, .doc = "http, websocket: the server's URLs"},
    {K("backends[].endpoints[].url", STRING), AT(ENDPOINT, url), .min = "1", REQUIRED, ON,
     .doc = "http://, https://, ws:// or wss:// URL"},
    {K("backends[].endpoints[].weight", INT), AT(ENDPOINT, weight), .def = "1", .min = "1",
     .max = "1000", ON, .doc = "share of requests under the weighted strategy"},
    {K("backends[].headers", MAP), AT(BACKEND, headers), .def = "{}", .max = "1024",
     .check = check_headers, ON,
     .doc = "http, websocket: headers sent upstream (backend credentials)"},
    {K("backends[].tls", SECTION), NOT_YET, .doc = "TLS to the backend"},
    {K("backends[].tls.ca_file", STRING), AT(BACKEND, tls.ca_file), .def = "\"\"", NOT_YET,
     .doc = "CA bundle; empty = the system's"},
    {K("backends[].tls.verify", BOOL), AT(BACKEND, tls.verify), .def = "true", NOT_YET,
     .doc = "verify the backend's certificate"},
    {K("backends[].tls.server_name", STRING), AT(BACKEND, tls.server_name), .def = "\"\"", NOT_YET,
     .doc = "SNI and verified name; empty = the URL's host"},
    {K("backends[].request_timeout", DURATION), AT(BACKEND, request_timeout), .min = "1ms",
     .max = "24h", ON,
     .doc = "a request without a response by then fails; default routing.request_timeout"},
    {K("backends[].session", ENUM), AT(BACKEND, session), .def = "shared", .words = w_session,
     NOT_YET, .doc = "one upstream session per worker, or one per client session"},
    {K("backends[].cache_tools", STRLIST), AT(BACKEND, cache_tools), .def = "[]", .max = "65536",
     .check = check_cache_tools, ON,
     .doc = "tools (globs; resource URIs too) whose results the response cache may keep"},
    {K("backends[].health_check", SECTION), NOT_YET, .doc = "active health checks"},
    {K("backends[].health_check.method", ENUM), AT(BACKEND, health_check.method), .def = "ping",
     .words = w_health, NOT_YET, .doc = "MCP ping, or an HTTP GET of path"},
    {K("backends[].health_check.path", STRING), AT(BACKEND, health_check.path), .def = "\"\"",
     NOT_YET, .doc = "http_get: the path probed"},

    /* ------------------------------------------------ rate_limit */
    {K("rate_limit", SECTION), ON, .doc = "per-caller request rate limits"},
    {K("rate_limit.enabled", BOOL), AT(ROOT, rate_limit.enabled), .def = "true", ON,
     .doc = "limit request rates"},
    {K("rate_limit.algorithm", WORD), AT(ROOT, rate_limit.algorithm), .def = "token_bucket",
     .words = w_algorithm, ON, .doc = "GCRA token bucket (DESIGN §2)"},
    {K("rate_limit.requests_per_sec", NUMBER), AT(ROOT, rate_limit.requests_per_sec),
     .def = "10000", .min = "0.001", .max = "1000000000", ON, .doc = "sustained rate per key"},
    {K("rate_limit.burst", INT), AT(ROOT, rate_limit.burst), .def = "2000", .min = "1",
     .max = "1000000000", ON, .doc = "requests allowed at once above the rate"},
    {K("rate_limit.key", ENUM), AT(ROOT, rate_limit.key), .def = "principal", .words = w_rl_key, ON,
     .doc = "what one bucket counts"},
    {K("rate_limit.capacity", INT), AT(ROOT, rate_limit.capacity), .def = "65536", .min = "16",
     .max = "16777216", ON, .doc = "buckets in shared memory"},
    {K("rate_limit.storage", ENUM), AT(ROOT, rate_limit.storage), .def = "shm", .words = w_storage,
     ON, .doc = "local buckets, or shared through memcached"},
    {K("rate_limit.memcached", SECTION), ON, .doc = "storage: memcached"},
    {K("rate_limit.memcached.servers", STRLIST), AT(ROOT, rate_limit.memcached.servers),
     .def = "[\"127.0.0.1:11211\"]", .min = "1", .max = "1024", .check = check_rl_servers, ON,
     .doc = "host:port of each memcached"},
    {K("rate_limit.memcached.pool_size", INT), AT(ROOT, rate_limit.memcached.pool_size),
     .def = "50", .min = "1", .max = "100000", ON, .doc = "refills in flight per worker"},
    {K("rate_limit.memcached.timeout", DURATION), AT(ROOT, rate_limit.memcached.timeout),
     .def = "50ms", .min = "1ms", .max = "1m", ON, .doc = "one memcached round trip"},
    {K("rate_limit.memcached.lease", INT), AT(ROOT, rate_limit.memcached.lease), .def = "100",
     .min = "1", .max = "1000000", ON, .doc = "tokens taken from memcached per round trip"},
    {K("rate_limit.memcached.on_error", ENUM), AT(ROOT, rate_limit.memcached.on_error_allow),
     .def = "allow", .words = w_on_error, ON,
     .doc = "memcached unreachable: allow (local limits) or deny"},
    {K("rate_limit.overrides", LIST),
     LIST_AT(ROOT, rate_limit.overrides, rate_limit.noverrides, OVERRIDE), .def = "[]",
     .max = "4096", ON, .doc = "other limits for matching principals and tools"},
    {K("rate_limit.overrides[].principal", STRING), AT(OVERRIDE, principal), .min = "1", ON,
     .doc = "glob on the principal; absent = any"},
    {K("rate_limit.overrides[].tool", STRING), AT(OVERRIDE, tool), .min = "1", ON,
     .doc = "glob on the prefixed tool name; absent = any"},
    {K("rate_limit.overrides[].requests_per_sec", NUMBER), AT(OVERRIDE, requests_per_sec),
     .min = "0.001", .max = "1000000000", REQUIRED, ON, .doc = "sustained rate"},
    {K("rate_limit.overrides[].burst", INT), AT(OVERRIDE, burst), .min = "1", .max = "1000000000",
     REQUIRED, ON, .doc = "burst"},

    /* ------------------------------------------------ caching */
    {K("caching", SECTION), ON, .doc = "shared-memory caches"},
    {K("caching.enabled", BOOL), AT(ROOT, caching.enabled), .def = "true", ON,
     .doc = "all caches at once"},
    {K("caching.response_cache", SECTION), ON, .doc = "results of cacheable tool calls"},
    {K("caching.response_cache.enabled", BOOL), AT(ROOT, caching.response_cache.enabled),
     .def = "true", ON, .doc = "cache responses"},
    {K("caching.response_cache.ttl", DURATION), AT(ROOT, caching.response_cache.ttl), .def = "60s",
     .min = "1ms", .max = "24h", ON, .doc = "entry lifetime"},
    {K("caching.response_cache.max_size", INT), AT(ROOT, caching.response_cache.max_size),
     .def = "10000", .min = "1", .max = "100000000", ON, .doc = "entries"},
    {K("caching.response_cache.max_entry_size", SIZE),
     AT(ROOT, caching.response_cache.max_entry_size), .def = "256KB", .min = "1", .max = "1GiB", ON,
     .doc = "larger results are not cached"},
    {K("caching.response_cache.cache_annotated", BOOL),
     AT(ROOT, caching.response_cache.cache_annotated), .def = "false", ON,
     .doc = "added: also cache tools annotated readOnlyHint/idempotentHint"},
    {K("caching.discovery_cache", SECTION), ON, .doc = "merged tools/prompts/resources lists"},
    {K("caching.discovery_cache.enabled", BOOL), AT(ROOT, caching.discovery_cache.enabled),
     .def = "true", ON, .doc = "cache discovery lists"},
    {K("caching.discovery_cache.ttl", DURATION), AT(ROOT, caching.discovery_cache.ttl),
     .def = "300s", .min = "1ms", .max = "24h", ON,
     .doc = "entry lifetime (list_changed invalidates earlier)"},
    {K("caching.auth_cache", SECTION), ON, .doc = "verified credentials"},
    {K("caching.auth_cache.enabled", BOOL), AT(ROOT, caching.auth_cache.enabled), .def = "true", ON,
     .doc = "cache authentication results"},
    {K("caching.auth_cache.ttl", DURATION), AT(ROOT, caching.auth_cache.ttl), .def = "300s",
     .min = "1ms", .max = "24h", ON, .doc = "entry lifetime"},
    {K("caching.auth_cache.max_size", INT), AT(ROOT, caching.auth_cache.max_size), .def = "50000",
     .min = "1", .max = "100000000", ON, .doc = "entries"},

    /* ------------------------------------------------ routing */
    {K("routing", SECTION), ON, .doc = "how calls reach backends"},
    {K("routing.strategy", ENUM), AT(ROOT, routing.strategy), .def = "least_response_time",
     .words = w_strategy, NOT_YET, .doc = "how an endpoint of a backend is picked"},
    {K("routing.prefix", ENUM), AT(ROOT, routing.prefix), .def = "auto", .words = w_prefix, ON,
     .doc = "prefix names with the backend: auto = only with more than one backend"},
    {K("routing.separator", STRING), AT(ROOT, routing.separator), .def = "__", .min = "1",
     .max = "8", .check = check_separator, ON, .doc = "between backend prefix and name"},
    {K("routing.request_timeout", DURATION), AT(ROOT, routing.request_timeout), .def = "60s",
     .min = "1ms", .max = "24h", ON, .doc = "default per-request timeout"},
    {K("routing.backend_limits", SECTION), NOT_YET, .doc = "per backend, per worker"},
    {K("routing.backend_limits.max_conns", INT), AT(ROOT, routing.backend_limits.max_conns),
     .def = "1000", .min = "1", .max = "1000000", NOT_YET, .doc = "connections to one backend"},
    {K("routing.backend_limits.max_idle_conns", INT),
     AT(ROOT, routing.backend_limits.max_idle_conns), .def = "100", .min = "0", .max = "1000000",
     NOT_YET, .doc = "idle connections kept to one backend"},
    {K("routing.health_check_interval", DURATION), AT(ROOT, routing.health_check_interval),
     .def = "30s", .min = "100ms", .max = "24h", NOT_YET, .doc = "between active probes"},
    {K("routing.health_check_timeout", DURATION), AT(ROOT, routing.health_check_timeout),
     .def = "5s", .min = "1ms", .max = "1h", NOT_YET, .doc = "one probe"},
    {K("routing.healthy_threshold", INT), AT(ROOT, routing.healthy_threshold), .def = "2",
     .min = "1", .max = "1000", NOT_YET, .doc = "successes before an endpoint is healthy"},
    {K("routing.unhealthy_threshold", INT), AT(ROOT, routing.unhealthy_threshold), .def = "3",
     .min = "1", .max = "1000", NOT_YET, .doc = "failures before an endpoint is unhealthy"},
    {K("routing.circuit_breaker", SECTION), NOT_YET, .doc = "stop sending to failing endpoints"},
    {K("routing.circuit_breaker.failure_threshold", INT),
     AT(ROOT, routing.circuit_breaker.failure_threshold), .def = "5", .min = "1", .max = "1000",
     NOT_YET, .doc = "consecutive failures that open the circuit"},
    {K("routing.circuit_breaker.cooldown", DURATION), AT(ROOT, routing.circuit_breaker.cooldown),
     .def = "10s", .min = "1ms", .max = "24h", NOT_YET, .doc = "open time before a trial"},
    {K("routing.circuit_breaker.half_open_requests", INT),
     AT(ROOT, routing.circuit_breaker.half_open_requests), .def = "1", .min = "1", .max = "1000",
     NOT_YET, .doc = "trial requests while half open"},
    {K("routing.retries", SECTION), NOT_YET, .doc = "retries of failed idempotent calls"},
    {K("routing.retries.max", INT), AT(ROOT, routing.retries.max), .def = "2", .min = "0",
     .max = "10", NOT_YET, .doc = "retries per request"},
    {K("routing.retries.budget_ratio", NUMBER), AT(ROOT, routing.retries.budget_ratio),
     .def = "0.1", .min = "0", .max = "1", NOT_YET,
     .doc = "retries allowed as a fraction of requests"},

    /* ------------------------------------------------ auth */
    {K("auth", SECTION), OFF("enabled: false"), .doc = "client authentication and policies"},
    {K("auth.enabled", BOOL), AT(ROOT, auth.enabled), .def = "false", OFF("false"),
     .doc = "require credentials"},
    {K("auth.providers", LIST), LIST_AT(ROOT, auth.providers, auth.nproviders, PROVIDER),
     .def = "[]", .max = "64", OFF("[]"), .doc = "credential verifiers, tried in order"},
    {K("auth.providers[].type", ENUM), AT(PROVIDER, type), .words = w_auth_type, REQUIRED, NOT_YET,
     .doc = "kind of credential"},
    {K("auth.providers[].keys", LIST), LIST_AT(PROVIDER, keys, nkeys, APIKEY), .def = "[]",
     .max = "100000", NOT_YET, .doc = "api_key: the accepted keys"},
    {K("auth.providers[].keys[].name", STRING), AT(APIKEY, name), .min = "1", REQUIRED, NOT_YET,
     .doc = "the principal a key authenticates"},
    {K("auth.providers[].keys[].sha256", HEX), AT(APIKEY, sha256), REQUIRED, NOT_YET,
     .doc = "hex SHA-256 of the key (the key itself is never stored)"},
    {K("auth.providers[].issuer", STRING), AT(PROVIDER, issuer), .min = "1", NOT_YET,
     .doc = "jwt: expected iss"},
    {K("auth.providers[].audience", STRING), AT(PROVIDER, audience), .min = "1", NOT_YET,
     .doc = "jwt: expected aud"},
    {K("auth.providers[].algorithms", STRLIST), AT(PROVIDER, algorithms), .def = "[]", .max = "16",
     NOT_YET, .doc = "jwt: accepted alg values"},
    {K("auth.providers[].jwks_file", STRING), AT(PROVIDER, jwks_file), .min = "1", NOT_YET,
     .doc = "jwt: JWK set file"},
    {K("auth.providers[].key_file", STRING), AT(PROVIDER, key_file), .min = "1", NOT_YET,
     .doc = "jwt: PEM public key"},
    {K("auth.providers[].secret", STRING), AT(PROVIDER, secret), .min = "1", NOT_YET,
     .doc = "jwt: HMAC secret (use ${ENV})"},
    {K("auth.providers[].principal_claim", STRING), AT(PROVIDER, principal_claim), .def = "sub",
     .min = "1", NOT_YET, .doc = "jwt: claim naming the principal"},
    {K("auth.providers[].scopes_claim", STRING), AT(PROVIDER, scopes_claim), .def = "scope",
     .min = "1", NOT_YET, .doc = "jwt: claim holding scopes"},
    {K("auth.providers[].leeway", DURATION), AT(PROVIDER, leeway), .def = "30s", .min = "0",
     .max = "1h", NOT_YET, .doc = "jwt: clock skew tolerated"},
    {K("auth.providers[].url", STRING), AT(PROVIDER, url), .min = "1", NOT_YET,
     .doc = "oauth2_introspection: RFC 7662 endpoint"},
    {K("auth.providers[].client_id", STRING), AT(PROVIDER, client_id), .min = "1", NOT_YET,
     .doc = "oauth2_introspection: client id"},
    {K("auth.providers[].client_secret", STRING), AT(PROVIDER, client_secret), .min = "1", NOT_YET,
     .doc = "oauth2_introspection: client secret (use ${ENV})"},
    {K("auth.resource_metadata", SECTION), OFF("{}"),
     .doc = "RFC 9728 protected resource metadata document"},
    {K("auth.resource_metadata.resource", STRING), AT(ROOT, auth.resource_metadata.resource),
     .min = "1", NOT_YET, .doc = "the resource identifier"},
    {K("auth.resource_metadata.authorization_servers", STRLIST),
     AT(ROOT, auth.resource_metadata.authorization_servers), .def = "[]", .max = "64", NOT_YET,
     .doc = "issuer URLs"},
    {K("auth.resource_metadata.scopes_supported", STRLIST),
     AT(ROOT, auth.resource_metadata.scopes_supported), .def = "[]", .max = "1024", NOT_YET,
     .doc = "scopes"},
    {K("auth.policies", LIST), LIST_AT(ROOT, auth.policies, auth.npolicies, POLICY), .def = "[]",
     .max = "4096", OFF("[]"), .doc = "which principals may call what"},
    {K("auth.policies[].principals", STRLIST), AT(POLICY, principals), .def = "[]", .max = "65536",
     NOT_YET, .doc = "principal names or \"scope:<scope>\""},
    {K("auth.policies[].allow", STRLIST), AT(POLICY, allow), .def = "[]", .max = "65536", NOT_YET,
     .doc = "globs on prefixed names allowed"},
    {K("auth.policies[].deny", STRLIST), AT(POLICY, deny), .def = "[]", .max = "65536", NOT_YET,
     .doc = "globs denied (deny wins)"},

    /* ------------------------------------------------ sessions */
    {K("sessions", SECTION), OFF("{}"), .doc = "Streamable HTTP session tokens"},
    {K("sessions.key_file", STRING), AT(ROOT, sessions.key_file), .def = "\"\"", NOT_YET,
     .doc = "AES-256 key; empty = generated at start, kept across reloads"},
    {K("sessions.ttl", DURATION), AT(ROOT, sessions.ttl), .def = "24h", .min = "1s", .max = "168h",
     NOT_YET, .doc = "session lifetime"},

    /* ------------------------------------------------ metrics */
    {K("metrics", SECTION), ON, .doc = "Prometheus endpoint"},
    {K("metrics.enabled", BOOL), AT(ROOT, metrics.enabled), .def = "true", ON,
     .doc = "serve metrics, /healthz and /readyz on metrics.listen"},
    {K("metrics.listen", SECTION), ON, .doc = "where metrics are served"},
    {K("metrics.listen.address", STRING), AT(ROOT, metrics.address), .def = "127.0.0.1",
     .conv = conv_address, ON, .doc = "numeric address or host name resolved at load"},
    {K("metrics.listen.port", INT), AT(ROOT, metrics.port), .def = "9090", .min = "1",
     .max = "65535", ON, .doc = "TCP port; not one a server.listen entry binds"},
    {K("metrics.path", STRING), AT(ROOT, metrics.path), .def = "/metrics",
     .check = check_metrics_path, ON, .doc = "HTTP path of the exposition"},

    /* ------------------------------------------------ resources */
    {K("resources", SECTION), ON, .doc = "process resource limits"},
    {K("resources.memory_limit", SIZE), AT(ROOT, resources.memory_limit), .def = "512MiB",
     .min = "1MiB", NOT_YET, .doc = "soft limit: above it, shrink caches, refuse connections"},
    {K("resources.cpu_affinity", BOOL), AT(ROOT, resources.cpu_affinity), .def = "false", ON,
     .doc = "pin worker N to CPU N"},
};

size_t mb_conf_keys_count(void)
{
    return sizeof(keys) / sizeof(keys[0]);
}

const struct mb_conf_key *mb_conf_key_at(size_t i)
{
    return i < mb_conf_keys_count() ? &keys[i] : NULL;
}

const struct mb_conf_key *mb_conf_key_find(const char *path)
{
    for (size_t i = 0; i < mb_conf_keys_count(); i++)
        if (strcmp(keys[i].path, path) == 0)
            return &keys[i];
    return NULL;
}

int mb_conf_key_set_supported(const char *path, bool on)
{
    for (size_t i = 0; i < mb_conf_keys_count(); i++) {
        if (strcmp(keys[i].path, path) == 0) {
            keys[i].supported = on;
            return MB_OK;
        }
    }
    return MB_ERR;
}

const char *mb_conf_type_name(enum mb_conf_type type)
{
    switch (type) {
    case MB_CONF_BOOL:
        return "bool";
    case MB_CONF_INT:
        return "integer";
    case MB_CONF_NUMBER:
        return "number";
    case MB_CONF_SIZE:
        return "size";
    case MB_CONF_DURATION:
        return "duration";
    case MB_CONF_STRING:
        return "string";
    case MB_CONF_ENUM:
    case MB_CONF_WORD:
        return "enum";
    case MB_CONF_STRLIST:
        return "list of strings";
    case MB_CONF_MAP:
        return "map";
    case MB_CONF_SECTION:
        return "section";
    case MB_CONF_LIST:
        return "list of mappings";
    case MB_CONF_HEX:
        return "hex string";
    }
    return "?";
}
