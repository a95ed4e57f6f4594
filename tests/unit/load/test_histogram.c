/*
 * tests/unit/load/test_histogram.c — the load generator's latency histogram
 * (tests/load/histogram.c): bucket bounds, percentiles against a sorted array
 * of random samples within the stated relative error, merging, min/max, and
 * the empty histogram.
 */
#include "tests/load/histogram.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NSAMPLES 100000

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Latency-like samples: log-uniform between 1 µs and 10 s, in ns. */
static uint64_t sample(void)
{
    double u = (double)(rnd() >> 11) / (double)(1ull << 53);
    return (uint64_t)exp(log(1e3) + u * (log(1e10) - log(1e3)));
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The rank definition the histogram documents: ceil(pct/100 * n), at least 1,
 * computed exactly with integers (pct given in thousandths of a percent). */
static uint64_t exact_percentile(const uint64_t *sorted, uint64_t n, uint64_t pct_milli)
{
    uint64_t rank = (pct_milli * n + 100000 - 1) / 100000;
    if (rank == 0)
        rank = 1;
    return sorted[rank - 1];
}

static struct mb_load_histogram *new_hist(void)
{
    struct mb_load_histogram *h = malloc(sizeof(*h));
    cr_assert_not_null(h);
    mb_load_histogram_init(h);
    return h;
}

Test(histogram, bucket_bounds_hold_every_value_with_bounded_width)
{
    for (int i = 0; i < 200000; i++) {
        uint64_t v = i < 1000 ? (uint64_t)i : rnd() >> (rnd() % 64);
        uint32_t b = mb_load_histogram_bucket(v);
        cr_assert_lt(b, MB_LOAD_HIST_BUCKETS, "v=%llu", (unsigned long long)v);
        uint64_t lo = mb_load_histogram_bucket_low(b), hi = mb_load_histogram_bucket_high(b);
        cr_assert(lo <= v && v <= hi, "v=%llu not in [%llu, %llu]", (unsigned long long)v,
                  (unsigned long long)lo, (unsigned long long)hi);
        /* width / low <= 1/128, so the middle is within 1/256 of any member */
        cr_assert_leq((hi - lo) * 128, lo < 1 ? 0 : lo, "bucket %u too wide", b);
    }
    cr_assert_eq(mb_load_histogram_bucket(UINT64_MAX), MB_LOAD_HIST_BUCKETS - 1);
    /* buckets are contiguous and ordered */
    for (uint32_t b = 1; b < MB_LOAD_HIST_BUCKETS; b++)
        cr_assert_eq(mb_load_histogram_bucket_low(b), mb_load_histogram_bucket_high(b - 1) + 1,
                     "gap before bucket %u", b);
}

Test(histogram, percentiles_match_sorted_samples_within_relative_error)
{
    uint64_t *v = malloc(NSAMPLES * sizeof(*v));
    struct mb_load_histogram *h = new_hist();
    cr_assert_not_null(v);
    for (int i = 0; i < NSAMPLES; i++) {
        v[i] = sample();
        mb_load_histogram_record(h, v[i]);
    }
    qsort(v, NSAMPLES, sizeof(*v), cmp_u64);
    static const uint64_t pcts[] = {0,     1000,  10000, 25000, 50000, 75000,
                                    90000, 99000, 99900, 99990, 99999, 100000};
    for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++) {
        uint64_t want = exact_percentile(v, NSAMPLES, pcts[i]);
        uint64_t got = mb_load_histogram_percentile(h, (double)pcts[i] / 1000.0);
        double rel = fabs((double)got - (double)want) / (double)want;
        cr_expect_leq(rel, MB_LOAD_HIST_REL_ERROR, "p%.3f: got %llu want %llu (error %.5f)",
                      (double)pcts[i] / 1000.0, (unsigned long long)got, (unsigned long long)want,
                      rel);
    }
    cr_expect_eq(h->count, NSAMPLES);
    cr_expect_eq(h->min, v[0]);
    cr_expect_eq(h->max, v[NSAMPLES - 1]);
    cr_expect_eq(mb_load_histogram_percentile(h, 100), v[NSAMPLES - 1]);
    double sum = 0;
    for (int i = 0; i < NSAMPLES; i++)
        sum += (double)v[i];
    cr_expect_leq(fabs(mb_load_histogram_mean(h) - sum / NSAMPLES), 1e-6 * sum / NSAMPLES);
    free(v);
    free(h);
}

