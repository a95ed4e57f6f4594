/*
 * tests/load/stages.h — the k6-style "stages" schedule of virtual users.
 *
 * A schedule is a list of (target, duration) stages run back to back, starting
 * from 0 virtual users: during a stage the number of VUs moves linearly from
 * the previous stage's target to this one's, and is at the target when the
 * stage ends. "100:60,1000:180,0:60" is the tutorial's k6 load test (ramp to
 * 100 in 1 min, to 1000 in 3 min, down to 0 in 1 min). A duration of 0 jumps.
 */
#ifndef MB_TESTS_LOAD_STAGES_H
#define MB_TESTS_LOAD_STAGES_H

#include <stddef.h>
#include <stdint.h>

#define MB_LOAD_STAGES_MAX 32

struct mb_load_stage {
    uint32_t target;
    uint64_t duration_ns;
};

struct mb_load_stages {
    struct mb_load_stage s[MB_LOAD_STAGES_MAX];
    int n;
};

/* Parses "TARGET:DURATION[,TARGET:DURATION...]"; DURATION as in
 * mb_load_duration_parse. Returns 0, or -1 with a message in err. */
int mb_load_stages_parse(const char *spec, struct mb_load_stages *st, char *err, size_t errlen);
uint64_t mb_load_stages_total_ns(const struct mb_load_stages *st);
/* The number of VUs at t_ns after the start (rounded to the nearest integer);
 * 0 after the last stage. */
uint32_t mb_load_stages_vus(const struct mb_load_stages *st, uint64_t t_ns);
/* The largest target of the schedule. */
uint32_t mb_load_stages_max(const struct mb_load_stages *st);
/* How many of total VUs worker w of nworkers runs: VU k belongs to worker
 * k % nworkers, so the shares always add up to total. */
uint32_t mb_load_stages_share(uint32_t total, uint32_t nworkers, uint32_t w);

/* Parses a duration: a number with an optional unit ms, s, m or h (seconds
 * when bare; fractions allowed: "1.5s"). Returns 0, or -1. */
int mb_load_duration_parse(const char *s, uint64_t *ns);

#endif
