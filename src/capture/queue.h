/*
 * queue: a lock-free bounded multi-producer / single-consumer byte ring.
 *
 * Producers reserve a contiguous record with one CAS on `head`, write it,
 * then publish it by storing its header word with release order. The
 * consumer (the flusher) reads records in order at `tail`, waits for a
 * header that is still 0 (reserved, not yet published), and zeroes every
 * byte it consumes before moving `tail` on, so the ring is all zeroes
 * ahead of the producers and a 0 header always means "not published".
 *
 * Record layout: an 8-byte header word (len << 32 | flags), then payload;
 * len counts the header and is a multiple of 8. A record that would cross
 * the end of the ring is preceded by a PAD record filling the end.
 *
 * Bounds: at most `budget` bytes in use (head - tail) and at most
 * `max_count` records. A full ring fails the reservation: never blocks.
 * Memory: an anonymous mapping, touched only as the ring is used.
 */
#ifndef POSTHOG_QUEUE_H
#define POSTHOG_QUEUE_H

#include "common.h"

enum { PH_Q_COMMIT = 1, PH_Q_PAD = 2, PH_Q_DEAD = 4 };

typedef struct {
    char *buf;
    size_t cap;       /* bytes mapped, multiple of 8 */
    uint32_t max_count;
    /* producers: reservation cursor */
    PH_ALIGNED_CL _Atomic uint64_t head;
    /* consumer: everything before tail is consumed and zeroed */
    PH_ALIGNED_CL _Atomic uint64_t tail;
    /* records reserved and not yet consumed */
    PH_ALIGNED_CL _Atomic uint64_t count;
    char pad_[PH_CACHELINE - sizeof(uint64_t)];
    uint64_t populated; /* consumer only: bytes from the start already faulted in */
} ph_queue_t;

typedef struct {
    char *hdr;   /* the record's header word */
    uint64_t len;
} ph_qslot_t;

/* 0 ok, -1 out of memory. */
int posthog__queue_init(ph_queue_t *q, size_t budget, uint32_t max_count);
void posthog__queue_destroy(ph_queue_t *q);
/* In a forked child: forget every record (fresh zero pages), keep the size. */
void posthog__queue_reset(ph_queue_t *q);

/*
 * Reserves room for `n` payload bytes. Returns the payload pointer, or
 * NULL when the ring is full (bytes or count). *count_after receives the
 * number of records in the ring including this one.
 */
void *posthog__queue_reserve(ph_queue_t *q, size_t n, ph_qslot_t *slot, uint64_t *count_after);
/* Publishes a reserved record; `flags` PH_Q_DEAD marks it to be skipped. */
void posthog__queue_commit(ph_queue_t *q, ph_qslot_t *slot, unsigned flags);

/*
 * Consumer only. Returns the next published record's payload and length,
 * skipping pads and dead records; NULL when the next record is not yet
 * published or the ring is empty.
 */
const void *posthog__queue_peek(ph_queue_t *q, size_t *len);
/* Consumer only: frees the record returned by the last peek. */
void posthog__queue_pop(ph_queue_t *q);
/* Consumer only: faults in the pages up to `ahead` bytes past the head
 * during the first lap, so producers do not take the page faults (a
 * first-touch fault costs a capture ~1.5 us). A no-op once every page
 * has been used once, or where the kernel lacks MADV_POPULATE_WRITE. */
void posthog__queue_prefault(ph_queue_t *q, uint64_t ahead);

static inline uint64_t ph_queue_head(ph_queue_t *q) {
    return atomic_load_explicit(&q->head, memory_order_seq_cst);
}
static inline uint64_t ph_queue_tail(ph_queue_t *q) {
    return atomic_load_explicit(&q->tail, memory_order_acquire);
}
static inline uint64_t ph_queue_count(ph_queue_t *q) {
    return atomic_load_explicit(&q->count, memory_order_relaxed);
}

#endif
