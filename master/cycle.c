/*
 * master/cycle.c — the master cycle. It never touches a client byte: it
 * forks the workers, reaps and respawns them, reloads and stops.
 *
 * Signals. Handlers only set flags (CONVENTIONS rule 9). Every signal the
 * master handles stays blocked except inside sigsuspend(), so a flag is never
 * missed between the check and the wait. Timed work (respawn backoff, kill
 * deadlines) arms ITIMER_REAL for the nearest deadline; SIGALRM wakes the loop.
 * A child inherits the blocked mask: the worker unblocks the signals once its
 * own event loop watches them, so a QUIT that arrives while a worker is still
 * starting is delivered to it, not lost.
 *
 *   HUP       reload (below); counted in the master row as reloads or
 *             reloads_failed (/metrics: mcp_gateway_reloads_total{result})
 *   TERM/INT  fast stop: TERM to every worker, SIGKILL after 5 s, exit 0
 *   QUIT      graceful stop: QUIT to every worker, SIGKILL after
 *             server.shutdown_timeout + 2 s, exit 0
 *   USR1      reopen the error log here and in every worker (workers reopen
 *             the error log and the access log)
 *   CHLD      reap; respawn a worker of the current generation that died
 *
 * Respawn. A dead worker of the current generation is started again in the
 * same slot, on the same listening sockets and the same shm worker record
 * (whose `restarts` goes up by one). The delay doubles from 0 (the first
 * death respawns at once) through 100 ms up to 10 s, and is forgotten once a
 * worker has run for 10 s. Exit status 2 (MB_EXIT_FATAL) is never respawned;
 * when no worker of the current generation is left alive or pending, the
 * master gives up and exits 1 rather than serve nothing.
 *
 * Reload protocol (HUP):
 *   1. Parse the file again. If it is invalid, log the error (it names
 *      file:line:column) and keep everything as it is.
 *   2. Build the new generation's listening sockets: unchanged
 *      (address, port, slot) sockets are taken over, new ones opened. If one
 *      cannot be opened (port taken), log it and keep everything as it is.
 *      Sockets the new generation does not use are closed in the master.
 *   3. generation + 1 (published in the shm header); fork the new workers.
 *   4. QUIT every worker of older generations: each stops accepting (the new
 *      worker of its slot accepts on the very same socket, so no queued
 *      connection is lost), finishes its in-flight requests, closes its
 *      WebSockets with 1001 and exits; after server.shutdown_timeout (of the
 *      generation it serves) + 2 s it is killed.
 *   An old generation's configuration is freed when its last worker is reaped.
 *   pid_file and shm.path are fixed at start: a change is logged and takes
 *   effect at the next start.
 *
 * Region generations. A reload whose configuration gives the shm region the
 * same shape (mb_shm_same_shape: rate_limit.capacity, the caches' sizes, the
 * worker table) keeps the region, so every rate-limit bucket, cache entry and
 * backend stat survives it. A reload that changes the shape builds a
 * successor region (mb_shm_create_successor), between steps 2 and 3:
 *   a. The successor is written in a temporary file next to the region's path
 *      and filled before anyone can see it: the old region's counter and
 *      histogram totals (every row, master row included; gauges excepted) go
 *      into its master row, and every live rate-limit bucket (key hash and a
 *      TAT in the future) is copied, rehashed into the new capacity. When the
 *      new table is too small, the buckets with the latest TAT (the most
 *      restrictive) are kept and the drops are counted in the log. Caches
 *      start empty (they refill from the backends), so do backend stats. It
 *      keeps the old region's hash seed, so a client's key is the same.
 *   b. It is renamed over the path: mcp-bridge-shm and anything that attaches
 *      from now on sees it. The reload is counted in it, then it gets the new
 *      generation number and becomes READY, and the new workers get it in
 *      their arguments (each child unmaps the regions it does not use).
 *   c. The old workers keep the old mapping (its file is unlinked by the
 *      rename, its memory lives while mapped). The master keeps both mapped:
 *      each generation knows its region, so reaping (counter folding, repair
 *      of half-written records) goes to the right one.
 *   d. When the last worker of the old region is reaped, its totals minus
 *      those taken in (a) — what the old workers did meanwhile — are added to
 *      the master row of the region current then, and the old region is
 *      marked RETIRED and unmapped. So counters never go backwards and count
 *      every event once, in whichever region is current.
 *   What is lost, by design: buckets the old workers update after (a) stay in
 *   the old table, so a client served by an old worker during its drain can
 *   get at most what that worker admits within server.shutdown_timeout on
 *   top of its carried budget; the dump tool shows only the new generation's
 *   workers (the old records stay in the old region until it retires).
 *   If the successor cannot be built (tmpfs full, out of memory), the error
 *   is logged and the reload goes on in the running region with its sizes.
 */
