/*
 * Clocks shared by the benchmark programs: monotonic wall time and the
 * calling thread's CPU time.
 */
#ifndef PH_BENCH_CLOCK_H
#define PH_BENCH_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline double now_s(void) { return clock_s(CLOCK_MONOTONIC); }
static inline double thread_cpu_s(void) { return clock_s(CLOCK_THREAD_CPUTIME_ID); }

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
