/*
 * tests/load/run.h — a whole load run: the file descriptor limit, then one
 * process's engine, or --processes P forked copies whose results are merged.
 */
#ifndef MB_TESTS_LOAD_RUN_H
#define MB_TESTS_LOAD_RUN_H

#include <signal.h>
#include <stddef.h>

#include "tests/load/opts.h"
#include "tests/load/report.h"

/* Raises the soft RLIMIT_NOFILE to the hard limit and checks that each
 * process's connections fit under it. Returns 0, or -1 with a message. */
int mb_load_run_fdlimit(const struct mb_load_opts *o, char *err, size_t errlen);

/* Runs the load. Returns 0 with the merged result, or -1 with a message.
 * With several processes a child that fails is reported in err but the
 * others' results are still merged (return 0) unless none succeeded. */
int mb_load_run(const struct mb_load_opts *o, volatile sig_atomic_t *stop,
                struct mb_load_result *out, char *err, size_t errlen);

#endif
