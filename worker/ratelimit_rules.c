/*
 * worker/ratelimit_rules.c — rate_limit rules: compile, match, name buckets
 * (contract and bucket-name format in ratelimit_rules.h).
 */
#include "worker/ratelimit_rules.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "shm/ratelimit.h"

static char *rule_id(const char *principal, const char *tool, size_t *len)
{
    size_t n;
    char *s;
    if (principal == NULL && tool == NULL) {
        s = strdup("default");
        n = 7;
    } else {
        const char *p = principal ? principal : "*", *t = tool ? tool : "*";
        n = strlen("override:") + strlen(p) + 1 + strlen(t);
        s = malloc(n + 1);
        if (s != NULL)
            snprintf(s, n + 1, "override:%s\x1f%s", p, t);
    }
    if (s != NULL && n > MB_RATELIMIT_KEY_MAX / 2) {
        /* Bounded so a caller's part always fits; overrides with globs this
         * long are unusual enough that a cut is acceptable (still distinct
         * in practice: the cut keeps the first 256 bytes). */
        n = MB_RATELIMIT_KEY_MAX / 2;
        s[n] = '\0';
    }
    *len = n;
    return s;
}

int mb_ratelimit_rules_build(const struct mb_conf_rate_limit *c, struct mb_ratelimit_rules *out)
{
    memset(out, 0, sizeof(*out));
    out->key = c->key;
    out->v = calloc(c->noverrides + 1, sizeof(*out->v));
    if (out->v == NULL)
        return MB_ERR;
    for (size_t i = 0; i <= c->noverrides; i++) {
        struct mb_ratelimit_rule *r = &out->v[i];
        const struct mb_conf_rl_override *o = i < c->noverrides ? &c->overrides[i] : NULL;
        out->n = i + 1;
        r->principal = o ? o->principal : NULL;
        r->tool = o ? o->tool : NULL;
        r->requests_per_sec = o ? o->requests_per_sec : c->requests_per_sec;
        r->burst = o ? o->burst : c->burst;
        if (mb_ratelimit_params(r->requests_per_sec, r->burst, &r->T_ns, &r->tau_ns) != MB_OK)
            goto fail;
        r->id = rule_id(r->principal, r->tool, &r->id_len);
        if (r->id == NULL)
            goto fail;
    }
    return MB_OK;
fail:
    mb_ratelimit_rules_free(out);
    return MB_ERR;
}

void mb_ratelimit_rules_free(struct mb_ratelimit_rules *r)
{
    for (size_t i = 0; r->v != NULL && i < r->n; i++)
        free(r->v[i].id);
    free(r->v);
    r->v = NULL;
    r->n = 0;
}

static int glob_ok(const char *glob, const char *s)
{
    if (glob == NULL)
        return 1;
    return s != NULL && fnmatch(glob, s, 0) == 0;
}

const struct mb_ratelimit_rule *mb_ratelimit_rules_match(const struct mb_ratelimit_rules *r,
                                                         const char *principal, const char *tool)
{
    for (size_t i = 0; i + 1 < r->n; i++)
        if (glob_ok(r->v[i].principal, principal) && glob_ok(r->v[i].tool, tool))
            return &r->v[i];
    return &r->v[r->n - 1];
}

size_t mb_ratelimit_rules_key(const struct mb_ratelimit_rules *r,
                              const struct mb_ratelimit_rule *rule, const char *principal,
                              const char *ip, char *buf, size_t cap)
{
    const char *tag, *what;
    switch (r->key) {
    case MB_RL_KEY_PRINCIPAL:
        tag = "p:";
        what = principal ? principal : "";
        break;
    case MB_RL_KEY_IP:
        tag = "i:";
        what = ip ? ip : "";
        break;
    default:
        tag = "g";
        what = "";
        break;
    }
    size_t n = 0, idn = rule->id_len, tn = strlen(tag), wn = strlen(what);
    if (cap == 0)
        return 0;
    if (idn + 1 > cap)
        idn = cap - 1;
    memcpy(buf, rule->id, idn);
    n = idn;
    buf[n++] = '\0';
    if (tn > cap - n)
        tn = cap - n;
    memcpy(buf + n, tag, tn);
    n += tn;
    if (wn > cap - n)
        wn = cap - n;
    memcpy(buf + n, what, wn);
    return n + wn;
}
