/*
 * tests/load/stages.c — see stages.h.
 */
#include "tests/load/stages.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mb_load_duration_parse(const char *s, uint64_t *ns)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno != 0 || !(v >= 0) || s[0] == '-' || s[0] == '+' || s[0] == ' ')
        return -1;
    double mul;
    if (*end == '\0' || strcmp(end, "s") == 0)
        mul = 1e9;
    else if (strcmp(end, "ms") == 0)
        mul = 1e6;
    else if (strcmp(end, "m") == 0)
        mul = 60e9;
    else if (strcmp(end, "h") == 0)
        mul = 3600e9;
    else
        return -1;
    double r = v * mul;
    if (r > 1e18) /* ~31 years: nonsense, and beyond what fits comfortably */
        return -1;
    *ns = (uint64_t)(r + 0.5);
    return 0;
}

int mb_load_stages_parse(const char *spec, struct mb_load_stages *st, char *err, size_t errlen)
{
    memset(st, 0, sizeof(*st));
    const char *p = spec;
    if (!*p) {
        snprintf(err, errlen, "--stages: empty schedule");
        return -1;
    }
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t l = comma ? (size_t)(comma - p) : strlen(p);
        char item[64];
        if (l == 0 || l >= sizeof(item)) {
            snprintf(err, errlen, "--stages: bad stage \"%.*s\" (want TARGET:DURATION)", (int)l, p);
            return -1;
        }
        if (st->n == MB_LOAD_STAGES_MAX) {
            snprintf(err, errlen, "--stages: at most %d stages", MB_LOAD_STAGES_MAX);
            return -1;
        }
        memcpy(item, p, l);
        item[l] = '\0';
        char *colon = strchr(item, ':');
        char *end;
        if (!colon) {
            snprintf(err, errlen, "--stages: bad stage \"%s\" (want TARGET:DURATION)", item);
            return -1;
        }
        *colon = '\0';
        errno = 0;
        unsigned long t = strtoul(item, &end, 10);
        if (end == item || *end || errno || t > 10000000 || item[0] == '-') {
            snprintf(err, errlen, "--stages: bad target \"%s\" in stage %d", item, st->n + 1);
            return -1;
        }
        uint64_t d;
        if (mb_load_duration_parse(colon + 1, &d) != 0) {
            snprintf(err, errlen, "--stages: bad duration \"%s\" in stage %d", colon + 1,
                     st->n + 1);
            return -1;
        }
        st->s[st->n].target = (uint32_t)t;
        st->s[st->n].duration_ns = d;
        st->n++;
        p += l;
        if (*p == ',') {
            p++;
            if (!*p) {
                snprintf(err, errlen, "--stages: trailing comma");
                return -1;
            }
        }
    }
    return 0;
}

uint64_t mb_load_stages_total_ns(const struct mb_load_stages *st)
{
    uint64_t t = 0;
    for (int i = 0; i < st->n; i++)
        t += st->s[i].duration_ns;
    return t;
}

uint32_t mb_load_stages_vus(const struct mb_load_stages *st, uint64_t t_ns)
{
    uint32_t prev = 0;
    uint64_t at = 0;
    for (int i = 0; i < st->n; i++) {
        const struct mb_load_stage *s = &st->s[i];
        if (t_ns < at + s->duration_ns) {
            double f = (double)(t_ns - at) / (double)s->duration_ns;
            double v = (double)prev + ((double)s->target - (double)prev) * f;
            return (uint32_t)floor(v + 0.5);
        }
        at += s->duration_ns;
        prev = s->target;
    }
    return 0;
}

uint32_t mb_load_stages_max(const struct mb_load_stages *st)
{
    uint32_t m = 0;
    for (int i = 0; i < st->n; i++)
        if (st->s[i].target > m)
            m = st->s[i].target;
    return m;
}

uint32_t mb_load_stages_share(uint32_t total, uint32_t nworkers, uint32_t w)
{
    if (nworkers == 0 || w >= nworkers)
        return 0;
    return total / nworkers + (w < total % nworkers ? 1 : 0);
}
