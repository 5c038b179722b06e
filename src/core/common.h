/*
 * Internal definitions shared by every module: atomics, cache-line
 * alignment, allocation helpers. Internal cross-file symbols are prefixed
 * posthog__; nothing here is exported from the shared library.
 */
#ifndef POSTHOG_COMMON_H
#define POSTHOG_COMMON_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "alloc.h"
#include "posthog/posthog.h"

#define PH_CACHELINE 64
#define PH_ALIGNED_CL _Alignas(PH_CACHELINE)

#define PH_LIKELY(x) __builtin_expect(!!(x), 1)
#define PH_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define PH_MIN(a, b) ((a) < (b) ? (a) : (b))
#define PH_MAX(a, b) ((a) > (b) ? (a) : (b))

/* A counter alone on its cache line, so producers on other cores do not
 * false-share it with unrelated hot data. */
typedef struct {
    PH_ALIGNED_CL _Atomic uint64_t v;
    char pad[PH_CACHELINE - sizeof(uint64_t)];
} ph_counter_t;

static inline void ph_counter_add(ph_counter_t *c, uint64_t n) {
    /* relaxed: statistics only, read with relaxed loads; no data depends on it */
    atomic_fetch_add_explicit(&c->v, n, memory_order_relaxed);
}
static inline uint64_t ph_counter_get(const ph_counter_t *c) {
    return atomic_load_explicit(&((ph_counter_t *)c)->v, memory_order_relaxed);
}

/* Growable byte buffer with a hard maximum (like curl's dynbuf). */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
    size_t max;
} ph_buf_t;

void posthog__buf_init(ph_buf_t *b, size_t max);
void posthog__buf_free(ph_buf_t *b);
/* 0 on success, -1 when the result would exceed b->max or malloc failed. */
int posthog__buf_reserve(ph_buf_t *b, size_t extra);
/* As posthog__buf_reserve, growing to exactly what is needed (no doubling). */
int posthog__buf_reserve_exact(ph_buf_t *b, size_t extra);
int posthog__buf_append(ph_buf_t *b, const void *p, size_t n);
static inline int ph_buf_putc(ph_buf_t *b, char ch) { return posthog__buf_append(b, &ch, 1); }

#endif
