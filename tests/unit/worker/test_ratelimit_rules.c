/*
 * tests/unit/worker/test_ratelimit_rules.c — worker/ratelimit_rules.c:
 * compiling rate_limit into rules (GCRA parameters), first-match override
 * matching by principal and tool glob, and bucket names.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "common/errors.h"
#include "conf/conf.h"
#include "worker/ratelimit_rules.h"

static struct mb_conf *conf;
static struct mb_ratelimit_rules rules;

static void load(const char *yaml)
{
    char err[512] = "";
    cr_assert_eq(mb_conf_load_string("t.yaml", yaml, &conf, err, sizeof(err)), MB_OK, "%s", err);
    cr_assert_eq(mb_ratelimit_rules_build(&conf->rate_limit, &rules), MB_OK);
}

static void fini(void)
{
    mb_ratelimit_rules_free(&rules);
    mb_conf_free(&conf);
}

static const char overrides_yaml[] =
    "rate_limit:\n"
    "  requests_per_sec: 100\n"
    "  burst: 50\n"
    "  overrides:\n"
    "    - {principal: \"10.0.0.*\", tool: \"demo__*\", requests_per_sec: 2, burst: 4}\n"
    "    - {principal: \"10.0.0.*\", requests_per_sec: 20, burst: 40}\n"
    "    - {tool: \"*__delete_*\", requests_per_sec: 0.5, burst: 1}\n";

Test(ratelimit_rules, gcra_parameters, .fini = fini)
{
    load(overrides_yaml);
    cr_assert_eq(rules.n, 4);
    const struct mb_ratelimit_rule *d = &rules.v[3];
    cr_expect_eq(d->T_ns, 10000000ull, "1/100 s");
    cr_expect_eq(d->tau_ns, 49ull * 10000000ull, "T * (burst - 1)");
    cr_expect_eq(rules.v[2].T_ns, 2000000000ull, "1/0.5 s");
    cr_expect_eq(rules.v[2].tau_ns, 0, "burst 1: no tolerance");
    cr_expect_eq(rules.key, MB_RL_KEY_PRINCIPAL);
}

Test(ratelimit_rules, first_match_wins, .fini = fini)
{
    load(overrides_yaml);
    const struct mb_ratelimit_rule *r;
    r = mb_ratelimit_rules_match(&rules, "10.0.0.7", "demo__echo");
    cr_expect_eq(r, &rules.v[0], "principal and tool both match the first");
    r = mb_ratelimit_rules_match(&rules, "10.0.0.7", "other__echo");
    cr_expect_eq(r, &rules.v[1], "the tool glob fails: the principal-only entry");
    r = mb_ratelimit_rules_match(&rules, "10.0.0.7", NULL);
    cr_expect_eq(r, &rules.v[1], "a method without a tool skips tool entries");
    r = mb_ratelimit_rules_match(&rules, "10.0.0.7", "demo__delete_all");
    cr_expect_eq(r, &rules.v[0], "earlier entries win over later ones that also match");
    r = mb_ratelimit_rules_match(&rules, "192.168.1.1", "x__delete_all");
    cr_expect_eq(r, &rules.v[2]);
    r = mb_ratelimit_rules_match(&rules, "192.168.1.1", "x__read");
    cr_expect_eq(r, &rules.v[3], "nothing matches: the default");
    cr_expect_float_eq(r->requests_per_sec, 100.0, 1e-9);
    cr_expect_eq(r->burst, 50);
}

Test(ratelimit_rules, bucket_names, .fini = fini)
{
    load(overrides_yaml);
    char a[MB_RATELIMIT_KEY_MAX], b[MB_RATELIMIT_KEY_MAX];
    size_t na = mb_ratelimit_rules_key(&rules, &rules.v[3], "1.2.3.4", "1.2.3.4", a, sizeof(a));
    cr_assert_eq(na, strlen("default") + 1 + strlen("p:1.2.3.4"));
    cr_expect_eq(memcmp(a, "default\0p:1.2.3.4", na), 0);
    size_t nb = mb_ratelimit_rules_key(&rules, &rules.v[0], "1.2.3.4", "1.2.3.4", b, sizeof(b));
    const char want[] = "override:10.0.0.*\x1f"
                        "demo__*\0p:1.2.3.4";
    cr_assert_eq(nb, sizeof(want) - 1);
    cr_expect_eq(memcmp(b, want, nb), 0, "named by the rule's globs");
    /* Different callers, different buckets; the same caller, the same one. */
    size_t nc = mb_ratelimit_rules_key(&rules, &rules.v[3], "1.2.3.5", "1.2.3.5", b, sizeof(b));
    cr_expect(nc != na || memcmp(a, b, na) != 0);
    nc = mb_ratelimit_rules_key(&rules, &rules.v[3], "1.2.3.4", "1.2.3.4", b, sizeof(b));
    cr_expect(nc == na && memcmp(a, b, na) == 0);
    /* A tiny buffer is never overrun. */
    char tiny[5];
    cr_expect_leq(mb_ratelimit_rules_key(&rules, &rules.v[0], "x", "x", tiny, sizeof(tiny)),
                  sizeof(tiny));
}