#include "master/master.h"
#include "master/shmsize.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/log.h"
#include "common/process.h"
#include "common/time.h"
#include "conf/conf.h"
#include "shm/counters.h"
#include "shm/shm.h"

#define MAX_WORKERS      512 /* live processes at once, all generations together */
#define KILL_GRACE_MS    2000
#define FAST_STOP_MS     5000
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS   10000
#define STABLE_AFTER_MS  10000

/* A mapped shm region; more than one only while an old one drains. */
struct region {
    struct mb_shm *shm;
    /* Its totals when a successor took them over (NULL while current). */
    struct mb_counters_totals *carried;
    unsigned gens; /* generations whose workers use it */
    struct region *next;
};

struct generation {
    uint64_t id;
    struct mb_conf *conf;
    struct mb_listen_set socks; /* held only while the generation is current */
    struct region *region;      /* the region its workers map */
    unsigned live;              /* its worker entries not yet released */
    struct generation *next;
};

struct worker {
    bool used;
    pid_t pid; /* 0 while waiting to be respawned */
    uint32_t slot;
    uint32_t index; /* shm worker record */
    struct generation *gen;
    bool stopping;    /* QUIT or TERM sent */
    uint64_t kill_at; /* monotonic ms; SIGKILL then (stopping workers) */
    uint64_t started; /* monotonic ms */
    uint64_t respawn_at;
    uint32_t backoff_ms;
};

enum stop_mode { RUNNING = 0, STOP_GRACEFUL, STOP_FAST };

static volatile sig_atomic_t sig_child, sig_hup, sig_term, sig_quit, sig_usr1, sig_alarm;

static struct {
    const struct mb_master_opts *opts;
    struct region *region;  /* current: new generations and the master's counters */
    struct region *regions; /* every mapped region, the current one included */
    struct generation *current;
    struct generation *old; /* generations still draining */
    struct worker workers[MAX_WORKERS];
    enum stop_mode stop;
    uint64_t next_gen;
} M;

static const int handled_signals[] = {SIGCHLD, SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGALRM};
#define NSIGNALS (sizeof(handled_signals) / sizeof(handled_signals[0]))

static void on_signal(int sig)
{
    switch (sig) {
    case SIGCHLD:
        sig_child = 1;
        break;
    case SIGHUP:
        sig_hup = 1;
        break;
    case SIGTERM:
    case SIGINT:
        sig_term = 1;
        break;
    case SIGQUIT:
        sig_quit = 1;
        break;
    case SIGUSR1:
        sig_usr1 = 1;
        break;
    case SIGALRM:
        sig_alarm = 1;
        break;
    }
}

