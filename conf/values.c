/*
 * conf/values.c — the scalar syntaxes of gateway.yaml that are not YAML's:
 * durations, sizes and ${ENV} expansion. They are pure functions of their
 * input (and, for ${ENV}, of the environment), so the loader, the CLI and the
 * unit tests share them.
 *
 * Durations are a sequence of <digits><unit> with units h, m, s, ms, each at
 * most once and in that order ("1h30m", "250ms", "2m30s"); "0" alone is the
 * only unitless duration, because a bare "30" is ambiguous (seconds? ms?) and
 * nginx-style configs bite people exactly there. No fractions: the resolution
 * is the millisecond and "1.5s" is spelled "1s500ms".
 *
 * Sizes are <digits> optionally followed by KB/MB/GB (powers of 10) or
 * KiB/MiB/GiB (powers of 2). Units are case-sensitive so that "1mb" (which
 * some read as millibit) is rejected rather than guessed.
 *
 * ${NAME} expands to the environment variable NAME ([A-Za-z_][A-Za-z0-9_]*);
 * an unset variable is an error naming it, because a secret silently
 * becoming "" is a security bug. "$${" writes a literal "${"; any other "$"
 * is literal.
 */
#include "conf/conf.h"

#include "common/errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Reads a run of decimal digits into *out; returns the count read, or -1 on
 * overflow of uint64_t. */
static int read_digits(const char **sp, uint64_t *out)
{
    const char *s = *sp;
    uint64_t v = 0;
    int n = 0;

    while (is_digit(*s)) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
        s++;
        n++;
    }
    *sp = s;
    *out = v;
    return n;
}

int mb_conf_parse_duration(const char *s, mb_msec_t *out)
{
    /* Ranks enforce the order h > m > s > ms and at most one of each. */
    static const struct {
        const char *unit;
        int64_t ms;
        int rank;
    } units[] = {
        {"ms", 1, 1}, /* before "m" so that "250ms" is not "250m" + "s" */
        {"h", 3600000, 4},
        {"m", 60000, 3},
        {"s", 1000, 2},
    };
    int64_t total = 0;
    int last_rank = 5;
    const char *p = s;

    if (s == NULL || *s == '\0')
        return MB_ERR;

    /* "0", "00": the one unitless duration. */
    if (strspn(s, "0") == strlen(s)) {
        *out = 0;
        return MB_OK;
    }

    while (*p != '\0') {
        uint64_t n;
        size_t i;

        if (read_digits(&p, &n) <= 0)
            return MB_ERR;
        for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
            if (strncmp(p, units[i].unit, strlen(units[i].unit)) == 0)
                break;
        if (i == sizeof(units) / sizeof(units[0]) || units[i].rank >= last_rank)
            return MB_ERR;
        last_rank = units[i].rank;
        p += strlen(units[i].unit);
        if (n > (uint64_t)(INT64_MAX - total) / (uint64_t)units[i].ms)
            return MB_ERR;
        total += (int64_t)n * units[i].ms;
    }
    *out = total;
    return MB_OK;
}

int mb_conf_parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {
        {"", 1},
        {"KB", 1000ull},
        {"MB", 1000000ull},
        {"GB", 1000000000ull},
        {"KiB", 1ull << 10},
        {"MiB", 1ull << 20},
        {"GiB", 1ull << 30},
    };
    const char *p = s;
    uint64_t n;

    if (s == NULL || read_digits(&p, &n) <= 0)
        return MB_ERR;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(p, units[i].unit) != 0)
            continue;
        if (n > UINT64_MAX / units[i].mult)
            return MB_ERR;
        *out = n * units[i].mult;
        return MB_OK;
    }
    return MB_ERR;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int is_name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int is_name_char(char c)
{
    return is_name_start(c) || is_digit(c);
}

/* Appends n bytes to the growing output buffer; returns 0 or MB_ERR (ENOMEM). */
static int append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t ncap = (*cap == 0 ? 64 : *cap);
        char *nbuf;

        while (*len + n + 1 > ncap)
            ncap *= 2;
        nbuf = realloc(*buf, ncap);
        if (nbuf == NULL)
            return MB_ERR;
        *buf = nbuf;
        *cap = ncap;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return MB_OK;
}

int mb_conf_expand_env(const char *in, char **out, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    const char *p = in;

    *out = NULL;
    if (append(&buf, &len, &cap, "", 0) != MB_OK)
        goto nomem;
    while (*p != '\0') {
        const char *dollar = strchr(p, '$');
        const char *name, *end, *val;

        if (dollar == NULL) {
            if (append(&buf, &len, &cap, p, strlen(p)) != MB_OK)
                goto nomem;
            break;
        }
        if (append(&buf, &len, &cap, p, (size_t)(dollar - p)) != MB_OK)
            goto nomem;
        if (strncmp(dollar, "$${", 3) == 0) { /* escape: a literal "${" */
            if (append(&buf, &len, &cap, "${", 2) != MB_OK)
                goto nomem;
            p = dollar + 3;
            continue;
        }
        if (dollar[1] != '{') { /* a lone "$" is literal */
            if (append(&buf, &len, &cap, "$", 1) != MB_OK)
                goto nomem;
            p = dollar + 1;
            continue;
        }
        name = dollar + 2;
        end = strchr(name, '}');
        if (end == NULL) {
            set_err(err, errlen, "unterminated \"${\" (write \"$${\" for a literal \"${\")");
            goto fail;
        }
        if (end == name || !is_name_start(*name)) {
            set_err(err, errlen, "bad environment variable name in \"%.*s\"",
                    (int)(end - dollar + 1), dollar);
            goto fail;
        }
        for (const char *c = name; c < end; c++) {
            if (!is_name_char(*c)) {
                set_err(err, errlen, "bad environment variable name in \"%.*s\"",
                        (int)(end - dollar + 1), dollar);
                goto fail;
            }
        }
        {
            char vname[256];

            if ((size_t)(end - name) >= sizeof(vname)) {
                set_err(err, errlen, "environment variable name too long");
                goto fail;
            }
            memcpy(vname, name, (size_t)(end - name));
            vname[end - name] = '\0';
            val = getenv(vname);
            if (val == NULL) {
                set_err(err, errlen, "environment variable %s is not set", vname);
                goto fail;
            }
        }
        if (append(&buf, &len, &cap, val, strlen(val)) != MB_OK)
            goto nomem;
        p = end + 1;
    }
    *out = buf;
    return MB_OK;

nomem:
    set_err(err, errlen, "out of memory");
fail:
    free(buf);
    return MB_ERR;
}
