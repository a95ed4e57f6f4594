/*
 * worker/ratelimit_mc.c — the shared rate-limit budget in memcached, and the
 * per-worker helper thread that leases tokens from it (contract in
 * ratelimit_mc.h).
 *
 * THE SHARED BUDGET
 *
 * Each bucket is one memcached item, key "mb:rl:<32 hex>" (the first 128
 * bits of the SHA-256 of the bucket name, so every gateway names a client's
 * bucket alike), value the bucket's GCRA theoretical arrival time (TAT) as a
 * decimal count of nanoseconds of CLOCK_REALTIME: the clock every gateway
 * host shares (keep the hosts in NTP sync; a host whose clock runs ahead
 * simply sees more budget). An absent item is a full bucket.
 *
 * A lease of up to `want` tokens is GCRA applied to several requests at
 * once, done with a compare-and-swap so that concurrent leases from any
 * number of gateways and workers compose exactly like single decisions on
 * one bucket:
 *
 *   1. gets key                      -> tat (0 when absent), cas
 *   2. base = max(tat, now)
 *      available = base - now > tau ? 0 : (tau - (base - now)) / T + 1
 *      granted = min(want, available)
 *   3. granted == 0: write nothing; retry = base - now - tau
 *      otherwise: cas key (base + granted*T) with the cas of step 1, or add
 *      it when it was absent; expiry: the seconds until that TAT passes, +2
 *      (an expired item is a full bucket, which is what it would be anyway).
 *      A failed cas or add (someone else leased in between) goes back to 1,
 *      at most CAS_TRIES times; after that the lease grants 0 and asks to
 *      retry after one interval T.
 *
 * Granting k tokens moves the TAT exactly as k admitted requests would, so
 * the tokens leased from one bucket by everyone together over any interval
 * never exceed what one GCRA bucket admits: burst + rate * elapsed. What a
 * worker does with its tokens is ratelimit_lease.c's part: it spends them
 * locally, so admitted requests differ from leased tokens by at most the
 * tokens a worker holds unspent (<= lease) and the requests it admitted on
 * credit before its first grant arrived (<= credit <= lease): N gateways x W
 * workers together admit what one budget allows, within one lease per
 * worker.
 *
 * Why not INCR: an increment-only counter per time window is one round trip
 * and never conflicts, but it cannot express GCRA's max(tat, now): a
 * windowed count either forgets the burst at every window edge (admitting up
 * to a whole extra burst per window) or never refills. The CAS costs a
 * second round trip per lease only, i.e. per `lease` requests, off the
 * request path.
 *
 * THE THREAD
 *
 * One per worker, created after fork with every signal blocked (signals are
 * the event loop's). It pops a job, runs mb_ratelimit_mc_lease() with its
 * own client, pushes the answer and writes the eventfd. Jobs in flight are
 * bounded by memcached.pool_size, and a job's answer slot is reserved when
 * it is submitted, so the thread never waits for the loop. Each round trip
 * is bounded by memcached.timeout (connect, poll, send and receive
 * timeouts); a server that failed is skipped for one second
 * (MEMCACHED_BEHAVIOR_RETRY_TIMEOUT) and then tried again, which is what
 * makes recovery automatic.
 */
#include "worker/ratelimit_mc.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/errors.h"

#define CAS_TRIES       16
#define MAX_EXPIRY_S    (30u * 24 * 3600 - 1) /* above: memcached reads an absolute time */
#define RETRY_TIMEOUT_S 1

struct mb_ratelimit_mc {
    memcached_st *mc;
    int efd;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    size_t cap;
    size_t inflight; /* submitted and not collected */
    struct mb_ratelimit_mc_job *req, *res;
    size_t req_head, req_n, res_head, res_n;
};

int mb_ratelimit_mc_parse_server(const char *s, char *host, size_t hostcap, uint16_t *port)
{
    const char *h = s, *he, *colon;
    if (*s == '[') {
        h = s + 1;
        he = strchr(h, ']');
        if (he == NULL || he[1] != ':')
            return MB_ERR;
        colon = he + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
            return MB_ERR; /* a bare IPv6 address needs brackets */
        he = colon;
    }
    size_t hn = (size_t)(he - h);
    if (hn == 0 || hn >= hostcap || strpbrk(s, " \t\r\n/") != NULL)
        return MB_ERR;
    char *end;
    if (colon[1] < '0' || colon[1] > '9')
        return MB_ERR;
    errno = 0;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || p < 1 || p > 65535)
        return MB_ERR;
    memcpy(host, h, hn);
    host[hn] = '\0';
    *port = (uint16_t)p;
    return MB_OK;
}

