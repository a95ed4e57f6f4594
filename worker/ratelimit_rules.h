/*
 * worker/ratelimit_rules.h — which limit applies to a request, and which
 * bucket it draws from: the rate_limit section of one configuration
 * generation compiled into rules (GCRA parameters ready for shm/ratelimit.h),
 * override matching, and the bytes that name a bucket. Pure functions, no
 * I/O: tests/unit/worker/test_ratelimit_rules.c drives them directly.
 *
 * Rules: rate_limit.overrides in file order, then the default rule
 * (rate_limit.requests_per_sec and burst). The first rule that matches wins.
 * An override matches when its `principal` glob matches the caller's
 * principal and its `tool` glob matches the tool being called (fnmatch(3),
 * no flags); an absent glob matches anything. An override with a `tool`
 * glob matches only tools/call requests: other methods name no tool.
 *
 * Principal: there is no authentication yet, so the principal of every
 * request is the client's IP address (without the port); `key: principal`
 * and `key: ip` therefore count the same thing until auth lands, but name
 * their buckets differently so that switching key never mixes budgets.
 *
 * Bucket names (the bytes hashed into a table key, and into the memcached
 * key in storage: memcached): the rule's identity, a NUL, then the counted
 * thing:
 *     "default" | "override:<principal glob>\x1f<tool glob>"   ('*' when absent)
 *     "\0"
 *     "p:<principal>" | "i:<ip>" | "g"
 * The rule is named by its globs, not by its position or its rate, so a
 * reload that adds an override before it or changes its rate keeps the
 * client's bucket: a reload never hands a client a fresh budget. A bucket
 * does not remember its rate; a changed rate applies from the next decision.
 */
#ifndef MB_WORKER_RATELIMIT_RULES_H
#define MB_WORKER_RATELIMIT_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"

/* Longest bucket name: longer ones (huge globs, huge principals) are cut;
 * the cut keeps the rule part whole so two rules never share a bucket. */
#define MB_RATELIMIT_KEY_MAX 512

struct mb_ratelimit_rule {
    const char *principal; /* glob, NULL = any (points into the conf) */
    const char *tool;      /* glob, NULL = any */
    double requests_per_sec;
    uint32_t burst;
    uint64_t T_ns;   /* GCRA emission interval: 1 / rate */
    uint64_t tau_ns; /* GCRA tolerance: T * (burst - 1) */
    char *id;        /* the rule part of the bucket name, NUL-terminated */
    size_t id_len;
};

struct mb_ratelimit_rules {
    struct mb_ratelimit_rule *v; /* overrides in file order, then the default */
    size_t n;
    enum mb_conf_rl_key key;
};

/* Compiles a rate_limit section. Returns 0, or MB_ERR (out of memory, or a
 * rate/burst the loader should have refused). The rules point into c, which
 * must outlive them. */
int mb_ratelimit_rules_build(const struct mb_conf_rate_limit *c, struct mb_ratelimit_rules *out);
void mb_ratelimit_rules_free(struct mb_ratelimit_rules *r);

/* The first rule that matches; never NULL (the default matches everything).
 * tool is the tools/call name, or NULL for any other method. */
const struct mb_ratelimit_rule *mb_ratelimit_rules_match(const struct mb_ratelimit_rules *r,
                                                         const char *principal, const char *tool);

/* Writes the bucket name for rule and this caller into buf (cap bytes, at
 * least MB_RATELIMIT_KEY_MAX is enough) and returns its length. */
size_t mb_ratelimit_rules_key(const struct mb_ratelimit_rules *r,
                              const struct mb_ratelimit_rule *rule, const char *principal,
                              const char *ip, char *buf, size_t cap);

#endif
