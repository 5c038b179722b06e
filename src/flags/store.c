/*
 * Publish/retire of the compiled definitions: reference counts plus
 * hazard slots for the one unsafe instant.
 *
 * A reader must not increment the count of a version that a publisher has
 * just swapped out and freed. So it first announces the pointer in a
 * hazard slot, re-reads the current pointer (if it changed, it retries),
 * then increments the count only if it is not already zero, and clears the
 * slot. Whoever drops a count to zero (a releasing reader or the
 * publisher dropping the store's own reference) frees the version at once
 * unless a hazard slot names it; then the version goes on a retire stack
 * that the next publish (or store free) sweeps. Every step is an atomic
 * operation: no lock on the read side, nothing TSan cannot see.
 *
 * Orders: the hazard store, the re-read of `cur`, the exchange of `cur` and
 * the hazard scan are all seq_cst. That total order is what makes the scan
 * see every reader that saw the old pointer as current (the classic hazard
 * pointer argument), so they stay seq_cst on purpose.
 * Publishing takes no lock either: concurrent publishers each exchange
 * `cur` and drop what they swapped out, and each sweep takes the whole
 * retire stack with one exchange, so two sweeps never see the same entry.
 * No lock anywhere means nothing a fork() can leave locked in the child.
 */
#include <sched.h>
#include <stdlib.h>

#include "common.h"
#include "flags_int.h"

static _Thread_local unsigned slot_hint;

ph_flags_store_t *posthog__flags_store_new(void) {
    ph_flags_store_t *s = posthog__aligned_alloc(PH_CACHELINE, sizeof *s);
    if (!s) return NULL;
    memset(s, 0, sizeof *s);
    atomic_init(&s->cur, NULL);
    atomic_init(&s->retired, NULL);
    atomic_init(&s->pending, 0);
    atomic_init(&s->generation, 0);
    for (int i = 0; i < HAZARDS; i++) atomic_init(&s->hz[i].p, NULL);
    return s;
}

static bool hazarded(ph_flags_store_t *s, const ph_flags_defs_t *d) {
    for (int i = 0; i < HAZARDS; i++)
        if (atomic_load(&s->hz[i].p) == d) return true;
    return false;
}

static void retire(ph_flags_store_t *s, ph_flags_defs_t *d) {
    ph_flags_defs_t *head = atomic_load(&s->retired);
    do {
        atomic_store_explicit(&d->retire_next, head, memory_order_relaxed); /* published by the CAS */
    } while (!atomic_compare_exchange_weak(&s->retired, &head, d));
    atomic_fetch_add(&s->pending, 1);
}

/* The count of d reached zero: free it unless a reader is mid-acquire. */
static void dispose(ph_flags_store_t *s, ph_flags_defs_t *d) {
    if (hazarded(s, d)) retire(s, d);
    else posthog__flags_defs_free(d);
}

static void drop(ph_flags_store_t *s, ph_flags_defs_t *d) {
    if (d && atomic_fetch_sub(&d->refs, 1) == 1) dispose(s, d);
}

/* Free what was retired and is no longer named by a hazard slot. */
static void sweep(ph_flags_store_t *s) {
    ph_flags_defs_t *d = atomic_exchange(&s->retired, NULL);
    while (d) {
        ph_flags_defs_t *next = atomic_load_explicit(&d->retire_next, memory_order_relaxed);
        atomic_fetch_sub(&s->pending, 1);
        dispose(s, d);
        d = next;
    }
}

uint64_t posthog__flags_store_publish(ph_flags_store_t *s, ph_flags_defs_t *d) {
    ph_flags_defs_t *old = atomic_exchange(&s->cur, d);
    uint64_t gen = atomic_fetch_add(&s->generation, 1) + 1;
    drop(s, old); /* the store's own reference */
    sweep(s);
    return gen;
}

const ph_flags_defs_t *posthog__flags_store_acquire(ph_flags_store_t *s) {
    unsigned slot = slot_hint % HAZARDS;
    for (;;) {
        ph_flags_defs_t *d = atomic_load(&s->cur);
        if (!d) return NULL;
        /* claim a free hazard slot for d */
        ph_flags_defs_t *expect = NULL;
        unsigned tries = 0;
        while (!atomic_compare_exchange_weak(&s->hz[slot].p, &expect, d)) {
            expect = NULL;
            slot = (slot + 1) % HAZARDS;
            if (++tries % HAZARDS == 0) sched_yield(); /* more readers than slots: rare */
        }
        slot_hint = slot;
        if (atomic_load(&s->cur) == d) {
            int64_t n = atomic_load(&d->refs);
            while (n > 0 && !atomic_compare_exchange_weak(&d->refs, &n, n + 1)) {
            }
            atomic_store(&s->hz[slot].p, NULL);
            if (n > 0) return d;
            continue; /* being retired: the publisher has swapped in another */
        }
        atomic_store(&s->hz[slot].p, NULL);
    }
}

void posthog__flags_store_release(ph_flags_store_t *s, const ph_flags_defs_t *d) {
    drop(s, (ph_flags_defs_t *)d);
}

size_t posthog__flags_store_pending(ph_flags_store_t *s) { return atomic_load(&s->pending); }

void posthog__flags_store_fork_child(ph_flags_store_t *s) {
    if (!s) return;
    /* only the forking thread exists here, and it is not inside acquire */
    for (int i = 0; i < HAZARDS; i++) atomic_store(&s->hz[i].p, NULL);
}

void posthog__flags_store_free(ph_flags_store_t *s) {
    if (!s) return;
    ph_flags_defs_t *old = atomic_exchange(&s->cur, NULL);
    drop(s, old);
    sweep(s); /* no readers remain: nothing is hazarded, all is freed */
    posthog__aligned_free(s);
}