memcached_st *mb_ratelimit_mc_client(const struct mb_conf_rate_limit *c, char *err, size_t errlen)
{
    memcached_st *mc = memcached_create(NULL);
    uint64_t ms = c->memcached.timeout > 0 ? (uint64_t)c->memcached.timeout : 1;
    if (mc == NULL) {
        snprintf(err, errlen, "memcached_create: out of memory");
        return NULL;
    }
    /* Binary protocol: what increment_with_initial and the CAS of a lease
     * are specified on in libmemcached 1.1 (DESIGN §9). Ketama consistent
     * hashing: adding a server moves only the buckets it takes over. */
    const struct {
        memcached_behavior_t b;
        uint64_t v;
        const char *name;
    } set[] = {
        {MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 1, "binary protocol"},
        {MEMCACHED_BEHAVIOR_DISTRIBUTION, MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA,
         "ketama distribution"},
        {MEMCACHED_BEHAVIOR_SUPPORT_CAS, 1, "cas"},
        {MEMCACHED_BEHAVIOR_TCP_NODELAY, 1, "tcp nodelay"},
        {MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, ms, "connect timeout"},
        {MEMCACHED_BEHAVIOR_POLL_TIMEOUT, ms, "poll timeout"},
        {MEMCACHED_BEHAVIOR_SND_TIMEOUT, ms * 1000, "send timeout"},
        {MEMCACHED_BEHAVIOR_RCV_TIMEOUT, ms * 1000, "receive timeout"},
        {MEMCACHED_BEHAVIOR_RETRY_TIMEOUT, RETRY_TIMEOUT_S, "retry timeout"},
    };
    for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++) {
        memcached_return_t rc = memcached_behavior_set(mc, set[i].b, set[i].v);
        if (rc != MEMCACHED_SUCCESS) {
            snprintf(err, errlen, "memcached: setting %s: %s", set[i].name,
                     memcached_strerror(mc, rc));
            goto fail;
        }
    }
    for (size_t i = 0; i < c->memcached.servers.n; i++) {
        char host[256];
        uint16_t port;
        const char *s = c->memcached.servers.v[i];
        if (mb_ratelimit_mc_parse_server(s, host, sizeof(host), &port) != MB_OK) {
            snprintf(err, errlen, "memcached server \"%.80s\": expected host:port", s);
            goto fail;
        }
        memcached_return_t rc = memcached_server_add(mc, host, port);
        if (rc != MEMCACHED_SUCCESS) {
            snprintf(err, errlen, "memcached server %.80s: %s", s, memcached_strerror(mc, rc));
            goto fail;
        }
    }
    return mc;
fail:
    memcached_free(mc);
    return NULL;
}

void mb_ratelimit_mc_key(const char *name, size_t len, char out[39])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    memcpy(out, "mb:rl:", 6);
    if (EVP_Digest(name, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen < 16)
        memset(md, 0, sizeof(md)); /* cannot happen with a working libcrypto */
    for (int i = 0; i < 16; i++) {
        out[6 + 2 * i] = hex[md[i] >> 4];
        out[7 + 2 * i] = hex[md[i] & 15];
    }
    out[38] = '\0';
}

static int mc_fail(memcached_st *mc, memcached_return_t rc, const char *what, char *err,
                   size_t errlen)
{
    snprintf(err, errlen, "%s: %s", what,
             memcached_last_error_message(mc) != NULL ? memcached_last_error_message(mc)
                                                      : memcached_strerror(mc, rc));
    return MB_ERR;
}

