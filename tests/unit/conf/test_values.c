/*
 * tests/unit/conf/test_values.c — conf/values.c: durations, sizes and ${ENV}
 * expansion, including overflow and garbage.
 */
#include "common/errors.h"
#include "conf/conf.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void duration_is(const char *s, mb_msec_t want)
{
    mb_msec_t got = -1;
    cr_expect_eq(mb_conf_parse_duration(s, &got), MB_OK, "\"%s\" should parse", s);
    cr_expect_eq(got, want, "\"%s\": got %lld, want %lld", s, (long long)got, (long long)want);
}

static void duration_bad(const char *s)
{
    mb_msec_t got = 12345;
    cr_expect_eq(mb_conf_parse_duration(s, &got), MB_ERR, "\"%s\" should be rejected", s);
    cr_expect_eq(got, 12345, "\"%s\": output written on error", s);
}

Test(duration, units)
{
    duration_is("0", 0);
    duration_is("00", 0);
    duration_is("0s", 0);
    duration_is("1ms", 1);
    duration_is("250ms", 250);
    duration_is("30s", 30000);
    duration_is("90s", 90000);
    duration_is("5m", 300000);
    duration_is("24h", 86400000);
}

Test(duration, compound)
{
    duration_is("1h30m", 5400000);
    duration_is("2m30s", 150000);
    duration_is("1s500ms", 1500);
    duration_is("1h1m1s1ms", 3661001);
}

Test(duration, limits)
{
    duration_is("9223372036854775807ms", INT64_MAX);
    duration_bad("9223372036854775808ms");
    duration_bad("2562047788015216h"); /* * 3600000 overflows int64 */
    duration_bad("99999999999999999999999ms");
    duration_is("9223372036854775s807ms", INT64_MAX);
    duration_bad("9223372036854775s808ms"); /* the sum overflows */
}

Test(duration, garbage)
{
    duration_bad(NULL);
    duration_bad("");
    duration_bad("30"); /* a unit is required except for 0 */
    duration_bad("-5s");
    duration_bad("+5s");
    duration_bad("5 s");
    duration_bad(" 5s");
    duration_bad("1.5s");
    duration_bad("5x");
    duration_bad("s");
    duration_bad("ms");
    duration_bad("5S");
    duration_bad("1s1h"); /* units in descending order */
    duration_bad("1s1s"); /* each unit once */
    duration_bad("1h30");
    duration_bad("5sm");
    duration_bad("1d");
}

static void size_is(const char *s, uint64_t want)
{
    uint64_t got = 1;
    cr_expect_eq(mb_conf_parse_size(s, &got), MB_OK, "\"%s\" should parse", s);
    cr_expect_eq(got, want, "\"%s\": got %llu, want %llu", s, (unsigned long long)got,
                 (unsigned long long)want);
}

static void size_bad(const char *s)
{
    uint64_t got = 777;
    cr_expect_eq(mb_conf_parse_size(s, &got), MB_ERR, "\"%s\" should be rejected", s);
    cr_expect_eq(got, 777, "\"%s\": output written on error", s);
}

Test(size, units)
{
    size_is("0", 0);
    size_is("8192", 8192);
    size_is("1KB", 1000);
    size_is("1MB", 1000000);
    size_is("1GB", 1000000000);
    size_is("256KB", 256000);
    size_is("1KiB", 1024);
    size_is("1MiB", 1048576);
    size_is("512MiB", 536870912);
    size_is("1GiB", 1073741824);
}

Test(size, limits)
{
    size_is("18446744073709551615", UINT64_MAX);
    size_bad("18446744073709551616");
    size_is("17179869183GiB", 17179869183ull << 30);
    size_bad("17179869184GiB"); /* 2^34 * 2^30 = 2^64 */
    size_bad("18446744073709552MB");
}

Test(size, garbage)
{
    size_bad(NULL);
    size_bad("");
    size_bad("big");
    size_bad("MB");
    size_bad("1mb"); /* units are case-sensitive */
    size_bad("1kib");
    size_bad("1 MB");
    size_bad("1.5MB");
    size_bad("-1");
    size_bad("+1");
    size_bad("1KiBx");
    size_bad("1B");
    size_bad("0x10");
}

static char *expand_ok(const char *in)
{
    char err[256] = "", *out = NULL;
    cr_assert_eq(mb_conf_expand_env(in, &out, err, sizeof(err)), MB_OK, "\"%s\": %s", in, err);
    cr_assert_not_null(out);
    return out;
}

static void expand_is(const char *in, const char *want)
{
    char *out = expand_ok(in);
    cr_expect_str_eq(out, want, "\"%s\" expanded to \"%s\", want \"%s\"", in, out, want);
    free(out);
}

static void expand_fails(const char *in, const char *want_err)
{
    char err[256] = "", *out = (char *)"untouched";
    cr_expect_eq(mb_conf_expand_env(in, &out, err, sizeof(err)), MB_ERR, "\"%s\" should fail", in);
    cr_expect_null(out, "\"%s\": output set on error", in);
    cr_expect_str_eq(err, want_err, "\"%s\": error \"%s\"", in, err);
}

Test(env, expands)
{
    setenv("MB_T_A", "alpha", 1);
    setenv("MB_T_B", "b e t a", 1);
    setenv("MB_T_EMPTY", "", 1);
    expand_is("plain", "plain");
    expand_is("", "");
    expand_is("${MB_T_A}", "alpha");
    expand_is("x${MB_T_A}y", "xalphay");
    expand_is("${MB_T_A}${MB_T_B}", "alphab e t a");
    expand_is("Bearer ${MB_T_B}!", "Bearer b e t a!");
    expand_is("[${MB_T_EMPTY}]", "[]");
}

Test(env, long_values)
{
    char big[5000];
    memset(big, 'v', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    setenv("MB_T_BIG", big, 1);
    char *out = expand_ok("<${MB_T_BIG}><${MB_T_BIG}>");
    cr_expect_eq(strlen(out), 2 * strlen(big) + 4);
    cr_expect_eq(out[0], '<');
    cr_expect_eq(out[strlen(big) + 1], '>');
    free(out);
}

Test(env, dollars_and_escape)
{
    setenv("MB_T_A", "alpha", 1);
    expand_is("$", "$");
    expand_is("a$b", "a$b");
    expand_is("$$", "$$");
    expand_is("cost: $5", "cost: $5");
    expand_is("$${MB_T_A}", "${MB_T_A}");
    expand_is("$${NOT_SET_EITHER}", "${NOT_SET_EITHER}");
    expand_is("$$${MB_T_A}", "$${MB_T_A}"); /* a lone "$", then the escape */
}

Test(env, errors)
{
    unsetenv("MB_T_UNSET");
    expand_fails("${MB_T_UNSET}", "environment variable MB_T_UNSET is not set");
    expand_fails("key=${MB_T_UNSET}x", "environment variable MB_T_UNSET is not set");
    expand_fails("${MB_T_A", "unterminated \"${\" (write \"$${\" for a literal \"${\")");
    expand_fails("${}", "bad environment variable name in \"${}\"");
    expand_fails("${1A}", "bad environment variable name in \"${1A}\"");
    expand_fails("${A-B}", "bad environment variable name in \"${A-B}\"");
}