static int install_signals(sigset_t *wait_mask)
{
    sigset_t block;
    sigemptyset(&block);
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < NSIGNALS; i++) {
        sigaddset(&block, handled_signals[i]);
        if (sigaction(handled_signals[i], &sa, NULL) == -1) {
            mb_log_error("sigaction(%d) failed: %s", handled_signals[i], strerror(errno));
            return MB_ERR;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    if (sigprocmask(SIG_BLOCK, &block, wait_mask) == -1) {
        mb_log_error("sigprocmask() failed: %s", strerror(errno));
        return MB_ERR;
    }
    for (size_t i = 0; i < NSIGNALS; i++)
        sigdelset(wait_mask, handled_signals[i]);
    return MB_OK;
}

/* ------------------------------------------------------------------ regions */

static void region_add(struct region *r, struct mb_shm *shm)
{
    r->shm = shm;
    r->next = M.regions;
    M.regions = r;
}

/* Step (a)-(b) of "Region generations": the successor of the current region
 * for params, or NULL (logged) when it cannot be built. */
static struct region *region_successor(const struct mb_shm_params *params)
{
    char err[1024];
    struct mb_shm *prev = M.region->shm, *shm = NULL;
    struct mb_shm_carry carry = {.totals = malloc(sizeof(struct mb_counters_totals))};
    struct region *r = calloc(1, sizeof(*r));
    if (carry.totals == NULL || r == NULL) {
        snprintf(err, sizeof(err), "out of memory");
        goto fail;
    }
    if (mb_shm_create_successor(prev, params, &carry, &shm, err, sizeof(err)) != MB_OK)
        goto fail;
    region_add(r, shm);
    M.region->carried = carry.totals;
    mb_log_info("shm region rebuilt for the new sizes (rate_limit.capacity %u -> %u): %llu "
                "rate-limit buckets carried, %llu dropped (a smaller table keeps the ones "
                "that expire last); caches start empty",
                prev->ratelimit.capacity, shm->ratelimit.capacity,
                (unsigned long long)carry.buckets_copied,
                (unsigned long long)carry.buckets_dropped);
    return r;

fail:
    mb_log_error("cannot build a shm region of the new sizes, keeping the running region and "
                 "its sizes: %s",
                 err);
    free(carry.totals);
    free(r);
    return NULL;
}

/* Step (d): a region no generation uses any more and that is not current. */
static void region_release(struct region *r)
{
    if (--r->gens > 0 || r == M.region)
        return;
    struct mb_counters_totals now;
    mb_counters_totals(r->shm, &now);
    mb_counters_carry(M.region->shm, &now, r->carried);
    mb_shm_retire(r->shm);
    for (struct region **p = &M.regions; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            break;
        }
    }
    mb_log_info("old shm region retired: its last workers exited, their counters were carried "
                "into the current region");
    mb_shm_close(&r->shm);
    free(r->carried);
    free(r);
}

/* ------------------------------------------------------------------ generations */

static struct generation *gen_new(struct mb_conf *conf, struct mb_listen_set *socks)
{
    struct generation *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    g->id = ++M.next_gen;
    g->conf = conf;
    g->socks = *socks;
    return g;
}

static void gen_set_region(struct generation *g, struct region *r)
{
    g->region = r;
    r->gens++;
}

static void gen_release(struct generation *g)
{
    if (--g->live > 0 || g == M.current)
        return;
    for (struct generation **p = &M.old; *p; p = &(*p)->next) {
        if (*p == g) {
            *p = g->next;
            break;
        }
    }
    mb_log_info("generation %llu retired", (unsigned long long)g->id);
    mb_listen_close(&g->socks);
    mb_conf_free(&g->conf);
    region_release(g->region);
    free(g);
}

/* ------------------------------------------------------------------ workers */

static struct mb_shm *shm_of(const struct worker *w)
{
    return w->gen->region->shm;
}

