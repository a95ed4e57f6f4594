/*
 * conf/conf.h — the typed configuration: one struct per section of
 * gateway.yaml, mirroring ../shared/gateway.contract.yaml key for key.
 *
 * One mb_conf is one generation of the configuration (CONVENTIONS rule 7):
 * everything in it is allocated by mb_conf_load() and released by
 * mb_conf_free(); nothing in it points outside it. Durations are
 * milliseconds (mb_msec_t), sizes are bytes. Every field holds the contract's
 * default when the file does not set it.
 *
 * A key whose feature is not built yet is rejected by the loader with
 * "not supported yet", except for the value that keeps the feature off
 * (`enabled: false`, `[]`, `access_log: off`). Such a feature's `enabled`
 * field reads false; its other fields keep the contract's defaults. Which
 * keys those are, and how a feature is switched on, is in conf/keys.c; the
 * table itself is declared in conf/keys.h.
 *
 * `file` is the path exactly as given to mb_conf_load(); relative paths in
 * the file (pid_file, logs) are kept as written and mean "relative to the
 * working directory", so the master must not chdir before using them.
 */
#ifndef MB_CONF_CONF_H
#define MB_CONF_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef int64_t mb_msec_t;

struct mb_conf_strv { /* a list of strings */
    char **v;
    size_t n;
};

struct mb_conf_kv { /* a string map, in file order */
    char **keys;
    char **values;
    size_t n;
};

/* ---------------------------------------------------------------- server */
enum mb_conf_client_auth { MB_CLIENT_AUTH_NONE, MB_CLIENT_AUTH_OPTIONAL, MB_CLIENT_AUTH_REQUIRE };

struct mb_conf_tls {
    bool enabled; /* a tls: mapping was given */
    char *cert_file;
    char *key_file;
    char *min_version; /* "1.2" | "1.3" */
    char *client_ca_file;
    enum mb_conf_client_auth client_auth;
};

struct mb_conf_listen {
    char *address; /* numeric IPv4 or IPv6 address, or a host name resolved at load */
    uint16_t port;
    struct mb_conf_tls tls;
};

struct mb_conf_server {
    struct mb_conf_listen *listen;
    size_t nlisten;
    struct mb_conf_strv paths; /* default [/, /mcp] */
    uint64_t read_buffer_size;
    uint64_t write_buffer_size;
    struct {
        uint64_t read_buffer_size;
        uint64_t write_buffer_size;
        mb_msec_t ping_interval;
    } websocket;
    uint64_t max_message_size;
    uint32_t max_connections;
    mb_msec_t idle_timeout;
    mb_msec_t shutdown_timeout;
    struct mb_conf_strv allowed_origins;
    struct mb_conf_strv allowed_hosts;
};

/* ---------------------------------------------------------------- connection_pool */
struct mb_conf_connection_pool {
    bool enabled;
    uint32_t max_idle_conns;
    uint32_t max_conns_per_host;
    uint32_t max_idle_conns_per_host;
    mb_msec_t idle_conn_timeout;
    mb_msec_t response_header_timeout;
    mb_msec_t tls_handshake_timeout;
    mb_msec_t keep_alive;
    mb_msec_t keep_alive_timeout;
};

/* ---------------------------------------------------------------- backends */
enum mb_conf_transport { MB_TRANSPORT_STDIO, MB_TRANSPORT_HTTP, MB_TRANSPORT_WEBSOCKET };
enum mb_conf_session_mode { MB_SESSION_SHARED, MB_SESSION_PER_CLIENT };
enum mb_conf_health_method { MB_HEALTH_PING, MB_HEALTH_HTTP_GET };

struct mb_conf_endpoint {
    char *url;
    uint32_t weight; /* default 1 */
    /* Derived from url by the loader (not keys of the file): the URL's parts,
     * and its host resolved once at load (DESIGN §9: lws client connections
     * resolve with a blocking getaddrinfo, so transports connect to address). */
    bool tls;      /* https:// or wss:// */
    char *host;    /* as written, without brackets: Host header and SNI */
    char *address; /* numeric IPv4/IPv6 of host */
    uint16_t port; /* explicit, or 80 / 443 */
    char *path;    /* from the first '/' on, query included; "/" when absent */
};

