/*
 * shm/counters.c — the counter and histogram tables generated from the
 * X-macros of counters.h, the readers' sums, and the master's folding of a
 * dead worker's rows (layout.h §3, §4).
 *
 * Folding and summing meet through the header's fold_seq, a sequence lock
 * with one writer (the master): the master makes it odd, moves the dead row
 * into the master row, and makes it even again; a reader retries when the
 * value changed or was odd. The row being folded belongs to a process that
 * has been reaped, so nobody else writes it meanwhile. A master killed while
 * folding leaves the sequence odd: readers give up retrying after a bound and
 * use what they read, which can only be off by the one row.
 */
#include "shm/counters.h"

#include <math.h>
#include <string.h>

const struct mb_counter_info mb_counters_info[MB_CTR__COUNT] = {
#define MB_X_(id, name, type, family, kind, help) {name, type, family, kind, help},
    MB_COUNTERS(MB_X_)
#undef MB_X_
};

const struct mb_hist_info mb_counters_hist_info[MB_HIST__COUNT] = {
#define MB_X_(id, name, help) {name, help},
    MB_HISTOGRAMS(MB_X_)
#undef MB_X_
};

const uint64_t mb_counters_hist_bounds_us[MB_HIST_NBUCKETS] = MB_HIST_BOUNDS_US;

/* Enough for any fold (a few hundred stores); a master that died mid-fold is
 * the only way to exhaust it. */
#define READ_RETRIES 10000

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static uint64_t seq_begin(const struct mb_shm *shm)
{
    uint64_t s;
    for (int i = 0; i < READ_RETRIES; i++) {
        s = __atomic_load_n(&shm->hdr->fold_seq, __ATOMIC_ACQUIRE);
        if ((s & 1) == 0)
            return s;
        cpu_relax();
    }
    return s;
}

static int seq_retry(const struct mb_shm *shm, uint64_t s)
{
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return __atomic_load_n(&shm->hdr->fold_seq, __ATOMIC_RELAXED) != s || (s & 1);
}

size_t mb_counters_snapshot(const struct mb_shm *shm, uint64_t *out, size_t n)
{
    size_t have = n < shm->ncounters ? n : shm->ncounters;
    for (int attempt = 0;; attempt++) {
        uint64_t s = seq_begin(shm);
        memset(out, 0, n * sizeof(*out));
        for (uint32_t r = 0; r < shm->nrows; r++) {
            const uint64_t *row = shm->counters + (size_t)r * shm->counter_stride;
            for (size_t i = 0; i < have; i++)
                out[i] += __atomic_load_n(&row[i], __ATOMIC_RELAXED);
        }
        if (!seq_retry(shm, s) || attempt >= READ_RETRIES)
            break;
    }
    return have;
}

uint64_t mb_counters_sum(const struct mb_shm *shm, enum mb_counter id)
{
    uint64_t v[MB_CTR__COUNT];
    mb_counters_snapshot(shm, v, MB_CTR__COUNT);
    return v[id];
}

size_t mb_counters_hist_snapshot(const struct mb_shm *shm, struct mb_shm_hist *out, size_t n)
{
    size_t have = n < shm->nhists ? n : shm->nhists;
    for (int attempt = 0;; attempt++) {
        uint64_t s = seq_begin(shm);
        memset(out, 0, n * sizeof(*out));
        for (uint32_t r = 0; r < shm->nrows; r++) {
            const struct mb_shm_hist *row = shm->hists + (size_t)r * shm->hist_stride;
            for (size_t i = 0; i < have; i++) {
                /* buckets before count: count >= sum of buckets (layout.h §4) */
                for (unsigned b = 0; b < MB_HIST_NBUCKETS; b++)
                    out[i].bucket[b] += __atomic_load_n(&row[i].bucket[b], __ATOMIC_ACQUIRE);
                out[i].sum_ns += __atomic_load_n(&row[i].sum_ns, __ATOMIC_RELAXED);
                out[i].count += __atomic_load_n(&row[i].count, __ATOMIC_RELAXED);
            }
        }
        if (!seq_retry(shm, s) || attempt >= READ_RETRIES)
            break;
    }
    return have;
}