static void child_main(struct worker *w) __attribute__((noreturn));
static void child_main(struct worker *w)
{
    struct generation *g = w->gen;
    mb_log_set_role("worker", (int)w->slot);
    int fds[64];
    size_t n = 0;
    int metrics_fd = mb_listen_metrics_fd(&g->socks, w->slot);
    /* Keep this slot's sockets (client listeners and the metrics one),
     * close the other slots' (DESIGN §1). */
    for (size_t l = 0; l < mb_listen_total(&g->socks); l++) {
        for (size_t s = 0; s < g->socks.nslots; s++) {
            int fd = mb_listen_fd(&g->socks, l, s);
            if (s != w->slot)
                close(fd);
            else if (l < g->socks.nlisten && n < sizeof(fds) / sizeof(fds[0]))
                fds[n++] = fd;
        }
    }
    if (M.opts->ready_fd != -1)
        close(M.opts->ready_fd);
    /* An old region mapped here would keep its memory alive as long as
     * this worker lives. */
    for (struct region *r = M.regions; r; r = r->next)
        if (r != g->region)
            mb_shm_close(&r->shm);
    /* Default dispositions; the mask stays blocked until the worker's loop
     * watches the signals itself. */
    for (size_t i = 0; i < NSIGNALS; i++)
        signal(handled_signals[i], SIG_DFL);
    if (g->conf->resources.cpu_affinity) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(ncpu > 0 ? (int)(w->slot % ncpu) : 0, &set);
        if (sched_setaffinity(0, sizeof(set), &set) == -1)
            mb_log_warn("sched_setaffinity(cpu %ld) failed: %s", ncpu > 0 ? w->slot % ncpu : 0,
                        strerror(errno));
    }
    struct mb_worker_args args = {
        .conf = g->conf,
        .shm = g->region->shm,
        .slot = (int)w->slot,
        .generation = g->id,
        .worker_index = w->index,
        .listen_fds = fds,
        .nlisten = n,
        .metrics_fd = metrics_fd,
    };
    exit(mb_worker_main(&args));
}

static int spawn(struct worker *w)
{
    pid_t pid = fork();
    if (pid == -1) {
        mb_log_error("fork() for worker slot %u failed: %s", w->slot, strerror(errno));
        return MB_ERR;
    }
    if (pid == 0)
        child_main(w);
    w->pid = pid;
    w->started = mb_time_mono_ms();
    w->respawn_at = 0;
    mb_shm_worker_started(shm_of(w), w->index, pid);
    mb_log_info("worker slot %u started: pid %d, generation %llu", w->slot, (int)pid,
                (unsigned long long)w->gen->id);
    return MB_OK;
}

static struct worker *worker_new(struct generation *g, uint32_t slot)
{
    for (size_t i = 0; i < MAX_WORKERS; i++) {
        struct worker *w = &M.workers[i];
        if (w->used)
            continue;
        int idx = mb_shm_worker_alloc(g->region->shm, slot, g->id);
        if (idx < 0) {
            mb_log_error("shm worker table is full: cannot start worker slot %u", slot);
            return NULL;
        }
        memset(w, 0, sizeof(*w));
        w->used = true;
        w->slot = slot;
        w->index = (uint32_t)idx;
        w->gen = g;
        g->live++;
        return w;
    }
    mb_log_error("too many worker processes (%d): cannot start worker slot %u", MAX_WORKERS, slot);
    return NULL;
}

/* Forgets a worker entry whose process is gone. */
static void worker_release(struct worker *w)
{
    struct generation *g = w->gen;
    w->used = false;
    gen_release(g);
}

static int start_generation(struct generation *g)
{
    int started = 0;
    for (uint32_t s = 0; s < g->conf->workers; s++) {
        struct worker *w = worker_new(g, s);
        if (w == NULL)
            continue;
        if (spawn(w) != MB_OK) {
            mb_shm_worker_reaped(shm_of(w), w->index, 0, true);
            worker_release(w);
            continue;
        }
        started++;
    }
    return started;
}

