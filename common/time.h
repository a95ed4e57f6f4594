/*
 * common/time.h — clocks. Monotonic milliseconds/nanoseconds for timeouts and
 * latencies, wall-clock milliseconds for what operators read (start times).
 */
#ifndef MB_COMMON_TIME_H
#define MB_COMMON_TIME_H

#include <stdint.h>
#include <time.h>

static inline uint64_t mb_time_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t mb_time_mono_ms(void)
{
    return mb_time_mono_ns() / 1000000ull;
}

static inline uint64_t mb_time_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

#endif