Test(histogram, small_values_are_exact)
{
    struct mb_load_histogram *h = new_hist();
    for (uint64_t x = 1; x <= 200; x++)
        mb_load_histogram_record(h, x);
    cr_expect_eq(mb_load_histogram_percentile(h, 50), 100);
    cr_expect_eq(mb_load_histogram_percentile(h, 0.5), 1);
    cr_expect_eq(mb_load_histogram_percentile(h, 99), 198);
    cr_expect_eq(mb_load_histogram_percentile(h, 0), 1);
    free(h);
}

Test(histogram, merge_equals_recording_everything_in_one)
{
    struct mb_load_histogram *a = new_hist(), *b = new_hist(), *all = new_hist();
    for (int i = 0; i < 50000; i++) {
        uint64_t x = sample();
        mb_load_histogram_record(i % 3 ? a : b, x);
        mb_load_histogram_record(all, x);
    }
    /* b gets the extremes, so min and max must come from it */
    mb_load_histogram_record(b, 7);
    mb_load_histogram_record(all, 7);
    mb_load_histogram_record(b, 99000000000ull);
    mb_load_histogram_record(all, 99000000000ull);
    mb_load_histogram_merge(a, b);
    cr_expect_eq(a->count, all->count);
    cr_expect_eq(a->min, 7);
    cr_expect_eq(a->max, 99000000000ull);
    cr_expect_eq(memcmp(a->counts, all->counts, sizeof(a->counts)), 0);
    for (double p = 0; p <= 100; p += 2.5)
        cr_expect_eq(mb_load_histogram_percentile(a, p), mb_load_histogram_percentile(all, p),
                     "p%.1f", p);
    cr_expect_leq(fabs(mb_load_histogram_mean(a) - mb_load_histogram_mean(all)),
                  1e-9 * mb_load_histogram_mean(all));
    free(a);
    free(b);
    free(all);
}

Test(histogram, empty_reports_zero_and_merges_as_nothing)
{
    struct mb_load_histogram *e = new_hist(), *h = new_hist();
    cr_expect_eq(e->count, 0);
    cr_expect_eq(mb_load_histogram_percentile(e, 50), 0);
    cr_expect_eq(mb_load_histogram_percentile(e, 100), 0);
    cr_expect_eq(mb_load_histogram_mean(e), 0.0);
    mb_load_histogram_record(h, 1000);
    mb_load_histogram_merge(h, e);
    cr_expect_eq(h->count, 1);
    cr_expect_eq(h->min, 1000);
    cr_expect_eq(h->max, 1000);
    mb_load_histogram_merge(e, h);
    cr_expect_eq(e->count, 1);
    cr_expect_eq(e->min, 1000);
    cr_expect_eq(mb_load_histogram_percentile(e, 50), 1000);
    free(e);
    free(h);
}

Test(histogram, one_value_is_every_percentile)
{
    struct mb_load_histogram *h = new_hist();
    mb_load_histogram_record(h, 123456789);
    cr_expect_eq(mb_load_histogram_percentile(h, 0), 123456789);
    cr_expect_eq(mb_load_histogram_percentile(h, 50), 123456789);
    cr_expect_eq(mb_load_histogram_percentile(h, 99.9), 123456789);
    cr_expect_eq(mb_load_histogram_percentile(h, 100), 123456789);
    free(h);
}