struct mb_conf_backend {
    char *name; /* [A-Za-z0-9_-]+, unique */
    enum mb_conf_transport transport;
    /* stdio */
    struct mb_conf_strv command;
    struct mb_conf_kv env;
    char *cwd; /* default "." */
    /* http, websocket */
    struct mb_conf_endpoint *endpoints;
    size_t nendpoints;
    struct mb_conf_kv headers;
    struct {
        char *ca_file;
        bool verify; /* default true */
        char *server_name;
    } tls;
    /* A request without a response by then fails (-32002). When the file
     * does not set it, the loader copies routing.request_timeout in. */
    mb_msec_t request_timeout;
    enum mb_conf_session_mode session;
    struct mb_conf_strv cache_tools;
    struct {
        enum mb_conf_health_method method;
        char *path;
    } health_check;
};

/* ---------------------------------------------------------------- rate_limit */
enum mb_conf_rl_key { MB_RL_KEY_PRINCIPAL, MB_RL_KEY_IP, MB_RL_KEY_GLOBAL };
enum mb_conf_rl_storage { MB_RL_STORAGE_SHM, MB_RL_STORAGE_MEMCACHED };

struct mb_conf_rl_override {
    char *principal; /* glob; NULL = any */
    char *tool;      /* glob; NULL = any */
    double requests_per_sec;
    uint32_t burst;
};

struct mb_conf_rate_limit {
    bool enabled;
    char *algorithm; /* "token_bucket" */
    double requests_per_sec;
    uint32_t burst;
    enum mb_conf_rl_key key;
    uint32_t capacity;
    enum mb_conf_rl_storage storage;
    struct {
        struct mb_conf_strv servers;
        uint32_t pool_size;
        mb_msec_t timeout;
        uint32_t lease;
        bool on_error_allow; /* on_error: allow (true) | deny (false) */
    } memcached;
    struct mb_conf_rl_override *overrides;
    size_t noverrides;
};

/* ---------------------------------------------------------------- caching */
struct mb_conf_caching {
    bool enabled;
    struct {
        bool enabled;
        mb_msec_t ttl;
        uint32_t max_size; /* entries */
        uint64_t max_entry_size;
        bool cache_annotated;
    } response_cache;
    struct {
        bool enabled;
        mb_msec_t ttl;
    } discovery_cache;
    struct {
        bool enabled;
        mb_msec_t ttl;
        uint32_t max_size;
    } auth_cache;
};

/* ---------------------------------------------------------------- routing */
enum mb_conf_strategy {
    MB_STRATEGY_ROUND_ROBIN,
    MB_STRATEGY_LEAST_CONNECTIONS,
    MB_STRATEGY_LEAST_RESPONSE_TIME,
    MB_STRATEGY_RANDOM_TWO,
    MB_STRATEGY_WEIGHTED,
    MB_STRATEGY_SESSION_HASH
};
enum mb_conf_prefix { MB_PREFIX_AUTO, MB_PREFIX_ALWAYS, MB_PREFIX_NEVER };

struct mb_conf_routing {
    enum mb_conf_strategy strategy;
    enum mb_conf_prefix prefix;
    char *separator; /* "__" */
    mb_msec_t request_timeout;
    struct {
        uint32_t max_conns;
        uint32_t max_idle_conns;
    } backend_limits;
    mb_msec_t health_check_interval;
    mb_msec_t health_check_timeout;
    uint32_t healthy_threshold;
    uint32_t unhealthy_threshold;
    struct {
        uint32_t failure_threshold;
        mb_msec_t cooldown;
        uint32_t half_open_requests;
    } circuit_breaker;
    struct {
        uint32_t max;
        double budget_ratio;
    } retries;
};