static void signal_worker(struct worker *w, int sig, uint64_t kill_at)
{
    if (w->pid > 0) {
        if (kill(w->pid, sig) == -1 && errno != ESRCH)
            mb_log_error("kill(%d, %s) failed: %s", (int)w->pid, strsignal(sig), strerror(errno));
        w->stopping = true;
        w->kill_at = kill_at;
    } else {
        /* Waiting for respawn: there is no process; give the record back. */
        mb_shm_worker_reaped(shm_of(w), w->index, 0, true);
        worker_release(w);
    }
}

static void describe_status(int st, char *buf, size_t len)
{
    if (WIFEXITED(st))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, len, "killed by signal %d (%s)%s", WTERMSIG(st), strsignal(WTERMSIG(st)),
                 WCOREDUMP(st) ? ", core dumped" : "");
    else
        snprintf(buf, len, "stopped with wait status %d", st);
}

static void reap(void)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        struct worker *w = NULL;
        for (size_t i = 0; i < MAX_WORKERS; i++)
            if (M.workers[i].used && M.workers[i].pid == pid)
                w = &M.workers[i];
        if (w == NULL)
            continue;
        char how[128];
        describe_status(st, how, sizeof(how));
        bool fatal = WIFEXITED(st) && WEXITSTATUS(st) == MB_EXIT_FATAL;
        bool respawn = M.stop == RUNNING && w->gen == M.current && !w->stopping && !fatal;
        if (w->stopping)
            mb_log_info("worker slot %u pid %d %s", w->slot, (int)pid, how);
        else if (fatal)
            mb_log_error("worker slot %u pid %d %s (fatal): not respawning it", w->slot, (int)pid,
                         how);
        else
            mb_log_error("worker slot %u pid %d %s unexpectedly", w->slot, (int)pid, how);
        mb_shm_worker_reaped(shm_of(w), w->index, st, !respawn);
        w->pid = 0;
        if (!respawn) {
            worker_release(w);
            continue;
        }
        uint64_t now = mb_time_mono_ms();
        if (now - w->started >= STABLE_AFTER_MS)
            w->backoff_ms = 0;
        w->respawn_at = now + w->backoff_ms;
        if (w->backoff_ms)
            mb_log_info("respawning worker slot %u in %u ms", w->slot, w->backoff_ms);
        w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : BACKOFF_FIRST_MS;
        if (w->backoff_ms > BACKOFF_MAX_MS)
            w->backoff_ms = BACKOFF_MAX_MS;
    }
}

static void respawn_due(uint64_t now)
{
    for (size_t i = 0; i < MAX_WORKERS; i++) {
        struct worker *w = &M.workers[i];
        if (!w->used || w->pid != 0 || w->respawn_at > now)
            continue;
        mb_shm_worker_respawn(shm_of(w), w->index);
        if (spawn(w) != MB_OK)
            w->respawn_at = now + BACKOFF_MAX_MS / 10;
    }
}

static void kill_overdue(uint64_t now)
{
    for (size_t i = 0; i < MAX_WORKERS; i++) {
        struct worker *w = &M.workers[i];
        if (w->used && w->pid > 0 && w->stopping && w->kill_at && w->kill_at <= now) {
            mb_log_warn("worker slot %u pid %d did not exit in time: killing it", w->slot,
                        (int)w->pid);
            kill(w->pid, SIGKILL);
            w->kill_at = 0;
        }
    }
}

static bool any_worker(bool current_only)
{
    for (size_t i = 0; i < MAX_WORKERS; i++)
        if (M.workers[i].used && (!current_only || M.workers[i].gen == M.current))
            return true;
    return false;
}

/* ------------------------------------------------------------------ reload, stop */

/* mcp_gateway_reloads_total{result}: the master row is the master's own. */
static void count_reload(bool ok)
{
    mb_counters_add(M.region->shm, mb_counters_master_row(M.region->shm),
                    ok ? MB_CTR_RELOADS : MB_CTR_RELOADS_FAILED, 1);
}

