/*
 * tests/load/run.c — see run.h.
 *
 * With --processes P the parent forks P children before any thread exists;
 * child p runs share p of the load (engine.c divides connections, VUs, rate
 * and --requests) and writes its struct mb_load_result whole into a pipe.
 * The parent reads every pipe (poll, so no child blocks on a full pipe),
 * passes SIGINT on to the children when it is interrupted, kills them if
 * they outlive the run's bound, reaps them, and merges.
 */
#include "tests/load/run.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/time.h"
#include "tests/load/engine.h"

int mb_load_run_fdlimit(const struct mb_load_opts *o, char *err, size_t errlen)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
        snprintf(err, errlen, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
        return -1;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
            snprintf(err, errlen, "setrlimit(RLIMIT_NOFILE, %llu): %s",
                     (unsigned long long)rl.rlim_max, strerror(errno));
            return -1;
        }
    }
    uint64_t conns;
    if (o->mode == MB_LOAD_MODE_IDLE)
        conns = o->idle;
    else if (o->mode == MB_LOAD_MODE_STAGES)
        conns = mb_load_stages_max(&o->stages);
    else
        conns = o->connections;
    uint64_t per = (conns + (uint64_t)o->processes - 1) / (uint64_t)o->processes;
    uint64_t need = per + 2 * (uint64_t)o->threads + 32;
    if (rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur) {
        uint64_t room = rl.rlim_cur > 32 + 2 * (uint64_t)o->threads
                            ? rl.rlim_cur - 32 - 2 * (uint64_t)o->threads
                            : 1;
        snprintf(err, errlen,
                 "%llu connections per process need ~%llu file descriptors but the limit is "
                 "%llu: use --processes %llu or more",
                 (unsigned long long)per, (unsigned long long)need, (unsigned long long)rl.rlim_cur,
                 (unsigned long long)((conns + room - 1) / room));
        return -1;
    }
    uint64_t ports = 28000ull * (uint64_t)(o->nsources ? o->nsources : 1);
    if (conns > ports)
        fprintf(stderr,
                "mcp-bridge-load: warning: %llu connections to one address may exhaust the ~%llu "
                "local ports; add --source-ips 127.0.0.2,...\n",
                (unsigned long long)conns, (unsigned long long)ports);
    return 0;
}

int mb_load_run(const struct mb_load_opts *o, volatile sig_atomic_t *stop,
                struct mb_load_result *out, char *err, size_t errlen)
{
    if (o->processes == 1)
        return mb_load_engine_run(o, 0, stop, out, err, errlen);

    int P = o->processes, rc = -1, nok = 0, nchild = 0;
    pid_t *pids = calloc((size_t)P, sizeof(*pids));
    int *fds = calloc((size_t)P, sizeof(*fds));
    size_t *got = calloc((size_t)P, sizeof(*got));
    struct mb_load_result *res = calloc((size_t)P, sizeof(*res));
    if (!pids || !fds || !got || !res) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    fflush(NULL);
    for (; nchild < P; nchild++) {
        int pfd[2];
        if (pipe(pfd) == -1) {
            snprintf(err, errlen, "pipe: %s", strerror(errno));
            *stop = 1;
            break;
        }
        pid_t pid = fork();
        if (pid == -1) {
            snprintf(err, errlen, "fork: %s", strerror(errno));
            close(pfd[0]);
            close(pfd[1]);
            *stop = 1;
            break;
        }
        if (pid == 0) {
            close(pfd[0]);
            for (int i = 0; i < nchild; i++)
                close(fds[i]);
            char cerr[512];
            struct mb_load_result *r = malloc(sizeof(*r));
            if (!r)
                _exit(1);
            if (mb_load_engine_run(o, nchild, stop, r, cerr, sizeof(cerr)) != 0) {
                fprintf(stderr, "mcp-bridge-load: process %d: %s\n", nchild, cerr);
                _exit(1);
            }
            const char *p = (const char *)r;
            size_t left = sizeof(*r);
            while (left) {
                ssize_t w = write(pfd[1], p, left);
                if (w < 0 && errno == EINTR)
                    continue;
                if (w <= 0)
                    _exit(1);
                p += w;
                left -= (size_t)w;
            }
            _exit(0);
        }
        close(pfd[1]);
        pids[nchild] = pid;
        fds[nchild] = pfd[0];
    }

    uint64_t deadline = mb_time_mono_ns() + mb_load_engine_bound_ns(o) + 5000000000ull;
    int forwarded = 0, open = nchild;
    struct pollfd *pf = calloc((size_t)P, sizeof(*pf));
    if (!pf) {
        snprintf(err, errlen, "out of memory");
        *stop = 1;
    }
    while (pf && open > 0) {
        if (*stop && !forwarded) {
            for (int i = 0; i < nchild; i++)
                kill(pids[i], SIGINT);
            forwarded = 1;
        }
        uint64_t now = mb_time_mono_ns();
        if (now >= deadline) {
            snprintf(err, errlen, "processes outlived the run's bound: killed");
            for (int i = 0; i < nchild; i++)
                kill(pids[i], SIGKILL);
            break;
        }
        for (int i = 0; i < nchild; i++) {
            pf[i].fd = fds[i]; /* closed ones are -1: poll skips them */
            pf[i].events = POLLIN;
            pf[i].revents = 0;
        }
        int n = poll(pf, (nfds_t)nchild, 100);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; n > 0 && i < nchild; i++) {
            if (fds[i] < 0 || !pf[i].revents)
                continue;
            ssize_t r = read(fds[i], (char *)&res[i] + got[i], sizeof(res[i]) - got[i]);
            if (r > 0) {
                got[i] += (size_t)r;
            } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                close(fds[i]);
                fds[i] = -1;
                open--;
            }
        }
    }
    free(pf);
    mb_load_result_init(out);
    for (int i = 0; i < nchild; i++) {
        int st;
        if (fds[i] >= 0)
            close(fds[i]);
        while (waitpid(pids[i], &st, 0) == -1 && errno == EINTR)
            ;
        if (got[i] == sizeof(res[i]) && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            mb_load_result_merge(out, &res[i]);
            nok++;
        } else {
            snprintf(err, errlen, "load process %d failed", i);
        }
    }
    rc = nok > 0 ? 0 : -1;
    if (nok < P)
        fprintf(stderr, "mcp-bridge-load: %d of %d processes reported\n", nok, P);
out:
    free(pids);
    free(fds);
    free(got);
    free(res);
    return rc;
}