/* Step 1 of a lease: the bucket's TAT and cas; *found false when absent. */
static int read_tat(memcached_st *mc, const char *key, uint64_t *tat, uint64_t *cas, bool *found,
                    char *err, size_t errlen)
{
    size_t klen = strlen(key);
    const char *keys[1] = {key};
    memcached_result_st result;
    memcached_return_t rc = memcached_mget(mc, keys, &klen, 1);
    *found = false;
    *tat = 0;
    *cas = 0;
    if (rc != MEMCACHED_SUCCESS)
        return mc_fail(mc, rc, "memcached get", err, errlen);
    if (memcached_result_create(mc, &result) == NULL) {
        snprintf(err, errlen, "memcached get: out of memory");
        return MB_ERR;
    }
    while (memcached_fetch_result(mc, &result, &rc) != NULL) {
        const char *v = memcached_result_value(&result);
        size_t vn = memcached_result_length(&result);
        char buf[32];
        uint64_t t = 0;
        if (vn > 0 && vn < sizeof(buf)) {
            memcpy(buf, v, vn);
            buf[vn] = '\0';
            char *end;
            t = strtoull(buf, &end, 10);
            if (*end != '\0')
                t = 0; /* not ours: overwritten by the cas as a full bucket */
        }
        *tat = t;
        *cas = memcached_result_cas(&result);
        *found = true;
    }
    memcached_result_free(&result);
    if (rc != MEMCACHED_END && rc != MEMCACHED_SUCCESS && rc != MEMCACHED_NOTFOUND)
        return mc_fail(mc, rc, "memcached get", err, errlen);
    return MB_OK;
}

int mb_ratelimit_mc_lease(memcached_st *mc, const char *key, uint32_t want, uint64_t T_ns,
                          uint64_t tau_ns, uint64_t now_ns, uint32_t *granted, uint64_t *retry_ns,
                          char *err, size_t errlen)
{
    size_t klen = strlen(key);
    *granted = 0;
    *retry_ns = T_ns;
    if (T_ns == 0 || want == 0) {
        snprintf(err, errlen, "lease of %u tokens at interval %" PRIu64 " ns", want, T_ns);
        return MB_ERR;
    }
    for (int attempt = 0; attempt < CAS_TRIES; attempt++) {
        uint64_t tat, cas;
        bool found;
        if (read_tat(mc, key, &tat, &cas, &found, err, errlen) != MB_OK)
            return MB_ERR;
        uint64_t base = tat > now_ns ? tat : now_ns;
        uint64_t ahead = base - now_ns;
        if (ahead > tau_ns) {
            *retry_ns = ahead - tau_ns;
            return MB_OK;
        }
        uint64_t avail = (tau_ns - ahead) / T_ns + 1;
        uint32_t g = avail < want ? (uint32_t)avail : want;
        uint64_t next = base + (uint64_t)g * T_ns;
        uint64_t exp_s = (next - now_ns) / 1000000000ull + 2;
        char val[32];
        int vn = snprintf(val, sizeof(val), "%" PRIu64, next);
        memcached_return_t rc =
            found ? memcached_cas(mc, key, klen, val, (size_t)vn,
                                  (time_t)(exp_s > MAX_EXPIRY_S ? MAX_EXPIRY_S : exp_s), 0, cas)
                  : memcached_add(mc, key, klen, val, (size_t)vn,
                                  (time_t)(exp_s > MAX_EXPIRY_S ? MAX_EXPIRY_S : exp_s), 0);
        if (rc == MEMCACHED_DATA_EXISTS || rc == MEMCACHED_NOTSTORED || rc == MEMCACHED_NOTFOUND)
            continue; /* another lease came first: look again */
        if (rc != MEMCACHED_SUCCESS)
            return mc_fail(mc, rc, found ? "memcached cas" : "memcached add", err, errlen);
        *granted = g;
        *retry_ns = g < want ? next - now_ns - tau_ns : 0;
        return MB_OK;
    }
    *retry_ns = T_ns; /* contended: nothing granted this time */
    return MB_OK;
}

