/*
 * A counting allocator for posthog_set_allocator, shared by the memory
 * tests (tests/integration/test_memory.c) and the heap benchmark
 * (bench/ph_heap.c): every block carries its size in a 16-byte header, so
 * the bytes held now (ca_cur), the most held since ca_measure_start
 * (ca_peak) and the number of allocations and frees are exact.
 */
#ifndef PH_COUNT_ALLOC_H
#define PH_COUNT_ALLOC_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define CA_HDR 16

static _Atomic int64_t ca_cur, ca_peak, ca_nalloc, ca_nfree;

static inline void ca_note(int64_t d) {
    int64_t now = atomic_fetch_add(&ca_cur, d) + d;
    int64_t p = atomic_load(&ca_peak);
    while (now > p && !atomic_compare_exchange_weak(&ca_peak, &p, now)) {
    }
}

static inline void *ca_malloc(size_t n) {
    char *p = malloc(n + CA_HDR);
    if (!p) return NULL;
    *(size_t *)(void *)p = n;
    atomic_fetch_add(&ca_nalloc, 1);
    ca_note((int64_t)n);
    return p + CA_HDR;
}

static inline void ca_free(void *q) {
    if (!q) return;
    char *p = (char *)q - CA_HDR;
    atomic_fetch_add(&ca_nfree, 1);
    ca_note(-(int64_t) * (size_t *)(void *)p);
    free(p);
}

static inline void *ca_realloc(void *q, size_t n) {
    if (!q) return ca_malloc(n);
    char *p = (char *)q - CA_HDR;
    size_t old = *(size_t *)(void *)p;
    char *r = realloc(p, n + CA_HDR);
    if (!r) return NULL;
    *(size_t *)(void *)r = n;
    ca_note((int64_t)n - (int64_t)old);
    return r + CA_HDR;
}

/* Starts a measurement: the peak from now on, above the bytes held now. */
static inline int64_t ca_measure_start(void) {
    int64_t base = atomic_load(&ca_cur);
    atomic_store(&ca_peak, base);
    return base;
}

#endif