static void reload(void)
{
    char err[1024];
    struct mb_conf *conf = NULL;
    struct mb_listen_set socks = {0};
    mb_log_info("reloading %s", M.opts->conf_path);
    if (mb_conf_load(M.opts->conf_path, &conf, err, sizeof(err)) != MB_OK) {
        mb_log_error("reload failed, keeping the running configuration: %s", err);
        count_reload(false);
        return;
    }
    if (mb_listen_build(conf, &M.current->socks, &socks, err, sizeof(err)) != MB_OK) {
        mb_log_error("reload failed, keeping the running configuration: %s", err);
        mb_conf_free(&conf);
        count_reload(false);
        return;
    }
    struct generation *g = gen_new(conf, &socks);
    if (g == NULL) {
        mb_log_error("reload failed: out of memory");
        mb_listen_close(&socks); /* sockets taken over are gone from the old set */
        mb_conf_free(&conf);
        count_reload(false);
        return;
    }
    const struct mb_conf *was = M.current->conf;
    if (strcmp(was->shm.path, conf->shm.path) != 0)
        mb_log_warn("shm.path changed to %s: the region stays at %s until a restart",
                    conf->shm.path, was->shm.path);
    if (strcmp(was->pid_file, conf->pid_file) != 0)
        mb_log_warn("pid_file changed to %s: it takes effect at the next start", conf->pid_file);
    /* New sizes: a successor region (see "Region generations" above). */
    struct mb_shm_params shape;
    struct region *reg = M.region;
    mb_shmsize_params(conf, M.region->shm->worker_capacity, &shape);
    if (!mb_shm_same_shape(M.region->shm, &shape)) {
        struct region *next = region_successor(&shape);
        if (next != NULL)
            reg = M.region = next;
    }
    gen_set_region(g, reg);
    /* The old generation keeps no sockets in the master: what the new one
     * took over moved, the rest is no longer listened on. */
    mb_listen_close(&M.current->socks);
    struct generation *old = M.current;
    old->next = M.old;
    M.old = old;
    M.current = g;
    if (mb_log_open(conf->logging.error_log, conf->logging.level) != 0)
        mb_log_error("cannot open error log %s: keeping the old one", conf->logging.error_log);
    /* Counted before the generation is published: a reader that sees the
     * new generation also sees the reload that made it. */
    count_reload(true);
    mb_shm_set_generation(M.region->shm, g->id);
    mb_shm_publish(M.region->shm); /* a successor becomes READY (a kept one is) */
    start_generation(g);
    uint64_t now = mb_time_mono_ms();
    for (size_t i = 0; i < MAX_WORKERS; i++) {
        struct worker *w = &M.workers[i];
        if (w->used && w->gen != g && !w->stopping)
            signal_worker(w, SIGQUIT,
                          now + (uint64_t)w->gen->conf->server.shutdown_timeout + KILL_GRACE_MS);
    }
    mb_log_info("reloaded: generation %llu", (unsigned long long)g->id);
}

static void begin_stop(enum stop_mode mode)
{
    if (M.stop == STOP_FAST || M.stop == mode)
        return;
    M.stop = mode;
    uint64_t now = mb_time_mono_ms();
    mb_log_info("%s stop", mode == STOP_FAST ? "fast" : "graceful");
    for (size_t i = 0; i < MAX_WORKERS; i++) {
        struct worker *w = &M.workers[i];
        if (!w->used)
            continue;
        if (mode == STOP_FAST)
            signal_worker(w, SIGTERM, now + FAST_STOP_MS);
        else if (!w->stopping)
            signal_worker(w, SIGQUIT,
                          now + (uint64_t)w->gen->conf->server.shutdown_timeout + KILL_GRACE_MS);
    }
}

static void reopen_logs(void)
{
    if (mb_log_reopen() != 0)
        mb_log_error("reopening the error log failed: %s", strerror(errno));
    else
        mb_log_info("logs reopened");
    for (size_t i = 0; i < MAX_WORKERS; i++)
        if (M.workers[i].used && M.workers[i].pid > 0)
            kill(M.workers[i].pid, SIGUSR1);
}

