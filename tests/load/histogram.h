/*
 * tests/load/histogram.h — the load generator's latency histogram.
 *
 * Log-linear buckets in the manner of HdrHistogram: values below 256 each get
 * their own bucket; above, every power of two [2^e, 2^(e+1)) is cut into 128
 * equal buckets. A bucket's width is at most 1/128 of its lowest value, and a
 * percentile is reported as the middle of its bucket, so a reported value is
 * within 1/256 (0.4%) of the true sample of that rank. The whole uint64 range
 * fits in 7424 counters (58 KiB); recording is an index computation and an
 * increment, with no allocation, so each thread owns one and the run merges
 * them (threads, then processes) at the end.
 */
#ifndef MB_TESTS_LOAD_HISTOGRAM_H
#define MB_TESTS_LOAD_HISTOGRAM_H

#include <stdint.h>

#define MB_LOAD_HIST_SUB_BITS 7
#define MB_LOAD_HIST_SUB      (1u << MB_LOAD_HIST_SUB_BITS)
#define MB_LOAD_HIST_BUCKETS  ((64 - MB_LOAD_HIST_SUB_BITS) * MB_LOAD_HIST_SUB + MB_LOAD_HIST_SUB)
/* The bound on |reported - true| / true for any percentile. */
#define MB_LOAD_HIST_REL_ERROR (1.0 / 256.0)

struct mb_load_histogram {
    uint64_t count;
    uint64_t min; /* UINT64_MAX while empty */
    uint64_t max;
    double sum;
    uint64_t counts[MB_LOAD_HIST_BUCKETS];
};

void mb_load_histogram_init(struct mb_load_histogram *h);
void mb_load_histogram_record(struct mb_load_histogram *h, uint64_t v);
/* Adds src into dst; both stay valid. */
void mb_load_histogram_merge(struct mb_load_histogram *dst, const struct mb_load_histogram *src);
/* The value at percentile pct (0..100): the sample of rank ceil(pct/100 * count)
 * (rank 1 for pct 0), reported as the middle of its bucket and clamped to
 * [min, max]. 0 when empty. */
uint64_t mb_load_histogram_percentile(const struct mb_load_histogram *h, double pct);
double mb_load_histogram_mean(const struct mb_load_histogram *h);

/* Bucket arithmetic, exposed for the unit tests. */
uint32_t mb_load_histogram_bucket(uint64_t v);
uint64_t mb_load_histogram_bucket_low(uint32_t i);
uint64_t mb_load_histogram_bucket_high(uint32_t i);

#endif