/* ---------------------------------------------------------------- auth */
enum mb_conf_auth_type { MB_AUTH_API_KEY, MB_AUTH_JWT, MB_AUTH_OAUTH2_INTROSPECTION };

struct mb_conf_api_key {
    char *name;
    uint8_t sha256[32];
};

struct mb_conf_auth_provider {
    enum mb_conf_auth_type type;
    /* api_key */
    struct mb_conf_api_key *keys;
    size_t nkeys;
    /* jwt */
    char *issuer;
    char *audience;
    struct mb_conf_strv algorithms;
    char *jwks_file;
    char *key_file;
    char *secret;
    char *principal_claim; /* "sub" */
    char *scopes_claim;    /* "scope" */
    mb_msec_t leeway;
    /* oauth2_introspection */
    char *url;
    char *client_id;
    char *client_secret;
};

struct mb_conf_policy {
    struct mb_conf_strv principals;
    struct mb_conf_strv allow;
    struct mb_conf_strv deny;
};

struct mb_conf_auth {
    bool enabled;
    struct mb_conf_auth_provider *providers;
    size_t nproviders;
    struct {
        char *resource;
        struct mb_conf_strv authorization_servers;
        struct mb_conf_strv scopes_supported;
    } resource_metadata;
    struct mb_conf_policy *policies;
    size_t npolicies;
};

/* ---------------------------------------------------------------- the rest */
struct mb_conf_sessions {
    char *key_file; /* "" = generated at start */
    mb_msec_t ttl;
};

struct mb_conf_metrics {
    bool enabled;
    char *address;
    uint16_t port;
    char *path;
};

struct mb_conf_resources {
    uint64_t memory_limit;
    bool cpu_affinity;
};

struct mb_conf_logging {
    int level;        /* enum mb_log_level */
    char *error_log;  /* "stderr" or a path */
    char *access_log; /* NULL = off, or a path */
};

struct mb_conf {
    char *file;       /* the path it was loaded from */
    uint32_t workers; /* resolved: "auto" = online CPUs */
    bool workers_auto;
    char *pid_file;
    struct {
        char *path;
    } shm;
    struct mb_conf_logging logging;
    struct mb_conf_server server;
    struct mb_conf_connection_pool connection_pool;
    struct mb_conf_backend *backends;
    size_t nbackends;
    struct mb_conf_rate_limit rate_limit;
    struct mb_conf_caching caching;
    struct mb_conf_routing routing;
    struct mb_conf_auth auth;
    struct mb_conf_sessions sessions;
    struct mb_conf_metrics metrics;
    struct mb_conf_resources resources;
};

/*
 * Loads and validates a file. On success returns 0 and *out owns a new
 * generation. On failure returns MB_ERR, leaves *out NULL and writes one line
 * into err: "FILE:LINE:COLUMN: key.path: what is wrong", e.g.
 *   gateway.yaml:12:5: server.max_message_size: expected a size, got "big"
 */
int mb_conf_load(const char *path, struct mb_conf **out, char *err, size_t errlen);
/* The same from a string (tests); name stands for the file in messages. */
int mb_conf_load_string(const char *name, const char *text, struct mb_conf **out, char *err,
                        size_t errlen);
void mb_conf_free(struct mb_conf **confp);

/* Value parsers, exported for their unit tests and for the CLI.
 * Durations: "250ms", "30s", "5m", "24h", "1h30m", "0"; a bare number is an error
 * (units are required except for 0). Sizes: "8192", "1MB" (10^6), "1KB",
 * "512MiB" (2^20), "1KiB", "1GiB", "1GB", case-sensitive units. Return 0 or MB_ERR. */
int mb_conf_parse_duration(const char *s, mb_msec_t *out);
int mb_conf_parse_size(const char *s, uint64_t *out);
/* Expands ${NAME} from the environment ("$${" is a literal "${"). On success
 * *out is a new malloc'd string; on failure (unset variable, bad syntax)
 * returns MB_ERR and writes the reason (no position) into err. */
int mb_conf_expand_env(const char *in, char **out, char *err, size_t errlen);

#endif