/* Arms ITIMER_REAL for the nearest deadline (0 disarms). */
static void arm_timer(uint64_t now)
{
    uint64_t next = 0;
    for (size_t i = 0; i < MAX_WORKERS; i++) {
        struct worker *w = &M.workers[i];
        if (!w->used)
            continue;
        uint64_t d = w->pid == 0 ? w->respawn_at : (w->stopping ? w->kill_at : 0);
        if (w->pid == 0 && d == 0)
            d = now; /* due now */
        if (d && (next == 0 || d < next))
            next = d;
    }
    struct itimerval it = {0};
    if (next) {
        uint64_t ms = next > now ? next - now : 1;
        it.it_value.tv_sec = (time_t)(ms / 1000);
        it.it_value.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    }
    setitimer(ITIMER_REAL, &it, NULL);
}

int mb_master_run(const struct mb_master_opts *opts, struct mb_conf *conf,
                  struct mb_listen_set *socks, struct mb_shm *shm)
{
    sigset_t wait_mask;
    M.opts = opts;
    mb_log_set_role("master", -1);
    if (install_signals(&wait_mask) != MB_OK) {
        mb_shm_close(&shm);
        return MB_EXIT_ERROR;
    }
    struct region *first = calloc(1, sizeof(*first));
    M.current = gen_new(conf, socks);
    if (first == NULL || M.current == NULL) {
        mb_log_error("out of memory");
        mb_shm_close(&shm);
        return MB_EXIT_ERROR;
    }
    region_add(first, shm);
    M.region = first;
    gen_set_region(M.current, first);
    mb_shm_set_generation(shm, M.current->id);
    mb_shm_publish(shm);
    if (start_generation(M.current) == 0) {
        mb_log_error("no worker could be started");
        return MB_EXIT_ERROR;
    }
    mb_log_info("started: %u workers, generation %llu", conf->workers,
                (unsigned long long)M.current->id);
    if (opts->ready_fd != -1) {
        char ok = 0;
        if (write(opts->ready_fd, &ok, 1) != 1)
            mb_log_warn("cannot tell the starting process that we run: %s", strerror(errno));
        close(opts->ready_fd);
    }

    int status = MB_EXIT_OK;
    for (;;) {
        if (sig_child) {
            sig_child = 0;
            reap();
        }
        if (sig_term) {
            sig_term = 0;
            begin_stop(STOP_FAST);
        }
        if (sig_quit) {
            sig_quit = 0;
            begin_stop(STOP_GRACEFUL);
        }
        if (sig_hup) {
            sig_hup = 0;
            if (M.stop == RUNNING)
                reload();
        }
        if (sig_usr1) {
            sig_usr1 = 0;
            reopen_logs();
        }
        sig_alarm = 0;
        uint64_t now = mb_time_mono_ms();
        if (M.stop == RUNNING)
            respawn_due(now);
        kill_overdue(now);
        if (M.stop != RUNNING && !any_worker(false))
            break;
        if (M.stop == RUNNING && !any_worker(true)) {
            mb_log_error("no worker left to serve (all exited fatally): stopping");
            begin_stop(STOP_FAST);
            status = MB_EXIT_ERROR;
            continue;
        }
        arm_timer(now);
        sigsuspend(&wait_mask);
    }
    mb_log_info("exiting");
    mb_listen_close(&M.current->socks);
    /* Every old region retired with its last worker; the current one stays
     * on disk, RETIRED, for the dump tool. */
    mb_shm_retire(M.region->shm);
    while (M.regions != NULL) {
        struct region *r = M.regions;
        M.regions = r->next;
        mb_shm_close(&r->shm);
        free(r->carried);
        free(r);
    }
    return status;
}
