/*
 * tests/load/engine.h — one process's share of a load run: its threads, each
 * with its own epoll loop and non-blocking sockets, and the merge of their
 * results.
 *
 * Phases (request modes and idle): every connection is opened first (TCP,
 * WebSocket upgrade, and initialize with --init), at most --connect-burst at a
 * time per thread; once all are open or failed (or --open-timeout passed), the
 * run's time zero t0 is set. Closed/open loop then measure from t0+warmup for
 * --duration (or until --requests replies); idle mode holds for --hold. Stages
 * mode has no opening phase: its VUs connect as the schedule adds them.
 */
#ifndef MB_TESTS_LOAD_ENGINE_H
#define MB_TESTS_LOAD_ENGINE_H

#include <signal.h>
#include <stddef.h>

#include "tests/load/opts.h"
#include "tests/load/report.h"

/* Runs process proc_index's share (of o->processes) of the load. *stop is set
 * by signal handlers: the run ends early and says so. Returns 0, or -1 with a
 * message in err (nothing could be run: bad address, out of memory, ...). */
int mb_load_engine_run(const struct mb_load_opts *o, int proc_index, volatile sig_atomic_t *stop,
                       struct mb_load_result *out, char *err, size_t errlen);

/* An upper bound on how long mb_load_engine_run takes, in ns. */
uint64_t mb_load_engine_bound_ns(const struct mb_load_opts *o);

#endif
