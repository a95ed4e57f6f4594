/*
 * tests/load/histogram.c — see histogram.h for the bucket layout.
 *
 * Index of v: v itself below 2^(SUB_BITS+1); otherwise, with e = floor(log2 v),
 * the top SUB_BITS+1 bits of v (a mantissa in [SUB, 2*SUB)) plus SUB for every
 * octave above the linear range: (e - SUB_BITS) * SUB + mantissa.
 */
#include "tests/load/histogram.h"

#include <string.h>

void mb_load_histogram_init(struct mb_load_histogram *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

uint32_t mb_load_histogram_bucket(uint64_t v)
{
    if (v < 2 * MB_LOAD_HIST_SUB)
        return (uint32_t)v;
    uint32_t e = 63 - (uint32_t)__builtin_clzll(v);
    uint32_t shift = e - MB_LOAD_HIST_SUB_BITS;
    return shift * MB_LOAD_HIST_SUB + (uint32_t)(v >> shift);
}

uint64_t mb_load_histogram_bucket_low(uint32_t i)
{
    if (i < 2 * MB_LOAD_HIST_SUB)
        return i;
    uint32_t shift = i / MB_LOAD_HIST_SUB - 1;
    uint64_t mant = i % MB_LOAD_HIST_SUB + MB_LOAD_HIST_SUB;
    return mant << shift;
}

uint64_t mb_load_histogram_bucket_high(uint32_t i)
{
    if (i < 2 * MB_LOAD_HIST_SUB)
        return i;
    uint32_t shift = i / MB_LOAD_HIST_SUB - 1;
    return mb_load_histogram_bucket_low(i) + ((1ull << shift) - 1);
}

void mb_load_histogram_record(struct mb_load_histogram *h, uint64_t v)
{
    h->counts[mb_load_histogram_bucket(v)]++;
    h->count++;
    h->sum += (double)v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void mb_load_histogram_merge(struct mb_load_histogram *dst, const struct mb_load_histogram *src)
{
    if (src->count == 0)
        return;
    for (uint32_t i = 0; i < MB_LOAD_HIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t mb_load_histogram_percentile(const struct mb_load_histogram *h, double pct)
{
    if (h->count == 0)
        return 0;
    if (pct >= 100.0)
        return h->max;
    if (pct < 0.0)
        pct = 0.0;
    /* Rank as an integer: the multiplication may land a hair above an exact
     * product (99.9% of 1000 = 999.0000000001), so round it first. */
    double want = pct / 100.0 * (double)h->count;
    uint64_t rank = (uint64_t)(want + 0.5);
    if ((double)rank + 1e-9 < want)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < MB_LOAD_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t lo = mb_load_histogram_bucket_low(i);
            uint64_t v = lo + (mb_load_histogram_bucket_high(i) - lo) / 2;
            if (v < h->min)
                v = h->min;
            if (v > h->max)
                v = h->max;
            return v;
        }
    }
    return h->max;
}

double mb_load_histogram_mean(const struct mb_load_histogram *h)
{
    return h->count ? h->sum / (double)h->count : 0.0;
}