static uint64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *thread_main(void *arg)
{
    struct mb_ratelimit_mc *m = arg;
    struct mb_ratelimit_mc_job job;
    for (;;) {
        pthread_mutex_lock(&m->mu);
        while (m->req_n == 0 && !m->stop)
            pthread_cond_wait(&m->cv, &m->mu);
        if (m->stop) {
            pthread_mutex_unlock(&m->mu);
            return NULL;
        }
        job = m->req[m->req_head];
        m->req_head = (m->req_head + 1) % m->cap;
        m->req_n--;
        pthread_mutex_unlock(&m->mu);

        char key[39];
        mb_ratelimit_mc_key(job.name, job.name_len, key);
        job.err[0] = '\0';
        job.status =
            mb_ratelimit_mc_lease(m->mc, key, job.want, job.T_ns, job.tau_ns, realtime_ns(),
                                  &job.granted, &job.retry_ns, job.err, sizeof(job.err));

        pthread_mutex_lock(&m->mu);
        m->res[(m->res_head + m->res_n) % m->cap] = job;
        m->res_n++;
        pthread_mutex_unlock(&m->mu);
        uint64_t one = 1;
        /* EAGAIN: the counter is saturated, the loop is woken anyway. */
        if (write(m->efd, &one, sizeof(one)) == -1 && errno != EAGAIN) {
            /* Nothing to do from here: the loop also collects on its tick. */
        }
    }
}

int mb_ratelimit_mc_new(const struct mb_conf_rate_limit *c, struct mb_ratelimit_mc **out, char *err,
                        size_t errlen)
{
    struct mb_ratelimit_mc *m = calloc(1, sizeof(*m));
    sigset_t all, old;
    int rc;
    *out = NULL;
    if (m == NULL) {
        snprintf(err, errlen, "out of memory");
        return MB_ERR;
    }
    m->efd = -1;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    m->cap = c->memcached.pool_size > 0 ? c->memcached.pool_size : 1;
    m->req = calloc(m->cap, sizeof(*m->req));
    m->res = calloc(m->cap, sizeof(*m->res));
    if (m->req == NULL || m->res == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    m->mc = mb_ratelimit_mc_client(c, err, errlen);
    if (m->mc == NULL)
        goto fail;
    m->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (m->efd == -1) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        goto fail;
    }
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&m->thread, NULL, thread_main, m);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "pthread_create: %s", strerror(rc));
        goto fail;
    }
    m->thread_started = true;
    *out = m;
    return MB_OK;
fail:
    mb_ratelimit_mc_free(&m);
    return MB_ERR;
}

void mb_ratelimit_mc_free(struct mb_ratelimit_mc **mp)
{
    struct mb_ratelimit_mc *m = *mp;
    if (m == NULL)
        return;
    if (m->thread_started) {
        pthread_mutex_lock(&m->mu);
        m->stop = true;
        pthread_cond_signal(&m->cv);
        pthread_mutex_unlock(&m->mu);
        pthread_join(m->thread, NULL);
    }
    if (m->efd != -1)
        close(m->efd);
    if (m->mc != NULL)
        memcached_free(m->mc);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    free(m->req);
    free(m->res);
    free(m);
    *mp = NULL;
}

int mb_ratelimit_mc_fd(const struct mb_ratelimit_mc *m)
{
    return m->efd;
}

int mb_ratelimit_mc_submit(struct mb_ratelimit_mc *m, const struct mb_ratelimit_mc_job *job)
{
    pthread_mutex_lock(&m->mu);
    if (m->inflight >= m->cap) {
        pthread_mutex_unlock(&m->mu);
        return MB_AGAIN;
    }
    m->req[(m->req_head + m->req_n) % m->cap] = *job;
    m->req_n++;
    m->inflight++;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
    return MB_OK;
}

size_t mb_ratelimit_mc_collect(struct mb_ratelimit_mc *m, struct mb_ratelimit_mc_job *out, size_t n)
{
    uint64_t drained;
    size_t k = 0;
    /* Reset the eventfd first: an answer pushed after this read writes it
     * again, so none is left behind unnoticed. */
    if (read(m->efd, &drained, sizeof(drained)) == -1 && errno != EAGAIN) {
        /* EAGAIN: nothing was signalled; answers may still be queued. */
    }
    pthread_mutex_lock(&m->mu);
    while (k < n && m->res_n > 0) {
        out[k++] = m->res[m->res_head];
        m->res_head = (m->res_head + 1) % m->cap;
        m->res_n--;
        m->inflight--;
    }
    pthread_mutex_unlock(&m->mu);
    return k;
}
