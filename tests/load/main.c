/*
 * tests/load/main.c — mcp-bridge-load: parse the command line, install the
 * signal handlers (they only set a flag), run, print the report. Everything
 * else lives in the other tests/load files so the unit tests can reach it.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/errors.h"
#include "tests/load/floor.h"
#include "tests/load/opts.h"
#include "tests/load/report.h"
#include "tests/load/run.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

int main(int argc, char **argv)
{
    static struct mb_load_opts o;
    static struct mb_load_result r;
    char err[1024];
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int rc = mb_load_opts_parse(argc, argv, ncpu > 0 ? (int)ncpu : 1, &o, err, sizeof(err));
    if (rc == MB_LOAD_OPTS_HELP) {
        mb_load_opts_usage(stdout, argv[0]);
        return MB_EXIT_OK;
    }
    if (rc != MB_LOAD_OPTS_OK) {
        fprintf(stderr, "mcp-bridge-load: %s\n", err);
        return MB_EXIT_FATAL;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (o.mode == MB_LOAD_MODE_FLOOR) {
        struct mb_load_floor *fl;
        int port;
        rc = mb_load_floor_start(&o, &stop_flag, &fl, &port, err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "mcp-bridge-load: %s\n", err);
        } else {
            printf("floor: listening on 127.0.0.1:%d\n", port);
            fflush(stdout);
            mb_load_floor_wait(fl);
        }
        mb_load_opts_free(&o);
        return rc == 0 ? MB_EXIT_OK : MB_EXIT_ERROR;
    }
    if (mb_load_run_fdlimit(&o, err, sizeof(err)) != 0) {
        fprintf(stderr, "mcp-bridge-load: %s\n", err);
        mb_load_opts_free(&o);
        return MB_EXIT_FATAL;
    }
    err[0] = '\0';
    rc = mb_load_run(&o, &stop_flag, &r, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "mcp-bridge-load: %s\n", err);
        mb_load_opts_free(&o);
        return MB_EXIT_ERROR;
    }
    if (err[0])
        fprintf(stderr, "mcp-bridge-load: %s\n", err);
    if (o.json)
        rc = mb_load_report_json(stdout, &o, &r);
    else
        mb_load_report_text(stdout, &o, &r);
    /* A run where nothing succeeded is a failed run (a wrong URL, a dead
     * server); the report above says why. */
    int none = o.mode == MB_LOAD_MODE_IDLE     ? r.idle_open == 0
               : o.mode == MB_LOAD_MODE_STAGES ? r.iterations == 0
                                               : r.requests == 0;
    mb_load_opts_free(&o);
    return rc == 0 && !none ? MB_EXIT_OK : MB_EXIT_ERROR;
}