double mb_counters_hist_quantile(const struct mb_shm_hist *h, double q)
{
    if (h->count == 0)
        return -1;
    if (q <= 0)
        q = 0;
    if (q > 1)
        q = 1;
    double rank = q * (double)h->count;
    uint64_t cum = 0;
    for (unsigned b = 0; b < MB_HIST_NBUCKETS; b++) {
        uint64_t prev = cum;
        cum += h->bucket[b];
        if (h->bucket[b] > 0 && (double)cum >= rank) {
            double lo = b == 0 ? 0 : (double)mb_counters_hist_bounds_us[b - 1] / 1000.0;
            double hi = (double)mb_counters_hist_bounds_us[b] / 1000.0;
            return lo + (hi - lo) * ((rank - (double)prev) / (double)h->bucket[b]);
        }
    }
    return INFINITY;
}

static void add_relaxed(uint64_t *dst, uint64_t v)
{
    __atomic_store_n(dst, __atomic_load_n(dst, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

void mb_counters_fold(struct mb_shm *shm, uint32_t row)
{
    uint32_t master = mb_counters_master_row(shm);
    if (row >= master)
        return;
    uint64_t s = __atomic_load_n(&shm->hdr->fold_seq, __ATOMIC_RELAXED);
    __atomic_store_n(&shm->hdr->fold_seq, s + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);

    uint64_t *src = mb_counters_row(shm, row), *dst = mb_counters_row(shm, master);
    for (uint32_t i = 0; i < shm->ncounters; i++) {
        uint64_t v = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
        /* A gauge measured something the dead process held: it is gone. */
        if (i >= MB_CTR__COUNT || mb_counters_info[i].type == MB_CTR_COUNTER)
            add_relaxed(&dst[i], v);
        __atomic_store_n(&src[i], 0, __ATOMIC_RELAXED);
    }
    struct mb_shm_hist *hs = mb_counters_hist_row(shm, row),
                       *hd = mb_counters_hist_row(shm, master);
    for (uint32_t i = 0; i < shm->nhists; i++) {
        add_relaxed(&hd[i].count, __atomic_load_n(&hs[i].count, __ATOMIC_RELAXED));
        add_relaxed(&hd[i].sum_ns, __atomic_load_n(&hs[i].sum_ns, __ATOMIC_RELAXED));
        for (unsigned b = 0; b < MB_HIST_NBUCKETS; b++)
            add_relaxed(&hd[i].bucket[b], __atomic_load_n(&hs[i].bucket[b], __ATOMIC_RELAXED));
        __atomic_store_n(&hs[i].count, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&hs[i].sum_ns, 0, __ATOMIC_RELAXED);
        for (unsigned b = 0; b < MB_HIST_NBUCKETS; b++)
            __atomic_store_n(&hs[i].bucket[b], 0, __ATOMIC_RELAXED);
    }

    __atomic_store_n(&shm->hdr->fold_seq, s + 2, __ATOMIC_RELEASE);
}

void mb_counters_totals(const struct mb_shm *shm, struct mb_counters_totals *t)
{
    mb_counters_snapshot(shm, t->ctr, MB_CTR__COUNT);
    mb_counters_hist_snapshot(shm, t->hist, MB_HIST__COUNT);
}

static uint64_t delta(uint64_t now, uint64_t since)
{
    return now > since ? now - since : 0;
}

void mb_counters_carry(struct mb_shm *dst, const struct mb_counters_totals *now,
                       const struct mb_counters_totals *since)
{
    static const struct mb_counters_totals zero;
    if (since == NULL)
        since = &zero;
    uint32_t master = mb_counters_master_row(dst);
    uint64_t s = __atomic_load_n(&dst->hdr->fold_seq, __ATOMIC_RELAXED);
    __atomic_store_n(&dst->hdr->fold_seq, s + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);

    uint64_t *row = mb_counters_row(dst, master);
    for (uint32_t i = 0; i < dst->ncounters && i < MB_CTR__COUNT; i++)
        if (mb_counters_info[i].type == MB_CTR_COUNTER)
            add_relaxed(&row[i], delta(now->ctr[i], since->ctr[i]));
    struct mb_shm_hist *h = mb_counters_hist_row(dst, master);
    for (uint32_t i = 0; i < dst->nhists && i < MB_HIST__COUNT; i++) {
        add_relaxed(&h[i].count, delta(now->hist[i].count, since->hist[i].count));
        add_relaxed(&h[i].sum_ns, delta(now->hist[i].sum_ns, since->hist[i].sum_ns));
        for (unsigned b = 0; b < MB_HIST_NBUCKETS; b++)
            add_relaxed(&h[i].bucket[b], delta(now->hist[i].bucket[b], since->hist[i].bucket[b]));
    }

    __atomic_store_n(&dst->hdr->fold_seq, s + 2, __ATOMIC_RELEASE);
}