Test(ratelimit_rules, key_kinds, .fini = fini)
{
    char a[MB_RATELIMIT_KEY_MAX];
    size_t n;
    load("rate_limit: {key: global}\n");
    n = mb_ratelimit_rules_key(&rules, &rules.v[0], "1.1.1.1", "1.1.1.1", a, sizeof(a));
    cr_expect_eq(n, 9);
    cr_expect_eq(memcmp(a, "default\0g", 9), 0, "one bucket for everybody");
    fini();
    load("rate_limit: {key: ip}\n");
    n = mb_ratelimit_rules_key(&rules, &rules.v[0], "alice", "1.1.1.1", a, sizeof(a));
    cr_expect_eq(memcmp(a, "default\0i:1.1.1.1", n), 0, "ip counts the address");
}

Test(ratelimit_rules, reload_keeps_names_when_rules_move, .fini = fini)
{
    /* The same override, now second and with another rate: same bucket. */
    char a[MB_RATELIMIT_KEY_MAX], b[MB_RATELIMIT_KEY_MAX];
    load("rate_limit:\n  overrides: [{principal: \"ci-*\", requests_per_sec: 1, burst: 1}]\n");
    size_t na = mb_ratelimit_rules_key(&rules, &rules.v[0], "ci-1", "ci-1", a, sizeof(a));
    fini();
    load("rate_limit:\n  overrides:\n"
         "    - {tool: x, requests_per_sec: 1, burst: 1}\n"
         "    - {principal: \"ci-*\", requests_per_sec: 9, burst: 9}\n");
    const struct mb_ratelimit_rule *r = mb_ratelimit_rules_match(&rules, "ci-1", NULL);
    cr_assert_eq(r, &rules.v[1]);
    size_t nb = mb_ratelimit_rules_key(&rules, r, "ci-1", "ci-1", b, sizeof(b));
    cr_expect(na == nb && memcmp(a, b, na) == 0);
}

Test(conf_ratelimit, memcached_servers_are_host_port)
{
    static const char *const bad[] = {"localhost", "h:0",       "h:65536", "h:x",
                                      ":11211",    "::1:11211", "[::1]",   "h :1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char yaml[256], err[512] = "";
        struct mb_conf *c = NULL;
        snprintf(yaml, sizeof(yaml),
                 "rate_limit:\n  memcached:\n    servers: [\"127.0.0.1:1\", \"%s\"]\n", bad[i]);
        cr_expect_eq(mb_conf_load_string("t.yaml", yaml, &c, err, sizeof(err)), MB_ERR, "%s",
                     bad[i]);
        cr_expect_not_null(strstr(err, "rate_limit.memcached.servers[1]: expected host:port"),
                           "%s: %s", bad[i], err);
        mb_conf_free(&c);
    }
    char err[512] = "";
    struct mb_conf *c = NULL;
    cr_expect_eq(mb_conf_load_string("t.yaml",
                                     "rate_limit:\n  storage: memcached\n  memcached:\n"
                                     "    servers: [\"mc.example:11211\", \"[::1]:11211\"]\n"
                                     "    lease: 1\n",
                                     &c, err, sizeof(err)),
                 MB_OK, "%s", err);
    mb_conf_free(&c);
    cr_expect_eq(mb_conf_load_string("t.yaml", "rate_limit: {memcached: {lease: 0}}\n", &c, err,
                                     sizeof(err)),
                 MB_ERR);
    cr_expect_not_null(strstr(err, "rate_limit.memcached.lease: must be between 1"), "%s", err);
    mb_conf_free(&c);
}
